//! Which of a fixed set of keywords occur in a text, found in one pass.
//!
//! A cheap gate before expensive patterns: regex-lite costs tens of
//! microseconds per KiB per pattern, and one `str::contains` per keyword adds
//! up to a pass over the text each; this pass looks at each byte once and
//! compares only the keywords that start with it. A filter runs a pattern
//! only when the keywords it cannot match without are present.

pub struct Keywords {
    words: Vec<&'static [u8]>,
    /// Keywords with capitals match exactly, the rest ignoring ASCII case.
    exact: Vec<bool>,
    /// For each lowercased byte, the indexes of the keywords starting with it.
    by_first: Vec<Vec<usize>>,
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
        let mut by_first = vec![Vec::new(); 256];
        for (i, word) in unique.iter().enumerate() {
            by_first[usize::from(word[0].to_ascii_lowercase())].push(i);
        }
        Self {
            exact: unique
                .iter()
                .map(|w| w.iter().any(u8::is_ascii_uppercase))
                .collect(),
            words: unique,
            by_first,
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
        let bytes = text.as_bytes();
        let mut found = 0u128;
        for (at, byte) in bytes.iter().enumerate() {
            for &i in &self.by_first[usize::from(byte.to_ascii_lowercase())] {
                if found & 1 << i != 0 {
                    continue;
                }
                let word = self.words[i];
                let Some(here) = bytes.get(at..at + word.len()) else {
                    continue;
                };
                if if self.exact[i] {
                    here == word
                } else {
                    here.eq_ignore_ascii_case(word)
                } {
                    found |= 1 << i;
                }
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
        assert_eq!(k.find("ignor"), 0);
    }
}
