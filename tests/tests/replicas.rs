//! Several replicas on one Redis, end to end: cross-replica delivery,
//! cluster-wide names, a replica dying, Redis restarting, a rate limit shared
//! by the cluster, and hot reload confined to one replica. Each test runs its
//! own Redis (see `tests::redis`).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;
use tests::{Agent, Server, WAIT, redis::Redis};

const LEASE_MS: u64 = 1500;

/// One replica: its own state folder and plugins folder (an empty chain
/// unless a test writes one).
struct Replica {
    server: Server,
    plugins: PathBuf,
    _dir: TempDir,
}

impl Replica {
    async fn start(redis: &Redis, id: &str, extra: &[&str]) -> Result<Replica> {
        let dir = tempfile::tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins)?;
        std::fs::write(plugins.join("chain.toml"), "# no filters\n")?;
        Self::start_with(redis, id, dir, plugins, extra).await
    }

    async fn start_with(
        redis: &Redis,
        id: &str,
        dir: TempDir,
        plugins: PathBuf,
        extra: &[&str],
    ) -> Result<Replica> {
        let lease = LEASE_MS.to_string();
        let mut args = vec!["--redis", &redis.url, "--replica-id", id];
        if !extra.contains(&"--lease-ms") {
            args.extend(["--lease-ms", &lease]);
        }
        args.extend_from_slice(extra);
        let server = Server::launch(&plugins, dir.path(), 0, &args).await?;
        Ok(Replica {
            server,
            plugins,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        self.server.url()
    }
}

async fn listed(agent: &Agent) -> Result<Vec<String>> {
    let listed = agent.call("list-agents", json!({})).await?;
    Ok(serde_json::from_value(listed.structured["agents"].clone())?)
}

/// Polls `check` every 50 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {} ms", within.as_millis());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_on_one_replica_reaches_an_agent_on_another() -> Result<()> {
    let redis = Redis::start().await?;
    let r1 = Replica::start(&redis, "r1", &[]).await?;
    let r2 = Replica::start(&redis, "r2", &[]).await?;
    let mut a = Agent::connect(&r1.url()).await?;
    let mut b = Agent::connect(&r2.url()).await?;
    assert_eq!(
        [&a.name, &b.name],
        ["agent-1", "agent-2"],
        "numbers are cluster-wide"
    );
    assert_eq!(listed(&a).await?, ["agent-1", "agent-2"]);
    assert_eq!(listed(&b).await?, ["agent-1", "agent-2"]);

    let renamed = a.call("rename-agent", json!({"name": "coder"})).await?;
    assert!(!renamed.is_error, "{}", renamed.text);
    let sent = a.send("agent-2", "hey, what are you working on?").await?;
    assert_eq!(sent.text, "Delivered to agent-2");
    let event = b.next_event(WAIT).await?;
    assert_eq!(
        event.data,
        r#"{"jsonrpc":"2.0","method":"notifications/claude/channel","params":{"content":"hey, what are you working on?","meta":{"from":"coder","to":"agent-2","kind":"agent-message","severity":"info"}}}"#
    );
    let reply = b.send("CODER", "the router").await?;
    assert_eq!(reply.text, "Delivered to coder");
    assert_eq!(a.next_message().await?["params"]["content"], "the router");

    // Triggers reach agents on any replica too.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", r2.server.base()))
        .json(&json!({"to": "coder", "content": "build 7 failed"}))
        .send()
        .await?;
    assert_eq!(response.status(), 202, "{}", response.text().await?);
    assert_eq!(a.next_message().await?["params"]["meta"]["from"], "webhook");

    // A session lives on one replica: the other answers 404, and the client re-initializes.
    let stray = reqwest::Client::new()
        .post(r2.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &a.session.id)
        .header("mcp-protocol-version", tests::PROTOCOL)
        .json(&json!({"jsonrpc":"2.0","id":9,"method":"tools/list"}))
        .send()
        .await?;
    assert_eq!(stray.status(), 404);
    Ok(())
}

#[tokio::test]
async fn a_name_claimed_on_two_replicas_at_once_goes_to_one() -> Result<()> {
    let redis = Redis::start().await?;
    let r1 = Replica::start(&redis, "r1", &[]).await?;
    let r2 = Replica::start(&redis, "r2", &[]).await?;
    let declared = [("x-agent-name", "planner")];
    let (url1, url2) = (r1.url(), r2.url());
    let (first, second) = tokio::join!(
        Agent::connect_with(&url1, &declared),
        Agent::connect_with(&url2, &declared)
    );
    let (first, second) = (first?, second?);
    let mut names = [first.name.clone(), second.name.clone()];
    names.sort();
    assert_eq!(names[1], "planner", "{names:?}");
    assert!(names[0].starts_with("agent-"), "{names:?}");

    // Renames race the same way: exactly one wins, the other is told it is taken.
    let (one, two) = tokio::join!(
        first.call("rename-agent", json!({"name": "Lead"})),
        second.call("rename-agent", json!({"name": "lead"}))
    );
    let outcomes = [one?, two?];
    let winners = outcomes.iter().filter(|r| !r.is_error).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    let loser = outcomes.iter().find(|r| r.is_error).expect("one lost");
    assert!(loser.text.contains("is taken"), "{}", loser.text);
    let roster = listed(&first).await?;
    assert_eq!(
        roster
            .iter()
            .filter(|n| n.eq_ignore_ascii_case("lead"))
            .count(),
        1,
        "{roster:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_killed_replicas_agents_vanish_within_the_lease() -> Result<()> {
    let redis = Redis::start().await?;
    let r1 = Replica::start(&redis, "r1", &[]).await?;
    let r2 = Replica::start(&redis, "r2", &[]).await?;
    let a = Agent::connect(&r1.url()).await?;
    let b = Agent::connect_with(&r2.url(), &[("x-agent-name", "bob")]).await?;
    assert_eq!(listed(&a).await?, [a.name.as_str(), "bob"]);

    // Dropping the server kills it (SIGKILL): no goodbye, only the lease.
    drop(b);
    drop(r2);
    let failed = a.send("bob", "are you there?").await?;
    assert!(failed.is_error, "{}", failed.text);
    assert!(
        failed.text.contains("not delivered") || failed.text.contains("No agent named \"bob\""),
        "{}",
        failed.text
    );
    eventually(
        Duration::from_millis(LEASE_MS + 2000),
        "bob leaves the listing",
        || async { Ok(listed(&a).await? == [a.name.as_str()]) },
    )
    .await?;
    let gone = a.send("bob", "are you there?").await?;
    assert!(gone.is_error);
    assert_eq!(
        gone.text,
        format!("No agent named \"bob\" is online; online: {}", a.name)
    );
    Ok(())
}

#[tokio::test]
async fn a_replica_that_stops_cleanly_takes_its_agents_along() -> Result<()> {
    let redis = Redis::start().await?;
    let r1 = Replica::start(&redis, "r1", &[]).await?;
    // A lease far longer than the wait below: only the goodbye can explain bob leaving.
    let mut r2 = Replica::start(&redis, "r2", &["--lease-ms", "60000"]).await?;
    let a = Agent::connect(&r1.url()).await?;
    let _b = Agent::connect_with(&r2.url(), &[("x-agent-name", "bob")]).await?;
    assert_eq!(listed(&a).await?, [a.name.as_str(), "bob"]);
    assert!(r2.server.terminate().await?.success());
    eventually(Duration::from_secs(1), "bob leaves the listing", || async {
        Ok(listed(&a).await? == [a.name.as_str()])
    })
    .await
}

#[tokio::test]
async fn delivery_recovers_after_redis_restarts() -> Result<()> {
    let mut redis = Redis::start().await?;
    if !redis.is_private() {
        eprintln!("skipped: restarting Redis needs a private redis-server, and REDIS_URL is set");
        return Ok(());
    }
    let r1 = Replica::start(&redis, "r1", &[]).await?;
    let r2 = Replica::start(&redis, "r2", &[]).await?;
    let a = Agent::connect(&r1.url()).await?;
    let mut b = Agent::connect_with(&r2.url(), &[("x-agent-name", "bob")]).await?;
    assert!(!a.send("bob", "before").await?.is_error);
    assert_eq!(b.next_message().await?["params"]["content"], "before");

    redis.stop().await?;
    let down = a.send("bob", "while Redis is down").await?;
    assert!(down.is_error, "{}", down.text);
    assert!(down.text.contains("unreachable"), "{}", down.text);

    redis.start_again().await?;
    // The replicas reconnect with backoff and register bob again; every
    // attempt until then fails clearly, and none is delivered silently.
    let mut attempts = 0;
    eventually(Duration::from_secs(15), "delivery works again", || {
        attempts += 1;
        let a = &a;
        async move {
            let sent = a.send("bob", &format!("attempt {attempts}")).await?;
            Ok(!sent.is_error)
        }
    })
    .await?;
    let arrived = b.next_message().await?;
    assert_eq!(arrived["params"]["content"], format!("attempt {attempts}"));
    b.expect_silence(Duration::from_millis(200)).await?;
    assert_eq!(listed(&a).await?, [a.name.as_str(), "bob"]);
    Ok(())
}

#[tokio::test]
async fn health_and_metrics_say_when_redis_is_unreachable() -> Result<()> {
    let mut redis = Redis::start().await?;
    if !redis.is_private() {
        eprintln!("skipped: stopping Redis needs a private redis-server, and REDIS_URL is set");
        return Ok(());
    }
    let r1 = Replica::start(&redis, "r1", &[]).await?;
    let get = |path: &str| {
        let url = format!("{}{path}", r1.server.base());
        async move { Ok::<_, anyhow::Error>(tokio::time::timeout(WAIT, reqwest::get(url)).await??) }
    };
    assert_eq!(get("/health").await?.status(), 200);
    let metrics = get("/metrics").await?.text().await?;
    assert!(metrics.contains("\nswitchboard_redis_up 1\n"), "{metrics}");

    redis.stop().await?;
    let health = get("/health").await?;
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await?;
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("Redis") && p.contains("unreachable")),
        "{body}"
    );
    assert_eq!(get("/livez").await?.status(), 200);
    let metrics = get("/metrics").await?.text().await?;
    assert!(metrics.contains("\nswitchboard_redis_up 0\n"), "{metrics}");

    redis.start_again().await?;
    eventually(Duration::from_secs(15), "health is ok again", || async {
        Ok(get("/health").await?.status() == 200)
    })
    .await?;
    Ok(())
}

/// Writes a chain of just the bundled rate limiter: `per_minute` messages per
/// sender, `burst` at once.
fn rate_limited_chain(plugins: &Path, per_minute: u32, burst: u32) -> Result<()> {
    let component = tests::repo_root().join("plugins/target/wasm32-wasip2/release/rate_limit.wasm");
    ensure!(component.is_file(), "{} is missing", component.display());
    std::fs::write(
        plugins.join("chain.toml"),
        format!(
            "[[filter]]\nname = \"rate-limit\"\ncomponent = {:?}\n[filter.config]\nper_sender_per_minute = {per_minute}\nper_sender_burst = {burst}\nper_pair_per_minute = 0\n",
            component.display().to_string()
        ),
    )?;
    Ok(())
}

async fn trigger(replica: &Replica, to: &str, content: &str) -> Result<(u16, Value)> {
    let response = tokio::time::timeout(
        WAIT,
        reqwest::Client::new()
            .post(format!("{}/v1/messages", replica.server.base()))
            .json(&json!({"to": to, "content": content}))
            .send(),
    )
    .await??;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test]
async fn a_rate_limit_holds_across_replicas() -> Result<()> {
    tokio::task::spawn_blocking(tests::ensure_plugins_built).await?;
    let redis = Redis::start().await?;
    let mut replicas = Vec::new();
    for id in ["r1", "r2"] {
        let dir = tempfile::tempdir()?;
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins)?;
        rate_limited_chain(&plugins, 1, 2)?;
        replicas.push(Replica::start_with(&redis, id, dir, plugins, &["--no-build"]).await?);
    }
    let mut bob = Agent::connect_with(&replicas[1].url(), &[("x-agent-name", "bob")]).await?;

    // The sender "webhook" gets a burst of 2 in the whole cluster, not per replica.
    assert_eq!(trigger(&replicas[0], "bob", "one").await?.0, 202);
    assert_eq!(trigger(&replicas[1], "bob", "two").await?.0, 202);
    let (status, body) = trigger(&replicas[1], "bob", "three").await?;
    assert_eq!(status, 429, "{body}");
    let error = body["error"].as_str().context("error text")?;
    assert!(error.starts_with("Rejected by rate-limit"), "{error}");
    let (status, _) = trigger(&replicas[0], "bob", "four").await?;
    assert_eq!(status, 429);
    for expected in ["one", "two"] {
        assert_eq!(bob.next_message().await?["params"]["content"], expected);
    }
    bob.expect_silence(Duration::from_millis(200)).await?;
    Ok(())
}

#[tokio::test]
async fn hot_reload_on_one_replica_leaves_the_others_alone() -> Result<()> {
    tokio::task::spawn_blocking(tests::ensure_plugins_built).await?;
    let redis = Redis::start().await?;
    let mut r1 = Replica::start(&redis, "r1", &["--no-build"]).await?;
    let r2 = Replica::start(&redis, "r2", &["--no-build"]).await?;
    let mut a = Agent::connect(&r1.url()).await?;
    let mut b = Agent::connect(&r2.url()).await?;

    rate_limited_chain(&r1.plugins, 600, 100)?;
    r1.server.wait_log("filter chain loaded").await?;
    let sent = a.send(&b.name, "still here").await?;
    assert_eq!(sent.text, format!("Delivered to {}", b.name));
    assert_eq!(b.next_message().await?["params"]["content"], "still here");
    let sent = b.send(&a.name, "me too").await?;
    assert_eq!(sent.text, format!("Delivered to {}", a.name));
    assert_eq!(a.next_message().await?["params"]["content"], "me too");
    let health = |server: &Server| {
        let url = format!("{}/health", server.base());
        async move { Ok::<Value, anyhow::Error>(reqwest::get(url).await?.json().await?) }
    };
    assert_eq!(
        health(&r1.server).await?["chain"]["filters"],
        json!(["rate-limit"])
    );
    assert_eq!(health(&r2.server).await?["chain"]["filters"], json!([]));
    assert_eq!(listed(&a).await?, listed(&b).await?);
    assert_eq!(listed(&a).await?.len(), 2);
    Ok(())
}

/// Prints p50/p99 of 1000 sequential sends, one process vs across replicas
/// (docs/performance.md, "Cross-replica delivery"). Run with
/// `cargo test --release -p tests --test replicas -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn cross_replica_latency() -> Result<()> {
    const SENDS: usize = 1000;
    async fn measure(a: &Agent, b: &mut Agent) -> Result<(Duration, Duration)> {
        let mut took = Vec::with_capacity(SENDS);
        for i in 0..SENDS {
            let start = Instant::now();
            let sent = a.send(&b.name, &format!("message {i}")).await?;
            ensure!(!sent.is_error, "{}", sent.text);
            b.next_event(WAIT).await?;
            took.push(start.elapsed());
        }
        took.sort();
        Ok((took[SENDS / 2], took[SENDS * 99 / 100]))
    }
    let single = Server::bare(&["--no-build"]).await?;
    let a = Agent::connect(&single.url()).await?;
    let mut b = Agent::connect(&single.url()).await?;
    let (p50, p99) = measure(&a, &mut b).await?;
    println!("single process: p50 {p50:?} p99 {p99:?}");

    let redis = Redis::start().await?;
    let r1 = Replica::start(&redis, "r1", &["--no-build"]).await?;
    let r2 = Replica::start(&redis, "r2", &["--no-build"]).await?;
    let a = Agent::connect(&r1.url()).await?;
    let mut b = Agent::connect(&r2.url()).await?;
    let (p50, p99) = measure(&a, &mut b).await?;
    println!("cross replica:  p50 {p50:?} p99 {p99:?}");
    let mut c = Agent::connect(&r1.url()).await?;
    let (p50, p99) = measure(&a, &mut c).await?;
    println!("same replica, cluster mode: p50 {p50:?} p99 {p99:?}");
    Ok(())
}

/// Short, so a dropped stream is "away" at once rather than waited for.
const GRACE: [&str; 2] = ["--reconnect-grace-ms", "100"];

/// Polls `list-agents` until `name` is listed as away with `waiting` messages.
async fn until_away(observer: &Agent, name: &str, waiting: u64) -> Result<()> {
    let expected = json!({"name": name, "waiting": waiting});
    eventually(
        WAIT,
        &format!("{name} is away with {waiting} waiting"),
        || async {
            let listed = observer.call("list-agents", json!({})).await?;
            let away = listed.structured["away"].as_array().cloned();
            Ok(away.is_some_and(|away| away.contains(&expected)))
        },
    )
    .await
}

/// A new session declaring `name` at `url`, once no replica holds the name
/// any more (the one it left releases it at its next lease round, or its
/// lease lapses if it died). Sessions that got another name are closed.
async fn come_back_as(url: &str, name: &str) -> Result<Agent> {
    let deadline = Instant::now() + WAIT;
    loop {
        let agent = Agent::connect_with(url, &[("x-agent-name", name)]).await?;
        if agent.name == name {
            return Ok(agent);
        }
        agent.session.delete().await?;
        if Instant::now() > deadline {
            bail!("{name} was still held elsewhere after {} s", WAIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn queue(sender: &Agent, to: &str, messages: &[&str]) -> Result<()> {
    for (n, message) in messages.iter().enumerate() {
        let sent = sender.send(to, message).await?;
        ensure!(!sent.is_error, "{message:?} refused: {}", sent.text);
        assert_eq!(sent.structured["queued"], json!(true), "{}", sent.text);
        assert_eq!(sent.structured["waiting"], json!(n + 1), "{}", sent.text);
    }
    Ok(())
}

#[tokio::test]
async fn mail_for_an_agent_that_left_r1_reaches_it_on_r2() -> Result<()> {
    let redis = Redis::start().await?;
    let r1 = Replica::start(&redis, "r1", &GRACE).await?;
    let r2 = Replica::start(&redis, "r2", &GRACE).await?;
    let sender = Agent::connect(&r2.url()).await?;
    let mut bob = Agent::connect_with(&r1.url(), &[("x-agent-name", "bob")]).await?;
    bob.drop_stream();
    until_away(&sender, "bob", 0).await?;
    queue(&sender, "bob", &["one", "two", "three"]).await?;

    let mut back = come_back_as(&r2.url(), "bob").await?;
    let sent = sender.send("bob", "four").await?;
    assert_eq!(sent.text, "Delivered to bob");
    assert_eq!(
        back.next_contents(4).await?,
        ["one", "two", "three", "four"]
    );
    back.expect_silence(Duration::from_millis(300)).await?;
    drop(bob);
    Ok(())
}

#[tokio::test]
async fn mail_outlives_the_replica_that_queued_it() -> Result<()> {
    let redis = Redis::start().await?;
    let mut r1 = Replica::start(&redis, "r1", &GRACE).await?;
    let r2 = Replica::start(&redis, "r2", &GRACE).await?;
    let sender = Agent::connect(&r1.url()).await?;
    let mut bob = Agent::connect_with(&r1.url(), &[("x-agent-name", "bob")]).await?;
    bob.drop_stream();
    until_away(&sender, "bob", 0).await?;
    queue(&sender, "bob", &["one", "two"]).await?;
    r1.server.kill().await?;

    let mut back = come_back_as(&r2.url(), "bob").await?;
    assert_eq!(back.next_contents(2).await?, ["one", "two"]);
    back.expect_silence(Duration::from_millis(300)).await?;
    drop(bob);
    Ok(())
}
