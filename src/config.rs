//! The configuration file: probes declared the way the utility arms them, in TOML.
//!
//! ```toml
//! [[probe]]
//! jail = "web1"                      # required: PID, container or jail name, manager:name
//! command = "lxc-stop -r -n web1"    # required: run with /bin/sh -c on the host
//! title = "REBOOT"                   # default "jaildaemon-probe"
//! respawn = "after_command"          # "never" (default), "after_command" (-r), "immediately" (-R),
//!                                    # "queue" (--queue)
//! user = "www"                       # default root; inside the jail
//! group = "www"                      # default the user's group
//! run_as = "backup:operator"         # the host user[:group] the command runs as (default root)
//! timeout = "30s"                    # a command still running then is stopped
//! cooldown = "60s"                   # not single shot: back no sooner than this after a fire
//! verbs = { USR1 = "lxc-stop -n web1" } # SIGUSR1 (or USR2) runs this instead of the command
//! # or a table: the verb's own host user and timeout replace run_as and timeout for its runs
//! # verbs = { USR2 = { command = "lxc-stop -n web1", run_as = "root", timeout = "30s" } }
//! confirm = { USR1 = "10s" }         # that verb runs only on its second signal within 10 s
//! watchdog = "60s"                   # the command runs when no signal came for 60 s
//! status = true                      # with after_command: the command line shows the last result
//! ```
//!
//! Besides probes, the file may name the daemon's metrics file, before the first table:
//! `metrics = "/var/lib/node_exporter/textfile/jaildaemon.prom"` (`-M` wins over it).
//!
//! A probe is identified by its jail and title: two declarations with the same pair are an
//! error. A file is accepted or refused as a whole, with the line and the reason.

use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::definition::Definition;
use crate::error::{Error, Kind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Each `[[probe]]` table is a `Definition` in its serde form, with where it starts.
    #[serde(default)]
    probe: Vec<toml::Spanned<Definition>>,
    metrics: Option<String>,
}

/// What a configuration file declares.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub probes: Vec<Definition>,
    /// Where the metrics file goes (`metrics = "PATH"`), unless `-M` names it.
    pub metrics: Option<std::path::PathBuf>,
}

/// Reads the file at `path`. A missing file declares nothing unless it was named with `-C`.
pub fn load(path: &Path, named: bool) -> Result<Loaded, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_all(&text).map_err(|e| {
            Error::new(
                Kind::Config,
                format!("config {}: {}", path.display(), e.message),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(Loaded::default()),
        Err(e) => Err(Error::new(
            Kind::Config,
            format!("config {}: {e}", path.display()),
        )),
    }
}

/// Parses a whole file's probes; an error names the line (1-based) and what is wrong there.
pub fn parse(text: &str) -> Result<Vec<Definition>, Error> {
    parse_all(text).map(|loaded| loaded.probes)
}

/// Parses a whole file: its probes and its metrics path.
pub fn parse_all(text: &str) -> Result<Loaded, Error> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let refuse = |line: usize, why: String| Error::new(Kind::Config, format!("line {line}: {why}"));
    let file: File = toml::from_str(text).map_err(|e| {
        if let Some(line) = single_bracket_probe(text) {
            return refuse(
                line,
                "[probe] declares one table named probe; write [[probe]] (two brackets) before each probe"
                    .into(),
            );
        }
        let message = e.message().trim();
        let Some(span) = e.span() else {
            return refuse(1, message.to_string());
        };
        // A bad value is named as `Definition::validate` names what it refuses (`cooldown:`,
        // `verb USR2: timeout:`), unless the message names it already.
        let why = match DeTable::parse(text).ok().and_then(|tree| label_at(&tree, span.start)) {
            Some(label) if !message.starts_with("verb ") => format!("{label}: {message}"),
            _ => message.to_string(),
        };
        refuse(line_of(span.start), why)
    })?;
    let mut probes: Vec<Definition> = Vec::with_capacity(file.probe.len());
    let mut seen = std::collections::BTreeSet::new();
    for (n, spanned) in file.probe.into_iter().enumerate() {
        let header = spanned.span().start;
        let def = spanned.into_inner();
        // The line of what `message` is about in this probe, or of its header. The file is
        // parsed again only for a refusal: finding lines for every probe of a long file is slow.
        let line = |message: &str| {
            let path = path_of(message);
            let tree = DeTable::parse(text).ok();
            let at = tree.as_ref().and_then(|tree| {
                let probe = tree.get_ref().get("probe")?.get_ref().get(n)?;
                offset_of(probe, &path)
            });
            line_of(at.unwrap_or(header))
        };
        if def.persist {
            return Err(refuse(
                line("persist:"),
                "persist: a declared probe is kept by this file already; -P is for probes armed with -c"
                    .into(),
            ));
        }
        def.validate()
            .map_err(|e| refuse(line(&e.message), e.message))?;
        if crate::selector::is_selector(&def.jail) {
            crate::selector::parse(&def.jail).map_err(|why| refuse(line("the jail"), why))?;
        }
        if !seen.insert((def.jail.clone(), def.title.clone())) {
            return Err(refuse(
                line_of(header),
                format!(
                    "a second probe titled '{}' in jail '{}'; jail and title name a probe",
                    def.title, def.jail
                ),
            ));
        }
        probes.push(def);
    }
    let metrics = match file.metrics {
        Some(path) if !path.starts_with('/') => {
            let tree = DeTable::parse(text).ok();
            let at = tree.as_ref().and_then(|tree| tree.get_ref().get("metrics"));
            return Err(refuse(
                at.map_or(1, |value| line_of(value.span().start)),
                format!("metrics: '{path}' is not an absolute path"),
            ));
        }
        other => other.map(std::path::PathBuf::from),
    };
    Ok(Loaded { probes, metrics })
}

/// The keys, within a probe's table, of what a refusal of `Definition::validate` is about,
/// by the words its message starts with; none (the probe's header) when it names nothing.
fn path_of(message: &str) -> Vec<&str> {
    const KEYS: [(&str, &str); 11] = [
        ("cooldown:", "cooldown"),
        ("timeout:", "timeout"),
        ("watchdog:", "watchdog"),
        ("status:", "status"),
        ("run_as:", "run_as"),
        ("persist:", "persist"),
        ("the command", "command"),
        ("the jail", "jail"),
        ("the title", "title"),
        ("verb '", "verbs"),
        ("verbs:", "verbs"),
    ];
    // `verb USR2: timeout: …`, `verb USR2: the command …`, `confirm USR1: …`.
    for (prefix, key) in [("verb ", "verbs"), ("confirm ", "confirm")] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((name, rest)) = rest.split_once(": ")
            && !name.contains(' ')
        {
            let mut path = vec![key, name];
            if let Some((own, _)) = rest.split_once(": ")
                && ["run_as", "timeout"].contains(&own)
            {
                path.push(own);
            }
            return path;
        }
    }
    KEYS.iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or_else(Vec::new, |(_, key)| vec![*key])
}

/// Where the value at `path` stands within `table` (a probe's), or the deepest part of the
/// path there is; `None` when not even its first key is there.
fn offset_of(table: &toml::Spanned<DeValue<'_>>, path: &[&str]) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    let value = table.get_ref().get(*first)?;
    // An implicit table (the `verbs` of `verbs.USR1 = …`) may have no place of its own.
    let own = Some(value.span().start).filter(|_| !value.span().is_empty());
    offset_of(value, rest).or(own)
}

/// What the value at `offset` is, named as `Definition::validate` names it: `cooldown`,
/// `verb USR2`, `verb USR2: timeout`, `confirm USR1`; `None` outside every probe's keys, and
/// for a table (a verb's, say), whose refusal says what in it is wrong.
fn label_at(tree: &toml::Spanned<DeTable<'_>>, offset: usize) -> Option<String> {
    let probes = tree.get_ref().get("probe")?.get_ref().as_array()?;
    let (path, table) = probes
        .iter()
        .find_map(|probe| path_at(probe.get_ref().as_table()?, offset))?;
    if table {
        return None;
    }
    Some(match path.as_slice() {
        [] => return None,
        [key] => key.clone(),
        [verbs, verb] if verbs == "verbs" => format!("verb {verb}"),
        [verbs, verb, own, ..] if verbs == "verbs" => format!("verb {verb}: {own}"),
        [key, name, ..] => format!("{key} {name}"),
    })
}

/// The keys down to the value at `offset` in `table`, and whether that value is a table. A
/// table's own span may be only its header (`[[probe]]`, `[probe.verbs.USR1]`), so tables are
/// looked into whatever their span.
fn path_at(table: &DeTable<'_>, offset: usize) -> Option<(Vec<String>, bool)> {
    table.iter().find_map(|(key, value)| {
        let inner_table = value.get_ref().as_table();
        let inner = inner_table.and_then(|inner| path_at(inner, offset));
        let here = key.span().contains(&offset) || value.span().contains(&offset);
        let (mut path, is_table) = match inner {
            Some(found) => found,
            None if here => (Vec::new(), inner_table.is_some()),
            None => return None,
        };
        path.insert(0, key.get_ref().to_string());
        Some((path, is_table))
    })
}

/// The line of a `[probe]` header (one table) where `[[probe]]` (one of many) was meant.
fn single_bracket_probe(text: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            line.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .is_some_and(|inner| !inner.starts_with('[') && inner.trim() == "probe")
        })
        .map(|n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{DEFAULT_TITLE, Respawn};

    #[test]
    fn a_commented_file_declares_its_probes() {
        let probes = parse(
            "# reboot web1 from inside\n\
             [[probe]]\n\
             jail = \"lxc:web1\"\n\
             command = \"lxc-stop -r -n web1\"\n\
             title = \"REBOOT\"\n\
             respawn = \"after_command\"\n\
             cooldown = \"1m\"\n\
             \n\
             [[probe]]\n\
             jail = \"4144\"\n\
             command = \"true\"\n\
             user = \"www\"\n",
        )
        .unwrap();
        assert_eq!(probes.len(), 2);
        assert_eq!(probes[0].jail, "lxc:web1");
        assert_eq!(probes[0].respawn, Respawn::AfterCommand);
        assert_eq!(probes[1].title, DEFAULT_TITLE);
        assert_eq!(probes[1].respawn, Respawn::Never);
        assert_eq!(probes[1].user.as_deref(), Some("www"));
        assert_eq!(probes[0].cooldown, Some(std::time::Duration::from_secs(60)));
        assert_eq!(probes[1].cooldown, None);
        let queued =
            parse("[[probe]]\njail = \"1\"\ncommand = \"x\"\nrespawn = \"queue\"\n").unwrap();
        assert_eq!(queued[0].respawn, Respawn::Queue);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# nothing yet\n").unwrap().is_empty());
        let verbal = parse(
            "[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { USR1 = \"one\", USR2 = \"two\" }\n",
        )
        .unwrap();
        assert_eq!(
            verbal[0].verbs,
            [
                (crate::definition::Verb::Usr1, "one".into()),
                (crate::definition::Verb::Usr2, "two".into())
            ]
            .into()
        );
        assert!(queued[0].verbs.is_empty());
        let watched =
            parse("[[probe]]\njail = \"1\"\ncommand = \"x\"\nwatchdog = \"1m\"\n").unwrap();
        assert_eq!(
            watched[0].watchdog,
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(queued[0].watchdog, None);
        let shown = parse(
            "[[probe]]\njail = \"1\"\ncommand = \"x\"\nrespawn = \"after_command\"\nstatus = true\n",
        )
        .unwrap();
        assert!(shown[0].status);
        assert!(!queued[0].status);
        let confirmed = parse(
            "[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { USR2 = \"two\" }\nconfirm = { USR2 = \"10s\" }\n",
        )
        .unwrap();
        assert_eq!(
            confirmed[0].confirm,
            [(
                crate::definition::Verb::Usr2,
                std::time::Duration::from_secs(10)
            )]
            .into()
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line_and_reason() {
        for (text, line, why) in [
            ("[[probe]]\njail = \"1\"\n", 1, "command"),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\ncolour = \"red\"\n",
                4,
                "colour",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nrespawn = \"often\"\n",
                4,
                "often",
            ),
            ("[[probe]]\njail = 1\ncommand = \"x\"\n", 2, "string"),
            ("\n\n[[probe]\n", 3, ""),
            ("[[probe]]\njail = \"1\"\ncommand = \"\"\n", 3, "empty"),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\n\n[[probe]]\njail = \"1\"\ncommand = \"y\"\n",
                5,
                "second probe titled",
            ),
            ("[[probes]]\njail = \"1\"\n", 1, "probes"),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nrespawn = \"immediately\"\ncooldown = \"1x\"\n",
                5,
                "cooldown: '1x' is not a duration",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nrespawn = \"immediately\"\ncooldown = \"25h\"\n",
                5,
                "cooldown: 25h is out of range",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\ncooldown = \"60s\"\n",
                4,
                "single-shot",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\ntimeout = \"30\"\n",
                4,
                "timeout: '30' is not a duration",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\ntimeout = \"0s\"\n",
                4,
                "timeout: 0s is out of range",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { TERM = \"y\" }\n",
                4,
                "verb 'TERM' is not a verb signal",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { USR1 = \" \" }\n",
                4,
                "verb USR1: the command is empty",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nconfirm = { USR1 = \"10s\" }\n",
                4,
                "confirm USR1: not a verb of this probe",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nrespawn = \"immediately\"\nwatchdog = \"1m\"\n",
                5,
                "watchdog: a watchdog probe comes back",
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { USR1 = \"y\" }\nconfirm = { USR1 = \"ten\" }\n",
                5,
                "confirm USR1: 'ten' is not a duration",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.kind, Kind::Config, "{text}");
            assert!(
                err.message.starts_with(&format!("line {line}:")) && err.message.contains(why),
                "{text:?}: {}",
                err.message
            );
        }
    }

    /// Issue 22: a bad value is reported at its own line, not at its probe's header, in
    /// whichever probe of a longer file it stands, and comments or blank lines do not shift it.
    #[test]
    fn a_bad_value_is_refused_at_its_own_line() {
        let file = |bad: &str| {
            format!(
                "# two probes\n\
                 [[probe]]\n\
                 jail = \"1\"\n\
                 command = \"x\"\n\
                 \n\
                 [[probe]]   # the second\n\
                 jail = \"2\"\n\
                 command = \"y\"\n\
                 respawn = \"after_command\"\n\
                 # timeout is next\n\
                 timeout = \"5s\"\n\
                 {bad}\n\
                 title = \"LAST\"\n"
            )
        };
        for (bad, why) in [
            (
                "cooldown = \"10 sec\"",
                "cooldown: '10 sec' is not a duration",
            ),
            ("  cooldown   = \"25h\"", "cooldown: 25h is out of range"),
            ("watchdog = \"5m\"", "watchdog: a watchdog probe comes back"),
            ("verbs = { HUP = \"z\" }", "verb 'HUP' is not a verb signal"),
            ("verbs.USR1 = \"\"", "verb USR1: the command is empty"),
            ("confirm = { USR2 = \"5s\" }", "confirm USR2: not a verb"),
            (
                "confirm = { USR2 = \"soon\" }",
                "confirm USR2: 'soon' is not a duration",
            ),
            (
                "run_as = \"a:b:c\"",
                "run_as: 'a:b:c' is not user or user:group",
            ),
        ] {
            let err = parse(&file(bad)).unwrap_err();
            assert!(
                err.message.starts_with("line 12: ") && err.message.contains(why),
                "{bad}: {}",
                err.message
            );
        }
        // The twin: the same file with a good value there parses, and a value the first probe
        // lacks is not looked for in the second's lines.
        assert_eq!(parse(&file("cooldown = \"10s\"")).unwrap().len(), 2);
        let err = parse("[[probe]]\njail = \"1\"\ncommand = \"x\"\ncooldown = \"1m\"\n\n[[probe]]\njail = \"2\"\ncommand = \"y\"\nrespawn = \"queue\"\ncooldown = \"1m\"\n").unwrap_err();
        assert!(
            err.message.starts_with("line 4: cooldown: a single-shot"),
            "{}",
            err.message
        );
        let err = parse_all("# where\n\nmetrics = \"jd.prom\"\n").unwrap_err();
        assert!(
            err.message.starts_with("line 3: metrics:"),
            "{}",
            err.message
        );
    }

    /// Issue 22: a verb is its command alone, or a table that also gives it a host user and a
    /// timeout of its own, inline or as a table of its own.
    #[test]
    fn a_verb_is_a_command_or_a_table_with_its_own_user_and_timeout() {
        use crate::definition::Verb;
        use std::time::Duration;
        let probes = parse(
            "[[probe]]\n\
             jail = \"web\"\n\
             command = \"true\"\n\
             run_as = \"nobody\"\n\
             timeout = \"5m\"\n\
             verbs = { USR1 = \"echo one\", USR2 = { command = \"docker restart web\", run_as = \"root\", timeout = \"30s\" } }\n\
             \n\
             [[probe]]\n\
             jail = \"db\"\n\
             command = \"true\"\n\
             [probe.verbs.USR1]\n\
             command = \"echo db\"\n\
             timeout = \"1h\"\n",
        )
        .unwrap();
        let web = &probes[0];
        assert_eq!(web.verbs[&Verb::Usr1].command, "echo one");
        assert_eq!(web.verbs[&Verb::Usr2].command, "docker restart web");
        assert_eq!(
            web.verb_run_as(),
            [("USR2".to_string(), "root".to_string())].into()
        );
        assert_eq!(web.verb_timeout_secs(), [("USR2".to_string(), 30)].into());
        // The string form has none of its own: the probe's apply to its runs.
        let usr1 = web.run_of(Some(Verb::Usr1));
        assert_eq!(
            (usr1.command.as_str(), usr1.run_as.as_deref(), usr1.timeout),
            ("echo one", Some("nobody"), Some(Duration::from_secs(300)))
        );
        let usr2 = web.run_of(Some(Verb::Usr2));
        assert_eq!(
            (usr2.command.as_str(), usr2.run_as.as_deref(), usr2.timeout),
            (
                "docker restart web",
                Some("root"),
                Some(Duration::from_secs(30))
            )
        );
        let hup = web.run_of(None);
        assert_eq!(
            (hup.command.as_str(), hup.run_as.as_deref(), hup.timeout),
            ("true", Some("nobody"), Some(Duration::from_secs(300)))
        );
        let db = &probes[1];
        assert_eq!(db.verbs[&Verb::Usr1].command, "echo db");
        assert!(db.verb_run_as().is_empty());
        assert_eq!(
            db.run_of(Some(Verb::Usr1)).timeout,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(db.run_of(None).timeout, None);
        // A table with its command alone is the string form.
        let alone = parse(
            "[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { USR1 = { command = \"y\" } }\n",
        )
        .unwrap();
        let string =
            parse("[[probe]]\njail = \"1\"\ncommand = \"x\"\nverbs = { USR1 = \"y\" }\n").unwrap();
        assert_eq!(alone, string);
    }

    #[test]
    fn a_bad_verb_table_is_refused_at_its_line() {
        let file = |verb: &str| {
            format!(
                "[[probe]]\n\
                 jail = \"1\"\n\
                 command = \"x\"\n\
                 title = \"T\"\n\
                 # the verbs\n\
                 {verb}\n"
            )
        };
        for (verb, line, why) in [
            (
                "verbs = { USR2 = { command = \"y\", colour = \"red\" } }",
                6,
                "unknown key 'colour' in a verb's table; it takes command, run_as and timeout",
            ),
            (
                "verbs = { USR2 = { run_as = \"root\" } }",
                6,
                "a verb's table needs its command",
            ),
            (
                "verbs = { USR2 = { command = \"y\", timeout = \"30 s\" } }",
                6,
                "verb USR2: timeout: '30 s' is not a duration",
            ),
            (
                "verbs = { USR2 = { command = \"y\", timeout = \"25h\" } }",
                6,
                "verb USR2: timeout: 25h is out of range",
            ),
            (
                "verbs = { USR2 = { command = \"y\", timeout = 30 } }",
                6,
                "string",
            ),
            (
                "verbs = { USR2 = { command = \"y\", run_as = \"a:b:c\" } }",
                6,
                "verb USR2: run_as: 'a:b:c' is not user or user:group",
            ),
            (
                "verbs = { USR2 = { command = \" \", run_as = \"root\" } }",
                6,
                "verb USR2: the command is empty",
            ),
            ("verbs = { USR2 = 7 }", 6, "a command, or a table"),
            // As tables of their own, each key on its own line: a bad value is refused at its
            // line, an unknown key at the table's header (where the parser puts it).
            (
                "[probe.verbs.USR1]\ncommand = \"y\"\ntimeout = \"soon\"",
                8,
                "verb USR1: timeout: 'soon' is not a duration",
            ),
            (
                "[probe.verbs.USR1]\ncommand = \"y\"\n\nrun_as = \"\"",
                9,
                "verb USR1: run_as: '' is not user or user:group",
            ),
            (
                "[probe.verbs.USR1]\ncommand = \"y\"\nuser = \"root\"",
                6,
                "unknown key 'user' in a verb's table",
            ),
        ] {
            let err = parse(&file(verb)).unwrap_err();
            assert_eq!(err.kind, Kind::Config, "{verb}");
            assert!(
                err.message.starts_with(&format!("line {line}: ")) && err.message.contains(why),
                "{verb}: {}",
                err.message
            );
        }
        // The twin: the same file with a good table parses.
        let good = parse(&file(
            "verbs = { USR2 = { command = \"y\", run_as = \"root\", timeout = \"30s\" } }",
        ))
        .unwrap();
        assert_eq!(good[0].verb_run_as().len(), 1);
    }

    /// A declared probe lives in the file: `persist` (`-P`) is refused at its line, and the same
    /// probe without it is declared.
    #[test]
    fn a_declared_probe_is_never_persisted() {
        let file = |persist: &str| format!("[[probe]]\njail = \"1\"\ncommand = \"x\"\n{persist}\n");
        let err = parse(&file("persist = true")).unwrap_err();
        assert!(
            err.message.starts_with("line 4: persist: a declared probe"),
            "{}",
            err.message
        );
        assert!(!parse(&file("persist = false")).unwrap()[0].persist);
        assert_eq!(parse(&file("")).unwrap().len(), 1);
    }

    #[test]
    fn a_single_bracket_probe_says_to_write_two() {
        for (text, line) in [
            ("[probe]\njail = \"1\"\ncommand = \"x\"\n", 1),
            (
                "metrics = \"/m.prom\"\n\n  [ probe ]  # web\njail = \"1\"\ncommand = \"x\"\n",
                3,
            ),
            (
                "[[probe]]\njail = \"1\"\ncommand = \"x\"\n[probe]\njail = \"2\"\ncommand = \"y\"\n",
                4,
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.message.starts_with(&format!("line {line}: "))
                    && err.message.contains("write [[probe]] (two brackets)")
                    && !err.message.contains("invalid type"),
                "{text:?}: {}",
                err.message
            );
        }
        // The twin: another error in a file of proper [[probe]] tables is not this advice.
        let err = parse("[[probe]]\njail = \"1\"\ncommand = \"x\"\n[other]\n").unwrap_err();
        assert!(!err.message.contains("two brackets"), "{}", err.message);
    }

    #[test]
    fn the_metrics_path_is_read_and_must_be_absolute() {
        let loaded =
            parse_all("metrics = \"/var/lib/jd.prom\"\n[[probe]]\njail = \"1\"\ncommand = \"x\"\n")
                .unwrap();
        assert_eq!(loaded.metrics, Some("/var/lib/jd.prom".into()));
        assert_eq!(loaded.probes.len(), 1);
        assert_eq!(parse_all("").unwrap().metrics, None);
        let err = parse_all("metrics = \"jd.prom\"\n").unwrap_err();
        assert!(
            err.message
                .contains("metrics: 'jd.prom' is not an absolute path"),
            "{err}"
        );
    }

    #[test]
    fn only_a_named_file_must_exist() {
        let missing = Path::new("/nonexistent/jaildaemon.conf");
        assert!(load(missing, false).unwrap().probes.is_empty());
        let err = load(missing, true).unwrap_err();
        assert_eq!(err.kind, Kind::Config);
        assert!(err.message.contains("/nonexistent/jaildaemon.conf"));
    }

    #[test]
    fn a_selector_is_declared_and_a_bad_one_refused_at_its_line() {
        let probes =
            parse("[[probe]]\njail = \"docker:label=com.example.role=web\"\ncommand = \"true\"\n")
                .unwrap();
        assert_eq!(probes[0].jail, "docker:label=com.example.role=web");
        // Twin: a value that would add a filter to Docker's query.
        let err = parse("[[probe]]\ncommand = \"true\"\njail = \"docker:label=role=web,name=x\"\n")
            .unwrap_err();
        assert_eq!(err.kind, Kind::Config);
        assert!(
            err.message.starts_with("line 3:") && err.message.contains("not a label value"),
            "{}",
            err.message
        );
    }
}
