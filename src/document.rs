//! The JSON document of a run's hosts, models and counters: what `botd analyze --json` writes,
//! what the live sensor writes to its state file, and what `botd report` renders. Built here
//! once so the three stay one shape.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde::Serialize;

use crate::alert::{Alert, Level};
use crate::config::ScoringConfig;
use crate::detect::Detector;
use crate::devices::DeviceInfo;
use crate::engine::{Engine, Totals};
use crate::host::{HistoryEntry, HostState};
use crate::model::Model;

/// The document: hosts with their windows and evidence, the models, the run's counters and the
/// scoring thresholds, plus what only some writers have (`analyze --json`: alert counters and
/// an evaluation; `report`: the source). Owned, so the live sensor hands it to the state writer
/// thread, which serialises it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Document {
    pub hosts: Vec<HostDoc>,
    pub models: Vec<ModelDoc>,
    /// One run's counters, or (`analyze --truth`) an array of them, one per capture.
    pub counters: serde_json::Value,
    pub scoring: ScoringDoc,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One home host.
#[derive(Clone, Debug, Serialize)]
pub struct HostDoc {
    pub address: IpAddr,
    pub level: Level,
    pub score: f64,
    pub was_red: bool,
    pub flagged_windows: u64,
    pub windows: VecDeque<HistoryEntry>,
    pub evidence: Vec<Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    /// The capture the host was seen in, when captures are judged apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
}

impl HostDoc {
    pub fn of(h: &HostState, capture: Option<&str>) -> HostDoc {
        HostDoc {
            address: h.addr,
            level: h.level,
            score: h.score,
            was_red: h.was_red,
            flagged_windows: h.flagged_windows,
            windows: h.history.clone(),
            evidence: h.changes.iter().cloned().collect(),
            device: h.device.clone(),
            capture: capture.map(str::to_string),
        }
    }
}

/// One model in use.
#[derive(Clone, Debug, Serialize)]
pub struct ModelDoc {
    pub name: String,
    pub schema: &'static str,
    pub threshold: f32,
    pub path: String,
}

impl ModelDoc {
    pub fn of(m: &Model) -> ModelDoc {
        ModelDoc {
            name: m.name.clone(),
            schema: m.schema.name,
            threshold: m.threshold,
            path: m.path.display().to_string(),
        }
    }

    pub fn all(models: &[Model]) -> Vec<ModelDoc> {
        models.iter().map(ModelDoc::of).collect()
    }
}

/// The thresholds the report page draws.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScoringDoc {
    pub alpha: f64,
    pub red: f64,
    pub red_rising: f64,
    pub red_windows: u32,
    pub yellow_clear: f64,
    pub min_flows: u32,
}

impl ScoringDoc {
    pub fn of(s: &ScoringConfig) -> ScoringDoc {
        ScoringDoc {
            alpha: s.alpha,
            red: s.red,
            red_rising: s.red_rising,
            red_windows: s.red_windows,
            yellow_clear: s.yellow_clear,
            min_flows: s.min_flows,
        }
    }
}

/// One host as a JSON value (as it appears in the document).
pub fn host_json(h: &HostState, capture: Option<&str>) -> serde_json::Value {
    serde_json::to_value(HostDoc::of(h, capture)).unwrap_or_default()
}

/// The thresholds as the document's `scoring` object.
pub fn scoring_json(s: &ScoringConfig) -> serde_json::Value {
    serde_json::to_value(ScoringDoc::of(s)).unwrap_or_default()
}

/// The document of a detector and its engine, as `botd report` renders it and the live sensor
/// writes to its state file (on an interval and at shutdown).
pub fn state_document(detector: &Detector, engine: &Engine, scoring: &ScoringConfig) -> Document {
    state_document_at(detector, &engine.totals(), scoring)
}

/// [`state_document`] from the engine's totals at a checkpoint (the live sensor builds it on
/// the detector's thread, where the engine is not).
pub fn state_document_at(detector: &Detector, c: &Totals, scoring: &ScoringConfig) -> Document {
    let counters = serde_json::json!({
        "frames": c.frames,
        "packets": c.packets,
        "bytes": c.bytes,
        "flows": c.flows,
        "windows": c.windows_closed,
        "flows_evicted": c.flows_evicted,
        "detector": detector.counters,
        "hosts_not_tracked": detector.scorer.counters.hosts_refused,
    });
    Document {
        hosts: detector
            .scorer
            .hosts()
            .into_iter()
            .map(|h| HostDoc::of(h, None))
            .collect(),
        models: ModelDoc::all(detector.models()),
        counters,
        scoring: ScoringDoc::of(scoring),
        ..Document::default()
    }
}

/// `.NAME.tmp.PID` in `path`'s folder: where an atomic write prepares its file before the rename
/// (same file system; a name that neither a reader nor node_exporter's `*.prom` glob takes).
pub fn temp_path_beside(path: &Path) -> Result<PathBuf, String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    Ok(dir.join(tmp_name))
}

/// Writes `doc` to `path` atomically: a temporary file in the same folder, flushed to disk, then
/// renamed over `path`, so a reader sees the old document or the new one, never half of one.
/// Any failure (disk full, permission denied, missing folder) is returned, and the temporary
/// file is removed.
pub fn write_state_atomically<T: Serialize + ?Sized>(path: &Path, doc: &T) -> Result<(), String> {
    let tmp = temp_path_beside(path)?;
    let dir = tmp.parent().unwrap_or(Path::new("."));
    let text = serde_json::to_vec(doc).map_err(|e| format!("{}: {e}", path.display()))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is synced; not every filesystem allows
        // opening a folder, so a failure here is not an error.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

/// Writes the state file on its own thread: the caller builds the document (a copy of the host
/// states) and hands it over; serialising, writing and syncing it (a slow disk stalls for
/// seconds) happen off the caller's thread. A failure is logged and the next document tried.
pub struct StateWriter {
    to_writer: Option<SyncSender<(PathBuf, Document)>>,
    /// Set while a document is queued or being written: the caller skips building the next.
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StateWriter {
    pub fn start() -> Result<StateWriter, String> {
        // One slot: a document is only offered while none is queued or being written.
        let (to_writer, from_caller) = sync_channel::<(PathBuf, Document)>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&busy);
        let thread = std::thread::Builder::new()
            .name("botd-state".into())
            .spawn(move || {
                for (path, doc) in from_caller {
                    if let Err(e) = write_state_atomically(&path, &doc) {
                        eprintln!("botd: state file not written: {e}");
                    }
                    done.store(false, Ordering::Release);
                }
            })
            .map_err(|e| format!("cannot start the state writer thread: {e}"))?;
        Ok(StateWriter {
            to_writer: Some(to_writer),
            busy,
            thread: Some(thread),
        })
    }

    /// Whether the previous document is still queued or being written (then an interval's
    /// document is not worth building: the next interval brings a newer one).
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Hands `doc` over to be written to `path`; false (nothing done) while [`Self::busy`].
    pub fn offer(&self, path: &Path, doc: Document) -> bool {
        if self.busy() {
            return false;
        }
        let Some(tx) = &self.to_writer else {
            return false;
        };
        self.busy.store(true, Ordering::Release);
        let sent = tx.try_send((path.to_path_buf(), doc)).is_ok();
        if !sent {
            self.busy.store(false, Ordering::Release);
        }
        sent
    }

    /// Writes `doc` (the last one, at shutdown) after whatever is in progress, and returns once
    /// it is on disk or failed.
    pub fn finish(mut self, path: &Path, doc: Document) {
        if let Some(tx) = self.to_writer.take() {
            // Blocks while the previous document is queued; the writer takes it soon.
            let _ = tx.send((path.to_path_buf(), doc));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        // The writer ends once its channel closes; what it is writing is finished first.
        self.to_writer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn state_is_replaced_whole_and_errors_are_returned() {
        let dir = std::env::temp_dir().join(format!("botd-report-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        write_state_atomically(&path, &serde_json::json!({"hosts": [1]})).unwrap();
        write_state_atomically(&path, &serde_json::json!({"hosts": [2]})).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["hosts"][0], 2);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temp file left"
        );
        let missing = dir.join("no/such/dir/state.json");
        let err = write_state_atomically(&missing, &serde_json::json!({})).unwrap_err();
        assert!(err.contains("no/such/dir"), "{err}");
        // A parent that is a file, not a folder.
        let err = write_state_atomically(&path.join("x"), &serde_json::json!({})).unwrap_err();
        assert!(err.contains("state.json/x"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_state_writer_writes_off_the_callers_thread_and_skips_while_busy() {
        let dir = std::env::temp_dir().join(format!("botd-state-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let w = StateWriter::start().unwrap();
        // A large document keeps the writer busy for a moment: an offer right after it is
        // skipped, not queued behind it.
        let big: Vec<u64> = (0..2_000_000).collect();
        let doc = |counters| Document {
            counters,
            ..Document::default()
        };
        assert!(w.offer(&path, doc(serde_json::json!(big))));
        assert!(w.busy());
        assert!(!w.offer(&path, doc(serde_json::json!(2))));
        let t0 = std::time::Instant::now();
        while w.busy() {
            assert!(t0.elapsed().as_secs() < 30, "writer stuck");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["counters"].as_array().unwrap().len(), 2_000_000);
        assert_eq!(back["hosts"], serde_json::json!([]));
        // A failing write is logged and the writer goes on.
        assert!(w.offer(&dir.join("no/such/dir/s.json"), doc(serde_json::json!(0))));
        w.finish(&path, doc(serde_json::json!(3)));
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["counters"], 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The typed document writes a host as the `json!` object it replaced did.
    #[test]
    fn a_host_is_written_as_before() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut cfg = crate::config::Config::default();
        cfg.network.home = vec!["192.168.1.0/24".parse().unwrap()];
        let models =
            std::sync::Arc::new(crate::pipeline::load_models(&root.join("models")).unwrap());
        let run = crate::pipeline::run_captures(
            &cfg,
            cfg.network.clone(),
            models,
            &[root.join("tests/data/demo.pcap")],
            None,
        )
        .unwrap();
        let hosts = run.detector.scorer.hosts();
        assert!(hosts.iter().any(|h| h.was_red && !h.changes.is_empty()));
        for h in hosts {
            let mut old = serde_json::json!({
                "address": h.addr.to_string(),
                "level": h.level.as_str(),
                "score": h.score,
                "was_red": h.was_red,
                "flagged_windows": h.flagged_windows,
                "windows": h.history,
                "evidence": h.changes,
                "capture": "c.pcap",
            });
            if let Some(d) = &h.device {
                old["device"] = serde_json::json!(d);
            }
            assert_eq!(host_json(h, Some("c.pcap")), old, "{}", h.addr);
        }
        let doc =
            serde_json::to_value(state_document(&run.detector, &run.engine, &cfg.scoring)).unwrap();
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["counters", "hosts", "models", "scoring"]);
        assert_eq!(doc["scoring"]["red_windows"], cfg.scoring.red_windows);
    }
}
