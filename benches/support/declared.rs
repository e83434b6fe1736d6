//! Arming at start, and the loop that never waits.
//!
//! - Probes declared in the configuration file for one jail: from the daemon's start to its
//!   READY=1 (sd_notify), beside a serial floor of the same run: one process that joins the
//!   jail and starts as many minimal processes there, one after the other.
//! - The same number armed by request, from `CLIENTS` in-process clients at once (requests for
//!   one jail that arrive while its placement is in flight join its next batch), from the
//!   first request to the last answer, in the same rounds.
//! - A trigger while a container name's lookup hangs (LXC's tool, in the daemon's own mount
//!   namespace, never answers), beside the same trigger on the same daemon with no lookup.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::sender::Sender;
use super::{FifoReader, Stats, mkfifo};
use crate::util::{BIN, Daemon, Jail, TempDir};

/// What the declared rows measured, in milliseconds.
pub struct Declared {
    pub probes: usize,
    pub ready: Stats,
    /// The same number armed by request from `CLIENTS` clients at once.
    pub requested: Stats,
    pub floor: Stats,
    /// What the floor's processes were.
    pub floor_exec: String,
}

/// The floor's minimal process: the static busybox's `true` if installed (no loader to run),
/// else the host's `/bin/true`.
fn minimal() -> (&'static str, &'static [&'static str]) {
    if Path::new("/bin/busybox").exists() {
        ("/bin/busybox", &["true"])
    } else {
        ("/bin/true", &[])
    }
}

/// `--jd-serial-floor N`, inside the jail: starts N minimal processes, one after the other.
pub fn serial_floor(args: &[String]) {
    let n: usize = args.first().and_then(|a| a.parse().ok()).expect("N");
    let (program, argv) = minimal();
    for _ in 0..n {
        let status = Command::new(program).args(argv).status().expect("spawn");
        assert!(status.success());
    }
}

pub fn run(probes: usize, samples: usize) -> Declared {
    let jail = Jail::new();
    let (program, argv) = minimal();
    let mut out = Declared {
        probes,
        ready: Stats::default(),
        requested: Stats::default(),
        floor: Stats::default(),
        floor_exec: format!("{program} {}", argv.join(" ")),
    };
    // Interleaved, so that both see the same machine.
    for _ in 0..samples {
        out.floor.push(floor(&jail, probes));
        out.ready.push(ready(&jail, probes));
        out.requested.push(requested(&jail, probes));
    }
    out
}

/// Clients arming at once in the by-request row: many clients, as a configuration
/// management run that arms a host's probes one utility call each, in parallel.
pub const CLIENTS: usize = 64;

/// Milliseconds to arm `probes` in `jail` by request, `CLIENTS` clients at once, on a daemon
/// that is already up.
fn requested(jail: &Jail, probes: usize) -> f64 {
    let dir = TempDir::new();
    let daemon = Daemon::start(&dir);
    let next = AtomicUsize::new(0);
    let spec = jail.spec();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= probes {
                        return;
                    }
                    let request = super::arm_request("true", &spec, &format!("REQUESTED_{i}"));
                    match jaildaemon::client::ask(&daemon.socket, &request) {
                        Ok(jaildaemon::proto::Response::Armed { .. }) => {}
                        other => panic!("arming by request, probe {i}: {other:?}"),
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    drop(daemon);
    took.as_secs_f64() * 1e3
}

fn floor(jail: &Jail, probes: usize) -> f64 {
    let exe = std::env::current_exe().expect("the bench binary");
    let started = Instant::now();
    let status = Command::new("nsenter")
        .args(["-t", &jail.spec(), "-a"])
        .arg(exe)
        .args(["--jd-serial-floor", &probes.to_string()])
        .status()
        .expect("nsenter");
    assert!(status.success(), "serial floor failed");
    started.elapsed().as_secs_f64() * 1e3
}

fn ready(jail: &Jail, probes: usize) -> f64 {
    let dir = TempDir::new();
    let conf = dir.path("declared.conf");
    let mut text = String::new();
    for i in 0..probes {
        let _ = write!(
            text,
            "[[probe]]\njail = \"{}\"\ncommand = \"true\"\ntitle = \"DECLARED_{i}\"\n",
            jail.spec()
        );
    }
    fs::write(&conf, text).expect("configuration file");
    let notify = dir.path("notify");
    let socket = UnixDatagram::bind(&notify).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let variable = format!("NOTIFY_SOCKET={}", notify.display());
    let started = Instant::now();
    let daemon = Daemon::launch(
        &dir,
        &["env", &variable],
        &["-C", &conf.display().to_string()],
    );
    let mut buf = [0u8; 256];
    loop {
        let n = socket.recv(&mut buf).expect("READY=1 within 120 s");
        if buf[..n].windows(7).any(|w| w == b"READY=1") {
            break;
        }
    }
    let took = started.elapsed();
    drop(daemon);
    took.as_secs_f64() * 1e3
}

/// What the hung-lookup rows measured, in microseconds.
pub struct Hung {
    pub idle: Stats,
    pub hung: Stats,
    /// How long each lookup that was in flight during the `hung` samples took.
    pub lookups: Vec<Duration>,
}

pub fn run_hung(samples: usize) -> Option<Hung> {
    if !Path::new("/usr/bin/lxc-info").exists() {
        super::skipped("trigger while a lookup hangs: needs /usr/bin/lxc-info (package lxc)");
        return None;
    }
    let dir = TempDir::new();
    let hang = dir.path("hang");
    fs::write(&hang, "#!/bin/sh\nexec sleep 60\n").expect("hang script");
    fs::set_permissions(&hang, fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = format!(
        "mount --bind {} /usr/bin/lxc-info && exec \"$@\"",
        hang.display()
    );
    let daemon = Daemon::launch(
        &dir,
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ],
        &[],
    );
    let jail = Jail::new();
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let title = "BENCH_BESIDE_HUNG";
    daemon.arm(&[
        "-c",
        &format!("printf x > {}", fifo.display()),
        "-j",
        &jail.spec(),
        "-t",
        title,
        "-r",
    ]);
    let mut sender = Sender::spawn(jail.pid, false);
    let mut trigger = || {
        let mut reader = FifoReader::open(&fifo);
        sender.expect_ok(&format!("find {title}"));
        sender.send("kill");
        let t1 = reader
            .wait_byte(Duration::from_secs(10))
            .expect("the command's byte within 10 s");
        let reply = sender.reply();
        let t0: u64 = reply
            .strip_prefix("t ")
            .and_then(|t| t.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("sender said {reply}"));
        // The probe is re-armed (`-r`) once the command has ended: wait for it outside the clock.
        std::thread::sleep(Duration::from_millis(20));
        t1.saturating_sub(t0) as f64 / 1e3
    };
    let mut out = Hung {
        idle: Stats::default(),
        hung: Stats::default(),
        lookups: Vec::new(),
    };
    // Rounds of `per` idle triggers, then `per` triggers while one lookup hangs; `per` stays
    // well inside the lookup's 5 s, and each hung sample is checked to be inside it.
    let (rounds, per) = (samples.div_ceil(20).max(1), samples.min(20));
    for _ in 0..rounds {
        for _ in 0..per {
            out.idle.push(trigger());
        }
        // A lookup of a bare name asks every manager, LXC's hung tool among them.
        let mut child = Command::new(BIN)
            .args(["-f", &daemon.socket.display().to_string()])
            .args(["-c", "true", "-j", "jd-bench-nosuch", "-t", "HUNG"])
            .stderr(Stdio::null())
            .spawn()
            .expect("utility");
        let since = Instant::now();
        // Let the daemon start the lookup's tools before the first trigger.
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..per {
            let latency = trigger();
            assert!(
                child.try_wait().expect("utility").is_none(),
                "the lookup ended before the hung samples did"
            );
            out.hung.push(latency);
        }
        let _ = child.wait();
        out.lookups.push(since.elapsed());
    }
    Some(out)
}
