//! The daemon's names for what it holds: numbers, given out by the core and the shell, that
//! the core, its log budgets and the shell all use. A leaf: it names nothing of the daemon, so
//! that the modules using them need not name each other.

pub type ProbeId = u64;
pub type ClientId = u64;
pub type PlacementId = u64;
pub type CommandId = u64;
/// A jail as the host knows it: the PID of its process (Linux) or its jid (FreeBSD).
pub type JailId = i32;
