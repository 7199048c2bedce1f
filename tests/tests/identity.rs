//! Stable names, authentication, origin checks and the HTTP trigger, end to
//! end against the real binary.

use anyhow::Result;
use serde_json::{Value, json};
use tests::{Agent, Server, Session};

/// An auth file with tokens for planner and coder (agents), ci (trigger),
/// root (admin).
fn auth_file(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let path = dir.join("auth.toml");
    tests::write_auth_file(
        &path,
        &[
            ("planner", "agent"),
            ("coder", "agent"),
            ("ci", "trigger"),
            ("root", "admin"),
        ],
    )?;
    Ok(path)
}

#[tokio::test]
async fn declared_names_stick_and_conflicts_fall_back_with_a_reason() -> Result<()> {
    let state = tempfile::tempdir()?;
    let plugins = state.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::write(plugins.join("chain.toml"), "")?;
    let mut server = Server::launch(&plugins, state.path(), 0, &[]).await?;
    let port = server.port;

    let planner = Agent::connect_with(&server.url(), &[("X-Agent-Name", "planner")]).await?;
    assert_eq!(planner.name, "planner");
    let twin = Agent::connect_with(&server.url(), &[("X-Agent-Name", "planner")]).await?;
    assert_eq!(twin.name, "agent-1");
    let listed = twin.call("list-agents", json!({})).await?;
    assert!(
        listed.text.contains("held by another online agent"),
        "{}",
        listed.text
    );
    let bad = Agent::connect_with(&server.url(), &[("X-Agent-Name", "no spaces allowed")]).await?;
    assert!(bad.name.starts_with("agent-"));
    assert!(
        bad.call("list-agents", json!({}))
            .await?
            .text
            .contains("not a valid name")
    );

    // A restart, then a brand-new session (the client re-initializes) with the same header.
    assert!(server.terminate().await?.success());
    drop((planner, twin, bad));
    let server = Server::launch(&plugins, state.path(), port, &[]).await?;
    let again = Agent::connect_with(&server.url(), &[("X-Agent-Name", "planner")]).await?;
    assert_eq!(again.name, "planner");
    Ok(())
}

#[tokio::test]
async fn tokens_gate_mcp_and_fix_names() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let auth = auth_file(dir.path())?;
    let server = Server::bare(&["--auth", auth.to_str().unwrap()]).await?;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}});

    for token in [None, Some("wrong")] {
        let mut request = http
            .post(server.url())
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(response.headers().get("www-authenticate").is_some());
    }
    let trigger_on_mcp = http
        .post(server.url())
        .header("accept", "application/json, text/event-stream")
        .bearer_auth("tok-ci")
        .json(&init)
        .send()
        .await?;
    assert_eq!(trigger_on_mcp.status(), 403);

    let planner =
        Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-planner")]).await?;
    assert_eq!(planner.name, "planner", "the token's name wins");
    let renamed = planner
        .call("rename-agent", json!({"name": "boss"}))
        .await?;
    assert!(
        renamed.is_error && renamed.text.contains("fixed"),
        "{}",
        renamed.text
    );

    // Someone else cannot take or declare the name, nor ride on planner's session.
    let coder = Agent::connect_with(
        &server.url(),
        &[
            ("Authorization", "Bearer tok-coder"),
            ("X-Agent-Name", "planner"),
        ],
    )
    .await?;
    assert_eq!(coder.name, "coder");
    let taken = coder
        .call("rename-agent", json!({"name": "PLANNER"}))
        .await?;
    assert!(taken.is_error, "{}", taken.text);
    let hijack = http
        .post(server.url())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &planner.session.id)
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth("tok-coder")
        .json(
            &json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
            "name":"send-message","arguments":{"to":"coder","message":"from planner, honest"}}}),
        )
        .send()
        .await?;
    assert_eq!(hijack.status(), 403);

    // Admins may use MCP too.
    let root = Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-root")]).await?;
    assert_eq!(root.name, "root");
    Ok(())
}

#[tokio::test]
async fn foreign_browser_origins_are_refused() -> Result<()> {
    let server = Server::bare(&["--allow-origin", "http://localhost:6274"]).await?;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}});
    let foreign = http
        .post(server.url())
        .header("accept", "application/json, text/event-stream")
        .header("origin", "http://evil.example")
        .json(&init)
        .send()
        .await?;
    assert_eq!(foreign.status(), 403);
    assert!(foreign.text().await?.contains("--allow-origin"));
    let trigger = http
        .post(format!("{}/v1/messages", server.base()))
        .header("origin", "http://evil.example")
        .json(&json!({"to": "agent-1", "content": "x"}))
        .send()
        .await?;
    assert_eq!(trigger.status(), 403);
    let allowed = http
        .post(server.url())
        .header("accept", "application/json, text/event-stream")
        .header("origin", "http://localhost:6274")
        .json(&init)
        .send()
        .await?;
    assert_eq!(allowed.status(), 200);
    Ok(())
}

async fn post_trigger(server: &Server, token: Option<&str>, body: Value) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base()))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn the_trigger_delivers_through_the_bus_and_reports_each_error() -> Result<()> {
    let server = Server::bare(&["--max-message-bytes", "100"]).await?;
    let mut agent = Agent::connect(&server.url()).await?;

    let (status, body) = post_trigger(
        &server,
        None,
        json!({"to": "agent-1", "content": "build 42 failed", "meta": {"build": "42"}}),
    )
    .await?;
    assert_eq!(status, 202, "{body}");
    assert!(body["id"].is_string());
    let message = agent.next_message().await?;
    assert_eq!(
        message["params"],
        json!({"content": "build 42 failed", "meta": {
            "from": "webhook", "to": "agent-1", "kind": "webhook", "severity": "info", "build": "42"}})
    );

    for (body, status) in [
        (json!({"to": "agent-1"}), 400),
        (
            json!({"to": "agent-1", "content": "x", "meta": {"bad-key": "v"}}),
            400,
        ),
        (
            json!({"to": "agent-1", "content": "x", "meta": {"from": "ceo"}}),
            400,
        ),
        (
            json!({"to": "agent-1", "content": "x", "meta": {"source": "ceo"}}),
            400,
        ),
        (json!({"to": "agent-1", "content": ""}), 400),
        (json!({"to": "nobody", "content": "x"}), 404),
        (json!({"to": "agent-1", "content": "x".repeat(101)}), 413),
    ] {
        let (got, reply) = post_trigger(&server, None, body.clone()).await?;
        assert_eq!(got, status, "{body} -> {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    let not_json = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base()))
        .body("{not json")
        .send()
        .await?;
    assert_eq!(not_json.status(), 400);

    let agents: Value = reqwest::get(format!("{}/v1/agents", server.base()))
        .await?
        .json()
        .await?;
    assert_eq!(agents, json!({"agents": ["agent-1"]}));
    agent
        .expect_silence(std::time::Duration::from_millis(200))
        .await?;
    Ok(())
}

#[tokio::test]
async fn with_auth_triggers_need_a_trigger_token_and_sign_as_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let auth = auth_file(dir.path())?;
    let server = Server::bare(&["--auth", auth.to_str().unwrap()]).await?;
    let mut planner =
        Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-planner")]).await?;
    let body = json!({"to": "planner", "content": "deploy finished"});
    assert_eq!(post_trigger(&server, None, body.clone()).await?.0, 401);
    assert_eq!(
        post_trigger(&server, Some("nope"), body.clone()).await?.0,
        401
    );
    assert_eq!(
        post_trigger(&server, Some("tok-coder"), body.clone())
            .await?
            .0,
        403
    );
    assert_eq!(post_trigger(&server, Some("tok-ci"), body).await?.0, 202);
    let message = planner.next_message().await?;
    assert_eq!(message["params"]["meta"]["from"], "ci");
    Ok(())
}

#[tokio::test]
async fn a_session_that_never_streams_cannot_exceed_limits() -> Result<()> {
    let server = Server::bare(&["--max-agents", "1"]).await?;
    let _first = Agent::connect(&server.url()).await?;
    let second = Session::open(&server.url()).await?;
    let refused = second.into_agent().await;
    let error = refused.err().expect("second agent refused").to_string();
    assert!(error.contains("503"), "{error}");
    Ok(())
}
