//! The only `unsafe` code of the FreeBSD backend: thin wrappers around libc calls.
//! Linked against FreeBSD's libc in CI, which checks that every libc function called here is
//! one of its versioned symbols (`dist/freebsd/check-elf.sh`); not yet run on a FreeBSD
//! machine.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::pure::JailKey;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Resets every signal to its default action and sets the mask to `blocked`.
pub fn reset_signals(blocked: &[i32]) {
    // SAFETY: zeroed sigaction with SIG_DFL is valid; sigset functions initialise the set.
    unsafe {
        for sig in 1..=128 {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in blocked {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn kevent_for(ident: usize, filter: i16, flags: u16, fflags: u32) -> libc::kevent {
    // SAFETY: kevent is plain data; all-zero is a valid value to fill in.
    let mut ev: libc::kevent = unsafe { std::mem::zeroed() };
    ev.ident = ident as _;
    ev.filter = filter;
    ev.flags = flags;
    ev.fflags = fflags;
    ev
}

fn kqueue_with(events: &[libc::kevent]) -> io::Result<OwnedFd> {
    // SAFETY: kqueue takes no arguments; kevent reads `events.len()` valid entries.
    unsafe {
        let kq = OwnedFd::from_raw_fd(check(libc::kqueue())?);
        let fd = kq.as_raw_fd();
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        check(libc::kevent(
            fd,
            events.as_ptr(),
            events.len() as _,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        ))?;
        Ok(kq)
    }
}

/// A kqueue with nothing in it yet.
pub fn empty_kqueue() -> io::Result<OwnedFd> {
    kqueue_with(&[])
}

/// Adds (or with `add` false, deletes) an EVFILT_READ event for `fd` carrying `token`.
pub fn watch_readable(
    kq: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    token: u64,
    add: bool,
) -> io::Result<()> {
    watch(kq, fd, libc::EVFILT_READ, token, add)
}

/// Adds (or deletes) `fd` under `token` in the kqueue for `filter` (EVFILT_READ or
/// EVFILT_WRITE).
pub fn watch(
    kq: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    filter: i16,
    token: u64,
    add: bool,
) -> io::Result<()> {
    let flags = if add { libc::EV_ADD } else { libc::EV_DELETE };
    let mut ev = kevent_for(fd.as_raw_fd() as usize, filter, flags, 0);
    ev.udata = token as usize as *mut libc::c_void;
    // SAFETY: one valid change entry, no event list.
    check(unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            &ev,
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    })?;
    Ok(())
}

/// Waits up to `timeout` for readable descriptors and appends their tokens to `ready`.
pub fn readable_tokens(
    kq: BorrowedFd<'_>,
    timeout: Option<std::time::Duration>,
    ready: &mut Vec<u64>,
) -> io::Result<()> {
    let mut events = vec![kevent_for(0, 0, 0, 0); 256];
    let limit = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(3600) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    let limit_ptr = limit
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the event list has `events.len()` writable entries; the timeout, if any, lives
    // until the call returns.
    let n = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            std::ptr::null(),
            0,
            events.as_mut_ptr(),
            events.len() as _,
            limit_ptr,
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(())
        } else {
            Err(err)
        };
    }
    ready.extend(events[..n as usize].iter().map(|e| e.udata as usize as u64));
    Ok(())
}

/// Blocks `signals` and returns a kqueue that reports them (EVFILT_SIGNAL).
pub fn signal_queue(signals: &[i32]) -> io::Result<OwnedFd> {
    // SAFETY: the set is initialised before sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let events: Vec<libc::kevent> = signals
        .iter()
        .map(|&s| kevent_for(s as usize, libc::EVFILT_SIGNAL, libc::EV_ADD, 0))
        .collect();
    kqueue_with(&events)
}

/// Returns one pending event's identifier (a signal number, or a pid) without waiting.
pub fn next_event(kq: BorrowedFd<'_>) -> io::Result<Option<usize>> {
    let mut ev = kevent_for(0, 0, 0, 0);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: room for one event; a zero timeout.
    let n = check(unsafe { libc::kevent(kq.as_raw_fd(), std::ptr::null(), 0, &mut ev, 1, &zero) })?;
    Ok((n == 1).then_some(ev.ident as usize))
}

/// A kqueue that becomes readable when child `pid` exits (EVFILT_PROC, NOTE_EXIT). If the child
/// is already a zombie, a user event makes it readable at once.
pub fn exit_queue(pid: i32) -> io::Result<OwnedFd> {
    match kqueue_with(&[kevent_for(
        pid as usize,
        libc::EVFILT_PROC,
        libc::EV_ADD,
        libc::NOTE_EXIT,
    )]) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => kqueue_with(&[kevent_for(
            pid as usize,
            libc::EVFILT_USER,
            libc::EV_ADD,
            libc::NOTE_TRIGGER,
        )]),
        other => other,
    }
}

/// waitpid(2) on our own, unreaped child: its pid cannot have been recycled.
pub fn wait_child(pid: i32, hang: bool) -> io::Result<Option<i32>> {
    let mut status = 0;
    let flags = if hang { 0 } else { libc::WNOHANG };
    // SAFETY: status is a valid out-pointer.
    let ret = check(unsafe { libc::waitpid(pid, &mut status, flags) })?;
    Ok((ret == pid).then_some(status))
}

/// kill(2) to our own, unreaped child.
pub fn kill_child(pid: i32, sig: i32) {
    // SAFETY: plain integers.
    unsafe { libc::kill(pid, sig) };
}

/// Looks a jail up by jid or name with jail_get(2); returns its jid and root path.
pub fn jail_lookup(key: &JailKey<'_>) -> io::Result<(i32, Vec<u8>)> {
    let mut jid: libc::c_int = 0;
    let mut path = vec![0u8; libc::PATH_MAX as usize];
    let (numeric, mut lookup_jid, value) = match key {
        JailKey::Jid(jid) => (true, *jid, CString::default()),
        JailKey::Name(name) => (
            false,
            0,
            CString::new(*name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        ),
    };
    let iov = |base: *mut libc::c_void, len: usize| libc::iovec {
        iov_base: base,
        iov_len: len,
    };
    let mut iovs = [
        iov(c"jid".as_ptr() as *mut _, 4),
        if numeric {
            iov(
                (&mut lookup_jid as *mut libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>(),
            )
        } else {
            iov(c"name".as_ptr() as *mut _, 0)
        },
        iov(c"path".as_ptr() as *mut _, 5),
        iov(path.as_mut_ptr().cast(), path.len()),
        iov(c"name".as_ptr() as *mut _, 5),
        iov(value.as_ptr() as *mut _, value.to_bytes_with_nul().len()),
    ];
    let count = if numeric { 4 } else { 6 };
    if !numeric {
        // Look up by name: the jid parameter is an output.
        iovs[1] = iov(
            (&mut jid as *mut libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>(),
        );
    }
    // SAFETY: every iovec points to a live, correctly sized buffer; jail_get writes only into
    // the value buffers it is given.
    let found = check(unsafe { libc::jail_get(iovs.as_mut_ptr(), count, 0) })?;
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    path.truncate(end);
    Ok((found, path))
}

/// jail_attach(2). Async-signal-safe.
pub fn jail_attach(jid: i32) -> io::Result<()> {
    // SAFETY: plain integer.
    check(unsafe { libc::jail_attach(jid) })?;
    Ok(())
}

/// Marks this process untraceable, no-new-privs, and killed with its parent (procctl(2)).
/// Async-signal-safe.
pub fn confine_self() -> io::Result<()> {
    let mut trace = libc::PROC_TRACE_CTL_DISABLE;
    let mut nnp = libc::PROC_NO_NEW_PRIVS_ENABLE;
    let mut sig = libc::SIGKILL;
    for (cmd, data) in [
        (libc::PROC_TRACE_CTL, &mut trace as *mut libc::c_int),
        (libc::PROC_NO_NEW_PRIVS_CTL, &mut nnp),
        (libc::PROC_PDEATHSIG_CTL, &mut sig),
    ] {
        // SAFETY: each command takes a pointer to an int, which is valid here.
        check(unsafe { libc::procctl(libc::P_PID, 0, cmd, data.cast()) })?;
    }
    Ok(())
}

/// The status pipe, once [`keep_fds`] has moved it to descriptor 3.
///
/// # Safety
/// Only after `keep_fds` succeeded in this process, which from then on never closes or
/// replaces descriptor 3 before it execs or exits.
pub unsafe fn status_fd() -> BorrowedFd<'static> {
    // SAFETY: the caller vouches that descriptor 3 is the status pipe for the rest of this
    // process's life.
    unsafe { BorrowedFd::borrow_raw(3) }
}

/// The probe image, once [`keep_fds`] has moved it to descriptor 4.
///
/// # Safety
/// As for `status_fd`, with descriptor 4.
pub unsafe fn image_fd() -> BorrowedFd<'static> {
    // SAFETY: as for status_fd, with fd 4.
    unsafe { BorrowedFd::borrow_raw(4) }
}

/// Moves `status` to descriptor 3 and `image` to 4, both close-on-exec, and closes every
/// other descriptor, stdio included. Async-signal-safe.
///
/// # Safety
/// Every other descriptor of this process is closed: no `OwnedFd` or `BorrowedFd` but the two
/// given may be used or dropped afterwards (`status` and `image` themselves are closed too;
/// use `status_fd` and `image_fd`). Only a forked child that ends by exec or `_exit` may call it.
pub unsafe fn keep_fds(status: BorrowedFd<'_>, image: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl/dup2/close/closefrom on integers. Both are first copied above 4, so that
    // neither dup2 overwrites the other's source; 3 and 4 are ours after the dup2 calls.
    unsafe {
        let status = check(libc::fcntl(status.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5))?;
        let image = check(libc::fcntl(image.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5))?;
        for (from, to) in [(status, 3), (image, 4)] {
            check(libc::dup2(from, to))?;
            check(libc::fcntl(to, libc::F_SETFD, libc::FD_CLOEXEC))?;
        }
        for std_fd in 0..3 {
            libc::close(std_fd);
        }
        libc::closefrom(5);
    }
    Ok(())
}

/// fexecve(2) of `image` with `argv` and `envp`, each ending with a null. Returns only on
/// failure, with the error. Async-signal-safe.
///
/// # Safety
/// Every pointer of `argv` and `envp` before their last (null, which is checked) points to a
/// NUL-terminated C string that stays valid for the call.
pub unsafe fn exec_image(
    image: BorrowedFd<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // Both must end with a null; without one, fexecve would read past the slice.
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return io::Error::from_raw_os_error(libc::EINVAL);
    }
    // SAFETY: argv and envp are null-terminated (checked above) arrays of C strings that the
    // caller vouches for until the call returns (on success it does not).
    unsafe { libc::fexecve(image.as_raw_fd(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// `MNT_NOEXEC` of sys/mount.h, which the libc crate does not define for FreeBSD.
const MNT_NOEXEC: u64 = 0x4;

/// Whether the file system holding `fd` is mounted noexec (fstatfs(2)).
pub fn mounted_noexec(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: statfs is plain data; fstatfs writes one into the valid pointer.
    let flags = unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        check(libc::fstatfs(fd.as_raw_fd(), &mut fs))?;
        fs.f_flags
    };
    Ok(flags & MNT_NOEXEC != 0)
}

/// getpeereid(3) and LOCAL_PEERCRED: uid, gid, groups and pid of a Unix socket's peer.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<(u32, u32, Vec<u32>, i32)> {
    // SAFETY: xucred is plain data; getsockopt writes at most `len` bytes into it.
    unsafe {
        let mut cred: libc::xucred = std::mem::zeroed();
        cred.cr_version = libc::XUCRED_VERSION;
        let mut len = std::mem::size_of::<libc::xucred>() as libc::socklen_t;
        check(libc::getsockopt(
            fd.as_raw_fd(),
            0, // SOL_LOCAL
            libc::LOCAL_PEERCRED,
            (&mut cred as *mut libc::xucred).cast(),
            &mut len,
        ))?;
        let n = (cred.cr_ngroups.max(0) as usize).min(cred.cr_groups.len());
        let groups: Vec<u32> = cred.cr_groups[..n].to_vec();
        let gid = groups.first().copied().unwrap_or(u32::MAX);
        Ok((
            cred.cr_uid,
            gid,
            groups,
            cred.cr_pid__c_anonymous_union.cr_pid,
        ))
    }
}

/// setgroups, setgid, setuid, in that order (each clears what the next could restore).
/// Async-signal-safe.
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setgroups reads one gid from a valid pointer; the others take integers.
    unsafe {
        check(libc::setgroups(1, &gid))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
    }
    Ok(())
}

/// Becomes a host user: its groups, `groups[0]` being its gid (setgroups(2) on FreeBSD takes
/// the effective gid from the first entry), then its uid. Async-signal-safe.
pub fn become_user(uid: u32, groups: &[libc::gid_t]) -> io::Result<()> {
    let Some(&gid) = groups.first() else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: setgroups reads `groups.len()` gids from a valid pointer; the others take
    // integers.
    unsafe {
        check(libc::setgroups(
            groups.len() as libc::c_int,
            groups.as_ptr(),
        ))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
    }
    Ok(())
}

/// A user's groups as `become_user` takes them: its gid first.
pub fn group_list(gid: u32, groups: &[u32]) -> Vec<libc::gid_t> {
    std::iter::once(gid)
        .chain(groups.iter().copied().filter(|g| *g != gid))
        .collect()
}

/// `struct procctl_reaper_kill` of <sys/procctl.h>, which the libc crate does not have.
#[repr(C)]
struct ReaperKill {
    rk_sig: libc::c_int,
    rk_flags: libc::c_uint,
    rk_subtree: libc::pid_t,
    rk_killed: libc::c_uint,
    rk_fpid: libc::pid_t,
    rk_pad0: [libc::c_uint; 15],
}

/// `struct procctl_reaper_status` of <sys/procctl.h>.
#[repr(C)]
struct ReaperStatus {
    rs_flags: libc::c_uint,
    rs_children: libc::c_uint,
    rs_descendants: libc::c_uint,
    rs_reaper: libc::pid_t,
    rs_pid: libc::pid_t,
    rs_pad0: [libc::c_uint; 15],
}

/// Makes this process the reaper of all its descendants: orphans are reparented to it, not
/// to init (procctl(2) PROC_REAP_ACQUIRE). Async-signal-safe.
pub fn reaper_acquire() -> io::Result<()> {
    // SAFETY: PROC_REAP_ACQUIRE takes no data.
    check(unsafe {
        libc::procctl(
            libc::P_PID,
            0,
            libc::PROC_REAP_ACQUIRE,
            std::ptr::null_mut(),
        )
    })?;
    Ok(())
}

/// Sends `sig` to every descendant of this reaper (PROC_REAP_KILL); returns how many got
/// it. Async-signal-safe.
pub fn reaper_kill(sig: i32) -> io::Result<u32> {
    let mut kill = ReaperKill {
        rk_sig: sig,
        rk_flags: 0,
        rk_subtree: 0,
        rk_killed: 0,
        rk_fpid: 0,
        rk_pad0: [0; 15],
    };
    // SAFETY: PROC_REAP_KILL takes a pointer to a procctl_reaper_kill, valid here.
    let ret = unsafe {
        libc::procctl(
            libc::P_PID,
            0,
            libc::PROC_REAP_KILL,
            (&mut kill as *mut ReaperKill).cast(),
        )
    };
    // ESRCH: no descendant left to signal.
    match check(ret) {
        Ok(_) => Ok(kill.rk_killed),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(0),
        Err(e) => Err(e),
    }
}

/// How many descendants this reaper has, zombies included (PROC_REAP_STATUS).
/// Async-signal-safe.
pub fn reaper_descendants() -> io::Result<u32> {
    let mut status = ReaperStatus {
        rs_flags: 0,
        rs_children: 0,
        rs_descendants: 0,
        rs_reaper: 0,
        rs_pid: 0,
        rs_pad0: [0; 15],
    };
    // SAFETY: PROC_REAP_STATUS takes a pointer to a procctl_reaper_status, valid here.
    check(unsafe {
        libc::procctl(
            libc::P_PID,
            0,
            libc::PROC_REAP_STATUS,
            (&mut status as *mut ReaperStatus).cast(),
        )
    })?;
    Ok(status.rs_descendants)
}

/// Blocks `signals` and waits for one of them (sigwait(2)); returns it. Async-signal-safe.
pub fn block_and_wait_signal(signals: &[i32]) -> i32 {
    // SAFETY: the set is initialised by sigemptyset before use; sig is a valid out-pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        if libc::sigwait(&set, &mut sig) != 0 {
            return 0;
        }
        sig
    }
}

/// Reaps any exited child without waiting: its pid and status. Async-signal-safe.
pub fn reap_any() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some((pid, status))
}

/// Ends this process the way `status` says a child ended: with its exit code, or killed by
/// its signal. Async-signal-safe.
pub fn end_like(status: i32) -> ! {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        reset_signals(&[]);
        // SAFETY: plain integer; the default action of `sig` ends us.
        unsafe { libc::raise(sig) };
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        127
    };
    // SAFETY: _exit ends the process at once.
    unsafe { libc::_exit(code) }
}

/// dup2(2) of `fd` onto `target`, then execve(2) of `/bin/sh` with `argv` and `envp` (both
/// null-terminated), in `/`, with stdin from `null`. Returns only on failure.
/// Async-signal-safe.
///
/// # Safety
/// `argv` and `envp` each end with a null pointer, and every pointer before it points to a
/// NUL-terminated C string valid for the call. Descriptors 0, 1 and 2 are replaced: nothing
/// else of this process may own them (a forked child about to exec).
pub unsafe fn exec_shell(
    null: BorrowedFd<'_>,
    output: BorrowedFd<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: the descriptors are open; the caller vouches for argv, envp and the slots 0 to 2.
    unsafe {
        if libc::dup2(null.as_raw_fd(), 0) < 0
            || libc::dup2(output.as_raw_fd(), 1) < 0
            || libc::dup2(output.as_raw_fd(), 2) < 0
            || libc::chdir(c"/".as_ptr()) < 0
        {
            return io::Error::last_os_error();
        }
        libc::execve(c"/bin/sh".as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    io::Error::last_os_error()
}
