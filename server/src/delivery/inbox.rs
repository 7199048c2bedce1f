//! Inboxes: mail for agents that are away. An agent whose stream ends gets
//! an inbox under its name, holding what its outbox had not yet sent; while
//! it is away, messages to it queue there (within `--inbox-max-messages`
//! and `--inbox-max-bytes`), each for at most `--inbox-ttl`. When a stream
//! opens under that name again, the inbox is handed to it whole, in order.
//! All inboxes together hold at most `--inbox-max-total-bytes`, and at most
//! `--max-inboxes` of them exist: past that, an empty inbox away the longest
//! makes room, and a name that would need a new one when none is empty gets
//! none (mail an agent's stream had not sent yet always finds its inbox).
//!
//! An inbox belongs to a name, not to a session: whoever comes back as
//! `coder` (the same session, or a new one declaring the name, or one whose
//! token fixes it) gets `coder`'s mail. `agent-N` names are the server's and
//! never given twice, so their inbox lasts only while their session may
//! still come back.
//!
//! [`Mail`] is what the registry and the bus need of inboxes; [`Inboxes`]
//! keeps them in this process (with the [`Journal`] on disk), and in cluster
//! mode Redis keeps them for every replica.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rmcp::model::ServerJsonRpcMessage;

use super::journal::{Backlog, Journal, Record};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Whether the server gave `name` out (`agent-N`) rather than the agent
/// choosing it.
pub fn is_auto_name(name: &str) -> bool {
    name.strip_prefix("agent-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A message waiting for a stream, with its journal row.
#[derive(Clone)]
pub struct Queued {
    pub row: Option<u64>,
    /// The notification's JSON, serialized once when it was queued: what
    /// the stream sends, the journal keeps and Redis carries.
    pub json: Arc<str>,
    pub at_ms: u64,
}

impl Queued {
    /// Its size as the stream will send it.
    pub fn bytes(&self) -> usize {
        self.json.len()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct InboxLimits {
    pub ttl: Duration,
    pub max_messages: usize,
    pub max_bytes: usize,
    /// Bytes waiting in all inboxes together.
    pub max_total_bytes: usize,
    /// Inboxes at once.
    pub max_inboxes: usize,
}

impl Default for InboxLimits {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_messages: 1000,
            max_bytes: 16 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_inboxes: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboxError {
    #[error(transparent)]
    Unreachable(#[from] crate::cluster::ClusterError),
    #[error("nobody keeps mail for {0}: it is not away")]
    NoInbox(String),
    #[error(
        "the recipient {to} is away and its inbox is full ({waiting} messages waiting, the limit set by --inbox-max-messages); the message was not queued"
    )]
    TooManyMessages { to: String, waiting: usize },
    #[error(
        "the recipient {to} is away and its inbox would exceed {limit} bytes (the limit set by --inbox-max-bytes) with this message; the message was not queued"
    )]
    TooManyBytes { to: String, limit: usize },
    #[error(
        "the recipient {to} is away and the server's inboxes hold {limit} bytes in all (the limit set by --inbox-max-total-bytes); the message was not queued"
    )]
    ServerFull { to: String, limit: usize },
}

struct Inbox {
    /// The name as the agent had it (the map's key is lower-cased).
    name: String,
    messages: VecDeque<Queued>,
    bytes: usize,
    /// When it went away; an empty inbox lasts the TTL from here.
    since_ms: u64,
}

/// An agent that is away, for `list-agents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Away {
    pub name: String,
    pub waiting: usize,
}

/// Inboxes as the registry and the bus use them. Calls that change an inbox
/// without answering anything (`went_away`, `gone`) return at once; a store
/// that has to wait for them applies them in order before the next call
/// for the same name.
#[async_trait::async_trait]
pub trait Mail: Send + Sync + 'static {
    /// `name` went away, leaving `unsent` (older than anything queued after).
    fn went_away(&self, name: &str, unsent: Vec<Queued>);

    /// Queues `message` for `name`, if it is away; returns how many wait
    /// now, once the message is durable.
    async fn queue(
        &self,
        name: &str,
        message: Arc<ServerJsonRpcMessage>,
    ) -> Result<usize, InboxError>;

    /// A stream opened under `name`: its mail, oldest first, each in this
    /// replica's journal; the inbox is gone.
    async fn take(&self, name: &str) -> Vec<Queued>;

    /// `name` is gone for good: its mail is dropped and counted.
    fn gone(&self, name: &str);

    /// The name as the agent had it, if it is away and keeps an inbox.
    async fn holds(&self, name: &str) -> Result<Option<String>, InboxError>;

    /// Agents that are away, by name, with how many messages wait for each.
    async fn away(&self) -> Vec<Away>;

    /// Drops what is past the TTL (a store with its own expiry may do nothing).
    fn expire(&self);

    /// Messages waiting, and dropped unread so far.
    async fn counts(&self) -> (usize, u64);
}

pub struct Inboxes {
    state: Mutex<HashMap<String, Inbox>>,
    limits: InboxLimits,
    journal: Arc<Journal>,
    expired: AtomicU64,
    /// Bytes in all inboxes; changed only under the `state` lock.
    total_bytes: AtomicUsize,
}

impl Inboxes {
    pub fn new(limits: InboxLimits, journal: Arc<Journal>) -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            limits,
            journal,
            expired: AtomicU64::new(0),
            total_bytes: AtomicUsize::new(0),
        }
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Inbox>> {
        // Every mutation leaves an inbox consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts what the journal held at startup back in its recipients' inboxes.
    pub fn restore(&self, backlog: Backlog) {
        let groups = by_recipient(backlog);
        let waiting: usize = groups.iter().map(|(_, mail)| mail.len()).sum();
        if waiting > 0 {
            tracing::info!(
                waiting,
                agents = groups.len(),
                "messages from before the restart wait in inboxes"
            );
        }
        for (to, mail) in groups {
            let since_ms = mail.iter().map(|q| q.at_ms).max().unwrap_or_else(now_ms);
            let bytes = mail.iter().map(Queued::bytes).sum();
            self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.lock().insert(
                to.to_ascii_lowercase(),
                Inbox {
                    name: to,
                    messages: mail.into(),
                    bytes,
                    since_ms,
                },
            );
        }
    }

    /// `name` went away, leaving `unsent` (older than anything queued after).
    pub fn went_away(&self, name: &str, unsent: Vec<Queued>) {
        let mut state = self.lock();
        let key = name.to_ascii_lowercase();
        if !state.contains_key(&key) && state.len() >= self.limits.max_inboxes {
            let emptied_longest = state
                .iter()
                .filter(|(_, inbox)| inbox.messages.is_empty())
                .min_by_key(|(_, inbox)| inbox.since_ms)
                .map(|(key, _)| key.clone());
            match emptied_longest {
                Some(oldest) => {
                    state.remove(&oldest);
                }
                // Accepted mail is never dropped for room; a name with none
                // simply keeps no inbox.
                None if unsent.is_empty() => {
                    tracing::warn!(
                        agent = name,
                        limit = self.limits.max_inboxes,
                        "no inbox for an agent that went away: the server holds its limit of inboxes with mail (--max-inboxes)"
                    );
                    return;
                }
                None => {}
            }
        }
        let inbox = state.entry(key).or_insert_with(|| Inbox {
            name: name.to_owned(),
            messages: VecDeque::new(),
            bytes: 0,
            since_ms: now_ms(),
        });
        inbox.since_ms = now_ms();
        for queued in unsent {
            inbox.bytes += queued.bytes();
            self.total_bytes
                .fetch_add(queued.bytes(), Ordering::Relaxed);
            inbox.messages.push_back(queued);
        }
    }

    /// Whether mail for `name` is kept (it is away, within the TTL).
    pub fn display_name(&self, name: &str) -> Option<String> {
        let mut state = self.lock();
        let key = name.to_ascii_lowercase();
        self.expire_one(&mut state, &key);
        state.get(&key).map(|inbox| inbox.name.clone())
    }

    /// Queues `message` for `name`; returns how many wait now, and a future
    /// that resolves once the message is on disk.
    pub fn queue(
        &self,
        name: &str,
        message: Arc<ServerJsonRpcMessage>,
    ) -> Result<(usize, impl Future<Output = ()> + use<>), InboxError> {
        let mut state = self.lock();
        let key = name.to_ascii_lowercase();
        self.expire_one(&mut state, &key);
        let inbox = state
            .get_mut(&key)
            .ok_or_else(|| InboxError::NoInbox(name.to_owned()))?;
        if inbox.messages.len() >= self.limits.max_messages {
            return Err(InboxError::TooManyMessages {
                to: inbox.name.clone(),
                waiting: inbox.messages.len(),
            });
        }
        let notification = serde_json::to_string(&*message).unwrap_or_default();
        let bytes = notification.len();
        if inbox.bytes + bytes > self.limits.max_bytes {
            return Err(InboxError::TooManyBytes {
                to: inbox.name.clone(),
                limit: self.limits.max_bytes,
            });
        }
        if self.total_bytes.load(Ordering::Relaxed) + bytes > self.limits.max_total_bytes {
            return Err(InboxError::ServerFull {
                to: inbox.name.clone(),
                limit: self.limits.max_total_bytes,
            });
        }
        let at_ms = now_ms();
        let json = Arc::from(notification.as_str());
        let (row, written) = self.journal.put(&Record {
            to: inbox.name.clone(),
            at_ms,
            notification,
        });
        inbox.bytes += bytes;
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
        inbox.messages.push_back(Queued { row, json, at_ms });
        Ok((inbox.messages.len(), written))
    }

    /// A stream opened under `name`: its mail, oldest first; the inbox is gone.
    pub fn take(&self, name: &str) -> Vec<Queued> {
        let mut state = self.lock();
        let key = name.to_ascii_lowercase();
        self.expire_one(&mut state, &key);
        state
            .remove(&key)
            .map(|inbox| {
                self.total_bytes.fetch_sub(inbox.bytes, Ordering::Relaxed);
                inbox.messages.into()
            })
            .unwrap_or_default()
    }

    /// `name` is gone for good (an `agent-N` whose session ended): its mail
    /// can never be delivered and is dropped.
    pub fn gone(&self, name: &str) {
        let Some(inbox) = self.lock().remove(&name.to_ascii_lowercase()) else {
            return;
        };
        self.total_bytes.fetch_sub(inbox.bytes, Ordering::Relaxed);
        if !inbox.messages.is_empty() {
            tracing::warn!(agent = %inbox.name, dropped = inbox.messages.len(), "dropping the mail of an agent that left for good");
            self.expired
                .fetch_add(inbox.messages.len() as u64, Ordering::Relaxed);
        }
        for queued in inbox.messages {
            self.journal.remove(queued.row);
        }
    }

    /// Drops messages past the TTL, and empty inboxes away longer than it.
    pub fn expire(&self) {
        let mut state = self.lock();
        let keys: Vec<String> = state.keys().cloned().collect();
        for key in keys {
            self.expire_one(&mut state, &key);
        }
    }

    fn expire_one(&self, state: &mut HashMap<String, Inbox>, key: &str) {
        let Some(inbox) = state.get_mut(key) else {
            return;
        };
        let ttl = self.limits.ttl.as_millis() as u64;
        let now = now_ms();
        let mut dropped = 0;
        while let Some(oldest) = inbox.messages.front() {
            if now.saturating_sub(oldest.at_ms) < ttl {
                break;
            }
            inbox.bytes -= oldest.bytes();
            self.total_bytes
                .fetch_sub(oldest.bytes(), Ordering::Relaxed);
            self.journal.remove(oldest.row);
            inbox.messages.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            tracing::info!(agent = %inbox.name, dropped, "messages expired unread in the inbox of an agent that is away");
            self.expired.fetch_add(dropped, Ordering::Relaxed);
        }
        if inbox.messages.is_empty() && now.saturating_sub(inbox.since_ms) >= ttl {
            state.remove(key);
        }
    }

    /// Agents that are away, by name, with how many messages wait for each.
    pub fn away(&self) -> Vec<Away> {
        self.expire();
        let mut away: Vec<Away> = self
            .lock()
            .values()
            .map(|inbox| Away {
                name: inbox.name.clone(),
                waiting: inbox.messages.len(),
            })
            .collect();
        away.sort_by(|a, b| a.name.cmp(&b.name));
        away
    }

    /// Messages dropped unread: expired, or for an agent that left for good.
    pub fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    pub fn waiting(&self) -> usize {
        self.lock().values().map(|i| i.messages.len()).sum()
    }
}

/// Groups a journal's backlog by recipient, oldest first, for [`Mail::went_away`].
pub fn by_recipient(backlog: Backlog) -> Vec<(String, Vec<Queued>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, (String, Vec<Queued>)> = HashMap::new();
    for (row, record) in backlog {
        if serde_json::from_str::<ServerJsonRpcMessage>(&record.notification).is_err() {
            tracing::warn!(row, "dropping a journaled message that does not parse");
            continue;
        }
        let key = record.to.to_ascii_lowercase();
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (record.to.clone(), Vec::new())
        });
        group.1.push(Queued {
            row: Some(row),
            json: Arc::from(record.notification),
            at_ms: record.at_ms,
        });
    }
    order
        .into_iter()
        .filter_map(|key| groups.remove(&key))
        .collect()
}

#[async_trait::async_trait]
impl Mail for Inboxes {
    fn went_away(&self, name: &str, unsent: Vec<Queued>) {
        Inboxes::went_away(self, name, unsent);
    }

    async fn queue(
        &self,
        name: &str,
        message: Arc<ServerJsonRpcMessage>,
    ) -> Result<usize, InboxError> {
        let (waiting, written) = Inboxes::queue(self, name, message)?;
        written.await;
        Ok(waiting)
    }

    async fn take(&self, name: &str) -> Vec<Queued> {
        Inboxes::take(self, name)
    }

    fn gone(&self, name: &str) {
        Inboxes::gone(self, name);
    }

    async fn holds(&self, name: &str) -> Result<Option<String>, InboxError> {
        Ok(self.display_name(name))
    }

    async fn away(&self) -> Vec<Away> {
        Inboxes::away(self)
    }

    fn expire(&self) {
        Inboxes::expire(self);
    }

    async fn counts(&self) -> (usize, u64) {
        (self.waiting(), self.expired())
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CustomNotification, ServerNotification};

    use super::*;

    fn note(n: u64) -> Arc<ServerJsonRpcMessage> {
        Arc::new(ServerJsonRpcMessage::notification(
            ServerNotification::CustomNotification(CustomNotification::new(
                "n",
                Some(serde_json::json!({ "n": n })),
            )),
        ))
    }

    fn json(message: Arc<ServerJsonRpcMessage>) -> Arc<str> {
        serde_json::to_string(&*message).unwrap().into()
    }

    fn inboxes(limits: InboxLimits) -> Inboxes {
        Inboxes::new(limits, Journal::disabled())
    }

    #[test]
    fn auto_names_are_agent_and_a_number() {
        assert!(is_auto_name("agent-1") && is_auto_name("agent-4096"));
        for chosen in ["agent-", "agent-x", "coder", "agent-1b", "Agent-1"] {
            assert!(!is_auto_name(chosen), "{chosen}");
        }
    }

    #[tokio::test]
    async fn mail_queues_only_for_agents_that_are_away_and_comes_back_in_order() {
        let inboxes = inboxes(InboxLimits::default());
        assert_eq!(
            inboxes.queue("coder", note(0)).err(),
            Some(InboxError::NoInbox("coder".into()))
        );
        inboxes.went_away("Coder", Vec::new());
        for n in 1..=3 {
            let (waiting, written) = inboxes.queue("coder", note(n)).unwrap();
            written.await;
            assert_eq!(waiting, n as usize);
        }
        assert_eq!(
            inboxes.away(),
            [Away {
                name: "Coder".into(),
                waiting: 3
            }]
        );
        let mail: Vec<serde_json::Value> = inboxes
            .take("CODER")
            .into_iter()
            .map(|q| {
                serde_json::from_str::<serde_json::Value>(&q.json).unwrap()["params"]["n"].clone()
            })
            .collect();
        assert_eq!(mail, [1, 2, 3]);
        assert!(inboxes.away().is_empty());
    }

    #[test]
    fn caps_name_their_limit() {
        let inboxes = inboxes(InboxLimits {
            max_messages: 2,
            max_bytes: 200,
            ..InboxLimits::default()
        });
        inboxes.went_away("coder", Vec::new());
        let _ = inboxes.queue("coder", note(1)).unwrap();
        let _ = inboxes.queue("coder", note(2)).unwrap();
        let full = inboxes.queue("coder", note(3)).err().unwrap();
        assert!(full.to_string().contains("--inbox-max-messages"), "{full}");

        let inboxes = self::inboxes(InboxLimits {
            max_bytes: 80,
            ..InboxLimits::default()
        });
        inboxes.went_away("coder", Vec::new());
        let _ = inboxes.queue("coder", note(1)).unwrap();
        let big = inboxes.queue("coder", note(2)).err().unwrap();
        assert!(big.to_string().contains("--inbox-max-bytes"), "{big}");
    }

    #[test]
    fn all_inboxes_together_are_bounded() {
        let inboxes = inboxes(InboxLimits {
            max_total_bytes: 80,
            ..InboxLimits::default()
        });
        inboxes.went_away("coder", Vec::new());
        inboxes.went_away("planner", Vec::new());
        let _ = inboxes.queue("coder", note(1)).unwrap();
        let full = inboxes.queue("planner", note(2)).err().unwrap();
        assert!(
            matches!(full, InboxError::ServerFull { .. })
                && full.to_string().contains("--inbox-max-total-bytes"),
            "{full}"
        );
        // Taken mail frees its room.
        assert_eq!(inboxes.take("coder").len(), 1);
        let _ = inboxes.queue("planner", note(2)).unwrap();
    }

    #[test]
    fn past_the_inbox_limit_an_empty_inbox_makes_room_and_mail_is_never_dropped() {
        let inboxes = inboxes(InboxLimits {
            max_inboxes: 2,
            ..InboxLimits::default()
        });
        inboxes.went_away("first", Vec::new());
        inboxes.went_away("second", Vec::new());
        let _ = inboxes.queue("second", note(1)).unwrap();
        // `first` is empty and away the longest: it goes.
        inboxes.went_away("third", Vec::new());
        let names: Vec<String> = inboxes.away().into_iter().map(|a| a.name).collect();
        assert_eq!(names, ["second", "third"]);
        let _ = inboxes.queue("third", note(2)).unwrap();
        // Both hold mail: a name without any gets no inbox...
        inboxes.went_away("fourth", Vec::new());
        assert!(inboxes.display_name("fourth").is_none());
        // ...but mail a stream had not sent always finds one.
        let unsent = Queued {
            row: None,
            json: json(note(3)),
            at_ms: now_ms(),
        };
        inboxes.went_away("fifth", vec![unsent]);
        assert_eq!(inboxes.take("fifth").len(), 1);
    }

    #[test]
    fn expired_mail_is_dropped_and_counted() {
        let inboxes = inboxes(InboxLimits {
            ttl: Duration::ZERO,
            ..InboxLimits::default()
        });
        inboxes.went_away(
            "coder",
            vec![Queued {
                row: None,
                json: json(note(1)),
                at_ms: 0,
            }],
        );
        inboxes.expire();
        assert_eq!(inboxes.expired(), 1);
        assert!(
            inboxes.away().is_empty(),
            "an empty inbox past the TTL goes"
        );
        assert!(inboxes.take("coder").is_empty());
    }
}
