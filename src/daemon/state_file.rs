//! The state file of `-P` probes: its lock, held for the daemon's life, and its writes.

use std::path::PathBuf;

use crate::definition::Definition;
use crate::error::{Error, Kind};

pub(super) struct StateFile {
    path: PathBuf,
    /// Held for the daemon's life: no second daemon arms this state file's probes.
    _lock: crate::state::StateLock,
}

impl StateFile {
    pub(super) fn new(path: PathBuf, lock: crate::state::StateLock) -> StateFile {
        StateFile { path, _lock: lock }
    }

    /// Replaces the state file with `probes`; the error says which file could not be written.
    pub(super) fn save(&self, probes: &[Definition]) -> Result<(), Error> {
        crate::state::save(&self.path, probes).map_err(|e| {
            let error = Error::new(
                Kind::CantCreate,
                format!("state file {}: {e}", self.path.display()),
            );
            log::error!("{error}");
            error
        })
    }
}
