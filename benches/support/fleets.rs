//! How long a restarted container waits for its probe (issue 24): a selector's member restarted
//! with `docker restart`, on a daemon that follows Docker's event stream beside one with the
//! streams off (`JAILDAEMON_EVENT_STREAMS=off`), which finds it by its 5 s look, interleaved.

use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::Stats;
use crate::util::images::docker_image;
use crate::util::{Daemon, TempDir, probes_in};

/// What the rows measured, in milliseconds.
pub struct Fleets {
    pub events: Stats,
    pub polling: Stats,
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn pid_of(name: &str) -> Option<u32> {
    docker(&["container", "inspect", "-f", "{{.State.Pid}}", name])?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// One daemon and its member container.
struct Side {
    name: String,
    title: String,
    daemon: Daemon,
    _dir: TempDir,
}

impl Side {
    fn start(what: &str, streams: bool) -> Option<Side> {
        let tag = format!("{}-{what}", std::process::id());
        let name = format!("jd-bench-fleet-{tag}");
        let label = format!("com.example.bench=fleet-{tag}");
        let title = format!("BENCH{}", what.to_uppercase());
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--label",
            &label,
            docker_image(),
            "sleep",
            "3600",
        ])?;
        let dir = TempDir::new();
        let config = dir.path("jaildaemon.conf");
        fs::write(
            &config,
            format!("[[probe]]\njail = \"docker:label={label}\"\ntitle = \"{title}\"\ncommand = 'true'\n"),
        )
        .ok()?;
        let wrapper: &[&str] = if streams {
            &[]
        } else {
            &["env", "JAILDAEMON_EVENT_STREAMS=off"]
        };
        let daemon = Daemon::launch(&dir, wrapper, &["-C", config.to_str()?]);
        let side = Side {
            name,
            title,
            daemon,
            _dir: dir,
        };
        side.back(Duration::from_secs(15))?;
        Some(side)
    }

    /// Waits until the probe is in the container's current run; how long that took.
    fn back(&self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(pid) = pid_of(&self.name)
                && probes_in(pid, &self.title).len() == 1
            {
                return Some(started.elapsed());
            }
            sleep(Duration::from_millis(2));
        }
        None
    }

    /// Restarts the container; milliseconds from `docker restart`'s return to the probe.
    fn restart(&self) -> Option<f64> {
        docker(&["restart", "-t", "0", &self.name])?;
        self.back(Duration::from_secs(40))
            .map(|d| d.as_secs_f64() * 1000.0)
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
        let _ = self.daemon.log_text();
    }
}

/// `samples` restarts on each side, alternating; `None` without a Docker daemon.
pub fn run(samples: usize) -> Option<Fleets> {
    docker(&["info"])?;
    let events = Side::start("events", true)?;
    let polling = Side::start("polling", false)?;
    let mut out = Fleets {
        events: Stats::default(),
        polling: Stats::default(),
    };
    for _ in 0..samples {
        out.events.push(events.restart()?);
        out.polling.push(polling.restart()?);
    }
    Some(out)
}
