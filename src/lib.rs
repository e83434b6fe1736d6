//! jaildaemon: lets a jail or container trigger one fixed command on its host, and nothing
//! else. See ARCHITECTURE.md for the map.
#![deny(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
#[cfg(target_os = "linux")]
pub mod containers;
pub mod daemon;
pub mod definition;
pub mod error;
pub mod ids;
pub mod invocation;
pub mod listing;
pub mod logging;
pub mod magic;
pub mod metrics;
pub mod proto;
pub mod selector;
pub mod state;
pub mod sys;
pub mod userdb;

use std::ffi::OsString;

use error::{Error, Kind};
use proto::{Request, Response};

pub use magic::*;

/// Runs the program and returns its exit code; the one place errors become exit codes.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    logging::init();
    match dispatch(args) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            e.kind.exit_code()
        }
    }
}

fn dispatch(args: impl IntoIterator<Item = OsString>) -> Result<(), Error> {
    let parsed = cli::parse_with(args, std::env::var_os(cli::SOCKET_VARIABLE))?;
    if !matches!(parsed.mode, cli::Mode::Daemon(_)) || !daemon_starts_again() {
        for note in &parsed.notes {
            log::warn!("{note}");
        }
    }
    match parsed.mode {
        cli::Mode::Help => {
            println!("{}\n{}", cli::USAGE, cli::HELP);
            Ok(())
        }
        cli::Mode::Version => {
            println!("jaildaemon {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        cli::Mode::Daemon(config) => daemon::run(&config),
        cli::Mode::Arm { socket, request } => match client::ask(&socket, &Request::Arm(request))? {
            // Armed, with what the daemon found worth saying on stderr: still a success.
            Response::Armed { warnings, .. } => {
                warnings.iter().for_each(|w| log::warn!("warning: {w}"));
                Ok(())
            }
            other => refused(other),
        },
        cli::Mode::List { socket, json } => match client::ask(&socket, &Request::List)? {
            Response::Probes { probes } if json => {
                println!("{}", listing::json(&probes));
                Ok(())
            }
            Response::Probes { probes } => {
                print!("{}", listing::table(&probes, listing::terminal_width()));
                Ok(())
            }
            other => refused(other),
        },
        cli::Mode::Remove {
            socket,
            probe,
            jail,
        } => match client::ask(&socket, &Request::Remove { probe, jail })? {
            Response::Removed { probes, warnings } => {
                let ids: Vec<String> = probes.iter().map(u64::to_string).collect();
                println!("removed probe(s) {}", ids.join(", "));
                warnings.iter().for_each(|w| log::warn!("note: {w}"));
                Ok(())
            }
            other => refused(other),
        },
    }
}

/// True when the daemon is about to start itself again without the environment it was given
/// (see `daemon::run`): its notes are then printed by the second start only, not twice. The
/// variables are the ones the daemon keeps; tests/e2e.rs checks that a note is printed once.
fn daemon_starts_again() -> bool {
    rustix::process::geteuid().is_root()
        && std::env::vars_os()
            .any(|(name, _)| !daemon::KEPT_VARIABLES.iter().any(|kept| name == *kept))
}

/// A refusal becomes its error; any other answer is a protocol error.
fn refused(answer: Response) -> Result<(), Error> {
    match answer {
        Response::Refused(e) => Err(e),
        other => Err(Error::new(
            Kind::Protocol,
            format!("unexpected answer from the daemon: {other:?}"),
        )),
    }
}
