//! `switchboard check`: runs a corpus of messages through a filter chain,
//! loaded exactly as the server loads it, and reports what the chain would do
//! (verdicts, per-filter counts, timing, and quality against labels) before
//! the chain goes live.

use std::{
    collections::BTreeMap,
    io::BufRead,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use serde::{Deserialize, Serialize};

use crate::{
    chain::{ChainError, ChainOptions, ChainStage, clock::Clock},
    filter::{Decision, FilterStage},
    message::Message,
};

/// Time between lines without `ts_ms`: far enough apart that rate limits
/// only trip when the corpus gives real timing.
const UNTIMED_STEP_MS: u64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} line {line}: {message}; each line must be {{\"text\": \"…\", \"from\"?, \"to\"?, \"meta\"?, \"label\"?: 0|1, \"ts_ms\"?}}"
    )]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    #[error("the chain cannot load: {0}")]
    Chain(#[from] ChainError),
    #[error(
        "no chain file {given}: looked for {here} and {in_plugins}; pass --chain with an existing file"
    )]
    NoChainFile {
        given: String,
        here: String,
        in_plugins: String,
    },
}

/// Finds `--chain`: as given (relative to the current folder), else relative
/// to the plugins folder, where chain files usually sit.
pub fn resolve_chain(plugins: &Path, chain: Option<&Path>) -> Result<Option<PathBuf>, CheckError> {
    let Some(chain) = chain else { return Ok(None) };
    if chain.is_file() {
        return Ok(Some(chain.to_owned()));
    }
    let in_plugins = plugins.join(chain);
    if chain.is_relative() && in_plugins.is_file() {
        return Ok(Some(in_plugins));
    }
    Err(CheckError::NoChainFile {
        given: chain.display().to_string(),
        here: std::path::absolute(chain)
            .unwrap_or_else(|_| chain.to_owned())
            .display()
            .to_string(),
        in_plugins: in_plugins.display().to_string(),
    })
}

#[derive(Debug, Deserialize)]
struct Line {
    text: String,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    label: Option<u8>,
    /// Which kind of positive this is; see [`Owners`].
    category: Option<String>,
    ts_ms: Option<u64>,
}

/// Which labelled categories each filter is meant to catch: its own name,
/// plus any `--category FILTER=CATEGORY`. When a corpus has categories, a
/// filter's recall counts only its own positives; a redaction filter is not
/// weak for letting an injection pass to the guard behind it.
#[derive(Debug, Default, Clone)]
pub struct Owners(Vec<(String, String)>);

impl Owners {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    fn owns(&self, filter: &str, category: &str) -> bool {
        filter == category || self.0.iter().any(|(f, c)| f == filter && c == category)
    }
}

/// What happened to one line.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub line: usize,
    pub verdict: &'static str,
    /// The rejecting filter, or the filters that rewrote.
    pub filters: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub micros: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub accepted: u64,
    pub rewritten: u64,
    pub rejected: u64,
}

/// Confusion counts of "stopped or changed" against the labels.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Quality {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
    pub recall: Option<f64>,
    pub precision: Option<f64>,
    pub false_positive_rate: Option<f64>,
}

impl Quality {
    fn add(&mut self, label: u8, flagged: bool) {
        match (label == 1, flagged) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_negatives += 1,
            (false, true) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
        }
    }

    fn finish(&mut self) {
        let ratio = |a: u64, b: u64| (a + b > 0).then(|| a as f64 / (a + b) as f64);
        self.recall = ratio(self.true_positives, self.false_negatives);
        self.precision = ratio(self.true_positives, self.false_positives);
        self.false_positive_rate = ratio(self.false_positives, self.true_negatives);
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub messages: usize,
    /// Filter names in chain order.
    pub order: Vec<String>,
    pub chain: Counts,
    /// Per filter: what it did to the messages it decided.
    pub filters: BTreeMap<String, Counts>,
    /// Per filter: traps, timeouts and other failures (its `on_error` applied).
    pub filter_errors: BTreeMap<String, u64>,
    pub p50_micros: u64,
    pub p99_micros: u64,
    /// Present when lines carry labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<BTreeMap<String, Quality>>,
}

pub struct Report {
    pub outcomes: Vec<Outcome>,
    pub summary: Summary,
}

fn read_lines(input: &Path) -> Result<Vec<(usize, Line)>, CheckError> {
    let path = input.display().to_string();
    let file = std::fs::File::open(input).map_err(|source| CheckError::Read {
        path: path.clone(),
        source,
    })?;
    let mut lines = Vec::new();
    for (index, text) in std::io::BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let text = text.map_err(|source| CheckError::Read {
            path: path.clone(),
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| CheckError::Line {
            path: path.clone(),
            line: number,
            message: e.to_string(),
        })?;
        if line.label.is_some_and(|l| l > 1) {
            return Err(CheckError::Line {
                path,
                line: number,
                message: "label must be 0 or 1".into(),
            });
        }
        lines.push((number, line));
    }
    Ok(lines)
}

/// Loads the chain from `plugins` (or `chain_file`) and runs `input` through it.
pub fn run(
    plugins: &Path,
    chain_file: Option<PathBuf>,
    input: &Path,
    max_content_bytes: usize,
    owners: &Owners,
) -> Result<Report, CheckError> {
    let lines = read_lines(input)?;
    let now = Arc::new(AtomicU64::new(Clock::System.now_ms()));
    let stage = ChainStage::open(ChainOptions {
        plugins_dir: plugins.to_owned(),
        chain_file,
        build: true,
        max_content_bytes,
        clock: Clock::Manual(now.clone()),
        metrics: Default::default(),
    })?;
    let names = stage.info().filters;
    let mut outcomes = Vec::with_capacity(lines.len());
    for (number, line) in lines {
        let at = match line.ts_ms {
            Some(ts) => ts,
            None => now.load(Ordering::SeqCst) + UNTIMED_STEP_MS,
        };
        now.store(at, Ordering::SeqCst);
        let message = Message {
            id: format!("line-{number}"),
            sender: line.from.unwrap_or_else(|| "sender".into()),
            recipient: line.to.unwrap_or_else(|| "recipient".into()),
            content: line.text.clone(),
            meta: line.meta.into_iter().collect(),
            sent_at_ms: at,
        };
        let started = Instant::now();
        let decision = stage.run_blocking(message);
        let micros = started.elapsed().as_micros() as u64;
        outcomes.push(match decision {
            Decision::Reject { filter, reason } => Outcome {
                line: number,
                verdict: "reject",
                filters: vec![filter],
                reason: Some(reason),
                rewritten: None,
                label: line.label,
                category: line.category.clone(),
                micros,
            },
            Decision::Deliver {
                message,
                rewritten_by,
            } if !rewritten_by.is_empty() => Outcome {
                line: number,
                verdict: "rewrite",
                filters: rewritten_by,
                reason: None,
                rewritten: (message.content != line.text).then_some(message.content),
                label: line.label,
                category: line.category.clone(),
                micros,
            },
            Decision::Deliver { .. } => Outcome {
                line: number,
                verdict: "accept",
                filters: Vec::new(),
                reason: None,
                rewritten: None,
                label: line.label,
                category: line.category.clone(),
                micros,
            },
        });
    }
    let summary = summarize(&outcomes, &names, stage.info().faults, owners);
    Ok(Report { outcomes, summary })
}

fn summarize(
    outcomes: &[Outcome],
    names: &[String],
    faults: BTreeMap<String, u64>,
    owners: &Owners,
) -> Summary {
    let mut chain = Counts::default();
    let mut filters: BTreeMap<String, Counts> = names
        .iter()
        .map(|n| (n.clone(), Counts::default()))
        .collect();
    let mut quality: BTreeMap<String, Quality> = BTreeMap::new();
    let labelled = outcomes.iter().any(|o| o.label.is_some());
    let categorised = outcomes.iter().any(|o| o.category.is_some());
    for outcome in outcomes {
        match outcome.verdict {
            "reject" => chain.rejected += 1,
            "rewrite" => chain.rewritten += 1,
            _ => chain.accepted += 1,
        }
        // Filters up to the deciding one saw the message; after a reject, none.
        let stop = match outcome.verdict {
            "reject" => names
                .iter()
                .position(|n| Some(n) == outcome.filters.first())
                .map_or(names.len(), |i| i + 1),
            _ => names.len(),
        };
        for name in &names[..stop] {
            let counts = filters.entry(name.clone()).or_default();
            let acted = outcome.filters.contains(name);
            match (outcome.verdict, acted) {
                ("reject", true) => counts.rejected += 1,
                ("rewrite", true) => counts.rewritten += 1,
                _ => counts.accepted += 1,
            }
        }
        if let Some(label) = outcome.label {
            quality
                .entry("chain".into())
                .or_default()
                .add(label, outcome.verdict != "accept");
            for name in names {
                let counts_for_filter = label == 0
                    || !categorised
                    || outcome
                        .category
                        .as_deref()
                        .is_some_and(|c| owners.owns(name, c));
                if counts_for_filter {
                    quality
                        .entry(name.clone())
                        .or_default()
                        .add(label, outcome.filters.contains(name));
                }
            }
        }
    }
    quality.values_mut().for_each(Quality::finish);
    let mut micros: Vec<u64> = outcomes.iter().map(|o| o.micros).collect();
    micros.sort_unstable();
    let percentile = |p: f64| {
        micros
            .get(((micros.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Summary {
        messages: outcomes.len(),
        order: names.to_vec(),
        chain,
        filters,
        filter_errors: faults,
        p50_micros: percentile(0.50),
        p99_micros: percentile(0.99),
        quality: labelled.then_some(quality),
    }
}

/// A one-line view of how `after` differs from `before`.
pub fn diff(before: &str, after: &str) -> String {
    let prefix = before
        .char_indices()
        .zip(after.chars())
        .take_while(|((_, a), b)| a == b)
        .last()
        .map_or(0, |((i, c), _)| i + c.len_utf8());
    let (before_rest, after_rest) = (&before[prefix..], &after[prefix..]);
    let suffix = before_rest
        .chars()
        .rev()
        .zip(after_rest.chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(c, _)| c.len_utf8())
        .sum::<usize>();
    let removed = &before_rest[..before_rest.len() - suffix];
    let added = &after_rest[..after_rest.len() - suffix];
    format!("[-{removed}-]{{+{added}+}}")
}

pub fn print_human(
    report: &Report,
    verbose: bool,
    out: &mut impl std::io::Write,
    input: &str,
) -> std::io::Result<()> {
    if verbose {
        for o in &report.outcomes {
            let label = o.label.map(|l| format!(" label={l}")).unwrap_or_default();
            match o.verdict {
                "reject" => writeln!(
                    out,
                    "line {:>4}{label}: REJECT by {}: {}",
                    o.line,
                    o.filters.join(","),
                    o.reason.as_deref().unwrap_or("")
                )?,
                "rewrite" => writeln!(
                    out,
                    "line {:>4}{label}: REWRITE by {}: {}",
                    o.line,
                    o.filters.join(","),
                    o.rewritten.as_deref().unwrap_or("(meta only)")
                )?,
                _ => writeln!(out, "line {:>4}{label}: accept", o.line)?,
            }
        }
    }
    let s = &report.summary;
    writeln!(
        out,
        "{} messages: {} accepted, {} rewritten, {} rejected; {} µs p50, {} µs p99 per message",
        s.messages,
        s.chain.accepted,
        s.chain.rewritten,
        s.chain.rejected,
        s.p50_micros,
        s.p99_micros
    )?;
    for (name, counts) in s.order.iter().filter_map(|n| Some((n, s.filters.get(n)?))) {
        let errors = s.filter_errors.get(name).copied().unwrap_or_default();
        writeln!(
            out,
            "  {name:<20} accepted {:>5}  rewritten {:>5}  rejected {:>5}  errors {errors}",
            counts.accepted, counts.rewritten, counts.rejected
        )?;
    }
    if let Some(quality) = &s.quality {
        writeln!(
            out,
            "against the labels in {input} (positive = stopped or changed):"
        )?;
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.3}", v));
        let rows = std::iter::once("chain".to_owned()).chain(s.order.iter().cloned());
        for (name, q) in rows.filter_map(|n| quality.get(&n).map(|q| (n, q))) {
            writeln!(
                out,
                "  {name:<20} recall {}  precision {}  false-positive rate {}  (tp {} fp {} tn {} fn {})",
                show(q.recall),
                show(q.precision),
                show(q.false_positive_rate),
                q.true_positives,
                q.false_positives,
                q.true_negatives,
                q.false_negatives
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_the_changed_middle() {
        assert_eq!(
            diff("mail bob@x.io now", "mail [REDACTED:email] now"),
            "[-bob@x.io-]{+[REDACTED:email]+}"
        );
        assert_eq!(diff("same", "same"), "[--]{++}");
    }

    #[test]
    fn quality_ratios() {
        let mut q = Quality::default();
        q.add(1, true);
        q.add(1, false);
        q.add(0, false);
        q.add(0, true);
        q.finish();
        assert_eq!(q.recall, Some(0.5));
        assert_eq!(q.precision, Some(0.5));
        assert_eq!(q.false_positive_rate, Some(0.5));
    }
}
