//! Container names on Linux: `-j web1` or `-j lxc:web1` → the host PID of the container's init,
//! asked of the container managers installed on the host (LXC, LXD, Incus, Podman, Docker,
//! systemd-machined) through their own command-line tools.
//!
//! The daemon asks the tools, not their private state files, because the tools are the
//! managers' stable interface. Each tool runs with a fixed environment and a deadline, and its
//! answer is parsed strictly: anything but a clear "running, pid N" is not a jail. A name is
//! never guessed: when two managers run a container of that name, the request is refused.
//!
//! This module is pure: what to ask, how to read the answer, and the decision. The platform
//! code (`sys::linux::lookup`) runs the tools, all at once, watched by the daemon's event
//! queue.

use std::time::Duration;

use crate::error::{Error, Kind};

/// How long one manager's tool may take to answer.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(5);
/// Most output read from a tool; its answer is one short line.
pub const MAX_TOOL_OUTPUT: usize = 64 * 1024;

/// The managers asked for a bare name, in this order.
pub const MANAGERS: [Manager; 6] = [
    Manager::Lxc,
    Manager::Lxd,
    Manager::Incus,
    Manager::Podman,
    Manager::Docker,
    Manager::Machined,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Lxc,
    Lxd,
    Incus,
    Podman,
    Docker,
    Machined,
    /// The system containerd, asked only when named: `containerd:NAMESPACE/ID`.
    Containerd,
}

/// What `-j` names.
#[derive(Debug, PartialEq, Eq)]
pub enum Spec<'a> {
    /// A host PID: all digits.
    Pid(i32),
    /// A container name, with the manager to ask when given as `manager:name`.
    Name {
        manager: Option<Manager>,
        name: &'a str,
    },
}

/// A running container found by name.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    pub manager: Manager,
    pub pid: i32,
}

/// One manager's answer about one name.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Running(i32),
    Stopped,
    Absent,
}

/// Why a manager could not answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Unasked {
    NotInstalled,
    Failed(String),
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Lxc => "lxc",
            Manager::Lxd => "lxd",
            Manager::Incus => "incus",
            Manager::Podman => "podman",
            Manager::Docker => "docker",
            Manager::Machined => "machined",
            Manager::Containerd => "containerd",
        }
    }

    fn from_name(name: &str) -> Option<Manager> {
        MANAGERS
            .into_iter()
            .chain([Manager::Containerd])
            .find(|m| m.name() == name)
    }

    /// The arguments with which `tool` prints the container's state and init PID.
    pub fn query(self, name: &str) -> Vec<&str> {
        match self {
            // Prints the PID only while the container runs, nothing when it is stopped.
            Manager::Lxc => vec!["-n", name, "-p", "-H"],
            // One CSV line per instance whose name matches: name, state, init PID (empty
            // unless running). The name is a filter (a prefix or a pattern), so `parse` picks
            // the line of exactly this name.
            Manager::Lxd | Manager::Incus => {
                vec!["list", "--format", "csv", "--columns", "nsp", "--", name]
            }
            // `container inspect`, not `inspect`: an image of the same name must not answer.
            Manager::Podman | Manager::Docker => vec![
                "container",
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.Pid}}",
                "--",
                name,
            ],
            Manager::Machined => vec!["show", "-p", "Leader", "--value", name],
            // Every task of the namespace; `parse` picks the line of the id (`takes` checked
            // that the name is NAMESPACE/ID).
            Manager::Containerd => {
                let namespace = name.split_once('/').map_or(name, |(ns, _)| ns);
                vec![
                    "--address",
                    crate::selector::CONTAINERD_SOCKET,
                    "--namespace",
                    namespace,
                    "tasks",
                    "ls",
                ]
            }
        }
    }

    pub fn tool(self) -> &'static str {
        match self {
            Manager::Lxc => "lxc-info",
            // LXD's client is called lxc too; LXC's own tools are the lxc-* ones.
            Manager::Lxd => "lxc",
            Manager::Incus => "incus",
            Manager::Podman => "podman",
            Manager::Docker => "docker",
            Manager::Machined => "machinectl",
            Manager::Containerd => "ctr",
        }
    }

    /// Whether `name` can name one of this manager's containers at all; the tool is not asked
    /// about one that cannot. LXD and Incus take host names only (letters, digits, '-'): their
    /// clients would read a ':' as a remote server and an '=' as a filter on keys.
    pub fn takes(self, name: &str) -> bool {
        match self {
            Manager::Lxd | Manager::Incus => {
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }
            // NAMESPACE/ID, each as containerd names them.
            Manager::Containerd => name.split_once('/').is_some_and(|(ns, id)| {
                crate::selector::container_name(ns) && crate::selector::container_name(id)
            }),
            Manager::Lxc | Manager::Podman | Manager::Docker | Manager::Machined => true,
        }
    }

    /// Reads the tool's answer about `name`: its exit status, stdout and stderr.
    pub fn parse(
        self,
        name: &str,
        success: bool,
        stdout: &str,
        stderr: &str,
    ) -> Result<Answer, Unasked> {
        let absent = [
            "doesn't exist",
            "no such container",
            "no such object",
            "no machine",
        ];
        if !success {
            let lower = stderr.to_ascii_lowercase();
            if absent.iter().any(|a| lower.contains(a)) {
                return Ok(Answer::Absent);
            }
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            return Err(Unasked::Failed(format!(
                "{} failed: {}",
                self.tool(),
                first.trim()
            )));
        }
        let bad = || {
            Unasked::Failed(format!(
                "{} gave an answer not understood: '{}'",
                self.tool(),
                stdout.trim()
            ))
        };
        let pid = |s: &str| s.parse::<i32>().ok().filter(|p| *p > 0);
        let out = stdout.trim();
        match self {
            Manager::Lxc | Manager::Machined if out.is_empty() => Ok(Answer::Stopped),
            Manager::Lxc | Manager::Machined => pid(out).map(Answer::Running).ok_or_else(bad),
            Manager::Podman | Manager::Docker => match out.split_once(' ') {
                Some(("true", p)) => pid(p).map(Answer::Running).ok_or_else(bad),
                Some(("false", _)) => Ok(Answer::Stopped),
                _ => Err(bad()),
            },
            // Names have no ',' (see `takes`), so a line splits into exactly three fields.
            Manager::Lxd | Manager::Incus => {
                let mut answer = Ok(Answer::Absent);
                for line in out.lines() {
                    let fields: Vec<&str> = line.split(',').collect();
                    let [n, state, p] = fields[..] else {
                        return Err(bad());
                    };
                    if n != name {
                        continue;
                    }
                    answer = match state {
                        "RUNNING" => pid(p).map(Answer::Running).ok_or_else(bad),
                        // STOPPED, FROZEN, ERROR…: nothing a probe can be placed in.
                        _ if !state.is_empty() && state.bytes().all(|b| b.is_ascii_uppercase()) => {
                            Ok(Answer::Stopped)
                        }
                        _ => Err(bad()),
                    };
                }
                answer
            }
            Manager::Containerd => {
                let id = name.split_once('/').map_or(name, |(_, id)| id);
                let running = crate::selector::running_tasks(stdout).map_err(|_| bad())?;
                if let Some(pid) = running.get(id) {
                    return Ok(Answer::Running(*pid));
                }
                // A task listed but not running (STOPPED, CREATED, PAUSED), or none at all.
                let listed = out
                    .lines()
                    .skip(1)
                    .any(|l| l.split_whitespace().next() == Some(id));
                Ok(if listed {
                    Answer::Stopped
                } else {
                    Answer::Absent
                })
            }
        }
    }

    /// Where a manager that serves its tool through a daemon listens: absent, the manager is
    /// not running, and its tool is not started only to find that out.
    pub fn runtime(self) -> Option<&'static str> {
        match self {
            Manager::Docker => Some("/var/run/docker.sock"),
            Manager::Machined => Some("/run/systemd/machines"),
            Manager::Containerd => Some(crate::selector::CONTAINERD_SOCKET),
            // LXD's socket is in /var/lib/lxd or, as a snap, in /var/snap/lxd: its client says
            // when it finds none.
            Manager::Lxc | Manager::Lxd | Manager::Incus | Manager::Podman => None,
        }
    }
}

/// Splits `-j`: all digits is a PID; `manager:name` names a container of that manager; anything
/// else is a container name for every manager. A prefix that names no manager is refused: no
/// manager's container names hold a ':' (LXC's could, and are named `lxc:a:b` then).
pub fn parse_spec(spec: &str) -> Result<Spec<'_>, Error> {
    let no_jail = |why: &str| Error::new(Kind::NoJail, format!("jail '{spec}': {why}"));
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        return spec
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .map(Spec::Pid)
            .ok_or_else(|| no_jail("not a valid process id"));
    }
    let (manager, name) = match spec.split_once(':') {
        Some((m, name)) => match Manager::from_name(m) {
            Some(manager) => (Some(manager), name),
            None => {
                let known: Vec<&str> = MANAGERS
                    .iter()
                    .chain(&[Manager::Containerd])
                    .map(|m| m.name())
                    .collect();
                return Err(no_jail(&format!(
                    "unknown container manager '{m}' (known: {})",
                    known.join(", ")
                )));
            }
        },
        None => (None, spec),
    };
    if manager == Some(Manager::Containerd) {
        if !Manager::Containerd.takes(name) {
            return Err(no_jail(
                "write a containerd container as containerd:NAMESPACE/ID (letters, digits, '.', '-', '_')",
            ));
        }
        return Ok(Spec::Name { manager, name });
    }
    // Names go to the tools as arguments, never through a shell; a leading '-' would still
    // read as an option, and '/' or blanks are in no manager's names.
    if name.is_empty()
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(no_jail(
            "not a container name (no leading '-', no '/', no blanks)",
        ));
    }
    Ok(Spec::Name { manager, name })
}

/// The managers to ask about a name: the one named, or all of them in order.
pub fn managers_for(manager: Option<Manager>) -> Vec<Manager> {
    match manager {
        Some(m) => vec![m],
        None => MANAGERS.to_vec(),
    }
}

/// Whether `found`'s manager, asked again, still names the same PID: only then does the PID
/// opened in between belong to the container.
pub fn confirmed(spec: &str, found: &Found, again: &Result<Answer, Unasked>) -> Result<(), Error> {
    match again {
        Ok(Answer::Running(pid)) if *pid == found.pid => Ok(()),
        _ => Err(Error::new(
            Kind::NoJail,
            format!("jail '{spec}': the container stopped or restarted while it was looked up"),
        )),
    }
}

/// The decision over every manager's answer; pure, so that each outcome is unit-tested.
pub fn decide(
    spec: &str,
    name: &str,
    answers: &[(Manager, Result<Answer, Unasked>)],
) -> Result<Found, Error> {
    let no_jail = |why: String| Error::new(Kind::NoJail, format!("jail '{spec}': {why}"));
    let running: Vec<Found> = answers
        .iter()
        .filter_map(|(m, a)| match a {
            Ok(Answer::Running(pid)) => Some(Found {
                manager: *m,
                pid: *pid,
            }),
            _ => None,
        })
        .collect();
    match running.as_slice() {
        [one] => {
            return Ok(Found {
                manager: one.manager,
                pid: one.pid,
            });
        }
        [] => {}
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|f| format!("{}:{name} (pid {})", f.manager.name(), f.pid))
                .collect();
            return Err(no_jail(format!(
                "ambiguous: running in {}; name one as manager:name",
                list.join(", ")
            )));
        }
    }
    let mut why = Vec::new();
    for (m, a) in answers {
        match a {
            Ok(Answer::Stopped) => why.push(format!("{}: stopped", m.name())),
            Ok(Answer::Absent) => why.push(format!("{}: no such container", m.name())),
            Ok(Answer::Running(_)) => {}
            Err(Unasked::NotInstalled) => {
                why.push(format!("{}: not installed ({})", m.name(), m.tool()))
            }
            Err(Unasked::Failed(e)) => why.push(format!("{}: {e}", m.name())),
        }
    }
    Err(no_jail(format!(
        "no running container of that name ({})",
        why.join("; ")
    )))
}

/// The managers asked, after `answers` (of the manager `asked` by name) found no container
/// `name`, whether they have one: LXD and Incus after `lxc:`, since LXD's client is called `lxc`
/// too and `lxc:NAME` for an LXD container is an easy slip. None when LXC knows the name
/// (stopped there), or a bare name asked every manager already.
pub fn managers_to_hint(
    asked: Option<Manager>,
    name: &str,
    answers: &[(Manager, Result<Answer, Unasked>)],
) -> Vec<Manager> {
    let lxc_knows = answers
        .iter()
        .any(|(_, a)| matches!(a, Ok(Answer::Running(_) | Answer::Stopped)));
    match asked {
        Some(Manager::Lxc) if !lxc_knows => [Manager::Lxd, Manager::Incus]
            .into_iter()
            .filter(|m| m.takes(name))
            .collect(),
        _ => Vec::new(),
    }
}

/// `error` (no container `name`) with a hint for each manager of `hints` that has one.
pub fn with_hints(
    mut error: Error,
    name: &str,
    hints: &[(Manager, Result<Answer, Unasked>)],
) -> Error {
    for (manager, answer) in hints {
        let state = match answer {
            Ok(Answer::Running(_)) => "running",
            Ok(Answer::Stopped) => "not running",
            _ => continue,
        };
        let label = match manager {
            Manager::Lxd => "LXD",
            Manager::Incus => "Incus",
            other => other.name(),
        };
        error.message += &format!(
            "; {label} has a container '{name}' ({state}): use -j {}:{name}",
            manager.name()
        );
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_a_pid_and_anything_else_a_name() {
        assert_eq!(parse_spec("4144").unwrap(), Spec::Pid(4144));
        assert_eq!(parse_spec("0").unwrap_err().kind, Kind::NoJail);
        assert_eq!(parse_spec("99999999999").unwrap_err().kind, Kind::NoJail);
        assert_eq!(
            parse_spec("web1").unwrap(),
            Spec::Name {
                manager: None,
                name: "web1"
            }
        );
        assert_eq!(
            parse_spec("lxc:web1").unwrap(),
            Spec::Name {
                manager: Some(Manager::Lxc),
                name: "web1"
            }
        );
        assert_eq!(
            parse_spec("machined:123").unwrap(),
            Spec::Name {
                manager: Some(Manager::Machined),
                name: "123"
            }
        );
        for (spec, manager) in [("lxd:web1", Manager::Lxd), ("incus:web1", Manager::Incus)] {
            assert_eq!(
                parse_spec(spec).unwrap(),
                Spec::Name {
                    manager: Some(manager),
                    name: "web1"
                }
            );
        }
        // LXC's names may hold a ':' after the prefix.
        assert_eq!(
            parse_spec("lxc:a:b").unwrap(),
            Spec::Name {
                manager: Some(Manager::Lxc),
                name: "a:b"
            }
        );
        // An unknown prefix is refused as such, not taken as part of a name.
        for spec in ["web:1", "lxd2:web1", "LXC:web1", ":web1"] {
            let err = parse_spec(spec).unwrap_err();
            assert_eq!(err.kind, Kind::NoJail, "{spec}");
            assert!(
                err.message.contains("unknown container manager")
                    && err
                        .message
                        .contains("known: lxc, lxd, incus, podman, docker, machined"),
                "{spec}: {}",
                err.message
            );
        }
    }

    #[test]
    fn lxc_that_finds_nothing_names_lxd_or_incus_when_they_have_the_name() {
        use Manager::*;
        let none = [(Lxc, Ok(Answer::Absent))];
        assert_eq!(managers_to_hint(Some(Lxc), "web1", &none), [Lxd, Incus]);
        let missing = [(Lxc, Err(Unasked::NotInstalled))];
        assert_eq!(managers_to_hint(Some(Lxc), "web1", &missing), [Lxd, Incus]);
        // LXC knows it (stopped), a bare name asked all of them, another prefix is meant, or
        // LXD and Incus cannot have the name: nobody else is asked.
        let stopped = [(Lxc, Ok(Answer::Stopped))];
        assert!(managers_to_hint(Some(Lxc), "web1", &stopped).is_empty());
        assert!(managers_to_hint(None, "web1", &none).is_empty());
        assert!(managers_to_hint(Some(Podman), "web1", &none).is_empty());
        assert!(managers_to_hint(Some(Lxc), "a:b", &none).is_empty());
        let error = decide("lxc:web1", "web1", &none).unwrap_err();
        let hinted = with_hints(
            error.clone(),
            "web1",
            &[
                (Lxd, Ok(Answer::Running(4144))),
                (Incus, Ok(Answer::Stopped)),
            ],
        );
        assert_eq!(hinted.kind, Kind::NoJail);
        assert!(
            hinted.message.starts_with(&error.message),
            "{}",
            hinted.message
        );
        assert!(
            hinted
                .message
                .ends_with("; LXD has a container 'web1' (running): use -j lxd:web1; Incus has a container 'web1' (not running): use -j incus:web1"),
            "{}",
            hinted.message
        );
        // The twin: neither has it (or cannot say): the error stays as it was.
        let unhinted = with_hints(
            error.clone(),
            "web1",
            &[
                (Lxd, Ok(Answer::Absent)),
                (Incus, Err(Unasked::Failed("incus failed".into()))),
            ],
        );
        assert_eq!(unhinted, error);
    }

    /// What `lxc list --format csv --columns nsp -- NAME` printed on Debian 12 (LXD 5.0.2) for
    /// the filter "jd-fh-c1": a running container and a stopped one whose name starts alike.
    const LXD_LIST: &str = "jd-fh-c1,RUNNING,4358\njd-fh-c1x,STOPPED,\n";

    #[test]
    fn lxd_and_incus_answers_are_read_for_exactly_the_name_asked() {
        use Manager::*;
        for m in [Lxd, Incus] {
            assert_eq!(
                m.parse("jd-fh-c1", true, LXD_LIST, ""),
                Ok(Answer::Running(4358))
            );
            assert_eq!(
                m.parse("jd-fh-c1x", true, LXD_LIST, ""),
                Ok(Answer::Stopped)
            );
            // A prefix of a name, or nothing listed, is no such container.
            assert_eq!(m.parse("jd-fh", true, LXD_LIST, ""), Ok(Answer::Absent));
            assert_eq!(m.parse("jd-fh-c1", true, "", ""), Ok(Answer::Absent));
            for out in [
                "jd-fh-c1,RUNNING,\n",
                "jd-fh-c1,RUNNING,0\n",
                "jd-fh-c1,RUNNING\n",
                "jd-fh-c1,Running,12\n",
                "jd-fh-c1,RUNNING,12,extra\n",
            ] {
                match m.parse("jd-fh-c1", true, out, "") {
                    Err(Unasked::Failed(e)) => assert!(e.contains(m.tool()), "{e}"),
                    other => panic!("{m:?} {out:?}: {other:?}"),
                }
            }
        }
        // LXD_DIR pointing at no daemon, as captured.
        let down = "Error: Get \"http://unix.socket/1.0\": dial unix /var/lib/lxd/unix.socket: \
                    connect: no such file or directory\n";
        match Lxd.parse("jd-fh-c1", false, "", down) {
            Err(Unasked::Failed(e)) => assert!(e.starts_with("lxc failed: Error: Get"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Names LXD and Incus cannot have are not asked about.
        for name in ["web1", "a-b-3"] {
            assert!(Lxd.takes(name) && Incus.takes(name), "{name}");
        }
        for name in ["remote:web1", "a=b", "a,b", "a.b", "a_b"] {
            assert!(!Lxd.takes(name) && !Incus.takes(name), "{name}");
            assert!(Lxc.takes(name) && Docker.takes(name), "{name}");
        }
    }

    #[test]
    fn a_containerd_container_is_named_by_namespace_and_id_and_read_from_its_tasks() {
        assert_eq!(
            parse_spec("containerd:k8s.io/c1").unwrap(),
            Spec::Name {
                manager: Some(Manager::Containerd),
                name: "k8s.io/c1"
            }
        );
        for bad in [
            "containerd:c1",
            "containerd:k8s.io/-c1",
            "containerd:a/b/c",
            "containerd:/c1",
        ] {
            let err = parse_spec(bad).unwrap_err();
            assert!(
                err.message.contains("NAMESPACE/ID"),
                "{bad}: {}",
                err.message
            );
        }
        let query = Manager::Containerd.query("k8s.io/c1");
        assert!(
            query.ends_with(&["--namespace", "k8s.io", "tasks", "ls"]),
            "{query:?}"
        );
        let tasks = "TASK    PID     STATUS\nc1      20722   RUNNING\nc2      0       STOPPED\n";
        let ask = |name| Manager::Containerd.parse(name, true, tasks, "");
        assert_eq!(ask("k8s.io/c1"), Ok(Answer::Running(20722)));
        assert_eq!(ask("k8s.io/c2"), Ok(Answer::Stopped));
        assert_eq!(ask("k8s.io/c3"), Ok(Answer::Absent));
        // Not asked about a bare name: only when named.
        assert!(!MANAGERS.contains(&Manager::Containerd));
    }

    #[test]
    fn names_that_would_read_as_options_or_paths_are_refused() {
        for bad in ["-n", "lxc:-rf", "a/b", "lxc:", "a b", "x\ty", ""] {
            let err = parse_spec(bad).unwrap_err();
            assert_eq!(err.kind, Kind::NoJail, "{bad}");
            assert!(err.message.contains(bad), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn each_tool_answer_is_read_strictly() {
        use Manager::*;
        assert_eq!(
            Lxc.parse("web1", true, "4144\n", ""),
            Ok(Answer::Running(4144))
        );
        assert_eq!(Lxc.parse("web1", true, "\n", ""), Ok(Answer::Stopped));
        assert_eq!(
            Lxc.parse("web1", false, "", "web1 doesn't exist\n"),
            Ok(Answer::Absent)
        );
        assert_eq!(
            Podman.parse("web1", true, "true 5495\n", ""),
            Ok(Answer::Running(5495))
        );
        assert_eq!(
            Podman.parse("web1", true, "false 0\n", ""),
            Ok(Answer::Stopped)
        );
        assert_eq!(
            Podman.parse(
                "web1",
                false,
                "",
                "Error: inspecting object: no such container web1\n"
            ),
            Ok(Answer::Absent)
        );
        assert_eq!(
            Docker.parse("web1", false, "", "Error: No such container: web1\n"),
            Ok(Answer::Absent)
        );
        assert_eq!(
            Machined.parse("web1", true, "812\n", ""),
            Ok(Answer::Running(812))
        );
        assert_eq!(
            Machined.parse("web1", false, "", "No machine 'web1' known\n"),
            Ok(Answer::Absent)
        );
        // Anything else is a failure that names the tool, never a PID.
        for (m, out) in [
            (Lxc, "0"),
            (Lxc, "-1"),
            (Lxc, "12 13"),
            (Podman, "true 0"),
            (Podman, "true"),
            (Docker, "yes 12"),
            (Machined, "abc"),
        ] {
            match m.parse("web1", true, out, "") {
                Err(Unasked::Failed(e)) => assert!(e.contains(m.tool()), "{e}"),
                other => panic!("{m:?} {out:?}: {other:?}"),
            }
        }
        match Docker.parse("web1", false, "", "Cannot connect to the Docker daemon\n") {
            Err(Unasked::Failed(e)) => assert!(e.contains("Cannot connect"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_running_container_is_found_and_two_are_ambiguous() {
        use Manager::*;
        let found = decide(
            "web1",
            "web1",
            &[
                (Lxc, Ok(Answer::Absent)),
                (Podman, Ok(Answer::Running(7))),
                (Docker, Err(Unasked::Failed("docker failed: down".into()))),
                (Machined, Err(Unasked::NotInstalled)),
            ],
        )
        .unwrap();
        assert_eq!(
            found,
            Found {
                manager: Podman,
                pid: 7
            }
        );
        let err = decide(
            "web1",
            "web1",
            &[
                (Lxc, Ok(Answer::Running(3))),
                (Podman, Ok(Answer::Running(7))),
            ],
        )
        .unwrap_err();
        assert_eq!(err.kind, Kind::NoJail);
        assert!(err.message.contains("ambiguous"), "{}", err.message);
        assert!(err.message.contains("lxc:web1 (pid 3)"), "{}", err.message);
        assert!(
            err.message.contains("podman:web1 (pid 7)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn nothing_running_says_what_each_manager_answered() {
        use Manager::*;
        let err = decide(
            "web1",
            "web1",
            &[
                (Lxc, Ok(Answer::Stopped)),
                (Podman, Ok(Answer::Absent)),
                (Docker, Err(Unasked::Failed("docker failed: down".into()))),
                (Machined, Err(Unasked::NotInstalled)),
            ],
        )
        .unwrap_err();
        assert_eq!(err.kind, Kind::NoJail);
        for part in [
            "jail 'web1'",
            "lxc: stopped",
            "podman: no such container",
            "docker: docker failed: down",
            "machined: not installed (machinectl)",
        ] {
            assert!(err.message.contains(part), "{part}: {}", err.message);
        }
    }
}
