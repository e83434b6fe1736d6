//! The platform seam. Everything above it is portable; everything below it is one backend per
//! operating system, exporting the same names: `Jail`, `ProbeImage`, `Process`, `Exit`,
//! `spawn_probe`, `resolve_ids`, `detach`, `peer_credentials`, signal and syslog helpers.
//! `unsafe` code lives only here, in each backend's `raw` module.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(not(target_os = "linux"))]
compile_error!("jaildaemon has a backend for Linux only so far");
