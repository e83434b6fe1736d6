//! Selectors: a declared probe that names a set of containers instead of one jail
//! (`docker:label=K=V`, `podman:label=K=V`, `k8s:NAMESPACE/K=V`), and what the managers' event
//! streams say.
//!
//! This module is pure: it parses a selector, says which tools list its matches (in rounds: a
//! round's tools run at once, and what they print decides the next round), reads their answers
//! into members, and reads one line of an event stream. The platform code runs the tools and
//! the streams as children of the daemon, watched by its event queue (`sys::Survey`,
//! `sys::EventStream`); the core keeps one probe per member (`daemon/core.rs`).
//!
//! Labels only select. A label's key and value are checked here to a strict alphabet, so that
//! neither can add a filter to a manager's query; a member's name is read as a container name
//! or id of that alphabet too, and becomes its probe's jail (`docker:NAME`). Nothing else of a
//! container reaches the host: not its labels, not its command line. The command, user, timeout
//! and the rest are the host's configuration's.

use std::collections::BTreeMap;

/// Where the system containerd listens, as a node runs it (not the one dockerd starts).
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// The containerd namespace where the CRI plugin keeps a Kubernetes node's containers.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// The labels kubelet sets on a pod's containers (through the CRI).
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Most members one selector may have; more are not given probes (logged).
pub const MAX_MEMBERS: usize = 1000;
/// Longest line read from an event stream; a longer one is dropped whole.
pub const MAX_EVENT_LINE: usize = 4096;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every container of Docker or Podman with this label.
    Label {
        manager: LabelManager,
        key: String,
        value: String,
    },
    /// Every container of a pod in `namespace` carrying this label, on this node.
    Pod {
        namespace: String,
        key: String,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelManager {
    Docker,
    Podman,
}

/// A container a selector matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// Its name (Docker, Podman) or id (containerd): with the selector's manager, its jail.
    pub name: String,
    /// For a pod's container: where kubelet put it.
    pub pod: Option<Pod>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// The container's name in the pod's spec.
    pub container: String,
}

/// One tool to run: the program and its arguments, never through a shell.
pub type Invocation = Vec<String>;

/// What one tool said: success, stdout, stderr; or why it could not run.
pub type Output = Result<(bool, String, String), String>;

/// The next step of a listing.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Run these tools at once; their outputs, in order, go to `Selector::step`.
    Run(Vec<Invocation>),
    /// The members, or why the manager could not say.
    Done(Result<Vec<Member>, String>),
}

/// A label key as Kubernetes and Docker write them: letters, digits, and `.`, `-`, `_`, `/`
/// inside; at most 253 bytes. No `=`, `,`, `"` or blank: none can add a filter.
fn label_key(key: &str) -> bool {
    valid(key, 253, |b| {
        b == b'.' || b == b'-' || b == b'_' || b == b'/'
    })
}

/// A label value as Kubernetes allows one (letters, digits, `.`, `-`, `_`), at most 63 bytes,
/// and not empty.
fn label_value(value: &str) -> bool {
    valid(value, 63, |b| b == b'.' || b == b'-' || b == b'_')
}

/// A container name or id, a Kubernetes namespace or pod name: letters, digits, `.`, `-`, `_`,
/// starting with a letter or digit, at most 253 bytes.
pub fn container_name(name: &str) -> bool {
    valid(name, 253, |b| b == b'.' || b == b'-' || b == b'_')
}

fn valid(text: &str, max: usize, inner: impl Fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || inner(b))
}

/// Whether `jail` is written as a selector (then `parse` says whether it is a good one).
pub fn is_selector(jail: &str) -> bool {
    jail.starts_with("k8s:")
        || jail.starts_with("docker:label=")
        || jail.starts_with("podman:label=")
}

/// Parses a selector; the error says what is wrong and how one is written.
pub fn parse(jail: &str) -> Result<Selector, String> {
    let bad = |why: &str| format!("selector '{jail}': {why}");
    let pair = |text: &str| -> Result<(String, String), String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| bad("write the label as KEY=VALUE"))?;
        if !label_key(key) {
            return Err(bad(&format!(
                "'{key}' is not a label key (letters, digits, '.', '-', '_', '/')"
            )));
        }
        if !label_value(value) {
            return Err(bad(&format!(
                "'{value}' is not a label value (1 to 63 letters, digits, '.', '-', '_')"
            )));
        }
        Ok((key.to_string(), value.to_string()))
    };
    if let Some(rest) = jail.strip_prefix("k8s:") {
        let (namespace, label) = rest
            .split_once('/')
            .ok_or_else(|| bad("write it as k8s:NAMESPACE/KEY=VALUE"))?;
        if !container_name(namespace) || namespace.len() > 63 {
            return Err(bad(&format!("'{namespace}' is not a Kubernetes namespace")));
        }
        let (key, value) = pair(label)?;
        return Ok(Selector::Pod {
            namespace: namespace.to_string(),
            key,
            value,
        });
    }
    for (prefix, manager) in [
        ("docker:label=", LabelManager::Docker),
        ("podman:label=", LabelManager::Podman),
    ] {
        if let Some(label) = jail.strip_prefix(prefix) {
            let (key, value) = pair(label)?;
            return Ok(Selector::Label {
                manager,
                key,
                value,
            });
        }
    }
    Err(bad(
        "not a selector (docker:label=KEY=VALUE, podman:label=KEY=VALUE, k8s:NAMESPACE/KEY=VALUE)",
    ))
}

fn strings(args: &[&str]) -> Invocation {
    args.iter().map(|a| a.to_string()).collect()
}

/// `ctr` on the system containerd's socket, in `namespace`, with `args`.
fn ctr(namespace: &str, args: &[&str]) -> Invocation {
    let mut argv = strings(&[
        "ctr",
        "--address",
        CONTAINERD_SOCKET,
        "--namespace",
        namespace,
    ]);
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

impl Selector {
    /// The manager whose containers it selects, as `JAILDAEMON_MANAGER` and the event streams
    /// name it.
    pub fn manager(&self) -> &'static str {
        match self {
            Selector::Label {
                manager: LabelManager::Docker,
                ..
            } => "docker",
            Selector::Label {
                manager: LabelManager::Podman,
                ..
            } => "podman",
            Selector::Pod { .. } => "containerd",
        }
    }

    /// The jail a member's probe is placed in: a container name its manager's lookup takes.
    pub fn jail_of(&self, member: &Member) -> String {
        match self {
            Selector::Label { .. } => format!("{}:{}", self.manager(), member.name),
            Selector::Pod { .. } => format!("containerd:{K8S_NAMESPACE}/{}", member.name),
        }
    }

    /// The first round of its listing.
    pub fn start(&self) -> Vec<Invocation> {
        match self {
            // Stopped ones too (`--all`): a member that stops keeps its probe, which waits for
            // it as a declared probe waits for its jail; one removed loses it.
            Selector::Label { key, value, .. } => vec![strings(&[
                self.manager(),
                "ps",
                "--all",
                "--no-trunc",
                "--filter",
                &format!("label={key}={value}"),
                "--format",
                "{{.Names}}",
            ])],
            // The containers with both labels (ids), running or not, as for Docker.
            Selector::Pod {
                namespace,
                key,
                value,
            } => vec![ctr(
                K8S_NAMESPACE,
                &[
                    "containers",
                    "ls",
                    "-q",
                    &format!(
                        "labels.\"{POD_NAMESPACE_LABEL}\"=={namespace},labels.\"{key}\"=={value}"
                    ),
                ],
            )],
        }
    }

    /// Reads a round's outputs (in the order of its invocations): the next round, or the end.
    /// `round` counts from 0.
    pub fn step(&self, round: usize, outputs: &[Output]) -> Step {
        let tool = |i: usize| -> Result<&str, String> {
            match outputs.get(i) {
                Some(Ok((true, out, _))) => Ok(out.as_str()),
                Some(Ok((false, _, err))) => Err(format!(
                    "{} failed: {}",
                    self.manager(),
                    err.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("")
                        .trim()
                )),
                Some(Err(why)) => Err(why.clone()),
                None => Err("no answer".into()),
            }
        };
        let done = |r| Step::Done(r);
        match (self, round) {
            (Selector::Label { .. }, _) => done(tool(0).and_then(|out| {
                names(out, self.manager()).map(|names| {
                    names
                        .into_iter()
                        .map(|name| Member { name, pod: None })
                        .collect()
                })
            })),
            (Selector::Pod { .. }, 0) => {
                match tool(0).and_then(|ids| names(ids, "ctr containers ls")) {
                    Err(e) => done(Err(e)),
                    Ok(ids) if ids.is_empty() => done(Ok(Vec::new())),
                    // Each one's labels name its pod (one `info` per container, at once).
                    Ok(ids) => Step::Run(
                        ids.iter()
                            .map(|id| ctr(K8S_NAMESPACE, &["containers", "info", id]))
                            .collect(),
                    ),
                }
            }
            (Selector::Pod { namespace, .. }, _) => {
                let mut members = Vec::new();
                for i in 0..outputs.len() {
                    // A container removed since it was listed is simply not a member.
                    let Ok(info) = tool(i) else { continue };
                    match pod_member(info, namespace) {
                        Ok(member) => members.push(member),
                        Err(e) => return done(Err(e)),
                    }
                }
                done(Ok(members))
            }
        }
    }
}

/// One name per line, each a container name; anything else fails the whole answer.
fn names(out: &str, tool: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !container_name(line) {
            return Err(format!("{tool} gave a name not understood: '{line}'"));
        }
        names.push(line.to_string());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// `ctr tasks ls`: a header, then `ID PID STATUS` per task; the running ones, with their pid.
pub fn running_tasks(out: &str) -> Result<BTreeMap<&str, i32>, String> {
    let mut running = BTreeMap::new();
    for line in out.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, pid, status] = fields[..] else {
            return Err(format!("ctr tasks ls gave a line not understood: '{line}'"));
        };
        if status == "RUNNING" {
            let pid = pid
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("ctr tasks ls gave a pid not understood: '{line}'"))?;
            running.insert(id, pid);
        }
    }
    Ok(running)
}

/// `ctr containers info ID`: its id and kubelet's labels, for a container of a pod in
/// `namespace`.
fn pod_member(info: &str, namespace: &str) -> Result<Member, String> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "ID")]
        id: String,
        #[serde(rename = "Labels", default)]
        labels: BTreeMap<String, String>,
    }
    let bad = |why: String| format!("ctr containers info gave an answer not understood: {why}");
    let info: Info = serde_json::from_str(info).map_err(|e| bad(e.to_string()))?;
    if !container_name(&info.id) {
        return Err(bad(format!("id '{}'", info.id)));
    }
    let label = |key: &str| {
        info.labels
            .get(key)
            .filter(|v| container_name(v))
            .cloned()
            .unwrap_or_default()
    };
    // Listed by this namespace's label: one that no longer says so (relabelled since) is not a
    // member.
    let pod = Pod {
        namespace: label(POD_NAMESPACE_LABEL),
        name: label(POD_NAME_LABEL),
        container: label(CONTAINER_NAME_LABEL),
    };
    if pod.namespace != namespace {
        return Err(bad(format!(
            "'{}' is not in namespace {namespace}",
            info.id
        )));
    }
    Ok(Member {
        name: info.id,
        pod: Some(pod),
    })
}

/// What one line of a manager's event stream says: that container `name` (for containerd,
/// `NAMESPACE/ID`) started or stopped. Anything else, or a line not understood, says nothing.
pub fn stream_event(manager: &str, line: &str) -> Option<String> {
    if line.len() > MAX_EVENT_LINE {
        return None;
    }
    match manager {
        // `docker events --format '{{json .}}'`: {"status":"start","Actor":{"Attributes":
        // {"name":"web1",…}},…}; `podman events --format json`: {"Name":"web1","Status":"start",…}.
        "docker" | "podman" => {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            let status = event
                .get("status")
                .or_else(|| event.get("Status"))?
                .as_str()?;
            if !matches!(
                status,
                "start" | "restart" | "die" | "stop" | "destroy" | "remove"
            ) {
                return None;
            }
            let name = event
                .pointer("/Actor/Attributes/name")
                .or_else(|| event.get("Name"))?
                .as_str()?;
            container_name(name).then(|| name.to_string())
        }
        // `ctr events`: `2026-12-05 15:28:38.21 +0000 UTC k8s.io /tasks/start {"container_id":…}`.
        "containerd" => {
            let mut words = line.splitn(7, ' ');
            let namespace = words.nth(4)?;
            let topic = words.next()?;
            let body = words.next()?;
            if !matches!(topic, "/tasks/start" | "/tasks/exit" | "/tasks/delete") {
                return None;
            }
            let event: serde_json::Value = serde_json::from_str(body).ok()?;
            let id = event.get("container_id")?.as_str()?;
            (container_name(namespace) && container_name(id)).then(|| format!("{namespace}/{id}"))
        }
        _ => None,
    }
}

/// The event stream of `manager`: its tool and arguments.
pub fn stream_command(manager: &str) -> Option<Invocation> {
    Some(match manager {
        "docker" => strings(&[
            "docker",
            "events",
            "--format",
            "{{json .}}",
            "--filter",
            "type=container",
        ]),
        "podman" => strings(&[
            "podman",
            "events",
            "--format",
            "json",
            "--filter",
            "type=container",
        ]),
        "containerd" => strings(&["ctr", "--address", CONTAINERD_SOCKET, "events"]),
        _ => return None,
    })
}

/// The manager whose event stream tells when the jail named `jail` starts: the one a
/// `manager:name` names, Docker for a bare name, none for a PID or another manager.
pub fn stream_for(jail: &str) -> Option<&'static str> {
    if jail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if is_selector(jail) {
        return parse(jail).ok().map(|s| s.manager());
    }
    match jail.split_once(':') {
        Some(("docker", _)) => Some("docker"),
        Some(("podman", _)) => Some("podman"),
        Some(("containerd", _)) => Some("containerd"),
        Some(_) => None,
        None => Some("docker"),
    }
}

/// The container name a stream's event names, as the jail of a probe names it: `web1` is
/// `web1` or `docker:web1` for Docker's stream.
pub fn names_jail(manager: &str, name: &str, jail: &str) -> bool {
    match jail.split_once(':') {
        Some((m, n)) => m == manager && n == name,
        None => manager == "docker" && jail == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse("docker:label=com.example.role=web"),
            Ok(Selector::Label {
                manager: LabelManager::Docker,
                key: "com.example.role".into(),
                value: "web".into()
            })
        );
        assert_eq!(
            parse("podman:label=app=web").map(|s| s.manager()),
            Ok("podman")
        );
        assert_eq!(
            parse("k8s:shop/app.kubernetes.io/name=web"),
            Ok(Selector::Pod {
                namespace: "shop".into(),
                key: "app.kubernetes.io/name".into(),
                value: "web".into()
            })
        );
        // A value or key that could add a filter (`,`, `"`, `=`, blanks) is refused.
        for (bad, says) in [
            ("docker:label=role", "KEY=VALUE"),
            ("docker:label=role=web,x=y", "not a label value"),
            ("docker:label=role=a=b", "not a label value"),
            ("docker:label=ro\"le=web", "not a label key"),
            ("docker:label==web", "not a label key"),
            ("docker:label=role=", "not a label value"),
            ("k8s:app=web", "k8s:NAMESPACE/KEY=VALUE"),
            ("k8s:sh op/app=web", "not a Kubernetes namespace"),
            ("k8s:shop/app=web\"", "not a label value"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
        assert!(is_selector("k8s:shop/app=web") && is_selector("docker:label=a=b"));
        assert!(!is_selector("docker:web1") && !is_selector("web1") && !is_selector("4144"));
    }

    #[test]
    fn docker_listing_is_one_round_read_strictly() {
        let s = parse("docker:label=role=web").unwrap();
        assert_eq!(
            s.start(),
            vec![strings(&[
                "docker",
                "ps",
                "--all",
                "--no-trunc",
                "--filter",
                "label=role=web",
                "--format",
                "{{.Names}}"
            ])]
        );
        let out = |text: &str| vec![Ok((true, text.to_string(), String::new()))];
        let members = |names: &[&str]| {
            Step::Done(Ok(names
                .iter()
                .map(|n| Member {
                    name: n.to_string(),
                    pod: None,
                })
                .collect()))
        };
        assert_eq!(
            s.step(0, &out("proj-web-2\nproj-web-1\n")),
            members(&["proj-web-1", "proj-web-2"])
        );
        assert_eq!(s.step(0, &out("")), members(&[]));
        assert_eq!(
            s.jail_of(&Member {
                name: "proj-web-1".into(),
                pod: None
            }),
            "docker:proj-web-1"
        );
        // Twin: anything but names fails the whole answer (the probes stay as they are).
        for bad in ["a b\n", "-x\n", "web/1\n"] {
            assert!(matches!(s.step(0, &out(bad)), Step::Done(Err(_))), "{bad}");
        }
        let failed = vec![Ok((
            false,
            String::new(),
            "Cannot connect to the Docker daemon\n".into(),
        ))];
        match s.step(0, &failed) {
            Step::Done(Err(e)) => assert!(e.contains("Cannot connect"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    /// `ctr containers info` of a container made with kubelet's labels (trimmed).
    const INFO: &str = r#"{"ID":"c1","Labels":{"app":"web","io.kubernetes.container.name":"nginx",
        "io.kubernetes.pod.name":"web-abc","io.kubernetes.pod.namespace":"shop"},"Image":"x"}"#;

    #[test]
    fn pod_listing_takes_labelled_containers_and_reads_their_pods() {
        let s = parse("k8s:shop/app=web").unwrap();
        let first = s.start();
        assert_eq!(first.len(), 1);
        assert!(first[0].contains(&format!(
            "labels.\"{POD_NAMESPACE_LABEL}\"==shop,labels.\"app\"==web"
        )));
        let ok = |text: &str| Ok((true, text.to_string(), String::new()));
        // Each container listed is asked about its pod, all at once.
        match s.step(0, &[ok("c1\nc2\n")]) {
            Step::Run(round) => assert_eq!(
                round,
                vec![
                    ctr(K8S_NAMESPACE, &["containers", "info", "c1"]),
                    ctr(K8S_NAMESPACE, &["containers", "info", "c2"])
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.step(0, &[ok("")]), Step::Done(Ok(Vec::new())));
        let member = Member {
            name: "c1".into(),
            pod: Some(Pod {
                namespace: "shop".into(),
                name: "web-abc".into(),
                container: "nginx".into(),
            }),
        };
        assert_eq!(s.step(1, &[ok(INFO)]), Step::Done(Ok(vec![member.clone()])));
        assert_eq!(s.jail_of(&member), "containerd:k8s.io/c1");
        // A container gone since it was listed is no member; one of another namespace fails.
        assert_eq!(
            s.step(1, &[Ok((false, String::new(), "not found".into()))]),
            Step::Done(Ok(Vec::new()))
        );
        let other = INFO.replace("\"shop\"", "\"other\"");
        assert!(matches!(s.step(1, &[ok(&other)]), Step::Done(Err(_))));
        assert!(matches!(s.step(0, &[ok("c1 c2\n")]), Step::Done(Err(_))));
    }

    #[test]
    fn stream_lines_name_the_container_that_started_or_stopped() {
        let docker = r#"{"status":"start","id":"da8a","Type":"container","Action":"start","Actor":{"ID":"da8a","Attributes":{"com.example.role":"web","name":"jdx-probe1"}}}"#;
        assert_eq!(stream_event("docker", docker), Some("jdx-probe1".into()));
        let create = docker.replace("\"start\"", "\"create\"");
        assert_eq!(stream_event("docker", &create), None);
        let podman = r#"{"ID":"7a67","Name":"jdx-pe","Status":"start","Type":"container","Attributes":{"role":"web"}}"#;
        assert_eq!(stream_event("podman", podman), Some("jdx-pe".into()));
        let ctr = r#"2026-12-05 15:28:38.219485708 +0000 UTC k8s.io /tasks/start {"container_id":"jdx-c1","pid":20722}"#;
        assert_eq!(
            stream_event("containerd", ctr),
            Some("k8s.io/jdx-c1".into())
        );
        let snapshot =
            r#"2026-12-05 15:28:38.1 +0000 UTC k8s.io /snapshot/prepare {"key":"jdx-c1"}"#;
        assert_eq!(stream_event("containerd", snapshot), None);
        // Twins: garbage, a hostile name, an over-long line say nothing.
        let hostile = docker.replace("jdx-probe1", "../etc; rm");
        for (m, line) in [
            ("docker", "not json"),
            ("docker", hostile.as_str()),
            ("containerd", "x"),
        ] {
            assert_eq!(stream_event(m, line), None, "{line}");
        }
        let long = docker.replace("web", &"w".repeat(MAX_EVENT_LINE));
        assert_eq!(stream_event("docker", &long), None);
    }

    #[test]
    fn streams_are_wanted_by_the_jails_that_need_them() {
        assert_eq!(stream_for("docker:label=a=b"), Some("docker"));
        assert_eq!(stream_for("k8s:shop/app=web"), Some("containerd"));
        assert_eq!(stream_for("containerd:k8s.io/c1"), Some("containerd"));
        assert_eq!(stream_for("podman:db"), Some("podman"));
        assert_eq!(stream_for("web1"), Some("docker"));
        assert_eq!(stream_for("lxc:web1"), None);
        assert_eq!(stream_for("4144"), None);
        assert!(
            names_jail("docker", "web1", "web1") && names_jail("docker", "web1", "docker:web1")
        );
        assert!(!names_jail("podman", "web1", "web1") && !names_jail("docker", "web1", "lxc:web1"));
        assert!(names_jail(
            "containerd",
            "k8s.io/c1",
            "containerd:k8s.io/c1"
        ));
    }
}
