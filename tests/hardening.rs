//! Hardening (issue 8): the fuzz targets' crashers kept as regressions, property tests for the flow
//! table (bytes conserved, direction symmetry, window assignment, the table against a model), and
//! fault injection (a flood of new flows, an unreadable models folder, a corrupt model, a broken
//! config). tests/engine.rs already covers the capacity bound and packet conservation per window;
//! this file adds what it does not. See docs/hardening.md.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use botd::capture::{FileReader, LinkType, MAX_CAPLEN, MergedCapture};
use botd::config::Config;
use botd::engine::{Engine, EngineConfig, FlowSink, WindowConfig, WindowInfo};
use botd::flow::table::Lookup;
use botd::flow::{CloseReason, Flow, FlowKey, FlowTable, IndexKind, TIMEOUT_CLASSES, TimeoutClass};
use botd::model::Model;
use botd::model::forest::Forest;
use botd::wire::{self, Addr, Packet, proto};
use proptest::prelude::*;
use tract_onnx::prelude::Framework;

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("botd-hardening-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------------
// Sinks and frames

/// Keeps every record with its reason and window.
#[derive(Default)]
struct Recorder {
    flows: Vec<(Flow, CloseReason, Option<WindowInfo>)>,
    windows_closed: u64,
}

impl FlowSink for Recorder {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.flows.push((flow.clone(), reason, window.copied()));
    }
    fn window_closed(&mut self, _window: &WindowInfo, _flows: u64) {
        self.windows_closed += 1;
    }
}

fn ipv4_packet(src: [u8; 4], dst: [u8; 4], proto_nr: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(20 + l4.len());
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto_nr, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    f
}

/// An IPv4 packet behind the header of `link`.
fn framed(link: LinkType, ip: &[u8]) -> Vec<u8> {
    let mut f = match link {
        LinkType::Ethernet => {
            let mut h = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
            h.extend_from_slice(&[0x08, 0x00]);
            h
        }
        LinkType::LinuxSll => {
            let mut h = vec![0u8; 14];
            h.extend_from_slice(&[0x08, 0x00]);
            h
        }
        LinkType::LinuxSll2 => {
            let mut h = vec![0x08, 0x00];
            h.resize(20, 0);
            h
        }
        LinkType::Null => vec![2, 0, 0, 0],
        LinkType::Loop => vec![0, 0, 0, 2],
        _ => Vec::new(),
    };
    f.extend_from_slice(ip);
    f
}

fn tcp(sport: u16, dport: u16, flags: u8, seq: u32, payload: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + payload, 0xab);
    t
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0xcd);
    u
}

fn icmp_echo(request: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut i = vec![if request { 8 } else { 0 }, 0, 0, 0];
    i.extend_from_slice(&id.to_be_bytes());
    i.extend_from_slice(&seq.to_be_bytes());
    i.resize(16, 0x11);
    i
}

// ---------------------------------------------------------------------------------------------
// Fuzz regressions: every file in tests/fuzz_regressions/<target>/ goes through the same checks
// as the fuzz target of that name (fuzz/fuzz_targets/<target>.rs).

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("tests/fuzz_regressions").join(target);
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() && p.extension().is_none_or(|x| x != "md") {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// The pcap_reader target's checks on one input.
fn check_pcap_input(data: &[u8], path: &Path) {
    std::fs::write(path, data).unwrap();
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    if let Ok(mut r) = FileReader::open(path) {
        let mut n = 0u64;
        while let Ok(Some(f)) = r.next_frame() {
            assert!(f.data.len() <= MAX_CAPLEN as usize);
            n += 1;
            assert!(gzip || (f.data.len() <= data.len() && n as usize <= data.len() / 12 + 1));
        }
        assert_eq!(r.stats().frames, n);
    }
    if let Ok(mut m) = MergedCapture::open(&[path.to_path_buf(), path.to_path_buf()]) {
        let mut guard = 0usize;
        while let Ok(Some(_)) = m.next_frame() {
            guard += 1;
            assert!(gzip || guard <= 2 * (data.len() / 12 + 1));
        }
    }
}

#[test]
fn fuzz_regressions_pcap_reader() {
    let dir = scratch_dir("pcap-regressions");
    for (p, bytes) in regressions("pcap_reader") {
        eprintln!("{}", p.display());
        check_pcap_input(&bytes, &dir.join("input"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const FUZZ_LINKS: [LinkType; 9] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Other(147),
];

/// The frame_to_table target on one input (same layout and invariants).
fn check_frame_input(data: &[u8]) {
    let [c0, c1, rest @ ..] = data else {
        return;
    };
    let capacity = 1 + usize::from(c0 & 7);
    let window = (c0 & 8 != 0).then(|| {
        if c0 & 0x40 != 0 {
            WindowConfig::from_secs(3.0, 2.0).unwrap()
        } else {
            WindowConfig::from_secs(4.0, 2.0).unwrap()
        }
    });
    let idle = match (c0 >> 4) & 3 {
        0 => [None; 4],
        1 => [Some(SEC); 4],
        2 => [Some(500 * MS), None, Some(2 * SEC), Some(100 * MS)],
        _ => [None, Some(SEC), None, Some(3 * SEC)],
    };
    let cfg = EngineConfig {
        flow_capacity: capacity,
        window,
        status_interval_ns: u64::from(1 + (c1 & 15)) * SEC,
        linger_ns: [u64::from(c1 >> 4) * 300 * MS, 2 * SEC, SEC, 500 * MS],
        idle_ns: idle,
        fragment_capacity: 1 + usize::from(c1 & 3),
        flow_index: if c0 & 0x80 != 0 {
            IndexKind::Linear
        } else {
            IndexKind::Hashbrown
        },
    };
    let k = window.map_or(1, |w| w.concurrent());
    let mut engine = Engine::new(cfg);
    let mut rec = Recorder::default();
    let mut ts: u64 = 1_700_000_000 * SEC;
    let (mut frames, mut parsed_bytes, mut unparsed) = (0u64, 0u64, 0u64);
    let mut i = 0usize;
    while let (Some(&sel), Some(&step), Some(&len)) =
        (rest.get(i), rest.get(i + 1), rest.get(i + 2))
    {
        i += 3;
        let end = (i + usize::from(len)).min(rest.len());
        let frame = &rest[i..end];
        i = end;
        let link = FUZZ_LINKS[usize::from(sel & 0x0f) % FUZZ_LINKS.len()];
        if sel & 0x80 != 0 {
            ts = ts.saturating_sub(u64::from(step) * 50 * MS);
        } else {
            ts = ts.saturating_add(u64::from(step) * 50 * MS);
        }
        let wire_len = match (sel >> 4) & 7 {
            0..=4 => frame.len() as u32,
            5 => frame.len() as u32 + 1500,
            6 => u32::from(step),
            _ => u32::MAX,
        };
        match wire::parse(link, frame, wire_len) {
            Ok(p) => parsed_bytes += u64::from(p.wire_len),
            Err(_) => unparsed += 1,
        }
        engine.on_frame(ts, link, frame, wire_len, &mut rec);
        frames += 1;
        assert!(engine.active_flows() <= capacity * k);
    }
    engine.finish(&mut rec);
    assert_eq!(engine.active_flows(), 0);
    assert_eq!(engine.counters.frames, frames);
    assert_eq!(engine.counters.unparsed(), unparsed);
    assert_eq!(engine.counters.flows, rec.flows.len() as u64);
    for (f, _, w) in &rec.flows {
        assert!(f.total_pkts() > 0);
        if let Some(w) = w {
            assert!(w.start_ns <= f.start_ns && f.start_ns < w.end_ns);
        }
    }
    if window.is_none() {
        let pkts: u64 = rec.flows.iter().map(|(f, _, _)| f.total_pkts()).sum();
        let bytes: u64 = rec.flows.iter().map(|(f, _, _)| f.total_bytes()).sum();
        assert_eq!(pkts + unparsed, frames);
        assert_eq!(bytes, parsed_bytes);
    }
}

#[test]
fn fuzz_regressions_frame_to_table() {
    for (p, bytes) in regressions("frame_to_table") {
        eprintln!("{}", p.display());
        check_frame_input(&bytes);
    }
}

/// The config_toml target on one input.
fn check_config_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::from_str(&text, "fuzz.toml") {
        Ok(cfg) => {
            let _ = cfg.validate();
            let _ = cfg.engine_config();
            let _ = cfg.summary();
        }
        Err(e) => {
            assert!(e.to_string().contains("fuzz.toml"));
            let lines = text.split('\n').count();
            for p in &e.problems {
                if let Some((line, col)) = p.line_col {
                    assert!(line >= 1 && col >= 1 && line <= lines);
                }
            }
        }
    }
}

#[test]
fn fuzz_regressions_config_toml() {
    for (p, bytes) in regressions("config_toml") {
        eprintln!("{}", p.display());
        check_config_input(&bytes);
    }
}

/// The model_onnx target on one input.
fn check_model_input(data: &[u8], path: &Path) {
    if let Ok(proto) = tract_onnx::onnx().proto_model_for_read(&mut &data[..])
        && let Some(graph) = proto.graph.as_ref()
    {
        for node in &graph.node {
            for n_features in [0usize, 1, 3, 40] {
                let Ok(forest) = Forest::from_node(node, n_features) else {
                    continue;
                };
                let nc = forest.n_classes();
                let n_rows = data.len() % 21;
                let rows: Vec<f32> = (0..n_rows * n_features)
                    .map(|i| {
                        let b = |k: usize| data[(i * 4 + k) % data.len()];
                        f32::from_le_bytes([b(0), b(1), b(2), b(3)])
                    })
                    .collect();
                let mut proba = vec![0f32; n_rows * nc];
                forest.predict_proba(&rows, &mut proba);
                let mut one = vec![0f32; n_rows];
                for class in 0..nc {
                    forest.predict_class(&rows, class, &mut one);
                }
            }
        }
    }
    std::fs::write(path, data).unwrap();
    if let Ok(model) = Model::load(path) {
        let nf = model.schema.len();
        let rows = vec![0.5f32; nf * 3];
        let mut out = vec![0f32; 3];
        let _ = model.score(&rows, &mut out);
    }
}

#[test]
fn fuzz_regressions_model_onnx() {
    let dir = scratch_dir("model-regressions");
    for (p, bytes) in regressions("model_onnx") {
        eprintln!("{}", p.display());
        check_model_input(&bytes, &dir.join("input.onnx"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Property: bytes conserved and records in their windows, over several link types

#[derive(Clone, Debug)]
struct Pkt {
    src: usize,
    dst: usize,
    sport: usize,
    dport: usize,
    /// 0 TCP, 1 UDP, 2 ICMP echo, 3 GRE-less "other" protocol, 4 truncated (unparsed).
    kind: u8,
    flags: u8,
    payload: usize,
    gap_ms: u64,
    link: usize,
    /// Bytes on the wire beyond the captured frame (a snaplen cut).
    extra: u32,
}

const ADDRS: [[u8; 4]; 4] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 0, 0, 3],
    [192, 168, 1, 9],
];
const PORTS: [u16; 4] = [53, 80, 40_000, 50_000];
const LINKS: [LinkType; 6] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
];

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        (
            0..ADDRS.len(),
            0..ADDRS.len(),
            0..PORTS.len(),
            0..PORTS.len(),
        ),
        (0u8..5, any::<u8>(), 0usize..80),
        prop_oneof![4 => 0u64..2_000, 1 => 0u64..400_000],
        (
            0..LINKS.len(),
            prop_oneof![3 => Just(0u32), 1 => 0u32..3000],
        ),
    )
        .prop_map(
            |((src, dst, sport, dport), (kind, flags, payload), gap_ms, (link, extra))| Pkt {
                src,
                dst,
                sport,
                dport,
                kind,
                flags,
                payload,
                gap_ms,
                link,
                extra,
            },
        )
}

/// `map` renames addresses (for the symmetry test); identity otherwise.
fn frame_of(p: &Pkt, map: &dyn Fn(usize) -> usize) -> (LinkType, Vec<u8>, u32) {
    let (src, dst) = (ADDRS[map(p.src)], ADDRS[map(p.dst)]);
    let (sport, dport) = (PORTS[p.sport], PORTS[p.dport]);
    let link = LINKS[p.link];
    let ip = match p.kind {
        0 => ipv4_packet(
            src,
            dst,
            proto::TCP,
            &tcp(sport, dport, p.flags, 1000, p.payload),
        ),
        1 => ipv4_packet(src, dst, proto::UDP, &udp(sport, dport, p.payload)),
        2 => ipv4_packet(
            src,
            dst,
            proto::ICMP,
            &icmp_echo(p.flags & 1 == 0, sport, dport),
        ),
        3 => ipv4_packet(src, dst, 132, &vec![0x5a; p.payload]),
        _ => ipv4_packet(src, dst, proto::TCP, &tcp(sport, dport, p.flags, 0, 0))[..10].to_vec(),
    };
    let f = framed(link, &ip);
    let len = f.len() as u32;
    (link, f, len + p.extra)
}

type Owned = (u64, LinkType, Vec<u8>, u32);

fn frames_of(pkts: &[Pkt], map: &dyn Fn(usize) -> usize) -> Vec<Owned> {
    let mut ts = 1_650_000_000 * SEC;
    pkts.iter()
        .map(|p| {
            ts += p.gap_ms * MS;
            let (link, f, wire) = frame_of(p, map);
            (ts, link, f, wire)
        })
        .collect()
}

fn run(frames: &[Owned], cfg: EngineConfig) -> (Engine, Recorder) {
    let k = cfg.window.map_or(1, |w| w.concurrent());
    let cap = cfg.flow_capacity;
    let mut engine = Engine::new(cfg);
    let mut rec = Recorder::default();
    for (ts, link, data, wire_len) in frames {
        engine.on_frame(*ts, *link, data, *wire_len, &mut rec);
        assert!(engine.active_flows() <= cap * k);
    }
    engine.finish(&mut rec);
    (engine, rec)
}

/// Bytes of parsed packets per window index they fall in (the engine's clock never goes back;
/// windows are anchored at the first frame).
fn expected_bytes(frames: &[Owned], window: Option<WindowConfig>) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    let Some(anchor) = frames.first().map(|f| f.0) else {
        return m;
    };
    let mut clock = 0;
    for (ts, link, data, wire_len) in frames {
        clock = clock.max(*ts);
        let Ok(p) = wire::parse(*link, data, *wire_len) else {
            continue;
        };
        match window {
            None => *m.entry(0).or_insert(0) += u64::from(p.wire_len),
            Some(w) => {
                let d = clock - anchor;
                for idx in 0..=d / w.step_ns {
                    let start = idx * w.step_ns;
                    if start <= d && d < start + w.length_ns {
                        *m.entry(idx).or_insert(0) += u64::from(p.wire_len);
                    }
                }
            }
        }
    }
    m.retain(|_, v| *v > 0);
    m
}

fn engine_cfg(capacity: usize, window: Option<WindowConfig>, short: bool) -> EngineConfig {
    let mut cfg = EngineConfig {
        flow_capacity: capacity,
        window,
        ..EngineConfig::default()
    };
    if short {
        // Status reports, lingering continuations and idle closes all happen within a test.
        cfg.status_interval_ns = 90 * SEC;
        cfg.linger_ns = [20 * SEC, 10 * SEC, 5 * SEC, 10 * SEC];
        cfg.idle_ns = [Some(60 * SEC), None, Some(30 * SEC), None];
    }
    cfg
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every parsed packet's bytes (as the parser counts them behind each link header) end up in
    /// exactly one record per window holding it; every record lies in its window.
    #[test]
    fn bytes_conserved_and_records_in_their_window(
        pkts in proptest::collection::vec(pkt(), 1..250),
        capacity in 1usize..8,
        windowed in any::<bool>(),
        short in any::<bool>(),
    ) {
        let window = windowed.then(|| WindowConfig::from_secs(300.0, 150.0).unwrap());
        let frames = frames_of(&pkts, &|a| a);
        let (engine, rec) = run(&frames, engine_cfg(capacity, window, short));
        let unparsed = pkts.iter().filter(|p| p.kind == 4).count() as u64;
        prop_assert_eq!(engine.counters.unparsed(), unparsed);
        prop_assert_eq!(engine.counters.flows, rec.flows.len() as u64);
        prop_assert_eq!(
            engine.counters.bytes,
            frames.iter().map(|f| u64::from(f.3)).sum::<u64>()
        );
        let mut got = BTreeMap::new();
        for (f, _, w) in &rec.flows {
            prop_assert!(f.total_pkts() > 0);
            prop_assert!(f.start_ns <= f.last_ns);
            prop_assert_eq!(f.fwd.bytes + f.rev.bytes, f.total_bytes());
            if let Some(w) = w {
                prop_assert!(w.start_ns <= f.start_ns && f.start_ns < w.end_ns,
                    "record start {} outside window {:?}", f.start_ns, w);
                prop_assert!(f.last_ns < w.end_ns, "record end {} outside window {:?}", f.last_ns, w);
                prop_assert_eq!(f.window, w.index);
            }
            *got.entry(w.map_or(0, |w| w.index)).or_insert(0u64) += f.total_bytes();
        }
        got.retain(|_, v| *v > 0);
        prop_assert_eq!(got, expected_bytes(&frames, window));
        if window.is_none() {
            let pkts_in: u64 = rec.flows.iter().map(|(f, _, _)| f.total_pkts()).sum();
            prop_assert_eq!(pkts_in + unparsed, frames.len() as u64);
        }
    }

    /// The same traffic with every address renamed so that the lower and higher ends of every
    /// flow key trade places gives the same records, mirrored: same source role, ports, counters
    /// per direction, state and times. Direction comes from the traffic, not from address order.
    #[test]
    fn direction_is_symmetric_under_address_swap(
        pkts in proptest::collection::vec(pkt(), 1..200),
        capacity in prop_oneof![Just(1024usize), 1usize..6],
        windowed in any::<bool>(),
    ) {
        let window = windowed.then(|| WindowConfig::from_secs(300.0, 150.0).unwrap());
        // Reverses the address order: 0<->3, 1<->2.
        let swap = |a: usize| ADDRS.len() - 1 - a;
        let plain = frames_of(&pkts, &|a| a);
        let swapped = frames_of(&pkts, &swap);
        let (_, a) = run(&plain, engine_cfg(capacity, window, true));
        let (_, b) = run(&swapped, engine_cfg(capacity, window, true));
        prop_assert_eq!(a.flows.len(), b.flows.len());
        let rename = |x: Addr| {
            let i = ADDRS.iter().position(|o| Addr::v4(*o) == x).expect("pool address");
            Addr::v4(ADDRS[swap(i)])
        };
        let view = |f: &Flow, r: CloseReason, w: Option<WindowInfo>, ren: bool| {
            let (src, dst) = if ren { (rename(f.src), rename(f.dst)) } else { (f.src, f.dst) };
            format!(
                "{src} {} > {dst} {} p{} s{} e{} fwd{:?} rev{:?} {} {} {r:?} {:?}",
                f.sport, f.dport, f.proto, f.start_ns, f.last_ns, f.fwd, f.rev,
                f.state().as_str(), f.dir(), w.map(|w| w.index)
            )
        };
        let mut va: Vec<String> = a.flows.iter().map(|(f, r, w)| view(f, *r, *w, true)).collect();
        let mut vb: Vec<String> = b.flows.iter().map(|(f, r, w)| view(f, *r, *w, false)).collect();
        va.sort();
        vb.sort();
        for (x, y) in va.iter().zip(&vb) {
            prop_assert_eq!(x, y);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property: FlowTable against a simple model (a HashMap)

#[derive(Clone, Debug)]
enum Op {
    /// A packet of flow `key` after `gap` ns.
    Packet {
        key: usize,
        gap: u64,
        reply: bool,
    },
    /// `expire` at the current time plus `gap`.
    Expire {
        gap: u64,
    },
    /// Close the flow of `key` if present.
    Close {
        key: usize,
    },
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..12, 1u64..6, any::<bool>()).prop_map(|(key, gap, reply)| Op::Packet { key, gap, reply }),
        3 => (0u64..12).prop_map(|gap| Op::Expire { gap }),
        1 => (0usize..12).prop_map(|key| Op::Close { key }),
        1 => Just(Op::Flush),
    ]
}

/// Twelve flows over three timeout classes (TCP, UDP, other).
fn table_packet(key: usize, reply: bool) -> Packet {
    let (proto_nr, sport, dport) = match key % 3 {
        0 => (proto::TCP, 40_000 + key as u16, 80),
        1 => (proto::UDP, 50_000 + key as u16, 123),
        _ => (132, 0, 0),
    };
    let a = Addr::v4([10, 0, 1, key as u8]);
    let b = Addr::v4([10, 0, 2, (12 - key) as u8]);
    let mut p = Packet {
        wire_len: 60 + key as u32,
        proto: proto_nr,
        src: a,
        dst: b,
        sport,
        dport,
        tcp_flags: 0x10,
        ttl: 64,
        ..Packet::default()
    };
    if reply {
        std::mem::swap(&mut p.src, &mut p.dst);
        std::mem::swap(&mut p.sport, &mut p.dport);
    }
    p
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ModelState {
    Open,
    Lingering { until: u64 },
}

#[derive(Clone, Copy, Debug)]
struct ModelFlow {
    state: ModelState,
    start: u64,
    last: u64,
    pkts: u64,
    class: usize,
}

struct TableModel {
    flows: HashMap<FlowKey, ModelFlow>,
    capacity: usize,
}

const INTERVAL: u64 = 20;
const LINGER: [u64; TIMEOUT_CLASSES] = [6, 3, 0, 9];

type Emitted = Vec<(FlowKey, CloseReason, u64)>;

impl TableModel {
    fn emit_sorted(mut v: Emitted) -> Emitted {
        v.sort_by_key(|(k, r, p)| (format!("{k:?}"), format!("{r:?}"), *p));
        v
    }

    fn packet(&mut self, key: FlowKey, class: usize, ts: u64) -> Emitted {
        let mut out = Vec::new();
        if let Some(f) = self.flows.get_mut(&key) {
            if let ModelState::Lingering { .. } = f.state {
                // A continuation record: fresh counters.
                f.state = ModelState::Open;
                f.start = ts;
                f.pkts = 0;
            }
            f.pkts += 1;
            f.last = ts;
            return out;
        }
        if self.flows.len() >= self.capacity {
            // The least recently used flow goes; an open one is emitted.
            let (&k, &v) = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last)
                .expect("full table has flows");
            self.flows.remove(&k);
            if v.state == ModelState::Open {
                out.push((k, CloseReason::Evicted, v.pkts));
            }
        }
        self.flows.insert(
            key,
            ModelFlow {
                state: ModelState::Open,
                start: ts,
                last: ts,
                pkts: 1,
                class,
            },
        );
        out
    }

    fn expire(&mut self, now: u64, idle: &[Option<u64>; TIMEOUT_CLASSES]) -> Emitted {
        let mut out = Vec::new();
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for k in &keys {
            let f = self.flows[k];
            if let Some(t) = idle[f.class]
                && f.last + t <= now
            {
                self.flows.remove(k);
                if f.state == ModelState::Open {
                    out.push((*k, CloseReason::Idle, f.pkts));
                }
            }
        }
        for (k, f) in self.flows.iter_mut() {
            if f.state == ModelState::Open && f.start + INTERVAL <= now {
                out.push((*k, CloseReason::Status, f.pkts));
                f.state = ModelState::Lingering {
                    until: now + LINGER[f.class],
                };
            }
        }
        self.flows
            .retain(|_, f| !matches!(f.state, ModelState::Lingering { until } if until <= now));
        out
    }
}

fn table_view(table: &mut FlowTable, key: &FlowKey) -> Option<(bool, u64)> {
    let h = table.hash(key);
    match table.lookup(key, h) {
        Lookup::Open(_, f) => Some((true, f.total_pkts())),
        Lookup::Lingering(_, f) => Some((false, f.total_pkts())),
        Lookup::Absent => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn flow_table_matches_a_hashmap_model(
        ops in proptest::collection::vec(op(), 1..200),
        capacity in 1usize..10,
        idle_udp in prop_oneof![Just(None), (4u64..15).prop_map(Some)],
        index in prop_oneof![Just(IndexKind::Hashbrown), Just(IndexKind::Linear)],
    ) {
        let idle = [None, idle_udp, None, Some(25)];
        let mut table = FlowTable::with_hasher(capacity, Default::default(), index);
        let mut model = TableModel { flows: HashMap::new(), capacity };
        let keys: Vec<(FlowKey, usize)> = (0..12)
            .map(|k| {
                let p = table_packet(k, false);
                (FlowKey::of(&p).0, TimeoutClass::of(p.proto) as usize)
            })
            .collect();
        let mut now = 1_000u64;
        for op in &ops {
            let mut got: Emitted = Vec::new();
            let mut emit = |f: &Flow, r: CloseReason| got.push((f.key, r, f.total_pkts()));
            let want = match *op {
                Op::Packet { key, gap, reply } => {
                    now += gap;
                    let p = table_packet(key, reply);
                    let (k, forward) = FlowKey::of(&p);
                    prop_assert_eq!(k, keys[key].0);
                    let h = table.hash(&k);
                    match table.lookup(&k, h) {
                        Lookup::Open(idx, f) => {
                            f.update(&p, forward, now);
                            table.touch(idx);
                        }
                        Lookup::Lingering(idx, f) => {
                            f.continue_at(now);
                            f.update(&p, forward, now);
                            table.touch(idx);
                        }
                        Lookup::Absent => {
                            let mut f = Flow::new(k, forward, &p, now, 0);
                            f.update(&p, forward, now);
                            table.insert(f, h, &mut emit);
                        }
                    }
                    model.packet(k, keys[key].1, now)
                }
                Op::Expire { gap } => {
                    now += gap;
                    let linger = LINGER;
                    table.expire(now, INTERVAL, &linger, &idle, &mut emit);
                    model.expire(now, &idle)
                }
                Op::Close { key } => {
                    let k = keys[key].0;
                    let h = table.hash(&k);
                    let idx = match table.lookup(&k, h) {
                        Lookup::Open(idx, _) | Lookup::Lingering(idx, _) => Some(idx),
                        Lookup::Absent => None,
                    };
                    if let Some(idx) = idx {
                        table.close(idx, CloseReason::Idle, &mut emit);
                    }
                    match model.flows.remove(&k) {
                        Some(f) if f.state == ModelState::Open => vec![(k, CloseReason::Idle, f.pkts)],
                        _ => Vec::new(),
                    }
                }
                Op::Flush => {
                    table.flush(CloseReason::Flush, &mut emit);
                    // Open records in start order (starts are distinct: time always moves on).
                    let mut open: Vec<(FlowKey, ModelFlow)> = model
                        .flows
                        .iter()
                        .filter(|(_, f)| f.state == ModelState::Open)
                        .map(|(k, f)| (*k, *f))
                        .collect();
                    open.sort_by_key(|(_, f)| f.start);
                    model.flows.clear();
                    let want: Emitted =
                        open.into_iter().map(|(k, f)| (k, CloseReason::Flush, f.pkts)).collect();
                    prop_assert_eq!(&got, &want, "flush order");
                    want
                }
            };
            prop_assert_eq!(
                TableModel::emit_sorted(got),
                TableModel::emit_sorted(want),
                "after {:?}", op
            );
            prop_assert_eq!(table.len(), model.flows.len());
            prop_assert!(table.len() <= capacity);
            for (k, _) in &keys {
                let seen = table_view(&mut table, k);
                let expected = model.flows.get(k).map(|f| (f.state == ModelState::Open, f.pkts));
                match (seen, expected) {
                    // A lingering flow's counters are those of its reported record.
                    (Some((false, _)), Some((false, _))) => {}
                    (s, e) => prop_assert_eq!(s, e, "flow {:?} after {:?}", k, op),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection: a flood of new flows

/// 200 000 SYNs from one scanner to distinct destinations and ports, at capacity 1024, with a
/// normal conversation of another host in between: the table evicts (counted, emitted), stays
/// fast, and both the scanner and the normal host still reach the records the detector scores.
#[test]
fn flood_of_new_flows_evicts_and_stays_scoreable() {
    const N: u32 = 200_000;
    const CAP: usize = 1024;
    let scanner = [10, 66, 6, 6];
    let victim_host = [192, 168, 1, 20];
    let server = [93, 184, 216, 34];
    for window in [None, WindowConfig::from_secs(300.0, 150.0)] {
        let k = window.map_or(1, |w| w.concurrent());
        let mut engine = Engine::new(EngineConfig {
            flow_capacity: CAP,
            window,
            ..EngineConfig::default()
        });
        let schema = &botd::features::ARGUS;
        let mut rows = Counting {
            rows: botd::features::FeatureRows::new(schema),
            from_scanner: 0,
            from_host: 0,
            evicted: 0,
            scanner: Addr::v4(scanner),
            host: Addr::v4(victim_host),
        };
        let t0 = 1_700_000_000 * SEC;
        let started = Instant::now();
        for i in 0..N {
            let dst = [100, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            let ip = ipv4_packet(
                scanner,
                dst,
                proto::TCP,
                &tcp(40_000, (i % 60_000) as u16 + 1, 0x02, i, 0),
            );
            let f = framed(LinkType::Ethernet, &ip);
            // 200k packets over about 200 s.
            let ts = t0 + u64::from(i) * MS;
            engine.on_frame(ts, LinkType::Ethernet, &f, f.len() as u32, &mut rows);
            if i % 1000 == 0 {
                // The normal host keeps talking through the flood.
                let ip = ipv4_packet(
                    victim_host,
                    server,
                    proto::TCP,
                    &tcp(51_000, 443, 0x18, i, 100),
                );
                let f = framed(LinkType::Ethernet, &ip);
                engine.on_frame(ts, LinkType::Ethernet, &f, f.len() as u32, &mut rows);
            }
            assert!(engine.active_flows() <= CAP * k);
        }
        engine.finish(&mut rows);
        let took = started.elapsed();
        let stats = engine.table_stats();
        eprintln!(
            "flood {:?}: {N} new flows in {took:?}; evicted {}, records {}, scanner records {}, host records {}",
            window.map(|w| w.length_ns / SEC),
            stats.evicted,
            engine.counters.flows,
            rows.from_scanner,
            rows.from_host
        );
        // Release builds do this in well under a second; allow for a loaded 2-core machine.
        assert!(took < Duration::from_secs(20), "flood took {took:?}");
        assert!(
            rows.evicted >= u64::from(N) - (CAP * k) as u64,
            "evictions {}",
            rows.evicted
        );
        // Eviction emits, never drops: every flood packet is in a record.
        assert!(rows.from_scanner >= u64::from(N));
        assert!(
            rows.from_host >= 1,
            "the normal host vanished from the records"
        );
        assert_eq!(
            rows.rows.rows.len() as u64,
            engine.counters.flows * schema.len() as u64
        );
        // The records the flood produced can be scored.
        let model = Model::load(&root().join("tests/data/small-forest.onnx")).unwrap();
        let n = rows.rows.rows.len() / schema.len();
        let mut out = vec![0f32; n];
        let t = Instant::now();
        model.score(&rows.rows.rows, &mut out).unwrap();
        assert!(out.iter().all(|p| (0.0..=1.0).contains(p)));
        eprintln!("scored {n} rows in {:?}", t.elapsed());
    }
}

/// Feature rows plus who appears in the records.
struct Counting {
    rows: botd::features::FeatureRows,
    from_scanner: u64,
    from_host: u64,
    evicted: u64,
    scanner: Addr,
    host: Addr,
}

impl FlowSink for Counting {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        if flow.src == self.scanner || flow.dst == self.scanner {
            self.from_scanner += flow.total_pkts();
        }
        if flow.src == self.host || flow.dst == self.host {
            self.from_host += 1;
        }
        if reason == CloseReason::Evicted {
            self.evicted += 1;
        }
        self.rows.flow(flow, reason, window);
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection: models folder unreadable, model corrupt, config broken

fn botd(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_botd"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

#[test]
fn unreadable_models_folder_is_a_clear_error() {
    let dir = scratch_dir("models-unreadable");
    // Tests run as root, which ignores permission bits: a file where the folder should be, a
    // dangling symlink and a missing path stand in for an unreadable folder.
    let file = dir.join("models-is-a-file");
    std::fs::write(&file, b"x").unwrap();
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
    let missing = dir.join("missing");
    let demo = root().join("tests/data/demo.pcap");
    for bad in [&file, &dangling, &missing] {
        let (ok, text) = botd(&[os("models"), os("--dir"), bad.as_os_str()]);
        assert!(!ok, "{text}");
        assert!(
            text.contains(&*bad.to_string_lossy()),
            "does not name the folder: {text}"
        );
        assert!(text.contains("cannot read models folder"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        let (ok, text) = botd(&[
            os("analyze"),
            os("--models"),
            bad.as_os_str(),
            demo.as_os_str(),
        ]);
        assert!(!ok, "{text}");
        assert!(
            text.contains(&*bad.to_string_lossy()),
            "does not name the folder: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
    }
    // The library call names the folder too.
    let e = botd::model::load_dir(&dangling).unwrap_err();
    assert!(
        e.contains("dangling") && e.contains("cannot read models folder"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_model_is_named_by_file() {
    let dir = scratch_dir("models-corrupt");
    let good = std::fs::read(root().join("tests/data/small-forest.onnx")).unwrap();
    // A model cut short and one that is an empty file.
    std::fs::write(dir.join("good.onnx"), &good).unwrap();
    std::fs::write(dir.join("cut.onnx"), &good[..good.len() * 2 / 3]).unwrap();
    std::fs::write(dir.join("empty.onnx"), b"").unwrap();
    // A model name that is a folder and a dangling link are skipped (not files), not errors.
    std::fs::create_dir(dir.join("folder.onnx")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere.onnx"), dir.join("link.onnx")).unwrap();
    let (ok, text) = botd(&[os("models"), os("--dir"), dir.as_os_str()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("cut.onnx") && text.contains("empty.onnx"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    let demo = root().join("tests/data/demo.pcap");
    let (ok, text) = botd(&[
        os("analyze"),
        os("--models"),
        dir.as_os_str(),
        demo.as_os_str(),
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("cut.onnx") || text.contains("empty.onnx"),
        "the error does not name the corrupt file: {text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bit flips through a small model: each load is an error naming the file, or a model; never a
/// panic. Flip 50 (byte 4850) renames the graph output so that no node produces it, and
/// tract-onnx 0.23 panics on that (`outlets_by_name[&*output.name]`, tract-onnx
/// src/model.rs:187) inside `Model::load`: ignored until src/model/mod.rs checks graph outputs
/// (or catches tract's panics); the input is tests/fuzz_regressions/model_onnx/.
#[test]
fn corrupt_model_bit_flips_never_panic() {
    let dir = scratch_dir("models-flips");
    let good = std::fs::read(root().join("tests/data/small-forest.onnx")).unwrap();
    let mut panics = Vec::new();
    for (i, at) in (0..good.len()).step_by(97).enumerate() {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        let p = dir.join(format!("flip{i}.onnx"));
        std::fs::write(&p, &bad).unwrap();
        match std::panic::catch_unwind(|| Model::load(&p)) {
            Ok(Err(e)) => assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}"),
            Ok(Ok(_)) => {}
            Err(_) => panics.push(at),
        }
        std::fs::remove_file(&p).unwrap();
    }
    for (p, bytes) in regressions("model_onnx") {
        let q = dir.join("pending.onnx");
        std::fs::write(&q, &bytes).unwrap();
        if std::panic::catch_unwind(|| Model::load(&q)).is_err() {
            panics.push(usize::MAX);
            eprintln!("{}: Model::load panicked", p.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        panics.is_empty(),
        "Model::load panicked on flips at bytes {panics:?}"
    );
}

/// The model check of a build that aborts on panic, in a child process: run here with this
/// (unwinding) build's binary, whose `__check-model` aborts on a panic too. A graph that panics
/// tract (flip 4850 above, which `Model::load` refuses before tract sees it) kills the child and
/// is a refused model; a file that is no model is the child's clean error; a shipped model passes.
#[test]
fn model_check_in_a_child_process() {
    use botd::model::check_in_child;
    let exe = Path::new(env!("CARGO_BIN_EXE_botd"));
    let flip = root().join("tests/fuzz_regressions/model_onnx/small-forest-flip-4850.onnx");
    let e = check_in_child(exe, &flip).unwrap_err();
    assert!(
        e.contains("malformed model; checked in a child process"),
        "{e}"
    );
    let e = check_in_child(exe, &root().join("tests/data/demo.pcap")).unwrap_err();
    assert!(e.starts_with("not an ONNX model: "), "{e}");
    check_in_child(exe, &root().join("models/argus-rf.onnx")).unwrap();
}

#[test]
fn broken_config_is_an_error_with_line_and_column() {
    let dir = scratch_dir("config-broken");
    let demo = root().join("tests/data/demo.pcap");
    let cases: [(&str, &str); 4] = [
        (
            "syntax.toml",
            "[flows]\ncapacity = 1024\n[network\nhome = []\n",
        ),
        ("type.toml", "[flows]\ncapacity = \"many\"\n"),
        ("invalid.toml", "\n\n[flows]\ncapacity = 0\n"),
        ("binary.toml", "\u{0}\u{1}\u{2}garbage = = =\n"),
    ];
    for (name, text) in cases {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let shown = p.to_string_lossy().to_string();
        for args in [
            vec![os("check-config"), p.as_os_str()],
            vec![
                os("analyze"),
                os("--config"),
                p.as_os_str(),
                demo.as_os_str(),
            ],
        ] {
            let (ok, out) = botd(&args);
            assert!(!ok, "{name}: {out}");
            assert!(!out.contains("panicked"), "{name}: {out}");
            // file:line:col
            let at = out
                .find(&shown)
                .unwrap_or_else(|| panic!("{name}: no file name in {out}"));
            let rest = &out[at + shown.len()..];
            let mut parts = rest.splitn(3, ':');
            let _ = parts.next();
            let line = parts.next().and_then(|s| s.parse::<usize>().ok());
            assert!(line.is_some_and(|l| l >= 1), "{name}: no line:col in {out}");
        }
    }
    // Removed between start and reload: named, no line.
    let gone = dir.join("gone.toml");
    let (ok, out) = botd(&[os("check-config"), gone.as_os_str()]);
    assert!(
        !ok && out.contains("gone.toml") && out.contains("cannot read"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Fault injection: a model whose trees are deep and narrow (cheap to write, costly to lay out)

/// A TreeEnsembleClassifier node of `trees` trees, each a chain of `depth` branches, and
/// `classes` class labels.
fn chain_forest(trees: i64, depth: i64, classes: i64) -> tract_onnx::pb::NodeProto {
    use tract_onnx::pb::{AttributeProto, NodeProto};
    let (mut tid, mut nid, mut feat, mut val, mut tru, mut fal, mut modes) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut ct, mut cn, mut ci, mut cw) = (vec![], vec![], vec![], vec![]);
    for t in 0..trees {
        // Node 2k is a branch whose true side is leaf 2k+1 and false side node 2k+2.
        for k in 0..depth {
            for (id, leaf) in [(2 * k, false), (2 * k + 1, true)] {
                tid.push(t);
                nid.push(id);
                feat.push(0);
                val.push(0.5);
                tru.push(if leaf { 0 } else { 2 * k + 1 });
                fal.push(if leaf { 0 } else { 2 * k + 2 });
                modes.push(if leaf {
                    b"LEAF".to_vec()
                } else {
                    b"BRANCH_LEQ".to_vec()
                });
                if leaf {
                    ct.push(t);
                    cn.push(id);
                    ci.push(1);
                    cw.push(1.0);
                }
            }
        }
        tid.push(t);
        nid.push(2 * depth);
        feat.push(0);
        val.push(0.0);
        tru.push(0);
        fal.push(0);
        modes.push(b"LEAF".to_vec());
    }
    let ints = |name: &str, v: Vec<i64>| AttributeProto {
        name: name.into(),
        ints: v,
        ..AttributeProto::default()
    };
    let floats = |name: &str, v: Vec<f32>| AttributeProto {
        name: name.into(),
        floats: v,
        ..AttributeProto::default()
    };
    NodeProto {
        op_type: "TreeEnsembleClassifier".into(),
        attribute: vec![
            ints("classlabels_int64s", (0..classes).collect()),
            ints("nodes_treeids", tid),
            ints("nodes_nodeids", nid),
            ints("nodes_featureids", feat),
            floats("nodes_values", val),
            ints("nodes_truenodeids", tru),
            ints("nodes_falsenodeids", fal),
            AttributeProto {
                name: "nodes_modes".into(),
                strings: modes,
                ..AttributeProto::default()
            },
            ints("class_treeids", ct),
            ints("class_nodeids", cn),
            ints("class_ids", ci),
            floats("class_weights", cw),
        ],
        ..NodeProto::default()
    }
}

#[test]
fn deep_narrow_forests_are_refused_not_allocated() {
    // A few deep trees compile and score like any other.
    let ok = Forest::from_node(&chain_forest(4, 16, 2), 3).unwrap();
    assert_eq!(ok.max_depth, 16);
    let mut out = vec![0f32; 2];
    ok.predict_class(&[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], 1, &mut out);
    assert_eq!(out, vec![4.0, 0.0]);
    // 2000 chains of depth 16 are ~66 000 nodes (a ~1 MB file) but would lay out as
    // 2000 x 65 536 x 3 cells (1.5 GB): refused quickly, with a reason.
    let t = Instant::now();
    let e = Forest::from_node(&chain_forest(2000, 16, 2), 3).unwrap_err();
    assert!(e.contains("too large"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // Thousands of class labels: refused before any per-leaf vector is made.
    let e = Forest::from_node(&chain_forest(1, 16, 5000), 3).unwrap_err();
    assert!(e.contains("class labels"), "{e}");
}
