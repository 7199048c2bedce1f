//! Packaging basics on the real binary: `--version` names the commit,
//! `completions` prints scripts the shells accept, and the systemd unit in
//! docs/ passes `systemd-analyze verify` where systemd is installed.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use tests::{binary, repo_root};

fn output(command: &mut Command) -> Result<String> {
    let output = command.output()?;
    ensure!(
        output.status.success(),
        "{:?}: {}\n{}",
        command,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn version_names_the_commit() -> Result<()> {
    let version = output(Command::new(binary()).arg("--version"))?;
    let head = Command::new("git")
        .current_dir(repo_root())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output();
    match head {
        Ok(head) if head.status.success() => {
            let commit = String::from_utf8(head.stdout)?;
            ensure!(
                version.trim() == format!("switchboard 0.1.0 ({})", commit.trim()),
                "{version}"
            );
        }
        // Built outside a git checkout: the plain version.
        _ => ensure!(version.trim() == "switchboard 0.1.0", "{version}"),
    }
    Ok(())
}

#[test]
fn completions_cover_the_subcommands() -> Result<()> {
    for shell in ["bash", "zsh", "fish"] {
        let script = output(Command::new(binary()).args(["completions", shell]))?;
        for word in ["join", "send", "agents", "new-filter", "plugins"] {
            ensure!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    // bash parses its script (bash is on every CI image).
    let script = output(Command::new(binary()).args(["completions", "bash"]))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("switchboard.bash");
    std::fs::write(&file, script)?;
    output(Command::new("bash").arg("-n").arg(&file))?;
    let refused = Command::new(binary())
        .args(["completions", "tcsh"])
        .output()?;
    ensure!(refused.status.code() == Some(2));
    Ok(())
}

#[test]
fn the_systemd_unit_verifies() -> Result<()> {
    let unit = std::fs::read_to_string(repo_root().join("docs/switchboard.service"))?;
    ensure!(
        unit.contains("ExecStart=/usr/local/bin/switchboard "),
        "{unit}"
    );
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "systemd-analyze is not installed (Debian: apt-get install systemd); skipping verify"
        );
        return Ok(());
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("switchboard.service");
    let bin = binary().to_str().context("binary path")?;
    std::fs::write(&file, unit.replace("/usr/local/bin/switchboard", bin))?;
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    ensure!(verified.status.success(), "systemd-analyze verify: {said}");
    // verify exits 0 on some warnings; none of ours may be about the unit.
    ensure!(!said.contains("switchboard.service:"), "{said}");
    Ok(())
}
