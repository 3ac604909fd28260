//! Prometheus metrics of `botd run` for node_exporter's textfile collector: the live loop's
//! counters rendered in the text exposition format (0.0.4) and written to `[metrics] textfile`
//! atomically, so the collector never reads half a file.
//!
//! Every sample carries `sensor="<[sensor] name>"`, so a fleet's gateways stay apart in one
//! Prometheus. Names follow Prometheus' conventions: the `botd_` prefix, counters end in
//! `_total`, base units (`_seconds`, `_bytes`). Families whose figure the capture cannot tell
//! (the kernel's counters under pnet) are left out rather than shown as 0.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use crate::alert::{AlertCounters, Level};
use crate::engine::Counters;
use crate::live::capture::CaptureStats;
use crate::live::{LiveLoop, LoopCounters};

/// Upper bounds of the scoring-latency histogram's buckets: the label text and nanoseconds
/// (a window of a quiet home network scores in well under a millisecond, a busy one in
/// seconds).
pub const SCORING_BUCKETS: [(&str, u64); 12] = [
    ("0.0001", 100_000),
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("10", 10_000_000_000),
];

/// A latency histogram: per-bucket counts (not cumulative; the `+Inf` bucket is `count`), the
/// count and the sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: [u64; SCORING_BUCKETS.len()],
    pub count: u64,
    pub sum_ns: u64,
}

impl Histogram {
    pub fn observe(&mut self, ns: u64) {
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        if let Some(i) = SCORING_BUCKETS.iter().position(|&(_, le)| ns <= le)
            && let Some(b) = self.buckets.get_mut(i)
        {
            *b += 1;
        }
    }
}

/// Every figure the metrics show, read from the live loop at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// When the sensor started (ns since the epoch).
    pub start_time_ns: u64,
    pub capture: CaptureStats,
    pub engine: Counters,
    pub active_flows: u64,
    pub flow_evictions: u64,
    /// Flows the detectors scored, replaced generations included.
    pub flows_scored: u64,
    pub live: LoopCounters,
    pub alerts: AlertCounters,
    /// Tracked hosts at levels clear, yellow, red.
    pub hosts: [u64; 3],
    /// The host table's lifecycle counters.
    pub host_table: crate::host::HostCounters,
    /// Threat-intelligence entries of the running detector's feeds.
    pub intel_entries: u64,
}

impl Snapshot {
    /// `alerts`: the sink's counters (the final ones after its shutdown); `None` reads the
    /// running sink's, as [`crate::live::counters_line`] does.
    pub fn of(
        lp: &LiveLoop,
        cap: &CaptureStats,
        alerts: Option<AlertCounters>,
        start_time_ns: u64,
    ) -> Snapshot {
        let engine = lp.engine();
        let mut hosts = [0u64; 3];
        let mut host_table = crate::host::HostCounters::default();
        // Host states live in the oldest generation until a newer one takes them over.
        if let Some(d) = lp.detectors().next() {
            host_table = d.scorer.counters;
            for h in d.scorer.hosts() {
                let i = match h.level {
                    Level::Clear => 0,
                    Level::Yellow => 1,
                    Level::Red => 2,
                };
                if let Some(n) = hosts.get_mut(i) {
                    *n += 1;
                }
            }
        }
        Snapshot {
            start_time_ns,
            capture: *cap,
            engine: engine.counters.clone(),
            active_flows: engine.active_flows() as u64,
            flow_evictions: engine.table_stats().evicted,
            flows_scored: lp.counters.flows_scored_before
                + lp.detectors().map(|d| d.counters.flows_scored).sum::<u64>(),
            live: lp.counters,
            alerts: alerts
                .or_else(|| lp.alert_sink().map(|s| s.counters()))
                .unwrap_or_default(),
            hosts,
            host_table,
            intel_entries: lp.detector().intel().map_or(0, |i| i.entries() as u64),
        }
    }
}

/// Appends `v` as a label value: backslash, double quote and newline escaped.
pub fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Nanoseconds as decimal seconds, exactly (no float rounding of epoch timestamps).
fn push_seconds(out: &mut String, ns: u64) {
    let _ = write!(out, "{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
}

/// Writes samples that all carry the sensor label; `String`'s `fmt::Write` never fails.
struct Out<'a> {
    out: &'a mut String,
    sensor: &'a str,
}

impl Out<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn labels(&mut self, name: &str, extra: &[(&str, &str)]) {
        self.out.push_str(name);
        self.out.push_str("{sensor=\"");
        escape_label_value(self.out, self.sensor);
        self.out.push('"');
        for (k, v) in extra {
            let _ = write!(self.out, ",{k}=\"");
            escape_label_value(self.out, v);
            self.out.push('"');
        }
        self.out.push_str("} ");
    }

    fn sample(&mut self, name: &str, extra: &[(&str, &str)], v: u64) {
        self.labels(name, extra);
        let _ = writeln!(self.out, "{v}");
    }

    fn sample_seconds(&mut self, name: &str, ns: u64) {
        self.labels(name, &[]);
        push_seconds(self.out, ns);
        self.out.push('\n');
    }

    /// A family of one sample without extra labels.
    fn one(&mut self, name: &str, kind: &str, help: &str, v: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

/// Renders `s` into `out` (cleared first, its capacity kept): the whole file.
pub fn render(out: &mut String, sensor: &str, s: &Snapshot) {
    out.clear();
    let mut o = Out { out, sensor };
    let (cap, c, l, a) = (&s.capture, &s.engine, &s.live, &s.alerts);

    o.family("botd_build_info", "gauge", "botd's version; always 1.");
    o.sample(
        "botd_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    o.family(
        "botd_start_time_seconds",
        "gauge",
        "When the sensor started, in seconds since the epoch.",
    );
    o.sample_seconds("botd_start_time_seconds", s.start_time_ns);

    o.one(
        "botd_capture_packets_total",
        "counter",
        "Frames the capture handed to the sensor.",
        cap.frames,
    );
    if let Some(v) = cap.kernel_packets {
        o.one(
            "botd_capture_kernel_packets_total",
            "counter",
            "Frames the kernel queued for the capture socket, dropped ones included.",
            v,
        );
    }
    if let Some(v) = cap.kernel_drops {
        o.one(
            "botd_capture_kernel_drops_total",
            "counter",
            "Frames the kernel dropped for the capture socket (buffer or ring full).",
            v,
        );
    }
    if let Some(v) = cap.freeze_q {
        o.one(
            "botd_capture_ring_freezes_total",
            "counter",
            "Times the capture ring was full and the kernel froze its queue.",
            v,
        );
    }
    o.one(
        "botd_capture_errors_total",
        "counter",
        "Capture read errors other than timeouts and interruptions.",
        cap.errors,
    );

    o.one(
        "botd_frames_total",
        "counter",
        "Frames the engine processed.",
        c.frames,
    );
    o.one(
        "botd_frame_bytes_total",
        "counter",
        "Wire bytes of the frames the engine processed.",
        c.bytes,
    );
    o.one(
        "botd_packets_parsed_total",
        "counter",
        "Frames parsed into a packet of a flow.",
        c.packets,
    );
    o.family(
        "botd_frames_not_parsed_total",
        "counter",
        "Frames not parsed, by reason.",
    );
    for (e, n) in c.unparsed_by_reason() {
        o.sample("botd_frames_not_parsed_total", &[("reason", e.name())], n);
    }
    o.one(
        "botd_frames_out_of_order_total",
        "counter",
        "Frames whose timestamp went backwards (processed at the current clock).",
        c.out_of_order,
    );

    o.one(
        "botd_flows_total",
        "counter",
        "Flow records the engine finished.",
        c.flows,
    );
    o.one(
        "botd_active_flows",
        "gauge",
        "Flows open in the flow tables.",
        s.active_flows,
    );
    o.one(
        "botd_flow_evictions_total",
        "counter",
        "Open flows pushed out of a full flow table (reported early, not lost).",
        s.flow_evictions,
    );
    o.one(
        "botd_flows_scored_total",
        "counter",
        "Flows the models scored.",
        s.flows_scored,
    );

    o.one(
        "botd_windows_closed_total",
        "counter",
        "Windows closed and scored.",
        c.windows_closed,
    );
    // No window closed yet: no timestamp rather than 1970.
    if l.scoring.count > 0 {
        o.family(
            "botd_last_window_close_timestamp_seconds",
            "gauge",
            "End of the last window closed, in engine time (seconds since the epoch).",
        );
        o.sample_seconds(
            "botd_last_window_close_timestamp_seconds",
            l.last_window_end_ns,
        );
    }
    let name = "botd_window_scoring_seconds";
    o.family(
        name,
        "histogram",
        "Time the detector spent closing a window (scoring, rules, host levels).",
    );
    let bucket = "botd_window_scoring_seconds_bucket";
    let mut cumulative = 0u64;
    for ((le, _), n) in SCORING_BUCKETS.iter().zip(l.scoring.buckets) {
        cumulative += n;
        o.sample(bucket, &[("le", le)], cumulative);
    }
    o.sample(bucket, &[("le", "+Inf")], l.scoring.count);
    o.sample_seconds("botd_window_scoring_seconds_sum", l.scoring.sum_ns);
    o.sample("botd_window_scoring_seconds_count", &[], l.scoring.count);

    o.family("botd_hosts", "gauge", "Tracked home hosts, by alert level.");
    for (level, n) in ["clear", "yellow", "red"].iter().zip(s.hosts) {
        o.sample("botd_hosts", &[("level", level)], n);
    }
    let t = &s.host_table;
    o.family(
        "botd_hosts_forgotten_total",
        "counter",
        "Clear hosts forgotten: idle for [scoring] host_idle_secs, or evicted for a new host.",
    );
    o.sample(
        "botd_hosts_forgotten_total",
        &[("reason", "expired")],
        t.hosts_expired,
    );
    o.sample(
        "botd_hosts_forgotten_total",
        &[("reason", "evicted")],
        t.hosts_evicted,
    );
    o.one(
        "botd_hosts_refused_total",
        "counter",
        "New hosts not tracked: every slot held a red, yellow or active host.",
        t.hosts_refused,
    );
    o.one(
        "botd_level_changes_dropped_total",
        "counter",
        "Level changes dropped from a host's list beyond [scoring] max_level_changes.",
        t.level_changes_dropped,
    );

    o.one(
        "botd_alerts_raised_total",
        "counter",
        "Alerts the detector raised (level changes), before the rate limit.",
        l.alerts_raised,
    );
    o.one(
        "botd_alerts_sent_total",
        "counter",
        "Alerts written to every configured output.",
        a.sent,
    );
    o.one(
        "botd_alerts_dropped_total",
        "counter",
        "Alerts dropped: the queue was full, or still queued at shutdown.",
        a.dropped_queue_full + a.dropped_shutdown,
    );
    o.one(
        "botd_alerts_suppressed_total",
        "counter",
        "Alerts suppressed by the rate limit (a repeat of the host's last level).",
        a.suppressed_rate_limit,
    );
    o.one(
        "botd_alert_send_errors_total",
        "counter",
        "Failed alert writes, once per output.",
        a.send_errors,
    );

    o.one(
        "botd_intel_entries",
        "gauge",
        "Threat-intelligence feed entries loaded.",
        s.intel_entries,
    );
    o.one(
        "botd_reloads_total",
        "counter",
        "Configurations and models installed by SIGHUP.",
        l.reloads,
    );
}

/// Writes `text` to `path` through a temporary file in the same folder and a rename: a reader
/// sees the old file or the new one, never a part. The temporary name (`.NAME.tmp.PID`) does not
/// end in `.prom`, so the collector skips it. Not synced to disk: metrics lost in a crash are
/// rewritten within one interval, and a sync would stall the capture loop.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let tmp = crate::document::temp_path_beside(path)?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}
