//! The floor: the least a program can do to turn "a process in the jail got SIGHUP" into "the
//! command runs on the host". It is the bench binary started with `--jd-floor`; it places the
//! same probe image as the daemon (exec'd from a memfd) into the same kind of jail, waits for
//! its exit with waitpid, and posix_spawns the same `/bin/sh -c` command; when the command has
//! ended it places the next probe (like `-r`). No socket, no bookkeeping, no confinement steps
//! beyond joining the namespaces.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The daemon's own probe, built by build.rs for this package.
static PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe"));
const MAGIC_EXIT: i32 = 106;

/// The floor program: `--jd-floor JAIL_PID TITLE COMMAND DESCRIPTORS`. With DESCRIPTORS > 0
/// it first opens that many close-on-exec descriptors, as many as a daemon holding thousands of
/// probes has, to tell their cost apart from the cost of the daemon's loop.
pub fn run(args: &[String]) {
    let [jail, title, command, ballast] = args else {
        panic!("usage: --jd-floor JAIL_PID TITLE COMMAND DESCRIPTORS");
    };
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    // Held, unused, until the floor ends.
    let _ballast: Vec<OwnedFd> = (0..ballast.parse::<usize>().expect("descriptors"))
        .map(|_| rustix::io::fcntl_dupfd_cloexec(&null, 0).expect("dup: raise RLIMIT_NOFILE"))
        .collect();
    let jail: i32 = jail.parse().expect("jail pid");
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(jail).expect("pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open of the jail");
    let image = probe_image();
    let title = CString::new(title.as_str()).expect("title");
    let probe_argv = [title.as_ptr(), std::ptr::null()];
    let probe_envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let command = CString::new(command.as_str()).expect("command");
    let sh = c"/bin/sh";
    let sh_argv = [
        sh.as_ptr(),
        c"-c".as_ptr(),
        command.as_ptr(),
        std::ptr::null(),
    ];
    let path = c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let sh_envp = [path.as_ptr(), std::ptr::null()];
    let arm = || place_probe(&pidfd, &image, &probe_argv, &probe_envp);
    arm();
    let mut command_pid = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == MAGIC_EXIT {
            // SAFETY: null-terminated arrays of valid C strings that outlive the call.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut command_pid,
                    sh.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    sh_argv.as_ptr() as *const *mut libc::c_char,
                    sh_envp.as_ptr() as *const *mut libc::c_char,
                )
            };
            assert_eq!(rc, 0, "posix_spawn");
        } else if pid == command_pid {
            command_pid = 0;
            arm();
        }
    }
}

/// The probe image in a memfd, held by an O_PATH descriptor (a writable one would make exec
/// fail with ETXTBSY).
fn probe_image() -> OwnedFd {
    let memfd = rustix::fs::memfd_create("floor-probe", rustix::fs::MemfdFlags::CLOEXEC)
        .expect("memfd_create");
    let mut file = std::fs::File::from(memfd);
    std::io::Write::write_all(&mut file, PROBE).expect("write probe");
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("reopen probe image")
}

/// Forks helper A, which joins the jail's namespaces and clones the probe as our sibling
/// (CLONE_PARENT: a direct child of the floor, born in the jail's pid namespace), then exits.
/// The probe blocks SIGHUP (so that an early signal stays pending for its sigtimedwait), dies
/// with the floor, and execs the image.
fn place_probe(
    jail: &OwnedFd,
    image: &OwnedFd,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char; 1],
) {
    let namespaces = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
    // SAFETY: the floor is single-threaded; the children make only async-signal-safe calls on
    // data prepared before the fork, and end in exec or _exit.
    unsafe {
        let a = libc::fork();
        if a == 0 {
            if libc::setns(jail.as_raw_fd(), namespaces) != 0 {
                libc::_exit(1);
            }
            let b = libc::syscall(libc::SYS_clone, libc::CLONE_PARENT, 0, 0, 0, 0);
            if b == 0 {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGHUP);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::syscall(
                    libc::SYS_execveat,
                    image.as_raw_fd(),
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                libc::_exit(127);
            }
            libc::_exit(if b > 0 { 0 } else { 2 });
        }
        assert!(a > 0, "fork");
        let mut status = 0;
        libc::waitpid(a, &mut status, 0);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "floor: placing a probe failed (status {status:#x})"
        );
    }
}

/// The host's handle on a running floor.
pub struct Floor {
    child: Child,
}

impl Floor {
    pub fn start(
        jail_pid: u32,
        title: &str,
        command: &str,
        descriptors: usize,
        log: &Path,
    ) -> Floor {
        let child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--jd-floor",
                &jail_pid.to_string(),
                title,
                command,
                &descriptors.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("floor log"))
            .spawn()
            .expect("start the floor");
        Floor { child }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        // Its probes die with it (parent-death signal); the jail's end would kill them anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
