//! `wire::parse` over every frame of real.pcap held in memory, and the capture reader over the
//! page-cached file (alone, and three copies merged in time order); throughput in frames.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use botd::capture::{FileReader, LinkType, MergedCapture};
use botd::wire;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn frames() -> Vec<(LinkType, Vec<u8>, u32)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/debian-registry/pathspider/real.pcap");
    let mut r = FileReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        out.push((f.link, f.data.to_vec(), f.orig_len));
    }
    out
}

fn parse(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("parse");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("real.pcap", |b| {
        b.iter(|| {
            let mut ok = 0u64;
            for (link, data, orig_len) in &frames {
                if let Ok(p) = wire::parse(*link, black_box(data), *orig_len) {
                    ok += u64::from(black_box(p).proto);
                }
            }
            ok
        })
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/debian-registry/pathspider/real.pcap");
    let n = frames().len() as u64;
    let mut g = c.benchmark_group("read");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(n));
    g.bench_function("FileReader real.pcap", |b| {
        b.iter(|| {
            let mut r = FileReader::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let mut bytes = 0usize;
            while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
                bytes += black_box(f.data).len();
            }
            bytes
        })
    });
    g.throughput(Throughput::Elements(3 * n));
    g.bench_function("MergedCapture 3 x real.pcap", |b| {
        let three = [path.clone(), path.clone(), path.clone()];
        b.iter(|| {
            let mut m = MergedCapture::open(&three).unwrap_or_else(|e| panic!("{e}"));
            let mut frames = 0u64;
            while m.next_frame().unwrap_or_else(|e| panic!("{e}")).is_some() {
                frames += 1;
            }
            frames
        })
    });
    g.finish();
}

criterion_group!(benches, parse, read);
criterion_main!(benches);
