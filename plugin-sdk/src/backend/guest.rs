//! The host functions as the component imports them.

use crate::__private::bindings::switchboard::filter::{clock, config, log as wit_log, store};
use crate::log::Level;

pub(crate) fn config_json() -> String {
    config::get()
}

pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    };
    wit_log::log(level, message);
}

pub(crate) fn now_ms() -> u64 {
    clock::now_ms()
}

pub(crate) fn store_get(key: &str) -> Option<String> {
    store::get(key)
}

pub(crate) fn store_set(key: &str, value: &str, ttl_ms: u64) {
    store::set(key, value, ttl_ms);
}

pub(crate) fn store_delete(key: &str) {
    store::delete(key);
}

pub(crate) fn store_incr(key: &str, delta: i64, ttl_ms: u64) -> i64 {
    store::incr(key, delta, ttl_ms)
}

pub(crate) fn store_compare_and_swap(
    key: &str,
    expected: Option<&str>,
    new: &str,
    ttl_ms: u64,
) -> bool {
    store::compare_and_swap(key, expected, new, ttl_ms)
}
