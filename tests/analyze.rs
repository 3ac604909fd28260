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
}
