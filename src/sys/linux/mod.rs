//! Linux backend: a jail is a set of namespaces and cgroups, named by the host PID of a
//! process inside it or by a container name. One module per concern:
//!
//! - `process`: children held by pidfd;
//! - `image`: the probe image and the low descriptor slots (`Spawner`);
//! - `jail`: opening a jail, the answers of its user database, its cgroups;
//! - `lookup`: container names asked of the managers' tools, without waiting;
//! - `placement`: probes placed in a jail, in batches, as steps;
//! - `command`: host commands;
//! - `poller`: the epoll event queue;
//! - `cgroup`: pure, which `cgroup.procs` files put a process into a jail's cgroups;
//! - `survey`: a selector's members listed with the managers' tools, without waiting;
//! - `stream`: a manager's event stream, read in bounded bites;
//! - `raw`: the unsafe syscall wrappers.

mod cgroup;
mod command;
mod image;
mod jail;
mod lookup;
mod placement;
mod poller;
mod process;
mod raw;
mod stream;
mod survey;

use std::fs;
use std::io;
use std::os::fd::BorrowedFd;

use crate::sys::posix::PeerCredentials;

pub use command::{CommandGroup, spawn_command};
pub use image::Spawner;
pub use jail::Jail;
pub use lookup::{Lookup, Opening};
pub use placement::{PLACEMENT_DEADLINE, Placed, Placement, ProbeRequest};
pub use poller::Poller;
pub use process::Process;
pub use raw::{read_signalfd, signalfd};
pub use stream::EventStream;
pub use survey::Survey;

/// The host settings a probe's confinement leans on; each one found wrong is a warning for
/// the log.
pub fn host_warnings() -> Vec<String> {
    let mut warnings = Vec::new();
    if let Ok(value) = fs::read_to_string("/proc/sys/fs/suid_dumpable")
        && value.trim() != "0"
    {
        warnings.push(format!(
            "fs.suid_dumpable is {}: for a moment after switching ids, a probe's helper is dumpable (set it to 0)",
            value.trim()
        ));
    }
    warnings
}

/// SO_PEERCRED and SO_PEERGROUPS of a connected Unix socket.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<PeerCredentials> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    Ok(PeerCredentials {
        pid: cred.pid.as_raw_nonzero().get(),
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
        groups: raw::peer_groups(fd)?,
    })
}

/// How many SIGHUPs from outside its jail an armed probe ignored: the probe keeps the count in
/// its timer slack (1 plus the count; `probe/probe.rs`). Read from the host's procfs while the
/// probe is our unreaped child, so the pid is its own; `None` when it cannot be read.
pub fn ignored_signals(probe: &Process) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{}/timerslack_ns", probe.pid())).ok()?;
    text.trim().parse::<u64>().ok()?.checked_sub(1)
}
