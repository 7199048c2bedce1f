//! The traffic run: K agents send to random others, paced to a total rate or
//! flat out, for the send window; then the drain window gives accepted
//! messages time to arrive before the rest count as lost.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Deserialize;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    cli::Args,
    client::{ClientError, Endpoint, SendArgs},
    ledger::{Counts, Ledger, Outcome},
    monitor::{Monitor, Usage},
    pacer::TokenBucket,
    payload,
    procstat::{ProcError, Target},
    report::{self, TrafficSummary},
    sse,
    swarm::{self, Agent, Handler},
};

const CHANNEL_METHOD: &str = "notifications/claude/channel";
const TOP_ERRORS: usize = 5;
/// How often the drain checks whether everything has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{failed} of {total} agents could not connect; first error: {first}")]
    Connect {
        failed: u64,
        total: u32,
        first: String,
    },
    #[error("cannot watch the server process: {0}")]
    Proc(#[from] ProcError),
}

#[derive(Deserialize)]
struct Note {
    method: String,
    params: Option<NoteParams>,
}

#[derive(Deserialize)]
struct NoteParams {
    content: String,
}

/// Books a channel notification that carries one of this run's messages.
fn on_event(ledger: &Ledger, at: u32, event: sse::Event) {
    let Ok(note) = serde_json::from_str::<Note>(&event.data) else {
        return;
    };
    if note.method != CHANNEL_METHOD {
        return;
    }
    if let Some(stamp) = note.params.and_then(|p| payload::parse(&p.content)) {
        ledger.arrive(stamp, at);
    }
}

/// Everything a sender needs, shared by all send tasks.
struct Plan {
    agents: Vec<Agent>,
    names: Vec<String>,
    /// Whether each agent's stream is open (churn takes agents away).
    present: Vec<AtomicBool>,
    ledger: Arc<Ledger>,
    size: usize,
    /// Accepted into the inbox of an agent that was away.
    queued: AtomicU64,
}

impl Plan {
    fn pick(&self, rng: &mut fastrand::Rng, from: Option<u32>) -> (u32, u32) {
        let count = self.agents.len() as u32;
        // An agent that is away cannot send; a few tries find one that is here.
        let from = from.unwrap_or_else(|| {
            let mut from = rng.u32(0..count);
            for _ in 0..8 {
                if self.present[from as usize].load(Ordering::Relaxed) {
                    break;
                }
                from = rng.u32(0..count);
            }
            from
        });
        // Any agent but the sender, uniformly.
        let to = rng.u32(0..count - 1);
        (from, if to >= from { to + 1 } else { to })
    }

    async fn send(&self, from: u32, to: u32) {
        let stamp = self.ledger.begin(to);
        let content = payload::compose(stamp, self.size);
        let started = Instant::now();
        let args = SendArgs {
            to: &self.names[to as usize],
            message: &content,
        };
        let reply = self.agents[from as usize]
            .session
            .call::<_, serde::de::IgnoredAny>("send-message", args)
            .await;
        let outcome = match reply {
            Ok(reply) if !reply.is_error => {
                if reply.text.contains(" is away; queued") {
                    self.queued.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Accepted
            }
            Ok(reply) => Outcome::Rejected(reply.text),
            Err(error) => Outcome::Failed(error.to_string()),
        };
        self.ledger.settle(stamp.id, outcome, started.elapsed());
    }
}

/// Every agent sends its next message as soon as the previous one is answered.
async fn flat_out(plan: Arc<Plan>, until: Instant) {
    let mut senders = JoinSet::new();
    for from in 0..plan.agents.len() as u32 {
        let plan = plan.clone();
        senders.spawn(async move {
            let mut rng = fastrand::Rng::new();
            while Instant::now() < until {
                let (from, to) = plan.pick(&mut rng, Some(from));
                plan.send(from, to).await;
            }
        });
    }
    senders.join_all().await;
}

/// One pacer hands out sends at the target rate to random senders; a send
/// does not wait for the previous one, so a slow answer does not lower the
/// offered rate until `max_in_flight` sends are waiting.
async fn paced(plan: Arc<Plan>, until: Instant, rate: f64, max_in_flight: u32) {
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let mut bucket = TokenBucket::new(rate);
    let mut rng = fastrand::Rng::new();
    let mut sends = JoinSet::new();
    loop {
        bucket.take().await;
        if Instant::now() >= until {
            break;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (from, to) = plan.pick(&mut rng, None);
        let plan = plan.clone();
        sends.spawn(async move {
            plan.send(from, to).await;
            drop(slot);
        });
        while sends.try_join_next().is_some() {}
    }
    sends.join_all().await;
}

/// Absences during a churn run.
#[derive(Default)]
struct Churned {
    left: AtomicU64,
    returned: AtomicU64,
    failed_returns: AtomicU64,
}

/// Agents leave at random, about `per_sec` a second, and each comes back
/// after up to `away`; returns once every one that left is back.
async fn churn(
    plan: Arc<Plan>,
    until: Instant,
    per_sec: f64,
    away: Duration,
    churned: Arc<Churned>,
) {
    let mut rng = fastrand::Rng::new();
    let mut returns = JoinSet::new();
    let count = plan.agents.len() as u32;
    loop {
        // Exponential gaps: departures are independent of each other.
        let gap = -(1.0 - rng.f64()).ln() / per_sec;
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        if Instant::now() >= until {
            break;
        }
        let index = rng.u32(0..count) as usize;
        if !plan.present[index].swap(false, Ordering::Relaxed) {
            continue;
        }
        plan.agents[index].leave();
        churned.left.fetch_add(1, Ordering::Relaxed);
        let absence = away.mul_f64(rng.f64());
        let (plan, churned) = (plan.clone(), churned.clone());
        returns.spawn(async move {
            tokio::time::sleep(absence).await;
            match plan.agents[index].come_back().await {
                Ok(()) => {
                    churned.returned.fetch_add(1, Ordering::Relaxed);
                    plan.present[index].store(true, Ordering::Relaxed);
                }
                Err(error) => {
                    eprintln!("agent {index} could not come back: {error}");
                    churned.failed_returns.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while returns.try_join_next().is_some() {}
    }
    returns.join_all().await;
}

/// The once-a-second line on stderr.
struct Progress {
    started: Instant,
    last: Counts,
}

impl Progress {
    fn print(&mut self, phase: &str, ledger: &Ledger, server: Option<&Monitor>) {
        let now = ledger.counts();
        let fresh = ledger.latencies_since(self.last.delivered as usize);
        let window = report::percentiles(fresh)
            .map(|p| format!(", p50 {:.2} ms p99 {:.2} ms", p.p50_ms, p.p99_ms))
            .unwrap_or_default();
        let usage = server
            .map(|m| {
                let sample = m.latest();
                format!(" | server {:.0} MiB", crate::monitor::mib(sample.rss_kib))
            })
            .unwrap_or_default();
        let answered = now.accepted + now.rejected + now.failed;
        eprintln!(
            "[{phase} {:>3} s] sent {} accepted {} rejected {} failed {} delivered {} awaiting {} in flight {} | last second {} delivered{window}{usage}",
            self.started.elapsed().as_secs(),
            now.sent,
            now.accepted,
            now.rejected,
            now.failed,
            now.delivered,
            now.awaiting,
            now.sent - answered,
            now.delivered - self.last.delivered,
        );
        self.last = now;
    }
}

pub async fn run(args: &Args) -> Result<TrafficSummary, TrafficError> {
    let connections = (args.agents + args.max_in_flight) as usize + 16;
    let endpoints = args
        .url
        .iter()
        .map(|url| Endpoint::new(url, connections, args.request_timeout()))
        .collect::<Result<Vec<_>, _>>()?;
    let ledger = Arc::new(Ledger::new());
    let handler: Handler = {
        let ledger = ledger.clone();
        Arc::new(move |at, event| on_event(&ledger, at, event))
    };
    let swarm = swarm::connect(
        &endpoints,
        swarm::Options {
            count: args.agents,
            concurrency: args.connect_concurrency,
            named: true,
            declare: args.churn().is_some(),
        },
        handler,
    )
    .await;
    if let Some((first, _)) = swarm.failures.iter().next() {
        return Err(TrafficError::Connect {
            failed: swarm.failures.values().sum(),
            total: args.agents,
            first: first.clone(),
        });
    }
    eprintln!(
        "connected {} agents in {:.1} s",
        swarm.agents.len(),
        swarm.took.as_secs_f64()
    );
    let names = swarm
        .agents
        .iter()
        .map(|a| a.name.clone().unwrap_or_default())
        .collect();
    let plan = Arc::new(Plan {
        present: swarm.agents.iter().map(|_| AtomicBool::new(true)).collect(),
        agents: swarm.agents,
        names,
        ledger: ledger.clone(),
        size: args.size,
        queued: AtomicU64::new(0),
    });

    let server = args
        .pid
        .map(|pid| Monitor::start(Target::Pid(pid)))
        .transpose()?;
    // The tool's own use matters on a small machine: it competes with the server.
    let myself = Monitor::start(Target::Myself).ok();
    let started = Instant::now();
    let start_us = ledger.now_us();
    let until = started + args.send_window();
    let churned = Arc::new(Churned::default());
    let churning = args.churn().map(|(per_sec, away)| {
        tokio::spawn(churn(plan.clone(), until, per_sec, away, churned.clone()))
    });
    let mut sending = match args.target_rate() {
        Some(rate) => tokio::spawn(paced(plan.clone(), until, rate, args.max_in_flight)),
        None => tokio::spawn(flat_out(plan.clone(), until)),
    };
    let mut progress = Progress {
        started,
        last: Counts::default(),
    };
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            _ = &mut sending => break,
            _ = tick.tick() => progress.print("send", &ledger, server.as_ref()),
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    // Everyone who left comes back before the drain: mail waiting for them counts.
    if let Some(churning) = churning {
        let _ = churning.await;
    }

    let drain_until = Instant::now() + args.drain_window();
    while ledger.counts().awaiting > 0 && Instant::now() < drain_until {
        tokio::select! {
            _ = tokio::time::sleep(DRAIN_POLL) => {}
            _ = tick.tick() => progress.print("drain", &ledger, server.as_ref()),
        }
    }
    let server = server.map(Monitor::finish).transpose()?;
    let load_tool: Option<Usage> = myself.and_then(|m| m.finish().ok());
    let churn = args.churn().map(|(per_sec, away)| report::ChurnSummary {
        per_sec,
        away_ms: away.as_millis() as u64,
        left: churned.left.load(Ordering::Relaxed),
        returned: churned.returned.load(Ordering::Relaxed),
        failed_returns: churned.failed_returns.load(Ordering::Relaxed),
        queued: plan.queued.load(Ordering::Relaxed),
    });
    // Closing every stream before the summary keeps the next run's server clean.
    drop(plan);

    let closing = ledger.close();
    let delivered_secs =
        Duration::from_micros(closing.last_arrival_us.saturating_sub(start_us)).as_secs_f64();
    let counts = closing.counts;
    Ok(TrafficSummary {
        mode: "traffic",
        url: args.urls(),
        agents: args.agents,
        target_rate: args.target_rate(),
        seconds: args.seconds,
        size_bytes: args.size,
        send_secs,
        accepted_per_sec: per_sec(counts.accepted, send_secs),
        delivered_per_sec: per_sec(counts.delivered, delivered_secs.max(send_secs)),
        latency: report::percentiles(closing.latencies_us),
        call: report::percentiles(closing.calls_us),
        top_rejections: report::top(closing.rejections, TOP_ERRORS),
        top_failures: report::top(closing.failures, TOP_ERRORS),
        server,
        load_tool,
        problems: {
            let mut problems = report::problems(&counts);
            if let Some(failed) = churn.as_ref().map(|c| c.failed_returns).filter(|n| *n > 0) {
                problems.push(format!("{failed} agents could not come back"));
            }
            problems
        },
        churn,
        counts,
    })
}

fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}
