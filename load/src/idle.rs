//! The idle run: N agents connect and only hold their streams, so the
//! server's resident memory per connected agent can be read off, then they
//! are held for the send window with a progress line.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use crate::{
    cli::Args,
    client::{ClientError, Endpoint},
    monitor::{self, Monitor},
    procstat::{self, ProcError, Target},
    report::{self, IdleServer, IdleSummary},
    swarm::{self, Handler},
};

/// Lets the server finish the work the last connections caused before its
/// memory is read.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot watch the server process: {0}")]
    Proc(#[from] ProcError),
}

pub async fn run(args: &Args, count: u32) -> Result<IdleSummary, IdleError> {
    let endpoints = args
        .url
        .iter()
        .map(|url| Endpoint::new(url, count as usize + 16, args.request_timeout()))
        .collect::<Result<Vec<_>, _>>()?;
    let before = args
        .pid
        .map(|pid| procstat::sample(Target::Pid(pid)))
        .transpose()?;
    // Keep-alive comments are all an idle agent receives; nothing to book.
    let handler: Handler = Arc::new(|_, _| {});
    let swarm = swarm::connect(
        &endpoints,
        swarm::Options {
            count,
            concurrency: args.connect_concurrency,
            named: false,
            declare: false,
        },
        handler,
    )
    .await;
    let connected = swarm.agents.len() as u32;
    eprintln!(
        "connected {connected} of {count} agents in {:.1} s",
        swarm.took.as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    let mut online_reported = Some(0);
    for endpoint in &endpoints {
        online_reported = match (online_reported, endpoint.online_agents().await) {
            (Some(sum), Ok(online)) => Some(sum + online),
            _ => None,
        };
    }
    let after = args
        .pid
        .map(|pid| procstat::sample(Target::Pid(pid)))
        .transpose()?;
    let held = args
        .pid
        .map(|pid| Monitor::start(Target::Pid(pid)))
        .transpose()?;

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    for second in 1..=args.seconds {
        tick.tick().await;
        let rss = held
            .as_ref()
            .map(|m| format!(", server RSS {:.1} MiB", monitor::mib(m.latest().rss_kib)))
            .unwrap_or_default();
        eprintln!(
            "[hold {second:>3} s] {} streams open{rss}",
            swarm.live.load(Ordering::Relaxed)
        );
    }
    let still_open = swarm.live.load(Ordering::Relaxed);
    let held = held.map(Monitor::finish).transpose()?;
    drop(swarm.agents);

    let mut problems = Vec::new();
    if connected < count {
        problems.push(format!("{} agents could not connect", count - connected));
    }
    if still_open < connected {
        problems.push(format!(
            "{} streams ended while held",
            connected - still_open
        ));
    }
    let server = match (before, after, held) {
        (Some(before), Some(after), Some(held)) => Some(IdleServer {
            rss_before_mib: monitor::mib(before.rss_kib),
            rss_connected_mib: monitor::mib(after.rss_kib),
            per_agent_kib: after.rss_kib.saturating_sub(before.rss_kib) as f64
                / f64::from(connected.max(1)),
            held,
        }),
        _ => None,
    };
    Ok(IdleSummary {
        mode: "idle",
        url: args.urls(),
        requested: count,
        connected,
        connect_secs: swarm.took.as_secs_f64(),
        held_secs: args.seconds,
        online_reported,
        server,
        top_failures: report::top(swarm.failures, 5),
        problems,
    })
}
