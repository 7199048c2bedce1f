//! The README's command examples, run as printed against the real binary. In
//! a command block, the `# …` lines after a command (or a `# prints: …`
//! comment on its line) are what it prints (`…` stands for anything, a
//! trailing `(HTTP 202)` is a remark, a `#` line indented further continues
//! the line before it, wrapped for reading); the test reads them from the README
//! itself, so an example that drifts from the code fails here.
//! `cargo run -q -p server --` runs as `switchboard`, which the README says
//! it stands for.

use anyhow::{Context, Result, bail, ensure};
use tests::{Agent, Server, terminal::Terminal};

/// A command and the lines it is documented to print.
#[derive(Debug)]
struct Step {
    command: String,
    printed: Vec<String>,
}

fn readme() -> Result<String> {
    Ok(std::fs::read_to_string(
        tests::repo_root().join("README.md"),
    )?)
}

/// The `sh` block whose first command starts with `first`.
fn block(readme: &str, first: &str) -> Result<Vec<Step>> {
    let body = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(body, _)| body))
        .find(|body| body.starts_with(first))
        .with_context(|| format!("no sh block starting with {first:?} in the README"))?;
    let mut steps: Vec<Step> = Vec::new();
    let mut continued = false;
    for line in body.lines() {
        if let Some(printed) = line.strip_prefix("# ") {
            let lines = &mut steps
                .last_mut()
                .context("a `#` line before any command")?
                .printed;
            match (printed.strip_prefix("  "), lines.last_mut()) {
                (Some(wrapped), Some(last)) => last.push_str(wrapped.trim_start()),
                _ => lines.push(printed.to_owned()),
            }
        } else if continued {
            let step = steps
                .last_mut()
                .context("a continuation without a command")?;
            step.command.push('\n');
            step.command.push_str(line);
        } else {
            let (command, printed) = match line.split_once("# prints: ") {
                Some((command, printed)) => (command.trim_end(), vec![printed.to_owned()]),
                None => (line, Vec::new()),
            };
            steps.push(Step {
                command: command.to_owned(),
                printed,
            });
        }
        continued = line.ends_with('\\');
    }
    Ok(steps)
}

/// Whether `line` is what `expected` documents: `…` matches anything, and a
/// remark in parentheses after two or more spaces is not printed.
fn matches(expected: &str, line: &str) -> bool {
    let expected = match expected.split_once("  ") {
        Some((printed, remark)) if remark.trim_start().starts_with('(') => printed,
        _ => expected,
    };
    let mut parts = expected.split('…');
    let Some(head) = parts.next() else {
        return true;
    };
    let Some(mut rest) = line.strip_prefix(head) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Runs each step with `bash` in `dir` the way a reader would, `switchboard`
/// on the PATH and `localhost:3000` meaning the test's server, with extra
/// environment, and checks that its output holds the documented lines in
/// order.
async fn run(
    steps: &[Step],
    server: Option<&Server>,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> Result<()> {
    let bin_dir = tests::binary().parent().context("binary folder")?;
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for step in steps {
        let mut command = step
            .command
            .replace("cargo run -q -p server -- ", "switchboard ");
        let mut bash = tokio::process::Command::new("bash");
        if let Some(server) = server {
            command = command.replace("localhost:3000", &format!("127.0.0.1:{}", server.port));
            bash.env("SWITCHBOARD_URL", server.base());
        }
        bash.args(["-euo", "pipefail", "-c", &command])
            .current_dir(dir)
            .env("PATH", &path)
            .envs(env.iter().copied())
            .kill_on_drop(true);
        let output = tokio::time::timeout(tests::WAIT, bash.output())
            .await
            .with_context(|| format!("{command} did not finish"))??;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ensure!(
            output.status.success(),
            "{command}: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = stdout.lines();
        for expected in &step.printed {
            if !lines.any(|line| matches(expected, line)) {
                bail!("{command}\nprinted:\n{stdout}\nnot as the README says: {expected}");
            }
        }
    }
    Ok(())
}

#[test]
fn documented_output_matches_with_ellipses_and_remarks() {
    assert!(matches(
        r#"{"id":"…","delivered_to":"planner","rewritten_by":[]}      (HTTP 202)"#,
        r#"{"id":"19ad-1","delivered_to":"planner","rewritten_by":[]}"#
    ));
    assert!(matches("planner", "planner"));
    assert!(!matches("planner", "planners"));
    assert!(!matches(r#"{"id":"…","x":1}"#, r#"{"id":"a","x":2}"#));
}

#[tokio::test]
async fn the_trigger_examples_work_as_printed() -> Result<()> {
    let readme = readme()?;
    let server = Server::start(&[]).await?;
    // The room the README describes: coder online, then a person joins.
    let _coder = Agent::connect_with(&server.url(), &[("X-Agent-Name", "coder")]).await?;
    let join = block(&readme, "switchboard join planner")?;
    ensure!(join.len() == 1, "{join:?}");
    let mut planner = Terminal::join(&server.base(), "planner", &[]).await?;
    for printed in &join[0].printed {
        planner.expect(printed).await?;
    }

    let root = tests::repo_root();
    let send = block(&readme, "switchboard send --to planner")?;
    run(&send, Some(&server), &root, &[]).await?;
    let arrived =
        "webhook: CI: build 1234 failed on main  [kind=webhook, severity=info, build=1234]";
    ensure!(
        readme.contains(&format!("`{arrived}`")),
        "the README no longer shows what planner's terminal prints"
    );
    planner.expect(arrived).await?;

    let curl = block(&readme, "curl -s localhost:3000/v1/messages")?;
    run(&curl, Some(&server), &root, &[]).await?;
    planner.expect(arrived).await?;
    Ok(())
}

#[tokio::test]
async fn the_permission_relay_example_works_as_printed() -> Result<()> {
    let mut server = Server::bare(&["--permission-relay"]).await?;
    let mut coder = Agent::connect_with(&server.url(), &[("X-Agent-Name", "coder")]).await?;
    // What Claude Code sends when it would ask its user.
    coder
        .session
        .notify_with(
            "notifications/claude/channel/permission_request",
            Some(serde_json::json!({
                "request_id": "jtfqa",
                "tool_name": "Bash",
                "description": "print a marker",
                "input_preview": "{\"command\": \"touch marker\"}",
            })),
        )
        .await?;
    server.wait_log("permission requested").await?;
    let steps = block(&readme()?, "curl -s localhost:3000/v1/permissions")?;
    ensure!(steps.len() == 2 && steps[0].printed.len() == 1, "{steps:?}");
    run(&steps, Some(&server), &tests::repo_root(), &[]).await?;
    assert_eq!(
        coder.next_message().await?,
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/claude/channel/permission",
                           "params": {"request_id": "jtfqa", "behavior": "allow"}})
    );
    Ok(())
}

#[tokio::test]
async fn the_token_hash_example_prints_a_hash() -> Result<()> {
    let steps = block(
        &readme()?,
        "echo \"$PLANNER_TOKEN\" | cargo run -q -p server -- hash-token",
    )?;
    ensure!(steps[0].printed == ["sha256 = \"…\""], "{steps:?}");
    let root = tests::repo_root();
    run(&steps, None, &root, &[("PLANNER_TOKEN", "planner-secret")]).await
}

/// "Testing a policy": a reader's own `my-chain.toml` next to the repository's
/// `plugins/`, tried on the bundled corpus.
#[tokio::test]
async fn the_policy_check_example_runs_on_a_chain_of_ones_own() -> Result<()> {
    tokio::task::spawn_blocking(tests::ensure_plugins_built).await?;
    let steps = block(&readme()?, "cargo run -q -p server -- check")?;
    let root = tests::repo_root();
    let dir = tempfile::tempdir()?;
    std::os::unix::fs::symlink(root.join("plugins"), dir.path().join("plugins"))?;
    std::fs::write(
        dir.path().join("my-chain.toml"),
        std::fs::read_to_string(root.join("plugins/chain.toml"))?
            .replace("component = \"", "component = \"plugins/"),
    )?;
    run(&steps, None, dir.path(), &[]).await
}
