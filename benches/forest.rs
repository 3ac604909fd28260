//! Forest scoring: the shipped models/argus-rf.onnx over batches of 1024 feature rows of the
//! windowed flows of real.pcap (300 s / 150 s windows, as `botd features` makes them), with every
//! kernel this CPU runs (AVX-512, AVX2, portable; their results are bit-identical), throughput in
//! rows. And feature extraction (`Schema::extract`) over the same flows, throughput in flows.

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
        self.0.push(*flow);
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
    for (flow, row) in flows.iter().zip(rows.chunks_mut(nf)) {
        ARGUS.extract(flow, row);
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
                ARGUS.extract(black_box(flow), &mut row);
                sum += row[0];
            }
            sum
        })
    });
    g.finish();
}

criterion_group!(benches, forest);
criterion_main!(benches);
