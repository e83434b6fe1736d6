//! Builds the probe (`probe/probe.rs`) as a freestanding static executable and leaves it in
//! `OUT_DIR/probe`, where `src/sys/linux/image.rs` embeds it with `include_bytes!`.
//!
//! The probe is compiled by invoking the same `rustc` that builds this crate, for the same
//! target, with no libc and no start files: the result runs inside any jail, whatever loader or
//! libc the jail has, and costs a few pages of memory per probe.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=probe/probe.rs");
    println!("cargo:rerun-if-changed=probe/magic.rs");
    // Other platforms (FreeBSD) fork their probe from a clean helper instead.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
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
