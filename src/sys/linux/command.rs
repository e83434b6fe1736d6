//! Host commands: `/bin/sh -c` with a fixed environment, started like posix_spawn.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::image::Spawner;
use super::process::Process;
use super::raw;
use crate::sys::posix;

/// Runs `/bin/sh -c command` on the host with exactly `env`, in `/`, with stdin from /dev/null
/// and stdout and stderr into a pipe, whose read end (non-blocking) is returned.
///
/// Like posix_spawn, the child shares the daemon's memory until its exec (the daemon waits);
/// like a probe's helpers, it shares the daemon's descriptor table until it takes one of its
/// own holding only the few lowest descriptors. Starting a command thus costs the same beside
/// 1 probe as beside 10,000. An exec that fails ends it with status 127, as a shell would.
#[allow(unsafe_code)]
pub fn spawn_command(
    spawner: &mut Spawner,
    command: &str,
    env: &[(&str, &str)],
) -> io::Result<(Process, OwnedFd)> {
    let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let args = [
        c"/bin/sh".to_owned(),
        c"-c".to_owned(),
        std::ffi::CString::new(command).map_err(invalid)?,
    ];
    let vars = env
        .iter()
        .map(|(name, value)| std::ffi::CString::new(format!("{name}={value}")).map_err(invalid))
        .collect::<io::Result<Vec<_>>>()?;
    let pointers = |strings: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
        let mut list: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
        list.push(std::ptr::null());
        list
    };
    let (argv, envp) = (pointers(&args), pointers(&vars));
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&reader, true)?;
    spawner.fill_slot(0, writer.as_fd())?;
    drop(writer);
    let low_end = spawner.low_end();
    let plan = CommandPlan {
        argv: &argv,
        envp: &envp,
        output: spawner.slots[0].as_fd(),
        null: spawner.null.as_fd(),
        low_end,
    };
    let arg = &plan as *const CommandPlan<'_> as *mut libc::c_void;
    // SAFETY: `command_entry` runs only `command_child`, which makes async-signal-safe calls,
    // reads the plan above (alive until we return) and writes nothing of ours, changes no
    // descriptor before it has a table of its own, and ends by exec or `_exit`.
    let pid = unsafe { raw::spawn_sharing(command_entry, &mut spawner.stack, arg) };
    // Here the child has exec'd or exited: it has left our memory and descriptor table.
    spawner.clear_slots()?;
    let process = Process::from_own_child(pid?)?;
    Ok((process, reader))
}

/// What a command's child needs, prepared before the clone so that it never allocates.
struct CommandPlan<'a> {
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    output: BorrowedFd<'a>,
    null: BorrowedFd<'a>,
    low_end: u32,
}

/// The entry point of a command's child, on its own stack.
#[allow(unsafe_code)]
extern "C" fn command_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `CommandPlan` that `spawn_command` keeps alive until we have
    // exec'd or exited.
    let plan = unsafe { &*(arg as *const CommandPlan<'_>) };
    command_child(plan)
}

fn command_child(plan: &CommandPlan<'_>) -> ! {
    // The daemon blocks the signals it reads from its signalfd, and Rust ignores SIGPIPE:
    // neither may reach the command.
    raw::reset_signal_dispositions();
    raw::set_all_signals_blocked(false);
    let prepared = raw::own_descriptors_below(plan.low_end)
        .and_then(|()| raw::dup_onto(plan.null, 0))
        .and_then(|()| raw::dup_onto(plan.output, 1))
        .and_then(|()| raw::dup_onto(plan.output, 2))
        .and_then(|()| raw::cloexec_from(3))
        .and_then(|()| rustix::process::chdir(c"/").map_err(io::Error::from));
    if prepared.is_ok() {
        let _ = raw::exec_path(c"/bin/sh", plan.argv, plan.envp);
    }
    posix::exit_now(127)
}
