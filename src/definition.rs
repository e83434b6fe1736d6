//! A probe's options: the one type that the command line fills, the wire carries, the
//! configuration file declares, the state file keeps and the daemon acts on (`Definition`),
//! with its limits and its checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind};

/// Longest host command, in bytes.
pub const MAX_COMMAND: usize = 4096;
/// Longest probe title, in bytes.
pub const MAX_TITLE: usize = 200;
/// Longest jail name or id, in bytes.
pub const MAX_JAIL: usize = 255;
/// The range of a cooldown, in seconds: 1 s to 24 h.
pub const COOLDOWN_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;
/// The range of a command's timeout, in seconds: 1 s to 24 h.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;
/// The range of a verb's confirmation window, in seconds: 1 s to 1 h (the probe's limit).
pub const CONFIRM_RANGE: std::ops::RangeInclusive<u64> = 1..=crate::magic::MAX_CONFIRM_SECS;
/// The range of a watchdog's period, in seconds: 1 s to 24 h.
pub const WATCHDOG_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;
/// Title of a probe armed without `-t`.
pub const DEFAULT_TITLE: &str = "jaildaemon-probe";

/// When a fired probe comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Respawn {
    /// Single shot (default).
    #[default]
    Never,
    /// `-r`: after the command has finished.
    AfterCommand,
    /// `-R`: at once, while the command runs.
    Immediately,
    /// `--queue`: at once, but a fire while the command runs queues one more run after it
    /// (triggers until then are that same run) instead of a second command at once.
    Queue,
}

/// Every setting of a probe, and the only type that holds them.
///
/// The command line fills it (`cli.rs`); the wire request (`proto::Request::Arm`), the
/// configuration file's `[[probe]]` tables and the state file's probes are its serde form
/// (`Form`), with the same keys in all three; the daemon keeps it as it is. `validate` is the
/// one check of its limits, whichever way it came.
///
/// The daemon keeps one per probe, 10,000 of them at a time, so it holds inline only what
/// every probe has, and the settings few probes have in `Extras`, boxed, and only when one of
/// them is set: it dereferences to them, so `def.timeout` reads (and assigning one sets) the
/// probe's timeout as if it were a field here. A plain probe's definition is 88 bytes and its
/// strings, where it was 248.
///
/// Adding an option takes: a field in `Extras` and in `Form` (with its serde default, so that
/// requests, files and state files without it still read, and `skip_serializing_if`, so that
/// earlier versions read what this one writes while it is unset), its check in `validate`, its
/// flag in `cli.rs`, its line in jaildaemon.8 (and the configuration file's comment in
/// `config.rs`), and the code that acts on it. Its key in the three formats comes with the
/// field of `Form`.
///
/// Durations are whole seconds in JSON (the wire, the state file) and text with a unit in
/// the configuration file (`30s`, `5m`, `1h`); either reads anywhere (`seconds`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Form", into = "Form")]
pub struct Definition {
    /// Run on the host when the probe fires (SIGHUP): with `/bin/sh -c`, or its program
    /// directly when it has no shell syntax.
    pub command: String,
    /// The jail as named: a host PID, a container name, or `manager:name`.
    pub jail: String,
    /// `-t`: the probe's argv[0], which `pkill -f` matches.
    pub title: String,
    /// `-r`, `-R`, `--queue`.
    pub respawn: Respawn,
    /// `-P`: kept in the daemon's state file, so that it survives restarts. Never set by the
    /// configuration file (its probes live there already).
    pub persist: bool,
    /// `--status`: the probe's command line shows its last command's result after the title.
    pub status: bool,
    /// The other settings, when any is set (`Extras::boxed`); read and set through `Deref`.
    pub extras: Option<Box<Extras>>,
}

/// The settings of a probe that most probes leave unset, boxed in its `Definition`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extras {
    /// `-u`, `-g`: inside the jail, a number or a name from its own user database.
    pub user: Option<String>,
    pub group: Option<String>,
    /// `--cooldown`: after a fire, the probe comes back no sooner than this.
    pub cooldown: Option<Duration>,
    /// `--timeout`: a command still running this long after it started is stopped, with all
    /// it started.
    pub timeout: Option<Duration>,
    /// `--run-as user[:group]`: the host user (and group) the command runs as; root when
    /// `None`.
    pub run_as: Option<String>,
    /// `--verb SIG=COMMAND`: a command per verb signal, beside `command` (SIGHUP's); each
    /// written as its command alone, or as a table with its own host user and timeout.
    pub verbs: BTreeMap<Verb, VerbCommand>,
    /// `--confirm SIG=duration`: verbs that run only when their signal comes twice within
    /// this window.
    pub confirm: BTreeMap<Verb, Duration>,
    /// `--watchdog`: each signal starts this period again; at its end the command runs.
    pub watchdog: Option<Duration>,
}

/// The extras of a definition that sets none.
static NO_EXTRAS: Extras = Extras {
    user: None,
    group: None,
    cooldown: None,
    timeout: None,
    run_as: None,
    verbs: BTreeMap::new(),
    confirm: BTreeMap::new(),
    watchdog: None,
};

impl Extras {
    /// As a definition keeps them: boxed when one is set, else nothing.
    pub fn boxed(self) -> Option<Box<Extras>> {
        (self != NO_EXTRAS).then(|| Box::new(self))
    }
}

impl std::ops::Deref for Definition {
    type Target = Extras;

    fn deref(&self) -> &Extras {
        self.extras.as_deref().unwrap_or(&NO_EXTRAS)
    }
}

/// Setting an extra (or borrowing one to change it) boxes them, if they were not yet.
impl std::ops::DerefMut for Definition {
    fn deref_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }
}

/// Equal settings are equal definitions, whether unset extras are boxed or not.
impl PartialEq for Definition {
    fn eq(&self, other: &Definition) -> bool {
        self.command == other.command
            && self.jail == other.jail
            && self.title == other.title
            && self.respawn == other.respawn
            && self.persist == other.persist
            && self.status == other.status
            && **self == **other
    }
}

impl Eq for Definition {}

/// A definition as the wire, the configuration file and the state file write it: every key
/// at one level, in this order (each field is its namesake in `Definition` or `Extras`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    command: String,
    jail: String,
    #[serde(default = "default_title")]
    title: String,
    #[serde(default)]
    respawn: Respawn,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seconds::optional"
    )]
    cooldown: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seconds::optional"
    )]
    timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_as: Option<String>,
    #[serde(default)]
    persist: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    verbs: BTreeMap<Verb, VerbCommand>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "seconds::per_verb"
    )]
    confirm: BTreeMap<Verb, Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "seconds::optional"
    )]
    watchdog: Option<Duration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    status: bool,
}

impl From<Form> for Definition {
    fn from(form: Form) -> Definition {
        let extras = Extras {
            user: form.user,
            group: form.group,
            cooldown: form.cooldown,
            timeout: form.timeout,
            run_as: form.run_as,
            verbs: form.verbs,
            confirm: form.confirm,
            watchdog: form.watchdog,
        };
        Definition {
            command: form.command,
            jail: form.jail,
            title: form.title,
            respawn: form.respawn,
            persist: form.persist,
            status: form.status,
            extras: extras.boxed(),
        }
    }
}

impl From<Definition> for Form {
    fn from(def: Definition) -> Form {
        let extras = def.extras.map_or_else(Extras::default, |extras| *extras);
        Form {
            command: def.command,
            jail: def.jail,
            title: def.title,
            respawn: def.respawn,
            user: extras.user,
            group: extras.group,
            cooldown: extras.cooldown,
            timeout: extras.timeout,
            run_as: extras.run_as,
            persist: def.persist,
            verbs: extras.verbs,
            confirm: extras.confirm,
            watchdog: extras.watchdog,
            status: def.status,
        }
    }
}

fn default_title() -> String {
    DEFAULT_TITLE.into()
}

/// What a verb runs: its command, and the host user and timeout of its own that replace the
/// probe's for its runs (only the configuration file's table form sets those). Written as the
/// command alone when it has neither, as every request of the utility does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerbCommand {
    pub command: String,
    pub run_as: Option<String>,
    pub timeout: Option<Duration>,
}

impl From<&str> for VerbCommand {
    fn from(command: &str) -> VerbCommand {
        VerbCommand {
            command: command.into(),
            ..VerbCommand::default()
        }
    }
}

impl Serialize for VerbCommand {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.run_as.is_none() && self.timeout.is_none() {
            return serializer.serialize_str(&self.command);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("command", &self.command)?;
        if let Some(run_as) = &self.run_as {
            map.serialize_entry("run_as", run_as)?;
        }
        if let Some(timeout) = self.timeout {
            map.serialize_entry("timeout", &timeout.as_secs())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for VerbCommand {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(VerbCommandVisitor)
    }
}

/// Takes a string or a table. Written out rather than as an untagged enum, whose error for
/// either shape says only that it matched neither, and at no line.
struct VerbCommandVisitor;

impl<'de> serde::de::Visitor<'de> for VerbCommandVisitor {
    type Value = VerbCommand;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a command, or a table { command = \"…\", run_as = \"…\", timeout = \"…\" }")
    }

    fn visit_str<E: serde::de::Error>(self, command: &str) -> Result<VerbCommand, E> {
        Ok(VerbCommand::from(command))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<VerbCommand, A::Error> {
        use serde::de::Error as _;
        let (mut command, mut run_as, mut timeout) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "command" => command = Some(map.next_value()?),
                "run_as" => run_as = Some(map.next_value()?),
                "timeout" => timeout = Some(map.next_value::<seconds::Seconds>()?.0),
                other => {
                    return Err(A::Error::custom(format!(
                        "unknown key '{other}' in a verb's table; it takes command, run_as and timeout"
                    )));
                }
            }
        }
        let command =
            command.ok_or_else(|| A::Error::custom("a verb's table needs its command = \"…\""))?;
        Ok(VerbCommand {
            command,
            run_as,
            timeout,
        })
    }
}

/// Durations as the formats write them: whole seconds when written; whole seconds (JSON's
/// numbers) or text with a unit (`30s`, `5m`, `1h`) when read.
mod seconds {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::Verb;

    /// One duration, read from either form.
    pub struct Seconds(pub Duration);

    impl<'de> Deserialize<'de> for Seconds {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(SecondsVisitor)
        }
    }

    struct SecondsVisitor;

    impl serde::de::Visitor<'_> for SecondsVisitor {
        type Value = Seconds;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration: a string such as \"30s\", \"5m\" or \"1h\"")
        }

        fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Seconds, E> {
            Ok(Seconds(Duration::from_secs(secs)))
        }

        /// A negative JSON number, or any TOML integer (TOML hands them all over signed): a
        /// number a person wrote without its unit, which is refused rather than guessed.
        fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Seconds, E> {
            Err(E::custom(format!(
                "{number} has no unit; write the duration as a string, \"30s\", \"5m\" or \"1h\""
            )))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Seconds, E> {
            super::parse_duration(text)
                .map(|secs| Seconds(Duration::from_secs(secs)))
                .map_err(E::custom)
        }
    }

    pub mod optional {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_u64(d.as_secs()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Ok(Option::<Seconds>::deserialize(d)?.map(|s| s.0))
        }
    }

    pub mod per_verb {
        use super::*;

        pub fn serialize<S: Serializer>(
            durations: &BTreeMap<Verb, Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_map(durations.iter().map(|(verb, d)| (verb, d.as_secs())))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<BTreeMap<Verb, Duration>, D::Error> {
            let read = BTreeMap::<Verb, Seconds>::deserialize(d)?;
            Ok(read.into_iter().map(|(verb, s)| (verb, s.0)).collect())
        }
    }
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
            Verb::Usr1 => crate::magic::USR1_EXIT,
            Verb::Usr2 => crate::magic::USR2_EXIT,
        })
    }

    /// The entry of the probe's environment that gives it this verb.
    pub fn probe_variable(self) -> &'static [u8] {
        match self {
            Verb::Usr1 => crate::magic::USR1_VAR,
            Verb::Usr2 => crate::magic::USR2_VAR,
        }
    }
}

impl Serialize for Verb {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Verb {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Verb::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "verb '{name}' is not a verb signal; the verbs are USR1 and USR2 (SIGHUP runs the command)"
            ))
        })
    }
}

/// Durations per verb as `-l` lists them, in seconds, to as kept.
pub fn durations_from_names(names: &BTreeMap<String, u64>) -> BTreeMap<Verb, Duration> {
    names
        .iter()
        .filter_map(|(name, secs)| Some((Verb::parse(name)?, Duration::from_secs(*secs))))
        .collect()
}

/// Durations per verb as kept to as `-l` lists them, in seconds.
pub fn durations_to_names(durations: &BTreeMap<Verb, Duration>) -> BTreeMap<String, u64> {
    durations
        .iter()
        .map(|(verb, duration)| (verb.name().to_string(), duration.as_secs()))
        .collect()
}

/// A host command: not blank, at most `MAX_COMMAND` bytes, no NUL. `what` names it.
fn check_command(what: &str, command: &str) -> Result<(), Error> {
    let data = |m: String| Err(Error::new(Kind::Data, m));
    if command.trim().is_empty() {
        return data(format!("{what} is empty"));
    }
    if command.len() > MAX_COMMAND {
        return data(format!(
            "{what} is {} bytes long; the limit is {MAX_COMMAND}",
            command.len()
        ));
    }
    if command.contains('\0') {
        return data(format!("{what} contains a NUL byte"));
    }
    Ok(())
}

/// A duration within `range`, in seconds; `what` names it in the refusal.
fn check_range(
    what: &str,
    duration: Duration,
    range: std::ops::RangeInclusive<u64>,
) -> Result<(), Error> {
    let secs = duration.as_secs();
    if range.contains(&secs) {
        return Ok(());
    }
    Err(Error::new(
        Kind::Data,
        format!(
            "{what}: {} is out of range; it must be {} to {}",
            show_duration(secs),
            show_duration(*range.start()),
            show_duration(*range.end())
        ),
    ))
}

/// A host user as `--run-as` takes it: `user` or `user:group`, each 1 to 64 printable bytes.
/// `what` names it.
fn check_run_as(what: &str, run_as: &str) -> Result<(), Error> {
    let (user, group) = match run_as.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (run_as, None),
    };
    for id in std::iter::once(user).chain(group) {
        if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c == ':') {
            return Err(Error::new(
                Kind::Data,
                format!(
                    "{what}: '{run_as}' is not user or user:group (each 1 to 64 printable bytes)"
                ),
            ));
        }
    }
    Ok(())
}

impl Definition {
    /// Checks every setting against its documented limit and the others it goes with: the
    /// one check, for a request, a declared probe and a saved one alike. A refusal's message
    /// starts with what it is about (`cooldown:`, `verb USR2: timeout:`, `confirm USR1:`, `the
    /// title`), which the configuration file turns into the line to name.
    pub fn validate(&self) -> Result<(), Error> {
        let data = |m: String| Err(Error::new(Kind::Data, m));
        self.check_durations()?;
        check_command("the command", &self.command)?;
        for (verb, run) in &self.verbs {
            let name = verb.name();
            check_command(&format!("verb {name}: the command"), &run.command)?;
        }
        for verb in self.confirm.keys() {
            let name = verb.name();
            if !self.verbs.contains_key(verb) {
                return data(format!(
                    "confirm {name}: not a verb of this probe; only a verb (USR1, USR2) can need confirming"
                ));
            }
        }
        if self.watchdog.is_some()
            && (self.respawn != Respawn::Never || self.cooldown.is_some() || !self.verbs.is_empty())
        {
            return data(
                "watchdog: a watchdog probe comes back after every signal by itself; it takes no -r, -R, --queue, --cooldown or verbs"
                    .into(),
            );
        }
        if self.status && self.respawn != Respawn::AfterCommand {
            return data(
                "status: the probe shows its command's result when it comes back after it; give -r too"
                    .into(),
            );
        }
        if self.jail.is_empty()
            || self.jail.len() > MAX_JAIL
            || self.jail.chars().any(char::is_control)
        {
            return data(format!("the jail must be 1 to {MAX_JAIL} printable bytes"));
        }
        if self.title.is_empty()
            || self.title.len() > MAX_TITLE
            || self.title.chars().any(char::is_control)
        {
            return data(format!(
                "the title must be 1 to {MAX_TITLE} printable bytes"
            ));
        }
        if self.cooldown.is_some() && self.respawn == Respawn::Never {
            return data(
                "cooldown: a single-shot probe never comes back; give -r, -R or --queue too".into(),
            );
        }
        if let Some(run_as) = &self.run_as {
            check_run_as("run_as", run_as)?;
        }
        for (verb, run) in &self.verbs {
            let name = verb.name();
            if let Some(run_as) = &run.run_as {
                check_run_as(&format!("verb {name}: run_as"), run_as)?;
            }
        }
        for id in [&self.user, &self.group].into_iter().flatten() {
            if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c == ':') {
                return data(format!("'{id}' is not a valid user or group"));
            }
        }
        Ok(())
    }

    /// The part of `validate` that checks every duration against its range (exit 65 from the
    /// command line too, which names the flag; `validate`'s other refusals are usage errors
    /// there).
    pub fn check_durations(&self) -> Result<(), Error> {
        let ranged = [
            ("cooldown", self.cooldown, COOLDOWN_RANGE),
            ("timeout", self.timeout, TIMEOUT_RANGE),
            ("watchdog", self.watchdog, WATCHDOG_RANGE),
        ];
        for (what, duration, range) in ranged {
            if let Some(duration) = duration {
                check_range(what, duration, range)?;
            }
        }
        for (verb, window) in &self.confirm {
            check_range(&format!("confirm {}", verb.name()), *window, CONFIRM_RANGE)?;
        }
        for (verb, run) in &self.verbs {
            if let Some(timeout) = run.timeout {
                check_range(
                    &format!("verb {}: timeout", verb.name()),
                    timeout,
                    TIMEOUT_RANGE,
                )?;
            }
        }
        Ok(())
    }

    /// Every host user its commands run as, with the verb whose own it is (`None`: the
    /// probe's `run_as`, for SIGHUP's command and the verbs without their own).
    pub fn host_users(&self) -> impl Iterator<Item = (Option<Verb>, &str)> {
        let own = self
            .verbs
            .iter()
            .filter_map(|(verb, run)| Some((Some(*verb), run.run_as.as_deref()?)));
        self.run_as
            .as_deref()
            .map(|u| (None, u))
            .into_iter()
            .chain(own)
    }

    /// Its verbs' commands, by name, as `-l` lists them.
    pub fn verb_commands(&self) -> BTreeMap<String, String> {
        self.verbs
            .iter()
            .map(|(verb, run)| (verb.name().to_string(), run.command.clone()))
            .collect()
    }

    /// Its verbs' own host users, by name, as `-l` lists them.
    pub fn verb_run_as(&self) -> BTreeMap<String, String> {
        self.verbs
            .iter()
            .filter_map(|(verb, run)| Some((verb.name().to_string(), run.run_as.clone()?)))
            .collect()
    }

    /// Its verbs' own timeouts, by name, in seconds, as `-l` lists them.
    pub fn verb_timeout_secs(&self) -> BTreeMap<String, u64> {
        self.verbs
            .iter()
            .filter_map(|(verb, run)| Some((verb.name().to_string(), run.timeout?.as_secs())))
            .collect()
    }

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
        let Some(own) = verb.and_then(|verb| self.verbs.get(&verb)) else {
            return run;
        };
        run.command = own.command.clone();
        if let Some(user) = &own.run_as {
            run.run_as = Some(user.clone());
        }
        if let Some(timeout) = own.timeout {
            run.timeout = Some(timeout);
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
        for (verb, run) in &self.verbs {
            let mut text = format!("verb {}", verb.name());
            if commands {
                text += &format!(" runs '{}'", run.command);
            }
            let mut own = Vec::new();
            if let Some(user) = &run.run_as {
                own.push(format!("run as {user}"));
            }
            if let Some(timeout) = &run.timeout {
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
            extras: Extras {
                run_as: Some("nobody".into()),
                timeout: Some(Duration::from_secs(300)),
                ..Extras::default()
            }
            .boxed(),
            ..Definition::default()
        };
        d.verbs.insert(Verb::Usr1, "echo one".into());
        d.verbs.insert(
            Verb::Usr2,
            VerbCommand {
                command: "docker restart web".into(),
                run_as: Some("root".into()),
                timeout: Some(Duration::from_secs(30)),
            },
        );
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

    /// Issue 23: the daemon keeps a definition per probe, so its rare settings are boxed only
    /// when one is set, whichever way it came; a definition with an unset box is still the
    /// plain one, and writes the same.
    #[test]
    fn a_definition_boxes_its_extras_only_when_one_is_set() {
        let plain: Definition = serde_json::from_str(r#"{"command":"x","jail":"1"}"#).unwrap();
        let declared: Definition = toml::from_str("command = \"x\"\njail = \"1\"\n").unwrap();
        assert!(plain.extras.is_none() && declared.extras.is_none());
        assert_eq!((plain.timeout, plain.verbs.len()), (None, 0));
        assert!(Extras::default().boxed().is_none());
        // Twin: one setting boxes them, and the definition is another.
        let timed: Definition =
            serde_json::from_str(r#"{"command":"x","jail":"1","timeout":30}"#).unwrap();
        assert_eq!(
            timed.extras.as_deref().map(|extras| extras.timeout),
            Some(Some(Duration::from_secs(30)))
        );
        assert_ne!(timed, plain);
        // Set through `DerefMut`, even to nothing, they are boxed; equal and written alike.
        let mut unset = plain.clone();
        unset.timeout = None;
        assert!(unset.extras.is_some());
        assert_eq!(unset, plain);
        assert_eq!(
            serde_json::to_string(&unset).unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
    }

    /// Issue 21: one type, read and written by the wire, the state file and the configuration
    /// file with the same keys; the utility's request is byte for byte what it was before.
    #[test]
    fn one_definition_is_the_wire_the_state_file_and_the_configuration_file() {
        let json = r#"{"command":"x","jail":"web","title":"T","respawn":"after_command","user":"www","group":null,"cooldown":90,"timeout":30,"run_as":"backup","persist":true,"verbs":{"USR1":"one","USR2":{"command":"two","run_as":"root","timeout":45}},"confirm":{"USR2":10},"status":true}"#;
        let from_json: Definition = serde_json::from_str(json).unwrap();
        let toml = "command = \"x\"\njail = \"web\"\ntitle = \"T\"\nrespawn = \"after_command\"\n\
                    user = \"www\"\ncooldown = \"90s\"\ntimeout = \"30s\"\nrun_as = \"backup\"\n\
                    persist = true\nconfirm = { USR2 = \"10s\" }\nstatus = true\n\
                    verbs = { USR1 = \"one\", USR2 = { command = \"two\", run_as = \"root\", timeout = \"45s\" } }\n";
        let from_toml: Definition = toml::from_str(toml).unwrap();
        assert_eq!(from_json, from_toml);
        assert_eq!(
            from_json.verbs[&Verb::Usr2].timeout,
            Some(Duration::from_secs(45))
        );
        assert_eq!(from_json.cooldown, Some(Duration::from_secs(90)));
        // Written back, it is the JSON it was read from.
        assert_eq!(serde_json::to_string(&from_json).unwrap(), json);
        // What the utility sends (no verb of its own settings) is the request of before.
        let plain = Definition {
            command: "true".into(),
            jail: "1".into(),
            title: DEFAULT_TITLE.into(),
            respawn: Respawn::Immediately,
            extras: Extras {
                cooldown: Some(Duration::from_secs(60)),
                verbs: [(Verb::Usr1, "echo".into())].into(),
                ..Extras::default()
            }
            .boxed(),
            ..Definition::default()
        };
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"command":"true","jail":"1","title":"jaildaemon-probe","respawn":"immediately","user":null,"group":null,"cooldown":60,"persist":false,"verbs":{"USR1":"echo"}}"#
        );
        // The twins: a number without its unit is refused in the configuration file, and a
        // key none of the three formats has is refused by all.
        let err = toml::from_str::<Definition>("command = \"x\"\njail = \"1\"\ntimeout = 30\n")
            .unwrap_err();
        assert!(
            err.message().contains("30 has no unit"),
            "{}",
            err.message()
        );
        let err = serde_json::from_str::<Definition>(r#"{"command":"x","jail":"1","timeout":-1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("no unit"), "{err}");
        let err = serde_json::from_str::<Definition>(r#"{"command":"x","jail":"1","colour":1}"#)
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = toml::from_str::<Definition>("command = \"x\"\njail = \"1\"\ncolour = 1\n")
            .unwrap_err();
        assert!(err.message().contains("colour"), "{}", err.message());
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
