//! The FreeBSD probe: the only program of the host that runs inside a FreeBSD jail.
//!
//! The FreeBSD twin of `probe/probe.rs`, built by `build.rs` as a freestanding static
//! executable with no libc and no allocator, embedded into `jaildaemon` and exec'd with
//! fexecve(2) after the daemon's child has attached to the jail, switched ids and confined
//! itself (`src/sys/freebsd/mod.rs`). Its argv is `[title]`, or with `status` the title and
//! the status words after it, as on Linux.
//! Its whole contract: SIGHUP makes it exit with `MAGIC_EXIT`; any other signal keeps its
//! default action, so a deadly one kills it, which the daemon reads as "fire nothing".
//! A probe with verbs also waits for SIGUSR1 and/or SIGUSR2 and exits with `USR1_EXIT` or
//! `USR2_EXIT` for them (`magic.rs`); it learns them, and their confirmation windows, from its
//! environment (`USR1=0`, `USR2=10`) exactly as the Linux probe does (`probe/verbs.rs`), and
//! keeps an open window itself with sigtimedwait(2)'s timeout and CLOCK_MONOTONIC.
//! Like the Linux probe, it takes such a signal only from a sender inside its jail: FreeBSD
//! always names the sender's pid, and a process outside the jail is one the probe cannot see
//! (`probe/freebsd_sender.rs`). Any other it ignores and keeps waiting; unlike the Linux
//! probe, it keeps no count of them (FreeBSD has no timer slack for host root to read).
//!
//! The kernel's numbers are in `probe/freebsd_abi.rs`, checked against the libc crate and
//! FreeBSD's headers. The image is branded FreeBSD twice: by the ABI note below, which also
//! names the release whose behaviour it expects, and by `build.rs` setting `EI_OSABI`.
#![no_std]
#![no_main]

// `READY_FD` is the Linux placement's: here the daemon learns a probe is placed otherwise.
#[allow(dead_code)]
mod magic {
    include!("magic.rs");
}

mod abi {
    #![allow(dead_code)]
    include!("freebsd_abi.rs");
}

use abi::*;

include!("verbs.rs");
include!("freebsd_sender.rs");

// The note that brands the image (`.note.tag`, as FreeBSD's own crt1 carries it): name
// "FreeBSD", type NT_FREEBSD_ABI_TAG, and the release as its 4-byte description. The section
// is allocated, so the linker puts it in a PT_NOTE segment, where the kernel looks; "R" keeps
// the linker's garbage collection off it.
core::arch::global_asm!(
    ".pushsection .note.tag,\"aR\",%note",
    ".p2align 2",
    ".long 8",
    ".long 4",
    ".long {tag}",
    ".asciz \"FreeBSD\"",
    ".long {osrel}",
    ".popsection",
    tag = const NT_FREEBSD_ABI_TAG,
    osrel = const PROBE_OSREL,
);

#[cfg(target_arch = "x86_64")]
mod arch {
    // The kernel enters `_start` with `rdi` pointing at the initial stack (argc, argv, the
    // environment), which is also `probe_main`'s first argument; `rsp` lies just below it
    // (exec_setregs in sys/amd64/amd64/exec_machdep.c). Align the stack as the C ABI expects
    // and go on.
    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "and rsp, -16",
        "call probe_main",
        "ud2",
    );

    /// Returns the kernel's `rax` and whether the carry flag was set: the result, or an errno
    /// value with the carry flag set.
    ///
    /// # Safety
    /// The caller passes arguments that are valid for syscall `nr`.
    pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> (usize, bool) {
        let ret;
        let carry: u8;
        // SAFETY: FreeBSD's amd64 syscall ABI: number in rax, arguments in rdi, rsi, rdx;
        // results in rax and rdx, an error in the carry flag; `syscall` itself clobbers rcx
        // and r11. The other argument registers are declared clobbered too, which costs
        // nothing and assumes less.
        unsafe {
            core::arch::asm!(
                "syscall",
                "setc {carry}",
                carry = out(reg_byte) carry,
                inlateout("rax") nr => ret,
                inlateout("rdi") a => _, inlateout("rsi") b => _, inlateout("rdx") c => _,
                lateout("rcx") _, lateout("r11") _,
                lateout("r8") _, lateout("r9") _, lateout("r10") _,
                options(nostack),
            );
        }
        (ret, carry != 0)
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    // The kernel enters `_start` with `x0` pointing at the initial stack (argc, argv, the
    // environment), which is also `probe_main`'s first argument, and `sp` aligned
    // (exec_setregs in sys/arm64/arm64/exec_machdep.c).
    core::arch::global_asm!(".globl _start", "_start:", "bl probe_main", "brk #0",);

    /// Returns the kernel's `x0` and whether the carry flag was set: the result, or an errno
    /// value with the carry flag set.
    ///
    /// # Safety
    /// The caller passes arguments that are valid for syscall `nr`.
    pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> (usize, bool) {
        let ret;
        let carry: u32;
        // SAFETY: FreeBSD's arm64 syscall ABI: number in x8, arguments in x0..x2, results in
        // x0 and x1, the error in the carry flag. x2 is declared clobbered too, which costs
        // nothing and assumes less.
        unsafe {
            core::arch::asm!(
                "svc #0",
                "cset {carry:w}, cs",
                carry = lateout(reg) carry,
                in("x8") nr,
                inlateout("x0") a => ret,
                inlateout("x1") b => _, inlateout("x2") c => _,
                options(nostack),
            );
        }
        (ret, carry != 0)
    }
}

use arch::*;

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit takes a plain integer and does not return.
        unsafe { syscall3(SYS_EXIT, code, 0, 0) };
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
fn now_ns() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: clock_gettime writes one 16-byte timespec to a valid buffer.
    let (_, failed) = unsafe {
        syscall3(
            SYS_CLOCK_GETTIME,
            CLOCK_MONOTONIC,
            ts.as_mut_ptr() as usize,
            0,
        )
    };
    if failed {
        exit(1);
    }
    (ts[0] as u64).saturating_mul(1_000_000_000).saturating_add(ts[1] as u64)
}

/// The signals the probe waits for: SIGHUP and the verbs its environment names.
fn mask_of(verbs: &Verbs) -> [u32; SIGSET_WORDS] {
    let mut mask = [0u32; SIGSET_WORDS];
    // Signal `n` is bit `(n - 1) % 32` of word `(n - 1) / 32` (`get_mut`: no panic path).
    let mut add = |sig: usize| {
        if let Some(word) = mask.get_mut((sig - 1) / 32) {
            *word |= 1 << ((sig - 1) % 32);
        }
    };
    add(SIGHUP);
    if verbs.listed[0] {
        add(SIGUSR1);
    }
    if verbs.listed[1] {
        add(SIGUSR2);
    }
    mask
}

/// A `siginfo_t`, aligned as the kernel writes it, read by byte offset as 32-bit words.
#[repr(C, align(8))]
struct SigInfo([i32; SIGINFO_SIZE / 4]);

/// kill(pid, 0) as the probe: 0, or the errno value it failed with.
fn kill0(pid: i32) -> usize {
    // SAFETY: kill takes two integers and touches no memory of ours; signal 0 sends nothing.
    let (ret, failed) = unsafe { syscall3(SYS_KILL, pid as usize, 0, 0) };
    if failed { ret } else { 0 }
}

#[unsafe(no_mangle)]
extern "C" fn probe_main(stack: *const usize) -> ! {
    // SAFETY: `stack` is the initial stack the kernel entered `_start` with.
    let verbs = unsafe { verbs_from_stack(stack) };
    let mask = mask_of(&verbs);
    // SIGHUP and the verbs stay blocked and are taken synchronously; every other signal is
    // unblocked and keeps its default action, so SIGTERM or SIGKILL kill the probe and fire
    // nothing.
    // SAFETY: sigprocmask reads a sigset_t from a valid pointer; a null `oset` is allowed.
    let (_, failed) =
        unsafe { syscall3(SYS_SIGPROCMASK, SIG_SETMASK, mask.as_ptr() as usize, 0) };
    if failed {
        exit(1);
    }
    let mut windows = Windows::new();
    loop {
        // Wait until the earliest open window ends, or for ever.
        let timeout = windows.left(now_ns()).map(timespec);
        let timeout_ptr = timeout
            .as_ref()
            .map_or(0, |t| t.as_ptr() as usize);
        let mut info = SigInfo([0; SIGINFO_SIZE / 4]);
        // SAFETY: sigtimedwait reads a sigset_t and a 16-byte timespec (or none: wait for
        // ever), and writes one siginfo_t of SIGINFO_SIZE bytes to `info` (sys_sigtimedwait
        // in kern_sig.c).
        let (sig, failed) = unsafe {
            syscall3(
                SYS_SIGTIMEDWAIT,
                mask.as_ptr() as usize,
                info.0.as_mut_ptr() as usize,
                timeout_ptr,
            )
        };
        if failed {
            if sig == EINTR || sig == EAGAIN {
                continue;
            }
            exit(1);
        }
        // A signal from outside the jail (a host process) is ignored, verbs' too; the probe
        // waits on. Constant indices: no bounds check, so no panic path.
        let (si_code, si_pid) = (info.0[SIGINFO_CODE / 4], info.0[SIGINFO_PID / 4]);
        if !sent_from_inside(si_code, si_pid, kill0) {
            continue;
        }
        let (code, verb) = match sig {
            SIGHUP => (magic::MAGIC_EXIT, None),
            SIGUSR1 => (magic::USR1_EXIT, Some(0)),
            SIGUSR2 => (magic::USR2_EXIT, Some(1)),
            _ => exit(1),
        };
        match verb {
            Some(v) if !windows.fires(&verbs, v, now_ns()) => {}
            _ => exit(code as usize),
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(1)
}
