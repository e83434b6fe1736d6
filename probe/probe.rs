//! The probe: the only program of the host that runs inside a jail.
//!
//! It is built by `build.rs` as a freestanding static executable of about a kilobyte, with no
//! libc and no allocator, embedded into `jaildaemon` and exec'd from a sealed memfd.
//! Everything it is (title, credentials, namespaces) was set up before the exec; here it only
//! waits.
//! Its whole contract: SIGHUP sent from inside its jail makes it `exit(MAGIC_EXIT)`; any other
//! deadly signal kills it, which the daemon reads as "fire nothing".
//! A probe with verbs also waits for SIGUSR1 and/or SIGUSR2 and exits with `USR1_EXIT` or
//! `USR2_EXIT` for them (`magic.rs`), under the same rule for the sender; a signal that is not
//! one of its verbs keeps its default action (SIGUSR1 and SIGUSR2 kill).
//!
//! A verb with a confirmation window (`USR2=10`: 10 s) fires only on its second accepted signal
//! before the window its first one opened ends; one alone, or one after the end, only opens a
//! window. The probe keeps that state itself, with `rt_sigtimedwait`'s timeout and
//! CLOCK_MONOTONIC, so the daemon has no timer for it and re-places nothing.
//!
//! The verbs come in the probe's environment (`USR1=0`, `USR2=10`), which is otherwise empty,
//! not in its argv: argv is the title alone, so that `pkill -x -f TITLE` matches it, and a
//! second argument would show in every `ps`. Nothing in the jail can change the environment
//! after the exec (that would take writing the memory of a non-dumpable process); a jail with a
//! user namespace cannot even read it, and a jail whose root is the host's uid 0 without
//! CAP_SYS_PTRACE can read `/proc/PID/environ` but learns nothing new: which signals the probe
//! waits for shows to anyone in `SigBlk` of `/proc/PID/status`. The auxiliary vector was the
//! other candidate, but exec fills it from the kernel alone.
//!
//! "From inside its jail" means: sent by `kill`, `sigqueue` or `tgkill` (`si_code` `SI_USER`,
//! `SI_QUEUE` or `SI_TKILL`) by a process that has a pid in the probe's pid namespace. For
//! these the kernel fills in the sender's pid, and sets it to 0 when the sender is not in that
//! namespace or below it (`send_signal_locked` in kernel/signal.c does this for every `siginfo`
//! that carries a pid, forged ones from `rt_sigqueueinfo` included); no process has pid 0.
//! Every other SIGHUP is ignored and the probe keeps waiting:
//! - a sender outside the pid namespace (a host process with the probe's uid): `si_pid` 0;
//! - a SIGHUP the kernel sends itself (`SI_KERNEL`, a terminal hangup): the probe has started
//!   its own session and never opens a terminal, so it has no controlling terminal to hang up,
//!   and none can be given to it; this rule would ignore one anyway;
//! - `F_SETOWN`/`F_SETSIG` I/O signals (`POLL_IN`…) and `rt_sigqueueinfo` with a layout that has
//!   no sender pid (`SI_TIMER`…): the kernel checks only the uid for these, not the namespace,
//!   and puts other data where `si_pid` would be, so only the three sender codes above count.
//!
//! - a SIGHUP whose details the kernel could not keep (no memory for its queue entry) reads as
//!   `SI_USER` from pid 0 too, and is ignored; the jail's `pkill` can simply be repeated.
//!
//! A process inside the jail may forge `si_pid` with `rt_sigqueueinfo`, but it could fire the
//! probe with a plain `kill` anyway. The probe is never its pid namespace's init (the daemon
//! places it as an ordinary member), so the kernel's special rules for init do not apply.
//!
//! Ignored SIGHUPs (and verb signals) are counted where host root can read the count without
//! the probe holding a descriptor or changing its title: the probe's timer slack, which it has
//! no other use for (it sleeps without a timeout, or, in a confirmation window, for whole
//! seconds, to which a few nanoseconds of slack make no difference). `/proc/PID/timerslack_ns` reads 1 plus the number of SIGHUPs
//! ignored so far. The kernel lets only a holder of CAP_SYS_NICE in the probe's user namespace
//! read or write that file: host root, and the root of a user-namespaced jail, who could change
//! the count of its own probe but gains nothing by it.
//!
#![no_std]
#![no_main]

mod magic {
    include!("magic.rs");
}

const SIGHUP: usize = 1;
/// The same numbers on x86_64 and aarch64.
const SIGUSR1: usize = 10;
const SIGUSR2: usize = 12;
const SIG_SETMASK: usize = 2;
const PR_SET_NAME: usize = 15;
const PR_SET_DUMPABLE: usize = 4;
const PR_SET_TIMERSLACK: usize = 29;
/// `si_code` of a signal sent by kill(2), sigqueue(3) and tgkill(2): the kinds that carry the
/// sender's pid, set by the kernel (0 for a sender outside the probe's pid namespace).
const SI_USER: i32 = 0;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;
const EINTR: isize = 4;
const EAGAIN: isize = 11;
const CLOCK_MONOTONIC: usize = 1;
/// Linux `comm` holds 15 bytes plus a NUL.
const COMM_LEN: usize = 16;

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const SYS_RT_SIGPROCMASK: usize = 14;
    pub const SYS_RT_SIGTIMEDWAIT: usize = 128;
    pub const SYS_CLOCK_GETTIME: usize = 228;
    pub const SYS_PRCTL: usize = 157;
    pub const SYS_EXIT_GROUP: usize = 231;

    // The kernel enters `_start` with the stack pointer at argc, followed by the argv
    // pointers. Pass that address on, with the stack aligned as the C ABI expects.
    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "mov rdi, rsp",
        "and rsp, -16",
        "call probe_main",
        "ud2",
    );

    /// # Safety
    /// The caller passes arguments that are valid for syscall `nr`.
    pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret;
        // SAFETY: the x86_64 syscall ABI: number in rax, arguments in rdi, rsi, rdx, r10;
        // the kernel clobbers rcx and r11 and nothing else.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub const SYS_RT_SIGPROCMASK: usize = 135;
    pub const SYS_RT_SIGTIMEDWAIT: usize = 137;
    pub const SYS_CLOCK_GETTIME: usize = 113;
    pub const SYS_PRCTL: usize = 167;
    pub const SYS_EXIT_GROUP: usize = 94;

    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "mov x0, sp",
        "bl probe_main",
        "brk #0",
    );

    /// # Safety
    /// The caller passes arguments that are valid for syscall `nr`.
    pub unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret;
        // SAFETY: the aarch64 syscall ABI: number in x8, arguments and result in x0..x3.
        unsafe {
            core::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a as isize => ret,
                in("x1") b, in("x2") c, in("x3") d,
                options(nostack),
            );
        }
        ret
    }
}

use arch::*;

/// The kernel's `siginfo_t` on 64-bit Linux: 128 bytes; `si_signo`, `si_errno` and `si_code`
/// are the first three ints, and the union (for kill, sigqueue and tgkill: `si_pid` first)
/// starts at byte 16 on both x86_64 and aarch64.
#[repr(C, align(8))]
struct SigInfo([i32; 32]);
const _: () = assert!(core::mem::size_of::<SigInfo>() == 128);

impl SigInfo {
    fn code(&self) -> i32 {
        self.0[2]
    }
    fn pid(&self) -> i32 {
        self.0[4]
    }
    /// Sent by kill, sigqueue or tgkill, from a process that the probe's pid namespace can see.
    fn from_inside(&self) -> bool {
        matches!(self.code(), SI_USER | SI_QUEUE | SI_TKILL) && self.pid() != 0
    }
}

include!("verbs.rs");

/// The signals the probe waits for: SIGHUP and the verbs its environment names.
fn mask_of(verbs: &Verbs) -> u64 {
    let bit = |sig: usize| 1u64 << (sig - 1);
    let mut mask = bit(SIGHUP);
    if verbs.listed[0] {
        mask |= bit(SIGUSR1);
    }
    if verbs.listed[1] {
        mask |= bit(SIGUSR2);
    }
    mask
}

/// CLOCK_MONOTONIC in nanoseconds.
fn now_ns() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: clock_gettime writes one 16-byte timespec to a valid buffer.
    if unsafe { syscall4(SYS_CLOCK_GETTIME, CLOCK_MONOTONIC, ts.as_mut_ptr() as usize, 0, 0) } != 0
    {
        exit_group(1);
    }
    (ts[0] as u64).saturating_mul(1_000_000_000).saturating_add(ts[1] as u64)
}

/// Shows how many SIGHUPs were ignored: the timer slack becomes `1 + ignored` (0 would mean
/// "back to the default").
fn show_ignored(ignored: usize) {
    // SAFETY: PR_SET_TIMERSLACK takes an integer; it changes nothing the probe relies on.
    unsafe { syscall4(SYS_PRCTL, PR_SET_TIMERSLACK, ignored.saturating_add(1), 0, 0) };
}

fn exit_group(code: usize) -> ! {
    loop {
        // SAFETY: exit_group takes a plain integer and does not return.
        unsafe { syscall4(SYS_EXIT_GROUP, code, 0, 0, 0) };
    }
}

/// Copies the first bytes of the title into `comm`, so that `ps -o comm` and plain
/// `pgrep TITLE` see the title too, not the memfd's file name.
fn set_comm(title: *const u8) {
    let mut comm = [0u8; COMM_LEN];
    if !title.is_null() {
        for (i, slot) in comm.iter_mut().take(COMM_LEN - 1).enumerate() {
            // SAFETY: argv[0] is a NUL-terminated string set up by the kernel; we stop at NUL.
            let byte = unsafe { *title.add(i) };
            if byte == 0 {
                break;
            }
            *slot = byte;
        }
    }
    // SAFETY: PR_SET_NAME reads at most 16 bytes from a valid buffer.
    unsafe { syscall4(SYS_PRCTL, PR_SET_NAME, comm.as_ptr() as usize, 0, 0) };
}

#[unsafe(no_mangle)]
extern "C" fn probe_main(stack: *const usize) -> ! {
    // SAFETY: PR_SET_DUMPABLE takes an integer. Exec already made us non-dumpable (the image
    // is unreadable to us, see would_dump in fs/exec.c); this also covers fs.suid_dumpable=2.
    if unsafe { syscall4(SYS_PRCTL, PR_SET_DUMPABLE, 0, 0, 0) } != 0 {
        exit_group(1);
    }
    // SAFETY: at process entry the stack holds argc, then argv[0].
    let title = unsafe { *stack.add(1) } as *const u8;
    set_comm(title);

    // SIGHUP and the verbs stay blocked and are taken synchronously; every other signal is
    // unblocked and keeps its default action, so SIGTERM or SIGKILL kill the probe and fire
    // nothing.
    // SAFETY: `stack` is the initial stack `_start` was entered with.
    let verbs = unsafe { verbs_from_stack(stack) };
    let mask = mask_of(&verbs);
    // SAFETY: rt_sigprocmask reads an 8-byte mask from a valid pointer.
    if unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            SIG_SETMASK,
            &mask as *const u64 as usize,
            0,
            8,
        )
    } != 0
    {
        exit_group(1);
    }
    let mut ignored: usize = 0;
    show_ignored(ignored);
    let mut windows = Windows::new();
    loop {
        // Wait until the earliest open window ends, or for ever.
        let timeout = windows.left(now_ns()).map(timespec);
        let timeout_ptr = timeout
            .as_ref()
            .map_or(0, |t| t.as_ptr() as usize);
        let mut info = SigInfo([0; 32]);
        // SAFETY: rt_sigtimedwait reads an 8-byte mask and a 16-byte timespec (or none: wait
        // for ever) and writes one 128-byte siginfo_t to a valid, aligned buffer.
        let sig = unsafe {
            syscall4(
                SYS_RT_SIGTIMEDWAIT,
                &mask as *const u64 as usize,
                &mut info as *mut SigInfo as usize,
                timeout_ptr,
                8,
            )
        };
        let (code, verb) = match sig {
            s if s == SIGHUP as isize => (magic::MAGIC_EXIT, None),
            s if s == SIGUSR1 as isize => (magic::USR1_EXIT, Some(0)),
            s if s == SIGUSR2 as isize => (magic::USR2_EXIT, Some(1)),
            _ => (0, None),
        };
        if code != 0 {
            if !info.from_inside() {
                ignored = ignored.saturating_add(1);
                show_ignored(ignored);
                continue;
            }
            match verb {
                Some(v) if !windows.fires(&verbs, v, now_ns()) => {}
                _ => exit_group(code as usize),
            }
        } else if sig != -EINTR && sig != -EAGAIN {
            exit_group(1);
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit_group(1)
}
