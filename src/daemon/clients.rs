//! The daemon's clients: accepting them (root, or the `-G` group, and not into the descriptors
//! kept for commands), reading one request each within a deadline, and writing its answer as
//! the socket takes it.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::core::{ClientId, Event, RESERVED_DESCRIPTORS};
use super::logbudget::{Cause, LineKind, LogLine};
use super::{Daemon, Token, commands, listen};
use crate::error::{Error, Kind};
use crate::proto::{self, Request, Response};
use crate::sys;

/// A client must send its whole request within this time, and take its answer within it.
pub(super) const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once; beyond that a client is answered "busy" at once.
pub(super) const MAX_CLIENTS: usize = 256;
/// Of those, slots only root may take: with every other slot held by members of the `-G`
/// group, root is still served.
pub(super) const ROOT_CLIENTS: usize = 32;
/// Connections one user other than root may hold at once; beyond that the next is refused
/// (exit 75) at once.
pub(super) const MAX_CLIENTS_PER_USER: usize = 16;
/// With every descriptor taken, the listener is left alone this long before the next accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A connection, from its request to its answer.
pub(super) enum ClientState {
    /// Sending its request, until `deadline`.
    Reading { buf: Vec<u8>, deadline: Instant },
    /// Its request is with the core: a probe being looked up or placed.
    Waiting,
    /// Taking its answer, until `deadline`.
    Writing {
        answer: Vec<u8>,
        written: usize,
        deadline: Instant,
    },
}

pub(super) struct Client {
    pub(super) stream: UnixStream,
    pub(super) state: ClientState,
    /// Its peer's uid, for the limits per user.
    uid: u32,
}

impl Daemon {
    fn pause_listener(&mut self, why: &str) {
        log::warn!("{why}; not accepting for {}ms", ACCEPT_PAUSE.as_millis());
        self.poller.remove(self.listener.as_fd());
        self.listener_paused = Some(Instant::now() + ACCEPT_PAUSE);
    }

    pub(super) fn drop_client(&mut self, id: ClientId) {
        if let Some(client) = self.clients.remove(&id) {
            self.poller.remove(client.stream.as_fd());
        }
    }

    pub(super) fn accept(&mut self) {
        loop {
            // Clients may not take the descriptors kept for firing probes: the next one waits
            // in the backlog while the listener rests.
            self.core.set_shell_descriptors(self.shell_descriptors());
            if self.core.descriptors_in_use() + RESERVED_DESCRIPTORS >= self.descriptor_limit {
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
            // A refused or turned-away client gets its one answer without waiting for room in
            // its socket: a new socket's buffer holds far more than one refusal.
            let _ = stream.set_nonblocking(true);
            let uid = match self.admit(&stream) {
                Ok(uid) => uid,
                Err((refusal, logged)) => {
                    self.log(LogLine {
                        level: log::Level::Warn,
                        text: logged,
                        cause: Cause::Clients(LineKind::ClientRefused),
                    });
                    let _ = (&stream).write_all(&proto::encode(&Response::Refused(refusal)));
                    continue;
                }
            };
            let id = self.serial();
            listen(&self.poller, stream.as_fd(), Token::Client(id));
            self.clients.insert(
                id,
                Client {
                    stream,
                    state: ClientState::Reading {
                        buf: Vec::new(),
                        deadline: Instant::now() + CLIENT_DEADLINE,
                    },
                    uid,
                },
            );
        }
    }

    /// Whether the peer of a new connection is served: root, or a member of the socket's group
    /// within the limits per user and the slots not kept for root. Returns its uid, or the
    /// answer it gets and what the log says.
    fn admit(&self, stream: &UnixStream) -> Result<u32, (Error, String)> {
        let peer = sys::peer_credentials(stream.as_fd()).map_err(|e| {
            let why = format!("cannot read the peer's credentials: {e}");
            (
                Error::new(Kind::NoPerm, format!("refused: {why}")),
                format!("refused a client: {why}"),
            )
        })?;
        let in_group = self
            .group
            .is_some_and(|g| peer.gid == g || peer.groups.contains(&g));
        if peer.uid != 0 && !in_group {
            let why = format!(
                "peer uid {} (pid {}) is neither root nor in the socket's group",
                peer.uid, peer.pid
            );
            return Err((
                Error::new(Kind::NoPerm, format!("refused: {why}")),
                format!("refused a client: {why}"),
            ));
        }
        let held = self.clients.values().filter(|c| c.uid == peer.uid).count();
        if peer.uid != 0 && held >= MAX_CLIENTS_PER_USER {
            let why = format!(
                "uid {} already has {held} connections open, the most one user other than root may have",
                peer.uid
            );
            return Err((
                Error::new(
                    Kind::Limit,
                    format!("refused: {why}; try again once they are answered"),
                ),
                format!("refused a client: {why}"),
            ));
        }
        let not_root = self.clients.values().filter(|c| c.uid != 0).count();
        let full = if peer.uid == 0 {
            self.clients.len() >= MAX_CLIENTS
        } else {
            self.clients.len() >= MAX_CLIENTS || not_root >= MAX_CLIENTS - ROOT_CLIENTS
        };
        if full {
            let busy = Error::new(
                Kind::Timeout,
                "the daemon is busy with other clients; try again",
            );
            return Err((
                busy,
                format!(
                    "turned a client of uid {} away: every slot it may take is in use",
                    peer.uid
                ),
            ));
        }
        Ok(peer.uid)
    }

    pub(super) fn client_ready(&mut self, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        match client.state {
            ClientState::Reading { .. } => self.read_client(id),
            ClientState::Writing { .. } => self.write_client(id),
            ClientState::Waiting => {}
        }
    }

    /// Reads from client `id`; a whole request is answered or handed to the core.
    fn read_client(&mut self, id: ClientId) {
        let mut chunk = [0u8; 4096];
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let ClientState::Reading { buf, .. } = &mut client.state else {
            return;
        };
        let n = match client.stream.read(&mut chunk) {
            Ok(0) => return self.drop_client(id),
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return;
            }
            Err(_) => return self.drop_client(id),
        };
        buf.extend_from_slice(&chunk[..n]);
        let request = match proto::decode::<Request>(buf) {
            Ok(None) => return,
            Ok(Some(request)) => request,
            Err(e) => {
                self.log(LogLine {
                    level: log::Level::Warn,
                    text: format!("bad request: {e}"),
                    cause: Cause::Clients(LineKind::ClientBad),
                });
                return self.answer(id, &Response::Refused(e));
            }
        };
        // The request is whole: the client's socket is not read again.
        self.poller.remove(client.stream.as_fd());
        client.state = ClientState::Waiting;
        match request {
            Request::Ping => self.answer(
                id,
                &Response::Pong {
                    pid: std::process::id(),
                },
            ),
            Request::Arm(arm) => match arm.validate().and_then(|()| {
                // The commands' host users must exist now, not only when they fire.
                commands::check_host_users(&arm)
            }) {
                Ok(()) => {
                    let persist = arm.persist;
                    self.events.push_back(Event::Arm {
                        client: id,
                        def: arm,
                        persist,
                    });
                }
                Err(e) => {
                    self.log(LogLine {
                        level: log::Level::Warn,
                        text: format!("refused to arm: {e}"),
                        cause: Cause::Clients(LineKind::ClientBad),
                    });
                    self.answer(id, &Response::Refused(e));
                }
            },
            Request::List => self.events.push_back(Event::List { client: id }),
            Request::Remove { probe, jail } => self.events.push_back(Event::Remove {
                client: id,
                which: probe,
                jail,
            }),
        }
    }

    /// Starts writing `response` to client `id`; what its socket does not take at once is
    /// written as it makes room, within `CLIENT_DEADLINE`.
    pub(super) fn answer(&mut self, id: ClientId, response: &Response) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if let ClientState::Reading { .. } = client.state {
            self.poller.remove(client.stream.as_fd());
        }
        client.state = ClientState::Writing {
            answer: proto::encode(response),
            written: 0,
            deadline: Instant::now() + CLIENT_DEADLINE,
        };
        self.write_client(id);
        if let Some(client) = self.clients.get(&id)
            && let Err(e) = self
                .poller
                .add_writable(client.stream.as_fd(), Token::Client(id).encode())
        {
            log::error!("cannot watch a client: {e}");
            self.drop_client(id);
        }
    }

    /// Writes what client `id`'s socket takes; the client is done with once all is written.
    fn write_client(&mut self, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let ClientState::Writing {
            answer, written, ..
        } = &mut client.state
        else {
            return;
        };
        let mut failed = None;
        while *written < answer.len() {
            match (&client.stream).write(&answer[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            // A user of the socket can hang up on its answers at will: counted, not each told.
            self.log(LogLine {
                level: log::Level::Warn,
                text: format!("client did not take its answer: {e}; dropped"),
                cause: Cause::Clients(LineKind::ClientDropped),
            });
        }
        self.drop_client(id);
    }
}
