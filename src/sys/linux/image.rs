//! The `Spawner`: the probe image in a sealed memfd, and the low descriptor slots through
//! which a new process gets what it keeps until its exec.

use std::fs;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Kind};

/// The probe executable, kept in a sealed, execute-only memfd for the daemon's lifetime.
///
/// Execute-only matters: exec of a file the process cannot read makes the new process
/// non-dumpable and ties its memory to the host's user namespace (`would_dump` in fs/exec.c),
/// so a jail root, even inside its own user namespace, cannot read or ptrace the probe.
/// Sealing matters: `/proc/PID/exe` of a probe then leads to nothing a jail could rewrite, and
/// no host path is ever exec'd inside a jail.
pub struct Spawner {
    pub(super) fd: OwnedFd,
    /// Low descriptor slots, /dev/null while idle. A placement's helper and a command's child
    /// keep only the descriptors below `low_end`, so what they need (a status pipe or an
    /// output pipe, the jail's pidfd, its root) is put in these slots just before the clone.
    pub(super) slots: [OwnedFd; 3],
    pub(super) null: OwnedFd,
    /// The stack a command's child runs on until its exec (it shares our memory).
    pub(super) stack: Vec<u8>,
}

/// Far more than a command's child uses before its exec.
const CHILD_STACK: usize = 256 * 1024;

static PROBE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe"));

impl Spawner {
    pub fn load() -> io::Result<Self> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        // MFD_EXEC exists since Linux 6.3; older kernels refuse the flag but allow exec anyway.
        let memfd = rustix::fs::memfd_create("jaildaemon-probe", base | MemfdFlags::EXEC)
            .or_else(|_| rustix::fs::memfd_create("jaildaemon-probe", base))?;
        let mut file = fs::File::from(memfd);
        io::Write::write_all(&mut file, PROBE_BYTES)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(0o111))?;
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
        rustix::fs::fcntl_add_seals(&file, seals)?;
        // F_SEAL_EXEC (Linux 6.3) also freezes the mode bits.
        let _ = rustix::fs::fcntl_add_seals(&file, SealFlags::EXEC);
        rustix::fs::fcntl_add_seals(&file, SealFlags::SEAL)?;
        // A descriptor open for writing would make exec fail with ETXTBSY: keep an O_PATH one.
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
        let fd = rustix::fs::open(path.as_str(), OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        drop(file);
        let null = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let slot = || rustix::io::fcntl_dupfd_cloexec(&null, 0);
        let slots = [slot()?, slot()?, slot()?];
        Ok(Spawner {
            fd,
            slots,
            null,
            stack: vec![0; CHILD_STACK],
        })
    }

    /// The end of the descriptors a child keeps until its exec: the image and the slots.
    pub(super) fn low_end(&self) -> u32 {
        use std::os::fd::AsRawFd;
        let highest = self.slots.iter().map(|s| s.as_raw_fd());
        (highest.fold(self.fd.as_raw_fd(), i32::max) + 1) as u32
    }

    /// Puts a copy of `fd` in slot `index` (close-on-exec).
    pub(super) fn fill_slot(&mut self, index: usize, fd: BorrowedFd<'_>) -> io::Result<()> {
        rustix::io::dup3(fd, &mut self.slots[index], rustix::io::DupFlags::CLOEXEC)?;
        Ok(())
    }

    /// Puts /dev/null back in every slot: the daemon's copies of what they held go.
    pub(super) fn clear_slots(&mut self) -> io::Result<()> {
        for slot in &mut self.slots {
            rustix::io::dup3(&self.null, slot, rustix::io::DupFlags::CLOEXEC)?;
        }
        Ok(())
    }
}

impl Spawner {
    /// The image is still execute-only: host root could make it readable (`F_SEAL_EXEC` only
    /// freezes the exec bits), and a readable image would make probes dumpable.
    pub(super) fn check_sealed(&self) -> Result<(), Error> {
        let stat = rustix::fs::fstat(&self.fd)
            .map_err(|e| Error::os("fstat of the probe image", e.into()))?;
        let mode = stat.st_mode & 0o7777;
        if mode != 0o111 {
            return Err(Error::new(
                Kind::Internal,
                format!(
                    "the probe image's mode was changed to {mode:o}; refusing to place probes (restart the daemon)"
                ),
            ));
        }
        Ok(())
    }
}
