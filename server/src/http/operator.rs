//! What an operator and an orchestrator look at: `/health` (ready to
//! serve, with the reasons when not), `/livez` (the process runs),
//! `/metrics` (Prometheus), and the permission relay's `/v1/permissions`.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    auth::Principal,
    bus::Bus,
    mcp::sessions::AgentSessions,
    metrics::{OPENMETRICS, PROMETHEUS_TEXT},
    permissions::{AnswerError, Behavior, Permissions},
};

use super::guard::HealthDetail;

#[derive(Clone)]
pub struct Operator {
    pub bus: Arc<Bus>,
    pub sessions: Arc<AgentSessions>,
    /// Set with `--permission-relay`.
    pub permissions: Option<Arc<Permissions>>,
    /// Cancelled at shutdown: the dashboard's event streams end then.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Operator {
    /// Why the server is degraded: it still serves, but not as configured.
    async fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let chain = self.bus.filters().info();
        if let Some(error) = chain.refused {
            problems.push(format!(
                "the last reload of the filter chain was refused, so chain generation {} (older than the file) still serves: {error}",
                chain.generation
            ));
        }
        if let Err(error) = self.bus.registry().cluster().health().await {
            problems.push(error.to_string());
        }
        problems
    }
}

/// 200 when the server serves as configured, 503 (still serving) when the
/// chain file's last reload was refused or the cluster's Redis is
/// unreachable. Without a token under `--auth`, only the status.
pub async fn health(
    State(operator): State<Operator>,
    Extension(HealthDetail(detail)): Extension<HealthDetail>,
) -> Response {
    let problems = operator.problems().await;
    let (code, status) = if problems.is_empty() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    if !detail {
        return (code, Json(json!({ "status": status }))).into_response();
    }
    let (waiting, expired) = operator.bus.registry().mail().counts().await;
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "agents": operator.bus.registry().online_count(),
        "inbox": { "waiting": waiting, "expired": expired },
        "chain": operator.bus.filters().info(),
    });
    if !problems.is_empty() {
        body["problems"] = json!(problems);
    }
    (code, Json(body)).into_response()
}

/// Liveness only: answering at all is the answer.
pub async fn livez() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic
/// text format for everyone else.
pub async fn metrics(State(operator): State<Operator>, headers: HeaderMap) -> Response {
    let metrics = operator.bus.metrics();
    let set = |gauge: &prometheus_client::metrics::gauge::Gauge, value: usize| {
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    };
    set(&metrics.agents, operator.bus.registry().online_count());
    set(&metrics.sessions, operator.sessions.count());
    let (queued, fullest) = operator.bus.registry().queued();
    set(&metrics.queued, queued);
    set(&metrics.queue_max, fullest);
    set(
        &metrics.resume_window_bytes,
        operator.bus.registry().resume_window_bytes(),
    );
    let chain = operator.bus.filters().info();
    metrics
        .chain_generation
        .set(i64::try_from(chain.generation).unwrap_or(i64::MAX));
    set(&metrics.chain_filters, chain.filters.len());
    metrics
        .chain_refused
        .set(i64::from(chain.refused.is_some()));
    if let Some(redis_up) = &metrics.redis_up {
        let up = operator.bus.registry().cluster().health().await.is_ok();
        redis_up.set(i64::from(up));
    }
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            metrics.render_classic(),
        )
            .into_response()
    }
}

fn error(status: StatusCode, sentence: String) -> Response {
    (status, Json(json!({ "error": sentence }))).into_response()
}

fn relay(operator: &Operator) -> Result<&Arc<Permissions>, Box<Response>> {
    operator.permissions.as_ref().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "the permission relay is off; start the server with --permission-relay".into(),
        ))
    })
}

/// `GET /v1/permissions`: the requests waiting for an answer, oldest first.
pub async fn list_permissions(State(operator): State<Operator>) -> Response {
    match relay(&operator) {
        Ok(permissions) => Json(json!({ "pending": permissions.list() })).into_response(),
        Err(response) => *response,
    }
}

#[derive(serde::Deserialize)]
pub struct Answer {
    behavior: Behavior,
}

/// `POST /v1/permissions/{id}` with `{"behavior": "allow" | "deny"}`.
pub async fn answer_permission(
    State(operator): State<Operator>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    body: Result<Json<Answer>, JsonRejection>,
) -> Response {
    let permissions = match relay(&operator) {
        Ok(permissions) => permissions,
        Err(response) => return *response,
    };
    let Json(answer) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "send {{\"behavior\": \"allow\"}} or {{\"behavior\": \"deny\"}} ({})",
                    rejection.body_text()
                ),
            );
        }
    };
    let by = principal.map(|Extension(p)| p.name);
    match permissions.answer(&id, answer.behavior) {
        Ok(decision) => {
            tracing::info!(
                id = %decision.pending.id,
                agent = decision.pending.agent.as_deref(),
                tool = %decision.pending.tool_name,
                behavior = ?decision.behavior,
                by = by.as_deref(),
                "permission answered"
            );
            if let Some(audit) = operator.bus.audit() {
                audit.record_permission(&decision, by.as_deref());
            }
            Json(json!({
                "id": decision.pending.id,
                "request_id": decision.pending.request_id,
                "agent": decision.pending.agent,
                "behavior": decision.behavior,
            }))
            .into_response()
        }
        Err(problem) => {
            let status = match problem {
                AnswerError::Unknown(_) => StatusCode::NOT_FOUND,
                AnswerError::Stale { .. } => StatusCode::GONE,
                AnswerError::Unreachable { .. } => StatusCode::CONFLICT,
            };
            error(status, problem.to_string())
        }
    }
}
