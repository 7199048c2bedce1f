//! Delivery: each agent's outbox, the bounded queue between senders and the
//! agent's SSE stream.
//!
//! Senders never wait on a slow reader: a full outbox refuses at once. Every
//! message gets a per-agent sequence number used as its SSE event id, and the
//! last messages handed to a stream are kept for a short while, so a stream
//! re-opened with `Last-Event-ID` resumes exactly after what the client saw:
//! nothing is replayed twice and nothing in between is skipped. That resume
//! window is bounded by count, bytes and age (a client reconnects within a
//! second), and freed when the session goes.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use futures::Stream;
use rmcp::{
    model::ServerJsonRpcMessage, transport::streamable_http_server::session::ServerSseMessage,
};
use tokio::sync::{Notify, watch};

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

struct Envelope {
    seq: u64,
    message: Arc<ServerJsonRpcMessage>,
}

/// A message handed to a stream, kept in case the client did not see it.
struct Sent {
    envelope: Envelope,
    bytes: usize,
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
            self.sent_bytes -= oldest.bytes;
            self.sent.pop_front();
        }
    }

    fn clear_sent(&mut self) {
        self.sent.clear();
        self.sent_bytes = 0;
    }
}

/// The size of `message` as the stream will send it, without building the text.
fn wire_size(message: &ServerJsonRpcMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing our own notifications cannot fail; a failure would count short.
    let _ = serde_json::to_writer(&mut count, message);
    count.0
}

pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    attached: watch::Sender<bool>,
    capacity: usize,
}

/// Parses an event id this module handed out; other ids (rmcp's priming
/// event, say) are not ours.
pub fn parse_event_id(id: &str) -> Option<u64> {
    id.strip_prefix(EVENT_ID_PREFIX)?.parse().ok()
}

impl Outbox {
    pub fn new(capacity: usize) -> Arc<Self> {
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
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queues consistent (every
        // mutation is a single push/pop), so poisoning carries no meaning.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a message for the attached stream.
    pub fn push(&self, message: ServerJsonRpcMessage) -> Result<(), PushError> {
        if !*self.attached.borrow() {
            return Err(PushError::Offline);
        }
        let mut state = self.lock();
        if state.pending.len() >= self.capacity {
            return Err(PushError::Full(state.pending.len()));
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.pending.push_back(Envelope {
            seq,
            message: Arc::new(message),
        });
        drop(state);
        self.wake.notify_waiters();
        Ok(())
    }

    /// Messages queued and not yet handed to a stream.
    pub fn waiting(&self) -> usize {
        self.lock().pending.len()
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
    /// sent again, in order, before anything newer.
    pub fn attach(self: &Arc<Self>, resume_after: Option<u64>) -> (Generation, OutboxStream) {
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

    /// The stream of `generation` ended. Messages still pending stay for the
    /// next stream.
    pub fn detach(&self, generation: Generation) {
        if self.lock().generation == generation {
            self.attached.send_replace(false);
        }
    }

    /// Frees kept messages past the resume window's age.
    pub fn trim(&self) {
        self.lock().trim_sent();
    }

    /// Ends the attached stream for good (the session is gone) and frees
    /// everything it held.
    pub fn close(&self) {
        {
            let mut state = self.lock();
            state.generation += 1;
            state.pending.clear();
            state.clear_sent();
        }
        self.attached.send_replace(false);
        self.wake.notify_waiters();
    }

    /// Next message for the stream of `generation`; `None` once superseded.
    async fn next(&self, generation: Generation) -> Option<ServerSseMessage> {
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut state = self.lock();
                if state.generation != generation {
                    return None;
                }
                if let Some(envelope) = state.pending.pop_front() {
                    let mut sse = ServerSseMessage::default();
                    sse.event_id = Some(format!("{EVENT_ID_PREFIX}{}", envelope.seq));
                    sse.message = Some(envelope.message.clone());
                    let bytes = wire_size(&envelope.message);
                    state.sent_bytes += bytes;
                    state.sent.push_back(Sent {
                        envelope,
                        bytes,
                        at: Instant::now(),
                    });
                    state.trim_sent();
                    return Some(sse);
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

    pub fn into_stream(self) -> impl Stream<Item = ServerSseMessage> + Send + 'static {
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

    fn note(n: u64) -> ServerJsonRpcMessage {
        ServerJsonRpcMessage::notification(ServerNotification::CustomNotification(
            CustomNotification::new("n", Some(serde_json::json!(n))),
        ))
    }

    fn ids(items: &[ServerSseMessage]) -> Vec<u64> {
        items
            .iter()
            .map(|m| parse_event_id(m.event_id.as_deref().unwrap()).unwrap())
            .collect()
    }

    async fn take(
        stream: &mut (impl Stream<Item = ServerSseMessage> + Unpin),
        n: usize,
    ) -> Vec<ServerSseMessage> {
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
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push(note(1)), Err(PushError::Offline));
        let (_generation, _stream) = outbox.attach(None);
        outbox.push(note(1)).unwrap();
        outbox.push(note(2)).unwrap();
        assert_eq!(outbox.push(note(3)), Err(PushError::Full(2)));
    }

    #[tokio::test]
    async fn resume_resends_exactly_what_came_after() {
        let outbox = Outbox::new(16);
        let (_, first) = outbox.attach(None);
        let mut first = Box::pin(first.into_stream());
        for n in 1..=5 {
            outbox.push(note(n)).unwrap();
        }
        assert_eq!(ids(&take(&mut first, 5).await), [1, 2, 3, 4, 5]);
        // The client saw up to 3; 4 and 5 were lost with the connection.
        let (_, second) = outbox.attach(Some(3));
        let mut second = Box::pin(second.into_stream());
        assert!(first.next().await.is_none(), "old stream ends");
        outbox.push(note(6)).unwrap();
        assert_eq!(ids(&take(&mut second, 3).await), [4, 5, 6]);
    }

    #[tokio::test]
    async fn the_resume_window_is_bounded_by_bytes_and_freed_on_close() {
        let outbox = Outbox::new(1024);
        let (_, stream) = outbox.attach(None);
        let mut stream = Box::pin(stream.into_stream());
        let big = |n: u64| {
            ServerJsonRpcMessage::notification(ServerNotification::CustomNotification(
                CustomNotification::new(
                    "n",
                    Some(serde_json::json!({"n": n, "pad": "x".repeat(64 * 1024)})),
                ),
            ))
        };
        for n in 1..=40 {
            outbox.push(big(n)).unwrap();
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
        outbox.close();
        assert_eq!(outbox.lock().sent_bytes, 0);
        assert!(outbox.lock().sent.is_empty());
    }

    #[tokio::test]
    async fn fresh_stream_gets_pending_but_no_replay() {
        let outbox = Outbox::new(16);
        let (generation, first) = outbox.attach(None);
        let mut first = Box::pin(first.into_stream());
        outbox.push(note(1)).unwrap();
        take(&mut first, 1).await;
        outbox.push(note(2)).unwrap();
        drop(first);
        outbox.detach(generation);
        let (_, second) = outbox.attach(None);
        let mut second = Box::pin(second.into_stream());
        assert_eq!(ids(&take(&mut second, 1).await), [2]);
    }
}
