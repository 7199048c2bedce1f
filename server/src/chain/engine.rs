//! The one wasmtime [`Engine`] the server compiles and runs filters with, and
//! the ticker thread that advances its epoch so per-call deadlines fire.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use wasmtime::{Config, Engine};

/// Epoch resolution: a deadline fires within one tick of its nominal time,
/// and a running filter yields to the runtime once per tick.
pub const TICK: Duration = Duration::from_millis(10);

/// Builds the engine: epochs for wall-clock deadlines, fuel for CPU budgets.
pub fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(true);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("filter-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // Exits within one tick; joining keeps tests from leaking threads.
            let _ = thread.join();
        }
    }
}
