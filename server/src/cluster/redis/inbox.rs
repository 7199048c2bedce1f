//! Inboxes in Redis, so an agent that left replica r1 and comes back on r2
//! gets its mail, and mail outlives the replica that queued it. Per agent
//! (lower-cased name): a list of messages (`at_ms|notification`) and a hash
//! (`name`, `since`, `bytes`), both expiring `--inbox-ttl` after the last
//! change; a set of the names that are away; a counter of messages dropped
//! unread. Caps and per-message expiry are checked in the scripts, so two
//! replicas queueing at once cannot overfill an inbox.
//!
//! Mail is taken in two steps: read, written to this replica's journal,
//! then trimmed from Redis; a replica that dies in between leaves it in
//! Redis, or has it in its journal and queues it again when it restarts.

use std::sync::Arc;

use redis::{Script, aio::ConnectionManager};
use rmcp::model::ServerJsonRpcMessage;
use tokio::sync::{mpsc, oneshot};

use super::call;
use crate::delivery::{
    inbox::{Away, InboxError, InboxLimits, Mail, Queued, now_ms},
    journal::{Journal, Record},
};

const PREFIX: &str = "switchboard:";

fn list_key(name: &str) -> String {
    format!("{PREFIX}inbox:{}", name.to_ascii_lowercase())
}

fn meta_key(name: &str) -> String {
    format!("{PREFIX}away:{}", name.to_ascii_lowercase())
}

fn away_set() -> String {
    format!("{PREFIX}away")
}

fn expired_key() -> String {
    format!("{PREFIX}inbox-expired")
}

/// KEYS: list, meta, away set. ARGV: name, now, ttl ms, messages...
const AWAY: &str = r"
redis.call('HSET', KEYS[2], 'name', ARGV[1], 'since', ARGV[2])
redis.call('HSETNX', KEYS[2], 'bytes', 0)
for i = 4, #ARGV do
  local sep = string.find(ARGV[i], '|', 1, true)
  redis.call('RPUSH', KEYS[1], ARGV[i])
  redis.call('HINCRBY', KEYS[2], 'bytes', #ARGV[i] - sep)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('SADD', KEYS[3], string.lower(ARGV[1]))
return 1
";

/// Drops expired messages, checks the caps, appends. KEYS: list, meta,
/// expired counter. ARGV: message, now, ttl ms, max messages, max bytes.
/// Returns {waiting} or {-1} (no inbox), {-2, waiting}, {-3}.
const QUEUE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local sep = string.find(head, '|', 1, true)
  if now - tonumber(string.sub(head, 1, sep - 1)) < ttl then break end
  redis.call('LPOP', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'bytes', sep - #head)
  redis.call('INCR', KEYS[3])
end
local waiting = redis.call('LLEN', KEYS[1])
if waiting >= tonumber(ARGV[4]) then return {-2, waiting} end
local sep = string.find(ARGV[1], '|', 1, true)
local size = #ARGV[1] - sep
if tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0') + size > tonumber(ARGV[5]) then
  return {-3}
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], 'bytes', size)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {waiting + 1}
";

/// Trims the first ARGV[1] messages, which the caller has in its journal;
/// an inbox left empty is gone. KEYS: list, meta, away set. ARGV: count,
/// lower-cased name. Returns how many messages are left.
const TRIM: &str = r"
local taken = tonumber(ARGV[1])
local bytes = 0
if taken > 0 then
  for _, message in ipairs(redis.call('LRANGE', KEYS[1], 0, taken - 1)) do
    bytes = bytes + #message - string.find(message, '|', 1, true)
  end
end
redis.call('LTRIM', KEYS[1], taken, -1)
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[2])
else
  redis.call('HINCRBY', KEYS[2], 'bytes', -bytes)
end
return left
";

/// KEYS: list, meta, away set, expired counter. ARGV: lower-cased name.
const GONE: &str = r"
local dropped = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
if dropped > 0 then redis.call('INCRBY', KEYS[4], dropped) end
return dropped
";

/// Flat (name, waiting) pairs; forgets names whose inbox expired.
/// KEYS: away set. ARGV: meta key prefix, list key prefix.
const LIST: &str = r"
local out = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local name = redis.call('HGET', ARGV[1] .. member, 'name')
  if not name then
    redis.call('SREM', KEYS[1], member)
  else
    table.insert(out, name)
    table.insert(out, tostring(redis.call('LLEN', ARGV[2] .. member)))
  end
end
return out
";

/// Changes nobody waits for, applied in order by one task.
enum Change {
    Away {
        name: String,
        unsent: Vec<Queued>,
    },
    Gone {
        name: String,
    },
    /// Answered once everything before it is applied.
    Barrier(oneshot::Sender<()>),
}

pub struct RedisMail {
    conn: ConnectionManager,
    limits: InboxLimits,
    journal: Arc<Journal>,
    changes: mpsc::UnboundedSender<Change>,
    queue: Script,
    trim: Script,
    list: Script,
}

fn wire(message: &ServerJsonRpcMessage) -> String {
    // Our notifications are plain JSON: serializing cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

impl RedisMail {
    pub fn new(conn: ConnectionManager, limits: InboxLimits, journal: Arc<Journal>) -> Arc<Self> {
        let (changes, receiver) = mpsc::unbounded_channel();
        let mail = Arc::new(Self {
            conn: conn.clone(),
            limits,
            journal: journal.clone(),
            changes,
            queue: Script::new(QUEUE),
            trim: Script::new(TRIM),
            list: Script::new(LIST),
        });
        tokio::spawn(apply_changes(conn, limits, journal, receiver));
        mail
    }

    /// Waits until the changes handed over so far are in Redis.
    async fn settled(&self) {
        let (done, applied) = oneshot::channel();
        if self.changes.send(Change::Barrier(done)).is_ok() {
            let _ = applied.await;
        }
    }

    async fn listing(&self) -> Result<Vec<Away>, InboxError> {
        let mut invocation = self.list.key(away_set());
        invocation
            .arg(format!("{PREFIX}away:"))
            .arg(format!("{PREFIX}inbox:"));
        let flat: Vec<String> = call(
            "list agents that are away",
            invocation.invoke_async(&mut self.conn.clone()),
        )
        .await?;
        let mut away: Vec<Away> = flat
            .chunks_exact(2)
            .map(|pair| Away {
                name: pair[0].clone(),
                waiting: pair[1].parse().unwrap_or(0),
            })
            .collect();
        away.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(away)
    }
}

/// Applies `went_away` and `gone` in the order they happened. A change that
/// fails is retried a few times; after that its messages stay in this
/// replica's journal and come back at its next start.
async fn apply_changes(
    conn: ConnectionManager,
    limits: InboxLimits,
    journal: Arc<Journal>,
    mut changes: mpsc::UnboundedReceiver<Change>,
) {
    let away = Script::new(AWAY);
    let gone = Script::new(GONE);
    while let Some(change) = changes.recv().await {
        match change {
            Change::Barrier(done) => {
                let _ = done.send(());
            }
            Change::Away { name, unsent } => {
                let mut invocation = away.key(list_key(&name));
                invocation
                    .key(meta_key(&name))
                    .key(away_set())
                    .arg(&name)
                    .arg(now_ms())
                    .arg(limits.ttl.as_millis() as u64);
                for queued in &unsent {
                    invocation.arg(format!("{}|{}", queued.at_ms, queued.json));
                }
                let mut result = Ok(0);
                for attempt in 0..3u32 {
                    result = call(
                        "keep an inbox",
                        invocation.invoke_async::<i64>(&mut conn.clone()),
                    )
                    .await;
                    if result.is_ok() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                match result {
                    // In Redis now: this replica's copies can go.
                    Ok(_) => unsent.iter().for_each(|q| journal.remove(q.row)),
                    Err(error) => {
                        tracing::error!(%error, agent = %name, unsent = unsent.len(), "could not keep the inbox in Redis; its messages wait in this replica's journal until it restarts")
                    }
                }
            }
            Change::Gone { name } => {
                let mut invocation = gone.key(list_key(&name));
                invocation
                    .key(meta_key(&name))
                    .key(away_set())
                    .key(expired_key())
                    .arg(name.to_ascii_lowercase());
                if let Err(error) = call(
                    "drop an inbox",
                    invocation.invoke_async::<i64>(&mut conn.clone()),
                )
                .await
                {
                    // It expires on its own.
                    tracing::warn!(%error, agent = %name, "could not drop the inbox in Redis");
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Mail for RedisMail {
    fn went_away(&self, name: &str, unsent: Vec<Queued>) {
        let _ = self.changes.send(Change::Away {
            name: name.to_owned(),
            unsent,
        });
    }

    async fn queue(
        &self,
        name: &str,
        message: Arc<ServerJsonRpcMessage>,
    ) -> Result<usize, InboxError> {
        self.settled().await;
        let mut invocation = self.queue.key(list_key(name));
        invocation
            .key(meta_key(name))
            .key(expired_key())
            .arg(format!("{}|{}", now_ms(), wire(&message)))
            .arg(now_ms())
            .arg(self.limits.ttl.as_millis() as u64)
            .arg(self.limits.max_messages)
            .arg(self.limits.max_bytes);
        let answer: Vec<i64> = call(
            "queue a message",
            invocation.invoke_async(&mut self.conn.clone()),
        )
        .await?;
        match answer.as_slice() {
            [-1] => Err(InboxError::NoInbox(name.to_owned())),
            [-2, waiting] => Err(InboxError::TooManyMessages {
                to: name.to_owned(),
                waiting: *waiting as usize,
            }),
            [-3] => Err(InboxError::TooManyBytes {
                to: name.to_owned(),
                limit: self.limits.max_bytes,
            }),
            [waiting, ..] => Ok(*waiting as usize),
            [] => Err(InboxError::NoInbox(name.to_owned())),
        }
    }

    async fn take(&self, name: &str) -> Vec<Queued> {
        self.settled().await;
        let ttl = self.limits.ttl.as_millis() as u64;
        let mut mail = Vec::new();
        loop {
            let read: Result<Vec<String>, _> = call(
                "read an inbox",
                redis::cmd("LRANGE")
                    .arg(list_key(name))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut self.conn.clone()),
            )
            .await;
            let messages = match read {
                Ok(messages) => messages,
                Err(error) => {
                    // The mail stays in Redis for the agent's next return.
                    tracing::warn!(%error, agent = name, "could not read the inbox");
                    return mail;
                }
            };
            let now = now_ms();
            let mut expired = 0u64;
            let mut written = Vec::new();
            for message in &messages {
                let Some((at, notification)) = message.split_once('|') else {
                    continue;
                };
                let at_ms: u64 = at.parse().unwrap_or(0);
                if serde_json::from_str::<ServerJsonRpcMessage>(notification).is_err() {
                    continue;
                }
                if now.saturating_sub(at_ms) >= ttl {
                    expired += 1;
                    continue;
                }
                let (row, durable) = self.journal.put(&Record {
                    to: name.to_owned(),
                    at_ms,
                    notification: notification.to_owned(),
                });
                written.push(durable);
                mail.push(Queued {
                    row,
                    json: Arc::from(notification),
                    at_ms,
                });
            }
            futures::future::join_all(written).await;
            if expired > 0 {
                let _ = call(
                    "count expired mail",
                    redis::cmd("INCRBY")
                        .arg(expired_key())
                        .arg(expired)
                        .query_async::<i64>(&mut self.conn.clone()),
                )
                .await;
            }
            let mut invocation = self.trim.key(list_key(name));
            invocation
                .key(meta_key(name))
                .key(away_set())
                .arg(messages.len())
                .arg(name.to_ascii_lowercase());
            match call(
                "trim an inbox",
                invocation.invoke_async::<i64>(&mut self.conn.clone()),
            )
            .await
            {
                // Queued meanwhile by another replica: take that too.
                Ok(left) if left > 0 => continue,
                Ok(_) => return mail,
                Err(error) => {
                    // What was read is journaled here and delivered; if
                    // Redis kept it, the agent sees it once more later.
                    tracing::warn!(%error, agent = name, "could not trim the inbox");
                    return mail;
                }
            }
        }
    }

    fn gone(&self, name: &str) {
        let _ = self.changes.send(Change::Gone {
            name: name.to_owned(),
        });
    }

    async fn holds(&self, name: &str) -> Result<Option<String>, InboxError> {
        self.settled().await;
        Ok(call(
            "look up an inbox",
            redis::cmd("HGET")
                .arg(meta_key(name))
                .arg("name")
                .query_async(&mut self.conn.clone()),
        )
        .await?)
    }

    async fn away(&self) -> Vec<Away> {
        self.listing().await.unwrap_or_else(|error| {
            tracing::warn!(%error, "listing nobody as away");
            Vec::new()
        })
    }

    /// Redis expires inboxes itself, and messages as they are read.
    fn expire(&self) {}

    async fn counts(&self) -> (usize, u64) {
        let waiting = self
            .listing()
            .await
            .map(|away| away.iter().map(|a| a.waiting).sum())
            .unwrap_or(0);
        let expired: Option<u64> = call(
            "count expired mail",
            redis::cmd("GET")
                .arg(expired_key())
                .query_async(&mut self.conn.clone()),
        )
        .await
        .unwrap_or(None);
        (waiting, expired.unwrap_or(0))
    }
}
