//! "Many gateways, one place": botd on two gateways -> each gateway's own rsyslog -> TCP with
//! TLS -> a central rsyslog, with real programs in three network namespaces (gw1, gw2, central;
//! a veth pair from each gateway to central). The rsyslog configurations, botd's settings and the
//! certificate script are the ones `docs/fleet.md` shows (`docs/fleet/`), read from there with
//! only paths and the retry interval replaced, so the documentation and the test cannot drift.
//!
//! Central is down while the gateways' botd runs send their alerts (and gw1's rsyslog is
//! restarted meanwhile, so its alerts wait on disk); then central starts, and every alert botd
//! reported sent must arrive, whole (each structured-data parameter equal to botd's JSON record
//! of it), from the right gateway, told apart by `sensor=` (rsyslog delivers at least once: an
//! exact copy of the first held alert is tolerated, bounded). A certificate the CA signed for a
//! name central does not list is refused.
//!
//! Needs root, iproute2, openssl, rsyslog and rsyslog-gnutls (and tcpdump, which the shared
//! namespace helper checks for; tests/run.sh installs them all); fails, never skips, without them. `BOTD_NETNS_KEEP=1` keeps the folder (configs, logs, certificates).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "common/netns.rs"]
mod netns;
#[path = "common/rsyslog.rs"]
mod rsyslog;

use netns::{Daemon, Ns, TempDir, Tool, require, sh, tool};
use rsyslog::{RSYSLOGD, Sd, parse_sd};

/// Central's service address (on its loopback) and the name its certificate carries.
const CENTRAL_ADDR: &str = "10.78.0.1";
const CENTRAL_NAME: &str = "central.example.net";
/// The port of `docs/fleet/central.conf` (syslog over TLS, RFC 5425).
const TLS_PORT: u16 = 6514;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shared(p: &str) -> PathBuf {
    root().join("../shared/data").join(p)
}

/// A file of `docs/fleet/` with each `(from, to)` replaced; every `from` must be there, so a
/// change to the documented file that the test no longer matches fails here.
fn doc_file(name: &str, subs: &[(&str, String)]) -> String {
    let path = root().join("docs/fleet").join(name);
    let mut text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (from, to) in subs {
        assert!(
            text.contains(from),
            "{} no longer holds {from:?}",
            path.display()
        );
        text = text.replace(from, to);
    }
    text
}

/// `docs/fleet/make-certs.sh DIR ARGS`.
fn make_cert(dir: &Path, args: &[&str]) {
    sh(Command::new("sh")
        .arg(root().join("docs/fleet/make-certs.sh"))
        .arg(dir)
        .args(args));
}

/// A host of the test: its namespace, folder and rsyslogd.
struct Node {
    // First, so rsyslogd is killed before its namespace goes (fields drop in order).
    rsyslog: Option<Daemon>,
    name: &'static str,
    ns: Ns,
    dir: PathBuf,
    conf: PathBuf,
}

impl Node {
    fn new(name: &'static str, top: &TempDir) -> Node {
        let dir = top.join(name);
        fs::create_dir_all(dir.join("work")).unwrap();
        fs::create_dir_all(dir.join("tls")).unwrap();
        Node {
            name,
            ns: Ns::new(&format!("fleet-{name}")),
            conf: dir.join("rsyslog.conf"),
            dir,
            rsyslog: None,
        }
    }

    /// The documented drop-in under a preamble that stands for Debian's /etc/rsyslog.conf: the
    /// work directory (the disk queue's place) and, on gateways, imuxsock without the system
    /// socket (the test must not take the machine's /dev/log).
    fn write_conf(&self, doc: &str, subs: &[(&str, String)], imuxsock: bool) {
        let mut text = format!("global(workDirectory=\"{}\")\n", self.work().display());
        if imuxsock {
            text.push_str("module(load=\"imuxsock\" SysSock.Use=\"off\")\n");
        }
        text.push_str(&doc_file(doc, subs));
        fs::write(&self.conf, text).unwrap();
    }

    /// The CA's certificate and `cert`'s certificate and key in the host's `tls/` folder, under
    /// the names the documented config gives them (`ca.pem`, `AS.pem`, `AS.key`).
    fn install_tls(&self, ca: &Path, cert: &str, as_name: &str) -> PathBuf {
        let tls = self.dir.join("tls");
        fs::copy(ca.join("ca.pem"), tls.join("ca.pem")).unwrap();
        for ext in ["pem", "key"] {
            fs::copy(
                ca.join(format!("{cert}.{ext}")),
                tls.join(format!("{as_name}.{ext}")),
            )
            .unwrap();
        }
        tls
    }

    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    fn start_rsyslog(&mut self) {
        assert!(self.rsyslog.is_none());
        let mut cmd = self.ns.exec(RSYSLOGD);
        cmd.arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"));
        let n = fs::read_dir(&self.dir).unwrap().count();
        let log = self.dir.join(format!("rsyslogd-{n}.log"));
        self.rsyslog = Some(Daemon::spawn(
            &format!("rsyslogd on {}", self.name),
            cmd,
            log,
        ));
    }

    /// SIGTERM, as `systemctl stop rsyslog` does; returns rsyslogd's output.
    fn stop_rsyslog(&mut self) -> String {
        let mut d = self.rsyslog.take().expect("rsyslogd running");
        d.stop(libc::SIGTERM, 15)
    }
}

/// Waits (at most `secs`) for `path` to exist.
fn wait_path(path: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} missing after {secs} s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One line of `docs/fleet/central.conf`'s template: `TIME FROMIP HOSTNAME APP SEVERITY MSGID
/// SD MSG`.
#[derive(Debug)]
struct Received {
    line: String,
    from: String,
    app: String,
    msgid: String,
    sd: Sd,
    msg: String,
}

fn parse_received(line: &str) -> Received {
    let f: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(f.len(), 7, "short line {line:?}");
    // The structured data runs to the first `]` outside a quoted value not followed by `[`.
    let rest = f[6];
    let end = if rest.starts_with('-') {
        1
    } else {
        let b = rest.as_bytes();
        let (mut i, mut quoted) = (0, false);
        loop {
            assert!(i < b.len(), "unterminated structured data in {line:?}");
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted && b.get(i + 1) != Some(&b'[') => break i + 1,
                _ => {}
            }
            i += 1;
        }
    };
    Received {
        line: line.into(),
        from: f[1].into(),
        app: f[3].into(),
        msgid: f[5].into(),
        sd: parse_sd(&rest[..end]).unwrap_or_else(|| panic!("bad structured data in {line:?}")),
        msg: rest[end..].trim().into(),
    }
}

/// RFC 3339 (`2024-03-14T18:02:12.181238123Z`, or no fraction at whole seconds) and Suricata's
/// `2024-03-14T18:02:12.181238+0000` name the same microsecond.
fn same_instant(rfc: &str, eve: &str) -> bool {
    let Some((secs, micros)) = eve.trim_end_matches("+0000").split_once('.') else {
        return false;
    };
    let rfc = rfc.trim_end_matches('Z');
    let (rfc_secs, frac) = rfc.split_once('.').unwrap_or((rfc, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    rfc_secs == secs && frac == micros
}

/// The structured data botd's JSON record of an alert stands for: botd's element (found by its
/// `sensor` parameter, not by its SD-ID) and one element per peer, in order.
fn expected_sd(eve: &Value) -> (BTreeMap<String, String>, Vec<BTreeMap<String, String>>) {
    let a = &eve["botd"];
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let mut main: BTreeMap<String, String> = [
        ("host", s(&a["host"])),
        ("level", s(&a["level"])),
        ("previous", s(&a["previous"])),
        ("window", s(&a["window"])),
        ("windowStart", s(&a["window_start"])),
        ("windowEnd", s(&a["window_end"])),
        (
            "models",
            a["models"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("botnetFlows", s(&a["botnet_flows"])),
        ("flows", s(&a["flows"])),
        ("flaggedWindows", s(&a["flagged_windows"])),
        ("action", s(&eve["alert"]["action"])),
        ("sensor", s(&a["sensor"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(d) = a.get("device") {
        main.insert("mac".into(), s(&d["mac"]));
        // The DHCP host name only when the device gave one (the JSON leaves it out).
        if let Some(h) = d["hostname"].as_str().filter(|h| !h.is_empty()) {
            main.insert("hostname".into(), h.to_string());
        }
    }
    let peers = a["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut m: BTreeMap<String, String> = [("addr", "ip"), ("port", "port")]
                .into_iter()
                .chain([("flows", "flows"), ("bytes", "bytes")])
                .map(|(sd, json)| (sd.to_string(), s(&p[json])))
                .collect();
            if let Some(n) = p.get("name").filter(|n| !n.is_null()) {
                m.insert("name".into(), s(n));
            }
            m
        })
        .collect();
    (main, peers)
}

/// Checks a received alert against botd's record of it.
fn same_alert(r: &Received, a: &Value) -> Result<(), String> {
    let (mut want, peers) = expected_sd(a);
    let (id, got) =
        r.sd.iter()
            .find(|(_, p)| p.contains_key("sensor"))
            .ok_or("no element with sensor=")?;
    let mut got = got.clone();
    let score: f64 = got
        .remove("score")
        .ok_or("no score")?
        .parse()
        .map_err(|e| format!("score: {e}"))?;
    // Within an ulp: serde_json's default number parser is not correctly rounded (it reads
    // botd's "0.45699999999999996" as 0.457), Rust's str::parse is.
    let json_score = a["botd"]["score"].as_f64().unwrap();
    if (score - json_score).abs() > f64::EPSILON * json_score.abs().max(1.0) {
        return Err(format!("score {score} != {}", a["botd"]["score"]));
    }
    want.remove("score");
    // The window bounds: RFC 3339 to the nanosecond in the structured data, Suricata's format
    // to the microsecond in the EVE record.
    for key in ["windowStart", "windowEnd"] {
        let (sd, eve) = (got.remove(key), want.remove(key));
        match (sd, eve) {
            (Some(sd), Some(eve)) if same_instant(&sd, &eve) => {}
            (sd, eve) => return Err(format!("{key}: {sd:?} != {eve:?}")),
        }
    }
    if got != want {
        return Err(format!("[{id}] {got:?} != {want:?}"));
    }
    if r.sd.len() != 1 + peers.len() {
        return Err(format!("{} elements, {} peers", r.sd.len(), peers.len()));
    }
    for (i, want) in peers.iter().enumerate() {
        let prefix = format!("peer{}@", i + 1);
        let got =
            r.sd.iter()
                .find(|(k, _)| k.starts_with(&prefix))
                .map(|(_, p)| p)
                .ok_or(format!("no {prefix}"))?;
        if got != want {
            return Err(format!("{prefix}: {got:?} != {want:?}"));
        }
    }
    Ok(())
}

/// Sends one line over TLS to central from `ns` with a client certificate, as `openssl
/// s_client` (which sends stdin and leaves at its end).
fn send_tls(ns: &Ns, certs: &Path, name: &str, line: &str) {
    let mut child = ns
        .exec("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("{CENTRAL_ADDR}:{TLS_PORT}"))
        .arg("-servername")
        .arg(CENTRAL_NAME)
        .arg("-CAfile")
        .arg(certs.join("ca.pem"))
        .arg("-cert")
        .arg(certs.join(format!("{name}.pem")))
        .arg("-key")
        .arg(certs.join(format!("{name}.key")))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let _ = child.wait();
}

/// The end-to-end check, central down first. Takes about 10 s.
#[test]
#[ignore = "system: root, network namespaces, rsyslog-gnutls, openssl (tests/run.sh); data: ../shared/data"]
fn alerts_of_two_gateways_reach_central_over_tls_after_an_outage() {
    require(&[
        tool("openssl", "openssl"),
        tool(RSYSLOGD, "rsyslog"),
        Tool {
            check: "ls /usr/lib/*/rsyslog/lmnsd_gtls.so".into(),
            package: "rsyslog-gnutls",
        },
    ]);
    let started = Instant::now();
    let top = TempDir::new("fleet");

    // Certificates, made by the documented script: the CA, central's, one per gateway, and
    // one signed by the same CA for a name central does not list.
    let ca = top.join("ca");
    make_cert(&ca, &["ca"]);
    make_cert(&ca, &["server", CENTRAL_NAME]);
    for n in ["gw1.example.net", "gw2.example.net", "rogue.example.net"] {
        make_cert(&ca, &["client", n]);
    }

    let mut central = Node::new("central", &top);
    central
        .ns
        .ip(&["addr", "add", &format!("{CENTRAL_ADDR}/32"), "dev", "lo"]);
    let mut gws: Vec<Node> = Vec::new();
    for (i, name) in ["gw1", "gw2"].into_iter().enumerate() {
        let gw = Node::new(name, &top);
        // A veth pair per gateway: 10.78.N.2 on the gateway's eth0, 10.78.N.1 on central's cN;
        // the gateway reaches central's service address through it.
        let n = i + 1;
        let cif = format!("c{n}");
        central.ns.ip(&[
            "link",
            "add",
            &cif,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &gw.ns.name,
        ]);
        central
            .ns
            .ip(&["addr", "add", &format!("10.78.{n}.1/24"), "dev", &cif]);
        central.ns.ip(&["link", "set", &cif, "up"]);
        gw.ns
            .ip(&["addr", "add", &format!("10.78.{n}.2/24"), "dev", "eth0"]);
        gw.ns.ip(&["link", "set", "eth0", "up"]);
        gw.ns
            .ip(&["route", "add", "default", "via", &format!("10.78.{n}.1")]);
        // The documented config names central by DNS name: `ip netns exec` puts this over
        // /etc/hosts (removed with the namespace).
        let etc = Path::new("/etc/netns").join(&gw.ns.name);
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n{CENTRAL_ADDR} {CENTRAL_NAME}\n"),
        )
        .unwrap();

        let tls = gw.install_tls(&ca, &format!("{name}.example.net"), "gateway");
        gw.write_conf(
            "gateway.conf",
            &[
                ("/etc/rsyslog-tls/", format!("{}/", tls.display())),
                (
                    "/run/botd/log.sock",
                    gw.dir.join("log.sock").display().to_string(),
                ),
                // Retries every second, not 30, to keep the test short.
                (
                    "action.resumeInterval=\"30\"",
                    "action.resumeInterval=\"1\"".into(),
                ),
            ],
            true,
        );
        gws.push(gw);
    }
    let tls = central.install_tls(&ca, CENTRAL_NAME, "central");
    let fleet_log = central.dir.join("botd-fleet.log");
    central.write_conf(
        "central.conf",
        &[
            ("/etc/rsyslog-tls/", format!("{}/", tls.display())),
            ("/var/log/botd-fleet.log", fleet_log.display().to_string()),
        ],
        false,
    );

    // The gateways' rsyslog up, central not: botd's alerts must wait at the gateways.
    for gw in &mut gws {
        gw.start_rsyslog();
        wait_path(&gw.dir.join("log.sock"), 10);
    }
    let down = gws[0]
        .ns
        .thread(|| {
            let addr = SocketAddr::from(([10, 78, 0, 1], TLS_PORT));
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err()
        })
        .join()
        .unwrap();
    assert!(down, "central accepts connections before it was started");

    // Real botd runs in each gateway, with the documented settings: gw1 on WannaCry's spreading
    // (several hosts), gw2 on the demo capture and a Stratosphere one (one run each).
    let runs = [
        (
            "gw1",
            vec![shared(
                "malcolm-pcap/plugins/zeek-EternalSafety/wannacry.pcap",
            )],
        ),
        (
            "gw2",
            vec![
                root().join("tests/data/demo.pcap"),
                shared("stratosphere-slips/pcap/test7-malicious.pcap"),
            ],
        ),
    ];
    let mut records: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (gw, (name, captures)) in gws.iter().zip(runs) {
        assert_eq!(gw.name, name);
        let jsonl = gw.dir.join("alerts.jsonl");
        let mut toml = doc_file(
            "botd.toml",
            &[
                ("name = \"gw1\"", format!("name = {name:?}")),
                (
                    "/run/botd/log.sock",
                    gw.dir.join("log.sock").display().to_string(),
                ),
                // Every alert sent, none held back as a repeat.
                ("rate_limit_secs = 300", "rate_limit_secs = 0".into()),
            ],
        );
        // [alerts] is the file's last table: botd's own record of each alert, to check what
        // central gets against.
        toml.push_str(&format!("json_file = {:?}\n", jsonl.display().to_string()));
        let conf = gw.dir.join("botd.toml");
        fs::write(&conf, toml).unwrap();
        let mut sent = 0;
        for (k, capture) in captures.iter().enumerate() {
            let json = gw.dir.join(format!("analyze-{k}.json"));
            let out = sh(gw
                .ns
                .exec(env!("CARGO_BIN_EXE_botd"))
                .current_dir(root())
                .arg("analyze")
                .arg("--syslog")
                .arg("--config")
                .arg(&conf)
                .arg("--models")
                .arg(root().join("models"))
                .arg("--json")
                .arg(&json)
                .arg(capture));
            let doc: Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
            let a = &doc["alerts"];
            assert!(
                a["send_errors"] == 0 && a["dropped_queue_full"] == 0,
                "{name}: {a}\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            assert_eq!(a["suppressed_rate_limit"], 0, "{name}: {a}");
            sent += a["sent"].as_u64().unwrap();
        }
        let lines: Vec<Value> = fs::read_to_string(&jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, sent, "{name}: JSON lines vs sent");
        records.insert(name, lines);
    }
    assert!(records["gw1"].len() >= 3, "{:?}", records["gw1"]);
    assert!(records["gw2"].len() >= 2, "{:?}", records["gw2"]);

    // gw1's rsyslog stops (as for a reboot) while central is still down: its queue goes to
    // disk (queue.saveOnShutdown) and comes back with the next start. The pause lets rsyslog
    // read botd's last datagrams off the socket first (unread ones would die with it).
    std::thread::sleep(Duration::from_millis(500));
    let log = gws[0].stop_rsyslog();
    let qi = gws[0].work().join("botd-fleet.qi");
    assert!(
        qi.exists(),
        "no queue saved in {}: {:?}\nrsyslogd: {log}",
        gws[0].work().display(),
        fs::read_dir(gws[0].work())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    // Started again, it has alerts to send (the saved ones) and tries central, still down.
    gws[0].start_rsyslog();
    gws[0]
        .rsyslog
        .as_mut()
        .unwrap()
        .wait_log("cannot connect to central.example.net:6514", 10);

    // Central comes up; every alert must arrive, whole, from its gateway.
    central.start_rsyslog();
    let want: usize = records.values().map(Vec::len).sum();
    let deadline = Instant::now() + Duration::from_secs(40);
    // botd's lines at central, and how many distinct ones.
    let botd_lines = |text: &str| -> (Vec<Received>, usize) {
        let all: Vec<Received> = text
            .lines()
            .map(parse_received)
            .filter(|r| r.app == "botd")
            .collect();
        let distinct = all.iter().map(|r| &r.line).collect::<BTreeSet<_>>().len();
        (all, distinct)
    };
    loop {
        let text = fs::read_to_string(&fleet_log).unwrap_or_default();
        let (_, distinct) = botd_lines(&text);
        if distinct >= want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "central has {distinct} of {want} alerts after 40 s:\n{text}\ngw1: {}\ngw2: {}\ncentral: {}",
            gws[0].rsyslog.as_ref().unwrap().log_text(),
            gws[1].rsyslog.as_ref().unwrap().log_text(),
            central.rsyslog.as_ref().unwrap().log_text(),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A moment more: a late duplicate or stray message would show up now.
    std::thread::sleep(Duration::from_millis(1500));
    let text = fs::read_to_string(&fleet_log).unwrap();
    let (received, distinct) = botd_lines(&text);
    assert_eq!(distinct, want, "{text}");

    // Each distinct line is one of botd's alerts, whole, from the gateway its sensor= names.
    let mut unmatched = records.clone();
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in &received {
        assert_eq!(r.msgid, "botd-alert", "{r:?}");
        let sensor =
            r.sd.values()
                .find_map(|p| p.get("sensor"))
                .unwrap_or_else(|| panic!("no sensor= in {r:?}"));
        let (sensor, n) = match sensor.as_str() {
            "gw1" => ("gw1", 1),
            "gw2" => ("gw2", 2),
            s => panic!("unknown sensor {s:?}: {r:?}"),
        };
        assert_eq!(r.from, format!("10.78.{n}.2"), "{r:?}");
        if !seen.insert(&r.line) {
            *copies.entry(sensor).or_default() += 1;
            continue;
        }
        let pending = unmatched.get_mut(sensor).unwrap();
        let i = pending
            .iter()
            .position(|a| same_alert(r, a).is_ok())
            .unwrap_or_else(|| {
                let why: Vec<String> = pending
                    .iter()
                    .map(|a| same_alert(r, a).unwrap_err())
                    .collect();
                panic!("{r:?} matches none of {sensor}'s alerts: {why:#?}")
            });
        let a = pending.remove(i);
        assert!(
            r.msg.contains(a["src_ip"].as_str().unwrap()),
            "{r:?} vs {a}"
        );
    }
    assert!(
        unmatched.values().all(Vec::is_empty),
        "never arrived: {unmatched:#?}"
    );
    // rsyslog delivers at least once: when an outage ends it may send the first message it held
    // again (rsyslog/rsyslog#2767: "We prefer duplication over loss"). An exact copy, at most
    // one per rsyslogd run that held messages (gw1 ran twice, gw2 once); more is a regression.
    assert!(
        copies.get("gw1").copied().unwrap_or(0) <= 2
            && copies.get("gw2").copied().unwrap_or(0) <= 1,
        "too many copies {copies:?}:\n{text}"
    );

    // Mutual authentication by name: a certificate of the same CA for an unlisted name is
    // refused, while the same client with a listed one gets through (so the refusal is the
    // name's doing).
    send_tls(
        &gws[1].ns,
        &ca,
        "rogue.example.net",
        "<14>1 - rogue fleettest - - - from-an-unlisted-name",
    );
    send_tls(
        &gws[1].ns,
        &ca,
        "gw2.example.net",
        "<14>1 - gw2 fleettest - - - from-a-listed-name",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&fleet_log)
        .unwrap()
        .contains("from-a-listed-name")
    {
        assert!(
            Instant::now() < deadline,
            "the listed client's line never came"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let text = fs::read_to_string(&fleet_log).unwrap();
    assert!(!text.contains("from-an-unlisted-name"), "{text}");
    let central_log = central.rsyslog.as_ref().unwrap().log_text();
    assert!(
        central_log.contains("peer name not authorized")
            && central_log.contains("DNSname: rogue.example.net"),
        "central did not say why it refused:\n{central_log}"
    );

    eprintln!(
        "{want} alerts ({} gw1, {} gw2; copies {copies:?}) in {:.1} s",
        records["gw1"].len(),
        records["gw2"].len(),
        started.elapsed().as_secs_f64()
    );
}

/// `docs/fleet.md` shows each tested file whole, as it is.
#[test]
fn the_guide_shows_the_tested_files() {
    let guide = fs::read_to_string(root().join("docs/fleet.md")).unwrap();
    for f in ["gateway.conf", "central.conf", "botd.toml", "make-certs.sh"] {
        let text = fs::read_to_string(root().join("docs/fleet").join(f)).unwrap();
        assert!(
            guide.contains(&text),
            "docs/fleet.md lacks docs/fleet/{f} as it is"
        );
    }
}
