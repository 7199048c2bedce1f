//! Phrase and pattern rules run over plain text: the message itself and any
//! payload decoded from it.
//!
//! Every pattern is anchored on wording that ordinary engineering chat does not
//! use (an adjective like "previous" *and* a noun like "instructions", a
//! jailbreak persona rather than any role, a private key file *and* a verb
//! that moves it), because the messages this guards are full of "ignore",
//! "you are now", "system prompt" and `.env` in their everyday sense.

use std::fmt;

use regex::{Match, Regex};

use plugin_sdk::keywords::Keywords;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    HiddenUnicode,
    FakeTag,
    InstructionOverride,
    RolePlay,
    SecretRequest,
    CommandExecution,
    EncodedPayload,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::HiddenUnicode,
        Rule::FakeTag,
        Rule::InstructionOverride,
        Rule::RolePlay,
        Rule::SecretRequest,
        Rule::CommandExecution,
        Rule::EncodedPayload,
    ];

    /// The name used in config (`disable`) and in the `injection_suspected` meta.
    pub fn id(self) -> &'static str {
        match self {
            Rule::HiddenUnicode => "hidden-unicode",
            Rule::FakeTag => "fake-tag",
            Rule::InstructionOverride => "instruction-override",
            Rule::RolePlay => "role-play",
            Rule::SecretRequest => "secret-request",
            Rule::CommandExecution => "command-execution",
            Rule::EncodedPayload => "encoded-payload",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|rule| rule.id() == id)
    }

    /// How a rejection reason names the rule.
    fn label(self) -> &'static str {
        match self {
            Rule::HiddenUnicode => "hidden Unicode",
            Rule::FakeTag => "fake system/tool tag",
            Rule::InstructionOverride => "instruction override phrase",
            Rule::RolePlay => "role-play jailbreak phrase",
            Rule::SecretRequest => "request for secrets",
            Rule::CommandExecution => "dangerous command",
            Rule::EncodedPayload => "encoded payload",
        }
    }
}

/// Which rule fired and on what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.rule.label(), self.detail)
    }
}

const OVERRIDE: &str = r#"(?im)\b(?:ignore|disregard|forget|abandon|discard)\s+(?:(?:all|any|each|every|of|the|your|my|these|those|previous|prior|above)\s+){0,4}(?:previous|prior|above|earlier|preceding|former|original|initial|system)\s+(?:instructions?|prompts?|directions|directives?|rules|guidelines|programming|constraints)\b|\b(?:ignore|disregard|forget|discard)\s+(?:all\s+(?:of\s+)?)?your\s+(?:instructions|programming|guidelines|rules|system\s+prompt)\b|\bforget\s+(?:everything|all)\s+you\s+(?:were|have\s+been)\s+told\b|\b(?:ignore|disregard|forget)\s+(?:all\s+(?:of\s+)?|everything\s+)?(?:the\s+|what\s+(?:was|is)\s+(?:said|written)\s+)?above\b[^\n]{0,40}?\b(?:instead|from\s+now\s+on|you\s+(?:are|must|will|should)\s+now|new\s+(?:task|instructions?|role))|\b(?:do\s+not|don'?t|stop)\s+(?:follow|obey)(?:ing)?\s+(?:your|the|any)\s+(?:previous|prior|original|system)\s+(?:instructions|rules|guidelines|prompt)|^[ \t]*(?:#+[ \t]*)?(?:new|real|actual|true|hidden|secret|override|updated[ \t]+system)[ \t]+instructions?[ \t]*:"#;

const ROLE_PLAY: &str = r#"(?i)\byou\s+are\s+(?:now\s+)?(?:(?-i:DAN)\b|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)\b|(?:unrestricted|unfiltered|uncensored|jailbroken)\b|no\s+longer\s+(?:bound|restricted|limited|an?\s+(?:ai|assistant|language\s+model))\b|free\s+(?:of|from)\s+(?:all\s+|any\s+|your\s+)?(?:restrictions|rules|guidelines|filters)\b)|\b(?:act|respond|answer|behave)\s+as\s+(?:(?-i:DAN)\b|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|evil)\b)|\bdo\s+anything\s+now\b|\b(?:DAN|jailbreak|jailbroken|evil|unrestricted)\s+mode\b|\b(?:pretend|imagine|act\s+as\s+(?:if|though)|behave\s+as\s+(?:if|though)|role-?\s?play)\s+(?:that\s+)?you\b[^\n.]*?\b(?:have\s+no|without(?:\s+any)?|free\s+(?:of|from)|not\s+bound\s+by|no)\s+(?:restrictions|rules|guidelines|filters|limitations|safety|ethics|morals|content\s+polic(?:y|ies)|censorship)\b|\byour\s+new\s+(?:persona|identity|system\s+prompt)\s+is\b|\bstay\s+in\s+character\b|\bfrom\s+now\s+on,?\s+you\s+(?:are|will\s+(?:be|act\s+as|respond\s+as)|must\s+act\s+as)\s+(?:an?\s+)?(?:(?-i:DAN)\b|unrestricted|unfiltered|uncensored|jailbroken|evil|different\s+(?:ai|assistant|model))"#;

// Case-sensitive on purpose: `Vec<System>` is Rust, `<system>` is a spoof.
// The channel tag Claude Code wraps messages in is the exception: any case,
// spacing or fullwidth bracket that could close it, or open it with
// attributes, counts (`Vec<Channel>` is still Rust).
const FAKE_TAG: &str = r#"(?m)<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text|start_header_id|end_header_id|eot_id)\|>|\[/?INST\]|<</?SYS>>|</?(?:system|system_prompt|system-prompt|system-reminder|tool_result|tool_use|tool_call|function_results|function_calls)(?:\s[^>\n]*)?>|[<＜﹤]\s*[/／]\s*(?i:channel)(?:[\s/／][^>＞﹥\n]*)?[>＞﹥]|[<＜﹤]\s*(?i:channel)[\s/／][^>＞﹥\n]*[>＞﹥]|[<＜﹤]channel[>＞﹥]|^[ \t]*#{2,}[ \t]*(?i:system(?:[ \t]+prompt)?|instruction|new[ \t]+instructions)[ \t]*:"#;

/// Files whose whole content is a credential: any verb near them counts.
const KEY_FILE: &str = r#"(?i)\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\.aws/credentials\b|\.git-credentials\b|/etc/shadow\b|\.gnupg/|private-keys-v1\.d"#;

/// Files that hold credentials but are also discussed routinely: only a verb
/// that moves them somewhere counts.
const SECRET_FILE: &str = r#"(?i)(?:^|[\s"'`(/~])(?:\.env|\.netrc|\.npmrc|\.pypirc|\.pgpass|\.docker/config\.json|\.kube/config|credentials\.json|secrets\.ya?ml)\b"#;

const ANY_VERB: &str = r#"(?i)\b(?:cat|less|head|tail|print|show|display|read|dump|output|echo|base64|xxd|cp|copy|send|paste|share|post|upload|e-?mail|forward|leak|exfiltrate|give|reply|include|attach|curl|wget|nc|netcat|scp|rsync|tell)\b"#;

const MOVE_VERB: &str = r#"(?i)\b(?:send|paste|share|post|upload|e-?mail|forward|leak|exfiltrate|give\s+me|show\s+me|reply\s+with|attach|curl|wget|nc|netcat|scp|rsync|tell\s+me)\b"#;

const SECRET_ASK: &str = r#"(?i)\b(?:print|show|send|paste|share|reveal|repeat|recite|reply\s+with|tell\s+me|give\s+me|output|leak|echo|dump|post|display|e-?mail|forward|what(?:'s|\s+is|\s+are))\b[^\n]{0,30}?\byour\s+(?:[\w-]+\s+){0,2}?(?:api[\s_-]?keys?|(?:access|auth|bearer|session|api|github|gitlab|slack|openai|anthropic|aws|npm|pypi|deploy|ci)[\s_-]?(?:tokens?|keys?)|secret[\s_-]?keys?|credentials|passwords?|private[\s_-]?keys?|ssh[\s_-]?keys?|secrets|env(?:ironment)?\s+(?:variables|vars)|system\s+prompt|(?:initial|hidden|original)\s+instructions)(?:\s*[.?!,:;)\n]|\s*$|\s+(?:to|with|here|in|so|and|now|please|over|via|for|below|verbatim)\b)"#;

const COMMAND: &str = r#"(?im)\b(?:curl|wget)\b[^\n|;&]*\|\s*(?:sudo\s+)?(?:(?:ba|z|da|k|fi|c)?sh|python[23]?|perl|ruby|node|php)\b|\b(?:ba|z)?sh\s+(?:-c\s+)?["']?\s*(?:<\(|\$\()\s*(?:curl|wget)\b|\b(?:iex|invoke-expression)\b[^\n]*\b(?:iwr|irm|invoke-webrequest|invoke-restmethod|downloadstring)\b|/dev/tcp/[\w.-]+/\d|\b(?:nc|ncat|netcat)\b[^\n]*?\s-[ec]\s+\S*(?:sh|cmd(?:\.exe)?)\b|\brm\s+-[a-z]*r[a-z]*\s+(?:--no-preserve-root\s+)?(?:/|~/?|\$HOME/?)\*?(?:\s|$|[;&|])|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"#;

const URL_HOST: &str = r#"(?i)https?://([^/\s'"|:?#]+)"#;

/// Words after `.env` that show it is being talked about, not handed over.
const SECRET_FILE_TOPICS: &[&str] = &[
    "format",
    "example",
    "template",
    "sample",
    "loading",
    "loader",
    "parsing",
    "parser",
    "support",
    "handling",
    "syntax",
    "convention",
    "pattern",
    "layout",
    "schema",
    "structure",
    "files",
    "approach",
];

/// How far from a credential file a verb may stand and still be about it.
const VERB_WINDOW: usize = 80;

/// Words a pattern cannot match without: alternatives, each a list of
/// groups that must all have one of their words in the text, so a keyword
/// missing from the text means the pattern need not run. Keywords fold ASCII
/// case only, where `(?i)` also folds the few non-ASCII letters whose case
/// fold is ASCII (the Kelvin sign to `k`, long s to `s`): a phrase spelled
/// with those closes the gate, a gap the earlier ASCII-only engine had too.
type Gate = &'static [&'static [&'static [&'static str]]];

const FAKE_TAG_GATE: Gate = &[&[&[
    "<|",
    "<<",
    "<system",
    "</system",
    "<tool_",
    "</tool_",
    "<function_",
    "</function_",
    // Any spelling of the channel tag: `</Channel>`, `</ channel>`, `＜/channel＞`.
    "channel",
    "[inst",
    "[/inst",
    "##",
]]];

const OVERRIDE_VERBS: &[&str] = &["ignore", "disregard", "forget", "abandon", "discard"];
const OVERRIDE_NOUNS: &[&str] = &[
    "instruction",
    "prompt",
    "direction",
    "directive",
    "rules",
    "guidelines",
    "programming",
    "constraints",
];
const OVERRIDE_GATE: Gate = &[
    &[OVERRIDE_VERBS, OVERRIDE_NOUNS],
    &[OVERRIDE_VERBS, &["told", "above"]],
    &[&["follow", "obey"], OVERRIDE_NOUNS],
    &[&["instruction"], &[":"]],
];

// "DAN" in capitals except in "DAN mode", which ignores case.
const ROLE_PLAY_GATE: Gate = &[
    &[&[
        "DAN",
        "unrestricted",
        "unfiltered",
        "uncensored",
        "jailbr",
        "evil",
        "rogue",
        "longer",
        "free",
        "anything",
        "restrictions",
        "rules",
        "guidelines",
        "filters",
        "limitations",
        "safety",
        "ethics",
        "morals",
        "polic",
        "censorship",
        "persona",
        "identity",
        "prompt",
        "character",
        "different",
    ]],
    &[&["dan"], &["mode"]],
];

const SECRET_ASK_GATE: Gate = &[&[
    &["your"],
    &[
        "key",
        "token",
        "credentials",
        "password",
        "secrets",
        "vars",
        "variables",
        "prompt",
        "instructions",
    ],
]];

const KEY_FILE_GATE: Gate = &[&[&[
    "id_",
    ".aws",
    "git-credentials",
    "shadow",
    ".gnupg",
    "private-keys",
]]];

const SECRET_FILE_GATE: Gate = &[&[&[
    ".env",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".docker",
    ".kube",
    "credentials.json",
    "secrets.y",
]]];

const COMMAND_GATE: Gate = &[&[&[
    "curl",
    "wget",
    "/dev/tcp",
    "rm ",
    "rm\t",
    "iex",
    "invoke-expression",
    " -e ",
    " -c ",
    ":(",
]]];

/// Compiles a built-in pattern with ASCII word boundaries, the ones the
/// patterns were written and tested for. A Unicode `\b` makes the regex
/// engine's lazy DFA give up at the first non-ASCII byte: one emoji in a
/// message turned a 20 µs scan into 600 µs.
fn compile(pattern: &str) -> Regex {
    Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("built-in pattern compiles")
}

/// A [`Gate`] resolved against the instance's [`Keywords`].
struct Gated {
    /// Per alternative, one keyword set per group.
    alternatives: Vec<Vec<u128>>,
    regex: Regex,
}

impl Gated {
    fn new(keywords: &Keywords, gate: Gate, pattern: &str) -> Self {
        Self {
            alternatives: gate
                .iter()
                .map(|groups| groups.iter().map(|words| keywords.mask(words)).collect())
                .collect(),
            regex: compile(pattern),
        }
    }

    /// The pattern, if the keywords `found` in the text let it match at all.
    fn open(&self, found: u128) -> Option<&Regex> {
        self.alternatives
            .iter()
            .any(|groups| groups.iter().all(|&set| found & set != 0))
            .then_some(&self.regex)
    }
}

/// The compiled rules; built once per instance.
pub struct TextRules {
    keywords: Keywords,
    override_phrase: Gated,
    role_play: Gated,
    fake_tag: Gated,
    key_file: Gated,
    secret_file: Gated,
    any_verb: Regex,
    move_verb: Regex,
    secret_ask: Gated,
    command: Gated,
    url_host: Regex,
    allow_pipe_hosts: Vec<String>,
}

impl TextRules {
    /// `allow_pipe_hosts`: hosts whose install scripts may be piped into a
    /// shell (`curl … | sh`) without a finding.
    pub fn new(allow_pipe_hosts: Vec<String>) -> Self {
        let gates = [
            FAKE_TAG_GATE,
            OVERRIDE_GATE,
            ROLE_PLAY_GATE,
            SECRET_ASK_GATE,
            KEY_FILE_GATE,
            SECRET_FILE_GATE,
            COMMAND_GATE,
        ];
        let keywords = Keywords::new(
            gates
                .iter()
                .flat_map(|gate| gate.iter().copied().flatten().copied().flatten())
                .copied(),
        );
        let gated = |gate, pattern| Gated::new(&keywords, gate, pattern);
        Self {
            override_phrase: gated(OVERRIDE_GATE, OVERRIDE),
            role_play: gated(ROLE_PLAY_GATE, ROLE_PLAY),
            fake_tag: gated(FAKE_TAG_GATE, FAKE_TAG),
            key_file: gated(KEY_FILE_GATE, KEY_FILE),
            secret_file: gated(SECRET_FILE_GATE, SECRET_FILE),
            any_verb: compile(ANY_VERB),
            move_verb: compile(MOVE_VERB),
            secret_ask: gated(SECRET_ASK_GATE, SECRET_ASK),
            command: gated(COMMAND_GATE, COMMAND),
            url_host: compile(URL_HOST),
            allow_pipe_hosts: allow_pipe_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            keywords,
        }
    }

    /// The first finding among the enabled rules, strongest signals first.
    ///
    /// Each pattern runs only if the text holds the words it cannot match
    /// without (see [`Gate`]); most messages trip no rule at all.
    pub fn scan(&self, text: &str, enabled: impl Fn(Rule) -> bool) -> Option<Finding> {
        let found = self.keywords.find(text);
        let checks: [(Rule, &dyn Fn() -> Option<String>); 5] = [
            (Rule::FakeTag, &|| self.fake_tag(text, found)),
            (Rule::InstructionOverride, &|| {
                self.override_phrase.open(found)?.find(text).map(quote)
            }),
            (Rule::RolePlay, &|| {
                self.role_play.open(found)?.find(text).map(quote)
            }),
            (Rule::SecretRequest, &|| self.secret_request(text, found)),
            (Rule::CommandExecution, &|| self.command(text, found)),
        ];
        checks
            .into_iter()
            .filter(|(rule, _)| enabled(*rule))
            .find_map(|(rule, check)| check().map(|detail| Finding { rule, detail }))
    }

    fn fake_tag(&self, text: &str, found: u128) -> Option<String> {
        self.fake_tag
            .open(found)?
            .find_iter(text)
            .find(|m| !names_a_tag(text, m))
            .map(quote)
    }

    fn secret_request(&self, text: &str, found: u128) -> Option<String> {
        if let Some(m) = self
            .secret_ask
            .open(found)
            .and_then(|ask| ask.find_iter(text).find(|m| !negated(text, m.start())))
        {
            return Some(quote(m));
        }
        let key_file_matches = self
            .key_file
            .open(found)
            .map(|files| files.find_iter(text))
            .into_iter()
            .flatten();
        for file in key_file_matches {
            // A public key is meant to be shared.
            if text[file.end()..].starts_with(".pub") {
                continue;
            }
            if let Some(span) = verb_near(text, file, &self.any_verb) {
                return Some(quote_span(text, span));
            }
        }
        let secret_file_matches = self
            .secret_file
            .open(found)
            .map(|files| files.find_iter(text))
            .into_iter()
            .flatten();
        for file in secret_file_matches {
            if about_the_file(&text[file.end()..]) {
                continue;
            }
            if let Some(span) = verb_near(text, file, &self.move_verb) {
                return Some(quote_span(text, span));
            }
        }
        None
    }

    fn command(&self, text: &str, found: u128) -> Option<String> {
        self.command
            .open(found)?
            .find_iter(text)
            .find(|m| !self.allowed_pipe(m.as_str()))
            .map(quote)
    }

    /// A `curl … | sh` whose every URL is on an allowed host (rustup's
    /// installer, say) is a routine install step.
    fn allowed_pipe(&self, command: &str) -> bool {
        let mut hosts = self
            .url_host
            .captures_iter(command)
            .filter_map(|c| c.get(1))
            .map(|h| h.as_str().to_ascii_lowercase())
            .peekable();
        hosts.peek().is_some()
            && hosts.all(|host| {
                self.allow_pipe_hosts.iter().any(|allowed| {
                    host == *allowed
                        || host
                            .strip_suffix(allowed.as_str())
                            .is_some_and(|sub| sub.ends_with('.'))
                })
            })
    }
}

/// A tag alone in an inline code span (`` `<system>` ``) is being talked
/// about. Channel tags get no such pass: the recipient's channel wrapper ends
/// at a literal `</channel>` whatever surrounds it.
fn names_a_tag(text: &str, tag: &Match<'_>) -> bool {
    !tag.as_str().contains("channel")
        && text[..tag.start()].ends_with('`')
        && text[tag.end()..].starts_with('`')
}

/// `.env.example`, `.env format`: the file as a topic, not a payload.
fn about_the_file(after: &str) -> bool {
    if after.starts_with(['.', '-', '_']) && after.len() > 1 {
        return after[1..].starts_with(|c: char| c.is_ascii_alphanumeric());
    }
    let next_word = after
        .trim_start()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    SECRET_FILE_TOPICS.contains(&next_word.as_str())
}

/// The span from a non-negated verb within [`VERB_WINDOW`] bytes of `file`
/// through `file` (or the other way round).
fn verb_near(text: &str, file: Match<'_>, verbs: &Regex) -> Option<(usize, usize)> {
    let lo = text.floor_char_boundary(file.start().saturating_sub(VERB_WINDOW));
    let hi = text.ceil_char_boundary(file.end().saturating_add(VERB_WINDOW).min(text.len()));
    verbs
        .find_iter(&text[lo..hi])
        .map(|v| (lo + v.start(), lo + v.end()))
        .find(|&(start, _)| !negated(text, start))
        .map(|(start, end)| (start.min(file.start()), end.max(file.end())))
}

/// "don't paste your .env", "never print your API key": a warning, not a request.
fn negated(text: &str, at: usize) -> bool {
    text[..at].split_whitespace().rev().take(2).any(|word| {
        let word = word.to_ascii_lowercase().replace('\u{2019}', "'");
        matches!(
            word.as_str(),
            "not"
                | "never"
                | "don't"
                | "dont"
                | "doesn't"
                | "shouldn't"
                | "won't"
                | "avoid"
                | "without"
                | "no"
        )
    })
}

fn quote(m: Match<'_>) -> String {
    excerpt(m.as_str())
}

fn quote_span(text: &str, (start, end): (usize, usize)) -> String {
    excerpt(&text[start..end])
}

/// The matched text, whitespace collapsed and cut short, quoted so the
/// sender sees exactly which words tripped the rule.
pub fn excerpt(matched: &str) -> String {
    const MAX_CHARS: usize = 60;
    let collapsed = matched.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = collapsed.chars().take(MAX_CHARS).collect();
    if short.len() < collapsed.len() {
        short.push('…');
    }
    format!("{short:?}")
}
