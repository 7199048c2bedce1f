//! Server-sent events off a byte stream. Lines are split on bytes and only
//! then decoded, so a character split across two chunks arrives whole.

/// One event: its `id:` (if any) and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

#[derive(Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    id: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.pending.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&raw[..newline]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if self.id.is_some() || !self.data.is_empty() {
                    events.push(SseEvent {
                        id: self.id.take(),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
            } else if let Some(value) = line.strip_prefix("id:") {
                self.id = Some(value.trim().to_owned());
            }
            // `event:`, `retry:` and comments (keep-alives) carry nothing we use.
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_data_lines_and_keeps_split_characters_whole() {
        let mut decoder = SseDecoder::default();
        let text = "id: 7\ndata: {\"a\":\"é\"}\ndata: x\r\n\n: keep-alive\n\n".as_bytes();
        // Split inside the two-byte 'é'.
        let cut = text.iter().position(|&b| b == 0xc3).unwrap() + 1;
        assert!(decoder.push(&text[..cut]).is_empty());
        let events = decoder.push(&text[cut..]);
        assert_eq!(
            events,
            [SseEvent {
                id: Some("7".into()),
                data: "{\"a\":\"é\"}\nx".into()
            }]
        );
    }
}
