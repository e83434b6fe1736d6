//! One error type for the whole program: a kind, which fixes the exit code, and a message
//! that names what is wrong. Kinds travel over the socket, so the utility exits with the code
//! of the daemon's refusal.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Bad command line (EX_USAGE).
    Usage,
    /// A request field is out of its documented limits (EX_DATAERR).
    Data,
    /// Unknown user or group, or an id with no mapping in the jail (EX_NOUSER).
    NoUser,
    /// Unknown, dead or not-a-jail target (EX_NOHOST).
    NoJail,
    /// No daemon answers on the socket (EX_UNAVAILABLE).
    Unavailable,
    /// A bug (EX_SOFTWARE).
    Internal,
    /// A system call failed (EX_OSERR).
    Os,
    /// The socket or pidfile is taken by a live daemon, or cannot be created (EX_CANTCREAT).
    CantCreate,
    /// Something did not happen in time (EX_TEMPFAIL).
    Timeout,
    /// A documented limit is reached; retry once probes are gone (EX_TEMPFAIL).
    Limit,
    /// A malformed message on the socket (EX_PROTOCOL).
    Protocol,
    /// Not root, or a peer that is not allowed to talk to the daemon (EX_NOPERM).
    NoPerm,
    /// No probe matches what `-k` named (EX_NOINPUT).
    NoProbe,
    /// A bad configuration or state file (EX_CONFIG).
    Config,
}

impl Kind {
    /// The sysexits(3) code for this kind; the one place that maps errors to exit codes.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => 64,
            Kind::Data => 65,
            Kind::NoProbe => 66,
            Kind::NoUser => 67,
            Kind::NoJail => 68,
            Kind::Unavailable => 69,
            Kind::Internal => 70,
            Kind::Os => 71,
            Kind::CantCreate => 73,
            Kind::Timeout | Kind::Limit => 75,
            Kind::Protocol => 76,
            Kind::NoPerm => 77,
            Kind::Config => 78,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// A failed system call: says what was being attempted, then the errno text.
    pub fn os(what: impl std::fmt::Display, err: std::io::Error) -> Self {
        Error::new(Kind::Os, format!("{what}: {err}"))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
