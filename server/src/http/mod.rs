//! The HTTP edge: binds the listener (TCP_NODELAY on every connection: without
//! it each tool call from a Node client waits ~40 ms on delayed ACKs), routes
//! `/mcp`, `/v1/*` and `/health` behind the [`guard`], and shuts down gracefully.

pub mod guard;
pub mod trigger;

use std::{io, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    middleware,
    routing::{get, post},
    serve::ListenerExt,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use rmcp::transport::streamable_http_server::StreamableHttpService;

use crate::{
    bus::Bus,
    mcp::{sessions::AgentSessions, tools::Switchboard},
};

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
    mcp: StreamableHttpService<Switchboard, AgentSessions>,
    bus: Arc<Bus>,
    guard: Arc<guard::Guard>,
    max_body_bytes: usize,
) -> Router {
    let mcp = Router::new()
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(guard.clone(), guard::mcp));
    let api = Router::new()
        .route("/v1/messages", post(trigger::post_message))
        .route("/v1/agents", get(trigger::list_agents))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(guard, guard::api));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .with_state(bus)
        .merge(mcp)
}

async fn health(State(bus): State<Arc<Bus>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "agents": bus.registry().online_count(),
        "chain": bus.filters().info(),
    }))
}

/// Serves until `shutdown` fires, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
