//! The FreeBSD probe: the only program of the host that runs inside a FreeBSD jail.
//!
//! The FreeBSD twin of `probe/probe.rs`, built by `build.rs` as a freestanding static
//! executable with no libc and no allocator, embedded into `jaildaemon` and exec'd with
//! fexecve(2) after the daemon's child has attached to the jail, switched ids and confined
//! itself (`src/sys/freebsd/mod.rs`). Its argv is `[title]`, so its whole command line, as
//! `pkill -f` sees it, is the title.
//! Its whole contract: SIGHUP makes it exit with `MAGIC_EXIT`; any other signal keeps its
//! default action, so a deadly one kills it, which the daemon reads as "fire nothing".
//!
//! The kernel's numbers are in `probe/freebsd_abi.rs`, checked against the libc crate and
//! FreeBSD's headers. The image is branded FreeBSD twice: by the ABI note below, which also
//! names the release whose behaviour it expects, and by `build.rs` setting `EI_OSABI`.
#![no_std]
#![no_main]

mod magic {
    include!("magic.rs");
}

mod abi {
    #![allow(dead_code)]
    include!("freebsd_abi.rs");
}

use abi::*;

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
    // The kernel enters `_start` with the stack holding argc, argv and the environment; the
    // probe needs none of them. Align the stack as the C ABI expects and go on.
    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "and rsp, -16",
        "call probe_main",
        "ud2",
    );

    /// Returns the kernel's `rax`: the result, or an errno value with the carry flag set.
    /// Every call the probe makes returns 0 on success, so 0 means success and anything
    /// else an error.
    ///
    /// # Safety
    /// The caller passes arguments that are valid for syscall `nr`.
    pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> usize {
        let ret;
        // SAFETY: FreeBSD's amd64 syscall ABI: number in rax, arguments in rdi, rsi, rdx;
        // results in rax and rdx; `syscall` itself clobbers rcx and r11. The other argument
        // registers are declared clobbered too, which costs nothing and assumes less.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr => ret,
                inlateout("rdi") a => _, inlateout("rsi") b => _, inlateout("rdx") c => _,
                lateout("rcx") _, lateout("r11") _,
                lateout("r8") _, lateout("r9") _, lateout("r10") _,
                options(nostack),
            );
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    core::arch::global_asm!(".globl _start", "_start:", "bl probe_main", "brk #0",);

    /// Returns the kernel's `x0`: the result, or an errno value with the carry flag set.
    /// Every call the probe makes returns 0 on success, so 0 means success and anything
    /// else an error.
    ///
    /// # Safety
    /// The caller passes arguments that are valid for syscall `nr`.
    pub unsafe fn syscall3(nr: usize, a: usize, b: usize, c: usize) -> usize {
        let ret;
        // SAFETY: FreeBSD's arm64 syscall ABI: number in x8, arguments in x0..x2, results in
        // x0 and x1, the error in the carry flag. x2 is declared clobbered too, which costs
        // nothing and assumes less.
        unsafe {
            core::arch::asm!(
                "svc #0",
                in("x8") nr,
                inlateout("x0") a => ret,
                inlateout("x1") b => _, inlateout("x2") c => _,
                options(nostack),
            );
        }
        ret
    }
}

use arch::*;

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit takes a plain integer and does not return.
        unsafe { syscall3(SYS_EXIT, code, 0, 0) };
    }
}

#[unsafe(no_mangle)]
extern "C" fn probe_main() -> ! {
    let mut hup = [0u32; SIGSET_WORDS];
    hup[(SIGHUP - 1) / 32] = 1 << ((SIGHUP - 1) % 32);
    // SIGHUP stays blocked and is taken synchronously; every other signal is unblocked and
    // keeps its default action, so SIGTERM or SIGKILL kill the probe and fire nothing.
    // SAFETY: sigprocmask reads a sigset_t from a valid pointer; a null `oset` is allowed.
    if unsafe { syscall3(SYS_SIGPROCMASK, SIG_SETMASK, hup.as_ptr() as usize, 0) } != 0 {
        exit(1);
    }
    loop {
        let mut sig: i32 = 0;
        // SAFETY: sigwait reads a sigset_t and writes one int, both valid for the call.
        let err = unsafe {
            syscall3(
                SYS_SIGWAIT,
                hup.as_ptr() as usize,
                &mut sig as *mut i32 as usize,
                0,
            )
        };
        if err == 0 && sig as usize == SIGHUP {
            exit(magic::MAGIC_EXIT as usize);
        }
        if err != EINTR {
            exit(1);
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(1)
}
