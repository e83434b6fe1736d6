//! A `log` backend with two sinks: stderr (utility, and daemon with `-F`) or syslog (detached
//! daemon, facility LOG_DAEMON).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

struct Logger {
    to_syslog: AtomicBool,
}

static LOGGER: Logger = Logger {
    to_syslog: AtomicBool::new(false),
};

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if self.to_syslog.load(Ordering::Relaxed) {
            let priority = match record.level() {
                log::Level::Error => libc::LOG_ERR,
                log::Level::Warn => libc::LOG_WARNING,
                log::Level::Info => libc::LOG_INFO,
                _ => libc::LOG_DEBUG,
            };
            crate::sys::syslog(priority, &record.args().to_string());
        } else {
            let _ = writeln!(std::io::stderr(), "jaildaemon: {}", record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger, writing to stderr.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// From now on, log to syslog instead of stderr.
pub fn switch_to_syslog() {
    crate::sys::open_syslog();
    LOGGER.to_syslog.store(true, Ordering::Relaxed);
}
