//! REST: tasks sending a mix of requests, every answer checked.

use crate::shared::{Rng, Shared, Source};
use crate::socketio::excerpt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One REST request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The method the restricted rune allows; it is used to call `getinfo`.
pub const RESTRICTED_TO: &str = "invoice";
pub const UNKNOWN_METHOD: &str = "soak-no-such-method";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    Getinfo,
    Invoice,
    ListInvoices,
    RuneForAnotherMethod,
    MissingRune,
    UnknownMethod,
}

/// The mix, by weight out of 1,000. Invoices stay rare: the mock looks labels up by
/// scanning every invoice, so their number must not grow fast over a long run.
pub const MIX: [(Kind, u64); 6] = [
    (Kind::Getinfo, 900),
    (Kind::Invoice, 10),
    (Kind::ListInvoices, 10),
    (Kind::RuneForAnotherMethod, 30),
    (Kind::MissingRune, 30),
    (Kind::UnknownMethod, 20),
];

impl Kind {
    pub fn pick(rng: &mut Rng) -> Kind {
        let total: u64 = MIX.iter().map(|(_, w)| w).sum();
        let mut roll = rng.next_u64() % total;
        for (kind, weight) in MIX {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        Kind::Getinfo
    }

    pub fn describe(self) -> &'static str {
        match self {
            Kind::Getinfo => "`getinfo`",
            Kind::Invoice => "`invoice`, unique label",
            Kind::ListInvoices => "`listinvoices` by label",
            Kind::RuneForAnotherMethod => "`getinfo` with a rune for `invoice` only",
            Kind::MissingRune => "`getinfo` without a rune",
            Kind::UnknownMethod => "unknown method",
        }
    }

    pub fn intended(self) -> &'static str {
        match self {
            Kind::Getinfo => "201, `id`",
            Kind::Invoice => "201, `bolt11`",
            Kind::ListInvoices => "201, the one invoice",
            Kind::RuneForAnotherMethod => "401, code 1502",
            Kind::MissingRune => "403, code 1501",
            Kind::UnknownMethod => "404, code -32601",
        }
    }
}

pub struct Runes {
    pub full: String,
    pub restricted: String,
}

/// What one REST task did.
#[derive(Default)]
pub struct RestResult {
    /// Per kind: requests, and those answered as intended.
    pub by_kind: BTreeMap<Kind, (u64, u64)>,
    /// Per minute slot: latencies in microseconds.
    pub latencies_us: Vec<Vec<u32>>,
}

/// Checks one response against what `kind` should get; `Err` says how it differs.
pub fn check_response(
    kind: Kind,
    status: u16,
    body: &[u8],
    label: Option<&str>,
) -> Result<(), String> {
    let text = || excerpt(&String::from_utf8_lossy(body));
    let error_code = |expected_status: u16, expected_code: i64| {
        if status != expected_status {
            return Err(format!(
                "expected {expected_status}, got {status}: {}",
                text()
            ));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("body not JSON ({e}): {}", text()))?;
        match (value["code"].as_i64(), value["message"].as_str()) {
            (Some(code), Some(_)) if code == expected_code => Ok(()),
            _ => Err(format!(
                "expected code {expected_code} and a message, got {}",
                text()
            )),
        }
    };
    match kind {
        Kind::Getinfo => {
            if status != 201 || memchr::memmem::find(body, b"\"id\":\"").is_none() {
                return Err(format!("expected 201 with `id`, got {status}: {}", text()));
            }
            Ok(())
        }
        Kind::Invoice => {
            let value: Value = serde_json::from_slice(body).unwrap_or_default();
            if status != 201 || !value["bolt11"].is_string() {
                return Err(format!(
                    "expected 201 with `bolt11`, got {status}: {}",
                    text()
                ));
            }
            Ok(())
        }
        Kind::ListInvoices => {
            let value: Value = serde_json::from_slice(body).unwrap_or_default();
            let invoices = value["invoices"].as_array();
            let expected = usize::from(label.is_some());
            let as_intended = status == 201
                && invoices.is_some_and(|list| {
                    list.len() == expected
                        && list
                            .iter()
                            .all(|i| i["label"].as_str() == label && i["bolt11"].is_string())
                });
            if !as_intended {
                return Err(format!(
                    "expected 201 with {expected} invoice(s) labelled {label:?}, got {status}: {}",
                    text()
                ));
            }
            Ok(())
        }
        Kind::RuneForAnotherMethod => error_code(401, 1502),
        Kind::MissingRune => error_code(403, 1501),
        Kind::UnknownMethod => error_code(404, -32601),
    }
}

pub async fn rest_worker(
    id: usize,
    base: String,
    runes: Arc<Runes>,
    seed: u64,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> RestResult {
    let mut result = RestResult {
        latencies_us: vec![Vec::new(); shared.minutes + 1],
        ..RestResult::default()
    };
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            shared.error(Source::Rest, format!("cannot build a client: {e}"));
            return result;
        }
    };
    let mut rng = Rng::new(seed);
    let mut invoices = 0u64;
    // The label of the last invoice this task created, which `listinvoices` asks for.
    let mut last_label: Option<String> = None;
    while !stop.is_cancelled() {
        let kind = Kind::pick(&mut rng);
        let (method, rune, body) = match kind {
            Kind::Getinfo => ("getinfo", Some(&runes.full), json!({})),
            Kind::Invoice => {
                invoices += 1;
                let label = format!("soak-{id}-{invoices}");
                let body = json!({"amount_msat": 1000, "label": label, "description": "soak"});
                ("invoice", Some(&runes.full), body)
            }
            Kind::ListInvoices => {
                let label = last_label
                    .clone()
                    .unwrap_or_else(|| format!("soak-{id}-none"));
                ("listinvoices", Some(&runes.full), json!({ "label": label }))
            }
            Kind::RuneForAnotherMethod => ("getinfo", Some(&runes.restricted), json!({})),
            Kind::MissingRune => ("getinfo", None, json!({})),
            Kind::UnknownMethod => (UNKNOWN_METHOD, Some(&runes.full), json!({})),
        };
        let mut request = client.post(format!("{base}/v1/{method}")).json(&body);
        if let Some(rune) = rune {
            request = request.header("Rune", rune.as_str());
        }
        let started = Instant::now();
        let outcome = async {
            let response = request.send().await.map_err(|e| format!("{e:#}"))?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>((status, bytes))
        };
        let outcome = tokio::select! {
            outcome = outcome => outcome,
            _ = stop.cancelled() => break,
        };
        let minute = shared.minute();
        result.latencies_us[minute]
            .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        shared.count(&shared.rest_requests);
        let label = match kind {
            Kind::ListInvoices => last_label.as_deref(),
            _ => None,
        };
        let checked =
            outcome.and_then(|(status, bytes)| check_response(kind, status, &bytes, label));
        let entry = result.by_kind.entry(kind).or_default();
        entry.0 += 1;
        match checked {
            Ok(()) => {
                entry.1 += 1;
                if kind == Kind::Invoice {
                    last_label = body["label"].as_str().map(str::to_string);
                }
            }
            Err(e) => shared.error(Source::Rest, format!("{}: {e}", kind.describe())),
        }
    }
    result
}
