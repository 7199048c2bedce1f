//! Reads the body of a `POST /mcp` once, within the body limit, and answers
//! bodies rmcp would misreport: malformed JSON is a JSON-RPC parse error and
//! a JSON value that is no JSON-RPC message an invalid request, both 400
//! (rmcp says 415, which tells a client to change its content type). Bodies
//! over the limit get a JSON error naming the limit.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::model::ClientJsonRpcMessage;
use serde_json::json;

/// JSON-RPC 2.0 error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

fn rpc_error(code: i64, message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

/// The check itself, apart from HTTP: `None` when rmcp can take the body.
pub fn check(body: &[u8]) -> Option<(i64, String)> {
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return Some((
            PARSE_ERROR,
            format!("Parse error: the body is not JSON ({error})"),
        ));
    }
    if let Err(error) = serde_json::from_slice::<ClientJsonRpcMessage>(body) {
        return Some((
            INVALID_REQUEST,
            format!("Invalid Request: the body is not a JSON-RPC 2.0 message ({error})"),
        ));
    }
    None
}

/// Whether reading the body stopped at the length limit (not a broken body).
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
}

pub async fn middleware(State(max_bytes): State<usize>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, max_bytes).await {
        Ok(bytes) => bytes,
        Err(error) if super::serve::is_body_timeout(&error) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(json!({ "error": error.to_string() })),
            )
                .into_response();
        }
        Err(error) if !is_length_limit(&error) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({ "error": format!("the request body could not be read: {error}") }),
                ),
            )
                .into_response();
        }
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(json!({ "error": format!(
                    "the request body is over the limit of {max_bytes} bytes; send a shorter message (the limit follows --max-message-bytes)"
                )})),
            )
                .into_response();
        }
    };
    if let Some((code, message)) = check(&bytes) {
        return rpc_error(code, message);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn malformed_and_foreign_bodies_are_told_apart() {
        assert_eq!(check(b"{not json").map(|e| e.0), Some(PARSE_ERROR));
        assert_eq!(check(b"").map(|e| e.0), Some(PARSE_ERROR));
        assert_eq!(check(br#"{"hello":1}"#).map(|e| e.0), Some(INVALID_REQUEST));
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#),
            None
        );
    }

    proptest! {
        #[test]
        fn any_bytes_get_an_answer_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = check(&body);
        }

        #[test]
        fn any_json_text_is_either_a_message_or_an_invalid_request(text in "\\PC{0,200}") {
            let value = serde_json::Value::String(text);
            let body = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(check(&body).map(|e| e.0), Some(INVALID_REQUEST));
        }
    }
}
