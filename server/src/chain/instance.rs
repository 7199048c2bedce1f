//! Running one filter: the host side of its imports (config, log, clock,
//! store), the per-call limits (deadline, fuel, memory cap) and a small pool
//! of warm instances. A fresh instance per call costs 30-60 µs, a warm one
//! ~1 µs, so instances are reused; one is dropped after any trap (it would
//! refuse every later call) and after [`MAX_CALLS_PER_INSTANCE`] calls, so a
//! filter that leaks memory or state inside its instance cannot do so forever.
//!
//! Filters are called with wasmtime's async support, on the runtime's
//! workers inside the sender's request: at every epoch tick a running filter
//! yields to the executor, so a slow filter shares its worker instead of
//! stalling it, and once its `timeout_ms` has passed the next tick stops it.
//! Fuel bounds the CPU a call may use, however it is spread over ticks.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};
use wasmtime::{
    ResourceLimiter, Store, Trap, UpdateDeadline,
    component::{Resource, ResourceTable},
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView, p2::DynPollable};

use super::clock::Clock;
use super::{
    clip,
    component::one_line,
    config::Limits,
    store::{KvStore, StoreError},
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0",
        world: "filter",
        // Store quota errors trap the guest, so its `on_error` policy applies.
        imports: { "switchboard:filter/store": trappable },
        exports: { default: async },
    });
}

pub use bindings::switchboard::filter::types::{Message, Rewrite, Verdict};
use bindings::switchboard::filter::{clock, config, log, store, types};

pub type FilterPre = bindings::FilterPre<HostState>;

/// Calls after which an instance is retired even if healthy.
pub const MAX_CALLS_PER_INSTANCE: u32 = 10_000;
/// Longest log line a filter may emit, in bytes.
const MAX_LOG_BYTES: usize = 4096;
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Why one call of a filter failed. The text ends up in the sender's error as
/// "filter failed: <this>", so it is short and says what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("timed out after {0} ms")]
    Timeout(u128),
    #[error("ran out of fuel (budget {0} per message)")]
    OutOfFuel(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(usize),
    #[error("{0}")]
    Store(StoreError),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an invalid verdict: {0}")]
    Verdict(String),
    /// The filter refused its `[filter.config]`: the SDK logs the reason
    /// with [`CONFIG_ERROR_PREFIX`] and then traps.
    #[error("refused its config: {0}")]
    Config(String),
}

impl Fault {
    /// A short name for the metrics' `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Timeout(_) => "timeout",
            Fault::OutOfFuel(_) => "fuel",
            Fault::Memory(_) => "memory",
            Fault::Store(_) => "store",
            Fault::Trap(_) => "trap",
            Fault::Verdict(_) => "verdict",
            Fault::Config(_) => "config",
        }
    }
}

/// How plugin-sdk's guest side announces a config it refuses, just before
/// it traps (`plugin-sdk/src/__private.rs`). The host turns the pair into
/// one [`Fault::Config`] instead of a log line plus a trap.
pub const CONFIG_ERROR_PREFIX: &str = "invalid config: ";

/// The error a memory grow past the cap traps with, so it can be told apart
/// from a guest panic (both would otherwise be `unreachable`).
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded")]
struct MemoryCapExceeded;

struct MemoryCap {
    max_bytes: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            return Err(wasmtime::Error::new(MemoryCapExceeded));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Everything a filter instance can reach: its own name, config and store
/// namespace, and a WASI context that grants nothing (std guests import
/// wasi:cli and wasi:io, so they must link, but get no files, env, args,
/// network or stdio).
pub struct HostState {
    plugin: Arc<str>,
    config_json: Arc<str>,
    kv: Arc<dyn KvStore>,
    clock: Clock,
    limiter: MemoryCap,
    /// The reason of a refused config, until the trap that follows it.
    config_error: Option<String>,
    /// When the running call must have finished.
    deadline: Instant,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WASI poll interface as wasmtime-wasi links it (guests built against
/// any 0.2 version resolve to it).
const WASI_POLL: &str = "wasi:io/poll@0.2.12";

/// Why a filter that tried to wait was stopped.
#[derive(Debug, thiserror::Error)]
#[error(
    "tried to wait (wasi:io/poll); filters may not sleep or block, since the host cannot interrupt a wait at the deadline"
)]
struct WaitRefused;

/// Adds WASI (empty) and the filter world's imports to `linker`.
///
/// Waiting is refused: `pollable.block` and `poll` trap at once. The epoch
/// deadline only interrupts guest code, so a wait inside the host (a guest's
/// `sleep`, a blocking read) would hold a worker past `timeout_ms`. Nothing
/// else in the empty context can block: there are no files, sockets or
/// input, and output goes nowhere at once.
pub fn link(linker: &mut wasmtime::component::Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_POLL)?;
    poll.func_wrap(
        "[method]pollable.block",
        |_, _: (Resource<DynPollable>,)| -> wasmtime::Result<()> { Err(WaitRefused.into()) },
    )?;
    poll.func_wrap(
        "poll",
        |_, _: (Vec<Resource<DynPollable>>,)| -> wasmtime::Result<(Vec<u32>,)> {
            Err(WaitRefused.into())
        },
    )?;
    linker.allow_shadowing(false);
    bindings::Filter::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |state| state)
}

impl types::Host for HostState {}

impl config::Host for HostState {
    fn get(&mut self) -> String {
        self.config_json.to_string()
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = &*self.plugin;
        let message = clip(&message, MAX_LOG_BYTES);
        if let (log::Level::Error, Some(reason)) =
            (level, message.strip_prefix(CONFIG_ERROR_PREFIX))
        {
            self.config_error = Some(reason.to_owned());
            return;
        }
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        self.clock.now_ms()
    }
}

fn ttl(ttl_ms: u64) -> Option<std::time::Duration> {
    (ttl_ms > 0).then(|| std::time::Duration::from_millis(ttl_ms))
}

impl store::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.kv.get(&self.plugin, &key)?)
    }

    fn set(&mut self, key: String, value: String, ttl_ms: u64) -> wasmtime::Result<()> {
        Ok(self.kv.set(&self.plugin, &key, value, ttl(ttl_ms))?)
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        Ok(self.kv.delete(&self.plugin, &key)?)
    }

    fn incr(&mut self, key: String, delta: i64, ttl_ms: u64) -> wasmtime::Result<i64> {
        Ok(self.kv.incr(&self.plugin, &key, delta, ttl(ttl_ms))?)
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<String>,
        new: String,
        ttl_ms: u64,
    ) -> wasmtime::Result<bool> {
        Ok(self
            .kv
            .compare_and_swap(&self.plugin, &key, expected.as_deref(), new, ttl(ttl_ms))?)
    }
}

struct Warm {
    store: Store<HostState>,
    filter: bindings::Filter,
    calls: u32,
}

/// One filter of a loaded chain, ready to be called from any thread.
pub struct FilterRuntime {
    plugin: Arc<str>,
    pre: FilterPre,
    limits: Limits,
    config_json: Arc<str>,
    kv: Arc<dyn KvStore>,
    clock: Clock,
    idle: Mutex<Vec<Warm>>,
}

/// How many calls of one filter may run at once, and so how many warm
/// instances each filter keeps: [`ChainStage`](super::ChainStage) never runs
/// more chains at once, so under load no call creates an instance only to
/// drop it (a fresh instance costs 30-60 µs, the bundled filters ~5 µs).
/// Several per core, because a filter may wait on the store (Redis).
pub fn max_parallel_calls() -> usize {
    // Reading the core count means reading cgroup files: once per process.
    static CALLS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CALLS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        (4 * cores).max(8)
    })
}

impl FilterRuntime {
    pub fn new(
        plugin: &str,
        pre: FilterPre,
        limits: Limits,
        config_json: &str,
        kv: Arc<dyn KvStore>,
        clock: Clock,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            pre,
            limits,
            config_json: config_json.into(),
            kv,
            clock,
            idle: Mutex::new(Vec::with_capacity(max_parallel_calls())),
        }
    }

    /// Runs the filter on `message` within its limits.
    pub async fn call(&self, message: &Message) -> Result<Verdict, Fault> {
        let taken = self.idle().pop();
        let mut warm = match taken {
            Some(warm) => warm,
            None => self.instantiate().await?,
        };
        self.arm(&mut warm.store)?;
        let verdict = match warm.filter.call_filter(&mut warm.store, message).await {
            Ok(verdict) => verdict,
            Err(error) => {
                return Err(match warm.store.data_mut().config_error.take() {
                    Some(reason) => Fault::Config(reason),
                    None => self.classify(error),
                });
            }
        };
        warm.calls += 1;
        if warm.calls < MAX_CALLS_PER_INSTANCE {
            let mut idle = self.idle();
            if idle.len() < max_parallel_calls() {
                idle.push(warm);
            }
        }
        Ok(verdict)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn instantiate(&self) -> Result<Warm, Fault> {
        let state = HostState {
            plugin: self.plugin.clone(),
            config_json: self.config_json.clone(),
            kv: self.kv.clone(),
            clock: self.clock.clone(),
            limiter: MemoryCap {
                max_bytes: self.limits.memory_bytes,
            },
            config_error: None,
            deadline: Instant::now(),
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        // Every tick: past the call's deadline, stop; before it, let the
        // worker serve others and go on at the next tick. tokio's own yield:
        // a task that merely wakes itself is polled again first, before
        // anything else on its worker.
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() >= store.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        // Instantiation runs guest code (start functions) too.
        self.arm(&mut store)?;
        let filter = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|error| self.classify(error))?;
        Ok(Warm {
            store,
            filter,
            calls: 0,
        })
    }

    /// Re-arms fuel and the deadline: both are per call, and a deadline set
    /// once would have long passed by a later call (extism#557).
    fn arm(&self, store: &mut Store<HostState>) -> Result<(), Fault> {
        store
            .set_fuel(self.limits.fuel)
            .map_err(|error| Fault::Trap(one_line(&error)))?;
        store.data_mut().deadline = Instant::now() + self.limits.timeout;
        store.set_epoch_deadline(1);
        Ok(())
    }

    fn classify(&self, error: wasmtime::Error) -> Fault {
        if error.downcast_ref::<MemoryCapExceeded>().is_some() {
            return Fault::Memory(self.limits.memory_bytes >> 20);
        }
        if let Some(error) = error.downcast_ref::<StoreError>() {
            return Fault::Store(error.clone());
        }
        if let Some(error) = error.downcast_ref::<WaitRefused>() {
            return Fault::Trap(error.to_string());
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Fault::Timeout(self.limits.timeout.as_millis()),
            Some(Trap::OutOfFuel) => Fault::OutOfFuel(self.limits.fuel),
            Some(trap) => {
                let text = trap.to_string();
                Fault::Trap(text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned())
            }
            None => Fault::Trap(one_line(&error)),
        }
    }
}
