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

use crate::definition::Definition;
use crate::error::{Error, Kind};
use crate::proto::{Arm, DEFAULT_TITLE, Respawn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    probe: Vec<toml::Spanned<Declared>>,
    metrics: Option<String>,
}

/// What a configuration file declares.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub probes: Vec<Definition>,
    /// Where the metrics file goes (`metrics = "PATH"`), unless `-M` names it.
    pub metrics: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    jail: String,
    command: String,
    title: Option<String>,
    respawn: Option<Respawn>,
    user: Option<String>,
    group: Option<String>,
    cooldown: Option<String>,
    timeout: Option<String>,
    run_as: Option<String>,
    #[serde(default)]
    verbs: std::collections::BTreeMap<String, toml::Spanned<DeclaredVerb>>,
    #[serde(default)]
    confirm: std::collections::BTreeMap<String, String>,
    watchdog: Option<String>,
    #[serde(default)]
    status: bool,
}

/// A verb as declared: its command alone (`USR1 = "…"`), or a table of its command and its
/// own host user and timeout (`USR2 = { command = "…", run_as = "root", timeout = "30s" }`).
struct DeclaredVerb {
    command: String,
    /// Each with where it stands in the file, so that a bad one is refused at its own line.
    run_as: Option<toml::Spanned<String>>,
    timeout: Option<toml::Spanned<String>>,
}

impl<'de> Deserialize<'de> for DeclaredVerb {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DeclaredVerbVisitor)
    }
}

/// Takes a string or a table. Written out rather than as an untagged enum, whose error for
/// either shape says only that it matched neither, and at no line.
struct DeclaredVerbVisitor;

impl<'de> serde::de::Visitor<'de> for DeclaredVerbVisitor {
    type Value = DeclaredVerb;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a command, or a table { command = \"…\", run_as = \"…\", timeout = \"…\" }")
    }

    fn visit_str<E: serde::de::Error>(self, command: &str) -> Result<DeclaredVerb, E> {
        Ok(DeclaredVerb {
            command: command.into(),
            run_as: None,
            timeout: None,
        })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DeclaredVerb, A::Error> {
        use serde::de::Error as _;
        let (mut command, mut run_as, mut timeout) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "command" => command = Some(map.next_value()?),
                "run_as" => run_as = Some(map.next_value()?),
                "timeout" => timeout = Some(map.next_value()?),
                other => {
                    return Err(A::Error::custom(format!(
                        "unknown key '{other}' in a verb's table; it takes command, run_as and timeout"
                    )));
                }
            }
        }
        let command =
            command.ok_or_else(|| A::Error::custom("a verb's table needs its command = \"…\""))?;
        Ok(DeclaredVerb {
            command,
            run_as,
            timeout,
        })
    }
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
        let line = e.span().map_or(1, |s| line_of(s.start));
        refuse(line, e.message().trim().to_string())
    })?;
    // Where each probe's table starts, and so where the one before it ends.
    let starts: Vec<usize> = file.probe.iter().map(|p| p.span().start).collect();
    let mut probes: Vec<Definition> = Vec::with_capacity(file.probe.len());
    let mut seen = std::collections::BTreeSet::new();
    for (n, spanned) in file.probe.into_iter().enumerate() {
        // Counted only for an error: counting lines for every probe of a long file is slow.
        let table = &text[starts[n]..starts.get(n + 1).copied().unwrap_or(text.len())];
        // The line of `key` in this probe's table, or of its header when it has no such line.
        let line = |key: &str| line_of(starts[n] + key_offset(table, key).unwrap_or(0));
        let d = spanned.into_inner();
        let duration = |field: &str, text: Option<String>| {
            text.map(|t| crate::definition::parse_duration(&t))
                .transpose()
                .map_err(|why| refuse(line(field), format!("{field}: {why}")))
        };
        let cooldown = duration("cooldown", d.cooldown)?;
        let timeout = duration("timeout", d.timeout)?;
        let watchdog = duration("watchdog", d.watchdog)?;
        let mut confirm = std::collections::BTreeMap::new();
        for (name, window) in d.confirm {
            let secs = crate::definition::parse_duration(&window)
                .map_err(|why| refuse(line("confirm"), format!("confirm {name}: {why}")))?;
            confirm.insert(name, secs);
        }
        let mut verbs = std::collections::BTreeMap::new();
        let mut verb_run_as = std::collections::BTreeMap::new();
        let mut verb_timeout = std::collections::BTreeMap::new();
        // Where each verb's settings stand, for a refusal by `Arm::validate` that names one:
        // (the prefix its messages start with, the offset of what they are about).
        let mut verb_places: Vec<(String, usize)> = Vec::new();
        for (name, spanned) in d.verbs {
            verb_places.push((format!("verb {name}:"), spanned.span().start));
            let verb = spanned.into_inner();
            if let Some(timeout) = verb.timeout {
                let secs = crate::definition::parse_duration(timeout.get_ref()).map_err(|why| {
                    refuse(
                        line_of(timeout.span().start),
                        format!("verb {name}: timeout: {why}"),
                    )
                })?;
                verb_places.push((format!("verb {name}: timeout:"), timeout.span().start));
                verb_timeout.insert(name.clone(), secs);
            }
            if let Some(run_as) = verb.run_as {
                verb_places.push((format!("verb {name}: run_as:"), run_as.span().start));
                verb_run_as.insert(name.clone(), run_as.into_inner());
            }
            verbs.insert(name, verb.command);
        }
        let arm = Arm {
            command: d.command,
            jail: d.jail,
            title: d.title.unwrap_or_else(|| DEFAULT_TITLE.into()),
            respawn: d.respawn.unwrap_or(Respawn::Never),
            user: d.user,
            group: d.group,
            cooldown,
            timeout,
            run_as: d.run_as,
            persist: false,
            verbs,
            confirm,
            verb_run_as,
            verb_timeout,
            watchdog,
            status: d.status,
        };
        arm.validate().map_err(|e| {
            // The most precise place named: a verb's setting, the verb, or the key.
            let at = verb_places
                .iter()
                .filter(|(prefix, _)| e.message.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, offset)| line_of(*offset));
            refuse(at.unwrap_or_else(|| line(key_of(&e.message))), e.message)
        })?;
        if crate::selector::is_selector(&arm.jail) {
            crate::selector::parse(&arm.jail).map_err(|why| refuse(line("jail"), why))?;
        }
        if !seen.insert((arm.jail.clone(), arm.title.clone())) {
            return Err(refuse(
                line(""),
                format!(
                    "a second probe titled '{}' in jail '{}'; jail and title name a probe",
                    arm.title, arm.jail
                ),
            ));
        }
        probes.push(arm.into());
    }
    let metrics = match file.metrics {
        Some(path) if !path.starts_with('/') => {
            return Err(refuse(
                key_offset(text, "metrics").map_or(1, line_of),
                format!("metrics: '{path}' is not an absolute path"),
            ));
        }
        other => other.map(std::path::PathBuf::from),
    };
    Ok(Loaded { probes, metrics })
}

/// The key a refusal of `Arm::validate` is about, by the words it starts with; `""` (the
/// probe's header) when it names none.
fn key_of(message: &str) -> &'static str {
    const KEYS: [(&str, &str); 10] = [
        ("cooldown:", "cooldown"),
        ("timeout:", "timeout"),
        ("watchdog:", "watchdog"),
        ("confirm ", "confirm"),
        ("verb ", "verbs"),
        ("status:", "status"),
        ("run_as:", "run_as"),
        ("the command", "command"),
        ("the jail", "jail"),
        ("the title", "title"),
    ];
    KEYS.iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("", |(_, key)| key)
}

/// Where, in `table` (one probe's part of the file, or the file before its first table), the
/// line that sets `key` starts: `key =`, or `key.` for a dotted key; `None` when none does.
fn key_offset(table: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    let mut offset = 0;
    for line in table.split_inclusive('\n') {
        let rest = line.trim_start();
        if let Some(after) = rest.strip_prefix(key)
            && (after.trim_start().starts_with('=') || after.trim_start().starts_with('.'))
        {
            return Some(offset);
        }
        offset += line.len();
    }
    None
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
                (crate::definition::Verb::Usr1, "one".to_string()),
                (crate::definition::Verb::Usr2, "two".to_string())
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
        assert_eq!(web.verbs[&Verb::Usr1], "echo one");
        assert_eq!(web.verbs[&Verb::Usr2], "docker restart web");
        assert_eq!(web.verb_run_as, [(Verb::Usr2, "root".to_string())].into());
        assert_eq!(
            web.verb_timeout,
            [(Verb::Usr2, Duration::from_secs(30))].into()
        );
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
        assert_eq!(db.verbs[&Verb::Usr1], "echo db");
        assert!(db.verb_run_as.is_empty());
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
        assert_eq!(good[0].verb_run_as.len(), 1);
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
