//! The MCP client, spoken as Claude Code speaks it over streamable HTTP:
//! `initialize`, `notifications/initialized`, the standalone `GET` event
//! stream that makes a session an agent, and `tools/call`. Answers to POSTs
//! may come as JSON or as an SSE stream holding the JSON-RPC response.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use futures::{Stream, StreamExt};
use reqwest::{RequestBuilder, Response, StatusCode, Url, header::HeaderValue};
use serde::{Deserialize, Serialize, de::DeserializeOwned, de::IgnoredAny};
use serde_json::json;

use crate::sse;

pub const PROTOCOL_VERSION: &str = "2025-11-25";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const POST_ACCEPT: &str = "application/json, text/event-stream";
const NAME_HEADER: &str = "x-agent-name";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{what} failed: {source}")]
    Http {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("{what} answered HTTP {status}: {body}")]
    Status {
        what: &'static str,
        status: StatusCode,
        body: String,
    },
    #[error("initialize answered without an Mcp-Session-Id header")]
    NoSessionId,
    #[error("{what}: the response ended without a JSON-RPC answer")]
    NoAnswer { what: &'static str },
    #[error("{what}: JSON-RPC error {code}: {message}")]
    Rpc {
        what: &'static str,
        code: i64,
        message: String,
    },
    #[error("{what}: unreadable answer: {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{0} is not a URL: {1}")]
    BadUrl(String, String),
    #[error("list-agents says this session is not an agent: {0}")]
    NotAnAgent(String),
}

/// The server, as every session of one run shares it: one connection pool.
#[derive(Clone)]
pub struct Endpoint {
    http: reqwest::Client,
    url: Url,
    timeout: Duration,
}

impl Endpoint {
    /// `connections` sizes the idle pool: each agent's stream holds one
    /// connection and every concurrent call another, and a pool that is too
    /// small makes calls reconnect, which is what would then be measured.
    pub fn new(url: &str, connections: usize, timeout: Duration) -> Result<Self, ClientError> {
        let url = Url::parse(url).map_err(|e| ClientError::BadUrl(url.into(), e.to_string()))?;
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(connections)
            // The server is measured, not whatever proxy the environment names.
            .no_proxy()
            .build()
            .map_err(|source| ClientError::Http {
                what: "building the HTTP client",
                source,
            })?;
        Ok(Self { http, url, timeout })
    }

    /// `GET /health`'s count of online agents.
    pub async fn online_agents(&self) -> Result<u64, ClientError> {
        #[derive(Deserialize)]
        struct Health {
            agents: u64,
        }
        let what = "GET /health";
        let mut url = self.url.clone();
        url.set_path("/health");
        let response = send(what, self.http.get(url).timeout(self.timeout)).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Http { what, source })?;
        let health: Health = serde_json::from_slice(&bytes)
            .map_err(|source| ClientError::Decode { what, source })?;
        Ok(health.agents)
    }

    /// Opens a session: `initialize`, then `notifications/initialized`.
    /// With `name`, the session declares it (`X-Agent-Name`), as a Claude
    /// Code configured with a stable name does.
    pub async fn open(&self, name: Option<&str>) -> Result<Session, ClientError> {
        let what = "initialize";
        let mut request = self
            .http
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, POST_ACCEPT);
        if let Some(name) = name {
            request = request.header(NAME_HEADER, name);
        }
        let request = request.json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "switchboard-load", "version": env!("CARGO_PKG_VERSION")}
            }}),
        );
        let response = send(what, request).await?;
        let id = response
            .headers()
            .get(SESSION_HEADER)
            .cloned()
            .ok_or(ClientError::NoSessionId)?;
        answer::<IgnoredAny>(what, response).await?;
        let session = Session {
            endpoint: self.clone(),
            id,
            next_id: AtomicU64::new(1),
        };
        let what = "notifications/initialized";
        send(
            what,
            session
                .post()
                .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        )
        .await?;
        Ok(session)
    }
}

/// An initialized MCP session.
pub struct Session {
    endpoint: Endpoint,
    id: HeaderValue,
    next_id: AtomicU64,
}

/// A tool's answer, with its structured content typed as the caller needs.
pub struct ToolReply<S> {
    pub is_error: bool,
    pub text: String,
    pub structured: Option<S>,
}

#[derive(Serialize)]
struct Call<'a, A> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: CallParams<'a, A>,
}

#[derive(Serialize)]
struct CallParams<'a, A> {
    name: &'a str,
    arguments: A,
}

#[derive(Deserialize)]
struct WireToolResult<S> {
    #[serde(default)]
    content: Vec<WireText>,
    #[serde(default, rename = "isError")]
    is_error: bool,
    #[serde(rename = "structuredContent")]
    structured: Option<S>,
}

#[derive(Deserialize)]
struct WireText {
    #[serde(default)]
    text: String,
}

#[derive(Serialize)]
pub struct SendArgs<'a> {
    pub to: &'a str,
    pub message: &'a str,
}

impl Session {
    fn post(&self) -> RequestBuilder {
        self.endpoint
            .http
            .post(self.endpoint.url.clone())
            .timeout(self.endpoint.timeout)
            .header(reqwest::header::ACCEPT, POST_ACCEPT)
            .header(SESSION_HEADER, self.id.clone())
            .header(VERSION_HEADER, PROTOCOL_VERSION)
    }

    /// Calls a tool; a tool error is a reply with `is_error`, not an `Err`.
    pub async fn call<A: Serialize, S: DeserializeOwned>(
        &self,
        tool: &str,
        arguments: A,
    ) -> Result<ToolReply<S>, ClientError> {
        let what = "tools/call";
        let call = Call {
            jsonrpc: "2.0",
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            method: "tools/call",
            params: CallParams {
                name: tool,
                arguments,
            },
        };
        let response = send(what, self.post().json(&call)).await?;
        let result: WireToolResult<S> = answer(what, response).await?;
        Ok(ToolReply {
            is_error: result.is_error,
            text: result
                .content
                .into_iter()
                .next()
                .unwrap_or(WireText {
                    text: String::new(),
                })
                .text,
            structured: result.structured,
        })
    }

    /// This session's agent name, from `list-agents`.
    pub async fn whoami(&self) -> Result<String, ClientError> {
        #[derive(Deserialize)]
        struct Roster {
            you: Option<String>,
        }
        let reply: ToolReply<Roster> = self.call("list-agents", json!({})).await?;
        // A server that answers in text only (the Node peer) says "(you are NAME)".
        let from_text = || {
            let (_, rest) = reply.text.rsplit_once("(you are ")?;
            let name = rest.strip_suffix(')')?;
            (!name.contains(' ')).then(|| name.to_owned())
        };
        reply
            .structured
            .and_then(|roster| roster.you)
            .or_else(from_text)
            .ok_or(ClientError::NotAnAgent(reply.text))
    }

    /// Opens the standalone event stream, which makes this session an agent,
    /// resuming after `last_event_id` when given. The stream yields decoded
    /// events until the server or the connection ends it.
    pub async fn open_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<impl Stream<Item = sse::Event> + Send + 'static, ClientError> {
        let what = "GET event stream";
        let mut request = self
            .endpoint
            .http
            .get(self.endpoint.url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(SESSION_HEADER, self.id.clone())
            .header(VERSION_HEADER, PROTOCOL_VERSION);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = send(what, request).await?;
        let mut decoder = sse::Decoder::default();
        Ok(response
            .bytes_stream()
            .take_while(|chunk| std::future::ready(chunk.is_ok()))
            .flat_map(move |chunk| {
                let events = chunk.map(|c| decoder.push(&c)).unwrap_or_default();
                futures::stream::iter(events)
            }))
    }
}

async fn send(what: &'static str, request: RequestBuilder) -> Result<Response, ClientError> {
    let response = request
        .send()
        .await
        .map_err(|source| ClientError::Http { what, source })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(ClientError::Status {
        what,
        status,
        body: body.chars().take(200).collect(),
    })
}

#[derive(Deserialize)]
struct Reply<T> {
    result: Option<T>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
}

impl<T> Reply<T> {
    fn into_result(self, what: &'static str) -> Option<Result<T, ClientError>> {
        match (self.result, self.error) {
            (Some(result), _) => Some(Ok(result)),
            (None, Some(error)) => Some(Err(ClientError::Rpc {
                what,
                code: error.code,
                message: error.message,
            })),
            (None, None) => None,
        }
    }
}

/// Reads a POST's JSON-RPC answer, from a JSON body or from the first SSE
/// event that holds one (rmcp opens with an empty priming event).
async fn answer<T: DeserializeOwned>(
    what: &'static str,
    response: Response,
) -> Result<T, ClientError> {
    let is_sse = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Http { what, source })?;
        let reply: Reply<T> = serde_json::from_slice(&bytes)
            .map_err(|source| ClientError::Decode { what, source })?;
        return reply
            .into_result(what)
            .unwrap_or(Err(ClientError::NoAnswer { what }));
    }
    let mut body = response.bytes_stream();
    let mut decoder = sse::Decoder::default();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| ClientError::Http { what, source })?;
        for event in decoder.push(&chunk) {
            if event.data.trim().is_empty() {
                continue;
            }
            let reply: Reply<T> = serde_json::from_str(&event.data)
                .map_err(|source| ClientError::Decode { what, source })?;
            if let Some(result) = reply.into_result(what) {
                return result;
            }
        }
    }
    Err(ClientError::NoAnswer { what })
}
