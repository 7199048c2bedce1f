//! The outbox: each agent's bounded queue between senders and its SSE stream.
//!
//! Senders never wait on a slow reader: a full outbox refuses at once. Every
//! message gets a per-agent sequence number used as its SSE event id, and the
//! last messages handed to a stream are kept for a short while, so a stream
//! re-opened with `Last-Event-ID` resumes exactly after what the client saw:
//! nothing is replayed twice and nothing in between is skipped. That resume
//! window is bounded by count, bytes and age (a client reconnects within a
//! second), and freed when the session goes. What waits in the queue is also
//! in the [`Journal`] until it is handed to the stream; when the stream ends,
//! it moves to the agent's inbox.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use futures::Stream;
use rmcp::model::ServerJsonRpcMessage;
use tokio::sync::{Notify, oneshot, watch};

use super::{
    inbox::{Queued, now_ms},
    journal::{Journal, Record},
};

/// Most already-sent messages kept per agent for `Last-Event-ID` resumes.
const RESUME_WINDOW: usize = 256;
/// Most bytes (as serialized) of already-sent messages kept per agent.
pub const RESUME_WINDOW_BYTES: usize = 1024 * 1024;
/// How long an already-sent message is kept for a resume.
pub const RESUME_WINDOW_AGE: Duration = Duration::from_secs(30);
const EVENT_ID_PREFIX: &str = "msg-";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    #[error("the recipient has {0} messages waiting that it has not read")]
    Full(usize),
    #[error("the recipient is not connected")]
    Offline,
}

/// A stream attachment; a newer one supersedes it.
pub type Generation = u64;

/// A message as its stream takes it: `seq` is its event id, `json` the
/// notification as serialized when it was queued.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub seq: u64,
    pub json: Arc<str>,
}

impl Delivered {
    /// The SSE event id a client sends back as `Last-Event-ID`.
    pub fn event_id(&self) -> String {
        format!("{EVENT_ID_PREFIX}{}", self.seq)
    }
}

struct Envelope {
    seq: u64,
    queued: Queued,
    /// Told when the stream takes the message, which may be before it is on disk.
    handed: Option<oneshot::Sender<()>>,
}

/// A message handed to a stream, kept in case the client did not see it.
struct Sent {
    envelope: Envelope,
    at: Instant,
}

struct State {
    next_seq: u64,
    pending: VecDeque<Envelope>,
    sent: VecDeque<Sent>,
    sent_bytes: usize,
    generation: Generation,
}

impl State {
    /// Drops kept messages beyond the window's count, bytes or age.
    fn trim_sent(&mut self) {
        while let Some(oldest) = self.sent.front() {
            let over = self.sent.len() > RESUME_WINDOW
                || self.sent_bytes > RESUME_WINDOW_BYTES
                || oldest.at.elapsed() > RESUME_WINDOW_AGE;
            if !over {
                break;
            }
            self.sent_bytes -= oldest.envelope.queued.bytes();
            self.sent.pop_front();
        }
    }

    fn clear_sent(&mut self) {
        self.sent.clear();
        self.sent_bytes = 0;
    }

    /// Queues mail behind everything pending, numbered in arrival order.
    fn enqueue(&mut self, mail: Vec<Queued>) {
        for queued in mail {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push_back(Envelope {
                seq,
                queued,
                handed: None,
            });
        }
    }
}

pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    attached: watch::Sender<bool>,
    capacity: usize,
    journal: Arc<Journal>,
}

/// Parses an event id this module handed out; other ids (the opening
/// event's `0`, say) are not ours.
pub fn parse_event_id(id: &str) -> Option<u64> {
    id.strip_prefix(EVENT_ID_PREFIX)?.parse().ok()
}

impl Outbox {
    pub fn new(capacity: usize, journal: Arc<Journal>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                next_seq: 1,
                pending: VecDeque::new(),
                sent: VecDeque::new(),
                sent_bytes: 0,
                generation: 0,
            }),
            wake: Notify::new(),
            attached: watch::Sender::new(false),
            capacity,
            journal,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queues consistent (every
        // mutation is a single push/pop), so poisoning carries no meaning.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a message for `to`'s attached stream, and journals it; the
    /// future resolves once it is on disk or, if that comes first, once the
    /// stream has taken it (then it needs no disk: it is gone from here).
    pub fn push(
        &self,
        to: &str,
        message: Arc<ServerJsonRpcMessage>,
    ) -> Result<impl Future<Output = ()> + use<>, PushError> {
        if !*self.attached.borrow() {
            return Err(PushError::Offline);
        }
        // Our notifications are plain JSON: serializing cannot fail.
        let notification = serde_json::to_string(&*message).unwrap_or_default();
        let json = Arc::from(notification.as_str());
        let at_ms = now_ms();
        let record = Record {
            to: to.to_owned(),
            at_ms,
            notification,
        };
        let mut state = self.lock();
        if state.pending.len() >= self.capacity {
            return Err(PushError::Full(state.pending.len()));
        }
        // Under the lock, so rows are in queue order.
        let (row, written) = self.journal.put(&record);
        let (handed, taken) = oneshot::channel();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending.push_back(Envelope {
            seq,
            queued: Queued { row, json, at_ms },
            handed: Some(handed),
        });
        drop(state);
        self.wake.notify_waiters();
        Ok(async move {
            tokio::pin!(written);
            tokio::select! {
                () = &mut written => {}
                // Dropped untold: it moved to the inbox, and disk it is.
                taken = taken => if taken.is_err() { written.await },
            }
        })
    }

    /// Messages queued and not yet handed to a stream.
    pub fn waiting(&self) -> usize {
        self.lock().pending.len()
    }

    /// Bytes of already-sent messages kept for resumes.
    pub fn kept_bytes(&self) -> usize {
        self.lock().sent_bytes
    }

    pub fn is_attached(&self) -> bool {
        *self.attached.borrow()
    }

    /// Waits until a stream is attached, up to `timeout`.
    pub async fn wait_attached(&self, timeout: Duration) -> bool {
        let mut attached = self.attached.subscribe();
        tokio::time::timeout(timeout, attached.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Makes a new stream the only reader, ending any previous one. With
    /// `resume_after`, messages already sent after that sequence number are
    /// sent again, in order, before anything newer; then `mail` (what waited
    /// in the agent's inbox) and only then what is sent from now on.
    pub fn attach(
        self: &Arc<Self>,
        resume_after: Option<u64>,
        mail: Vec<Queued>,
    ) -> (Generation, OutboxStream) {
        let mut state = self.lock();
        state.generation += 1;
        let generation = state.generation;
        // Only what the client has not acknowledged (by its Last-Event-ID)
        // comes back; the rest of the window is freed either way.
        state.trim_sent();
        let resent: Vec<Envelope> = match resume_after {
            Some(after) => state
                .sent
                .drain(..)
                .map(|sent| sent.envelope)
                .filter(|e| e.seq > after)
                .collect(),
            None => Vec::new(),
        };
        state.clear_sent();
        for envelope in resent.into_iter().rev() {
            state.pending.push_front(envelope);
        }
        state.enqueue(mail);
        drop(state);
        self.attached.send_replace(true);
        self.wake.notify_waiters();
        (
            generation,
            OutboxStream {
                outbox: self.clone(),
                generation,
            },
        )
    }

    /// Adds mail that waited in an inbox after everything queued so far.
    pub fn append(&self, mail: Vec<Queued>) {
        if mail.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.enqueue(mail);
        drop(state);
        self.wake.notify_waiters();
    }

    /// The stream of `generation` ended. Returns the messages it had not
    /// sent, for the agent's inbox.
    pub fn detach(&self, generation: Generation) -> Vec<Queued> {
        let mut state = self.lock();
        if state.generation != generation {
            return Vec::new();
        }
        self.attached.send_replace(false);
        state.pending.drain(..).map(|e| e.queued).collect()
    }

    /// Frees kept messages past the resume window's age.
    pub fn trim(&self) {
        self.lock().trim_sent();
    }

    /// Ends the attached stream for good (the session is gone) and frees
    /// everything it held; returns the messages it had not sent.
    pub fn close(&self) -> Vec<Queued> {
        let unsent = {
            let mut state = self.lock();
            state.generation += 1;
            state.clear_sent();
            state.pending.drain(..).map(|e| e.queued).collect()
        };
        self.attached.send_replace(false);
        self.wake.notify_waiters();
        unsent
    }

    /// Next message for the stream of `generation`; `None` once superseded.
    async fn next(&self, generation: Generation) -> Option<Delivered> {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut state = self.lock();
                if state.generation != generation {
                    return None;
                }
                if let Some(mut envelope) = state.pending.pop_front() {
                    if let Some(handed) = envelope.handed.take() {
                        let _ = handed.send(());
                    }
                    let delivered = Delivered {
                        seq: envelope.seq,
                        json: envelope.queued.json.clone(),
                    };
                    // Handed to the stream: from here the resume window keeps it.
                    self.journal.remove(envelope.queued.row);
                    state.sent_bytes += envelope.queued.bytes();
                    state.sent.push_back(Sent {
                        envelope,
                        at: Instant::now(),
                    });
                    state.trim_sent();
                    return Some(delivered);
                }
            }
            woken.await;
        }
    }
}

/// The messages of one attachment, in queue order.
pub struct OutboxStream {
    outbox: Arc<Outbox>,
    generation: Generation,
}

impl OutboxStream {
    pub fn generation(&self) -> Generation {
        self.generation
    }

    pub fn into_stream(self) -> impl Stream<Item = Delivered> + Send + 'static {
        futures::stream::unfold(self, |this| async move {
            let item = this.outbox.next(this.generation).await?;
            Some((item, this))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use proptest::prelude::*;
    use rmcp::model::{CustomNotification, ServerNotification};

    use super::*;

    proptest! {
        #[test]
        fn event_ids_round_trip_and_nothing_else_parses(n in any::<u64>(), other in "\\PC{0,30}") {
            prop_assert_eq!(parse_event_id(&format!("{EVENT_ID_PREFIX}{n}")), Some(n));
            if !other.starts_with(EVENT_ID_PREFIX) {
                prop_assert_eq!(parse_event_id(&other), None);
            }
        }
    }

    fn note(n: u64) -> Arc<ServerJsonRpcMessage> {
        Arc::new(ServerJsonRpcMessage::notification(
            ServerNotification::CustomNotification(CustomNotification::new(
                "n",
                Some(serde_json::json!({ "n": n })),
            )),
        ))
    }

    fn outbox(capacity: usize) -> Arc<Outbox> {
        Outbox::new(capacity, Journal::disabled())
    }

    fn push(outbox: &Outbox, message: Arc<ServerJsonRpcMessage>) -> Result<(), PushError> {
        outbox.push("agent-1", message).map(drop)
    }

    fn ids(items: &[Delivered]) -> Vec<u64> {
        items
            .iter()
            .map(|m| parse_event_id(&m.event_id()).unwrap())
            .collect()
    }

    async fn take(
        stream: &mut (impl Stream<Item = Delivered> + Unpin),
        n: usize,
    ) -> Vec<Delivered> {
        let mut out = Vec::new();
        for _ in 0..n {
            let item = tokio::time::timeout(Duration::from_secs(2), stream.next())
                .await
                .expect("message within 2 s")
                .expect("stream open");
            out.push(item);
        }
        out
    }

    #[tokio::test]
    async fn refuses_when_offline_or_full() {
        let outbox = outbox(2);
        assert_eq!(push(&outbox, note(1)), Err(PushError::Offline));
        let (_generation, _stream) = outbox.attach(None, Vec::new());
        push(&outbox, note(1)).unwrap();
        push(&outbox, note(2)).unwrap();
        assert_eq!(push(&outbox, note(3)), Err(PushError::Full(2)));
    }

    #[tokio::test]
    async fn resume_resends_exactly_what_came_after() {
        let outbox = outbox(16);
        let (_, first) = outbox.attach(None, Vec::new());
        let mut first = Box::pin(first.into_stream());
        for n in 1..=5 {
            push(&outbox, note(n)).unwrap();
        }
        assert_eq!(ids(&take(&mut first, 5).await), [1, 2, 3, 4, 5]);
        // The client saw up to 3; 4 and 5 were lost with the connection.
        let (_, second) = outbox.attach(Some(3), Vec::new());
        let mut second = Box::pin(second.into_stream());
        assert!(first.next().await.is_none(), "old stream ends");
        push(&outbox, note(6)).unwrap();
        assert_eq!(ids(&take(&mut second, 3).await), [4, 5, 6]);
    }

    #[tokio::test]
    async fn the_resume_window_is_bounded_by_bytes_and_freed_on_close() {
        let outbox = outbox(1024);
        let (_, stream) = outbox.attach(None, Vec::new());
        let mut stream = Box::pin(stream.into_stream());
        let big = |n: u64| {
            Arc::new(ServerJsonRpcMessage::notification(
                ServerNotification::CustomNotification(CustomNotification::new(
                    "n",
                    Some(serde_json::json!({"n": n, "pad": "x".repeat(64 * 1024)})),
                )),
            ))
        };
        for n in 1..=40 {
            push(&outbox, big(n)).unwrap();
        }
        take(&mut stream, 40).await;
        {
            let state = outbox.lock();
            assert!(
                state.sent_bytes <= RESUME_WINDOW_BYTES,
                "{}",
                state.sent_bytes
            );
            assert!(
                state.sent.len() < 40,
                "{} kept, {} bytes",
                state.sent.len(),
                state.sent_bytes
            );
            assert_eq!(state.sent.back().unwrap().envelope.seq, 40, "newest kept");
        }
        assert!(outbox.close().is_empty(), "everything was sent");
        assert_eq!(outbox.lock().sent_bytes, 0);
        assert!(outbox.lock().sent.is_empty());
    }

    #[tokio::test]
    async fn unsent_mail_leaves_with_the_stream_and_comes_back_before_anything_newer() {
        let outbox = outbox(16);
        let (generation, first) = outbox.attach(None, Vec::new());
        let mut first = Box::pin(first.into_stream());
        push(&outbox, note(1)).unwrap();
        take(&mut first, 1).await;
        push(&outbox, note(2)).unwrap();
        drop(first);
        let unsent = outbox.detach(generation);
        assert_eq!(unsent.len(), 1);
        let (_, second) = outbox.attach(None, unsent);
        let mut second = Box::pin(second.into_stream());
        push(&outbox, note(3)).unwrap();
        let got = take(&mut second, 2).await;
        let contents: Vec<serde_json::Value> = got
            .iter()
            .map(|m| {
                serde_json::from_str::<serde_json::Value>(&m.json).unwrap()["params"]["n"].clone()
            })
            .collect();
        assert_eq!(contents, [2, 3], "no replay of 1, 2 before 3");
    }
}
