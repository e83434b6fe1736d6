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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that floods is read at most 64 KiB a call, and an over-long line is dropped
    /// whole, the lines around it kept.
    #[test]
    fn a_flooding_stream_is_read_in_bounded_bites_and_an_over_long_line_dropped() {
        let script = "head -c 100000 /dev/zero | tr '\\0' a; echo; echo second; \
                      yes line | head -n 100000";
        let argv: Vec<String> = ["sh", "-c", script].map(String::from).to_vec();
        let mut stream = EventStream::start(&argv).unwrap();
        let mut all = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (lines, open) = stream.read_lines();
            let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
            // A call's lines: what it read, and the start of a line a call before it read.
            let most = MAX_READS_PER_WAKE * 4096 + MAX_EVENT_LINE;
            assert!(bytes <= most, "{bytes} bytes in one call");
            all.extend(lines);
            if !open {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the stream did not end"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(all.first().map(String::as_str), Some("second"));
        assert_eq!(all.len(), 100_001);
        assert!(all[1..].iter().all(|l| l == "line"));
        let _ = stream.stop().try_wait();
    }
}
