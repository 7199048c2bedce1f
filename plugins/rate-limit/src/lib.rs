//! Rate limits per sender and per sender→recipient pair.
//!
//! Each limit is a GCRA (generic cell rate algorithm) whose only state is the
//! theoretical arrival time of the next message, kept in the host store so it
//! survives instance replacement and is shared by every instance of this
//! filter. Updates go through compare-and-swap so concurrent instances never
//! let more through than the limit allows.

use plugin_sdk::{Config, ConfigError, Filter, Message, Verdict, clock, export_filter, store};

const KEYS: &[&str] = &[
    "per_sender_per_minute",
    "per_sender_burst",
    "per_pair_per_minute",
    "per_pair_burst",
];

/// Meta key under which the server passes the sender's stable identity.
const SENDER_ID_META: &str = "sender_id";

/// How often a key is re-read after losing a compare-and-swap race before the
/// message is turned away; only many instances hammering one key get there.
const MAX_CAS_ATTEMPTS: usize = 8;

pub struct RateLimit {
    per_sender: Option<Limit>,
    per_pair: Option<Limit>,
}

impl Filter for RateLimit {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        config.check_keys(KEYS)?;
        Ok(Self {
            per_sender: Limit::from_config(config, "per_sender", 30, 10)?,
            per_pair: Limit::from_config(config, "per_pair", 20, 10)?,
        })
    }

    fn filter(&mut self, msg: &Message) -> Verdict {
        let now_us = clock::now_ms().saturating_mul(1_000);
        // The server's stable id of the sender survives a rename, so renaming
        // does not reset the limit; the name is the fallback for hosts (and
        // corpora) that do not set it.
        let sender = msg.meta_value(SENDER_ID_META).unwrap_or(&msg.sender);
        let checks: Vec<Check<'_>> = [
            self.per_sender.as_ref().map(|limit| Check {
                limit,
                key: format!("sender:{sender}"),
                who: msg.sender.clone(),
            }),
            self.per_pair.as_ref().map(|limit| Check {
                limit,
                // The length prefix keeps ("a:b", "c") and ("a", "b:c") apart.
                key: format!("pair:{}:{}:{}", sender.len(), sender, msg.recipient),
                who: format!("{} -> {}", msg.sender, msg.recipient),
            }),
        ]
        .into_iter()
        .flatten()
        .collect();

        // Decide on every limit before charging any, so a message one limit
        // turns away does not use up another limit's allowance.
        let mut stored = Vec::with_capacity(checks.len());
        let mut refusal: Option<(u64, &Check<'_>)> = None;
        for check in &checks {
            let value = store::get(&check.key);
            if let Decision::Deny { retry_us } = check.limit.decide(value.as_deref(), now_us)
                && refusal.is_none_or(|(worst, _)| retry_us > worst)
            {
                refusal = Some((retry_us, check));
            }
            stored.push(value);
        }
        if let Some((retry_us, check)) = refusal {
            return Verdict::reject(check.over_limit(retry_us));
        }

        // Another instance may take the last allowance between the check and
        // the charge; the charges already made then stand, which can only
        // over-count, never let an extra message through.
        for (check, value) in checks.iter().zip(stored) {
            match check.charge(value, now_us) {
                Charge::Done => {}
                Charge::Denied { retry_us } => return Verdict::reject(check.over_limit(retry_us)),
                Charge::Contended => {
                    return Verdict::reject(format!(
                        "rate-limit state for {} is busy; retry in 0.1 s",
                        check.who
                    ));
                }
            }
        }
        Verdict::Accept
    }
}

export_filter!(RateLimit);

/// One configured limit: `per_minute` messages a minute on average, up to
/// `burst` at once.
struct Limit {
    per_minute: u32,
    burst: u32,
    /// Time one message "costs", in microseconds (sub-millisecond precision
    /// keeps rates that do not divide a minute evenly accurate).
    interval_us: u64,
}

enum Decision {
    Allow { next_tat_us: u64 },
    Deny { retry_us: u64 },
}

impl Limit {
    /// `None` when `<prefix>_per_minute` is 0, which turns the limit off.
    fn from_config(
        config: &Config,
        prefix: &str,
        default_per_minute: u32,
        default_burst: u32,
    ) -> Result<Option<Self>, ConfigError> {
        let rate_key = format!("{prefix}_per_minute");
        let burst_key = format!("{prefix}_burst");
        let per_minute: u32 = config.get_or(&rate_key, default_per_minute)?;
        let burst: u32 = config.get_or(&burst_key, default_burst)?;
        if per_minute == 0 {
            return Ok(None);
        }
        if burst == 0 {
            return Err(ConfigError::invalid(
                burst_key,
                format!("must be at least 1 (set {rate_key} = 0 to turn the limit off)"),
            ));
        }
        Ok(Some(Self {
            per_minute,
            burst,
            interval_us: 60_000_000 / u64::from(per_minute),
        }))
    }

    /// GCRA: a message is allowed when, after adding its cost, the
    /// theoretical arrival time is at most `burst` intervals ahead of now.
    fn decide(&self, stored_tat: Option<&str>, now_us: u64) -> Decision {
        // An unreadable value is treated as no history; the next charge
        // overwrites it.
        let tat_us = stored_tat
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(now_us, |tat| tat.max(now_us));
        let next_tat_us = tat_us + self.interval_us;
        let allowance_us = self.interval_us * u64::from(self.burst);
        if next_tat_us - now_us <= allowance_us {
            Decision::Allow { next_tat_us }
        } else {
            Decision::Deny {
                retry_us: next_tat_us - allowance_us - now_us,
            }
        }
    }
}

struct Check<'a> {
    limit: &'a Limit,
    key: String,
    /// How the sender error names who hit the limit.
    who: String,
}

enum Charge {
    Done,
    Denied { retry_us: u64 },
    Contended,
}

impl Check<'_> {
    fn charge(&self, mut stored: Option<String>, now_us: u64) -> Charge {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let next_tat_us = match self.limit.decide(stored.as_deref(), now_us) {
                Decision::Allow { next_tat_us } => next_tat_us,
                Decision::Deny { retry_us } => return Charge::Denied { retry_us },
            };
            // Once the arrival time has passed, the state is the same as no
            // state, so the entry may expire then.
            let ttl_ms = (next_tat_us - now_us).div_ceil(1_000) + 1;
            let value = next_tat_us.to_string();
            if store::compare_and_swap(&self.key, stored.as_deref(), &value, ttl_ms) {
                return Charge::Done;
            }
            stored = store::get(&self.key);
        }
        Charge::Contended
    }

    fn over_limit(&self, retry_us: u64) -> String {
        // Round up to a tenth of a second: retrying at the stated time must work.
        let tenths = retry_us.div_ceil(100_000).max(1);
        format!(
            "{} is over its limit of {} messages/min (burst {}); retry in {}.{} s",
            self.who,
            self.limit.per_minute,
            self.limit.burst,
            tenths / 10,
            tenths % 10
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::testing::Harness;

    fn send(h: &mut Harness<RateLimit>, from: &str, to: &str) -> Verdict {
        h.filter(&Message::test("hello").from(from).to(to))
    }

    #[test]
    fn default_burst_then_reject_with_retry_hint() {
        let mut h = Harness::<RateLimit>::new("{}");
        for i in 0..10 {
            assert!(
                send(&mut h, "coder", &format!("r{i}")).is_accept(),
                "message {i}"
            );
        }
        assert_eq!(
            send(&mut h, "coder", "r10").reason(),
            Some("coder is over its limit of 30 messages/min (burst 10); retry in 2.0 s")
        );
        h.advance_clock(1_500);
        assert_eq!(
            send(&mut h, "coder", "r10").reason(),
            Some("coder is over its limit of 30 messages/min (burst 10); retry in 0.5 s")
        );
        h.advance_clock(500);
        assert!(send(&mut h, "coder", "r10").is_accept());
        assert!(send(&mut h, "coder", "r11").is_reject());
    }

    #[test]
    fn sustained_rate_at_the_limit_is_never_rejected() {
        let mut h = Harness::<RateLimit>::new(r#"{"per_pair_per_minute": 0}"#);
        for i in 0..200 {
            assert!(send(&mut h, "coder", "reviewer").is_accept(), "message {i}");
            h.advance_clock(2_000);
        }
    }

    #[test]
    fn pair_limit_stops_ping_pong_but_not_other_recipients() {
        let mut h = Harness::<RateLimit>::new(
            r#"{"per_sender_per_minute": 600, "per_sender_burst": 100, "per_pair_burst": 3}"#,
        );
        for _ in 0..3 {
            assert!(send(&mut h, "coder", "reviewer").is_accept());
        }
        assert_eq!(
            send(&mut h, "coder", "reviewer").reason(),
            Some(
                "coder -> reviewer is over its limit of 20 messages/min (burst 3); retry in 3.0 s"
            )
        );
        assert!(send(&mut h, "coder", "tester").is_accept());
        assert!(send(&mut h, "reviewer", "coder").is_accept());
    }

    #[test]
    fn a_rejected_message_does_not_use_up_the_other_limit() {
        let mut h = Harness::<RateLimit>::new(r#"{"per_sender_burst": 4, "per_pair_burst": 2}"#);
        assert!(send(&mut h, "a", "b").is_accept());
        assert!(send(&mut h, "a", "b").is_accept());
        for _ in 0..5 {
            assert!(
                send(&mut h, "a", "b")
                    .reason()
                    .unwrap()
                    .starts_with("a -> b ")
            );
        }
        assert!(send(&mut h, "a", "c").is_accept());
        assert!(send(&mut h, "a", "d").is_accept());
        assert!(
            send(&mut h, "a", "e")
                .reason()
                .unwrap()
                .starts_with("a is over")
        );
    }

    #[test]
    fn renaming_does_not_reset_the_limit() {
        let mut h = Harness::<RateLimit>::new(r#"{"per_sender_burst": 1}"#);
        let as_name = |name: &str| {
            Message::test("hello")
                .from(name)
                .to("bob")
                .with_meta("sender_id", "session:7")
        };
        assert!(h.filter(&as_name("alice")).is_accept());
        assert!(
            !h.filter(&as_name("alice2")).is_accept(),
            "same session, new name"
        );
    }

    #[test]
    fn senders_are_independent() {
        let mut h = Harness::<RateLimit>::new(r#"{"per_sender_burst": 1}"#);
        assert!(send(&mut h, "a", "x").is_accept());
        assert!(send(&mut h, "a", "y").is_reject());
        assert!(send(&mut h, "b", "x").is_accept());
    }

    #[test]
    fn state_survives_instance_replacement() {
        let mut h = Harness::<RateLimit>::new(r#"{"per_sender_burst": 2}"#);
        assert!(send(&mut h, "a", "x").is_accept());
        assert!(send(&mut h, "a", "y").is_accept());
        h.restart();
        assert!(send(&mut h, "a", "z").is_reject());
    }

    #[test]
    fn separator_in_names_does_not_merge_pairs() {
        let mut h =
            Harness::<RateLimit>::new(r#"{"per_sender_per_minute": 0, "per_pair_burst": 1}"#);
        assert!(send(&mut h, "a:b", "c").is_accept());
        assert!(send(&mut h, "a", "b:c").is_accept());
    }

    #[test]
    fn zero_rate_turns_limits_off() {
        let mut h =
            Harness::<RateLimit>::new(r#"{"per_sender_per_minute": 0, "per_pair_per_minute": 0}"#);
        for _ in 0..1_000 {
            assert!(send(&mut h, "a", "b").is_accept());
        }
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let mut h = Harness::<RateLimit>::new(r#"{"per_sender_burst": 1}"#);
        assert!(send(&mut h, "a", "b").is_accept());
        let now = h.now_ms();
        h.set_clock(now - 60_000);
        assert!(send(&mut h, "a", "b").is_reject());
    }

    #[test]
    fn entries_expire_once_idle() {
        let mut h = Harness::<RateLimit>::new("{}");
        assert!(send(&mut h, "a", "b").is_accept());
        assert!(store::get("sender:a").is_some());
        h.advance_clock(2_001);
        assert!(store::get("pair:1:a:b").is_some());
        h.advance_clock(1_000);
        assert!(store::get("sender:a").is_none());
        assert!(store::get("pair:1:a:b").is_none());
    }

    #[test]
    fn uneven_rates_keep_sub_millisecond_precision() {
        // 7/min is an 8571.43 ms interval: 7 spaced sends fit a minute.
        let mut h = Harness::<RateLimit>::new(
            r#"{"per_sender_per_minute": 7, "per_sender_burst": 1, "per_pair_per_minute": 0}"#,
        );
        for _ in 0..7 {
            assert!(send(&mut h, "a", "b").is_accept());
            h.advance_clock(8_572);
        }
    }

    #[test]
    fn bad_config_is_refused_with_the_key() {
        let err = Harness::<RateLimit>::try_new(r#"{"per_sender_burst": 0}"#)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "config key `per_sender_burst`: must be at least 1 (set per_sender_per_minute = 0 to turn the limit off)"
        );
        let err = Harness::<RateLimit>::try_new(r#"{"per_sender_per_min": 5}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("unknown config key `per_sender_per_min`")
        );
        let err = Harness::<RateLimit>::try_new(r#"{"per_pair_burst": -1}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("config key `per_pair_burst`: invalid value")
        );
    }
}
