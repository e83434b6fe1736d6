//! Host commands: started when a probe fires, with a fixed environment, their output logged
//! line by line, their end logged with status and duration.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::core::{CommandId, Event, JailId, ProbeId};
use super::host::{Child, Group, Host};
use super::logbudget::{Cause, LineKind, LogBudget, LogLine};
use super::wiring::{RECHECK, Token, Wiring};
use crate::definition::Definition;
use crate::invocation::Invocation;
use crate::sys::COMMAND_PATH;

/// Longest line of command output logged as one message; longer lines are split.
const MAX_OUTPUT_LINE: usize = 1024;
/// Reads of a command's output (4 KiB each) per wake-up of the daemon: a command that writes
/// without pause must not hold the loop; the event queue reports the pipe again.
const MAX_READS_PER_WAKE: usize = 16;
/// Reads of what is left once a command has ended (1 MiB); a process it left behind that
/// still writes is not waited for.
const MAX_READS_AT_END: usize = 256;
/// How often, and how many times, the cgroup of a command killed at its timeout is looked at
/// until its last process is gone and it can be removed (5 s in all).
const DRAIN_RECHECK: Duration = Duration::from_millis(100);
const DRAIN_TRIES: u32 = 50;

/// Commands running, and the cgroups of those that ended until they are done with.
pub(super) struct Commands<H: Host> {
    running: BTreeMap<CommandId, RunningCommand<H>>,
    /// Cgroups of commands whose shell ended, until the core says what becomes of them.
    draining: BTreeMap<CommandId, Draining<H::Group>>,
}

impl<H: Host> Default for Commands<H> {
    fn default() -> Self {
        Commands {
            running: BTreeMap::new(),
            draining: BTreeMap::new(),
        }
    }
}

struct RunningCommand<H: Host> {
    /// How log lines name the probe: id, jail, title.
    tag: String,
    /// The probe, and its jail as named: whose budget its output lines take (`logbudget`).
    probe: ProbeId,
    jail: String,
    process: H::Child,
    started: Instant,
    /// Read end of the pipe that carries the command's stdout and stderr into our log.
    output: Option<OwnedFd>,
    /// An incomplete last line of output.
    partial: Vec<u8>,
    /// Its cgroup of its own, when its probe has a timeout (none if it could not be made).
    group: Option<H::Group>,
}

/// The cgroup of a command whose shell ended, until the core says what becomes of it
/// (`Effect::Clear`, or SIGKILL for what it left when it was being stopped), then until it is
/// empty and removed.
struct Draining<G> {
    tag: String,
    /// What its lines count against: its probe's jail, which fired it.
    cause: Cause,
    group: G,
    /// Times it was found not empty yet after SIGKILL.
    tries: u32,
}

impl<G> Draining<G> {
    /// A log line about what the command left: its probe's jail's, within its budget.
    fn line(&self, level: log::Level, text: String) -> LogLine {
        LogLine {
            level,
            text,
            cause: self.cause.clone(),
        }
    }
}

/// What a command is started for: its probe, the jail as it was when the probe fired, and the
/// container and pod that jail was found as.
pub(super) struct Spawning<'a> {
    pub command: CommandId,
    pub probe: ProbeId,
    pub def: &'a Definition,
    pub jail: JailId,
    /// The manager and container name the jail was found by, if named so: with them and the
    /// jail's PID a command can enter the jail without looking it up again.
    pub container: Option<(&'a str, &'a str)>,
    /// For a selector's probe of a pod's container: that pod.
    pub pod: Option<&'a crate::selector::Pod>,
    /// The core's line saying why it runs: logged once the command has started (or failed to).
    pub announce: LogLine,
}

impl<H: Host> RunningCommand<H> {
    /// Runs `def`'s command on the host with `/bin/sh -c`, with a fixed environment, stdin
    /// from /dev/null, and stdout and stderr into a pipe whose lines the daemon logs.
    fn spawn(
        w: &mut Wiring,
        host: &mut H,
        what: &Spawning<'_>,
        now: Instant,
    ) -> io::Result<RunningCommand<H>> {
        let (command, def) = (what.command, what.def);
        let tag = format!("probe {} (jail {}, '{}')", what.probe, def.jail, def.title);
        let id = what.probe.to_string();
        let jail_pid = what.jail.to_string();
        let mut env = vec![
            ("PATH", COMMAND_PATH),
            // What `sh` exports for the directory it runs in; set here too, so that a
            // command exec'd without a shell sees the same environment.
            ("PWD", "/"),
            ("JAILDAEMON_JAIL", def.jail.as_str()),
            ("JAILDAEMON_JAIL_PID", jail_pid.as_str()),
            ("JAILDAEMON_TITLE", def.title.as_str()),
            ("JAILDAEMON_PROBE", id.as_str()),
        ];
        match what.container {
            // containerd names a container within a namespace: the id alone, and the
            // namespace beside it, as `ctr --namespace NS … ID` takes them.
            Some(("containerd", name)) => {
                let (namespace, id) = name.split_once('/').unwrap_or(("", name));
                env.push(("JAILDAEMON_MANAGER", "containerd"));
                env.push(("JAILDAEMON_CONTAINER", id));
                env.push(("JAILDAEMON_CONTAINERD_NAMESPACE", namespace));
            }
            Some((manager, name)) => {
                env.push(("JAILDAEMON_MANAGER", manager));
                env.push(("JAILDAEMON_CONTAINER", name));
            }
            None => {}
        }
        if let Some(pod) = what.pod {
            env.push(("JAILDAEMON_POD", pod.name.as_str()));
            env.push(("JAILDAEMON_NAMESPACE", pod.namespace.as_str()));
        }
        let group = def.timeout.and_then(|_| {
            let name = format!("jaildaemon-{}-command-{command}", std::process::id());
            host.create_group(&name)
                .inspect_err(|e| {
                    // Each fire can meet this again: its probe's jail's line, within budget.
                    w.log(LogLine {
                        level: log::Level::Error,
                        text: format!(
                            "{tag}: no cgroup of its own for the command ({e}): at its timeout only its shell is stopped"
                        ),
                        cause: Cause::Probe {
                            probe: what.probe,
                            tag: tag.clone(),
                            jail: def.jail.clone(),
                            kind: LineKind::CommandStart,
                        },
                    })
                })
                .ok()
        });
        let user = match &def.run_as {
            Some(spec) => Some(host_user(spec).map_err(|e| io::Error::other(e.message))?),
            None => None,
        };
        let invocation = Invocation::of(&def.command);
        let spawned = host.spawn_command(
            &def.command,
            &invocation,
            &env,
            group.as_ref(),
            user.as_ref(),
        );
        let (process, output) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                if let Some(group) = &group {
                    let _ = group.remove();
                }
                return Err(e);
            }
        };
        Ok(RunningCommand {
            tag,
            probe: what.probe,
            jail: def.jail.clone(),
            process,
            started: now,
            output: Some(output),
            partial: Vec::new(),
            group,
        })
    }

    /// Logs what the command wrote, line by line, within its probe's and jail's budget (a
    /// jail that fires a probe in a loop repeats its output); returns false at the end of its
    /// output.
    fn drain_output(&mut self, max_reads: usize, budget: &mut LogBudget) -> bool {
        let Some(fd) = &self.output else { return false };
        let mut chunk = [0u8; 4096];
        let mut reads = 0;
        let open = loop {
            if reads == max_reads {
                break true;
            }
            reads += 1;
            match rustix::io::read(fd, &mut chunk) {
                Ok(0) => break false,
                Ok(n) => self.partial.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::AGAIN) => break true,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break false,
            }
        };
        loop {
            // A line ends at a newline, at MAX_OUTPUT_LINE bytes, or at the end of output.
            let (len, newline) = match self.partial.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= MAX_OUTPUT_LINE => (nl, 1),
                _ if self.partial.len() >= MAX_OUTPUT_LINE => (MAX_OUTPUT_LINE, 0),
                _ if !open && !self.partial.is_empty() => (self.partial.len(), 0),
                _ => break,
            };
            let line: Vec<u8> = self.partial.drain(..len + newline).take(len).collect();
            let line = self.line(
                LineKind::Output,
                log::Level::Info,
                format!("{} command: {}", self.tag, String::from_utf8_lossy(&line)),
            );
            if budget.admit(&line, Instant::now()) {
                log::info!("{}", line.text);
            }
        }
        open
    }

    /// A log line about this command that its probe's jail caused, by firing it.
    fn line(&self, kind: LineKind, level: log::Level, text: String) -> LogLine {
        LogLine {
            level,
            text,
            cause: Cause::Probe {
                probe: self.probe,
                tag: self.tag.clone(),
                jail: self.jail.clone(),
                kind,
            },
        }
    }
}

impl<H: Host> Commands<H> {
    /// Commands whose shell runs.
    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    /// The core's `Effect::Run`: runs a probe's command as `what` says, or tells the core it
    /// could not start.
    pub(super) fn run(&mut self, w: &mut Wiring, host: &mut H, what: Spawning<'_>) {
        let command = what.command;
        // The command first: the trigger waits for nothing, the log comes right after.
        let spawned = RunningCommand::spawn(w, host, &what, Instant::now());
        w.log(what.announce);
        match spawned {
            Ok(running) => {
                let text = format!(
                    "{} command started, host pid {}",
                    running.tag,
                    running.process.pid()
                );
                w.log(running.line(LineKind::CommandStart, log::Level::Info, text));
                w.listen(running.process.poll_fd(), Token::Command(command));
                if let Some(output) = &running.output {
                    w.listen(output.as_fd(), Token::Output(command));
                }
                self.running.insert(command, running);
            }
            Err(e) => w.push(Event::CommandEnded {
                command,
                outcome: Err(e.to_string()),
                status: None,
                took: Duration::ZERO,
            }),
        }
    }

    /// Logs what command `id` wrote; at the end of its output, stops watching the pipe.
    pub(super) fn output(&mut self, w: &mut Wiring, id: CommandId) {
        let Some(command) = self.running.get_mut(&id) else {
            return;
        };
        if command.drain_output(MAX_READS_PER_WAKE, &mut w.log_budget) {
            return;
        }
        if let Some(output) = command.output.take() {
            w.unwatch(output.as_fd());
        }
    }

    /// Reaps command `id` if it has exited, and tells the core how it ended.
    pub(super) fn exited(&mut self, w: &mut Wiring, id: CommandId) {
        let Some(command) = self.running.get_mut(&id) else {
            return;
        };
        let result = command.process.try_wait();
        if let Ok(None) = result {
            // Readable but not reapable: a tracer holds the exited command. Look again later
            // rather than spin on a descriptor that stays readable.
            w.unwatch(command.process.poll_fd());
            w.recheck(Token::Command(id), Instant::now() + RECHECK);
            return;
        }
        // Log what it wrote before saying that it ended.
        command.drain_output(MAX_READS_AT_END, &mut w.log_budget);
        let mut command = self.running.remove(&id).expect("present");
        w.unwatch(command.process.poll_fd());
        if let Some(output) = &command.output {
            w.unwatch(output.as_fd());
        }
        let exit = result.as_ref().ok().copied().flatten();
        let status = result
            .map(|e| e.map_or("?".to_string(), |e| e.to_string()))
            .unwrap_or_else(|e| e.to_string());
        if let Some(group) = command.group.take() {
            // Kept until the core says whether it ended in time, was killed, or has SIGKILL to
            // come for what it left.
            let tag = command.tag.clone();
            let cause = (command.line(LineKind::CommandEnd, log::Level::Warn, String::new())).cause;
            let draining = Draining {
                tag,
                cause,
                group,
                tries: 0,
            };
            self.draining.insert(id, draining);
        }
        w.push(Event::CommandEnded {
            command: id,
            outcome: Ok(status),
            status: exit,
            took: command.started.elapsed(),
        });
    }
}

/// The host user `spec` (`user[:group]`) names, from the host's `/etc/passwd` and
/// `/etc/group`; an unknown one is refused (exit 67).
pub(super) fn host_user(spec: &str) -> Result<crate::ids::HostUser, crate::error::Error> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    crate::ids::resolve_host_user(spec, &read("/etc/passwd"), &read("/etc/group")).map_err(|why| {
        crate::error::Error::new(crate::error::Kind::NoUser, format!("run_as: {why}"))
    })
}

/// Checks that every host user a probe's commands run as exists: the probe's `run_as` and
/// its verbs' own; an unknown one is refused (exit 67), naming the verb if it is a verb's.
pub(super) fn check_host_users(def: &Definition) -> Result<(), crate::error::Error> {
    for (verb, spec) in def.host_users() {
        host_user(spec).map_err(|e| match verb {
            Some(verb) => {
                crate::error::Error::new(e.kind, format!("verb {}: {}", verb.name(), e.message))
            }
            None => e,
        })?;
    }
    Ok(())
}

/// Refuses a configuration file one of whose probes runs a command as an unknown host
/// user, naming the file and the probe.
pub(super) fn check_run_as(
    path: &std::path::Path,
    probes: &[Definition],
) -> Result<(), crate::error::Error> {
    for def in probes {
        if let Err(e) = check_host_users(def) {
            return Err(crate::error::Error::new(
                crate::error::Kind::Config,
                format!(
                    "config {}: probe '{}' of jail '{}': {}",
                    path.display(),
                    def.title,
                    def.jail,
                    e.message
                ),
            ));
        }
    }
    Ok(())
}

impl<H: Host> Commands<H> {
    /// The core's `Effect::Stop`: SIGTERM (or, with `force`, SIGKILL) to command `id` and
    /// everything it started, or, once it ended, SIGKILL to what it left.
    pub(super) fn stop(&mut self, w: &mut Wiring, id: CommandId, force: bool) {
        let signal = if force {
            rustix::process::Signal::KILL
        } else {
            rustix::process::Signal::TERM
        };
        if let Some(command) = self.running.get_mut(&id) {
            match &command.group {
                Some(group) => {
                    let done = if force {
                        group.kill_all().map(|()| 0)
                    } else {
                        group.signal_all(signal)
                    };
                    if let Err(e) = done {
                        let text = format!(
                            "{}: stopping the command's cgroup {}: {e}",
                            command.tag,
                            group.path().display()
                        );
                        w.log(command.line(LineKind::CommandEnd, log::Level::Error, text));
                    }
                }
                None => command.process.signal(signal),
            }
            return;
        }
        let Some(draining) = self.draining.get_mut(&id) else {
            return;
        };
        if force {
            let left = draining.group.members().map_or(0, |m| m.len());
            if left > 0 {
                let text = format!(
                    "{}: {left} process(es) the command left still running {}s after SIGTERM: SIGKILL",
                    draining.tag,
                    crate::daemon::core::KILL_GRACE.as_secs()
                );
                w.log(draining.line(log::Level::Warn, text));
            }
            if let Err(e) = draining.group.kill_all() {
                let text = format!(
                    "{}: killing what is left in {}: {e}",
                    draining.tag,
                    draining.group.path().display()
                );
                w.log(draining.line(log::Level::Error, text));
            }
            self.drain(w, id);
        } else if let Err(e) = draining.group.signal_all(signal) {
            let text = format!("{}: {e}", draining.tag);
            w.log(draining.line(log::Level::Error, text));
        }
    }

    /// The core's `Effect::Clear`: the cgroup of command `id`, which is over, goes; after
    /// SIGKILL once empty, else now, or it is left alone with what it holds (logged).
    pub(super) fn clear(&mut self, w: &mut Wiring, id: CommandId, killed: bool) {
        if killed {
            return self.drain(w, id);
        }
        let Some(draining) = self.draining.remove(&id) else {
            return;
        };
        if let Err(e) = draining.group.remove() {
            // Ended in time: what it left running is left alone, with its cgroup.
            let left = draining.group.members().map_or(0, |m| m.len());
            let text = format!(
                "{}: the command ended in time but left {left} process(es) running in {} ({e}); left alone",
                draining.tag,
                draining.group.path().display()
            );
            w.log(draining.line(log::Level::Warn, text));
        }
    }

    /// Removes the cgroup of a command that was killed once it is empty; looked at again a
    /// little later while it is not, `DRAIN_TRIES` times at most.
    pub(super) fn drain(&mut self, w: &mut Wiring, id: CommandId) {
        let Some(draining) = self.draining.get_mut(&id) else {
            return;
        };
        match draining.group.remove() {
            Ok(()) => {
                self.draining.remove(&id);
            }
            Err(_) if draining.tries < DRAIN_TRIES => {
                draining.tries += 1;
                w.recheck(Token::Drain(id), Instant::now() + DRAIN_RECHECK);
            }
            Err(e) => {
                let text = format!(
                    "{}: the cgroup {} still holds processes after SIGKILL ({e}); left behind",
                    draining.tag,
                    draining.group.path().display()
                );
                w.log(draining.line(log::Level::Error, text));
                self.draining.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! How the shell carries out the core's stop of a command at its timeout, on the fake host:
    //! the core decides when (its time is passed in), the shell signals the command's cgroup
    //! and removes it once empty.
    use super::super::core::{Core, Effect, KILL_GRACE, Limits};
    use super::super::host::fake::{Fake, found, wiring};
    use super::*;
    use crate::definition::Extras;
    use crate::proto::{Origin, Respawn};
    use crate::sys::Exit;
    use rustix::process::Signal;

    struct Rig {
        core: Core,
        w: Wiring,
        fake: Fake,
        commands: Commands<Fake>,
        start: Instant,
    }

    impl Rig {
        /// Probe 1, `-r` with a timeout of 30 s, fired at `start`: its command 1 runs.
        fn fired() -> Rig {
            let mut rig = Rig {
                core: Core::new(Limits::default()),
                w: wiring(),
                fake: Fake::default(),
                commands: Commands::default(),
                start: Instant::now(),
            };
            let def = Definition {
                jail: "web1".into(),
                title: "T".into(),
                command: "sleep 60".into(),
                respawn: Respawn::AfterCommand,
                extras: Extras {
                    timeout: Some(Duration::from_secs(30)),
                    ..Extras::default()
                }
                .boxed(),
                ..Definition::default()
            };
            let origin = Origin::Config;
            rig.send(Event::Declare { def, origin }, 0.0);
            rig.send(found("web1", 100), 0.0);
            let results = vec![(1, Ok((500, (0, 0))))];
            rig.send(
                Event::Placed {
                    placement: 1,
                    results,
                },
                0.0,
            );
            let exit = Exit::Code(crate::magic::MAGIC_EXIT as i32);
            rig.send(Event::ProbeExited { probe: 1, exit }, 0.0);
            let calls = rig.fake.take_calls();
            assert!(calls[0].starts_with("create jaildaemon-"), "{calls:?}");
            assert!(calls[1].ends_with("sleep 60"), "{calls:?}");
            rig
        }

        /// Hands `event` to the core at `secs` after the start, and carries out what it asks
        /// of commands, then the events that come of that.
        fn send(&mut self, event: Event, secs: f64) {
            self.w.push(event);
            let now = self.start + Duration::from_secs_f64(secs);
            while let Some(event) = self.w.events.pop_front() {
                for effect in self.core.handle(event, now) {
                    let w = &mut self.w;
                    match effect {
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
                                container: None,
                                pod: pod.as_ref(),
                                announce,
                            };
                            (self.commands).run(w, &mut self.fake, what)
                        }
                        Effect::Stop { command, force } => self.commands.stop(w, command, force),
                        Effect::Clear { command, killed } => {
                            self.commands.clear(w, command, killed)
                        }
                        _ => {}
                    }
                }
            }
        }

        /// What the shell asked of the host at `secs`, when time alone passed.
        fn at(&mut self, secs: f64) -> Vec<String> {
            self.send(Event::Tick, secs);
            self.fake.take_calls()
        }

        /// The command's shell ends so at `secs`: reaped and told to the core.
        fn shell_ends(&mut self, exit: Exit, secs: f64) -> Vec<String> {
            self.fake.children[0].end(exit);
            self.commands.exited(&mut self.w, 1);
            let event = self.w.events.pop_front().expect("its end");
            assert!(matches!(event, Event::CommandEnded { command: 1, .. }));
            self.send(event, secs);
            self.fake.take_calls()
        }
    }

    fn group() -> String {
        format!("jaildaemon-{}-command-1", std::process::id())
    }

    #[test]
    fn a_command_at_its_timeout_gets_sigterm_then_sigkill_five_seconds_later() {
        let mut rig = Rig::fired();
        let grace = KILL_GRACE.as_secs_f64();
        assert_eq!(rig.at(29.9), Vec::<String>::new());
        assert_eq!(
            rig.at(30.0),
            [format!("signal {} {:?}", group(), Signal::TERM)]
        );
        assert_eq!(rig.at(30.0 + grace - 0.1), Vec::<String>::new());
        assert_eq!(rig.at(30.0 + grace), [format!("kill {}", group())]);
        // Killed: its cgroup goes once empty, looked at again until then.
        assert_eq!(rig.shell_ends(Exit::Signal(9), 35.1), Vec::<String>::new());
        assert!(rig.w.rechecks.contains_key(&Token::Drain(1)));
        rig.fake.groups[0].borrow_mut().clear();
        rig.commands.drain(&mut rig.w, 1);
        assert_eq!(rig.fake.take_calls(), [format!("remove {}", group())]);
        assert_eq!(rig.at(3600.0), Vec::<String>::new());
    }

    #[test]
    fn a_command_whose_shell_ends_at_sigterm_still_has_what_it_left_killed_after_the_grace() {
        let mut rig = Rig::fired();
        let grace = KILL_GRACE.as_secs_f64();
        assert_eq!(
            rig.at(30.0),
            [format!("signal {} {:?}", group(), Signal::TERM)]
        );
        // Its shell ends; a process it started stays in its cgroup.
        rig.fake.groups[0].borrow_mut().retain(|pid| *pid != 1000);
        rig.fake.groups[0].borrow_mut().push(4242);
        assert_eq!(rig.shell_ends(Exit::Signal(15), 31.0), Vec::<String>::new());
        assert_eq!(rig.at(30.0 + grace - 0.1), Vec::<String>::new());
        assert_eq!(rig.at(30.0 + grace), [format!("kill {}", group())]);
        rig.fake.groups[0].borrow_mut().clear();
        rig.commands.drain(&mut rig.w, 1);
        assert_eq!(rig.fake.take_calls(), [format!("remove {}", group())]);
    }

    #[test]
    fn a_command_that_ends_in_time_is_never_signalled_and_its_cgroup_goes_at_once() {
        let mut rig = Rig::fired();
        rig.fake.groups[0].borrow_mut().clear();
        assert_eq!(
            rig.shell_ends(Exit::Code(0), 10.0),
            [format!("remove {}", group())]
        );
        assert_eq!(rig.at(30.0), Vec::<String>::new());
        assert_eq!(rig.at(3600.0), Vec::<String>::new());
    }
}
