//! Command line: raw flags become one validated [`Mode`].

use std::ffi::OsString;
use std::path::PathBuf;

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

pub const USAGE: &str =
    "usage: jaildaemon -D [-F] [-p pidfile] [-f sockpath] [-G group] [-C config] [-S statefile]
       jaildaemon -c command -j jail [-r | -R] [-P] [-u uid] [-g gid] [-t title] [-f sockpath]
       jaildaemon -l [--json] [-f sockpath]
       jaildaemon -k id|title -j jail [-f sockpath]";

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
    command: Option<String>,
    jail: Option<String>,
    title: Option<String>,
    user: Option<String>,
    group: Option<String>,
    r: bool,
    big_r: bool,
    persist: bool,
    list: bool,
    json: bool,
    remove: Option<String>,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Mode, Error> {
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
            Short('h') | Long("help") => return Ok(Mode::Help),
            Short('V') | Long("version") => return Ok(Mode::Version),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    let modes = [f.daemon, f.command.is_some(), f.list, f.remove.is_some()];
    match modes.iter().filter(|m| **m).count() {
        0 => return Err(usage("one of -D, -c, -l or -k is required")),
        1 => {}
        _ => return Err(usage("-D, -c, -l and -k exclude each other")),
    }
    let socket = f.socket.clone().unwrap_or_else(|| DEFAULT_SOCKET.into());
    // Which flags each mode takes besides -f.
    let daemon_only = [
        ("-F", f.foreground),
        ("-p", f.pidfile.is_some()),
        ("-G", f.socket_group.is_some()),
        ("-C", f.config.is_some()),
        ("-S", f.state.is_some()),
    ];
    let arm_only = [
        ("-t", f.title.is_some()),
        ("-u", f.user.is_some()),
        ("-g", f.group.is_some()),
        ("-r", f.r),
        ("-R", f.big_r),
        ("-P", f.persist),
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
    if f.daemon {
        refuse_any("-D", &[&arm_only, &jail, &json])?;
        return Ok(Mode::Daemon(DaemonConfig {
            pidfile: f.pidfile.unwrap_or_else(|| DEFAULT_PIDFILE.into()),
            socket,
            foreground: f.foreground,
            group: f.socket_group,
            config_named: f.config.is_some(),
            config: f.config.unwrap_or_else(|| DEFAULT_CONFIG.into()),
            state: f.state.unwrap_or_else(|| DEFAULT_STATE.into()),
        }));
    }
    if f.list {
        refuse_any("-l", &[&daemon_only, &arm_only, &jail])?;
        return Ok(Mode::List {
            socket,
            json: f.json,
        });
    }
    if let Some(probe) = f.remove {
        refuse_any("-k", &[&daemon_only, &arm_only, &json])?;
        let jail = f
            .jail
            .ok_or_else(|| usage("-k needs -j JAIL: the jail the probe is in"))?;
        return Ok(Mode::Remove {
            socket,
            probe,
            jail,
        });
    }
    refuse_any("-c", &[&daemon_only, &json])?;
    let command = f.command.expect("the one mode left");
    let jail = f
        .jail
        .ok_or_else(|| usage("-c needs -j JAIL: which jail the probe goes into"))?;
    let respawn = match (f.r, f.big_r) {
        (true, true) => return Err(usage("-r and -R exclude each other")),
        (true, false) => Respawn::AfterCommand,
        (false, true) => Respawn::Immediately,
        (false, false) => Respawn::Never,
    };
    let request = Arm {
        command,
        jail,
        title: f.title.unwrap_or_else(|| DEFAULT_TITLE.into()),
        respawn,
        user: f.user,
        group: f.group,
        persist: f.persist,
    };
    request
        .validate()
        .map_err(|e| Error::new(Kind::Usage, e.message))?;
    Ok(Mode::Arm { socket, request })
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
            (&["-c", "x", "-j", "1", "-r", "-R"][..], "-r and -R"),
            (&["-D", "-j", "1"][..], "-j do(es) not go with -D"),
            (&["-D", "-P"][..], "-P do(es) not go with -D"),
            (
                &["-c", "x", "-j", "1", "-p", "/p"][..],
                "-p do(es) not go with -c",
            ),
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
        ] {
            let err = parse_str(args).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{args:?}");
            assert!(err.message.contains(needle), "{args:?}: {}", err.message);
        }
    }
}
