//! `clnrest-connect`: the connection URL a wallet needs (Zeus and others scan it), in the
//! format Core Lightning's tools standardised on,
//! `clnrest+<protocol>://<host>:<port>?rune=<rune>&certs=<certs>`, and the same URL as a QR
//! code drawn with Unicode blocks for a terminal (docs/api.md, "Connection strings for
//! wallets").
//!
//! `certs` is the base64url encoding (RFC 4648 §5, no padding) of `client-key.pem`,
//! `client.pem` and `ca.pem` of the certificate directory, concatenated in that order, each
//! file's bytes as stored (a newline is added after a file that does not end with one). With
//! `clnrest-protocol=http` the URL has no `certs`.
//!
//! It mints runes, so REST clients never reach it (`plugin_methods::FOR_PLUGINS_ONLY`).

use crate::config::{Config, Protocol};
use crate::state::AppState;
use crate::tls::TlsName;
use crate::tls::{CA_CERT, CLIENT_CERT, CLIENT_KEY};
use base64::Engine;
use cln_plugin::RpcMethodBuilder;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub const CONNECT: &str = "clnrest-connect";
pub const CONNECT_USAGE: &str = "[host] [restrictions] [rune]";
const DESCRIPTION: &str =
    "A clnrest+https:// connection URL for wallets, with a new rune (or the one given) and \
     the client certificates, and the URL as a QR code";

/// The params, in positional order.
const PARAMS: [&str; 3] = ["host", "restrictions", "rune"];
/// lightningd's code for invalid params.
const INVALID_PARAMS: i64 = -32602;
/// Any other failure (certificates unreadable, lightningd refused `createrune`).
const FAILED: i64 = -32603;

/// What a rune may contain unencoded in the URL: base64url and its `=` padding.
const RUNE_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'=');

/// What the method needs from the configuration, set once `init` has accepted it.
#[derive(Clone, Default)]
pub struct ConnectSettings {
    inner: Arc<OnceLock<Settings>>,
}

#[derive(Debug)]
struct Settings {
    protocol: Protocol,
    /// The first `clnrest-tls-extra-name`, else `clnrest-host`, as a URL host.
    default_host: String,
    port: u16,
    certs_dir: PathBuf,
}

impl ConnectSettings {
    /// Records the validated configuration; called once, after `init` was accepted.
    pub fn configure(&self, config: &Config, lightning_dir: &Path) {
        let default_host = config
            .tls_extra_names()
            .first()
            .map(TlsName::url_host)
            .or_else(|| TlsName::parse(&config.host).map(|name| name.url_host()))
            .unwrap_or_else(|| config.host.clone());
        let _ = self.inner.set(Settings {
            protocol: config.protocol,
            default_host,
            port: config.port,
            certs_dir: config.certs_dir_or(lightning_dir),
        });
    }

    /// The `clnrest-connect` method, to register with cln-plugin.
    pub fn rpc_method(&self) -> RpcMethodBuilder<AppState> {
        let settings = self.clone();
        RpcMethodBuilder::new(
            CONNECT,
            move |plugin: cln_plugin::Plugin<AppState>, params: Value| {
                let settings = settings.clone();
                async move {
                    settings
                        .connect(&plugin.state().clone(), params)
                        .await
                        .map_err(|(code, message)| {
                            // cln-plugin turns an error whose text is a JSON error object into
                            // that object.
                            cln_plugin::anyhow!(
                                json!({"code": code, "message": message}).to_string()
                            )
                        })
                }
            },
        )
        .description(DESCRIPTION)
        .usage(CONNECT_USAGE)
    }

    async fn connect(&self, state: &AppState, params: Value) -> Result<Value, (i64, String)> {
        let settings = self
            .inner
            .get()
            .ok_or((FAILED, "clnrest is not configured yet".to_string()))?;
        let params = Params::parse(params)?;
        let (host, port) = match &params.host {
            Some(host) => parse_host(host)?,
            None => (settings.default_host.clone(), None),
        };
        let rune = match params.rune {
            Some(rune) => rune,
            None => create_rune(state, params.restrictions).await?,
        };
        let certs = match settings.protocol {
            Protocol::Https => Some(read_certs(&settings.certs_dir)?),
            Protocol::Http => None,
        };
        let url = connection_url(
            settings.protocol,
            &host,
            port.unwrap_or(settings.port),
            &rune,
            certs.as_deref(),
        );
        let qr = qr_text(&url)?;
        Ok(json!({"url": url, "qr": qr}))
    }
}

/// The params, given by name or by position.
#[derive(Debug, Default)]
struct Params {
    host: Option<String>,
    restrictions: Option<Value>,
    rune: Option<String>,
}

impl Params {
    fn parse(params: Value) -> Result<Params, (i64, String)> {
        let named: Map<String, Value> = match params {
            Value::Object(map) => map,
            Value::Array(values) => {
                if values.len() > PARAMS.len() {
                    return Err(invalid(format!(
                        "too many parameters: {CONNECT} takes {CONNECT_USAGE}"
                    )));
                }
                PARAMS
                    .iter()
                    .zip(values)
                    .map(|(name, value)| (name.to_string(), value))
                    .collect()
            }
            Value::Null => Map::new(),
            _ => return Err(invalid("params must be an object or an array".to_string())),
        };
        let mut parsed = Params::default();
        for (name, value) in named {
            if value.is_null() {
                continue;
            }
            match name.as_str() {
                "host" => parsed.host = Some(string_param("host", value)?),
                "restrictions" => parsed.restrictions = Some(value),
                "rune" => parsed.rune = Some(string_param("rune", value)?),
                other => return Err(invalid(format!("unknown parameter {other}"))),
            }
        }
        if parsed.rune.is_some() && parsed.restrictions.is_some() {
            return Err(invalid(
                "give restrictions (for a new rune) or rune (an existing one), not both"
                    .to_string(),
            ));
        }
        Ok(parsed)
    }
}

fn invalid(message: String) -> (i64, String) {
    (INVALID_PARAMS, message)
}

fn string_param(name: &str, value: Value) -> Result<String, (i64, String)> {
    match value {
        Value::String(text) if !text.is_empty() => Ok(text),
        _ => Err(invalid(format!("{name} must be a non-empty string"))),
    }
}

/// `host` as the URL's host (IPv6 in brackets) and the port it names, if any: an IP address,
/// a DNS name, either followed by `:<port>` (an IPv6 address then in brackets).
fn parse_host(value: &str) -> Result<(String, Option<u16>), (i64, String)> {
    if let Some(name) = TlsName::parse(value) {
        return Ok((name.url_host(), None));
    }
    let refused = || {
        invalid(format!(
            "host {value} is not an IP address or a DNS name (optionally followed by :<port>)"
        ))
    };
    let (name, port) = value.rsplit_once(':').ok_or_else(refused)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(refused)?;
    // An unbracketed IPv6 address before the port would be ambiguous.
    let bracketed_or_no_colon = name.starts_with('[') || !name.contains(':');
    match TlsName::parse(name) {
        Some(name) if bracketed_or_no_colon => Ok((name.url_host(), Some(port))),
        _ => Err(refused()),
    }
}

/// A new rune from lightningd's `createrune`, with `restrictions` passed as given.
async fn create_rune(
    state: &AppState,
    restrictions: Option<Value>,
) -> Result<String, (i64, String)> {
    let params = match restrictions {
        Some(restrictions) => json!({"restrictions": restrictions}),
        None => json!({}),
    };
    #[derive(serde::Deserialize)]
    struct Created {
        rune: String,
    }
    let result = state
        .rpc()
        .call("createrune", &params)
        .await
        .map_err(|e| (FAILED, format!("createrune failed: {e}")))?;
    result
        .decode::<Created>()
        .map(|created| created.rune)
        .map_err(|e| (FAILED, format!("createrune answered without a rune: {e}")))
}

/// `client-key.pem`, `client.pem` and `ca.pem` of `dir`, concatenated in that order, each
/// followed by a newline unless it ends with one.
pub fn read_certs(dir: &Path) -> Result<Vec<u8>, (i64, String)> {
    let mut combined = Vec::new();
    for file in [CLIENT_KEY, CLIENT_CERT, CA_CERT] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| (FAILED, format!("cannot read {}: {e}", path.display())))?;
        combined.extend_from_slice(&bytes);
        if !bytes.ends_with(b"\n") {
            combined.push(b'\n');
        }
    }
    Ok(combined)
}

/// `clnrest+<protocol>://<host>:<port>?rune=<rune>[&certs=<base64url of certs>]`.
pub fn connection_url(
    protocol: Protocol,
    host: &str,
    port: u16,
    rune: &str,
    certs: Option<&[u8]>,
) -> String {
    let mut url = format!(
        "clnrest+{protocol}://{host}:{port}?rune={}",
        utf8_percent_encode(rune, RUNE_KEEP)
    );
    if let Some(certs) = certs {
        url.push_str("&certs=");
        url.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(certs));
    }
    url
}

/// The URL as a QR code (error correction level L, the smallest) in Unicode blocks, two
/// modules per character cell, drawn for a dark terminal: light modules and the quiet zone
/// are `█`/`▀`/`▄`, dark modules are blank.
fn qr_text(url: &str) -> Result<String, (i64, String)> {
    let code = QrCode::with_error_correction_level(url, EcLevel::L).map_err(|e| {
        (
            FAILED,
            format!(
                "the URL ({} bytes) does not fit in a QR code: {e}",
                url.len()
            ),
        )
    })?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_with_and_without_ports() {
        assert_eq!(
            parse_host("node.example.com"),
            Ok(("node.example.com".into(), None))
        );
        assert_eq!(parse_host("::1"), Ok(("[::1]".into(), None)));
        assert_eq!(parse_host("[::1]:443"), Ok(("[::1]".into(), Some(443))));
        assert_eq!(
            parse_host("10.0.0.2:8443"),
            Ok(("10.0.0.2".into(), Some(8443)))
        );
        assert_eq!(
            parse_host("Node.Example.com:443"),
            Ok(("node.example.com".into(), Some(443)))
        );
        for bad in [
            "",
            "a b",
            "x:0",
            "x:70000",
            "http://x",
            "x?y",
            "[::1]:",
            "*.example.com",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn params_by_name_or_position() {
        let p = Params::parse(json!(["h", "readonly"])).unwrap();
        assert_eq!(p.host.as_deref(), Some("h"));
        assert_eq!(p.restrictions, Some(json!("readonly")));
        let p = Params::parse(json!({"rune": "abc"})).unwrap();
        assert_eq!(p.rune.as_deref(), Some("abc"));
        assert!(Params::parse(json!({"rune": "abc", "restrictions": "readonly"})).is_err());
        assert!(Params::parse(json!({"hots": "x"})).is_err());
        assert!(Params::parse(json!([1, 2, 3, 4])).is_err());
        assert!(Params::parse(json!({"host": 3})).is_err());
    }

    #[test]
    fn url_shape() {
        let url = connection_url(Protocol::Http, "h", 3010, "a-b_c==&x", None);
        assert_eq!(url, "clnrest+http://h:3010?rune=a-b_c==%26x");
        let url = connection_url(Protocol::Https, "[::1]", 1, "r", Some(b"\xfb\xff"));
        assert_eq!(url, "clnrest+https://[::1]:1?rune=r&certs=-_8");
    }
}
