//! Who each MCP session says it is, as the HTTP edge saw it: the name its
//! token fixes, and the name it declares with `X-Agent-Name`. The session
//! layer reads this when the session's stream attaches.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

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

    pub fn record(&self, session: &str, identity: Identity) {
        self.lock().insert(session.to_owned(), identity);
    }

    pub fn get(&self, session: &str) -> Option<Identity> {
        self.lock().get(session).cloned()
    }

    pub fn forget(&self, session: &str) {
        self.lock().remove(session);
    }
}
