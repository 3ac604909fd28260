//! Bytes split into frames of varied link types, fed through the engine with a tiny table, short
//! windows and short timeouts, then finished. Invariants: the engine holds at most
//! capacity x windows flows; every frame is counted; unwindowed, every parsed packet and byte
//! ends up in exactly one record (plus counted unparsed frames); every record's window contains
//! its start; nothing is left in the table after `finish`.
//!
//! Input layout: 2 config bytes, then records `[link+flags] [time step] [length] [frame...]`.
#![no_main]

use botd::capture::LinkType;
use botd::engine::{Engine, EngineConfig, FlowSink, WindowConfig, WindowInfo};
use botd::flow::{CloseReason, Flow, IndexKind};
use botd::wire;
use libfuzzer_sys::fuzz_target;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

const LINKS: [LinkType; 9] = [
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

#[derive(Default)]
struct Sink {
    records: u64,
    pkts: u64,
    bytes: u64,
    windows_closed: u64,
    last_window_closed: Option<u64>,
}

impl FlowSink for Sink {
    fn flow(&mut self, f: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
        self.records += 1;
        self.pkts += f.total_pkts();
        self.bytes += f.total_bytes();
        assert!(f.last_ns >= f.start_ns, "{f:?}");
        // Every record is opened by a packet.
        assert!(f.total_pkts() > 0, "{reason:?} {f:?}");
        if let Some(w) = window {
            assert!(
                w.start_ns <= f.start_ns && f.start_ns < w.end_ns,
                "record start {} outside window {w:?}",
                f.start_ns
            );
            assert_eq!(f.window, w.index);
        }
    }
    fn window_closed(&mut self, w: &WindowInfo, flows: u64) {
        assert!(flows > 0);
        if let Some(prev) = self.last_window_closed {
            assert!(w.index > prev, "window {} closed after {prev}", w.index);
        }
        self.last_window_closed = Some(w.index);
        self.windows_closed += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let [c0, c1, rest @ ..] = data else {
        return;
    };
    let capacity = 1 + usize::from(c0 & 7);
    let window = (c0 & 8 != 0).then(|| {
        // 4 s windows every 2 s, or 3 s every 1 s (three open at once).
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
    let mut sink = Sink::default();

    let mut ts: u64 = 1_700_000_000 * SEC;
    let (mut frames, mut parsed_pkts, mut parsed_bytes, mut unparsed) = (0u64, 0u64, 0u64, 0u64);
    let mut i = 0usize;
    while let (Some(&sel), Some(&step), Some(&len)) =
        (rest.get(i), rest.get(i + 1), rest.get(i + 2))
    {
        i += 3;
        let end = (i + usize::from(len)).min(rest.len());
        let frame = &rest[i..end];
        i = end;
        let link = LINKS[usize::from(sel & 0x0f) % LINKS.len()];
        // Steps of 50 ms (up to 12.75 s: past idle, linger, status and window times); with the
        // top bit the clock goes back (an out-of-order frame).
        if sel & 0x80 != 0 {
            ts = ts.saturating_sub(u64::from(step) * 50 * MS);
        } else {
            ts = ts.saturating_add(u64::from(step) * 50 * MS);
        }
        // Wire length: the caplen, or longer (snaplen cut), or a hostile smaller value.
        let wire_len = match (sel >> 4) & 7 {
            0..=4 => frame.len() as u32,
            5 => frame.len() as u32 + 1500,
            6 => u32::from(step),
            _ => u32::MAX,
        };
        match wire::parse(link, frame, wire_len) {
            Ok(p) => {
                parsed_pkts += 1;
                parsed_bytes += u64::from(p.wire_len);
            }
            Err(_) => unparsed += 1,
        }
        engine.on_frame(ts, link, frame, wire_len, &mut sink);
        frames += 1;
        assert!(
            engine.active_flows() <= capacity * k,
            "{} flows held, capacity {capacity} x {k}",
            engine.active_flows()
        );
    }
    engine.finish(&mut sink);
    assert_eq!(engine.active_flows(), 0);
    assert_eq!(engine.counters.frames, frames);
    assert_eq!(engine.counters.packets, parsed_pkts);
    assert_eq!(engine.counters.unparsed(), unparsed);
    assert_eq!(engine.counters.flows, sink.records);
    assert_eq!(engine.counters.windows_closed, sink.windows_closed);
    let stats = engine.table_stats();
    assert!(stats.high_water <= capacity as u64);
    if window.is_none() {
        assert_eq!(sink.pkts + unparsed, frames, "packets not conserved");
        assert_eq!(sink.bytes, parsed_bytes, "bytes not conserved");
    } else {
        // Each packet is in at most k windows.
        assert!(sink.pkts <= parsed_pkts * k as u64);
    }
});
