//! `jaildaemon -l`: the daemon's probes as a table for people, or as JSON for scripts.

use std::time::Duration;

use crate::definition::{Definition, Extras, VerbCommand, durations_from_names};
use crate::proto::{ProbeInfo, ProbeState};

/// One JSON array of every probe, commands included.
pub fn json(probes: &[ProbeInfo]) -> String {
    serde_json::to_string_pretty(probes).expect("probe lists always serialize")
}

/// An aligned table, one probe per row, without the commands (`--json` has them).
///
/// Nothing is ever cut. Columns are as wide as their widest cell. When `width` (the terminal's,
/// or `COLUMNS`) is given and a row does not fit, its LAST is wrapped at blanks onto
/// continuation lines under the LAST column, or, when fewer than `MIN_LAST` columns are left
/// there, onto continuation lines indented by `CONTINUATION`; a word longer than a line is split.
/// Other columns are never wrapped: a row whose other cells alone are wider runs past the edge,
/// as `ps ww` does. Without a width (output to a pipe or file) every row is one line.
pub fn table(probes: &[ProbeInfo], width: Option<usize>) -> String {
    const HEADER: [&str; 10] = [
        "ID", "JAIL", "TITLE", "UID:GID", "MODE", "STATE", "PID", "FIRED", "SETTINGS", "LAST",
    ];
    let mut rows = vec![HEADER.map(String::from)];
    for p in probes {
        let dash = || "-".to_string();
        let def = definition(p);
        let mut settings = def.settings(false);
        if let Some(user) = &p.run_as {
            settings.insert(0, format!("run as {user}"));
        }
        rows.push([
            p.id.to_string(),
            {
                let jail = match p.jail_id {
                    Some(id) if id.to_string() != p.jail => format!("{} ({id})", p.jail),
                    _ => p.jail.clone(),
                };
                match &p.selector {
                    Some(selector) => format!("{jail} [{selector}]"),
                    None => jail,
                }
            },
            p.title.clone(),
            match (p.uid, p.gid) {
                (Some(u), Some(g)) => format!("{u}:{g}"),
                _ => dash(),
            },
            match p.verbs.len() {
                0 => def.mode().to_string(),
                1 => format!("{} +1 verb", def.mode()),
                n => format!("{} +{n} verbs", def.mode()),
            },
            match p.state {
                ProbeState::Placing => "placing",
                ProbeState::Armed => "armed",
                ProbeState::Running => "running",
                ProbeState::Spent => "spent",
                ProbeState::Retrying => "retrying",
                ProbeState::Waiting => "waiting",
                ProbeState::Refused => "refused",
                ProbeState::Cooling => "cooling",
            }
            .to_string(),
            p.pid.map_or_else(dash, |p| p.to_string()),
            p.fired.to_string(),
            if settings.is_empty() {
                dash()
            } else {
                settings.join(", ")
            },
            p.last.clone().unwrap_or_else(dash),
        ]);
    }
    let mut widths = [0usize; HEADER.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let before = &widths[..HEADER.len() - 1];
    // Where LAST starts: every other column and its two blanks.
    let indent: usize = before.iter().map(|w| w + 2).sum();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let (last, cells) = row.split_last().expect("columns");
        let mut line: String = cells
            .iter()
            .zip(before)
            .map(|(cell, w)| format!("{cell:<w$}  "))
            .collect();
        // The heading stays one line (LAST's wrapped lines go under it), and so does a row
        // without a LAST: a lone dash below it would say nothing.
        let fits =
            n == 0 || last == "-" || width.is_none_or(|w| indent + last.chars().count() <= w);
        if fits {
            line.push_str(last);
            out.push_str(line.trim_end());
            out.push('\n');
            continue;
        }
        let width = width.expect("a row only misfits a width");
        if width.saturating_sub(indent) >= MIN_LAST {
            let mut pieces = wrap(last, width - indent).into_iter();
            line.push_str(&pieces.next().unwrap_or_default());
            out.push_str(line.trim_end());
            out.push('\n');
            for piece in pieces {
                out.push_str(&format!("{:indent$}{piece}\n", ""));
            }
        } else {
            out.push_str(line.trim_end());
            out.push('\n');
            let room = width.saturating_sub(CONTINUATION.len()).max(MIN_LAST);
            for piece in wrap(last, room) {
                out.push_str(&format!("{CONTINUATION}{piece}\n"));
            }
        }
    }
    out
}

/// Fewest columns LAST is wrapped into under its heading; with less room it goes below the row.
const MIN_LAST: usize = 40;

/// What starts a continuation line of a LAST that does not fit beside its row.
const CONTINUATION: &str = "    ";

/// `text` in lines of at most `room` characters, broken at blanks; a longer word is split.
/// Only blanks at a break are dropped.
fn wrap(text: &str, room: usize) -> Vec<String> {
    let room = room.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let taken = line.chars().count();
            let needed = word.chars().count() + usize::from(taken > 0);
            if taken + needed <= room {
                if taken > 0 {
                    line.push(' ');
                }
                line.push_str(&word);
                break;
            }
            if taken > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a whole line: split it.
            let cut = word.char_indices().nth(room).map_or(word.len(), |(i, _)| i);
            lines.push(word[..cut].to_string());
            word = word[cut..].to_string();
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The listed probe's settings as the daemon keeps them, to describe them as the log does.
fn definition(p: &ProbeInfo) -> Definition {
    let secs = |s: Option<u64>| s.map(Duration::from_secs);
    Definition {
        respawn: p.respawn,
        status: p.status,
        extras: Extras {
            run_as: p.run_as.clone(),
            timeout: secs(p.timeout_secs),
            cooldown: secs(p.cooldown_secs),
            watchdog: secs(p.watchdog),
            verbs: p
                .verbs
                .iter()
                .filter_map(|(name, command)| {
                    let own = VerbCommand {
                        command: command.clone(),
                        run_as: p.verb_run_as.get(name).cloned(),
                        timeout: secs(p.verb_timeout_secs.get(name).copied()),
                    };
                    Some((crate::definition::Verb::parse(name)?, own))
                })
                .collect(),
            confirm: durations_from_names(&p.confirm),
            ..Extras::default()
        }
        .boxed(),
        ..Definition::default()
    }
}

/// The terminal's width for `table`: `COLUMNS` when set to a number, else the width of the
/// terminal on stdout; `None` when stdout is no terminal (a pipe, a file): nothing is wrapped.
pub fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(columns);
    }
    let stdout = std::io::stdout();
    if !rustix::termios::isatty(&stdout) {
        return None;
    }
    rustix::termios::tcgetwinsize(&stdout)
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|c| *c > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Origin, Respawn};

    fn probe(id: u64, jail: &str, jail_id: Option<i32>, state: ProbeState) -> ProbeInfo {
        ProbeInfo {
            id,
            jail: jail.into(),
            jail_id,
            title: "REBOOT".into(),
            command: "secret-ish command".into(),
            uid: jail_id.map(|_| 0),
            gid: jail_id.map(|_| 0),
            respawn: Respawn::AfterCommand,
            origin: Origin::Config,
            state,
            pid: (state == ProbeState::Armed).then_some(4711),
            fired: 2,
            last: Some("command ended with exit code 0 after 3ms".into()),
            run_as: None,
            timeout_secs: None,
            cooldown_secs: None,
            status: false,
            verbs: Default::default(),
            confirm: Default::default(),
            verb_run_as: Default::default(),
            verb_timeout_secs: Default::default(),
            watchdog: None,
            watchdog_left_ms: None,
            selector: None,
        }
    }

    #[test]
    fn the_table_aligns_and_shows_jails_as_named_and_resolved() {
        let out = table(
            &[
                probe(1, "web1", Some(4144), ProbeState::Armed),
                probe(12, "lxc:db", None, ProbeState::Waiting),
                probe(13, "4145", Some(4145), ProbeState::Running),
            ],
            None,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("ID  JAIL"));
        assert!(lines[1].contains("web1 (4144)") && lines[1].contains("armed"));
        assert!(lines[1].contains("4711") && lines[1].contains("0:0"));
        assert!(lines[2].contains("lxc:db") && lines[2].contains("waiting"));
        assert!(lines[3].contains("4145  ") && !lines[3].contains("(4145)"));
        let title_at = lines[0].find("TITLE").unwrap();
        assert!(
            lines
                .iter()
                .skip(1)
                .all(|l| l[title_at..].starts_with("REBOOT"))
        );
        assert!(!out.contains("secret-ish"), "commands are not in the table");
        assert_eq!(table(&[], None).lines().count(), 1);
        assert_eq!(table(&[], Some(10)).lines().count(), 1);
    }

    /// LAST, as the table shows it for the probe in its only row: the row's end and its
    /// continuation lines, blanks dropped (a wrap breaks at blanks).
    fn last_shown(out: &str) -> String {
        let start = out.lines().next().unwrap().find("LAST").unwrap();
        let mut lines = out.lines().skip(1);
        let row = lines.next().unwrap();
        let mut shown: String = row.get(start..).unwrap_or("").to_string();
        for more in lines {
            assert!(more.starts_with(' '), "a continuation line: {more:?}");
            shown += more;
        }
        shown.split_whitespace().collect()
    }

    #[test]
    fn the_table_never_cuts_last_but_wraps_it_to_the_width() {
        let mut long = probe(2, "web1", None, ProbeState::Waiting);
        let text = format!(
            "jail 'web1': no running container of that name ({}) and {} then",
            "lxc: not found; ".repeat(12),
            "y".repeat(150)
        );
        long.last = Some(text.clone());
        let whole: String = text.split_whitespace().collect();
        // No width (a pipe): one line, all of it.
        let out = table(std::slice::from_ref(&long), None);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.lines().nth(1).unwrap().ends_with(" then"), "{out}");
        for width in [250, 120, 80, 40, 5] {
            let out = table(std::slice::from_ref(&long), Some(width));
            assert!(!out.contains('…'), "{out}");
            assert_eq!(last_shown(&out), whole, "width {width}:\n{out}");
            assert!(out.lines().count() > 2, "width {width}:\n{out}");
            // Only a word longer than a line, or the row's other cells, run past the width.
            for line in out.lines().skip(2) {
                assert!(
                    line.chars().count() <= width.max(MIN_LAST + CONTINUATION.len())
                        || line.trim().len() > width.max(MIN_LAST),
                    "width {width}: {line:?}"
                );
            }
        }
        // At 120 columns, LAST wraps under its heading; at 40 it goes below the row.
        let out = table(std::slice::from_ref(&long), Some(120));
        let start = out.lines().next().unwrap().find("LAST").unwrap();
        assert!(
            out.lines()
                .skip(2)
                .all(|l| l[..start].trim().is_empty() && !l[start..].starts_with(' ')),
            "{out}"
        );
        let out = table(std::slice::from_ref(&long), Some(40));
        assert!(
            !out.lines().nth(1).unwrap().contains("jail 'web1'"),
            "{out}"
        );
        assert!(out.lines().nth(2).unwrap().starts_with("    jail"), "{out}");
        // The twin: a row that fits is one line, as without a width.
        let short = probe(3, "web1", None, ProbeState::Waiting);
        assert_eq!(
            table(std::slice::from_ref(&short), Some(250)),
            table(std::slice::from_ref(&short), None)
        );
    }

    #[test]
    fn settings_are_in_the_table_and_a_plain_probe_has_none() {
        let mut every = probe(4, "web1", Some(4144), ProbeState::Armed);
        every.run_as = Some("nobody".into());
        every.timeout_secs = Some(5);
        every.cooldown_secs = Some(90);
        every.status = true;
        every.verbs.insert("USR1".into(), "secret-ish verb".into());
        every.confirm.insert("USR1".into(), 10);
        let out = table(
            &[every, probe(5, "web1", Some(4144), ProbeState::Armed)],
            None,
        );
        let header = out.lines().next().unwrap();
        let at = header.find("SETTINGS").unwrap();
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert!(
            rows[0][at..].starts_with(
                "run as nobody, timeout 5s, cooldown 1m30s, verb USR1 (confirm within 10s), status  "
            ),
            "{out}"
        );
        assert!(rows[0].contains("-r +1 verb"), "{out}");
        assert!(rows[1][at..].starts_with("-  "), "{out}");
        // A verb's own host user and timeout are named with the verb; the twin, USR1 above,
        // has none.
        let mut own = probe(7, "web1", Some(4144), ProbeState::Armed);
        own.run_as = Some("nobody".into());
        own.verbs
            .insert("USR2".into(), "docker restart web1".into());
        own.verb_run_as.insert("USR2".into(), "root".into());
        own.verb_timeout_secs.insert("USR2".into(), 30);
        let out = table(&[own], None);
        assert!(
            out.contains("run as nobody, verb USR2 (run as root, timeout 30s)  "),
            "{out}"
        );
        assert!(
            !out.contains("secret-ish"),
            "commands are not in the table: {out}"
        );
        let mut watchdog = probe(6, "web1", None, ProbeState::Waiting);
        watchdog.respawn = Respawn::Never;
        watchdog.watchdog = Some(60);
        let out = table(&[watchdog], None);
        assert!(
            out.contains("watchdog  ") && out.contains("watchdog 1m"),
            "{out}"
        );
    }

    #[test]
    fn wrapping_breaks_at_blanks_and_splits_only_words_longer_than_a_line() {
        assert_eq!(wrap("ab cd ef", 5), ["ab cd", "ef"]);
        assert_eq!(wrap("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert_eq!(wrap("", 3), [""]);
        assert_eq!(wrap("ab", 0), ["a", "b"]);
    }

    #[test]
    fn json_has_every_field() {
        let text = json(&[probe(1, "web1", Some(4144), ProbeState::Armed)]);
        let back: Vec<ProbeInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![probe(1, "web1", Some(4144), ProbeState::Armed)]);
        // Defaults are written too: a verb's own user and timeout as empty maps.
        assert!(text.contains("\"verb_run_as\": {}"), "{text}");
        assert!(text.contains("\"verb_timeout_secs\": {}"), "{text}");
        let mut own = probe(2, "web1", None, ProbeState::Waiting);
        own.verbs.insert("USR2".into(), "x".into());
        own.verb_run_as.insert("USR2".into(), "root".into());
        own.verb_timeout_secs.insert("USR2".into(), 30);
        let text = json(std::slice::from_ref(&own));
        let back: Vec<ProbeInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![own]);
    }
}
