//! The daemon: owns the socket, the probes and the commands they fire, in one single-threaded
//! poll loop (so that a fork for a probe never copies a lock held by another thread).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use crate::cli::DaemonConfig;
use crate::error::{Error, Kind};
use crate::proto::{self, Arm, Request, Respawn, Response};
use crate::sys::{self, Exit, Jail, ProbeImage, Process};

/// A client must send its whole request within this time.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; beyond that a client is answered "busy" at once.
const MAX_CLIENTS: usize = 256;
const MAGIC_EXIT: i32 = crate::MAGIC_EXIT as i32;
/// Probes armed at once, in all and in one jail. Each costs a process, a pidfd and about
/// 40 KiB of kernel memory; pid_max (32768 by default) bounds the host anyway.
pub const MAX_PROBES: usize = 20_000;
pub const MAX_PROBES_PER_JAIL: usize = 10_000;
/// Commands of one `-R` probe that may run at once. At the limit the probe is not re-armed
/// until one of them finishes, so a jail that hammers it with SIGHUP cannot pile up commands
/// on the host: further triggers find no probe to signal.
pub const MAX_RUNNING_PER_PROBE: usize = 4;
/// PATH of every command. The rest of its environment is the JAILDAEMON_* variables; nothing
/// of the daemon's own environment reaches it.
pub(crate) const COMMAND_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct Probe {
    arm: Arm,
    jail: Jail,
    title: CString,
    uid: u32,
    gid: u32,
    /// The armed probe process, if one is armed now.
    process: Option<Process>,
    /// Commands of this probe still running.
    running: usize,
    /// No more arming: single shot fired, or re-arming failed.
    finished: bool,
}

/// A jail with probes, watched so that its stop is noticed and logged. It stays watched for
/// `JAIL_GRACE` after its last probe ended: a stopping container kills its probes before its
/// init is gone (the kernel waits for us to reap them), so the probes end first.
struct WatchedJail {
    /// The jail as the utility named it.
    spec: String,
    pidfd: OwnedFd,
    /// Probes of this jail that ended by a signal within the last `JAIL_GRACE`.
    ended: Vec<(u64, Instant)>,
    /// When its last probe ended.
    idle_since: Option<Instant>,
}

const JAIL_GRACE: Duration = Duration::from_secs(5);

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    deadline: Instant,
}

struct RunningCommand {
    probe: u64,
    process: Process,
    started: Instant,
    /// Read end of the pipe that carries the command's stdout and stderr into our log.
    output: Option<OwnedFd>,
    /// An incomplete last line of output.
    partial: Vec<u8>,
}

/// Longest line of command output logged as one message; longer lines are split.
const MAX_OUTPUT_LINE: usize = 1024;

impl RunningCommand {
    /// Logs what the command wrote, line by line; returns false at end of output.
    fn drain_output(&mut self) -> bool {
        let Some(fd) = &self.output else { return false };
        let mut chunk = [0u8; 4096];
        let open = loop {
            match rustix::io::read(fd, &mut chunk) {
                Ok(0) => break false,
                Ok(n) => self.partial.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::AGAIN) => break true,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => break false,
            }
        };
        loop {
            // A line ends at a newline, at MAX_OUTPUT_LINE bytes, or at the end of output.
            let (len, newline) = match self.partial.iter().position(|&b| b == b'\n') {
                Some(nl) if nl <= MAX_OUTPUT_LINE => (nl, 1),
                _ if self.partial.len() >= MAX_OUTPUT_LINE => (MAX_OUTPUT_LINE, 0),
                _ if !open && !self.partial.is_empty() => (self.partial.len(), 0),
                _ => break,
            };
            let line: Vec<u8> = self.partial.drain(..len + newline).take(len).collect();
            log::info!(
                "probe {} command: {}",
                self.probe,
                String::from_utf8_lossy(&line)
            );
        }
        if !open {
            self.output = None;
        }
        open
    }
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
    };
    let result = daemon.serve();
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
                                log::info!("SIGHUP: nothing to reload");
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
            Ok(Some(Request::Arm(arm))) => match self.arm(arm) {
                Ok((probe, pid)) => Response::Armed { probe, pid },
                Err(e) => {
                    log::warn!("refused to arm: {e}");
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

    fn arm(&mut self, arm: Arm) -> Result<(u64, i32), Error> {
        arm.validate()?;
        let jail = Jail::open(&arm.jail)?;
        let in_jail = self
            .probes
            .values()
            .filter(|p| p.jail.id() == jail.id())
            .count();
        if self.probes.len() >= MAX_PROBES || in_jail >= MAX_PROBES_PER_JAIL {
            return Err(Error::new(
                Kind::Limit,
                format!(
                    "too many probes: {} in all (limit {MAX_PROBES}), {in_jail} in jail {} (limit {MAX_PROBES_PER_JAIL})",
                    self.probes.len(),
                    arm.jail
                ),
            ));
        }
        let (uid, gid) = sys::resolve_ids(&jail, arm.user.as_deref(), arm.group.as_deref())?;
        let title = CString::new(arm.title.clone())
            .map_err(|_| Error::new(Kind::Data, "the title contains a NUL byte"))?;
        let process = sys::spawn_probe(&self.image, &jail, &title, uid, gid)?;
        self.watch(&jail, &arm.jail);
        let id = self.next_id;
        self.next_id += 1;
        let pid = process.pid();
        log::info!(
            "probe {id} armed: jail {}, title '{}', uid {uid}, gid {gid}, respawn {:?}, host pid {pid}",
            arm.jail,
            arm.title,
            arm.respawn
        );
        self.probes.insert(
            id,
            Probe {
                arm,
                jail,
                title,
                uid,
                gid,
                process: Some(process),
                running: 0,
                finished: false,
            },
        );
        Ok((id, pid))
    }

    fn probe_exited(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        let Some(process) = probe.process.take() else {
            return;
        };
        let exit = match process.try_wait() {
            Ok(Some(exit)) => exit,
            Ok(None) => {
                probe.process = Some(process);
                return;
            }
            Err(e) => {
                log::error!("probe {id}: waitid: {e}");
                Exit::Signal(0)
            }
        };
        if exit != Exit::Code(MAGIC_EXIT) {
            log::warn!(
                "probe {id} (jail {}, '{}') ended by {exit}: nothing fired, probe removed",
                probe.arm.jail,
                probe.arm.title
            );
            probe.finished = true;
            if let (Exit::Signal(_), Some(w)) = (exit, self.jails.get_mut(&probe.jail.id())) {
                let now = Instant::now();
                w.ended.retain(|(_, t)| *t + JAIL_GRACE > now);
                w.ended.push((id, now));
            }
            self.forget_if_idle(id);
            return;
        }
        log::info!(
            "probe {id} (jail {}, '{}') triggered",
            probe.arm.jail,
            probe.arm.title
        );
        match spawn_command(id, probe) {
            Ok((process, output)) => {
                probe.running += 1;
                self.commands.push(RunningCommand {
                    probe: id,
                    process,
                    started: Instant::now(),
                    output: Some(output),
                    partial: Vec::new(),
                });
            }
            Err(e) => log::error!("probe {id}: cannot run its command: {e}"),
        }
        match probe.arm.respawn {
            Respawn::Never => probe.finished = true,
            Respawn::Immediately if probe.running < MAX_RUNNING_PER_PROBE => self.rearm(id),
            Respawn::Immediately => log::warn!(
                "probe {id}: {MAX_RUNNING_PER_PROBE} commands still running; re-arming when one finishes"
            ),
            Respawn::AfterCommand if probe.running == 0 => self.rearm(id),
            Respawn::AfterCommand => {}
        }
        self.forget_if_idle(id);
    }

    /// Reaps command `i`; returns true once it has exited.
    fn command_exited(&mut self, i: usize) -> bool {
        let command = &mut self.commands[i];
        match command.process.try_wait() {
            Ok(None) => false,
            result => {
                // Log what it wrote before saying that it ended.
                command.drain_output();
                let status = result
                    .map(|e| e.map_or("?".to_string(), |e| e.to_string()))
                    .unwrap_or_else(|e| e.to_string());
                log::info!(
                    "probe {}: command ended with {status} after {:?}",
                    command.probe,
                    command.started.elapsed()
                );
                true
            }
        }
    }

    fn after_command(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        probe.running -= 1;
        // Re-arms an `-r` probe, and an `-R` probe that was held back at its limit.
        if probe.arm.respawn != Respawn::Never && !probe.finished && probe.process.is_none() {
            self.rearm(id);
        }
        self.forget_if_idle(id);
    }

    fn rearm(&mut self, id: u64) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        match sys::spawn_probe(&self.image, &probe.jail, &probe.title, probe.uid, probe.gid) {
            Ok(process) => {
                log::info!("probe {id} re-armed, host pid {}", process.pid());
                probe.process = Some(process);
            }
            Err(e) => {
                log::error!("probe {id}: cannot re-arm, removed: {e}");
                probe.finished = true;
            }
        }
    }

    fn forget_if_idle(&mut self, id: u64) {
        let idle = |p: &Probe| p.finished && p.running == 0 && p.process.is_none();
        if !self.probes.get(&id).is_some_and(idle) {
            return;
        }
        let jail = self.probes.remove(&id).expect("present").jail.id();
        if self.probes.values().any(|p| p.jail.id() == jail) {
            return;
        }
        if let Some(w) = self.jails.get_mut(&jail) {
            w.idle_since = Some(Instant::now());
        }
    }

    /// Watches `jail` while it has probes; a jail of the same id that has stopped unnoticed
    /// is dealt with first.
    fn watch(&mut self, jail: &Jail, spec: &str) {
        let id = jail.id();
        if self
            .jails
            .get(&id)
            .is_some_and(|w| sys::readable_now(w.pidfd.as_fd()))
        {
            self.jail_stopped(id);
        }
        if let Some(w) = self.jails.get_mut(&id) {
            w.idle_since = None;
            return;
        }
        let Some(pidfd) = jail.watch_fd().and_then(|fd| fd.try_clone_to_owned().ok()) else {
            return;
        };
        self.jails.insert(
            id,
            WatchedJail {
                spec: spec.to_string(),
                pidfd,
                ended: Vec::new(),
                idle_since: None,
            },
        );
    }

    /// The jail `id` stopped. A probe that exited before it is handled as usual (it may have
    /// been triggered just before a jail's shutdown); the others are killed and forgotten
    /// without firing, and the stop is logged with every probe that went with it.
    fn jail_stopped(&mut self, id: i32) {
        let Some(watch) = self.jails.remove(&id) else {
            return;
        };
        let left: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, p)| p.jail.id() == id)
            .map(|(probe, _)| *probe)
            .collect();
        let now = Instant::now();
        let mut gone: Vec<u64> = watch
            .ended
            .iter()
            .filter(|(_, t)| *t + JAIL_GRACE > now)
            .map(|(probe, _)| *probe)
            .collect();
        for probe_id in left {
            let exited = self.probes[&probe_id]
                .process
                .as_ref()
                .is_some_and(|p| sys::readable_now(p.poll_fd()));
            if exited {
                self.probe_exited(probe_id);
            }
            let Some(probe) = self.probes.get_mut(&probe_id) else {
                continue;
            };
            probe.finished = true;
            if let Some(process) = probe.process.take() {
                process.kill();
                let _ = process.wait();
                gone.push(probe_id);
            }
            self.forget_if_idle(probe_id);
        }
        gone.sort_unstable();
        let list: Vec<String> = gone.iter().map(u64::to_string).collect();
        log::warn!(
            "jail {} (id {id}) stopped: probe(s) [{}] gone with it, nothing fired",
            watch.spec,
            list.join(", ")
        );
    }

    /// Kills and reaps every armed probe. Running commands are left to finish on their own:
    /// killing a half-done jail restart would be worse than letting it end.
    fn shutdown(&mut self) {
        for probe in self.probes.values_mut() {
            if let Some(process) = probe.process.take() {
                process.kill();
                let _ = process.wait();
            }
        }
        if !self.commands.is_empty() {
            log::info!(
                "{} command(s) still running are left to finish",
                self.commands.len()
            );
        }
    }
}

/// Runs the probe's command on the host with `/bin/sh -c`, with a fixed environment, stdin
/// from /dev/null, and stdout and stderr into a pipe whose lines the daemon logs.
fn spawn_command(id: u64, probe: &Probe) -> io::Result<(Process, OwnedFd)> {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&reader, true)?;
    let stderr = writer.try_clone()?;
    let child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&probe.arm.command)
        .env_clear()
        .env("PATH", COMMAND_PATH)
        .env("JAILDAEMON_JAIL", &probe.arm.jail)
        .env("JAILDAEMON_TITLE", &probe.arm.title)
        .env("JAILDAEMON_PROBE", id.to_string())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(stderr))
        .spawn()?;
    Ok((Process::from_own_child(child.id())?, reader))
}
