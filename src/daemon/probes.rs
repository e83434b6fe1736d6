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

pub(super) struct Probes<C> {
    armed: BTreeMap<ProbeId, C>,
}

impl<C> Default for Probes<C> {
    fn default() -> Self {
        Probes {
            armed: BTreeMap::new(),
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
