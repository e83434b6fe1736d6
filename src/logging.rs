//! A `log` backend with three sinks: stderr (the utility, and the daemon with `-F`), syslog
//! (the detached daemon, facility LOG_DAEMON), or, when no syslog daemon listens, the file
//! `FALLBACK_LOG`, which the daemon chooses before it detaches so that it can say so.

use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where syslog(3) sends its messages (`_PATH_LOG`).
#[cfg(target_os = "freebsd")]
pub const SYSLOG_SOCKET: &str = "/var/run/log";
#[cfg(not(target_os = "freebsd"))]
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Where a detached daemon logs when no syslog daemon listens on `SYSLOG_SOCKET`.
pub const FALLBACK_LOG: &str = "/var/log/jaildaemon.log";

const STDERR: u8 = 0;
const SYSLOG: u8 = 1;
const FILE: u8 = 2;

struct Logger {
    sink: AtomicU8,
    /// Whether stderr lines start with the time: the daemon's, in the foreground, when no
    /// journal (which stamps lines itself) reads them.
    stamped: AtomicBool,
}

static LOGGER: Logger = Logger {
    sink: AtomicU8::new(STDERR),
    stamped: AtomicBool::new(false),
};

/// The fallback log, opened (append, close-on-exec) before the daemon detaches.
static FALLBACK: OnceLock<File> = OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match (self.sink.load(Ordering::Relaxed), FALLBACK.get()) {
            (SYSLOG, _) => {
                let priority = match record.level() {
                    log::Level::Error => libc::LOG_ERR,
                    log::Level::Warn => libc::LOG_WARNING,
                    log::Level::Info => libc::LOG_INFO,
                    _ => libc::LOG_DEBUG,
                };
                crate::sys::syslog(priority, &record.args().to_string());
            }
            (FILE, Some(mut file)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // One write per line: with O_APPEND, lines never interleave.
                let line = format!(
                    "{} jaildaemon[{}]: {}\n",
                    utc(now),
                    std::process::id(),
                    record.args()
                );
                let _ = file.write_all(line.as_bytes());
            }
            // Each line formatted first and written whole: stderr is unbuffered, and writing
            // the pieces as they come would cost a system call each (a dozen for an armed
            // line) and let another writer's line cut in.
            _ if self.stamped.load(Ordering::Relaxed) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let line = format!("{} jaildaemon: {}\n", utc_millis(now), record.args());
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            _ => {
                let line = format!("jaildaemon: {}\n", record.args());
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger, writing to stderr.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// The daemon stays in the foreground (`-F`), logging to stderr: each line starts with the
/// time, in UTC to the millisecond, unless `JOURNAL_STREAM` says that systemd's journal reads
/// stderr (it stamps every line itself, and twice would be noise).
pub fn foreground(journal_stream: Option<&std::ffi::OsStr>) {
    LOGGER
        .stamped
        .store(journal_stream.is_none(), Ordering::Relaxed);
}

/// Whether a syslog daemon takes connections on `SYSLOG_SOCKET`, as a datagram socket (what
/// syslog(3) tries first) or a stream socket.
fn syslog_listens() -> bool {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    let datagram = UnixDatagram::unbound().and_then(|socket| socket.connect(SYSLOG_SOCKET));
    datagram.is_ok() || UnixStream::connect(SYSLOG_SOCKET).is_ok()
}

/// Called by the daemon just before it detaches, while stderr is still the administrator's:
/// when no syslog daemon listens, opens `FALLBACK_LOG` and says so; fails when it cannot,
/// rather than detach into losing every line.
pub fn before_detach() -> std::io::Result<()> {
    if syslog_listens() {
        return Ok(());
    }
    // Close-on-exec: no command or probe inherits it. A link, FIFO, hard link or someone
    // else's file planted there is refused, naming what it is: root appends to no file but
    // its own.
    let file = crate::sys::open_own_file(
        std::path::Path::new(FALLBACK_LOG),
        crate::sys::Access::Append,
        0o640,
    )
    .map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "no syslog daemon listens on {}, and {FALLBACK_LOG} cannot be opened ({e}); \
                     run with -F to log to stderr",
                SYSLOG_SOCKET
            ),
        )
    })?;
    let _ = FALLBACK.set(file);
    log::warn!(
        "no syslog daemon listens on {}: logging to {FALLBACK_LOG} instead",
        SYSLOG_SOCKET
    );
    Ok(())
}

/// From now on, log to syslog instead of stderr, or to `FALLBACK_LOG` when `before_detach`
/// found no syslog daemon.
pub fn switch_to_syslog() {
    if FALLBACK.get().is_some() {
        LOGGER.sink.store(FILE, Ordering::Relaxed);
        return;
    }
    crate::sys::open_syslog();
    LOGGER.sink.store(SYSLOG, Ordering::Relaxed);
}

/// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, without a time zone database.
fn utc(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// `millis` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc_millis(millis: u128) -> String {
    let seconds = u64::try_from(millis / 1000).unwrap_or(u64::MAX);
    let whole = utc(seconds);
    format!("{}.{:03}Z", whole.trim_end_matches('Z'), millis % 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times_are_civil_dates() {
        for (seconds, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_796_058_420, "2026-11-30T17:07:00Z"),
            (4_102_444_800, "2100-01-01T00:00:00Z"),
        ] {
            assert_eq!(super::utc(seconds), text, "{seconds}");
        }
        assert_eq!(
            super::utc_millis(1_796_058_420_042),
            "2026-11-30T17:07:00.042Z"
        );
        assert_eq!(super::utc_millis(999), "1970-01-01T00:00:00.999Z");
    }
}
