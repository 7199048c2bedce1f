//! The ledger: every message this run sent, what the server answered and how
//! often it arrived. Senders and stream readers write to it; the progress
//! line and the summary read it. Ids are handed out densely from 0, so a
//! message's record is found by indexing, not hashing.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::payload::Stamp;

/// How a send ended, from the sender's side.
pub enum Outcome {
    /// The tool answered without `isError`.
    Accepted,
    /// The tool answered with `isError`; the sentence it gave.
    Rejected(String),
    /// No tool answer at all (HTTP or protocol failure).
    Failed(String),
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Answer {
    #[default]
    Pending,
    Accepted,
    Rejected,
    Failed,
}

#[derive(Clone, Copy, Default)]
struct Record {
    answer: Answer,
    arrivals: u32,
}

/// Counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Distinct messages that arrived.
    pub delivered: u64,
    /// Arrivals beyond the first of a message.
    pub duplicated: u64,
    /// Arrivals at an agent other than the one the message was sent to.
    pub misrouted: u64,
    /// Arrivals of messages the server refused or that failed: the sender was
    /// told it did not go through, yet it did.
    pub unannounced: u64,
    /// Arrivals carrying an id this run never sent.
    pub foreign: u64,
    /// Accepted messages that have not arrived (yet); once the drain window
    /// is over, the lost ones.
    #[serde(rename = "lost")]
    pub awaiting: u64,
}

#[derive(Default)]
struct Book {
    records: Vec<Record>,
    counts: Counts,
    /// Send -> first arrival, in microseconds, in arrival order.
    latencies_us: Vec<u64>,
    /// Tool-call round trips, in microseconds.
    calls_us: Vec<u64>,
    rejections: HashMap<String, u64>,
    failures: HashMap<String, u64>,
    last_arrival_us: u64,
}

pub struct Ledger {
    clock: Instant,
    book: Mutex<Book>,
}

/// Everything the summary needs once the run is over.
pub struct Closing {
    pub counts: Counts,
    pub latencies_us: Vec<u64>,
    pub calls_us: Vec<u64>,
    pub rejections: HashMap<String, u64>,
    pub failures: HashMap<String, u64>,
    /// When the last first-arrival happened, on the run's clock.
    pub last_arrival_us: u64,
}

impl Ledger {
    pub fn new() -> Self {
        Self {
            clock: Instant::now(),
            book: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // Every update is a few field writes that cannot panic halfway.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Microseconds on the run's clock; senders and receivers share it.
    pub fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// Records a message about to be sent to agent `to`.
    pub fn begin(&self, to: u32) -> Stamp {
        let mut book = self.lock();
        let id = book.records.len() as u64;
        book.records.push(Record::default());
        book.counts.sent += 1;
        drop(book);
        Stamp {
            id,
            sent_us: self.now_us(),
            to,
        }
    }

    /// Records the server's answer to message `id`.
    pub fn settle(&self, id: u64, outcome: Outcome, call: Duration) {
        let mut book = self.lock();
        book.calls_us.push(call.as_micros() as u64);
        let book = &mut *book;
        let Some(record) = book.records.get_mut(id as usize) else {
            return;
        };
        let arrived = record.arrivals > 0;
        match outcome {
            Outcome::Accepted => {
                record.answer = Answer::Accepted;
                book.counts.accepted += 1;
                if !arrived {
                    book.counts.awaiting += 1;
                }
            }
            Outcome::Rejected(text) => {
                record.answer = Answer::Rejected;
                book.counts.rejected += 1;
                *book.rejections.entry(generalize(&text)).or_default() += 1;
            }
            Outcome::Failed(text) => {
                record.answer = Answer::Failed;
                book.counts.failed += 1;
                *book.failures.entry(generalize(&text)).or_default() += 1;
            }
        }
        if arrived && matches!(record.answer, Answer::Rejected | Answer::Failed) {
            book.counts.unannounced += 1;
        }
    }

    /// Records a message arriving on agent `at`'s stream. The arrival can
    /// come before the sender's answer: the server answers once the message
    /// is queued on the recipient's stream.
    pub fn arrive(&self, stamp: Stamp, at: u32) {
        let now = self.now_us();
        let mut book = self.lock();
        let book = &mut *book;
        let Some(record) = book.records.get_mut(stamp.id as usize) else {
            book.counts.foreign += 1;
            return;
        };
        if stamp.to != at {
            book.counts.misrouted += 1;
        }
        record.arrivals += 1;
        if record.arrivals > 1 {
            book.counts.duplicated += 1;
            return;
        }
        book.counts.delivered += 1;
        book.latencies_us.push(now.saturating_sub(stamp.sent_us));
        book.last_arrival_us = now;
        match record.answer {
            Answer::Accepted => book.counts.awaiting -= 1,
            Answer::Rejected | Answer::Failed => book.counts.unannounced += 1,
            Answer::Pending => {}
        }
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    /// Latencies of the messages that arrived since the `from`-th arrival,
    /// for the progress line's last-second percentiles.
    pub fn latencies_since(&self, from: usize) -> Vec<u64> {
        self.lock()
            .latencies_us
            .get(from..)
            .unwrap_or_default()
            .to_vec()
    }

    pub fn close(&self) -> Closing {
        let mut book = self.lock();
        let book = std::mem::take(&mut *book);
        Closing {
            counts: book.counts,
            latencies_us: book.latencies_us,
            calls_us: book.calls_us,
            rejections: book.rejections,
            failures: book.failures,
            last_arrival_us: book.last_arrival_us,
        }
    }
}

/// Errors name agents and counts ("agent-17 has 256 unread messages"); with
/// the digits folded they group into a few kinds worth counting.
fn generalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(200));
    let mut in_digits = false;
    for c in text.chars().take(200) {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALL: Duration = Duration::from_millis(1);

    #[test]
    fn counts_loss_duplicates_and_early_arrivals() {
        let ledger = Ledger::new();
        let a = ledger.begin(1);
        let b = ledger.begin(2);
        let c = ledger.begin(3);
        // `a` arrives before its sender hears back.
        ledger.arrive(a, 1);
        ledger.settle(a.id, Outcome::Accepted, CALL);
        ledger.settle(b.id, Outcome::Accepted, CALL);
        ledger.settle(
            c.id,
            Outcome::Rejected("agent-3 has 256 unread".into()),
            CALL,
        );
        assert_eq!(ledger.counts().awaiting, 1, "b has not arrived");
        ledger.arrive(b, 2);
        // A second copy, at the wrong agent.
        ledger.arrive(b, 1);
        let closing = ledger.close();
        let counts = closing.counts;
        assert_eq!(
            (
                counts.sent,
                counts.accepted,
                counts.rejected,
                counts.delivered
            ),
            (3, 2, 1, 2)
        );
        assert_eq!(
            (counts.duplicated, counts.misrouted, counts.awaiting),
            (1, 1, 0)
        );
        assert_eq!(closing.rejections["agent-N has N unread"], 1);
        assert_eq!(closing.latencies_us.len(), 2);
    }

    #[test]
    fn an_unknown_id_is_foreign() {
        let ledger = Ledger::new();
        ledger.arrive(
            Stamp {
                id: 7,
                sent_us: 0,
                to: 0,
            },
            0,
        );
        assert_eq!(ledger.counts().foreign, 1);
    }
}
