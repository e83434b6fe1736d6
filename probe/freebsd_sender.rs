// Whether the FreeBSD probe takes a signal as sent from inside its jail. Shared by `include!`
// between the probe (`probe/freebsd.rs`) and `tests/freebsd.rs`, which runs it on Linux; both
// define `mod abi` (`probe/freebsd_abi.rs`) first.
//
// FreeBSD has no pid namespaces, so a signal always names its sender's pid; but a jailed
// process sees no process outside its jail: kill(pid, 0) from inside the jail fails with
// ESRCH for a host process (prison_check in kern_jail.c), and succeeds, or fails with EPERM
// (another uid), for one of the jail or of a jail below it.

/// Whether a signal taken with `code` and `pid` (its `si_code` and `si_pid`) came from a
/// process the probe's jail sees. `kill0` runs kill(pid, 0) as the probe and returns 0, or
/// the errno value it failed with. Only kill(2), sigqueue(2) and thr_kill(2) name a sender
/// (the kernel fills the pid in; no call lets a sender choose it); a signal of any other code
/// (the kernel's own, a timer's, I/O readiness) is not taken. Nor is one whose sender was
/// already reaped when the probe asks (ESRCH; an exited sender not yet reaped is still found):
/// the pid names nothing then, or, if it was reused meanwhile, another process, which is what
/// the probe judges. Both races are the kernel's; SECURITY.md names them.
fn sent_from_inside(code: i32, pid: i32, kill0: impl FnOnce(i32) -> usize) -> bool {
    let names_its_sender = code == abi::SI_USER || code == abi::SI_QUEUE || code == abi::SI_LWP;
    if !names_its_sender || pid <= 0 {
        return false;
    }
    match kill0(pid) {
        0 => true,
        // Seen, but of another uid: still a process of the jail.
        errno => errno == abi::EPERM,
    }
}
