// The verbs and confirmation windows of a probe, shared by `include!` between the Linux probe
// (`probe/probe.rs`) and the FreeBSD one (`probe/freebsd.rs`): how a probe learns them from its
// environment, and the state of its open windows. Both probes define `mod magic` first.

/// The verbs a probe's environment names (`USR1=SECS`, `USR2=SECS`), `USR1` first, and each
/// one's confirmation window in nanoseconds (0: none).
struct Verbs {
    listed: [bool; 2],
    window: [u64; 2],
}

/// Whether the NUL-terminated string at `entry` starts with `prefix`.
fn starts_with(entry: *const u8, prefix: &[u8]) -> bool {
    for (i, want) in prefix.iter().enumerate() {
        // SAFETY: `entry` is NUL-terminated; a mismatch (the NUL included) stops the scan
        // before reading past it.
        if unsafe { *entry.add(i) } != *want {
            return false;
        }
    }
    true
}

/// The decimal number of seconds after the `prefix` of `entry`, at most `MAX_CONFIRM_SECS`,
/// in nanoseconds; anything else reads as 0 (the daemon writes only valid numbers).
fn window_of(entry: *const u8, prefix: &[u8]) -> u64 {
    let mut secs: u64 = 0;
    let mut i = prefix.len();
    loop {
        // SAFETY: `entry` is NUL-terminated and starts with `prefix`; we stop at the NUL.
        let byte = unsafe { *entry.add(i) };
        match byte {
            0 => break,
            b'0'..=b'9' => secs = secs.saturating_mul(10).saturating_add((byte - b'0') as u64),
            _ => return 0,
        }
        i += 1;
    }
    secs.min(magic::MAX_CONFIRM_SECS) * 1_000_000_000
}

/// Reads the verbs from the environment.
///
/// # Safety
/// `stack` is the process's initial stack as the kernel laid it out (Linux and FreeBSD alike):
/// argc, argc argv pointers and a null, then the environment pointers up to a null, each
/// entry a NUL-terminated string.
unsafe fn verbs_from_stack(stack: *const usize) -> Verbs {
    let mut verbs = Verbs {
        listed: [false; 2],
        window: [0; 2],
    };
    // SAFETY: as the caller promises, the environment pointers start after argc, the argv
    // pointers and their null, and end with a null.
    unsafe {
        let argc = *stack;
        let mut env = stack.add(argc + 2);
        while *env != 0 {
            let entry = *env as *const u8;
            // Constant indices, here and below: no bounds check, so no panic path, in a
            // freestanding program whose `core` may come built for unwinding.
            if starts_with(entry, magic::USR1_VAR) {
                verbs.listed[0] = true;
                verbs.window[0] = window_of(entry, magic::USR1_VAR);
            } else if starts_with(entry, magic::USR2_VAR) {
                verbs.listed[1] = true;
                verbs.window[1] = window_of(entry, magic::USR2_VAR);
            }
            env = env.add(1);
        }
    }
    verbs
}

/// The confirmation windows open now: per verb, the monotonic time its window ends (0: none
/// open). A verb with a window fires on its second accepted signal before the end of the
/// window its first one opened; one alone, or one after the end, only opens a window.
struct Windows {
    open_until: [u64; 2],
}

impl Windows {
    const fn new() -> Windows {
        Windows { open_until: [0; 2] }
    }

    /// Closes the windows that ended by `now`; returns how long until the earliest open one
    /// ends, in nanoseconds, or `None` when none is open (wait for ever).
    fn left(&mut self, now: u64) -> Option<u64> {
        for end in self.open_until.iter_mut() {
            if *end != 0 && *end <= now {
                *end = 0;
            }
        }
        let next = self.open_until.iter().filter(|e| **e != 0).min().copied();
        next.map(|end| end - now)
    }

    /// An accepted signal for verb `v` (0: USR1) of `verbs` at `now`: whether the verb fires.
    fn fires(&mut self, verbs: &Verbs, v: usize, now: u64) -> bool {
        let window = verbs.window.get(v).copied().unwrap_or(0);
        let Some(end) = self.open_until.get_mut(v) else {
            return true;
        };
        if window == 0 || (*end != 0 && now < *end) {
            return true;
        }
        *end = now.saturating_add(window);
        false
    }
}

/// A relative timeout of `ns` nanoseconds as a `struct timespec` (64-bit `tv_sec` and
/// `tv_nsec` on every target the probes are built for).
fn timespec(ns: u64) -> [i64; 2] {
    [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64]
}
