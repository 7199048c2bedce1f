//! The HTTP edge: binds the listener, routes `/mcp`, `/v1/*` and the
//! [`operator`]'s routes behind the [`guard`], and [`serve`]s connections
//! within their limits.

pub mod dashboard;
pub mod event_stream;
pub mod guard;
pub mod jsonrpc_body;
pub mod operator;
pub mod serve;
pub mod streamable;
pub mod trigger;

use std::{io, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderMap, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::Bus,
    mcp::{Mcp, SSE_KEEP_ALIVE},
    permissions::Permissions,
};

/// A refusal as every route words it: `{"error": "<one sentence>"}`.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// A header's value, when it is text.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "port {port} on {ip} is already in use; stop the other server or pass --port with a free port"
    )]
    InUse { ip: std::net::IpAddr, port: u16 },
    #[error("cannot listen on {addr}: {source}; check --bind and --port")]
    Other { addr: SocketAddr, source: io::Error },
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => BindError::InUse {
                ip: addr.ip(),
                port: addr.port(),
            },
            _ => BindError::Other { addr, source },
        })
}

pub fn router(
    mcp: Arc<Mcp>,
    bus: Arc<Bus>,
    guard: Arc<guard::Guard>,
    permissions: Option<Arc<Permissions>>,
    max_body_bytes: usize,
    shutdown: CancellationToken,
) -> Router {
    let transport = Arc::new(streamable::Transport {
        mcp,
        max_body_bytes,
        keep_alive: SSE_KEEP_ALIVE,
    });
    let mcp = Router::new()
        .route(
            "/mcp",
            get(streamable::get)
                .post(streamable::post)
                .delete(streamable::delete),
        )
        .with_state(transport)
        .layer(middleware::from_fn_with_state(guard.clone(), guard::mcp));
    let api = Router::new()
        .route("/v1/messages", post(trigger::post_message))
        .route("/v1/agents", get(trigger::list_agents))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(guard.clone(), guard::api));
    let state = operator::Operator {
        bus: bus.clone(),
        sessions: guard.sessions.clone(),
        permissions,
        shutdown,
    };
    let health = Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/health", get(operator::health))
        .route("/livez", get(operator::livez))
        .layer(middleware::from_fn_with_state(guard.clone(), guard::health));
    let admin = Router::new()
        .route("/metrics", get(operator::metrics))
        .route("/v1/permissions", get(operator::list_permissions))
        .route("/v1/permissions/{id}", post(operator::answer_permission))
        .route("/v1/dashboard/state", get(dashboard::state))
        .route("/v1/dashboard/events", get(dashboard::events))
        .route("/v1/dashboard/messages/{id}", get(dashboard::content))
        .route("/v1/dashboard/send", post(dashboard::send))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(guard.clone(), guard::admin));
    Router::new()
        .merge(health)
        .merge(admin)
        .with_state(state)
        .merge(api.with_state(bus))
        .merge(mcp)
        .layer(middleware::from_fn_with_state(guard, guard::cors))
}
