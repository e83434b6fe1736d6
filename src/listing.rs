//! `jaildaemon -l`: the daemon's probes as a table for people, or as JSON for scripts.

use crate::proto::{ProbeInfo, ProbeState, Respawn};

/// One JSON array of every probe, commands included.
pub fn json(probes: &[ProbeInfo]) -> String {
    serde_json::to_string_pretty(probes).expect("probe lists always serialize")
}

/// An aligned table, one probe per line, without the commands.
pub fn table(probes: &[ProbeInfo]) -> String {
    let mut rows = vec![
        [
            "ID", "JAIL", "TITLE", "UID:GID", "MODE", "STATE", "PID", "FIRED", "LAST",
        ]
        .map(String::from),
    ];
    for p in probes {
        let dash = || "-".to_string();
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
            {
                let mode = match p.respawn {
                    _ if p.watchdog.is_some() => "watchdog",
                    Respawn::Never => "single",
                    Respawn::AfterCommand => "-r",
                    Respawn::Immediately => "-R",
                    Respawn::Queue => "queue",
                };
                match p.verbs.len() {
                    0 => mode.to_string(),
                    1 => format!("{mode} +1 verb"),
                    n => format!("{mode} +{n} verbs"),
                }
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
            p.last.as_deref().map_or_else(dash, shorten),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Longest "last" cell in the table; `--json` has all of it.
const MAX_LAST: usize = 60;

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_LAST) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Origin;

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
            verbs: Default::default(),
            confirm: Default::default(),
            watchdog: None,
            watchdog_left_ms: None,
            selector: None,
        }
    }

    #[test]
    fn the_table_aligns_and_shows_jails_as_named_and_resolved() {
        let out = table(&[
            probe(1, "web1", Some(4144), ProbeState::Armed),
            probe(12, "lxc:db", None, ProbeState::Waiting),
            probe(13, "4145", Some(4145), ProbeState::Running),
        ]);
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
        assert_eq!(table(&[]).lines().count(), 1);
        let mut long = probe(2, "web1", None, ProbeState::Waiting);
        long.last = Some("x".repeat(200));
        let row = table(&[long]).lines().nth(1).unwrap().to_string();
        assert!(
            row.ends_with(&format!("{}…", "x".repeat(MAX_LAST))),
            "{row}"
        );
    }

    #[test]
    fn json_has_every_field() {
        let text = json(&[probe(1, "web1", Some(4144), ProbeState::Armed)]);
        let back: Vec<ProbeInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vec![probe(1, "web1", Some(4144), ProbeState::Armed)]);
    }
}
