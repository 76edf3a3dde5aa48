//! The node's datastore: `datastore`, `deldatastore` and `listdatastore`.
//!
//! None of this is captured in the fixtures; shapes and error codes follow lightningd's
//! documentation: entries `{"key":[...],"generation":N,"hex":"...","string":"..."}` (string
//! only when the data is UTF-8), a list `{"datastore":[...]}`, modes `must-create` (default),
//! `must-replace`, `create-or-replace`, `must-append`, `create-or-append`.

use super::jsonrpc::{
    RpcError, DATASTORE_DEL_DOES_NOT_EXIST, DATASTORE_DEL_WRONG_GENERATION,
    DATASTORE_UPDATE_ALREADY_EXISTS, DATASTORE_UPDATE_DOES_NOT_EXIST,
    DATASTORE_UPDATE_WRONG_GENERATION,
};
use super::random::to_hex;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The `mode` values lightningd accepts.
pub const MODES: [&str; 5] = [
    "must-create",
    "must-replace",
    "create-or-replace",
    "must-append",
    "create-or-append",
];

struct Entry {
    data: Vec<u8>,
    generation: u64,
}

/// Key path -> data.
#[derive(Default)]
pub struct Datastore {
    entries: BTreeMap<Vec<String>, Entry>,
}

fn entry_json(key: &[String], entry: &Entry) -> Value {
    let mut value = json!({
        "key": key,
        "generation": entry.generation,
        "hex": to_hex(&entry.data),
    });
    if let Ok(text) = std::str::from_utf8(&entry.data) {
        value["string"] = json!(text);
    }
    value
}

impl Datastore {
    /// `datastore`: stores `data` at `key` according to `mode`; `generation`, if given, must
    /// match the stored one.
    pub fn store(
        &mut self,
        key: Vec<String>,
        data: Vec<u8>,
        mode: &str,
        generation: Option<u64>,
    ) -> Result<Value, RpcError> {
        let existing = self.entries.get(&key);
        let must_exist = matches!(mode, "must-replace" | "must-append");
        let appending = matches!(mode, "must-append" | "create-or-append");
        match existing {
            // Not captured in the fixtures (code and text as the brief specifies).
            Some(_) if mode == "must-create" => {
                return Err(RpcError::new(
                    DATASTORE_UPDATE_ALREADY_EXISTS,
                    "Key already exists",
                ))
            }
            // Not captured in the fixtures.
            None if must_exist => {
                return Err(RpcError::new(
                    DATASTORE_UPDATE_DOES_NOT_EXIST,
                    "Key does not exist",
                ))
            }
            _ => {}
        }
        if let (Some(wanted), Some(entry)) = (generation, existing) {
            if wanted != entry.generation {
                // Not captured in the fixtures.
                return Err(RpcError::new(
                    DATASTORE_UPDATE_WRONG_GENERATION,
                    "generation is different",
                ));
            }
        }
        let entry = match self.entries.remove(&key) {
            Some(old) => {
                let mut new_data = if appending { old.data } else { Vec::new() };
                new_data.extend(data);
                Entry {
                    data: new_data,
                    generation: old.generation + 1,
                }
            }
            None => Entry {
                data,
                generation: 0,
            },
        };
        let result = entry_json(&key, &entry);
        self.entries.insert(key, entry);
        Ok(result)
    }

    /// `deldatastore`: removes the entry at exactly `key` and returns it as it was;
    /// `generation`, if given, must match. Errors as a real node answers them: 1200 "Key does
    /// not exist" (also for a key that only has entries below it), 1201 "generation is
    /// different".
    pub fn delete(&mut self, key: &[String], generation: Option<u64>) -> Result<Value, RpcError> {
        let Some(entry) = self.entries.get(key) else {
            return Err(RpcError::new(
                DATASTORE_DEL_DOES_NOT_EXIST,
                "Key does not exist",
            ));
        };
        if generation.is_some_and(|wanted| wanted != entry.generation) {
            return Err(RpcError::new(
                DATASTORE_DEL_WRONG_GENERATION,
                "generation is different",
            ));
        }
        let result = entry_json(key, entry);
        self.entries.remove(key);
        Ok(result)
    }

    /// `listdatastore`: the entry at `prefix` and those one level below it (the top level
    /// when empty) with their data; deeper keys shown once as `{"key":[...]}` of that level.
    pub fn list(&self, prefix: &[String]) -> Value {
        let mut listed: Vec<Value> = Vec::new();
        let mut last_directory: Option<Vec<String>> = None;
        for (key, entry) in self.entries.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            let depth = prefix.len() + 1;
            if key.len() <= depth {
                listed.push(entry_json(key, entry));
            } else {
                let directory = key[..depth].to_vec();
                if last_directory.as_ref() != Some(&directory) {
                    listed.push(json!({ "key": directory }));
                    last_directory = Some(directory);
                }
            }
        }
        json!({ "datastore": listed })
    }
}
