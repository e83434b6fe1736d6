//! Metrics in the Prometheus text format, for node_exporter's textfile collector: what the
//! daemon's probes and commands did. Pure: the core hands over a snapshot, the shell writes it.

use std::fmt::Write;
use std::time::Duration;

use crate::proto::ProbeState;

/// One probe as the metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeMetrics {
    pub id: u64,
    pub jail: String,
    pub title: String,
    pub state: ProbeState,
    pub fires: u64,
    pub timeouts: u64,
    /// Times its probe was stopped by a signal (SIGSTOP, SIGTSTP…) while armed.
    pub stops: u64,
    /// How its last command ended: its exit code, or 128 plus the signal that ended it.
    pub last_status: Option<i32>,
    pub last_duration: Option<Duration>,
}

/// Every state, in the order the metrics list them.
const STATES: [ProbeState; 8] = [
    ProbeState::Placing,
    ProbeState::Armed,
    ProbeState::Running,
    ProbeState::Cooling,
    ProbeState::Spent,
    ProbeState::Retrying,
    ProbeState::Waiting,
    ProbeState::Refused,
];

fn state_name(state: ProbeState) -> &'static str {
    match state {
        ProbeState::Placing => "placing",
        ProbeState::Armed => "armed",
        ProbeState::Running => "running",
        ProbeState::Cooling => "cooling",
        ProbeState::Spent => "spent",
        ProbeState::Retrying => "retrying",
        ProbeState::Waiting => "waiting",
        ProbeState::Refused => "refused",
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The whole file: per probe (labelled by id, jail and title) its fires, timeouts, state and
/// last command's status and duration; for the daemon, probes by state and commands running.
pub fn render(probes: &[ProbeMetrics], commands_running: usize) -> String {
    let mut out = String::new();
    let labels: Vec<String> = probes
        .iter()
        .map(|p| {
            format!(
                "id=\"{}\",jail=\"{}\",title=\"{}\"",
                p.id,
                escape(&p.jail),
                escape(&p.title)
            )
        })
        .collect();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "jaildaemon_probe_fires_total",
        "counter",
        "Times the probe fired since the daemon started.",
    );
    for (p, l) in probes.iter().zip(&labels) {
        let _ = writeln!(out, "jaildaemon_probe_fires_total{{{l}}} {}", p.fires);
    }
    family(
        &mut out,
        "jaildaemon_probe_timeouts_total",
        "counter",
        "Commands of the probe stopped at their timeout.",
    );
    for (p, l) in probes.iter().zip(&labels) {
        let _ = writeln!(out, "jaildaemon_probe_timeouts_total{{{l}}} {}", p.timeouts);
    }
    family(
        &mut out,
        "jaildaemon_probe_stops_total",
        "counter",
        "Times the probe was stopped by a signal while armed (it cannot fire while stopped).",
    );
    for (p, l) in probes.iter().zip(&labels) {
        let _ = writeln!(out, "jaildaemon_probe_stops_total{{{l}}} {}", p.stops);
    }
    family(
        &mut out,
        "jaildaemon_probe_last_exit_status",
        "gauge",
        "How the probe's last command ended: its exit code, or 128 plus the signal that ended it.",
    );
    for (p, l) in probes.iter().zip(&labels) {
        if let Some(status) = p.last_status {
            let _ = writeln!(out, "jaildaemon_probe_last_exit_status{{{l}}} {status}");
        }
    }
    family(
        &mut out,
        "jaildaemon_probe_last_duration_seconds",
        "gauge",
        "How long the probe's last command ran.",
    );
    for (p, l) in probes.iter().zip(&labels) {
        if let Some(took) = p.last_duration {
            let _ = writeln!(
                out,
                "jaildaemon_probe_last_duration_seconds{{{l}}} {:.3}",
                took.as_secs_f64()
            );
        }
    }
    family(
        &mut out,
        "jaildaemon_probe_state",
        "gauge",
        "The probe's state, as jaildaemon -l names it: 1 for the state it is in.",
    );
    for (p, l) in probes.iter().zip(&labels) {
        let _ = writeln!(
            out,
            "jaildaemon_probe_state{{{l},state=\"{}\"}} 1",
            state_name(p.state)
        );
    }
    family(
        &mut out,
        "jaildaemon_probes",
        "gauge",
        "Probes the daemon holds, by state.",
    );
    for state in STATES {
        let n = probes.iter().filter(|p| p.state == state).count();
        let _ = writeln!(
            out,
            "jaildaemon_probes{{state=\"{}\"}} {n}",
            state_name(state)
        );
    }
    family(
        &mut out,
        "jaildaemon_commands_running",
        "gauge",
        "Commands of probes running now.",
    );
    let _ = writeln!(out, "jaildaemon_commands_running {commands_running}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_absent_values_have_no_sample() {
        let probe = ProbeMetrics {
            id: 7,
            jail: "a\"b\\c".into(),
            title: "x\ny".into(),
            state: ProbeState::Armed,
            fires: 2,
            timeouts: 0,
            stops: 0,
            last_status: None,
            last_duration: None,
        };
        let text = render(&[probe], 1);
        assert!(
            text.contains(r#"jaildaemon_probe_fires_total{id="7",jail="a\"b\\c",title="x\ny"} 2"#),
            "{text}"
        );
        assert!(!text.contains("jaildaemon_probe_last_exit_status{"));
        assert!(text.contains("jaildaemon_probes{state=\"armed\"} 1"));
        assert!(text.contains("jaildaemon_probes{state=\"waiting\"} 0"));
        assert!(text.ends_with("jaildaemon_commands_running 1\n"));
    }
}
