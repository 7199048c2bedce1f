//! Watches a process for the length of a run: samples it a few times a
//! second so short RSS peaks are seen, and turns the first and last samples
//! into CPU use over the run.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::procstat::{self, ProcError, Sample, Target};

const EVERY: Duration = Duration::from_millis(200);

pub struct Monitor {
    target: Target,
    first: Sample,
    state: Arc<Mutex<Watched>>,
    task: JoinHandle<()>,
}

#[derive(Clone, Copy)]
struct Watched {
    latest: Sample,
    peak_rss_kib: u64,
}

/// What a process used during a run.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub rss_start_mib: f64,
    pub rss_end_mib: f64,
    /// Highest sampled VmRSS during the run.
    pub rss_peak_mib: f64,
    /// The kernel's VmHWM at the end: the peak over the process's whole life,
    /// which includes earlier runs against the same server.
    pub hwm_mib: f64,
    /// Percent of one core, averaged over the run (200 = both cores of two).
    pub cpu_percent: f64,
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Monitor {
    pub fn start(target: Target) -> Result<Self, ProcError> {
        let first = procstat::sample(target)?;
        let state = Arc::new(Mutex::new(Watched {
            latest: first,
            peak_rss_kib: first.rss_kib,
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tick.tick().await;
                // A process that went away keeps its last reading; the final
                // sample in `finish` reports the error.
                let Ok(sample) = procstat::sample(target) else {
                    return;
                };
                let mut watched = shared.lock().unwrap_or_else(|p| p.into_inner());
                watched.latest = sample;
                watched.peak_rss_kib = watched.peak_rss_kib.max(sample.rss_kib);
            }
        });
        Ok(Self {
            target,
            first,
            state,
            task,
        })
    }

    pub fn latest(&self) -> Sample {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).latest
    }

    pub fn finish(self) -> Result<Usage, ProcError> {
        self.task.abort();
        let last = procstat::sample(self.target)?;
        let peak = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peak_rss_kib
            .max(last.rss_kib);
        Ok(Usage {
            rss_start_mib: mib(self.first.rss_kib),
            rss_end_mib: mib(last.rss_kib),
            rss_peak_mib: mib(peak),
            hwm_mib: mib(last.hwm_kib),
            cpu_percent: last.cpu_percent_since(&self.first),
        })
    }
}
