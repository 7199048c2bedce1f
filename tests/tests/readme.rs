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

/// An nginx master; stopped with SIGTERM, which takes its workers along
/// (SIGKILL would leave them running).
struct Nginx(tokio::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

/// The README's `nginx` block.
fn nginx_block(readme: &str) -> Result<&str> {
    readme
        .split("```nginx\n")
        .nth(1)
        .and_then(|rest| rest.split_once("```"))
        .map(|(body, _)| body)
        .context("no nginx block in the README")
}

/// "Running several replicas": the three replicas as printed (with this
/// test's own Redis, ports and state folders) behind the nginx configuration
/// as printed; two agents that land on different replicas through it talk
/// to each other.
#[tokio::test]
async fn the_replicas_behind_the_nginx_example_work_as_printed() -> Result<()> {
    if tests::skipped("nginx") {
        return Ok(());
    }
    let readme = readme()?;
    let redis = tests::redis::Redis::start().await?;
    let commands = block(
        &readme,
        "cargo run -p server -- --plugins ./plugins --port 3001",
    )?;
    ensure!(commands.len() == 3, "{commands:?}");
    let dir = tempfile::tempdir()?;
    let mut replicas = Vec::new();
    for step in &commands {
        let (_, args) = step
            .command
            .split_once("cargo run -p server -- ")
            .context("a replica command")?;
        let args: Vec<&str> = args.split_whitespace().collect();
        // The test's server gets its plugins, port and state folder as
        // every test server does; the rest is passed as printed.
        let mut passed = Vec::new();
        let mut printed = args.chunks(2);
        for pair in printed.by_ref() {
            match pair {
                ["--plugins", "./plugins"] | ["--port", _] | ["--state-dir", _] => {}
                ["--redis", _] => passed.extend(["--redis", redis.url.as_str()]),
                [flag, value] => passed.extend([*flag, *value]),
                odd => bail!("an option without a value in {}: {odd:?}", step.command),
            }
        }
        let state = dir.path().join(format!("state{}", replicas.len() + 1));
        std::fs::create_dir(&state)?;
        replicas.push(Server::start_in(&state, 0, &passed).await?);
    }

    let front = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut site =
        nginx_block(&readme)?.replace("listen 3000;", &format!("listen 127.0.0.1:{front};"));
    for (i, replica) in replicas.iter().enumerate() {
        site = site.replace(
            &format!("127.0.0.1:{}", 3001 + i),
            &format!("127.0.0.1:{}", replica.port),
        );
    }
    let root = dir.path().display();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/nginx-error.log;\n\
             events {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {root}/body;\n\
             proxy_temp_path {root}/proxy;\n{site}}}\n"
        ),
    )?;
    let _nginx = Nginx(
        tokio::process::Command::new("nginx")
            .args(["-p", &root.to_string(), "-c", "nginx.conf", "-g", "daemon off;"])
            .spawn()
            .context("the load-balancer example needs nginx: install it (apt-get install nginx-light), or set SWITCHBOARD_SKIP=nginx to leave this test out")?,
    );
    tokio::time::timeout(tests::WAIT, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", front))
            .await
            .is_err()
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .with_context(|| {
        let log = std::fs::read_to_string(dir.path().join("nginx-error.log")).unwrap_or_default();
        format!("nginx did not listen on {front}: {log}")
    })?;

    let url = format!("http://127.0.0.1:{front}/mcp");
    let coder = Agent::connect_with(&url, &[("X-Agent-Name", "coder")]).await?;
    let mut planner = Agent::connect_with(&url, &[("X-Agent-Name", "planner")]).await?;
    let replica = |agent: &Agent| agent.session.id.split('.').next().map(str::to_owned);
    ensure!(
        replica(&coder) != replica(&planner),
        "nginx sent both initializes to one replica ({:?}): the test proves nothing",
        replica(&coder)
    );
    let sent = coder.send("planner", "hello across replicas").await?;
    ensure!(!sent.is_error, "{}", sent.text);
    assert_eq!(planner.next_contents(1).await?, ["hello across replicas"]);
    Ok(())
}
