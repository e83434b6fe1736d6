//! The project as an administrator installs it: `make install` and `make uninstall`, the man
//! page, the rc.d script, the systemd unit, the examples and the Debian package.
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
use std::sync::{Mutex, RwLock};
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

/// Held by the tests that run a detached daemon on the host, which logs to the host's
/// /var/log/jaildaemon.log where no syslog daemon listens, and by the Debian package's test,
/// which checks that purging the package removes that file.
static HOST_LOG: Mutex<()> = Mutex::new(());

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

// ---- the binary ----

/// What `readelf` shows wrong in a Linux binary of ours: a library loaded at every start
/// besides glibc and its loader (build.rs links GCC's unwinder in, so that each
/// `jaildaemon -c` starts without `libgcc_s.so.1`), or a hardening it lacks: position
/// independence (ASLR), every symbol bound at start (`BIND_NOW`) and a read-only-after-start
/// segment (`GNU_RELRO`).
fn startup_faults(bin: &Path) -> Vec<String> {
    let readelf = |flag: &str| stdout(&output(Command::new("readelf").args([flag, "-W"]).arg(bin)));
    let (dynamic, headers) = (readelf("-d"), readelf("-l"));
    let mut faults: Vec<String> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_string()))
        .filter(|lib| !matches!(lib.as_str(), "libc.so.6" | "ld-linux-x86-64.so.2"))
        .map(|lib| format!("loads {lib} at every start"))
        .collect();
    let flag = |tag: &str, word: &str| {
        dynamic
            .lines()
            .any(|l| l.contains(tag) && l.split_whitespace().any(|w| w == word))
    };
    if !flag("(FLAGS_1)", "PIE") {
        faults.push("not position-independent (no PIE flag)".into());
    }
    if !flag("(FLAGS)", "BIND_NOW") {
        faults.push("symbols bound lazily (no BIND_NOW)".into());
    }
    if !headers
        .lines()
        .any(|l| l.trim_start().starts_with("GNU_RELRO"))
    {
        faults.push("no GNU_RELRO segment".into());
    }
    faults
}

#[test]
fn the_binary_loads_only_glibc_and_keeps_pie_and_full_relro_and_builds_without_them_do_not() {
    let test =
        "the_binary_loads_only_glibc_and_keeps_pie_and_full_relro_and_builds_without_them_do_not";
    if !cfg!(all(
        target_os = "linux",
        target_env = "gnu",
        target_arch = "x86_64"
    )) {
        return skipped(test, "the loader's name checked is x86_64 glibc's");
    }
    if !on_path("readelf") || !on_path("rustc") {
        return skipped(test, "needs readelf (binutils) and rustc on the PATH");
    }
    assert_eq!(startup_faults(Path::new(BIN)), Vec::<String>::new());
    // The same program built the ordinary way, then with each hardening switched off: each
    // build shows its fault.
    let dir = TempDir::new();
    let program = dir.path("hello.rs");
    fs::write(&program, "fn main() { println!(\"hello\"); }\n").unwrap();
    let build = |name: &str, flags: &[&str]| {
        let out = dir.path(name);
        let built = output(
            Command::new("rustc")
                .args(["-C", "panic=abort"])
                .args(flags)
                .arg("-o")
                .arg(&out)
                .arg(&program),
        );
        assert!(built.status.success(), "{}", stderr(&built));
        startup_faults(&out)
    };
    assert_eq!(build("plain", &[]), ["loads libgcc_s.so.1 at every start"]);
    let unwinder = ["-l", "static:-bundle=gcc_eh"];
    assert_eq!(build("unwinder", &unwinder), Vec::<String>::new());
    let broken: [(&str, &str, &str); 3] = [
        (
            "nopie",
            "relocation-model=static",
            "not position-independent",
        ),
        ("lazy", "link-arg=-Wl,-z,lazy", "no BIND_NOW"),
        ("norelro", "link-arg=-Wl,-z,norelro", "no GNU_RELRO"),
    ];
    for (name, flag, fault) in broken {
        let faults = build(name, &[&unwinder[..], &["-C", flag]].concat());
        assert!(
            faults.iter().any(|f| f.contains(fault)),
            "{name}: {faults:?}"
        );
    }
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

/// True when mandoc is installed; otherwise says that `test` is skipped.
fn mandoc_or_skip(test: &str) -> bool {
    let found = on_path("mandoc");
    if !found {
        skipped(test, "mandoc not installed (apt-get install mandoc)");
    }
    found
}

#[test]
fn man_page_is_lint_clean_and_a_broken_copy_is_not() {
    if !mandoc_or_skip("man_page_is_lint_clean_and_a_broken_copy_is_not") {
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

/// The page as `mandoc -T utf8` shows it, without the overstrikes of bold and underline, its
/// blank-separated paragraphs each on one line with single spaces.
fn rendered(page: &Path) -> String {
    let out = output(Command::new("mandoc").args(["-T", "utf8"]).arg(page));
    assert!(out.status.success(), "mandoc: {}", stderr(&out));
    let mut plain = String::new();
    for c in stdout(&out).chars() {
        // `X\bX` is bold X, `_\bX` underlined X: keep what follows the backspace.
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
        .split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What is wrong with the quotes of a rendered page (one paragraph per line): a quote that
/// opens inside one of its own kind, closes none, or is left open at the paragraph's end;
/// a quoted phrase whose parentheses do not pair; a closing quote glued to a word.
fn quoting_faults(shown: &str) -> Vec<String> {
    let mut faults = Vec::new();
    for paragraph in shown.lines() {
        let chars: Vec<char> = paragraph.chars().collect();
        // The open quotes, innermost last: the opening mark and where it stood.
        let mut open: Vec<(char, usize)> = Vec::new();
        for (i, &c) in chars.iter().enumerate() {
            let (opening, closing) = match c {
                '‘' | '’' => ('‘', '’'),
                '“' | '”' => ('“', '”'),
                _ => continue,
            };
            let around = || {
                let from = i.saturating_sub(30);
                let to = (i + 30).min(chars.len());
                chars[from..to].iter().collect::<String>()
            };
            if c == opening {
                if open.iter().any(|(mark, _)| *mark == opening) {
                    faults.push(format!("{c} inside a quote of its kind: …{}…", around()));
                }
                open.push((c, i));
                continue;
            }
            match open.pop() {
                Some((mark, start)) if mark == opening => {
                    let phrase: String = chars[start + 1..i].iter().collect();
                    if phrase.matches('(').count() != phrase.matches(')').count() {
                        faults.push(format!("unpaired parenthesis in {mark}{phrase}{closing}"));
                    }
                    if chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()) {
                        faults.push(format!("{closing} glued to a word: …{}…", around()));
                    }
                }
                _ => faults.push(format!("{closing} closes no {opening}: …{}…", around())),
            }
        }
        for (mark, start) in open {
            let to = (start + 40).min(chars.len());
            let rest: String = chars[start..to].iter().collect();
            faults.push(format!("{mark} never closed: {rest}…"));
        }
    }
    faults
}

/// Phrases of the page that must read exactly so, as they did not in issue 22.
const RENDERED_PHRASES: [&str; 3] = [
    "(‘30s’, ‘5m’, ‘1h’), from 1 second to 24 hours",
    "‘last=ok(0)’, ‘last=failed(N)’ or ‘last=signal(N)’",
    "e.g. ‘-r +2 verbs’",
];

/// The page's markup as it was in issue 22: `.Pq` around several `.Ql` on one line, and a
/// closing parenthesis that mdoc took for punctuation after the quote.
const BROKEN_QUOTING: [(&str, &str); 3] = [
    (
        ".Po\n.Ql 30s ,\n.Ql 5m ,\n.Ql 1h\n.Pc ,\n",
        ".Pq Ql 30s , Ql 5m , Ql 1h ,\n",
    ),
    (
        ".Ql last=failed( Ns Ar N Ns \\&)",
        ".Ql last=failed( Ns Ar N Ns )",
    ),
    (
        ".Ql last=signal( Ns Ar N Ns \\&)",
        ".Ql last=signal( Ns Ar N Ns )",
    ),
];

#[test]
fn man_page_renders_its_quotes_and_a_copy_with_the_old_markup_does_not() {
    if !mandoc_or_skip("man_page_renders_its_quotes_and_a_copy_with_the_old_markup_does_not") {
        return;
    }
    let shown = rendered(&source(MAN));
    assert!(
        shown.matches('‘').count() > 20,
        "no quotes rendered:\n{shown}"
    );
    assert_eq!(quoting_faults(&shown), Vec::<String>::new());
    for phrase in RENDERED_PHRASES {
        assert!(shown.contains(phrase), "the page does not show {phrase:?}");
    }

    // The twin: the old markup renders `(‘30s, ‘5m, ‘1h’’’)` and `‘last=failed(N’)or`.
    let mut page = text(&source(MAN));
    for (now, old) in BROKEN_QUOTING {
        assert!(page.contains(now), "the page no longer has {now:?}");
        page = page.replacen(now, old, 1);
    }
    let dir = TempDir::new();
    let broken = dir.path("broken.8");
    fs::write(&broken, page).unwrap();
    let shown = rendered(&broken);
    let faults = quoting_faults(&shown);
    for expected in [
        "‘ inside a quote",
        "unpaired parenthesis in ‘last=failed(N’",
    ] {
        assert!(
            faults.iter().any(|f| f.starts_with(expected)),
            "no fault {expected:?} in {faults:?}"
        );
    }
    assert!(!shown.contains(RENDERED_PHRASES[0]) && !shown.contains(RENDERED_PHRASES[1]));
}

/// The words `-l` prints in a column, from the sources: each string after `=> ` on the lines
/// that hold `marker`, each once.
fn listed_words(sources: &str, marker: &str) -> Vec<String> {
    let words: BTreeSet<String> = sources
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| l.split("=> \"").nth(1)?.split('"').next())
        .map(String::from)
        .collect();
    words.into_iter().collect()
}

/// The rendered text of the `-l` column `name`: from its tag to the next column's.
fn column_entry<'a>(shown: &'a str, name: &str, next: &str) -> &'a str {
    let start = shown
        .find(&format!(" {name} "))
        .unwrap_or_else(|| panic!("no column {name} in the page"));
    let rest = &shown[start..];
    let end = rest
        .find(&format!(" {next} "))
        .unwrap_or_else(|| panic!("no column {next} after {name}"));
    &rest[..end]
}

/// What the MODE and STATE entries of a rendered page lack of what `-l` prints there.
fn columns_undescribed(shown: &str, modes: &[String], states: &[String]) -> Vec<String> {
    let mut lacking = Vec::new();
    let columns = [
        ("MODE", "STATE", modes, "+N verbs"),
        ("STATE", "PID", states, "armed"),
    ];
    for (column, next, words, more) in columns {
        let entry = column_entry(shown, column, next);
        let described: BTreeSet<&str> = entry
            .split(|c: char| c.is_whitespace() || ",()".contains(c))
            .collect();
        for word in words.iter().map(String::as_str).chain([more]) {
            if !described.contains(word) && !entry.contains(word) {
                lacking.push(format!("{column} does not name {word}"));
            }
        }
    }
    lacking
}

#[test]
fn man_page_names_every_mode_and_state_that_l_shows() {
    if !mandoc_or_skip("man_page_names_every_mode_and_state_that_l_shows") {
        return;
    }
    // The sources that name the words: src/listing.rs, and the modules it asks for the mode
    // and the state.
    let mut sources = String::new();
    for entry in fs::read_dir(source("src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&text(&path));
        }
    }
    let modes = listed_words(&sources, "Respawn::");
    let states = listed_words(&sources, "ProbeState::");
    assert!(
        modes.len() >= 4 && states.len() >= 8,
        "{modes:?} {states:?}"
    );
    let watchdog = listed_words(&sources, "watchdog.is_some() =>");
    assert_eq!(watchdog, ["watchdog"]);
    let modes = [modes, watchdog].concat();
    let shown = rendered(&source(MAN));
    assert_eq!(
        columns_undescribed(&shown, &modes, &states),
        Vec::<String>::new()
    );

    // The twin: the MODE entry of issue 22, three modes only.
    let page = text(&source(MAN));
    let start = page.find(".It MODE\n").unwrap();
    let end = page.find(".It STATE\n").unwrap();
    let old = ".It MODE\n.Cm single ,\n.Fl r\nor\n.Fl R\n";
    let dir = TempDir::new();
    let broken = dir.path("old-mode.8");
    fs::write(&broken, [&page[..start], old, &page[end..]].concat()).unwrap();
    assert_eq!(
        columns_undescribed(&rendered(&broken), &modes, &states),
        [
            "MODE does not name queue",
            "MODE does not name watchdog",
            "MODE does not name +N verbs"
        ]
    );
}

/// What a README line about busybox-static gets wrong, given the applets `busybox --list`
/// names: the backquoted applets before "but no" it should have, those after it should lack.
fn busybox_claims_wrong(line: &str, applets: &BTreeSet<&str>) -> Vec<String> {
    let (has, lacks) = line.split_once("but no").unwrap_or((line, ""));
    let quoted = |part: &str| -> Vec<String> {
        part.split('`')
            .skip(1)
            .step_by(2)
            .map(String::from)
            .collect()
    };
    let mut wrong = Vec::new();
    for applet in quoted(has) {
        if !applets.contains(applet.as_str()) {
            wrong.push(format!("busybox-static has no {applet}"));
        }
    }
    for applet in quoted(lacks) {
        if applets.contains(applet.as_str()) {
            wrong.push(format!("busybox-static has {applet}"));
        }
    }
    wrong
}

/// The README's word on Debian's busybox-static, against the applets of the one installed.
#[test]
fn readme_names_the_applets_busybox_static_has() {
    let test = "readme_names_the_applets_busybox_static_has";
    let readme = text(&source("README.md"));
    let line = readme
        .lines()
        .find(|l| l.contains("busybox-static (1.35)"))
        .expect("README says which applets busybox-static has");
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "busybox-static"])
        .output()
        .ok()
        .map(|out| stdout(&out))
        .unwrap_or_default();
    if !installed.starts_with("1:1.35") || !on_path("busybox") {
        skipped(test, "Debian 12's busybox-static is not installed");
        return;
    }
    let list = stdout(&output(Command::new("busybox").arg("--list")));
    let applets: BTreeSet<&str> = list.lines().collect();
    assert!(applets.contains("sh") && applets.len() > 100, "{list}");
    assert_eq!(busybox_claims_wrong(line, &applets), Vec::<String>::new());
    assert!(
        line.contains("`pkill`") && line.contains("`killall`"),
        "{line}"
    );

    // The twin: the claim issue 22 found wrong, that busybox-static has pkill.
    let wrong = "busybox-static (1.35) has `killall` and `pkill`, but no `pgrep` and no `sh`.";
    assert_eq!(
        busybox_claims_wrong(wrong, &applets),
        ["busybox-static has no pkill", "busybox-static has sh"]
    );
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
    let _host_log = HOST_LOG.lock().unwrap_or_else(|e| e.into_inner());
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

// ---- the Debian package ----

const PACKAGE: &str = "jaildaemon";
const INSTALLED_BIN: &str = "/usr/bin/jaildaemon";
const CONFFILE: &str = "/etc/jaildaemon.conf";
/// What the daemon writes on its own, which `apt purge` must remove with the package's files:
/// the state file's directory, and the log of a detached daemon with no syslog to talk to.
const DAEMON_STATE: [&str; 2] = ["/var/lib/jaildaemon", "/var/log/jaildaemon.log"];

/// Runs a Debian tool; its output, whether it succeeded or not.
fn debian_tool(program: &str, args: &[&str], dir: &Path) -> Output {
    output(
        Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// `apt-get -y -q ARGS` in `dir`, which must succeed.
fn apt_get(args: &[&str], dir: &Path) {
    let out = debian_tool("apt-get", &[&["-y", "-q"], args].concat(), dir);
    assert!(
        out.status.success(),
        "apt-get {args:?}:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn package_installed() -> bool {
    let out = output(Command::new("dpkg-query").args(["-W", "-f", "${db:Status-Status}", PACKAGE]));
    stdout(&out) == "installed"
}

/// Purges the package on drop, so that a failed test leaves the machine as it found it. The
/// daemon's state paths that were there before (a `make install` copy's, say) are moved aside
/// while the test runs, so that the purge is seen to remove what the packaged daemon wrote,
/// and are put back afterwards.
struct Purged {
    aside: Vec<(PathBuf, PathBuf)>,
}

impl Purged {
    fn new() -> Purged {
        let mut aside = Vec::new();
        for path in DAEMON_STATE.map(PathBuf::from) {
            if fs::symlink_metadata(&path).is_ok() {
                let kept = path.with_extension(format!("before-deb-test-{}", std::process::id()));
                fs::rename(&path, &kept).unwrap();
                aside.push((path, kept));
            }
        }
        Purged { aside }
    }
}

impl Drop for Purged {
    fn drop(&mut self) {
        let _ = debian_tool("apt-get", &["purge", "-y", "-q", PACKAGE], Path::new("/"));
        for path in DAEMON_STATE {
            let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        }
        for (path, kept) in &self.aside {
            let _ = fs::rename(kept, path);
        }
    }
}

/// Every path that `apt purge` must leave absent: what `dpkg -L` listed of the package's own
/// (not the directories it shares, /usr or /etc), the state the daemon wrote, the systemd
/// links that enabling the unit made, and dpkg's own records of the package.
fn package_paths(listed: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = listed
        .lines()
        .filter(|l| l.contains("jaildaemon"))
        .map(PathBuf::from)
        .collect();
    paths.extend(DAEMON_STATE.iter().map(PathBuf::from));
    for dir in [
        "/etc/systemd/system/multi-user.target.wants",
        "/var/lib/systemd/deb-systemd-helper-enabled",
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants",
        "/var/lib/dpkg/info",
    ] {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("jaildaemon")
            {
                paths.push(entry.path());
            }
        }
    }
    paths
}

/// The paths of `paths` that exist (a dangling link counts).
fn left_behind(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .cloned()
        .collect()
}

/// Runs the installed daemon detached, with the installed configuration file and the default
/// state file, arms a persisted probe in a throwaway jail and stops the daemon: it leaves its
/// state file, and where no syslog daemon listens, its log.
fn leave_daemon_state(dir: &TempDir) {
    let socket = dir.path("deb.sock");
    let pidfile = dir.path("deb.pid");
    let started = output(
        Command::new(INSTALLED_BIN)
            .args(["-D", "-f"])
            .arg(&socket)
            .arg("-p")
            .arg(&pidfile),
    );
    assert!(started.status.success(), "{}", stderr(&started));
    let pid: i32 = text(&pidfile).trim().parse().unwrap();
    let jail = {
        let _guard = SPAWN.read().unwrap_or_else(|e| e.into_inner());
        util::Jail::new()
    };
    let listed = output(Command::new(INSTALLED_BIN).arg("-l").arg("-f").arg(&socket));
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(
        stdout(&listed).lines().count() <= 1,
        "the installed configuration declares probes: {}",
        stdout(&listed)
    );
    let armed = output(
        Command::new(INSTALLED_BIN)
            .args([
                "-c",
                "true",
                "-t",
                "DEBSTATE",
                "-P",
                "-j",
                &jail.spec(),
                "-f",
            ])
            .arg(&socket),
    );
    assert!(armed.status.success(), "{}", stderr(&armed));
    let daemon = rustix::process::Pid::from_raw(pid).expect("positive");
    rustix::process::kill_process(daemon, rustix::process::Signal::TERM).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || !pidfile.exists()),
        "the installed daemon did not stop"
    );
    assert!(Path::new("/var/lib/jaildaemon/state").is_file());
    if !Path::new("/dev/log").exists() {
        assert!(Path::new("/var/log/jaildaemon.log").is_file());
    }
}

/// Unpacks `deb`, lets `change` alter the tree, and packs it again as `out`.
fn repacked(deb: &Path, out: &Path, change: impl FnOnce(&Path)) {
    let tree = out.with_extension("tree");
    let unpack = output(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    assert!(unpack.status.success(), "{}", stderr(&unpack));
    change(&tree);
    let pack = output(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-b"])
            .arg(&tree)
            .arg(out),
    );
    assert!(pack.status.success(), "{}", stderr(&pack));
}

/// `make deb` builds a package that lintian passes at error level, that `apt install`
/// installs (binary, man page, enabled unit, LXC hook, the configuration file as a conffile
/// the daemon starts with) and that `apt purge` removes with every file and the daemon's
/// state. The twins: a package without its copyright file fails lintian, and one whose purge
/// forgets the state directory is caught leaving it behind.
#[test]
fn debian_package_builds_installs_and_purges_without_a_trace() {
    let test = "debian_package_builds_installs_and_purges_without_a_trace";
    if !root_or_skip(test) {
        return;
    }
    for tool in ["dh", "lintian", "apt-get", "dpkg-deb", "unshare"] {
        if !on_path(tool) {
            skipped(
                test,
                &format!("{tool} is missing (apt-get install debhelper lintian)"),
            );
            return;
        }
    }
    if package_installed() {
        skipped(
            test,
            "the jaildaemon package is installed here; not ours to purge",
        );
        return;
    }
    let dir = TempDir::new();
    let out_dir = dir.path("debs");
    fs::create_dir(&out_dir).unwrap();
    let debdir = format!("DEBDIR={}", out_dir.display());
    if on_path("bmake") {
        // BSD make plans the same commands (it never builds a package: Debian has GNU make).
        let plan = |program| stdout(&make(program, &["-n", "deb", &debdir], &[]));
        assert_eq!(plan("bmake"), plan("make"));
    }
    make("make", &["deb", &debdir], &[]);
    let arch = stdout(&output(Command::new("dpkg").arg("--print-architecture")));
    let name = format!(
        "jaildaemon_{}_{}.deb",
        env!("CARGO_PKG_VERSION"),
        arch.trim()
    );
    let built: Vec<String> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        built,
        std::slice::from_ref(&name),
        "make deb made other files, or none"
    );
    let deb = out_dir.join(&name);
    // debhelper's working files went with the build.
    assert!(!source("debian/jaildaemon").exists() && !source("debian/files").exists());

    let lintian = debian_tool("lintian", &["--fail-on", "error", &name], &out_dir);
    assert!(
        lintian.status.success(),
        "lintian:\n{}{}",
        stdout(&lintian),
        stderr(&lintian)
    );
    let unlicensed = dir.path("no-copyright.deb");
    repacked(&deb, &unlicensed, |tree| {
        fs::remove_file(tree.join("usr/share/doc/jaildaemon/copyright")).unwrap();
        let sums = text(&tree.join("DEBIAN/md5sums"));
        let kept: String = sums
            .lines()
            .filter(|l| !l.ends_with("/copyright"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(tree.join("DEBIAN/md5sums"), kept).unwrap();
    });
    let lintian = debian_tool(
        "lintian",
        &["--fail-on", "error", "no-copyright.deb"],
        &dir.0,
    );
    assert!(
        !lintian.status.success(),
        "lintian passed a package without copyright"
    );
    assert!(
        stdout(&lintian).contains("no-copyright-file"),
        "{}",
        stdout(&lintian)
    );

    let _host_log = HOST_LOG.lock().unwrap_or_else(|e| e.into_inner());
    let _purged = Purged::new();
    apt_get(&["install", &format!("./{name}")], &out_dir);
    assert!(package_installed());
    let listed = stdout(&output(Command::new("dpkg").args(["-L", PACKAGE])));
    for file in [
        INSTALLED_BIN,
        "/usr/share/man/man8/jaildaemon.8.gz",
        "/lib/systemd/system/jaildaemon.service",
        "/usr/libexec/jaildaemon/lxc-start-host",
        CONFFILE,
        "/usr/share/doc/jaildaemon/copyright",
        "/usr/share/doc/jaildaemon/changelog.gz",
    ] {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} not in:\n{listed}"
        );
        assert!(Path::new(file).exists(), "{file} is listed but absent");
    }
    assert!(!listed.contains("/usr/local"), "{listed}");
    let help = output(Command::new(INSTALLED_BIN).arg("-h"));
    assert!(
        help.status.success() && stdout(&help).contains("-D"),
        "{}",
        stderr(&help)
    );
    let conffiles = stdout(&output(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Conffiles}",
        PACKAGE,
    ])));
    assert!(
        conffiles.contains(&format!(" {CONFFILE} ")),
        "{conffiles:?}"
    );
    for (file, line) in [
        (
            "/lib/systemd/system/jaildaemon.service",
            "ExecStart=/usr/bin/jaildaemon -D -F",
        ),
        (
            "/usr/libexec/jaildaemon/lxc-start-host",
            "jaildaemon=${JAILDAEMON:-/usr/bin/jaildaemon}",
        ),
    ] {
        assert!(
            text(Path::new(file)).lines().any(|l| l == line),
            "no {line:?} in {file}"
        );
    }
    // Enabled the Debian way (deb-systemd-helper), even where systemd is not running.
    let wanted = Path::new("/etc/systemd/system/multi-user.target.wants/jaildaemon.service");
    assert!(
        fs::symlink_metadata(wanted).is_ok(),
        "the unit is not enabled"
    );

    leave_daemon_state(&dir);
    let paths = package_paths(&listed);
    assert!(
        left_behind(&paths).len() >= 10,
        "too little to check: {paths:?}"
    );
    apt_get(&["purge", PACKAGE], Path::new("/"));
    assert!(!package_installed());
    assert_eq!(left_behind(&paths), Vec::<PathBuf>::new());

    // The twin: a package whose purge forgets the state directory leaves it, and is caught.
    let forgetful = out_dir.join("forgetful.deb");
    repacked(&deb, &forgetful, |tree| {
        let postrm = tree.join("DEBIAN/postrm");
        let script = text(&postrm);
        assert!(script.contains("rm -rf /var/lib/jaildaemon\n"), "{script}");
        fs::write(&postrm, script.replace("rm -rf /var/lib/jaildaemon\n", "")).unwrap();
    });
    apt_get(&["install", "./forgetful.deb"], &out_dir);
    leave_daemon_state(&dir);
    apt_get(&["purge", PACKAGE], Path::new("/"));
    assert_eq!(
        left_behind(&package_paths(&listed)),
        [PathBuf::from("/var/lib/jaildaemon"),]
    );
}

// ---- dist/test-setup.sh: root's subordinate ids ----

/// Runs dist/root-subids.sh on a file holding `before`; its exit code, the file afterwards,
/// and what it said (stdout, stderr).
fn root_subids(before: &str) -> (Option<i32>, String, String) {
    let dir = TempDir::new();
    let file = dir.path("subuid");
    fs::write(&file, before).unwrap();
    let out = output(
        Command::new("bash")
            .arg(source("dist/root-subids.sh"))
            .arg(&file),
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.code(), text(&file), said)
}

/// Root gets 100000..165535 where no range of its covers them; nothing is added beside a root
/// range that does (LXD's), and the line the script once added there is taken out again; a
/// range that overlaps them without covering them, root's or anyone's, stops the script with
/// an error and the file as it was.
#[test]
fn root_subids_are_added_only_where_no_range_covers_them() {
    const LXD: &str = "_lxd:100000:10000001\nroot:100000:10000001\n";
    const OURS: &str = "root:100000:65536\n";
    for (before, after, note) in [
        ("", OURS, "added root:100000:65536"),
        (
            "root:200000:65536\n",
            "root:200000:65536\nroot:100000:65536\n",
            "added",
        ),
        (LXD, LXD, ""),
        (OURS, OURS, ""),
        (&format!("{LXD}{OURS}"), LXD, "removed root:100000:65536"),
        (&format!("{OURS}{LXD}"), LXD, "removed root:100000:65536"),
    ] {
        let (code, file, said) = root_subids(before);
        assert_eq!(code, Some(0), "{before:?}: {said}");
        assert_eq!(file, after, "{before:?}");
        assert!(said.contains(note), "{before:?}: {said}");
        // Again: nothing changes, and nothing is said.
        assert_eq!(root_subids(&file), (Some(0), file.clone(), String::new()));
    }
    // The twins: what overlaps without covering is left alone, with an error naming it.
    for clash in [
        "alice:100000:65536\n",
        "root:120000:65536\n",
        "root:50000:60000\n",
    ] {
        let (code, file, said) = root_subids(clash);
        assert_eq!(code, Some(1), "{clash:?}: {said}");
        assert_eq!(file, clash);
        assert!(
            said.contains(clash.trim()) && said.contains("not adding root:100000:65536"),
            "{said}"
        );
    }
}

/// The setup scripts that tests name in their SKIPPED reasons ("run dist/NAME.sh") that
/// `plan`, what `make -n check` prints, does not run before `cargo test`.
fn setups_make_check_skips(plan: &str, tests: &str) -> Vec<String> {
    let before_tests = plan.split("cargo test").next().unwrap_or("");
    tests
        .split("run dist/")
        .skip(1)
        .filter_map(|rest| {
            // A script of dist/ itself: lowercase letters and dashes, then `.sh`.
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            let script = rest[name.len()..].starts_with(".sh") && !name.is_empty();
            script.then(|| format!("dist/{name}.sh"))
        })
        .filter(|script| !before_tests.contains(&format!("bash {script}")))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `sudo make check` on a fresh machine sets up what every test's SKIPPED reason asks for
/// (dist/freebsd-setup.sh for tests/freebsd.rs), before the tests, under GNU and BSD make.
#[test]
fn make_check_runs_every_setup_a_skipping_test_asks_for() {
    let mut tests = String::new();
    for entry in fs::read_dir(source("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            tests.push_str(&text(&path));
        }
    }
    assert!(
        tests.contains("run dist/freebsd-setup.sh"),
        "no test names it"
    );
    let mut makes = vec!["make"];
    if on_path("bmake") {
        makes.push("bmake");
    }
    for program in makes {
        let plan = stdout(&make(program, &["-n", "check"], &[]));
        assert!(plan.contains("bash dist/test-setup.sh"), "{plan}");
        assert_eq!(
            setups_make_check_skips(&plan, &tests),
            Vec::<String>::new(),
            "{program}: {plan}"
        );
    }
    // The twin: make check as it was in issue 22, without the FreeBSD build.
    let old = "bash dist/test-setup.sh && cargo test\n";
    assert_eq!(
        setups_make_check_skips(old, &tests),
        ["dist/freebsd-setup.sh"]
    );
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
