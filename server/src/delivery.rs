//! Delivery: each agent's outbox, the bounded queue between senders and the
//! agent's SSE stream.
//!
//! Senders never wait on a slow reader: a full outbox refuses at once. Every
//! message gets a per-agent sequence number used as its SSE event id, and the
//! last messages handed to a stream are kept, so a stream re-opened with
//! `Last-Event-ID` resumes exactly after what the client saw: nothing is
//! replayed twice and nothing in between is skipped.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use futures::Stream;
use rmcp::{
    model::ServerJsonRpcMessage, transport::streamable_http_server::session::ServerSseMessage,
};
use tokio::sync::{Notify, watch};

/// How many already-sent messages are kept for `Last-Event-ID` resumes.
const RESUME_WINDOW: usize = 256;
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

struct State {
    next_seq: u64,
    pending: VecDeque<Envelope>,
    sent: VecDeque<Envelope>,
    generation: Generation,
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
        let resent: Vec<Envelope> = match resume_after {
            Some(after) => state.sent.drain(..).filter(|e| e.seq > after).collect(),
            None => {
                state.sent.clear();
                Vec::new()
            }
        };
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

    /// Ends the attached stream for good (the session is gone).
    pub fn close(&self) {
        self.lock().generation += 1;
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
                    if state.sent.len() == RESUME_WINDOW {
                        state.sent.pop_front();
                    }
                    state.sent.push_back(envelope);
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
    use rmcp::model::{CustomNotification, ServerNotification};

    use super::*;

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
