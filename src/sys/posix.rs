//! What both backends share: POSIX calls that are the same on Linux and FreeBSD, and the
//! portable types of the seam. Its `unsafe` wrappers are as small as the backends' own.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::userdb::{self, File, Identity, Refusal};

/// PATH of every command and of the container managers' tools. The rest of a command's
/// environment is the JAILDAEMON_* variables; nothing of the daemon's own reaches it.
pub const COMMAND_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A process id as the host sees it: one type on both sides of the seam.
pub type Pid = i32;

/// Result of a fork-like call, seen from the calling side.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Who is at the other end of a Unix socket, as of connect time.
#[derive(Debug)]
pub struct PeerCredentials {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// One file of a jail's user database, which a helper (never the daemon) opened below the
/// jail's root: its whole text, read into `buffer` (`userdb::MAX_BYTES` + 1 bytes), or `None`
/// when it is still the version `cached` names (then nothing is read); and, for a text read,
/// its identity, if the file did not change while it was read. Allocates nothing.
pub fn read_user_database<'b>(
    fd: &OwnedFd,
    file: File,
    cached: Option<Identity>,
    buffer: &'b mut [u8],
) -> Result<(Option<&'b [u8]>, Option<Identity>), Refusal> {
    let unreadable = |e: rustix::io::Errno| Refusal::Unreadable(file, e.raw_os_error() as u32);
    let identity = || -> Result<Identity, Refusal> {
        let st = rustix::fs::fstat(fd).map_err(unreadable)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Refusal::NotRegular(file));
        }
        Ok(Identity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as u32),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as u32),
        })
    };
    let before = identity()?;
    if before.size > userdb::MAX_BYTES as u64 {
        return Err(Refusal::TooLarge(file));
    }
    if cached == Some(before) {
        return Ok((None, None));
    }
    let mut len = 0;
    while len < buffer.len() {
        match rustix::io::read(fd, &mut buffer[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(unreadable(e)),
        }
    }
    let text = &buffer[..len];
    userdb::check_limits(file, text)?;
    let unchanged = identity()? == before;
    Ok((Some(text), unchanged.then_some(before)))
}

/// fork(2).
///
/// # Safety
/// The caller must be single-threaded, and the child may only make async-signal-safe calls
/// until it execs or `_exit`s: no allocation, no locks, no logging, no panics.
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the contract above is the caller's; fork itself has no memory preconditions.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// True when `fd` is readable right now; for a pidfd: its process has exited.
pub fn readable_now(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [rustix::event::PollFd::from_borrowed_fd(
        fd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    !matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(0))
}

/// What the standard library's start-up does for a process and this program relies on, for the
/// entry point that skips it (`src/sys/entry.rs`): descriptors 0, 1 and 2 open, on /dev/null
/// where they were not (else the first file or socket the daemon opens would take the number,
/// and its log or a listing would be written into it), and SIGPIPE ignored (a client or a log
/// reader that goes away is an EPIPE error to handle, not the daemon's death). Children get
/// SIGPIPE back at its default, as every signal an ancestor left ignored (`signals_not_default`).
pub fn standard_process() -> io::Result<()> {
    for fd in 0..3 {
        // SAFETY: F_GETFD takes a plain integer and only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EBADF) {
            return Err(io::Error::last_os_error());
        }
        // Every lower number is open by now, so the lowest free one, which open takes, is fd.
        // Kept across exec, as the descriptors it stands for would be.
        // SAFETY: a static C string; the new descriptor is checked and owned below.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if null != fd {
            if null >= 0 {
                // SAFETY: `null` was just opened here and is not used again.
                unsafe { libc::close(null) };
            }
            return Err(io::Error::other(format!(
                "descriptor {fd} is closed and /dev/null cannot stand in for it"
            )));
        }
    }
    // SAFETY: SIG_IGN for SIGPIPE installs no handler; nothing else depends on its action.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `_exit(2)`: leaves without running destructors or atexit handlers. Async-signal-safe.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// Sets the disposition of `sig` to its default action.
pub fn default_signal(sig: i32) {
    // SAFETY: a zeroed sigaction with SIG_DFL is valid; an error (a reserved signal) is harmless.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
}

/// Restores SIGCHLD to its default action: an inherited SIG_IGN would make the kernel reap
/// children behind our back, and their pids could then be recycled while we hold them.
pub fn default_sigchld() {
    default_signal(libc::SIGCHLD);
}

/// Writes all of `buf` with raw write(2) calls. Async-signal-safe.
pub fn write_all_raw(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the pointer and length describe the live slice `buf[done..]`.
        let n = unsafe {
            libc::write(
                fd.as_raw_fd(),
                buf[done..].as_ptr().cast(),
                buf.len() - done,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        done += n as usize;
    }
    Ok(())
}

/// Detaches like daemon(3): forks; the parent gets `Some(child pid)`, the child starts a new
/// session, moves to `/`, points stdio at /dev/null, and gets `None`. The log is the
/// caller's to prepare first (`logging::before_detach`): this module names nothing above `sys`.
pub fn detach() -> io::Result<Option<u32>> {
    // SAFETY: the daemon has started no thread when it detaches, so no lock can be held by a
    // thread missing in the child, which may therefore run any code.
    match unsafe { fork() }? {
        Forked::Parent(pid) => Ok(Some(pid as u32)),
        Forked::Child => {
            rustix::process::setsid()?;
            std::env::set_current_dir("/")?;
            let null = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            rustix::stdio::dup2_stdin(&null)?;
            rustix::stdio::dup2_stdout(&null)?;
            rustix::stdio::dup2_stderr(&null)?;
            Ok(None)
        }
    }
}

/// openlog(3) with LOG_DAEMON, for the detached daemon's log.
pub fn open_syslog() {
    // SAFETY: the identity is a static C string, as openlog requires (it keeps the pointer).
    unsafe {
        libc::openlog(
            c"jaildaemon".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_DAEMON,
        )
    };
}

/// syslog(3) of one message at `priority`.
pub fn syslog(priority: i32, message: &str) {
    let Ok(message) = CString::new(message.replace('\0', " ")) else {
        return;
    };
    // SAFETY: "%s" with one valid C string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), message.as_ptr()) };
}

/// A signal taken from the daemon's signal queue: its number and, for SIGCHLD, whether it
/// says its child ended (`CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`: the child's pidfd tells
/// that too) rather than that it may have stopped or continued (any other code, or a queue
/// that does not say, FreeBSD's kqueue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub signal: i32,
    pub child_ended: bool,
}

/// A child of ours that was stopped (by this signal) or continued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildChange {
    Stopped(i32),
    Continued,
}

/// Every child of ours stopped or continued since last asked, with its pid: waitid(2) with
/// `P_ALL` and only `WSTOPPED | WCONTINUED | WNOHANG`, which never reaps (no `WEXITED`), so
/// each pid is that of a live, unreaped child of ours and cannot have been recycled. The
/// daemon asks when SIGCHLD came (its signalfd on Linux, at once for a stop or continuation and
/// within a second for an end; its kqueue on FreeBSD, at once). At most
/// `limit` at a time: a child stopped and continued without pause must not keep the caller here.
pub fn child_changes(limit: usize) -> Vec<(i32, ChildChange)> {
    let mut changes = Vec::new();
    while changes.len() < limit {
        // SAFETY: siginfo_t is plain data; waitid writes one into the valid buffer.
        let (rc, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WSTOPPED | libc::WCONTINUED | libc::WNOHANG,
            );
            (rc, info)
        };
        // SAFETY: for a SIGCHLD siginfo (what waitid fills in) si_pid and si_status are set.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if rc != 0 || pid == 0 {
            return changes;
        }
        let change = match info.si_code {
            libc::CLD_STOPPED => ChildChange::Stopped(status),
            libc::CLD_CONTINUED => ChildChange::Continued,
            _ => continue,
        };
        changes.push((pid, change));
    }
    changes
}
