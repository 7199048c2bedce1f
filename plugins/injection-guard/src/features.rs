//! Text to hashed features: the one definition the filter scores with and the
//! trainer (`train/`) learns from, so the two can never disagree.
//!
//! A message becomes a list of feature ids, grouped by word: each word adds
//! its own id, the id of the pair it forms with the word before it, and the
//! ids of its character 3- to 5-grams (with start and end markers). Words are
//! runs of letters and digits after folding case, fullwidth forms and digits
//! (`２０２４` and `1999` are both `0000`), with apostrophes dropped inside a
//! word, so "Don't" and "dont" are one word. Character grams carry what word
//! ids miss: inflections (`ignor-`), misspellings and run-together words.
//! Grouping by word lets the model score any run of words (`score_windows`).

/// Feature ids fall in `0..1 << BITS`.
pub const BITS: u32 = 20;

/// Words longer than this (hashes, base64, URLs run together) count as one
/// shape word and contribute no character grams: they carry no wording, and
/// their grams would drown a short instruction next to them.
const MAX_WORD: usize = 24;

/// The smallest and largest character gram, in bytes of the folded word.
const GRAMS: (usize, usize) = (3, 5);

/// Distinct salts keep the id spaces of the feature kinds apart.
const SALT_WORD: u64 = 0x57;
const SALT_PAIR: u64 = 0x9A1F;
const SALT_GRAM: u64 = 0x3C6E_F372;
const SALT_LONG: u64 = 0xB5;

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
}

impl Features {
    /// Replaces the contents with the features of `text`.
    pub fn extract(&mut self, text: &str) {
        self.ids.clear();
        self.word_ends.clear();
        self.word.clear();
        self.prev_word = None;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(folded) = fold(c) {
                push_char(&mut self.word, folded);
            } else if is_apostrophe(c)
                && !self.word.is_empty()
                && chars.peek().is_some_and(|&next| fold(next).is_some())
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
        if word.len() <= MAX_WORD {
            self.push_grams(&word);
        }
        self.prev_word = Some(hash);
        self.word_ends.push(self.ids.len() as u32);
        self.word = word;
        self.word.clear();
    }

    /// Character grams over `^word$`, each packed into a u64 (grams are at
    /// most 8 bytes), so no gram needs a pass of its own.
    fn push_grams(&mut self, word: &[u8]) {
        let len = word.len() + 2;
        let byte = |i: usize| -> u64 {
            match i {
                0 => u64::from(b'^'),
                i if i == len - 1 => u64::from(b'$'),
                i => u64::from(word[i - 1]),
            }
        };
        for n in GRAMS.0..=GRAMS.1 {
            if n > len {
                break;
            }
            for start in 0..=len - n {
                let packed = (start..start + n).fold(n as u64, |acc, i| acc << 8 | byte(i));
                self.ids.push(bucket(packed ^ SALT_GRAM));
            }
        }
    }
}

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
        // "a": word + one 3-gram "^a$"; "bc": word, pair, ^bc bc$ ^bc$;
        // "def": word, pair, ^de def ef$ ^def def$ ^def$.
        assert_eq!(f.word_ends, vec![2, 7, 15]);
        assert!(f.ids.iter().all(|&id| id < 1 << BITS));
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
