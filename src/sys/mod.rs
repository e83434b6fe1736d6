//! The platform seam. Everything above it is portable; everything below it is one backend per
//! operating system, exporting the same names: `Jail`, `ProbeImage`, `Process`, `Exit`,
//! `spawn_probe`, `resolve_ids`, `detach`, `peer_credentials`, signal and syslog helpers.
//! `unsafe` code lives only here, in each backend's `raw` module.

mod posix;
pub use posix::{Exit, PeerCredentials, default_sigchld, detach, open_syslog, syslog};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "freebsd")]
mod freebsd;
#[cfg(target_os = "freebsd")]
pub use freebsd::*;

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
compile_error!("jaildaemon has backends for Linux and FreeBSD only");
