//! Who each MCP session says it is, as the HTTP edge saw it: the name its
//! token fixes, and the name it declares with `X-Agent-Name`. The session
//! layer reads this when the session's stream attaches.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

/// Longest declared name kept: valid names are at most 32 bytes, and a longer
/// one is only kept to be quoted in the "not a valid name" note.
pub const MAX_DECLARED_BYTES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The authenticated token's name.
    pub fixed: Option<String>,
    /// The `X-Agent-Name` header.
    pub declared: Option<String>,
}

#[derive(Default)]
pub struct Identities {
    sessions: Mutex<HashMap<String, Identity>>,
}

impl Identities {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Identity>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Only for sessions that exist: an entry per made-up id would let anyone
    /// grow this map without bound.
    pub fn record(&self, session: &str, identity: Identity) {
        self.lock().insert(session.to_owned(), identity);
    }

    /// Records what a later request of `session` says. Clients may send
    /// `X-Agent-Name` with `initialize` only: a request without it keeps the
    /// name declared before.
    pub fn update(&self, session: &str, mut identity: Identity) {
        let mut sessions = self.lock();
        if identity.declared.is_none()
            && let Some(known) = sessions.get(session)
        {
            identity.declared.clone_from(&known.declared);
        }
        sessions.insert(session.to_owned(), identity);
    }

    pub fn get(&self, session: &str) -> Option<Identity> {
        self.lock().get(session).cloned()
    }

    pub fn forget(&self, session: &str) {
        self.lock().remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_declared_once_is_kept_for_the_session() {
        let identities = Identities::default();
        let declared = |name: &str| Identity {
            fixed: None,
            declared: Some(name.into()),
        };
        identities.record("s", declared("planner"));
        identities.update("s", Identity::default());
        assert_eq!(identities.get("s"), Some(declared("planner")));
        identities.update("s", declared("coder"));
        assert_eq!(identities.get("s"), Some(declared("coder")));
    }
}
