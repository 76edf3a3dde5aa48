//! Everything that talks to lightningd: the JSON-RPC client on `lightning-rpc` (`rpc`),
//! rune checks through `checkrune` (`rune`), the RPC methods this plugin adds
//! (`plugin_methods`), the notifications lightningd sends us (`notifications`), and the
//! plugin's stdout, where log lines and replies go (`logging`).

pub mod connect;
pub mod logging;
pub mod notifications;
pub mod plugin_methods;
pub mod reply_frames;
pub mod rpc;
pub mod rune;
