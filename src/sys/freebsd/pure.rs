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

#[cfg(test)]
mod tests {
    use super::*;

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
