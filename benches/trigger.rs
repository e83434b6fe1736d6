//! Trigger latency and arming round trip through the real daemon, beside the floor of the
//! same run: spawning the same `sh -c` command directly. Writes a table to BENCHMARKS.md.
//!
//! Run as root: `cargo bench --bench trigger` (`-- --rounds N --samples M` to change n).
//! Not a test: nothing here asserts a time.

#[path = "../tests/util/mod.rs"]
mod util;

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A real trigger is a rare event: the system idles this long before each sample.
const GAP: Duration = Duration::from_millis(5);

struct Stats {
    name: &'static str,
    micros: Vec<f64>,
}

impl Stats {
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.micros.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

fn probe_pid(title: &str) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        (fs::read(e.path().join("cmdline")).ok()? == [title.as_bytes(), b"\0"].concat())
            .then_some(pid)
    })
}

/// Opens the FIFO for reading without blocking, then waits for the first byte.
fn first_byte_after(fifo: &Path, start: impl FnOnce()) -> Duration {
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    let t0 = Instant::now();
    start();
    let mut byte = [0u8; 1];
    loop {
        // Sleep in poll rather than spin: on two cores a spinning reader would steal the CPU
        // that the daemon and the command need.
        let mut fds = [rustix::event::PollFd::new(
            &reader,
            rustix::event::PollFlags::IN,
        )];
        let _ = rustix::event::poll(&mut fds, None);
        if let Ok(1) = reader.read(&mut byte) {
            return t0.elapsed();
        }
        // POLLHUP before any writer came: wait a little and look again.
        sleep(Duration::from_micros(50));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let (rounds, samples) = (arg("--rounds", 5), arg("--samples", 40));
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED trigger benchmark: needs root (namespace jail, daemon socket)");
        return;
    }
    // The same daemon and jail helpers as the end-to-end tests.
    let dir = util::TempDir::new();
    let fifo = dir.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let daemon = util::Daemon::start(&dir);
    let socket = daemon.socket.clone();
    let jail = util::Jail::new();
    let jail_pid = jail.pid as i32;
    let jail_spec = jail_pid.to_string();
    let command = format!("printf x > {}", fifo.display());
    let arm = |title: &str, extra: &[&str]| {
        let ok = Command::new(util::BIN)
            .args(["-c", &command, "-j", &jail_spec, "-t", title, "-f"])
            .arg(&socket)
            .args(extra)
            .status()
            .unwrap()
            .success();
        assert!(ok, "arming failed");
    };
    arm("BENCH_TRIGGER", &["-r"]);

    let mut trigger = Stats {
        name: "trigger: SIGHUP to probe → first byte of `sh -c` on host (jaildaemon)",
        micros: vec![],
    };
    let mut floor = Stats {
        name: "floor: spawn `sh -c` → first byte (no probe, no daemon)",
        micros: vec![],
    };
    let mut round_trip = Stats {
        name: "arming: utility round trip, probe confirmed in jail",
        micros: vec![],
    };
    for round in 0..rounds {
        for _ in 0..samples {
            let pid = loop {
                if let Some(pid) = probe_pid("BENCH_TRIGGER") {
                    break pid;
                }
                sleep(Duration::from_micros(200));
            };
            sleep(GAP);
            let t = first_byte_after(&fifo, || {
                unsafe_free_signal(pid, rustix::process::Signal::HUP)
            });
            trigger.micros.push(t.as_secs_f64() * 1e6);
            sleep(GAP);
            let t = first_byte_after(&fifo, || {
                Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&command)
                    .spawn()
                    .map(|mut c| std::thread::spawn(move || c.wait()))
                    .unwrap();
            });
            floor.micros.push(t.as_secs_f64() * 1e6);
            sleep(GAP);
            let title = format!("BENCH_ARM_{round}");
            let t0 = Instant::now();
            arm(&title, &[]);
            round_trip.micros.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(jail);
    drop(daemon);
    drop(dir);

    let floor_median = floor.quantile(0.5);
    let mut table = String::from(
        "| what | n | median / p90 / p99 (µs) | median ÷ floor |\n|---|---|---|---|\n",
    );
    for s in [&trigger, &floor, &round_trip] {
        table += &format!(
            "| {} | {} | {:.0} / {:.0} / {:.0} | {:.2} |\n",
            s.name,
            s.micros.len(),
            s.quantile(0.5),
            s.quantile(0.9),
            s.quantile(0.99),
            s.quantile(0.5) / floor_median
        );
    }
    println!("{table}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let text = format!(
        "# Benchmarks\n\nMade by `cargo bench --bench trigger` (as root); {rounds} interleaved rounds of {samples} samples, \
         {gap} ms idle before each sample.\nMachine: {cpus} CPUs, Linux {kernel}, jaildaemon {version}.\n\
         The arming round trip includes starting the utility process.\n\n{table}",
        gap = GAP.as_millis(),
        kernel = kernel.trim(),
        version = env!("CARGO_PKG_VERSION"),
    );
    fs::write(&out, text).unwrap();
    println!("written to {}", out.display());
}

/// A signal by host pid: the bench is root on the host, as a jail's root would be inside;
/// SIGHUP to a probe takes the same kernel path either way.
fn unsafe_free_signal(pid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
