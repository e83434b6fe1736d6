// The FreeBSD kernel interface the FreeBSD probe (`probe/freebsd.rs`) uses, written down once.
//
// The probe has no libc, so it carries these numbers itself. This table is `include!`d by the
// probe and by the daemon's FreeBSD backend, which checks every entry the `libc` crate also
// defines when it is compiled for FreeBSD (a wrong value stops that build); `tests/freebsd.rs`
// checks every entry, the syscall numbers included, against FreeBSD's own headers.
// Syscall numbers are the same on every FreeBSD architecture (one `syscalls.master`).

/// `SYS_exit` (sys/syscall.h): ends the process with a status.
pub const SYS_EXIT: usize = 1;
/// `SYS_sigprocmask` (sys/syscall.h).
pub const SYS_SIGPROCMASK: usize = 340;
/// `SYS_sigtimedwait` (sys/syscall.h): returns the signal taken, or an errno value with the
/// carry flag set (`EAGAIN` when the timeout passed).
pub const SYS_SIGTIMEDWAIT: usize = 345;
/// `SYS_clock_gettime` (sys/syscall.h).
pub const SYS_CLOCK_GETTIME: usize = 232;
/// `SIGHUP` (sys/signal.h).
pub const SIGHUP: usize = 1;
/// `SIGUSR1` (sys/signal.h): the verb `USR1`.
pub const SIGUSR1: usize = 30;
/// `SIGUSR2` (sys/signal.h): the verb `USR2`.
pub const SIGUSR2: usize = 31;
/// `SIG_SETMASK` (sys/signal.h): the `how` of sigprocmask(2) that replaces the mask.
pub const SIG_SETMASK: usize = 3;
/// `EINTR` (sys/errno.h).
pub const EINTR: usize = 4;
/// `EAGAIN` (sys/errno.h): what sigtimedwait(2) returns when its timeout passed.
pub const EAGAIN: usize = 35;
/// `CLOCK_MONOTONIC` (sys/_clock_id.h).
pub const CLOCK_MONOTONIC: usize = 4;
/// `_SIG_WORDS` (sys/_sigset.h): a `sigset_t` is this many 32-bit words; signal `n` is bit
/// `(n - 1) % 32` of word `(n - 1) / 32`.
pub const SIGSET_WORDS: usize = 4;
/// `NT_FREEBSD_ABI_TAG` (sys/elf_common.h): the type of the note that brands an ELF file as
/// FreeBSD's and carries the release it was built for.
pub const NT_FREEBSD_ABI_TAG: u32 = 1;
/// The release the probe's note names (`__FreeBSD_version` of 14.0). The kernel keeps older
/// behaviour only for images that name releases before 7.0 (`P_OSREL_*` in sys/param.h).
pub const PROBE_OSREL: u32 = 1_400_000;
/// `SYS_kill` (sys/syscall.h): with signal 0, whether the caller may signal (and so sees) a
/// process.
pub const SYS_KILL: usize = 37;
/// `EPERM` (sys/errno.h): kill(2) found the process but may not signal it.
pub const EPERM: usize = 1;
/// `ESRCH` (sys/errno.h): kill(2) found no such process, or none the caller's jail sees.
pub const ESRCH: usize = 3;
/// `SI_USER` (sys/signal.h): the `si_code` of a signal sent with kill(2).
pub const SI_USER: i32 = 0x10001;
/// `SI_QUEUE` (sys/signal.h): the `si_code` of a signal sent with sigqueue(2).
pub const SI_QUEUE: i32 = 0x10002;
/// `SI_LWP` (sys/signal.h): the `si_code` of a signal sent with thr_kill(2) or thr_kill2.
pub const SI_LWP: i32 = 0x10007;
/// `sizeof(siginfo_t)` on 64-bit FreeBSD (sys/signal.h): six ints, a pointer, a `sigval`
/// and a 40-byte union.
pub const SIGINFO_SIZE: usize = 80;
/// The byte offsets of `si_code` and `si_pid` in a `siginfo_t`.
pub const SIGINFO_CODE: usize = 8;
pub const SIGINFO_PID: usize = 12;
