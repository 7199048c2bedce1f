//! Cluster mode: replicas share one view through Redis. This module connects
//! and answers the [`Cluster`] calls; the parts are the name directory
//! ([`directory`]), remote delivery over pub/sub ([`router`]), the leases that
//! make a dead replica's agents vanish ([`presence`]), the inboxes of agents
//! that are away ([`inbox`]) and the filters' shared store ([`store`]).
//!
//! Every Redis call is bounded ([`OP_TIMEOUT`]): a replica whose Redis is gone
//! answers with a clear error at once instead of hanging a tool call. The
//! connection manager reconnects on its own; the subscription and the leases
//! have their own loops that re-establish them once Redis is back.

pub mod directory;
pub mod inbox;
pub mod presence;
pub mod router;
pub mod store;

use std::{
    future::Future,
    sync::{Arc, Weak},
    time::Duration,
};

use redis::{
    Client, RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use rmcp::model::ServerJsonRpcMessage;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use self::{
    directory::{Directory, Registration},
    inbox::RedisMail,
    router::Router,
    store::RedisStore,
};
use super::{Cluster, ClusterError, LocalAgents, Remote, RouteError, Sequence};
use crate::delivery::{inbox::InboxLimits, journal::Journal};

/// Longest any single Redis call may take before it counts as a failure.
pub const OP_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{url:?} is not a Redis URL ({cause}); pass --redis redis://HOST:PORT")]
    BadUrl { url: String, cause: String },
    #[error("cannot reach Redis at {url} ({cause}); start Redis or fix --redis")]
    Unreachable { url: String, cause: String },
}

pub struct RedisOptions {
    pub url: String,
    /// This replica's id, unique in the cluster.
    pub replica: String,
    /// How long an agent stays registered without its replica renewing it.
    pub lease: Duration,
    /// How long a sender waits for the owning replica's acknowledgement.
    pub route_timeout: Duration,
}

pub struct RedisCluster {
    client: Client,
    conn: ConnectionManager,
    replica: String,
    lease: Duration,
    directory: Directory,
    router: Router,
    /// Wakes the lease loop: presence changed, or Redis came back.
    nudge: Notify,
}

/// Runs a Redis call within [`OP_TIMEOUT`], naming what failed.
pub(crate) async fn call<T>(
    what: &str,
    future: impl Future<Output = RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(OP_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ClusterError(format!("{what}: {error}"))),
        Err(_) => Err(ClusterError(format!(
            "{what}: no answer within {} ms",
            OP_TIMEOUT.as_millis()
        ))),
    }
}

impl RedisCluster {
    /// Connects, failing at once if Redis cannot be reached: a replica that
    /// starts without the shared view would hand out clashing names.
    pub async fn connect(options: RedisOptions) -> Result<Arc<Self>, ConnectError> {
        let client = Client::open(options.url.as_str()).map_err(|e| ConnectError::BadUrl {
            url: options.url.clone(),
            cause: e.to_string(),
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            // Few quick retries: callers have their own deadline, and the
            // manager tries again on the next call anyway.
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            OP_TIMEOUT * 3,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| "no answer".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|cause| ConnectError::Unreachable {
            url: options.url.clone(),
            cause,
        })?;
        let database = client.get_connection_info().redis_settings().db();
        Ok(Arc::new(Self {
            client,
            conn,
            directory: Directory::default(),
            router: Router::new(&options.replica, database, options.route_timeout),
            replica: options.replica,
            lease: options.lease,
            nudge: Notify::new(),
        }))
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The filters' store, shared by every replica on this Redis.
    pub fn store(&self) -> RedisStore {
        RedisStore::new(self.conn.clone(), tokio::runtime::Handle::current())
    }

    /// Inboxes shared by every replica on this Redis; `journal` is this
    /// replica's, where mail lands once taken.
    pub fn mail(&self, limits: InboxLimits, journal: Arc<Journal>) -> Arc<RedisMail> {
        RedisMail::new(self.conn.clone(), limits, journal)
    }

    /// Starts listening for messages routed here and renewing this replica's
    /// leases. The returned task ends after `shutdown`, once this replica's
    /// names are released, so a clean stop empties the listing at once.
    pub fn start(
        self: &Arc<Self>,
        agents: Weak<dyn LocalAgents>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(router::listen(
            self.clone(),
            agents.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(presence::keep_leases(self.clone(), agents, shutdown))
    }

    fn registration<'a>(
        &'a self,
        session: &'a str,
        name: &'a str,
        order: u64,
        online: bool,
    ) -> Registration<'a> {
        Registration {
            session,
            replica: &self.replica,
            name,
            order,
            online,
            lease_ms: self.lease.as_millis() as u64,
        }
    }
}

#[async_trait::async_trait]
impl Cluster for RedisCluster {
    async fn claim(&self, session: &str, name: &str, order: u64) -> Result<bool, ClusterError> {
        // Claims come from attach and rename, both of an agent whose stream is open.
        let registration = self.registration(session, name, order, true);
        self.directory
            .claim(&mut self.conn.clone(), &registration)
            .await
    }

    async fn release(&self, session: &str, name: &str) {
        if let Err(error) = self
            .directory
            .release(&mut self.conn.clone(), session, name)
            .await
        {
            // The lease runs out on its own.
            tracing::warn!(%error, agent = name, "could not release the name in Redis");
        }
    }

    async fn next(&self, sequence: Sequence) -> Result<u64, ClusterError> {
        self.directory.next(&mut self.conn.clone(), sequence).await
    }

    async fn elsewhere(&self) -> Result<Vec<(u64, String)>, ClusterError> {
        let online = self.directory.online(&mut self.conn.clone()).await?;
        Ok(online
            .into_iter()
            .filter(|(_, _, replica)| *replica != self.replica)
            .map(|(order, name, _)| (order, name))
            .collect())
    }

    async fn locate(&self, name: &str) -> Result<Option<Remote>, ClusterError> {
        let found = self.directory.locate(&mut self.conn.clone(), name).await?;
        // A name this replica holds but the registry did not find is stale
        // (released a moment ago); it is not elsewhere.
        Ok(found.filter(|remote| remote.replica != self.replica))
    }

    async fn deliver(
        &self,
        to: &Remote,
        notification: &ServerJsonRpcMessage,
    ) -> Result<(), RouteError> {
        self.router
            .deliver(&mut self.conn.clone(), to, notification)
            .await
    }

    fn presence_changed(&self) {
        self.nudge.notify_one();
    }

    async fn health(&self) -> Result<(), ClusterError> {
        call(
            "PING",
            redis::cmd("PING").query_async::<()>(&mut self.conn.clone()),
        )
        .await
    }
}
