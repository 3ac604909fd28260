//! The engine end to end, on real captures from ../shared/data and on crafted frames: the table never
//! holds more than its capacity, every packet ends up in exactly one record per window it falls in,
//! direction comes from the connection's initiator, windows close in order and records carry the
//! right window, and output does not depend on the (randomly seeded) hash order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use botd::capture::{FileReader, LinkType};
use botd::engine::{Engine, EngineConfig, FlowSink, WindowConfig, WindowInfo};
use botd::flow::{CloseReason, Flow};
use botd::output::{FlowWriter, Format};
use botd::wire::{self, Addr, proto};
use proptest::prelude::*;

const SEC: u64 = 1_000_000_000;

fn data() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(d.is_dir(), "test data directory {} is missing", d.display());
    d
}

fn capture(rel: &str) -> PathBuf {
    let p = data().join(rel);
    assert!(p.is_file(), "capture {} is missing", p.display());
    p
}

const REAL: &str = "debian-registry/pathspider/real.pcap";

/// Captures of different kinds: a long mixed trace, a pcapng malware trace, IP fragments, a spoofed
/// SYN flood (many one-packet flows) and tunnels.
const CAPTURES: [&str; 5] = [
    REAL,
    "chrissanders-packets/ratinfected.pcapng",
    "stopddos-packet-captures/amp.dns.RRSIG.fragmented.pcap",
    "stopddos-packet-captures/pkt.TCP.synflood.spoofed.pcap",
    "malcolm-pcap/protocols/Tunnels.pcap",
];

type OwnedFrame = (u64, LinkType, Vec<u8>, u32);

fn load(path: &Path) -> Vec<OwnedFrame> {
    let mut r = FileReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        out.push((f.ts_ns, f.link, f.data.to_vec(), f.orig_len));
    }
    assert!(!out.is_empty(), "{}: no frames", path.display());
    out
}

fn windows_300_150() -> WindowConfig {
    WindowConfig::from_secs(300.0, 150.0).expect("valid windows")
}

// ---------------------------------------------------------------------------------------------
// Sinks

#[derive(Clone, Debug)]
enum Event {
    Flow(Box<Flow>, CloseReason, Option<WindowInfo>),
    WindowClosed(WindowInfo, u64),
}

/// Keeps everything the engine hands out, in order.
#[derive(Default)]
struct Recorder {
    events: Vec<Event>,
}

impl FlowSink for Recorder {
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.events
            .push(Event::Flow(Box::new(flow.clone()), reason, window.copied()));
    }
    fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
        self.events.push(Event::WindowClosed(*window, flows));
    }
}

impl Recorder {
    fn flows(&self) -> impl Iterator<Item = (&Flow, CloseReason, Option<WindowInfo>)> {
        self.events.iter().filter_map(|e| match e {
            Event::Flow(f, r, w) => Some((&**f, *r, *w)),
            Event::WindowClosed(..) => None,
        })
    }
    fn records(&self) -> usize {
        self.flows().count()
    }
    /// Sum of TotPkts per window index (0 when unwindowed).
    fn packets_per_window(&self) -> BTreeMap<u64, u64> {
        let mut m = BTreeMap::new();
        for (f, _, w) in self.flows() {
            *m.entry(w.map_or(0, |w| w.index)).or_insert(0) += f.total_pkts();
        }
        m.retain(|_, v| *v > 0);
        m
    }
    fn total_packets(&self) -> u64 {
        self.flows().map(|(f, _, _)| f.total_pkts()).sum()
    }
}

// ---------------------------------------------------------------------------------------------
// Expected per-window packet counts, computed from the frames alone

/// Packets per window index: a parsed frame is processed at the engine's clock (its timestamp, or
/// the latest seen if it came out of order), and belongs to every window
/// `[anchor + w*step, anchor + w*step + length)` holding that time; the anchor is the first frame's
/// timestamp. Unwindowed, everything is window 0.
fn expected_per_window(frames: &[OwnedFrame], window: Option<WindowConfig>) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    let Some(anchor) = frames.first().map(|f| f.0) else {
        return m;
    };
    let mut clock = 0u64;
    for (ts, link, data, orig_len) in frames {
        clock = clock.max(*ts);
        if wire::parse(*link, data, *orig_len).is_err() {
            continue;
        }
        match window {
            None => *m.entry(0).or_insert(0) += 1,
            Some(w) => {
                let d = clock - anchor;
                let last = d / w.step_ns;
                let first = last.saturating_sub(w.concurrent() as u64);
                for idx in first..=last {
                    let start = idx * w.step_ns;
                    if start <= d && d < start + w.length_ns {
                        *m.entry(idx).or_insert(0) += 1;
                    }
                }
            }
        }
    }
    m
}

/// Runs frames through an engine, checking the capacity bound after every frame.
fn run(frames: &[OwnedFrame], cfg: EngineConfig) -> (Engine, Recorder) {
    let k = cfg.window.map_or(1, |w| w.concurrent());
    let bound = cfg.flow_capacity * k;
    let mut engine = Engine::new(cfg);
    let mut rec = Recorder::default();
    for (i, (ts, link, data, orig_len)) in frames.iter().enumerate() {
        engine.on_frame(*ts, *link, data, *orig_len, &mut rec);
        let active = engine.active_flows();
        assert!(
            active <= bound,
            "frame {i}: {active} flows held, bound {bound}"
        );
    }
    engine.finish(&mut rec);
    (engine, rec)
}

fn cfg(capacity: usize, window: Option<WindowConfig>) -> EngineConfig {
    EngineConfig {
        flow_capacity: capacity,
        window,
        ..EngineConfig::default()
    }
}

/// Every parsed packet is in exactly one record per window it falls in; every record the engine
/// counted reached the sink.
fn assert_conserved(name: &str, frames: &[OwnedFrame], engine: &Engine, rec: &Recorder) {
    let window = engine.config().window;
    assert_eq!(engine.counters.frames, frames.len() as u64, "{name}");
    assert_eq!(engine.counters.flows, rec.records() as u64, "{name}");
    if window.is_none() {
        assert_eq!(
            rec.total_packets() + engine.counters.unparsed(),
            engine.counters.frames,
            "{name}: packets not conserved"
        );
    }
    let want = expected_per_window(frames, window);
    let got = rec.packets_per_window();
    if want != got {
        let diff: Vec<_> = want
            .keys()
            .chain(got.keys())
            .filter(|k| want.get(k) != got.get(k))
            .take(10)
            .map(|k| (k, want.get(k), got.get(k)))
            .collect();
        panic!("{name}: packets per window differ (window, expected, got): {diff:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// (a) capacity

#[test]
#[ignore = "data: ../shared/data"]
fn small_table_never_exceeds_capacity_and_evictions_are_counted() {
    let frames = load(&capture(REAL));
    let (engine, rec) = {
        // Stop before finish to look at the table counters of the run itself.
        let mut engine = Engine::new(cfg(64, None));
        let mut rec = Recorder::default();
        for (i, (ts, link, data, orig_len)) in frames.iter().enumerate() {
            engine.on_frame(*ts, *link, data, *orig_len, &mut rec);
            assert!(engine.active_flows() <= 64, "frame {i}");
        }
        (engine, rec)
    };
    let stats = engine.table_stats();
    let evicted_records = rec
        .flows()
        .filter(|(_, r, _)| *r == CloseReason::Evicted)
        .count() as u64;
    assert!(stats.evicted > 0, "no eviction with 64 slots: {stats:?}");
    assert_eq!(stats.evicted, evicted_records, "every eviction is emitted");
    assert_eq!(stats.high_water, 64);

    let (engine, rec) = {
        let (mut engine, mut rec) = (engine, rec);
        engine.finish(&mut rec);
        (engine, rec)
    };
    assert_eq!(engine.active_flows(), 0);
    assert_eq!(
        rec.total_packets() + engine.counters.unparsed(),
        engine.counters.frames
    );
    assert_eq!(engine.counters.frames, 62_781);
    assert_conserved(REAL, &frames, &engine, &rec);
}

#[test]
#[ignore = "data: ../shared/data"]
fn small_windowed_table_never_exceeds_capacity_per_window() {
    let frames = load(&capture(REAL));
    let (engine, rec) = run(&frames, cfg(64, Some(windows_300_150())));
    assert!(
        rec.flows().any(|(_, r, _)| r == CloseReason::Evicted),
        "no eviction with 64 slots per window"
    );
    assert_conserved(REAL, &frames, &engine, &rec);
}

// ---------------------------------------------------------------------------------------------
// (b) conservation

#[test]
#[ignore = "data: ../shared/data"]
fn packets_conserved_unwindowed() {
    for name in CAPTURES {
        let frames = load(&capture(name));
        let (engine, rec) = run(&frames, cfg(65_536, None));
        assert_eq!(engine.table_stats().evicted, 0, "{name}");
        assert_conserved(name, &frames, &engine, &rec);
        // Tiny table: the same packets, just more records.
        let (engine, rec) = run(&frames, cfg(16, None));
        assert_conserved(name, &frames, &engine, &rec);
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn packets_conserved_per_window() {
    for name in CAPTURES {
        let frames = load(&capture(name));
        let (engine, rec) = run(&frames, cfg(65_536, Some(windows_300_150())));
        assert_conserved(name, &frames, &engine, &rec);
        // Tumbling windows too (each packet in exactly one window).
        let (engine, rec) = run(&frames, cfg(65_536, WindowConfig::from_secs(60.0, 0.0)));
        assert_conserved(name, &frames, &engine, &rec);
    }
}

#[test]
fn overlapping_windows_count_each_packet_twice() {
    // One UDP flow, packets at 0 s, 200 s and 400 s: windows are [0,300), [150,450), [300,600).
    let a = [10, 0, 0, 1];
    let b = [10, 0, 0, 2];
    let t0 = 1_700_000_000 * SEC;
    let mut engine = Engine::new(cfg(16, Some(windows_300_150())));
    let mut rec = Recorder::default();
    for t in [0, 200, 400] {
        let f = udp_frame(a, 5000, b, 6000, 10);
        engine.on_frame(
            t0 + t * SEC,
            LinkType::Ethernet,
            &f,
            f.len() as u32,
            &mut rec,
        );
    }
    engine.finish(&mut rec);
    let got: Vec<(u64, u64)> = rec
        .flows()
        .map(|(f, _, w)| (w.expect("windowed").index, f.total_pkts()))
        .collect();
    assert_eq!(got, vec![(0, 2), (1, 2), (2, 1)]);
}

// ---------------------------------------------------------------------------------------------
// (c) direction

fn eth_ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]); // dst MAC
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]); // src MAC
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    f
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: usize,
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + payload, 0xab);
    eth_ipv4(src, dst, proto::TCP, &t)
}

fn udp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.resize(8 + payload, 0xcd);
    eth_ipv4(src, dst, proto::UDP, &u)
}

/// A whole TCP connection from `client` to `server`: (from client?, frame).
fn handshake(client: [u8; 4], cport: u16, server: [u8; 4], sport: u16) -> Vec<(bool, Vec<u8>)> {
    let (c, s) = (1000u32, 5000u32);
    vec![
        (true, tcp_frame(client, cport, server, sport, SYN, c, 0, 0)),
        (
            false,
            tcp_frame(server, sport, client, cport, SYN | ACK, s, c + 1, 0),
        ),
        (
            true,
            tcp_frame(client, cport, server, sport, ACK, c + 1, s + 1, 0),
        ),
        (
            true,
            tcp_frame(client, cport, server, sport, PSH | ACK, c + 1, s + 1, 100),
        ),
        (
            false,
            tcp_frame(server, sport, client, cport, PSH | ACK, s + 1, c + 101, 300),
        ),
        (
            true,
            tcp_frame(client, cport, server, sport, FIN | ACK, c + 101, s + 301, 0),
        ),
        (
            false,
            tcp_frame(server, sport, client, cport, FIN | ACK, s + 301, c + 102, 0),
        ),
        (
            true,
            tcp_frame(client, cport, server, sport, ACK, c + 102, s + 302, 0),
        ),
    ]
}

fn check_handshake(client: [u8; 4], cport: u16, server: [u8; 4], sport: u16) {
    let conn = handshake(client, cport, server, sport);
    let t0 = 1_600_000_000 * SEC;
    let mut engine = Engine::new(EngineConfig::default());
    let mut rec = Recorder::default();
    for (i, (_, f)) in conn.iter().enumerate() {
        let ts = t0 + i as u64 * 10_000_000;
        engine.on_frame(ts, LinkType::Ethernet, f, f.len() as u32, &mut rec);
    }
    assert_eq!(engine.active_flows(), 1);
    engine.finish(&mut rec);
    assert_eq!(engine.counters.unparsed(), 0);
    let flows: Vec<_> = rec.flows().collect();
    assert_eq!(flows.len(), 1, "one connection, one flow: {flows:#?}");
    let (f, reason, window) = flows[0];
    assert_eq!(reason, CloseReason::Flush);
    assert!(window.is_none());
    assert_eq!(f.src, Addr::v4(client), "src is the SYN sender");
    assert_eq!(f.dst, Addr::v4(server));
    assert_eq!((f.sport, f.dport), (cport, sport));
    assert_eq!(f.proto, proto::TCP);
    let from_client: Vec<_> = conn.iter().filter(|(c, _)| *c).collect();
    let from_server: Vec<_> = conn.iter().filter(|(c, _)| !*c).collect();
    assert_eq!(f.fwd.pkts, from_client.len() as u64, "SrcPkts");
    assert_eq!(f.rev.pkts, from_server.len() as u64, "DstPkts");
    let bytes = |v: &[&(bool, Vec<u8>)]| v.iter().map(|(_, f)| f.len() as u64).sum::<u64>();
    assert_eq!(f.fwd.bytes, bytes(&from_client), "SrcBytes");
    assert_eq!(f.rev.bytes, bytes(&from_server), "DstBytes");
    assert_eq!(f.fwd.app_bytes, 100);
    assert_eq!(f.rev.app_bytes, 300);
    assert_eq!(f.fwd.tcp_flags, SYN | ACK | PSH | FIN);
    assert_eq!(f.rev.tcp_flags, SYN | ACK | PSH | FIN);
    assert_eq!(f.fwd.tcp_retrans + f.rev.tcp_retrans, 0);
    assert_eq!(f.start_ns, t0);
    assert_eq!(f.last_ns, t0 + 7 * 10_000_000);
}

#[test]
fn handshake_direction_client_lower_address() {
    check_handshake([10, 0, 0, 1], 40_000, [10, 0, 0, 2], 80);
}

#[test]
fn handshake_direction_client_higher_address() {
    check_handshake([192, 168, 1, 77], 51_234, [10, 0, 0, 2], 443);
}

#[test]
fn handshake_direction_client_lower_port() {
    // Client port below the server's: direction still follows the SYN, not the port order.
    check_handshake([172, 16, 0, 9], 1024, [172, 16, 0, 1], 8080);
}

// ---------------------------------------------------------------------------------------------
// (d) windows

#[test]
#[ignore = "data: ../shared/data"]
fn windows_close_in_order_and_records_carry_their_window() {
    let frames = load(&capture(REAL));
    let w = windows_300_150();
    let anchor = frames[0].0;
    let (engine, rec) = run(&frames, cfg(65_536, Some(w)));

    let mut last_closed: Option<u64> = None;
    let mut records_in = BTreeMap::<u64, u64>::new();
    for e in &rec.events {
        match e {
            Event::Flow(f, reason, info) => {
                let info = info.expect("windowed engine gives every record a window");
                if let Some(closed) = last_closed {
                    assert!(
                        info.index > closed,
                        "record of window {} after window {closed} closed",
                        info.index
                    );
                }
                assert_eq!(f.window, info.index, "flow and sink agree on the window");
                assert_eq!(info.start_ns, anchor + info.index * w.step_ns);
                assert_eq!(info.end_ns, info.start_ns + w.length_ns);
                // What the detector and the score cache index by, and the overlaps the cache
                // reads: the engine's to say, so they must be the windows' own.
                assert_eq!(info.slot as u64, info.index % w.concurrent() as u64);
                let prev_end = (info.index >= 1).then(|| info.start_ns + w.length_ns - w.step_ns);
                assert_eq!(info.prev_end_ns, prev_end);
                assert_eq!(info.next_start_ns, Some(info.start_ns + w.step_ns));
                assert!(
                    info.start_ns <= f.start_ns && f.start_ns < info.end_ns,
                    "record starting at {} in window {info:?}",
                    f.start_ns
                );
                assert!(
                    f.last_ns < info.end_ns,
                    "record of window {info:?} runs to {}",
                    f.last_ns
                );
                assert_ne!(
                    *reason,
                    CloseReason::Flush,
                    "windowed records end with windows"
                );
                *records_in.entry(info.index).or_insert(0) += 1;
            }
            Event::WindowClosed(info, flows) => {
                if let Some(closed) = last_closed {
                    assert!(info.index > closed, "window {} after {closed}", info.index);
                }
                assert!(*flows > 0);
                let records = records_in.get(&info.index).copied().unwrap_or(0);
                assert!(
                    records >= *flows,
                    "window {}: {flows} flows but {records} records",
                    info.index
                );
                last_closed = Some(info.index);
            }
        }
    }
    // real.pcap spans 3599 s: windows 0..=23 hold packets.
    let closed: Vec<u64> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::WindowClosed(i, _) => Some(i.index),
            Event::Flow(..) => None,
        })
        .collect();
    assert_eq!(closed, (0..24).collect::<Vec<_>>());
    assert_eq!(engine.counters.windows_closed, 24);
    assert_eq!(records_in.keys().copied().collect::<Vec<_>>(), closed);
}

// ---------------------------------------------------------------------------------------------
// (e) determinism

fn csv(frames: &[OwnedFrame], cfg: EngineConfig) -> Vec<u8> {
    let windowed = cfg.window.is_some();
    let mut engine = Engine::new(cfg);
    let mut w = FlowWriter::new(Vec::new(), Format::Csv, windowed);
    for (ts, link, data, orig_len) in frames {
        engine.on_frame(*ts, *link, data, *orig_len, &mut w);
    }
    engine.finish(&mut w);
    assert!(w.error.is_none());
    assert_eq!(w.records, engine.counters.flows);
    w.finish().expect("writing to a Vec")
}

#[test]
#[ignore = "data: ../shared/data"]
fn csv_output_is_deterministic() {
    for name in CAPTURES {
        let frames = load(&capture(name));
        for c in [
            cfg(65_536, None),
            cfg(32, None),
            cfg(65_536, Some(windows_300_150())),
            cfg(32, Some(windows_300_150())),
        ] {
            // Each engine has its own randomly seeded hasher.
            let a = csv(&frames, c.clone());
            let b = csv(&frames, c.clone());
            assert!(a.len() > 100, "{name}: {c:?}: no output");
            assert!(a == b, "{name}: {c:?}: two runs gave different CSV");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property: random small packet sequences through a tiny table

#[derive(Clone, Debug)]
struct RandomPacket {
    src: usize,
    dst: usize,
    sport: usize,
    dport: usize,
    kind: u8,
    flags: u8,
    payload: usize,
    gap_ms: u64,
}

const POOL_ADDRS: [[u8; 4]; 4] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [10, 0, 0, 3],
    [192, 168, 0, 1],
];
const POOL_PORTS: [u16; 4] = [53, 80, 40_000, 50_000];

fn random_packet() -> impl Strategy<Value = RandomPacket> {
    (
        0..POOL_ADDRS.len(),
        0..POOL_ADDRS.len(),
        0..POOL_PORTS.len(),
        0..POOL_PORTS.len(),
        0u8..3,
        any::<u8>(),
        0usize..64,
        // Mostly short gaps, sometimes past linger times and window steps.
        prop_oneof![4 => 0u64..2_000, 1 => 0u64..200_000],
    )
        .prop_map(
            |(src, dst, sport, dport, kind, flags, payload, gap_ms)| RandomPacket {
                src,
                dst,
                sport,
                dport,
                kind,
                flags,
                payload,
                gap_ms,
            },
        )
}

fn frame_of(p: &RandomPacket) -> Vec<u8> {
    let (src, dst) = (POOL_ADDRS[p.src], POOL_ADDRS[p.dst]);
    let (sport, dport) = (POOL_PORTS[p.sport], POOL_PORTS[p.dport]);
    match p.kind {
        0 => tcp_frame(src, sport, dst, dport, p.flags, 1000, 0, p.payload),
        1 => udp_frame(src, sport, dst, dport, p.payload),
        // A truncated frame: counted as unparsed.
        _ => {
            let mut f = tcp_frame(src, sport, dst, dport, p.flags, 0, 0, 0);
            f.truncate(14 + 10);
            f
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_traffic_respects_capacity_and_conserves_packets(
        packets in proptest::collection::vec(random_packet(), 1..300),
        capacity in 1usize..6,
        windowed in any::<bool>(),
    ) {
        let window = windowed.then(windows_300_150);
        let t0 = 1_650_000_000 * SEC;
        let mut ts = t0;
        let frames: Vec<OwnedFrame> = packets
            .iter()
            .map(|p| {
                ts += p.gap_ms * 1_000_000;
                let f = frame_of(p);
                let len = f.len() as u32;
                (ts, LinkType::Ethernet, f, len)
            })
            .collect();
        let k = window.map_or(1, |w| w.concurrent());
        let mut engine = Engine::new(cfg(capacity, window));
        let mut rec = Recorder::default();
        for (ts, link, data, orig_len) in &frames {
            engine.on_frame(*ts, *link, data, *orig_len, &mut rec);
            prop_assert!(engine.active_flows() <= capacity * k);
        }
        engine.finish(&mut rec);
        prop_assert_eq!(engine.active_flows(), 0);
        prop_assert_eq!(engine.counters.flows, rec.records() as u64);
        let unparsed = packets.iter().filter(|p| p.kind == 2).count() as u64;
        prop_assert_eq!(engine.counters.unparsed(), unparsed);
        if window.is_none() {
            prop_assert_eq!(rec.total_packets() + unparsed, frames.len() as u64);
        }
        prop_assert_eq!(rec.packets_per_window(), expected_per_window(&frames, window));
    }
}
