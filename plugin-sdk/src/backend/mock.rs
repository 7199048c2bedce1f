//! An in-process stand-in for the host, used off wasm32 so filters can be unit
//! tested natively. State is per thread: every test gets its own store, clock
//! and log once it builds a `testing::Harness`.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::log::Level;

/// Where the mock clock starts: a fixed, realistic epoch time, so filters that
/// do arithmetic on timestamps see plausible values and tests are repeatable.
pub(crate) const START_MS: u64 = 1_700_000_000_000;

struct Entry {
    value: String,
    expires_at_ms: Option<u64>,
}

struct MockHost {
    now_ms: u64,
    entries: HashMap<String, Entry>,
    logs: Vec<(Level, String)>,
}

impl MockHost {
    fn new() -> Self {
        Self {
            now_ms: START_MS,
            entries: HashMap::new(),
            logs: Vec::new(),
        }
    }

    fn expiry(&self, ttl_ms: u64) -> Option<u64> {
        (ttl_ms != 0).then(|| self.now_ms.saturating_add(ttl_ms))
    }

    /// The live entry at `key`; an expired one is dropped on the way, as if
    /// the host had already swept it.
    fn live(&mut self, key: &str) -> Option<&mut Entry> {
        let now = self.now_ms;
        if self
            .entries
            .get(key)
            .is_some_and(|e| e.expires_at_ms.is_some_and(|at| at <= now))
        {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn put(&mut self, key: &str, value: String, ttl_ms: u64) {
        let expires_at_ms = self.expiry(ttl_ms);
        self.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires_at_ms,
            },
        );
    }
}

thread_local! {
    static HOST: RefCell<MockHost> = RefCell::new(MockHost::new());
}

fn with<T>(f: impl FnOnce(&mut MockHost) -> T) -> T {
    HOST.with(|host| f(&mut host.borrow_mut()))
}

pub(crate) fn reset() {
    with(|host| *host = MockHost::new());
}

pub(crate) fn set_now(now_ms: u64) {
    with(|host| host.now_ms = now_ms);
}

pub(crate) fn logs() -> Vec<(Level, String)> {
    with(|host| host.logs.clone())
}

pub(crate) fn log(level: Level, message: &str) {
    eprintln!("[{level}] {message}");
    with(|host| host.logs.push((level, message.to_owned())));
}

pub(crate) fn now_ms() -> u64 {
    with(|host| host.now_ms)
}

pub(crate) fn store_get(key: &str) -> Option<String> {
    with(|host| host.live(key).map(|e| e.value.clone()))
}

pub(crate) fn store_set(key: &str, value: &str, ttl_ms: u64) {
    with(|host| host.put(key, value.to_owned(), ttl_ms));
}

pub(crate) fn store_delete(key: &str) {
    with(|host| host.entries.remove(key));
}

pub(crate) fn store_incr(key: &str, delta: i64, ttl_ms: u64) -> i64 {
    with(|host| match host.live(key) {
        Some(entry) => {
            // Mixing `set` strings and counters on one key is not defined by
            // the contract; failing loudly here keeps filters from relying on
            // whatever one host happens to do.
            let current: i64 = entry.value.parse().unwrap_or_else(|_| {
                panic!(
                    "store::incr on key {key:?} holding non-counter {:?}",
                    entry.value
                )
            });
            let next = current.saturating_add(delta);
            entry.value = next.to_string();
            next
        }
        None => {
            host.put(key, delta.to_string(), ttl_ms);
            delta
        }
    })
}

pub(crate) fn store_compare_and_swap(
    key: &str,
    expected: Option<&str>,
    new: &str,
    ttl_ms: u64,
) -> bool {
    with(|host| {
        let current = host.live(key).map(|e| e.value.as_str());
        if current != expected {
            return false;
        }
        host.put(key, new.to_owned(), ttl_ms);
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_expires_against_the_mock_clock() {
        reset();
        store_set("k", "v", 1_000);
        set_now(START_MS + 999);
        assert_eq!(store_get("k").as_deref(), Some("v"));
        set_now(START_MS + 1_000);
        assert_eq!(store_get("k"), None);
    }

    #[test]
    fn incr_keeps_the_creation_ttl() {
        reset();
        assert_eq!(store_incr("c", 2, 100), 2);
        set_now(START_MS + 50);
        assert_eq!(store_incr("c", 3, 10_000), 5);
        set_now(START_MS + 100);
        assert_eq!(store_incr("c", 1, 0), 1);
        set_now(u64::MAX);
        assert_eq!(store_get("c").as_deref(), Some("1"));
    }

    #[test]
    fn compare_and_swap_checks_presence_and_value() {
        reset();
        assert!(store_compare_and_swap("k", None, "a", 0));
        assert!(!store_compare_and_swap("k", None, "b", 0));
        assert!(!store_compare_and_swap("k", Some("x"), "b", 0));
        assert!(store_compare_and_swap("k", Some("a"), "b", 10));
        set_now(START_MS + 10);
        assert!(store_compare_and_swap("k", None, "c", 0));
        store_delete("k");
        assert_eq!(store_get("k"), None);
    }
}
