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
use common::offline::Offline;
use common::rsyslog::{Rsyslog, temp_dir};

use botd::alert::{Alert, Level};
use botd::capture::FileReader;
use botd::config::Config;
use botd::detect::Detector;
use botd::engine::Engine;
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

/// Waits for botd's alert about the camera in rsyslog's output.
fn camera_alerts(syslog: &Rsyslog) -> Vec<common::rsyslog::Line> {
    syslog.wait_lines(1, |l| {
        l.msgid == "botd-alert"
            && l.sd
                .get("botd@32473")
                .is_some_and(|sd| sd.get("host").map(String::as_str) == Some(CAMERA))
    })
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> PathBuf {
    root().join("tests/data/demo.pcap")
}

/// One pass of `frames` through the loop inline, ticking every 100 ms of capture time: warms
/// the engine and detector up (and gives them hosts) before a test measures the detached loop.
fn warm_up(lp: &mut LiveLoop, frames: &[(u64, Vec<u8>, u32)]) {
    let mut next_tick = frames[0].0;
    for (ts, data, len) in frames {
        while next_tick < *ts {
            lp.tick(next_tick);
            next_tick += SEC / 10;
        }
        lp.frame(*ts, data, *len);
    }
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
    Arc::new(botd::pipeline::load_models(&cfg.models.dir).unwrap())
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
    let windows_before = lp.engine().counters.windows_closed;
    // Past every window and timeout: new traffic to the engine.
    pass(&mut lp, span + 3600 * SEC, &mut steady);
    let total = allocations() - before;
    let windows = lp.engine().counters.windows_closed - windows_before;
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
    // Window closes allocate the evidence of what fired (a string per finding, the peers, the
    // alert): in proportion to the verdicts, not to the packets. The demo's camera fires four
    // detectors in every window; a budget per window close, and far fewer than frames.
    assert!(windows > 0);
    assert!(
        total < frames.len() as u64 / 5 && total / windows < 120,
        "{total} allocations over a pass of {} frames and {windows} window closes",
        frames.len()
    );
    eprintln!(
        "live loop, second pass: {} frames, {total} allocations (all in window closes and \
         scoring), 0 on the packet path",
        frames.len()
    );
}

/// `botd run`'s way: the detectors on a second thread ([`LiveLoop::detached`]), stopped for
/// housekeeping every 500 frames and for a reload halfway: the offline alerts still.
#[test]
fn detached_loop_gives_the_offline_alerts() {
    let cfg = test_config();
    let frames = frames(&demo());
    let offline = offline_alerts(&cfg, &frames, 0);
    assert!(offline.iter().any(|a| a.level == Level::Red), "{offline:?}");
    let models = models(&cfg);
    let mut lp = LiveLoop::new(
        &cfg,
        models.clone(),
        None,
        botd::capture::LinkType::Ethernet,
    );
    let mut next_tick = frames[0].0;
    let mut epochs = 0;
    let mut reloaded = false;
    for chunk in frames.chunks(500) {
        lp.detached(|d| {
            for (ts, data, len) in chunk {
                while next_tick < *ts {
                    d.tick(next_tick);
                    next_tick += SEC / 10;
                }
                d.frame(*ts, data, *len);
            }
        })
        .unwrap();
        epochs += 1;
        if !reloaded && epochs * 500 > frames.len() / 2 {
            reloaded = true;
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
    assert!(epochs > 3, "{epochs} runs");
    assert_eq!(lp.kept, offline, "detached and offline alerts differ");
    assert_eq!(lp.counters.reloads, 1);
}

#[test]
fn detached_loop_allocates_nothing_per_frame_on_the_capture_thread() {
    let cfg = test_config();
    let frames = frames(&demo());
    let span = frames.last().unwrap().0 - frames[0].0;
    let mut lp = LiveLoop::new(&cfg, models(&cfg), None, botd::capture::LinkType::Ethernet);
    // A first pass inline warms the engine and detector up.
    warm_up(&mut lp, &frames);
    let shift = span + 3600 * SEC;
    let (packet_path, total, counted) = lp
        .detached(|d| {
            let before_all = allocations();
            let (mut packet_path, mut counted) = (0, 0);
            let mut next_tick = frames[0].0 + shift;
            for (ts, data, len) in &frames {
                let ts = ts + shift;
                while next_tick < ts {
                    d.tick(next_tick);
                    next_tick += SEC / 10;
                }
                let flows = d.engine().counters.flows;
                let before = allocations();
                d.frame(ts, data, *len);
                if d.engine().counters.flows == flows {
                    packet_path += allocations() - before;
                    counted += 1;
                }
            }
            (packet_path, allocations() - before_all, counted)
        })
        .unwrap();
    assert!(counted > 4000, "{counted} frames on the packet path");
    assert_eq!(
        packet_path, 0,
        "{packet_path} allocations over {counted} frames"
    );
    // Only the relay's batches (two vectors each, made once, at most MAX_BATCHES): scoring and
    // alerts allocate on the detector thread.
    assert!(
        total <= 2 * botd::relay::MAX_BATCHES as u64,
        "{total} allocations on the capture thread over {} frames",
        frames.len()
    );
}

/// The state file's document is built on the detectors' thread at a checkpoint: asking for
/// one allocates nothing on the capture thread (beyond the relay's batches), and the document
/// written is the one the loop builds on one thread after the same records.
#[test]
fn state_checkpoints_build_the_document_on_the_detector_thread() {
    let cfg = test_config();
    let frames = frames(&demo());
    let span = frames.last().unwrap().0 - frames[0].0;
    let dir = std::env::temp_dir().join(format!("botd-live-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let state = |path: &Path| botd::live::StateOut {
        writer: botd::document::StateWriter::start().unwrap(),
        path: path.to_path_buf(),
        scoring: cfg.scoring.clone(),
    };
    let mut lp = LiveLoop::new(&cfg, models(&cfg), None, botd::capture::LinkType::Ethernet);
    // A first pass inline warms the engine and detector up (and gives them hosts to write).
    warm_up(&mut lp, &frames);
    lp.replace_state(Some(state(&path)));
    let shift = span + 3600 * SEC;
    let (total, checkpoints) = lp
        .detached(|d| {
            let before = allocations();
            let mut checkpoints = 0;
            let mut next_tick = frames[0].0 + shift;
            for (i, (ts, data, len)) in frames.iter().enumerate() {
                let ts = ts + shift;
                while next_tick < ts {
                    d.tick(next_tick);
                    next_tick += SEC / 10;
                }
                d.frame(ts, data, *len);
                if i % 200 == 0 {
                    d.checkpoint();
                    checkpoints += 1;
                }
            }
            (allocations() - before, checkpoints)
        })
        .unwrap();
    assert!(checkpoints > 20, "{checkpoints} checkpoints");
    assert!(
        total <= 2 * botd::relay::MAX_BATCHES as u64,
        "{total} allocations on the capture thread with {checkpoints} checkpoints"
    );
    // Its writer finishes what it has (dropping it joins its thread); then one checkpoint with
    // a writer that is not busy, compared with the document built here.
    drop(lp.replace_state(Some(state(&path))));
    lp.detached(|d| d.checkpoint()).unwrap();
    drop(lp.replace_state(None));
    let written = std::fs::read_to_string(&path).unwrap();
    let here =
        botd::document::state_document(lp.detectors().next().unwrap(), lp.engine(), &cfg.scoring);
    assert!(!here.hosts.is_empty());
    // As text: parsing floats back need not give the same bits.
    assert_eq!(written.trim_end(), serde_json::to_string(&here).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
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

/// A temporary folder (`temp_dir`), removed on drop, panics included.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        TempDir {
            path: temp_dir(name),
        }
    }

    fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A tmpfs of `size` (mount's `size=` syntax) mounted at `path` (created), writable by anyone;
/// unmounted on drop, panics included. Mounted before botd starts: `ip netns exec` gives botd a
/// mount namespace of its own, a copy of the mounts at that moment (the tmpfs is the same
/// filesystem in both, so files removed here are gone for botd too).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        sh(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(path));
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Fills the filesystem: appends to `name` until the disk is full (`ENOSPC`).
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path.join(name))
            .unwrap();
        let chunk = [0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => panic!("{}: write returned 0", self.path.display()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("{}: {e}", self.path.display()),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: botd's mount namespace may still hold it for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
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
        self.try_wait_line(needle, from, Duration::from_secs(secs))
            .unwrap_or_else(|| {
                panic!(
                    "botd did not log {needle:?} in {secs} s:\n{}",
                    self.log.lock().unwrap().join("\n")
                )
            })
    }

    /// As `wait_line`, `None` when the line did not come within `limit` (botd exiting is still a
    /// failure).
    fn try_wait_line(&mut self, needle: &str, from: usize, limit: Duration) -> Option<String> {
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
                return Some(l.clone());
            }
            self.assert_running(needle);
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics (with the log) when botd has exited; `what` says what it was expected to do.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "botd exited ({status}) before {what:?}:\n{}",
                self.log.lock().unwrap().join("\n")
            );
        }
    }

    /// SIGUSR1: the counters line.
    fn counters(&mut self) -> String {
        let mark = self.lines();
        self.signal(nix::sys::signal::Signal::SIGUSR1);
        self.wait_line("counters:", mark, 5)
    }

    /// SIGHUP: the line the reload logs (`reloaded ...` or `reload failed ...`).
    fn reload(&mut self) -> String {
        let mark = self.lines();
        self.signal(nix::sys::signal::Signal::SIGHUP);
        let start = Instant::now();
        loop {
            if let Some(l) =
                self.log.lock().unwrap().iter().skip(mark).find(|l| {
                    l.starts_with("botd: reloaded ") || l.starts_with("botd: reload failed")
                })
            {
                return l.clone();
            }
            self.assert_running("answering SIGHUP");
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no reload line 20 s after SIGHUP:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: exits 0 within 2 s (windows closed and scored, alerts delivered).
    fn stop(&mut self) {
        let t = Instant::now();
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "botd still running 2 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "botd exit status {status}");
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

/// `botd run`'s configuration for the tests: capture on `vb0` (100 ms read timeout), home
/// 192.168.1.0/24, alerts to the rsyslog socket `sock` without rate limit, drop to `nobody`, the
/// state file every second.
fn config_text(promiscuous: bool, models: &Path, sock: &Path, state: &Path) -> String {
    format!(
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
        models = models.display(),
        sock = sock.display(),
        state = state.display(),
    )
}

/// `tcpreplay` of the demo capture into `vb1` at 2000 packets/s (~2.7 s).
fn replay(ns: &Netns) -> Child {
    ns.exec("tcpreplay")
        .args(["--intf1=vb1", "--pps=2000"])
        .arg(demo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpreplay")
}

/// Waits for a replay; the number of packets it sent.
fn replayed(replay: Child) -> u64 {
    let out = replay.wait_with_output().unwrap();
    assert!(out.status.success(), "tcpreplay: {out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    report
        .lines()
        .find(|l| l.trim_start().starts_with("Actual:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("tcpreplay report: {report}"))
}

fn end_to_end(capture: &str) {
    let _one = E2E.lock().unwrap_or_else(|e| e.into_inner());
    require_root_tools();
    let ns = Netns::new();
    let syslog = Rsyslog::start(&format!("live-{capture}"));
    let dir = temp_dir(&format!("live-{capture}"));
    let config = dir.join("botd.toml");
    // Both settings are exercised: the ring joins the interface promiscuously; pnet relies on a
    // veth delivering every frame to packet sockets anyway (which is also the only way qemu-user,
    // lacking SOL_PACKET options, can run the ARM binary's live test).
    let text = config_text(
        capture == "ring",
        &root().join("models"),
        &syslog.sock,
        &dir.join("state.json"),
    );
    // botd writes the state file after dropping to nobody.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(&config, &text).unwrap();

    let mut botd = Botd::start(&ns, &config, capture);
    botd.wait_line("dropped privileges to nobody:nogroup", 0, 30);
    botd.wait_line(&format!("capturing on vb0 with {capture}"), 0, 60);

    // Replay at 2000 packets/s (~2.7 s) and reload halfway.
    let replay = replay(&ns);
    std::thread::sleep(Duration::from_millis(1200));
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGHUP);
    botd.wait_line("reloaded config and 2 models", mark, 20);
    let sent = replayed(replay);
    assert!(
        botd.child.try_wait().unwrap().is_none(),
        "botd still runs after the reload"
    );

    // The host lifecycle's settings apply at a reload, keeping the host states; `max_hosts`
    // sizes a table allocated at start-up: the reload says it needs a restart and keeps it.
    std::fs::write(
        &config,
        format!(
            "{text}\n[scoring]\nhost_idle_secs = 600\nmax_level_changes = 8\nmax_hosts = 100\n"
        ),
    )
    .unwrap();
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGHUP);
    let reloaded = botd.wait_line("reloaded config", mark, 20);
    assert!(reloaded.contains("host states kept"), "{reloaded}");
    assert!(
        reloaded.contains("host_idle_secs 86400 -> 600, max_level_changes 64 -> 8 applied"),
        "{reloaded}"
    );
    assert!(
        reloaded.contains("[scoring] max_hosts (4096 -> 100) changed but need a restart"),
        "{reloaded}"
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

    // Threat-intel feeds: loaded on SIGHUP; a broken feed fails the reload, naming the file and
    // line, and the running feeds stay.
    let feeds = dir.join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    std::fs::write(feeds.join("drop.txt"), "198.51.100.0/24 ; SBL000001\n").unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[intel]\ndir = {:?}\n", feeds.display().to_string()),
    )
    .unwrap();
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGHUP);
    let reloaded = botd.wait_line("reloaded config", mark, 20);
    assert!(
        reloaded.contains("intel 1 entries in 1 feeds"),
        "{reloaded}"
    );
    std::fs::write(feeds.join("bad.ip"), "1.2.3.4\nnot an address\nnor this\n").unwrap();
    let mark = botd.lines();
    botd.signal(nix::sys::signal::Signal::SIGHUP);
    let failed = botd.wait_line("reload failed", mark, 20);
    assert!(failed.contains("bad.ip:2"), "{failed}");
    assert!(
        botd.child.try_wait().unwrap().is_none(),
        "botd still runs after a broken feed"
    );

    // Counters on SIGUSR1.
    std::thread::sleep(Duration::from_millis(300));
    let line = botd.counters();
    let packets = counter(&line, "packets");
    let frames = counter(&line, "frames");
    assert!(packets > 0, "{line}");
    // Three reloads went through (two failed), one of them asking for a restart (max_hosts).
    assert_eq!(counter(&line, "reloads"), 3, "{line}");
    assert_eq!(counter(&line, "reloads_restart_needed"), 1, "{line}");
    assert!(
        frames * 100 >= sent * 99 && frames <= sent,
        "{capture}: captured {frames} of {sent} frames: {line}"
    );
    if capture == "ring" {
        assert_eq!(counter(&line, "kernel_drops"), 0, "{line}");
    }

    // SIGTERM: windows closed and scored, the alert sent, exit 0 within 2 s.
    botd.stop();
    let stopped = botd.wait_line("stopped:", 0, 2);
    assert!(counter(&stopped, "alerts_sent") >= 1, "{stopped}");

    let lines = camera_alerts(&syslog);
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
#[ignore = "system: root, network namespaces, tcpreplay, rsyslog (tests/run.sh)"]
fn run_pnet_end_to_end() {
    end_to_end("pnet");
}

#[test]
#[ignore = "system: root, network namespaces, tcpreplay, rsyslog (tests/run.sh)"]
fn run_ring_end_to_end() {
    end_to_end("ring");
}

#[test]
#[ignore = "system: root, network namespaces (tests/run.sh)"]
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

/// Issue #8, faults while `botd run` runs: each one is logged naming what failed, botd keeps
/// running, capturing and alerting with what it had.
///
/// 1. The config file removed at SIGHUP.
/// 2. The models folder unreadable (mode 000; botd reads it as `nobody`), then one model file
///    truncated in place (a copy of `models/` is the configured folder), each at SIGHUP.
/// 3. The state file's disk full (a 256 KiB tmpfs filled up by root), then space freed.
///
/// The demo capture is replayed after all of them, with the truncated model still in place and
/// the disk still full: every frame is counted, and at SIGTERM the camera's red alert, scored by
/// the models loaded at start-up, reaches rsyslog.
#[test]
#[ignore = "system: root, network namespaces, tcpreplay, rsyslog (tests/run.sh)"]
fn run_survives_faults() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _one = E2E.lock().unwrap_or_else(|e| e.into_inner());
    require_root_tools();
    // Dropped in reverse: botd first, then the tmpfs, rsyslog, the folder, the namespace.
    let ns = Netns::new();
    let dir = TempDir::new("live-faults");
    let syslog = Rsyslog::start("live-faults");
    let models = dir.join("models");
    std::fs::create_dir(&models).unwrap();
    for name in ["argus-rf.onnx", "ctu-rf.onnx"] {
        std::fs::copy(root().join("models").join(name), models.join(name)).unwrap();
    }
    let disk = Tmpfs::mount(&dir.join("disk"), "256k");
    let state = disk.path.join("state.json");
    let config = dir.join("botd.toml");
    let text = config_text(false, &models, &syslog.sock, &state);
    std::fs::write(&config, &text).unwrap();
    let read_state = || -> serde_json::Value {
        let text = std::fs::read_to_string(&state).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", state.display()))
    };
    let wait_for = |what: &str, secs: u64, ok: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !ok() {
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{what} not within {secs} s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let mut botd = Botd::start(&ns, &config, "pnet");
    botd.wait_line("capturing on vb0 with pnet", 0, 60);
    wait_for("the first state file", 10, &|| state.exists());
    let models_at_start = read_state()["models"].clone();
    assert_eq!(
        models_at_start.as_array().map(Vec::len),
        Some(2),
        "{models_at_start}"
    );
    let frames_before = counter(&botd.counters(), "frames");

    // 1. The config file removed: named, "cannot read"; the running configuration stays.
    std::fs::remove_file(&config).unwrap();
    let failed = botd.reload();
    assert!(
        failed.contains("reload failed")
            && failed.contains(&config.display().to_string())
            && failed.contains("cannot read"),
        "{failed}"
    );
    std::fs::write(&config, &text).unwrap();

    // 2a. The models folder unreadable for nobody: the folder is named.
    std::fs::set_permissions(&models, PermissionsExt::from_mode(0o000)).unwrap();
    let failed = botd.reload();
    std::fs::set_permissions(&models, PermissionsExt::from_mode(0o755)).unwrap();
    assert!(
        failed.contains("reload failed")
            && failed.contains(&format!("{}: cannot read models folder", models.display())),
        "{failed}"
    );

    // 2b. A model truncated in place (the second one: the first loads whole and must not be
    // installed alone): the file is named. It stays truncated for the rest of the test.
    let victim = models.join("ctu-rf.onnx");
    let len = std::fs::metadata(&victim).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let failed = botd.reload();
    assert!(
        failed.contains("reload failed") && failed.contains(&format!("{}: ", victim.display())),
        "{failed}"
    );
    // The models in use are still the two loaded at start-up (the state file lists them).
    let written = std::fs::metadata(&state).unwrap().ino();
    wait_for("a state file after the failed reloads", 5, &|| {
        std::fs::metadata(&state).is_ok_and(|m| m.ino() != written)
    });
    assert_eq!(read_state()["models"], models_at_start);

    // 3. The state file's disk full: the write failure names the file. Filled again until a
    // write fails (a write of botd's racing the filler may have got the last pages).
    let mark = botd.lines();
    let full = (0..5)
        .find_map(|_| {
            disk.fill("filler");
            botd.try_wait_line("state file not written", mark, Duration::from_secs(3))
        })
        .expect("no failed state write on a full disk");
    assert!(
        full.contains(&format!("{}: ", state.display())) && full.contains("No space left"),
        "{full}"
    );
    // The previous state file stays whole (written beside, then renamed) and nothing is left
    // behind.
    let kept = std::fs::metadata(&state).unwrap().ino();
    assert!(read_state()["hosts"].is_array());
    let names: Vec<String> = std::fs::read_dir(&disk.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n == "filler" || n == "state.json"),
        "{names:?}"
    );

    // Traffic with the disk full and a model truncated: botd captures all of it.
    let sent = replayed(replay(&ns));
    let line = botd.counters();
    let frames = counter(&line, "frames") - frames_before;
    assert!(
        frames * 100 >= sent * 99 && frames <= sent,
        "captured {frames} of {sent} frames after the faults: {line}"
    );
    assert_eq!(
        std::fs::metadata(&state).unwrap().ino(),
        kept,
        "state file replaced on a full disk"
    );
    let failures = botd.log.lock().unwrap()[mark..]
        .iter()
        .filter(|l| l.contains("state file not written"))
        .count();
    assert!(failures >= 2, "{failures} failed state writes logged");

    // Space freed: the state file is written again, with the new traffic in it.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    wait_for("a state file after space was freed", 5, &|| {
        std::fs::metadata(&state).is_ok_and(|m| m.ino() != kept)
    });
    let doc = read_state();
    assert!(
        doc["counters"]["frames"].as_u64().unwrap() >= frames_before + frames,
        "{}",
        doc["counters"]
    );
    assert_eq!(doc["models"], models_at_start);

    // SIGTERM: the window is scored by the running models; the camera's red alert arrives.
    botd.stop();
    let stopped = botd.wait_line("stopped:", 0, 2);
    assert!(counter(&stopped, "alerts_sent") >= 1, "{stopped}");
    let lines = camera_alerts(&syslog);
    assert_eq!(lines[0].sd["botd@32473"]["level"], "red", "{lines:?}");
    let camera = read_state()["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["address"] == CAMERA)
        .cloned()
        .expect("camera in the state file written at shutdown");
    assert_eq!(camera["was_red"], true, "{camera}");
}
