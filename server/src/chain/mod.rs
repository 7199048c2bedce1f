//! The WebAssembly filter chain: the [`FilterStage`] the server runs every
//! message through. This module ties the parts together and owns the active
//! chain; the parts are the chain file ([`config`]), the engine and its epoch
//! ticker ([`engine`]), component loading ([`component`]), running one filter
//! ([`instance`]), running a chain ([`run`]), the host store ([`store`]),
//! building filter crates ([`source`]) and hot reload ([`reload`]).
//!
//! The active chain sits in an [`ArcSwap`]: a message takes an `Arc` of the
//! chain when it enters, so a reload never changes the policy under a message
//! in flight, and a reload never waits for messages.

pub mod clock;
pub mod component;
pub mod config;
pub mod engine;
pub mod instance;
pub mod reload;
pub mod run;
pub mod source;
pub mod store;

use std::{
    collections::HashSet,
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwap;
use futures::{FutureExt, future::BoxFuture};
use wasmtime::{Engine, component::Linker};

use crate::{
    filter::{Decision, FilterStage, StageInfo},
    message::{Message, clip},
    metrics::{FilterMetrics, OutcomeLabels},
};

use self::{
    clock::Clock,
    component::{ComponentCache, LoadError},
    config::ConfigError,
    engine::EpochTicker,
    instance::{FilterRuntime, HostState},
    run::{Chain, LoadedFilter, Observed, ProbeError},
    source::BuildError,
    store::{KvStore, MemoryStore},
};

/// The chain file's name inside the plugins folder.
pub const CHAIN_FILE: &str = "chain.toml";

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("filter {filter:?}: {source}")]
    Load { filter: String, source: LoadError },
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error(
        "no chain file at {0}; pass --plugins with the folder holding chain.toml (the repository's ./plugins), create the file (an empty one runs without filters), or pass --no-filters"
    )]
    Missing(PathBuf),
    #[error("cannot watch {path} for changes ({cause}); check that the folder is readable")]
    Watch { path: PathBuf, cause: String },
}

pub struct ChainOptions {
    /// Folder holding `chain.toml`; component paths are relative to it.
    pub plugins_dir: PathBuf,
    /// Build `source` crates whose component is missing or stale, at start.
    pub build: bool,
    /// Largest content a filter may rewrite a message to.
    pub max_content_bytes: usize,
    /// Another chain file than `<plugins_dir>/chain.toml`.
    pub chain_file: Option<PathBuf>,
    /// The time filters see.
    pub clock: Clock,
    /// Where the chain counts verdicts, times, faults and reloads.
    pub metrics: FilterMetrics,
}

/// Compiles, links and instantiates filters; one per server.
struct Host {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    kv: Arc<dyn KvStore>,
    clock: Clock,
    _ticker: EpochTicker,
}

impl Host {
    fn new(kv: Arc<dyn KvStore>, clock: Clock) -> Result<Self, ChainError> {
        let engine = engine::new_engine().map_err(|e| ChainError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        instance::link(&mut linker).map_err(|e| ChainError::Engine(e.to_string()))?;
        let ticker =
            EpochTicker::start(engine.clone()).map_err(|e| ChainError::Engine(e.to_string()))?;
        Ok(Self {
            engine,
            linker,
            cache: ComponentCache::default(),
            kv,
            clock,
            _ticker: ticker,
        })
    }
}

/// State shared by the stage and its watcher.
struct Inner {
    host: Host,
    chain_file: PathBuf,
    max_content_bytes: usize,
    active: ArcSwap<Chain>,
    observed: Observed,
    /// Bounds the chains running at once to [`instance::max_parallel_calls`].
    running: tokio::sync::Semaphore,
    /// Why the last reload was refused, until one succeeds.
    refusal: Mutex<Option<String>>,
}

/// The filter stage backed by `chain.toml`.
pub struct ChainStage {
    inner: Arc<Inner>,
    _watcher: Option<reload::Watcher>,
}

impl ChainStage {
    /// Loads the chain (building stale filter crates first if asked), without
    /// watching for changes. A missing chain file or a chain that fails to
    /// load is an error: running without the policy the user meant (a typo in
    /// `--plugins` included) would be worse than not running. An empty chain
    /// file is the way to ask for no filters.
    pub fn open(options: ChainOptions) -> Result<Self, ChainError> {
        Self::open_with_store(options, Arc::new(MemoryStore::default()))
    }

    pub fn open_with_store(
        options: ChainOptions,
        kv: Arc<dyn KvStore>,
    ) -> Result<Self, ChainError> {
        // Watch events name canonical paths; so must everything compared to them.
        let dir = options
            .plugins_dir
            .canonicalize()
            .unwrap_or(options.plugins_dir);
        let chain_file = match options.chain_file {
            Some(file) => file.canonicalize().unwrap_or(file),
            None => dir.join(CHAIN_FILE),
        };
        let inner = Inner {
            host: Host::new(kv, options.clock)?,
            max_content_bytes: options.max_content_bytes,
            active: ArcSwap::from_pointee(Chain {
                generation: 0,
                filters: Vec::new(),
                max_content_bytes: options.max_content_bytes,
            }),
            observed: Observed::new(options.metrics),
            running: tokio::sync::Semaphore::new(instance::max_parallel_calls()),
            refusal: Mutex::new(None),
            chain_file,
        };
        if !inner.chain_file.is_file() {
            return Err(ChainError::Missing(inner.chain_file));
        }
        if options.build {
            source::build_stale(&dir, &config::load(&inner.chain_file)?)?;
        }
        inner.reload()?;
        if inner.active.load().filters.is_empty() {
            tracing::warn!(
                chain = %inner.chain_file.display(),
                "the chain file names no filters: messages pass unfiltered"
            );
        }
        Ok(Self {
            inner: Arc::new(inner),
            _watcher: None,
        })
    }

    /// Starts hot reload: changes to the chain file or its components swap in
    /// a new chain. Needs a tokio runtime.
    pub fn watch(mut self) -> Result<Self, ChainError> {
        self._watcher = Some(reload::Watcher::spawn(self.inner.clone())?);
        Ok(self)
    }

    /// Reloads now, as the watcher does on a change; returns the active generation.
    pub fn reload(&self) -> Result<u64, ChainError> {
        self.inner.reload()
    }

    /// Runs `message` through the active chain on the calling thread, which
    /// may block up to the filters' deadlines (for `switchboard check` and
    /// benchmarks; the server awaits [`FilterStage::run`]).
    pub fn run_blocking(&self, message: Message) -> Decision {
        let chain = self.inner.active.load_full();
        futures::executor::block_on(chain.run(message, &self.inner.observed))
    }
}

impl Inner {
    /// Builds a chain from the file and swaps it in, unless it is identical to
    /// the active one. On error the active chain stays.
    fn reload(&self) -> Result<u64, ChainError> {
        let outcome = self.build_and_swap();
        let was_refused = std::mem::replace(
            &mut *self.refusal.lock().unwrap_or_else(|e| e.into_inner()),
            outcome.as_ref().err().map(ToString::to_string),
        )
        .is_some();
        let counted = match &outcome {
            Ok(Reloaded::Swapped(_)) => "loaded",
            Ok(Reloaded::Unchanged(_)) => "unchanged",
            Err(_) => "refused",
        };
        self.observed
            .metrics()
            .reloads
            .get_or_create(&OutcomeLabels { outcome: counted })
            .inc();
        match outcome? {
            Reloaded::Swapped(generation) => Ok(generation),
            Reloaded::Unchanged(generation) => {
                // The operator saw the refusal; say that fixing the file
                // (say, undoing the bad edit) changed nothing in force.
                if was_refused {
                    tracing::info!(
                        generation,
                        "filter chain file loads again; it matches the chain in force, which is unchanged"
                    );
                }
                Ok(generation)
            }
        }
    }

    fn build_and_swap(&self) -> Result<Reloaded, ChainError> {
        let active = self.active.load_full();
        let specs = config::load(&self.chain_file)?;
        let mut filters = Vec::with_capacity(specs.len());
        for spec in specs {
            let (hash, pre) = self
                .host
                .cache
                .load(&self.host.engine, &self.host.linker, &spec.component)
                .map_err(|source| ChainError::Load {
                    filter: spec.name.clone(),
                    source,
                })?;
            let runtime = FilterRuntime::new(
                &spec.name,
                pre,
                spec.limits,
                &spec.config_json,
                self.host.kv.clone(),
                self.host.clock.clone(),
            );
            filters.push(LoadedFilter {
                spec,
                hash,
                runtime,
            });
        }
        let unchanged = active.generation > 0
            && active.filters.len() == filters.len()
            && active
                .filters
                .iter()
                .zip(&filters)
                .all(|(old, new)| old.spec == new.spec && old.hash == new.hash);
        if unchanged {
            tracing::debug!(generation = active.generation, "filter chain unchanged");
            return Ok(Reloaded::Unchanged(active.generation));
        }
        let chain = Chain {
            generation: active.generation + 1,
            filters,
            max_content_bytes: self.max_content_bytes,
        };
        // On a blocking thread (the watcher's, or startup's): waiting is fine.
        futures::executor::block_on(chain.probe())?;
        let in_use: HashSet<_> = chain.filters.iter().map(|f| f.hash).collect();
        let (generation, names) = (chain.generation, chain.names());
        self.active.store(Arc::new(chain));
        // Logged after the swap: a message sent once this line is out runs
        // on the new chain (the end-to-end tests rely on it).
        tracing::info!(generation, filters = ?names, "filter chain loaded");
        self.host.cache.retain(&in_use);
        Ok(Reloaded::Swapped(generation))
    }
}

/// What a reload that succeeded did.
enum Reloaded {
    Swapped(u64),
    /// The file describes the chain already in force.
    Unchanged(u64),
}

impl FilterStage for ChainStage {
    fn run(&self, message: Message) -> BoxFuture<'static, Decision> {
        let chain = self.inner.active.load_full();
        if chain.filters.is_empty() {
            return Box::pin(std::future::ready(Decision::Deliver {
                message,
                rewritten_by: Vec::new(),
            }));
        }
        let inner = self.inner.clone();
        Box::pin(async move {
            // Messages past the bound wait here, as cheap futures, so each
            // filter's warm instances are enough. The semaphore is never closed.
            let _permit = inner.running.acquire().await.ok();
            let failed = || {
                tracing::error!("the filter chain panicked");
                Decision::Reject {
                    filter: "switchboard".into(),
                    reason:
                        "the filter chain failed inside the server; the message was not delivered"
                            .into(),
                }
            };
            if inner.host.kv.waits_on_network() {
                // Store calls block on Redis: not on a runtime worker.
                let running = inner.clone();
                return tokio::task::spawn_blocking(move || {
                    futures::executor::block_on(chain.run(message, &running.observed))
                })
                .await
                .unwrap_or_else(|_| failed());
            }
            // Inline on this worker, with no hop to a blocking thread and
            // back: a filter yields at every epoch tick, so a slow one shares
            // the worker instead of stalling it (instance.rs).
            AssertUnwindSafe(chain.run(message, &inner.observed))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| failed())
        })
    }

    fn info(&self) -> StageInfo {
        let chain = self.inner.active.load();
        StageInfo {
            generation: chain.generation,
            filters: chain.names(),
            faults: self.inner.observed.snapshot(),
            disabled: false,
            refused: self
                .inner
                .refusal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Milliseconds since the Unix epoch (the filters' clock).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
