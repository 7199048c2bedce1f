//! The operator's view on the real binary: `/metrics`, `/health` and
//! `/livez`, the logs, SIGHUP and the audit log (issue 15).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use tests::{Agent, Server, WAIT, repo_root, sample};

/// A plugins folder holding the hand-written fixture filters and a chain.
struct Plugins {
    dir: tempfile::TempDir,
}

impl Plugins {
    fn new(chain: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let fixtures = repo_root().join("server/tests/fixtures/hostile");
        for entry in std::fs::read_dir(&fixtures)? {
            let path = entry?.path();
            std::fs::copy(&path, dir.path().join(path.file_name().context("name")?))?;
        }
        let plugins = Self { dir };
        plugins.write_chain(chain)?;
        Ok(plugins)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write, then rename: a reload never sees half a file.
    fn write_chain(&self, text: &str) -> Result<()> {
        let temp = self.dir.path().join("chain.partial");
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, self.dir.path().join("chain.toml"))?;
        Ok(())
    }

    async fn start(&self, state: &Path, args: &[&str]) -> Result<Server> {
        let mut all = vec!["--no-build"];
        all.extend_from_slice(args);
        Server::launch(self.path(), state, 0, &all).await
    }
}

fn fixture(name: &str) -> String {
    format!("[[filter]]\nname = \"{name}\"\ncomponent = \"{name}.wat\"\n\n")
}

/// `trap` faults on content starting with "!" (and rejects it), `rewrite`
/// turns everything else into "rewritten".
fn trap_then_rewrite() -> String {
    fixture("trap") + &fixture("rewrite")
}

async fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Result<reqwest::Response> {
    let mut request = reqwest::Client::new().get(format!("{}{path}", server.base()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Ok(tokio::time::timeout(WAIT, request.send()).await??)
}

#[tokio::test]
async fn metrics_count_messages_by_outcome_and_filter() -> Result<()> {
    let plugins = Plugins::new(&trap_then_rewrite())?;
    let state = tempfile::tempdir()?;
    let server = plugins.start(state.path(), &[]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;

    let sent = sender.send(&recipient.name, "hello").await?;
    ensure!(!sent.is_error, "{}", sent.text);
    ensure!(recipient.next_message().await?["params"]["content"] == "rewritten");
    let sent = sender.send(&recipient.name, "!boom").await?;
    ensure!(sent.text.starts_with("Rejected by trap: "), "{}", sent.text);
    let sent = sender.send("nobody", "hello?").await?;
    ensure!(sent.is_error, "{}", sent.text);

    let text = server.metrics().await?;
    let expect = [
        (
            r#"switchboard_messages_total{kind="agent-message",outcome="delivered",filter=""}"#,
            1.0,
        ),
        (
            r#"switchboard_messages_total{kind="agent-message",outcome="rejected",filter="trap"}"#,
            1.0,
        ),
        (
            r#"switchboard_messages_total{kind="agent-message",outcome="no_recipient",filter=""}"#,
            1.0,
        ),
        (
            r#"switchboard_filter_verdicts_total{filter="trap",verdict="accept"}"#,
            1.0,
        ),
        (
            r#"switchboard_filter_verdicts_total{filter="trap",verdict="fault"}"#,
            1.0,
        ),
        (
            r#"switchboard_filter_verdicts_total{filter="rewrite",verdict="rewrite"}"#,
            1.0,
        ),
        (
            r#"switchboard_filter_faults_total{filter="trap",kind="trap"}"#,
            1.0,
        ),
        (r#"switchboard_filter_seconds_count{filter="trap"}"#, 2.0),
        ("switchboard_delivery_seconds_count", 1.0),
        ("switchboard_agents", 2.0),
        ("switchboard_sessions", 2.0),
        ("switchboard_chain_generation", 1.0),
        ("switchboard_chain_filters", 2.0),
        ("switchboard_chain_reload_refused", 0.0),
        (r#"switchboard_chain_reloads_total{outcome="loaded"}"#, 1.0),
        ("switchboard_queued_messages", 0.0),
    ];
    for (series, value) in expect {
        ensure!(
            sample(&text, series) == Some(value),
            "expected {series} {value} in\n{text}"
        );
    }
    // Classic text format by default (promtool reads it); Prometheus asks
    // for OpenMetrics and gets it.
    ensure!(text.contains("# TYPE switchboard_messages_total counter"));
    ensure!(!text.contains("# EOF"));
    let open = get(
        &server,
        "/metrics",
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .await?;
    ensure!(
        open.headers()["content-type"]
            .to_str()?
            .starts_with("application/openmetrics-text"),
        "{:?}",
        open.headers()
    );
    let open = open.text().await?;
    ensure!(open.ends_with("# EOF\n"), "{open}");
    ensure!(
        open.contains("# TYPE switchboard_messages counter"),
        "{open}"
    );
    Ok(())
}

fn auth_path(dir: &Path) -> PathBuf {
    dir.join("auth.toml")
}

#[tokio::test]
async fn metrics_need_an_admin_token_under_auth() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let auth = auth_path(dir.path());
    tests::write_auth_file(
        &auth,
        &[("ops", "admin"), ("coder", "agent"), ("ci", "trigger")],
    )?;
    let server = Server::bare(&["--auth", auth.to_str().context("utf-8")?]).await?;
    let status = |headers: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Ok::<_, anyhow::Error>(get(server, "/metrics", &headers).await?.status())
        }
    };
    ensure!(status(vec![]).await? == 401);
    ensure!(status(vec![("authorization", "Bearer wrong".into())]).await? == 401);
    ensure!(status(vec![("authorization", "Bearer tok-coder".into())]).await? == 403);
    ensure!(status(vec![("authorization", "Bearer tok-ci".into())]).await? == 403);
    ensure!(status(vec![("authorization", "Bearer tok-ops".into())]).await? == 200);
    ensure!(
        status(vec![
            ("authorization", "Bearer tok-ops".into()),
            ("host", "rebound.evil.example".into())
        ])
        .await?
            == 403
    );
    ensure!(
        status(vec![
            ("authorization", "Bearer tok-ops".into()),
            ("origin", "https://evil.example".into())
        ])
        .await?
            == 403
    );
    Ok(())
}

async fn health(server: &Server) -> Result<(u16, serde_json::Value)> {
    let response = get(server, "/health", &[]).await?;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test]
async fn health_degrades_while_a_reload_is_refused_and_livez_does_not() -> Result<()> {
    let plugins = Plugins::new(&fixture("accept"))?;
    let state = tempfile::tempdir()?;
    let mut server = plugins.start(state.path(), &[]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    let (code, body) = health(&server).await?;
    ensure!(code == 200 && body["status"] == "ok", "{code} {body}");

    plugins.write_chain("[[filter]]\nname = \"x\"\ncomponent = \"x.wat\"\ntimeout = 5\n")?;
    server.wait_log("filter chain refused").await?;
    let (code, body) = health(&server).await?;
    ensure!(code == 503 && body["status"] == "degraded", "{code} {body}");
    let problem = body["problems"][0].as_str().unwrap_or_default();
    ensure!(
        problem.contains("refused") && problem.contains("unknown field `timeout`"),
        "{body}"
    );
    ensure!(
        body["chain"]["refused"]
            .as_str()
            .is_some_and(|r| r.contains("timeout")),
        "{body}"
    );
    // Degraded, not down: the old chain still serves.
    let sent = sender.send(&recipient.name, "still here").await?;
    ensure!(!sent.is_error, "{}", sent.text);
    ensure!(recipient.next_message().await?["params"]["content"] == "still here");
    let live = get(&server, "/livez", &[]).await?;
    ensure!(live.status() == 200, "/livez: {}", live.status());
    let text = server.metrics().await?;
    ensure!(
        sample(&text, "switchboard_chain_reload_refused") == Some(1.0),
        "{text}"
    );
    ensure!(
        sample(
            &text,
            r#"switchboard_chain_reloads_total{outcome="refused"}"#
        ) == Some(1.0),
        "{text}"
    );

    // A chain file that is gone is refused too: the server keeps its chain.
    std::fs::remove_file(plugins.path().join("chain.toml"))?;
    server.wait_log("filter chain refused").await?;
    let (code, body) = health(&server).await?;
    ensure!(code == 503, "{code} {body}");

    plugins.write_chain(&fixture("accept"))?;
    server.wait_log("filter chain file loads again").await?;
    let (code, body) = health(&server).await?;
    ensure!(
        code == 200 && body.get("problems").is_none(),
        "{code} {body}"
    );
    Ok(())
}

#[tokio::test]
async fn health_says_only_its_status_without_a_token() -> Result<()> {
    let plugins = Plugins::new(&fixture("accept"))?;
    let state = tempfile::tempdir()?;
    let dir = tempfile::tempdir()?;
    let auth = auth_path(dir.path());
    tests::write_auth_file(&auth, &[("ops", "admin")])?;
    let mut server = plugins
        .start(state.path(), &["--auth", auth.to_str().context("utf-8")?])
        .await?;
    plugins.write_chain("not toml")?;
    server.wait_log("filter chain refused").await?;
    let (code, body) = health(&server).await?;
    ensure!(
        code == 503 && body == serde_json::json!({"status": "degraded"}),
        "{code} {body}"
    );
    let detailed = get(&server, "/health", &[("authorization", "Bearer tok-ops")]).await?;
    ensure!(detailed.status() == 503);
    let body: serde_json::Value = detailed.json().await?;
    ensure!(body["problems"].is_array(), "{body}");
    Ok(())
}

fn log_json(line: &str) -> Result<serde_json::Value> {
    serde_json::from_str(line).with_context(|| format!("not a JSON log line: {line}"))
}

#[tokio::test]
async fn rejections_log_at_info_with_filter_and_reason_and_deliveries_do_not() -> Result<()> {
    let plugins = Plugins::new(&fixture("trap"))?;
    let state = tempfile::tempdir()?;
    let mut server = plugins.start(state.path(), &[]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    let sent = sender.send(&recipient.name, "fine").await?;
    ensure!(!sent.is_error, "{}", sent.text);
    recipient.next_message().await?;
    let sent = sender.send(&recipient.name, "!boom").await?;
    ensure!(sent.is_error, "{}", sent.text);

    let lines = server.log_until("message rejected").await?;
    let rejected = log_json(lines.last().context("a line")?)?;
    ensure!(rejected["level"] == "INFO", "{rejected}");
    let fields = &rejected["fields"];
    ensure!(
        fields["filter"] == "trap"
            && fields["reason"]
                .as_str()
                .is_some_and(|r| r.contains("trapped"))
            && fields["from"] == sender.name.as_str()
            && fields["to"] == recipient.name.as_str(),
        "{rejected}"
    );
    ensure!(
        !lines.iter().any(|l| l.contains("message delivered")),
        "a delivery logged at info: {lines:?}"
    );
    Ok(())
}

#[tokio::test]
async fn debug_logs_leave_out_the_compiler_unless_named() -> Result<()> {
    let plugins = Plugins::new(&fixture("accept"))?;
    let state = tempfile::tempdir()?;
    let mut server =
        Server::launch_logging(plugins.path(), state.path(), 0, &["--no-build"], "debug").await?;
    // A reload compiles a component: the compiler's own logs would flood here.
    plugins.write_chain(&(fixture("accept") + &fixture("rewrite")))?;
    let mut lines = server.log_until("filter chain loaded").await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    sender.send(&recipient.name, "hello").await?;
    recipient.next_message().await?;
    lines.extend(server.log_until("message delivered").await?);
    for line in &lines {
        let target = log_json(line)?["target"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ensure!(
            !["wasmtime", "cranelift", "regalloc2", "wasmparser", "rmcp"]
                .iter()
                .any(|quiet| target.starts_with(quiet)),
            "{line}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn text_logs_to_a_pipe_have_no_colour_codes() -> Result<()> {
    use tokio::io::AsyncBufReadExt;
    let plugins = Plugins::new("")?;
    let state = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(tests::binary())
        .args(["--port", "0", "--no-build", "--plugins"])
        .arg(plugins.path())
        .arg("--state-dir")
        .arg(state.path())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("piped")?).lines();
    let seen = tokio::time::timeout(tests::STARTUP, async {
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await? {
            let done = line.contains("switchboard listening");
            seen.push(line);
            if done {
                return Ok::<_, anyhow::Error>(seen);
            }
        }
        anyhow::bail!("server output ended: {seen:?}")
    })
    .await??;
    ensure!(seen.iter().all(|l| !l.contains('\u{1b}')), "{seen:?}");
    ensure!(seen.iter().any(|l| l.contains(" INFO ")), "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn sighup_rereads_the_auth_file() -> Result<()> {
    use nix::sys::signal::Signal;
    let dir = tempfile::tempdir()?;
    let auth = auth_path(dir.path());
    tests::write_auth_file(&auth, &[("ops", "admin"), ("coder", "agent")])?;
    let mut server = Server::bare(&["--auth", auth.to_str().context("utf-8")?]).await?;
    let base = server.base();
    let agents_status = |token: &'static str| {
        let url = format!("{base}/v1/agents");
        async move {
            let request = reqwest::Client::new().get(url).bearer_auth(token).send();
            Ok::<_, anyhow::Error>(tokio::time::timeout(WAIT, request).await??.status())
        }
    };
    ensure!(agents_status("tok-coder").await? == 200);
    ensure!(agents_status("tok-newcomer").await? == 401);

    tests::write_auth_file(&auth, &[("ops", "admin"), ("newcomer", "agent")])?;
    server.signal(Signal::SIGHUP)?;
    server.wait_log("auth file re-read").await?;
    ensure!(agents_status("tok-newcomer").await? == 200);
    ensure!(agents_status("tok-coder").await? == 401);
    let newcomer =
        Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-newcomer")]).await?;
    ensure!(newcomer.name == "newcomer");

    // A broken file leaves the tokens in force.
    std::fs::write(&auth, "[[token]]\nname = 1\n")?;
    server.signal(Signal::SIGHUP)?;
    server.wait_log("tokens in force are unchanged").await?;
    ensure!(agents_status("tok-newcomer").await? == 200);
    ensure!(agents_status("tok-ops").await? == 200);
    Ok(())
}

fn audit_lines(path: &Path) -> Result<Vec<serde_json::Value>> {
    std::fs::read_to_string(path)?
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("audit line {line:?}")))
        .collect()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn the_audit_log_has_a_line_per_verdict_and_survives_a_restart() -> Result<()> {
    let plugins = Plugins::new(&trap_then_rewrite())?;
    let state = tempfile::tempdir()?;
    let log = state.path().join("audit.jsonl");
    let log_arg = log.to_str().context("utf-8")?.to_owned();
    let mut server = plugins.start(state.path(), &["--audit", &log_arg]).await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    let delivered = sender.send(&recipient.name, "hello").await?;
    ensure!(!delivered.is_error, "{}", delivered.text);
    recipient.next_message().await?;
    let rejected = sender.send(&recipient.name, "!boom").await?;
    ensure!(rejected.is_error, "{}", rejected.text);
    // Never reaches the chain: no verdict, no line.
    sender.send("nobody", "hello?").await?;
    // Shutdown writes what is queued.
    ensure!(server.terminate().await?.success());

    let lines = audit_lines(&log)?;
    ensure!(lines.len() == 2, "{lines:?}");
    let first = &lines[0];
    ensure!(
        first["id"] == delivered.structured["message_id"]
            && first["from"] == sender.name.as_str()
            && first["to"] == recipient.name.as_str()
            && first["kind"] == "agent-message"
            && first["verdict"] == "deliver"
            && first["outcome"] == "delivered"
            && first["rewritten_by"] == serde_json::json!(["rewrite"])
            && first["content_bytes"] == 5
            && first["content_sha256"] == sha256_hex("hello").as_str()
            && first.get("content").is_none()
            && first.get("filter").is_none(),
        "{first}"
    );
    ensure!(
        first["time"]
            .as_str()
            .is_some_and(|t| t.len() == 24 && t.ends_with('Z')),
        "{first}"
    );
    let second = &lines[1];
    ensure!(
        second["verdict"] == "reject"
            && second["outcome"] == "rejected"
            && second["filter"] == "trap"
            && second["reason"]
                .as_str()
                .is_some_and(|r| r.contains("trapped"))
            && second["content_sha256"] == sha256_hex("!boom").as_str(),
        "{second}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "audit log mode {mode:o}");
    }

    // A restart appends; --audit-content adds the content.
    let mut server = plugins
        .start(state.path(), &["--audit", &log_arg, "--audit-content"])
        .await?;
    let sender = Agent::connect(&server.url()).await?;
    let recipient = Agent::connect(&server.url()).await?;
    ensure!(!sender.send(&recipient.name, "again").await?.is_error);
    ensure!(server.terminate().await?.success());
    let after = audit_lines(&log)?;
    ensure!(after.len() == 3 && after[..2] == lines[..], "{after:?}");
    ensure!(after[2]["content"] == "again", "{}", after[2]);
    Ok(())
}

#[tokio::test]
async fn an_audit_log_that_fails_never_blocks_delivery_and_counts_its_losses() -> Result<()> {
    let plugins = Plugins::new(&fixture("accept"))?;
    let state = tempfile::tempdir()?;
    // Every write to /dev/full fails (no space left on device).
    let mut server = plugins
        .start(state.path(), &["--audit", "/dev/full"])
        .await?;
    let sender = Agent::connect(&server.url()).await?;
    let mut recipient = Agent::connect(&server.url()).await?;
    for n in 0..3 {
        let sent = sender.send(&recipient.name, &format!("m{n}")).await?;
        ensure!(!sent.is_error, "{}", sent.text);
        recipient.next_message().await?;
    }
    server.wait_log("cannot write the audit log").await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = server.metrics().await?;
        if sample(&text, "switchboard_audit_dropped_lines_total") == Some(3.0) {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "dropped lines not counted:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

const PERMISSION_REQUEST: &str = "notifications/claude/channel/permission_request";

async fn ask_permission(agent: &Agent, request_id: &str) -> Result<()> {
    agent
        .session
        .notify_with(
            PERMISSION_REQUEST,
            Some(serde_json::json!({
                "request_id": request_id,
                "tool_name": "Bash",
                "description": "print a marker",
                "input_preview": "{ \"command\": \"touch marker\" }",
            })),
        )
        .await
}

async fn pending(server: &Server, headers: &[(&str, &str)]) -> Result<Vec<serde_json::Value>> {
    let response = get(server, "/v1/permissions", headers).await?;
    ensure!(response.status() == 200, "{}", response.status());
    let body: serde_json::Value = response.json().await?;
    Ok(body["pending"].as_array().cloned().unwrap_or_default())
}

async fn answer(
    server: &Server,
    id: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/permissions/{id}", server.base()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(WAIT, request.send()).await??;
    Ok((response.status().as_u16(), response.json().await?))
}

#[tokio::test]
async fn a_permission_request_is_answered_to_exactly_the_session_that_asked() -> Result<()> {
    let state = tempfile::tempdir()?;
    let log = state.path().join("audit.jsonl");
    let dir = tempfile::tempdir()?;
    let auth = auth_path(dir.path());
    tests::write_auth_file(
        &auth,
        &[("ops", "admin"), ("coder", "agent"), ("other", "agent")],
    )?;
    let mut server = Server::bare(&[
        "--permission-relay",
        "--auth",
        auth.to_str().context("utf-8")?,
        "--audit",
        log.to_str().context("utf-8")?,
    ])
    .await?;
    let admin = [("authorization", "Bearer tok-ops")];
    let mut coder =
        Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-coder")]).await?;
    let mut other =
        Agent::connect_with(&server.url(), &[("Authorization", "Bearer tok-other")]).await?;
    let declared = &coder.session.initialize_result["result"]["capabilities"]["experimental"];
    ensure!(
        declared.get("claude/channel/permission").is_some()
            && declared.get("claude/channel").is_some(),
        "{declared}"
    );

    // Both ask with the same (per-session) request id.
    ask_permission(&coder, "jtfqa").await?;
    ask_permission(&other, "jtfqa").await?;
    server.wait_log("permission requested").await?;
    server.wait_log("permission requested").await?;
    let listed = pending(&server, &admin).await?;
    ensure!(listed.len() == 2, "{listed:?}");
    let mine = listed
        .iter()
        .find(|p| p["agent"] == "coder")
        .context("coder's request")?;
    ensure!(
        mine["request_id"] == "jtfqa"
            && mine["tool_name"] == "Bash"
            && mine["description"] == "print a marker",
        "{mine}"
    );
    let id = mine["id"].as_str().context("id")?.to_owned();
    // Agents may not answer; a bad body says what to send.
    let (code, _) = answer(&server, &id, r#"{"behavior":"allow"}"#, Some("tok-coder")).await?;
    ensure!(code == 403, "{code}");
    let (code, body) = answer(&server, &id, r#"{"behavior":"yes"}"#, Some("tok-ops")).await?;
    ensure!(
        code == 400 && body["error"].as_str().is_some_and(|e| e.contains("allow")),
        "{body}"
    );

    let (code, body) = answer(&server, &id, r#"{"behavior":"allow"}"#, Some("tok-ops")).await?;
    ensure!(code == 200 && body["behavior"] == "allow", "{code} {body}");
    let relayed = coder.next_message().await?;
    ensure!(
        relayed
            == serde_json::json!({"jsonrpc": "2.0", "method": "notifications/claude/channel/permission",
                "params": {"request_id": "jtfqa", "behavior": "allow"}}),
        "{relayed}"
    );
    other
        .expect_silence(std::time::Duration::from_millis(200))
        .await?;

    let (code, body) = answer(&server, &id, r#"{"behavior":"deny"}"#, Some("tok-ops")).await?;
    ensure!(
        code == 410
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("answered allow")),
        "{code} {body}"
    );
    let (code, body) = answer(&server, "9-nope", r#"{"behavior":"deny"}"#, Some("tok-ops")).await?;
    ensure!(
        code == 404
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("GET /v1/permissions")),
        "{code} {body}"
    );
    ensure!(pending(&server, &admin).await?.len() == 1);

    ensure!(server.terminate().await?.success());
    let lines = audit_lines(&log)?;
    let decision = lines
        .iter()
        .find(|l| l["event"] == "permission")
        .context("a permission line")?;
    ensure!(
        decision["id"] == id.as_str()
            && decision["behavior"] == "allow"
            && decision["by"] == "ops"
            && decision["agent"] == "coder",
        "{decision}"
    );
    Ok(())
}

#[tokio::test]
async fn without_the_relay_flag_nothing_is_declared_or_listed() -> Result<()> {
    let server = Server::bare(&[]).await?;
    let agent = Agent::connect(&server.url()).await?;
    let declared = &agent.session.initialize_result["result"]["capabilities"]["experimental"];
    ensure!(
        declared.get("claude/channel/permission").is_none(),
        "{declared}"
    );
    ask_permission(&agent, "abcde").await?;
    let response = get(&server, "/v1/permissions", &[]).await?;
    ensure!(response.status() == 404);
    let body: serde_json::Value = response.json().await?;
    ensure!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("--permission-relay")),
        "{body}"
    );
    Ok(())
}
