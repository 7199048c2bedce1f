//! The gate in front of every route: `Host` and browser `Origin` checks
//! (DNS-rebinding protection for a local server), CORS for the origins
//! allowed with `--allow-origin`, bearer-token authentication, and the bounds
//! on sessions and agents. It also records who each existing MCP session is
//! (token name, `X-Agent-Name`) for the session layer.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{header_str, refuse, streamable::SESSION_HEADER};
use crate::{
    auth::{Principal, Role, Tokens},
    mcp::{
        identity::{Identities, Identity, MAX_DECLARED_BYTES},
        sessions::AgentSessions,
    },
    message::clip,
    registry::{AttachError, Registry},
};

pub const AGENT_NAME_HEADER: &str = "x-agent-name";

pub struct Guard {
    pub auth: Option<Arc<Tokens>>,
    /// Any `Host` is fine (bound beyond loopback); otherwise only loopback names.
    pub any_host: bool,
    pub allowed_origins: Vec<String>,
    pub identities: Arc<Identities>,
    pub sessions: Arc<AgentSessions>,
    pub registry: Arc<Registry>,
    pub max_agents: usize,
    pub max_sessions: usize,
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

/// Whether `authority` (a `Host` header) names this machine's loopback.
fn is_loopback_host(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "::1"
}

/// The token of an `Authorization` header: the scheme is case-insensitive.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Guard {
    /// A page on a rebinding domain reaches a loopback server with its own
    /// name in `Host`.
    fn check_host(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        if self.any_host {
            return Ok(());
        }
        match header_str(headers, header::HOST.as_str()) {
            Some(host) if is_loopback_host(host) => Ok(()),
            host => Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "requests for host {:?} are not served: this server listens on loopback; use localhost or 127.0.0.1",
                    host.map(|h| clip(h, 64)).unwrap_or_default()
                ),
            ))),
        }
    }

    /// The `Origin` of a browser request, when `--allow-origin` lists it.
    fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let origin = header_str(headers, header::ORIGIN.as_str())?;
        self.allowed_origins
            .iter()
            .any(|allowed| allowed == origin)
            .then_some(origin)
    }

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
            .and_then(bearer_token)
            .ok_or_else(|| {
                Box::new(unauthorized(
                    "this server requires an access token: send Authorization: Bearer <token>",
                ))
            })?;
        auth.current().verify(token).map(Some).ok_or_else(|| {
            Box::new(unauthorized(
                "the access token is not valid; check it against the server's auth file",
            ))
        })
    }
}

/// Headers a browser client of `/mcp` and `/v1/*` sends and reads.
const CORS_ALLOW_HEADERS: &str = "authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, x-agent-name";
const CORS_EXPOSE_HEADERS: &str = "mcp-session-id, www-authenticate";

/// CORS for the origins listed with `--allow-origin`: answers their
/// preflights and marks their responses readable. Other origins get no CORS
/// headers (the routes' guards refuse them anyway).
pub async fn cors(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let Some(origin) = guard
        .allowed_origin(request.headers())
        .and_then(|o| HeaderValue::from_str(o).ok())
    else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        if let Err(response) = guard.check_host(request.headers()) {
            return *response;
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(CORS_ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// Whether `/health` may show more than its status: always without
/// `--auth`, with it only to a valid token.
#[derive(Clone, Copy)]
pub struct HealthDetail(pub bool);

/// Guards `/health`: the host and origin checks, and how much it shows.
pub async fn health(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Err(response) = guard
        .check_host(headers)
        .and_then(|()| guard.check_origin(headers))
    {
        return *response;
    }
    let detail = guard.auth.is_none() || matches!(guard.authenticate(headers), Ok(Some(_)));
    request.extensions_mut().insert(HealthDetail(detail));
    next.run(request).await
}

/// Guards the operator's routes: the host and origin checks, and with
/// `--auth` an `admin` token.
pub async fn admin(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Err(response) = guard
        .check_host(headers)
        .and_then(|()| guard.check_origin(headers))
    {
        return *response;
    }
    match guard.authenticate(headers) {
        Err(response) => *response,
        Ok(Some(p)) if p.role != Role::Admin => refuse(
            StatusCode::FORBIDDEN,
            format!(
                "the token of {} is not an admin token; this route needs role admin",
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

/// Guards `/mcp`.
pub async fn mcp(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Err(response) = guard
        .check_host(headers)
        .and_then(|()| guard.check_origin(headers))
    {
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
        .map(|n| clip(n, MAX_DECLARED_BYTES).to_owned());
    let identity = Identity {
        fixed: principal.as_ref().map(|p| p.name.clone()),
        declared,
    };
    let session = header_str(headers, SESSION_HEADER).map(str::to_owned);
    match &session {
        // The transport answers 404 for it; nothing is recorded for a made-up id.
        Some(session) if !guard.sessions.exists(session) => {}
        Some(session) => {
            // The token that created the session, also after a restart.
            let owner = guard
                .identities
                .get(session)
                .and_then(|known| known.fixed)
                .or_else(|| guard.sessions.owner(session));
            if owner.is_some() && owner != identity.fixed {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this session belongs to another token; start a new session with your own",
                );
            }
            // Also covers sessions restored after a restart, whose identity
            // was only in memory.
            guard.identities.update(session, identity.clone());
            if request.method() == Method::GET
                && let Some(name) = &identity.fixed
                && guard
                    .registry
                    .online_holder(name)
                    .is_some_and(|holder| holder != *session)
            {
                return refuse(
                    StatusCode::CONFLICT,
                    AttachError::TokenInUse(name.clone()).to_string(),
                );
            }
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
        None => {}
    }
    // A slot is held from the check until the session exists, so concurrent
    // initializes cannot all pass the same check.
    let slot = match session {
        None if request.method() == Method::POST => {
            match guard.sessions.reserve_slot(guard.max_sessions) {
                Some(slot) => Some(slot),
                None => {
                    return refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "the server already holds its maximum of {} sessions; try again later or raise --max-sessions",
                            guard.max_sessions
                        ),
                    );
                }
            }
        }
        _ => None,
    };
    let response = next.run(request).await;
    if slot.is_some()
        && let Some(created) = header_str(response.headers(), SESSION_HEADER)
    {
        if let Some(owner) = &identity.fixed {
            guard.sessions.set_owner(created, owner);
        }
        guard.identities.record(created, identity);
    }
    response
}

/// Guards `/v1/*`: `post` says whether the route sends messages.
async fn trigger(guard: &Guard, mut request: Request, next: Next, sends: bool) -> Response {
    if let Err(response) = guard
        .check_host(request.headers())
        .and_then(|()| guard.check_origin(request.headers()))
    {
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
    use proptest::prelude::*;

    use super::{bearer_token, is_loopback_host, is_loopback_origin};

    #[test]
    fn bearer_schemes_in_any_case() {
        for header in ["Bearer t1", "bearer t1", "BEARER  t1 ", " Bearer t1"] {
            assert_eq!(bearer_token(header), Some("t1"), "{header:?}");
        }
        for header in ["Basic t1", "Bearert1", "", "Bearer"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for ok in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:1",
            "[::1]:3000",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.1.nip.io", "localhost.evil", ""] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn header_parsers_never_panic(text in "\\PC{0,80}") {
            let _ = bearer_token(&text);
            let _ = is_loopback_host(&text);
            let _ = is_loopback_origin(&text);
        }
    }

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
