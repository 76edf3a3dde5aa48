//! Routes another plugin registers: `tests/real_node/plugins/route_plugin.py` calls
//! `clnrest-register-path` through lightningd after its `init`; its route is served with the
//! path's captures, and removed when that plugin is stopped with `plugin stop`.

use crate::node::{test_plugin, NodeConfig, RealNode};
use crate::support::{block_on, client, json_of};
use crate::Test;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const TESTS: &[Test] = &[(
    "register_path::a_plugins_route_is_served_and_removed_when_it_stops",
    a_plugins_route_is_served_and_removed_when_it_stops,
)];

fn a_plugins_route_is_served_and_removed_when_it_stops() {
    let plugin = test_plugin("route_plugin.py");
    let mut config = NodeConfig::http();
    config.extra_plugins.push(plugin.clone());
    let node = RealNode::start(config);
    assert!(
        node.wait_log("registered v1/echo/{name}", Duration::from_secs(15)),
        "the test plugin did not register its route:\n{}",
        node.log_tail(30)
    );
    let listed = node.call("clnrest-list-paths", json!({}));
    assert_eq!(
        listed["paths"],
        json!([{
            "path": "v1/echo/{name}",
            "http_method": "POST",
            "rpc_method": "route-echo",
            "rune_required": true,
            "rune_restrictions": {}
        }]),
        "{listed}"
    );
    let rune = node.create_rune(Value::Null);
    let method_rune = node.create_rune(json!([["method=getinfo"]]));
    block_on(async {
        let http = client();
        let echo = |rune: &str| {
            http.post(node.url("/v1/echo/alice"))
                .header("Rune", rune)
                .json(&json!({"greeting": "hi"}))
                .send()
        };
        let (status, body) = json_of(echo(&rune).await.expect("an answer")).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            body,
            json!({"echo": {"greeting": "hi", "name": "alice"}}),
            "the capture and the body reach the plugin's method"
        );
        // The rune is checked for the route's method, as for /v1/<method>.
        let (status, body) = json_of(echo(&method_rune).await.expect("an answer")).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body,
            json!({"code": 1502, "message": "Not permitted: method is not equal to getinfo"})
        );

        // `plugin stop` removes its routes once lightningd's `plugin_stopped` reaches us (until
        // then the route still leads to the stopped plugin's method, which lightningd answers
        // "Unknown command").
        node.call("plugin", json!({"subcommand": "stop", "plugin": plugin}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.call("clnrest-list-paths", json!({}))["paths"] != json!([]) {
            assert!(
                Instant::now() < deadline,
                "the route is still registered 10 s after `plugin stop`"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, body) = json_of(echo(&rune).await.expect("an answer")).await;
        assert_eq!(
            (status, body),
            (404, json!({"code": -32601, "message": "Path not found"}))
        );
    });
    assert!(node
        .log()
        .contains("removed 1 route(s) of a stopped plugin"));
}
