//! Floods (issue 20, points 3 and 4): users of the socket holding every connection they may,
//! and jails repeating at will what the daemon logs. Root is still served, the log grows by a
//! bounded number of lines and summaries whose counts are exact, the metrics stay exact, and
//! another jail's trigger stays prompt.

mod util;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use jaildaemon::daemon::logbudget::{CLIENT_LINES, PROBE_LINES, PROBE_OUTPUT_LINES, WINDOW};
use util::*;

const LONG: Duration = Duration::from_secs(20);
/// How long each flood runs.
const FLOOD: Duration = Duration::from_secs(5);
/// Connections one user other than root may hold, and slots kept for root (src/daemon).
const PER_USER: usize = 16;
const CLIENTS: usize = 256;
const ROOT_SLOTS: usize = 32;

/// A host group and users in it, made for one test with `groupadd` and `useradd`, removed on
/// drop.
struct HostGroup {
    name: String,
    users: Vec<(String, u32)>,
    gid: u32,
}

impl HostGroup {
    fn new(users: usize) -> HostGroup {
        let name = format!("jdfl{}", std::process::id());
        let run = |argv: &[&str]| {
            let out = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
            assert!(out.status.success(), "{argv:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        run(&["groupadd", &name]);
        let mut group = HostGroup {
            gid: 0,
            users: Vec::new(),
            name: name.clone(),
        };
        group.gid = run(&["getent", "group", &name])
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        for n in 0..users {
            let user = format!("{name}u{n}");
            run(&[
                "useradd",
                "--no-create-home",
                "--gid",
                &name,
                "--shell",
                "/usr/sbin/nologin",
                &user,
            ]);
            let uid = run(&["id", "-u", &user]).parse().unwrap();
            group.users.push((user, uid));
        }
        group
    }

    /// A command run as the `n`th user, with the group as its only group.
    fn as_user(&self, n: usize, program: &str) -> Command {
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid",
            &self.users[n].1.to_string(),
            "--regid",
            &self.gid.to_string(),
            "--clear-groups",
            program,
        ]);
        command
    }
}

impl Drop for HostGroup {
    fn drop(&mut self) {
        for (user, _) in &self.users {
            let _ = Command::new("userdel").arg(user).output();
        }
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// Holds `want` half-open connections to `socket` until its stdin closes, opening a new one
/// for each the daemon drops at its deadline; a connection answered at once (refused) is tried
/// again 50 ms later. Prints what happened, as JSON: drops, and the refusals' texts.
const HOLDER: &str = r#"
import json, select, socket, sys, time
path, want = sys.argv[1], int(sys.argv[2])
held, dropped, refusals = set(), 0, []
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    try:
        s.sendall(b"JD")
    except OSError:
        pass  # refused and closed at once: its answer is still there to read
    return s
while True:
    while len(held) < want:
        held.add(connect())
    ready, _, _ = select.select([sys.stdin] + list(held), [], [], 0.05)
    if sys.stdin in ready:
        break
    for s in ready:
        data = s.recv(65536)
        held.discard(s)
        s.close()
        if data:
            refusals.append(data[8:].decode("utf-8", "replace"))
            time.sleep(0.05)
        else:
            dropped += 1
print(json.dumps({"dropped": dropped, "held": len(held), "refusals": refusals}))
"#;

/// What a holder reported.
struct Held {
    dropped: usize,
    refusals: Vec<String>,
}

fn hold(group: &HostGroup, user: usize, socket: &Path, want: usize) -> Child {
    group
        .as_user(user, "/usr/bin/python3")
        .args(["-c", HOLDER])
        .arg(socket)
        .arg(want.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ends a holder and says what it saw.
fn held(mut child: Child) -> Held {
    drop(child.stdin.take());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "holder failed: {out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    Held {
        dropped: report["dropped"].as_u64().unwrap() as usize,
        refusals: report["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect(),
    }
}

/// The counts in the summaries of the log that contain `about` (`… and N more …`).
fn summarised(log: &str, about: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(about) && l.contains("… and "))
        .map(|l| {
            let rest = &l[l.find("… and ").unwrap() + "… and ".len()..];
            rest.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn root_is_served_while_socket_users_hold_every_connection_they_may() {
    if !root_or_skip("root_is_served_while_socket_users_hold_every_connection_they_may") {
        return;
    }
    // Enough members to hold every slot not kept for root, and one more who finds none.
    let members = (CLIENTS - ROOT_SLOTS) / PER_USER;
    let group = HostGroup::new(members + 1);
    let dir = TempDir::new();
    let daemon = Daemon::start_with_args(&dir, &["-G", &group.name]);
    let lines_before = daemon.log_text().lines().count();
    // Each member asks for more connections than it may hold, and keeps renewing them.
    let holders: Vec<Child> = (0..members)
        .map(|n| hold(&group, n, &daemon.socket, PER_USER + 4))
        .collect();
    // The member without a slot is told the daemon is busy, and the first member, at its
    // limit, is told so (exit 75 for both).
    let util_as = |n: usize| {
        let out = group
            .as_user(n, BIN)
            .args(["-l", "-f"])
            .arg(&daemon.socket)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Once the holders have taken their slots (they start at their own pace), that is so.
    let mut answer = (None, String::new());
    assert!(
        wait_for(LONG, || {
            answer = util_as(members);
            answer.0 == Some(75)
        }),
        "{answer:?}"
    );
    assert!(answer.1.contains("busy"), "{answer:?}");
    let (code, stderr) = util_as(0);
    assert_eq!(code, Some(75), "{stderr}");
    assert!(
        stderr.contains(&format!("already has {PER_USER} connections open")),
        "{stderr}"
    );
    // Root is served every time.
    let mut served = 0;
    for _ in 0..30 {
        let out = daemon.util(&["-l"]);
        served += usize::from(out.status.success());
        sleep(Duration::from_millis(100));
    }
    assert_eq!(served, 30, "{}", daemon.log_text());
    // Long enough for every connection to pass its deadline twice.
    sleep(FLOOD.saturating_sub(Duration::from_secs(3)));
    let reports: Vec<Held> = holders.into_iter().map(held).collect();
    let dropped: usize = reports.iter().map(|r| r.dropped).sum();
    // The renewals did happen: each member's connections passed their deadline at least once.
    assert!(dropped >= members * PER_USER, "only {dropped} drops");
    for report in &reports {
        assert!(
            !report.refusals.is_empty(),
            "a member held more than it may"
        );
        assert!(
            report.refusals.iter().all(|r| r
                .contains(&format!("already has {PER_USER} connections open"))
                || r.contains("busy")),
            "{:?}",
            report.refusals
        );
    }
    // The log says it in a few lines and counts: the drops' summary comes at the end of its
    // window, and its count and the lines add up to the drops at least.
    assert!(
        wait_for(WINDOW + LONG, || !summarised(
            &daemon.log_text(),
            "more clients dropped"
        )
        .is_empty()),
        "{}",
        daemon.log_text()
    );
    sleep(WINDOW);
    let log = daemon.log_text();
    let new: Vec<&str> = log.lines().skip(lines_before).collect();
    let dropped_lines = new
        .iter()
        .filter(|l| l.contains("within 2s; dropped"))
        .count();
    let counted: u64 = summarised(&log, "more clients dropped").iter().sum();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "{dropped} drops seen by the members: {dropped_lines} lines, {counted} in summaries; {} new lines in all\n",
            new.len()
        )
        .as_bytes(),
    );
    assert!(
        dropped_lines as u64 <= 2 * CLIENT_LINES,
        "{dropped_lines} lines of drops"
    );
    assert!(
        dropped_lines as u64 + counted >= dropped as u64,
        "{dropped_lines} lines and {counted} counted, {dropped} drops seen"
    );
    assert!(new.len() < 40, "{} lines:\n{}", new.len(), new.join("\n"));

    // Twin: a member holding fewer connections than its limit is served as before, and so is
    // root; nothing is refused or summarised.
    let before = daemon.log_text().lines().count();
    let few = hold(&group, 0, &daemon.socket, PER_USER / 2);
    sleep(Duration::from_millis(300));
    let (code, stderr) = util_as(0);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(daemon.util(&["-l"]).status.success());
    let report = held(few);
    assert_eq!(report.refusals, Vec::<String>::new());
    let log = daemon.log_text();
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        !new.iter()
            .any(|l| l.contains("refused") || l.contains("turned")),
        "{new:?}"
    );
}

/// The CPU time (user and system) process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold blanks) and its ')': utime and stime are
    // the 12th and 13th, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The number of the metric `name` for the probe titled `title`, from the metrics file.
fn metric(path: &Path, name: &str, title: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("title=\"{title}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Runs `body` in a loop with `sh` inside every namespace of `jail`, as its root, in the
/// background, for `FLOOD` by the jail's clock (checked every 100 rounds with the shell's own
/// `read`, so the loop forks nothing of its own); it prints its rounds.
fn loop_in_jail(jail: &Jail, body: &str) -> Child {
    let script = format!(
        "i=0; read up rest < /proc/uptime; end=$(( ${{up%.*}} + {secs} )); \
         while :; do {body}; i=$((i+1)); \
         if [ $((i % 100)) -eq 0 ]; then read up rest < /proc/uptime; [ ${{up%.*}} -ge $end ] && break; fi; \
         done; echo $i",
        secs = FLOOD.as_secs()
    );
    Command::new("nsenter")
        .args(["-t", &jail.pid.to_string(), "-a", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The rounds a loop of `loop_in_jail` made, once it is over.
fn rounds(mut child: Child) -> u64 {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{out}");
    out.trim().parse().unwrap()
}

/// The sum of the counts of the summaries about `tag` that count `what` (`more stops`).
fn counted(lines: &[&str], tag: &str, what: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l.contains(tag) && l.contains(what))
        .map(|l| summarised(l, tag)[0])
        .sum()
}

/// How long another jail's trigger takes, from the moment its root sends SIGHUP to the moment
/// the `-r` probe's command (`date +%s.%N >> times`) runs, over `fires` fires.
fn trigger_latencies(jail: &Jail, title: &str, times: &Path, fires: usize) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let before = lines(times);
    for n in 0..fires {
        let mut probe = Vec::new();
        assert!(
            wait_for(LONG, || {
                probe = jail.probes(title);
                probe.len() == 1
            }),
            "{title} not armed for fire {n}"
        );
        let inner = inner_pid(probe[0]).to_string();
        let out = jail.exec_as(0, &["sh", "-c", &format!("date +%s.%N; kill -HUP {inner}")]);
        let sent: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(wait_for(LONG, || lines(times) == before + n + 1));
        let ran: f64 = fs::read_to_string(times)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        latencies.push(Duration::from_secs_f64((ran - sent).max(0.0)));
    }
    latencies.sort();
    latencies
}

#[test]
fn a_jail_stopping_its_probe_in_a_loop_writes_a_bounded_log_and_costs_other_jails_nothing() {
    let Some(World {
        dir,
        fired: times,
        daemon,
        jail,
    }) = World::new(
        "a_jail_stopping_its_probe_in_a_loop_writes_a_bounded_log_and_costs_other_jails_nothing",
    )
    else {
        return;
    };
    drop(daemon);
    let metrics = dir.path("jd.prom");
    let daemon = Daemon::start_with_args(&dir, &["-M", &metrics.display().to_string()]);
    let other = Jail::new();
    daemon.arm(&["-c", "true", "-j", &jail.spec(), "-t", "FLOODED"]);
    daemon.arm(&["-c", "true", "-j", &jail.spec(), "-t", "ONCE"]);
    let command = format!("date +%s.%N >> {}", times.display());
    daemon.arm(&["-c", &command, "-j", &other.spec(), "-r", "-t", "PROMPT"]);
    let idle = trigger_latencies(&other, "PROMPT", &times, 3);

    // Twin first: one stop and one continuation are logged as ever, line for line.
    let once = format!("(jail {}, 'ONCE')", jail.spec());
    assert!(jail.pkill(0, "STOP", "ONCE"));
    assert!(wait_for(LONG, || daemon.log_text().contains(&format!(
        "{once} stopped by signal 19: it fires nothing until continued"
    ))));
    assert!(jail.pkill(0, "CONT", "ONCE"));
    assert!(wait_for(LONG, || daemon
        .log_text()
        .contains(&format!("{once} continued after a stop"))));

    // The flood: jail root stops and continues FLOODED as fast as its shell can.
    let lines_before = daemon.log_text().lines().count();
    let flooded = inner_pid(jail.probes("FLOODED")[0]);
    let cpu_before = cpu_time(daemon.child.id());
    let flood = loop_in_jail(
        &jail,
        &format!("kill -STOP {flooded}; kill -CONT {flooded}"),
    );
    sleep(Duration::from_secs(1));
    // Meanwhile the other jail's trigger is as prompt as ever.
    let busy = trigger_latencies(&other, "PROMPT", &times, 5);
    let loops = rounds(flood);
    let cpu = cpu_time(daemon.child.id()) - cpu_before;
    let median = busy[busy.len() / 2];
    // Said, not asserted: how much of a core the daemon spent on the flood.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "trigger latency idle {idle:?}, during the flood {busy:?}; {loops} loops; \
             the daemon spent {cpu:?} of CPU in {FLOOD:?}\n"
        )
        .as_bytes(),
    );
    assert!(
        median < Duration::from_millis(100),
        "another jail's trigger took {busy:?} during the flood ({idle:?} before)"
    );

    // The summaries come once their window is over, though the flood has stopped; then the
    // lines and the summaries' counts add up to the metric, which counts every stop.
    let tag = format!("(jail {}, 'FLOODED')", jail.spec());
    assert!(
        wait_for(WINDOW + LONG, || !summarised(&daemon.log_text(), &tag)
            .is_empty()),
        "{}",
        daemon.log_text()
    );
    sleep(WINDOW + Duration::from_secs(1));
    let log = daemon.log_text();
    let new: Vec<&str> = log.lines().skip(lines_before).collect();
    let stops_logged = new
        .iter()
        .filter(|l| l.contains(&format!("{tag} stopped")))
        .count() as u64;
    let stops_counted = counted(&new, &tag, "more stops");
    let stops = metric(&metrics, "jaildaemon_probe_stops_total", "FLOODED").unwrap();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("{stops} stops: {stops_logged} logged, {stops_counted} in summaries\n").as_bytes(),
    );
    assert_eq!(stops_logged + stops_counted, stops, "{}", new.join("\n"));
    assert!(stops <= loops, "{stops} stops counted of {loops} made");
    assert!(stops > 20 * PROBE_LINES, "only {stops} stops: no flood");
    // A window or two of each of the two kinds, with a summary each: a bounded log.
    let windows = (FLOOD.as_secs() / WINDOW.as_secs() + 2) as usize;
    let about = new.iter().filter(|l| l.contains(&tag)).count();
    assert!(
        about <= windows * 2 * (PROBE_LINES as usize + 1),
        "{about} lines:\n{}",
        new.join("\n")
    );
    assert!(new.len() < 60, "{} lines:\n{}", new.len(), new.join("\n"));
    // The probe still fires once left alone.
    let fired = dir.path("flooded_fired");
    daemon.arm(&[
        "-c",
        &format!("echo fired > {}", fired.display()),
        "-j",
        &jail.spec(),
        "-t",
        "AFTER_FLOOD",
    ]);
    assert!(jail.pkill(0, "HUP", "AFTER_FLOOD"));
    assert!(wait_for(LONG, || lines(&fired) == 1));
}

#[test]
fn a_respawning_probe_fired_in_a_loop_writes_a_bounded_log_with_exact_counts() {
    let Some(World {
        dir,
        fired: _fired,
        daemon,
        jail,
    }) = World::new("a_respawning_probe_fired_in_a_loop_writes_a_bounded_log_with_exact_counts")
    else {
        return;
    };
    drop(daemon);
    let metrics = dir.path("jd.prom");
    let daemon = Daemon::start_with_args(&dir, &["-M", &metrics.display().to_string()]);
    let spec = jail.spec();
    daemon.arm(&[
        "-c",
        "echo single-output",
        "-j",
        &spec,
        "-R",
        "-t",
        "SINGLE",
    ]);
    daemon.arm(&[
        "-c",
        "echo looped-output",
        "-j",
        &spec,
        "-R",
        "-t",
        "LOOPED",
    ]);

    // Twin first: a single fire logs every line, as ever.
    let single = format!("(jail {spec}, 'SINGLE')");
    assert!(jail.pkill(0, "HUP", "SINGLE"));
    let expected = [
        format!("{single} triggered"),
        format!("{single} command started, host pid"),
        format!("{single} command: single-output"),
        format!("{single} command ended with exit code 0 after"),
        format!("{single} re-armed, host pid"),
    ];
    assert!(
        wait_for(LONG, || {
            let log = daemon.log_text();
            expected.iter().all(|line| log.contains(line))
        }),
        "{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    for line in &expected {
        assert_eq!(log.matches(line).count(), 1, "{line}:\n{log}");
    }

    // The loop: jail root fires LOOPED as often as the daemon places it back.
    let lines_before = daemon.log_text().lines().count();
    let flood = loop_in_jail(&jail, "pkill -HUP -x -f LOOPED");
    rounds(flood);
    let tag = format!("(jail {spec}, 'LOOPED')");
    assert!(
        wait_for(WINDOW + LONG, || !summarised(&daemon.log_text(), &tag)
            .is_empty()),
        "{}",
        daemon.log_text()
    );
    sleep(WINDOW + Duration::from_secs(1));
    let log = daemon.log_text();
    let new: Vec<&str> = log.lines().skip(lines_before).collect();
    let about: Vec<&&str> = new.iter().filter(|l| l.contains(&tag)).collect();
    // Every fire is counted, in lines or in summaries.
    let triggers_logged = about
        .iter()
        .filter(|l| l.ends_with(&format!("{tag} triggered")))
        .count() as u64;
    let triggers_counted = counted(&new, &tag, "more triggers");
    let fires = metric(&metrics, "jaildaemon_probe_fires_total", "LOOPED").unwrap();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "{fires} fires: {} lines, {triggers_logged} triggers logged, {triggers_counted} in summaries\n",
            about.len()
        )
        .as_bytes(),
    );
    assert_eq!(
        triggers_logged + triggers_counted,
        fires,
        "{}",
        about
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(fires > 4 * PROBE_LINES, "only {fires} fires: no flood");
    // Each kind of line of a fire within its budget per window, output within its own, and a
    // summary per kind and window.
    let windows = (FLOOD.as_secs() / WINDOW.as_secs() + 2) as usize;
    let bound = windows * (5 * (PROBE_LINES as usize + 1) + PROBE_OUTPUT_LINES as usize + 1);
    assert!(
        about.len() <= bound,
        "{} lines (at most {bound}):\n{}",
        about.len(),
        new.join("\n")
    );
    assert!(
        (about.len() as u64) < 5 * fires,
        "{} lines for {fires} fires: nothing was left out",
        about.len()
    );
}

/// A stop whose SIGCHLD merged into one that said a child ended (signals of one kind do not
/// queue) is asked for within a second of the daemon's last ask, not at once (asking walks
/// every child, and ends come at every trigger): it is still logged and counted; and one the
/// jail continues before that ask is logged and counted at its continuation. The merge is forced: the
/// daemon is stopped while the jail kills one probe (its SIGCHLD pending), then stops another
/// (its SIGCHLD merged). Twin: with the daemon running, a stop is logged at once.
#[test]
fn a_stop_whose_sigchld_merged_into_an_end_is_still_logged_and_counted() {
    if !root_or_skip("a_stop_whose_sigchld_merged_into_an_end_is_still_logged_and_counted") {
        return;
    }
    let dir = TempDir::new();
    let metrics = dir.path("jd.prom");
    let daemon = Daemon::start_with_args(&dir, &["-M", &metrics.display().to_string()]);
    let daemon_pid = daemon.child.id();
    let jail = Jail::new();
    // Dropped before the jail: a stopped daemon could not reap the jail's probes, and the
    // jail's end would wait for them.
    let _continued = Continued(daemon_pid);
    let spec = jail.spec();
    // No title is a part of another: `pkill -f` matches parts.
    let titles = ["PRIMER", "ENDS_ONE", "FROZEN", "ENDS_TWO", "THAWED"];
    for title in titles {
        daemon.arm(&["-c", "true", "-j", &spec, "-t", title]);
    }
    let pid = |title: &str| jail.probes(title)[0];
    let pids: Vec<u32> = titles.iter().map(|t| pid(t)).collect();
    let line = |title: &str, what: &str| format!("(jail {spec}, '{title}') {what}");
    let stopped = "stopped by signal 19: it fires nothing until continued";
    let in_state = |p: u32, state: &str| {
        wait_for(Duration::from_secs(5), || {
            children_in_state(daemon_pid, state).contains(&p)
        })
    };

    // Twin: a stop's own SIGCHLD is asked for at once (and this ask is the last, so the
    // merged ones below wait for the second after it).
    assert!(jail.pkill(0, "STOP", "PRIMER"));
    assert!(wait_for(Duration::from_millis(900), || daemon
        .log_text()
        .contains(&line("PRIMER", stopped))));

    // Still stopped when the daemon asks: logged and counted.
    daemon.signal(rustix::process::Signal::STOP);
    assert!(jail.pkill(0, "KILL", "ENDS_ONE"));
    assert!(in_state(pids[1], "Z"), "ENDS_ONE not ended");
    assert!(jail.pkill(0, "STOP", "FROZEN"));
    assert!(in_state(pids[2], "T"), "FROZEN not stopped");
    daemon.signal(rustix::process::Signal::CONT);
    assert!(
        wait_for(Duration::from_secs(3), || daemon
            .log_text()
            .contains(&line("FROZEN", stopped))),
        "{}",
        daemon.log_text()
    );
    let stops = |title: &str| metric(&metrics, "jaildaemon_probe_stops_total", title);
    assert!(
        wait_for(LONG, || stops("FROZEN") == Some(1)),
        "{:?}",
        stops("FROZEN")
    );

    // Continued before the daemon asks: its continuation is logged, and its stop counted.
    daemon.signal(rustix::process::Signal::STOP);
    assert!(jail.pkill(0, "KILL", "ENDS_TWO"));
    assert!(in_state(pids[3], "Z"), "ENDS_TWO not ended");
    assert!(jail.pkill(0, "STOP", "THAWED"));
    assert!(in_state(pids[4], "T"), "THAWED not stopped");
    assert!(jail.pkill(0, "CONT", "THAWED"));
    assert!(in_state(pids[4], "S"), "THAWED not continued");
    daemon.signal(rustix::process::Signal::CONT);
    let unseen = "stopped (by a signal the daemon did not see) and continued";
    assert!(
        wait_for(Duration::from_secs(3), || daemon
            .log_text()
            .contains(&line("THAWED", unseen))),
        "{}",
        daemon.log_text()
    );
    assert!(!daemon.log_text().contains(&line("THAWED", stopped)));
    assert!(
        wait_for(LONG, || stops("THAWED") == Some(1)),
        "{:?}",
        stops("THAWED")
    );
    assert_eq!(stops("PRIMER"), Some(1));
}

/// Continues process `pid` when dropped, whatever the test did to it.
struct Continued(u32);

impl Drop for Continued {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::CONT);
        }
    }
}
