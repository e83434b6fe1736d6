//! The wire format between utility and daemon; the only module that knows it.
//!
//! A frame is a 4-byte banner `JD` + version + 0, a 4-byte big-endian body length, and a JSON
//! body. One request and one response per connection.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Kind};

pub const VERSION: u8 = 1;
const BANNER: [u8; 4] = [b'J', b'D', VERSION, 0];
const HEADER_LEN: usize = 8;

/// Largest request body.
pub const MAX_BODY: usize = 16 * 1024;
/// Largest answer body: a list of every probe, commands included, fits.
pub const MAX_ANSWER: usize = 128 * 1024 * 1024;
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
pub const CONFIRM_RANGE: std::ops::RangeInclusive<u64> = 1..=crate::MAX_CONFIRM_SECS;
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    pub command: String,
    pub jail: String,
    pub title: String,
    pub respawn: Respawn,
    pub user: Option<String>,
    pub group: Option<String>,
    /// `--cooldown`, in seconds: a fired probe comes back no sooner than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<u64>,
    /// `--timeout`, in seconds: a command still running then is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// `--run-as user[:group]`: the host user the command runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// `-P`: kept in the daemon's state file, so that it survives restarts.
    #[serde(default)]
    pub persist: bool,
    /// `--verb SIG=COMMAND`: a command per verb signal (`USR1`, `USR2`) beside `command`,
    /// which stays SIGHUP's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verbs: BTreeMap<String, String>,
    /// `--confirm SIG=duration`, in seconds: that verb runs only when its signal comes twice
    /// within this window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub confirm: BTreeMap<String, u64>,
    /// A verb's own host user, replacing `run_as` for its runs. Only the configuration file
    /// sets one (`USR2 = { command = "…", run_as = "root" }`); the utility never does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verb_run_as: BTreeMap<String, String>,
    /// A verb's own timeout, in seconds, replacing `timeout` for its runs (the configuration
    /// file's `USR2 = { command = "…", timeout = "30s" }`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verb_timeout: BTreeMap<String, u64>,
    /// `--watchdog`, in seconds: the jail must signal the probe at least once per period, or
    /// the command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<u64>,
    /// `--status`: the probe's command line carries its last command's result after the title.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status: bool,
}

// A request is decoded once per connection and dropped once handled, never kept in bulk:
// the size of its largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// "Is a daemon alive here?", asked by a starting daemon.
    Ping,
    Arm(Arm),
    /// `-l`: every probe the daemon holds.
    List,
    /// `-k`: remove the probe with this id or title from `jail` (as named, or its id).
    Remove {
        probe: String,
        jail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Pong {
        pid: u32,
    },
    Armed {
        probe: u64,
        pid: i32,
        /// What the utility prints on stderr, though the probe is armed: another probe with
        /// its title in the same jail, a uid the jail shares with the host. Left out when
        /// empty, so an answer without warnings reads as before they existed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    Probes {
        probes: Vec<ProbeInfo>,
    },
    Removed {
        probes: Vec<u64>,
        /// Notes for stderr: a title that named several probes, or that other probes of the
        /// same jail, named otherwise, still carry. Left out when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    Refused(Error),
}

/// Where a probe comes from, which decides what survives a restart or a jail's stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Armed with `-c`: lives until fired or removed, as in 0.2.
    Command,
    /// Armed with `-c -P`: also kept in the state file.
    Persisted,
    /// Declared in the configuration file.
    Config,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// Its jail is being looked up, or its process placed there.
    Placing,
    /// A probe process waits in the jail.
    Armed,
    /// Its command runs; no probe process now.
    Running,
    /// A single shot that fired: armed again when its jail runs again.
    Spent,
    /// Its jail runs, but it ended without firing or could not be placed: placed again after
    /// a back-off.
    Retrying,
    /// Its jail is not running; it is armed when the jail runs again.
    Waiting,
    /// It fired and comes back when its cooldown is over; `last` says when.
    Cooling,
    /// It cannot be placed for a reason no retry fixes (an unknown user, say); `last` says
    /// which.
    Refused,
}

/// One line of `jaildaemon -l`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeInfo {
    pub id: u64,
    /// The jail as named, and the host's id for it (PID or jid) while it is known.
    pub jail: String,
    pub jail_id: Option<i32>,
    pub title: String,
    pub command: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub respawn: Respawn,
    pub origin: Origin,
    pub state: ProbeState,
    /// Host PID of the probe process while armed.
    pub pid: Option<i32>,
    pub fired: u64,
    /// What happened last: the command's end, or why the probe is waiting.
    pub last: Option<String>,
    // Every setting is sent, a default one too (`null`, `{}`, `false`), so that `-l --json`
    // shows what a probe will do without a reader knowing the defaults; each has a default
    // when read, so that an answer without them still reads.
    /// `--run-as`: the host user (and group) its commands run as; `None`: root.
    #[serde(default)]
    pub run_as: Option<String>,
    /// `--timeout`, in seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `--cooldown`, in seconds.
    #[serde(default)]
    pub cooldown_secs: Option<u64>,
    /// `--status`: its command line in the jail shows its last command's result.
    #[serde(default)]
    pub status: bool,
    /// Its verbs: signal name (`USR1`, `USR2`) to command.
    #[serde(default)]
    pub verbs: BTreeMap<String, String>,
    /// Its verbs that need confirming: signal name to window, in seconds.
    #[serde(default)]
    pub confirm: BTreeMap<String, u64>,
    /// Its verbs with a host user of their own: signal name to `user[:group]`.
    #[serde(default)]
    pub verb_run_as: BTreeMap<String, String>,
    /// Its verbs with a timeout of their own: signal name to seconds.
    #[serde(default)]
    pub verb_timeout_secs: BTreeMap<String, u64>,
    /// A watchdog probe: its period in seconds.
    #[serde(default)]
    pub watchdog: Option<u64>,
    /// A watchdog probe whose period runs: milliseconds until its command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_left_ms: Option<u64>,
    /// A probe of a selector's member: the selector as declared (its jail is the member's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// A message type and the largest body accepted for it.
pub trait Message: for<'de> Deserialize<'de> {
    const MAX_BODY: usize;
}

impl Message for Request {
    const MAX_BODY: usize = MAX_BODY;
}

impl Message for Response {
    const MAX_BODY: usize = MAX_ANSWER;
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

/// A command's timeout, in seconds: within `TIMEOUT_RANGE`. `what` names it.
fn check_timeout(what: &str, secs: u64) -> Result<(), Error> {
    if TIMEOUT_RANGE.contains(&secs) {
        return Ok(());
    }
    Err(Error::new(
        Kind::Data,
        format!(
            "{what}: {} is out of range; it must be 1s to 24h",
            crate::definition::show_duration(secs)
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

impl Arm {
    /// A setting of verb `name` (`setting` is its key) needs that verb on this probe.
    fn check_own_verb(&self, name: &str, setting: &str) -> Result<(), Error> {
        if self.verbs.contains_key(name) {
            return Ok(());
        }
        Err(Error::new(
            Kind::Data,
            format!("verb {name}: {setting}: not a verb of this probe; give the verb a command"),
        ))
    }

    /// Checks every field against its documented limit.
    pub fn validate(&self) -> Result<(), Error> {
        let data = |m: String| Err(Error::new(Kind::Data, m));
        check_command("the command", &self.command)?;
        for (name, command) in &self.verbs {
            if crate::definition::Verb::parse(name).is_none() {
                return data(format!(
                    "verb '{name}' is not a verb signal; the verbs are USR1 and USR2 (SIGHUP runs the command)"
                ));
            }
            check_command(&format!("verb {name}: the command"), command)?;
        }
        for (name, secs) in &self.confirm {
            if !self.verbs.contains_key(name) {
                return data(format!(
                    "confirm {name}: not a verb of this probe; only a verb (USR1, USR2) can need confirming"
                ));
            }
            if !CONFIRM_RANGE.contains(secs) {
                return data(format!(
                    "confirm {name}: {} is out of range; it must be 1s to 1h",
                    crate::definition::show_duration(*secs)
                ));
            }
        }
        if let Some(secs) = self.watchdog {
            if !WATCHDOG_RANGE.contains(&secs) {
                return data(format!(
                    "watchdog: {} is out of range; it must be 1s to 24h",
                    crate::definition::show_duration(secs)
                ));
            }
            if self.respawn != Respawn::Never || self.cooldown.is_some() || !self.verbs.is_empty() {
                return data(
                    "watchdog: a watchdog probe comes back after every signal by itself; it takes no -r, -R, --queue, --cooldown or verbs"
                        .into(),
                );
            }
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
        if let Some(secs) = self.cooldown {
            if !COOLDOWN_RANGE.contains(&secs) {
                return data(format!(
                    "cooldown: {} is out of range; it must be 1s to 24h",
                    crate::definition::show_duration(secs)
                ));
            }
            if self.respawn == Respawn::Never {
                return data(
                    "cooldown: a single-shot probe never comes back; give -r, -R or --queue too"
                        .into(),
                );
            }
        }
        if let Some(secs) = self.timeout {
            check_timeout("timeout", secs)?;
        }
        if let Some(run_as) = &self.run_as {
            check_run_as("run_as", run_as)?;
        }
        for (name, run_as) in &self.verb_run_as {
            self.check_own_verb(name, "run_as")?;
            check_run_as(&format!("verb {name}: run_as"), run_as)?;
        }
        for (name, secs) in &self.verb_timeout {
            self.check_own_verb(name, "timeout")?;
            check_timeout(&format!("verb {name}: timeout"), *secs)?;
        }
        for id in [&self.user, &self.group].into_iter().flatten() {
            if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_control() || c == ':') {
                return data(format!("'{id}' is not a valid user or group"));
            }
        }
        Ok(())
    }
}

pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("wire types always serialize");
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&BANNER);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decodes one frame from the start of `buf`. `Ok(None)` means "not complete yet"; an error
/// is final, and comes as soon as the header shows the frame cannot be valid.
pub fn decode<T: Message>(buf: &[u8]) -> Result<Option<T>, Error> {
    let protocol = |m: String| Err(Error::new(Kind::Protocol, m));
    let have = buf.len().min(BANNER.len());
    if buf[..have] != BANNER[..have] {
        if have >= 3 && buf[..2] == BANNER[..2] && buf[2] != VERSION {
            return protocol(format!(
                "protocol version {} is not supported (this is version {VERSION})",
                buf[2]
            ));
        }
        return protocol("not a jaildaemon message (bad banner)".into());
    }
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if len > T::MAX_BODY {
        return protocol(format!(
            "message of {len} bytes exceeds the limit of {}",
            T::MAX_BODY
        ));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    if buf.len() > HEADER_LEN + len {
        return protocol("trailing bytes after the message".into());
    }
    serde_json::from_slice(&buf[HEADER_LEN..])
        .map(Some)
        .or_else(|e| protocol(format!("malformed message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm() -> Arm {
        Arm {
            command: "true".into(),
            jail: "1".into(),
            title: "T".into(),
            respawn: Respawn::Never,
            user: None,
            group: None,
            cooldown: None,
            timeout: None,
            run_as: None,
            persist: false,
            verbs: Default::default(),
            confirm: Default::default(),
            verb_run_as: Default::default(),
            verb_timeout: Default::default(),
            status: false,
            watchdog: None,
        }
    }

    #[test]
    fn requests_round_trip_and_partial_frames_wait() {
        let frame = encode(&Request::Arm(arm()));
        for cut in 0..frame.len() {
            assert_eq!(
                decode::<Request>(&frame[..cut]).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode::<Request>(&frame).unwrap(),
            Some(Request::Arm(arm()))
        );
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let err = |b: &[u8]| decode::<Request>(b).unwrap_err().message;
        assert!(err(b"GET / HTTP/1.1").contains("bad banner"));
        assert!(err(&[b'J', b'D', 9, 0]).contains("version 9"));
        assert!(err(&[b'J', b'D', VERSION, 0, 0, 1, 0, 0]).contains("exceeds"));
        let mut frame = encode(&Request::Ping);
        frame.push(b'x');
        assert!(err(&frame).contains("trailing"));
        let mut body = encode(&Request::Ping);
        body[8] = b'!';
        assert!(err(&body).contains("malformed"));
        let unknown = br#"{"op":"format_disk"}"#;
        let mut f = BANNER.to_vec();
        f.extend_from_slice(&(unknown.len() as u32).to_be_bytes());
        f.extend_from_slice(unknown);
        assert!(err(&f).contains("malformed"));
    }

    #[test]
    fn limits_are_enforced() {
        assert!(arm().validate().is_ok());
        let mut a = arm();
        a.command = "x".repeat(MAX_COMMAND + 1);
        assert_eq!(a.validate().unwrap_err().kind, Kind::Data);
        let mut a = arm();
        a.title = "x".repeat(MAX_TITLE + 1);
        assert!(a.validate().is_err());
        let mut a = arm();
        a.title = "a\nb".into();
        assert!(a.validate().is_err());
        let mut a = arm();
        a.command = " ".into();
        assert!(a.validate().is_err());
        let mut a = arm();
        a.user = Some("a:b".into());
        assert!(a.validate().is_err());
        // A cooldown: within its range, and only on a probe that comes back.
        let mut a = arm();
        a.respawn = Respawn::Immediately;
        for (secs, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            a.cooldown = Some(secs);
            assert_eq!(a.validate().is_ok(), ok, "{secs}");
        }
        let mut t = arm();
        for (secs, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            t.timeout = Some(secs);
            assert_eq!(t.validate().is_ok(), ok, "{secs}");
        }
        t.timeout = None;
        for (run_as, ok) in [
            ("backup", true),
            ("backup:operator", true),
            ("1001:1001", true),
            ("", false),
            (":wheel", false),
            ("backup:", false),
            ("a:b:c", false),
        ] {
            t.run_as = Some(run_as.into());
            assert_eq!(t.validate().is_ok(), ok, "{run_as}");
        }
        t.run_as = None;
        // A verb's own host user and timeout: the same checks, naming the verb, and only for
        // a verb the probe has.
        t.verbs.insert("USR2".into(), "true".into());
        t.verb_run_as.insert("USR2".into(), "root".into());
        t.verb_timeout.insert("USR2".into(), 30);
        assert!(t.validate().is_ok());
        for (verb, run_as, secs, why) in [
            (
                "USR2",
                "a:b:c",
                30,
                "verb USR2: run_as: 'a:b:c' is not user or user:group",
            ),
            ("USR2", "root", 0, "verb USR2: timeout: 0s is out of range"),
            (
                "USR2",
                "root",
                86_401,
                "verb USR2: timeout: 24h1s is out of range",
            ),
            (
                "USR1",
                "root",
                30,
                "verb USR1: run_as: not a verb of this probe",
            ),
        ] {
            let mut v = t.clone();
            v.verb_run_as = [(verb.to_string(), run_as.to_string())].into();
            v.verb_timeout = [("USR2".to_string(), secs)].into();
            let err = v.validate().unwrap_err();
            assert!(err.message.starts_with(why), "{why}: {}", err.message);
        }
        let mut v = t.clone();
        v.verb_timeout = [("USR1".to_string(), 30)].into();
        let err = v.validate().unwrap_err();
        assert!(
            err.message.starts_with("verb USR1: timeout: not a verb"),
            "{}",
            err.message
        );
        a.respawn = Respawn::Never;
        a.cooldown = Some(60);
        let err = a.validate().unwrap_err();
        assert_eq!(err.kind, Kind::Data);
        assert!(err.message.starts_with("cooldown:"), "{}", err.message);
    }
}
