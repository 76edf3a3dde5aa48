//! Runes: their text format, the registry of runes this node made, and lightningd's
//! restriction checks (`createrune`, `checkrune`, `showrunes`, `blacklistrune`).
//!
//! Format (fixtures createrune-*.json): base64 URL-safe with padding of 32 authcode bytes
//! followed by the restriction string. The first restriction is the unique id `=<id>`; then
//! `&<restriction>` for each restriction, its alternatives joined with `|`, each alternative
//! `<field><condition><value>` with `\`, `|` and `&` in values escaped by `\`. E.g.
//! `=2&method^list|method^get|method=summary&method/listdatastore` (createrune-readonly.json).
//! The authcode here is pseudo-random, not a SHA-256 state: "derived from master" means "this
//! mock made it" (checkrune-c-foreign-rune.json: a rune of another node is refused with 1501).

use super::jsonrpc::{RpcError, RUNE_BLACKLISTED, RUNE_NOT_AUTHORIZED, RUNE_NOT_PERMITTED};
use super::random::Random;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Condition characters of a rune alternative.
pub const CONDITIONS: &str = "!=/^$~<>{}#";

/// Text lightningd returns with an unrestricted rune (createrune-unrestricted.json).
pub const WARNING_UNRESTRICTED_RUNE: &str = "WARNING: This rune has no restrictions! Anyone who \
has access to this rune could drain funds from your node. Be careful when giving this to apps \
that you don't trust. Consider using the restrictions parameter to only allow access to \
specific rpc methods.";

/// The restrictions of `"restrictions": "readonly"` (createrune-readonly.json, showrunes-all.json).
pub const READONLY_RESTRICTIONS: &str =
    "method^list|method^get|method=summary&method/listdatastore";

/// lightningd's bad-rune parameter wording (checkrune-d-garbage.json, checkrune-d2-empty-string.json).
pub const SHOULD_BE_BASE64: &str = "should be base64 string";

/// base64url that accepts runes with or without padding.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One alternative, `<field><condition><value>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub field: String,
    pub condition: char,
    pub value: String,
}

/// Alternatives of which at least one must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Restriction {
    pub alternatives: Vec<Alternative>,
}

/// A decoded rune.
#[derive(Debug, Clone)]
pub struct Rune {
    pub authcode: [u8; 32],
    pub restrictions: Vec<Restriction>,
}

impl Alternative {
    /// One alternative written plainly, e.g. `method=invoice` (createrune's JSON form).
    pub fn parse(text: &str) -> Option<Alternative> {
        let at = text.find(|c| CONDITIONS.contains(c))?;
        let condition = text[at..].chars().next()?;
        Some(Alternative {
            field: text[..at].to_string(),
            condition,
            value: text[at + condition.len_utf8()..].to_string(),
        })
    }

    fn encode(&self) -> String {
        let mut out = format!("{}{}", self.field, self.condition);
        for c in self.value.chars() {
            if matches!(c, '\\' | '|' | '&') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    /// The `english` of showrunes. Only "equal to", "unequal to" and "starts with" are
    /// captured (showrunes-all.json); the other wordings are not.
    pub fn english(&self) -> String {
        let condition = match self.condition {
            '!' => return format!("{} is missing", self.field),
            '=' => "equal to",
            '/' => "unequal to",
            '^' => "starts with",
            '$' => "ends with",
            '~' => "contains",
            '<' => "<",
            '>' => ">",
            '{' => "sorts before",
            '}' => "sorts after",
            _ => "comment:",
        };
        format!("{} {} {}", self.field, condition, self.value)
    }
}

impl Restriction {
    /// Parses a restriction in rune text form: alternatives separated by unescaped `|`.
    pub fn parse(text: &str) -> Option<Restriction> {
        let mut restrictions = parse_restriction_string(text)?;
        (restrictions.len() == 1).then(|| restrictions.remove(0))
    }

    fn encode(&self) -> String {
        let alternatives: Vec<String> = self.alternatives.iter().map(Alternative::encode).collect();
        alternatives.join("|")
    }

    fn is_unique_id(&self) -> bool {
        matches!(self.alternatives.as_slice(), [alt] if alt.field.is_empty() && alt.condition == '=')
    }

    fn english(&self) -> String {
        let alternatives: Vec<String> =
            self.alternatives.iter().map(Alternative::english).collect();
        alternatives.join(" OR ")
    }

    fn to_json(&self) -> Value {
        let alternatives: Vec<Value> = self
            .alternatives
            .iter()
            .map(|alt| {
                json!({
                    "fieldname": alt.field,
                    "value": alt.value,
                    "condition": alt.condition.to_string(),
                    "english": alt.english(),
                })
            })
            .collect();
        json!({"alternatives": alternatives, "english": self.english()})
    }
}

/// Splits a restriction string at unescaped `&` and `|`, unescaping values.
fn parse_restriction_string(text: &str) -> Option<Vec<Restriction>> {
    let mut restrictions = Vec::new();
    if text.is_empty() {
        return Some(restrictions);
    }
    let mut alternatives = Vec::new();
    let mut chars = text.chars();
    loop {
        let mut field = String::new();
        let condition = loop {
            let c = chars.next()?;
            if CONDITIONS.contains(c) {
                break c;
            }
            field.push(c);
        };
        let mut value = String::new();
        let ended_by = loop {
            match chars.next() {
                Some('\\') => value.push(chars.next()?),
                Some(c @ ('|' | '&')) => break Some(c),
                Some(c) => value.push(c),
                None => break None,
            }
        };
        alternatives.push(Alternative {
            field,
            condition,
            value,
        });
        if ended_by != Some('|') {
            restrictions.push(Restriction {
                alternatives: std::mem::take(&mut alternatives),
            });
        }
        if ended_by.is_none() {
            return Some(restrictions);
        }
    }
}

impl Rune {
    /// Decodes rune text; `None` where lightningd says "should be base64 string".
    pub fn decode(text: &str) -> Option<Rune> {
        let bytes = DECODER.decode(text).ok()?;
        if bytes.len() < 32 {
            return None;
        }
        let restrictions = parse_restriction_string(std::str::from_utf8(&bytes[32..]).ok()?)?;
        Some(Rune {
            authcode: bytes[..32].try_into().ok()?,
            restrictions,
        })
    }

    /// The rune as text (base64 URL-safe with padding).
    pub fn encode(&self) -> String {
        URL_SAFE.encode(self.bytes())
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.authcode.to_vec();
        bytes.extend_from_slice(self.restriction_string().as_bytes());
        bytes
    }

    /// The restriction string after the authcode, e.g. `=1&method=invoice`.
    pub fn restriction_string(&self) -> String {
        let restrictions: Vec<String> = self.restrictions.iter().map(Restriction::encode).collect();
        restrictions.join("&")
    }

    /// The unique id (value of the leading `=<id>` restriction).
    pub fn unique_id(&self) -> Option<&str> {
        self.restrictions
            .first()
            .filter(|r| r.is_unique_id())
            .map(|r| r.alternatives[0].value.as_str())
    }

    /// The restrictions that are checked (all but the unique id).
    pub fn checked_restrictions(&self) -> &[Restriction] {
        match self.restrictions.first() {
            Some(first) if first.is_unique_id() => &self.restrictions[1..],
            _ => &self.restrictions,
        }
    }

    fn numeric_unique_id(&self) -> Option<u64> {
        let id = self.unique_id()?;
        id.split('-').next()?.parse().ok()
    }
}

/// What `checkrune` was asked about.
pub struct CheckRequest<'a> {
    pub method: Option<&'a str>,
    pub nodeid: Option<&'a str>,
    /// The `params` given to checkrune (object, array, or `None`).
    pub params: Option<&'a Value>,
    /// Unix time in seconds, for `time` restrictions.
    pub now: i64,
}

/// The value a restriction field has for one request.
enum Field {
    /// lightningd does not check this field for this request.
    Skipped,
    Missing,
    Text(String),
    Integer(i64),
}

/// What a real node says for `rate` and for the fields of one request (each was seen on a
/// real node with checkrune; only "is not equal to" and "does not start with" are in the
/// fixtures, checkrune-b and -f).
impl CheckRequest<'_> {
    fn field(&self, name: &str) -> Field {
        match name {
            // checkrune-no-method.json and the fixtures README: without `method`,
            // restrictions on method are not checked.
            "method" => self
                .method
                .map_or(Field::Skipped, |m| Field::Text(m.to_string())),
            // Without `nodeid`, an `id` restriction fails: "id not present".
            "id" => self
                .nodeid
                .map_or(Field::Missing, |n| Field::Text(n.to_string())),
            "time" => Field::Integer(self.now),
            "pnum" => Field::Integer(match self.params {
                Some(Value::Object(members)) => members.len() as i64,
                Some(Value::Array(items)) => items.len() as i64,
                _ => 0,
            }),
            // Any other field that is not a parameter (`nodeid`, `foo`) is "not present".
            _ => self.param_field(name),
        }
    }

    fn param_field(&self, name: &str) -> Field {
        let found = match self.params {
            Some(Value::Object(members)) => name.strip_prefix("pname").and_then(|wanted| {
                members
                    .iter()
                    .find(|(key, _)| {
                        // A parameter matches by its name, or by its name without
                        // punctuation: `pnameamount_msat` and `pnameamountmsat` both match
                        // `amount_msat`, while `pnamea_b` does not match `ab`.
                        key.as_str() == wanted
                            || key
                                .chars()
                                .filter(|c| !c.is_ascii_punctuation())
                                .eq(wanted.chars())
                    })
                    .map(|(_, value)| value)
            }),
            // Positional params never match `pname`, nor named ones `parr`.
            Some(Value::Array(items)) => name
                .strip_prefix("parr")
                .and_then(|index| index.parse::<usize>().ok())
                .and_then(|index| items.get(index)),
            _ => None,
        };
        match found {
            None => Field::Missing,
            // A string is text even when it holds digits: `"500"` "is not an integer field".
            Some(Value::String(text)) => Field::Text(text.clone()),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(integer) => Field::Integer(integer),
                None => Field::Text(n.to_string()),
            },
            Some(other) => Field::Text(other.to_string()),
        }
    }
}

/// How a field is named in an explanation: `parameter amount_msat` (`pname`),
/// `parameter #0` (`parr`), `number of parameters` (`pnum`), else the field itself.
fn display_name(field: &str) -> String {
    if let Some(name) = field.strip_prefix("pname") {
        format!("parameter {name}")
    } else if let Some(index) = field.strip_prefix("parr") {
        format!("parameter #{index}")
    } else if field == "pnum" {
        "number of parameters".to_string()
    } else {
        field.to_string()
    }
}

/// When the rune was last accepted, and now (Unix seconds), for `rate` restrictions.
#[derive(Clone, Copy, Debug)]
pub struct RateClock {
    pub last_used: Option<f64>,
    pub now: f64,
}

/// `rate=N`: at most N uses a minute, as a real node counts them: a use is refused with
/// "too soon" until 60/N seconds after the last accepted one (refused checks do not count).
fn test_rate(alt: &Alternative, clock: RateClock) -> Result<(), String> {
    if alt.condition != '=' {
        return Err("rate operator must be =".to_string());
    }
    let rate = match alt.value.parse::<u64>() {
        Ok(rate) if rate > 0 && rate < u64::from(u32::MAX) => rate,
        _ => return Err("malformed rate".to_string()),
    };
    match clock.last_used {
        Some(last_used) if clock.now - last_used < 60.0 / rate as f64 => {
            Err("too soon".to_string())
        }
        _ => Ok(()),
    }
}

/// Tests one alternative; `Err` is lightningd's explanation, `<field> <why>` (see
/// [`display_name`]).
fn test_alternative(
    alt: &Alternative,
    request: &CheckRequest,
    clock: RateClock,
) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{} {why}", display_name(&alt.field)));
    if alt.condition == '#' {
        return Ok(());
    }
    if alt.field == "rate" {
        return test_rate(alt, clock);
    }
    let (text, integer) = match request.field(&alt.field) {
        Field::Skipped => return Ok(()),
        Field::Missing if alt.condition == '!' => return Ok(()),
        Field::Missing => return fail("not present"),
        Field::Text(text) => (text, None),
        Field::Integer(n) => (n.to_string(), Some(n)),
    };
    let value = &alt.value;
    let holds = match alt.condition {
        '!' => return fail("is present"),
        '=' => text == *value,
        '/' => text != *value,
        '^' => text.starts_with(value.as_str()),
        '$' => text.ends_with(value.as_str()),
        '~' => text.contains(value.as_str()),
        '{' => text.as_str() < value.as_str(),
        '}' => text.as_str() > value.as_str(),
        '<' | '>' => {
            let Some(field_value) = integer else {
                return fail("is not an integer field");
            };
            // Not seen on a real node.
            let Ok(limit) = value.parse::<i64>() else {
                return fail("is not a valid integer");
            };
            if alt.condition == '<' {
                field_value < limit
            } else {
                field_value > limit
            }
        }
        _ => true,
    };
    if holds {
        return Ok(());
    }
    let why = match alt.condition {
        '=' => format!("is not equal to {value}"),
        '/' => format!("is equal to {value}"),
        '^' => format!("does not start with {value}"),
        '$' => format!("does not end with {value}"),
        '~' => format!("does not contain {value}"),
        '{' => format!("is equal to or ordered after {value}"),
        '}' => format!("is equal to or ordered before {value}"),
        '<' => format!("is greater or equal to {value}"),
        _ => format!("is less or equal to {value}"),
    };
    fail(&why)
}

/// Tests every restriction; `Err` explains the first that fails: its alternatives'
/// explanations joined with " AND " (checkrune-f-readonly-vs-invoice.json).
pub fn test_restrictions(
    rune: &Rune,
    request: &CheckRequest,
    clock: RateClock,
) -> Result<(), String> {
    for restriction in rune.checked_restrictions() {
        let mut explanations = Vec::new();
        for alt in &restriction.alternatives {
            match test_alternative(alt, request, clock) {
                Ok(()) => {
                    explanations.clear();
                    break;
                }
                Err(why) => explanations.push(why),
            }
        }
        if !explanations.is_empty() {
            return Err(explanations.join(" AND "));
        }
    }
    Ok(())
}

/// A rune this node stored when `createrune` made it with a new unique id.
struct StoredRune {
    text: String,
    rune: Rune,
    last_used: Option<f64>,
}

/// What `createrune` made.
pub struct CreatedRune {
    pub text: String,
    pub unique_id: String,
    pub unrestricted: bool,
}

/// Every rune this node made, the last-use times and the blacklist.
#[derive(Default)]
pub struct RuneRegistry {
    stored: Vec<StoredRune>,
    /// Decoded bytes of every rune made here (including ones derived with `createrune rune=`).
    ours: HashSet<Vec<u8>>,
    /// Blacklisted unique-id ranges, sorted and merged.
    blacklist: Vec<(u64, u64)>,
}

impl RuneRegistry {
    /// Makes a rune: a new unique id (counting from 0), or `base`'s id with more
    /// restrictions.
    pub fn create(
        &mut self,
        base: Option<&Rune>,
        extra: Vec<Restriction>,
        random: &Random,
    ) -> CreatedRune {
        let (mut restrictions, stored) = match base {
            Some(base) => (base.restrictions.clone(), false),
            None => {
                let unique_id = self.stored.len().to_string();
                let id = Restriction {
                    alternatives: vec![Alternative {
                        field: String::new(),
                        condition: '=',
                        value: unique_id,
                    }],
                };
                (vec![id], true)
            }
        };
        restrictions.extend(extra);
        let rune = Rune {
            authcode: random.bytes::<32>(),
            restrictions,
        };
        let text = rune.encode();
        let unique_id = rune.unique_id().unwrap_or_default().to_string();
        let unrestricted = rune.checked_restrictions().is_empty();
        // A rune derived from a rune of another node stays foreign.
        if base.is_none_or(|base| self.is_ours(base)) {
            self.ours.insert(rune.bytes());
        }
        if stored {
            self.stored.push(StoredRune {
                text: text.clone(),
                rune,
                last_used: None,
            });
        }
        CreatedRune {
            text,
            unique_id,
            unrestricted,
        }
    }

    fn is_ours(&self, rune: &Rune) -> bool {
        self.ours.contains(&rune.bytes())
    }

    fn is_blacklisted(&self, rune: &Rune) -> bool {
        rune.numeric_unique_id().is_some_and(|id| {
            self.blacklist
                .iter()
                .any(|(start, end)| (*start..=*end).contains(&id))
        })
    }

    /// `checkrune` after its parameters were accepted: `Ok` is `{"valid":true}`.
    pub fn check(&mut self, rune: &Rune, request: &CheckRequest, now: f64) -> Result<(), RpcError> {
        if !self.is_ours(rune) {
            // checkrune-c-foreign-rune.json.
            return Err(RpcError::new(
                RUNE_NOT_AUTHORIZED,
                "Not authorized: Not derived from master",
            ));
        }
        if self.is_blacklisted(rune) {
            // Seen on a real node (code 1503), not in the fixtures.
            return Err(RpcError::new(
                RUNE_BLACKLISTED,
                "Not authorized: Blacklisted rune",
            ));
        }
        // The last-use time, looked up by unique id, is written when the rune is accepted:
        // on a real node a refused check leaves showrunes' `last_used` as it was (and does
        // not count for `rate`).
        let unique_id = rune.unique_id().map(str::to_string);
        let stored = self
            .stored
            .iter_mut()
            .find(|s| s.rune.unique_id().map(str::to_string) == unique_id);
        let clock = RateClock {
            last_used: stored.as_ref().and_then(|s| s.last_used),
            now,
        };
        test_restrictions(rune, request, clock)
            .map_err(|why| RpcError::new(RUNE_NOT_PERMITTED, format!("Not permitted: {why}")))?;
        if let Some(stored) = stored {
            stored.last_used = Some(now);
        }
        Ok(())
    }

    /// `showrunes` entries: every stored rune, or just `rune` (showrunes-*.json).
    pub fn show(&self, rune: Option<(&str, &Rune)>) -> Value {
        let runes: Vec<Value> = match rune {
            None => self
                .stored
                .iter()
                .map(|s| self.entry(&s.text, &s.rune))
                .collect(),
            Some((text, rune)) => vec![self.entry(text, rune)],
        };
        json!({ "runes": runes })
    }

    fn entry(&self, text: &str, rune: &Rune) -> Value {
        let mut entry = json!({ "rune": text });
        if !self.stored.iter().any(|s| s.rune.bytes() == rune.bytes()) {
            entry["stored"] = json!(false);
        }
        if self.is_blacklisted(rune) {
            // Not captured in the fixtures.
            entry["blacklisted"] = json!(true);
        }
        if !self.is_ours(rune) {
            entry["our_rune"] = json!(false);
        }
        // lightningd looks the last use up by unique id (showrunes-foreign-rune.json shows
        // the last use of this node's rune "0").
        let last_used = self
            .stored
            .iter()
            .find(|s| s.rune.unique_id() == rune.unique_id())
            .and_then(|s| s.last_used);
        if let Some(last_used) = last_used {
            entry["last_used"] = json!(last_used);
        }
        if let Some(unique_id) = rune.unique_id() {
            entry["unique_id"] = json!(unique_id);
        }
        let restrictions = rune.checked_restrictions();
        entry["restrictions"] =
            Value::Array(restrictions.iter().map(Restriction::to_json).collect());
        let english: Vec<String> = restrictions.iter().map(Restriction::english).collect();
        entry["restrictions_as_english"] = json!(english.join(" AND "));
        entry
    }

    /// `blacklistrune`: adds (or with `relist` removes) `start..=end`, returns the list.
    pub fn blacklist(&mut self, range: Option<(u64, u64)>, relist: bool) -> Value {
        if let Some((start, end)) = range {
            let mut ranges = Vec::new();
            for &(s, e) in &self.blacklist {
                if relist && s <= end && start <= e {
                    if s < start {
                        ranges.push((s, start - 1));
                    }
                    if e > end {
                        ranges.push((end + 1, e));
                    }
                } else {
                    ranges.push((s, e));
                }
            }
            if !relist {
                ranges.push((start, end));
            }
            ranges.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::new();
            for (s, e) in ranges {
                match merged.last_mut() {
                    Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            self.blacklist = merged;
        }
        let list: Vec<Value> = self
            .blacklist
            .iter()
            .map(|(start, end)| json!({"start": start, "end": end}))
            .collect();
        json!({ "blacklist": list })
    }
}

/// Parses createrune's `restrictions`: `"readonly"`, an array whose elements are arrays of
/// alternatives or restriction strings, or one restriction string.
pub fn parse_restrictions_param(value: &Value) -> Option<Vec<Restriction>> {
    match value {
        Value::String(text) if text == "readonly" => {
            parse_restriction_string(READONLY_RESTRICTIONS)
        }
        Value::String(text) => Some(vec![Restriction::parse(text)?]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Array(alternatives) => Some(Restriction {
                    alternatives: alternatives
                        .iter()
                        .map(|alt| Alternative::parse(alt.as_str()?))
                        .collect::<Option<Vec<_>>>()?,
                })
                .filter(|r| !r.alternatives.is_empty()),
                Value::String(text) => Restriction::parse(text),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}
