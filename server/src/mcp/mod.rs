//! The MCP layer: sessions and the bookkeeping that turns a session with an
//! open event stream into an agent, the JSON-RPC protocol of a session, and
//! the three tools. rmcp provides the message types; the HTTP transport is
//! `http::streamable`.

pub mod identity;
pub mod protocol;
pub mod session_store;
pub mod sessions;
pub mod tools;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use identity::Identities;
use protocol::Protocol;
use session_store::SessionFile;
use sessions::AgentSessions;
use tools::Tools;

/// How long Claude Code waits before re-opening a dropped stream (rmcp-notes §8).
pub const SSE_RETRY: Duration = Duration::from_millis(500);
/// The same, for streams closed because the server stops: Claude Code tries
/// a stream twice, at this interval, before it gives up on the session and
/// starts a new one (a new agent), so a restart within twice this keeps
/// every agent's session.
pub const RESTART_RETRY: Duration = Duration::from_secs(3);
/// How often a quiet event stream carries a comment, so proxies keep it.
pub const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct McpOptions {
    pub session_idle: Duration,
    /// Prefix of session ids: the replica id in cluster mode.
    pub session_prefix: Option<String>,
    /// The permission relay, with `--permission-relay`.
    pub permissions: Option<Arc<crate::permissions::Permissions>>,
}

/// The sessions and what answers their messages.
pub struct Mcp {
    pub sessions: Arc<AgentSessions>,
    pub protocol: Protocol,
}

/// Builds the MCP layer and starts the reaper of idle sessions.
pub fn service(
    bus: Arc<Bus>,
    store: Arc<SessionFile>,
    identities: Arc<Identities>,
    options: McpOptions,
    shutdown: CancellationToken,
) -> Arc<Mcp> {
    let sessions = Arc::new(AgentSessions::new(
        bus.registry().clone(),
        store.clone(),
        identities,
        options.session_prefix,
    ));
    sessions.spawn_reaper(options.session_idle, shutdown);
    let permissions = options.permissions;
    let tools = Tools::new(bus, store, permissions.clone());
    Arc::new(Mcp {
        sessions,
        protocol: Protocol::new(tools, permissions),
    })
}
