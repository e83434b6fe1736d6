//! The platform seam. Everything above it is portable; everything below it is one backend per
//! operating system, exporting the same names: `Jail` (opened at once or through a `Lookup`),
//! `Spawner`, `Placement` (probes placed as steps), `Process`, `Exit`, `Poller`,
//! `spawn_command`, `detach`, `peer_credentials`, signal and syslog helpers, and the files the
//! daemon writes (`files`: never through a link, never blocking). Nothing exported here waits
//! on a jail. `unsafe` code lives only here, in each backend's `raw` module.

mod files;
mod posix;
pub use files::{
    Access, Durability, LockedFile, NotLocked, open_own_file, remove_leftovers, replace_file,
};
pub use posix::{
    COMMAND_PATH, ChildChange, Exit, PeerCredentials, Pid, Taken, child_changes, default_sigchld,
    detach, open_syslog, readable_now, standard_process, syslog,
};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "freebsd")]
mod freebsd;
// The FreeBSD backend's pure logic, unit-tested on every platform.
#[cfg(all(test, not(target_os = "freebsd")))]
#[path = "freebsd/pure.rs"]
mod freebsd_pure;
#[cfg(target_os = "freebsd")]
pub use freebsd::*;

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
compile_error!("jaildaemon has backends for Linux and FreeBSD only");
