//! The gate in front of every route: browser `Origin` checks (DNS-rebinding
//! protection for a local server), bearer-token authentication, and the
//! bounds on sessions and agents. It also records who each MCP session is
//! (token name, `X-Agent-Name`) for the session layer.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    auth::{Authenticator, Principal},
    mcp::{
        identity::{Identities, Identity},
        sessions::AgentSessions,
    },
    registry::Registry,
};

pub const AGENT_NAME_HEADER: &str = "x-agent-name";
const SESSION_HEADER: &str = "mcp-session-id";

pub struct Guard {
    pub auth: Option<Arc<Authenticator>>,
    pub allowed_origins: Vec<String>,
    pub identities: Arc<Identities>,
    pub sessions: Arc<AgentSessions>,
    pub registry: Arc<Registry>,
    pub max_agents: usize,
    pub max_sessions: usize,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = refuse(StatusCode::UNAUTHORIZED, message.to_owned());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"switchboard\""),
    );
    response
}

/// A page served from this machine itself is no rebinding attack: the
/// attacker's page carries its own (foreign) origin.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.split(':').next().unwrap_or_default(),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Guard {
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default();
        if is_loopback_origin(origin)
            || self.allowed_origins.iter().any(|allowed| allowed == origin)
        {
            return Ok(());
        }
        Err(Box::new(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "requests from origin {origin:?} are not allowed; start the server with --allow-origin {origin} to permit them"
            ),
        )))
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Box<Response>> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let token = header_str(headers, header::AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Box::new(unauthorized(
                    "this server requires an access token: send Authorization: Bearer <token>",
                ))
            })?;
        auth.verify(token.trim()).map(Some).ok_or_else(|| {
            Box::new(unauthorized(
                "the access token is not valid; check it against the server's auth file",
            ))
        })
    }
}

/// Guards `/mcp`.
pub async fn mcp(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Err(response) = guard.check_origin(headers) {
        return *response;
    }
    let principal = match guard.authenticate(headers) {
        Ok(principal) => principal,
        Err(response) => return *response,
    };
    if let Some(p) = &principal
        && !p.role.may_use_mcp()
    {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "the token of {} is for triggers only and cannot open MCP sessions",
                p.name
            ),
        );
    }
    let declared = header_str(headers, AGENT_NAME_HEADER)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let identity = Identity {
        fixed: principal.as_ref().map(|p| p.name.clone()),
        declared,
    };
    let session = header_str(headers, SESSION_HEADER).map(str::to_owned);
    match &session {
        Some(session) => {
            if let Some(known) = guard.identities.get(session)
                && known.fixed.is_some()
                && known.fixed != identity.fixed
            {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this session belongs to another token; start a new session with your own"
                        .into(),
                );
            }
            // Also covers sessions restored after a restart, whose identity
            // was only in memory.
            guard.identities.update(session, identity.clone());
            if request.method() == Method::GET
                && !guard.registry.is_attached(session)
                && guard.registry.online_count() >= guard.max_agents
            {
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the server already holds its maximum of {} agents; try again later or raise --max-agents",
                        guard.max_agents
                    ),
                );
            }
        }
        None if request.method() == Method::POST
            && guard.sessions.count() >= guard.max_sessions =>
        {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server already holds its maximum of {} sessions; try again later or raise --max-sessions",
                    guard.max_sessions
                ),
            );
        }
        None => {}
    }
    let response = next.run(request).await;
    if session.is_none()
        && let Some(created) = header_str(response.headers(), SESSION_HEADER)
    {
        guard.identities.record(created, identity);
    }
    response
}

/// Guards `/v1/*`: `post` says whether the route sends messages.
async fn trigger(guard: &Guard, mut request: Request, next: Next, sends: bool) -> Response {
    if let Err(response) = guard.check_origin(request.headers()) {
        return *response;
    }
    match guard.authenticate(request.headers()) {
        Err(response) => *response,
        Ok(Some(p)) if sends && !p.role.may_trigger() => refuse(
            StatusCode::FORBIDDEN,
            format!(
                "the token of {} is for agents; triggers need a token with role trigger or admin",
                p.name
            ),
        ),
        Ok(principal) => {
            if let Some(p) = principal {
                request.extensions_mut().insert(p);
            }
            next.run(request).await
        }
    }
}

pub async fn api(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let sends = request.method() == Method::POST;
    trigger(&guard, request, next, sends).await
}

#[cfg(test)]
mod tests {
    use super::is_loopback_origin;

    #[test]
    fn loopback_origins_are_recognised() {
        for ok in [
            "http://localhost:6274",
            "http://127.0.0.1",
            "https://[::1]:3000",
            "http://localhost",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "http://localhost.evil.example",
            "null",
            "http://127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }
}
