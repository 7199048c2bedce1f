//! A Server-Sent Events decoder: turns body chunks, split anywhere, into
//! events. Only `id:` and `data:` matter here; comments (the server's
//! keep-alives), `event:` and `retry:` are skipped.

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already known to hold no newline, so a 16 KB line
    /// arriving in many chunks is scanned once, not once per chunk.
    scanned: usize,
    event: Partial,
}

/// The fields of the event being read.
#[derive(Debug, Default)]
struct Partial {
    id: Option<String>,
    data: Option<String>,
}

impl Decoder {
    /// Feeds one chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(offset) = self.buffer[from..].iter().position(|&b| b == b'\n') {
            let end = from + offset;
            let line = &self.buffer[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(event) = self.event.line(line) {
                events.push(event);
            }
            start = end + 1;
            from = start;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        events
    }
}

impl Partial {
    fn line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            if self.id.is_none() && self.data.is_none() {
                return None;
            }
            return Some(Event {
                id: self.id.take(),
                data: self.data.take().unwrap_or_default(),
            });
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], &line[colon + 1..]),
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value.strip_prefix(b" ").unwrap_or(value));
        match field {
            b"data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => self.data = Some(value.into_owned()),
            },
            b"id" => self.id = Some(value.into_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let wire = b": keep-alive\n\nid: msg-1\ndata: {\"a\":\r\ndata: 1}\n\nid: 0\ndata:\n\n";
        let mut decoder = Decoder::default();
        let mut events = Vec::new();
        for chunk in wire.chunks(3) {
            events.extend(decoder.push(chunk));
        }
        assert_eq!(
            events,
            [
                Event {
                    id: Some("msg-1".into()),
                    data: "{\"a\":\n1}".into()
                },
                Event {
                    id: Some("0".into()),
                    data: String::new()
                },
            ]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut decoder = Decoder::default();
        assert!(decoder.push(b"data: x\n").is_empty());
        assert_eq!(decoder.push(b"\n")[0].data, "x");
    }
}
