//! The OpenAPI document served at `/swagger.json` and the Swagger UI that renders it.

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, Required, ResponseBuilder, ResponsesBuilder,
};
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/swagger.json";
/// Where Swagger UI lives when `clnrest-swagger-root` is `/`.
const DEFAULT_UI_PATH: &str = "/swagger-ui";

const RUNE_SCHEME: &str = "rune";
const ERROR_SCHEMA: &str = "Error";

/// The OpenAPI document describing the REST API.
pub fn document() -> OpenApi {
    let call_method = OperationBuilder::new()
        .operation_id(Some("call_rpc_method"))
        .summary(Some("Call any lightningd method"))
        .description(Some(
            "Calls the lightningd JSON-RPC method named in the path with the body's \
             parameters (an object for named parameters, an array for positional ones) \
             after lightningd's `checkrune` has accepted the `Rune` header for this method \
             and these parameters. The response is lightningd's `result`.",
        ))
        .parameter(
            ParameterBuilder::new()
                .name("rpc_method")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("lightningd method, e.g. getinfo"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some("The method's parameters"))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                        .build(),
                )
                .build(),
        ))
        .responses(
            ResponsesBuilder::new()
                .response("201", json_response("lightningd's result", None))
                .response("400", error_response("The body does not parse"))
                .response("401", error_response("checkrune refused the rune"))
                .response("403", error_response("No Rune header"))
                .response("404", error_response("Unknown method"))
                .response("406", error_response("No acceptable response format"))
                .response("413", error_response("Body over 8 MiB"))
                .response("415", error_response("Unsupported body format"))
                .response("500", error_response("lightningd returned an error"))
                .response("503", error_response("lightningd is unreachable")),
        )
        .security(SecurityRequirement::new(RUNE_SCHEME, Vec::<String>::new()))
        .build();

    let list_methods = OperationBuilder::new()
        .operation_id(Some("list_methods"))
        .summary(Some("List lightningd's commands"))
        .description(Some(
            "Every command lightningd's `help` lists. Needs no rune.",
        ))
        .responses(
            ResponsesBuilder::new()
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("One block per command")
                        .content("text/html", ContentBuilder::new().build()),
                )
                .response("503", error_response("lightningd is unreachable")),
        )
        .build();

    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Core Lightning REST API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "lightningd's JSON-RPC over REST. Create a rune with \
                     `lightning-cli createrune` and send it in the `Rune` header.",
                )),
        )
        .paths(
            PathsBuilder::new()
                .path(
                    "/v1/{rpc_method}",
                    PathItem::new(HttpMethod::Post, call_method),
                )
                .path(
                    "/v1/list-methods",
                    PathItem::new(HttpMethod::Get, list_methods),
                ),
        )
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    RUNE_SCHEME,
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("rune"))),
                )
                .schema(
                    ERROR_SCHEMA,
                    ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .property("code", ObjectBuilder::new().schema_type(Type::Integer))
                        .property("message", ObjectBuilder::new().schema_type(Type::String))
                        .property("data", ObjectBuilder::new())
                        .required("code")
                        .required("message"),
                )
                .build(),
        ))
        .build()
}

fn json_response(description: &str, schema: Option<Ref>) -> ResponseBuilder {
    let content = match schema {
        Some(schema) => ContentBuilder::new().schema(Some(schema)).build(),
        None => ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
            .build(),
    };
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
}

fn error_response(description: &str) -> ResponseBuilder {
    json_response(description, Some(Ref::from_schema_name(ERROR_SCHEMA)))
}

/// Routes serving the document and Swagger UI mounted at `swagger_root`.
pub fn routes<S: Clone + Send + Sync + 'static>(
    swagger_root: &str,
    document: &OpenApi,
) -> Router<S> {
    let json = Bytes::from(document.to_json().unwrap_or_else(|_| "{}".to_string()));
    let serve_document = move || {
        let json = json.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], json).into_response() }
    };
    let ui_path = if swagger_root == "/" {
        DEFAULT_UI_PATH
    } else {
        swagger_root
    };
    let ui = SwaggerUi::new(ui_path.to_string())
        .config(utoipa_swagger_ui::Config::new([DOCUMENT_PATH]).try_it_out_enabled(true));
    let mut router = Router::new()
        .route(DOCUMENT_PATH, get(serve_document))
        .merge(ui);
    if swagger_root == "/" {
        router = router.route("/", get(|| async { redirect_to_ui() }));
    }
    router
}

fn redirect_to_ui() -> Response {
    Redirect::permanent(DEFAULT_UI_PATH).into_response()
}
