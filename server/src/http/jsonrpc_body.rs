//! Reads the body of a `POST /mcp` within the body limit and parses it
//! once: malformed JSON is a JSON-RPC parse error and a JSON value that is
//! no JSON-RPC message an invalid request, both 400. Bodies over the limit
//! get a JSON error naming the limit.

use axum::{
    body::Body,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use rmcp::model::ClientJsonRpcMessage;

use super::refuse;
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

/// The parse itself, apart from HTTP: the message, or the JSON-RPC error
/// code and sentence that say what is wrong with the body.
pub fn parse(body: &[u8]) -> Result<ClientJsonRpcMessage, (i64, String)> {
    serde_json::from_slice::<ClientJsonRpcMessage>(body).map_err(|error| {
        // Only a body that fails is read a second time, to tell the two apart.
        match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(error) => (
                PARSE_ERROR,
                format!("Parse error: the body is not JSON ({error})"),
            ),
            Ok(_) => (
                INVALID_REQUEST,
                format!("Invalid Request: the body is not a JSON-RPC 2.0 message ({error})"),
            ),
        }
    })
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

/// Reads and parses a `POST /mcp` body of at most `max_bytes`; a body that
/// cannot be taken gets its answer.
pub async fn read(body: Body, max_bytes: usize) -> Result<ClientJsonRpcMessage, Response> {
    let bytes = match axum::body::to_bytes(body, max_bytes).await {
        Ok(bytes) => bytes,
        Err(error) if super::serve::is_body_timeout(&error) => {
            return Err(refuse(StatusCode::REQUEST_TIMEOUT, error.to_string()));
        }
        Err(error) if !is_length_limit(&error) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {error}"),
            ));
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is over the limit of {max_bytes} bytes; send a shorter message (the limit follows --max-message-bytes)"
                ),
            ));
        }
    };
    parse(&bytes).map_err(|(code, message)| rpc_error(code, message))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn malformed_and_foreign_bodies_are_told_apart() {
        assert_eq!(
            parse(b"{not json").map_err(|e| e.0).err(),
            Some(PARSE_ERROR)
        );
        assert_eq!(parse(b"").map_err(|e| e.0).err(), Some(PARSE_ERROR));
        assert_eq!(
            parse(br#"{"hello":1}"#).map_err(|e| e.0).err(),
            Some(INVALID_REQUEST)
        );
        assert!(parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#).is_ok());
    }

    proptest! {
        #[test]
        fn any_bytes_get_an_answer_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&body);
        }

        #[test]
        fn any_json_text_is_either_a_message_or_an_invalid_request(text in "\\PC{0,200}") {
            let value = serde_json::Value::String(text);
            let body = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(parse(&body).map_err(|e| e.0).err(), Some(INVALID_REQUEST));
        }
    }
}
