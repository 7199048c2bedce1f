//! Test support: start the real `switchboard` binary on an ephemeral port and
//! talk to it over raw HTTP + SSE, the way Claude Code does, so tests can
//! assert wire bytes. Every wait is bounded.

pub mod redis;
pub mod terminal;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
    time::timeout,
};

/// Generous bound for anything that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);
/// Bound for a server to start listening.
pub const STARTUP: Duration = Duration::from_secs(60);
pub const PROTOCOL: &str = "2025-11-25";

/// Whether the tests that need a program most machines lack (`browser`:
/// Chromium and chromedriver; `nginx`) were left out on purpose, by naming
/// them in `SWITCHBOARD_SKIP` (comma-separated). Otherwise such a test fails
/// with the advice to install the program: CI installs them all.
pub fn skipped(what: &str) -> bool {
    let skip = std::env::var("SWITCHBOARD_SKIP")
        .unwrap_or_default()
        .split(',')
        .any(|s| s.trim() == what);
    if skip {
        eprintln!("SWITCHBOARD_SKIP names {what}: this test did not run");
    }
    skip
}

/// The server binary: `SWITCHBOARD_BIN`, or built next to this test's target dir.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("SWITCHBOARD_BIN") {
            return PathBuf::from(path);
        }
        // target/<profile>/deps/<test exe> -> target/<profile>/switchboard
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // The same selection as `cargo test --workspace` (dev-dependencies
        // included), so after it this is a no-op: `-p server` alone resolves
        // other features for shared dependencies and rebuilds dozens of them.
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "--workspace", "--all-targets"]);
        if release {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo build for the server binary");
        assert!(status.success(), "building the switchboard binary failed");
        profile_dir.join("switchboard")
    })
}

/// Builds the bundled filter components once per test process (what `cargo
/// plugins` does), so a server started on `plugins/` finds them ready.
pub fn ensure_plugins_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .arg("--target-dir")
            .arg(root.join("plugins/target"))
            .args(["-p", "rate-limit", "-p", "injection-guard", "-p", "redact"])
            .status()
            .expect("run cargo build for the bundled filters");
        assert!(status.success(), "building the bundled filters failed");
    });
}

/// A running server; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub state_dir: PathBuf,
    _state: Option<tempfile::TempDir>,
    logs: mpsc::UnboundedReceiver<String>,
}

impl Server {
    /// Starts with the repository's `plugins/` and a private state folder.
    pub async fn start(extra_args: &[&str]) -> Result<Server> {
        let state = tempfile::tempdir()?;
        let dir = state.path().to_owned();
        let mut server = Self::start_in(&dir, 0, extra_args).await?;
        server._state = Some(state);
        Ok(server)
    }

    /// Starts with an empty filter chain, so only the bus itself is under test.
    pub async fn bare(extra_args: &[&str]) -> Result<Server> {
        let state = tempfile::tempdir()?;
        let plugins = state.path().join("plugins");
        std::fs::create_dir(&plugins)?;
        std::fs::write(plugins.join("chain.toml"), "# no filters\n")?;
        let mut server = Self::launch(&plugins, state.path(), 0, extra_args).await?;
        server._state = Some(state);
        Ok(server)
    }

    /// Starts with the repository's `plugins/`, the given state folder and port (0 = any).
    pub async fn start_in(state_dir: &Path, port: u16, extra_args: &[&str]) -> Result<Server> {
        tokio::task::spawn_blocking(ensure_plugins_built).await?;
        Self::launch(&repo_root().join("plugins"), state_dir, port, extra_args).await
    }

    /// Starts with any plugins folder, state folder and port.
    pub async fn launch(
        plugins: &Path,
        state_dir: &Path,
        port: u16,
        extra_args: &[&str],
    ) -> Result<Server> {
        Self::launch_logging(plugins, state_dir, port, extra_args, "info,rmcp=warn").await
    }

    /// As [`Server::launch`], with `RUST_LOG` set to `rust_log`.
    pub async fn launch_logging(
        plugins: &Path,
        state_dir: &Path,
        port: u16,
        extra_args: &[&str],
        rust_log: &str,
    ) -> Result<Server> {
        let mut child = Command::new(binary())
            .arg("--port")
            .arg(port.to_string())
            .arg("--plugins")
            .arg(plugins)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--log-format")
            .arg("json")
            .args(extra_args)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawn switchboard")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, mut logs) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Compiling the chain's components in a debug build takes seconds.
        let port = timeout(STARTUP, async {
            while let Some(line) = logs.recv().await {
                if let Some(port) = listening_port(&line) {
                    return Ok(port);
                }
            }
            bail!("server exited before listening")
        })
        .await
        .context("server did not start listening in time")??;
        Ok(Server {
            child: Some(child),
            port,
            state_dir: state_dir.to_owned(),
            _state: None,
            logs,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The server's resident memory in KiB (Linux: `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid().context("server stopped")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The text of `/metrics`, as a scraper without a token gets it.
    pub async fn metrics(&self) -> Result<String> {
        let response = timeout(WAIT, reqwest::get(format!("{}/metrics", self.base()))).await??;
        ensure!(response.status() == 200, "/metrics: {}", response.status());
        Ok(response.text().await?)
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&mut self, needle: &str) -> Result<String> {
        let mut lines = self.log_until(needle).await?;
        Ok(lines.pop().expect("the matching line ends the list"))
    }

    /// Every log line up to and including the first containing `needle`.
    pub async fn log_until(&mut self, needle: &str) -> Result<Vec<String>> {
        timeout(WAIT, async {
            let mut seen = Vec::new();
            while let Some(line) = self.logs.recv().await {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return Ok(seen);
                }
            }
            bail!("server output ended")
        })
        .await
        .with_context(|| format!("no log line with {needle:?} in time"))?
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone.
    pub async fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("already stopped")?;
        child.start_kill()?;
        timeout(WAIT, child.wait())
            .await
            .context("server did not die within 10 s of SIGKILL")??;
        Ok(())
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let pid = self.pid().context("server stopped")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)?;
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        let pid = child.id().context("no pid")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        timeout(WAIT, child.wait())
            .await
            .context("server did not exit within 10 s of SIGTERM")?
            .map_err(Into::into)
    }
}

fn listening_port(line: &str) -> Option<u16> {
    let log: Value = serde_json::from_str(line).ok()?;
    let url = log.pointer("/fields/url")?.as_str()?;
    url.strip_prefix("http://")?
        .split('/')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// One SSE event as it came off the wire.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
}

/// A tool result, flattened.
#[derive(Debug, Clone)]
pub struct ToolResult {
    pub text: String,
    pub is_error: bool,
    pub structured: Value,
}

/// The value of the sample `series` (name and labels, exactly as rendered)
/// in a `/metrics` text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A client session speaking MCP over streamable HTTP with raw requests.
pub struct Session {
    http: reqwest::Client,
    url: String,
    pub id: String,
    next_id: std::sync::atomic::AtomicU64,
    pub initialize_result: Value,
    /// Sent on every request, as Claude Code sends configured MCP headers.
    headers: Vec<(String, String)>,
}

/// A session with its GET stream open: an agent.
pub struct Agent {
    pub session: Session,
    pub name: String,
    events: mpsc::UnboundedReceiver<Event>,
    stream_task: tokio::task::JoinHandle<()>,
    pub last_event_id: Option<String>,
}

impl Session {
    pub async fn open(url: &str) -> Result<Session> {
        Self::open_with(url, &[]).await
    }

    pub async fn open_with(url: &str, headers: &[(&str, &str)]) -> Result<Session> {
        let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = timeout(
            WAIT,
            request
                .json(
                    &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                    "protocolVersion": PROTOCOL, "capabilities": {},
                    "clientInfo": {"name": "switchboard-tests", "version": "0"}}}),
                )
                .send(),
        )
        .await??;
        ensure!(
            response.status().is_success(),
            "initialize: {}",
            response.status()
        );
        let id = response
            .headers()
            .get("mcp-session-id")
            .context("no Mcp-Session-Id")?
            .to_str()?
            .to_owned();
        let initialize_result = first_json_response(response).await?;
        let session = Session {
            http,
            url: url.to_owned(),
            id,
            next_id: 1.into(),
            initialize_result,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        session.notify("notifications/initialized").await?;
        Ok(session)
    }

    /// From now on, requests go without the headers given at `open_with`,
    /// as a client that sends `X-Agent-Name` with `initialize` only.
    pub fn stop_sending_headers(&mut self) {
        self.headers.clear();
    }

    fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        request
    }

    fn post(&self) -> reqwest::RequestBuilder {
        self.with_headers(self.http.post(&self.url))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL)
    }

    pub async fn notify(&self, method: &str) -> Result<()> {
        self.notify_with(method, None).await
    }

    /// Sends a notification, with `params` when given.
    pub async fn notify_with(&self, method: &str, params: Option<Value>) -> Result<()> {
        let mut body = json!({"jsonrpc":"2.0","method":method});
        if let Some(params) = params {
            body["params"] = params;
        }
        let response = timeout(WAIT, self.post().json(&body).send()).await??;
        ensure!(
            response.status().is_success(),
            "{method}: {}",
            response.status()
        );
        Ok(())
    }

    /// Sends a request and returns its JSON-RPC `result` (or the error object).
    pub async fn request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = timeout(
            WAIT,
            self.post()
                .json(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
                .send(),
        )
        .await??;
        ensure!(
            response.status().is_success(),
            "{method}: {}",
            response.status()
        );
        let reply = timeout(WAIT, first_json_response(response)).await??;
        Ok(reply)
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> Result<ToolResult> {
        let reply = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await?;
        let result = reply
            .get("result")
            .with_context(|| format!("{tool}: no result in {reply}"))?;
        Ok(ToolResult {
            text: result["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            is_error: result["isError"].as_bool().unwrap_or(false),
            structured: result
                .get("structuredContent")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// Opens the standalone GET stream; the session becomes an agent.
    pub async fn into_agent(self) -> Result<Agent> {
        let (events, stream_task) = self.open_stream(None).await?;
        let mut agent = Agent {
            session: self,
            name: String::new(),
            events,
            stream_task,
            last_event_id: None,
        };
        agent.name = agent.whoami().await?;
        Ok(agent)
    }

    async fn open_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<(mpsc::UnboundedReceiver<Event>, tokio::task::JoinHandle<()>)> {
        let mut request = self
            .with_headers(self.http.get(&self.url))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = timeout(WAIT, request.send()).await??;
        ensure!(response.status().is_success(), "GET: {}", response.status());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut parser = SseParser::default();
            while let Some(Ok(chunk)) = body.next().await {
                for event in parser.push(&chunk) {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
        });
        Ok((rx, task))
    }

    pub async fn delete(&self) -> Result<reqwest::StatusCode> {
        let response = timeout(
            WAIT,
            self.http
                .delete(&self.url)
                .header("mcp-session-id", &self.id)
                .header("mcp-protocol-version", PROTOCOL)
                .send(),
        )
        .await??;
        Ok(response.status())
    }
}

impl Agent {
    pub async fn connect(url: &str) -> Result<Agent> {
        Session::open(url).await?.into_agent().await
    }

    /// Connects sending `headers` on every request (`X-Agent-Name`, `Authorization`).
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Agent> {
        Session::open_with(url, headers).await?.into_agent().await
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> Result<ToolResult> {
        self.session.call(tool, arguments).await
    }

    pub async fn whoami(&self) -> Result<String> {
        let listed = self.call("list-agents", json!({})).await?;
        listed.structured["you"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("not an agent: {}", listed.text))
    }

    pub async fn send(&self, to: &str, message: &str) -> Result<ToolResult> {
        self.call("send-message", json!({"to": to, "message": message}))
            .await
    }

    /// The next channel notification's raw JSON text and event id.
    pub async fn next_event(&mut self, within: Duration) -> Result<Event> {
        loop {
            let event = timeout(within, self.events.recv())
                .await
                .context("no message arrived in time")?
                .context("stream closed")?;
            if event.id.is_some() {
                self.last_event_id.clone_from(&event.id);
            }
            if !event.data.trim().is_empty() {
                return Ok(event);
            }
        }
    }

    /// The next channel notification, parsed.
    pub async fn next_message(&mut self) -> Result<Value> {
        let event = self.next_event(WAIT).await?;
        Ok(serde_json::from_str(&event.data)?)
    }

    /// The contents of the next `n` channel notifications, in order.
    pub async fn next_contents(&mut self, n: usize) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let message = self.next_message().await?;
            let content = message["params"]["content"].as_str();
            out.push(
                content
                    .context("a notification without content")?
                    .to_owned(),
            );
        }
        Ok(out)
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) -> Result<()> {
        match timeout(quiet, self.events.recv()).await {
            Err(_) => Ok(()),
            Ok(Some(event)) if event.data.trim().is_empty() => Ok(()),
            Ok(other) => Err(anyhow!("unexpected event: {other:?}")),
        }
    }

    /// Drops the GET stream as a client that goes away would.
    pub fn drop_stream(&mut self) {
        self.stream_task.abort();
    }

    /// Re-opens the GET stream, resuming from the last event id seen.
    pub async fn reopen_stream(&mut self, resume: bool) -> Result<()> {
        self.stream_task.abort();
        let last = if resume {
            self.last_event_id.clone()
        } else {
            None
        };
        let (events, task) = self.session.open_stream(last.as_deref()).await?;
        self.events = events;
        self.stream_task = task;
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stream_task.abort();
    }
}

/// Reads a POST response (JSON or SSE) up to the first JSON-RPC response.
async fn first_json_response(response: reqwest::Response) -> Result<Value> {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Ok(response.json().await?);
    }
    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    while let Some(chunk) = body.next().await {
        for event in parser.push(&chunk?) {
            if let Ok(value) = serde_json::from_str::<Value>(&event.data)
                && value.get("id").is_some()
            {
                return Ok(value);
            }
        }
    }
    bail!("response stream ended without a JSON-RPC response")
}

#[derive(Default)]
struct SseParser {
    buffer: String,
    id: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.push_str(&String::from_utf8_lossy(chunk));
        let mut events = Vec::new();
        while let Some(newline) = self.buffer.find('\n') {
            let line = self.buffer[..newline].trim_end_matches('\r').to_owned();
            self.buffer.drain(..=newline);
            if line.is_empty() {
                if self.id.is_some() || !self.data.is_empty() {
                    events.push(Event {
                        id: self.id.take(),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            } else if let Some(value) = line.strip_prefix("id:") {
                self.id = Some(value.trim().to_owned());
            }
        }
        events
    }
}

/// Writes an auth file at `path` with the token `tok-NAME` for each
/// `(name, role)`, hashed by `switchboard hash-token` as a user would do it.
/// It lands in one rename, so a server re-reading it never sees half a file.
pub fn write_auth_file(path: &Path, tokens: &[(&str, &str)]) -> Result<()> {
    let mut text = String::new();
    for (name, role) in tokens {
        text.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\n{}\n",
            hash_token(&format!("tok-{name}"))?
        ));
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// `switchboard hash-token`'s line for the auth file.
fn hash_token(token: &str) -> Result<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(binary())
        .arg("hash-token")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("hash-token's stdin is piped")?
        .write_all(token.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "hash-token: {}", output.status);
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}
