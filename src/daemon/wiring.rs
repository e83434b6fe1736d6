//! What every owner of the shell shares with the loop that runs them: the event queue it
//! watches descriptors with, the events it hands to the core, the log with its budgets, the
//! looks taken again later, and serial numbers. An owner gets it as an argument; it never
//! reaches the `Daemon` that composes them.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use super::core::{ClientId, CommandId, Event, JailId, PlacementId, ProbeId};
use super::logbudget::{LogBudget, LogLine};
use crate::sys::Poller;

/// How soon a child that exited but could not be reaped yet (a tracer holds it) is looked at
/// again.
pub(super) const RECHECK: Duration = Duration::from_millis(100);

/// What a ready descriptor stands for; the poller carries it as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Token {
    Listener,
    /// The signalfd; as a recheck, children's stops and continuations still to be asked for.
    Signals,
    Client(ClientId),
    Probe(ProbeId),
    Jail(JailId),
    Command(CommandId),
    Output(CommandId),
    /// A killed child, to be reaped once gone.
    Reap(u64),
    Placement(PlacementId),
    Lookup(u64),
    /// The cgroup of a killed command, removed once empty (a recheck only, never watched).
    Drain(CommandId),
    Survey(u64),
    /// A manager's event stream, by its place in `fleets::STREAM_MANAGERS`.
    Stream(u64),
}

impl Token {
    const ID_BITS: u32 = 56;

    pub(super) fn encode(self) -> u64 {
        let (kind, id) = match self {
            Token::Listener => (1, 0),
            Token::Signals => (2, 0),
            Token::Client(id) => (3, id),
            Token::Probe(id) => (4, id),
            Token::Jail(id) => (5, u64::from(id as u32)),
            Token::Command(id) => (6, id),
            Token::Output(id) => (7, id),
            Token::Reap(id) => (8, id),
            Token::Placement(id) => (9, id),
            Token::Lookup(id) => (10, id),
            Token::Drain(id) => (11, id),
            Token::Survey(id) => (12, id),
            Token::Stream(id) => (13, id),
        };
        (kind << Self::ID_BITS) | (id & ((1 << Self::ID_BITS) - 1))
    }

    pub(super) fn decode(value: u64) -> Option<Token> {
        let id = value & ((1 << Self::ID_BITS) - 1);
        Some(match value >> Self::ID_BITS {
            1 => Token::Listener,
            2 => Token::Signals,
            3 => Token::Client(id),
            4 => Token::Probe(id),
            5 => Token::Jail(id as u32 as i32),
            6 => Token::Command(id),
            7 => Token::Output(id),
            8 => Token::Reap(id),
            9 => Token::Placement(id),
            10 => Token::Lookup(id),
            11 => Token::Drain(id),
            12 => Token::Survey(id),
            13 => Token::Stream(id),
            _ => return None,
        })
    }
}

pub(super) struct Wiring {
    pub(super) poller: Poller,
    /// Events for the core, in order.
    pub(super) events: VecDeque<Event>,
    /// What is left of the log lines jails and clients may cause, per window.
    pub(super) log_budget: LogBudget,
    /// What is looked at again at the time given instead of spun on: children whose pidfd said
    /// "exited" but that could not be reaped yet (a tracer holds them), cgroups not empty yet.
    pub(super) rechecks: BTreeMap<Token, Instant>,
    next_serial: u64,
}

impl Wiring {
    pub(super) fn new(poller: Poller) -> Wiring {
        Wiring {
            poller,
            events: VecDeque::new(),
            log_budget: LogBudget::default(),
            rechecks: BTreeMap::new(),
            next_serial: 1,
        }
    }

    /// Has the poller report `fd` under `token`. A failure (the kernel out of memory) is
    /// logged: the descriptor then goes unwatched, which the log says.
    pub(super) fn listen(&self, fd: BorrowedFd<'_>, token: Token) {
        if let Err(e) = self.poller.add(fd, token.encode()) {
            log::error!("cannot watch {token:?}: {e}");
        }
    }

    pub(super) fn listen_hangup(&self, fd: BorrowedFd<'_>, token: Token) {
        if let Err(e) = self.poller.add_hangup(fd, token.encode()) {
            log::error!("cannot watch {token:?}: {e}");
        }
    }

    pub(super) fn unwatch(&self, fd: BorrowedFd<'_>) {
        self.poller.remove(fd);
    }

    /// `token` is looked at again at `at`.
    pub(super) fn recheck(&mut self, token: Token, at: Instant) {
        self.rechecks.insert(token, at);
    }

    /// `token` is looked at again by `at`: at `at`, or at the earlier time already asked.
    pub(super) fn recheck_by(&mut self, token: Token, at: Instant) {
        let when = self.rechecks.entry(token).or_insert(at);
        *when = (*when).min(at);
    }

    pub(super) fn push(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Writes `line` to the log, unless its cause has used up its budget (then it is counted
    /// for the summary at the end of its window).
    pub(super) fn log(&mut self, line: LogLine) {
        if self.log_budget.admit(&line, Instant::now()) {
            log::log!(line.level, "{}", line.text);
        }
    }

    pub(super) fn serial(&mut self) -> u64 {
        let serial = self.next_serial;
        self.next_serial += 1;
        serial
    }
}
