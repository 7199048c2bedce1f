//! Building filter crates at startup, so a fresh clone serves with its filters
//! without a manual step: for each chain entry with a `source` crate whose
//! component is missing or older than any file under the crate, run
//! `cargo build --release --target wasm32-wasip2` into `<plugins>/target`,
//! where the bundled chain file points and where `cargo plugins` builds too.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::SystemTime,
};

use super::config::FilterSpec;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "filter {filter:?} has no component at {component} and its source folder {source_dir} does not exist; fix `component` and `source` in the chain file (they are relative to it)"
    )]
    Missing {
        filter: String,
        component: PathBuf,
        source_dir: PathBuf,
    },
    #[error(
        "cannot run cargo to build filter {filter:?} ({source}); install Rust from https://rustup.rs or build the component yourself and pass --no-build"
    )]
    Spawn {
        filter: String,
        source: std::io::Error,
    },
    #[error(
        "building filter {filter:?} from {dir} failed (cargo's output is above); fix the crate or pass --no-build to use the existing component"
    )]
    Failed { filter: String, dir: PathBuf },
    #[error(
        "building filter {filter:?} finished but {component} is not there; make `component` in chain.toml name the .wasm the crate produces"
    )]
    NoOutput { filter: String, component: PathBuf },
}

/// Builds every stale source crate named in `specs`, one at a time (they
/// share a target dir, so later builds reuse the first one's dependencies).
pub fn build_stale(chain_dir: &Path, specs: &[FilterSpec]) -> Result<(), BuildError> {
    let target_dir = chain_dir.join("target");
    for spec in specs {
        let Some(source) = &spec.source else { continue };
        if !is_stale(source, &spec.component) {
            continue;
        }
        // Otherwise cargo's spawn fails in a folder that is not there, which
        // reads as if cargo were missing.
        if !source.is_dir() {
            return Err(BuildError::Missing {
                filter: spec.name.clone(),
                component: spec.component.clone(),
                source_dir: source.clone(),
            });
        }
        tracing::info!(
            plugin = %spec.name,
            source = %source.display(),
            "building filter from source (cargo build --release --target wasm32-wasip2); the first build can take a few minutes"
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // Running in the crate's folder lets rustup honour its toolchain file.
        let status = Command::new(cargo)
            .current_dir(source)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target_dir)
            .arg("--manifest-path")
            .arg(source.join("Cargo.toml"))
            // stdout carries the server's (possibly JSON) log; cargo reports on stderr.
            .stdout(Stdio::null())
            .status()
            .map_err(|source| BuildError::Spawn {
                filter: spec.name.clone(),
                source,
            })?;
        if !status.success() {
            return Err(BuildError::Failed {
                filter: spec.name.clone(),
                dir: source.clone(),
            });
        }
        if !spec.component.is_file() {
            return Err(BuildError::NoOutput {
                filter: spec.name.clone(),
                component: spec.component.clone(),
            });
        }
        tracing::info!(plugin = %spec.name, component = %spec.component.display(), "filter built");
    }
    Ok(())
}

/// Missing, or older than some file of its crate (build output excluded).
fn is_stale(source: &Path, component: &Path) -> bool {
    let Some(built) = modified(component) else {
        return true;
    };
    newest_under(source).is_some_and(|newest| newest > built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn newest_under(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if let Some(time) = modified(&entry.path()) {
                newest = newest.max(Some(time));
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn touch(path: &Path, time: SystemTime) {
        std::fs::write(path, "x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    #[test]
    fn a_missing_source_folder_is_named_not_blamed_on_cargo() {
        let dir = tempfile::tempdir().unwrap();
        let spec = FilterSpec {
            source: Some(dir.path().join("no-such-crate")),
            ..crate::chain::config::parse(
                &dir.path().join("chain.toml"),
                "[[filter]]\nname = \"f\"\ncomponent = \"f.wasm\"\n",
            )
            .unwrap()
            .remove(0)
        };
        let error = build_stale(dir.path(), &[spec]).unwrap_err().to_string();
        assert!(error.contains("no-such-crate does not exist"), "{error}");
    }

    #[test]
    fn stale_when_missing_or_older_than_a_source_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("crate");
        std::fs::create_dir_all(source.join("src")).unwrap();
        std::fs::create_dir_all(source.join("target")).unwrap();
        let component = dir.path().join("out.wasm");
        let t0 = SystemTime::now() - Duration::from_secs(100);
        touch(&source.join("src/lib.rs"), t0);
        assert!(is_stale(&source, &component));
        touch(&component, t0 + Duration::from_secs(10));
        assert!(!is_stale(&source, &component));
        // Build output inside the crate does not count as a source change.
        touch(&source.join("target/x"), t0 + Duration::from_secs(20));
        assert!(!is_stale(&source, &component));
        touch(&source.join("src/lib.rs"), t0 + Duration::from_secs(30));
        assert!(is_stale(&source, &component));
    }
}
