//! Loading a filter component from disk: refuses what is not a component for
//! this server's `filter` world and version, compiles each distinct file once
//! (keyed by the sha256 of its bytes, so a reload that leaves a component
//! untouched costs no compile), and pre-links it against the host's imports.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Mutex,
};

use sha2::{Digest, Sha256};
use wasmtime::{
    Engine,
    component::{Component, Linker, types::ComponentItem},
};

use super::instance::{FilterPre, HostState};

/// The WIT package every filter is built against; imports from it must be 0.1.x.
const PACKAGE: &str = "switchboard:filter/";
const SUPPORTED: &str = "0.1";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "component {path} cannot be read ({source}); build it (cargo plugins) or fix `component` in chain.toml"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is a core WebAssembly module, not a component; build the filter with --target wasm32-wasip2"
    )]
    CoreModule { path: PathBuf },
    #[error(
        "{path} is not a WebAssembly component ({cause}); point `component` at the .wasm that cargo build --target wasm32-wasip2 produced"
    )]
    NotAComponent { path: PathBuf, cause: String },
    #[error(
        "{path} was built against switchboard:filter@{found}; this server supports {SUPPORTED}, so rebuild it with a matching plugin-sdk"
    )]
    WrongVersion { path: PathBuf, found: String },
    #[error(
        "{path} imports {import}, which a Switchboard filter cannot use; it was built for another world, so rebuild it with plugin-sdk"
    )]
    UnknownImport { path: PathBuf, import: String },
    #[error(
        "{path} is not a Switchboard filter ({cause}); it was built for another world, so rebuild it with plugin-sdk"
    )]
    WrongWorld { path: PathBuf, cause: String },
}

type Hash = [u8; 32];

/// Compiled components by content hash.
#[derive(Default)]
pub struct ComponentCache {
    compiled: Mutex<HashMap<Hash, Component>>,
}

impl ComponentCache {
    /// Reads, checks, compiles (or reuses) and pre-links the component at `path`.
    pub fn load(
        &self,
        engine: &Engine,
        linker: &Linker<HostState>,
        path: &Path,
    ) -> Result<(Hash, FilterPre), LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        let hash: Hash = Sha256::digest(&bytes).into();
        let cached = self.lock().get(&hash).cloned();
        let component = match cached {
            Some(component) => component,
            None => {
                let component = compile(engine, path, &bytes)?;
                self.lock().insert(hash, component.clone());
                component
            }
        };
        check_world(engine, path, &component)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(FilterPre::new)
            .map_err(|error| LoadError::WrongWorld {
                path: path.to_owned(),
                cause: one_line(&error),
            })?;
        Ok((hash, pre))
    }

    /// Forgets compiled components no chain uses any more, so replaced
    /// versions do not pile up across reloads.
    pub fn retain(&self, in_use: &HashSet<Hash>) {
        self.lock().retain(|hash, _| in_use.contains(hash));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Component>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn compile(engine: &Engine, path: &Path, bytes: &[u8]) -> Result<Component, LoadError> {
    // A core module's preamble: magic, then version 1 (components use 0x0d,
    // layer 1). Naming it beats the parser's generic complaint.
    if bytes.starts_with(b"\0asm\x01\0\0\0") {
        return Err(LoadError::CoreModule {
            path: path.to_owned(),
        });
    }
    Component::new(engine, bytes).map_err(|error| LoadError::NotAComponent {
        path: path.to_owned(),
        cause: one_line(&error),
    })
}

/// Refuses imports from another version of our package or from outside WASI,
/// with a message that says which, before the linker's generic error would.
fn check_world(engine: &Engine, path: &Path, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if let Some(rest) = name.strip_prefix(PACKAGE) {
            let version = rest.split_once('@').map_or("", |(_, version)| version);
            if !supported(version) {
                return Err(LoadError::WrongVersion {
                    path: path.to_owned(),
                    found: if version.is_empty() {
                        "(unversioned)".into()
                    } else {
                        version.to_owned()
                    },
                });
            }
        } else if !name.starts_with("wasi:") {
            return Err(LoadError::UnknownImport {
                path: path.to_owned(),
                import: name.to_owned(),
            });
        }
    }
    let exports_filter = ty
        .exports(engine)
        .any(|(name, item)| name == "filter" && matches!(item.ty, ComponentItem::ComponentFunc(_)));
    if !exports_filter {
        return Err(LoadError::WrongWorld {
            path: path.to_owned(),
            cause: "it does not export a `filter` function".into(),
        });
    }
    Ok(())
}

/// 0.1.x: the versions whose WIT this server was built from.
fn supported(version: &str) -> bool {
    let mut parts = version.split('.');
    parts.next() == Some("0") && parts.next() == Some("1")
}

/// Wasmtime errors carry a chain of causes; logs and replies want one line.
pub fn one_line(error: &wasmtime::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        if !text.is_empty() {
            text.push_str(": ");
        }
        // Parser errors append a source excerpt on later lines; keep the gist.
        text.push_str(cause.to_string().lines().next().unwrap_or_default());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_0_1_is_supported() {
        for good in ["0.1.0", "0.1.7", "0.1"] {
            assert!(supported(good), "{good}");
        }
        for bad in ["", "1.0.0", "0.2.0", "0.10.0", "x"] {
            assert!(!supported(bad), "{bad}");
        }
    }
}
