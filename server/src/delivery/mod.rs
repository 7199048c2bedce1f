//! Delivery: where an accepted message goes and waits until a stream takes
//! it. [`Delivery::hand_over`] is the one place the bus hands a filtered
//! message to: the [`Recipient`]'s stream on this replica (an [`outbox`]; a
//! sender waits out a reconnect through [`LocalAgent::hand_over`]), the
//! replica that holds it (through the [`Cluster`]), or the [`inbox`] under
//! its name while it is away. Outboxes and inboxes are in the [`journal`] on
//! disk until handed to a stream.

pub mod inbox;
pub mod journal;
pub mod outbox;

pub use outbox::{
    Delivered, Generation, Outbox, OutboxStream, PushError, RESUME_WINDOW_AGE, RESUME_WINDOW_BYTES,
    parse_event_id,
};

use std::{sync::Arc, time::Instant};

use rmcp::model::ServerJsonRpcMessage;

use crate::cluster::{Cluster, Remote, RouteError};
use inbox::{InboxError, Mail};

/// Where a message for an agent goes, as the registry found it.
#[derive(Clone)]
pub enum Recipient {
    Local(LocalAgent),
    Remote(Remote),
    /// Away, with an inbox under this name.
    Away(String),
}

impl Recipient {
    pub fn name(&self) -> &str {
        match self {
            Recipient::Local(agent) => &agent.name,
            Recipient::Remote(remote) => &remote.name,
            Recipient::Away(name) => name,
        }
    }
}

/// What became of a message handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// Queued on the recipient's stream (here or on its replica).
    Streamed,
    /// In the inbox of an agent that is away; this many wait now.
    Queued(usize),
}

/// Why a message could not be handed over; nothing of it is kept.
#[derive(Debug, thiserror::Error)]
pub enum Undelivered {
    #[error("the recipient's queue is full ({0} waiting)")]
    QueueFull(usize),
    #[error("the recipient went offline and keeps no inbox")]
    WentOffline,
    #[error(transparent)]
    Route(RouteError),
    #[error(transparent)]
    Inbox(InboxError),
}

/// Hands filtered messages to streams, other replicas and inboxes.
pub struct Delivery {
    cluster: Arc<dyn Cluster>,
    mail: Arc<dyn Mail>,
}

impl Delivery {
    pub fn new(cluster: Arc<dyn Cluster>, mail: Arc<dyn Mail>) -> Self {
        Self { cluster, mail }
    }

    /// Hands `notification` to `recipient`'s stream, or to its inbox when it
    /// is away or its stream does not come back within the reconnect grace.
    /// Resolves once the message is durable (on disk, or confirmed by the
    /// replica that holds the recipient).
    pub async fn hand_over(
        &self,
        recipient: &Recipient,
        notification: Arc<ServerJsonRpcMessage>,
    ) -> Result<Handed, Undelivered> {
        let streamed = match recipient {
            Recipient::Local(agent) => match agent.hand_over(notification.clone()).await {
                Ok(written) => {
                    written.await;
                    Ok(())
                }
                Err(refusal) => Err(refusal),
            },
            // The chain ran on this replica; the owner only queues the result.
            Recipient::Remote(remote) => match self.cluster.deliver(remote, &notification).await {
                Ok(()) => Ok(()),
                Err(RouteError::Refused(refusal)) => Err(refusal),
                Err(error) => return Err(Undelivered::Route(error)),
            },
            Recipient::Away(_) => Err(PushError::Offline),
        };
        match streamed {
            Ok(()) => Ok(Handed::Streamed),
            Err(PushError::Full(waiting)) => Err(Undelivered::QueueFull(waiting)),
            Err(PushError::Offline) => {
                match self.mail.queue(recipient.name(), notification).await {
                    Ok(waiting) => Ok(Handed::Queued(waiting)),
                    Err(InboxError::NoInbox(_)) => Err(Undelivered::WentOffline),
                    Err(refusal) => Err(Undelivered::Inbox(refusal)),
                }
            }
        }
    }
}

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
