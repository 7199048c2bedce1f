//! Clients of a running server, for people and scripts: `switchboard join`
//! (an agent at the terminal), `switchboard send` and `switchboard agents`
//! (the HTTP trigger API). What they share: the server's address and the
//! access token, which comes from an environment variable, never the command line.

pub mod join;
pub mod mcp;
pub mod sse;
pub mod trigger;

use clap::Args;
use reqwest::StatusCode;

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's address (its `/mcp` endpoint may be given too).
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// Environment variable holding the access token, for a server started
    /// with --auth.
    #[arg(long, value_name = "VAR", default_value = "SWITCHBOARD_TOKEN")]
    pub token_env: String,
}

impl ServerArgs {
    /// The base URL, without a trailing `/mcp` or slash.
    pub fn base(&self) -> String {
        let url = self.url.trim_end_matches('/');
        url.strip_suffix("/mcp").unwrap_or(url).to_owned()
    }

    /// `Authorization` for the request, when the token variable is set.
    pub fn authorization(&self) -> Option<String> {
        std::env::var(&self.token_env)
            .ok()
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .map(|token| format!("Bearer {token}"))
    }

    /// What to do about a 401, appended to the server's sentence.
    pub fn hint(&self, status: StatusCode) -> String {
        if status != StatusCode::UNAUTHORIZED {
            return String::new();
        }
        match self.authorization() {
            None => format!(
                " (put the token in the environment variable {})",
                self.token_env
            ),
            Some(_) => format!(
                " (the token comes from the environment variable {})",
                self.token_env
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the server at {url}: {reason}; is switchboard running there? (see --url)"
    )]
    Connect { url: String, reason: String },
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    #[error("the server's answer is not what Switchboard sends: {0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    fn connect(url: &str, error: reqwest::Error) -> Self {
        // reqwest's own text nests its causes; the innermost one says what happened.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        ClientError::Connect {
            url: url.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_accepts_the_mcp_endpoint_too() {
        for url in [
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3000/",
            "http://127.0.0.1:3000/mcp",
        ] {
            let args = ServerArgs {
                url: url.into(),
                token_env: "UNSET_FOR_THIS_TEST".into(),
            };
            assert_eq!(args.base(), "http://127.0.0.1:3000");
            assert_eq!(args.authorization(), None);
        }
    }
}
