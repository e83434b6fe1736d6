//! The daemon's shell: owns the socket, the clients, and every descriptor and process; feeds
//! what happens to the core (`core.rs`) as events and performs the effects it returns.
//!
//! One thread and one event queue. Nothing in the loop waits on anything outside the daemon:
//! container managers' tools, placements and clients are all watched by the queue under
//! deadlines, and a killed child is reaped when it is gone, never waited for.

mod clients;
mod commands;
pub mod core;
mod fleets;
mod ids;
pub mod logbudget;
mod startup;

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use self::core::{
    ClientId, CommandId, Core, Effect, Event, JailId, Limits, PlacementId, ProbeId, ToPlace,
};
pub use self::core::{MAX_PROBES, MAX_PROBES_PER_JAIL, MAX_RUNNING_PER_PROBE, RETRY_INTERVAL};
use self::logbudget::{Cause, LineKind, LogBudget, LogLine};
use crate::cli::DaemonConfig;
use crate::definition::Definition;
use crate::error::{Error, Kind};
use crate::proto::{Origin, Response};
use crate::sys::{self, Jail, Lookup, Opening, Placement, Poller, Process, Spawner, Survey};
use clients::{CLIENT_DEADLINE, Client, ClientState};
use commands::{Draining, RunningCommand};
pub use startup::KEPT_VARIABLES;
use startup::{
    PidFile, notify_service_manager, probe_limits, remove_leftovers, shed_environment, take_socket,
};

/// How soon a child that exited but could not be reaped yet (a tracer holds it) is looked at
/// again.
const RECHECK: Duration = Duration::from_millis(100);
/// Descriptors a container lookup may hold: its queue, and per manager a pidfd and two pipes.
const LOOKUP_DESCRIPTORS: usize = 13;
/// Descriptors a selector's listing may hold: its queue, and per tool of a round a pidfd and
/// two pipes.
const SURVEY_DESCRIPTORS: usize = 1 + 3 * 64;
/// Stops and continuations of children taken per turn of the loop (`children_changed`).
const MAX_CHILD_CHANGES: usize = 1024;
/// How long shutdown waits for killed probes to go (frozen or traced ones may not).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The metrics file: where (`-M`, else the configuration file's `metrics`), and when it was
/// last written; it is replaced at most once every `METRICS_INTERVAL`.
#[derive(Default)]
struct MetricsFile {
    named: Option<PathBuf>,
    from_file: Option<PathBuf>,
    written: Option<Instant>,
    /// Something happened since it was written.
    dirty: bool,
    /// The last error writing it, logged once until it changes.
    error: Option<String>,
}

/// Why the metrics file at `path` could not be written, naming a missing directory as such
/// (the error of the open, ENOENT, names neither).
fn metrics_error(path: &Path, e: &std::io::Error) -> String {
    let directory = path.parent().unwrap_or(Path::new("/"));
    if e.kind() == std::io::ErrorKind::NotFound && !directory.is_dir() {
        return format!(
            "metrics file {}: directory {} does not exist",
            path.display(),
            directory.display()
        );
    }
    format!("metrics file {}: {e}", path.display())
}

/// The metrics file is replaced at most this often.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

impl MetricsFile {
    fn path(&self) -> Option<&Path> {
        self.named.as_deref().or(self.from_file.as_deref())
    }

    /// When it is next due, if something changed (`now` if it was never written).
    fn due(&self, now: Instant) -> Option<Instant> {
        self.path()?;
        if !self.dirty {
            return None;
        }
        Some(self.written.map_or(now, |t| t + METRICS_INTERVAL))
    }
}

/// The configuration file, and whether `-C` named it (then it must exist).
struct ConfigFile {
    path: PathBuf,
    named: bool,
}

/// A placement in flight: its jail, its probes in batch order, and those refused before it
/// started (their ids could not be resolved).
struct InFlight {
    placement: Placement,
    jail: JailId,
    probes: Vec<ProbeId>,
    refused: Vec<(ProbeId, Error)>,
}

struct Daemon {
    listener: UnixListener,
    /// Besides root, members of this host group may talk to the daemon.
    group: Option<u32>,
    signals: OwnedFd,
    spawner: Spawner,
    poller: Poller,
    core: Core,
    /// Events for the core, in order.
    events: VecDeque<Event>,
    /// Jails held for probes, by `Jail::id`.
    jails: BTreeMap<JailId, Jail>,
    /// Armed probes' processes.
    armed: BTreeMap<ProbeId, Process>,
    commands: BTreeMap<CommandId, RunningCommand>,
    /// Cgroups of commands that ended while being stopped at their timeout.
    draining: BTreeMap<CommandId, Draining>,
    placements: BTreeMap<PlacementId, InFlight>,
    /// Container names being looked up, by a serial number, with the name.
    lookups: BTreeMap<u64, (String, Lookup)>,
    /// Selectors being listed, by a serial number, with the selector.
    surveys: BTreeMap<u64, (String, Survey)>,
    /// The container managers' event streams.
    streams: fleets::Streams,
    clients: BTreeMap<ClientId, Client>,
    /// Killed processes not reaped yet, by serial number.
    reaping: BTreeMap<u64, Process>,
    next_serial: u64,
    config: ConfigFile,
    state_path: PathBuf,
    /// Children whose pidfd said "exited" but that could not be reaped yet (a tracer holds
    /// them): looked at again at the time given, instead of spun on.
    rechecks: BTreeMap<Token, Instant>,
    /// Out of descriptors: the listener is not watched until then.
    listener_paused: Option<Instant>,
    descriptor_limit: usize,
    /// READY=1 was sent: the probes declared at start are settled.
    ready: bool,
    metrics: MetricsFile,
    /// What is left of the log lines jails and clients may cause, per window.
    log_budget: LogBudget,
    /// SIGTERM or SIGINT came.
    stopping: bool,
    /// Held for the daemon's life: no second daemon arms this state file's probes.
    _state_lock: crate::state::StateLock,
}

/// What a ready descriptor stands for; the poller carries it as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Listener,
    /// The signalfd; as a recheck, children's stops and continuations still to be asked for.
    Signals,
    Client(ClientId),
    Probe(ProbeId),
    Jail(JailId),
    Command(CommandId),
    Output(CommandId),
    /// A killed child, to be reaped once gone.
    Reap(u64),
    Placement(PlacementId),
    Lookup(u64),
    /// The cgroup of a killed command, removed once empty (a recheck only, never watched).
    Drain(CommandId),
    Survey(u64),
    /// A manager's event stream, by its place in `fleets::STREAM_MANAGERS`.
    Stream(u64),
}

impl Token {
    const ID_BITS: u32 = 56;

    fn encode(self) -> u64 {
        let (kind, id) = match self {
            Token::Listener => (1, 0),
            Token::Signals => (2, 0),
            Token::Client(id) => (3, id),
            Token::Probe(id) => (4, id),
            Token::Jail(id) => (5, u64::from(id as u32)),
            Token::Command(id) => (6, id),
            Token::Output(id) => (7, id),
            Token::Reap(id) => (8, id),
            Token::Placement(id) => (9, id),
            Token::Lookup(id) => (10, id),
            Token::Drain(id) => (11, id),
            Token::Survey(id) => (12, id),
            Token::Stream(id) => (13, id),
        };
        (kind << Self::ID_BITS) | (id & ((1 << Self::ID_BITS) - 1))
    }

    fn decode(value: u64) -> Option<Token> {
        let id = value & ((1 << Self::ID_BITS) - 1);
        Some(match value >> Self::ID_BITS {
            1 => Token::Listener,
            2 => Token::Signals,
            3 => Token::Client(id),
            4 => Token::Probe(id),
            5 => Token::Jail(id as u32 as i32),
            6 => Token::Command(id),
            7 => Token::Output(id),
            8 => Token::Reap(id),
            9 => Token::Placement(id),
            10 => Token::Lookup(id),
            11 => Token::Drain(id),
            12 => Token::Survey(id),
            13 => Token::Stream(id),
            _ => return None,
        })
    }
}

pub fn run(config: &DaemonConfig) -> Result<(), Error> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::new(Kind::NoPerm, "the daemon must run as root"));
    }
    shed_environment()?;
    sys::default_sigchld();
    // Both files are read before the daemon detaches, so that a bad one is refused at the
    // terminal; their probes are armed once the daemon runs. The state file is read once its
    // lock is ours (in `start`): what another daemon still writes is not what we would arm.
    let declared = crate::config::load(&config.config, config.config_named)?;
    commands::check_run_as(&config.config, &declared.probes)?;
    let limits = probe_limits()?;
    // The probe image and its slots take the lowest free descriptors, before the pidfile and
    // the socket: a probe's helpers keep only the descriptors below the slots (until their
    // exec), so neither the pidfile's lock nor the listening socket can outlive the daemon in
    // a helper that is still on its way when the daemon is killed.
    let spawner = Spawner::load().map_err(|e| Error::os("loading the probe image", e))?;
    let mut pidfile = PidFile::lock(&config.pidfile)?;
    // From here on, a daemon that does not start leaves no pidfile behind.
    let started = start(config, &mut pidfile, spawner, limits);
    let (mut daemon, persisted) = match started {
        Ok(Some((mut daemon, persisted))) => {
            daemon.metrics.from_file = declared.metrics.clone();
            (daemon, persisted)
        }
        Ok(None) => std::process::exit(0),
        Err(e) => {
            let _ = std::fs::remove_file(&config.pidfile);
            return Err(e);
        }
    };
    if let Some(path) = daemon.metrics.path() {
        remove_leftovers(path, "metrics file");
    }
    for def in persisted {
        daemon.events.push_back(Event::Declare {
            def,
            origin: Origin::Persisted,
        });
    }
    for def in declared.probes {
        daemon.events.push_back(Event::Declare {
            def,
            origin: Origin::Config,
        });
    }
    let result = daemon.serve();
    notify_service_manager("STOPPING=1");
    daemon.shutdown();
    // A file of a daemon that is gone would only mislead: its absence says so.
    if let Some(path) = daemon.metrics.path() {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(&config.socket);
    let _ = std::fs::remove_file(&config.pidfile);
    drop(pidfile);
    log::info!("stopped");
    result
}

/// Takes the socket and the state file's lock, reads the state file, detaches (the parent
/// returns `None` once the pidfile and the lock name the child) and makes the daemon, with the
/// probes the state file holds.
fn start(
    config: &DaemonConfig,
    pidfile: &mut PidFile,
    spawner: Spawner,
    limits: (usize, usize),
) -> Result<Option<(Daemon, Vec<Definition>)>, Error> {
    let group = match &config.group {
        None => None,
        Some(name) => {
            let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let gid = crate::ids::resolve_group(name, &groups)
                .ok_or_else(|| Error::new(Kind::NoUser, format!("unknown group '{name}' (-G)")))?;
            Some(gid)
        }
    };
    let listener = take_socket(&config.socket, group)?;
    let taken = start_serving(config, pidfile, listener, group, spawner, limits);
    if taken.is_err() {
        // The socket is ours: bound above.
        let _ = std::fs::remove_file(&config.socket);
    }
    taken
}

/// `start`, once the socket is ours.
fn start_serving(
    config: &DaemonConfig,
    pidfile: &mut PidFile,
    listener: UnixListener,
    group: Option<u32>,
    spawner: Spawner,
    limits: (usize, usize),
) -> Result<Option<(Daemon, Vec<Definition>)>, Error> {
    // Before any probe is armed, held until the daemon exits (the detached child inherits it).
    let mut state_lock = crate::state::StateLock::take(&config.state)?;
    remove_leftovers(&config.state, "state file");
    let persisted = crate::state::load(&config.state)?;
    // SIGCHLD tells of a probe stopped or continued (its exit comes through its pidfd).
    let signals = sys::signalfd(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD])
        .map_err(|e| Error::os("signalfd", e))?;
    let poller = Poller::new().map_err(|e| Error::os("creating the event queue", e))?;
    // Every armed probe holds a descriptor; let the daemon use its whole hard limit.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: nofile.maximum,
            maximum: nofile.maximum,
        },
    );
    let descriptor_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if config.foreground {
        crate::logging::foreground(std::env::var_os("JOURNAL_STREAM").as_deref());
    }
    if !config.foreground {
        // While stderr is still the administrator's, the log chooses where it goes once
        // detached (and says so when no syslog daemon listens).
        crate::logging::before_detach().map_err(|e| Error::os("detaching", e))?;
        match sys::detach().map_err(|e| Error::os("detaching", e))? {
            Some(child) => {
                // The parent writes the pid, so that the pidfile is complete when `-D` returns.
                pidfile
                    .write_pid(child)
                    .map_err(|e| Error::os("writing the pidfile", e))?;
                state_lock
                    .write_pid(child)
                    .map_err(|e| Error::os("writing the state file's lock", e))?;
                return Ok(None);
            }
            None => crate::logging::switch_to_syslog(),
        }
    } else {
        pidfile
            .write_pid(std::process::id())
            .map_err(|e| Error::os("writing the pidfile", e))?;
        state_lock
            .write_pid(std::process::id())
            .map_err(|e| Error::os("writing the state file's lock", e))?;
    }
    log::info!(
        "listening on {} (pid {})",
        config.socket.display(),
        std::process::id()
    );
    for warning in sys::host_warnings() {
        log::warn!("{warning}");
    }
    let daemon = Daemon {
        listener,
        group,
        signals,
        spawner,
        poller,
        core: Core::new(Limits {
            total: limits.0,
            per_jail: limits.1,
            descriptors: descriptor_limit,
        }),
        events: VecDeque::new(),
        jails: BTreeMap::new(),
        armed: BTreeMap::new(),
        commands: BTreeMap::new(),
        draining: BTreeMap::new(),
        placements: BTreeMap::new(),
        lookups: BTreeMap::new(),
        surveys: BTreeMap::new(),
        streams: fleets::Streams::new(
            std::env::var_os(fleets::STREAMS_VARIABLE).is_some_and(|v| v == "off"),
        ),
        clients: BTreeMap::new(),
        reaping: BTreeMap::new(),
        next_serial: 1,
        config: ConfigFile {
            path: config.config.clone(),
            named: config.config_named,
        },
        state_path: config.state.clone(),
        rechecks: BTreeMap::new(),
        listener_paused: None,
        descriptor_limit,
        ready: false,
        metrics: MetricsFile {
            named: config.metrics.clone(),
            dirty: true,
            ..MetricsFile::default()
        },
        log_budget: LogBudget::default(),
        stopping: false,
        _state_lock: state_lock,
    };
    listen(&daemon.poller, daemon.signals.as_fd(), Token::Signals);
    Ok(Some((daemon, persisted)))
}

impl Daemon {
    fn serve(&mut self) -> Result<(), Error> {
        let mut ready = Vec::new();
        loop {
            self.run_core();
            if !self.ready && self.core.settled() {
                // Clients are served once the probes declared at start are settled (each
                // lookup and placement has its deadline), so that the first `-l` shows them
                // armed; until then they wait in the socket's backlog.
                self.ready = true;
                listen(&self.poller, self.listener.as_fd(), Token::Listener);
                notify_service_manager("READY=1");
            }
            if self.stopping {
                return Ok(());
            }
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            ready.clear();
            self.poller
                .wait(timeout, &mut ready)
                .map_err(|e| Error::os("waiting for events", e))?;
            for token in ready.iter().filter_map(|t| Token::decode(*t)) {
                match token {
                    Token::Listener => self.accept(),
                    Token::Signals => self.signalled(),
                    Token::Client(id) => self.client_ready(id),
                    Token::Probe(id) => self.probe_exited(id),
                    Token::Jail(id) => self.jail_stopped(id),
                    Token::Output(id) => self.command_output(id),
                    Token::Command(id) => self.command_exited(id),
                    Token::Reap(serial) => self.reap(serial),
                    Token::Placement(id) => self.placement_ready(id, false),
                    Token::Lookup(serial) => self.lookup_ready(serial, Instant::now()),
                    Token::Drain(id) => self.drain(id),
                    Token::Survey(serial) => self.survey_ready(serial, Instant::now()),
                    Token::Stream(index) => self.stream_ready(index, Instant::now()),
                }
            }
            self.on_time(Instant::now());
        }
    }

    /// Hands every queued event to the core and performs what it returns (which may queue
    /// more events).
    fn run_core(&mut self) {
        let mut probes_changed = false;
        while let Some(event) = self.events.pop_front() {
            self.metrics.dirty |= !matches!(event, Event::List { .. });
            // Only these add or remove probes, and with them the event streams wanted.
            probes_changed |= matches!(
                event,
                Event::Declare { .. }
                    | Event::Reload(_)
                    | Event::Arm { .. }
                    | Event::Remove { .. }
                    | Event::Surveyed { .. }
            );
            self.core.set_shell_descriptors(self.shell_descriptors());
            for effect in self.core.handle(event, Instant::now()) {
                self.perform(effect);
            }
        }
        if probes_changed {
            self.follow_streams(Instant::now());
        }
    }

    /// Descriptors the shell holds besides the base: clients, lookups, listings, event streams
    /// (a pidfd and a pipe each), placements' status pipes and helpers, killed children.
    fn shell_descriptors(&self) -> usize {
        self.clients.len()
            + self.reaping.len()
            + LOOKUP_DESCRIPTORS * self.lookups.len()
            + SURVEY_DESCRIPTORS * self.surveys.len()
            + 2 * self.streams.count()
            + 2 * self.placements.len()
    }

    fn perform(&mut self, effect: Effect) {
        match effect {
            Effect::Find { spec } => self.find(spec),
            Effect::Survey { selector } => self.survey(selector),
            Effect::Place {
                placement,
                jail,
                probes,
            } => self.place(placement, jail, probes),
            Effect::Kill { probe } => {
                if let Some(process) = self.armed.remove(&probe) {
                    self.kill_and_reap(process);
                }
            }
            Effect::Run {
                command,
                probe,
                def,
                jail,
                pod,
            } => self.run_command(command, probe, &def, jail, pod.as_ref()),
            Effect::Stop { command, force } => self.stop_command(command, force),
            Effect::Reply { client, response } => self.answer(client, &response),
            Effect::Save { probes, confirm } => self.save(&probes, confirm),
            Effect::Log(line) => self.log(line),
            Effect::Release { jail } => {
                if let Some(jail) = self.jails.remove(&jail)
                    && let Some(fd) = jail.watch_fd()
                {
                    self.poller.remove(fd);
                }
            }
        }
    }

    /// Writes `line` to the log, unless its cause has used up its budget (then it is counted
    /// for the summary at the end of its window).
    fn log(&mut self, line: LogLine) {
        if self.log_budget.admit(&line, Instant::now()) {
            log::log!(line.level, "{}", line.text);
        }
    }

    /// A log line about probe `id` that its jail caused, for `log`.
    fn probe_line(&self, id: ProbeId, kind: LineKind, level: log::Level, text: String) -> LogLine {
        let (tag, jail) = self.core.probe(id).map_or_else(
            || (format!("probe {id}"), String::new()),
            |p| (p.tag(id), p.def.jail.clone()),
        );
        LogLine {
            level,
            text,
            cause: Cause::Probe {
                probe: id,
                tag,
                jail,
                kind,
            },
        }
    }

    /// Starts opening the jail `spec` names; a container name is looked up without waiting.
    fn find(&mut self, spec: String) {
        match Jail::open(&spec, Instant::now()) {
            Opening::Ready(result) => {
                let result = result.map(|jail| self.hold(jail, &spec));
                self.events.push_back(Event::Found { spec, result });
            }
            Opening::Looking(lookup) => {
                let serial = self.serial();
                listen(&self.poller, lookup.poll_fd(), Token::Lookup(serial));
                self.lookups.insert(serial, (spec, lookup));
            }
        }
    }

    /// Holds `jail` and watches it for its stop; one already held under its id is kept.
    fn hold(&mut self, jail: Jail, spec: &str) -> (JailId, core::JailFacts) {
        let id = jail.id();
        let facts = core::JailFacts {
            identity: jail.identity(),
            shares_host_users: jail.shares_host_users(),
        };
        if !self.jails.contains_key(&id) {
            if jail.shares_host_pids() {
                log::warn!(
                    "jail {spec} (id {id}): its probes cannot tell a host process from one of the \
                     jail's, so any host process allowed to signal them can fire them (SECURITY.md)"
                );
            }
            if let Some(fd) = jail.watch_fd() {
                listen(&self.poller, fd, Token::Jail(id));
            }
            self.jails.insert(id, jail);
        }
        (id, facts)
    }

    fn lookup_ready(&mut self, serial: u64, now: Instant) {
        let Some((_, lookup)) = self.lookups.get_mut(&serial) else {
            return;
        };
        let result = lookup.step(now);
        for process in lookup.take_leftovers() {
            self.reap_later(process);
        }
        let Some(result) = result else { return };
        let (spec, lookup) = self.lookups.remove(&serial).expect("present");
        self.poller.remove(lookup.poll_fd());
        drop(lookup);
        let result = result.map(|jail| self.hold(jail, &spec));
        self.events.push_back(Event::Found { spec, result });
    }

    /// Starts placing `probes` in `jail`, all in one placement, whose helper resolves their
    /// ids in the jail's user database (off the loop: the jail's filesystem may not answer).
    fn place(&mut self, placement: PlacementId, jail: JailId, probes: Vec<ToPlace>) {
        let Some(held) = self.jails.get(&jail) else {
            let error = Error::new(Kind::NoJail, format!("jail {jail} stopped"));
            let results = probes
                .iter()
                .map(|p| (p.probe, Err(error.clone())))
                .collect();
            self.events.push_back(Event::Placed { placement, results });
            return;
        };
        let mut refused = Vec::new();
        let mut requests = Vec::new();
        let mut placing = Vec::new();
        for p in probes {
            let title = std::ffi::CString::new(p.title)
                .map_err(|_| Error::new(Kind::Data, "the title contains a NUL byte"));
            match title {
                Ok(title) => {
                    // The verbs go in the probe's environment, which the jail cannot change
                    // (probe/probe.rs says why there); its argv is the title, followed by the
                    // status words with `--status`.
                    let env = p
                        .verbs
                        .iter()
                        .map(|(v, window)| {
                            // `USR1=SECS`: its confirmation window, 0 for none.
                            let mut entry = v.probe_variable().to_vec();
                            let secs = window.map_or(0, |w| w.as_secs());
                            entry.extend_from_slice(secs.to_string().as_bytes());
                            std::ffi::CString::new(entry).expect("no NUL")
                        })
                        .collect();
                    let args = p.status.map_or_else(Vec::new, |last| {
                        status_words(last, Instant::now())
                            .into_iter()
                            .map(|w| std::ffi::CString::new(w).expect("no NUL"))
                            .collect()
                    });
                    requests.push(sys::ProbeRequest {
                        title,
                        args,
                        env,
                        query: crate::userdb::Query {
                            user: p.user,
                            group: p.group,
                        },
                    });
                    placing.push(p.probe);
                }
                Err(e) => refused.push((p.probe, e)),
            }
        }
        let started = if requests.is_empty() {
            None
        } else {
            Some(Placement::start(
                &mut self.spawner,
                held,
                &requests,
                Instant::now(),
            ))
        };
        match started {
            Some(Ok(started)) => {
                listen(&self.poller, started.poll_fd(), Token::Placement(placement));
                self.placements.insert(
                    placement,
                    InFlight {
                        placement: started,
                        jail,
                        probes: placing,
                        refused,
                    },
                );
            }
            Some(Err(e)) => {
                let mut results: Vec<_> =
                    placing.into_iter().map(|id| (id, Err(e.clone()))).collect();
                results.extend(refused.into_iter().map(|(id, e)| (id, Err(e))));
                self.events.push_back(Event::Placed { placement, results });
            }
            None => {
                let results = refused.into_iter().map(|(id, e)| (id, Err(e))).collect();
                self.events.push_back(Event::Placed { placement, results });
            }
        }
    }

    /// A placement's helpers reported: once all are done (or at its deadline), it ends.
    fn placement_ready(&mut self, id: PlacementId, late: bool) {
        let Some(flight) = self.placements.get_mut(&id) else {
            return;
        };
        if !flight.placement.step() && !late {
            return;
        }
        let flight = self.placements.remove(&id).expect("present");
        self.poller.remove(flight.placement.poll_fd());
        // The jail, if it is still held: one that stopped meanwhile gets no probe.
        let placed = flight.placement.finish(self.jails.get_mut(&flight.jail));
        for process in placed.leftovers {
            self.reap_later(process);
        }
        let mut results = Vec::with_capacity(flight.probes.len() + flight.refused.len());
        for (probe, result) in flight.probes.into_iter().zip(placed.results) {
            results.push((
                probe,
                result.map(|(process, ids)| {
                    let pid = process.pid();
                    listen(&self.poller, process.poll_fd(), Token::Probe(probe));
                    self.armed.insert(probe, process);
                    (pid, ids)
                }),
            ));
        }
        results.extend(flight.refused.into_iter().map(|(id, e)| (id, Err(e))));
        self.events.push_back(Event::Placed {
            placement: id,
            results,
        });
    }

    fn run_command(
        &mut self,
        command: CommandId,
        probe: ProbeId,
        def: &Definition,
        jail: JailId,
        pod: Option<&crate::selector::Pod>,
    ) {
        let container = self.jails.get(&jail).and_then(Jail::container);
        match RunningCommand::spawn(
            &mut self.spawner,
            commands::Spawning {
                command,
                probe,
                def,
                jail,
                container,
                pod,
            },
            Instant::now(),
        ) {
            Ok(running) => {
                let text = format!(
                    "{} command started, host pid {}",
                    running.tag,
                    running.process.pid()
                );
                self.log(self.probe_line(probe, LineKind::CommandStart, log::Level::Info, text));
                listen(
                    &self.poller,
                    running.process.poll_fd(),
                    Token::Command(command),
                );
                if let Some(output) = &running.output {
                    listen(&self.poller, output.as_fd(), Token::Output(command));
                }
                self.commands.insert(command, running);
            }
            Err(e) => self.events.push_back(Event::CommandEnded {
                command,
                outcome: Err(e.to_string()),
                status: None,
                took: Duration::ZERO,
            }),
        }
    }

    /// Writes the state file; answers the `-P` requests it confirms, or refuses them.
    fn save(&mut self, probes: &[Definition], confirm: Vec<core::Confirm>) {
        match crate::state::save(&self.state_path, probes) {
            Ok(()) => {
                for (client, probe, pid, warnings) in confirm {
                    let armed = Response::Armed {
                        probe,
                        pid,
                        warnings,
                    };
                    self.answer(client, &armed);
                }
            }
            Err(e) => {
                let error = Error::new(
                    Kind::CantCreate,
                    format!("state file {}: {e}", self.state_path.display()),
                );
                log::error!("{error}");
                if !confirm.is_empty() {
                    let unconfirmed = confirm.into_iter().map(|(c, p, ..)| (c, p)).collect();
                    self.events
                        .push_back(Event::StateNotSaved { error, unconfirmed });
                }
            }
        }
    }

    fn signalled(&mut self) {
        while let Ok(Some(sig)) = sys::read_signalfd(self.signals.as_fd()) {
            if sig == libc::SIGCHLD {
                self.children_changed();
            } else if sig == libc::SIGHUP {
                let loaded =
                    crate::config::load(&self.config.path, self.config.named).and_then(|wanted| {
                        commands::check_run_as(&self.config.path, &wanted.probes).map(|()| wanted)
                    });
                match loaded {
                    Ok(wanted) => {
                        if wanted.metrics != self.metrics.from_file && self.metrics.named.is_none()
                        {
                            if let Some(old) = self.metrics.path() {
                                let _ = std::fs::remove_file(old);
                            }
                            self.metrics.from_file = wanted.metrics;
                            self.metrics.dirty = true;
                        }
                        self.events.push_back(Event::Reload(wanted.probes));
                    }
                    Err(e) => log::error!("SIGHUP: {e}; the running probes stay as they are"),
                }
            } else {
                log::info!("signal {sig}: shutting down");
                self.stopping = true;
            }
        }
    }

    /// SIGCHLD came: the probes stopped or continued since, told to the core. Signals merge,
    /// so every change is asked for, not just the one this SIGCHLD was for; but no more than
    /// `MAX_CHILD_CHANGES` per turn of the loop (a jail can stop and continue its probe without
    /// pause): the rest are asked for at once on the next turn, after the other events.
    fn children_changed(&mut self) {
        let changes = sys::child_changes(MAX_CHILD_CHANGES);
        if changes.len() == MAX_CHILD_CHANGES {
            self.rechecks.insert(Token::Signals, Instant::now());
        }
        if changes.is_empty() {
            return;
        }
        let armed: BTreeMap<sys::Pid, ProbeId> =
            self.armed.iter().map(|(id, p)| (p.pid(), *id)).collect();
        for (pid, change) in changes {
            if let Some(&probe) = armed.get(&pid) {
                let signal = match change {
                    sys::ChildChange::Stopped(sig) => Some(sig),
                    sys::ChildChange::Continued => None,
                };
                self.events.push_back(Event::ProbeStopped { probe, signal });
            }
        }
    }

    /// An armed probe's pidfd is readable: it exited. Reaped, and told to the core.
    fn probe_exited(&mut self, id: ProbeId) {
        let Some(process) = self.armed.get(&id) else {
            return;
        };
        // Read while it is not yet reaped: what it counted of SIGHUPs from outside its jail.
        if let Some(ignored) = sys::ignored_signals(process).filter(|n| *n > 0) {
            let text =
                format!("probe {id}: ignored {ignored} SIGHUP(s) sent from outside its jail");
            self.log(self.probe_line(id, LineKind::Ignored, log::Level::Warn, text));
        }
        let Some(process) = self.armed.get(&id) else {
            return;
        };
        let exit = match process.try_wait() {
            Ok(Some(exit)) => exit,
            Ok(None) => {
                // Readable but not reapable: a tracer holds the exited probe. Look again
                // later rather than spin on a descriptor that stays readable.
                self.poller.remove(process.poll_fd());
                self.rechecks
                    .insert(Token::Probe(id), Instant::now() + RECHECK);
                return;
            }
            Err(e) => {
                log::error!("probe {id}: waitid: {e}");
                sys::Exit::Signal(0)
            }
        };
        let process = self.armed.remove(&id).expect("present");
        self.poller.remove(process.poll_fd());
        self.events
            .push_back(Event::ProbeExited { probe: id, exit });
    }

    /// A jail's process ended. Its probes that exited before are told first (one may have
    /// been triggered just before a container's shutdown), then the stop.
    fn jail_stopped(&mut self, id: JailId) {
        if let Some(jail) = self.jails.remove(&id)
            && let Some(fd) = jail.watch_fd()
        {
            self.poller.remove(fd);
        }
        for probe in self.core.probes_in(id) {
            if self
                .armed
                .get(&probe)
                .is_some_and(|p| sys::readable_now(p.poll_fd()))
            {
                self.probe_exited(probe);
            }
        }
        self.events.push_back(Event::JailStopped { jail: id });
    }

    /// The earliest moment something is due without an event.
    fn next_deadline(&self) -> Option<Instant> {
        let clients = self.clients.values().filter_map(|c| match c.state {
            ClientState::Reading { deadline, .. } | ClientState::Writing { deadline, .. } => {
                Some(deadline)
            }
            ClientState::Waiting => None,
        });
        let placements = self.placements.values().map(|f| f.placement.deadline());
        let lookups = self.lookups.values().map(|(_, l)| l.deadline());
        let surveys = self.surveys.values().map(|(_, s)| s.deadline());
        clients
            .chain(placements)
            .chain(lookups)
            .chain(surveys)
            .chain(self.streams.next_deadline())
            .chain(self.core.next_deadline())
            .chain(self.rechecks.values().copied())
            .chain(self.listener_paused)
            .chain(self.metrics.due(Instant::now()))
            .chain(self.log_budget.next_deadline())
            .min()
    }

    /// Does what is due at `now`.
    fn on_time(&mut self, now: Instant) {
        let late: Vec<ClientId> =
            self.clients
                .iter()
                .filter(|(_, c)| match c.state {
                    ClientState::Reading { deadline, .. }
                    | ClientState::Writing { deadline, .. } => deadline <= now,
                    ClientState::Waiting => false,
                })
                .map(|(id, _)| *id)
                .collect();
        for id in late {
            let what = match self.clients[&id].state {
                ClientState::Reading { .. } => "sent no complete request",
                _ => "did not take its answer",
            };
            // A user of the socket can renew idle connections at will: counted, not each told.
            self.log(LogLine {
                level: log::Level::Warn,
                text: format!(
                    "client {what} within {}s; dropped",
                    CLIENT_DEADLINE.as_secs()
                ),
                cause: Cause::Clients(LineKind::ClientDropped),
            });
            self.drop_client(id);
        }
        let due: Vec<PlacementId> = self
            .placements
            .iter()
            .filter(|(_, f)| f.placement.deadline() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.placement_ready(id, true);
        }
        let due: Vec<u64> = self
            .lookups
            .iter()
            .filter(|(_, (_, l))| l.deadline() <= now)
            .map(|(id, _)| *id)
            .collect();
        for serial in due {
            self.lookup_ready(serial, now);
        }
        let due: Vec<u64> = self
            .surveys
            .iter()
            .filter(|(_, (_, s))| s.deadline() <= now)
            .map(|(id, _)| *id)
            .collect();
        for serial in due {
            self.survey_ready(serial, now);
        }
        self.restart_streams(now);
        let due: Vec<Token> = self
            .rechecks
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(token, _)| *token)
            .collect();
        for token in due {
            self.rechecks.remove(&token);
            match token {
                Token::Probe(id) => self.probe_exited(id),
                Token::Command(id) => self.command_exited(id),
                Token::Reap(serial) => self.reap(serial),
                Token::Drain(id) => self.drain(id),
                Token::Signals => self.children_changed(),
                _ => {}
            }
        }
        if self.ready && self.listener_paused.is_some_and(|t| t <= now) {
            self.listener_paused = None;
            listen(&self.poller, self.listener.as_fd(), Token::Listener);
        }
        if self.core.next_deadline().is_some_and(|t| t <= now) {
            self.events.push_back(Event::Tick);
        }
        if self.metrics.due(now).is_some_and(|t| t <= now) {
            self.write_metrics(now);
        }
        // A flood's summary comes at the end of its window, whether or not it goes on.
        for (level, summary) in self.log_budget.due(now) {
            log::log!(level, "{summary}");
        }
    }

    /// Replaces the metrics file: a fresh temporary file beside it (`NAME.HEX.tmp`), renamed
    /// over it (node_exporter reads only `*.prom`, so never the temporary one).
    fn write_metrics(&mut self, now: Instant) {
        let Some(path) = self.metrics.path().map(Path::to_path_buf) else {
            return;
        };
        self.metrics.dirty = false;
        self.metrics.written = Some(now);
        let text = self.core.metrics(now);
        // Readable by node_exporter's user; written whatever that user planted beside it.
        let written = sys::replace_file(&path, text.as_bytes(), 0o644, sys::Durability::Unsynced);
        match written {
            Ok(()) => {
                if let Some(error) = self.metrics.error.take() {
                    log::info!(
                        "metrics file {} written again (after: {error})",
                        path.display()
                    );
                }
            }
            Err(e) => {
                let error = metrics_error(&path, &e);
                if self.metrics.error.as_deref() != Some(error.as_str()) {
                    log::error!(
                        "{error}; tried again every second, logged again only when that changes"
                    );
                }
                self.metrics.error = Some(error);
                // Tried again at the next interval: a directory made later (a volume mounted, a
                // package installed) gets the file without waiting for a probe to change.
                self.metrics.dirty = true;
            }
        }
    }

    fn serial(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        serial
    }

    /// Kills every armed probe and placement in flight, and reaps what goes within
    /// `SHUTDOWN_GRACE`. Running commands are left to finish on their own: killing a half-done
    /// jail restart would be worse than letting it end.
    fn shutdown(&mut self) {
        let armed: Vec<Process> = std::mem::take(&mut self.armed).into_values().collect();
        for process in armed {
            self.kill_and_reap(process);
        }
        let placements: Vec<InFlight> =
            std::mem::take(&mut self.placements).into_values().collect();
        for flight in placements {
            let placed = flight.placement.finish(None);
            let placed_processes = placed.results.into_iter().flatten().map(|(p, _)| p);
            for process in placed_processes.chain(placed.leftovers) {
                self.kill_and_reap(process);
            }
        }
        self.stop_fleets();
        let lookups: Vec<(String, Lookup)> =
            std::mem::take(&mut self.lookups).into_values().collect();
        for (_, mut lookup) in lookups {
            let _ = lookup.step(Instant::now() + sys::PLACEMENT_DEADLINE);
            for process in lookup.take_leftovers() {
                self.kill_and_reap(process);
            }
        }
        // A probe in a frozen cgroup dies only when thawed, and a traced one only when its
        // tracer lets go: wait a little, not for ever (the kernel reaps what is left).
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !self.reaping.is_empty() && Instant::now() < deadline {
            self.reaping
                .retain(|_, p| !matches!(p.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.reaping.is_empty() {
            log::warn!(
                "{} killed process(es) not gone after {}s (frozen or traced); left behind",
                self.reaping.len(),
                SHUTDOWN_GRACE.as_secs()
            );
        }
        if !self.commands.is_empty() {
            log::info!(
                "{} command(s) still running are left to finish",
                self.commands.len()
            );
        }
    }

    /// Kills a process and reaps it once it is gone, without waiting here: a probe in a
    /// frozen cgroup (v1) dies only when thawed, and the daemon must not stop for it.
    fn kill_and_reap(&mut self, process: Process) {
        self.poller.remove(process.poll_fd());
        process.kill();
        self.reap_later(process);
    }

    /// Reaps `process` (killed, or ending on its own) once its pidfd says it is gone.
    fn reap_later(&mut self, process: Process) {
        if let Ok(Some(_)) = process.try_wait() {
            return;
        }
        let serial = self.serial();
        listen(&self.poller, process.poll_fd(), Token::Reap(serial));
        self.reaping.insert(serial, process);
    }

    /// A killed child's pidfd said it is gone: reap it, or look again later (traced).
    fn reap(&mut self, serial: u64) {
        let Some(process) = self.reaping.get(&serial) else {
            return;
        };
        self.poller.remove(process.poll_fd());
        match process.try_wait() {
            Ok(None) => {
                self.rechecks
                    .insert(Token::Reap(serial), Instant::now() + RECHECK);
            }
            _ => {
                self.reaping.remove(&serial);
            }
        }
    }
}

/// What a `status` probe's command line shows after its title: `last=ok(0)`, `last=failed(3)`
/// or `last=signal(15)`, how long the command ran (`2.1s`, `3m12s`), and when it ended, as
/// `HH:MM:SS` in UTC. Three words, printable ASCII, no blank in any.
fn status_words(last: core::LastRun, now: Instant) -> Vec<String> {
    let outcome = match last.status {
        sys::Exit::Code(0) => "last=ok(0)".to_string(),
        sys::Exit::Code(code) => format!("last=failed({code})"),
        sys::Exit::Signal(signal) => format!("last=signal({signal})"),
    };
    let took = if last.took < std::time::Duration::from_secs(60) {
        format!("{:.1}s", last.took.as_secs_f64())
    } else {
        crate::definition::show_duration(last.took.as_secs())
    };
    let ended = std::time::SystemTime::now()
        .checked_sub(now.saturating_duration_since(last.ended))
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let clock = format!(
        "{:02}:{:02}:{:02}",
        ended / 3600 % 24,
        ended / 60 % 60,
        ended % 60
    );
    vec![outcome, took, clock]
}

/// Has `poller` report `fd` under `token`. A failure (the kernel out of memory) is logged: the
/// descriptor then goes unwatched, which the log says.
fn listen(poller: &Poller, fd: std::os::fd::BorrowedFd<'_>, token: Token) {
    if let Err(e) = poller.add(fd, token.encode()) {
        log::error!("cannot watch {token:?}: {e}");
    }
}
