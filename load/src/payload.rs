//! Message content: a header carrying the message's id, its send time and the
//! intended recipient, padded with plain prose to the requested size, so the
//! receiver can compute latency and spot loss, duplicates and misrouting.
//!
//! The content has to pass the bundled filters untouched: no run of 13+
//! digits (redact's card-number rule), no phone-number shapes, no unbroken
//! run of 24+ letters and digits (injection-guard's base64 scan) and no
//! trigger words.

use std::fmt::Write;

const MAGIC: &str = "load-msg";
const PADDING: &str = "the quick brown fox jumps over the lazy dog while the bus carries on. ";

/// What the sender put in, and the receiver reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Unique within a run.
    pub id: u64,
    /// Microseconds since the run's clock started.
    pub sent_us: u64,
    /// Index of the agent the message is meant for.
    pub to: u32,
}

/// Content of exactly `size` bytes, or of the header alone when that is longer.
pub fn compose(stamp: Stamp, size: usize) -> String {
    let mut content = String::with_capacity(size.max(64));
    // Writing into a String cannot fail.
    let _ = write!(
        content,
        "{MAGIC} id={} t={} to={} | ",
        stamp.id, stamp.sent_us, stamp.to
    );
    while content.len() < size {
        let room = size - content.len();
        content.push_str(&PADDING[..room.min(PADDING.len())]);
    }
    content
}

/// Reads the header back; `None` for content this tool did not write.
pub fn parse(content: &str) -> Option<Stamp> {
    let mut fields = content.strip_prefix(MAGIC)?.split_ascii_whitespace();
    let mut field = |name: &str| -> Option<u64> {
        fields
            .next()?
            .strip_prefix(name)?
            .strip_prefix('=')?
            .parse()
            .ok()
    };
    Some(Stamp {
        id: field("id")?,
        sent_us: field("t")?,
        to: field("to")?.try_into().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        id: 4_294_967_297,
        sent_us: 123_456_789,
        to: 999,
    };

    #[test]
    fn round_trips_at_every_size() {
        for size in [0, 10, 64, 1024, 16 * 1024] {
            let content = compose(STAMP, size);
            assert_eq!(parse(&content), Some(STAMP));
            assert!(
                content.len() == size || size < 64,
                "{size}: {}",
                content.len()
            );
        }
    }

    #[test]
    fn stays_clear_of_the_filters_patterns() {
        let content = compose(STAMP, 4096);
        let mut digits = 0;
        let mut word = 0;
        for b in content.bytes() {
            digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
            word = if b.is_ascii_alphanumeric() {
                word + 1
            } else {
                0
            };
            assert!(digits < 13 && word < 24);
        }
    }

    #[test]
    fn ignores_foreign_content() {
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("load-msg id=x t=1 to=2"), None);
    }
}
