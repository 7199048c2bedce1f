//! What a message is on the bus, and how it becomes the channel notification
//! Claude Code renders as a `<channel>` tag.

use rmcp::model::{CustomNotification, ServerJsonRpcMessage, ServerNotification};
use serde_json::{Map, Value};

/// JSON-RPC method Claude Code listens to for channel pushes.
pub const CHANNEL_METHOD: &str = "notifications/claude/channel";

/// The sender's stable identity, for filters that keep state per sender
/// (rate limits): `token:<name>` for an authenticated agent, `session:<n>`
/// for an agent without a token (n is the session's registration number),
/// `trigger:<name>` for a trigger. Unlike the name it survives a rename. The
/// host sets it on the way into the chain and never delivers it.
pub const SENDER_ID_META: &str = "sender_id";

/// Meta keys the server owns, in any case: filters and callers cannot set them.
pub const RESERVED_META_KEYS: [&str; 5] = ["from", "to", "kind", "source", SENDER_ID_META];

/// Meta keys filters use to annotate a message; triggers cannot set them, so a
/// recipient can trust that a filter put them there.
pub const FILTER_ANNOTATIONS: [&str; 2] = ["redacted", "injection_suspected"];

/// Severities a trigger may give a message (filters may set any).
pub const TRIGGER_SEVERITIES: [&str; 3] = ["info", "warning", "error"];

/// Whether `key` is one of the server's own meta keys, in any case (`From`
/// would render as a second `from` attribute).
pub fn is_reserved_meta_key(key: &str) -> bool {
    RESERVED_META_KEYS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(key))
}

/// Control characters other than newline and tab (ANSI escapes, bells,
/// backspaces, carriage returns that overwrite a line) made visible: C0
/// controls become their Unicode control pictures (ESC is `␛`), DEL `␡`, C1
/// controls U+FFFD. A CR before a newline is dropped. Text without any comes
/// back borrowed.
pub fn neutralize_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let is_control = |c: char| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}';
    if !text.contains(is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            c if !is_control(c) => out.push(c),
            '\u{7f}' => out.push('\u{2421}'),
            c if (c as u32) < 0x20 => {
                out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'))
            }
            _ => out.push('\u{fffd}'),
        }
    }
    std::borrow::Cow::Owned(out)
}

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

/// [`neutralize_controls`] on an owned string, keeping the string itself
/// when nothing changes (nearly always): no copy of the content per message.
pub fn into_neutralized(text: String) -> String {
    let changed = match neutralize_controls(&text) {
        std::borrow::Cow::Owned(changed) => Some(changed),
        std::borrow::Cow::Borrowed(_) => None,
    };
    changed.unwrap_or(text)
}

/// Claude Code drops meta keys that do not look like identifiers.
pub fn is_meta_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Who sets meta besides the server, which decides what it may set. Agents
/// set none (`send-message` takes no meta); the server's own keys win over
/// anything set ([`Message::to_notification`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaSetter {
    /// A filter, on the message it rewrites: annotations and any severity.
    Filter,
    /// A trigger (`POST /v1/messages`): no filter annotations, and only the
    /// severities in [`TRIGGER_SEVERITIES`], so a recipient can trust both.
    Trigger,
}

/// Why meta was refused; one sentence for the sender or the filter's fault.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MetaError {
    #[error("{count} meta entries, over the limit of {limit}")]
    TooMany { count: usize, limit: usize },
    #[error("meta key {0:?} is not allowed: keys must match ^[a-zA-Z_][a-zA-Z0-9_]*$")]
    Key(String),
    #[error("meta key {0:?} belongs to the server")]
    Reserved(String),
    #[error("meta key {0:?} is set by filters and cannot be supplied")]
    FilterAnnotation(String),
    #[error("severity {0:?} is not one a trigger may give: use info, warning or error")]
    Severity(String),
    #[error("meta key {key:?}… is {bytes} bytes, over the limit of {limit}")]
    KeyTooLong {
        key: String,
        bytes: usize,
        limit: usize,
    },
    #[error("meta value of {key:?} is {bytes} bytes, over the limit of {limit}")]
    ValueTooLong {
        key: String,
        bytes: usize,
        limit: usize,
    },
}

impl MetaSetter {
    pub const fn max_entries(self) -> usize {
        match self {
            MetaSetter::Filter => 32,
            MetaSetter::Trigger => 16,
        }
    }

    pub const MAX_KEY_BYTES: usize = 64;
    pub const MAX_VALUE_BYTES: usize = 1024;

    /// Checks `meta` against the rules for this setter.
    pub fn check(self, meta: &[(String, String)]) -> Result<(), MetaError> {
        if meta.len() > self.max_entries() {
            return Err(MetaError::TooMany {
                count: meta.len(),
                limit: self.max_entries(),
            });
        }
        for (key, value) in meta {
            if key.len() > Self::MAX_KEY_BYTES {
                return Err(MetaError::KeyTooLong {
                    key: clip(key, 32).to_owned(),
                    bytes: key.len(),
                    limit: Self::MAX_KEY_BYTES,
                });
            }
            if !is_meta_key(key) {
                return Err(MetaError::Key(key.clone()));
            }
            if is_reserved_meta_key(key) {
                return Err(MetaError::Reserved(key.clone()));
            }
            if value.len() > Self::MAX_VALUE_BYTES {
                return Err(MetaError::ValueTooLong {
                    key: key.clone(),
                    bytes: value.len(),
                    limit: Self::MAX_VALUE_BYTES,
                });
            }
            if self == MetaSetter::Trigger {
                if FILTER_ANNOTATIONS
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(key))
                {
                    return Err(MetaError::FilterAnnotation(key.clone()));
                }
                if key.eq_ignore_ascii_case("severity")
                    && !TRIGGER_SEVERITIES.contains(&value.as_str())
                {
                    return Err(MetaError::Severity(clip(value, 32).to_owned()));
                }
            }
        }
        Ok(())
    }
}

/// The longest prefix of `text` within `max` bytes, cut at a char boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
            if is_meta_key(key) && !is_reserved_meta_key(key) {
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

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn neutralized_text_has_no_controls_and_is_stable(text in "\\PC*|[\\x00-\\x7f]{0,64}") {
            let once = neutralize_controls(&text).into_owned();
            let stray = once.contains(|c: char| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}');
            prop_assert!(!stray);
            prop_assert_eq!(neutralize_controls(&once).into_owned(), once.clone());
            prop_assert!(once.len() <= text.len() * 3);
        }

        #[test]
        fn clip_stays_within_bounds(text in "\\PC{0,40}", max in 0usize..64) {
            let clipped = clip(&text, max);
            prop_assert!(clipped.len() <= max);
            prop_assert!(text.starts_with(clipped));
        }
    }

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
    fn filters_may_annotate_and_triggers_may_not() {
        let meta = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        for setter in [MetaSetter::Filter, MetaSetter::Trigger] {
            assert_eq!(
                setter.check(&meta("From", "x")),
                Err(MetaError::Reserved("From".into()))
            );
            assert_eq!(
                setter.check(&meta("a-b", "x")),
                Err(MetaError::Key("a-b".into()))
            );
            assert!(matches!(
                setter.check(&meta("k", &"v".repeat(1025))),
                Err(MetaError::ValueTooLong { bytes: 1025, .. })
            ));
            assert!(matches!(
                setter.check(&meta(&"k".repeat(65), "v")),
                Err(MetaError::KeyTooLong { bytes: 65, .. })
            ));
            let many: Vec<_> = (0..=setter.max_entries())
                .map(|i| (format!("k{i}"), String::new()))
                .collect();
            assert!(matches!(
                setter.check(&many),
                Err(MetaError::TooMany { .. })
            ));
        }
        assert_eq!(MetaSetter::Filter.check(&meta("redacted", "email")), Ok(()));
        assert_eq!(
            MetaSetter::Filter.check(&meta("severity", "critical")),
            Ok(())
        );
        assert_eq!(
            MetaSetter::Trigger.check(&meta("Redacted", "email")),
            Err(MetaError::FilterAnnotation("Redacted".into()))
        );
        assert_eq!(
            MetaSetter::Trigger.check(&meta("SEVERITY", "critical")),
            Err(MetaError::Severity("critical".into()))
        );
        assert_eq!(
            MetaSetter::Trigger.check(&meta("severity", "warning")),
            Ok(())
        );
    }

    #[test]
    fn owned_text_without_controls_is_not_copied() {
        let plain = String::from("plain\ttext\nline");
        let at = plain.as_ptr();
        let kept = into_neutralized(plain);
        assert_eq!(kept.as_ptr(), at);
        assert_eq!(into_neutralized("a\u{7}b".into()), "a\u{2407}b");
    }

    #[test]
    fn controls_are_made_visible_but_newlines_and_tabs_kept() {
        assert!(matches!(
            neutralize_controls("plain\ttext\nline"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            neutralize_controls("\u{1b}[31mred\u{7}\r\nx\ry\u{7f}\u{9b}"),
            "\u{241b}[31mred\u{2407}\nx\u{240d}y\u{2421}\u{fffd}"
        );
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
                ("From".into(), "mallory".into()),
                (SENDER_ID_META.into(), "session:1".into()),
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
