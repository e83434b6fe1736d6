//! Placements in flight: a batch of probes of one jail each, stepped each time its status
//! pipe says something, and ended at its deadline with what is not placed by then killed.

use std::collections::BTreeMap;
use std::time::Instant;

use super::core::{Event, JailId, LastRun, PlaceResult, PlacementId, ProbeId, ToPlace};
use super::host::{Child, Host, Placing};
use super::probes::Probes;
use super::reaper::Reaper;
use super::wiring::{Token, Wiring};
use crate::error::{Error, Kind};
use crate::sys;

/// A placement in flight: its jail, its probes in batch order, and those refused before it
/// started (their ids could not be resolved).
struct InFlight<P> {
    placement: P,
    jail: JailId,
    probes: Vec<ProbeId>,
    refused: Vec<(ProbeId, Error)>,
}

pub(super) struct Placements<P> {
    in_flight: BTreeMap<PlacementId, InFlight<P>>,
}

impl<P> Default for Placements<P> {
    fn default() -> Self {
        Placements {
            in_flight: BTreeMap::new(),
        }
    }
}

impl<P: Placing> Placements<P> {
    /// Placements in flight.
    pub(super) fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Starts placing `probes` in `held` (jail `jail`, `None` when it is no longer held), all
    /// in one placement, whose helper resolves their ids in the jail's user database (off the
    /// loop: the jail's filesystem may not answer).
    pub(super) fn place<H: Host<Placing = P, Jail = P::Jail>>(
        &mut self,
        w: &mut Wiring,
        host: &mut H,
        held: Option<&P::Jail>,
        (placement, jail): (PlacementId, JailId),
        probes: Vec<ToPlace>,
    ) {
        let Some(held) = held else {
            let error = Error::new(Kind::NoJail, format!("jail {jail} stopped"));
            let results = probes
                .iter()
                .map(|p| (p.probe, Err(error.clone())))
                .collect();
            w.push(Event::Placed { placement, results });
            return;
        };
        let mut refused = Vec::new();
        let mut requests = Vec::new();
        let mut placing = Vec::new();
        for p in probes {
            match request(p.title, p.verbs, p.status, p.user, p.group) {
                Ok(request) => {
                    requests.push(request);
                    placing.push(p.probe);
                }
                Err(e) => refused.push((p.probe, e)),
            }
        }
        let started = if requests.is_empty() {
            None
        } else {
            Some(host.start_placement(held, &requests, Instant::now()))
        };
        let results: Vec<(ProbeId, PlaceResult)> = match started {
            Some(Ok(started)) => {
                let token = Token::Placement(placement);
                match started.quiet_until_done() {
                    true => w.listen_hangup(started.poll_fd(), token),
                    false => w.listen(started.poll_fd(), token),
                }
                let flight = InFlight {
                    placement: started,
                    jail,
                    probes: placing,
                    refused,
                };
                self.in_flight.insert(placement, flight);
                return;
            }
            Some(Err(e)) => (placing.into_iter())
                .map(|id| (id, Err(e.clone())))
                .chain(refused.into_iter().map(|(id, e)| (id, Err(e))))
                .collect(),
            None => refused.into_iter().map(|(id, e)| (id, Err(e))).collect(),
        };
        w.push(Event::Placed { placement, results });
    }

    /// Placement `id`'s helpers reported (or, `late`, its deadline is here): once all are done
    /// (or at its deadline), it ends; its probes are armed in `probes`, what is left of its
    /// helpers is reaped. `held` is its jail (`jail_of`) if still held: one that stopped
    /// meanwhile gets no probe.
    pub(super) fn ready(
        &mut self,
        w: &mut Wiring,
        (probes, reaper): (&mut Probes<P::Child>, &mut Reaper<P::Child>),
        held: Option<&mut P::Jail>,
        id: PlacementId,
        late: bool,
    ) {
        let Some(flight) = self.in_flight.get_mut(&id) else {
            return;
        };
        if !flight.placement.step() && !late {
            return;
        }
        let flight = self.in_flight.remove(&id).expect("present");
        w.unwatch(flight.placement.poll_fd());
        let placed = flight.placement.finish(held);
        for process in placed.leftovers {
            reaper.reap_later(w, process);
        }
        let mut results = Vec::with_capacity(flight.probes.len() + flight.refused.len());
        for (probe, result) in flight.probes.into_iter().zip(placed.results) {
            results.push((
                probe,
                result.map(|(process, ids)| {
                    let pid = process.pid();
                    probes.arm(w, probe, process);
                    (pid, ids)
                }),
            ));
        }
        results.extend(flight.refused.into_iter().map(|(id, e)| (id, Err(e))));
        w.push(Event::Placed {
            placement: id,
            results,
        });
    }

    /// The jail placement `id` places in, while it is in flight.
    pub(super) fn jail_of(&self, id: PlacementId) -> Option<JailId> {
        self.in_flight.get(&id).map(|f| f.jail)
    }

    /// Placements whose deadline is at or before `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<PlacementId> {
        (self.in_flight.iter())
            .filter(|(_, f)| f.placement.deadline() <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.in_flight
            .values()
            .map(|f| f.placement.deadline())
            .min()
    }

    /// At shutdown: every helper and probe of a placement in flight is killed.
    pub(super) fn kill_all(&mut self, w: &mut Wiring, reaper: &mut Reaper<P::Child>) {
        for flight in std::mem::take(&mut self.in_flight).into_values() {
            let placed = flight.placement.finish(None);
            let placed_processes = placed.results.into_iter().flatten().map(|(p, _)| p);
            for process in placed_processes.chain(placed.leftovers) {
                reaper.kill(w, process);
            }
        }
    }
}

/// What the placement's helpers are asked to place for one probe: its title, its verbs in its
/// environment, which the jail cannot change (probe/probe.rs says why there), its argv the
/// title followed by the status words with `--status`, and the names of its ids.
fn request(
    title: String,
    verbs: Vec<(crate::definition::Verb, Option<std::time::Duration>)>,
    status: Option<LastRun>,
    user: Option<String>,
    group: Option<String>,
) -> Result<sys::ProbeRequest, Error> {
    let title = std::ffi::CString::new(title)
        .map_err(|_| Error::new(Kind::Data, "the title contains a NUL byte"))?;
    let env = verbs
        .iter()
        .map(|(v, window)| {
            // `USR1=SECS`: its confirmation window, 0 for none.
            let mut entry = v.probe_variable().to_vec();
            let secs = window.map_or(0, |w| w.as_secs());
            entry.extend_from_slice(secs.to_string().as_bytes());
            std::ffi::CString::new(entry).expect("no NUL")
        })
        .collect();
    let args = status.map_or_else(Vec::new, |last| {
        status_words(last, Instant::now())
            .into_iter()
            .map(|w| std::ffi::CString::new(w).expect("no NUL"))
            .collect()
    });
    Ok(sys::ProbeRequest {
        title,
        args,
        env,
        query: crate::userdb::Query { user, group },
    })
}

/// What a `status` probe's command line shows after its title: `last=ok(0)`, `last=failed(3)`
/// or `last=signal(15)`, how long the command ran (`2.1s`, `3m12s`), and when it ended, as
/// `HH:MM:SS` in UTC. Three words, printable ASCII, no blank in any.
fn status_words(last: LastRun, now: Instant) -> Vec<String> {
    let outcome = match last.status {
        Some(sys::Exit::Code(0)) => "last=ok(0)".to_string(),
        Some(sys::Exit::Code(code)) => format!("last=failed({code})"),
        Some(sys::Exit::Signal(signal)) => format!("last=signal({signal})"),
        // Not placed so (`ToPlace::status`): said plainly all the same.
        None => "last=not-started".to_string(),
    };
    let took = if last.took < std::time::Duration::from_secs(60) {
        format!("{:.1}s", last.took.as_secs_f64())
    } else {
        crate::definition::show_duration(last.took.as_secs())
    };
    let ended = std::time::SystemTime::now()
        .checked_sub(now.saturating_duration_since(last.ended))
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let clock = format!(
        "{:02}:{:02}:{:02}",
        ended / 3600 % 24,
        ended / 60 % 60,
        ended % 60
    );
    vec![outcome, took, clock]
}

#[cfg(test)]
mod tests {
    //! How the shell carries out a placement on the fake host: stepped while its helpers
    //! report, ended at its deadline with its probes refused and its helpers left to reap.
    use std::time::Duration;

    use super::super::core::{Core, Effect, Limits};
    use super::super::host::fake::{Fake, FakeChild, FakePlacing, found, wiring};
    use super::*;
    use crate::definition::Definition;
    use crate::proto::Response;

    struct Rig {
        core: Core,
        w: Wiring,
        fake: Fake,
        placements: Placements<FakePlacing>,
        probes: Probes<FakeChild>,
        reaper: Reaper<FakeChild>,
        start: Instant,
    }

    impl Rig {
        /// Client 7 asks to arm a probe in jail "web1", found as 100: its placement starts.
        fn placing() -> Rig {
            let mut rig = Rig {
                core: Core::new(Limits::default()),
                w: wiring(),
                fake: Fake::default(),
                placements: Placements::default(),
                probes: Probes::default(),
                reaper: Reaper::default(),
                start: Instant::now(),
            };
            let def = Definition {
                jail: "web1".into(),
                title: "T".into(),
                command: "true".into(),
                ..Definition::default()
            };
            let (client, persist) = (7, false);
            assert!(
                rig.send(Event::Arm {
                    client,
                    def,
                    persist
                })
                .is_empty()
            );
            assert!(rig.send(found("web1", 100)).is_empty());
            assert_eq!(rig.fake.take_calls(), ["place 1 probe(s), helper 1000"]);
            rig
        }

        /// Hands `event` to the core and carries out its placements; returns its answers.
        fn send(&mut self, event: Event) -> Vec<Response> {
            let mut answers = Vec::new();
            for effect in self.core.handle(event, self.start) {
                match effect {
                    Effect::Place {
                        placement,
                        jail,
                        probes,
                    } => {
                        let to = (placement, jail);
                        (self.placements).place(&mut self.w, &mut self.fake, Some(&()), to, probes)
                    }
                    Effect::Reply { response, .. } => answers.push(response),
                    _ => {}
                }
            }
            answers
        }

        /// Carries out what is due at `now` (as the loop does), then hands the events that
        /// came of it to the core; returns its answers.
        fn at(&mut self, now: Instant) -> Vec<Response> {
            for id in self.placements.due(now) {
                let owners = (&mut self.probes, &mut self.reaper);
                self.placements
                    .ready(&mut self.w, owners, Some(&mut ()), id, true);
            }
            self.answers()
        }

        fn answers(&mut self) -> Vec<Response> {
            let events: Vec<Event> = self.w.events.drain(..).collect();
            events.into_iter().flat_map(|e| self.send(e)).collect()
        }
    }

    #[test]
    fn a_placement_past_its_deadline_is_ended_its_helper_reaped_and_its_probe_refused() {
        let mut rig = Rig::placing();
        // The placement's own deadline, taken when it started.
        let deadline = rig.placements.next_deadline().expect("in flight");
        assert!(deadline >= rig.start + Duration::from_secs(5));
        // Its helper said something, but is not done: nothing ends.
        rig.placements.ready(
            &mut rig.w,
            (&mut rig.probes, &mut rig.reaper),
            Some(&mut ()),
            1,
            false,
        );
        assert!(rig.answers().is_empty());
        assert!(rig.at(deadline - Duration::from_millis(1)).is_empty());
        assert_eq!(rig.placements.len(), 1);
        // At its deadline: ended, its helper killed and left to the reaper, the client refused.
        let answers = rig.at(deadline);
        assert_eq!(
            rig.fake.take_calls(),
            ["finish placement (jail held: true)", "kill 1000"]
        );
        assert_eq!(rig.placements.len(), 0);
        assert_eq!(rig.reaper.len(), 1);
        match answers.as_slice() {
            [Response::Refused(e)] => assert!(e.message.contains("not placed within 5s"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rig.core.list(rig.start).len(),
            0,
            "a refused request is forgotten"
        );
    }

    #[test]
    fn a_placement_whose_helpers_are_done_in_time_ends_at_once_with_its_probe_armed() {
        let mut rig = Rig::placing();
        let (helper, done) = rig.fake.placements[0].clone();
        done.set(true);
        helper.end(crate::sys::Exit::Code(0));
        rig.placements.ready(
            &mut rig.w,
            (&mut rig.probes, &mut rig.reaper),
            Some(&mut ()),
            1,
            false,
        );
        assert_eq!(
            rig.fake.take_calls(),
            ["finish placement (jail held: true)"]
        );
        match rig.answers().as_slice() {
            [
                Response::Armed {
                    probe: 1,
                    pid: 1001,
                    ..
                },
            ] => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(rig.reaper.len(), 0, "nothing left to reap");
        // Its deadline passes with nothing left to end.
        assert!(rig.at(rig.start + Duration::from_secs(60)).is_empty());
        assert!(rig.fake.take_calls().is_empty());
    }
}
