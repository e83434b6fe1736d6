//! The probe: the only program of the host that runs inside a jail.
//!
//! It is built by `build.rs` as a freestanding static executable of about a kilobyte, with no
//! libc and no allocator, embedded into `jaildaemon` and exec'd from a sealed memfd.
//! Everything it is (title, credentials, namespaces) was set up before the exec; here it only
//! waits.
//! Its whole contract: SIGHUP makes it `exit(MAGIC_EXIT)`; any other deadly signal kills it,
//! which the daemon reads as "fire nothing".
//!
#![no_std]
#![no_main]

mod magic {
    include!("magic.rs");
}

const SIGHUP: usize = 1;
const SIG_SETMASK: usize = 2;
const PR_SET_NAME: usize = 15;
const PR_SET_DUMPABLE: usize = 4;
const EINTR: isize = 4;
/// Linux `comm` holds 15 bytes plus a NUL.
const COMM_LEN: usize = 16;

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const SYS_RT_SIGPROCMASK: usize = 14;
    pub const SYS_RT_SIGTIMEDWAIT: usize = 128;
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

    // SIGHUP stays blocked and is taken synchronously; every other signal is unblocked and keeps
    // its default action, so SIGTERM or SIGKILL kill the probe and fire nothing.
    let hup: u64 = 1 << (SIGHUP - 1);
    // SAFETY: rt_sigprocmask reads an 8-byte mask from a valid pointer.
    if unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            SIG_SETMASK,
            &hup as *const u64 as usize,
            0,
            8,
        )
    } != 0
    {
        exit_group(1);
    }
    loop {
        // SAFETY: rt_sigtimedwait reads an 8-byte mask; null info and timeout mean "wait forever".
        let sig = unsafe { syscall4(SYS_RT_SIGTIMEDWAIT, &hup as *const u64 as usize, 0, 0, 8) };
        if sig == SIGHUP as isize {
            exit_group(magic::MAGIC_EXIT as usize);
        }
        if sig != -EINTR {
            exit_group(1);
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit_group(1)
}
