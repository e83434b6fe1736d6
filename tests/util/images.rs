//! The offline container images the tests make from the host's static busybox: a root file
//! system as a tarball, and the Docker image imported from it (tests/containers.rs,
//! tests/fleets.rs).

use std::fs;
use std::sync::OnceLock;

use super::{TempDir, must, run};

/// A root file system of the host's static busybox and nothing else, as a tarball in `dir`:
/// `/bin` with its applets, root in `/etc/passwd` and `/etc/group`, and an `/sbin/init` for
/// the system container managers (LXD, Incus) that waits for a SIGPWR or SIGTERM to stop.
pub fn busybox_tar(dir: &TempDir) -> std::path::PathBuf {
    let root = dir.path("rootfs");
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = fs::read("/bin/busybox").expect("/bin/busybox (package busybox-static)");
    assert!(
        !has_interpreter(&busybox),
        "/bin/busybox is dynamic: the image needs busybox-static"
    );
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "killall", "sleep", "cat", "ps", "pidof", "kill"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(
        root.join("sbin/init"),
        "#!/bin/sh\ntrap 'exit 0' PWR TERM INT\nsleep 2147483647 &\nwait\n",
    )
    .unwrap();
    must("chmod", &["0755", root.join("sbin/init").to_str().unwrap()]);
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let tar = dir.path("rootfs.tar");
    must(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    tar
}

/// The Docker test image, imported offline on first use and kept for later runs.
pub fn docker_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = "jaildaemon-test-busybox:1".to_string();
        if run("docker", &["image", "inspect", &image])
            .status
            .success()
        {
            return image;
        }
        let dir = TempDir::new();
        let tar = busybox_tar(&dir);
        must("docker", &["import", tar.to_str().unwrap(), &image]);
        image
    })
}

/// True when an ELF64 file asks for a dynamic loader (has a PT_INTERP program header).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

/// The Podman test image, imported on first use and kept for later runs.
pub fn podman_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = "localhost/jaildaemon-test-busybox:1".to_string();
        if run("podman", &["image", "exists", &image]).status.success() {
            return image;
        }
        let dir = TempDir::new();
        let tar = busybox_tar(&dir);
        must("podman", &["import", tar.to_str().unwrap(), &image]);
        image
    })
}
