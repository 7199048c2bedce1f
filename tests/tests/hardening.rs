//! Hostile and careless clients against the real binary: every input an
//! outsider controls is bounded, idle connections are closed, names cannot be
//! spoofed. Each test reproduces a defect of issue 12.

use std::time::Duration;

use anyhow::Result;
use tests::Server;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;

/// Requests with made-up session ids must not leave anything behind.
#[tokio::test]
async fn unknown_session_ids_do_not_grow_memory() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let http = reqwest::Client::new();
    let post = |id: String| {
        http.post(server.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", id)
            .body(INIT)
            .send()
    };
    // Warm up allocator and connection pool before measuring.
    // Ids as long as the 8 KiB request head allows.
    for n in 0..20 {
        post(format!("{n:0>7000}")).await?;
    }
    let before = server.rss_kib()?;
    for n in 0..2000 {
        let response = post(format!("{n:x>7000}")).await?;
        assert_eq!(response.status(), 404, "made-up session {n}");
    }
    let grown = server.rss_kib()?.saturating_sub(before);
    // 2,000 ids of 7 KB each are 14 MB if kept.
    assert!(grown < 6 * 1024, "RSS grew by {grown} KiB");
    Ok(())
}

/// Reads until the server closes the connection; the bytes it sent.
async fn read_until_closed(tcp: &mut tokio::net::TcpStream, within: Duration) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("the server kept the connection open for {within:?}"))?;
    Ok(received)
}

async fn connect(server: &Server) -> Result<tokio::net::TcpStream> {
    Ok(tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await?)
}

#[tokio::test]
async fn half_sent_headers_and_silent_connections_are_closed() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let server = Server::bare(&[
        "--header-read-timeout-ms",
        "500",
        "--connection-idle-secs",
        "1",
    ])
    .await?;
    let mut partial = connect(&server).await?;
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await?;
    let mut silent = connect(&server).await?;
    let mut kept_alive = connect(&server).await?;
    kept_alive
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await?;
    read_until_closed(&mut partial, Duration::from_secs(5)).await?;
    read_until_closed(&mut silent, Duration::from_secs(5)).await?;
    let answered = read_until_closed(&mut kept_alive, Duration::from_secs(5)).await?;
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    Ok(())
}

#[tokio::test]
async fn event_streams_outlive_the_idle_timeout() -> Result<()> {
    let server = Server::bare(&["--connection-idle-secs", "1"]).await?;
    let mut listener = tests::Agent::connect(&server.url()).await?;
    // A fresh client per request: the sender's pooled connection may be closed as idle.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sender = tests::Agent::connect(&server.url()).await?;
    let sent = sender.send(&listener.name, "still there?").await?;
    assert!(!sent.is_error, "{}", sent.text);
    let arrived = listener.next_message().await?;
    assert_eq!(arrived["params"]["content"], "still there?");
    Ok(())
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_a_log_line() -> Result<()> {
    let mut server = Server::bare(&["--max-connections", "4"]).await?;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&server).await?);
    }
    let mut over = connect(&server).await?;
    let answer = read_until_closed(&mut over, Duration::from_secs(5)).await?;
    assert!(
        answer.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    server.wait_log("maximum of 4 connections").await?;
    drop(held);
    // The slots free as the server sees the closes.
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ok = http
            .get(format!("{}/health", server.base()))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no slot freed within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// planner and coder (agents), ci (trigger).
fn auth_file(dir: &std::path::Path) -> Result<String> {
    let path = dir.join("auth.toml");
    tests::write_auth_file(
        &path,
        &[("planner", "agent"), ("coder", "agent"), ("ci", "trigger")],
    )?;
    Ok(path.to_string_lossy().into_owned())
}

async fn listed(server: &Server, token: &str) -> Result<Vec<String>> {
    let agents: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/agents", server.base()))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    Ok(serde_json::from_value(agents["agents"].clone())?)
}

#[tokio::test]
async fn one_token_is_one_agent_and_nobody_takes_a_triggers_name() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let auth = auth_file(dir.path())?;
    let server = Server::bare(&["--auth", &auth]).await?;
    let planner_token = [("Authorization", "Bearer tok-planner")];
    let mut planner = tests::Agent::connect_with(&server.url(), &planner_token).await?;
    assert_eq!(planner.name, "planner");

    let twin = tests::Session::open_with(&server.url(), &planner_token)
        .await?
        .into_agent()
        .await;
    let refused = twin.err().expect("a second agent of one token").to_string();
    assert!(refused.contains("409"), "{refused}");
    assert_eq!(listed(&server, "tok-coder").await?, ["planner"]);

    let coder =
        tests::Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-coder")]).await?;
    for name in ["ci", "CI", "webhook", "switchboard-admin"] {
        let renamed = coder
            .call("rename-agent", serde_json::json!({"name": name}))
            .await?;
        assert!(renamed.is_error, "{name}: {}", renamed.text);
    }

    // A client that re-initializes after its stream dropped gets its name back.
    planner.drop_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listed(&server, "tok-coder")
        .await?
        .contains(&"planner".to_owned())
    {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "planner still listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = tests::Agent::connect_with(&server.url(), &planner_token).await?;
    assert_eq!(again.name, "planner");
    Ok(())
}

#[tokio::test]
async fn the_servers_own_names_are_reserved_without_auth_too() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let agent = tests::Agent::connect(&server.url()).await?;
    for name in ["webhook", "Switchboard", "switchboard-probe"] {
        let renamed = agent
            .call("rename-agent", serde_json::json!({"name": name}))
            .await?;
        assert!(renamed.is_error, "{name}: {}", renamed.text);
    }
    let declared =
        tests::Agent::connect_with(&server.url(), &[("X-Agent-Name", "webhook")]).await?;
    assert!(declared.name.starts_with("agent-"), "{}", declared.name);
    Ok(())
}

/// What `/metrics` says the server keeps for resumes, in bytes.
async fn resume_window_bytes(server: &Server) -> Result<f64> {
    tests::sample(&server.metrics().await?, "switchboard_resume_window_bytes")
        .ok_or_else(|| anyhow::anyhow!("no resume window gauge in /metrics"))
}

#[tokio::test]
async fn a_resume_replays_at_most_the_bounded_window_and_a_closed_session_frees_it() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let mut reader = tests::Agent::connect(&server.url()).await?;
    let sender = tests::Agent::connect(&server.url()).await?;
    let body = "x".repeat(60 * 1024);
    for n in 1..=40 {
        let sent = sender.send(&reader.name, &format!("{n} {body}")).await?;
        assert!(!sent.is_error, "{}", sent.text);
        reader.next_event(tests::WAIT).await?;
    }
    let newest = reader.last_event_id.clone().expect("event ids");
    // Claim to have seen only the first message: the server holds at most
    // its window (1 MiB), not all 40 (2.4 MB).
    reader.last_event_id = Some("msg-1".into());
    reader.reopen_stream(true).await?;
    let mut replayed = Vec::new();
    while replayed.last() != Some(&newest) {
        replayed.push(reader.next_event(tests::WAIT).await?.id.unwrap_or_default());
    }
    assert!(replayed.len() <= 17, "{} replayed", replayed.len());

    let kept = resume_window_bytes(&server).await?;
    assert!(
        (60.0 * 1024.0..=1024.0 * 1024.0).contains(&kept),
        "{kept} bytes kept for resumes"
    );
    assert!(reader.session.delete().await?.is_success());
    let deadline = tokio::time::Instant::now() + tests::WAIT;
    while resume_window_bytes(&server).await? != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed session's resume window is still kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn renaming_does_not_reset_the_rate_limit() -> Result<()> {
    // The bundled chain: 10 messages at once per sender, then 30 a minute.
    let server = Server::start(&[]).await?;
    let sender = tests::Agent::connect(&server.url()).await?;
    let mut targets = Vec::new();
    for _ in 0..2 {
        targets.push(tests::Agent::connect(&server.url()).await?);
    }
    let mut refused = None;
    for n in 0..12 {
        // Alternate recipients so only the per-sender limit is reached.
        let to = &targets[n % 2].name;
        let sent = sender.send(to, &format!("status update {n}")).await?;
        if sent.is_error {
            refused = Some(sent.text);
            break;
        }
    }
    let refused = refused.expect("the sender reached its limit");
    assert!(refused.starts_with("Rejected by rate-limit"), "{refused}");
    let renamed = sender
        .call("rename-agent", serde_json::json!({"name": "fresh-start"}))
        .await?;
    assert!(!renamed.is_error, "{}", renamed.text);
    let again = sender.send(&targets[0].name, "status update again").await?;
    assert!(
        again.is_error && again.text.starts_with("Rejected by rate-limit"),
        "a rename reset the limit: {}",
        again.text
    );
    Ok(())
}

async fn trigger(server: &Server, body: serde_json::Value) -> Result<(u16, serde_json::Value)> {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base()))
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or_default()))
}

#[tokio::test]
async fn meta_spoofing_and_terminal_escapes_do_not_reach_a_model() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let mut agent = tests::Agent::connect(&server.url()).await?;
    for key in [
        "From",
        "SOURCE",
        "Kind",
        "sender_id",
        "redacted",
        "injection_suspected",
    ] {
        let (status, reply) = trigger(
            &server,
            serde_json::json!({"to": agent.name, "content": "x", "meta": {key: "mallory"}}),
        )
        .await?;
        assert_eq!(status, 400, "{key}: {reply}");
    }
    let (status, reply) = trigger(
        &server,
        serde_json::json!({"to": agent.name, "content": "x", "meta": {"severity": "critical"}}),
    )
    .await?;
    assert_eq!(status, 400, "{reply}");

    let (status, reply) = trigger(
        &server,
        serde_json::json!({"to": agent.name, "content": "\u{1b}[2J\u{1b}[31mred\u{7}\r\nnext\tline",
            "meta": {"severity": "warning", "note": "a\u{1b}b"}}),
    )
    .await?;
    assert_eq!(status, 202, "{reply}");
    let arrived = agent.next_message().await?;
    assert_eq!(
        arrived["params"]["content"],
        "\u{241b}[2J\u{241b}[31mred\u{2407}\nnext\tline"
    );
    assert_eq!(arrived["params"]["meta"]["severity"], "warning");
    assert_eq!(arrived["params"]["meta"]["note"], "a\u{241b}b");
    assert!(arrived["params"]["meta"].get("sender_id").is_none());

    let sender = tests::Agent::connect(&server.url()).await?;
    let sent = sender
        .send(&agent.name, "bell\u{7} and \u{1b}]0;title\u{7}")
        .await?;
    assert!(!sent.is_error, "{}", sent.text);
    let arrived = agent.next_message().await?;
    assert_eq!(
        arrived["params"]["content"],
        "bell\u{2407} and \u{241b}]0;title\u{2407}"
    );
    Ok(())
}

/// One raw HTTP/1.1 request; the whole response as text.
async fn raw(server: &Server, request: &str) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut tcp = connect(server).await?;
    tcp.write_all(request.as_bytes()).await?;
    let bytes = read_until_closed(&mut tcp, tests::WAIT).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn every_route_checks_the_host_and_health_says_little_without_a_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let auth = auth_file(dir.path())?;
    let server = Server::bare(&["--auth", &auth]).await?;
    for path in ["/health", "/v1/agents", "/mcp"] {
        let reply = raw(
            &server,
            &format!("GET {path} HTTP/1.1\r\nHost: rebound.evil.example\r\nAuthorization: Bearer tok-planner\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"),
        )
        .await?;
        assert!(reply.starts_with("HTTP/1.1 403"), "{path}: {reply}");
    }
    let http = reqwest::Client::new();
    let anonymous: serde_json::Value = http
        .get(format!("{}/health", server.base()))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(anonymous, serde_json::json!({"status": "ok"}));
    let full: serde_json::Value = http
        .get(format!("{}/health", server.base()))
        .header("authorization", "bearer tok-coder")
        .send()
        .await?
        .json()
        .await?;
    assert!(full.get("chain").is_some(), "{full}");
    // The scheme is case-insensitive for agents too.
    let agent =
        tests::Agent::connect_with(&server.url(), &[("Authorization", "BEARER tok-coder")]).await?;
    assert_eq!(agent.name, "coder");
    Ok(())
}

#[tokio::test]
async fn a_restored_session_stays_bound_to_its_token_and_its_file_is_private() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir()?;
    let auth = auth_file(state.path())?;
    let plugins = state.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    std::fs::write(plugins.join("chain.toml"), "")?;
    let mut server = Server::launch(&plugins, state.path(), 0, &["--auth", &auth]).await?;
    let port = server.port;
    let planner =
        tests::Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-planner")])
            .await?;
    let file = state.path().join(format!("sessions-{port}.json"));
    let deadline = tokio::time::Instant::now() + tests::WAIT;
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&planner.session.id)) {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "session not saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::metadata(&file)?.permissions().mode() & 0o777,
        0o600
    );
    assert!(server.terminate().await?.success());
    let server = Server::launch(&plugins, state.path(), port, &["--auth", &auth]).await?;
    let hijack = reqwest::Client::new()
        .post(server.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &planner.session.id)
        .header("mcp-protocol-version", tests::PROTOCOL)
        .bearer_auth("tok-coder")
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#)
        .send()
        .await?;
    assert_eq!(hijack.status(), 403);
    Ok(())
}

#[tokio::test]
async fn escaped_messages_within_the_limit_pass_the_body_limit() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let mut reader = tests::Agent::connect(&server.url()).await?;
    let sender = tests::Session::open(&server.url())
        .await?
        .into_agent()
        .await?;
    // 64 KiB of text, every character escaped (JSON allows `\u0041` for
    // `A`): 384 KiB of body for a message within the limit.
    let escaped = "\\u0041".repeat(64 * 1024);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":"send-message","arguments":{{"to":"{}","message":"{escaped}"}}}}}}"#,
        reader.name
    );
    let response = reqwest::Client::new()
        .post(server.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sender.session.id)
        .header("mcp-protocol-version", tests::PROTOCOL)
        .body(body)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let arrived = reader.next_message().await?;
    assert_eq!(
        arrived["params"]["content"].as_str().map(str::len),
        Some(64 * 1024)
    );
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_a_json_rpc_parse_error() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let http = reqwest::Client::new();
    for (body, code) in [("{not json", -32700), (r#"{"hello": 1}"#, -32600)] {
        let response = http
            .post(server.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await?;
        assert_eq!(response.status(), 400, "{body}");
        let reply: serde_json::Value = response.json().await?;
        assert_eq!(reply["error"]["code"], code, "{reply}");
        assert_eq!(reply["jsonrpc"], "2.0");
    }
    Ok(())
}

#[tokio::test]
async fn max_sessions_holds_under_concurrent_initializes() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let server = Server::bare(&["--max-sessions", "3"]).await?;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"burst","version":"1"}}}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        server.port,
        body.len()
    );
    // Every request but its last byte first, then all the last bytes: the
    // initializes reach the server together, as a burst of clients would,
    // instead of one connection handshake apart. With the session count
    // checked but no slot held until the session exists, 17-53 of 96 opened
    // (six runs); with 24 clients connecting one after the other, the race
    // was never lost.
    let (head, last) = request.split_at(request.len() - 1);
    let mut connections = Vec::new();
    for _ in 0..96 {
        let mut tcp = connect(&server).await?;
        tcp.write_all(head.as_bytes()).await?;
        connections.push(tcp);
    }
    for tcp in &mut connections {
        tcp.write_all(last.as_bytes()).await?;
    }
    let replies = futures::future::join_all(
        connections
            .iter_mut()
            .map(|tcp| read_until_closed(tcp, tests::WAIT)),
    )
    .await;
    let mut opened = 0;
    for reply in replies {
        let reply = String::from_utf8_lossy(&reply?).to_ascii_lowercase();
        if reply.contains("\r\nmcp-session-id:") {
            opened += 1;
        } else {
            assert!(reply.starts_with("http/1.1 503"), "{reply}");
        }
    }
    assert!((1..=3).contains(&opened), "{opened} sessions opened");
    Ok(())
}

#[tokio::test]
async fn allowed_origins_get_cors_and_a_working_preflight() -> Result<()> {
    let server = Server::bare(&["--allow-origin", "https://app.example"]).await?;
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, server.url())
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, mcp-session-id",
        )
        .send()
        .await?;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()?
            .contains("mcp-session-id")
    );
    let init = http
        .post(server.url())
        .header("origin", "https://app.example")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"web","version":"0"}}}"#)
        .send()
        .await?;
    assert_eq!(init.status(), 200);
    assert_eq!(
        init.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        init.headers()["access-control-expose-headers"]
            .to_str()?
            .contains("mcp-session-id")
    );
    let foreign = http
        .request(reqwest::Method::OPTIONS, server.url())
        .header("origin", "https://other.example")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    Ok(())
}

/// `switchboard check` on a filter that tries to sleep: it reports the
/// refusal as that filter's error, at once, instead of panicking or waiting.
#[test]
fn check_reports_a_filter_that_tries_to_wait() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(
        tests::repo_root().join("server/tests/fixtures/hostile/sleep.wat"),
        dir.path().join("sleep.wat"),
    )?;
    std::fs::write(
        dir.path().join("chain.toml"),
        "[[filter]]\nname = \"sleep\"\ncomponent = \"sleep.wat\"\ntimeout_ms = 100\n",
    )?;
    let corpus = dir.path().join("corpus.jsonl");
    std::fs::write(
        &corpus,
        "{\"text\": \"!sleep 3 s\"}\n{\"text\": \"fine\"}\n",
    )?;
    let started = std::time::Instant::now();
    let output = std::process::Command::new(tests::binary())
        .arg("check")
        .arg("--plugins")
        .arg(dir.path())
        .arg("-v")
        .arg(&corpus)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stdout.contains("filters may not sleep or block"),
        "{stdout}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// Request heads are bounded at 8 KiB: past it, 431 and no session.
#[tokio::test]
async fn request_heads_over_8_kib_are_refused() -> Result<()> {
    let server = tests::Server::bare(&[]).await?;
    let initialize = |pad: usize| {
        reqwest::Client::new()
            .post(server.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-pad", "p".repeat(pad))
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
            .send()
    };
    assert_eq!(initialize(6 * 1024).await?.status(), 200);
    assert_eq!(initialize(9 * 1024).await?.status(), 431);
    Ok(())
}
