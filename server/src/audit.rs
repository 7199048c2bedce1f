//! The audit log (`--audit FILE`): one JSON line per verdict of the filter
//! chain and per answered permission request, appended to the file. Delivery never waits for it: entries go
//! through a bounded queue to a writer task, and an entry that finds the
//! queue full, or that the file refuses, is counted as dropped instead.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use chrono::{DateTime, SecondsFormat, Utc};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, oneshot},
};

use crate::permissions::Decision;

/// Entries that may wait for the writer before new ones are dropped.
const QUEUE: usize = 8192;

#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit log {path}: {source}; check --audit")]
pub struct OpenError {
    path: PathBuf,
    source: std::io::Error,
}

/// One verdict, as the bus saw it.
pub struct Entry {
    pub at: SystemTime,
    pub id: String,
    pub from: String,
    pub to: String,
    pub kind: &'static str,
    /// The filter that rejected the message, if one did.
    pub rejected: Option<(String, String)>,
    pub rewritten_by: Vec<String>,
    /// What became of the message (the metrics' `outcome`).
    pub outcome: &'static str,
    /// The content the filters were given.
    pub content: String,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    event: &'a str,
    id: &'a str,
    from: &'a str,
    to: &'a str,
    kind: &'a str,
    verdict: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    rewritten_by: &'a [String],
    outcome: &'a str,
    content_bytes: usize,
    content_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

enum Job {
    Write(Entry),
    /// A line rendered already (nothing to hash).
    Line(String),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

pub struct Audit {
    jobs: mpsc::Sender<Job>,
    dropped: Counter,
}

impl Audit {
    /// Opens `path` for appending (created readable by its owner only: it
    /// may hold message content) and starts the writer. `dropped` counts
    /// the lines lost.
    pub fn open(path: &Path, with_content: bool, dropped: Counter) -> Result<Self, OpenError> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write(
            tokio::fs::File::from_std(file),
            path.to_owned(),
            queue,
            with_content,
            dropped.clone(),
        ));
        Ok(Self { jobs, dropped })
    }

    /// Queues `entry`, or counts it as dropped when the writer is behind.
    pub fn record(&self, entry: Entry) {
        if self.jobs.try_send(Job::Write(entry)).is_err() {
            self.dropped.inc();
        }
    }

    /// Records an operator's answer to a permission request; `by` is the
    /// answering token's name, when auth is on.
    pub fn record_permission(&self, decision: &Decision, by: Option<&str>) {
        let pending = &decision.pending;
        let line = serde_json::json!({
            "time": now(),
            "event": "permission",
            "id": pending.id,
            "request_id": pending.request_id,
            "agent": pending.agent,
            "tool_name": pending.tool_name,
            "behavior": decision.behavior,
            "by": by,
        });
        if self.jobs.try_send(Job::Line(format!("{line}\n"))).is_err() {
            self.dropped.inc();
        }
    }

    /// Waits until every entry recorded so far is written (at shutdown).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

fn now() -> String {
    DateTime::<Utc>::from(SystemTime::now()).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn render(entry: &Entry, with_content: bool) -> String {
    let (filter, reason) = match &entry.rejected {
        Some((filter, reason)) => (Some(filter.as_str()), Some(reason.as_str())),
        None => (None, None),
    };
    let line = Line {
        time: DateTime::<Utc>::from(entry.at).to_rfc3339_opts(SecondsFormat::Millis, true),
        event: "message",
        id: &entry.id,
        from: &entry.from,
        to: &entry.to,
        kind: entry.kind,
        verdict: if entry.rejected.is_some() {
            "reject"
        } else {
            "deliver"
        },
        filter,
        reason,
        rewritten_by: &entry.rewritten_by,
        outcome: entry.outcome,
        content_bytes: entry.content.len(),
        content_sha256: Sha256::digest(entry.content.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        content: with_content.then_some(entry.content.as_str()),
    };
    // Strings and numbers only: serializing cannot fail.
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes whatever is queued in one append, so lines never interleave
/// with another writer's and a batch costs one system call.
async fn write(
    mut file: tokio::fs::File,
    path: PathBuf,
    mut queue: mpsc::Receiver<Job>,
    with_content: bool,
    dropped: Counter,
) {
    let mut failing = false;
    while let Some(first) = queue.recv().await {
        let mut batch = String::new();
        let mut lines = 0u64;
        let mut flushed = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Write(entry) => {
                    batch.push_str(&render(&entry, with_content));
                    lines += 1;
                }
                Job::Line(line) => {
                    batch.push_str(&line);
                    lines += 1;
                }
                Job::Flush(done) => flushed.push(done),
            }
            next = queue.try_recv().ok();
        }
        if lines > 0 {
            let written = async {
                file.write_all(batch.as_bytes()).await?;
                file.flush().await
            }
            .await;
            match written {
                Ok(()) if failing => {
                    tracing::info!(file = %path.display(), "audit log writable again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) => {
                    dropped.inc_by(lines);
                    if !failing {
                        tracing::error!(file = %path.display(), %error, "cannot write the audit log; lines are dropped and counted until it works again");
                    }
                    failing = true;
                }
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rejected: Option<(String, String)>) -> Entry {
        Entry {
            at: SystemTime::UNIX_EPOCH,
            id: "m-1".into(),
            from: "coder".into(),
            to: "reviewer".into(),
            kind: "agent-message",
            rejected,
            rewritten_by: vec!["redact".into()],
            outcome: "delivered",
            content: "abc".into(),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_the_content_only_when_asked() {
        let line = render(&entry(None), false);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["verdict"], "deliver");
        assert_eq!(value["event"], "message");
        assert_eq!(value["content_bytes"], 3);
        assert_eq!(
            value["content_sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(value.get("content").is_none() && value.get("filter").is_none());
        let rejected = render(&entry(Some(("trap".into(), "no".into()))), true);
        let value: serde_json::Value = serde_json::from_str(&rejected).unwrap();
        assert_eq!(value["verdict"], "reject");
        assert_eq!(value["filter"], "trap");
        assert_eq!(value["reason"], "no");
        assert_eq!(value["content"], "abc");
    }
}
