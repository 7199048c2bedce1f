//! The host-managed key/value and counter store that filters import: entries
//! with optional TTL, namespaced per plugin name, bounded per plugin. It lives
//! outside any instance or chain generation, so a plugin's state (rate-limit
//! buckets) survives instance replacement and hot reloads. [`KvStore`] is the
//! seam for a shared backend (Redis) when several servers must agree.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Longest key a filter may use, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value a filter may store, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Live entries per plugin; with the sizes above at most ~43 MB per plugin.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store key is {0} bytes, over the limit of {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    #[error("store value is {0} bytes, over the limit of {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    #[error("store is full ({MAX_ENTRIES} live entries); use TTLs so old entries expire")]
    Full,
    #[error("store key {0:?} holds a value that is not a counter")]
    NotACounter(String),
    /// The shared backend (Redis, in cluster mode) did not answer.
    #[error("the shared store is unreachable: {0}")]
    Unavailable(String),
}

/// A store shared by all filters, each confined to its own namespace.
/// A `ttl` of `None` keeps the entry until it is overwritten or deleted.
pub trait KvStore: Send + Sync + 'static {
    /// Whether a call waits on the network (Redis). Calls are synchronous,
    /// so with such a store the chain runs on a blocking thread rather than
    /// on a runtime worker (`ChainStage`).
    fn waits_on_network(&self) -> bool {
        false
    }
    fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError>;
    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    fn delete(&self, namespace: &str, key: &str) -> Result<(), StoreError>;
    /// Adds `delta` to the counter (missing or expired counts as 0); `ttl`
    /// applies when the counter is created.
    fn incr(
        &self,
        namespace: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StoreError>;
    /// Sets `key` to `new` only if it currently holds `expected` (`None`: is absent).
    fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<&str>,
        new: String,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
}

struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

/// The in-process store. One lock for all plugins: every operation is a hash
/// lookup, far shorter than a filter call.
pub struct MemoryStore {
    namespaces: Mutex<HashMap<String, HashMap<String, Entry>>>,
    clock: Clock,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Box::new(Instant::now))
    }
}

impl MemoryStore {
    fn with_clock(clock: Clock) -> Self {
        Self {
            namespaces: Mutex::default(),
            clock,
        }
    }

    /// Runs `op` on the plugin's live entry for `key` (expired ones are gone),
    /// making room for a new entry if `op` may create one.
    fn with_entry<R>(
        &self,
        namespace: &str,
        key: &str,
        op: impl FnOnce(&mut Option<Entry>, Instant) -> R,
    ) -> Result<R, StoreError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::KeyTooLong(key.len()));
        }
        let now = (self.clock)();
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        let entries = namespaces.entry(namespace.to_owned()).or_default();
        let mut slot = entries.remove(key).filter(|entry| entry.live(now));
        let result = op(&mut slot, now);
        if let Some(entry) = slot {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, entry| entry.live(now));
                if entries.len() >= MAX_ENTRIES {
                    return Err(StoreError::Full);
                }
            }
            entries.insert(key.to_owned(), entry);
        }
        Ok(result)
    }
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.and_then(|ttl| now.checked_add(ttl))
}

fn check_value(value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::ValueTooLarge(value.len()));
    }
    Ok(())
}

impl KvStore for MemoryStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.with_entry(namespace, key, |slot, _| {
            slot.as_ref().map(|entry| entry.value.clone())
        })
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        check_value(&value)?;
        self.with_entry(namespace, key, |slot, now| {
            *slot = Some(Entry {
                value,
                expires: expiry(now, ttl),
            });
        })
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        self.with_entry(namespace, key, |slot, _| *slot = None)
    }

    fn incr(
        &self,
        namespace: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StoreError> {
        self.with_entry(namespace, key, |slot, now| {
            let (current, expires) = match slot.take() {
                Some(entry) => match entry.value.parse::<i64>() {
                    Ok(current) => (current, entry.expires),
                    Err(_) => {
                        *slot = Some(entry);
                        return Err(StoreError::NotACounter(key.to_owned()));
                    }
                },
                None => (0, expiry(now, ttl)),
            };
            let next = current.saturating_add(delta);
            *slot = Some(Entry {
                value: next.to_string(),
                expires,
            });
            Ok(next)
        })?
    }

    fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<&str>,
        new: String,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        check_value(&new)?;
        self.with_entry(namespace, key, |slot, now| {
            if slot.as_ref().map(|entry| entry.value.as_str()) != expected {
                return false;
            }
            *slot = Some(Entry {
                value: new,
                expires: expiry(now, ttl),
            });
            true
        })
    }
}

/// What every [`KvStore`] must do, written once and run on each store (the
/// in-process one below, Redis in `cluster::redis::store`).
#[cfg(test)]
pub(crate) mod contract {
    use std::time::Duration;

    use super::{KvStore, MAX_KEY_BYTES, MAX_VALUE_BYTES, StoreError};

    /// The TTL the checks give entries.
    pub const TTL: Option<Duration> = Some(Duration::from_millis(200));

    /// Lets the TTL of entry (namespace, key) pass: a manual clock jumps by
    /// [`TTL`], a real store is polled until the entry is gone.
    pub type Expire<'a> = &'a dyn Fn(&str, &str);

    pub fn namespaces(store: &dyn KvStore) {
        store.set("a", "k", "1".into(), None).unwrap();
        assert_eq!(store.get("a", "k").unwrap().as_deref(), Some("1"));
        assert_eq!(store.get("b", "k").unwrap(), None);
        // Plugin `a:k` key `x` is not plugin `a` key `k:x`.
        store.set("a:k", "x", "2".into(), None).unwrap();
        assert_eq!(store.get("a", "k:x").unwrap(), None);
        store.set("a", "k", "3".into(), None).unwrap();
        assert_eq!(store.get("a", "k").unwrap().as_deref(), Some("3"));
        store.delete("a", "k").unwrap();
        assert_eq!(store.get("a", "k").unwrap(), None);
        store.delete("a", "never-set").unwrap();
    }

    pub fn sizes(store: &dyn KvStore) {
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            store.get("p", &long_key),
            Err(StoreError::KeyTooLong(MAX_KEY_BYTES + 1))
        );
        assert_eq!(
            store.set("p", &long_key, "v".into(), None),
            Err(StoreError::KeyTooLong(MAX_KEY_BYTES + 1))
        );
        let large = "v".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(
            store.set("p", "k", large.clone(), None),
            Err(StoreError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        assert_eq!(
            store.compare_and_swap("p", "k", None, large, None),
            Err(StoreError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        assert_eq!(store.get("p", "k").unwrap(), None);
    }

    pub fn counters(store: &dyn KvStore, expire: Expire<'_>) {
        assert_eq!(store.incr("p", "c", 2, TTL).unwrap(), 2);
        // A later increment does not drop the first TTL.
        assert_eq!(store.incr("p", "c", 3, None).unwrap(), 5);
        assert_eq!(store.get("p", "c").unwrap().as_deref(), Some("5"));
        expire("p", "c");
        assert_eq!(store.incr("p", "c", -1, None).unwrap(), -1);

        store.set("p", "s", "text".into(), None).unwrap();
        assert_eq!(
            store.incr("p", "s", 1, None),
            Err(StoreError::NotACounter("s".into()))
        );
        assert_eq!(store.get("p", "s").unwrap().as_deref(), Some("text"));
    }

    pub fn compare_and_swap(store: &dyn KvStore, expire: Expire<'_>) {
        assert!(
            store
                .compare_and_swap("p", "k", None, "1".into(), TTL)
                .unwrap()
        );
        assert!(
            !store
                .compare_and_swap("p", "k", None, "2".into(), None)
                .unwrap()
        );
        assert!(
            !store
                .compare_and_swap("p", "k", Some("0"), "2".into(), None)
                .unwrap()
        );
        assert!(
            store
                .compare_and_swap("p", "k", Some("1"), "2".into(), TTL)
                .unwrap()
        );
        assert_eq!(store.get("p", "k").unwrap().as_deref(), Some("2"));
        expire("p", "k");
        assert!(
            store
                .compare_and_swap("p", "k", None, "3".into(), None)
                .unwrap()
        );
    }

    pub fn expiry(store: &dyn KvStore, expire: Expire<'_>) {
        store.set("p", "t", "v".into(), TTL).unwrap();
        store.set("p", "forever", "v".into(), None).unwrap();
        expire("p", "t");
        assert_eq!(store.get("p", "t").unwrap(), None);
        assert_eq!(store.get("p", "forever").unwrap().as_deref(), Some("v"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use super::*;

    /// A store whose clock only moves when the test says so.
    fn manual() -> (MemoryStore, Arc<AtomicU64>) {
        let start = Instant::now();
        let offset_ms = Arc::new(AtomicU64::new(0));
        let offset = offset_ms.clone();
        let store = MemoryStore::with_clock(Box::new(move || {
            start + Duration::from_millis(offset.load(Ordering::Relaxed))
        }));
        (store, offset_ms)
    }

    /// The shared checks, with TTLs passing by moving the manual clock.
    fn check(run: impl FnOnce(&dyn KvStore, contract::Expire<'_>)) {
        let (store, clock) = manual();
        let ttl_ms = contract::TTL.unwrap().as_millis() as u64;
        run(&store, &|_, _| {
            clock.fetch_add(ttl_ms, Ordering::Relaxed);
        });
    }

    #[test]
    fn keeps_the_store_contract() {
        check(|store, _| contract::namespaces(store));
        check(|store, _| contract::sizes(store));
        check(contract::counters);
        check(contract::compare_and_swap);
        check(contract::expiry);
    }

    const SEC: Option<Duration> = Some(Duration::from_secs(1));

    #[test]
    fn entries_expire_exactly_at_their_ttl() {
        let (store, clock) = manual();
        store.set("p", "k", "v".into(), SEC).unwrap();
        store.set("p", "forever", "v".into(), None).unwrap();
        clock.store(999, Ordering::Relaxed);
        assert_eq!(store.get("p", "k").unwrap().as_deref(), Some("v"));
        clock.store(1000, Ordering::Relaxed);
        assert_eq!(store.get("p", "k").unwrap(), None);
        clock.store(1_000_000, Ordering::Relaxed);
        assert_eq!(store.get("p", "forever").unwrap().as_deref(), Some("v"));
    }

    #[test]
    fn counters_keep_their_first_ttl_when_incremented_with_another() {
        let (store, clock) = manual();
        assert_eq!(store.incr("p", "c", 2, SEC).unwrap(), 2);
        clock.store(500, Ordering::Relaxed);
        assert_eq!(store.incr("p", "c", 3, SEC).unwrap(), 5);
        clock.store(1000, Ordering::Relaxed);
        assert_eq!(store.incr("p", "c", 1, SEC).unwrap(), 1);
    }

    #[test]
    fn bounded_per_plugin() {
        let (store, clock) = manual();
        assert_eq!(
            store.set("p", &"k".repeat(MAX_KEY_BYTES + 1), "v".into(), None),
            Err(StoreError::KeyTooLong(MAX_KEY_BYTES + 1))
        );
        assert_eq!(
            store.set("p", "k", "v".repeat(MAX_VALUE_BYTES + 1), None),
            Err(StoreError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        for i in 0..MAX_ENTRIES {
            store.set("p", &i.to_string(), "v".into(), SEC).unwrap();
        }
        assert_eq!(
            store.set("p", "new", "v".into(), None),
            Err(StoreError::Full)
        );
        // Overwriting and other plugins still work; expiry frees room.
        store.set("p", "0", "w".into(), SEC).unwrap();
        store.set("q", "new", "v".into(), None).unwrap();
        clock.store(1000, Ordering::Relaxed);
        store.set("p", "new", "v".into(), None).unwrap();
    }
}
