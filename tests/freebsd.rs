//! What can be checked here of the FreeBSD build, which no FreeBSD machine has run:
//!
//! - the kernel numbers the FreeBSD probe carries (`probe/freebsd_abi.rs`) and the one the
//!   backend hard-codes (`MNT_NOEXEC`), against FreeBSD's own headers as zig ships them (the
//!   libc crate, against which the FreeBSD build checks the rest at compile time, has no
//!   FreeBSD syscall numbers);
//! - the linked FreeBSD binary and its probe, with `dist/freebsd/check-elf.sh`, once `.ci/run`
//!   (or the command in DEVELOPERS.md) has built them into `target/freebsd-build`.
//!
//! - the verb logic the FreeBSD probe shares with the Linux one (`probe/verbs.rs`: the verbs
//!   read from the initial stack's environment, the confirmation windows), run here on a
//!   stack laid out as both kernels lay it out.
//!
//! Without zig, or without that build, the tests say SKIPPED on stderr.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)]
mod abi {
    include!("../probe/freebsd_abi.rs");
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LINUX_BIN: &str = env!("CARGO_BIN_EXE_jaildaemon");

/// Says loudly, past the harness's capture, that a test did not run.
fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

// ---- the probe's numbers against FreeBSD's headers ----

/// A number we carry, and where FreeBSD defines it: a header below the include directory and
/// the macro's name.
struct Entry {
    ours: &'static str,
    value: u64,
    header: &'static str,
    macro_name: &'static str,
}

/// Every constant of `probe/freebsd_abi.rs` that FreeBSD defines, and `MNT_NOEXEC`.
fn entries() -> Vec<Entry> {
    let e = |ours, value: u64, header, macro_name| Entry {
        ours,
        value,
        header,
        macro_name,
    };
    vec![
        e(
            "SYS_EXIT",
            abi::SYS_EXIT as u64,
            "sys/syscall.h",
            "SYS_exit",
        ),
        e(
            "SYS_SIGPROCMASK",
            abi::SYS_SIGPROCMASK as u64,
            "sys/syscall.h",
            "SYS_sigprocmask",
        ),
        e(
            "SYS_SIGTIMEDWAIT",
            abi::SYS_SIGTIMEDWAIT as u64,
            "sys/syscall.h",
            "SYS_sigtimedwait",
        ),
        e(
            "SYS_CLOCK_GETTIME",
            abi::SYS_CLOCK_GETTIME as u64,
            "sys/syscall.h",
            "SYS_clock_gettime",
        ),
        e("SIGHUP", abi::SIGHUP as u64, "sys/signal.h", "SIGHUP"),
        e("SIGUSR1", abi::SIGUSR1 as u64, "sys/signal.h", "SIGUSR1"),
        e("SIGUSR2", abi::SIGUSR2 as u64, "sys/signal.h", "SIGUSR2"),
        e(
            "SIG_SETMASK",
            abi::SIG_SETMASK as u64,
            "sys/signal.h",
            "SIG_SETMASK",
        ),
        e(
            "SYS_KILL",
            abi::SYS_KILL as u64,
            "sys/syscall.h",
            "SYS_kill",
        ),
        e("EPERM", abi::EPERM as u64, "sys/errno.h", "EPERM"),
        e("ESRCH", abi::ESRCH as u64, "sys/errno.h", "ESRCH"),
        e("SI_USER", abi::SI_USER as u64, "sys/signal.h", "SI_USER"),
        e("SI_QUEUE", abi::SI_QUEUE as u64, "sys/signal.h", "SI_QUEUE"),
        e("SI_LWP", abi::SI_LWP as u64, "sys/signal.h", "SI_LWP"),
        e("EINTR", abi::EINTR as u64, "sys/errno.h", "EINTR"),
        e("EAGAIN", abi::EAGAIN as u64, "sys/errno.h", "EAGAIN"),
        e(
            "CLOCK_MONOTONIC",
            abi::CLOCK_MONOTONIC as u64,
            "sys/_clock_id.h",
            "CLOCK_MONOTONIC",
        ),
        e(
            "SIGSET_WORDS",
            abi::SIGSET_WORDS as u64,
            "sys/_sigset.h",
            "_SIG_WORDS",
        ),
        e(
            "NT_FREEBSD_ABI_TAG",
            u64::from(abi::NT_FREEBSD_ABI_TAG),
            "sys/elf_common.h",
            "NT_FREEBSD_ABI_TAG",
        ),
        e("MNT_NOEXEC", mnt_noexec(), "sys/mount.h", "MNT_NOEXEC"),
    ]
}

/// Constants of the table that are our choice, not FreeBSD's.
const OUR_CHOICE: &[&str] = &["PROBE_OSREL"];

/// Constants of the table that are a structure's layout, not a macro of the headers: the
/// FreeBSD build checks them against the libc crate's `siginfo_t` (`src/sys/freebsd/mod.rs`),
/// and `siginfo_layout_is_the_headers` below against the header's declaration.
const LAYOUT: &[&str] = &["SIGINFO_SIZE", "SIGINFO_CODE", "SIGINFO_PID"];

/// The value of `MNT_NOEXEC` in src/sys/freebsd/raw.rs.
fn mnt_noexec() -> u64 {
    let raw = fs::read_to_string(Path::new(ROOT).join("src/sys/freebsd/raw.rs")).unwrap();
    let line = raw
        .lines()
        .find_map(|l| l.strip_prefix("const MNT_NOEXEC: u64 = "))
        .expect("src/sys/freebsd/raw.rs defines MNT_NOEXEC");
    parse_number(line.trim_end_matches(';')).expect("MNT_NOEXEC is a number")
}

/// A C integer literal: decimal or 0x hex, with an optional U/L suffix.
fn parse_number(text: &str) -> Option<u64> {
    let digits = text.trim().trim_end_matches(['U', 'L', 'u', 'l']);
    match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => digits.parse().ok(),
    }
}

/// The value of `#define NAME VALUE` in `header`, following one macro that names another.
fn define(header: &str, name: &str) -> Option<u64> {
    let value = header.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("#define") && words.next() == Some(name))
            .then(|| words.next())
            .flatten()
    })?;
    parse_number(value).or_else(|| define(header, value))
}

/// Where FreeBSD's headers are: `JAILDAEMON_FREEBSD_INCLUDE`, or zig's copy of them (`zig env`,
/// or `python3 -m ziglang env` for zig from PyPI, on the PATH or in the venv that
/// dist/freebsd-setup.sh makes in target/ci-zig).
fn freebsd_include() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("JAILDAEMON_FREEBSD_INCLUDE") {
        return Some(PathBuf::from(dir));
    }
    let venv_python = format!("{ROOT}/target/ci-zig/bin/python3");
    let zig_env = [
        &["zig", "env"][..],
        &["python3", "-m", "ziglang", "env"],
        &[venv_python.as_str(), "-m", "ziglang", "env"],
    ]
    .iter()
    .find_map(|cmd| {
        let out = Command::new(cmd[0]).args(&cmd[1..]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })?;
    // `.lib_dir = "…",` (zig 0.14 and later) or `"lib_dir": "…",` (older).
    let after_key = zig_env[zig_env.find("lib_dir")? + "lib_dir".len()..].trim_start_matches('"');
    let value = &after_key[after_key.find('"')? + 1..];
    let lib_dir = &value[..value.find('"')?];
    let dir = Path::new(lib_dir).join("libc/include/generic-freebsd");
    dir.is_dir().then_some(dir)
}

/// Every entry whose value differs from FreeBSD's, or that FreeBSD's headers lack.
fn mismatches(entries: &[Entry], include: &Path) -> Vec<String> {
    let mut wrong = Vec::new();
    for entry in entries {
        let path = include.join(entry.header);
        let header =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match define(&header, entry.macro_name) {
            Some(value) if value == entry.value => {}
            Some(value) => wrong.push(format!(
                "{} is {}, FreeBSD's {} ({}) is {value}",
                entry.ours, entry.value, entry.macro_name, entry.header
            )),
            None => wrong.push(format!(
                "{}: {} has no {}",
                entry.ours, entry.header, entry.macro_name
            )),
        }
    }
    wrong
}

#[test]
fn every_constant_of_the_probes_table_is_checked() {
    let table = fs::read_to_string(Path::new(ROOT).join("probe/freebsd_abi.rs")).unwrap();
    let declared: BTreeSet<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split(':').next())
        .collect();
    let checked: BTreeSet<&str> = entries()
        .iter()
        .map(|e| e.ours)
        .chain(OUR_CHOICE.iter().copied())
        .chain(LAYOUT.iter().copied())
        .collect();
    let unchecked: Vec<_> = declared.difference(&checked).collect();
    assert!(
        unchecked.is_empty(),
        "not checked against FreeBSD: {unchecked:?}"
    );
    assert!(declared.len() >= 23, "read too few constants: {declared:?}");
}

#[test]
fn the_probes_numbers_are_freebsds() {
    let Some(include) = freebsd_include() else {
        skipped(
            "the_probes_numbers_are_freebsds",
            "no FreeBSD headers: run dist/freebsd-setup.sh, or set JAILDAEMON_FREEBSD_INCLUDE",
        );
        return;
    };
    let wrong = mismatches(&entries(), &include);
    assert!(
        wrong.is_empty(),
        "{}:\n{}",
        include.display(),
        wrong.join("\n")
    );
}

#[test]
fn a_wrong_number_is_reported_with_freebsds() {
    let Some(include) = freebsd_include() else {
        skipped(
            "a_wrong_number_is_reported_with_freebsds",
            "no FreeBSD headers: run dist/freebsd-setup.sh, or set JAILDAEMON_FREEBSD_INCLUDE",
        );
        return;
    };
    let mut table = entries();
    let sigtimedwait = table
        .iter_mut()
        .find(|e| e.ours == "SYS_SIGTIMEDWAIT")
        .unwrap();
    sigtimedwait.value += 1;
    table.push(Entry {
        ours: "NOT_THERE",
        value: 1,
        header: "sys/signal.h",
        macro_name: "SIGNOTTHERE",
    });
    let wrong = mismatches(&table, &include);
    assert_eq!(
        wrong,
        [
            format!(
                "SYS_SIGTIMEDWAIT is {}, FreeBSD's SYS_sigtimedwait (sys/syscall.h) is {}",
                abi::SYS_SIGTIMEDWAIT + 1,
                abi::SYS_SIGTIMEDWAIT
            ),
            "NOT_THERE: sys/signal.h has no SIGNOTTHERE".to_string(),
        ]
    );
}

/// The fields of `struct __siginfo` in sys/signal.h, in order, up to `si_pid`: the probe's
/// offsets assume six leading ints (`si_signo`, `si_errno`, `si_code`, `si_pid`, …).
#[test]
fn siginfo_layout_is_the_headers() {
    let Some(include) = freebsd_include() else {
        skipped(
            "siginfo_layout_is_the_headers",
            "no FreeBSD headers: pip install ziglang, or set JAILDAEMON_FREEBSD_INCLUDE",
        );
        return;
    };
    let header = fs::read_to_string(include.join("sys/signal.h")).unwrap();
    let start = header
        .find("typedef\tstruct __siginfo {")
        .expect("sys/signal.h declares struct __siginfo");
    let fields: Vec<(&str, &str)> = header[start..]
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.ends_with(';') || l.contains(";\t") || l.contains("; "))
        .filter_map(|l| {
            let decl = l.split(';').next()?;
            let mut words = decl.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .take(6)
        .collect();
    assert_eq!(
        fields,
        [
            ("int", "si_signo"),
            ("int", "si_errno"),
            ("int", "si_code"),
            ("__pid_t", "si_pid"),
            ("__uid_t", "si_uid"),
            ("int", "si_status"),
        ]
    );
    // Four bytes each (pid_t and uid_t are 32-bit on FreeBSD): si_code at 8, si_pid at 12.
    assert_eq!((abi::SIGINFO_CODE, abi::SIGINFO_PID), (2 * 4, 3 * 4));
}

// ---- the linked binary ----

/// The FreeBSD build `.ci/run` makes, and the probe its build script left.
fn freebsd_build() -> Option<(PathBuf, PathBuf)> {
    let release = Path::new(ROOT).join("target/freebsd-build/x86_64-unknown-freebsd/release");
    let bin = release.join("jaildaemon");
    let probe = fs::read_dir(release.join("build"))
        .ok()?
        .filter_map(|dir| {
            let probe = dir.ok()?.path().join("out/probe");
            let modified = fs::metadata(&probe).ok()?.modified().ok()?;
            Some((modified, probe))
        })
        .max()?
        .1;
    bin.is_file().then_some((bin, probe))
}

fn check_elf(bin: &Path, probe: &Path) -> Output {
    Command::new(Path::new(ROOT).join("dist/freebsd/check-elf.sh"))
        .arg(bin)
        .arg(probe)
        .output()
        .expect("cannot run dist/freebsd/check-elf.sh")
}

fn has_readelf() -> bool {
    Command::new("readelf").arg("--version").output().is_ok()
}

#[test]
fn the_freebsd_build_passes_check_elf_and_linux_files_do_not() {
    let test = "the_freebsd_build_passes_check_elf_and_linux_files_do_not";
    if !has_readelf() {
        skipped(test, "no readelf: apt-get install binutils");
        return;
    }
    let Some((bin, probe)) = freebsd_build() else {
        skipped(
            test,
            "no FreeBSD build in target/freebsd-build: run dist/freebsd-setup.sh (as root)",
        );
        return;
    };
    let ok = check_elf(&bin, &probe);
    let said = |out: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(ok.status.success(), "{}", said(&ok));
    for name in [
        "jail_get@FBSD_",
        "jail_attach@FBSD_",
        "procctl@FBSD_",
        "fexecve@FBSD_",
        "kevent@FBSD_",
    ] {
        assert!(
            said(&ok).contains(name),
            "{name} not among the checked imports:\n{}",
            said(&ok)
        );
    }

    // The Linux binary is no FreeBSD program.
    let linux = check_elf(Path::new(LINUX_BIN), &probe);
    assert_eq!(linux.status.code(), Some(1), "{}", said(&linux));
    assert!(
        said(&linux).contains("not FreeBSD's /libexec/ld-elf.so.1"),
        "{}",
        said(&linux)
    );
    assert!(
        said(&linux).contains("does not import jail_attach"),
        "{}",
        said(&linux)
    );

    // A probe whose header does not say FreeBSD is refused.
    let dir = std::env::temp_dir().join(format!("jaildaemon-freebsd-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let unbranded = dir.join("probe");
    let mut image = fs::read(&probe).unwrap();
    image[7] = 0;
    fs::write(&unbranded, image).unwrap();
    let refused = check_elf(&bin, &unbranded);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(refused.status.code(), Some(1), "{}", said(&refused));
    assert!(
        said(&refused).contains("EI_OSABI is not FreeBSD"),
        "{}",
        said(&refused)
    );
}

// ---- the FreeBSD probe's sender check, run here ----

#[allow(dead_code)]
mod sender {
    use super::abi;
    include!("../probe/freebsd_sender.rs");

    /// kill(pid, 0) as seen from inside a jail: `inside` are the jail's processes of the
    /// probe's uid, `other_uid` the jail's of another uid; every other pid is a host process
    /// (or none), which the jail does not see.
    fn jail_view(inside: &'static [i32], other_uid: &'static [i32]) -> impl Fn(i32) -> usize {
        move |pid| {
            if inside.contains(&pid) {
                0
            } else if other_uid.contains(&pid) {
                abi::EPERM
            } else {
                abi::ESRCH
            }
        }
    }

    /// Issue 20 (8): the FreeBSD probe takes a signal from kill(2), sigqueue(2) or
    /// thr_kill(2) whose sender its jail sees, even of another uid (EPERM); a host process
    /// (ESRCH from inside the jail), a sender already gone, and a signal whose code names no
    /// sender are ignored, and kill(2) is then not even asked.
    #[test]
    fn the_freebsd_probe_takes_signals_only_from_senders_inside_its_jail() {
        let view = jail_view(&[40, 41], &[42]);
        for code in [abi::SI_USER, abi::SI_QUEUE, abi::SI_LWP] {
            for pid in [40, 41, 42] {
                assert!(sent_from_inside(code, pid, &view), "{code:#x} from {pid}");
            }
            // Hostile twins: a host process (1 is the host's init, 900 a host user's), or a
            // sender reaped by now.
            for pid in [1, 900, 77_777] {
                assert!(!sent_from_inside(code, pid, &view), "{code:#x} from {pid}");
            }
        }
        // Codes that name no sender, whatever sits where the pid would be: the kernel's own
        // (SI_NOINFO 0, SI_KERNEL), a timer's (SI_TIMER), asynchronous I/O's, a message
        // queue's. kill(2) is not asked.
        let never = |pid: i32| -> usize { panic!("kill({pid}, 0) asked for a pid-less code") };
        for code in [0, 0x10003, 0x10004, 0x10005, 0x10006] {
            assert!(!sent_from_inside(code, 40, never), "{code:#x}");
        }
        // A pid that names no single process (0: the caller's group; negative: a group).
        for pid in [0, -1, -40] {
            assert!(!sent_from_inside(abi::SI_USER, pid, never), "{pid}");
        }
        // Any other failure of kill(2) is not taken as a sender inside.
        assert!(!sent_from_inside(abi::SI_USER, 40, |_| abi::EINTR));
    }
}

// ---- the verb logic both probes share, run here ----

#[allow(dead_code)]
mod shared {
    mod magic {
        include!("../probe/magic.rs");
    }
    include!("../probe/verbs.rs");

    const SEC: u64 = 1_000_000_000;

    /// The verbs a probe with this environment reads: the stack holds argc, the argv pointers,
    /// a null, the environment pointers and a null, as exec leaves it on Linux and FreeBSD.
    fn verbs_of(env: &[&str]) -> Verbs {
        // The second argv word looks like a verb: only the environment counts.
        let strings: Vec<Vec<u8>> = ["TITLE", "USR1=0"]
            .iter()
            .chain(env)
            .map(|s| s.bytes().chain([0]).collect())
            .collect();
        let mut stack: Vec<usize> = vec![2];
        stack.extend(strings[..2].iter().map(|s| s.as_ptr() as usize));
        stack.push(0);
        stack.extend(strings[2..].iter().map(|s| s.as_ptr() as usize));
        stack.push(0);
        // SAFETY: `stack` is laid out as described, its strings NUL-terminated and alive.
        unsafe { verbs_from_stack(stack.as_ptr()) }
    }

    #[test]
    fn the_verbs_and_their_windows_come_from_the_environment_alone() {
        let v = verbs_of(&["PATH=/bin", "USR2=10", "USR1=0"]);
        assert_eq!((v.listed, v.window), ([true, true], [0, 10 * SEC]));
        let v = verbs_of(&["USR1=99999"]);
        assert_eq!((v.listed, v.window), ([true, false], [3600 * SEC, 0]));
        // Negative twins: no verb variable, or look-alikes (the argv word `USR1=0` too).
        for env in [&[][..], &["USR10=5", "XUSR1=5", "USR2"], &["usr1=0"]] {
            let v = verbs_of(env);
            assert_eq!(v.listed, [false, false], "{env:?}");
        }
        // A malformed window reads as none: the verb fires on its first signal.
        let v = verbs_of(&["USR2=1s"]);
        assert_eq!((v.listed, v.window), ([false, true], [0, 0]));
    }

    #[test]
    fn a_confirmed_verb_fires_only_on_its_second_signal_within_the_window() {
        let verbs = Verbs {
            listed: [true, true],
            window: [0, 10 * SEC],
        };
        let mut w = Windows::new();
        assert_eq!(w.left(0), None, "nothing open: wait for ever");
        // USR1 has no window: it fires at once.
        assert!(w.fires(&verbs, 0, 5));
        // USR2: the first signal opens a window, the second within it fires.
        assert!(!w.fires(&verbs, 1, 100));
        assert_eq!(w.left(100 + 4 * SEC), Some(6 * SEC));
        assert_eq!(timespec(6 * SEC + 5), [6, 5]);
        assert!(w.fires(&verbs, 1, 100 + 10 * SEC - 1));
        // Negative twin: at the window's end the probe is back to plain, and a signal then
        // only opens a new window.
        let mut w = Windows::new();
        assert!(!w.fires(&verbs, 1, 0));
        assert_eq!(w.left(10 * SEC), None);
        assert!(!w.fires(&verbs, 1, 10 * SEC));
        assert!(w.fires(&verbs, 1, 11 * SEC));
        // The same when the signal comes just as the window ends, before the probe has
        // closed it (it reads the clock again after the wait).
        let mut w = Windows::new();
        assert!(!w.fires(&verbs, 1, 0));
        assert!(!w.fires(&verbs, 1, 10 * SEC));
        // An index past the two verbs has no window (and no panic path): it fires at once, as
        // a verb without a window does; the probes never pass one.
        assert!(w.fires(&verbs, 2, 0));
    }
}
