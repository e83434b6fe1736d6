//! The state file: probes armed with `-P`, kept so that they come back when the daemon does.
//!
//! It is replaced, never edited: the new content goes to a temporary file in the same
//! directory, which is flushed to disk and renamed over the old one, and then the directory is
//! flushed. A crash at any moment leaves the old file or the new one, never a mix of both.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::definition::Definition;
use crate::error::{Error, Kind};
use crate::proto::{Arm, Respawn};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    format: u32,
    probes: Vec<Record>,
}

/// One probe in the file. Its own type, so that the wire request and the daemon's definition
/// can change without changing the file; the fields are those written since format 1.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    command: String,
    jail: String,
    title: String,
    respawn: Respawn,
    user: Option<String>,
    group: Option<String>,
    /// Seconds; written only when set, so that files without one stay readable by earlier
    /// versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cooldown: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_as: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    verbs: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    confirm: std::collections::BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watchdog: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    status: bool,
    /// Always true; written so that files stay readable by earlier versions.
    #[serde(default = "persisted")]
    persist: bool,
}

fn persisted() -> bool {
    true
}

impl From<Record> for Definition {
    fn from(r: Record) -> Definition {
        Definition {
            jail: r.jail,
            title: r.title,
            command: r.command,
            respawn: r.respawn,
            user: r.user,
            group: r.group,
            cooldown: r.cooldown.map(std::time::Duration::from_secs),
            timeout: r.timeout.map(std::time::Duration::from_secs),
            run_as: r.run_as,
            verbs: crate::definition::verbs_from_names(&r.verbs),
            confirm: crate::definition::confirm_from_names(&r.confirm),
            watchdog: r.watchdog.map(std::time::Duration::from_secs),
            status: r.status,
        }
    }
}

impl From<&Definition> for Record {
    fn from(d: &Definition) -> Record {
        Record {
            command: d.command.clone(),
            jail: d.jail.clone(),
            title: d.title.clone(),
            respawn: d.respawn,
            user: d.user.clone(),
            group: d.group.clone(),
            cooldown: d.cooldown.map(|c| c.as_secs()),
            timeout: d.timeout.map(|t| t.as_secs()),
            run_as: d.run_as.clone(),
            verbs: crate::definition::verbs_to_names(&d.verbs),
            confirm: crate::definition::confirm_to_names(&d.confirm),
            watchdog: d.watchdog.map(|w| w.as_secs()),
            status: d.status,
            persist: true,
        }
    }
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
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(bad(e.to_string())),
    };
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
        .map(|(n, record)| {
            let def = Definition::from(record);
            Arm::from(&def)
                .validate()
                .map(|()| def)
                .map_err(|e| format!("probe {} of {count}: {}", n + 1, e.message))
        })
        .collect()
}

/// What `save` writes for `probes`: the file's whole content.
pub fn render(probes: &[Definition]) -> Vec<u8> {
    serde_json::to_vec_pretty(&Saved {
        format: FORMAT,
        probes: probes.iter().map(Record::from).collect(),
    })
    .expect("probes always serialize")
}

/// Replaces the file with `probes`, atomically. Its directory is created (mode 0700) if
/// missing; the file is mode 0600, since commands are in it.
pub fn save(path: &Path, probes: &[Definition]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let body = render(probes);
    let temporary = temporary_path(path);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&body)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// One fixed name, so that a crash leaves at most one temporary file, overwritten next time.
/// The pidfile's lock keeps a second daemon from writing it at the same time.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(title: &str) -> Definition {
        Definition {
            command: "echo 'a \"quoted\" command'".into(),
            jail: "lxc:web1".into(),
            title: title.into(),
            respawn: Respawn::AfterCommand,
            user: Some("www".into()),
            group: None,
            cooldown: Some(std::time::Duration::from_secs(90)),
            timeout: Some(std::time::Duration::from_secs(30)),
            run_as: Some("backup:operator".into()),
            verbs: [(crate::definition::Verb::Usr2, "echo usr2".to_string())].into(),
            confirm: [(
                crate::definition::Verb::Usr2,
                std::time::Duration::from_secs(10),
            )]
            .into(),
            watchdog: None,
            status: true,
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
        assert_eq!(left.len(), 1, "a temporary file was left behind");
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
