//! Where the added latency goes at concurrency 1 over HTTP: the same request to a canned
//! in-process server (no plugin, no lightningd), by reqwest and by the minimal client, and to
//! the plugin by the minimal client.

use crate::load::{run_cell, Worker, REQUEST_TIMEOUT};
use crate::options::Options;
use crate::plugin::Gateway;
use crate::report::{CellRow, RowKind};
use tokio::runtime::Runtime;

/// A stand-in for the plugin with nothing behind it: `POST /v1/getinfo` answers 201 with a
/// fixed body at once, served by axum in this process. The distance between it and the
/// ceiling is what the HTTP client, loopback TCP and the HTTP server cost.
pub async fn start_floor(body: bytes::Bytes) -> Result<u16, String> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the floor server: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("floor server address: {e}"))?
        .port();
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = axum::Router::new().route(
        "/v1/getinfo",
        axum::routing::post(move || {
            let body = body.clone();
            async move {
                (
                    axum::http::StatusCode::CREATED,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

pub fn run(
    options: &Options,
    gateway: &Gateway,
    service_time_us: u64,
    mock_rt: &Runtime,
    load_rt: &Runtime,
    rows: &mut Vec<CellRow>,
) -> Result<(), String> {
    let ceiling = rows
        .iter()
        .find(|r| {
            r.kind == RowKind::Ceiling && r.service_time_us == service_time_us && r.concurrency == 1
        })
        .map(|r| r.measured.clone());
    // The exact body the plugin serves, for the canned server.
    let body = load_rt.block_on(async {
        let client = gateway.client(true, REQUEST_TIMEOUT)?;
        let response = client
            .post(gateway.url("/v1/getinfo"))
            .header("Rune", gateway.rune.as_str())
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .map_err(|e| format!("getinfo for the canned body: {e}"))?;
        response
            .bytes()
            .await
            .map_err(|e| format!("getinfo for the canned body: {e}"))
    })?;
    let floor_port = mock_rt.block_on(start_floor(body))?;
    let floor_url = format!("http://127.0.0.1:{floor_port}/v1/getinfo");
    type Make<'a> = Box<dyn Fn() -> Result<Worker, String> + 'a>;
    let cells: Vec<(&str, Make)> = vec![
        (
            "breakdown: reqwest -> canned in-process axum (no plugin, no lightningd)",
            Box::new(|| {
                let _guard = load_rt.enter();
                Ok(Worker::rest_to(
                    gateway.client(true, REQUEST_TIMEOUT)?,
                    floor_url.clone(),
                    &gateway.rune,
                ))
            }),
        ),
        (
            "breakdown: minimal HTTP/1.1 client -> canned in-process axum",
            Box::new(|| load_rt.block_on(Worker::raw_http(floor_port, &gateway.rune))),
        ),
        (
            "breakdown: minimal HTTP/1.1 client -> plugin",
            Box::new(|| load_rt.block_on(Worker::raw_http(gateway.port, &gateway.rune))),
        ),
    ];
    for (label, make) in cells {
        eprintln!("  c=1: {label}");
        let worker = make()?;
        let measured = load_rt.block_on(run_cell(vec![worker], options.warmup, options.duration));
        rows.push(CellRow {
            kind: RowKind::Breakdown,
            service_time_us,
            concurrency: 1,
            client: label.to_string(),
            measured,
            ceiling: ceiling.clone(),
        });
    }
    Ok(())
}
