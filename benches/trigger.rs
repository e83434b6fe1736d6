//! jaildaemon's benchmark (issue 8): trigger latency beside the floor, webhook and an
//! inotify watcher; idle probe cost from 1 to 10,000 probes; arming and teardown. Writes
//! BENCHMARKS.md. Not a test: nothing here asserts a time.
//!
//! Run as root: `cargo bench --bench trigger`
//! (`-- --rounds N --samples M` to change n: n = rounds × samples per row and idle gap).
//! Smoke run for CI, a few seconds, written to target/bench-smoke/BENCHMARKS.md:
//! `JAILDAEMON_BENCH_SMOKE=1 cargo bench --bench trigger` (or `-- --smoke`).
//!
//! The bench binary is also its own helpers: `--jd-sender` (kept running inside a jail, it
//! issues the triggers), `--jd-floor` (the floor program) and `--jd-serial-floor N` (the
//! floor of arming: N minimal processes started in a jail one after the other) and
//! `--jd-smallest` (the floor of an idle probe's memory: copies of the smallest static
//! process, started in a jail).

#[path = "../tests/util/mod.rs"]
mod util;

mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::rig::{Mech, Rig, bash_loop, utility_start};
use support::scale::{Layout, Plan};
use support::{Stats, loadavg, skipped, version_of};

/// The hard RLIMIT_NOFILE the daemons get (unless `--keep-nofile`).
const NOFILE: u64 = 65_536;

struct Config {
    smoke: bool,
    rounds: usize,
    samples: usize,
    /// Idle time before each trigger; the first is "back-to-back".
    gaps: Vec<Duration>,
    sizes: Vec<usize>,
    spread_jails: usize,
    clients: usize,
    scale_samples: usize,
    /// `--only trigger`, `scale`, `engine` or `fleets`: one part, written beside the smoke
    /// report.
    only: Option<String>,
    out: PathBuf,
}

impl Config {
    fn from_args(args: &[String]) -> Config {
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1)?.parse().ok())
        };
        let smoke = args.iter().any(|a| a == "--smoke")
            || std::env::var("JAILDAEMON_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1).cloned());
        let mut cfg = if smoke {
            Config {
                smoke,
                rounds: arg("--rounds").unwrap_or(1),
                samples: arg("--samples").unwrap_or(5),
                gaps: vec![Duration::ZERO, Duration::from_millis(20)],
                sizes: vec![1, 10],
                spread_jails: 5,
                clients: 2,
                scale_samples: 2,
                only: None,
                out: root.join("target/bench-smoke/BENCHMARKS.md"),
            }
        } else {
            Config {
                smoke,
                rounds: arg("--rounds").unwrap_or(5),
                samples: arg("--samples").unwrap_or(40),
                gaps: vec![Duration::ZERO, Duration::from_millis(200)],
                sizes: vec![1, 100, 1000, 10_000],
                spread_jails: 100,
                clients: 4,
                scale_samples: 20,
                only: None,
                out: root.join("BENCHMARKS.md"),
            }
        };
        if let Some(part) = only {
            cfg.out = root.join(format!("target/bench-{part}/BENCHMARKS.md"));
            cfg.only = Some(part);
        }
        if let Some(sizes) = args
            .iter()
            .position(|a| a == "--sizes")
            .and_then(|i| args.get(i + 1))
        {
            cfg.sizes = sizes.split(',').filter_map(|s| s.parse().ok()).collect();
        }
        cfg
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|p| p == part)
    }
}

/// Everything the trigger rounds measured.
struct Triggers {
    mechanisms: Vec<Mech>,
    /// [gap][mechanism index as in `Mech`]
    latency: Vec<[Stats; 6]>,
    /// Every sample: mechanism, gap, round, µs.
    raw: Vec<(Mech, Duration, usize, f64)>,
    webhook_response: Vec<Stats>,
    utility: Stats,
    socket: Stats,
    start: Stats,
    /// Bash loops (issue 23's measure), µs per iteration: arming requests, `/bin/true`, and
    /// per pair run back to back the first ÷ the second.
    loop_arm: Stats,
    loop_true: Stats,
    loop_ratio: Stats,
    loop_length: usize,
}

impl Triggers {
    fn empty(gaps: usize) -> Triggers {
        Triggers {
            mechanisms: vec![],
            latency: vec![Default::default(); gaps],
            raw: vec![],
            webhook_response: vec![Stats::default(); gaps],
            utility: Stats::default(),
            socket: Stats::default(),
            start: Stats::default(),
            loop_arm: Stats::default(),
            loop_true: Stats::default(),
            loop_ratio: Stats::default(),
            loop_length: 0,
        }
    }
}

fn trigger_rounds(cfg: &Config) -> Triggers {
    let mut rig = Rig::new(true);
    let mechanisms = rig.mechanisms();
    let mut t = Triggers {
        mechanisms: mechanisms.clone(),
        ..Triggers::empty(cfg.gaps.len())
    };
    // Warm-up, not recorded: one trigger of each and one arming of each kind.
    for &m in &mechanisms {
        rig.trigger(m, Duration::from_millis(5));
    }
    rig.utility_round_trip(usize::MAX);
    rig.socket_round_trip(usize::MAX);
    let mut k = 0usize;
    for round in 0..cfg.rounds {
        eprintln!("trigger round {}/{}", round + 1, cfg.rounds);
        for (g, &gap) in cfg.gaps.iter().enumerate() {
            for s in 0..cfg.samples {
                // Rotate the order, so that none always follows another.
                for j in 0..mechanisms.len() {
                    let m = mechanisms[(s + j) % mechanisms.len()];
                    let sample = rig.trigger(m, gap);
                    t.latency[g][m as usize].push(sample.latency);
                    t.raw.push((m, gap, round, sample.latency));
                    if let Some(r) = sample.response {
                        t.webhook_response[g].push(r);
                    }
                }
                if g == 0 {
                    k += 1;
                    sleep(Duration::from_millis(5));
                    t.utility.push(rig.utility_round_trip(k));
                    sleep(Duration::from_millis(5));
                    t.socket.push(rig.socket_round_trip(k));
                    sleep(Duration::from_millis(5));
                    t.start.push(utility_start());
                }
            }
        }
        // Bash loops, in pairs whose order alternates, so that neither always runs first.
        let (pairs, length) = if cfg.smoke { (2, 10) } else { (4, 50) };
        t.loop_length = length;
        for pair in 0..pairs {
            let tag = format!("{round}_{pair}");
            let (arm, truth) = if pair % 2 == 0 {
                let arm = bash_loop(&rig, true, &tag, length);
                (arm, bash_loop(&rig, false, &tag, length))
            } else {
                let truth = bash_loop(&rig, false, &tag, length);
                (bash_loop(&rig, true, &tag, length), truth)
            };
            t.loop_arm.push(arm);
            t.loop_true.push(truth);
            t.loop_ratio.push(arm / truth);
        }
    }
    t
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--jd-sender") => return support::sender::run(),
        Some("--jd-floor") => return support::floor::run(&args[2..]),
        Some("--jd-serial-floor") => return support::declared::serial_floor(&args[2..]),
        Some("--jd-smallest") => return support::scale::smallest_helper(&args[2..]),
        _ => {}
    }
    let cfg = Config::from_args(&args);
    if !rustix::process::geteuid().is_root() {
        skipped("benchmark: needs root (namespace jails, the daemon's root-only socket)");
        return;
    }
    // Every armed probe holds two descriptors in the daemon (its pidfd and its jail's): let
    // the daemons inherit room for 10,000 probes even where the hard limit is 20,000.
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if !args.iter().any(|a| a == "--keep-nofile") && nofile.maximum.is_some_and(|m| m < NOFILE) {
        let raised = rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: nofile.current,
                maximum: Some(NOFILE),
            },
        );
        if let Err(e) = raised {
            eprintln!(
                "NOTE cannot raise the hard RLIMIT_NOFILE from {:?} to {NOFILE} ({e}; no CAP_SYS_RESOURCE?): \
                 the daemon may run out of descriptors before 10,000 probes",
                nofile.maximum
            );
        }
    }
    let load_start = loadavg();
    let started = Instant::now();
    let triggers = if cfg.runs("trigger") {
        trigger_rounds(&cfg)
    } else {
        Triggers::empty(cfg.gaps.len())
    };
    let mut layouts = Vec::new();
    for (name, jails) in [
        ("one jail", 1),
        (&*format!("{} jails", cfg.spread_jails), cfg.spread_jails),
    ] {
        if !cfg.runs("scale") {
            break;
        }
        layouts.push(support::scale::run_layout(&Plan {
            name,
            jails,
            sizes: &cfg.sizes,
            clients: cfg.clients,
            trigger_samples: cfg.scale_samples,
        }));
    }
    let engine = cfg.runs("engine").then(|| {
        let (probes, samples, hung) = if cfg.smoke {
            (100, 1, 5)
        } else {
            (10_000, 3, 40)
        };
        Engine {
            declared: support::declared::run(probes, samples),
            hung: support::declared::run_hung(hung),
        }
    });
    let fleets = if cfg.runs("fleets") {
        let samples = if cfg.smoke { 2 } else { 10 };
        let measured = support::fleets::run(samples);
        if measured.is_none() {
            skipped("the restarted container rows: no Docker daemon answers (docker.io)");
        }
        measured
    } else {
        None
    };
    let load_end = loadavg();
    let text = report(
        &cfg,
        &triggers,
        &layouts,
        engine.as_ref(),
        fleets.as_ref(),
        [&load_start, &load_end],
        started.elapsed(),
    );
    println!("{text}");
    if let Some(dir) = cfg.out.parent() {
        fs::create_dir_all(dir).expect("output directory");
    }
    fs::write(&cfg.out, text).expect("write the report");
    let raw = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-raw.csv");
    let mut csv = String::from("mechanism,gap_ms,round,latency_us\n");
    for (m, gap, round, us) in &triggers.raw {
        let _ = writeln!(csv, "{},{},{round},{us:.1}", m.name(), gap.as_millis());
    }
    if fs::write(&raw, csv).is_ok() {
        eprintln!("raw trigger samples in {}", raw.display());
    }
    eprintln!("written to {}", cfg.out.display());
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "—".into()
    }
}

/// Whole microseconds, or "—" for a row that did not run.
fn us(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0}")
    } else {
        "—".into()
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn gap_name(gap: Duration) -> String {
    if gap.is_zero() {
        "back-to-back (no idle gap)".into()
    } else {
        format!("{} ms idle before each trigger", gap.as_millis())
    }
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim())
        })
        .unwrap_or("?");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = support::meminfo().get("MemTotal").copied().unwrap_or(0) / 1024 / 1024;
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    let commit = version_of(&[
        "git",
        "-C",
        env!("CARGO_MANIFEST_DIR"),
        "rev-parse",
        "--short",
        "HEAD",
    ]);
    let dirty = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "status",
            "--porcelain",
            "--",
            "src",
            "probe",
        ])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    format!(
        "- Machine: {cpus} × {model}, {mem} GiB RAM; Linux {kernel} ({kver}); Debian {debian}; pid_max {pid_max}; \
         RLIMIT_NOFILE of the daemon {soft:?}/{hard:?} (soft/hard; the daemon raises soft to hard).\n\
         - Versions: jaildaemon {version} at {commit}{dirty}; {rustc}; /bin/sh = dash {dash}; {glibc}; \
         webhook {webhook}; inotifywait {inotify}.\n",
        kernel = read("/proc/sys/kernel/osrelease"),
        kver = read("/proc/sys/kernel/version"),
        debian = read("/etc/debian_version"),
        pid_max = read("/proc/sys/kernel/pid_max"),
        soft = nofile.current.unwrap_or(0),
        hard = nofile.maximum.unwrap_or(0),
        version = env!("CARGO_PKG_VERSION"),
        dirty = if dirty {
            " (with uncommitted changes in src/)"
        } else {
            ""
        },
        rustc = version_of(&["rustc", "--version"]),
        dash = version_of(&["dpkg-query", "-W", "-f", "${Version}", "dash"]),
        glibc = version_of(&["ldd", "--version"]),
        webhook = if support::installed("webhook") {
            version_of(&["webhook", "-version"]).replace("webhook version ", "")
        } else {
            "not installed".into()
        },
        inotify = if support::installed("inotifywait") {
            version_of(&["inotifywait", "--help"]).replace("inotifywait ", "")
        } else {
            "not installed".into()
        },
    )
}

/// The engine's rows (issue 12): arming at start, and a trigger while a lookup hangs.
struct Engine {
    declared: support::declared::Declared,
    hung: Option<support::declared::Hung>,
}

fn report(
    cfg: &Config,
    t: &Triggers,
    layouts: &[Layout],
    engine: Option<&Engine>,
    fleets: Option<&support::fleets::Fleets>,
    // The load average at the start and at the end.
    load: [&str; 2],
    wall: Duration,
) -> String {
    let mut o = String::new();
    let title = if cfg.smoke {
        "# Benchmarks (SMOKE RUN: tiny n, numbers meaningless)"
    } else {
        "# Benchmarks"
    };
    let n = cfg.rounds * cfg.samples;
    let _ = write!(
        o,
        "{title}\n\n\
         Made by `sudo cargo bench --bench trigger` in {wall:.0} s: {rounds} interleaved rounds; in each, for each idle \
         gap, {samples} samples of every mechanism in rotating order (n = {n} per row and gap). \
         Load average (1/5/15 min) at start {load_start}, at end {load_end}.\n\n{machine}\n",
        load_start = load[0],
        load_end = load[1],
        wall = wall.as_secs_f64(),
        rounds = cfg.rounds,
        samples = cfg.samples,
        machine = machine(),
    );

    // Targets.
    let jd = Mech::Jaildaemon as usize;
    let fl = Mech::Floor as usize;
    let wh = Mech::Webhook as usize;
    let _ = writeln!(
        o,
        "## Targets (issue 8)\n\n| target | measured | verdict |\n|---|---|---|"
    );
    for (g, &gap) in cfg.gaps.iter().enumerate() {
        let s = &t.latency[g];
        let gname = gap_name(gap);
        for (q, qname) in [(0.5, "median"), (0.99, "p99")] {
            let j = s[jd].quantile(q);
            for (what, other, bound) in [("floor", fl, 1.10), ("webhook", wh, 0.85)] {
                let x = s[other].quantile(q);
                let _ = writeln!(
                    o,
                    "| trigger {qname} ≤ {bound:.2} × {what}, {gname} | {} µs vs {} µs: {} × | {} |",
                    us(j),
                    us(x),
                    ratio(j, x),
                    verdict((j.is_finite() && x.is_finite()).then_some(j <= bound * x)),
                );
            }
        }
    }
    // A command without shell syntax runs without a shell (issue 23).
    let direct = Mech::Direct as usize;
    for (g, &gap) in cfg.gaps.iter().enumerate() {
        let s = &t.latency[g];
        for (q, qname) in [(0.5, "median"), (0.99, "p99")] {
            let (d, x) = (s[direct].quantile(q), s[fl].quantile(q));
            let _ = writeln!(
                o,
                "| trigger of a program without a shell, {qname} ≤ 1.00 × floor (whose `sh -c` runs a builtin), {} | {} µs vs {} µs: {} × | {} |",
                gap_name(gap),
                us(d),
                us(x),
                ratio(d, x),
                verdict((d.is_finite() && x.is_finite()).then_some(d <= x)),
            );
        }
    }
    for l in layouts {
        let all_in: Vec<(usize, f64)> = l.rows.iter().map(|r| (r.armed, all_in(r))).collect();
        let worst = all_in.iter().map(|x| x.1).fold(f64::NAN, f64::max);
        let list = all_in
            .iter()
            .map(|(a, k)| format!("{k:.1} KiB at {a}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "| idle probe ≤ 50 KiB all-in, {} | {list} | {} |",
            l.name,
            verdict(worst.is_finite().then_some(worst <= 50.0)),
        );
        // Flat: from 100 probes up; at 1 probe the daemon's own one-off growth dominates.
        let flat = all_in
            .iter()
            .filter(|(a, _)| *a >= 100)
            .map(|x| x.1)
            .collect::<Vec<_>>();
        let (lo, hi) = flat
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        let _ = writeln!(
            o,
            "| idle probe flat from 100 up (max ÷ min ≤ 1.25), {} | {} | {} |",
            l.name,
            ratio(hi, lo),
            verdict((flat.len() >= 2).then_some(hi <= 1.25 * lo)),
        );
        // Issue 23: at the most probes, against as many of the smallest static process.
        if let Some((r, (u, k))) = l.rows.iter().rev().find_map(|r| Some((r, r.floor_memcg?))) {
            let probe = self::all_in(r);
            let _ = writeln!(
                o,
                "| idle probe ≤ 0.85 × the smallest exec'd static process (memcg user + kernel), {} | {probe:.1} KiB vs {:.1} KiB at {}: {} × | {} |",
                l.name,
                u + k,
                r.armed,
                ratio(probe, u + k),
                verdict(Some(probe <= 0.85 * (u + k))),
            );
        }
    }
    let largest = *cfg.sizes.last().unwrap_or(&0);
    // Where arming stopped short of the largest size, a figure already over its target at
    // fewer probes is a miss; the arming target is missed outright.
    let short = |l: &Layout| {
        let armed = l.rows.last().map_or(0, |r| r.armed);
        (armed < largest).then(|| format!(" ({armed} armed: arming stopped)"))
    };
    if let Some(l) = layouts.first() {
        let secs = l.arm_total().as_secs_f64();
        let _ = writeln!(
            o,
            "| {largest} probes armed in < 2 s ({}) | {secs:.2} s{} | {} |",
            l.name,
            short(l).unwrap_or_default(),
            verdict(Some(short(l).is_none() && secs < 2.0)),
        );
    }
    for l in layouts {
        let rss = l.rows.last().map_or(0, |r| r.daemon_rss);
        let over = rss >= 8 * 1024;
        let _ = writeln!(
            o,
            "| daemon RSS < 8 MiB with {largest} armed, {} | {:.1} MiB{} | {} |",
            l.name,
            rss as f64 / 1024.0,
            short(l).unwrap_or_default(),
            verdict((short(l).is_none() || over).then_some(!over)),
        );
    }
    let u = t.utility.median();
    let _ = writeln!(
        o,
        "| utility round trip median < 2 ms | {:.2} ms | {} |",
        u / 1e3,
        verdict(u.is_finite().then_some(u < 2000.0)),
    );
    let r = t.loop_ratio.median();
    let _ = writeln!(
        o,
        "| utility round trip ≤ 2.0 × `/bin/true`, bash loops of {} side by side (issue 23) | \
         {:.0} µs vs {:.0} µs per iteration: {r:.2} × (median of {} pairs; {:.2}–{:.2}) | {} |\n",
        t.loop_length,
        t.loop_arm.median(),
        t.loop_true.median(),
        t.loop_ratio.n(),
        t.loop_ratio.quantile(0.0),
        t.loop_ratio.quantile(1.0),
        verdict(r.is_finite().then_some(r <= 2.0)),
    );

    if let Some(f) = fleets {
        fleets_report(&mut o, f);
    }
    if let Some(e) = engine {
        engine_report(&mut o, e);
    }

    // Trigger latency.
    let _ = writeln!(
        o,
        "## Trigger latency\n\n\
         From the trigger system call issued inside the jail (SIGHUP to the probe; utimensat of the watched file; \
         the write of the HTTP request) to the first byte that `sh -c 'printf x > FIFO'` writes on the host. \
         Microseconds; ratios of medians and of p99s to the floor and to webhook of the same rounds.\n"
    );
    for (g, &gap) in cfg.gaps.iter().enumerate() {
        let s = &t.latency[g];
        let _ = writeln!(
            o,
            "### {}\n\n| what | n | median / p90 / p99 | ÷ floor (median, p99) | ÷ webhook (median, p99) |\n|---|---|---|---|---|",
            gap_name(gap)
        );
        for &m in &t.mechanisms {
            let x = &s[m as usize];
            let _ = writeln!(
                o,
                "| {} | {} | {} | {}, {} | {}, {} |",
                describe(m),
                x.n(),
                x.triple(),
                ratio(x.median(), s[fl].median()),
                ratio(x.p99(), s[fl].p99()),
                ratio(x.median(), s[wh].median()),
                ratio(x.p99(), s[wh].p99()),
            );
        }
        if t.webhook_response[g].n() > 0 {
            let _ = writeln!(
                o,
                "| (webhook's HTTP response alone, at the client; it answers before the command runs) | {} | {} | | |",
                t.webhook_response[g].n(),
                t.webhook_response[g].triple()
            );
        }
        o.push('\n');
    }
    for &m in [Mech::Webhook, Mech::Inotify].iter() {
        if !t.mechanisms.contains(&m) {
            let _ = writeln!(o, "SKIPPED: {} (not installed).\n", m.name());
        }
    }

    // Trigger latency against the number of armed probes.
    let _ = writeln!(
        o,
        "### With idle probes armed in the same daemon\n\n\
         A `-r` probe in a jail of its own, triggered while the daemon holds N idle probes in other jails; \
         5 ms idle before each trigger; jaildaemon, the floor, and the floor holding as many (close-on-exec) \
         descriptors as the daemon then has, in rotating order.\n\n\
         | layout | idle probes | n | jaildaemon median / p90 / p99 | floor | floor with the daemon's descriptors (how many) | jaildaemon ÷ floor (median, p99) | jaildaemon ÷ floor with descriptors (median, p99) |\n|---|---|---|---|---|---|---|---|"
    );
    for l in layouts {
        for r in &l.rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} ({}) | {}, {} | {}, {} |",
                l.name,
                r.armed,
                r.trigger.n(),
                r.trigger.triple(),
                r.floor.triple(),
                r.fat_floor.triple(),
                r.daemon_fds,
                ratio(r.trigger.median(), r.floor.median()),
                ratio(r.trigger.p99(), r.floor.p99()),
                ratio(r.trigger.median(), r.fat_floor.median()),
                ratio(r.trigger.p99(), r.fat_floor.p99()),
            );
        }
    }

    // Memory.
    let _ = writeln!(
        o,
        "\n## Idle probe cost\n\n\
         Per probe, KiB. USS, PSS and page tables (VmPTE) are means over up to 1,000 probes read from \
         /proc/PID/smaps_rollup and /proc/PID/status. The /proc/meminfo columns are machine-wide deltas \
         since before the first probe, divided by the number of probes: other work on the machine moves them, \
         so they mean little below 1,000 probes. The memcg columns are what was charged to a memory cgroup \
         holding only the daemon and the jails (user anon pages; kernel memory: stacks, page tables, slab), \
         divided by the number of probes; they include the daemon's own growth. \
         \"all-in\" is memcg user + kernel where the cgroup could be used, else USS + KernelStack + PageTables + Slab. \
         The floor, measured right after the probes in the same jails: as many copies of the smallest exec'd static \
         process (a freestanding static executable that only waits for a signal, built with `cc -static -nostdlib`), \
         started in a memory cgroup of their own, memcg user + kernel per process.\n\n\
         | layout | probes | USS | PSS | VmPTE | probe's fd table (slots) | MemAvailable drop | KernelStack | PageTables | Slab | memcg user + kernel | all-in | floor: smallest static process, memcg user + kernel | all-in ÷ floor | daemon RSS (of it anonymous) / PSS (KiB) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for l in layouts {
        for r in &l.rows {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {} | {} | {} ({}) / {} |",
                l.name,
                r.armed,
                r.probe.uss,
                r.probe.pss,
                r.probe.pte,
                r.probe.fd_slots,
                r.avail,
                r.kstack,
                r.ptables,
                r.slab,
                r.memcg
                    .map_or("—".into(), |(u, k)| format!("{u:.1} + {k:.1}")),
                all_in(r),
                r.floor_memcg
                    .map_or("—".into(), |(u, k)| format!("{u:.1} + {k:.1}")),
                r.floor_memcg
                    .map_or("—".into(), |(u, k)| format!("{:.2}", all_in(r) / (u + k))),
                r.daemon_rss,
                r.daemon_anon,
                r.daemon_pss,
            );
        }
    }

    // Arming.
    let _ = writeln!(
        o,
        "\n## Arming\n\n| what | n | median / p90 / p99 (µs) |\n|---|---|---|\n\
         | utility round trip: `jaildaemon -c … -j … -t …` until it exits 0 (probe confirmed in the jail) | {} | {} |\n\
         | the same request from an in-process client (socket + daemon, no utility process) | {} | {} |\n\
         | utility process start alone (`jaildaemon -V`) | {} | {} |\n\
         | a bash loop of {} utility round trips, per iteration (issue 23's measure) | {} | {} |\n\
         | a bash loop of as many `/bin/true`, per iteration, in pairs with the one above | {} | {} |\n",
        t.utility.n(),
        t.utility.triple(),
        t.socket.n(),
        t.socket.triple(),
        t.start.n(),
        t.start.triple(),
        t.loop_length,
        t.loop_arm.n(),
        t.loop_arm.triple(),
        t.loop_true.n(),
        t.loop_true.triple(),
    );
    let _ = writeln!(
        o,
        "Many probes: armed over the socket by {} concurrent in-process clients (`jaildaemon::client::ask`, \
         one connection per probe; the daemon serves one request at a time), idle probes in the layout's jails \
         round-robin. Torn down by SIGTERM to the daemon, until it has killed and reaped every probe and exited.\n\n\
         | layout | step | probes armed in the step | time (s) | µs per probe |\n|---|---|---|---|---|",
        layouts.first().map_or(0, |l| l.clients)
    );
    for l in layouts {
        let mut before = 0;
        for r in &l.rows {
            let _ = writeln!(
                o,
                "| {} | {before} → {} | {} | {:.3} | {:.0} |",
                l.name,
                r.armed,
                r.step_probes,
                r.step.as_secs_f64(),
                r.step.as_secs_f64() * 1e6 / r.step_probes.max(1) as f64,
            );
            before = r.armed;
        }
        let _ = writeln!(
            o,
            "| {} | all {before}: arm | | {:.3} | {:.0} |\n| {} | all {before}: teardown (SIGTERM → daemon gone) | | {:.3} | {:.0} |",
            l.name,
            l.arm_total().as_secs_f64(),
            l.arm_total().as_secs_f64() * 1e6 / before.max(1) as f64,
            l.name,
            l.teardown.as_secs_f64(),
            l.teardown.as_secs_f64() * 1e6 / before.max(1) as f64,
        );
    }
    for l in layouts {
        if let Some(why) = &l.refused {
            let _ = writeln!(o, "\n**{}: arming stopped**: {why}", l.name);
        }
    }
    let _ = writeln!(o, "\n{}", METHOD);
    if !cfg.smoke {
        o.push_str(
            &fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/notes.md"))
                .unwrap_or_default(),
        );
    }
    o
}

/// All-in per probe, KiB: memcg user + kernel when measured, else USS + kernel deltas.
fn all_in(r: &support::scale::Row) -> f64 {
    match r.memcg {
        Some((u, k)) => u + k,
        None => r.probe.uss as f64 + r.kstack + r.ptables + r.slab,
    }
}

fn describe(m: Mech) -> &'static str {
    match m {
        Mech::Jaildaemon => {
            "**jaildaemon**: in-jail `kill(probe, SIGHUP)` → daemon → `sh -c` → byte"
        }
        Mech::Floor => {
            "floor: same probe, same jail; a bare program waits for it and posix_spawns `sh -c`"
        }
        Mech::Webhook => "webhook: keep-alive HTTP POST on 127.0.0.1 → hook → `/bin/sh -c` → byte",
        Mech::FatFloor => "floor holding as many descriptors as the daemon",
        Mech::Direct => {
            "**jaildaemon, no shell**: in-jail `kill(probe, SIGHUP)` → daemon → `busybox cp FILE FIFO` exec'd directly → byte"
        }
        Mech::Inotify => {
            "inotify: in-jail `utimensat(file)` → `inotifywait -m \\| while read` → `sh -c` → byte"
        }
    }
}

const METHOD: &str = "## Method

- **Jail**: `unshare --pid --mount --uts --ipc --net --fork --mount-proc sleep` (as the tests make them), in the \
bench's own cgroups.
- **Trigger**: a sender (this bench binary, `--jd-sender`) is started once in the jail with `nsenter -a` and kept \
running; the host commands it over a pipe, so its start-up is never timed. Before the clock starts it finds the \
probe by title in the jail's /proc (as `pkill -f` would); it takes CLOCK_MONOTONIC right before `kill`, \
`utimensat` or the HTTP write and sends that timestamp back. The host takes the clock right after reading the \
first byte from the FIFO, which it opened (non-blocking) before the trigger. Jails have no time namespace, so \
both clocks are the same.
- **Floor** (`--jd-floor`): forks a helper that joins the jail's pid, mount, net, uts and ipc namespaces with one \
`setns` and clones the probe as the floor's own child; the probe is the daemon's probe image exec'd from a memfd. \
The floor waits with `waitpid`, posix_spawns `/bin/sh -c CMD` with the daemon's PATH, and re-arms after the \
command ends (like `-r`). It skips what the daemon does for safety: capabilities, ids, chroot, no_new_privs, \
cgroups, the socket.
- **webhook**: `webhook -hooks hooks.json -ip 127.0.0.1`, hook `bench` = `/bin/sh -c CMD`. The client is a second \
sender in the jail's pid, mount, uts and ipc namespaces but the host's network namespace (the jail's own has \
only a downed loopback): a raw HTTP/1.1 keep-alive connection over std TcpStream with TCP_NODELAY, one \
`POST /hooks/bench` per trigger. This is webhook's best case: a real container would come through a veth \
and a bridge.
- **inotify**: `inotifywait -m -e attrib FILE | while read -r _; do /bin/sh -c CMD; done`; the in-jail sender \
touches FILE (the jail's mount namespace sees the same file).
- **Idle gaps**: every mechanism is measured back-to-back and with an idle gap before each trigger, in the \
same rounds; a real trigger is a rare event, and an idle two-vCPU VM wakes slowly.
- Quantiles are nearest-rank. The first trigger of each mechanism and the first arming are warm-up and not recorded.
";

/// The engine's rows: arming at start beside a serial floor, and a trigger while a container
/// name's lookup hangs beside the same trigger with none.
fn engine_report(o: &mut String, e: &Engine) {
    let d = &e.declared;
    let _ = writeln!(
        o,
        "## Arming at start, and a trigger while a lookup hangs (issue 12)\n\n\
         {n} probes declared in the configuration file for one jail: milliseconds from the daemon's start \
         to its READY=1 (sd_notify), beside a serial floor of the same run, interleaved: one process \
         that joins the jail and starts {n} minimal processes there (`{exec}`), one after the other, \
         each waited for.\n\n\
         | what | n | median / p90 / p99 (ms) | ÷ floor (median) | verdict |\n|---|---|---|---|---|\n\
         | {n} declared probes armed, start to READY | {rn} | {r} | {ratio} | {verdict} (< 2 s) |\n\
         | {n} probes armed by request, {clients} clients at once, first request to last answer | {qn} | {q} | {qratio} | {qverdict} (≤ 2.00 × declared: {qdeclared} ×) |\n\
         | serial floor: {n} minimal processes in the jail | {fn_} | {f} | 1.00 | |\n",
        clients = support::declared::CLIENTS,
        qn = d.requested.n(),
        q = ms_triple(&d.requested),
        qratio = ratio(d.requested.median(), d.floor.median()),
        qdeclared = ratio(d.requested.median(), d.ready.median()),
        qverdict = verdict(
            (d.requested.n() > 0 && d.ready.n() > 0)
                .then_some(d.requested.median() <= 2.0 * d.ready.median())
        ),
        n = d.probes,
        exec = d.floor_exec,
        rn = d.ready.n(),
        r = ms_triple(&d.ready),
        ratio = ratio(d.ready.median(), d.floor.median()),
        verdict =
            verdict((d.probes >= 10_000 && d.ready.n() > 0).then_some(d.ready.median() < 2000.0)),
        fn_ = d.floor.n(),
        f = ms_triple(&d.floor),
    );
    match &e.hung {
        None => {
            let _ = writeln!(
                o,
                "SKIPPED: the trigger while a lookup hangs (no lxc-info).\n"
            );
        }
        Some(h) => {
            let lookups: Vec<String> = h
                .lookups
                .iter()
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .collect();
            let _ = writeln!(
                o,
                "A `-r` probe triggered from inside its jail (SIGHUP to the first byte its command writes), \
                 on one daemon, in rounds: with no lookup in flight, then while a bare container name is \
                 looked up and LXC's tool (in the daemon's own mount namespace) never answers. Microseconds. \
                 The lookups took {}.\n\n\
                 | what | n | median / p90 / p99 (µs) | ÷ idle (median, p99) |\n|---|---|---|---|\n\
                 | trigger, no lookup in flight | {} | {} | 1.00, 1.00 |\n\
                 | trigger while a lookup hangs | {} | {} | {}, {} |\n",
                lookups.join(", "),
                h.idle.n(),
                h.idle.triple(),
                h.hung.n(),
                h.hung.triple(),
                ratio(h.hung.median(), h.idle.median()),
                ratio(h.hung.p99(), h.idle.p99()),
            );
        }
    }
}

/// The restarted container's rows (issue 24): events against polling, side by side.
fn fleets_report(o: &mut String, f: &support::fleets::Fleets) {
    let _ = writeln!(
        o,
        "## A restarted container waits for its probe: events vs polling (issue 24)\n\n\
         A Docker container that a `docker:label=` selector matches is restarted (`docker restart -t 0`); \
         milliseconds from the restart's return until the probe runs in the container's new run, on a \
         daemon that follows Docker's event stream, and on one with the streams off \
         (`JAILDAEMON_EVENT_STREAMS=off`: today's polling, the waiting probe's 5 s look), interleaved.\n\n\
         | what | n | median / p90 / p99 (ms) | ÷ polling (median) |\n|---|---|---|---|\n\
         | restarted container waits for its probe: events | {} | {} | {} |\n\
         | restarted container waits for its probe: polling | {} | {} | 1.00 |\n",
        f.events.n(),
        ms_triple(&f.events),
        ratio(f.events.median(), f.polling.median()),
        f.polling.n(),
        ms_triple(&f.polling),
    );
}

/// "median / p90 / p99" of samples kept in milliseconds.
fn ms_triple(s: &Stats) -> String {
    if s.n() == 0 {
        return "—".into();
    }
    format!(
        "{:.0} / {:.0} / {:.0}",
        s.quantile(0.5),
        s.quantile(0.9),
        s.quantile(0.99)
    )
}
