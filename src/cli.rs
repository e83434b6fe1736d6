//! Command line: raw flags become one validated [`Mode`].

use std::ffi::OsString;
use std::path::PathBuf;

use crate::definition::Extras;
use crate::error::{Error, Kind};
use crate::proto::{Arm, DEFAULT_TITLE, Respawn};

pub const DEFAULT_PIDFILE: &str = "/var/run/jaildaemon.pid";
pub const DEFAULT_SOCKET: &str = "/var/run/jaildaemon.pipe";
#[cfg(target_os = "freebsd")]
pub const DEFAULT_CONFIG: &str = "/usr/local/etc/jaildaemon.conf";
#[cfg(not(target_os = "freebsd"))]
pub const DEFAULT_CONFIG: &str = "/etc/jaildaemon.conf";
#[cfg(target_os = "freebsd")]
pub const DEFAULT_STATE: &str = "/var/db/jaildaemon/state";
#[cfg(not(target_os = "freebsd"))]
pub const DEFAULT_STATE: &str = "/var/lib/jaildaemon/state";

/// The utility's socket when `-f` names none (the daemon takes `-f` only).
pub const SOCKET_VARIABLE: &str = "JAILDAEMON_SOCKET";

pub const USAGE: &str =
    "usage: jaildaemon -D [-F] [-p pidfile] [-f sockpath] [-G group] [-C config] [-S statefile]
                  [-M metrics]
       jaildaemon -c command -j jail [-rR] [-P] [-u uid] [-g gid] [-t title] [-f sockpath]
                  [--queue] [--cooldown duration] [--timeout duration]
                  [--run-as user[:group]] [--verb SIGNAL=command ...]
                  [--confirm SIGNAL=duration ...] [--watchdog duration]
                  [--status]
       jaildaemon -l [--json] [-f sockpath]
       jaildaemon -k id|title -j jail [-f sockpath]
       jaildaemon -h | -V";

/// What `-h` prints: the usage, then one line or two for each option.
pub const HELP: &str = "
daemon (-D, as root):
  -D            run as the daemon: place probes, run their commands on the host
  -F            stay in the foreground and log to stderr (else: detach, log to syslog)
  -p pidfile    the pidfile, locked while the daemon runs (default /var/run/jaildaemon.pid)
  -G group      members of this host group may use the socket too (mode 0660)
  -C config     the configuration file declaring probes (default /etc/jaildaemon.conf,
                /usr/local/etc/jaildaemon.conf on FreeBSD)
  -S statefile  where -P probes are kept (default /var/lib/jaildaemon/state,
                /var/db/jaildaemon/state on FreeBSD)
  -M metrics    keep a Prometheus text file of the probes and commands here, replaced
                at most once a second (for node_exporter's textfile collector)
utility (-c, -l, -k):
  -c command    arm a probe; when it fires, the daemon runs command with /bin/sh -c
  -j jail       the jail: a host PID, a container name, or manager:name (lxc, lxd, incus,
                podman, docker, machined); on FreeBSD a jail ID or name
  -t title      the probe's whole command line in the jail (default jaildaemon-probe);
                the jail fires it with SIGHUP (jaildaemon(8) says with which tool)
  -r            arm the probe again once the command has finished
  -R            arm the probe again at once, without waiting for the command (-rR is -R)
  -P            keep the probe in the daemon's state file: it survives restarts of the
                daemon and of its jail (as a command that restarts its container needs)
  --queue       arm the probe again at once; a fire while the command runs queues one
                more run after it (never two at once, later triggers join that run)
  --cooldown duration
                with -r, -R or --queue: after a fire the probe comes back no sooner
                than this (30s, 5m, 1h; 1s to 24h); the jail sees no probe meanwhile
  --timeout duration
                stop a command still running after this long, with all it started:
                SIGTERM, then SIGKILL 5s later (1s to 24h)
  --run-as user[:group]
                run the command as this host user (name or number), with its groups,
                or with this group instead of its own; default root
  --verb SIGNAL=command
                a verb: SIGUSR1 or SIGUSR2 from inside the jail runs this command
                instead (SIGNAL is USR1 or USR2; repeat for both); SIGHUP still runs -c;
                --run-as and --timeout apply to it (its own: configuration file only)
  --confirm SIGNAL=duration
                that verb runs only when its signal comes twice within duration
                (1s to 1h); one alone runs nothing
  --status      with -r: the probe's command line in the jail shows the last
                command's result after the title (TITLE last=ok(0) 2.1s 12:03:04)
  --watchdog duration
                a dead-man probe: each SIGHUP from the jail starts the period again
                and runs nothing; a period without one runs the command (1s to 24h)
  -u uid        the probe's user inside the jail (number or name; default root)
  -g gid        the probe's group inside the jail (number or name)
  -l            list the daemon's probes, every setting included, wrapped to the terminal
                (or COLUMNS), never cut; --json for every field as JSON
  -k id|title   with -j: remove that probe, or every probe with that title in the jail
every mode:
  -f sockpath   the daemon's socket (default /var/run/jaildaemon.pipe; the utility
                also reads JAILDAEMON_SOCKET, and -f wins)
  -h            this help
  -V            the version
As in jaildaemon 0.2, -p is ignored by the utility and -j, -t, -u, -g, -r, -R, -P by the
daemon, each with a note on stderr. See jaildaemon(8).";

#[derive(Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    pub pidfile: PathBuf,
    pub socket: PathBuf,
    pub foreground: bool,
    /// A host group whose members may use the socket besides root.
    pub group: Option<String>,
    /// The configuration file, and whether `-C` named it (then it must exist).
    pub config: PathBuf,
    pub config_named: bool,
    /// Where `-P` probes are kept.
    pub state: PathBuf,
    /// `-M`: the metrics file.
    pub metrics: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Daemon(DaemonConfig),
    Arm {
        socket: PathBuf,
        request: Arm,
    },
    List {
        socket: PathBuf,
        json: bool,
    },
    Remove {
        socket: PathBuf,
        probe: String,
        jail: String,
    },
    Help,
    Version,
}

/// A parsed command line, and the notes to print on stderr about options it ignored.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub mode: Mode,
    pub notes: Vec<String>,
}

/// The `VERB=value` arguments of `flag`, each verb at most once; `example` is a value for
/// the error that shows how to write one.
fn verb_pairs<'a>(
    flag: &str,
    given: &'a [String],
    example: &str,
) -> Result<Vec<(crate::definition::Verb, &'a str)>, Error> {
    let mut pairs: Vec<(crate::definition::Verb, &str)> = Vec::new();
    for arg in given {
        let bad = || {
            usage(format!(
                "{flag} '{arg}': write it as USR1={example} or USR2={example}"
            ))
        };
        let (name, value) = arg.split_once('=').ok_or_else(bad)?;
        let verb = crate::definition::Verb::parse(name).ok_or_else(bad)?;
        if pairs.iter().any(|(v, _)| v.name() == verb.name()) {
            return Err(usage(format!("{flag} {}: given twice", verb.name())));
        }
        pairs.push((verb, value));
    }
    Ok(pairs)
}

fn usage(message: impl std::fmt::Display) -> Error {
    Error::new(Kind::Usage, format!("{message}\n{USAGE}"))
}

/// Every flag as given; `parse` then checks which mode they make and that they fit it.
#[derive(Default)]
struct Flags {
    daemon: bool,
    foreground: bool,
    socket_group: Option<String>,
    pidfile: Option<PathBuf>,
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
    state: Option<PathBuf>,
    metrics: Option<PathBuf>,
    command: Option<String>,
    jail: Option<String>,
    title: Option<String>,
    user: Option<String>,
    group: Option<String>,
    r: bool,
    big_r: bool,
    persist: bool,
    cooldown: Option<String>,
    queue: bool,
    timeout: Option<String>,
    run_as: Option<String>,
    verbs: Vec<String>,
    confirm: Vec<String>,
    watchdog: Option<String>,
    status: bool,
    list: bool,
    json: bool,
    remove: Option<String>,
}

/// Parses a command line without looking at the environment, dropping the notes.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Mode, Error> {
    parse_with(args, None).map(|parsed| parsed.mode)
}

/// Parses a command line; `socket_variable` is the value of `JAILDAEMON_SOCKET`, which names
/// the utility's socket when `-f` does not.
pub fn parse_with(
    args: impl IntoIterator<Item = OsString>,
    socket_variable: Option<OsString>,
) -> Result<Parsed, Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_iter(args);
    let mut f = Flags::default();
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, Error> {
        p.value()
            .map_err(usage)?
            .into_string()
            .map_err(|_| usage(format!("the value of {flag} is not valid UTF-8")))
    };
    let path = |p: &mut lexopt::Parser| -> Result<Option<PathBuf>, Error> {
        Ok(Some(p.value().map_err(usage)?.into()))
    };
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('D') => f.daemon = true,
            Short('F') => f.foreground = true,
            Short('p') => f.pidfile = path(&mut parser)?,
            Short('f') => f.socket = path(&mut parser)?,
            Short('C') => f.config = path(&mut parser)?,
            Short('S') => f.state = path(&mut parser)?,
            Short('M') => f.metrics = path(&mut parser)?,
            Short('G') => f.socket_group = Some(text(&mut parser, "-G")?),
            Short('c') => f.command = Some(text(&mut parser, "-c")?),
            Short('j') => f.jail = Some(text(&mut parser, "-j")?),
            Short('t') => f.title = Some(text(&mut parser, "-t")?),
            Short('u') => f.user = Some(text(&mut parser, "-u")?),
            Short('g') => f.group = Some(text(&mut parser, "-g")?),
            Short('k') => f.remove = Some(text(&mut parser, "-k")?),
            Short('r') => f.r = true,
            Short('R') => f.big_r = true,
            Short('P') => f.persist = true,
            Short('l') => f.list = true,
            Long("json") => f.json = true,
            Long("queue") => f.queue = true,
            Long("verb") => f.verbs.push(text(&mut parser, "--verb")?),
            Long("confirm") => f.confirm.push(text(&mut parser, "--confirm")?),
            Long("status") => f.status = true,
            Long("watchdog") => f.watchdog = Some(text(&mut parser, "--watchdog")?),
            Long("run-as") => f.run_as = Some(text(&mut parser, "--run-as")?),
            Long("timeout") => f.timeout = Some(text(&mut parser, "--timeout")?),
            Long("cooldown") => f.cooldown = Some(text(&mut parser, "--cooldown")?),
            Short('h') | Long("help") => return Ok(plain(Mode::Help)),
            Short('V') | Long("version") => return Ok(plain(Mode::Version)),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    let modes = [f.daemon, f.command.is_some(), f.list, f.remove.is_some()];
    match modes.iter().filter(|m| **m).count() {
        0 => return Err(usage("one of -D, -c, -l or -k is required")),
        1 => {}
        _ => return Err(usage("-D, -c, -l and -k exclude each other")),
    }
    let mut notes = Vec::new();
    // Which flags each mode takes besides -f. 0.2's utility ignored -p, and its daemon every
    // option of the utility: both are noted and ignored here too, so that 0.2's command lines
    // keep working.
    let daemon_only = [
        ("-F", f.foreground),
        ("-G", f.socket_group.is_some()),
        ("-C", f.config.is_some()),
        ("-S", f.state.is_some()),
        ("-M", f.metrics.is_some()),
    ];
    let arm_only = [
        ("-t", f.title.is_some()),
        ("-u", f.user.is_some()),
        ("-g", f.group.is_some()),
        ("-r", f.r),
        ("-R", f.big_r),
        ("-P", f.persist),
        ("--queue", f.queue),
        ("--cooldown", f.cooldown.is_some()),
        ("--timeout", f.timeout.is_some()),
        ("--run-as", f.run_as.is_some()),
        ("--verb", !f.verbs.is_empty()),
        ("--confirm", !f.confirm.is_empty()),
        ("--watchdog", f.watchdog.is_some()),
        ("--status", f.status),
    ];
    let jail = [("-j", f.jail.is_some())];
    let json = [("--json", f.json)];
    let refuse_any = |mode: &str, flags: &[&[(&str, bool)]]| -> Result<(), Error> {
        let given: Vec<&str> = flags
            .iter()
            .flat_map(|set| set.iter())
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect();
        if given.is_empty() {
            Ok(())
        } else {
            Err(usage(format!(
                "{} do(es) not go with {mode}",
                given.join(", ")
            )))
        }
    };
    let ignored = |mode: &str, flags: &[&[(&str, bool)]]| -> Option<String> {
        let given: Vec<&str> = flags
            .iter()
            .flat_map(|set| set.iter())
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect();
        (!given.is_empty()).then(|| format!("note: {} ignored with {mode}", given.join(", ")))
    };
    if f.daemon {
        refuse_any("-D", &[&json])?;
        // The daemon may change its directory: a relative path would move with it.
        if let Some(path) = f.metrics.as_ref().filter(|p| !p.is_absolute()) {
            return Err(usage(format!(
                "-M {}: the metrics file must be an absolute path",
                path.display()
            )));
        }
        notes.extend(ignored("-D", &[&jail, &arm_only]));
        return Ok(Parsed {
            mode: Mode::Daemon(DaemonConfig {
                pidfile: f.pidfile.unwrap_or_else(|| DEFAULT_PIDFILE.into()),
                socket: f.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
                foreground: f.foreground,
                group: f.socket_group,
                config_named: f.config.is_some(),
                config: f.config.unwrap_or_else(|| DEFAULT_CONFIG.into()),
                state: f.state.unwrap_or_else(|| DEFAULT_STATE.into()),
                metrics: f.metrics,
            }),
            notes,
        });
    }
    let socket = match (f.socket, socket_variable) {
        (Some(path), _) => path,
        (None, Some(value)) if value.is_empty() => {
            return Err(usage(format!(
                "{SOCKET_VARIABLE} is set but empty: unset it, or name the socket with -f"
            )));
        }
        (None, Some(value)) => PathBuf::from(value),
        (None, None) => DEFAULT_SOCKET.into(),
    };
    let pidfile = [("-p", f.pidfile.is_some())];
    if f.list {
        refuse_any("-l", &[&daemon_only, &arm_only, &jail])?;
        notes.extend(ignored("-l", &[&pidfile]));
        let mode = Mode::List {
            socket,
            json: f.json,
        };
        return Ok(Parsed { mode, notes });
    }
    if let Some(probe) = f.remove {
        refuse_any("-k", &[&daemon_only, &arm_only, &json])?;
        notes.extend(ignored("-k", &[&pidfile]));
        let jail = f
            .jail
            .ok_or_else(|| usage("-k needs -j JAIL: the jail the probe is in"))?;
        let mode = Mode::Remove {
            socket,
            probe,
            jail,
        };
        return Ok(Parsed { mode, notes });
    }
    refuse_any("-c", &[&daemon_only, &json])?;
    notes.extend(ignored("-c", &[&pidfile]));
    let command = f.command.expect("the one mode left");
    let jail = f
        .jail
        .ok_or_else(|| usage("-c needs -j JAIL: which jail the probe goes into"))?;
    // 0.2's synopsis has [-rR], and its -R is "-r without waiting for the command": given
    // both, in any order, -R is what they ask for.
    let respawn = match (f.r, f.big_r, f.queue) {
        (false, false, true) => Respawn::Queue,
        (_, _, true) => {
            return Err(usage(
                "--queue does not go with -r or -R: it is a mode of its own",
            ));
        }
        (_, true, false) => Respawn::Immediately,
        (true, false, false) => Respawn::AfterCommand,
        (false, false, false) => Respawn::Never,
    };
    // A duration that does not parse, or is out of range (`Definition::check_durations`
    // below), is bad data (65), as the daemon would say of the request.
    let duration = |flag: &str, text: Option<String>| {
        let Some(text) = text else { return Ok(None) };
        let secs = crate::definition::parse_duration(&text)
            .map_err(|why| Error::new(Kind::Data, format!("{flag}: {why}")))?;
        Ok(Some(std::time::Duration::from_secs(secs)))
    };
    let cooldown = duration("--cooldown", f.cooldown)?;
    let timeout = duration("--timeout", f.timeout)?;
    let mut verbs = std::collections::BTreeMap::new();
    for (verb, verb_command) in verb_pairs("--verb", &f.verbs, "command")? {
        verbs.insert(verb, verb_command.into());
    }
    let watchdog = duration("--watchdog", f.watchdog)?;
    let mut confirm = std::collections::BTreeMap::new();
    for (verb, window) in verb_pairs("--confirm", &f.confirm, "10s")? {
        let flag = format!("--confirm {}", verb.name());
        let secs = duration(&flag, Some(window.to_string()))?;
        confirm.insert(verb, secs.unwrap_or_default());
    }
    let request = Arm {
        command,
        jail,
        title: f.title.unwrap_or_else(|| DEFAULT_TITLE.into()),
        respawn,
        persist: f.persist,
        status: f.status,
        extras: Extras {
            user: f.user,
            group: f.group,
            cooldown,
            timeout,
            run_as: f.run_as,
            // A verb's own host user and timeout are the configuration file's only.
            verbs,
            confirm,
            watchdog,
        }
        .boxed(),
    };
    request
        .check_durations()
        .map_err(|e| Error::new(Kind::Data, as_flags(&e.message)))?;
    request
        .validate()
        .map_err(|e| Error::new(Kind::Usage, e.message))?;
    Ok(Parsed {
        mode: Mode::Arm { socket, request },
        notes,
    })
}

/// A refusal of `Definition::check_durations`, which names a key (`cooldown: …`,
/// `confirm USR2: …`), as naming the flag that set it (`--cooldown: …`).
fn as_flags(message: &str) -> String {
    const FLAGS: [(&str, &str); 4] = [
        ("cooldown:", "--cooldown:"),
        ("timeout:", "--timeout:"),
        ("watchdog:", "--watchdog:"),
        ("confirm ", "--confirm "),
    ];
    FLAGS
        .iter()
        .find_map(|(key, flag)| Some(format!("{flag}{}", message.strip_prefix(key)?)))
        .unwrap_or_else(|| message.to_string())
}

fn plain(mode: Mode) -> Parsed {
    Parsed {
        mode,
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Mode, Error> {
        parse(
            std::iter::once("jaildaemon")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn daemon_defaults_need_no_config() {
        let Mode::Daemon(cfg) = parse_str(&["-D"]).unwrap() else {
            panic!("not daemon mode")
        };
        assert_eq!(cfg.pidfile, PathBuf::from(DEFAULT_PIDFILE));
        assert_eq!(cfg.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(cfg.config, PathBuf::from(DEFAULT_CONFIG));
        assert!(!cfg.config_named);
        assert_eq!(cfg.state, PathBuf::from(DEFAULT_STATE));
        assert!(!cfg.foreground);
    }

    #[test]
    fn utility_mode_collects_the_request() {
        let Mode::Arm { request, .. } =
            parse_str(&["-c", "reboot x", "-j", "23", "-rt", "REBOOT", "-u", "80"]).unwrap()
        else {
            panic!("not utility mode")
        };
        assert_eq!(request.respawn, Respawn::AfterCommand);
        assert_eq!(request.title, "REBOOT");
        assert_eq!(request.user.as_deref(), Some("80"));
        assert_eq!(request.jail, "23");
        assert!(!request.persist);
    }

    #[test]
    fn list_and_remove_modes() {
        assert_eq!(
            parse_str(&["-l", "--json", "-f", "/s"]).unwrap(),
            Mode::List {
                socket: "/s".into(),
                json: true
            }
        );
        assert_eq!(
            parse_str(&["-k", "REBOOT", "-j", "lxc:web1"]).unwrap(),
            Mode::Remove {
                socket: DEFAULT_SOCKET.into(),
                probe: "REBOOT".into(),
                jail: "lxc:web1".into()
            }
        );
        let Mode::Arm { request, .. } = parse_str(&["-c", "x", "-j", "1", "-P"]).unwrap() else {
            panic!("not utility mode")
        };
        assert!(request.persist);
        let Mode::Daemon(cfg) = parse_str(&["-D", "-C", "/c", "-S", "/s"]).unwrap() else {
            panic!("not daemon mode")
        };
        assert_eq!(cfg.config, PathBuf::from("/c"));
        assert!(cfg.config_named);
        assert_eq!(cfg.state, PathBuf::from("/s"));
    }

    #[test]
    fn usage_errors_name_the_problem() {
        for (args, needle) in [
            (&["-c", "x"][..], "needs -j"),
            (&[][..], "one of -D"),
            (&["-D", "-c", "x"][..], "exclude"),
            (&["-l", "-k", "1", "-j", "1"][..], "exclude"),
            (&["-D", "--json"][..], "--json do(es) not go with -D"),
            (&["-D", "-l"][..], "exclude"),
            (
                &["-c", "x", "-j", "1", "-G", "wheel"][..],
                "-G do(es) not go with -c",
            ),
            (
                &["-c", "x", "-j", "1", "--json"][..],
                "--json do(es) not go with -c",
            ),
            (&["-l", "-j", "1"][..], "-j do(es) not go with -l"),
            (&["-l", "-S", "/s"][..], "-S do(es) not go with -l"),
            (&["-k", "3"][..], "-k needs -j"),
            (
                &["-k", "3", "-j", "1", "-r"][..],
                "-r do(es) not go with -k",
            ),
            (&["-x"][..], "-x"),
            (&["-c", "", "-j", "1"][..], "empty"),
            (&["-l", "-F"][..], "-F do(es) not go with -l"),
            (&["-D", "-M", "jd.prom"][..], "must be an absolute path"),
            (&["-l", "-M", "/jd.prom"][..], "-M do(es) not go with -l"),
        ] {
            let err = parse_str(args).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{args:?}");
            assert!(err.message.contains(needle), "{args:?}: {}", err.message);
        }
    }

    #[test]
    fn verbs_are_parsed_and_a_bad_one_is_a_usage_error_naming_it() {
        let Mode::Arm { request, .. } = parse_str(&[
            "-c",
            "x",
            "-j",
            "1",
            "--verb",
            "USR1=a=b",
            "--verb",
            "sigusr2=c",
        ])
        .unwrap() else {
            panic!("not utility mode")
        };
        assert_eq!(request.verbs.len(), 2);
        assert_eq!(request.verbs[&crate::definition::Verb::Usr1].command, "a=b");
        assert_eq!(request.verbs[&crate::definition::Verb::Usr2].command, "c");
        for (args, needle) in [
            (&["--verb", "HUP=x"][..], "write it as USR1=command"),
            (&["--verb", "USR1"][..], "write it as USR1=command"),
            (
                &["--verb", "USR1=x", "--verb", "USR1=y"][..],
                "USR1: given twice",
            ),
            (&["--verb", "USR2="][..], "verb USR2: the command is empty"),
        ] {
            let err = parse_str(&[&["-c", "x", "-j", "1"][..], args].concat()).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{args:?}");
            assert!(err.message.contains(needle), "{args:?}: {}", err.message);
        }
        let Mode::Arm { request, .. } = parse_str(&[
            "-c",
            "x",
            "-j",
            "1",
            "--verb",
            "USR2=c",
            "--confirm",
            "usr2=1m",
        ])
        .unwrap() else {
            panic!("not utility mode")
        };
        assert_eq!(
            request.confirm[&crate::definition::Verb::Usr2],
            std::time::Duration::from_secs(60)
        );
        for (args, kind, needle) in [
            (
                &["--confirm", "USR2=10s"][..],
                Kind::Usage,
                "not a verb of this probe",
            ),
            (
                &["--verb", "USR2=c", "--confirm", "USR2"][..],
                Kind::Usage,
                "write it as USR1=10s",
            ),
            (
                &["--verb", "USR2=c", "--confirm", "USR2=2h"][..],
                Kind::Data,
                "1s to 1h",
            ),
            (
                &["--verb", "USR2=c", "--confirm", "USR2=0s"][..],
                Kind::Data,
                "out of range",
            ),
            (
                &[
                    "--verb",
                    "USR2=c",
                    "--confirm",
                    "USR2=1s",
                    "--confirm",
                    "USR2=2s",
                ][..],
                Kind::Usage,
                "given twice",
            ),
        ] {
            let err = parse_str(&[&["-c", "x", "-j", "1"][..], args].concat()).unwrap_err();
            assert_eq!(err.kind, kind, "{args:?}: {}", err.message);
            assert!(err.message.contains(needle), "{args:?}: {}", err.message);
        }
        let err = parse_str(&["-l", "--verb", "USR1=x"]).unwrap_err();
        assert!(err.message.contains("--verb"), "{}", err.message);
    }

    #[test]
    fn durations_are_checked_and_a_bad_one_is_bad_data_naming_its_option() {
        let Mode::Arm { request, .. } =
            parse_str(&["-c", "x", "-j", "1", "-R", "--cooldown", "1m"]).unwrap()
        else {
            panic!("not utility mode")
        };
        assert_eq!(request.cooldown, Some(std::time::Duration::from_secs(60)));
        for (args, kind, needle) in [
            (
                &["--cooldown", "5x", "-R"][..],
                Kind::Data,
                "--cooldown: '5x'",
            ),
            (&["--cooldown", "25h", "-R"][..], Kind::Data, "1s to 24h"),
            (&["--cooldown", "0s", "-r"][..], Kind::Data, "out of range"),
            (&["--cooldown", "60s"][..], Kind::Usage, "single-shot"),
            (&["--timeout", "1"][..], Kind::Data, "--timeout: '1' is not"),
            (
                &["--watchdog", "0s"][..],
                Kind::Data,
                "--watchdog: 0s is out of range",
            ),
            (&["--watchdog", "25h"][..], Kind::Data, "1s to 24h"),
            (&["--status"][..], Kind::Usage, "status: the probe shows"),
            (&["--status", "-R"][..], Kind::Usage, "give -r too"),
            (
                &["--watchdog", "5s", "-R"][..],
                Kind::Usage,
                "comes back after every signal",
            ),
            (
                &["--watchdog", "5s", "--verb", "USR1=x"][..],
                Kind::Usage,
                "or verbs",
            ),
            (
                &["--timeout", "48h"][..],
                Kind::Data,
                "--timeout: 48h is out of range",
            ),
        ] {
            let err = parse_str(&[&["-c", "x", "-j", "1"][..], args].concat()).unwrap_err();
            assert_eq!(err.kind, kind, "{args:?}");
            assert!(err.message.contains(needle), "{args:?}: {}", err.message);
        }
        let err = parse_str(&["-l", "--cooldown", "1m"]).unwrap_err();
        assert!(err.message.contains("--cooldown do(es) not go with -l"));
    }

    fn parse_env(args: &[&str], socket: Option<&str>) -> Result<Parsed, Error> {
        parse_with(
            std::iter::once("jaildaemon")
                .chain(args.iter().copied())
                .map(OsString::from),
            socket.map(OsString::from),
        )
    }

    fn respawn_of(args: &[&str]) -> Respawn {
        match parse_str(args) {
            Ok(Mode::Arm { request, .. }) => request.respawn,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn r_and_big_r_together_are_big_r_in_any_order() {
        for args in [
            &["-c", "x", "-j", "1", "-rR"][..],
            &["-c", "x", "-j", "1", "-Rr"][..],
            &["-c", "x", "-j", "1", "-r", "-R"][..],
            &["-c", "x", "-j", "1", "-R", "-r"][..],
            &["-c", "x", "-j", "1", "-R"][..],
        ] {
            assert_eq!(respawn_of(args), Respawn::Immediately, "{args:?}");
        }
        // The twins: -r alone waits for the command, neither never re-arms.
        assert_eq!(
            respawn_of(&["-c", "x", "-j", "1", "-r"]),
            Respawn::AfterCommand
        );
        assert_eq!(respawn_of(&["-c", "x", "-j", "1"]), Respawn::Never);
        assert_eq!(
            respawn_of(&["-c", "x", "-j", "1", "--queue"]),
            Respawn::Queue
        );
        for extra in ["-r", "-R"] {
            let err = parse_str(&["-c", "x", "-j", "1", "--queue", extra]).unwrap_err();
            assert_eq!(err.kind, Kind::Usage);
            assert!(
                err.message.contains("--queue does not go with"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn options_of_the_other_mode_are_ignored_as_in_0_2_with_a_note() {
        // 0.2: -p is "ignored in utility mode".
        let parsed = parse_env(&["-c", "x", "-j", "23", "-p", "/var/run/jd.pid"], None).unwrap();
        assert!(matches!(parsed.mode, Mode::Arm { .. }));
        assert_eq!(parsed.notes, vec!["note: -p ignored with -c".to_string()]);
        for (args, note) in [
            (&["-l", "-p", "/p"][..], "note: -p ignored with -l"),
            (
                &["-k", "1", "-j", "1", "-p", "/p"][..],
                "note: -p ignored with -k",
            ),
        ] {
            assert_eq!(parse_env(args, None).unwrap().notes, vec![note], "{args:?}");
        }
        // 0.2: "in daemon mode all options for the utility mode are ignored".
        let parsed = parse_env(
            &[
                "-D", "-p", "/p", "-j", "23", "-t", "T", "-rR", "-u", "80", "-g", "80", "-P",
            ],
            None,
        )
        .unwrap();
        let Mode::Daemon(cfg) = parsed.mode else {
            panic!("not daemon mode")
        };
        assert_eq!(cfg.pidfile, PathBuf::from("/p"));
        assert_eq!(
            parsed.notes,
            vec!["note: -j, -t, -u, -g, -r, -R, -P ignored with -D".to_string()]
        );
        // The twins: a command line without such options has no note.
        assert!(
            parse_env(&["-D", "-p", "/p"], None)
                .unwrap()
                .notes
                .is_empty()
        );
        assert!(
            parse_env(&["-c", "x", "-j", "1"], None)
                .unwrap()
                .notes
                .is_empty()
        );
    }

    #[test]
    fn the_utility_takes_its_socket_from_the_environment_unless_f_names_one() {
        let socket = |args: &[&str], var: Option<&str>| match parse_env(args, var).unwrap().mode {
            Mode::Arm { socket, .. } | Mode::List { socket, .. } | Mode::Remove { socket, .. } => {
                socket
            }
            Mode::Daemon(cfg) => cfg.socket,
            other => panic!("{other:?}"),
        };
        let arm = ["-c", "x", "-j", "1"];
        assert_eq!(socket(&arm, None), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(socket(&arm, Some("/e")), PathBuf::from("/e"));
        assert_eq!(socket(&["-l"], Some("/e")), PathBuf::from("/e"));
        assert_eq!(
            socket(&["-k", "1", "-j", "1"], Some("/e")),
            PathBuf::from("/e")
        );
        assert_eq!(
            socket(&[&arm[..], &["-f", "/f"]].concat(), Some("/e")),
            PathBuf::from("/f")
        );
        // The daemon takes -f only: it starts again with an empty environment.
        assert_eq!(socket(&["-D"], Some("/e")), PathBuf::from(DEFAULT_SOCKET));
        let err = parse_env(&arm, Some("")).unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
        assert!(err.message.contains(SOCKET_VARIABLE), "{}", err.message);
        // -f wins over an empty variable as well.
        assert!(parse_env(&[&arm[..], &["-f", "/f"]].concat(), Some("")).is_ok());
    }

    #[test]
    fn help_explains_each_option_on_a_line_of_its_own() {
        // Every option the parser matches on (`Short('D')`, …), read from this file; the
        // needle is built so that this line does not match it (tests/packaging.rs reads too).
        let source = include_str!("cli.rs");
        let needle = concat!("Short", "('");
        let letters: Vec<char> = source
            .split(needle)
            .skip(1)
            .filter_map(|rest| rest.chars().next())
            .filter(char::is_ascii_alphabetic)
            .collect();
        assert!(letters.len() >= 19, "{letters:?}");
        for letter in letters {
            assert!(
                HELP.lines()
                    .any(|l| l.starts_with(&format!("  -{letter} "))),
                "-{letter} is not explained by -h"
            );
        }
    }
}
