//! Session bookkeeping on top of rmcp's local session manager.
//!
//! rmcp knows sessions; Switchboard needs agents. This wrapper watches the
//! standalone GET stream of each session: opening it attaches the session to
//! the registry (it becomes an agent, its outbox feeds the stream), and the
//! stream ending (Claude Code never sends DELETE, it just drops the stream)
//! detaches it. It also fixes the rmcp defaults that break a channel server
//! (see `docs/mcp-sessions.md`): no idle expiry while a stream is open, the
//! last GET wins, and resumes replay by our own event ids, never twice.
//! Across a restart it keeps agents' sessions: remembered agents are held
//! for their sessions, and streams closed at shutdown tell Claude Code to
//! wait long enough for the new server before it re-opens them.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::{
        WorkerTransport,
        common::server_side_http::session_id,
        streamable_http_server::session::{
            RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
            local::{
                LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
                create_local_session,
            },
        },
    },
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{identity::Identities, session_store::SessionFile};
use crate::{
    delivery::{Generation, RESUME_WINDOW_AGE, parse_event_id},
    registry::{AttachError, Attached, Claim, Registry},
};

/// What can go wrong with a session: rmcp's own errors, or the agent could
/// not get a name (the cluster directory is unreachable).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Rmcp(#[from] LocalSessionManagerError),
    #[error(transparent)]
    Attach(#[from] AttachError),
}

type SseStream = Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync + 'static>>;

pub struct AgentSessions {
    inner: LocalSessionManager,
    registry: Arc<Registry>,
    store: Arc<SessionFile>,
    identities: Arc<Identities>,
    last_seen: Mutex<HashMap<String, Instant>>,
    /// Sessions between the `--max-sessions` check and their creation.
    creating: Mutex<usize>,
    /// Starts every session id (`<prefix>.<uuid>`), so a load balancer in
    /// front of several replicas can send a session's requests to the one holding it.
    session_prefix: Option<String>,
    /// Fired at shutdown: every agent stream ends with a long retry hint.
    stopping: CancellationToken,
    open_streams: Arc<OpenStreams>,
}

/// How many agent streams are open, for shutdown to wait until all are closed.
#[derive(Default)]
struct OpenStreams {
    count: AtomicUsize,
    none_left: Notify,
}

impl AgentSessions {
    pub fn new(
        mut inner: LocalSessionManager,
        registry: Arc<Registry>,
        store: Arc<SessionFile>,
        identities: Arc<Identities>,
    ) -> Self {
        // rmcp closes a session after 5 minutes without client messages even
        // while its GET stream is open, leaving an idle agent deaf; the reaper
        // below expires only sessions without a stream.
        inner.session_config.keep_alive = None;
        inner.session_config.sse_retry = Some(super::SSE_RETRY);
        Self {
            inner,
            registry,
            store,
            identities,
            last_seen: Mutex::new(HashMap::new()),
            creating: Mutex::new(0),
            session_prefix: None,
            stopping: CancellationToken::new(),
            open_streams: Arc::default(),
        }
    }

    /// Holds each remembered agent's name for its session, so the session,
    /// restored when Claude Code re-opens its stream, finds it, and messages
    /// sent to it meanwhile wait. Sessions that never come back are reaped
    /// like any idle one.
    pub async fn restore_agents(&self) -> Result<(), AttachError> {
        for (session, name) in self.store.remembered_agents() {
            // Claude Code comes back once the retry hint of the last stream has passed.
            if self
                .registry
                .restore(&session, &name, super::RESTART_RETRY)
                .await?
            {
                self.touch(&session.into());
            }
        }
        Ok(())
    }

    /// Ends every agent stream with a retry hint long enough for a restart
    /// (Claude Code gives up on a session whose stream stays refused for
    /// twice the hint, and starts a new one), and waits up to `within` for
    /// the streams to close.
    pub async fn close_streams(&self, within: Duration) {
        self.stopping.cancel();
        let all_closed = async {
            loop {
                let none_left = self.open_streams.none_left.notified();
                tokio::pin!(none_left);
                none_left.as_mut().enable();
                if self.open_streams.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                none_left.await;
            }
        };
        if tokio::time::timeout(within, all_closed).await.is_err() {
            tracing::warn!("some agent streams were still open at shutdown");
        }
    }

    pub fn with_session_prefix(mut self, prefix: Option<String>) -> Self {
        self.session_prefix = prefix;
        self
    }

    fn touch(&self, id: &SessionId) {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), Instant::now());
    }

    /// Closes sessions that have had no stream and no request for `idle`.
    pub fn spawn_reaper(self: &Arc<Self>, idle: Duration, shutdown: CancellationToken) {
        let sessions = Arc::downgrade(self);
        // Also the pace at which resume windows are freed after their age.
        let period = (idle / 4).clamp(Duration::from_millis(100), RESUME_WINDOW_AGE / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(sessions) = sessions.upgrade() else {
                    return;
                };
                sessions.registry.tidy();
                for id in sessions.idle_sessions(idle) {
                    tracing::info!(session = %id, "closing session idle for {}s without a stream", idle.as_secs());
                    let id: SessionId = id.into();
                    if let Err(error) = sessions.close_session(&id).await {
                        tracing::warn!(session = %id, %error, "could not close idle session");
                    }
                    sessions.store.forget(&id).await;
                }
            }
        });
    }

    /// Whether `id` is a session this server holds, in memory or in its
    /// session file (restored on its next request). Made-up ids are not.
    pub fn exists(&self, id: &str) -> bool {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
            || self.store.knows(id)
    }

    /// The token that created `id`, as the session file remembers it.
    pub fn owner(&self, id: &str) -> Option<String> {
        self.store.owner(id)
    }

    pub fn set_owner(&self, id: &str, owner: &str) {
        self.store.set_owner(id, owner);
    }

    /// Holds room for one session about to be created, if fewer than `max`
    /// exist or are being created.
    pub fn reserve_slot(self: &Arc<Self>, max: usize) -> Option<SessionSlot> {
        let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        if self.count() + *creating >= max {
            return None;
        }
        *creating += 1;
        Some(SessionSlot(self.clone()))
    }

    /// Sessions the server holds in memory.
    pub fn count(&self) -> usize {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn idle_sessions(&self, idle: Duration) -> Vec<String> {
        let last_seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        last_seen
            .iter()
            .filter(|(id, at)| at.elapsed() > idle && !self.registry.is_attached(id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn attach(
        &self,
        id: &SessionId,
        rmcp_stream: SseStream,
        resume_after: Option<u64>,
    ) -> Result<AgentStream, AttachError> {
        self.touch(id);
        let identity = self.identities.get(id).unwrap_or_default();
        let claim = Claim {
            fixed: identity.fixed,
            declared: identity.declared,
            remembered: self.store.remembered_name(id).await,
        };
        let Attached {
            name,
            note,
            stream: outbox,
        } = self.registry.attach(id, &claim, resume_after).await?;
        self.store.set_name(id, &name).await;
        match &note {
            Some(note) => tracing::info!(agent = %name, session = %id, "agent online, but {note}"),
            None => tracing::info!(agent = %name, session = %id, "agent online"),
        }
        let generation = outbox.generation();
        // The outbox decides when this stream ends (a newer GET supersedes it);
        // rmcp's own stream is merged in so nothing rmcp sends is stranded.
        let ours = outbox
            .into_stream()
            .map(Some)
            .chain(futures::stream::once(async { None }));
        // At shutdown the stream ends early, with the hint to wait out the restart.
        let stopping = self.stopping.clone();
        let farewell = futures::stream::once(async move { stopping.is_cancelled() })
            .filter(|stopped| std::future::ready(*stopped))
            .map(|_| ServerSseMessage::retry(super::RESTART_RETRY));
        let merged = futures::stream::select(rmcp_stream.map(Some), ours)
            .take_while(|item| std::future::ready(item.is_some()))
            .filter_map(std::future::ready)
            .take_until(self.stopping.clone().cancelled_owned())
            .chain(farewell);
        self.open_streams.count.fetch_add(1, Ordering::SeqCst);
        Ok(AgentStream {
            inner: Box::pin(merged),
            _detach_on_drop: DetachGuard {
                registry: self.registry.clone(),
                session: id.to_string(),
                name,
                generation,
                open_streams: self.open_streams.clone(),
            },
        })
    }
}

/// Room for a session being created; released when dropped (by then the
/// session counts itself).
pub struct SessionSlot(Arc<AgentSessions>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        *self.0.creating.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
    }
}

/// An agent's event stream; dropping it (the client went away) detaches the agent.
pub struct AgentStream {
    inner: SseStream,
    _detach_on_drop: DetachGuard,
}

impl Stream for AgentStream {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct DetachGuard {
    registry: Arc<Registry>,
    session: String,
    name: String,
    generation: Generation,
    open_streams: Arc<OpenStreams>,
}

impl Drop for DetachGuard {
    fn drop(&mut self) {
        self.registry.detach(&self.session, self.generation);
        tracing::info!(agent = %self.name, session = %self.session, "agent stream closed");
        if self.open_streams.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.open_streams.none_left.notify_waiters();
        }
    }
}

impl SessionManager for AgentSessions {
    type Error = SessionError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = match &self.session_prefix {
            None => self.inner.create_session().await?,
            Some(prefix) => {
                // What rmcp's own `create_session` does, with our id.
                let id: SessionId = format!("{prefix}.{}", session_id()).into();
                let (handle, worker) =
                    create_local_session(id.clone(), self.inner.session_config.clone());
                self.inner.sessions.write().await.insert(id.clone(), handle);
                (id, WorkerTransport::spawn(worker))
            }
        };
        self.touch(&id);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.registry.forget(id).await;
        self.identities.forget(id);
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id.as_ref());
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let rmcp_stream = self.inner.create_standalone_stream(id).await?;
        Ok(self.attach(id, Box::pin(rmcp_stream), None).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // Our ids resume from our outbox; rmcp's cache would replay its last
        // messages a second time, so its stream restarts fresh instead.
        let resume_after = parse_event_id(&last_event_id);
        let rmcp_stream: SseStream = match resume_after {
            Some(_) => Box::pin(self.inner.create_standalone_stream(id).await?),
            None => Box::pin(self.inner.resume(id, last_event_id).await?),
        };
        Ok(self.attach(id, rmcp_stream, resume_after).await?)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.touch(&id);
        Ok(self.inner.restore_session(id).await?)
    }
}
