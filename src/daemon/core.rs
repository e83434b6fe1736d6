//! The daemon's core: probes, their jails, limits and timers, as a state machine without I/O.
//!
//! Events go in through `Core::handle`, with the time they happen; effects come out, for the
//! shell (`daemon/mod.rs` and its owners) to perform with the platform code. Nothing here
//! reads a file, touches a process or looks at a clock, so every phase × event pair is tested
//! as plain code (the tables at the end of this file).
//!
//! A probe is in exactly one `Phase`; each phase carries what it needs and nothing else:
//!
//! | phase     | what it holds                         | listed as |
//! |-----------|---------------------------------------|-----------|
//! | `Finding` | its jail's name is being looked up    | placing   |
//! | `Placing` | its jail; a placement in flight, or queued for one | placing |
//! | `Armed`   | its jail, process and ids             | armed     |
//! | `Held`    | its jail; fired, back when its commands end (not before its cooldown) | running |
//! | `Cooling` | its jail; fired, back when its cooldown is over | cooling |
//! | `Spent`   | its jail; fired single shot: back when its jail runs again (survivors), or gone once its command ends | running, spent |
//! | `Retrying`| its jail, which runs; placed again after a back-off | retrying |
//! | `Waiting` | its jail is not running; looked for again | waiting |
//! | `Refused` | why it cannot be placed; no retry fixes that | refused |
//! | `Leaving` | why it is done with (removed, a plain probe's jail stopped, …); gone once its commands end | running |
//!
//! A command has a phase of its own (`RunPhase`: running, stopping, lingering, killed), kept in
//! `Core::runs`; the count of a probe's commands still running is derived from them
//! (`RunTally`), and holds back re-arming (`-r`), bounds `-R`, and keeps a fired probe listed
//! until its command ends. For `queue`, a probe also keeps the one run owed to triggers that
//! came while its command ran.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use log::Level::{self, Debug, Info, Warn};

use super::logbudget::{Cause, LineKind, LogLine};
use crate::definition::{Definition, Verb};
use crate::error::{Error, Kind};
use crate::proto::{Origin, ProbeInfo, ProbeState, Respawn, Response};
use crate::selector::{self, Member, Selector};
use crate::sys::{Exit, Pid};

pub use super::ids::{ClientId, CommandId, JailId, PlacementId, ProbeId};
/// A probe's uid and gid inside its jail.
pub type Ids = (u32, u32);

/// What the shell read of a jail when it opened it, for the warnings given when a probe is
/// armed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JailFacts {
    /// The same for every name of one running jail (on Linux its pid namespace, whose
    /// processes one `pkill` reaches; on FreeBSD its jid), though each PID names it by
    /// another `JailId`.
    pub identity: (u64, u64),
    /// Its uids are the host's (no user namespace of its own; every FreeBSD jail): a host
    /// process can make a jail process of its uid signal a probe of that uid.
    pub shares_host_users: bool,
}
/// A placed probe's process and ids, or why it is not placed.
pub type PlaceResult = Result<(Pid, Ids), Error>;

const MAGIC_EXIT: i32 = crate::magic::MAGIC_EXIT as i32;
/// Probes at once, in all (waiting ones included) and in one jail. Each armed one costs a
/// process, a descriptor and some 70 KiB of kernel memory (BENCHMARKS.md).
pub const MAX_PROBES: usize = 20_000;
pub const MAX_PROBES_PER_JAIL: usize = 10_000;
/// Commands of one `-R` probe that may run at once; at the limit it is not re-armed until one
/// ends, so a jail that hammers it cannot pile up commands on the host.
pub const MAX_RUNNING_PER_PROBE: usize = 4;
/// How often probes whose jail is not running look for it (one lookup per name and round).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// The back-off of a probe whose placement failed, or that ended without firing in a running
/// jail: 1 s, doubling with each failure in a row, at most 5 min. A fire resets it.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Placements in flight: one per jail, each placing at most `PLACEMENT_BATCH` probes, and at
/// most `MAX_PLACEMENTS` jails at once. More wait in their jail's queue.
pub const PLACEMENT_BATCH: usize = 1024;
pub const MAX_PLACEMENTS: usize = 8;
/// A jail stays held this long after its last probe ended: a stopping container kills its
/// probes before its init is gone, so they end first, and its stop is still logged with them.
pub const JAIL_GRACE: Duration = Duration::from_secs(5);

/// How often a selector's members are listed again when no event stream says anything: the
/// fallback for a stream that hangs, died, or was never there.
pub const SURVEY_INTERVAL: Duration = Duration::from_secs(30);
/// A selector is listed at most once in this time, however many events ask for it.
pub const SURVEY_GAP: Duration = Duration::from_secs(1);

/// A command stopped at its timeout gets SIGTERM, and this long later SIGKILL, with
/// everything it started.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Other probes a warning names by id; beyond these it gives their number.
const NAMED_IN_WARNING: usize = 5;

/// The first `NAMED_IN_WARNING` of `total` names, then how many more: a warning's line stays
/// short however many probes share a title.
fn first_of(names: impl Iterator<Item = String>, total: usize) -> String {
    let mut named: Vec<String> = names.take(NAMED_IN_WARNING).collect();
    if total > NAMED_IN_WARNING {
        named.push(format!("{} more", total - NAMED_IN_WARNING));
    }
    named.join(", ")
}

/// Descriptors the daemon holds besides its probes, jails, commands, clients and lookups:
/// stdio, the listener, the signal and event queues, the probe image and its slots, the
/// pidfile, syslog.
pub const BASE_DESCRIPTORS: usize = 16;
/// Descriptors kept free for what must not fail at the limit: a fired probe's command (its
/// pidfd, its output pipe, and the pipe spawning uses) and a placement (status pipe, the
/// jail's root, a helper's pidfd, a new jail's pidfd).
pub const RESERVED_DESCRIPTORS: usize = 16;

/// Limits on probes: the documented ones, or lower ones from `JAILDAEMON_PROBE_LIMITS`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_jail: usize,
    /// The daemon's descriptor limit (RLIMIT_NOFILE).
    pub descriptors: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            total: MAX_PROBES,
            per_jail: MAX_PROBES_PER_JAIL,
            descriptors: usize::MAX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Finding {
        reply: Option<ClientId>,
    },
    Placing {
        jail: JailId,
        /// None while queued behind its jail's placement in flight.
        placement: Option<PlacementId>,
        reply: Option<ClientId>,
    },
    Armed {
        jail: JailId,
        pid: Pid,
        ids: Ids,
        /// Seen stopped by a signal, and not continued since.
        stopped: bool,
    },
    Held {
        jail: JailId,
        ids: Ids,
        /// Its cooldown's end (`-r`): once its commands end, it waits for this too.
        until: Option<Instant>,
    },
    /// Fired, and kept out of its jail until its cooldown is over.
    Cooling {
        jail: JailId,
        ids: Ids,
        until: Instant,
    },
    /// Fired single shot in its jail, which still runs: a survivor is placed again when the
    /// jail runs again, a plain probe is forgotten once its commands end.
    Spent {
        jail: JailId,
    },
    /// Done with: kept only to name its commands still running in the log and in `-l`, and
    /// forgotten when the last ends.
    Leaving {
        why: Leaving,
    },
    Retrying {
        jail: JailId,
        at: Instant,
        why: String,
    },
    Waiting {
        /// None for a jail named by PID: it never comes back, so it is never looked for.
        at: Option<Instant>,
        why: String,
    },
    Refused {
        why: String,
    },
}

/// Why a probe is `Phase::Leaving`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// Removed (`-k`, a reload, a state file not written).
    Removed,
    /// A plain probe whose jail stopped.
    JailStopped,
    /// A plain probe that fired and could not be placed again.
    NotRearmed,
    /// A plain probe that ended without firing.
    Unfired,
}

impl Phase {
    fn jail(&self) -> Option<JailId> {
        match self {
            Phase::Placing { jail, .. }
            | Phase::Armed { jail, .. }
            | Phase::Held { jail, .. }
            | Phase::Cooling { jail, .. }
            | Phase::Retrying { jail, .. }
            | Phase::Spent { jail } => Some(*jail),
            Phase::Finding { .. }
            | Phase::Waiting { .. }
            | Phase::Refused { .. }
            | Phase::Leaving { .. } => None,
        }
    }

    /// Holds, or is about to hold, a process and its descriptor.
    fn has_process(&self) -> bool {
        matches!(self, Phase::Placing { .. } | Phase::Armed { .. })
    }
}

#[derive(Debug)]
pub struct Probe {
    pub def: Definition,
    pub origin: Origin,
    pub phase: Phase,
    /// A `queue` probe's owed run, or a watchdog probe's period (`owed`, `watch`). Boxed, as
    /// few probes are either, and none is both (`Definition::validate`).
    beside: Option<Box<Beside>>,
    /// Failures in a row (placements, ends without firing), for the back-off.
    pub strikes: u32,
    /// It was armed in its jail before: placing it again (after a kill, a restart of its
    /// jail) is the jail's doing, and logged as such.
    pub armed_before: bool,
    /// What it has done so far (`record`): none until its first fire, feed, stop or note.
    record: Option<Box<Record>>,
    /// A probe of a selector's member: which selector, and which container. Boxed: most
    /// probes are no member, and every probe would carry its 120 bytes.
    pub member: Option<Box<FleetMember>>,
}

/// What a probe keeps beside its phase, not in it: the probe is placed, armed, fired, killed or
/// left by its jail meanwhile, and this outlives all of those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beside {
    /// `queue`: a run owed to triggers that came while its command ran, started when that
    /// command ends (only a removal drops it).
    Owed(Owed),
    /// A watchdog probe's period: it runs through placements, arms and re-arms, and pauses
    /// only while the jail is not running.
    Watch(Watch),
}

/// What a probe has done: its fires, feeds, stops and timeouts, its last command and what last
/// happened to it. Boxed in the probe and made at the first of these: most probes wait armed
/// with nothing to tell, and every one of 10,000 carried its 130 bytes.
#[derive(Debug, Default)]
pub struct Record {
    /// Signals that fed a watchdog probe.
    pub fed: u64,
    /// Its last command: how it ended, how long it ran, and when.
    pub last_run: Option<LastRun>,
    pub fired: u64,
    /// Its commands stopped at their timeout.
    pub timeouts: u64,
    /// Times its probe was stopped by a signal while armed.
    pub stops: u64,
    /// What last happened to it, for `-l`.
    pub last: Option<Note>,
}

/// The record of a probe that has done nothing yet.
static NOTHING_YET: Record = Record {
    fed: 0,
    last_run: None,
    fired: 0,
    timeouts: 0,
    stops: 0,
    last: None,
};

/// What last happened to a probe, as `-l` says it (with what its phase adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// It could not be placed: the error's message.
    NotPlaced(String),
    /// Stopped by this signal while armed.
    Stopped(i32),
    Continued,
    /// A watchdog fed this many times, with its period.
    Fed {
        times: u64,
        period: Duration,
    },
    /// Its process ended so, and nothing fired.
    Unfired(Exit),
    CommandStarted,
    /// Its command ended with this status (as logged) after `took`; `timeout` when it was
    /// stopped at it.
    CommandEnded {
        status: String,
        took: Duration,
        timeout: Option<Duration>,
    },
    /// Its command could not be started, and why.
    CommandNotStarted(String),
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::NotPlaced(why) => f.write_str(why),
            Note::Stopped(sig) => {
                write!(
                    f,
                    "stopped by signal {sig}: it fires nothing until continued"
                )
            }
            Note::Continued => f.write_str("continued after a stop"),
            Note::Fed { times, period } => write!(
                f,
                "fed {times} time(s); the command runs after {} without a signal",
                crate::definition::show_duration(period.as_secs())
            ),
            Note::Unfired(exit) => write!(f, "ended by {exit}, nothing fired"),
            Note::CommandStarted => f.write_str("command started"),
            Note::CommandEnded {
                status,
                took,
                timeout,
            } => {
                if let Some(timeout) = timeout {
                    write!(
                        f,
                        "command timed out after {} and was stopped: ",
                        crate::definition::show_duration(timeout.as_secs())
                    )?;
                } else {
                    f.write_str("command ")?;
                }
                write!(f, "ended with {status} after {}", human_duration(*took))
            }
            Note::CommandNotStarted(why) => write!(f, "command not started: {why}"),
        }
    }
}

/// The container a selector's probe belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMember {
    /// The selector as declared (`docker:label=role=web`).
    pub selector: String,
    pub member: Member,
}

/// A declared selector: its probes' definitions, one per title, and its listing.
#[derive(Debug)]
struct Fleet {
    selector: Selector,
    /// Each title's definition; a member's probe is it with the member's jail.
    templates: BTreeMap<String, Definition>,
    /// A listing is in flight; `again`: another was asked for meanwhile.
    surveying: bool,
    again: bool,
    /// When the last listing started.
    started: Option<Instant>,
    /// When it is listed again without an event (`SURVEY_INTERVAL`).
    due: Option<Instant>,
    /// Why its last listing failed, logged once until it changes.
    error: Option<String>,
}

/// Where a watchdog probe's period is. Its due times are indexed in `Core::watch_timers`,
/// kept by `Core::set_watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Its jail runs: the command runs at `due` unless a signal comes first.
    Running { due: Instant },
    /// Its jail is not running, or the probe was never armed yet: this much of the period is
    /// left, and it runs again once the probe is armed.
    Paused { left: Duration },
    /// It ran the command for this silence; the next signal starts a period again.
    Fired,
}

/// A run owed to a `queue` probe: since when, and for which run of its jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owed {
    pub since: Instant,
    pub jail: JailId,
    /// Triggers it stands for (coalesced into this one run).
    pub triggers: u64,
    /// The verb of the first of them, whose command the run is; `None` for SIGHUP's.
    pub verb: Option<Verb>,
}

impl Probe {
    /// A watchdog probe's period, where it is.
    pub fn watch(&self) -> Option<Watch> {
        match self.beside.as_deref() {
            Some(Beside::Watch(watch)) => Some(*watch),
            _ => None,
        }
    }

    /// Only `Core::set_watch` and `Core::set_phase` change it, keeping `watch_timers`. A
    /// feed rewrites the box the period is in.
    fn put_watch(&mut self, watch: Option<Watch>) {
        match (self.beside.as_deref_mut(), watch) {
            (Some(Beside::Watch(kept)), Some(watch)) => *kept = watch,
            // Clearing a period that a `queue` probe never had leaves its owed run alone.
            (Some(Beside::Owed(_)), None) => {}
            (Some(Beside::Owed(_)), Some(_)) => unreachable!("a `queue` probe has no watchdog"),
            (_, watch) => self.beside = watch.map(|watch| Box::new(Beside::Watch(watch))),
        }
    }

    /// The run a `queue` probe owes.
    pub fn owed(&self) -> Option<&Owed> {
        match self.beside.as_deref() {
            Some(Beside::Owed(owed)) => Some(owed),
            _ => None,
        }
    }

    /// The run it owes, made by `first` when it owes none yet.
    fn owe(&mut self, first: impl FnOnce() -> Owed) -> &mut Owed {
        let beside = self
            .beside
            .get_or_insert_with(|| Box::new(Beside::Owed(first())));
        match &mut **beside {
            Beside::Owed(owed) => owed,
            Beside::Watch(_) => unreachable!("a watchdog probe is never `queue`"),
        }
    }

    fn take_owed(&mut self) -> Option<Owed> {
        let owed = self.owed().copied();
        if owed.is_some() {
            self.beside = None;
        }
        owed
    }

    /// What it has done so far.
    pub fn record(&self) -> &Record {
        self.record.as_deref().unwrap_or(&NOTHING_YET)
    }

    /// What it has done so far, to add to: made at the first addition.
    fn record_mut(&mut self) -> &mut Record {
        self.record.get_or_insert_with(Box::default)
    }

    /// How log lines name a probe: id, jail as named, title.
    pub fn tag(&self, id: ProbeId) -> String {
        format!("probe {id} (jail {}, '{}')", self.def.jail, self.def.title)
    }

    /// A log line about probe `id` (this one) that its jail caused, and can repeat at will:
    /// the shell limits these per probe and per jail (`logbudget`).
    pub fn line(&self, id: ProbeId, kind: LineKind, level: Level, text: String) -> Effect {
        Effect::Log(self.log_line(id, kind, level, text))
    }

    /// `line`, not yet an effect of its own (one that rides on another effect).
    fn log_line(&self, id: ProbeId, kind: LineKind, level: Level, text: String) -> LogLine {
        LogLine {
            level,
            text,
            cause: Cause::Probe {
                probe: id,
                tag: self.tag(id),
                jail: self.def.jail.clone(),
                kind,
            },
        }
    }

    /// Declared and persisted probes wait for their jail instead of being forgotten.
    fn survives(&self) -> bool {
        self.origin != Origin::Command
    }

    /// The manager whose event stream would bring this probe back as its container starts:
    /// one that survives its jail and names a container.
    fn wants_stream(&self) -> Option<&'static str> {
        self.survives()
            .then(|| selector::stream_for(&self.def.jail))
            .flatten()
    }
}

/// Counts, indexes and timers derived from the probes' phases. Every phase change goes through
/// `Core::set_phase`, which keeps them, so that no event costs a walk over every probe.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    /// Probes placed or being placed: each holds (or will hold) a process and a descriptor.
    with_process: usize,
    with_process_in: BTreeMap<JailId, usize>,
    /// Probes being looked up or placed.
    unsettled: usize,
    /// Probes by the jail their phase holds.
    in_jail: BTreeMap<JailId, BTreeSet<ProbeId>>,
    /// The same, by title too: which probes a `pkill -f TITLE` in that jail reaches. By a
    /// 64-bit hash of the title (`title_key`), and a lone probe without a set of its own: a
    /// copy of each title and a set per probe cost several times that at 10,000 probes. Two
    /// titles of one jail sharing a hash would only make a warning name a probe too many.
    titled: BTreeMap<JailId, BTreeMap<u64, Titled>>,
    /// Probes queued for a placement, by jail.
    queued: BTreeMap<JailId, BTreeSet<ProbeId>>,
    /// When retrying, waiting and cooling probes are due.
    timers: BTreeSet<(Instant, ProbeId)>,
}

/// What `Core::runs` adds up to, kept by `Core::set_run` alone: no command's end walks the
/// others.
#[derive(Debug, Default, PartialEq)]
struct RunTally {
    /// Commands whose shell runs, by probe: `-r` waits for none, `-R` for fewer than
    /// `MAX_RUNNING_PER_PROBE`, a spent probe is kept until none.
    by_probe: BTreeMap<ProbeId, usize>,
    /// Commands whose shell runs, in all: each holds two descriptors.
    running: usize,
    /// When the next step of each command's stop is due.
    timers: BTreeSet<(Instant, CommandId)>,
}

impl RunTally {
    /// Counts command `command` in `run` in (`add`) or out.
    fn count(&mut self, command: CommandId, run: &Run, add: bool) {
        if run.phase.running() {
            let n = self.by_probe.entry(run.probe).or_default();
            if add {
                *n += 1;
                self.running += 1;
            } else {
                *n -= 1;
                self.running -= 1;
                if *n == 0 {
                    self.by_probe.remove(&run.probe);
                }
            }
        }
        if let Some(at) = run.phase.due() {
            if add {
                self.timers.insert((at, command));
            } else {
                self.timers.remove(&(at, command));
            }
        }
    }
}

/// The probes of one title in one jail (`Tally::titled`).
#[derive(Debug, PartialEq)]
enum Titled {
    One(ProbeId),
    Many(BTreeSet<ProbeId>),
}

impl Titled {
    fn len(&self) -> usize {
        match self {
            Titled::One(_) => 1,
            Titled::Many(ids) => ids.len(),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = ProbeId> + '_> {
        match self {
            Titled::One(id) => Box::new(std::iter::once(*id)),
            Titled::Many(ids) => Box::new(ids.iter().copied()),
        }
    }
}

/// The key of a title in `Tally::titled`: a hash with fixed keys, the same in every run.
fn title_key(title: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    title.hash(&mut hasher);
    hasher.finish()
}

impl Tally {
    /// Counts `phase` of probe `id`, titled `title`, in (`add`) or out.
    fn count(&mut self, id: ProbeId, phase: &Phase, title: &str, add: bool) {
        fn step(n: &mut usize, add: bool) {
            if add { *n += 1 } else { *n -= 1 }
        }
        fn index<K: Ord + Copy>(
            map: &mut BTreeMap<K, BTreeSet<ProbeId>>,
            key: K,
            id: ProbeId,
            add: bool,
        ) {
            let set = map.entry(key).or_default();
            if add {
                set.insert(id);
            } else {
                set.remove(&id);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
        if phase.has_process() {
            step(&mut self.with_process, add);
            let jail = phase.jail().expect("a placed probe has a jail");
            let n = self.with_process_in.entry(jail).or_default();
            step(n, add);
            if *n == 0 {
                self.with_process_in.remove(&jail);
            }
        }
        if matches!(phase, Phase::Finding { .. } | Phase::Placing { .. }) {
            step(&mut self.unsettled, add);
        }
        if let Some(jail) = phase.jail() {
            index(&mut self.in_jail, jail, id, add);
        }
        // A spent probe is not in its jail, nor will it be while the jail runs.
        if let Some(jail) = phase
            .jail()
            .filter(|_| !matches!(phase, Phase::Spent { .. }))
        {
            let titled = self.titled.entry(jail).or_default();
            let key = title_key(title);
            if add {
                match titled.remove(&key) {
                    None => titled.insert(key, Titled::One(id)),
                    Some(Titled::One(other)) => {
                        titled.insert(key, Titled::Many(BTreeSet::from([other, id])))
                    }
                    Some(Titled::Many(mut ids)) => {
                        ids.insert(id);
                        titled.insert(key, Titled::Many(ids))
                    }
                };
            } else {
                match titled.get_mut(&key) {
                    Some(Titled::One(other)) if *other == id => {
                        titled.remove(&key);
                    }
                    Some(Titled::Many(ids)) => {
                        ids.remove(&id);
                        if let Some(&last) = ids.first().filter(|_| ids.len() == 1) {
                            titled.insert(key, Titled::One(last));
                        }
                    }
                    _ => {}
                }
                if titled.is_empty() {
                    self.titled.remove(&jail);
                }
            }
        }
        if let Phase::Placing {
            jail,
            placement: None,
            ..
        } = phase
        {
            index(&mut self.queued, *jail, id, add);
        }
        let due = match phase {
            Phase::Retrying { at, .. }
            | Phase::Waiting { at: Some(at), .. }
            | Phase::Cooling { until: at, .. } => Some(*at),
            _ => None,
        };
        if let Some(at) = due {
            if add {
                self.timers.insert((at, id));
            } else {
                self.timers.remove(&(at, id));
            }
        }
    }
}

/// Where a command is, from its start (`Effect::Run`) until nothing more is due for it; a
/// command leaves `Core::runs` when it is over. Kept in `Core::runs` with its probe, and changed
/// only by `Core::set_run`, which keeps the timers and the counts of running commands.
///
/// | phase       | its shell | next                                              |
/// |-------------|-----------|---------------------------------------------------|
/// | `Running`   | runs      | ended (over), its deadline (→ `Stopping`: SIGTERM) |
/// | `Stopping`  | runs      | ended (→ `Lingering`), `kill_at` (→ `Killed`: SIGKILL) |
/// | `Lingering` | ended     | `kill_at` (over: SIGKILL for what it left)        |
/// | `Killed`    | runs      | ended (over)                                      |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    /// Its shell runs; with a timeout, it is stopped at `deadline`.
    Running { deadline: Option<Instant> },
    /// It had SIGTERM at its timeout and its shell still runs: SIGKILL at `kill_at`.
    Stopping { kill_at: Instant },
    /// It had SIGTERM and its shell ended: SIGKILL still comes at `kill_at`, for what it left.
    Lingering { kill_at: Instant },
    /// It had SIGKILL and its shell has not ended yet.
    Killed,
}

impl RunPhase {
    /// Its shell still runs: it counts against its probe's commands.
    fn running(&self) -> bool {
        !matches!(self, RunPhase::Lingering { .. })
    }

    /// When its next step is due, if it has one.
    fn due(&self) -> Option<Instant> {
        match *self {
            RunPhase::Running { deadline } => deadline,
            RunPhase::Stopping { kill_at } | RunPhase::Lingering { kill_at } => Some(kill_at),
            RunPhase::Killed => None,
        }
    }

    /// It had SIGTERM at its timeout.
    fn timed_out(&self) -> bool {
        !matches!(self, RunPhase::Running { .. })
    }
}

/// A command of a probe, in its phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub probe: ProbeId,
    /// Its timeout: its probe's, or its verb's own.
    pub timeout: Option<Duration>,
    pub phase: RunPhase,
}

/// A jail with probes, held by the shell (one descriptor for all its probes) and watched.
#[derive(Debug)]
struct JailEntry {
    /// The jail as first named.
    spec: String,
    facts: JailFacts,
    /// Probes of this jail that ended by a signal within the last `JAIL_GRACE`, with their
    /// titles, so that its stop names them (a plain one is forgotten by then).
    ended: Vec<(ProbeId, Instant, String)>,
    /// When its last probe went; it is let go `JAIL_GRACE` later.
    idle_since: Option<Instant>,
    /// Its placement in flight.
    placing: Option<PlacementId>,
}

/// What a placement is asked to place: one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToPlace {
    pub probe: ProbeId,
    pub title: String,
    pub user: Option<String>,
    pub group: Option<String>,
    /// The verbs it waits for besides SIGHUP, each with its confirmation window (or none).
    pub verbs: Vec<(Verb, Option<Duration>)>,
    /// `status`: what its command line shows after the title, once a command has ended.
    pub status: Option<LastRun>,
}

/// A probe's last command: in `-l`, the metrics, and a `status` probe's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRun {
    /// Its exit code, or the signal that ended it, kept apart as waitid(2) tells them (`exit
    /// 137` is not a SIGKILL); `None` when it could not be started.
    pub status: Option<Exit>,
    pub took: Duration,
    pub ended: Instant,
}

#[derive(Debug)]
pub enum Event {
    /// The utility asks to arm a probe (`-c`, with `-P` persisted).
    Arm {
        client: ClientId,
        def: Definition,
        persist: bool,
    },
    /// At start: a probe of the state file or the configuration file.
    Declare { def: Definition, origin: Origin },
    /// SIGHUP: the configuration file's probes, as read again.
    Reload(Vec<Definition>),
    /// `-k`: probes of `jail` with this id or title.
    Remove {
        client: ClientId,
        which: String,
        jail: String,
    },
    /// `-l`.
    List { client: ClientId },
    /// A lookup asked for by `Effect::Find` ended.
    Found {
        spec: String,
        result: Result<(JailId, JailFacts), Error>,
    },
    /// A placement asked for by `Effect::Place` ended, with one result per probe.
    Placed {
        placement: PlacementId,
        results: Vec<(ProbeId, PlaceResult)>,
    },
    /// An armed probe's process ended (reaped).
    ProbeExited { probe: ProbeId, exit: Exit },
    /// The probe's process was stopped by signal `Some(n)`, or continued (`None`).
    ProbeStopped { probe: ProbeId, signal: Option<i32> },
    /// A command ended (`status` as logged), or could not be started.
    CommandEnded {
        command: CommandId,
        /// How it ended (`exit code 0`), or why it could not be started.
        outcome: Result<String, String>,
        /// Its exit code, or the signal that ended it; `None` when it could not be started.
        status: Option<Exit>,
        took: Duration,
    },
    /// A jail's process ended: the jail stopped.
    JailStopped { jail: JailId },
    /// The state file could not be written; these probes were not yet answered "armed".
    StateNotSaved {
        error: Error,
        unconfirmed: Vec<(ClientId, ProbeId)>,
    },
    /// A listing asked for by `Effect::Survey` ended: the selector's running members.
    Surveyed {
        selector: String,
        result: Result<Vec<Member>, String>,
    },
    /// A manager's event stream says these containers started or stopped (`NAME`; for
    /// containerd `NAMESPACE/ID`).
    Changed {
        manager: &'static str,
        names: BTreeSet<String>,
    },
    /// Time passed; due timers run.
    Tick,
}

#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Look the jail named `spec` up and hold it; answer with `Event::Found`.
    Find { spec: String },
    /// List the running containers `selector` matches; answer with `Event::Surveyed`.
    Survey { selector: String },
    /// Place these probes in `jail`; answer with `Event::Placed`.
    Place {
        placement: PlacementId,
        jail: JailId,
        probes: Vec<ToPlace>,
    },
    /// Kill the probe's process and reap it once gone, without waiting for it.
    Kill { probe: ProbeId },
    /// Stop a command at its timeout, with everything it started: SIGTERM, or with `force`
    /// SIGKILL (also to what is left of it once its shell has ended).
    Stop { command: CommandId, force: bool },
    /// Command `command` of a probe with a timeout is over: its cgroup goes, once empty after
    /// SIGKILL (`killed`), else now if empty (what a command that ended in time left runs on,
    /// logged).
    Clear { command: CommandId, killed: bool },
    /// Run a probe's command on the host; answer with `Event::CommandEnded`.
    Run {
        command: CommandId,
        probe: ProbeId,
        def: Box<Definition>,
        jail: JailId,
        /// For a probe of a pod's container: the pod, for the command's environment.
        pod: Option<selector::Pod>,
        /// Why it runs (triggered, a watchdog's silence, a queued run): written once the
        /// command has started, so that no log write stands between a trigger and its command.
        announce: LogLine,
    },
    Reply {
        client: ClientId,
        response: Response,
    },
    /// Replace the state file with these probes, then answer each `confirm` "armed" (or,
    /// when the file cannot be written, send `Event::StateNotSaved`).
    Save {
        probes: Vec<Definition>,
        confirm: Vec<Confirm>,
    },
    /// Stop watching the jail and close its descriptor.
    Release { jail: JailId },
    /// A line for the log, in its place among the effects (a reload's summary is logged once
    /// its probes are killed, and placed or refused), with what caused it: the shell limits
    /// the lines a jail can cause (`logbudget`).
    Log(LogLine),
}

impl Effect {
    /// A log line of the host's own doing (requests, reloads, jails that stop): never limited.
    pub fn log(level: Level, text: impl Into<String>) -> Effect {
        Effect::Log(LogLine::host(level, text))
    }
}

/// A `-P` request answered "armed" once the state file is written: its client, probe, the
/// probe's process and the warnings of its arming.
pub type Confirm = (ClientId, ProbeId, Pid, Vec<String>);

pub struct Core {
    /// Boxed: a B-tree node holds eleven entries and, filled in id order, is left a third
    /// empty; with a few hundred bytes a probe inline, that third was most of the daemon's
    /// memory per probe (BENCHMARKS.md, "Reading").
    probes: BTreeMap<ProbeId, Box<Probe>>,
    tally: Tally,
    /// The managers whose event streams the probes that survive their jail want (a declared
    /// or `-P` probe named by container), with how many want each: kept by `insert_probe` and
    /// `forget`, so that asking for them walks no probe.
    streams_wanted: BTreeMap<&'static str, usize>,
    jails: BTreeMap<JailId, JailEntry>,
    /// Held jails by identity: the names (PIDs) under which one running jail is held.
    jails_by_identity: BTreeMap<(u64, u64), BTreeSet<JailId>>,
    /// Names being looked up.
    finding: BTreeSet<String>,
    /// Placements in flight: their jail.
    placements: BTreeMap<PlacementId, JailId>,
    /// Commands started and not over, in their phases (`RunPhase`): a command stopped at its
    /// timeout stays after its shell ended, until SIGKILL for what it left.
    runs: BTreeMap<CommandId, Run>,
    run_tally: RunTally,
    /// When running watchdog periods end (`Watch::Running`), kept by `set_watch`.
    watch_timers: BTreeSet<(Instant, ProbeId)>,
    limits: Limits,
    /// Descriptors the shell holds for clients, lookups, placements and killed processes.
    shell_descriptors: usize,
    /// A reload's summary, logged once its probes are placed or refused.
    reloaded: Option<String>,
    /// Declared selectors, by the selector as written.
    fleets: BTreeMap<String, Fleet>,
    /// When selectors are listed again (`Fleet::due`).
    survey_timers: BTreeSet<(Instant, String)>,
    next_probe: ProbeId,
    next_placement: PlacementId,
    next_command: CommandId,
    effects: Vec<Effect>,
}

impl Core {
    pub fn new(limits: Limits) -> Core {
        Core {
            probes: BTreeMap::new(),
            tally: Tally::default(),
            streams_wanted: BTreeMap::new(),
            jails: BTreeMap::new(),
            jails_by_identity: BTreeMap::new(),
            finding: BTreeSet::new(),
            placements: BTreeMap::new(),
            runs: BTreeMap::new(),
            run_tally: RunTally::default(),
            watch_timers: BTreeSet::new(),
            limits,
            shell_descriptors: 0,
            reloaded: None,
            fleets: BTreeMap::new(),
            survey_timers: BTreeSet::new(),
            next_probe: 1,
            next_placement: 1,
            next_command: 1,
            effects: Vec::new(),
        }
    }

    /// Takes one event at `now`; returns what the shell must do, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match event {
            Event::Arm {
                client,
                def,
                persist,
            } => self.arm(client, def, persist, now),
            Event::Declare { def, .. } if selector::is_selector(&def.jail) => {
                self.declare_fleet(def, now);
            }
            Event::Declare { def, origin } => {
                self.add(def, origin, None, now);
            }
            Event::Reload(wanted) => self.reload(wanted, now),
            Event::Remove {
                client,
                which,
                jail,
            } => self.remove_request(client, &which, &jail, now),
            Event::List { client } => {
                let probes = self.list(now);
                self.effects.push(Effect::Reply {
                    client,
                    response: Response::Probes { probes },
                });
            }
            Event::Found { spec, result } => self.found(spec, result, now),
            Event::Placed { placement, results } => self.placed(placement, results, now),
            Event::ProbeExited { probe, exit } => self.probe_exited(probe, exit, now),
            Event::ProbeStopped { probe, signal } => self.probe_stopped(probe, signal),
            Event::CommandEnded {
                command,
                outcome,
                status,
                took,
            } => self.command_ended(command, outcome, status, took, now),
            Event::JailStopped { jail } => self.jail_stopped(jail, now),
            Event::StateNotSaved { error, unconfirmed } => {
                for (client, probe) in unconfirmed {
                    self.effects.push(Effect::Reply {
                        client,
                        response: Response::Refused(error.clone()),
                    });
                    self.remove_one(probe, "its state file could not be written", now);
                }
            }
            Event::Surveyed { selector, result } => self.surveyed(&selector, result, now),
            Event::Changed { manager, names } => self.changed(manager, &names, now),
            Event::Tick => self.tick(now),
        }
        self.schedule_placements();
        if self.settled()
            && let Some(message) = self.reloaded.take()
        {
            self.effects.push(Effect::log(Info, message));
        }
        std::mem::take(&mut self.effects)
    }

    /// The earliest moment a timer is due, for the shell's wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        let probes = self.tally.timers.first().map(|(at, _)| *at);
        let stops = self.run_tally.timers.first().map(|(at, _)| *at);
        let watches = self.watch_timers.first().map(|(at, _)| *at);
        let stops = match (stops, watches) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let jails = self
            .jails
            .values()
            .filter_map(|j| j.idle_since.map(|t| t + JAIL_GRACE));
        let surveys = self.survey_timers.first().map(|(at, _)| *at);
        probes
            .into_iter()
            .chain(stops)
            .chain(jails)
            .chain(surveys)
            .min()
    }

    /// Nothing is being looked up, listed or placed: what was asked for so far is settled.
    pub fn settled(&self) -> bool {
        self.tally.unsettled == 0 && !self.fleets.values().any(|f| f.surveying)
    }

    /// The one way a probe changes phase (or enters or leaves the core): the tally follows.
    fn set_phase(&mut self, id: ProbeId, phase: Phase) {
        let probe = self.probes.get_mut(&id).expect("present");
        if matches!(phase, Phase::Spent { .. } | Phase::Leaving { .. }) {
            // A spent or leaving probe (removed while its command runs, say) has no watchdog
            // left.
            if let Some(watch) = probe.watch() {
                if let Watch::Running { due } = watch {
                    self.watch_timers.remove(&(due, id));
                }
                probe.put_watch(None);
            }
        }
        let old = std::mem::replace(&mut probe.phase, phase);
        self.tally.count(id, &old, &probe.def.title, false);
        self.tally.count(id, &probe.phase, &probe.def.title, true);
    }

    fn insert_probe(&mut self, id: ProbeId, probe: Probe) {
        self.tally.count(id, &probe.phase, &probe.def.title, true);
        if let Some(manager) = probe.wants_stream() {
            *self.streams_wanted.entry(manager).or_default() += 1;
        }
        self.probes.insert(id, Box::new(probe));
    }

    /// The one way a watchdog's state changes, keeping `watch_timers`.
    fn set_watch(&mut self, id: ProbeId, watch: Watch) {
        let probe = self.probes.get_mut(&id).expect("present");
        if let Some(Watch::Running { due }) = probe.watch() {
            self.watch_timers.remove(&(due, id));
        }
        if let Watch::Running { due } = watch {
            self.watch_timers.insert((due, id));
        }
        probe.put_watch(Some(watch));
    }

    /// A watchdog probe is armed: a paused period runs again.
    fn resume_watch(&mut self, id: ProbeId, now: Instant) {
        if let Some(Watch::Paused { left }) = self.probes[&id].watch() {
            self.set_watch(id, Watch::Running { due: now + left });
        }
    }

    /// A watchdog probe's jail is not running: its period pauses.
    fn pause_watch(&mut self, id: ProbeId, now: Instant) {
        if let Some(Watch::Running { due }) = self.probes[&id].watch() {
            let left = due.saturating_duration_since(now);
            self.set_watch(id, Watch::Paused { left });
        }
    }

    /// A watchdog period ended without a signal: the command runs, once for this silence.
    fn watch_due(&mut self, id: ProbeId, now: Instant) {
        let probe = &self.probes[&id];
        let Some(jail) = probe.phase.jail() else {
            // Not in a running jail (it cannot be, running): wait for it, with nothing left.
            self.set_watch(
                id,
                Watch::Paused {
                    left: Duration::ZERO,
                },
            );
            return;
        };
        let announce = probe.log_line(
            id,
            LineKind::Trigger,
            Warn,
            format!(
                "{} watchdog: no signal for {}: running its command",
                probe.tag(id),
                crate::definition::show_duration(probe.def.watchdog.map_or(0, |w| w.as_secs()))
            ),
        );
        self.set_watch(id, Watch::Fired);
        let probe = self.probes.get_mut(&id).expect("present");
        probe.record_mut().fired += 1;
        probe.strikes = 0;
        self.start_run(id, jail, None, announce, now);
    }

    fn forget(&mut self, id: ProbeId) -> Option<Box<Probe>> {
        let probe = self.probes.remove(&id)?;
        if let Some(Watch::Running { due }) = probe.watch() {
            self.watch_timers.remove(&(due, id));
        }
        self.tally.count(id, &probe.phase, &probe.def.title, false);
        if let Some(manager) = probe.wants_stream()
            && let Some(count) = self.streams_wanted.get_mut(manager)
        {
            *count -= 1;
            if *count == 0 {
                self.streams_wanted.remove(manager);
            }
        }
        Some(probe)
    }

    pub fn probe(&self, id: ProbeId) -> Option<&Probe> {
        self.probes.get(&id).map(|probe| &**probe)
    }

    /// The probes placed (or being placed) in `jail`, for the shell's stop handling.
    pub fn probes_in(&self, jail: JailId) -> Vec<ProbeId> {
        self.tally
            .in_jail
            .get(&jail)
            .map_or_else(Vec::new, |ids| ids.iter().copied().collect())
    }

    /// The shell's own count, kept for the descriptor check of every placement.
    pub fn set_shell_descriptors(&mut self, count: usize) {
        self.shell_descriptors = count;
    }

    /// Descriptors in use now: the base, the shell's, and the core's probes (one each while
    /// placed or armed), jails (one each) and commands (two each).
    pub fn descriptors_in_use(&self) -> usize {
        BASE_DESCRIPTORS
            + self.shell_descriptors
            + self.tally.with_process
            + self.jails.len()
            + 2 * self.run_tally.running
    }

    /// A request to arm refused before any probe exists for it: logged, and answered.
    fn refuse_arm(&mut self, client: ClientId, error: Error) {
        self.effects
            .push(Effect::log(Warn, format!("refused to arm: {error}")));
        self.effects.push(Effect::Reply {
            client,
            response: Response::Refused(error),
        });
    }

    fn arm(&mut self, client: ClientId, def: Definition, persist: bool, now: Instant) {
        // Waiting probes count too, so that jails stopping and new probes cannot add up.
        if self.probes.len() >= self.limits.total {
            let error = Error::new(
                Kind::Limit,
                format!(
                    "too many probes: {}, waiting ones included",
                    self.limits.total
                ),
            );
            self.refuse_arm(client, error);
            return;
        }
        if selector::is_selector(&def.jail) {
            let error = Error::new(
                Kind::Usage,
                format!(
                    "jail '{}': a selector names many containers; declare it in the configuration file",
                    def.jail
                ),
            );
            self.refuse_arm(client, error);
            return;
        }
        let origin = if persist {
            Origin::Persisted
        } else {
            Origin::Command
        };
        self.add(def, origin, Some(client), now);
    }

    /// A new probe: looked up (or, in a jail already held by that PID, queued for placement).
    fn add(&mut self, def: Definition, origin: Origin, reply: Option<ClientId>, now: Instant) {
        self.add_member(def, origin, reply, None, now);
    }

    fn add_member(
        &mut self,
        def: Definition,
        origin: Origin,
        reply: Option<ClientId>,
        member: Option<Box<FleetMember>>,
        now: Instant,
    ) {
        let beside = def
            .watchdog
            .map(|left| Box::new(Beside::Watch(Watch::Paused { left })));
        let id = self.next_probe;
        self.next_probe += 1;
        self.insert_probe(
            id,
            Probe {
                def,
                origin,
                phase: Phase::Finding { reply },
                beside,
                strikes: 0,
                armed_before: false,
                record: None,
                member,
            },
        );
        self.find(id, reply, now);
    }

    /// Starts placing probe `id` in its jail: at once when the jail is held under the PID it
    /// is named by, else after a lookup of its name (one per name at a time).
    fn find(&mut self, id: ProbeId, reply: Option<ClientId>, now: Instant) {
        let probe = self.probes.get_mut(&id).expect("present");
        let spec = probe.def.jail.clone();
        if let Some(jail) = spec
            .parse::<JailId>()
            .ok()
            .filter(|j| probe.def.jail_named_by_id() && self.jails.contains_key(j))
        {
            self.enqueue(id, jail, reply, now);
            return;
        }
        self.set_phase(id, Phase::Finding { reply });
        if self.finding.insert(spec.clone()) {
            self.effects.push(Effect::Find { spec });
        }
    }

    fn found(&mut self, spec: String, result: Result<(JailId, JailFacts), Error>, now: Instant) {
        self.finding.remove(&spec);
        let finding: Vec<(ProbeId, Option<ClientId>)> = self
            .probes
            .iter()
            .filter(|(_, p)| p.def.jail == spec)
            .filter_map(|(id, p)| match p.phase {
                Phase::Finding { reply } => Some((*id, reply)),
                _ => None,
            })
            .collect();
        match result {
            Ok((jail, facts)) => {
                let facts = self.jails.get(&jail).map_or(facts, |e| e.facts);
                self.jails_by_identity
                    .entry(facts.identity)
                    .or_default()
                    .insert(jail);
                self.jails.entry(jail).or_insert_with(|| JailEntry {
                    spec: spec.clone(),
                    facts,
                    ended: Vec::new(),
                    idle_since: Some(now),
                    placing: None,
                });
                for (id, reply) in finding {
                    self.enqueue(id, jail, reply, now);
                }
                self.release_if_idle(jail, now);
            }
            Err(error) => {
                for (id, reply) in finding {
                    self.not_placed(id, reply, None, error.clone(), now);
                }
            }
        }
    }

    /// The one way into a placement: the limits and the descriptor reserve are checked here,
    /// for requests, declared probes, retries and re-arms alike.
    fn enqueue(&mut self, id: ProbeId, jail: JailId, reply: Option<ClientId>, now: Instant) {
        let placed = self.tally.with_process;
        let in_jail = self.tally.with_process_in.get(&jail).copied().unwrap_or(0);
        let limits = self.limits;
        let spec = &self.probes[&id].def.jail;
        let refusal = if placed >= limits.total || in_jail >= limits.per_jail {
            Some(format!(
                "too many probes: {placed} in all (limit {}), {in_jail} in jail {spec} (limit {})",
                limits.total, limits.per_jail
            ))
        } else if self.descriptors_in_use() + RESERVED_DESCRIPTORS + 1 > limits.descriptors {
            Some(format!(
                "too many probes for the daemon's descriptor limit ({}): {} in use",
                limits.descriptors,
                self.descriptors_in_use()
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            let error = Error::new(Kind::Limit, why);
            self.not_placed(id, reply, Some(jail), error, now);
            return;
        }
        if let Some(entry) = self.jails.get_mut(&jail) {
            entry.idle_since = None;
        }
        self.set_phase(
            id,
            Phase::Placing {
                jail,
                placement: None,
                reply,
            },
        );
    }

    /// Starts a placement for every held jail with queued probes and none in flight, within
    /// `MAX_PLACEMENTS`.
    fn schedule_placements(&mut self) {
        let jails: Vec<JailId> = self.tally.queued.keys().copied().collect();
        for jail in jails {
            if self.placements.len() >= MAX_PLACEMENTS {
                return;
            }
            let Some(entry) = self.jails.get_mut(&jail) else {
                continue;
            };
            if entry.placing.is_some() {
                continue;
            }
            let placement = self.next_placement;
            self.next_placement += 1;
            entry.placing = Some(placement);
            self.placements.insert(placement, jail);
            let ids: Vec<ProbeId> = self.tally.queued[&jail]
                .iter()
                .take(PLACEMENT_BATCH)
                .copied()
                .collect();
            let mut probes = Vec::new();
            for id in ids {
                let Phase::Placing { reply, .. } = self.probes[&id].phase else {
                    unreachable!("queued probes are placing")
                };
                self.set_phase(
                    id,
                    Phase::Placing {
                        jail,
                        placement: Some(placement),
                        reply,
                    },
                );
                let probe = &self.probes[&id];
                probes.push(ToPlace {
                    probe: id,
                    title: probe.def.title.clone(),
                    user: probe.def.user.clone(),
                    group: probe.def.group.clone(),
                    // A command that could not start leaves nothing to show.
                    status: (probe.record().last_run)
                        .filter(|run| probe.def.status && run.status.is_some()),
                    verbs: probe
                        .def
                        .verbs
                        .keys()
                        .map(|v| (*v, probe.def.confirm.get(v).copied()))
                        .collect(),
                });
            }
            self.effects.push(Effect::Place {
                placement,
                jail,
                probes,
            });
        }
    }

    fn placed(
        &mut self,
        placement: PlacementId,
        results: Vec<(ProbeId, PlaceResult)>,
        now: Instant,
    ) {
        let Some(jail) = self.placements.remove(&placement) else {
            return;
        };
        let held = match self.jails.get_mut(&jail) {
            Some(entry) => {
                entry.placing = None;
                true
            }
            None => false,
        };
        let mut confirm = Vec::new();
        for (id, result) in results {
            let Some(probe) = self.probes.get_mut(&id) else {
                // Removed while being placed: its process goes at once.
                if result.is_ok() {
                    self.effects.push(Effect::Kill { probe: id });
                }
                continue;
            };
            let Phase::Placing {
                placement: Some(p),
                reply,
                ..
            } = probe.phase
            else {
                if result.is_ok() {
                    self.effects.push(Effect::Kill { probe: id });
                }
                continue;
            };
            if p != placement {
                if result.is_ok() {
                    self.effects.push(Effect::Kill { probe: id });
                }
                continue;
            }
            let result = match result {
                Ok(_) if !held => {
                    // Its jail stopped while it was placed: it is in no jail we watch.
                    self.effects.push(Effect::Kill { probe: id });
                    Err(Error::new(
                        Kind::NoJail,
                        format!(
                            "jail '{}' stopped while the probe was placed",
                            probe.def.jail
                        ),
                    ))
                }
                other => other,
            };
            match result {
                Ok((pid, ids)) => {
                    let first_arm = probe.record().fed == 0 && probe.record().fired == 0;
                    let line = if probe.record().fed > 0 && probe.def.watchdog.is_some() {
                        // A feed is routine: `-l` counts them; the log would drown in them.
                        let text = format!("{} back after a feed, host pid {pid}", probe.tag(id));
                        probe.line(id, LineKind::Rearm, Debug, text)
                    } else if probe.record().fired > 0 {
                        let text = format!("{} re-armed, host pid {pid}", probe.tag(id));
                        probe.line(id, LineKind::Rearm, Info, text)
                    } else {
                        // The jail's uid is the probe's; the command's host user is another,
                        // and the line says both, so that neither reads as the other.
                        let settings = probe.def.settings(true);
                        let text = format!(
                            "{} armed{}: mode {}, in the jail as uid {} gid {}, host pid {pid}; the command runs on the host as {}; {}",
                            probe.tag(id),
                            match probe.origin {
                                Origin::Command => "",
                                Origin::Persisted => " (persisted)",
                                Origin::Config => " (configuration file)",
                            },
                            probe.def.mode(),
                            ids.0,
                            ids.1,
                            probe.def.run_as.as_deref().unwrap_or("root"),
                            if settings.is_empty() {
                                "no other settings".to_string()
                            } else {
                                settings.join(", ")
                            },
                        );
                        // Placed again (its jail killed it, or stopped and ran again): the
                        // jail's doing, which it can repeat; a first arm is the administrator's.
                        if probe.armed_before {
                            probe.line(id, LineKind::Rearm, Info, text)
                        } else {
                            Effect::log(Info, text)
                        }
                    };
                    self.effects.push(line);
                    probe.armed_before = true;
                    let persisted = probe.origin == Origin::Persisted;
                    let stopped = false;
                    self.set_phase(
                        id,
                        Phase::Armed {
                            jail,
                            pid,
                            ids,
                            stopped,
                        },
                    );
                    self.resume_watch(id, now);
                    let warnings = if first_arm {
                        self.arm_warnings(id, jail, ids.0)
                    } else {
                        Vec::new()
                    };
                    for warning in &warnings {
                        let text = format!("{}: {warning}", self.probes[&id].tag(id));
                        self.effects.push(Effect::log(Warn, text));
                    }
                    if let Some(client) = reply {
                        if persisted {
                            confirm.push((client, id, pid, warnings));
                        } else {
                            self.effects.push(Effect::Reply {
                                client,
                                response: Response::Armed {
                                    probe: id,
                                    pid,
                                    warnings,
                                },
                            });
                        }
                    }
                }
                Err(error) => self.not_placed(id, reply, Some(jail), error, now),
            }
        }
        if !confirm.is_empty() {
            self.save(confirm);
        }
        self.release_if_idle(jail, now);
    }

    /// The probes with `title` whose phase holds the running jail `jail` is, under any of its
    /// names (spent ones excepted, which the jail does not have now): one `pkill -f` or
    /// `killall` by that title reaches them all. One set per name; indexed, so that arming
    /// many probes of one title stays linear.
    fn titled_in_jail(&self, title: &str, jail: JailId) -> Vec<&Titled> {
        let Some(entry) = self.jails.get(&jail) else {
            return Vec::new();
        };
        let key = title_key(title);
        let names = self.jails_by_identity.get(&entry.facts.identity);
        names
            .into_iter()
            .flatten()
            .filter_map(|name| self.tally.titled.get(name)?.get(&key))
            .collect()
    }

    /// How a warning names `total` other probes, of which `ids` come first: id, how each was
    /// armed, the jail as it named it (`first_of` them).
    fn describe(&self, ids: impl Iterator<Item = ProbeId>, total: usize) -> String {
        let named = ids.map(|id| {
            let probe = &self.probes[&id];
            let how = match probe.origin {
                Origin::Command => "-c",
                Origin::Persisted => "-c -P",
                Origin::Config => "the configuration file",
            };
            format!("probe {id} (armed by {how}, jail {})", probe.def.jail)
        });
        first_of(named, total)
    }

    /// What the utility and the log are told when probe `id` is armed for the first time in
    /// `jail`, as `uid` inside it. Nothing here refuses the probe: 0.2 allows both.
    fn arm_warnings(&self, id: ProbeId, jail: JailId, uid: u32) -> Vec<String> {
        let mut warnings = Vec::new();
        let title = &self.probes[&id].def.title;
        let sets = self.titled_in_jail(title, jail);
        // `id` is armed in `jail`: one of the sets holds it.
        let others = sets
            .iter()
            .map(|set| set.len())
            .sum::<usize>()
            .saturating_sub(1);
        if others > 0 {
            let ids = sets.iter().flat_map(|set| set.iter());
            warnings.push(format!(
                "title '{title}' is already armed in this jail: {}; one pkill -f or killall by that title signals them all",
                self.describe(ids.filter(|other| *other != id), others)
            ));
        }
        if uid != 0
            && self
                .jails
                .get(&jail)
                .is_some_and(|e| e.facts.shares_host_users)
        {
            warnings.push(format!(
                "the jail shares the host's user ids (no user namespace of its own): host processes with uid {uid} can fire it through the jail's own processes of that uid (by ptrace); use a user-namespaced jail, or a uid no host user has (SECURITY.md)"
            ));
        }
        warnings
    }

    /// Probe `id` could not be placed. A request is refused and forgotten; a probe that
    /// survives waits for its jail, retries after a back-off, or is refused for good.
    fn not_placed(
        &mut self,
        id: ProbeId,
        reply: Option<ClientId>,
        jail: Option<JailId>,
        error: Error,
        now: Instant,
    ) {
        let probe = self.probes.get_mut(&id).expect("present");
        let tag = probe.tag(id);
        if let Some(client) = reply {
            self.effects.push(Effect::log(
                Warn,
                format!("refused to arm: {error} ({tag})"),
            ));
            self.effects.push(Effect::Reply {
                client,
                response: Response::Refused(error),
            });
            self.forget(id);
            if let Some(jail) = jail {
                self.release_if_idle(jail, now);
            }
            return;
        }
        if !probe.survives() {
            // A plain probe being re-armed: it is gone, as in 0.2.
            self.effects.push(Effect::log(
                Level::Error,
                format!("{tag}: cannot re-arm, removed: {error}"),
            ));
            let why = Leaving::NotRearmed;
            self.set_phase(id, Phase::Leaving { why });
            self.forget_if_done(id, now);
            return;
        }
        let note = Note::NotPlaced(error.message.clone());
        let changed = probe.record().last.as_ref() != Some(&note);
        probe.record_mut().last = Some(note);
        match error.kind {
            // Retrying will not make a user exist or a bad spec good; a reload or a removal
            // changes them.
            Kind::NoUser | Kind::Data | Kind::Usage | Kind::Config => {
                if changed {
                    self.effects.push(Effect::log(
                        Level::Error,
                        format!("{tag} cannot be placed: {error}"),
                    ));
                }
                self.set_phase(id, Phase::Refused { why: error.message });
            }
            Kind::NoJail => {
                if changed {
                    self.effects.push(Effect::log(
                        Warn,
                        format!("{tag} waiting for its jail: {error}"),
                    ));
                }
                self.wait_for_jail(id, error.message, now);
            }
            _ => match jail {
                Some(jail) if self.jails.contains_key(&jail) => {
                    let why = format!("not placed ({error})");
                    self.retry(id, jail, why, error.message, now);
                }
                _ => {
                    if changed {
                        let text = format!("{tag} waiting for its jail: {error}");
                        self.effects.push(Effect::log(Warn, text));
                    }
                    self.wait_for_jail(id, error.message, now);
                }
            },
        }
        if let Some(jail) = jail {
            self.release_if_idle(jail, now);
        }
    }

    /// Probe `id` is placed again in its running `jail` after its back-off, which grows with
    /// each failure in a row; `what` says why in the log, `why` in `-l`.
    fn retry(&mut self, id: ProbeId, jail: JailId, what: String, why: String, now: Instant) {
        let probe = self.probes.get_mut(&id).expect("present");
        let delay = backoff(probe.strikes);
        probe.strikes += 1;
        let text = format!(
            "{} {what}; armed again in {}",
            probe.tag(id),
            human_duration(delay)
        );
        self.effects
            .push(probe.line(id, LineKind::Unfired, Warn, text));
        self.set_phase(
            id,
            Phase::Retrying {
                jail,
                at: now + delay,
                why,
            },
        );
    }

    /// Probe `id` waits for its jail to run: looked for every `RETRY_INTERVAL`, unless named
    /// by a PID that is gone.
    fn wait_for_jail(&mut self, id: ProbeId, why: String, now: Instant) {
        let probe = self.probes.get_mut(&id).expect("present");
        let gone = probe.def.jail_named_by_id()
            && probe
                .def
                .jail
                .parse::<JailId>()
                .is_ok_and(|j| !self.jails.contains_key(&j));
        self.set_phase(
            id,
            Phase::Waiting {
                at: (!gone).then_some(now + RETRY_INTERVAL),
                why,
            },
        );
    }

    /// Someone stopped or continued an armed probe: a stopped probe takes no signal (they wait
    /// until it is continued), so it is logged as the tampering it is, and counted.
    fn probe_stopped(&mut self, id: ProbeId, signal: Option<i32>) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        let Phase::Armed { stopped, .. } = &mut probe.phase else {
            return;
        };
        let was_stopped = std::mem::replace(stopped, signal.is_some());
        let tag = probe.tag(id);
        match signal {
            Some(sig) => {
                probe.record_mut().stops += 1;
                let note = Note::Stopped(sig);
                let text = format!("{tag} {note}");
                probe.record_mut().last = Some(note);
                self.effects
                    .push(probe.line(id, LineKind::Stop, Warn, text));
            }
            // A continuation ends a stop. One whose stop was not seen is counted, and told as a
            // stop: the jail continued the probe before the daemon asked (the stop's SIGCHLD
            // merged into one that said a child ended, asked for within a second; or a jail
            // stopping and continuing without pause, faster than the daemon asks).
            None if !was_stopped => {
                probe.record_mut().stops += 1;
                let text =
                    format!("{tag} stopped (by a signal the daemon did not see) and continued");
                probe.record_mut().last = Some(Note::Continued);
                self.effects
                    .push(probe.line(id, LineKind::Stop, Warn, text));
            }
            None => {
                let text = format!("{tag} {}", Note::Continued);
                probe.record_mut().last = Some(Note::Continued);
                self.effects
                    .push(probe.line(id, LineKind::Continue, Warn, text));
            }
        }
    }

    fn probe_exited(&mut self, id: ProbeId, exit: Exit, now: Instant) {
        let running = self.commands_of(id);
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        let Phase::Armed { jail, ids, .. } = probe.phase else {
            return;
        };
        let tag = probe.tag(id);
        // Which command the exit asks for: SIGHUP's, or one of the probe's own verbs'. A verb's
        // code from a probe not given that verb is "some other code": nothing fires.
        let verb = match exit {
            Exit::Code(MAGIC_EXIT) => Some(None),
            Exit::Code(code) => probe
                .def
                .verbs
                .keys()
                .find(|v| v.exit_code() == code)
                .map(|v| Some(*v)),
            Exit::Signal(_) => None,
        };
        if let (Some(None), Some(period)) = (verb, probe.def.watchdog) {
            // A watchdog probe is fed: nothing runs, the period starts again, and the probe
            // goes back into its jail at once.
            probe.record_mut().fed += 1;
            probe.strikes = 0;
            probe.record_mut().last = Some(Note::Fed {
                times: probe.record().fed,
                period,
            });
            self.effects
                .push(probe.line(id, LineKind::Feed, Debug, format!("{tag} watchdog fed")));
            self.set_watch(id, Watch::Running { due: now + period });
            self.enqueue(id, jail, None, now);
            return;
        }
        let Some(verb) = verb else {
            probe.record_mut().last = Some(Note::Unfired(exit));
            if let (Exit::Signal(_), Some(entry)) = (exit, self.jails.get_mut(&jail)) {
                entry.ended.retain(|(_, t, _)| *t + JAIL_GRACE > now);
                entry.ended.push((id, now, probe.def.title.clone()));
            }
            if probe.survives() {
                let why = format!("ended by {exit}: nothing fired");
                self.retry(id, jail, why, format!("ended by {exit}"), now);
            } else {
                // Once per probe, armed by a request: the administrator pays for each.
                self.effects.push(Effect::log(
                    Warn,
                    format!("{tag} ended by {exit}: nothing fired, probe removed"),
                ));
                let why = Leaving::Unfired;
                self.set_phase(id, Phase::Leaving { why });
                self.forget_if_done(id, now);
            }
            self.release_if_idle(jail, now);
            return;
        };
        probe.record_mut().fired += 1;
        probe.strikes = 0;
        if probe.def.respawn == Respawn::Queue && running > 0 {
            // Never two runs at once: the trigger is owed one run after the current one, and
            // triggers until then are the same run.
            // Triggers by another verb join it too: the run is the first trigger's command.
            let owed = probe.owe(|| Owed {
                since: now,
                jail,
                triggers: 0,
                verb,
            });
            owed.triggers += 1;
            let text = if owed.triggers == 1 {
                format!("{tag} triggered while its command runs: one more run queued")
            } else {
                format!(
                    "{tag} triggered while its command runs: one more run already queued ({} triggers)",
                    owed.triggers
                )
            };
            self.effects
                .push(probe.line(id, LineKind::Trigger, Info, text));
        } else {
            let text = match verb {
                None => format!("{tag} triggered"),
                Some(verb) => format!("{tag} triggered by SIG{}", verb.name()),
            };
            let announce = probe.log_line(id, LineKind::Trigger, Info, text);
            self.start_run(id, jail, verb, announce, now);
        }
        let probe = &self.probes[&id];
        let (persisted, commands) = (probe.origin == Origin::Persisted, self.commands_of(id));
        let until = probe.def.cooldown.map(|c| now + c);
        match (probe.def.respawn, until) {
            (Respawn::Never, _) => {
                self.set_phase(id, Phase::Spent { jail });
                // A fired single-shot `-P` probe leaves the state file now, not when its
                // command ends: a crash in between must not arm it again.
                if persisted {
                    self.save(Vec::new());
                }
            }
            (Respawn::Immediately | Respawn::Queue, Some(until)) => {
                self.cool(id, jail, ids, until, now)
            }
            (Respawn::Queue, None) => {
                self.set_phase(
                    id,
                    Phase::Held {
                        jail,
                        ids,
                        until: None,
                    },
                );
                self.enqueue(id, jail, None, now);
            }
            (Respawn::Immediately, None) if commands < MAX_RUNNING_PER_PROBE => {
                self.set_phase(
                    id,
                    Phase::Held {
                        jail,
                        ids,
                        until: None,
                    },
                );
                self.enqueue(id, jail, None, now);
            }
            (Respawn::Immediately, None) => {
                let text = format!(
                    "{tag}: {MAX_RUNNING_PER_PROBE} commands still running; re-arming when one finishes"
                );
                self.effects
                    .push(probe.line(id, LineKind::Held, Warn, text));
                self.set_phase(
                    id,
                    Phase::Held {
                        jail,
                        ids,
                        until: None,
                    },
                );
            }
            (Respawn::AfterCommand, until) => self.set_phase(id, Phase::Held { jail, ids, until }),
        }
    }

    /// Runs probe `id`'s command, or its `verb`'s, for its jail `jail` (as it was when it
    /// fired); `announce` (a probe's line) says why, once it has started.
    fn start_run(
        &mut self,
        id: ProbeId,
        jail: JailId,
        verb: Option<Verb>,
        announce: LogLine,
        now: Instant,
    ) {
        let probe = self.probes.get_mut(&id).expect("present");
        let command = self.next_command;
        self.next_command += 1;
        probe.record_mut().last = Some(Note::CommandStarted);
        // The shell runs `def.command` as `def.run_as`: for a verb, the verb's command, as
        // the verb's own user and with its own timeout where it has them.
        let def = Box::new(probe.def.run_of(verb));
        let pod = probe.member.as_ref().and_then(|m| m.member.pod.clone());
        let timeout = def.timeout;
        let phase = RunPhase::Running {
            deadline: timeout.map(|timeout| now + timeout),
        };
        self.set_run(
            command,
            Some(Run {
                probe: id,
                timeout,
                phase,
            }),
        );
        self.effects.push(Effect::Run {
            command,
            probe: id,
            def,
            jail,
            pod,
            announce,
        });
    }

    /// The one way a command starts (`run` given, none before), changes phase or is over
    /// (`None`): the run tally follows.
    fn set_run(&mut self, command: CommandId, run: Option<Run>) {
        if let Some(old) = self.runs.remove(&command) {
            self.run_tally.count(command, &old, false);
        }
        if let Some(run) = run {
            self.run_tally.count(command, &run, true);
            self.runs.insert(command, run);
        }
    }

    /// Commands of probe `id` whose shell still runs.
    fn commands_of(&self, id: ProbeId) -> usize {
        self.run_tally.by_probe.get(&id).copied().unwrap_or(0)
    }

    /// A command's next stop step is due: SIGTERM at its timeout, SIGKILL `KILL_GRACE` later
    /// (to what its shell left, when it ended meanwhile).
    fn stop_due(&mut self, command: CommandId, now: Instant) {
        let Some(Run {
            probe: id,
            timeout,
            phase,
        }) = self.runs.get(&command).copied()
        else {
            return;
        };
        let probe = self.probes.get_mut(&id);
        let next = match phase {
            RunPhase::Running { .. } => {
                if let Some(probe) = probe {
                    probe.record_mut().timeouts += 1;
                    let text = format!(
                        "{} command still running after its timeout of {}: stopping it and all it started (SIGTERM, SIGKILL in {})",
                        probe.tag(id),
                        crate::definition::show_duration(timeout.unwrap_or_default().as_secs()),
                        human_duration(KILL_GRACE)
                    );
                    self.effects
                        .push(probe.line(id, LineKind::CommandEnd, Warn, text));
                }
                self.effects.push(Effect::Stop {
                    command,
                    force: false,
                });
                Some(RunPhase::Stopping {
                    kill_at: now + KILL_GRACE,
                })
            }
            RunPhase::Stopping { .. } => {
                if let Some(probe) = probe {
                    let text = format!(
                        "{} command still running {} after SIGTERM: SIGKILL",
                        probe.tag(id),
                        human_duration(KILL_GRACE)
                    );
                    self.effects
                        .push(probe.line(id, LineKind::CommandEnd, Warn, text));
                }
                self.effects.push(Effect::Stop {
                    command,
                    force: true,
                });
                Some(RunPhase::Killed)
            }
            // The shell says what its SIGKILL found left of the command.
            RunPhase::Lingering { .. } => {
                self.effects.push(Effect::Stop {
                    command,
                    force: true,
                });
                None
            }
            RunPhase::Killed => return,
        };
        let next = next.map(|phase| Run {
            probe: id,
            timeout,
            phase,
        });
        self.set_run(command, next);
    }

    /// Probe `id` stays out of its jail until `until`, its cooldown's end.
    fn cool(&mut self, id: ProbeId, jail: JailId, ids: Ids, until: Instant, now: Instant) {
        let probe = &self.probes[&id];
        let text = format!(
            "{} cooling down: back in {}",
            probe.tag(id),
            human_duration(until - now)
        );
        self.effects
            .push(probe.line(id, LineKind::Held, Info, text));
        self.set_phase(id, Phase::Cooling { jail, ids, until });
    }

    /// A cooled-down (or `-R` held) probe goes back into its jail, unless `-R` has its
    /// `MAX_RUNNING_PER_PROBE` commands running: then it waits for one to end.
    fn come_back(&mut self, id: ProbeId, jail: JailId, ids: Ids, now: Instant) {
        let probe = &self.probes[&id];
        if probe.def.respawn == Respawn::Immediately
            && self.commands_of(id) >= MAX_RUNNING_PER_PROBE
        {
            let text = format!(
                "{}: {MAX_RUNNING_PER_PROBE} commands still running; re-arming when one finishes",
                probe.tag(id)
            );
            self.effects
                .push(probe.line(id, LineKind::Held, Warn, text));
            self.set_phase(
                id,
                Phase::Held {
                    jail,
                    ids,
                    until: None,
                },
            );
            return;
        }
        self.enqueue(id, jail, None, now);
    }

    fn command_ended(
        &mut self,
        command: CommandId,
        outcome: Result<String, String>,
        status: Option<Exit>,
        took: Duration,
        now: Instant,
    ) {
        let Some(Run {
            probe: id,
            timeout,
            phase,
        }) = self.runs.get(&command).copied()
        else {
            return;
        };
        // One that had SIGTERM keeps its SIGKILL step, for what it may have left running; the
        // cgroup of one that is over goes (`Effect::Clear`).
        let next = match phase {
            RunPhase::Lingering { .. } => return,
            RunPhase::Stopping { kill_at } => Some(RunPhase::Lingering { kill_at }),
            RunPhase::Killed => {
                self.effects.push(Effect::Clear {
                    command,
                    killed: true,
                });
                None
            }
            RunPhase::Running { deadline } => {
                if deadline.is_some() {
                    self.effects.push(Effect::Clear {
                        command,
                        killed: false,
                    });
                }
                None
            }
        };
        let stopped = phase.timed_out();
        let next = next.map(|phase| Run {
            probe: id,
            timeout,
            phase,
        });
        self.set_run(command, next);
        let commands = self.commands_of(id);
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        probe.record_mut().last_run = Some(LastRun {
            status,
            took,
            ended: now,
        });
        let (ended, level) = match outcome {
            Ok(status) => {
                let ended = Note::CommandEnded {
                    status,
                    took,
                    timeout: stopped.then(|| timeout.unwrap_or_default()),
                };
                (ended, Info)
            }
            Err(why) => (Note::CommandNotStarted(why), Level::Error),
        };
        let text = format!("{} {ended}", probe.tag(id));
        self.effects
            .push(probe.line(id, LineKind::CommandEnd, level, text));
        probe.record_mut().last = Some(ended);
        match probe.phase {
            // `-r` after its command; `-R` held back at its limit, once one ends.
            Phase::Held {
                jail,
                ids,
                until: Some(until),
            } if probe.def.respawn == Respawn::AfterCommand && commands == 0 && until > now => {
                self.cool(id, jail, ids, until, now)
            }
            Phase::Held { jail, .. }
                if probe.def.respawn == Respawn::AfterCommand && commands == 0 =>
            {
                self.enqueue(id, jail, None, now)
            }
            Phase::Held { .. } if probe.def.respawn == Respawn::AfterCommand => {}
            Phase::Held { jail, .. } => self.enqueue(id, jail, None, now),
            Phase::Spent { .. } | Phase::Leaving { .. } if probe.owed().is_none() => {
                self.forget_if_done(id, now)
            }
            _ => {}
        }
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        if let Some(owed) = probe.take_owed() {
            let text = format!(
                "{} queued run starts ({} trigger(s), the first {} ago)",
                probe.tag(id),
                owed.triggers,
                human_duration(now.saturating_duration_since(owed.since))
            );
            let announce = probe.log_line(id, LineKind::CommandStart, Info, text);
            self.start_run(id, owed.jail, owed.verb, announce, now);
        }
    }

    /// The one way a jail leaves `jails`, keeping `jails_by_identity`.
    fn drop_jail(&mut self, jail: JailId) -> Option<JailEntry> {
        let entry = self.jails.remove(&jail)?;
        if let Some(names) = self.jails_by_identity.get_mut(&entry.facts.identity) {
            names.remove(&jail);
            if names.is_empty() {
                self.jails_by_identity.remove(&entry.facts.identity);
            }
        }
        Some(entry)
    }

    fn jail_stopped(&mut self, jail: JailId, now: Instant) {
        let Some(entry) = self.drop_jail(jail) else {
            return;
        };
        self.effects.push(Effect::Release { jail });
        let ended: Vec<(ProbeId, String)> = entry
            .ended
            .into_iter()
            .filter(|(_, t, _)| *t + JAIL_GRACE > now)
            .map(|(id, _, title)| (id, title))
            .collect();
        let mut gone: Vec<ProbeId> = ended.iter().map(|(id, _)| *id).collect();
        // What becomes of each probe, for the log: it comes back, or it is gone for good.
        let mut fates = StopFates::default();
        let mut file_changed = false;
        let in_jail = self.probes_in(jail);
        for &id in &in_jail {
            // A watchdog's period runs only while its jail does.
            self.pause_watch(id, now);
            let probe = self.probes.get_mut(&id).expect("listed");
            if let Phase::Armed { .. } = probe.phase {
                self.effects.push(Effect::Kill { probe: id });
                gone.push(id);
            }
            fates.add(id, probe);
            file_changed |=
                probe.origin == Origin::Persisted && matches!(probe.phase, Phase::Spent { .. });
            match (&probe.phase, probe.survives()) {
                // Its placement ends on its own (its helpers die with the jail).
                (
                    Phase::Placing {
                        placement: Some(_), ..
                    },
                    _,
                ) => {}
                (Phase::Placing { reply, .. }, _) => {
                    let reply = *reply;
                    let error = Error::new(Kind::NoJail, format!("jail {} stopped", entry.spec));
                    self.not_placed(id, reply, None, error, now);
                }
                (_, true) => {
                    self.wait_for_jail(id, format!("jail {} stopped", entry.spec), now);
                }
                (_, false) => {
                    let why = Leaving::JailStopped;
                    self.set_phase(id, Phase::Leaving { why });
                    self.forget_if_done(id, now);
                }
            }
        }
        // Its processes die before its init, so a plain probe may be forgotten already; a
        // surviving one is still among the jail's, retrying.
        for (id, title) in ended {
            if !in_jail.contains(&id) {
                fates.lost.push((id, title, None));
            }
        }
        gone.sort_unstable();
        gone.dedup();
        let message = fates.line(&entry.spec, jail, &gone);
        self.effects.push(Effect::log(Warn, message));
        if file_changed {
            // A spent `-P` probe is wanted again, for the jail's next run.
            self.save(Vec::new());
        }
    }

    fn tick(&mut self, now: Instant) {
        let due: Vec<String> = self
            .survey_timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, spec)| spec.clone())
            .collect();
        for spec in due {
            self.survey(&spec, now);
        }
        let due: Vec<CommandId> = self
            .run_tally
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, command)| *command)
            .collect();
        for command in due {
            self.stop_due(command, now);
        }
        let due: Vec<ProbeId> = self
            .watch_timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            self.watch_due(id, now);
        }
        let idle: Vec<JailId> = self
            .jails
            .iter()
            .filter(|(_, j)| j.idle_since.is_some_and(|t| t + JAIL_GRACE <= now))
            .map(|(id, _)| *id)
            .collect();
        for jail in idle {
            self.drop_jail(jail);
            self.effects.push(Effect::Release { jail });
        }
        let due: Vec<ProbeId> = self
            .tally
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            let probe = &self.probes[&id];
            match &probe.phase {
                Phase::Retrying { jail, .. } if self.jails.contains_key(jail) => {
                    self.enqueue(id, *jail, None, now)
                }
                Phase::Cooling { jail, ids, .. } => self.come_back(id, *jail, *ids, now),
                // Its command outlived its jail: it looks for the jail once the command ends.
                Phase::Waiting { why, .. } if self.commands_of(id) > 0 => {
                    let why = why.clone();
                    self.set_phase(
                        id,
                        Phase::Waiting {
                            at: Some(now + RETRY_INTERVAL),
                            why,
                        },
                    );
                }
                _ => self.find(id, None, now),
            }
        }
    }

    /// `-k`: removes the probes of `jail` (as named, or its id) with this id or title.
    fn remove_request(&mut self, client: ClientId, which: &str, jail: &str, now: Instant) {
        let matching: Vec<ProbeId> = self
            .probes
            .iter()
            .filter(|(id, p)| {
                let done = match p.phase {
                    Phase::Leaving { .. } => true,
                    Phase::Spent { .. } => p.origin == Origin::Command,
                    _ => false,
                };
                !done && (id.to_string() == which || p.def.title == which)
            })
            .filter(|(_, p)| {
                p.def.jail == jail || p.phase.jail().is_some_and(|j| j.to_string() == jail)
            })
            .map(|(id, _)| *id)
            .collect();
        if matching.is_empty() {
            let error = Error::new(
                Kind::NoProbe,
                format!("no probe '{which}' in jail '{jail}' (see jaildaemon -l)"),
            );
            self.effects
                .push(Effect::log(Warn, format!("refused to remove: {error}")));
            self.effects.push(Effect::Reply {
                client,
                response: Response::Refused(error),
            });
            return;
        }
        let warnings = self.removal_notes(which, jail, &matching);
        for warning in &warnings {
            let text = format!("-k {which} -j {jail}: {warning}");
            self.effects.push(Effect::log(Warn, text));
        }
        let persisted = matching
            .iter()
            .any(|id| self.probes[id].origin == Origin::Persisted);
        for id in &matching {
            self.remove_one(*id, "removed on request", now);
        }
        if persisted {
            self.save(Vec::new());
        }
        self.effects.push(Effect::Reply {
            client,
            response: Response::Removed {
                probes: matching,
                warnings,
            },
        });
    }

    /// What `-k which -j jail` says besides the ids it removes (`matching`): that a title named
    /// several probes, all removed as 0.2 does; and which probes with that title stay in the
    /// same running jail because they were armed under another of its names.
    fn removal_notes(&self, which: &str, jail: &str, matching: &[ProbeId]) -> Vec<String> {
        let mut notes = Vec::new();
        let by_title: Vec<ProbeId> = matching
            .iter()
            .copied()
            .filter(|id| self.probes[id].def.title == which)
            .collect();
        if by_title.is_empty() {
            return notes;
        }
        if matching.len() > 1 {
            notes.push(format!(
                "title '{which}' is ambiguous in jail '{jail}': it named {} probes, and all were removed ({})",
                matching.len(),
                first_of(matching.iter().map(ProbeId::to_string), matching.len())
            ));
        }
        // Once per jail (identity) the removed probes were in.
        let mut staying = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for id in &by_title {
            if let Some(held) = self.probes[id].phase.jail()
                && seen.insert(self.jails.get(&held).map(|e| e.facts.identity))
            {
                for set in self.titled_in_jail(which, held) {
                    staying.extend(set.iter());
                }
            }
        }
        for id in matching {
            staying.remove(id);
        }
        if !staying.is_empty() {
            notes.push(format!(
                "the same jail still has {} with title '{which}', armed under another name of it: remove with -j as named there",
                self.describe(staying.iter().copied(), staying.len())
            ));
        }
        notes
    }

    /// Removes probe `id`: its process goes, its command never runs; a command already running
    /// ends on its own (and the probe is forgotten then).
    fn remove_one(&mut self, id: ProbeId, why: &str, now: Instant) {
        let running = self.commands_of(id);
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        self.effects
            .push(Effect::log(Info, format!("{} {why}", probe.tag(id))));
        let jail = probe.phase.jail();
        if let Phase::Armed { .. } = probe.phase {
            self.effects.push(Effect::Kill { probe: id });
        }
        if let Phase::Finding {
            reply: Some(client),
        }
        | Phase::Placing {
            reply: Some(client),
            ..
        } = probe.phase
        {
            self.effects.push(Effect::Reply {
                client,
                response: Response::Refused(Error::new(
                    Kind::NoProbe,
                    format!("probe {id} was removed while it was being armed"),
                )),
            });
        }
        if let Some(owed) = probe.take_owed() {
            self.effects.push(Effect::log(
                Info,
                format!(
                    "{}: its queued run ({} trigger(s)) is dropped with it",
                    probe.tag(id),
                    owed.triggers
                ),
            ));
        }
        if running > 0 {
            // Kept only to attribute its commands, until the last ends.
            let why = Leaving::Removed;
            self.set_phase(id, Phase::Leaving { why });
        } else {
            self.forget(id);
        }
        if let Some(jail) = jail {
            self.release_if_idle(jail, now);
        }
    }

    /// SIGHUP: applies the difference to the configuration file's probes. Probes are named by
    /// jail and title; unchanged ones are not touched (a spent one is armed again), changed
    /// ones replaced.
    fn reload(&mut self, wanted: Vec<Definition>, now: Instant) {
        let (selected, wanted): (Vec<Definition>, Vec<Definition>) = wanted
            .into_iter()
            .partition(|d| selector::is_selector(&d.jail));
        let (mut added, mut changed, mut removed, mut unchanged) =
            self.reload_fleets(selected, now);
        let declared: BTreeMap<(String, String), ProbeId> = self
            .probes
            .iter()
            .filter(|(_, p)| {
                p.origin == Origin::Config
                    && p.member.is_none()
                    && !matches!(p.phase, Phase::Leaving { .. })
            })
            .map(|(id, p)| ((p.def.jail.clone(), p.def.title.clone()), *id))
            .collect();
        let mut kept = BTreeSet::new();
        for def in wanted {
            let key = (def.jail.clone(), def.title.clone());
            match declared.get(&key) {
                Some(id) if self.probes[id].def == def => {
                    unchanged += 1;
                    kept.insert(key);
                    let probe = &self.probes[id];
                    match probe.phase {
                        Phase::Spent { jail } if self.commands_of(*id) == 0 => {
                            self.enqueue(*id, jail, None, now)
                        }
                        Phase::Refused { .. } => self.find(*id, None, now),
                        _ => {}
                    }
                }
                Some(id) => {
                    self.remove_one(*id, "changed in the configuration file", now);
                    self.add(def, Origin::Config, None, now);
                    changed += 1;
                    kept.insert(key);
                }
                None => {
                    self.add(def, Origin::Config, None, now);
                    added += 1;
                }
            }
        }
        for (key, id) in &declared {
            if !kept.contains(key) {
                self.remove_one(*id, "no longer in the configuration file", now);
                removed += 1;
            }
        }
        self.reloaded = Some(format!(
            "SIGHUP: configuration reloaded: {added} added, {changed} changed, {removed} removed, {unchanged} unchanged"
        ));
    }

    /// A selector's probe definition, at start or in a reload: kept as its fleet's template for
    /// that title, and the selector listed, so that each member gets a probe of its own.
    fn declare_fleet(&mut self, def: Definition, now: Instant) {
        let spec = def.jail.clone();
        let parsed = match selector::parse(&spec) {
            Ok(parsed) => parsed,
            // The configuration file's check refuses a bad selector; this is for the state file.
            Err(why) => {
                let text = format!("probe '{}' not declared: {why}", def.title);
                self.effects.push(Effect::log(Level::Error, text));
                return;
            }
        };
        let fleet = self.fleets.entry(spec.clone()).or_insert_with(|| Fleet {
            selector: parsed,
            templates: BTreeMap::new(),
            surveying: false,
            again: false,
            started: None,
            due: None,
            error: None,
        });
        fleet.templates.insert(def.title.clone(), def);
        self.survey(&spec, now);
    }

    /// Asks for `spec`'s members to be listed, unless a listing is in flight: then once more
    /// after it (events in between are the same listing).
    /// Within `SURVEY_GAP` of the last listing's start, it is put off until the gap is over:
    /// a manager whose stream floods with events costs a listing a second, no more.
    fn survey(&mut self, spec: &str, now: Instant) {
        let Some(fleet) = self.fleets.get_mut(spec) else {
            return;
        };
        if fleet.surveying {
            fleet.again = true;
            return;
        }
        if let Some(at) = fleet.started.map(|t| t + SURVEY_GAP).filter(|at| *at > now) {
            if fleet.due.is_none_or(|due| due > at) {
                self.set_survey_due(spec, at);
            }
            return;
        }
        fleet.surveying = true;
        fleet.started = Some(now);
        if let Some(due) = fleet.due.take() {
            self.survey_timers.remove(&(due, spec.to_string()));
        }
        self.effects.push(Effect::Survey {
            selector: spec.to_string(),
        });
    }

    /// The one way a selector's next listing is timed, keeping `survey_timers`.
    fn set_survey_due(&mut self, spec: &str, at: Instant) {
        let Some(fleet) = self.fleets.get_mut(spec) else {
            return;
        };
        if let Some(due) = fleet.due.replace(at) {
            self.survey_timers.remove(&(due, spec.to_string()));
        }
        self.survey_timers.insert((at, spec.to_string()));
    }

    /// A selector's members as listed: each new one gets a probe per title, one that waits
    /// for its container is looked for at once, and a probe whose container is no longer
    /// listed is removed. A listing that failed changes nothing.
    fn surveyed(&mut self, spec: &str, result: Result<Vec<Member>, String>, now: Instant) {
        let Some(fleet) = self.fleets.get_mut(spec) else {
            return;
        };
        fleet.surveying = false;
        let again = std::mem::take(&mut fleet.again);
        self.set_survey_due(spec, now + SURVEY_INTERVAL);
        let fleet = self.fleets.get_mut(spec).expect("present");
        match result {
            Err(why) => {
                if fleet.error.as_deref() != Some(why.as_str()) {
                    self.effects.push(Effect::log(
                        Warn,
                        format!(
                            "selector {spec}: its containers cannot be listed ({why}); its probes stay as they are"
                        ),
                    ));
                }
                fleet.error = Some(why);
            }
            Ok(mut members) => {
                fleet.error = None;
                if members.len() > selector::MAX_MEMBERS {
                    self.effects.push(Effect::log(
                        Warn,
                        format!(
                            "selector {spec}: {} containers match; only the first {} get probes",
                            members.len(),
                            selector::MAX_MEMBERS
                        ),
                    ));
                    members.truncate(selector::MAX_MEMBERS);
                }
                let templates: Vec<Definition> = fleet.templates.values().cloned().collect();
                let jails: Vec<(String, Member)> = members
                    .into_iter()
                    .map(|m| (fleet.selector.jail_of(&m), m))
                    .collect();
                self.follow_members(spec, &templates, &jails, now);
            }
        }
        if again {
            self.survey(spec, now);
        }
    }

    /// Makes `spec`'s probes follow its members (each with its jail): one probe per member
    /// and template, no probe without a member.
    fn follow_members(
        &mut self,
        spec: &str,
        templates: &[Definition],
        members: &[(String, Member)],
        now: Instant,
    ) {
        let mut have = BTreeSet::new();
        let ours: Vec<ProbeId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.member.as_ref().is_some_and(|m| m.selector == spec))
            .map(|(id, _)| *id)
            .collect();
        for id in ours {
            let probe = &self.probes[&id];
            let listed = members.iter().any(|(jail, _)| *jail == probe.def.jail);
            if !listed {
                self.remove_one(
                    id,
                    "removed: its container is gone, or no longer has that label",
                    now,
                );
                continue;
            }
            have.insert((probe.def.jail.clone(), probe.def.title.clone()));
            if matches!(probe.phase, Phase::Waiting { at: Some(_), .. })
                && self.commands_of(id) == 0
            {
                self.find(id, None, now);
            }
        }
        for (jail, member) in members {
            for template in templates {
                if have.contains(&(jail.clone(), template.title.clone())) {
                    continue;
                }
                if self.probes.len() >= self.limits.total {
                    self.effects.push(Effect::log(
                        Warn,
                        format!(
                            "selector {spec}: no probe for {jail}: too many probes ({})",
                            self.limits.total
                        ),
                    ));
                    return;
                }
                self.effects.push(Effect::log(
                    Info,
                    format!(
                        "selector {spec}: container {jail} matches; probe '{}' for it",
                        template.title
                    ),
                ));
                let def = Definition {
                    jail: jail.clone(),
                    ..template.clone()
                };
                let member = FleetMember {
                    selector: spec.to_string(),
                    member: member.clone(),
                };
                self.add_member(def, Origin::Config, None, Some(Box::new(member)), now);
            }
        }
    }

    /// A manager's event stream named containers that started or stopped: its selectors are
    /// listed again, and probes waiting for a container of that name are looked for now, not
    /// at their next look.
    fn changed(&mut self, manager: &str, names: &BTreeSet<String>, now: Instant) {
        let specs: Vec<String> = self
            .fleets
            .iter()
            .filter(|(_, f)| f.selector.manager() == manager)
            .map(|(spec, _)| spec.clone())
            .collect();
        for spec in specs {
            self.survey(&spec, now);
        }
        let waiting: Vec<ProbeId> = self
            .probes
            .iter()
            .filter(|(id, p)| {
                matches!(p.phase, Phase::Waiting { at: Some(_), .. })
                    && self.commands_of(**id) == 0
                    && names
                        .iter()
                        .any(|n| selector::names_jail(manager, n, &p.def.jail))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.find(id, None, now);
        }
    }

    /// SIGHUP's part for selectors: templates added, changed (their probes replaced) or
    /// removed (with their probes); counts as `reload` logs them.
    fn reload_fleets(
        &mut self,
        wanted: Vec<Definition>,
        now: Instant,
    ) -> (usize, usize, usize, usize) {
        let (mut added, mut changed, mut removed, mut unchanged) = (0, 0, 0, 0);
        let wanted_keys: BTreeSet<(String, String)> = wanted
            .iter()
            .map(|d| (d.jail.clone(), d.title.clone()))
            .collect();
        let old: Vec<(String, String)> = self
            .fleets
            .iter()
            .flat_map(|(spec, f)| f.templates.keys().map(|t| (spec.clone(), t.clone())))
            .collect();
        for (spec, title) in old {
            if !wanted_keys.contains(&(spec.clone(), title.clone())) {
                self.drop_template(&spec, &title, "no longer in the configuration file", now);
                removed += 1;
            }
        }
        for def in wanted {
            let old = self
                .fleets
                .get(&def.jail)
                .and_then(|f| f.templates.get(&def.title));
            match old {
                Some(old) if *old == def => unchanged += 1,
                Some(_) => {
                    let (spec, title) = (def.jail.clone(), def.title.clone());
                    self.drop_template(&spec, &title, "changed in the configuration file", now);
                    self.declare_fleet(def, now);
                    changed += 1;
                }
                None => {
                    self.declare_fleet(def, now);
                    added += 1;
                }
            }
        }
        (added, changed, removed, unchanged)
    }

    /// Removes template `title` of selector `spec` with its probes; a selector left with none
    /// is forgotten.
    fn drop_template(&mut self, spec: &str, title: &str, why: &str, now: Instant) {
        let ids: Vec<ProbeId> = self
            .probes
            .iter()
            .filter(|(_, p)| {
                p.def.title == title && p.member.as_ref().is_some_and(|m| m.selector == spec)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.remove_one(id, why, now);
        }
        let Some(fleet) = self.fleets.get_mut(spec) else {
            return;
        };
        fleet.templates.remove(title);
        if fleet.templates.is_empty() {
            if let Some(due) = fleet.due {
                self.survey_timers.remove(&(due, spec.to_string()));
            }
            self.fleets.remove(spec);
        }
    }

    /// The managers whose event streams some probe or selector needs: a selector's, and the
    /// one that tells when a waiting probe's container runs again.
    pub fn stream_managers(&self) -> BTreeSet<&'static str> {
        let mut managers: BTreeSet<&'static str> =
            self.fleets.values().map(|f| f.selector.manager()).collect();
        managers.extend(self.streams_wanted.keys());
        managers
    }

    /// Asks for the state file to be written with every `-P` probe still wanted.
    fn save(&mut self, confirm: Vec<Confirm>) {
        let probes = self
            .probes
            .values()
            .filter(|p| {
                p.origin == Origin::Persisted
                    && !matches!(p.phase, Phase::Spent { .. } | Phase::Leaving { .. })
            })
            .map(|p| p.def.clone())
            .collect();
        self.effects.push(Effect::Save { probes, confirm });
    }

    /// A leaving probe, or a spent plain one, whose commands have all ended is forgotten.
    fn forget_if_done(&mut self, id: ProbeId, now: Instant) {
        let Some(probe) = self.probes.get(&id) else {
            return;
        };
        let done = self.commands_of(id) == 0
            && match probe.phase {
                Phase::Leaving { .. } => true,
                Phase::Spent { .. } => probe.origin == Origin::Command,
                _ => false,
            };
        if !done {
            return;
        }
        let jail = probe.phase.jail();
        self.forget(id);
        if let Some(jail) = jail {
            self.release_if_idle(jail, now);
        }
    }

    /// A jail none of whose probes holds it any more is let go after `JAIL_GRACE`.
    fn release_if_idle(&mut self, jail: JailId, now: Instant) {
        let used = self.tally.in_jail.contains_key(&jail);
        if let Some(entry) = self.jails.get_mut(&jail) {
            if used {
                entry.idle_since = None;
            } else if entry.idle_since.is_none() {
                entry.idle_since = Some(now);
            }
        }
    }

    /// `-l` at `now`: every probe, in id order.
    pub fn list(&self, now: Instant) -> Vec<ProbeInfo> {
        self.probes
            .iter()
            .map(|(id, p)| {
                let (state, pid, ids) = match &p.phase {
                    Phase::Finding { .. } | Phase::Placing { .. } => {
                        (ProbeState::Placing, None, None)
                    }
                    Phase::Armed { pid, ids, .. } => (ProbeState::Armed, Some(*pid), Some(*ids)),
                    Phase::Held { ids, .. } => (ProbeState::Running, None, Some(*ids)),
                    Phase::Spent { .. } | Phase::Leaving { .. } if self.commands_of(*id) > 0 => {
                        (ProbeState::Running, None, None)
                    }
                    Phase::Spent { .. } | Phase::Leaving { .. } => (ProbeState::Spent, None, None),
                    Phase::Retrying { .. } => (ProbeState::Retrying, None, None),
                    Phase::Cooling { ids, .. } => (ProbeState::Cooling, None, Some(*ids)),
                    Phase::Waiting { .. } => (ProbeState::Waiting, None, None),
                    Phase::Refused { .. } => (ProbeState::Refused, None, None),
                };
                let last = match &p.phase {
                    Phase::Waiting { why, .. }
                    | Phase::Refused { why }
                    | Phase::Retrying { why, .. } => Some(why.clone()),
                    Phase::Cooling { until, .. } => Some(format!(
                        "{}; cooling down, back in {}",
                        p.record()
                            .last
                            .as_ref()
                            .map_or("fired".to_string(), Note::to_string),
                        human_duration(until.saturating_duration_since(now))
                    )),
                    _ => p.record().last.as_ref().map(Note::to_string),
                };
                let last = match (last, p.owed()) {
                    (Some(last), Some(_)) => Some(format!("{last}; one more run queued")),
                    (last, _) => last,
                };
                let watch = p.watch().map(|w| match w {
                    Watch::Running { due } => format!(
                        "watchdog: command in {} without a signal",
                        human_duration(due.saturating_duration_since(now))
                    ),
                    Watch::Paused { left } => {
                        format!("watchdog paused until armed: {} left", human_duration(left))
                    }
                    Watch::Fired => "watchdog fired; a signal starts it again".into(),
                });
                let last = match (last, watch) {
                    (Some(last), Some(watch)) => Some(format!("{watch}; {last}")),
                    (last, watch) => watch.or(last),
                };
                ProbeInfo {
                    id: *id,
                    selector: p.member.as_ref().map(|m| m.selector.clone()),
                    jail: p.def.jail.clone(),
                    jail_id: p.phase.jail(),
                    title: p.def.title.clone(),
                    command: p.def.command.clone(),
                    uid: ids.map(|i| i.0),
                    gid: ids.map(|i| i.1),
                    respawn: p.def.respawn,
                    origin: p.origin,
                    state,
                    pid,
                    fired: p.record().fired,
                    last,
                    run_as: p.def.run_as.clone(),
                    timeout_secs: p.def.timeout.map(|t| t.as_secs()),
                    cooldown_secs: p.def.cooldown.map(|c| c.as_secs()),
                    status: p.def.status,
                    verbs: p.def.verb_commands(),
                    confirm: crate::definition::durations_to_names(&p.def.confirm),
                    verb_run_as: p.def.verb_run_as(),
                    verb_timeout_secs: p.def.verb_timeout_secs(),
                    watchdog: p.def.watchdog.map(|w| w.as_secs()),
                    watchdog_left_ms: match p.watch() {
                        Some(Watch::Running { due }) => {
                            Some(due.saturating_duration_since(now).as_millis() as u64)
                        }
                        Some(Watch::Paused { left }) => Some(left.as_millis() as u64),
                        _ => None,
                    },
                }
            })
            .collect()
    }

    /// The metrics file's content at `now` (`metrics::render`).
    pub fn metrics(&self, now: Instant) -> String {
        let probes: Vec<crate::metrics::ProbeMetrics> = self
            .list(now)
            .into_iter()
            .zip(self.probes.values())
            .map(|(info, p)| crate::metrics::ProbeMetrics {
                id: info.id,
                jail: info.jail,
                title: info.title,
                state: info.state,
                fires: p.record().fired,
                timeouts: p.record().timeouts,
                stops: p.record().stops,
                // The metrics' convention (a shell's): a signal as 128 plus its number.
                last_status: p.record().last_run.and_then(|run| run.status).map(
                    |exit| match exit {
                        Exit::Code(code) => code,
                        Exit::Signal(signal) => 128 + signal,
                    },
                ),
                last_duration: p.record().last_run.map(|run| run.took),
            })
            .collect();
        crate::metrics::render(&probes, self.run_tally.running)
    }
}

/// Probes, and ids, that a jail's stop names in its one log line; beyond them it counts: a
/// jail with thousands of probes still logs one line of bounded length.
const NAMED_AT_STOP: usize = 5;
const IDS_AT_STOP: usize = 20;

/// What becomes of the probes of a jail that stopped, for its log line: each group holds
/// (id, title, where it comes from).
#[derive(Debug, Default)]
struct StopFates {
    /// Declared or `-P`: they wait for the jail to run again.
    back: Vec<(ProbeId, String, Option<&'static str>)>,
    /// The same, in a jail named by its PID, which never runs again.
    stranded: Vec<(ProbeId, String, Option<&'static str>)>,
    /// Plain `-c` probes: gone for good.
    lost: Vec<(ProbeId, String, Option<&'static str>)>,
}

impl StopFates {
    fn add(&mut self, id: ProbeId, probe: &Probe) {
        let title = probe.def.title.clone();
        let from = match probe.origin {
            Origin::Command => return self.lost.push((id, title, None)),
            Origin::Persisted => "-P",
            Origin::Config => "configuration file",
        };
        let group = if probe.def.jail_named_by_id() {
            &mut self.stranded
        } else {
            &mut self.back
        };
        group.push((id, title, Some(from)));
    }

    /// `jail web (id 4711) stopped; probe(s) [2] gone with it, nothing fired; probe 1 'A'
    /// (-P) waits for the jail to run again; probe 2 'B' gone: armed without -P; …`.
    fn line(mut self, spec: &str, jail: JailId, gone: &[ProbeId]) -> String {
        let mut line = format!("jail {spec} (id {jail}) stopped");
        if !gone.is_empty() {
            let ids: Vec<String> = gone.iter().take(IDS_AT_STOP).map(u64::to_string).collect();
            line += &format!("; probe(s) [{}]", ids.join(", "));
            if gone.len() > IDS_AT_STOP {
                line += &format!(" and {} more", gone.len() - IDS_AT_STOP);
            }
            line += " gone with it, nothing fired";
        }
        self.lost.sort_unstable();
        self.lost.dedup();
        for (group, one, many) in [
            (
                &self.back,
                "waits for the jail to run again",
                "wait for the jail to run again",
            ),
            (
                &self.stranded,
                "waits, but a jail named by its PID never runs again: remove it with -k",
                "wait, but a jail named by its PID never runs again: remove them with -k",
            ),
            (
                &self.lost,
                "gone: armed without -P; arm it with -P or declare it in the configuration file to keep it across restarts",
                "gone: armed without -P; arm them with -P or declare them in the configuration file to keep them across restarts",
            ),
        ] {
            if group.is_empty() {
                continue;
            }
            let names: Vec<String> = group
                .iter()
                .take(NAMED_AT_STOP)
                .map(|(id, title, from)| match from {
                    Some(from) => format!("{id} '{title}' ({from})"),
                    None => format!("{id} '{title}'"),
                })
                .collect();
            let (probes, fate) = if group.len() == 1 {
                ("probe", one)
            } else {
                ("probes", many)
            };
            line += &format!("; {probes} {}", names.join(", "));
            if group.len() > NAMED_AT_STOP {
                line += &format!(" and {} more", group.len() - NAMED_AT_STOP);
            }
            line += &format!(" {fate}");
        }
        line
    }
}

/// The delay before the next try after `strikes` failures in a row.
pub fn backoff(strikes: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1u32 << strikes.min(16))
        .min(BACKOFF_MAX)
}

/// A duration as people read it in a log: `850ms`, `2.1s`, `3m05s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    //! The core as a transition table: every phase meets every event (`every_phase_meets_every
    //! _event`), then the paths through it that matter to users, each with its negative twin.
    use super::*;
    use crate::definition::Extras;

    const JAIL: JailId = 100;
    const PID: Pid = 500;

    struct Rig {
        core: Core,
        now: Instant,
        /// Every line the core logged, in order; `send` returns the other effects.
        logged: Vec<LogLine>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig::with(Limits::default())
        }

        fn with(limits: Limits) -> Rig {
            Rig {
                core: Core::new(limits),
                now: Instant::now(),
                logged: Vec::new(),
            }
        }

        fn send(&mut self, event: Event) -> Vec<Effect> {
            let mut effects = Vec::new();
            for effect in self.core.handle(event, self.now) {
                match effect {
                    Effect::Log(line) => self.logged.push(line),
                    // The shell writes a run's announcing line as the command starts.
                    Effect::Run { ref announce, .. } => {
                        self.logged.push(announce.clone());
                        effects.push(effect);
                    }
                    other => effects.push(other),
                }
            }
            // The tally kept along the way is the one counted from scratch.
            let mut recount = Tally::default();
            for (id, probe) in &self.core.probes {
                recount.count(*id, &probe.phase, &probe.def.title, true);
            }
            assert_eq!(self.core.tally, recount, "tally out of step");
            let mut recount = RunTally::default();
            for (command, run) in &self.core.runs {
                recount.count(*command, run, true);
            }
            assert_eq!(self.core.run_tally, recount, "run tally out of step");
            let mut wanted: BTreeMap<&'static str, usize> = BTreeMap::new();
            for probe in self.core.probes.values() {
                if let Some(manager) = probe.wants_stream() {
                    *wanted.entry(manager).or_default() += 1;
                }
            }
            assert_eq!(
                self.core.streams_wanted, wanted,
                "streams wanted out of step"
            );
            let watches: BTreeSet<(Instant, ProbeId)> = (self.core.probes.iter())
                .filter_map(|(id, p)| match p.watch() {
                    Some(Watch::Running { due }) => Some((due, *id)),
                    _ => None,
                })
                .collect();
            assert_eq!(self.core.watch_timers, watches, "watch timers out of step");
            effects
        }

        fn later(&mut self, by: Duration) -> Vec<Effect> {
            self.now += by;
            self.send(Event::Tick)
        }

        fn phase(&self, id: ProbeId) -> &'static str {
            match self.core.probe(id).map(|p| &p.phase) {
                None => "gone",
                Some(Phase::Finding { .. }) => "finding",
                Some(Phase::Placing {
                    placement: None, ..
                }) => "queued",
                Some(Phase::Placing { .. }) => "placing",
                Some(Phase::Armed { .. }) => "armed",
                Some(Phase::Held { .. }) => "held",
                Some(Phase::Cooling { .. }) => "cooling",
                Some(Phase::Spent { .. }) => "spent",
                Some(Phase::Leaving { .. }) => "leaving",
                Some(Phase::Retrying { .. }) => "retrying",
                Some(Phase::Waiting { .. }) => "waiting",
                Some(Phase::Refused { .. }) => "refused",
            }
        }
    }

    fn def(jail: &str, title: &str, respawn: Respawn) -> Definition {
        Definition {
            jail: jail.into(),
            title: title.into(),
            command: format!("echo {title}"),
            respawn,
            ..Definition::default()
        }
    }

    /// A `-R` probe (or another mode) with a cooldown of `secs`.
    fn cooled(respawn: Respawn, secs: u64) -> Definition {
        Definition {
            extras: Extras {
                cooldown: Some(Duration::from_secs(secs)),
                ..Extras::default()
            }
            .boxed(),
            ..def("web1", "T", respawn)
        }
    }

    /// Jail `jail` found: a jail of its own (its identity is its id), with its own users.
    fn found(spec: &str, jail: JailId) -> Event {
        found_as(spec, jail, jail as u64, false)
    }

    /// Jail `jail` found, with `identity` (shared by every name of one running jail) and
    /// whether its uids are the host's.
    fn found_as(spec: &str, jail: JailId, identity: u64, shares_host_users: bool) -> Event {
        Event::Found {
            spec: spec.into(),
            result: Ok((
                jail,
                JailFacts {
                    identity: (0, identity),
                    shares_host_users,
                },
            )),
        }
    }

    fn not_found(spec: &str) -> Event {
        Event::Found {
            spec: spec.into(),
            result: Err(Error::new(
                Kind::NoJail,
                format!("jail '{spec}': not running"),
            )),
        }
    }

    fn placed(placement: PlacementId, probe: ProbeId, pid: Pid) -> Event {
        Event::Placed {
            placement,
            results: vec![(probe, Ok((pid, (0, 0))))],
        }
    }

    fn not_placed(placement: PlacementId, probe: ProbeId, kind: Kind) -> Event {
        Event::Placed {
            placement,
            results: vec![(probe, Err(Error::new(kind, "no")))],
        }
    }

    fn magic(probe: ProbeId) -> Event {
        Event::ProbeExited {
            probe,
            exit: Exit::Code(MAGIC_EXIT),
        }
    }

    fn killed(probe: ProbeId) -> Event {
        Event::ProbeExited {
            probe,
            exit: Exit::Signal(9),
        }
    }

    fn ended(command: CommandId) -> Event {
        Event::CommandEnded {
            command,
            outcome: Ok("exit code 0".into()),
            status: Some(Exit::Code(0)),
            took: Duration::from_millis(2100),
        }
    }

    fn placements(effects: &[Effect]) -> Vec<(PlacementId, Vec<ProbeId>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Place {
                    placement, probes, ..
                } => Some((*placement, probes.iter().map(|p| p.probe).collect())),
                _ => None,
            })
            .collect()
    }

    fn replies(effects: &[Effect]) -> Vec<&Response> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply { response, .. } => Some(response),
                _ => None,
            })
            .collect()
    }

    fn kills(effects: &[Effect]) -> Vec<ProbeId> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Kill { probe } => Some(*probe),
                _ => None,
            })
            .collect()
    }

    /// Brings declared probe 1 of jail "web1" into `phase`.
    fn rig_in(phase: &str) -> Rig {
        rig_with(phase, None)
    }

    /// `rig_in`, for a probe with this watchdog period.
    fn rig_with(phase: &str, watchdog: Option<Duration>) -> Rig {
        let mut rig = Rig::new();
        let mut definition = match phase {
            "held" | "leaving" => def("web1", "T", Respawn::AfterCommand),
            "cooling" => cooled(Respawn::Immediately, 60),
            _ => def("web1", "T", Respawn::Never),
        };
        definition.watchdog = watchdog;
        rig.send(Event::Declare {
            def: definition,
            origin: Origin::Config,
        });
        drive(rig, phase, "web1")
    }

    /// Brings probe 1, just declared for jail `spec` (found as `JAIL`), into `phase`.
    fn drive(mut rig: Rig, phase: &str, spec: &str) -> Rig {
        if phase == "finding" {
            return rig;
        }
        if phase == "waiting" {
            rig.send(not_found(spec));
            return rig;
        }
        rig.send(found(spec, JAIL));
        match phase {
            "placing" => return rig,
            "refused" => {
                rig.send(not_placed(1, 1, Kind::NoUser));
                return rig;
            }
            _ => {}
        }
        rig.send(placed(1, 1, PID));
        match phase {
            "armed" => {}
            "held" | "spent" | "cooling" => {
                rig.send(magic(1));
            }
            "leaving" => {
                rig.send(magic(1));
                rig.send(Event::Remove {
                    client: 9,
                    which: "T".into(),
                    jail: "web1".into(),
                });
            }
            "retrying" => {
                rig.send(killed(1));
            }
            other => panic!("no such phase {other}"),
        }
        assert_eq!(rig.phase(1), phase, "set-up");
        rig
    }

    /// The watchdog's table: for a watchdog probe in each phase it can be in (rows) and each
    /// event (columns), its phase and its watchdog after it.
    #[test]
    fn every_watchdog_phase_meets_every_event() {
        const PERIOD: Duration = Duration::from_secs(60);
        type MakeEvent = fn() -> Event;
        let events: [(&str, MakeEvent); 9] = [
            ("found", || found("web1", JAIL)),
            ("not found", || not_found("web1")),
            ("placed", || placed(1, 1, PID)),
            ("not placed", || not_placed(1, 1, Kind::Os)),
            ("fired", || magic(1)),
            ("killed", || killed(1)),
            ("stopped", || Event::JailStopped { jail: JAIL }),
            ("tick", || Event::Tick),
            ("listed", || Event::List { client: 9 }),
        ];
        let watch = |rig: &Rig| match rig.core.probe(1).and_then(Probe::watch) {
            None => "none",
            Some(Watch::Running { .. }) => "running",
            Some(Watch::Paused { .. }) => "paused",
            Some(Watch::Fired) => "fired",
        };
        // A fed probe runs nothing: "fired" stays "running" and goes back to "placing"; only a
        // tick past the period runs the command ("armed/fired"). Only a stop pauses it.
        #[rustfmt::skip]
        let table: [(&str, [&str; 9]); 6] = [
            //            found             not found         placed            not placed          fired             killed            stopped           tick              listed
            ("finding",  ["placing/paused", "waiting/paused", "finding/paused", "finding/paused",  "finding/paused", "finding/paused", "finding/paused", "finding/paused", "finding/paused"]),
            ("placing",  ["placing/paused", "placing/paused", "armed/running",  "retrying/paused", "placing/paused", "placing/paused", "placing/paused", "placing/paused", "placing/paused"]),
            ("armed",    ["armed/running",  "armed/running",  "armed/running",  "armed/running",   "placing/running","retrying/running","waiting/paused","armed/fired",   "armed/running"]),
            ("retrying", ["retrying/running","retrying/running","retrying/running","retrying/running","retrying/running","retrying/running","waiting/paused","queued/fired", "retrying/running"]),
            ("waiting",  ["waiting/paused", "waiting/paused", "waiting/paused", "waiting/paused",  "waiting/paused", "waiting/paused", "waiting/paused", "finding/paused", "waiting/paused"]),
            ("refused",  ["refused/paused", "refused/paused", "refused/paused", "refused/paused",  "refused/paused", "refused/paused", "refused/paused", "refused/paused", "refused/paused"]),
        ];
        let mut wrong = Vec::new();
        for (phase, row) in table {
            for ((event, make), expected) in events.iter().zip(row) {
                let mut rig = rig_with(phase, Some(PERIOD));
                let runs_before = rig.core.run_tally.running;
                match *event {
                    "tick" => {
                        rig.later(BACKOFF_MAX + RETRY_INTERVAL);
                    }
                    _ => {
                        rig.send(make());
                    }
                }
                let after = match rig.phase(1) {
                    "placing" if expected.starts_with("queued") => "queued",
                    other => other,
                };
                let after = format!("{after}/{}", watch(&rig));
                if after != expected {
                    wrong.push(format!("{phase} + {event}: {after}, not {expected}"));
                }
                // Only a watch that turned "fired" ran the command.
                let ran = rig.core.run_tally.running > runs_before;
                if ran != expected.ends_with("/fired") {
                    wrong.push(format!("{phase} + {event}: ran {ran}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The transition table: for each phase (rows) and event (columns), the phase after it.
    #[test]
    fn every_phase_meets_every_event() {
        type MakeEvent = fn() -> Event;
        let events: [(&str, MakeEvent); 15] = [
            ("found", || found("web1", JAIL)),
            ("not found", || not_found("web1")),
            ("placed", || placed(1, 1, PID)),
            ("not placed", || not_placed(1, 1, Kind::Os)),
            ("fired", || magic(1)),
            ("killed", || killed(1)),
            ("command ended", || ended(1)),
            ("jail stopped", || Event::JailStopped { jail: JAIL }),
            ("tick", || Event::Tick),
            ("removed", || Event::Remove {
                client: 9,
                which: "T".into(),
                jail: "web1".into(),
            }),
            // Stands for the file as it was; filled in below with the probe's own definition.
            ("reloaded, same", || Event::Reload(Vec::new())),
            ("reloaded, gone", || Event::Reload(Vec::new())),
            ("listed", || Event::List { client: 9 }),
            // Docker's event stream says its container web1 started (or stopped).
            ("started", || changed("docker", &["web1"])),
            // A selector's listing: nothing to a probe declared by name.
            ("surveyed", || surveyed(&["web1"])),
        ];
        #[rustfmt::skip]
        let table: [(&str, [&str; 15]); 10] = [
            //            found      not found  placed     not placed fired      killed     cmd ended  stopped    tick       removed    reload=    reload-    listed     started    surveyed
            ("finding",  ["placing", "waiting", "finding", "finding", "finding", "finding", "finding", "finding", "finding", "gone",    "finding", "gone",    "finding", "finding", "finding"]),
            ("placing",  ["placing", "placing", "armed",   "retrying","placing", "placing", "placing", "placing", "placing", "gone",    "placing", "gone",    "placing", "placing", "placing"]),
            ("armed",    ["armed",   "armed",   "armed",   "armed",   "spent",   "retrying","armed",   "waiting", "armed",   "gone",    "armed",   "gone",    "armed",   "armed",   "armed"]),
            ("held",     ["held",    "held",    "held",    "held",    "held",    "held",    "queued",  "waiting", "held",    "leaving", "held",    "leaving",   "held",    "held",    "held"]),
            ("cooling",  ["cooling", "cooling", "cooling", "cooling", "cooling", "cooling", "cooling", "waiting", "queued",  "leaving", "cooling", "leaving",   "cooling", "cooling", "cooling"]),
            ("spent",    ["spent",   "spent",   "spent",   "spent",   "spent",   "spent",   "spent",   "waiting", "spent",   "leaving", "spent",   "leaving",   "spent",   "spent",   "spent"]),
            ("retrying", ["retrying","retrying","retrying","retrying","retrying","retrying","retrying","waiting", "queued",  "gone",    "retrying","gone",    "retrying","retrying","retrying"]),
            ("waiting",  ["waiting", "waiting", "waiting", "waiting", "waiting", "waiting", "waiting", "waiting", "finding", "gone",    "waiting", "gone",    "waiting", "finding", "waiting"]),
            ("refused",  ["refused", "refused", "refused", "refused", "refused", "refused", "refused", "refused", "refused", "gone",    "finding", "gone",    "refused", "refused", "refused"]),
            ("leaving",  ["leaving", "leaving", "leaving", "leaving", "leaving", "leaving", "gone",    "leaving", "leaving", "leaving", "leaving", "leaving", "leaving", "leaving", "leaving"]),
        ];
        let mut wrong = Vec::new();
        for (phase, row) in table {
            for ((event, make), expected) in events.iter().zip(row) {
                let mut rig = rig_in(phase);
                match *event {
                    "tick" => {
                        rig.later(BACKOFF_MAX + RETRY_INTERVAL);
                    }
                    "reloaded, same" => {
                        let same = rig.core.probe(1).expect("set up").def.clone();
                        rig.send(Event::Reload(vec![same]));
                    }
                    _ => {
                        rig.send(make());
                    }
                }
                // A queued probe is placed at once when its jail has nothing in flight.
                let after = match rig.phase(1) {
                    "placing" if expected == "queued" => "queued",
                    other => other,
                };
                if after != expected {
                    wrong.push(format!("{phase} + {event}: {after}, not {expected}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn an_armed_request_is_answered_once_placed_and_a_refused_one_is_forgotten() {
        let mut rig = Rig::new();
        let effects = rig.send(Event::Arm {
            client: 7,
            def: def("4144", "A", Respawn::Never),
            persist: false,
        });
        assert_eq!(
            effects,
            vec![Effect::Find {
                spec: "4144".into()
            }]
        );
        let effects = rig.send(found("4144", 4144));
        assert_eq!(placements(&effects), vec![(1, vec![1])]);
        assert!(replies(&effects).is_empty(), "answered before placed");
        let effects = rig.send(placed(1, 1, PID));
        assert_eq!(
            replies(&effects),
            vec![&Response::Armed {
                probe: 1,
                pid: PID,
                warnings: Vec::new()
            }]
        );
        // Twin: a refusal is answered with its reason, and nothing is kept.
        rig.send(Event::Arm {
            client: 8,
            def: def("4144", "B", Respawn::Never),
            persist: false,
        });
        let effects = rig.send(not_placed(2, 2, Kind::NoUser));
        match replies(&effects).as_slice() {
            [Response::Refused(e)] => assert_eq!(e.kind, Kind::NoUser),
            other => panic!("{other:?}"),
        }
        assert_eq!(rig.phase(2), "gone");
        assert_eq!(rig.core.list(rig.now).len(), 1);
    }

    /// The warnings the client of an arm request was answered with.
    fn warnings_of(effects: &[Effect]) -> Vec<String> {
        match replies(effects).as_slice() {
            [Response::Armed { warnings, .. }] => warnings.clone(),
            other => panic!("not one armed answer: {other:?}"),
        }
    }

    /// Arms `title` in the jail named `spec` (`jail` under `identity`), placed as `ids`;
    /// returns the effects of its placement.
    fn arm_in(
        rig: &mut Rig,
        spec: &str,
        (jail, identity, shares_host_users): (JailId, u64, bool),
        title: &str,
        ids: Ids,
    ) -> Vec<Effect> {
        let mut effects = rig.send(Event::Arm {
            client: 7,
            def: def(spec, title, Respawn::Never),
            persist: false,
        });
        let probe = rig.core.next_probe - 1;
        // A jail already held under the PID that names it is placed in at once.
        if let Phase::Finding { .. } = rig.core.probes[&probe].phase {
            effects = rig.send(found_as(spec, jail, identity, shares_host_users));
        }
        let [(placement, _)] = placements(&effects)[..] else {
            panic!("not placed: {effects:?}")
        };
        rig.send(Event::Placed {
            placement,
            results: vec![(probe, Ok((PID + probe as Pid, ids)))],
        })
    }

    #[test]
    fn one_title_armed_twice_in_one_jail_is_warned_naming_the_first_and_k_says_what_it_left() {
        let mut rig = Rig::new();
        // Two PIDs of one jail (one pid namespace, identity 9), the same title.
        let first = arm_in(&mut rig, "100", (100, 9, false), "CTL", (0, 0));
        assert_eq!(warnings_of(&first), Vec::<String>::new());
        let second = arm_in(&mut rig, "101", (101, 9, false), "CTL", (0, 0));
        let warned = warnings_of(&second);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("title 'CTL' is already armed in this jail")
                && warned[0].contains("probe 1 (armed by -c, jail 100)"),
            "{warned:?}"
        );
        // Twins: the same title in another jail, another title in this one: no warning.
        let elsewhere = arm_in(&mut rig, "300", (300, 30, false), "CTL", (0, 0));
        assert_eq!(warnings_of(&elsewhere), Vec::<String>::new());
        let other_title = arm_in(&mut rig, "100", (100, 9, false), "LOG", (0, 0));
        assert_eq!(warnings_of(&other_title), Vec::<String>::new());
        // A third by the first PID again names both others.
        let third = warnings_of(&arm_in(&mut rig, "100", (100, 9, false), "CTL", (0, 0)));
        assert!(
            third[0].contains("probe 1 (") && third[0].contains("probe 2 ("),
            "{third:?}"
        );
        // `-k CTL -j 100` removes both probes named so (as 0.2 would), says the title was
        // ambiguous, and names the one armed by the other PID, which stays.
        let effects = rig.send(Event::Remove {
            client: 8,
            which: "CTL".into(),
            jail: "100".into(),
        });
        match replies(&effects).as_slice() {
            [Response::Removed { probes, warnings }] => {
                assert_eq!(probes, &vec![1, 5]);
                assert_eq!(warnings.len(), 2, "{warnings:?}");
                assert!(warnings[0].contains("ambiguous") && warnings[0].contains("(1, 5)"));
                assert!(warnings[1].contains("probe 2 (armed by -c, jail 101)"));
            }
            other => panic!("{other:?}"),
        }
        // However many share a title, a warning names five and counts the rest.
        for _ in 0..6 {
            arm_in(&mut rig, "300", (300, 30, false), "MANY", (0, 0));
        }
        let seventh = warnings_of(&arm_in(&mut rig, "301", (301, 30, false), "MANY", (0, 0)));
        assert!(
            seventh[0]
                .ends_with(", 1 more; one pkill -f or killall by that title signals them all"),
            "{seventh:?}"
        );
        assert_eq!(seventh[0].matches("probe ").count(), 5, "{seventh:?}");
        // Twin: a title that names one probe, alone in its jail, is removed without a note.
        let effects = rig.send(Event::Remove {
            client: 8,
            which: "LOG".into(),
            jail: "100".into(),
        });
        assert_eq!(
            replies(&effects),
            vec![&Response::Removed {
                probes: vec![4],
                warnings: Vec::new()
            }]
        );
    }

    #[test]
    fn a_non_root_probe_in_a_jail_with_the_hosts_uids_is_warned_and_others_are_not() {
        let mut rig = Rig::new();
        let shared = warnings_of(&arm_in(
            &mut rig,
            "100",
            (100, 1, true),
            "A",
            (65534, 65534),
        ));
        assert_eq!(shared.len(), 1, "{shared:?}");
        assert!(
            shared[0].contains(
                "host processes with uid 65534 can fire it through the jail's own processes"
            ),
            "{shared:?}"
        );
        // Twins: root in that jail (host root can fire anything anyway), and the same uid in a
        // jail with a user namespace of its own.
        let root = arm_in(&mut rig, "100", (100, 1, true), "B", (0, 0));
        assert_eq!(warnings_of(&root), Vec::<String>::new());
        let own_users = arm_in(&mut rig, "200", (200, 2, false), "C", (65534, 65534));
        assert_eq!(warnings_of(&own_users), Vec::<String>::new());
    }

    #[test]
    fn a_persisted_probe_is_answered_only_once_saved() {
        let mut rig = Rig::new();
        rig.send(Event::Arm {
            client: 7,
            def: def("4144", "P", Respawn::AfterCommand),
            persist: true,
        });
        rig.send(found("4144", 4144));
        let effects = rig.send(placed(1, 1, PID));
        assert!(replies(&effects).is_empty(), "answered before saved");
        match effects.as_slice() {
            [Effect::Save { probes, confirm }] => {
                assert_eq!(probes.len(), 1);
                assert_eq!(confirm, &vec![(7, 1, PID, Vec::new())]);
            }
            other => panic!("{other:?}"),
        }
        // Twin: when the file cannot be written, it is refused and goes.
        let effects = rig.send(Event::StateNotSaved {
            error: Error::new(Kind::CantCreate, "state file: read-only"),
            unconfirmed: vec![(7, 1)],
        });
        assert_eq!(kills(&effects), vec![1]);
        assert!(matches!(
            replies(&effects).as_slice(),
            [Response::Refused(_)]
        ));
        assert_eq!(rig.phase(1), "gone");
    }

    #[test]
    fn probes_of_one_jail_are_placed_in_one_batch_and_others_wait_their_turn() {
        let mut rig = Rig::new();
        for title in ["A", "B", "C"] {
            rig.send(Event::Declare {
                def: def("web1", title, Respawn::Never),
                origin: Origin::Config,
            });
        }
        // One lookup for the name, however many probes wait for it.
        let effects = rig.send(found("web1", JAIL));
        assert_eq!(placements(&effects), vec![(1, vec![1, 2, 3])]);
        // A probe declared while the batch is in flight waits for the next one.
        rig.send(Event::Declare {
            def: def("web1", "D", Respawn::Never),
            origin: Origin::Config,
        });
        let effects = rig.send(found("web1", JAIL));
        assert!(placements(&effects).is_empty());
        assert_eq!(rig.phase(4), "queued");
        let effects = rig.send(Event::Placed {
            placement: 1,
            results: (1..=3).map(|p| (p, Ok((PID + p as Pid, (0, 0))))).collect(),
        });
        assert_eq!(placements(&effects), vec![(2, vec![4])]);
        assert!(!rig.core.settled());
    }

    #[test]
    fn at_most_max_placements_jails_are_placed_at_once() {
        let mut rig = Rig::new();
        for jail in 1..=(MAX_PLACEMENTS as JailId + 2) {
            rig.send(Event::Declare {
                def: def(&jail.to_string(), "T", Respawn::Never),
                origin: Origin::Config,
            });
        }
        let mut started = 0;
        for jail in 1..=(MAX_PLACEMENTS as JailId + 2) {
            started += placements(&rig.send(found(&jail.to_string(), jail))).len();
        }
        assert_eq!(started, MAX_PLACEMENTS);
        let effects = rig.send(placed(1, 1, PID));
        assert_eq!(placements(&effects).len(), 1, "the next jail's turn");
    }

    #[test]
    fn a_probe_that_keeps_failing_backs_off_and_a_fire_resets_it() {
        let mut rig = rig_in("armed");
        let mut delays = Vec::new();
        let mut placement = 1;
        for _ in 0..12 {
            rig.send(killed(1));
            let Some(Phase::Retrying { at, .. }) = rig.core.probe(1).map(|p| p.phase.clone())
            else {
                panic!("{}", rig.phase(1))
            };
            delays.push(at - rig.now);
            // Nothing happens before the delay is over.
            assert!(placements(&rig.later(at - rig.now - Duration::from_millis(1))).is_empty());
            let effects = rig.later(Duration::from_millis(1));
            placement += 1;
            assert_eq!(placements(&effects), vec![(placement, vec![1])]);
            rig.send(placed(placement, 1, PID));
        }
        let secs: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // A fire resets it: the next failure waits the first delay again.
        let mut rig = rig_in("armed");
        rig.send(killed(1));
        rig.later(BACKOFF_FIRST);
        rig.send(placed(2, 1, PID));
        rig.send(Event::Reload(vec![def("web1", "T", Respawn::Never)]));
        rig.send(magic(1));
        assert_eq!(rig.core.probe(1).unwrap().strikes, 0);
    }

    #[test]
    fn a_watchdog_runs_its_command_once_per_silence_and_pauses_while_its_jail_is_down() {
        const PERIOD: Duration = Duration::from_secs(60);
        let runs = |effects: &[Effect]| {
            effects
                .iter()
                .filter(|e| matches!(e, Effect::Run { .. }))
                .count()
        };
        let watch = |rig: &Rig| rig.core.probe(1).unwrap().watch();
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: Definition {
                extras: Extras {
                    watchdog: Some(PERIOD),
                    ..Extras::default()
                }
                .boxed(),
                ..def("web1", "T", Respawn::Never)
            },
            origin: Origin::Config,
        });
        // Not armed yet: paused with its whole period.
        assert_eq!(watch(&rig), Some(Watch::Paused { left: PERIOD }));
        rig.later(PERIOD * 2);
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        assert_eq!(
            watch(&rig),
            Some(Watch::Running {
                due: rig.now + PERIOD
            })
        );
        // Fed before the period's end: nothing runs, the period starts again, and the probe is
        // placed again at once.
        assert_eq!(runs(&rig.later(PERIOD - Duration::from_secs(1))), 0);
        let effects = rig.send(magic(1));
        assert_eq!(runs(&effects), 0, "a fed watchdog ran its command");
        assert_eq!(rig.phase(1), "placing");
        assert_eq!(rig.core.probe(1).unwrap().record().fired, 0);
        assert_eq!(
            watch(&rig),
            Some(Watch::Running {
                due: rig.now + PERIOD
            })
        );
        rig.send(placed(2, 1, PID));
        assert_eq!(runs(&rig.later(PERIOD - Duration::from_secs(1))), 0);
        // A period without a signal runs the command, once.
        assert_eq!(runs(&rig.later(Duration::from_secs(1))), 1);
        assert_eq!(watch(&rig), Some(Watch::Fired));
        assert_eq!(rig.phase(1), "armed");
        assert_eq!(runs(&rig.later(PERIOD * 3)), 0);
        rig.send(ended(1));
        // The next signal starts it again.
        let effects = rig.send(magic(1));
        assert_eq!(
            watch(&rig),
            Some(Watch::Running {
                due: rig.now + PERIOD
            })
        );
        let [(placement, _)] = placements(&effects)[..] else {
            panic!("not placed again: {effects:?}")
        };
        rig.send(placed(placement, 1, PID));
        assert_eq!(rig.phase(1), "armed");
        // The jail stops 10 s into the period: it pauses with 50 s left, for as long as the jail
        // is down, and runs again once the probe is armed.
        rig.later(Duration::from_secs(10));
        rig.send(Event::JailStopped { jail: JAIL });
        let left = PERIOD - Duration::from_secs(10);
        assert_eq!(watch(&rig), Some(Watch::Paused { left }));
        assert_eq!(runs(&rig.later(PERIOD * 10)), 0);
        // It comes back under a new init.
        let effects = rig.send(found("web1", 200));
        let [(placement, _)] = placements(&effects)[..] else {
            panic!("not placed again: {effects:?}")
        };
        rig.send(placed(placement, 1, 600));
        assert_eq!(
            watch(&rig),
            Some(Watch::Running {
                due: rig.now + left
            })
        );
        let listed = rig.core.list(rig.now);
        assert_eq!(listed[0].watchdog, Some(60));
        assert_eq!(listed[0].watchdog_left_ms, Some(50_000));
        assert_eq!(runs(&rig.later(left)), 1);
        // Killing the probe does not silence it: a declared probe is placed again, and its
        // period keeps running, since its jail does.
        rig.send(ended(2));
        rig.send(magic(1));
        let placing = rig.core.probe(1).unwrap().phase.clone();
        let Phase::Placing {
            placement: Some(placement),
            ..
        } = placing
        else {
            panic!("not placing: {placing:?}")
        };
        rig.send(placed(placement, 1, PID));
        rig.send(killed(1));
        assert_eq!(rig.phase(1), "retrying");
        assert!(matches!(watch(&rig), Some(Watch::Running { .. })));
        assert_eq!(
            runs(&rig.later(PERIOD)),
            1,
            "a killed watchdog was silenced"
        );
        // Fed and removed: its timer goes with it (the rig also checks the index after every
        // event).
        let effects = rig.send(placed(placement + 1, 1, PID));
        assert_eq!(rig.phase(1), "armed", "{effects:?}");
        rig.send(magic(1));
        assert_eq!(rig.core.watch_timers.len(), 1);
        rig.send(Event::Remove {
            client: 9,
            which: "T".into(),
            jail: "web1".into(),
        });
        assert!(rig.core.watch_timers.is_empty());
        assert_eq!(runs(&rig.later(PERIOD * 2)), 0);
    }

    #[test]
    fn a_stopped_probe_is_counted_and_only_an_armed_one() {
        let mut rig = rig_in("armed");
        let effects = rig.send(Event::ProbeStopped {
            probe: 1,
            signal: Some(19),
        });
        assert!(!effects.iter().any(|e| matches!(e, Effect::Run { .. })));
        assert_eq!(rig.phase(1), "armed");
        assert_eq!(rig.core.probe(1).unwrap().record().stops, 1);
        assert!(
            rig.core
                .metrics(rig.now)
                .contains("jaildaemon_probe_stops_total{id=\"1\"")
        );
        rig.send(Event::ProbeStopped {
            probe: 1,
            signal: None,
        });
        assert_eq!(
            rig.core.probe(1).unwrap().record().stops,
            1,
            "counted twice"
        );
        // A continuation whose stop was not seen counts that stop.
        rig.send(Event::ProbeStopped {
            probe: 1,
            signal: None,
        });
        assert_eq!(rig.core.probe(1).unwrap().record().stops, 2);
        assert_eq!(
            rig.core
                .probe(1)
                .unwrap()
                .record()
                .last
                .as_ref()
                .map(Note::to_string)
                .as_deref(),
            Some("continued after a stop")
        );
        // Twin: a probe not armed (its process gone already) is not counted.
        let mut rig = rig_in("retrying");
        rig.send(Event::ProbeStopped {
            probe: 1,
            signal: Some(19),
        });
        assert_eq!(rig.core.probe(1).unwrap().record().stops, 0);
    }

    /// Declared probe 1 of `definition`, found in `JAIL` and armed there.
    fn armed_rig(definition: Definition) -> Rig {
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: definition,
            origin: Origin::Config,
        });
        rig.send(found(&rig.core.probes[&1].def.jail.clone(), JAIL));
        rig.send(placed(1, 1, PID));
        rig
    }

    /// Issue 23: the daemon keeps 10,000 probes, so a probe boxes only what it uses. A plain
    /// probe armed and left alone has no record, nothing beside its phase and no extras; its
    /// twins (fired, a watchdog) get just their own boxes.
    #[test]
    fn a_plain_armed_probe_boxes_nothing_it_does_not_use() {
        assert!(
            std::mem::size_of::<Probe>() <= 168,
            "Probe grew to {} bytes: each one counts 10,000 times (BENCHMARKS.md, Reading)",
            std::mem::size_of::<Probe>()
        );
        let mut rig = armed_rig(def("web1", "T", Respawn::AfterCommand));
        assert_eq!(rig.phase(1), "armed");
        let probe = rig.core.probe(1).unwrap();
        assert!(probe.record.is_none() && probe.beside.is_none() && probe.def.extras.is_none());
        rig.send(magic(1));
        let probe = rig.core.probe(1).unwrap();
        assert_eq!(probe.record().fired, 1);
        assert!(probe.record.is_some() && probe.beside.is_none());
        let watchdog = Definition {
            extras: Extras {
                watchdog: Some(Duration::from_secs(60)),
                ..Extras::default()
            }
            .boxed(),
            ..def("web1", "T", Respawn::Never)
        };
        let rig = armed_rig(watchdog);
        let probe = rig.core.probe(1).unwrap();
        assert!(matches!(probe.watch(), Some(Watch::Running { .. })));
        assert!(probe.record.is_none() && probe.def.extras.is_some());
    }

    /// Jail "web1" of `armed_rig` stops, and runs again as `JAIL + 1`, where probe 1 is placed
    /// again as `pid`.
    fn stop_and_run_again(rig: &mut Rig, pid: Pid) {
        rig.send(Event::JailStopped { jail: JAIL });
        rig.later(RETRY_INTERVAL);
        let effects = rig.send(found("web1", JAIL + 1));
        let [(placement, _)] = placements(&effects)[..] else {
            panic!("{effects:?}")
        };
        rig.send(placed(placement, 1, pid));
    }

    /// Arm lines as these tests read them: what armed the probe, and its host pid (the rest,
    /// the probe's settings, is the listing's business).
    fn arms(lines: &[(Option<LineKind>, String)]) -> Vec<(Option<LineKind>, String)> {
        lines
            .iter()
            .map(|(kind, text)| {
                let head = text.split(':').next().unwrap_or_default();
                let pid = text.rsplit("host pid ").next().unwrap_or_default();
                let pid: String = pid.chars().take_while(char::is_ascii_digit).collect();
                (*kind, format!("{head}, host pid {pid}"))
            })
            .collect()
    }

    /// The lines the core logged since `from`, as (kind, or `None` for the host's, text).
    fn lines_since(rig: &Rig, from: usize) -> Vec<(Option<LineKind>, String)> {
        rig.logged[from..]
            .iter()
            .map(|l| match &l.cause {
                Cause::Probe {
                    probe, jail, kind, ..
                } => {
                    assert_eq!((*probe, jail.as_str()), (1, "web1"), "{l:?}");
                    (Some(*kind), l.text.clone())
                }
                Cause::Host => (None, l.text.clone()),
                Cause::Clients(_) => panic!("the core logs nothing of clients: {l:?}"),
            })
            .collect()
    }

    #[test]
    fn what_a_jail_does_is_logged_as_its_own_and_what_the_host_does_as_the_hosts() {
        let tag = "probe 1 (jail web1, 'T')";
        let mut rig = armed_rig(def("web1", "T", Respawn::Immediately));
        assert_eq!(
            arms(&lines_since(&rig, 0)),
            [(
                None,
                format!("{tag} armed (configuration file), host pid {PID}")
            )]
        );
        // The jail stops and continues its probe, fires it, and it is back; its command ends.
        let from = rig.logged.len();
        for signal in [Some(19), None] {
            rig.send(Event::ProbeStopped { probe: 1, signal });
        }
        rig.send(magic(1));
        rig.send(placed(2, 1, PID + 1));
        rig.send(ended(1));
        assert_eq!(
            lines_since(&rig, from),
            [
                (
                    Some(LineKind::Stop),
                    format!("{tag} stopped by signal 19: it fires nothing until continued")
                ),
                (
                    Some(LineKind::Continue),
                    format!("{tag} continued after a stop")
                ),
                (Some(LineKind::Trigger), format!("{tag} triggered")),
                (
                    Some(LineKind::Rearm),
                    format!("{tag} re-armed, host pid {}", PID + 1)
                ),
                (
                    Some(LineKind::CommandEnd),
                    format!("{tag} command ended with exit code 0 after 2.1s")
                ),
            ]
        );
        // The jail kills it: it is placed again later, which is the jail's doing too.
        let from = rig.logged.len();
        rig.send(killed(1));
        rig.later(BACKOFF_FIRST);
        rig.send(placed(3, 1, PID + 2));
        assert_eq!(
            lines_since(&rig, from),
            [
                (
                    Some(LineKind::Unfired),
                    format!("{tag} ended by signal 9: nothing fired; armed again in 1.0s")
                ),
                (
                    Some(LineKind::Rearm),
                    format!("{tag} re-armed, host pid {}", PID + 2)
                ),
            ]
        );
        // Its jail stops (the host's line) and runs again: the probe armed there again is the
        // jail's doing too.
        let from = rig.logged.len();
        stop_and_run_again(&mut rig, PID + 3);
        assert_eq!(
            lines_since(&rig, from),
            [
                (
                    None,
                    format!(
                        "jail web1 (id {JAIL}) stopped; probe(s) [1] gone with it, nothing fired; probe 1 'T' (configuration file) waits for the jail to run again"
                    )
                ),
                (
                    Some(LineKind::Rearm),
                    format!("{tag} re-armed, host pid {}", PID + 3)
                ),
            ]
        );
        // Twin: the administrator's removal is the host's line, and a stop of a probe no longer
        // there logs nothing.
        let from = rig.logged.len();
        rig.send(Event::Remove {
            client: 9,
            which: "T".into(),
            jail: "web1".into(),
        });
        rig.send(Event::ProbeStopped {
            probe: 1,
            signal: Some(19),
        });
        assert_eq!(
            lines_since(&rig, from),
            [(None, format!("{tag} removed on request"))]
        );
    }

    #[test]
    fn a_first_arm_is_the_hosts_line_and_arming_again_after_the_jail_ran_again_the_jails() {
        let tag = "probe 1 (jail web1, 'T')";
        let armed = |pid: Pid| format!("{tag} armed (configuration file), host pid {pid}");
        let mut rig = armed_rig(def("web1", "T", Respawn::Never));
        assert_eq!(arms(&lines_since(&rig, 0)), [(None, armed(PID))]);
        // A jail that stops and runs again (a container rebooting itself in a loop) has its
        // probes armed again each time: the jail's lines, limited as such.
        let from = rig.logged.len();
        stop_and_run_again(&mut rig, PID + 1);
        assert_eq!(
            arms(&lines_since(&rig, from)[1..]),
            [(Some(LineKind::Rearm), armed(PID + 1))]
        );
    }

    #[test]
    fn a_verb_exit_runs_that_verbs_command_and_an_undeclared_verb_runs_nothing() {
        let armed_with_usr1 = || {
            let mut rig = Rig::new();
            let mut definition = def("web1", "T", Respawn::Never);
            definition.verbs.insert(Verb::Usr1, "usr1-cmd".into());
            rig.send(Event::Declare {
                def: definition,
                origin: Origin::Config,
            });
            rig.send(found("web1", JAIL));
            rig.send(placed(1, 1, PID));
            assert_eq!(rig.phase(1), "armed");
            rig
        };
        let exit = |code: i32| Event::ProbeExited {
            probe: 1,
            exit: Exit::Code(code),
        };
        // USR1's code runs USR1's command; SIGHUP's runs the main one.
        let mut rig = armed_with_usr1();
        let effects = rig.send(exit(Verb::Usr1.exit_code()));
        assert!(
            matches!(effects.as_slice(), [Effect::Run { def, .. }] if def.command == "usr1-cmd"),
            "{effects:?}"
        );
        let mut rig = armed_with_usr1();
        let effects = rig.send(magic(1));
        assert!(
            matches!(effects.as_slice(), [Effect::Run { def, .. }] if def.command == "echo T"),
            "{effects:?}"
        );
        // Twin: USR2's code from a probe without that verb is just another code.
        let mut rig = armed_with_usr1();
        let effects = rig.send(exit(Verb::Usr2.exit_code()));
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::Run { .. })),
            "{effects:?}"
        );
        assert_eq!(rig.core.probe(1).unwrap().record().fired, 0);
    }

    /// Issue 22: a verb's own host user and timeout replace the probe's for its runs only;
    /// a verb without them, and SIGHUP's command, run with the probe's.
    #[test]
    fn a_verbs_own_user_and_timeout_apply_to_its_runs_only() {
        let mut definition = def("web1", "T", Respawn::Queue);
        definition.run_as = Some("nobody".into());
        definition.verbs.insert(Verb::Usr1, "plain-verb".into());
        let own = definition.verbs.entry(Verb::Usr2).or_default();
        own.command = "own-verb".into();
        own.run_as = Some("root".into());
        own.timeout = Some(Duration::from_secs(2));
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: definition,
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        let mut runs = Vec::new();
        for (exit, placement) in [
            (Verb::Usr2.exit_code(), 2),
            (Verb::Usr1.exit_code(), 3),
            (MAGIC_EXIT, 4),
        ] {
            let effects = rig.send(Event::ProbeExited {
                probe: 1,
                exit: Exit::Code(exit),
            });
            for effect in effects {
                if let Effect::Run { command, def, .. } = effect {
                    runs.push((
                        command,
                        def.command.clone(),
                        def.run_as.clone(),
                        def.timeout,
                    ));
                }
            }
            rig.send(ended(runs.last().expect("a run").0));
            rig.send(placed(placement, 1, PID));
        }
        let nobody = Some("nobody".to_string());
        assert_eq!(
            runs,
            [
                (
                    1,
                    "own-verb".to_string(),
                    Some("root".to_string()),
                    Some(Duration::from_secs(2))
                ),
                (2, "plain-verb".to_string(), nobody.clone(), None),
                (3, "echo T".to_string(), nobody, None),
            ]
        );
        // The verb's timeout is the one that stops its command; the others have none.
        let mut rig_again = Rig::new();
        let mut timed = def("web1", "T", Respawn::Queue);
        let own = timed.verbs.entry(Verb::Usr2).or_default();
        own.command = "own-verb".into();
        own.timeout = Some(Duration::from_secs(2));
        rig_again.send(Event::Declare {
            def: timed,
            origin: Origin::Config,
        });
        rig_again.send(found("web1", JAIL));
        rig_again.send(placed(1, 1, PID));
        rig_again.send(magic(1));
        rig_again.send(ended(1));
        rig_again.send(placed(2, 1, PID));
        rig_again.send(Event::ProbeExited {
            probe: 1,
            exit: Exit::Code(Verb::Usr2.exit_code()),
        });
        let effects = rig_again.later(Duration::from_secs(2));
        assert_eq!(stops(&effects), vec![(2, false)]);
        rig_again.send(ended(2));
        let last = rig_again.core.list(rig_again.now)[0].last.clone().unwrap();
        assert!(
            last.starts_with("command timed out after 2s and was stopped"),
            "{last}"
        );
    }

    #[test]
    fn nothing_stands_between_a_trigger_and_its_command() {
        // Issue 23: the command's start is the first thing a fire asks of the shell; the line
        // that says it was triggered rides on it, to be written once it runs.
        let mut rig = rig_in("armed");
        let effects = rig.core.handle(magic(1), rig.now);
        match effects.first() {
            Some(Effect::Run { announce, .. }) => {
                assert!(announce.text.ends_with("triggered"), "{announce:?}");
                assert!(matches!(announce.cause, Cause::Probe { probe: 1, .. }));
            }
            other => panic!("the fire's first effect is not its command: {other:?}"),
        }
        // Twin: a probe killed by a signal fires nothing, and says so in a line of its own.
        let mut rig = rig_in("armed");
        let effects = rig.core.handle(
            Event::ProbeExited {
                probe: 1,
                exit: Exit::Signal(9),
            },
            rig.now,
        );
        assert!(!effects.iter().any(|e| matches!(e, Effect::Run { .. })));
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Log(_))),
            "{effects:?}"
        );
    }

    #[test]
    fn a_declared_single_shot_fires_once_per_run_of_its_jail() {
        // The REBOOT probe: declared once, it works across every restart of its container.
        let mut rig = rig_in("armed");
        let effects = rig.send(magic(1));
        assert!(matches!(effects.as_slice(), [Effect::Run { .. }]));
        // Spent: a second signal finds no probe, and time alone does not bring it back.
        rig.later(BACKOFF_MAX);
        assert_eq!(rig.phase(1), "spent");
        rig.send(ended(1));
        assert_eq!(rig.phase(1), "spent");
        // The container goes down and comes back under a new init.
        rig.send(Event::JailStopped { jail: JAIL });
        assert_eq!(rig.phase(1), "waiting");
        let effects = rig.later(RETRY_INTERVAL);
        assert_eq!(
            effects,
            vec![Effect::Find {
                spec: "web1".into()
            }]
        );
        let effects = rig.send(found("web1", 200));
        assert_eq!(placements(&effects), vec![(2, vec![1])]);
        rig.send(placed(2, 1, 600));
        assert_eq!(rig.phase(1), "armed");
        assert_eq!(rig.core.list(rig.now)[0].jail_id, Some(200));
        // Twin: a plain probe (`-c`) that fired is gone once its command ends.
        let mut rig = Rig::new();
        rig.send(Event::Arm {
            client: 1,
            def: def("4144", "X", Respawn::Never),
            persist: false,
        });
        rig.send(found("4144", 4144));
        rig.send(placed(1, 1, PID));
        rig.send(magic(1));
        assert_eq!(rig.core.list(rig.now)[0].state, ProbeState::Running);
        rig.send(ended(1));
        assert_eq!(rig.phase(1), "gone");
    }

    #[test]
    fn a_jail_named_by_pid_is_never_looked_for_again_once_stopped() {
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: def("4144", "T", Respawn::Never),
            origin: Origin::Config,
        });
        rig.send(found("4144", 4144));
        rig.send(placed(1, 1, PID));
        let effects = rig.send(Event::JailStopped { jail: 4144 });
        assert_eq!(kills(&effects), vec![1]);
        assert_eq!(rig.phase(1), "waiting");
        assert!(rig.later(BACKOFF_MAX).is_empty());
        assert_eq!(rig.core.next_deadline(), None);
        // Twin: a named jail is looked for again.
        let mut rig = rig_in("armed");
        rig.send(Event::JailStopped { jail: JAIL });
        assert!(!rig.later(RETRY_INTERVAL).is_empty());
    }

    /// The lines the core logged for `event`, its own (the host's) each.
    fn logged_for(rig: &mut Rig, event: Event) -> Vec<String> {
        let from = rig.logged.len();
        rig.send(event);
        rig.logged[from..]
            .iter()
            .map(|l| {
                assert!(matches!(l.cause, Cause::Host), "{l:?}");
                l.text.clone()
            })
            .collect()
    }

    /// Issue 22: a jail's stop says which of its probes come back and why, and which are gone
    /// for good and what would have kept them; in one line, however many probes it had.
    #[test]
    fn a_stopped_jail_says_which_probes_come_back_and_which_are_gone() {
        let mut rig = Rig::new();
        // 1: declared, 2: -P, 3: plain -r (armed), 4: plain -r whose process ended first.
        rig.send(Event::Declare {
            def: def("web1", "DECLARED", Respawn::AfterCommand),
            origin: Origin::Config,
        });
        for (n, title) in [(2, "KEPT"), (3, "PLAIN"), (4, "FIRST")] {
            rig.send(Event::Arm {
                client: n,
                def: def("web1", title, Respawn::AfterCommand),
                persist: title == "KEPT",
            });
        }
        rig.send(found("web1", JAIL));
        rig.send(Event::Placed {
            placement: 1,
            results: (1..=4)
                .map(|id| (id, Ok((PID + id as Pid, (0, 0)))))
                .collect(),
        });
        rig.send(killed(4));
        assert_eq!(rig.phase(4), "gone");
        let lines = logged_for(&mut rig, Event::JailStopped { jail: JAIL });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(
            lines[0],
            "jail web1 (id 100) stopped; probe(s) [1, 2, 3, 4] gone with it, nothing fired; \
             probes 1 'DECLARED' (configuration file), 2 'KEPT' (-P) wait for the jail to run again; \
             probes 3 'PLAIN', 4 'FIRST' gone: armed without -P; arm them with -P or declare them \
             in the configuration file to keep them across restarts"
        );
        assert_eq!(
            (rig.phase(1), rig.phase(2), rig.phase(3)),
            ("waiting", "waiting", "gone")
        );

        // One of each, in a jail named by its PID, whose survivors wait for nothing.
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: def("4144", "BYPID", Respawn::Never),
            origin: Origin::Config,
        });
        rig.send(Event::Arm {
            client: 1,
            def: def("4144", "ONCE", Respawn::Never),
            persist: false,
        });
        rig.send(found("4144", 4144));
        rig.send(Event::Placed {
            placement: 1,
            results: vec![(1, Ok((PID, (0, 0)))), (2, Ok((PID + 1, (0, 0))))],
        });
        assert_eq!(
            logged_for(&mut rig, Event::JailStopped { jail: 4144 }),
            [
                "jail 4144 (id 4144) stopped; probe(s) [1, 2] gone with it, nothing fired; \
              probe 1 'BYPID' (configuration file) waits, but a jail named by its PID never runs again: remove it with -k; \
              probe 2 'ONCE' gone: armed without -P; arm it with -P or declare it in the \
              configuration file to keep it across restarts"
            ]
        );

        // A thousand probes: still one line, naming five of each kind and counting the rest.
        let mut rig = Rig::new();
        for n in 1..=1000u64 {
            let persist = n % 2 == 0;
            rig.send(Event::Arm {
                client: n,
                def: def("web1", &format!("P{n}"), Respawn::AfterCommand),
                persist,
            });
        }
        rig.send(found("web1", JAIL));
        let mut placement = 1;
        while rig
            .core
            .probes
            .values()
            .any(|p| !matches!(p.phase, Phase::Armed { .. }))
        {
            let ids = rig.core.tally.in_jail[&JAIL]
                .iter()
                .copied()
                .collect::<Vec<_>>();
            rig.send(Event::Placed {
                placement,
                results: ids
                    .iter()
                    .filter(|id| !matches!(rig.core.probes[id].phase, Phase::Armed { .. }))
                    .map(|&id| (id, Ok((PID + id as Pid, (0, 0)))))
                    .collect(),
            });
            placement += 1;
        }
        let lines = logged_for(&mut rig, Event::JailStopped { jail: JAIL });
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20] and 980 more gone with it")
                && lines[0].contains("probes 2 'P2' (-P), 4 'P4' (-P), 6 'P6' (-P), 8 'P8' (-P), 10 'P10' (-P) and 495 more wait for the jail to run again")
                && lines[0].contains("probes 1 'P1', 3 'P3', 5 'P5', 7 'P7', 9 'P9' and 495 more gone: armed without -P"),
            "{}",
            lines[0]
        );
        assert!(lines[0].len() < 1024, "{}", lines[0].len());
    }

    #[test]
    fn what_list_says_is_true() {
        // An unknown user is refused with its reason, never shown as waiting or with ids.
        let rig = rig_in("refused");
        let info = &rig.core.list(rig.now)[0];
        assert_eq!(info.state, ProbeState::Refused);
        assert_eq!((info.uid, info.gid, info.pid), (None, None, None));
        // A probe killed in a running jail is retrying, not waiting for its jail.
        let rig = rig_in("retrying");
        assert_eq!(rig.core.list(rig.now)[0].state, ProbeState::Retrying);
        assert_eq!(rig.core.list(rig.now)[0].jail_id, Some(JAIL));
        // Waiting means the jail is not running.
        let rig = rig_in("waiting");
        let info = &rig.core.list(rig.now)[0];
        assert_eq!(info.state, ProbeState::Waiting);
        assert_eq!(info.jail_id, None);
        assert!(info.last.as_deref().unwrap().contains("not running"));
    }

    #[test]
    fn a_jail_is_released_after_its_grace_once_it_has_no_probe() {
        let mut rig = rig_in("armed");
        rig.send(Event::Remove {
            client: 1,
            which: "1".into(),
            jail: "web1".into(),
        });
        let effects = rig.later(JAIL_GRACE - Duration::from_millis(1));
        assert!(!effects.contains(&Effect::Release { jail: JAIL }));
        let effects = rig.later(Duration::from_millis(1));
        assert_eq!(effects, vec![Effect::Release { jail: JAIL }]);
        // Twin: a jail with a probe is kept.
        let mut rig = rig_in("armed");
        assert!(rig.later(JAIL_GRACE * 2).is_empty());
    }

    #[test]
    fn limits_are_checked_on_the_one_path_into_a_placement() {
        let limits = Limits {
            total: 3,
            per_jail: 2,
            descriptors: usize::MAX,
        };
        let mut rig = Rig::with(limits);
        for (client, title) in [(1, "A"), (2, "B"), (3, "C")] {
            rig.send(Event::Arm {
                client,
                def: def("4144", title, Respawn::Immediately),
                persist: false,
            });
        }
        let effects = rig.send(found("4144", 4144));
        match replies(&effects).as_slice() {
            [Response::Refused(e)] => {
                assert_eq!(e.kind, Kind::Limit);
                assert!(e.message.contains("limit 2"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        // A re-arm takes the same path: `-R` fires, and its probe comes back within the limit.
        rig.send(Event::Placed {
            placement: 1,
            results: vec![(1, Ok((501, (0, 0)))), (2, Ok((502, (0, 0))))],
        });
        let effects = rig.send(magic(1));
        assert_eq!(placements(&effects), vec![(2, vec![1])]);
        // The descriptor reserve, too.
        let limits = Limits {
            total: 10,
            per_jail: 10,
            descriptors: BASE_DESCRIPTORS + RESERVED_DESCRIPTORS + 2,
        };
        let mut rig = Rig::with(limits);
        for (client, title) in [(1, "A"), (2, "B")] {
            rig.send(Event::Arm {
                client,
                def: def("4144", title, Respawn::Never),
                persist: false,
            });
        }
        let effects = rig.send(found("4144", 4144));
        match replies(&effects).as_slice() {
            [Response::Refused(e)] => assert!(e.message.contains("descriptor limit"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn respawn_immediately_is_held_back_at_its_command_limit() {
        let mut rig = armed_rig(def("web1", "R", Respawn::Immediately));
        for n in 2..=MAX_RUNNING_PER_PROBE as u64 {
            rig.send(magic(1));
            rig.send(placed(n, 1, PID + n as Pid));
        }
        rig.send(magic(1));
        assert_eq!(rig.phase(1), "held");
        let effects = rig.send(ended(2));
        assert_eq!(placements(&effects).len(), 1);
    }

    #[test]
    fn a_probe_removed_while_placed_has_its_process_killed_when_it_arrives() {
        let mut rig = rig_in("placing");
        rig.send(Event::Remove {
            client: 1,
            which: "T".into(),
            jail: "web1".into(),
        });
        let effects = rig.send(placed(1, 1, PID));
        assert_eq!(kills(&effects), vec![1]);
        // A jail that stops during a placement: what arrives after is killed, and waits.
        let mut rig = rig_in("placing");
        rig.send(Event::JailStopped { jail: JAIL });
        let effects = rig.send(placed(1, 1, PID));
        assert_eq!(kills(&effects), vec![1]);
        assert_eq!(rig.phase(1), "waiting");
    }

    #[test]
    fn a_cooling_probe_stays_out_of_its_jail_until_its_cooldown_is_over() {
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: cooled(Respawn::Immediately, 60),
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        let effects = rig.send(magic(1));
        assert!(matches!(effects.as_slice(), [Effect::Run { .. }]));
        assert!(
            placements(&effects).is_empty(),
            "placed during its cooldown"
        );
        assert_eq!(rig.phase(1), "cooling");
        // Its command ending changes nothing, and `-l` says when it is back.
        rig.send(ended(1));
        let effects = rig.later(Duration::from_secs(59));
        assert!(placements(&effects).is_empty());
        let info = &rig.core.list(rig.now)[0];
        assert_eq!(info.state, ProbeState::Cooling);
        assert!(
            info.last.as_deref().unwrap().ends_with("back in 1.0s"),
            "{info:?}"
        );
        assert_eq!(
            rig.core.next_deadline(),
            Some(rig.now + Duration::from_secs(1))
        );
        let effects = rig.later(Duration::from_secs(1));
        assert_eq!(placements(&effects), vec![(2, vec![1])]);
        // Twin: without a cooldown, `-R` is placed again at once.
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: def("web1", "T", Respawn::Immediately),
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        assert_eq!(placements(&rig.send(magic(1))), vec![(2, vec![1])]);
    }

    #[test]
    fn after_command_with_a_cooldown_waits_for_both() {
        // A short command: back when the cooldown is over.
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: cooled(Respawn::AfterCommand, 60),
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        rig.send(magic(1));
        assert_eq!(rig.phase(1), "held");
        rig.now += Duration::from_secs(10);
        assert!(placements(&rig.send(ended(1))).is_empty());
        assert_eq!(rig.phase(1), "cooling");
        assert_eq!(
            placements(&rig.later(Duration::from_secs(50))),
            vec![(2, vec![1])]
        );
        // A long command: back when it ends, the cooldown being over by then.
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: cooled(Respawn::AfterCommand, 60),
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        rig.send(magic(1));
        assert!(placements(&rig.later(Duration::from_secs(90))).is_empty());
        rig.now += Duration::from_secs(1);
        assert_eq!(placements(&rig.send(ended(1))), vec![(2, vec![1])]);
    }

    #[test]
    fn respawn_immediately_after_its_cooldown_still_keeps_its_command_limit() {
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: cooled(Respawn::Immediately, 1),
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        for n in 2..=MAX_RUNNING_PER_PROBE as u64 {
            rig.send(magic(1));
            rig.later(Duration::from_secs(1));
            rig.send(placed(n, 1, PID + n as Pid));
        }
        rig.send(magic(1));
        assert_eq!(rig.phase(1), "cooling");
        assert!(placements(&rig.later(Duration::from_secs(1))).is_empty());
        assert_eq!(rig.phase(1), "held");
        assert_eq!(placements(&rig.send(ended(2))).len(), 1);
    }

    fn runs(effects: &[Effect]) -> Vec<CommandId> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Run { command, .. } => Some(*command),
                _ => None,
            })
            .collect()
    }

    /// A declared `queue` probe, armed in web1 under placement 1.
    fn queue_rig(origin: Origin) -> Rig {
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: def("web1", "Q", Respawn::Queue),
            origin,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        rig
    }

    #[test]
    fn queue_runs_one_command_at_a_time_and_owes_one_run_to_triggers_meanwhile() {
        let mut rig = queue_rig(Origin::Config);
        // The first fire runs at once, and the probe is placed again at once.
        let effects = rig.send(magic(1));
        assert_eq!(runs(&effects), vec![1]);
        assert_eq!(placements(&effects), vec![(2, vec![1])]);
        // Five more fires while it runs: no command, but the probe is back each time.
        for placement in 2..7 {
            rig.send(placed(placement, 1, PID + placement as Pid));
            assert_eq!(rig.phase(1), "armed");
            let effects = rig.send(magic(1));
            assert!(runs(&effects).is_empty(), "two runs at once");
            assert_eq!(placements(&effects), vec![(placement + 1, vec![1])]);
        }
        assert_eq!(rig.core.probe(1).unwrap().owed().unwrap().triggers, 5);
        let info = &rig.core.list(rig.now)[0];
        assert!(
            info.last
                .as_deref()
                .unwrap()
                .ends_with("one more run queued")
        );
        // The run ends: exactly one more starts, for all five.
        let effects = rig.send(ended(1));
        assert_eq!(runs(&effects), vec![2]);
        assert_eq!(rig.core.probe(1).unwrap().owed(), None);
        // That one ends with nothing owed: nothing more runs.
        assert!(runs(&rig.send(ended(2))).is_empty());
        assert_eq!(rig.core.probe(1).unwrap().record().fired, 6);
        // Twin: a fire while nothing runs runs at once.
        rig.send(placed(7, 1, PID));
        assert_eq!(runs(&rig.send(magic(1))), vec![3]);
    }

    #[test]
    fn a_queued_run_is_dropped_by_a_removal_but_not_by_its_jail_stopping() {
        let mut rig = queue_rig(Origin::Command);
        rig.send(magic(1));
        rig.send(placed(2, 1, PID + 1));
        rig.send(magic(1));
        rig.send(placed(3, 1, PID + 2));
        rig.send(Event::JailStopped { jail: JAIL });
        // Kept only for its command and the run it owes.
        assert_eq!(rig.phase(1), "leaving");
        // The trigger was taken before the stop: its run still comes, then the probe goes.
        let effects = rig.send(ended(1));
        match effects.as_slice() {
            [Effect::Run { jail, .. }] => assert_eq!(*jail, JAIL),
            other => panic!("{other:?}"),
        }
        assert_eq!(rig.phase(1), "leaving");
        assert!(runs(&rig.send(ended(2))).is_empty());
        assert_eq!(rig.phase(1), "gone");
        // Twin: removed, its queued run never starts.
        let mut rig = queue_rig(Origin::Config);
        rig.send(magic(1));
        rig.send(placed(2, 1, PID + 1));
        rig.send(magic(1));
        rig.send(Event::Remove {
            client: 9,
            which: "Q".into(),
            jail: "web1".into(),
        });
        assert!(runs(&rig.send(ended(1))).is_empty());
        assert_eq!(rig.phase(1), "gone");
    }

    fn stops(effects: &[Effect]) -> Vec<(CommandId, bool)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Stop { command, force } => Some((*command, *force)),
                _ => None,
            })
            .collect()
    }

    /// A declared `-r` probe with a timeout of 30 s, fired once: its command 1 runs.
    fn timed_rig() -> Rig {
        let mut rig = Rig::new();
        rig.send(Event::Declare {
            def: Definition {
                extras: Extras {
                    timeout: Some(Duration::from_secs(30)),
                    ..Extras::default()
                }
                .boxed(),
                ..def("web1", "T", Respawn::AfterCommand)
            },
            origin: Origin::Config,
        });
        rig.send(found("web1", JAIL));
        rig.send(placed(1, 1, PID));
        assert_eq!(runs(&rig.send(magic(1))), vec![1]);
        rig
    }

    /// The commands' table: for command 1 in each phase (rows) and each event (columns), its
    /// phase after it and what the shell is asked to do to it.
    #[test]
    fn every_command_phase_meets_every_event() {
        let untimed = || {
            let mut rig = Rig::new();
            let definition = def("web1", "T", Respawn::AfterCommand);
            let origin = Origin::Config;
            rig.send(Event::Declare {
                def: definition,
                origin,
            });
            rig.send(found("web1", JAIL));
            rig.send(placed(1, 1, PID));
            assert_eq!(runs(&rig.send(magic(1))), vec![1]);
            rig
        };
        let rig_in = |phase: &str| {
            let mut rig = match phase {
                "untimed" => return untimed(),
                _ => timed_rig(),
            };
            if phase == "running" {
                return rig;
            }
            rig.later(Duration::from_secs(30));
            match phase {
                "stopping" => {}
                "lingering" => {
                    rig.send(ended(1));
                }
                "killed" => {
                    rig.later(KILL_GRACE);
                }
                other => panic!("no such phase {other}"),
            }
            rig
        };
        let phase = |rig: &Rig| match rig.core.runs.get(&1).map(|r| r.phase) {
            None => "over",
            Some(RunPhase::Running { .. }) => "running",
            Some(RunPhase::Stopping { .. }) => "stopping",
            Some(RunPhase::Lingering { .. }) => "lingering",
            Some(RunPhase::Killed) => "killed",
        };
        let events = ["ended", "tick", "due", "removed", "jail stopped"];
        // "due" is 30 s on: a running command's timeout, and past a stop's grace.
        #[rustfmt::skip]
        let table: [(&str, [&str; 5]); 5] = [
            //             ended                tick         due              removed      jail stopped
            ("running",   ["over clear",       "running",   "stopping TERM", "running",   "running"]),
            ("untimed",   ["over",             "untimed",   "untimed",       "untimed",   "untimed"]),
            ("stopping",  ["lingering",        "stopping",  "killed KILL",   "stopping",  "stopping"]),
            ("lingering", ["lingering",        "lingering", "over KILL",     "lingering", "lingering"]),
            ("killed",    ["over clear-killed","killed",    "killed",        "killed",    "killed"]),
        ];
        let mut wrong = Vec::new();
        for (row, cells) in table {
            for (event, expected) in events.iter().zip(cells) {
                let mut rig = rig_in(row);
                let effects = match *event {
                    "ended" => rig.send(ended(1)),
                    "tick" => rig.later(Duration::from_secs(1)),
                    "due" => rig.later(Duration::from_secs(30)),
                    "removed" => rig.send(Event::Remove {
                        client: 9,
                        which: "T".into(),
                        jail: "web1".into(),
                    }),
                    _ => rig.send(Event::JailStopped { jail: JAIL }),
                };
                let asked: Vec<&str> = effects
                    .iter()
                    .filter_map(|e| match e {
                        Effect::Stop { force: false, .. } => Some("TERM"),
                        Effect::Stop { force: true, .. } => Some("KILL"),
                        Effect::Clear { killed: false, .. } => Some("clear"),
                        Effect::Clear { killed: true, .. } => Some("clear-killed"),
                        _ => None,
                    })
                    .collect();
                let after = match phase(&rig) {
                    "running" if row == "untimed" => "untimed",
                    other => other,
                };
                let after = [after]
                    .into_iter()
                    .chain(asked)
                    .collect::<Vec<_>>()
                    .join(" ");
                if after != expected {
                    wrong.push(format!("{row} + {event}: {after}, not {expected}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_command_past_its_timeout_gets_sigterm_then_sigkill_after_the_grace() {
        let mut rig = timed_rig();
        assert!(stops(&rig.later(Duration::from_secs(29))).is_empty());
        assert_eq!(stops(&rig.later(Duration::from_secs(1))), vec![(1, false)]);
        assert_eq!(rig.core.probe(1).unwrap().record().timeouts, 1);
        assert!(stops(&rig.later(KILL_GRACE - Duration::from_millis(1))).is_empty());
        assert_eq!(stops(&rig.later(Duration::from_millis(1))), vec![(1, true)]);
        assert_eq!(rig.core.next_deadline(), None);
        rig.send(Event::CommandEnded {
            command: 1,
            outcome: Ok("signal 9".into()),
            status: Some(Exit::Signal(9)),
            took: Duration::from_secs(35),
        });
        let last = rig.core.list(rig.now)[0].last.clone().unwrap();
        assert!(last.starts_with("command timed out after 30s"), "{last}");
        // Its shell ends at SIGTERM: SIGKILL still comes at the grace's end, for what it left.
        let mut rig = timed_rig();
        rig.later(Duration::from_secs(30));
        rig.send(Event::CommandEnded {
            command: 1,
            outcome: Ok("signal 15".into()),
            status: Some(Exit::Signal(15)),
            took: Duration::from_secs(30),
        });
        assert_eq!(stops(&rig.later(KILL_GRACE)), vec![(1, true)]);
    }

    #[test]
    fn a_command_that_ends_in_time_is_never_stopped() {
        let mut rig = timed_rig();
        rig.now += Duration::from_secs(29);
        rig.send(ended(1));
        assert_eq!(rig.core.next_deadline(), None);
        assert!(stops(&rig.later(Duration::from_secs(3600))).is_empty());
        assert_eq!(rig.core.probe(1).unwrap().record().timeouts, 0);
        assert!(
            !rig.core.list(rig.now)[0]
                .last
                .clone()
                .unwrap()
                .contains("timed out")
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(2153)), "2.2s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m05s");
    }

    const WEB: &str = "docker:label=role=web";

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            pod: None,
        }
    }

    fn surveyed(names: &[&str]) -> Event {
        Event::Surveyed {
            selector: WEB.into(),
            result: Ok(names.iter().map(|n| member(n)).collect()),
        }
    }

    fn surveys(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Survey { .. }))
            .count()
    }

    fn changed(manager: &'static str, names: &[&str]) -> Event {
        Event::Changed {
            manager,
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// The jails of selector probes, by title, sorted.
    fn member_jails(rig: &Rig) -> Vec<String> {
        let mut jails: Vec<String> = (rig.core.probes.values())
            .filter(|p| p.member.is_some())
            .map(|p| format!("{} {}", p.def.jail, p.def.title))
            .collect();
        jails.sort();
        jails
    }

    fn fleet_rig() -> Rig {
        let mut rig = Rig::new();
        let effects = rig.send(Event::Declare {
            def: def(WEB, "T", Respawn::AfterCommand),
            origin: Origin::Config,
        });
        assert_eq!(
            effects,
            vec![Effect::Survey {
                selector: WEB.into()
            }]
        );
        assert!(!rig.core.settled(), "a listing in flight is not settled");
        rig
    }

    #[test]
    fn each_member_of_a_selector_gets_a_probe_and_one_that_goes_is_dropped() {
        let mut rig = fleet_rig();
        let effects = rig.send(surveyed(&["proj-web-1", "proj-web-2", "proj-web-3"]));
        assert_eq!(
            member_jails(&rig),
            [
                "docker:proj-web-1 T",
                "docker:proj-web-2 T",
                "docker:proj-web-3 T"
            ]
        );
        let finds: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::Find { .. }))
            .collect();
        assert_eq!(finds.len(), 3);
        // Each is the template's probe: the command is the host's, whatever the container.
        for p in rig.core.probes.values() {
            assert_eq!(p.def.command, "echo T");
            assert_eq!(p.member.as_ref().unwrap().selector, WEB);
        }
        let listed = rig.core.list(rig.now);
        assert!(listed.iter().all(|p| p.selector.as_deref() == Some(WEB)));
        // One removed: its probe goes; one added: it gets one; the same list twice changes
        // nothing.
        rig.send(surveyed(&["proj-web-1", "proj-web-3", "proj-web-4"]));
        assert_eq!(
            member_jails(&rig),
            [
                "docker:proj-web-1 T",
                "docker:proj-web-3 T",
                "docker:proj-web-4 T"
            ]
        );
        let before: Vec<ProbeId> = rig.core.probes.keys().copied().collect();
        rig.send(surveyed(&["proj-web-1", "proj-web-3", "proj-web-4"]));
        assert_eq!(rig.core.probes.keys().copied().collect::<Vec<_>>(), before);
        // Twin: a listing that failed keeps every probe as it is.
        rig.send(Event::Surveyed {
            selector: WEB.into(),
            result: Err("docker failed: Cannot connect".into()),
        });
        assert_eq!(rig.core.probes.keys().copied().collect::<Vec<_>>(), before);
        // And a second selector probe title makes one more probe per member.
        rig.send(Event::Reload(vec![
            def(WEB, "T", Respawn::AfterCommand),
            def(WEB, "U", Respawn::Never),
        ]));
        rig.send(surveyed(&["proj-web-1"]));
        assert_eq!(
            member_jails(&rig),
            ["docker:proj-web-1 T", "docker:proj-web-1 U"]
        );
    }

    #[test]
    fn a_selector_is_listed_again_on_events_slowly_without_and_once_at_a_time() {
        let mut rig = fleet_rig();
        // Events while a listing is in flight make one more listing after it, not one each,
        // and no sooner than SURVEY_GAP after the last one started.
        for _ in 0..5 {
            assert_eq!(surveys(&rig.send(changed("docker", &["x"]))), 0);
        }
        assert_eq!(surveys(&rig.send(surveyed(&[]))), 0);
        assert_eq!(rig.core.next_deadline(), Some(rig.now + SURVEY_GAP));
        assert_eq!(surveys(&rig.later(SURVEY_GAP)), 1);
        assert_eq!(surveys(&rig.send(surveyed(&[]))), 0);
        assert!(rig.core.settled());
        // A flood of events within the gap is one listing at its end.
        for _ in 0..100 {
            assert_eq!(surveys(&rig.send(changed("docker", &["x"]))), 0);
        }
        assert_eq!(surveys(&rig.later(SURVEY_GAP)), 1);
        rig.send(surveyed(&[]));
        // Another manager's events do not list it.
        assert_eq!(surveys(&rig.send(changed("podman", &["x"]))), 0);
        // Without events, it is listed again every SURVEY_INTERVAL.
        assert_eq!(
            surveys(&rig.later(SURVEY_INTERVAL - Duration::from_millis(1))),
            0
        );
        assert_eq!(surveys(&rig.later(Duration::from_millis(1))), 1);
    }

    #[test]
    fn a_waiting_probe_is_looked_for_when_its_container_starts_not_at_its_next_look() {
        let mut rig = rig_in("armed");
        rig.send(Event::JailStopped { jail: JAIL });
        assert_eq!(rig.phase(1), "waiting");
        // Twin first: another container's start, or another manager's, changes nothing.
        rig.send(changed("docker", &["web2"]));
        rig.send(changed("podman", &["web1"]));
        assert_eq!(rig.phase(1), "waiting");
        let effects = rig.send(changed("docker", &["web1"]));
        assert_eq!(rig.phase(1), "finding");
        assert_eq!(
            effects,
            vec![Effect::Find {
                spec: "web1".into()
            }]
        );
        assert_eq!(rig.core.stream_managers(), BTreeSet::from(["docker"]));
    }

    #[test]
    fn selectors_are_for_the_configuration_file_and_reloads_replace_their_probes() {
        let mut rig = Rig::new();
        let effects = rig.send(Event::Arm {
            client: 7,
            def: def(WEB, "T", Respawn::Never),
            persist: false,
        });
        match replies(&effects).as_slice() {
            [Response::Refused(e)] => {
                assert_eq!(e.kind, Kind::Usage);
                assert!(e.message.contains("configuration file"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert!(rig.core.probes.is_empty());
        let mut rig = fleet_rig();
        rig.send(surveyed(&["a", "b"]));
        let old: Vec<ProbeId> = rig.core.probes.keys().copied().collect();
        // Unchanged: nothing happens to its probes.
        rig.send(Event::Reload(vec![def(WEB, "T", Respawn::AfterCommand)]));
        assert_eq!(rig.core.probes.keys().copied().collect::<Vec<_>>(), old);
        // Changed: its probes are replaced once listed again.
        let effects = rig.send(Event::Reload(vec![def(WEB, "T", Respawn::Never)]));
        assert!(rig.core.probes.is_empty(), "old probes removed");
        assert_eq!(surveys(&effects), 1);
        rig.send(surveyed(&["a", "b"]));
        assert!(
            rig.core
                .probes
                .values()
                .all(|p| p.def.respawn == Respawn::Never)
        );
        // Removed: its probes go, and it is listed no more.
        rig.send(Event::Reload(Vec::new()));
        assert!(rig.core.probes.is_empty());
        assert_eq!(rig.core.next_deadline(), None);
        assert_eq!(surveys(&rig.send(changed("docker", &["a"]))), 0);
    }

    #[test]
    fn a_pods_probe_hands_its_pod_to_the_command() {
        let mut rig = Rig::new();
        let spec = "k8s:shop/app=web";
        rig.send(Event::Declare {
            def: def(spec, "T", Respawn::Never),
            origin: Origin::Config,
        });
        let pod = selector::Pod {
            namespace: "shop".into(),
            name: "web-abc".into(),
            container: "nginx".into(),
        };
        rig.send(Event::Surveyed {
            selector: spec.into(),
            result: Ok(vec![Member {
                name: "c1".into(),
                pod: Some(pod.clone()),
            }]),
        });
        assert_eq!(rig.core.probe(1).unwrap().def.jail, "containerd:k8s.io/c1");
        rig.send(found("containerd:k8s.io/c1", JAIL));
        rig.send(placed(1, 1, PID));
        let effects = rig.send(magic(1));
        match effects.as_slice() {
            [Effect::Run { pod: Some(p), .. }] => assert_eq!(*p, pod),
            other => panic!("{other:?}"),
        }
        // Twin: a probe of a plain jail has no pod.
        let mut rig = rig_in("armed");
        match rig.send(magic(1)).as_slice() {
            [Effect::Run { pod: None, .. }] => {}
            other => panic!("{other:?}"),
        }
    }

    /// A selector's probe in each phase (rows) meets each listing event (columns): listed
    /// again with its container, without it, a failed listing, and its container's start.
    #[test]
    fn every_member_phase_meets_every_listing() {
        type MakeEvent = fn() -> Event;
        let events: [(&str, MakeEvent); 4] = [
            ("listed", || surveyed(&["web1"])),
            ("unlisted", || surveyed(&[])),
            ("failed", || Event::Surveyed {
                selector: WEB.into(),
                result: Err("down".into()),
            }),
            ("started", || changed("docker", &["web1"])),
        ];
        #[rustfmt::skip]
        let table: [(&str, [&str; 4]); 9] = [
            // A probe whose command still runs is kept (leaving) until it ends, as for `-k`.
            //            listed      unlisted  failed      started
            ("finding",  ["finding",  "gone",   "finding",  "finding"]),
            ("placing",  ["placing",  "gone",   "placing",  "placing"]),
            ("armed",    ["armed",    "gone",   "armed",    "armed"]),
            ("held",     ["held",     "leaving","held",     "held"]),
            ("cooling",  ["cooling",  "leaving","cooling",  "cooling"]),
            ("spent",    ["spent",    "leaving","spent",    "spent"]),
            ("retrying", ["retrying", "gone",   "retrying", "retrying"]),
            ("waiting",  ["finding",  "gone",   "waiting",  "finding"]),
            ("refused",  ["refused",  "gone",   "refused",  "refused"]),
        ];
        let mut wrong = Vec::new();
        for (phase, row) in table {
            for ((event, make), expected) in events.iter().zip(row) {
                let mut rig = member_rig_in(phase);
                rig.send(make());
                if rig.phase(1) != expected {
                    wrong.push(format!(
                        "{phase} + {event}: {}, not {expected}",
                        rig.phase(1)
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Brings probe 1, of selector `WEB`'s member `web1`, into `phase`.
    fn member_rig_in(phase: &str) -> Rig {
        let mut rig = Rig::new();
        let respawn = match phase {
            "held" => Respawn::AfterCommand,
            "cooling" => Respawn::Immediately,
            _ => Respawn::Never,
        };
        let mut template = def(WEB, "T", respawn);
        if phase == "cooling" {
            template.cooldown = Some(Duration::from_secs(60));
        }
        rig.send(Event::Declare {
            def: template,
            origin: Origin::Config,
        });
        rig.send(surveyed(&["web1"]));
        drive(rig, phase, "docker:web1")
    }
}
