//! A hostile jail: root inside it goes after the probe, and after the helper that places it,
//! the way container-runtime CVEs went after runc and lxc-attach (ARCHITECTURE.md, "Lessons
//! from container runtime CVEs"). Every attack must fail and fire nothing, and the probe must
//! still fire for the one signal it waits for.

mod util;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use jaildaemon::proto::Response;
use util::*;

const LONG: Duration = Duration::from_secs(5);

/// The attacker, run inside the jail by perl (present wherever the tests run: CI installs
/// perl-base). `attack` tries every door into a process that the kernel guards with a ptrace
/// access check, and lists the ones that opened:
/// - `control`: its own child, which it must be able to enter (proves the tool works);
/// - `static PID…`: the given pids, one line each, `PID:` then what opened;
/// - `race STOP SECONDS TITLE`: watches the next pid of its pid namespace, so that it tries
///   each new process within microseconds of its birth, helper B before its exec included;
///   one `breach PID WHAT` line for anything that opened, and a summary.
const ATTACKER: &str = r#"
use strict; use warnings;
use Errno qw(ESRCH);
$| = 1;
my ($SYS_ptrace, $PTRACE_SEIZE, $PTRACE_DETACH, $O_PATH) = (101, 0x4206, 17, 010000000);
sub ptrace_seize {
    # perl passes a string argument of syscall as a pointer: make the pid a number.
    my $t = $_[0] + 0;
    return 0 if syscall($SYS_ptrace, $PTRACE_SEIZE, $t, 0, 0) != 0;
    syscall($SYS_ptrace, $PTRACE_DETACH, $t, 0, 0);
    return 1;
}
# Every door but ptrace itself.
sub doors {
    my ($t) = @_;
    my @open;
    for my $f (qw(mem maps)) { push @open, $f if open(my $h, '<', "/proc/$t/$f"); }
    if (open(my $h, '<', "/proc/$t/environ")) { local $/; my $env = <$h> // ''; push @open, "environ:" . length($env); }
    for my $l (qw(exe cwd root)) { push @open, "readlink $l" if defined readlink("/proc/$t/$l"); }
    if (opendir(my $d, "/proc/$t/fd")) {
        for my $n (grep { /^\d+$/ } readdir($d)) {
            push @open, "fd $n" if open(my $h, '<', "/proc/$t/fd/$n");
        }
    }
    push @open, "cwd/" if opendir(my $c, "/proc/$t/cwd/");
    push @open, "root/" if opendir(my $r, "/proc/$t/root/");
    push @open, "exe for writing" if open(my $w, '+<', "/proc/$t/exe");
    # CVE-2019-5736: an O_PATH handle on the binary, reopened for writing later.
    if (sysopen(my $p, "/proc/$t/exe", $O_PATH)) {
        push @open, "exe O_PATH";
        push @open, "exe reopened for writing" if open(my $w2, '+<', "/proc/self/fd/" . fileno($p));
    }
    return @open;
}
sub attack { my ($t) = @_; return ((ptrace_seize($t) ? ("ptrace") : ()), doors($t)); }
my $mode = shift;
if ($mode eq 'control') {
    my $child = fork();
    if (!$child) { sleep 30; exit 0; }
    select(undef, undef, undef, 0.2);
    # As a string, as the other modes get their pids.
    print "control: ", join(",", attack("$child")), "\n";
    kill 9, $child; waitpid($child, 0);
} elsif ($mode eq 'static') {
    print "$_: ", join(",", attack($_)), "\n" for @ARGV;
} elsif ($mode eq 'race') {
    my ($stop, $seconds, $title) = @ARGV;
    my $end = time + $seconds;
    my ($t, $spins, $seen, $pre_exec, $probes) = ($$ + 1, 0, 0, 0, 0);
    print "ready\n";
    while (time < $end) {
        my $traced = ptrace_seize($t);
        if (!$traced && $! == ESRCH) {
            next if ++$spins % 20000;
            last if -e $stop;
            # A pid may have come and gone unseen: go on from the lowest live pid above it.
            opendir(my $p, "/proc") or die;
            my @up = sort { $a <=> $b } grep { /^\d+$/ && $_ > $t } readdir($p);
            $t = $up[0] if @up;
            next;
        }
        # Read after the ptrace attempt: a daemon command line here means the attempt met
        # helper B before its exec.
        my $cmdline = '';
        if (open(my $c, '<', "/proc/$t/cmdline")) { local $/; $cmdline = <$c> // ''; }
        $seen++;
        if ($cmdline eq "$title\0") { $probes++ } elsif ($cmdline ne '') { $pre_exec++ }
        print "breach $t $_\n" for (($traced ? ("ptrace") : ()), doors($t));
        $t++;
    }
    print "summary seen=$seen pre_exec=$pre_exec probes=$probes\n";
}
"#;

/// Writes the attacker where a jail that shares the host's filesystem can read it.
fn attacker(dir: &TempDir) -> String {
    let path = dir.path("attacker.pl");
    fs::write(&path, ATTACKER).unwrap();
    path.display().to_string()
}

/// Runs the attacker inside `jail` as its root, behind `prefix` (e.g. a setpriv that drops a
/// capability), and returns what it printed.
fn attack(jail: &Jail, prefix: &[&str], script: &str, args: &[&str]) -> String {
    let mut argv = prefix.to_vec();
    argv.extend(["perl", script]);
    argv.extend(args);
    let out = jail.exec_as(0, &argv);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the attacker failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Doors the kernel leaves open to a jail root that is the host's uid 0 without
/// CAP_SYS_PTRACE (a Docker-like jail), seen on Linux 6.18: `maps` and `environ` of a
/// non-dumpable process of its own uid, though not its memory, links or descriptors. For the
/// probe they show a 1 KiB image and an empty environment. A jail with its own user
/// namespace gets none.
fn soft_doors(prefix: &[&str]) -> &'static [&'static str] {
    if prefix.is_empty() {
        &[]
    } else {
        &["maps", "environ:0"]
    }
}

/// Appends the probe's title to `fired` each time it fires.
fn append_to(fired: &std::path::Path) -> String {
    format!("echo \"$JAILDAEMON_TITLE\" >> {}", fired.display())
}

/// What the attack tests share: two jails, a daemon, the attacker script and the file every
/// command appends to. Fields drop in order: the jails first, the directory last.
struct Arena {
    /// A jail with its own user namespace: its root is host uid 100000.
    userns: Jail,
    /// A jail whose root is the host's uid 0 without CAP_SYS_PTRACE, as Docker runs
    /// containers by default; its attacker runs behind `NO_PTRACE`.
    docker_like: Jail,
    daemon: Daemon,
    script: String,
    fired: std::path::PathBuf,
    dir: TempDir,
}

const NO_PTRACE: [&str; 2] = ["setpriv", "--bounding-set=-sys_ptrace"];

impl Arena {
    /// `None`, said loudly, without root or newuidmap.
    fn new(test: &str) -> Option<Arena> {
        if !root_or_skip(test) {
            return None;
        }
        let userns = Jail::with_userns()?;
        let dir = TempDir::new();
        Some(Arena {
            userns,
            docker_like: Jail::new(),
            daemon: Daemon::start(&dir),
            script: attacker(&dir),
            fired: dir.path("fired"),
            dir,
        })
    }

    /// Each jail with the prefix its attacker runs behind and a title for its probes.
    fn jails<'a>(&'a self, title: &str) -> [(&'a Jail, &'static [&'static str], String); 2] {
        [
            (&self.userns, &[], format!("{title}_USERNS")),
            (&self.docker_like, &NO_PTRACE, format!("{title}_NO_PTRACE")),
        ]
    }

    /// Nothing fired while the attacks ran; then jail root's SIGHUP to one probe in each
    /// jail fires exactly those two.
    fn assert_only_sighup_fires(&self, title: &str) {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(lines(&self.fired), 0, "an attack fired a probe");
        for (jail, _, title) in self.jails(title) {
            let one = inner_pid(jail.probes(&title)[0]).to_string();
            assert!(jail.exec_as(0, &["kill", "-HUP", &one]).status.success());
        }
        assert!(
            wait_for(LONG, || lines(&self.fired) == 2),
            "{}",
            self.daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(lines(&self.fired), 2);
    }
}

/// Jail root tries every door into an armed probe: ptrace, its memory, environment and maps,
/// its exe, cwd and root links, its descriptors, and its binary for writing (runc
/// CVE-2019-5736, CVE-2016-9962; lxc CVE-2016-8649). Two jails: one with its own user
/// namespace, and one whose root is the host's uid 0 without CAP_SYS_PTRACE, as Docker runs
/// containers by default. Nothing opens, nothing fires; the probe still fires on SIGHUP.
#[test]
fn jail_root_cannot_reach_into_the_probe() {
    let Some(arena) = Arena::new("jail_root_cannot_reach_into_the_probe") else {
        return;
    };
    for (jail, prefix, title) in arena.jails("TARGET") {
        let command = append_to(&arena.fired);
        arena
            .daemon
            .arm(&["-c", &command, "-j", &jail.spec(), "-t", &title]);
        let control = attack(jail, prefix, &arena.script, &["control"]);
        let doors: Vec<&str> = control
            .trim()
            .trim_start_matches("control: ")
            .split(',')
            .collect();
        for door in [
            "ptrace",
            "mem",
            "readlink exe",
            "fd 0",
            "cwd/",
            "exe O_PATH",
        ] {
            assert!(
                doors.contains(&door),
                "{title}: the attacker cannot even open '{door}' of its own child: {control}"
            );
        }
        let probe = inner_pid(jail.probes(&title)[0]).to_string();
        let opened = attack(jail, prefix, &arena.script, &["static", &probe]);
        let opened = opened
            .trim()
            .trim_start_matches(&format!("{probe}:"))
            .trim();
        assert!(
            opened
                .split(',')
                .all(|door| door.is_empty() || soft_doors(prefix).contains(&door)),
            "{title}: jail root got into the probe: {opened}"
        );
    }
    arena.assert_only_sighup_fires("TARGET");
}

/// The window of runc CVE-2016-9962 and lxc CVE-2016-8649: helper B is in the jail's pid
/// namespace from its birth, holding a copy of the daemon's memory and descriptors, until its
/// exec. An attacker in the jail tries every door into every new process of the jail within
/// microseconds of its birth while the daemon places 500 probes; B is non-dumpable from its
/// birth (inherited from A with its memory) and its memory belongs to the host's user
/// namespace, so nothing opens. The attacker must meet B before its exec at least once, or
/// the test proves nothing.
#[test]
fn helpers_placing_probes_cannot_be_entered_from_the_jail() {
    let Some(arena) = Arena::new("helpers_placing_probes_cannot_be_entered_from_the_jail") else {
        return;
    };
    const PROBES: usize = 500;
    for (jail, prefix, title) in arena.jails("RACED") {
        let stop = arena.dir.path(&format!("stop-{title}"));
        let (pid, stop_path) = (jail.spec(), stop.display().to_string());
        let mut argv = vec!["-t", &pid, "-a", "-S", "0", "-G", "0"];
        argv.extend(prefix);
        argv.extend(["perl", &arena.script, "race", &stop_path, "120", &title]);
        let mut attacker = Command::new("nsenter")
            .args(&argv)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(attacker.stdout.take().unwrap());
        let mut ready = String::new();
        out.read_line(&mut ready).unwrap();
        assert_eq!(ready, "ready\n", "the attacker did not start");
        let command = append_to(&arena.fired);
        let arm = arm_request(&["-c", &command, "-j", &pid, "-t", &title]);
        for n in 0..PROBES {
            let answer = ask(&arena.daemon.socket, &arm);
            assert!(
                matches!(answer, Response::Armed { .. }),
                "{title}: probe {n}: {answer:?}"
            );
        }
        fs::write(&stop, "").unwrap();
        let mut report = String::new();
        std::io::Read::read_to_string(&mut out, &mut report).unwrap();
        assert!(attacker.wait().unwrap().success(), "{report}");
        let summary = report.lines().find(|l| l.starts_with("summary")).unwrap();
        let count = |key: &str| -> usize {
            let field = summary
                .split(' ')
                .find_map(|f| f.strip_prefix(key))
                .unwrap();
            field.trim_start_matches('=').parse().unwrap()
        };
        let _ = writeln!(std::io::stderr(), "{title}: {summary}");
        assert!(
            count("pre_exec") > 0,
            "{title}: the attacker never met a helper before its exec: {summary}"
        );
        assert!(
            count("seen") >= PROBES / 2,
            "{title}: the attacker missed most new processes: {summary}"
        );
        // In the Docker-like jail `environ` of helper B opens; the daemon started again with
        // an empty environment, so it holds nothing (`environ:0`, a soft door).
        let breaches: Vec<&str> = report
            .lines()
            .filter_map(|l| l.strip_prefix("breach "))
            .filter(|b| {
                let door = b.split_once(' ').unwrap().1;
                !soft_doors(prefix).contains(&door)
            })
            .collect();
        assert!(
            breaches.is_empty(),
            "{title}: the jail got into a helper or probe: {breaches:?}"
        );
    }
    arena.assert_only_sighup_fires("RACED");
}

/// runc CVE-2019-5736: a container rewrote the runtime's own binary through /proc/PID/exe.
/// The probe's binary is a sealed, execute-only memfd of the daemon's: not even host root,
/// the strongest attacker there is, can change it, through a running probe's exe link or
/// through the daemon's own descriptor when no probe runs, and every later probe runs the
/// same bytes. (Jail root cannot even open the link: `jail_root_cannot_reach_into_the_probe`.)
#[test]
fn nobody_rewrites_the_probe_image_through_proc_exe() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("nobody_rewrites_the_probe_image_through_proc_exe")
    else {
        return;
    };
    let (command, spec) = (append_to(&fired), jail.spec());
    let arm = |title: &str| daemon.arm(&["-c", &command, "-j", &spec, "-t", title]);
    arm("IMAGE_ONE");
    let exe = format!("/proc/{}/exe", jail.probes("IMAGE_ONE")[0]);
    let image = fs::read(&exe).unwrap();
    assert!(
        image.starts_with(b"\x7fELF"),
        "the probe's exe is not its image"
    );
    assert_eq!(fs::metadata(&exe).unwrap().mode() & 0o7777, 0o111);
    assert_image_sealed(&exe);
    // With no probe running, the daemon's own descriptor of the image is the way in.
    assert!(jail.pkill(0, "HUP", "IMAGE_ONE"));
    assert!(wait_for(LONG, || lines(&fired) == 1
        && jail.probes("IMAGE_ONE").is_empty()));
    let fds = format!("/proc/{}/fd", daemon.child.id());
    let held = fs::read_dir(&fds)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|fd| fs::read_link(fd).is_ok_and(|l| l.to_string_lossy().starts_with("/memfd:")))
        .expect("the daemon holds no probe image");
    assert_image_sealed(&held.display().to_string());
    // A new probe runs the very same bytes, and fires.
    arm("IMAGE_TWO");
    let second = format!("/proc/{}/exe", jail.probes("IMAGE_TWO")[0]);
    assert_eq!(
        fs::read(&second).unwrap(),
        image,
        "a later probe runs other bytes"
    );
    assert!(jail.pkill(0, "HUP", "IMAGE_TWO"));
    assert!(
        wait_for(LONG, || lines(&fired) == 2),
        "{}",
        daemon.log_text()
    );
    // The seals leave the read bits free: host root makes the image readable, which would
    // make later probes dumpable. The daemon notices and places no probe from it.
    fs::set_permissions(&held, fs::Permissions::from_mode(0o555)).unwrap();
    let out = daemon.util(&["-c", &command, "-j", &spec, "-t", "IMAGE_THREE"]);
    assert_eq!(
        out.status.code(),
        Some(70),
        "a probe was placed from a readable image"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("mode was changed to 555"));
    assert!(jail.probes("IMAGE_THREE").is_empty());
    // Put back, it serves again.
    fs::set_permissions(&held, fs::Permissions::from_mode(0o111)).unwrap();
    arm("IMAGE_FOUR");
    assert_eq!(jail.probes("IMAGE_FOUR").len(), 1);
}

/// Host root tries to change the image behind `path`: opening it for writing may succeed
/// (CAP_DAC_OVERRIDE) when no process runs it, but the seals refuse every write, truncation
/// and growth, and (F_SEAL_EXEC, Linux 6.3) any change of its execute bits.
fn assert_image_sealed(path: &str) {
    let before = fs::read(path).unwrap();
    if let Ok(mut file) = fs::OpenOptions::new().write(true).open(path) {
        assert!(
            file.write_all(b"#!/bin/sh\n").is_err(),
            "wrote into the image"
        );
        assert!(file.set_len(0).is_err(), "truncated the image");
        assert!(file.set_len(1 << 20).is_err(), "grew the image");
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut version = release
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    if (version.next(), version.next()) >= (Some(6), Some(3)) {
        let chmod = |mode| fs::set_permissions(path, fs::Permissions::from_mode(mode));
        assert!(chmod(0o644).is_err(), "dropped the image's execute bits");
        assert!(chmod(0o000).is_err(), "dropped the image's execute bits");
    }
    assert_eq!(fs::metadata(path).unwrap().mode() & 0o111, 0o111);
    assert_eq!(fs::read(path).unwrap(), before, "the image changed");
}

/// runc CVE-2024-21626: a descriptor leaked from the host became the container process's
/// working directory, outside the container's root. The probe enters the jail's root through
/// an O_PATH descriptor of /proc/JAIL/root (fchdir, chroot ".", chdir "/") and keeps no
/// descriptor: in a jail with a root of its own, the probe's cwd and root are that root, and
/// the jail's own pkill fires it.
#[test]
fn the_probe_lives_in_the_jails_own_root() {
    if !root_or_skip("the_probe_lives_in_the_jails_own_root") {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let root = dir.path("jailroot");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("JAIL_ROOT_MARKER"), "").unwrap();
    let jail = Jail::chrooted(&root);
    let daemon = Daemon::start(&dir);
    daemon.arm(&["-c", &append_to(&fired), "-j", &jail.spec(), "-t", "ROOTED"]);
    let probe = jail.probes("ROOTED")[0];
    let id = |path: &str| {
        let meta = fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    };
    let jail_root = id(&root.display().to_string());
    assert_ne!(jail_root, id("/"));
    for link in ["cwd", "root"] {
        let path = format!("/proc/{probe}/{link}");
        assert_eq!(
            id(&path),
            jail_root,
            "the probe's {link} is not the jail's root"
        );
        assert!(
            fs::metadata(format!("{path}/JAIL_ROOT_MARKER")).is_ok(),
            "the probe's {link} does not hold the jail's files"
        );
        assert_eq!(
            fs::read_link(&path).unwrap(),
            fs::read_link(format!("/proc/{}/root", jail.pid)).unwrap()
        );
    }
    assert_eq!(
        fs::read_dir(format!("/proc/{probe}/fd")).unwrap().count(),
        0
    );
    // Twin: arming fired nothing; the jail's own pkill, in its own root, fires once.
    assert_eq!(lines(&fired), 0);
    let pkill = jail.exec_rooted_as(0, &["pkill", "-HUP", "-f", "ROOTED"]);
    assert!(pkill.status.success(), "{pkill:?}");
    assert!(
        wait_for(LONG, || lines(&fired) == 1),
        "{}",
        daemon.log_text()
    );
}
