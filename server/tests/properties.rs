//! Property tests on everything a client controls: names, meta keys, the
//! trigger body, and sequences of sends. Nothing panics, and a message the
//! bus accepts is always delivered.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use proptest::prelude::*;
use server::{
    bus::Bus,
    delivery::Delivery,
    filter::PassThrough,
    http::trigger::parse_body,
    message::{
        FILTER_ANNOTATIONS, TRIGGER_SEVERITIES, is_meta_key, is_reserved_meta_key,
        neutralize_controls,
    },
    registry::{Claim, Registry, validate_name},
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn names_are_valid_exactly_when_the_rule_says(name in ".{0,40}") {
        let rule = (1..=32).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        prop_assert_eq!(validate_name(&name).is_ok(), rule);
    }

    #[test]
    fn meta_keys_match_claude_codes_pattern(key in ".{0,12}") {
        let pattern = regex::Regex::new("^[a-zA-Z_][a-zA-Z0-9_]*$").unwrap();
        prop_assert_eq!(is_meta_key(&key), pattern.is_match(&key));
    }

    #[test]
    fn any_trigger_body_parses_or_says_why(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(error) = parse_body(&body) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn trigger_meta_is_kept_or_refused_never_dropped(
        key in "[a-zA-Z_-]{1,8}", value in ".{0,16}", content in ".{0,16}"
    ) {
        let body = serde_json::json!({"to": "a", "content": content, "meta": {key.clone(): value.clone()}});
        // Kept means kept as delivered: control characters made visible, and
        // `severity` in its one spelling.
        let severity = key.eq_ignore_ascii_case("severity");
        match parse_body(body.to_string().as_bytes()) {
            Ok(message) => {
                let kept_key = if severity { "severity".to_owned() } else { key.clone() };
                prop_assert_eq!(message.meta, vec![(kept_key, neutralize_controls(&value).into_owned())])
            }
            Err(error) => prop_assert!(
                !is_meta_key(&key)
                    || is_reserved_meta_key(&key)
                    || FILTER_ANNOTATIONS.iter().any(|a| a.eq_ignore_ascii_case(&key))
                    || (severity && !TRIGGER_SEVERITIES.contains(&value.as_str())),
                "{}",
                error
            ),
        }
    }

    #[test]
    fn renames_keep_names_unique(ops in proptest::collection::vec((0usize..4, "[a-cA-C]{1,2}"), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let registry = Registry::new(8, Duration::from_millis(50));
            let sessions = ["s0", "s1", "s2", "s3"];
            for session in sessions {
                registry.attach(session, &Claim::default(), None).await.unwrap();
            }
            for (who, name) in ops {
                let _ = registry.rename(sessions[who], &name).await;
                let roster = registry.roster("s0").await.agents;
                let mut lower: Vec<String> = roster.iter().map(|n| n.to_ascii_lowercase()).collect();
                lower.sort();
                lower.dedup();
                assert_eq!(lower.len(), sessions.len(), "{:?}", roster);
            }
        });
    }

    #[test]
    fn every_accepted_message_is_delivered_once(
        sends in proptest::collection::vec((0usize..3, 0usize..4, ".{0,40}"), 1..60)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let registry = Arc::new(Registry::new(16, Duration::from_millis(50)));
            let delivery = Delivery::new(registry.cluster().clone(), registry.mail().clone());
            let bus = Bus::new(registry.clone(), delivery, Arc::new(PassThrough), 32);
            let names = ["agent-1", "agent-2", "agent-3", "ghost"];
            let mut streams = Vec::new();
            for session in ["s0", "s1", "s2"] {
                streams.push(Box::pin(registry.attach(session, &Claim::default(), None).await.unwrap().stream.into_stream()));
            }
            let mut expected = vec![Vec::new(); 3];
            for (from, to, content) in sends {
                if let Ok(receipt) = bus.send(["s0", "s1", "s2"][from], names[to], content.clone()).await {
                    expected[to].push((receipt.to, content));
                }
            }
            for (index, stream) in streams.iter_mut().enumerate() {
                for (to, content) in &expected[index] {
                    let event = tokio::time::timeout(Duration::from_secs(1), stream.next()).await.unwrap().unwrap();
                    let wire: serde_json::Value = serde_json::from_str(&event.json).unwrap();
                    // Delivered as sent, but for control characters made visible.
                    assert_eq!(
                        wire["params"]["content"].as_str(),
                        Some(neutralize_controls(content).as_ref())
                    );
                    assert_eq!(&wire["params"]["meta"]["to"], to);
                }
                assert!(tokio::time::timeout(Duration::from_millis(1), stream.next()).await.is_err(), "nothing extra");
            }
        });
    }
}
