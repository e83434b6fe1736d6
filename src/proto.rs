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
pub use crate::definition::{
    CONFIRM_RANGE, COOLDOWN_RANGE, DEFAULT_TITLE, MAX_COMMAND, MAX_JAIL, MAX_TITLE, Respawn,
    TIMEOUT_RANGE, WATCHDOG_RANGE,
};

/// A request to arm a probe is the probe's options (`definition::Definition`), `persist`
/// (`-P`) included: its JSON form is theirs, with their keys.
pub type Arm = crate::definition::Definition;

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
    use crate::definition::{Verb, VerbCommand};
    use std::time::Duration;

    fn arm() -> Arm {
        Arm {
            command: "true".into(),
            jail: "1".into(),
            title: "T".into(),
            respawn: Respawn::Never,
            ..Arm::default()
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
        let secs = |s: u64| Some(Duration::from_secs(s));
        let mut a = arm();
        a.respawn = Respawn::Immediately;
        for (s, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            a.cooldown = secs(s);
            assert_eq!(a.validate().is_ok(), ok, "{s}");
        }
        let mut t = arm();
        for (s, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            t.timeout = secs(s);
            assert_eq!(t.validate().is_ok(), ok, "{s}");
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
        // A verb's own host user and timeout: the same checks, naming the verb. (That they
        // belong to a verb of the probe is no check any more: they are held by the verb.)
        let own = |run_as: &str, timeout: u64| VerbCommand {
            command: "true".into(),
            run_as: Some(run_as.into()),
            timeout: secs(timeout),
        };
        t.verbs.insert(Verb::Usr2, own("root", 30));
        assert!(t.validate().is_ok());
        for (run_as, s, why) in [
            (
                "a:b:c",
                30,
                "verb USR2: run_as: 'a:b:c' is not user or user:group",
            ),
            ("root", 0, "verb USR2: timeout: 0s is out of range"),
            ("root", 86_401, "verb USR2: timeout: 24h1s is out of range"),
        ] {
            let mut v = t.clone();
            v.verbs.insert(Verb::Usr2, own(run_as, s));
            let err = v.validate().unwrap_err();
            assert!(err.message.starts_with(why), "{why}: {}", err.message);
        }
        // Nor can a request give one to a verb the probe lacks: the keys of a verb's own
        // settings are its table's, and a request with the keys of before is refused whole.
        let body = br#"{"op":"arm","command":"x","jail":"1","title":"T","respawn":"never","user":null,"group":null,"verb_run_as":{"USR1":"root"}}"#;
        let mut frame = BANNER.to_vec();
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(body);
        let err = decode::<Request>(&frame).unwrap_err();
        assert!(err.message.contains("verb_run_as"), "{}", err.message);
        a.respawn = Respawn::Never;
        a.cooldown = secs(60);
        let err = a.validate().unwrap_err();
        assert_eq!(err.kind, Kind::Data);
        assert!(err.message.starts_with("cooldown:"), "{}", err.message);
    }
}
