//! How many log lines a jail (or a crowd of clients) may cause: per probe and kind of line, and
//! per jail and kind, a budget of lines per window; beyond it lines are counted, not written,
//! and one summary line per window says how many were left out.
//!
//! Pure: the time comes in as `Instant`s, so the tests run on a made-up clock. The shell asks
//! `admit` before it writes a line, and at `next_deadline` takes the summaries `due` gives,
//! so a summary comes at its window's end even when the flood has stopped by then.
//!
//! A window opens with the first line of its key and lasts `WINDOW`; a key whose window
//! passed without a line left out is forgotten without a word. A flood thus writes, per
//! window and key, its budget of lines and one summary, whatever its rate; a line now and
//! then (a human firing once a minute) is always written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ids::ProbeId;

/// The window of every budget.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Lines of one kind per probe and window, and per jail and window (all its probes together).
pub const PROBE_LINES: u64 = 10;
pub const JAIL_LINES: u64 = 100;
/// Lines of a fired command's output per probe and window, and per jail and window.
pub const PROBE_OUTPUT_LINES: u64 = 100;
pub const JAIL_OUTPUT_LINES: u64 = 500;
/// Lines about clients dropped or turned away, of each kind, per window, for all clients.
pub const CLIENT_LINES: u64 = 5;

/// What a line is about, for the lines a jail (or a client) can repeat at will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineKind {
    /// An armed probe stopped by a signal.
    Stop,
    /// A stopped probe continued.
    Continue,
    /// A probe fired (its verb, a queued trigger, a watchdog's silence).
    Trigger,
    /// A watchdog probe fed by a signal.
    Feed,
    /// A probe back in its jail after a fire, a feed, a failure, or its jail's restart.
    Rearm,
    /// A fired probe held back: its cooldown, or its commands at their limit.
    Held,
    /// A probe that ended without firing, placed again later.
    Unfired,
    /// A command started for a fire (or for triggers queued while its last one ran).
    CommandStart,
    /// A line a fired command wrote.
    Output,
    /// A command's end, or what it left behind.
    CommandEnd,
    /// SIGHUPs a probe ignored, sent from outside its jail.
    Ignored,
    /// A client dropped: at its deadline, or as it did not take its answer.
    ClientDropped,
    /// A client turned away: at its user's limit of connections, or with every slot taken.
    ClientRefused,
    /// A client's request that could not be read.
    ClientBad,
}

impl LineKind {
    /// The lines as a summary counts them.
    fn plural(self) -> &'static str {
        match self {
            LineKind::Stop => "stops",
            LineKind::Continue => "continuations",
            LineKind::Trigger => "triggers",
            LineKind::Feed => "watchdog feeds",
            LineKind::Rearm => "re-arms",
            LineKind::Held => "cooldowns and holds at the command limit",
            LineKind::Unfired => "ends without firing",
            LineKind::CommandStart => "command starts",
            LineKind::Output => "lines of command output",
            LineKind::CommandEnd => "command ends",
            LineKind::Ignored => "reports of SIGHUPs from outside the jail",
            LineKind::ClientDropped => "clients dropped",
            LineKind::ClientRefused => "clients turned away",
            LineKind::ClientBad => "bad requests",
        }
    }

    /// Lines per window for one probe, and for one jail.
    fn budgets(self) -> (u64, u64) {
        match self {
            LineKind::Output => (PROBE_OUTPUT_LINES, JAIL_OUTPUT_LINES),
            LineKind::ClientDropped | LineKind::ClientRefused | LineKind::ClientBad => {
                (CLIENT_LINES, CLIENT_LINES)
            }
            _ => (PROBE_LINES, JAIL_LINES),
        }
    }
}

/// What caused a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The administrator (requests, reloads, signals) or the daemon itself: never limited.
    Host,
    /// A jail, through one of its probes: limited per probe and per jail.
    Probe {
        probe: ProbeId,
        /// How lines name the probe: `probe 3 (jail web1, 'T')`.
        tag: String,
        /// The jail as named.
        jail: String,
        kind: LineKind,
    },
    /// The daemon's clients, as a crowd: limited per kind for all of them.
    Clients(LineKind),
}

/// One line for the log, with what caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: log::Level,
    pub text: String,
    pub cause: Cause,
}

impl LogLine {
    /// A line of the host's own doing.
    pub fn host(level: log::Level, text: impl Into<String>) -> LogLine {
        LogLine {
            level,
            text: text.into(),
            cause: Cause::Host,
        }
    }
}

/// What a budget is kept for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Probe(ProbeId, LineKind),
    Jail(String, LineKind),
    Clients(LineKind),
}

#[derive(Debug)]
struct Window {
    ends: Instant,
    written: u64,
    left_out: u64,
    /// How the summary starts (`probe 3 (jail web1, 'T'): `), and its level: the first line's.
    prefix: String,
    level: log::Level,
}

/// The budgets of every key with a window open.
#[derive(Debug, Default)]
pub struct LogBudget {
    windows: BTreeMap<Key, Window>,
    /// When each window ends, in order.
    ends: BTreeSet<(Instant, Key)>,
    /// The ends of the windows that left lines out: their summaries are due then.
    summaries: BTreeSet<(Instant, Key)>,
    /// Summaries of windows closed by `admit`, for the next `due`, and when the first of
    /// them was due.
    closed: Vec<(log::Level, String)>,
    closed_at: Option<Instant>,
}

impl LogBudget {
    /// Whether `line` may be written at `now`; if not, it is counted for its summary.
    pub fn admit(&mut self, line: &LogLine, now: Instant) -> bool {
        let mut closed = std::mem::take(&mut self.closed);
        if let Some(at) = self.expire(now, &mut closed) {
            self.closed_at.get_or_insert(at);
        }
        self.closed = closed;
        match &line.cause {
            Cause::Host => true,
            Cause::Clients(kind) => {
                let key = Key::Clients(*kind);
                self.take_one(key, String::new(), line.level, now, kind.budgets().0)
            }
            Cause::Probe {
                probe,
                tag,
                jail,
                kind,
            } => {
                let (probe_budget, jail_budget) = kind.budgets();
                let probe_key = Key::Probe(*probe, *kind);
                // The probe's own budget first: a probe over it costs its jail's budget
                // nothing, so one flooding probe does not silence the jail's others.
                let window = self.open(probe_key.clone(), format!("{tag}: "), line.level, now);
                if window.written >= probe_budget {
                    self.leave_out(probe_key);
                    return false;
                }
                let jail_key = Key::Jail(jail.clone(), *kind);
                let prefix = format!("jail {jail}: ");
                if !self.take_one(jail_key, prefix, line.level, now, jail_budget) {
                    return false;
                }
                self.windows.get_mut(&probe_key).expect("open").written += 1;
                true
            }
        }
    }

    /// When the next summary is due, for the shell's wait.
    pub fn next_deadline(&self) -> Option<Instant> {
        let open = self.summaries.first().map(|(at, _)| *at);
        self.closed_at.into_iter().chain(open).min()
    }

    /// The summaries of the windows that ended by `now`, with their level.
    pub fn due(&mut self, now: Instant) -> Vec<(log::Level, String)> {
        let mut summaries = std::mem::take(&mut self.closed);
        self.closed_at = None;
        self.expire(now, &mut summaries);
        summaries
    }

    /// Closes the windows that ended by `now`, adding the summaries of those that left lines
    /// out to `summaries`; returns when the first of those was due.
    fn expire(
        &mut self,
        now: Instant,
        summaries: &mut Vec<(log::Level, String)>,
    ) -> Option<Instant> {
        let mut first = None;
        while let Some((at, key)) = self.ends.first().cloned() {
            if at > now {
                break;
            }
            self.ends.remove(&(at, key.clone()));
            self.summaries.remove(&(at, key.clone()));
            let window = self.windows.remove(&key).expect("indexed");
            if window.left_out == 0 {
                continue;
            }
            let (kind, of) = match key {
                Key::Probe(_, kind) | Key::Clients(kind) => (kind, ""),
                Key::Jail(_, kind) => (kind, " of its probes"),
            };
            first.get_or_insert(at);
            summaries.push((
                window.level,
                format!(
                    "{}… and {} more {}{of} in the last {}s (not logged one by one)",
                    window.prefix,
                    window.left_out,
                    kind.plural(),
                    WINDOW.as_secs()
                ),
            ));
        }
        first
    }

    /// The window of `key`, opened at `now` if it has none.
    fn open(&mut self, key: Key, prefix: String, level: log::Level, now: Instant) -> &mut Window {
        let ends = &mut self.ends;
        self.windows.entry(key.clone()).or_insert_with(|| {
            ends.insert((now + WINDOW, key));
            Window {
                ends: now + WINDOW,
                written: 0,
                left_out: 0,
                prefix,
                level,
            }
        })
    }

    /// Takes one line of `key`'s budget, or counts it as left out.
    fn take_one(
        &mut self,
        key: Key,
        prefix: String,
        level: log::Level,
        now: Instant,
        budget: u64,
    ) -> bool {
        let window = self.open(key.clone(), prefix, level, now);
        if window.written < budget {
            window.written += 1;
            return true;
        }
        self.leave_out(key);
        false
    }

    /// Counts a line of `key` (whose window is open) as left out.
    fn leave_out(&mut self, key: Key) {
        let window = self.windows.get_mut(&key).expect("open");
        window.left_out += 1;
        if window.left_out == 1 {
            self.summaries.insert((window.ends, key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(probe: ProbeId, jail: &str, kind: LineKind) -> LogLine {
        LogLine {
            level: log::Level::Warn,
            text: format!("probe {probe} did something"),
            cause: Cause::Probe {
                probe,
                tag: format!("probe {probe} (jail {jail}, 'T')"),
                jail: jail.into(),
                kind,
            },
        }
    }

    /// How many of `n` lines, one every `every`, are written; the clock ends after the last.
    fn written(
        budget: &mut LogBudget,
        clock: &mut Instant,
        n: u64,
        every: Duration,
        l: &LogLine,
    ) -> u64 {
        let mut written = 0;
        for _ in 0..n {
            written += u64::from(budget.admit(l, *clock));
            *clock += every;
        }
        written
    }

    #[test]
    fn a_flood_writes_its_budget_and_one_summary_per_window_with_the_exact_count() {
        let mut budget = LogBudget::default();
        let start = Instant::now();
        let mut clock = start;
        let stop = line(7, "web1", LineKind::Stop);
        // 10,000 stops within one window: the budget is written, the rest counted.
        let every = Duration::from_micros(100);
        assert_eq!(
            written(&mut budget, &mut clock, 10_000, every, &stop),
            PROBE_LINES
        );
        // The summary waits for the window's end, which is the deadline to wake for, even
        // though no line comes any more.
        assert_eq!(budget.next_deadline(), Some(start + WINDOW));
        assert!(
            budget
                .due(start + WINDOW - Duration::from_millis(1))
                .is_empty()
        );
        let expected = vec![(
            log::Level::Warn,
            format!(
                "probe 7 (jail web1, 'T'): … and {} more stops in the last 10s (not logged one by one)",
                10_000 - PROBE_LINES
            ),
        )];
        // A line after the window's end, before the shell took the summary: it opens a new
        // window with its budget again, and the summary is kept, still due at once.
        let late = start + WINDOW + Duration::from_secs(1);
        assert!(budget.admit(&stop, late));
        assert_eq!(budget.next_deadline(), Some(start + WINDOW));
        assert_eq!(budget.due(late), expected);
        assert_eq!(budget.next_deadline(), None);
        clock = late;
        assert_eq!(
            written(&mut budget, &mut clock, 100, every, &stop),
            PROBE_LINES - 1
        );
    }

    #[test]
    fn lines_now_and_then_are_all_written_without_a_summary() {
        let mut budget = LogBudget::default();
        let mut clock = Instant::now();
        // A human firing once a minute for an hour: every line of every kind of a fire.
        for kind in [
            LineKind::Trigger,
            LineKind::CommandStart,
            LineKind::Output,
            LineKind::CommandEnd,
            LineKind::Rearm,
        ] {
            let mut at = clock;
            let l = line(1, "web1", kind);
            assert_eq!(
                written(&mut budget, &mut at, 60, Duration::from_secs(60), &l),
                60
            );
        }
        clock += Duration::from_secs(3600);
        assert!(budget.due(clock).is_empty());
        assert_eq!(budget.next_deadline(), None);
        // Just within the budget, in a burst: all written, nothing to sum up.
        let l = line(2, "web1", LineKind::Stop);
        assert_eq!(
            written(&mut budget, &mut clock, PROBE_LINES, Duration::ZERO, &l),
            PROBE_LINES
        );
        assert!(budget.due(clock + WINDOW).is_empty());
    }

    #[test]
    fn probes_kinds_and_jails_have_budgets_of_their_own() {
        let mut budget = LogBudget::default();
        let now = Instant::now();
        let mut clock = now;
        // Probe 1 floods its stops: its triggers, probe 2 of the same jail, and another jail
        // are still written.
        assert_eq!(
            written(
                &mut budget,
                &mut clock,
                1000,
                Duration::ZERO,
                &line(1, "web1", LineKind::Stop)
            ),
            PROBE_LINES
        );
        assert!(budget.admit(&line(1, "web1", LineKind::Trigger), now));
        assert!(budget.admit(&line(2, "web1", LineKind::Stop), now));
        assert!(budget.admit(&line(3, "db", LineKind::Stop), now));
        // Host lines are never counted.
        for _ in 0..1000 {
            assert!(budget.admit(&LogLine::host(log::Level::Info, "reload"), now));
        }
    }

    #[test]
    fn many_probes_of_one_jail_share_its_budget() {
        let mut budget = LogBudget::default();
        let now = Instant::now();
        let mut written = 0;
        // 1,000 probes of one jail, each stopped once: the jail's budget is written.
        for probe in 0..1000 {
            written += u64::from(budget.admit(&line(probe, "web1", LineKind::Stop), now));
        }
        assert_eq!(written, JAIL_LINES);
        let summaries = budget.due(now + WINDOW);
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert_eq!(
            summaries[0].1,
            format!(
                "jail web1: … and {} more stops of its probes in the last 10s (not logged one by one)",
                1000 - JAIL_LINES
            )
        );
        // Another jail is not touched by it.
        assert!(budget.admit(&line(5000, "db", LineKind::Stop), now));
    }

    #[test]
    fn clients_are_counted_as_a_crowd() {
        let mut budget = LogBudget::default();
        let now = Instant::now();
        let late = LogLine {
            level: log::Level::Warn,
            text: "client sent no complete request within 2s; dropped".into(),
            cause: Cause::Clients(LineKind::ClientDropped),
        };
        let admitted = (0..500).filter(|_| budget.admit(&late, now)).count();
        assert_eq!(admitted as u64, CLIENT_LINES);
        assert_eq!(
            budget.due(now + WINDOW),
            vec![(
                log::Level::Warn,
                format!(
                    "… and {} more clients dropped in the last 10s (not logged one by one)",
                    500 - CLIENT_LINES
                )
            )]
        );
    }
}
