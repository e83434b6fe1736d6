/// Exit code that means "a permitted process sent SIGHUP to the probe". Chosen outside every
/// conventional range: not 0–2, not sysexits 64–78, not 101 (Rust panic), not 125–127 (exec
/// failures), not 128 or above (death by signal as a shell reports it). Shared, by `include!`,
/// between the probe and the daemon so that it is defined exactly once.
pub const MAGIC_EXIT: u8 = 106;

/// Exit code that means "a permitted process sent SIGUSR1" (the verb `USR1`), for a probe given
/// that verb. Next to `MAGIC_EXIT` and outside the same conventional ranges.
pub const USR1_EXIT: u8 = 107;

/// Exit code that means "a permitted process sent SIGUSR2" (the verb `USR2`).
pub const USR2_EXIT: u8 = 108;

/// The probe's environment variable naming the verb `USR1` (`USR1=0`), and `USR2` the same;
/// the value is the verb's confirmation window in whole seconds, `0` for none. Set by the
/// daemon only; see `probe.rs`.
pub const USR1_VAR: &[u8] = b"USR1=";
pub const USR2_VAR: &[u8] = b"USR2=";

/// Longest confirmation window, in seconds: 1 hour.
pub const MAX_CONFIRM_SECS: u64 = 3600;

/// The descriptor a Linux probe is exec'd holding and closes once it waits: the write end of
/// its placement's status pipe, whose end of file therefore tells the daemon that every probe
/// placed shows its title, has its signal mask and waits (or died). A probe started any other
/// way closes what is there, or nothing (EBADF), and keeps no descriptor either way.
pub const READY_FD: u32 = 0;
