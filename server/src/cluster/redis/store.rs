//! The filters' key/value and counter store on Redis, so every replica's
//! filters see the same counters (a rate limit holds across the cluster).
//! Keys are namespaced per plugin; sizes are bounded as in the in-process
//! store, while the number of entries is left to Redis's own memory policy.
//!
//! With this store the chain runs on a blocking thread
//! ([`KvStore::waits_on_network`]), so each call blocks that thread on the
//! runtime, bounded by [`OP_TIMEOUT`]; a Redis that does not answer traps
//! the filter, and its `on_error` policy decides.

use std::{future::Future, time::Duration};

use redis::{RedisResult, Script, aio::ConnectionManager};
use tokio::runtime::Handle;

use super::OP_TIMEOUT;
use crate::chain::store::{KvStore, MAX_KEY_BYTES, MAX_VALUE_BYTES, StoreError};

/// Adds to a counter, setting the TTL only when it creates the counter.
/// KEYS: the counter. ARGV: delta, ttl ms (0: none).
const INCR: &str = r"
local created = redis.call('EXISTS', KEYS[1]) == 0
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
";

/// KEYS: the entry. ARGV: 1 if a value is expected else 0, expected, new, ttl ms (0: none).
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local matches
if ARGV[1] == '1' then matches = current == ARGV[2] else matches = current == false end
if not matches then return 0 end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
";

pub struct RedisStore {
    conn: ConnectionManager,
    runtime: Handle,
    incr: Script,
    compare_and_swap: Script,
}

/// The length prefix keeps plugin `a:b` key `c` apart from plugin `a` key `b:c`.
fn key(namespace: &str, key: &str) -> Result<String, StoreError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::KeyTooLong(key.len()));
    }
    Ok(format!(
        "switchboard:kv:{}:{namespace}:{key}",
        namespace.len()
    ))
}

fn check_value(value: &str) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::ValueTooLarge(value.len()));
    }
    Ok(())
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| (ttl.as_millis() as u64).max(1))
}

impl RedisStore {
    pub fn new(conn: ConnectionManager, runtime: Handle) -> Self {
        Self {
            conn,
            runtime,
            incr: Script::new(INCR),
            compare_and_swap: Script::new(COMPARE_AND_SWAP),
        }
    }

    /// Runs one Redis call to completion from a blocking thread (never a
    /// runtime worker: with this store the chain runs on blocking threads).
    /// `key` is the filter's own key, for errors.
    fn run<T, F>(&self, key: &str, op: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn.clone();
        match self
            .runtime
            .block_on(async move { tokio::time::timeout(OP_TIMEOUT, op(conn)).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error))
                if error.code() == Some("ERR") && error.to_string().contains("not an integer") =>
            {
                Err(StoreError::NotACounter(key.to_owned()))
            }
            Ok(Err(error)) => Err(StoreError::Unavailable(error.to_string())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} ms",
                OP_TIMEOUT.as_millis()
            ))),
        }
    }
}

impl KvStore for RedisStore {
    fn waits_on_network(&self) -> bool {
        true
    }

    fn get(&self, namespace: &str, key: &str) -> Result<Option<String>, StoreError> {
        let redis_key = self::key(namespace, key)?;
        self.run(key, |mut conn| async move {
            redis::cmd("GET")
                .arg(redis_key)
                .query_async(&mut conn)
                .await
        })
    }

    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        check_value(&value)?;
        let mut command = redis::cmd("SET");
        command.arg(self::key(namespace, key)?).arg(value);
        if ttl.is_some() {
            command.arg("PX").arg(ttl_ms(ttl));
        }
        self.run(key, |mut conn| async move {
            command.query_async(&mut conn).await
        })
    }

    fn delete(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let mut command = redis::cmd("DEL");
        command.arg(self::key(namespace, key)?);
        self.run(key, |mut conn| async move {
            command.query_async::<i64>(&mut conn).await.map(drop)
        })
    }

    fn incr(
        &self,
        namespace: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, StoreError> {
        let mut invocation = self.incr.key(self::key(namespace, key)?);
        invocation.arg(delta).arg(ttl_ms(ttl));
        self.run(key, |mut conn| async move {
            invocation.invoke_async(&mut conn).await
        })
    }

    fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<&str>,
        new: String,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        check_value(&new)?;
        let mut invocation = self.compare_and_swap.key(self::key(namespace, key)?);
        invocation
            .arg(u8::from(expected.is_some()))
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(ttl_ms(ttl));
        self.run(key, |mut conn| async move {
            invocation
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|swapped| swapped == 1)
        })
    }
}

/// The store contract (`chain::store::contract`) on a private Redis.
#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ::tests::redis::Redis;

    use super::RedisStore;
    use crate::{
        chain::store::{KvStore, contract},
        cluster::redis::{RedisCluster, RedisOptions},
    };

    /// Runs `run` on a store over a fresh Redis, from a blocking thread as
    /// filters do. Expiry is Redis's own event, so `expire` polls for it.
    async fn check(run: impl FnOnce(&dyn KvStore, contract::Expire<'_>) + Send + 'static) {
        let redis = Redis::start().await.unwrap();
        let cluster = RedisCluster::connect(RedisOptions {
            url: redis.url.clone(),
            replica: "store-test".into(),
            lease: Duration::from_secs(5),
            route_timeout: Duration::from_secs(1),
        })
        .await
        .expect("connects to the test's Redis");
        let store: RedisStore = cluster.store();
        tokio::task::spawn_blocking(move || {
            let expire = |namespace: &str, key: &str| {
                let deadline = Instant::now() + Duration::from_secs(5);
                while store.get(namespace, key).unwrap().is_some() {
                    assert!(Instant::now() < deadline, "{key} never expired");
                    std::thread::sleep(Duration::from_millis(20));
                }
            };
            run(&store, &expire);
        })
        .await
        .expect("the checks pass");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn namespaces() {
        check(|store, _| contract::namespaces(store)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sizes() {
        check(|store, _| contract::sizes(store)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn counters() {
        check(contract::counters).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compare_and_swap() {
        check(contract::compare_and_swap).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn expiry() {
        check(contract::expiry).await;
    }
}
