//! Host commands: started when a probe fires, with a fixed environment, their output logged
//! line by line, their end logged with status and duration.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::core::{CommandId, Event, JailId, ProbeId};
use super::{Daemon, RECHECK, Token};
use crate::definition::Definition;
use crate::sys::{self, COMMAND_PATH, Process, Spawner};

/// Longest line of command output logged as one message; longer lines are split.
const MAX_OUTPUT_LINE: usize = 1024;
/// Reads of a command's output (4 KiB each) per wake-up of the daemon: a command that writes
/// without pause must not hold the loop; the event queue reports the pipe again.
const MAX_READS_PER_WAKE: usize = 16;
/// Reads of what is left once a command has ended (1 MiB); a process it left behind that
/// still writes is not waited for.
const MAX_READS_AT_END: usize = 256;

pub(super) struct RunningCommand {
    /// How log lines name the probe: id, jail, title.
    pub tag: String,
    pub process: Process,
    pub started: Instant,
    /// Read end of the pipe that carries the command's stdout and stderr into our log.
    pub output: Option<OwnedFd>,
    /// An incomplete last line of output.
    partial: Vec<u8>,
}

impl RunningCommand {
    /// Runs `def`'s command on the host with `/bin/sh -c`, with a fixed environment, stdin
    /// from /dev/null, and stdout and stderr into a pipe whose lines the daemon logs.
    /// `container` is the manager and container name the jail was found by, if named so: with
    /// them and the jail's PID a command can enter the jail without looking it up again.
    pub fn spawn(
        spawner: &mut Spawner,
        probe: ProbeId,
        def: &Definition,
        jail: JailId,
        container: Option<(&str, &str)>,
        now: Instant,
    ) -> io::Result<RunningCommand> {
        let id = probe.to_string();
        let jail_pid = jail.to_string();
        let mut env = vec![
            ("PATH", COMMAND_PATH),
            ("JAILDAEMON_JAIL", def.jail.as_str()),
            ("JAILDAEMON_JAIL_PID", jail_pid.as_str()),
            ("JAILDAEMON_TITLE", def.title.as_str()),
            ("JAILDAEMON_PROBE", id.as_str()),
        ];
        if let Some((manager, name)) = container {
            env.push(("JAILDAEMON_MANAGER", manager));
            env.push(("JAILDAEMON_CONTAINER", name));
        }
        let (process, output) = sys::spawn_command(spawner, &def.command, &env)?;
        Ok(RunningCommand {
            tag: format!("probe {probe} (jail {}, '{}')", def.jail, def.title),
            process,
            started: now,
            output: Some(output),
            partial: Vec::new(),
        })
    }

    /// Logs what the command wrote, line by line; returns false at the end of its output.
    pub fn drain_output(&mut self, max_reads: usize) -> bool {
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
            log::info!("{} command: {}", self.tag, String::from_utf8_lossy(&line));
        }
        open
    }
}

impl Daemon {
    /// Logs what command `id` wrote; at the end of its output, stops watching the pipe.
    pub(super) fn command_output(&mut self, id: CommandId) {
        let Some(command) = self.commands.get_mut(&id) else {
            return;
        };
        if command.drain_output(MAX_READS_PER_WAKE) {
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
        command.drain_output(MAX_READS_AT_END);
        let command = self.commands.remove(&id).expect("present");
        self.poller.remove(command.process.poll_fd());
        if let Some(output) = &command.output {
            self.poller.remove(output.as_fd());
        }
        let status = result
            .map(|e| e.map_or("?".to_string(), |e| e.to_string()))
            .unwrap_or_else(|e| e.to_string());
        self.events.push_back(Event::CommandEnded {
            command: id,
            outcome: Ok(status),
            took: command.started.elapsed(),
        });
    }
}
