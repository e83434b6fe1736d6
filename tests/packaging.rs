//! The project as an administrator installs it: `make install` and `make uninstall`, the man
//! page, the rc.d script, the systemd unit and the examples.
//! Each check that can fail has a twin that feeds it something broken and expects it to fail.
//! A tool that is missing (mandoc, man, systemd-analyze, bmake), or a test that needs root or
//! systemd as PID 1, says SKIPPED on stderr.

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::RwLock;
use std::time::Duration;

use util::{TempDir, World, root_or_skip, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_jaildaemon");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAN: &str = "jaildaemon.8";
const RC_SCRIPT: &str = "dist/freebsd/jaildaemon";
const UNIT: &str = "dist/linux/jaildaemon.service";
const LXC_HOOK: &str = "examples/lxc-start-host";
const JAIL_CONF: &str = "examples/jail.conf";
const CONFIG: &str = "examples/jaildaemon.conf";
/// A jail spec that names no process: the daemon answers it with 68, and only a daemon does.
const NO_SUCH_JAIL: &str = "999999999";

/// Writing an executable while another thread forks can leave the file open for writing in
/// the child until it execs, and exec'ing the file then fails with ETXTBSY. Every spawn in
/// this file holds the read side; writing a script holds the write side.
static SPAWN: RwLock<()> = RwLock::new(());

fn output(cmd: &mut Command) -> Output {
    let _guard = SPAWN.read().unwrap_or_else(|e| e.into_inner());
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    let _guard = SPAWN.write().unwrap_or_else(|e| e.into_inner());
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Says loudly, past the harness's capture, that a test did not run.
fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

fn source(path: &str) -> PathBuf {
    Path::new(ROOT).join(path)
}

fn text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---- make install / uninstall ----

/// Runs `make` (or `bmake`) in the source tree with `args` (targets, flags) and these
/// variables, and none of the install or cargo variables of the test's own environment.
fn make(program: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.current_dir(ROOT).args(args);
    cmd.args(vars.iter().map(|(k, v)| format!("{k}={v}")));
    for var in [
        "PREFIX",
        "DESTDIR",
        "BINDIR",
        "MANDIR",
        "RCDIR",
        "UNITDIR",
        "HOOKDIR",
        "SERVICE",
        "UNAME",
        "BIN",
        "CARGO",
        "CARGO_TARGET_DIR",
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
    ] {
        cmd.env_remove(var);
    }
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "{program} {args:?} {vars:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Every file (not directory) below `root`, relative to it, with its permission bits.
fn files_below(root: &Path) -> BTreeSet<(String, u32)> {
    let mut found = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                found.insert((rel, meta.mode() & 0o7777));
            }
        }
    }
    found
}

/// Installs `system`'s layout under a PREFIX in `dir` (no DESTDIR), so that the rc.d script or
/// unit names a binary, and the unit a man page, that exist; returns the prefix.
fn install_under(dir: &TempDir, system: &str) -> PathBuf {
    let prefix = dir.path("prefix");
    let vars = [
        ("PREFIX", prefix.to_str().unwrap()),
        ("UNAME", system),
        ("BIN", BIN),
    ];
    make("make", &["install"], &vars);
    prefix
}

fn expect(files: &[(&str, u32)]) -> BTreeSet<(String, u32)> {
    files.iter().map(|(f, m)| (f.to_string(), *m)).collect()
}

/// `make install` into a DESTDIR puts exactly `expected` there, the installed binary runs,
/// and `make uninstall` removes exactly those files, not a file it did not install.
fn install_and_uninstall(program: &str, system: &str, expected: &[(&str, u32)]) {
    let dir = TempDir::new();
    let dest = dir.path("dest");
    let d = dest.display().to_string();
    let vars = [
        ("DESTDIR", d.as_str()),
        ("PREFIX", "/usr/local"),
        ("UNAME", system),
        ("BIN", BIN),
    ];
    make(program, &["install"], &vars);
    assert_eq!(files_below(&dest), expect(expected), "{program}, {system}");

    let installed = dest.join("usr/local/bin/jaildaemon");
    let version = output(Command::new(&installed).arg("-V"));
    assert!(version.status.success(), "{}", stderr(&version));
    assert_eq!(
        stdout(&version),
        format!("jaildaemon {}\n", env!("CARGO_PKG_VERSION"))
    );
    let man = expected.iter().find(|(f, _)| f.ends_with(".8")).unwrap().0;
    assert_eq!(text(&dest.join(man)), text(&source(MAN)));

    // A file that `make install` did not put there survives `make uninstall`.
    let keep = dest.join("usr/local/bin/keep-me");
    fs::write(&keep, "not ours").unwrap();
    fs::set_permissions(&keep, fs::Permissions::from_mode(0o644)).unwrap();
    make(program, &["uninstall"], &vars);
    assert_eq!(
        files_below(&dest),
        expect(&[("usr/local/bin/keep-me", 0o644)]),
        "{program}, {system}: uninstall left other files, or removed one it did not install"
    );
}

const LINUX_FILES: [(&str, u32); 4] = [
    ("usr/local/bin/jaildaemon", 0o755),
    ("usr/local/share/man/man8/jaildaemon.8", 0o644),
    ("usr/local/lib/systemd/system/jaildaemon.service", 0o644),
    // Where jaildaemon(8) and the hook's own comment say it is.
    ("usr/local/libexec/jaildaemon/lxc-start-host", 0o755),
];
const FREEBSD_FILES: [(&str, u32); 3] = [
    ("usr/local/bin/jaildaemon", 0o755),
    ("usr/local/man/man8/jaildaemon.8", 0o644),
    ("usr/local/etc/rc.d/jaildaemon", 0o755),
];

#[test]
fn make_install_and_uninstall_linux_layout() {
    install_and_uninstall("make", "Linux", &LINUX_FILES);
}

#[test]
fn make_install_and_uninstall_freebsd_layout() {
    install_and_uninstall("make", "FreeBSD", &FREEBSD_FILES);
}

/// FreeBSD's make is BSD make: the Makefile must mean the same to it.
#[test]
fn bsd_make_installs_and_uninstalls_the_same() {
    if !on_path("bmake") {
        skipped(
            "bsd_make_installs_and_uninstalls_the_same",
            "bmake is not installed (apt-get install bmake)",
        );
        return;
    }
    install_and_uninstall("bmake", "FreeBSD", &FREEBSD_FILES);
    install_and_uninstall("bmake", "Linux", &LINUX_FILES);
}

/// A choice of install variables, the files it installs, and the service file's line that
/// names the binary where it was installed.
type Case<'a> = (
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, u32)],
    Option<(&'a str, &'a str)>,
);

#[test]
fn install_directories_can_be_chosen_and_the_service_files_follow_the_binary() {
    let cases: [Case; 3] = [
        (
            &[
                ("UNAME", "Linux"),
                ("BINDIR", "/opt/jd/bin"),
                ("MANDIR", "/opt/jd/man"),
                ("UNITDIR", "/etc/systemd/system"),
            ],
            &[
                ("opt/jd/bin/jaildaemon", 0o755),
                ("opt/jd/man/man8/jaildaemon.8", 0o644),
                ("etc/systemd/system/jaildaemon.service", 0o644),
                ("usr/libexec/jaildaemon/lxc-start-host", 0o755),
            ],
            Some((
                "etc/systemd/system/jaildaemon.service",
                "ExecStart=/opt/jd/bin/jaildaemon -D -F",
            )),
        ),
        (
            &[
                ("UNAME", "FreeBSD"),
                ("BINDIR", "/opt/jd/sbin"),
                ("RCDIR", "/etc/rc.d"),
            ],
            &[
                ("opt/jd/sbin/jaildaemon", 0o755),
                ("usr/man/man8/jaildaemon.8", 0o644),
                ("etc/rc.d/jaildaemon", 0o755),
            ],
            Some(("etc/rc.d/jaildaemon", "command=\"/opt/jd/sbin/jaildaemon\"")),
        ),
        // SERVICE=none installs no service file, on any system.
        (
            &[
                ("UNAME", "Linux"),
                ("SERVICE", "none"),
                ("HOOKDIR", "/etc/lxc/hooks"),
            ],
            &[
                ("usr/bin/jaildaemon", 0o755),
                ("usr/share/man/man8/jaildaemon.8", 0o644),
                ("etc/lxc/hooks/lxc-start-host", 0o755),
            ],
            Some((
                "etc/lxc/hooks/lxc-start-host",
                "jaildaemon=${JAILDAEMON:-/usr/bin/jaildaemon}",
            )),
        ),
    ];
    for (chosen, files, service) in cases {
        let dir = TempDir::new();
        let dest = dir.path("dest");
        let d = dest.display().to_string();
        let common = [("DESTDIR", d.as_str()), ("BIN", BIN), ("PREFIX", "/usr")];
        let vars = [&common[..], chosen].concat();
        make("make", &["install"], &vars);
        assert_eq!(files_below(&dest), expect(files), "{chosen:?}");
        if let Some((file, line)) = service {
            let installed = text(&dest.join(file));
            assert!(installed.lines().any(|l| l == line), "{installed}");
        }
        make("make", &["uninstall"], &vars);
        assert!(files_below(&dest).is_empty(), "{chosen:?}");
    }
}

/// In a fresh clone there is no binary yet: `make install` builds it with cargo first. Given
/// a binary (BIN=), it runs no cargo. Checked with `make -n`, which only prints the plan.
#[test]
fn make_install_builds_the_release_binary_first_unless_given_one() {
    let dir = TempDir::new();
    let target = dir.path("empty-target");
    fs::create_dir(&target).unwrap();
    let t = target.display().to_string();
    let fresh = [
        ("DESTDIR", "/nonexistent"),
        ("CARGO_TARGET_DIR", t.as_str()),
    ];
    let plan = stdout(&make("make", &["-n", "install"], &fresh));
    let first = plan.lines().next().unwrap_or("");
    assert!(
        first.starts_with("cargo build --release"),
        "the plan does not build first:\n{plan}"
    );
    assert!(plan.contains(&format!("{t}/release/jaildaemon")), "{plan}");

    let given = [&fresh[..], &[("BIN", BIN)]].concat();
    let plan = stdout(&make("make", &["-n", "install"], &given));
    assert!(
        !plan.contains("cargo"),
        "a given binary is rebuilt:\n{plan}"
    );
    assert!(plan.contains(BIN), "{plan}");
}

// ---- the man page ----

/// `mandoc -T lint` findings, less one kind that depends on the machine, not on the page:
/// "referenced manual not found" for cross-references to pages not installed here (FreeBSD's
/// jail(8) on Linux, LXC's pages on FreeBSD).
fn lint(page: &Path) -> Vec<String> {
    let out = output(Command::new("mandoc").args(["-T", "lint"]).arg(page));
    // 0 to 4: the worst finding's level; 5 and 6: mandoc could not do its work at all.
    assert!(
        out.status.code().is_some_and(|c| c <= 4),
        "mandoc failed: {}",
        stderr(&out)
    );
    stdout(&out)
        .lines()
        .filter(|l| !l.contains("referenced manual not found"))
        .map(String::from)
        .collect()
}

#[test]
fn man_page_is_lint_clean_and_a_broken_copy_is_not() {
    if !on_path("mandoc") {
        skipped(
            "man_page_is_lint_clean_and_a_broken_copy_is_not",
            "mandoc not installed (apt-get install mandoc)",
        );
        return;
    }
    assert_eq!(lint(&source(MAN)), Vec::<String>::new());

    let dir = TempDir::new();
    let broken = dir.path("broken.8");
    let page = text(&source(MAN));
    assert!(page.contains("\n.El\n"));
    fs::write(
        &broken,
        page.replacen("\n.El\n", "\n", 1)
            .replacen(".Sh", ".Sh\n.Xx", 1),
    )
    .unwrap();
    let findings = lint(&broken);
    assert!(!findings.is_empty(), "the broken copy passed lint");
}

#[test]
fn man_page_reads_with_man_l() {
    if !on_path("man") {
        skipped("man_page_reads_with_man_l", "man is not installed");
        return;
    }
    let out = output(
        Command::new("man")
            .arg("-l")
            .arg(source(MAN))
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // troff's warnings (a line it cannot break, say) go to stderr.
    assert_eq!(stderr(&out), "");
    let shown = stdout(&out);
    for section in [
        "SYNOPSIS",
        "DESCRIPTION",
        "EXIT STATUS",
        "EXAMPLES",
        "HISTORY",
        "SECURITY CONSIDERATIONS",
    ] {
        assert!(shown.contains(section), "no {section} in:\n{shown}");
    }
}

/// The option letters of the mdoc `Fl` macros on these lines: `Fl rR` gives r and R, and a
/// long option, `Fl Fl json`, gives none.
fn fl_letters(lines: impl Iterator<Item = String>) -> BTreeSet<char> {
    let mut letters = BTreeSet::new();
    for line in lines {
        let words: Vec<&str> = line.trim_start_matches('.').split_whitespace().collect();
        for (i, word) in words.iter().enumerate().skip(1) {
            let flag = words[i - 1] == "Fl" && (i < 2 || words[i - 2] != "Fl");
            if flag && word.chars().all(|c| c.is_ascii_alphabetic()) {
                letters.extend(word.chars());
            }
        }
    }
    letters
}

/// The options the man page lists (`.It Fl X`) and those its SYNOPSIS shows.
fn man_options(page: &str) -> (BTreeSet<char>, BTreeSet<char>) {
    let listed = fl_letters(
        page.lines()
            .filter(|l| l.starts_with(".It Fl "))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    );
    let synopsis = fl_letters(
        page.lines()
            .skip_while(|l| *l != ".Sh SYNOPSIS")
            .skip(1)
            .take_while(|l| !l.starts_with(".Sh "))
            .map(String::from),
    );
    (listed, synopsis)
}

/// Single-letter options in a usage text: `-D`, `[-F]`, `[-r | -R]`.
fn usage_options(usage: &str) -> BTreeSet<char> {
    usage
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
        .filter_map(|w| w.strip_prefix('-'))
        .filter(|w| w.len() == 1)
        .filter_map(|w| w.chars().next())
        .collect()
}

/// What differs between the man page's options and the program's: empty when they agree.
fn option_mismatches(page: &str, parsed: &BTreeSet<char>, usage: &BTreeSet<char>) -> Vec<String> {
    let (listed, synopsis) = man_options(page);
    let mut wrong = Vec::new();
    for c in parsed.difference(&listed) {
        wrong.push(format!("-{c} is accepted but not described"));
    }
    for c in listed.difference(parsed) {
        wrong.push(format!("-{c} is described but not accepted"));
    }
    for c in usage.difference(&synopsis) {
        wrong.push(format!("-{c} is in the usage but not in the SYNOPSIS"));
    }
    for c in synopsis.difference(parsed) {
        wrong.push(format!("-{c} is in the SYNOPSIS but not accepted"));
    }
    wrong
}

#[test]
fn man_page_describes_every_option_the_program_accepts() {
    // What the parser matches on, from src/cli.rs: `Short('D')`, ….
    let cli = text(&source("src/cli.rs"));
    let parsed: BTreeSet<char> = cli
        .split("Short('")
        .skip(1)
        .filter_map(|rest| rest.chars().next())
        .collect();
    assert!(
        parsed.len() >= 13,
        "too few options found in cli.rs: {parsed:?}"
    );
    // What the program says it takes.
    let help = output(Command::new(BIN).arg("-h"));
    assert!(help.status.success());
    let usage = usage_options(&stdout(&help));
    assert!(usage.contains(&'D') && usage.contains(&'c'), "{usage:?}");

    let page = text(&source(MAN));
    assert_eq!(
        option_mismatches(&page, &parsed, &usage),
        Vec::<String>::new()
    );

    // The twin: a page that lost one option's entry is caught.
    let lost = page.replacen(".It Fl G Ar group", ".It Ar group", 1);
    assert_ne!(lost, page);
    assert_eq!(
        option_mismatches(&lost, &parsed, &usage),
        vec!["-G is accepted but not described".to_string()]
    );
}

/// The long options of cli.rs (`Long("json")`, …; not the aliases of a short one, `-h` and
/// `--help`) that the man page does not list as `.It Fl Fl NAME`, or that the help does not
/// name.
fn long_options_undocumented(cli: &str, page: &str, help: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let names = cli
        .lines()
        .filter(|l| !l.contains("Short('"))
        .filter_map(|l| l.split("Long(\"").nth(1)?.split('"').next());
    for name in names {
        if !page
            .lines()
            .any(|l| l.starts_with(&format!(".It Fl Fl {name}")))
        {
            wrong.push(format!("--{name} is accepted but not described"));
        }
        if !help.contains(&format!("--{name}")) {
            wrong.push(format!("--{name} is not explained by -h"));
        }
    }
    wrong
}

#[test]
fn man_page_and_help_describe_every_long_option() {
    let cli = text(&source("src/cli.rs"));
    assert!(
        cli.matches("Long(\"").count() >= 5,
        "too few long options in cli.rs"
    );
    let page = text(&source(MAN));
    let help = stdout(&output(Command::new(BIN).arg("-h")));
    assert_eq!(
        long_options_undocumented(&cli, &page, &help),
        Vec::<String>::new()
    );
    // The twin: a page that lost one option's entry is caught.
    let lost = page.replacen(".It Fl Fl timeout", ".It Ar timeout", 1);
    assert_ne!(lost, page);
    assert_eq!(
        long_options_undocumented(&cli, &lost, &help),
        vec!["--timeout is accepted but not described".to_string()]
    );
}

#[test]
fn man_page_lists_every_exit_code() {
    // The one mapping of errors to codes, in src/error.rs: `Kind::Usage => 64,`.
    let codes: BTreeSet<u32> = text(&source("src/error.rs"))
        .lines()
        .filter_map(|l| l.trim().split_once("=> "))
        .filter_map(|(_, code)| code.strip_suffix(',')?.parse().ok())
        .collect();
    assert!(codes.contains(&64) && codes.contains(&77), "{codes:?}");
    let page = text(&source(MAN));
    let listed: BTreeSet<u32> = page
        .lines()
        .skip_while(|l| *l != ".Sh EXIT STATUS")
        .take_while(|l| !l.starts_with(".Sh EXAMPLES"))
        .filter_map(|l| l.strip_prefix(".It ")?.parse().ok())
        .collect();
    let mut expected = codes;
    expected.insert(0);
    assert_eq!(listed, expected);
}

// ---- shell: the rc.d script and the examples ----

fn sh_n(args: &[&str]) -> Output {
    output(Command::new("sh").arg("-n").args(args))
}

#[test]
fn shell_files_parse_with_sh_n_and_a_broken_one_does_not() {
    for file in [RC_SCRIPT, LXC_HOOK] {
        let path = source(file);
        let out = sh_n(&[path.to_str().unwrap()]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert!(text(&path).starts_with("#!/bin/sh\n"), "{file}");
        let mode = fs::metadata(&path).unwrap().mode();
        assert_eq!(mode & 0o111, 0o111, "{file} is not executable");
    }
    for command in poststart_commands() {
        let out = sh_n(&["-c", &command]);
        assert!(out.status.success(), "{command}: {}", stderr(&out));
    }
    let out = sh_n(&["-c", "if true; then echo"]);
    assert!(!out.status.success(), "sh -n accepted a broken script");
}

/// The exec.poststart commands of examples/jail.conf, as jail(8) hands them to the shell for
/// the jail "www": the string between the double quotes, with $name expanded.
fn poststart_commands() -> Vec<String> {
    let commands: Vec<String> = text(&source(JAIL_CONF))
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("exec.poststart"))
        .map(|l| {
            let quoted = l.split_once('"').unwrap().1.rsplit_once('"').unwrap().0;
            assert!(!quoted.contains('"') && !quoted.contains('\\'), "{l}");
            quoted.replace("$name", "www")
        })
        .collect();
    assert!(commands.len() >= 2, "{commands:?}");
    commands
}

/// A stand-in for jaildaemon that records its arguments (NUL-separated, one call per line),
/// then runs the real utility with them against a socket where no daemon listens, and records
/// and exits with its status: 69 means the arguments were valid and only the daemon was
/// missing.
fn recorder(dir: &TempDir) -> (PathBuf, PathBuf) {
    let stub = dir.path("jaildaemon-stub");
    let record = dir.path("calls");
    script(
        &stub,
        &format!(
            "#!/bin/sh\n\
             for a; do printf '%s\\0' \"$a\"; done >> '{record}'\n\
             echo >> '{record}'\n\
             '{BIN}' \"$@\" -f '{none}'\n\
             status=$?\n\
             echo $status >> '{record}.status'\n\
             exit $status\n",
            record = record.display(),
            none = dir.path("no-daemon.sock").display(),
        ),
    );
    (stub, record)
}

/// The exit statuses of the real utility behind the recorder, one per call.
fn statuses(record: &Path) -> Vec<i32> {
    fs::read_to_string(record.with_extension("status"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn calls(record: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.trim_end_matches('\0')
                .split('\0')
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The value after `flag` in one recorded call.
fn arg<'a>(call: &'a [String], flag: &str) -> Option<&'a str> {
    call.iter()
        .position(|a| a == flag)
        .and_then(|i| call.get(i + 1))
        .map(String::as_str)
}

#[test]
fn jail_conf_poststart_gives_the_utility_a_valid_request() {
    let dir = TempDir::new();
    let (stub, record) = recorder(&dir);
    // logger(1) as a stand-in too, that says on stderr what it would log.
    let bin = dir.path("bin");
    fs::create_dir(&bin).unwrap();
    script(&bin.join("logger"), "#!/bin/sh\necho \"logger: $*\" >&2\n");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let commands = poststart_commands();
    for (command, title) in commands.iter().zip(["REBOOT", "SNAPSHOT"]) {
        assert!(
            command.starts_with("/usr/local/bin/jaildaemon "),
            "{command}"
        );
        let run = command.replacen("/usr/local/bin/jaildaemon", stub.to_str().unwrap(), 1);
        // The utility finds no daemon (69, not 64: its arguments are valid); the `|| logger`
        // part says so, and the line succeeds, so the jail's start does not fail.
        let out = output(Command::new("sh").arg("-c").arg(&run).env("PATH", &path));
        assert!(out.status.success(), "{run}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "logger: -t jaildaemon no {title} probe in jail www"
            )),
            "{err}"
        );
    }
    let calls = calls(&record);
    assert_eq!(calls.len(), commands.len());
    assert_eq!(statuses(&record), vec![69; commands.len()]);
    let reboot = &calls[0];
    assert_eq!(arg(reboot, "-c"), Some("service jail restart www"));
    assert_eq!(arg(reboot, "-j"), Some("www"));
    assert_eq!(arg(reboot, "-t"), Some("REBOOT"));
    assert!(!reboot.contains(&"-r".to_string()));
    let snapshot = &calls[1];
    assert_eq!(
        arg(snapshot, "-c"),
        Some("zfs snapshot zroot/jails/db@`date +%Y%m%d%H%M%S`")
    );
    assert!(snapshot.contains(&"-r".to_string()));
}

/// The rc.d script with /etc/rc.subr replaced by a stand-in that does what rc.subr would with
/// its variables: `show` prints them, `start` runs `$command $jaildaemon_flags $command_args`,
/// `stop` and `reload` send SIGTERM and SIGHUP to the pid in the pidfile.
fn rc_with_stub(dir: &TempDir, installed: &Path) -> PathBuf {
    let subr = dir.path("rc.subr");
    fs::write(
        &subr,
        r#"load_rc_config() { if [ -n "$RC_CONF" ]; then . "$RC_CONF"; fi; }
run_rc_command() {
	eval "_enable=\${$rcvar}"
	eval "_flags=\${${name}_flags}"
	case $1 in
	show) printf '%s\n' "name=$name" "rcvar=$rcvar" "enable=$_enable" "command=$command" \
		"pidfile=$pidfile" "command_args=$command_args" "flags=$_flags" ;;
	start) $command $_flags $command_args ;;
	stop) kill -TERM "$(cat "$pidfile")" ;;
	reload) kill -HUP "$(cat "$pidfile")" ;;
	esac
}
"#,
    )
    .unwrap();
    let rc = text(installed);
    assert_eq!(rc.matches("\n. /etc/rc.subr\n").count(), 1, "{rc}");
    let path = dir.path("rc.d-jaildaemon");
    fs::write(
        &path,
        rc.replace("\n. /etc/rc.subr\n", &format!("\n. '{}'\n", subr.display())),
    )
    .unwrap();
    path
}

fn rc(script: &Path, conf: Option<&Path>, verb: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg(script).arg(verb).env_remove("RC_CONF");
    if let Some(conf) = conf {
        cmd.env("RC_CONF", conf);
    }
    output(&mut cmd)
}

#[test]
fn rc_script_follows_rc_subr_conventions() {
    let rc_text = text(&source(RC_SCRIPT));
    let header = |key: &str| -> Vec<String> {
        rc_text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {key}:")))
            .unwrap_or_else(|| panic!("no # {key}: line"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(header("PROVIDE"), ["jaildaemon"]);
    assert!(header("BEFORE").contains(&"jail".to_string()));
    assert!(header("REQUIRE").contains(&"FILESYSTEMS".to_string()));
    assert!(header("KEYWORD").contains(&"shutdown".to_string()));
    // `service jaildaemon reload` sends SIGHUP (rc.subr's default sig_reload).
    assert!(rc_text.lines().any(|l| l == "extra_commands=\"reload\""));

    let dir = TempDir::new();
    let prefix = install_under(&dir, "FreeBSD");
    let script = rc_with_stub(&dir, &prefix.join("etc/rc.d/jaildaemon"));
    let binary = prefix.join("bin/jaildaemon");

    let out = rc(&script, None, "show");
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    for line in [
        "name=jaildaemon".to_string(),
        "rcvar=jaildaemon_enable".to_string(),
        "enable=NO".to_string(),
        format!("command={}", binary.display()),
        "pidfile=/var/run/jaildaemon.pid".to_string(),
        "command_args=-D -p /var/run/jaildaemon.pid".to_string(),
        "flags=".to_string(),
    ] {
        assert!(shown.lines().any(|l| l == line), "no '{line}' in:\n{shown}");
    }

    let conf = dir.path("rc.conf");
    fs::write(
        &conf,
        "jaildaemon_enable=\"YES\"\njaildaemon_pidfile=\"/var/run/jd-other.pid\"\n\
         jaildaemon_flags=\"-G wheel\"\n",
    )
    .unwrap();
    let shown = stdout(&rc(&script, Some(&conf), "show"));
    for line in [
        "enable=YES",
        "pidfile=/var/run/jd-other.pid",
        "command_args=-D -p /var/run/jd-other.pid",
        "flags=-G wheel",
    ] {
        assert!(shown.lines().any(|l| l == line), "no '{line}' in:\n{shown}");
    }
}

/// What rc(8) relies on, for real: `start` returns once the daemon listens and its pidfile
/// names it, so the jails started next can arm probes; `reload` has it read its configuration
/// file again; `stop` ends it and its files.
#[test]
fn rc_script_starts_a_ready_daemon_and_stops_it() {
    if !root_or_skip("rc_script_starts_a_ready_daemon_and_stops_it") {
        return;
    }
    let dir = TempDir::new();
    let prefix = install_under(&dir, "FreeBSD");
    let script = rc_with_stub(&dir, &prefix.join("etc/rc.d/jaildaemon"));
    let socket = dir.path("jd.sock");
    let pidfile = dir.path("jd.pid");
    let config = dir.path("jaildaemon.conf");
    // A jail that does not run: the declared probe waits for it.
    let declare = |title: &str| {
        format!("[[probe]]\njail = \"{NO_SUCH_JAIL}\"\ncommand = \"true\"\ntitle = \"{title}\"\n")
    };
    fs::write(&config, declare("FIRST")).unwrap();
    let conf = dir.path("rc.conf");
    fs::write(
        &conf,
        format!(
            "jaildaemon_enable=YES\njaildaemon_pidfile='{}'\n\
             jaildaemon_flags='-f {} -C {} -S {}'\n",
            pidfile.display(),
            socket.display(),
            config.display(),
            dir.path("state").display(),
        ),
    )
    .unwrap();
    let listed = || {
        let out = output(Command::new(BIN).arg("-l").arg("-f").arg(&socket));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };

    /// Stops the daemon the pidfile names, should the test end before `stop`.
    struct Stopped<'a>(&'a Path);
    impl Drop for Stopped<'_> {
        fn drop(&mut self) {
            let pid = fs::read_to_string(self.0).ok();
            if let Some(pid) = pid.and_then(|p| p.trim().parse::<i32>().ok()) {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid).expect("positive"),
                    rustix::process::Signal::TERM,
                );
            }
        }
    }
    let _stopped = Stopped(&pidfile);
    let out = rc(&script, Some(&conf), "start");
    assert!(out.status.success(), "{}", stderr(&out));
    // At once, with no waiting: the daemon answers (68 for a jail that does not exist; 69
    // would mean no daemon).
    let ask = output(
        Command::new(BIN)
            .args(["-c", "true", "-j", NO_SUCH_JAIL, "-f"])
            .arg(&socket),
    );
    assert_eq!(ask.status.code(), Some(68), "{}", stderr(&ask));
    let pid: u32 = text(&pidfile).trim().parse().unwrap();
    // rc.subr's check_pidfile compares the process's argv[0] with $command.
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap();
    assert_eq!(
        argv0,
        prefix.join("bin/jaildaemon").to_str().unwrap().as_bytes()
    );

    assert!(listed().contains("FIRST") && !listed().contains("SECOND"));
    fs::write(&config, [declare("FIRST"), declare("SECOND")].concat()).unwrap();
    let out = rc(&script, Some(&conf), "reload");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        wait_for(Duration::from_secs(5), || listed().contains("SECOND")),
        "reload did not bring the new probe: {}",
        listed()
    );

    let out = rc(&script, Some(&conf), "stop");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        wait_for(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()
            || fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))),
        "the daemon did not stop"
    );
    assert!(wait_for(Duration::from_secs(5), || !pidfile.exists()
        && !socket.exists()));
}

// ---- the systemd unit ----

/// `systemd-analyze verify` findings. It exits 0 on warnings such as an unknown key, so its
/// stderr counts too.
fn verify(unit: &Path, manpath: &Path) -> Result<(), String> {
    let out = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(unit)
            .env("MANPATH", manpath),
    );
    match (out.status.success(), stderr(&out).trim()) {
        (true, "") => Ok(()),
        (_, err) => Err(format!("exit {:?}: {err}", out.status.code())),
    }
}

#[test]
fn systemd_unit_verifies_and_a_broken_one_does_not() {
    let unit_text = text(&source(UNIT));
    for line in [
        "Type=notify",
        "KillMode=process",
        "ExecStart=/usr/local/bin/jaildaemon -D -F",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit_text.lines().any(|l| l == line),
            "no '{line}' in the unit"
        );
    }
    if !on_path("systemd-analyze") {
        skipped(
            "systemd_unit_verifies_and_a_broken_one_does_not",
            "systemd-analyze is not installed (apt-get install systemd)",
        );
        return;
    }
    let dir = TempDir::new();
    let prefix = install_under(&dir, "Linux");
    let manpath = prefix.join("share/man");
    let unit = prefix.join("lib/systemd/system/jaildaemon.service");
    assert_eq!(verify(&unit, &manpath), Ok(()));

    let broken_dir = dir.path("broken");
    fs::create_dir(&broken_dir).unwrap();
    let broken = broken_dir.join("jaildaemon.service");
    fs::write(
        &broken,
        text(&unit).replace("Type=notify", "Type=sometimes"),
    )
    .unwrap();
    assert!(verify(&broken, &manpath).is_err(), "a bad Type= passed");
}

/// Started and stopped by systemd for real, as a unit of its own name with its own socket and
/// pidfile, where systemd runs the machine.
#[test]
fn systemd_starts_and_stops_the_unit() {
    let test = "systemd_starts_and_stops_the_unit";
    if !Path::new("/run/systemd/system").is_dir() {
        skipped(
            test,
            "systemd is not PID 1 here; only systemd-analyze verify checks the unit",
        );
        return;
    }
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let prefix = install_under(&dir, "Linux");
    let socket = dir.path("jd.sock");
    let pidfile = dir.path("jd.pid");
    let installed = text(&prefix.join("lib/systemd/system/jaildaemon.service"));
    let start = format!("ExecStart={}/bin/jaildaemon -D -F", prefix.display());
    assert!(installed.contains(&start), "{installed}");
    let unit_text = installed.replace(
        &start,
        // Never the host's own configuration or state file.
        &format!(
            "{start} -f {} -p {} -C /dev/null -S {}",
            socket.display(),
            pidfile.display(),
            dir.path("state").display()
        ),
    );
    let name = format!("jaildaemon-test-{}.service", std::process::id());
    let unit_path = PathBuf::from("/run/systemd/system").join(&name);

    struct Removed(PathBuf, String);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = Command::new("systemctl").args(["stop", &self.1]).output();
            let _ = fs::remove_file(&self.0);
            let _ = Command::new("systemctl").arg("daemon-reload").output();
        }
    }
    fs::write(&unit_path, unit_text).unwrap();
    let _removed = Removed(unit_path, name.clone());
    let systemctl = |args: &[&str]| output(Command::new("systemctl").args(args));
    assert!(systemctl(&["daemon-reload"]).status.success());
    let started = systemctl(&["start", &name]);
    assert!(started.status.success(), "{}", stderr(&started));
    assert_eq!(stdout(&systemctl(&["is-active", &name])).trim(), "active");
    assert!(wait_for(Duration::from_secs(5), || socket.exists()));
    let ask = output(
        Command::new(BIN)
            .args(["-c", "true", "-j", NO_SUCH_JAIL, "-f"])
            .arg(&socket),
    );
    assert_eq!(ask.status.code(), Some(68), "{}", stderr(&ask));

    let stopped = systemctl(&["stop", &name]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert_ne!(stdout(&systemctl(&["is-active", &name])).trim(), "active");
    assert!(!socket.exists() && !pidfile.exists());
}

// ---- the example configuration file ----

#[test]
fn example_configuration_file_declares_valid_probes_and_a_doubled_one_is_refused() {
    let example = text(&source(CONFIG));
    let probes = jaildaemon::config::parse(&example).unwrap_or_else(|e| panic!("{e}"));
    let titles: Vec<&str> = probes.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["REBOOT", "DUMP", "SNAPSHOT"]);
    assert_eq!(probes[0].jail, "lxc:web1");
    assert_eq!(probes[1].user.as_deref(), Some("backup"));
    // Its restart verb runs as root, within a minute; its dump as the host user backup.
    let restart = probes[1].run_of(Some(jaildaemon::definition::Verb::Usr2));
    assert_eq!(
        (
            restart.command.as_str(),
            restart.run_as.as_deref(),
            restart.timeout
        ),
        (
            "podman restart db",
            Some("root"),
            Some(std::time::Duration::from_secs(60))
        )
    );
    assert_eq!(probes[1].run_of(None).run_as.as_deref(), Some("backup"));

    // The first declaration again: the same jail and title, refused with its line.
    let first = example.find("[[probe]]").unwrap();
    let second = example[first + 1..].find("[[probe]]").unwrap() + first + 1;
    let doubled = format!("{example}\n{}", &example[first..second]);
    let err = jaildaemon::config::parse(&doubled).unwrap_err();
    assert!(err.message.contains("line"), "{}", err.message);
}

// ---- the LXC hook ----

fn run_hook(env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(source(LXC_HOOK));
    for var in [
        "LXC_NAME",
        "LXC_PID",
        "LXC_HOOK_TYPE",
        "JAILDAEMON",
        "JAILDAEMON_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    output(&mut cmd)
}

#[test]
fn lxc_hook_arms_by_pid_in_the_hook_and_by_name_by_hand() {
    let dir = TempDir::new();
    let (stub, record) = recorder(&dir);
    let stub = stub.to_str().unwrap();
    let socket = "/run/jd-test.sock";
    let base = [("JAILDAEMON", stub), ("JAILDAEMON_SOCKET", socket)];
    let with = |more: &[(&'static str, &'static str)]| [&base[..], more].concat();

    // As LXC runs it: the init's PID.
    let out = run_hook(&with(&[
        ("LXC_NAME", "web1"),
        ("LXC_PID", "4242"),
        ("LXC_HOOK_TYPE", "start-host"),
    ]));
    assert!(out.status.success());
    // By hand, for a running container: its name.
    let out = run_hook(&with(&[("LXC_NAME", "web1")]));
    assert!(out.status.success());
    let recorded = calls(&record);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    for (call, jail) in recorded.iter().zip(["4242", "lxc:web1"]) {
        assert_eq!(arg(call, "-j"), Some(jail));
        assert_eq!(arg(call, "-f"), Some(socket));
        assert_eq!(arg(call, "-t"), Some("REBOOT"));
        assert_eq!(arg(call, "-c"), Some("lxc-stop -n 'web1' --reboot"));
    }
    // The stub ran the real utility with these arguments: only the daemon was missing.
    assert_eq!(statuses(&record), [69, 69]);
    assert!(
        stderr(&out).contains("no REBOOT probe in container web1"),
        "{}",
        stderr(&out)
    );

    // Refused, and nothing armed: a name that would need more quoting, a PID that is not
    // one, another hook type. The container starts all the same (exit 0).
    for env in [
        with(&[("LXC_NAME", "web'1"), ("LXC_PID", "4242")]),
        with(&[("LXC_NAME", "-n"), ("LXC_PID", "4242")]),
        with(&[("LXC_NAME", "web1"), ("LXC_PID", "42x")]),
        with(&[
            ("LXC_NAME", "web1"),
            ("LXC_PID", "4242"),
            ("LXC_HOOK_TYPE", "stop"),
        ]),
    ] {
        let out = run_hook(&env);
        assert!(out.status.success(), "{env:?}");
    }
    assert_eq!(calls(&record).len(), 2, "a refused hook armed a probe");
}

/// The hook against a real daemon and a real namespace jail standing in for the container:
/// the probe is in the jail, with its title. The twin names a process that is not in a jail.
#[test]
fn lxc_hook_arms_a_real_probe_in_the_container() {
    let test = "lxc_hook_arms_a_real_probe_in_the_container";
    let world = {
        let _guard = SPAWN.read().unwrap_or_else(|e| e.into_inner());
        World::new(test)
    };
    let Some(world) = world else {
        return;
    };
    let socket = world.daemon.socket.display().to_string();
    let pid = world.jail.pid.to_string();
    let env = [
        ("JAILDAEMON", BIN),
        ("JAILDAEMON_SOCKET", socket.as_str()),
        ("LXC_NAME", "web1"),
        ("LXC_HOOK_TYPE", "start-host"),
    ];
    let out = run_hook(&[&env[..], &[("LXC_PID", pid.as_str())]].concat());
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    assert_eq!(world.jail.probes("REBOOT").len(), 1);

    let ours = std::process::id().to_string();
    let out = run_hook(&[&env[..], &[("LXC_PID", ours.as_str())]].concat());
    assert!(
        out.status.success(),
        "a failed probe failed the container's start"
    );
    assert!(stderr(&out).contains("no REBOOT probe"), "{}", stderr(&out));
    assert_eq!(world.jail.probes("REBOOT").len(), 1);
}

// ---- the FreeBSD port skeleton (dist/freebsd) ----

const PORT: &str = "dist/freebsd";

/// `CARGO_CRATES` as the ports framework's `make cargo-crates` writes it: every crate of
/// `lock` that comes from a registry, as `name-version`, in the lock file's order.
fn cargo_crates(lock: &str) -> String {
    let mut crates = Vec::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix(" = \""))
                    .and_then(|v| v.strip_suffix('"'))
            })
        };
        let registry = field("source").is_some_and(|s| s.starts_with("registry+"));
        if let (true, Some(name), Some(version)) = (registry, field("name"), field("version")) {
            crates.push(format!("{name}-{version}"));
        }
    }
    let mut text = String::new();
    for (i, krate) in crates.iter().enumerate() {
        let start = if i == 0 { "CARGO_CRATES=\t" } else { "\t\t" };
        let end = if i + 1 < crates.len() { " \\\n" } else { "\n" };
        text.push_str(&format!("{start}{krate}{end}"));
    }
    text
}

#[test]
fn port_crates_are_cargo_locks_and_a_changed_lock_is_noticed() {
    let lock = text(&source("Cargo.lock"));
    let listed = text(&source(&format!("{PORT}/Makefile.crates")));
    assert_eq!(
        listed,
        cargo_crates(&lock),
        "{PORT}/Makefile.crates does not list Cargo.lock's crates; it should read as above"
    );
    assert!(
        listed.contains("\t\tlibc-") && listed.lines().count() > 10,
        "{listed}"
    );
    let port = text(&source(&format!("{PORT}/Makefile")));
    assert!(port.lines().any(|l| l == "USES=\t\tcargo"), "{port}");

    // A crate updated in Cargo.lock without the port is a difference.
    let libc = lock
        .lines()
        .skip_while(|l| *l != "name = \"libc\"")
        .nth(1)
        .expect("Cargo.lock has libc");
    let updated = lock.replacen(libc, "version = \"0.2.999\"", 1);
    assert_ne!(listed, cargo_crates(&updated));
    assert!(cargo_crates(&updated).contains("libc-0.2.999"));
}

/// What `make install UNAME=FreeBSD` puts below PREFIX, as pkg-plist lines: relative to
/// PREFIX, man pages gzipped (the ports framework compresses them after do-install).
fn installed_plist(program: &str, more: &[(&str, &str)]) -> BTreeSet<String> {
    let dir = TempDir::new();
    let dest = dir.path("stage");
    let d = dest.display().to_string();
    let vars = [
        ("DESTDIR", d.as_str()),
        ("PREFIX", "/usr/local"),
        ("UNAME", "FreeBSD"),
        ("BIN", BIN),
    ];
    make(program, &["install"], &[&vars[..], more].concat());
    files_below(&dest.join("usr/local"))
        .into_iter()
        .map(|(file, _)| {
            let man = file.starts_with("man/") || file.starts_with("share/man/");
            if man { format!("{file}.gz") } else { file }
        })
        .collect()
}

fn plist_lines(plist: &str) -> BTreeSet<String> {
    plist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .map(str::to_string)
        .collect()
}

#[test]
fn port_plist_is_what_make_install_installs_and_a_stale_one_is_noticed() {
    let plist = plist_lines(&text(&source(&format!("{PORT}/pkg-plist"))));
    let installed = installed_plist("make", &[]);
    assert_eq!(
        plist, installed,
        "{PORT}/pkg-plist against make install UNAME=FreeBSD"
    );
    if on_path("bmake") {
        assert_eq!(plist, installed_plist("bmake", &[]), "under BSD make");
    } else {
        skipped(
            "port_plist_is_what_make_install_installs_and_a_stale_one_is_noticed (bmake half)",
            "bmake is not installed (apt-get install bmake)",
        );
    }
    assert!(
        installed.iter().any(|f| f.ends_with("bin/jaildaemon")),
        "{installed:?}"
    );
    assert!(installed.contains("etc/rc.d/jaildaemon"), "{installed:?}");

    // An install that puts a file elsewhere (here the binary) no longer matches the plist.
    let moved = installed_plist("make", &[("BINDIR", "/usr/local/libexec")]);
    assert!(moved.contains("libexec/jaildaemon"), "{moved:?}");
    assert_ne!(plist, moved);
}

#[test]
fn port_description_and_makefile_are_complete() {
    let descr = text(&source(&format!("{PORT}/pkg-descr")));
    assert!(
        descr.lines().all(|l| l.len() <= 80),
        "pkg-descr lines over 80 columns"
    );
    assert!(descr.contains("jail") && descr.len() > 200, "{descr}");
    let port = text(&source(&format!("{PORT}/Makefile")));
    for var in [
        "PORTNAME=",
        "DISTVERSION=",
        "CATEGORIES=",
        "MAINTAINER=",
        "COMMENT=",
    ] {
        assert!(
            port.lines().any(|l| l.starts_with(var)),
            "{PORT}/Makefile lacks {var}"
        );
    }
    let version = format!("DISTVERSION=\t{}", env!("CARGO_PKG_VERSION"));
    assert!(
        port.lines().any(|l| l == version),
        "{PORT}/Makefile: not {version}"
    );
    assert!(port.trim_end().ends_with(".include <bsd.port.mk>"));
}

/// What is wrong with the "proved by" column of SECURITY.md's tables, given the sources of the
/// test files: a row that names no test and is not marked pending, or a test name (in
/// backquotes; a trailing `…` makes it a prefix) that no `fn` in the tests has.
fn unproved_security_rows(security: &str, tests: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    for row in security.lines().filter(|l| l.starts_with("| ")) {
        let proof = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
        if proof.contains("proved by") || proof.trim() == "---" {
            continue;
        }
        let names: Vec<&str> = proof
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| {
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_…".contains(c))
            })
            .collect();
        if names.is_empty() && !proof.contains("(test: pending, issue ") {
            wrong.push(format!("names no test: {row}"));
        }
        for name in names {
            let exists = match name.strip_suffix('…') {
                Some(prefix) => tests.contains(&format!("fn {prefix}")),
                None => tests.contains(&format!("fn {name}()")),
            };
            if !exists {
                wrong.push(format!("no test {name}: {row}"));
            }
        }
    }
    wrong
}

/// Every row of SECURITY.md's tables names a test that exists (or says it is pending, and on
/// which issue). Twin: a row naming a test that does not exist, and one naming none, are found.
#[test]
fn security_md_names_only_tests_that_exist() {
    let security = fs::read_to_string(Path::new(ROOT).join("SECURITY.md")).unwrap();
    let mut tests = String::new();
    for entry in fs::read_dir(Path::new(ROOT).join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            tests.push_str(&fs::read_to_string(path).unwrap());
        }
    }
    assert!(
        security.matches("\n| ").count() > 20,
        "SECURITY.md lost its tables"
    );
    assert_eq!(
        unproved_security_rows(&security, &tests),
        Vec::<String>::new()
    );
    let broken = "| a | b | hostile `no_such_test`, e2e `bad_requests_…` |\n| c | d | nothing |\n";
    assert_eq!(unproved_security_rows(broken, &tests).len(), 2);
}
