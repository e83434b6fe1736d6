//! The tools a user would pick instead of jaildaemon, running the same `sh -c` command:
//! adnanh/webhook on loopback, and an `inotifywait -m` loop on a file the jail touches.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use super::{installed, skipped};

/// webhook serving one hook, `bench`, that runs `/bin/sh -c COMMAND`. It answers at once and
/// runs the command in the background (no `include-command-output-in-response`).
pub struct Webhook {
    child: Child,
    pub port: u16,
}

impl Webhook {
    /// `None`, said loudly, when webhook is not installed.
    pub fn start(dir: &Path, command: &str) -> Option<Webhook> {
        if !installed("webhook") {
            skipped("webhook rows: webhook is not installed (Debian package `webhook`)");
            return None;
        }
        let hooks = dir.join("hooks.json");
        let spec = serde_json::json!([{
            "id": "bench",
            "execute-command": "/bin/sh",
            "command-working-directory": "/",
            "http-methods": ["POST"],
            "pass-arguments-to-command": [
                {"source": "string", "name": "-c"},
                {"source": "string", "name": command},
            ],
        }]);
        fs::write(&hooks, spec.to_string()).expect("write hooks.json");
        // A free port: bound by us for an instant, then handed to webhook.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("webhook")
            .arg("-hooks")
            .arg(&hooks)
            .args(["-ip", "127.0.0.1", "-port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("webhook.log")).expect("webhook log"))
            .spawn()
            .expect("start webhook");
        let webhook = Webhook { child, port };
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(webhook);
            }
            sleep(Duration::from_millis(10));
        }
        panic!(
            "webhook did not listen on port {port}: {}",
            fs::read_to_string(dir.join("webhook.log")).unwrap_or_default()
        );
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `inotifywait -m -e attrib FILE | while read; do /bin/sh -c COMMAND; done`, in a process
/// group of its own so that the whole pipeline ends together.
pub struct Inotify {
    child: Child,
}

impl Inotify {
    /// `None`, said loudly, when inotifywait is not installed.
    pub fn start(dir: &Path, watched: &Path, command: &str) -> Option<Inotify> {
        if !installed("inotifywait") {
            skipped("inotify rows: inotifywait is not installed (Debian package `inotify-tools`)");
            return None;
        }
        let log = dir.join("inotify.log");
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"inotifywait -m -e attrib --format x "$1" 2>"$2" | while read -r _; do /bin/sh -c "$3"; done"#)
            .arg("sh")
            .arg(watched)
            .arg(&log)
            .arg(command)
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the inotifywait loop");
        let inotify = Inotify { child };
        for _ in 0..500 {
            if fs::read_to_string(&log).is_ok_and(|l| l.contains("Watches established")) {
                return Some(inotify);
            }
            sleep(Duration::from_millis(10));
        }
        panic!(
            "inotifywait did not start: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}
