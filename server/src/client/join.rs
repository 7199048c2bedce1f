//! `switchboard join NAME`: a person at the terminal becomes an agent. It
//! prints channel messages as they arrive and turns typed lines into the
//! same tool calls Claude Code makes, showing the server's answer. Input is
//! read line by line, so scripts and tests can drive it through a pipe.

use std::{sync::Arc, time::Duration};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    ClientError, ServerArgs,
    mcp::{EventStream, McpClient},
};
use crate::registry::validate_name;

/// How often, and how far apart, a dropped event stream is re-opened before
/// giving up (a server restart takes a second or two).
const REOPEN_ATTEMPTS: u32 = 20;
const REOPEN_PAUSE: Duration = Duration::from_millis(500);

pub const USAGE: &str = "\
Type a line to act:
  @NAME TEXT     send TEXT to the agent NAME
  /who           list the agents online
  /rename NAME   take another name
  /quit          leave (end of input does the same)";

#[derive(Debug, Clone, Args)]
pub struct JoinArgs {
    /// The agent name to ask for; if another agent holds it you get `agent-N`.
    pub name: String,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// One typed line.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Send { to: &'a str, text: &'a str },
    Who,
    Rename(&'a str),
    Quit,
    Help,
    Blank,
    Unknown,
}

fn parse(line: &str) -> Line<'_> {
    let line = line.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (to, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Line::Send {
            to,
            text: text.trim(),
        };
    }
    let (command, argument) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match (command, argument.trim()) {
        ("/who", _) => Line::Who,
        ("/rename", name) => Line::Rename(name),
        ("/quit" | "/exit", _) => Line::Quit,
        ("/help", _) => Line::Help,
        _ => Line::Unknown,
    }
}

/// How a channel notification is shown: `coder: text  [kind=…, …]`.
fn render(data: &str) -> Option<String> {
    let message: Value = serde_json::from_str(data).ok()?;
    if message.get("method")?.as_str()? != crate::message::CHANNEL_METHOD {
        return None;
    }
    let params = message.get("params")?;
    let content = params.get("content")?.as_str()?;
    let meta = params.get("meta").and_then(Value::as_object);
    let from = meta
        .and_then(|m| m.get("from"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    // Continuation lines are indented, so a message never passes for a prompt.
    let mut line = format!("{from}: {}", content.replace('\n', "\n  "));
    let extra: Vec<String> = meta
        .into_iter()
        .flatten()
        .filter(|(key, _)| !matches!(key.as_str(), "from" | "to"))
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    if !extra.is_empty() {
        line.push_str(&format!("  [{}]", extra.join(", ")));
    }
    Some(line)
}

/// Runs until `/quit`, the end of input, or a lost session.
pub async fn run(args: JoinArgs) -> Result<(), ClientError> {
    if let Err(error) = validate_name(&args.name) {
        return Err(ClientError::Usage(error.to_string()));
    }
    let mut headers = vec![("x-agent-name", args.name.clone())];
    if let Some(authorization) = args.server.authorization() {
        headers.push(("authorization", authorization));
    }
    let url = format!("{}/mcp", args.server.base());
    let client = match McpClient::connect(&url, &headers).await {
        Ok(client) => Arc::new(client),
        Err(ClientError::Refused { status, message }) => {
            let message = format!("{message}{}", args.server.hint(status));
            return Err(ClientError::Refused { status, message });
        }
        Err(error) => return Err(error),
    };
    let stream = client.open_stream(None).await?;
    let roster = client.call_tool("list-agents", json!({})).await?;
    let you = roster.structured["you"].as_str().unwrap_or(&args.name);
    let online: Vec<&str> = roster.structured["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("joined as {you}; online: {}", online.join(", "));
    if let Some(note) = roster.structured["note"].as_str() {
        println!("note: not {}, because {note}", args.name);
    }
    println!("{USAGE}");

    let (lost_tx, mut lost) = mpsc::channel::<ClientError>(1);
    let printer = tokio::spawn(print_messages(client.clone(), stream, lost_tx));
    let mut lines = stdin_lines();
    let outcome = loop {
        let line = tokio::select! {
            line = lines.recv() => line,
            Some(error) = lost.recv() => break Err(error),
        };
        let Some(line) = line else {
            break Ok(());
        };
        let answer = match parse(&line) {
            Line::Blank => continue,
            Line::Quit => break Ok(()),
            Line::Help => {
                println!("{USAGE}");
                continue;
            }
            Line::Unknown => {
                println!("error: start a message with @NAME (e.g. @coder hello), or type /help");
                continue;
            }
            Line::Send { to, text } => {
                client
                    .call_tool("send-message", json!({"to": to, "message": text}))
                    .await
            }
            Line::Who => client.call_tool("list-agents", json!({})).await,
            Line::Rename(name) => {
                client
                    .call_tool("rename-agent", json!({"name": name}))
                    .await
            }
        };
        match answer {
            Ok(answer) if answer.is_error => println!("error: {}", answer.text),
            Ok(answer) => println!("ok: {}", answer.text),
            // The session may still work for the next line (a timeout, say).
            Err(error) => println!("error: {error}"),
        }
    };
    printer.abort();
    client.close().await;
    outcome
}

/// Prints each channel message; re-opens the stream when it drops, resuming
/// after the last event seen. Reports on `lost` when that stops working.
async fn print_messages(
    client: Arc<McpClient>,
    mut stream: EventStream,
    lost: mpsc::Sender<ClientError>,
) {
    let mut last_id: Option<String> = None;
    loop {
        while let Some(event) = stream.next().await {
            if event.id.is_some() {
                last_id.clone_from(&event.id);
            }
            if let Some(line) = render(&event.data) {
                println!("{line}");
            }
        }
        let mut attempt = 0;
        stream = loop {
            tokio::time::sleep(REOPEN_PAUSE).await;
            match client.open_stream(last_id.as_deref()).await {
                Ok(stream) => break stream,
                Err(error @ ClientError::Refused { .. }) => {
                    let _ = lost
                        .send(ClientError::Usage(format!(
                            "the server ended this session ({error}); run switchboard join again"
                        )))
                        .await;
                    return;
                }
                Err(error) if attempt + 1 >= REOPEN_ATTEMPTS => {
                    let _ = lost.send(error).await;
                    return;
                }
                Err(_) => attempt += 1,
            }
        };
    }
}

/// Standard input, line by line. A plain thread, not tokio's stdin: a
/// blocking read there would hold up the runtime's shutdown after `/quit`.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_commands() {
        assert_eq!(
            parse("@coder  hello there "),
            Line::Send {
                to: "coder",
                text: "hello there"
            }
        );
        assert_eq!(
            parse("@coder"),
            Line::Send {
                to: "coder",
                text: ""
            }
        );
        assert_eq!(parse("/who"), Line::Who);
        assert_eq!(parse("/rename  planner"), Line::Rename("planner"));
        assert_eq!(parse("/quit"), Line::Quit);
        assert_eq!(parse("   "), Line::Blank);
        assert_eq!(parse("hello"), Line::Unknown);
        assert_eq!(parse("/whoami"), Line::Unknown);
    }

    #[test]
    fn channel_messages_show_sender_text_and_meta() {
        let data = r#"{"jsonrpc":"2.0","method":"notifications/claude/channel","params":{"content":"build failed\nsee log","meta":{"from":"ci","to":"planner","kind":"webhook","severity":"info","build":"1234"}}}"#;
        assert_eq!(
            render(data).unwrap(),
            "ci: build failed\n  see log  [kind=webhook, severity=info, build=1234]"
        );
        assert_eq!(render(r#"{"jsonrpc":"2.0","method":"other"}"#), None);
    }
}
