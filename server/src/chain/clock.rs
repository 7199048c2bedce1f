//! The time filters see through the `clock` import: the system clock in the
//! server, a clock the caller moves in `switchboard check`, so a corpus
//! replays with the timing it records rather than the speed of the replay.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// Milliseconds since the Unix epoch, set by the caller.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => super::now_ms(),
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }
}
