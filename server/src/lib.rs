//! Switchboard: an MCP server that lets Claude Code sessions message each other.
//!
//! Data flows one way: HTTP/MCP ([`http`], [`mcp`]) -> [`bus`] -> [`registry`]
//! (who is the recipient) -> [`filter`] stage (the WebAssembly [`chain`]) ->
//! [`delivery`] (the recipient's outbox, its inbox while it is away, both
//! journaled on disk, or the replica that holds it). [`bus`] is the one path
//! a message takes through them; the [`activity`] it reports feeds the
//! operator's dashboard. With `--redis`, [`cluster`] extends names, presence,
//! delivery and inboxes to the other replicas; it sees this replica's agents
//! only through [`cluster::LocalAgents`].
//! [`client`] is the other side: the `join`, `send` and `agents` subcommands.

pub mod activity;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod chain;
pub mod check;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod delivery;
pub mod filter;
pub mod http;
pub mod mcp;
pub mod message;
pub mod metrics;
pub mod permissions;
pub mod registry;
pub mod scaffold;
pub mod toml_error;
