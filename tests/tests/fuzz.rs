//! A bounded, seeded random HTTP fuzzer against the real binary: malformed
//! and oversized bodies, hostile headers, made-up and real session ids, odd
//! event ids, half-sent requests. Every reply must be well-formed HTTP with
//! no server error, the server must stay up and its memory bounded.
//!
//! `FUZZ_SEED` (default 12) picks the cases and `FUZZ_CASES` (default 3000)
//! how many; a failure prints the seed and the case to replay it.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tests::{Agent, Server};

const WORKERS: u64 = 8;
/// How long one case may take; a reply never comes slower on loopback.
const CASE_TIMEOUT: Duration = Duration::from_secs(10);
/// Resident memory the server may gain over the whole run.
const MAX_RSS_GROWTH_KIB: u64 = 64 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the cases may refer to.
struct Known {
    port: u16,
    sessions: Vec<String>,
    agents: Vec<String>,
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn random_text(rng: &mut fastrand::Rng, max: usize) -> String {
    let len = rng.usize(..=max);
    (0..len)
        .map(|_| match rng.u8(..10) {
            0 => char::from_u32(rng.u32(..0x20)).unwrap_or('x'),
            1 => rng.char(..),
            2 => *pick(
                rng,
                &['"', '\\', '<', '>', '/', '{', '}', '\u{1b}', '\u{202e}'],
            ),
            _ => rng.alphanumeric(),
        })
        .collect()
}

fn session_id(rng: &mut fastrand::Rng, known: &Known) -> Option<String> {
    match rng.u8(..6) {
        0 => None,
        1 | 2 => Some(pick(rng, &known.sessions).clone()),
        3 => Some(random_text(rng, 64).replace(['\r', '\n'], "")),
        4 => Some("a".repeat(rng.usize(..60_000))),
        _ => Some(format!("{}x", pick(rng, &known.sessions))),
    }
}

fn json_body(rng: &mut fastrand::Rng, known: &Known) -> Vec<u8> {
    let to = if rng.bool() {
        pick(rng, &known.agents).clone()
    } else {
        random_text(rng, 40)
    };
    let text = if rng.u8(..10) == 0 {
        "y".repeat(rng.usize(..200_000))
    } else {
        random_text(rng, 200)
    };
    let value = match rng.u8(..8) {
        0 => serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion": pick(rng, &["2025-11-25", "2026-07-28", "1999-01-01", ""]),
            "capabilities": {}, "clientInfo": {"name": text, "version": "0"}}}),
        1 => serde_json::json!({"jsonrpc":"2.0","id":rng.i64(..),"method":"tools/list"}),
        2 => serde_json::json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
            "name":"send-message","arguments":{"to": to, "message": text}}}),
        3 => serde_json::json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{
            "name":"rename-agent","arguments":{"name": text}}}),
        4 => serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        5 => serde_json::json!({"to": to, "content": text, "meta": {random_text(rng, 8): text}}),
        6 => serde_json::json!([{"jsonrpc":"2.0","id":1,"method":"tools/list"}]),
        _ => serde_json::json!({"jsonrpc":"2.0","id":{"nested":[1,2]},"method": text}),
    };
    let mut body = serde_json::to_vec(&value).unwrap_or_default();
    match rng.u8(..6) {
        0 if !body.is_empty() => body.truncate(rng.usize(..body.len())),
        1 => {
            for _ in 0..rng.usize(1..8) {
                if !body.is_empty() {
                    let at = rng.usize(..body.len());
                    body[at] = rng.u8(..);
                }
            }
        }
        2 => body = "[".repeat(rng.usize(..5000)).into_bytes(),
        3 => body = (0..rng.usize(..4096)).map(|_| rng.u8(..)).collect(),
        _ => {}
    }
    body
}

/// One random request, as bytes on the wire, and whether its reply may be
/// an event stream (read only its head then).
fn case(rng: &mut fastrand::Rng, known: &Known) -> (Vec<u8>, bool) {
    let method = *pick(
        rng,
        &["POST", "POST", "GET", "DELETE", "OPTIONS", "PUT", "BREW"],
    );
    let path = match rng.u8(..10) {
        0..=4 => "/mcp".to_owned(),
        5 | 6 => "/v1/messages".to_owned(),
        7 => "/v1/agents".to_owned(),
        8 => "/health".to_owned(),
        _ => format!(
            "/{}",
            random_text(rng, 30).replace(|c: char| !c.is_ascii_graphic(), "")
        ),
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if rng.u8(..20) != 0 {
        head.push_str(&format!(
            "Host: {}\r\n",
            pick(rng, &["127.0.0.1", "localhost:1", "evil.example", "[::1]"])
        ));
    }
    head.push_str("Connection: close\r\n");
    let mut stream = false;
    if rng.bool() {
        let accept = *pick(
            rng,
            &[
                "application/json, text/event-stream",
                "text/event-stream",
                "*/*",
                "text/html",
            ],
        );
        stream = accept.contains("event-stream");
        head.push_str(&format!("Accept: {accept}\r\n"));
    }
    if rng.u8(..4) != 0 {
        let content_type = *pick(
            rng,
            &[
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "APPLICATION/JSON",
            ],
        );
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if let Some(id) = session_id(rng, known) {
        head.push_str(&format!("Mcp-Session-Id: {id}\r\n"));
    }
    if rng.u8(..3) == 0 {
        let last = *pick(
            rng,
            &["msg-0", "msg-18446744073709551615", "msg--1", "0", "msg-1"],
        );
        head.push_str(&format!("Last-Event-ID: {last}\r\n"));
    }
    if rng.u8(..3) == 0 {
        head.push_str(&format!(
            "Mcp-Protocol-Version: {}\r\n",
            pick(rng, &["2025-11-25", "2025-06-18", "bogus"])
        ));
    }
    if rng.u8(..4) == 0 {
        let name = random_text(rng, 80).replace(|c: char| !c.is_ascii_graphic(), "_");
        head.push_str(&format!("X-Agent-Name: {name}\r\n"));
    }
    if rng.u8(..5) == 0 {
        head.push_str(&format!(
            "Authorization: {} {}\r\n",
            pick(rng, &["Bearer", "bearer", "Basic", ""]),
            random_text(rng, 20).replace(|c: char| !c.is_ascii_alphanumeric(), "")
        ));
    }
    if rng.u8(..6) == 0 {
        head.push_str(&format!(
            "Origin: {}\r\n",
            pick(
                rng,
                &["http://evil.example", "http://localhost:5173", "null"]
            )
        ));
    }
    if rng.u8(..15) == 0 {
        head.push_str(&format!(
            "X-Filler: {}\r\n",
            "f".repeat(rng.usize(..100_000))
        ));
    }
    let body = if method == "POST" || rng.u8(..10) == 0 {
        json_body(rng, known)
    } else {
        Vec::new()
    };
    let mut wire = head.into_bytes();
    match rng.u8(..12) {
        // A length that promises more than comes: the server must give up.
        0 => wire
            .extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len() + 10).as_bytes()),
        1 => wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n"),
        _ => wire.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()),
    }
    wire.extend_from_slice(&body);
    if rng.u8(..40) == 0 {
        // Half a request, then silence.
        wire.truncate(rng.usize(..wire.len()));
    }
    (wire, stream)
}

/// Sends `wire` and checks the reply: a status line, no server error other
/// than 503, JSON where it says JSON. `None`: the server closed without a
/// reply, fine for a request that was cut short or refused outright.
async fn run_case(port: u16, wire: &[u8], stream: bool) -> Result<Option<u16>> {
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    // The server may answer (and close) before reading a large body.
    let _ = tcp.write_all(wire).await;
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tcp.read(&mut buf).await {
            Ok(n) => n,
            Err(_) if reply.is_empty() => return Ok(None),
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        let head_done = reply.windows(4).any(|w| w == b"\r\n\r\n");
        if stream
            && head_done
            && reply
                .windows(17)
                .any(|w| w.eq_ignore_ascii_case(b"text/event-stream"))
        {
            break;
        }
    }
    if reply.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&reply);
    let status: u16 = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP reply: {:?}", &text[..text.len().min(200)]))?;
    ensure!(
        status < 500 || status == 503,
        "server error {status}: {}",
        &text[..text.len().min(400)]
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let json = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("content-type: application/json")
    });
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if json && !chunked && !body.is_empty() {
        serde_json::from_str::<serde_json::Value>(body)
            .with_context(|| format!("status {status} with broken JSON: {body:?}"))?;
    }
    Ok(Some(status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_requests_get_well_formed_replies_and_memory_stays_bounded() -> Result<()> {
    let seed = env_u64("FUZZ_SEED", 12);
    let cases = env_u64("FUZZ_CASES", 3000);
    let server = Server::bare(&[
        "--header-read-timeout-ms",
        "1000",
        "--connection-idle-secs",
        "2",
    ])
    .await?;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(Agent::connect(&server.url()).await?);
    }
    let known = std::sync::Arc::new(Known {
        port: server.port,
        sessions: agents.iter().map(|a| a.session.id.clone()).collect(),
        agents: agents.iter().map(|a| a.name.clone()).collect(),
    });
    let before = server.rss_kib()?;
    let started = std::time::Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let known = known.clone();
        workers.push(tokio::spawn(async move {
            let mut rng =
                fastrand::Rng::with_seed(seed.wrapping_mul(1_000_003).wrapping_add(worker));
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            for n in (worker..cases).step_by(WORKERS as usize) {
                let (wire, stream) = case(&mut rng, &known);
                let outcome =
                    tokio::time::timeout(CASE_TIMEOUT, run_case(known.port, &wire, stream)).await;
                let shown = String::from_utf8_lossy(&wire[..wire.len().min(300)]).into_owned();
                match outcome {
                    Err(_) => {
                        bail!("seed {seed} case {n}: no reply within {CASE_TIMEOUT:?}: {shown:?}")
                    }
                    Ok(Err(error)) => bail!("seed {seed} case {n}: {error:#}\nrequest: {shown:?}"),
                    Ok(Ok(status)) => *statuses.entry(status.unwrap_or(0)).or_default() += 1,
                }
            }
            Ok(statuses)
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for worker in workers {
        for (status, count) in worker.await?? {
            *statuses.entry(status).or_default() += count;
        }
    }
    eprintln!(
        "fuzz: seed {seed}, {cases} cases in {:?}: {statuses:?}",
        started.elapsed()
    );
    let health = reqwest::get(format!("{}/health", server.base())).await?;
    assert_eq!(health.status(), 200, "the server is still up");
    let grown = server.rss_kib()?.saturating_sub(before);
    assert!(grown < MAX_RSS_GROWTH_KIB, "RSS grew by {grown} KiB");
    Ok(())
}
