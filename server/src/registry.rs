//! The agent registry: this replica's sessions that are agents, under which
//! names, with their outboxes.
//!
//! A session becomes an agent when it attaches its stream and stops being one
//! when the stream ends. Names are `agent-N` in order of registration (N never
//! reused) until the agent claims another; names are unique among online
//! agents, ignoring case. An agent whose stream dropped keeps its name for a
//! short grace period so a reconnect finds it intact and messages to it wait
//! instead of failing; once that passes, messages to it wait in its inbox
//! (see [`Mail`]). Names, numbers and agents on other replicas come from
//! the [`Cluster`]; the table here is what this replica holds.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime},
};

use rmcp::model::ServerJsonRpcMessage;

use crate::{
    cluster::{Cluster, ClusterError, Held, LocalAgents, LocalCluster, Sequence},
    delivery::{
        Generation, LocalAgent, Outbox, OutboxStream, PushError, Recipient,
        inbox::{Away, InboxError, InboxLimits, Inboxes, Mail, is_auto_name},
        journal::Journal,
    },
};

pub const MAX_NAME_LEN: usize = 32;
/// The name triggers send as without authentication.
pub const WEBHOOK_NAME: &str = "webhook";
/// The name a person at the dashboard sends as without authentication.
pub const OPERATOR_NAME: &str = "operator";
/// Names starting with this belong to the server (its probe, its own notes).
pub const SERVER_NAME_PREFIX: &str = "switchboard";

/// Names no agent may take, with or without authentication: they would let
/// an agent pass as the server, an unauthenticated trigger or the operator.
pub fn is_server_name(name: &str) -> bool {
    let key = name.to_ascii_lowercase();
    key == WEBHOOK_NAME || key == OPERATOR_NAME || key.starts_with(SERVER_NAME_PREFIX)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error(
        "\"{0}\" is not a valid name: use 1-{MAX_NAME_LEN} characters from A-Z, a-z, 0-9, '_' and '-'"
    )]
    Invalid(String),
    #[error("the name \"{0}\" is taken by another online agent; pick a different one")]
    Taken(String),
    #[error(
        "this session is not an agent yet: it becomes one when it opens its event stream (GET /mcp)"
    )]
    NotAnAgent,
    #[error("your name \"{0}\" is fixed by your access token and cannot be changed")]
    Fixed(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("no agent named \"{name}\" is online; online: {}", online_list(.online))]
    Unknown { name: String, online: Vec<String> },
    #[error("\"{0}\" is you; send-message delivers to another agent")]
    Yourself(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl From<InboxError> for LookupError {
    fn from(error: InboxError) -> Self {
        match error {
            InboxError::Unreachable(error) => LookupError::Cluster(error),
            other => LookupError::Cluster(ClusterError(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttachError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("the session was closed while its stream was opening; start a new session")]
    Closed,
    #[error(
        "the token of {0} is in use by another online session, and one token is one agent; close that session, or give this one a token of its own"
    )]
    TokenInUse(String),
}

fn online_list(online: &[String]) -> String {
    if online.is_empty() {
        "nobody".into()
    } else {
        online.join(", ")
    }
}

pub fn validate_name(name: &str) -> Result<(), NameError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NameError::Invalid(name.chars().take(64).collect()))
    }
}

/// What `list-agents` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Online agents in order of registration.
    pub agents: Vec<String>,
    /// Agents that are away and keep an inbox, by name.
    pub away: Vec<Away>,
    /// The caller's name, when the caller is an agent.
    pub you: Option<String>,
    /// Why the caller did not get the name it asked for.
    pub note: Option<String>,
}

/// An agent on this replica's stream, as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineAgent {
    pub name: String,
    /// When its stream opened.
    pub since: SystemTime,
    /// Messages queued for its stream, not yet written.
    pub waiting: usize,
}

/// The names a session asks for when it attaches, strongest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// Bound to the session's token: nobody else may hold it, and it cannot be renamed away.
    pub fixed: Option<String>,
    /// Asked for by the client (the `X-Agent-Name` header).
    pub declared: Option<String>,
    /// What the session was called before a server restart.
    pub remembered: Option<String>,
}

/// The result of [`Registry::attach`].
pub struct Attached {
    pub name: String,
    /// Why the agent did not get the name it asked for.
    pub note: Option<String>,
    pub stream: OutboxStream,
}

struct Entry {
    name: Option<String>,
    fixed: bool,
    note: Option<String>,
    /// Registration order, for listing; 0 until first attached.
    order: u64,
    outbox: Arc<Outbox>,
    attached: Option<Generation>,
    detached_at: Option<Instant>,
    /// When its current stream opened, for the dashboard.
    since: Option<SystemTime>,
    /// Restored from before a restart and not back since.
    restored: bool,
}

#[derive(Default)]
struct State {
    reserved: std::collections::HashSet<String>,
    sessions: HashMap<String, Entry>,
    /// Lower-cased name -> session id, for agents online or within grace.
    names: HashMap<String, String>,
}

pub struct Registry {
    state: Mutex<State>,
    queue_depth: usize,
    grace: Duration,
    cluster: Arc<dyn Cluster>,
    mail: Arc<dyn Mail>,
    journal: Arc<Journal>,
}

impl State {
    fn holder_in_grace(&self, key: &str, grace: Duration) -> Option<&String> {
        let session = self.names.get(key)?;
        let entry = self.sessions.get(session)?;
        let live =
            entry.attached.is_some() || entry.detached_at.is_some_and(|at| at.elapsed() < grace);
        live.then_some(session)
    }

    /// Whether `session` may take `name`: no other live agent here holds it
    /// and it is not reserved for someone else (`owner` is the session's fixed name).
    fn may_claim(&self, session: &str, name: &str, owner: Option<&str>, grace: Duration) -> bool {
        let key = name.to_ascii_lowercase();
        if is_server_name(&key) {
            return false;
        }
        if self.reserved.contains(&key) && !owner.is_some_and(|o| o.eq_ignore_ascii_case(name)) {
            return false;
        }
        self.holder_in_grace(&key, grace)
            .is_none_or(|holder| holder == session)
    }

    fn claim(&mut self, session: &str, name: &str, owner: Option<&str>, grace: Duration) -> bool {
        let ok = self.may_claim(session, name, owner, grace);
        if ok {
            self.names
                .insert(name.to_ascii_lowercase(), session.to_owned());
        }
        ok
    }

    fn release(&mut self, session: &str, name: &str) {
        let key = name.to_ascii_lowercase();
        if self.names.get(&key).is_some_and(|s| s == session) {
            self.names.remove(&key);
        }
    }
}

impl Registry {
    /// A registry that is the whole cluster, keeping nothing on disk.
    pub fn new(queue_depth: usize, grace: Duration) -> Self {
        let journal = Journal::disabled();
        Self::with_cluster(
            queue_depth,
            grace,
            Arc::new(LocalCluster::default()),
            Arc::new(Inboxes::new(InboxLimits::default(), journal.clone())),
            journal,
        )
    }

    /// `journal` keeps what waits in this replica's outboxes; `mail` keeps
    /// the inboxes (here, or in the cluster's store).
    pub fn with_cluster(
        queue_depth: usize,
        grace: Duration,
        cluster: Arc<dyn Cluster>,
        mail: Arc<dyn Mail>,
        journal: Arc<Journal>,
    ) -> Self {
        Self {
            state: Mutex::new(State::default()),
            queue_depth,
            grace,
            cluster,
            mail,
            journal,
        }
    }

    pub fn cluster(&self) -> &Arc<dyn Cluster> {
        &self.cluster
    }

    pub fn mail(&self) -> &Arc<dyn Mail> {
        &self.mail
    }

    fn new_outbox(&self) -> Arc<Outbox> {
        Outbox::new(self.queue_depth, self.journal.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each method leaves the maps consistent before anything can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Names only their owner may hold: every token's name (a trigger's too,
    /// so no agent can pass as it).
    pub fn reserve(&self, names: impl IntoIterator<Item = String>) {
        let mut state = self.lock();
        state
            .reserved
            .extend(names.into_iter().map(|n| n.to_ascii_lowercase()));
    }

    /// Takes `name` here and in the cluster. The local check first spares a
    /// round trip for names taken on this replica; the local claim after the
    /// cluster's settles a race between two sessions of this replica.
    async fn take(
        &self,
        session: &str,
        name: &str,
        owner: Option<&str>,
        order: u64,
    ) -> Result<bool, ClusterError> {
        if !self.lock().may_claim(session, name, owner, self.grace) {
            return Ok(false);
        }
        if !self.cluster.claim(session, name, order).await? {
            return Ok(false);
        }
        if self.lock().claim(session, name, owner, self.grace) {
            return Ok(true);
        }
        self.cluster.release(session, name).await;
        Ok(false)
    }

    /// Frees `name` if a session restored from before a restart holds it and
    /// has not come back. A session declaring that name is most likely the
    /// same client, which gave up its old session and started a new one.
    async fn free_from_restored(&self, name: &str) {
        let key = name.to_ascii_lowercase();
        let session = {
            let mut state = self.lock();
            let Some(session) = state.names.get(&key).cloned() else {
                return;
            };
            let Some(entry) = state.sessions.get_mut(&session).filter(|e| e.restored) else {
                return;
            };
            entry.name = None;
            state.names.remove(&key);
            session
        };
        self.cluster.release(&session, name).await;
    }

    /// The strongest name of `claim` (or the session's current one) that it
    /// can take, and why it did not get the one it asked for.
    async fn pick_name(
        &self,
        session: &str,
        claim: &Claim,
        current: Option<String>,
        order: u64,
    ) -> Result<(Option<String>, Option<String>), AttachError> {
        if let Some(wanted) = &claim.fixed {
            return self.take_fixed(session, wanted, order).await;
        }
        if let Some(current) = current
            && self.take(session, &current, None, order).await?
        {
            return Ok((Some(current), None));
        }
        let mut note = None;
        if let Some(declared) = &claim.declared {
            self.free_from_restored(declared).await;
            match validate_name(declared) {
                Err(error) => note = Some(format!("the declared {error}")),
                Ok(()) if self.take(session, declared, None, order).await? => {
                    return Ok((Some(declared.clone()), None));
                }
                Ok(()) => {
                    note = Some(format!(
                        "the name \"{declared}\" you declared (X-Agent-Name) is held by another online agent"
                    ));
                }
            }
        }
        if let Some(remembered) = claim
            .remembered
            .as_ref()
            .filter(|n| validate_name(n).is_ok())
            && self.take(session, remembered, None, order).await?
        {
            return Ok((Some(remembered.clone()), note));
        }
        Ok((None, note))
    }

    /// A token's agent is always called by the token's name. A session of the
    /// same token whose stream is open keeps it and this one is refused; one
    /// whose stream dropped (the client re-initialized) is replaced.
    async fn take_fixed(
        &self,
        session: &str,
        wanted: &str,
        order: u64,
    ) -> Result<(Option<String>, Option<String>), AttachError> {
        if self.take(session, wanted, Some(wanted), order).await? {
            return Ok((Some(wanted.to_owned()), None));
        }
        let stale = {
            let state = self.lock();
            state
                .names
                .get(&wanted.to_ascii_lowercase())
                .filter(|holder| *holder != session)
                .filter(|holder| {
                    state
                        .sessions
                        .get(*holder)
                        .is_some_and(|e| e.attached.is_none())
                })
                .cloned()
        };
        if let Some(stale) = stale {
            tracing::info!(agent = %wanted, replaced = %stale, by = %session, "a new session of the token replaces one whose stream dropped");
            self.forget(&stale).await;
            if self.take(session, wanted, Some(wanted), order).await? {
                return Ok((Some(wanted.to_owned()), None));
            }
        }
        Err(AttachError::TokenInUse(wanted.to_owned()))
    }

    /// The session holding `name` on this replica with its stream open, if any.
    pub fn online_holder(&self, name: &str) -> Option<String> {
        let state = self.lock();
        let holder = state.names.get(&name.to_ascii_lowercase())?;
        state
            .sessions
            .get(holder)
            .is_some_and(|e| e.attached.is_some())
            .then(|| holder.clone())
    }

    /// The session opened its stream: it is (again) an agent. `claim` says
    /// which name it asks for; the outcome says which it got and, when that is
    /// not the one it asked for, why.
    pub async fn attach(
        &self,
        session: &str,
        claim: &Claim,
        resume_after: Option<u64>,
    ) -> Result<Attached, AttachError> {
        let (current, order) = {
            let mut state = self.lock();
            let entry = state
                .sessions
                .entry(session.to_owned())
                .or_insert_with(|| Entry {
                    name: None,
                    fixed: false,
                    order: 0,
                    outbox: self.new_outbox(),
                    attached: None,
                    detached_at: None,
                    since: None,
                    note: None,
                    restored: false,
                });
            (entry.name.clone(), entry.order)
        };
        let order = match order {
            0 => self.cluster.next(Sequence::Order).await?,
            order => order,
        };
        let (name, note) = self.pick_name(session, claim, current, order).await?;
        let name = match name {
            Some(name) => name,
            None => loop {
                let number = self.cluster.next(Sequence::AgentNumber).await?;
                let name = format!("agent-{number}");
                if self.take(session, &name, None, order).await? {
                    break name;
                }
            },
        };
        // A sender that found the agent away queued before this (and its
        // message is here) or finds the inbox gone and is told so; one that
        // finds it online comes after.
        let mail = self.mail.take(&name).await;
        let stream = {
            let mut state = self.lock();
            match state.sessions.get_mut(session) {
                Some(entry) => {
                    let (generation, stream) = entry.outbox.attach(resume_after, mail);
                    entry.name = Some(name.clone());
                    entry.fixed = claim.fixed.is_some();
                    entry.order = order;
                    entry.attached = Some(generation);
                    entry.detached_at = None;
                    entry.since = Some(SystemTime::now());
                    entry.restored = false;
                    entry.note.clone_from(&note);
                    Some(stream)
                }
                None => {
                    state.release(session, &name);
                    self.mail.went_away(&name, mail);
                    None
                }
            }
        };
        let Some(stream) = stream else {
            self.cluster.release(session, &name).await;
            return Err(AttachError::Closed);
        };
        // A lease renewal that read the table before this attach may have
        // marked the agent offline; the next one follows at once.
        self.cluster.presence_changed();
        Ok(Attached { name, note, stream })
    }

    /// A session remembered from before a restart: its agent holds `name`,
    /// offline, as if its stream had dropped `back_within` from now. Until
    /// that and the grace have passed, messages to it wait for its stream and
    /// nobody else can take the name. False if the name is not free.
    pub async fn restore(
        &self,
        session: &str,
        name: &str,
        back_within: Duration,
    ) -> Result<bool, ClusterError> {
        let order = self.cluster.next(Sequence::Order).await?;
        if !self.take(session, name, None, order).await? {
            return Ok(false);
        }
        // Away since the restart: once the wait for it is over, messages
        // to it go to its inbox.
        self.mail.went_away(name, Vec::new());
        self.lock().sessions.insert(
            session.to_owned(),
            Entry {
                name: Some(name.to_owned()),
                fixed: false,
                note: None,
                order,
                outbox: self.new_outbox(),
                attached: None,
                detached_at: Some(Instant::now() + back_within),
                since: None,
                restored: true,
            },
        );
        Ok(true)
    }

    /// The stream of `generation` ended; a newer stream of the same session
    /// leaves the agent online.
    pub fn detach(&self, session: &str, generation: Generation) {
        let mut state = self.lock();
        if let Some(entry) = state.sessions.get_mut(session)
            && entry.attached == Some(generation)
        {
            entry.attached = None;
            entry.detached_at = Some(Instant::now());
            let unsent = entry.outbox.detach(generation);
            if let Some(name) = &entry.name {
                self.mail.went_away(name, unsent);
            }
            drop(state);
            self.cluster.presence_changed();
        }
    }

    /// The session is gone for good.
    pub async fn forget(&self, session: &str) {
        let name = {
            let mut state = self.lock();
            let Some(entry) = state.sessions.remove(session) else {
                return;
            };
            let unsent = entry.outbox.close();
            if let Some(name) = &entry.name {
                let holder =
                    state.names.get(&name.to_ascii_lowercase()) == Some(&session.to_owned());
                if holder || !unsent.is_empty() {
                    self.mail.went_away(name, unsent);
                }
                // An `agent-N` never comes back once its session is gone.
                if holder && is_auto_name(name) {
                    self.mail.gone(name);
                }
                state.release(session, name);
            }
            entry.name
        };
        if let Some(name) = name {
            self.cluster.release(session, &name).await;
        }
    }

    /// Frees messages kept for resumes past their age, in every outbox, and
    /// drops inbox mail past its TTL.
    pub fn tidy(&self) {
        self.mail.expire();
        for outbox in self.outboxes() {
            outbox.trim();
        }
    }

    pub fn is_attached(&self, session: &str) -> bool {
        self.lock()
            .sessions
            .get(session)
            .is_some_and(|e| e.attached.is_some())
    }

    /// Renames the caller's agent. Returns the old name.
    pub async fn rename(&self, session: &str, new: &str) -> Result<String, NameError> {
        validate_name(new)?;
        let (old, order) = match self.lock().sessions.get(session) {
            Some(Entry {
                name: Some(name),
                attached: Some(_),
                fixed: true,
                ..
            }) => return Err(NameError::Fixed(name.clone())),
            Some(Entry {
                name: Some(name),
                attached: Some(_),
                order,
                ..
            }) => (name.clone(), *order),
            _ => return Err(NameError::NotAnAgent),
        };
        if !self.take(session, new, None, order).await? {
            return Err(NameError::Taken(new.to_owned()));
        }
        let same_key = old.eq_ignore_ascii_case(new);
        // Claiming a name that is away claims its mail too.
        let mail = self.mail.take(new).await;
        {
            let mut state = self.lock();
            if !same_key {
                state.release(session, &old);
            }
            match state.sessions.get_mut(session) {
                Some(entry) => {
                    entry.name = Some(new.to_owned());
                    entry.note = None;
                    entry.outbox.append(mail);
                }
                None => self.mail.went_away(new, mail),
            }
        }
        if !same_key {
            self.cluster.release(session, &old).await;
        }
        Ok(old)
    }

    /// The caller's name and stable id (see [`SENDER_ID_META`]), if it is an
    /// online agent.
    ///
    /// [`SENDER_ID_META`]: crate::message::SENDER_ID_META
    pub fn sender(&self, session: &str) -> Option<(String, String)> {
        let state = self.lock();
        let entry = state.sessions.get(session)?;
        let name = entry.attached.and(entry.name.clone())?;
        let id = if entry.fixed {
            format!("token:{}", name.to_ascii_lowercase())
        } else {
            format!("session:{}", entry.order)
        };
        Some((name, id))
    }

    /// Online agents here and on other replicas. If the cluster cannot be
    /// asked, the agents of this replica are still listed.
    pub async fn roster(&self, session: &str) -> Roster {
        let (mut online, you, note) = {
            let state = self.lock();
            let online: Vec<(u64, String)> = state
                .sessions
                .values()
                .filter(|e| e.attached.is_some())
                .filter_map(|e| e.name.clone().map(|n| (e.order, n)))
                .collect();
            let caller = state.sessions.get(session).filter(|e| e.attached.is_some());
            (
                online,
                caller.and_then(|e| e.name.clone()),
                caller.and_then(|e| e.note.clone()),
            )
        };
        match self.cluster.elsewhere().await {
            Ok(elsewhere) => online.extend(elsewhere),
            Err(error) => tracing::warn!(%error, "listing only this replica's agents"),
        }
        online.sort();
        let agents: Vec<String> = online.into_iter().map(|(_, n)| n).collect();
        let away = self
            .mail
            .away()
            .await
            .into_iter()
            .filter(|a| !agents.iter().any(|n| n.eq_ignore_ascii_case(&a.name)))
            .collect();
        Roster {
            agents,
            away,
            you,
            note,
        }
    }

    /// Agents on this replica's stream, for the `/health` count and `--max-agents`.
    pub fn online_count(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|e| e.attached.is_some())
            .count()
    }

    /// This replica's online agents in order of registration, for the dashboard.
    pub fn online_agents(&self) -> Vec<OnlineAgent> {
        // Outboxes are counted out of the lock, as in `queued`.
        let mut online: Vec<_> = self
            .lock()
            .sessions
            .values()
            .filter(|e| e.attached.is_some())
            .filter_map(|e| Some((e.order, e.name.clone()?, e.since?, e.outbox.clone())))
            .collect();
        online.sort_by_key(|(order, ..)| *order);
        online
            .into_iter()
            .map(|(_, name, since, outbox)| OnlineAgent {
                name,
                since,
                waiting: outbox.waiting(),
            })
            .collect()
    }

    /// Messages waiting in this replica's queues: in all, and in the fullest.
    pub fn queued(&self) -> (usize, usize) {
        self.outboxes()
            .iter()
            .map(|o| o.waiting())
            .fold((0, 0), |(sum, max), n| (sum + n, max.max(n)))
    }

    /// Bytes of delivered messages kept for `Last-Event-ID` resumes, in all.
    pub fn resume_window_bytes(&self) -> usize {
        self.outboxes().iter().map(|o| o.kept_bytes()).sum()
    }

    /// Every session's outbox, taken out of the lock so that counting does
    /// not hold up delivery.
    fn outboxes(&self) -> Vec<Arc<Outbox>> {
        self.lock()
            .sessions
            .values()
            .map(|e| e.outbox.clone())
            .collect()
    }

    /// Names this replica holds (online or within grace), for the cluster's leases.
    fn held_names(&self) -> Vec<Held> {
        let state = self.lock();
        state
            .names
            .keys()
            .filter_map(|key| {
                let session = state.holder_in_grace(key, self.grace)?;
                let entry = state.sessions.get(session)?;
                Some(Held {
                    session: session.clone(),
                    name: entry.name.clone()?,
                    order: entry.order,
                    online: entry.attached.is_some(),
                })
            })
            .collect()
    }

    /// Queues a control notification (a permission answer) on the stream of
    /// `session`'s agent on this replica. It is journalled like any message;
    /// nobody waits for the disk, since only the live session can use it.
    pub fn notify_session(
        &self,
        session: &str,
        notification: ServerJsonRpcMessage,
    ) -> Result<(), PushError> {
        let agent = self.local_agent(session).ok_or(PushError::Offline)?;
        agent
            .outbox
            .push(&agent.name, Arc::new(notification))
            .map(drop)
    }

    /// The agent of this replica held by `session`, for a message routed here.
    fn local_agent(&self, session: &str) -> Option<LocalAgent> {
        let state = self.lock();
        let entry = state.sessions.get(session)?;
        let name = entry.name.clone()?;
        let key = name.to_ascii_lowercase();
        (state.holder_in_grace(&key, self.grace) == Some(&session.to_owned())).then(|| LocalAgent {
            name,
            outbox: entry.outbox.clone(),
            reconnecting_until: entry.detached_at.map(|at| at + self.grace),
        })
    }

    /// Finds the agent a message from `sender_session` (`None`: from outside
    /// the bus) to `name` goes to: on this replica, or on another.
    pub async fn recipient(
        &self,
        sender_session: Option<&str>,
        name: &str,
    ) -> Result<Recipient, LookupError> {
        let found = {
            let state = self.lock();
            let key = name.to_ascii_lowercase();
            state
                .holder_in_grace(&key, self.grace)
                .and_then(|session| Some((session.clone(), state.sessions.get(session)?)))
                .map(|(session, entry)| {
                    (
                        session,
                        LocalAgent {
                            name: entry.name.clone().unwrap_or_default(),
                            outbox: entry.outbox.clone(),
                            reconnecting_until: entry.detached_at.map(|at| at + self.grace),
                        },
                    )
                })
        };
        match found {
            Some((session, agent)) if Some(session.as_str()) == sender_session => {
                Err(LookupError::Yourself(agent.name))
            }
            Some((_, agent)) => Ok(Recipient::Local(agent)),
            None => match self.cluster.locate(name).await? {
                Some(remote) => Ok(Recipient::Remote(remote)),
                None => match self.mail.holds(name).await? {
                    Some(away) => Ok(Recipient::Away(away)),
                    None => Err(LookupError::Unknown {
                        name: name.chars().take(64).collect(),
                        online: self.roster(sender_session.unwrap_or_default()).await.agents,
                    }),
                },
            },
        }
    }
}

#[async_trait::async_trait]
impl LocalAgents for Registry {
    fn held(&self) -> Vec<Held> {
        self.held_names()
    }

    async fn hand_over(
        &self,
        session: &str,
        notification: Arc<ServerJsonRpcMessage>,
    ) -> Result<(), PushError> {
        let agent = self.local_agent(session).ok_or(PushError::Offline)?;
        agent.hand_over(notification).await?.await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn valid_names_are_short_and_plain(name in "\\PC{0,40}") {
            if validate_name(&name).is_ok() {
                prop_assert!((1..=MAX_NAME_LEN).contains(&name.len()));
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            }
        }
    }

    fn registry() -> Registry {
        Registry::new(8, Duration::from_millis(200))
    }

    async fn attach(r: &Registry, session: &str, claim: &Claim) -> Attached {
        r.attach(session, claim, None).await.expect("local attach")
    }

    #[tokio::test]
    async fn numbers_in_registration_order_never_reused() {
        let r = registry();
        assert_eq!(attach(&r, "s1", &Claim::default()).await.name, "agent-1");
        assert_eq!(attach(&r, "s2", &Claim::default()).await.name, "agent-2");
        r.forget("s1").await;
        assert_eq!(attach(&r, "s3", &Claim::default()).await.name, "agent-3");
        assert_eq!(r.roster("s2").await.agents, ["agent-2", "agent-3"]);
        assert_eq!(r.roster("s2").await.you.as_deref(), Some("agent-2"));
    }

    #[tokio::test]
    async fn rename_rules() {
        let r = registry();
        attach(&r, "s1", &Claim::default()).await;
        attach(&r, "s2", &Claim::default()).await;
        assert_eq!(r.rename("s1", "coder").await, Ok("agent-1".into()));
        assert_eq!(
            r.rename("s2", "CODER").await,
            Err(NameError::Taken("CODER".into()))
        );
        assert!(matches!(
            r.rename("s2", "bad name").await,
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            r.rename("s2", &"x".repeat(33)).await,
            Err(NameError::Invalid(_))
        ));
        assert_eq!(r.rename("s3", "x").await, Err(NameError::NotAnAgent));
        assert_eq!(
            r.rename("s1", "Coder").await,
            Ok("coder".into()),
            "case change of own name"
        );
    }

    #[tokio::test]
    async fn reattach_keeps_name_and_remembered_name_is_reclaimed() {
        let r = registry();
        let first = attach(&r, "s1", &Claim::default()).await;
        r.rename("s1", "planner").await.unwrap();
        r.detach("s1", first.stream.generation());
        assert!(r.roster("s1").await.agents.is_empty(), "offline at once");
        assert_eq!(
            r.held(),
            [Held {
                session: "s1".into(),
                name: "planner".into(),
                order: 1,
                online: false
            }],
            "the name is held through the grace period"
        );
        assert_eq!(attach(&r, "s1", &Claim::default()).await.name, "planner");
        assert_eq!(first.name, "agent-1");
        let restarted = registry();
        let remembered = Claim {
            remembered: Some("planner".into()),
            ..Claim::default()
        };
        assert_eq!(attach(&restarted, "s9", &remembered).await.name, "planner");
        assert_eq!(attach(&restarted, "s8", &remembered).await.name, "agent-1");
    }

    #[tokio::test]
    async fn restored_agents_hold_their_names_and_messages_wait_for_them() {
        let r = registry();
        assert!(
            r.restore("s1", "coder", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(
            r.roster("s2").await.agents.is_empty(),
            "offline until it streams"
        );
        attach(&r, "s2", &Claim::default()).await;
        assert_eq!(
            r.rename("s2", "coder").await,
            Err(NameError::Taken("coder".into()))
        );
        let Ok(Recipient::Local(agent)) = r.recipient(Some("s2"), "coder").await else {
            panic!("a restored agent is a recipient");
        };
        assert!(agent.reconnecting_until.unwrap() > Instant::now() + Duration::from_secs(4));
        assert_eq!(attach(&r, "s1", &Claim::default()).await.name, "coder");
    }

    #[tokio::test]
    async fn a_declared_name_is_taken_back_from_a_restored_session() {
        let r = registry();
        assert!(
            r.restore("old", "planner", Duration::from_secs(5))
                .await
                .unwrap()
        );
        let declared = Claim {
            declared: Some("planner".into()),
            ..Claim::default()
        };
        assert_eq!(attach(&r, "new", &declared).await.name, "planner");
        let late = attach(&r, "old", &Claim::default()).await;
        assert_eq!(
            late.name, "agent-1",
            "the name went to the declaring session"
        );
    }

    #[tokio::test]
    async fn declared_names_fall_back_with_a_reason() {
        let r = registry();
        let planner = Claim {
            declared: Some("planner".into()),
            ..Claim::default()
        };
        assert_eq!(attach(&r, "s1", &planner).await.name, "planner");
        let second = attach(&r, "s2", &planner).await;
        assert_eq!(second.name, "agent-1");
        assert!(second.note.unwrap().contains("held by another"));
        assert!(r.roster("s2").await.note.is_some());
    }

    #[tokio::test]
    async fn fixed_names_are_reserved_and_permanent() {
        let r = registry();
        r.reserve(["ops".to_owned()]);
        attach(&r, "s1", &Claim::default()).await;
        assert_eq!(
            r.rename("s1", "OPS").await,
            Err(NameError::Taken("OPS".into()))
        );
        let ops = Claim {
            fixed: Some("ops".into()),
            ..Claim::default()
        };
        assert_eq!(attach(&r, "s2", &ops).await.name, "ops");
        assert_eq!(
            r.rename("s2", "other").await,
            Err(NameError::Fixed("ops".into()))
        );
        let impostor = Claim {
            declared: Some("ops".into()),
            ..Claim::default()
        };
        assert_ne!(attach(&r, "s3", &impostor).await.name, "ops");
    }

    #[tokio::test]
    async fn one_token_is_one_agent() {
        let r = registry();
        let ops = Claim {
            fixed: Some("ops".into()),
            ..Claim::default()
        };
        let first = attach(&r, "s1", &ops).await;
        assert_eq!(first.name, "ops");
        assert!(matches!(
            r.attach("s2", &ops, None).await,
            Err(AttachError::TokenInUse(name)) if name == "ops"
        ));
        assert_eq!(
            r.sender("s1").map(|(name, _)| name).as_deref(),
            Some("ops"),
            "the first keeps it"
        );
        r.detach("s1", first.stream.generation());
        assert_eq!(
            attach(&r, "s2", &ops).await.name,
            "ops",
            "replaces a dropped one"
        );
        assert!(matches!(
            r.attach("s1", &ops, None).await,
            Err(AttachError::TokenInUse(_))
        ));
    }

    #[tokio::test]
    async fn server_names_are_nobodys() {
        let r = registry();
        attach(&r, "s1", &Claim::default()).await;
        for name in [
            "webhook",
            "WebHook",
            "operator",
            "Operator",
            "switchboard",
            "switchboard-probe",
            "SwitchBoard2",
        ] {
            assert_eq!(
                r.rename("s1", name).await,
                Err(NameError::Taken(name.into())),
                "{name}"
            );
        }
        let declared = Claim {
            declared: Some("webhook".into()),
            ..Claim::default()
        };
        assert!(attach(&r, "s2", &declared).await.name.starts_with("agent-"));
    }

    #[tokio::test]
    async fn lookup_errors() {
        let r = registry();
        attach(&r, "s1", &Claim::default()).await;
        attach(&r, "s2", &Claim::default()).await;
        assert!(r.recipient(Some("s1"), "AGENT-2").await.is_ok());
        assert_eq!(
            r.recipient(Some("s1"), "agent-1").await.err(),
            Some(LookupError::Yourself("agent-1".into()))
        );
        let err = r.recipient(Some("s1"), "ghost").await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "no agent named \"ghost\" is online; online: agent-1, agent-2"
        );
    }
}
