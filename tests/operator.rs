//! What an operator sees (issue 22): `-l` and `-l --json` with every setting of a probe, a table
//! that never cuts what it knows, and log lines that say what will happen. The real binary, its
//! real socket and real namespace jails; each positive check has a twin that must not show.

mod util;

use std::process::Command;
use std::time::Duration;

use jaildaemon::proto::ProbeState;
use util::*;

const LONG: Duration = Duration::from_secs(10);

/// `-l` as an administrator's terminal shows it: `COLUMNS` as the shell sets it, or none (a
/// pipe).
fn table(daemon: &Daemon, columns: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.arg("-l").arg("-f").arg(&daemon.socket);
    match columns {
        Some(c) => cmd.env("COLUMNS", c),
        None => cmd.env_remove("COLUMNS"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The row of the probe titled `title`, with its continuation lines.
fn row_of(table: &str, title: &str) -> Vec<String> {
    let mut lines = table.lines().skip(1).peekable();
    while let Some(line) = lines.next() {
        if line.split_whitespace().nth(2) == Some(title)
            || line.split("  ").any(|cell| cell.trim() == title)
        {
            let mut row = vec![line.to_string()];
            while let Some(more) = lines.next_if(|l| l.starts_with(' ')) {
                row.push(more.to_string());
            }
            return row;
        }
    }
    panic!("no row for {title} in\n{table}")
}

/// The SETTINGS cell of `row`: from under its heading to the blanks before LAST.
fn settings_cell(table: &str, row: &[String]) -> String {
    let header = table.lines().next().unwrap();
    let (from, to) = (
        header.find("SETTINGS").unwrap(),
        header.find("LAST").unwrap(),
    );
    let line = &row[0];
    line[from..to.min(line.len())].trim().to_string()
}

#[test]
fn every_setting_is_in_the_json_the_table_and_the_armed_log_line() {
    let Some(World {
        dir: _dir,
        fired: _,
        daemon,
        jail,
    }) = World::new("every_setting_is_in_the_json_the_table_and_the_armed_log_line")
    else {
        return;
    };
    let spec = jail.spec();
    daemon.arm(&[
        "-c",
        "true",
        "-j",
        &spec,
        "-t",
        "EVERYTHING",
        "-r",
        "--timeout",
        "5s",
        "--run-as",
        "nobody",
        "--cooldown",
        "90s",
        "--status",
        "--verb",
        "USR1=echo verb-one",
        "--confirm",
        "USR1=10s",
    ]);
    daemon.arm(&[
        "-c",
        "true",
        "-j",
        &spec,
        "-t",
        "WATCHED",
        "--watchdog",
        "60s",
    ]);
    daemon.arm(&["-c", "true", "-j", &spec, "-t", "QUEUED", "--queue"]);
    daemon.arm(&["-c", "true", "-j", &spec, "-t", "PLAIN"]);

    // JSON: every setting as a field of its own.
    let probes = list(&daemon);
    let every = by_title(&probes, "EVERYTHING");
    assert_eq!(every.run_as.as_deref(), Some("nobody"), "{every:?}");
    assert_eq!(every.timeout_secs, Some(5), "{every:?}");
    assert_eq!(every.cooldown_secs, Some(90), "{every:?}");
    assert!(every.status, "{every:?}");
    assert_eq!(every.verbs["USR1"], "echo verb-one");
    assert_eq!(every.confirm["USR1"], 10);
    assert_eq!(by_title(&probes, "WATCHED").watchdog, Some(60));
    assert_eq!(
        by_title(&probes, "QUEUED").respawn,
        jaildaemon::proto::Respawn::Queue
    );
    // The twin: a plain probe shows the defaults, and nothing it was not given.
    let plain = by_title(&probes, "PLAIN");
    assert_eq!(
        (
            &plain.run_as,
            plain.timeout_secs,
            plain.cooldown_secs,
            plain.status,
            plain.verbs.len(),
            plain.confirm.len(),
            plain.watchdog
        ),
        (&None, None, None, false, 0, 0, None),
        "{plain:?}"
    );
    // Every field is in the text a script reads, a default one too.
    let out = daemon.util(&["-l", "--json"]);
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let raw_plain = raw
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "PLAIN")
        .unwrap();
    for field in [
        "run_as",
        "timeout_secs",
        "cooldown_secs",
        "status",
        "verbs",
        "confirm",
        "verb_run_as",
        "verb_timeout_secs",
        "watchdog",
    ] {
        assert!(
            raw_plain.get(field).is_some(),
            "{field} missing: {raw_plain}"
        );
    }

    // The table: the settings in words, without the commands; at any width.
    for columns in [None, Some("250"), Some("80")] {
        let shown = table(&daemon, columns);
        assert!(!shown.contains('…'), "{shown}");
        assert!(
            !shown.contains("verb-one"),
            "a command in the table: {shown}"
        );
        let every = row_of(&shown, "EVERYTHING");
        assert_eq!(
            settings_cell(&shown, &every),
            "run as nobody, timeout 5s, cooldown 1m30s, verb USR1 (confirm within 10s), status",
            "{columns:?}:\n{shown}"
        );
        assert!(every[0].contains("-r +1 verb"), "{shown}");
        let watched = row_of(&shown, "WATCHED");
        assert_eq!(settings_cell(&shown, &watched), "watchdog 1m", "{shown}");
        assert!(watched[0].contains(" watchdog "), "{shown}");
        assert!(row_of(&shown, "QUEUED")[0].contains(" queue "), "{shown}");
        assert_eq!(
            settings_cell(&shown, &row_of(&shown, "PLAIN")),
            "-",
            "{shown}"
        );
    }

    // The log: the jail's uid apart from the host user the command runs as, and every setting,
    // the verbs' commands included.
    let log = daemon.log_text();
    let armed = |title: &str| {
        log.lines()
            .find(|l| l.contains(&format!("'{title}') armed")))
            .unwrap_or_else(|| panic!("{title} not armed in\n{log}"))
            .to_string()
    };
    let line = armed("EVERYTHING");
    assert!(
        line.contains(
            "armed: mode -r, in the jail as uid 0 gid 0, host pid "
        ) && line.ends_with(
            "; the command runs on the host as nobody; timeout 5s, cooldown 1m30s, verb USR1 runs 'echo verb-one' (confirm within 10s), status"
        ),
        "{line}"
    );
    assert!(armed("WATCHED").contains("armed: mode watchdog,"), "{log}");
    assert!(armed("WATCHED").ends_with("; watchdog 1m"), "{log}");
    assert!(armed("QUEUED").contains("armed: mode queue,"), "{log}");
    assert!(
        armed("PLAIN").contains("armed: mode single,")
            && armed("PLAIN").ends_with("the command runs on the host as root; no other settings"),
        "{log}"
    );
}

#[test]
fn a_long_last_is_never_cut_at_any_width() {
    let test = "a_long_last_is_never_cut_at_any_width";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    // A declared probe of a container that does not exist waits for it; its LAST says why, and
    // names it.
    let name = format!("lxc:jd-op-{}-{}", std::process::id(), "n".repeat(120));
    let config = dir.path("jaildaemon.conf");
    std::fs::write(
        &config,
        format!("[[probe]]\njail = \"{name}\"\ntitle = \"FARAWAY\"\ncommand = \"true\"\n"),
    )
    .unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", config.to_str().unwrap()]);
    let mut last = String::new();
    assert!(
        wait_for(LONG, || {
            let probe = by_title(&list(&daemon), "FARAWAY").clone();
            last = probe.last.unwrap_or_default();
            probe.state == ProbeState::Waiting && !last.is_empty()
        }),
        "{}",
        daemon.log_text()
    );
    assert!(last.len() > 150, "{last}");
    let whole: String = last.split_whitespace().collect();
    for columns in [None, Some("250"), Some("80")] {
        let shown = table(&daemon, columns);
        let row = row_of(&shown, "FARAWAY");
        assert!(!shown.contains('…'), "{shown}");
        let start = shown.lines().next().unwrap().find("LAST").unwrap();
        let mut text = row[0].get(start..).unwrap_or("").to_string();
        for more in &row[1..] {
            text += more;
        }
        let text: String = text.split_whitespace().collect();
        assert_eq!(text, whole, "{columns:?}:\n{shown}");
        match columns {
            None => assert_eq!(row.len(), 1, "a pipe gets one line per probe:\n{shown}"),
            Some(_) => assert!(row.len() > 1, "{columns:?}: not wrapped:\n{shown}"),
        }
    }
}

#[test]
fn foreground_log_lines_carry_the_time_unless_the_journal_reads_them() {
    let test = "foreground_log_lines_carry_the_time_unless_the_journal_reads_them";
    if !root_or_skip(test) {
        return;
    }
    let stamped = |line: &str| {
        // 2026-12-05T15:13:25.123Z jaildaemon: …
        let b = line.as_bytes();
        b.len() > 25
            && line[..4].bytes().all(|c| c.is_ascii_digit())
            && b[4] == b'-'
            && b[10] == b'T'
            && b[19] == b'.'
            && b[23] == b'Z'
            && line[24..].starts_with(" jaildaemon: ")
    };
    let dir = TempDir::new();
    let daemon = Daemon::start(&dir);
    let log = daemon.log_text();
    let listening = log.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(stamped(listening), "{log}");
    assert!(log.lines().all(stamped), "{log}");
    drop(daemon);
    // The twin: under systemd, stderr is the journal, which stamps lines itself.
    let dir = TempDir::new();
    let daemon = Daemon::start_with(&dir, &["env", "JOURNAL_STREAM=8:12345"]);
    let log = daemon.log_text();
    assert!(log.lines().all(|l| l.starts_with("jaildaemon: ")), "{log}");
}

#[test]
fn a_fed_watchdog_is_counted_not_logged_as_re_armed() {
    let Some(World {
        dir: _dir,
        fired,
        daemon,
        jail,
    }) = World::new("a_fed_watchdog_is_counted_not_logged_as_re_armed")
    else {
        return;
    };
    let spec = jail.spec();
    daemon.arm(&[
        "-c",
        "true",
        "-j",
        &spec,
        "-t",
        "FEDDOG",
        "--watchdog",
        "60s",
    ]);
    for fed in 1..=3 {
        assert!(wait_for(LONG, || jail.probes("FEDDOG").len() == 1));
        assert!(jail.pkill(0, "HUP", "FEDDOG"));
        assert!(
            wait_for(LONG, || by_title(&list(&daemon), "FEDDOG")
                .last
                .as_deref()
                .unwrap_or("")
                .contains(&format!("fed {fed} time(s)"))),
            "{}",
            daemon.log_text()
        );
    }
    assert!(wait_for(LONG, || jail.probes("FEDDOG").len() == 1));
    // A watchdog that has run its command once (starved for its 2 s) and is fed afterwards:
    // its feeds are not logged either, though it has fired.
    let starved = format!("echo starved >> {}", fired.display());
    daemon.arm(&[
        "-c",
        &starved,
        "-j",
        &spec,
        "-t",
        "STARVED",
        "--watchdog",
        "2s",
    ]);
    assert!(
        wait_for(LONG, || lines(&fired) == 1),
        "{}",
        daemon.log_text()
    );
    for _ in 0..3 {
        let before = jail.probes("STARVED");
        assert_eq!(before.len(), 1, "{}", daemon.log_text());
        assert!(jail.pkill(0, "HUP", "STARVED"));
        assert!(
            wait_for(LONG, || {
                let now = jail.probes("STARVED");
                now.len() == 1 && now != before
            }),
            "{}",
            daemon.log_text()
        );
    }
    let log = daemon.log_text();
    assert!(!log.contains("re-armed"), "{log}");
    assert_eq!(log.matches("'FEDDOG') armed").count(), 1, "{log}");
    assert_eq!(log.matches("'STARVED') armed").count(), 1, "{log}");
    // The twin: a -r probe that fired is re-armed, and says so.
    daemon.arm(&["-c", "true", "-j", &spec, "-t", "REARMED", "-r"]);
    assert!(wait_for(LONG, || jail.probes("REARMED").len() == 1));
    assert!(jail.pkill(0, "HUP", "REARMED"));
    assert!(
        wait_for(LONG, || daemon
            .log_text()
            .contains("'REARMED') re-armed, host pid")),
        "{}",
        daemon.log_text()
    );
}

/// Starts a daemon on `config`, which it must refuse: exit 78, and its stderr.
fn refused_config(dir: &TempDir, config: &str) -> String {
    let path = dir.path("refused.conf");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["-D", "-F", "-C"])
        .arg(&path)
        .arg("-f")
        .arg(dir.path("refused.sock"))
        .arg("-p")
        .arg(dir.path("refused.pid"))
        .arg("-S")
        .arg(dir.path("refused.state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    stderr
}

#[test]
fn a_bad_configuration_value_is_refused_at_its_own_line() {
    if !root_or_skip("a_bad_configuration_value_is_refused_at_its_own_line") {
        return;
    }
    let dir = TempDir::new();
    let probe = "[[probe]]\njail = \"1\"\ncommand = \"true\"\nrespawn = \"after_command\"\n";
    // The bad cooldown on line 15, below its header on line 8.
    let text = format!("# web\n{probe}\n# db\n{probe}title = \"DB\"\n\n\ncooldown = \"10 sec\"\n");
    let stderr = refused_config(&dir, &text);
    assert!(
        stderr.contains("line 15: cooldown: '10 sec' is not a duration; write it as 30s, 5m or 1h"),
        "{stderr}"
    );
    // One bracket where two were meant: the advice, not serde's words.
    let stderr = refused_config(
        &dir,
        &format!("# web\n{}", probe.replace("[[probe]]", "[probe]")),
    );
    assert!(
        stderr.contains("line 2: [probe] declares one table")
            && stderr.contains("write [[probe]] (two brackets)")
            && !stderr.contains("expected a sequence"),
        "{stderr}"
    );
    // A verb's table (issue 22): an unknown key, and a bad timeout, each at its own line.
    let stderr = refused_config(
        &dir,
        &format!("{probe}\nverbs = {{ USR2 = {{ command = \"x\", colour = \"red\" }} }}\n"),
    );
    assert!(
        stderr.contains(
            "line 6: unknown key 'colour' in a verb's table; it takes command, run_as and timeout"
        ),
        "{stderr}"
    );
    let stderr = refused_config(
        &dir,
        &format!("{probe}[probe.verbs.USR1]\ncommand = \"x\"\n# how long\ntimeout = \"soon\"\n"),
    );
    assert!(
        stderr.contains("line 8: verb USR1: timeout: 'soon' is not a duration"),
        "{stderr}"
    );
    // The twin: the same file with a good value starts (and is stopped at once).
    let good = dir.path("good.conf");
    std::fs::write(&good, text.replace("10 sec", "10s")).unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", good.to_str().unwrap()]);
    assert!(
        !daemon.log_text().contains("line 15"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn a_missing_metrics_directory_is_named_once_and_its_return_logged() {
    if !root_or_skip("a_missing_metrics_directory_is_named_once_and_its_return_logged") {
        return;
    }
    let dir = TempDir::new();
    let missing = dir.path("textfile");
    let metrics = missing.join("jaildaemon.prom");
    let daemon = Daemon::start_with_args(&dir, &["-M", metrics.to_str().unwrap()]);
    let named = format!("directory {} does not exist", missing.display());
    assert!(
        wait_for(LONG, || daemon.log_text().contains(&named)),
        "{}",
        daemon.log_text()
    );
    // Tried every second, but said once.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        daemon.log_text().matches(&named).count(),
        1,
        "{}",
        daemon.log_text()
    );
    assert!(!metrics.exists());
    // The directory comes back: the file is written, with nothing else changing, and the log
    // says so.
    std::fs::create_dir(&missing).unwrap();
    assert!(
        wait_for(LONG, || metrics.exists()
            && daemon.log_text().contains("written again")),
        "{}",
        daemon.log_text()
    );
    assert!(
        std::fs::read_to_string(&metrics)
            .unwrap()
            .contains("jaildaemon_probes")
    );
    // The twin: a directory that is there is never named.
    let dir = TempDir::new();
    let metrics = dir.path("jaildaemon.prom");
    let daemon = Daemon::start_with_args(&dir, &["-M", metrics.to_str().unwrap()]);
    assert!(wait_for(LONG, || metrics.exists()), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        !log.contains("does not exist") && !log.contains("written again"),
        "{log}"
    );
}
