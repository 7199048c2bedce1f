//! `switchboard new-filter`, end to end: in a scratch copy of the workspace
//! it creates a crate whose tests pass, which builds to a component, and
//! which the real server then runs in its chain.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, ensure};
use tests::{Agent, Server, repo_root};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The workspace's manifest, lock file, toolchain, SDK and WIT; the SDK is its only member.
fn scratch_workspace(root: &Path) -> Result<()> {
    let repo = repo_root();
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml"))?;
    let start = manifest.find("members = [").context("members")?;
    let end = start + manifest[start..].find(']').context("members end")?;
    let emptied = format!(
        "{}members = [\n    \"plugin-sdk\",\n{}",
        &manifest[..start],
        &manifest[end..]
    );
    std::fs::write(root.join("Cargo.toml"), emptied)?;
    for file in ["Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(repo.join(file), root.join(file))?;
    }
    copy_dir(&repo.join("plugin-sdk"), &root.join("plugin-sdk"))?;
    copy_dir(&repo.join("wit"), &root.join("wit"))?;
    std::fs::create_dir(root.join("plugins"))?;
    Ok(())
}

#[tokio::test]
async fn a_new_filter_tests_builds_and_runs_in_the_chain() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let root = scratch.path();
    scratch_workspace(root)?;

    let created = Command::new(tests::binary())
        .current_dir(root)
        .args(["new-filter", "e2e-blocklist"])
        .output()?;
    ensure!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let printed = String::from_utf8(created.stdout)?;
    ensure!(
        printed.contains("component = \"target/wasm32-wasip2/release/e2e_blocklist.wasm\""),
        "{printed}"
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    ensure!(
        manifest.contains("    \"plugins/e2e-blocklist\",\n"),
        "{manifest}"
    );
    let again = Command::new(tests::binary())
        .current_dir(root)
        .args(["new-filter", "e2e-blocklist"])
        .output()?;
    ensure!(!again.status.success(), "a second scaffold over the first");
    ensure!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Its generated tests pass (dependencies come from the repository's build).
    let tested = cargo()
        .current_dir(root)
        .args(["test", "--quiet", "--offline", "-p", "e2e-blocklist"])
        .arg("--target-dir")
        .arg(repo_root().join("target"))
        .output()?;
    let report = String::from_utf8_lossy(&tested.stdout);
    ensure!(
        tested.status.success() && report.contains("2 passed"),
        "{report}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );

    // It builds to a component, alongside the bundled filters' dependencies.
    tokio::task::spawn_blocking(tests::ensure_plugins_built).await?;
    let wasm_dir = repo_root().join("plugins/target");
    let built = cargo()
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "e2e-blocklist",
        ])
        .arg("--target-dir")
        .arg(&wasm_dir)
        .status()?;
    ensure!(built.success(), "building the component failed");

    // And the server runs it.
    let plugins = root.join("plugins");
    let component = wasm_dir.join("wasm32-wasip2/release/e2e_blocklist.wasm");
    std::fs::write(
        plugins.join("chain.toml"),
        format!(
            "[[filter]]\nname = \"e2e-blocklist\"\ncomponent = {:?}\n[filter.config]\nblocked_words = [\"deploy to prod\"]\n",
            component.display().to_string()
        ),
    )?;
    let state = tempfile::tempdir()?;
    let server = Server::launch(&plugins, state.path(), 0, &["--no-build"]).await?;
    let coder = Agent::connect(&server.url()).await?;
    let reviewer = Agent::connect(&server.url()).await?;
    let refused = coder.send(&reviewer.name, "ok to Deploy to prod?").await?;
    ensure!(
        refused.is_error
            && refused.text
                == "Rejected by e2e-blocklist: the message contains the blocked phrase \"deploy to prod\"",
        "{}",
        refused.text
    );
    let passed = coder.send(&reviewer.name, "deploy to staging").await?;
    ensure!(!passed.is_error, "{}", passed.text);
    Ok(())
}

#[tokio::test]
async fn new_filter_refuses_bad_names_and_places() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let bad = Command::new(tests::binary())
        .current_dir(scratch.path())
        .args(["new-filter", "Bad_Name"])
        .output()?;
    ensure!(bad.status.code() == Some(2), "{:?}", bad.status);
    ensure!(String::from_utf8_lossy(&bad.stderr).contains("is not a usable filter name"));
    std::fs::create_dir(scratch.path().join("plugins"))?;
    let nowhere = Command::new(tests::binary())
        .current_dir(scratch.path())
        .args(["new-filter", "fine-name"])
        .output()?;
    ensure!(nowhere.status.code() == Some(2), "{:?}", nowhere.status);
    ensure!(String::from_utf8_lossy(&nowhere.stderr).contains("no Switchboard workspace"));
    Ok(())
}
