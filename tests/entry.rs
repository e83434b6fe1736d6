//! The process's start (`src/sys/entry.rs`): on Linux with glibc the binary has its own C
//! `main` in place of the standard library's start-up, and does what of it the program relies
//! on. A daemon started with descriptors 0–2 closed holds /dev/null there (else its socket or
//! a file would take the number and get its log); it ignores SIGPIPE, so a log reader that goes
//! away does not end it; its commands get SIGPIPE back at its default. Each with its twin: a
//! daemon started with them open keeps what it was given; its commands ignore no SIGPIPE.

mod util;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use util::*;

const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);

/// The `SigIgn` mask of `/proc/PID/status`.
fn ignored_signals(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap();
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// A daemon started by hand, killed when the test ends, failed or not.
struct Started(std::process::Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `jaildaemon -l` against `socket` succeeds.
fn answers_list(socket: &std::path::Path) {
    let listed = Command::new(util::BIN)
        .arg("-l")
        .arg("-f")
        .arg(socket)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
}

fn descriptor(pid: u32, fd: u32) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

#[test]
fn a_daemon_started_with_its_standard_descriptors_closed_holds_dev_null_there() {
    if !root_or_skip("a_daemon_started_with_its_standard_descriptors_closed_holds_dev_null_there") {
        return;
    }
    let dir = TempDir::new();
    let socket = dir.path("jd.sock");
    let state = dir.path("state");
    // The shell closes 0, 1 and 2 and execs the daemon in its place: the daemon is this child.
    let mut child = Started(
        Command::new("sh")
            .args([
                "-c",
                "exec \"$@\" <&- >&- 2>&-",
                "sh",
                util::BIN,
                "-D",
                "-F",
            ])
            .arg("-f")
            .arg(&socket)
            .arg("-p")
            .arg(dir.path("jd.pid"))
            .args(["-C", "/dev/null", "-S"])
            .arg(&state)
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    assert!(
        wait_for(Duration::from_secs(5), || socket.exists()),
        "the daemon did not come up"
    );
    for fd in 0..3 {
        assert_eq!(descriptor(pid, fd), "/dev/null", "descriptor {fd}");
    }
    // Its socket and its log are elsewhere, and it answers.
    answers_list(&socket);
    let jail = Jail::new();
    let armed = Command::new(util::BIN)
        .args([
            "-c",
            "true",
            "-j",
            &jail.spec(),
            "-t",
            "CLOSED_STDIO_PROBE",
            "-f",
        ])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(armed.status.success(), "{armed:?}");
    assert_eq!(jail.probes("CLOSED_STDIO_PROBE").len(), 1);
    assert!(child.0.try_wait().unwrap().is_none(), "the daemon ended");
    drop(child);

    // Twin: a daemon given open descriptors keeps them; its log goes where stderr pointed.
    let twin_dir = TempDir::new();
    let daemon = Daemon::start(&twin_dir);
    let pid = daemon.child.id();
    assert_eq!(descriptor(pid, 0), "/dev/null");
    assert_eq!(descriptor(pid, 2), daemon.log.display().to_string());
    assert!(daemon.log_text().contains("listening on"));
}

#[test]
fn a_daemon_whose_log_reader_went_away_keeps_running_and_its_commands_get_sigpipe_back() {
    if !root_or_skip(
        "a_daemon_whose_log_reader_went_away_keeps_running_and_its_commands_get_sigpipe_back",
    ) {
        return;
    }
    let dir = TempDir::new();
    let socket = dir.path("jd.sock");
    let fired = dir.path("fired");
    let mut daemon = Started(
        Command::new(util::BIN)
            .args(["-D", "-F", "-f"])
            .arg(&socket)
            .arg("-p")
            .arg(dir.path("jd.pid"))
            .args(["-C", "/dev/null", "-S"])
            .arg(dir.path("state"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();
    let mut log = BufReader::new(daemon.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "the daemon ended");
    }
    assert_ne!(ignored_signals(pid) & SIGPIPE_BIT, 0, "SIGPIPE not ignored");
    // The reader of its log goes away: every line from now on meets a broken pipe.
    drop(log);
    let jail = Jail::new();
    // What each command ignores, written where the test reads it.
    let command = format!("grep SigIgn /proc/self/status >> {}", fired.display());
    for i in 0..3 {
        let title = format!("BROKEN_LOG_PIPE_{i}");
        let armed = Command::new(util::BIN)
            .args(["-c", &command, "-j", &jail.spec(), "-t", &title, "-f"])
            .arg(&socket)
            .output()
            .unwrap();
        assert!(armed.status.success(), "{armed:?}");
        assert!(jail.pkill(0, "HUP", &title));
        assert!(
            wait_for(Duration::from_secs(5), || lines(&fired) == i + 1),
            "the command did not run"
        );
    }
    assert!(daemon.0.try_wait().unwrap().is_none(), "the daemon ended");
    answers_list(&socket);
    let text = fs::read_to_string(&fired).unwrap();
    for line in text.lines() {
        let mask = u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).unwrap();
        assert_eq!(
            mask & SIGPIPE_BIT,
            0,
            "a command started with SIGPIPE ignored"
        );
    }
}
