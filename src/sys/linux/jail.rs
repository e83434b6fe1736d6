//! A jail on Linux: a set of namespaces and cgroups, named by the host PID of a process in it
//! or by a container name (looked up by `lookup.rs`, which also holds `Jail::open`: a jail
//! knows nothing of lookups, so that the two modules do not name each other).

use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::process::PidfdFlags;
use rustix::thread::ThreadNameSpaceType;

use super::cgroup;
use crate::error::{Error, Kind};
use crate::ids::IdMap;
use crate::sys::posix::{self, Pid};
use crate::userdb::Cache;

/// Namespace types a probe joins, in the order lxc-attach uses; `setns` on a pidfd applies
/// them together, the user namespace first.
const NAMESPACES: [(&str, ThreadNameSpaceType); 7] = [
    ("user", ThreadNameSpaceType::USER),
    ("pid", ThreadNameSpaceType::PROCESS_ID),
    ("mnt", ThreadNameSpaceType::MOUNT),
    ("net", ThreadNameSpaceType::NETWORK),
    ("uts", ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
    ("ipc", ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
    ("cgroup", ThreadNameSpaceType::CONTROL_GROUP),
];

/// A running jail: a process inside it, held by pidfd, and what the probe needs to enter it.
#[derive(Debug)]
pub struct Jail {
    pub(super) pid: Pid,
    pub(super) pidfd: OwnedFd,
    pub(super) namespaces: ThreadNameSpaceType,
    pub(super) uid_map: Option<IdMap>,
    pub(super) gid_map: Option<IdMap>,
    pub(super) setgroups_allowed: bool,
    /// What its user database answered at the last placements, with the files' identities:
    /// a placement reads a file again only once it changed.
    pub(super) userdb: Box<Cache>,
    /// It is in the host's pid namespace: its probes cannot tell a host process from one of
    /// the jail's, so any host process allowed to signal them can fire them.
    shares_host_pids: bool,
    /// Its pid namespace (device and inode of `/proc/PID/ns/pid`): the same for every PID
    /// that names this jail, and what one `pkill` in it reaches.
    pid_namespace: (u64, u64),
    /// It is in the host's user namespace: its uids are the host's.
    shares_host_users: bool,
    /// The container manager and container name it was found by, for a container named so.
    container: Option<(&'static str, String)>,
}

/// A namespace's identity: device and inode of its `/proc/PID/ns/NAME` link.
fn ns_inode(pid: &str, ns: &str) -> io::Result<(u64, u64)> {
    let meta = fs::metadata(format!("/proc/{pid}/ns/{ns}"))?;
    Ok((meta.dev(), meta.ino()))
}

impl Jail {
    pub(super) fn open_pid(spec: &str, pid: Pid) -> Result<Jail, Error> {
        let no_jail = |why: String| Error::new(Kind::NoJail, format!("jail '{spec}': {why}"));
        let raw = rustix::process::Pid::from_raw(pid).expect("positive");
        let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())
            .map_err(|e| no_jail(format!("no such process ({e})")))?;
        let mut namespaces = ThreadNameSpaceType::empty();
        let mut isolated = false;
        let mut shares_host_pids = false;
        let mut shares_host_users = false;
        let mut pid_namespace = (0, 0);
        for (name, flag) in NAMESPACES {
            let theirs = ns_inode(&pid.to_string(), name)
                .map_err(|e| no_jail(format!("cannot read its {name} namespace: {e}")))?;
            let ours = ns_inode("self", name)
                .map_err(|e| Error::os(format!("reading our {name} namespace"), e))?;
            if flag == ThreadNameSpaceType::PROCESS_ID {
                shares_host_pids = theirs == ours;
                pid_namespace = theirs;
            }
            if flag == ThreadNameSpaceType::USER {
                shares_host_users = theirs == ours;
            }
            if theirs != ours {
                isolated = true;
                namespaces |= flag;
            } else if flag != ThreadNameSpaceType::USER {
                // Joining a namespace we are already in is harmless; joining our own user
                // namespace is refused by the kernel, so that one is only joined when different.
                namespaces |= flag;
            }
        }
        if !isolated {
            return Err(no_jail(
                "process shares every namespace with the host; it is not in a jail".into(),
            ));
        }
        let (uid_map, gid_map, setgroups_allowed) =
            if namespaces.contains(ThreadNameSpaceType::USER) {
                let read = |f: &str| {
                    fs::read_to_string(format!("/proc/{pid}/{f}"))
                        .map_err(|e| no_jail(format!("cannot read its {f}: {e}")))
                };
                let uid_map = IdMap::parse(&read("uid_map")?).map_err(&no_jail)?;
                let gid_map = IdMap::parse(&read("gid_map")?).map_err(no_jail)?;
                (
                    Some(uid_map),
                    Some(gid_map),
                    read("setgroups")?.trim() == "allow",
                )
            } else {
                (None, None, true)
            };
        let jail = Jail {
            pid,
            pidfd,
            namespaces,
            uid_map,
            gid_map,
            setgroups_allowed,
            shares_host_pids,
            pid_namespace,
            shares_host_users,
            container: None,
            userdb: Box::default(),
        };
        jail.check_alive()?;
        Ok(jail)
    }

    /// Whether its probes share the host's pid namespace, and so cannot refuse a signal from a
    /// host process (SECURITY.md).
    pub fn shares_host_pids(&self) -> bool {
        self.shares_host_pids
    }

    /// What tells two names of one running jail apart from two jails: its pid namespace.
    pub fn identity(&self) -> (u64, u64) {
        self.pid_namespace
    }

    /// Whether its uids are the host's (no user namespace of its own): a host process of a
    /// probe's uid can then ptrace a jail process of that uid and make it send the SIGHUP
    /// (SECURITY.md).
    pub fn shares_host_users(&self) -> bool {
        self.shares_host_users
    }

    /// The manager and container name it was found by (`lxc`, `web1`), if named so.
    pub fn container(&self) -> Option<(&str, &str)> {
        self.container.as_ref().map(|(m, n)| (*m, n.as_str()))
    }

    pub(super) fn set_container(&mut self, manager: &'static str, name: &str) {
        self.container = Some((manager, name.to_string()));
    }

    /// What identifies the jail on this host: the PID it was named by.
    pub fn id(&self) -> Pid {
        self.pid
    }

    /// Everything read through /proc/PID before this call belonged to the jail's process:
    /// if the pidfd is still alive, the pid cannot have been recycled in between.
    pub(super) fn check_alive(&self) -> Result<(), Error> {
        if posix::readable_now(self.pidfd.as_fd()) {
            return Err(Error::new(
                Kind::NoJail,
                format!("jail {}: its process has exited", self.pid),
            ));
        }
        Ok(())
    }

    /// Becomes readable when the jail's process exits: for a container, when it stops.
    pub fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.pidfd.as_fd())
    }

    /// The jail's root directory, as an O_PATH descriptor.
    pub(super) fn open_root(&self) -> Result<OwnedFd, Error> {
        let fd = rustix::fs::open(
            format!("/proc/{}/root", self.pid).as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::new(
                Kind::NoJail,
                format!("jail {}: cannot open its root: {e}", self.pid),
            )
        })?;
        self.check_alive()?;
        Ok(fd)
    }

    /// The `cgroup.procs` files that put a process into the jail's cgroups (every hierarchy
    /// where they differ from ours), so that the jail's limits and freezer apply to its probes.
    /// The kernel cannot do this in clone for us once the helper is inside the jail's user
    /// namespace, so the daemon writes the pids. Read once per placement.
    pub(super) fn cgroup_files(&self) -> Result<Vec<PathBuf>, Error> {
        // One read into room enough for these short files: `fs::read_to_string` would stat
        // the file (procfs says size 0) and read it in growing pieces, 32 bytes first, each a
        // system call on the way to answering an arming request.
        let read = |path: String| {
            let mut text = String::with_capacity(4096);
            fs::File::open(&path)
                .and_then(|mut file| file.read_to_string(&mut text))
                .map(|_| text)
                .map_err(|e| Error::os(format!("reading {path}"), e))
        };
        let jail = read(format!("/proc/{}/cgroup", self.pid))?;
        self.check_alive()?;
        let ours = read("/proc/self/cgroup".into())?;
        cgroup::procs_files(&jail, &ours, || read("/proc/self/mountinfo".into()))
    }

    /// Moves `pid` into the jail's cgroups through `files` (from `cgroup_files`).
    pub(super) fn join_cgroups(&self, files: &[PathBuf], pid: Pid) -> Result<(), Error> {
        for file in files {
            fs::write(file, pid.to_string()).map_err(|e| {
                Error::os(
                    format!("joining jail {}'s cgroup {}", self.pid, file.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }
}
