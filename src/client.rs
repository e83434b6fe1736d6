//! The utility: one request over the socket, one answer.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Kind};
use crate::proto::{self, Request, Response};

/// How long the utility waits for the daemon: arming a probe takes at most 5 s.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends `request` to the daemon at `socket` and returns its answer.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, Error> {
    let unavailable = |e: std::io::Error| {
        Error::new(
            Kind::Unavailable,
            format!("no jaildaemon answers on {}: {e}", socket.display()),
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            // The socket's mode let us not even knock: root (or the -G group) only.
            Error::new(
                Kind::NoPerm,
                format!("not allowed to use {}: {e}", socket.display()),
            )
        } else if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ) {
            // Nothing listens there: the one thing to do is to start a daemon.
            Error::new(
                Kind::Unavailable,
                format!(
                    "no jaildaemon answers on {}: {e}; none runs there: start one with \
                     `jaildaemon -D` (or `systemctl start jaildaemon`), or name the socket \
                     of the one that runs with -f",
                    socket.display()
                ),
            )
        } else {
            unavailable(e)
        }
    })?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(unavailable)?;
    stream
        .set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(unavailable)?;
    // A daemon that refuses us (say, by our credentials) answers and closes at once, so a
    // failed write may still have an answer waiting: read it before reporting the write error.
    let written = stream.write_all(&proto::encode(request));
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::new(
                    Kind::Timeout,
                    format!("the daemon on {} did not answer in time", socket.display()),
                ));
            }
            Err(e) => return Err(unavailable(written.err().unwrap_or(e))),
        };
        if n == 0 {
            if let Err(e) = written {
                return Err(unavailable(e));
            }
            return Err(Error::new(
                Kind::Protocol,
                "the daemon closed the connection without an answer",
            ));
        }
        answer.extend_from_slice(&chunk[..n]);
        if let Some(response) = proto::decode(&answer)? {
            return Ok(response);
        }
    }
}
