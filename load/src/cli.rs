//! The command line: what to run against which server, and every knob with
//! its default.

use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "switchboard-load",
    version,
    about = "Load generator for Switchboard: K MCP agents message each other and every message is accounted for",
    after_help = "Exits 1 when any accepted message was lost, duplicated or misrouted, or when nothing was accepted."
)]
pub struct Args {
    /// The server's MCP endpoint. Repeat it to spread the agents over several
    /// replicas of one cluster: agent i connects to the i-th URL, round robin.
    #[arg(
        long,
        env = "SWITCHBOARD_URL",
        default_value = "http://127.0.0.1:3000/mcp"
    )]
    pub url: Vec<String>,

    /// Agents that connect and message each other (at least 2).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    pub agents: u32,

    /// Target total send rate in messages per second across all agents; 0 sends flat out
    /// (every agent sends its next message as soon as the previous one is answered).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,

    /// How long to send (or, with --idle-agents, how long to hold the agents).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,

    /// Message size in bytes (content length; the id and timestamp header is padded up to it).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,

    /// After sending stops, how long to wait for accepted messages still on their way
    /// before counting them lost.
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,

    /// The server's process id: report its peak RSS and CPU from /proc.
    #[arg(long)]
    pub pid: Option<u32>,

    /// Print the summary as JSON on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,

    /// Instead of sending, connect this many agents that only hold their stream
    /// (for the memory-per-idle-agent measurement), then hold them for --seconds.
    #[arg(long, conflicts_with_all = ["agents", "rate", "size", "drain_secs"])]
    pub idle_agents: Option<u32>,

    /// Agents connecting at the same time during setup.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_concurrency: u32,

    /// With a target rate, the most sends waiting for their answer at once; the pacer
    /// waits (and the achieved rate drops below the target) when the server is slower.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Churn: on average this many agents per second leave (their event stream
    /// drops) and come back on the same session after up to --away-ms, while
    /// the others keep sending to everyone. Agents then declare stable names
    /// (`load-<n>`), so mail to one that is away waits in its inbox. 0: no churn.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,

    /// With --churn, the longest an agent stays away (each absence is uniform up to this).
    #[arg(long, default_value_t = 2000)]
    pub away_ms: u64,

    /// Bound on any single request, so a stuck server fails the run instead of hanging it.
    #[arg(long, default_value_t = 30)]
    pub request_timeout_secs: u64,
}

impl Args {
    /// The endpoints, as the report names them.
    pub fn urls(&self) -> String {
        self.url.join(" ")
    }

    pub fn send_window(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    pub fn drain_window(&self) -> Duration {
        Duration::from_secs(self.drain_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn churn(&self) -> Option<(f64, Duration)> {
        (self.churn > 0.0).then_some((self.churn, Duration::from_millis(self.away_ms)))
    }

    /// `None` means flat out.
    pub fn target_rate(&self) -> Option<f64> {
        (self.rate > 0.0).then_some(self.rate)
    }
}
