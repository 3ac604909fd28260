//! Models: ONNX files loaded and validated through `tract-onnx` (its protobuf reader, metadata and
//! graph checks), scored by botd's own forest evaluator when the graph is a tree ensemble
//! ([`forest`]), and by tract itself for any other graph of the operators tree-ensemble
//! converters emit ([`tract_ops::operators`]); a graph needing another operator is refused.
//!
//! A model carries its feature schema in its metadata (`botd.schema`, `botd.schema_hash`,
//! `botd.features`, ...; see docs/features.md). botd refuses a model it cannot score, with an
//! error naming the file and the mismatch.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod forest;
pub mod tract_ops;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::features::{Schema, schema_by_name};
use forest::Forest;

/// Why a model was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for ModelError {}

pub enum Scorer {
    Forest(Forest),
    /// Any other graph of [`tract_ops::operators`], run by tract: input `[rows, features]` f32,
    /// the probability output last.
    Tract(std::sync::Arc<TypedRunnableModel>),
}

pub struct Model {
    pub name: String,
    pub path: PathBuf,
    pub schema: &'static Schema,
    /// Probability of the botnet class at or above which a flow counts as botnet.
    pub threshold: f32,
    /// Output column of the botnet class.
    pub botnet_class: usize,
    pub n_classes: usize,
    /// Every `botd.*` metadata entry, for `botd models`.
    pub metadata: BTreeMap<String, String>,
    pub scorer: Scorer,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("schema", &self.schema.name)
            .field("threshold", &self.threshold)
            .finish()
    }
}

impl Model {
    /// Loads and validates one model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let err = |what: String| ModelError {
            path: path.to_path_buf(),
            what,
        };
        // Without unwinding tract's check runs in a child process: started first, so that it
        // runs while this one decodes and reads the same file (under qemu a new process
        // translates tract's code again: about 170 ms).
        #[cfg(not(panic = "unwind"))]
        let child = {
            let exe = std::env::current_exe().map_err(|e| {
                err(format!(
                    "cannot find botd's executable to check the model with: {e}"
                ))
            })?;
            spawn_check(&exe, path).map_err(err)?
        };
        let proto = read_proto(path).map_err(err)?;
        let model = Model::from_proto(path, proto).map_err(err)?;
        #[cfg(not(panic = "unwind"))]
        child.wait().map_err(err)?;
        Ok(model)
    }

    fn from_proto(path: &Path, proto: ModelProto) -> Result<Model, String> {
        let metadata: BTreeMap<String, String> = proto
            .metadata_props
            .iter()
            .filter(|e| e.key.starts_with("botd."))
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let meta = |key: &str| {
            metadata
                .get(key)
                .ok_or_else(|| format!("metadata {key} missing (not a botd model?)"))
        };
        let schema_name = meta("botd.schema")?;
        let schema = schema_by_name(schema_name).ok_or_else(|| {
            format!("schema {schema_name:?} is not one botd computes (argus, ctu)")
        })?;
        let hash = meta("botd.schema_hash")?;
        if *hash != schema.hash() {
            return Err(format!(
                "schema {} hash {hash} differs from botd's {} (trained on another version of the features)",
                schema.name,
                schema.hash()
            ));
        }
        let features = meta("botd.features")?;
        let expected = schema.features.join(",");
        if *features != expected {
            return Err(format!(
                "feature list differs from schema {}: model has {features:?}",
                schema.name
            ));
        }
        let threshold: f32 = meta("botd.threshold")?
            .parse()
            .map_err(|e| format!("metadata botd.threshold: {e}"))?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(format!("threshold {threshold} is outside 0..1"));
        }
        let graph = proto.graph.as_ref().ok_or("the model has no graph")?;
        // tract-onnx 0.23 panics on a graph output that nothing produces: refuse it first.
        for output in &graph.output {
            let produced = graph.node.iter().any(|n| n.output.contains(&output.name))
                || graph.input.iter().any(|i| i.name == output.name)
                || graph.initializer.iter().any(|t| t.name == output.name);
            if !produced {
                return Err(format!(
                    "graph output {:?} is produced by no node, input or initializer",
                    output.name
                ));
            }
        }
        let n_features = schema.len();
        // tract must load, type and optimise the graph; a panic in it is a refused model
        // (without unwinding: the child process `load` started).
        #[cfg(panic = "unwind")]
        check_graph(&proto, n_features)?;
        let forest_node = graph
            .node
            .iter()
            .find(|n| n.op_type == "TreeEnsembleClassifier");
        let other_ops = graph.node.iter().any(|n| {
            !matches!(
                n.op_type.as_str(),
                "TreeEnsembleClassifier" | "Cast" | "Identity"
            )
        });
        let (scorer, class_labels) = match forest_node {
            Some(node) if !other_ops => {
                let forest = Forest::from_node(node, n_features)?;
                let labels = forest.class_labels.clone();
                (Scorer::Forest(forest), labels)
            }
            // Without unwinding a panic in tract's run would stop the sensor, not fail a score.
            _ if cfg!(not(panic = "unwind")) => return Err(NEEDS_UNWIND.into()),
            _ => {
                let runnable = tract_ops::onnx()
                    .model_for_proto_model(&proto)
                    .and_then(|m| {
                        let rows = m.symbols.sym("N");
                        m.with_input_fact(
                            0,
                            f32::fact([rows.to_dim(), n_features.to_dim()]).into(),
                        )?
                        .into_optimized()?
                        .into_runnable()
                    })
                    .map_err(|e| format!("tract cannot run the graph: {e}"))?;
                (Scorer::Tract(runnable), vec![0, 1])
            }
        };
        let botnet_class = class_labels
            .iter()
            .position(|&c| c == 1)
            .ok_or("no class label 1 (botnet) in the model")?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Model {
            name,
            path: path.to_path_buf(),
            schema,
            threshold,
            botnet_class,
            n_classes: class_labels.len(),
            metadata,
            scorer,
        })
    }

    pub fn trees(&self) -> Option<usize> {
        match &self.scorer {
            Scorer::Forest(f) => Some(f.n_trees),
            Scorer::Tract(_) => None,
        }
    }

    /// [`Model::score`] for a caller that only compares each value with `self.threshold`
    /// (`>=`): every value is on the same side of it as the botnet probability, but a forest
    /// stops scoring a row once its side is certain ([`forest::Forest::decide_class`]), so the
    /// values are not probabilities. The verdicts are exactly those of `score`.
    pub fn decide(&self, rows: &[f32], out: &mut [f32]) -> Result<(), String> {
        match &self.scorer {
            Scorer::Forest(forest) => {
                forest.decide_class(rows, self.botnet_class, self.threshold, out);
                Ok(())
            }
            Scorer::Tract(_) => self.score(rows, out),
        }
    }

    /// Botnet probability of each row (`rows.len() / features` rows) into `out`, sized by the
    /// caller once: the forest path allocates nothing.
    pub fn score(&self, rows: &[f32], out: &mut [f32]) -> Result<(), String> {
        let nf = self.schema.len();
        let n = rows.len() / nf;
        match &self.scorer {
            Scorer::Forest(forest) => {
                forest.predict_class(rows, self.botnet_class, out);
                Ok(())
            }
            Scorer::Tract(model) => {
                let input = tract_ndarray::Array2::from_shape_vec((n, nf), rows.to_vec())
                    .map_err(|e| e.to_string())?;
                // A hostile model can make tract's own operators panic while running (found by
                // fuzzing: a TreeEnsemble whose leaf indices run past its arrays panics in
                // tract-onnx-opl's tree walk); that is a score error, counted, not a crash.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    model.run(tvec!(Tensor::from(input).into()))
                }));
                let result = run
                    .map_err(|_| "tract panicked while scoring (model refused)".to_string())?
                    .map_err(|e| format!("tract: {e}"))?;
                let probs = result
                    .last()
                    .ok_or("model has no output")?
                    .to_plain_array_view::<f32>()
                    .map_err(|e| format!("probability output: {e}"))?;
                for (i, o) in out.iter_mut().enumerate().take(n) {
                    *o = probs.get([i, self.botnet_class]).copied().unwrap_or(0.0);
                }
                Ok(())
            }
        }
    }
}

/// A model file decoded. The file's bytes are freed before tract makes its own copies: that
/// lowers the peak of loading (the small-router profile's peak is model loading; README.md, On
/// an OpenWrt router).
fn read_proto(path: &Path) -> Result<ModelProto, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    tract_ops::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| format!("not an ONNX model: {e}"))
}

/// Why a build that aborts on panic refuses a graph that is not a pure tree ensemble.
const NEEDS_UNWIND: &str = "the graph is not a pure tree ensemble (a TreeEnsembleClassifier \
    with only Cast or Identity nodes), so tract would score it, and this build of botd aborts on \
    a panic instead of catching it: a model that panics tract would stop botd. Use a pure \
    tree-ensemble ONNX, as models/train/train.py exports, or a build that unwinds \
    (PANIC=unwind cross/build.sh, or any plain cargo build)";

/// tract's check of a graph: it must load, type and optimise with a `[1, n_features]` input.
/// May panic: tract's parser is not meant for hostile files.
fn tract_check(proto: &ModelProto, n_features: usize) -> Result<(), String> {
    let graph = proto.graph.as_ref().ok_or("the model has no graph")?;
    let checked = tract_ops::onnx()
        .model_for_proto_model(proto)
        .and_then(|m| {
            m.with_input_fact(0, f32::fact([1, n_features]).into())?
                .into_optimized()
        });
    match checked {
        Ok(_) => Ok(()),
        // An operator outside botd's register is the likely cause: name it.
        Err(e) => Err(match tract_ops::unsupported_op(graph) {
            Some((op, node)) => format!(
                "operator {op:?} (node {node:?}) is not one botd reads (tree ensembles: {}); tract: {e}",
                tract_ops::operators().collect::<Vec<_>>().join(", ")
            ),
            None => format!("tract cannot load the graph: {e}"),
        }),
    }
}

/// [`tract_check`] where a panic in it is a refused model, not a crash: caught here.
#[cfg(panic = "unwind")]
fn check_graph(proto: &ModelProto, n_features: usize) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tract_check(proto, n_features)
    }))
    .unwrap_or_else(|_| Err("tract failed on the graph (malformed model)".into()))
}

/// A model file's [`tract_check`] running in a child process: botd itself, `exe __check-model
/// -- FILE` (the hidden subcommand, [`check_model_file`]), for a build that cannot catch a panic.
/// A new process (exec), not a fork: the live sensor reloads models with its threads running.
/// Dropped before [`ChildCheck::wait`] (the parent refused the model first), the child is killed.
pub struct ChildCheck {
    child: Option<std::process::Child>,
}

/// Starts [`ChildCheck`]: the child reads the file itself.
pub fn spawn_check(exe: &Path, path: &Path) -> Result<ChildCheck, String> {
    let child = std::process::Command::new(exe)
        .arg(CHECK_MODEL)
        .arg("--")
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} to check the model: {e}", exe.display()))?;
    Ok(ChildCheck { child: Some(child) })
}

impl ChildCheck {
    /// Exit 0 is a sound graph, another exit status the error the child wrote on stderr, death
    /// by a signal (the abort of a panic) a malformed model.
    pub fn wait(mut self) -> Result<(), String> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let out = child
            .wait_with_output()
            .map_err(|e| format!("the model check in a child process: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        if out.status.code().is_none() {
            return Err(
                "tract failed on the graph (malformed model; checked in a child process \
                because this build aborts on panic)"
                    .into(),
            );
        }
        let text = String::from_utf8_lossy(&out.stderr);
        Err(match text.trim() {
            "" => format!("the model check in a child process failed ({})", out.status),
            text => text.to_string(),
        })
    }
}

impl Drop for ChildCheck {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// [`spawn_check`] and [`ChildCheck::wait`].
pub fn check_in_child(exe: &Path, path: &Path) -> Result<(), String> {
    spawn_check(exe, path)?.wait()
}

/// The hidden subcommand that runs [`check_model_file`] in the child of [`check_in_child`].
pub const CHECK_MODEL: &str = "__check-model";

/// The child's side of [`check_in_child`]: the file's graph through [`tract_check`], with the
/// input width of the schema its metadata names (the parent checks that metadata fully and
/// reports its own error first). The caller makes a panic abort the process, in every build.
pub fn check_model_file(path: &Path) -> Result<(), String> {
    let proto = read_proto(path)?;
    let schema = proto
        .metadata_props
        .iter()
        .find(|e| e.key == "botd.schema")
        .and_then(|e| schema_by_name(&e.value))
        .ok_or("metadata botd.schema missing or unknown (not a botd model?)")?;
    tract_check(&proto, schema.len())
}

/// Every `*.onnx` directly in `dir` (not in `unused/` or any other subfolder), sorted by name.
pub fn model_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read models folder: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads every model of a folder; each result says what is wrong with a model that was refused.
pub fn load_dir(dir: &Path) -> Result<Vec<Result<Model, ModelError>>, String> {
    Ok(model_files(dir)?.iter().map(|p| Model::load(p)).collect())
}
