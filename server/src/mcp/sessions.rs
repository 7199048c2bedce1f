//! The MCP sessions this server holds, and the bookkeeping that turns a
//! session with an open standalone GET stream into an agent.
//!
//! A session is one row in one table (its id and when it was last heard
//! from): no task, no channel and no buffer per session, so an idle agent
//! costs little more than its connections. Opening the GET stream attaches
//! the session to the registry (it becomes an agent, its outbox feeds the
//! stream), and the stream ending (Claude Code never sends DELETE, it just
//! drops the stream) detaches it. The last GET wins, resumes replay by our
//! own event ids, never twice, and sessions expire only without a stream
//! (see `docs/mcp-sessions.md`). Across a restart it keeps agents' sessions:
//! sessions are remembered on disk, remembered agents are held for their
//! sessions, and streams closed at shutdown tell Claude Code to wait long
//! enough for the new server before it re-opens them.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::{Stream, StreamExt};
use rmcp::model::InitializeRequestParams;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{identity::Identities, session_store::SessionFile};
use crate::{
    delivery::{Delivered, Generation, RESUME_WINDOW_AGE, parse_event_id},
    registry::{AttachError, Attached, Claim, Registry},
};

/// What an agent's event stream carries.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// A message, with its event id.
    Message(Delivered),
    /// How long the client should wait before it re-opens the stream.
    Retry(Duration),
}

pub struct AgentSessions {
    /// Every session in memory, with when it was last heard from.
    last_seen: Mutex<HashMap<String, Instant>>,
    registry: Arc<Registry>,
    store: Arc<SessionFile>,
    identities: Arc<Identities>,
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
        registry: Arc<Registry>,
        store: Arc<SessionFile>,
        identities: Arc<Identities>,
        session_prefix: Option<String>,
    ) -> Self {
        Self {
            last_seen: Mutex::new(HashMap::new()),
            registry,
            store,
            identities,
            creating: Mutex::new(0),
            session_prefix,
            stopping: CancellationToken::new(),
            open_streams: Arc::default(),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.last_seen.lock().unwrap_or_else(|p| p.into_inner())
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
                self.sessions().insert(session, Instant::now());
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

    /// Creates a session for an `initialize` and remembers it on disk, so
    /// it outlives a restart. Returns its id.
    pub fn create(&self, initialize: &InitializeRequestParams) -> String {
        let uuid = uuid::Uuid::new_v4();
        let id = match &self.session_prefix {
            Some(prefix) => format!("{prefix}.{uuid}"),
            None => uuid.to_string(),
        };
        self.sessions().insert(id.clone(), Instant::now());
        self.store.remember(&id, initialize);
        id
    }

    /// Finds the session `id` for a request and marks it heard from. A
    /// session from before a restart is taken back from the session file.
    pub fn find(&self, id: &str) -> bool {
        let mut sessions = self.sessions();
        if let Some(at) = sessions.get_mut(id) {
            *at = Instant::now();
            return true;
        }
        if !self.store.was_initialized(id) {
            return false;
        }
        sessions.insert(id.to_owned(), Instant::now());
        tracing::info!(session = %id, "session restored from the session file");
        true
    }

    /// Ends the session `id` (DELETE, or idle): its agent and name go.
    pub async fn close(&self, id: &str) {
        self.registry.forget(id).await;
        self.identities.forget(id);
        self.sessions().remove(id);
        self.store.forget(id).await;
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
                    sessions.close(&id).await;
                }
            }
        });
    }

    /// Whether `id` is a session this server holds, in memory or in its
    /// session file (restored on its next request). Made-up ids are not.
    pub fn exists(&self, id: &str) -> bool {
        self.sessions().contains_key(id) || self.store.knows(id)
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
        self.sessions().len()
    }

    fn idle_sessions(&self, idle: Duration) -> Vec<String> {
        self.sessions()
            .iter()
            .filter(|(id, at)| at.elapsed() > idle && !self.registry.is_attached(id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Opens the agent stream of session `id`: the session becomes an agent
    /// (or the agent it was). With a `Last-Event-ID` of ours, what the client
    /// missed is sent again first.
    pub async fn open_stream(
        &self,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<AgentStream, AttachError> {
        let resume_after = last_event_id.and_then(parse_event_id);
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
        // At shutdown the stream ends early, with the hint to wait out the restart.
        let stopping = self.stopping.clone();
        let farewell = futures::stream::once(async move { stopping.is_cancelled() })
            .filter(|stopped| std::future::ready(*stopped))
            .map(|_| StreamItem::Retry(super::RESTART_RETRY));
        // The outbox decides when this stream ends (a newer GET supersedes it).
        let items = outbox
            .into_stream()
            .map(StreamItem::Message)
            .take_until(self.stopping.clone().cancelled_owned())
            .chain(farewell);
        self.open_streams.count.fetch_add(1, Ordering::SeqCst);
        Ok(AgentStream {
            inner: Box::pin(items),
            _detach_on_drop: DetachGuard {
                registry: self.registry.clone(),
                session: id.to_owned(),
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
    inner: Pin<Box<dyn Stream<Item = StreamItem> + Send + 'static>>,
    _detach_on_drop: DetachGuard,
}

impl Stream for AgentStream {
    type Item = StreamItem;

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
