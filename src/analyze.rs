//! `botd analyze`: the whole pipeline on captures (flows, features, every model, host scores),
//! with a host table at the end, optional JSON, syslog alerts, and an evaluation against a truth
//! file in the format of `../shared/data/truth.toml`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::alert::{AlertSettings, AlertSink, Format, Level, SyslogTarget};
use crate::capture::MergedCapture;
use crate::config::{Cidr, Config, NetworkConfig};
use crate::detect::Detector;
use crate::engine::{Engine, FlowSink};
use crate::flow::{CloseReason, Flow};
use crate::host::HostState;
use crate::model::Model;
use crate::relay;

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

/// `--home` prefixes (comma-separated on the command line) as a home network.
pub fn parse_home(list: &[String]) -> Result<NetworkConfig, String> {
    let home = list
        .iter()
        .map(|s| {
            s.trim()
                .parse::<Cidr>()
                .map_err(|e| format!("--home {s}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NetworkConfig { home })
}

/// The configuration: `path`, else config/botd.toml when it exists, else the defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => {
            let p = Path::new(crate::config::DEFAULT_PATH);
            if p.exists() {
                Config::load(p).map_err(|e| e.to_string())
            } else {
                Ok(Config::default())
            }
        }
    }
}

/// The threat-intelligence feeds of `[intel] dir` (`None` when off); a broken feed is an error
/// naming the file and line, and the caller keeps what it had.
pub fn load_intel(cfg: &Config) -> Result<Option<std::sync::Arc<crate::intel::IntelSet>>, String> {
    let Some(dir) = cfg.intel.dir() else {
        return Ok(None);
    };
    let limits = crate::intel::IntelLimits {
        max_entries: cfg.intel.max_entries,
        max_feeds: cfg.intel.max_feeds,
    };
    let (set, _reports) =
        crate::intel::IntelSet::load_dir(dir, &limits).map_err(|e| format!("intel: {e}"))?;
    Ok(Some(std::sync::Arc::new(set)))
}

/// Loads every model of the folder; any invalid model stops the run with the file and reason.
pub fn load_models(dir: &Path) -> Result<Vec<Model>, String> {
    let mut models = Vec::new();
    for result in crate::model::load_dir(dir)? {
        models.push(result.map_err(|e| e.to_string())?);
    }
    if models.is_empty() {
        return Err(format!("{}: no *.onnx models", dir.display()));
    }
    Ok(models)
}

/// A sink that feeds the detector and shows progress on a terminal.
struct Progress<'a> {
    detector: &'a mut Detector,
    alerts: Option<&'a mut AlertSink>,
    clock_ns: u64,
}

impl FlowSink for Progress<'_> {
    fn flow(
        &mut self,
        flow: &Flow,
        reason: CloseReason,
        window: Option<&crate::engine::WindowInfo>,
    ) {
        self.clock_ns = self.clock_ns.max(flow.last_ns);
        self.detector.flow(flow, reason, window);
    }
    fn window_closed(&mut self, window: &crate::engine::WindowInfo, flows: u64) {
        self.detector.window_closed(window, flows);
        self.send_alerts();
    }
}

impl Progress<'_> {
    /// The alerts of the windows closed so far (with the scoring thread, a window's come once
    /// its flows are scored), each sent at the end of its window as the live sensor does.
    fn send_alerts(&mut self) {
        let alerts = self.detector.take_alerts();
        if let Some(sink) = self.alerts.as_deref_mut() {
            for a in alerts {
                let at = a.window_end_ns;
                sink.send(a, at);
            }
        }
    }
}

/// What one run of the pipeline leaves: the detector (hosts), the engine (counters), and the
/// capture read error, if any, after which what was read is still reported.
pub(crate) struct RunResult {
    pub detector: Detector,
    pub engine: Engine,
    pub read_error: Option<String>,
}

/// The captures (one stream) through engine and detector; alerts go to `alerts` when given.
pub(crate) fn run_pipeline(
    cfg: &Config,
    home: NetworkConfig,
    models: std::sync::Arc<Vec<Model>>,
    captures: &[PathBuf],
    alerts: Option<&mut AlertSink>,
) -> Result<RunResult, String> {
    let engine_cfg = cfg.engine_config();
    let concurrent = engine_cfg.window.map_or(1, |w| w.concurrent());
    let mut engine = Engine::new(engine_cfg.clone());
    // Flows repeated by the window overlap reuse their scores (same results, crate::scoring).
    let mut detector = Detector::new(models, home, cfg.scoring.clone(), concurrent)
        .with_score_cache(engine_cfg.window, engine_cfg.flow_capacity)
        .with_rules(cfg.rules.clone(), load_intel(cfg)?);
    let mut capture = MergedCapture::open(captures).map_err(|e| e.to_string())?;
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let mut sink = Progress {
        detector: &mut detector,
        alerts,
        clock_ns: 0,
    };
    // The detector runs on a second thread, fed in order (crate::relay): same results as inline.
    // Batches in flight: room for a full flow table's records, so a small table (config/small.toml)
    // keeps the queue small too; the default table takes all MAX_BATCHES.
    let max_batches = engine_cfg
        .flow_capacity
        .div_ceil(relay::BATCH)
        .clamp(2, relay::MAX_BATCHES);
    let read_error = relay::with_sink_thread(&mut sink, max_batches, |relay| {
        let read_error = loop {
            match capture.next_frame() {
                Ok(Some(f)) => {
                    // Deferred: the flow's memory is prefetched; same records and order as on_frame.
                    engine.on_frame_deferred(f.ts_ns, f.link, f.data, f.orig_len, relay);
                    if tty
                        && engine.counters.frames.is_multiple_of(65_536)
                        && last_draw.elapsed() > Duration::from_millis(250)
                    {
                        last_draw = Instant::now();
                        eprint!(
                            "\r\x1b[Kbotd: {} packets, {} flows, {} windows, {:.1} s",
                            engine.counters.frames,
                            engine.counters.flows,
                            engine.counters.windows_closed,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        engine.finish(relay);
        read_error
    })?;
    if tty {
        eprint!("\r\x1b[K");
    }
    for w in capture.stats().warnings {
        eprintln!("botd: warning: {w}");
    }
    Ok(RunResult {
        detector,
        engine,
        read_error,
    })
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
        .or(h.changes.last());
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

/// One host as `botd analyze --json` (and the state file) show it; `capture` names the capture
/// when captures are judged apart.
pub fn host_json(h: &HostState, capture: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "address": h.addr.to_string(),
        "level": h.level.as_str(),
        "score": h.score,
        "was_red": h.was_red,
        "flagged_windows": h.flagged_windows,
        "windows": h.history,
        "evidence": h.changes,
    });
    if let (Some(d), Some(obj)) = (&h.device, v.as_object_mut()) {
        obj.insert("device".into(), serde_json::json!(d));
    }
    if let (Some(c), Some(obj)) = (capture, v.as_object_mut()) {
        obj.insert("capture".into(), c.into());
    }
    v
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
        "hosts_not_tracked": r.detector.scorer.hosts_dropped,
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

/// The alert sink `[alerts]` describes.
pub fn alert_sink(cfg: &Config) -> Result<AlertSink, String> {
    let a = &cfg.alerts;
    let settings = AlertSettings {
        syslog: if a.syslog {
            Some(SyslogTarget::parse(&a.syslog_target.to_string())?)
        } else {
            None
        },
        format: Format::parse(a.syslog_format.name())?,
        facility: crate::alert::parse_facility(a.facility.name())?,
        app_name: a.app_name.clone(),
        queue_capacity: a.queue_capacity,
        rate_limit_ns: a.rate_limit_secs.saturating_mul(1_000_000_000),
        json_file: a.json_file().map(Path::to_path_buf),
        sensor: cfg.sensor.resolved_name(),
        enterprise_number: a.enterprise_number,
        community_id_seed: cfg.sensor.community_id_seed,
        ..AlertSettings::default()
    };
    AlertSink::start(settings)
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
        let result = run_pipeline(&cfg, home, models.clone(), &captures, sink.as_mut())?;
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
            json_hosts.extend(hosts.iter().map(|h| host_json(h, capture_label)));
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
        let models_json: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "schema": m.schema.name, "threshold": m.threshold,
                    "path": m.path.display().to_string(),
                })
            })
            .collect();
        let counters = if json_counters.len() == 1 {
            json_counters.pop().unwrap_or_default()
        } else {
            serde_json::Value::Array(json_counters)
        };
        let sc = &cfg.scoring;
        let mut doc = serde_json::json!({
            "hosts": json_hosts,
            "models": models_json,
            "counters": counters,
            "scoring": {
                "alpha": sc.alpha, "red": sc.red, "red_rising": sc.red_rising,
                "red_windows": sc.red_windows, "yellow_clear": sc.yellow_clear,
                "min_flows": sc.min_flows,
            },
        });
        if let Some(obj) = doc.as_object_mut() {
            if let Some(c) = &alert_counters {
                obj.insert(
                    "alerts".into(),
                    serde_json::json!({
                        "sent": c.sent, "dropped_queue_full": c.dropped_queue_full,
                        "suppressed_rate_limit": c.suppressed_rate_limit,
                        "send_errors": c.send_errors, "reconnects": c.reconnects,
                    }),
                );
            }
            if !evaluations.is_empty() {
                obj.insert(
                    "evaluation".into(),
                    serde_json::to_value(&evaluations).unwrap_or_default(),
                );
            }
        }
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
