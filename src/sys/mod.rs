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
    ChildChange, Exit, PeerCredentials, Pid, child_changes, default_sigchld, detach, open_syslog,
    readable_now, syslog,
};

/// PATH of every command and of the container managers' tools. The rest of a command's
/// environment is the JAILDAEMON_* variables; nothing of the daemon's own reaches it.
pub const COMMAND_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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

use crate::error::{Error, Kind};

/// Resolves `-u` and `-g` (numbers, or names in the jail's own /etc/passwd and /etc/group) to
/// ids inside the jail. Without `-u` the probe is the jail's root; without `-g` it takes the
/// user's primary group, or the uid's number when the jail does not list that user.
pub fn resolve_ids(
    jail: &Jail,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), Error> {
    let unknown = |what: &str, name: &str| {
        Error::new(
            Kind::NoUser,
            format!("unknown {what} '{name}' in jail {}", jail.id()),
        )
    };
    // A jail without the file knows its users by number only; a jail whose file cannot be
    // read (gone, or a loop of links) is not a jail to place a probe in.
    let database = |path: &str| match jail.read_file(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        // Something is mounted over it (RESOLVE_NO_XDEV): not read, as host root, on the
        // jail's terms.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Err(Error::new(
            Kind::NoJail,
            format!(
                "jail {}: its /{path} is a mount point, not a file of its root filesystem; refused",
                jail.id()
            ),
        )),
        Err(e) => Err(Error::new(
            Kind::NoJail,
            format!("jail {}: cannot read its /{path}: {e}", jail.id()),
        )),
    };
    let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let (uid, primary) = match user {
        None => (0, Some(0)),
        // Numbers with a group given need no database: none is read.
        Some(u) if number(u) && group.is_some() => {
            crate::ids::resolve_user(u, "").ok_or_else(|| unknown("user", u))?
        }
        Some(u) => crate::ids::resolve_user(u, &database("etc/passwd")?)
            .ok_or_else(|| unknown("user", u))?,
    };
    let gid = match group {
        Some(g) if number(g) => {
            crate::ids::resolve_group(g, "").ok_or_else(|| unknown("group", g))?
        }
        Some(g) => crate::ids::resolve_group(g, &database("etc/group")?)
            .ok_or_else(|| unknown("group", g))?,
        None => primary.unwrap_or(uid),
    };
    jail.check_ids(uid, gid)?;
    Ok((uid, gid))
}
