//! FreeBSD backend: a jail is named by jid or name and entered with jail_attach(2).
//!
//! Status: type-checked against FreeBSD's libc bindings only; no FreeBSD machine has run it.
//! The probe here is a fork of the daemon that never execs, so unlike on Linux it holds a copy
//! of the daemon's memory; PROC_TRACE_CTL keeps jail root from reading it.

pub(crate) mod pure;
mod raw;

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Kind};
use crate::sys::posix::{self, Exit, Forked, PeerCredentials};

fn decode_status(status: i32) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Signal(0)
    }
}

/// A child of the daemon, watched through a kqueue (EVFILT_PROC) and waited on while it is
/// still our unreaped child, so its pid cannot have been recycled.
#[derive(Debug)]
pub struct Process {
    pid: i32,
    exit_queue: OwnedFd,
}

impl Process {
    pub fn from_own_child(pid: u32) -> io::Result<Self> {
        Ok(Process {
            pid: pid as i32,
            exit_queue: raw::exit_queue(pid as i32)?,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.exit_queue.as_fd()
    }

    pub fn try_wait(&self) -> io::Result<Option<Exit>> {
        Ok(raw::wait_child(self.pid, false)?.map(decode_status))
    }

    pub fn wait(&self) -> io::Result<Exit> {
        loop {
            match raw::wait_child(self.pid, true) {
                Ok(Some(status)) => return Ok(decode_status(status)),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn kill(&self) {
        raw::kill_child(self.pid, libc::SIGKILL);
    }
}

/// Host settings the probe leans on that are wrong; none known on FreeBSD.
pub fn host_warnings() -> Vec<String> {
    Vec::new()
}

/// Nothing to load: the FreeBSD probe is a fork of the daemon.
pub struct Spawner;

impl Spawner {
    pub fn load() -> io::Result<Self> {
        Ok(Spawner)
    }
}

/// A running jail, by jid, with its root path for reading its user database.
#[derive(Debug)]
pub struct Jail {
    jid: i32,
    path: Vec<u8>,
    /// The name it was given by, to look its jid up again right before each attach.
    name: Option<String>,
}

impl Jail {
    /// Resolves `spec`, a jid or a jail name, as jaildaemon 0.2 did.
    pub fn open(spec: &str) -> Result<Jail, Error> {
        let no_jail = |why: String| Error::new(Kind::NoJail, format!("jail '{spec}': {why}"));
        let key = pure::jail_key(spec).map_err(&no_jail)?;
        let (jid, path) =
            raw::jail_lookup(&key).map_err(|e| no_jail(format!("no such jail ({e})")))?;
        let name = match key {
            pure::JailKey::Name(name) => Some(name.to_string()),
            pure::JailKey::Jid(_) => None,
        };
        Ok(Jail { jid, path, name })
    }

    /// A jail named by name still has the jid it had: a jail removed and created again under
    /// that name has a new one, and a probe for the old jail must not go into it.
    fn check_same(&self) -> Result<(), Error> {
        let Some(name) = &self.name else {
            return Ok(());
        };
        match raw::jail_lookup(&pure::JailKey::Name(name)) {
            Ok((jid, _)) if jid == self.jid => Ok(()),
            _ => Err(Error::new(
                Kind::NoJail,
                format!("jail '{name}' (jid {}) is gone", self.jid),
            )),
        }
    }

    pub fn id(&self) -> i32 {
        self.jid
    }

    /// Reads a small regular file below the jail's root without following links out of it.
    pub fn read_file(&self, relative: &str) -> io::Result<String> {
        let root = fs::File::open(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&self.path),
        )?;
        // O_RESOLVE_BENEATH: neither `..` nor a symlink may lead out of the jail's root.
        let beneath = rustix::fs::OFlags::from_bits_retain(libc::O_RESOLVE_BENEATH as _);
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::CLOEXEC
            | rustix::fs::OFlags::NONBLOCK
            | beneath;
        let fd = rustix::fs::openat(&root, relative, flags, rustix::fs::Mode::empty())?;
        posix::read_small_file(fd)
    }

    /// Nothing to watch: a removed jail kills its processes, so its probes end, and that is
    /// how the daemon learns of it.
    pub fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// FreeBSD jails share the host's user ids: every id exists in them.
    pub fn check_ids(&self, _uid: u32, _gid: u32) -> Result<(), Error> {
        Ok(())
    }
}

/// Forks the probe: it closes every descriptor but its status pipe, attaches to the jail,
/// drops to `uid`/`gid` (setgroups, setgid, setuid, in that order), makes itself untraceable,
/// no-new-privs and killed with the daemon, takes `title`, reports, and waits for SIGHUP.
#[allow(unsafe_code)]
pub fn spawn_probe(
    _spawner: &mut Spawner,
    jail: &Jail,
    title: &CStr,
    uid: u32,
    gid: u32,
) -> Result<Process, Error> {
    let os = |what: &str, e: io::Error| Error::os(what.to_string(), e);
    // The jid is looked up again right before use (FreeBSD reuses no jid soon, but a jail
    // restarted under its name has a new one).
    jail.check_same()?;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| os("pipe", e.into()))?;
    // SAFETY: the daemon is single-threaded and the child runs only `probe_main`, which makes
    // async-signal-safe calls and never returns.
    let pid = match unsafe { posix::fork() }.map_err(|e| os("fork", e))? {
        Forked::Child => probe_main(writer.as_fd(), jail.jid, title, uid, gid),
        Forked::Parent(pid) => pid,
    };
    drop(writer);
    let probe = Process::from_own_child(pid as u32).map_err(|e| os("watching the probe", e))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status = [0u8; 5];
    let mut got = 0;
    while got < status.len() && Instant::now() < deadline {
        match rustix::io::read(&reader, &mut status[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    let Err((stage, errno)) = pure::read_status(&status, got) else {
        return Ok(probe);
    };
    probe.kill();
    let _ = probe.wait();
    Err(Error::new(
        Kind::Os,
        format!(
            "probe for jail {}: {stage} failed: {}",
            jail.jid,
            io::Error::from_raw_os_error(errno)
        ),
    ))
}

fn probe_main(status: BorrowedFd<'_>, jid: i32, title: &CStr, uid: u32, gid: u32) -> ! {
    let fail = |stage: u8, err: io::Error| -> ! {
        let e = err.raw_os_error().unwrap_or(0).to_ne_bytes();
        let _ = posix::write_all_raw(raw::status_fd(), &[stage, e[0], e[1], e[2], e[3]]);
        posix::exit_now(1)
    };
    raw::reset_signals(&[libc::SIGHUP]);
    // Past this point the status pipe is fd 3; without it there is nobody to report to.
    if raw::keep_only_fd(status).is_err() {
        posix::exit_now(1);
    }
    let attached =
        raw::jail_attach(jid).and_then(|()| rustix::process::chdir(c"/").map_err(io::Error::from));
    if let Err(e) = attached {
        fail(pure::STAGE_ATTACH, e);
    }
    if let Err(e) = rustix::process::setsid() {
        fail(pure::STAGE_SESSION, e.into());
    }
    let ids = raw::set_ids(uid, gid);
    if let Err(e) = ids {
        fail(pure::STAGE_IDS, e.into());
    }
    if let Err(e) = raw::confine_self() {
        fail(pure::STAGE_CONFINE, e);
    }
    raw::set_title(title);
    if posix::write_all_raw(raw::status_fd(), &[pure::ARMED, 0, 0, 0, 0]).is_err() {
        posix::exit_now(1);
    }
    raw::wait_for_sighup();
    posix::exit_now(i32::from(crate::MAGIC_EXIT))
}

/// Runs `/bin/sh -c command` on the host with exactly `env`, in `/`, with stdin from /dev/null
/// and stdout and stderr into a pipe, whose read end (non-blocking) is returned.
pub fn spawn_command(
    _spawner: &mut Spawner,
    command: &str,
    env: &[(&str, &str)],
) -> io::Result<(Process, OwnedFd)> {
    use std::process::Stdio;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&reader, true)?;
    let stderr = writer.try_clone()?;
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(stderr))
        .spawn()?;
    Ok((Process::from_own_child(child.id())?, reader))
}

/// Readiness of many descriptors at once (a kqueue with EVFILT_READ), level-triggered, each
/// under a token.
pub struct Poller {
    kqueue: OwnedFd,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            kqueue: raw::empty_kqueue()?,
        })
    }

    /// Reports `fd` under `token` while it is readable, until `remove`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        raw::watch_readable(self.kqueue.as_fd(), fd, token, true)
    }

    /// Stops reporting `fd`; one that was not added is no error.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = raw::watch_readable(self.kqueue.as_fd(), fd, 0, false);
    }

    /// Waits up to `timeout` (for ever without one) and puts the ready tokens in `ready`.
    pub fn wait(&self, timeout: Option<Duration>, ready: &mut Vec<u64>) -> io::Result<()> {
        raw::readable_tokens(self.kqueue.as_fd(), timeout, ready)
    }
}

pub fn signalfd(signals: &[i32]) -> io::Result<OwnedFd> {
    raw::signal_queue(signals)
}

pub fn read_signalfd(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    Ok(raw::next_event(fd)?.map(|s| s as i32))
}

pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let (uid, gid, groups, pid) = raw::peer_credentials(fd)?;
    Ok(PeerCredentials {
        pid,
        uid,
        gid,
        groups,
    })
}
