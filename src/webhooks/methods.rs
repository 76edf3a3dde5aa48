//! `clnrest-webhook-add`, `clnrest-webhook-list` and `clnrest-webhook-remove`: for the node's
//! operator (lightning-cli, other plugins), never through REST (they are in
//! `FOR_PLUGINS_ONLY`: a rune allowing them would let a REST client send the node's
//! notifications anywhere).

use super::signature;
use super::store::EndpointConfig;
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ADD: &str = "clnrest-webhook-add";
pub const LIST: &str = "clnrest-webhook-list";
pub const REMOVE: &str = "clnrest-webhook-remove";
pub const ADD_USAGE: &str = "url [topics] [allow_http]";
pub const REMOVE_USAGE: &str = "id";

/// Whether `method` is one of the three above (for the operator: `lightning-cli`).
pub fn is_webhook_method(method: &str) -> bool {
    [ADD, LIST, REMOVE].contains(&method)
}

/// lightningd's code for invalid params.
const INVALID_PARAMS: i64 = -32602;
/// Our code for a failure that is not the caller's.
const FAILED: i64 = -1;
/// Longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// Most topics in a filter, and longest topic.
const MAX_TOPICS: usize = 256;
const MAX_TOPIC_LEN: usize = 128;

/// A JSON-RPC error object that cln-plugin passes on as it is.
fn error(code: i64, message: impl std::fmt::Display) -> cln_plugin::Error {
    cln_plugin::anyhow!(json!({"code": code, "message": message.to_string()}).to_string())
}

/// Named params from an object, or positional ones from an array in `order`.
fn named(params: &Value, order: &[&str]) -> Result<Map<String, Value>, cln_plugin::Error> {
    let map: Map<String, Value> = match params {
        Value::Object(map) => map.clone(),
        Value::Array(items) if items.len() <= order.len() => order
            .iter()
            .zip(items)
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        Value::Array(_) => return Err(error(INVALID_PARAMS, "too many parameters")),
        Value::Null => Map::new(),
        _ => {
            return Err(error(
                INVALID_PARAMS,
                "params must be an object or an array",
            ))
        }
    };
    if let Some(unknown) = map.keys().find(|k| !order.contains(&k.as_str())) {
        return Err(error(
            INVALID_PARAMS,
            format!("unknown parameter {unknown}"),
        ));
    }
    Ok(map)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `clnrest-webhook-add url [topics] [allow_http]`: `{id, url, topics, allow_http, secret}`;
/// the secret is never shown again.
pub async fn add(
    plugin: cln_plugin::Plugin<AppState>,
    params: Value,
) -> Result<Value, cln_plugin::Error> {
    let params = named(&params, &["url", "topics", "allow_http"])?;
    let allow_http = match params.get("allow_http") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(allow)) => *allow,
        Some(_) => return Err(error(INVALID_PARAMS, "allow_http must be true or false")),
    };
    let url = match params.get("url") {
        Some(Value::String(url)) => {
            check_url(url, allow_http).map_err(|e| error(INVALID_PARAMS, e))?
        }
        Some(_) => return Err(error(INVALID_PARAMS, "url must be a string")),
        None => return Err(error(INVALID_PARAMS, "missing required parameter: url")),
    };
    let topics = match params.get("topics") {
        None | Some(Value::Null) => None,
        Some(topics) => Some(check_topics(topics).map_err(|e| error(INVALID_PARAMS, e))?),
    };
    let config = EndpointConfig {
        id: hex(&signature::random_bytes::<8>()),
        url,
        topics,
        allow_http,
        secret: signature::new_secret(),
        created_at: now(),
    };
    let state = plugin.state();
    state
        .webhooks()
        .add(state, config.clone())
        .await
        .map_err(|e| error(FAILED, format!("cannot add the webhook: {e}")))?;
    // The host only: a URL may carry a token.
    let host = config
        .url
        .parse::<http::Uri>()
        .ok()
        .and_then(|url| url.host().map(str::to_string))
        .unwrap_or_default();
    tracing::info!("webhook {} added, delivering to {host}", config.id);
    Ok(json!({
        "id": config.id,
        "url": config.url,
        "topics": config.topics,
        "allow_http": config.allow_http,
        "created_at": config.created_at,
        "secret": config.secret,
    }))
}

/// `clnrest-webhook-list`: `{"webhooks": [...]}`, without secrets.
pub async fn list(
    plugin: cln_plugin::Plugin<AppState>,
    params: Value,
) -> Result<Value, cln_plugin::Error> {
    named(&params, &[])?;
    let endpoints = plugin
        .state()
        .webhooks()
        .endpoints()
        .await
        .map_err(|e| error(FAILED, e))?;
    let listed: Vec<Value> = endpoints
        .iter()
        .map(|endpoint| {
            let config = &endpoint.config;
            let status = endpoint.status();
            let (pending, pending_bytes, dropped) = endpoint.backlog();
            let state = if status.failing {
                "failing"
            } else if status.attempts > 0 {
                "retrying"
            } else {
                "ok"
            };
            json!({
                "id": config.id,
                "url": config.url,
                "topics": config.topics,
                "allow_http": config.allow_http,
                "created_at": config.created_at,
                "status": state,
                "pending": pending,
                "pending_bytes": pending_bytes,
                "dropped": dropped,
                "attempts": status.attempts,
                "last_error": status.last_error,
                "last_acked": status.last_acked,
            })
        })
        .collect();
    Ok(json!({ "webhooks": listed }))
}

/// `clnrest-webhook-remove id`: `{"id": ...}`; its pending deliveries are dropped.
pub async fn remove(
    plugin: cln_plugin::Plugin<AppState>,
    params: Value,
) -> Result<Value, cln_plugin::Error> {
    let params = named(&params, &["id"])?;
    let Some(Value::String(id)) = params.get("id") else {
        return Err(error(INVALID_PARAMS, "id must be a webhook id (a string)"));
    };
    let state = plugin.state();
    match state.webhooks().remove(state, id).await {
        Ok(true) => {
            tracing::info!("webhook {id} removed");
            Ok(json!({ "id": id }))
        }
        Ok(false) => Err(error(INVALID_PARAMS, format!("no webhook {id}"))),
        Err(e) => Err(error(FAILED, format!("cannot remove webhook {id}: {e}"))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The URL as it will be called: `https://...`, or `http://...` with `allow_http` to a
/// loopback or private address or a local name.
pub fn check_url(text: &str, allow_http: bool) -> Result<String, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("url is longer than {MAX_URL_LEN} characters"));
    }
    let url: http::Uri = text.parse().map_err(|e| format!("url is not a URL: {e}"))?;
    let host = url
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("url has no host")?
        .to_ascii_lowercase();
    let Some(scheme) = url.scheme_str() else {
        return Err("url must start with https://".into());
    };
    match scheme {
        "https" => {}
        "http" if !allow_http => {
            return Err(
                "url must be https (http is allowed with allow_http=true, to a loopback or \
                 private address or a local name only)"
                    .into(),
            )
        }
        "http" if is_local(&host) => {}
        "http" => {
            return Err(format!(
                "http is allowed to a loopback or private address or a local name only, not \
                 {host}"
            ))
        }
        other => return Err(format!("url must be https, not {other}")),
    }
    Ok(url.to_string())
}

/// Loopback, private (RFC 1918, IPv6 unique local), link-local, or a name that only means
/// something on the local network (`localhost`, `.local`, `.lan`, `.internal`, `.home.arpa`).
/// `host` in lower case, an IPv6 address in brackets (a name with non-ASCII letters does not
/// parse as a URL: it is written in its `xn--` form).
fn is_local(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_local_ip(ip);
    }
    let name = host.trim_end_matches('.');
    name == "localhost"
        || [".localhost", ".local", ".lan", ".internal", ".home.arpa"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => local_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return local_v4(v4);
            }
            let first = ip.segments()[0];
            ip == Ipv6Addr::LOCALHOST || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

fn local_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_private() || ip.is_link_local()
}

fn check_topics(topics: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = topics else {
        return Err("topics must be a list of notification topics".into());
    };
    if items.is_empty() {
        return Err("topics must not be empty (leave it out for every topic)".into());
    }
    if items.len() > MAX_TOPICS {
        return Err(format!("topics has more than {MAX_TOPICS} entries"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(topic) if !topic.is_empty() && topic.len() <= MAX_TOPIC_LEN => {
                Ok(topic.clone())
            }
            _ => Err(format!(
                "each topic must be a non-empty string of at most {MAX_TOPIC_LEN} bytes"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_when_allowed_and_local() {
        assert!(check_url("https://example.com/hook", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/hook", false).is_err());
        for local in [
            "http://127.0.0.1:8080/hook",
            "http://10.1.2.3/",
            "http://192.168.1.5/x",
            "http://172.16.0.1/",
            "http://[::1]:9000/",
            "http://[fd00::1]/",
            "http://localhost/",
            "http://shop.lan/",
            "http://box.local./x",
        ] {
            assert!(check_url(local, true).is_ok(), "{local}");
        }
        for remote in [
            "http://8.8.8.8/",
            "http://example.com/",
            "http://[2001:db8::1]/",
            "http://172.32.0.1/",
        ] {
            assert!(check_url(remote, true).is_err(), "{remote}");
        }
        for bad in ["ftp://example.com/", "not a url", "file:///etc/passwd"] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn topics_are_a_non_empty_list_of_strings() {
        assert_eq!(
            check_topics(&json!(["invoice_payment", "shutdown"])).unwrap(),
            ["invoice_payment", "shutdown"]
        );
        for bad in [json!([]), json!("invoice_payment"), json!([1]), json!([""])] {
            assert!(check_topics(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn params_by_name_or_position() {
        let order = ["url", "topics", "allow_http"];
        let by_position = named(&json!(["https://x", null, true]), &order).unwrap();
        assert_eq!(by_position.get("url"), Some(&json!("https://x")));
        assert_eq!(by_position.get("topics"), None);
        assert_eq!(by_position.get("allow_http"), Some(&json!(true)));
        assert!(named(&json!({"uri": "x"}), &order).is_err());
        assert!(named(&json!([1, 2, 3, 4]), &order).is_err());
    }
}
