//! What a message is on the bus, and how it becomes the channel notification
//! Claude Code renders as a `<channel>` tag.

use rmcp::model::{CustomNotification, ServerJsonRpcMessage, ServerNotification};
use serde_json::{Map, Value};

/// JSON-RPC method Claude Code listens to for channel pushes.
pub const CHANNEL_METHOD: &str = "notifications/claude/channel";

/// Meta keys the server owns; filters and callers cannot set them.
pub const RESERVED_META_KEYS: [&str; 4] = ["from", "to", "kind", "source"];

/// A message after the registry resolved both ends, as filters see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub sender: String,
    pub recipient: String,
    pub content: String,
    /// Extra meta beyond the server's own keys (`severity` may be changed).
    pub meta: Vec<(String, String)>,
    pub sent_at_ms: u64,
}

/// Claude Code drops meta keys that do not look like identifiers.
pub fn is_meta_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Message {
    /// The notification pushed on the recipient's stream. `from`, `to` and `kind`
    /// always come from the server, whatever the filters put in meta.
    pub fn to_notification(&self, kind: &str) -> ServerJsonRpcMessage {
        let mut meta = Map::new();
        meta.insert("from".into(), Value::String(self.sender.clone()));
        meta.insert("to".into(), Value::String(self.recipient.clone()));
        meta.insert("kind".into(), Value::String(kind.into()));
        meta.insert("severity".into(), Value::String("info".into()));
        for (key, value) in &self.meta {
            if is_meta_key(key) && !RESERVED_META_KEYS.contains(&key.as_str()) {
                meta.insert(key.clone(), Value::String(value.clone()));
            }
        }
        let mut params = Map::new();
        params.insert("content".into(), Value::String(self.content.clone()));
        params.insert("meta".into(), Value::Object(meta));
        ServerJsonRpcMessage::notification(ServerNotification::CustomNotification(
            CustomNotification::new(CHANNEL_METHOD, Some(Value::Object(params))),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_follow_claude_codes_rule() {
        for good in ["from", "_x", "a1", "injection_suspected"] {
            assert!(is_meta_key(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é", "a b"] {
            assert!(!is_meta_key(bad), "{bad}");
        }
    }

    #[test]
    fn server_keys_win_over_filter_meta() {
        let message = Message {
            id: "m1".into(),
            sender: "coder".into(),
            recipient: "agent-2".into(),
            content: "hi".into(),
            meta: vec![
                ("from".into(), "mallory".into()),
                ("source".into(), "x".into()),
                ("bad-key".into(), "x".into()),
                ("severity".into(), "warning".into()),
                ("redacted".into(), "email".into()),
            ],
            sent_at_ms: 0,
        };
        let wire = serde_json::to_value(message.to_notification("agent-message")).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({
                "jsonrpc": "2.0",
                "method": "notifications/claude/channel",
                "params": {"content": "hi", "meta": {
                    "from": "coder", "to": "agent-2", "kind": "agent-message",
                    "severity": "warning", "redacted": "email"}}
            })
        );
    }
}
