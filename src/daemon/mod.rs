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

use rustix::event::{PollFd, PollFlags};

use crate::cli::DaemonConfig;
use crate::error::{Error, Kind};
use crate::proto::{self, Origin, Request, Response};
use crate::sys::{self, ProbeImage};
use commands::RunningCommand;
use probes::{JAIL_GRACE, Probe, WatchedJail};
pub use probes::{MAX_PROBES, MAX_PROBES_PER_JAIL, MAX_RUNNING_PER_PROBE, RETRY_INTERVAL};

/// A client must send its whole request within this time.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; beyond that a client is answered "busy" at once.
const MAX_CLIENTS: usize = 256;
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

struct Daemon {
    listener: UnixListener,
    /// Besides root, members of this host group may talk to the daemon.
    group: Option<u32>,
    signals: OwnedFd,
    image: ProbeImage,
    probes: BTreeMap<u64, Probe>,
    /// Jails with probes, by `Jail::id`.
    jails: BTreeMap<i32, WatchedJail>,
    commands: Vec<RunningCommand>,
    clients: Vec<Client>,
    next_id: u64,
    config: ConfigFile,
    state_path: PathBuf,
    /// When waiting probes next look for their jail.
    next_retry: Option<Instant>,
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
    let image = ProbeImage::load().map_err(|e| Error::os("loading the probe image", e))?;
    let signals = sys::signalfd(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| Error::os("signalfd", e))?;
    // Every armed probe holds a pidfd; let the daemon use its whole hard limit.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: nofile.maximum,
            maximum: nofile.maximum,
        },
    );
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
        image,
        probes: BTreeMap::new(),
        jails: BTreeMap::new(),
        commands: Vec::new(),
        clients: Vec::new(),
        next_id: 1,
        config: ConfigFile {
            path: config.config.clone(),
            named: config.config_named,
        },
        state_path: config.state.clone(),
        next_retry: None,
    };
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

/// What a poll slot stands for.
#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Signals,
    Client(usize),
    Probe(u64),
    Jail(i32),
    Command(usize),
    Output(usize),
}

impl Daemon {
    fn serve(&mut self) -> Result<(), Error> {
        loop {
            let mut slots = vec![Slot::Listener, Slot::Signals];
            let mut fds = vec![
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&self.signals, PollFlags::IN),
            ];
            for (i, c) in self.clients.iter().enumerate() {
                slots.push(Slot::Client(i));
                fds.push(PollFd::new(&c.stream, PollFlags::IN));
            }
            for (id, p) in &self.probes {
                if let Some(process) = &p.process {
                    slots.push(Slot::Probe(*id));
                    fds.push(PollFd::from_borrowed_fd(process.poll_fd(), PollFlags::IN));
                }
            }
            for (id, w) in &self.jails {
                slots.push(Slot::Jail(*id));
                fds.push(PollFd::new(&w.pidfd, PollFlags::IN));
            }
            for (i, c) in self.commands.iter().enumerate() {
                slots.push(Slot::Command(i));
                fds.push(PollFd::from_borrowed_fd(c.process.poll_fd(), PollFlags::IN));
                if let Some(output) = &c.output {
                    slots.push(Slot::Output(i));
                    fds.push(PollFd::new(output, PollFlags::IN));
                }
            }
            let idle_jails = self.jails.values().filter_map(|w| w.idle_since);
            let timeout = self
                .clients
                .iter()
                .map(|c| c.deadline)
                .chain(idle_jails.map(|t| t + JAIL_GRACE))
                .chain(self.next_retry)
                .map(|t| t.saturating_duration_since(Instant::now()))
                .min()
                .map(|d| {
                    rustix::time::Timespec::try_from(d).unwrap_or(rustix::time::Timespec {
                        tv_sec: 1,
                        tv_nsec: 0,
                    })
                });
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::os("poll", e.into())),
            }
            let ready: Vec<Slot> = slots
                .iter()
                .zip(&fds)
                .filter(|(_, fd)| !fd.revents().is_empty())
                .map(|(slot, _)| *slot)
                .collect();
            drop(fds);
            let mut finished_clients = Vec::new();
            let mut finished_commands = Vec::new();
            for slot in ready {
                match slot {
                    Slot::Listener => self.accept(),
                    Slot::Signals => {
                        while let Ok(Some(sig)) = sys::read_signalfd(self.signals.as_fd()) {
                            if sig == libc::SIGHUP {
                                self.reload();
                            } else {
                                log::info!("signal {sig}: shutting down");
                                return Ok(());
                            }
                        }
                    }
                    Slot::Client(i) => {
                        if self.read_client(i) {
                            finished_clients.push(i);
                        }
                    }
                    Slot::Probe(id) => self.probe_exited(id),
                    Slot::Jail(id) => self.jail_stopped(id),
                    Slot::Output(i) => {
                        self.commands[i].drain_output();
                    }
                    Slot::Command(i) => {
                        if self.command_exited(i) {
                            finished_commands.push(i);
                        }
                    }
                }
            }
            let now = Instant::now();
            for (i, c) in self.clients.iter().enumerate() {
                if c.deadline <= now && !finished_clients.contains(&i) {
                    log::warn!(
                        "client sent no complete request within {CLIENT_DEADLINE:?}; dropped"
                    );
                    finished_clients.push(i);
                }
            }
            finished_clients.sort_unstable();
            for i in finished_clients.into_iter().rev() {
                self.clients.swap_remove(i);
            }
            self.jails
                .retain(|_, w| w.idle_since.is_none_or(|t| t + JAIL_GRACE > now));
            finished_commands.sort_unstable();
            for i in finished_commands.into_iter().rev() {
                let done = self.commands.swap_remove(i);
                self.after_command(done.probe);
            }
            if self.next_retry.is_some_and(|t| t <= Instant::now()) {
                self.retry_waiting();
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("accept: {e}");
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
            self.clients.push(Client {
                stream,
                buf: Vec::new(),
                deadline: Instant::now() + CLIENT_DEADLINE,
            });
        }
    }

    /// Reads from client `i`; returns true when it is done with (answered or dropped).
    fn read_client(&mut self, i: usize) -> bool {
        let mut chunk = [0u8; 4096];
        let n = match self.clients[i].stream.read(&mut chunk) {
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
        self.clients[i].buf.extend_from_slice(&chunk[..n]);
        let answer = match proto::decode::<Request>(&self.clients[i].buf) {
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
        let stream = &self.clients[i].stream;
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(CLIENT_DEADLINE));
        let _ = (&*stream).write_all(&proto::encode(&answer));
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
