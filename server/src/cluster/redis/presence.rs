//! Leases: this replica's names stay registered in Redis only while it renews
//! them, every third of the lease and whenever an agent comes or goes. A
//! replica that dies stops renewing, and its agents vanish when the lease
//! lapses. Renewing re-creates what Redis lost (a restart), and a name whose
//! grace period ended here is released.

use std::{
    collections::HashSet,
    sync::{Arc, Weak},
};

use tokio_util::sync::CancellationToken;

use super::RedisCluster;
use crate::cluster::{Cluster, ClusterError, Held, LocalAgents};

pub(super) async fn keep_leases(
    cluster: Arc<RedisCluster>,
    agents: Weak<dyn LocalAgents>,
    shutdown: CancellationToken,
) {
    let period = cluster.lease / 3;
    // (session, name) registered on the last round.
    let mut registered: HashSet<(String, String)> = HashSet::new();
    // Names another replica took while Redis had forgotten ours; warned once.
    let mut lost: HashSet<(String, String)> = HashSet::new();
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
            _ = cluster.nudge.notified() => {}
        }
        let Some(held) = agents.upgrade().map(|a| a.held()) else {
            break;
        };
        match renew(&cluster, &held, &mut lost).await {
            Ok(()) => {
                if !healthy {
                    tracing::info!(agents = held.len(), "agents registered in Redis again");
                }
                healthy = true;
            }
            Err(error) => {
                if healthy {
                    tracing::warn!(%error, "cannot renew agent leases; retrying");
                }
                healthy = false;
                continue;
            }
        }
        let now: HashSet<(String, String)> =
            held.into_iter().map(|h| (h.session, h.name)).collect();
        lost.retain(|key| now.contains(key));
        for (session, name) in registered.difference(&now) {
            cluster.release(session, name).await;
        }
        registered = now;
    }
    // A clean stop: the agents leave the listing now, not when the lease lapses.
    let current = agents.upgrade().map(|a| a.held()).unwrap_or_default();
    registered.extend(current.into_iter().map(|h| (h.session, h.name)));
    for (session, name) in &registered {
        cluster.release(session, name).await;
    }
}

async fn renew(
    cluster: &RedisCluster,
    held: &[Held],
    lost: &mut HashSet<(String, String)>,
) -> Result<(), ClusterError> {
    let mut conn = cluster.conn.clone();
    for agent in held {
        let registration =
            cluster.registration(&agent.session, &agent.name, agent.order, agent.online);
        let kept = cluster.directory.claim(&mut conn, &registration).await?;
        let key = (agent.session.clone(), agent.name.clone());
        if kept {
            lost.remove(&key);
        } else if lost.insert(key) {
            tracing::warn!(
                agent = %agent.name,
                "another replica registered this name while Redis was unreachable; messages from other replicas go there until this agent renames"
            );
        }
    }
    Ok(())
}
