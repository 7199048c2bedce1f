//! The learned half of the guard: a logistic model over [`features`] ids,
//! its weights file format, and how a text is scored.
//!
//! A text's features count once per occurrence and are scaled by one over the
//! square root of their number, so a score does not grow with length. A long
//! message is also scored in overlapping runs of [`WINDOW`] words, and the
//! highest score wins: one injected paragraph in a long, ordinary page must
//! not be averaged away by the rest of it.
//!
//! The weights file (`model/weights.bin`, built into the component; `train/`
//! rebuilds it) is little-endian: magic `SBIG`, format version (u16), id bits
//! (u8), a zero byte, scale (f32), bias (f32), then `1 << bits` weights as i16
//! which multiplied by scale give the model's weights.

use crate::features::{BITS, Features};

/// Words per scored window, and how far windows step: each word is in two.
pub const WINDOW: usize = 48;
const STEP: usize = WINDOW / 2;

const MAGIC: &[u8; 4] = b"SBIG";
const VERSION: u16 = 1;
const HEADER: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("the model file does not start with SBIG; it is not a Switchboard guard model")]
    Magic,
    #[error(
        "the model file has format {found}, this filter reads {VERSION}; rebuild it with the trainer in train/"
    )]
    Version { found: u16 },
    #[error(
        "the model file was trained on {found}-bit feature ids, this filter makes {BITS}-bit ids; rebuild it with the trainer in train/"
    )]
    Bits { found: u8 },
    #[error("the model file is {found} bytes, expected {expected}; it is truncated or corrupt")]
    Length { found: usize, expected: usize },
}

/// Model weights borrowed from a weights file.
pub struct Model<'a> {
    weights: &'a [u8],
    scale: f32,
    bias: f32,
}

impl<'a> Model<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(ModelError::Magic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(ModelError::Version { found: version });
        }
        if u32::from(bytes[6]) != BITS {
            return Err(ModelError::Bits { found: bytes[6] });
        }
        let expected = HEADER + 2 * (1 << BITS);
        if bytes.len() != expected {
            return Err(ModelError::Length {
                found: bytes.len(),
                expected,
            });
        }
        let f32_at = |at: usize| f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        Ok(Self {
            weights: &bytes[HEADER..],
            scale: f32_at(8),
            bias: f32_at(12),
        })
    }

    fn weight(&self, id: u32) -> f32 {
        let at = 2 * id as usize;
        f32::from(i16::from_le_bytes([self.weights[at], self.weights[at + 1]])) * self.scale
    }

    /// The probability that the text is an injection: the highest over the
    /// whole text and each window of it.
    pub fn score(&self, features: &Features, sums: &mut Vec<f32>) -> f32 {
        // Per-word weight sums, prefixed: a window's sum is one subtraction.
        sums.clear();
        sums.push(0.0);
        let mut start = 0;
        for &end in &features.word_ends {
            let word: f32 = features.ids[start..end as usize]
                .iter()
                .map(|&id| self.weight(id))
                .sum();
            sums.push(sums.last().copied().unwrap_or(0.0) + word);
            start = end as usize;
        }
        let words = features.words();
        let logit = |from: usize, to: usize| {
            let begin = if from == 0 {
                0
            } else {
                features.word_ends[from - 1]
            };
            let count = (features.word_ends[to - 1] - begin) as f32;
            self.bias + (sums[to] - sums[from]) / count.sqrt()
        };
        if words == 0 {
            return sigmoid(self.bias);
        }
        let best = windows(words).fold(logit(0, words), |best, (from, to)| {
            best.max(logit(from, to))
        });
        sigmoid(best)
    }
}

/// The word ranges `from..to` a text of `words` words is scored on besides
/// the whole: none for a text that fits one window. The trainer learns long
/// ordinary texts on the same ranges.
pub fn windows(words: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = if words > WINDOW {
        (words - WINDOW).div_ceil(STEP) + 1
    } else {
        0
    };
    (0..count).map(move |i| (i * STEP, (i * STEP + WINDOW).min(words)))
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Writes a weights file; the trainer's half of [`Model::parse`].
pub fn encode(weights: &[f32], bias: f32) -> Vec<u8> {
    assert_eq!(weights.len(), 1 << BITS, "one weight per feature id");
    let largest = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
    let scale = if largest > 0.0 {
        largest / f32::from(i16::MAX)
    } else {
        1.0
    };
    let mut out = Vec::with_capacity(HEADER + 2 * weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(BITS as u8);
    out.push(0);
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend_from_slice(&bias.to_le_bytes());
    for w in weights {
        out.extend_from_slice(&((w / scale).round() as i16).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with(word: &str, weight: f32, bias: f32) -> Vec<u8> {
        let mut f = Features::default();
        f.extract(word);
        let mut weights = vec![0.0; 1 << BITS];
        for &id in &f.ids {
            weights[id as usize] = weight;
        }
        encode(&weights, bias)
    }

    fn score(bytes: &[u8], text: &str) -> f32 {
        let mut f = Features::default();
        f.extract(text);
        Model::parse(bytes).unwrap().score(&f, &mut Vec::new())
    }

    #[test]
    fn round_trips_and_scores() {
        let bytes = model_with("evil", 4.0, -2.0);
        assert!(score(&bytes, "evil") > 0.99);
        assert!(score(&bytes, "kind words") < 0.2);
        assert!((score(&bytes, "") - sigmoid(-2.0)).abs() < 1e-6);
    }

    #[test]
    fn a_window_finds_the_needle_in_a_long_text() {
        let bytes = model_with("evil", 16.0, -2.0);
        let hay = "plain ordinary words about the build ".repeat(40);
        let whole_only = {
            let mut f = Features::default();
            f.extract(&format!("{hay} evil {hay}"));
            let model = Model::parse(&bytes).unwrap();
            let mut sums = Vec::new();
            model.score(&f, &mut sums);
            let n = f.ids.len() as f32;
            sigmoid(-2.0 + (sums[f.words()]) / n.sqrt())
        };
        let windowed = score(&bytes, &format!("{hay} evil {hay}"));
        assert!(
            windowed > 0.6 && whole_only < 0.3,
            "{windowed} vs {whole_only}"
        );
    }

    #[test]
    fn refuses_foreign_files() {
        assert_eq!(Model::parse(b"nope").err(), Some(ModelError::Magic));
        let mut bytes = model_with("x", 1.0, 0.0);
        bytes[4] = 9;
        assert_eq!(
            Model::parse(&bytes).err(),
            Some(ModelError::Version { found: 9 })
        );
        let bytes = model_with("x", 1.0, 0.0);
        assert_eq!(
            Model::parse(&bytes[..100]).err(),
            Some(ModelError::Length {
                found: 100,
                expected: bytes.len()
            })
        );
    }
}
