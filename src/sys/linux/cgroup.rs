//! Which `cgroup.procs` files put a process into a jail's cgroups, on cgroup v2, v1 or both
//! (hybrid). Pure parsing of `/proc/PID/cgroup` and `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

/// One line of `/proc/PID/cgroup`: `id:controllers:path`; controllers are empty for v2.
#[derive(Debug, PartialEq, Eq)]
struct Membership<'a> {
    controllers: Vec<&'a str>,
    path: &'a str,
}

fn memberships(text: &str) -> Vec<Membership<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let mut controllers: Vec<&str> =
                controllers.split(',').filter(|c| !c.is_empty()).collect();
            controllers.sort_unstable();
            Some(Membership { controllers, path })
        })
        .collect()
}

/// A mounted cgroup hierarchy: its controllers (empty for cgroup2), the cgroup path at its
/// root, and where it is mounted.
#[derive(Debug, PartialEq, Eq)]
struct Mount<'a> {
    controllers: Vec<&'a str>,
    root: &'a str,
    point: &'a str,
}

fn mounts(mountinfo: &str) -> Vec<Mount<'_>> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (root, point) = (*left.get(3)?, *left.get(4)?);
            let controllers = match *right.first()? {
                "cgroup2" => Vec::new(),
                "cgroup" => {
                    let mut c: Vec<&str> = right
                        .get(2)?
                        .split(',')
                        .filter(|o| {
                            !matches!(*o, "rw" | "ro")
                                && !o.starts_with("release_agent")
                                && *o != "clone_children"
                        })
                        .collect();
                    c.sort_unstable();
                    c
                }
                _ => return None,
            };
            Some(Mount {
                controllers,
                root,
                point,
            })
        })
        .collect()
}

/// The `cgroup.procs` files to write a pid into so that it joins every cgroup of the jail
/// where the jail's differs from ours. A hierarchy that is not mounted is skipped.
/// `mountinfo` is asked for only when some hierarchy differs: a jail in our own cgroups (a
/// namespace jail started from the daemon's) costs no read of our mount table, which is long,
/// on the way to answering an arming request.
pub fn procs_files<E>(
    jail: &str,
    ours: &str,
    mountinfo: impl FnOnce() -> Result<String, E>,
) -> Result<Vec<PathBuf>, E> {
    let ours = memberships(ours);
    let differing: Vec<Membership<'_>> = memberships(jail)
        .into_iter()
        .filter(|m| !ours.contains(m))
        .collect();
    if differing.is_empty() {
        return Ok(Vec::new());
    }
    let mountinfo = mountinfo()?;
    let mounts = mounts(&mountinfo);
    let mut files = Vec::new();
    for m in differing {
        let Some(mount) = mounts
            .iter()
            .find(|mount| mount.controllers == m.controllers)
        else {
            continue;
        };
        let Some(relative) = m.path.strip_prefix(mount.root) else {
            continue;
        };
        let dir = Path::new(mount.point).join(relative.trim_start_matches('/'));
        files.push(dir.join("cgroup.procs"));
    }
    Ok(files)
}

/// Which kind of hierarchy holds a command's own cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// cgroup v2: `cgroup.kill` and `cgroup.freeze`, no controller needed.
    V2,
    /// A v1 freezer hierarchy: `freezer.state`.
    Freezer,
}

/// The directory of our own cgroup in the hierarchy that can stop a command with all it
/// started: the cgroup v2 one where mounted (on a hybrid host too), else a v1 freezer.
pub fn own_group_dir(ours: &str, mountinfo: &str) -> Option<(PathBuf, GroupKind)> {
    let ours = memberships(ours);
    let mounts = mounts(mountinfo);
    for (wanted, kind) in [
        (Vec::new(), GroupKind::V2),
        (vec!["freezer"], GroupKind::Freezer),
    ] {
        let Some(member) = ours.iter().find(|m| m.controllers == wanted) else {
            continue;
        };
        let Some(mount) = mounts.iter().find(|m| m.controllers == wanted) else {
            continue;
        };
        let Some(relative) = member.path.strip_prefix(mount.root) else {
            continue;
        };
        let dir = Path::new(mount.point).join(relative.trim_start_matches('/'));
        return Some((dir, kind));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpuacct,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    /// `procs_files` with the mount table at hand.
    fn files(jail: &str, ours: &str, mountinfo: &str) -> Vec<PathBuf> {
        let read: Result<_, ()> = procs_files(jail, ours, || Ok(mountinfo.to_string()));
        read.expect("the mount table reads")
    }

    #[test]
    fn only_differing_hierarchies_are_joined() {
        let ours = "2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n";
        let jail = "2:cpu,cpuacct:/lxc/web1\n1:name=systemd:/\n0::/lxc.payload.web1\n";
        assert_eq!(
            files(jail, ours, MOUNTINFO),
            [
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/lxc/web1/cgroup.procs"),
                PathBuf::from("/sys/fs/cgroup/unified/lxc.payload.web1/cgroup.procs"),
            ]
        );
        assert!(files(ours, ours, MOUNTINFO).is_empty());
    }

    #[test]
    fn the_mount_table_is_read_only_when_a_hierarchy_differs() {
        let ours = "2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n";
        let reads = std::cell::Cell::new(0);
        let unreadable = || {
            reads.set(reads.get() + 1);
            Err("mountinfo unreadable")
        };
        // The jail in our own cgroups, listed in another order: nothing to join, nothing read.
        let same = "0::/\n1:name=systemd:/\n2:cpuacct,cpu:/\n";
        assert_eq!(procs_files(same, ours, unreadable), Ok(Vec::new()));
        assert_eq!(reads.get(), 0);
        // One hierarchy differs: the table is read, and a failure to read it is the caller's.
        let jail = "2:cpu,cpuacct:/\n1:name=systemd:/\n0::/lxc.payload.web1\n";
        assert_eq!(
            procs_files(jail, ours, unreadable),
            Err("mountinfo unreadable")
        );
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn pure_v2_and_unmounted_hierarchies() {
        let v2 = "90 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            files("0::/machine/c1\n", "0::/init.scope\n", v2),
            [PathBuf::from("/sys/fs/cgroup/machine/c1/cgroup.procs")]
        );
        assert!(files("3:pids:/c1\n", "3:pids:/\n", v2).is_empty());
    }

    #[test]
    fn a_command_group_goes_under_our_own_v2_cgroup_else_our_freezer() {
        let hybrid = format!(
            "{MOUNTINFO}37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
        );
        let ours = "6:freezer:/f\n1:name=systemd:/\n0::/user.slice\n";
        assert_eq!(
            own_group_dir(ours, &hybrid),
            Some((
                PathBuf::from("/sys/fs/cgroup/unified/user.slice"),
                GroupKind::V2
            ))
        );
        let no_v2: String = hybrid
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            own_group_dir(ours, &no_v2),
            Some((
                PathBuf::from("/sys/fs/cgroup/freezer/f"),
                GroupKind::Freezer
            ))
        );
        assert_eq!(own_group_dir("1:name=systemd:/\n", MOUNTINFO), None);
    }
}
