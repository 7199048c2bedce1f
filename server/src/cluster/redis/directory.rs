//! Who holds which name, in Redis: the key layout and the scripts that keep
//! claims atomic. One hash per lower-cased name (`holder`, `replica`, `name`,
//! `order`, `online`) with a lease the owning replica renews; a sorted set of
//! names by listing order, pruned of expired names as it is read.

use redis::{Script, aio::ConnectionManager};

use super::call;
use crate::cluster::{ClusterError, Remote, Sequence};

const PREFIX: &str = "switchboard:";

fn agent_key(name: &str) -> String {
    format!("{PREFIX}agent:{}", name.to_ascii_lowercase())
}

fn roster_key() -> String {
    format!("{PREFIX}agents")
}

fn sequence_key(sequence: Sequence) -> String {
    match sequence {
        Sequence::AgentNumber => format!("{PREFIX}seq:agent-number"),
        Sequence::Order => format!("{PREFIX}seq:order"),
    }
}

/// Takes or renews a name unless another session holds it.
/// KEYS: agent hash, roster. ARGV: session, replica, name, order, online (0/1), lease ms, member.
const CLAIM: &str = r"
local holder = redis.call('HGET', KEYS[1], 'session')
if holder and holder ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'session', ARGV[1], 'replica', ARGV[2], 'name', ARGV[3],
  'order', ARGV[4], 'online', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[7])
return 1
";

/// KEYS: agent hash. ARGV: session.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'session') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// Online agents as flat (name, replica, order) triples; drops roster
/// members whose lease lapsed. KEYS: roster. ARGV: agent key prefix.
const LIST: &str = r"
local out = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local agent = redis.call('HMGET', ARGV[1] .. member, 'name', 'replica', 'order', 'online')
  if not agent[1] then
    redis.call('ZREM', KEYS[1], member)
  elseif agent[4] == '1' then
    table.insert(out, agent[1]); table.insert(out, agent[2]); table.insert(out, agent[3])
  end
end
return out
";

pub struct Directory {
    claim: Script,
    release: Script,
    list: Script,
}

/// One name as the owning replica registers it.
pub struct Registration<'a> {
    pub session: &'a str,
    pub replica: &'a str,
    pub name: &'a str,
    pub order: u64,
    pub online: bool,
    pub lease_ms: u64,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            list: Script::new(LIST),
        }
    }
}

impl Directory {
    pub async fn claim(
        &self,
        conn: &mut ConnectionManager,
        entry: &Registration<'_>,
    ) -> Result<bool, ClusterError> {
        let mut invocation = self.claim.key(agent_key(entry.name));
        invocation
            .key(roster_key())
            .arg(entry.session)
            .arg(entry.replica)
            .arg(entry.name)
            .arg(entry.order)
            .arg(u8::from(entry.online))
            .arg(entry.lease_ms)
            .arg(entry.name.to_ascii_lowercase());
        let taken: i64 = call("claim a name", invocation.invoke_async(conn)).await?;
        Ok(taken == 1)
    }

    pub async fn release(
        &self,
        conn: &mut ConnectionManager,
        session: &str,
        name: &str,
    ) -> Result<(), ClusterError> {
        let mut invocation = self.release.key(agent_key(name));
        invocation.arg(session);
        call("release a name", invocation.invoke_async::<i64>(conn)).await?;
        Ok(())
    }

    pub async fn next(
        &self,
        conn: &mut ConnectionManager,
        sequence: Sequence,
    ) -> Result<u64, ClusterError> {
        call(
            "count",
            redis::cmd("INCR")
                .arg(sequence_key(sequence))
                .query_async(conn),
        )
        .await
    }

    /// Online agents in the cluster: (order, name, replica).
    pub async fn online(
        &self,
        conn: &mut ConnectionManager,
    ) -> Result<Vec<(u64, String, String)>, ClusterError> {
        let mut invocation = self.list.key(roster_key());
        invocation.arg(format!("{PREFIX}agent:"));
        let flat: Vec<String> = call("list agents", invocation.invoke_async(conn)).await?;
        Ok(flat
            .chunks_exact(3)
            .map(|triple| {
                (
                    triple[2].parse().unwrap_or(u64::MAX),
                    triple[0].clone(),
                    triple[1].clone(),
                )
            })
            .collect())
    }

    pub async fn locate(
        &self,
        conn: &mut ConnectionManager,
        name: &str,
    ) -> Result<Option<Remote>, ClusterError> {
        let fields: Vec<Option<String>> = call(
            "locate an agent",
            redis::cmd("HMGET")
                .arg(agent_key(name))
                .arg("name")
                .arg("session")
                .arg("replica")
                .query_async(conn),
        )
        .await?;
        Ok(match fields.as_slice() {
            [Some(name), Some(session), Some(replica)] => Some(Remote {
                name: name.clone(),
                session: session.clone(),
                replica: replica.clone(),
            }),
            _ => None,
        })
    }
}
