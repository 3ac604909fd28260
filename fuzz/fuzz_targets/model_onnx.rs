//! Bytes as an ONNX model: `Model::load` (tract's protobuf reader, metadata and schema checks,
//! tract's graph checks, the forest compiler) must return a value, never panic. Every
//! TreeEnsembleClassifier node found by the protobuf reader also goes straight to
//! `Forest::from_node` (skipping the metadata checks a fuzzer rarely passes), and a compiled forest
//! scores rows made from the input without panicking, with probabilities that are finite when the
//! weights are.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use botd::model::Model;
use botd::model::forest::Forest;
use libfuzzer_sys::fuzz_target;
use tract_onnx::prelude::Framework;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("botd-fuzz-model-{}.onnx", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(proto) = tract_onnx::onnx().proto_model_for_read(&mut &data[..]) else {
        return;
    };
    if let Some(graph) = proto.graph.as_ref() {
        for node in &graph.node {
            for n_features in [0usize, 1, 3, 40] {
                let Ok(forest) = Forest::from_node(node, n_features) else {
                    continue;
                };
                assert_eq!(forest.n_features, n_features);
                let nc = forest.n_classes();
                assert!(nc >= 1);
                // Rows from the input bytes (including NaN, inf, subnormals), 0..20 rows.
                let n_rows = data.len() % 21;
                let rows: Vec<f32> = (0..n_rows * n_features)
                    .map(|i| {
                        let b = |k: usize| data.get((i * 4 + k) % data.len()).copied().unwrap_or(0);
                        f32::from_le_bytes([b(0), b(1), b(2), b(3)])
                    })
                    .collect();
                let mut proba = vec![0f32; n_rows * nc];
                forest.predict_proba(&rows, &mut proba);
                let mut one = vec![0f32; n_rows];
                for class in 0..nc {
                    forest.predict_class(&rows, class, &mut one);
                }
                // Short and odd-sized buffers are clipped, not overrun.
                let half = proba.len() / 2;
                forest.predict_proba(&rows, &mut proba[..half]);
                forest.predict_class(&rows, nc, &mut one[..n_rows / 2]);
                forest.predict_proba(&rows[..rows.len().saturating_sub(1)], &mut proba);
            }
        }
    }
    // tract-onnx 0.23 panics on a graph output nothing produces; Model::load now refuses such
    // graphs itself (crasher: tests/fuzz_regressions/model_onnx/small-forest-flip-4850.onnx).

    // The whole loader, as `botd models` runs it, on the same bytes.
    let path = scratch();
    if std::fs::write(path, data).is_ok() {
        if let Ok(model) = Model::load(path) {
            let nf = model.schema.len();
            let rows = vec![0.5f32; nf * 3];
            let mut out = vec![0f32; 3];
            let _ = model.score(&rows, &mut out);
        }
    }
});
