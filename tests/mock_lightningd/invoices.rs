//! The node's invoices: what `invoice` creates, `listinvoices` lists and `waitanyinvoice` /
//! `waitinvoice` wait for, plus the test hooks that fill and pay them.
//!
//! Shapes follow invoice.json and listinvoices.json. The bolt11 strings only look like
//! bolt11 (right prefix and amount, pseudo-random data) and payment hashes are not the
//! SHA-256 of the preimage.

use super::jsonrpc::{
    RpcError, INVOICE_EXPIRED_DURING_WAIT, INVOICE_LABEL_ALREADY_EXISTS, INVOICE_WAIT_TIMED_OUT,
    LIGHTNINGD,
};
use super::random::Random;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The warning a lone node adds to every invoice (invoice.json).
pub const WARNING_CAPACITY: &str = "Insufficient incoming channel capacity to pay invoice";

/// Default `expiry`: one week (invoice.json: `expires_at` is 604800 s after creation).
pub const DEFAULT_EXPIRY_SECS: u64 = 604_800;

const BECH32_CHARS: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What `invoice` was asked to create.
pub struct NewInvoice {
    pub label: String,
    /// `None` for `"any"`.
    pub amount_msat: Option<u64>,
    pub description: String,
    pub expiry_secs: u64,
    pub preimage: Option<String>,
}

struct Invoice {
    label: String,
    bolt11: String,
    payment_hash: String,
    payment_secret: String,
    preimage: String,
    amount_msat: Option<u64>,
    description: String,
    expires_at: u64,
    created_index: u64,
    paid: Option<Payment>,
}

struct Payment {
    pay_index: u64,
    updated_index: u64,
    amount_received_msat: u64,
    paid_at: u64,
}

impl Invoice {
    fn status(&self, now: u64) -> &'static str {
        match self.paid {
            Some(_) => "paid",
            None if now > self.expires_at => "expired",
            None => "unpaid",
        }
    }

    /// An entry as listinvoices.json shows it, members in lightningd's order (the order of
    /// the paid-only members is not captured in the fixtures).
    fn to_json(&self, now: u64) -> Value {
        let mut entry = Map::new();
        entry.insert("label".into(), json!(self.label));
        entry.insert("bolt11".into(), json!(self.bolt11));
        entry.insert("payment_hash".into(), json!(self.payment_hash));
        if let Some(amount) = self.amount_msat {
            entry.insert("amount_msat".into(), json!(amount));
        }
        entry.insert("status".into(), json!(self.status(now)));
        if let Some(payment) = &self.paid {
            entry.insert("pay_index".into(), json!(payment.pay_index));
            entry.insert(
                "amount_received_msat".into(),
                json!(payment.amount_received_msat),
            );
            entry.insert("paid_at".into(), json!(payment.paid_at));
            entry.insert("payment_preimage".into(), json!(self.preimage));
        }
        entry.insert("description".into(), json!(self.description));
        entry.insert("expires_at".into(), json!(self.expires_at));
        entry.insert("created_index".into(), json!(self.created_index));
        if let Some(payment) = &self.paid {
            entry.insert("updated_index".into(), json!(payment.updated_index));
        }
        Value::Object(entry)
    }
}

/// Which invoices `listinvoices` returns.
#[derive(Default)]
pub struct InvoiceQuery {
    pub label: Option<String>,
    pub invstring: Option<String>,
    pub payment_hash: Option<String>,
    /// Bolt12 offers do not exist here: any `offer_id` matches nothing.
    pub offer_id: Option<String>,
    /// `"created"` or `"updated"`.
    pub index: Option<String>,
    pub start: Option<u64>,
    pub limit: Option<u64>,
}

/// The invoices in creation order, with the unique index on `label` that lightningd's
/// database has: finding a label does not scan every invoice (a long soak creates tens of
/// thousands of them).
#[derive(Default)]
struct Invoices {
    all: Vec<Invoice>,
    by_label: HashMap<String, usize>,
}

impl Invoices {
    fn push(&mut self, invoice: Invoice) {
        self.by_label.insert(invoice.label.clone(), self.all.len());
        self.all.push(invoice);
    }

    fn by_label(&self, label: &str) -> Option<&Invoice> {
        self.all.get(*self.by_label.get(label)?)
    }
}

/// All invoices, with a change signal for the waiting calls.
pub struct InvoiceStore {
    invoices: Mutex<Invoices>,
    changes: watch::Sender<u64>,
}

impl Default for InvoiceStore {
    fn default() -> Self {
        InvoiceStore {
            invoices: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }
}

impl InvoiceStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Invoices> {
        self.invoices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `invoice`: the result of invoice.json, or `900` "Duplicate label '<label>'"
    /// (invoice-duplicate-label.json). Also returns the `invoice_creation` payload.
    pub fn create(&self, new: NewInvoice, random: &Random) -> Result<(Value, Value), RpcError> {
        let mut invoices = self.lock();
        if invoices.by_label(&new.label).is_some() {
            return Err(RpcError::new(
                INVOICE_LABEL_ALREADY_EXISTS,
                format!("Duplicate label '{}'", new.label),
            ));
        }
        let invoice = Invoice {
            bolt11: fake_bolt11(new.amount_msat, random),
            payment_hash: random.hex32(),
            payment_secret: random.hex32(),
            preimage: new.preimage.unwrap_or_else(|| random.hex32()),
            expires_at: unix_now() + new.expiry_secs,
            created_index: invoices.all.len() as u64 + 1,
            label: new.label,
            amount_msat: new.amount_msat,
            description: new.description,
            paid: None,
        };
        let result = json!({
            "payment_hash": invoice.payment_hash,
            "expires_at": invoice.expires_at,
            "bolt11": invoice.bolt11,
            "payment_secret": invoice.payment_secret,
            "created_index": invoice.created_index,
            "warning_capacity": WARNING_CAPACITY,
        });
        // notifications/invoice_creation.json (`msat` absent for "any": not captured).
        let mut creation = Map::new();
        if let Some(amount) = invoice.amount_msat {
            creation.insert("msat".into(), json!(amount));
        }
        creation.insert("preimage".into(), json!(invoice.preimage));
        creation.insert("label".into(), json!(invoice.label));
        let creation = Value::Object(creation);
        invoices.push(invoice);
        drop(invoices);
        self.changes.send_modify(|n| *n += 1);
        Ok((result, creation))
    }

    /// Test hook: `count` unpaid invoices labelled `synthetic-<created_index>`, quickly.
    pub fn add_synthetic(&self, count: usize, random: &Random) {
        let mut invoices = self.lock();
        let expires_at = unix_now() + DEFAULT_EXPIRY_SECS;
        for _ in 0..count {
            let created_index = invoices.all.len() as u64 + 1;
            invoices.push(Invoice {
                label: format!("synthetic-{created_index}"),
                bolt11: fake_bolt11(Some(1000 * created_index), random),
                payment_hash: random.hex32(),
                payment_secret: random.hex32(),
                preimage: random.hex32(),
                amount_msat: Some(1000 * created_index),
                description: format!("synthetic invoice {created_index}"),
                expires_at,
                created_index,
                paid: None,
            });
        }
        drop(invoices);
        self.changes.send_modify(|n| *n += 1);
    }

    /// `listinvoices`: `{"invoices":[...]}`.
    pub fn list(&self, query: &InvoiceQuery) -> Value {
        let now = unix_now();
        let invoices = self.lock();
        let limit = query.limit.map_or(usize::MAX, |l| l as usize);
        let candidates: &[Invoice] = match &query.label {
            Some(label) => invoices.by_label(label).map_or(&[], std::slice::from_ref),
            None => &invoices.all,
        };
        let selected: Vec<Value> = candidates
            .iter()
            .filter(|i| query.invstring.as_ref().is_none_or(|s| *s == i.bolt11))
            .filter(|i| {
                query
                    .payment_hash
                    .as_ref()
                    .is_none_or(|h| *h == i.payment_hash)
            })
            .filter(|_| query.offer_id.is_none())
            .filter(|i| match (query.index.as_deref(), query.start) {
                (Some("updated"), start) => i
                    .paid
                    .as_ref()
                    .is_some_and(|p| p.updated_index >= start.unwrap_or(0)),
                (_, Some(start)) => i.created_index >= start,
                _ => true,
            })
            .take(limit)
            .map(|i| i.to_json(now))
            .collect();
        json!({ "invoices": selected })
    }

    /// Test hook: marks the unpaid invoice `label` paid and returns the
    /// `invoice_payment` payload (notifications/invoice_payment.json), or `None`.
    pub fn pay(&self, label: &str) -> Option<Value> {
        let mut invoices = self.lock();
        let pay_index = invoices.all.iter().filter(|i| i.paid.is_some()).count() as u64 + 1;
        let position = *invoices.by_label.get(label)?;
        let invoice = invoices
            .all
            .get_mut(position)
            .filter(|i| i.paid.is_none())?;
        let amount = invoice.amount_msat.unwrap_or(1000);
        invoice.paid = Some(Payment {
            pay_index,
            updated_index: pay_index,
            amount_received_msat: amount,
            paid_at: unix_now(),
        });
        let payload = json!({"msat": amount, "preimage": invoice.preimage, "label": invoice.label});
        drop(invoices);
        self.changes.send_modify(|n| *n += 1);
        Some(payload)
    }

    /// `waitanyinvoice`: the paid invoice with the lowest `pay_index` above
    /// `lastpay_index`, waiting for one up to `timeout`.
    pub async fn wait_any(
        &self,
        lastpay_index: u64,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut changes = self.changes.subscribe();
        loop {
            {
                let now = unix_now();
                let invoices = self.lock();
                let next = invoices
                    .all
                    .iter()
                    .filter(|i| i.paid.as_ref().is_some_and(|p| p.pay_index > lastpay_index))
                    .min_by_key(|i| i.paid.as_ref().map(|p| p.pay_index));
                if let Some(invoice) = next {
                    return Ok(invoice.to_json(now));
                }
            }
            // Not captured in the fixtures.
            let timed_out = || RpcError::new(INVOICE_WAIT_TIMED_OUT, "Timed out while waiting");
            match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, changes.changed()).await {
                        Ok(Ok(())) => {}
                        _ => return Err(timed_out()),
                    }
                }
                None => {
                    if changes.changed().await.is_err() {
                        return Err(timed_out());
                    }
                }
            }
        }
    }

    /// `waitinvoice`: waits until invoice `label` is paid (or expires).
    pub async fn wait(&self, label: &str) -> Result<Value, RpcError> {
        let mut changes = self.changes.subscribe();
        loop {
            let expires_at = {
                let now = unix_now();
                let invoices = self.lock();
                let Some(invoice) = invoices.by_label(label) else {
                    // Not captured in the fixtures.
                    return Err(RpcError::new(LIGHTNINGD, "Label not found"));
                };
                match invoice.status(now) {
                    "paid" => return Ok(invoice.to_json(now)),
                    "expired" => {
                        // Not captured in the fixtures.
                        return Err(RpcError::new(
                            INVOICE_EXPIRED_DURING_WAIT,
                            "invoice expired during wait",
                        ));
                    }
                    _ => invoice.expires_at,
                }
            };
            let until_expiry = Duration::from_secs(expires_at.saturating_sub(unix_now()) + 1);
            // On expiry (or a change) the loop looks again.
            let _ = tokio::time::timeout(until_expiry, changes.changed()).await;
        }
    }
}

/// Something shaped like a regtest bolt11: `lnbcrt<amount>1<data>`.
fn fake_bolt11(amount_msat: Option<u64>, random: &Random) -> String {
    let amount = match amount_msat {
        None => String::new(),
        Some(msat) if msat.is_multiple_of(100) => format!("{}n", msat / 100),
        Some(msat) => format!("{}p", u128::from(msat) * 10),
    };
    let data: String = (0..300)
        .map(|_| BECH32_CHARS[(random.next_u64() % 32) as usize] as char)
        .collect();
    format!("lnbcrt{amount}1{data}")
}
