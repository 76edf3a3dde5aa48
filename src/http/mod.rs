//! The HTTP side: the server that binds and accepts (`server`), the handlers of every route
//! (`handlers`), the routes other plugins register (`registered_routes`), the OpenAPI
//! document (`openapi`) and Swagger UI serving it (`swagger`), and what guards connections before a request exists
//! (`connection_limit`, `header_deadline`, with `write_through` for their stream wrappers).

pub(crate) mod connection_limit;
pub(crate) mod handlers;
pub(crate) mod header_deadline;
pub(crate) mod openapi;
pub mod registered_routes;
pub mod server;
pub(crate) mod swagger;
mod write_through;
