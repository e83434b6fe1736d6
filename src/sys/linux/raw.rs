//! The only `unsafe` code of the daemon: thin wrappers around the few calls that `rustix`
//! does not offer. Each wrapper is small enough to audit against its man page.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::posix::Forked;

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// fork(2), sharing our descriptor table (CLONE_FILES) instead of copying it: a daemon holding
/// 10,000 descriptors would otherwise copy them all for every placement, and close them all
/// again in the child. No stack is passed: the child continues on a copy of ours.
///
/// The child has no exit signal, so its exit raises no SIGCHLD: a SIGCHLD made the daemon scan
/// its children for stops (`posix::child_changes`, a walk over every child in the kernel,
/// 10,000 of them with as many probes; now at once only for a stop or continuation, and within
/// a second for an end), and arming by request, in many small placements, spent a sixth of the
/// daemon's time there. The children it starts with CLONE_PARENT take
/// its exit signal, none, until their exec (which sets SIGCHLD: an armed probe's stop or exit
/// raises it as before). A child without an exit signal is waited for only with `__WALL`
/// (`Process` waits so); the kernel gives it SIGCHLD back if it outlives us.
///
/// # Safety
/// As for `posix::fork`; besides, the child must not open, close or change any descriptor
/// until it has a table of its own (`own_descriptors_below`), since every change is ours too,
/// and we must change none until it has said so.
pub unsafe fn fork_sharing_descriptors() -> io::Result<Forked> {
    // SAFETY: raw clone with a null stack behaves like fork; the caller keeps the contract.
    let ret = unsafe { libc::syscall(libc::SYS_clone, libc::CLONE_FILES, 0, 0, 0, 0) };
    match check(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Runs `entry(arg)` in a new process that shares our memory and our descriptor table
/// (CLONE_VM | CLONE_FILES), on `stack`, and returns its pid once it has exec'd or exited
/// (CLONE_VFORK). As with posix_spawn, nothing of our address space is copied, and, unlike it,
/// nothing of our descriptor table either. Every signal is blocked around the clone, so that
/// no handler of ours ever runs on the child's stack; the child starts with all blocked.
///
/// # Safety
/// `entry` may make only async-signal-safe calls, may end only by exec or `_exit`, must not
/// change any descriptor before it has a table of its own, and must not write memory we use.
/// `arg` must be valid for `entry`; `stack` is the child's and nothing else may use it until
/// this returns.
pub unsafe fn spawn_sharing(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    stack: &mut [u8],
    arg: *mut libc::c_void,
) -> io::Result<i32> {
    // SAFETY: the caller keeps the contract; CLONE_VFORK makes us wait for the child's exec
    // or exit, so the stack and our memory are its alone until then.
    let flags = libc::CLONE_VFORK | libc::SIGCHLD;
    unsafe {
        clone_on_stack(
            entry,
            stack.as_mut_ptr(),
            stack.len(),
            flags,
            arg,
            std::ptr::null_mut(),
        )
    }
}

/// Starts a probe's helper B: a child of our parent (CLONE_PARENT), so born in the pid
/// namespace we have joined and reaped by the daemon (with CLONE_PARENT the exit signal is our
/// own, none until its exec: see `fork_sharing_descriptors`; so none is given), sharing our memory and descriptor table (CLONE_VM |
/// CLONE_FILES) on `stack`. Unlike `spawn_sharing` it returns at once: the Bs of a placement
/// run side by side. Nothing of our memory is copied for one, and its exec has nothing of
/// ours to tear down. Every signal is blocked around the clone; the child starts with all
/// blocked.
///
/// # Safety
/// `entry` may make only async-signal-safe calls, may end only by exec or `_exit`, must not
/// change any descriptor before it has a table of its own, and must write no memory but its
/// stack; `stack` points to `len` bytes that only this child uses; `arg` and everything it
/// reaches must stay valid until the child has exec'd or exited.
///
/// The kernel writes 0 into `left` (and wakes a futex waiter there) when the child leaves our
/// memory, by its exec or its exit (CLONE_CHILD_CLEARTID): `left` must not be 0 before, so
/// that `wait_until_left` can tell, and, like `arg`, must stay valid until the child has
/// exec'd or exited, when the kernel writes it.
pub unsafe fn spawn_sibling_sharing(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    stack: *mut u8,
    len: usize,
    arg: *mut libc::c_void,
    left: &AtomicU32,
) -> io::Result<i32> {
    let flags = libc::CLONE_PARENT | libc::CLONE_CHILD_CLEARTID;
    // SAFETY: the caller keeps the contract; `left` lives in memory the child shares, as long
    // as it does (the caller's plan).
    unsafe { clone_on_stack(entry, stack, len, flags, arg, left.as_ptr()) }
}

/// Fresh zeroed memory for helpers' stacks, mapped on its own and unmapped when dropped. A
/// `vec![0; n]` below malloc's mmap threshold (which grows as large blocks are freed) comes
/// from the heap and is cleared byte by byte, each of its pages faulted in by the daemon and
/// then copied into every helper A forked: a placement of 64 probes cleared 4 MiB. A mapping
/// of its own costs nothing until a helper touches a page, and never in the daemon.
pub struct Stacks {
    base: *mut u8,
    len: usize,
}

impl Stacks {
    pub fn new(len: usize) -> io::Result<Stacks> {
        if len == 0 {
            return Ok(Stacks {
                base: std::ptr::null_mut(),
                len,
            });
        }
        // SAFETY: a new anonymous private mapping, placed by the kernel: it overlaps nothing
        // of ours. MAP_NORESERVE: most of it is never touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Stacks {
            base: base.cast(),
            len,
        })
    }

    /// The first byte; `len` bytes from it are ours while `self` lives.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.base
    }
}

impl Drop for Stacks {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: exactly the mapping `new` made, unmapped once: nothing of ours points
            // into it any more (a helper that used it has its own copy of our memory).
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }
}

/// Waits until the kernel has written 0 into `left` (see `spawn_sibling_sharing`).
/// Async-signal-safe.
pub fn wait_until_left(left: &AtomicU32) {
    loop {
        let value = left.load(Ordering::Acquire);
        if value == 0 {
            return;
        }
        // Returns at once if the value changed meanwhile; a spurious wake-up just looks again.
        let _ =
            rustix::thread::futex::wait(left, rustix::thread::futex::Flags::empty(), value, None);
    }
}

/// clone(2) with CLONE_VM | CLONE_FILES and `flags`, on `stack`.
///
/// # Safety
/// As for `spawn_sibling_sharing`.
unsafe fn clone_on_stack(
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    stack: *mut u8,
    len: usize,
    extra: libc::c_int,
    arg: *mut libc::c_void,
    child_tid: *mut u32,
) -> io::Result<i32> {
    // The stack grows down on every architecture we build for; its top, 16-byte aligned.
    let top = ((stack as usize + len) & !15) as *mut libc::c_void;
    let flags = libc::CLONE_VM | libc::CLONE_FILES | extra;
    // SAFETY: the sets are initialised before pthread_sigmask reads them; clone gets a valid
    // entry point, the top of a stack only the child uses while we are suspended, and an
    // argument the caller vouches for.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        // The optional arguments: no parent tid, no TLS, the child tid word (or null).
        let no_tid: *mut libc::pid_t = std::ptr::null_mut();
        let no_tls: *mut libc::c_void = std::ptr::null_mut();
        let pid = libc::clone(
            entry,
            top,
            flags,
            arg,
            no_tid,
            no_tls,
            child_tid as *mut libc::pid_t,
        );
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 { Err(err) } else { Ok(pid) }
    }
}

/// Gives this process a descriptor table of its own holding only the descriptors below `end`
/// (close_range with CLOSE_RANGE_UNSHARE: the kernel copies just those). Async-signal-safe.
///
/// # Safety
/// Every descriptor from `end` on is closed in this process: no `OwnedFd`, `BorrowedFd` or
/// raw number of such a descriptor may be used (or dropped, which closes a recycled number)
/// after the call. Only a child that ends by exec or `_exit`, holding nothing of that range it
/// still needs, may call it.
pub unsafe fn own_descriptors_below(end: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers; the caller vouches that nothing above `end`
    // is used again.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            end,
            u32::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    })?;
    Ok(())
}

/// The signals whose action is not the default in this process, as a set (bit `n - 1` for
/// signal `n`): what a child must reset before it runs anything. exec keeps an ignored signal
/// ignored (the daemon ignores SIGPIPE, `sys::standard_process`; an rc script may start it
/// with SIGHUP ignored), and a `CLONE_VM` child must not run a handler of ours on our memory
/// (the standard library's for SIGSEGV and SIGBUS, where its start-up runs: not on Linux with
/// glibc, `src/sys/entry.rs`). Read once, at the first spawn: the daemon sets no action after
/// it starts (no thread, no handler of its own; it reads signals from a signalfd), so the set
/// does not change, and each child resets two or three actions instead of asking the kernel 62
/// times. A signal the
/// kernel will not tell about counts as set.
pub fn signals_not_default() -> u64 {
    static SET: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SET.get_or_init(|| {
        let mut set: u64 = 0;
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // A kernel `struct sigaction` (handler first, at most four words on every
            // architecture); SIG_DFL is 0.
            let mut old = [usize::MAX; 4];
            // SAFETY: rt_sigaction writes the current action into a valid, large enough
            // buffer and changes nothing (no new action); the mask size is the kernel's 8 bytes.
            let asked = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<u8>(),
                    old.as_mut_ptr(),
                    8,
                )
            };
            if asked != 0 || old[0] != 0 {
                set |= 1u64 << (sig - 1);
            }
        }
        set
    })
}

/// Resets the signals of `set` (from `signals_not_default`, taken before the clone) to their
/// default action. Uses the raw syscall because glibc's sigaction refuses its reserved signals
/// 32 and 33, which an ignoring parent may still have set. Async-signal-safe.
pub fn reset_signal_dispositions(set: u64) {
    // An all-zero kernel `struct sigaction` (handler, flags, [restorer,] mask; at most four
    // words on every architecture) means SIG_DFL, no flags, empty mask.
    let default = [0usize; 4];
    for sig in 1..=64 {
        if set & (1u64 << (sig - 1)) == 0 || sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a kernel sigaction from a valid, large enough buffer;
        // the old action is not asked for; the mask size is the kernel's 8 bytes.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                std::ptr::null_mut::<u8>(),
                8,
            )
        };
    }
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks every signal (or unblocks all, with `block == false`). Async-signal-safe.
pub fn set_all_signals_blocked(block: bool) {
    // SAFETY: sigfillset/sigemptyset initialise the set; pthread_sigmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if block {
            libc::sigfillset(&mut set);
        } else {
            libc::sigemptyset(&mut set);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Blocks `signals` and returns a non-blocking signalfd that reports them.
pub fn signalfd(signals: &[i32]) -> io::Result<OwnedFd> {
    let set = sigset(signals);
    // SAFETY: the set is initialised; pthread_sigmask and signalfd only read it.
    unsafe {
        let err = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        let fd = check(libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) as _)?;
        Ok(OwnedFd::from_raw_fd(fd as i32))
    }
}

/// Reads one pending signal from a signalfd, if any, with what its code says of a child.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> io::Result<Option<crate::sys::Taken>> {
    // SAFETY: signalfd_siginfo is plain data; read writes at most its size into it.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        let n = libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        );
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(err)
            };
        }
        let ended = matches!(
            info.ssi_code,
            libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED
        );
        Ok((n as usize == size).then_some(crate::sys::Taken {
            signal: info.ssi_signo as i32,
            child_ended: info.ssi_signo as i32 == libc::SIGCHLD && ended,
        }))
    }
}

/// Marks every descriptor from `first` on close-on-exec (close_range(2) with
/// CLOSE_RANGE_CLOEXEC, Linux 5.11), so that exec leaves the new program none of them.
/// Async-signal-safe.
///
/// # Safety
/// The flag is changed for descriptors owned by any code of this process: the caller must own
/// the whole descriptor table from `first` on (a child with a table of its own, about to exec),
/// so that no other owner relies on a descriptor surviving an exec.
pub unsafe fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and only changes descriptor flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })?;
    Ok(())
}

/// dup2(2): makes `target` a copy of `fd`, without close-on-exec. Async-signal-safe.
///
/// # Safety
/// Whatever `target` was is closed: no `OwnedFd` or `BorrowedFd` of that number may be used or
/// dropped afterwards (it now names `fd`'s file). The caller owns `target`'s slot.
pub unsafe fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    // SAFETY: plain integers; the caller vouches that it owns the slot `target`.
    check(unsafe { libc::dup2(fd.as_raw_fd(), target) } as libc::c_long)?;
    Ok(())
}

/// execve(2) of `path`. Returns only on failure. Async-signal-safe.
///
/// # Safety
/// `argv` and `envp` each end with a null pointer, and every pointer before it points to a
/// NUL-terminated C string that stays valid for the call (the kernel reads them all).
pub unsafe fn exec_path(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    debug_assert!(envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: the caller vouches that both arrays are null-terminated arrays of valid C
    // strings, alive for the duration of the call.
    unsafe {
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    io::Error::last_os_error()
}

/// execveat(2) with AT_EMPTY_PATH: executes the file behind `fd`. Returns only on failure.
/// Async-signal-safe.
///
/// # Safety
/// As for `exec_path`: `argv` and `envp` each end with a null pointer, and every pointer
/// before it points to a NUL-terminated C string that stays valid for the call.
pub unsafe fn exec_fd(
    fd: BorrowedFd<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    debug_assert!(envp.last().is_some_and(|p| p.is_null()));
    let empty: &CStr = c"";
    // SAFETY: the caller vouches that both arrays are null-terminated arrays of valid C
    // strings, alive for the duration of the call; the path is an empty C string.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

/// The supplementary groups of a Unix socket's peer, as they were at connect time
/// (SO_PEERGROUPS, Linux 4.13).
pub fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups = vec![0u32; 256];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<u32>()) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into the buffer and updates `len`.
        let ret = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / std::mem::size_of::<u32>();
        if ret < 0 {
            let err = io::Error::last_os_error();
            // ERANGE: more groups than room; `len` says how many, so ask again once.
            if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
                groups.resize(needed, 0);
                continue;
            }
            return Err(err);
        }
        groups.truncate(needed);
        return Ok(groups);
    }
}

#[cfg(test)]
mod tests {
    use super::super::process::Process;
    use super::*;
    use crate::sys::posix::{self, Exit};

    #[test]
    fn the_signals_a_child_resets_are_those_not_at_their_default() {
        let set = signals_not_default();
        let has = |sig: i32| set & (1 << (sig - 1)) != 0;
        // SIGPIPE is ignored: by the standard library's start-up in the test harness, by
        // `sys::standard_process` in the daemon.
        assert!(has(libc::SIGPIPE), "{set:#x}");
        // Twins: signals left at their default are not reset, and nor are the two no one can
        // change. (Not SIGHUP: a test run under nohup has it ignored.)
        for sig in [libc::SIGUSR1, libc::SIGUSR2, libc::SIGKILL, libc::SIGSTOP] {
            assert!(!has(sig), "signal {sig} in {set:#x}");
        }
    }

    /// Waits until `process` has exited, at most `secs` seconds. Allocates nothing.
    fn gone_within(process: &Process, secs: i64) {
        let mut gone = [rustix::event::PollFd::from_borrowed_fd(
            process.poll_fd(),
            rustix::event::PollFlags::IN,
        )];
        let within = rustix::time::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let _ = rustix::event::poll(&mut gone, Some(&within));
    }

    /// What a fork of the test saw of a child started by `start` that exits with 7: whether a
    /// SIGCHLD came, and whether its pidfd reaped that exit. In a fork, because it is one
    /// thread there: no other test's child can raise a SIGCHLD in it, and its blocked SIGCHLD
    /// stays pending for it to see. The fork only makes calls that do not allocate.
    fn child_seen(start: unsafe fn() -> io::Result<Forked>) -> (bool, bool) {
        const SIGCHLD_CAME: i32 = 1;
        const REAPED: i32 = 2;
        const FAILED: i32 = 64;
        // SAFETY: the fork makes only async-signal-safe, allocation-free calls, and ends by
        // `_exit`.
        let fork = match unsafe { posix::fork() }.expect("fork") {
            Forked::Parent(pid) => Process::from_own_child(pid).expect("pidfd of the fork"),
            Forked::Child => {
                let sigchld = sigset(&[libc::SIGCHLD]);
                // SAFETY: an initialised set, read by sigprocmask.
                unsafe { libc::sigprocmask(libc::SIG_BLOCK, &sigchld, std::ptr::null_mut()) };
                // SAFETY: the child only leaves.
                let child = match unsafe { start() } {
                    Ok(Forked::Child) => posix::exit_now(7),
                    Ok(Forked::Parent(pid)) => Process::from_own_child(pid),
                    Err(e) => Err(e),
                };
                let Ok(child) = child else {
                    posix::exit_now(FAILED)
                };
                gone_within(&child, 5);
                // SAFETY: sigpending fills the set it is given.
                let came = unsafe {
                    let mut pending: libc::sigset_t = std::mem::zeroed();
                    libc::sigpending(&mut pending);
                    libc::sigismember(&pending, libc::SIGCHLD) == 1
                };
                let reaped = matches!(child.try_wait(), Ok(Some(Exit::Code(7))));
                posix::exit_now(i32::from(came) * SIGCHLD_CAME + i32::from(reaped) * REAPED)
            }
        };
        gone_within(&fork, 30);
        match fork.try_wait().expect("waitid of the fork") {
            Some(Exit::Code(code)) if code < FAILED => {
                (code & SIGCHLD_CAME != 0, code & REAPED != 0)
            }
            other => panic!("the fork ended with {other:?}"),
        }
    }

    /// The line of `/proc/self/maps` whose mapping holds `len` bytes from `addr`, if any.
    fn mapping_holding(addr: usize, len: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let holds = |line: &&str| {
            let range = line.split(' ').next()?;
            let (from, to) = range.split_once('-')?;
            let from = usize::from_str_radix(from, 16).ok()?;
            let to = usize::from_str_radix(to, 16).ok()?;
            Some(from <= addr && addr + len <= to)
        };
        maps.lines()
            .find(|l| holds(l) == Some(true))
            .map(String::from)
    }

    #[test]
    fn helpers_stacks_are_a_zeroed_mapping_of_their_own() {
        let len = 3 * 64 * 1024;
        let mut stacks = Stacks::new(len).expect("mmap");
        let base = stacks.as_mut_ptr();
        // SAFETY: `len` bytes from `base` are ours while `stacks` lives, and nothing else
        // uses them.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base, len) };
        assert!(bytes.iter().all(|b| *b == 0), "not zeroed");
        bytes[len - 1] = 7;
        assert_eq!(bytes[len - 1], 7);
        // Mapped on its own: not a piece of the heap, which the daemon would have cleared.
        let line = mapping_holding(base as usize, len).expect("the stacks are mapped");
        assert!(!line.contains("[heap]"), "{line}");
        // Twin: no probe, no mapping.
        let mut none = Stacks::new(0).expect("nothing to map");
        assert!(none.as_mut_ptr().is_null());
    }

    #[test]
    fn a_placement_helpers_exit_raises_no_sigchld_and_its_pidfd_reaps_it() {
        // SAFETY: `child_seen`'s child only leaves.
        let (came, reaped) = child_seen(|| unsafe { fork_sharing_descriptors() });
        assert!(!came, "helper A's exit raised SIGCHLD");
        assert!(reaped, "helper A's exit was not reaped by its pidfd");
        // Twin: a child with the usual exit signal raises it, and is reaped the same way.
        // SAFETY: as above.
        let (came, reaped) = child_seen(|| unsafe { posix::fork() });
        assert!(came, "a plain fork's exit raised no SIGCHLD");
        assert!(reaped);
    }
}
