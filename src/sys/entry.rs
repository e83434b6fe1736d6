//! The process's entry point on Linux with glibc: C's `main`, which glibc's start code calls,
//! in place of the one the standard library writes around `fn main`. Part of the binary, not
//! of the library (`src/main.rs` includes it), and here because it is the platform's contract.
//!
//! Why: the standard library's start-up reads `/proc/self/maps` (glibc's
//! `pthread_getattr_np`, to place a guard for the main thread's stack), maps an alternate
//! signal stack for its overflow message and unmaps it at exit. That was 5–7 % of a
//! `jaildaemon -c … -j … -t …` round trip, and a tenth of the utility's start (BENCHMARKS.md,
//! "The utility's round trip"). What of that start-up this program needs is done here
//! (`sys::standard_process`: descriptors 0–2 open, SIGPIPE ignored), and `process::exit`
//! flushes stdout as a return from `fn main` would. The arguments are unaffected: on glibc
//! the standard library takes them from `.init_array`, before this runs. Lost: the message a
//! stack overflow of the main thread printed (a plain SIGSEGV now; the program has no
//! recursion and runs one thread), and in debug builds a panic's exit status 101: a panic
//! cannot unwind out of a C function, so it aborts, as release builds (`panic = "abort"`) did
//! already.

use std::ffi::{c_char, c_int};

#[allow(unsafe_code)]
// SAFETY: the one `main` of the program (`no_main` in `src/main.rs`), with C's signature; glibc
// calls it once, on the main thread, after its own start-up.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if jaildaemon::sys::standard_process().is_err() {
        // The standard library would have aborted; stderr may be closed, so nothing is said.
        let code = jaildaemon::error::Kind::Os.exit_code();
        std::process::exit(i32::from(code));
    }
    std::process::exit(i32::from(jaildaemon::run(std::env::args_os())))
}
