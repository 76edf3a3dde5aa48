//! Serving the API's description: the OpenAPI document at `/swagger.json` (built by
//! `openapi.rs` off the async workers) and Swagger UI at `clnrest-swagger-root`.

use crate::http::openapi::{DEFAULT_UI_PATH, DOCUMENT_PATH};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use utoipa_swagger_ui::SwaggerUi;

async fn serve_document(State(state): State<AppState>) -> Response {
    let build = move || state.api_document().json(|| state.routes().list());
    match tokio::task::spawn_blocking(build).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::warn!("building the API document failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Routes serving the document and Swagger UI mounted at `swagger_root`.
pub fn routes(swagger_root: &str, state: AppState) -> Router {
    let ui_path = if swagger_root == "/" {
        DEFAULT_UI_PATH
    } else {
        swagger_root
    };
    let ui = SwaggerUi::new(ui_path.to_string())
        .config(utoipa_swagger_ui::Config::new([DOCUMENT_PATH]).try_it_out_enabled(true));
    let mut router = Router::new()
        .route(DOCUMENT_PATH, get(serve_document))
        .with_state(state)
        .merge(ui);
    if swagger_root == "/" {
        router = router.route("/", get(|| async { Redirect::permanent(DEFAULT_UI_PATH) }));
    }
    router
}
