//! Jails: opened by the name a probe gives (a container name looked up by every manager's tool
//! at once, without waiting), held for their probes and watched for their stop.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::Instant;

use super::core::{Event, JailFacts, JailId};
use super::reaper::Reaper;
use super::wiring::{Token, Wiring};
use crate::sys::{self, Jail, Lookup, Opening};

/// Descriptors a container lookup may hold: its queue, and per manager asked a pidfd and two
/// pipes (stdout, stderr).
#[cfg(target_os = "linux")]
pub(super) const LOOKUP_DESCRIPTORS: usize = 1 + 3 * crate::containers::MANAGERS.len();
/// FreeBSD names jails, not containers: its lookups run no tool; the reserve stays generous.
#[cfg(not(target_os = "linux"))]
pub(super) const LOOKUP_DESCRIPTORS: usize = 13;

#[derive(Default)]
pub(super) struct Lookups {
    /// Jails held for probes, by `Jail::id`.
    jails: BTreeMap<JailId, Jail>,
    /// Container names being looked up, by a serial number, with the name.
    lookups: BTreeMap<u64, (String, Lookup)>,
}

impl Lookups {
    /// Lookups in flight.
    pub(super) fn len(&self) -> usize {
        self.lookups.len()
    }

    pub(super) fn jail(&self, id: JailId) -> Option<&Jail> {
        self.jails.get(&id)
    }

    pub(super) fn jail_mut(&mut self, id: JailId) -> Option<&mut Jail> {
        self.jails.get_mut(&id)
    }

    /// Starts opening the jail `spec` names; a container name is looked up without waiting.
    pub(super) fn find(&mut self, w: &mut Wiring, spec: String) {
        match Jail::open(&spec, Instant::now()) {
            Opening::Ready(result) => {
                let result = result.map(|jail| self.hold(w, jail, &spec));
                w.push(Event::Found { spec, result });
            }
            Opening::Looking(lookup) => {
                let serial = w.serial();
                w.listen(lookup.poll_fd(), Token::Lookup(serial));
                self.lookups.insert(serial, (spec, lookup));
            }
        }
    }

    /// Holds `jail` and watches it for its stop; one already held under its id is kept.
    fn hold(&mut self, w: &mut Wiring, jail: Jail, spec: &str) -> (JailId, JailFacts) {
        let id = jail.id();
        let facts = JailFacts {
            identity: jail.identity(),
            shares_host_users: jail.shares_host_users(),
        };
        if let Entry::Vacant(entry) = self.jails.entry(id) {
            if jail.shares_host_pids() {
                log::warn!(
                    "jail {spec} (id {id}): its probes cannot tell a host process from one of the \
                     jail's, so any host process allowed to signal them can fire them (SECURITY.md)"
                );
            }
            if let Some(fd) = jail.watch_fd() {
                w.listen(fd, Token::Jail(id));
            }
            entry.insert(jail);
        }
        (id, facts)
    }

    /// Lookup `serial` said something, or its deadline is here (`now`).
    pub(super) fn ready(
        &mut self,
        w: &mut Wiring,
        reaper: &mut Reaper<sys::Process>,
        serial: u64,
        now: Instant,
    ) {
        let Some((_, lookup)) = self.lookups.get_mut(&serial) else {
            return;
        };
        let result = lookup.step(now);
        for process in lookup.take_leftovers() {
            reaper.reap_later(w, process);
        }
        let Some(result) = result else { return };
        let (spec, lookup) = self.lookups.remove(&serial).expect("present");
        w.unwatch(lookup.poll_fd());
        drop(lookup);
        let result = result.map(|jail| self.hold(w, jail, &spec));
        w.push(Event::Found { spec, result });
    }

    /// Stops watching jail `id` and closes its descriptor (the core let it go, or it stopped).
    pub(super) fn release(&mut self, w: &mut Wiring, id: JailId) {
        if let Some(jail) = self.jails.remove(&id)
            && let Some(fd) = jail.watch_fd()
        {
            w.unwatch(fd);
        }
    }

    /// Lookups whose deadline is at or before `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<u64> {
        (self.lookups.iter())
            .filter(|(_, (_, l))| l.deadline() <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.lookups.values().map(|(_, l)| l.deadline()).min()
    }

    /// At shutdown: every lookup's tools are killed.
    pub(super) fn kill_all(&mut self, w: &mut Wiring, reaper: &mut Reaper<sys::Process>) {
        for (_, mut lookup) in std::mem::take(&mut self.lookups).into_values() {
            let _ = lookup.step(Instant::now() + sys::PLACEMENT_DEADLINE);
            for process in lookup.take_leftovers() {
                reaper.kill(w, process);
            }
        }
    }
}
