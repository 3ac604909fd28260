//! Models: botd's forest evaluator against tract (on a forest small enough for tract's slow tree
//! walk) and against onnxruntime (the trainer's reference, on the shipped models and thousands of
//! real flows); loading, validation and `botd models`.

use std::path::{Path, PathBuf};
use std::process::Command;

use botd::engine::{Engine, EngineConfig, WindowConfig};
use botd::features::{ARGUS, CTU, FeatureRows, PROTO, Schema};
use botd::model::Model;
use botd::model::forest::Forest;
use botd::model::tract_ops;
use prost::Message;
use tract_onnx::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data(rel: &str) -> PathBuf {
    root().join("../shared/data").join(rel)
}

/// Feature rows of the windowed flows of real captures.
fn real_rows(schema: &'static Schema, captures: &[&str]) -> Vec<f32> {
    let mut rows = FeatureRows::new(schema);
    for c in captures {
        let mut engine = Engine::new(EngineConfig {
            window: WindowConfig::from_secs(300.0, 150.0),
            ..EngineConfig::default()
        });
        let mut cap = botd::capture::MergedCapture::open(&[data(c)]).unwrap();
        while let Some(f) = cap.next_frame().unwrap() {
            engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, &mut rows);
        }
        engine.finish(&mut rows);
    }
    rows.rows
}

const CAPTURES: [&str; 4] = [
    "debian-registry/pathspider/real.pcap",
    "stratosphere-slips/pcap/test7-malicious.pcap",
    "malcolm-pcap/plugins/zeek-asyncrat-detector/30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap",
    "chrissanders-packets/synscan.pcapng",
];

/// `rows` with about 30% of the values replaced by NaN (a missing feature), seeded.
fn with_nan(rows: &[f32]) -> Vec<f32> {
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    rows.iter()
        .map(|&v| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if s % 10 < 3 { f32::NAN } else { v }
        })
        .collect()
}

/// Seeded pseudo-random rows (xorshift), wide enough to reach every branch.
fn random_rows(n: usize, nf: usize) -> Vec<f32> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n * nf)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 600.0 - 300.0) as f32
        })
        .collect()
}

#[test]
#[ignore = "data: ../shared/data"]
fn forest_equals_tract_on_a_small_forest() {
    let path = root().join("tests/data/small-forest.onnx");
    let proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
    let node = proto
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .find(|n| n.op_type == "TreeEnsembleClassifier")
        .unwrap();
    let nf = ARGUS.len();
    let forest = Forest::from_node(node, nf).unwrap();
    assert_eq!(forest.n_trees, 5);

    // Random and real rows, then the same with about 30% of the features NaN (the model sets
    // nodes_missing_value_tracks_true 0: NaN takes the false branch).
    let mut rows = random_rows(1500, nf);
    rows.extend(real_rows(&ARGUS, &CAPTURES[1..2]));
    rows.extend(with_nan(&rows));
    let n = rows.len() / nf;
    assert!(n > 3200, "{n} rows");

    let mut ours = vec![0f32; n * 2];
    forest.predict_proba(&rows, &mut ours);

    // botd's narrowed register (its TreeEnsembleClassifier builder adapted from tract-onnx's)
    // gives tract's numbers exactly.
    let input = tract_ndarray::Array2::from_shape_vec((n, nf), rows.clone()).unwrap();
    let run = |framework: tract_onnx::Onnx| {
        framework
            .model_for_path(&path)
            .unwrap()
            .with_input_fact(0, f32::fact([n, nf]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec!(Tensor::from(input.clone()).into()))
            .unwrap()
    };
    let out = run(tract_onnx::onnx());
    let probs = out.last().unwrap().to_plain_array_view::<f32>().unwrap();
    let narrowed = run(tract_ops::onnx());
    assert_eq!(out.len(), narrowed.len());
    for (a, b) in out.iter().zip(narrowed.iter()) {
        assert_eq!(**a, **b, "full and narrowed registers differ");
    }
    let mut max_diff = 0f32;
    for i in 0..n {
        for c in 0..2 {
            max_diff = max_diff.max((probs[[i, c]] - ours[i * 2 + c]).abs());
        }
    }
    assert!(max_diff <= 1e-6, "max |tract - botd| = {max_diff}");
    // Both classes are reached, with and without NaN, so the comparison means something.
    for half in ours.chunks(n) {
        assert!(half.chunks(2).any(|p| p[1] > 0.5) && half.chunks(2).any(|p| p[1] < 0.5));
    }
}

/// The trainer's venv python (tests/run.sh creates it with models/train/setup.sh).
fn venv_python() -> PathBuf {
    let p = root().join("models/train/.venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `sh models/train/setup.sh` (tests/run.sh does)",
        p.display()
    );
    p
}

/// onnxruntime's botnet probability of each row (models/train/check_onnx.py; NaN is written
/// `NaN`, which Python's float() reads).
fn onnxruntime_scores(model_file: &str, schema: &Schema, rows: &[f32], tag: &str) -> Vec<f32> {
    let nf = schema.len();
    let tmp = std::env::temp_dir().join(format!(
        "botd-ort-{}-{tag}-{}.csv",
        schema.name,
        std::process::id()
    ));
    let mut text = String::new();
    for row in rows.chunks(nf) {
        let line: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text.push_str(&line.join(","));
        text.push('\n');
    }
    std::fs::write(&tmp, text).unwrap();
    let out = Command::new(venv_python())
        .arg(root().join("models/train/check_onnx.py"))
        .arg(root().join(model_file))
        .arg(&tmp)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ort: Vec<f32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(',').nth(1).unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(ort.len(), rows.len() / nf);
    ort
}

/// On real rows, and on the same rows with about 30% of the features NaN (missing: the models
/// set nodes_missing_value_tracks_true 0, so NaN takes the false branch, as in onnxruntime).
#[test]
#[ignore = "venv: models/train/.venv (tests/run.sh); data: ../shared/data"]
fn forest_equals_onnxruntime_on_the_shipped_models() {
    for (model_file, schema) in [
        ("models/argus-rf.onnx", &ARGUS),
        ("models/ctu-rf.onnx", &CTU),
    ] {
        let model = Model::load(&root().join(model_file)).unwrap();
        let nf = schema.len();
        let real = real_rows(schema, &CAPTURES);
        let n = real.len() / nf;
        assert!(n > 5000, "{n} rows");
        for (tag, rows) in [("real", real.clone()), ("nan", with_nan(&real))] {
            let ort = onnxruntime_scores(model_file, schema, &rows, tag);
            let mut ours = vec![0f32; n];
            model.score(&rows, &mut ours).unwrap();
            let max_diff = ours
                .iter()
                .zip(&ort)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                max_diff <= 1e-5,
                "{model_file} ({tag} rows): max |onnxruntime - botd| = {max_diff}"
            );
            let flagged = ours.iter().filter(|p| **p >= model.threshold).count();
            assert!(
                flagged > 0 && flagged < n,
                "{model_file} ({tag} rows): {flagged} of {n} flagged"
            );
        }
    }
}

/// A forest whose nodes send a missing (NaN) feature to the true branch
/// (`nodes_missing_value_tracks_true` 1, which the forest evaluator cannot express) is refused at
/// load, the error naming the file and the attribute.
#[test]
#[ignore = "venv: models/train/.venv (tests/run.sh)"]
fn tracks_true_one_is_refused_naming_file_and_attribute() {
    let dir = std::env::temp_dir().join(format!("botd-tracks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tracks-true.onnx");
    let script = "import onnx, sys\n\
        m = onnx.load(sys.argv[1])\n\
        for n in m.graph.node:\n\
        \x20   for a in n.attribute:\n\
        \x20       if a.name == 'nodes_missing_value_tracks_true':\n\
        \x20           a.ints[:] = [1] * len(a.ints)\n\
        onnx.save(m, sys.argv[2])\n";
    let out = Command::new(venv_python())
        .args(["-c", script])
        .arg(root().join("tests/data/small-forest.onnx"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = Model::load(&file).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("tracks-true.onnx") && err.contains("nodes_missing_value_tracks_true"),
        "{err}"
    );
}

fn botd_models(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_botd"))
        .args(["models", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn models_command_lists_valid_models_and_refuses_bad_ones() {
    let (ok, text) = botd_models(&root().join("models"));
    assert!(ok, "{text}");
    assert!(
        text.contains("argus-rf.onnx") && text.contains("ctu-rf.onnx"),
        "{text}"
    );
    assert!(text.contains("100 trees"), "{text}");

    let dir = std::env::temp_dir().join(format!("botd-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("unused")).unwrap();
    let good = std::fs::read(root().join("tests/data/small-forest.onnx")).unwrap();
    std::fs::write(dir.join("good.onnx"), &good).unwrap();
    // models/unused/ is ignored, whatever is in it.
    std::fs::write(dir.join("unused/garbage.onnx"), b"not a model").unwrap();
    let (ok, text) = botd_models(&dir);
    assert!(ok, "{text}");
    assert!(!text.contains("garbage"), "{text}");

    // A truncated file, and one whose schema hash was changed (same length, so the protobuf
    // framing stays valid and only botd's check can catch it).
    std::fs::write(dir.join("truncated.onnx"), &good[..good.len() / 2]).unwrap();
    let hash = ARGUS.hash();
    let pos = good
        .windows(hash.len())
        .position(|w| w == hash.as_bytes())
        .expect("hash in the file");
    let mut tampered = good.clone();
    tampered[pos..pos + hash.len()].copy_from_slice(b"0123456789abcdef");
    std::fs::write(dir.join("tampered.onnx"), &tampered).unwrap();
    let (ok, text) = botd_models(&dir);
    assert!(!ok, "{text}");
    assert!(
        text.contains("truncated.onnx") && text.contains("INVALID"),
        "{text}"
    );
    assert!(
        text.contains("tampered.onnx") && text.contains("0123456789abcdef"),
        "{text}"
    );
    assert!(text.contains("2 of 3 models invalid"), "{text}");

    let err = Model::load(&dir.join("tampered.onnx")).unwrap_err();
    assert!(err.to_string().contains("hash"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn schema_hashes_match_the_trainer() {
    let out = Command::new("python3")
        .arg(root().join("models/train/features.py"))
        .arg("--hashes")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("argus {}", ARGUS.hash())), "{text}");
    assert!(text.contains(&format!("ctu {}", CTU.hash())), "{text}");
    assert!(text.contains(&format!("proto {}", PROTO.hash())), "{text}");
}

/// The `proto` rows the trainer computes from `botd flows --app` CSV of `pcap` are the rows
/// botd's engine computes (`botd features`, the detector's extraction): the protocol columns
/// exactly, the Argus ones up to the CSV's six decimals. Returns how many rows have each
/// protocol feature above 0.
fn proto_parity(pcap: &Path) -> [usize; 6] {
    let tag = pcap.file_name().unwrap().to_string_lossy().to_string();
    let dir = std::env::temp_dir().join(format!("botd-proto-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, feats) = (dir.join("flows.csv"), dir.join("features.csv"));
    let window = ["--window", "300", "--overlap", "150"];
    let run = |args: &[&str], out: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_botd"))
            .args(args)
            .args(window)
            .arg("-o")
            .arg(out)
            .arg(pcap)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["flows", "--format", "csv", "--app"], &csv);
    run(&["features", "--schema", "proto"], &feats);
    let out = Command::new("python3")
        .arg(root().join("models/train/features.py"))
        .args(["--rows", "proto"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parse = |text: &str| -> Vec<Vec<f32>> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                l.split(',')
                    .map(|v| v.parse::<f64>().unwrap() as f32)
                    .collect()
            })
            .collect()
    };
    let py = parse(&String::from_utf8_lossy(&out.stdout));
    let rs = parse(&std::fs::read_to_string(&feats).unwrap());
    assert_eq!(py.len(), rs.len(), "{tag}");
    let extra = ARGUS.len();
    let mut seen = [0usize; 6];
    for (i, (p, r)) in py.iter().zip(&rs).enumerate() {
        assert_eq!(p.len(), PROTO.len(), "{tag} row {i}");
        assert_eq!(&p[extra..], &r[extra..], "{tag} row {i}: protocol features");
        for (j, (a, b)) in p.iter().zip(r).enumerate().take(extra) {
            let tol = 1e-5 * a.abs().max(1.0);
            assert!(
                (a - b).abs() <= tol,
                "{tag} row {i} {}: {a} vs {b}",
                PROTO.features[j]
            );
        }
        for (k, v) in r[extra..].iter().enumerate() {
            if *v > 0.0 {
                seen[k] += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

#[test]
fn proto_features_from_csv_match_the_engine() {
    let seen = proto_parity(&root().join("tests/data/demo.pcap"));
    // The capture exercises the protocol columns (not only the all-zero case).
    assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
}

#[test]
#[ignore = "data: ../shared/data"]
fn proto_features_from_csv_match_the_engine_on_real_captures() {
    let mut seen = [0usize; 6];
    for c in CAPTURES.iter().chain(&[
        "chrissanders-packets/http_espn.pcapng",
        "malcolm-pcap/protocols/SSL.pcap",
        "malcolm-pcap/protocols/DNS.pcap",
    ]) {
        for (s, n) in seen.iter_mut().zip(proto_parity(&data(c))) {
            *s += n;
        }
    }
    // Every protocol feature is set somewhere in these captures except, possibly, NoAgent.
    assert!(seen.iter().filter(|&&n| n > 0).count() >= 5, "{seen:?}");
}

/// small-forest.onnx with one node added after the forest, on its probabilities (which become
/// the graph's last output), written to a fresh folder; returns the file.
fn forest_then(tag: &str, extra: Vec<tract_onnx::pb::NodeProto>, out: &str) -> PathBuf {
    let mut proto = tract_onnx::onnx()
        .proto_model_for_path(root().join("tests/data/small-forest.onnx"))
        .unwrap();
    let graph = proto.graph.as_mut().unwrap();
    graph.node.extend(extra);
    let last = graph.output.last_mut().unwrap();
    assert_eq!(last.name, "probabilities");
    last.name = out.into();
    let dir = std::env::temp_dir().join(format!("botd-ops-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{tag}.onnx"));
    std::fs::write(&file, proto.encode_to_vec()).unwrap();
    file
}

fn node(op: &str, inputs: &[&str], output: &str) -> tract_onnx::pb::NodeProto {
    tract_onnx::pb::NodeProto {
        name: format!("{op}_node"),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// botd reads ONNX with an operator register of what tree-ensemble classifiers are made of
/// (src/model/tract_ops.rs), so that the binary leaves out the rest of tract: a graph needing any
/// other operator (Softplus here, which tract-onnx's full register knows) is refused at load,
/// the error naming the file and the operator.
#[test]
fn an_operator_outside_botds_register_is_refused_naming_it() {
    let file = forest_then(
        "softplus",
        vec![node("Softplus", &["probabilities"], "soft")],
        "soft",
    );
    // The full register reads it: the refusal is botd's narrowing, not a broken graph.
    tract_onnx::onnx()
        .model_for_path(&file)
        .unwrap()
        .with_input_fact(0, f32::fact([1, ARGUS.len()]).into())
        .unwrap()
        .into_optimized()
        .unwrap();
    let err = Model::load(&file).unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
    assert!(
        err.contains("softplus.onnx") && err.contains("operator \"Softplus\""),
        "{err}"
    );
}

/// A graph of operators in botd's register that is not a plain forest (here the forest's
/// probabilities times a constant 1) is still scored by tract, with the forest's numbers.
#[test]
fn a_graph_of_registered_operators_is_run_by_tract() {
    use tract_onnx::pb::AttributeProto;
    use tract_onnx::pb::attribute_proto::AttributeType;
    let mut one = node("Constant", &[], "one");
    one.attribute.push(AttributeProto {
        name: "value_float".into(),
        r#type: AttributeType::Float as i32,
        f: 1.0,
        ..Default::default()
    });
    let file = forest_then(
        "mul",
        vec![one, node("Mul", &["probabilities", "one"], "scaled")],
        "scaled",
    );
    let model = Model::load(&file).unwrap();
    let forest = Model::load(&root().join("tests/data/small-forest.onnx")).unwrap();
    let _ = std::fs::remove_dir_all(file.parent().unwrap());
    assert_eq!(model.trees(), None, "scored by tract");
    assert_eq!(forest.trees(), Some(5));
    let nf = ARGUS.len();
    let rows = random_rows(300, nf);
    let (mut a, mut b) = (vec![0f32; 300], vec![0f32; 300]);
    model.score(&rows, &mut a).unwrap();
    forest.score(&rows, &mut b).unwrap();
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(max_diff <= 1e-6, "max |tract - botd| = {max_diff}");
    assert!(b.iter().any(|&p| p > 0.5) && b.iter().any(|&p| p < 0.5));
}
