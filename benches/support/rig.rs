//! One measuring set-up: a daemon, a jail, an in-jail sender, the floor and (optionally) the
//! alternatives, each with its own FIFO and the same command `printf x > FIFO`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::alt::{Inotify, Webhook};
use super::floor::Floor;
use super::sender::Sender;
use super::{FifoReader, mkfifo, signal};
use crate::util::{self, Daemon, Jail, TempDir};

pub const JD_TITLE: &str = "BENCH_JAILDAEMON";
pub const FLOOR_TITLE: &str = "BENCH_FLOOR";
pub const FAT_FLOOR_TITLE: &str = "BENCH_FAT_FLOOR";
pub const DIRECT_TITLE: &str = "BENCH_NO_SHELL";
/// A static program that writes a byte into a FIFO without a shell: `busybox cp FILE FIFO`.
const BUSYBOX: &str = "/bin/busybox";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mech {
    Jaildaemon,
    Floor,
    Webhook,
    Inotify,
    /// The floor holding as many descriptors as the daemon (scale rounds only).
    FatFloor,
    /// jaildaemon with a command that has no shell syntax, exec'd without a shell.
    Direct,
}

impl Mech {
    pub fn name(self) -> &'static str {
        match self {
            Mech::Jaildaemon => "jaildaemon",
            Mech::Floor => "floor",
            Mech::Webhook => "webhook",
            Mech::Inotify => "inotify",
            Mech::FatFloor => "floor with the daemon's descriptors",
            Mech::Direct => "jaildaemon, a program without a shell",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One trigger's result, in µs.
pub struct Sample {
    /// From the trigger system call in the jail to the first byte of the command.
    pub latency: f64,
    /// webhook only: until the client had the whole HTTP response.
    pub response: Option<f64>,
}

/// Fields drop in declaration order: helpers first, then jail and daemon, the directory last.
pub struct Rig {
    sender: Sender,
    http_sender: Option<Sender>,
    /// Held for its Drop.
    #[allow(dead_code)]
    floor: Floor,
    fat_floor: Option<Floor>,
    webhook: Option<Webhook>,
    inotify: Option<Inotify>,
    pub jail: Jail,
    pub daemon: Daemon,
    fifos: [PathBuf; 6],
    /// A probe whose command runs without a shell is armed (busybox is there).
    direct: bool,
    touched: PathBuf,
    dir: TempDir,
}

fn command_for(fifo: &std::path::Path) -> String {
    format!("printf x > {}", fifo.display())
}

impl Rig {
    pub fn new(alternatives: bool) -> Rig {
        let dir = TempDir::new();
        let fifos = ["jd", "floor", "webhook", "inotify", "fat-floor", "direct"]
            .map(|n| dir.path(&format!("fifo-{n}")));
        for f in &fifos {
            mkfifo(f);
        }
        let touched = dir.path("touched");
        std::fs::write(&touched, b"").expect("touched file");
        let daemon = Daemon::start(&dir);
        let jail = Jail::new();
        daemon.arm(&[
            "-c",
            &command_for(&fifos[0]),
            "-j",
            &jail.spec(),
            "-t",
            JD_TITLE,
            "-r",
        ]);
        // The same byte, written by a program the daemon execs directly.
        let byte = dir.path("byte");
        std::fs::write(&byte, b"x").expect("byte file");
        let direct = std::path::Path::new(BUSYBOX).exists();
        if direct {
            daemon.arm(&[
                "-c",
                &format!("{BUSYBOX} cp {} {}", byte.display(), fifos[5].display()),
                "-j",
                &jail.spec(),
                "-t",
                DIRECT_TITLE,
                "-r",
            ]);
        } else {
            eprintln!("SKIPPED: the row of a command without a shell needs busybox-static");
        }
        let floor = Floor::start(
            jail.pid,
            FLOOR_TITLE,
            &command_for(&fifos[1]),
            0,
            &dir.path("floor.log"),
        );
        let sender = Sender::spawn(jail.pid, true);
        let (webhook, http_sender, inotify) = if alternatives {
            let webhook = Webhook::start(&dir.0, &command_for(&fifos[2]));
            let http_sender = webhook.as_ref().map(|w| {
                let mut s = Sender::spawn(jail.pid, false);
                s.expect_ok(&format!("connect {}", w.port));
                s
            });
            let inotify = Inotify::start(&dir.0, &touched, &command_for(&fifos[3]));
            (webhook, http_sender, inotify)
        } else {
            (None, None, None)
        };
        Rig {
            sender,
            http_sender,
            floor,
            fat_floor: None,
            webhook,
            inotify,
            jail,
            daemon,
            fifos,
            direct,
            touched,
            dir,
        }
    }

    /// (Re)starts the floor that holds `descriptors` descriptors besides its own.
    pub fn start_fat_floor(&mut self, descriptors: usize) {
        drop(self.fat_floor.take());
        self.fat_floor = Some(Floor::start(
            self.jail.pid,
            FAT_FLOOR_TITLE,
            &command_for(&self.fifos[Mech::FatFloor.index()]),
            descriptors,
            &self.dir.path("fat-floor.log"),
        ));
    }

    /// The mechanisms this rig can trigger.
    pub fn mechanisms(&self) -> Vec<Mech> {
        let mut m = vec![Mech::Jaildaemon, Mech::Floor];
        if self.direct {
            m.push(Mech::Direct);
        }
        if self.webhook.is_some() {
            m.push(Mech::Webhook);
        }
        if self.inotify.is_some() {
            m.push(Mech::Inotify);
        }
        m
    }

    /// Readies `mech` (finds its probe, outside the clock), idles `gap`, then has the in-jail
    /// sender trigger it, and waits for the command's first byte.
    pub fn trigger(&mut self, mech: Mech, gap: Duration) -> Sample {
        let mut reader = FifoReader::open(&self.fifos[mech.index()]);
        match mech {
            Mech::Jaildaemon => self.sender.expect_ok(&format!("find {JD_TITLE}")),
            Mech::Floor => self.sender.expect_ok(&format!("find {FLOOR_TITLE}")),
            Mech::FatFloor => self.sender.expect_ok(&format!("find {FAT_FLOOR_TITLE}")),
            Mech::Direct => self.sender.expect_ok(&format!("find {DIRECT_TITLE}")),
            _ => String::new(),
        };
        sleep(gap);
        let sender = match mech {
            Mech::Webhook => self.http_sender.as_mut().expect("webhook sender"),
            _ => &mut self.sender,
        };
        match mech {
            Mech::Jaildaemon | Mech::Floor | Mech::FatFloor | Mech::Direct => sender.send("kill"),
            Mech::Webhook => sender.send("post"),
            Mech::Inotify => sender.send(&format!("touch {}", self.touched.display())),
        }
        let t1 = reader.wait_byte(Duration::from_secs(10));
        let reply = sender.reply();
        let times: Vec<u64> = reply
            .strip_prefix("t ")
            .unwrap_or_else(|| panic!("{}: sender said {reply}", mech.name()))
            .split(' ')
            .filter_map(|t| t.parse().ok())
            .collect();
        let t1 = t1.unwrap_or_else(|| {
            panic!(
                "{}: no byte from the command within 10 s; daemon log:\n{}",
                mech.name(),
                self.daemon.log_text()
            )
        });
        Sample {
            latency: t1.saturating_sub(times[0]) as f64 / 1e3,
            response: times
                .get(1)
                .map(|r| r.saturating_sub(times[0]) as f64 / 1e3),
        }
    }

    /// The utility's round trip: request → probe confirmed inside the jail. The probe is
    /// killed afterwards (the daemon forgets it), so that the daemon's load stays the same.
    pub fn utility_round_trip(&self, i: usize) -> f64 {
        let title = format!("BENCH_RT_{i}");
        let t0 = Instant::now();
        let status = Command::new(util::BIN)
            .args(["-c", "true", "-j", &self.jail.spec(), "-t", &title, "-f"])
            .arg(&self.daemon.socket)
            .stdout(Stdio::null())
            .status()
            .expect("run the utility");
        let us = t0.elapsed().as_secs_f64() * 1e6;
        assert!(
            status.success(),
            "arming failed: {}",
            self.daemon.log_text()
        );
        for pid in util::host_pids_matching(&title) {
            signal(pid as i32, rustix::process::Signal::KILL);
        }
        us
    }

    /// The same request from an in-process client: the socket and the daemon, without the
    /// utility's process start.
    pub fn socket_round_trip(&self, i: usize) -> f64 {
        use jaildaemon::proto::Response;
        let request = super::arm_request("true", &self.jail.spec(), &format!("BENCH_SOCK_{i}"));
        let t0 = Instant::now();
        let answer = jaildaemon::client::ask(&self.daemon.socket, &request);
        let us = t0.elapsed().as_secs_f64() * 1e6;
        match answer {
            Ok(Response::Armed { pid, .. }) => signal(pid, rustix::process::Signal::KILL),
            other => panic!("arming over the socket: {other:?}"),
        }
        us
    }
}

/// Issue 23's measure of the utility's round trip, as an administrator's script pays it: a
/// bash loop of `n` arming requests (`arm`) or of `n` runs of `/bin/true`, timed by bash
/// itself around the loop alone; microseconds per iteration. The probes the loop armed are
/// killed after it, so that the daemon's load stays the same.
pub fn bash_loop(rig: &Rig, arm: bool, tag: &str, n: usize) -> f64 {
    let body = if arm {
        r#"for ((i = 0; i < $1; i++)); do "$2" -c true -j "$3" -t "BENCH_LOOP_$4_$i" -f "$5" >/dev/null || exit 1; done"#
    } else {
        r#"for ((i = 0; i < $1; i++)); do /bin/true; done"#
    };
    let script = format!("s=$EPOCHREALTIME; {body}; e=$EPOCHREALTIME; echo \"$s $e\"");
    // `$EPOCHREALTIME` writes the locale's decimal point.
    let out = Command::new("bash")
        .env("LC_ALL", "C")
        .args([
            "-c",
            &script,
            "bash",
            &n.to_string(),
            util::BIN,
            &rig.jail.spec(),
            tag,
        ])
        .arg(&rig.daemon.socket)
        .stderr(Stdio::inherit())
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", rig.daemon.log_text());
    let text = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> = text
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(times.len(), 2, "bash said {text:?}");
    if arm {
        let prefix = format!("BENCH_LOOP_{tag}_");
        for pid in pids_titled_from(&prefix) {
            signal(pid as i32, rustix::process::Signal::KILL);
        }
    }
    (times[1] - times[0]) * 1e6 / n as f64
}

/// Host processes whose whole command line is one word starting with `prefix`: probes.
fn pids_titled_from(prefix: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let one_word =
            !cmdline.is_empty() && cmdline.iter().position(|&b| b == 0) == Some(cmdline.len() - 1);
        if one_word && cmdline.starts_with(prefix.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Start of the utility process alone (`jaildaemon -V`): what the utility's round trip pays
/// before it reaches the socket.
pub fn utility_start() -> f64 {
    let t0 = Instant::now();
    let ok = Command::new(util::BIN)
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "jaildaemon -V failed");
    t0.elapsed().as_secs_f64() * 1e6
}
