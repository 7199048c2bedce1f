//! Puts the git commit into `switchboard --version` ("0.1.0 (3f2c9a1b7d4e)").
//! Built outside a git checkout (a source tarball), the version is plain.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            println!("cargo:rustc-env=SWITCHBOARD_VERSION={version} ({commit})");
            // Rebuild when HEAD moves: a checkout, or a commit on the branch.
            let mut watched = vec!["HEAD".to_owned()];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(branch);
            }
            watched.push("packed-refs".into());
            for name in watched {
                if let Some(path) = git(&["rev-parse", "--git-path", &name])
                    && std::path::Path::new(&path).exists()
                {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
        None => println!("cargo:rustc-env=SWITCHBOARD_VERSION={version}"),
    }
}
