//! Mail for agents that are away, end to end: queued while they are gone,
//! delivered first and in order when their stream opens again, kept across
//! a clean restart and a crash, dropped after the TTL, refused past the caps.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tests::{Agent, Server, WAIT};
use tokio::time::timeout;

/// Short, so a dropped stream is "away" at once rather than waited for.
const GRACE: &[&str] = &["--reconnect-grace-ms", "100"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    GRACE.iter().copied().chain(extra.iter().copied()).collect()
}

/// Polls `list-agents` until `name` is listed as away with `waiting` messages
/// (others may be away too: after a restart, every agent is until it is back).
async fn until_away(observer: &Agent, name: &str, waiting: u64) -> Result<()> {
    let expected = json!({"name": name, "waiting": waiting});
    timeout(WAIT, async {
        loop {
            let listed = observer.call("list-agents", json!({})).await?;
            let away = listed.structured["away"].as_array().cloned();
            if away.is_some_and(|away| away.contains(&expected)) {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .with_context(|| format!("{name} was not listed away with {waiting} waiting"))?
}

/// Queues `messages` from `sender` to `to`, checking each answer.
async fn queue(sender: &Agent, to: &str, messages: &[&str]) -> Result<()> {
    for (n, message) in messages.iter().enumerate() {
        let sent = sender.send(to, message).await?;
        let waiting = n + 1;
        if sent.is_error {
            bail!("{message:?} refused: {}", sent.text);
        }
        assert_eq!(
            sent.text,
            format!(
                "{to} is away; queued, it will be delivered when {to} reconnects ({waiting} waiting)"
            )
        );
        assert_eq!(sent.structured["queued"], json!(true));
        assert_eq!(sent.structured["waiting"], json!(waiting));
        assert!(sent.structured.get("delivered_to").is_none());
    }
    Ok(())
}

#[tokio::test]
async fn mail_for_an_agent_that_is_away_arrives_first_and_in_order() -> Result<()> {
    let server = Server::bare(&args(&[])).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut coder = Agent::connect_with(&server.url(), &[("x-agent-name", "coder")]).await?;
    coder.drop_stream();
    until_away(&sender, "coder", 0).await?;

    queue(&sender, "coder", &["one", "two", "three"]).await?;
    let listed = sender.call("list-agents", json!({})).await?;
    assert_eq!(listed.structured["agents"], json!([sender.name]));
    assert!(
        listed
            .text
            .ends_with("away, messages to them are queued: coder (3 waiting)"),
        "{}",
        listed.text
    );

    // Back on the same session: the mail comes first, then what is new.
    coder.reopen_stream(false).await?;
    let sent = sender.send("coder", "four").await?;
    assert_eq!(sent.text, "Delivered to coder");
    assert_eq!(
        coder.next_contents(4).await?,
        ["one", "two", "three", "four"]
    );
    coder.expect_silence(Duration::from_millis(300)).await?;
    assert_eq!(
        sender.call("list-agents", json!({})).await?.structured["away"],
        Value::Null,
        "nobody is away"
    );

    // The session ends for good; a new one declaring the name gets the mail.
    coder.drop_stream();
    until_away(&sender, "coder", 0).await?;
    assert!(coder.session.delete().await?.is_success());
    queue(&sender, "coder", &["five", "six"]).await?;
    let mut again = Agent::connect_with(&server.url(), &[("x-agent-name", "coder")]).await?;
    assert_eq!(again.name, "coder");
    assert_eq!(again.next_contents(2).await?, ["five", "six"]);
    again.expect_silence(Duration::from_millis(300)).await?;
    Ok(())
}

#[tokio::test]
async fn a_renamed_agent_keeps_mail_and_agent_n_only_while_its_session_lives() -> Result<()> {
    let server = Server::bare(&args(&[])).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut auto = Agent::connect(&server.url()).await?;
    let auto_name = auto.name.clone();
    auto.drop_stream();
    until_away(&sender, &auto_name, 0).await?;
    queue(&sender, &auto_name, &["kept while the session lives"]).await?;
    assert!(auto.session.delete().await?.is_success());
    let gone = sender.send(&auto_name, "and now?").await?;
    assert!(gone.is_error, "{}", gone.text);
    assert!(gone.text.starts_with("No agent named"), "{}", gone.text);

    // A name claimed with rename-agent keeps its mail; whoever claims it next gets it.
    let planner = Agent::connect(&server.url()).await?;
    let renamed = planner
        .call("rename-agent", json!({"name": "planner"}))
        .await?;
    assert!(!renamed.is_error, "{}", renamed.text);
    assert!(planner.session.delete().await?.is_success());
    until_away(&sender, "planner", 0).await?;
    queue(&sender, "planner", &["for the planner"]).await?;
    let mut successor = Agent::connect(&server.url()).await?;
    let renamed = successor
        .call("rename-agent", json!({"name": "planner"}))
        .await?;
    assert!(!renamed.is_error, "{}", renamed.text);
    assert_eq!(successor.next_contents(1).await?, ["for the planner"]);
    Ok(())
}

/// A private state folder with an empty chain, for servers that restart.
fn plugins_in(dir: &Path) -> Result<std::path::PathBuf> {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::write(plugins.join("chain.toml"), "")?;
    Ok(plugins)
}

async fn mail_survives(crash: bool) -> Result<()> {
    let state = tempfile::tempdir()?;
    let plugins = plugins_in(state.path())?;
    let mut server = Server::launch(&plugins, state.path(), 0, GRACE).await?;
    let port = server.port;
    let sender = Agent::connect(&server.url()).await?;
    let mut coder = Agent::connect_with(&server.url(), &[("x-agent-name", "coder")]).await?;
    coder.drop_stream();
    until_away(&sender, "coder", 0).await?;
    queue(&sender, "coder", &["one", "two", "three"]).await?;
    if crash {
        server.kill().await?;
    } else {
        assert!(server.terminate().await?.success());
    }

    let mut server = Server::launch(&plugins, state.path(), port, GRACE).await?;
    let observer = Agent::connect(&server.url()).await?;
    until_away(&observer, "coder", 3).await?;
    // What Claude Code does after a restart: re-open the old session's stream.
    coder.reopen_stream(false).await?;
    assert_eq!(coder.whoami().await?, "coder");
    assert_eq!(coder.next_contents(3).await?, ["one", "two", "three"]);
    coder.expect_silence(Duration::from_millis(300)).await?;
    server.kill().await?;

    // Delivered means gone from the journal: a second restart brings nothing back.
    let server = Server::launch(&plugins, state.path(), port, GRACE).await?;
    let observer = Agent::connect(&server.url()).await?;
    let listed = observer.call("list-agents", json!({})).await?;
    let waiting: u64 = listed.structured["away"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["waiting"].as_u64())
        .sum();
    assert_eq!(waiting, 0, "{}", listed.text);
    Ok(())
}

#[tokio::test]
async fn queued_mail_survives_a_sigterm_restart() -> Result<()> {
    mail_survives(false).await
}

#[tokio::test]
async fn queued_mail_survives_kill_9() -> Result<()> {
    mail_survives(true).await
}

async fn health(server: &Server) -> Result<Value> {
    Ok(reqwest::get(format!("{}/health", server.base()))
        .await?
        .json()
        .await?)
}

#[tokio::test]
async fn mail_past_the_ttl_is_dropped_and_counted() -> Result<()> {
    let server = Server::bare(&args(&["--inbox-ttl", "500ms"])).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut coder = Agent::connect_with(&server.url(), &[("x-agent-name", "coder")]).await?;
    coder.drop_stream();
    until_away(&sender, "coder", 0).await?;
    queue(&sender, "coder", &["stale soon"]).await?;
    // Listing drops what expired; the agent stays away, with nothing waiting.
    timeout(WAIT, async {
        loop {
            if health(&server).await?["inbox"]["expired"] == json!(1) {
                return Ok::<_, anyhow::Error>(());
            }
            sender.call("list-agents", json!({})).await?;
        }
    })
    .await
    .context("the message did not expire")??;
    assert_eq!(health(&server).await?["inbox"]["waiting"], json!(0));
    coder.reopen_stream(false).await?;
    coder.expect_silence(Duration::from_millis(500)).await?;
    Ok(())
}

#[tokio::test]
async fn full_inboxes_refuse_naming_the_limit() -> Result<()> {
    let server = Server::bare(&args(&[
        "--inbox-max-messages",
        "2",
        "--inbox-max-bytes",
        "1000",
    ]))
    .await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut coder = Agent::connect_with(&server.url(), &[("x-agent-name", "coder")]).await?;
    let mut big = Agent::connect_with(&server.url(), &[("x-agent-name", "big")]).await?;
    coder.drop_stream();
    big.drop_stream();
    timeout(WAIT, async {
        loop {
            let listed = sender.call("list-agents", json!({})).await?;
            if listed.structured["away"].as_array().map(Vec::len) == Some(2) {
                return Ok::<_, anyhow::Error>(());
            }
        }
    })
    .await??;

    queue(&sender, "coder", &["one", "two"]).await?;
    let full = sender.send("coder", "three").await?;
    assert!(full.is_error);
    assert_eq!(
        full.text,
        "The recipient coder is away and its inbox is full (2 messages waiting, the limit set by --inbox-max-messages); the message was not queued"
    );
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base()))
        .json(&json!({"to": "coder", "content": "from CI"}))
        .send()
        .await?;
    assert_eq!(response.status(), 503);

    queue(&sender, "big", &[&"x".repeat(500)]).await?;
    let over = sender.send("big", &"y".repeat(500)).await?;
    assert!(over.is_error);
    assert!(over.text.contains("--inbox-max-bytes"), "{}", over.text);

    // What was refused never arrives; what was queued does.
    coder.reopen_stream(false).await?;
    assert_eq!(coder.next_contents(2).await?, ["one", "two"]);
    coder.expect_silence(Duration::from_millis(300)).await?;
    Ok(())
}

#[tokio::test]
async fn all_inboxes_together_and_their_number_are_bounded() -> Result<()> {
    let server = Server::bare(&args(&[
        "--inbox-max-total-bytes",
        "1500",
        "--max-inboxes",
        "2",
    ]))
    .await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut away = Vec::new();
    for name in ["coder", "planner"] {
        let mut agent = Agent::connect_with(&server.url(), &[("x-agent-name", name)]).await?;
        agent.drop_stream();
        until_away(&sender, name, 0).await?;
        away.push(agent);
    }
    // Each inbox has room for this; both together do not.
    queue(&sender, "coder", &[&"x".repeat(800)]).await?;
    let over = sender.send("planner", &"y".repeat(800)).await?;
    assert!(over.is_error);
    assert_eq!(
        over.text,
        "The recipient planner is away and the server's inboxes hold 1500 bytes in all (the limit set by --inbox-max-total-bytes); the message was not queued"
    );

    // A third name: planner's inbox is empty and makes room for it.
    let mut reviewer = Agent::connect_with(&server.url(), &[("x-agent-name", "reviewer")]).await?;
    reviewer.drop_stream();
    until_away(&sender, "reviewer", 0).await?;
    let listed = sender.call("list-agents", json!({})).await?;
    assert_eq!(
        listed.structured["away"],
        json!([{"name": "coder", "waiting": 1}, {"name": "reviewer", "waiting": 0}])
    );
    Ok(())
}

#[tokio::test]
async fn a_rename_is_kept_through_a_kill_9_right_after_it() -> Result<()> {
    let state = tempfile::tempdir()?;
    let plugins = plugins_in(state.path())?;
    let mut server = Server::launch(&plugins, state.path(), 0, GRACE).await?;
    let port = server.port;
    let mut agent = Agent::connect(&server.url()).await?;
    let renamed = agent.call("rename-agent", json!({"name": "coder"})).await?;
    ensure!(!renamed.is_error, "{}", renamed.text);
    server.kill().await?;

    let _server = Server::launch(&plugins, state.path(), port, GRACE).await?;
    agent.reopen_stream(false).await?;
    assert_eq!(agent.whoami().await?, "coder");
    Ok(())
}
