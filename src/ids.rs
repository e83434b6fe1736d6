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
}
