//! Commands under control (issue 15): cooldown, queued runs, timeouts, a host user. The real
//! binary, its real socket, real namespace jails and real signals; every test that expects a
//! command to run has a twin that expects it not to.

mod util;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use jaildaemon::proto::ProbeState;
use util::*;

const SETTLE: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

/// Arms a probe in `jail` running `command`; `rest` adds -t, -R, --cooldown ….
fn arm(daemon: &Daemon, jail: &Jail, command: &str, rest: &[&str]) {
    let spec = jail.spec();
    let mut args = vec!["-c", command, "-j", &spec];
    args.extend(rest);
    daemon.arm(&args);
}

fn append(file: &Path) -> String {
    format!("echo \"$JAILDAEMON_TITLE\" >> {}", file.display())
}

#[test]
fn a_cooling_probe_is_not_in_its_jail_and_comes_back_when_its_cooldown_is_over() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_cooling_probe_is_not_in_its_jail_and_comes_back_when_its_cooldown_is_over")
    else {
        return;
    };
    arm(
        &daemon,
        &jail,
        &append(&fired),
        &["-R", "-t", "COOLED", "--cooldown", "3s"],
    );
    assert!(jail.pkill(0, "HUP", "COOLED"));
    let first = Instant::now();
    assert!(
        wait_for(LONG, || lines(&fired) == 1),
        "{}",
        daemon.log_text()
    );
    // During the cooldown the jail finds no probe: a trigger signals nothing and runs nothing,
    // and -l says when it comes back.
    sleep(SETTLE);
    assert!(
        jail.probes("COOLED").is_empty(),
        "a probe during the cooldown"
    );
    assert!(!jail.pkill(0, "HUP", "COOLED"));
    let p = by_title(&list(&daemon), "COOLED").clone();
    assert_eq!(p.state, ProbeState::Cooling, "{p:?}");
    assert!(p.last.as_deref().unwrap().contains("back in"), "{p:?}");
    let table = String::from_utf8(daemon.util(&["-l"]).stdout).unwrap();
    assert!(table.contains("cooling"), "{table}");
    sleep(SETTLE);
    assert_eq!(
        lines(&fired),
        1,
        "a trigger during the cooldown ran the command"
    );
    // After it, the probe is back (not before the 3 s are over) and fires again.
    assert!(wait_for(LONG, || jail.probes("COOLED").len() == 1));
    let back = first.elapsed();
    assert!(back >= Duration::from_millis(2900), "back after {back:?}");
    assert_eq!(by_title(&list(&daemon), "COOLED").state, ProbeState::Armed);
    assert!(jail.pkill(0, "HUP", "COOLED"));
    assert!(
        wait_for(LONG, || lines(&fired) == 2),
        "{}",
        daemon.log_text()
    );
    assert!(daemon.log_text().contains("cooling down: back in 3.0s"));
}

#[test]
fn a_bad_duration_is_refused_naming_its_field() {
    // On the command line: bad data (65), before any daemon is asked.
    for (value, needle) in [("5x", "'5x' is not a duration"), ("25h", "out of range")] {
        let out = Command::new(BIN)
            .args(["-c", "true", "-j", "1", "-R", "--cooldown", value])
            .args(["-f", "/nonexistent/jd.sock"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(65), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--cooldown") && err.contains(needle), "{err}");
    }
    // In the configuration file: a configuration error (78) with its line.
    let dir = TempDir::new();
    let config = dir.path("jd.conf");
    fs::write(
        &config,
        "[[probe]]\njail = \"1\"\ncommand = \"true\"\nrespawn = \"immediately\"\ncooldown = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["-D", "-F", "-C"])
        .arg(&config)
        .args(["-S"])
        .arg(dir.path("state"))
        .args(["-p"])
        .arg(dir.path("jd.pid"))
        .args(["-f"])
        .arg(dir.path("jd.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5: cooldown: 'soon'"), "{err}");
    // Twin: the same file with a good duration starts (and is stopped at once).
    if rustix::process::geteuid().is_root() {
        fs::write(
            &config,
            "[[probe]]\njail = \"jd-test-no-such-container\"\ncommand = \"true\"\nrespawn = \"immediately\"\ncooldown = \"1m\"\n",
        )
        .unwrap();
        let daemon = Daemon::launch(&dir, &[], &["-C", config.to_str().unwrap()]);
        drop(daemon);
    }
}

/// A command that records its start and end in `record` and, with a lock directory, whether
/// another run of it was under way when it started.
fn recorded_run(record: &Path, secs: u32) -> String {
    let lock = record.with_extension("lock");
    format!(
        "if mkdir {lock} 2>/dev/null; then :; else echo overlap >> {r}; fi; \
         echo start $(date +%s.%N) >> {r}; sleep {secs}; echo end $(date +%s.%N) >> {r}; \
         rmdir {lock}",
        lock = lock.display(),
        r = record.display()
    )
}

/// The runs in `record`: (start, end) in order, and whether one started while another ran.
fn runs(record: &Path) -> (Vec<(f64, f64)>, bool) {
    let text = fs::read_to_string(record).unwrap_or_default();
    let mut runs = Vec::new();
    let mut start = None;
    let mut overlap = false;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("start", t)) => {
                overlap |= start.is_some();
                start = Some(t.parse::<f64>().unwrap());
            }
            Some(("end", t)) => runs.push((start.take().unwrap_or(0.0), t.parse().unwrap())),
            _ => overlap |= line == "overlap",
        }
    }
    (runs, overlap)
}

/// Fires probe `title` once, then `more` times while that first run lasts, each time once
/// the probe is back in the jail; every signal must find a probe.
fn fire_during_one_run(jail: &Jail, title: &str, record: &Path, more: usize) {
    let mut last = jail.probes(title);
    assert_eq!(last.len(), 1);
    assert!(jail.pkill(0, "HUP", title));
    assert!(wait_for(LONG, || fs::read_to_string(record)
        .is_ok_and(|t| t.contains("start"))));
    for n in 0..more {
        assert!(
            wait_for(LONG, || {
                let now = jail.probes(title);
                now.len() == 1 && now != last
            }),
            "probe not back for trigger {n}"
        );
        last = jail.probes(title);
        assert!(jail.pkill(0, "HUP", title), "trigger {n} found no probe");
    }
    assert!(runs(record).0.is_empty(), "the first run ended too soon");
}

#[test]
fn queue_coalesces_triggers_during_a_run_into_one_more_run_never_two_at_once() {
    let Some(World {
        dir,
        fired: _,
        daemon,
        jail,
    }) = World::new("queue_coalesces_triggers_during_a_run_into_one_more_run_never_two_at_once")
    else {
        return;
    };
    let record = dir.path("runs");
    arm(
        &daemon,
        &jail,
        &recorded_run(&record, 5),
        &["--queue", "-t", "QUEUED"],
    );
    fire_during_one_run(&jail, "QUEUED", &record, 5);
    // Exactly two runs: the first, and one for the five triggers, after it.
    assert!(
        wait_for(Duration::from_secs(15), || runs(&record).0.len() == 2),
        "{:?}\n{}",
        runs(&record),
        daemon.log_text()
    );
    sleep(Duration::from_secs(1));
    let (done, overlap) = runs(&record);
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(!overlap, "two runs at once: {done:?}");
    assert!(
        done[0].1 <= done[1].0,
        "the second run started before the first ended: {done:?}"
    );
    assert!(
        daemon
            .log_text()
            .contains("queued run starts (5 trigger(s)")
    );
    let p = by_title(&list(&daemon), "QUEUED").clone();
    assert_eq!((p.fired, p.state), (6, ProbeState::Armed), "{p:?}");
    // And the probe still works: a trigger now runs at once.
    assert!(jail.pkill(0, "HUP", "QUEUED"));
    assert!(wait_for(Duration::from_secs(8), || runs(&record).0.len() == 3));
    assert!(!runs(&record).1);
}

#[test]
fn without_queue_the_same_triggers_run_commands_at_once_side_by_side() {
    // The twin, showing the test above can fail: -R runs a command for each trigger, at once.
    let Some(World {
        dir,
        fired: _,
        daemon,
        jail,
    }) = World::new("without_queue_the_same_triggers_run_commands_at_once_side_by_side")
    else {
        return;
    };
    let record = dir.path("runs");
    arm(
        &daemon,
        &jail,
        &recorded_run(&record, 3),
        &["-R", "-t", "AT_ONCE"],
    );
    fire_during_one_run(&jail, "AT_ONCE", &record, 2);
    assert!(
        wait_for(Duration::from_secs(10), || runs(&record).0.len() == 3),
        "{:?}",
        runs(&record)
    );
    assert!(runs(&record).1, "no overlap seen: {:?}", runs(&record));
}

fn alive(pid: u32) -> bool {
    // A zombie has no cgroup line any more, and counts as gone.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn read_pids(file: &Path) -> Vec<u32> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills what a test's command left running (processes this test started, by pid).
fn kill_left(pids: &[u32]) {
    for &pid in pids {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

#[test]
fn a_command_past_its_timeout_is_stopped_with_all_it_started() {
    let Some(World {
        dir,
        fired: _,
        daemon,
        jail,
    }) = World::new("a_command_past_its_timeout_is_stopped_with_all_it_started")
    else {
        return;
    };
    stopped_with_all_it_started(&dir, &daemon, &jail, "0::");
}

#[test]
fn without_cgroup_v2_a_v1_freezer_stops_the_command_with_all_it_started() {
    if !root_or_skip("without_cgroup_v2_a_v1_freezer_stops_the_command_with_all_it_started") {
        return;
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let freezer = mounts
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o == "freezer"));
    let v2 = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4).map(String::from));
    let (true, Some(v2)) = (freezer, v2) else {
        say_skipped(
            "without_cgroup_v2_a_v1_freezer_stops_the_command_with_all_it_started: \
             needs a hybrid host (cgroup2 and a v1 freezer mounted)",
        );
        return;
    };
    // The daemon runs in a mount namespace of its own where cgroup2 is not mounted.
    let dir = TempDir::new();
    let script = format!("umount {v2} && exec \"$0\" \"$@\"");
    let daemon = Daemon::launch(
        &dir,
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    let jail = Jail::new();
    stopped_with_all_it_started(&dir, &daemon, &jail, "freezer:");
}

/// Arms a probe whose command outlives its 2 s timeout with a child that left its session and
/// one that ignores SIGTERM, fires it, and checks that all are stopped in their turn and their
/// cgroup (of `hierarchy`: `0::` for v2, `freezer:` for v1) goes.
fn stopped_with_all_it_started(dir: &TempDir, daemon: &Daemon, jail: &Jail, hierarchy: &str) {
    let pids = dir.path("pids");
    // The command starts a child that leaves its session and process group, and one that
    // ignores SIGTERM, then sleeps itself.
    let command = format!(
        "setsid sleep 300 & echo $! >> {p}; sh -c 'trap \"\" TERM; while :; do sleep 1; done' & \
         echo $! >> {p}; echo $$ >> {p}; sleep 300",
        p = pids.display()
    );
    arm(
        daemon,
        jail,
        &command,
        &["-r", "-t", "TIMED", "--timeout", "2s"],
    );
    assert!(jail.pkill(0, "HUP", "TIMED"));
    assert!(
        wait_for(LONG, || read_pids(&pids).len() == 3),
        "{}",
        daemon.log_text()
    );
    let started = Instant::now();
    let [escaped, deaf, shell] = read_pids(&pids)[..] else {
        panic!("{:?}", read_pids(&pids))
    };
    let cgroup = fs::read_to_string(format!("/proc/{escaped}/cgroup")).unwrap();
    assert!(
        cgroup
            .lines()
            .any(|l| l.contains(hierarchy) && l.contains("jaildaemon-")),
        "not in the command's cgroup: {cgroup}"
    );
    // At 2 s: SIGTERM to all; the escaped child and the shell go.
    assert!(
        wait_for(LONG, || !alive(escaped) && !alive(shell)),
        "{}",
        daemon.log_text()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // The one that ignores SIGTERM goes with SIGKILL, 5 s later, and the cgroup goes with it.
    assert!(alive(deaf), "SIGKILL came before the grace was over");
    assert!(wait_for(Duration::from_secs(8), || !alive(deaf)));
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    kill_left(&[escaped, deaf, shell]);
    let log = daemon.log_text();
    assert!(
        log.contains("still running after its timeout of 2s: stopping it"),
        "{log}"
    );
    assert!(log.contains("after SIGTERM: SIGKILL"), "{log}");
    assert!(wait_for(LONG, || by_title(&list(daemon), "TIMED")
        .last
        .as_deref()
        .is_some_and(
            |l| l.starts_with("command timed out after 2s and was stopped")
        )));
    let cgroup_dir = cgroup.lines().find_map(|l| {
        let path = l.split_once(hierarchy)?.1;
        let mount = if hierarchy == "0::" {
            "unified"
        } else {
            "freezer"
        };
        Some(format!("/sys/fs/cgroup/{mount}{path}"))
    });
    if let Some(dir) = cgroup_dir {
        assert!(
            wait_for(LONG, || !Path::new(&dir).exists()),
            "{dir} left behind"
        );
    }
    // -r: the probe is back and works.
    assert!(wait_for(LONG, || jail.probes("TIMED").len() == 1));
}

#[test]
fn a_command_that_ends_within_its_timeout_is_untouched_and_so_is_what_it_left() {
    let Some(World {
        dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_command_that_ends_within_its_timeout_is_untouched_and_so_is_what_it_left")
    else {
        return;
    };
    let pids = dir.path("pids");
    let command = format!(
        "setsid sleep 30 & echo $! >> {p}; sleep 1; echo done >> {f}",
        p = pids.display(),
        f = fired.display()
    );
    arm(
        &daemon,
        &jail,
        &command,
        &["-r", "-t", "IN_TIME", "--timeout", "2s"],
    );
    assert!(jail.pkill(0, "HUP", "IN_TIME"));
    assert!(
        wait_for(LONG, || lines(&fired) == 1),
        "{}",
        daemon.log_text()
    );
    // Well past the timeout: what it left still runs, and nothing was stopped.
    sleep(Duration::from_secs(3));
    let left = read_pids(&pids);
    assert_eq!(left.len(), 1);
    assert!(
        alive(left[0]),
        "a command that ended in time had its child killed"
    );
    let cgroup = fs::read_to_string(format!("/proc/{}/cgroup", left[0])).unwrap();
    kill_left(&left);
    // The cgroup it was left in is the test's to remove, once empty.
    if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        let dir = format!("/sys/fs/cgroup/unified{path}");
        assert!(dir.contains("jaildaemon-"), "{dir}");
        assert!(wait_for(LONG, || fs::remove_dir(&dir).is_ok()), "{dir}");
    }
    let log = daemon.log_text();
    assert!(!log.contains("stopping it"), "{log}");
    assert!(
        log.contains("ended in time but left 1 process(es) running"),
        "{log}"
    );
    let p = by_title(&list(&daemon), "IN_TIME").clone();
    assert!(
        p.last
            .as_deref()
            .unwrap()
            .starts_with("command ended with exit code 0"),
        "{p:?}"
    );
}

/// A command that logs who it runs as: uid, gid, groups and its effective and permitted
/// capabilities, on one line tagged `tag`.
fn whoami(tag: &str) -> String {
    format!(
        "echo {tag} uid=$(id -u) gid=$(id -g) groups=[$(id -G)] $(grep -E '^Cap(Eff|Prm)' /proc/self/status | tr -d '\\t' | tr '\\n' ' ')"
    )
}

/// The line `tag` logged by a `whoami` command, once there.
fn logged_identity(daemon: &Daemon, tag: &str) -> String {
    let mut line = String::new();
    assert!(
        wait_for(LONG, || {
            line = daemon
                .log_text()
                .lines()
                .find(|l| l.contains(&format!("command: {tag} ")))
                .unwrap_or_default()
                .to_string();
            !line.is_empty()
        }),
        "{}",
        daemon.log_text()
    );
    line
}

/// A host user that some group of the host's /etc/group lists as a member: (name, that gid).
fn user_with_a_supplementary_group() -> Option<(String, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let groups = fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let member = f.get(3)?.split(',').find(|m| {
            !m.is_empty() && *m != "root" && passwd.lines().any(|p| p.starts_with(&format!("{m}:")))
        })?;
        Some((member.to_string(), f[2].parse().ok()?))
    })
}

#[test]
fn run_as_runs_the_command_as_that_host_user_with_its_groups_and_no_capabilities() {
    let Some(World {
        dir: _dir,
        fired: _,
        daemon,
        jail,
    }) =
        World::new("run_as_runs_the_command_as_that_host_user_with_its_groups_and_no_capabilities")
    else {
        return;
    };
    arm(
        &daemon,
        &jail,
        &whoami("AS_NOBODY"),
        &["-t", "AS_NOBODY", "--run-as", "nobody"],
    );
    assert!(jail.pkill(0, "HUP", "AS_NOBODY"));
    let line = logged_identity(&daemon, "AS_NOBODY");
    assert!(line.contains("uid=65534 gid=65534 "), "{line}");
    assert!(
        line.contains("CapEff:0000000000000000") && line.contains("CapPrm:0000000000000000"),
        "{line}"
    );
    // A group given instead of the user's own.
    arm(
        &daemon,
        &jail,
        &whoami("AS_NOBODY_DAEMON"),
        &["-t", "AS_NOBODY_DAEMON", "--run-as", "nobody:1"],
    );
    assert!(jail.pkill(0, "HUP", "AS_NOBODY_DAEMON"));
    let line = logged_identity(&daemon, "AS_NOBODY_DAEMON");
    assert!(line.contains("uid=65534 gid=1 groups=[1] "), "{line}");
    // The twin: without --run-as the command runs as root, with capabilities.
    arm(&daemon, &jail, &whoami("AS_ROOT"), &["-t", "AS_ROOT"]);
    assert!(jail.pkill(0, "HUP", "AS_ROOT"));
    let line = logged_identity(&daemon, "AS_ROOT");
    assert!(line.contains("uid=0 gid=0 "), "{line}");
    assert!(!line.contains("CapEff:0000000000000000"), "{line}");
    // Supplementary groups come with the user.
    match user_with_a_supplementary_group() {
        Some((user, gid)) => {
            arm(
                &daemon,
                &jail,
                &whoami("AS_MEMBER"),
                &["-t", "AS_MEMBER", "--run-as", &user],
            );
            assert!(jail.pkill(0, "HUP", "AS_MEMBER"));
            let line = logged_identity(&daemon, "AS_MEMBER");
            let groups = line
                .split_once("groups=[")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map_or("", |(groups, _)| groups);
            assert!(
                groups.split(' ').any(|g| g == gid.to_string()),
                "{user} runs without group {gid}: {line}"
            );
        }
        None => say_skipped(
            "run_as supplementary groups: no host user is a member of a group in /etc/group",
        ),
    }
}

#[test]
fn an_unknown_host_user_is_refused_when_the_probe_is_armed() {
    let Some(World {
        dir,
        fired,
        daemon,
        jail,
    }) = World::new("an_unknown_host_user_is_refused_when_the_probe_is_armed")
    else {
        return;
    };
    let spec = jail.spec();
    for run_as in ["jd-no-such-user", "nobody:jd-no-such-group"] {
        let out = daemon.util(&[
            "-c",
            &append(&fired),
            "-j",
            &spec,
            "-t",
            "UNKNOWN_USER",
            "--run-as",
            run_as,
        ]);
        assert_eq!(out.status.code(), Some(67), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("run_as: unknown host"), "{err}");
    }
    assert!(list(&daemon).is_empty(), "a refused probe was kept");
    assert!(jail.probes("UNKNOWN_USER").is_empty());
    // In the configuration file: refused as a whole at start (78), naming the probe.
    let config = dir.path("jd.conf");
    let start_with = |text: &str| {
        fs::write(&config, text).unwrap();
        Command::new(BIN)
            .args(["-D", "-F", "-C"])
            .arg(&config)
            .arg("-S")
            .arg(dir.path("state2"))
            .arg("-p")
            .arg(dir.path("jd2.pid"))
            .arg("-f")
            .arg(dir.path("jd2.sock"))
            .output()
            .unwrap()
    };
    let out = start_with(
        "[[probe]]\njail = \"jd-test-no-such-container\"\ncommand = \"true\"\ntitle = \"T\"\nrun_as = \"jd-no-such-user\"\n",
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("probe 'T' of jail 'jd-test-no-such-container': run_as: unknown host user 'jd-no-such-user'"),
        "{err}"
    );
    // A verb's own host user (issue 22) is checked as well, and named with its verb.
    let out = start_with(
        "[[probe]]\njail = \"jd-test-no-such-container\"\ncommand = \"true\"\ntitle = \"T\"\n\
         verbs = { USR2 = { command = \"true\", run_as = \"jd-no-such-user\" } }\n",
    );
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("probe 'T' of jail 'jd-test-no-such-container': verb USR2: run_as: unknown host user 'jd-no-such-user'"),
        "{err}"
    );
}

/// A daemon whose configuration file declares `probe` (a `[[probe]]` table's body) in
/// `jail`; `None`, said loudly, when not root.
fn declared(test: &str, probe: &str) -> Option<(TempDir, Daemon, Jail)> {
    if !root_or_skip(test) {
        return None;
    }
    let dir = TempDir::new();
    let jail = Jail::new();
    let config = dir.path("jd.conf");
    fs::write(
        &config,
        format!("[[probe]]\njail = \"{}\"\n{probe}", jail.spec()),
    )
    .unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", config.to_str().unwrap()]);
    Some((dir, daemon, jail))
}

/// Issue 22: a verb declared with its own host user runs as that user, while SIGHUP's command
/// and a verb without one run as the probe's `run_as`.
#[test]
fn a_verbs_own_host_user_runs_its_command_and_only_its_command() {
    let Some((_dir, daemon, jail)) = declared(
        "a_verbs_own_host_user_runs_its_command_and_only_its_command",
        "title = \"OWNUSER\"\nrespawn = \"after_command\"\nrun_as = \"nobody\"\n\
         command = \"echo HUPRUN uid=$(id -u)\"\n\
         verbs = { USR1 = \"echo USR1RUN uid=$(id -u)\", \
         USR2 = { command = \"echo USR2RUN uid=$(id -u)\", run_as = \"root\" } }\n",
    ) else {
        return;
    };
    let armed = || wait_for(LONG, || jail.probes("OWNUSER").len() == 1);
    assert!(armed(), "{}", daemon.log_text());
    // The armed line and -l --json say which verb runs as whom.
    let log = daemon.log_text();
    assert!(
        log.contains("the command runs on the host as nobody; verb USR1 runs 'echo USR1RUN uid=$(id -u)', verb USR2 runs 'echo USR2RUN uid=$(id -u)' (run as root)"),
        "{log}"
    );
    let listed = list(&daemon);
    let p = by_title(&listed, "OWNUSER");
    assert_eq!(p.run_as.as_deref(), Some("nobody"));
    assert_eq!(
        p.verb_run_as,
        [("USR2".to_string(), "root".to_string())].into()
    );
    for (signal, tag, uid) in [
        ("USR2", "USR2RUN", 0),
        ("HUP", "HUPRUN", 65534),
        ("USR1", "USR1RUN", 65534),
    ] {
        assert!(armed(), "{}", daemon.log_text());
        assert!(jail.pkill(0, signal, "OWNUSER"), "{signal}");
        let line = logged_identity(&daemon, tag);
        assert!(
            line.ends_with(&format!("command: {tag} uid={uid}")),
            "{signal}: {line}"
        );
    }
}

/// Issue 22: a verb's own timeout stops that verb's long command, while the probe's command,
/// which has no timeout, runs as long as it takes.
#[test]
fn a_verbs_own_timeout_stops_its_command_and_not_the_probes() {
    let Some((_dir, daemon, jail)) = declared(
        "a_verbs_own_timeout_stops_its_command_and_not_the_probes",
        "title = \"OWNTIME\"\nrespawn = \"after_command\"\n\
         command = \"echo MAIN started; sleep 3; echo MAIN done\"\n\
         verbs = { USR1 = { command = \"echo VERB started; sleep 30; echo VERB done\", timeout = \"1s\" } }\n",
    ) else {
        return;
    };
    let armed = || wait_for(LONG, || jail.probes("OWNTIME").len() == 1);
    assert!(armed(), "{}", daemon.log_text());
    let fired = Instant::now();
    assert!(jail.pkill(0, "USR1", "OWNTIME"));
    assert!(
        wait_for(Duration::from_secs(20), || daemon.log_text().contains(
            "'OWNTIME') command timed out after 1s and was stopped"
        )),
        "{}",
        daemon.log_text()
    );
    // Stopped at its 1 s (with room for a loaded machine), far from its 30 s.
    assert!(
        fired.elapsed() < Duration::from_secs(10),
        "{:?}",
        fired.elapsed()
    );
    assert!(daemon.log_text().contains("command: VERB started"));
    // The probe's own command outlasts the verb's timeout and is not stopped.
    assert!(armed(), "{}", daemon.log_text());
    assert!(jail.pkill(0, "HUP", "OWNTIME"));
    assert!(
        wait_for(Duration::from_secs(20), || daemon
            .log_text()
            .contains("command: MAIN done")),
        "{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    assert_eq!(log.matches("timed out").count(), 1, "{log}");
    assert!(!log.contains("command: VERB done"), "{log}");
    assert!(
        log.contains("'OWNTIME') command ended with exit code 0 after 3"),
        "{log}"
    );
}

/// Parses a metrics file with the Prometheus client library's own text parser (Debian's
/// python3-prometheus-client): every sample as (name, labels, value); `Err` with the parser's
/// complaint for a file it refuses, `None` (said loudly) where it is missing.
/// One sample of a metrics file: its name, its labels, its value.
type Sample = (String, serde_json::Value, f64);

fn parse_metrics(path: &Path) -> Option<Result<Vec<Sample>, String>> {
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n\
        \x20   for s in family.samples:\n\
        \x20       out.append([s.name, s.labels, s.value])\n\
        print(json.dumps(out))\n";
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if err.contains("No module named 'prometheus_client'") {
        say_skipped("metrics parsing: python3-prometheus-client is not installed");
        return None;
    }
    if !out.status.success() {
        return Some(Err(err));
    }
    let samples: Vec<Sample> = serde_json::from_slice(&out.stdout).unwrap();
    Some(Ok(samples))
}

fn sample(samples: &[Sample], name: &str, title: &str) -> Option<f64> {
    samples
        .iter()
        .find(|(n, labels, _)| n == name && labels["title"] == title)
        .map(|(_, _, v)| *v)
}

#[test]
fn the_metrics_file_says_what_probes_and_commands_did_and_parses() {
    if !root_or_skip("the_metrics_file_says_what_probes_and_commands_did_and_parses") {
        return;
    }
    let dir = TempDir::new();
    let metrics = dir.path("jaildaemon.prom");
    let daemon = Daemon::start_with_args(&dir, &["-M", metrics.to_str().unwrap()]);
    let jail = Jail::new();
    arm(&daemon, &jail, "exit 3", &["-r", "-t", "FIRED"]);
    arm(
        &daemon,
        &jail,
        "sleep 30",
        &["-r", "-t", "CUT", "--timeout", "1s"],
    );
    arm(&daemon, &jail, "true", &["-t", "IDLE"]);
    assert!(jail.pkill(0, "HUP", "FIRED"));
    assert!(jail.pkill(0, "HUP", "CUT"));
    let mut samples = Vec::new();
    let done = wait_for(Duration::from_secs(10), || {
        let Some(parsed) = parse_metrics(&metrics) else {
            return true;
        };
        samples = parsed.unwrap_or_default();
        sample(&samples, "jaildaemon_probe_last_exit_status", "CUT").is_some()
            && sample(&samples, "jaildaemon_probe_last_exit_status", "FIRED").is_some()
    });
    assert!(done, "{samples:?}\n{}", daemon.log_text());
    if samples.is_empty() {
        return;
    }
    let get = |name: &str, title: &str| sample(&samples, name, title);
    assert_eq!(get("jaildaemon_probe_fires_total", "FIRED"), Some(1.0));
    assert_eq!(get("jaildaemon_probe_last_exit_status", "FIRED"), Some(3.0));
    assert_eq!(get("jaildaemon_probe_timeouts_total", "FIRED"), Some(0.0));
    // Stopped at its timeout: SIGTERM ended its shell.
    assert_eq!(get("jaildaemon_probe_timeouts_total", "CUT"), Some(1.0));
    assert_eq!(
        get("jaildaemon_probe_last_exit_status", "CUT"),
        Some(128.0 + 15.0)
    );
    let took = get("jaildaemon_probe_last_duration_seconds", "CUT").unwrap();
    assert!((0.9..5.0).contains(&took), "{took}");
    // The twin: a probe that never fired has no last command.
    assert_eq!(get("jaildaemon_probe_fires_total", "IDLE"), Some(0.0));
    assert_eq!(get("jaildaemon_probe_last_exit_status", "IDLE"), None);
    let state = |title: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == "jaildaemon_probe_state" && l["title"] == title)
            .map(|(_, l, _)| l["state"].as_str().unwrap().to_string())
    };
    assert!(wait_for(LONG, || jail.probes("FIRED").len() == 1));
    assert_eq!(state("IDLE").as_deref(), Some("armed"));
    let daemon_wide = |name: &str, state: Option<&str>| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && state.is_none_or(|s| l["state"] == s))
            .map(|(_, _, v)| *v)
    };
    assert_eq!(daemon_wide("jaildaemon_commands_running", None), Some(0.0));
    assert!(daemon_wide("jaildaemon_probes", Some("armed")).unwrap() >= 1.0);
    // Replaced whole: no temporary file is left beside it.
    let left: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The parser is not lenient: a broken copy is refused.
    let broken = dir.path("broken.prom");
    let text = fs::read_to_string(&metrics).unwrap();
    fs::write(&broken, text.replacen("} ", " ", 1)).unwrap();
    assert!(matches!(parse_metrics(&broken), Some(Err(_))));
    // And the file goes with the daemon.
    drop(daemon);
    assert!(
        !metrics.exists(),
        "a stopped daemon's metrics file was left"
    );
}
