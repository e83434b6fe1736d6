//! The state file: probes armed with `-P`, kept so that they come back when the daemon does.
//!
//! It is replaced, never edited: the new content goes to a fresh temporary file in the same
//! directory, which is flushed to disk and renamed over the old one, and then the directory is
//! flushed (`sys::replace_file`). A crash at any moment leaves the old file or the new one,
//! never a mix of both. One daemon at a time uses a state file: it holds the lock of
//! `STATE.lock` beside it for its whole life (`StateLock`).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::definition::Definition;
use crate::error::{Error, Kind};

const FORMAT: u32 = 1;

/// The file: its format, and its probes in the serde form of `Definition`, as the wire has
/// them (the keys written since format 1; `persist` always true, as earlier versions read it).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    format: u32,
    probes: Vec<Definition>,
}

/// Reads the saved probes; a missing file holds none. A file that cannot be read is an error
/// naming it: the daemon does not start over someone's saved probes.
pub fn load(path: &Path) -> Result<Vec<Definition>, Error> {
    let bad = |why: String| {
        Error::new(
            Kind::Config,
            format!("state file {}: {why}", path.display()),
        )
    };
    // Root runs the commands in it: a file planted by whoever may write its directory (a
    // link to another file, a FIFO, a file of their own) is refused, not read.
    let file = match crate::sys::open_own_file(path, crate::sys::Access::Read, 0) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let mut text = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_SIZE {
        return Err(bad(format!("larger than {} MiB", MAX_SIZE >> 20)));
    }
    parse(&text).map_err(bad)
}

/// Parses a state file's content. Every probe in it must pass the checks a request passes
/// (the daemon only writes such probes; a file edited by hand may hold others), or the whole
/// file is refused, saying which probe is wrong and why.
pub fn parse(text: &[u8]) -> Result<Vec<Definition>, String> {
    let saved: Saved = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if saved.format != FORMAT {
        return Err(format!("format {} is not {FORMAT}", saved.format));
    }
    let count = saved.probes.len();
    saved
        .probes
        .into_iter()
        .enumerate()
        .map(|(n, mut def)| {
            // Every probe of the file is a `-P` one, whether it says so or not.
            def.persist = true;
            def.validate()
                .map(|()| def)
                .map_err(|e| format!("probe {} of {count}: {}", n + 1, e.message))
        })
        .collect()
}

/// What `save` writes for `probes`: the file's whole content.
pub fn render(probes: &[Definition]) -> Vec<u8> {
    serde_json::to_vec_pretty(&Saved {
        format: FORMAT,
        probes: probes
            .iter()
            .map(|def| Definition {
                persist: true,
                ..def.clone()
            })
            .collect(),
    })
    .expect("probes always serialize")
}

/// Replaces the file with `probes`, atomically. Its directory is created (mode 0700) if
/// missing; the file is mode 0600, since commands are in it.
pub fn save(path: &Path, probes: &[Definition]) -> io::Result<()> {
    create_directory(path)?;
    crate::sys::replace_file(path, &render(probes), 0o600, crate::sys::Durability::Synced)
}

/// The largest state file read: 10,000 probes of the longest command fit several times.
const MAX_SIZE: u64 = 256 << 20;

fn create_directory(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.unwrap_or(Path::new(".")))
}

/// The lock of a state file, held for the daemon's life: a second daemon on the same file
/// would arm every saved probe again, and one signal would then run its command twice.
/// The state file itself is replaced by rename, so its lock is on `STATE.lock` beside it, a
/// file never removed (removing it would let two daemons lock two different files of that
/// name); it holds the pid of the daemon holding it.
pub struct StateLock(crate::sys::LockedFile);

impl StateLock {
    /// Takes the lock of `state`'s lock file, creating it (and the directory) when missing.
    /// Refuses (EX_CANTCREAT) when another daemon holds it, naming its pid.
    pub fn take(state: &Path) -> Result<StateLock, Error> {
        let path = lock_path(state);
        let cant = |e: String| {
            Error::new(
                Kind::CantCreate,
                format!(
                    "state file {}: lock {}: {e}",
                    state.display(),
                    path.display()
                ),
            )
        };
        create_directory(state).map_err(|e| cant(e.to_string()))?;
        let lock = crate::sys::LockedFile::take(&path, 0o600).map_err(|refused| match refused {
            crate::sys::NotLocked::Held(pid) => Error::new(
                Kind::CantCreate,
                format!(
                    "a jaildaemon (pid {pid}) already holds the state file {} (its lock {})",
                    state.display(),
                    path.display()
                ),
            ),
            crate::sys::NotLocked::Failed(e) => cant(e.to_string()),
        })?;
        Ok(StateLock(lock))
    }

    /// Says which daemon holds the lock: written once the daemon's pid is known (after
    /// detaching), as the pidfile is.
    pub fn write_pid(&mut self, pid: u32) -> io::Result<()> {
        self.0.write_pid(pid)
    }
}

/// `STATE.lock`, beside the state file.
pub fn lock_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    state.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::Respawn;

    fn arm(title: &str) -> Definition {
        Definition {
            command: "echo 'a \"quoted\" command'".into(),
            jail: "lxc:web1".into(),
            title: title.into(),
            respawn: Respawn::AfterCommand,
            persist: true,
            status: true,
            extras: crate::definition::Extras {
                user: Some("www".into()),
                group: None,
                cooldown: Some(std::time::Duration::from_secs(90)),
                timeout: Some(std::time::Duration::from_secs(30)),
                run_as: Some("backup:operator".into()),
                verbs: [(
                    crate::definition::Verb::Usr2,
                    crate::definition::VerbCommand {
                        command: "echo usr2".into(),
                        run_as: Some("root".into()),
                        timeout: Some(std::time::Duration::from_secs(45)),
                    },
                )]
                .into(),
                confirm: [(
                    crate::definition::Verb::Usr2,
                    std::time::Duration::from_secs(10),
                )]
                .into(),
                watchdog: None,
            }
            .boxed(),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("jaildaemon-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn saved_probes_load_back_and_nothing_else_is_left() {
        let dir = scratch("round-trip");
        let path = dir.join("sub/state");
        assert!(load(&path).unwrap().is_empty());
        save(&path, &[arm("A"), arm("B")]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![arm("A"), arm("B")]);
        save(&path, &[arm("B")]).unwrap();
        assert_eq!(load(&path).unwrap(), vec![arm("B")]);
        let left: Vec<_> = fs::read_dir(dir.join("sub")).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "a temporary file was left behind: {left:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unreadable_state_file_is_an_error_naming_it() {
        let dir = scratch("garbage");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        let mut bad_probe = arm("A");
        bad_probe.title = String::new();
        let bad_probe = String::from_utf8(render(&[arm("B"), bad_probe])).unwrap();
        for garbage in [
            "{\"format\":1,\"probes\":[",
            "{\"format\":2,\"probes\":[]}",
            "",
            &bad_probe,
        ] {
            fs::write(&path, garbage).unwrap();
            let err = load(&path).unwrap_err();
            assert_eq!(err.kind, Kind::Config);
            assert!(err.message.contains(&path.display().to_string()));
        }
        let err = load(&path).unwrap_err();
        assert!(
            err.message
                .ends_with("probe 2 of 2: the title must be 1 to 200 printable bytes"),
            "{}",
            err.message
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
