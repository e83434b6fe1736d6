//! The daemon's clients: accepting them (root, or the `-G` group, and not into the descriptors
//! kept for commands), reading one request each within a deadline, and writing its answer as
//! the socket takes it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use super::commands;
use super::core::{ClientId, Event};
use super::logbudget::{Cause, LineKind, LogLine};
use super::wiring::{Token, Wiring};
use crate::error::{Error, Kind};
use crate::proto::{self, Request, Response};
use crate::sys;

/// A client must send its whole request within this time, and take its answer within it.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
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
enum ClientState {
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

struct Client {
    stream: UnixStream,
    state: ClientState,
    /// Its peer's uid, for the limits per user.
    uid: u32,
    /// Its socket is in the event queue (while it sends its request, and while it takes an
    /// answer its socket did not take at once), so that letting it go asks the queue to drop
    /// it only then: one system call fewer for every client that arms.
    watched: bool,
}

/// The listening socket and the connections it took.
pub(super) struct Clients {
    listener: UnixListener,
    /// Besides root, members of this host group may talk to the daemon.
    group: Option<u32>,
    clients: BTreeMap<ClientId, Client>,
    /// The listener is watched: the daemon is ready and it is not resting.
    listening: bool,
    /// Out of descriptors: the listener is not watched until then.
    paused: Option<Instant>,
}

impl Clients {
    pub(super) fn new(listener: UnixListener, group: Option<u32>) -> Clients {
        Clients {
            listener,
            group,
            clients: BTreeMap::new(),
            listening: false,
            paused: None,
        }
    }

    /// Connections open.
    pub(super) fn len(&self) -> usize {
        self.clients.len()
    }

    /// The daemon is ready: the listener is watched from now on, but while it rests.
    pub(super) fn listen(&mut self, w: &mut Wiring) {
        self.listening = true;
        if self.paused.is_none() {
            w.listen(self.listener.as_fd(), Token::Listener);
        }
    }

    /// The earliest of the clients' deadlines and the listener's rest.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let clients = self.clients.values().filter_map(|c| match c.state {
            ClientState::Reading { deadline, .. } | ClientState::Writing { deadline, .. } => {
                Some(deadline)
            }
            ClientState::Waiting => None,
        });
        clients.chain(self.paused).min()
    }

    /// Drops the clients past their deadline at `now`, and watches the listener again once its
    /// rest is over.
    pub(super) fn on_time(&mut self, w: &mut Wiring, now: Instant) {
        let late: Vec<(ClientId, &str)> = (self.clients.iter())
            .filter_map(|(id, c)| match c.state {
                ClientState::Reading { deadline, .. } if deadline <= now => {
                    Some((*id, "sent no complete request"))
                }
                ClientState::Writing { deadline, .. } if deadline <= now => {
                    Some((*id, "did not take its answer"))
                }
                _ => None,
            })
            .collect();
        for (id, what) in late {
            // A user of the socket can renew idle connections at will: counted, not each told.
            w.log(LogLine {
                level: log::Level::Warn,
                text: format!(
                    "client {what} within {}s; dropped",
                    CLIENT_DEADLINE.as_secs()
                ),
                cause: Cause::Clients(LineKind::ClientDropped),
            });
            self.drop_client(w, id);
        }
        if self.listening && self.paused.is_some_and(|t| t <= now) {
            self.paused = None;
            w.listen(self.listener.as_fd(), Token::Listener);
        }
    }

    fn pause_listener(&mut self, w: &mut Wiring, why: &str) {
        // Clients can bring this about again and again (one waiting in the backlog wakes the
        // listener after each pause): their line, within their budget.
        w.log(LogLine {
            level: log::Level::Warn,
            text: format!("{why}; not accepting for {}ms", ACCEPT_PAUSE.as_millis()),
            cause: Cause::Clients(LineKind::ClientRefused),
        });
        w.unwatch(self.listener.as_fd());
        self.paused = Some(Instant::now() + ACCEPT_PAUSE);
    }

    fn drop_client(&mut self, w: &mut Wiring, id: ClientId) {
        if let Some(client) = self.clients.remove(&id)
            && client.watched
        {
            w.unwatch(client.stream.as_fd());
        }
    }

    /// Accepts the connections waiting, `room` of them at most: clients may not take the
    /// descriptors kept for firing probes, so the next one waits in the backlog while the
    /// listener rests.
    pub(super) fn accept(&mut self, w: &mut Wiring, mut room: usize) {
        loop {
            if room == 0 {
                self.pause_listener(w, "descriptors kept for commands");
                return;
            }
            // Non-blocking from the start: one system call fewer for every client.
            let flags = rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC;
            let stream = match rustix::net::accept_with(&self.listener, flags) {
                Ok(fd) => UnixStream::from(fd),
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE) or memory: the client waits in the
                    // backlog while the listener rests, instead of the daemon spinning on it.
                    let e = io::Error::from(e);
                    self.pause_listener(w, &format!("accept: {e}"));
                    return;
                }
            };
            // A refused or turned-away client gets its one answer without waiting for room in
            // its socket: a new socket's buffer holds far more than one refusal.
            let uid = match self.admit(&stream) {
                Ok(uid) => uid,
                Err((refusal, logged)) => {
                    w.log(LogLine {
                        level: log::Level::Warn,
                        text: logged,
                        cause: Cause::Clients(LineKind::ClientRefused),
                    });
                    let _ = (&stream).write_all(&proto::encode(&Response::Refused(refusal)));
                    continue;
                }
            };
            let id = w.serial();
            room -= 1;
            w.listen(stream.as_fd(), Token::Client(id));
            self.clients.insert(
                id,
                Client {
                    stream,
                    state: ClientState::Reading {
                        buf: Vec::new(),
                        deadline: Instant::now() + CLIENT_DEADLINE,
                    },
                    uid,
                    watched: true,
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

    pub(super) fn ready(&mut self, w: &mut Wiring, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        match client.state {
            ClientState::Reading { .. } => self.read_client(w, id),
            ClientState::Writing { .. } => self.write_client(w, id),
            ClientState::Waiting => {}
        }
    }

    /// Reads from client `id`; a whole request is answered or handed to the core.
    fn read_client(&mut self, w: &mut Wiring, id: ClientId) {
        let mut chunk = [0u8; 4096];
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let ClientState::Reading { buf, .. } = &mut client.state else {
            return;
        };
        let n = match client.stream.read(&mut chunk) {
            Ok(0) => return self.drop_client(w, id),
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return;
            }
            Err(_) => return self.drop_client(w, id),
        };
        buf.extend_from_slice(&chunk[..n]);
        let request = match proto::decode::<Request>(buf) {
            Ok(None) => return,
            Ok(Some(request)) => request,
            Err(e) => {
                w.log(LogLine {
                    level: log::Level::Warn,
                    text: format!("bad request: {e}"),
                    cause: Cause::Clients(LineKind::ClientBad),
                });
                return self.answer(w, id, &Response::Refused(e));
            }
        };
        // The request is whole: the client's socket is not read again.
        w.unwatch(client.stream.as_fd());
        client.watched = false;
        client.state = ClientState::Waiting;
        match request {
            Request::Ping => self.answer(
                w,
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
                    w.push(Event::Arm {
                        client: id,
                        def: arm,
                        persist,
                    });
                }
                Err(e) => {
                    w.log(LogLine {
                        level: log::Level::Warn,
                        text: format!("refused to arm: {e}"),
                        cause: Cause::Clients(LineKind::ClientBad),
                    });
                    self.answer(w, id, &Response::Refused(e));
                }
            },
            Request::List => w.push(Event::List { client: id }),
            Request::Remove { probe, jail } => w.push(Event::Remove {
                client: id,
                which: probe,
                jail,
            }),
        }
    }

    /// Starts writing `response` to client `id`; what its socket does not take at once is
    /// written as it makes room, within `CLIENT_DEADLINE`.
    pub(super) fn answer(&mut self, w: &mut Wiring, id: ClientId, response: &Response) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if client.watched {
            w.unwatch(client.stream.as_fd());
            client.watched = false;
        }
        client.state = ClientState::Writing {
            answer: proto::encode(response),
            written: 0,
            deadline: Instant::now() + CLIENT_DEADLINE,
        };
        self.write_client(w, id);
        if let Some(client) = self.clients.get_mut(&id) {
            match (w.poller).add_writable(client.stream.as_fd(), Token::Client(id).encode()) {
                Ok(()) => client.watched = true,
                Err(e) => {
                    log::error!("cannot watch a client: {e}");
                    self.drop_client(w, id);
                }
            }
        }
    }

    /// Writes what client `id`'s socket takes; the client is done with once all is written.
    fn write_client(&mut self, w: &mut Wiring, id: ClientId) {
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
            w.log(LogLine {
                level: log::Level::Warn,
                text: format!("client did not take its answer: {e}; dropped"),
                cause: Cause::Clients(LineKind::ClientDropped),
            });
        }
        self.drop_client(w, id);
    }
}

#[cfg(test)]
mod tests {
    //! Clients on real sockets (no root needed: the socket's group is the test's own): a
    //! request read, an answer written as the socket takes it, within the deadline.
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;

    use super::*;
    use crate::error::{Error, Kind};
    use crate::sys::Poller;

    struct Rig {
        clients: Clients,
        w: Wiring,
        path: PathBuf,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// A listener for members of the test's own group; `name` makes its path unique.
    fn rig(name: &str) -> Rig {
        let path = std::env::temp_dir().join(format!(
            "jaildaemon-clients-{name}-{}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let gid = rustix::process::getgid().as_raw();
        let clients = Clients::new(listener, Some(gid));
        let w = Wiring::new(Poller::new().expect("poller"));
        Rig { clients, w, path }
    }

    /// Connects, is accepted and sends `-l`; returns its socket (the client is number 1).
    fn listing_client(rig: &mut Rig) -> UnixStream {
        let mut stream = UnixStream::connect(&rig.path).expect("connect");
        rig.clients.accept(&mut rig.w, 10);
        assert_eq!(rig.clients.len(), 1);
        stream
            .write_all(&proto::encode(&Request::List))
            .expect("request");
        rig.clients.ready(&mut rig.w, 1);
        match rig.w.events.pop_front() {
            Some(Event::List { client: 1 }) => {}
            other => panic!("{other:?}"),
        }
        stream
    }

    /// An answer far larger than a socket's buffer.
    fn large_answer() -> Response {
        Response::Refused(Error::new(Kind::Data, "x".repeat(8 << 20)))
    }

    #[test]
    fn a_client_that_never_reads_its_answer_is_dropped_at_its_deadline() {
        let mut rig = rig("never-reads");
        let _stream = listing_client(&mut rig);
        let before = Instant::now();
        rig.clients.answer(&mut rig.w, 1, &large_answer());
        let after = Instant::now();
        assert_eq!(
            rig.clients.len(),
            1,
            "its socket took only part of the answer"
        );
        rig.clients.on_time(
            &mut rig.w,
            before + CLIENT_DEADLINE - Duration::from_millis(100),
        );
        assert_eq!(rig.clients.len(), 1, "not before its deadline");
        rig.clients.on_time(&mut rig.w, after + CLIENT_DEADLINE);
        assert_eq!(rig.clients.len(), 0, "dropped at its deadline");
        assert_eq!(rig.clients.next_deadline(), None);
    }

    #[test]
    fn a_client_that_reads_its_answer_gets_all_of_it_and_is_done_with() {
        let mut rig = rig("reads");
        let mut stream = listing_client(&mut rig);
        let answer = large_answer();
        let length = proto::encode(&answer).len();
        rig.clients.answer(&mut rig.w, 1, &answer);
        stream.set_nonblocking(true).expect("non-blocking");
        let mut got = 0;
        let mut chunk = vec![0u8; 1 << 16];
        // The loop's part: each time the socket has room, the rest is written.
        while rig.clients.len() > 0 {
            match stream.read(&mut chunk) {
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            rig.clients.ready(&mut rig.w, 1);
        }
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, length);
    }
}
