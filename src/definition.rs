//! What a probe is, inside the daemon: the jail, the title, the command and how it comes back.
//!
//! Three types carry a probe and each belongs to one boundary: `proto::Arm` is the wire
//! request, `state::Record` a line of the state file, and `Definition` what the daemon keeps.
//! A new wire field therefore changes neither the state file nor the core.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::{Arm, Respawn};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Definition {
    /// The jail as named: a host PID, a container name, or `manager:name`.
    pub jail: String,
    pub title: String,
    /// Run on the host with `/bin/sh -c` when the probe fires.
    pub command: String,
    pub respawn: Respawn,
    /// Inside the jail: a number or a name from its own user database.
    pub user: Option<String>,
    pub group: Option<String>,
    /// After a fire, the probe comes back no sooner than this.
    pub cooldown: Option<Duration>,
    /// A command still running this long after it started is stopped, with all it started.
    pub timeout: Option<Duration>,
    /// The host user (and group) the command runs as, `user[:group]`; root when `None`.
    pub run_as: Option<String>,
    /// A command per verb signal, beside `command` (SIGHUP's).
    pub verbs: BTreeMap<Verb, String>,
    /// Verbs that run only when their signal comes twice within this window.
    pub confirm: BTreeMap<Verb, Duration>,
    /// A verb's own host user, which replaces `run_as` for that verb's runs (only the
    /// configuration file's table form sets one).
    pub verb_run_as: BTreeMap<Verb, String>,
    /// A verb's own timeout, which replaces `timeout` for that verb's runs.
    pub verb_timeout: BTreeMap<Verb, Duration>,
    /// A watchdog probe: each signal starts this period again; at its end the command runs.
    pub watchdog: Option<Duration>,
    /// The probe's command line shows its last command's result after the title.
    pub status: bool,
}

/// A signal besides SIGHUP that a probe may wait for, each with a command of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Usr1,
    Usr2,
}

impl Verb {
    pub const ALL: [Verb; 2] = [Verb::Usr1, Verb::Usr2];

    /// As written in a request, the configuration file and `-l`: `USR1`, `USR2`.
    pub fn name(self) -> &'static str {
        match self {
            Verb::Usr1 => "USR1",
            Verb::Usr2 => "USR2",
        }
    }

    /// `USR1` or `SIGUSR1`, in any case.
    pub fn parse(text: &str) -> Option<Verb> {
        let upper = text.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Verb::ALL.into_iter().find(|v| v.name() == bare)
    }

    /// The probe's exit code for this verb (`probe/magic.rs`).
    pub fn exit_code(self) -> i32 {
        i32::from(match self {
            Verb::Usr1 => crate::USR1_EXIT,
            Verb::Usr2 => crate::USR2_EXIT,
        })
    }

    /// The entry of the probe's environment that gives it this verb.
    pub fn probe_variable(self) -> &'static [u8] {
        match self {
            Verb::Usr1 => crate::USR1_VAR,
            Verb::Usr2 => crate::USR2_VAR,
        }
    }
}

/// Verbs as written (validated by `Arm::validate`) to verbs as kept: their commands, or their
/// host users.
pub fn verbs_from_names(names: &BTreeMap<String, String>) -> BTreeMap<Verb, String> {
    names
        .iter()
        .filter_map(|(name, command)| Some((Verb::parse(name)?, command.clone())))
        .collect()
}

/// Durations per verb as written, in seconds (validated by `Arm::validate`), to as kept:
/// confirmation windows, verbs' timeouts.
pub fn durations_from_names(names: &BTreeMap<String, u64>) -> BTreeMap<Verb, Duration> {
    names
        .iter()
        .filter_map(|(name, secs)| Some((Verb::parse(name)?, Duration::from_secs(*secs))))
        .collect()
}

/// Durations per verb as kept to as written, in seconds.
pub fn durations_to_names(durations: &BTreeMap<Verb, Duration>) -> BTreeMap<String, u64> {
    durations
        .iter()
        .map(|(verb, duration)| (verb.name().to_string(), duration.as_secs()))
        .collect()
}

/// Verbs as kept to verbs as written: their commands, or their host users.
pub fn verbs_to_names(verbs: &BTreeMap<Verb, String>) -> BTreeMap<String, String> {
    verbs
        .iter()
        .map(|(verb, command)| (verb.name().to_string(), command.clone()))
        .collect()
}

impl From<Arm> for Definition {
    fn from(arm: Arm) -> Definition {
        Definition {
            jail: arm.jail,
            title: arm.title,
            command: arm.command,
            respawn: arm.respawn,
            user: arm.user,
            group: arm.group,
            cooldown: arm.cooldown.map(Duration::from_secs),
            timeout: arm.timeout.map(Duration::from_secs),
            run_as: arm.run_as,
            verbs: verbs_from_names(&arm.verbs),
            confirm: durations_from_names(&arm.confirm),
            verb_run_as: verbs_from_names(&arm.verb_run_as),
            verb_timeout: durations_from_names(&arm.verb_timeout),
            watchdog: arm.watchdog.map(Duration::from_secs),
            status: arm.status,
        }
    }
}

impl From<&Definition> for Arm {
    /// The request that would arm this probe, for the checks a request passes.
    fn from(d: &Definition) -> Arm {
        Arm {
            command: d.command.clone(),
            jail: d.jail.clone(),
            title: d.title.clone(),
            respawn: d.respawn,
            user: d.user.clone(),
            group: d.group.clone(),
            cooldown: d.cooldown.map(|c| c.as_secs()),
            timeout: d.timeout.map(|t| t.as_secs()),
            run_as: d.run_as.clone(),
            persist: false,
            verbs: verbs_to_names(&d.verbs),
            confirm: durations_to_names(&d.confirm),
            verb_run_as: verbs_to_names(&d.verb_run_as),
            verb_timeout: durations_to_names(&d.verb_timeout),
            watchdog: d.watchdog.map(|w| w.as_secs()),
            status: d.status,
        }
    }
}

impl Definition {
    /// How it comes back after a fire, as the log and `-l` name it.
    pub fn mode(&self) -> &'static str {
        match self.respawn {
            _ if self.watchdog.is_some() => "watchdog",
            Respawn::Never => "single",
            Respawn::AfterCommand => "-r",
            Respawn::Immediately => "-R",
            Respawn::Queue => "queue",
        }
    }

    /// What one run of `verb` (`None`: SIGHUP's command) is: the verb's command, run as the
    /// verb's host user and with the verb's timeout where it has its own, else the probe's.
    pub fn run_of(&self, verb: Option<Verb>) -> Definition {
        let mut run = self.clone();
        let Some(verb) = verb else { return run };
        if let Some(command) = self.verbs.get(&verb) {
            run.command = command.clone();
        }
        if let Some(user) = self.verb_run_as.get(&verb) {
            run.run_as = Some(user.clone());
        }
        if let Some(timeout) = self.verb_timeout.get(&verb) {
            run.timeout = Some(*timeout);
        }
        run
    }

    /// Every setting beside the mode, the jail's user and the host user, in the order of the
    /// options' help: `timeout 30s`, `cooldown 5m`, `watchdog 1m`,
    /// `verb USR1 (run as root, timeout 1m, confirm within 10s)`, `status`; none for a plain
    /// probe. With `commands`, each verb says its command too (the log; `-l`'s table leaves
    /// commands to `--json`).
    pub fn settings(&self, commands: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut duration = |name: &str, d: Option<Duration>| {
            if let Some(d) = d {
                out.push(format!("{name} {}", show_duration(d.as_secs())));
            }
        };
        duration("timeout", self.timeout);
        duration("cooldown", self.cooldown);
        duration("watchdog", self.watchdog);
        for (verb, command) in &self.verbs {
            let mut text = format!("verb {}", verb.name());
            if commands {
                text += &format!(" runs '{command}'");
            }
            let mut own = Vec::new();
            if let Some(user) = self.verb_run_as.get(verb) {
                own.push(format!("run as {user}"));
            }
            if let Some(timeout) = self.verb_timeout.get(verb) {
                own.push(format!("timeout {}", show_duration(timeout.as_secs())));
            }
            if let Some(window) = self.confirm.get(verb) {
                own.push(format!(
                    "confirm within {}",
                    show_duration(window.as_secs())
                ));
            }
            if !own.is_empty() {
                text += &format!(" ({})", own.join(", "));
            }
            out.push(text);
        }
        if self.status {
            out.push("status".into());
        }
        out
    }

    /// A jail named by a host PID (or jid) is that process: it never comes back as another.
    pub fn jail_named_by_id(&self) -> bool {
        !self.jail.is_empty() && self.jail.bytes().all(|b| b.is_ascii_digit())
    }
}

/// Parses a duration as people write one in a request or the configuration file: a whole
/// number and a unit, `s`, `m` or `h` (`30s`, `5m`, `1h`). Returns whole seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a duration; write it as 30s, 5m or 1h");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    number.checked_mul(scale).ok_or_else(bad)
}

/// A duration as written back: `90s` as `1m30s`, `3600s` as `1h`.
pub fn show_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || out.is_empty() {
        out += &format!("{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verbs_own_user_and_timeout_are_named_with_the_verb() {
        let mut d = Definition {
            run_as: Some("nobody".into()),
            timeout: Some(Duration::from_secs(300)),
            ..Definition::default()
        };
        d.verbs.insert(Verb::Usr1, "echo one".into());
        d.verbs.insert(Verb::Usr2, "docker restart web".into());
        d.verb_run_as.insert(Verb::Usr2, "root".into());
        d.verb_timeout.insert(Verb::Usr2, Duration::from_secs(30));
        d.confirm.insert(Verb::Usr2, Duration::from_secs(10));
        assert_eq!(
            d.settings(true),
            [
                "timeout 5m",
                "verb USR1 runs 'echo one'",
                "verb USR2 runs 'docker restart web' (run as root, timeout 30s, confirm within 10s)"
            ]
        );
        assert_eq!(
            d.settings(false)[2],
            "verb USR2 (run as root, timeout 30s, confirm within 10s)"
        );
    }

    #[test]
    fn durations_parse_as_written_and_bad_ones_say_how_to_write_them() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("1h", 3600),
            ("0s", 0),
            (" 2m ", 120),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for text in [
            "30",
            "s",
            "",
            "1.5s",
            "-1s",
            "5 m",
            "1d",
            "30sec",
            "99999999999999999999s",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("30s, 5m or 1h"), "{text}: {err}");
        }
        assert_eq!(show_duration(90), "1m30s");
        assert_eq!(show_duration(3600), "1h");
        assert_eq!(show_duration(0), "0s");
    }
}
