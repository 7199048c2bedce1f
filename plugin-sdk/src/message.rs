//! The plain-Rust message a filter reads and the verdict it returns.

/// One message on its way from `sender` to `recipient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique id the server gave this message.
    pub id: String,
    /// The sending agent's name, as the server knows it.
    pub sender: String,
    /// The receiving agent's name.
    pub recipient: String,
    /// The text that will reach the recipient's model.
    pub content: String,
    /// Extra key/value pairs delivered as channel meta, in order.
    pub meta: Vec<(String, String)>,
    /// When the server accepted the message, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

impl Message {
    /// A message from `alice` to `bob`, sent now by [`crate::clock`], for tests
    /// and examples. Change the ends with [`Message::from`] and [`Message::to`].
    pub fn test(content: impl Into<String>) -> Self {
        Self {
            id: "test-message".to_owned(),
            sender: "alice".to_owned(),
            recipient: "bob".to_owned(),
            content: content.into(),
            meta: Vec::new(),
            sent_at_ms: crate::clock::now_ms(),
        }
    }

    /// Replaces the sender.
    pub fn from(mut self, sender: impl Into<String>) -> Self {
        self.sender = sender.into();
        self
    }

    /// Replaces the recipient.
    pub fn to(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = recipient.into();
        self
    }

    /// Adds or replaces a meta entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        set_meta(&mut self.meta, key.into(), value.into());
        self
    }

    /// The value of meta entry `key`, if present.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What happens to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the message through unchanged.
    Accept,
    /// Let it through with these changes; `None` keeps that part as it is.
    /// `meta`, when given, replaces the whole meta list.
    Rewrite {
        content: Option<String>,
        meta: Option<Vec<(String, String)>>,
    },
    /// Stop it; the reason is shown to the sender.
    Reject(String),
}

impl Verdict {
    /// Stops the message; `reason` is shown to the sender, so say what to do.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject(reason.into())
    }

    /// Replaces the content, keeps the meta.
    pub fn rewrite_content(content: impl Into<String>) -> Self {
        Self::Rewrite {
            content: Some(content.into()),
            meta: None,
        }
    }

    /// Keeps the content and adds (or replaces) one meta entry on top of the
    /// message's existing meta.
    pub fn annotate(msg: &Message, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Accept.with_annotation(msg, key, value)
    }

    /// Adds (or replaces) one meta entry on top of whatever meta this verdict
    /// would deliver for `msg`. A rejection stays a rejection.
    pub fn with_annotation(
        self,
        msg: &Message,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        let (content, meta) = match self {
            Self::Reject(_) => return self,
            Self::Accept => (None, None),
            Self::Rewrite { content, meta } => (content, meta),
        };
        let mut meta = meta.unwrap_or_else(|| msg.meta.clone());
        set_meta(&mut meta, key.into(), value.into());
        Self::Rewrite {
            content,
            meta: Some(meta),
        }
    }

    /// The message the recipient would get, or the rejection reason. This is
    /// what the host does with the verdict; tests use it to check the outcome.
    pub fn apply(&self, msg: &Message) -> Result<Message, String> {
        match self {
            Self::Accept => Ok(msg.clone()),
            Self::Rewrite { content, meta } => Ok(Message {
                content: content.clone().unwrap_or_else(|| msg.content.clone()),
                meta: meta.clone().unwrap_or_else(|| msg.meta.clone()),
                ..msg.clone()
            }),
            Self::Reject(reason) => Err(reason.clone()),
        }
    }

    pub fn is_accept(&self) -> bool {
        matches!(self, Self::Accept)
    }

    pub fn is_reject(&self) -> bool {
        matches!(self, Self::Reject(_))
    }

    /// The rejection reason, if this is a rejection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Reject(reason) => Some(reason),
            _ => None,
        }
    }
}

fn set_meta(meta: &mut Vec<(String, String)>, key: String, value: String) {
    match meta.iter_mut().find(|(k, _)| *k == key) {
        Some(entry) => entry.1 = value,
        None => meta.push((key, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotate_keeps_existing_meta_and_content() {
        let msg = Message::test("hi").with_meta("thread", "7");
        let out = Verdict::annotate(&msg, "checked", "yes")
            .apply(&msg)
            .unwrap();
        assert_eq!(out.content, "hi");
        assert_eq!(out.meta_value("thread"), Some("7"));
        assert_eq!(out.meta_value("checked"), Some("yes"));
    }

    #[test]
    fn annotation_on_rewrite_keeps_new_content_and_replaces_key() {
        let msg = Message::test("secret").with_meta("tag", "old");
        let v = Verdict::rewrite_content("[gone]").with_annotation(&msg, "tag", "new");
        let out = v.apply(&msg).unwrap();
        assert_eq!(out.content, "[gone]");
        assert_eq!(out.meta, vec![("tag".to_owned(), "new".to_owned())]);
    }

    #[test]
    fn rejection_ignores_annotation() {
        let msg = Message::test("x");
        let v = Verdict::reject("no").with_annotation(&msg, "k", "v");
        assert_eq!(v.reason(), Some("no"));
        assert_eq!(v.apply(&msg), Err("no".to_owned()));
    }
}
