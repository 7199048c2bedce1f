//! One loaded chain generation and what it does to a message: filters in
//! order, each seeing the previous rewrite, the first reject stops, a failing
//! filter gets its `on_error` policy. Also the probe every new chain must pass
//! before it may serve, and the per-filter fault counters shown on `/health`.

use std::{collections::BTreeMap, sync::Mutex, time::Instant};

use crate::{
    filter::Decision,
    message::{self, MetaSetter, SENDER_ID_META},
    metrics::{FaultLabels, FilterLabels, FilterMetrics, FilterVerdictLabels},
};

use super::{
    clip,
    config::{FilterSpec, OnError},
    instance::{Fault, FilterRuntime, Message, Rewrite, Verdict},
};

/// Longest reject reason passed on to the sender, in bytes.
const MAX_REASON_BYTES: usize = 1024;

pub struct LoadedFilter {
    pub spec: FilterSpec,
    /// Content hash of the component, to tell an unchanged chain from a new one.
    pub hash: [u8; 32],
    pub runtime: FilterRuntime,
}

pub struct Chain {
    pub generation: u64,
    pub filters: Vec<LoadedFilter>,
    /// Largest content a rewrite may produce: the server's message limit.
    pub max_content_bytes: usize,
}

/// What runs of the chain were seen doing since the server started (across
/// reloads): faults per filter name for `/health`, and the metrics.
#[derive(Default)]
pub struct Observed {
    faults: Mutex<BTreeMap<String, u64>>,
    metrics: FilterMetrics,
}

impl Observed {
    pub fn new(metrics: FilterMetrics) -> Self {
        Self {
            faults: Mutex::default(),
            metrics,
        }
    }

    pub fn metrics(&self) -> &FilterMetrics {
        &self.metrics
    }

    fn call(&self, filter: &str, started: Instant, verdict: &'static str) {
        let filter = filter.to_owned();
        let seconds = started.elapsed().as_secs_f64();
        let labels = FilterLabels {
            filter: filter.clone(),
        };
        self.metrics.seconds.get_or_create(&labels).observe(seconds);
        self.metrics
            .seconds_total
            .get_or_create(&labels)
            .inc_by(seconds);
        self.metrics
            .verdicts
            .get_or_create(&FilterVerdictLabels { filter, verdict })
            .inc();
    }

    fn fault(&self, filter: &str, fault: &Fault) {
        let mut counts = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(filter.to_owned()).or_default() += 1;
        self.metrics
            .faults
            .get_or_create(&FaultLabels {
                filter: filter.to_owned(),
                kind: fault.kind(),
            })
            .inc();
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A filter that failed the probe a new chain must pass.
#[derive(Debug)]
pub struct ProbeError {
    pub filter: String,
    pub fault: Fault,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let filter = &self.filter;
        match &self.fault {
            // The filter said what is wrong: no trap, no probe to talk about.
            Fault::Config(reason) => write!(
                f,
                "filter {filter:?} refused its config: {reason}; fix its [filter.config] in chain.toml"
            ),
            fault => write!(
                f,
                "filter {filter:?} failed on a probe message ({fault}); fix the filter or its config in chain.toml"
            ),
        }
    }
}

impl std::error::Error for ProbeError {}

impl Chain {
    pub fn names(&self) -> Vec<String> {
        self.filters.iter().map(|f| f.spec.name.clone()).collect()
    }

    /// Runs `message` through every filter, in order.
    pub async fn run(&self, message: message::Message, observed: &Observed) -> Decision {
        let mut current = Message {
            id: message.id,
            sender: message.sender,
            recipient: message.recipient,
            content: message.content,
            meta: message.meta,
            sent_at: message.sent_at_ms,
        };
        let mut rewritten_by = Vec::new();
        for filter in &self.filters {
            let name = &filter.spec.name;
            let started = Instant::now();
            let outcome = filter
                .runtime
                .call(&current)
                .await
                .and_then(|verdict| self.apply(&mut current, verdict));
            let verdict = match &outcome {
                Ok(Applied::Unchanged) => "accept",
                Ok(Applied::Changed) => "rewrite",
                Ok(Applied::Rejected(_) | Applied::TooLarge(_)) => "reject",
                Err(_) => "fault",
            };
            observed.call(name, started, verdict);
            match outcome {
                Ok(Applied::Unchanged) => {}
                Ok(Applied::Changed) => rewritten_by.push(name.clone()),
                Ok(Applied::Rejected(reason) | Applied::TooLarge(reason)) => {
                    return Decision::Reject {
                        filter: name.clone(),
                        reason,
                    };
                }
                Err(fault) => {
                    observed.fault(name, &fault);
                    tracing::error!(
                        plugin = %name,
                        message = %current.id,
                        on_error = ?filter.spec.on_error,
                        "filter failed: {fault}"
                    );
                    if filter.spec.on_error == OnError::Reject {
                        return Decision::Reject {
                            filter: name.clone(),
                            reason: format!("filter failed: {fault}"),
                        };
                    }
                }
            }
        }
        Decision::Deliver {
            message: message::Message {
                id: current.id,
                sender: current.sender,
                recipient: current.recipient,
                content: current.content,
                meta: current.meta,
                sent_at_ms: current.sent_at,
            },
            rewritten_by,
        }
    }

    /// Every filter must answer an ordinary message without failing; this
    /// also makes each guest parse its config and leaves a warm instance.
    pub async fn probe(&self) -> Result<(), ProbeError> {
        let probe = Message {
            id: "probe".into(),
            sender: "switchboard-probe".into(),
            recipient: "switchboard-probe".into(),
            content: "Probe message: the server checks that this filter loads and answers.".into(),
            meta: Vec::new(),
            sent_at: super::now_ms(),
        };
        for filter in &self.filters {
            let mut message = probe.clone();
            filter
                .runtime
                .call(&message)
                .await
                .and_then(|verdict| self.apply(&mut message, verdict))
                .map_err(|fault| ProbeError {
                    filter: filter.spec.name.clone(),
                    fault,
                })?;
        }
        Ok(())
    }

    /// Applies a verdict to `message`, refusing rewrites the server would not
    /// deliver: content over the message limit or empty, meta the recipient
    /// would drop or that claims the server's own keys.
    fn apply(&self, message: &mut Message, verdict: Verdict) -> Result<Applied, Fault> {
        let Rewrite { content, meta } = match verdict {
            Verdict::Accept => return Ok(Applied::Unchanged),
            Verdict::Reject(reason) => {
                let reason = clip(reason.trim(), MAX_REASON_BYTES);
                let reason = if reason.is_empty() {
                    "no reason given"
                } else {
                    reason
                };
                return Ok(Applied::Rejected(reason.to_owned()));
            }
            Verdict::Rewrite(rewrite) => rewrite,
        };
        if let Some(content) = &content {
            if content.is_empty() {
                return Err(Fault::Verdict("rewrote the content to nothing".into()));
            }
            if content.len() > self.max_content_bytes {
                // The filter did its job; the message grew too long to deliver.
                return Ok(Applied::TooLarge(format!(
                    "its rewrite made the message {} bytes, over the limit of {} bytes; send a shorter message",
                    content.len(),
                    self.max_content_bytes
                )));
            }
        }
        let meta = match meta {
            Some(meta) => Some(keep_host_meta(&message.meta, meta)?),
            None => None,
        };
        let mut changed = false;
        if let Some(content) = content.filter(|c| *c != message.content) {
            message.content = content;
            changed = true;
        }
        if let Some(meta) = meta.filter(|m| *m != message.meta) {
            message.meta = meta;
            changed = true;
        }
        Ok(if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
        })
    }
}

enum Applied {
    Unchanged,
    Changed,
    Rejected(String),
    /// A rewrite past the message limit: not delivered, not a fault either.
    TooLarge(String),
}

/// A filter's new meta, checked, with the host's own entries as the host set
/// them: filters echo back the meta they were given, `sender_id` included,
/// and may not change it.
fn keep_host_meta(
    old: &[(String, String)],
    new: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, Fault> {
    let mut meta: Vec<(String, String)> = new
        .into_iter()
        .filter(|(key, _)| key != SENDER_ID_META)
        .collect();
    check_meta(&meta)?;
    meta.extend(old.iter().filter(|(key, _)| key == SENDER_ID_META).cloned());
    Ok(meta)
}

fn check_meta(meta: &[(String, String)]) -> Result<(), Fault> {
    MetaSetter::Filter
        .check(meta)
        .map_err(|error| Fault::Verdict(error.to_string()))
}
