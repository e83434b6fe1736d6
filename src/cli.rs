//! Command line: raw flags become one validated [`Mode`].

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Kind};
use crate::proto::{Arm, DEFAULT_TITLE, Respawn};

pub const DEFAULT_PIDFILE: &str = "/var/run/jaildaemon.pid";
pub const DEFAULT_SOCKET: &str = "/var/run/jaildaemon.pipe";

pub const USAGE: &str = "usage: jaildaemon -D [-F] [-p pidfile] [-f sockpath] [-G group]
       jaildaemon -c command -j jail [-r | -R] [-u uid] [-g gid] [-t title] [-f sockpath]";

#[derive(Debug, PartialEq, Eq)]
pub struct DaemonConfig {
    pub pidfile: PathBuf,
    pub socket: PathBuf,
    pub foreground: bool,
    /// A host group whose members may use the socket besides root.
    pub group: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Daemon(DaemonConfig),
    Arm { socket: PathBuf, request: Arm },
    Help,
    Version,
}

fn usage(message: impl std::fmt::Display) -> Error {
    Error::new(Kind::Usage, format!("{message}\n{USAGE}"))
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Mode, Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_iter(args);
    let (mut daemon, mut foreground, mut socket_group) = (false, false, None);
    let (mut pidfile, mut socket) = (None, None);
    let (mut command, mut jail, mut title, mut user, mut group) = (None, None, None, None, None);
    let (mut r, mut big_r) = (false, false);
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, Error> {
        p.value()
            .map_err(usage)?
            .into_string()
            .map_err(|_| usage(format!("the value of {flag} is not valid UTF-8")))
    };
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('D') => daemon = true,
            Short('F') => foreground = true,
            Short('p') => pidfile = Some(parser.value().map_err(usage)?.into()),
            Short('f') => socket = Some(parser.value().map_err(usage)?.into()),
            Short('G') => socket_group = Some(text(&mut parser, "-G")?),
            Short('c') => command = Some(text(&mut parser, "-c")?),
            Short('j') => jail = Some(text(&mut parser, "-j")?),
            Short('t') => title = Some(text(&mut parser, "-t")?),
            Short('u') => user = Some(text(&mut parser, "-u")?),
            Short('g') => group = Some(text(&mut parser, "-g")?),
            Short('r') => r = true,
            Short('R') => big_r = true,
            Short('h') | Long("help") => return Ok(Mode::Help),
            Short('V') | Long("version") => return Ok(Mode::Version),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    let socket = socket.unwrap_or_else(|| DEFAULT_SOCKET.into());
    match (daemon, command) {
        (true, Some(_)) => Err(usage("-D and -c exclude each other")),
        (false, None) => Err(usage("one of -D (daemon) or -c (utility) is required")),
        (true, None) => {
            let utility_only = [
                jail.is_some(),
                title.is_some(),
                user.is_some(),
                group.is_some(),
                r,
                big_r,
            ];
            if utility_only.into_iter().any(|set| set) {
                return Err(usage(
                    "-j, -t, -u, -g, -r and -R belong to utility mode (-c), not to -D",
                ));
            }
            Ok(Mode::Daemon(DaemonConfig {
                pidfile: pidfile.unwrap_or_else(|| DEFAULT_PIDFILE.into()),
                socket,
                foreground,
                group: socket_group,
            }))
        }
        (false, Some(command)) => {
            if foreground || pidfile.is_some() || socket_group.is_some() {
                return Err(usage("-F, -p and -G belong to daemon mode (-D)"));
            }
            let jail =
                jail.ok_or_else(|| usage("-c needs -j JAIL: which jail the probe goes into"))?;
            let respawn = match (r, big_r) {
                (true, true) => return Err(usage("-r and -R exclude each other")),
                (true, false) => Respawn::AfterCommand,
                (false, true) => Respawn::Immediately,
                (false, false) => Respawn::Never,
            };
            let request = Arm {
                command,
                jail,
                title: title.unwrap_or_else(|| DEFAULT_TITLE.into()),
                respawn,
                user,
                group,
            };
            request
                .validate()
                .map_err(|e| Error::new(Kind::Usage, e.message))?;
            Ok(Mode::Arm { socket, request })
        }
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
    }

    #[test]
    fn usage_errors_name_the_problem() {
        for (args, needle) in [
            (&["-c", "x"][..], "needs -j"),
            (&[][..], "one of -D"),
            (&["-D", "-c", "x"][..], "exclude"),
            (&["-c", "x", "-j", "1", "-r", "-R"][..], "-r and -R"),
            (&["-D", "-j", "1"][..], "utility mode"),
            (&["-c", "x", "-j", "1", "-p", "/p"][..], "daemon mode"),
            (&["-c", "x", "-j", "1", "-G", "wheel"][..], "daemon mode"),
            (&["-x"][..], "-x"),
            (&["-c", "", "-j", "1"][..], "empty"),
        ] {
            let err = parse_str(args).unwrap_err();
            assert_eq!(err.kind, Kind::Usage, "{args:?}");
            assert!(err.message.contains(needle), "{args:?}: {}", err.message);
        }
    }
}
