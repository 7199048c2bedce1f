//! The external trigger: `POST /v1/messages` drops a message into an agent's
//! session through the same filter chain as agent messages (for CI, monitors,
//! scripts); `GET /v1/agents` lists who is online.

use std::sync::Arc;

use axum::{
    Extension, Json,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    auth::Principal,
    bus::{Bus, Receipt, SendError},
    message::{MetaError, MetaSetter, clip, neutralize_controls},
    registry::{LookupError, NameError, validate_name},
};

/// `from` of triggers when the server runs without authentication.
pub const ANONYMOUS_TRIGGER: &str = "webhook";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerMessage {
    /// Who the caller says it is; only heard when the server runs without auth.
    pub from: Option<String>,
    pub to: String,
    pub content: String,
    pub meta: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the body is not the JSON object {{\"to\", \"content\", \"meta\"?, \"from\"?}}: {0}")]
    Malformed(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("from: {0}")]
    FromName(NameError),
    #[error("from is fixed by the access token as {0}; leave it out")]
    FromFixed(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    from: Option<String>,
    to: String,
    content: String,
    #[serde(default)]
    meta: serde_json::Map<String, serde_json::Value>,
}

/// Parses and validates a trigger body. Caller meta that Claude Code would
/// drop, or that would impersonate the server's keys, is refused, not dropped.
pub fn parse_body(bytes: &[u8]) -> Result<TriggerMessage, BodyError> {
    let body: Body =
        serde_json::from_slice(bytes).map_err(|e| BodyError::Malformed(e.to_string()))?;
    let mut meta = Vec::with_capacity(body.meta.len());
    for (key, value) in body.meta {
        let serde_json::Value::String(value) = value else {
            return Err(BodyError::Malformed(format!(
                "meta value of {} must be a string",
                clip(&key, 64)
            )));
        };
        meta.push((key, value));
    }
    MetaSetter::Trigger.check(&meta)?;
    for (key, value) in &mut meta {
        if key.eq_ignore_ascii_case("severity") {
            // One spelling, so it replaces the server's default.
            "severity".clone_into(key);
        } else {
            *value = neutralize_controls(value).into_owned();
        }
    }
    if let Some(from) = &body.from {
        validate_name(from).map_err(BodyError::FromName)?;
    }
    Ok(TriggerMessage {
        from: body.from,
        to: body.to,
        content: body.content,
        meta,
    })
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

pub async fn post_message(
    State(bus): State<Arc<Bus>>,
    principal: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    let message = match parse_body(&body) {
        Ok(message) => message,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    // Without auth, each caller that names itself gets its own rate-limit
    // allowance instead of sharing the anonymous one.
    let from = match (principal, message.from) {
        (Some(p), Some(asked)) if !asked.eq_ignore_ascii_case(&p.0.name) => {
            return error(StatusCode::BAD_REQUEST, BodyError::FromFixed(p.0.name));
        }
        (Some(p), _) => p.0.name,
        (None, asked) => asked.unwrap_or_else(|| ANONYMOUS_TRIGGER.to_owned()),
    };
    let result = bus
        .send_from_trigger(&from, &message.to, message.content, message.meta)
        .await;
    send_response(result)
}

/// What a sender over HTTP reads: 202 with the receipt, or the refusal as
/// one sentence with the status that fits it (429 and `Retry-After` for a
/// rate limit).
pub fn send_response(result: Result<Receipt, SendError>) -> Response {
    match result {
        Ok(receipt) => {
            let body = match receipt.queued {
                None => json!({
                    "id": receipt.id,
                    "delivered_to": receipt.to,
                    "rewritten_by": receipt.rewritten_by,
                }),
                Some(waiting) => json!({
                    "id": receipt.id,
                    "queued": true,
                    "queued_for": receipt.to,
                    "waiting": waiting,
                    "rewritten_by": receipt.rewritten_by,
                }),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(e) => {
            let status = match &e {
                SendError::Empty | SendError::NotAnAgent => StatusCode::BAD_REQUEST,
                SendError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                SendError::Lookup(LookupError::Unknown { .. } | LookupError::Yourself(_)) => {
                    StatusCode::NOT_FOUND
                }
                SendError::Rejected { .. } if e.retry_after().is_some() => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                SendError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                SendError::QueueFull { .. }
                | SendError::Inbox(_)
                | SendError::WentOffline { .. }
                | SendError::Route(_)
                | SendError::Lookup(LookupError::Cluster(_)) => StatusCode::SERVICE_UNAVAILABLE,
            };
            let mut response = error(status, &e);
            if let Some(wait) = e.retry_after() {
                // Whole seconds, rounded up: retrying then must work.
                let seconds = wait.as_millis().div_ceil(1000).max(1);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
            }
            response
        }
    }
}

pub async fn list_agents(State(bus): State<Arc<Bus>>) -> Json<serde_json::Value> {
    Json(json!({ "agents": bus.registry().roster("").await.agents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::message::{FILTER_ANNOTATIONS, is_meta_key, is_reserved_meta_key};
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bytes, the parser answers; what it accepts carries
        /// only meta the recipient keeps and the server does not own.
        #[test]
        fn accepted_bodies_carry_only_safe_meta(
            to in "\\PC{0,20}",
            content in "\\PC{0,40}",
            meta in proptest::collection::btree_map("\\PC{0,12}", "\\PC{0,20}", 0..20),
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let _ = parse_body(&garbage);
            let body = serde_json::to_vec(&serde_json::json!({"to": to, "content": content, "meta": meta})).unwrap();
            if let Ok(message) = parse_body(&body) {
                prop_assert!(message.meta.len() <= MetaSetter::Trigger.max_entries());
                for (key, value) in &message.meta {
                    prop_assert!(is_meta_key(key));
                    prop_assert!(!is_reserved_meta_key(key));
                    prop_assert!(!FILTER_ANNOTATIONS.iter().any(|a| a.eq_ignore_ascii_case(key)));
                    prop_assert!(!value.contains(|c: char| c.is_control() && c != '\n' && c != '\t'));
                }
            }
        }
    }

    #[test]
    fn refuses_bad_meta_instead_of_dropping_it() {
        let ok = parse_body(br#"{"to":"a","content":"c","meta":{"build":"42"}}"#).unwrap();
        assert_eq!(ok.meta, [("build".to_owned(), "42".to_owned())]);
        assert_eq!(
            parse_body(br#"{"to":"a","content":"c","meta":{"bad-key":"x"}}"#),
            Err(BodyError::Meta(MetaError::Key("bad-key".into())))
        );
        for reserved in [
            "from",
            "to",
            "source",
            "kind",
            "From",
            "SOURCE",
            "sender_id",
        ] {
            let body = format!(r#"{{"to":"a","content":"c","meta":{{"{reserved}":"x"}}}}"#);
            assert_eq!(
                parse_body(body.as_bytes()),
                Err(BodyError::Meta(MetaError::Reserved(reserved.into())))
            );
        }
        for annotation in ["redacted", "Injection_Suspected"] {
            let body = format!(r#"{{"to":"a","content":"c","meta":{{"{annotation}":"x"}}}}"#);
            assert_eq!(
                parse_body(body.as_bytes()),
                Err(BodyError::Meta(MetaError::FilterAnnotation(
                    annotation.into()
                )))
            );
        }
        assert!(matches!(
            parse_body(br#"{"to":"a","content":"c","meta":{"severity":"critical"}}"#),
            Err(BodyError::Meta(MetaError::Severity(_)))
        ));
        let warning =
            parse_body(br#"{"to":"a","content":"c","meta":{"Severity":"warning"}}"#).unwrap();
        assert_eq!(
            warning.meta,
            [("severity".to_owned(), "warning".to_owned())]
        );
        assert!(matches!(parse_body(b"{}"), Err(BodyError::Malformed(_))));
        assert_eq!(
            parse_body(br#"{"to":"a","content":"c","from":"nightly-ci"}"#)
                .unwrap()
                .from
                .as_deref(),
            Some("nightly-ci")
        );
        assert!(matches!(
            parse_body(br#"{"to":"a","content":"c","from":"no spaces"}"#),
            Err(BodyError::FromName(_))
        ));
        assert!(matches!(
            parse_body(br#"{"to":"a","content":"c","extra":1}"#),
            Err(BodyError::Malformed(_))
        ));
    }
}
