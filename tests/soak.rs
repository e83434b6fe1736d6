//! Soak: 100,000 requests to one daemon over its real socket, thousands of them real probes
//! armed, triggered and killed, after which the daemon holds no more descriptors than before,
//! has no zombie child, and still answers and fires correctly (issue 4, "Bounded resources").

mod util;

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use jaildaemon::error::Kind;
use jaildaemon::proto::{Request, Response};
use rustix::process::{Pid, Signal};
use util::*;

/// All requests of the soak, of every kind.
const REQUESTS: usize = 100_000;
/// Single-shot probes armed and fired by SIGHUP; every `KILL_EVERY`th is killed instead.
const CYCLES: usize = 5_000;
const KILL_EVERY: usize = 10;
/// Triggers of one `-R` probe, re-armed by the daemon itself each time.
const RESPAWNS: usize = 200;
/// Threads sending pings and bad requests while the probes cycle.
const NOISE_THREADS: usize = 2;

const LONG: Duration = Duration::from_secs(20);

/// A request the daemon must refuse, with the kind it must refuse it with.
fn bad_requests(jail: &str) -> Vec<(Vec<u8>, Kind)> {
    let frame = |body: &[u8]| {
        let mut f = vec![b'J', b'D', 1, 0];
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    };
    let arm = |args: &[&str]| jaildaemon::proto::encode(&arm_request(args));
    // A field out of its limits, which the utility itself would refuse to send.
    let arm_with = |field: &str, value: String| {
        let valid = arm(&["-c", "true", "-j", jail]);
        let mut body: serde_json::Value = serde_json::from_slice(&valid[8..]).unwrap();
        body[field] = value.into();
        frame(&serde_json::to_vec(&body).unwrap())
    };
    let mut trailing = jaildaemon::proto::encode(&Request::Ping);
    trailing.push(b'x');
    let us = std::process::id().to_string();
    vec![
        (b"GET / HTTP/1.0\r\n\r\n".to_vec(), Kind::Protocol),
        (vec![b'J', b'D', 9, 0, 0, 0, 0, 2], Kind::Protocol),
        (
            vec![b'J', b'D', 1, 0, 0x7f, 0xff, 0xff, 0xff],
            Kind::Protocol,
        ),
        (frame(b"{\"op\":"), Kind::Protocol),
        (frame(br#"{"op":"format_disk"}"#), Kind::Protocol),
        (trailing, Kind::Protocol),
        (arm_with("command", " ".into()), Kind::Data),
        (arm_with("title", "T".repeat(201)), Kind::Data),
        (arm(&["-c", "true", "-j", "999999999"]), Kind::NoJail),
        (arm(&["-c", "true", "-j", &us]), Kind::NoJail),
    ]
}

/// Sends pings and bad requests until `budget` is used up; checks every answer.
fn noise(socket: &std::path::Path, jail: &str, budget: &AtomicUsize) -> usize {
    let bad = bad_requests(jail);
    let ping = jaildaemon::proto::encode(&Request::Ping);
    let mut sent = 0;
    while budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        // Every other request is a ping.
        let (bytes, expected) = match sent % 2 {
            0 => (&ping, None),
            _ => {
                let (bytes, kind) = &bad[(sent / 2) % bad.len()];
                (bytes, Some(*kind))
            }
        };
        let answer = exchange(socket, bytes);
        let answer = jaildaemon::proto::decode::<Response>(&answer);
        match (expected, answer) {
            (None, Ok(Some(Response::Pong { .. }))) => {}
            (Some(kind), Ok(Some(Response::Refused(e)))) if e.kind == kind => {}
            (expected, answer) => panic!("request {sent}: expected {expected:?}, got {answer:?}"),
        }
        sent += 1;
    }
    sent
}

/// Sends `signal` from the host (SIGKILL; a SIGHUP from outside the jail fires nothing).
fn hup(pid: i32, signal: Signal) {
    rustix::process::kill_process(Pid::from_raw(pid).unwrap(), signal).unwrap();
}

/// SIGHUP from inside the jail, which fires the probe.
fn fire(signaller: &mut Signaller, pid: i32) {
    assert!(
        signaller.send("HUP", pid as u32),
        "probe {pid} was not there"
    );
}

/// Arms a probe and returns its host pid.
fn arm(socket: &std::path::Path, args: &[&str]) -> i32 {
    match ask(socket, &arm_request(args)) {
        Response::Armed { pid, .. } => pid,
        other => panic!("arming {args:?}: {other:?}"),
    }
}

#[test]
fn a_hundred_thousand_requests_leave_no_descriptor_or_zombie_behind() {
    let Some(World {
        dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_hundred_thousand_requests_leave_no_descriptor_or_zombie_behind")
    else {
        return;
    };
    let started = Instant::now();
    let (socket, spec) = (daemon.socket.clone(), jail.spec());
    let pid = daemon.child.id();
    let command = format!("echo \"$JAILDAEMON_TITLE\" >> {}", fired.display());
    // Warm up: the first probe makes the daemon watch the jail; that is not growth. A second
    // one stays armed throughout, so that the daemon never stops watching the jail (it does 5 s
    // after the jail's last probe ended), whether the noise or the probes finish last.
    let mut signaller = jail.signaller();
    let first = arm(&socket, &["-c", &command, "-j", &spec, "-t", "WARM_UP"]);
    arm(&socket, &["-c", &command, "-j", &spec, "-t", "KEEPER"]);
    fire(&mut signaller, first);
    assert!(wait_for(LONG, || lines(&fired) == 1));
    assert!(wait_for(LONG, || daemon
        .log_text()
        .contains("command ended")));
    let fds_before = open_fds(pid);
    let mut requests = 2;

    let respawned = dir.path("respawned");
    let respawn_command = format!("echo x >> {}", respawned.display());
    let kills = CYCLES / KILL_EVERY;
    let arms = CYCLES + 1;
    let budget = AtomicUsize::new(REQUESTS - requests - arms);
    let (noise_sent, cycling) = std::thread::scope(|s| {
        let noise: Vec<_> = (0..NOISE_THREADS)
            .map(|_| s.spawn(|| noise(&socket, &spec, &budget)))
            .collect();
        let probes = s.spawn(|| {
            let cycling = Instant::now();
            for n in 0..CYCLES {
                let title = format!("SOAK_{n}");
                let probe = arm(&socket, &["-c", &command, "-j", &spec, "-t", &title]);
                if n % KILL_EVERY == 0 {
                    hup(probe, Signal::KILL);
                } else {
                    fire(&mut signaller, probe);
                }
            }
            // One `-R` probe, found by its title each time the daemon has re-armed it.
            arm(
                &socket,
                &["-c", &respawn_command, "-j", &spec, "-R", "-t", "SOAK_R"],
            );
            for n in 0..RESPAWNS {
                let mut probe = Vec::new();
                assert!(
                    wait_for(LONG, || {
                        probe = jail.probes("SOAK_R");
                        probe.len() == 1
                    }),
                    "not re-armed before trigger {n}"
                );
                fire(&mut signaller, probe[0] as i32);
                assert!(wait_for(LONG, || lines(&respawned) == n + 1));
            }
            let mut last = Vec::new();
            assert!(wait_for(LONG, || {
                last = jail.probes("SOAK_R");
                last.len() == 1
            }));
            hup(last[0] as i32, Signal::KILL);
            cycling.elapsed()
        });
        let sent: usize = noise.into_iter().map(|t| t.join().unwrap()).sum();
        (sent, probes.join().unwrap())
    });
    requests += noise_sent + arms;
    assert_eq!(requests, REQUESTS);
    let fires = 1 + CYCLES - kills;
    assert!(
        wait_for(LONG, || lines(&fired) == fires),
        "{} of {fires} commands ran",
        lines(&fired)
    );
    // Every probe and command of the soak is gone (the keeper still waits): the daemon is back
    // to its descriptors of before.
    assert!(
        wait_for(LONG, || open_fds(pid) == fds_before),
        "the daemon holds {} descriptors, {fds_before} before the soak",
        open_fds(pid)
    );
    assert_eq!(zombie_children(pid), Vec::<u32>::new(), "zombies left");
    let log = daemon.log_text();
    assert_eq!(log.matches("nothing fired").count(), kills + 1, "kills");
    let took = started.elapsed();
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "soak: {requests} requests ({noise_sent} pings and bad requests, {arms} arms), \
             {CYCLES} probes ({kills} killed) and {RESPAWNS} -R triggers in {cycling:?}; \
             {took:?} in all\n"
        )
        .as_bytes(),
    );

    // Still serving, and firing only for SIGHUP from whom the probe allows: a probe killed,
    // one sent another signal, one signalled by a foreign uid fire nothing; then jail root's
    // and uid 1000's SIGHUPs fire theirs.
    assert!(matches!(
        ask(&socket, &Request::Ping),
        Response::Pong { .. }
    ));
    let user = ["-u", "1000", "-g", "1000"];
    for (title, ids) in [
        ("AFTER_SOAK_KILLED", &[][..]),
        ("AFTER_SOAK_USR1", &[]),
        ("AFTER_SOAK_USER", &user),
        ("AFTER_SOAK", &[]),
    ] {
        let mut args = vec!["-c", &command, "-j", &spec, "-t", title];
        args.extend(ids);
        daemon.arm(&args);
    }
    assert!(jail.pkill(0, "KILL", "AFTER_SOAK_KILLED"));
    assert!(jail.pkill(0, "USR1", "AFTER_SOAK_USR1"));
    assert!(!jail.pkill(1001, "HUP", "AFTER_SOAK_USER"));
    sleep(Duration::from_millis(300));
    assert_eq!(lines(&fired), fires, "a probe fired without its SIGHUP");
    assert!(jail.pkill(1000, "HUP", "AFTER_SOAK_USER"));
    assert!(jail.pkill(0, "HUP", "AFTER_SOAK"));
    assert!(wait_for(LONG, || lines(&fired) == fires + 2));
    sleep(Duration::from_millis(300));
    let ran = fs::read_to_string(&fired).unwrap();
    let mut last: Vec<&str> = ran.lines().skip(fires).collect();
    last.sort_unstable();
    assert_eq!(last, ["AFTER_SOAK", "AFTER_SOAK_USER"]);
}
