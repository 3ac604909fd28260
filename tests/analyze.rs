//! `botd analyze` end to end: the bundled demo (one infected camera among ordinary hosts), the
//! JSON shape scripts depend on, evaluation against a truth file, --home, bad models and bad
//! configuration, and alerts delivered to a real rsyslogd.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::rsyslog::{Rsyslog, temp_dir};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data(rel: &str) -> PathBuf {
    root().join("../shared/data").join(rel)
}

fn botd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_botd"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn demo_flags_the_infected_camera_and_only_it() {
    let dir = temp_dir("analyze-demo");
    let out = dir.join("out.json");
    let o = botd(&[
        "analyze",
        "--json",
        out.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let doc = json(&out);
    let hosts = doc["hosts"].as_array().unwrap();
    // Every home host of the demo LAN is listed, with the stable shape.
    let addrs: Vec<&str> = hosts
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    for a in [
        "192.168.1.1",
        "192.168.1.23",
        "192.168.1.30",
        "192.168.1.42",
        "192.168.1.66",
    ] {
        assert!(addrs.contains(&a), "{a} missing from {addrs:?}");
    }
    for h in hosts {
        assert!(h["score"].is_number() && h["windows"].is_array() && h["evidence"].is_array());
        let level = h["level"].as_str().unwrap();
        assert!(["red", "yellow", "clear"].contains(&level));
        let expected = if h["address"] == "192.168.1.66" {
            "red"
        } else {
            "clear"
        };
        assert_eq!(level, expected, "{h}");
    }
    let camera = hosts
        .iter()
        .find(|h| h["address"] == "192.168.1.66")
        .unwrap();
    let red = camera["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["level"] == "red")
        .expect("a change to red with its evidence");
    assert!(red["botnet_flows"].as_u64().unwrap() > 10, "{red}");
    assert!(!red["models"].as_array().unwrap().is_empty(), "{red}");
    assert!(!red["peers"].as_array().unwrap().is_empty(), "{red}");
    // Per-window counts per model, as the original detector plotted them.
    let w = &camera["windows"][0];
    assert_eq!(
        w["botnet"].as_array().unwrap().len(),
        doc["models"].as_array().unwrap().len()
    );
    assert!(doc["counters"]["frames"].as_u64().unwrap() > 5000);
    // The host table's lifecycle counters (a 32-minute capture forgets no host).
    for k in [
        "hosts_expired",
        "hosts_evicted",
        "hosts_refused",
        "level_changes_dropped",
    ] {
        assert_eq!(doc["counters"]["detector"][k], 0, "{k}");
    }
    assert!(
        doc["counters"]["detector"]["flows_scored"]
            .as_u64()
            .unwrap()
            > 1000
    );
    // The table names the camera as red.
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("192.168.1.66") && l.contains("red")),
        "{table}"
    );
}

#[test]
#[ignore = "data: ../shared/data"]
fn truth_evaluation_per_capture_and_in_total() {
    let dir = temp_dir("analyze-truth");
    let out = dir.join("out.json");
    let truth = data("truth.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_botd"))
        .current_dir(root())
        .args(["analyze", "--truth"])
        .arg(&truth)
        .arg("--json")
        .arg(&out)
        .arg(data("chrissanders-packets/cryptowall4_c2.pcapng"))
        .arg(data(
            "stratosphere-slips/pcap/test-cc_test-cc-capture-1.pcap",
        ))
        .arg(data("debian-registry/pathspider/tcp_http.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("host-level detection"), "{t}");
    assert!(
        t.contains("chrissanders-packets/cryptowall4_c2.pcapng"),
        "{t}"
    );
    assert!(
        t.lines().any(|l| l.starts_with("total: malicious red")),
        "{t}"
    );
    let doc = json(&out);
    let ev = doc["evaluation"].as_array().unwrap();
    assert_eq!(ev.len(), 3);
    let cw = ev
        .iter()
        .find(|e| e["capture"] == "chrissanders-packets/cryptowall4_c2.pcapng")
        .unwrap();
    assert_eq!(cw["kind"], "ransomware");
    assert_eq!(cw["malicious_total"], 1);
    let benign = ev
        .iter()
        .find(|e| e["capture"] == "debian-registry/pathspider/tcp_http.pcap")
        .unwrap();
    assert_eq!(benign["kind"], "benign");
    assert_eq!(benign["malicious_total"], 0);
    // Each host says which capture it belongs to when captures are judged apart.
    assert!(
        doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["capture"].is_string())
    );
}

#[test]
fn home_override_decides_which_hosts_are_scored() {
    let dir = temp_dir("analyze-home");
    let out = dir.join("out.json");
    let o = botd(&[
        "analyze",
        "--home",
        "192.168.1.66/32",
        "--json",
        out.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let doc = json(&out);
    let addrs: Vec<&str> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["192.168.1.66"]);
    let o = botd(&[
        "analyze",
        "--home",
        "192.168.1.0/33",
        "tests/data/demo.pcap",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("192.168.1.0/33"), "{}", text(&o));
}

#[test]
fn a_bad_model_or_config_is_a_clear_error() {
    let dir = temp_dir("analyze-bad");
    std::fs::write(dir.join("broken.onnx"), b"\x08\x07garbage").unwrap();
    let o = botd(&[
        "analyze",
        "--models",
        dir.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("broken.onnx"), "{}", text(&o));

    let conf = dir.join("bad.toml");
    std::fs::write(&conf, "[flows]\nwindow_secs = \"300\"\n").unwrap();
    let o = botd(&[
        "analyze",
        "--config",
        conf.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("bad.toml:2:") && t.contains("flows.window_secs"),
        "{t}"
    );

    let o = botd(&["check-config", conf.to_str().unwrap()]);
    assert!(!o.status.success());
    let o = botd(&["check-config", "config/botd.toml"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// The end-to-end check: a real rsyslogd, botd analyze on a capture with a known infected
/// host, and the alert arriving with the right fields.
#[test]
#[ignore = "system: rsyslog (tests/run.sh)"]
fn alert_for_the_infected_host_reaches_rsyslog() {
    let rsyslog = Rsyslog::start("analyze-rsyslog");
    let conf = rsyslog.dir.join("botd.toml");
    let json_alerts = rsyslog.dir.join("alerts.jsonl");
    std::fs::write(
        &conf,
        format!(
            "[alerts]\nsyslog = true\nsyslog_target = \"unix:{}\"\njson_file = \"{}\"\n",
            rsyslog.sock.display(),
            json_alerts.display()
        ),
    )
    .unwrap();
    let o = botd(&[
        "analyze",
        "--syslog",
        "--config",
        conf.to_str().unwrap(),
        "tests/data/demo.pcap",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let lines = rsyslog.wait_lines(1, |l| l.app == "botd" && l.msgid == "botd-alert");
    let red = lines
        .iter()
        .find(|l| {
            l.sd.get("botd@32473")
                .is_some_and(|p| p.get("host").map(String::as_str) == Some("192.168.1.66"))
        })
        .expect("an alert for 192.168.1.66");
    let p = &red.sd["botd@32473"];
    assert_eq!(p["level"], "red");
    assert_eq!(p["previous"], "clear");
    assert!(p["score"].parse::<f64>().unwrap() >= 0.6);
    assert!(p["botnetFlows"].parse::<u64>().unwrap() > 0);
    assert!(p["models"].contains("rf"));
    assert!(red.sd.keys().any(|k| k.starts_with("peer")), "{:?}", red.sd);
    assert!(red.msg.contains("192.168.1.66"), "{}", red.msg);
    // Only the infected host was alerted on.
    assert!(
        lines.iter().all(|l| l.msg.contains("192.168.1.66")),
        "{lines:?}"
    );
    let jl = std::fs::read_to_string(&json_alerts).unwrap();
    assert!(jl.lines().any(|l| l.contains("\"192.168.1.66\"")), "{jl}");
    // The EVE records' Community IDs are those of real flows of the capture: an alert joins
    // the flow records (botd's, Zeek's, Suricata's) of the connections behind it.
    let flows = botd(&["flows", "--format", "json", "tests/data/demo.pcap"]);
    assert!(flows.status.success(), "{}", text(&flows));
    let flow_ids: std::collections::HashSet<String> = String::from_utf8_lossy(&flows.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["CommunityId"].as_str().map(String::from))
        .collect();
    let mut joined = 0;
    for record in jl.lines() {
        let v: serde_json::Value = serde_json::from_str(record).unwrap();
        let ids = v["botd"]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["community_id"].as_str());
        for id in ids.chain(v["community_id"].as_str()) {
            assert!(flow_ids.contains(id), "{id} of {record} is no flow's");
            joined += 1;
        }
    }
    assert!(joined > 0, "no Community ID in {jl}");
}

/// The behaviour rules on real captures, each judged on its own: WannaCry's SMB spreading
/// (lateral), Hide'N Seek's scanning (sweep), an HTTPS beacon every 2 s (beacon), and an MQTT
/// client reconnecting every 9 s (a regular series the models do not flag: no beacon, not red).
#[test]
#[ignore = "data: ../shared/data"]
fn behaviour_rules_fire_with_their_evidence() {
    let dir = temp_dir("analyze-rules");
    let out = dir.join("out.json");
    let o = Command::new(env!("CARGO_BIN_EXE_botd"))
        .current_dir(root())
        .args(["analyze", "--truth"])
        .arg(data("truth.toml"))
        .arg("--json")
        .arg(&out)
        .arg(data(
            "malcolm-pcap/plugins/zeek-EternalSafety/wannacry.pcap",
        ))
        .arg(data("stratosphere-slips/pcap/test7-malicious.pcap"))
        .arg(data(
            "stratosphere-slips/pcap/test-cc_test-cc-capture-1.pcap",
        ))
        .arg(data("malcolm-pcap/protocols/MQTT.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let doc = json(&out);
    let hosts = doc["hosts"].as_array().unwrap();
    let host = |addr: &str| hosts.iter().find(|h| h["address"] == addr).unwrap();
    let rules_of = |h: &serde_json::Value| -> Vec<String> {
        h["windows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w["rules"].as_array().unwrap().iter())
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    let red_models = |h: &serde_json::Value| -> Vec<String> {
        h["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "red")
            .flat_map(|e| e["models"].as_array().unwrap().iter())
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    };
    for addr in ["192.168.116.138", "192.168.116.149"] {
        let h = host(addr);
        assert_eq!(h["was_red"], true, "{h}");
        assert!(red_models(h).contains(&"lateral".to_string()), "{h}");
        let r = rules_of(h);
        assert!(
            r.iter()
                .any(|r| r.starts_with("lateral: ") && r.contains("on port 445")),
            "{r:?}"
        );
        let red = h["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["level"] == "red")
            .unwrap();
        assert!(
            red["peers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["port"] == 445),
            "{red}"
        );
    }
    let scanner = host("192.168.2.16");
    assert!(
        red_models(scanner).contains(&"sweep".to_string()),
        "{scanner}"
    );
    assert!(
        rules_of(scanner)
            .iter()
            .any(|r| r.starts_with("sweep: 64+ distinct targets never answered")),
        "{scanner}"
    );
    let beacon = host("147.32.80.37");
    assert!(
        red_models(beacon).contains(&"beacon".to_string()),
        "{beacon}"
    );
    assert!(
        rules_of(beacon)
            .iter()
            .any(|r| r.contains("to 141.193.213.21 port 443 every 2.")),
        "{beacon}"
    );
    let mqtt = host("192.168.1.75");
    assert_eq!(mqtt["was_red"], false, "{mqtt}");
    assert!(rules_of(mqtt).is_empty(), "{mqtt}");
    // Every window says how many of its flows the model value counted and how many every model
    // flagged.
    for h in hosts {
        for w in h["windows"].as_array().unwrap() {
            let (flows, scored, agreed) = (
                w["flows"].as_u64().unwrap(),
                w["scored"].as_u64().unwrap(),
                w["agreed"].as_u64().unwrap(),
            );
            assert!(agreed <= scored && scored <= flows, "{w}");
        }
    }
    let ev = doc["evaluation"].as_array().unwrap();
    let red: u64 = ev
        .iter()
        .map(|e| e["malicious_red"].as_u64().unwrap())
        .sum();
    let benign: u64 = ev.iter().map(|e| e["benign_red"].as_u64().unwrap()).sum();
    assert_eq!((red, benign), (4, 0), "{ev:?}");
}

// ------------------------------------------------------------------------------------------
// The speed-ups of `botd analyze` change no result: the score cache (scores of records repeated
// by overlapping windows) and the detector on a second thread (crate::relay).

mod same_results {
    use super::*;
    use botd::alert::Alert;
    use botd::detect::{Detector, DetectorCounters};
    use botd::document::host_json;
    use botd::engine::Engine;
    use botd::pipeline::{load_config, load_models, parse_home};
    use common::offline::Offline;
    use std::sync::Arc;

    /// Hosts (as `analyze --json` writes them), alerts and detector counters of one run.
    fn run(
        capture: &Path,
        home: &[&str],
        cache: Option<usize>,
        threaded: bool,
    ) -> (Vec<serde_json::Value>, Vec<Alert>, DetectorCounters) {
        let cfg = load_config(Some(&root().join("config/botd.toml"))).unwrap();
        let home = parse_home(&home.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let models = Arc::new(load_models(&root().join("models")).unwrap());
        let ecfg = cfg.engine_config();
        let concurrent = ecfg.window.map_or(1, |w| w.concurrent());
        let mut detector = Detector::new(models, home, cfg.scoring.clone(), concurrent);
        if let Some(capacity) = cache {
            detector = detector.with_score_cache(capacity);
        }
        let mut engine = Engine::new(ecfg);
        let mut sink = Offline {
            detector: &mut detector,
            alerts: Vec::new(),
        };
        let mut cap = botd::capture::MergedCapture::open(&[capture.to_path_buf()]).unwrap();
        if threaded {
            botd::relay::with_sink_thread(&mut sink, botd::relay::MAX_BATCHES, |relay| {
                while let Some(f) = cap.next_frame().unwrap() {
                    engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, relay);
                }
                engine.finish(relay);
            })
            .unwrap();
        } else {
            while let Some(f) = cap.next_frame().unwrap() {
                engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, &mut sink);
            }
            engine.finish(&mut sink);
        }
        let alerts = sink.alerts;
        let hosts = detector
            .scorer
            .hosts()
            .iter()
            .map(|h| host_json(h, None))
            .collect();
        (hosts, alerts, detector.counters.clone())
    }

    #[test]
    #[ignore = "data: ../shared/data"]
    fn score_cache_and_detector_thread_change_no_result() {
        for (capture, home) in [
            (
                "stratosphere-slips/pcap/test7-malicious.pcap",
                "192.168.2.0/24",
            ),
            ("debian-registry/pathspider/real.pcap", "10.0.0.0/8"),
        ] {
            let path = data(capture);
            let (hosts, alerts, plain) = run(&path, &[home], None, false);
            assert!(!hosts.is_empty(), "{capture}: no hosts");
            assert_eq!(plain.flows_score_reused, 0);

            let (h, a, cached) = run(&path, &[home], Some(65_536), false);
            assert_eq!(h, hosts, "{capture}: cache changes hosts");
            assert_eq!(a, alerts, "{capture}: cache changes alerts");
            assert!(
                cached.flows_score_reused * 5 > cached.flows_scored,
                "{capture}: {cached:?}"
            );
            assert_eq!(cached.score_cache_full, 0);
            let same = |c: &DetectorCounters| DetectorCounters {
                flows_score_reused: 0,
                score_cache_full: 0,
                ..c.clone()
            };
            assert_eq!(same(&cached), plain, "{capture}: counters differ");

            // A cache too small for a window: what does not fit is scored again, and counted.
            let (h, a, small) = run(&path, &[home], Some(16), true);
            assert_eq!(h, hosts, "{capture}: small cache changes hosts");
            assert_eq!(a, alerts, "{capture}: small cache changes alerts");
            assert!(small.score_cache_full > 0, "{capture}: {small:?}");
            assert!(small.flows_score_reused < cached.flows_score_reused);
            assert_eq!(same(&small), plain);

            let (h, a, threaded) = run(&path, &[home], Some(65_536), true);
            assert_eq!(h, hosts, "{capture}: the detector thread changes hosts");
            assert_eq!(a, alerts, "{capture}: the detector thread changes alerts");
            assert_eq!(threaded, cached);
        }
    }
}
