//! JSON-RPC for one session: what each client message asks, and the answer.
//! Requests are answered here, on the request's own task: `initialize`,
//! `ping`, `tools/list` and `tools/call`; every other method is unknown
//! (`server/discover` too, so Claude Code falls back to `initialize`).
//! Notifications need no answer; the permission relay's request is the one
//! that carries meaning.

use std::sync::Arc;

use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, CustomNotification, ErrorCode,
    ErrorData, ListToolsResult, ServerJsonRpcMessage, ServerResult,
};

use super::tools::Tools;
use crate::permissions::{self, Permissions};

pub struct Protocol {
    tools: Tools,
    /// Set with `--permission-relay`.
    permissions: Option<Arc<Permissions>>,
}

impl Protocol {
    pub fn new(tools: Tools, permissions: Option<Arc<Permissions>>) -> Self {
        Self { tools, permissions }
    }

    /// Handles one message of `session`; a request gets its answer back.
    pub async fn handle(
        &self,
        session: &str,
        message: ClientJsonRpcMessage,
    ) -> Option<ServerJsonRpcMessage> {
        match message {
            ClientJsonRpcMessage::Request(request) => {
                let answer = self.answer(session, request.request).await;
                Some(match answer {
                    Ok(mut result) => {
                        // Every session here is of the `initialize` era,
                        // whose results carry no `resultType`.
                        result.strip_result_type_for_legacy_peer();
                        ServerJsonRpcMessage::response(result, request.id)
                    }
                    Err(error) => ServerJsonRpcMessage::error(error, Some(request.id)),
                })
            }
            ClientJsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CustomNotification(custom) = notification.notification {
                    self.custom_notification(session, custom);
                }
                None
            }
            // This server asks clients nothing, so no answer is awaited.
            ClientJsonRpcMessage::Response(_) | ClientJsonRpcMessage::Error(_) => None,
        }
    }

    async fn answer(
        &self,
        session: &str,
        request: ClientRequest,
    ) -> Result<ServerResult, ErrorData> {
        match request {
            ClientRequest::InitializeRequest(initialize) => Ok(ServerResult::InitializeResult(
                self.tools.initialize(&initialize.params.protocol_version),
            )),
            ClientRequest::PingRequest(_) => Ok(ServerResult::empty(())),
            ClientRequest::ListToolsRequest(_) => Ok(ServerResult::ListToolsResult(
                ListToolsResult::with_all_items(self.tools.list()),
            )),
            ClientRequest::CallToolRequest(call) => self
                .tools
                .call(session, call.params)
                .await
                .map(ServerResult::CallToolResult),
            other => Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("method not found: {}", other.method()),
                None,
            )),
        }
    }

    /// Permission prompts relayed by Claude Code (`--permission-relay`).
    fn custom_notification(&self, session: &str, notification: CustomNotification) {
        let Some(relay) = &self.permissions else {
            return;
        };
        if notification.method != permissions::REQUEST_METHOD {
            return;
        }
        let request = match notification
            .params
            .map(serde_json::from_value::<permissions::Request>)
        {
            Some(Ok(request)) => request,
            Some(Err(error)) => {
                tracing::warn!(%error, "ignoring a malformed permission request");
                return;
            }
            None => {
                tracing::warn!("ignoring a permission request without params");
                return;
            }
        };
        match relay.request(session, request) {
            Ok(pending) => tracing::info!(
                id = %pending.id,
                agent = pending.agent.as_deref(),
                tool = %pending.tool_name,
                "permission requested"
            ),
            Err(error) => tracing::warn!(%error, "permission request not recorded"),
        }
    }
}
