//! The Prometheus textfile (`src/metrics.rs`, `[metrics]`).
//!
//! * In process: the live loop fed `tests/data/demo.pcap` (as `tests/live.rs` does), its metrics
//!   rendered and written; `promtool check metrics` (Debian's `prometheus`) accepts the file with
//!   no lint problem, and the values are the loop's own counters.
//! * End to end (as root, as CI runs it): `botd run` in a network namespace with `tcpreplay` of
//!   the same capture into its veth; the file is written at start, rewritten on its 1 s interval
//!   while the replay runs, and once more at SIGTERM with the figures of botd's `stopped:` line and
//!   the hosts of its state file.
//! * The writer: label values escaped; the file replaced by a rename (a reader holding the old
//!   file keeps reading it whole; a reader racing the writer never sees part of a file).
//!
//! promtool must be there: a missing one fails the tests (tests/run.sh installs it).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "common/netns.rs"]
mod netns;
use netns::{Daemon, Lan, TempDir, require, tool};

use botd::capture::FileReader;
use botd::config::Config;
use botd::live::LiveLoop;
use botd::live::capture::CaptureStats;
use botd::metrics::{Snapshot, escape_label_value, render, write_atomically};

const SEC: u64 = 1_000_000_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> PathBuf {
    root().join("tests/data/demo.pcap")
}

/// `promtool check metrics` on `path`: panics unless it exits 0 with nothing to say (lint
/// problems are printed, and make it exit non-zero).
fn promtool_check(path: &Path) {
    let text = std::fs::read(path).unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool: {e}: apt-get install prometheus (tests/run.sh installs it)")
        });
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics {}: {}: {said}\n{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&text)
    );
}

/// The samples of a textfile: `name{labels}` -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            (
                k.to_string(),
                v.parse().unwrap_or_else(|e| panic!("{l:?}: {e}")),
            )
        })
        .collect()
}

/// The value of `name` with the sensor label and `extra` labels (in the file's order).
fn value(s: &HashMap<String, f64>, sensor: &str, name: &str, extra: &str) -> f64 {
    let mut esc = String::new();
    escape_label_value(&mut esc, sensor);
    let key = format!("{name}{{sensor=\"{esc}\"{extra}}}");
    *s.get(&key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", s.keys().collect::<Vec<_>>()))
}

/// Counts as f64 (the file's type) without a lossy cast warning for small numbers.
fn f(n: u64) -> f64 {
    n as f64
}

// ------------------------------------------------------------------------------------------
// In process.

#[test]
#[ignore = "system: promtool (tests/run.sh)"]
fn live_loop_metrics_pass_promtool_and_are_the_loops_counters() {
    let mut cfg = Config::default();
    cfg.network.home = vec!["192.168.1.0/24".parse().unwrap()];
    cfg.models.dir = root().join("models");
    let models = Arc::new(botd::pipeline::load_models(&cfg.models.dir).unwrap());
    let mut lp = LiveLoop::new(&cfg, models, None, botd::capture::LinkType::Ethernet);
    // The capture's frames with idle ticks every 100 ms between them (read timeouts).
    let mut r = FileReader::open(&demo()).unwrap();
    let mut n = 0u64;
    let (mut first, mut last_ts, mut next_tick) = (None, 0, None);
    while let Some(fr) = r.next_frame().unwrap() {
        first.get_or_insert(fr.ts_ns);
        last_ts = fr.ts_ns;
        let t = next_tick.get_or_insert(fr.ts_ns);
        while *t < fr.ts_ns {
            lp.tick(*t);
            *t += SEC / 10;
        }
        lp.frame(fr.ts_ns, fr.data, fr.orig_len);
        n += 1;
    }
    lp.finish();
    let cap = CaptureStats {
        frames: n,
        ..CaptureStats::default()
    };
    let start = 1_733_370_000_123_456_789;
    let snap = Snapshot::of(&lp, &cap, None, start);
    let mut buf = String::new();
    render(&mut buf, "gw-test", &snap);

    let dir = TempDir::new("metrics-loop");
    let path = dir.join("botd.prom");
    write_atomically(&path, &buf).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), buf);
    promtool_check(&path);

    let s = samples(&buf);
    let v = |name: &str, extra: &str| value(&s, "gw-test", name, extra);
    let c = &lp.engine().counters;
    assert!(c.windows_closed >= 2 && c.flows > 100, "{c:?}");
    assert_eq!(v("botd_capture_packets_total", ""), f(n));
    assert_eq!(v("botd_frames_total", ""), f(c.frames));
    assert_eq!(v("botd_frames_total", ""), f(n));
    assert_eq!(v("botd_packets_parsed_total", ""), f(c.packets));
    assert_eq!(v("botd_frame_bytes_total", ""), f(c.bytes));
    assert_eq!(v("botd_flows_total", ""), f(c.flows));
    assert_eq!(v("botd_active_flows", ""), 0.0, "finish closes every flow");
    assert_eq!(v("botd_windows_closed_total", ""), f(c.windows_closed));
    // Every closed window was timed.
    assert_eq!(
        v("botd_window_scoring_seconds_count", ""),
        f(c.windows_closed)
    );
    assert_eq!(
        v("botd_window_scoring_seconds_bucket", ",le=\"+Inf\""),
        f(c.windows_closed)
    );
    assert!(v("botd_window_scoring_seconds_sum", "") > 0.0);
    let not_parsed: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("botd_frames_not_parsed_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(not_parsed, f(c.unparsed()));
    // When the last window closed, in capture time (exact: no float rounding of the epoch);
    // `finish` closed it before its end, at the last frame.
    let last = lp.counters.last_window_end_ns;
    assert!(last > first.unwrap() && last <= last_ts, "{last}");
    assert!(buf.contains(&format!(
        "botd_last_window_close_timestamp_seconds{{sensor=\"gw-test\"}} {}.{:09}\n",
        last / SEC,
        last % SEC
    )));
    assert!(buf.contains("botd_start_time_seconds{sensor=\"gw-test\"} 1733370000.123456789\n"));
    // Hosts by level: the detector's tracked hosts; the infected camera is among the red.
    let hosts = lp.detectors().next().unwrap().scorer.hosts();
    let count = |l: botd::alert::Level| f(hosts.iter().filter(|h| h.level == l).count() as u64);
    let (clear, yellow, red) = (
        v("botd_hosts", ",level=\"clear\""),
        v("botd_hosts", ",level=\"yellow\""),
        v("botd_hosts", ",level=\"red\""),
    );
    assert_eq!(clear + yellow + red, f(hosts.len() as u64));
    assert_eq!(clear, count(botd::alert::Level::Clear));
    assert_eq!(yellow, count(botd::alert::Level::Yellow));
    assert_eq!(red, count(botd::alert::Level::Red));
    assert!(red >= 1.0, "the camera is red: {buf}");
    assert_eq!(v("botd_alerts_raised_total", ""), f(lp.kept.len() as u64));
    assert!(!lp.kept.is_empty());
    assert_eq!(v("botd_reloads_total", ""), 0.0);
    // The host table's lifecycle: a 32-minute capture forgets and refuses no host.
    assert_eq!(v("botd_hosts_forgotten_total", ",reason=\"expired\""), 0.0);
    assert_eq!(v("botd_hosts_forgotten_total", ",reason=\"evicted\""), 0.0);
    assert_eq!(v("botd_hosts_refused_total", ""), 0.0);
    assert_eq!(v("botd_level_changes_dropped_total", ""), 0.0);
    assert_eq!(v("botd_intel_entries", ""), 0.0);
    assert_eq!(
        v(
            "botd_build_info",
            &format!(",version=\"{}\"", env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );
    // pnet-like stats: the kernel's figures are unknown, so their families are absent.
    assert!(!buf.contains("botd_capture_kernel_drops_total"));
    // Every sample carries the sensor label.
    for l in buf.lines().filter(|l| !l.starts_with('#')) {
        assert!(l.contains("{sensor=\"gw-test\""), "{l}");
    }
}

// ------------------------------------------------------------------------------------------
// The writer.

#[test]
#[ignore = "system: promtool (tests/run.sh)"]
fn label_values_are_escaped_and_promtool_reads_them_back() {
    let mut out = String::from("x");
    escape_label_value(&mut out, "a\"b\\c\nd");
    assert_eq!(out, r#"xa\"b\\c\nd"#);

    let sensor = "gw \"lab\" \\1\nsecond line";
    let mut buf = String::new();
    render(&mut buf, sensor, &Snapshot::default());
    let line = buf
        .lines()
        .find(|l| l.starts_with("botd_flows_total{"))
        .unwrap();
    assert_eq!(
        line,
        r#"botd_flows_total{sensor="gw \"lab\" \\1\nsecond line"} 0"#
    );
    // One line per sample: the newline in the value did not split one.
    assert!(!buf.lines().any(|l| l.starts_with("second line")), "{buf}");
    // No window closed: no timestamp of 1970.
    assert!(!buf.contains("botd_last_window_close_timestamp_seconds"));
    let dir = TempDir::new("metrics-escape");
    let path = dir.join("botd.prom");
    write_atomically(&path, &buf).unwrap();
    promtool_check(&path);
}

#[test]
#[ignore = "system: promtool (tests/run.sh)"]
fn scoring_histogram_buckets_are_cumulative_with_inclusive_bounds() {
    let mut snap = Snapshot::default();
    let h = &mut snap.live.scoring;
    // On the first bound, just past it, and past the last (only in +Inf).
    for ns in [100_000, 100_001, 20 * SEC] {
        h.observe(ns);
    }
    let mut buf = String::new();
    render(&mut buf, "gw", &snap);
    let s = samples(&buf);
    let bucket = |le: &str| {
        value(
            &s,
            "gw",
            "botd_window_scoring_seconds_bucket",
            &format!(",le=\"{le}\""),
        )
    };
    assert_eq!(bucket("0.0001"), 1.0);
    assert_eq!(bucket("0.0005"), 2.0);
    assert_eq!(bucket("10"), 2.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        value(&s, "gw", "botd_window_scoring_seconds_count", ""),
        3.0
    );
    assert!(buf.contains("botd_window_scoring_seconds_sum{sensor=\"gw\"} 20.000200001\n"));
    let dir = TempDir::new("metrics-histogram");
    let path = dir.join("botd.prom");
    write_atomically(&path, &buf).unwrap();
    promtool_check(&path);
}

#[test]
fn the_textfile_is_replaced_by_a_rename() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("metrics-atomic");
    let path = dir.join("botd.prom");
    // Large enough that a write in place would be seen half done.
    let old = "old_metric 1\n".repeat(40_000);
    let new = "new_metric 2\n".repeat(40_000);
    write_atomically(&path, &old).unwrap();
    let mut held = std::fs::File::open(&path).unwrap();
    let inode = std::fs::metadata(&path).unwrap().ino();

    write_atomically(&path, &new).unwrap();
    // The reader that opened the old file reads all of it: it was not rewritten in place.
    let mut text = String::new();
    held.read_to_string(&mut text).unwrap();
    assert!(text == old, "old file changed under its reader");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new);
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), inode);
    // No temporary file left beside it (the collector reads only *.prom, but still).
    let names: Vec<_> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("botd.prom")]);

    // A reader racing the writer sees one whole version or the other, never a part.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, path, old, new) = (done.clone(), path.clone(), old.clone(), new.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) {
                let t = std::fs::read_to_string(&path).unwrap();
                assert!(t == old || t == new, "a partial file: {} bytes", t.len());
                reads += 1;
            }
            reads
        })
    };
    let until = Instant::now() + Duration::from_millis(500);
    let mut writes = 0;
    while Instant::now() < until || writes < 20 {
        write_atomically(&path, if writes % 2 == 0 { &old } else { &new }).unwrap();
        writes += 1;
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);

    // A folder that is not there: an error naming the file, nothing written.
    let missing = dir.join("nope/botd.prom");
    let err = write_atomically(&missing, "x 1\n").unwrap_err();
    assert!(err.contains("nope/botd.prom"), "{err}");
}

// ------------------------------------------------------------------------------------------
// End to end.

/// `key=value` out of a counters line.
fn counter(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, tcpreplay, promtool (tests/run.sh)"]
fn botd_run_writes_the_textfile_on_its_interval_and_at_stop() {
    require(&[
        tool("tcpreplay", "tcpreplay"),
        tool("promtool", "prometheus"),
    ]);
    let lan = Lan::new("metrics", "02:00:00:00:00:66");
    let dir = TempDir::new("metrics-run");
    let prom = dir.join("botd.prom");
    let state = dir.join("state.json");
    // A sensor name with a quote and a backslash (printable ASCII: allowed) to escape.
    let sensor = r#"gw-"lab"\1"#;
    let config = dir.write(
        "botd.toml",
        &format!(
            r#"[capture]
interface = "eth0"
read_timeout_ms = 100
# A veth hands every frame to packet sockets anyway; not asking for promiscuous mode is also what
# lets qemu-user (no SOL_PACKET options) run the ARM binary here.
promiscuous = false

[network]
home = ["192.168.1.0/24"]

[models]
dir = "{models}"

[alerts]
syslog = false
json_file = "{alerts}"
rate_limit_secs = 0

[state]
file = "{state}"
interval_secs = 1

[sensor]
name = '{sensor}'

[metrics]
textfile = "{prom}"
interval_secs = 1
"#,
            models = root().join("models").display(),
            alerts = dir.join("alerts.jsonl").display(),
            state = state.display(),
            prom = prom.display(),
        ),
    );
    let mut botd = Daemon::spawn(
        "botd run",
        {
            let mut c = lan.client.exec(env!("CARGO_BIN_EXE_botd"));
            c.arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--allow-root");
            c
        },
        dir.join("botd.log"),
    );
    botd.wait_log("capturing on eth0", 60);

    // Written at once, before any frame.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !prom.exists() {
        assert!(Instant::now() < deadline, "no {} at start", prom.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    promtool_check(&prom);

    // The demo capture at 2000 packets/s (~2.7 s).
    let out = lan.router.run_ok(
        30,
        "tcpreplay",
        &["--intf1=lan0", "--pps=2000", demo().to_str().unwrap()],
    );
    let sent: u64 = out
        .lines()
        .find(|l| l.trim_start().starts_with("Actual:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("tcpreplay report: {out}"));

    // Rewritten on its interval while botd runs: the replayed frames show up.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&prom).unwrap();
        let frames = value(&samples(&text), sensor, "botd_frames_total", "");
        if frames * 100.0 >= f(sent) * 99.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{frames} of {sent} frames in the file after 5 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM: the windows close and the file is written once more, with the final figures.
    let log = botd.stop(libc::SIGTERM, 5);
    let stopped = log
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no stopped line:\n{log}"));
    promtool_check(&prom);
    let text = std::fs::read_to_string(&prom).unwrap();
    let s = samples(&text);
    let v = |name: &str| value(&s, sensor, name, "");
    for (name, key) in [
        ("botd_capture_packets_total", "captured"),
        ("botd_capture_errors_total", "capture_errors"),
        ("botd_frames_total", "frames"),
        ("botd_packets_parsed_total", "packets"),
        ("botd_frame_bytes_total", "bytes"),
        ("botd_frames_out_of_order_total", "out_of_order"),
        ("botd_flows_total", "flows"),
        ("botd_active_flows", "active_flows"),
        ("botd_flow_evictions_total", "evicted"),
        ("botd_windows_closed_total", "windows"),
        ("botd_flows_scored_total", "flows_scored"),
        ("botd_alerts_raised_total", "alerts_raised"),
        ("botd_alerts_sent_total", "alerts_sent"),
        ("botd_alerts_dropped_total", "alerts_dropped"),
        ("botd_alerts_suppressed_total", "alerts_suppressed"),
        ("botd_alert_send_errors_total", "alert_send_errors"),
    ] {
        assert_eq!(v(name), f(counter(stopped, key)), "{name} vs {stopped}");
    }
    // The kernel's figures are there exactly when the capture tells them.
    for (name, key) in [
        ("botd_capture_kernel_packets_total", "kernel_packets"),
        ("botd_capture_kernel_drops_total", "kernel_drops"),
    ] {
        if stopped.contains(&format!("{key}=n/a")) {
            assert!(!text.contains(name), "{name} without a figure: {text}");
        } else {
            assert_eq!(v(name), f(counter(stopped, key)), "{name} vs {stopped}");
        }
    }
    assert!(v("botd_alerts_sent_total") >= 1.0, "{stopped}");
    let windows = v("botd_windows_closed_total");
    assert!(windows >= 1.0);
    assert_eq!(v("botd_window_scoring_seconds_count"), windows);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let closed = v("botd_last_window_close_timestamp_seconds");
    assert!(
        closed >= v("botd_start_time_seconds") && closed <= now,
        "{closed}"
    );
    // Hosts by level: the hosts of the state file written at the same stop.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    let mut sum = 0.0;
    for level in ["clear", "yellow", "red"] {
        let n = value(&s, sensor, "botd_hosts", &format!(",level=\"{level}\""));
        let want = hosts.iter().filter(|h| h["level"] == level).count();
        assert_eq!(n, f(want as u64), "{level} hosts");
        sum += n;
    }
    assert_eq!(sum, f(hosts.len() as u64));
    assert!(value(&s, sensor, "botd_hosts", ",level=\"red\"") >= 1.0);
    assert!(
        text.contains(r#"botd_flows_total{sensor="gw-\"lab\"\\1"}"#),
        "{text}"
    );
}
