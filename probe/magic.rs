/// Exit code that means "a permitted process sent SIGHUP to the probe". Chosen outside every
/// conventional range: not 0–2, not sysexits 64–78, not 101 (Rust panic), not 125–127 (exec
/// failures), not 128 or above (death by signal as a shell reports it). Shared, by `include!`,
/// between the probe and the daemon so that it is defined exactly once.
pub const MAGIC_EXIT: u8 = 106;
