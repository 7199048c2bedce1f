//! Which of a fixed set of keywords occur in a text, found in one pass.
//!
//! A cheap gate before expensive patterns: a filter runs a regex only when
//! the keywords it cannot match without are present, and most messages hold
//! none of them, so one pass replaces a search per pattern. The pass is an
//! Aho-Corasick DFA: one table lookup per byte whatever the number of
//! keywords, which matters in WebAssembly under fuel metering, where every
//! instruction counts.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

pub struct Keywords {
    words: Vec<&'static [u8]>,
    /// Keywords with capitals match exactly, the rest ignoring ASCII case.
    exact: Vec<bool>,
    /// Every keyword, ignoring ASCII case; `exact` ones are checked after.
    automaton: AhoCorasick,
}

impl Keywords {
    /// Duplicates are merged; at most 128 distinct keywords.
    pub fn new(words: impl IntoIterator<Item = &'static str>) -> Self {
        let mut unique: Vec<&'static [u8]> = Vec::new();
        for word in words {
            assert!(!word.is_empty(), "keywords are not empty");
            if !unique.contains(&word.as_bytes()) {
                unique.push(word.as_bytes());
            }
        }
        assert!(unique.len() <= 128, "keyword sets fit a u128");
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&unique)
            .expect("a few short keywords fit a DFA");
        Self {
            exact: unique
                .iter()
                .map(|w| w.iter().any(u8::is_ascii_uppercase))
                .collect(),
            words: unique,
            automaton,
        }
    }

    /// The bit set of `words`, to test against what [`Keywords::find`] returns.
    pub fn mask(&self, words: &[&str]) -> u128 {
        words.iter().fold(0, |mask, word| {
            let i = self
                .words
                .iter()
                .position(|w| *w == word.as_bytes())
                .expect("keyword was registered");
            mask | 1 << i
        })
    }

    /// The bit set of the keywords occurring in `text`.
    pub fn find(&self, text: &str) -> u128 {
        let mut found = 0u128;
        for hit in self.automaton.find_overlapping_iter(text) {
            let i = hit.pattern().as_usize();
            if !self.exact[i] || text.as_bytes()[hit.range()] == *self.words[i] {
                found |= 1 << i;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keywords_by_case_rule() {
        let k = Keywords::new(["ignore", "DAN", "/dev/tcp", "ignore"]);
        let found = k.find("IGNORE that; dan, nc /DEV/TCP");
        assert_eq!(found, k.mask(&["ignore", "/dev/tcp"]));
        assert_eq!(k.find("DAN"), k.mask(&["DAN"]));
        assert_eq!(k.find("dan, then DAN"), k.mask(&["DAN"]));
        assert_eq!(k.find("ignor"), 0);
    }

    #[test]
    fn finds_overlapping_keywords() {
        let k = Keywords::new(["<system", "system", "##", "# "]);
        assert_eq!(k.find("<system>"), k.mask(&["<system", "system"]));
        assert_eq!(k.find("### x"), k.mask(&["##", "# "]));
    }
}
