//! Child processes held by pidfd: never waited on or signalled by bare pid.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::process::{PidfdFlags, Signal, WaitId, WaitIdOptions};

use crate::sys::posix::Exit;
use crate::sys::posix::Pid;

/// `__WALL`: a child with no exit signal (a placement's helper A, and its Bs until their exec,
/// see `raw::fork_sharing_descriptors`) is waited for like any other; without it, waitid says
/// ECHILD for one.
const ALL: WaitIdOptions = WaitIdOptions::from_bits_retain(libc::__WALL as u32);

/// A child of the daemon, held by pidfd so that it is never waited on or signalled by bare pid.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
    pidfd: OwnedFd,
}

impl Process {
    /// Takes hold of `pid`, which must be an unreaped child of this process: only then can the
    /// pid not have been recycled before pidfd_open.
    /// The pid is checked to be an unreaped child of ours once held: a helper that reported
    /// a wrong pid would otherwise hand us a stranger.
    pub fn from_own_child(pid: Pid) -> io::Result<Self> {
        let raw = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())?;
        // ECHILD unless it is our child; WNOWAIT leaves it unreaped.
        let peek = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT | ALL;
        rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), peek)?;
        Ok(Process { pid, pidfd })
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Becomes readable when the process has exited.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reaps the process if it has exited.
    pub fn try_wait(&self) -> io::Result<Option<Exit>> {
        self.wait_with(WaitIdOptions::EXITED | WaitIdOptions::NOHANG | ALL)
    }

    fn wait_with(&self, options: WaitIdOptions) -> io::Result<Option<Exit>> {
        let status = rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), options)?;
        Ok(
            status.map(|s| match (s.exit_status(), s.terminating_signal()) {
                (Some(code), _) if s.exited() => Exit::Code(code),
                (_, Some(sig)) => Exit::Signal(sig),
                _ => Exit::Signal(0),
            }),
        )
    }

    /// Sends `signal`; a process that is already gone is not an error.
    pub fn signal(&self, signal: Signal) {
        let _ = rustix::process::pidfd_send_signal(self.pidfd.as_fd(), signal);
    }

    /// Sends SIGKILL; a process that is already gone is not an error.
    pub fn kill(&self) {
        let _ = rustix::process::pidfd_send_signal(self.pidfd.as_fd(), Signal::KILL);
    }
}
