//! The command lines people copy: jaildaemon 0.2's (its home page's and its man page's
//! examples, and its synopsis), and README.md's blocks, read from README.md itself so that
//! the two cannot drift apart. Each runs verbatim through `sh -c` against a test daemon (the
//! utility finds its socket in JAILDAEMON_SOCKET, as the README's lines name none) and real
//! namespace jails; only a jail ID of 0.2's examples becomes a real jail's PID.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::Duration;

use jaildaemon::definition::Verb;
use jaildaemon::proto::{ProbeInfo, Request, Respawn, Response};
use util::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A directory holding `jaildaemon` (the binary under test) for PATH.
fn bin_dir(dir: &TempDir) -> PathBuf {
    let bin = dir.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let _ = std::os::unix::fs::symlink(BIN, bin.join("jaildaemon"));
    bin
}

/// Runs `script` with `sh -c` as an administrator's shell would: `jaildaemon` on PATH, the
/// daemon's socket in JAILDAEMON_SOCKET, and `sudo` a function that just runs its arguments
/// (the tests are root already). Its output goes to files, so that a process it leaves in
/// the background does not hold a pipe open.
fn shell(dir: &TempDir, daemon: &Daemon, script: &str) -> (Output, String) {
    let path = format!(
        "{}:{}",
        bin_dir(dir).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, err) = (dir.path("sh.out"), dir.path("sh.err"));
    let status = Command::new("sh")
        .args(["-c", &format!("sudo() {{ \"$@\"; }}\n{script}")])
        .env("PATH", path)
        .env("JAILDAEMON_SOCKET", &daemon.socket)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let output = Output {
        status,
        stdout: fs::read(&out).unwrap(),
        stderr: fs::read(&err).unwrap(),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

fn probes(daemon: &Daemon) -> Vec<ProbeInfo> {
    match ask(&daemon.socket, &Request::List) {
        Response::Probes { probes } => probes,
        other => panic!("{other:?}"),
    }
}

fn probe<'a>(list: &'a [ProbeInfo], title: &str) -> Option<&'a ProbeInfo> {
    list.iter().find(|p| p.title == title)
}

/// The indented code block of README.md that starts with the line `first`, unindented.
fn readme_block(first: &str) -> String {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.strip_prefix("    ") == Some(first))
        .unwrap_or_else(|| panic!("README.md has no block starting with {first:?}"));
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect()
}

const THROWAWAY: &str = "dir=$(mktemp -d) && mkfifo \"$dir/jail\"";

/// Runs the README's throwaway-jail block, less its last `drop` lines; returns the jail's
/// host PID and the shell's output. The jail is killed on drop of the returned guard.
fn throwaway_jail(dir: &TempDir, daemon: &Daemon, drop: usize) -> (KillOnDrop, String) {
    let block = readme_block(THROWAWAY);
    let lines: Vec<&str> = block.lines().collect();
    let kept = lines[..lines.len() - drop].join("\n");
    let (out, text) = shell(
        dir,
        daemon,
        &format!("{kept}\necho \"JAIL=$JAIL\"\nrm -r \"$dir\""),
    );
    assert!(out.status.success(), "{text}\n{}", daemon.log_text());
    let pid = text
        .lines()
        .find_map(|l| l.strip_prefix("JAIL="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no JAIL: {text}"));
    (KillOnDrop(pid), text)
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

#[test]
fn the_readme_throwaway_jail_fires_and_names_the_right_process() {
    let test = "the_readme_throwaway_jail_fires_and_names_the_right_process";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let daemon = Daemon::start(&dir);
    // A decoy started just before, as on a busy host: the block must not take its sleep.
    let mut decoy = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "sleep",
            "infinity",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The twin first: the block without its last line (the trigger) fires nothing.
    let (jail, _) = throwaway_jail(&dir, &daemon, 1);
    let cmdline = fs::read(format!("/proc/{}/cmdline", jail.0)).unwrap();
    assert_eq!(cmdline, b"sleep\0infinity\0");
    let jail_ns = fs::read_link(format!("/proc/{}/ns/pid", jail.0)).unwrap();
    assert_ne!(jail_ns, fs::read_link("/proc/self/ns/pid").unwrap());
    sleep(Duration::from_millis(300));
    assert!(!daemon.log_text().contains("asks for a snapshot"));
    let listed = probes(&daemon);
    let snapshot = probe(&listed, "SNAPSHOT").expect("no SNAPSHOT probe");
    assert_eq!(snapshot.jail, jail.0.to_string());
    drop(jail);

    // The whole block fires, in the jail the block itself named.
    let (jail, _) = throwaway_jail(&dir, &daemon, 0);
    let expected = format!("jail {} asks for a snapshot", jail.0);
    assert!(
        wait_for(Duration::from_secs(5), || daemon
            .log_text()
            .contains(&expected)),
        "{}",
        daemon.log_text()
    );
    let _ = decoy.kill();
    let _ = decoy.wait();
}

/// The first lines of 0.2's examples, verbatim but for the jail ID: (command line, jail ID in
/// it, title, respawn, what the daemon's log shows of its command when it runs). 0.2's
/// trigger, `pkill -HUP -f TITLE`, is run as its own process, not under `sh -c` (see
/// tests/triggers.rs for why).
const ZERO_TWO: [(&str, &str, &str, Respawn, &str); 5] = [
    (
        "jaildaemon -j 23 -c '/usr/local/bin/parse_route_config -s /usr/jails/shell.foo.com/' -t 'route config update' -r",
        "23",
        "route config update",
        Respawn::AfterCommand,
        "parse_route_config",
    ),
    (
        "jaildaemon -j 23 -c '/usr/local/etc/rc.d/ezjail restart shell.foo.com' -t REBOOT",
        "23",
        "REBOOT",
        Respawn::Never,
        "/usr/local/etc/rc.d/ezjail",
    ),
    (
        "jaildaemon -c 'ezjail-admin restart example.com' -j 23 -t EZJAIL_REBOOT",
        "23",
        "EZJAIL_REBOOT",
        Respawn::Never,
        "ezjail-admin",
    ),
    (
        "jaildaemon -c 'zfs snapshot jails/example.com@`date +%s`' -j 42 -r -t ZFS_SNAPSHOT",
        "42",
        "ZFS_SNAPSHOT",
        Respawn::AfterCommand,
        "zfs",
    ),
    (
        "jaildaemon -c 'reload_routing_table.sh example.com' -j 1 -r -t UPDATE_ROUTING",
        "1",
        "UPDATE_ROUTING",
        Respawn::AfterCommand,
        "reload_routing_table.sh",
    ),
];

#[test]
fn the_examples_of_0_2_arm_and_fire_as_0_2_documents() {
    let Some(world) = World::new("the_examples_of_0_2_arm_and_fire_as_0_2_documents") else {
        return;
    };
    let (daemon, jail) = (&world.daemon, &world.jail);
    for (line, jid, title, respawn, shows) in ZERO_TWO {
        let line = line.replacen(&format!(" -j {jid} "), &format!(" -j {} ", jail.pid), 1);
        let (out, text) = shell(&world.dir, daemon, &line);
        assert!(out.status.success(), "{line}: {text}");
        let listed = probes(daemon);
        let armed = probe(&listed, title).unwrap_or_else(|| panic!("{line}: not armed"));
        assert_eq!(armed.respawn, respawn, "{line}");

        let out = jail.exec_as(0, &["pkill", "-HUP", "-f", title]);
        assert!(out.status.success(), "pkill -HUP -f {title}: {out:?}");
        // The command is not on this host: the shell says so, and the log shows it.
        assert!(
            wait_for(Duration::from_secs(5), || daemon
                .log_text()
                .lines()
                .any(|l| l.contains(shows) && l.contains("not found"))),
            "{line}: {}",
            daemon.log_text()
        );
        if respawn == Respawn::AfterCommand {
            let back = wait_for(Duration::from_secs(5), || jail.probes(title).len() == 1);
            assert!(back, "{line}: not re-armed");
        } else {
            sleep(Duration::from_millis(300));
            assert_eq!(jail.probes(title), Vec::<u32>::new(), "{line}: re-armed");
        }
    }
}

#[test]
fn the_synopsis_of_0_2_is_accepted_and_rr_is_big_r() {
    let Some(world) = World::new("the_synopsis_of_0_2_is_accepted_and_rr_is_big_r") else {
        return;
    };
    let (daemon, jail) = (&world.daemon, &world.jail);
    let socket = daemon.socket.display().to_string();
    let fired = world.fired.display().to_string();
    // jaildaemon -c command -j jid [-rR] [-u uid] [-g gid] [-t proctitle] [-f ipcsockpath]
    let line = format!(
        "jaildaemon -c 'echo R >> {fired}' -j {} -rR -u 0 -g 0 -t proctitle -f {socket}",
        jail.pid
    );
    let (out, text) = shell(&world.dir, daemon, &line);
    assert!(out.status.success(), "{text}");
    assert_eq!(text, "", "a note for options 0.2 takes");
    let listed = probes(daemon);
    assert_eq!(
        probe(&listed, "proctitle").unwrap().respawn,
        Respawn::Immediately
    );
    // -p in utility mode: "Ignored in utility mode", here with a note.
    let line = format!(
        "jaildaemon -c 'echo P >> {fired}' -j {} -t PIDFILE -p /var/run/jaildaemon.pid",
        jail.pid
    );
    let (out, text) = shell(&world.dir, daemon, &line);
    assert!(out.status.success(), "{text}");
    assert_eq!(text, "jaildaemon: note: -p ignored with -c\n");
    assert!(probe(&probes(daemon), "PIDFILE").is_some());
    assert!(jail.pkill(0, "HUP", "PIDFILE"));
    assert!(wait_for(Duration::from_secs(5), || fs::read_to_string(
        &world.fired
    )
    .is_ok_and(|f| f.contains("P"))));
}

#[test]
fn a_daemon_of_0_2_command_lines_ignores_utility_options_with_one_note() {
    let test = "a_daemon_of_0_2_command_lines_ignores_utility_options_with_one_note";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    // 0.2's man page: jaildaemon -D -p /var/run/jaildaemon.pid, here with the test's own
    // paths, and with options of the utility, which 0.2's daemon ignores. The test's
    // environment is not empty, so the daemon starts itself again: still one note.
    let daemon = Daemon::start_with_args(&dir, &["-j", "23", "-rR", "-t", "x"]);
    let log = daemon.log_text();
    let note = "jaildaemon: note: -j, -t, -r, -R ignored with -D";
    assert_eq!(log.matches(note).count(), 1, "{log}");
    // The twin: a daemon without them has no note.
    let dir2 = TempDir::new();
    let plain = Daemon::start(&dir2);
    assert!(!plain.log_text().contains("note:"), "{}", plain.log_text());
}

#[test]
fn the_utility_finds_its_socket_in_jaildaemon_socket_and_f_wins() {
    let test = "the_utility_finds_its_socket_in_jaildaemon_socket_and_f_wins";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let daemon = Daemon::start(&dir);
    let list = |env: Option<&Path>, args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("-l").args(args).env_remove("JAILDAEMON_SOCKET");
        if let Some(socket) = env {
            cmd.env("JAILDAEMON_SOCKET", socket);
        }
        cmd.output().unwrap().status.code()
    };
    let nowhere = dir.path("no-daemon.sock");
    let s = daemon.socket.to_str().unwrap();
    assert_eq!(list(Some(&daemon.socket), &[]), Some(0));
    assert_eq!(list(Some(&nowhere), &[]), Some(69));
    assert_eq!(list(Some(&nowhere), &["-f", s]), Some(0));
    assert_eq!(
        list(Some(&daemon.socket), &["-f", nowhere.to_str().unwrap()]),
        Some(69)
    );
    assert_eq!(list(Some(Path::new("")), &[]), Some(64));
}

#[test]
fn the_readme_configuration_example_loads_and_names_groups_that_exist() {
    let block = readme_block("# A container that may ask to be rebooted.");
    let probes = jaildaemon::config::parse(&block).unwrap();
    assert_eq!(probes.len(), 1);
    let group = probes[0]
        .group
        .as_deref()
        .expect("the example names a group");
    // It must exist in a Debian image's /etc/group (this host's, from base-passwd) and in
    // FreeBSD's base /etc/group, which has these.
    const FREEBSD: [&str; 12] = [
        "wheel", "daemon", "kmem", "sys", "tty", "operator", "mail", "bin", "news", "man", "games",
        "staff",
    ];
    assert!(
        FREEBSD.contains(&group),
        "{group} is not in FreeBSD's base groups"
    );
    let debian = fs::read_to_string("/etc/group").unwrap();
    assert!(
        debian.lines().any(|l| l.split(':').next() == Some(group)),
        "{group} is not in this host's /etc/group"
    );
    // The twin: the old example's group is not in Debian's.
    assert!(!debian.lines().any(|l| l.starts_with("wheel:")));
    // Its verb stops the container, which takes root: its own run_as, beside the probe's.
    let verb = probes[0].run_of(Some(Verb::Usr1));
    assert_eq!(
        (verb.command.as_str(), verb.run_as.as_deref()),
        ("lxc-stop -n web1", Some("root"))
    );
    assert_eq!(probes[0].run_of(None).run_as.as_deref(), Some("backup"));
}

/// Issue 22: the README's verb table, in a probe, gives USR2 its own host user and timeout,
/// while SIGHUP's command and USR1 keep the probe's, as the text below it says.
#[test]
fn the_readme_verb_table_gives_one_verb_its_own_user_and_timeout() {
    let block = readme_block("run_as = \"backup\"");
    let probes = jaildaemon::config::parse(&format!(
        "[[probe]]\njail = \"web1\"\ncommand = \"true\"\n{block}"
    ))
    .unwrap();
    let run = |verb| {
        let run = probes[0].run_of(verb);
        (run.command.clone(), run.run_as.clone(), run.timeout)
    };
    assert_eq!(
        run(Some(Verb::Usr2)),
        (
            "docker restart web1".to_string(),
            Some("root".to_string()),
            Some(Duration::from_secs(30))
        )
    );
    assert_eq!(
        run(Some(Verb::Usr1)),
        (
            "zfs snapshot tank/web1@asked".to_string(),
            Some("backup".to_string()),
            None
        )
    );
    assert_eq!(
        run(None),
        ("true".to_string(), Some("backup".to_string()), None)
    );
}
