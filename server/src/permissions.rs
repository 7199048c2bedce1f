//! The permission relay (`--permission-relay`): Claude Code sends the
//! permission prompts it would show its user
//! (`notifications/claude/channel/permission_request`), an operator lists
//! them and answers one, and the answer goes back to exactly the session
//! that asked (`notifications/claude/channel/permission`). The person at the
//! terminal may answer first; Claude Code then ignores ours.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use rmcp::model::{CustomNotification, ServerJsonRpcMessage, ServerNotification};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{message::clip, registry::Registry};

/// What the server declares in `initialize` for Claude Code to relay.
pub const CAPABILITY: &str = "claude/channel/permission";
pub const REQUEST_METHOD: &str = "notifications/claude/channel/permission_request";
const ANSWER_METHOD: &str = "notifications/claude/channel/permission";

/// Requests held at once; a session cannot flood the list.
const MAX_PENDING: usize = 256;
const MAX_PENDING_PER_SESSION: usize = 16;
/// A request nobody answered in this time is dropped (the terminal's
/// dialog has long been answered or abandoned).
const EXPIRE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Answered and dropped requests remembered, to say why an id is stale.
const REMEMBERED: usize = 256;

/// What Claude Code sends; longer fields are clipped.
#[derive(Debug, Deserialize)]
pub struct Request {
    pub request_id: String,
    #[serde(default)]
    pub tool_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub input_preview: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// The server's id for the request (unique; Claude Code's are per session).
    pub id: String,
    pub request_id: String,
    pub agent: Option<String>,
    pub tool_name: String,
    pub description: String,
    pub input_preview: String,
    pub received_at: String,
    #[serde(skip)]
    session: String,
    #[serde(skip)]
    received: SystemTime,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnswerError {
    #[error("no permission request {0}; GET /v1/permissions lists the pending ones")]
    Unknown(String),
    #[error("permission request {id} is no longer pending: {why}")]
    Stale { id: String, why: String },
    #[error(
        "the session that asked ({agent}) is not connected now, so the answer cannot reach it; the request is dropped"
    )]
    Unreachable { agent: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request_id must be 1-64 letters, digits, '-' or '_'")]
    BadId,
    #[error("too many pending permission requests; answer some first")]
    Full,
}

/// A decided request, for the audit log and the answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub pending: Pending,
    pub behavior: Behavior,
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    /// id -> why it is gone.
    gone: VecDeque<(String, String)>,
}

pub struct Permissions {
    state: Mutex<State>,
    next: AtomicU64,
    registry: Arc<Registry>,
}

fn timestamp(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Permissions {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            state: Mutex::default(),
            next: AtomicU64::new(1),
            registry,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is a single push or removal: poisoning means nothing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(state: &mut State, id: String, why: String) {
        state.gone.push_back((id, why));
        while state.gone.len() > REMEMBERED {
            state.gone.pop_front();
        }
    }

    fn expire(state: &mut State) {
        let now = SystemTime::now();
        let (old, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut state.pending)
            .into_iter()
            .partition(|p| {
                now.duration_since(p.received)
                    .is_ok_and(|age| age > EXPIRE_AFTER)
            });
        state.pending = fresh;
        for request in old {
            Self::forget(
                state,
                request.id,
                format!(
                    "nobody answered within {} minutes",
                    EXPIRE_AFTER.as_secs() / 60
                ),
            );
        }
    }

    /// Records a request from `session`. A request id the session already
    /// has pending replaces the old one (Claude Code asked again).
    pub fn request(&self, session: &str, request: Request) -> Result<Pending, RequestError> {
        let valid = (1..=64).contains(&request.request_id.len())
            && request
                .request_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(RequestError::BadId);
        }
        let agent = self.registry.sender(session).map(|(name, _)| name);
        let received = SystemTime::now();
        let pending = Pending {
            id: format!(
                "{}-{}",
                self.next.fetch_add(1, Ordering::Relaxed),
                request.request_id
            ),
            request_id: request.request_id,
            agent,
            tool_name: clip(&request.tool_name, 128).to_owned(),
            description: clip(&request.description, 2048).to_owned(),
            input_preview: clip(&request.input_preview, 4096).to_owned(),
            received_at: timestamp(received),
            session: session.to_owned(),
            received,
        };
        let mut state = self.lock();
        Self::expire(&mut state);
        if let Some(at) = state
            .pending
            .iter()
            .position(|p| p.session == session && p.request_id == pending.request_id)
        {
            let old = state.pending.remove(at);
            Self::forget(&mut state, old.id, "asked again under a new id".into());
        }
        let of_session = state
            .pending
            .iter()
            .filter(|p| p.session == session)
            .count();
        if state.pending.len() >= MAX_PENDING || of_session >= MAX_PENDING_PER_SESSION {
            return Err(RequestError::Full);
        }
        state.pending.push(pending.clone());
        Ok(pending)
    }

    /// Pending requests, oldest first.
    pub fn list(&self) -> Vec<Pending> {
        let mut state = self.lock();
        Self::expire(&mut state);
        state.pending.clone()
    }

    /// Sends `behavior` for request `id` to the session that asked.
    pub fn answer(&self, id: &str, behavior: Behavior) -> Result<Decision, AnswerError> {
        let mut state = self.lock();
        Self::expire(&mut state);
        let Some(at) = state.pending.iter().position(|p| p.id == id) else {
            return Err(match state.gone.iter().find(|(gone, _)| gone == id) {
                Some((_, why)) => AnswerError::Stale {
                    id: id.to_owned(),
                    why: why.clone(),
                },
                None => AnswerError::Unknown(id.to_owned()),
            });
        };
        let pending = state.pending.remove(at);
        let notification = ServerJsonRpcMessage::notification(
            ServerNotification::CustomNotification(CustomNotification::new(
                ANSWER_METHOD,
                Some(json!({ "request_id": pending.request_id, "behavior": behavior })),
            )),
        );
        let agent = pending
            .agent
            .clone()
            .unwrap_or_else(|| "a session without an agent".into());
        let pushed = self
            .registry
            .notify_session(&pending.session, notification)
            .map_err(|_| ());
        match pushed {
            Ok(()) => {
                let why = format!(
                    "answered {} at {}",
                    if behavior == Behavior::Allow {
                        "allow"
                    } else {
                        "deny"
                    },
                    timestamp(SystemTime::now())
                );
                Self::forget(&mut state, pending.id.clone(), why);
                Ok(Decision { pending, behavior })
            }
            Err(()) => {
                Self::forget(
                    &mut state,
                    pending.id.clone(),
                    "its session was not connected when answered".into(),
                );
                Err(AnswerError::Unreachable { agent })
            }
        }
    }
}
