//! Per-process CPU time and memory from `/proc`, so a run can report core-seconds per million
//! envelopes and peak/steady RSS for every process involved, including the load generator.

use std::fs;
use std::time::Duration;

/// CPU and memory of one process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU time consumed so far.
    pub cpu: Duration,
    /// Resident set size now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size (VmHWM), in bytes.
    pub peak_rss_bytes: u64,
}

/// Errors reading `/proc`.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The process is gone or `/proc` is not readable.
    #[error("reading /proc/{pid}/{file}: {source}")]
    Read {
        /// Process id.
        pid: u32,
        /// File under `/proc/<pid>/`.
        file: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file did not have the expected shape.
    #[error("unexpected format in /proc/{pid}/{file}")]
    Format {
        /// Process id.
        pid: u32,
        /// File under `/proc/<pid>/`.
        file: &'static str,
    },
}

/// Clock ticks per second used by `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux we target).
const USER_HZ: u64 = 100;

/// Reads CPU time and RSS of `pid`.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let stat =
        fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|source| ProcError::Read {
            pid,
            file: "stat",
            source,
        })?;
    // The command name (field 2) may contain spaces and parentheses: fields after the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or(ProcError::Format { pid, file: "stat" })?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is index 0, so utime (field 14) is index 11 and stime (15) index 12.
    let ticks = |i: usize| -> Result<u64, ProcError> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or(ProcError::Format { pid, file: "stat" })
    };
    let total_ticks = ticks(11)? + ticks(12)?;
    let cpu = Duration::from_micros(total_ticks * 1_000_000 / USER_HZ);

    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).map_err(|source| ProcError::Read {
            pid,
            file: "status",
            source,
        })?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu,
        rss_bytes: kib("VmRSS:") * 1024,
        peak_rss_bytes: kib("VmHWM:") * 1024,
    })
}

/// CPU used between two samples, in core-seconds.
pub fn cpu_seconds(before: &ProcSample, after: &ProcSample) -> f64 {
    after.cpu.saturating_sub(before.cpu).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let pid = std::process::id();
        let a = sample(pid).expect("own /proc entry");
        // Burn CPU until the tick counter moves (the machine may be busy; give it up to 5 s).
        let mut x = 0u64;
        let start = std::time::Instant::now();
        let mut b = a;
        while start.elapsed() < Duration::from_secs(5) && b.cpu == a.cpu {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            b = sample(pid).expect("own /proc entry");
        }
        assert!(b.rss_bytes > 0);
        assert!(b.peak_rss_bytes >= b.rss_bytes / 2);
        assert!(
            cpu_seconds(&a, &b) > 0.0,
            "cpu time did not move: {a:?} -> {b:?}"
        );
    }

    #[test]
    fn missing_process_is_an_error() {
        let err = sample(u32::MAX - 1).expect_err("no such pid");
        assert!(err.to_string().contains("/proc/"));
    }
}
