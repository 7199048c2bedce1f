//! A filter's typed view of its chain entry's `config` table.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The `[filter.config]` table of this filter's chain entry, as the host
/// passes it (a JSON object; empty when the chain file gives none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    table: Map<String, Value>,
}

impl Config {
    /// Parses the JSON object the host hands over.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(table)) => Ok(Self { table }),
            Ok(other) => Err(ConfigError::Malformed(format!(
                "expected a table, got {}",
                kind_of(&other)
            ))),
            Err(err) => Err(ConfigError::Malformed(err.to_string())),
        }
    }

    /// The value at `key`, which must be present.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, ConfigError> {
        self.get_opt(key)?.ok_or_else(|| ConfigError::Missing {
            key: key.to_owned(),
        })
    }

    /// The value at `key`, or `None` when the table lacks it.
    pub fn get_opt<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        self.table
            .get(key)
            .map(|value| {
                T::deserialize(value).map_err(|err| ConfigError::WrongType {
                    key: key.to_owned(),
                    detail: err.to_string(),
                })
            })
            .transpose()
    }

    /// The value at `key`, or `default` when the table lacks it. A value of
    /// the wrong type is still an error: a typo'd value should not silently
    /// become the default.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        Ok(self.get_opt(key)?.unwrap_or(default))
    }

    /// The whole table as one typed value (a `#[derive(Deserialize)]` struct,
    /// say; add `#[serde(deny_unknown_fields)]` to catch typos).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(&Value::Object(self.table.clone()))
            .map_err(|err| ConfigError::Malformed(err.to_string()))
    }

    /// Fails on the first key not in `allowed`, so a misspelt option is
    /// reported instead of ignored.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(ConfigError::Unknown {
                key: key.clone(),
                allowed: allowed.iter().map(|&k| k.to_owned()).collect(),
            }),
            None => Ok(()),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// Why a config table was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The table as a whole could not be read.
    Malformed(String),
    /// A required key is absent.
    Missing { key: String },
    /// A key holds a value of the wrong type.
    WrongType { key: String, detail: String },
    /// A key holds a well-typed value the filter cannot use.
    Invalid { key: String, reason: String },
    /// A key the filter does not know, probably a typo.
    Unknown { key: String, allowed: Vec<String> },
}

impl ConfigError {
    /// For checks beyond the type: `ConfigError::invalid("burst", "must be at least 1")`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(detail) => write!(f, "config is not usable: {detail}"),
            Self::Missing { key } => write!(f, "config key `{key}` is required"),
            Self::WrongType { key, detail } => write!(f, "config key `{key}`: {detail}"),
            Self::Invalid { key, reason } => write!(f, "config key `{key}`: {reason}"),
            Self::Unknown { key, allowed } if allowed.is_empty() => {
                write!(
                    f,
                    "unknown config key `{key}` (this filter takes no config)"
                )
            }
            Self::Unknown { key, allowed } => write!(
                f,
                "unknown config key `{key}` (expected one of: {})",
                allowed.join(", ")
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Config {
        Config::from_json(json).unwrap()
    }

    #[test]
    fn typed_get_and_defaults() {
        let c = cfg(r#"{"limit": 30, "name": "x", "on": true}"#);
        assert_eq!(c.get::<u32>("limit"), Ok(30));
        assert_eq!(c.get::<String>("name").as_deref(), Ok("x"));
        assert_eq!(c.get_or("missing", 7u32), Ok(7));
        assert_eq!(c.get_or("on", false), Ok(true));
        assert_eq!(c.get_opt::<u32>("missing"), Ok(None));
    }

    #[test]
    fn errors_name_the_key() {
        let c = cfg(r#"{"limit": "ten"}"#);
        let err = c.get_or("limit", 1u32).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `limit`: invalid type: string \"ten\", expected u32"
        );
        assert_eq!(
            c.get::<u32>("other").unwrap_err().to_string(),
            "config key `other` is required"
        );
        assert_eq!(
            c.check_keys(&["limt"]).unwrap_err().to_string(),
            "unknown config key `limit` (expected one of: limt)"
        );
    }

    #[test]
    fn non_object_is_malformed() {
        assert!(matches!(
            Config::from_json("[1]"),
            Err(ConfigError::Malformed(_))
        ));
        assert!(matches!(
            Config::from_json("{"),
            Err(ConfigError::Malformed(_))
        ));
        assert_eq!(Config::from_json("{}"), Ok(Config::default()));
    }

    #[test]
    fn parse_whole_table() {
        let c = cfg(r#"{"a": [1, 2]}"#);
        let v: std::collections::BTreeMap<String, Vec<u8>> = c.parse().unwrap();
        assert_eq!(v["a"], vec![1, 2]);
    }
}
