//! A jail's user database (`/etc/passwd`, `/etc/group`) as a probe's helper reads it, inside
//! the jail and off the daemon's loop: what a probe asks (`-u`, `-g`), the limits of a parse,
//! the refusals a helper reports as numbers, and the daemon's memory of earlier answers, so
//! that an unchanged file is not read again. Pure: no I/O, and the parsers allocate nothing,
//! because a helper runs them in a fork of the daemon.

use std::collections::HashMap;

use crate::error::{Error, Kind};

/// The largest user database a helper reads (bytes).
pub const MAX_BYTES: usize = 4 << 20;
/// The most lines a user database may have.
pub const MAX_LINES: usize = 100_000;

/// One of the two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum File {
    Passwd = 0,
    Group = 1,
}

impl File {
    pub const BOTH: [File; 2] = [File::Passwd, File::Group];

    /// Its path below the jail's root.
    pub fn path(self) -> &'static str {
        match self {
            File::Passwd => "etc/passwd",
            File::Group => "etc/group",
        }
    }

    fn from_number(n: u64) -> File {
        if n == 1 { File::Group } else { File::Passwd }
    }
}

/// What a probe asks for: `-u` and `-g` as given (numbers or names), both optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub user: Option<String>,
    pub group: Option<String>,
}

fn is_number(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

impl Query {
    /// Whether resolving it reads `file`: passwd for a user, unless it is a number and a
    /// group is given; group for a group name.
    pub fn needs(&self, file: File) -> bool {
        match file {
            File::Passwd => self
                .user
                .as_deref()
                .is_some_and(|u| !(is_number(u) && self.group.is_some())),
            File::Group => self.group.as_deref().is_some_and(|g| !is_number(g)),
        }
    }

    /// The name it looks up in `file`, if it needs that file.
    pub fn key(&self, file: File) -> Option<&str> {
        if !self.needs(file) {
            return None;
        }
        match file {
            File::Passwd => self.user.as_deref(),
            File::Group => self.group.as_deref(),
        }
    }
}

/// What one file said of a query's name: for passwd the uid and the user's primary gid (if
/// the file lists the user), for group the gid. `None`: the name is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Answer {
    pub id: Option<u32>,
    /// passwd only: the primary gid of the uid found.
    pub primary: Option<u32>,
}

impl Answer {
    /// As one number for a status message: id and primary gid, each `u32::MAX` for none
    /// (`u32::MAX` is never an id: it means "no change" to the kernel).
    pub fn encode(self) -> u64 {
        let part = |v: Option<u32>| u64::from(v.unwrap_or(u32::MAX));
        part(self.id) | part(self.primary) << 32
    }

    pub fn decode(value: u64) -> Answer {
        let part = |v: u64| Some(v as u32).filter(|&v| v != u32::MAX);
        Answer {
            id: part(value & 0xffff_ffff),
            primary: part(value >> 32),
        }
    }
}

/// Parses an id given as a decimal number; `u32::MAX` is (uid_t)-1, which means "no change".
fn number(field: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(field).ok()?;
    text.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Entries of a passwd or group file: the first four colon-separated fields of each line
/// (missing ones empty). Allocates nothing.
fn entries(db: &[u8]) -> impl Iterator<Item = [&[u8]; 4]> {
    db.split(|&b| b == b'\n').map(|line| {
        // A line ended by CRLF reads as one ended by LF, as `str::lines` read it before.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut fields = line.split(|&b| b == b':');
        let mut next = || fields.next().unwrap_or_default();
        [next(), next(), next(), next()]
    })
}

/// Looks `key` up in `db`, the text of `file`. A user given as a number is its own uid, with
/// the primary gid of its first entry if passwd lists it; a group number is not asked.
pub fn look_up(file: File, db: &[u8], key: &str) -> Answer {
    match file {
        File::Passwd => {
            let by_number = number(key.as_bytes());
            let found = entries(db).find_map(|[name, _, uid, gid]| {
                let (uid, gid) = (number(uid)?, number(gid)?);
                let matches = match by_number {
                    Some(n) => uid == n,
                    None => name == key.as_bytes(),
                };
                matches.then_some((uid, gid))
            });
            match (by_number, found) {
                (_, Some((uid, gid))) => Answer {
                    id: Some(uid),
                    primary: Some(gid),
                },
                (Some(uid), None) => Answer {
                    id: Some(uid),
                    primary: None,
                },
                (None, None) => Answer::default(),
            }
        }
        File::Group => Answer {
            id: entries(db).find_map(|[name, _, gid, _]| {
                if name == key.as_bytes() {
                    number(gid)
                } else {
                    None
                }
            }),
            primary: None,
        },
    }
}

/// Where a helper reads a user database for `queries`: `MAX_BYTES + 1` zeroed bytes if any of
/// them needs a file, else none. Made before the fork; its pages are never touched by the
/// daemon, so they are allocated only in a helper that reads.
pub fn buffer_for<'a>(mut queries: impl Iterator<Item = &'a Query>) -> Vec<u8> {
    let needed = queries.any(|q| File::BOTH.iter().any(|&f| q.needs(f)));
    vec![0u8; if needed { MAX_BYTES + 1 } else { 0 }]
}

/// Checks a file read whole (at most `MAX_BYTES + 1` bytes were read) against the limits.
pub fn check_limits(file: File, db: &[u8]) -> Result<(), Refusal> {
    if db.len() > MAX_BYTES {
        return Err(Refusal::TooLarge(file));
    }
    let lines = db.iter().filter(|&&b| b == b'\n').count() + usize::from(!db.ends_with(b"\n"));
    if lines > MAX_LINES {
        return Err(Refusal::TooManyLines(file));
    }
    Ok(())
}

/// The probe's ids from what the files answered (`None` for a file not needed): the user's
/// uid (root without `-u`), the group's gid, else the user's primary gid, else the uid.
pub fn combine(
    query: &Query,
    passwd: Option<Answer>,
    group: Option<Answer>,
) -> Result<(u32, u32), Refusal> {
    let (uid, primary) = match query.user.as_deref() {
        None => (0, Some(0)),
        Some(u) => match passwd {
            Some(answer) => (answer.id.ok_or(Refusal::UnknownUser)?, answer.primary),
            // A number with a group: no database read.
            None => (number(u.as_bytes()).ok_or(Refusal::UnknownUser)?, None),
        },
    };
    let gid = match query.group.as_deref() {
        None => primary.unwrap_or(uid),
        Some(g) => match group {
            Some(answer) => answer.id.ok_or(Refusal::UnknownGroup)?,
            None => number(g.as_bytes()).ok_or(Refusal::UnknownGroup)?,
        },
    };
    Ok((uid, gid))
}

/// Why a probe's ids could not be resolved, as a helper reports it (a number on its status
/// pipe); the daemon turns it into an error naming the user, group or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser,
    UnknownGroup,
    /// The uid (`false`) or gid (`true`) has no mapping in the jail's user namespace.
    Unmapped(bool, u32),
    /// Something is mounted over the file (`RESOLVE_NO_XDEV`).
    MountPoint(File),
    NotRegular(File),
    TooLarge(File),
    TooManyLines(File),
    /// Opening or reading it failed with this errno.
    Unreadable(File, u32),
}

impl Refusal {
    /// As one number: a reason in the low byte, the file in the next, a value above.
    pub fn encode(self) -> u64 {
        let (reason, file, value) = match self {
            Refusal::UnknownUser => (1, File::Passwd, 0),
            Refusal::UnknownGroup => (2, File::Group, 0),
            Refusal::Unmapped(gid, id) => (3, File::Passwd, u64::from(gid) << 32 | u64::from(id)),
            Refusal::MountPoint(f) => (4, f, 0),
            Refusal::NotRegular(f) => (5, f, 0),
            Refusal::TooLarge(f) => (6, f, 0),
            Refusal::TooManyLines(f) => (7, f, 0),
            Refusal::Unreadable(f, errno) => (8, f, u64::from(errno)),
        };
        reason | (file as u64) << 8 | value << 16
    }

    pub fn decode(code: u64) -> Refusal {
        let file = File::from_number((code >> 8) & 0xff);
        let value = code >> 16;
        match code & 0xff {
            1 => Refusal::UnknownUser,
            2 => Refusal::UnknownGroup,
            3 => Refusal::Unmapped(value >> 32 != 0, value as u32),
            4 => Refusal::MountPoint(file),
            5 => Refusal::NotRegular(file),
            6 => Refusal::TooLarge(file),
            7 => Refusal::TooManyLines(file),
            _ => Refusal::Unreadable(file, value as u32),
        }
    }

    /// The error the utility prints and the log shows, for `query` in jail `jail`.
    pub fn to_error(self, jail: impl std::fmt::Display, query: &Query) -> Error {
        let name = |n: &Option<String>| n.clone().unwrap_or_default();
        match self {
            Refusal::UnknownUser => Error::new(
                Kind::NoUser,
                format!("unknown user '{}' in jail {jail}", name(&query.user)),
            ),
            Refusal::UnknownGroup => Error::new(
                Kind::NoUser,
                format!("unknown group '{}' in jail {jail}", name(&query.group)),
            ),
            Refusal::Unmapped(gid, id) => Error::new(
                Kind::NoUser,
                format!(
                    "{} {id} has no mapping in the user namespace of jail {jail}",
                    if gid { "gid" } else { "uid" }
                ),
            ),
            Refusal::MountPoint(f) => Error::new(
                Kind::NoJail,
                format!(
                    "jail {jail}: its /{} is a mount point, not a file of its root filesystem; refused",
                    f.path()
                ),
            ),
            Refusal::NotRegular(f) => Error::new(
                Kind::NoJail,
                format!(
                    "jail {jail}: its /{} is not a regular file; refused",
                    f.path()
                ),
            ),
            Refusal::TooLarge(f) => Error::new(
                Kind::Data,
                format!(
                    "jail {jail}: its /{} is larger than {} MiB, the limit of a user database; refused",
                    f.path(),
                    MAX_BYTES >> 20
                ),
            ),
            Refusal::TooManyLines(f) => Error::new(
                Kind::Data,
                format!(
                    "jail {jail}: its /{} has more than {MAX_LINES} lines, the limit of a user database; refused",
                    f.path()
                ),
            ),
            Refusal::Unreadable(f, errno) => Error::new(
                Kind::NoJail,
                format!(
                    "jail {jail}: cannot read its /{}: {}",
                    f.path(),
                    std::io::Error::from_raw_os_error(errno as i32)
                ),
            ),
        }
    }
}

/// A helper's read of the jail's `file` did not end by the placement's `deadline`: its
/// filesystem does not answer (a FUSE server stopped), or the file is a trap.
pub fn timed_out(jail: impl std::fmt::Display, file: File, deadline: std::time::Duration) -> Error {
    Error::new(
        Kind::Timeout,
        format!(
            "probe for jail {jail}: reading its user database /{} did not finish within {} s (its filesystem does not answer?)",
            file.path(),
            deadline.as_secs()
        ),
    )
}

/// What identifies one version of a file: if none of these changed, neither did the file
/// (a write changes the ctime, which no one can set back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Identity {
    /// Its fields as numbers, for the status pipe; `from_words` takes them back.
    pub fn words(&self) -> [u64; 6] {
        [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.ctime.0 as u64,
            u64::from(self.mtime.1) | u64::from(self.ctime.1) << 32,
        ]
    }

    pub fn from_words(w: [u64; 6]) -> Identity {
        Identity {
            dev: w[0],
            ino: w[1],
            size: w[2],
            mtime: (w[3] as i64, w[5] as u32),
            ctime: (w[4] as i64, (w[5] >> 32) as u32),
        }
    }
}

/// The answers one version of a file gave, by the name asked.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub identity: Identity,
    pub answers: HashMap<String, Answer>,
}

/// The daemon's memory of a jail's user database, kept with the jail: per file, the version
/// last read and what it answered. A helper that finds the file unchanged uses these answers
/// and reads nothing.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    files: [Option<Snapshot>; 2],
}

impl Cache {
    pub fn snapshot(&self, file: File) -> Option<&Snapshot> {
        self.files[file as usize].as_ref()
    }

    /// What `file` (as of its last version read) answered for `key`.
    pub fn answer(&self, file: File, key: &str) -> Option<Answer> {
        self.snapshot(file)?.answers.get(key).copied()
    }

    /// Keeps what a helper read of `file` at `identity`: added to the answers of that same
    /// version, or replacing those of an older one. At most `MAX_ANSWERS` names are kept.
    pub fn learn(&mut self, file: File, identity: Identity, answers: Vec<(String, Answer)>) {
        const MAX_ANSWERS: usize = 1024;
        let slot = &mut self.files[file as usize];
        if slot.as_ref().is_none_or(|s| s.identity != identity) {
            *slot = Some(Snapshot {
                identity,
                answers: HashMap::new(),
            });
        }
        let kept = &mut slot.as_mut().expect("set above").answers;
        for (key, answer) in answers {
            if kept.len() < MAX_ANSWERS || kept.contains_key(&key) {
                kept.insert(key, answer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] =
        b"root:x:0:0:root:/root:/bin/sh\nwww:x:80:81::/var/www:/bin/false\nbad line\n";

    fn query(user: Option<&str>, group: Option<&str>) -> Query {
        Query {
            user: user.map(Into::into),
            group: group.map(Into::into),
        }
    }

    #[test]
    fn users_and_groups_are_found_by_name_and_number() {
        let user = |k| look_up(File::Passwd, PASSWD, k);
        assert_eq!(
            user("www"),
            Answer {
                id: Some(80),
                primary: Some(81)
            }
        );
        assert_eq!(
            user("80"),
            Answer {
                id: Some(80),
                primary: Some(81)
            }
        );
        assert_eq!(
            user("1234"),
            Answer {
                id: Some(1234),
                primary: None
            }
        );
        assert_eq!(user("nobody"), Answer::default());
        assert_eq!(user("4294967295"), Answer::default());
        assert_eq!(user(""), Answer::default());
        let groups = b"wheel:x:0:root\nstaff:x:50:\nodd:x:-1:\n";
        assert_eq!(look_up(File::Group, groups, "staff").id, Some(50));
        assert_eq!(look_up(File::Group, groups, "nogroup").id, None);
        assert_eq!(look_up(File::Group, groups, "odd").id, None);
    }

    #[test]
    fn a_file_with_crlf_line_ends_reads_as_one_with_lf() {
        // A group line whose id is its last field: the carriage return would stick to it.
        let crlf = b"wheel:x:0\r\nstaff:x:50\r\n";
        assert_eq!(look_up(File::Group, crlf, "staff").id, Some(50));
        assert_eq!(
            look_up(File::Group, b"wheel:x:0\nstaff:x:50\n", "staff").id,
            Some(50)
        );
        // A carriage return elsewhere is no line end: that id is no number.
        assert_eq!(look_up(File::Group, b"staff:x:5\r0\n", "staff").id, None);
    }

    #[test]
    fn a_query_reads_only_the_files_it_needs() {
        let needs = |q: Query| (q.needs(File::Passwd), q.needs(File::Group));
        assert_eq!(needs(query(None, None)), (false, false));
        assert_eq!(needs(query(Some("5"), Some("7"))), (false, false));
        assert_eq!(needs(query(Some("5"), None)), (true, false));
        assert_eq!(needs(query(Some("www"), Some("staff"))), (true, true));
        assert_eq!(needs(query(None, Some("staff"))), (false, true));
    }

    #[test]
    fn ids_combine_as_0_2_did_and_unknown_names_are_refused() {
        let www = Some(look_up(File::Passwd, PASSWD, "www"));
        assert_eq!(combine(&query(None, None), None, None), Ok((0, 0)));
        assert_eq!(combine(&query(Some("www"), None), www, None), Ok((80, 81)));
        let staff = Some(Answer {
            id: Some(50),
            primary: None,
        });
        assert_eq!(
            combine(&query(Some("www"), Some("staff")), www, staff),
            Ok((80, 50))
        );
        assert_eq!(
            combine(&query(Some("5"), Some("7")), None, None),
            Ok((5, 7))
        );
        let unlisted = Some(look_up(File::Passwd, PASSWD, "1234"));
        assert_eq!(
            combine(&query(Some("1234"), None), unlisted, None),
            Ok((1234, 1234))
        );
        let nobody = Some(look_up(File::Passwd, PASSWD, "nobody"));
        assert_eq!(
            combine(&query(Some("nobody"), None), nobody, None),
            Err(Refusal::UnknownUser)
        );
        let none = Some(Answer::default());
        assert_eq!(
            combine(&query(None, Some("x")), None, none),
            Err(Refusal::UnknownGroup)
        );
    }

    #[test]
    fn limits_count_bytes_and_lines() {
        assert_eq!(check_limits(File::Passwd, PASSWD), Ok(()));
        let lines = "a\n".repeat(MAX_LINES);
        assert_eq!(check_limits(File::Group, lines.as_bytes()), Ok(()));
        let more = format!("{lines}a");
        assert_eq!(
            check_limits(File::Group, more.as_bytes()),
            Err(Refusal::TooManyLines(File::Group))
        );
        let large = vec![b'x'; MAX_BYTES + 1];
        assert_eq!(
            check_limits(File::Passwd, &large),
            Err(Refusal::TooLarge(File::Passwd))
        );
    }

    #[test]
    fn refusals_and_answers_survive_their_numbers() {
        for refusal in [
            Refusal::UnknownUser,
            Refusal::UnknownGroup,
            Refusal::Unmapped(true, 70000),
            Refusal::Unmapped(false, u32::MAX - 1),
            Refusal::MountPoint(File::Group),
            Refusal::NotRegular(File::Passwd),
            Refusal::TooLarge(File::Group),
            Refusal::TooManyLines(File::Passwd),
            Refusal::Unreadable(File::Group, 5),
        ] {
            assert_eq!(Refusal::decode(refusal.encode()), refusal);
        }
        for answer in [
            Answer::default(),
            Answer {
                id: Some(0),
                primary: Some(0),
            },
            Answer {
                id: Some(80),
                primary: None,
            },
        ] {
            assert_eq!(Answer::decode(answer.encode()), answer);
        }
        let identity = Identity {
            dev: 1 << 40,
            ino: 77,
            size: 4 << 20,
            mtime: (-5, 999_999_999),
            ctime: (1_700_000_000, 1),
        };
        assert_eq!(Identity::from_words(identity.words()), identity);
        let error = Refusal::UnknownUser.to_error(42, &query(Some("nosuchuser"), None));
        assert_eq!(error.kind, Kind::NoUser);
        assert_eq!(error.message, "unknown user 'nosuchuser' in jail 42");
        assert_eq!(
            Refusal::TooManyLines(File::Group)
                .to_error(1, &query(None, None))
                .kind,
            Kind::Data
        );
    }

    #[test]
    fn the_cache_forgets_a_changed_file() {
        let mut cache = Cache::default();
        let v1 = Identity {
            ino: 1,
            ..Identity::default()
        };
        let answer = Answer {
            id: Some(80),
            primary: Some(81),
        };
        cache.learn(File::Passwd, v1, vec![("www".into(), answer)]);
        cache.learn(File::Passwd, v1, vec![("root".into(), Answer::default())]);
        assert_eq!(cache.answer(File::Passwd, "www"), Some(answer));
        assert_eq!(cache.answer(File::Group, "www"), None);
        let v2 = Identity {
            ino: 1,
            size: 9,
            ..Identity::default()
        };
        cache.learn(File::Passwd, v2, vec![]);
        assert_eq!(cache.answer(File::Passwd, "www"), None);
        assert_eq!(cache.snapshot(File::Passwd).unwrap().identity, v2);
    }
}
