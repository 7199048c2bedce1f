//! A small MCP client over streamable HTTP, as Claude Code speaks it:
//! `initialize`, `notifications/initialized`, the standalone event stream
//! (GET), tool calls, and `DELETE` on the way out. The headers it is given
//! (`X-Agent-Name`, `Authorization`) go on every request.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use futures::StreamExt;
use reqwest::{
    StatusCode,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use serde_json::{Value, json};

use super::{
    ClientError,
    sse::{SseDecoder, SseEvent},
};

/// The newest revision the server speaks (it refuses later ones for Claude Code's sake).
const PROTOCOL: &str = "2025-11-25";
/// Bound on any request but the event stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const SESSION_HEADER: &str = "mcp-session-id";

/// An initialized MCP session.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    session: String,
    protocol: String,
    next_id: AtomicU64,
}

/// A tool's answer, flattened.
#[derive(Debug, Clone)]
pub struct ToolAnswer {
    pub text: String,
    pub is_error: bool,
    pub structured: Value,
}

impl McpClient {
    /// Opens a session on `url` (the `/mcp` endpoint).
    pub async fn connect(url: &str, headers: &[(&str, String)]) -> Result<Self, ClientError> {
        let mut default_headers = HeaderMap::new();
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|_| {
                ClientError::Usage(format!("the {name} header value is not valid HTTP text"))
            })?;
            default_headers.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("static name"),
                value,
            );
        }
        let http = reqwest::Client::builder()
            .default_headers(default_headers)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| ClientError::connect(url, source))?;
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "switchboard-join", "version": env!("CARGO_PKG_VERSION")}
        }});
        let response = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|source| ClientError::connect(url, source))?;
        let response = ok_or_refused(response).await?;
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Protocol("initialize gave no Mcp-Session-Id".into()))?
            .to_owned();
        let reply = first_reply(response).await?;
        let protocol = reply
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::Protocol(format!("initialize failed: {reply}")))?
            .to_owned();
        let client = Self {
            http,
            url: url.to_owned(),
            session,
            protocol,
            next_id: AtomicU64::new(1),
        };
        client
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(client)
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        self.http
            .request(method, &self.url)
            .header(SESSION_HEADER, &self.session)
            .header("mcp-protocol-version", &self.protocol)
    }

    async fn post(&self, body: &Value) -> Result<reqwest::Response, ClientError> {
        let response = self
            .request(reqwest::Method::POST)
            .header("accept", "application/json, text/event-stream")
            .json(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|source| ClientError::connect(&self.url, source))?;
        ok_or_refused(response).await
    }

    /// Calls a tool; a tool error (`isError`) is an answer, not an `Err`.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<ToolAnswer, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}});
        let reply = first_reply(self.post(&body).await?).await?;
        let Some(result) = reply.get("result") else {
            let message = reply
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no result");
            return Err(ClientError::Protocol(format!("{name}: {message}")));
        };
        Ok(ToolAnswer {
            text: result
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            is_error: result
                .get("isError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            structured: result
                .get("structuredContent")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// Opens the standalone event stream: from now on the session is an agent.
    pub async fn open_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, ClientError> {
        let mut request = self
            .request(reqwest::Method::GET)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::connect(&self.url, source))?;
        let response = ok_or_refused(response).await?;
        Ok(EventStream {
            body: response.bytes_stream().map(|c| c.map(Vec::from)).boxed(),
            decoder: SseDecoder::default(),
            ready: Vec::new(),
        })
    }

    /// Ends the session, so the agent leaves at once rather than when the
    /// stream's drop is noticed.
    pub async fn close(&self) {
        // Leaving is best effort: the server also notices the stream closing.
        let _ = self
            .request(reqwest::Method::DELETE)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
    }
}

type ByteStream = futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>;

/// The agent's event stream.
pub struct EventStream {
    body: ByteStream,
    decoder: SseDecoder,
    ready: Vec<SseEvent>,
}

impl EventStream {
    /// The next event with data; `None` when the server ends the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if !self.ready.is_empty() {
                return Some(self.ready.remove(0));
            }
            let chunk = self.body.next().await?.ok()?;
            self.ready = self
                .decoder
                .push(&chunk)
                .into_iter()
                .filter(|event| !event.data.trim().is_empty())
                .collect();
        }
    }
}

/// Turns a non-success status into the server's one-sentence error.
async fn ok_or_refused(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(ClientError::Refused {
        status,
        message: server_error_text(status, &body),
    })
}

/// The `error` of a JSON error body, or the body itself, or the status.
pub fn server_error_text(status: StatusCode, body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.as_str().or_else(|| e.get("message")?.as_str()))
                .map(str::to_owned)
        })
        .or_else(|| Some(body.trim().to_owned()).filter(|b| !b.is_empty()))
        .unwrap_or_else(|| status.to_string())
}

/// Reads a POST answer (plain JSON or an SSE stream) up to its JSON-RPC response.
async fn first_reply(response: reqwest::Response) -> Result<Value, ClientError> {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()));
    }
    let mut body = response.bytes_stream();
    let mut decoder = SseDecoder::default();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ClientError::Protocol(e.to_string()))?;
        for event in decoder.push(&chunk) {
            if let Ok(value) = serde_json::from_str::<Value>(&event.data)
                && value.get("id").is_some()
            {
                return Ok(value);
            }
        }
    }
    Err(ClientError::Protocol(
        "the answer ended before the JSON-RPC response".into(),
    ))
}
