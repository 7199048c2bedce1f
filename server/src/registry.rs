//! The agent registry: which sessions are agents, under which names.
//!
//! A session becomes an agent when it attaches its stream and stops being one
//! when the stream ends. Names are `agent-N` in order of registration (N never
//! reused while the server runs) until the agent claims another; names are
//! unique among online agents, ignoring case. An agent whose stream dropped
//! keeps its name for a short grace period so a reconnect finds it intact and
//! messages to it wait instead of failing.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::delivery::{Generation, Outbox, OutboxStream};

pub const MAX_NAME_LEN: usize = 32;

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
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("no agent named \"{name}\" is online; online: {}", online_list(.online))]
    Unknown { name: String, online: Vec<String> },
    #[error("\"{0}\" is you; send-message delivers to another agent")]
    Yourself(String),
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
    /// The caller's name, when the caller is an agent.
    pub you: Option<String>,
}

/// Where a message for an agent goes.
#[derive(Clone)]
pub struct Recipient {
    pub name: String,
    pub outbox: Arc<Outbox>,
    /// Set when the agent's stream dropped moments ago and may come back.
    pub reconnecting_until: Option<Instant>,
}

struct Entry {
    name: Option<String>,
    /// Registration order, for listing.
    order: u64,
    outbox: Arc<Outbox>,
    attached: Option<Generation>,
    detached_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    next_number: u64,
    next_order: u64,
    sessions: HashMap<String, Entry>,
    /// Lower-cased name -> session id, for agents online or within grace.
    names: HashMap<String, String>,
}

pub struct Registry {
    state: Mutex<State>,
    queue_depth: usize,
    grace: Duration,
}

impl State {
    fn holder_in_grace(&self, key: &str, grace: Duration) -> Option<&String> {
        let session = self.names.get(key)?;
        let entry = self.sessions.get(session)?;
        let live =
            entry.attached.is_some() || entry.detached_at.is_some_and(|at| at.elapsed() < grace);
        live.then_some(session)
    }

    fn claim(&mut self, session: &str, name: &str, grace: Duration) -> bool {
        let key = name.to_ascii_lowercase();
        match self.holder_in_grace(&key, grace) {
            Some(holder) if holder != session => false,
            _ => {
                self.names.insert(key, session.to_owned());
                true
            }
        }
    }

    fn release(&mut self, session: &str, name: &str) {
        let key = name.to_ascii_lowercase();
        if self.names.get(&key).is_some_and(|s| s == session) {
            self.names.remove(&key);
        }
    }

    fn next_free_number_name(&mut self, session: &str, grace: Duration) -> String {
        loop {
            self.next_number += 1;
            let name = format!("agent-{}", self.next_number);
            if self.claim(session, &name, grace) {
                return name;
            }
        }
    }
}

impl Registry {
    pub fn new(queue_depth: usize, grace: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            queue_depth,
            grace,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each method leaves the maps consistent before anything can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The session opened its stream: it is (again) an agent. `remembered` is
    /// the name it had before a server restart. Returns its name and the stream.
    pub fn attach(
        &self,
        session: &str,
        remembered: Option<&str>,
        resume_after: Option<u64>,
    ) -> (String, OutboxStream) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let queue_depth = self.queue_depth;
        let entry = state
            .sessions
            .entry(session.to_owned())
            .or_insert_with(|| Entry {
                name: None,
                order: 0,
                outbox: Outbox::new(queue_depth),
                attached: None,
                detached_at: None,
            });
        let wanted = entry.name.clone().or_else(|| {
            remembered
                .filter(|n| validate_name(n).is_ok())
                .map(str::to_owned)
        });
        let outbox = entry.outbox.clone();
        let name = match wanted {
            Some(name) if state.claim(session, &name, self.grace) => name,
            _ => state.next_free_number_name(session, self.grace),
        };
        let order = match state.sessions[session].order {
            0 => {
                state.next_order += 1;
                state.next_order
            }
            order => order,
        };
        let (generation, stream) = outbox.attach(resume_after);
        let entry = state.sessions.get_mut(session).expect("inserted above");
        entry.name = Some(name.clone());
        entry.order = order;
        entry.attached = Some(generation);
        entry.detached_at = None;
        (name, stream)
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
            entry.outbox.detach(generation);
        }
    }

    /// The session is gone for good.
    pub fn forget(&self, session: &str) {
        let mut state = self.lock();
        if let Some(entry) = state.sessions.remove(session) {
            entry.outbox.close();
            if let Some(name) = entry.name {
                state.release(session, &name);
            }
        }
    }

    pub fn is_attached(&self, session: &str) -> bool {
        self.lock()
            .sessions
            .get(session)
            .is_some_and(|e| e.attached.is_some())
    }

    /// Sessions known to the registry whose stream is closed, with how long.
    pub fn detached_sessions(&self) -> Vec<(String, Duration)> {
        self.lock()
            .sessions
            .iter()
            .filter_map(|(id, e)| e.detached_at.map(|at| (id.clone(), at.elapsed())))
            .collect()
    }

    /// Renames the caller's agent. Returns the old name.
    pub fn rename(&self, session: &str, new: &str) -> Result<String, NameError> {
        validate_name(new)?;
        let mut state = self.lock();
        let old = match state.sessions.get(session) {
            Some(Entry {
                name: Some(name),
                attached: Some(_),
                ..
            }) => name.clone(),
            _ => return Err(NameError::NotAnAgent),
        };
        if !state.claim(session, new, self.grace) {
            return Err(NameError::Taken(new.to_owned()));
        }
        if !old.eq_ignore_ascii_case(new) {
            state.release(session, &old);
        }
        if let Some(entry) = state.sessions.get_mut(session) {
            entry.name = Some(new.to_owned());
        }
        Ok(old)
    }

    /// The caller's name, if it is an online agent.
    pub fn name_of(&self, session: &str) -> Option<String> {
        let state = self.lock();
        let entry = state.sessions.get(session)?;
        entry.attached.and(entry.name.clone())
    }

    pub fn roster(&self, session: &str) -> Roster {
        let state = self.lock();
        let mut online: Vec<(u64, &String)> = state
            .sessions
            .values()
            .filter(|e| e.attached.is_some())
            .filter_map(|e| e.name.as_ref().map(|n| (e.order, n)))
            .collect();
        online.sort();
        Roster {
            agents: online.into_iter().map(|(_, n)| n.clone()).collect(),
            you: state
                .sessions
                .get(session)
                .filter(|e| e.attached.is_some())
                .and_then(|e| e.name.clone()),
        }
    }

    pub fn online_count(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|e| e.attached.is_some())
            .count()
    }

    /// Finds the agent a message from `sender_session` to `name` goes to.
    pub fn recipient(&self, sender_session: &str, name: &str) -> Result<Recipient, LookupError> {
        let found = {
            let state = self.lock();
            let key = name.to_ascii_lowercase();
            state
                .holder_in_grace(&key, self.grace)
                .and_then(|session| Some((session.clone(), state.sessions.get(session)?)))
                .map(|(session, entry)| {
                    (
                        session,
                        Recipient {
                            name: entry.name.clone().unwrap_or_default(),
                            outbox: entry.outbox.clone(),
                            reconnecting_until: entry.detached_at.map(|at| at + self.grace),
                        },
                    )
                })
        };
        match found {
            Some((session, recipient)) if session == sender_session => {
                Err(LookupError::Yourself(recipient.name))
            }
            Some((_, recipient)) => Ok(recipient),
            None => Err(LookupError::Unknown {
                name: name.chars().take(64).collect(),
                online: self.roster(sender_session).agents,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(8, Duration::from_millis(200))
    }

    #[test]
    fn numbers_in_registration_order_never_reused() {
        let r = registry();
        assert_eq!(r.attach("s1", None, None).0, "agent-1");
        assert_eq!(r.attach("s2", None, None).0, "agent-2");
        r.forget("s1");
        assert_eq!(r.attach("s3", None, None).0, "agent-3");
        assert_eq!(r.roster("s2").agents, ["agent-2", "agent-3"]);
        assert_eq!(r.roster("s2").you.as_deref(), Some("agent-2"));
    }

    #[test]
    fn rename_rules() {
        let r = registry();
        r.attach("s1", None, None);
        r.attach("s2", None, None);
        assert_eq!(r.rename("s1", "coder"), Ok("agent-1".into()));
        assert_eq!(
            r.rename("s2", "CODER"),
            Err(NameError::Taken("CODER".into()))
        );
        assert!(matches!(
            r.rename("s2", "bad name"),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(
            r.rename("s2", &"x".repeat(33)),
            Err(NameError::Invalid(_))
        ));
        assert_eq!(r.rename("s3", "x"), Err(NameError::NotAnAgent));
        assert_eq!(
            r.rename("s1", "Coder"),
            Ok("coder".into()),
            "case change of own name"
        );
    }

    #[test]
    fn reattach_keeps_name_and_remembered_name_is_reclaimed() {
        let r = registry();
        let (name, stream) = r.attach("s1", None, None);
        r.rename("s1", "planner").unwrap();
        r.detach("s1", stream.generation());
        assert!(r.roster("s1").agents.is_empty(), "offline at once");
        assert_eq!(r.attach("s1", None, None).0, "planner");
        assert_eq!(name, "agent-1");
        let restarted = registry();
        assert_eq!(restarted.attach("s9", Some("planner"), None).0, "planner");
        assert_eq!(restarted.attach("s8", Some("planner"), None).0, "agent-1");
    }

    #[test]
    fn lookup_errors() {
        let r = registry();
        r.attach("s1", None, None);
        r.attach("s2", None, None);
        assert!(r.recipient("s1", "AGENT-2").is_ok());
        assert_eq!(
            r.recipient("s1", "agent-1").err(),
            Some(LookupError::Yourself("agent-1".into()))
        );
        let err = r.recipient("s1", "ghost").err().unwrap();
        assert_eq!(
            err.to_string(),
            "no agent named \"ghost\" is online; online: agent-1, agent-2"
        );
    }
}
