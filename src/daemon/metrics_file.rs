//! The metrics file: where (`-M`, else the configuration file's `metrics`), replaced at most
//! once every `METRICS_INTERVAL` when something changed, and gone with the daemon.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys;

/// The metrics file is replaced at most this often.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct MetricsFile {
    named: Option<PathBuf>,
    from_file: Option<PathBuf>,
    written: Option<Instant>,
    /// Something happened since it was written.
    dirty: bool,
    /// The last error writing it, logged once until it changes.
    error: Option<String>,
}

impl MetricsFile {
    /// The file `-M` names, else the one the configuration file names.
    pub(super) fn new(named: Option<PathBuf>, from_file: Option<PathBuf>) -> MetricsFile {
        MetricsFile {
            named,
            from_file,
            written: None,
            dirty: true,
            error: None,
        }
    }

    pub(super) fn path(&self) -> Option<&Path> {
        self.named.as_deref().or(self.from_file.as_deref())
    }

    /// Something it shows may have changed.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// The configuration file, read again, names `from_file`: without `-M`, the old file goes
    /// and the new one is written.
    pub(super) fn reload(&mut self, from_file: Option<PathBuf>) {
        if from_file == self.from_file || self.named.is_some() {
            return;
        }
        if let Some(old) = self.path() {
            let _ = std::fs::remove_file(old);
        }
        self.from_file = from_file;
        self.dirty = true;
    }

    /// When it is next due, if something changed (`now` if it was never written).
    pub(super) fn due(&self, now: Instant) -> Option<Instant> {
        self.path()?;
        if !self.dirty {
            return None;
        }
        Some(self.written.map_or(now, |t| t + METRICS_INTERVAL))
    }

    /// Replaces the metrics file with `text`: a fresh temporary file beside it
    /// (`NAME.HEX.tmp`), renamed over it (node_exporter reads only `*.prom`, so never the
    /// temporary one).
    pub(super) fn write(&mut self, text: &str, now: Instant) {
        let Some(path) = self.path().map(Path::to_path_buf) else {
            return;
        };
        self.dirty = false;
        self.written = Some(now);
        // Readable by node_exporter's user; written whatever that user planted beside it.
        let written = sys::replace_file(&path, text.as_bytes(), 0o644, sys::Durability::Unsynced);
        match written {
            Ok(()) => {
                if let Some(error) = self.error.take() {
                    log::info!(
                        "metrics file {} written again (after: {error})",
                        path.display()
                    );
                }
            }
            Err(e) => {
                let error = metrics_error(&path, &e);
                if self.error.as_deref() != Some(error.as_str()) {
                    log::error!(
                        "{error}; tried again every second, logged again only when that changes"
                    );
                }
                self.error = Some(error);
                // Tried again at the next interval: a directory made later (a volume mounted, a
                // package installed) gets the file without waiting for a probe to change.
                self.dirty = true;
            }
        }
    }
}

/// Why the metrics file at `path` could not be written, naming a missing directory as such
/// (the error of the open, ENOENT, names neither).
fn metrics_error(path: &Path, e: &std::io::Error) -> String {
    let directory = path.parent().unwrap_or(Path::new("/"));
    if e.kind() == std::io::ErrorKind::NotFound && !directory.is_dir() {
        return format!(
            "metrics file {}: directory {} does not exist",
            path.display(),
            directory.display()
        );
    }
    format!("metrics file {}: {e}", path.display())
}
