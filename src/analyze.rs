//! `botd analyze`: the whole pipeline on captures (flows, features, every model, host scores),
//! with a host table at the end, optional JSON, syslog alerts, and an evaluation against a truth
//! file in the format of `../shared/data/truth.toml`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::alert::Level;
use crate::document::{Document, HostDoc, ModelDoc, ScoringDoc};
use crate::host::HostState;
use crate::pipeline::{RunResult, alert_sink, load_config, load_models, parse_home, run_captures};

#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// Configuration file (default: config/botd.toml when it exists, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Home network prefixes, comma-separated; overrides the configuration (and the truth file).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub home: Vec<String>,
    /// Models folder; overrides `[models] dir`.
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Write the hosts, their windows and evidence, and the run's counters as one JSON object.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Send alerts to syslog as configured in `[alerts]`.
    #[arg(long)]
    pub syslog: bool,
    /// Evaluate against a truth file: each capture is analysed on its own and host-level detection
    /// is printed per capture and in total.
    #[arg(long, value_name = "TRUTH.toml")]
    pub truth: Option<PathBuf>,
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
}

/// One `[[capture]]` of a truth file.
#[derive(Clone, Debug, Deserialize)]
pub struct TruthEntry {
    pub path: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub home: Vec<String>,
    #[serde(default)]
    pub malicious: Vec<IpAddr>,
    #[serde(default)]
    pub ignore: Vec<IpAddr>,
}

#[derive(Debug, Deserialize)]
struct TruthFile {
    #[serde(default)]
    capture: Vec<TruthEntry>,
}

/// Kinds whose malicious hosts the detection target counts.
pub const TARGET_KINDS: [&str; 9] = [
    "botnet",
    "rat",
    "worm",
    "trojan",
    "ransomware",
    "beacon",
    "miner",
    "spam",
    "tunnel",
];

pub struct Truth {
    dir: PathBuf,
    entries: Vec<TruthEntry>,
}

impl Truth {
    pub fn load(path: &Path) -> Result<Truth, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: TruthFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Truth {
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            entries: file.capture,
        })
    }

    /// The entry for a capture file: same file as `dir/entry.path`.
    pub fn entry_for(&self, capture: &Path) -> Option<&TruthEntry> {
        let target = capture.canonicalize().ok()?;
        self.entries.iter().find(|e| {
            self.dir
                .join(&e.path)
                .canonicalize()
                .is_ok_and(|p| p == target)
        })
    }

    /// The capture's path relative to the truth file's folder, for display.
    fn relative(&self, capture: &Path) -> String {
        let dir = self.dir.canonicalize().unwrap_or_default();
        capture
            .canonicalize()
            .ok()
            .and_then(|p| p.strip_prefix(&dir).ok().map(|r| r.display().to_string()))
            .unwrap_or_else(|| capture.display().to_string())
    }
}

/// Detection of one capture against its truth.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Evaluation {
    pub capture: String,
    pub kind: String,
    pub malicious_total: usize,
    pub malicious_red: usize,
    pub malicious_missed: Vec<IpAddr>,
    pub benign_total: usize,
    pub benign_red: usize,
    pub benign_yellow_or_red: usize,
    pub benign_flagged: Vec<IpAddr>,
}

fn colour(level: Level, tty: bool) -> String {
    let name = level.as_str();
    if !tty {
        return name.to_string();
    }
    match level {
        Level::Red => format!("\x1b[1;31m{name}\x1b[0m"),
        Level::Yellow => format!("\x1b[1;33m{name}\x1b[0m"),
        Level::Clear => name.to_string(),
    }
}

/// The strongest evidence of a host: its most recent change to red, else its last change.
fn evidence_line(h: &HostState) -> String {
    let e = h
        .changes
        .iter()
        .rev()
        .find(|a| a.level == Level::Red)
        .or(h.changes.back());
    match e {
        None => "-".to_string(),
        Some(a) => {
            let peer = a
                .peers
                .first()
                .map(|p| format!(", top peer {}:{} ({} flows)", p.addr, p.port, p.flows))
                .unwrap_or_default();
            format!(
                "window {}: {}/{} flows botnet by {}{}",
                a.window,
                a.botnet_flows,
                a.flows,
                if a.models.is_empty() {
                    "-".to_string()
                } else {
                    a.models.join("+")
                },
                peer
            )
        }
    }
}

fn print_table(out: &mut impl Write, hosts: &[&HostState], tty: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<40} {:<7} {:>6} {:>8}  evidence",
        "host", "level", "score", "flagged"
    )?;
    for h in hosts {
        // Pad before colouring so the columns line up on a terminal too.
        let level = format!("{:<7}", h.level.as_str());
        let level = if tty {
            level.replace(h.level.as_str(), &colour(h.level, true))
        } else {
            level
        };
        writeln!(
            out,
            "{:<40} {} {:>6.3} {:>8}  {}",
            h.addr.to_string(),
            level,
            h.score,
            h.flagged_windows,
            evidence_line(h)
        )?;
    }
    Ok(())
}

fn counters_json(r: &RunResult) -> serde_json::Value {
    let c = &r.engine.counters;
    let t = r.engine.table_stats();
    let parse: serde_json::Map<String, serde_json::Value> = c
        .unparsed_by_reason()
        .map(|(e, n)| (e.name().to_string(), n.into()))
        .collect();
    serde_json::json!({
        "frames": c.frames,
        "packets": c.packets,
        "bytes": c.bytes,
        "not_parsed": parse,
        "out_of_order": c.out_of_order,
        "flows": c.flows,
        "windows": c.windows_closed,
        "flows_evicted": t.evicted,
        "flow_table_high_water": t.high_water,
        "detector": r.detector.counters,
        "hosts_not_tracked": r.detector.scorer.counters.hosts_refused,
        "dns_view": {
            "names": r.detector.dns.len(),
            "capacity": r.detector.dns.capacity(),
            "answers": r.detector.dns.counters.answers,
            "evicted": r.detector.dns.counters.evicted,
        },
        "devices": {
            "known": r.detector.devices.len(),
            "observations": r.detector.devices.counters.observations,
            "evicted": r.detector.devices.counters.evicted,
        },
        "intel_entries": r.detector.intel().map_or(0, |i| i.entries()),
    })
}

fn evaluate(truth_entry: Option<&TruthEntry>, name: String, hosts: &[&HostState]) -> Evaluation {
    let mut ev = Evaluation {
        capture: name,
        kind: truth_entry.map_or("benign".into(), |e| e.kind.clone()),
        ..Evaluation::default()
    };
    let malicious: &[IpAddr] = truth_entry.map_or(&[], |e| &e.malicious);
    let ignore: &[IpAddr] = truth_entry.map_or(&[], |e| &e.ignore);
    ev.malicious_total = malicious.len();
    for m in malicious {
        let red = hosts.iter().any(|h| h.addr == *m && h.was_red);
        if red {
            ev.malicious_red += 1;
        } else {
            ev.malicious_missed.push(*m);
        }
    }
    if ev.kind == "inbound-ddos" {
        return ev;
    }
    for h in hosts {
        if malicious.contains(&h.addr) || ignore.contains(&h.addr) {
            continue;
        }
        ev.benign_total += 1;
        if h.was_red {
            ev.benign_red += 1;
            ev.benign_flagged.push(h.addr);
        }
        if h.was_red || h.level != Level::Clear {
            ev.benign_yellow_or_red += 1;
        }
    }
    ev
}

pub fn analyze(args: AnalyzeArgs) -> Result<(), String> {
    let cfg = load_config(args.config.as_deref())?;
    let home_override = if args.home.is_empty() {
        None
    } else {
        Some(parse_home(&args.home)?)
    };
    let models_dir = args
        .models
        .clone()
        .unwrap_or_else(|| cfg.models.dir.clone());
    let models = std::sync::Arc::new(load_models(&models_dir)?);
    let mut sink = if args.syslog {
        Some(alert_sink(&cfg)?)
    } else {
        None
    };
    let tty = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let mut json_hosts = Vec::new();
    let mut json_counters = Vec::new();
    let mut evaluations = Vec::new();
    let mut read_errors = Vec::new();

    // Without a truth file the captures are one stream; with one, each is judged on its own.
    let runs: Vec<Vec<PathBuf>> = if args.truth.is_some() {
        args.captures.iter().map(|c| vec![c.clone()]).collect()
    } else {
        vec![args.captures.clone()]
    };
    let truth = args.truth.as_deref().map(Truth::load).transpose()?;
    for captures in runs {
        let first = captures.first().cloned().unwrap_or_default();
        let entry = truth.as_ref().and_then(|t| t.entry_for(&first));
        let home = match (&home_override, entry) {
            (Some(h), _) => h.clone(),
            (None, Some(e)) if !e.home.is_empty() => parse_home(&e.home)?,
            _ => cfg.network.clone(),
        };
        let result = run_captures(&cfg, home, models.clone(), &captures, sink.as_mut())?;
        if let Some(e) = &result.read_error {
            read_errors.push(e.clone());
        }
        let hosts = result.detector.scorer.hosts();
        let name = match &truth {
            Some(t) => t.relative(&first),
            None => captures
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        };
        if truth.is_some() {
            writeln!(stdout, "== {name}").map_err(|e| e.to_string())?;
        }
        print_table(&mut stdout, &hosts, tty).map_err(|e| e.to_string())?;
        let capture_label = truth.as_ref().map(|_| name.as_str());
        // Only for --json: with thousands of hosts and their histories it is not free.
        if args.json.is_some() {
            json_hosts.extend(hosts.iter().map(|h| HostDoc::of(h, capture_label)));
        }
        json_counters.push(counters_json(&result));
        if truth.is_some() {
            evaluations.push(evaluate(entry, name, &hosts));
        }
    }

    if !evaluations.is_empty() {
        print_evaluation(&mut stdout, &evaluations).map_err(|e| e.to_string())?;
    }
    let alert_counters = sink.map(|s| s.shutdown(Duration::from_secs(2)));
    if let Some(path) = &args.json {
        let counters = if json_counters.len() == 1 {
            json_counters.pop().unwrap_or_default()
        } else {
            serde_json::Value::Array(json_counters)
        };
        let doc = Document {
            hosts: json_hosts,
            models: ModelDoc::all(&models),
            counters,
            scoring: ScoringDoc::of(&cfg.scoring),
            alerts: alert_counters.map(|c| {
                serde_json::json!({
                    "sent": c.sent, "dropped_queue_full": c.dropped_queue_full,
                    "suppressed_rate_limit": c.suppressed_rate_limit,
                    "send_errors": c.send_errors, "reconnects": c.reconnects,
                })
            }),
            evaluation: (!evaluations.is_empty())
                .then(|| serde_json::to_value(&evaluations).unwrap_or_default()),
            source: None,
        };
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match read_errors.first() {
        Some(e) => Err(e.clone()),
        None => Ok(()),
    }
}

fn print_evaluation(out: &mut impl Write, evs: &[Evaluation]) -> std::io::Result<()> {
    writeln!(out, "\nhost-level detection (red at any time)")?;
    writeln!(
        out,
        "{:<70} {:<13} {:>10} {:>10}",
        "capture", "kind", "malicious", "benign"
    )?;
    let (mut mr, mut mt, mut br, mut bt, mut tr, mut tt) = (0, 0, 0, 0, 0, 0);
    for e in evs {
        writeln!(
            out,
            "{:<70} {:<13} {:>10} {:>10}",
            e.capture,
            e.kind,
            format!("{}/{}", e.malicious_red, e.malicious_total),
            format!("{}/{}", e.benign_red, e.benign_total)
        )?;
        mr += e.malicious_red;
        mt += e.malicious_total;
        br += e.benign_red;
        bt += e.benign_total;
        if TARGET_KINDS.contains(&e.kind.as_str()) {
            tr += e.malicious_red;
            tt += e.malicious_total;
        }
    }
    writeln!(
        out,
        "total: malicious red {mr}/{mt}; of kinds {}: {tr}/{tt}; benign red {br}/{bt}",
        TARGET_KINDS.join("/")
    )
}
