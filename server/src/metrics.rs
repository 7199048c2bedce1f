//! Prometheus metrics: the counters and histograms the bus and the chain
//! update as messages pass, and the gauges `/metrics` reads at scrape time
//! (agents, sessions, queues, chain generation, Redis). Rendered in the
//! OpenMetrics text format, or in the classic Prometheus text format for
//! clients that do not ask for OpenMetrics (`promtool check metrics`, curl);
//! nothing here listens on its own port.

use std::{collections::HashSet, sync::atomic::AtomicU64};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// `agent-message` or `webhook`.
    pub kind: &'static str,
    /// What became of the message (see [`crate::bus`]).
    pub outcome: &'static str,
    /// The rejecting filter, for `outcome="rejected"`; empty otherwise.
    pub filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FilterVerdictLabels {
    pub filter: String,
    /// `accept`, `rewrite`, `reject` or `fault`.
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FilterLabels {
    pub filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabels {
    pub filter: String,
    /// `timeout`, `fuel`, `memory`, `store`, `trap`, `verdict` or `config`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Filter calls take microseconds to (at their deadline) seconds.
fn filter_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

/// What the filter chain reports. Cloning shares the counters, so the chain
/// can hold its own handle while the server's registry exports them.
#[derive(Clone)]
pub struct FilterMetrics {
    pub verdicts: Family<FilterVerdictLabels, Counter>,
    pub seconds: HistogramFamily<FilterLabels>,
    /// The histogram's sum again, in a form the dashboard can read (not
    /// exported: `filter_seconds_sum` is the same figure).
    pub seconds_total: Family<FilterLabels, Counter<f64, AtomicU64>>,
    pub faults: Family<FaultLabels, Counter>,
    /// Reloads by outcome: `loaded`, `unchanged` or `refused`.
    pub reloads: Family<OutcomeLabels, Counter>,
}

/// One filter's calls since start, as the dashboard shows them.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct FilterSummary {
    pub name: String,
    pub accept: u64,
    pub rewrite: u64,
    pub reject: u64,
    pub fault: u64,
    /// Mean time per call, when there was one.
    pub mean_micros: Option<f64>,
}

impl FilterMetrics {
    pub fn summary(&self, filter: &str) -> FilterSummary {
        let count = |verdict| {
            self.verdicts
                .get(&FilterVerdictLabels {
                    filter: filter.to_owned(),
                    verdict,
                })
                .map_or(0, |c| c.get())
        };
        let (accept, rewrite, reject, fault) = (
            count("accept"),
            count("rewrite"),
            count("reject"),
            count("fault"),
        );
        let seconds = self
            .seconds_total
            .get(&FilterLabels {
                filter: filter.to_owned(),
            })
            .map_or(0.0, |c| c.get());
        let calls = accept + rewrite + reject + fault;
        FilterSummary {
            name: filter.to_owned(),
            accept,
            rewrite,
            reject,
            fault,
            mean_micros: (calls > 0).then(|| seconds * 1e6 / calls as f64),
        }
    }
}

impl Default for FilterMetrics {
    fn default() -> Self {
        Self {
            verdicts: Family::default(),
            seconds: Family::new_with_constructor(filter_histogram),
            seconds_total: Family::default(),
            faults: Family::default(),
            reloads: Family::default(),
        }
    }
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub messages: Family<MessageLabels, Counter>,
    /// From a message's arrival at the bus to its hand-over to the
    /// recipient's stream (or, across replicas, the owner's confirmation).
    pub delivery_seconds: Histogram,
    pub filters: FilterMetrics,
    /// Messages for another replica that were not delivered, by reason.
    pub route_errors: Family<OutcomeLabels, Counter>,
    /// Audit lines lost because the writer could not keep up or failed.
    pub audit_dropped: Counter,
    pub agents: Gauge,
    pub sessions: Gauge,
    pub queued: Gauge,
    pub queue_max: Gauge,
    pub resume_window_bytes: Gauge,
    pub chain_generation: Gauge,
    pub chain_filters: Gauge,
    pub chain_refused: Gauge,
    /// Present in cluster mode only.
    pub redis_up: Option<Gauge>,
}

impl Metrics {
    /// `clustered` adds the Redis gauge, which means nothing for one process.
    pub fn new(clustered: bool) -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let this = Self {
            messages: Family::default(),
            delivery_seconds: Histogram::new(exponential_buckets(0.000_05, 4.0, 10)),
            filters: FilterMetrics::default(),
            route_errors: Family::default(),
            audit_dropped: Counter::default(),
            agents: Gauge::default(),
            sessions: Gauge::default(),
            queued: Gauge::default(),
            queue_max: Gauge::default(),
            resume_window_bytes: Gauge::default(),
            chain_generation: Gauge::default(),
            chain_filters: Gauge::default(),
            chain_refused: Gauge::default(),
            redis_up: clustered.then(Gauge::default),
            registry: Registry::default(),
        };
        registry.register(
            "messages",
            "Messages sent, by kind, outcome and (for rejections) the rejecting filter",
            this.messages.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time from a send to the hand-over to the recipient's stream, for delivered messages",
            this.delivery_seconds.clone(),
        );
        registry.register(
            "filter_verdicts",
            "Filter calls by filter and verdict (accept, rewrite, reject, fault)",
            this.filters.verdicts.clone(),
        );
        registry.register(
            "filter_seconds",
            "Time one filter call took, by filter",
            this.filters.seconds.clone(),
        );
        registry.register(
            "filter_faults",
            "Filter failures by filter and kind (timeout, fuel, memory, store, trap, verdict, config)",
            this.filters.faults.clone(),
        );
        registry.register(
            "chain_reloads",
            "Chain reloads by outcome (loaded, unchanged, refused)",
            this.filters.reloads.clone(),
        );
        registry.register(
            "chain_generation",
            "Generation of the active filter chain",
            this.chain_generation.clone(),
        );
        registry.register(
            "chain_filters",
            "Filters in the active chain",
            this.chain_filters.clone(),
        );
        registry.register(
            "chain_reload_refused",
            "1 while the last reload of the chain file was refused (the previous chain serves)",
            this.chain_refused.clone(),
        );
        registry.register(
            "cluster_route_errors",
            "Messages for agents on other replicas that were not delivered, by reason",
            this.route_errors.clone(),
        );
        registry.register(
            "audit_dropped_lines",
            "Audit log lines dropped because the writer fell behind or failed",
            this.audit_dropped.clone(),
        );
        registry.register(
            "agents",
            "Agents with an open event stream on this replica",
            this.agents.clone(),
        );
        registry.register(
            "sessions",
            "MCP sessions held by this replica",
            this.sessions.clone(),
        );
        registry.register(
            "queued_messages",
            "Messages waiting in agents' queues on this replica",
            this.queued.clone(),
        );
        registry.register(
            "queue_depth_max",
            "Messages waiting in the fullest agent queue on this replica",
            this.queue_max.clone(),
        );
        registry.register(
            "resume_window_bytes",
            "Bytes of delivered messages this replica keeps for Last-Event-ID resumes",
            this.resume_window_bytes.clone(),
        );
        if let Some(redis_up) = &this.redis_up {
            registry.register(
                "redis_up",
                "1 when Redis answered the last scrape's ping within its timeout",
                redis_up.clone(),
            );
        }
        Self { registry, ..this }
    }

    /// The OpenMetrics text of every metric, as they stand.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The same in the classic Prometheus text format.
    pub fn render_classic(&self) -> String {
        to_classic(&self.render())
    }
}

/// OpenMetrics names a counter's family without `_total` and ends with
/// `# EOF`; the classic format names the family as its sample and has no
/// end marker. Everything else in our output reads the same in both.
fn to_classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match described {
            Some(renamed) => out.push_str(&renamed),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_prefix_help_and_labels() {
        let metrics = Metrics::new(true);
        metrics
            .messages
            .get_or_create(&MessageLabels {
                kind: "webhook",
                outcome: "rejected",
                filter: "redact".into(),
            })
            .inc();
        metrics
            .filters
            .seconds
            .get_or_create(&FilterLabels {
                filter: "redact".into(),
            })
            .observe(0.002);
        let text = metrics.render();
        assert!(
            text.contains(
                r#"switchboard_messages_total{kind="webhook",outcome="rejected",filter="redact"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE switchboard_redis_up gauge"), "{text}");
        assert!(
            text.contains(r#"switchboard_filter_seconds_count{filter="redact"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(!Metrics::new(false).render().contains("redis_up"));
        let classic = metrics.render_classic();
        assert!(
            classic.contains("# TYPE switchboard_messages_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP switchboard_messages_total Messages sent"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE switchboard_agents gauge\n"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
