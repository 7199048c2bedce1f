//! The filter stage: the seam between the registry and delivery where policy
//! decides what happens to a message. The bus only knows [`FilterStage`]; the
//! WebAssembly chain is one implementation, [`PassThrough`] the trivial one.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::message::Message;

/// What the filter stage decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Deliver `message` (possibly rewritten; `rewritten_by` names who changed it).
    Deliver {
        message: Message,
        rewritten_by: Vec<String>,
    },
    /// Do not deliver; `filter` said why.
    Reject { filter: String, reason: String },
}

/// A snapshot of the stage for `/health` and logs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StageInfo {
    /// Bumped on every successful reload.
    pub generation: u64,
    /// Filter names in chain order.
    pub filters: Vec<String>,
    /// Failures (traps, timeouts, bad verdicts) per filter name since start.
    pub faults: BTreeMap<String, u64>,
    /// True when the server runs without a chain (`--no-filters`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Why the last reload was refused (the chain in force is older than
    /// the file), until a reload succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

pub trait FilterStage: Send + Sync + 'static {
    /// Runs the message through the stage. A message in flight finishes on the
    /// policy it started with, even if the policy changes meanwhile.
    fn run(&self, message: Message) -> BoxFuture<'static, Decision>;

    fn info(&self) -> StageInfo;
}

/// Delivers everything untouched: `--no-filters`.
pub struct PassThrough;

impl FilterStage for PassThrough {
    fn run(&self, message: Message) -> BoxFuture<'static, Decision> {
        Box::pin(std::future::ready(Decision::Deliver {
            message,
            rewritten_by: Vec::new(),
        }))
    }

    fn info(&self) -> StageInfo {
        StageInfo {
            generation: 0,
            filters: Vec::new(),
            faults: BTreeMap::new(),
            disabled: true,
            refused: None,
        }
    }
}
