//! Delivery: where an accepted message waits until a stream takes it. Each
//! agent online has an [`outbox`] feeding its stream (a sender waits out a
//! reconnect through [`LocalAgent::hand_over`]); an agent that is away has an
//! [`inbox`] under its name; both are in the [`journal`] on disk until handed
//! to a stream.

pub mod inbox;
pub mod journal;
pub mod outbox;

pub use outbox::{
    Generation, Outbox, OutboxStream, PushError, RESUME_WINDOW_AGE, RESUME_WINDOW_BYTES,
    parse_event_id,
};

use std::{sync::Arc, time::Instant};

use rmcp::model::ServerJsonRpcMessage;

/// An agent of this replica, as a sender finds it.
#[derive(Clone)]
pub struct LocalAgent {
    pub name: String,
    pub outbox: Arc<Outbox>,
    /// Set when the agent's stream dropped moments ago and may come back.
    pub reconnecting_until: Option<Instant>,
}

impl LocalAgent {
    /// Queues `notification` on the agent's stream; if the stream dropped
    /// moments ago, waits out the grace period for it to come back (Claude
    /// Code re-opens within a second). The future resolves once the message
    /// is on disk.
    pub async fn hand_over(
        &self,
        notification: Arc<ServerJsonRpcMessage>,
    ) -> Result<impl Future<Output = ()> + use<>, PushError> {
        if !self.outbox.is_attached() {
            let wait = self
                .reconnecting_until
                .map(|until| until.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            self.outbox.wait_attached(wait).await;
        }
        // A stream that drops between the check and the push is reported as
        // offline, and the bus turns to the inbox.
        self.outbox.push(&self.name, notification)
    }
}
