//! The live sensor, `botd run`.
//!
//! * In process: the live loop gives the same alerts as the offline pipeline on the same frames
//!   (with idle ticks between frames and a detector reload in the middle), and allocates nothing
//!   per frame in steady state (a counting allocator, per thread).
//! * End to end (as root, as CI runs it): a network namespace with a veth pair, a real rsyslogd
//!   (`tests/common/rsyslog.rs`), `botd run` on one end (dropping to `nobody`), `tcpreplay` of
//!   `tests/data/demo.pcap` (infected camera 192.168.1.66) into the other end; SIGHUP during the
//!   replay, SIGUSR1 for the counters, SIGTERM: the camera's red alert must reach rsyslog and botd
//!   must exit 0 within 2 s. Once with pnet, once with the TPACKET_V3 ring.
//!
//! Live windows follow the wall clock: the 32-minute capture replayed in ~3 s falls into one
//! window, which SIGTERM closes and scores (the offline analysis of the capture compressed that
//! way flags the camera red too, `compressed_capture_flags_the_camera`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::rsyslog::{Rsyslog, temp_dir};

use botd::alert::{Alert, Level};
use botd::capture::FileReader;
use botd::config::Config;
use botd::detect::Detector;
use botd::engine::{Engine, FlowSink, WindowInfo};
use botd::flow::{CloseReason, Flow};
use botd::live::LiveLoop;

// ------------------------------------------------------------------------------------------
// Counting allocator (per thread), as in tests/alloc.rs.

struct Counting;

thread_local! {
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations() -> u64 {
    MINE.with(|c| c.get())
}

// ------------------------------------------------------------------------------------------
// Shared helpers.

const SEC: u64 = 1_000_000_000;
const CAMERA: &str = "192.168.1.66";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> PathBuf {
    root().join("tests/data/demo.pcap")
}

fn frames(path: &Path) -> Vec<(u64, Vec<u8>, u32)> {
    let mut r = FileReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        out.push((f.ts_ns, f.data.to_vec(), f.orig_len));
    }
    out
}

fn test_config() -> Config {
    let mut cfg = Config::default();
    cfg.network.home = vec!["192.168.1.0/24".parse().unwrap()];
    cfg.models.dir = root().join("models");
    cfg
}

fn models(cfg: &Config) -> Arc<Vec<botd::model::Model>> {
    Arc::new(botd::analyze::load_models(&cfg.models.dir).unwrap())
}

/// The offline pipeline (as `botd analyze` wires it): engine + detector, alerts in order.
struct Offline<'a> {
    detector: &'a mut Detector,
    alerts: Vec<Alert>,
}

impl FlowSink for Offline<'_> {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.detector.flow(flow, reason, window);
    }
    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        self.detector.window_closed(window, flows);
        self.alerts.extend(self.detector.take_alerts());
    }
}

fn offline_alerts(cfg: &Config, frames: &[(u64, Vec<u8>, u32)], shift: u64) -> Vec<Alert> {
    let ecfg = cfg.engine_config();
    let concurrent = ecfg.window.map_or(1, |w| w.concurrent());
    let mut engine = Engine::new(ecfg);
    let mut detector = Detector::new(
        models(cfg),
        cfg.network.clone(),
        cfg.scoring.clone(),
        concurrent,
    );
    let mut sink = Offline {
        detector: &mut detector,
        alerts: Vec::new(),
    };
    for (ts, data, len) in frames {
        engine.on_frame(
            ts + shift,
            botd::capture::LinkType::Ethernet,
            data,
            *len,
            &mut sink,
        );
    }
    engine.finish(&mut sink);
    sink.alerts
}

// ------------------------------------------------------------------------------------------
// In process.

#[test]
fn live_loop_gives_the_offline_alerts() {
    let cfg = test_config();
    let frames = frames(&demo());
    let offline = offline_alerts(&cfg, &frames, 0);
    assert!(
        offline
            .iter()
            .any(|a| a.host.to_string() == CAMERA && a.level == Level::Red),
        "offline analysis flags the camera: {offline:?}"
    );

    // Live: idle ticks every 100 ms of capture time between frames (read timeouts), and a
    // reload with the same models halfway (a new detector generation that takes over the host
    // states when its first window closes).
    let models = models(&cfg);
    let mut lp = LiveLoop::new(
        &cfg,
        models.clone(),
        None,
        botd::capture::LinkType::Ethernet,
    );
    let mut next_tick = frames[0].0;
    for (i, (ts, data, len)) in frames.iter().enumerate() {
        while next_tick < *ts {
            lp.tick(next_tick);
            next_tick += SEC / 10;
        }
        lp.frame(*ts, data, *len);
        if i == frames.len() / 2 {
            let d = Detector::new(
                models.clone(),
                cfg.network.clone(),
                cfg.scoring.clone(),
                cfg.engine_config().window.unwrap().concurrent(),
            );
            lp.install_detector(d, true);
        }
    }
    lp.finish();
    assert_eq!(lp.kept, offline, "live and offline alerts differ");
    assert_eq!(lp.counters.reloads, 1);
}

#[test]
fn compressed_capture_flags_the_camera() {
    // The whole capture in 3 s (as a fast replay puts it into one live window).
    let cfg = test_config();
    let mut frames = frames(&demo());
    let first = frames[0].0;
    let span = frames.last().unwrap().0 - first;
    for f in &mut frames {
        f.0 = first + ((f.0 - first) as u128 * 3 * SEC as u128 / span as u128) as u64;
    }
    let alerts = offline_alerts(&cfg, &frames, 0);
    let red: Vec<_> = alerts.iter().filter(|a| a.level == Level::Red).collect();
    assert!(
        red.iter().any(|a| a.host.to_string() == CAMERA),
        "camera not red: {alerts:?}"
    );
    assert!(
        red.iter().all(|a| a.host.to_string() == CAMERA),
        "another host red: {red:?}"
    );
}

#[test]
fn live_loop_allocates_nothing_per_frame() {
    let cfg = test_config();
    let frames = frames(&demo());
    let span = frames.last().unwrap().0 - frames[0].0;
    let mut lp = LiveLoop::new(&cfg, models(&cfg), None, botd::capture::LinkType::Ethernet);
    let pass = |lp: &mut LiveLoop, shift: u64, per_frame: &mut Vec<u64>| {
        let mut next_tick = frames[0].0 + shift;
        for (ts, data, len) in &frames {
            let ts = ts + shift;
            while next_tick < ts {
                lp.tick(next_tick);
                next_tick += SEC / 10;
            }
            let flows = lp.engine().counters.flows;
            let before = allocations();
            lp.frame(ts, data, *len);
            let n = allocations() - before;
            // Frames that closed no flow record: the packet path alone.
            if lp.engine().counters.flows == flows {
                per_frame.push(n);
            }
        }
    };
    let mut warm = Vec::new();
    pass(&mut lp, 0, &mut warm);
    let mut steady = Vec::new();
    let before = allocations();
    // Past every window and timeout: new traffic to the engine.
    pass(&mut lp, span + 3600 * SEC, &mut steady);
    let total = allocations() - before;
    let on_packet_path: u64 = steady.iter().sum();
    assert!(
        steady.len() > 4000,
        "{} frames on the packet path",
        steady.len()
    );
    assert_eq!(
        on_packet_path,
        0,
        "{on_packet_path} allocations over {} frames that closed no flow",
        steady.len()
    );
    // Window closes and scoring allocate a little (alerts, evidence); far fewer than frames.
    assert!(
        total < frames.len() as u64 / 10,
        "{total} allocations over a pass of {} frames",
        frames.len()
    );
    eprintln!(
        "live loop, second pass: {} frames, {total} allocations (all in window closes and \
         scoring), 0 on the packet path",
        frames.len()
    );
}

// ------------------------------------------------------------------------------------------
// End to end.

/// One end-to-end test at a time: they share the CPU with the replay.
static E2E: Mutex<()> = Mutex::new(());

fn sh(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_root_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the live tests need root (network namespaces, packet sockets); CI runs them as root"
    );
    for tool in ["ip", "tcpreplay"] {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: apt-get install iproute2 tcpreplay (tests/run.sh installs them)"
        );
    }
}

/// A network namespace holding a veth pair `vb0`/`vb1`, both up, IPv6 off (no stray router
/// solicitations): nothing leaves the machine. Deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "botd-t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        for key in ["all", "default"] {
            sh(ns
                .exec("sysctl")
                .args(["-qw", &format!("net.ipv6.conf.{key}.disable_ipv6=1")]));
        }
        sh(Command::new("ip").args([
            "-n", &ns.name, "link", "add", "vb0", "type", "veth", "peer", "name", "vb1",
        ]));
        for l in ["vb0", "vb1"] {
            sh(Command::new("ip").args(["-n", &ns.name, "link", "set", l, "up"]));
        }
        ns
    }

    fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A running `botd run` whose stderr is collected line by line.
struct Botd {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Botd {
    fn start(ns: &Netns, config: &Path, capture: &str) -> Botd {
        let mut child = ns
            .exec(env!("CARGO_BIN_EXE_botd"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--capture", capture])
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start botd");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Botd { child, log }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).unwrap();
    }

    /// The first log line containing `needle` after `from` lines, waiting up to `secs`.
    fn wait_line(&mut self, needle: &str, from: usize, secs: u64) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "botd exited ({status}) before logging {needle:?}:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "botd did not log {needle:?} in {secs} s:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl Drop for Botd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` out of a counters line.
fn counter(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn end_to_end(capture: &str) {
    let _one = E2E.lock().unwrap_or_else(|e| e.into_inner());
    require_root_tools();
    let ns = Netns::new();
    let syslog = Rsyslog::start(&format!("live-{capture}"));
    let dir = temp_dir(&format!("live-{capture}"));
    let config = dir.join("botd.toml");
    let text = format!(
        r#"[capture]
interface = "vb0"
read_timeout_ms = 100
promiscuous = {promiscuous}

[network]
home = ["192.168.1.0/24"]

[models]
dir = "{models}"

[alerts]
syslog = true
syslog_target = "unix:{sock}"
facility = "local3"
rate_limit_secs = 0

[privileges]
user = "nobody"
group = "nogroup"

[state]
file = "{state}"
interval_secs = 1
"#,
        models = root().join("models").display(),
        // Both settings are exercised: the ring joins the interface promiscuously; pnet relies on
        // a veth delivering every frame to packet sockets anyway (which is also the only way
        // qemu-user, lacking SOL_PACKET options, can run the ARM binary's live test).
        promiscuous = capture == "ring",
        sock = syslog.sock.display(),
        state = dir.join("state.json").display(),
    );
    // botd writes the state file after dropping to nobody.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(&config, &text).unwrap();

    let mut botd = Botd::start(&ns, &config, capture);
    botd.wait_line("dropped privileges to nobody:nogroup", 0, 30);
    botd.wait_line(&format!("capturing on vb0 with {capture}"), 0, 60);

    // Replay at 2000 packets/s (~2.7 s) and reload halfway.
    let replay = ns
        .exec("tcpreplay")
        .args(["--intf1=vb1", "--pps=2000"])
        .arg(demo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpreplay");
    std::thread::sleep(Duration::from_millis(1200));
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGHUP);
    botd.wait_line("reloaded config and 2 models", mark, 20);
    let out = replay.wait_with_output().unwrap();
    assert!(out.status.success(), "tcpreplay: {out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    let sent: u64 = report
        .lines()
        .find(|l| l.trim_start().starts_with("Actual:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("tcpreplay report: {report}"));
    assert!(
        botd.child.try_wait().unwrap().is_none(),
        "botd still runs after the reload"
    );

    // A broken configuration is reported and the running one stays.
    std::fs::write(
        &config,
        text.replace("read_timeout_ms = 100", "read_timeout_ms = 0"),
    )
    .unwrap();
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGHUP);
    let failed = botd.wait_line("reload failed", mark, 10);
    assert!(failed.contains("read_timeout_ms"), "{failed}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        botd.child.try_wait().unwrap().is_none(),
        "botd still runs after a bad reload"
    );

    // Counters on SIGUSR1.
    std::thread::sleep(Duration::from_millis(300));
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGUSR1);
    let line = botd.wait_line("counters:", mark, 5);
    let packets = counter(&line, "packets");
    let frames = counter(&line, "frames");
    assert!(packets > 0, "{line}");
    assert!(
        frames * 100 >= sent * 99 && frames <= sent,
        "{capture}: captured {frames} of {sent} frames: {line}"
    );
    if capture == "ring" {
        assert_eq!(counter(&line, "kernel_drops"), 0, "{line}");
    }

    // SIGTERM: windows closed and scored, the alert sent, exit 0 within 2 s.
    let t = Instant::now();
    botd.signal(nix::sys::signal::Signal::SIGTERM);
    let status = loop {
        if let Some(s) = botd.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "botd still running 2 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "botd exit status {status}");
    let stopped = botd.wait_line("stopped:", 0, 2);
    assert!(counter(&stopped, "alerts_sent") >= 1, "{stopped}");

    let lines = syslog.wait_lines(1, |l| {
        l.msgid == "botd-alert"
            && l.sd
                .get("botd@32473")
                .is_some_and(|sd| sd.get("host").map(String::as_str) == Some(CAMERA))
    });
    let sd = &lines[0].sd["botd@32473"];
    assert_eq!(sd["level"], "red", "{lines:?}");
    assert_eq!(lines[0].severity, "alert");
    assert_eq!(lines[0].app, "botd");

    // The state file, written at shutdown, holds the live view; botd report renders it.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap();
    let camera = state["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["address"] == CAMERA)
        .expect("camera in the state file");
    assert_eq!(camera["was_red"], true, "{camera}");
    let out = Command::new(env!("CARGO_BIN_EXE_botd"))
        .args(["report", "--state"])
        .arg(dir.join("state.json"))
        .arg("--out")
        .arg(dir.join("report.html"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_pnet_end_to_end() {
    end_to_end("pnet");
}

#[test]
fn run_ring_end_to_end() {
    end_to_end("ring");
}

#[test]
fn run_reports_a_missing_interface_and_user() {
    let _one = E2E.lock().unwrap_or_else(|e| e.into_inner());
    require_root_tools();
    let dir = temp_dir("live-errors");
    let config = dir.join("botd.toml");
    let run = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[capture]\ninterface = \"nosuchif0\"\npromiscuous = false\n[models]\ndir = \"{}\"\n{extra}",
                root().join("models").display()
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_botd"))
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run("");
    assert!(err.contains("\"nosuchif0\": no such interface"), "{err}");
    let ns = Netns::new();
    let out = ns
        .exec(env!("CARGO_BIN_EXE_botd"))
        .args(["run", "--interface", "vb0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("privileges.user \"botd\": no such user"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
