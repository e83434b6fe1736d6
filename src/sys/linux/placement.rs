//! Placing probes in a jail, as steps the daemon's loop drives: nothing here waits.
//!
//! Process choreography: the daemon forks helper A, which gets a copy of the daemon's
//! descriptor table and at once keeps only the lowest few (the probe image and the slots with
//! the status pipe, the jail's pidfd and its root). A makes itself non-dumpable, drops its
//! supplementary groups, joins the jail's namespaces, and clones one helper B per probe of the
//! batch with CLONE_PARENT, so that each B is born in the jail's pid namespace as a direct
//! child of the daemon (which reaps it by pidfd); A reports each B's pid and exits. Each B
//! shares A's memory until its exec (CLONE_VM | CLONE_VFORK, as posix_spawn does): nothing is
//! copied for it, and A goes on once it has exec'd. Each B
//! confines itself and execs the probe image. Between fork and exec all of them only make
//! async-signal-safe calls. A is never inside the jail's pid namespace or cgroups: the jail
//! cannot see, stop or freeze it. It can stop or freeze the Bs; then the placement's deadline
//! passes, and those not yet exec'd are killed and reported as not placed.
//!
//! The status pipe's end of file means every helper is done: A has exited and every B has
//! exec'd (its copy of the write end is close-on-exec) or died.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::image::Spawner;
use super::jail::Jail;
use super::process::Process;
use super::raw;
use crate::error::{Error, Kind};
use crate::sys::Pid;
use crate::sys::posix::{self, Forked};

/// How long a placement may take, from the fork of A to the last exec.
pub const PLACEMENT_DEADLINE: Duration = Duration::from_secs(5);

/// Messages on the status pipe: a tag, the probe's index in the batch, and a value; 12 bytes,
/// below PIPE_BUF, so that writes from many helpers never interleave.
const MSG_PID: u32 = 1;
const MSG_ARMED: u32 = 2;
const MSG_FAILED: u32 = 3;
/// From A: it has a descriptor table of its own, so the daemon may change its own again.
const MSG_OWN_TABLE: u32 = 4;
/// How long the daemon waits for A to take a table of its own: A is its fresh fork, on the
/// host, in no jail, and does that first, so this is microseconds unless the host stops it.
const OWN_TABLE_DEADLINE: Duration = Duration::from_secs(1);
/// The index helper A reports its own failure under.
const HELPER_A: u32 = u32::MAX;
const MSG_LEN: usize = 12;

/// The slots (see `Spawner`) a placement uses.
const SLOT_STATUS: usize = 0;
const SLOT_JAIL: usize = 1;
const SLOT_ROOT: usize = 2;

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

/// Most entries in a probe's environment: one per verb.
const MAX_PROBE_ENV: usize = 2;

/// Most words after the title in a probe's argv (its `status`).
const MAX_PROBE_ARGS: usize = 3;

/// One probe to place: its title (its argv[0]) and the status words after it (at most
/// `MAX_PROBE_ARGS`), its environment (its verbs, at most `MAX_PROBE_ENV` entries) and its
/// ids inside the jail.
pub struct ProbeRequest {
    pub title: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub uid: u32,
    pub gid: u32,
}

/// Everything the helpers need, prepared before the fork so that they never allocate.
struct ProbePlan<'a> {
    image: BorrowedFd<'a>,
    status: BorrowedFd<'a>,
    jail: BorrowedFd<'a>,
    root: BorrowedFd<'a>,
    namespaces: rustix::thread::ThreadNameSpaceType,
    setgroups_allowed: bool,
    /// Descriptors below this one are kept until exec (`image` and the slots among them).
    low_end: u32,
    probes: &'a [Planned],
    /// The stacks the Bs run on until their exec, `B_STACK` bytes each: the Bs share A's
    /// memory (CLONE_VM) and run at once, each on its own.
    stacks: *mut u8,
}

/// The stack of one helper B: far more than it uses before its exec.
const B_STACK: usize = 64 * 1024;

struct Planned {
    argv: [*const libc::c_char; MAX_PROBE_ARGS + 2],
    envp: [*const libc::c_char; MAX_PROBE_ENV + 1],
    uid: u32,
    gid: u32,
}

fn report(status: BorrowedFd<'_>, tag: u32, index: u32, value: i32) -> io::Result<()> {
    let mut msg = [0u8; MSG_LEN];
    msg[..4].copy_from_slice(&tag.to_ne_bytes());
    msg[4..8].copy_from_slice(&index.to_ne_bytes());
    msg[8..].copy_from_slice(&value.to_ne_bytes());
    posix::write_all_raw(status, &msg)
}

fn fail(status: BorrowedFd<'_>, index: u32, stage: Stage, err: io::Error) -> ! {
    let code = (stage as i32) << 16 | (err.raw_os_error().unwrap_or(0) & 0xffff);
    let _ = report(status, MSG_FAILED, index, code);
    posix::exit_now(1)
}

fn stage_error(jail: Pid, code: i32) -> Error {
    let stage = STAGE_NAMES.get((code >> 16) as usize).unwrap_or(&"?");
    let err = io::Error::from_raw_os_error(code & 0xffff);
    Error::new(
        Kind::Os,
        format!("probe for jail {jail}: {stage} failed: {err}"),
    )
}

/// What the daemon knows of one probe of a placement.
#[derive(Default)]
struct Progress {
    /// B, held by pidfd as soon as A has named it.
    process: Option<Process>,
    armed: bool,
    failed: Option<i32>,
}

/// A placement in flight.
pub struct Placement {
    jail: Pid,
    reader: OwnedFd,
    /// Helper A, reaped by the daemon once it is gone.
    helper: Process,
    probes: Vec<Progress>,
    /// Why A failed, for every probe it did not start.
    helper_failed: Option<i32>,
    /// A has said it has a descriptor table of its own.
    own_table: bool,
    buf: Vec<u8>,
    /// End of file on the status pipe: every helper is done.
    done: bool,
    deadline: Instant,
}

/// How a placement ended: per probe, its process or why it is not placed; and the processes
/// the daemon must reap (helper A, and Bs killed at the deadline).
pub struct Placed {
    pub results: Vec<Result<Process, Error>>,
    pub leftovers: Vec<Process>,
}

impl Placement {
    /// Starts placing `probes` in `jail`. Returns once helper A is forked: nothing waits.
    #[allow(unsafe_code)]
    pub fn start(
        spawner: &mut Spawner,
        jail: &Jail,
        probes: &[ProbeRequest],
        now: Instant,
    ) -> Result<Placement, Error> {
        let os = |what: &str, e: io::Error| Error::os(what.to_string(), e);
        spawner.check_sealed()?;
        let root = jail.open_root()?;
        let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| os("pipe", e.into()))?;
        rustix::io::ioctl_fionbio(&reader, true).map_err(|e| os("status pipe", e.into()))?;
        let filled = spawner
            .fill_slot(SLOT_STATUS, writer.as_fd())
            .and_then(|()| spawner.fill_slot(SLOT_JAIL, jail.pidfd.as_fd()))
            .and_then(|()| spawner.fill_slot(SLOT_ROOT, root.as_fd()));
        drop((writer, root));
        if let Err(e) = filled {
            let _ = spawner.clear_slots();
            return Err(os("dup3 into a low slot", e));
        }
        // Untouched until a B uses it: only the pages each B writes are ever allocated.
        let mut stacks = vec![0u8; B_STACK * probes.len()];
        let planned: Vec<Planned> = probes
            .iter()
            .map(|p| Planned {
                argv: {
                    let mut argv = [std::ptr::null(); MAX_PROBE_ARGS + 2];
                    argv[0] = p.title.as_ptr();
                    for (slot, word) in argv[1..].iter_mut().zip(p.args.iter().take(MAX_PROBE_ARGS))
                    {
                        *slot = word.as_ptr();
                    }
                    argv
                },
                envp: {
                    let mut envp = [std::ptr::null(); MAX_PROBE_ENV + 1];
                    for (slot, entry) in envp.iter_mut().zip(p.env.iter().take(MAX_PROBE_ENV)) {
                        *slot = entry.as_ptr();
                    }
                    envp
                },
                uid: p.uid,
                gid: p.gid,
            })
            .collect();
        let plan = ProbePlan {
            image: spawner.fd.as_fd(),
            status: spawner.slots[SLOT_STATUS].as_fd(),
            jail: spawner.slots[SLOT_JAIL].as_fd(),
            root: spawner.slots[SLOT_ROOT].as_fd(),
            namespaces: jail.namespaces,
            setgroups_allowed: jail.setgroups_allowed,
            low_end: spawner.low_end(),
            probes: &planned,
            stacks: stacks.as_mut_ptr(),
        };
        // What each B's entry point is handed, made before the fork: A never returns, so this
        // frame, and its memory which the Bs share, outlives every B's exec.
        let starts: Vec<BStart<'_>> = (0..probes.len() as u32)
            .map(|index| BStart { plan: &plan, index })
            .collect();
        // A shares the daemon's descriptor table rather than copying it: with 10,000 probes
        // the daemon holds 10,000 descriptors, and a copy (and A closing it again) per
        // placement made arming grow with the number of probes. A takes a table of its own,
        // holding only the low descriptors, before anything else, and says so.
        // SAFETY: the daemon is single-threaded, and helper A runs only `helper_a`, which
        // makes async-signal-safe calls on data prepared above, changes no descriptor before
        // it has a table of its own, and never returns.
        let forked = unsafe { raw::fork_sharing_descriptors() };
        let a_pid = match forked {
            Ok(Forked::Child) => helper_a(&plan, &starts),
            Ok(Forked::Parent(pid)) => pid,
            Err(e) => {
                let _ = spawner.clear_slots();
                return Err(os("clone", e));
            }
        };
        let helper = Process::from_own_child(a_pid).map_err(|e| os("pidfd_open of helper", e));
        let mut placement = Placement {
            jail: jail.pid,
            reader,
            helper: helper?,
            probes: probes.iter().map(|_| Progress::default()).collect(),
            helper_failed: None,
            own_table: false,
            buf: Vec::with_capacity(64),
            done: false,
            deadline: now + PLACEMENT_DEADLINE,
        };
        placement.wait_for_own_table();
        // A has its own copy of the slots: the daemon's copies of the write end, the jail's
        // pidfd and its root go, so that the pipe's end of file comes with the helpers' end.
        spawner
            .clear_slots()
            .map_err(|e| os("dup3 of /dev/null", e))?;
        Ok(placement)
    }

    /// Until A has a descriptor table of its own (or is gone), the daemon must not change its
    /// own: waits for A's word, briefly (see `OWN_TABLE_DEADLINE`). An A that does not say it
    /// in time is killed, and waited for until it is gone.
    fn wait_for_own_table(&mut self) {
        let deadline = Instant::now() + OWN_TABLE_DEADLINE;
        loop {
            self.step();
            if self.own_table || self.done || posix::readable_now(self.helper.poll_fd()) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.helper.kill();
                let helper = self.helper.poll_fd();
                let mut gone = [rustix::event::PollFd::new(
                    &helper,
                    rustix::event::PollFlags::IN,
                )];
                let _ = rustix::event::poll(&mut gone, None);
                return;
            }
            let timeout =
                rustix::time::Timespec::try_from(left).unwrap_or(rustix::time::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                });
            let helper = self.helper.poll_fd();
            let mut fds = [
                rustix::event::PollFd::new(&self.reader, rustix::event::PollFlags::IN),
                rustix::event::PollFd::new(&helper, rustix::event::PollFlags::IN),
            ];
            let _ = rustix::event::poll(&mut fds, Some(&timeout));
        }
    }

    /// Readable when a helper reports, and at the end of file.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.reader.as_fd()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Reads what the helpers reported; true once every helper is done.
    pub fn step(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match rustix::io::read(&self.reader, &mut chunk) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(_) => {
                    self.done = true;
                    break;
                }
            }
        }
        let whole = self.buf.len() / MSG_LEN * MSG_LEN;
        for msg in self.buf[..whole].chunks_exact(MSG_LEN) {
            let word = |i: usize| u32::from_ne_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
            let (tag, index, value) = (word(0), word(4), word(8) as i32);
            if tag == MSG_OWN_TABLE {
                self.own_table = true;
                continue;
            }
            if index == HELPER_A {
                self.helper_failed = self.helper_failed.or(Some(value));
                continue;
            }
            let Some(progress) = self.probes.get_mut(index as usize) else {
                continue;
            };
            match tag {
                // A pid is adopted only if it is our own unreaped child (CLONE_PARENT).
                MSG_PID if progress.process.is_none() => {
                    progress.process = Process::from_own_child(value).ok();
                }
                MSG_ARMED => progress.armed = true,
                MSG_FAILED => progress.failed = progress.failed.or(Some(value)),
                _ => {}
            }
        }
        self.buf.drain(..whole);
        self.done
    }

    /// Ends the placement, done or at its deadline: each probe that exec'd the probe image is
    /// moved into the jail's cgroups and placed; every other B is killed.
    pub fn finish(mut self, jail: Option<&Jail>) -> Placed {
        self.step();
        let cgroups = jail.map(Jail::cgroup_files);
        let mut leftovers = vec![self.helper];
        let late = !self.done;
        let mut results = Vec::with_capacity(self.probes.len());
        for progress in self.probes {
            let result = match (progress.process, progress.failed, progress.armed) {
                (process, Some(code), _) => {
                    leftovers.extend(process);
                    Err(stage_error(self.jail, code))
                }
                (None, None, _) => Err(match self.helper_failed {
                    Some(code) => stage_error(self.jail, code),
                    None if late => timed_out(self.jail),
                    None => Error::new(
                        Kind::Os,
                        format!(
                            "probe for jail {}: its helper ended without starting it",
                            self.jail
                        ),
                    ),
                }),
                (Some(process), None, false) => {
                    // It never said "armed": it died on the way, or is stopped in the jail.
                    let why = if late && !posix::readable_now(process.poll_fd()) {
                        timed_out(self.jail)
                    } else {
                        Error::new(
                            Kind::Os,
                            format!("probe for jail {} died before it was armed", self.jail),
                        )
                    };
                    leftovers.push(process);
                    Err(why)
                }
                (Some(process), None, true) => {
                    let exited = || posix::readable_now(process.poll_fd());
                    if late && !exited() && !runs_probe_image(&process) {
                        // Said "armed", then stopped or frozen before its exec.
                        leftovers.push(process);
                        Err(timed_out(self.jail))
                    } else {
                        // It exec'd the probe (an exec that fails says so). One that already
                        // ended was fired or killed: its exit status tells which, as for any
                        // armed probe, so a trigger right after the exec is not lost.
                        let joined = match (&cgroups, jail) {
                            (Some(Ok(files)), Some(jail)) => {
                                jail.join_cgroups(files, process.pid())
                            }
                            (Some(Err(e)), _) => Err(e.clone()),
                            _ => Err(Error::new(
                                Kind::NoJail,
                                format!("jail {}: stopped while its probes were placed", self.jail),
                            )),
                        };
                        match joined {
                            Ok(()) => Ok(process),
                            Err(_) if exited() => Ok(process),
                            Err(e) => {
                                leftovers.push(process);
                                Err(e)
                            }
                        }
                    }
                }
            };
            results.push(result);
        }
        for process in &leftovers {
            process.kill();
        }
        Placed { results, leftovers }
    }
}

fn timed_out(jail: Pid) -> Error {
    Error::new(
        Kind::Timeout,
        format!(
            "probe for jail {jail} did not start within {} s (stopped or frozen in the jail?)",
            PLACEMENT_DEADLINE.as_secs()
        ),
    )
}

/// Whether `process` has exec'd the probe image: its executable is the sealed memfd. Read
/// from the host's procfs while we hold the process unreaped, so the pid is its own.
fn runs_probe_image(process: &Process) -> bool {
    std::fs::read_link(format!("/proc/{}/exe", process.pid()))
        .is_ok_and(|exe| exe.to_string_lossy().starts_with("/memfd:jaildaemon-probe"))
}

/// Helper A, in a fork of the daemon. Holds all of root's privileges on the host until setns;
/// from then on only those of root inside the jail's user namespace (when it has one).
#[allow(unsafe_code)]
fn helper_a(plan: &ProbePlan<'_>, starts: &[BStart<'_>]) -> ! {
    let status = plan.status;
    // First, before anything of the jail can see this copy of the daemon's memory.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        fail(status, HELPER_A, Stage::Dumpable, e.into());
    }
    // A table of its own, holding of the daemon's descriptors only the image and the slots
    // (the kernel copies just those): the Bs share it until each takes a copy, which then
    // costs the few entries left. Until then the daemon waits, changing nothing in its table.
    if let Err(e) = raw::own_descriptors_below(plan.low_end) {
        fail(status, HELPER_A, Stage::Descriptors, e);
    }
    if report(status, MSG_OWN_TABLE, HELPER_A, 0).is_err() {
        posix::exit_now(1);
    }
    if let Err(e) = rustix::thread::set_thread_groups(&[]) {
        fail(status, HELPER_A, Stage::Groups, e.into());
    }
    // What every B would do alike is done once here, and inherited by each (clone copies
    // signal actions, the mask and the capability bounding set): at 10,000 probes that is
    // over a million system calls fewer.
    // A daemon started with SIGHUP ignored (as rc scripts may do) must not hand a deaf probe
    // to the jail: exec keeps ignored signals ignored, so reset them all.
    raw::set_all_signals_blocked(true);
    raw::reset_signal_dispositions();
    if let Err(e) = rustix::thread::move_into_thread_name_spaces(plan.jail, plan.namespaces) {
        fail(status, HELPER_A, Stage::Setns, e.into());
    }
    // No B, and no probe, can gain a capability by exec: the bounding set is empty (dropping
    // needs CAP_SETPCAP, which A holds in the jail's user namespace) and so is the ambient one.
    for cap in 0..64u32 {
        match rustix::thread::remove_capability_from_bounding_set(cap_from_index(cap)) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => fail(status, HELPER_A, Stage::Bounding, e.into()),
        }
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    for start in starts {
        let index = start.index;
        let arg = start as *const BStart<'_> as *mut libc::c_void;
        // SAFETY: `b_entry` runs only `helper_b`, which makes async-signal-safe calls, reads
        // `start` and the plan (in this never-returning process's memory, which B shares until
        // its exec), writes nothing but its own stack (the `index`th of `stacks`, used by no
        // one else), takes a descriptor table of its own before it changes one, and ends by
        // exec or `_exit`.
        let spawned = unsafe {
            let stack = plan.stacks.add(B_STACK * index as usize);
            raw::spawn_sibling_sharing(b_entry, stack, B_STACK, arg)
        };
        match spawned {
            Err(e) => fail(status, index, Stage::Clone, e),
            Ok(pid) => {
                if report(status, MSG_PID, index, pid).is_err() {
                    posix::exit_now(1);
                }
            }
        }
    }
    posix::exit_now(0)
}

/// What B's entry point is handed.
struct BStart<'a> {
    plan: &'a ProbePlan<'a>,
    index: u32,
}

/// B's entry point, on its own stack.
#[allow(unsafe_code)]
extern "C" fn b_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `BStart` that `helper_a` keeps alive until B has exec'd or exited.
    let start = unsafe { &*(arg as *const BStart<'_>) };
    let probe = &start.plan.probes[start.index as usize];
    helper_b(start.plan, start.index, probe)
}

/// Helper B: the future probe, already in the jail's namespaces, still running daemon code.
/// It sheds everything of the host, then execs the probe image.
fn helper_b(plan: &ProbePlan<'_>, index: u32, probe: &Planned) -> ! {
    let status = plan.status;
    let fail = |stage: Stage, err: io::Error| -> ! { fail(status, index, stage, err) };
    // Signals all blocked and at their default action, an empty capability bounding set:
    // inherited from A.
    if let Err(e) = rustix::process::setsid() {
        fail(Stage::Session, e.into());
    }
    let entered = rustix::process::fchdir(plan.root)
        .and_then(|()| rustix::process::chroot(c"."))
        .and_then(|()| rustix::process::chdir(c"/"));
    if let Err(e) = entered {
        fail(Stage::Root, e.into());
    }
    let uid = rustix::process::Uid::from_raw(probe.uid);
    let gid = rustix::process::Gid::from_raw(probe.gid);
    let groups = if plan.setgroups_allowed {
        rustix::thread::set_thread_groups(&[gid])
    } else {
        Ok(())
    };
    let ids = groups
        .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
        .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid));
    if let Err(e) = ids {
        fail(Stage::Ids, e.into());
    }
    // The id change resets dumpability to fs.suid_dumpable: set it again, so that a jail
    // process of the same uid cannot ptrace B, which still holds the daemon's memory.
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        fail(Stage::Dumpable, e.into());
    }
    // After the id change, which clears it.
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        fail(Stage::DeathSignal, e.into());
    }
    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    if let Err(e) = rustix::thread::set_capabilities(None, none) {
        fail(Stage::Capabilities, e.into());
    }
    if let Err(e) = rustix::thread::set_no_new_privs(true) {
        fail(Stage::NoNewPrivs, e.into());
    }
    // A table of its own (a copy of A's few entries, all close-on-exec), so that the exec
    // below closes this B's copy of the status pipe and not the one A and the others share.
    if let Err(e) = raw::own_descriptors_below(plan.low_end) {
        fail(Stage::Descriptors, e);
    }
    // If the daemon died before the death signal was set, nobody reads the pipe: the write
    // fails with EPIPE and the would-be orphan leaves instead of arming.
    if let Err(e) = report(status, MSG_ARMED, index, 0) {
        fail(Stage::Report, e);
    }
    if let Err(e) = raw::cloexec_from(0) {
        fail(Stage::Descriptors, e);
    }
    let err = raw::exec_fd(plan.image, &probe.argv, &probe.envp);
    fail(Stage::Exec, err)
}

fn cap_from_index(index: u32) -> rustix::thread::CapabilitySet {
    rustix::thread::CapabilitySet::from_bits_retain(1u64 << index)
}
