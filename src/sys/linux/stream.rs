//! A container manager's event stream (`docker events`, `podman events`, `ctr events`): a
//! long-lived child of the daemon whose stdout the event queue watches, read in bounded bites.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::lookup::spawn_tool;
use super::process::Process;
use crate::selector::MAX_EVENT_LINE;

/// Reads (4 KiB each) per wake-up: a stream that floods cannot hold the loop.
const MAX_READS_PER_WAKE: usize = 16;

pub struct EventStream {
    process: Process,
    stdout: OwnedFd,
    /// An incomplete last line; `dropping`: the line now read is over-long and skipped.
    partial: Vec<u8>,
    dropping: bool,
}

impl EventStream {
    /// Starts `argv` as lookups start their tools (`spawn_tool`), stderr on /dev/null.
    pub fn start(argv: &[String]) -> io::Result<EventStream> {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let (process, [stdout, _]) = spawn_tool(&argv[0], &args, false)?;
        let stdout = stdout.ok_or_else(|| io::Error::other("no pipe for its output"))?;
        Ok(EventStream {
            process,
            stdout,
            partial: Vec::new(),
            dropping: false,
        })
    }

    /// Readable when the stream says something, or ends.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        self.stdout.as_fd()
    }

    /// The complete lines it wrote, at most `MAX_READS_PER_WAKE` reads' worth, and whether it
    /// is still open. A line longer than `MAX_EVENT_LINE` is dropped whole.
    pub fn read_lines(&mut self) -> (Vec<String>, bool) {
        let mut lines = Vec::new();
        let mut chunk = [0u8; 4096];
        for _ in 0..MAX_READS_PER_WAKE {
            let n = match rustix::io::read(&self.stdout, &mut chunk) {
                Ok(0) => return (lines, false),
                Ok(n) => n,
                Err(rustix::io::Errno::AGAIN) => return (lines, true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return (lines, false),
            };
            for &b in &chunk[..n] {
                if b == b'\n' {
                    if !self.dropping {
                        lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                    }
                    self.partial.clear();
                    self.dropping = false;
                } else if self.partial.len() >= MAX_EVENT_LINE {
                    self.dropping = true;
                    self.partial.clear();
                } else if !self.dropping {
                    self.partial.push(b);
                }
            }
        }
        (lines, true)
    }

    /// Ends it: killed, and handed back to be reaped.
    pub fn stop(self) -> Process {
        self.process.kill();
        self.process
    }
}
