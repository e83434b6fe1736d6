//! The binary. On Linux with glibc its entry point is platform code, `src/sys/entry.rs`, in
//! place of the standard library's `main`; elsewhere it is the usual one.
#![deny(unsafe_code)]
#![cfg_attr(all(target_os = "linux", target_env = "gnu"), no_main)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[path = "sys/entry.rs"]
mod entry;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(jaildaemon::run(std::env::args_os()))
}
