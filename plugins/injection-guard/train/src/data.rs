//! The training manifest (`sources.toml`) and the labelled texts it names.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    source: Vec<SourceSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub id: String,
    pub file: PathBuf,
    /// `train` sources teach the model; `holdout` ones only measure it.
    pub split: Split,
    pub license: String,
    pub origin: String,
    /// Multiplies the source's share of its class (default 1).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Holdout,
}

#[derive(Debug, Deserialize)]
struct Row {
    text: String,
    label: u8,
}

pub struct Source {
    pub spec: SourceSpec,
    pub texts: Vec<(String, bool)>,
}

pub fn load(manifest: &Path) -> anyhow::Result<Vec<Source>> {
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let manifest: Manifest = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid manifest", manifest.display()))?;
    manifest
        .source
        .into_iter()
        .map(|spec| {
            let path = dir.join(&spec.file);
            let body = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {} (source {})", path.display(), spec.id))?;
            let mut texts = Vec::new();
            for (n, line) in body
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let row: Row = serde_json::from_str(line)
                    .with_context(|| format!("{} line {}", path.display(), n + 1))?;
                if row.label > 1 {
                    bail!("{} line {}: label must be 0 or 1", path.display(), n + 1);
                }
                texts.push((row.text, row.label == 1));
            }
            Ok(Source { spec, texts })
        })
        .collect()
}
