//! `switchboard send` and `switchboard agents`: the HTTP trigger API
//! (`POST /v1/messages`, `GET /v1/agents`) from a shell, with an exit code
//! per outcome so scripts can tell a filter's refusal from a rate limit.

use std::{io::Read, process::ExitCode, time::Duration};

use clap::Args;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::{ClientError, ServerArgs, mcp::server_error_text};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub const SEND_EXIT_CODES: &str = "\
Exit codes:
  0  delivered
  1  the server could not be reached, or answered unexpectedly
  2  the request was refused as malformed (bad meta, empty or too large)
  3  the access token is missing, invalid, or not allowed to send
  4  no agent of that name is online
  5  a filter rejected the message (its reason is printed)
  6  rate limited: retry after the seconds printed
  7  the recipient cannot take it now (its queue is full, or it went offline)

The token is read from the variable named by --token-env (SWITCHBOARD_TOKEN).";

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The recipient's agent name.
    #[arg(long)]
    pub to: String,

    /// The text to deliver; `-` reads it from standard input.
    pub text: String,

    /// Extra channel meta, `key=value` (repeatable); keys are identifiers.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = meta_pair)]
    pub meta: Vec<(String, String)>,

    /// Who the message is from, without auth (default `webhook`). Each name
    /// has its own rate-limit allowance; with auth the token's name is used.
    #[arg(long)]
    pub from: Option<String>,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

fn meta_pair(pair: &str) -> Result<(String, String), String> {
    pair.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{pair:?} is not KEY=VALUE"))
}

/// The exit code of a `send` the server answered with `status`.
fn exit_code(status: StatusCode) -> u8 {
    match status.as_u16() {
        200..=299 => 0,
        400 | 413 => 2,
        401 | 403 => 3,
        404 => 4,
        422 => 5,
        429 => 6,
        503 => 7,
        _ => 1,
    }
}

fn client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

fn authorized(request: reqwest::RequestBuilder, server: &ServerArgs) -> reqwest::RequestBuilder {
    match server.authorization() {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

pub async fn send(args: SendArgs) -> ExitCode {
    let text = if args.text == "-" {
        let mut text = String::new();
        if let Err(error) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("switchboard send: cannot read the text from standard input: {error}");
            return ExitCode::from(2);
        }
        text.trim_end_matches('\n').to_owned()
    } else {
        args.text.clone()
    };
    let meta: Map<String, Value> = args
        .meta
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut body = json!({"to": args.to, "content": text, "meta": meta});
    if let Some(from) = &args.from {
        body["from"] = Value::String(from.clone());
    }
    let url = format!("{}/v1/messages", args.server.base());
    let sent = match client() {
        Ok(http) => authorized(http.post(&url), &args.server)
            .json(&body)
            .send()
            .await
            .map_err(|e| ClientError::connect(&url, e)),
        Err(error) => Err(error),
    };
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            eprintln!("switchboard send: {error}");
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        let receipt: Value = serde_json::from_str(&text).unwrap_or_default();
        let queued = receipt["waiting"].as_u64();
        let to = receipt["delivered_to"]
            .as_str()
            .or(receipt["queued_for"].as_str())
            .unwrap_or(&args.to);
        let receipt = crate::bus::Receipt {
            id: receipt["id"].as_str().unwrap_or_default().to_owned(),
            to: to.to_owned(),
            rewritten_by: receipt["rewritten_by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            queued: queued.map(|n| n as usize),
        };
        println!("{}", receipt.sentence());
    } else {
        let message = format!(
            "{}{}",
            server_error_text(status, &text),
            args.server.hint(status)
        );
        match retry_after {
            Some(seconds) if status == StatusCode::TOO_MANY_REQUESTS => {
                eprintln!("switchboard send: {message} (retry after {seconds} s)")
            }
            _ => eprintln!("switchboard send: {message}"),
        }
    }
    ExitCode::from(exit_code(status))
}

pub async fn agents(args: AgentsArgs) -> ExitCode {
    let url = format!("{}/v1/agents", args.server.base());
    let answer = match client() {
        Ok(http) => authorized(http.get(&url), &args.server)
            .send()
            .await
            .map_err(|e| ClientError::connect(&url, e)),
        Err(error) => Err(error),
    };
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            eprintln!("switchboard agents: {error}");
            return ExitCode::FAILURE;
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        eprintln!(
            "switchboard agents: {}{}",
            server_error_text(status, &text),
            args.server.hint(status)
        );
        return ExitCode::from(if exit_code(status) == 3 { 3 } else { 1 });
    }
    let listed: Value = serde_json::from_str(&text).unwrap_or_default();
    for name in listed["agents"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str() {
            println!("{name}");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_code() {
        let codes: Vec<u8> = [202, 400, 401, 404, 422, 429, 503, 500]
            .into_iter()
            .map(|s| exit_code(StatusCode::from_u16(s).unwrap()))
            .collect();
        assert_eq!(codes, [0, 2, 3, 4, 5, 6, 7, 1]);
        assert_eq!(meta_pair("build=12=3"), Ok(("build".into(), "12=3".into())));
        assert!(meta_pair("build").is_err());
    }
}
