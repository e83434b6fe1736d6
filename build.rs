//! Builds the probe (`probe/probe.rs`) as a freestanding static executable and leaves it in
//! `OUT_DIR/probe`, where `src/sys/linux/mod.rs` embeds it with `include_bytes!`. For FreeBSD
//! it builds `probe/freebsd.rs` instead, which `src/sys/freebsd/mod.rs` embeds.
//!
//! The probe is compiled by invoking the same `rustc` that builds this crate, for the same
//! target, with no libc and no start files: the result runs inside any jail, whatever loader or
//! libc the jail has, and costs a few pages of memory per probe.

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
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
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
        .args([
            "-C",
            "relocation-model=static",
            "-C",
            "target-feature=+crt-static",
        ])
        .args(["-C", "strip=symbols", "-C", "link-arg=-nostartfiles"])
        .args(["-C", "link-arg=-nostdlib", "-C", "link-arg=-static"])
        .args(["-C", "link-arg=-Wl,--build-id=none"])
        .arg("-o")
        .arg(out.join("probe"))
        .arg("probe/probe.rs")
        .status()
        .expect("cannot run rustc to build the probe");
    assert!(status.success(), "building probe/probe.rs failed");
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
