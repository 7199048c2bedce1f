//! The command line: every knob the server has, with its default.

use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    client::{
        join::JoinArgs,
        trigger::{AgentsArgs, SendArgs},
    },
    scaffold::NewFilterArgs,
};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "switchboard",
    version = env!("SWITCHBOARD_VERSION"),
    about = "A message bus for Claude Code sessions, over MCP channels",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a subcommand, the server runs.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Read a token on stdin and print the `sha256` line for the auth file.
    HashToken,
    /// Run a corpus of messages through a filter chain and report what it
    /// would do, before the chain goes live.
    Check(CheckArgs),
    /// Join a running server as an agent from the terminal: messages to you
    /// are printed as they arrive, and typed lines (`@coder hello`, `/who`,
    /// `/rename NAME`, `/quit`) are sent through the same tools Claude Code uses.
    Join(JoinArgs),
    /// Send a message to an agent through the HTTP trigger (POST /v1/messages).
    #[command(after_help = crate::client::trigger::SEND_EXIT_CODES)]
    Send(SendArgs),
    /// List the agents online (GET /v1/agents), one per line.
    Agents(AgentsArgs),
    /// Create a filter crate in the plugins folder (a working filter with
    /// tests) and add it to the workspace.
    NewFilter(NewFilterArgs),
    /// Print a shell completion script, e.g. `switchboard completions bash >
    /// ~/.local/share/bash-completion/completions/switchboard`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Folder the chain's components and `source` crates are relative to.
    #[arg(long, default_value = "./plugins")]
    pub plugins: PathBuf,

    /// The chain file to try (default: `<plugins>/chain.toml`). A relative
    /// path is looked up in the current folder, then in `--plugins`.
    #[arg(long)]
    pub chain: Option<PathBuf>,

    /// One JSON object per line: {"text", "from"?, "to"?, "meta"?, "label"?: 0|1,
    /// "category"?, "ts_ms"?}. When labelled lines carry a `category`, a filter's
    /// own figures count only the positives whose category is the filter's name or
    /// one it declares in --category (the chain's figures count every line).
    pub input: PathBuf,

    /// Which labelled categories a filter is meant to catch, as FILTER=CATEGORY
    /// (repeatable), e.g. `redact=secret`. A filter always owns the category
    /// spelled like its name.
    #[arg(long = "category", value_parser = filter_category)]
    pub categories: Vec<(String, String)>,

    /// Print a line per message (verdict, filter, reason or rewrite).
    #[arg(long, short)]
    pub verbose: bool,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,

    /// Fail (exit 1) if the gated figures' recall on labelled lines is below this.
    #[arg(long)]
    pub min_recall: Option<f64>,

    /// Fail (exit 1) if the gated figures' false-positive rate on labelled lines is above this.
    #[arg(long)]
    pub max_false_positive_rate: Option<f64>,

    /// Whose figures the two thresholds judge: the whole `chain` (default) or
    /// one filter's own, by name, e.g. to hold a guard to its target while
    /// another filter of the chain rightly rewrites the same lines.
    #[arg(long, default_value = "chain")]
    pub gate: String,

    /// Largest content a filter may rewrite a message to, as in the server.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Folder holding `chain.toml` and the filter components it names.
    #[arg(long, default_value = "./plugins")]
    pub plugins: PathBuf,

    /// Do not build filter crates (`source` in chain.toml) at startup; use the
    /// components as they are.
    #[arg(long)]
    pub no_build: bool,

    /// Run without any filter chain (`--plugins` is then ignored): messages are
    /// delivered unfiltered. Without it, a missing `<plugins>/chain.toml` stops
    /// the server from starting.
    #[arg(long)]
    pub no_filters: bool,

    /// Where sessions are remembered so agents keep their names across restarts.
    /// Defaults to `$XDG_STATE_HOME/switchboard` (or `~/.local/state/switchboard`).
    #[arg(long, env = "SWITCHBOARD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Largest message accepted by `send-message`, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,

    /// Messages an agent may have waiting on its stream before senders are refused.
    #[arg(long, default_value_t = 256)]
    pub queue_depth: usize,

    /// How long an agent whose stream dropped is waited for before messages to it fail.
    #[arg(long, default_value_t = 3000)]
    pub reconnect_grace_ms: u64,

    /// How long mail waits for an agent that is away before it is dropped
    /// unread (and counted): a number with `ms`, `s`, `m`, `h` or `d`.
    #[arg(long, default_value = "24h", value_parser = duration)]
    pub inbox_ttl: std::time::Duration,

    /// Most messages waiting in one away agent's inbox; more are refused.
    #[arg(long, default_value_t = 1000)]
    pub inbox_max_messages: usize,

    /// Most bytes (as delivered) waiting in one away agent's inbox; more are refused.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub inbox_max_bytes: usize,

    /// Most bytes waiting in all inboxes together; more are refused.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    pub inbox_max_total_bytes: usize,

    /// Most inboxes at once; past it an empty one away the longest makes
    /// room, and when all hold mail a name that goes away keeps none.
    #[arg(long, default_value_t = 10_000)]
    pub max_inboxes: usize,

    /// Sessions without an open stream are closed after this many seconds idle.
    #[arg(long, default_value_t = 600)]
    pub session_idle_secs: u64,

    /// Require bearer tokens, listed (as hashes) in this TOML file. Off by default.
    #[arg(long)]
    pub auth: Option<PathBuf>,

    /// A browser origin allowed to call the server (repeatable); requests with
    /// any other `Origin` header are refused.
    #[arg(long = "allow-origin")]
    pub allow_origins: Vec<String>,

    /// Most agents connected at once.
    #[arg(long, default_value_t = 1000)]
    pub max_agents: usize,

    /// Most MCP sessions held at once (agents or not).
    #[arg(long, default_value_t = 10_000)]
    pub max_sessions: usize,

    /// Most TCP connections open at once; one more is answered 503 and closed
    /// (an agent holds one or two). Keep it below the open-files limit.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,

    /// How long a client may take to send a request's headers, and again its
    /// body, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// A connection with no request in progress (event streams always are) is
    /// closed after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub connection_idle_secs: u64,

    /// Run as one replica of a cluster sharing this Redis (`redis://HOST:PORT`):
    /// names, presence, delivery and filter state become cluster-wide. Off by
    /// default: one process, all in memory.
    #[arg(long, env = "SWITCHBOARD_REDIS")]
    pub redis: Option<String>,

    /// This replica's id in the cluster (default: random at each start); it
    /// starts every session id, for the load balancer to route by.
    #[arg(long, value_parser = replica_id)]
    pub replica_id: Option<String>,

    /// With --redis: how long a replica's agents stay listed after it stops
    /// renewing them (it renews every third of this).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(300..))]
    pub lease_ms: u64,

    /// Append one JSON line per filter verdict to this file (id, time, from,
    /// to, verdict, filter, reason, rewritten_by, content length and SHA-256).
    #[arg(long)]
    pub audit: Option<PathBuf>,

    /// With --audit: also write each message's content (as the filters saw it).
    #[arg(long, requires = "audit")]
    pub audit_content: bool,

    /// Relay Claude Code's permission prompts: declare
    /// `claude/channel/permission`, list requests at GET /v1/permissions and
    /// answer them with POST /v1/permissions/{id} (admin).
    #[arg(long)]
    pub permission_relay: bool,

    /// Log format on stdout; the level comes from `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

fn filter_category(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((filter, category)) if !filter.is_empty() && !category.is_empty() => {
            Ok((filter.to_owned(), category.to_owned()))
        }
        _ => Err("use FILTER=CATEGORY, e.g. redact=secret".into()),
    }
}

/// `90s`, `30m`, `24h`, `7d`, `500ms`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "use a whole number and a unit, e.g. 24h, 30m, 90s or 500ms".to_owned())?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err("the unit is one of ms, s, m, h, d (e.g. 24h)".into()),
    };
    Ok(std::time::Duration::from_millis(
        number.saturating_mul(millis),
    ))
}

/// Replica ids go into session ids and channel names: keep them plain.
fn replica_id(id: &str) -> Result<String, String> {
    let plain = (1..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        Ok(id.to_owned())
    } else {
        Err("use 1-32 characters from A-Z, a-z, 0-9, '_' and '-'".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "24", "h", "1.5h", "-1s", "3 s"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }
}
