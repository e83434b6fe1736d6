//! The in-jail sender: the bench binary, started once per jail with `nsenter` and kept
//! running, so that its start-up is never measured. It reads one command a line on stdin and
//! answers one line on stdout. The clock starts inside the jail, right before the system call
//! that triggers (kill, utimensat, or the write of an HTTP request), and the answer carries
//! that timestamp back to the host.
//!
//! Commands: `ping`; `find TITLE` (look the probe up in the jail's /proc, as pkill would,
//! before the clock starts); `kill` (SIGHUP to the probe found last); `touch PATH`;
//! `connect PORT` (a keep-alive HTTP/1.1 connection to 127.0.0.1); `post` (one request on it).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::now_ns;

const REQUEST: &[u8] =
    b"POST /hooks/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";

/// The sender's main loop (inside the jail).
pub fn run() {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut target: Option<i32> = None;
    let mut http: Option<(u16, TcpStream)> = None;
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let (cmd, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let reply = match cmd {
            "ping" => "ok".to_string(),
            "find" => match find(arg, Duration::from_secs(10)) {
                Some(pid) => {
                    target = Some(pid);
                    format!("ok {pid}")
                }
                None => format!("err no process titled {arg}"),
            },
            "kill" => {
                let t0 = now_ns();
                let pid = target.take().and_then(rustix::process::Pid::from_raw);
                match pid.map(|p| rustix::process::kill_process(p, rustix::process::Signal::HUP)) {
                    Some(Ok(())) => format!("t {t0}"),
                    other => format!("err kill: {other:?}"),
                }
            }
            "touch" => {
                let path = std::ffi::CString::new(arg).unwrap_or_default();
                let t0 = now_ns();
                // SAFETY: a valid C string; null times mean "now" for both.
                let rc =
                    unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), std::ptr::null(), 0) };
                if rc == 0 {
                    format!("t {t0}")
                } else {
                    format!("err utimensat: {}", std::io::Error::last_os_error())
                }
            }
            "connect" => match arg.parse().ok().and_then(connect) {
                Some(stream) => {
                    http = Some((arg.parse().unwrap_or(0), stream));
                    "ok".into()
                }
                None => "err connect".into(),
            },
            "post" => match &mut http {
                Some((port, stream)) => post(*port, stream),
                None => "err not connected".into(),
            },
            _ => format!("err unknown command {cmd}"),
        };
        if writeln!(out, "{reply}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}

/// The pid, in this jail, of the process whose whole command line is `title`.
fn find(title: &str, limit: Duration) -> Option<i32> {
    let wanted = [title.as_bytes(), b"\0"].concat();
    let end = Instant::now() + limit;
    loop {
        let found = fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: i32 = std::str::from_utf8(e.file_name().as_bytes())
                .ok()?
                .parse()
                .ok()?;
            (fs::read(e.path().join("cmdline")).ok()? == wanted).then_some(pid)
        });
        if found.is_some() || Instant::now() > end {
            return found;
        }
        sleep(Duration::from_micros(200));
    }
}

fn connect(port: u16) -> Option<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_nodelay(true).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    Some(stream)
}

/// One request on the kept-alive connection (reconnecting once if the server closed it);
/// answers the time before the write and the time the whole response had arrived.
fn post(port: u16, stream: &mut TcpStream) -> String {
    for _ in 0..2 {
        let t0 = now_ns();
        if stream.write_all(REQUEST).is_ok() && read_response(stream).is_ok() {
            return format!("t {t0} {}", now_ns());
        }
        match connect(port) {
            Some(s) => *stream = s,
            None => break,
        }
    }
    "err http".into()
}

/// Reads one HTTP/1.1 response: headers, then a Content-Length body.
fn read_response(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        return Ok(());
    }
}

/// The host's handle on a sender running in a jail.
pub struct Sender {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Sender {
    /// Starts a sender in every namespace of the jail (`with_net`), or in all but its network
    /// namespace, so that it can reach a server on the host's loopback.
    pub fn spawn(jail_pid: u32, with_net: bool) -> Sender {
        let exe = std::env::current_exe().expect("current_exe");
        let mut command = Command::new("nsenter");
        command.args(["-t", &jail_pid.to_string()]);
        if with_net {
            command.arg("-a");
        } else {
            command.args(["-p", "-m", "-u", "-i"]);
        }
        let mut child = command
            .arg(exe)
            .arg("--jd-sender")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("nsenter");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut sender = Sender {
            child,
            stdin,
            stdout,
        };
        assert_eq!(sender.ask("ping"), "ok", "sender did not start in the jail");
        sender
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .expect("write to sender");
    }

    pub fn reply(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from sender");
        line.trim_end().to_string()
    }

    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }

    /// Asks, and panics unless the answer starts with "ok".
    pub fn expect_ok(&mut self, line: &str) -> String {
        let reply = self.ask(line);
        assert!(reply.starts_with("ok"), "sender: {line} → {reply}");
        reply
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // End of input ends the sender; if it is stuck, the jail's end kills it.
        drop(self.stdin.take());
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
