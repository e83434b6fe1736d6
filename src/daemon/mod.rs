//! The daemon: owns the socket, the probes and the commands they fire, in one single-threaded
//! poll loop (so that a fork for a probe never copies a lock held by another thread).

mod commands;
mod probes;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::DaemonConfig;
use crate::error::{Error, Kind};
use crate::proto::{self, Origin, Request, Response};
use crate::sys::{self, Poller, Process, Spawner};
use commands::RunningCommand;
use probes::{JAIL_GRACE, Probe, WatchedJail};
pub use probes::{MAX_PROBES, MAX_PROBES_PER_JAIL, MAX_RUNNING_PER_PROBE, RETRY_INTERVAL};

/// A client must send its whole request within this time.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; beyond that a client is answered "busy" at once.
const MAX_CLIENTS: usize = 256;
/// Descriptors the daemon holds besides its probes, jails, commands and clients: stdio, the
/// listener, the signal and event queues, the probe image, the pidfile, syslog.
const BASE_DESCRIPTORS: usize = 16;
/// Descriptors kept free for what must not fail at the limit: a fired probe's command (its
/// pidfd, its output pipe, and the pipe spawning uses) and the placing of a probe (status
/// pipe, the jail's root, a helper's pidfd, a new jail's pidfd).
const RESERVED_DESCRIPTORS: usize = 16;
/// With every descriptor taken, the listener is left alone this long before the next accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// PATH of every command (and of the container managers' tools). The rest of a command's
/// environment is the JAILDAEMON_* variables; nothing of the daemon's own reaches it.
pub(crate) const COMMAND_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    deadline: Instant,
}

/// The configuration file, and whether `-C` named it (then it must exist).
struct ConfigFile {
    path: PathBuf,
    named: bool,
}

/// Limits on probes: the documented ones, or lower ones from `JAILDAEMON_PROBE_LIMITS`.
struct Limits {
    total: usize,
    per_jail: usize,
}

struct Daemon {
    listener: UnixListener,
    /// Besides root, members of this host group may talk to the daemon.
    group: Option<u32>,
    signals: OwnedFd,
    spawner: Spawner,
    poller: Poller,
    probes: BTreeMap<u64, Probe>,
    /// Jails with probes, by `Jail::id`.
    jails: BTreeMap<i32, WatchedJail>,
    /// Commands and clients, by a serial number of their own.
    commands: BTreeMap<u64, RunningCommand>,
    clients: BTreeMap<u64, Client>,
    /// Killed probes not reaped yet, by serial number.
    reaping: BTreeMap<u64, Process>,
    next_id: u64,
    next_serial: u64,
    config: ConfigFile,
    state_path: PathBuf,
    /// When waiting probes next look for their jail.
    next_retry: Option<Instant>,
    /// Probes and commands whose pidfd said "exited" but that could not be reaped yet (a
    /// tracer holds them): looked at again at the time given, instead of spun on.
    rechecks: BTreeMap<Token, Instant>,
    /// Out of descriptors: the listener is not watched until then.
    listener_paused: Option<Instant>,
    limits: Limits,
    descriptor_limit: usize,
}

/// What a ready descriptor stands for; the poller carries it as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Listener,
    Signals,
    Client(u64),
    Probe(u64),
    Jail(i32),
    Command(u64),
    Output(u64),
    /// A killed probe, to be reaped once gone.
    Reap(u64),
}

impl Token {
    const ID_BITS: u32 = 56;

    fn encode(self) -> u64 {
        let (kind, id) = match self {
            Token::Listener => (1, 0),
            Token::Signals => (2, 0),
            Token::Client(id) => (3, id),
            Token::Probe(id) => (4, id),
            Token::Jail(id) => (5, u64::from(id as u32)),
            Token::Command(id) => (6, id),
            Token::Output(id) => (7, id),
            Token::Reap(id) => (8, id),
        };
        (kind << Self::ID_BITS) | (id & ((1 << Self::ID_BITS) - 1))
    }

    fn decode(value: u64) -> Option<Token> {
        let id = value & ((1 << Self::ID_BITS) - 1);
        Some(match value >> Self::ID_BITS {
            1 => Token::Listener,
            2 => Token::Signals,
            3 => Token::Client(id),
            4 => Token::Probe(id),
            5 => Token::Jail(id as u32 as i32),
            6 => Token::Command(id),
            7 => Token::Output(id),
            8 => Token::Reap(id),
            _ => return None,
        })
    }
}

/// Holds the pidfile's lock for the daemon's lifetime (pidfile(3) semantics).
struct PidFile {
    file: File,
}

impl PidFile {
    fn lock(path: &Path) -> Result<PidFile, Error> {
        let cant =
            |e: io::Error| Error::new(Kind::CantCreate, format!("pidfile {}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            // Not truncated before the lock is ours: the pid in it names the holder.
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(cant)?;
        if let Err(e) =
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(if e == rustix::io::Errno::WOULDBLOCK {
                Error::new(
                    Kind::CantCreate,
                    format!(
                        "a jaildaemon (pid {}) already holds the pidfile {}",
                        pid.trim(),
                        path.display()
                    ),
                )
            } else {
                cant(e.into())
            });
        }
        Ok(PidFile { file })
    }

    fn write_pid(&mut self, pid: u32) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{pid}")
    }
}

/// Takes the socket path: refuses if a daemon answers there, removes a stale socket, never
/// removes anything that is not a socket.
fn take_socket(path: &Path, group: Option<u32>) -> Result<UnixListener, Error> {
    let cant = |m: String| Error::new(Kind::CantCreate, format!("socket {}: {m}", path.display()));
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(cant("exists and is not a socket; not touching it".into()));
        }
        match crate::client::ask(path, &Request::Ping) {
            Ok(Response::Pong { pid }) => {
                return Err(cant(format!(
                    "a jaildaemon (pid {pid}) is already serving it"
                )));
            }
            Ok(_)
            | Err(Error {
                kind: Kind::Protocol | Kind::Timeout,
                ..
            }) => {
                return Err(cant("something else is listening on it".into()));
            }
            Err(_) => {
                log::info!("removing stale socket {}", path.display());
                std::fs::remove_file(path).map_err(|e| cant(e.to_string()))?;
            }
        }
    }
    // Created with mode 0600 from the start: only root may connect.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.map_err(|e| cant(e.to_string()))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(|e| cant(e.to_string()))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(|e| cant(e.to_string()))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| cant(e.to_string()))?;
    Ok(listener)
}

pub fn run(config: &DaemonConfig) -> Result<(), Error> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::new(Kind::NoPerm, "the daemon must run as root"));
    }
    shed_environment()?;
    sys::default_sigchld();
    // Both files are read before anything is taken or detached, so that a bad one is refused
    // at the terminal; their probes are armed once the daemon runs.
    let persisted = crate::state::load(&config.state)?;
    let declared = crate::config::load(&config.config, config.config_named)?;
    let mut pidfile = PidFile::lock(&config.pidfile)?;
    let group = match &config.group {
        None => None,
        Some(name) => {
            let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let gid = crate::ids::resolve_group(name, &groups)
                .ok_or_else(|| Error::new(Kind::NoUser, format!("unknown group '{name}' (-G)")))?;
            Some(gid)
        }
    };
    let listener = take_socket(&config.socket, group)?;
    let spawner = Spawner::load().map_err(|e| Error::os("loading the probe image", e))?;
    let signals = sys::signalfd(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| Error::os("signalfd", e))?;
    let poller = Poller::new().map_err(|e| Error::os("creating the event queue", e))?;
    // Every armed probe holds a descriptor; let the daemon use its whole hard limit.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: nofile.maximum,
            maximum: nofile.maximum,
        },
    );
    let descriptor_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let limits = probe_limits()?;
    if !config.foreground {
        match sys::detach().map_err(|e| Error::os("detaching", e))? {
            Some(child) => {
                // The parent writes the pid, so that the pidfile is complete when `-D` returns.
                pidfile
                    .write_pid(child)
                    .map_err(|e| Error::os("writing the pidfile", e))?;
                std::process::exit(0);
            }
            None => crate::logging::switch_to_syslog(),
        }
    } else {
        pidfile
            .write_pid(std::process::id())
            .map_err(|e| Error::os("writing the pidfile", e))?;
    }
    log::info!(
        "listening on {} (pid {})",
        config.socket.display(),
        std::process::id()
    );
    for warning in sys::host_warnings() {
        log::warn!("{warning}");
    }
    let mut daemon = Daemon {
        listener,
        group,
        signals,
        spawner,
        poller,
        probes: BTreeMap::new(),
        jails: BTreeMap::new(),
        commands: BTreeMap::new(),
        clients: BTreeMap::new(),
        reaping: BTreeMap::new(),
        next_id: 1,
        next_serial: 1,
        rechecks: BTreeMap::new(),
        listener_paused: None,
        limits,
        descriptor_limit,
        config: ConfigFile {
            path: config.config.clone(),
            named: config.config_named,
        },
        state_path: config.state.clone(),
        next_retry: None,
    };
    listen(&daemon.poller, daemon.listener.as_fd(), Token::Listener);
    listen(&daemon.poller, daemon.signals.as_fd(), Token::Signals);
    for arm in persisted {
        daemon.declare(arm, Origin::Persisted);
    }
    for arm in declared {
        daemon.declare(arm, Origin::Config);
    }
    notify_service_manager("READY=1");
    let result = daemon.serve();
    notify_service_manager("STOPPING=1");
    daemon.shutdown();
    let _ = std::fs::remove_file(&config.socket);
    let _ = std::fs::remove_file(&config.pidfile);
    drop(pidfile);
    log::info!("stopped");
    result
}

impl Daemon {
    fn serve(&mut self) -> Result<(), Error> {
        let mut ready = Vec::new();
        loop {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            ready.clear();
            self.poller
                .wait(timeout, &mut ready)
                .map_err(|e| Error::os("waiting for events", e))?;
            for token in ready.iter().filter_map(|t| Token::decode(*t)) {
                match token {
                    Token::Listener => self.accept(),
                    Token::Signals => {
                        while let Ok(Some(sig)) = sys::read_signalfd(self.signals.as_fd()) {
                            if sig == libc::SIGHUP {
                                self.reload();
                            } else {
                                log::info!("signal {sig}: shutting down");
                                return Ok(());
                            }
                        }
                    }
                    Token::Client(id) => {
                        if self.read_client(id) {
                            self.drop_client(id);
                        }
                    }
                    Token::Probe(id) => self.probe_exited(id),
                    Token::Jail(id) => self.jail_stopped(id),
                    Token::Output(id) => self.command_output(id),
                    Token::Command(id) => self.command_exited(id),
                    Token::Reap(serial) => self.reap(serial),
                }
            }
            self.on_time(Instant::now());
        }
    }

    /// The earliest moment something is due without an event: a client's deadline, the end of
    /// a jail's grace, a retry of waiting probes, a recheck, the end of an accept pause.
    fn next_deadline(&self) -> Option<Instant> {
        let clients = self.clients.values().map(|c| c.deadline);
        let jails = self
            .jails
            .values()
            .filter_map(|w| w.idle_since.map(|t| t + JAIL_GRACE));
        clients
            .chain(jails)
            .chain(self.next_retry)
            .chain(self.rechecks.values().copied())
            .chain(self.listener_paused)
            .min()
    }

    /// Does what is due at `now`.
    fn on_time(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            log::warn!("client sent no complete request within {CLIENT_DEADLINE:?}; dropped");
            self.drop_client(id);
        }
        let idle: Vec<i32> = self
            .jails
            .iter()
            .filter(|(_, w)| w.idle_since.is_some_and(|t| t + JAIL_GRACE <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.unwatch_jail(id);
        }
        if self.next_retry.is_some_and(|t| t <= now) {
            self.retry_waiting();
        }
        let due: Vec<Token> = self
            .rechecks
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(token, _)| *token)
            .collect();
        for token in due {
            self.rechecks.remove(&token);
            match token {
                Token::Probe(id) => self.probe_exited(id),
                Token::Command(serial) => self.command_exited(serial),
                Token::Reap(serial) => self.reap(serial),
                _ => {}
            }
        }
        if self.listener_paused.is_some_and(|t| t <= now) {
            self.listener_paused = None;
            listen(&self.poller, self.listener.as_fd(), Token::Listener);
        }
    }

    /// Descriptors in use now, as the daemon counts them.
    fn descriptors_in_use(&self) -> usize {
        let armed = self.probes.values().filter(|p| p.process.is_some()).count();
        let reaping = self.reaping.len();
        BASE_DESCRIPTORS
            + armed
            + reaping
            + self.jails.len()
            + 2 * self.commands.len()
            + self.clients.len()
    }

    /// Whether one more probe leaves the reserve free.
    fn descriptor_for_probe(&self) -> Result<(), Error> {
        if self.descriptors_in_use() + RESERVED_DESCRIPTORS + 1 > self.descriptor_limit {
            return Err(Error::new(
                Kind::Limit,
                format!(
                    "too many probes for the daemon's descriptor limit ({}): {} in use",
                    self.descriptor_limit,
                    self.descriptors_in_use()
                ),
            ));
        }
        Ok(())
    }

    fn pause_listener(&mut self, why: &str) {
        log::warn!("{why}; not accepting for {ACCEPT_PAUSE:?}");
        self.poller.remove(self.listener.as_fd());
        self.listener_paused = Some(Instant::now() + ACCEPT_PAUSE);
    }

    fn drop_client(&mut self, id: u64) {
        if let Some(client) = self.clients.remove(&id) {
            self.poller.remove(client.stream.as_fd());
        }
    }

    fn accept(&mut self) {
        loop {
            // Clients may not take the descriptors kept for firing probes: the next one waits
            // in the backlog while the listener rests.
            if self.descriptors_in_use() + RESERVED_DESCRIPTORS >= self.descriptor_limit {
                self.pause_listener("descriptors kept for commands");
                return;
            }
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE) or memory: the client waits in the
                    // backlog while the listener rests, instead of the daemon spinning on it.
                    self.pause_listener(&format!("accept: {e}"));
                    return;
                }
            };
            let in_group = |peer: &sys::PeerCredentials| {
                self.group
                    .is_some_and(|g| peer.gid == g || peer.groups.contains(&g))
            };
            let refusal = match sys::peer_credentials(stream.as_fd()) {
                Ok(peer) if peer.uid == 0 || in_group(&peer) => None,
                Ok(peer) => Some(format!(
                    "peer uid {} (pid {}) is neither root nor in the socket's group",
                    peer.uid, peer.pid
                )),
                Err(e) => Some(format!("cannot read the peer's credentials: {e}")),
            };
            if let Some(why) = refusal {
                log::warn!("refused a client: {why}");
                let answer = Response::Refused(Error::new(Kind::NoPerm, format!("refused: {why}")));
                let _ = (&stream).write_all(&proto::encode(&answer));
                continue;
            }
            if self.clients.len() >= MAX_CLIENTS || stream.set_nonblocking(true).is_err() {
                let busy = Error::new(
                    Kind::Timeout,
                    "the daemon is busy with other clients; try again",
                );
                let _ = (&stream).write_all(&proto::encode(&Response::Refused(busy)));
                continue;
            }
            let id = self.next_serial;
            self.next_serial += 1;
            listen(&self.poller, stream.as_fd(), Token::Client(id));
            self.clients.insert(
                id,
                Client {
                    stream,
                    buf: Vec::new(),
                    deadline: Instant::now() + CLIENT_DEADLINE,
                },
            );
        }
    }

    /// Reads from client `id`; returns true when it is done with (answered or dropped).
    fn read_client(&mut self, id: u64) -> bool {
        let mut chunk = [0u8; 4096];
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        let n = match client.stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return false;
            }
            Err(_) => return true,
        };
        client.buf.extend_from_slice(&chunk[..n]);
        let answer = match proto::decode::<Request>(&client.buf) {
            Ok(None) => return false,
            Ok(Some(Request::Ping)) => Response::Pong {
                pid: std::process::id(),
            },
            Ok(Some(Request::Arm(arm))) => match self.arm_request(arm) {
                Ok((probe, pid)) => Response::Armed { probe, pid },
                Err(e) => {
                    log::warn!("refused to arm: {e}");
                    Response::Refused(e)
                }
            },
            Ok(Some(Request::List)) => Response::Probes {
                probes: self.list(),
            },
            Ok(Some(Request::Remove { probe, jail })) => match self.remove(&probe, &jail) {
                Ok(probes) => Response::Removed { probes },
                Err(e) => {
                    log::warn!("refused to remove: {e}");
                    Response::Refused(e)
                }
            },
            Err(e) => {
                log::warn!("bad request: {e}");
                Response::Refused(e)
            }
        };
        let Some(client) = self.clients.get(&id) else {
            return true;
        };
        let stream = &client.stream;
        // However large the answer (a list of every probe), a client that does not read it
        // holds the daemon at most CLIENT_DEADLINE in all.
        if let Err(e) = write_within(stream, &proto::encode(&answer), CLIENT_DEADLINE) {
            log::warn!("client did not take its answer: {e}; dropped");
        }
        true
    }
}

/// Tells a service manager that speaks the sd_notify protocol (systemd's `Type=notify`) how
/// the daemon is doing. Without `NOTIFY_SOCKET` in the environment it does nothing.
fn notify_service_manager(state: &str) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        match path.as_bytes().strip_prefix(b"@") {
            // An abstract socket, as systemd uses.
            #[cfg(target_os = "linux")]
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &address)
            }
            _ => socket.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        log::warn!("telling the service manager {state}: {e}");
    }
}

/// `JAILDAEMON_PROBE_LIMITS=TOTAL,PER_JAIL` lowers the probe limits (for tests, or a host
/// that wants tighter ones); it can never raise them.
fn probe_limits() -> Result<Limits, Error> {
    let mut limits = Limits {
        total: MAX_PROBES,
        per_jail: MAX_PROBES_PER_JAIL,
    };
    let Some(value) = std::env::var_os("JAILDAEMON_PROBE_LIMITS") else {
        return Ok(limits);
    };
    let bad = || {
        Error::new(
            Kind::Usage,
            format!(
                "JAILDAEMON_PROBE_LIMITS={}: want TOTAL,PER_JAIL, at most {MAX_PROBES},{MAX_PROBES_PER_JAIL}",
                value.to_string_lossy()
            ),
        )
    };
    let text = value.to_str().ok_or_else(bad)?;
    let (total, per_jail) = text.split_once(',').ok_or_else(bad)?;
    let parse = |n: &str, max: usize| {
        n.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
    };
    limits.total = parse(total, MAX_PROBES).ok_or_else(bad)?;
    limits.per_jail = parse(per_jail, MAX_PROBES_PER_JAIL).ok_or_else(bad)?;
    log::info!(
        "probe limits lowered to {} in all, {} per jail",
        limits.total,
        limits.per_jail
    );
    Ok(limits)
}

/// Has `poller` report `fd` under `token`. A failure (the kernel out of memory) is logged: the
/// descriptor then goes unwatched, which the log says. A free function, so that it borrows
/// only the poller while a probe of the daemon is borrowed for change.
fn listen(poller: &Poller, fd: std::os::fd::BorrowedFd<'_>, token: Token) {
    if let Err(e) = poller.add(fd, token.encode()) {
        log::error!("cannot watch {token:?}: {e}");
    }
}

/// The only variables the daemon keeps from its environment.
const KEPT_VARIABLES: [&str; 2] = ["NOTIFY_SOCKET", "JAILDAEMON_PROBE_LIMITS"];

/// Starts the daemon again with an empty environment (but for `KEPT_VARIABLES`), once: until a
/// probe's helper execs, it holds a copy of the daemon's memory, environment block included,
/// and a jail root without CAP_SYS_PTRACE may still read /proc/PID/environ of it. Whatever the
/// administrator's shell or service manager had in there stays out of the jail.
fn shed_environment() -> Result<(), Error> {
    let extra = std::env::vars_os().any(|(name, _)| {
        !KEPT_VARIABLES
            .iter()
            .any(|kept| name == std::ffi::OsStr::new(kept))
    });
    if !extra {
        return Ok(());
    }
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| Error::os("finding our own executable", e))?;
    let kept = std::env::vars_os().filter(|(name, _)| {
        KEPT_VARIABLES
            .iter()
            .any(|kept| name == std::ffi::OsStr::new(kept))
    });
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env_clear()
        .envs(kept)
        .exec();
    Err(Error::os("starting again with an empty environment", err))
}

/// Writes all of `bytes` to the non-blocking `stream`, waiting for room at most `limit` in all.
fn write_within(stream: &UnixStream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    let mut rest = bytes;
    while !rest.is_empty() {
        match (&*stream).write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                let timeout = rustix::time::Timespec::try_from(left).map_err(io::Error::other)?;
                let mut fds = [rustix::event::PollFd::new(
                    stream,
                    rustix::event::PollFlags::OUT,
                )];
                if left.is_zero() || rustix::event::poll(&mut fds, Some(&timeout))? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("not read within {limit:?}"),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
