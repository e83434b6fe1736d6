//! The shell's part of selectors: listings of their members (`Effect::Survey`), and the
//! container managers' event streams, long-lived children read by the loop and never waited
//! on. A stream that dies is started again with back-off; one that hangs just says nothing,
//! and the core's slow re-listing (`core::SURVEY_INTERVAL`) stands in for it.
//!
//! # Selectors: probes that follow containers
//!
//! A probe declared with a selector (`docker:label=K=V`, `podman:label=K=V`, `k8s:NS/K=V`) is a
//! template (`core::Fleet`, one per selector, a definition per title), not a probe.
//! The core asks for its members (`Effect::Survey`, at most one listing in flight per selector and
//! one more owed to events meanwhile, none sooner than `SURVEY_GAP`, 1 s, after the last) at
//! start, on every `Event::Changed` of its manager, and every `SURVEY_INTERVAL` (30 s);
//! `Event::Surveyed` brings the members.
//! Each member gets, per title, an ordinary probe (`Probe::member` says whose), with the template's
//! definition and the member's container as its jail (`docker:NAME`, `containerd:k8s.io/ID`), so
//! it goes through `Finding`, `Placing`, `Armed`… like any declared probe, and waits when its
//! container stops; a member no longer listed has its probe removed (`remove_one`).
//! `Event::Changed` also sends probes waiting for a container of that name to `Finding` at once:
//! that is what brings a restarted container's probes back as it starts, declared ones by name
//! included. `core::tests::every_member_phase_meets_every_listing` is its phase × event table.
//! The shell (`daemon/fleets.rs`) runs the listings and the streams the core wants
//! (`Core::stream_managers`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::core::{Core, Event};
use super::reaper::Reaper;
use super::wiring::{Token, Wiring};
use crate::sys::{EventStream, Process, Survey};

/// Descriptors a selector's listing may hold: its queue, and per tool of a round a pidfd and
/// two pipes.
const SURVEY_DESCRIPTORS: usize = 1 + 3 * 64;

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

/// The selectors' listings in flight, and the streams the core wants with what they said.
pub(super) struct Fleets {
    /// Selectors being listed, by a serial number, with the selector.
    surveys: BTreeMap<u64, (String, Survey)>,
    slots: BTreeMap<&'static str, StreamSlot>,
    disabled: bool,
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

impl Fleets {
    /// `disabled`: no event stream is ever started.
    pub(super) fn new(disabled: bool) -> Fleets {
        Fleets {
            surveys: BTreeMap::new(),
            slots: BTreeMap::new(),
            disabled,
        }
    }

    /// Descriptors its listings and streams (a pidfd and a pipe each) may hold.
    pub(super) fn descriptors(&self) -> usize {
        let streams = self.slots.values().filter(|s| s.stream.is_some()).count();
        SURVEY_DESCRIPTORS * self.surveys.len() + 2 * streams
    }

    /// When a listing's deadline comes, or a stream is due to start again.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let surveys = self.surveys.values().map(|(_, s)| s.deadline());
        let restarts = self.slots.values().filter_map(|s| s.restart_at);
        surveys.chain(restarts).min()
    }

    /// Listings whose deadline is at or before `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<u64> {
        (self.surveys.iter())
            .filter(|(_, (_, s))| s.deadline() <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Starts listing `spec`'s members.
    pub(super) fn survey(&mut self, w: &mut Wiring, reaper: &mut Reaper<Process>, spec: String) {
        let started = crate::selector::parse(&spec)
            .and_then(|s| Survey::start(s, Instant::now()).map_err(|e| e.to_string()));
        match started {
            Ok(survey) => {
                let serial = w.serial();
                w.listen(survey.poll_fd(), Token::Survey(serial));
                self.surveys.insert(serial, (spec, survey));
                self.survey_ready(w, reaper, serial, Instant::now());
            }
            Err(why) => w.push(Event::Surveyed {
                selector: spec,
                result: Err(why),
            }),
        }
    }

    /// A listing's tools said something, or its deadline came.
    pub(super) fn survey_ready(
        &mut self,
        w: &mut Wiring,
        reaper: &mut Reaper<Process>,
        serial: u64,
        now: Instant,
    ) {
        let Some((_, survey)) = self.surveys.get_mut(&serial) else {
            return;
        };
        let result = survey.step(now);
        for process in survey.take_leftovers() {
            reaper.reap_later(w, process);
        }
        let Some(result) = result else { return };
        let (selector, survey) = self.surveys.remove(&serial).expect("present");
        w.unwatch(survey.poll_fd());
        w.push(Event::Surveyed { selector, result });
    }

    /// Starts the streams the core now wants and stops the ones it no longer does.
    pub(super) fn follow_streams(
        &mut self,
        w: &mut Wiring,
        reaper: &mut Reaper<Process>,
        core: &Core,
        now: Instant,
    ) {
        // The managers with streams run on Linux only.
        if self.disabled || !cfg!(target_os = "linux") {
            return;
        }
        let wanted: BTreeSet<&'static str> = core
            .stream_managers()
            .into_iter()
            .filter(|m| manager_present(m))
            .collect();
        let unwanted: Vec<&'static str> = self
            .slots
            .keys()
            .filter(|m| !wanted.contains(*m))
            .copied()
            .collect();
        for manager in unwanted {
            if let Some(slot) = self.slots.remove(manager)
                && let Some(stream) = slot.stream
            {
                w.unwatch(stream.poll_fd());
                let process = stream.stop();
                reaper.reap_later(w, process);
            }
        }
        for manager in wanted {
            let slot = self.slots.entry(manager).or_default();
            if slot.stream.is_none() && slot.restart_at.is_none() {
                self.start_stream(w, reaper, manager, now);
            }
        }
    }

    /// Starts `manager`'s stream (its slot exists); a failure is a restart with back-off.
    fn start_stream(
        &mut self,
        w: &mut Wiring,
        reaper: &mut Reaper<Process>,
        manager: &'static str,
        now: Instant,
    ) {
        let Some(argv) = crate::selector::stream_command(manager) else {
            return;
        };
        match EventStream::start(&argv) {
            Ok(stream) => {
                log::info!("{manager} event stream started ({})", argv.join(" "));
                w.listen(stream.poll_fd(), Token::Stream(stream_index(manager)));
                let slot = self.slots.get_mut(manager).expect("present");
                slot.stream = Some(stream);
                slot.started = Some(now);
                slot.restart_at = None;
            }
            Err(e) => {
                let why = format!("cannot start {}: {e}", argv[0]);
                self.stream_ended((w, reaper), manager, &why, now)
            }
        }
    }

    /// A stream ended or could not start: started again after its back-off.
    fn stream_ended(
        &mut self,
        (w, reaper): (&mut Wiring, &mut Reaper<Process>),
        manager: &'static str,
        why: &str,
        now: Instant,
    ) {
        let Some(slot) = self.slots.get_mut(manager) else {
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
            w.unwatch(stream.poll_fd());
            let process = stream.stop();
            reaper.reap_later(w, process);
        }
    }

    /// A stream said something: what containers it names go to the core as one event.
    pub(super) fn stream_ready(
        &mut self,
        w: &mut Wiring,
        reaper: &mut Reaper<Process>,
        index: u64,
        now: Instant,
    ) {
        let Some(manager) = STREAM_MANAGERS.get(index as usize).copied() else {
            return;
        };
        let Some(stream) = self.slots.get_mut(manager).and_then(|s| s.stream.as_mut()) else {
            return;
        };
        let (lines, open) = stream.read_lines();
        let names: BTreeSet<String> = lines
            .iter()
            .filter_map(|line| crate::selector::stream_event(manager, line))
            .collect();
        if !names.is_empty() {
            w.push(Event::Changed { manager, names });
        }
        if !open {
            self.stream_ended((w, reaper), manager, "its tool closed its output", now);
        }
    }

    /// Streams due to start again.
    pub(super) fn restart_streams(
        &mut self,
        w: &mut Wiring,
        reaper: &mut Reaper<Process>,
        now: Instant,
    ) {
        let due: Vec<&'static str> = self
            .slots
            .iter()
            .filter(|(_, s)| s.restart_at.is_some_and(|t| t <= now))
            .map(|(m, _)| *m)
            .collect();
        for manager in due {
            self.slots.get_mut(manager).expect("listed").restart_at = None;
            self.start_stream(w, reaper, manager, now);
        }
    }

    /// At shutdown: every stream and listing goes, its children reaped later or left to the
    /// kernel.
    pub(super) fn stop(&mut self, w: &mut Wiring, reaper: &mut Reaper<Process>) {
        let slots = std::mem::take(&mut self.slots);
        for stream in slots.into_values().filter_map(|s| s.stream) {
            w.unwatch(stream.poll_fd());
            let process = stream.stop();
            reaper.reap_later(w, process);
        }
        let surveys = std::mem::take(&mut self.surveys);
        for (_, survey) in surveys.into_values() {
            w.unwatch(survey.poll_fd());
            for process in survey.abandon() {
                reaper.reap_later(w, process);
            }
        }
    }
}
