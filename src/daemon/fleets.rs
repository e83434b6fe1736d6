//! The shell's part of selectors: listings of their members (`Effect::Survey`), and the
//! container managers' event streams, long-lived children read by the loop and never waited
//! on. A stream that dies is started again with back-off; one that hangs just says nothing,
//! and the core's slow re-listing (`core::SURVEY_INTERVAL`) stands in for it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::core::Event;
use super::{Daemon, Token, listen};
use crate::sys::{EventStream, Survey};

/// The managers with event streams, in the order of their tokens.
pub(super) const STREAM_MANAGERS: [&str; 3] = ["docker", "podman", "containerd"];
/// A stream that ended is started again after 1 s, doubling while it keeps ending, at most
/// every `STREAM_BACKOFF_MAX`; one that ran for `STREAM_BACKOFF_MAX` starts at 1 s again.
const STREAM_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const STREAM_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Set to `off` in the daemon's environment, no event stream is started (the benchmark's
/// comparison with polling alone).
pub(super) const STREAMS_VARIABLE: &str = "JAILDAEMON_EVENT_STREAMS";

/// One manager's event stream: running, or waiting to be started again.
#[derive(Default)]
pub(super) struct StreamSlot {
    stream: Option<EventStream>,
    started: Option<Instant>,
    /// Ends in a row, for the back-off.
    failures: u32,
    restart_at: Option<Instant>,
}

/// The streams the core wants, and what they said.
#[derive(Default)]
pub(super) struct Streams {
    slots: BTreeMap<&'static str, StreamSlot>,
    disabled: bool,
}

impl Streams {
    pub(super) fn new(disabled: bool) -> Streams {
        Streams {
            slots: BTreeMap::new(),
            disabled,
        }
    }

    /// When a stream is due to start again.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.slots.values().filter_map(|s| s.restart_at).min()
    }

    pub(super) fn count(&self) -> usize {
        self.slots.values().filter(|s| s.stream.is_some()).count()
    }
}

fn stream_index(manager: &str) -> u64 {
    STREAM_MANAGERS
        .iter()
        .position(|m| *m == manager)
        .unwrap_or(0) as u64
}

/// Whether `manager`'s tool can answer at all: its daemon's socket is there.
fn manager_present(manager: &str) -> bool {
    let socket = match manager {
        "docker" => "/var/run/docker.sock",
        "containerd" => crate::selector::CONTAINERD_SOCKET,
        _ => return true,
    };
    std::path::Path::new(socket).exists()
}

impl Daemon {
    /// Starts listing `spec`'s members.
    pub(super) fn survey(&mut self, spec: String) {
        let started = crate::selector::parse(&spec)
            .and_then(|s| Survey::start(s, Instant::now()).map_err(|e| e.to_string()));
        match started {
            Ok(survey) => {
                let serial = self.serial();
                listen(&self.poller, survey.poll_fd(), Token::Survey(serial));
                self.surveys.insert(serial, (spec, survey));
                self.survey_ready(serial, Instant::now());
            }
            Err(why) => self.events.push_back(Event::Surveyed {
                selector: spec,
                result: Err(why),
            }),
        }
    }

    /// A listing's tools said something, or its deadline came.
    pub(super) fn survey_ready(&mut self, serial: u64, now: Instant) {
        let Some((_, survey)) = self.surveys.get_mut(&serial) else {
            return;
        };
        let result = survey.step(now);
        for process in survey.take_leftovers() {
            self.reap_later(process);
        }
        let Some(result) = result else { return };
        let (selector, survey) = self.surveys.remove(&serial).expect("present");
        self.poller.remove(survey.poll_fd());
        self.events.push_back(Event::Surveyed { selector, result });
    }

    /// Starts the streams the core now wants and stops the ones it no longer does.
    pub(super) fn follow_streams(&mut self, now: Instant) {
        // The managers with streams run on Linux only.
        if self.streams.disabled || !cfg!(target_os = "linux") {
            return;
        }
        let wanted: BTreeSet<&'static str> = self
            .core
            .stream_managers()
            .into_iter()
            .filter(|m| manager_present(m))
            .collect();
        let unwanted: Vec<&'static str> = self
            .streams
            .slots
            .keys()
            .filter(|m| !wanted.contains(*m))
            .copied()
            .collect();
        for manager in unwanted {
            if let Some(slot) = self.streams.slots.remove(manager)
                && let Some(stream) = slot.stream
            {
                self.poller.remove(stream.poll_fd());
                let process = stream.stop();
                self.reap_later(process);
            }
        }
        for manager in wanted {
            let slot = self.streams.slots.entry(manager).or_default();
            if slot.stream.is_none() && slot.restart_at.is_none() {
                self.start_stream(manager, now);
            }
        }
    }

    /// Starts `manager`'s stream (its slot exists); a failure is a restart with back-off.
    fn start_stream(&mut self, manager: &'static str, now: Instant) {
        let Some(argv) = crate::selector::stream_command(manager) else {
            return;
        };
        match EventStream::start(&argv) {
            Ok(stream) => {
                log::info!("{manager} event stream started ({})", argv.join(" "));
                listen(
                    &self.poller,
                    stream.poll_fd(),
                    Token::Stream(stream_index(manager)),
                );
                let slot = self.streams.slots.get_mut(manager).expect("present");
                slot.stream = Some(stream);
                slot.started = Some(now);
                slot.restart_at = None;
            }
            Err(e) => self.stream_ended(manager, &format!("cannot start {}: {e}", argv[0]), now),
        }
    }

    /// A stream ended or could not start: started again after its back-off.
    fn stream_ended(&mut self, manager: &'static str, why: &str, now: Instant) {
        let Some(slot) = self.streams.slots.get_mut(manager) else {
            return;
        };
        if slot
            .started
            .is_some_and(|t| now.saturating_duration_since(t) >= STREAM_BACKOFF_MAX)
        {
            slot.failures = 0;
        }
        let delay = STREAM_BACKOFF_FIRST
            .saturating_mul(1u32 << slot.failures.min(6))
            .min(STREAM_BACKOFF_MAX);
        slot.failures += 1;
        slot.started = None;
        slot.restart_at = Some(now + delay);
        log::warn!(
            "{manager} event stream ended ({why}); started again in {}",
            super::core::human_duration(delay)
        );
        if let Some(stream) = slot.stream.take() {
            self.poller.remove(stream.poll_fd());
            let process = stream.stop();
            self.reap_later(process);
        }
    }

    /// A stream said something: what containers it names go to the core as one event.
    pub(super) fn stream_ready(&mut self, index: u64, now: Instant) {
        let Some(manager) = STREAM_MANAGERS.get(index as usize).copied() else {
            return;
        };
        let Some(stream) = self
            .streams
            .slots
            .get_mut(manager)
            .and_then(|s| s.stream.as_mut())
        else {
            return;
        };
        let (lines, open) = stream.read_lines();
        let names: BTreeSet<String> = lines
            .iter()
            .filter_map(|line| crate::selector::stream_event(manager, line))
            .collect();
        if !names.is_empty() {
            self.events.push_back(Event::Changed { manager, names });
        }
        if !open {
            self.stream_ended(manager, "its tool closed its output", now);
        }
    }

    /// Streams due to start again.
    pub(super) fn restart_streams(&mut self, now: Instant) {
        let due: Vec<&'static str> = self
            .streams
            .slots
            .iter()
            .filter(|(_, s)| s.restart_at.is_some_and(|t| t <= now))
            .map(|(m, _)| *m)
            .collect();
        for manager in due {
            self.streams
                .slots
                .get_mut(manager)
                .expect("listed")
                .restart_at = None;
            self.start_stream(manager, now);
        }
    }

    /// At shutdown: every stream and listing goes, its children reaped later or left to the
    /// kernel.
    pub(super) fn stop_fleets(&mut self) {
        let slots = std::mem::take(&mut self.streams.slots);
        for stream in slots.into_values().filter_map(|s| s.stream) {
            self.poller.remove(stream.poll_fd());
            let process = stream.stop();
            self.reap_later(process);
        }
        let surveys = std::mem::take(&mut self.surveys);
        for (_, survey) in surveys.into_values() {
            self.poller.remove(survey.poll_fd());
            for process in survey.abandon() {
                self.reap_later(process);
            }
        }
    }
}
