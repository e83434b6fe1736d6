//! The FreeBSD backend's pure logic: no syscalls, so it is compiled and unit-tested on every
//! platform, not only type-checked.

/// How jail_get(2) is asked for the jail `-j` names.
#[derive(Debug, PartialEq, Eq)]
pub enum JailKey<'a> {
    Jid(i32),
    Name(&'a str),
}

/// Longest jail name: the kernel keeps names in MAXHOSTNAMELEN (256) bytes with the NUL.
pub const MAX_JAIL_NAME: usize = 255;

/// All digits is a jid, as jail(8) and jaildaemon 0.2 read it; anything else a name. Jid 0 is
/// the host itself, never a jail.
pub fn jail_key(spec: &str) -> Result<JailKey<'_>, String> {
    if spec.is_empty() {
        return Err("empty".into());
    }
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        return match spec.parse::<i32>() {
            Ok(0) => Err("jid 0 is the host, not a jail".into()),
            Ok(jid) => Ok(JailKey::Jid(jid)),
            Err(_) => Err("not a valid jid".into()),
        };
    }
    if spec.len() > MAX_JAIL_NAME || spec.contains('\0') {
        return Err(format!(
            "not a jail name (1 to {MAX_JAIL_NAME} bytes, no NUL)"
        ));
    }
    Ok(JailKey::Name(spec))
}

/// Stages of a probe's start, as the first byte of a failure record names them.
pub const STAGE_ATTACH: u8 = 2;
pub const STAGE_SESSION: u8 = 3;
pub const STAGE_IDS: u8 = 4;
pub const STAGE_CONFINE: u8 = 5;
pub const STAGE_EXEC: u8 = 6;
/// The first byte of the record of a probe that is armed.
pub const ARMED: u8 = 0;
/// A record on the status pipe: a stage (or [`ARMED`]) and an errno in native byte order.
pub const RECORD: usize = 5;
/// What the child writes right before its exec.
pub const ARMED_RECORD: [u8; RECORD] = [ARMED, 0, 0, 0, 0];

/// What the status pipe said, from all `bytes` read until end-of-file (`eof`) or the deadline.
/// Armed is the armed record alone, then end-of-file: the exec closed the pipe. A failure
/// record, alone or after the armed one (a failed exec), names the step and its errno.
/// Anything else (nothing, a torn record, no end) means the child died or hung.
pub fn read_status(bytes: &[u8], eof: bool) -> Result<(), (&'static str, i32)> {
    if eof && bytes == ARMED_RECORD {
        return Ok(());
    }
    let failure = match bytes.len() {
        RECORD if bytes[0] != ARMED => Some(&bytes[..RECORD]),
        n if n == 2 * RECORD && bytes[..RECORD] == ARMED_RECORD && bytes[RECORD] != ARMED => {
            Some(&bytes[RECORD..])
        }
        _ => None,
    };
    let Some(record) = failure else {
        return Err(("starting (it died or took over 5 s)", 0));
    };
    let errno = i32::from_ne_bytes([record[1], record[2], record[3], record[4]]);
    let stage = match record[0] {
        STAGE_ATTACH => "jail_attach",
        STAGE_SESSION => "setsid",
        STAGE_IDS => "setgroups/setgid/setuid",
        STAGE_CONFINE => "procctl",
        STAGE_EXEC => "fexecve",
        _ => "an unknown step",
    };
    Err((stage, errno))
}

/// Records a probe's child writes before "armed" about its ids, which it resolves in the
/// jail's user database after it attached to the jail: each a tag, then its fields in native
/// byte order. Tags are above every stage, so the records that follow cannot be taken for them.
/// It starts reading a file (a file number)...
pub const TAG_READING: u8 = 20;
/// ... read it whole, and found it unchanged while reading: the file, its identity (six words).
pub const TAG_IDENTITY: u8 = 21;
/// What a file said of the probe's name: the file, the answer (`userdb::Answer::encode`).
pub const TAG_ANSWER: u8 = 22;
/// The ids it will switch to: uid, gid.
pub const TAG_IDS: u8 = 23;
/// Its ids cannot be resolved (`userdb::Refusal::encode`); it leaves.
pub const TAG_REFUSED: u8 = 24;

/// The length of a record with this tag, if it is one of them.
fn record_len(tag: u8) -> Option<usize> {
    match tag {
        TAG_READING => Some(2),
        TAG_IDENTITY => Some(2 + 6 * 8),
        TAG_ANSWER => Some(2 + 8),
        TAG_IDS => Some(1 + 8),
        TAG_REFUSED => Some(1 + 8),
        _ => None,
    }
}

/// The longest status a child writes: one record of each tag per file, then two of `RECORD`.
pub const MAX_STATUS: usize = 2 * (2 + 50 + 10) + 9 + 9 + 2 * RECORD;

/// What a child said of its ids.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The file it started reading and did not say more of since.
    pub reading: Option<u8>,
    pub identities: [Option<[u64; 6]>; 2],
    pub answers: [Option<u64>; 2],
    pub ids: Option<(u32, u32)>,
    pub refused: Option<u64>,
}

/// Splits the records about ids off the front of a child's status; the rest is for
/// `read_status`.
pub fn read_resolution(mut bytes: &[u8]) -> (Resolution, &[u8]) {
    let mut found = Resolution::default();
    let word = |b: &[u8]| u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"));
    while let Some(len) = bytes.first().copied().and_then(record_len) {
        if bytes.len() < len {
            break;
        }
        let (record, rest) = bytes.split_at(len);
        bytes = rest;
        let file = usize::from(record[1] == 1);
        match record[0] {
            TAG_READING => found.reading = Some(record[1]),
            TAG_IDENTITY => {
                let mut words = [0u64; 6];
                for (i, w) in words.iter_mut().enumerate() {
                    *w = word(&record[2 + 8 * i..]);
                }
                found.identities[file] = Some(words);
            }
            TAG_ANSWER => {
                found.reading = None;
                found.answers[file] = Some(word(&record[2..]));
            }
            TAG_IDS => {
                let both = word(&record[1..]);
                found.ids = Some((both as u32, (both >> 32) as u32));
            }
            _ => {
                found.reading = None;
                found.refused = Some(word(&record[1..]));
            }
        }
    }
    (found, bytes)
}

/// A record about ids, as a child writes it: `tag`, an optional file byte, then `words`.
pub fn resolution_record(tag: u8, file: Option<u8>, words: &[u64], out: &mut [u8; 64]) -> usize {
    out[0] = tag;
    let mut len = 1;
    if let Some(file) = file {
        out[1] = file;
        len = 2;
    }
    for w in words {
        out[len..len + 8].copy_from_slice(&w.to_ne_bytes());
        len += 8;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_about_ids_come_off_the_front_of_the_status() {
        let mut status = Vec::new();
        let mut push = |tag, file, words: &[u64]| {
            let mut out = [0u8; 64];
            let len = resolution_record(tag, file, words, &mut out);
            assert_eq!(Some(len), record_len(tag));
            status.extend_from_slice(&out[..len]);
        };
        push(TAG_READING, Some(0), &[]);
        push(TAG_IDENTITY, Some(0), &[1, 2, 3, 4, 5, 6]);
        push(TAG_ANSWER, Some(0), &[80 | 81 << 32]);
        push(TAG_READING, Some(1), &[]);
        push(TAG_ANSWER, Some(1), &[50]);
        push(TAG_IDS, None, &[80 | 50 << 32]);
        status.extend_from_slice(&ARMED_RECORD);
        assert!(status.len() <= MAX_STATUS);
        let (found, rest) = read_resolution(&status);
        assert_eq!(
            found,
            Resolution {
                reading: None,
                identities: [Some([1, 2, 3, 4, 5, 6]), None],
                answers: [Some(80 | 81 << 32), Some(50)],
                ids: Some((80, 50)),
                refused: None,
            }
        );
        assert_eq!(read_status(rest, true), Ok(()));
        // A child that hangs reading the group file says so; a torn record is left over.
        let (found, rest) = read_resolution(&[TAG_READING, 1, TAG_IDS, 1, 2]);
        assert_eq!(found.reading, Some(1));
        assert_eq!(rest, &[TAG_IDS, 1, 2]);
        // A failure record is not taken for a record about ids.
        let failed = [STAGE_IDS, 1, 0, 0, 0];
        assert_eq!(
            read_resolution(&failed),
            (Resolution::default(), &failed[..])
        );
    }

    #[test]
    fn digits_are_a_jid_and_the_host_is_not_a_jail() {
        assert_eq!(jail_key("12"), Ok(JailKey::Jid(12)));
        assert_eq!(jail_key("www"), Ok(JailKey::Name("www")));
        assert_eq!(jail_key("web.1"), Ok(JailKey::Name("web.1")));
        assert_eq!(jail_key("1a"), Ok(JailKey::Name("1a")));
        assert!(jail_key("0").unwrap_err().contains("host"));
        assert!(jail_key("99999999999").is_err());
        assert!(jail_key("").is_err());
        assert!(jail_key("a\0b").is_err());
        assert!(jail_key(&"x".repeat(MAX_JAIL_NAME + 1)).is_err());
        assert!(jail_key(&"x".repeat(MAX_JAIL_NAME)).is_ok());
    }

    #[test]
    fn the_status_pipe_names_the_failed_step() {
        let errno = 1i32.to_ne_bytes();
        let failed = |stage: u8| [stage, errno[0], errno[1], errno[2], errno[3]];
        let then = |a: [u8; RECORD], b: [u8; RECORD]| [a, b].concat();
        assert_eq!(read_status(&ARMED_RECORD, true), Ok(()));
        assert_eq!(
            read_status(&failed(STAGE_ATTACH), true),
            Err(("jail_attach", 1))
        );
        assert_eq!(
            read_status(&failed(STAGE_IDS), true),
            Err(("setgroups/setgid/setuid", 1))
        );
        assert_eq!(
            read_status(&failed(STAGE_CONFINE), true),
            Err(("procctl", 1))
        );
        assert_eq!(
            read_status(&failed(STAGE_SESSION), true),
            Err(("setsid", 1))
        );
        assert_eq!(read_status(&failed(9), true), Err(("an unknown step", 1)));
        // A failed exec comes after "armed".
        assert_eq!(
            read_status(&then(ARMED_RECORD, failed(STAGE_EXEC)), true),
            Err(("fexecve", 1))
        );
    }

    #[test]
    fn only_armed_then_end_of_file_is_armed() {
        let starting = Err(("starting (it died or took over 5 s)", 0));
        // "Armed" whose exec never closed the pipe (a hung child) is no probe.
        assert_eq!(read_status(&ARMED_RECORD, false), starting);
        // Nothing, a torn record, or "armed" twice.
        assert_eq!(read_status(&[], true), starting);
        assert_eq!(read_status(&ARMED_RECORD[..3], true), starting);
        assert_eq!(
            read_status(&[ARMED_RECORD, ARMED_RECORD].concat(), true),
            starting
        );
        assert_eq!(
            read_status(&[&ARMED_RECORD[..], &[STAGE_EXEC, 1]].concat(), true),
            starting
        );
        let mut longer = [ARMED_RECORD, ARMED_RECORD].concat();
        longer.push(1);
        assert_eq!(read_status(&longer, true), starting);
    }
}
