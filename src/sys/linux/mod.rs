//! Linux backend: a jail is a set of namespaces, named by the host PID of a process inside it.

mod cgroup;
mod raw;

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};
use rustix::thread::{CapabilitySet, CapabilitySets, ThreadNameSpaceType};

use crate::containers;
use crate::error::{Error, Kind};
use crate::ids::IdMap;
use crate::sys::posix::{self, Exit, Forked, PeerCredentials};

pub use raw::{read_signalfd, signalfd};

/// A child of the daemon, held by pidfd so that it is never waited on or signalled by bare pid.
#[derive(Debug)]
pub struct Process {
    pid: i32,
    pidfd: OwnedFd,
}

impl Process {
    /// Takes hold of `pid`, which must be an unreaped child of this process: only then can the
    /// pid not have been recycled before pidfd_open.
    /// The pid is checked to be an unreaped child of ours once held: a helper that reported
    /// a wrong pid would otherwise hand us a stranger.
    pub fn from_own_child(pid: u32) -> io::Result<Self> {
        let raw =
            Pid::from_raw(pid as i32).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())?;
        // ECHILD unless it is our child; WNOWAIT leaves it unreaped.
        let peek = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), peek)?;
        Ok(Process {
            pid: pid as i32,
            pidfd,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Becomes readable when the process has exited.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reaps the process if it has exited.
    pub fn try_wait(&self) -> io::Result<Option<Exit>> {
        self.wait_with(WaitIdOptions::EXITED | WaitIdOptions::NOHANG)
    }

    /// Waits for the process to exit and reaps it.
    pub fn wait(&self) -> io::Result<Exit> {
        loop {
            match self.wait_with(WaitIdOptions::EXITED) {
                Ok(Some(exit)) => return Ok(exit),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_with(&self, options: WaitIdOptions) -> io::Result<Option<Exit>> {
        let status = rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), options)?;
        Ok(
            status.map(|s| match (s.exit_status(), s.terminating_signal()) {
                (Some(code), _) if s.exited() => Exit::Code(code),
                (_, Some(sig)) => Exit::Signal(sig),
                _ => Exit::Signal(0),
            }),
        )
    }

    /// Sends SIGKILL; a process that is already gone is not an error.
    pub fn kill(&self) {
        let _ = rustix::process::pidfd_send_signal(self.pidfd.as_fd(), Signal::KILL);
    }
}

/// The probe executable, kept in a sealed, execute-only memfd for the daemon's lifetime.
///
/// Execute-only matters: exec of a file the process cannot read makes the new process
/// non-dumpable and ties its memory to the host's user namespace (`would_dump` in fs/exec.c),
/// so a jail root, even inside its own user namespace, cannot read or ptrace the probe.
/// Sealing matters: `/proc/PID/exe` of a probe then leads to nothing a jail could rewrite, and
/// no host path is ever exec'd inside a jail.
pub struct Spawner {
    fd: OwnedFd,
    /// A low descriptor slot, /dev/null while idle, that holds the write end of a placement's
    /// status pipe: the helpers share the daemon's descriptor table, and the probe keeps only
    /// the descriptors below `low_end` when it takes a table of its own.
    slot: OwnedFd,
    null: OwnedFd,
    /// The stack a command's child runs on until its exec (it shares our memory).
    stack: Vec<u8>,
}

/// Far more than a command's child uses before its exec.
const CHILD_STACK: usize = 256 * 1024;

static PROBE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe"));

impl Spawner {
    pub fn load() -> io::Result<Self> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // MFD_EXEC exists since Linux 6.3; older kernels refuse the flag but allow exec anyway.
        let memfd = rustix::fs::memfd_create("jaildaemon-probe", base | MemfdFlags::EXEC)
            .or_else(|_| rustix::fs::memfd_create("jaildaemon-probe", base))?;
        let mut file = fs::File::from(memfd);
        io::Write::write_all(&mut file, PROBE_BYTES)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o111))?;
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
        rustix::fs::fcntl_add_seals(&file, seals)?;
        // F_SEAL_EXEC (Linux 6.3) also freezes the mode bits.
        let _ = rustix::fs::fcntl_add_seals(&file, SealFlags::EXEC);
        rustix::fs::fcntl_add_seals(&file, SealFlags::SEAL)?;
        // A descriptor open for writing would make exec fail with ETXTBSY: keep an O_PATH one.
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        let fd = rustix::fs::open(path.as_str(), OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        drop(file);
        let null = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let slot = rustix::io::fcntl_dupfd_cloexec(&null, 0)?;
        Ok(Spawner {
            fd,
            slot,
            null,
            stack: vec![0; CHILD_STACK],
        })
    }

    /// The end of the descriptors a probe keeps until its exec: the image and the slot.
    fn low_end(&self) -> u32 {
        use std::os::fd::AsRawFd;
        (self.fd.as_raw_fd().max(self.slot.as_raw_fd()) + 1) as u32
    }
}

impl Spawner {
    /// The image is still execute-only: host root could make it readable (`F_SEAL_EXEC` only
    /// freezes the exec bits), and a readable image would make probes dumpable.
    fn check_sealed(&self) -> Result<(), Error> {
        let stat = rustix::fs::fstat(&self.fd)
            .map_err(|e| Error::os("fstat of the probe image", e.into()))?;
        let mode = stat.st_mode & 0o7777;
        if mode != 0o111 {
            return Err(Error::new(
                Kind::Internal,
                format!(
                    "the probe image's mode was changed to {mode:o}; refusing to place probes (restart the daemon)"
                ),
            ));
        }
        Ok(())
    }
}

/// The host settings a probe's confinement leans on; each one found wrong is a warning for
/// the log.
pub fn host_warnings() -> Vec<String> {
    let mut warnings = Vec::new();
    if let Ok(value) = fs::read_to_string("/proc/sys/fs/suid_dumpable")
        && value.trim() != "0"
    {
        warnings.push(format!(
            "fs.suid_dumpable is {}: for a moment after switching ids, a probe's helper is dumpable (set it to 0)",
            value.trim()
        ));
    }
    warnings
}

/// Namespace types a probe joins, in the order lxc-attach uses; `setns` on a pidfd applies
/// them together, the user namespace first.
const NAMESPACES: [(&str, ThreadNameSpaceType); 7] = [
    ("user", ThreadNameSpaceType::USER),
    ("pid", ThreadNameSpaceType::PROCESS_ID),
    ("mnt", ThreadNameSpaceType::MOUNT),
    ("net", ThreadNameSpaceType::NETWORK),
    ("uts", ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
    ("ipc", ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
    ("cgroup", ThreadNameSpaceType::CONTROL_GROUP),
];

/// A running jail: a process inside it, held by pidfd, and what the probe needs to enter it.
#[derive(Debug)]
pub struct Jail {
    pid: i32,
    pidfd: OwnedFd,
    namespaces: ThreadNameSpaceType,
    uid_map: Option<IdMap>,
    gid_map: Option<IdMap>,
    setgroups_allowed: bool,
}

fn ns_inode(pid: &str, ns: &str) -> io::Result<u64> {
    Ok(fs::metadata(format!("/proc/{pid}/ns/{ns}"))?.ino())
}

impl Jail {
    /// Resolves `spec` to a jail: a host PID, or a container name asked of the container
    /// managers (`containers.rs`).
    pub fn open(spec: &str) -> Result<Jail, Error> {
        match containers::parse_spec(spec)? {
            containers::Spec::Pid(pid) => Jail::open_pid(spec, pid),
            containers::Spec::Name { manager, name } => {
                let found = containers::find(spec, manager, name)?;
                let jail = Jail::open_pid(spec, found.pid)?;
                // The pidfd was opened after the manager answered: the PID could have been
                // recycled in between, unless the manager still names it now.
                containers::confirm(spec, name, &found)?;
                jail.check_alive()?;
                Ok(jail)
            }
        }
    }

    fn open_pid(spec: &str, pid: i32) -> Result<Jail, Error> {
        let no_jail = |why: String| Error::new(Kind::NoJail, format!("jail '{spec}': {why}"));
        let raw = Pid::from_raw(pid).expect("positive");
        let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())
            .map_err(|e| no_jail(format!("no such process ({e})")))?;
        let mut namespaces = ThreadNameSpaceType::empty();
        let mut isolated = false;
        for (name, flag) in NAMESPACES {
            let theirs = ns_inode(&pid.to_string(), name)
                .map_err(|e| no_jail(format!("cannot read its {name} namespace: {e}")))?;
            let ours = ns_inode("self", name)
                .map_err(|e| Error::os(format!("reading our {name} namespace"), e))?;
            if theirs != ours {
                isolated = true;
                namespaces |= flag;
            } else if flag != ThreadNameSpaceType::USER {
                // Joining a namespace we are already in is harmless; joining our own user
                // namespace is refused by the kernel, so that one is only joined when different.
                namespaces |= flag;
            }
        }
        if !isolated {
            return Err(no_jail(
                "process shares every namespace with the host; it is not in a jail".into(),
            ));
        }
        let (uid_map, gid_map, setgroups_allowed) =
            if namespaces.contains(ThreadNameSpaceType::USER) {
                let read = |f: &str| {
                    fs::read_to_string(format!("/proc/{pid}/{f}"))
                        .map_err(|e| no_jail(format!("cannot read its {f}: {e}")))
                };
                let uid_map = IdMap::parse(&read("uid_map")?).map_err(&no_jail)?;
                let gid_map = IdMap::parse(&read("gid_map")?).map_err(no_jail)?;
                (
                    Some(uid_map),
                    Some(gid_map),
                    read("setgroups")?.trim() == "allow",
                )
            } else {
                (None, None, true)
            };
        let jail = Jail {
            pid,
            pidfd,
            namespaces,
            uid_map,
            gid_map,
            setgroups_allowed,
        };
        jail.check_alive()?;
        Ok(jail)
    }

    /// What identifies the jail on this host: the PID it was named by.
    pub fn id(&self) -> i32 {
        self.pid
    }

    /// Everything read through /proc/PID before this call belonged to the jail's process:
    /// if the pidfd is still alive, the pid cannot have been recycled in between.
    fn check_alive(&self) -> Result<(), Error> {
        if posix::readable_now(self.pidfd.as_fd()) {
            return Err(Error::new(
                Kind::NoJail,
                format!("jail {}: its process has exited", self.pid),
            ));
        }
        Ok(())
    }

    /// Becomes readable when the jail's process exits: for a container, when it stops.
    pub fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.pidfd.as_fd())
    }

    /// The jail's root directory, as an O_PATH descriptor.
    fn open_root(&self) -> Result<OwnedFd, Error> {
        let fd = rustix::fs::open(
            format!("/proc/{}/root", self.pid).as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::new(
                Kind::NoJail,
                format!("jail {}: cannot open its root: {e}", self.pid),
            )
        })?;
        self.check_alive()?;
        Ok(fd)
    }

    /// Reads a small regular file below the jail's root, never leaving that root: symlinks and
    /// `..` resolve inside it (RESOLVE_IN_ROOT), and a FIFO or device cannot block the daemon.
    /// The file must also be on the jail's root filesystem (RESOLVE_NO_XDEV, EXDEV otherwise):
    /// the jail controls its mounts, and a bind mount over /etc/passwd once made host root open
    /// the jail's /proc/kmsg and /proc/1/mem. Reading as the jail's own credentials instead
    /// would take one more process in the jail, and a wait on it, for every `-u` name.
    pub fn read_file(&self, path: &str) -> io::Result<String> {
        let root = self
            .open_root()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let fd = rustix::fs::openat2(
            &root,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        )?;
        posix::read_small_file(fd)
    }

    /// Moves `pid` into the jail's cgroups (every hierarchy where they differ from ours), so
    /// that the jail's limits and freezer apply to it. The kernel cannot do this in clone for
    /// us once the helper is inside the jail's user namespace, so the daemon writes the pid.
    fn join_cgroups(&self, pid: i32) -> Result<(), Error> {
        let read = |path: String| {
            fs::read_to_string(&path).map_err(|e| Error::os(format!("reading {path}"), e))
        };
        let jail = read(format!("/proc/{}/cgroup", self.pid))?;
        self.check_alive()?;
        let ours = read("/proc/self/cgroup".into())?;
        let mountinfo = read("/proc/self/mountinfo".into())?;
        for file in cgroup::procs_files(&jail, &ours, &mountinfo) {
            fs::write(&file, pid.to_string()).map_err(|e| {
                Error::os(
                    format!("joining jail {}'s cgroup {}", self.pid, file.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }

    /// Checks that `uid`/`gid` (ids inside the jail) exist in the jail's user namespace.
    pub fn check_ids(&self, uid: u32, gid: u32) -> Result<(), Error> {
        for (map, id, what) in [(&self.uid_map, uid, "uid"), (&self.gid_map, gid, "gid")] {
            if let Some(map) = map
                && map.to_host(id).is_none()
            {
                return Err(Error::new(
                    Kind::NoUser,
                    format!(
                        "{what} {id} has no mapping in the user namespace of jail {}",
                        self.pid
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Messages on the status pipe from the two helper processes. Each is 8 bytes, below
/// PIPE_BUF, so writes from both never interleave.
const MSG_PID: u32 = 1;
const MSG_ARMED: u32 = 2;
const MSG_FAILED: u32 = 3;

/// Where a helper failed; each stage is named in the error the utility prints.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Stage {
    Dumpable = 1,
    Groups,
    Setns,
    Clone,
    Session,
    Root,
    Bounding,
    Ids,
    DeathSignal,
    Capabilities,
    NoNewPrivs,
    Report,
    Descriptors,
    Exec,
}

const STAGE_NAMES: [&str; 15] = [
    "?",
    "making itself non-dumpable",
    "dropping supplementary groups",
    "entering the jail's namespaces",
    "forking inside the jail's pid namespace",
    "starting a new session",
    "changing root to the jail's root",
    "clearing the capability bounding set",
    "switching to the requested uid/gid",
    "setting the parent-death signal",
    "dropping capabilities",
    "setting no_new_privs",
    "reporting to the daemon",
    "closing descriptors",
    "executing the probe",
];

/// Everything the helpers need, prepared before fork so that they never allocate.
struct ProbePlan<'a> {
    jail: &'a Jail,
    root: OwnedFd,
    image: BorrowedFd<'a>,
    status: BorrowedFd<'a>,
    /// The probe keeps the descriptors below this one (`image` and `status` among them).
    low_end: u32,
    uid: u32,
    gid: u32,
    argv: [*const libc::c_char; 2],
    envp: [*const libc::c_char; 1],
}

fn report(status: BorrowedFd<'_>, tag: u32, value: i32) -> io::Result<()> {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&tag.to_ne_bytes());
    msg[4..].copy_from_slice(&value.to_ne_bytes());
    posix::write_all_raw(status, &msg)
}

fn fail(status: BorrowedFd<'_>, stage: Stage, err: io::Error) -> ! {
    let code = (stage as i32) << 16 | (err.raw_os_error().unwrap_or(0) & 0xffff);
    let _ = report(status, MSG_FAILED, code);
    posix::exit_now(1)
}

/// Places a probe with argv `[title]` and an empty environment inside `jail`, running as
/// `uid`/`gid` (ids inside the jail). Returns once the probe program has been exec'd.
///
/// Process choreography: the daemon forks helper A; A makes itself non-dumpable, drops its
/// supplementary groups, joins the jail's namespaces and clones B with CLONE_PARENT, so that B
/// is born in the jail's pid namespace as a direct child of the daemon (which reaps it by
/// pidfd); A reports B's pid and exits. B confines itself and execs the probe image.
/// Between fork and exec both only make async-signal-safe calls.
#[allow(unsafe_code)]
pub fn spawn_probe(
    image: &mut Spawner,
    jail: &Jail,
    title: &CStr,
    uid: u32,
    gid: u32,
) -> Result<Process, Error> {
    let os = |what: &str, e: io::Error| Error::os(what.to_string(), e);
    image.check_sealed()?;
    let root = jail.open_root()?;
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| os("pipe", e.into()))?;
    rustix::io::dup3(&writer, &mut image.slot, rustix::io::DupFlags::CLOEXEC)
        .map_err(|e| os("dup3 of the status pipe", e.into()))?;
    drop(writer);
    let plan = ProbePlan {
        jail,
        root,
        image: image.fd.as_fd(),
        status: image.slot.as_fd(),
        low_end: image.low_end(),
        uid,
        gid,
        argv: [title.as_ptr(), std::ptr::null()],
        envp: [std::ptr::null()],
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: the daemon is single-threaded, and helper A runs only `helper_a`, which makes
    // async-signal-safe calls on data prepared above, changes no descriptor, and never
    // returns.
    let a_pid = match unsafe { raw::fork_sharing_descriptors() }.map_err(|e| os("clone", e))? {
        Forked::Child => helper_a(&plan),
        Forked::Parent(pid) => pid,
    };
    let helper =
        Process::from_own_child(a_pid as u32).map_err(|e| os("pidfd_open of helper", e))?;
    // Until both helpers are done with the daemon's descriptor table (A gone, B on a table
    // of its own or gone), the daemon changes nothing in it.
    let mut outcome = collect_until_helpers_leave(&reader, &helper, deadline);
    let probe = outcome.probe.take();
    if outcome.timed_out {
        // A helper that is stuck (say, in a frozen jail) must not stall the daemon's wait.
        helper.kill();
        if let Some(p) = &probe {
            p.kill();
        }
    }
    let _ = helper.wait();
    drop(plan);
    // The daemon's own copy of the write end goes; the probe's goes with its exec.
    rustix::io::dup3(&image.null, &mut image.slot, rustix::io::DupFlags::CLOEXEC)
        .map_err(|e| os("dup3 of /dev/null", e.into()))?;
    if outcome.armed && outcome.failed.is_none() && !outcome.timed_out {
        collect_until_exec(&reader, deadline, &mut outcome);
    }
    let failure = match (outcome.failed, outcome.timed_out, &probe, outcome.armed) {
        (Some(code), _, _, _) => {
            let stage = STAGE_NAMES.get((code >> 16) as usize).unwrap_or(&"?");
            let err = io::Error::from_raw_os_error(code & 0xffff);
            Some(Error::new(
                Kind::Os,
                format!("probe for jail {}: {stage} failed: {err}", jail.pid),
            ))
        }
        (None, true, _, _) => Some(Error::new(
            Kind::Timeout,
            format!("probe for jail {} did not start within 5 s", jail.pid),
        )),
        (None, false, Some(_), true) => None,
        _ => {
            let how = match probe.as_ref().map(Process::try_wait) {
                Some(Ok(Some(exit))) => format!(" ({exit})"),
                _ => String::new(),
            };
            Some(Error::new(
                Kind::Os,
                format!("probe for jail {} died before it was armed{how}", jail.pid),
            ))
        }
    };
    let failure = match (failure, &probe) {
        (None, Some(p)) => jail.join_cgroups(p.pid).err(),
        (failure, _) => failure,
    };
    match (failure, probe) {
        (None, Some(probe)) => Ok(probe),
        (Some(err), probe) => {
            if let Some(p) = probe {
                p.kill();
                let _ = p.wait();
            }
            Err(err)
        }
        (None, None) => Err(Error::new(
            Kind::Internal,
            format!(
                "probe for jail {}: armed without a pid; please report this bug",
                jail.pid
            ),
        )),
    }
}

#[derive(Default)]
struct StatusOutcome {
    probe_pid: Option<i32>,
    /// B, held by pidfd as soon as A has named it.
    probe: Option<Process>,
    armed: bool,
    failed: Option<i32>,
    timed_out: bool,
}

/// Reads helper messages until both helpers are done with the daemon's descriptor table: A
/// has exited, and B (if A reported one) has said armed or failed, or has died.
fn collect_until_helpers_leave(
    reader: &OwnedFd,
    helper: &Process,
    deadline: Instant,
) -> StatusOutcome {
    let mut out = StatusOutcome::default();
    let mut buf = Vec::with_capacity(32);
    loop {
        // Whether the helpers are gone is sampled before the pipe is read: what they wrote
        // before they went is then in it, and is drained before anything is decided.
        let a_gone = posix::readable_now(helper.poll_fd());
        let b_gone = out
            .probe
            .as_ref()
            .is_some_and(|p| posix::readable_now(p.poll_fd()));
        if posix::readable_now(reader.as_fd()) {
            if !read_messages(reader, &mut buf, &mut out) {
                return out;
            }
            if out.probe.is_none()
                && let Some(pid) = out.probe_pid
            {
                out.probe = Process::from_own_child(pid as u32).ok();
            }
            continue;
        }
        let b_done = out.armed || out.failed.is_some() || b_gone;
        if a_gone && (b_done || out.probe_pid.is_none()) {
            return out;
        }
        let mut watched = vec![reader.as_fd()];
        if !a_gone {
            watched.push(helper.poll_fd());
        }
        if let Some(p) = out.probe.as_ref().filter(|_| !b_done) {
            watched.push(p.poll_fd());
        }
        if !posix::wait_readable(&watched, deadline) {
            out.timed_out = true;
            return out;
        }
    }
}

/// After "armed": reads until the pipe's end of file, which B's exec brings (its copy of the
/// write end is close-on-exec), or its report that the exec failed.
fn collect_until_exec(reader: &OwnedFd, deadline: Instant, out: &mut StatusOutcome) {
    let mut buf = Vec::with_capacity(16);
    loop {
        if !posix::wait_readable(&[reader.as_fd()], deadline) {
            out.timed_out = true;
            return;
        }
        if !read_messages(reader, &mut buf, out) {
            return;
        }
    }
}

/// Reads what the pipe holds and decodes whole messages; false at end of file or on error.
fn read_messages(reader: &OwnedFd, buf: &mut Vec<u8>, out: &mut StatusOutcome) -> bool {
    let mut chunk = [0u8; 64];
    match rustix::io::read(reader, &mut chunk) {
        Ok(0) => return false,
        Ok(n) => buf.extend_from_slice(&chunk[..n]),
        Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => return true,
        Err(_) => return false,
    }
    while buf.len() >= 8 {
        let tag = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"));
        let value = i32::from_ne_bytes(buf[4..8].try_into().expect("4 bytes"));
        buf.drain(..8);
        match tag {
            MSG_PID => out.probe_pid = Some(value),
            MSG_ARMED => out.armed = true,
            _ => out.failed = out.failed.or(Some(value)),
        }
    }
    true
}

/// Helper A, in a fork of the daemon. Holds all of root's privileges on the host until setns;
/// from then on only those of root inside the jail's user namespace (when it has one).
#[allow(unsafe_code)]
fn helper_a(plan: &ProbePlan<'_>) -> ! {
    let status = plan.status;
    // First, before anything of the jail can see this copy of the daemon's memory.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        fail(status, Stage::Dumpable, e.into());
    }
    if let Err(e) = rustix::thread::set_thread_groups(&[]) {
        fail(status, Stage::Groups, e.into());
    }
    if let Err(e) =
        rustix::thread::move_into_thread_name_spaces(plan.jail.pidfd.as_fd(), plan.jail.namespaces)
    {
        fail(status, Stage::Setns, e.into());
    }
    // SAFETY: we are a single-threaded fork; the new process runs only `helper_b`.
    match unsafe { raw::clone_sibling() } {
        Err(e) => fail(status, Stage::Clone, e),
        Ok(Forked::Child) => helper_b(plan),
        Ok(Forked::Parent(pid)) => {
            if report(status, MSG_PID, pid).is_err() {
                posix::exit_now(1);
            }
            posix::exit_now(0)
        }
    }
}

/// Helper B: the future probe, already in the jail's namespaces, still running daemon code.
/// It sheds everything of the host, then execs the probe image.
fn helper_b(plan: &ProbePlan<'_>) -> ! {
    let status = plan.status;
    raw::set_all_signals_blocked(true);
    // A daemon started with SIGHUP ignored (as rc scripts may do) must not hand a deaf probe
    // to the jail: exec keeps ignored signals ignored, so reset them all.
    raw::reset_signal_dispositions();
    if let Err(e) = rustix::process::setsid() {
        fail(status, Stage::Session, e.into());
    }
    let entered = rustix::process::fchdir(&plan.root)
        .and_then(|()| rustix::process::chroot(c"."))
        .and_then(|()| rustix::process::chdir(c"/"));
    if let Err(e) = entered {
        fail(status, Stage::Root, e.into());
    }
    for cap in 0..64u32 {
        match rustix::thread::remove_capability_from_bounding_set(cap_from_index(cap)) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => fail(status, Stage::Bounding, e.into()),
        }
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    let uid = rustix::process::Uid::from_raw(plan.uid);
    let gid = rustix::process::Gid::from_raw(plan.gid);
    let groups = if plan.jail.setgroups_allowed {
        rustix::thread::set_thread_groups(&[gid])
    } else {
        Ok(())
    };
    let ids = groups
        .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
        .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid));
    if let Err(e) = ids {
        fail(status, Stage::Ids, e.into());
    }
    // The id change resets dumpability to fs.suid_dumpable: set it again, so that a jail
    // process of the same uid cannot ptrace B, which still holds the daemon's memory.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        fail(status, Stage::Dumpable, e.into());
    }
    // After the id change, which clears it.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        fail(status, Stage::DeathSignal, e.into());
    }
    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    if let Err(e) = rustix::thread::set_capabilities(None, none) {
        fail(status, Stage::Capabilities, e.into());
    }
    if let Err(e) = rustix::thread::set_no_new_privs(true) {
        fail(status, Stage::NoNewPrivs, e.into());
    }
    // A table of its own, with only the image and the status pipe of the daemon's low
    // descriptors (all close-on-exec): from here on the daemon may change its own.
    if let Err(e) = raw::own_descriptors_below(plan.low_end) {
        fail(status, Stage::Descriptors, e);
    }
    // If the daemon died before the death signal was set, nobody reads the pipe: the write
    // fails with EPIPE and the would-be orphan leaves instead of arming.
    if let Err(e) = report(status, MSG_ARMED, 0) {
        fail(status, Stage::Report, e);
    }
    if let Err(e) = raw::cloexec_from(0) {
        fail(status, Stage::Descriptors, e);
    }
    let err = raw::exec_fd(plan.image, &plan.argv, &plan.envp);
    fail(status, Stage::Exec, err)
}

fn cap_from_index(index: u32) -> rustix::thread::CapabilitySet {
    rustix::thread::CapabilitySet::from_bits_retain(1u64 << index)
}

/// Runs `/bin/sh -c command` on the host with exactly `env`, in `/`, with stdin from /dev/null
/// and stdout and stderr into a pipe, whose read end (non-blocking) is returned.
///
/// Like posix_spawn, the child shares the daemon's memory until its exec (the daemon waits);
/// like a probe's helpers, it shares the daemon's descriptor table until it takes one of its
/// own holding only the few lowest descriptors. Starting a command thus costs the same beside
/// 1 probe as beside 10,000. An exec that fails ends it with status 127, as a shell would.
#[allow(unsafe_code)]
pub fn spawn_command(
    spawner: &mut Spawner,
    command: &str,
    env: &[(&str, &str)],
) -> io::Result<(Process, OwnedFd)> {
    let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let args = [
        c"/bin/sh".to_owned(),
        c"-c".to_owned(),
        std::ffi::CString::new(command).map_err(invalid)?,
    ];
    let vars = env
        .iter()
        .map(|(name, value)| std::ffi::CString::new(format!("{name}={value}")).map_err(invalid))
        .collect::<io::Result<Vec<_>>>()?;
    let pointers = |strings: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
        let mut list: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
        list.push(std::ptr::null());
        list
    };
    let (argv, envp) = (pointers(&args), pointers(&vars));
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&reader, true)?;
    rustix::io::dup3(&writer, &mut spawner.slot, rustix::io::DupFlags::CLOEXEC)?;
    drop(writer);
    let low_end = spawner.low_end();
    let plan = CommandPlan {
        argv: &argv,
        envp: &envp,
        output: spawner.slot.as_fd(),
        null: spawner.null.as_fd(),
        low_end,
    };
    let arg = &plan as *const CommandPlan<'_> as *mut libc::c_void;
    // SAFETY: `command_entry` runs only `command_child`, which makes async-signal-safe calls,
    // reads the plan above (alive until we return) and writes nothing of ours, changes no
    // descriptor before it has a table of its own, and ends by exec or `_exit`.
    let pid = unsafe { raw::spawn_sharing(command_entry, &mut spawner.stack, arg) };
    // Here the child has exec'd or exited: it has left our memory and descriptor table.
    rustix::io::dup3(
        &spawner.null,
        &mut spawner.slot,
        rustix::io::DupFlags::CLOEXEC,
    )?;
    let process = Process::from_own_child(pid? as u32)?;
    Ok((process, reader))
}

/// What a command's child needs, prepared before the clone so that it never allocates.
struct CommandPlan<'a> {
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    output: BorrowedFd<'a>,
    null: BorrowedFd<'a>,
    low_end: u32,
}

/// The entry point of a command's child, on its own stack.
#[allow(unsafe_code)]
extern "C" fn command_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `CommandPlan` that `spawn_command` keeps alive until we have
    // exec'd or exited.
    let plan = unsafe { &*(arg as *const CommandPlan<'_>) };
    command_child(plan)
}

fn command_child(plan: &CommandPlan<'_>) -> ! {
    // The daemon blocks the signals it reads from its signalfd, and Rust ignores SIGPIPE:
    // neither may reach the command.
    raw::reset_signal_dispositions();
    raw::set_all_signals_blocked(false);
    let prepared = raw::own_descriptors_below(plan.low_end)
        .and_then(|()| raw::dup_onto(plan.null, 0))
        .and_then(|()| raw::dup_onto(plan.output, 1))
        .and_then(|()| raw::dup_onto(plan.output, 2))
        .and_then(|()| raw::cloexec_from(3))
        .and_then(|()| rustix::process::chdir(c"/").map_err(io::Error::from));
    if prepared.is_ok() {
        let _ = raw::exec_path(c"/bin/sh", plan.argv, plan.envp);
    }
    posix::exit_now(127)
}

/// Readiness of many descriptors at once (epoll), level-triggered, each under a token: the
/// daemon's cost per event does not grow with the number of probes.
pub struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        let epoll = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)?;
        Ok(Poller { epoll })
    }

    /// Reports `fd` under `token` while it is readable, until `remove`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        use rustix::event::epoll;
        epoll::add(
            &self.epoll,
            fd,
            epoll::EventData::new_u64(token),
            epoll::EventFlags::IN,
        )?;
        Ok(())
    }

    /// Stops reporting `fd`; one that was not added is no error.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = rustix::event::epoll::delete(&self.epoll, fd);
    }

    /// Waits up to `timeout` (for ever without one) and puts the ready tokens in `ready`.
    pub fn wait(&self, timeout: Option<Duration>, ready: &mut Vec<u64>) -> io::Result<()> {
        let mut events = Vec::with_capacity(256);
        let timeout = timeout.map(|t| {
            rustix::time::Timespec::try_from(t).unwrap_or(rustix::time::Timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            })
        });
        match rustix::event::epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events),
            timeout.as_ref(),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        ready.extend(events.iter().map(|e| e.data.u64()));
        Ok(())
    }
}

/// SO_PEERCRED and SO_PEERGROUPS of a connected Unix socket.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    Ok(PeerCredentials {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
        groups: raw::peer_groups(fd)?,
    })
}
