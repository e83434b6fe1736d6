//! Commands without a shell (issue 23): a command with no shell syntax is exec'd directly, and
//! behaves as it would under `sh -c`: the same argv (`$0` as written), environment, `PATH`
//! lookup, exit status, and, for a program that cannot run, the shell's own message and status.
//! Each direct command has a twin that differs only by a trailing ` #` (a shell comment), so
//! the shell runs it, and the two runs are compared. strace on the daemon shows which path ran.

mod util;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use util::*;

const LONG: Duration = Duration::from_secs(5);

/// Writes its own argv (as the kernel has it, `/proc/self/cmdline`) and its sorted environment
/// into the file named by its first argument, and exits with the status its second gives.
const REPORT: &str = r#"
open(my $f, '<', '/proc/self/cmdline') or die;
my @argv = split(/\0/, do { local $/; <$f> });
open(my $out, '>', $ARGV[0]) or die;
print $out "argv[0]=$argv[0]\n";
print $out "arg=$_\n" for @ARGV[1 .. $#ARGV];
print $out "env $_=$ENV{$_}\n" for sort keys %ENV;
close($out);
exit($ARGV[1]);
"#;

/// Follows the daemon and its children's execve calls into `file` until dropped.
struct Trace(Child);

impl Trace {
    fn attach(pid: u32, file: &Path) -> Option<Trace> {
        let child = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=execve", "-o"])
            .arg(file)
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // strace says nothing when it has attached; its output file appears first.
        wait_for(LONG, || file.exists()).then_some(())?;
        std::thread::sleep(Duration::from_millis(300));
        Some(Trace(child))
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The execve calls that succeeded, as strace wrote them.
fn execs(trace: &Path) -> Vec<String> {
    fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("execve(") && l.ends_with("= 0"))
        .map(str::to_owned)
        .collect()
}

/// Arms `command` under `title`, fires it from inside the jail and waits for its end in the log.
fn fire(world: &World, command: &str, title: &str) {
    let spec = world.jail.spec();
    world.daemon.arm(&["-c", command, "-j", &spec, "-t", title]);
    assert!(world.jail.pkill(0, "HUP", title));
    let ended = format!("'{title}') command ended");
    assert!(
        wait_for(LONG, || world.daemon.log_text().lines().any(|l| l
            .contains(&ended)
            || (l.contains(title) && l.contains(" ended "))),),
        "{command:?} did not end: {}",
        world.daemon.log_text()
    );
}

/// The log lines about `title`'s command (its output and its end), without the parts that
/// differ between two runs (time, probe id, pids, duration).
fn command_lines(log: &str, title: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(&format!("'{title}')")))
        .filter_map(|l| l.split_once(&format!("'{title}') ")).map(|(_, rest)| rest))
        .filter(|rest| !rest.starts_with("armed") && !rest.starts_with("command started"))
        .filter(|rest| !rest.starts_with("triggered"))
        .map(|rest| {
            rest.split(" after ")
                .next()
                .unwrap_or(rest)
                .replace(title, "TITLE")
        })
        .collect()
}

#[test]
fn a_command_without_shell_syntax_runs_without_a_shell_and_sees_what_sh_would_give_it() {
    let Some(world) = World::new(
        "a_command_without_shell_syntax_runs_without_a_shell_and_sees_what_sh_would_give_it",
    ) else {
        return;
    };
    let report = world.dir.path("report.pl");
    fs::write(&report, REPORT).unwrap();
    let (direct_out, shell_out) = (world.dir.path("direct"), world.dir.path("shell"));
    let trace_file = world.dir.path("trace");
    let Some(trace) = Trace::attach(world.daemon.child.id(), &trace_file) else {
        say_skipped(
            "a_command_without_shell_syntax_runs_without_a_shell_and_sees_what_sh_would_give_it: \
             strace is missing or did not attach (apt-get install strace)",
        );
        return;
    };
    // `perl` is found in PATH (/usr/bin), its argv[0] stays the word as written.
    let direct = format!(
        "perl {} {} 3 two  words",
        report.display(),
        direct_out.display()
    );
    fire(&world, &direct, "DIRECTRUN");
    let traced = execs(&trace_file);
    assert!(
        traced
            .iter()
            .any(|l| l.contains("execve(\"/usr/bin/perl\"")),
        "{traced:#?}"
    );
    assert!(
        !traced.iter().any(|l| l.contains("execve(\"/bin/sh\"")),
        "a shell ran: {traced:#?}"
    );
    // The twin: a comment makes it the shell's; the shell runs, then perl.
    let shell = format!(
        "perl {} {} 3 two  words #",
        report.display(),
        shell_out.display()
    );
    fire(&world, &shell, "SHELLRUN");
    drop(trace);
    let traced = execs(&trace_file);
    assert!(
        traced.iter().any(|l| l.contains("execve(\"/bin/sh\"")),
        "no shell ran for the twin: {traced:#?}"
    );
    // The same argv, $0 included, and the same environment, but for the title and id.
    let normalize = |path: &Path, title: &str| -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .replace(title, "TITLE")
            .lines()
            .filter(|l| !l.starts_with("env JAILDAEMON_PROBE="))
            .map(str::to_owned)
            .collect()
    };
    let direct_seen = normalize(&direct_out, "DIRECTRUN");
    assert!(
        direct_seen.contains(&"argv[0]=perl".to_string()),
        "{direct_seen:#?}"
    );
    assert!(
        direct_seen.contains(&"arg=words".to_string()),
        "{direct_seen:#?}"
    );
    assert!(
        direct_seen.contains(&"env PWD=/".to_string()),
        "{direct_seen:#?}"
    );
    let shell_seen = normalize(&shell_out, "SHELLRUN");
    let without_out = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| !l.starts_with("arg=/"))
            .collect()
    };
    assert_eq!(without_out(direct_seen), without_out(shell_seen));
    // And the same end: exit code 3, logged alike.
    let log = world.daemon.log_text();
    let (direct_end, shell_end) = (
        command_lines(&log, "DIRECTRUN"),
        command_lines(&log, "SHELLRUN"),
    );
    assert!(
        direct_end.iter().any(|l| l.contains("exit code 3")),
        "{direct_end:#?}\n{log}"
    );
    assert_eq!(direct_end, shell_end, "{log}");
}

#[test]
fn a_program_that_cannot_run_ends_as_it_would_under_the_shell() {
    let Some(world) = World::new("a_program_that_cannot_run_ends_as_it_would_under_the_shell")
    else {
        return;
    };
    // Not found in PATH: the shell's message and 127, either way.
    let missing = format!("jaildaemon-test-missing-{} an argument", std::process::id());
    fire(&world, &missing, "MISSINGDIRECT");
    fire(&world, &format!("{missing} #"), "MISSINGSHELL");
    // Not executable, named by its path: 126, either way.
    let unrunnable = world.dir.path("not-executable");
    fs::write(&unrunnable, "exit 0\n").unwrap();
    fire(&world, &unrunnable.display().to_string(), "DENIEDDIRECT");
    fire(
        &world,
        &format!("{} #", unrunnable.display()),
        "DENIEDSHELL",
    );
    // Executable but no binary and no #! line: the shell runs it as a script, either way.
    let script = world.dir.path("script");
    fs::write(&script, "exit 5\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&script)
        .status()
        .unwrap();
    fire(&world, &script.display().to_string(), "SCRIPTDIRECT");
    fire(&world, &format!("{} #", script.display()), "SCRIPTSHELL");
    let log = world.daemon.log_text();
    for (direct, shell, status) in [
        ("MISSINGDIRECT", "MISSINGSHELL", "exit code 127"),
        ("DENIEDDIRECT", "DENIEDSHELL", "exit code 126"),
        ("SCRIPTDIRECT", "SCRIPTSHELL", "exit code 5"),
    ] {
        let (d, s) = (command_lines(&log, direct), command_lines(&log, shell));
        assert!(
            d.iter().any(|l| l.contains(status)),
            "{direct}: {d:#?}\n{log}"
        );
        assert_eq!(d, s, "{log}");
    }
    assert!(
        command_lines(&log, "MISSINGDIRECT")
            .iter()
            .any(|l| l.contains("not found")),
        "{log}"
    );
}
