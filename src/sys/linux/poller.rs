//! The event queue: readiness of many descriptors at once (epoll), each under a token.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// Readiness of many descriptors at once (epoll), level-triggered, each under a token: the
/// daemon's cost per event does not grow with the number of probes.
pub struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        let epoll = rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)?;
        Ok(Poller { epoll })
    }

    /// Reports `fd` under `token` while it is readable, until `remove`.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.watch(fd, token, rustix::event::epoll::EventFlags::IN)
    }

    /// Reports `fd` under `token` only once it hangs up (a pipe whose writers all closed), until
    /// `remove`: what was written before waits in the pipe.
    pub fn add_hangup(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.watch(fd, token, rustix::event::epoll::EventFlags::empty())
    }

    /// Reports `fd` under `token` while it is writable, until `remove`.
    pub fn add_writable(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.watch(fd, token, rustix::event::epoll::EventFlags::OUT)
    }

    fn watch(
        &self,
        fd: BorrowedFd<'_>,
        token: u64,
        flags: rustix::event::epoll::EventFlags,
    ) -> io::Result<()> {
        use rustix::event::epoll;
        epoll::add(&self.epoll, fd, epoll::EventData::new_u64(token), flags)?;
        Ok(())
    }

    /// Stops reporting `fd`; one that was not added is no error.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        let _ = rustix::event::epoll::delete(&self.epoll, fd);
    }

    /// Waits up to `timeout` (for ever without one) and puts the ready tokens in `ready`.
    pub fn wait(&self, timeout: Option<Duration>, ready: &mut Vec<u64>) -> io::Result<()> {
        let mut events = Vec::with_capacity(256);
        let timeout = timeout.map(|t| {
            rustix::time::Timespec::try_from(t).unwrap_or(rustix::time::Timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            })
        });
        match rustix::event::epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(&mut events),
            timeout.as_ref(),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        ready.extend(events.iter().map(|e| e.data.u64()));
        Ok(())
    }
}

/// An event queue is itself readable when one of its descriptors is: a lookup's own queue is
/// watched by the daemon's.
impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}
