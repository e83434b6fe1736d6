//! The seam over the system calls the shell's owners make on what they hold: children by
//! pidfd (probes, commands, helpers), a command's cgroup, a placement in flight, and starting
//! commands and placements. `Sys` passes each straight through to `crate::sys`; the owners are
//! generic over it, so the real build pays nothing for the seam, and their unit tests drive
//! them with a recording fake (`fake`), without root.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use rustix::process::Signal;

use super::core::Ids;
use crate::error::Error;
use crate::ids::HostUser;
use crate::invocation::Invocation;
use crate::sys::{self, Exit, Pid};

/// A child the daemon holds by pidfd.
pub(super) trait Child {
    fn pid(&self) -> Pid;
    /// Readable once the child has exited.
    fn poll_fd(&self) -> BorrowedFd<'_>;
    /// Reaps it if it has exited; `None` while it has not (or a tracer holds it).
    fn try_wait(&self) -> io::Result<Option<Exit>>;
    fn signal(&self, signal: Signal);
    fn kill(&self);
    /// A probe's count of SIGHUPs from outside its jail, read before it is reaped.
    fn ignored_signals(&self) -> Option<u64>;
}

/// The cgroup of a command with a timeout: everything it started is in it.
pub(super) trait Group {
    fn path(&self) -> &Path;
    fn members(&self) -> io::Result<Vec<Pid>>;
    fn signal_all(&self, signal: Signal) -> io::Result<usize>;
    fn kill_all(&self) -> io::Result<()>;
    /// Removes it; fails while it holds a process.
    fn remove(&self) -> io::Result<()>;
}

/// How a placement ended: per probe, its process and ids or why not, and the helpers left to
/// reap.
pub(super) struct Placed<C> {
    pub(super) results: Vec<Result<(C, Ids), Error>>,
    pub(super) leftovers: Vec<C>,
}

/// A placement in flight.
pub(super) trait Placing {
    type Child: Child;
    type Jail;
    /// Readable when its helpers say something.
    fn poll_fd(&self) -> BorrowedFd<'_>;
    /// Whether all its helpers can say fits in the pipe behind `poll_fd`, so that only the
    /// pipe's end (a hang-up) need wake the loop: one wake-up per placement, not one per report.
    fn quiet_until_done(&self) -> bool;
    fn deadline(&self) -> Instant;
    /// Takes what its helpers said; true once all are done.
    fn step(&mut self) -> bool;
    /// Ends it: what is not placed by now is killed. `jail` is its jail if still held.
    fn finish(self, jail: Option<&mut Self::Jail>) -> Placed<Self::Child>;
}

/// What the shell starts: commands, their cgroups, placements.
pub(super) trait Host {
    type Child: Child;
    type Group: Group;
    type Jail;
    type Placing: Placing<Child = Self::Child, Jail = Self::Jail>;

    fn create_group(&mut self, name: &str) -> io::Result<Self::Group>;

    /// Starts `command` on the host as `invocation` says, with `env`, in `group`, as `user`;
    /// returns it and the read end of its output.
    fn spawn_command(
        &mut self,
        command: &str,
        invocation: &Invocation,
        env: &[(&str, &str)],
        group: Option<&Self::Group>,
        user: Option<&HostUser>,
    ) -> io::Result<(Self::Child, OwnedFd)>;

    /// Starts placing `probes` in `jail`; returns once its helper is forked.
    fn start_placement(
        &mut self,
        jail: &Self::Jail,
        probes: &[sys::ProbeRequest],
        now: Instant,
    ) -> Result<Self::Placing, Error>;
}

/// The real host: `crate::sys`.
pub(super) struct Sys {
    /// The probe image, exec'd by placements and reused to spawn commands.
    pub(super) spawner: sys::Spawner,
}

impl Child for sys::Process {
    fn pid(&self) -> Pid {
        sys::Process::pid(self)
    }
    fn poll_fd(&self) -> BorrowedFd<'_> {
        sys::Process::poll_fd(self)
    }
    fn try_wait(&self) -> io::Result<Option<Exit>> {
        sys::Process::try_wait(self)
    }
    fn signal(&self, signal: Signal) {
        sys::Process::signal(self, signal)
    }
    fn kill(&self) {
        sys::Process::kill(self)
    }
    fn ignored_signals(&self) -> Option<u64> {
        sys::ignored_signals(self)
    }
}

impl Group for sys::CommandGroup {
    fn path(&self) -> &Path {
        sys::CommandGroup::path(self)
    }
    fn members(&self) -> io::Result<Vec<Pid>> {
        sys::CommandGroup::members(self)
    }
    fn signal_all(&self, signal: Signal) -> io::Result<usize> {
        sys::CommandGroup::signal_all(self, signal)
    }
    fn kill_all(&self) -> io::Result<()> {
        sys::CommandGroup::kill_all(self)
    }
    fn remove(&self) -> io::Result<()> {
        sys::CommandGroup::remove(self)
    }
}

impl Placing for sys::Placement {
    type Child = sys::Process;
    type Jail = sys::Jail;
    fn poll_fd(&self) -> BorrowedFd<'_> {
        sys::Placement::poll_fd(self)
    }
    fn quiet_until_done(&self) -> bool {
        sys::Placement::quiet_until_done(self)
    }
    fn deadline(&self) -> Instant {
        sys::Placement::deadline(self)
    }
    fn step(&mut self) -> bool {
        sys::Placement::step(self)
    }
    fn finish(self, jail: Option<&mut sys::Jail>) -> Placed<sys::Process> {
        let placed = sys::Placement::finish(self, jail);
        Placed {
            results: placed.results,
            leftovers: placed.leftovers,
        }
    }
}

impl Host for Sys {
    type Child = sys::Process;
    type Group = sys::CommandGroup;
    type Jail = sys::Jail;
    type Placing = sys::Placement;

    fn create_group(&mut self, name: &str) -> io::Result<sys::CommandGroup> {
        sys::CommandGroup::create(name)
    }

    fn spawn_command(
        &mut self,
        command: &str,
        invocation: &Invocation,
        env: &[(&str, &str)],
        group: Option<&sys::CommandGroup>,
        user: Option<&HostUser>,
    ) -> io::Result<(sys::Process, OwnedFd)> {
        sys::spawn_command(&mut self.spawner, command, invocation, env, group, user)
    }

    fn start_placement(
        &mut self,
        jail: &sys::Jail,
        probes: &[sys::ProbeRequest],
        now: Instant,
    ) -> Result<sys::Placement, Error> {
        sys::Placement::start(&mut self.spawner, jail, probes, now)
    }
}

/// A recording fake of the host, for the owners' unit tests: children that end when the test
/// says (their "pidfd" is a socket the test makes readable, so the real event queue reports
/// it), cgroups that empty when the test says, placements that never finish by themselves.
/// Every call is written to `calls`, in order.
#[cfg(test)]
pub(super) mod fake {
    use std::cell::{Cell, RefCell};
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::error::Kind;

    /// What the owners asked the fake to do, in order.
    pub(crate) type Calls = Rc<RefCell<Vec<String>>>;

    /// A fake child's state, shared with the test that ends it.
    pub(crate) struct ChildState {
        pub(crate) pid: Pid,
        exit: Cell<Option<Exit>>,
        /// Written to when it ends: its "pidfd" (the other end) becomes readable.
        ender: UnixStream,
        watched: UnixStream,
        calls: Calls,
    }

    impl ChildState {
        pub(crate) fn new(pid: Pid, calls: &Calls) -> Rc<ChildState> {
            let (ender, watched) = UnixStream::pair().expect("socketpair");
            Rc::new(ChildState {
                pid,
                exit: Cell::new(None),
                ender,
                watched,
                calls: calls.clone(),
            })
        }

        /// What was asked of every child and group sharing its record so far.
        pub(crate) fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }

        /// It is gone, so: its pidfd says so.
        pub(crate) fn end(&self, exit: Exit) {
            self.exit.set(Some(exit));
            (&self.ender).write_all(b"x").expect("end");
        }
    }

    pub(crate) struct FakeChild(pub(crate) Rc<ChildState>);

    impl Child for FakeChild {
        fn pid(&self) -> Pid {
            self.0.pid
        }
        fn poll_fd(&self) -> BorrowedFd<'_> {
            self.0.watched.as_fd()
        }
        fn try_wait(&self) -> io::Result<Option<Exit>> {
            Ok(self.0.exit.get())
        }
        fn signal(&self, signal: Signal) {
            let text = format!("signal {} {signal:?}", self.0.pid);
            self.0.calls.borrow_mut().push(text);
        }
        fn kill(&self) {
            self.0
                .calls
                .borrow_mut()
                .push(format!("kill {}", self.0.pid));
        }
        fn ignored_signals(&self) -> Option<u64> {
            None
        }
    }

    /// A fake cgroup: its members leave when the test says.
    pub(crate) struct FakeGroup {
        name: String,
        pub(crate) members: Rc<RefCell<Vec<Pid>>>,
        calls: Calls,
    }

    impl Group for FakeGroup {
        fn path(&self) -> &Path {
            Path::new(&self.name)
        }
        fn members(&self) -> io::Result<Vec<Pid>> {
            Ok(self.members.borrow().clone())
        }
        fn signal_all(&self, signal: Signal) -> io::Result<usize> {
            let text = format!("signal {} {signal:?}", self.name);
            self.calls.borrow_mut().push(text);
            Ok(self.members.borrow().len())
        }
        fn kill_all(&self) -> io::Result<()> {
            self.calls.borrow_mut().push(format!("kill {}", self.name));
            Ok(())
        }
        fn remove(&self) -> io::Result<()> {
            if !self.members.borrow().is_empty() {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            self.calls
                .borrow_mut()
                .push(format!("remove {}", self.name));
            Ok(())
        }
    }

    /// A fake placement: its helper (a child) places nothing until the test says `done`; at
    /// `finish` the probes not placed are refused and the helper is left to reap, as the real
    /// one does at its deadline.
    pub(crate) struct FakePlacing {
        deadline: Instant,
        probes: usize,
        pub(crate) done: Rc<Cell<bool>>,
        helper: Rc<ChildState>,
        calls: Calls,
    }

    impl Placing for FakePlacing {
        type Child = FakeChild;
        type Jail = ();
        fn poll_fd(&self) -> BorrowedFd<'_> {
            self.helper.watched.as_fd()
        }
        /// Its helper's word is a readable descriptor, not a hang-up.
        fn quiet_until_done(&self) -> bool {
            false
        }
        fn deadline(&self) -> Instant {
            self.deadline
        }
        fn step(&mut self) -> bool {
            self.done.get()
        }
        fn finish(self, jail: Option<&mut ()>) -> Placed<FakeChild> {
            let held = jail.is_some();
            self.calls
                .borrow_mut()
                .push(format!("finish placement (jail held: {held})"));
            let results = (0..self.probes)
                .map(|i| match self.done.get() {
                    true => {
                        let probe = ChildState::new(self.helper.pid + 1 + i as Pid, &self.calls);
                        Ok((FakeChild(probe), (0, 0)))
                    }
                    false => Err(Error::new(Kind::Timeout, "not placed within 5s")),
                })
                .collect();
            let leftovers = match self.done.get() {
                true => Vec::new(),
                false => {
                    let text = format!("kill {}", self.helper.pid);
                    self.calls.borrow_mut().push(text);
                    vec![FakeChild(self.helper)]
                }
            };
            Placed { results, leftovers }
        }
    }

    /// The loop's wiring, on a real event queue.
    pub(crate) fn wiring() -> super::super::wiring::Wiring {
        super::super::wiring::Wiring::new(sys::Poller::new().expect("poller"))
    }

    /// The core's news that jail `spec` runs as `jail`, a jail of its own.
    pub(crate) fn found(spec: &str, jail: super::super::core::JailId) -> super::super::core::Event {
        let facts = super::super::core::JailFacts {
            identity: (0, jail as u64),
            shares_host_users: false,
        };
        let spec = spec.to_string();
        super::super::core::Event::Found {
            spec,
            result: Ok((jail, facts)),
        }
    }

    #[derive(Default)]
    pub(crate) struct Fake {
        pub(crate) calls: Calls,
        next_pid: Pid,
        /// What it started, for the test to end.
        pub(crate) children: Vec<Rc<ChildState>>,
        pub(crate) groups: Vec<Rc<RefCell<Vec<Pid>>>>,
        pub(crate) placements: Vec<(Rc<ChildState>, Rc<Cell<bool>>)>,
    }

    impl Fake {
        fn pid(&mut self) -> Pid {
            self.next_pid += if self.next_pid == 0 { 1000 } else { 100 };
            self.next_pid
        }

        /// The calls made so far, taken.
        pub(crate) fn take_calls(&self) -> Vec<String> {
            std::mem::take(&mut self.calls.borrow_mut())
        }
    }

    impl Host for Fake {
        type Child = FakeChild;
        type Group = FakeGroup;
        type Jail = ();
        type Placing = FakePlacing;

        fn create_group(&mut self, name: &str) -> io::Result<FakeGroup> {
            self.calls.borrow_mut().push(format!("create {name}"));
            let members = Rc::new(RefCell::new(Vec::new()));
            self.groups.push(members.clone());
            Ok(FakeGroup {
                name: name.to_string(),
                members,
                calls: self.calls.clone(),
            })
        }

        fn spawn_command(
            &mut self,
            command: &str,
            _invocation: &Invocation,
            _env: &[(&str, &str)],
            group: Option<&FakeGroup>,
            _user: Option<&HostUser>,
        ) -> io::Result<(FakeChild, OwnedFd)> {
            let pid = self.pid();
            self.calls
                .borrow_mut()
                .push(format!("spawn {pid} {command}"));
            if let Some(group) = group {
                group.members.borrow_mut().push(pid);
            }
            let child = ChildState::new(pid, &self.calls);
            self.children.push(child.clone());
            // Its output: at its end at once.
            let (output, _) = UnixStream::pair()?;
            output.set_nonblocking(true)?;
            Ok((FakeChild(child), output.into()))
        }

        fn start_placement(
            &mut self,
            _jail: &(),
            probes: &[sys::ProbeRequest],
            now: Instant,
        ) -> Result<FakePlacing, Error> {
            let pid = self.pid();
            let text = format!("place {} probe(s), helper {pid}", probes.len());
            self.calls.borrow_mut().push(text);
            let helper = ChildState::new(pid, &self.calls);
            let done = Rc::new(Cell::new(false));
            self.placements.push((helper.clone(), done.clone()));
            Ok(FakePlacing {
                deadline: now + Duration::from_secs(5),
                probes: probes.len(),
                done,
                helper,
                calls: self.calls.clone(),
            })
        }
    }
}
