//! The MCP layer: streamable HTTP sessions (rmcp), the three tools, and the
//! bookkeeping that turns a session with an open event stream into an agent.

pub mod identity;
pub mod session_store;
pub mod sessions;
pub mod tools;

use std::{sync::Arc, time::Duration};

use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use identity::Identities;
use session_store::SessionFile;
use sessions::AgentSessions;
use tools::Switchboard;

/// How long Claude Code waits before re-opening a dropped stream (rmcp-notes §8).
const SSE_RETRY: Duration = Duration::from_millis(500);
/// The same, for streams closed because the server stops: Claude Code tries
/// a stream twice, at this interval, before it gives up on the session and
/// starts a new one (a new agent), so a restart within twice this keeps
/// every agent's session.
pub const RESTART_RETRY: Duration = Duration::from_secs(3);
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct McpOptions {
    pub session_idle: Duration,
    pub max_request_bytes: usize,
    /// Disables rmcp's Host-header allow-list (loopback names only) when the
    /// server is bound to a non-loopback address.
    pub any_host: bool,
    /// Prefix of session ids: the replica id in cluster mode.
    pub session_prefix: Option<String>,
    /// The permission relay, with `--permission-relay`.
    pub permissions: Option<Arc<crate::permissions::Permissions>>,
}

/// Builds the `/mcp` service and starts the reaper of idle sessions.
pub fn service(
    bus: Arc<Bus>,
    store: Arc<SessionFile>,
    identities: Arc<Identities>,
    options: McpOptions,
    shutdown: CancellationToken,
) -> (
    StreamableHttpService<Switchboard, AgentSessions>,
    Arc<AgentSessions>,
) {
    let sessions = Arc::new(
        AgentSessions::new(
            LocalSessionManager::default(),
            bus.registry().clone(),
            store.clone(),
            identities,
        )
        .with_session_prefix(options.session_prefix),
    );
    sessions.spawn_reaper(options.session_idle, shutdown.clone());
    let mut config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(SSE_KEEP_ALIVE))
        .with_sse_retry(Some(SSE_RETRY))
        .with_max_request_body_bytes(options.max_request_bytes)
        .with_cancellation_token(shutdown);
    config.session_store = Some(store.clone());
    if options.any_host {
        config = config.disable_allowed_hosts();
    }
    let permissions = options.permissions;
    let service = StreamableHttpService::new(
        move || {
            Ok(Switchboard::new(
                bus.clone(),
                store.clone(),
                permissions.clone(),
            ))
        },
        sessions.clone(),
        config,
    );
    (service, sessions)
}
