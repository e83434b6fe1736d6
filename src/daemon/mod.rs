//! The daemon's shell: owns the socket, the clients, and every descriptor and process; feeds
//! what happens to the core (`core.rs`) as events and performs the effects it returns.
//!
//! One thread and one event queue. Nothing in the loop waits on anything outside the daemon:
//! container managers' tools, placements and clients are all watched by the queue under
//! deadlines, and a killed child is reaped when it is gone, never waited for.
//!
//! Each concern has an owner in a file of its own (clients, lookups, placements, probes,
//! commands, the reaper, the metrics and state files), generic over the system calls it makes
//! (`host`) where its unit tests need a fake. An owner gets what it needs as arguments (the
//! loop's `wiring`, another owner, the core to read) and pushes events for the core; only the
//! `Daemon` here composes them.
//!
//! # The shell never waits
//!
//! - A container name is looked up by running every manager's tool at once (`sys::Lookup`); the
//!   daemon's queue watches their pipes and pidfds, under one 5 s deadline.
//! - A selector's members are listed the same way (`sys::Survey`), in rounds that `selector.rs`
//!   decides from the answers, each under its 5 s deadline.
//! - The managers' event streams (`sys::EventStream`: `docker events`, `podman events`,
//!   `ctr events`) are long-lived children whose stdout the queue watches; each wake-up reads at
//!   most 64 KiB. One that ends is started again with back-off; one that hangs is only silent.
//! - A probe's `-u` and `-g` names are resolved by its placement's helper A, inside the jail
//!   (see below): a jail's filesystem that does not answer holds only that placement.
//! - Probes are placed in batches, one per jail at a time, up to 1,024 probes each and 8 jails at
//!   once (`sys::Placement`); a placement is a step each time its status pipe says something, and
//!   at its 5 s deadline its helpers still short of their exec are killed.
//! - An answer is written as the client's socket takes it, within 2 s.
//! - A killed child is reaped when its pidfd says it is gone, never waited for.
//! - Stopped and continued children are asked for (`waitid`) 1,024 at a time per turn of the
//!   loop, so a jail that stops and continues its probe without pause cannot keep the loop there.
//! - The core logs only through `Effect::Log`, each line with its cause (`logbudget::Cause`): the
//!   host's own, or a probe's and its jail's with the kind of line. The shell writes the lines a
//!   jail or the clients can repeat within their budgets per 10 s (`src/daemon/logbudget.rs`,
//!   pure), counts the rest, and logs each count when its window ends, flood or no flood.
//! - Clients are served once the probes declared at start are settled (READY), so that the first
//!   `-l` shows them armed, a selector's members included; each lookup, listing round and
//!   placement has its deadline, so that is bounded.

mod clients;
mod commands;
pub mod core;
mod fleets;
mod host;
mod ids;
pub mod logbudget;
mod lookups;
mod metrics_file;
mod placements;
mod probes;
mod reaper;
mod startup;
mod state_file;
mod wiring;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use self::core::{Core, Effect, Event, Limits, RESERVED_DESCRIPTORS};
pub use self::core::{MAX_PROBES, MAX_PROBES_PER_JAIL, MAX_RUNNING_PER_PROBE, RETRY_INTERVAL};
use crate::cli::DaemonConfig;
use crate::definition::Definition;
use crate::error::{Error, Kind};
use crate::proto::{Origin, Response};
use crate::sys::{self, Jail, Poller, Spawner};
use clients::Clients;
use commands::{Commands, Spawning};
use fleets::Fleets;
use host::Sys;
use lookups::{LOOKUP_DESCRIPTORS, Lookups};
use metrics_file::MetricsFile;
use placements::Placements;
use probes::Probes;
use reaper::Reaper;
pub use startup::KEPT_VARIABLES;
use startup::{
    PidFile, notify_service_manager, probe_limits, remove_leftovers, shed_environment, take_socket,
};
use state_file::StateFile;
use wiring::{Token, Wiring};

/// How long shutdown waits for killed probes to go (frozen or traced ones may not).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The configuration file, and whether `-C` named it (then it must exist).
struct ConfigFile {
    path: PathBuf,
    named: bool,
}

/// The shell: its owners, composed, and the loop that runs them. Each owner has a file of its
/// own and gets what it needs as arguments; none reaches back here.
struct Daemon {
    wiring: Wiring,
    core: Core,
    signals: OwnedFd,
    host: Sys,
    clients: Clients,
    lookups: Lookups,
    /// Selectors' listings and the container managers' event streams.
    fleets: Fleets,
    placements: Placements<sys::Placement>,
    probes: Probes<sys::Process>,
    commands: Commands<Sys>,
    reaper: Reaper<sys::Process>,
    metrics: MetricsFile,
    state: StateFile,
    config: ConfigFile,
    descriptor_limit: usize,
    /// READY=1 was sent: the probes declared at start are settled.
    ready: bool,
    /// SIGTERM or SIGINT came.
    stopping: bool,
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
            daemon.metrics = MetricsFile::new(config.metrics.clone(), declared.metrics.clone());
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
        daemon.wiring.push(Event::Declare {
            def,
            origin: Origin::Persisted,
        });
    }
    for def in declared.probes {
        daemon.wiring.push(Event::Declare {
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
    let wiring = Wiring::new(poller);
    wiring.listen(signals.as_fd(), Token::Signals);
    let daemon = Daemon {
        wiring,
        core: Core::new(Limits {
            total: limits.0,
            per_jail: limits.1,
            descriptors: descriptor_limit,
        }),
        signals,
        host: Sys { spawner },
        clients: Clients::new(listener, group),
        lookups: Lookups::default(),
        fleets: Fleets::new(std::env::var_os(fleets::STREAMS_VARIABLE).is_some_and(|v| v == "off")),
        placements: Placements::default(),
        probes: Probes::default(),
        commands: Commands::default(),
        reaper: Reaper::default(),
        metrics: MetricsFile::new(config.metrics.clone(), None),
        state: StateFile::new(config.state.clone(), state_lock),
        config: ConfigFile {
            path: config.config.clone(),
            named: config.config_named,
        },
        descriptor_limit,
        ready: false,
        stopping: false,
    };
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
                self.clients.listen(&mut self.wiring);
                notify_service_manager("READY=1");
            }
            if self.stopping {
                return Ok(());
            }
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            ready.clear();
            self.wiring
                .poller
                .wait(timeout, &mut ready)
                .map_err(|e| Error::os("waiting for events", e))?;
            // Probes' exits first, and to the core at once: a fired command starts before
            // anything else that came in the same turn (a SIGCHLD's scan of the children, a
            // client) and before the timers' work (the metrics file, rechecks, lookups due).
            let tokens = || ready.iter().filter_map(|t| Token::decode(*t));
            for token in tokens().filter(|t| matches!(t, Token::Probe(_))) {
                self.dispatch(token);
            }
            self.run_core();
            for token in tokens().filter(|t| !matches!(t, Token::Probe(_))) {
                self.dispatch(token);
            }
            self.run_core();
            self.on_time(Instant::now());
        }
    }

    /// Hands what a ready descriptor (or a recheck) stands for to its owner.
    fn dispatch(&mut self, token: Token) {
        let w = &mut self.wiring;
        match token {
            Token::Listener => {
                // Clients may not take the descriptors kept for firing probes.
                self.core.set_shell_descriptors(self.shell_descriptors());
                let in_use = self.core.descriptors_in_use() + RESERVED_DESCRIPTORS;
                let room = self.descriptor_limit.saturating_sub(in_use);
                self.clients.accept(&mut self.wiring, room);
            }
            Token::Signals => self.signalled(),
            Token::Client(id) => self.clients.ready(w, id),
            Token::Probe(id) => self.probes.exited(w, &self.core, id),
            Token::Jail(id) => {
                self.lookups.release(w, id);
                self.probes
                    .exited_in(w, &self.core, self.core.probes_in(id));
                w.push(Event::JailStopped { jail: id });
            }
            Token::Output(id) => self.commands.output(w, id),
            Token::Command(id) => self.commands.exited(w, id),
            Token::Reap(serial) => self.reaper.reap(w, serial),
            Token::Placement(id) => self.placement_ready(id, false),
            Token::Lookup(serial) => {
                (self.lookups).ready(w, &mut self.reaper, serial, Instant::now())
            }
            Token::Drain(id) => self.commands.drain(w, id),
            Token::Survey(serial) => {
                (self.fleets).survey_ready(w, &mut self.reaper, serial, Instant::now())
            }
            Token::Stream(index) => {
                (self.fleets).stream_ready(w, &mut self.reaper, index, Instant::now())
            }
        }
    }

    fn placement_ready(&mut self, id: core::PlacementId, late: bool) {
        let owners = (&mut self.probes, &mut self.reaper);
        let held = (self.placements.jail_of(id)).and_then(|jail| self.lookups.jail_mut(jail));
        (self.placements).ready(&mut self.wiring, owners, held, id, late);
    }

    /// Hands every queued event to the core and performs what it returns (which may queue
    /// more events).
    fn run_core(&mut self) {
        let mut probes_changed = false;
        while let Some(event) = self.wiring.events.pop_front() {
            if !matches!(event, Event::List { .. }) {
                self.metrics.touch();
            }
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
            let (w, reaper) = (&mut self.wiring, &mut self.reaper);
            (self.fleets).follow_streams(w, reaper, &self.core, Instant::now());
        }
    }

    /// Descriptors the shell holds besides the base: clients, lookups, listings, event streams
    /// (a pidfd and a pipe each), placements' status pipes and helpers, killed children.
    fn shell_descriptors(&self) -> usize {
        self.clients.len()
            + self.reaper.len()
            + LOOKUP_DESCRIPTORS * self.lookups.len()
            + self.fleets.descriptors()
            + 2 * self.placements.len()
    }

    fn perform(&mut self, effect: Effect) {
        let w = &mut self.wiring;
        match effect {
            Effect::Find { spec } => self.lookups.find(w, spec),
            Effect::Survey { selector } => self.fleets.survey(w, &mut self.reaper, selector),
            Effect::Place {
                placement,
                jail,
                probes,
            } => {
                let held = self.lookups.jail(jail);
                let to = (placement, jail);
                (self.placements).place(w, &mut self.host, held, to, probes)
            }
            Effect::Kill { probe } => self.probes.kill(w, &mut self.reaper, probe),
            Effect::Run {
                command,
                probe,
                def,
                jail,
                pod,
                announce,
            } => {
                let what = Spawning {
                    command,
                    probe,
                    def: &def,
                    jail,
                    container: self.lookups.jail(jail).and_then(Jail::container),
                    pod: pod.as_ref(),
                    announce,
                };
                self.commands.run(w, &mut self.host, what)
            }
            Effect::Stop { command, force } => self.commands.stop(w, command, force),
            Effect::Clear { command, killed } => self.commands.clear(w, command, killed),
            Effect::Reply { client, response } => self.clients.answer(w, client, &response),
            Effect::Save { probes, confirm } => self.save(&probes, confirm),
            Effect::Log(line) => w.log(line),
            Effect::Release { jail } => self.lookups.release(w, jail),
        }
    }

    /// Writes the state file; answers the `-P` requests it confirms, or refuses them.
    fn save(&mut self, probes: &[Definition], confirm: Vec<core::Confirm>) {
        match self.state.save(probes) {
            Ok(()) => {
                for (client, probe, pid, warnings) in confirm {
                    let armed = Response::Armed {
                        probe,
                        pid,
                        warnings,
                    };
                    self.clients.answer(&mut self.wiring, client, &armed);
                }
            }
            Err(error) => {
                if !confirm.is_empty() {
                    let unconfirmed = confirm.into_iter().map(|(c, p, ..)| (c, p)).collect();
                    (self.wiring).push(Event::StateNotSaved { error, unconfirmed });
                }
            }
        }
    }

    fn signalled(&mut self) {
        while let Ok(Some(taken)) = sys::read_signalfd(self.signals.as_fd()) {
            let sig = taken.signal;
            if sig == libc::SIGCHLD && taken.child_ended {
                self.probes.changed_soon(&mut self.wiring, Instant::now());
            } else if sig == libc::SIGCHLD {
                self.probes.changed(&mut self.wiring);
            } else if sig == libc::SIGHUP {
                let loaded =
                    crate::config::load(&self.config.path, self.config.named).and_then(|wanted| {
                        commands::check_run_as(&self.config.path, &wanted.probes).map(|()| wanted)
                    });
                match loaded {
                    Ok(wanted) => {
                        self.metrics.reload(wanted.metrics);
                        self.wiring.push(Event::Reload(wanted.probes));
                    }
                    Err(e) => log::error!("SIGHUP: {e}; the running probes stay as they are"),
                }
            } else {
                log::info!("signal {sig}: shutting down");
                self.stopping = true;
            }
        }
    }

    /// The earliest moment something is due without an event.
    fn next_deadline(&self) -> Option<Instant> {
        (self.clients.next_deadline().into_iter())
            .chain(self.placements.next_deadline())
            .chain(self.lookups.next_deadline())
            .chain(self.fleets.next_deadline())
            .chain(self.core.next_deadline())
            .chain(self.wiring.rechecks.values().copied())
            .chain(self.metrics.due(Instant::now()))
            .chain(self.wiring.log_budget.next_deadline())
            .min()
    }

    /// Does what is due at `now`.
    fn on_time(&mut self, now: Instant) {
        self.clients.on_time(&mut self.wiring, now);
        for id in self.placements.due(now) {
            self.placement_ready(id, true);
        }
        for serial in self.lookups.due(now) {
            (self.lookups).ready(&mut self.wiring, &mut self.reaper, serial, now);
        }
        for serial in self.fleets.due(now) {
            (self.fleets).survey_ready(&mut self.wiring, &mut self.reaper, serial, now);
        }
        (self.fleets).restart_streams(&mut self.wiring, &mut self.reaper, now);
        let due: Vec<Token> = (self.wiring.rechecks.iter())
            .filter(|(_, t)| **t <= now)
            .map(|(token, _)| *token)
            .collect();
        for token in due {
            self.wiring.rechecks.remove(&token);
            match token {
                // Children's stops and continuations still to be asked for, with no SIGCHLD
                // to read.
                Token::Signals => self.probes.changed(&mut self.wiring),
                other => self.dispatch(other),
            }
        }
        if self.core.next_deadline().is_some_and(|t| t <= now) {
            self.wiring.push(Event::Tick);
        }
        if self.metrics.due(now).is_some_and(|t| t <= now) {
            self.metrics.write(&self.core.metrics(now), now);
        }
        // A flood's summary comes at the end of its window, whether or not it goes on.
        for (level, summary) in self.wiring.log_budget.due(now) {
            log::log!(level, "{summary}");
        }
    }

    /// Kills every armed probe and placement in flight, and reaps what goes within
    /// `SHUTDOWN_GRACE`. Running commands are left to finish on their own: killing a half-done
    /// jail restart would be worse than letting it end.
    fn shutdown(&mut self) {
        let w = &mut self.wiring;
        self.probes.kill_all(w, &mut self.reaper);
        self.placements.kill_all(w, &mut self.reaper);
        self.fleets.stop(w, &mut self.reaper);
        self.lookups.kill_all(w, &mut self.reaper);
        // A probe in a frozen cgroup dies only when thawed, and a traced one only when its
        // tracer lets go: wait a little, not for ever (the kernel reaps what is left).
        let left = self.reaper.reap_within(SHUTDOWN_GRACE);
        if left > 0 {
            log::warn!(
                "{left} killed process(es) not gone after {}s (frozen or traced); left behind",
                SHUTDOWN_GRACE.as_secs()
            );
        }
        if self.commands.len() > 0 {
            log::info!(
                "{} command(s) still running are left to finish",
                self.commands.len()
            );
        }
    }
}
