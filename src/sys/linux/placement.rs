//! Placing probes in a jail, as steps the daemon's loop drives: nothing here waits.
//!
//! The daemon forks helper **A** for a batch of probes of one jail, sharing its descriptor table
//! with it (`CLONE_FILES`) rather than copying it: with 10,000 probes the daemon holds 10,000
//! descriptors, and a copy per placement, closed again by A, made arming grow with the number of
//! probes. A makes itself non-dumpable (before anything of the jail can see this copy of the
//! daemon's memory; runc CVE-2016-9962), takes a table of its own holding only the daemon's few
//! lowest descriptors (`close_range` with `CLOSE_RANGE_UNSHARE`: the probe image and three low
//! slots holding the status pipe, the jail's pidfd and its root, filled just before the fork),
//! and says so on the status pipe; until then the daemon waits, changing nothing in its table
//! (A is its fresh fork on the host, in no jail yet: microseconds, at most 1 s, then killed). A
//! drops supplementary groups, blocks every signal and resets every disposition (so that a
//! daemon started with SIGHUP ignored cannot hand a deaf probe to the jail), joins the jail's
//! namespaces with one `setns` on the jail's pidfd (user first, as the kernel orders them; the
//! user namespace only when it differs from ours), and empties the capability bounding and
//! ambient sets.
//! Joining a pid namespace only affects children, so A clones one **B** per probe with
//! `CLONE_PARENT`: each B is born in the jail's pid namespace and is a direct child of the daemon,
//! which holds it by pidfd. The Bs share A's memory (`CLONE_VM`, each on a stack of its own) and
//! run side by side: nothing is copied for one, and its exec has nothing to tear down. This, and
//! doing in A what every B would do alike, is what arms 10,000 probes in about 1.4 s.
//! A reports each B's pid over the close-on-exec status pipe, waits until every B has left its
//! memory (the kernel clears a word of each at its exec or exit, `CLONE_CHILD_CLEARTID`), and
//! exits: the last user of its memory, so that the kernel never looks for a new owner of it
//! among the daemon's thousands of children (`mm_update_next_owner`), which it did at A's exit
//! and again at each B's exec, and which perf showed as the costliest step of arming.
//! A has no exit signal, nor have the Bs until their exec: a SIGCHLD made the daemon scan all its
//! children for stops (now at once only for a stop or continuation, within a second for an end),
//! and one per placement made many small placements (many clients arming at once) walk 10,000
//! probes each time. The daemon reaps A by its pidfd like any child.
//! The Bs' stacks are a mapping of their own, which no page of the daemon's heap is cleared for.
//! Each B starts a session, `chroot`s to the jail's root (from the slot), switches to its ids,
//! makes itself non-dumpable again (the id switch resets it), sets the parent-death signal to
//! SIGKILL, drops all capabilities, sets `no_new_privs`, takes a descriptor table of its own,
//! reports "armed", marks every descriptor close-on-exec but a copy of the status pipe as
//! `READY_FD`, and execs the probe image with argv
//! `[title]` (a `--status` probe: the title and three status words, computed by the core from
//! its last command and placed with it) and an environment that is empty but for the probe's verbs and their confirmation
//! windows in seconds (`USR1=0`, `USR2=10`).
//! If the daemon died before the death signal was set, the "armed" write fails with EPIPE and B
//! leaves instead of arming.
//! The probe closes `READY_FD` once it shows its title and waits; A closes its copy once every B
//! has left its memory, just before it exits. So the pipe's end of file means every probe
//! waits or is dead, every B that failed is gone, and A is done (its exit, which frees its copy
//! of the daemon's memory, is not waited for); then the
//! daemon writes each B's host pid into the jail's `cgroup.procs` files (every v1 or v2 hierarchy
//! where the jail's cgroup differs from the daemon's), so the jail's limits and freezer apply to
//! the probe; once A is in the jail's user namespace, the kernel would refuse
//! `CLONE_INTO_CGROUP`. A probe is answered "armed" only once it runs: at the end of file (its
//! title shows to `pkill -f` then; the kernel clears B's word early in the exec, before it sets
//! the new arguments), or, at the deadline, when its `/proc/PID/exe` is the sealed image (a
//! probe the jail stopped before it closed `READY_FD`).
//! A jail that stops or freezes its Bs delays only its own placement, to its deadline.
//! A and the Bs only make async-signal-safe calls; everything they use is prepared before the
//! fork.
//!
//! A resolves the probes' `-u` and `-g` names (`src/userdb.rs`, pure) after it joined the jail and
//! before it clones any B: it opens the jail's `/etc/passwd` and `/etc/group` below the jail's root
//! (the slot) with `openat2` (`RESOLVE_IN_ROOT`, `RESOLVE_NO_MAGICLINKS`, `RESOLVE_NO_XDEV`,
//! non-blocking), refuses anything but a regular file of at most 4 MiB and 100,000 lines, parses it
//! without allocating into a buffer the daemon made before the fork (untouched, so never resident,
//! in the daemon), and reports each probe's ids, or why not, on the status pipe; a probe refused
//! gets no B. A file that does not answer (a FUSE root whose server stopped) holds A until the
//! deadline kills it; A said which file it was reading, and that probe is refused naming it.
//! An A whose request the server took and never answers cannot end until the server answers or
//! ends (the kernel waits for the answer); like every killed child, it is reaped when its pidfd
//! says it is gone, never waited for.
//! A file is read only when it changed: A also reports the identity (device, inode, size,
//! modification and change time) of a file it read whole and that did not change while it read,
//! the daemon keeps it with the answers for the names asked (`userdb::Cache`, with the jail), and
//! the next placement hands both to A, which `fstat`s the file and uses the answers when it is
//! the same version. A re-arm of an `-R` probe costs the daemon nothing that grows with the file.
//!
//! The probe image is a memfd with mode `0111`, sealed against writes, growth and mode changes.
//! Exec of a file its caller cannot read makes the process non-dumpable and ties its memory to the
//! host's user namespace (`would_dump` in fs/exec.c), so even a jail root inside its own user
//! namespace cannot read, ptrace or re-exec it.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::image::Spawner;
use super::jail::Jail;
use super::process::Process;
use super::raw;
use crate::error::{Error, Kind};
use crate::ids::IdMap;
use crate::sys::posix::Pid;
use crate::sys::posix::{self, Forked};
use crate::userdb::{self, Answer, File, Identity, Query, Refusal};

/// How long a placement may take, from the fork of A to the last exec.
pub const PLACEMENT_DEADLINE: Duration = Duration::from_secs(5);

/// Messages on the status pipe: a tag, the probe's index in the batch, and a value; 16 bytes,
/// below PIPE_BUF, so that writes from many helpers never interleave.
const MSG_PID: u32 = 1;
const MSG_ARMED: u32 = 2;
const MSG_FAILED: u32 = 3;
/// From A: it has a descriptor table of its own, so the daemon may change its own again.
const MSG_OWN_TABLE: u32 = 4;
/// From A: it starts reading the user database file numbered by the index (`File`)...
const MSG_READING: u32 = 5;
/// ... and is done with it.
const MSG_READ: u32 = 6;
/// From A: one word of the identity of the file it read (index: file × 8 + word).
const MSG_IDENTITY: u32 = 7;
/// From A: what the passwd or group file it read answered for the probe's name.
const MSG_PASSWD_ANSWER: u32 = 8;
const MSG_GROUP_ANSWER: u32 = 9;
/// From A: the probe's ids, uid and gid (high 32 bits).
const MSG_IDS: u32 = 10;
/// From A: the probe's ids cannot be resolved (`Refusal::encode`); it gets no B.
const MSG_REFUSED: u32 = 11;
/// How long the daemon waits for A to take a table of its own: A is its fresh fork, on the
/// host, in no jail, and does that first, so this is microseconds unless the host stops it.
const OWN_TABLE_DEADLINE: Duration = Duration::from_secs(1);
/// The index helper A reports its own failure under.
const HELPER_A: u32 = u32::MAX;
const MSG_LEN: usize = 16;
/// The most messages A says of itself: its own table, reading and read for each of the two
/// files, six identity words of each, and its failure.
const MOST_FROM_A: usize = 1 + 2 * 2 + 2 * 6 + 1;
/// The most messages A and its B say of one probe: two answers, its ids or its refusal, its
/// pid, "armed" and its failure.
const MOST_PER_PROBE: usize = 2 + 1 + 1 + 1 + 1;

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
/// user and group inside the jail, which helper A resolves there.
pub struct ProbeRequest {
    pub title: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub query: Query,
}

/// Everything the helpers need, prepared before the fork so that they never allocate.
struct ProbePlan<'a> {
    image: BorrowedFd<'a>,
    status: BorrowedFd<'a>,
    jail: BorrowedFd<'a>,
    root: BorrowedFd<'a>,
    namespaces: rustix::thread::ThreadNameSpaceType,
    setgroups_allowed: bool,
    /// The jail's id maps (with a user namespace of its own), which A checks the ids against.
    uid_map: Option<&'a IdMap>,
    gid_map: Option<&'a IdMap>,
    /// Per file, the identity of the version whose answers the probes' `cached` hold.
    cached_identity: [Option<Identity>; 2],
    /// Descriptors below this one are kept until exec (`image` and the slots among them).
    low_end: u32,
    probes: &'a [Planned<'a>],
    /// The stacks the Bs run on until their exec, `B_STACK` bytes each: the Bs share A's
    /// memory (CLONE_VM) and run at once, each on its own.
    stacks: *mut u8,
    /// The signals whose action A resets for itself and its Bs (`raw::signals_not_default`).
    signals: u64,
}

/// The stack of one helper B: far more than it uses before its exec.
const B_STACK: usize = 64 * 1024;

struct Planned<'a> {
    argv: [*const libc::c_char; MAX_PROBE_ARGS + 2],
    envp: [*const libc::c_char; MAX_PROBE_ENV + 1],
    query: &'a Query,
    /// Per file, what its version `cached_identity` answered for the query's name.
    cached: [Option<Answer>; 2],
    /// Set by A, before it clones this probe's B: its ids, or that it has none.
    uid: Cell<u32>,
    gid: Cell<u32>,
    refused: Cell<bool>,
    /// What each file said of the query's name, as A read it.
    answers: [Cell<Option<Answer>>; 2],
    /// Not 0 until this probe's B has left A's memory (exec'd or exited): the kernel clears
    /// it (CLONE_CHILD_CLEARTID), and A waits for that before it exits.
    left: AtomicU32,
}

fn report(status: BorrowedFd<'_>, tag: u32, index: u32, value: u64) -> io::Result<()> {
    let mut msg = [0u8; MSG_LEN];
    msg[..4].copy_from_slice(&tag.to_ne_bytes());
    msg[4..8].copy_from_slice(&index.to_ne_bytes());
    msg[8..].copy_from_slice(&value.to_ne_bytes());
    posix::write_all_raw(status, &msg)
}

/// `report` from A, which has nothing left to do when the daemon no longer listens.
fn report_or_leave(status: BorrowedFd<'_>, tag: u32, index: u32, value: u64) {
    if report(status, tag, index, value).is_err() {
        posix::exit_now(1);
    }
}

fn fail(status: BorrowedFd<'_>, index: u32, stage: Stage, err: io::Error) -> ! {
    let code = (stage as i32) << 16 | (err.raw_os_error().unwrap_or(0) & 0xffff);
    let _ = report(status, MSG_FAILED, index, code as u64);
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
    /// Its ids as A resolved them, or why they could not be.
    ids: Option<(u32, u32)>,
    refused: Option<Refusal>,
    /// What each file A read answered for its name.
    answers: [Option<Answer>; 2],
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
    /// The probes' user and group, to name them in a refusal.
    queries: Vec<Query>,
    /// The user database file A is reading, if it has not said it is done with it.
    reading: Option<File>,
    /// Per file, the words of the identity of the version A read.
    identity: [[Option<u64>; 6]; 2],
    buf: Vec<u8>,
    /// Messages read so far, never more than the batch's bound (`MOST_FROM_A`...).
    heard: usize,
    /// Everything the helpers may say fits in the pipe: none of them can block on a write the
    /// daemon has not read, so the daemon need wake only at its end (`quiet_until_done`).
    quiet: bool,
    /// End of file on the status pipe: every helper is done.
    done: bool,
    deadline: Instant,
}

/// A placed probe's process and its ids (uid, gid) inside the jail.
pub type PlacedProbe = (Process, (u32, u32));

/// How a placement ended: per probe, its process or why it is not placed; and the processes
/// the daemon must reap (helper A, and Bs killed at the deadline).
pub struct Placed {
    pub results: Vec<Result<PlacedProbe, Error>>,
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
        // Untouched until a B uses it: only the pages each B writes are ever allocated.
        let mut stacks = raw::Stacks::new(B_STACK * probes.len()).map_err(|e| os("mmap", e))?;
        let root = jail.open_root()?;
        let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| os("pipe", e.into()))?;
        rustix::io::ioctl_fionbio(&reader, true).map_err(|e| os("status pipe", e.into()))?;
        // The pipe's room, as the kernel gave it: 64 KiB for a daemon holding CAP_SYS_ADMIN
        // (smaller only if `fs.pipe-max-size` is); read, not assumed. Writes of 16 bytes fill
        // it whole: the kernel merges them into its pages, and 16 divides a page.
        let room = rustix::pipe::fcntl_getpipe_size(&reader).unwrap_or(0);
        let quiet = MSG_LEN * (MOST_FROM_A + MOST_PER_PROBE * probes.len()) <= room;
        let filled = spawner
            .fill_slot(SLOT_STATUS, writer.as_fd())
            .and_then(|()| spawner.fill_slot(SLOT_JAIL, jail.pidfd.as_fd()))
            .and_then(|()| spawner.fill_slot(SLOT_ROOT, root.as_fd()));
        drop((writer, root));
        if let Err(e) = filled {
            let _ = spawner.clear_slots();
            return Err(os("dup3 into a low slot", e));
        }
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
                query: &p.query,
                cached: File::BOTH.map(|file| {
                    let key = p.query.key(file)?;
                    jail.userdb.answer(file, key)
                }),
                uid: Cell::new(0),
                gid: Cell::new(0),
                refused: Cell::new(false),
                answers: [Cell::new(None), Cell::new(None)],
                left: AtomicU32::new(1),
            })
            .collect();
        // Where A reads a user database: untouched (no page of it allocated) unless A reads.
        let mut database = userdb::buffer_for(probes.iter().map(|p| &p.query));
        let plan = ProbePlan {
            image: spawner.fd.as_fd(),
            status: spawner.slots[SLOT_STATUS].as_fd(),
            jail: spawner.slots[SLOT_JAIL].as_fd(),
            root: spawner.slots[SLOT_ROOT].as_fd(),
            namespaces: jail.namespaces,
            setgroups_allowed: jail.setgroups_allowed,
            uid_map: jail.uid_map.as_ref(),
            gid_map: jail.gid_map.as_ref(),
            cached_identity: File::BOTH.map(|f| jail.userdb.snapshot(f).map(|s| s.identity)),
            low_end: spawner.low_end(),
            probes: &planned,
            stacks: stacks.as_mut_ptr(),
            signals: raw::signals_not_default(),
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
            Ok(Forked::Child) => helper_a(&plan, &starts, &mut database),
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
            queries: probes.iter().map(|p| p.query.clone()).collect(),
            reading: None,
            identity: [[None; 6]; 2],
            buf: Vec::with_capacity(64),
            heard: 0,
            quiet,
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

    /// Whether the helpers' every word fits in the pipe unread: then only its end (a hang-up,
    /// when every writer closed) need wake the daemon, once, where each report woke it before
    /// (three times for one probe: its ids, its pid, "armed"; the daemon's CPU per arming
    /// request was a tenth to a fifth lower for it, BENCHMARKS.md). A batch too large for the pipe is read as it comes.
    pub fn quiet_until_done(&self) -> bool {
        self.quiet
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
        self.heard += whole / MSG_LEN;
        debug_assert!(
            self.heard <= MOST_FROM_A + MOST_PER_PROBE * self.probes.len(),
            "the helpers said more than MOST_FROM_A and MOST_PER_PROBE allow"
        );
        for msg in self.buf[..whole].chunks_exact(MSG_LEN) {
            let word = |i: usize| u32::from_ne_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
            let (tag, index) = (word(0), word(4));
            let value = u64::from_ne_bytes(msg[8..].try_into().expect("8 bytes"));
            match tag {
                MSG_OWN_TABLE => self.own_table = true,
                MSG_READING => self.reading = Some(file_numbered(index)),
                MSG_READ => self.reading = None,
                MSG_IDENTITY => {
                    let (file, word) = ((index / 8) as usize, (index % 8) as usize);
                    if let Some(slot) = self.identity.get_mut(file).and_then(|f| f.get_mut(word)) {
                        *slot = Some(value);
                    }
                }
                _ if index == HELPER_A => {
                    self.helper_failed = self.helper_failed.or(Some(value as i32));
                }
                _ => {
                    let Some(progress) = self.probes.get_mut(index as usize) else {
                        continue;
                    };
                    match tag {
                        // A pid is adopted only if it is our own unreaped child (CLONE_PARENT).
                        MSG_PID if progress.process.is_none() => {
                            progress.process = Process::from_own_child(value as i32).ok();
                        }
                        MSG_ARMED => progress.armed = true,
                        MSG_FAILED => progress.failed = progress.failed.or(Some(value as i32)),
                        MSG_PASSWD_ANSWER => progress.answers[0] = Some(Answer::decode(value)),
                        MSG_GROUP_ANSWER => progress.answers[1] = Some(Answer::decode(value)),
                        MSG_IDS => progress.ids = Some((value as u32, (value >> 32) as u32)),
                        MSG_REFUSED => progress.refused = Some(Refusal::decode(value)),
                        _ => {}
                    }
                }
            }
        }
        self.buf.drain(..whole);
        self.done
    }

    /// Keeps in the jail's `userdb::Cache` what A read of its user database: per file read
    /// whole (its identity reported), the answers for the probes' names.
    fn learn(&self, jail: &mut Jail) {
        for file in File::BOTH {
            let words = self.identity[file as usize];
            let Some(words) = words.iter().copied().collect::<Option<Vec<u64>>>() else {
                continue;
            };
            let identity = Identity::from_words(words.try_into().expect("6 words"));
            let answers = self
                .queries
                .iter()
                .zip(&self.probes)
                .filter_map(|(query, progress)| {
                    Some((
                        query.key(file)?.to_string(),
                        progress.answers[file as usize]?,
                    ))
                })
                .collect();
            jail.userdb.learn(file, identity, answers);
        }
    }

    /// Ends the placement, done or at its deadline: each probe that exec'd the probe image is
    /// moved into the jail's cgroups and placed; every other B is killed.
    pub fn finish(mut self, mut jail: Option<&mut Jail>) -> Placed {
        self.step();
        if let Some(jail) = jail.as_deref_mut() {
            self.learn(jail);
        }
        let jail = jail.as_deref();
        let cgroups = jail.map(Jail::cgroup_files);
        let mut leftovers = vec![self.helper];
        let late = !self.done;
        let mut results = Vec::with_capacity(self.probes.len());
        for (progress, query) in self.probes.into_iter().zip(&self.queries) {
            let ids = progress.ids;
            let result = match (progress.process, progress.failed, progress.armed) {
                (process, _, _) if progress.refused.is_some() => {
                    leftovers.extend(process);
                    let refusal = progress.refused.expect("matched");
                    Err(refusal.to_error(self.jail, query))
                }
                (process, Some(code), _) => {
                    leftovers.extend(process);
                    Err(stage_error(self.jail, code))
                }
                (None, None, _) => Err(match self.helper_failed {
                    Some(code) => stage_error(self.jail, code),
                    None if late => match self.reading {
                        Some(file) => userdb::timed_out(self.jail, file, PLACEMENT_DEADLINE),
                        None => timed_out(self.jail),
                    },
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
                        let ids = ids.ok_or_else(|| {
                            Error::new(
                                Kind::Internal,
                                format!("probe for jail {}: its ids were not reported", self.jail),
                            )
                        });
                        match (joined, ids) {
                            (Ok(()), Ok(ids)) => Ok((process, ids)),
                            (Err(_), Ok(ids)) if exited() => Ok((process, ids)),
                            (Err(e), _) | (_, Err(e)) => {
                                leftovers.push(process);
                                Err(e)
                            }
                        }
                    }
                }
            };
            results.push(result);
        }
        // A is usually still on its way out at the end of file (it closed its copy of the pipe
        // just before its exit): killing it then costs nothing, and covers an A that is not.
        for process in &leftovers {
            process.kill();
        }
        Placed { results, leftovers }
    }
}

/// The number A reports a user database file under.
fn file_numbered(index: u32) -> File {
    if index == File::Group as u32 {
        File::Group
    } else {
        File::Passwd
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
fn helper_a(plan: &ProbePlan<'_>, starts: &[BStart<'_>], database: &mut [u8]) -> ! {
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
    // SAFETY: A ends by `_exit`, and it and the Bs use only the image and the slots, all
    // below `low_end`.
    if let Err(e) = unsafe { raw::own_descriptors_below(plan.low_end) } {
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
    // to the jail: exec keeps ignored signals ignored, so reset each not at its default.
    raw::set_all_signals_blocked(true);
    raw::reset_signal_dispositions(plan.signals);
    if let Err(e) = rustix::thread::move_into_thread_name_spaces(plan.jail, plan.namespaces) {
        fail(status, HELPER_A, Stage::Setns, e.into());
    }
    // No B, and no probe, can gain a capability by exec: the bounding set is empty (dropping
    // needs CAP_SETPCAP, which A holds in the jail's user namespace) and so is the ambient one.
    // Capabilities are numbered without gaps up to the kernel's last one, and EINVAL names the
    // first number past it: the loop stops there rather than asking for every number up to 63.
    for cap in 0..64u32 {
        match rustix::thread::remove_capability_from_bounding_set(cap_from_index(cap)) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => fail(status, HELPER_A, Stage::Bounding, e.into()),
        }
    }
    let _ = rustix::thread::clear_ambient_capability_set();
    // Inside the jail, with its credentials, and before any B: a read that never ends holds
    // only A, until the daemon kills it at the deadline.
    resolve_ids(plan, database);
    for start in starts {
        let index = start.index;
        if plan.probes[index as usize].refused.get() {
            continue;
        }
        let arg = start as *const BStart<'_> as *mut libc::c_void;
        // SAFETY: `b_entry` runs only `helper_b`, which makes async-signal-safe calls, reads
        // `start` and the plan (in this never-returning process's memory, which B shares until
        // its exec), writes nothing but its own stack (the `index`th of `stacks`, used by no
        // one else), takes a descriptor table of its own before it changes one, and ends by
        // exec or `_exit`.
        let spawned = unsafe {
            let stack = plan.stacks.add(B_STACK * index as usize);
            let left = &plan.probes[index as usize].left;
            raw::spawn_sibling_sharing(b_entry, stack, B_STACK, arg, left)
        };
        match spawned {
            Err(e) => fail(status, index, Stage::Clone, e),
            Ok(pid) => {
                if report(status, MSG_PID, index, pid as u64).is_err() {
                    posix::exit_now(1);
                }
            }
        }
    }
    // A owns this memory in the kernel's eyes (`mm->owner`, for its memory cgroup). Leaving it
    // while a B still shares it makes the kernel look for a new owner among the daemon's
    // children, one for every probe, and at worst among every process of the host; and each
    // B that becomes the owner does it again at its exec. Waiting until the Bs have left
    // (each clears its word at its exec or exit) makes A the last user, and its exit free.
    // A B the jail stopped before its exec holds A too, until the deadline kills both.
    for start in starts {
        let probe = &plan.probes[start.index as usize];
        if !probe.refused.get() {
            raw::wait_until_left(&probe.left);
        }
    }
    // Every B has its own table by now: A's copy of the status pipe closes here, and the end
    // of file waits only for the probes, not for A's exit, which frees a copy of the daemon's
    // memory (the daemon reaps A by its pidfd).
    // SAFETY: A uses no descriptor from here on.
    let _ = unsafe { raw::own_descriptors_below(0) };
    posix::exit_now(0)
}

/// Helper A resolves each probe's ids in the jail's own user database and reports them (or
/// why not), after it joined the jail and before it clones any B. Each file a probe needs is
/// opened below the jail's root as `Jail::open_root` found it, never across a mount point,
/// and read whole into `database` only when it is not the version whose answers the daemon
/// already holds. Allocates nothing.
fn resolve_ids(plan: &ProbePlan<'_>, database: &mut [u8]) {
    let status = plan.status;
    let refuse = |index: usize, refusal: Refusal| {
        plan.probes[index].refused.set(true);
        report_or_leave(status, MSG_REFUSED, index as u32, refusal.encode());
    };
    for file in File::BOTH {
        let needing = || {
            plan.probes
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.query.needs(file) && !p.refused.get())
        };
        if needing().next().is_none() {
            continue;
        }
        report_or_leave(status, MSG_READING, file as u32, 0);
        let all_cached = needing().all(|(_, p)| p.cached[file as usize].is_some());
        match read_database(plan, file, all_cached, database) {
            Err(refusal) => needing().for_each(|(index, _)| refuse(index, refusal)),
            Ok(read) => {
                for (index, p) in needing() {
                    let key = p.query.key(file).unwrap_or_default();
                    let answer = match read {
                        Some(text) => userdb::look_up(file, text, key),
                        None => p.cached[file as usize].unwrap_or_default(),
                    };
                    let tag = match file {
                        File::Passwd => MSG_PASSWD_ANSWER,
                        File::Group => MSG_GROUP_ANSWER,
                    };
                    report_or_leave(status, tag, index as u32, answer.encode());
                    p.answers[file as usize].set(Some(answer));
                }
            }
        }
        report_or_leave(status, MSG_READ, file as u32, 0);
    }
    for (index, p) in plan.probes.iter().enumerate() {
        if p.refused.get() {
            continue;
        }
        let [passwd, group] = [0, 1].map(|f| p.answers[f].get());
        let ids = userdb::combine(p.query, passwd, group).and_then(|(uid, gid)| {
            // An id the jail's user namespace does not map could not be switched to.
            if plan.uid_map.is_some_and(|m| m.to_host(uid).is_none()) {
                return Err(Refusal::Unmapped(false, uid));
            }
            if plan.gid_map.is_some_and(|m| m.to_host(gid).is_none()) {
                return Err(Refusal::Unmapped(true, gid));
            }
            Ok((uid, gid))
        });
        match ids {
            Ok((uid, gid)) => {
                p.uid.set(uid);
                p.gid.set(gid);
                report_or_leave(
                    status,
                    MSG_IDS,
                    index as u32,
                    u64::from(uid) | u64::from(gid) << 32,
                );
            }
            Err(refusal) => refuse(index, refusal),
        }
    }
}

/// The text of the jail's `file` as A reads it: `None` when the file is still the version
/// `plan.cached_identity` names and `cached` says every probe's answer is known (nothing is
/// read), else the whole text (empty for a jail without the file: its users are numbers).
fn read_database<'b>(
    plan: &ProbePlan<'_>,
    file: File,
    cached: bool,
    database: &'b mut [u8],
) -> Result<Option<&'b [u8]>, Refusal> {
    use rustix::fs::{OFlags, ResolveFlags};
    let path: &CStr = match file {
        File::Passwd => c"etc/passwd",
        File::Group => c"etc/group",
    };
    let unreadable = |e: rustix::io::Errno| Refusal::Unreadable(file, e.raw_os_error() as u32);
    // RESOLVE_IN_ROOT: symlinks and `..` resolve inside the jail's root; RESOLVE_NO_XDEV: a
    // mount over the file (the jail's /proc/kmsg, a FIFO) is refused, not opened; O_NONBLOCK:
    // nor could a FIFO or device block A.
    let fd = match rustix::fs::openat2(
        plan.root,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Some(&[])),
        Err(rustix::io::Errno::XDEV) => return Err(Refusal::MountPoint(file)),
        Err(e) => return Err(unreadable(e)),
    };
    let cached = cached
        .then_some(plan.cached_identity[file as usize])
        .flatten();
    let (text, identity) = posix::read_user_database(&fd, file, cached, database)?;
    // Only a version that did not change while it was read is remembered by the daemon.
    for (word, value) in identity.iter().flat_map(Identity::words).enumerate() {
        let index = file as u32 * 8 + word as u32;
        report_or_leave(plan.status, MSG_IDENTITY, index, value);
    }
    Ok(text)
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
#[allow(unsafe_code)]
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
    let uid = rustix::process::Uid::from_raw(probe.uid.get());
    let gid = rustix::process::Gid::from_raw(probe.gid.get());
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
    // SAFETY: B ends by exec or `_exit` and uses only the image and the slots, all below
    // `low_end`.
    if let Err(e) = unsafe { raw::own_descriptors_below(plan.low_end) } {
        fail(Stage::Descriptors, e);
    }
    // If the daemon died before the death signal was set, nobody reads the pipe: the write
    // fails with EPIPE and the would-be orphan leaves instead of arming.
    if let Err(e) = report(status, MSG_ARMED, index, 0) {
        fail(Stage::Report, e);
    }
    // SAFETY: the table is this B's own, and nothing in it is to outlive the exec below but
    // the status pipe, which the probe closes once it waits (`READY_FD`): the daemon answers
    // at the pipe's end of file, when every probe shows its title, not at its exec's start.
    let kept = unsafe { raw::cloexec_from(0) }
        .and_then(|()| unsafe { raw::dup_onto(status, crate::magic::READY_FD as i32) });
    if let Err(e) = kept {
        fail(Stage::Descriptors, e);
    }
    // SAFETY: `Planned`'s argv and envp are arrays one longer than the most entries ever
    // filled, so their last pointer is null; the others point into the C strings of the
    // batch, which `place` keeps alive until every B has exec'd or exited.
    let err = unsafe { raw::exec_fd(plan.image, &probe.argv, &probe.envp) };
    fail(Stage::Exec, err)
}

fn cap_from_index(index: u32) -> rustix::thread::CapabilitySet {
    rustix::thread::CapabilitySet::from_bits_retain(1u64 << index)
}
