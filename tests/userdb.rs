//! A jail's user database is read by the probe's helper, inside the jail and off the daemon's
//! loop (issue 20, point 2): a jail whose root filesystem is a FUSE mount that stops answering
//! delays only its own `-u name` probe, which is refused at the placement's deadline; a large
//! database is read once, not at every re-arm, and again once it changed; one over the limits
//! is refused, naming the limit.
//!
//! The FUSE server is python3-fusepy's, a loopback of a busybox root that logs every read of
//! `/etc/passwd`. It runs as root with `allow_other`; the hostile server is simulated by
//! SIGSTOP, which is what matters: it stops answering.

mod util;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use util::*;

/// A loopback filesystem of `root` at `mountpoint`, which appends `read OFFSET` to `log` for
/// every read of /etc/passwd. No attribute or entry caching, so that a change of the file in
/// `root` is seen at once and every lookup asks the server.
const SERVER: &str = r#"
import errno, os, sys, threading, time
from fusepy import FUSE, FuseOSError, Operations

class Loopback(Operations):
    def __init__(self, root, log):
        self.root = os.path.realpath(root)
        self.log = log
        self.mutex = threading.Lock()

    def __call__(self, op, path, *args):
        return super().__call__(op, self.root + path, *args)

    def access(self, path, mode):
        if not os.access(path, mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(path)
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink',
                'st_size', 'st_uid', 'st_ino')
        return dict((k, getattr(st, k)) for k in keys)

    def readlink(self, path):
        return os.readlink(path)

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(path)

    def open(self, path, flags):
        # With a file `hang` in the root, the server takes an open of /etc/passwd and never
        # answers it (the kernel has handed the request over: the opener cannot be killed).
        if path.endswith('/etc/passwd') and os.path.exists(self.root + '/hang'):
            time.sleep(3600)
        return os.open(path, flags)

    def read(self, path, size, offset, fh):
        with self.mutex:
            if path.endswith('/etc/passwd'):
                with open(self.log, 'a') as log:
                    log.write('read %d\n' % offset)
            os.lseek(fh, offset, 0)
            return os.read(fh, size)

    def release(self, path, fh):
        return os.close(fh)

    def statfs(self, path):
        st = os.statvfs(path)
        keys = ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree',
                'f_files', 'f_flag', 'f_frsize', 'f_namemax')
        return dict((k, getattr(st, k)) for k in keys)

FUSE(Loopback(sys.argv[1], sys.argv[3]), sys.argv[2], foreground=True, allow_other=True,
     use_ino=True, attr_timeout=0, entry_timeout=0, negative_timeout=0)
"#;

/// Debian's python3 (python3-fusepy is installed for it), not one found first on PATH.
const PYTHON: &str = "/usr/bin/python3";

/// A busybox root served through FUSE by `SERVER`, and a jail whose root it is. Dropped in
/// order: the jail, then the server (continued, so that it can end), then the mount.
struct FuseJail {
    jail: Option<Jail>,
    server: Child,
    mountpoint: PathBuf,
    /// The real root behind the mount: change files here.
    source: PathBuf,
    /// The server's log of reads of /etc/passwd.
    reads: PathBuf,
}

impl FuseJail {
    /// `None`, said loudly, without root, busybox-static, /dev/fuse or python3-fusepy.
    fn new(test: &str, dir: &TempDir, passwd: &[u8]) -> Option<FuseJail> {
        if !root_or_skip(test) {
            return None;
        }
        let fusepy = Command::new(PYTHON).args(["-c", "import fusepy"]).output();
        if !Path::new("/dev/fuse").exists() || !fusepy.is_ok_and(|o| o.status.success()) {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: needs /dev/fuse and {PYTHON} with fusepy (package python3-fusepy)"
            );
            return None;
        }
        let source = dir.path("source");
        busybox_root(&source)?;
        fs::write(source.join("etc/passwd"), passwd).unwrap();
        let mountpoint = dir.path("mnt");
        fs::create_dir_all(&mountpoint).unwrap();
        let script = dir.path("loopback.py");
        fs::write(&script, SERVER).unwrap();
        let reads = dir.path("reads");
        let server = Command::new(PYTHON)
            .arg(&script)
            .args([&source, &mountpoint, &reads])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut fuse = FuseJail {
            jail: None,
            server,
            mountpoint,
            source,
            reads,
        };
        let busybox = fuse.mountpoint.join("bin/busybox");
        assert!(
            wait_for(Duration::from_secs(10), || busybox.exists()),
            "{test}: the FUSE server did not mount"
        );
        fuse.jail = Some(Jail::in_root(&fuse.mountpoint));
        Some(fuse)
    }

    fn jail(&self) -> &Jail {
        self.jail.as_ref().unwrap()
    }

    /// Stops (`STOP`) or continues (`CONT`) every thread of the server; false once it is gone.
    fn signal(&self, signal: &str) -> bool {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.server.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        status.success()
    }

    /// How many times /etc/passwd was read from its start through the mount.
    fn passwd_reads(&self) -> usize {
        fs::read_to_string(&self.reads)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "read 0")
            .count()
    }
}

impl Drop for FuseJail {
    fn drop(&mut self) {
        drop(self.jail.take());
        let _ = self.signal("CONT");
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .status();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The daemon's children in state `state` (`D`: uninterruptible, `Z`: zombie).
fn children_in_state(daemon: &Daemon, state: &str) -> Vec<u32> {
    util::children_in_state(daemon.child.id(), state)
}

/// Asks, in a thread, for a `-u worker` probe titled `title` in jail `spec`: the utility's
/// output and how long it took.
fn arm_in_background(
    daemon: &Daemon,
    spec: &str,
    title: &str,
) -> std::thread::JoinHandle<(std::process::Output, Duration)> {
    let socket = daemon.socket.clone();
    let args = ["-c", "true", "-j", spec, "-t", title, "-u", "worker"].map(String::from);
    std::thread::spawn(move || {
        let started = Instant::now();
        let out = Command::new(BIN)
            .arg("-f")
            .arg(socket)
            .args(args)
            .output()
            .unwrap();
        (out, started.elapsed())
    })
}

/// The uid and gid of a process, as its own user namespace numbers them.
fn ids_of(pid: u32) -> (String, String) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    (field("Uid:"), field("Gid:"))
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A user database of about `size` bytes: padded entries, and `worker` (uid `uid`) last, where
/// a lookup finds it only after reading everything.
fn large_passwd(size: usize, uid: u32) -> Vec<u8> {
    let mut text = b"root:x:0:0:root:/:/bin/sh\n".to_vec();
    let pad = "p".repeat(40);
    let mut n = 1000;
    while text.len() + 120 < size {
        text.extend(format!("user{n}:x:{n}:{n}:{pad}:/home/user{n}:/bin/false\n").bytes());
        n += 1;
    }
    text.extend(format!("worker:x:{uid}:{uid}::/:/bin/sh\n").bytes());
    text
}

/// A jail whose root filesystem stops answering (its FUSE server stopped) cannot stall the
/// daemon: its `-u worker` probe is refused with 75 at the placement's deadline, naming the
/// user database, while another jail's probe is armed and fired and `-l` answers, each well
/// within 1.5 s. Twin: once the server answers again, `-u worker` resolves there and the
/// probe runs as that uid.
#[test]
fn a_jail_whose_user_database_hangs_delays_no_other_jail() {
    let test = "a_jail_whose_user_database_hangs_delays_no_other_jail";
    let dir = TempDir::new();
    let passwd = b"root:x:0:0:root:/:/bin/sh\nworker:x:4242:4343::/:/bin/sh\n";
    let Some(fuse) = FuseJail::new(test, &dir, passwd) else {
        return;
    };
    let daemon = Daemon::start(&dir);
    let other = Jail::new();
    let fired = dir.path("fired");
    let spec = fuse.jail().spec();

    assert!(fuse.signal("STOP"));
    let hung = arm_in_background(&daemon, &spec, "HUNG");
    // Let the hung placement start: its helper is now waiting on the stopped server.
    sleep(Duration::from_millis(500));
    let started = Instant::now();
    let command = format!("echo fired >> {}", fired.display());
    daemon.arm(&["-c", &command, "-j", &other.spec(), "-t", "OTHER"]);
    let armed = started.elapsed();
    let started = Instant::now();
    assert!(other.pkill(0, "HUP", "OTHER"));
    assert!(wait_for(Duration::from_secs(5), || lines(&fired) == 1));
    let fired_in = started.elapsed();
    let started = Instant::now();
    let listing = list(&daemon);
    let listed = started.elapsed();
    let (out, hung_for) = hung.join().unwrap();
    assert!(
        armed < Duration::from_millis(1500)
            && fired_in < Duration::from_millis(1500)
            && listed < Duration::from_millis(1500),
        "{test}: armed in {armed:?}, fired in {fired_in:?}, listed in {listed:?}"
    );
    assert!(
        listing.iter().any(|p| p.title == "HUNG"),
        "{test}: the hung probe is not listed as placing: {listing:#?}"
    );
    assert_eq!(out.status.code(), Some(75), "{test}: {}", stderr(&out));
    assert!(
        stderr(&out).contains("reading its user database /etc/passwd did not finish within 5 s"),
        "{test}: {}",
        stderr(&out)
    );
    assert!(
        hung_for >= Duration::from_secs(4) && hung_for < Duration::from_secs(15),
        "{test}: refused after {hung_for:?}"
    );
    assert!(fuse.jail().probes("HUNG").is_empty());

    // Twin: the server answers again, and the name resolves in the jail's own database.
    assert!(fuse.signal("CONT"));
    daemon.arm(&["-c", "true", "-j", &spec, "-t", "RESOLVED", "-u", "worker"]);
    let probe = fuse.jail().probes("RESOLVED");
    assert_eq!(probe.len(), 1, "{test}: {}", daemon.log_text());
    assert_eq!(ids_of(probe[0]), ("4242".into(), "4343".into()));
    assert!(
        daemon
            .log_text()
            .contains("in the jail as uid 4242 gid 4343"),
        "{test}: {}",
        daemon.log_text()
    );
}

/// A 4 MiB user database (its user last) behind an `-R -u worker` probe fired twenty times is
/// read once: every re-arm finds the file unchanged (the server logs each read) and reuses
/// the answer. Twin: once the file changed, the next re-arm reads it again and the probe runs
/// with the new uid.
#[test]
fn an_unchanged_user_database_is_read_once_and_a_changed_one_again() {
    let test = "an_unchanged_user_database_is_read_once_and_a_changed_one_again";
    let dir = TempDir::new();
    let passwd = large_passwd(4 << 20, 4242);
    assert!(passwd.len() <= 4 << 20 && passwd.len() > (4 << 20) - 200);
    let Some(fuse) = FuseJail::new(test, &dir, &passwd) else {
        return;
    };
    let daemon = Daemon::start(&dir);
    let fired = dir.path("fired");
    let spec = fuse.jail().spec();
    let command = format!("echo fired >> {}", fired.display());
    daemon.arm(&[
        "-c", &command, "-j", &spec, "-t", "LARGE", "-R", "-u", "worker",
    ]);
    assert_eq!(
        fuse.passwd_reads(),
        1,
        "{test}: the first placement reads it"
    );
    let mut signaller = fuse.jail().signaller();
    let current = |previous: Option<u32>| {
        let mut found = None;
        assert!(
            wait_for(Duration::from_secs(10), || {
                found = fuse
                    .jail()
                    .probes("LARGE")
                    .into_iter()
                    .find(|&p| Some(p) != previous);
                found.is_some()
            }),
            "{test}: no probe after {previous:?}: {}",
            daemon.log_text()
        );
        found.unwrap()
    };
    let mut probe = current(None);
    for round in 1..=20 {
        assert!(signaller.send("HUP", probe));
        assert!(wait_for(Duration::from_secs(5), || lines(&fired) == round));
        probe = current(Some(probe));
        assert_eq!(ids_of(probe).0, "4242");
    }
    assert_eq!(
        fuse.passwd_reads(),
        1,
        "{test}: twenty re-arms read the unchanged database again"
    );

    // Twin: a new version of the file (another inode, written anew) is read, and used.
    let changed = fuse.source.join("etc/passwd.new");
    fs::write(&changed, large_passwd(4 << 20, 4343)).unwrap();
    fs::rename(&changed, fuse.source.join("etc/passwd")).unwrap();
    assert!(signaller.send("HUP", probe));
    assert!(wait_for(Duration::from_secs(5), || lines(&fired) == 21));
    let probe = current(Some(probe));
    assert_eq!(ids_of(probe).0, "4343", "{test}: {}", daemon.log_text());
    assert_eq!(
        fuse.passwd_reads(),
        2,
        "{test}: the changed file is read once more"
    );
}

/// A user database over the limits (4 MiB, 100,000 lines) is refused with 65, naming the
/// file and the limit, and nothing is placed; the daemon keeps serving. Twin: the same jail
/// with a database just within both limits resolves the name.
#[test]
fn a_user_database_over_its_limits_is_refused_by_name() {
    let test = "a_user_database_over_its_limits_is_refused_by_name";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let root = dir.path("root");
    if busybox_root(&root).is_none() {
        return;
    }
    let daemon = Daemon::start(&dir);
    let jail = Jail::in_root(&root);
    let spec = jail.spec();
    let passwd = root.join("etc/passwd");
    let worker = "worker:x:4242:4242::/:/bin/sh\n";
    let lines_over = format!("{}{worker}", "#\n".repeat(100_000));
    let bytes_over = [
        large_passwd(4 << 20, 1).as_slice(),
        &[b'#'; 200],
        b"\n",
        worker.as_bytes(),
    ]
    .concat();
    for (text, why) in [
        (lines_over.into_bytes(), "has more than 100000 lines"),
        (bytes_over, "is larger than 4 MiB"),
    ] {
        fs::write(&passwd, &text).unwrap();
        let out = daemon.util(&["-c", "true", "-j", &spec, "-t", "OVER", "-u", "worker"]);
        assert_eq!(out.status.code(), Some(65), "{test}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "its /etc/passwd {why}, the limit of a user database"
            )),
            "{test}: {}",
            stderr(&out)
        );
        assert!(jail.probes("OVER").is_empty());
    }
    // Twin: just within both limits, the name at its very end resolves.
    let within = format!("{}{worker}", "#\n".repeat(99_999));
    fs::write(&passwd, within).unwrap();
    daemon.arm(&["-c", "true", "-j", &spec, "-t", "WITHIN", "-u", "worker"]);
    let probe = jail.probes("WITHIN");
    assert_eq!(probe.len(), 1);
    assert_eq!(ids_of(probe[0]).0, "4242");
}

/// A FUSE server that takes the open of /etc/passwd and never answers it leaves the helper
/// that asked unkillable (the kernel waits for the answer once the server has the request):
/// still, the probe is refused with 75 at the deadline and `-l` answers at once meanwhile.
/// The helper stays, not reaped and not waited for, until the server ends; then it is reaped
/// and no child of the daemon is left. Twin: with the server answering, the name resolves.
#[test]
fn a_user_database_server_that_never_answers_holds_only_its_helper() {
    let test = "a_user_database_server_that_never_answers_holds_only_its_helper";
    let dir = TempDir::new();
    let passwd = b"root:x:0:0:root:/:/bin/sh\nworker:x:4242:4242::/:/bin/sh\n";
    let Some(mut fuse) = FuseJail::new(test, &dir, passwd) else {
        return;
    };
    let daemon = Daemon::start(&dir);
    let spec = fuse.jail().spec();
    daemon.arm(&["-c", "true", "-j", &spec, "-t", "ANSWERED", "-u", "worker"]);
    assert_eq!(ids_of(fuse.jail().probes("ANSWERED")[0]).0, "4242");

    fs::write(fuse.source.join("hang"), "").unwrap();
    let hung = arm_in_background(&daemon, &spec, "HUNG");
    sleep(Duration::from_millis(500));
    let started = Instant::now();
    let listing = list(&daemon);
    let listed = started.elapsed();
    assert!(
        listed < Duration::from_millis(1500),
        "{test}: listed in {listed:?}"
    );
    assert!(listing.iter().any(|p| p.title == "HUNG"), "{listing:#?}");
    let (out, hung_for) = hung.join().unwrap();
    assert_eq!(out.status.code(), Some(75), "{test}: {}", stderr(&out));
    assert!(stderr(&out).contains("/etc/passwd did not finish within 5 s"));
    assert!(hung_for < Duration::from_secs(15), "{test}: {hung_for:?}");
    // The killed helper waits in the kernel for the server's answer.
    // (It gets there once its SIGKILL is taken: look for a while.)
    let mut stuck = Vec::new();
    assert!(
        wait_for(Duration::from_secs(3), || {
            stuck = children_in_state(&daemon, "D");
            stuck.len() == 1
        }),
        "{test}: no helper waits on the server"
    );
    assert!(matches!(
        ask(&daemon.socket, &jaildaemon::proto::Request::Ping),
        jaildaemon::proto::Response::Pong { .. }
    ));

    // The server ends: the request is aborted, the helper dies of its SIGKILL and is reaped.
    fuse.server.kill().unwrap();
    fuse.server.wait().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || {
            children_in_state(&daemon, "D").is_empty()
                && children_in_state(&daemon, "Z").is_empty()
                && !Path::new(&format!("/proc/{}", stuck[0])).exists()
        }),
        "{test}: the helper {stuck:?} was not reaped"
    );
}
