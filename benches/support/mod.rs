//! Pieces of the benchmark that are not the measurement loop itself: the clock, statistics,
//! /proc readers, the FIFO reader, and the helper programs (in-jail sender, floor) that the
//! bench binary becomes when started with an internal mode argument.

pub mod alt;
pub mod declared;
pub mod fleets;
pub mod floor;
pub mod rig;
pub mod scale;
pub mod sender;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// An arm request for a single-shot probe, made by the utility's own command-line parser, so
/// that it stays what `jaildaemon -c COMMAND -j JAIL -t TITLE` sends whatever fields it grows.
pub fn arm_request(command: &str, jail: &str, title: &str) -> jaildaemon::proto::Request {
    let argv = ["jaildaemon", "-c", command, "-j", jail, "-t", title].map(std::ffi::OsString::from);
    match jaildaemon::cli::parse(argv) {
        Ok(jaildaemon::cli::Mode::Arm { request, .. }) => jaildaemon::proto::Request::Arm(request),
        other => panic!("the utility's parser did not make an arm request: {other:?}"),
    }
}

/// CLOCK_MONOTONIC in nanoseconds. The same clock inside and outside the jails (they have no
/// time namespace), so a timestamp taken by the in-jail sender compares with one taken here.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Samples of one row, in microseconds.
#[derive(Clone, Default)]
pub struct Stats {
    pub micros: Vec<f64>,
}

impl Stats {
    pub fn push(&mut self, us: f64) {
        self.micros.push(us);
    }

    pub fn n(&self) -> usize {
        self.micros.len()
    }

    /// Nearest-rank quantile; NaN when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let mut v = self.micros.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    pub fn p99(&self) -> f64 {
        self.quantile(0.99)
    }

    /// "median / p90 / p99" in whole microseconds.
    pub fn triple(&self) -> String {
        if self.micros.is_empty() {
            return "—".into();
        }
        format!(
            "{:.0} / {:.0} / {:.0}",
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99)
        )
    }
}

/// /proc/meminfo, in KiB.
pub fn meminfo() -> HashMap<String, i64> {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// A `Key:   123 kB` field of a /proc file, in KiB.
pub fn proc_field_kib(path: &str, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident, proportional and unique set size of a process, in KiB.
#[derive(Clone, Copy, Default)]
pub struct Footprint {
    pub rss: u64,
    pub pss: u64,
    pub uss: u64,
    /// Its page tables (VmPTE), kernel memory.
    pub pte: u64,
    /// Slots in its descriptor table (FDSize): a probe inherits the table's size from the
    /// daemon, and exec keeps it; 8 bytes of kernel memory each, plus bitmaps.
    pub fd_slots: u64,
}

pub fn footprint(pid: i32) -> Option<Footprint> {
    let rollup = format!("/proc/{pid}/smaps_rollup");
    let f = |k| proc_field_kib(&rollup, k);
    Some(Footprint {
        rss: f("Rss")?,
        pss: f("Pss")?,
        uss: f("Private_Clean")? + f("Private_Dirty")?,
        pte: proc_field_kib(&format!("/proc/{pid}/status"), "VmPTE")?,
        fd_slots: proc_field_kib(&format!("/proc/{pid}/status"), "FDSize")?,
    })
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// The first line a command prints, or "?" when it cannot run.
pub fn version_of(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("?")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Says loudly that part of the benchmark did not run.
pub fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// A FIFO opened for reading before the trigger, without blocking; the host command's
/// `printf x > FIFO` then finds a reader at once.
pub struct FifoReader(fs::File);

impl FifoReader {
    pub fn open(path: &Path) -> FifoReader {
        FifoReader(
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display())),
        )
    }

    /// Sleeps in poll (a spinning reader would steal the CPU that the daemon and the command
    /// need on two cores) until a byte arrives; returns the clock right after reading it.
    pub fn wait_byte(&mut self, limit: Duration) -> Option<u64> {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let timeout = rustix::time::Timespec::try_from(left).ok()?;
            let mut fds = [rustix::event::PollFd::new(
                &self.0,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
            let mut byte = [0u8; 1];
            if let Ok(1) = self.0.read(&mut byte) {
                return Some(now_ns());
            }
            // A writer came and went without a byte (POLLHUP): look again shortly.
            sleep(Duration::from_micros(50));
        }
    }
}
