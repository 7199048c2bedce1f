//! `switchboard-load`: runs a traffic or idle load against a Switchboard
//! server, prints the summary (text or `--json`) and exits 1 when the run
//! failed its checks, so CI can assert zero loss without timing assertions.

mod cli;
mod client;
mod idle;
mod ledger;
mod monitor;
mod pacer;
mod payload;
mod procstat;
mod report;
mod sse;
mod swarm;
mod traffic;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;

fn print<S: Serialize + std::fmt::Display>(summary: &S, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).context("serializing the summary")?
        );
    } else {
        print!("{summary}");
    }
    Ok(())
}

fn verdict(problems: &[String]) -> ExitCode {
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("switchboard-load: run failed: {}", problems.join("; "));
    ExitCode::FAILURE
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = cli::Args::parse();
    if let Some(count) = args.idle_agents {
        let summary = idle::run(&args, count)
            .await
            .context("idle run against the server")?;
        print(&summary, args.json)?;
        return Ok(verdict(&summary.problems));
    }
    let summary = traffic::run(&args)
        .await
        .with_context(|| format!("traffic run against {}", args.urls()))?;
    print(&summary, args.json)?;
    Ok(verdict(&summary.problems))
}
