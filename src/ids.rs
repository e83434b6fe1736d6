//! Pure parsing of user and group ids: passwd/group files and user-namespace id maps.

/// One line of `/proc/PID/uid_map` or `gid_map`: `inside outside count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    ranges: Vec<(u32, u32, u32)>,
}

impl IdMap {
    pub fn parse(text: &str) -> Result<IdMap, String> {
        let mut ranges = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let nums: Vec<u32> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| format!("malformed id map line '{line}'"))?;
            match nums[..] {
                [inside, outside, count] => ranges.push((inside, outside, count)),
                _ => return Err(format!("malformed id map line '{line}'")),
            }
        }
        Ok(IdMap { ranges })
    }

    /// The host id behind `id` inside the namespace, if it is mapped.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        self.ranges.iter().find_map(|&(inside, outside, count)| {
            let offset = id.checked_sub(inside)?;
            (offset < count).then(|| outside + offset)
        })
    }
}

/// Parses an id given as a decimal number; `u32::MAX` is (uid_t)-1, which means "no change".
fn parse_number(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Resolves `user` (a number or a name) against the text of a passwd file.
/// Returns the uid and, when the passwd file lists it, its primary gid.
pub fn resolve_user(user: &str, passwd: &str) -> Option<(u32, Option<u32>)> {
    let entries = || {
        passwd.lines().filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4)
                .then(|| Some((f[0], parse_number(f[2])?, parse_number(f[3])?)))
                .flatten()
        })
    };
    match parse_number(user) {
        Some(uid) => Some((uid, entries().find(|e| e.1 == uid).map(|e| e.2))),
        None => entries().find(|e| e.0 == user).map(|e| (e.1, Some(e.2))),
    }
}

/// Resolves `group` (a number or a name) against the text of a group file.
pub fn resolve_group(group: &str, groups: &str) -> Option<u32> {
    parse_number(group).or_else(|| {
        groups.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == group)
                .then(|| parse_number(f[2]))
                .flatten()
        })
    })
}

/// A host user as a command runs as it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: every group that lists the user as a member, and `gid` (its
    /// primary group, or the one given instead).
    pub groups: Vec<u32>,
}

/// Resolves `user[:group]` against the host's passwd and group files. The user must be
/// known to passwd (a number too, unless a group is given); without a group, it runs with
/// its own primary group. Its supplementary groups are those that list its name, as
/// initgroups(3) would find them.
pub fn resolve_host_user(spec: &str, passwd: &str, groups: &str) -> Result<HostUser, String> {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let unknown_user = || format!("unknown host user '{user}'");
    let (uid, primary) = resolve_user(user, passwd).ok_or_else(unknown_user)?;
    let gid = match group {
        Some(group) => {
            resolve_group(group, groups).ok_or_else(|| format!("unknown host group '{group}'"))?
        }
        None => primary.ok_or_else(unknown_user)?,
    };
    let name = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && parse_number(f[2]) == Some(uid)).then_some(f[0])
    });
    let mut ids = vec![gid];
    if let Some(name) = name {
        for line in groups.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4
                && f[3].split(',').any(|m| m.trim() == name)
                && let Some(id) = parse_number(f[2])
            {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(HostUser {
        uid,
        gid,
        groups: ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nwww:x:80:81::/var/www:/bin/false\nbad line\n";

    #[test]
    fn users_resolve_by_number_and_name() {
        assert_eq!(resolve_user("www", PASSWD), Some((80, Some(81))));
        assert_eq!(resolve_user("80", PASSWD), Some((80, Some(81))));
        assert_eq!(resolve_user("1234", PASSWD), Some((1234, None)));
        assert_eq!(resolve_user("nobody", PASSWD), None);
        assert_eq!(resolve_user("4294967295", PASSWD), None);
        assert_eq!(resolve_user("", PASSWD), None);
    }

    #[test]
    fn groups_resolve_by_number_and_name() {
        let groups = "wheel:x:0:root\nstaff:x:50:\n";
        assert_eq!(resolve_group("staff", groups), Some(50));
        assert_eq!(resolve_group("7", groups), Some(7));
        assert_eq!(resolve_group("nogroup", groups), None);
    }

    #[test]
    fn id_maps_translate_only_mapped_ids() {
        let map = IdMap::parse("         0     100000      65536\n").unwrap();
        assert_eq!(map.to_host(0), Some(100000));
        assert_eq!(map.to_host(65535), Some(165535));
        assert_eq!(map.to_host(65536), None);
        assert!(IdMap::parse("0 1\n").is_err());
        assert!(IdMap::parse("a b c\n").is_err());
    }

    #[test]
    fn a_host_user_comes_with_its_groups_and_an_unknown_one_is_named() {
        let passwd = "root:x:0:0::/root:/bin/sh\nbackup:x:34:34::/var/backups:/bin/sh\n";
        let groups = "root:x:0:\nbackup:x:34:\noperator:x:37:backup\ndisk:x:6:root,backup\n";
        assert_eq!(
            resolve_host_user("backup", passwd, groups),
            Ok(HostUser {
                uid: 34,
                gid: 34,
                groups: vec![6, 34, 37]
            })
        );
        // A group given replaces its primary one, as with initgroups(3).
        assert_eq!(
            resolve_host_user("34:operator", passwd, groups),
            Ok(HostUser {
                uid: 34,
                gid: 37,
                groups: vec![6, 37]
            })
        );
        // A number that passwd does not know takes a group, and has no others.
        assert_eq!(
            resolve_host_user("4000:4000", passwd, groups),
            Ok(HostUser {
                uid: 4000,
                gid: 4000,
                groups: vec![4000]
            })
        );
        for (spec, why) in [
            ("nobody", "unknown host user 'nobody'"),
            ("4000", "unknown host user '4000'"),
            ("backup:wheel", "unknown host group 'wheel'"),
        ] {
            assert_eq!(resolve_host_user(spec, passwd, groups), Err(why.into()));
        }
    }
}
