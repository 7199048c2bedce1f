//! The chain file (`chain.toml`): its schema, defaults and validation. Owns
//! nothing at runtime; the rest of the chain module works from [`FilterSpec`].

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Wall-clock deadline per call. Shorter deadlines killed healthy filters on a
/// loaded 2-core machine; hangs are what this guards against, CPU is fuel's job.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MEMORY_MIB: u32 = 16;
/// CPU budget per call in wasm fuel units (about one per instruction). The
/// hungriest bundled filter, injection-guard, needs up to 2^30 on a 64 KB
/// message (docs/performance.md); four times that keeps ordinary traffic
/// clear of the limit. A tight loop burns it in about a second, so for such a
/// filter the deadline and the fuel fire at about the same time.
pub const DEFAULT_FUEL: u64 = 4_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid chain file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: two filters are named {name:?}; give each filter a unique name")]
    DuplicateName { path: PathBuf, name: String },
    #[error("{path}: filter {name:?}: {problem}")]
    Invalid {
        path: PathBuf,
        name: String,
        problem: String,
    },
}

/// What happens to a message when its filter fails (trap, timeout, bad verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail closed: the message is rejected, naming the filter.
    #[default]
    Reject,
    /// Fail open: the filter is skipped for this message.
    Accept,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainFile {
    #[serde(default)]
    filter: Vec<RawFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    name: String,
    source: Option<PathBuf>,
    component: PathBuf,
    #[serde(default)]
    on_error: OnError,
    timeout_ms: Option<u64>,
    memory_mib: Option<u32>,
    fuel: Option<u64>,
    #[serde(default)]
    config: toml::Table,
}

/// Per-call limits of one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub fuel: u64,
}

/// One `[[filter]]` entry, with paths resolved against the chain file's folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSpec {
    pub name: String,
    /// Crate folder the server may build the component from.
    pub source: Option<PathBuf>,
    pub component: PathBuf,
    pub on_error: OnError,
    pub limits: Limits,
    /// The `config` table as a JSON object, handed to the guest verbatim.
    pub config_json: String,
}

/// Reads and validates a chain file.
pub fn load(path: &Path) -> Result<Vec<FilterSpec>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses chain file text; `path` resolves relative paths and names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<FilterSpec>, ConfigError> {
    let file: ChainFile = toml::from_str(text).map_err(|error| ConfigError::Parse {
        path: path.to_owned(),
        message: crate::toml_error::describe(text, &error),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut seen = HashSet::new();
    file.filter
        .into_iter()
        .map(|raw| {
            if !seen.insert(raw.name.clone()) {
                return Err(ConfigError::DuplicateName {
                    path: path.to_owned(),
                    name: raw.name,
                });
            }
            spec(path, base, raw)
        })
        .collect()
}

fn spec(path: &Path, base: &Path, raw: RawFilter) -> Result<FilterSpec, ConfigError> {
    let invalid = |problem: &str| ConfigError::Invalid {
        path: path.to_owned(),
        name: raw.name.clone(),
        problem: problem.to_owned(),
    };
    if raw.name.trim().is_empty() || raw.name.chars().any(char::is_control) {
        return Err(invalid("the name must be non-empty printable text"));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 {
        return Err(invalid("timeout_ms must be at least 1"));
    }
    let memory_mib = raw.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
    if !(1..=4096).contains(&memory_mib) {
        return Err(invalid("memory_mib must be between 1 and 4096"));
    }
    let fuel = raw.fuel.unwrap_or(DEFAULT_FUEL);
    if fuel == 0 {
        return Err(invalid("fuel must be at least 1"));
    }
    let config_json = serde_json::to_string(&raw.config)
        .map_err(|error| invalid(&format!("its config cannot be passed on as JSON: {error}")))?;
    Ok(FilterSpec {
        source: raw.source.map(|source| base.join(source)),
        component: base.join(&raw.component),
        on_error: raw.on_error,
        limits: Limits {
            timeout: Duration::from_millis(timeout_ms),
            memory_bytes: memory_mib as usize * 1024 * 1024,
            fuel,
        },
        config_json,
        name: raw.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<FilterSpec>, ConfigError> {
        parse(Path::new("/p/chain.toml"), text)
    }

    proptest::proptest! {
        /// A chain file in any state parses or gives an error, never a panic.
        #[test]
        fn any_chain_text_parses_or_errs(text in "\\PC{0,300}", timeout in proptest::prelude::any::<i64>()) {
            let _ = parse_str(&text);
            let _ = parse_str(&format!("[[filter]]\nname = \"a\"\ncomponent = \"a.wasm\"\ntimeout_ms = {timeout}\n"));
        }
    }

    #[test]
    fn defaults_and_paths() {
        let specs = parse_str(
            r#"
            [[filter]]
            name = "a"
            source = "a"
            component = "target/a.wasm"
            [filter.config]
            limit = 3
            words = ["x"]

            [[filter]]
            name = "b"
            component = "/abs/b.wasm"
            on_error = "accept"
            timeout_ms = 50
            memory_mib = 2
            fuel = 7
            "#,
        )
        .unwrap();
        assert_eq!(specs[0].name, "a");
        assert_eq!(specs[0].source.as_deref(), Some(Path::new("/p/a")));
        assert_eq!(specs[0].component, Path::new("/p/target/a.wasm"));
        assert_eq!(specs[0].on_error, OnError::Reject);
        assert_eq!(specs[0].limits.timeout, Duration::from_secs(1));
        assert_eq!(specs[0].limits.memory_bytes, 16 << 20);
        assert_eq!(specs[0].limits.fuel, DEFAULT_FUEL);
        assert_eq!(specs[0].config_json, r#"{"limit":3,"words":["x"]}"#);
        assert_eq!(specs[1].component, Path::new("/abs/b.wasm"));
        assert_eq!(specs[1].on_error, OnError::Accept);
        assert_eq!(specs[1].limits.timeout, Duration::from_millis(50));
        assert_eq!(specs[1].limits.memory_bytes, 2 << 20);
        assert_eq!(specs[1].limits.fuel, 7);
        assert_eq!(specs[1].config_json, "{}");
    }

    #[test]
    fn empty_file_is_an_empty_chain() {
        assert!(parse_str("").unwrap().is_empty());
    }

    #[test]
    fn refuses_unknown_keys_with_one_line() {
        let error = parse_str("[[filter]]\nname = \"a\"\ncomponent = \"a.wasm\"\ntimeout = 5\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `timeout`"), "{error}");
        assert!(error.contains("line 4, column 1"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let error = parse_str("[[filters]]\nname = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `filters`"), "{error}");
    }

    #[test]
    fn refuses_bad_values() {
        for (entry, needle) in [
            ("name = \"a\"", "missing field `component`"),
            (
                "name = \"a\"\ncomponent = \"a\"\non_error = \"drop\"",
                "unknown variant",
            ),
            ("name = \" \"\ncomponent = \"a\"", "non-empty"),
            (
                "name = \"a\"\ncomponent = \"a\"\ntimeout_ms = 0",
                "timeout_ms",
            ),
            (
                "name = \"a\"\ncomponent = \"a\"\nmemory_mib = 0",
                "memory_mib",
            ),
            ("name = \"a\"\ncomponent = \"a\"\nfuel = 0", "fuel"),
        ] {
            let error = parse_str(&format!("[[filter]]\n{entry}\n"))
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{entry}: {error}");
        }
    }

    #[test]
    fn refuses_duplicate_names() {
        let error = parse_str(
            "[[filter]]\nname = \"a\"\ncomponent = \"a\"\n[[filter]]\nname = \"a\"\ncomponent = \"b\"\n",
        )
        .unwrap_err();
        assert!(matches!(error, ConfigError::DuplicateName { .. }));
    }
}
