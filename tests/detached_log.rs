//! Where a detached daemon's log goes: to syslog when a syslog daemon listens on /dev/log, and
//! otherwise to /var/log/jaildaemon.log, which it says on stderr before it detaches. Each
//! daemon runs in a mount namespace of its own with a fresh /dev and /var/log, so that the
//! host's syslog socket and log directory are neither used nor touched.

mod util;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use util::*;

const FALLBACK: &str = "/var/log/jaildaemon.log";
const NOTE: &str = "no syslog daemon listens on /dev/log: logging to /var/log/jaildaemon.log";

/// A detached daemon in its own mount namespace, stopped on drop.
struct Detached {
    out: Output,
    pidfile: PathBuf,
}

impl Detached {
    /// Starts `jaildaemon -D` (no `-F`) in a mount namespace whose /dev holds only `null` and
    /// whose /var/log is an empty tmpfs; `setup` is shell run there before it. A daemon that
    /// blocks before it detaches is killed after 30 s (`timeout` exits 124 then).
    fn start(dir: &TempDir, setup: &str) -> Detached {
        let pidfile = dir.path("jd.pid");
        let script = format!(
            "set -e
             mount -t tmpfs -o mode=0755 jdtest /dev
             mknod -m 666 /dev/null c 1 3
             mount -t tmpfs -o mode=0755 jdtest /var/log
             {setup}
             exec timeout 30 {BIN} -D -f {sock} -p {pid} -C /dev/null -S {state}",
            sock = dir.path("jd.sock").display(),
            pid = pidfile.display(),
            state = dir.path("state").display(),
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .unwrap();
        Detached { out, pidfile }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }

    /// A file as the daemon sees it, through its own root.
    fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(format!("/proc/{}/root{path}", self.pid()?)).ok()
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(pid) = self
            .pid()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            wait_for(Duration::from_secs(5), || {
                !Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
            });
        }
    }
}

#[test]
fn without_a_syslog_daemon_the_log_goes_to_a_file_and_the_daemon_says_so_first() {
    if !root_or_skip("without_a_syslog_daemon_the_log_goes_to_a_file_and_the_daemon_says_so_first")
    {
        return;
    }
    let dir = TempDir::new();
    let daemon = Detached::start(&dir, ":");
    assert!(daemon.out.status.success(), "{}", daemon.stderr());
    assert!(daemon.stderr().contains(NOTE), "{}", daemon.stderr());
    let mut log = String::new();
    assert!(
        wait_for(Duration::from_secs(5), || {
            log = daemon.read(FALLBACK).unwrap_or_default();
            log.contains("listening on")
        }),
        "no line in {FALLBACK}: {log:?}"
    );
    // `2026-11-30T17:07:00Z jaildaemon[4711]: listening on …`, with the daemon's pid.
    let line = log.lines().find(|l| l.contains("listening on")).unwrap();
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{line}"
    );
    let pid = daemon.pid().unwrap();
    assert!(rest.starts_with(&format!("jaildaemon[{pid}]: ")), "{line}");
    // A refused request is logged there too.
    let socket = dir.path("jd.sock");
    let s = socket.to_str().unwrap();
    let refused = Command::new(BIN)
        .args(["-c", "true", "-j", "999999999", "-f", s])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(68));
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .read(FALLBACK)
            .is_some_and(|l| l.contains("999999999"))),
        "{:?}",
        daemon.read(FALLBACK)
    );
    let mode = fs::metadata(format!("/proc/{pid}/root{FALLBACK}"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o640);
}

#[test]
fn with_a_syslog_daemon_the_log_goes_to_syslog_and_no_file_is_written() {
    if !root_or_skip("with_a_syslog_daemon_the_log_goes_to_syslog_and_no_file_is_written") {
        return;
    }
    let dir = TempDir::new();
    // A syslog daemon of our own: a datagram socket, bound where syslog(3) looks for one.
    let socket = dir.path("log.sock");
    let syslog = UnixDatagram::bind(&socket).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let setup = format!("touch /dev/log; mount --bind {} /dev/log", socket.display());
    let daemon = Detached::start(&dir, &setup);
    assert!(daemon.out.status.success(), "{}", daemon.stderr());
    assert!(!daemon.stderr().contains("syslog"), "{}", daemon.stderr());
    let mut received = String::new();
    let mut buf = [0u8; 4096];
    while !received.contains("listening on") {
        let n = syslog
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no syslog message ({e}); got {received:?}"));
        received.push_str(&String::from_utf8_lossy(&buf[..n]));
        received.push('\n');
    }
    // LOG_DAEMON | LOG_INFO is <30>.
    assert!(received.contains("<30>"), "{received}");
    assert!(received.contains("jaildaemon["), "{received}");
    assert_eq!(daemon.read(FALLBACK), None, "a log file was written");
}

#[test]
fn a_daemon_that_can_log_nowhere_does_not_start() {
    if !root_or_skip("a_daemon_that_can_log_nowhere_does_not_start") {
        return;
    }
    let dir = TempDir::new();
    let daemon = Detached::start(&dir, "mount -o remount,ro /var/log");
    assert_eq!(daemon.out.status.code(), Some(71), "{}", daemon.stderr());
    for needle in [FALLBACK, "/dev/log", "-F"] {
        assert!(
            daemon.stderr().contains(needle),
            "{needle}: {}",
            daemon.stderr()
        );
    }
    // It never detached, so no daemon serves.
    let ask = Command::new(BIN)
        .args(["-l", "-f", dir.path("jd.sock").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(ask.status.code(), Some(69));
}

#[test]
fn a_fallback_log_planted_by_the_owner_of_its_directory_is_refused_and_followed_nowhere() {
    let test =
        "a_fallback_log_planted_by_the_owner_of_its_directory_is_refused_and_followed_nowhere";
    if !root_or_skip(test) {
        return;
    }
    // /var/log belongs to uid 65534 in the daemon's mount namespace, who plants what they like
    // at the log's name before the daemon starts.
    for (plant, found) in [
        ("ln -s {victim} {log}", "is a symbolic link; not followed"),
        ("mkfifo {log}", "is a FIFO, not a regular file; refused"),
        ("touch {log}", "belongs to uid 65534, not 0; refused"),
    ] {
        let dir = TempDir::new();
        let victim = dir.path("victim");
        fs::write(&victim, "root's own file\n").unwrap();
        let plant = plant
            .replace("{victim}", victim.to_str().unwrap())
            .replace("{log}", FALLBACK);
        let setup = format!(
            "chown 65534:65534 /var/log
             setpriv --reuid 65534 --regid 65534 --clear-groups {plant}"
        );
        let started = std::time::Instant::now();
        let daemon = Detached::start(&dir, &setup);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{plant}: the daemon blocked ({:?})",
            started.elapsed()
        );
        assert_eq!(
            daemon.out.status.code(),
            Some(71),
            "{plant}: {}",
            daemon.stderr()
        );
        assert!(
            daemon
                .stderr()
                .contains(&format!("{FALLBACK} cannot be opened ({found})")),
            "{plant}: {}",
            daemon.stderr()
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's own file\n");
        assert_eq!(daemon.pid(), None, "{plant}: a daemon detached");
    }
    // The twin: the same directory of uid 65534 with nothing planted; the daemon makes its own
    // log there and logs to it.
    let dir = TempDir::new();
    let daemon = Detached::start(&dir, "chown 65534:65534 /var/log");
    assert!(daemon.out.status.success(), "{}", daemon.stderr());
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .read(FALLBACK)
            .is_some_and(|l| l.contains("listening on"))),
        "{:?}",
        daemon.read(FALLBACK)
    );
}
