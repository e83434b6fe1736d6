//! Files the daemon writes (issue 20, points 1 and 5): the metrics file, the state file and its
//! lock, the pidfile. Their directory belongs to an unprivileged host user (uid 65534, as
//! node_exporter's textfile directory belongs to `prometheus`), who plants a symbolic link to a
//! file of root's, or a FIFO, where the daemon is about to write. Root never writes through
//! them nor blocks on them, and what the daemon must write is still written beside them.
//! The fallback log is in tests/detached_log.rs, which runs the detached daemon it needs.

mod util;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::*;

const HOSTILE: u32 = 65534;
const LONG: Duration = Duration::from_secs(5);
/// How long a `-l` may take while plants sit beside the daemon's files: generous for a loaded
/// machine, far below the 5 s a blocked daemon makes the utility wait before it gives up.
const PROMPT: Duration = Duration::from_millis(1500);
const VICTIM_TEXT: &str = "root's own file\n";

/// What the directory's owner leaves at a name the daemon writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Plant {
    /// A symbolic link to `victim`, a file of root's.
    Link,
    Fifo,
}

const PLANTS: [Plant; 2] = [Plant::Link, Plant::Fifo];

impl Plant {
    /// What the daemon says when it finds this plant where a file of its own should be.
    fn refusal(self) -> &'static str {
        match self {
            Plant::Link => "is a symbolic link; not followed",
            Plant::Fifo => "is a FIFO, not a regular file; refused",
        }
    }
}

/// A directory of uid 65534 inside `dir`, and a root-owned victim file beside it.
fn hostile_dir(dir: &TempDir) -> (PathBuf, PathBuf) {
    let hostile = dir.path("hostile");
    fs::create_dir(&hostile).unwrap();
    std::os::unix::fs::chown(&hostile, Some(HOSTILE), Some(HOSTILE)).unwrap();
    let victim = dir.path("victim");
    fs::write(&victim, VICTIM_TEXT).unwrap();
    (hostile, victim)
}

/// Plants `plant` at `at`, as the directory's owner does it: with their own uid.
fn plant(plant: Plant, at: &Path, victim: &Path) {
    let (at, victim) = (at.to_str().unwrap(), victim.to_str().unwrap());
    let out = match plant {
        Plant::Link => as_host_uid(HOSTILE, &["ln", "-sfn", victim, at]),
        // Their directory: whatever is there, they may remove.
        Plant::Fifo => as_host_uid(HOSTILE, &["sh", "-c", "rm -f \"$0\" && mkfifo \"$0\"", at]),
    };
    assert!(out.status.success(), "planting {plant:?} at {at}: {out:?}");
}

fn planted(plant: Plant, at: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(at) else {
        return false;
    };
    let kind = meta.file_type();
    meta.uid() == HOSTILE
        && match plant {
            Plant::Link => kind.is_symlink(),
            Plant::Fifo => kind.is_fifo(),
        }
}

fn assert_victim_untouched(victim: &Path) {
    assert_eq!(fs::read_to_string(victim).unwrap(), VICTIM_TEXT);
    assert_eq!(fs::metadata(victim).unwrap().uid(), 0);
}

/// A `-l` through the socket answers, and soon.
fn assert_answers_promptly(daemon: &Daemon) {
    let asked = Instant::now();
    let out = daemon.util(&["-l"]);
    assert!(out.status.success(), "-l: {out:?}\n{}", daemon.log_text());
    assert!(
        asked.elapsed() < PROMPT,
        "-l took {:?}\n{}",
        asked.elapsed(),
        daemon.log_text()
    );
}

/// A regular file of root's, with this mode, holding `needle`.
fn written_by_root(path: &Path, mode: u32, needle: &str) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    meta.file_type().is_file()
        && meta.uid() == 0
        && meta.permissions().mode() & 0o777 == mode
        && fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

/// Runs a daemon in the foreground on these files, expected to refuse to start; fails the test
/// if it still runs after `LONG` (it blocked), and kills it then.
fn refused_daemon(socket: &Path, pidfile: &Path, state: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(["-D", "-F", "-C", "/dev/null", "-f"])
        .arg(socket)
        .arg("-p")
        .arg(pidfile)
        .arg("-S")
        .arg(state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = wait_for(LONG, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(ended, "the daemon blocked instead of refusing: {out:?}");
    out
}

/// A refused daemon removed the socket and pidfile it had taken before it was refused.
fn assert_left_nothing(socket: &Path, pidfile: &Path) {
    assert!(!pidfile.exists(), "a refused daemon left its pidfile");
    assert!(!socket.exists(), "a refused daemon left its socket");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_metrics_file_is_written_whatever_its_directorys_owner_plants() {
    let test = "the_metrics_file_is_written_whatever_its_directorys_owner_plants";
    if !root_or_skip(test) {
        return;
    }
    // The twin first: nothing planted, written as before.
    for plant_kind in [None, Some(Plant::Link), Some(Plant::Fifo)] {
        let dir = TempDir::new();
        let (hostile, victim) = hostile_dir(&dir);
        let metrics = hostile.join("jd.prom");
        // The name of the temporary file before issue 20, and the metrics file itself.
        let old_temporary = hostile.join("jd.prom.tmp");
        if let Some(kind) = plant_kind {
            plant(kind, &old_temporary, &victim);
            plant(kind, &metrics, &victim);
        }
        let daemon = Daemon::start_with_args(&dir, &["-M", metrics.to_str().unwrap()]);
        let written = || written_by_root(&metrics, 0o644, "jaildaemon_commands_running 0");
        assert!(
            wait_for(LONG, written),
            "{plant_kind:?}: no metrics file\n{}",
            daemon.log_text()
        );
        assert_answers_promptly(&daemon);
        assert_victim_untouched(&victim);
        if let Some(kind) = plant_kind {
            assert!(planted(kind, &old_temporary), "{kind:?} was touched");
            // Planted again over the written file: the next write, from the daemon's loop,
            // replaces it again (a refused request is something that happened).
            plant(kind, &metrics, &victim);
            let refused = daemon.util(&["-c", "true", "-j", "999999999"]);
            assert_eq!(refused.status.code(), Some(68), "{refused:?}");
            assert!(
                wait_for(LONG, written),
                "{kind:?}: not written again\n{}",
                daemon.log_text()
            );
            assert_answers_promptly(&daemon);
            assert_victim_untouched(&victim);
        }
        // Nothing but the metrics file and the plants is left in the directory.
        let mut left: Vec<String> = fs::read_dir(&hostile)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let expected = if plant_kind.is_some() {
            vec!["jd.prom", "jd.prom.tmp"]
        } else {
            vec!["jd.prom"]
        };
        assert_eq!(left, expected, "{plant_kind:?}");
        assert!(
            !daemon.log_text().contains("metrics file"),
            "{}",
            daemon.log_text()
        );
    }
}

#[test]
fn the_state_file_is_saved_whatever_its_directorys_owner_plants_beside_it() {
    let test = "the_state_file_is_saved_whatever_its_directorys_owner_plants_beside_it";
    if !root_or_skip(test) {
        return;
    }
    let jail = Jail::new();
    for plant_kind in [None, Some(Plant::Link), Some(Plant::Fifo)] {
        let dir = TempDir::new();
        let (hostile, victim) = hostile_dir(&dir);
        let state = hostile.join("state");
        if let Some(kind) = plant_kind {
            // The temporary file's name before issue 20.
            plant(kind, &hostile.join("state.tmp"), &victim);
        }
        let daemon = Daemon::start_with_args(&dir, &["-S", state.to_str().unwrap()]);
        let title = format!("SAVED_{plant_kind:?}");
        let asked = Instant::now();
        daemon.arm(&["-c", "true", "-j", &jail.spec(), "-t", &title, "-P"]);
        assert!(
            asked.elapsed() < PROMPT + PLACEMENT,
            "arming took {:?}",
            asked.elapsed()
        );
        assert!(written_by_root(&state, 0o600, &title), "{plant_kind:?}");
        assert_eq!(jaildaemon::state::load(&state).unwrap().len(), 1);
        assert_answers_promptly(&daemon);
        assert_victim_untouched(&victim);
        if let Some(kind) = plant_kind {
            assert!(planted(kind, &hostile.join("state.tmp")), "{kind:?}");
        }
    }
}

/// How long a placement may add to an arming round trip on this loaded machine.
const PLACEMENT: Duration = Duration::from_secs(3);

#[test]
fn a_state_file_or_lock_planted_by_its_directorys_owner_is_refused_not_read() {
    let test = "a_state_file_or_lock_planted_by_its_directorys_owner_is_refused_not_read";
    if !root_or_skip(test) {
        return;
    }
    for (name, code) in [("state", 78), ("state.lock", 73)] {
        for kind in PLANTS {
            let dir = TempDir::new();
            let (hostile, victim) = hostile_dir(&dir);
            let state = hostile.join("state");
            plant(kind, &hostile.join(name), &victim);
            let out = refused_daemon(&dir.path("jd.sock"), &dir.path("jd.pid"), &state);
            let what = kind.refusal();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{name} {kind:?}: {err}");
            assert!(
                err.contains(&hostile.join(name).display().to_string()) && err.contains(what),
                "{name} {kind:?}: {err}"
            );
            assert_victim_untouched(&victim);
            assert!(planted(kind, &hostile.join(name)));
            assert_left_nothing(&dir.path("jd.sock"), &dir.path("jd.pid"));
        }
    }
    // A file of the directory's owner, full of commands for root to run: refused too.
    let dir = TempDir::new();
    let (hostile, _) = hostile_dir(&dir);
    let state = hostile.join("state");
    let text = r#"{"format":1,"probes":[{"command":"touch /pwned","jail":"1","title":"T","respawn":"never","user":null,"group":null}]}"#;
    let wrote = as_host_uid(
        HOSTILE,
        &[
            "sh",
            "-c",
            &format!("printf '%s' '{text}' > {}", state.display()),
        ],
    );
    assert!(wrote.status.success(), "{wrote:?}");
    let out = refused_daemon(&dir.path("jd.sock"), &dir.path("jd.pid"), &state);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("belongs to uid 65534"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_pidfile_planted_by_its_directorys_owner_is_refused_and_followed_nowhere() {
    let test = "a_pidfile_planted_by_its_directorys_owner_is_refused_and_followed_nowhere";
    if !root_or_skip(test) {
        return;
    }
    for kind in PLANTS {
        let dir = TempDir::new();
        let (hostile, victim) = hostile_dir(&dir);
        let pidfile = hostile.join("jd.pid");
        plant(kind, &pidfile, &victim);
        let out = refused_daemon(&dir.path("jd.sock"), &pidfile, &dir.path("state"));
        let what = kind.refusal();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(73), "{kind:?}: {err}");
        assert!(
            err.contains(&format!("pidfile {}: {what}", pidfile.display())),
            "{kind:?}: {err}"
        );
        assert_victim_untouched(&victim);
        assert!(planted(kind, &pidfile), "{kind:?} was removed");
    }
    // A hard link to a file of root's (which fs.protected_hardlinks keeps an unprivileged user
    // from making; root makes it here, as a host without that setting would let them), and a
    // file of the directory's owner (whose pid in it they could change at will).
    let dir = TempDir::new();
    let (hostile, victim) = hostile_dir(&dir);
    let pidfile = hostile.join("jd.pid");
    fs::hard_link(&victim, &pidfile).unwrap();
    let start_on =
        |pidfile: &Path| refused_daemon(&dir.path("jd.sock"), pidfile, &dir.path("state"));
    let out = start_on(&pidfile);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has 2 hard links; refused"),
        "{}",
        stderr(&out)
    );
    assert_victim_untouched(&victim);
    fs::remove_file(&pidfile).unwrap();
    let theirs = as_host_uid(HOSTILE, &["touch", pidfile.to_str().unwrap()]);
    assert!(theirs.status.success());
    let out = start_on(&pidfile);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("belongs to uid 65534"),
        "{}",
        stderr(&out)
    );
    // The twin: nothing planted, the daemon starts there and its pidfile names it.
    fs::remove_file(&pidfile).unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-p", pidfile.to_str().unwrap()]);
    assert!(written_by_root(
        &pidfile,
        0o644,
        &daemon.child.id().to_string()
    ));
    assert_answers_promptly(&daemon);
}

#[test]
fn a_second_daemon_on_the_same_state_file_is_refused_naming_the_first() {
    let test = "a_second_daemon_on_the_same_state_file_is_refused_naming_the_first";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let jail = Jail::new();
    let mut first = Daemon::start(&dir);
    first.arm(&["-c", "true", "-j", &jail.spec(), "-t", "ONCE", "-P"]);
    assert_eq!(jail.probes("ONCE").len(), 1);
    let state = dir.path("state");
    let lock = dir.path("state.lock");
    // Its own socket and pidfile, the same state file.
    let out = refused_daemon(&dir.path("second.sock"), &dir.path("second.pid"), &state);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(73), "{err}");
    assert!(
        err.contains(&format!(
            "a jaildaemon (pid {}) already holds the state file {} (its lock {})",
            first.child.id(),
            state.display(),
            lock.display()
        )),
        "{err}"
    );
    // It armed nothing: one signal still runs the command once.
    assert_eq!(jail.probes("ONCE").len(), 1);
    assert_left_nothing(&dir.path("second.sock"), &dir.path("second.pid"));
    assert!(first.is_running());
    assert_answers_promptly(&first);
    // The twin: a second daemon on another state file starts and serves.
    let other = TempDir::new();
    let second = Daemon::start(&other);
    assert_answers_promptly(&second);
    assert_eq!(jail.probes("ONCE").len(), 1);
    // And once the first is gone, its state file is free for the next daemon, which arms its
    // probe again.
    drop(second);
    drop(first);
    assert!(wait_for(LONG, || jail.probes("ONCE").is_empty()));
    let next = Daemon::start(&dir);
    assert!(
        wait_for(LONG, || jail.probes("ONCE").len() == 1),
        "{}",
        next.log_text()
    );
    assert_eq!(
        fs::read_to_string(&lock).unwrap().trim(),
        next.child.id().to_string()
    );
}

#[test]
fn temporary_files_a_killed_daemon_left_are_removed_at_start_and_nothing_else() {
    let test = "temporary_files_a_killed_daemon_left_are_removed_at_start_and_nothing_else";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let (hostile, _) = hostile_dir(&dir);
    let (state, metrics) = (dir.path("state"), hostile.join("jd.prom"));
    let leftovers = [
        dir.path("state.0123456789abcdef.tmp"),
        hostile.join("jd.prom.fedcba9876543210.tmp"),
    ];
    // Names of another form, or of another file, are not the daemon's to remove.
    let kept = [
        dir.path("state.tmp"),
        dir.path("state.0123456789ABCDEF.tmp"),
        hostile.join("other.prom.fedcba9876543210.tmp"),
        hostile.join("jd.prom.fedcba987654321.tmp"),
    ];
    for path in leftovers.iter().chain(&kept) {
        fs::write(path, "left").unwrap();
    }
    let daemon = Daemon::start_with_args(
        &dir,
        &[
            "-S",
            state.to_str().unwrap(),
            "-M",
            metrics.to_str().unwrap(),
        ],
    );
    // The metrics file's are looked for just after "listening on".
    for path in &leftovers {
        assert!(
            wait_for(LONG, || !path.exists()),
            "{} was left",
            path.display()
        );
    }
    for path in &kept {
        assert!(path.exists(), "{} was removed", path.display());
    }
    let said = |d: &Daemon| {
        d.log_text()
            .matches("removed 1 temporary file(s) left beside")
            .count()
    };
    assert!(
        wait_for(LONG, || said(&daemon) == 2),
        "{}",
        daemon.log_text()
    );
}
