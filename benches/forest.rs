//! Forest scoring: the shipped models/argus-rf.onnx over batches of 1024 feature rows of the
//! windowed flows of real.pcap (300 s / 150 s windows, as `botd features` makes them), with every
//! kernel this CPU runs (AVX-512, AVX2, portable; their results are bit-identical), throughput in
//! rows. And feature extraction (`Schema::extract`) over the same flows, throughput in flows.
//!
//! And the floor of any tree walk on this CPU: it prints how many branch nodes a row of these
//! batches passes through (each needs its node and its feature value read), and `floor/gather`
//! times AVX-512 gathers (16 lanes, 8 independent dependent chains, from a table the size of
//! argus-rf's nodes), throughput in gathered lanes, and `floor/load` the same chase with scalar
//! loads (16 chains). Two reads per branch step bound a walk: rows/s <= reads/s / (2 x steps per
//! row).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use botd::capture::FileReader;
use botd::engine::{Engine, EngineConfig, FlowSink, WindowConfig, WindowInfo};
use botd::features::ARGUS;
use botd::flow::{CloseReason, Flow};
use botd::model::forest::Kernel;
use botd::model::{Model, Scorer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: usize = 1024;

#[derive(Default)]
struct Flows(Vec<Flow>);

impl FlowSink for Flows {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, _window: Option<&WindowInfo>) {
        self.0.push(flow.clone());
    }
}

/// Every flow record of real.pcap in 300 s windows overlapping by 150 s.
fn flows() -> Vec<Flow> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/debian-registry/pathspider/real.pcap");
    let mut r = FileReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut engine = Engine::new(EngineConfig {
        window: WindowConfig::from_secs(300.0, 150.0),
        ..EngineConfig::default()
    });
    let mut sink = Flows::default();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, &mut sink);
    }
    engine.finish(&mut sink);
    sink.0
}

fn forest(c: &mut Criterion) {
    let flows = flows();
    let nf = ARGUS.len();
    let mut rows = vec![0f32; flows.len() * nf];
    // `argus` does not read the DNS view.
    let dns = botd::dnsview::DnsView::new(1);
    for (flow, row) in flows.iter().zip(rows.chunks_mut(nf)) {
        ARGUS.extract(flow, &dns, row);
    }
    // The batches a 1024-row scoring loop sees, cycling over the capture's rows.
    let batches: Vec<Vec<f32>> = (0..8)
        .map(|b| {
            (0..BATCH * nf)
                .map(|i| rows[(b * BATCH * nf + i) % rows.len()])
                .collect()
        })
        .collect();

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/argus-rf.onnx");
    let mut model = Model::load(&path).unwrap_or_else(|e| panic!("{e}"));
    if let Scorer::Forest(f) = &model.scorer {
        let rows = (BATCH * batches.len()) as f64;
        let per_row =
            |from| batches.iter().map(|b| f.branch_steps(b, from)).sum::<u64>() as f64 / rows;
        println!(
            "argus-rf: {:.1} branch steps per row of these batches, {:.1} below level 3",
            per_row(0),
            per_row(3)
        );
    }
    let mut out = vec![0f32; BATCH];
    let mut g = c.benchmark_group("forest");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((BATCH * batches.len()) as u64));
    // Every kernel this CPU runs, fastest first.
    for kernel in [Kernel::Avx512, Kernel::Avx2, Kernel::Portable] {
        let Scorer::Forest(f) = &mut model.scorer else {
            panic!("argus-rf is a forest");
        };
        if !f.set_kernel(kernel) {
            continue;
        }
        // Probabilities, and verdicts only (what the detector asks for: rows stop once their side
        // of the threshold is certain).
        type Scoring = fn(&Model, &[f32], &mut [f32]) -> Result<(), String>;
        for (path, scoring) in [("", Model::score as Scoring), ("decide/", Model::decide)] {
            g.bench_function(format!("argus-rf/{kernel:?}/{path}batch{BATCH}"), |b| {
                b.iter(|| {
                    let mut sum = 0f32;
                    for batch in &batches {
                        scoring(&model, black_box(batch), &mut out)
                            .unwrap_or_else(|e| panic!("{e}"));
                        sum += out[0];
                    }
                    sum
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("features");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(flows.len() as u64));
    let mut row = vec![0f32; nf];
    g.bench_function("argus/real.pcap", |b| {
        b.iter(|| {
            let mut sum = 0f32;
            for flow in &flows {
                ARGUS.extract(black_box(flow), &dns, &mut row);
                sum += row[0];
            }
            sum
        })
    });
    g.finish();
}

/// Dependent AVX-512 gathers (`i = table[i]`, 16 lanes), 8 chains at once so that their latency
/// overlaps: the throughput a tree walk's node and feature reads cannot beat.
#[cfg(target_arch = "x86_64")]
fn floor(c: &mut Criterion) {
    use std::arch::x86_64::*;
    const CHAINS: usize = 8;
    const STEPS: usize = 4096;
    if !is_x86_feature_detected!("avx512f") {
        return;
    }
    // argus-rf has 42,872 nodes; a power of two near it keeps the index mask simple.
    let n = 1usize << 15;
    let mut x = 0x2545_f491_u32;
    let table: Vec<i32> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as usize % n) as i32
        })
        .collect();
    #[target_feature(enable = "avx512f")]
    fn chase(table: &[i32]) -> i32 {
        let mask = _mm512_set1_epi32(table.len() as i32 - 1);
        let mut idx = [_mm512_setzero_si512(); CHAINS];
        for (k, v) in idx.iter_mut().enumerate() {
            *v = _mm512_add_epi32(
                _mm512_set_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(16 * k as i32),
            );
        }
        for _ in 0..STEPS {
            for v in &mut idx {
                // SAFETY: every lane is masked to an index of `table` (a power of two long).
                let g = unsafe { _mm512_i32gather_epi32::<4>(*v, table.as_ptr()) };
                *v = _mm512_and_si512(g, mask);
            }
        }
        idx.iter()
            .fold(0, |s, v| s.wrapping_add(_mm512_reduce_add_epi32(*v)))
    }
    let mut g = c.benchmark_group("floor");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((CHAINS * STEPS * 16) as u64));
    // SAFETY: avx512f was detected above.
    g.bench_function("gather", |b| b.iter(|| unsafe { chase(black_box(&table)) }));
    // The same chase with scalar loads, 16 chains: what a scalar walk (two loads a step) gets.
    g.bench_function("load", |b| {
        b.iter(|| {
            let table = black_box(&table);
            let mask = table.len() - 1;
            let mut idx: [usize; 16] = std::array::from_fn(|k| k * 1021);
            for _ in 0..STEPS * CHAINS {
                for i in &mut idx {
                    *i = table.get(*i & mask).copied().unwrap_or(0) as usize;
                }
            }
            idx.iter().sum::<usize>()
        })
    });
    g.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn floor(_: &mut Criterion) {}

criterion_group!(benches, forest, floor);
criterion_main!(benches);
