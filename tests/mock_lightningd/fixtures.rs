//! Loading of the messages captured from a real lightningd v26.06.
//!
//! The files live in `tests/fixtures/` (see its README), byte-identical to the captured ones.
//! The mock reads the large answers (`getinfo`, `help`) and the `feature_set` straight from
//! them, so it cannot drift from what lightningd sent; short messages are written as constants
//! next to the code that sends them, and the self-test compares them with these files.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The fixtures directory: `tests/fixtures` in the repository.
pub const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

/// Path of one fixture file, `relative` to [`FIXTURES_DIR`] (e.g. `"rpc/getinfo.json"`).
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(FIXTURES_DIR).join(relative)
}

/// One fixture file parsed as JSON; panics with the path if it is missing or not JSON.
pub fn load_fixture(relative: &str) -> Value {
    let path = fixture_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not JSON: {e}", path.display()))
}

/// The parts of the fixtures the mock serves at run time.
pub struct Fixtures {
    /// `rpc/getinfo.json` `response.result`.
    pub getinfo_result: Value,
    /// `rpc/help.json` `response.result` (`help` array + `format-hint`).
    pub help_result: Value,
    /// `init.json` `params.configuration.feature_set`.
    pub feature_set: Value,
}

/// The fixtures, loaded once per test process.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| Fixtures {
        getinfo_result: response_member("rpc/getinfo.json", "result"),
        help_result: response_member("rpc/help.json", "result"),
        feature_set: load_fixture("init.json")["params"]["configuration"]["feature_set"].clone(),
    })
}

fn response_member(relative: &str, member: &str) -> Value {
    let value = load_fixture(relative)["response"][member].clone();
    assert!(
        !value.is_null(),
        "fixture {relative} has no response.{member}"
    );
    value
}
