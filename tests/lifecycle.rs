//! Probes over time: `-l` checked against the processes that really run, `-k`, the
//! configuration file and its reload on SIGHUP, `-P` and the state file, daemon restarts after
//! SIGTERM and SIGKILL, and the audit trail in the log.

mod util;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use jaildaemon::proto::{Origin, ProbeState, Respawn};
use util::*;

const SETTLE: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

/// A command that appends `$JAILDAEMON_TITLE` and `word` to `file`.
fn append(file: &Path, word: &str) -> String {
    format!("echo \"$JAILDAEMON_TITLE {word}\" >> {}", file.display())
}

fn read(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_default()
}

fn probe_toml(jail: &str, title: &str, command: &str, respawn: &str) -> String {
    format!(
        "[[probe]]\njail = \"{jail}\"\ntitle = \"{title}\"\ncommand = '{command}'\nrespawn = \"{respawn}\"\n\n"
    )
}

#[test]
fn list_shows_what_really_runs_and_remove_takes_probes_away_unfired() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("list_shows_what_really_runs_and_remove_takes_probes_away_unfired")
    else {
        return;
    };
    let spec = jail.spec();
    daemon.arm(&["-c", &append(&fired, "x"), "-j", &spec, "-t", "ONE"]);
    daemon.arm(&["-c", &append(&fired, "x"), "-j", &spec, "-t", "TWO", "-r"]);
    daemon.arm(&[
        "-c",
        &append(&fired, "x"),
        "-j",
        &spec,
        "-t",
        "THREE",
        "-R",
        "-u",
        "65534",
    ]);
    let probes = list(&daemon);
    assert_eq!(probes.len(), 3);
    for (title, respawn, uid) in [
        ("ONE", Respawn::Never, 0),
        ("TWO", Respawn::AfterCommand, 0),
        ("THREE", Respawn::Immediately, 65534),
    ] {
        let p = by_title(&probes, title);
        assert_eq!(p.state, ProbeState::Armed);
        assert_eq!(p.respawn, respawn);
        assert_eq!(p.origin, Origin::Command);
        assert_eq!(p.jail, spec);
        assert_eq!(p.jail_id, Some(jail.pid as i32));
        assert_eq!(p.uid, Some(uid));
        assert_eq!(p.fired, 0);
        // The pid listed is the probe that really waits in the jail.
        assert_eq!(jail.probes(title), vec![p.pid.unwrap() as u32], "{title}");
    }
    // Fired once: counted, and the command's end is its last result.
    assert!(jail.pkill(0, "HUP", "TWO"));
    assert!(wait_for(LONG, || {
        let two = by_title(&list(&daemon), "TWO").clone();
        two.fired == 1 && two.state == ProbeState::Armed && two.last.is_some()
    }));
    let two = by_title(&list(&daemon), "TWO").clone();
    assert!(
        two.last.as_deref().unwrap().contains("exit code 0"),
        "{two:?}"
    );
    assert_eq!(jail.probes("TWO"), vec![two.pid.unwrap() as u32]);
    // The table says the same, for people.
    let table = String::from_utf8(daemon.util(&["-l"]).stdout).unwrap();
    let row = table.lines().find(|l| l.contains("TWO")).unwrap();
    for cell in ["-r", "armed", &two.pid.unwrap().to_string(), " 1 "] {
        assert!(row.contains(cell), "{cell:?} not in {row:?}");
    }
    // -k by title and by id: the process goes and its command never runs.
    let three = by_title(&list(&daemon), "THREE").id.to_string();
    for which in ["ONE", three.as_str()] {
        let out = daemon.util(&["-k", which, "-j", &spec]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The kill is sent without waiting for the process to go: wait for each.
    assert!(wait_for(LONG, || jail.probes("ONE").is_empty()));
    assert!(wait_for(LONG, || jail.probes("THREE").is_empty()));
    // Killed without waiting for them, and reaped once gone: no zombie stays.
    let daemon_pid = daemon.child.id();
    assert!(
        wait_for(LONG, || zombie_children(daemon_pid).is_empty()),
        "zombies left by -k"
    );
    assert!(!jail.pkill(0, "HUP", "ONE"));
    // Negative twins: unknown probe, or the right probe in the wrong jail: refused, untouched.
    for (which, in_jail) in [
        ("NOPE", spec.as_str()),
        ("TWO", "99999999"),
        ("TWO", "web1"),
    ] {
        let out = daemon.util(&["-k", which, "-j", in_jail]);
        assert_eq!(out.status.code(), Some(66), "-k {which} -j {in_jail}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no probe '{which}'")));
    }
    assert_eq!(jail.probes("TWO").len(), 1);
    let left: Vec<String> = list(&daemon).into_iter().map(|p| p.title).collect();
    assert_eq!(left, vec!["TWO"]);
    sleep(SETTLE);
    assert_eq!(read(&fired), "TWO x\n", "a removed probe fired");
    // A host user who is not root may neither list nor remove: stopped by the socket's mode,
    // and with the mode opened up, by its credentials.
    let modes = [0o600, 0o666];
    let requests = [&["-l"][..], &["-k", "TWO", "-j", &spec][..]];
    for (mode, args) in modes
        .iter()
        .flat_map(|m| requests.iter().map(move |a| (m, a)))
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&daemon.socket, fs::Permissions::from_mode(*mode)).unwrap();
        let out = daemon.util_as_nobody(args);
        assert_eq!(out.status.code(), Some(77), "{mode:o} {args:?}");
    }
    assert_eq!(jail.probes("TWO").len(), 1);
}

#[test]
fn every_trigger_and_refusal_is_in_the_log_with_jail_title_and_id() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("every_trigger_and_refusal_is_in_the_log_with_jail_title_and_id")
    else {
        return;
    };
    let spec = jail.spec();
    daemon.arm(&[
        "-c",
        &append(&fired, "x"),
        "-j",
        &spec,
        "-t",
        "AUDITED",
        "-r",
    ]);
    assert!(jail.pkill(0, "HUP", "AUDITED"));
    assert!(wait_for(LONG, || daemon.log_text().contains("re-armed")));
    let out = daemon.util(&[
        "-c",
        "true",
        "-j",
        &spec,
        "-t",
        "REFUSED",
        "-u",
        "no-such-user",
    ]);
    assert_eq!(out.status.code(), Some(67));
    let tag = format!("probe 1 (jail {spec}, 'AUDITED')");
    let log = daemon.log_text();
    for event in [
        // In words an administrator reads: no internal type names.
        // Issue 22: the jail's uid apart from the host user the command runs as.
        format!("{tag} armed: mode -r, in the jail as uid 0 gid 0, host pid"),
        "the command runs on the host as root; no other settings".to_string(),
        format!("{tag} triggered"),
        format!("{tag} command started, host pid"),
        format!("{tag} command ended with exit code 0 after"),
        format!("{tag} re-armed, host pid"),
        format!("refused to arm: unknown user 'no-such-user' in jail {spec}"),
    ] {
        assert!(log.contains(&event), "{event:?} not logged:\n{log}");
    }
    // Nothing is logged as triggered that was not.
    assert_eq!(log.matches("triggered").count(), 1);
}

#[test]
fn config_probes_are_armed_at_start_and_a_reload_applies_only_the_difference() {
    let test = "config_probes_are_armed_at_start_and_a_reload_applies_only_the_difference";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let config = dir.path("jaildaemon.conf");
    let jail = Jail::new();
    let spec = jail.spec();
    let first = ["# three probes".to_string(), String::new()]
        .into_iter()
        .chain([
            probe_toml(&spec, "KEEP", &append(&fired, "kept"), "after_command"),
            probe_toml(&spec, "CHANGE", &append(&fired, "old"), "never"),
            probe_toml(&spec, "DROP", &append(&fired, "dropped"), "never"),
        ])
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&config, &first).unwrap();
    let config_arg = config.display().to_string();
    let daemon = Daemon::start_with_args(&dir, &["-C", &config_arg]);
    let before = list(&daemon);
    assert_eq!(before.len(), 3, "{before:#?}");
    assert!(
        before
            .iter()
            .all(|p| p.origin == Origin::Config && p.state == ProbeState::Armed)
    );
    let keep_pid = by_title(&before, "KEEP").pid;
    let change_pid = by_title(&before, "CHANGE").pid;
    // KEEP unchanged, CHANGE with a new command, DROP gone, ADD new.
    let second = [
        probe_toml(&spec, "KEEP", &append(&fired, "kept"), "after_command"),
        probe_toml(&spec, "CHANGE", &append(&fired, "new"), "never"),
        probe_toml(&spec, "ADD", &append(&fired, "added"), "never"),
    ]
    .concat();
    fs::write(&config, &second).unwrap();
    daemon.signal(rustix::process::Signal::HUP);
    assert!(
        wait_for(LONG, || daemon
            .log_text()
            .contains("1 added, 1 changed, 1 removed, 1 unchanged")),
        "{}",
        daemon.log_text()
    );
    let after = list(&daemon);
    let titles: Vec<&str> = after.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert_eq!(
        by_title(&after, "KEEP").pid,
        keep_pid,
        "an unchanged probe was touched"
    );
    assert_ne!(by_title(&after, "CHANGE").pid, change_pid);
    assert!(jail.probes("DROP").is_empty());
    assert_eq!(jail.probes("ADD").len(), 1);
    assert!(jail.pkill(0, "HUP", "CHANGE"));
    assert!(wait_for(LONG, || !read(&fired).is_empty()));
    sleep(SETTLE);
    assert_eq!(read(&fired), "CHANGE new\n");
    // A bad file changes nothing and says where it is wrong.
    fs::write(
        &config,
        format!("{}[[probe]]\njail = \"{spec}\"\ntitel = \"typo\"\n", second),
    )
    .unwrap();
    let pids: Vec<Option<i32>> = list(&daemon).iter().map(|p| p.pid).collect();
    daemon.signal(rustix::process::Signal::HUP);
    assert!(
        wait_for(LONG, || daemon
            .log_text()
            .contains("the running probes stay")),
        "{}",
        daemon.log_text()
    );
    assert!(
        daemon
            .log_text()
            .contains(&format!("config {}: line ", config.display()))
    );
    assert!(daemon.log_text().contains("titel"));
    let pids_after: Vec<Option<i32>> = list(&daemon).iter().map(|p| p.pid).collect();
    assert_eq!(pids, pids_after);
    drop(daemon);
    // Nor does a daemon start on a bad file: exit 78, with the line.
    let out = Command::new(BIN)
        .args(["-D", "-F", "-C", &config_arg, "-f"])
        .arg(dir.path("other.sock"))
        .arg("-p")
        .arg(dir.path("other.pid"))
        .arg("-S")
        .arg(dir.path("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = second.matches('\n').count() + 3;
    assert!(
        stderr.contains(&format!("line {line}:")) && stderr.contains("titel"),
        "{stderr}"
    );
    // A named file must exist; the default one need not.
    let out = Command::new(BIN)
        .args(["-D", "-F", "-C", "/nonexistent/jaildaemon.conf", "-p"])
        .arg(dir.path("other.pid"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        !dir.path("other.pid").exists(),
        "a refused daemon took its pidfile"
    );
}

#[test]
fn declared_and_persisted_probes_come_back_after_sigterm_and_sigkill() {
    let test = "declared_and_persisted_probes_come_back_after_sigterm_and_sigkill";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let config = dir.path("jaildaemon.conf");
    let jail = Jail::new();
    let spec = jail.spec();
    fs::write(
        &config,
        probe_toml(&spec, "DECLARED", &append(&fired, "d"), "after_command"),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let start = || Daemon::start_with_args(&dir, &["-C", &config_arg]);
    let mut daemon = start();
    daemon.arm(&[
        "-c",
        &append(&fired, "p"),
        "-j",
        &spec,
        "-t",
        "PERSISTED",
        "-P",
    ]);
    daemon.arm(&["-c", &append(&fired, "c"), "-j", &spec, "-t", "PLAIN"]);
    let titles = |d: &Daemon| -> Vec<String> {
        let mut titles: Vec<String> = list(d).into_iter().map(|p| p.title).collect();
        titles.sort();
        titles
    };
    assert_eq!(titles(&daemon), ["DECLARED", "PERSISTED", "PLAIN"]);
    for how in [rustix::process::Signal::TERM, rustix::process::Signal::KILL] {
        daemon.signal(how);
        daemon.child.wait().unwrap();
        // Every probe dies with the daemon, even after SIGKILL.
        assert!(
            wait_for(LONG, || ["DECLARED", "PERSISTED", "PLAIN"]
                .iter()
                .all(|t| jail.probes(t).is_empty())),
            "a probe outlived the daemon ({how:?})"
        );
        daemon = start();
        assert_eq!(titles(&daemon), ["DECLARED", "PERSISTED"], "after {how:?}");
        assert_eq!(jail.probes("DECLARED").len(), 1);
        assert_eq!(jail.probes("PERSISTED").len(), 1);
        assert!(jail.probes("PLAIN").is_empty());
    }
    // A single-shot -P probe that fired is gone from the state file, and stays gone.
    assert!(jail.pkill(0, "HUP", "PERSISTED"));
    assert!(wait_for(LONG, || read(&fired) == "PERSISTED p\n"));
    assert!(wait_for(LONG, || !read(&dir.path("state")).contains("PERSISTED")));
    drop(daemon);
    let daemon = start();
    assert_eq!(titles(&daemon), ["DECLARED"]);
}

#[test]
fn a_crash_at_any_moment_leaves_a_whole_state_file() {
    let test = "a_crash_at_any_moment_leaves_a_whole_state_file";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let jail = Jail::new();
    let spec = jail.spec();
    let state = dir.path("state");
    let mut saved = 0;
    for round in 0..12u64 {
        let daemon = Daemon::start(&dir);
        let socket = daemon.socket.clone();
        let spec = spec.clone();
        // Arms -P probes as fast as it can while the daemon is killed under it.
        let armer = std::thread::spawn(move || {
            for i in 0..40 {
                let title = format!("CRASH_{round}_{i}");
                let ok = Command::new(BIN)
                    .args(["-c", "true", "-j", &spec, "-t", &title, "-P", "-f"])
                    .arg(&socket)
                    .output()
                    .unwrap()
                    .status
                    .success();
                if !ok {
                    break;
                }
            }
        });
        sleep(Duration::from_millis(20 + 7 * round));
        daemon.signal(rustix::process::Signal::KILL);
        armer.join().unwrap();
        let probes = jaildaemon::state::load(&state)
            .unwrap_or_else(|e| panic!("round {round}: torn state file: {e}"));
        assert!(probes.len() >= saved, "round {round}: probes were lost");
        saved = probes.len();
        let temporaries = fs::read_dir(&dir.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert!(temporaries <= 1, "temporary files pile up");
        drop(daemon);
    }
    assert!(
        saved > 0,
        "no -P probe was ever saved: the test proved nothing"
    );
}

#[test]
fn a_service_manager_hears_ready_once_declared_probes_are_armed_and_stopping_at_the_end() {
    let test =
        "a_service_manager_hears_ready_once_declared_probes_are_armed_and_stopping_at_the_end";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let jail = Jail::new();
    let config = dir.path("jaildaemon.conf");
    fs::write(
        &config,
        probe_toml(&jail.spec(), "DECLARED", "true", "never"),
    )
    .unwrap();
    let notify = std::os::unix::net::UnixDatagram::bind(dir.path("notify")).unwrap();
    notify.set_read_timeout(Some(LONG)).unwrap();
    let daemon_with = |config: &Path| {
        Command::new(BIN)
            .args(["-D", "-F", "-C"])
            .arg(config)
            .arg("-f")
            .arg(dir.path("jd.sock"))
            .arg("-p")
            .arg(dir.path("jd.pid"))
            .arg("-S")
            .arg(dir.path("state"))
            .env("NOTIFY_SOCKET", dir.path("notify"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut daemon = daemon_with(&config);
    let mut message = [0u8; 64];
    let n = notify
        .recv(&mut message)
        .expect("no READY=1 from the daemon");
    assert_eq!(&message[..n], b"READY=1");
    // Ready means the declared probes are in their jail, not merely that the socket is bound.
    assert_eq!(jail.probes("DECLARED").len(), 1);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&daemon),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let n = notify
        .recv(&mut message)
        .expect("no STOPPING=1 from the daemon");
    assert_eq!(&message[..n], b"STOPPING=1");
    assert!(daemon.wait().unwrap().success());
    // A daemon refused by its configuration file never says it is ready.
    fs::write(&config, "[[probe]]\n").unwrap();
    let mut refused = daemon_with(&config);
    assert_eq!(refused.wait().unwrap().code(), Some(78));
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        notify.recv(&mut message).is_err(),
        "a refused daemon said something"
    );
}

/// Issue 20 (6): one title armed twice in one jail, by two PIDs of it, is allowed as in 0.2,
/// but the utility (on stderr, still exiting 0) and the log warn naming the first probe; `-k`
/// by that title says what it removed and which probe of that title, armed under the other
/// PID, stays. Twins: another title in that jail, and the same title in another jail, are
/// armed without a warning; a title that names one probe is removed without a note.
#[test]
fn one_title_armed_twice_in_one_jail_is_warned_and_k_says_what_it_removed() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("one_title_armed_twice_in_one_jail_is_warned_and_k_says_what_it_removed")
    else {
        return;
    };
    let second = jail.sleeper_as(0);
    let (spec, other_pid) = (jail.spec(), second.pid.to_string());
    let command = append(&fired, "x");
    let arm = |jail: &str, title: &str| {
        let out = daemon.util(&["-c", &command, "-j", jail, "-t", title]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(arm(&spec, "CTL"), "");
    let warned = arm(&other_pid, "CTL");
    let expected =
        format!("title 'CTL' is already armed in this jail: probe 1 (armed by -c, jail {spec})");
    assert!(warned.contains(&expected), "{warned}");
    assert!(
        daemon.log_text().contains(&expected),
        "{}",
        daemon.log_text()
    );
    assert_eq!(jail.probes("CTL").len(), 2, "both are armed");
    // Twins: another title by the second PID, the same title in another jail.
    assert_eq!(arm(&other_pid, "LOG"), "");
    let elsewhere = Jail::new();
    assert_eq!(arm(&elsewhere.spec(), "CTL"), "");
    assert_eq!(
        daemon
            .log_text()
            .matches("is already armed in this jail")
            .count(),
        1,
        "{}",
        daemon.log_text()
    );

    // A third CTL by the second PID: `-k CTL` by that PID removes both of its own, says the
    // title was ambiguous, and names probe 1, armed by the first PID, which stays.
    assert!(arm(&other_pid, "CTL").contains("probe 1 (armed by -c"));
    let out = daemon.util(&["-k", "CTL", "-j", &other_pid]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "removed probe(s) 2, 5\n"
    );
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains(&format!(
            "title 'CTL' is ambiguous in jail '{other_pid}': it named 2 probes, and all were removed (2, 5)"
        )),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("still has probe 1 (armed by -c, jail {spec})")),
        "{notes}"
    );
    assert!(wait_for(LONG, || jail.probes("CTL").len() == 1));
    // Twin: LOG names one probe, alone with its title: removed without a note.
    let out = daemon.util(&["-k", "LOG", "-j", &other_pid]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(read(&fired), "", "nothing fired");
}
