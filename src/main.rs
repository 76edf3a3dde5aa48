//! The `clnrest` plugin binary: wires the plugin protocol, the configuration, the REST server
//! and the notification handler together. Behaviour lives in the library modules.

use cln_plugin::RpcMethodBuilder;
use clnrest::broker;
use clnrest::config::{self, Config, RawOptions};
use clnrest::http::server::{self, BoundServer, StartError};
use clnrest::lightningd::connect::ConnectSettings;
use clnrest::lightningd::logging::{self, FrameSender};
use clnrest::lightningd::notifications;
use clnrest::lightningd::plugin_methods;
use clnrest::lightningd::rpc::LightningRpc;
use clnrest::memory;
use clnrest::state::AppState;
use clnrest::webhooks::{self, methods as webhook_methods};
use std::path::PathBuf;
use std::time::Duration;

/// The runtime's worker threads, whatever the number of cores. lightningd is the ceiling
/// (one `checkrune` and one call per request: ~6,500 pairs/s on a tmpfs node, far less on
/// disk) and two workers serve several times that (docs/performance.md); more would only
/// add stacks and contention. [`memory::limit_arenas`] is sized for this count.
const WORKER_THREADS: usize = 2;

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads exist: no thread gets an arena beyond the cap, and none
    // reads the environment while it changes.
    memory::limit_arenas();
    logging::skip_library_backtraces();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let (stdout, frames) = logging::start_stdout_writer();
    logging::init_tracing(frames.clone());
    logging::log_panics();

    let connect = ConnectSettings::default();
    let builder = cln_plugin::Builder::new(tokio::io::stdin(), stdout)
        .with_logging(false)
        .dynamic()
        .option(config::OPT_PORT)
        .option(config::OPT_PROTOCOL)
        .option(config::OPT_HOST)
        .option(config::OPT_CERTS)
        .option(config::OPT_CORS_ORIGINS)
        .option(config::OPT_CSP)
        .option(config::OPT_SWAGGER_ROOT)
        .option(config::OPT_MAX_CONNECTIONS)
        .option(config::OPT_TLS_EXTRA_NAME)
        .option(config::OPT_TLS_CERT)
        .option(config::OPT_TLS_KEY)
        .option(config::OPT_TLS_CLIENT_AUTH)
        .option(config::OPT_AMQP_URL)
        .option(config::OPT_AMQP_EXCHANGE)
        .rpcmethod_from_builder(
            RpcMethodBuilder::new(plugin_methods::REGISTER_PATH, plugin_methods::register_path)
                .description("Publish a REST route that calls an RPC method")
                .usage(plugin_methods::REGISTER_PATH_USAGE),
        )
        .rpcmethod_from_builder(
            RpcMethodBuilder::new(plugin_methods::LIST_PATHS, plugin_methods::list_paths)
                .description("List the REST routes plugins registered"),
        )
        .rpcmethod_from_builder(connect.rpc_method())
        .rpcmethod_from_builder(
            RpcMethodBuilder::new(webhook_methods::ADD, webhook_methods::add)
                .description("Add a webhook: notifications POSTed, signed, to a URL")
                .usage(webhook_methods::ADD_USAGE),
        )
        .rpcmethod_from_builder(
            RpcMethodBuilder::new(webhook_methods::LIST, webhook_methods::list)
                .description("List webhooks and their delivery status"),
        )
        .rpcmethod_from_builder(
            RpcMethodBuilder::new(webhook_methods::REMOVE, webhook_methods::remove)
                .description("Remove a webhook and its pending deliveries")
                .usage(webhook_methods::REMOVE_USAGE),
        )
        .subscribe("*", notifications::on_notification);

    // `None`: lightningd only wanted the manifest (e.g. `lightningd --help`).
    let Some(configured) = builder.configure().await? else {
        return exit(&frames, 0).await;
    };

    let configuration = configured.configuration();
    let lightning_dir = PathBuf::from(&configuration.lightning_dir);
    let prepared = Config::validate(RawOptions::from_plugin(&configured)?)
        .map_err(StartError::from)
        .and_then(|config| {
            BoundServer::prepare(&config, &lightning_dir).map(|bound| (config, bound))
        });
    let (config, bound) = match prepared {
        Ok(prepared) => prepared,
        Err(refusal) => {
            // lightningd logs the reason only at debug level: say it where operators look.
            let reason = refusal.to_string();
            if refusal.is_unconfigured() {
                tracing::info!("not starting: {reason}");
            } else {
                tracing::warn!("not starting: {reason}");
            }
            configured.disable(&reason).await?;
            return exit(&frames, 0).await;
        }
    };

    connect.configure(&config, &lightning_dir);
    let rpc = LightningRpc::new(lightning_dir.join(&configuration.rpc_file));
    let state = AppState::new(rpc, &config.swagger_root);
    let app = server::router(state.clone(), &config);
    bound.report_connections_to(&state);
    let plugin = configured.start(state.clone()).await?;
    tokio::spawn(
        state
            .listeners()
            .clone()
            .revocation_loop(state.rpc_handle()),
    );
    tokio::spawn(notifications::describe_api(state.clone()));
    tokio::spawn(webhooks::start(state.clone(), lightning_dir.clone()));
    if let Some(amqp) = config.amqp.clone() {
        broker::start(state.clone(), amqp);
    }
    tokio::spawn(memory::trim_periodically());

    let handle = axum_server::Handle::new();
    let serving = tokio::spawn(bound.serve(app, handle.clone()));
    tracing::info!("REST server running at {}", config.url());

    tokio::select! {
        _ = plugin.join() => tracing::debug!("lightningd closed our stdin"),
        _ = state.shutdown_requested() => {}
    }
    if !state.listeners().is_empty() {
        // Long-polling Socket.IO clients need one more request to fetch the last
        // notifications (shutdown included): keep listening a moment for it.
        tokio::time::sleep(server::LISTENER_DRAIN).await;
    }
    handle.graceful_shutdown(Some(server::SHUTDOWN_GRACE));
    let _ =
        tokio::time::timeout(server::SHUTDOWN_GRACE + Duration::from_millis(100), serving).await;
    exit(&frames, 0).await
}

/// Flushes pending output and exits, without waiting for the blocked stdin reader.
async fn exit(frames: &FrameSender, code: i32) -> anyhow::Result<()> {
    frames.flush(Duration::from_millis(100)).await;
    std::process::exit(code)
}
