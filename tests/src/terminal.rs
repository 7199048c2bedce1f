//! `switchboard join` driven through a pipe, as a script would: lines go in
//! on stdin, what it prints comes back line by line. Every wait is bounded.

use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
    time::timeout,
};

use crate::WAIT;

/// A running `switchboard join`; killed when dropped.
pub struct Terminal {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Everything printed so far, for failure messages.
    pub seen: Vec<String>,
}

impl Terminal {
    /// `switchboard join NAME --url BASE`, with extra environment (a token).
    pub async fn join(base: &str, name: &str, env: &[(&str, &str)]) -> Result<Terminal> {
        let mut child = Command::new(crate::binary())
            .args(["join", name, "--url", base])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawn switchboard join")?;
        let (tx, lines) = mpsc::unbounded_channel();
        for output in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(output).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Terminal {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Types a line.
    pub async fn say(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Waits for a printed line containing `needle` and returns it.
    pub async fn expect(&mut self, needle: &str) -> Result<String> {
        let found = timeout(WAIT, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return Ok(line);
                }
            }
            bail!("join exited")
        })
        .await;
        match found {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => {
                Err(e).with_context(|| format!("no line with {needle:?} in {:#?}", self.seen))
            }
            Err(_) => bail!("no line with {needle:?} in time; printed: {:#?}", self.seen),
        }
    }

    /// Closes stdin (end of input) and waits for the exit status.
    pub async fn close(mut self) -> Result<std::process::ExitStatus> {
        self.stdin.take();
        Ok(timeout(WAIT, self.child.wait())
            .await
            .context("join did not exit")??)
    }

    /// Waits for the process to exit (after `/quit`).
    pub async fn wait(mut self) -> Result<std::process::ExitStatus> {
        Ok(timeout(WAIT, self.child.wait())
            .await
            .context("join did not exit")??)
    }
}

/// Runs the binary to completion with `args` and extra environment.
pub async fn run(args: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    let output = Command::new(crate::binary())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    Ok(timeout(WAIT, output)
        .await
        .context("the command did not finish in time")??)
}
