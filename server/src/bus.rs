//! The bus: the one path every message takes, from the caller's session
//! through the registry and the filter stage to the recipient's outbox.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    activity::{self, Activity, KEPT_CONTENT},
    audit::{Audit, Entry},
    cluster::RouteError,
    delivery::{Delivery, Handed, Recipient, Undelivered, inbox::InboxError},
    filter::{Decision, FilterStage},
    message::{Message, SENDER_ID_META, clip, into_neutralized},
    metrics::{MessageLabels, Metrics, OutcomeLabels},
    registry::{LookupError, Registry},
};

pub const AGENT_MESSAGE_KIND: &str = "agent-message";
/// `kind` of messages dropped in over `POST /v1/messages`. (Not `source`:
/// Claude Code already writes `source` on the tag, and a second one confuses the model.)
pub const WEBHOOK_KIND: &str = "webhook";
/// `kind` of messages a person sends from the dashboard.
pub const OPERATOR_KIND: &str = "operator";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error(
        "this session is not an agent: it becomes one when it opens its event stream (GET /mcp), which Claude Code does on its own once connected"
    )]
    NotAnAgent,
    #[error("the message is empty; write some text to send")]
    Empty,
    #[error("the message is {size} bytes, over the limit of {limit} bytes; shorten it or split it")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error("Rejected by {filter}: {reason}")]
    Rejected { filter: String, reason: String },
    #[error(
        "the recipient {to} has {waiting} unread messages waiting, so this one was not queued; try again once it catches up"
    )]
    QueueFull { to: String, waiting: usize },
    #[error(
        "the recipient {to} went offline before the message could be handed over; it was not delivered"
    )]
    WentOffline { to: String },
    #[error(transparent)]
    Route(RouteError),
    /// The recipient is away and its inbox cannot take this message.
    #[error(transparent)]
    Inbox(InboxError),
}

impl SendError {
    /// A short name for the metrics' `outcome` label.
    fn outcome(&self) -> &'static str {
        match self {
            SendError::NotAnAgent => "not_an_agent",
            SendError::Empty => "empty",
            SendError::TooLarge { .. } => "too_large",
            SendError::Lookup(_) => "no_recipient",
            SendError::Rejected { .. } => "rejected",
            SendError::QueueFull { .. } => "queue_full",
            SendError::WentOffline { .. } => "went_offline",
            SendError::Route(_) => "route_error",
            SendError::Inbox(_) => "inbox_refused",
        }
    }

    /// How long to wait before retrying, when a filter's reason ends with
    /// `retry in N s` (as the rate limiter's do). The HTTP trigger turns
    /// such a refusal into 429 with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        let SendError::Rejected { reason, .. } = self else {
            return None;
        };
        let (_, tail) = reason.rsplit_once("retry in ")?;
        let seconds: f64 = tail
            .trim_end_matches(['.', ' '])
            .strip_suffix('s')?
            .trim()
            .parse()
            .ok()?;
        Duration::try_from_secs_f64(seconds).ok()
    }
}

/// What the sender is told about an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub to: String,
    pub rewritten_by: Vec<String>,
    /// Set when the recipient is away: how many messages wait for it now,
    /// this one included.
    pub queued: Option<usize>,
}

impl Receipt {
    /// The sentence a sender reads.
    pub fn sentence(&self) -> String {
        let mut text = match self.queued {
            None => format!("Delivered to {}", self.to),
            Some(waiting) => queued_sentence(&self.to, waiting),
        };
        if !self.rewritten_by.is_empty() {
            text.push_str(&format!(
                " (content changed by {})",
                self.rewritten_by.join(", ")
            ));
        }
        text
    }
}

/// What a sender reads when its message waits in an inbox.
pub fn queued_sentence(to: &str, waiting: usize) -> String {
    format!("{to} is away; queued, it will be delivered when {to} reconnects ({waiting} waiting)")
}

pub struct Bus {
    registry: Arc<Registry>,
    delivery: Delivery,
    filters: Arc<dyn FilterStage>,
    max_message_bytes: usize,
    next_id: AtomicU64,
    id_prefix: String,
    metrics: Arc<Metrics>,
    audit: Option<Arc<Audit>>,
    activity: Arc<Activity>,
}

/// What the filter stage decided about a message, for the log, the metrics
/// and the audit log.
struct Verdict {
    id: String,
    to: String,
    rewritten_by: Vec<String>,
    /// The content the filters were given, when it is audited.
    content: Option<String>,
    /// What the dashboard may reveal: the content delivered, or refused
    /// (clipped to what it keeps).
    shown: String,
    /// Content bytes as sent.
    bytes: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Bus {
    pub fn new(
        registry: Arc<Registry>,
        delivery: Delivery,
        filters: Arc<dyn FilterStage>,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            registry,
            delivery,
            filters,
            max_message_bytes,
            next_id: AtomicU64::new(1),
            // Ids stay unique across restarts without any persisted counter.
            id_prefix: format!("{:x}", now_ms()),
            metrics: Arc::new(Metrics::default()),
            audit: None,
            activity: Arc::default(),
        }
    }

    /// Records every verdict in `audit`.
    pub fn with_audit(mut self, audit: Option<Arc<Audit>>) -> Self {
        self.audit = audit;
        self
    }

    /// Counts into `metrics` (the server's exported set) instead of a private one.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Recent verdicts and traffic, for the dashboard.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    pub fn audit(&self) -> Option<&Arc<Audit>> {
        self.audit.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn filters(&self) -> &Arc<dyn FilterStage> {
        &self.filters
    }

    /// Sends `content` from the caller's agent to the agent named `to`.
    pub async fn send(
        &self,
        sender_session: &str,
        to: &str,
        content: String,
    ) -> Result<Receipt, SendError> {
        let (sender, sender_id) = self
            .registry
            .sender(sender_session)
            .ok_or(SendError::NotAnAgent)?;
        let recipient = self.registry.recipient(Some(sender_session), to).await;
        let meta = vec![(SENDER_ID_META.to_owned(), sender_id)];
        self.deliver(sender, recipient, content, meta, AGENT_MESSAGE_KIND)
            .await
    }

    /// Sends `content` from an external trigger named `from` (not an agent).
    pub async fn send_from_trigger(
        &self,
        from: &str,
        to: &str,
        content: String,
        meta: Vec<(String, String)>,
    ) -> Result<Receipt, SendError> {
        let recipient = self.registry.recipient(None, to).await;
        let mut meta = meta;
        meta.push((SENDER_ID_META.to_owned(), format!("trigger:{from}")));
        self.deliver(from.to_owned(), recipient, content, meta, WEBHOOK_KIND)
            .await
    }

    /// Sends `content` from a person at the dashboard, named `from` (their
    /// token's name, or `operator` without `--auth`).
    pub async fn send_from_operator(
        &self,
        from: &str,
        to: &str,
        content: String,
    ) -> Result<Receipt, SendError> {
        let recipient = self.registry.recipient(None, to).await;
        let meta = vec![(SENDER_ID_META.to_owned(), format!("operator:{from}"))];
        self.deliver(from.to_owned(), recipient, content, meta, OPERATOR_KIND)
            .await
    }

    async fn deliver(
        &self,
        sender: String,
        recipient: Result<Recipient, LookupError>,
        content: String,
        meta: Vec<(String, String)>,
        kind: &'static str,
    ) -> Result<Receipt, SendError> {
        let started = Instant::now();
        let mut verdict = None;
        let result = self
            .filter_and_hand_over(&sender, recipient, content, meta, kind, &mut verdict)
            .await;
        self.observe(kind, &sender, started, &result, verdict);
        result
    }

    /// Logs and counts what became of a message. Rejections are what an
    /// operator looks for, so they log at info; deliveries at debug.
    fn observe(
        &self,
        kind: &'static str,
        from: &str,
        started: Instant,
        result: &Result<Receipt, SendError>,
        verdict: Option<Verdict>,
    ) {
        let (outcome, filter) = match result {
            Ok(receipt) => {
                self.metrics
                    .delivery_seconds
                    .observe(started.elapsed().as_secs_f64());
                tracing::debug!(
                    id = %receipt.id,
                    from,
                    to = %receipt.to,
                    kind,
                    rewritten_by = ?receipt.rewritten_by,
                    queued = receipt.queued.is_some(),
                    "message delivered"
                );
                let outcome = if receipt.queued.is_some() {
                    "queued"
                } else {
                    "delivered"
                };
                (outcome, String::new())
            }
            Err(SendError::Rejected { filter, reason }) => {
                tracing::info!(
                    id = verdict.as_ref().map(|v| v.id.as_str()),
                    from,
                    to = verdict.as_ref().map(|v| v.to.as_str()),
                    kind,
                    filter = %filter,
                    reason = %reason,
                    "message rejected"
                );
                ("rejected", filter.clone())
            }
            Err(error) => {
                if let SendError::Route(route) = error {
                    let reason = match route {
                        RouteError::ReplicaDown { .. } => "replica_down",
                        RouteError::NoAck { .. } => "no_ack",
                        RouteError::Directory { .. } => "directory",
                        RouteError::Refused(_) => "refused",
                    };
                    self.metrics
                        .route_errors
                        .get_or_create(&OutcomeLabels { outcome: reason })
                        .inc();
                }
                if let Some(verdict) = &verdict {
                    tracing::debug!(
                        id = %verdict.id,
                        from,
                        to = %verdict.to,
                        kind,
                        rewritten_by = ?verdict.rewritten_by,
                        "message accepted by the filters but not delivered: {error}"
                    );
                }
                (error.outcome(), String::new())
            }
        };
        if let Some(verdict) = verdict {
            let rejected = match result {
                Err(SendError::Rejected { filter, reason }) => {
                    Some((filter.clone(), reason.clone()))
                }
                _ => None,
            };
            // The dashboard also says why an accepted message was not delivered.
            let reason = match (&rejected, result) {
                (Some((_, reason)), _) => Some(reason.clone()),
                (None, Err(error)) => Some(error.to_string()),
                (None, Ok(_)) => None,
            };
            self.activity.record(
                activity::Verdict {
                    id: verdict.id.clone(),
                    at_ms: now_ms(),
                    from: from.to_owned(),
                    to: verdict.to.clone(),
                    kind,
                    bytes: verdict.bytes,
                    outcome,
                    filter: rejected.as_ref().map(|(filter, _)| filter.clone()),
                    reason,
                    rewritten_by: verdict.rewritten_by.clone(),
                },
                verdict.shown,
            );
            if let Some(audit) = &self.audit {
                audit.record(Entry {
                    at: SystemTime::now(),
                    id: verdict.id,
                    from: from.to_owned(),
                    to: verdict.to,
                    kind,
                    rejected,
                    rewritten_by: verdict.rewritten_by,
                    outcome,
                    content: verdict.content.unwrap_or_default(),
                });
            }
        }
        self.metrics
            .messages
            .get_or_create(&MessageLabels {
                kind,
                outcome,
                filter,
            })
            .inc();
    }

    async fn filter_and_hand_over(
        &self,
        sender: &str,
        recipient: Result<Recipient, LookupError>,
        content: String,
        meta: Vec<(String, String)>,
        kind: &'static str,
        verdict: &mut Option<Verdict>,
    ) -> Result<Receipt, SendError> {
        if content.is_empty() {
            return Err(SendError::Empty);
        }
        if content.len() > self.max_message_bytes {
            return Err(SendError::TooLarge {
                size: content.len(),
                limit: self.max_message_bytes,
            });
        }
        let recipient = recipient?;
        // Filters see what the recipient will see, and the limit holds for that.
        let content = into_neutralized(content);
        if content.len() > self.max_message_bytes {
            return Err(SendError::TooLarge {
                size: content.len(),
                limit: self.max_message_bytes,
            });
        }
        let id = format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let message = Message {
            id: id.clone(),
            sender: sender.to_owned(),
            recipient: recipient.name().to_owned(),
            content,
            meta,
            sent_at_ms: now_ms(),
        };
        let audited = self.audit.as_ref().map(|_| message.content.clone());
        let bytes = message.content.len();
        // Past the kept size by a whole character at least, so that the
        // activity log can tell it was cut.
        let sent = clip(&message.content, KEPT_CONTENT + 4).to_owned();
        let decision = self.filters.run(message).await;
        *verdict = Some(Verdict {
            content: audited,
            id: id.clone(),
            to: recipient.name().to_owned(),
            rewritten_by: match &decision {
                Decision::Deliver { rewritten_by, .. } => rewritten_by.clone(),
                Decision::Reject { .. } => Vec::new(),
            },
            // Redacted text must not reappear on the dashboard.
            shown: match &decision {
                Decision::Deliver {
                    message,
                    rewritten_by,
                } if !rewritten_by.is_empty() => {
                    clip(&message.content, KEPT_CONTENT + 4).to_owned()
                }
                _ => sent,
            },
            bytes,
        });
        let (message, rewritten_by) = match decision {
            Decision::Deliver {
                message,
                rewritten_by,
            } => (message, rewritten_by),
            Decision::Reject { filter, reason } => {
                return Err(SendError::Rejected { filter, reason });
            }
        };
        if message.content.len() > self.max_message_bytes {
            return Err(SendError::TooLarge {
                size: message.content.len(),
                limit: self.max_message_bytes,
            });
        }
        // A rewrite may have brought controls back; made visible, three
        // bytes each, they may take it past the limit, which is bounded still.
        let message = Message {
            content: into_neutralized(message.content),
            ..message
        };
        let notification = Arc::new(message.to_notification(kind));
        let to = recipient.name().to_owned();
        let receipt = |queued| Receipt {
            id: id.clone(),
            to: to.clone(),
            rewritten_by: rewritten_by.clone(),
            queued,
        };
        match self.delivery.hand_over(&recipient, notification).await {
            Ok(Handed::Streamed) => Ok(receipt(None)),
            Ok(Handed::Queued(waiting)) => Ok(receipt(Some(waiting))),
            Err(Undelivered::QueueFull(waiting)) => Err(SendError::QueueFull { to, waiting }),
            Err(Undelivered::WentOffline) => Err(SendError::WentOffline { to }),
            Err(Undelivered::Route(error)) => Err(SendError::Route(error)),
            Err(Undelivered::Inbox(refusal)) => Err(SendError::Inbox(refusal)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(reason: &str) -> SendError {
        SendError::Rejected {
            filter: "rate-limit".into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn a_reason_that_says_when_to_retry_gives_the_wait() {
        assert_eq!(
            rejected("coder is over its limit of 30 messages/min (burst 10); retry in 2.5 s")
                .retry_after(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            rejected("busy; retry in 0.1 s.").retry_after(),
            Some(Duration::from_millis(100))
        );
        assert_eq!(rejected("instruction override phrase").retry_after(), None);
        assert_eq!(rejected("retry in soon s").retry_after(), None);
        assert_eq!(SendError::Empty.retry_after(), None);
    }
}
