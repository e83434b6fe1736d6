//! A container name looked up without waiting: every manager's tool runs at once, and the
//! daemon's event queue watches them (through one epoll descriptor of the lookup's own) under
//! one deadline. Then the container's init is opened, and its manager asked once more.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::jail::Jail;
use super::poller::Poller;
use super::process::Process;
use crate::containers::{self, Answer, Found, MAX_TOOL_OUTPUT, Manager, TOOL_DEADLINE, Unasked};
use crate::error::Error;
use crate::sys::posix::{self, Exit, Pid};

/// A jail being opened: at once (a PID), or after its name is looked up.
pub enum Opening {
    Ready(Result<Jail, Error>),
    Looking(Lookup),
}

impl Jail {
    /// Starts opening the jail `spec` names: a host PID at once, a container name by asking
    /// the container managers (`containers.rs`) without waiting for them. Here rather than in
    /// `jail.rs`, beside the lookup it may start, so that a jail needs to know no lookup.
    pub fn open(spec: &str, now: Instant) -> Opening {
        match containers::parse_spec(spec) {
            Err(e) => Opening::Ready(Err(e)),
            Ok(containers::Spec::Pid(pid)) => Opening::Ready(Jail::open_pid(spec, pid)),
            Ok(containers::Spec::Name { manager, name }) => {
                match Lookup::start(spec, manager, name, now) {
                    Ok(lookup) => Opening::Looking(lookup),
                    Err(e) => Opening::Ready(Err(e)),
                }
            }
        }
    }
}

/// One manager's tool, running or done.
struct ToolRun {
    manager: Manager,
    /// The container name asked about: the answer is read for exactly this name.
    name: String,
    state: ToolState,
}

enum ToolState {
    Running(RawTool),
    Done(Result<Answer, Unasked>),
}

/// A tool running as the daemon's child: its stdout and stderr read as they come, reaped
/// once both are closed and it has exited. Shared by lookups and selectors' listings.
pub(super) struct RawTool {
    process: Process,
    /// stdout and stderr, each until its end of file.
    pipes: [Option<OwnedFd>; 2],
    output: [Vec<u8>; 2],
}

impl RawTool {
    /// Starts `tool args` (see `spawn_tool`), its pidfd and pipes watched by `watch`.
    pub(super) fn start(tool: &str, args: &[&str], watch: &Poller) -> io::Result<RawTool> {
        let (process, pipes) = spawn_tool(tool, args, true)?;
        let watched = |fd: BorrowedFd<'_>| watch.add(fd, 0);
        let ok = watched(process.poll_fd()).is_ok()
            && pipes.iter().flatten().all(|p| watched(p.as_fd()).is_ok());
        if !ok {
            process.kill();
            return Err(io::Error::other("cannot watch its tool"));
        }
        Ok(RawTool {
            process,
            pipes,
            output: [Vec::new(), Vec::new()],
        })
    }

    /// Reads what its pipes hold; once it is done, whether it succeeded, its stdout and its
    /// stderr (or why it could not be reaped).
    pub(super) fn step(
        &mut self,
        watch: &Poller,
    ) -> Option<Result<(bool, String, String), String>> {
        for (pipe, out) in self.pipes.iter_mut().zip(self.output.iter_mut()) {
            let Some(fd) = pipe else { continue };
            let mut chunk = [0u8; 4096];
            let closed = loop {
                match rustix::io::read(&*fd, &mut chunk) {
                    Ok(0) => break true,
                    Ok(n) if out.len() + n > MAX_TOOL_OUTPUT => break true,
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(rustix::io::Errno::AGAIN) => break false,
                    Err(_) => break true,
                }
            };
            if closed {
                watch.remove(fd.as_fd());
                *pipe = None;
            }
        }
        if self.pipes.iter().any(Option::is_some) || !posix::readable_now(self.process.poll_fd()) {
            return None;
        }
        watch.remove(self.process.poll_fd());
        let success = match self.process.try_wait() {
            Ok(Some(Exit::Code(0))) => true,
            Ok(Some(_)) => false,
            // Exited but held by a tracer: looked at again at the next step or the deadline.
            Ok(None) => return None,
            Err(e) => return Some(Err(format!("waitid: {e}"))),
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Some(Ok((success, text(&self.output[0]), text(&self.output[1]))))
    }

    /// Kills it (at a deadline), and hands it back to be reaped.
    pub(super) fn kill(self) -> Process {
        self.process.kill();
        self.process
    }
}

impl ToolRun {
    /// Starts `manager`'s tool about `name` with a fixed environment and no stdin; a manager
    /// that is not installed or not running answers at once.
    fn start(manager: Manager, name: &str, watch: &Poller) -> ToolRun {
        let done = |answer| ToolRun {
            manager,
            name: name.to_string(),
            state: ToolState::Done(answer),
        };
        if let Some(path) = manager
            .runtime()
            .filter(|p| !std::path::Path::new(p).exists())
        {
            return done(Err(Unasked::Failed(format!("not running (no {path})"))));
        }
        if !manager.takes(name) {
            return done(Ok(Answer::Absent));
        }
        match RawTool::start(manager.tool(), &manager.query(name), watch) {
            Ok(tool) => ToolRun {
                manager,
                name: name.to_string(),
                state: ToolState::Running(tool),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => done(Err(Unasked::NotInstalled)),
            Err(e) => done(Err(Unasked::Failed(format!("{}: {e}", manager.tool())))),
        }
    }

    /// Reads what its pipes hold, and reaps the tool once both are closed and it has exited.
    fn step(&mut self, watch: &Poller) {
        let ToolState::Running(tool) = &mut self.state else {
            return;
        };
        let answer = match tool.step(watch) {
            None => return,
            Some(Err(e)) => Err(Unasked::Failed(format!("{}: {e}", self.manager.tool()))),
            Some(Ok((success, stdout, stderr))) => {
                self.manager.parse(&self.name, success, &stdout, &stderr)
            }
        };
        self.state = ToolState::Done(answer);
    }

    /// At the deadline: a tool still running is killed (and handed back to be reaped).
    fn give_up(&mut self) -> Option<Process> {
        let ToolState::Running { .. } = self.state else {
            return None;
        };
        let why = Unasked::Failed(format!("no answer within {}s", TOOL_DEADLINE.as_secs()));
        let ToolState::Running(tool) =
            std::mem::replace(&mut self.state, ToolState::Done(Err(why)))
        else {
            return None;
        };
        Some(tool.kill())
    }

    fn answer(&self) -> Option<&Result<Answer, Unasked>> {
        match &self.state {
            ToolState::Done(answer) => Some(answer),
            ToolState::Running { .. } => None,
        }
    }
}

/// Runs `tool args` with `PATH` and `LC_ALL=C` only, in `/`, stdin from /dev/null, stdout and
/// stderr into non-blocking pipes (stderr to /dev/null unless `with_stderr`). The child is held
/// by pidfd at once; it is reaped by us.
pub(super) fn spawn_tool(
    tool: &str,
    args: &[&str],
    with_stderr: bool,
) -> io::Result<(Process, [Option<OwnedFd>; 2])> {
    let mut command = Command::new(tool);
    // std's spawn also empties the child's signal mask: the signals the daemon blocks for its
    // signalfd (SIGCHLD among them) are not blocked in the tool (tested below).
    command
        .args(args)
        .env_clear()
        .env("PATH", posix::COMMAND_PATH)
        .env("LC_ALL", "C")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if with_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn()?;
    let pid = child.id() as Pid;
    let pipes = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    // The std handle is dropped unwaited: the pidfd below is how the child is reaped.
    drop(child);
    for pipe in pipes.iter().flatten() {
        rustix::io::ioctl_fionbio(pipe, true)?;
    }
    let process = Process::from_own_child(pid)?;
    Ok((process, pipes))
}

enum Stage {
    /// Every manager asked (or the one named).
    Asking(Vec<ToolRun>),
    /// Nothing found where `-j lxc:NAME` looked: LXD and Incus are asked whether they have the
    /// name, for a hint in `error` (`containers::managers_to_hint`).
    Hinting { error: Error, tools: Vec<ToolRun> },
    /// The container's init opened; its manager asked once more.
    Confirming {
        jail: Jail,
        found: Found,
        tool: ToolRun,
    },
}

/// A container name being looked up.
pub struct Lookup {
    spec: String,
    /// The manager `spec` named, if it named one.
    manager: Option<Manager>,
    name: String,
    stage: Stage,
    /// Its tools' pidfds and pipes; the daemon watches this one descriptor.
    watch: Poller,
    deadline: Instant,
    /// Tools killed at a deadline, to be reaped by the daemon.
    leftovers: Vec<Process>,
}

impl Lookup {
    pub(super) fn start(
        spec: &str,
        manager: Option<Manager>,
        name: &str,
        now: Instant,
    ) -> Result<Lookup, Error> {
        let watch = Poller::new().map_err(|e| Error::os("creating a lookup's event queue", e))?;
        let tools = containers::managers_for(manager)
            .into_iter()
            .map(|m| ToolRun::start(m, name, &watch))
            .collect();
        Ok(Lookup {
            spec: spec.to_string(),
            manager,
            name: name.to_string(),
            stage: Stage::Asking(tools),
            watch,
            deadline: now + TOOL_DEADLINE,
            leftovers: Vec::new(),
        })
    }

    /// Readable when one of its tools has something to say.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.watch.as_fd()
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Tools killed at a deadline, for the daemon to reap once gone.
    pub fn take_leftovers(&mut self) -> Vec<Process> {
        std::mem::take(&mut self.leftovers)
    }

    /// Moves the lookup on with what its tools said by `now`; the jail once it is decided.
    pub fn step(&mut self, now: Instant) -> Option<Result<Jail, Error>> {
        let late = now >= self.deadline;
        match &mut self.stage {
            Stage::Asking(tools) => {
                let answers = step_all(tools, &self.watch, late, &mut self.leftovers)?;
                let found = match containers::decide(&self.spec, &self.name, &answers) {
                    Ok(found) => found,
                    Err(error) => {
                        let hints =
                            containers::managers_to_hint(self.manager, &self.name, &answers);
                        if hints.is_empty() {
                            return Some(Err(error));
                        }
                        // Within the lookup's own deadline: a hint never makes a refusal later.
                        let tools = hints
                            .into_iter()
                            .map(|m| ToolRun::start(m, &self.name, &self.watch))
                            .collect();
                        self.stage = Stage::Hinting { error, tools };
                        return self.step(now);
                    }
                };
                let jail = match Jail::open_pid(&self.spec, found.pid) {
                    Ok(jail) => jail,
                    Err(e) => return Some(Err(e)),
                };
                // The pidfd was opened after the manager answered: the PID could have been
                // recycled in between, unless the manager still names it now.
                let tool = ToolRun::start(found.manager, &self.name, &self.watch);
                self.deadline = now + TOOL_DEADLINE;
                self.stage = Stage::Confirming { jail, found, tool };
                self.step(now)
            }
            Stage::Hinting { error, tools } => {
                let answers = step_all(tools, &self.watch, late, &mut self.leftovers)?;
                Some(Err(containers::with_hints(
                    error.clone(),
                    &self.name,
                    &answers,
                )))
            }
            Stage::Confirming { jail, found, tool } => {
                tool.step(&self.watch);
                if late {
                    self.leftovers.extend(tool.give_up());
                }
                let again = tool.answer()?;
                Some(
                    containers::confirmed(&self.spec, found, again)
                        .and_then(|()| jail.check_alive())
                        .map(|()| {
                            let Stage::Confirming {
                                mut jail, found, ..
                            } = std::mem::replace(&mut self.stage, Stage::Asking(Vec::new()))
                            else {
                                unreachable!("matched above")
                            };
                            jail.set_container(found.manager.name(), &self.name);
                            jail
                        }),
                )
            }
        }
    }
}

/// Steps every tool (and, `late`, kills those still running, into `leftovers`); their answers
/// once all have one.
fn step_all(
    tools: &mut [ToolRun],
    watch: &Poller,
    late: bool,
    leftovers: &mut Vec<Process>,
) -> Option<Vec<(Manager, Result<Answer, Unasked>)>> {
    for tool in tools.iter_mut() {
        tool.step(watch);
        if late {
            leftovers.extend(tool.give_up());
        }
    }
    tools
        .iter()
        .map(|t| t.answer().map(|a| (t.manager, clone_answer(a))))
        .collect()
}

fn clone_answer(answer: &Result<Answer, Unasked>) -> Result<Answer, Unasked> {
    match answer {
        Ok(Answer::Running(pid)) => Ok(Answer::Running(*pid)),
        Ok(Answer::Stopped) => Ok(Answer::Stopped),
        Ok(Answer::Absent) => Ok(Answer::Absent),
        Err(Unasked::NotInstalled) => Err(Unasked::NotInstalled),
        Err(Unasked::Failed(why)) => Err(Unasked::Failed(why.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw;
    use super::*;

    /// Steps a tool until it is done, as the daemon's loop would.
    fn run(tool: &str, args: &[&str]) -> (bool, String, String) {
        let watch = Poller::new().unwrap();
        let (process, pipes) = spawn_tool(tool, args, true).unwrap();
        let mut run = ToolRun {
            manager: Manager::Lxc,
            name: "web1".into(),
            state: ToolState::Running(RawTool {
                process,
                pipes,
                output: [Vec::new(), Vec::new()],
            }),
        };
        let deadline = Instant::now() + TOOL_DEADLINE;
        loop {
            run.step(&watch);
            if let ToolState::Done(_) = run.state {
                break;
            }
            assert!(Instant::now() < deadline, "tool did not end");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        match run.state {
            ToolState::Done(Ok(Answer::Running(pid))) => (true, pid.to_string(), String::new()),
            ToolState::Done(Ok(other)) => (true, format!("{other:?}"), String::new()),
            ToolState::Done(Err(Unasked::Failed(why))) => (false, String::new(), why),
            ToolState::Done(Err(Unasked::NotInstalled)) => (false, String::new(), "missing".into()),
            ToolState::Running { .. } => unreachable!(),
        }
    }

    #[test]
    fn a_tool_runs_with_a_fixed_environment_and_is_read_without_waiting() {
        // Read as lxc-info's answer: a PID printed on success.
        let script = format!(
            "test -z \"$HOME\" && test \"$LC_ALL\" = C && test \"$PATH\" = '{}' && echo 4144",
            posix::COMMAND_PATH
        );
        let (ok, out, _) = run("sh", &["-c", &script]);
        assert!(ok);
        assert_eq!(out, "4144");
        // A failure names what the tool said on stderr.
        let (ok, _, why) = run("sh", &["-c", "echo oops >&2; exit 3"]);
        assert!(!ok);
        assert!(why.contains("oops"), "{why}");
        // The daemon's blocked signals (here: all of this thread's) are not the tool's.
        raw::set_all_signals_blocked(true);
        let (_, out, why) = run(
            "sh",
            &[
                "-c",
                "grep -q '^SigBlk:\t0000000000000000$' /proc/self/status && echo 1",
            ],
        );
        raw::set_all_signals_blocked(false);
        assert_eq!(out, "1", "the tool started with signals blocked: {why}");
        let missing = spawn_tool("jaildaemon-no-such-tool", &[], true)
            .err()
            .unwrap();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
