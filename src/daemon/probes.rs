//! Probes and their jails: arming, firing, re-arming, waiting for a jail to come back, the
//! configuration file's probes, `-l` and `-k`.
//!
//! A probe is armed (a process waits in its jail), running (its command runs, no process), or
//! waiting (its jail is not running). Only probes that must survive (declared in the
//! configuration file, or armed with `-P`) ever wait; the others are forgotten instead.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::commands::RunningCommand;
use super::{Daemon, Token, listen};
use crate::error::{Error, Kind};
use crate::proto::{Arm, Origin, ProbeInfo, ProbeState, Respawn};
use crate::sys::{self, Exit, Jail, Process};

const MAGIC_EXIT: i32 = crate::MAGIC_EXIT as i32;
/// Probes armed at once, in all and in one jail. Each costs a process, a descriptor and some
/// 70 KiB of kernel memory (BENCHMARKS.md); pid_max (32768 by default) bounds the host anyway.
pub const MAX_PROBES: usize = 20_000;
pub const MAX_PROBES_PER_JAIL: usize = 10_000;
/// Commands of one `-R` probe that may run at once. At the limit the probe is not re-armed
/// until one of them finishes, so a jail that hammers it with SIGHUP cannot pile up commands
/// on the host: further triggers find no probe to signal.
pub const MAX_RUNNING_PER_PROBE: usize = 4;
/// A jail stays watched this long after its last probe ended: a stopping container kills its
/// probes before its init is gone (the kernel waits for us to reap them), so they end first.
pub(super) const JAIL_GRACE: Duration = Duration::from_secs(5);
/// How often waiting probes look for their jail.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// How soon a probe that exited but could not be reaped yet (a tracer holds it) is looked at
/// again.
pub(super) const RECHECK: Duration = Duration::from_millis(100);

pub(super) struct Probe {
    pub arm: Arm,
    pub origin: Origin,
    /// The jail it was placed in, shared with the other probes there. A waiting probe keeps
    /// it only when named by PID: such a jail never comes back under another process.
    pub jail: Option<Rc<Jail>>,
    /// The ids it runs as, resolved when it was placed.
    pub ids: (u32, u32),
    /// The armed probe process, if one is armed now.
    pub process: Option<Process>,
    /// Commands of this probe still running.
    pub running: usize,
    /// No more arming: single shot fired, removed, or re-arming failed.
    pub finished: bool,
    /// Its jail is not running, or refused it; retried every `RETRY_INTERVAL`.
    pub waiting: bool,
    pub fired: u64,
    pub last: Option<String>,
}

impl Probe {
    /// How log lines name a probe: id, jail as named, title.
    pub fn tag(&self, id: u64) -> String {
        format!("probe {id} (jail {}, '{}')", self.arm.jail, self.arm.title)
    }

    /// Declared and persisted probes wait for their jail instead of being forgotten.
    fn survives(&self) -> bool {
        self.origin != Origin::Command
    }

    fn jail_id(&self) -> Option<i32> {
        self.jail.as_ref().map(|j| j.id())
    }
}

/// A jail with probes, held once for all of them (one descriptor per jail, not per probe) and
/// watched so that its stop is noticed and logged.
pub(super) struct WatchedJail {
    /// The jail as the utility first named it.
    pub spec: String,
    pub jail: Rc<Jail>,
    /// Probes of this jail that ended by a signal within the last `JAIL_GRACE`.
    pub ended: Vec<(u64, Instant)>,
    /// When its last probe ended.
    pub idle_since: Option<Instant>,
}

/// A placed probe: its shared jail, the ids it runs as, its process.
type Placed = (Rc<Jail>, (u32, u32), Process);

/// A jail named by a host PID (or jid): it is never looked up again by its name.
fn named_by_id(spec: &str) -> bool {
    spec.bytes().all(|b| b.is_ascii_digit())
}

impl Daemon {
    /// Arms a probe for the utility (`-c`, with `-P` also saved to the state file).
    pub(super) fn arm_request(&mut self, arm: Arm) -> Result<(u64, i32), Error> {
        arm.validate()?;
        let origin = if arm.persist {
            Origin::Persisted
        } else {
            Origin::Command
        };
        // Waiting probes count too, so that jails stopping and new probes cannot add up.
        if self.probes.len() >= self.limits.total {
            return Err(Error::new(
                Kind::Limit,
                format!(
                    "too many probes: {}, waiting ones included",
                    self.limits.total
                ),
            ));
        }
        let placed = self.place(&arm, None)?;
        let id = self.insert(arm, origin, Ok(placed));
        if origin == Origin::Persisted {
            // Answered "armed" only once it is on disk.
            if let Err(e) = self.save_state() {
                self.remove_one(id, "its state file could not be written");
                return Err(e);
            }
        }
        let pid = self.probes[&id].process.as_ref().map_or(0, Process::pid);
        Ok((id, pid))
    }

    /// Arms a probe that must survive (configuration file, state file): where its jail is not
    /// running, it waits for it.
    pub(super) fn declare(&mut self, arm: Arm, origin: Origin) -> u64 {
        let placed = self.place(&arm, None);
        self.insert(arm, origin, placed)
    }

    /// Finds the jail, checks the limits, resolves the ids and starts the probe process.
    /// `jail` is a jail already held for this probe (a waiting probe named by PID).
    fn place(&mut self, arm: &Arm, jail: Option<Rc<Jail>>) -> Result<Placed, Error> {
        self.descriptor_for_probe()?;
        let jail = match jail.or_else(|| self.held_jail_by_id(&arm.jail)) {
            Some(jail) => jail,
            None => self.shared_jail(Jail::open(&arm.jail)?, &arm.jail),
        };
        let armed = self.probes.values().filter(|p| !p.waiting).count();
        let in_jail = self
            .probes
            .values()
            .filter(|p| p.jail_id() == Some(jail.id()))
            .count();
        let limits = &self.limits;
        if armed >= limits.total || in_jail >= limits.per_jail {
            return Err(Error::new(
                Kind::Limit,
                format!(
                    "too many probes: {armed} in all (limit {}), {in_jail} in jail {} (limit {})",
                    limits.total, arm.jail, limits.per_jail
                ),
            ));
        }
        let ids = sys::resolve_ids(&jail, arm.user.as_deref(), arm.group.as_deref())?;
        let title = title_of(arm)?;
        let process = sys::spawn_probe(&mut self.spawner, &jail, &title, ids.0, ids.1)?;
        if let Some(w) = self.jails.get_mut(&jail.id()) {
            w.idle_since = None;
        }
        Ok((jail, ids, process))
    }

    fn insert(&mut self, arm: Arm, origin: Origin, placed: Result<Placed, Error>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut probe = Probe {
            arm,
            origin,
            jail: None,
            ids: (0, 0),
            process: None,
            running: 0,
            finished: false,
            waiting: false,
            fired: 0,
            last: None,
        };
        match placed {
            Ok((jail, ids, process)) => {
                log::info!(
                    "{} armed ({origin:?}): uid {}, gid {}, respawn {:?}, host pid {}",
                    probe.tag(id),
                    ids.0,
                    ids.1,
                    probe.arm.respawn,
                    process.pid()
                );
                listen(&self.poller, process.poll_fd(), Token::Probe(id));
                probe.jail = Some(jail);
                probe.ids = ids;
                probe.process = Some(process);
            }
            Err(e) => {
                log::warn!("{} waiting for its jail: {e}", probe.tag(id));
                // A jail named by PID that was found is kept, as the one thing to retry with.
                if e.kind != Kind::NoJail {
                    probe.jail = self.held_jail_by_id(&probe.arm.jail);
                }
                probe.waiting = true;
                probe.last = Some(e.message);
                let next = Instant::now() + RETRY_INTERVAL;
                self.next_retry = Some(self.next_retry.map_or(next, |t| t.min(next)));
            }
        }
        self.probes.insert(id, probe);
        id
    }

    pub(super) fn probe_exited(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        let Some(process) = probe.process.take() else {
            return;
        };
        let exit = match process.try_wait() {
            Ok(Some(exit)) => {
                self.poller.remove(process.poll_fd());
                exit
            }
            Ok(None) => {
                // Readable but not reapable: a tracer holds the exited probe. Look again
                // later rather than spin on a descriptor that stays readable.
                self.poller.remove(process.poll_fd());
                probe.process = Some(process);
                self.rechecks
                    .insert(Token::Probe(id), Instant::now() + RECHECK);
                return;
            }
            Err(e) => {
                log::error!("{}: waitid: {e}", probe.tag(id));
                self.poller.remove(process.poll_fd());
                Exit::Signal(0)
            }
        };
        if exit != Exit::Code(MAGIC_EXIT) {
            let tag = probe.tag(id);
            probe.last = Some(format!("ended by {exit}, nothing fired"));
            if let (Exit::Signal(_), Some(w)) =
                (exit, probe.jail_id().and_then(|j| self.jails.get_mut(&j)))
            {
                let now = Instant::now();
                w.ended.retain(|(_, t)| *t + JAIL_GRACE > now);
                w.ended.push((id, now));
            }
            if probe.survives() {
                log::warn!(
                    "{tag} ended by {exit}: nothing fired; re-armed within {RETRY_INTERVAL:?}"
                );
                self.wait_for_jail(id);
            } else {
                log::warn!("{tag} ended by {exit}: nothing fired, probe removed");
                probe.finished = true;
                self.forget_if_idle(id);
            }
            return;
        }
        probe.fired += 1;
        let tag = probe.tag(id);
        log::info!("{tag} triggered");
        match RunningCommand::spawn(&mut self.spawner, id, tag.clone(), &probe.arm) {
            Ok(command) => {
                log::info!("{tag} command started, host pid {}", command.process.pid());
                probe.running += 1;
                probe.last = Some("command started".into());
                let serial = self.next_serial;
                self.next_serial += 1;
                listen(
                    &self.poller,
                    command.process.poll_fd(),
                    Token::Command(serial),
                );
                if let Some(output) = &command.output {
                    listen(&self.poller, output.as_fd(), Token::Output(serial));
                }
                self.commands.insert(serial, command);
            }
            Err(e) => {
                log::error!("{tag}: cannot run its command: {e}");
                probe.last = Some(format!("command not started: {e}"));
            }
        }
        match probe.arm.respawn {
            Respawn::Never => {
                probe.finished = true;
                // A fired single-shot `-P` probe leaves the state file now, not when its
                // command ends: a crash in between must not arm it again.
                let persisted = probe.origin == Origin::Persisted;
                if let Err(e) = if persisted { self.save_state() } else { Ok(()) } {
                    log::error!("{e}");
                }
            }
            Respawn::Immediately if probe.running < MAX_RUNNING_PER_PROBE => self.rearm(id),
            Respawn::Immediately => log::warn!(
                "{tag}: {MAX_RUNNING_PER_PROBE} commands still running; re-arming when one finishes"
            ),
            Respawn::AfterCommand if probe.running == 0 => self.rearm(id),
            Respawn::AfterCommand => {}
        }
        self.forget_if_idle(id);
    }

    pub(super) fn after_command(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        probe.running -= 1;
        // Re-arms an `-r` probe, and an `-R` probe that was held back at its limit. A waiting
        // one (its jail stopped while the command ran) looks for its jail again.
        let idle = probe.process.is_none() && !probe.waiting && !probe.finished;
        let waiting = probe.waiting && !probe.finished && probe.running == 0;
        if probe.arm.respawn != Respawn::Never && idle {
            self.rearm(id);
        } else if waiting {
            self.wait_for_jail(id);
        }
        self.forget_if_idle(id);
    }

    fn rearm(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        let tag = probe.tag(id);
        // The C title is made for each placement, not kept: 10,000 probes would keep 10,000.
        let spawned = match (&probe.jail, title_of(&probe.arm)) {
            (Some(jail), Ok(title)) => {
                sys::spawn_probe(&mut self.spawner, jail, &title, probe.ids.0, probe.ids.1)
            }
            (None, _) => Err(Error::new(Kind::NoJail, "no jail")),
            (_, Err(e)) => Err(e),
        };
        match spawned {
            Ok(process) => {
                log::info!("{tag} re-armed, host pid {}", process.pid());
                listen(&self.poller, process.poll_fd(), Token::Probe(id));
                probe.process = Some(process);
            }
            Err(e) if probe.survives() => {
                log::warn!("{tag}: cannot re-arm now ({e}); waiting for its jail");
                probe.last = Some(e.message);
                self.wait_for_jail(id);
            }
            Err(e) => {
                log::error!("{tag}: cannot re-arm, removed: {e}");
                probe.finished = true;
            }
        }
    }

    /// Marks probe `id` waiting. A jail named by PID is kept (it cannot come back as
    /// another process); a named one is let go, to be looked up again.
    fn wait_for_jail(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        probe.waiting = true;
        if !named_by_id(&probe.arm.jail) {
            probe.jail = None;
        }
        let next = Instant::now() + RETRY_INTERVAL;
        self.next_retry = Some(self.next_retry.map_or(next, |t| t.min(next)));
    }

    /// Tries to place every waiting probe whose command is not running. A name that is not
    /// found is not asked again in the same round.
    pub(super) fn retry_waiting(&mut self) {
        self.next_retry = None;
        let waiting: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, p)| p.waiting && p.running == 0 && !p.finished)
            .map(|(id, _)| *id)
            .collect();
        let mut absent: BTreeSet<String> = BTreeSet::new();
        for id in waiting {
            let probe = self.probes.get_mut(&id).expect("listed");
            if absent.contains(&probe.arm.jail) {
                self.wait_for_jail(id);
                continue;
            }
            let held = probe.jail.take();
            if named_by_id(&probe.arm.jail) && held.is_none() {
                continue;
            }
            let arm = probe.arm.clone();
            match self.place(&arm, held.clone()) {
                Ok((jail, ids, process)) => {
                    let probe = self.probes.get_mut(&id).expect("listed");
                    log::info!(
                        "{} armed again, jail id {}, host pid {}",
                        probe.tag(id),
                        jail.id(),
                        process.pid()
                    );
                    listen(&self.poller, process.poll_fd(), Token::Probe(id));
                    probe.jail = Some(jail);
                    probe.ids = ids;
                    probe.process = Some(process);
                    probe.waiting = false;
                }
                Err(e) => {
                    let probe = self.probes.get_mut(&id).expect("listed");
                    if e.kind == Kind::NoJail {
                        absent.insert(arm.jail.clone());
                    } else {
                        // The jail is there, the probe was refused for another reason (a
                        // limit, its user): a jail named by PID is kept for the next round.
                        probe.jail = held;
                    }
                    if probe.last.as_deref() != Some(e.message.as_str()) {
                        log::warn!("{} still waiting: {e}", probe.tag(id));
                    }
                    probe.last = Some(e.message);
                    self.wait_for_jail(id);
                }
            }
        }
    }

    pub(super) fn forget_if_idle(&mut self, id: u64) {
        let idle = |p: &Probe| p.finished && p.running == 0 && p.process.is_none();
        if !self.probes.get(&id).is_some_and(idle) {
            return;
        }
        let probe = self.probes.remove(&id).expect("present");
        let saved = if probe.origin == Origin::Persisted {
            self.save_state()
        } else {
            Ok(())
        };
        if let Err(e) = saved {
            log::error!("{e}");
        }
        let Some(jail) = probe.jail_id() else { return };
        if self.probes.values().any(|p| p.jail_id() == Some(jail)) {
            return;
        }
        if let Some(w) = self.jails.get_mut(&jail) {
            w.idle_since = Some(Instant::now());
        }
    }

    /// A jail named by the id of one already held, and still alive: it is the same process,
    /// so it need not be looked up and checked again.
    fn held_jail_by_id(&self, spec: &str) -> Option<Rc<Jail>> {
        if !named_by_id(spec) {
            return None;
        }
        let w = self.jails.get(&spec.parse().ok()?)?;
        let alive = w.jail.watch_fd().is_some_and(|fd| !sys::readable_now(fd));
        alive.then(|| Rc::clone(&w.jail))
    }

    /// The jail every probe in `fresh`'s jail shares: the one already held for its id, or
    /// `fresh`, then held and watched. A held jail of that id that has stopped unnoticed is
    /// dealt with first.
    fn shared_jail(&mut self, fresh: Jail, spec: &str) -> Rc<Jail> {
        let id = fresh.id();
        let stale = self
            .jails
            .get(&id)
            .is_some_and(|w| w.jail.watch_fd().is_some_and(|fd| sys::readable_now(fd)));
        if stale {
            self.jail_stopped(id);
        }
        if let Some(w) = self.jails.get(&id) {
            return Rc::clone(&w.jail);
        }
        let jail = Rc::new(fresh);
        if let Some(fd) = jail.watch_fd() {
            listen(&self.poller, fd, Token::Jail(id));
        }
        // Idle until a probe is placed in it, so that a failed placement does not keep it.
        self.jails.insert(
            id,
            WatchedJail {
                spec: spec.to_string(),
                jail: Rc::clone(&jail),
                ended: Vec::new(),
                idle_since: Some(Instant::now()),
            },
        );
        jail
    }

    /// Lets go of jail `id`: no longer watched, and its descriptor closed once no waiting
    /// probe holds it.
    pub(super) fn unwatch_jail(&mut self, id: i32) -> Option<WatchedJail> {
        let watch = self.jails.remove(&id)?;
        if let Some(fd) = watch.jail.watch_fd() {
            self.poller.remove(fd);
        }
        Some(watch)
    }

    /// The jail `id` stopped. A probe that exited before it is handled as usual (it may have
    /// been triggered just before a jail's shutdown); the others are killed without firing,
    /// and then wait for the jail to run again or are forgotten. The stop is logged with
    /// every probe that went with it.
    pub(super) fn jail_stopped(&mut self, id: i32) {
        let Some(watch) = self.unwatch_jail(id) else {
            return;
        };
        let left: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, p)| p.jail_id() == Some(id))
            .map(|(probe, _)| *probe)
            .collect();
        let now = Instant::now();
        let mut gone: Vec<u64> = watch
            .ended
            .iter()
            .filter(|(_, t)| *t + JAIL_GRACE > now)
            .map(|(probe, _)| *probe)
            .collect();
        let mut waiting = Vec::new();
        for probe_id in left {
            let exited = self.probes[&probe_id]
                .process
                .as_ref()
                .is_some_and(|p| sys::readable_now(p.poll_fd()));
            if exited {
                self.probe_exited(probe_id);
            }
            let Some(probe) = self.probes.get_mut(&probe_id) else {
                continue;
            };
            let process = probe.process.take();
            let survives = probe.survives();
            if survives {
                probe.jail = None;
            } else {
                probe.finished = true;
            }
            if let Some(process) = process {
                self.kill_and_reap(process);
                gone.push(probe_id);
            }
            if survives {
                self.wait_for_jail(probe_id);
                waiting.push(probe_id);
            } else {
                self.forget_if_idle(probe_id);
            }
        }
        gone.sort_unstable();
        gone.dedup();
        let ids = |ids: &[u64]| {
            ids.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut message = format!("jail {} (id {id}) stopped", watch.spec);
        if !gone.is_empty() {
            message += &format!("; probe(s) [{}] gone with it, nothing fired", ids(&gone));
        }
        if !waiting.is_empty() {
            message += &format!("; [{}] waiting for it to run again", ids(&waiting));
        }
        log::warn!("{message}");
    }

    /// `-l`: every probe, in id order.
    pub(super) fn list(&self) -> Vec<ProbeInfo> {
        self.probes
            .iter()
            .map(|(id, p)| ProbeInfo {
                id: *id,
                jail: p.arm.jail.clone(),
                jail_id: p.jail_id(),
                title: p.arm.title.clone(),
                command: p.arm.command.clone(),
                uid: p.jail.as_ref().map(|_| p.ids.0),
                gid: p.jail.as_ref().map(|_| p.ids.1),
                respawn: p.arm.respawn,
                origin: p.origin,
                state: if p.process.is_some() {
                    ProbeState::Armed
                } else if p.running > 0 {
                    ProbeState::Running
                } else {
                    ProbeState::Waiting
                },
                pid: p.process.as_ref().map(Process::pid),
                fired: p.fired,
                last: p.last.clone(),
            })
            .collect()
    }

    /// `-k`: removes the probes of `jail` (as named, or its id) with this id or title. Their
    /// processes go and their commands never run; a command already running ends on its own.
    pub(super) fn remove(&mut self, which: &str, jail: &str) -> Result<Vec<u64>, Error> {
        let matching: Vec<u64> = self
            .probes
            .iter()
            .filter(|(id, p)| !p.finished && (id.to_string() == which || p.arm.title == which))
            .filter(|(_, p)| {
                p.arm.jail == jail || p.jail_id().is_some_and(|j| j.to_string() == jail)
            })
            .map(|(id, _)| *id)
            .collect();
        if matching.is_empty() {
            return Err(Error::new(
                Kind::NoProbe,
                format!("no probe '{which}' in jail '{jail}' (see jaildaemon -l)"),
            ));
        }
        for id in &matching {
            self.remove_one(*id, "removed on request");
        }
        if let Err(e) = self.save_state() {
            log::error!("{e}");
        }
        Ok(matching)
    }

    fn remove_one(&mut self, id: u64, why: &str) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        log::info!("{} {why}", probe.tag(id));
        probe.finished = true;
        if let Some(process) = probe.process.take() {
            self.kill_and_reap(process);
        }
        self.forget_if_idle(id);
    }

    /// SIGHUP: reads the configuration file again and applies the difference. Probes are
    /// named by jail and title; unchanged ones are not touched, changed ones are replaced.
    /// A bad file changes nothing.
    pub(super) fn reload(&mut self) {
        let wanted = match crate::config::load(&self.config.path, self.config.named) {
            Ok(wanted) => wanted,
            Err(e) => {
                log::error!("SIGHUP: {e}; the running probes stay as they are");
                return;
            }
        };
        let running: BTreeMap<(String, String), u64> = self
            .probes
            .iter()
            .filter(|(_, p)| p.origin == Origin::Config && !p.finished)
            .map(|(id, p)| ((p.arm.jail.clone(), p.arm.title.clone()), *id))
            .collect();
        let (mut added, mut changed, mut unchanged) = (0, 0, 0);
        let mut kept = BTreeSet::new();
        for arm in wanted {
            let key = (arm.jail.clone(), arm.title.clone());
            match running.get(&key) {
                Some(id) if self.probes[id].arm == arm => {
                    unchanged += 1;
                    kept.insert(key);
                }
                Some(id) => {
                    self.remove_one(*id, "changed in the configuration file");
                    self.declare(arm, Origin::Config);
                    changed += 1;
                    kept.insert(key);
                }
                None => {
                    self.declare(arm, Origin::Config);
                    added += 1;
                }
            }
        }
        let mut removed = 0;
        for (key, id) in &running {
            if !kept.contains(key) {
                self.remove_one(*id, "no longer in the configuration file");
                removed += 1;
            }
        }
        log::info!(
            "SIGHUP: {} reloaded: {added} added, {changed} changed, {removed} removed, {unchanged} unchanged",
            self.config.path.display()
        );
    }

    /// Writes every `-P` probe that is still wanted to the state file.
    pub(super) fn save_state(&self) -> Result<(), Error> {
        let persisted: Vec<Arm> = self
            .probes
            .values()
            .filter(|p| p.origin == Origin::Persisted && !p.finished)
            .map(|p| p.arm.clone())
            .collect();
        crate::state::save(&self.state_path, &persisted).map_err(|e| {
            Error::new(
                Kind::CantCreate,
                format!("state file {}: {e}", self.state_path.display()),
            )
        })
    }

    /// Kills and reaps every armed probe. Running commands are left to finish on their own:
    /// killing a half-done jail restart would be worse than letting it end.
    pub(super) fn shutdown(&mut self) {
        let processes: Vec<Process> = self
            .probes
            .values_mut()
            .filter_map(|p| p.process.take())
            .collect();
        for process in processes {
            self.kill_and_reap(process);
        }
        // A probe in a frozen cgroup dies only when thawed, and a traced one only when its
        // tracer lets go: wait a little, not for ever (the kernel reaps what is left).
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.reaping.is_empty() && Instant::now() < deadline {
            self.reaping
                .retain(|_, p| !matches!(p.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.reaping.is_empty() {
            log::warn!(
                "{} killed probe(s) not gone after 2 s (frozen or traced); left behind",
                self.reaping.len()
            );
        }
        if !self.commands.is_empty() {
            log::info!(
                "{} command(s) still running are left to finish",
                self.commands.len()
            );
        }
    }

    /// Kills a probe and reaps it once it is gone, without waiting here: a probe in a frozen
    /// cgroup (v1) dies only when thawed, and the daemon must not stop for it.
    fn kill_and_reap(&mut self, process: Process) {
        self.poller.remove(process.poll_fd());
        process.kill();
        if let Ok(Some(_)) = process.try_wait() {
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        listen(&self.poller, process.poll_fd(), Token::Reap(serial));
        self.reaping.insert(serial, process);
    }

    /// A killed probe's pidfd said it is gone: reap it, or look again later (traced).
    pub(super) fn reap(&mut self, serial: u64) {
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

fn title_of(arm: &Arm) -> Result<CString, Error> {
    CString::new(arm.title.clone())
        .map_err(|_| Error::new(Kind::Data, "the title contains a NUL byte"))
}
