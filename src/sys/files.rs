//! Files the daemon writes as root (the pidfile, the state file and its lock, the metrics file,
//! the fallback log), in directories that may belong to someone else: node_exporter's textfile
//! directory often belongs to `prometheus`. Whatever that owner planted in advance under the
//! name root is about to use (a symbolic link to a file of root's, a FIFO, a hard link, a file
//! of their own), root never follows it, never blocks opening it, and never writes through it.
//! The same on Linux and FreeBSD: `O_EXCL` on a fresh random name, no `O_TMPFILE`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

/// How many fresh names `replace_file` tries before it gives up: only a name someone else
/// made a moment before (they cannot guess it) takes another try.
const NAME_TRIES: usize = 8;

/// How `open_own_file` opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only; a missing file is `NotFound`.
    Read,
    /// Read and write, created (with the mode given) when missing, never truncated: the
    /// pidfile and the state file's lock, whose content names the holder of their lock.
    ReadWrite,
    /// Appended to, created when missing: a log.
    Append,
}

/// Opens `path` as a regular file of ours with one link, or refuses with an error saying what
/// was found there: a symbolic link is not followed (`O_NOFOLLOW`), a FIFO or device cannot
/// block the open (`O_NONBLOCK`; a regular file ignores it), and a file of another owner or
/// with another name elsewhere (a hard link to a file of root's) is not written. Close-on-exec.
pub fn open_own_file(path: &Path, access: Access, mode: u32) -> io::Result<File> {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let flags = flags
        | match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR | OFlags::CREATE,
            Access::Append => OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
        };
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(mode as _))
        .map_err(|e| refused_open(path, e.into()))?;
    let file = File::from(fd);
    check_own_file(&file.metadata()?)?;
    Ok(file)
}

/// Says what an open met when it failed for what was there: a link refused by `O_NOFOLLOW`
/// (Linux says ELOOP, FreeBSD EMLINK), or a FIFO without a reader refused by `O_NONBLOCK`
/// (ENXIO). The name is looked at again, without following it, to say so plainly.
fn refused_open(path: &Path, e: io::Error) -> io::Error {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            io::Error::other("is a symbolic link; not followed")
        }
        Ok(meta) if !meta.is_file() => not_regular(&meta),
        _ => e,
    }
}

fn not_regular(meta: &std::fs::Metadata) -> io::Error {
    io::Error::other(format!("is {}, not a regular file; refused", kind_of(meta)))
}

/// A regular file, of the daemon's own user, with this one name.
fn check_own_file(meta: &std::fs::Metadata) -> io::Result<()> {
    if !meta.is_file() {
        return Err(not_regular(meta));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(io::Error::other(format!(
            "belongs to uid {}, not {euid}; refused",
            meta.uid()
        )));
    }
    if meta.nlink() != 1 {
        return Err(io::Error::other(format!(
            "has {} hard links; refused",
            meta.nlink()
        )));
    }
    Ok(())
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "something else"
    }
}

/// A file whose exclusive lock (flock) we hold until it is dropped, and which names our pid:
/// pidfile(3) semantics, for the pidfile and the state file's lock.
pub struct LockedFile {
    file: File,
}

/// Why `LockedFile::take` did not take a lock.
#[derive(Debug)]
pub enum NotLocked {
    /// Another process holds it; what its file says (its pid, as it wrote it).
    Held(String),
    /// It could not be opened (`open_own_file`) or locked.
    Failed(io::Error),
}

impl LockedFile {
    /// Opens `path` (created with `mode` when missing, never truncated: until the lock is ours
    /// the pid in it names the holder) and takes its lock, without waiting for it.
    pub fn take(path: &Path, mode: u32) -> Result<LockedFile, NotLocked> {
        let mut file = open_own_file(path, Access::ReadWrite, mode).map_err(NotLocked::Failed)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(LockedFile { file }),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                Err(NotLocked::Held(pid.trim().to_string()))
            }
            Err(e) => Err(NotLocked::Failed(e.into())),
        }
    }

    /// Replaces the file's content with `pid`.
    pub fn write_pid(&mut self, pid: u32) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{pid}")
    }
}

/// Whether fsync makes the new file last before `replace_file` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The file and its directory are flushed: the state file.
    Synced,
    /// Rewritten every second anyway, and a crash removes its meaning: the metrics file.
    Unsynced,
}

/// Replaces `path` with `body`, atomically: the body goes into a fresh file of mode `mode`
/// under a name no one can have made ready for it (`NAME.<16 random hex digits>.tmp`, created
/// with `O_EXCL | O_NOFOLLOW`, so nothing planted there is followed, opened or written), which
/// is then renamed over `path` (a rename replaces a link or a FIFO at `path` itself, never its
/// target). On failure the fresh file is removed.
pub fn replace_file(path: &Path, body: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let dir = open_directory(dir)?;
    let (file, temporary) = create_fresh(&dir, name, mode)?;
    let written = (|| {
        let mut file = File::from(file);
        file.write_all(body)?;
        if durability == Durability::Synced {
            file.sync_all()?;
        }
        rustix::fs::renameat(&dir, &temporary, &dir, name)?;
        if durability == Durability::Synced {
            rustix::fs::fsync(&dir)?;
        }
        Ok(())
    })();
    if written.is_err() {
        // unlinkat removes whatever has the name now; it follows nothing.
        let _ = rustix::fs::unlinkat(&dir, &temporary, AtFlags::empty());
    }
    written
}

/// Removes what a daemon killed between creating and renaming left of `replace_file` for
/// `path`: names of exactly the form it makes. For a caller that alone writes `path` (it holds
/// its lock), or whose temporaries no one else reads.
pub fn remove_leftovers(path: &Path) -> io::Result<usize> {
    let (dir, name) = split(path)?;
    let dir = open_directory(dir)?;
    let mut removed = 0;
    let mut listing = rustix::fs::Dir::read_from(&dir)?;
    while let Some(entry) = listing.read() {
        let entry = entry?;
        let entry = OsStr::from_bytes(entry.file_name().to_bytes());
        if is_temporary_of(entry, name) {
            rustix::fs::unlinkat(&dir, entry, AtFlags::empty())?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("names no file"))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    Ok((dir.unwrap_or(Path::new(".")), name))
}

/// The directory itself is the administrator's choice and may be reached through links; only
/// what is in it may be someone else's.
fn open_directory(dir: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(rustix::fs::open(dir, flags, Mode::empty())?)
}

/// A file that did not exist a moment ago, made by us in `dir` for `name`, with exactly
/// `mode` (whatever the umask), and its name.
fn create_fresh(dir: &OwnedFd, name: &OsStr, mode: u32) -> io::Result<(OwnedFd, OsString)> {
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::CLOEXEC
        | OFlags::NOCTTY;
    let mut last = io::Error::other("no fresh name");
    for _ in 0..NAME_TRIES {
        let temporary = temporary_name(name, random_suffix());
        match rustix::fs::openat(dir, &temporary, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => {
                let made = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode as _));
                if let Err(e) = made {
                    let _ = rustix::fs::unlinkat(dir, &temporary, AtFlags::empty());
                    return Err(e.into());
                }
                return Ok((fd, temporary));
            }
            Err(rustix::io::Errno::EXIST) => last = io::Error::other("no fresh name was free"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last)
}

fn temporary_name(name: &OsStr, suffix: u64) -> OsString {
    let mut temporary = name.to_os_string();
    temporary.push(format!(".{suffix:016x}.tmp"));
    temporary
}

fn is_temporary_of(entry: &OsStr, name: &OsStr) -> bool {
    let Some(rest) = entry.as_bytes().strip_prefix(name.as_bytes()) else {
        return false;
    };
    let Some(hex) = rest
        .strip_prefix(b".")
        .and_then(|r| r.strip_suffix(b".tmp"))
    else {
        return false;
    };
    hex.len() == 16 && hex.iter().all(|b| b"0123456789abcdef".contains(b))
}

/// 64 bits no one outside can predict: SipHash under the keys std draws from the system's
/// random source for each `RandomState`, of our pid and the time.
fn random_suffix() -> u64 {
    use std::hash::BuildHasher;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::collections::hash_map::RandomState::new().hash_one((std::process::id(), now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_recognised_by_their_exact_form_only() {
        let name = OsStr::new("jd.prom");
        let made = temporary_name(name, 0x0123_4567_89ab_cdef);
        assert_eq!(made, "jd.prom.0123456789abcdef.tmp");
        assert!(is_temporary_of(&made, name));
        for other in [
            "jd.prom",
            "jd.prom.tmp",
            "jd.prom.0123456789ABCDEF.tmp",
            "jd.prom.0123456789abcde.tmp",
            "jd.prom.0123456789abcdef.tmp.x",
            "xjd.prom.0123456789abcdef.tmp",
            "jd.prom.x.0123456789abcdef.tmp",
        ] {
            assert!(!is_temporary_of(OsStr::new(other), name), "{other}");
        }
        assert_ne!(random_suffix(), random_suffix());
    }
}
