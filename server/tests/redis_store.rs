//! The filters' store on Redis keeps the contract of the in-process store
//! (`chain::store`'s unit tests): namespaces, sizes, counters that keep their
//! first TTL, compare-and-swap, expiry. Runs on its own Redis (`tests::redis`).

use std::time::{Duration, Instant};

use server::{
    chain::store::{KvStore, MAX_KEY_BYTES, MAX_VALUE_BYTES, StoreError},
    cluster::redis::{RedisCluster, RedisOptions, store::RedisStore},
};
use tests::redis::Redis;

const SHORT_TTL: Option<Duration> = Some(Duration::from_millis(200));

async fn store(redis: &Redis) -> RedisStore {
    let cluster = RedisCluster::connect(RedisOptions {
        url: redis.url.clone(),
        replica: "store-test".into(),
        lease: Duration::from_secs(5),
        route_timeout: Duration::from_secs(1),
    })
    .await
    .expect("connects to the test's Redis");
    cluster.store()
}

/// Filters call the store from the chain's blocking threads; so do the tests.
async fn blocking(store: RedisStore, check: impl FnOnce(&RedisStore) + Send + 'static) {
    tokio::task::spawn_blocking(move || check(&store))
        .await
        .expect("the checks pass");
}

/// Polls until `key` is gone: expiry is Redis's event, not one to await.
fn wait_until_expired(store: &RedisStore, namespace: &str, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get(namespace, key).unwrap().is_some() {
        assert!(Instant::now() < deadline, "{key} never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn set_get_delete_within_a_namespace() {
    let redis = Redis::start().await.unwrap();
    blocking(store(&redis).await, |store| {
        store.set("a", "k", "1".into(), None).unwrap();
        assert_eq!(store.get("a", "k").unwrap().as_deref(), Some("1"));
        assert_eq!(store.get("b", "k").unwrap(), None);
        // The namespace is length-prefixed: plugin `a:k` key `x` is not plugin `a` key `k:x`.
        store.set("a:k", "x", "2".into(), None).unwrap();
        assert_eq!(store.get("a", "k:x").unwrap(), None);
        store.set("a", "k", "3".into(), None).unwrap();
        assert_eq!(store.get("a", "k").unwrap().as_deref(), Some("3"));
        store.delete("a", "k").unwrap();
        assert_eq!(store.get("a", "k").unwrap(), None);
        store.delete("a", "never-set").unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sizes_are_bounded_with_typed_errors() {
    let redis = Redis::start().await.unwrap();
    blocking(store(&redis).await, |store| {
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            store.get("p", &long_key),
            Err(StoreError::KeyTooLong(MAX_KEY_BYTES + 1))
        );
        let large = "v".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(
            store.set("p", "k", large.clone(), None),
            Err(StoreError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        assert_eq!(
            store.compare_and_swap("p", "k", None, large, None),
            Err(StoreError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
        assert_eq!(store.get("p", "k").unwrap(), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_start_at_zero_and_keep_their_first_ttl() {
    let redis = Redis::start().await.unwrap();
    blocking(store(&redis).await, |store| {
        assert_eq!(store.incr("p", "c", 2, SHORT_TTL).unwrap(), 2);
        // A later increment neither extends nor drops the first TTL.
        assert_eq!(store.incr("p", "c", 3, None).unwrap(), 5);
        assert_eq!(store.get("p", "c").unwrap().as_deref(), Some("5"));
        wait_until_expired(store, "p", "c");
        assert_eq!(store.incr("p", "c", -1, None).unwrap(), -1);

        store.set("p", "s", "text".into(), None).unwrap();
        assert_eq!(
            store.incr("p", "s", 1, None),
            Err(StoreError::NotACounter("s".into()))
        );
        assert_eq!(store.get("p", "s").unwrap().as_deref(), Some("text"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_and_swap_and_expiry() {
    let redis = Redis::start().await.unwrap();
    blocking(store(&redis).await, |store| {
        assert!(
            store
                .compare_and_swap("p", "k", None, "1".into(), None)
                .unwrap()
        );
        assert!(
            !store
                .compare_and_swap("p", "k", None, "2".into(), None)
                .unwrap()
        );
        assert!(
            !store
                .compare_and_swap("p", "k", Some("0"), "2".into(), None)
                .unwrap()
        );
        assert!(
            store
                .compare_and_swap("p", "k", Some("1"), "2".into(), SHORT_TTL)
                .unwrap()
        );
        assert_eq!(store.get("p", "k").unwrap().as_deref(), Some("2"));
        wait_until_expired(store, "p", "k");
        assert!(
            store
                .compare_and_swap("p", "k", None, "3".into(), None)
                .unwrap()
        );

        store.set("p", "t", "v".into(), SHORT_TTL).unwrap();
        store.set("p", "forever", "v".into(), None).unwrap();
        wait_until_expired(store, "p", "t");
        assert_eq!(store.get("p", "forever").unwrap().as_deref(), Some("v"));
    })
    .await;
}
