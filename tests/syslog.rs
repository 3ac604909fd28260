//! Alert delivery against a real rsyslogd (Debian package `rsyslog`): each test starts its own
//! daemon with a private config in a temporary directory (a local socket, UDP and TCP on
//! 127.0.0.1), and reads what rsyslog parsed out of the messages from its output file.

use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::rsyslog::{Line, Rsyslog, temp_dir};

use botd::alert::{
    Alert, AlertCounters, AlertSettings, AlertSink, Format, Level, Peer, SendOutcome, SyslogTarget,
    parse_facility,
};

const SEC: u64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn alert(host: &str, level: Level, previous: Level, window: u64) -> Alert {
    Alert {
        host: ip(host),
        level,
        previous,
        score: 0.91,
        window,
        window_start_ns: 1_700_000_000 * SEC + window * 150 * SEC,
        window_end_ns: 1_700_000_300 * SEC + window * 150 * SEC,
        models: vec!["argus-rf".into(), "ctu-rf".into()],
        botnet_flows: 40,
        flows: 55,
        flagged_windows: 3,
        peers: vec![
            Peer {
                addr: ip("203.0.113.7"),
                port: 443,
                proto: 6,
                host_port: 49_152,
                flows: 12,
                bytes: 3400,
                name: None,
            },
            Peer {
                addr: ip("2001:db8::1"),
                port: 6667,
                proto: 6,
                host_port: 0,
                flows: 9,
                bytes: 1200,
                name: None,
            },
        ],
        rules: Vec::new(),
        device: None,
        action: botd::alert::Action::Allowed,
        sensor: String::new(),
    }
}

/// The device (MAC, DHCP hostname) and a peer's DNS name reach the structured data, the RFC 3164
/// text and the JSON; without them the fields are left out.
#[test]
fn device_and_peer_names_reach_every_format() {
    let mut a = alert("192.168.1.20", Level::Red, Level::Clear, 7);
    assert!(!a.structured_data(32473)["botd@32473"].contains_key("mac"));
    a.device = Some(botd::devices::DeviceInfo {
        mac: "02:00:00:00:00:01".into(),
        hostname: "kitchen-cam".into(),
        vendor_class: String::new(),
        addresses: vec!["192.168.1.20".into(), "fd00::20".into()],
        roles: Vec::new(),
    });
    a.peers[0].name = Some("c2.example".into());
    a.rules = vec!["dga: 12 distinct random-looking names failed".into()];
    let sd = a.structured_data(32473);
    assert_eq!(sd["botd@32473"]["mac"], "02:00:00:00:00:01");
    assert_eq!(sd["botd@32473"]["hostname"], "kitchen-cam");
    assert_eq!(sd["peer1@32473"]["name"], "c2.example");
    assert!(!sd["peer2@32473"].contains_key("name"));
    let text = a.summary();
    assert!(
        text.starts_with("host 192.168.1.20 (kitchen-cam 02:00:00:00:00:01) is RED"),
        "{text}"
    );
    assert!(
        text.contains("(c2.example)")
            && text.ends_with(": dga: 12 distinct random-looking names failed"),
        "{text}"
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["device"]["addresses"][1], "fd00::20");
    assert_eq!(json["peers"][0]["name"], "c2.example");
}

fn settings(target: Option<SyslogTarget>, format: Format) -> AlertSettings {
    AlertSettings {
        syslog: target,
        format,
        facility: parse_facility("local3").unwrap(),
        app_name: "botd".into(),
        hostname: Some("sensor1".into()),
        queue_capacity: 64,
        rate_limit_ns: 0,
        json_file: None,
        sensor: "gw-test".into(),
        enterprise_number: 32473,
        community_id_seed: 0,
    }
}

/// Every alert the sink took is accounted for once.
fn accounted(c: &AlertCounters) -> u64 {
    c.sent + c.send_errors + c.dropped_queue_full + c.dropped_shutdown + c.suppressed_rate_limit
}

/// Checks a parsed RFC 5424 line against the alert it came from.
fn check_5424(line: &Line, a: &Alert) {
    assert_eq!(line.facility, "local3", "{line:?}");
    let severity = match a.level {
        Level::Red => "alert",
        Level::Yellow => "warning",
        Level::Clear => "notice",
    };
    assert_eq!(line.severity, severity, "{line:?}");
    assert_eq!(line.hostname, "sensor1");
    assert_eq!(line.app, "botd");
    assert_eq!(line.procid, std::process::id().to_string());
    assert_eq!(line.msgid, "botd-alert");
    let b = &line.sd["botd@32473"];
    assert_eq!(b["host"].parse::<IpAddr>().unwrap(), a.host);
    assert_eq!(b["level"], format!("{}", a.level));
    assert_eq!(b["previous"], format!("{}", a.previous));
    assert_eq!(b["score"].parse::<f64>().unwrap(), a.score);
    assert_eq!(b["window"].parse::<u64>().unwrap(), a.window);
    assert_eq!(b["models"], a.models.join(","));
    assert_eq!(b["botnetFlows"].parse::<u64>().unwrap(), a.botnet_flows);
    assert_eq!(b["flows"].parse::<u64>().unwrap(), a.flows);
    assert_eq!(
        b["flaggedWindows"].parse::<u64>().unwrap(),
        a.flagged_windows
    );
    let ts = |ns: u64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    assert_eq!(b["windowStart"], ts(a.window_start_ns));
    assert_eq!(b["windowEnd"], ts(a.window_end_ns));
    assert_eq!(line.sd.len(), 1 + a.peers.len(), "{:?}", line.sd);
    for (i, p) in a.peers.iter().enumerate() {
        let e = &line.sd[&format!("peer{}@32473", i + 1)];
        assert_eq!(e["addr"].parse::<IpAddr>().unwrap(), p.addr);
        assert_eq!(e["port"].parse::<u16>().unwrap(), p.port);
        assert_eq!(e["flows"].parse::<u64>().unwrap(), p.flows);
        assert_eq!(e["bytes"].parse::<u64>().unwrap(), p.bytes);
    }
    assert!(
        line.msg.starts_with(&format!(
            "host {} is {}",
            a.host,
            a.level.as_str().to_uppercase()
        )),
        "{line:?}"
    );
    assert!(
        line.msg.contains(&format!(
            "{} of {} flows botnet in window {}",
            a.botnet_flows, a.flows, a.window
        )),
        "{line:?}"
    );
}

fn wait_counters(sink: &AlertSink, pred: impl Fn(&AlertCounters) -> bool) -> AlertCounters {
    let start = Instant::now();
    loop {
        let c = sink.counters();
        if pred(&c) {
            return c;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "counters: {c:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "system: rsyslog (tests/run.sh)"]
fn rfc5424_over_the_unix_socket_keeps_every_field() {
    let rs = Rsyslog::start("unix5424");
    let mut s = settings(Some(SyslogTarget::Unix(rs.sock.clone())), Format::Rfc5424);
    let json = rs.dir.join("alerts.jsonl");
    s.json_file = Some(json.clone());
    let mut sink = AlertSink::start(s).unwrap();
    let a = alert("10.0.0.5", Level::Red, Level::Clear, 12);
    // Values that need RFC 5424 escaping, and an IPv6 host.
    let mut b = alert("fd00::5", Level::Yellow, Level::Clear, 13);
    b.models = vec![r#"odd"model]\x"#.into()];
    b.peers.truncate(1);
    assert_eq!(sink.send(a.clone(), 0), SendOutcome::Queued);
    assert_eq!(sink.send(b.clone(), 0), SendOutcome::Queued);
    let lines = rs.wait_lines(2, |l| l.msgid == "botd-alert");
    assert!(lines.iter().all(|l| l.input == "imuxsock"));
    check_5424(&lines[0], &a);
    check_5424(&lines[1], &b);
    assert_eq!(
        lines[0].msg,
        "host 10.0.0.5 is RED (was CLEAR; score 0.91, 40 of 55 flows botnet in window 12 by \
         argus-rf,ctu-rf; flagged in 3 windows; top peer 203.0.113.7:443)"
    );
    let c = sink.shutdown(Duration::from_secs(2));
    assert_eq!(
        (c.sent, c.send_errors, c.dropped_queue_full),
        (2, 0, 0),
        "{c:?}"
    );
    assert_eq!(std::fs::read_to_string(json).unwrap().lines().count(), 2);
}

#[test]
#[ignore = "system: rsyslog (tests/run.sh)"]
fn rfc5424_over_udp_and_tcp() {
    let rs = Rsyslog::start("net5424");
    for (target, input) in [
        (
            SyslogTarget::Udp(format!("127.0.0.1:{}", rs.udp_port)),
            "imudp",
        ),
        (
            SyslogTarget::Tcp(format!("127.0.0.1:{}", rs.tcp_port)),
            "imtcp",
        ),
    ] {
        let mut sink = AlertSink::start(settings(Some(target.clone()), Format::Rfc5424)).unwrap();
        let alerts: Vec<Alert> = (0..3)
            .map(|i| alert(&format!("10.0.1.{i}"), Level::Red, Level::Yellow, 20 + i))
            .collect();
        for a in &alerts {
            assert_eq!(sink.send(a.clone(), 0), SendOutcome::Queued);
        }
        let lines = rs.wait_lines(3, |l| l.input == input && l.msgid == "botd-alert");
        assert_eq!(lines.len(), 3, "{target}: one line per message: {lines:?}");
        for (l, a) in lines.iter().zip(&alerts) {
            check_5424(l, a);
        }
        let c = sink.shutdown(Duration::from_secs(2));
        assert_eq!((c.sent, c.send_errors), (3, 0), "{target}: {c:?}");
    }
}

#[test]
#[ignore = "system: rsyslog (tests/run.sh)"]
fn rfc3164_carries_the_text_and_key_values() {
    let rs = Rsyslog::start("bsd3164");
    for (target, input, host) in [
        (SyslogTarget::Unix(rs.sock.clone()), "imuxsock", None),
        (
            SyslogTarget::Udp(format!("127.0.0.1:{}", rs.udp_port)),
            "imudp",
            Some("sensor1"),
        ),
    ] {
        let mut s = settings(Some(target), Format::Rfc3164);
        s.hostname = host.map(String::from);
        let mut sink = AlertSink::start(s).unwrap();
        let a = alert("10.0.0.5", Level::Red, Level::Clear, 12);
        sink.send(a, 0);
        let lines = rs.wait_lines(1, |l| l.input == input && l.app == "botd");
        let l = &lines[0];
        assert_eq!(
            (l.facility.as_str(), l.severity.as_str()),
            ("local3", "alert")
        );
        assert_eq!(l.procid, std::process::id().to_string());
        if let Some(h) = host {
            assert_eq!(l.hostname, h);
        }
        assert!(
            l.msg
                .starts_with("host 10.0.0.5 is RED (was CLEAR; score 0.91, 40 of 55"),
            "{l:?}"
        );
        let kv: BTreeMap<&str, &str> = l.msg.split(' ').filter_map(|w| w.split_once('=')).collect();
        for (k, v) in [
            ("host", "10.0.0.5"),
            ("level", "red"),
            ("previous", "clear"),
            ("score", "0.91"),
            ("window", "12"),
            ("models", "argus-rf,ctu-rf"),
            ("botnetFlows", "40"),
            ("flows", "55"),
            ("flaggedWindows", "3"),
            ("peer1", "203.0.113.7:443"),
            ("peer1Flows", "12"),
            ("peer1Bytes", "3400"),
            ("peer2", "[2001:db8::1]:6667"),
        ] {
            assert_eq!(kv.get(k), Some(&v), "{k} in {l:?}");
        }
        let c = sink.shutdown(Duration::from_secs(2));
        assert_eq!((c.sent, c.send_errors), (1, 0), "{c:?}");
    }
}

/// Checks one EVE record against the alert it was made from (sensor "gw-test", seed 0).
fn check_eve(v: &serde_json::Value, a: &Alert) {
    assert_eq!(v["event_type"], "alert");
    assert_eq!(v["src_ip"], a.host.to_string());
    assert_eq!(v["src_port"], 49_152);
    assert_eq!(v["dest_ip"], "203.0.113.7");
    assert_eq!(v["dest_port"], 443);
    assert_eq!(v["proto"], "TCP");
    let cid = botd::community_id::v1(0, a.host, ip("203.0.113.7"), 6, 49_152, 443);
    assert_eq!(v["community_id"], cid.as_str());
    assert_eq!(v["host"], "gw-test");
    assert_eq!(v["alert"]["action"], "allowed");
    assert_eq!(v["alert"]["signature_id"], 1_990_000);
    assert_eq!(v["alert"]["category"], "A Network Trojan was detected");
    assert_eq!(v["alert"]["severity"], 1);
    assert!(v["timestamp"].as_str().unwrap().ends_with("+0000"), "{v}");
    let b = &v["botd"];
    assert_eq!(b["sensor"], "gw-test");
    assert_eq!(b["level"], "red");
    assert_eq!(b["botnet_flows"], 40);
    assert_eq!(b["peers"].as_array().unwrap().len(), 2);
    assert_eq!(b["peers"][0]["community_id"], cid.as_str());
    // The second peer's own port is not known: no Community ID rather than a wrong one.
    assert!(b["peers"][1].get("community_id").is_none(), "{v}");
}

/// `[alerts] json_file` and `syslog_format = "eve"`: one EVE record per alert, whole, through a
/// real rsyslog; a rule's alert is filed under the rule's signature.
#[test]
#[ignore = "system: rsyslog (tests/run.sh)"]
fn eve_json_in_the_file_and_over_syslog() {
    let rs = Rsyslog::start("eve");
    let mut s = settings(Some(SyslogTarget::Unix(rs.sock.clone())), Format::Eve);
    // On the local socket the syslog daemon adds the host name (as for RFC 3164).
    s.hostname = None;
    let json = rs.dir.join("eve.json");
    s.json_file = Some(json.clone());
    let mut sink = AlertSink::start(s).unwrap();
    let a = alert("10.0.0.5", Level::Red, Level::Clear, 12);
    let mut irc = alert("10.0.0.6", Level::Red, Level::Clear, 12);
    irc.rules = vec!["irc: IRC client dialogue with 203.0.113.7 port 6667 (NICK x)".into()];
    sink.send(a.clone(), 0);
    sink.send(irc, 0);
    let lines = rs.wait_lines(2, |l| l.input == "imuxsock" && l.app == "botd");
    let from_syslog: serde_json::Value = serde_json::from_str(&lines[0].msg).unwrap();
    check_eve(&from_syslog, &a);
    let c = sink.shutdown(Duration::from_secs(2));
    assert_eq!((c.sent, c.send_errors), (2, 0), "{c:?}");
    let text = std::fs::read_to_string(&json).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    check_eve(&records[0], &a);
    assert_eq!(records[1]["alert"]["signature_id"], 1_990_009);
    assert!(
        records[1]["alert"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("botd irc:")
    );
    assert_eq!(
        records[1]["botd"]["rules"][0],
        "irc: IRC client dialogue with 203.0.113.7 port 6667 (NICK x)"
    );
}

/// `[alerts] enterprise_number` names the SD-IDs; the sensor's name is a parameter.
#[test]
fn the_enterprise_number_and_sensor_reach_the_structured_data() {
    let mut a = alert("10.0.0.5", Level::Red, Level::Clear, 12);
    a.sensor = "gw-kitchen".into();
    let sd = a.structured_data(99_999);
    assert_eq!(sd["botd@99999"]["sensor"], "gw-kitchen");
    assert_eq!(sd["botd@99999"]["action"], "allowed");
    assert!(sd.contains_key("peer1@99999") && !sd.keys().any(|k| k.contains("32473")));
}

#[test]
#[ignore = "system: rsyslog (tests/run.sh)"]
fn alerts_after_an_rsyslog_restart_still_arrive() {
    let mut rs = Rsyslog::start("restart");
    let targets = [
        (SyslogTarget::Unix(rs.sock.clone()), "imuxsock"),
        (
            SyslogTarget::Tcp(format!("127.0.0.1:{}", rs.tcp_port)),
            "imtcp",
        ),
    ];
    let mut sinks: Vec<AlertSink> = targets
        .iter()
        .map(|(t, _)| AlertSink::start(settings(Some(t.clone()), Format::Rfc5424)).unwrap())
        .collect();
    let send_all = |sinks: &mut Vec<AlertSink>, window: u64| {
        for (i, sink) in sinks.iter_mut().enumerate() {
            let level = if window.is_multiple_of(2) {
                Level::Red
            } else {
                Level::Yellow
            };
            let a = alert(&format!("10.0.2.{i}"), level, Level::Clear, window);
            assert_eq!(sink.send(a, 0), SendOutcome::Queued);
        }
    };
    let arrived = |rs: &Rsyslog, window: u64| {
        for (i, (target, input)) in targets.iter().enumerate() {
            let lines = rs.wait_lines(1, |l| {
                l.input == *input
                    && l.msgid == "botd-alert"
                    && l.sd["botd@32473"]["window"] == window.to_string()
            });
            assert_eq!(
                lines[0].sd["botd@32473"]["host"],
                format!("10.0.2.{i}"),
                "{target}"
            );
        }
    };
    send_all(&mut sinks, 1);
    arrived(&rs, 1);

    // A restart between two alerts loses nothing: the failed write (unix) or the peer's close
    // seen before writing (TCP) makes the sink connect again and send.
    rs.stop();
    rs.spawn();
    send_all(&mut sinks, 2);
    arrived(&rs, 2);
    for (sink, (target, _)) in sinks.iter().zip(&targets) {
        let c = sink.counters();
        assert_eq!(
            (c.sent, c.send_errors, c.reconnects),
            (2, 0, 1),
            "{target}: {c:?}"
        );
    }

    // An alert while rsyslog is down is lost and counted; the ones after it come back arrive.
    rs.stop();
    send_all(&mut sinks, 3);
    for sink in &sinks {
        wait_counters(sink, |c| c.send_errors == 1);
    }
    rs.spawn();
    send_all(&mut sinks, 4);
    arrived(&rs, 4);
    for (sink, (target, _)) in sinks.into_iter().zip(&targets) {
        let c = sink.shutdown(Duration::from_secs(2));
        assert_eq!(
            (c.sent, c.send_errors, c.reconnects),
            (3, 1, 2),
            "{target}: {c:?}"
        );
    }
}

/// 10,000 sends to a syslog that is not there: each returns at once, the queue stays bounded,
/// what cannot go is counted, and shutdown keeps its deadline.
#[test]
fn syslog_away_never_blocks_the_caller() {
    let dir = temp_dir("away");
    // A closed TCP port: bound, then let go.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A socket file nobody reads any more (rsyslogd stopped without removing it).
    let stale = dir.join("stale.sock");
    drop(UnixDatagram::bind(&stale).unwrap());
    for target in [
        SyslogTarget::Unix(dir.join("missing.sock")),
        SyslogTarget::Unix(stale),
        SyslogTarget::Tcp(format!("127.0.0.1:{closed}")),
    ] {
        let mut s = settings(Some(target.clone()), Format::Rfc5424);
        s.queue_capacity = 100;
        let mut sink = AlertSink::start(s).unwrap();
        let n = 10_000u64;
        let mut slowest = Duration::ZERO;
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            sink.send(alert("10.0.0.5", Level::Red, Level::Clear, i), i);
            slowest = slowest.max(t.elapsed());
        }
        let took = start.elapsed();
        println!("{target}: {n} sends in {took:?}, slowest {slowest:?}");
        assert!(took < Duration::from_millis(500), "{target}: {took:?}");
        let c = sink.counters();
        assert_eq!(c.sent, 0, "{target}: {c:?}");
        let deadline = Duration::from_millis(300);
        let t = Instant::now();
        let c = sink.shutdown(deadline);
        let took = t.elapsed();
        assert!(
            took < deadline + Duration::from_millis(200),
            "{target}: shutdown {took:?}"
        );
        assert_eq!(c.sent, 0, "{target}: {c:?}");
        assert!(c.send_errors >= 1, "{target}: {c:?}");
        assert_eq!(accounted(&c), n, "{target}: {c:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A reader that never reads: its socket buffer fills, writes time out, the thread goes on.
#[test]
fn a_stalled_reader_costs_counted_errors_not_a_hang() {
    let dir = temp_dir("stalled");
    let path = dir.join("stalled.sock");
    let _reader = UnixDatagram::bind(&path).unwrap();
    let mut s = settings(Some(SyslogTarget::Unix(path)), Format::Rfc5424);
    s.queue_capacity = 64;
    let mut sink = AlertSink::start(s).unwrap();
    let n = 2_000u64;
    let start = Instant::now();
    for i in 0..n {
        sink.send(alert("10.0.0.5", Level::Red, Level::Clear, i), i);
    }
    let took = start.elapsed();
    assert!(took < Duration::from_millis(500), "{n} sends took {took:?}");
    let c = wait_counters(&sink, |c| c.send_errors >= 2);
    assert!(c.sent >= 1, "the buffer took some first: {c:?}");
    assert!(c.dropped_queue_full > 0, "{c:?}");
    let deadline = Duration::from_millis(500);
    let t = Instant::now();
    let c = sink.shutdown(deadline);
    let took = t.elapsed();
    assert!(
        took < deadline + Duration::from_millis(200),
        "shutdown {took:?}"
    );
    assert!(c.dropped_shutdown > 0, "the queue was still full: {c:?}");
    assert_eq!(accounted(&c), n, "{c:?}");
    let _ = std::fs::remove_dir_all(dir);
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_json(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let v = json_lines(path);
        if v.len() >= n {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{v:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn repeats_within_the_rate_limit_are_suppressed_and_level_changes_pass() {
    let dir = temp_dir("ratelimit");
    let json = dir.join("alerts.jsonl");
    let mut s = settings(None, Format::Rfc5424);
    s.rate_limit_ns = 100 * SEC;
    s.json_file = Some(json.clone());
    let mut sink = AlertSink::start(s).unwrap();
    use Level::*;
    let steps = [
        ("10.0.0.5", Yellow, Clear, 0, SendOutcome::Queued),
        ("10.0.0.5", Yellow, Yellow, 10, SendOutcome::Suppressed),
        ("10.0.0.5", Yellow, Yellow, 99, SendOutcome::Suppressed),
        ("10.0.0.6", Yellow, Yellow, 99, SendOutcome::Queued), // another host
        ("10.0.0.5", Red, Yellow, 100, SendOutcome::Queued),   // level change
        ("10.0.0.5", Red, Red, 150, SendOutcome::Suppressed),
        ("10.0.0.5", Red, Red, 200, SendOutcome::Queued), // rate limit passed
        ("10.0.0.5", Clear, Red, 201, SendOutcome::Queued), // level change down
        ("10.0.0.5", Clear, Clear, 202, SendOutcome::Suppressed),
    ];
    for (i, (host, level, prev, t, want)) in steps.iter().enumerate() {
        let got = sink.send(alert(host, *level, *prev, i as u64), t * SEC);
        assert_eq!(got, *want, "step {i}");
    }
    let c = sink.shutdown(Duration::from_secs(2));
    assert_eq!(c.suppressed_rate_limit, 4, "{c:?}");
    assert_eq!(c.sent, 5, "{c:?}");
    let windows: Vec<u64> = json_lines(&json)
        .iter()
        .map(|v| v["botd"]["window"].as_u64().unwrap())
        .collect();
    assert_eq!(windows, [0, 3, 4, 6, 7]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn json_lines_file_holds_one_object_per_alert() {
    let dir = temp_dir("json");
    let json = dir.join("alerts.jsonl");
    let mut s = settings(None, Format::Rfc5424);
    s.json_file = Some(json.clone());
    let mut sink = AlertSink::start(s.clone()).unwrap();
    let a = alert("10.0.0.5", Level::Red, Level::Clear, 12);
    sink.send(a.clone(), 0);
    // Flushed per alert: visible before shutdown.
    let v = wait_json(&json, 1);
    let o = &v[0]["botd"];
    assert_eq!(o["host"], "10.0.0.5");
    assert_eq!(o["level"], "red");
    assert_eq!(o["previous"], "clear");
    assert_eq!(o["score"], 0.91);
    assert_eq!(o["window"], 12);
    assert_eq!(o["window_start"], "2023-11-14T22:43:20.000000+0000");
    assert_eq!(o["window_end"], "2023-11-14T22:48:20.000000+0000");
    assert_eq!(v[0]["timestamp"], o["window_end"]);
    assert_eq!(o["models"], serde_json::json!(["argus-rf", "ctu-rf"]));
    assert_eq!(o["botnet_flows"], 40);
    assert_eq!(o["flows"], 55);
    assert_eq!(o["flagged_windows"], 3);
    let cid = botd::community_id::v1(0, ip("10.0.0.5"), ip("203.0.113.7"), 6, 49_152, 443);
    assert_eq!(
        o["peers"],
        serde_json::json!([
            {"ip": "203.0.113.7", "port": 443, "proto": "TCP", "host_port": 49152, "flows": 12,
             "bytes": 3400, "community_id": cid.as_str()},
            {"ip": "2001:db8::1", "port": 6667, "proto": "TCP", "flows": 9, "bytes": 1200},
        ])
    );
    sink.send(alert("10.0.0.6", Level::Yellow, Level::Clear, 13), 0);
    let c = sink.shutdown(Duration::from_secs(2));
    assert_eq!((c.sent, c.send_errors), (2, 0));
    // A new sink appends.
    let mut sink = AlertSink::start(s).unwrap();
    sink.send(alert("10.0.0.7", Level::Red, Level::Yellow, 14), 0);
    sink.shutdown(Duration::from_secs(2));
    let hosts: Vec<String> = json_lines(&json)
        .iter()
        .map(|v| v["src_ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, ["10.0.0.5", "10.0.0.6", "10.0.0.7"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn settings_parse() {
    assert_eq!(
        SyslogTarget::parse("unix:/dev/log").unwrap(),
        SyslogTarget::Unix("/dev/log".into())
    );
    assert_eq!(
        SyslogTarget::parse("udp:127.0.0.1:514").unwrap(),
        SyslogTarget::Udp("127.0.0.1:514".into())
    );
    assert_eq!(
        SyslogTarget::parse("tcp:[::1]:601").unwrap(),
        SyslogTarget::Tcp("[::1]:601".into())
    );
    for bad in [
        "",
        "/dev/log",
        "udp:127.0.0.1",
        "tcp::514",
        "tcp:h:99999",
        "ftp:x:1",
    ] {
        assert!(SyslogTarget::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        SyslogTarget::parse("tcp:localhost:601")
            .unwrap()
            .to_string(),
        "tcp:localhost:601"
    );
    assert_eq!(parse_facility("daemon").unwrap() as u8, 3 << 3);
    assert_eq!(parse_facility("LOCAL0").unwrap() as u8, 16 << 3);
    assert!(parse_facility("nope").is_err());
    assert_eq!(Format::parse("rfc3164").unwrap(), Format::Rfc3164);
    assert_eq!(Format::parse("5424").unwrap(), Format::Rfc5424);
    let mut s = settings(None, Format::Rfc5424);
    s.app_name = "bot d".into();
    assert!(AlertSink::start(s).is_err());
}

/// A local socket of the stream kind (as some syslog daemons make /dev/log): one message per
/// NUL-terminated record.
#[test]
fn a_unix_stream_socket_gets_nul_terminated_messages() {
    use std::io::Read;
    let dir = temp_dir("stream");
    let path = dir.join("stream.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut sink =
        AlertSink::start(settings(Some(SyslogTarget::Unix(path)), Format::Rfc5424)).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for w in 0..3 {
        sink.send(alert("10.0.0.5", Level::Red, Level::Clear, w), 0);
    }
    let mut got = Vec::new();
    while got.iter().filter(|&&b| b == 0).count() < 3 {
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).unwrap();
    let msgs: Vec<&str> = text.split_terminator('\0').collect();
    assert_eq!(msgs.len(), 3);
    for (w, m) in msgs.iter().enumerate() {
        assert!(m.starts_with("<153>1 "), "{m}");
        assert!(m.contains(" botd-alert [botd@32473 "), "{m}");
        assert!(m.contains(&format!(" window=\"{w}\"")), "{m}");
    }
    let c = sink.shutdown(Duration::from_secs(2));
    assert_eq!((c.sent, c.send_errors), (3, 0), "{c:?}");
    let _ = std::fs::remove_dir_all(dir);
}
