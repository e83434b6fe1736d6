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

/// Stages of a probe's start, as its first status byte reports a failure.
pub const STAGE_ATTACH: u8 = 2;
pub const STAGE_SESSION: u8 = 3;
pub const STAGE_IDS: u8 = 4;
pub const STAGE_CONFINE: u8 = 5;
/// The first status byte of a probe that is armed.
pub const ARMED: u8 = 0;

/// What the status pipe said: armed, or which step failed with which errno. `got` bytes of
/// `status` arrived; fewer than one means the probe died before it could say anything.
pub fn read_status(status: &[u8; 5], got: usize) -> Result<(), (&'static str, i32)> {
    if got >= 1 && status[0] == ARMED {
        return Ok(());
    }
    let errno = if got == status.len() {
        i32::from_ne_bytes([status[1], status[2], status[3], status[4]])
    } else {
        0
    };
    let stage = match (got, status[0]) {
        (0, _) => "starting (it died or took over 5 s)",
        (_, STAGE_ATTACH) => "jail_attach",
        (_, STAGE_SESSION) => "setsid",
        (_, STAGE_IDS) => "setgroups/setgid/setuid",
        (_, STAGE_CONFINE) => "procctl",
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
        assert_eq!(read_status(&[ARMED, 0, 0, 0, 0], 1), Ok(()));
        assert_eq!(
            read_status(&failed(STAGE_ATTACH), 5),
            Err(("jail_attach", 1))
        );
        assert_eq!(
            read_status(&failed(STAGE_IDS), 5),
            Err(("setgroups/setgid/setuid", 1))
        );
        assert_eq!(read_status(&failed(STAGE_CONFINE), 5), Err(("procctl", 1)));
        assert_eq!(read_status(&failed(STAGE_SESSION), 5), Err(("setsid", 1)));
        assert_eq!(read_status(&failed(9), 5), Err(("an unknown step", 1)));
        // A probe that said nothing, or half a message, is a failure, never "armed".
        assert!(read_status(&[ARMED, 0, 0, 0, 0], 0).is_err());
        assert_eq!(read_status(&failed(STAGE_IDS), 3).unwrap_err().1, 0);
    }
}
