//! Helpers for tests that drive the real binary over its real socket against real namespace
//! jails. Each test gets its own directory, daemon and jail.
#![allow(dead_code)]

pub mod images;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_jaildaemon");

/// True when running as root; otherwise says loudly that the test is skipped.
pub fn root_or_skip(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        say_skipped(&format!(
            "{test}: needs root (namespaces, setns, a root-only socket); run the suite as root"
        ));
    }
    root
}

/// Writes straight to stderr, past the test harness's output capture (which only captures the
/// print macros), so that a skip is seen even when the test passes.
pub fn say_skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("jaildaemon-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        sleep(Duration::from_millis(10));
    }
    cond()
}

/// A daemon in the foreground (`-F`) with its own socket and pidfile.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &TempDir) -> Daemon {
        Daemon::start_with(dir, &[])
    }

    /// Starts the daemon through `wrapper` (a command prefix), e.g. to start it with SIGHUP
    /// ignored and blocked.
    pub fn start_with(dir: &TempDir, wrapper: &[&str]) -> Daemon {
        Daemon::launch(dir, wrapper, &[])
    }

    /// Starts the daemon with extra daemon options, e.g. `-G group`.
    pub fn start_with_args(dir: &TempDir, args: &[&str]) -> Daemon {
        Daemon::launch(dir, &[], args)
    }

    /// Starts the daemon under `wrapper` (a command prefix) with `args` added.
    pub fn launch(dir: &TempDir, wrapper: &[&str], args: &[&str]) -> Daemon {
        let socket = dir.path("jd.sock");
        let pidfile = dir.path("jd.pid");
        let log = dir.path("daemon.log");
        let mut argv: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        argv.extend([BIN, "-D", "-F", "-f"].map(String::from));
        argv.push(socket.display().to_string());
        argv.push("-p".into());
        argv.push(pidfile.display().to_string());
        // Never the host's own configuration or state file; a test's `args` may name others.
        argv.extend(["-C".into(), "/dev/null".into(), "-S".into()]);
        argv.push(dir.path("state").display().to_string());
        argv.extend(args.iter().map(|s| s.to_string()));
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            socket,
            pidfile,
            log,
        };
        assert!(
            wait_for(Duration::from_secs(5), || d
                .log_text()
                .contains("listening on")),
            "daemon did not come up: {}",
            d.log_text()
        );
        d
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the utility against this daemon.
    pub fn util(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("-f")
            .arg(&self.socket)
            .output()
            .unwrap()
    }

    /// Arms a probe and asserts that the utility reported success.
    pub fn arm(&self, args: &[&str]) {
        let out = self.util(args);
        assert!(
            out.status.success(),
            "arming {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
    }

    /// Runs the utility against this daemon as uid and gid 65534, without groups.
    pub fn util_as_nobody(&self, args: &[&str]) -> Output {
        let mut argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        argv.push("-f".as_ref());
        argv.push(self.socket.as_os_str());
        as_nobody(&argv)
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, sig).unwrap();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().unwrap().is_none() {
            self.signal(rustix::process::Signal::TERM);
            // A daemon stuck in a system call (the failure a test was catching) cannot read
            // its SIGTERM: killed, so that the test fails instead of hanging.
            if !wait_for(Duration::from_secs(10), || {
                self.child.try_wait().unwrap().is_some()
            }) {
                self.signal(rustix::process::Signal::KILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// A namespace jail made with unshare(1): its own pid, mount (with its own /proc), uts, ipc
/// and net namespaces, and with `with_userns` also its own user namespace, where its root is
/// host uid 100000.
pub struct Jail {
    unshare: Child,
    pub pid: u32,
}

impl Jail {
    pub fn new() -> Jail {
        Jail::spawn(&[])
    }

    /// A user-namespaced jail, or `None` (said loudly) where newuidmap is missing.
    pub fn with_userns() -> Option<Jail> {
        if Command::new("newuidmap").output().is_err() {
            say_skipped("user-namespace jail: newuidmap (package uidmap) is missing");
            return None;
        }
        Some(Jail::spawn(&[
            "--user",
            "--map-users=100000,0,65536",
            "--map-groups=100000,0,65536",
            "--setuid",
            "0",
            "--setgid",
            "0",
        ]))
    }

    fn spawn(extra: &[&str]) -> Jail {
        let mut args = extra.to_vec();
        args.extend(["--pid", "--mount-proc"]);
        Jail::unshare(&args)
    }

    /// A jail in the host's pid namespace (its own mount, uts, ipc and net namespaces): one
    /// the probe cannot tell host processes from its own, as the documentation warns.
    pub fn sharing_host_pids() -> Jail {
        Jail::unshare(&[])
    }

    fn unshare(extra: &[&str]) -> Jail {
        let unshare = Command::new("unshare")
            .args(extra)
            .args([
                "--mount", "--uts", "--ipc", "--net", "--fork", "sleep", "3600",
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = sleeping_child(unshare.id()).expect("jail did not start");
        Jail { unshare, pid }
    }

    /// A process of the jail running `sleep` as `uid` (an id inside the jail), killed on
    /// drop: another PID that names the jail, or a jail process a host user goes after.
    pub fn sleeper_as(&self, uid: u32) -> Sleeper {
        let id = uid.to_string();
        let nsenter = Command::new("nsenter")
            .args(["-t", &self.spec(), "-a", "-S", &id, "-G", &id])
            .args(["sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = sleeping_child(nsenter.id()).expect("no sleeper in the jail");
        Sleeper { nsenter, pid }
    }

    pub fn spec(&self) -> String {
        self.pid.to_string()
    }

    /// Runs `argv` inside every namespace of the jail, as `uid` (an id inside the jail).
    pub fn exec_as(&self, uid: u32, argv: &[&str]) -> Output {
        let pid = self.pid.to_string();
        let id = uid.to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-a", "-S", &id, "-G", &id])
            .args(argv)
            .output()
            .unwrap()
    }

    /// `pkill -SIG -f TITLE` inside the jail, as `uid`; true if a process was signalled.
    pub fn pkill(&self, uid: u32, signal: &str, title: &str) -> bool {
        self.exec_as(uid, &["pkill", &format!("-{signal}"), "-f", title])
            .status
            .success()
    }

    /// Host pids of the probes with this title that live in this jail's pid namespace.
    pub fn probes(&self, title: &str) -> Vec<u32> {
        let ns = |pid: u32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        host_pids_matching(title)
            .into_iter()
            .filter(|&p| ns(p).is_some() && ns(p) == ns(self.pid))
            .collect()
    }

    /// A process in the jail's pid namespace that sends signals on request: host root enters
    /// the jail to fire a probe, since a SIGHUP from outside it fires nothing. For tests that
    /// fire many probes, where a `nsenter` per signal would be slow.
    pub fn signaller(&self) -> Signaller {
        let script = r#"$| = 1; while (<STDIN>) { my ($s, $p) = split; print kill($s, $p) ? "1\n" : "0\n"; }"#;
        let mut child = Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-p", "perl", "-e", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let from = std::io::BufReader::new(child.stdout.take().unwrap());
        Signaller {
            child,
            to: Some(to),
            from,
        }
    }

    pub fn kill(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = self.unshare.wait();
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The host pid of `parent`'s first child once it runs `sleep` (inside the namespaces it
/// was started in), waiting up to 5 s for it.
fn sleeping_child(parent: u32) -> Option<u32> {
    let mut pid = 0;
    let ready = wait_for(Duration::from_secs(5), || {
        let children = fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        pid = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pid != 0 && fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
    });
    ready.then_some(pid)
}

/// See `Jail::sleeper_as`.
pub struct Sleeper {
    nsenter: Child,
    /// Its host pid.
    pub pid: u32,
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = self.nsenter.wait();
    }
}

/// See `Jail::signaller`.
pub struct Signaller {
    child: Child,
    to: Option<std::process::ChildStdin>,
    from: std::io::BufReader<std::process::ChildStdout>,
}

impl Signaller {
    /// Sends `signal` (a name: "HUP", "KILL") from inside the jail to the process with host pid
    /// `host`; true if it was sent.
    pub fn send(&mut self, signal: &str, host: u32) -> bool {
        use std::io::{BufRead, Write};
        let inner = inner_pid(host);
        let to = self.to.as_mut().unwrap();
        writeln!(to, "{signal} {inner}").unwrap();
        to.flush().unwrap();
        let mut answer = String::new();
        self.from.read_line(&mut answer).unwrap();
        answer == "1\n"
    }
}

impl Drop for Signaller {
    fn drop(&mut self) {
        // End of input ends the script, and nsenter with it.
        drop(self.to.take());
        let _ = self.child.wait();
    }
}

/// How many SIGHUPs the probe with host pid `probe` has ignored as sent from outside its jail
/// (it keeps that count as its timer slack, plus one: probe/probe.rs); `None` once it is gone.
pub fn ignored_sighups(probe: u32) -> Option<u64> {
    let slack = fs::read_to_string(format!("/proc/{probe}/timerslack_ns")).ok()?;
    Some(slack.trim().parse::<u64>().unwrap() - 1)
}

/// Runs `argv` on the host (no namespace entered) as uid and gid `id`, without groups.
pub fn as_host_uid(id: u32, argv: &[&str]) -> Output {
    let id = id.to_string();
    Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .args(argv)
        .output()
        .unwrap()
}

/// Host pids whose command line is exactly `title` (probes have argv `[title]`).
pub fn host_pids_matching(title: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline == [title.as_bytes(), b"\0"].concat() {
            pids.push(pid);
        }
    }
    pids
}

/// Runs `program` with `args`, stdin from /dev/null, and returns what it said.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `run`, failing the test unless `program` succeeded.
pub fn must(program: &str, args: &[&str]) -> Output {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The host pids of processes titled `title` in the pid namespace of host process `pid`.
pub fn probes_in(pid: u32, title: &str) -> Vec<u32> {
    let ns = |p: u32| fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    host_pids_matching(title)
        .into_iter()
        .filter(|&p| ns(p).is_some() && ns(p) == ns(pid))
        .collect()
}

/// Runs the binary with `args` as uid and gid 65534, without supplementary groups.
pub fn as_nobody<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            BIN,
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Lines in a file (0 if it does not exist).
pub fn lines(path: &Path) -> usize {
    fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// What most tests need: a directory, a file the command appends to, a daemon and a jail.
/// Fields drop in reverse order: jail, daemon, then the directory.
pub struct World {
    pub dir: TempDir,
    pub fired: PathBuf,
    pub daemon: Daemon,
    pub jail: Jail,
}

impl World {
    /// `None`, said loudly, when not root.
    pub fn new(test: &str) -> Option<World> {
        if !root_or_skip(test) {
            return None;
        }
        let dir = TempDir::new();
        let fired = dir.path("fired");
        let daemon = Daemon::start(&dir);
        let jail = Jail::new();
        Some(World {
            dir,
            fired,
            daemon,
            jail,
        })
    }
}

/// One raw exchange over the daemon's socket: sends `bytes`, then reads until the daemon
/// closes the connection. For requests the utility would never send.
pub fn exchange(socket: &Path, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The daemon may answer and close before it has read everything (a bad banner is refused
    // at its first bytes), so a failed write is not an error here.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Sends one request in the wire format and decodes the daemon's answer.
pub fn ask(socket: &Path, request: &jaildaemon::proto::Request) -> jaildaemon::proto::Response {
    let answer = exchange(socket, &jaildaemon::proto::encode(request));
    jaildaemon::proto::decode(&answer)
        .unwrap_or_else(|e| panic!("undecodable answer {answer:?}: {e}"))
        .unwrap_or_else(|| panic!("incomplete answer {answer:?}"))
}

/// The request the utility sends for `args` (`-c CMD -j JAIL …`), built by the utility's own
/// parser.
pub fn arm_request(args: &[&str]) -> jaildaemon::proto::Request {
    let argv = ["jaildaemon"]
        .iter()
        .chain(args)
        .map(std::ffi::OsString::from);
    match jaildaemon::cli::parse(argv) {
        Ok(jaildaemon::cli::Mode::Arm { request, .. }) => jaildaemon::proto::Request::Arm(request),
        other => panic!("{args:?} is not an arm request: {other:?}"),
    }
}

/// Descriptors the process `pid` holds now.
pub fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Pids of the zombie (state Z) children of `parent`, from /proc/*/stat.
pub fn zombie_children(parent: u32) -> Vec<u32> {
    children_in_state(parent, "Z")
}

/// Pids of the children of `parent` in `state` (`Z` zombie, `D` uninterruptible sleep).
pub fn children_in_state(parent: u32, wanted: &str) -> Vec<u32> {
    let mut zombies = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The command name may hold spaces and parentheses: the fields follow its last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next().and_then(|p| p.parse().ok()));
        if state == Some(wanted) && ppid == Some(parent) {
            zombies.push(pid);
        }
    }
    zombies
}

/// The host pid `host` as the innermost pid namespace it lives in numbers it (NSpid).
pub fn inner_pid(host: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{host}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    nspid.split_whitespace().last().unwrap().parse().unwrap()
}

/// Unmounts (lazily) on drop: a host mount that must not outlive a failed test.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

impl Jail {
    /// A jail whose root directory is `root`, not the host's: unshare chroots into it, as a
    /// container runtime pivots into its image. `root` gets the host's /usr, read-only
    /// (bind-mounted on the host only while unshare copies the mount namespace; the jail keeps
    /// its copy), so that `sleep`, `pkill` and their libraries are there.
    pub fn chrooted(root: &Path) -> Jail {
        for dir in ["usr", "proc", "tmp"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for link in ["bin", "sbin", "lib", "lib64"] {
            let _ = std::os::unix::fs::symlink(format!("usr/{link}"), root.join(link));
        }
        let usr = root.join("usr");
        let bound = Command::new("mount")
            .args(["--bind", "-o", "ro", "/usr"])
            .arg(&usr)
            .status();
        assert!(bound.unwrap().success(), "cannot bind /usr");
        let _unmount = Unmount(&usr);
        // Read-only, so that removing the test's directory can never reach the host's /usr,
        // even if the unmount failed.
        let read_only = rustix::fs::statvfs(&usr)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
        assert!(read_only, "the bind of /usr is not read-only");
        Jail::spawn(&[&format!("--root={}", root.display())])
    }

    /// `exec_as` in the jail's own root and working directory (nsenter -r -w), for a jail made
    /// by `chrooted`.
    pub fn exec_rooted_as(&self, uid: u32, argv: &[&str]) -> Output {
        let (pid, id) = (self.pid.to_string(), uid.to_string());
        let nsenter = ["-t", &pid, "-a", "-r", "-w", "-S", &id, "-G", &id];
        Command::new("nsenter")
            .args(nsenter)
            .args(argv)
            .output()
            .unwrap()
    }
}

impl Jail {
    /// A jail whose root directory is `root` and nothing of the host's: unshare chroots into
    /// it and runs its `sleep`, so `root` must hold one (see `busybox_root`, `slim_root`).
    pub fn in_root(root: &Path) -> Jail {
        Jail::spawn(&[&format!("--root={}", root.display())])
    }
}

/// Makes `root` a minimal image's root: /proc, /tmp, and a /dev with null, as every real
/// image has; shells redirect to /dev/null.
fn image_skeleton(root: &Path) {
    for dir in ["bin", "etc", "proc", "tmp", "dev"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    let null = root.join("dev/null");
    if !null.exists() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &null,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
}

/// A root like a busybox image (Alpine without its packages, or `busybox:latest`): the host's
/// static busybox (package busybox-static) and its applets, no procps. `None`, said loudly,
/// without it.
pub fn busybox_root(root: &Path) -> Option<()> {
    let busybox = fs::read("/bin/busybox").unwrap_or_default();
    // A static ELF has no PT_INTERP; a dynamic one would not run in a root without its libc.
    if busybox.is_empty() || busybox.windows(16).any(|w| w == b"/lib64/ld-linux-") {
        say_skipped("busybox root: /bin/busybox is missing or dynamic (package busybox-static)");
        return None;
    }
    image_skeleton(root);
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "sleep", "cat", "ps", "kill", "killall", "pidof", "echo",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    Some(())
}

/// A root like a slim Debian image without procps (`debian:bookworm-slim`): dash as /bin/sh,
/// sysvinit's pidof, coreutils' sleep, and the libraries they load; no pkill, no ps.
pub fn slim_root(root: &Path) -> Option<()> {
    let tools = [
        ("/bin/dash", "bin/sh"),
        ("/usr/sbin/killall5", "bin/killall5"),
        ("/bin/sleep", "bin/sleep"),
    ];
    if let Some((missing, _)) = tools.iter().find(|(host, _)| !Path::new(host).exists()) {
        say_skipped(&format!(
            "slim root: {missing} is missing (packages dash, sysvinit-utils, coreutils)"
        ));
        return None;
    }
    image_skeleton(root);
    for (host, inside) in tools {
        fs::copy(host, root.join(inside)).unwrap();
        // Every library ldd names, at the same path inside.
        let ldd = Command::new("ldd").arg(host).output().unwrap();
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let to = root.join(lib.trim_start_matches('/'));
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(lib, &to).unwrap();
        }
    }
    // pidof is killall5 under that name, as Debian installs it.
    std::os::unix::fs::symlink("killall5", root.join("bin/pidof")).unwrap();
    Some(())
}

/// `-l --json`: every probe the daemon holds, as the utility prints them.
pub fn list(daemon: &Daemon) -> Vec<jaildaemon::proto::ProbeInfo> {
    let out = daemon.util(&["-l", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("-l --json is JSON")
}

/// The probe titled `title` in a listing; a test fails when there is none.
pub fn by_title<'a>(
    probes: &'a [jaildaemon::proto::ProbeInfo],
    title: &str,
) -> &'a jaildaemon::proto::ProbeInfo {
    probes
        .iter()
        .find(|p| p.title == title)
        .unwrap_or_else(|| panic!("no probe {title} in {probes:#?}"))
}

/// The smallest exec'd static process, as C source: a freestanding static executable whose
/// only code waits for a signal, for ever. It is what an idle probe's memory is compared with
/// (tests/e2e.rs, the bench's idle probe cost): one process's kernel memory (task, kernel
/// stack, page tables, mm and its areas) and the stack page exec fills.
const SMALLEST_STATIC_PROGRAM: &str = r#"
void _start(void) {
    for (;;) {
#if defined(__x86_64__)
        __asm__ volatile("syscall" : : "a"(34) : "rcx", "r11", "memory"); /* pause */
#elif defined(__aarch64__)
        /* ppoll with no descriptors and no timeout: waits for a signal, as pause would */
        register long nr __asm__("x8") = 73;
        register long fds __asm__("x0") = 0;
        register long n __asm__("x1") = 0;
        register long timeout __asm__("x2") = 0;
        register long mask __asm__("x3") = 0;
        __asm__ volatile("svc 0" : "+r"(fds) : "r"(nr), "r"(n), "r"(timeout), "r"(mask) : "memory");
#else
#error "no pause for this architecture"
#endif
    }
}
"#;

/// Builds the smallest exec'd static process into `dir` with the C compiler that links Rust
/// programs here (`cc`), linked as a toolchain links a static executable (no PIE, at its
/// usual address), and returns its path.
pub fn smallest_static_program(dir: &Path) -> PathBuf {
    let source = dir.join("smallest-static.c");
    fs::write(&source, SMALLEST_STATIC_PROGRAM).unwrap();
    let program = dir.join("smallest-static");
    must(
        "cc",
        &[
            "-static",
            "-nostdlib",
            "-O2",
            "-fno-pie",
            "-no-pie",
            "-o",
            program.to_str().unwrap(),
            source.to_str().unwrap(),
        ],
    );
    program
}
