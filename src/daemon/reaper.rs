//! Killed children: each is reaped when its pidfd says it is gone, never waited for (a probe
//! in a frozen cgroup dies only when thawed, a traced one when its tracer lets go).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::wiring::{RECHECK, Token, Wiring};
use crate::sys::Process;

#[derive(Default)]
pub(super) struct Reaper {
    /// Killed processes not reaped yet, by serial number.
    reaping: BTreeMap<u64, Process>,
}

impl Reaper {
    /// Children it holds, each with a descriptor.
    pub(super) fn len(&self) -> usize {
        self.reaping.len()
    }

    /// Kills a process and reaps it once it is gone, without waiting here.
    pub(super) fn kill(&mut self, w: &mut Wiring, process: Process) {
        w.unwatch(process.poll_fd());
        process.kill();
        self.reap_later(w, process);
    }

    /// Reaps `process` (killed, or ending on its own) once its pidfd says it is gone.
    pub(super) fn reap_later(&mut self, w: &mut Wiring, process: Process) {
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
