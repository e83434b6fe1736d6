//! FreeBSD backend: a jail is named by jid or name and entered with jail_attach(2).
//!
//! `src/sys/freebsd/` exports the same names as the Linux backend.
//! No FreeBSD machine exists here.
//! CI type-checks it against the libc crate's FreeBSD bindings, links it for x86_64 FreeBSD with zig's libc stubs (`cargo-zigbuild`, see `.ci/run`), and checks the ELF with `dist/freebsd/check-elf.sh`; nothing of it has run.
//! Its pure parts (reading `-j` as jid or name, jid 0 refused; the status pipe and its records about ids) are in `src/sys/freebsd/pure.rs`, which is also compiled and unit-tested on Linux.
//!
//! **Placing a probe (`spawn_probe`).**
//! The daemon forks a child, which resets every signal disposition and blocks SIGHUP, SIGUSR1 and SIGUSR2 (a signal sent before the probe sets its own mask waits for it), keeps only the status pipe (fd 3) and the probe image (fd 4), both close-on-exec, and then, each step its own function:
//! marks itself untraceable, no-new-privs and killed with the daemon (procctl; before the jail can see it, so no jail process ever finds a traceable copy of the daemon's memory), attaches to the jail and changes to its root, starts a session, resolves its `-u`/`-g` names in the jail's own `/etc/passwd` and `/etc/group` (opened beneath the root with `O_RESOLVE_BENEATH`, non-blocking, read into a buffer the daemon made before the fork, and only when the file changed since the version whose answer the daemon passed down; it reports what it read and the ids in records before "armed", `pure::read_resolution`), drops to those ids (setgroups, setgid, setuid), writes "armed", and execs the image with `fexecve` with the argv and environment the Linux probe gets (argv the title, then the status words of `--status`; the environment its verbs alone, `USR1=SECS`), both built before the fork.
//! The daemon takes end-of-file after "armed" as the exec; a failed step, or a failed exec after "armed", sends its stage and errno instead.
//! `PROC_TRACE_CTL_DISABLE` and the death signal survive the exec (only `PROC_TRACE_CTL_DISABLE_EXEC` ends at exec, and the death signal only at a set-id exec); no-new-privs does too.
//!
//! **The probe (`probe/freebsd.rs`)** is the FreeBSD twin of `probe/probe.rs`: freestanding, static, no libc, under a kilobyte of code.
//! Its `_start` hands the initial stack (`rdi` on amd64, `x0` on arm64, as FreeBSD's exec sets them) to `probe_main`, which reads the verbs from the environment with the Linux probe's code (`probe/verbs.rs`, shared by `include!`, with the state of the confirmation windows).
//! It sets its mask to SIGHUP and its verbs, waits with `sigtimedwait` (with a timeout only while a confirmation window is open, measured with `clock_gettime(CLOCK_MONOTONIC)`), and exits with `MAGIC_EXIT`, `USR1_EXIT` or `USR2_EXIT`; every other signal keeps its default action.
//! It takes such a signal only from a sender inside its jail (`probe/freebsd_sender.rs`, shared by `include!` with `tests/freebsd.rs`, which runs it on Linux): the `siginfo_t` that `sigtimedwait` fills must carry a code that names the sender (`SI_USER`, `SI_QUEUE`, `SI_LWP`), and `kill(si_pid, 0)` must not fail with `ESRCH`, which is what a jailed process gets for any process outside its jail; it ignores the rest, uncounted (SECURITY.md).
//! Its argv is its title, then any status words, so `pkill -f TITLE` matches it; a title of at most 200 bytes and the status words (at most 50 bytes) fit the kernel's argument cache (`kern.ps_arg_cache_limit`, 256 bytes by default), so `ps` and `pkill` read it without reading the probe's memory.
//! It is branded FreeBSD twice: by its `.note.tag` ABI note (which also names release 14.0, so the kernel gives it current behaviour) and by `EI_OSABI`, which `build.rs` sets.
//! Its kernel numbers are in `probe/freebsd_abi.rs`, shared with the backend: those the libc crate defines are compared at compile time in the FreeBSD build, and all of them, syscall numbers included, against FreeBSD's own headers (zig's copy) by `tests/freebsd.rs`.
//! A cross build from Linux has no `core` for a FreeBSD target that a build script could use (`-Zbuild-std` builds it for cargo's units only), so `build.rs` compiles the probe there for the Linux host's target of the same architecture: a freestanding program uses nothing of `core` that differs between the two systems, and its kernel interface is its own assembly. On FreeBSD it is compiled for FreeBSD.
//!
//! **Why the image is not a memfd.**
//! FreeBSD has `memfd_create` and `shm_open(SHM_ANON)` with seals, but it executes only vnodes: `fexecve` takes the descriptor's vnode (`fgetvp_exec`, `_fgetvp` in sys/kern/kern_descrip.c), which fails with EINVAL for a descriptor without one, and a shared memory descriptor has none (`kern_shm_open2` in sys/kern/uipc_shm.c sets it up as `DTYPE_SHM` with no vnode).
//! So at start the daemon writes the image into a new file in `/var/run` (created exclusively, mode 0111), opens it again with `O_EXEC` only, checks that it is the same file (device, inode, size, mode, owner root), and unlinks it.
//! From then on the image has no name: only the daemon's exec-only descriptor reaches it, nothing can open it for writing, and its path cannot be found from a jail.
//! A `/var/run` mounted noexec stops the daemon at start with that reason.
//! What this does not give, compared with Linux: no seals (nothing can write the file anyway, since nothing can open it), and no equivalent of Linux's `would_dump` rule; the probe's protection against a jail root reading it is `PROC_TRACE_CTL_DISABLE` and the ids `-u`/`-g` gave it.
//!
//! **What differs from Linux and is not covered.**
//! The probe's `comm` (what `ps -o comm` and a plain `pgrep` match) is not its title: FreeBSD has no call to set it, and for an `fexecve` the kernel takes the image file's name if its name cache still holds one, else `(fexecv)` (`do_execve` in sys/kern/kern_exec.c); match with `pkill -f`.
//! The child holds a copy of the daemon's memory from the fork until the exec, untraceable from before it enters the jail.
//! None of this has run on FreeBSD; the first run there should check the exec from the unlinked image, the brand of the probe, and `pkill -f` inside a jail.

pub(crate) mod pure;
mod raw;

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::time::{Duration, Instant};

use crate::error::{Error, Kind};
use crate::sys::posix::Pid;
use crate::sys::posix::{self, Exit, Forked, PeerCredentials};
use crate::userdb::{self, Answer, Cache, File, Identity, Query, Refusal};

/// How long a placement may take, from the first fork to the last exec.
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

    /// Sends `signal`; a process that is already gone is not an error.
    pub fn signal(&self, signal: rustix::process::Signal) {
        raw::kill_child(self.pid, signal.as_raw());
    }
}

/// Host settings the probe leans on that are wrong; none known on FreeBSD.
pub fn host_warnings() -> Vec<String> {
    Vec::new()
}

/// The probe's kernel numbers, shared with `probe/freebsd.rs`.
#[allow(dead_code)]
mod probe_abi {
    include!("../../../probe/freebsd_abi.rs");
}

// Every number of the probe that the libc crate also knows must be the libc crate's: a
// mismatch stops this build (the FreeBSD type-check and link in CI). The syscall numbers,
// which the libc crate does not define for FreeBSD, are checked by tests/freebsd.rs against
// FreeBSD's headers.
const _: () = {
    assert!(probe_abi::SIGHUP == libc::SIGHUP as usize);
    assert!(probe_abi::SIG_SETMASK == libc::SIG_SETMASK as usize);
    assert!(probe_abi::SIGUSR1 == libc::SIGUSR1 as usize);
    assert!(probe_abi::SIGUSR2 == libc::SIGUSR2 as usize);
    assert!(probe_abi::EINTR == libc::EINTR as usize);
    assert!(probe_abi::EAGAIN == libc::EAGAIN as usize);
    assert!(probe_abi::EPERM == libc::EPERM as usize);
    assert!(probe_abi::ESRCH == libc::ESRCH as usize);
    // The probe reads the sender out of the siginfo_t that sigtimedwait writes.
    assert!(std::mem::size_of::<libc::siginfo_t>() == probe_abi::SIGINFO_SIZE);
    assert!(std::mem::offset_of!(libc::siginfo_t, si_code) == probe_abi::SIGINFO_CODE);
    assert!(std::mem::offset_of!(libc::siginfo_t, si_pid) == probe_abi::SIGINFO_PID);
    assert!(probe_abi::CLOCK_MONOTONIC == libc::CLOCK_MONOTONIC as usize);
    assert!(std::mem::size_of::<libc::timespec>() == 16);
    assert!(std::mem::size_of::<libc::sigset_t>() == probe_abi::SIGSET_WORDS * 4);
    assert!(std::mem::align_of::<libc::sigset_t>() == 4);
};

/// The FreeBSD probe, built by build.rs from `probe/freebsd.rs`.
static PROBE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe"));

/// Where the probe image is written and at once unlinked: a directory only root may write to,
/// on a file system that allows exec.
const IMAGE_DIR: &str = "/var/run";

/// Holds the probe image: an unlinked, execute-only file, open with O_EXEC only.
pub struct Spawner {
    image: OwnedFd,
}

impl Spawner {
    /// Writes the probe image to a new file in [`IMAGE_DIR`], opens it again for exec only,
    /// checks that it is the file written, and unlinks it. From then on it has no name: only
    /// this descriptor reaches it, and it cannot write.
    pub fn load() -> io::Result<Self> {
        let path = format!("{IMAGE_DIR}/jaildaemon-probe.{}", std::process::id());
        // A leftover of a daemon that had our pid and died between these lines.
        let _ = fs::remove_file(&path);
        let written = write_image(&path);
        let image = written.and_then(|meta| {
            let image = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_EXEC | libc::O_NOFOLLOW)
                .open(&path)?;
            let opened = image.metadata()?;
            if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino())
                || !opened.is_file()
                || opened.len() != PROBE_BYTES.len() as u64
                || opened.mode() & 0o7777 != 0o111
                || opened.uid() != 0
            {
                return Err(io::Error::other("it changed while it was written"));
            }
            Ok(OwnedFd::from(image))
        });
        let _ = fs::remove_file(&path);
        let image = image.map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        Ok(Spawner { image })
    }
}

/// Creates `path` (never an existing file or link) with the probe image in it, mode 0111
/// whatever the umask: anyone may exec it, nobody read it.
fn write_image(path: &str) -> io::Result<fs::Metadata> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o100)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if raw::mounted_noexec(file.as_fd())? {
        return Err(io::Error::other(format!(
            "{IMAGE_DIR} is on a file system mounted noexec: the probe cannot be exec'd from it"
        )));
    }
    io::Write::write_all(&mut file, PROBE_BYTES)?;
    file.set_permissions(fs::Permissions::from_mode(0o111))?;
    // The written descriptor is closed here: an image still open for writing cannot be exec'd.
    file.metadata()
}

/// A running jail, by jid.
#[derive(Debug)]
pub struct Jail {
    jid: i32,
    /// The name it was given by, to look its jid up again right before each attach.
    name: Option<String>,
    /// What its user database answered at the last placements, with the files' identities:
    /// a probe's child reads a file again only once it changed.
    userdb: Box<Cache>,
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

/// A selector's listing: none on FreeBSD, where the container managers it asks do not run;
/// `start` says so, and the type has no value.
pub struct Survey {
    never: std::convert::Infallible,
}

impl Survey {
    pub fn start(_selector: crate::selector::Selector, _now: Instant) -> Result<Survey, Error> {
        Err(Error::new(
            Kind::NoJail,
            "selectors list Docker, Podman and containerd containers: Linux only",
        ))
    }

    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }

    pub fn deadline(&self) -> Instant {
        match self.never {}
    }

    pub fn take_leftovers(&mut self) -> Vec<Process> {
        match self.never {}
    }

    pub fn abandon(self) -> Vec<Process> {
        match self.never {}
    }

    pub fn step(&mut self, _now: Instant) -> Option<Result<Vec<crate::selector::Member>, String>> {
        match self.never {}
    }
}

/// A container manager's event stream: none on FreeBSD (`start` says so).
pub struct EventStream {
    never: std::convert::Infallible,
}

impl EventStream {
    pub fn start(_argv: &[String]) -> io::Result<EventStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "container event streams are Linux only",
        ))
    }

    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }

    pub fn read_lines(&mut self) -> (Vec<String>, bool) {
        match self.never {}
    }

    pub fn stop(self) -> Process {
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
        let (jid, _path) =
            raw::jail_lookup(&key).map_err(|e| no_jail(format!("no such jail ({e})")))?;
        let name = match key {
            pure::JailKey::Name(name) => Some(name.to_string()),
            pure::JailKey::Jid(_) => None,
        };
        Ok(Jail {
            jid,
            name,
            userdb: Box::default(),
        })
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

    /// What tells two names of one running jail apart from two jails: its jid.
    pub fn identity(&self) -> (u64, u64) {
        (0, self.jid as u64)
    }

    /// A FreeBSD jail has no user namespace: its uids are the host's, and a host process may
    /// debug a jailed process of its uid (`security.bsd.unprivileged_proc_debug`), so it can
    /// make one signal a probe of that uid (SECURITY.md).
    pub fn shares_host_users(&self) -> bool {
        true
    }

    /// Container managers are a Linux matter: a FreeBSD jail is named by jid or name itself.
    pub fn container(&self) -> Option<(&str, &str)> {
        None
    }

    /// A jail sees no process outside it, and the FreeBSD probe takes only a signal from a
    /// sender it sees (`probe/freebsd_sender.rs`): a host process's SIGHUP fires nothing.
    pub fn shares_host_pids(&self) -> bool {
        false
    }

    /// Nothing to watch: a removed jail kills its processes, so its probes end, and that is
    /// how the daemon learns of it.
    pub fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// One probe to place: its title (its argv[0]) and the status words after it, its environment
/// (its verbs, `probe/verbs.rs`) and its ids inside the jail.
pub struct ProbeRequest {
    pub title: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub query: Query,
}

/// One forked probe of a placement and what it reported so far.
struct Forking {
    process: Process,
    /// Its status pipe, until its end of file (the exec, or the child's end).
    reader: Option<OwnedFd>,
    status: Vec<u8>,
    /// Its user and group, which it resolves in the jail.
    query: Query,
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
pub type PlacedProbe = (Process, (u32, u32));

pub struct Placed {
    /// A placed probe's process and its ids (uid, gid) inside the jail.
    pub results: Vec<Result<PlacedProbe, Error>>,
    pub leftovers: Vec<Process>,
}

impl Placement {
    /// Forks one probe per request: each closes every descriptor but its status pipe,
    /// attaches to the jail, drops to its ids, makes itself untraceable, no-new-privs and
    /// killed with the daemon, takes its title, reports, and waits for SIGHUP and its verbs.
    #[allow(unsafe_code)]
    pub fn start(
        spawner: &mut Spawner,
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
        // Where a child reads a user database: one buffer, made before the forks, which each
        // child writes in its own copy; untouched (no page of it allocated) unless one reads.
        let mut database = userdb::buffer_for(probes.iter().map(|p| &p.query));
        for (index, request) in probes.iter().enumerate() {
            let ids = ChildIds {
                query: &request.query,
                cached: File::BOTH.map(|file| {
                    let answer = jail.userdb.answer(file, request.query.key(file)?)?;
                    let identity = jail.userdb.snapshot(file)?.identity;
                    Some((identity, answer))
                }),
            };
            match fork_probe(
                spawner.image.as_fd(),
                jail.jid,
                request,
                &ids,
                &mut database,
            ) {
                Ok((process, reader)) => {
                    let watched = placement.watch.add(reader.as_fd(), index as u64);
                    if let Err(e) = watched {
                        process.kill();
                        placement.failed.push((index, os("kevent", e)));
                        // Still reaped by the daemon, as a leftover.
                        placement.probes.push(Forking {
                            process,
                            reader: None,
                            status: Vec::new(),
                            query: request.query.clone(),
                        });
                        continue;
                    }
                    placement.probes.push(Forking {
                        process,
                        reader: Some(reader),
                        status: Vec::new(),
                        query: request.query.clone(),
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

    /// Its queue reports each helper's exit, not one end: watched for readability.
    pub fn quiet_until_done(&self) -> bool {
        false
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Reads what the probes reported; true once every status pipe has ended (each probe
    /// exec'd, or failed and said where).
    pub fn step(&mut self) -> bool {
        for probe in &mut self.probes {
            let Some(reader) = &probe.reader else {
                continue;
            };
            let mut buf = [0u8; pure::MAX_STATUS];
            let done = loop {
                // More is no status the child writes: stop reading it.
                if probe.status.len() > pure::MAX_STATUS {
                    break true;
                }
                match rustix::io::read(reader, &mut buf) {
                    Ok(0) => break true,
                    Ok(n) => probe.status.extend_from_slice(&buf[..n]),
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
    pub fn finish(mut self, jail: Option<&mut Jail>) -> Placed {
        self.step();
        if let Some(jail) = jail {
            // What the children read of the jail's user database, for the next placements.
            for probe in &self.probes {
                let (found, _) = pure::read_resolution(&probe.status);
                for file in File::BOTH {
                    let (Some(words), Some(answer), Some(key)) = (
                        found.identities[file as usize],
                        found.answers[file as usize],
                        probe.query.key(file),
                    ) else {
                        continue;
                    };
                    let answers = vec![(key.to_string(), Answer::decode(answer))];
                    jail.userdb
                        .learn(file, Identity::from_words(words), answers);
                }
            }
        }
        let mut leftovers = Vec::new();
        let mut results: Vec<Option<Result<PlacedProbe, Error>>> = Vec::new();
        let failed = std::mem::take(&mut self.failed);
        let mut probes = self.probes.into_iter();
        let total = probes.len() + failed.len();
        for index in 0..total {
            if let Some((_, e)) = failed.iter().find(|(i, _)| *i == index) {
                results.push(Some(Err(e.clone())));
                continue;
            }
            let Some(probe) = probes.next() else { break };
            let (found, rest) = pure::read_resolution(&probe.status);
            let status = if let Some(code) = found.refused {
                Err(Refusal::decode(code).to_error(self.jid, &probe.query))
            } else if let (Some(file), Some(_)) = (found.reading, &probe.reader) {
                let file = if file == 1 { File::Group } else { File::Passwd };
                Err(userdb::timed_out(self.jid, file, PLACEMENT_DEADLINE))
            } else if probe.reader.is_some() {
                Err(Error::new(
                    Kind::Timeout,
                    format!(
                        "probe for jail {} did not start within {} s",
                        self.jid,
                        PLACEMENT_DEADLINE.as_secs()
                    ),
                ))
            } else {
                pure::read_status(rest, true).map_err(|(stage, errno)| {
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
            let ids = found.ids.ok_or_else(|| {
                Error::new(
                    Kind::Internal,
                    format!("probe for jail {}: its ids were not reported", self.jid),
                )
            });
            match status.and(ids) {
                Ok(ids) => results.push(Some(Ok((probe.process, ids)))),
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

/// Forks one probe for jail `jid`: a child that confines itself, attaches to the jail,
/// switches to its ids, reports "armed" and execs the probe image with argv `[title, args…]`
/// and the request's environment (its verbs), nothing else. The status pipe is
/// close-on-exec, so its end of file after "armed" is the exec; a failed step or exec sends
/// its stage and errno instead. Returns the child and the read end of its status pipe.
#[allow(unsafe_code)]
fn fork_probe(
    image: BorrowedFd<'_>,
    jid: i32,
    request: &ProbeRequest,
    ids: &ChildIds<'_>,
    database: &mut [u8],
) -> Result<(Process, OwnedFd), Error> {
    let os = |what: &str, e: io::Error| Error::os(what.to_string(), e);
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| os("pipe", e.into()))?;
    rustix::io::ioctl_fionbio(&reader, true).map_err(|e| os("status pipe", e.into()))?;
    // Null-terminated arrays of pointers into `request`, made before the fork: the child
    // allocates nothing.
    let argv: Vec<*const libc::c_char> = std::iter::once(&request.title)
        .chain(&request.args)
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = request
        .env
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: the daemon is single-threaded and the child runs only `probe_child`, which makes
    // async-signal-safe calls and never returns.
    let pid = match unsafe { posix::fork() }.map_err(|e| os("fork", e))? {
        Forked::Child => probe_child(writer.as_fd(), image, jid, (&argv, &envp), ids, database),
        Forked::Parent(pid) => pid,
    };
    drop(writer);
    let process = Process::from_own_child(pid).map_err(|e| os("watching the probe", e))?;
    Ok((process, reader))
}

/// The child's steps, in order; each is its own function below. It only makes
/// async-signal-safe calls: everything it uses (argv and envp, the image descriptor, what it
/// needs to resolve its ids and a buffer to read a user database into) was prepared before
/// the fork.
#[allow(unsafe_code)]
fn probe_child(
    status: BorrowedFd<'_>,
    image: BorrowedFd<'_>,
    jid: i32,
    (argv, envp): (&[*const libc::c_char], &[*const libc::c_char]),
    ids: &ChildIds<'_>,
    database: &mut [u8],
) -> ! {
    // The probe's signals stay blocked until it takes them itself: one sent between the exec
    // and the probe's own sigprocmask waits for it instead of killing it (a signal that is not
    // one of its verbs then kills it, as any time later).
    raw::reset_signals(&[libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2]);
    // Past this point the status pipe is fd 3 and the image fd 4, both close-on-exec; without
    // the pipe there is nobody to report to.
    // SAFETY: this child ends by exec or `_exit` and uses no descriptor of the daemon's but
    // these two, as 3 and 4, from here on.
    if unsafe { raw::keep_fds(status, image) }.is_err() {
        posix::exit_now(1);
    }
    child_step(pure::STAGE_CONFINE, raw::confine_self());
    child_step(pure::STAGE_ATTACH, child_attach(jid));
    child_step(
        pure::STAGE_SESSION,
        rustix::process::setsid().map(drop).map_err(Into::into),
    );
    // Inside the jail, off the daemon's loop: a read that never ends holds only this child,
    // until the placement's deadline.
    let (uid, gid) = match child_resolve(ids, database) {
        Ok(ids) => ids,
        Err(refusal) => {
            child_record(pure::TAG_REFUSED, None, &[refusal.encode()]);
            posix::exit_now(1)
        }
    };
    child_record(
        pure::TAG_IDS,
        None,
        &[u64::from(uid) | u64::from(gid) << 32],
    );
    child_step(pure::STAGE_IDS, raw::set_ids(uid, gid));
    child_report_armed();
    child_exec(argv, envp)
}

/// What a probe's child needs to resolve its ids in the jail: its query, and per file what the
/// daemon knows of the name it asks (the file's identity then, and the answer).
struct ChildIds<'a> {
    query: &'a Query,
    cached: [Option<(Identity, Answer)>; 2],
}

/// Writes one record about ids (`pure::resolution_record`); a child nobody listens to leaves.
#[allow(unsafe_code)]
fn child_record(tag: u8, file: Option<File>, words: &[u64]) {
    let mut out = [0u8; 64];
    let len = pure::resolution_record(tag, file.map(|f| f as u8), words, &mut out);
    // SAFETY: called only by the probe's child after `keep_fds`.
    if posix::write_all_raw(unsafe { raw::status_fd() }, &out[..len]).is_err() {
        posix::exit_now(1);
    }
}

/// Resolves the child's ids in the jail's own user database, once attached to the jail (its
/// root is ours): each file the query needs is opened beneath the root (no `..` or symlink
/// out of it), non-blocking, and read whole into `database` unless it is still the version
/// whose answer the daemon holds. Reports what it read, for the daemon's cache.
fn child_resolve(ids: &ChildIds<'_>, database: &mut [u8]) -> Result<(u32, u32), Refusal> {
    let mut answers = [None, None];
    for file in File::BOTH {
        let Some(key) = ids.query.key(file) else {
            continue;
        };
        child_record(pure::TAG_READING, Some(file), &[]);
        let path: &std::ffi::CStr = match file {
            File::Passwd => c"etc/passwd",
            File::Group => c"etc/group",
        };
        let unreadable = |e: rustix::io::Errno| Refusal::Unreadable(file, e.raw_os_error() as u32);
        let root = rustix::fs::open(
            c"/",
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(unreadable)?;
        // O_RESOLVE_BENEATH: neither `..` nor a symlink may lead out of the jail's root.
        let beneath = rustix::fs::OFlags::from_bits_retain(libc::O_RESOLVE_BENEATH as _);
        let flags = rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::CLOEXEC
            | rustix::fs::OFlags::NONBLOCK
            | beneath;
        let (cached_identity, cached_answer) = match ids.cached[file as usize] {
            Some((identity, answer)) => (Some(identity), Some(answer)),
            None => (None, None),
        };
        let answer = match rustix::fs::openat(&root, path, flags, rustix::fs::Mode::empty()) {
            // A jail without the file knows its users by number only.
            Err(rustix::io::Errno::NOENT) => userdb::look_up(file, &[], key),
            Err(e) => return Err(unreadable(e)),
            Ok(fd) => match posix::read_user_database(&fd, file, cached_identity, database)? {
                (None, _) => cached_answer.unwrap_or_default(),
                (Some(text), identity) => {
                    if let Some(identity) = identity {
                        child_record(pure::TAG_IDENTITY, Some(file), &identity.words());
                    }
                    userdb::look_up(file, text, key)
                }
            },
        };
        child_record(pure::TAG_ANSWER, Some(file), &[answer.encode()]);
        answers[file as usize] = Some(answer);
    }
    // FreeBSD jails share the host's ids: every id exists in them.
    userdb::combine(ids.query, answers[0], answers[1])
}

/// Reports a failed step on the status pipe and leaves; a step that worked goes on.
fn child_step(stage: u8, result: io::Result<()>) {
    if let Err(e) = result {
        child_fail(stage, e);
    }
}

#[allow(unsafe_code)]
fn child_fail(stage: u8, err: io::Error) -> ! {
    let e = err.raw_os_error().unwrap_or(0).to_ne_bytes();
    // SAFETY: called only by the probe's child after `keep_fds`.
    let _ = posix::write_all_raw(
        unsafe { raw::status_fd() },
        &[stage, e[0], e[1], e[2], e[3]],
    );
    posix::exit_now(1)
}

/// Enters the jail: its root becomes ours, and its processes can see us from here on (we are
/// untraceable already).
fn child_attach(jid: i32) -> io::Result<()> {
    raw::jail_attach(jid)?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// "Armed" goes out before the exec, which closes the pipe. If the daemon died before the
/// death signal was set, nobody reads the pipe: the write fails (EPIPE, or SIGPIPE kills us)
/// and the probe never starts.
#[allow(unsafe_code)]
fn child_report_armed() {
    // SAFETY: called only by the probe's child after `keep_fds`.
    if posix::write_all_raw(unsafe { raw::status_fd() }, &pure::ARMED_RECORD).is_err() {
        posix::exit_now(1);
    }
}

/// Execs the probe image (fd 4) with `argv` and `envp` (null-terminated); returns only to
/// report a failure.
#[allow(unsafe_code)]
fn child_exec(argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> ! {
    // SAFETY: called only by the probe's child after `keep_fds`; `fork_probe` made argv and
    // envp of pointers into the request's C strings, which outlive the fork, and a null.
    let err = unsafe { raw::exec_image(raw::image_fd(), argv, envp) };
    child_fail(pure::STAGE_EXEC, err)
}

/// Runs `command` on the host with exactly `env`, in `/`, with stdin from /dev/null and stdout
/// and stderr into a pipe, whose read end (non-blocking) is returned: as `/bin/sh -c command`,
/// or, for an `Invocation::Direct` whose program is found in `env`'s `PATH`, that program
/// exec'd directly (a program that is not found, or fails to exec, is left to the shell).
///
/// With a `group`, the shell runs under a keeper of its own (`CommandGroup`), which is the
/// process returned; a command with a timeout always runs through the shell there.
pub fn spawn_command(
    _spawner: &mut Spawner,
    command: &str,
    invocation: &crate::invocation::Invocation,
    env: &[(&str, &str)],
    group: Option<&CommandGroup>,
    user: Option<&crate::ids::HostUser>,
) -> io::Result<(Process, OwnedFd)> {
    use std::os::unix::process::CommandExt;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&reader, true)?;
    if let Some(group) = group {
        let keeper = spawn_kept(command, env, writer.as_fd(), user)?;
        group.keeper.set(Some(keeper.pid()));
        return Ok((keeper, reader));
    }
    if let crate::invocation::Invocation::Direct { words } = invocation {
        let path = env
            .iter()
            .find(|(name, _)| *name == "PATH")
            .map_or("", |v| v.1);
        let found = crate::invocation::candidates(&words[0], path)
            .into_iter()
            .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0));
        if let Some(program) = found {
            let mut direct = std::process::Command::new(program);
            direct.arg0(&words[0]).args(&words[1..]);
            if let Ok(child) = start_command(direct, env, &writer, user) {
                return Ok((child, reader));
            }
        }
    }
    let mut shell = std::process::Command::new("/bin/sh");
    shell.arg("-c").arg(command);
    Ok((start_command(shell, env, &writer, user)?, reader))
}

/// Starts `program` as a host command: `env` alone, in `/`, stdin from /dev/null, stdout and
/// stderr into `output`, as `user` when one is given.
fn start_command(
    mut program: std::process::Command,
    env: &[(&str, &str)],
    output: &OwnedFd,
    user: Option<&crate::ids::HostUser>,
) -> io::Result<Process> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    if let Some(user) = user {
        // Groups, gid and uid in one step after the fork (std's own uid change would drop the
        // supplementary groups).
        let (uid, groups) = (user.uid, raw::group_list(user.gid, &user.groups));
        let become_user = move || raw::become_user(uid, &groups);
        #[allow(unsafe_code)]
        // SAFETY: `become_user` makes only async-signal-safe calls and allocates nothing
        // (its groups were copied before the fork).
        unsafe {
            program.pre_exec(become_user);
        }
    }
    let child = program
        .env_clear()
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(output.try_clone()?))
        .stderr(Stdio::from(output.try_clone()?))
        .spawn()?;
    Process::from_own_child(child.id() as Pid)
}

/// What stops a command with everything it started, FreeBSD's way: the shell runs under a
/// keeper, a child of the daemon that is the reaper (procctl(2) PROC_REAP_ACQUIRE) of every
/// process the command starts, whatever its process group or session, so that
/// PROC_REAP_KILL reaches them all. The keeper reaps them, ends the way the shell ended
/// (once nothing is left, when it was being stopped), and takes SIGTERM from the daemon to
/// send SIGTERM to them all, and SIGUSR1 to send SIGKILL.
#[derive(Debug)]
pub struct CommandGroup {
    keeper: std::cell::Cell<Option<Pid>>,
}

impl CommandGroup {
    pub fn create(_name: &str) -> io::Result<CommandGroup> {
        Ok(CommandGroup {
            keeper: std::cell::Cell::new(None),
        })
    }

    /// Where it is, for log lines.
    pub fn path(&self) -> &std::path::Path {
        std::path::Path::new("(a reaper)")
    }

    /// What is left once the keeper has ended: nothing it knows of (it does not end, when
    /// stopping, while anything is left; otherwise what is left was reparented to init).
    pub fn members(&self) -> io::Result<Vec<Pid>> {
        Ok(Vec::new())
    }

    /// Asks the keeper to send `signal` to everything the command started (it sends SIGTERM;
    /// SIGKILL goes through `kill_all`).
    pub fn signal_all(&self, _signal: rustix::process::Signal) -> io::Result<usize> {
        if let Some(keeper) = self.keeper.get() {
            raw::kill_child(keeper, libc::SIGTERM);
        }
        Ok(1)
    }

    pub fn kill_all(&self) -> io::Result<()> {
        if let Some(keeper) = self.keeper.get() {
            raw::kill_child(keeper, libc::SIGUSR1);
        }
        Ok(())
    }

    pub fn remove(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts the keeper of `command` (see `CommandGroup`); everything the keeper and the shell
/// use is prepared before the forks.
#[allow(unsafe_code)]
fn spawn_kept(
    command: &str,
    env: &[(&str, &str)],
    output: BorrowedFd<'_>,
    user: Option<&crate::ids::HostUser>,
) -> io::Result<Process> {
    let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let args = [
        c"/bin/sh".to_owned(),
        c"-c".to_owned(),
        CString::new(command).map_err(invalid)?,
    ];
    let vars = env
        .iter()
        .map(|(name, value)| CString::new(format!("{name}={value}")).map_err(invalid))
        .collect::<io::Result<Vec<_>>>()?;
    let pointers = |strings: &[CString]| -> Vec<*const libc::c_char> {
        let mut list: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
        list.push(std::ptr::null());
        list
    };
    let (argv, envp) = (pointers(&args), pointers(&vars));
    let null = fs::File::open("/dev/null")?;
    let ids = user.map(|u| (u.uid, raw::group_list(u.gid, &u.groups)));
    // SAFETY: the daemon is single-threaded and the child runs only `keeper`, which makes
    // async-signal-safe calls and never returns.
    let pid = match unsafe { posix::fork() }? {
        Forked::Child => keeper(null.as_fd(), output, &argv, &envp, ids.as_ref()),
        Forked::Parent(pid) => pid,
    };
    Process::from_own_child(pid)
}

/// The keeper: the reaper of the command's processes. Async-signal-safe calls only.
#[allow(unsafe_code)]
fn keeper(
    null: BorrowedFd<'_>,
    output: BorrowedFd<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    ids: Option<&(u32, Vec<libc::gid_t>)>,
) -> ! {
    let watched = [libc::SIGTERM, libc::SIGUSR1, libc::SIGCHLD];
    raw::reset_signals(&watched);
    if raw::reaper_acquire().is_err() {
        posix::exit_now(127);
    }
    // SAFETY: as for the keeper: single-threaded, and the child only execs or `_exit`s.
    let shell = match unsafe { posix::fork() } {
        Ok(Forked::Child) => {
            raw::reset_signals(&[]);
            if let Some((uid, groups)) = ids
                && raw::become_user(*uid, groups).is_err()
            {
                posix::exit_now(127);
            }
            // SAFETY: `spawn_kept` made argv and envp of pointers into C strings it keeps, and
            // a null; this child owns nothing of 0 to 2 and execs or exits next.
            let _ = unsafe { raw::exec_shell(null, output, argv, envp) };
            posix::exit_now(127)
        }
        Ok(Forked::Parent(pid)) => pid,
        Err(_) => posix::exit_now(127),
    };
    let mut ended = None;
    let mut stopping = false;
    loop {
        while let Some((pid, status)) = raw::reap_any() {
            if pid == shell {
                ended = Some(status);
            }
        }
        if let Some(status) = ended
            && (!stopping || raw::reaper_descendants().unwrap_or(0) == 0)
        {
            raw::end_like(status);
        }
        match raw::block_and_wait_signal(&watched) {
            libc::SIGTERM => {
                stopping = true;
                let _ = raw::reaper_kill(libc::SIGTERM);
            }
            libc::SIGUSR1 => {
                stopping = true;
                let _ = raw::reaper_kill(libc::SIGKILL);
            }
            _ => {}
        }
    }
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

    /// Reports `fd` under `token` at least once it hangs up, until `remove`. kqueue has no
    /// filter for a hang-up alone: it is reported while readable, as `add` does; no
    /// placement here asks for it (`Placement::quiet_until_done`).
    pub fn add_hangup(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.add(fd, token)
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

/// kqueue's signal filter counts signals but tells nothing of their cause: a SIGCHLD may
/// always be a stop.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> io::Result<Option<crate::sys::Taken>> {
    Ok(raw::next_event(fd)?.map(|s| crate::sys::Taken {
        signal: s as i32,
        child_ended: false,
    }))
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

/// The FreeBSD probe does not tell senders apart, so it ignores nothing (SECURITY.md).
pub fn ignored_signals(_probe: &Process) -> Option<u64> {
    None
}
