//! Probes that talk back (issue 16): verbs. The real binary, its real socket, real namespace
//! jails and real signals; every test that expects a command to run has a twin that expects it
//! not to.

mod util;

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use util::*;

const SETTLE: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

/// A command that appends `word` to `file`.
fn append(word: &str, file: &Path) -> String {
    format!("echo {word} >> {}", file.display())
}

fn words(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Waits until exactly one probe titled `title` is armed in `jail`, and returns its host pid.
fn armed(daemon: &Daemon, jail: &Jail, title: &str) -> u32 {
    let mut found = Vec::new();
    assert!(
        wait_for(LONG, || {
            found = jail.probes(title);
            found.len() == 1
        }),
        "probes titled {title}: {found:?}\n{}",
        daemon.log_text()
    );
    found[0]
}

#[test]
fn each_verb_runs_its_own_command_and_sighup_the_main_one() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("each_verb_runs_its_own_command_and_sighup_the_main_one")
    else {
        return;
    };
    let spec = jail.spec();
    let (hup, usr1, usr2) = (
        append("HUP", &fired),
        format!("USR1={}", append("USR1", &fired)),
        format!("USR2={}", append("USR2", &fired)),
    );
    daemon.arm(&[
        "-c", &hup, "-j", &spec, "-R", "-t", "VERBAL", "--verb", &usr1, "--verb", &usr2,
    ]);
    let p = by_title(&list(&daemon), "VERBAL").clone();
    assert_eq!(p.verbs.len(), 2, "{p:?}");
    assert_eq!(p.verbs["USR1"], append("USR1", &fired));
    let table = String::from_utf8(daemon.util(&["-l"]).stdout).unwrap();
    assert!(table.contains("-R +2 verbs"), "{table}");

    // The title alone is the command line; the verbs are in the environment.
    let pid = armed(&daemon, &jail, "VERBAL");
    assert_eq!(
        fs::read(format!("/proc/{pid}/cmdline")).unwrap(),
        b"VERBAL\0"
    );
    assert_eq!(
        fs::read(format!("/proc/{pid}/environ")).unwrap(),
        b"USR1=0\0USR2=0\0"
    );
    let mut expected = Vec::new();
    for signal in ["USR1", "USR2", "HUP", "USR1"] {
        armed(&daemon, &jail, "VERBAL");
        assert!(jail.pkill(0, signal, "VERBAL"), "{signal}");
        expected.push(signal.to_string());
        assert!(
            wait_for(LONG, || words(&fired) == expected),
            "after {signal}: {:?}\n{}",
            words(&fired),
            daemon.log_text()
        );
    }
    assert!(daemon.log_text().contains("triggered by SIGUSR2"));
    assert_eq!(by_title(&list(&daemon), "VERBAL").fired, 4);
}

#[test]
fn a_signal_that_is_not_a_verb_of_the_probe_runs_nothing() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_signal_that_is_not_a_verb_of_the_probe_runs_nothing")
    else {
        return;
    };
    let spec = jail.spec();
    let usr1 = format!("USR1={}", append("USR1", &fired));
    let hup = append("HUP", &fired);
    let arm = || daemon.arm(&["-c", &hup, "-j", &spec, "-t", "TERSE", "--verb", &usr1]);
    // USR2 is no verb of this probe: it keeps its default action and kills the probe; SIGTERM
    // too. Neither runs a command (and the killed probe, armed with -c, is gone).
    for (signal, number) in [("USR2", 12), ("TERM", 15)] {
        arm();
        let pid = armed(&daemon, &jail, "TERSE");
        assert!(jail.pkill(0, signal, "TERSE"), "{signal}");
        assert!(wait_for(LONG, || !Path::new(&format!("/proc/{pid}")).exists()));
        sleep(SETTLE);
        assert_eq!(
            words(&fired),
            Vec::<String>::new(),
            "{signal} ran something"
        );
        let log = daemon.log_text();
        assert!(
            log.contains(&format!("ended by signal {number}: nothing fired")),
            "{log}"
        );
    }
    // A verb sent from outside the jail (host root, outside its pid namespace) is ignored and
    // counted, as SIGHUP is: the probe stays.
    arm();
    let pid = armed(&daemon, &jail, "TERSE");
    assert_eq!(
        fs::read(format!("/proc/{pid}/environ")).unwrap(),
        b"USR1=0\0"
    );
    let out = std::process::Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(wait_for(LONG, || ignored_sighups(pid) == Some(1)));
    assert_eq!(jail.probes("TERSE"), vec![pid]);
    assert_eq!(words(&fired), Vec::<String>::new());
    // The positive twin: the same probe's own verb, from inside, runs its command.
    assert!(jail.pkill(0, "USR1", "TERSE"));
    assert!(
        wait_for(LONG, || words(&fired) == ["USR1"]),
        "{}",
        daemon.log_text()
    );
    assert!(daemon.log_text().contains("triggered by SIGUSR1"));
}

#[test]
fn a_confirmed_verb_runs_only_on_its_second_signal_within_the_window() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_confirmed_verb_runs_only_on_its_second_signal_within_the_window")
    else {
        return;
    };
    let spec = jail.spec();
    let usr2 = format!("USR2={}", append("USR2", &fired));
    let usr1 = format!("USR1={}", append("USR1", &fired));
    daemon.arm(&[
        "-c",
        &append("HUP", &fired),
        "-j",
        &spec,
        "-R",
        "-t",
        "SURE",
        "--verb",
        &usr1,
        "--verb",
        &usr2,
        "--confirm",
        "USR2=2s",
    ]);
    let p = by_title(&list(&daemon), "SURE").clone();
    assert_eq!(p.confirm.get("USR2"), Some(&2), "{p:?}");
    let pid = armed(&daemon, &jail, "SURE");
    assert_eq!(
        fs::read(format!("/proc/{pid}/environ")).unwrap(),
        b"USR1=0\0USR2=2\0"
    );
    // One USR2 alone runs nothing, and after the window the probe is back to plain: the same
    // process, waiting.
    assert!(jail.pkill(0, "USR2", "SURE"));
    sleep(Duration::from_millis(2500));
    assert_eq!(words(&fired), Vec::<String>::new());
    assert_eq!(jail.probes("SURE"), vec![pid]);
    // A USR2 after the window is a first one again: nothing.
    assert!(jail.pkill(0, "USR2", "SURE"));
    sleep(SETTLE);
    assert_eq!(words(&fired), Vec::<String>::new());
    assert_eq!(jail.probes("SURE"), vec![pid]);
    // Its second within the window runs the verb.
    assert!(jail.pkill(0, "USR2", "SURE"));
    assert!(
        wait_for(LONG, || words(&fired) == ["USR2"]),
        "{:?}\n{}",
        words(&fired),
        daemon.log_text()
    );
    // A verb without confirmation still runs on one signal, and SIGHUP too.
    for (signal, so_far) in [
        ("USR1", &["USR2", "USR1"][..]),
        ("HUP", &["USR2", "USR1", "HUP"][..]),
    ] {
        armed(&daemon, &jail, "SURE");
        assert!(jail.pkill(0, signal, "SURE"));
        assert!(wait_for(LONG, || words(&fired) == so_far), "{signal}");
    }
    // A USR2 from outside the jail opens no window: with one from inside after it, nothing.
    let pid = armed(&daemon, &jail, "SURE");
    let out = std::process::Command::new("kill")
        .args(["-USR2", &pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(wait_for(LONG, || ignored_sighups(pid) == Some(1)));
    assert!(jail.pkill(0, "USR2", "SURE"));
    sleep(SETTLE);
    assert_eq!(words(&fired).len(), 3, "{:?}", words(&fired));
    assert_eq!(jail.probes("SURE"), vec![pid]);
}

#[test]
fn a_fed_watchdog_never_fires_and_a_starved_one_fires_once() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_fed_watchdog_never_fires_and_a_starved_one_fires_once")
    else {
        return;
    };
    let spec = jail.spec();
    daemon.arm(&[
        "-c",
        &append("STARVED", &fired),
        "-j",
        &spec,
        "-t",
        "DEADMAN",
        "--watchdog",
        "2s",
    ]);
    let p = by_title(&list(&daemon), "DEADMAN").clone();
    assert_eq!(p.watchdog, Some(2), "{p:?}");
    assert!(p.watchdog_left_ms.is_some_and(|ms| ms <= 2000), "{p:?}");
    let table = String::from_utf8(daemon.util(&["-l"]).stdout).unwrap();
    assert!(table.contains("watchdog"), "{table}");
    // Fed every 0.5 s for 4 s, twice its period: it never fires.
    let start = std::time::Instant::now();
    let mut feeds = 0;
    while start.elapsed() < Duration::from_secs(4) {
        armed(&daemon, &jail, "DEADMAN");
        assert!(jail.pkill(0, "HUP", "DEADMAN"));
        feeds += 1;
        sleep(Duration::from_millis(500));
    }
    assert!(feeds >= 6, "only {feeds} feeds");
    assert_eq!(words(&fired), Vec::<String>::new(), "a fed watchdog fired");
    let p = by_title(&list(&daemon), "DEADMAN").clone();
    assert_eq!(p.fired, 0, "{p:?}");
    assert!(p.last.as_deref().unwrap_or("").contains("fed"), "{p:?}");
    // Starved: after its period it fires, once, and the probe stays in the jail.
    armed(&daemon, &jail, "DEADMAN");
    assert!(
        wait_for(LONG, || words(&fired) == ["STARVED"]),
        "{}",
        daemon.log_text()
    );
    sleep(Duration::from_secs(3));
    assert_eq!(words(&fired), ["STARVED"], "fired more than once");
    armed(&daemon, &jail, "DEADMAN");
    let p = by_title(&list(&daemon), "DEADMAN").clone();
    assert_eq!(p.fired, 1, "{p:?}");
    assert!(
        p.last.as_deref().unwrap_or("").contains("watchdog fired"),
        "{p:?}"
    );
}

#[test]
fn killing_a_persisted_watchdog_probe_does_not_silence_it() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("killing_a_persisted_watchdog_probe_does_not_silence_it")
    else {
        return;
    };
    let spec = jail.spec();
    let command = append("STARVED", &fired);
    daemon.arm(&[
        "-c",
        &command,
        "-j",
        &spec,
        "-t",
        "KEPT",
        "--watchdog",
        "3s",
        "-P",
    ]);
    daemon.arm(&[
        "-c",
        &command,
        "-j",
        &spec,
        "-t",
        "PLAIN",
        "--watchdog",
        "3s",
    ]);
    let kept = armed(&daemon, &jail, "KEPT");
    armed(&daemon, &jail, "PLAIN");
    let killed = std::time::Instant::now();
    assert!(jail.pkill(0, "KILL", "KEPT"));
    assert!(jail.pkill(0, "KILL", "PLAIN"));
    // Placed again, with its period running on: the command runs about 3 s after arming.
    assert!(wait_for(LONG, || jail
        .probes("KEPT")
        .first()
        .is_some_and(|p| *p != kept)));
    assert_eq!(words(&fired), Vec::<String>::new());
    assert!(
        wait_for(LONG, || words(&fired) == ["STARVED"]),
        "{}",
        daemon.log_text()
    );
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "{:?}",
        killed.elapsed()
    );
    // The plain one is gone, as every plain probe killed is: it ran nothing.
    sleep(SETTLE);
    assert_eq!(words(&fired), ["STARVED"]);
    let probes = list(&daemon);
    assert!(probes.iter().all(|p| p.title != "PLAIN"), "{probes:?}");
    assert_eq!(by_title(&probes, "KEPT").fired, 1);
}

/// `pkill -HUP -x -f TITLE` in the jail; true if a process was signalled.
fn pkill_exact(jail: &Jail, title: &str) -> bool {
    jail.exec_as(0, &["pkill", "-HUP", "-x", "-f", title])
        .status
        .success()
}

/// The host pid of the armed probe titled `title`, as `-l` says; 0 while it is not armed.
fn armed_pid(daemon: &Daemon, title: &str) -> u32 {
    list(daemon)
        .iter()
        .find(|p| p.title == title && p.state == jaildaemon::proto::ProbeState::Armed)
        .and_then(|p| p.pid)
        .map_or(0, |p| p as u32)
}

/// The probe's command line: its argv words.
fn cmdline(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

#[test]
fn a_status_probe_shows_its_last_result_and_which_pkill_forms_still_match() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_status_probe_shows_its_last_result_and_which_pkill_forms_still_match")
    else {
        return;
    };
    let spec = jail.spec();
    // Fails the first time, succeeds from the second on.
    let command = format!("echo X >> {0}; [ $(wc -l < {0}) -ge 2 ]", fired.display());
    daemon.arm(&["-c", &command, "-j", &spec, "-r", "-t", "SHOWN", "--status"]);
    // Before any command: the title alone, and the exact form matches.
    let pid = armed(&daemon, &jail, "SHOWN");
    assert_eq!(cmdline(pid), ["SHOWN"]);
    assert!(pkill_exact(&jail, "SHOWN"));
    assert!(wait_for(LONG, || words(&fired).len() == 1));
    // Back after the command: the title, then its result, how long it took, and when.
    let mut pid = 0;
    assert!(wait_for(LONG, || {
        pid = armed_pid(&daemon, "SHOWN");
        pid != 0 && cmdline(pid).len() == 4
    }));
    let words_now = cmdline(pid);
    assert_eq!(words_now[0], "SHOWN");
    assert_eq!(words_now[1], "last=failed(1)", "{words_now:?}");
    assert!(words_now[2].ends_with('s'), "{words_now:?}");
    assert_eq!(words_now[3].len(), 8, "{words_now:?}");
    // Jail-side `ps` sees it too.
    let ps = jail.exec_as(0, &["ps", "-o", "args=", "-p", &inner_pid(pid).to_string()]);
    let ps = String::from_utf8_lossy(&ps.stdout).trim().to_string();
    assert!(ps.starts_with("SHOWN last=failed(1) "), "{ps}");
    // `pkill -x -f TITLE` matches the whole command line, so no longer: nothing fires.
    assert!(!pkill_exact(&jail, "SHOWN"));
    sleep(SETTLE);
    assert_eq!(words(&fired).len(), 1);
    assert_eq!(armed_pid(&daemon, "SHOWN"), pid);
    // The anchored pattern matches the title as the first word; so does pgrep -x on the
    // process name.
    let pgrep = jail.exec_as(0, &["pgrep", "-x", "SHOWN"]);
    assert_eq!(
        String::from_utf8_lossy(&pgrep.stdout).trim(),
        inner_pid(pid).to_string()
    );
    assert!(jail.pkill(0, "HUP", "^SHOWN( |$)"));
    assert!(wait_for(LONG, || words(&fired).len() == 2));
    assert!(wait_for(LONG, || {
        let pid = armed_pid(&daemon, "SHOWN");
        pid != 0 && cmdline(pid).get(1).map(String::as_str) == Some("last=ok(0)")
    }));
}

#[test]
fn a_stopped_probe_is_logged_fires_nothing_and_fires_once_continued() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_stopped_probe_is_logged_fires_nothing_and_fires_once_continued")
    else {
        return;
    };
    let spec = jail.spec();
    daemon.arm(&["-c", &append("HUP", &fired), "-j", &spec, "-t", "FROZEN"]);
    let pid = armed(&daemon, &jail, "FROZEN");
    assert!(jail.pkill(0, "STOP", "FROZEN"));
    assert!(
        wait_for(LONG, || daemon.log_text().contains(
            "stopped by signal 19: it fires nothing until continued"
        )),
        "{}",
        daemon.log_text()
    );
    let p = by_title(&list(&daemon), "FROZEN").clone();
    assert!(
        p.last
            .as_deref()
            .unwrap_or("")
            .contains("stopped by signal 19"),
        "{p:?}"
    );
    // Stopped, it takes no SIGHUP: nothing fires.
    assert!(jail.pkill(0, "HUP", "FROZEN"));
    sleep(SETTLE);
    assert_eq!(words(&fired), Vec::<String>::new());
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // Continued, it takes the pending SIGHUP and fires.
    assert!(jail.pkill(0, "CONT", "FROZEN"));
    assert!(
        wait_for(LONG, || words(&fired) == ["HUP"]),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn status_says_signal_only_for_a_command_a_signal_ended() {
    // Issue 22: `exit 137` is an exit code (a shell's way to say "my child died of SIGKILL"),
    // not a SIGKILL of the command; the log and `--status` say the same, and "signal" only for
    // a real one (the twin: a shell that kills itself with SIGKILL).
    let Some(World {
        dir: _dir,
        fired: _,
        daemon,
        jail,
    }) = World::new("status_says_signal_only_for_a_command_a_signal_ended")
    else {
        return;
    };
    let spec = jail.spec();
    for (title, command) in [("CODE137", "exit 137"), ("KILLED9", "kill -9 $$")] {
        daemon.arm(&["-c", command, "-j", &spec, "-r", "-t", title, "--status"]);
        armed(&daemon, &jail, title);
        assert!(pkill_exact(&jail, title));
    }
    let result = |title: &str| {
        let mut word = String::new();
        let shown = wait_for(LONG, || {
            let pid = armed_pid(&daemon, title);
            word = cmdline(pid).get(1).cloned().unwrap_or_default();
            pid != 0 && !word.is_empty()
        });
        assert!(shown, "{title}: {}", daemon.log_text());
        word
    };
    assert_eq!(result("CODE137"), "last=failed(137)");
    assert_eq!(result("KILLED9"), "last=signal(9)");
    let log = daemon.log_text();
    let ended = |title: &str| {
        log.lines()
            .find(|l| l.contains(&format!("'{title}')")) && l.contains("ended with"))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        ended("CODE137").contains("ended with exit code 137"),
        "{log}"
    );
    assert!(!ended("CODE137").contains("signal"), "{log}");
    assert!(ended("KILLED9").contains("ended with signal 9"), "{log}");
}
