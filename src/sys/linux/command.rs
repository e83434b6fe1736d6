//! Host commands, with a fixed environment, started like posix_spawn: `/bin/sh -c`, or the
//! program directly when the command has no shell syntax (`crate::invocation`).
//!
//! # Commands under control
//!
//! A command whose probe has a timeout runs in a cgroup of its own (`sys::CommandGroup`), under the
//! daemon's own cgroup v2 (also on a hybrid host, where it needs no controller), else under its v1
//! freezer cgroup: the child writes `0` into its `cgroup.procs` before its exec, so everything the
//! command starts is in it, whatever its process group or session.
//! The core owns the timer: at the timeout it asks the shell (`Effect::Stop`) for SIGTERM to the
//! cgroup, and `core::KILL_GRACE` (5 s) later for SIGKILL (`cgroup.kill`; on v1 frozen, killed one
//! by one, thawed), also when the shell itself has ended by then, for what it left.
//! The cgroup is removed once empty; a command that ends in time has what it left alone, with its
//! cgroup (logged).
//! On FreeBSD the shell runs under a keeper, a child of the daemon that makes itself the reaper of
//! everything the command starts (procctl `PROC_REAP_ACQUIRE`), reaps it, and on SIGTERM or SIGUSR1
//! from the daemon sends SIGTERM or SIGKILL to all of it (`PROC_REAP_KILL`); type-checked, never
//! run.

use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::process::Signal;

use super::cgroup::{self, GroupKind};
use super::image::Spawner;
use super::process::Process;
use super::raw;
use crate::invocation::{Invocation, candidates};
use crate::sys::posix;

/// Runs `command` on the host with exactly `env`, in `/`, with stdin from /dev/null and stdout
/// and stderr into a pipe, whose read end (non-blocking) is returned: as `/bin/sh -c command`,
/// or, for an `Invocation::Direct`, its program exec'd directly (looked up in `env`'s `PATH`),
/// falling back to `/bin/sh -c command` when no candidate can be exec'd, so that a missing or
/// unrunnable program ends with the shell's own status and message.
///
/// Like posix_spawn, the child shares the daemon's memory until its exec (the daemon waits);
/// like a probe's helpers, it shares the daemon's descriptor table until it takes one of its
/// own holding only the few lowest descriptors. Starting a command thus costs the same beside
/// 1 probe as beside 10,000. An exec that fails ends it with status 127, as a shell would.
///
/// With a `group`, the child joins that cgroup before its exec, so that everything the command
/// starts is in it from the start; a child that cannot join ends with status 127 unrun.
/// With a `user`, the child takes its groups, gid and uid (all three of each: real,
/// effective, saved) before its exec; a uid other than 0 leaves it no capability.
#[allow(unsafe_code)]
pub fn spawn_command(
    spawner: &mut Spawner,
    command: &str,
    invocation: &Invocation,
    env: &[(&str, &str)],
    group: Option<&CommandGroup>,
    user: Option<&crate::ids::HostUser>,
) -> io::Result<(Process, OwnedFd)> {
    let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
    let args = [
        c"/bin/sh".to_owned(),
        c"-c".to_owned(),
        std::ffi::CString::new(command).map_err(invalid)?,
    ];
    // For a direct exec: its argv, and the paths to try, prepared here since the child must
    // not allocate.
    let (words, paths) = match invocation {
        Invocation::Shell => (Vec::new(), Vec::new()),
        Invocation::Direct { words } => {
            let path = env
                .iter()
                .find(|(name, _)| *name == "PATH")
                .map_or("", |v| v.1);
            let words = words
                .iter()
                .map(|w| std::ffi::CString::new(w.as_str()).map_err(invalid))
                .collect::<io::Result<Vec<_>>>()?;
            let paths = candidates(&words[0].to_string_lossy(), path)
                .into_iter()
                .map(|p| std::ffi::CString::new(p).map_err(invalid))
                .collect::<io::Result<Vec<_>>>()?;
            (words, paths)
        }
    };
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
    let direct_argv = pointers(&words);
    let direct = (!paths.is_empty()).then_some(Direct {
        argv: &direct_argv,
        paths: &paths,
    });
    let groups: Vec<rustix::process::Gid> = user
        .map(|u| {
            u.groups
                .iter()
                .map(|g| rustix::process::Gid::from_raw(*g))
                .collect()
        })
        .unwrap_or_default();
    let ids = user.map(|u| {
        (
            rustix::process::Uid::from_raw(u.uid),
            rustix::process::Gid::from_raw(u.gid),
        )
    });
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::io::ioctl_fionbio(&reader, true)?;
    spawner.fill_slot(0, writer.as_fd())?;
    drop(writer);
    if let Some(group) = group {
        let procs = group.procs_for_writing();
        let filled = procs.and_then(|procs| spawner.fill_slot(1, procs.as_fd()));
        if let Err(e) = filled {
            spawner.clear_slots()?;
            return Err(e);
        }
    }
    let low_end = spawner.low_end();
    let plan = CommandPlan {
        direct,
        argv: &argv,
        envp: &envp,
        output: spawner.slots[0].as_fd(),
        join: group.map(|_| spawner.slots[1].as_fd()),
        groups: &groups,
        ids,
        null: spawner.null.as_fd(),
        low_end,
        signals: raw::signals_not_default(),
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
    /// A program to exec directly, tried before the shell.
    direct: Option<Direct<'a>>,
    /// `/bin/sh -c command`.
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    output: BorrowedFd<'a>,
    /// The `cgroup.procs` of the command's own cgroup, open for writing.
    join: Option<BorrowedFd<'a>>,
    /// The host user to become: supplementary groups, then uid and gid.
    groups: &'a [rustix::process::Gid],
    ids: Option<(rustix::process::Uid, rustix::process::Gid)>,
    null: BorrowedFd<'a>,
    low_end: u32,
    /// The signals whose action the child resets (`raw::signals_not_default`).
    signals: u64,
}

/// A program exec'd without a shell: its argv, and the paths to try in `PATH`'s order.
struct Direct<'a> {
    argv: &'a [*const libc::c_char],
    paths: &'a [std::ffi::CString],
}

/// The entry point of a command's child, on its own stack.
#[allow(unsafe_code)]
extern "C" fn command_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `CommandPlan` that `spawn_command` keeps alive until we have
    // exec'd or exited.
    let plan = unsafe { &*(arg as *const CommandPlan<'_>) };
    command_child(plan)
}

#[allow(unsafe_code)]
fn command_child(plan: &CommandPlan<'_>) -> ! {
    // The daemon blocks the signals it reads from its signalfd, and ignores SIGPIPE
    // (`sys::standard_process`): neither may reach the command.
    raw::reset_signal_dispositions(plan.signals);
    raw::set_all_signals_blocked(false);
    // Writing "0" to a `cgroup.procs` moves the writer: the command's own cgroup holds the
    // shell and everything it starts, before it starts anything.
    let join = |fd: BorrowedFd<'_>| match rustix::io::write(fd, b"0") {
        Ok(1) => Ok(()),
        Ok(_) => Err(io::Error::from_raw_os_error(libc::EIO)),
        Err(e) => Err(io::Error::from(e)),
    };
    // Raw syscalls, for this process alone: libc's wrappers would also change the ids of
    // every thread of the daemon, whose memory this child shares.
    let become_user = |(uid, gid)| {
        rustix::thread::set_thread_groups(plan.groups)
            .and_then(|()| rustix::thread::set_thread_res_gid(gid, gid, gid))
            .and_then(|()| rustix::thread::set_thread_res_uid(uid, uid, uid))
            .map_err(io::Error::from)
    };
    // SAFETY: this child ends by exec or `_exit` below and uses no descriptor from
    // `low_end` on: the plan's are the spawner's slots and /dev/null, all below it.
    let own_table = unsafe { raw::own_descriptors_below(plan.low_end) };
    // SAFETY: the table is this child's own from here; 0, 1 and 2 are nobody else's in it
    // (nothing here uses stdio), and from 3 on nothing must outlive the exec.
    let stdio = || unsafe {
        raw::dup_onto(plan.null, 0)
            .and_then(|()| raw::dup_onto(plan.output, 1))
            .and_then(|()| raw::dup_onto(plan.output, 2))
            .and_then(|()| raw::cloexec_from(3))
    };
    let prepared = own_table
        .and_then(|()| plan.join.map_or(Ok(()), join))
        .and_then(|()| plan.ids.map_or(Ok(()), become_user))
        .and_then(|()| stdio())
        .and_then(|()| rustix::process::chdir(c"/").map_err(io::Error::from));
    if prepared.is_ok() {
        // Each candidate in turn, as `sh` searches PATH; whatever keeps all of them from
        // running (none there, none executable) is left to the shell, which says so and ends
        // with its own status. A candidate that is executable but no binary (a script without
        // `#!`) ends the search, as in `sh`, which runs that one as a script: the shell does.
        if let Some(direct) = &plan.direct {
            for path in direct.paths {
                // SAFETY: `spawn_command` made every argv and envp of the plan with a null
                // pointer last, after pointers into C strings it keeps alive until we exit.
                let error = unsafe { raw::exec_path(path, direct.argv, plan.envp) };
                if error.raw_os_error() == Some(libc::ENOEXEC) {
                    break;
                }
            }
        }
        // SAFETY: as above.
        let _ = unsafe { raw::exec_path(c"/bin/sh", plan.argv, plan.envp) };
    }
    posix::exit_now(127)
}

/// A cgroup of a command's own, made when its probe has a timeout, so that at the timeout the
/// command is stopped with everything it started, even processes that left its process group
/// or session: under the daemon's own cgroup v2 (on a hybrid host too, where no controller is
/// needed), else under its cgroup of a v1 freezer hierarchy.
#[derive(Debug)]
pub struct CommandGroup {
    dir: PathBuf,
    kind: GroupKind,
}

impl CommandGroup {
    /// Makes the cgroup `name` (one already there, left by a daemon that crashed, is taken).
    pub fn create(name: &str) -> io::Result<CommandGroup> {
        let ours = fs::read_to_string("/proc/self/cgroup")?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
        let (parent, kind) = cgroup::own_group_dir(&ours, &mountinfo).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "neither cgroup v2 nor a cgroup v1 freezer is mounted",
            )
        })?;
        let dir = parent.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
        Ok(CommandGroup { dir, kind })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn procs_for_writing(&self) -> io::Result<OwnedFd> {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))?;
        Ok(file.into())
    }

    /// The processes in the cgroup now.
    pub fn members(&self) -> io::Result<Vec<posix::Pid>> {
        let text = fs::read_to_string(self.dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Sends `signal` to every process in the cgroup; returns how many got it. Each is held by
    /// a pidfd and then seen in the cgroup again before it is signalled through that pidfd, so
    /// that a pid reused meanwhile by a process outside is never signalled.
    pub fn signal_all(&self, signal: Signal) -> io::Result<usize> {
        let mut held = Vec::new();
        for pid in self.members()? {
            let Some(raw) = rustix::process::Pid::from_raw(pid) else {
                continue;
            };
            if let Ok(fd) = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
                held.push((pid, fd));
            }
        }
        let still = self.members()?;
        let mut sent = 0;
        for (pid, fd) in held {
            if still.contains(&pid) && rustix::process::pidfd_send_signal(&fd, signal).is_ok() {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// SIGKILL to every process in the cgroup: with `cgroup.kill` on cgroup v2 (one step, so a
    /// process forking meanwhile cannot escape), else frozen, killed one by one, and thawed.
    pub fn kill_all(&self) -> io::Result<()> {
        if self.kind == GroupKind::V2 {
            match fs::write(self.dir.join("cgroup.kill"), "1") {
                Ok(()) => return Ok(()),
                // Before Linux 5.14: freeze instead.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let (file, frozen, thawed) = match self.kind {
            GroupKind::V2 => ("cgroup.freeze", "1", "0"),
            GroupKind::Freezer => ("freezer.state", "FROZEN", "THAWED"),
        };
        fs::write(self.dir.join(file), frozen)?;
        let killed = self.signal_all(Signal::KILL);
        // Thawed whatever happened: a frozen cgroup left behind would hang what is in it.
        let thaw = fs::write(self.dir.join(file), thawed);
        killed.and(thaw)
    }

    /// Removes the cgroup; fails (EBUSY) while a process is in it.
    pub fn remove(&self) -> io::Result<()> {
        fs::remove_dir(&self.dir)
    }
}
