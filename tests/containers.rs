//! Real containers, started by the tests themselves: LXC (busybox template, privileged and
//! unprivileged) and Podman (an image imported offline from the host's static busybox), named
//! by name with `-j`, and triggered from inside the container with the container's own tools.
//! Each test skips loudly when it is not root or a manager is not installed.

mod util;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use util::images::{busybox_tar, docker_image, podman_image};
use util::*;

const SETTLE: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Root and the tools present, or a loud SKIPPED line.
fn ready(test: &str, tools: &[&str]) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    for tool in tools {
        if !installed(tool) {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {tool} is not installed (.ci/run installs lxc and podman)"
            );
            return false;
        }
    }
    true
}

/// Root and `tools`, or `None` said loudly; then a directory, the file commands append to,
/// and a daemon. Bound as locals, they drop in reverse: daemon, then directory.
fn daemon_for(test: &str, tools: &[&str]) -> Option<(TempDir, std::path::PathBuf, Daemon)> {
    if !ready(test, tools) {
        return None;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let daemon = Daemon::start(&dir);
    Some((dir, fired, daemon))
}

/// A container name no other test (or run) uses.
fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("jdt-{kind}-{}-{n}", std::process::id())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An LXC container from the busybox template, without network (CI has none), with the
/// host's procps `pkill` bind-mounted (Debian's busybox has none), destroyed on drop.
struct Lxc {
    name: String,
}

impl Lxc {
    /// `unprivileged`: its root is host uid 100000 (needs root to own 100000..165535 in
    /// /etc/subuid and /etc/subgid, as dist/root-subids.sh sees to). `users`: extra users (name, uid), each with a group of the same id.
    fn create(unprivileged: bool, users: &[(&str, u32)]) -> Lxc {
        Lxc::create_with(unprivileged, users, "")
    }

    /// As `create`, with `extra` lines appended to its configuration.
    fn create_with(unprivileged: bool, users: &[(&str, u32)], extra: &str) -> Lxc {
        let name = unique_name("lxc");
        let dir = TempDir::new();
        let config = dir.path("lxc.conf");
        let mut text = String::from(
            "lxc.net.0.type = empty\n\
             lxc.mount.entry = /usr/bin/pkill usr/bin/pkill none bind,ro,create=file 0 0\n",
        );
        if unprivileged {
            text.push_str("lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\n");
        }
        text.push_str(extra);
        fs::write(&config, text).unwrap();
        must(
            "lxc-create",
            &["-n", &name, "-t", "busybox", "-f", config.to_str().unwrap()],
        );
        let lxc = Lxc { name };
        let root = format!("/var/lib/lxc/{}/rootfs", lxc.name);
        for (user, id) in users {
            append_line(
                &format!("{root}/etc/passwd"),
                &format!("{user}:x:{id}:{id}::/:/bin/sh"),
            );
            append_line(&format!("{root}/etc/group"), &format!("{user}:x:{id}:"));
        }
        lxc
    }

    fn start(&self) {
        self.start_with_env(&[]);
    }

    /// Starts it with `env` added to lxc-start's environment, which its hooks inherit.
    fn start_with_env(&self, env: &[(&str, &str)]) {
        let out = Command::new("lxc-start")
            .args(["-n", &self.name])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "lxc-start: {}", stderr(&out));
        assert!(
            wait_for(LONG, || self.pid().is_some()),
            "container {} did not start",
            self.name
        );
    }

    fn pid(&self) -> Option<u32> {
        stdout(&run("lxc-info", &["-n", &self.name, "-p", "-H"]))
            .trim()
            .parse()
            .ok()
    }

    /// Runs `argv` in the container as `uid`:`uid` (ids inside it).
    fn exec_as(&self, uid: u32, argv: &[&str]) -> Output {
        let id = uid.to_string();
        let mut args = vec!["-n", &self.name, "-u", &id, "-g", &id, "--"];
        args.extend(argv);
        run("lxc-attach", &args)
    }

    /// `pkill -SIG -f TITLE` in the container as `uid`; true if a process was signalled.
    fn pkill(&self, uid: u32, signal: &str, title: &str) -> bool {
        self.exec_as(uid, &["pkill", &format!("-{signal}"), "-f", title])
            .status
            .success()
    }

    fn stop(&self) {
        must("lxc-stop", &["-n", &self.name, "-k"]);
    }
}

impl Drop for Lxc {
    fn drop(&mut self) {
        let _ = run("lxc-stop", &["-n", &self.name, "-k"]);
        let _ = run("lxc-destroy", &["-n", &self.name, "-f"]);
    }
}

fn append_line(path: &str, line: &str) {
    let mut text = fs::read_to_string(path).unwrap_or_default();
    text.push_str(line);
    text.push('\n');
    fs::write(path, text).unwrap();
}

/// The LXD or Incus test image (`tool` is `lxc` or `incus`): a metadata tarball and the
/// busybox root, imported on first use and kept.
fn system_image(tool: &'static str) -> &'static str {
    static LXD: OnceLock<()> = OnceLock::new();
    static INCUS: OnceLock<()> = OnceLock::new();
    const ALIAS: &str = "jaildaemon-test-busybox";
    let once = if tool == "lxc" { &LXD } else { &INCUS };
    once.get_or_init(|| {
        if run(tool, &["image", "info", ALIAS]).status.success() {
            return;
        }
        let dir = TempDir::new();
        let tar = busybox_tar(&dir);
        let meta = dir.path("meta");
        fs::create_dir_all(&meta).unwrap();
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        fs::write(
            meta.join("metadata.yaml"),
            format!(
                "architecture: x86_64\ncreation_date: {created}\nproperties:\n  \
                 description: jaildaemon test busybox\n  os: busybox\n  release: static\n"
            ),
        )
        .unwrap();
        let meta_tar = dir.path("meta.tar");
        must(
            "tar",
            &[
                "-C",
                meta.to_str().unwrap(),
                "-cf",
                meta_tar.to_str().unwrap(),
                "metadata.yaml",
            ],
        );
        must(
            tool,
            &[
                "image",
                "import",
                meta_tar.to_str().unwrap(),
                tar.to_str().unwrap(),
                "--alias",
                ALIAS,
            ],
        );
    });
    ALIAS
}

/// A Podman container running `sleep` from the test image, removed on drop.
struct Podman {
    name: String,
}

impl Podman {
    /// Runs a container named `name` (or a fresh name).
    fn run(name: Option<&str>) -> Podman {
        let image = podman_image();
        let name = name.map_or_else(|| unique_name("pod"), String::from);
        // runc: crun refuses this host's hybrid cgroups; the ulimits keep podman from asking
        // for more than the test machine grants.
        must(
            "podman",
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--runtime",
                "runc",
                "--network",
                "none",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                image,
                "sleep",
                "3600",
            ],
        );
        Podman { name }
    }

    /// `killall -SIG TITLE` in the container with busybox; true if a process was signalled.
    fn killall(&self, signal: &str, title: &str) -> bool {
        run(
            "podman",
            &["exec", &self.name, "killall", &format!("-{signal}"), title],
        )
        .status
        .success()
    }

    fn stop(&self) {
        must("podman", &["stop", "-t", "1", &self.name]);
    }

    fn start(&self) {
        must("podman", &["start", &self.name]);
    }

    fn pid(&self) -> u32 {
        let out = must(
            "podman",
            &["container", "inspect", "-f", "{{.State.Pid}}", &self.name],
        );
        stdout(&out).trim().parse().unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = run("podman", &["rm", "-f", "-t", "0", &self.name]);
    }
}

/// True when the daemon behind `tool` answers (`docker info`, `lxc info`, `incus info`);
/// otherwise says loudly that `test` is skipped.
fn daemon_answers(test: &str, tool: &str, package: &str) -> bool {
    let answers = Command::new(tool)
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !answers {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no {tool} daemon answers (package {package}; `make check` starts it)"
        );
    }
    answers
}

/// A Docker container running `sleep` from the test image, removed on drop.
struct Docker {
    name: String,
}

impl Docker {
    fn run() -> Docker {
        Docker::run_with(&["sleep", "3600"])
    }

    /// Runs `argv` from the test image in a new container: `/sbin/init` stops at SIGTERM,
    /// so that `docker restart` takes no 10 s grace.
    fn run_with(argv: &[&str]) -> Docker {
        let image = docker_image();
        let name = unique_name("dock");
        let mut args = vec!["run", "-d", "--name", &name, "--network", "none", image];
        args.extend(argv);
        must("docker", &args);
        Docker { name }
    }

    /// Runs `argv` in the container with `docker exec`.
    fn exec(&self, argv: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend(argv);
        run("docker", &args)
    }

    fn pid(&self) -> u32 {
        let out = must(
            "docker",
            &["container", "inspect", "-f", "{{.State.Pid}}", &self.name],
        );
        stdout(&out).trim().parse().unwrap()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = run("docker", &["rm", "-f", &self.name]);
    }
}

/// An LXD or Incus system container (`tool` is `lxc`, LXD's client, or `incus`) from the
/// busybox image, without network, deleted on drop.
struct System {
    tool: &'static str,
    name: String,
}

impl System {
    fn launch(tool: &'static str, extra: &[&str]) -> System {
        let image = system_image(tool);
        // Host names only: no '_' or '.'.
        let name = unique_name(tool);
        let mut args = vec!["launch", image, name.as_str()];
        args.extend(extra);
        must(tool, &args);
        let system = System { tool, name };
        assert!(
            wait_for(LONG, || system.pid().is_some()),
            "{} did not start",
            system.name
        );
        system
    }

    /// The init's host PID while it runs, from the tool's own answer.
    fn pid(&self) -> Option<u32> {
        let out = run(
            self.tool,
            &[
                "list",
                "--format",
                "csv",
                "--columns",
                "nsp",
                "--",
                &self.name,
            ],
        );
        stdout(&out).lines().find_map(|l| {
            let mut fields = l.split(',');
            (fields.next() == Some(self.name.as_str()) && fields.next() == Some("RUNNING"))
                .then(|| fields.next()?.parse().ok())
                .flatten()
        })
    }

    fn exec(&self, argv: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str(), "--"];
        args.extend(argv);
        run(self.tool, &args)
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = run(self.tool, &["delete", "--force", &self.name]);
    }
}

/// Arms two probes in a running container: `TERM_TITLE` by `prefixed` (manager:name), and
/// `HUP_TITLE` with -r by its bare `name`; SIGTERM to the first fires nothing, SIGHUP to the
/// second fires it twice, each time from inside with `exec` (busybox's killall).
fn fires_by_both_names(
    daemon: &Daemon,
    fired: &Path,
    prefixed: &str,
    name: &str,
    exec: &dyn Fn(&[&str]) -> Output,
) {
    let cmd = append(fired);
    daemon.arm(&["-c", &cmd, "-j", prefixed, "-t", "TERM_TITLE"]);
    daemon.arm(&["-c", &cmd, "-j", name, "-t", "HUP_TITLE", "-r"]);
    assert!(exec(&["killall", "-TERM", "TERM_TITLE"]).status.success());
    assert!(
        wait_for(LONG, || daemon.log_text().contains("nothing fired")),
        "{}",
        daemon.log_text()
    );
    for round in 1..=2 {
        assert!(
            wait_for(LONG, || exec(&["killall", "-HUP", "HUP_TITLE"])
                .status
                .success()),
            "no probe to signal in round {round}"
        );
        assert!(
            wait_for(LONG, || read(fired).lines().count() == round),
            "round {round}: {}",
            daemon.log_text()
        );
    }
    sleep(SETTLE);
    assert_eq!(
        read(fired),
        format!("{name} HUP_TITLE\n{name} HUP_TITLE\n"),
        "SIGTERM fired, or SIGHUP fired more than once"
    );
}

#[test]
fn docker_container_by_name_fires_from_inside_and_not_for_another_signal() {
    let test = "docker_container_by_name_fires_from_inside_and_not_for_another_signal";
    if !ready(test, &["docker"]) || !daemon_answers(test, "docker", "docker.io") {
        return;
    }
    let Some((_dir, fired, daemon)) = daemon_for(test, &[]) else {
        return;
    };
    let docker = Docker::run();
    let spec = format!("docker:{}", docker.name);
    fires_by_both_names(&daemon, &fired, &spec, &docker.name, &|argv| {
        docker.exec(argv)
    });
    // The probe is in the container's pid namespace, and in no other manager's name.
    assert_eq!(probes_in(docker.pid(), "HUP_TITLE").len(), 1);
    for other in ["podman", "lxc", "lxd", "incus"] {
        let out = daemon.util(&["-c", "true", "-j", &format!("{other}:{}", docker.name)]);
        assert_eq!(out.status.code(), Some(68), "{other}: {}", stderr(&out));
    }
}

/// The container's init runs as a host uid of its own, not 0, and its one HUP_TITLE probe as
/// the same uid: it was placed in the container's user namespace.
fn probe_runs_as_the_unprivileged_init(init: u32) {
    let probe = probes_in(init, "HUP_TITLE");
    assert_eq!(probe.len(), 1);
    assert_eq!(
        host_uid(probe[0]),
        host_uid(init),
        "not in its user namespace"
    );
    assert_ne!(host_uid(init), 0, "the container is privileged");
}

#[test]
fn lxd_container_by_name_fires_from_inside_and_not_for_another_signal() {
    let test = "lxd_container_by_name_fires_from_inside_and_not_for_another_signal";
    if !ready(test, &["lxd"]) || !daemon_answers(test, "lxc", "lxd") {
        return;
    }
    let Some((_dir, fired, daemon)) = daemon_for(test, &[]) else {
        return;
    };
    // Unprivileged, as LXD's containers are by default: its root is a host uid of its own.
    let lxd = System::launch("lxc", &[]);
    let spec = format!("lxd:{}", lxd.name);
    fires_by_both_names(&daemon, &fired, &spec, &lxd.name, &|argv| lxd.exec(argv));
    probe_runs_as_the_unprivileged_init(lxd.pid().unwrap());
    // LXC's tools do not know LXD's containers: lxc: is LXC, not LXD's client.
    let out = daemon.util(&["-c", "true", "-j", &format!("lxc:{}", lxd.name)]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lxc: no such container"),
        "{}",
        stderr(&out)
    );
    // Issue 22: the slip is named, with what to write instead.
    assert!(
        stderr(&out).contains(&format!(
            "LXD has a container '{0}' (running): use -j lxd:{0}",
            lxd.name
        )),
        "{}",
        stderr(&out)
    );
    // The twin: a name no manager has gets no hint.
    let nobody = unique_name("none");
    let out = daemon.util(&["-c", "true", "-j", &format!("lxc:{nobody}")]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("has a container"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn incus_container_by_name_fires_from_inside_and_not_for_another_signal() {
    let test = "incus_container_by_name_fires_from_inside_and_not_for_another_signal";
    if !ready(test, &["incus"]) || !daemon_answers(test, "incus", "incus-base") {
        return;
    }
    let Some((_dir, fired, daemon)) = daemon_for(test, &[]) else {
        return;
    };
    // Unprivileged, as Incus's containers are by default. It maps each of root's subordinate
    // ranges into the container, so they must not overlap: dist/root-subids.sh adds none
    // beside a range that covers the test jails' ids (issue 22).
    let incus = System::launch("incus", &[]);
    let spec = format!("incus:{}", incus.name);
    fires_by_both_names(&daemon, &fired, &spec, &incus.name, &|argv| {
        incus.exec(argv)
    });
    probe_runs_as_the_unprivileged_init(incus.pid().unwrap());
    let out = daemon.util(&["-c", "true", "-j", &format!("lxd:{}", incus.name)]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    // Only `lxc:` earns a hint (LXD's client is `lxc` too); `lxd:` was no such slip.
    assert!(
        !stderr(&out).contains("has a container"),
        "{}",
        stderr(&out)
    );
    let out = daemon.util(&["-c", "true", "-j", &format!("lxc:{}", incus.name)]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "Incus has a container '{0}' (running): use -j incus:{0}",
            incus.name
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_readme_lxd_reboot_example_restarts_the_container_with_lxd() {
    let test = "the_readme_lxd_reboot_example_restarts_the_container_with_lxd";
    if !ready(test, &["lxd"]) || !daemon_answers(test, "lxc", "lxd") {
        return;
    }
    let Some((_dir, _fired, daemon)) = daemon_for(test, &[]) else {
        return;
    };
    let lxd = System::launch("lxc", &[]);
    // The README's line, with this container's name for web2.
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("-j lxd:web2"))
        .expect("README.md has an LXD REBOOT example");
    let command = line.split('\'').nth(1).unwrap().replace("web2", &lxd.name);
    assert_eq!(command, format!("lxc restart {}", lxd.name));
    let before = lxd.pid().unwrap();
    // With the line's options: -P brings the probe back into the restarted container.
    let options: Vec<&str> = line
        .split('#')
        .next()
        .unwrap()
        .split_whitespace()
        .skip_while(|word| *word != "REBOOT")
        .skip(1)
        .collect();
    assert_eq!(options, ["-r", "-P"], "{line}");
    let spec = format!("lxd:{}", lxd.name);
    let mut args = vec!["-c", &command, "-j", &spec, "-t", "REBOOT"];
    args.extend(&options);
    daemon.arm(&args);
    // The twin first: another title fires nothing, and the container keeps its init.
    assert!(!lxd.exec(&["killall", "-HUP", "REBOOTX"]).status.success());
    sleep(SETTLE);
    assert_eq!(lxd.pid(), Some(before));
    assert!(lxd.exec(&["killall", "-HUP", "REBOOT"]).status.success());
    assert!(
        wait_for(Duration::from_secs(30), || lxd
            .pid()
            .is_some_and(|p| p != before)),
        "not restarted: {}",
        daemon.log_text()
    );
    let after = lxd.pid().unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || probes_in(after, "REBOOT").len()
            == 1),
        "the probe did not come back: {}",
        daemon.log_text()
    );
}

/// Issue 22: the README's Docker line, whose command restarts its container, brings its probe
/// back, and the probe fires again in the restarted container. The twin is the same line
/// without `-P`: that probe is gone after the restart. The stop's log line says which is which,
/// and why.
#[test]
fn the_readme_docker_restart_example_brings_its_probe_back_and_without_p_it_is_gone() {
    let test = "the_readme_docker_restart_example_brings_its_probe_back_and_without_p_it_is_gone";
    if !ready(test, &["docker"]) || !daemon_answers(test, "docker", "docker.io") {
        return;
    }
    let Some((_dir, _fired, daemon)) = daemon_for(test, &[]) else {
        return;
    };
    let docker = Docker::run_with(&["/sbin/init"]);
    let name = docker.name.as_str();
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("-j docker:db"))
        .expect("README.md has a Docker restart example")
        .trim()
        .replace("docker:db", &format!("docker:{name}"))
        .replace("restart db", &format!("restart {name}"));
    assert!(line.contains(" -P"), "{line}");
    let plain = line.replace(" -P", "").replace("RESTART", "PLAIN_RESTART");
    // Each line as an administrator's shell runs it, comment and all.
    for line in [&line, &plain] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sudo() {{ \"$@\"; }}\njaildaemon() {{ '{BIN}' -f '{}' \"$@\"; }}\n{line}",
                daemon.socket.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {}", stderr(&out));
    }
    let first = docker.pid();
    assert_eq!(probes_in(first, "RESTART").len(), 1);
    assert_eq!(probes_in(first, "PLAIN_RESTART").len(), 1);
    let restarted = |before: u32| {
        wait_for(Duration::from_secs(30), || {
            let out = run(
                "docker",
                &["container", "inspect", "-f", "{{.State.Pid}}", name],
            );
            stdout(&out)
                .trim()
                .parse::<u32>()
                .is_ok_and(|p| p != 0 && p != before)
        })
    };
    assert!(
        docker
            .exec(&["killall", "-HUP", "RESTART"])
            .status
            .success()
    );
    assert!(restarted(first), "not restarted: {}", daemon.log_text());
    let stopped = format!("jail docker:{name} (id {first}) stopped");
    assert!(
        wait_for(LONG, || daemon.log_text().contains(&stopped)),
        "{}",
        daemon.log_text()
    );
    let log = daemon.log_text();
    let line = log.lines().find(|l| l.contains(&stopped)).unwrap();
    assert!(
        line.contains("probe 1 'RESTART' (-P) waits for the jail to run again"),
        "{line}"
    );
    assert!(
        line.contains(
            "probe 2 'PLAIN_RESTART' gone: armed without -P; arm it with -P or declare it in the configuration file to keep it across restarts"
        ),
        "{line}"
    );
    // The -P probe is back in the restarted container, and fires there: a second restart.
    let second = docker.pid();
    assert!(
        wait_for(Duration::from_secs(20), || probes_in(second, "RESTART")
            .len()
            == 1),
        "the -P probe did not come back: {}",
        daemon.log_text()
    );
    assert!(probes_in(second, "PLAIN_RESTART").is_empty());
    assert!(
        !docker
            .exec(&["killall", "-HUP", "PLAIN_RESTART"])
            .status
            .success(),
        "the probe armed without -P is still there"
    );
    assert!(
        docker
            .exec(&["killall", "-HUP", "RESTART"])
            .status
            .success()
    );
    assert!(restarted(second), "not fired again: {}", daemon.log_text());
    let log = daemon.log_text();
    assert_eq!(log.matches("'RESTART') triggered").count(), 2, "{log}");
    assert_eq!(
        log.matches("'PLAIN_RESTART') triggered").count(),
        0,
        "{log}"
    );
}

#[test]
fn an_unknown_manager_prefix_is_refused_as_such() {
    let Some((_dir, fired, daemon)) =
        daemon_for("an_unknown_manager_prefix_is_refused_as_such", &[])
    else {
        return;
    };
    let cmd = append(&fired);
    for spec in ["nosuch:web1", "LXD:web1", "docker2:db"] {
        let out = daemon.util(&["-c", &cmd, "-j", spec, "-t", "NEVER"]);
        assert_eq!(out.status.code(), Some(68), "{spec}: {}", stderr(&out));
        let prefix = spec.split(':').next().unwrap();
        assert!(
            stderr(&out).contains(&format!("unknown container manager '{prefix}'")),
            "{spec}: {}",
            stderr(&out)
        );
    }
    // The twin: a known prefix with an unknown name is refused for the name, not the prefix.
    let out = daemon.util(&["-c", &cmd, "-j", "docker:jdt-no-such-name", "-t", "NEVER"]);
    assert_eq!(out.status.code(), Some(68));
    assert!(
        !stderr(&out).contains("unknown container manager"),
        "{}",
        stderr(&out)
    );
}

/// The probes titled `title` whose pid namespace is the one of host process `pid`.
fn host_uid(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A command that appends `$JAILDAEMON_JAIL $JAILDAEMON_TITLE` to `file`.
fn append(file: &Path) -> String {
    format!(
        "echo \"$JAILDAEMON_JAIL $JAILDAEMON_TITLE\" >> {}",
        file.display()
    )
}

fn read(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_default()
}

#[test]
fn lxc_container_by_name_fires_from_inside_and_not_for_another_signal() {
    let Some((_dir, fired, daemon)) = daemon_for(
        "lxc_container_by_name_fires_from_inside_and_not_for_another_signal",
        &["lxc-create"],
    ) else {
        return;
    };
    let lxc = Lxc::create(false, &[]);
    lxc.start();
    let pid = lxc.pid().unwrap();
    let cmd = append(&fired);
    let prefixed = format!("lxc:{}", lxc.name);
    for (spec, title) in [(lxc.name.as_str(), "BY_NAME"), (&prefixed, "BY_PREFIX")] {
        daemon.arm(&["-c", &cmd, "-j", spec, "-t", title]);
        assert_eq!(
            probes_in(pid, title).len(),
            1,
            "probe {title} is not in the container's pid namespace"
        );
    }
    // Another signal ends the probe without firing.
    assert!(lxc.pkill(0, "USR1", "BY_NAME"));
    assert!(wait_for(LONG, || probes_in(pid, "BY_NAME").is_empty()));
    assert!(
        wait_for(LONG, || daemon.log_text().contains("nothing fired")),
        "{}",
        daemon.log_text()
    );
    sleep(SETTLE);
    assert_eq!(read(&fired), "", "a probe fired on SIGUSR1");
    // SIGHUP from the container's root fires it, once, and the command learns the jail's name.
    assert!(lxc.pkill(0, "HUP", "BY_PREFIX"));
    assert!(
        wait_for(LONG, || !read(&fired).is_empty()),
        "command did not run: {}",
        daemon.log_text()
    );
    sleep(SETTLE);
    assert_eq!(read(&fired), format!("{prefixed} BY_PREFIX\n"));
    // A command knows where it came from: the manager, the container and its init, enough to
    // enter it with no second lookup (it does, and reads the container's hostname).
    let env = fired.with_file_name("env");
    let enter = format!(
        "{{ echo \"$JAILDAEMON_MANAGER $JAILDAEMON_CONTAINER $JAILDAEMON_JAIL_PID\"; \
         nsenter -t \"$JAILDAEMON_JAIL_PID\" -u hostname; }} > {}",
        env.display()
    );
    daemon.arm(&["-c", &enter, "-j", &lxc.name, "-t", "KNOWS"]);
    assert!(lxc.pkill(0, "HUP", "KNOWS"));
    assert!(
        wait_for(LONG, || read(&env).lines().count() == 2),
        "{}",
        daemon.log_text()
    );
    let hostname = String::from_utf8(
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-u", "hostname"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        read(&env),
        format!("lxc {} {pid}\n{hostname}", lxc.name),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn unknown_stopped_and_malformed_names_are_refused_naming_the_jail() {
    let Some((_dir, fired, daemon)) = daemon_for(
        "unknown_stopped_and_malformed_names_are_refused_naming_the_jail",
        &["lxc-create"],
    ) else {
        return;
    };
    let stopped = Lxc::create(false, &[]);
    let cmd = append(&fired);
    let unknown = unique_name("none");
    let cases = [
        (unknown.clone(), "no running container of that name"),
        (format!("lxc:{unknown}"), "lxc: no such container"),
        (stopped.name.clone(), "lxc: stopped"),
        (format!("lxc:{}", stopped.name), "lxc: stopped"),
        ("lxc:-n".to_string(), "not a container name"),
        ("lxc:a/b".to_string(), "not a container name"),
        ("machined:web1".to_string(), "machined"),
    ];
    for (spec, why) in &cases {
        let out = daemon.util(&["-c", &cmd, "-j", spec, "-t", "NEVER"]);
        assert_eq!(out.status.code(), Some(68), "{spec}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&format!("jail '{spec}'")) && message.contains(why),
            "{spec}: expected '{why}' in: {message}"
        );
    }
    // The daemon is still there and still arms.
    let jail = Jail::new();
    daemon.arm(&["-c", &cmd, "-j", &jail.spec(), "-t", "STILL_SERVING"]);
    assert_eq!(jail.probes("STILL_SERVING").len(), 1);
}

#[test]
fn podman_container_by_name_fires_from_inside_and_not_for_another_signal() {
    let Some((_dir, fired, daemon)) = daemon_for(
        "podman_container_by_name_fires_from_inside_and_not_for_another_signal",
        &["podman", "runc"],
    ) else {
        return;
    };
    let pod = Podman::run(None);
    let cmd = append(&fired);
    let spec = format!("podman:{}", pod.name);
    daemon.arm(&["-c", &cmd, "-j", &spec, "-t", "PODTERM"]);
    daemon.arm(&["-c", &cmd, "-j", &pod.name, "-t", "PODHUP", "-r"]);
    assert!(pod.killall("TERM", "PODTERM"));
    assert!(
        wait_for(LONG, || daemon.log_text().contains("nothing fired")),
        "{}",
        daemon.log_text()
    );
    for round in 1..=2 {
        assert!(
            wait_for(LONG, || pod.killall("HUP", "PODHUP")),
            "no probe to signal in round {round}"
        );
        assert!(
            wait_for(LONG, || read(&fired).lines().count() == round),
            "round {round}: {}",
            daemon.log_text()
        );
    }
    sleep(SETTLE);
    assert_eq!(
        read(&fired),
        format!("{0} PODHUP\n{0} PODHUP\n", pod.name),
        "SIGTERM fired, or SIGHUP fired more than once"
    );
}

#[test]
fn a_name_running_in_two_managers_is_ambiguous_until_prefixed() {
    let Some((_dir, fired, daemon)) = daemon_for(
        "a_name_running_in_two_managers_is_ambiguous_until_prefixed",
        &["lxc-create", "podman", "runc"],
    ) else {
        return;
    };
    let lxc = Lxc::create(false, &[]);
    lxc.start();
    let pod = Podman::run(Some(&lxc.name));
    let name = lxc.name.as_str();
    let cmd = append(&fired);
    let out = daemon.util(&["-c", &cmd, "-j", name, "-t", "AMBIGUOUS"]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ambiguous")
            && stderr(&out).contains(&format!("lxc:{name}"))
            && stderr(&out).contains(&format!("podman:{name}")),
        "{}",
        stderr(&out)
    );
    assert!(host_pids_matching("AMBIGUOUS").is_empty());
    daemon.arm(&["-c", &cmd, "-j", &format!("lxc:{name}"), "-t", "IN_LXC"]);
    daemon.arm(&["-c", &cmd, "-j", &format!("podman:{name}"), "-t", "IN_POD"]);
    let lxc_pid = lxc.pid().unwrap();
    let pod_pid: u32 = stdout(&must(
        "podman",
        &["container", "inspect", "-f", "{{.State.Pid}}", name],
    ))
    .trim()
    .parse()
    .unwrap();
    assert_eq!(probes_in(lxc_pid, "IN_LXC").len(), 1);
    assert_eq!(probes_in(pod_pid, "IN_POD").len(), 1);
    assert!(probes_in(lxc_pid, "IN_POD").is_empty());
    // Each container sees only its own probe.
    assert!(!pod.killall("HUP", "IN_LXC"));
    assert!(!lxc.pkill(0, "HUP", "IN_POD"));
    assert!(pod.killall("HUP", "IN_POD"));
    assert!(wait_for(LONG, || !read(&fired).is_empty()));
    sleep(SETTLE);
    assert_eq!(read(&fired), format!("podman:{name} IN_POD\n"));
}

#[test]
fn unprivileged_lxc_users_trigger_only_their_own_probes() {
    let Some((_dir, fired, daemon)) = daemon_for(
        "unprivileged_lxc_users_trigger_only_their_own_probes",
        &["lxc-create"],
    ) else {
        return;
    };
    let lxc = Lxc::create(true, &[("alice", 1000), ("bob", 1001)]);
    lxc.start();
    let pid = lxc.pid().unwrap();
    assert_eq!(host_uid(pid), 100_000, "the container is not unprivileged");
    let cmd = append(&fired);
    let name = lxc.name.as_str();
    daemon.arm(&["-c", &cmd, "-j", name, "-t", "ROOT_PROBE"]);
    daemon.arm(&["-c", &cmd, "-j", name, "-t", "ALICE_PROBE", "-u", "alice"]);
    daemon.arm(&["-c", &cmd, "-j", name, "-t", "BOB_PROBE", "-u", "1001"]);
    let uid_of = |title: &str| host_uid(probes_in(pid, title)[0]);
    assert_eq!(uid_of("ROOT_PROBE"), 100_000);
    assert_eq!(uid_of("ALICE_PROBE"), 101_000);
    assert_eq!(uid_of("BOB_PROBE"), 101_001);
    // An id the container's user namespace does not map is refused, naming the id.
    let out = daemon.util(&["-c", &cmd, "-j", name, "-t", "NOBODY", "-u", "70000"]);
    assert_eq!(out.status.code(), Some(67), "{}", stderr(&out));
    assert!(stderr(&out).contains("uid 70000 has no mapping"));
    // alice can signal neither root's probe nor bob's.
    assert!(!lxc.pkill(1000, "HUP", "ROOT_PROBE"));
    assert!(!lxc.pkill(1000, "HUP", "BOB_PROBE"));
    sleep(SETTLE);
    assert_eq!(read(&fired), "", "alice fired a probe that is not hers");
    // Her own she can, and the container's root can fire root's.
    assert!(lxc.pkill(1000, "HUP", "ALICE_PROBE"));
    assert!(wait_for(LONG, || read(&fired).lines().count() == 1));
    assert!(lxc.pkill(0, "HUP", "ROOT_PROBE"));
    assert!(wait_for(LONG, || read(&fired).lines().count() == 2));
    sleep(SETTLE);
    assert_eq!(
        read(&fired),
        format!("{name} ALICE_PROBE\n{name} ROOT_PROBE\n")
    );
    assert_eq!(probes_in(pid, "BOB_PROBE").len(), 1);
}

#[test]
fn a_stopped_container_takes_its_probes_without_firing() {
    let Some((_dir, fired, daemon)) = daemon_for(
        "a_stopped_container_takes_its_probes_without_firing",
        &["lxc-create", "podman", "runc"],
    ) else {
        return;
    };
    let lxc = Lxc::create(false, &[]);
    lxc.start();
    let pod = Podman::run(None);
    let cmd = append(&fired);
    // Single shot, -r and -R in the LXC container; -r in the Podman one.
    for (spec, mode) in [
        (lxc.name.as_str(), None),
        (lxc.name.as_str(), Some("-r")),
        (lxc.name.as_str(), Some("-R")),
        (pod.name.as_str(), Some("-r")),
    ] {
        let mut args = vec!["-c", &cmd, "-j", spec, "-t", "STOPPING"];
        args.extend(mode);
        daemon.arm(&args);
    }
    assert_eq!(host_pids_matching("STOPPING").len(), 4);
    lxc.stop();
    pod.stop();
    for name in [&lxc.name, &pod.name] {
        assert!(
            wait_for(LONG, || daemon
                .log_text()
                .contains(&format!("jail {name} (id "))),
            "the daemon did not notice that {name} stopped: {}",
            daemon.log_text()
        );
    }
    let log = daemon.log_text();
    assert!(
        log.contains("probe(s) [1, 2, 3] gone with it, nothing fired"),
        "{log}"
    );
    assert!(
        log.contains("probe(s) [4] gone with it, nothing fired"),
        "{log}"
    );
    sleep(SETTLE);
    assert!(host_pids_matching("STOPPING").is_empty());
    assert_eq!(read(&fired), "", "a stopping container fired a probe");
    // Its name no longer resolves, and the daemon has forgotten its probes: new ones can be
    // armed once the container runs again.
    let out = daemon.util(&["-c", &cmd, "-j", &lxc.name, "-t", "AGAIN"]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    lxc.start();
    daemon.arm(&["-c", &cmd, "-j", &lxc.name, "-t", "AGAIN"]);
    assert!(lxc.pkill(0, "HUP", "AGAIN"));
    assert!(wait_for(LONG, || !read(&fired).is_empty()));
    assert_eq!(read(&fired), format!("{} AGAIN\n", lxc.name));
}

#[test]
fn machined_names_need_systemd_as_pid_1() {
    let test = "machined_names_need_systemd_as_pid_1";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let daemon = Daemon::start(&dir);
    let systemd = fs::read_link("/proc/1/exe").is_ok_and(|p| p.ends_with("systemd"));
    if !systemd || !installed("machinectl") {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: systemd is not PID 1 here, so systemd-machined cannot run; only the refusal is tested"
        );
        let out = daemon.util(&["-c", "true", "-j", "machined:web1", "-t", "M"]);
        assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
        assert!(stderr(&out).contains("jail 'machined:web1'"));
        return;
    }
    // With machined, `machinectl show` of an unknown machine is a clean refusal as well.
    let name = unique_name("machine");
    let spec = format!("machined:{name}");
    let out = daemon.util(&["-c", "true", "-j", &spec, "-t", "M"]);
    assert_eq!(out.status.code(), Some(68), "{}", stderr(&out));
    assert!(stderr(&out).contains("machined: no such container"));
}

#[test]
fn a_declared_reboot_probe_survives_the_reboot_it_asks_for() {
    let test = "a_declared_reboot_probe_survives_the_reboot_it_asks_for";
    if !ready(test, &["lxc-create"]) {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let lxc = Lxc::create(false, &[]);
    lxc.start();
    let first_pid = lxc.pid().unwrap();
    let config = dir.path("jaildaemon.conf");
    // What an administrator would declare: the container may ask to be rebooted.
    fs::write(
        &config,
        format!(
            "[[probe]]\njail = \"lxc:{0}\"\ntitle = \"REBOOT\"\nrespawn = \"after_command\"\n\
             command = '{1}; lxc-stop -r -n {0}'\n",
            lxc.name,
            append(&fired)
        ),
    )
    .unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", config.to_str().unwrap()]);
    let cmd = append(&fired);
    daemon.arm(&["-c", &cmd, "-j", &lxc.name, "-t", "PERSISTED", "-P", "-r"]);
    daemon.arm(&["-c", &cmd, "-j", &lxc.name, "-t", "PLAIN", "-r"]);
    assert!(lxc.pkill(0, "HUP", "REBOOT"));
    // The container reboots: a new init, new namespaces.
    assert!(
        wait_for(LONG, || lxc.pid().is_some_and(|p| p != first_pid)),
        "the container did not reboot: {}",
        daemon.log_text()
    );
    let pid = lxc.pid().unwrap();
    // Declared and persisted probes come back into the new container; the plain one is gone.
    assert!(
        wait_for(Duration::from_secs(15), || probes_in(pid, "REBOOT").len()
            == 1
            && probes_in(pid, "PERSISTED").len() == 1),
        "{}",
        daemon.log_text()
    );
    assert!(host_pids_matching("PLAIN").is_empty());
    let log = daemon.log_text();
    assert!(
        log.contains(&format!("jail lxc:{} (id {first_pid}) stopped", lxc.name)),
        "{log}"
    );
    assert!(log.contains("armed again"), "{log}");
    assert_eq!(read(&fired), format!("lxc:{} REBOOT\n", lxc.name));
    // And they fire again; the plain probe never did.
    assert!(lxc.pkill(0, "HUP", "PERSISTED"));
    assert!(wait_for(LONG, || read(&fired).lines().count() == 2));
    sleep(SETTLE);
    assert_eq!(
        read(&fired),
        format!("lxc:{0} REBOOT\n{0} PERSISTED\n", lxc.name)
    );
}

/// Issue 12: the man page's REBOOT example as a single shot, declared once, works across every
/// reboot: it fires once per run of its container and is armed again when the rebooted
/// container runs. Twin: a single shot that does not reboot its container (ONCE) is spent
/// after it fired: a second SIGHUP in the same run finds no probe and runs nothing, until the
/// container runs again.
#[test]
fn a_declared_single_shot_reboot_probe_fires_once_per_run_of_its_container() {
    let test = "a_declared_single_shot_reboot_probe_fires_once_per_run_of_its_container";
    if !ready(test, &["lxc-create"]) {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let lxc = Lxc::create(false, &[]);
    lxc.start();
    let config = dir.path("jaildaemon.conf");
    fs::write(
        &config,
        format!(
            "[[probe]]\njail = \"lxc:{0}\"\ntitle = \"REBOOT\"\n\
             command = '{1}; lxc-stop -r -n {0}'\n\
             [[probe]]\njail = \"lxc:{0}\"\ntitle = \"ONCE\"\ncommand = '{1}'\n",
            lxc.name,
            append(&fired)
        ),
    )
    .unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", config.to_str().unwrap()]);
    let count = |title: &str| read(&fired).lines().filter(|l| l.ends_with(title)).count();
    for run in 1..=2 {
        let pid = lxc.pid().unwrap();
        assert!(
            wait_for(Duration::from_secs(15), || probes_in(pid, "REBOOT").len()
                == 1
                && probes_in(pid, "ONCE").len() == 1),
            "run {run}: not armed: {}",
            daemon.log_text()
        );
        assert!(lxc.pkill(0, "HUP", "ONCE"));
        assert!(wait_for(LONG, || count("ONCE") == run));
        // Spent for the rest of this run: nothing to signal, nothing runs.
        sleep(SETTLE);
        assert!(!lxc.pkill(0, "HUP", "ONCE"), "run {run}: ONCE armed again");
        assert_eq!(count("ONCE"), run);
        assert!(lxc.pkill(0, "HUP", "REBOOT"));
        assert!(
            wait_for(LONG, || lxc.pid().is_some_and(|p| p != pid)),
            "run {run}: the container did not reboot: {}",
            daemon.log_text()
        );
        assert_eq!(count("REBOOT"), run, "{}", daemon.log_text());
    }
}

#[test]
fn the_example_lxc_hook_arms_a_reboot_probe_at_every_start() {
    let test = "the_example_lxc_hook_arms_a_reboot_probe_at_every_start";
    if !ready(test, &["lxc-create"]) {
        return;
    }
    let dir = TempDir::new();
    let hook = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lxc-start-host");
    let lxc = Lxc::create_with(
        false,
        &[],
        &format!("lxc.hook.start-host = {}\n", hook.display()),
    );
    // Without a daemon the hook says so and the container starts all the same, probe-less.
    let socket = dir.path("jd.sock");
    let env = [
        ("JAILDAEMON", BIN),
        ("JAILDAEMON_SOCKET", socket.to_str().unwrap()),
    ];
    lxc.start_with_env(&env);
    let first = lxc.pid().unwrap();
    assert!(probes_in(first, "REBOOT").is_empty());
    lxc.stop();
    let daemon = Daemon::start(&dir);
    lxc.start_with_env(&env);
    let pid = lxc.pid().unwrap();
    assert_eq!(probes_in(pid, "REBOOT").len(), 1, "{}", daemon.log_text());
    // Another signal fires nothing; then the REBOOT probe reboots the container, whose start
    // runs the hook again: a new probe in the new container.
    assert!(!lxc.pkill(0, "USR1", "NO_SUCH_PROBE"));
    assert!(lxc.pkill(0, "HUP", "REBOOT"));
    assert!(
        wait_for(LONG, || lxc.pid().is_some_and(|p| p != pid)),
        "the container did not reboot: {}",
        daemon.log_text()
    );
    let rebooted = lxc.pid().unwrap();
    assert!(
        wait_for(LONG, || probes_in(rebooted, "REBOOT").len() == 1),
        "{}",
        daemon.log_text()
    );
    // The daemon holds only the new probe: the fired one is gone, not waiting.
    let listed: Vec<jaildaemon::proto::ProbeInfo> =
        serde_json::from_slice(&daemon.util(&["-l", "--json"]).stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0].jail_id, Some(rebooted as i32));
    assert_eq!(daemon.log_text().matches("'REBOOT') triggered").count(), 1);
}

#[test]
fn a_declared_probe_whose_container_stops_while_its_command_runs_comes_back_after_it() {
    let test = "a_declared_probe_whose_container_stops_while_its_command_runs_comes_back_after_it";
    if !ready(test, &["podman", "runc"]) {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let pod = Podman::run(None);
    let config = dir.path("jaildaemon.conf");
    // The command outlasts the daemon's 5 s retry interval.
    fs::write(
        &config,
        format!(
            "[[probe]]\njail = \"podman:{}\"\ntitle = \"SLOWCMD\"\nrespawn = \"after_command\"\n\
             command = '{}; sleep 7'\n",
            pod.name,
            append(&fired)
        ),
    )
    .unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", config.to_str().unwrap()]);
    let first = pod.pid();
    assert!(wait_for(LONG, || probes_in(first, "SLOWCMD").len() == 1));
    assert!(pod.killall("HUP", "SLOWCMD"));
    assert!(wait_for(LONG, || !read(&fired).is_empty()));
    // The container restarts while the command still runs.
    pod.stop();
    pod.start();
    let pid = pod.pid();
    assert!(
        probes_in(pid, "SLOWCMD").is_empty(),
        "re-armed before its command ended"
    );
    assert!(
        wait_for(Duration::from_secs(20), || probes_in(pid, "SLOWCMD").len()
            == 1),
        "the probe did not come back once its command ended: {}",
        daemon.log_text()
    );
    assert!(pod.killall("HUP", "SLOWCMD"));
    assert!(wait_for(LONG, || read(&fired).lines().count() == 2));
}

#[test]
fn a_declared_probe_waits_for_a_container_that_is_not_running_yet() {
    let test = "a_declared_probe_waits_for_a_container_that_is_not_running_yet";
    if !ready(test, &["lxc-create"]) {
        return;
    }
    let dir = TempDir::new();
    let fired = dir.path("fired");
    let lxc = Lxc::create(false, &[]);
    let config = dir.path("jaildaemon.conf");
    fs::write(
        &config,
        format!(
            "[[probe]]\njail = \"lxc:{}\"\ntitle = \"EARLY\"\ncommand = '{}'\n",
            lxc.name,
            append(&fired)
        ),
    )
    .unwrap();
    let daemon = Daemon::start_with_args(&dir, &["-C", config.to_str().unwrap()]);
    assert!(
        wait_for(LONG, || daemon.log_text().contains("waiting for its jail")),
        "{}",
        daemon.log_text()
    );
    assert!(host_pids_matching("EARLY").is_empty());
    lxc.start();
    let pid = lxc.pid().unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || probes_in(pid, "EARLY").len()
            == 1),
        "the probe did not come when its container started: {}",
        daemon.log_text()
    );
    assert!(lxc.pkill(0, "HUP", "EARLY"));
    assert!(wait_for(LONG, || !read(&fired).is_empty()));
    assert_eq!(read(&fired), format!("lxc:{} EARLY\n", lxc.name));
}
