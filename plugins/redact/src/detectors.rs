//! What counts as a secret or as personal data, one detector per kind.
//!
//! Provider-specific token formats come first because their prefixes make
//! them precise; the generic `key = value` detector runs late and only keeps
//! values that look random (letters and digits, high entropy, not code and not
//! a placeholder), which is where precision is otherwise lost.

use regex::{Captures, Regex};

use plugin_sdk::keywords::Keywords;

/// A cheap test on the original text that must pass before the regex runs:
/// most messages hold no secret, and one keyword pass is cheaper than a
/// search per detector. Words are ASCII and matched ignoring ASCII case.
pub enum Trigger {
    Any(&'static [&'static str]),
    All(&'static [&'static str]),
    /// `min` digits with nothing but `separators` between them.
    Digits(usize, &'static [u8]),
}

impl Trigger {
    fn words(&self) -> &'static [&'static str] {
        match self {
            Trigger::Any(words) | Trigger::All(words) => words,
            Trigger::Digits(..) => &[],
        }
    }
}

pub struct Detector {
    /// Shown in the replacement `[REDACTED:<kind>]` and the `redacted` meta.
    pub kind: &'static str,
    pub pii: bool,
    trigger: Trigger,
    /// The trigger's words among the [`Keywords`] of [`all`].
    words: u128,
    /// For a digit trigger, which bytes may stand between its digits: a
    /// table, since the test runs on every byte of every message.
    separators: [bool; 256],
    regex: Regex,
    /// Which capture group is the secret; the rest of the match is context
    /// that stays (the user name in a URL, the key in `key = value`).
    group: usize,
    accept: fn(&str) -> bool,
}

impl Detector {
    fn new(
        kind: &'static str,
        pii: bool,
        trigger: Trigger,
        pattern: &str,
        group: usize,
        accept: fn(&str) -> bool,
    ) -> Self {
        let mut separators = [false; 256];
        if let Trigger::Digits(_, bytes) = trigger {
            for &b in bytes {
                separators[usize::from(b)] = true;
            }
        }
        Self {
            kind,
            pii,
            trigger,
            words: 0,
            separators,
            // ASCII word boundaries, as the patterns were written for: a
            // Unicode `\b` makes the lazy DFA give up at the first
            // non-ASCII byte and fall back to a far slower engine.
            regex: Regex::new(&pattern.replace(r"\b", r"(?-u:\b)"))
                .expect("built-in pattern compiles"),
            group,
            accept,
        }
    }

    /// Whether the trigger passes on `original`, whose keywords are `found`.
    fn triggered(&self, original: &str, found: u128) -> bool {
        match self.trigger {
            Trigger::Any(_) => found & self.words != 0,
            Trigger::All(_) => found & self.words == self.words,
            Trigger::Digits(min, _) => has_digit_run(original, min, &self.separators),
        }
    }

    /// `text` with every accepted match replaced, or `None` if none was.
    /// The trigger is tested on `original`, the text before any detector
    /// rewrote it, whose keywords are `found`.
    pub fn redact(&self, text: &str, original: &str, found: u128) -> Option<String> {
        if !self.triggered(original, found) {
            return None;
        }
        let mut changed = false;
        let out = self.regex.replace_all(text, |caps: &Captures<'_>| {
            let whole = caps.get(0).expect("group 0 always matches");
            let Some(secret) = caps.get(self.group) else {
                return whole.as_str().to_owned();
            };
            if !(self.accept)(secret.as_str()) {
                return whole.as_str().to_owned();
            }
            changed = true;
            let before = &text[whole.start()..secret.start()];
            let after = &text[secret.end()..whole.end()];
            format!("{before}[REDACTED:{}]{after}", self.kind)
        });
        changed.then(|| out.into_owned())
    }
}

/// Every detector, in the order they run, and the keywords their triggers
/// test. Earlier replacements cannot be matched again: `[REDACTED:…]` is
/// neither a token nor a random value.
pub fn all() -> (Keywords, Vec<Detector>) {
    let mut detectors = vec![
        Detector::new(
            "private-key",
            false,
            Trigger::Any(&["private key"]),
            r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|(?:\s*(?:[A-Za-z0-9+/=]{16,}|[A-Za-z-]+:[^\n]*))*)",
            0,
            always,
        ),
        Detector::new(
            "aws-access-key",
            false,
            Trigger::Any(&["akia", "asia", "abia", "acca", "a3t"]),
            r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b",
            0,
            always,
        ),
        Detector::new(
            "aws-secret-key",
            false,
            Trigger::All(&["aws", "secret"]),
            r#"(?i)aws[_\-\s.]*secret[_\-\s.]*(?:access[_\-\s.]*)?key["'\s]*(?:[:=]|=>|:=)\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#,
            1,
            always,
        ),
        Detector::new(
            "github-token",
            false,
            Trigger::Any(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"]),
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b",
            0,
            always,
        ),
        Detector::new(
            "gitlab-token",
            false,
            Trigger::Any(&["glpat-"]),
            r"\bglpat-[A-Za-z0-9_-]{20,}",
            0,
            always,
        ),
        Detector::new(
            "slack-token",
            false,
            Trigger::Any(&["xox"]),
            r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
            0,
            always,
        ),
        Detector::new(
            "slack-webhook",
            false,
            Trigger::Any(&["hooks.slack.com"]),
            r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}",
            0,
            always,
        ),
        Detector::new(
            "stripe-key",
            false,
            Trigger::Any(&["_live_"]),
            r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b",
            0,
            always,
        ),
        Detector::new(
            "anthropic-key",
            false,
            Trigger::Any(&["sk-ant-"]),
            r"\bsk-ant-[A-Za-z0-9_-]{20,}",
            0,
            always,
        ),
        Detector::new(
            "openai-key",
            false,
            Trigger::Any(&["sk-"]),
            r"\bsk-(?:proj-|svcacct-|admin-)?([A-Za-z0-9_-]{20,})",
            1,
            mixed_case_and_digit,
        ),
        Detector::new(
            "google-api-key",
            false,
            Trigger::Any(&["aiza"]),
            r"\bAIza[0-9A-Za-z_-]{35}\b",
            0,
            always,
        ),
        Detector::new(
            "npm-token",
            false,
            Trigger::Any(&["npm_"]),
            r"\bnpm_[A-Za-z0-9]{36}\b",
            0,
            always,
        ),
        Detector::new(
            "jwt",
            false,
            Trigger::Any(&["eyj"]),
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            0,
            always,
        ),
        Detector::new(
            "url-password",
            false,
            Trigger::Any(&["://"]),
            r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/?#@\[\]]+:([^\s/?#@]+)@",
            1,
            not_placeholder,
        ),
        Detector::new(
            "bearer-token",
            false,
            Trigger::Any(&["bearer"]),
            r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{20,})",
            1,
            looks_random,
        ),
        Detector::new(
            "secret",
            false,
            Trigger::Any(&["key", "secret", "token", "passw", "pwd", "credential"]),
            r#"(?i)(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|passwd|pwd|credentials?|private[_-]?key|access[_-]?key|auth[_-]?key)[A-Za-z0-9_.-]*["']?\s*(?:=|:|=>|:=)\s*["'`]?([^\s"'`,;&]{8,})"#,
            1,
            looks_random,
        ),
        Detector::new(
            "random-token",
            false,
            Trigger::Digits(1, b""),
            // A run of token characters on its own; runs longer than 100
            // (base64 images, minified code) cannot match whole.
            r"(?:^|[^A-Za-z0-9+/=_.:-])([A-Za-z0-9+/_-]{24,100}={0,2})(?:$|[^A-Za-z0-9+/=_:-])",
            1,
            random_token,
        ),
        Detector::new(
            "email",
            true,
            Trigger::Any(&["@"]),
            r"\b[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b",
            0,
            real_email,
        ),
        Detector::new(
            "card",
            true,
            Trigger::Digits(13, b" -"),
            // Every run of digit groups, whole, so `card_number` can tell
            // 4111 1111 1111 1111 from five pids side by side.
            r"\b\d+(?:[ -]\d+)*\b",
            0,
            card_number,
        ),
        Detector::new(
            "phone",
            true,
            Trigger::Digits(8, b" .-()+"),
            r"(?:^|[^\w+.-])(\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,4}){1,4}|\+[1-9]\d{7,14}|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\b\d{3}[.-]\d{3}[.-]\d{4})\b",
            1,
            phone_number,
        ),
    ];
    let keywords = Keywords::new(detectors.iter().flat_map(|d| d.trigger.words()).copied());
    for detector in &mut detectors {
        detector.words = keywords.mask(detector.trigger.words());
    }
    (keywords, detectors)
}

fn always(_: &str) -> bool {
    true
}

/// Whether `min` digits occur with nothing but `separators` between them.
fn has_digit_run(text: &str, min: usize, separators: &[bool; 256]) -> bool {
    let mut digits = 0;
    text.bytes().any(|b| {
        if b.is_ascii_digit() {
            digits += 1;
        } else if !separators[usize::from(b)] {
            digits = 0;
        }
        digits >= min
    })
}

/// `sk-` also starts words like `sk-learn-compatible-estimators`; real keys
/// mix cases and digits.
fn mixed_case_and_digit(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_uppercase())
        && token.bytes().any(|b| b.is_ascii_lowercase())
        && token.bytes().any(|b| b.is_ascii_digit())
}

/// Documentation stand-ins (`password`, `****`, `${DB_PASS}`, `<token>`) are
/// not secrets and rewriting them only confuses the reader.
fn not_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let trimmed = lower.trim_matches(|c| c == '"' || c == '\'');
    let is_placeholder = trimmed.is_empty()
        || trimmed.starts_with("[redacted")
        || trimmed.starts_with('$')
        || trimmed.starts_with('<')
        || trimmed.starts_with('{')
        || trimmed.starts_with('%')
        || trimmed
            .chars()
            .all(|c| c == '*' || c == 'x' || c == '.' || c == '•')
        || matches!(
            trimmed,
            "password"
                | "pass"
                | "passwd"
                | "pwd"
                | "secret"
                | "changeme"
                | "example"
                | "token"
                | "redacted"
                | "hidden"
                | "none"
                | "null"
                | "mypassword"
                | "yourpassword"
        );
    !is_placeholder
}

/// For values found only by their key name: keep those that look generated.
fn looks_random(value: &str) -> bool {
    const ENTROPY_FLOOR: f64 = 3.0;
    let code_like = value.contains(['(', ')', '[', ']', '{', '}', '<', '>', '$'])
        || value.contains("://")
        || value.starts_with(['.', '~', '-', '/'])
        || is_identifier_path(value)
        || is_version(value);
    value.len() >= 8
        && not_placeholder(value)
        && !code_like
        && value.bytes().any(|b| b.is_ascii_digit())
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && shannon_entropy(value) >= ENTROPY_FLOOR
}

/// `settings.SECRET_KEY`, `GITHUB_TOKEN`, `token_v2`: names, not values.
fn is_identifier_path(value: &str) -> bool {
    let all_ident = value.split('.').all(|part| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    let screaming = value
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let snake = value.contains('_')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    all_ident && (value.contains('.') || screaming || snake)
}

fn is_version(value: &str) -> bool {
    let v = value.strip_prefix(['v', 'V']).unwrap_or(value);
    let mut parts = v.split('.');
    parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|p| p.starts_with(|c: char| c.is_ascii_digit()))
}

/// Bits per character of the value's own character distribution.
fn shannon_entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in value.bytes() {
        counts[usize::from(b)] += 1;
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / len;
            -p * p.log2()
        })
        .sum()
}

/// Addresses that identify nobody: SSH remotes (`git@github.com`), bot
/// senders, and the reserved documentation domains.
fn real_email(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local = local.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    let tld = domain.rsplit('.').next().unwrap_or("");
    let reserved = ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
        || matches!(tld, "example" | "test" | "invalid" | "localhost");
    // `icon@2x.png`: an asset name, not an address.
    let file_extension = matches!(tld, "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "ico");
    !(matches!(local.as_str(), "git" | "noreply" | "no-reply") || reserved || file_extension)
}

/// A card number as people write it: all its digits together, or in groups
/// of 4-4-4-4 (4-6-5 for Amex) with one kind of separator, with a known
/// issuer prefix and a valid Luhn check digit.
fn card_number(candidate: &str) -> bool {
    let groups: Vec<usize> = candidate.split([' ', '-']).map(str::len).collect();
    let one_separator = !(candidate.contains(' ') && candidate.contains('-'));
    let written_as_card = match groups.as_slice() {
        // 13-digit Visa is retired, and 13 digits is also a millisecond timestamp.
        [n] => (14..=16).contains(n) || *n == 19,
        [4, 4, 4, 4] | [4, 6, 5] => one_separator,
        _ => false,
    };
    if !written_as_card {
        return false;
    }
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    let prefix = |p: &str| {
        candidate
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .starts_with(p)
    };
    let known_issuer = match digits.len() {
        13 => prefix("4"),
        14 => ["300", "301", "302", "303", "304", "305", "36", "38", "39"]
            .into_iter()
            .any(prefix),
        15 => prefix("34") || prefix("37"),
        16 => {
            prefix("4")
                || [
                    "51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27",
                ]
                .into_iter()
                .any(prefix)
                || [
                    "6011", "65", "644", "645", "646", "647", "648", "649", "35", "62",
                ]
                .into_iter()
                .any(prefix)
        }
        17..=19 => prefix("4") || prefix("6") || prefix("35"),
        _ => false,
    };
    known_issuer && luhn(&digits)
}

/// A secret pasted with no key or prefix to give it away (an AWS secret
/// access key, a session token): letters of both cases and digits, changing
/// class often, with the entropy of random text. Hex (git SHAs, hashes,
/// UUIDs), words run together (`TestHandlesRetry2xx`), paths and numbers
/// lack one of these.
fn random_token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    let class = |b: u8| match b {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        b'0'..=b'9' => 2,
        _ => 3,
    };
    let mut seen = [false; 4];
    let mut switches = 0;
    let bytes = body.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        seen[class(b)] = true;
        if i > 0 && class(b) != class(bytes[i - 1]) {
            switches += 1;
        }
    }
    let hex = body.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let longest_word = body
        .split(|c: char| !c.is_ascii_lowercase())
        .map(str::len)
        .max()
        .unwrap_or(0);
    // Subresource-integrity and npm lockfile hashes name their algorithm.
    let named_hash = ["sha1-", "sha256-", "sha384-", "sha512-"]
        .iter()
        .any(|p| body.starts_with(p));
    // Short random strings have fewer distinct characters to show.
    let entropy_floor = (body.len() as f64).log2() - 0.7;
    seen[0]
        && seen[1]
        && seen[2]
        && !hex
        && !named_hash
        && longest_word < 8
        && switches * 10 >= body.len() * 4
        && shannon_entropy(body) >= entropy_floor.min(4.0)
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A plausible length for a dialable number; the pattern already demands
/// phone-style grouping, which dates, versions and IPs lack.
fn phone_number(candidate: &str) -> bool {
    let digits = candidate.chars().filter(char::is_ascii_digit).count();
    if candidate.starts_with('+') {
        (8..=15).contains(&digits)
    } else {
        digits == 10
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_separates_words_from_tokens() {
        assert!(shannon_entropy("aaaaaaaa") < 0.1);
        assert!(shannon_entropy("9fK2xQ7pLm4Z") > 3.4);
    }

    #[test]
    fn luhn_and_issuer() {
        assert!(card_number("4111 1111 1111 1111"));
        assert!(card_number("378282246310005"));
        assert!(!card_number("4111 1111 1111 1112"));
        // A millisecond timestamp, Luhn-valid by chance, but no issuer starts with 1.
        assert!(!card_number("1700000000007"));
    }

    #[test]
    fn random_values_only() {
        assert!(looks_random("9fK2xQ7pLm4Zr8Tw"));
        for value in [
            "settings.SECRET_KEY",
            "GITHUB_TOKEN",
            "${DB_PASSWORD}",
            "v2.3.1-beta",
            "********",
            "access_token",
            "/run/secrets/db",
        ] {
            assert!(!looks_random(value), "{value}");
        }
    }
}
