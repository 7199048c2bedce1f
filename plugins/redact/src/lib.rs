//! Replaces secrets (cloud and SaaS tokens, private keys, JWTs, passwords in
//! URLs, random-looking values assigned to secret-named keys) and personal
//! data (emails, phone numbers, card numbers) with `[REDACTED:<kind>]`, in the
//! content and in meta values, and lists the kinds found in meta `redacted`.

mod detectors;

use plugin_sdk::{Config, ConfigError, Filter, Message, Verdict, export_filter};

use detectors::Detector;
use plugin_sdk::keywords::Keywords;

pub struct Redact {
    keywords: Keywords,
    detectors: Vec<Detector>,
}

impl Filter for Redact {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        config.check_keys(&["pii", "disable"])?;
        let pii: bool = config.get_or("pii", true)?;
        let disable: Vec<String> = config.get_or("disable", Vec::new())?;
        let (keywords, all) = detectors::all();
        if let Some(unknown) = disable
            .iter()
            .find(|kind| !all.iter().any(|d| d.kind == kind.as_str()))
        {
            let kinds: Vec<_> = all.iter().map(|d| d.kind).collect();
            return Err(ConfigError::invalid(
                "disable",
                format!("unknown kind {unknown:?} (kinds: {})", kinds.join(", ")),
            ));
        }
        Ok(Self {
            keywords,
            detectors: all
                .into_iter()
                .filter(|d| (pii || !d.pii) && !disable.iter().any(|k| k == d.kind))
                .collect(),
        })
    }

    fn filter(&mut self, msg: &Message) -> Verdict {
        let mut kinds = Vec::new();
        let content = self.redact(&msg.content, &mut kinds);
        let mut meta_changed = false;
        let meta: Vec<(String, String)> = msg
            .meta
            .iter()
            .map(|(key, value)| match self.redact(value, &mut kinds) {
                Some(redacted) => {
                    meta_changed = true;
                    (key.clone(), redacted)
                }
                None => (key.clone(), value.clone()),
            })
            .collect();
        if kinds.is_empty() {
            return Verdict::Accept;
        }
        // An earlier filter in the chain may have redacted too; keep its kinds.
        if let Some(previous) = msg.meta_value("redacted") {
            kinds.extend(
                previous
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
            );
        }
        kinds.sort();
        kinds.dedup();
        let base = Message {
            meta: if meta_changed { meta } else { msg.meta.clone() },
            ..msg.clone()
        };
        Verdict::Rewrite {
            content,
            meta: None,
        }
        .with_annotation(&base, "redacted", kinds.join(","))
    }
}

export_filter!(Redact);

impl Redact {
    /// The redacted text if anything was found, recording each kind found.
    fn redact(&self, text: &str, kinds: &mut Vec<String>) -> Option<String> {
        let found = self.keywords.find(text);
        let mut current: Option<String> = None;
        for detector in &self.detectors {
            if let Some(next) = detector.redact(current.as_deref().unwrap_or(text), text, found) {
                kinds.push(detector.kind.to_owned());
                current = Some(next);
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::testing::Harness;

    fn redact(text: &str) -> (String, Option<String>) {
        let mut h = Harness::<Redact>::new("{}");
        let msg = Message::test(text);
        let out = h.filter(&msg).apply(&msg).unwrap();
        (
            out.content.clone(),
            out.meta_value("redacted").map(str::to_owned),
        )
    }

    /// (input, expected output, expected `redacted` meta)
    const MUST_REDACT: &[(&str, &str, &str)] = &[
        (
            "key AKIAQ3EGRTZ7XUBN4K2P in prod",
            "key [REDACTED:aws-access-key] in prod",
            "aws-access-key",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [REDACTED:aws-secret-key]",
            "aws-secret-key",
        ),
        (
            "use ghp_8xK2mQ9vL4pR7tW1nB5cY3zH6jD0fG2aS4eU for CI",
            "use [REDACTED:github-token] for CI",
            "github-token",
        ),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH",
            "[REDACTED:github-token]",
            "github-token",
        ),
        (
            "token glpat-x8Kd93LmQp2Rt7Vw4Zy1 expires",
            "token [REDACTED:gitlab-token] expires",
            "gitlab-token",
        ),
        (
            "slack xoxb-123456789012-abcDEF987654",
            "slack [REDACTED:slack-token]",
            "slack-token",
        ),
        (
            "stripe sk_live_51Hx9KqLm2Np4Rs6Tv8Wx0Yz",
            "stripe [REDACTED:stripe-key]",
            "stripe-key",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\nthat's the key",
            "[REDACTED:private-key]\nthat's the key",
            "private-key",
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U ok",
            "jwt [REDACTED:jwt] ok",
            "jwt",
        ),
        (
            "DATABASE_URL=postgres://app:S3cr3tPa55@db.internal:5432/app",
            "DATABASE_URL=postgres://app:[REDACTED:url-password]@db.internal:5432/app",
            "url-password",
        ),
        (
            "api_key = \"9fK2xQ7pLm4Zr8Tw\"",
            "api_key = \"[REDACTED:secret]\"",
            "secret",
        ),
        (
            "Authorization: Bearer 9fK2xQ7pLm4Zr8Tw6yB1nC3d",
            "Authorization: Bearer [REDACTED:bearer-token]",
            "bearer-token",
        ),
        (
            "mail jane.doe@acme-corp.io please",
            "mail [REDACTED:email] please",
            "email",
        ),
        (
            "call +44 20 7946 0958 or (415) 555-0132",
            "call [REDACTED:phone] or [REDACTED:phone]",
            "phone",
        ),
        (
            "card 4111 1111 1111 1111 exp 12/29",
            "card [REDACTED:card] exp 12/29",
            "card",
        ),
        (
            "card 3782-822463-10005 and 5555555555554444",
            "card [REDACTED:card] and [REDACTED:card]",
            "card",
        ),
        (
            "the new one is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, rotate the old one",
            "the new one is [REDACTED:random-token], rotate the old one",
            "random-token",
        ),
        (
            "session 8fKq2LmZ7xTr4Wp9Yc3Vb6Nd1Hs5Gj0A expired",
            "session [REDACTED:random-token] expired",
            "random-token",
        ),
        (
            "ping ops@acme.io with ghp_8xK2mQ9vL4pR7tW1nB5cY3zH6jD0fG2aS4eU",
            "ping [REDACTED:email] with [REDACTED:github-token]",
            "email,github-token",
        ),
    ];

    const MUST_PASS: &[&str] = &[
        "ignore the lint warning, then push to git@github.com:acme/switchboard.git",
        "Co-Authored-By: Claude <noreply@anthropic.com>",
        "set DATABASE_URL=postgres://user:password@localhost/db in .env.example",
        "password = ${DB_PASSWORD}",
        "let token = self.next_token()?;",
        "secret_key = settings.SECRET_KEY",
        "max_tokens: 4096, temperature: 0.2",
        "token_type: access_token",
        "released v2.3.1 on 2024-05-17 at 14:03; see build 1700000000007",
        "commit 3f9c2b7e4a1d8c6f0e5b9a2d7c4f1e8b3a6d9c0f, PR #1234, line 120-130",
        "server at 192.168.1.100:8080, uuid 550e8400-e29b-41d4-a716-446655440000",
        "use sk-learn-compatible-estimators for the baseline",
        "the docs example user is admin@example.com",
        "icon@2x.png is blurry",
        "diff: +120 -45 across 7 files",
        "the system prompt file is in docs/",
        // Numbers side by side are not a card, whatever Luhn says.
        "still running: pids 34621 39375 49436 13746 3529",
        "ids 4111 1111 1111 1111 1111 and 4111 1111-1111 1111",
        "epoch ms 4111111111111 and order 4111111111111111111 22",
        // Random-looking, but not secrets.
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "\"integrity\": \"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==\"",
        "go.sum: golang.org/x/net v0.17.0 h1:pVaXccu2ozPjCXewfr1S2xnmBXgGlIjH4Yxqoe8jGqE=",
        "the test TestConnectionPoolHandlesRetry2xxResponses is flaky",
        "src/runtime/scheduler/multiThreadWorker2.rs needs a look",
        "![logo](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==)",
    ];

    #[test]
    fn redacts_secrets_and_pii() {
        let failures: Vec<String> = MUST_REDACT
            .iter()
            .filter_map(|(input, output, kinds)| {
                let got = redact(input);
                (got != ((*output).to_owned(), Some((*kinds).to_owned())))
                    .then(|| format!("{input:?}\n  got {got:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn leaves_ordinary_chat_untouched() {
        let mut h = Harness::<Redact>::new("{}");
        let changed: Vec<String> = MUST_PASS
            .iter()
            .filter_map(|text| match h.filter_text(text) {
                Verdict::Accept => None,
                other => Some(format!("{text:?}: {other:?}")),
            })
            .collect();
        assert!(changed.is_empty(), "{}", changed.join("\n"));
    }

    #[test]
    fn pii_can_be_turned_off() {
        let mut h = Harness::<Redact>::new(r#"{"pii": false}"#);
        assert!(
            h.filter_text("mail jane@acme.io, card 4111111111111111")
                .is_accept()
        );
        assert!(h.filter_text("AKIAQ3EGRTZ7XUBN4K2P").reason().is_none());
        assert!(!h.filter_text("AKIAQ3EGRTZ7XUBN4K2P").is_accept());
    }

    #[test]
    fn meta_values_are_redacted_and_kinds_merged() {
        let mut h = Harness::<Redact>::new("{}");
        let msg = Message::test("fine")
            .with_meta("contact", "jane@acme.io")
            .with_meta("redacted", "jwt");
        let out = h.filter(&msg).apply(&msg).unwrap();
        assert_eq!(out.content, "fine");
        assert_eq!(out.meta_value("contact"), Some("[REDACTED:email]"));
        assert_eq!(out.meta_value("redacted"), Some("email,jwt"));
        // Content untouched, so the rewrite must not carry a content copy.
        assert!(matches!(
            h.filter(&msg),
            Verdict::Rewrite { content: None, .. }
        ));
    }

    #[test]
    fn bad_config_is_refused() {
        let err = Harness::<Redact>::try_new(r#"{"disable": ["emails"]}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("config key `disable`: unknown kind \"emails\"")
        );
        let err = Harness::<Redact>::try_new(r#"{"pii": "yes"}"#)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "config key `pii`: invalid type: string \"yes\", expected a boolean"
        );
    }

    /// The labelled redaction set (`testdata/redact-eval.jsonl`): at least
    /// 95% of secrets and PII are gone, character for character, from what
    /// is delivered, and at most 1% of ordinary lines are altered.
    #[test]
    fn redaction_eval_set() {
        let (recall, altered_rate, report) = eval_set("{}");
        assert!(recall >= 0.95 && altered_rate <= 0.01, "{report}");
        // What the entropy detector buys (printed for docs/filters.md).
        eval_set(r#"{"disable": ["random-token"]}"#);
    }

    fn eval_set(config: &str) -> (f64, f64, String) {
        let mut h = Harness::<Redact>::new(config);
        let (mut secrets, mut removed, mut benign, mut altered) = (0, 0, 0, 0);
        let mut missed = Vec::new();
        for line in include_str!("../../testdata/redact-eval.jsonl").lines() {
            let entry: serde_json::Value = serde_json::from_str(line).expect("line is JSON");
            let msg = Message::test(entry["text"].as_str().expect("text"));
            let out = h.filter(&msg).apply(&msg).expect("verdict applies");
            if entry["label"] == 1 {
                secrets += 1;
                let secret = entry["secret"].as_str().expect("secret");
                if out.content.contains(secret) {
                    missed.push(format!("{} {secret:?}", entry["kind"]));
                } else {
                    removed += 1;
                }
            } else {
                benign += 1;
                if out.content != msg.content {
                    altered += 1;
                    missed.push(format!("altered: {:?}", out.content));
                }
            }
        }
        let recall = f64::from(removed) / f64::from(secrets);
        let altered_rate = f64::from(altered) / f64::from(benign);
        eprintln!(
            "redact-eval with {config}: removed {removed}/{secrets} ({:.1}%), altered {altered}/{benign} ({:.2}%)",
            100.0 * recall,
            100.0 * altered_rate
        );
        let report = format!(
            "removed {removed}/{secrets}, altered {altered}/{benign}:\n{}",
            missed.join("\n")
        );
        (recall, altered_rate, report)
    }

    /// The shared corpus: benign lines pass untouched, secret and PII lines are rewritten.
    #[test]
    fn corpus() {
        let mut h = Harness::<Redact>::new("{}");
        let mut failures = Vec::new();
        for line in include_str!("../../testdata/corpus.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let entry: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
            let text = entry["text"].as_str().expect("text");
            let verdict = h.filter_text(text);
            match (entry["label"].as_u64(), entry["category"].as_str()) {
                (Some(0), _) if !verdict.is_accept() => {
                    failures.push(format!("benign line changed: {text:?}: {verdict:?}"));
                }
                (Some(1), Some("secret" | "pii"))
                    if !matches!(verdict, Verdict::Rewrite { .. }) =>
                {
                    failures.push(format!("not redacted: {text:?}"));
                }
                _ => {}
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
