//! What happened lately, for the operator's dashboard: every verdict the bus
//! reaches, broadcast to the open dashboards as it happens, the last
//! [`RECENT`] of them with their content (clipped) for an operator who asks
//! to see it, and per-name and per-pair message counts. Everything is
//! bounded: a server that runs for months keeps the same few hundred KB here.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::{bus::AGENT_MESSAGE_KIND, message::clip};

/// Verdicts kept, content included, for the feed of a dashboard opened later.
pub const RECENT: usize = 200;
/// Content bytes kept per message; the rest is cut (and said so).
pub const KEPT_CONTENT: usize = 4096;
/// Names and pairs counted; past this, the one quiet the longest is forgotten.
const TRACKED: usize = 1024;
/// Verdicts a slow dashboard may fall behind before it skips some.
const BROADCAST: usize = 256;

/// One verdict, as a dashboard shows it (never the content: that is asked
/// for separately, one message at a time).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub id: String,
    pub at_ms: u64,
    pub from: String,
    pub to: String,
    pub kind: &'static str,
    /// Content bytes as sent.
    pub bytes: usize,
    /// `delivered`, `queued`, `rejected` or why it failed (the metrics' outcome).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewritten_by: Vec<String>,
}

/// A message's content as the dashboard may reveal it: what the recipient
/// got (after redaction), or what was refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Content {
    pub id: String,
    pub content: String,
    /// True when only the first [`KEPT_CONTENT`] bytes were kept.
    pub clipped: bool,
}

/// Messages a name sent and received, and when it last did either.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
    pub last_ms: u64,
    /// Whether it was ever an agent (sent as one, or received), rather
    /// than only a trigger or an operator sending in.
    pub agent: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Pair {
    pub from: String,
    pub to: String,
    pub messages: u64,
    pub last_ms: u64,
}

#[derive(Default)]
struct State {
    recent: VecDeque<(Arc<Verdict>, Content)>,
    names: HashMap<String, Counts>,
    pairs: HashMap<(String, String), (u64, u64)>,
}

pub struct Activity {
    state: Mutex<State>,
    feed: broadcast::Sender<Arc<Verdict>>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            feed: broadcast::channel(BROADCAST).0,
        }
    }
}

/// Keeps at most [`TRACKED`] keys: when a new key finds the map full, the
/// eighth seen longest ago goes in one pass, so the scan is paid once per
/// [`TRACKED`]` / 8` new keys, not on every message (with 100 agents talking,
/// most messages are a pair not yet tracked).
fn make_room<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    key: &K,
    last: impl Fn(&V) -> u64,
) {
    if map.len() < TRACKED || map.contains_key(key) {
        return;
    }
    let mut by_age: Vec<(u64, K)> = map.iter().map(|(k, v)| (last(v), k.clone())).collect();
    let evict = TRACKED / 8;
    by_age.select_nth_unstable_by_key(evict, |(at, _)| *at);
    for (_, key) in by_age.drain(..evict) {
        map.remove(&key);
    }
}

impl Activity {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a verdict; `content` is what [`Content`] says it is, cut
    /// here to what is kept (in place: no second copy of it).
    pub fn record(&self, verdict: Verdict, mut content: String) {
        let clipped = content.len() > KEPT_CONTENT;
        content.truncate(clip(&content, KEPT_CONTENT).len());
        let kept = Content {
            id: verdict.id.clone(),
            content,
            clipped,
        };
        let verdict = Arc::new(verdict);
        {
            let mut state = self.lock();
            let at = verdict.at_ms;
            let from = verdict.from.clone();
            make_room(&mut state.names, &from, |c| c.last_ms);
            let sender = state.names.entry(from).or_default();
            sender.sent += 1;
            sender.last_ms = at;
            sender.agent |= verdict.kind == AGENT_MESSAGE_KIND;
            if matches!(verdict.outcome, "delivered" | "queued") {
                let to = verdict.to.clone();
                make_room(&mut state.names, &to, |c| c.last_ms);
                let recipient = state.names.entry(to).or_default();
                recipient.received += 1;
                recipient.last_ms = at;
                recipient.agent = true;
                let pair = (verdict.from.clone(), verdict.to.clone());
                make_room(&mut state.pairs, &pair, |(_, last)| *last);
                let (count, last) = state.pairs.entry(pair).or_default();
                *count += 1;
                *last = at;
            }
            if state.recent.len() == RECENT {
                state.recent.pop_front();
            }
            state.recent.push_back((verdict.clone(), kept));
        }
        // Nobody watching is the usual case, not an error.
        let _ = self.feed.send(verdict);
    }

    /// Verdicts from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Verdict>> {
        self.feed.subscribe()
    }

    /// The kept verdicts, oldest first.
    pub fn recent(&self) -> Vec<Arc<Verdict>> {
        self.lock().recent.iter().map(|(v, _)| v.clone()).collect()
    }

    /// A kept message's content, while it is among the last [`RECENT`].
    pub fn content(&self, id: &str) -> Option<Content> {
        self.lock()
            .recent
            .iter()
            .find(|(v, _)| v.id == id)
            .map(|(_, c)| c.clone())
    }

    pub fn counts(&self) -> HashMap<String, Counts> {
        self.lock().names.clone()
    }

    /// Who sent to whom, busiest pair first.
    pub fn pairs(&self) -> Vec<Pair> {
        let mut pairs: Vec<Pair> = self
            .lock()
            .pairs
            .iter()
            .map(|((from, to), (messages, last_ms))| Pair {
                from: from.clone(),
                to: to.clone(),
                messages: *messages,
                last_ms: *last_ms,
            })
            .collect();
        pairs.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.from.cmp(&b.from)));
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(id: u64, from: &str, to: &str, outcome: &'static str) -> Verdict {
        Verdict {
            id: id.to_string(),
            at_ms: id,
            from: from.into(),
            to: to.into(),
            kind: "agent-message",
            bytes: 5,
            outcome,
            filter: None,
            reason: None,
            rewritten_by: Vec::new(),
        }
    }

    #[test]
    fn counts_pairs_and_keeps_the_last_messages() {
        let activity = Activity::default();
        let mut feed = activity.subscribe();
        activity.record(verdict(1, "coder", "planner", "delivered"), "hello".into());
        activity.record(
            verdict(2, "coder", "planner", "rejected"),
            "ignore all".into(),
        );
        activity.record(verdict(3, "planner", "coder", "queued"), "later".into());
        assert_eq!(feed.try_recv().unwrap().id, "1");
        let counts = activity.counts();
        assert_eq!((counts["coder"].sent, counts["coder"].received), (2, 1));
        assert_eq!((counts["planner"].sent, counts["planner"].received), (1, 1));
        activity.record(
            Verdict {
                kind: "webhook",
                ..verdict(4, "ci", "coder", "delivered")
            },
            "green".into(),
        );
        let counts = activity.counts();
        assert!(counts["coder"].agent && !counts["ci"].agent);
        let pairs = activity.pairs();
        assert_eq!(pairs.len(), 3, "a rejection is no traffic: {pairs:?}");
        assert_eq!(activity.content("2").unwrap().content, "ignore all");

        for id in 5..(5 + RECENT as u64) {
            activity.record(verdict(id, "a", "b", "delivered"), "x".into());
        }
        assert_eq!(activity.recent().len(), RECENT);
        assert!(activity.content("3").is_none(), "only the last {RECENT}");
    }

    #[test]
    fn content_is_clipped_and_names_are_bounded() {
        let activity = Activity::default();
        let long = "é".repeat(KEPT_CONTENT);
        activity.record(verdict(1, "a", "b", "delivered"), long);
        let kept = activity.content("1").unwrap();
        assert!(kept.clipped && kept.content.len() <= KEPT_CONTENT);

        for id in 0..(TRACKED as u64 + 50) {
            activity.record(
                verdict(id + 2, &format!("s{id}"), "b", "rejected"),
                "x".into(),
            );
        }
        let counts = activity.counts();
        assert!(counts.len() <= TRACKED, "{}", counts.len());
        assert!(
            counts.contains_key(&format!("s{}", TRACKED + 49)) && !counts.contains_key("s0"),
            "the newest stay, the quietest go"
        );
    }
}
