//! `clnrest-register-path` params and path captures: any JSON or URL, never a panic.
#![no_main]

use clnrest::http::registered_routes::{route_from_params, RegisteredRoutes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (params, url) = text.split_once('\n').unwrap_or((&text, "/v1/x"));
    let routes = RegisteredRoutes::default();
    if let Ok(params) = serde_json::from_str(params) {
        if let Ok(route) = route_from_params(&params) {
            let _ = routes.register(route);
        }
    }
    let _ = routes.resolve("GET", url);
    let _ = routes.resolve("POST", url);
});
