//! Remote delivery over Redis pub/sub. Each replica subscribes to its own
//! channel. A sender publishes the already-filtered notification there and
//! waits for an acknowledgement on its own channel; the owning replica queues
//! the notification on the agent's stream and acknowledges with the outcome.
//! `Delivered` means the same as locally: it is in the recipient's outbox.
//!
//! Pub/sub drops what no one is subscribed to, so nothing is ever lost
//! silently: no subscriber is an error at once, and a missing ack is an error
//! after the timeout.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use redis::aio::ConnectionManager;
use rmcp::model::ServerJsonRpcMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{OP_TIMEOUT, RedisCluster, call};
use crate::{
    cluster::{LocalAgents, Remote, RouteError},
    delivery::PushError,
};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
enum Frame {
    Deliver {
        id: u64,
        reply_to: String,
        session: String,
        /// The notification's JSON, exactly as the recipient's stream sends it.
        notification: String,
    },
    Ack {
        id: u64,
        outcome: Outcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Queued,
    Full { waiting: usize },
    Offline,
}

pub struct Router {
    replica: String,
    /// Channels are per server, not per database: the database number keeps
    /// clusters sharing one Redis server apart.
    channel_prefix: String,
    timeout: Duration,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

/// Forgets a pending ack however the wait ends.
struct Pending<'a> {
    router: &'a Router,
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.router.pending().remove(&self.id);
    }
}

impl Router {
    pub fn new(replica: &str, database: i64, timeout: Duration) -> Self {
        Self {
            replica: replica.to_owned(),
            channel_prefix: format!("switchboard:{database}:replica:"),
            timeout,
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
        }
    }

    fn channel(&self, replica: &str) -> String {
        format!("{}{replica}", self.channel_prefix)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn deliver(
        &self,
        conn: &mut ConnectionManager,
        to: &Remote,
        notification: &ServerJsonRpcMessage,
    ) -> Result<(), RouteError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        let _pending = Pending { router: self, id };
        let frame = Frame::Deliver {
            id,
            reply_to: self.replica.clone(),
            session: to.session.clone(),
            notification: serde_json::to_string(notification)
                .expect("notifications are plain JSON"),
        };
        let receivers: usize = call(
            "publish a message",
            redis::cmd("PUBLISH")
                .arg(self.channel(&to.replica))
                .arg(serde_json::to_string(&frame).expect("frames are plain JSON"))
                .query_async(conn),
        )
        .await
        .map_err(|error| RouteError::Directory {
            to: to.name.clone(),
            error,
        })?;
        if receivers == 0 {
            return Err(RouteError::ReplicaDown {
                to: to.name.clone(),
                replica: to.replica.clone(),
            });
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Outcome::Queued)) => Ok(()),
            Ok(Ok(Outcome::Full { waiting })) => Err(RouteError::Refused(PushError::Full(waiting))),
            Ok(Ok(Outcome::Offline)) => Err(RouteError::Refused(PushError::Offline)),
            Ok(Err(_)) | Err(_) => Err(RouteError::NoAck {
                to: to.name.clone(),
                waited_ms: self.timeout.as_millis(),
            }),
        }
    }

    /// One frame off this replica's channel.
    fn receive(&self, cluster: &Arc<RedisCluster>, agents: &Weak<dyn LocalAgents>, payload: &str) {
        match serde_json::from_str::<Frame>(payload) {
            Ok(Frame::Ack { id, outcome }) => {
                if let Some(waiter) = self.pending().remove(&id) {
                    // The sender may have given up; then there is no one to tell.
                    let _ = waiter.send(outcome);
                }
            }
            Ok(Frame::Deliver {
                id,
                reply_to,
                session,
                notification,
            }) => {
                let cluster = cluster.clone();
                let agents = agents.clone();
                // Handing over may wait out a reconnect; other frames go on meanwhile.
                tokio::spawn(async move {
                    let outcome = hand_over(&agents, &session, &notification).await;
                    let ack = Frame::Ack { id, outcome };
                    let published = call(
                        "acknowledge a message",
                        redis::cmd("PUBLISH")
                            .arg(cluster.router.channel(&reply_to))
                            .arg(serde_json::to_string(&ack).expect("frames are plain JSON"))
                            .query_async::<usize>(&mut cluster.conn.clone()),
                    )
                    .await;
                    if let Err(error) = published {
                        // The sender times out and reports it as not delivered.
                        tracing::warn!(%error, "could not acknowledge a routed message");
                    }
                });
            }
            Err(error) => {
                tracing::warn!(%error, "ignoring a malformed frame on the replica channel")
            }
        }
    }
}

async fn hand_over(agents: &Weak<dyn LocalAgents>, session: &str, notification: &str) -> Outcome {
    let Some(agents) = agents.upgrade() else {
        return Outcome::Offline;
    };
    let Ok(notification) = serde_json::from_str::<ServerJsonRpcMessage>(notification) else {
        tracing::warn!("a routed notification did not parse; refusing it");
        return Outcome::Offline;
    };
    match agents.hand_over(session, Arc::new(notification)).await {
        Ok(()) => Outcome::Queued,
        Err(PushError::Full(waiting)) => Outcome::Full { waiting },
        Err(PushError::Offline) => Outcome::Offline,
    }
}

/// Keeps this replica subscribed to its channel until `shutdown`, coming
/// back with backoff whenever Redis goes away. Each new subscription nudges
/// the leases, so a restarted Redis learns this replica's agents at once.
pub(super) async fn listen(
    cluster: Arc<RedisCluster>,
    agents: Weak<dyn LocalAgents>,
    shutdown: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut connected_before = false;
    loop {
        let subscribe = async {
            let mut pubsub = cluster.client.get_async_pubsub().await?;
            pubsub
                .subscribe(cluster.router.channel(&cluster.replica))
                .await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = tokio::time::timeout(OP_TIMEOUT, subscribe) => attempt,
        };
        match attempt {
            Ok(Ok(mut pubsub)) => {
                if connected_before {
                    tracing::info!(replica = %cluster.replica, "Redis is back; subscribed again and re-registering agents");
                }
                connected_before = true;
                backoff = MIN_BACKOFF;
                cluster.nudge.notify_one();
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        message = messages.next() => message,
                    };
                    let Some(message) = message else { break };
                    match message.get_payload::<String>() {
                        Ok(payload) => cluster.router.receive(&cluster, &agents, &payload),
                        Err(error) => tracing::warn!(%error, "ignoring a non-text frame"),
                    }
                }
                tracing::warn!(replica = %cluster.replica, "lost the Redis subscription; messages to this replica's agents fail until it is back");
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, retry_ms = backoff.as_millis() as u64, "cannot subscribe to Redis")
            }
            Err(_) => {
                tracing::warn!(
                    retry_ms = backoff.as_millis() as u64,
                    "cannot subscribe to Redis: no answer"
                )
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn notifications_cross_the_wire_unchanged() {
        let message = Message {
            id: "m1".into(),
            sender: "coder".into(),
            recipient: "agent-2".into(),
            content: "hi \"there\" ✓".into(),
            meta: vec![("redacted".into(), "email".into())],
            sent_at_ms: 0,
        };
        let notification = message.to_notification("agent-message");
        let wire = serde_json::to_string(&notification).unwrap();
        let back: ServerJsonRpcMessage = serde_json::from_str(&wire).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), wire);
    }

    #[test]
    fn frames_round_trip() {
        let ack = Frame::Ack {
            id: 7,
            outcome: Outcome::Full { waiting: 3 },
        };
        let wire = serde_json::to_string(&ack).unwrap();
        assert_eq!(
            wire,
            r#"{"frame":"ack","id":7,"outcome":{"full":{"waiting":3}}}"#
        );
        assert!(matches!(
            serde_json::from_str(&wire).unwrap(),
            Frame::Ack {
                id: 7,
                outcome: Outcome::Full { waiting: 3 }
            }
        ));
    }
}
