//! The server process as Linux reports it: resident memory (`VmRSS`, and the
//! kernel's own peak `VmHWM`) from `/proc/<pid>/status`, CPU time (user +
//! system) from `/proc/<pid>/stat`. Also used on this tool itself, which shares
//! the machine with the server.

use std::{io, path::PathBuf, time::Instant};

use nix::unistd::{SysconfVar, sysconf};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source}; is the process running and is this Linux?")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} has no {field} field")]
    Missing { path: PathBuf, field: &'static str },
}

/// Which process to watch.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Pid(u32),
    Myself,
}

impl Target {
    fn file(self, name: &str) -> PathBuf {
        match self {
            Target::Pid(pid) => PathBuf::from(format!("/proc/{pid}/{name}")),
            Target::Myself => PathBuf::from(format!("/proc/self/{name}")),
        }
    }
}

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    cpu_ticks: u64,
}

impl Sample {
    /// CPU used between `earlier` and this sample, in percent of one core.
    pub fn cpu_percent_since(&self, earlier: &Sample) -> f64 {
        let secs = self.at.duration_since(earlier.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        let ticks = self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64;
        ticks / clock_ticks_per_sec() / secs * 100.0
    }
}

fn clock_ticks_per_sec() -> f64 {
    // Linux has reported 100 on every common architecture for decades; the
    // fallback only matters if sysconf itself fails.
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

fn read(path: PathBuf) -> Result<(PathBuf, String), ProcError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(source) => Err(ProcError::Read { path, source }),
    }
}

pub fn sample(target: Target) -> Result<Sample, ProcError> {
    let at = Instant::now();
    let (path, status) = read(target.file("status"))?;
    let kib = |field: &'static str| -> Result<u64, ProcError> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| ProcError::Missing {
                path: path.clone(),
                field,
            })
    };
    let rss_kib = kib("VmRSS")?;
    let hwm_kib = kib("VmHWM")?;
    let (path, stat) = read(target.file("stat"))?;
    // The command name (field 2) may hold spaces and parentheses; every field
    // after its closing parenthesis is a plain number. utime and stime are
    // fields 14 and 15, so the 12th and 13th after the parenthesis.
    let ticks = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(2))
        .map(|fields| {
            fields
                .filter_map(|f| f.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|fields| fields.len() == 2)
        .ok_or(ProcError::Missing {
            path,
            field: "utime/stime",
        })?;
    Ok(Sample {
        at,
        rss_kib,
        hwm_kib,
        cpu_ticks: ticks.iter().sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let first = sample(Target::Myself).unwrap();
        let burn = (0..5_000_000u64).fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b));
        std::hint::black_box(burn);
        let second = sample(Target::Myself).unwrap();
        assert!(first.rss_kib > 0 && first.hwm_kib >= first.rss_kib);
        assert!(second.cpu_percent_since(&first) >= 0.0);
    }

    #[test]
    fn a_missing_process_is_a_clear_error() {
        let error = sample(Target::Pid(u32::MAX)).unwrap_err();
        assert!(
            error.to_string().contains("is the process running"),
            "{error}"
        );
    }
}
