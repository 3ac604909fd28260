//! The one place the pipeline is built from a [`Config`]: configuration file, engine, models,
//! threat-intelligence feeds, [`Detector`] and [`AlertSink`], and the run of captures through
//! them on two threads. `botd analyze`, `botd report` and `botd run` (start-up and SIGHUP) all
//! build theirs here, so the offline and live paths cannot drift apart; none of those three
//! modules imports another.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::{AlertSettings, AlertSink};
use crate::capture::MergedCapture;
use crate::config::{Cidr, Config, NetworkConfig};
use crate::detect::Detector;
use crate::engine::{Engine, FlowSink, WindowInfo};
use crate::flow::{CloseReason, Flow};
use crate::intel::IntelSet;
use crate::model::Model;
use crate::relay;

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

/// The threat-intelligence feeds of `[intel] dir` (`None` when off); a broken feed is an error
/// naming the file and line, and the caller keeps what it had.
pub fn load_intel(cfg: &Config) -> Result<Option<Arc<IntelSet>>, String> {
    let Some(dir) = cfg.intel.dir() else {
        return Ok(None);
    };
    let limits = crate::intel::IntelLimits {
        max_entries: cfg.intel.max_entries,
        max_feeds: cfg.intel.max_feeds,
    };
    let (set, _reports) = IntelSet::load_dir(dir, &limits).map_err(|e| format!("intel: {e}"))?;
    Ok(Some(Arc::new(set)))
}

/// The engine `[flows]` describes.
pub fn engine(cfg: &Config) -> Engine {
    Engine::new(cfg.engine_config())
}

/// The detector for `cfg`'s windows and rules, watching `home` (the configuration's, or a
/// command line's / truth file's override), with the score cache sized to the flow table.
pub fn detector(
    cfg: &Config,
    home: NetworkConfig,
    models: Arc<Vec<Model>>,
    intel: Option<Arc<IntelSet>>,
) -> Detector {
    let e = cfg.engine_config();
    let concurrent = e.window.map_or(1, |w| w.concurrent());
    // Flows repeated by the window overlap reuse their scores (same results, crate::scoring).
    Detector::new(models, home, cfg.scoring.clone(), concurrent)
        .with_score_cache(e.flow_capacity)
        .with_rules(cfg.rules.clone(), intel)
}

/// How `[alerts]` (and `[sensor]`) say alerts are delivered; the configuration's values were
/// checked when it was parsed, so nothing is parsed again here.
pub fn alert_settings(cfg: &Config) -> AlertSettings {
    use crate::alert::{Format, SyslogTarget};
    use crate::config::{SyslogFormat, SyslogTarget as Target};
    let a = &cfg.alerts;
    // The delivery side keeps `host:port` as one string (brackets around IPv6 included).
    let host_port = |host: &str, port: u16| {
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    };
    let syslog = a.syslog.then(|| match &a.syslog_target {
        Target::Unix(p) => SyslogTarget::Unix(p.clone()),
        Target::Udp { host, port } => SyslogTarget::Udp(host_port(host, *port)),
        Target::Tcp { host, port } => SyslogTarget::Tcp(host_port(host, *port)),
    });
    AlertSettings {
        syslog,
        format: match a.syslog_format {
            SyslogFormat::Rfc5424 => Format::Rfc5424,
            SyslogFormat::Rfc3164 => Format::Rfc3164,
            SyslogFormat::Eve => Format::Eve,
        },
        facility: facility(a.facility),
        app_name: a.app_name.clone(),
        queue_capacity: a.queue_capacity,
        rate_limit_ns: a.rate_limit_secs.saturating_mul(1_000_000_000),
        json_file: a.json_file().map(Path::to_path_buf),
        sensor: cfg.sensor.resolved_name(),
        enterprise_number: a.enterprise_number,
        community_id_seed: cfg.sensor.community_id_seed,
        ..AlertSettings::default()
    }
}

fn facility(f: crate::config::Facility) -> syslog::Facility {
    use crate::config::Facility as F;
    use syslog::Facility as S;
    match f {
        F::Kern => S::LOG_KERN,
        F::User => S::LOG_USER,
        F::Mail => S::LOG_MAIL,
        F::Daemon => S::LOG_DAEMON,
        F::Auth => S::LOG_AUTH,
        F::Syslog => S::LOG_SYSLOG,
        F::Lpr => S::LOG_LPR,
        F::News => S::LOG_NEWS,
        F::Uucp => S::LOG_UUCP,
        F::Cron => S::LOG_CRON,
        F::Authpriv => S::LOG_AUTHPRIV,
        F::Ftp => S::LOG_FTP,
        F::Local0 => S::LOG_LOCAL0,
        F::Local1 => S::LOG_LOCAL1,
        F::Local2 => S::LOG_LOCAL2,
        F::Local3 => S::LOG_LOCAL3,
        F::Local4 => S::LOG_LOCAL4,
        F::Local5 => S::LOG_LOCAL5,
        F::Local6 => S::LOG_LOCAL6,
        F::Local7 => S::LOG_LOCAL7,
    }
}

/// The alert sink `[alerts]` describes, started.
pub fn alert_sink(cfg: &Config) -> Result<AlertSink, String> {
    AlertSink::start(alert_settings(cfg))
}

/// A sink that feeds the detector and sends the alerts of each window as it closes.
struct ToDetector<'a> {
    detector: &'a mut Detector,
    alerts: Option<&'a mut AlertSink>,
}

impl FlowSink for ToDetector<'_> {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.detector.flow(flow, reason, window);
    }
    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        self.detector.window_closed(window, flows);
        // Each alert goes at the end of its window, as the live sensor sends it.
        let alerts = self.detector.take_alerts();
        if let Some(sink) = self.alerts.as_deref_mut() {
            for a in alerts {
                let at = a.window_end_ns;
                sink.send(a, at);
            }
        }
    }
}

/// What one run of captures leaves: the detector (hosts), the engine (counters), and the
/// capture read error, if any, after which what was read is still reported.
pub struct RunResult {
    pub detector: Detector,
    pub engine: Engine,
    pub read_error: Option<String>,
}

/// The captures (one stream) through an engine and a detector built from `cfg` (watching
/// `home`); alerts go to `alerts` when given. Progress is drawn on stderr when it is a terminal.
pub fn run_captures(
    cfg: &Config,
    home: NetworkConfig,
    models: Arc<Vec<Model>>,
    captures: &[PathBuf],
    alerts: Option<&mut AlertSink>,
) -> Result<RunResult, String> {
    let mut engine = engine(cfg);
    let mut detector = detector(cfg, home, models, load_intel(cfg)?);
    let mut capture = MergedCapture::open(captures).map_err(|e| e.to_string())?;
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let mut sink = ToDetector {
        detector: &mut detector,
        alerts,
    };
    // The detector runs on a second thread, fed in order (crate::relay): same results as inline.
    // Batches in flight: room for a full flow table's records, so a small table (config/small.toml)
    // keeps the queue small too; the default table takes all MAX_BATCHES.
    let max_batches = cfg
        .engine_config()
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::alert::{Format, SyslogTarget, parse_facility};
    use crate::config::{Facility, SyslogFormat};

    /// The settings built from the parsed configuration are those its text would parse to (what
    /// `alert_sink` used to do, turning the configuration back into strings).
    #[test]
    fn alert_settings_agree_with_the_configuration_text() {
        let targets = [
            "unix:/dev/log",
            "udp:127.0.0.1:514",
            "tcp:loghost:601",
            "udp:[::1]:514",
            "tcp:[fe80::1]:6514",
        ];
        for t in targets {
            let mut cfg = Config::default();
            cfg.alerts.syslog_target = t.parse().unwrap();
            let s = alert_settings(&cfg);
            assert_eq!(s.syslog, Some(SyslogTarget::parse(t).unwrap()), "{t}");
        }
        for f in [
            SyslogFormat::Rfc5424,
            SyslogFormat::Rfc3164,
            SyslogFormat::Eve,
        ] {
            let mut cfg = Config::default();
            cfg.alerts.syslog_format = f;
            assert_eq!(
                alert_settings(&cfg).format,
                Format::parse(f.name()).unwrap()
            );
        }
        for f in Facility::ALL {
            let mut cfg = Config::default();
            cfg.alerts.facility = f;
            let got = alert_settings(&cfg).facility as u32;
            assert_eq!(
                got,
                parse_facility(f.name()).unwrap() as u32,
                "{}",
                f.name()
            );
            assert_eq!(got, u32::from(f.code()) << 3, "{}", f.name());
        }
        let mut cfg = Config::default();
        cfg.alerts.syslog = false;
        cfg.alerts.rate_limit_secs = 7;
        cfg.alerts.json_file = PathBuf::from("/tmp/x.json");
        let s = alert_settings(&cfg);
        assert_eq!(s.syslog, None);
        assert_eq!(s.rate_limit_ns, 7_000_000_000);
        assert_eq!(s.json_file, Some(PathBuf::from("/tmp/x.json")));
    }
}
