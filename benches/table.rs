//! The engine's packet path (`on_frame`: parse, table, windows) over real.pcap held in memory,
//! unwindowed (also through `on_frame_deferred`, as `botd flows` replays) and with 300 s / 150 s
//! windows, throughput in packets; and the flow table alone
//! (lookup hit, lookup miss, insert + close) with synthetic keys at 50% and 95% fill, in ops.

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use botd::capture::{FileReader, LinkType};
use botd::engine::{Engine, EngineConfig, FlowSink, WindowConfig, WindowInfo};
use botd::flow::table::Lookup;
use botd::flow::{CloseReason, Flow, FlowKey, FlowTable};
use botd::wire::{Addr, Packet, proto};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

type OwnedFrame = (u64, LinkType, Vec<u8>, u32);

fn frames() -> Vec<OwnedFrame> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/debian-registry/pathspider/real.pcap");
    let mut r = FileReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        out.push((f.ts_ns, f.link, f.data.to_vec(), f.orig_len));
    }
    out
}

#[derive(Default)]
struct Count {
    records: u64,
    packets: u64,
}

impl FlowSink for Count {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, _window: Option<&WindowInfo>) {
        self.records += 1;
        self.packets += flow.total_pkts();
    }
}

fn engine(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(frames.len() as u64));
    for (name, window, deferred) in [
        ("unwindowed", None, false),
        ("unwindowed_deferred", None, true),
        (
            "windowed_300_150",
            WindowConfig::from_secs(300.0, 150.0),
            false,
        ),
    ] {
        let cfg = EngineConfig {
            flow_capacity: 65_536,
            window,
            ..EngineConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter_batched(
                || (Engine::new(cfg.clone()), Count::default()),
                |(mut e, mut sink)| {
                    for (ts, link, data, orig_len) in &frames {
                        if deferred {
                            e.on_frame_deferred(*ts, *link, black_box(data), *orig_len, &mut sink);
                        } else {
                            e.on_frame(*ts, *link, black_box(data), *orig_len, &mut sink);
                        }
                    }
                    e.finish(&mut sink);
                    // Returned, so dropping the engine is not timed.
                    (e, sink)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// A distinct TCP packet per `i`.
fn packet(i: u32) -> Packet {
    let b = i.to_be_bytes();
    Packet {
        wire_len: 60,
        proto: proto::TCP,
        src: Addr::v4([10, b[1], b[2], b[3]]),
        dst: Addr::v4([192, 168, 0, 1]),
        sport: 40_000 + (b[0] as u16),
        dport: 443,
        tcp_flags: 0x02,
        ttl: 64,
        ..Packet::default()
    }
}

struct Fixture {
    table: FlowTable,
    pkts: Vec<(FlowKey, bool, Packet)>,
    /// Slot numbers of the flows held, oldest first.
    held: VecDeque<u32>,
    /// Next key of `pkts` to insert.
    next: usize,
}

const CAPACITY: usize = 65_536;
const OPS: usize = 4096;

fn no_emit(_: &Flow, _: CloseReason) {}

impl Fixture {
    fn new(fill: f64) -> Fixture {
        let pkts: Vec<_> = (0..2 * CAPACITY as u32)
            .map(|i| {
                let p = packet(i);
                let (k, fwd) = FlowKey::of(&p);
                (k, fwd, p)
            })
            .collect();
        let n = (CAPACITY as f64 * fill) as usize;
        let mut f = Fixture {
            table: FlowTable::new(CAPACITY),
            pkts,
            held: VecDeque::with_capacity(CAPACITY),
            next: 0,
        };
        for _ in 0..n {
            f.insert();
        }
        assert_eq!(f.table.len(), n);
        f
    }
    fn insert(&mut self) {
        let (key, fwd, pkt) = self.pkts[self.next];
        self.next = (self.next + 1) % self.pkts.len();
        let flow = Flow::new(key, fwd, &pkt, 1, 0);
        let h = self.table.hash(&key);
        let idx = self.table.insert(flow, h, &mut no_emit);
        self.held.push_back(idx);
    }
    /// One insert of a new key and one close of the oldest flow: the fill stays the same.
    fn churn(&mut self) {
        self.insert();
        if let Some(old) = self.held.pop_front() {
            self.table.close(old, CloseReason::Idle, &mut no_emit);
        }
    }
    /// A key held now (`back` keys behind the newest).
    fn held_key(&self, back: usize) -> FlowKey {
        let n = self.pkts.len();
        self.pkts[(self.next + n - 1 - back % self.held.len()) % n].0
    }
    /// A key not held now.
    fn absent_key(&self, ahead: usize) -> FlowKey {
        let free = self.pkts.len() - self.held.len();
        self.pkts[(self.next + ahead % free) % self.pkts.len()].0
    }
}

fn table(c: &mut Criterion) {
    let mut g = c.benchmark_group("table");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(OPS as u64));
    for fill in [0.5, 0.95] {
        let pct = (fill * 100.0) as u32;
        let mut fx = Fixture::new(fill);
        // Spread the probes over the table: a stride coprime to the key count.
        let hit: Vec<FlowKey> = (0..OPS).map(|i| fx.held_key(i * 7919)).collect();
        let miss: Vec<FlowKey> = (0..OPS).map(|i| fx.absent_key(i * 7919)).collect();
        g.bench_function(format!("lookup_hit/{pct}%"), |b| {
            b.iter(|| {
                let mut found = 0u32;
                for k in &hit {
                    let h = fx.table.hash(k);
                    if let Lookup::Open(idx, _) = fx.table.lookup(black_box(k), h) {
                        found = found.wrapping_add(idx);
                    }
                }
                found
            })
        });
        g.bench_function(format!("lookup_miss/{pct}%"), |b| {
            b.iter(|| {
                let mut absent = 0u32;
                for k in &miss {
                    let h = fx.table.hash(k);
                    if let Lookup::Absent = fx.table.lookup(black_box(k), h) {
                        absent += 1;
                    }
                }
                absent
            })
        });
        g.bench_function(format!("insert_close/{pct}%"), |b| {
            b.iter(|| {
                for _ in 0..OPS {
                    fx.churn();
                }
            })
        });
        assert_eq!(fx.table.len(), (CAPACITY as f64 * fill) as usize);
    }
    g.finish();
}

criterion_group!(benches, engine, table);
criterion_main!(benches);
