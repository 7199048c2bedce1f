//! Access tokens: who may use the server, under which fixed name and role.
//!
//! The auth file (TOML) stores only SHA-256 hashes of tokens; a presented
//! token is hashed and compared against every entry in constant time.
//!
//! ```toml
//! [[token]]
//! name = "planner"       # the agent's fixed name, or the trigger's `from`
//! role = "agent"         # agent (MCP) | trigger (POST /v1/messages) | admin (both)
//! sha256 = "…"           # `switchboard hash-token` prints it
//! ```

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::registry::{is_server_name, validate_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Trigger,
    Admin,
}

impl Role {
    pub fn may_use_mcp(self) -> bool {
        matches!(self, Role::Agent | Role::Admin)
    }

    pub fn may_trigger(self) -> bool {
        matches!(self, Role::Trigger | Role::Admin)
    }
}

/// The identity behind a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("cannot read the auth file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the auth file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    sha256: String,
}

pub struct Authenticator {
    entries: Vec<(Principal, [u8; 32])>,
}

/// The hex SHA-256 of a token, as the auth file stores it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Authenticator {
    pub fn load(path: &Path) -> Result<Self, AuthFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| AuthFileError::Invalid {
            path: shown,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: AuthFile =
            toml::from_str(text).map_err(|e| crate::toml_error::describe(text, &e))?;
        let mut names = HashSet::new();
        let mut entries = Vec::new();
        for entry in file.token {
            validate_name(&entry.name).map_err(|e| format!("token {}: {e}", entry.name))?;
            if is_server_name(&entry.name) {
                return Err(format!(
                    "token {}: the name belongs to the server (webhook, switchboard…); pick another",
                    entry.name
                ));
            }
            if !names.insert(entry.name.to_ascii_lowercase()) {
                return Err(format!("the name {} appears twice", entry.name));
            }
            let hash = parse_hex32(&entry.sha256).ok_or_else(|| {
                format!(
                    "token {}: sha256 must be 64 hex digits (see `switchboard hash-token`)",
                    entry.name
                )
            })?;
            entries.push((
                Principal {
                    name: entry.name,
                    role: entry.role,
                },
                hash,
            ));
        }
        if entries.is_empty() {
            return Err("it lists no [[token]] entries".into());
        }
        Ok(Self { entries })
    }

    /// Every token's name: only an agent of that token may use it, and
    /// nobody may use a trigger's (a message from it would pass as the trigger's).
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|(p, _)| p.name.clone())
    }

    /// The principal a bearer token belongs to. Every entry is compared, in
    /// constant time, so timing says nothing about which (if any) matched.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (principal, hash) in &self.entries {
            let diff = presented
                .iter()
                .zip(hash)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(principal);
            }
        }
        found.cloned()
    }
}

/// The auth file in force. `SIGHUP` re-reads it, so tokens are added and
/// revoked without a restart; a file that no longer parses leaves the
/// tokens in force as they were.
pub struct Tokens {
    path: PathBuf,
    current: ArcSwap<Authenticator>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Self, AuthFileError> {
        Ok(Self {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(Authenticator::load(path)?),
        })
    }

    pub fn current(&self) -> Arc<Authenticator> {
        self.current.load_full()
    }

    /// Reads the file again and puts it in force.
    pub fn reload(&self) -> Result<Arc<Authenticator>, AuthFileError> {
        let fresh = Arc::new(Authenticator::load(&self.path)?);
        self.current.store(fresh.clone());
        Ok(fresh)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        /// Any text is either a valid auth file or a sentence saying why not.
        #[test]
        fn any_auth_file_text_parses_or_says_why(text in "\\PC{0,200}", name in "[a-zA-Z0-9_ -]{0,40}") {
            let _ = Authenticator::parse(&text);
            let file = format!("[[token]]\nname = {name:?}\nrole = \"agent\"\nsha256 = \"{}\"\n", hash_token("t"));
            match Authenticator::parse(&file) {
                Ok(auth) => prop_assert!(validate_name(&name).is_ok() && !is_server_name(&name) && auth.verify("t").is_some()),
                Err(why) => prop_assert!(!why.is_empty()),
            }
        }
    }

    fn file() -> String {
        format!(
            "[[token]]\nname = \"planner\"\nrole = \"agent\"\nsha256 = \"{}\"\n\
             [[token]]\nname = \"ci\"\nrole = \"trigger\"\nsha256 = \"{}\"\n",
            hash_token("secret-1"),
            hash_token("secret-2")
        )
    }

    #[test]
    fn verifies_tokens_by_hash() {
        let auth = Authenticator::parse(&file()).unwrap();
        assert_eq!(
            auth.verify("secret-1"),
            Some(Principal {
                name: "planner".into(),
                role: Role::Agent
            })
        );
        assert_eq!(auth.verify("secret-2").unwrap().role, Role::Trigger);
        assert_eq!(auth.verify("secret-3"), None);
        assert_eq!(auth.names().collect::<Vec<_>>(), ["planner", "ci"]);
    }

    #[test]
    fn bad_files_say_why() {
        assert!(
            Authenticator::parse("")
                .err()
                .unwrap()
                .contains("no [[token]]")
        );
        let short = "[[token]]\nname = \"a\"\nrole = \"agent\"\nsha256 = \"abc\"\n";
        assert!(
            Authenticator::parse(short)
                .err()
                .unwrap()
                .contains("64 hex digits")
        );
        let role = "[[token]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"abc\"\n";
        let error = Authenticator::parse(role).err().unwrap();
        assert!(
            error.starts_with("line 3, column 8: unknown variant `root`"),
            "{error}"
        );
        let server = file().replace("\"ci\"", "\"webhook\"");
        assert!(
            Authenticator::parse(&server)
                .err()
                .unwrap()
                .contains("belongs to the server")
        );
        let twice = file().replace("\"ci\"", "\"Planner\"");
        assert!(
            Authenticator::parse(&twice)
                .err()
                .unwrap()
                .contains("twice")
        );
    }
}
