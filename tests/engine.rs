//! The daemon's loop never waits on anything outside it: a container manager that hangs, or a
//! jail that stops every process placed in it, delays nothing in another jail. Each test has
//! its twin: the hung or hostile side is itself refused or settled within its deadline.

mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use jaildaemon::proto::{ProbeState, Request, Response};
use util::*;

/// How long the hung side takes: a manager's tool and a placement each have 5 s.
const HUNG: Duration = Duration::from_secs(5);
/// What the other side may take: an idle daemon answers and fires within milliseconds, so
/// this is far from both, and far below `HUNG`.
const PROMPT: Duration = Duration::from_millis(1500);

fn list(daemon: &Daemon) -> (Vec<jaildaemon::proto::ProbeInfo>, Duration) {
    let started = Instant::now();
    match ask(&daemon.socket, &Request::List) {
        Response::Probes { probes } => (probes, started.elapsed()),
        other => panic!("{other:?}"),
    }
}

/// Arms in jail `spec`, triggers it from inside and returns how long arming and firing took.
fn arm_and_fire(daemon: &Daemon, jail: &Jail, title: &str, fired: &std::path::Path) -> Duration {
    let started = Instant::now();
    let command = format!("echo {title} >> {}", fired.display());
    daemon.arm(&["-c", &command, "-j", &jail.spec(), "-t", title]);
    let before = lines(fired);
    assert!(jail.pkill(0, "HUP", title));
    assert!(
        wait_for(HUNG * 2, || lines(fired) > before),
        "{}",
        daemon.log_text()
    );
    started.elapsed()
}

#[test]
fn a_hung_container_manager_delays_no_other_jail() {
    let test = "a_hung_container_manager_delays_no_other_jail";
    if !root_or_skip(test) {
        return;
    }
    if !std::path::Path::new("/usr/bin/lxc-info").exists() {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED {test}: needs /usr/bin/lxc-info (package lxc) to stand in for\n")
                .as_bytes(),
        );
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    // In the daemon's own mount namespace, LXC's tool answers nothing, ever: as a manager whose
    // daemon accepts and never replies.
    let hang = dir.path("hang");
    fs::write(&hang, "#!/bin/sh\nexec sleep 60\n").unwrap();
    fs::set_permissions(&hang, fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "mount --bind {} /usr/bin/lxc-info && exec \"$@\"",
        hang.display()
    );
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ];
    let daemon = Daemon::start_with(&dir, &wrapper);
    let jail = Jail::new();
    // A lookup of a bare name asks every manager, LXC's hung tool among them.
    let mut hung: Child = Command::new(BIN)
        .args(["-f", &daemon.socket.display().to_string()])
        .args(["-c", "true", "-j", "jd-engine-nosuch", "-t", "HUNG"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hung_started = Instant::now();
    assert!(
        wait_for(PROMPT, || list(&daemon)
            .0
            .iter()
            .any(|p| p.title == "HUNG" && p.state == ProbeState::Placing)),
        "the lookup is not in flight: {}",
        daemon.log_text()
    );
    // Meanwhile: another jail's probe is armed and fires, and -l answers, at once.
    let took = arm_and_fire(&daemon, &jail, "BESIDE_HUNG", &fired);
    let (_, listing) = list(&daemon);
    assert!(
        hung.try_wait().unwrap().is_none(),
        "the lookup ended before the other jail was served"
    );
    assert!(
        took < PROMPT && listing < PROMPT,
        "arm and fire took {took:?}, -l {listing:?}, while a lookup hung"
    );
    // Twin: the hung lookup ends at its deadline, refused with the manager that did not
    // answer, and leaves nothing behind.
    let out = hung.wait_with_output().unwrap();
    let waited = hung_started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(68), "{stderr}");
    assert!(
        stderr.contains("lxc: no answer within 5s"),
        "{stderr}\n{}",
        daemon.log_text()
    );
    assert!(waited >= HUNG - Duration::from_millis(500), "{waited:?}");
    assert!(list(&daemon).0.iter().all(|p| p.title != "HUNG"));
    assert!(
        wait_for(PROMPT, || zombie_children(daemon.child.id()).is_empty()),
        "the hung tool was not reaped"
    );
}

#[test]
fn a_jail_that_stops_what_is_placed_in_it_delays_no_other_jail() {
    let Some(World {
        dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_jail_that_stops_what_is_placed_in_it_delays_no_other_jail")
    else {
        return;
    };
    let hostile = Jail::new();
    // Jail root stops every process that appears in its jail but its own, as fast as it can
    // (a FIFO nobody writes paces the loop without a child of its own to stop).
    let pace = dir.path("pace");
    assert!(
        Command::new("mkfifo")
            .arg(&pace)
            .status()
            .unwrap()
            .success()
    );
    let stopper = format!(
        "exec 9<>{}; while :; do for p in /proc/[0-9]*; do n=${{p#/proc/}}; \
         case $n in 1|$$) ;; *) kill -STOP $n 2>/dev/null;; esac; done; \
         read -t 0.002 -u 9; done",
        pace.display()
    );
    let mut stopping = Command::new("nsenter")
        .args(["-t", &hostile.spec(), "-a", "bash", "-c", &stopper])
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(200));
    let mut placing: Vec<Child> = (0..4)
        .map(|n| {
            Command::new(BIN)
                .args(["-f", &daemon.socket.display().to_string()])
                .args([
                    "-c",
                    "true",
                    "-j",
                    &hostile.spec(),
                    "-t",
                    &format!("STOPPED_{n}"),
                ])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    sleep(Duration::from_millis(300));
    // Meanwhile the other jail is served as on an idle daemon.
    let took = arm_and_fire(&daemon, &jail, "BESIDE_STOPPED", &fired);
    let (_, listing) = list(&daemon);
    assert!(
        took < PROMPT && listing < PROMPT,
        "arm and fire took {took:?}, -l {listing:?}, beside a jail stopping its probes"
    );
    // Twin: the hostile jail's requests end, each within the deadline of its placement,
    // whatever the jail did (armed if the exec came first, refused with a timeout if not), and
    // none is left waiting. Its placements go one after the other (one per jail at a time):
    // the first request alone, the three that came while it was in flight together.
    for child in &mut placing {
        assert!(
            wait_for(HUNG * 3, || child.try_wait().unwrap().is_some()),
            "a placement outlived its deadline"
        );
    }
    let waited = started.elapsed();
    let codes: Vec<Option<i32>> = placing
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    assert!(
        codes.iter().all(|c| matches!(c, Some(0) | Some(75))),
        "{codes:?}\n{}",
        daemon.log_text()
    );
    assert!(waited < HUNG * 3, "{waited:?}");
    let _ = stopping.kill();
    let _ = stopping.wait();
    assert!(
        list(&daemon)
            .0
            .iter()
            .all(|p| p.state != ProbeState::Placing)
    );
    // The daemon is still whole: a new probe in the good jail fires.
    arm_and_fire(&daemon, &jail, "AFTER_STOPPED", &fired);
}

/// A cgroup of the v1 freezer hierarchy, made for one test and removed after it.
struct FreezerCgroup(std::path::PathBuf);

impl FreezerCgroup {
    fn new(name: &str) -> Option<FreezerCgroup> {
        let root = std::path::Path::new("/sys/fs/cgroup/freezer");
        if !root.join("cgroup.procs").exists() {
            return None;
        }
        let dir = root.join(name);
        let _ = fs::remove_dir(&dir);
        fs::create_dir(&dir).ok()?;
        Some(FreezerCgroup(dir))
    }

    fn adopt(&self, pid: u32) {
        fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    fn set(&self, state: &str) {
        fs::write(self.0.join("freezer.state"), state).unwrap();
    }

    fn procs(&self) -> Vec<u32> {
        fs::read_to_string(self.0.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }
}

impl Drop for FreezerCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("freezer.state"), "THAWED");
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(&self.0).is_err() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_jail_that_freezes_its_cgroup_neither_stalls_nor_keeps_the_daemon() {
    let test = "a_jail_that_freezes_its_cgroup_neither_stalls_nor_keeps_the_daemon";
    let Some(World {
        dir,
        fired,
        daemon,
        jail,
    }) = World::new(test)
    else {
        return;
    };
    let hostile = Jail::new();
    let name = format!("jd-engine-{}", std::process::id());
    let Some(freezer) = FreezerCgroup::new(&name) else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED {test}: no cgroup v1 freezer at /sys/fs/cgroup/freezer\n").as_bytes(),
        );
        return;
    };
    freezer.adopt(hostile.pid);
    let frozen_fired = dir.path("frozen-fired");
    let command = format!("echo FROZEN >> {}", frozen_fired.display());
    daemon.arm(&["-c", &command, "-j", &hostile.spec(), "-t", "FROZEN"]);
    let probe = hostile.probes("FROZEN");
    assert_eq!(probe.len(), 1);
    assert!(
        freezer.procs().contains(&probe[0]),
        "the probe is not in the jail's freezer cgroup"
    );
    // The jail freezes itself, its probe included, then gets more probes placed in it.
    freezer.set("FROZEN");
    let started = Instant::now();
    let out = daemon.util(&["-c", &command, "-j", &hostile.spec(), "-t", "FROZEN_2"]);
    assert!(started.elapsed() < HUNG * 2, "{:?}", started.elapsed());
    assert!(
        matches!(out.status.code(), Some(0) | Some(75)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Meanwhile the other jail is served as on an idle daemon, and removing the frozen probe
    // (which can only die once thawed) is answered at once.
    let took = arm_and_fire(&daemon, &jail, "BESIDE_FROZEN", &fired);
    assert!(took < PROMPT, "{took:?} beside a frozen jail");
    let started = Instant::now();
    let out = daemon.util(&["-k", "FROZEN", "-j", &hostile.spec()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, listing) = list(&daemon);
    assert!(
        started.elapsed() < PROMPT && listing < PROMPT,
        "-k took {:?}, -l {listing:?}",
        started.elapsed()
    );
    // SIGTERM: the daemon stops within its 2 s grace though its killed probe is still frozen.
    let mut daemon = daemon;
    let started = Instant::now();
    daemon.signal(rustix::process::Signal::TERM);
    assert!(
        wait_for(HUNG, || !daemon.is_running()),
        "the daemon did not stop beside a frozen jail: {}",
        daemon.log_text()
    );
    assert!(started.elapsed() < HUNG, "{:?}", started.elapsed());
    assert!(
        daemon.log_text().contains("left behind"),
        "{}",
        daemon.log_text()
    );
    // Twin: thawed, the killed probe goes without firing.
    freezer.set("THAWED");
    assert!(wait_for(HUNG, || hostile.probes("FROZEN").is_empty()));
    sleep(Duration::from_millis(200));
    assert_eq!(lines(&frozen_fired), 0, "a killed frozen probe fired");
}

/// Issue 13: a jail that renames its cgroup, and leaves a cgroup of the old name for the
/// daemon to find: the daemon reads where the jail's init is each time it places a probe, so
/// the probe joins the jail's cgroup under its new name; the decoy of the old name, which holds
/// no process of the jail, gets nothing.
#[test]
fn a_jail_that_renames_its_cgroup_gets_its_probes_there_and_a_decoy_gets_none() {
    let test = "a_jail_that_renames_its_cgroup_gets_its_probes_there_and_a_decoy_gets_none";
    let Some(World {
        dir: _dir,
        daemon,
        jail,
        ..
    }) = World::new(test)
    else {
        return;
    };
    let name = format!("jd-engine-rename-{}", std::process::id());
    let Some(first) = FreezerCgroup::new(&name) else {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED {test}: no cgroup v1 freezer at /sys/fs/cgroup/freezer\n").as_bytes(),
        );
        return;
    };
    first.adopt(jail.pid);
    daemon.arm(&["-c", "true", "-j", &jail.spec(), "-t", "BEFORE_RENAME"]);
    let before = jail.probes("BEFORE_RENAME");
    assert!(first.procs().contains(&before[0]));
    // The rename, then a decoy under the old name.
    let renamed = FreezerCgroup(first.0.with_file_name(format!("{name}-renamed")));
    fs::rename(&first.0, &renamed.0).unwrap();
    std::mem::forget(first);
    let decoy = FreezerCgroup::new(&name).expect("decoy cgroup");
    daemon.arm(&["-c", "true", "-j", &jail.spec(), "-t", "AFTER_RENAME"]);
    let after = jail.probes("AFTER_RENAME");
    assert_eq!(after.len(), 1);
    assert!(
        renamed.procs().contains(&after[0]),
        "the probe is not in the jail's renamed cgroup: {:?}",
        renamed.procs()
    );
    assert!(
        decoy.procs().is_empty(),
        "the decoy got {:?}",
        decoy.procs()
    );
    // Cleanup: the jail's processes go before its cgroups can.
    drop(jail);
    drop(daemon);
}
