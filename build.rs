//! Builds the probe (`probe/probe.rs`) as a freestanding static executable and leaves it in
//! `OUT_DIR/probe`, where `src/sys/linux/mod.rs` embeds it with `include_bytes!`. For FreeBSD
//! it builds `probe/freebsd.rs` instead, which `src/sys/freebsd/mod.rs` embeds.
//!
//! The probe is compiled by invoking the same `rustc` that builds this crate, for the same
//! target, with no libc and no start files: the result runs inside any jail, whatever loader or
//! libc the jail has, and costs a few pages of memory per probe. On x86_64 its code is
//! position-independent and laid out by a linker script of its own (`PROBE_LINKER_SCRIPT`), so
//! that `_start` can move it beside the stack (see "Memory" in `probe/probe.rs`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=probe/probe.rs");
    println!("cargo:rerun-if-changed=probe/magic.rs");
    println!("cargo:rerun-if-changed=probe/verbs.rs");
    println!("cargo:rerun-if-changed=probe/freebsd.rs");
    println!("cargo:rerun-if-changed=probe/freebsd_abi.rs");
    println!("cargo:rerun-if-changed=probe/freebsd_sender.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("freebsd") {
        build_freebsd_probe();
        return;
    }
    // There is no backend for other platforms (src/sys/mod.rs refuses them).
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    link_unwinder_statically();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        // aarch64: linked as the toolchain links it; the image stays where exec puts it.
        let status = probe_rustc(&out.join("probe"))
            .args(["-C", "relocation-model=static"])
            .arg("probe/probe.rs")
            .status()
            .expect("cannot run rustc to build the probe");
        assert!(status.success(), "building probe/probe.rs failed");
        return;
    }
    // Linked twice at two addresses: the part `_start` moves must come out byte for byte the
    // same, which proves it holds no absolute address.
    let images: Vec<Vec<u8>> = [PROBE_BASE, PROBE_BASE + 0x4000_0000]
        .iter()
        .map(|&base| {
            let probe = out.join(format!("probe-{base:x}"));
            let script = out.join(format!("probe-{base:x}.ld"));
            fs::write(
                &script,
                PROBE_LINKER_SCRIPT.replace("BASE", &format!("{base:#x}")),
            )
            .expect("cannot write the probe's linker script");
            let status = probe_rustc(&probe)
                // Position-independent code, in an executable linked at a fixed address.
                .args(["-C", "relocation-model=pic", "-C", "link-arg=-no-pie"])
                .arg("-C")
                .arg(format!("link-arg=-Wl,-T,{}", script.display()))
                .arg("probe/probe.rs")
                .status()
                .expect("cannot run rustc to build the probe");
            assert!(status.success(), "building probe/probe.rs failed");
            fs::read(&probe).expect("cannot read the probe")
        })
        .collect();
    let (first, second) = (moved_part(&images[0]), moved_part(&images[1]));
    assert!(
        first == second,
        "the probe's image is not position-independent: linked at two addresses, the part \
         that _start moves differs"
    );
    fs::write(out.join("probe"), &images[0]).expect("cannot write the probe");
}

/// Where the x86_64 probe is linked: the toolchain's usual address for a static executable.
/// `_start` moves it beside the stack; it stays here only when that fails.
const PROBE_BASE: u64 = 0x20_0000;

/// The x86_64 probe's layout: one segment (`probe_image`: the ELF and program headers, code
/// and constants, position-independent), then, on a page of its own, `_start`
/// (`.probe_relocate`), which moves the first segment and is unmapped after. No writable
/// segment: the probe writes only its stack. `BASE` is replaced by the link address.
const PROBE_LINKER_SCRIPT: &str = "\
ENTRY(_start)
PHDRS {
  probe_image PT_LOAD FILEHDR PHDRS FLAGS(5);
  relocate PT_LOAD FLAGS(5);
  stack PT_GNU_STACK FLAGS(6);
}
SECTIONS {
  __probe_image = BASE;
  . = BASE + SIZEOF_HEADERS;
  .text : { *(.text .text.*) *(.rodata .rodata.*) } :probe_image
  .data : { *(.data .data.* .bss .bss.* .got .got.* .tdata .tbss) } :probe_image
  . = ALIGN(4096);
  __probe_relocate_page = .;
  .probe_relocate : { *(.probe_relocate) } :relocate
  /DISCARD/ : { *(.eh_frame .eh_frame_hdr .comment .note .note.*) }
}
ASSERT(SIZEOF(.data) == 0, \"the probe must have no data to write: its state lives on its stack\")
ASSERT(SIZEOF(.probe_relocate) <= 4096, \"_start must fit the one page the probe unmaps\")
";

/// The bytes of the segment `_start` moves, past the headers (whose addresses differ with
/// the link address): file offsets from the end of the program headers to the page of
/// `.probe_relocate`.
fn moved_part(image: &[u8]) -> &[u8] {
    let u16_at = |at: usize| u16::from_le_bytes([image[at], image[at + 1]]) as usize;
    let u64_at = |at: usize| {
        let bytes: [u8; 8] = image[at..at + 8].try_into().expect("8 bytes");
        u64::from_le_bytes(bytes) as usize
    };
    // An executable linked at the address the script names, not a static PIE that the
    // loader would place (rustc asks for one with crt-static and PIC; `-no-pie` overrides it).
    const ET_EXEC: usize = 2;
    assert_eq!(
        u16_at(16),
        ET_EXEC,
        "the probe must be linked at a fixed address"
    );
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    let headers_end = phoff + phnum * phentsize;
    // The moved segment ends where the second loadable one (`_start`'s page) begins in the
    // file: the whole of it is compared, however large it grows.
    const PT_LOAD: u32 = 1;
    let loads: Vec<usize> = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&at| u32::from_le_bytes(image[at..at + 4].try_into().expect("4 bytes")) == PT_LOAD)
        .map(|at| u64_at(at + 8))
        .collect();
    assert_eq!(
        loads.len(),
        2,
        "the probe has its image and _start's page, nothing else"
    );
    &image[headers_end..loads[1].min(image.len())]
}

/// rustc building `probe/probe.rs` (the caller adds the source and its own flags) into `out`
/// as a freestanding static executable for the target.
fn probe_rustc(out: &Path) -> Command {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let mut rustc = Command::new(rustc);
    rustc
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "target-feature=+crt-static"])
        .args(["-C", "strip=symbols", "-C", "link-arg=-nostartfiles"])
        .args(["-C", "link-arg=-nostdlib", "-C", "link-arg=-static"])
        .args(["-C", "link-arg=-Wl,--build-id=none"])
        .arg("-o")
        .arg(out);
    rustc
}

/// Links GCC's unwinder into the binary (`libgcc_eh.a`, as `gcc -static-libgcc` does) rather
/// than loading `libgcc_s.so.1` at every start, on Linux with glibc.
///
/// Every `jaildaemon -c` is a process start, and the utility's round trip is mostly that. The
/// standard library refers to the unwinder (`_Unwind_Backtrace` for a panic's backtrace, even
/// with `panic = "abort"`) and links it as `-lgcc_s`; a second library for the dynamic loader
/// to find, map and relocate, whose constructor runs `cpuid` a dozen times (each an exit to
/// the hypervisor on a virtual machine). Named here, the static archive comes before
/// `-lgcc_s` on the link line, resolves those symbols itself, and `--as-needed` then drops
/// `libgcc_s.so.1`: `jaildaemon -V` starts in about 0.85 of the time. Nothing else changes: the
/// binary stays a position-independent executable with full RELRO, linked to glibc as before.
/// Debian builds `libgcc_eh.a` position-independent for this use. Other C libraries (musl)
/// bring their own unwinder arrangement and are left alone.
fn link_unwinder_statically() {
    if env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}

/// Builds `probe/freebsd.rs` into `OUT_DIR/probe` with the flags of the Linux probe, and brands
/// it FreeBSD in its ELF header (`EI_OSABI`, as brandelf(1) does; its note brands it too).
///
/// On FreeBSD it is compiled for the target itself. A cross build from Linux (`-Zbuild-std`
/// with zig, see DEVELOPERS.md) has no `core` for a FreeBSD target that a build script could
/// use, so there it is compiled for the Linux host's own target, which must be of the same
/// architecture: a freestanding program uses nothing of `core` that differs between the two
/// operating systems (same instruction set, data layout and calling convention), and its
/// kernel interface is its own assembly.
fn build_freebsd_probe() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let host = env::var("HOST").expect("cargo sets HOST");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let same_arch_linux = host.starts_with(&format!("{arch}-")) && host.contains("-linux-");
    let compile_for = if same_arch_linux { &host } else { &target };
    let probe = out.join("probe");
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "bin"])
        .args(["--target", compile_for])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "target-feature=+crt-static"])
        .args(["-C", "strip=symbols", "-C", "link-arg=-nostartfiles"])
        .args(["-C", "link-arg=-nostdlib", "-C", "link-arg=-static"])
        .args(["-C", "link-arg=-Wl,--build-id=none"])
        .arg("-o")
        .arg(&probe)
        .arg("probe/freebsd.rs")
        .status()
        .expect("cannot run rustc to build the FreeBSD probe");
    assert!(
        status.success(),
        "building probe/freebsd.rs for {compile_for} failed (a cross build from a host of \
         another architecture needs a `core` for {target})"
    );
    brand_freebsd(&probe);
}

/// Sets `EI_OSABI` of the ELF file at `path` to `ELFOSABI_FREEBSD`.
fn brand_freebsd(path: &Path) {
    const EI_OSABI: usize = 7;
    const ELFOSABI_FREEBSD: u8 = 9;
    let mut image = fs::read(path).expect("cannot read the FreeBSD probe");
    assert!(
        image.starts_with(b"\x7fELF") && image.len() > EI_OSABI,
        "the FreeBSD probe is not an ELF file"
    );
    image[EI_OSABI] = ELFOSABI_FREEBSD;
    fs::write(path, image).expect("cannot write the FreeBSD probe");
}
