//! `switchboard new-filter NAME`: a new filter crate in the plugins folder,
//! ready to test and build (a full Cargo.toml, a filter that compiles, a
//! harness test that asserts), added to the workspace members so `cargo
//! plugins` and `cargo test` pick it up.

use std::path::{Component, Path, PathBuf};

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct NewFilterArgs {
    /// The crate and filter name: lowercase letters, digits and '-', starting with a letter.
    pub name: String,

    /// The plugins folder of a Switchboard checkout; the crate goes in `<plugins>/NAME`.
    #[arg(long, default_value = "./plugins")]
    pub plugins: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "{0:?} is not a usable filter name: use 1-40 characters from a-z, 0-9 and '-', starting with a letter"
    )]
    Name(String),
    #[error("{0} already exists; pick another name or remove it")]
    Exists(PathBuf),
    #[error(
        "no Switchboard workspace (a Cargo.toml with [workspace] next to plugin-sdk/) holds {0}; run this from a checkout or pass --plugins with its plugins folder"
    )]
    NoWorkspace(PathBuf),
    #[error("cannot find `members = [` in {0}; add \"{1}\" to the workspace members by hand")]
    Members(PathBuf, String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was created, for the next steps the command prints.
pub struct Created {
    pub dir: PathBuf,
    /// The member line added to the workspace (`plugins/NAME`).
    pub member: String,
    pub wasm_file: String,
}

fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `no-shouting` -> `NoShouting`.
fn type_name(name: &str) -> String {
    name.split('-')
        .flat_map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
        })
        .collect()
}

/// The folder holding a `Cargo.toml` with `[workspace]` and `plugin-sdk/`.
fn workspace_root(plugins: &Path) -> Option<PathBuf> {
    let start = plugins.canonicalize().ok()?;
    start
        .ancestors()
        .find(|dir| {
            dir.join("plugin-sdk/Cargo.toml").is_file()
                && std::fs::read_to_string(dir.join("Cargo.toml"))
                    .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_owned)
}

/// `to` relative to `from` (both absolute, `from` below their common root).
fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..".to_owned(), from.len() - common);
    let downs = to[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).collect::<Vec<_>>().join("/")
}

/// Adds `member` to the `members = [ … ]` array of a workspace manifest,
/// keeping its layout; `None` when the array is not there.
fn add_member(manifest: &str, member: &str) -> Option<String> {
    let start = manifest.find("members = [")?;
    let close = start + manifest[start..].find(']')?;
    let quoted = format!("\"{member}\"");
    if manifest[start..close].contains(&quoted) {
        return Some(manifest.to_owned());
    }
    // One entry per line, as the manifest has them.
    // The start of the line holding `]`, when the array spans lines.
    let line_start = manifest[start..close]
        .rfind('\n')
        .map(|i| start + i + 1)
        .filter(|&i| manifest[i..close].trim().is_empty());
    let mut text = manifest.to_owned();
    if let Some(line_start) = line_start {
        text.insert_str(line_start, &format!("    {quoted},\n"));
        // The entry before may lack its trailing comma.
        let last = manifest[start..line_start].trim_end();
        if !last.ends_with(',') && !last.ends_with('[') {
            text.insert(start + last.len(), ',');
        }
    } else {
        let before = manifest[start..close].trim_end();
        let comma = if before.ends_with(',') || before.ends_with('[') {
            ""
        } else {
            ", "
        };
        text.insert_str(close, &format!("{comma}{quoted}"));
    }
    Some(text)
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    std::fs::write(path, text).map_err(|source| ScaffoldError::Write {
        path: path.to_owned(),
        source,
    })
}

pub fn run(args: &NewFilterArgs) -> Result<Created, ScaffoldError> {
    let name = &args.name;
    if !valid_name(name) {
        return Err(ScaffoldError::Name(name.clone()));
    }
    let root = workspace_root(&args.plugins)
        .ok_or_else(|| ScaffoldError::NoWorkspace(args.plugins.clone()))?;
    let plugins = args
        .plugins
        .canonicalize()
        .unwrap_or_else(|_| args.plugins.clone());
    let dir = plugins.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let member = relative(&root, &dir);
    let manifest_path = root.join("Cargo.toml");
    let manifest =
        std::fs::read_to_string(&manifest_path).map_err(|source| ScaffoldError::Write {
            path: manifest_path.clone(),
            source,
        })?;
    let updated = add_member(&manifest, &member)
        .ok_or_else(|| ScaffoldError::Members(manifest_path.clone(), member.clone()))?;

    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|source| ScaffoldError::Write {
        path: src.clone(),
        source,
    })?;
    let sdk = relative(&dir, &root.join("plugin-sdk"));
    write(&dir.join("Cargo.toml"), &cargo_toml(name, &sdk))?;
    write(&src.join("lib.rs"), &lib_rs(name, &type_name(name)))?;
    write(&manifest_path, &updated)?;
    Ok(Created {
        dir,
        member,
        wasm_file: format!("{}.wasm", name.replace('-', "_")),
    })
}

/// What to do next, printed after the crate is created.
pub fn next_steps(name: &str, created: &Created) -> String {
    format!(
        "created {dir} and added \"{member}\" to the workspace members.\n\
         \n\
         Next, from the repository root:\n\
         \x20 cargo test -p {name}     # the harness tests in src/lib.rs\n\
         \x20 cargo plugins            # builds every filter into plugins/target\n\
         \n\
         Then add it to plugins/chain.toml; the server loads it without a restart:\n\
         \n\
         [[filter]]\n\
         name = \"{name}\"\n\
         source = \"{name}\"\n\
         component = \"target/wasm32-wasip2/release/{wasm}\"\n\
         on_error = \"reject\"\n\
         [filter.config]\n\
         blocked_words = [\"deploy to prod\"]",
        dir = created.dir.display(),
        member = created.member,
        wasm = created.wasm_file,
    )
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib is the WebAssembly component the server loads; rlib lets
# `cargo test` link the crate natively against the SDK's mock host.
crate-type = ["cdylib", "rlib"]

[dependencies]
plugin-sdk = {{ path = "{sdk}" }}
"#
    )
}

fn lib_rs(name: &str, ty: &str) -> String {
    TEMPLATE.replace("{name}", name).replace("{Type}", ty)
}

const TEMPLATE: &str = r####"//! {name}: a Switchboard message filter. It rejects messages containing any
//! of the phrases in its `blocked_words` config (ignoring case); change
//! `filter` to make it do what you need.

use plugin_sdk::{Config, ConfigError, Filter, Message, Verdict, export_filter};

/// The config keys this filter knows. Any other key is refused, so a typo in
/// chain.toml is reported at load time instead of silently ignored.
const KEYS: &[&str] = &["blocked_words"];

pub struct {Type} {
    /// Lower-cased, so matching ignores case.
    blocked_words: Vec<String>,
}

impl Filter for {Type} {
    fn new(config: &Config) -> Result<Self, ConfigError> {
        config.check_keys(KEYS)?;
        let blocked_words: Vec<String> = config.get_or("blocked_words", Vec::new())?;
        if blocked_words.iter().any(|word| word.trim().is_empty()) {
            return Err(ConfigError::invalid(
                "blocked_words",
                "an entry is empty, which would block every message",
            ));
        }
        Ok(Self {
            blocked_words: blocked_words.iter().map(|w| w.to_lowercase()).collect(),
        })
    }

    fn filter(&mut self, msg: &Message) -> Verdict {
        let content = msg.content.to_lowercase();
        match self.blocked_words.iter().find(|w| content.contains(w.as_str())) {
            Some(word) => Verdict::reject(format!("the message contains the blocked phrase {word:?}")),
            None => Verdict::Accept,
        }
    }
}

export_filter!({Type});

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::testing::Harness;

    #[test]
    fn rejects_blocked_phrases_in_any_case() {
        let mut h = Harness::<{Type}>::new(r#"{"blocked_words": ["deploy to prod"]}"#);
        assert_eq!(
            h.filter_text("OK to Deploy to PROD now?").reason(),
            Some("the message contains the blocked phrase \"deploy to prod\"")
        );
        assert!(h.filter_text("deploy to staging").is_accept());
    }

    #[test]
    fn refuses_a_config_it_does_not_understand() {
        let err = Harness::<{Type}>::try_new(r#"{"blocked_word": ["x"]}"#).err().unwrap();
        assert!(err.to_string().starts_with("unknown config key `blocked_word`"), "{err}");
        let err = Harness::<{Type}>::try_new(r#"{"blocked_words": [""]}"#).err().unwrap();
        assert!(err.to_string().starts_with("config key `blocked_words`"), "{err}");
    }
}
"####;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_types_and_paths() {
        assert!(valid_name("no-shouting"));
        for bad in ["", "No", "1x", "x-", "a_b", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(type_name("no-shouting-2"), "NoShouting2");
        assert_eq!(
            relative(Path::new("/r/plugins/x"), Path::new("/r/plugin-sdk")),
            "../../plugin-sdk"
        );
        assert_eq!(
            relative(Path::new("/r"), Path::new("/r/plugins/x")),
            "plugins/x"
        );
    }

    #[test]
    fn members_keep_their_layout() {
        let manifest = "[workspace]\nmembers = [\n    \"server\",\n    \"tests\",\n]\n";
        assert_eq!(
            add_member(manifest, "plugins/x").unwrap(),
            "[workspace]\nmembers = [\n    \"server\",\n    \"tests\",\n    \"plugins/x\",\n]\n"
        );
        assert_eq!(
            add_member("members = [\"a\"]\n", "b").unwrap(),
            "members = [\"a\", \"b\"]\n"
        );
        assert_eq!(
            add_member("members = [\n    \"a\"\n]\n", "b").unwrap(),
            "members = [\n    \"a\",\n    \"b\",\n]\n"
        );
        let once = add_member(manifest, "tests").unwrap();
        assert_eq!(once, manifest);
        assert!(add_member("[package]\n", "x").is_none());
    }
}
