//! Hot reload: watches the chain file and the components it names, debounces
//! bursts (an editor's save, cargo replacing a .wasm), then rebuilds the chain
//! on a blocking thread and swaps it in. A chain that fails to build is logged
//! on one line and the active chain keeps serving.
//!
//! Watches are per folder and non-recursive: a recursive watch on the plugins
//! folder would cover `target/`, thousands of folders cargo churns through.
//! Only writes, creations, renames and removals of the named files count; the
//! loader's own reads show up as access events and are ignored, or every
//! reload would trigger the next.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{
    EventKind, RecursiveMode, Watcher as _,
    event::{AccessKind, AccessMode, ModifyKind},
};
use tokio::sync::mpsc;

use super::{ChainError, Inner, config};

/// Quiet time after the last change before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Stops watching when dropped.
pub struct Watcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The files whose change means a reload, and the folders holding them.
#[derive(Default, PartialEq)]
struct Targets {
    files: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
}

impl Targets {
    /// The chain file plus the components it names now; if it does not parse,
    /// the components of the active chain.
    fn of(inner: &Inner) -> Self {
        let mut files = HashSet::from([inner.chain_file.clone()]);
        match config::load(&inner.chain_file) {
            Ok(specs) => files.extend(specs.into_iter().map(|spec| spec.component)),
            Err(_) => files.extend(
                inner
                    .active
                    .load()
                    .filters
                    .iter()
                    .map(|f| f.spec.component.clone()),
            ),
        }
        let dirs = files
            .iter()
            .filter_map(|file| file.parent())
            .filter(|dir| dir.is_dir())
            .map(Path::to_owned)
            .collect();
        Self { files, dirs }
    }

    fn wants(&self, event: &notify::Event) -> bool {
        let kind = matches!(
            event.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
                | EventKind::Access(AccessKind::Close(AccessMode::Write))
        );
        kind && event.paths.iter().any(|path| self.files.contains(path))
    }
}

impl Watcher {
    pub(super) fn spawn(inner: Arc<Inner>) -> Result<Self, ChainError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event| {
            // The receiver only goes away when the stage is dropped.
            let _ = tx.send(event);
        })
        .map_err(|error| ChainError::Watch {
            path: inner.chain_file.clone(),
            cause: error.to_string(),
        })?;
        let mut watched = Watched {
            watcher,
            targets: Targets::default(),
        };
        watched.update(Targets::of(&inner))?;
        Ok(Self {
            task: tokio::spawn(watch(inner, watched, rx)),
        })
    }
}

struct Watched {
    watcher: notify::RecommendedWatcher,
    targets: Targets,
}

impl Watched {
    /// Moves the folder watches to `targets`.
    fn update(&mut self, targets: Targets) -> Result<(), ChainError> {
        for gone in self.targets.dirs.difference(&targets.dirs) {
            // The folder may have been deleted; its watch went with it.
            let _ = self.watcher.unwatch(gone);
        }
        for new in targets.dirs.difference(&self.targets.dirs) {
            self.watcher
                .watch(new, RecursiveMode::NonRecursive)
                .map_err(|error| ChainError::Watch {
                    path: new.clone(),
                    cause: error.to_string(),
                })?;
        }
        self.targets = targets;
        Ok(())
    }
}

async fn watch(
    inner: Arc<Inner>,
    mut watched: Watched,
    mut events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
) {
    loop {
        // Wait for a change that matters, then for the burst to settle.
        loop {
            match events.recv().await {
                None => return,
                Some(Ok(event)) if watched.targets.wants(&event) => break,
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "watching the plugins folder"),
            }
        }
        let mut quiet_until = tokio::time::Instant::now() + DEBOUNCE;
        loop {
            match tokio::time::timeout_at(quiet_until, events.recv()).await {
                Err(_) => break,
                Ok(None) => return,
                Ok(Some(Ok(event))) if watched.targets.wants(&event) => {
                    quiet_until = tokio::time::Instant::now() + DEBOUNCE;
                }
                Ok(Some(_)) => {}
            }
        }
        let reloading = inner.clone();
        let outcome = tokio::task::spawn_blocking(move || reloading.reload()).await;
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(
                chain = %inner.chain_file.display(),
                "filter chain refused, the previous one keeps serving: {error}"
            ),
            Err(error) => tracing::error!(%error, "filter chain reload panicked"),
        }
        let targets = Targets::of(&inner);
        if targets != watched.targets
            && let Err(error) = watched.update(targets)
        {
            tracing::error!("{error}");
        }
    }
}
