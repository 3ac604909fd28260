//! The JSON document of a run's hosts, models and counters: what `botd analyze --json` writes,
//! what the live sensor writes to its state file, and what `botd report` renders. Built here
//! once so the three stay one shape.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::config::ScoringConfig;
use crate::detect::Detector;
use crate::engine::Engine;
use crate::host::HostState;
use crate::model::Model;

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

/// The models in use, as the document's `models` array.
pub fn models_json(models: &[Model]) -> serde_json::Value {
    models
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name, "schema": m.schema.name, "threshold": m.threshold,
                "path": m.path.display().to_string(),
            })
        })
        .collect()
}

/// The thresholds the page draws, as the document's `scoring` object.
pub fn scoring_json(s: &ScoringConfig) -> serde_json::Value {
    serde_json::json!({
        "alpha": s.alpha,
        "red": s.red,
        "red_rising": s.red_rising,
        "red_windows": s.red_windows,
        "yellow_clear": s.yellow_clear,
        "min_flows": s.min_flows,
    })
}

/// The document `botd report --state` reads, from a detector and its engine: the same shape as
/// `botd analyze --json`. The live sensor writes it on an interval and at shutdown.
pub fn state_document(
    detector: &Detector,
    engine: &Engine,
    scoring: &ScoringConfig,
) -> serde_json::Value {
    let hosts: Vec<serde_json::Value> = detector
        .scorer
        .hosts()
        .into_iter()
        .map(|h| host_json(h, None))
        .collect();
    let c = &engine.counters;
    let t = engine.table_stats();
    let counters = serde_json::json!({
        "frames": c.frames,
        "packets": c.packets,
        "bytes": c.bytes,
        "flows": c.flows,
        "windows": c.windows_closed,
        "flows_evicted": t.evicted,
        "detector": detector.counters,
        "hosts_not_tracked": detector.scorer.hosts_dropped,
    });
    serde_json::json!({
        "hosts": hosts,
        "models": models_json(detector.models()),
        "counters": counters,
        "scoring": scoring_json(scoring),
    })
}

/// Writes `doc` to `path` atomically: a temporary file in the same folder, flushed to disk, then
/// renamed over `path`, so a reader sees the old document or the new one, never half of one.
/// Any failure (disk full, permission denied, missing folder) is returned, and the temporary
/// file is removed.
pub fn write_state_atomically(path: &Path, doc: &serde_json::Value) -> Result<(), String> {
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
    let tmp = dir.join(tmp_name);
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
        if let Ok(d) = std::fs::File::open(&dir) {
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
    to_writer: Option<SyncSender<(PathBuf, serde_json::Value)>>,
    /// Set while a document is queued or being written: the caller skips building the next.
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StateWriter {
    pub fn start() -> Result<StateWriter, String> {
        // One slot: a document is only offered while none is queued or being written.
        let (to_writer, from_caller) = sync_channel::<(PathBuf, serde_json::Value)>(1);
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
    pub fn offer(&self, path: &Path, doc: serde_json::Value) -> bool {
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
    pub fn finish(mut self, path: &Path, doc: serde_json::Value) {
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
        assert!(w.offer(&path, serde_json::json!({"hosts": big})));
        assert!(w.busy());
        assert!(!w.offer(&path, serde_json::json!({"hosts": [2]})));
        let t0 = std::time::Instant::now();
        while w.busy() {
            assert!(t0.elapsed().as_secs() < 30, "writer stuck");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["hosts"].as_array().unwrap().len(), 2_000_000);
        // A failing write is logged and the writer goes on.
        assert!(w.offer(&dir.join("no/such/dir/s.json"), serde_json::json!({})));
        w.finish(&path, serde_json::json!({"hosts": [3]}));
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["hosts"], serde_json::json!([3]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
