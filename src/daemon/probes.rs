//! Armed probes' processes: each watched by its pidfd, reaped when it exits and told to the
//! core; stops and continuations of them asked for a bounded number at a time.

use std::collections::BTreeMap;
use std::time::Instant;

use super::core::{Core, Event, ProbeId};
use super::host::Child;
use super::logbudget::{Cause, LineKind, LogLine};
use super::reaper::Reaper;
use super::wiring::{RECHECK, Token, Wiring};
use crate::sys;

/// Stops and continuations of children taken per turn of the loop (`changed`).
const MAX_CHILD_CHANGES: usize = 1024;

/// How soon children are asked for stops after a SIGCHLD that said a child ended
/// (`changed_soon`): the ask walks every child in the kernel (2.5 ms of system time at 10,000
/// probes), and probes and commands end at every trigger.
pub(super) const ASK_AFTER_AN_END: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) struct Probes<C> {
    armed: BTreeMap<ProbeId, C>,
    /// When children were last asked for stops (`changed`).
    asked: Option<Instant>,
}

impl<C> Default for Probes<C> {
    fn default() -> Self {
        Probes {
            armed: BTreeMap::new(),
            asked: None,
        }
    }
}

/// A log line about probe `id` that its jail caused.
fn probe_line(
    core: &Core,
    id: ProbeId,
    kind: LineKind,
    level: log::Level,
    text: String,
) -> LogLine {
    let (tag, jail) = core.probe(id).map_or_else(
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

impl<C: Child> Probes<C> {
    /// Probe `probe` is armed in `process`: watched until it exits.
    pub(super) fn arm(&mut self, w: &mut Wiring, probe: ProbeId, process: C) {
        w.listen(process.poll_fd(), Token::Probe(probe));
        self.armed.insert(probe, process);
    }

    /// The core's `Effect::Kill`.
    pub(super) fn kill(&mut self, w: &mut Wiring, reaper: &mut Reaper<C>, probe: ProbeId) {
        if let Some(process) = self.armed.remove(&probe) {
            reaper.kill(w, process);
        }
    }

    /// An armed probe's pidfd is readable: it exited. Reaped, and told to the core.
    pub(super) fn exited(&mut self, w: &mut Wiring, core: &Core, id: ProbeId) {
        let Some(process) = self.armed.get(&id) else {
            return;
        };
        // Read while it is not yet reaped: what it counted of SIGHUPs from outside its jail.
        if let Some(ignored) = process.ignored_signals().filter(|n| *n > 0) {
            let text =
                format!("probe {id}: ignored {ignored} SIGHUP(s) sent from outside its jail");
            w.log(probe_line(
                core,
                id,
                LineKind::Ignored,
                log::Level::Warn,
                text,
            ));
        }
        let exit = match process.try_wait() {
            Ok(Some(exit)) => exit,
            Ok(None) => {
                // Readable but not reapable: a tracer holds the exited probe. Look again
                // later rather than spin on a descriptor that stays readable.
                w.unwatch(process.poll_fd());
                w.recheck(Token::Probe(id), Instant::now() + RECHECK);
                return;
            }
            Err(e) => {
                log::error!("probe {id}: waitid: {e}");
                sys::Exit::Signal(0)
            }
        };
        let process = self.armed.remove(&id).expect("present");
        w.unwatch(process.poll_fd());
        w.push(Event::ProbeExited { probe: id, exit });
    }

    /// A jail stopped: its probes that exited before are told first (one may have been
    /// triggered just before a container's shutdown).
    pub(super) fn exited_in(&mut self, w: &mut Wiring, core: &Core, probes: Vec<ProbeId>) {
        for probe in probes {
            if self
                .armed
                .get(&probe)
                .is_some_and(|p| sys::readable_now(p.poll_fd()))
            {
                self.exited(w, core, probe);
            }
        }
    }

    /// SIGCHLD came: the probes stopped or continued since, told to the core. Signals merge,
    /// so every change is asked for, not just the one this SIGCHLD was for; but no more than
    /// `MAX_CHILD_CHANGES` per turn of the loop (a jail can stop and continue its probe without
    /// pause): the rest are asked for at once on the next turn, after the other events.
    pub(super) fn changed(&mut self, w: &mut Wiring) {
        // This ask covers whatever a pending later one was for.
        w.rechecks.remove(&Token::Signals);
        self.asked = Some(Instant::now());
        let changes = sys::child_changes(MAX_CHILD_CHANGES);
        if changes.len() == MAX_CHILD_CHANGES {
            w.recheck(Token::Signals, Instant::now());
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
                w.push(Event::ProbeStopped { probe, signal });
            }
        }
    }

    /// SIGCHLD came and said a child ended, which its pidfd tells: no stop to ask for, unless
    /// another SIGCHLD merged into it (signals do not queue), so children are asked once
    /// `ASK_AFTER_AN_END` after the last ask, not at once. A SIGCHLD that says a stop or a
    /// continuation is asked for at once (`changed`); one merged into an end waits up to that.
    pub(super) fn changed_soon(&mut self, w: &mut Wiring, now: Instant) {
        let at = self
            .asked
            .map_or(now, |asked| (asked + ASK_AFTER_AN_END).max(now));
        w.recheck_by(Token::Signals, at);
    }

    /// At shutdown: every armed probe is killed.
    pub(super) fn kill_all(&mut self, w: &mut Wiring, reaper: &mut Reaper<C>) {
        for process in std::mem::take(&mut self.armed).into_values() {
            reaper.kill(w, process);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The trigger path's shell side, on the fake host: an armed probe's exit is reaped and told
    //! to the core once its pidfd says so, and only then.
    use super::super::core::Limits;
    use super::super::host::fake::{ChildState, FakeChild, wiring};
    use super::*;
    use crate::sys::Exit;

    #[test]
    fn an_armed_probes_exit_is_reaped_and_told_to_the_core_once_its_pidfd_says_so() {
        let (mut w, core) = (wiring(), Core::new(Limits::default()));
        let mut probes = Probes::default();
        let child = ChildState::new(500, &Default::default());
        probes.arm(&mut w, 1, FakeChild(child.clone()));
        let mut ready = Vec::new();
        let wait = |w: &Wiring, ready: &mut Vec<u64>| {
            ready.clear();
            let timeout = Some(std::time::Duration::from_millis(1000));
            w.poller.wait(timeout, ready).expect("wait");
            ready
                .iter()
                .filter_map(|t| Token::decode(*t))
                .collect::<Vec<_>>()
        };
        child.end(Exit::Code(crate::magic::MAGIC_EXIT as i32));
        assert_eq!(wait(&w, &mut ready), [Token::Probe(1)]);
        probes.exited(&mut w, &core, 1);
        match w.events.pop_front() {
            Some(Event::ProbeExited { probe: 1, exit }) => {
                assert_eq!(exit, Exit::Code(crate::magic::MAGIC_EXIT as i32))
            }
            other => panic!("{other:?}"),
        }
        // Reaped once: a second look finds nothing to tell.
        probes.exited(&mut w, &core, 1);
        assert!(w.events.is_empty());
    }

    /// A SIGCHLD that says a child ended asks for stops no sooner than `ASK_AFTER_AN_END`
    /// after the last ask, and at once when there was none for that long; twin: an ask already
    /// due sooner (a stop's, or more changes than one turn takes) is not put off.
    #[test]
    fn after_an_end_children_are_asked_for_stops_within_a_second_not_at_once() {
        let mut w = wiring();
        let mut probes: Probes<FakeChild> = Probes::default();
        let t0 = Instant::now();
        probes.changed_soon(&mut w, t0);
        assert_eq!(
            w.rechecks.get(&Token::Signals),
            Some(&t0),
            "never asked: at once"
        );
        w.rechecks.clear();
        // Asked just now (`changed`, which would also walk this test process's children).
        let asked = t0;
        probes.asked = Some(asked);
        probes.changed_soon(&mut w, asked + std::time::Duration::from_millis(10));
        assert_eq!(
            w.rechecks.get(&Token::Signals),
            Some(&(asked + ASK_AFTER_AN_END))
        );
        w.recheck(Token::Signals, asked);
        probes.changed_soon(&mut w, asked + std::time::Duration::from_millis(20));
        assert_eq!(w.rechecks.get(&Token::Signals), Some(&asked), "put off");
        w.rechecks.clear();
        let long_after = asked + 3 * ASK_AFTER_AN_END;
        probes.changed_soon(&mut w, long_after);
        assert_eq!(w.rechecks.get(&Token::Signals), Some(&long_after));
    }

    #[test]
    fn a_probe_not_reapable_yet_is_not_told_and_is_looked_at_again_later() {
        let (mut w, core) = (wiring(), Core::new(Limits::default()));
        let mut probes = Probes::default();
        let child = ChildState::new(500, &Default::default());
        probes.arm(&mut w, 1, FakeChild(child.clone()));
        // Its pidfd was readable but it cannot be reaped (a tracer holds it): nothing is told,
        // and it is looked at again later rather than spun on.
        probes.exited(&mut w, &core, 1);
        assert!(w.events.is_empty());
        assert!(w.rechecks.contains_key(&Token::Probe(1)));
        child.end(Exit::Signal(9));
        probes.exited(&mut w, &core, 1);
        assert!(matches!(
            w.events.pop_front(),
            Some(Event::ProbeExited {
                probe: 1,
                exit: Exit::Signal(9)
            })
        ));
    }
}
