//! The core bus end to end: agents, names, delivery, ordering, reconnects,
//! restarts and shutdown, against the real binary.

use std::{collections::HashMap, time::Duration};

use anyhow::Result;
use serde_json::{Value, json};
use tests::{Agent, Server, Session, WAIT};
use tokio::{io::AsyncWriteExt, time::timeout};

#[tokio::test]
async fn three_agents_list_rename_and_talk() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let a = Agent::connect(&server.url()).await?;
    let mut b = Agent::connect(&server.url()).await?;
    let mut c = Agent::connect(&server.url()).await?;
    assert_eq!(
        [&a.name, &b.name, &c.name],
        ["agent-1", "agent-2", "agent-3"]
    );

    for agent in [&a, &b, &c] {
        let listed = agent.call("list-agents", json!({})).await?;
        assert_eq!(
            listed.text,
            format!(
                "Connected agents: agent-1, agent-2, agent-3 (you are {})",
                agent.name
            )
        );
        assert_eq!(
            listed.structured["agents"],
            json!(["agent-1", "agent-2", "agent-3"])
        );
        assert_eq!(listed.structured["you"], json!(agent.name));
    }

    let renamed = a.call("rename-agent", json!({"name": "coder"})).await?;
    assert!(!renamed.is_error);
    assert_eq!(renamed.text, "Renamed from agent-1 to coder");
    let taken = b.call("rename-agent", json!({"name": "CODER"})).await?;
    assert!(taken.is_error);
    assert!(taken.text.contains("taken"), "{}", taken.text);
    for bad in ["", "has space", "ünï", &"x".repeat(33)] {
        let invalid = b.call("rename-agent", json!({"name": bad})).await?;
        assert!(invalid.is_error, "{bad:?} accepted");
        assert!(invalid.text.contains("1-32 characters"), "{}", invalid.text);
    }

    let sent = a.send("agent-2", "hey, what are you working on?").await?;
    assert!(!sent.is_error, "{}", sent.text);
    assert_eq!(sent.text, "Delivered to agent-2");
    let event = b.next_event(WAIT).await?;
    assert_eq!(
        event.data,
        r#"{"jsonrpc":"2.0","method":"notifications/claude/channel","params":{"content":"hey, what are you working on?","meta":{"from":"coder","to":"agent-2","kind":"agent-message","severity":"info"}}}"#
    );
    c.expect_silence(Duration::from_millis(300)).await?;

    // Names resolve case-insensitively; `from` is the server's record of the caller.
    b.send("Coder", "ack").await?;
    let mut a = a;
    let reply = a.next_message().await?;
    assert_eq!(reply["params"]["meta"]["from"], "agent-2");
    assert_eq!(reply["params"]["meta"]["to"], "coder");
    Ok(())
}

#[tokio::test]
async fn send_errors_say_what_is_wrong() -> Result<()> {
    let server = Server::bare(&["--max-message-bytes", "1024"]).await?;
    let a = Agent::connect(&server.url()).await?;
    let _b = Agent::connect(&server.url()).await?;

    let unknown = a.send("ghost", "hello").await?;
    assert!(unknown.is_error);
    assert_eq!(
        unknown.text,
        "No agent named \"ghost\" is online; online: agent-1, agent-2"
    );
    let empty = a.send("agent-2", "").await?;
    assert!(
        empty.is_error && empty.text.contains("empty"),
        "{}",
        empty.text
    );
    let big = a.send("agent-2", &"x".repeat(1025)).await?;
    assert!(big.is_error);
    assert!(big.text.contains("limit of 1024 bytes"), "{}", big.text);
    let exact = a.send("agent-2", &"x".repeat(1024)).await?;
    assert!(!exact.is_error, "{}", exact.text);
    let yourself = a.send("agent-1", "hi me").await?;
    assert!(
        yourself.is_error && yourself.text.contains("is you"),
        "{}",
        yourself.text
    );
    Ok(())
}

#[tokio::test]
async fn sessions_without_a_stream_are_not_agents() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let a = Agent::connect(&server.url()).await?;
    let lurker = Session::open(&server.url()).await?;

    let listed = lurker.call("list-agents", json!({})).await?;
    assert_eq!(listed.structured["agents"], json!(["agent-1"]));
    assert_eq!(listed.structured["you"], Value::Null);
    let sent = lurker
        .call("send-message", json!({"to": "agent-1", "message": "hi"}))
        .await?;
    assert!(
        sent.is_error && sent.text.contains("not an agent"),
        "{}",
        sent.text
    );
    let renamed = lurker.call("rename-agent", json!({"name": "x"})).await?;
    assert!(renamed.is_error, "{}", renamed.text);
    assert_eq!(a.whoami().await?, "agent-1");
    Ok(())
}

async fn wait_until_listed(observer: &Agent, expected: Value) -> Result<()> {
    timeout(Duration::from_secs(1), async {
        loop {
            let listed = observer.call("list-agents", json!({})).await?;
            if listed.structured["agents"] == expected {
                return Ok::<_, anyhow::Error>(());
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("roster did not become {expected} within 1 s"))?
}

#[tokio::test]
async fn disconnect_and_delete_take_agents_offline() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let a = Agent::connect(&server.url()).await?;
    let mut b = Agent::connect(&server.url()).await?;
    let c = Agent::connect(&server.url()).await?;

    b.drop_stream();
    wait_until_listed(&a, json!(["agent-1", "agent-3"])).await?;

    assert!(c.session.delete().await?.is_success());
    wait_until_listed(&a, json!(["agent-1"])).await?;

    // A session that re-opens its stream keeps its name.
    b.reopen_stream(false).await?;
    wait_until_listed(&a, json!(["agent-1", "agent-2"])).await?;
    assert_eq!(b.whoami().await?, "agent-2");
    Ok(())
}

#[tokio::test]
async fn hundred_senders_fifty_messages_each_arrive_once_in_order() -> Result<()> {
    const SENDERS: usize = 100;
    const EACH: usize = 50;
    let server = Server::bare(&[]).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(Agent::connect(&server.url()).await?);
    }
    let to = recipient.name.clone();
    let sending = senders.into_iter().map(|sender| {
        let to = to.clone();
        tokio::spawn(async move {
            for n in 0..EACH {
                let sent = sender.send(&to, &format!("{}#{n}", sender.name)).await?;
                anyhow::ensure!(!sent.is_error, "{}", sent.text);
            }
            Ok(())
        })
    });
    let sending = futures::future::join_all(sending);

    let receiving = async {
        let mut next_expected: HashMap<String, usize> = HashMap::new();
        for _ in 0..SENDERS * EACH {
            let message = recipient.next_message().await?;
            let content = message["params"]["content"].as_str().unwrap_or_default();
            let (from, n) = content.split_once('#').expect("name#n");
            assert_eq!(message["params"]["meta"]["from"], from);
            let expected = next_expected.entry(from.to_owned()).or_default();
            assert_eq!(
                n.parse::<usize>()?,
                *expected,
                "order or duplicate from {from}"
            );
            *expected += 1;
        }
        Ok::<_, anyhow::Error>(next_expected)
    };
    let (sent, received) = timeout(Duration::from_secs(120), async {
        tokio::join!(sending, receiving)
    })
    .await?;
    for result in sent {
        result??;
    }
    let received = received?;
    assert_eq!(received.len(), SENDERS);
    assert!(received.values().all(|&n| n == EACH));
    recipient.expect_silence(Duration::from_millis(200)).await?;
    Ok(())
}

#[tokio::test]
async fn reopened_stream_resumes_exactly_without_duplicates() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    let to = recipient.name.clone();

    let mut seen = Vec::new();
    for round in 0..5 {
        for n in 0..10 {
            let sent = sender.send(&to, &format!("{}", round * 10 + n)).await?;
            assert!(!sent.is_error, "{}", sent.text);
        }
        // Read a few, then the connection drops with the rest unread or in
        // flight; the client resumes from the last id it saw.
        for _ in 0..3 {
            seen.push(
                recipient.next_message().await?["params"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        recipient.reopen_stream(true).await?;
    }
    while seen.len() < 50 {
        seen.push(
            recipient.next_message().await?["params"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let expected: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    assert_eq!(seen, expected);
    recipient.expect_silence(Duration::from_millis(300)).await?;
    Ok(())
}

#[tokio::test]
async fn sends_during_a_reconnect_wait_for_the_stream_instead_of_failing() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    let to = recipient.name.clone();
    recipient.drop_stream();
    let send = tokio::spawn(async move { sender.send(&to, "while you were away").await });
    recipient.reopen_stream(true).await?;
    let sent = timeout(WAIT, send).await???;
    assert_eq!(sent.text, format!("Delivered to {}", recipient.name));
    assert_eq!(
        recipient.next_message().await?["params"]["content"],
        "while you were away"
    );
    Ok(())
}

#[tokio::test]
async fn a_reader_that_stalls_never_blocks_senders() -> Result<()> {
    let server = Server::bare(&["--queue-depth", "8"]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let bystander = Agent::connect(&server.url()).await?;
    // A client that opens its GET stream and then never reads a byte.
    let stalled = Session::open(&server.url()).await?;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await?;
    socket
        .write_all(
            format!(
                "GET /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\nmcp-session-id: {}\r\nmcp-protocol-version: 2025-11-25\r\n\r\n",
                stalled.id
            )
            .as_bytes(),
        )
        .await?;
    let stalled_name = timeout(WAIT, async {
        loop {
            let listed = bystander.call("list-agents", json!({})).await?;
            if let Some(name) = listed.structured["agents"]
                .as_array()
                .and_then(|a| a.get(2))
            {
                return Ok::<_, anyhow::Error>(name.as_str().unwrap_or_default().to_owned());
            }
            tokio::task::yield_now().await;
        }
    })
    .await??;

    let big = "y".repeat(60 * 1024);
    let mut refused = None;
    for attempt in 0..5000 {
        let sent = timeout(WAIT, sender.send(&stalled_name, &big)).await??;
        if sent.is_error {
            refused = Some((attempt, sent.text));
            break;
        }
    }
    let (attempt, text) = refused.expect("the stalled outbox fills up");
    assert!(text.contains("unread messages waiting"), "{text}");
    assert!(attempt > 8, "refused after {attempt}");
    // Everyone else is unaffected.
    let mut bystander = bystander;
    let sent = timeout(
        Duration::from_secs(2),
        sender.send(&bystander.name, "still here"),
    )
    .await??;
    assert!(!sent.is_error, "{}", sent.text);
    assert_eq!(
        bystander.next_message().await?["params"]["content"],
        "still here"
    );
    drop(socket);
    Ok(())
}

#[tokio::test]
async fn initialize_offers_a_channel_on_a_legacy_protocol() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let http = reqwest::Client::new();
    let response = http
        .post(server.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}))
        .send()
        .await?;
    let body = response.text().await?;
    assert!(body.contains(r#""protocolVersion":"2025-11-25""#), "{body}");
    assert!(
        body.contains(r#""experimental":{"claude/channel":{}}"#),
        "{body}"
    );

    // Claude Code's opening probe must be refused so it falls back to initialize.
    let discover = http
        .post(server.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .json(
            &json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{}}}}),
        )
        .send()
        .await?;
    let status = discover.status();
    let body = discover.text().await?;
    assert!(
        !status.is_success() || body.contains(r#""error""#),
        "discover was answered: {status} {body}"
    );
    assert!(!body.contains("2026-07-28\"]"), "{body}");

    let session = Session::open(&server.url()).await?;
    let instructions = session.initialize_result["result"]["instructions"]
        .as_str()
        .unwrap();
    assert!(instructions.contains("untrusted"));
    let tools = session.request("tools/list", json!({})).await?;
    let mut names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["list-agents", "rename-agent", "send-message"]);
    Ok(())
}

#[tokio::test]
async fn names_survive_a_server_restart() -> Result<()> {
    let state = tempfile::tempdir()?;
    let plugins = state.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::write(plugins.join("chain.toml"), "")?;
    let mut server = Server::launch(&plugins, state.path(), 0, &[]).await?;
    let port = server.port;
    let mut a = Agent::connect(&server.url()).await?;
    let b = Agent::connect(&server.url()).await?;
    a.call("rename-agent", json!({"name": "planner"})).await?;
    assert!(server.terminate().await?.success());

    let server = Server::launch(&plugins, state.path(), port, &[]).await?;
    let newcomer = Agent::connect(&server.url()).await?;
    assert_eq!(
        newcomer.name, "agent-3",
        "agent-1 and agent-2 were given out before the restart"
    );
    // Sent before the agent is back: it waits for the agent's stream.
    let mut early = tokio::spawn(async move { newcomer.send("planner", "welcome back").await });
    assert!(
        timeout(Duration::from_millis(300), &mut early)
            .await
            .is_err(),
        "the send waits instead of failing"
    );
    // What Claude Code does: re-open the stream of its old session.
    a.reopen_stream(false).await?;
    assert_eq!(a.whoami().await?, "planner");
    let sent = timeout(WAIT, early).await???;
    assert!(!sent.is_error, "{}", sent.text);
    assert_eq!(a.next_message().await?["params"]["content"], "welcome back");
    let sent = b
        .session
        .call("send-message", json!({"to": "planner", "message": "back?"}))
        .await?;
    assert!(sent.is_error, "b has no stream yet: {}", sent.text);
    let mut b = b;
    b.reopen_stream(false).await?;
    let sent = b.send("planner", "back?").await?;
    assert!(!sent.is_error, "{}", sent.text);
    assert_eq!(a.next_message().await?["params"]["meta"]["from"], "agent-2");
    drop(server);
    Ok(())
}

#[tokio::test]
async fn sigterm_closes_streams_and_exits_zero() -> Result<()> {
    let mut server = Server::bare(&[]).await?;
    let mut a = Agent::connect(&server.url()).await?;
    let status = server.terminate().await?;
    assert!(status.success(), "{status}");
    let closed = timeout(WAIT, async {
        loop {
            if a.next_event(WAIT).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "stream still open after shutdown");
    Ok(())
}

#[tokio::test]
async fn streams_closed_at_shutdown_ask_to_wait_out_a_restart() -> Result<()> {
    let mut server = Server::bare(&[]).await?;
    let session = Session::open(&server.url()).await?;
    let stream = reqwest::Client::new()
        .get(server.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await?;
    assert!(stream.status().is_success());
    assert!(server.terminate().await?.success());
    let body = timeout(WAIT, stream.text()).await??;
    // Claude Code re-opens after the last retry hint; twice refused, it
    // starts a new session, which would be a new agent.
    let last_event = body.trim_end().rsplit("\n\n").next().unwrap_or_default();
    let retry = last_event
        .lines()
        .find_map(|line| line.strip_prefix("retry:"))
        .map(str::trim);
    assert_eq!(
        retry,
        Some("3000"),
        "the last event is a 3 s retry hint: {body:?}"
    );
    Ok(())
}

#[tokio::test]
async fn clear_errors_at_startup() -> Result<()> {
    let output = tokio::process::Command::new(tests::binary())
        .args(["--port", "0", "--plugins", "/nonexistent-plugins"])
        .output()
        .await?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("plugins folder"), "{stderr}");

    // A plugins folder without chain.toml (a wrong path) is refused, not run unfiltered.
    let empty = tempfile::tempdir()?;
    let output = tokio::process::Command::new(tests::binary())
        .args(["--port", "0", "--plugins"])
        .arg(empty.path())
        .output()
        .await?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no chain file at") && stderr.contains("--no-filters"),
        "{stderr}"
    );

    let server = Server::bare(&[]).await?;
    let output = tokio::process::Command::new(tests::binary())
        .args(["--port", &server.port.to_string(), "--plugins"])
        .arg(tests::repo_root().join("plugins"))
        .output()
        .await?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn a_real_mcp_client_sees_the_tools() -> Result<()> {
    use rmcp::{ServiceExt, transport::StreamableHttpClientTransport};
    let server = Server::bare(&[]).await?;
    let client = timeout(
        WAIT,
        ().serve(StreamableHttpClientTransport::from_uri(server.url())),
    )
    .await??;
    let info = client.peer_info().expect("initialized");
    assert_eq!(info.protocol_version.as_str(), "2025-11-25");
    let tools = timeout(WAIT, client.list_all_tools()).await??;
    assert_eq!(tools.len(), 3);
    let listed = timeout(
        WAIT,
        client.call_tool(rmcp::model::CallToolRequestParams::new("list-agents")),
    )
    .await??;
    assert_ne!(listed.is_error, Some(true));
    client.cancel().await?;
    Ok(())
}

/// What `/mcp` answers as a streamable-HTTP server in session mode: requests
/// as plain JSON on the request itself (one event for a client that takes
/// only a stream), notifications with 202, and clear refusals otherwise.
#[tokio::test]
async fn the_transport_answers_each_request_on_itself() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let session = Session::open(&server.url()).await?;
    let http = reqwest::Client::new();
    let post = |accept: &'static str, body: Value| {
        http.post(server.url())
            .header("content-type", "application/json")
            .header("accept", accept)
            .header("mcp-session-id", &session.id)
            .json(&body)
    };
    let ping = json!({"jsonrpc":"2.0","id":7,"method":"ping"});

    let json_answer = post("application/json, text/event-stream", ping.clone())
        .send()
        .await?;
    assert_eq!(json_answer.status(), 200);
    assert_eq!(json_answer.headers()["content-type"], "application/json");
    assert_eq!(
        json_answer.json::<Value>().await?,
        json!({"jsonrpc":"2.0","id":7,"result":{}})
    );

    let stream_answer = post("text/event-stream", ping.clone()).send().await?;
    assert_eq!(stream_answer.headers()["content-type"], "text/event-stream");
    let text = stream_answer.text().await?;
    assert_eq!(
        text,
        "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n"
    );

    let listed = post(
        "application/json",
        json!({"jsonrpc":"2.0","id":8,"method":"tools/list"}),
    )
    .send()
    .await?
    .json::<Value>()
    .await?;
    assert!(listed["result"].get("resultType").is_none(), "{listed}");
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(3));

    let notified = post(
        "application/json, text/event-stream",
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .send()
    .await?;
    assert_eq!(notified.status(), 202);

    let unknown = post(
        "application/json",
        json!({"jsonrpc":"2.0","id":9,"method":"resources/list"}),
    )
    .send()
    .await?
    .json::<Value>()
    .await?;
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");

    assert_eq!(post("text/html", ping.clone()).send().await?.status(), 406);
    let wrong_type = http
        .post(server.url())
        .header("content-type", "text/plain")
        .header("accept", "application/json")
        .header("mcp-session-id", &session.id)
        .body(ping.to_string())
        .send()
        .await?;
    assert_eq!(wrong_type.status(), 415);
    let future_protocol = post("application/json", ping.clone())
        .header("mcp-protocol-version", "2099-01-01")
        .send()
        .await?;
    assert_eq!(future_protocol.status(), 400);
    let no_session = http
        .post(server.url())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(&ping)
        .send()
        .await?;
    assert_eq!(no_session.status(), 400);
    assert!(
        no_session.text().await?.contains("Mcp-Session-Id"),
        "the refusal says what is missing"
    );

    // A page on a rebinding domain names itself in Host: no session for it.
    let rebound = http
        .post(server.url())
        .header("host", "rebound.evil.example")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}))
        .send()
        .await?;
    assert_eq!(rebound.status(), 403);
    assert!(rebound.headers().get("mcp-session-id").is_none());

    assert!(session.delete().await?.is_success());
    assert_eq!(session.delete().await?, 404, "a session ends once");
    let after = post("application/json", ping).send().await?;
    assert_eq!(after.status(), 404);
    Ok(())
}
