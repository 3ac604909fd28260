//! The packet path allocates nothing in steady state: a counting global allocator wraps the system
//! one, and after a warm-up pass over a real capture, a second pass (the same frames shifted forward
//! in time, so it is new traffic to the engine) must not allocate at all. Allocations are counted
//! per thread, so the test harness and tests running in parallel do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use botd::capture::{FileReader, LinkType};
use botd::engine::{Engine, EngineConfig, FlowSink, WindowConfig, WindowInfo};
use botd::flow::{CloseReason, Flow};

struct Counting;

/// Allocations by all threads (for information).
static TOTAL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Allocations by this thread; const-initialised without a destructor, so using it from the
    /// allocator never allocates.
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    // `try_with`: the slot may be gone while a thread is being torn down.
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

/// Allocations (alloc, alloc_zeroed, realloc) made so far by the calling thread.
fn allocations() -> u64 {
    MINE.with(|c| c.get())
}

fn real_pcap() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(d.is_dir(), "test data directory {} is missing", d.display());
    let p = d.join("debian-registry/pathspider/real.pcap");
    assert!(p.is_file(), "capture {} is missing", p.display());
    p
}

struct Frames {
    frames: Vec<(u64, LinkType, Vec<u8>, u32)>,
}

impl Frames {
    fn load(path: &Path) -> Frames {
        let mut r = FileReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        let mut frames = Vec::new();
        while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
            frames.push((f.ts_ns, f.link, f.data.to_vec(), f.orig_len));
        }
        assert!(frames.len() > 60_000, "real.pcap has 62781 frames");
        Frames { frames }
    }
    fn span(&self) -> u64 {
        let first = self.frames.iter().map(|f| f.0).min().unwrap_or(0);
        let last = self.frames.iter().map(|f| f.0).max().unwrap_or(0);
        last - first
    }
    fn replay(&self, engine: &mut Engine, shift: u64, sink: &mut Counter) {
        for (ts, link, data, orig_len) in &self.frames {
            engine.on_frame(ts + shift, *link, data, *orig_len, sink);
        }
    }
}

/// Counts what the engine hands out, and takes each record's Community ID (as `botd flows` prints
/// it); never allocates.
#[derive(Default)]
struct Counter {
    records: u64,
    community_ids: u64,
    packets: u64,
    windows: u64,
    evicted: u64,
}

impl FlowSink for Counter {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, _window: Option<&WindowInfo>) {
        self.records += 1;
        self.packets += flow.total_pkts();
        if std::hint::black_box(botd::community_id::of_flow(flow, 0)).is_some() {
            self.community_ids += 1;
        }
        if reason == CloseReason::Evicted {
            self.evicted += 1;
        }
    }
    fn window_closed(&mut self, _window: &WindowInfo, _flows: u64) {
        self.windows += 1;
    }
}

const SEC: u64 = 1_000_000_000;

fn steady_state(window: Option<WindowConfig>, capacity: usize) {
    let frames = Frames::load(&real_pcap());
    // Past the end of the capture, and past every timeout and window, so pass 2 is new traffic.
    let shift = frames.span() + 3600 * SEC;
    let cfg = EngineConfig {
        flow_capacity: capacity,
        window,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let mut sink = Counter::default();

    frames.replay(&mut engine, 0, &mut sink);
    let after_warmup = sink.records;
    let before = allocations();
    frames.replay(&mut engine, shift, &mut sink);
    let during = allocations() - before;

    // The second pass really did work: records came out, the table filled and evicted.
    assert!(
        sink.records > after_warmup,
        "second pass produced no records"
    );
    assert!(
        engine.table_stats().high_water >= capacity as u64,
        "table never filled: {:?}",
        engine.table_stats()
    );
    assert!(sink.evicted > 0, "table never evicted");
    assert!(sink.community_ids > 0, "no Community ID computed");
    if window.is_some() {
        assert!(sink.windows > 20, "only {} windows closed", sink.windows);
    }
    assert_eq!(
        during,
        0,
        "{during} allocations while replaying {} frames in steady state",
        frames.frames.len()
    );

    // Flushing at the end allocates nothing either.
    let before = allocations();
    engine.finish(&mut sink);
    assert_eq!(allocations() - before, 0, "finish allocated");
    // Every parsed packet is in exactly one record per window it falls in.
    let parsed = engine.counters.frames - engine.counters.unparsed();
    let expected = match window {
        None => parsed,
        Some(w) => 2 * parsed - first_step_packets(&frames, w.step_ns),
    };
    assert_eq!(sink.packets, expected);
}

/// With 300/150 windows anchored at the first frame, every packet lies in two windows except the
/// parsed ones in the first 150 s after the anchor (window 0 only). Pass 2 starts long after that.
fn first_step_packets(frames: &Frames, step: u64) -> u64 {
    let anchor = frames.frames.first().map_or(0, |f| f.0);
    let mut clock = 0;
    let mut n = 0;
    for (ts, link, data, orig_len) in &frames.frames {
        clock = clock.max(*ts);
        if clock < anchor + step && botd::wire::parse(*link, data, *orig_len).is_ok() {
            n += 1;
        }
    }
    n
}

#[test]
#[ignore = "data: ../shared/data"]
fn engine_steady_state_allocates_nothing_unwindowed() {
    steady_state(None, 4096);
}

#[test]
#[ignore = "data: ../shared/data"]
fn engine_steady_state_allocates_nothing_windowed() {
    // A window of real.pcap holds at most ~570 flows: a smaller table, so it fills and evicts.
    steady_state(WindowConfig::from_secs(300.0, 150.0), 256);
}

#[test]
#[ignore = "data: ../shared/data"]
fn file_reader_allocates_nothing_after_first_frame() {
    let mut r = FileReader::open(&real_pcap()).unwrap_or_else(|e| panic!("{e}"));
    let mut n = 0u64;
    let mut bytes = 0u64;
    assert!(r.next_frame().unwrap().is_some());
    let before = allocations();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        n += 1;
        bytes += f.data.len() as u64;
    }
    let during = allocations() - before;
    assert_eq!(n + 1, 62_781);
    assert!(bytes > 0);
    assert_eq!(during, 0, "{during} allocations reading {n} frames");
}

#[test]
fn counting_allocator_counts() {
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(16));
    drop(v);
    assert_eq!(allocations() - before, 1);
    assert!(TOTAL.load(Ordering::Relaxed) > 0);
}

/// The detector behind the engine: its flow path (features, batches, scoring with every model
/// and the score cache, per-host counts) allocates nothing in steady state; a window's close
/// (host scores, alerts) may, and is counted apart.
struct Detecting<'a> {
    detector: &'a mut botd::detect::Detector,
    in_flow: u64,
    in_close: u64,
    closes: u64,
}

impl FlowSink for Detecting<'_> {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        let before = allocations();
        self.detector.flow(flow, reason, window);
        self.in_flow += allocations() - before;
    }
    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        let before = allocations();
        self.detector.window_closed(window, flows);
        drop(self.detector.take_alerts());
        self.in_close += allocations() - before;
        self.closes += 1;
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn detector_flow_path_allocates_nothing_in_steady_state() {
    use botd::config::Config;
    let frames = Frames::load(&real_pcap());
    let shift = frames.span() + 3600 * SEC;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = std::sync::Arc::new(
        botd::pipeline::load_models(&root.join("models")).unwrap_or_else(|e| panic!("{e}")),
    );
    let cfg = Config::default();
    let ecfg = cfg.engine_config();
    let window = ecfg.window;
    let concurrent = window.map_or(1, |w| w.concurrent());
    let mut detector = botd::detect::Detector::new(
        models,
        botd::pipeline::parse_home(&["10.0.0.0/8".into()]).unwrap_or_else(|e| panic!("{e}")),
        cfg.scoring.clone(),
        concurrent,
    )
    .with_score_cache(ecfg.flow_capacity);
    let mut engine = Engine::new(ecfg);
    let mut sink = Detecting {
        detector: &mut detector,
        in_flow: 0,
        in_close: 0,
        closes: 0,
    };
    for (ts, link, data, orig_len) in &frames.frames {
        engine.on_frame(*ts, *link, data, *orig_len, &mut sink);
    }
    sink.in_flow = 0;
    sink.in_close = 0;
    sink.closes = 0;
    for (ts, link, data, orig_len) in &frames.frames {
        engine.on_frame(ts + shift, *link, data, *orig_len, &mut sink);
    }
    let (in_flow, in_close, closes) = (sink.in_flow, sink.in_close, sink.closes);
    let c = &detector.counters;
    assert!(closes > 20, "only {closes} windows closed");
    assert!(c.flows_scored > 10_000, "{c:?}");
    assert!(c.flows_score_reused > 1_000, "{c:?}");
    assert_eq!(
        in_flow, 0,
        "{in_flow} allocations in Detector::flow over {closes} windows"
    );
    println!(
        "window closes: {in_close} allocations over {closes} windows ({:.1} each)",
        in_close as f64 / closes as f64
    );
}
