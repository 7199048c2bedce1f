//! Wall-clock time as the host sees it (off wasm32: the harness's mock clock).

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    crate::backend::now_ms()
}
