//! The operator's dashboard: the page itself (`GET /`, its script and style,
//! embedded in the binary), and the admin routes it reads: a snapshot of the
//! room (`/v1/dashboard/state`), a live event stream of verdicts and
//! snapshots (`/v1/dashboard/events`), one message's content on request, and
//! a message sent as the operator through the same filter chain.
//!
//! The page is static and holds no data; everything it shows comes from the
//! admin routes, so with `--auth` it asks for an admin token and sends it as
//! a bearer header (which is why the stream is read with `fetch`, not
//! `EventSource`). Agent content is hostile: the page only ever sets it as
//! text, and its Content-Security-Policy allows no inline script, no other
//! origin and no framing.

use std::{collections::HashSet, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    Extension, Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::{
    activity::{Counts, Pair, Verdict},
    auth::Principal,
    metrics::FilterSummary,
    permissions::Pending,
    registry::OPERATOR_NAME,
};

use super::{operator::Operator, trigger::send_response};

const PAGE: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How often an open dashboard gets a fresh snapshot of agents, chain and
/// permission requests; verdicts arrive as they happen.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// Names seen in traffic but not connected now, listed most recent first.
const GONE_LISTED: usize = 20;

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Debug, Serialize)]
pub struct Agent {
    name: String,
    /// `online` (here or on another replica), `away` (its inbox keeps
    /// mail), `gone` (an agent seen in traffic, not connected now) or
    /// `external` (a trigger or an operator that sent in).
    state: &'static str,
    /// When its stream opened (online here only), ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    since_ms: Option<u64>,
    /// Messages waiting for it: in its outbox (online) or inbox (away).
    waiting: usize,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Debug, Serialize)]
pub struct Chain {
    generation: u64,
    disabled: bool,
    filters: Vec<FilterSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Who the operator is: the token's name, or `operator`.
    operator: String,
    agents: Vec<Agent>,
    pairs: Vec<Pair>,
    chain: Chain,
    /// `None` when the permission relay is off.
    permissions: Option<Vec<Pending>>,
}

fn millis(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn operator_name(principal: Option<Extension<Principal>>) -> String {
    principal.map_or_else(|| OPERATOR_NAME.to_owned(), |Extension(p)| p.name)
}

async fn snapshot(operator: &Operator, name: String) -> Snapshot {
    let registry = operator.bus.registry();
    let activity = operator.bus.activity();
    let mut counts = activity.counts();
    let here = registry.online_agents();
    let roster = registry.roster("").await;
    let mut listed = HashSet::new();
    let mut agents = Vec::new();
    for name in roster.agents {
        let local = here.iter().find(|a| a.name == name);
        listed.insert(name.to_lowercase());
        agents.push(Agent {
            since_ms: local.map(|a| millis(a.since)),
            waiting: local.map_or(0, |a| a.waiting),
            counts: counts.remove(&name).unwrap_or_default(),
            state: "online",
            name,
        });
    }
    for away in roster.away {
        listed.insert(away.name.to_lowercase());
        agents.push(Agent {
            since_ms: None,
            waiting: away.waiting,
            counts: counts.remove(&away.name).unwrap_or_default(),
            state: "away",
            name: away.name,
        });
    }
    let mut gone: Vec<(String, Counts)> = counts
        .into_iter()
        .filter(|(name, _)| !listed.contains(&name.to_lowercase()))
        .collect();
    gone.sort_by_key(|(_, counts)| std::cmp::Reverse(counts.last_ms));
    agents.extend(
        gone.into_iter()
            .take(GONE_LISTED)
            .map(|(name, counts)| Agent {
                name,
                state: if counts.agent { "gone" } else { "external" },
                since_ms: None,
                waiting: 0,
                counts,
            }),
    );
    let info = operator.bus.filters().info();
    let metrics = &operator.bus.metrics().filters;
    Snapshot {
        operator: name,
        agents,
        pairs: activity.pairs(),
        chain: Chain {
            generation: info.generation,
            disabled: info.disabled,
            filters: info.filters.iter().map(|f| metrics.summary(f)).collect(),
            refused: info.refused,
        },
        permissions: operator.permissions.as_ref().map(|p| p.list()),
    }
}

/// `GET /v1/dashboard/state`: the room now.
pub async fn state(
    State(operator): State<Operator>,
    principal: Option<Extension<Principal>>,
) -> Json<Snapshot> {
    Json(snapshot(&operator, operator_name(principal)).await)
}

/// What the live stream sends next.
enum Next {
    Verdict(Arc<Verdict>),
    Lagged(u64),
    Snapshot,
}

fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event("error"))
}

/// `GET /v1/dashboard/events`: a `snapshot` at once and every second, the
/// kept verdicts as one `recent` event, then each `verdict` as it happens
/// (`lagged` says how many a slow reader skipped).
pub async fn events(
    State(operator): State<Operator>,
    principal: Option<Extension<Principal>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let name = operator_name(principal);
    // Subscribed before the recent list is read: a verdict in between is
    // shown twice rather than missed, and the page drops the repeat by id.
    let feed = operator.bus.activity().subscribe();
    let recent = operator.bus.activity().recent();
    let mut ticks = tokio::time::interval(SNAPSHOT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let opening = stream::once(std::future::ready(Ok(event("recent", &recent))));
    let live = stream::unfold(
        (operator, name, feed, ticks),
        |(operator, name, mut feed, mut ticks)| async move {
            let next = tokio::select! {
                // Shutdown waits for open connections; a dashboard must not hold it up.
                () = operator.shutdown.cancelled() => return None,
                received = feed.recv() => match received {
                    Ok(verdict) => Next::Verdict(verdict),
                    Err(RecvError::Lagged(skipped)) => Next::Lagged(skipped),
                    Err(RecvError::Closed) => return None,
                },
                _ = ticks.tick() => Next::Snapshot,
            };
            let event = match next {
                Next::Verdict(verdict) => event("verdict", &*verdict),
                Next::Lagged(skipped) => event("lagged", &json!({ "skipped": skipped })),
                Next::Snapshot => event("snapshot", &snapshot(&operator, name.clone()).await),
            };
            Some((Ok(event), (operator, name, feed, ticks)))
        },
    );
    Sse::new(opening.chain(live)).keep_alive(KeepAlive::default())
}

/// `GET /v1/dashboard/messages/{id}`: one recent message's content, which
/// the feed leaves out until the operator asks.
pub async fn content(State(operator): State<Operator>, Path(id): Path<String>) -> Response {
    match operator.bus.activity().content(&id) {
        Some(content) => Json(content).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!(
                "message {id} is not among the last {} kept; only their content can be shown",
                crate::activity::RECENT
            ) })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    to: String,
    message: String,
}

/// `POST /v1/dashboard/send` with `{"to", "message"}`: the operator joins
/// the room; the message takes the filter chain like any other, with
/// `kind="operator"`.
pub async fn send(
    State(operator): State<Operator>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<Send>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!(
                    "send {{\"to\": \"<agent>\", \"message\": \"<text>\"}} ({})",
                    rejection.body_text()
                ) })),
            )
                .into_response();
        }
    };
    let from = operator_name(principal);
    send_response(
        operator
            .bus
            .send_from_operator(&from, &body.to, body.message)
            .await,
    )
}
