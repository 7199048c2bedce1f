//! The key/value and counter store the host keeps for this filter.
//!
//! Entries outlive the component instance, so this is where state such as
//! rate-limit buckets belongs. The host namespaces keys per filter, so plain
//! keys cannot collide with another filter's. Several instances of the same
//! filter may run at once (one per worker): read-modify-write through
//! [`compare_and_swap`] or [`incr`], not [`get`] then [`set`].
//!
//! Every `ttl_ms` is in milliseconds; [`NO_EXPIRY`] (0) keeps the entry until
//! it is overwritten or deleted.

/// A `ttl_ms` that never expires.
pub const NO_EXPIRY: u64 = 0;

/// The value at `key`, unless absent or expired.
pub fn get(key: &str) -> Option<String> {
    crate::backend::store_get(key)
}

/// Sets `key` to `value`, expiring `ttl_ms` from now.
pub fn set(key: &str, value: &str, ttl_ms: u64) {
    crate::backend::store_set(key, value, ttl_ms);
}

pub fn delete(key: &str) {
    crate::backend::store_delete(key);
}

/// Adds `delta` to the counter at `key` (absent or expired counts as 0) and
/// returns the new value; `ttl_ms` applies only when this call creates it.
pub fn incr(key: &str, delta: i64, ttl_ms: u64) -> i64 {
    crate::backend::store_incr(key, delta, ttl_ms)
}

/// Sets `key` to `new` only if its current value is `expected` (`None`: only
/// if absent or expired). Returns whether it did.
pub fn compare_and_swap(key: &str, expected: Option<&str>, new: &str, ttl_ms: u64) -> bool {
    crate::backend::store_compare_and_swap(key, expected, new, ttl_ms)
}
