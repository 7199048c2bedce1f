//! What a run reports: the summaries (serialized for `--json`, rendered as
//! text otherwise), latency percentiles, and the verdict that decides the
//! exit code.

use std::{collections::HashMap, fmt};

use serde::Serialize;

use crate::{ledger::Counts, monitor::Usage};

/// Latency distribution in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// Nearest-rank percentiles of microsecond samples; `None` without samples.
pub fn percentiles(mut samples_us: Vec<u64>) -> Option<Percentiles> {
    if samples_us.is_empty() {
        return None;
    }
    samples_us.sort_unstable();
    let n = samples_us.len();
    let rank = |q: f64| {
        let index = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        samples_us[index] as f64 / 1000.0
    };
    let sum: u64 = samples_us.iter().sum();
    Some(Percentiles {
        count: n,
        p50_ms: rank(0.50),
        p90_ms: rank(0.90),
        p99_ms: rank(0.99),
        max_ms: samples_us[n - 1] as f64 / 1000.0,
        mean_ms: sum as f64 / n as f64 / 1000.0,
    })
}

/// One kind of error and how often it came back.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub text: String,
    pub count: u64,
}

/// The most frequent error kinds, most frequent first.
pub fn top(errors: HashMap<String, u64>, keep: usize) -> Vec<ErrorCount> {
    let mut all: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(text, count)| ErrorCount { text, count })
        .collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
    all.truncate(keep);
    all
}

#[derive(Debug, Clone, Serialize)]
pub struct TrafficSummary {
    pub mode: &'static str,
    pub url: String,
    pub agents: u32,
    /// Messages per second across all agents; `null` = flat out.
    pub target_rate: Option<f64>,
    pub seconds: u64,
    pub size_bytes: usize,
    pub counts: Counts,
    /// Time from the first send to the last answer.
    pub send_secs: f64,
    pub accepted_per_sec: f64,
    /// Distinct arrivals per second, from the first send to the last arrival.
    pub delivered_per_sec: f64,
    /// Send (just before the POST) to arrival on the recipient's stream.
    pub latency: Option<Percentiles>,
    /// The `send-message` round trip, as the sender sees it.
    pub call: Option<Percentiles>,
    pub top_rejections: Vec<ErrorCount>,
    pub top_failures: Vec<ErrorCount>,
    pub server: Option<Usage>,
    pub load_tool: Option<Usage>,
    /// With `--churn`: how agents came and went.
    pub churn: Option<ChurnSummary>,
    /// Why the run failed; empty when it passed.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChurnSummary {
    /// Departures per second asked for.
    pub per_sec: f64,
    pub away_ms: u64,
    /// Absences: streams dropped during the run.
    pub left: u64,
    pub returned: u64,
    /// Agents whose stream could not be re-opened (a failed run).
    pub failed_returns: u64,
    /// Messages the server accepted into the inbox of an agent that was away.
    pub queued: u64,
}

/// What makes a traffic run fail: anything accepted and not delivered exactly
/// once to the right agent, or a run that proved nothing.
pub fn problems(counts: &Counts) -> Vec<String> {
    let mut problems = Vec::new();
    if counts.awaiting > 0 {
        problems.push(format!("{} accepted messages were lost", counts.awaiting));
    }
    if counts.duplicated > 0 {
        problems.push(format!(
            "{} messages arrived more than once",
            counts.duplicated
        ));
    }
    if counts.misrouted > 0 {
        problems.push(format!(
            "{} messages reached the wrong agent",
            counts.misrouted
        ));
    }
    if counts.accepted == 0 {
        problems.push("the server accepted no message at all".into());
    }
    problems
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleSummary {
    pub mode: &'static str,
    pub url: String,
    pub requested: u32,
    pub connected: u32,
    pub connect_secs: f64,
    pub held_secs: u64,
    /// The server's own count (`GET /health`) once everyone connected.
    pub online_reported: Option<u64>,
    pub server: Option<IdleServer>,
    pub top_failures: Vec<ErrorCount>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleServer {
    pub rss_before_mib: f64,
    pub rss_connected_mib: f64,
    /// (connected - before) / agents.
    pub per_agent_kib: f64,
    /// Usage while the agents were held.
    pub held: Usage,
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn write_percentiles(
    f: &mut fmt::Formatter<'_>,
    label: &str,
    p: &Option<Percentiles>,
) -> fmt::Result {
    match p {
        Some(p) => writeln!(
            f,
            "  {label:<14} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n = {})",
            p.p50_ms,
            p.p90_ms,
            p.p99_ms,
            p.max_ms,
            thousands(p.count as u64)
        ),
        None => writeln!(f, "  {label:<14} no samples"),
    }
}

fn write_usage(f: &mut fmt::Formatter<'_>, label: &str, usage: &Option<Usage>) -> fmt::Result {
    if let Some(u) = usage {
        writeln!(
            f,
            "  {label:<14} RSS {:.1} MiB at start, {:.1} peak, {:.1} at end (VmHWM {:.1}); CPU {:.0}% of a core",
            u.rss_start_mib, u.rss_peak_mib, u.rss_end_mib, u.hwm_mib, u.cpu_percent
        )?;
    }
    Ok(())
}

fn write_errors(f: &mut fmt::Formatter<'_>, label: &str, errors: &[ErrorCount]) -> fmt::Result {
    if errors.is_empty() {
        return Ok(());
    }
    writeln!(f, "  {label}:")?;
    for e in errors {
        writeln!(f, "    {:>9}  {}", thousands(e.count), e.text)?;
    }
    Ok(())
}

fn write_verdict(f: &mut fmt::Formatter<'_>, problems: &[String]) -> fmt::Result {
    if problems.is_empty() {
        writeln!(f, "  result         OK")
    } else {
        writeln!(f, "  result         FAILED: {}", problems.join("; "))
    }
}

impl fmt::Display for TrafficSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = match self.target_rate {
            Some(rate) => format!("{rate} msg/s target"),
            None => "flat out".into(),
        };
        let c = &self.counts;
        writeln!(
            f,
            "switchboard-load: {} agents, {rate}, {}-byte messages, {} s, {}",
            self.agents, self.size_bytes, self.seconds, self.url
        )?;
        writeln!(
            f,
            "  sent           {}  accepted {}  rejected {}  failed {}",
            thousands(c.sent),
            thousands(c.accepted),
            thousands(c.rejected),
            thousands(c.failed)
        )?;
        writeln!(
            f,
            "  delivered      {}  lost {}  duplicated {}  misrouted {}  (arrived though refused {}, foreign {})",
            thousands(c.delivered),
            thousands(c.awaiting),
            thousands(c.duplicated),
            thousands(c.misrouted),
            thousands(c.unannounced),
            thousands(c.foreign)
        )?;
        writeln!(
            f,
            "  throughput     {:.0} accepted/s over {:.2} s, {:.0} delivered/s",
            self.accepted_per_sec, self.send_secs, self.delivered_per_sec
        )?;
        write_percentiles(f, "send→arrival", &self.latency)?;
        write_percentiles(f, "tool call", &self.call)?;
        write_errors(f, "top rejections", &self.top_rejections)?;
        write_errors(f, "top failures", &self.top_failures)?;
        if let Some(churn) = &self.churn {
            writeln!(
                f,
                "  churn          {} absences ({:.1}/s, up to {} ms), {} back, {} could not come back; {} messages queued for agents away",
                thousands(churn.left),
                churn.per_sec,
                churn.away_ms,
                thousands(churn.returned),
                thousands(churn.failed_returns),
                thousands(churn.queued)
            )?;
        }
        write_usage(f, "server", &self.server)?;
        write_usage(f, "load tool", &self.load_tool)?;
        write_verdict(f, &self.problems)
    }
}

impl fmt::Display for IdleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "switchboard-load: {} idle agents held {} s, {}",
            self.requested, self.held_secs, self.url
        )?;
        writeln!(
            f,
            "  connected      {} in {:.1} s; server reports {} online",
            thousands(self.connected.into()),
            self.connect_secs,
            self.online_reported
                .map_or_else(|| "?".to_owned(), thousands)
        )?;
        if let Some(s) = &self.server {
            writeln!(
                f,
                "  server RSS     {:.1} MiB before, {:.1} MiB connected: {:.1} KiB per idle agent",
                s.rss_before_mib, s.rss_connected_mib, s.per_agent_kib
            )?;
            write_usage(f, "while held", &Some(s.held.clone()))?;
        }
        write_errors(f, "top failures", &self.top_failures)?;
        write_verdict(f, &self.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(|ms| ms * 1000).collect()).unwrap();
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(percentiles(vec![7]).unwrap().p99_ms, 0.007);
        assert!(percentiles(Vec::new()).is_none());
    }

    #[test]
    fn groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn loss_and_duplicates_fail_the_run() {
        let mut counts = Counts {
            accepted: 5,
            ..Counts::default()
        };
        assert!(problems(&counts).is_empty());
        counts.awaiting = 1;
        counts.duplicated = 2;
        assert_eq!(problems(&counts).len(), 2);
    }
}
