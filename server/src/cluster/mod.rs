//! The cluster seam: what a replica needs to know about the others. The
//! registry keeps this replica's sessions and outboxes; a [`Cluster`] decides
//! which names are free cluster-wide, hands out `agent-N` numbers and listing
//! order, lists the agents other replicas hold, finds the replica holding a
//! name, and hands a filtered message to it. [`LocalCluster`] is a cluster of
//! one (the default); [`redis::RedisCluster`] shares the view through Redis.
//! The cluster knows this replica's own agents only through [`LocalAgents`].

pub mod redis;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use rmcp::model::ServerJsonRpcMessage;

use crate::delivery::PushError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the agent directory (Redis) is unreachable ({0}); try again in a moment")]
pub struct ClusterError(pub String);

/// Why a message for an agent on another replica was not delivered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("{to} is on replica {replica}, which is not answering; the message was not delivered")]
    ReplicaDown { to: String, replica: String },
    #[error(
        "{to}'s replica did not confirm delivery within {waited_ms} ms, so the message counts as not delivered; send it again if it matters"
    )]
    NoAck { to: String, waited_ms: u128 },
    #[error("the message to {to} could not be routed: {error}; it was not delivered")]
    Directory { to: String, error: ClusterError },
    /// The owning replica could not queue it (full queue, agent gone).
    #[error("{0}")]
    Refused(PushError),
}

/// An agent held by another replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    pub session: String,
    pub replica: String,
}

/// An agent this replica holds a name for, as the cluster should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub session: String,
    pub name: String,
    pub order: u64,
    /// Its stream is open (not just within the reconnect grace).
    pub online: bool,
}

/// What the cluster needs of this replica's own agents: the names to keep
/// registered, and a way to hand a message routed here to one of them.
#[async_trait::async_trait]
pub trait LocalAgents: Send + Sync + 'static {
    /// Names this replica holds (online or within the reconnect grace).
    fn held(&self) -> Vec<Held>;

    /// Queues `notification` on the stream of `session`'s agent (waiting out
    /// a reconnect), once it is durable.
    async fn hand_over(
        &self,
        session: &str,
        notification: Arc<ServerJsonRpcMessage>,
    ) -> Result<(), PushError>;
}

/// Which counter [`Cluster::next`] draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// The N of `agent-N`: counts registrations, never reused.
    AgentNumber,
    /// Listing order of agents.
    Order,
}

/// The cluster view. Calls that reach Redis are async; the registry makes
/// them between its own short critical sections.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// Takes `name` for `session` (case-insensitive) unless another session
    /// holds it somewhere in the cluster; taking it again renews it.
    async fn claim(&self, session: &str, name: &str, order: u64) -> Result<bool, ClusterError>;

    /// Gives `name` up if `session` still holds it.
    async fn release(&self, session: &str, name: &str);

    async fn next(&self, sequence: Sequence) -> Result<u64, ClusterError>;

    /// Online agents held by other replicas, with their listing order.
    async fn elsewhere(&self) -> Result<Vec<(u64, String)>, ClusterError>;

    /// The agent called `name` (case-insensitive), if another replica holds it.
    async fn locate(&self, name: &str) -> Result<Option<Remote>, ClusterError>;

    /// Hands an already-filtered notification to the replica holding `to`;
    /// `Ok` once that replica has queued it on the agent's stream.
    async fn deliver(
        &self,
        to: &Remote,
        notification: &ServerJsonRpcMessage,
    ) -> Result<(), RouteError>;

    /// An agent of this replica went offline or came back; the cluster view
    /// should follow soon.
    fn presence_changed(&self);

    /// Whether the shared view can be reached now, for `/health` and `/metrics`.
    async fn health(&self) -> Result<(), ClusterError> {
        Ok(())
    }
}

/// A cluster of one replica: the registry's own table is the authority on
/// names, so claims always succeed here, and nobody is elsewhere.
#[derive(Default)]
pub struct LocalCluster {
    agent_number: AtomicU64,
    order: AtomicU64,
}

impl LocalCluster {
    /// A cluster whose next `agent-N` is `agent-{after + 1}`: numbers given
    /// out before a restart stay with the agents that had them.
    pub fn numbering_after(after: u64) -> Self {
        Self {
            agent_number: AtomicU64::new(after),
            ..Self::default()
        }
    }
}

#[async_trait::async_trait]
impl Cluster for LocalCluster {
    async fn claim(&self, _session: &str, _name: &str, _order: u64) -> Result<bool, ClusterError> {
        Ok(true)
    }

    async fn release(&self, _session: &str, _name: &str) {}

    async fn next(&self, sequence: Sequence) -> Result<u64, ClusterError> {
        let counter = match sequence {
            Sequence::AgentNumber => &self.agent_number,
            Sequence::Order => &self.order,
        };
        Ok(counter.fetch_add(1, Ordering::Relaxed) + 1)
    }

    async fn elsewhere(&self) -> Result<Vec<(u64, String)>, ClusterError> {
        Ok(Vec::new())
    }

    async fn locate(&self, _name: &str) -> Result<Option<Remote>, ClusterError> {
        Ok(None)
    }

    async fn deliver(
        &self,
        to: &Remote,
        _notification: &ServerJsonRpcMessage,
    ) -> Result<(), RouteError> {
        // `locate` never finds anyone, so no caller has a `Remote` to pass.
        Err(RouteError::ReplicaDown {
            to: to.name.clone(),
            replica: to.replica.clone(),
        })
    }

    fn presence_changed(&self) {}
}
