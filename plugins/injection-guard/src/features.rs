//! Text to hashed features: the one definition the filter scores with and the
//! trainer (`train/`) learns from, so the two can never disagree.
//!
//! A message becomes a list of feature ids, grouped by word: each word adds
//! its own id, the ids of the pairs it forms with the word before it and the
//! one before that, its [`Concept`] and that concept's pairs with the
//! concepts just before it, and the ids of its character 5-grams (with start
//! and end markers). Words are runs of letters and digits after folding case,
//! fullwidth forms and digits (`２０２４` and `1999` are both `0000`), with
//! apostrophes dropped inside a word, so "Don't" and "dont" are one word.
//! Character grams carry what word ids miss: inflections (`ignor-`),
//! misspellings and run-together words. Grouping by word lets the model score
//! any run of words (`model::windows`).
//!
//! Shorter grams (3 and 4 bytes) and more id bits were tried: on the held-out
//! sources they flagged more ordinary text for no more attacks caught, and
//! cost three times the lookups (docs/filters.md).

/// Feature ids fall in `0..1 << BITS`.
pub const BITS: u32 = 18;

/// Words longer than this (hashes, base64, URLs run together) count as one
/// shape word and contribute no character grams: they carry no wording, and
/// their grams would drown a short instruction next to them.
const MAX_WORD: usize = 24;

/// Character gram length, in bytes of the folded word with its markers.
const GRAM: usize = 5;

/// Distinct salts keep the id spaces of the feature kinds apart.
const SALT_WORD: u64 = 0x57;
const SALT_PAIR: u64 = 0x9A1F;
const SALT_GRAM: u64 = 0x3C6E_F372;
const SALT_LONG: u64 = 0xB5;
const SALT_SKIP: u64 = 0x6A09_E667;
const SALT_CONCEPT: u64 = 0xBB67_AE85_0000;
const SALT_CONCEPT_PAIR: u64 = 0x3C6E_0000_0000;

/// How many words back a concept pairs with an earlier one.
const CONCEPT_REACH: usize = 4;

/// Word classes that injections are made of. Attack collections phrase the
/// same move in many words ("ignore", "disregard", "forget" the "previous",
/// "above", "prior" "instructions", "directions", "rules"); a word model
/// learns only the phrasings it saw, the classes let it learn the move.
/// Membership is by meaning alone, never chosen by looking at an evaluation
/// set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Concept {
    Override = 1,
    Prior,
    Instruction,
    Reveal,
    Secret,
    Persona,
    Unrestricted,
    Model,
    Fresh,
}

impl Concept {
    fn of(word: &[u8]) -> Option<Self> {
        Some(match word {
            b"ignore" | b"ignoring" | b"ignored" | b"disregard" | b"disregarding" | b"forget"
            | b"forgetting" | b"override" | b"overriding" | b"overrule" | b"bypass"
            | b"bypassing" | b"discard" | b"dismiss" | b"abandon" | b"skip" | b"neglect"
            | b"supersede" | b"supersedes" | b"nevermind" | b"cancel" | b"erase" | b"void" => {
                Self::Override
            }
            b"previous" | b"previously" | b"prior" | b"above" | b"preceding" | b"earlier"
            | b"former" | b"original" | b"initial" | b"aforementioned" | b"foregoing"
            | b"before" => Self::Prior,
            b"instruction" | b"instructions" | b"direction" | b"directions" | b"rule"
            | b"rules" | b"guideline" | b"guidelines" | b"prompt" | b"prompts" | b"command"
            | b"commands" | b"directive" | b"directives" | b"order" | b"orders" | b"constraint"
            | b"constraints" | b"restriction" | b"restrictions" | b"policy" | b"policies"
            | b"programming" | b"guardrails" | b"filters" | b"task" => Self::Instruction,
            b"reveal" | b"print" | b"output" | b"repeat" | b"display" | b"leak" | b"dump"
            | b"expose" | b"recite" | b"echo" | b"disclose" | b"divulge" | b"spell" | b"send"
            | b"forward" | b"exfiltrate" | b"upload" => Self::Reveal,
            b"system" | b"secret" | b"secrets" | b"password" | b"passwords" | b"credentials"
            | b"hidden" | b"confidential" | b"internal" | b"private" | b"apikey" | b"token"
            | b"tokens" | b"key" | b"keys" => Self::Secret,
            b"pretend" | b"pretending" | b"roleplay" | b"persona" | b"character" | b"act"
            | b"acting" | b"simulate" | b"impersonate" | b"embody" | b"become" | b"mode" => {
                Self::Persona
            }
            b"unrestricted" | b"unfiltered" | b"uncensored" | b"unlimited" | b"unbound"
            | b"jailbroken" | b"jailbreak" | b"unethical" | b"amoral" | b"immoral" | b"illegal"
            | b"harmful" | b"anything" | b"limitations" | b"freed" => Self::Unrestricted,
            b"ai" | b"assistant" | b"model" | b"llm" | b"chatbot" | b"gpt" | b"chatgpt"
            | b"bot" | b"agent" | b"openai" | b"claude" => Self::Model,
            b"new" | b"updated" | b"revised" | b"different" | b"real" | b"actual" | b"instead"
            | b"now" | b"henceforth" | b"onwards" | b"forth" => Self::Fresh,
            _ => return None,
        })
    }
}

/// The features of one text, reused across texts to keep allocation off the
/// hot path.
#[derive(Debug, Default, Clone)]
pub struct Features {
    /// Every feature occurrence, in text order.
    pub ids: Vec<u32>,
    /// `ids[word_ends[i - 1]..word_ends[i]]` are word `i`'s features.
    pub word_ends: Vec<u32>,
    word: Vec<u8>,
    prev_word: Option<u64>,
    before_prev: Option<u64>,
    /// The last few words that belong to a [`Concept`], with their word index.
    concepts: Vec<(Concept, usize)>,
}

impl Features {
    /// Replaces the contents with the features of `text`.
    pub fn extract(&mut self, text: &str) {
        self.ids.clear();
        self.word_ends.clear();
        self.word.clear();
        self.prev_word = None;
        self.before_prev = None;
        self.concepts.clear();
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            // ASCII, nearly all of any message, takes one table lookup.
            let (c, len) = match bytes[at] {
                byte if byte.is_ascii() => match ASCII_FOLD[usize::from(byte)] {
                    0 => (char::from(byte), 1),
                    folded => {
                        self.word.push(folded);
                        at += 1;
                        continue;
                    }
                },
                _ => {
                    let c = text[at..].chars().next().unwrap_or_default();
                    (c, c.len_utf8())
                }
            };
            at += len;
            if let Some(folded) = fold(c) {
                push_char(&mut self.word, folded);
            } else if is_apostrophe(c)
                && !self.word.is_empty()
                && text[at..]
                    .chars()
                    .next()
                    .is_some_and(|next| fold(next).is_some())
            {
                // "don't" stays one word.
            } else {
                self.end_word();
            }
        }
        self.end_word();
    }

    /// How many words the last text had.
    pub fn words(&self) -> usize {
        self.word_ends.len()
    }

    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let word = std::mem::take(&mut self.word);
        let hash = if word.len() > MAX_WORD {
            SALT_LONG
        } else {
            fnv(&word)
        };
        self.ids.push(bucket(hash ^ SALT_WORD));
        if let Some(prev) = self.prev_word {
            self.ids
                .push(bucket(prev.rotate_left(23) ^ hash ^ SALT_PAIR));
        }
        if let Some(before) = self.before_prev {
            self.ids
                .push(bucket(before.rotate_left(41) ^ hash ^ SALT_SKIP));
        }
        if let Some(concept) = Concept::of(&word) {
            self.push_concept(concept);
        }
        // A number's grams are runs of `0`: they say how long it is, which
        // its word id already does, and ids and timestamps are not wording.
        if word.len() <= MAX_WORD && word.iter().any(|&b| b != b'0') {
            self.push_grams(&word);
        }
        self.before_prev = self.prev_word;
        self.prev_word = Some(hash);
        self.word_ends.push(self.ids.len() as u32);
        self.word = word;
        self.word.clear();
    }

    /// The concept itself, and its pairs with the concepts of the few words
    /// before it: "disregard the directions above" and "ignore all prior
    /// rules" share (override, prior) and (prior, instruction) although they
    /// share no word.
    fn push_concept(&mut self, concept: Concept) {
        let here = self.word_ends.len();
        self.ids.push(bucket(concept as u64 ^ SALT_CONCEPT));
        self.concepts.retain(|&(_, at)| here - at <= CONCEPT_REACH);
        for &(before, _) in &self.concepts {
            let pair = (before as u64) << 8 | concept as u64;
            self.ids.push(bucket(pair ^ SALT_CONCEPT_PAIR));
        }
        self.concepts.push((concept, here));
    }

    /// Character grams over `^word$`, each packed into a u64 as it rolls by,
    /// so a word costs one pass.
    fn push_grams(&mut self, word: &[u8]) {
        const MASK: u64 = (1 << (8 * GRAM)) - 1;
        let mut packed = 0u64;
        let padded = std::iter::once(b'^')
            .chain(word.iter().copied())
            .chain(std::iter::once(b'$'));
        for (i, byte) in padded.enumerate() {
            packed = (packed << 8 | u64::from(byte)) & MASK;
            if i + 1 >= GRAM {
                self.ids.push(bucket(packed ^ SALT_GRAM));
            }
        }
    }
}

/// Each ASCII byte's folded form as in [`fold`], 0 for a separator.
const ASCII_FOLD: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut byte = 0;
    while byte < 128 {
        let b = byte as u8;
        table[byte] = if b.is_ascii_digit() {
            b'0'
        } else if b.is_ascii_alphabetic() {
            b.to_ascii_lowercase()
        } else {
            0
        };
        byte += 1;
    }
    table
};

/// A word character's folded form, or `None` for a separator.
fn fold(c: char) -> Option<char> {
    if c.is_ascii_alphanumeric() {
        return Some(if c.is_ascii_digit() {
            '0'
        } else {
            c.to_ascii_lowercase()
        });
    }
    if c.is_ascii() {
        return None;
    }
    // Fullwidth ASCII (U+FF01..U+FF5E) is the same letters in disguise.
    let c = match u32::from(c) {
        code @ 0xFF01..=0xFF5E => char::from_u32(code - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    if c.is_ascii() {
        return fold(c);
    }
    if c.is_numeric() {
        Some('0')
    } else if c.is_alphabetic() {
        Some(c.to_lowercase().next().unwrap_or(c))
    } else {
        None
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}')
}

fn push_char(word: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    word.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Fibonacci hashing: the top bits of a multiply spread nearby keys apart.
fn bucket(key: u64) -> u32 {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<u32> {
        let mut f = Features::default();
        f.extract(text);
        f.ids
    }

    #[test]
    fn folds_case_digits_fullwidth_and_apostrophes() {
        assert_eq!(ids("Ignore PREVIOUS"), ids("ignore previous"));
        assert_eq!(ids("build 2024"), ids("build 1999"));
        assert_eq!(ids("ｉｇｎｏｒｅ"), ids("ignore"));
        assert_eq!(ids("don't"), ids("dont"));
        assert_eq!(ids("don’t"), ids("dont"));
        assert_ne!(ids("ignore"), ids("ignores"));
    }

    #[test]
    fn groups_features_by_word() {
        let mut f = Features::default();
        f.extract("a bc, def!");
        assert_eq!(f.words(), 3);
        // "a": its word id ("^a$" is too short for a gram); "bc": word,
        // pair; "def": word, pair, the skip pair with "a", the gram "^def$".
        assert_eq!(f.word_ends, vec![1, 3, 7]);
        assert!(f.ids.iter().all(|&id| id < 1 << BITS));
    }

    #[test]
    fn different_words_for_one_move_share_concept_ids() {
        let pair =
            |a: Concept, b: Concept| bucket(((a as u64) << 8 | b as u64) ^ SALT_CONCEPT_PAIR);
        let override_prior = pair(Concept::Override, Concept::Prior);
        let prior_instruction = pair(Concept::Prior, Concept::Instruction);
        for text in ["disregard the directions above", "ignore all prior rules"] {
            let ids = ids(text);
            assert!(ids.contains(&override_prior), "{text}");
        }
        assert!(ids("ignore all prior rules").contains(&prior_instruction));
        // Concepts pair only within a few words of each other.
        let far = ids("ignore this one, the build has some flaky steps and above all the rules");
        assert!(!far.contains(&override_prior));
        assert!(!ids("the cat sat on the mat").contains(&override_prior));
    }

    #[test]
    fn numbers_are_words_without_grams() {
        assert_eq!(ids("1740452546361").len(), 1);
        assert_eq!(ids("1740452546361"), ids("9999999999999"));
        assert_eq!(ids("v2024").len(), 1 + 3);
    }

    #[test]
    fn long_words_are_one_shape() {
        let a = ids(&"x".repeat(200));
        assert_eq!(a.len(), 1);
        assert_eq!(a, ids(&"y".repeat(30)));
    }

    #[test]
    fn reuse_gives_the_same_features() {
        let mut f = Features::default();
        f.extract("first text here");
        f.extract("second");
        assert_eq!(f.ids, ids("second"));
        assert_eq!(f.words(), 1);
    }
}
