//! FreeBSD backend: a jail is named by jid or name and entered with jail_attach(2).
//!
//! Status: type-checked against FreeBSD's libc bindings only; no FreeBSD machine has run it.
//! The probe here is a fork of the daemon that never execs, so unlike on Linux it holds a copy
//! of the daemon's memory; PROC_TRACE_CTL keeps jail root from reading it.

pub(crate) mod pure;
mod raw;

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Kind};
use crate::sys::Pid;
use crate::sys::posix::{self, Exit, Forked, PeerCredentials};

/// How long a placement may take, from the first fork to the last "armed".
pub const PLACEMENT_DEADLINE: Duration = Duration::from_secs(5);

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
    pid: Pid,
    exit_queue: OwnedFd,
}

impl Process {
    pub fn from_own_child(pid: Pid) -> io::Result<Self> {
        Ok(Process {
            pid,
            exit_queue: raw::exit_queue(pid)?,
        })
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.exit_queue.as_fd()
    }

    pub fn try_wait(&self) -> io::Result<Option<Exit>> {
        Ok(raw::wait_child(self.pid, false)?.map(decode_status))
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

/// A jail being opened: on FreeBSD always at once (jail_get is one system call).
pub enum Opening {
    Ready(Result<Jail, Error>),
    Looking(Lookup),
}

/// A lookup that needs to wait for a tool: none on FreeBSD, where this type has no value
/// (its field is private, so the code above the seam stays the same on both systems).
pub struct Lookup {
    never: std::convert::Infallible,
}

impl Lookup {
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }

    pub fn deadline(&self) -> Instant {
        match self.never {}
    }

    pub fn take_leftovers(&mut self) -> Vec<Process> {
        match self.never {}
    }

    pub fn step(&mut self, _now: Instant) -> Option<Result<Jail, Error>> {
        match self.never {}
    }
}

impl Jail {
    /// Opens the jail `spec` names: a jid or a jail name, as jaildaemon 0.2 did.
    pub fn open(spec: &str, _now: Instant) -> Opening {
        Opening::Ready(Jail::look_up(spec))
    }

    fn look_up(spec: &str) -> Result<Jail, Error> {
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

/// One probe to place: its title and its ids inside the jail.
pub struct ProbeRequest {
    pub title: CString,
    pub uid: u32,
    pub gid: u32,
}

/// One forked probe of a placement and what it reported so far.
struct Forking {
    process: Process,
    /// Its status pipe, until it has said armed or failed, or closed it.
    reader: Option<OwnedFd>,
    status: [u8; 5],
    got: usize,
}

/// Probes being placed in a jail: each is forked at once and reports on a status pipe of its
/// own; the daemon watches all of them through one kqueue and never waits for one.
pub struct Placement {
    jid: i32,
    watch: Poller,
    probes: Vec<Forking>,
    /// Probes that could not even be forked.
    failed: Vec<(usize, Error)>,
    deadline: Instant,
}

/// How a placement ended: per probe, its process or why it is not placed; and the processes
/// the daemon must reap.
pub struct Placed {
    pub results: Vec<Result<Process, Error>>,
    pub leftovers: Vec<Process>,
}

impl Placement {
    /// Forks one probe per request: each closes every descriptor but its status pipe,
    /// attaches to the jail, drops to its ids, makes itself untraceable, no-new-privs and
    /// killed with the daemon, takes its title, reports, and waits for SIGHUP.
    #[allow(unsafe_code)]
    pub fn start(
        _spawner: &mut Spawner,
        jail: &Jail,
        probes: &[ProbeRequest],
        now: Instant,
    ) -> Result<Placement, Error> {
        let os = |what: &str, e: io::Error| Error::os(what.to_string(), e);
        // The jid is looked up again right before use (FreeBSD reuses no jid soon, but a jail
        // restarted under its name has a new one).
        jail.check_same()?;
        let watch = Poller::new().map_err(|e| os("kqueue", e))?;
        let mut placement = Placement {
            jid: jail.jid,
            watch,
            probes: Vec::new(),
            failed: Vec::new(),
            deadline: now + PLACEMENT_DEADLINE,
        };
        for (index, request) in probes.iter().enumerate() {
            match fork_probe(jail.jid, request) {
                Ok((process, reader)) => {
                    let watched = placement.watch.add(reader.as_fd(), index as u64);
                    if let Err(e) = watched {
                        process.kill();
                        placement.failed.push((index, os("kevent", e)));
                        // Still reaped by the daemon, as a leftover.
                        placement.probes.push(Forking {
                            process,
                            reader: None,
                            status: [0; 5],
                            got: 0,
                        });
                        continue;
                    }
                    placement.probes.push(Forking {
                        process,
                        reader: Some(reader),
                        status: [0; 5],
                        got: 0,
                    });
                }
                Err(e) => placement.failed.push((index, e)),
            }
        }
        Ok(placement)
    }

    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Reads what the probes reported; true once every one has said armed or failed.
    pub fn step(&mut self) -> bool {
        for probe in &mut self.probes {
            let Some(reader) = &probe.reader else {
                continue;
            };
            let done = loop {
                if probe.got == probe.status.len() {
                    break true;
                }
                match rustix::io::read(reader, &mut probe.status[probe.got..]) {
                    Ok(0) => break true,
                    Ok(n) => probe.got += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(rustix::io::Errno::AGAIN) => break false,
                    Err(_) => break true,
                }
            };
            if done {
                self.watch.remove(reader.as_fd());
                probe.reader = None;
            }
        }
        self.probes.iter().all(|p| p.reader.is_none())
    }

    /// Ends the placement, done or at its deadline; a probe that has not said "armed" is
    /// killed.
    pub fn finish(mut self, _jail: Option<&Jail>) -> Placed {
        self.step();
        let mut leftovers = Vec::new();
        let mut results: Vec<Option<Result<Process, Error>>> = Vec::new();
        let failed = std::mem::take(&mut self.failed);
        let mut probes = self.probes.into_iter();
        let total = probes.len() + failed.len();
        for index in 0..total {
            if let Some((_, e)) = failed.iter().find(|(i, _)| *i == index) {
                results.push(Some(Err(e.clone())));
                continue;
            }
            let Some(probe) = probes.next() else { break };
            let status = if probe.reader.is_some() {
                Err(Error::new(
                    Kind::Timeout,
                    format!(
                        "probe for jail {} did not start within {} s",
                        self.jid,
                        PLACEMENT_DEADLINE.as_secs()
                    ),
                ))
            } else {
                pure::read_status(&probe.status, probe.got).map_err(|(stage, errno)| {
                    Error::new(
                        Kind::Os,
                        format!(
                            "probe for jail {}: {stage} failed: {}",
                            self.jid,
                            io::Error::from_raw_os_error(errno)
                        ),
                    )
                })
            };
            match status {
                Ok(()) => results.push(Some(Ok(probe.process))),
                Err(e) => {
                    probe.process.kill();
                    leftovers.push(probe.process);
                    results.push(Some(Err(e)));
                }
            }
        }
        Placed {
            results: results.into_iter().flatten().collect(),
            leftovers,
        }
    }
}

/// Forks one probe for jail `jid`; returns it and the read end of its status pipe.
#[allow(unsafe_code)]
fn fork_probe(jid: i32, request: &ProbeRequest) -> Result<(Process, OwnedFd), Error> {
    let os = |what: &str, e: io::Error| Error::os(what.to_string(), e);
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| os("pipe", e.into()))?;
    rustix::io::ioctl_fionbio(&reader, true).map_err(|e| os("status pipe", e.into()))?;
    // SAFETY: the daemon is single-threaded and the child runs only `probe_main`, which makes
    // async-signal-safe calls and never returns.
    let pid = match unsafe { posix::fork() }.map_err(|e| os("fork", e))? {
        Forked::Child => probe_main(
            writer.as_fd(),
            jid,
            &request.title,
            request.uid,
            request.gid,
        ),
        Forked::Parent(pid) => pid,
    };
    drop(writer);
    let process = Process::from_own_child(pid).map_err(|e| os("watching the probe", e))?;
    Ok((process, reader))
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
    Ok((Process::from_own_child(child.id() as Pid)?, reader))
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

    /// Reports `fd` under `token` while it is writable, until `remove`.
    pub fn add_writable(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        raw::watch(self.kqueue.as_fd(), fd, libc::EVFILT_WRITE, token, true)
    }

    /// Stops reporting `fd`; one that was not added is no error.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = raw::watch_readable(self.kqueue.as_fd(), fd, 0, false);
        let _ = raw::watch(self.kqueue.as_fd(), fd, libc::EVFILT_WRITE, 0, false);
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

/// A kqueue is itself readable when one of its events is pending: a placement's own queue is
/// watched by the daemon's.
impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.kqueue.as_fd()
    }
}
