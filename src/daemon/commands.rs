//! Host commands: started when a probe fires, with a fixed environment, their output logged
//! line by line, their end logged with status and duration.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::core::{CommandId, Event, JailId, ProbeId};
use super::logbudget::{Cause, LineKind, LogBudget, LogLine};
use super::{Daemon, RECHECK, Token};
use crate::definition::Definition;
use crate::invocation::Invocation;
use crate::sys::{self, COMMAND_PATH, CommandGroup, Process, Spawner};

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

pub(super) struct RunningCommand {
    /// How log lines name the probe: id, jail, title.
    pub tag: String,
    /// The probe, and its jail as named: whose budget its output lines take (`logbudget`).
    pub probe: ProbeId,
    pub jail: String,
    pub process: Process,
    pub started: Instant,
    /// Read end of the pipe that carries the command's stdout and stderr into our log.
    pub output: Option<OwnedFd>,
    /// An incomplete last line of output.
    partial: Vec<u8>,
    /// Its cgroup of its own, when its probe has a timeout (none if it could not be made).
    pub group: Option<CommandGroup>,
    /// It had SIGTERM at its timeout: what it leaves gets SIGKILL when the grace is over.
    pub stopping: bool,
    /// And SIGKILL, when the grace was over.
    pub killed: bool,
}

/// The cgroup of a command that ended while being stopped: SIGKILL still comes for what it
/// left, then the cgroup goes once empty.
pub(super) struct Draining {
    pub tag: String,
    pub group: CommandGroup,
    pub killed: bool,
    pub tries: u32,
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
}

impl RunningCommand {
    /// Runs `def`'s command on the host with `/bin/sh -c`, with a fixed environment, stdin
    /// from /dev/null, and stdout and stderr into a pipe whose lines the daemon logs.
    pub fn spawn(
        spawner: &mut Spawner,
        what: Spawning<'_>,
        now: Instant,
    ) -> io::Result<RunningCommand> {
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
            CommandGroup::create(&name)
                .inspect_err(|e| {
                    log::error!(
                        "{tag}: no cgroup of its own for the command ({e}): at its timeout only its shell is stopped"
                    )
                })
                .ok()
        });
        let user = match &def.run_as {
            Some(spec) => Some(host_user(spec).map_err(|e| io::Error::other(e.message))?),
            None => None,
        };
        let invocation = Invocation::of(&def.command);
        let spawned = sys::spawn_command(
            spawner,
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
            stopping: false,
            killed: false,
        })
    }

    /// Logs what the command wrote, line by line, within its probe's and jail's budget (a
    /// jail that fires a probe in a loop repeats its output); returns false at the end of its
    /// output.
    pub fn drain_output(&mut self, max_reads: usize, budget: &mut LogBudget) -> bool {
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
    pub fn line(&self, kind: LineKind, level: log::Level, text: String) -> LogLine {
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

impl Daemon {
    /// Logs what command `id` wrote; at the end of its output, stops watching the pipe.
    pub(super) fn command_output(&mut self, id: CommandId) {
        let Some(command) = self.commands.get_mut(&id) else {
            return;
        };
        if command.drain_output(MAX_READS_PER_WAKE, &mut self.log_budget) {
            return;
        }
        if let Some(output) = command.output.take() {
            self.poller.remove(output.as_fd());
        }
    }

    /// Reaps command `id` if it has exited, and tells the core how it ended.
    pub(super) fn command_exited(&mut self, id: CommandId) {
        let Some(command) = self.commands.get_mut(&id) else {
            return;
        };
        let result = command.process.try_wait();
        if let Ok(None) = result {
            // Readable but not reapable: a tracer holds the exited command. Look again later
            // rather than spin on a descriptor that stays readable.
            self.poller.remove(command.process.poll_fd());
            self.rechecks
                .insert(Token::Command(id), Instant::now() + RECHECK);
            return;
        }
        // Log what it wrote before saying that it ended.
        command.drain_output(MAX_READS_AT_END, &mut self.log_budget);
        let mut command = self.commands.remove(&id).expect("present");
        self.poller.remove(command.process.poll_fd());
        if let Some(output) = &command.output {
            self.poller.remove(output.as_fd());
        }
        let exit = result.as_ref().ok().copied().flatten();
        let status = result
            .map(|e| e.map_or("?".to_string(), |e| e.to_string()))
            .unwrap_or_else(|e| e.to_string());
        if let Some(group) = command.group.take() {
            if command.stopping {
                // SIGKILL is still to come for whatever it left behind.
                self.draining.insert(
                    id,
                    Draining {
                        tag: command.tag.clone(),
                        group,
                        killed: command.killed,
                        tries: 0,
                    },
                );
                self.drain(id);
            } else if let Err(e) = group.remove() {
                // Ended in time: what it left running is left alone, with its cgroup.
                let left = group.members().map_or(0, |m| m.len());
                let text = format!(
                    "{}: the command ended in time but left {left} process(es) running in {} ({e}); left alone",
                    command.tag,
                    group.path().display()
                );
                self.log(command.line(LineKind::CommandEnd, log::Level::Warn, text));
            }
        }
        self.events.push_back(Event::CommandEnded {
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

impl Daemon {
    /// The core's `Effect::Stop`: SIGTERM (or, with `force`, SIGKILL) to command `id` and
    /// everything it started, or to what it left once it ended.
    pub(super) fn stop_command(&mut self, id: CommandId, force: bool) {
        let signal = if force {
            rustix::process::Signal::KILL
        } else {
            rustix::process::Signal::TERM
        };
        if let Some(command) = self.commands.get_mut(&id) {
            command.stopping = true;
            command.killed |= force;
            match &command.group {
                Some(group) => {
                    let done = if force {
                        group.kill_all().map(|()| 0)
                    } else {
                        group.signal_all(signal)
                    };
                    if let Err(e) = done {
                        log::error!(
                            "{}: stopping the command's cgroup {}: {e}",
                            command.tag,
                            group.path().display()
                        );
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
                log::warn!(
                    "{}: {left} process(es) the command left still running {}s after SIGTERM: SIGKILL",
                    draining.tag,
                    crate::daemon::core::KILL_GRACE.as_secs()
                );
            }
            if let Err(e) = draining.group.kill_all() {
                log::error!(
                    "{}: killing what is left in {}: {e}",
                    draining.tag,
                    draining.group.path().display()
                );
            }
            draining.killed = true;
            self.drain(id);
        } else if let Err(e) = draining.group.signal_all(signal) {
            log::error!("{}: {e}", draining.tag);
        }
    }

    /// Removes the cgroup of a command that was killed once it is empty; looked at again a
    /// little later while it is not, `DRAIN_TRIES` times at most.
    pub(super) fn drain(&mut self, id: CommandId) {
        let Some(draining) = self.draining.get_mut(&id) else {
            return;
        };
        if !draining.killed {
            return;
        }
        match draining.group.remove() {
            Ok(()) => {
                self.draining.remove(&id);
            }
            Err(_) if draining.tries < DRAIN_TRIES => {
                draining.tries += 1;
                self.rechecks
                    .insert(Token::Drain(id), Instant::now() + DRAIN_RECHECK);
            }
            Err(e) => {
                log::error!(
                    "{}: the cgroup {} still holds processes after SIGKILL ({e}); left behind",
                    draining.tag,
                    draining.group.path().display()
                );
                self.draining.remove(&id);
            }
        }
    }
}
