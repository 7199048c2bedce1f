//! `/mcp`, MCP's streamable HTTP transport in its session mode. `POST`
//! carries one JSON-RPC message: `initialize` without a session creates one
//! (`Mcp-Session-Id`), a request is answered on the request itself (plain
//! JSON, or one SSE event for a client that accepts only a stream), a
//! notification gets 202. `GET` opens the session's agent stream (with
//! `Last-Event-ID`, a resume), `DELETE` ends the session.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, ErrorData, ProtocolVersion,
    ServerJsonRpcMessage,
};

use super::{event_stream, header_str, jsonrpc_body, refuse};
use crate::{
    mcp::{Mcp, SSE_RETRY},
    registry::AttachError,
};

pub const SESSION_HEADER: &str = "mcp-session-id";
const PROTOCOL_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID_HEADER: &str = "last-event-id";
const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// What `/mcp` needs beside the MCP layer itself.
pub struct Transport {
    pub mcp: Arc<Mcp>,
    pub max_body_bytes: usize,
    pub keep_alive: Duration,
}

/// A media type without its parameters (`application/json; charset=utf-8`).
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// Whether the `Accept` header names `media` (or any type).
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(media_type)
        .any(|range| range.eq_ignore_ascii_case(media) || range == "*/*")
}

/// A protocol revision named in `MCP-Protocol-Version` must be one we know:
/// the refusal of one we do not.
fn unknown_protocol(headers: &HeaderMap) -> Option<Response> {
    let value = headers.get(PROTOCOL_HEADER)?;
    let known = value.to_str().ok().is_some_and(|version| {
        ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .any(|known| known.as_str() == version)
    });
    (!known).then(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "unsupported MCP-Protocol-Version {:?}; this server speaks 2025-11-25 and earlier",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )
    })
}

fn session_required() -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        "this request needs the Mcp-Session-Id header of a session; start one with initialize",
    )
}

fn session_not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no such session (it ended or the server forgot it); start a new one with initialize",
    )
}

/// The answer to a request: JSON when the client takes it, else one event.
fn answer(headers: &HeaderMap, message: &ServerJsonRpcMessage) -> Response {
    // Our messages are plain JSON: serializing cannot fail.
    let body = serde_json::to_string(message).unwrap_or_default();
    if !accepts(headers, JSON) {
        let event = event_stream::event(&body, None, None);
        return event_stream::response(Some(event), futures::stream::empty(), Duration::MAX);
    }
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

pub async fn post(State(transport): State<Arc<Transport>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if !accepts(headers, JSON) && !accepts(headers, EVENT_STREAM) {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "the client must accept application/json or text/event-stream",
        );
    }
    let is_json = header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|v| media_type(v).eq_ignore_ascii_case(JSON));
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be a JSON-RPC message with Content-Type: application/json",
        );
    }
    if let Some(refusal) = unknown_protocol(headers) {
        return refusal;
    }
    let message = match jsonrpc_body::read(body, transport.max_body_bytes).await {
        Ok(message) => message,
        Err(response) => return response,
    };
    let mcp = &transport.mcp;
    let Some(session) = header_str(headers, SESSION_HEADER) else {
        return without_session(&transport, headers, message).await;
    };
    if !mcp.sessions.find(session) {
        return session_not_found();
    }
    match mcp.protocol.handle(session, message).await {
        Some(reply) => answer(headers, &reply),
        None => StatusCode::ACCEPTED.into_response(),
    }
}

/// A message without a session: `initialize` starts one; anything else is
/// refused (`server/discover` as an unknown method, so Claude Code falls
/// back to `initialize`).
async fn without_session(
    transport: &Transport,
    headers: &HeaderMap,
    message: ClientJsonRpcMessage,
) -> Response {
    let ClientJsonRpcMessage::Request(request) = message else {
        return session_required();
    };
    let session = match &request.request {
        ClientRequest::InitializeRequest(initialize) => {
            transport.mcp.sessions.create(&initialize.params)
        }
        ClientRequest::DiscoverRequest(_) => {
            let error = ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                "server/discover is not offered; use initialize",
                None,
            );
            return answer(
                headers,
                &ServerJsonRpcMessage::error(error, Some(request.id)),
            );
        }
        _ => return session_required(),
    };
    let reply = transport
        .mcp
        .protocol
        .handle(&session, ClientJsonRpcMessage::Request(request))
        .await;
    let mut response = match reply {
        Some(reply) => answer(headers, &reply),
        None => StatusCode::ACCEPTED.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&session) {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

pub async fn get(State(transport): State<Arc<Transport>>, headers: HeaderMap) -> Response {
    if !accepts(&headers, EVENT_STREAM) {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "the event stream needs Accept: text/event-stream",
        );
    }
    let Some(session) = header_str(&headers, SESSION_HEADER) else {
        return session_required();
    };
    if !transport.mcp.sessions.find(session) {
        return session_not_found();
    }
    if let Some(refusal) = unknown_protocol(&headers) {
        return refusal;
    }
    let last_event_id = header_str(&headers, LAST_EVENT_ID_HEADER);
    let stream = match transport
        .mcp
        .sessions
        .open_stream(session, last_event_id)
        .await
    {
        Ok(stream) => stream,
        Err(error) => {
            let status = match error {
                AttachError::TokenInUse(_) => StatusCode::CONFLICT,
                AttachError::Closed => StatusCode::NOT_FOUND,
                AttachError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            return refuse(status, error.to_string());
        }
    };
    // A fresh stream starts with the retry hint and event id 0 (nothing
    // seen yet); a resumed one goes on from the client's last event id.
    let first: Option<Bytes> = match last_event_id {
        None => Some(event_stream::event("", Some("0"), Some(SSE_RETRY))),
        Some(_) => None,
    };
    event_stream::response(first, stream, transport.keep_alive)
}

pub async fn delete(State(transport): State<Arc<Transport>>, headers: HeaderMap) -> Response {
    let Some(session) = header_str(&headers, SESSION_HEADER) else {
        return session_required();
    };
    if let Some(refusal) = unknown_protocol(&headers) {
        return refusal;
    }
    if !transport.mcp.sessions.exists(session) {
        return session_not_found();
    }
    transport.mcp.sessions.close(session).await;
    StatusCode::ACCEPTED.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_ranges_are_read_without_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.9, text/event-stream"),
        );
        assert!(accepts(&headers, JSON));
        assert!(accepts(&headers, EVENT_STREAM));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert!(!accepts(&headers, JSON));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&headers, EVENT_STREAM));
    }
}
