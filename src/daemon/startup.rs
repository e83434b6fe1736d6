//! What the daemon does before it serves: the pidfile and its lock, taking the socket, the
//! environment it keeps, the probe limits, and telling a service manager how it is doing.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use super::{MAX_PROBES, MAX_PROBES_PER_JAIL};
use crate::error::{Error, Kind};
use crate::proto::{Request, Response};

/// Holds the pidfile's lock for the daemon's lifetime (pidfile(3) semantics). Opened as
/// `sys::open_own_file` opens: a link, FIFO, hard link or someone else's file planted at its
/// path is refused, naming what it is.
pub(super) struct PidFile(crate::sys::LockedFile);

impl PidFile {
    pub(super) fn lock(path: &Path) -> Result<PidFile, Error> {
        crate::sys::LockedFile::take(path, 0o644)
            .map(PidFile)
            .map_err(|refused| match refused {
                crate::sys::NotLocked::Held(pid) => Error::new(
                    Kind::CantCreate,
                    format!(
                        "a jaildaemon (pid {pid}) already holds the pidfile {}",
                        path.display()
                    ),
                ),
                crate::sys::NotLocked::Failed(e) => {
                    Error::new(Kind::CantCreate, format!("pidfile {}: {e}", path.display()))
                }
            })
    }

    pub(super) fn write_pid(&mut self, pid: u32) -> io::Result<()> {
        self.0.write_pid(pid)
    }
}

/// Removes the temporary files a daemon killed while replacing `path` left beside it, saying
/// so. At start only: the directory may be large, and it is not the loop's to read.
pub(super) fn remove_leftovers(path: &Path, what: &str) {
    match crate::sys::remove_leftovers(path) {
        Ok(0) => {}
        Ok(n) => log::info!(
            "removed {n} temporary file(s) left beside {}",
            path.display()
        ),
        Err(e) => log::warn!("{what} {}: looking for leftovers: {e}", path.display()),
    }
}

/// Takes the socket path: refuses if a daemon answers there, removes a stale socket, never
/// removes anything that is not a socket.
pub(super) fn take_socket(path: &Path, group: Option<u32>) -> Result<UnixListener, Error> {
    let cant = |m: String| Error::new(Kind::CantCreate, format!("socket {}: {m}", path.display()));
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(cant("exists and is not a socket; not touching it".into()));
        }
        match crate::client::ask(path, &Request::Ping) {
            Ok(Response::Pong { pid }) => {
                return Err(cant(format!(
                    "a jaildaemon (pid {pid}) is already serving it"
                )));
            }
            Ok(_)
            | Err(Error {
                kind: Kind::Protocol | Kind::Timeout,
                ..
            }) => {
                return Err(cant("something else is listening on it".into()));
            }
            Err(_) => {
                log::info!("removing stale socket {}", path.display());
                std::fs::remove_file(path).map_err(|e| cant(e.to_string()))?;
            }
        }
    }
    // Created with mode 0600 from the start: only root may connect.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.map_err(|e| cant(e.to_string()))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(|e| cant(e.to_string()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(|e| cant(e.to_string()))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| cant(e.to_string()))?;
    Ok(listener)
}

/// Tells a service manager that speaks the sd_notify protocol (systemd's `Type=notify`) how
/// the daemon is doing. Without `NOTIFY_SOCKET` in the environment it does nothing.
pub(super) fn notify_service_manager(state: &str) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        match path.as_bytes().strip_prefix(b"@") {
            // An abstract socket, as systemd uses.
            #[cfg(target_os = "linux")]
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &address)
            }
            _ => socket.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        log::warn!("telling the service manager {state}: {e}");
    }
}

/// `JAILDAEMON_PROBE_LIMITS=TOTAL,PER_JAIL` lowers the probe limits (for tests, or a host
/// that wants tighter ones); it can never raise them.
pub(super) fn probe_limits() -> Result<(usize, usize), Error> {
    let Some(value) = std::env::var_os("JAILDAEMON_PROBE_LIMITS") else {
        return Ok((MAX_PROBES, MAX_PROBES_PER_JAIL));
    };
    let bad = || {
        Error::new(
            Kind::Usage,
            format!(
                "JAILDAEMON_PROBE_LIMITS={}: want TOTAL,PER_JAIL, at most {MAX_PROBES},{MAX_PROBES_PER_JAIL}",
                value.to_string_lossy()
            ),
        )
    };
    let text = value.to_str().ok_or_else(bad)?;
    let (total, per_jail) = text.split_once(',').ok_or_else(bad)?;
    let parse = |n: &str, max: usize| {
        n.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
    };
    let total = parse(total, MAX_PROBES).ok_or_else(bad)?;
    let per_jail = parse(per_jail, MAX_PROBES_PER_JAIL).ok_or_else(bad)?;
    log::info!("probe limits lowered to {total} in all, {per_jail} per jail");
    Ok((total, per_jail))
}

/// The only variables the daemon keeps from its environment. `JOURNAL_STREAM` (systemd's
/// "stderr is the journal", a device and inode number) decides whether `-F` stamps its lines;
/// `JAILDAEMON_EVENT_STREAMS=off` keeps the managers' event streams off (the benchmark).
pub const KEPT_VARIABLES: [&str; 4] = [
    "NOTIFY_SOCKET",
    "JAILDAEMON_PROBE_LIMITS",
    "JOURNAL_STREAM",
    super::fleets::STREAMS_VARIABLE,
];

/// Starts the daemon again with an empty environment (but for `KEPT_VARIABLES`), once: until a
/// probe's helper execs, it holds a copy of the daemon's memory, environment block included,
/// and a jail root without CAP_SYS_PTRACE may still read /proc/PID/environ of it. Whatever the
/// administrator's shell or service manager had in there stays out of the jail.
pub(super) fn shed_environment() -> Result<(), Error> {
    let extra = std::env::vars_os().any(|(name, _)| {
        !KEPT_VARIABLES
            .iter()
            .any(|kept| name == std::ffi::OsStr::new(kept))
    });
    if !extra {
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| Error::os("finding our own executable", e))?;
    let kept = std::env::vars_os().filter(|(name, _)| {
        KEPT_VARIABLES
            .iter()
            .any(|kept| name == std::ffi::OsStr::new(kept))
    });
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env_clear()
        .envs(kept)
        .exec();
    Err(Error::os("starting again with an empty environment", err))
}
