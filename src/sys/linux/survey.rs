//! A selector's members listed without waiting (`selector.rs` says what to run and reads it):
//! each round's tools run at once as children of the daemon, watched by its event queue
//! through one epoll descriptor of the listing's own, under one deadline per round.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use super::lookup::RawTool;
use super::poller::Poller;
use super::process::Process;
use crate::containers::TOOL_DEADLINE;
use crate::error::Error;
use crate::selector::{Member, Output, Selector, Step};

/// Tools of one round at most: a pod selector asks about each running member at once.
const MAX_ROUND: usize = 64;

/// One selector's listing in flight.
pub struct Survey {
    selector: Selector,
    round: usize,
    tools: Vec<Result<RawTool, Output>>,
    outputs: Vec<Option<Output>>,
    /// Members read in earlier batches of a round bigger than `MAX_ROUND`.
    pending: Vec<Vec<String>>,
    done_outputs: Vec<Output>,
    watch: Poller,
    deadline: Instant,
    leftovers: Vec<Process>,
}

impl Survey {
    pub fn start(selector: Selector, now: Instant) -> Result<Survey, Error> {
        let watch = Poller::new().map_err(|e| Error::os("creating a listing's event queue", e))?;
        let first = selector.start();
        let mut survey = Survey {
            selector,
            round: 0,
            tools: Vec::new(),
            outputs: Vec::new(),
            pending: Vec::new(),
            done_outputs: Vec::new(),
            watch,
            deadline: now,
            leftovers: Vec::new(),
        };
        survey.run(first, now);
        Ok(survey)
    }

    /// Starts a round (in batches of `MAX_ROUND`).
    fn run(&mut self, mut round: Vec<Vec<String>>, now: Instant) {
        let rest = round.split_off(round.len().min(MAX_ROUND));
        self.pending = rest;
        self.tools = round
            .iter()
            .map(|argv| {
                let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
                RawTool::start(&argv[0], &args, &self.watch).map_err(|e| {
                    Err(if e.kind() == std::io::ErrorKind::NotFound {
                        format!("{} is not installed", argv[0])
                    } else {
                        format!("{}: {e}", argv[0])
                    })
                })
            })
            .collect();
        self.outputs = self
            .tools
            .iter()
            .map(|t| t.as_ref().err().cloned())
            .collect();
        self.deadline = now + TOOL_DEADLINE;
    }

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

    /// Gives up (at shutdown): its tools still running are killed, and handed back to be
    /// reaped.
    pub fn abandon(mut self) -> Vec<Process> {
        for tool in self.tools.drain(..).flatten() {
            self.leftovers.push(tool.kill());
        }
        self.leftovers
    }

    /// Moves the listing on with what its tools said by `now`; the members once known.
    pub fn step(&mut self, now: Instant) -> Option<Result<Vec<Member>, String>> {
        let late = now >= self.deadline;
        for (tool, output) in self.tools.iter_mut().zip(self.outputs.iter_mut()) {
            if output.is_some() {
                continue;
            }
            let Ok(running) = tool else { continue };
            if let Some(said) = running.step(&self.watch) {
                *output = Some(said);
            }
        }
        if late {
            for (tool, output) in self.tools.iter_mut().zip(self.outputs.iter_mut()) {
                if output.is_none() {
                    *output = Some(Err(format!(
                        "no answer within {}s",
                        TOOL_DEADLINE.as_secs()
                    )));
                    let killed = std::mem::replace(tool, Err(Err(String::new())));
                    if let Ok(running) = killed {
                        self.leftovers.push(running.kill());
                    }
                }
            }
        }
        if self.outputs.iter().any(Option::is_none) {
            return None;
        }
        self.done_outputs
            .extend(self.outputs.drain(..).map(|o| o.expect("all done")));
        self.tools.clear();
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.run(rest, now);
            return self.step(now);
        }
        let outputs = std::mem::take(&mut self.done_outputs);
        match self.selector.step(self.round, &outputs) {
            Step::Done(result) => Some(result),
            Step::Run(next) => {
                self.round += 1;
                self.run(next, now);
                self.step(now)
            }
        }
    }
}
