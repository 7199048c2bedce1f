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
    #[error("your name \"{0}\" is fixed by your access token and cannot be changed")]
    Fixed(String),
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
    /// Why the caller did not get the name it asked for.
    pub note: Option<String>,
}

/// Where a message for an agent goes.
#[derive(Clone)]
pub struct Recipient {
    pub name: String,
    pub outbox: Arc<Outbox>,
    /// Set when the agent's stream dropped moments ago and may come back.
    pub reconnecting_until: Option<Instant>,
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
    reserved: std::collections::HashSet<String>,
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

    /// Takes `name` for `session` if no other live agent holds it and it is
    /// not reserved for someone else (`owner` is the session's fixed name).
    fn claim(&mut self, session: &str, name: &str, owner: Option<&str>, grace: Duration) -> bool {
        let key = name.to_ascii_lowercase();
        if self.reserved.contains(&key) && !owner.is_some_and(|o| o.eq_ignore_ascii_case(name)) {
            return false;
        }
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
            if self.claim(session, &name, None, grace) {
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

    /// Names only their owner may hold (fixed by authentication tokens).
    pub fn reserve(&self, names: impl IntoIterator<Item = String>) {
        let mut state = self.lock();
        state
            .reserved
            .extend(names.into_iter().map(|n| n.to_ascii_lowercase()));
    }

    /// The session opened its stream: it is (again) an agent. `claim` says
    /// which name it asks for; the outcome says which it got and, when that is
    /// not the one it asked for, why.
    pub fn attach(&self, session: &str, claim: &Claim, resume_after: Option<u64>) -> Attached {
        let mut guard = self.lock();
        let state = &mut *guard;
        let queue_depth = self.queue_depth;
        let entry = state
            .sessions
            .entry(session.to_owned())
            .or_insert_with(|| Entry {
                name: None,
                fixed: false,
                order: 0,
                outbox: Outbox::new(queue_depth),
                attached: None,
                detached_at: None,
                note: None,
            });
        let current = entry.name.clone();
        let outbox = entry.outbox.clone();
        let fixed = claim.fixed.is_some();
        let mut note = None;
        let mut name = None;
        if let Some(wanted) = &claim.fixed {
            if state.claim(session, wanted, Some(wanted), self.grace) {
                name = Some(wanted.clone());
            } else {
                note = Some(format!(
                    "the name \"{wanted}\" of your token is in use by another session"
                ));
            }
        } else {
            if let Some(current) = current.filter(|c| state.claim(session, c, None, self.grace)) {
                name = Some(current);
            }
            if name.is_none()
                && let Some(declared) = &claim.declared
            {
                match validate_name(declared) {
                    Err(error) => note = Some(format!("the declared {error}")),
                    Ok(()) if state.claim(session, declared, None, self.grace) => {
                        name = Some(declared.clone());
                    }
                    Ok(()) => {
                        note = Some(format!(
                            "the name \"{declared}\" you declared (X-Agent-Name) is held by another online agent"
                        ));
                    }
                }
            }
            if name.is_none()
                && let Some(remembered) = claim
                    .remembered
                    .as_ref()
                    .filter(|n| validate_name(n).is_ok())
                && state.claim(session, remembered, None, self.grace)
            {
                name = Some(remembered.clone());
            }
        }
        let name = match name {
            Some(name) => name,
            None => state.next_free_number_name(session, self.grace),
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
        entry.fixed = fixed && note.is_none();
        entry.order = order;
        entry.attached = Some(generation);
        entry.detached_at = None;
        entry.note.clone_from(&note);
        Attached { name, note, stream }
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

    /// Renames the caller's agent. Returns the old name.
    pub fn rename(&self, session: &str, new: &str) -> Result<String, NameError> {
        validate_name(new)?;
        let mut state = self.lock();
        let old = match state.sessions.get(session) {
            Some(Entry {
                name: Some(name),
                attached: Some(_),
                fixed: true,
                ..
            }) => return Err(NameError::Fixed(name.clone())),
            Some(Entry {
                name: Some(name),
                attached: Some(_),
                ..
            }) => name.clone(),
            _ => return Err(NameError::NotAnAgent),
        };
        if !state.claim(session, new, None, self.grace) {
            return Err(NameError::Taken(new.to_owned()));
        }
        if !old.eq_ignore_ascii_case(new) {
            state.release(session, &old);
        }
        if let Some(entry) = state.sessions.get_mut(session) {
            entry.name = Some(new.to_owned());
            entry.note = None;
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
        let caller = state.sessions.get(session).filter(|e| e.attached.is_some());
        Roster {
            agents: online.into_iter().map(|(_, n)| n.clone()).collect(),
            you: caller.and_then(|e| e.name.clone()),
            note: caller.and_then(|e| e.note.clone()),
        }
    }

    pub fn online_count(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|e| e.attached.is_some())
            .count()
    }

    /// Finds the agent a message from `sender_session` (`None`: from outside
    /// the bus) to `name` goes to.
    pub fn recipient(
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
                        Recipient {
                            name: entry.name.clone().unwrap_or_default(),
                            outbox: entry.outbox.clone(),
                            reconnecting_until: entry.detached_at.map(|at| at + self.grace),
                        },
                    )
                })
        };
        match found {
            Some((session, recipient)) if Some(session.as_str()) == sender_session => {
                Err(LookupError::Yourself(recipient.name))
            }
            Some((_, recipient)) => Ok(recipient),
            None => Err(LookupError::Unknown {
                name: name.chars().take(64).collect(),
                online: self.roster(sender_session.unwrap_or_default()).agents,
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
        assert_eq!(r.attach("s1", &Claim::default(), None).name, "agent-1");
        assert_eq!(r.attach("s2", &Claim::default(), None).name, "agent-2");
        r.forget("s1");
        assert_eq!(r.attach("s3", &Claim::default(), None).name, "agent-3");
        assert_eq!(r.roster("s2").agents, ["agent-2", "agent-3"]);
        assert_eq!(r.roster("s2").you.as_deref(), Some("agent-2"));
    }

    #[test]
    fn rename_rules() {
        let r = registry();
        r.attach("s1", &Claim::default(), None);
        r.attach("s2", &Claim::default(), None);
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
        let (name, stream) = r.attach("s1", &Claim::default(), None);
        r.rename("s1", "planner").unwrap();
        r.detach("s1", stream.generation());
        assert!(r.roster("s1").agents.is_empty(), "offline at once");
        assert_eq!(r.attach("s1", &Claim::default(), None).name, "planner");
        assert_eq!(name, "agent-1");
        let restarted = registry();
        let remembered = Claim {
            remembered: Some("planner".into()),
            ..Claim::default()
        };
        assert_eq!(restarted.attach("s9", &remembered, None).name, "planner");
        assert_eq!(restarted.attach("s8", &remembered, None).name, "agent-1");
    }

    #[test]
    fn declared_names_fall_back_with_a_reason() {
        let r = registry();
        let planner = Claim {
            declared: Some("planner".into()),
            ..Claim::default()
        };
        assert_eq!(r.attach("s1", &planner, None).name, "planner");
        let second = r.attach("s2", &planner, None);
        assert_eq!(second.name, "agent-1");
        assert!(second.note.unwrap().contains("held by another"));
        assert!(r.roster("s2").note.is_some());
    }

    #[test]
    fn fixed_names_are_reserved_and_permanent() {
        let r = registry();
        r.reserve(["ops".to_owned()]);
        r.attach("s1", &Claim::default(), None);
        assert_eq!(r.rename("s1", "OPS"), Err(NameError::Taken("OPS".into())));
        let ops = Claim {
            fixed: Some("ops".into()),
            ..Claim::default()
        };
        assert_eq!(r.attach("s2", &ops, None).name, "ops");
        assert_eq!(r.rename("s2", "other"), Err(NameError::Fixed("ops".into())));
        let impostor = Claim {
            declared: Some("ops".into()),
            ..Claim::default()
        };
        assert_ne!(r.attach("s3", &impostor, None).name, "ops");
    }

    #[test]
    fn lookup_errors() {
        let r = registry();
        r.attach("s1", &Claim::default(), None);
        r.attach("s2", &Claim::default(), None);
        assert!(r.recipient(Some("s1"), "AGENT-2").is_ok());
        assert_eq!(
            r.recipient(Some("s1"), "agent-1").err(),
            Some(LookupError::Yourself("agent-1".into()))
        );
        let err = r.recipient(Some("s1"), "ghost").err().unwrap();
        assert_eq!(
            err.to_string(),
            "no agent named \"ghost\" is online; online: agent-1, agent-2"
        );
    }
}
