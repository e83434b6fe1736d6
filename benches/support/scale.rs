//! Idle probes at scale: what 1 to 10,000 armed probes cost in memory (per probe and in the
//! daemon), how long arming and tearing them down take, and what they do to trigger latency.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use jaildaemon::proto::Response;

use super::rig::{Mech, Rig};
use super::{Footprint, Stats, footprint, meminfo, proc_field_kib, skipped};
use crate::util::Jail;

pub const IDLE_TITLE: &str = "BENCH_IDLE";

/// A memory cgroup (v1 or v2) of the bench's own, below the one the bench runs in, holding
/// the daemon and the jails: everything the daemon and its probes allocate from then on is
/// charged there (user pages, and kernel stacks, page tables and slab objects, which the
/// kernel accounts to the allocating task's cgroup), whatever else the machine does.
pub struct Memcg {
    dir: PathBuf,
    v1: bool,
}

impl Memcg {
    /// `label` tells apart the cgroups the bench holds at the same time.
    pub fn create(label: &str) -> Option<Memcg> {
        let ours = fs::read_to_string("/proc/self/cgroup").ok()?;
        let name = format!("jaildaemon-bench-{}-{label}", std::process::id());
        // v1 memory controller (hybrid layouts), else the v2 hierarchy.
        let v1 = ours.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| format!("/sys/fs/cgroup/memory{path}"))
        });
        let (base, is_v1) = match v1 {
            Some(base) => (PathBuf::from(base), true),
            None => {
                let path = ours.lines().find_map(|l| l.strip_prefix("0::"))?;
                (PathBuf::from(format!("/sys/fs/cgroup{path}")), false)
            }
        };
        let dir = base.join(name);
        fs::create_dir(&dir).ok()?;
        let memcg = Memcg { dir, v1: is_v1 };
        if memcg.usage().is_none() {
            skipped("memcg accounting: no memory usage file in the bench's cgroup");
            return None;
        }
        Some(memcg)
    }

    pub fn adopt(&self, pid: u32) -> bool {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).is_ok()
    }

    /// (user anon pages, kernel memory) charged, in KiB.
    pub fn usage(&self) -> Option<(i64, i64)> {
        let stat = fs::read_to_string(self.dir.join("memory.stat")).ok()?;
        let field = |k: &str| {
            stat.lines().find_map(|l| {
                let (key, v) = l.split_once(' ')?;
                (key == k).then(|| v.trim().parse::<i64>().ok())?
            })
        };
        if self.v1 {
            let kmem: i64 = fs::read_to_string(self.dir.join("memory.kmem.usage_in_bytes"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((field("total_rss")? / 1024, kmem / 1024))
        } else {
            Some((field("anon")? / 1024, field("kernel")? / 1024))
        }
    }
}

impl Drop for Memcg {
    fn drop(&mut self) {
        for _ in 0..200 {
            if fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        skipped(&format!("could not remove cgroup {}", self.dir.display()));
    }
}

#[derive(Clone, Copy, Default)]
struct Snapshot {
    avail: i64,
    kstack: i64,
    ptables: i64,
    slab: i64,
    memcg: Option<(i64, i64)>,
}

fn snapshot(memcg: Option<&Memcg>) -> Snapshot {
    let m = meminfo();
    let get = |k: &str| m.get(k).copied().unwrap_or(0);
    Snapshot {
        avail: get("MemAvailable"),
        kstack: get("KernelStack"),
        ptables: get("PageTables"),
        slab: get("Slab"),
        memcg: memcg.and_then(Memcg::usage),
    }
}

/// One checkpoint: `armed` idle probes in the daemon.
pub struct Row {
    pub armed: usize,
    /// Time to arm the probes added since the previous checkpoint, and how many.
    pub step: Duration,
    pub step_probes: usize,
    /// Per probe, KiB: mean over (up to 1,000 sampled) probes.
    pub probe: Footprint,
    /// Per probe, KiB: /proc/meminfo deltas since before the first probe.
    pub avail: f64,
    pub kstack: f64,
    pub ptables: f64,
    pub slab: f64,
    /// Per probe, KiB: (user, kernel) charged to the bench's memory cgroup.
    pub memcg: Option<(f64, f64)>,
    /// Per process, KiB: (user, kernel) that as many of the smallest exec'd static process
    /// (tests/util) charge to a memory cgroup of their own, in the layout's jails, measured
    /// right after the probes.
    pub floor_memcg: Option<(f64, f64)>,
    /// The daemon's RSS, of it its anonymous pages (what it keeps; the rest is its binary's
    /// and glibc's file pages, shared), and its PSS, KiB.
    pub daemon_rss: u64,
    pub daemon_anon: u64,
    pub daemon_pss: u64,
    /// Descriptors the daemon holds.
    pub daemon_fds: usize,
    /// Trigger latency of a probe in another jail of the same daemon, the floor, and the floor
    /// holding as many descriptors as the daemon.
    pub trigger: Stats,
    pub floor: Stats,
    pub fat_floor: Stats,
}

pub struct Layout {
    pub name: String,
    pub rows: Vec<Row>,
    /// Daemon SIGTERM until it has killed and reaped every probe and exited.
    pub teardown: Duration,
    pub refused: Option<String>,
    pub clients: usize,
}

impl Layout {
    pub fn arm_total(&self) -> Duration {
        self.rows.iter().map(|r| r.step).sum()
    }
}

/// Arms `count` idle probes over the daemon's socket from `clients` concurrent in-process
/// clients, round-robin over `jails`. Stops at the first refusal.
fn arm_many(
    socket: &Path,
    jails: &[String],
    first: usize,
    count: usize,
    clients: usize,
) -> (Duration, Vec<i32>, Option<String>) {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let pids = Mutex::new(Vec::with_capacity(count));
    let refused = Mutex::new(None);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let request =
                        super::arm_request("true", &jails[(first + i) % jails.len()], IDLE_TITLE);
                    match jaildaemon::client::ask(socket, &request) {
                        Ok(Response::Armed { pid, .. }) => pids.lock().unwrap().push(pid),
                        other => {
                            stop.store(true, Ordering::Relaxed);
                            refused
                                .lock()
                                .unwrap()
                                .get_or_insert(format!("after {} probes: {other:?}", first + i));
                        }
                    }
                }
            });
        }
    });
    (
        t0.elapsed(),
        pids.into_inner().unwrap(),
        refused.into_inner().unwrap(),
    )
}

/// Mean footprint of up to 1,000 probes spread evenly over `pids`.
fn mean_footprint(pids: &[i32]) -> Footprint {
    let step = pids.len().div_ceil(1000).max(1);
    let sampled: Vec<Footprint> = pids
        .iter()
        .step_by(step)
        .filter_map(|&p| footprint(p))
        .collect();
    let n = sampled.len().max(1) as u64;
    let sum = |f: fn(&Footprint) -> u64| sampled.iter().map(f).sum::<u64>() / n;
    Footprint {
        rss: sum(|f| f.rss),
        pss: sum(|f| f.pss),
        uss: sum(|f| f.uss),
        pte: sum(|f| f.pte),
        fd_slots: sum(|f| f.fd_slots),
    }
}

pub struct Plan<'a> {
    pub name: &'a str,
    pub jails: usize,
    pub sizes: &'a [usize],
    pub clients: usize,
    pub trigger_samples: usize,
}

pub fn run_layout(plan: &Plan<'_>) -> Layout {
    eprintln!("scale: {} ({} jail(s))", plan.name, plan.jails);
    // Declared first, dropped last: the cgroup can go only once its processes have.
    let memcg = Memcg::create("daemon");
    if memcg.is_none() {
        skipped("memcg accounting: cannot create a memory cgroup; meminfo deltas only");
    }
    let mut rig = Rig::new(false);
    let idle_jails: Vec<Jail> = (0..plan.jails).map(|_| Jail::new()).collect();
    let build = crate::util::TempDir::new();
    let smallest = crate::util::smallest_static_program(&build.0);
    let specs: Vec<String> = idle_jails.iter().map(Jail::spec).collect();
    let daemon_pid = rig.daemon.child.id();
    // The daemon and every jail in one cgroup, so the daemon has no cgroup to join for a
    // probe (as in the trigger rounds): this measures the probe, not cgroup migration.
    let accounted = memcg.as_ref().filter(|m| {
        m.adopt(daemon_pid) && m.adopt(rig.jail.pid) && idle_jails.iter().all(|j| m.adopt(j.pid))
    });
    sleep(Duration::from_millis(300));
    let base = snapshot(accounted);
    let mut rows = Vec::new();
    let mut pids: Vec<i32> = Vec::new();
    let mut refused = None;
    for &size in plan.sizes {
        if size < plan.jails || size <= pids.len() {
            continue;
        }
        let want = size - pids.len();
        let (step, new, err) = arm_many(&rig.daemon.socket, &specs, pids.len(), want, plan.clients);
        pids.extend(new);
        eprintln!(
            "  {} probes armed ({:.2} s for the last {want})",
            pids.len(),
            step.as_secs_f64()
        );
        sleep(Duration::from_millis(300));
        let now = snapshot(accounted);
        let n = pids.len().max(1) as f64;
        let per = |a: i64, b: i64| (a - b) as f64 / n;
        let daemon_status = format!("/proc/{daemon_pid}/status");
        let mut row = Row {
            armed: pids.len(),
            step,
            step_probes: want,
            probe: mean_footprint(&pids),
            avail: per(base.avail, now.avail),
            kstack: per(now.kstack, base.kstack),
            ptables: per(now.ptables, base.ptables),
            slab: per(now.slab, base.slab),
            memcg: match (now.memcg, base.memcg) {
                (Some((u1, k1)), Some((u0, k0))) => Some((per(u1, u0), per(k1, k0))),
                _ => None,
            },
            daemon_rss: proc_field_kib(&daemon_status, "VmRSS").unwrap_or(0),
            daemon_anon: proc_field_kib(&daemon_status, "RssAnon").unwrap_or(0),
            daemon_pss: proc_field_kib(&format!("/proc/{daemon_pid}/smaps_rollup"), "Pss")
                .unwrap_or(0),
            daemon_fds: fs::read_dir(format!("/proc/{daemon_pid}/fd")).map_or(0, |d| d.count()),
            floor_memcg: None,
            trigger: Stats::default(),
            floor: Stats::default(),
            fat_floor: Stats::default(),
        };
        let jail_pids: Vec<u32> = idle_jails.iter().map(|j| j.pid).collect();
        row.floor_memcg = smallest_processes_cost(&jail_pids, &smallest, pids.len());
        // The floor gets as many descriptors as the daemon has, within our own limit.
        let room = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1024) as usize;
        rig.start_fat_floor(row.daemon_fds.min(room.saturating_sub(32)));
        let order = [Mech::Jaildaemon, Mech::Floor, Mech::FatFloor];
        for i in 0..plan.trigger_samples {
            for j in 0..order.len() {
                let mech = order[(i + j) % order.len()];
                let s = rig.trigger(mech, Duration::from_millis(5));
                match mech {
                    Mech::Jaildaemon => row.trigger.push(s.latency),
                    Mech::Floor => row.floor.push(s.latency),
                    _ => row.fat_floor.push(s.latency),
                }
            }
        }
        rows.push(row);
        if err.is_some() {
            refused = err;
            break;
        }
    }
    let t0 = Instant::now();
    rig.daemon.signal(rustix::process::Signal::TERM);
    let _ = rig.daemon.child.wait();
    let teardown = t0.elapsed();
    let left = crate::util::host_pids_matching(IDLE_TITLE).len();
    assert_eq!(left, 0, "{left} idle probes outlived the daemon");
    eprintln!("  torn down in {:.2} s", teardown.as_secs_f64());
    drop(rig);
    drop(idle_jails);
    Layout {
        name: plan.name.into(),
        rows,
        teardown,
        refused,
        clients: plan.clients,
    }
}

/// Title of the floor's processes in the idle probe cost.
const SMALLEST_TITLE: &str = "BENCH_SMALLEST";

/// What `count` copies of the smallest exec'd static process `program` charge, per process,
/// to a memory cgroup of their own: (user, kernel) KiB. Started round-robin in the jails of
/// `jail_pids` by helpers that joined their namespaces and were moved into the cgroup before
/// starting any (the kernel charges a task's stack and structures to the cgroup of the task
/// that forks it), then killed.
fn smallest_processes_cost(jail_pids: &[u32], program: &Path, count: usize) -> Option<(f64, f64)> {
    use std::io::{BufRead, Write};
    let memcg = Memcg::create("smallest")?;
    let mut helpers = Vec::new();
    for (i, jail) in jail_pids.iter().enumerate() {
        let share = count / jail_pids.len() + usize::from(i < count % jail_pids.len());
        let helper = std::process::Command::new(std::env::current_exe().ok()?)
            .arg("--jd-smallest")
            .arg(jail.to_string())
            .arg(program)
            .arg(share.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        helpers.push(helper);
    }
    let mut lines = Vec::new();
    for helper in &mut helpers {
        let mut out = std::io::BufReader::new(helper.stdout.take()?);
        let mut line = String::new();
        // "joined": in the jail's namespaces, waiting for "go".
        out.read_line(&mut line).ok()?;
        if !memcg.adopt(helper.id()) {
            return None;
        }
        lines.push(out);
    }
    sleep(Duration::from_millis(300));
    let before = memcg.usage()?;
    let mut started = 0;
    for (helper, out) in helpers.iter_mut().zip(&mut lines) {
        writeln!(helper.stdin.as_mut()?, "go").ok()?;
        let mut line = String::new();
        out.read_line(&mut line).ok()?;
        started += line
            .strip_prefix("started ")
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
    }
    sleep(Duration::from_millis(300));
    let after = memcg.usage()?;
    for mut helper in helpers {
        drop(helper.stdin.take());
        let _ = helper.wait();
    }
    if started < count {
        eprintln!("  NOTE only {started} of {count} smallest static processes started");
    }
    let n = started.max(1) as f64;
    Some((
        (after.0 - before.0) as f64 / n,
        (after.1 - before.1) as f64 / n,
    ))
}

/// `--jd-smallest JAIL_PID PROGRAM COUNT`: joins the jail's namespaces, says "joined", waits
/// for "go", starts COUNT copies of PROGRAM there, says "started N" (how many did), and when
/// its input ends kills and reaps them.
pub fn smallest_helper(args: &[String]) {
    use std::io::{BufRead, Write};
    use std::os::unix::process::CommandExt;
    let [jail, program, count] = args else {
        panic!("usage: --jd-smallest JAIL_PID PROGRAM COUNT");
    };
    let jail: i32 = jail.parse().expect("jail pid");
    let count: usize = count.parse().expect("count");
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(jail).expect("pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd_open of the jail");
    rustix::thread::move_into_thread_name_spaces(
        std::os::fd::AsFd::as_fd(&pidfd),
        rustix::thread::ThreadNameSpaceType::PROCESS_ID
            | rustix::thread::ThreadNameSpaceType::MOUNT
            | rustix::thread::ThreadNameSpaceType::NETWORK
            | rustix::thread::ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME
            | rustix::thread::ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION,
    )
    .expect("setns into the jail");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "joined").unwrap();
    stdout.flush().unwrap();
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).unwrap();
    // Up to the first failure (a machine short of pids), which the bench reports.
    let mut children: Vec<std::process::Child> = (0..count)
        .map_while(|_| {
            std::process::Command::new(program)
                .arg0(SMALLEST_TITLE)
                .env_clear()
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| eprintln!("  NOTE starting the smallest static process: {e}"))
                .ok()
        })
        .collect();
    writeln!(stdout, "started {}", children.len()).unwrap();
    stdout.flush().unwrap();
    let _ = stdin.read_line(&mut line);
    for child in &mut children {
        let _ = child.kill();
    }
    for child in &mut children {
        let _ = child.wait();
    }
}
