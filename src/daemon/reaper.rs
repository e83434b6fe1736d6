//! Killed children: each is reaped when its pidfd says it is gone, never waited for (a probe
//! in a frozen cgroup dies only when thawed, a traced one when its tracer lets go).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::host::Child;
use super::wiring::{RECHECK, Token, Wiring};

pub(super) struct Reaper<C> {
    /// Killed processes not reaped yet, by serial number.
    reaping: BTreeMap<u64, C>,
}

impl<C> Default for Reaper<C> {
    fn default() -> Self {
        Reaper {
            reaping: BTreeMap::new(),
        }
    }
}

impl<C: Child> Reaper<C> {
    /// Children it holds, each with a descriptor.
    pub(super) fn len(&self) -> usize {
        self.reaping.len()
    }

    /// Kills a process and reaps it once it is gone, without waiting here.
    pub(super) fn kill(&mut self, w: &mut Wiring, process: C) {
        w.unwatch(process.poll_fd());
        process.kill();
        self.reap_later(w, process);
    }

    /// Reaps `process` (killed, or ending on its own) once its pidfd says it is gone.
    pub(super) fn reap_later(&mut self, w: &mut Wiring, process: C) {
        if let Ok(Some(_)) = process.try_wait() {
            return;
        }
        let serial = w.serial();
        w.listen(process.poll_fd(), Token::Reap(serial));
        self.reaping.insert(serial, process);
    }

    /// A killed child's pidfd said it is gone: reap it, or look again later (traced).
    pub(super) fn reap(&mut self, w: &mut Wiring, serial: u64) {
        let Some(process) = self.reaping.get(&serial) else {
            return;
        };
        w.unwatch(process.poll_fd());
        match process.try_wait() {
            Ok(None) => w.recheck(Token::Reap(serial), Instant::now() + RECHECK),
            _ => {
                self.reaping.remove(&serial);
            }
        }
    }

    /// At shutdown: reaps what goes within `grace`; returns how many are left behind (the
    /// kernel reaps them once the daemon is gone).
    pub(super) fn reap_within(&mut self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        while !self.reaping.is_empty() && Instant::now() < deadline {
            self.reaping
                .retain(|_, p| !matches!(p.try_wait(), Ok(Some(_))));
            std::thread::sleep(Duration::from_millis(10));
        }
        self.reaping.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::host::fake::{ChildState, FakeChild};
    use super::*;
    use crate::sys::{Exit, Poller};

    /// What the event queue reports within `ms`.
    fn ready(w: &Wiring, ms: u64) -> Vec<Token> {
        let mut ready = Vec::new();
        (w.poller)
            .wait(Some(Duration::from_millis(ms)), &mut ready)
            .expect("wait");
        ready.into_iter().filter_map(Token::decode).collect()
    }

    #[test]
    fn a_killed_child_is_reaped_once_its_pidfd_says_it_is_gone() {
        let mut w = Wiring::new(Poller::new().expect("poller"));
        let mut reaper = Reaper::default();
        let child = ChildState::new(500, &Default::default());
        reaper.kill(&mut w, FakeChild(child.clone()));
        assert_eq!(child.calls(), ["kill 500"]);
        assert_eq!(reaper.len(), 1, "held until it is gone");
        // Not gone yet (frozen, say): the queue says nothing, and nothing waits for it.
        assert!(ready(&w, 50).is_empty());
        child.end(Exit::Signal(9));
        assert_eq!(ready(&w, 1000), [Token::Reap(1)]);
        reaper.reap(&mut w, 1);
        assert_eq!(reaper.len(), 0);
        assert!(w.rechecks.is_empty());
    }

    #[test]
    fn a_killed_child_not_reapable_yet_is_looked_at_again_later_not_waited_for() {
        let mut w = Wiring::new(Poller::new().expect("poller"));
        let mut reaper = Reaper::default();
        let child = ChildState::new(500, &Default::default());
        reaper.kill(&mut w, FakeChild(child.clone()));
        // Its pidfd said something, but it cannot be reaped (a tracer holds it): the look
        // returns at once, and it is looked at again a little later instead of spun on.
        let before = Instant::now();
        reaper.reap(&mut w, 1);
        assert_eq!(reaper.len(), 1);
        let again = w.rechecks.get(&Token::Reap(1)).copied();
        assert!(again.is_some_and(|t| t > before), "{again:?}");
        // At that look it is gone: reaped.
        child.end(Exit::Signal(9));
        reaper.reap(&mut w, 1);
        assert_eq!(reaper.len(), 0);
    }

    #[test]
    fn a_child_that_is_gone_already_is_reaped_at_once_and_never_held() {
        let mut w = Wiring::new(Poller::new().expect("poller"));
        let mut reaper = Reaper::default();
        let child = ChildState::new(500, &Default::default());
        child.end(Exit::Code(0));
        reaper.reap_later(&mut w, FakeChild(child));
        assert_eq!(reaper.len(), 0);
        // Twin: one still running is held and watched.
        let child = ChildState::new(501, &Default::default());
        reaper.reap_later(&mut w, FakeChild(child.clone()));
        assert_eq!(reaper.len(), 1);
        child.end(Exit::Code(0));
        assert_eq!(ready(&w, 1000), [Token::Reap(1)]);
        reaper.reap(&mut w, 1);
        assert_eq!(reaper.len(), 0);
    }
}
