//! `[response]`: the quarantine through real nftables (Debian's `nft`) in network namespaces.
//!
//! Each test builds its own network: a router namespace (IPv4 forwarding on) with a bridge
//! `br0` (10.77.0.1/24) to two LAN hosts in namespaces of their own (A 10.77.0.23 and B
//! 10.77.0.24, each with its own MAC) and a veth `wan0` (198.18.0.1/24) to an "outside"
//! namespace (198.18.0.2). Traffic between the LAN and the outside crosses the router's forward
//! hook, where botd's `table inet botd` drops quarantined hosts; reachability is a ping.
//!
//! botd runs as the real binary in the router namespace (`botd quarantine block|list|release`,
//! `botd run`), or in process on a thread inside it (the allowlist's device roles, a live loop
//! fed a capture). Nothing leaves the machine; namespaces go on drop, panics included.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/netns.rs"]
mod netns;
use netns::{Daemon, Ns, TempDir, require, sh, tool};

use botd::alert::{Action, Level};
use botd::config::{Config, ResponseConfig, ResponseMode};
use botd::devices::DeviceTable;
use botd::live::LiveLoop;
use botd::response::{Outcome, Quarantine};

const A: &str = "10.77.0.23";
const B: &str = "10.77.0.24";
const A_MAC: &str = "02:00:00:00:00:23";
const B_MAC: &str = "02:00:00:00:00:24";
const OUTSIDE: &str = "198.18.0.2";

fn tools() {
    require(&[
        tool("nft", "nftables"),
        tool("busybox", "busybox"),
        tool("timeout", "coreutils"),
    ]);
}

/// The router, the two LAN hosts and the outside.
struct Net {
    router: Ns,
    a: Ns,
    b: Ns,
    out: Ns,
}

impl Net {
    fn new(tag: &str) -> Net {
        let router = Ns::new(&format!("{tag}-r"));
        let a = Ns::new(&format!("{tag}-a"));
        let b = Ns::new(&format!("{tag}-b"));
        let out = Ns::new(&format!("{tag}-o"));
        sh(router.exec("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        router.ip(&["link", "add", "br0", "type", "bridge"]);
        router.ip(&["addr", "add", "10.77.0.1/24", "dev", "br0"]);
        router.ip(&["link", "set", "br0", "up"]);
        for (ns, port, addr, mac) in [(&a, "lan-a", A, A_MAC), (&b, "lan-b", B, B_MAC)] {
            router.ip(&[
                "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
            ]);
            router.ip(&["link", "set", port, "master", "br0", "up"]);
            ns.ip(&["link", "set", "eth0", "address", mac]);
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["route", "add", "default", "via", "10.77.0.1"]);
        }
        router.ip(&[
            "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", &out.name,
        ]);
        router.ip(&["addr", "add", "198.18.0.1/24", "dev", "wan0"]);
        router.ip(&["link", "set", "wan0", "up"]);
        out.ip(&["addr", "add", &format!("{OUTSIDE}/24"), "dev", "eth0"]);
        out.ip(&["link", "set", "eth0", "up"]);
        out.ip(&["route", "add", "default", "via", "198.18.0.1"]);
        let net = Net { router, a, b, out };
        // The bridge's ports take a moment to forward.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(reaches(&net.a, OUTSIDE) && reaches(&net.b, OUTSIDE)) {
            assert!(Instant::now() < deadline, "the test network does not route");
        }
        net
    }

    /// `botd ARGS` in the router namespace.
    fn botd(&self, args: &[&str], config: &Path) -> Output {
        let mut c = self.router.exec(env!("CARGO_BIN_EXE_botd"));
        c.args(args).arg("--config").arg(config);
        c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"))
    }

    /// `botd quarantine list` (which must succeed).
    fn list(&self, config: &Path) -> String {
        let out = self.botd(&["quarantine", "list"], config);
        assert!(out.status.success(), "list: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `nft ARGS` in the router namespace; its output.
    fn nft(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&sh(self.router.exec("nft").args(args)).stdout).into_owned()
    }
}

/// One ping from `ns` to `dst` answered within a second.
fn reaches(ns: &Ns, dst: &str) -> bool {
    ns.run(3, "busybox", &["ping", "-c", "1", "-W", "1", dst])
        .status
        .success()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A configuration with `[response]` as given (plus `extra` sections).
fn config(dir: &TempDir, response: &str, extra: &str) -> PathBuf {
    dir.write("botd.toml", &format!("{extra}\n[response]\n{response}\n"))
}

/// The list line of `addr`, if listed.
fn line_of(list: &str, addr: &str) -> Option<String> {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(addr))
        .map(str::to_string)
}

/// Waits (at most 10 s) until botd's log holds `needle` `n` times.
fn wait_count(botd: &mut Daemon, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = botd.log_text();
        if log.matches(needle).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not {n} times:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Seconds left of a list line.
fn left(line: &str) -> u64 {
    line.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, nftables (tests/run.sh)"]
fn a_blocked_host_is_cut_off_listed_and_released() {
    tools();
    let net = Net::new("qblock");
    let dir = TempDir::new("qblock");
    let cfg = config(
        &dir,
        "mode = \"enforce\"\ntimeout_secs = 60\nmax_timeout_secs = 90",
        "",
    );

    let out = net.botd(&["quarantine", "block", A, "--mac", A_MAC], &cfg);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains(&format!(
            "botd: quarantine: blocked {A} ({A_MAC}) for 60 s (block 1)"
        )),
        "{}",
        stderr(&out)
    );
    assert!(!reaches(&net.a, OUTSIDE), "A still gets out");
    assert!(!reaches(&net.out, A), "the outside still reaches A");
    assert!(reaches(&net.b, OUTSIDE), "B is cut off too");

    let list = net.list(&cfg);
    let line = line_of(&list, A).unwrap_or_else(|| panic!("{A} not listed:\n{list}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1..4], [A_MAC, "1", "60"], "{line}");
    assert!((55..=60).contains(&left(&line)), "{line}");
    assert!(line_of(&list, B).is_none(), "{list}");

    // A repeat doubles the timeout, up to the most.
    let out = net.botd(&["quarantine", "block", A, "--mac", A_MAC], &cfg);
    assert!(
        stderr(&out).contains(&format!("blocked {A} ({A_MAC}) for 90 s (block 2)")),
        "{out:?}"
    );
    let line = line_of(&net.list(&cfg), A).unwrap();
    assert!(line.contains(" 2 ") && line.contains(" 90 "), "{line}");

    let out = net.botd(&["quarantine", "release", A], &cfg);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains(&format!("botd: quarantine: released {A} {A_MAC}"))
            || stderr(&out).contains(&format!("botd: quarantine: released {A_MAC} {A}")),
        "{}",
        stderr(&out)
    );
    assert!(line_of(&net.list(&cfg), A).is_none());
    assert!(
        reaches(&net.a, OUTSIDE),
        "A still cut off after the release"
    );
    let again = net.botd(&["quarantine", "release", A], &cfg);
    assert!(!again.status.success() && stderr(&again).contains("not in quarantine"));

    // IPv6 goes to its own set.
    let out = net.botd(&["quarantine", "block", "fd00::23"], &cfg);
    assert!(
        stderr(&out).contains("blocked fd00::23 for 60 s (block 1)"),
        "{out:?}"
    );
    assert!(
        net.nft(&["list", "set", "inet", "botd", "quarantine6"])
            .contains("fd00::23")
    );
    assert!(line_of(&net.list(&cfg), "fd00::23").is_some());
    let out = net.botd(&["quarantine", "release", "fd00::23"], &cfg);
    assert!(out.status.success(), "{out:?}");

    // The MAC alone cuts A off whatever its address: a block of another address with A's MAC.
    let out = net.botd(&["quarantine", "block", "10.77.0.99", "--mac", A_MAC], &cfg);
    assert!(out.status.success(), "{out:?}");
    assert!(!reaches(&net.a, OUTSIDE), "A's MAC is not blocked");
    let out = net.botd(&["quarantine", "release", A_MAC], &cfg);
    assert!(stderr(&out).contains("10.77.0.99"), "{out:?}");
    assert!(reaches(&net.a, OUTSIDE));
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, nftables (tests/run.sh)"]
fn a_short_timeout_expires() {
    tools();
    let net = Net::new("qtime");
    let dir = TempDir::new("qtime");
    let cfg = config(&dir, "mode = \"enforce\"\ntimeout_secs = 2", "");
    let out = net.botd(&["quarantine", "block", A], &cfg);
    let blocked = Instant::now();
    assert!(
        stderr(&out).contains(&format!("blocked {A} for 2 s (block 1)")),
        "{out:?}"
    );
    assert!(!reaches(&net.a, OUTSIDE));
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(blocked.elapsed()));
    assert!(reaches(&net.a, OUTSIDE), "still cut off after the timeout");
    assert!(line_of(&net.list(&cfg), A).is_none());
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, nftables (tests/run.sh)"]
fn botd_run_survives_a_firewall_reload_repairs_a_flushed_ruleset_and_exits_leaving_the_block() {
    tools();
    let net = Net::new("qrun");
    let dir = TempDir::new("qrun");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let cfg = config(
        &dir,
        "mode = \"enforce\"\ntimeout_secs = 600",
        &format!(
            // Not promiscuous: the bridge hands its frames to packet sockets anyway, and qemu-user
            // (the ARM run) has no SOL_PACKET options.
            "[capture]\ninterface = \"br0\"\nread_timeout_ms = 100\npromiscuous = false\n\n[network]\nhome = \
             [\"10.77.0.0/24\"]\n\n[flows]\nwindow_secs = 1\noverlap_secs = 0\n\n[models]\ndir \
             = \"{}\"\n\n[alerts]\nsyslog = false\n\n[privileges]\nuser = \"nobody\"\ngroup = \
             \"nogroup\"\n",
            models.display()
        ),
    );
    // A host blocked before botd starts is taken over.
    let out = net.botd(&["quarantine", "block", A, "--mac", A_MAC], &cfg);
    assert!(out.status.success(), "{out:?}");
    let mut cmd = net.router.exec(env!("CARGO_BIN_EXE_botd"));
    cmd.arg("run").arg("--config").arg(&cfg);
    let mut botd = Daemon::spawn("botd run", cmd, dir.join("botd.log"));
    botd.wait_log("table inet botd ready, 1 hosts in quarantine", 30);
    let log = botd.wait_log("dropped privileges to nobody:nogroup", 5);
    assert!(log.contains("but CAP_NET_ADMIN"), "{log}");

    // A firewall reload of its own table (as fw4 or an `nft -f` does) leaves botd's alone.
    let fw = dir.write(
        "firewall.nft",
        "table inet filter\ndelete table inet filter\ntable inet filter {\n  chain forward {\n    \
         type filter hook forward priority 0; policy accept;\n  }\n}\n",
    );
    for _ in 0..2 {
        sh(net.router.exec("nft").arg("-f").arg(&fw));
    }
    assert!(net.nft(&["list", "tables"]).contains("table inet filter"));
    assert!(line_of(&net.list(&cfg), A).is_some(), "the reload freed A");
    assert!(!reaches(&net.a, OUTSIDE), "A gets out after the reload");
    assert!(reaches(&net.b, OUTSIDE));

    // `flush ruleset` removes botd's table; its next window close puts it back with A.
    sh(net.router.exec("nft").args(["flush", "ruleset"]));
    assert!(!net.nft(&["list", "tables"]).contains("botd"));
    botd.wait_log(
        "table inet botd was missing; re-created with 1 hosts in quarantine",
        10,
    );
    let line = line_of(&net.list(&cfg), A).expect("A is back in quarantine");
    assert!(line.contains(A_MAC) && left(&line) <= 600, "{line}");
    assert!(!reaches(&net.a, OUTSIDE), "A gets out after the repair");
    assert!(reaches(&net.b, OUTSIDE));

    // A release by hand is seen at the next check (not undone by a later repair), a block by
    // hand is taken over.
    let out = net.botd(&["quarantine", "release", A], &cfg);
    assert!(out.status.success(), "{out:?}");
    botd.wait_log(&format!("released {A} (removed from nft"), 10);
    assert!(
        reaches(&net.a, OUTSIDE),
        "A still cut off after the release"
    );
    let out = net.botd(&["quarantine", "block", B], &cfg);
    assert!(out.status.success(), "{out:?}");
    botd.wait_log(&format!("took over {B} ("), 10);
    sh(net
        .router
        .exec("nft")
        .args(["delete", "table", "inet", "botd"]));
    wait_count(
        &mut botd,
        "table inet botd was missing; re-created with 1 hosts in quarantine",
        2,
    );
    let list = net.list(&cfg);
    assert!(
        line_of(&list, B).is_some() && line_of(&list, A).is_none(),
        "{list}"
    );
    assert!(!reaches(&net.b, OUTSIDE) && reaches(&net.a, OUTSIDE));

    // A reload with another `[response]` keeps the hosts in quarantine.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("timeout_secs = 600", "timeout_secs = 300"),
    )
    .unwrap();
    // SAFETY: the pid of botd, our running child.
    unsafe { libc::kill(botd.pid().unwrap() as libc::pid_t, libc::SIGHUP) };
    botd.wait_log("; response enforce", 10);
    // Once at the start (A), once at the reload (B).
    wait_count(&mut botd, "enforce: table inet botd ready, 1 hosts", 2);
    assert!(line_of(&net.list(&cfg), B).is_some(), "the reload freed B");

    // Exit: the quarantine stays with its kernel timeout (README, Quarantine).
    let log = botd.stop(libc::SIGTERM, 5);
    assert!(log.contains("botd: stopped"), "{log}");
    assert!(line_of(&net.list(&cfg), B).is_some(), "botd's exit freed B");
    assert!(!reaches(&net.b, OUTSIDE), "B gets out after botd's exit");
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, nftables (tests/run.sh)"]
fn allowlisted_hosts_are_refused() {
    tools();
    let router = Ns::new("qallow");
    let dir = TempDir::new("qallow");
    router.ip(&["link", "add", "br0", "type", "bridge"]);
    router.ip(&["addr", "add", "10.77.0.1/24", "dev", "br0"]);
    let cfg = config(&dir, "mode = \"enforce\"\nallow = [\"10.77.0.48/29\"]", "");
    let botd = |args: &[&str]| {
        let mut c = router.exec(env!("CARGO_BIN_EXE_botd"));
        c.args(args).arg("--config").arg(&cfg);
        c.output().unwrap()
    };
    let out = botd(&["quarantine", "block", "10.77.0.50"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains(
            "botd: quarantine: refused to block 10.77.0.50: 10.77.0.50 is in [response] allow \
             (10.77.0.48/29)"
        ),
        "{}",
        stderr(&out)
    );
    // The sensor's own address (the router's, where botd runs).
    let out = botd(&["quarantine", "block", "10.77.0.1"]);
    assert!(
        !out.status.success()
            && stderr(&out).contains("refused to block 10.77.0.1: 10.77.0.1 is the sensor's own"),
        "{out:?}"
    );

    // The LAN's gateway and DNS server as the device table knows them, and an address sharing
    // the gateway's MAC: in process, on a thread in the router namespace.
    let outcomes = router
        .thread(|| {
            let cfg = ResponseConfig {
                mode: ResponseMode::Enforce,
                ..ResponseConfig::default()
            };
            let mut q = Quarantine::new(&cfg).unwrap().unwrap();
            let mut devices = DeviceTable::new(8);
            let ip = |s: &str| s.parse::<IpAddr>().unwrap();
            devices.observe([2, 0, 0, 0, 0, 0xfe], ip("10.77.0.254"), 1);
            devices.set_role(ip("10.77.0.254"), None, |r| r.gateway = true);
            devices.observe([2, 0, 0, 0, 0, 0x53], ip("10.77.0.53"), 1);
            devices.set_role(ip("10.77.0.53"), None, |r| r.dns_server = true);
            devices.observe([2, 0, 0, 0, 0, 0x01], ip("10.77.0.1"), 1);
            devices.observe([2, 0, 0, 0, 0, 0x01], ip("10.77.0.77"), 2);
            ["10.77.0.254", "10.77.0.53", "10.77.0.77"].map(|h| q.block(ip(h), &devices))
        })
        .join()
        .unwrap();
    let reasons: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Refused(r) => r.clone(),
            other => panic!("not refused: {other:?}"),
        })
        .collect();
    assert!(reasons[0].contains("gateway"), "{reasons:?}");
    assert!(reasons[1].contains("dns-server"), "{reasons:?}");
    assert!(
        reasons[2].contains("02:00:00:00:00:01") && reasons[2].contains("own address"),
        "{reasons:?}"
    );
    let list = botd(&["quarantine", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(text.lines().count(), 1, "something was blocked:\n{text}");
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, nftables (tests/run.sh)"]
fn dry_run_changes_nothing_in_nft() {
    tools();
    let net = Net::new("qdry");
    let dir = TempDir::new("qdry");
    let cfg = config(&dir, "mode = \"dry-run\"", "");
    let out = net.botd(&["quarantine", "block", A, "--mac", A_MAC], &cfg);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains(&format!(
            "botd: quarantine: would block {A} ({A_MAC}) for 3600 s (block 1; dry-run)"
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        net.nft(&["list", "ruleset"]).trim(),
        "",
        "dry-run touched nft"
    );
    assert!(reaches(&net.a, OUTSIDE));
    // Off blocks nothing either, and says so.
    let off = config(&dir, "mode = \"off\"", "");
    let out = net.botd(&["quarantine", "block", A], &off);
    assert!(
        !out.status.success() && stderr(&out).contains("\"off\""),
        "{out:?}"
    );
}

/// The DNS TXT command channel of ../shared/data (truth.toml: 192.168.100.121 malicious).
const CAPTURE: &str = "github-sbousseaden-PCAP-ATTACK/dns_txt_c2_commands.pcap";
const INFECTED: &str = "192.168.100.121";

/// A live loop fed the capture with the given `[response]`; its alerts and quarantine.
fn live(response: ResponseConfig) -> (Vec<botd::alert::Alert>, Quarantine) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = Config::default();
    cfg.network.home = vec!["192.168.100.0/24".parse().unwrap()];
    cfg.models.dir = root.join("models");
    cfg.response = response;
    let models = Arc::new(botd::pipeline::load_models(&cfg.models.dir).unwrap());
    let mut lp = LiveLoop::new(&cfg, models, None, botd::capture::LinkType::Ethernet);
    lp.replace_quarantine(Quarantine::new(&cfg.response).unwrap());
    let path = root.join("../shared/data").join(CAPTURE);
    let mut r = botd::capture::FileReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    while let Some(f) = r.next_frame().unwrap() {
        assert_eq!(f.link, botd::capture::LinkType::Ethernet);
        lp.frame(f.ts_ns, f.data, f.orig_len);
    }
    lp.finish();
    let q = lp.replace_quarantine(None).unwrap();
    (std::mem::take(&mut lp.kept), q)
}

#[test]
#[ignore = "system: root, network namespaces, tcpdump, nftables (tests/run.sh); data: ../shared/data"]
fn the_red_alert_of_a_real_capture_reaches_the_quarantine() {
    tools();
    let infected: IpAddr = INFECTED.parse().unwrap();
    // Dry-run: the red host would be blocked; its alert stays `allowed`.
    let (alerts, q) = live(ResponseConfig {
        mode: ResponseMode::DryRun,
        ..ResponseConfig::default()
    });
    let red: Vec<_> = alerts.iter().filter(|a| a.level == Level::Red).collect();
    assert!(
        red.iter().any(|a| a.host == infected),
        "not red: {alerts:?}"
    );
    assert!(alerts.iter().all(|a| a.action == Action::Allowed));
    assert_eq!(q.blocks(infected), 1);

    // Enforce, in a namespace of its own: the alert leaves `blocked`, nft holds the host.
    let ns = Ns::new("qlive");
    let (alerts, q) = ns
        .thread(|| {
            live(ResponseConfig {
                mode: ResponseMode::Enforce,
                ..ResponseConfig::default()
            })
        })
        .join()
        .unwrap();
    let blocked: Vec<_> = alerts
        .iter()
        .filter(|a| a.action == Action::Blocked)
        .collect();
    assert!(
        blocked
            .iter()
            .any(|a| a.host == infected && a.level == Level::Red),
        "{alerts:?}"
    );
    assert!(blocked.iter().all(|a| a.level == Level::Red));
    assert_eq!(q.active().collect::<Vec<_>>(), [infected]);
    let listed = sh(ns
        .exec("nft")
        .args(["list", "set", "inet", "botd", "quarantine4"]));
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(INFECTED), "{text}");
}
