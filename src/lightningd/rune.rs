//! Runes, CLN's bearer tokens: asking lightningd's `checkrune` whether a rune allows a call,
//! and reading a rune's unique id so logs can name a rune without revealing it.
//!
//! Only `checkrune` decides. We always pass `method` (without it lightningd skips method
//! restrictions) and exactly the params the method will receive.

use crate::lightningd::rpc::{LightningRpc, RpcError, RpcErrorObject};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Length of the hash that starts every decoded rune.
const RUNE_HASH_LEN: usize = 32;
/// Longest unique id we are willing to print.
const MAX_UNIQUE_ID_LEN: usize = 32;

/// The rune's unique id, read from the rune itself: base64url, a 32-byte hash, then the
/// restrictions, the first of which is `=<unique_id>`. `None` for anything else.
pub fn unique_id(rune: &str) -> Option<String> {
    with_restrictions(rune, unique_id_of)?
}

/// Whether the rune carries a `rate` restriction, for which lightningd counts every accepted
/// `checkrune` (the next one within 60/N seconds is refused "too soon"). `false` for a rune
/// that does not decode.
pub fn has_rate_limit(rune: &str) -> bool {
    with_restrictions(rune, |restrictions| {
        // Restrictions are `&`-separated, alternatives `|`-separated (`\` escapes either);
        // a field name is what comes before the condition. Reading too much as a field name
        // only makes us careful with a rune that has no rate.
        restrictions
            .split(|b| *b == b'&' || *b == b'|')
            .any(|alternative| alternative.starts_with(b"rate"))
    })
    .unwrap_or(false)
}

/// Calls `read` with the rune's restriction bytes (after the hash), if it decodes.
fn with_restrictions<T>(rune: &str, read: impl FnOnce(&[u8]) -> T) -> Option<T> {
    let trimmed = rune.trim_end_matches('=');
    // A rune long enough to hide a request body is not a rune; do not decode it.
    if trimmed.len() > 16 * 1024 {
        return None;
    }
    // Runes are short: decode on the stack, and allocate only for a long one.
    let mut small = [0u8; 256];
    let heap;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decoded = match engine.decode_slice(trimmed, &mut small) {
        Ok(len) => &small[..len],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = engine.decode(trimmed).ok()?;
            &heap[..]
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return None,
    };
    Some(read(decoded.get(RUNE_HASH_LEN..)?))
}

/// The unique id at the start of a rune's restrictions.
fn unique_id_of(restrictions: &[u8]) -> Option<String> {
    let rest = restrictions.strip_prefix(b"=")?;
    let end = rest.iter().position(|b| *b == b'&').unwrap_or(rest.len());
    let id = std::str::from_utf8(&rest[..end]).ok()?;
    let printable = !id.is_empty()
        && id.len() <= MAX_UNIQUE_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    printable.then(|| id.to_string())
}

/// How a rune is named in logs: its unique id, never the rune.
pub fn log_name(rune: &str) -> String {
    LogName(rune).to_string()
}

/// [`log_name`] as it is formatted, without building the string first.
struct LogName<'a>(&'a str);

impl std::fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match unique_id(self.0) {
            Some(id) => write!(f, "rune #{id}"),
            None => f.write_str("an undecodable rune"),
        }
    }
}

/// At most the first `chars` characters of `text`.
fn prefix(text: &str, chars: usize) -> &str {
    let end = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

#[derive(Serialize)]
struct CheckRune<'a> {
    rune: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nodeid: Option<&'a str>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

/// Why a rune check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum RuneError {
    /// lightningd's `checkrune` refused the rune; its error object, unchanged.
    #[error("rune refused by lightningd: {}", .0.message())]
    Refused(RpcErrorObject),
    /// lightningd could not be asked.
    #[error("lightningd is unreachable: {0}")]
    Unreachable(String),
}

/// Asks lightningd whether `rune` may call `method` with `params`. A refusal is
/// [`RuneError::Refused`] carrying lightningd's error unchanged.
pub async fn check(
    rpc: &LightningRpc,
    rune: &str,
    method: &str,
    params: Option<&Value>,
) -> Result<(), RuneError> {
    check_as(rpc, rune, None, method, params).await
}

/// Like [`check`], also naming the node id the rune is checked for (routes registered by
/// plugins may ask for one).
pub async fn check_as(
    rpc: &LightningRpc,
    rune: &str,
    nodeid: Option<&str>,
    method: &str,
    params: Option<&Value>,
) -> Result<(), RuneError> {
    let request = CheckRune {
        rune,
        nodeid,
        method,
        params,
    };
    match rpc.call("checkrune", &request).await {
        Ok(_) => {
            tracing::debug!("authorized {} for {}", LogName(rune), prefix(method, 128));
            Ok(())
        }
        Err(RpcError::Lightningd(error)) => {
            // Operators must see who is knocking: the rune by its unique id, never itself.
            tracing::info!(
                "refused {} for {}: {}",
                LogName(rune),
                prefix(method, 128),
                prefix(&error.message(), 512)
            );
            Err(RuneError::Refused(error))
        }
        Err(RpcError::Unreachable(reason)) => Err(RuneError::Unreachable(reason)),
    }
}

/// lightningd's refusal of a rate-limited rune used again within 60/N seconds (v26.06). It
/// passes by itself: no reason to cut off a listener.
pub const TOO_SOON: &str = "Not permitted: too soon";

/// Whether `showrunes` gives a reason to think lightningd would now refuse `rune` for good:
/// blacklisted, no longer stored (destroyed), or past every `time<` alternative of one of
/// its restrictions. It spends nothing, unlike an accepted `checkrune` of a rate-limited rune;
/// when it says yes, `checkrune` still decides (a refused check spends nothing either).
pub async fn may_be_revoked(rpc: &LightningRpc, rune: &str) -> Result<bool, RuneError> {
    #[derive(Deserialize)]
    struct ShowRunes {
        runes: Vec<Shown>,
    }
    #[derive(Deserialize)]
    struct Shown {
        #[serde(default)]
        blacklisted: bool,
        stored: Option<bool>,
        #[serde(default)]
        restrictions: Vec<Restriction>,
    }
    #[derive(Deserialize)]
    struct Restriction {
        alternatives: Vec<Alternative>,
    }
    #[derive(Deserialize)]
    struct Alternative {
        fieldname: String,
        condition: String,
        value: String,
    }
    let shown = match rpc
        .call("showrunes", &serde_json::json!({ "rune": rune }))
        .await
    {
        Ok(result) => result.decode::<ShowRunes>().ok(),
        // A rune lightningd cannot show: let checkrune say why.
        Err(RpcError::Lightningd(_)) => None,
        Err(RpcError::Unreachable(reason)) => return Err(RuneError::Unreachable(reason)),
    };
    let Some(shown) = shown.and_then(|s| s.runes.into_iter().next()) else {
        return Ok(true);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expired = shown.restrictions.iter().any(|restriction| {
        !restriction.alternatives.is_empty()
            && restriction.alternatives.iter().all(|a| {
                a.fieldname == "time"
                    && a.condition == "<"
                    && a.value.parse::<u64>().is_ok_and(|until| until <= now)
            })
    });
    Ok(shown.blacklisted || shown.stored == Some(false) || expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_rate_limited_runes_apart() {
        // `createrune restrictions='[["rate=2"],["time<9999999999"]]'` on lightningd v26.06.
        let rated = "fexFW0Wp5cv0triTVxHstVfIJYb4DumNpR82mjSWW3c9MCZyYXRlPTImdGltZTw5OTk5OTk5OTk5";
        assert!(has_rate_limit(rated));
        // tests/fixtures/rpc/createrune-{unrestricted,readonly}.json
        assert!(!has_rate_limit(
            "no4hXDNwOAyCrHAZwPWrH122pGX496KITV1SvHo4n709MA=="
        ));
        assert!(!has_rate_limit("nowPW9BDwyNCu19gSs7H828oyiz7rez03BHvhApdEck9MiZtZXRob2RebGlzdHxtZXRob2ReZ2V0fG1ldGhvZD1zdW1tYXJ5Jm1ldGhvZC9saXN0ZGF0YXN0b3Jl"));
        assert!(!has_rate_limit("garbage"));
    }

    #[test]
    fn reads_unique_ids_of_real_runes() {
        // From tests/fixtures/rpc/createrune-*.json
        assert_eq!(
            unique_id("no4hXDNwOAyCrHAZwPWrH122pGX496KITV1SvHo4n709MA==").as_deref(),
            Some("0")
        );
        assert_eq!(
            unique_id("GQN25lPqAMpQK3B6rIb5yBjcn2RVJQlnGwbH7PBL0eo9MSZtZXRob2Q9aW52b2ljZQ==")
                .as_deref(),
            Some("1")
        );
        assert_eq!(
            unique_id("nowPW9BDwyNCu19gSs7H828oyiz7rez03BHvhApdEck9MiZtZXRob2RebGlzdHxtZXRob2ReZ2V0fG1ldGhvZD1zdW1tYXJ5Jm1ldGhvZC9saXN0ZGF0YXN0b3Jl")
                .as_deref(),
            Some("2")
        );
    }

    #[test]
    fn long_runes_are_decoded_too() {
        let mut bytes = vec![7u8; 32];
        bytes.extend_from_slice(b"=42&");
        bytes.extend_from_slice(&[b'x'; 1000]);
        let rune = base64::engine::general_purpose::URL_SAFE.encode(bytes);
        assert_eq!(unique_id(&rune).as_deref(), Some("42"));
        let mut broken = rune.clone();
        broken.insert(rune.len() - 10, '!');
        assert_eq!(unique_id(&broken), None);
    }

    #[test]
    fn method_names_are_cut_at_128_characters() {
        assert_eq!(prefix("getinfo", 128), "getinfo");
        let long = "é".repeat(200);
        assert_eq!(prefix(&long, 128).chars().count(), 128);
    }

    #[test]
    fn garbage_has_no_unique_id() {
        assert_eq!(unique_id("this-is-not-a-rune!"), None);
        assert_eq!(unique_id(""), None);
        assert_eq!(unique_id("AAAA"), None);
        assert_eq!(log_name("this-is-not-a-rune!"), "an undecodable rune");
    }

    proptest::proptest! {
        #[test]
        fn unique_id_never_panics(rune in ".*") {
            let _ = unique_id(&rune);
        }

        #[test]
        fn unique_id_reads_any_well_formed_rune(hash in proptest::collection::vec(proptest::num::u8::ANY, 32), id in "[0-9]{1,10}", rest in "(&[a-z]+=[a-z]+)?") {
            let mut bytes = hash;
            bytes.extend_from_slice(format!("={id}{rest}").as_bytes());
            let rune = base64::engine::general_purpose::URL_SAFE.encode(bytes);
            proptest::prop_assert_eq!(unique_id(&rune), Some(id));
        }
    }
}
