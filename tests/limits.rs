//! The daemon at its documented limits (README, "Limits"): clients served at once, the
//! client deadline, probes armed at once, and the descriptors all of these cost. Each test
//! checks both sides of its limit: refused beyond it, served again once below it.

mod util;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use jaildaemon::error::Kind;
use jaildaemon::proto::{Request, Response};
use util::*;

/// Connections the daemon serves at once (`MAX_CLIENTS` in src/daemon).
const CLIENTS: usize = 256;
/// Time a client has to send its whole request (`CLIENT_DEADLINE` in src/daemon).
const DEADLINE: Duration = Duration::from_secs(2);
const LONG: Duration = Duration::from_secs(10);

/// A client that has sent the first bytes of a header, and nothing more.
fn half_open(socket: &std::path::Path) -> UnixStream {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(b"JD").unwrap();
    stream
}

fn refusal(answer: Response) -> jaildaemon::error::Error {
    match answer {
        Response::Refused(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn beyond_256_clients_at_once_the_next_is_told_busy_until_one_leaves() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("beyond_256_clients_at_once_the_next_is_told_busy_until_one_leaves")
    else {
        return;
    };
    let held: Vec<UnixStream> = (0..CLIENTS).map(|_| half_open(&daemon.socket)).collect();
    // The daemon accepts in order: once the last of them is accepted, every slot is taken.
    // A ping answered "busy" shows it; before that, a ping may be answered normally.
    let mut busy = None;
    assert!(
        wait_for(LONG, || {
            busy = Some(ask(&daemon.socket, &Request::Ping));
            matches!(busy, Some(Response::Refused(_)))
        }),
        "never busy with {CLIENTS} clients connected: {busy:?}"
    );
    let busy = refusal(busy.unwrap());
    assert_eq!(busy.kind, Kind::Timeout, "{busy:?}");
    assert!(busy.message.contains("busy"), "{busy:?}");
    // The utility says so with exit code 75, and arms nothing.
    let out = daemon.util(&["-c", "true", "-j", &jail.spec(), "-t", "WHILE_BUSY"]);
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("busy"));
    assert!(jail.probes("WHILE_BUSY").is_empty());
    // Twin: once those clients leave, their slots are free and the next client is served.
    drop(held);
    assert!(
        wait_for(LONG, || matches!(
            ask(&daemon.socket, &Request::Ping),
            Response::Pong { .. }
        )),
        "slots not freed"
    );
    daemon.arm(&[
        "-c",
        &format!("echo fired >> {}", fired.display()),
        "-j",
        &jail.spec(),
        "-t",
        "AFTER_BUSY",
    ]);
    assert!(jail.pkill(0, "HUP", "AFTER_BUSY"));
    assert!(wait_for(LONG, || lines(&fired) == 1));
}

#[test]
fn a_client_is_dropped_at_its_deadline_but_a_slow_one_within_it_is_served() {
    let Some(World {
        dir: _dir, daemon, ..
    }) = World::new("a_client_is_dropped_at_its_deadline_but_a_slow_one_within_it_is_served")
    else {
        return;
    };
    // A client that stops half-way gets no answer, and not before its deadline.
    let connected = Instant::now();
    let mut stalled = half_open(&daemon.socket);
    stalled.set_read_timeout(Some(LONG)).unwrap();
    let mut answer = Vec::new();
    stalled.read_to_end(&mut answer).unwrap();
    let dropped_after = connected.elapsed();
    assert!(
        answer.is_empty(),
        "a stalled client was answered: {answer:?}"
    );
    assert!(
        dropped_after >= DEADLINE,
        "dropped after {dropped_after:?}, before the {DEADLINE:?} deadline"
    );
    assert!(
        dropped_after < LONG,
        "not dropped within {LONG:?} ({dropped_after:?})"
    );
    // Twin: a client that sends its request a byte at a time, over half the deadline, is
    // served: the deadline is for the whole request, not for each read.
    let ping = jaildaemon::proto::encode(&Request::Ping);
    let pause = DEADLINE / 2 / ping.len() as u32;
    let mut slow = UnixStream::connect(&daemon.socket).unwrap();
    for byte in &ping {
        slow.write_all(&[*byte]).unwrap();
        sleep(pause);
    }
    let mut answer = Vec::new();
    slow.read_to_end(&mut answer).unwrap();
    assert!(
        matches!(
            jaildaemon::proto::decode::<Response>(&answer),
            Ok(Some(Response::Pong { .. }))
        ),
        "a slow but complete client was not served: {answer:?}"
    );
}

/// Descriptors the daemon may hold in `at_its_descriptor_limit_…`: after its own and a reserve
/// for commands, room for a few probes (one descriptor each, plus one per jail).
const NOFILE: &str = "--nofile=40:40";

/// The daemon counts its descriptors into its probe limit: it raises its soft limit only to
/// its hard limit (20,000 on the machines the tests run on; only a root with CAP_SYS_RESOURCE
/// could raise it), so there the descriptors bind before the 20,000 probes do. With the hard
/// limit lowered, the same happens with a few probes as with thousands.
#[test]
fn at_its_descriptor_limit_the_daemon_refuses_probes_and_keeps_serving() {
    if !root_or_skip("at_its_descriptor_limit_the_daemon_refuses_probes_and_keeps_serving") {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let daemon = Daemon::start_with(&dir, &["prlimit", NOFILE]);
    let jail = Jail::new();
    let pid = daemon.child.id();
    let command = format!("echo \"$JAILDAEMON_TITLE\" >> {}", fired.display());
    let spec = jail.spec();
    let mut armed = Vec::new();
    let refused = loop {
        let title = format!("FD_{}", armed.len());
        match ask(
            &daemon.socket,
            &arm_request(&["-c", &command, "-j", &spec, "-t", &title]),
        ) {
            Response::Armed { pid, .. } => armed.push(pid),
            Response::Refused(e) => break e,
            other => panic!("{other:?}"),
        }
        assert!(armed.len() < 40, "no limit reached");
    };
    let _ = writeln!(
        std::io::stderr(),
        "{} probes armed, then: {refused:?}",
        armed.len()
    );
    // The daemon counts its descriptors into its probe limit: a clear refusal (exit 75), not a
    // failed system call.
    assert_eq!(refused.kind, Kind::Limit, "{refused:?}");
    assert!(
        refused.message.contains("descriptor limit (40)"),
        "{refused:?}"
    );
    assert!(matches!(
        ask(&daemon.socket, &Request::Ping),
        Response::Pong { .. }
    ));
    // Clients may not take the descriptors kept for commands: beyond them, the next waits in
    // the backlog and the daemon rests its listener 100 ms at a time, instead of spinning on
    // accept.
    let held: Vec<UnixStream> = (0..40).map(|_| half_open(&daemon.socket)).collect();
    sleep(Duration::from_millis(500));
    let pauses = daemon.log_text().matches("not accepting for").count();
    assert!((1..=10).contains(&pauses), "{pauses} pauses logged");
    // A probe triggered at the limit, with the clients still there, still fires. SIGHUP comes
    // from inside the jail (from the host it would fire nothing); SIGKILL from anywhere.
    let hup = |pid: i32| {
        let inner = inner_pid(pid as u32).to_string();
        assert!(jail.exec_as(0, &["kill", "-HUP", &inner]).status.success());
    };
    let kill = |pid: i32| {
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    };
    hup(armed[0]);
    assert!(
        wait_for(LONG, || lines(&fired) == 1),
        "{}",
        daemon.log_text()
    );
    drop(held);
    assert!(wait_for(LONG, || matches!(
        ask(&daemon.socket, &Request::Ping),
        Response::Pong { .. }
    )));
    // Twin: killed probes fire nothing, and free their places for new ones.
    kill(armed[1]);
    kill(armed[2]);
    assert!(wait_for(LONG, || daemon
        .log_text()
        .matches("nothing fired")
        .count()
        == 2));
    let again = ask(
        &daemon.socket,
        &arm_request(&["-c", &command, "-j", &spec, "-t", "FD_AGAIN"]),
    );
    assert!(matches!(again, Response::Armed { .. }), "{again:?}");
    hup(armed[3]);
    assert!(
        wait_for(LONG, || lines(&fired) == 2),
        "{}",
        daemon.log_text()
    );
    assert!(!daemon.log_text().contains("cannot run its command"));
    assert_eq!(zombie_children(pid), Vec::<u32>::new(), "zombies left");
}

/// Lowered probe limits for `probe_limits_in_all_and_per_jail`: the real ones (20,000 and
/// 10,000) take more descriptors than the test machines allow a process (see above), and
/// arming 10,000 probes takes tens of seconds here.
const PROBE_LIMITS: &str = "JAILDAEMON_PROBE_LIMITS=6,4";

/// Probes armed at once: at most the per-jail limit in one jail, at most the total in all;
/// beyond either the request is refused with exit code 75, and a freed slot can be used
/// again. The daemon takes `JAILDAEMON_PROBE_LIMITS=TOTAL,PER_JAIL`, which may only lower
/// the limits, and is logged.
#[test]
fn probe_limits_in_all_and_per_jail() {
    if !root_or_skip("probe_limits_in_all_and_per_jail") {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let daemon = Daemon::start_with(&dir, &["env", PROBE_LIMITS]);
    assert!(
        daemon
            .log_text()
            .contains("probe limits lowered to 6 in all, 4 per jail"),
        "{}",
        daemon.log_text()
    );
    let (first, second) = (Jail::new(), Jail::new());
    let command = format!("echo \"$JAILDAEMON_TITLE\" >> {}", fired.display());
    let arm = |jail: &Jail, title: &str| {
        ask(
            &daemon.socket,
            &arm_request(&["-c", &command, "-j", &jail.spec(), "-t", title]),
        )
    };
    let mut pids = Vec::new();
    for n in 0..4 {
        match arm(&first, &format!("FIRST_{n}")) {
            Response::Armed { pid, .. } => pids.push(pid),
            other => panic!("probe {n} of the first jail: {other:?}"),
        }
    }
    let per_jail = refusal(arm(&first, "FIRST_4"));
    assert_eq!(per_jail.kind, Kind::Limit, "{per_jail:?}");
    assert!(per_jail.message.contains("too many probes"), "{per_jail:?}");
    // The per-jail limit binds one jail only; the total binds them all.
    for n in 0..2 {
        let answer = arm(&second, &format!("SECOND_{n}"));
        assert!(matches!(answer, Response::Armed { .. }), "{answer:?}");
    }
    let out = daemon.util(&["-c", "true", "-j", &second.spec(), "-t", "SECOND_2"]);
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(second.probes("SECOND_2").is_empty());
    // Twin: a probe gone frees its slot.
    let killed = rustix::process::Pid::from_raw(pids[0]).unwrap();
    rustix::process::kill_process(killed, rustix::process::Signal::KILL).unwrap();
    assert!(wait_for(LONG, || daemon
        .log_text()
        .contains("nothing fired")));
    let answer = arm(&second, "SECOND_2");
    assert!(matches!(answer, Response::Armed { .. }), "{answer:?}");
    assert!(second.pkill(0, "HUP", "SECOND_2"));
    assert!(wait_for(LONG, || lines(&fired) == 1));
}
