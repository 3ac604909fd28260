//! botd's own random-forest evaluator, compiled from the attributes of an ONNX
//! `TreeEnsembleClassifier` node (read through tract's protobuf reader).
//!
//! Why: tract evaluates tree ensembles correctly but walks to each leaf linearly, which scores tens
//! of rows per second on a 100-tree forest; a gateway scores every flow of every window.
//!
//! Layout: the nodes of every tree, tree after tree, each tree breadth first, in one array of
//! 8-byte nodes `(threshold, link)` with `link = feature | child << feature_bits`; the second child
//! is `child + 1`. A row steps from node `i` to `child(i) + (x[feature] <= threshold)`. A leaf has
//! threshold NaN (`x <= NaN` is false for every x) and links to itself, so the same step leaves a
//! row on its leaf: a tree is walked with exactly `depth` branch-free steps, and each tree
//! takes a few kilobytes instead of the 2^depth slots of a complete layout. Leaf weights are kept
//! per class and per node.
//!
//! The kernels take the same decisions and add the same leaf weights in the same order (per row,
//! in f32: 0, the base value when not 0, then each tree's weight in tree order), so their results
//! are bit-identical to each other and to the complete-layout evaluator botd had before:
//!
//! * portable (any target, and the fallback): rows in blocks of 256, 16 of them descend one tree
//!   together, tree after tree, so the loads of 16 independent walks overlap;
//! * AVX-512F and AVX2 (x86-64, detected at run time, schemas of at most 64 features): the lanes
//!   of a vector are 16 (8) consecutive trees and 4 (8) rows go down them together. A row's
//!   features sit in registers and each lane's is picked by a permute; each step gathers the
//!   lanes' nodes. The first three levels of each group of trees are kept as vectors, chosen by
//!   blends instead of gathers. On a Zen 4 core with the shipped 100-tree argus forest they score
//!   about 1.7 M (AVX-512), 1.4 M (AVX2) and 1.0 M (portable) rows per second, the complete-layout
//!   evaluator 0.8 M and onnxruntime 0.6 M; gathers (about one node per cycle there, whatever the
//!   vector width or mask) bound the SIMD kernels.
//!
//! Comparison, as ONNX defines it (and onnxruntime and tract do): BRANCH_LEQ takes the true branch
//! when `x <= t`, BRANCH_LT when `x < t` (`x <= next_down(t)` for every non-NaN x), and a missing
//! (NaN) feature takes the branch `nodes_missing_value_tracks_true` names, per node (absent or 0:
//! false). The kernels compare `x <= threshold` only (one ordered compare, false for NaN, the same
//! cost as any other), so each node is folded at load (`fold_branch`): its true child goes second
//! (`x <= threshold`) and its false child first, where NaN lands. A node that sends NaN to its
//! true side while numbers take both sides would need the opposite compare (`!(x > t)`), per node,
//! in every kernel; botd refuses such models at load, naming the attribute (the shipped skl2onnx
//! models set it to 0 everywhere). A NaN threshold never passes (ONNX's `x <= NaN` is false), so
//! its node sends every number to the false child. Results equal onnxruntime's on real and
//! NaN-laden rows, and tract's (tests/models.rs).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;

// hashbrown's maps (foldhash): loading hashes every node id, and std's SipHash was a third of the
// load time.
use hashbrown::{HashMap, HashSet};

use tract_onnx::pb::{AttributeProto, NodeProto};

/// Deepest tree accepted (2^16 leaves per tree).
pub const MAX_DEPTH: u32 = 16;

/// Rows that descend a tree together in the portable kernel.
const LANES: usize = 16;
/// Rows of one block of the portable kernel (its list of active rows lives on the stack).
const PORTABLE_BLOCK: usize = 256;
/// Trees between two checks of the portable early exit (the SIMD kernels check per group of 16).
const DECIDE_EVERY: usize = 16;

/// Most classes accepted (botd's models have two); bounds the per-leaf weight vectors.
pub const MAX_CLASSES: usize = 256;

/// Most cells a forest may take, counted as a complete binary layout would (each tree 2^depth
/// internal nodes plus 2^depth leaves of every class): 2^26. The compiled layout is smaller (a
/// node per ONNX node, at most twice 2^depth per tree, times 1 + classes words), so this bounds
/// what a small hostile file of deep, narrow trees can make botd allocate, and keeps the set of
/// accepted models what it has been. The shipped 100-tree forests count about 1.6 M cells.
pub const MAX_CELLS: usize = 1 << 26;

/// The code that walks the trees. Every kernel gives bit-identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any target.
    Portable,
    /// x86-64 with AVX2, schemas of at most 64 features.
    Avx2,
    /// x86-64 with AVX-512F, schemas of at most 64 features.
    Avx512,
}

/// One node. Branch: `link = feature | child << feature_bits` (`child > self`; the row goes to
/// `child + (x <= threshold)`). Leaf: threshold NaN, `link = self << feature_bits` (feature 0).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Node {
    threshold: f32,
    link: u32,
}

#[derive(Clone, Copy, Debug)]
struct TreeInfo {
    root: u32,
    depth: u32,
}

/// What the trees after some point can still add to a row's sum of leaf weights.
#[derive(Clone, Copy, Debug, Default)]
struct Rest {
    lo: f64,
    hi: f64,
    /// Sum of the largest magnitudes, which bounds float rounding.
    magnitude: f64,
    trees: usize,
}

/// Early exit for [`Forest::decide_class`].
pub(crate) struct Stop<'a> {
    rest: &'a [Rest],
    threshold: f32,
}

impl Stop<'_> {
    /// Whether a row whose sum is `acc` after `done` trees ends at or above the threshold
    /// (`Some(true)`), below it (`Some(false)`), or may do either. The sum goes on in f32, one
    /// rounding per tree of at most 2^-24 of a partial sum bounded by `|acc| + magnitude`; the
    /// margin is four times that.
    #[inline]
    fn decided(&self, acc: f32, done: usize) -> Option<bool> {
        let r = self.rest.get(done)?;
        let a = f64::from(acc);
        let t = f64::from(self.threshold);
        let margin = 4.0 * (r.trees as f64 + 1.0) * (a.abs() + r.magnitude + 1.0) * 2f64.powi(-24);
        if a + r.lo - margin >= t {
            Some(true)
        } else if a + r.hi + margin < t {
            Some(false)
        } else {
            None
        }
    }

    /// Whether a block of rows can stop after `done` trees: trees remain and every row's side
    /// is certain.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    #[inline]
    fn all_decided(&self, acc: &[f32], done: usize) -> bool {
        self.rest.get(done).is_some_and(|r| r.trees > 0)
            && acc.iter().all(|&a| self.decided(a, done).is_some())
    }

    /// What a row of a stopped block gets: the threshold (at or above) or the float just below.
    #[inline]
    fn stopped_value(&self, acc: f32, done: usize) -> f32 {
        match self.decided(acc, done) {
            Some(true) => self.threshold,
            Some(false) => self.threshold.next_down(),
            None => acc,
        }
    }
}

#[derive(Debug)]
pub struct Forest {
    pub n_features: usize,
    pub n_trees: usize,
    /// Class labels in output order (e.g. [0, 1]).
    pub class_labels: Vec<i64>,
    pub max_depth: u32,
    trees: Vec<TreeInfo>,
    /// Every tree's nodes, tree after tree (see the module comment).
    nodes: Vec<Node>,
    /// Leaf weights, class-major: `weights[class * nodes.len() + node]` (0 for branches).
    weights: Vec<f32>,
    /// Bits of `Node::link` that hold the feature index; at least 6 (the AVX-512 kernel reads
    /// bits 0..6 as the feature).
    feature_bits: u32,
    /// Added to the summed leaf weights, per class.
    base_values: Vec<f32>,
    /// Binary models may carry weights for the positive class only; the other is 1 - p.
    positive_only: bool,
    kernel: Kernel,
    /// Per class, for each count of trees done (0..=n_trees), what the trees after can still add
    /// (see [`Forest::decide_class`]).
    rest: Vec<Vec<Rest>>,
    /// The x86-64 kernels' groups of 16 (AVX-512) or 8 (AVX2) trees.
    #[cfg(target_arch = "x86_64")]
    groups: Vec<simd::Group>,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints(node: &NodeProto, name: &str) -> Result<Vec<i64>, String> {
    attr(node, name)
        .map(|a| a.ints.clone())
        .ok_or_else(|| format!("TreeEnsembleClassifier has no attribute {name}"))
}

fn floats(node: &NodeProto, name: &str) -> Result<Vec<f32>, String> {
    attr(node, name)
        .map(|a| a.floats.clone())
        .ok_or_else(|| format!("TreeEnsembleClassifier has no attribute {name}"))
}

/// One node of the ONNX attributes, its branch folded into the evaluator's comparison: a row
/// goes to `le_id` when `x <= threshold`, else (`x` greater, or NaN) to `other_id`.
#[derive(Clone, Copy, Debug)]
enum OnnxNode {
    Branch {
        feature: u32,
        threshold: f32,
        other_id: usize,
        le_id: usize,
    },
    Leaf,
}

/// Folds an ONNX branch into the evaluator's comparison: returns `(threshold, le_true)` such that
/// for every `x` (NaN included) the node's ONNX decision is the true branch exactly when
/// `(x <= threshold) == le_true`, or None when no threshold does that.
///
/// ONNX: BRANCH_LEQ takes the true branch when `x <= t`, BRANCH_LT when `x < t` (both false when
/// `t` is NaN), and a NaN `x` takes the true branch when `nodes_missing_value_tracks_true` is set,
/// else the false one. `x <= threshold` is false for a NaN `x`, so:
/// * tracks_true 0: the true set is `x <= t` (BRANCH_LEQ) or `x <= next_down(t)` (BRANCH_LT;
///   NaN, "never", when `t` is -inf); `le_true`.
/// * tracks_true 1: the false set (without NaN) must be `x <= threshold`, which only holds when
///   it is empty (threshold NaN) or every number (+inf): a never-true or always-true branch.
///   Any other such node needs the opposite comparison, which the kernels do not have.
fn fold_branch(strict: bool, t: f32, tracks_true: bool) -> Option<(f32, bool)> {
    // The true set over numbers: x <= le (none when le is NaN).
    let le = match (strict, t) {
        (false, t) => t,
        (true, f32::NEG_INFINITY) => f32::NAN,
        (true, t) => next_down(t),
    };
    if !tracks_true {
        Some((le, true))
    } else if le.is_nan() {
        // True for NaN only: every number to the false side.
        Some((f32::INFINITY, false))
    } else if le == f32::INFINITY {
        // True for everything: no number to the false side.
        Some((f32::NAN, false))
    } else {
        None
    }
}

/// A node being laid out: (feature, threshold, first child or self).
type Slot = (u32, f32, usize);

impl Forest {
    /// Compiles a forest from a `TreeEnsembleClassifier` node. `n_features` bounds feature indices.
    pub fn from_node(node: &NodeProto, n_features: usize) -> Result<Forest, String> {
        if node.op_type != "TreeEnsembleClassifier" {
            return Err(format!("{} is not a TreeEnsembleClassifier", node.op_type));
        }
        if let Some(pt) = attr(node, "post_transform") {
            let pt = String::from_utf8_lossy(&pt.s);
            if pt != "NONE" {
                return Err(format!(
                    "post_transform {pt} is not supported by the forest evaluator"
                ));
            }
        }
        let class_labels = ints(node, "classlabels_int64s")?;
        if class_labels.is_empty() {
            return Err("the model needs integer class labels (export with integer y)".into());
        }
        let n_classes = class_labels.len();
        if n_classes > MAX_CLASSES {
            return Err(format!(
                "{n_classes} class labels; the forest evaluator takes at most {MAX_CLASSES}"
            ));
        }
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let feature_ids = ints(node, "nodes_featureids")?;
        let values = floats(node, "nodes_values")?;
        let true_ids = ints(node, "nodes_truenodeids")?;
        let false_ids = ints(node, "nodes_falsenodeids")?;
        let modes = attr(node, "nodes_modes")
            .map(|a| a.strings.clone())
            .ok_or("TreeEnsembleClassifier has no attribute nodes_modes")?;
        let n = tree_ids.len();
        // Optional: absent means 0 (a NaN feature takes the false branch) at every node.
        let tracks_true = attr(node, "nodes_missing_value_tracks_true")
            .map(|a| a.ints.clone())
            .unwrap_or_else(|| vec![0; n]);
        if [
            node_ids.len(),
            feature_ids.len(),
            values.len(),
            true_ids.len(),
            false_ids.len(),
            modes.len(),
            tracks_true.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err("node attribute arrays differ in length".into());
        }
        // Trees in first-appearance order; nodes keyed by (tree, node id).
        let mut tree_order: Vec<i64> = Vec::new();
        let mut seen = HashSet::new();
        let mut nodes: HashMap<(i64, i64), OnnxNode> = HashMap::with_capacity(n);
        let attrs = tree_ids
            .iter()
            .zip(&node_ids)
            .zip(&feature_ids)
            .zip(&values)
            .zip(&true_ids)
            .zip(&false_ids)
            .zip(&modes)
            .zip(&tracks_true);
        for (((((((&tree, &id), &feature), &value), &true_id), &false_id), mode), &nan_true) in
            attrs
        {
            if seen.insert(tree) {
                tree_order.push(tree);
            }
            let mode = mode.as_slice();
            let parsed = match mode {
                b"LEAF" => OnnxNode::Leaf,
                b"BRANCH_LEQ" | b"BRANCH_LT" => {
                    let feature = u32::try_from(feature)
                        .ok()
                        .filter(|&f| (f as usize) < n_features)
                        .ok_or_else(|| {
                            format!("feature index {feature} outside 0..{n_features}")
                        })?;
                    let true_id = usize::try_from(true_id).map_err(|e| e.to_string())?;
                    let false_id = usize::try_from(false_id).map_err(|e| e.to_string())?;
                    let strict = mode == b"BRANCH_LT";
                    let (threshold, le_true) = fold_branch(strict, value, nan_true != 0)
                        .ok_or_else(|| {
                            format!(
                                "tree {tree} node {id}: nodes_missing_value_tracks_true 1 on a {} \
                                 node (threshold {value}) is not supported by the forest \
                                 evaluator, which sends a missing (NaN) value to the false \
                                 branch of such nodes",
                                String::from_utf8_lossy(mode)
                            )
                        })?;
                    let (le_id, other_id) = if le_true {
                        (true_id, false_id)
                    } else {
                        (false_id, true_id)
                    };
                    OnnxNode::Branch {
                        feature,
                        threshold,
                        other_id,
                        le_id,
                    }
                }
                other => {
                    return Err(format!(
                        "node mode {} is not supported by the forest evaluator",
                        String::from_utf8_lossy(other)
                    ));
                }
            };
            nodes.insert((tree, id), parsed);
        }
        // Leaf weights per (tree, node), per class.
        let c_tree = ints(node, "class_treeids")?;
        let c_node = ints(node, "class_nodeids")?;
        let c_ids = ints(node, "class_ids")?;
        let c_weights = floats(node, "class_weights")?;
        if [c_node.len(), c_ids.len(), c_weights.len()]
            .iter()
            .any(|&l| l != c_tree.len())
        {
            return Err("class attribute arrays differ in length".into());
        }
        // Binary classifiers may carry one score column only (every class id 0): ONNX defines it
        // as the score of the second label, and the first is 1 - score (onnxruntime and tract
        // both do so; skl2onnx writes random forests that way).
        let positive_only = n_classes == 2 && c_ids.iter().all(|&c| c == 0);
        let mut weights: HashMap<(i64, i64), Vec<f32>> = HashMap::new();
        for (((&tree, &id), &class), &weight) in
            c_tree.iter().zip(&c_node).zip(&c_ids).zip(&c_weights)
        {
            let class = usize::try_from(class)
                .ok()
                .filter(|&c| c < n_classes)
                .ok_or_else(|| format!("class id {class} outside 0..{n_classes}"))?;
            let class = if positive_only { 1 } else { class };
            if let Some(w) = weights
                .entry((tree, id))
                .or_insert_with(|| vec![0.0; n_classes])
                .get_mut(class)
            {
                *w += weight;
            }
        }
        let mut base_values = attr(node, "base_values")
            .map(|a| a.floats.clone())
            .unwrap_or_default();
        if positive_only && base_values.len() == 1 {
            base_values.insert(0, 0.0);
        }
        base_values.resize(n_classes, 0.0);

        // Lay the trees out; leaf weights node-major while the node count grows.
        let mut slots: Vec<Slot> = Vec::new();
        let mut leaf_weights: Vec<f32> = Vec::new();
        let mut trees = Vec::with_capacity(tree_order.len());
        let mut budget = MAX_CELLS;
        for &t in &tree_order {
            trees.push(compile_tree(
                t,
                &nodes,
                &weights,
                n_classes,
                &mut budget,
                &mut slots,
                &mut leaf_weights,
            )?);
        }
        // Feature indices take the low bits of a link, child indices the rest.
        let feature_bits = usize::BITS - n_features.saturating_sub(1).leading_zeros();
        let feature_bits = feature_bits.max(6);
        if feature_bits >= 32 || slots.len() > (1usize << (32 - feature_bits)) {
            return Err(format!(
                "the forest is too large to compile ({} nodes with {n_features} features)",
                slots.len()
            ));
        }
        let nodes: Vec<Node> = slots
            .iter()
            .map(|&(feature, threshold, child)| Node {
                threshold,
                // Fits: feature < 2^feature_bits and child < slots.len() <= 2^(32 - feature_bits).
                link: feature | ((child as u32) << feature_bits),
            })
            .collect();
        // Class-major weights.
        let n_nodes = nodes.len();
        let mut class_weights = vec![0f32; n_nodes * n_classes];
        for (node, w) in leaf_weights.chunks(n_classes).enumerate() {
            for (class, &v) in w.iter().enumerate() {
                if let Some(slot) = class_weights.get_mut(class * n_nodes + node) {
                    *slot = v;
                }
            }
        }
        let max_depth = trees.iter().map(|t| t.depth).max().unwrap_or(0);
        let mut forest = Forest {
            n_features,
            n_trees: trees.len(),
            class_labels,
            max_depth,
            trees,
            nodes,
            weights: class_weights,
            feature_bits,
            base_values,
            positive_only,
            kernel: Kernel::Portable,
            rest: Vec::new(),
            #[cfg(target_arch = "x86_64")]
            groups: Vec::new(),
        };
        forest.rest = (0..forest.n_classes())
            .map(|c| forest.rest_bounds(c))
            .collect();
        let _ = forest.set_kernel(Kernel::Avx512) || forest.set_kernel(Kernel::Avx2);
        Ok(forest)
    }

    pub fn n_classes(&self) -> usize {
        self.class_labels.len()
    }

    /// The kernel that scores rows (chosen at load: the fastest this CPU and forest allow).
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Switches to `kernel` when this CPU and forest can run it (tests and benchmarks compare
    /// them); returns whether the forest now uses it.
    pub fn set_kernel(&mut self, kernel: Kernel) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let (width, available) = match kernel {
                Kernel::Portable => (0, true),
                Kernel::Avx2 => (8, std::arch::is_x86_feature_detected!("avx2")),
                Kernel::Avx512 => (16, std::arch::is_x86_feature_detected!("avx512f")),
            };
            if !available || (width > 0 && (self.n_features > 64 || self.trees.is_empty())) {
                return false;
            }
            if width > 0 && self.kernel != kernel {
                self.groups = simd::groups(&self.trees, &self.nodes, self.feature_bits, width);
            }
            self.kernel = kernel;
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.kernel = Kernel::Portable;
            kernel == Kernel::Portable
        }
    }

    /// Scores `rows` (row-major, `n_features` each) into `out` (`n_classes` per row): the
    /// class probabilities, as the ONNX model's probability output. Allocates nothing.
    pub fn predict_proba(&self, rows: &[f32], out: &mut [f32]) {
        let nc = self.n_classes();
        let n_rows = self.rows_in(rows).min(out.len() / nc.max(1));
        for class in 0..nc {
            if self.positive_only && class == 0 {
                continue;
            }
            self.score(rows, n_rows, class, out, nc, class, None);
        }
        if self.positive_only {
            for chunk in out.chunks_mut(2).take(n_rows) {
                if let [p0, p1] = chunk {
                    *p0 = 1.0 - *p1;
                }
            }
        }
    }

    /// Probability of one class only (what scoring needs: the botnet class), into `out[row]`.
    /// Allocates nothing.
    pub fn predict_class(&self, rows: &[f32], class: usize, out: &mut [f32]) {
        let n_rows = self.rows_in(rows).min(out.len());
        if self.positive_only && class == 0 {
            self.predict_class(rows, 1, out);
            for o in out.iter_mut().take(n_rows) {
                *o = 1.0 - *o;
            }
            return;
        }
        self.score(rows, n_rows, class, out, 1, 0, None);
    }

    /// For each count of trees done, the least, the most and the most in magnitude that the
    /// remaining trees' leaf weights of `class` can add (a tree's nodes are a contiguous range,
    /// branches weigh 0, so the range's extremes bound its leaves). Empty when the layout does
    /// not allow it (then no early exit).
    fn rest_bounds(&self, class: usize) -> Vec<Rest> {
        let n_nodes = self.nodes.len();
        let Some(weights) = self.weights.get(class * n_nodes..(class + 1) * n_nodes) else {
            return Vec::new();
        };
        let mut per_tree = Vec::with_capacity(self.trees.len());
        for (t, tree) in self.trees.iter().enumerate() {
            let start = tree.root as usize;
            let end = self.trees.get(t + 1).map_or(n_nodes, |n| n.root as usize);
            let Some(w) = weights.get(start..end).filter(|w| !w.is_empty()) else {
                return Vec::new();
            };
            let lo = w.iter().fold(f64::INFINITY, |m, &v| m.min(f64::from(v)));
            let hi = w
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            if !(lo.is_finite() && hi.is_finite()) {
                return Vec::new();
            }
            per_tree.push((lo, hi));
        }
        let mut rest = vec![Rest::default(); per_tree.len() + 1];
        for t in (0..per_tree.len()).rev() {
            let (lo, hi) = per_tree.get(t).copied().unwrap_or_default();
            let after = rest.get(t + 1).copied().unwrap_or_default();
            if let Some(r) = rest.get_mut(t) {
                *r = Rest {
                    lo: after.lo + lo,
                    hi: after.hi + hi,
                    magnitude: after.magnitude + lo.abs().max(hi.abs()),
                    trees: after.trees + 1,
                };
            }
        }
        rest
    }

    /// [`Forest::predict_class`] for a caller that only compares the result with `threshold`:
    /// each row's value is on the same side of `threshold` as its probability (`>=` or `<`),
    /// but a row whose side is certain before the last tree stops there, and gets `threshold`
    /// (at or above) or the float just below it. Rows still uncertain get their probability.
    pub fn decide_class(&self, rows: &[f32], class: usize, threshold: f32, out: &mut [f32]) {
        let rest = self.rest.get(class).filter(|r| !r.is_empty());
        match rest {
            Some(rest) if threshold.is_finite() && !(self.positive_only && class == 0) => {
                let stop = Stop { rest, threshold };
                let n_rows = self.rows_in(rows).min(out.len());
                self.score(rows, n_rows, class, out, 1, 0, Some(&stop));
            }
            _ => self.predict_class(rows, class, out),
        }
    }

    /// How many branch nodes `rows` pass through on their way to their leaves, over all trees
    /// (the work any tree walk must do: one node and one feature value read per branch), counting
    /// only branches at depth `from_level` or deeper (the root is at 0).
    pub fn branch_steps(&self, rows: &[f32], from_level: u32) -> u64 {
        let nf = self.n_features.max(1);
        let fmask = (1u32 << self.feature_bits) - 1;
        let mut steps = 0;
        for row in rows.chunks_exact(nf) {
            for tree in &self.trees {
                let mut i = tree.root as usize;
                let mut level = 0;
                while let Some(node) = self.nodes.get(i) {
                    let child = (node.link >> self.feature_bits) as usize;
                    // A leaf links to itself; a branch to a later node.
                    if child <= i {
                        break;
                    }
                    let x = row
                        .get((node.link & fmask) as usize)
                        .copied()
                        .unwrap_or(0.0);
                    i = child + usize::from(x <= node.threshold);
                    steps += u64::from(level >= from_level);
                    level += 1;
                }
            }
        }
        steps
    }

    fn rows_in(&self, rows: &[f32]) -> usize {
        rows.len().checked_div(self.n_features).unwrap_or(0)
    }

    /// Writes the sum of `class`'s leaf weights (plus its base value) of rows `0..n_rows` into
    /// `out[row * stride + offset]`. Each row's sum starts at 0, adds the base value when it is not
    /// zero, then each tree's leaf weight in tree order.
    #[allow(clippy::too_many_arguments)]
    fn score(
        &self,
        rows: &[f32],
        n_rows: usize,
        class: usize,
        out: &mut [f32],
        stride: usize,
        offset: usize,
        stop: Option<&Stop<'_>>,
    ) {
        let n_rows = n_rows.min(self.rows_in(rows));
        let n_nodes = self.nodes.len();
        let weights = (class < self.n_classes())
            .then(|| self.weights.get(class * n_nodes..(class + 1) * n_nodes))
            .flatten();
        let Some(weights) = weights else {
            // No such class: probability 0 (as an absent class column).
            for row in 0..n_rows {
                if let Some(o) = out.get_mut(row * stride + offset) {
                    *o = 0.0;
                }
            }
            return;
        };
        let base = self.base_values.get(class).copied().unwrap_or(0.0);
        #[cfg(target_arch = "x86_64")]
        if self.kernel != Kernel::Portable {
            // SAFETY: `set_kernel` chose this kernel only after seeing its instruction set on
            // this CPU, at most 64 features and some trees, and built `groups` for its width from
            // these nodes; `weights` has a weight per node and `n_rows <= rows_in(rows)`.
            let done = unsafe {
                match self.kernel {
                    Kernel::Avx512 => simd::avx512::score(
                        self, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    Kernel::Avx2 => simd::avx2::score(
                        self, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    Kernel::Portable => 0,
                }
            };
            let rest_rows = rows.get(done * self.n_features..).unwrap_or_default();
            let rest_out = out.get_mut(done * stride..).unwrap_or_default();
            let rest = n_rows - done;
            self.score_portable(
                rest_rows, rest, weights, base, rest_out, stride, offset, stop,
            );
            return;
        }
        self.score_portable(rows, n_rows, weights, base, out, stride, offset, stop);
    }

    /// The leaves `tree` sends `LANES` rows to, stepping them together (so their loads overlap).
    ///
    /// # Safety
    /// Each pointer is the first of `n_features` readable values (a row).
    #[inline(always)]
    unsafe fn leaves<const FB: u32>(
        &self,
        tree: &TreeInfo,
        row_at: &[*const f32; LANES],
    ) -> [usize; LANES] {
        let fb = if FB == 0 { self.feature_bits } else { FB };
        let fmask = (1u32 << fb) - 1;
        let nodes = self.nodes.as_slice();
        let mut idx = [tree.root as usize; LANES];
        for _ in 0..tree.depth {
            for (i, &r) in idx.iter_mut().zip(row_at) {
                // SAFETY: established at load: `i` starts at a root and only follows links, and
                // compile_tree made every root and link (+ 1 for a branch's false child) an index
                // of `nodes`; from_node checked every branch's feature < n_features (leaves have
                // feature 0, and a row exists only when n_features > 0). `r` points at a row's
                // n_features values (the caller's promise).
                unsafe {
                    let node = *nodes.get_unchecked(*i);
                    let x = *r.add((node.link & fmask) as usize);
                    *i = (node.link >> fb) as usize + usize::from(x <= node.threshold);
                }
            }
        }
        idx
    }

    /// The leaf `tree` sends one row to (bounds-checked: for the rows that do not fill `LANES`).
    #[inline(always)]
    fn leaf<const FB: u32>(&self, tree: &TreeInfo, row: &[f32]) -> usize {
        let fb = if FB == 0 { self.feature_bits } else { FB };
        let fmask = (1u32 << fb) - 1;
        let mut i = tree.root as usize;
        for _ in 0..tree.depth {
            let Some(node) = self.nodes.get(i) else { break };
            let x = row
                .get((node.link & fmask) as usize)
                .copied()
                .unwrap_or(0.0);
            i = (node.link >> fb) as usize + usize::from(x <= node.threshold);
        }
        i
    }

    /// The portable kernel. Rows go in blocks of `PORTABLE_BLOCK`, tree by tree (so one tree's
    /// nodes stay in cache for the block), `LANES` rows at a time (so their loads overlap), each
    /// row `depth` branch-free steps to its leaf. With `stop` (the early exit of
    /// [`Forest::decide_class`]), after every `DECIDE_EVERY` trees a row whose side of the
    /// threshold is certain leaves its block's list of active rows with its stopped value, and
    /// later trees walk only the rows still active; a row that stays to the last tree gets the
    /// same sum as without `stop` (same additions, same order).
    #[allow(clippy::too_many_arguments)]
    fn score_portable(
        &self,
        rows: &[f32],
        n_rows: usize,
        weights: &[f32],
        base: f32,
        out: &mut [f32],
        stride: usize,
        offset: usize,
        stop: Option<&Stop<'_>>,
    ) {
        let n_rows = n_rows.min(self.rows_in(rows));
        let mut start = 0;
        while start < n_rows {
            let len = (n_rows - start).min(PORTABLE_BLOCK);
            let block = rows.get(start * self.n_features..).unwrap_or_default();
            let mut acc = [0f32; PORTABLE_BLOCK];
            // Schemas of up to 64 features (botd's) get shifts and masks by constants.
            if self.feature_bits == 6 {
                self.score_block::<6>(block, len, weights, base, stop, &mut acc);
            } else {
                self.score_block::<0>(block, len, weights, base, stop, &mut acc);
            }
            for (j, &a) in acc.iter().take(len).enumerate() {
                if let Some(o) = out.get_mut((start + j) * stride + offset) {
                    *o = a;
                }
            }
            start += len;
        }
    }

    /// One block of [`Forest::score_portable`]: rows `0..len` of `rows` into `acc`. `FB` is
    /// `feature_bits`, or 0 to read it from the forest. Kept out of line so that every caller
    /// gets the code that was measured.
    #[inline(never)]
    fn score_block<const FB: u32>(
        &self,
        rows: &[f32],
        len: usize,
        weights: &[f32],
        base: f32,
        stop: Option<&Stop<'_>>,
        acc: &mut [f32; PORTABLE_BLOCK],
    ) {
        let nf = self.n_features;
        let len = len.min(PORTABLE_BLOCK).min(self.rows_in(rows));
        if base != 0.0 {
            for a in acc.iter_mut().take(len) {
                *a += base;
            }
        }
        // Block-relative indices of the rows still walking, in row order.
        let mut active = [0u16; PORTABLE_BLOCK];
        for (j, a) in active.iter_mut().enumerate() {
            *a = j as u16;
        }
        let mut n_active = len;
        let mut done = 0;
        for trees in self.trees.chunks(DECIDE_EVERY) {
            let live = active.get(..n_active).unwrap_or_default();
            for tree in trees {
                let mut lanes = live.chunks_exact(LANES);
                for group in &mut lanes {
                    let mut row_at = [rows.as_ptr(); LANES];
                    for (r, &j) in row_at.iter_mut().zip(group) {
                        *r = r.wrapping_add(usize::from(j) * nf);
                    }
                    // SAFETY: every active index is < len <= rows_in(rows), so each pointer is
                    // the first of a row's n_features values in `rows`.
                    let leaves = unsafe { self.leaves::<FB>(tree, &row_at) };
                    for (&j, &i) in group.iter().zip(&leaves) {
                        if let Some(a) = acc.get_mut(usize::from(j)) {
                            *a += weights.get(i).copied().unwrap_or(0.0);
                        }
                    }
                }
                for &j in lanes.remainder() {
                    let row = rows.get(usize::from(j) * nf..).unwrap_or_default();
                    let leaf = self.leaf::<FB>(tree, row);
                    if let Some(a) = acc.get_mut(usize::from(j)) {
                        *a += weights.get(leaf).copied().unwrap_or(0.0);
                    }
                }
            }
            done += trees.len();
            let Some(stop) = stop.filter(|_| done < self.trees.len()) else {
                continue;
            };
            // Retire the rows whose side is certain; keep the others in order.
            let mut kept = 0;
            for k in 0..n_active {
                let Some(&j) = active.get(k) else { break };
                let Some(a) = acc.get_mut(usize::from(j)) else {
                    continue;
                };
                if stop.decided(*a, done).is_some() {
                    *a = stop.stopped_value(*a, done);
                } else if let Some(slot) = active.get_mut(kept) {
                    *slot = j;
                    kept += 1;
                }
            }
            n_active = kept;
            if n_active == 0 {
                break;
            }
        }
    }
}

/// Checks one tree and appends its nodes, breadth first, to `slots` (and their weights of every
/// class to `leaf_weights`). Siblings are adjacent: a branch at slot `s` has the child of
/// `x > threshold` (and NaN) at `slots[s].2` and that of `x <= threshold` right after.
fn compile_tree(
    tree: i64,
    nodes: &HashMap<(i64, i64), OnnxNode>,
    weights: &HashMap<(i64, i64), Vec<f32>>,
    n_classes: usize,
    budget: &mut usize,
    slots: &mut Vec<Slot>,
    leaf_weights: &mut Vec<f32>,
) -> Result<TreeInfo, String> {
    // Depth first, with an explicit stack (hostile models must not overflow the call stack).
    let mut depth = 0u32;
    let mut stack = vec![(0i64, 0u32)];
    let mut visited = 0usize;
    while let Some((id, d)) = stack.pop() {
        visited += 1;
        if visited > nodes.len() {
            return Err(format!("tree {tree} has a cycle"));
        }
        match nodes.get(&(tree, id)) {
            Some(OnnxNode::Leaf) => depth = depth.max(d),
            Some(OnnxNode::Branch {
                other_id, le_id, ..
            }) => {
                if d + 1 > MAX_DEPTH {
                    return Err(format!("tree {tree} is deeper than {MAX_DEPTH}"));
                }
                stack.push((*other_id as i64, d + 1));
                stack.push((*le_id as i64, d + 1));
            }
            None => return Err(format!("tree {tree} refers to missing node {id}")),
        }
    }
    // Checked before anything is allocated; the layout below takes at most 2^(depth+1) - 1 nodes
    // for this tree (one per path), fewer than these cells.
    let cells = (1usize << depth) * (n_classes + 1);
    *budget = budget.checked_sub(cells).ok_or_else(|| {
        format!("the forest is too large to compile (over {MAX_CELLS} cells at tree {tree})")
    })?;
    let root = slots.len();
    let root_u32 = u32::try_from(root).map_err(|_| "the forest is too large to compile")?;
    slots.push((0, f32::NAN, root));
    leaf_weights.resize(leaf_weights.len() + n_classes, 0.0);
    // (onnx node id, slot)
    let mut queue = VecDeque::from([(0i64, root)]);
    while let Some((id, slot)) = queue.pop_front() {
        match nodes.get(&(tree, id)) {
            Some(&OnnxNode::Branch {
                feature,
                threshold,
                other_id,
                le_id,
            }) => {
                // The first child takes x > threshold and NaN, the second x <= threshold (a NaN
                // threshold, as a leaf's, sends every row to the first: fold_branch).
                let child = slots.len();
                slots.push((0, f32::NAN, child));
                slots.push((0, f32::NAN, child + 1));
                leaf_weights.resize(leaf_weights.len() + 2 * n_classes, 0.0);
                if let Some(s) = slots.get_mut(slot) {
                    *s = (feature, threshold, child);
                }
                queue.push_back((other_id as i64, child));
                queue.push_back((le_id as i64, child + 1));
            }
            Some(OnnxNode::Leaf) => {
                // Already (0, NaN, self); its weights:
                if let (Some(w), Some(dst)) = (
                    weights.get(&(tree, id)),
                    leaf_weights.get_mut(slot * n_classes..(slot + 1) * n_classes),
                ) {
                    for (d, &v) in dst.iter_mut().zip(w) {
                        *d = v;
                    }
                }
            }
            None => return Err(format!("tree {tree} refers to missing node {id}")),
        }
    }
    Ok(TreeInfo {
        root: root_u32,
        depth,
    })
}

fn next_down(x: f32) -> f32 {
    if x.is_nan() || x == f32::NEG_INFINITY {
        return x;
    }
    if x == 0.0 {
        return -f32::from_bits(1);
    }
    let bits = x.to_bits();
    f32::from_bits(if x > 0.0 { bits - 1 } else { bits + 1 })
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The x86-64 kernels. The lanes of a vector are consecutive trees (16 with AVX-512, 8 with
    //! AVX2) and `ROWS` rows go down them together, their walks independent so that their gathers
    //! overlap. A row's features sit in registers and each lane's is picked by a permute (no
    //! memory access); each step gathers the lanes' nodes, splits thresholds from links, compares
    //! and moves to the next index. The first three levels of each group of trees are kept as
    //! vectors (7 per group), so they are chosen by blends instead of gathers. Lanes past a short
    //! group start from node 0 (so they walk the first tree, through valid indices) and their
    //! weights are not added.

    use super::{Node, TreeInfo};

    /// Levels of each group kept as vectors (1 + 2 + 4 = 7 per group).
    pub(super) const HEAD_LEVELS: u32 = 3;
    pub(super) const HEAD: usize = 7;

    /// Up to 16 consecutive trees.
    #[derive(Debug)]
    pub(super) struct Group {
        /// Trees in the group (1..=width).
        pub(super) len: usize,
        /// Deepest tree of the group: steps every lane takes.
        pub(super) depth: u32,
        /// Per lane, the nodes of levels 0..3 reached by each path (a leaf stands for the paths
        /// below it): entry 0 the root, 1 + p for the level-1 path p, 3 + p for the level-2 path
        /// p (first decision in the high bit).
        pub(super) head: [Head; HEAD],
    }

    /// One node per lane, as vectors (AVX2 uses the first 8 lanes).
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Head {
        pub(super) thresholds: [f32; 16],
        pub(super) links: [u32; 16],
    }

    /// Groups of `width` (8 or 16) consecutive trees.
    pub(super) fn groups(
        trees: &[TreeInfo],
        nodes: &[Node],
        feature_bits: u32,
        width: usize,
    ) -> Vec<Group> {
        trees
            .chunks(width)
            .map(|chunk| {
                // Lanes past the group: node 0 with a NaN threshold, so they stay on node 0.
                let mut head = [Head {
                    thresholds: [f32::NAN; 16],
                    links: [0; 16],
                }; HEAD];
                for level in 0..HEAD_LEVELS {
                    for path in 0..1u32 << level {
                        let e = (1usize << level) - 1 + path as usize;
                        let Some(h) = head.get_mut(e) else { continue };
                        let lanes = h.thresholds.iter_mut().zip(h.links.iter_mut());
                        for (tree, (t, l)) in chunk.iter().zip(lanes) {
                            let mut i = tree.root as usize;
                            for bit in (0..level).rev() {
                                // A leaf links to itself (a branch's children follow it).
                                if let Some(n) = nodes.get(i)
                                    && (n.link >> feature_bits) as usize != i
                                {
                                    i = (n.link >> feature_bits) as usize
                                        + ((path >> bit) & 1) as usize;
                                }
                            }
                            if let Some(n) = nodes.get(i) {
                                *t = n.threshold;
                                *l = n.link;
                            }
                        }
                    }
                }
                Group {
                    len: chunk.len(),
                    depth: chunk.iter().map(|t| t.depth).max().unwrap_or(0),
                    head,
                }
            })
            .collect()
    }

    pub(super) mod avx512 {
        use std::arch::x86_64::*;

        use super::super::{Forest, Stop};
        use super::{HEAD, HEAD_LEVELS};

        /// Rows that go down a group together.
        const ROWS: usize = 4;

        /// Each lane's feature: `x` holds the row in `K` registers of 16; the link's low 6 bits
        /// are the feature (bits 0..5 index two registers, bit 5 picks the pair).
        #[target_feature(enable = "avx512f")]
        fn pick<const K: usize>(x: &[__m512; K], link: __m512i) -> __m512 {
            let high = || _mm512_test_epi32_mask(link, _mm512_set1_epi32(32));
            match *x.as_slice() {
                [x0] => _mm512_permutexvar_ps(link, x0),
                [x0, x1] => _mm512_permutex2var_ps(x0, link, x1),
                [x0, x1, x2] => _mm512_mask_blend_ps(
                    high(),
                    _mm512_permutex2var_ps(x0, link, x1),
                    _mm512_permutexvar_ps(link, x2),
                ),
                [x0, x1, x2, x3] => _mm512_mask_blend_ps(
                    high(),
                    _mm512_permutex2var_ps(x0, link, x1),
                    _mm512_permutex2var_ps(x2, link, x3),
                ),
                _ => _mm512_setzero_ps(),
            }
        }

        /// The first `HEAD_LEVELS` steps from a group's head vectors, for the row in `x`.
        /// Returns the node indices reached.
        #[target_feature(enable = "avx512f")]
        fn head_steps<const K: usize>(
            head: &[(__m512, __m512i); HEAD],
            fb: __m128i,
            x: &[__m512; K],
        ) -> __m512i {
            let [e0, e1, e2, e3, e4, e5, e6] = *head;
            let g0 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(pick(x, e0.1), e0.0);
            let t1 = _mm512_mask_blend_ps(g0, e1.0, e2.0);
            let l1 = _mm512_mask_blend_epi32(g0, e1.1, e2.1);
            let g1 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(pick(x, l1), t1);
            let t2 = _mm512_mask_blend_ps(
                g0,
                _mm512_mask_blend_ps(g1, e3.0, e4.0),
                _mm512_mask_blend_ps(g1, e5.0, e6.0),
            );
            let l2 = _mm512_mask_blend_epi32(
                g0,
                _mm512_mask_blend_epi32(g1, e3.1, e4.1),
                _mm512_mask_blend_epi32(g1, e5.1, e6.1),
            );
            let g2 = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(pick(x, l2), t2);
            let child = _mm512_srl_epi32(l2, fb);
            _mm512_mask_sub_epi32(child, g2, child, _mm512_set1_epi32(-1))
        }

        /// One step of every lane from nodes `i`, for the row in `x`.
        ///
        /// # Safety
        /// Every lane of `i` is an index of the node array at `nodes`.
        #[target_feature(enable = "avx512f")]
        unsafe fn step<const K: usize>(
            i: __m512i,
            nodes: *const i64,
            fb: __m128i,
            x: &[__m512; K],
        ) -> __m512i {
            // SAFETY: the caller's.
            let (a, b) = unsafe {
                (
                    _mm512_i32gather_epi64::<8>(_mm512_castsi512_si256(i), nodes),
                    _mm512_i32gather_epi64::<8>(_mm512_extracti64x4_epi64::<1>(i), nodes),
                )
            };
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            let t = _mm512_castsi512_ps(_mm512_permutex2var_epi32(a, even, b));
            let link = _mm512_permutex2var_epi32(a, odd, b);
            let go = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(pick(x, link), t);
            let child = _mm512_srl_epi32(link, fb);
            _mm512_mask_sub_epi32(child, go, child, _mm512_set1_epi32(-1))
        }

        /// Scores rows `0..k` (the largest multiple of `ROWS` up to `n_rows`) like
        /// `score_portable`, and returns k.
        ///
        /// # Safety
        /// The CPU has AVX-512F, `forest.n_features <= 64`, `forest.groups` were built 16 wide
        /// from `forest.trees` and `forest.nodes` (not empty), `weights.len() ==
        /// forest.nodes.len()`, and `n_rows * n_features <= rows.len()`.
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        pub(in super::super) unsafe fn score(
            forest: &Forest,
            rows: &[f32],
            n_rows: usize,
            weights: &[f32],
            base: f32,
            out: &mut [f32],
            stride: usize,
            offset: usize,
            stop: Option<&Stop<'_>>,
        ) -> usize {
            // SAFETY: the caller's, for every K (registers per row).
            unsafe {
                match forest.n_features.div_ceil(16) {
                    0 | 1 => score_k::<1>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    2 => score_k::<2>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    3 => score_k::<3>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    4 => score_k::<4>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    _ => 0,
                }
            }
        }

        /// `score` with each row in K registers (n_features <= 16K).
        ///
        /// # Safety
        /// As `score`'s, and `forest.n_features <= 16 * K`.
        #[target_feature(enable = "avx512f")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn score_k<const K: usize>(
            forest: &Forest,
            rows: &[f32],
            n_rows: usize,
            weights: &[f32],
            base: f32,
            out: &mut [f32],
            stride: usize,
            offset: usize,
            stop: Option<&Stop<'_>>,
        ) -> usize {
            let nf = forest.n_features;
            let nodes = forest.nodes.as_ptr().cast::<i64>();
            let fb = _mm_cvtsi32_si128(forest.feature_bits as i32);
            // Which of the 16 values of register k belong to the row.
            let mut row_masks = [0 as __mmask16; K];
            for (k, m) in row_masks.iter_mut().enumerate() {
                let have = nf.saturating_sub(16 * k).min(16);
                *m = ((1u32 << have) - 1) as __mmask16;
            }
            let mut vbuf = [0f32; 16];
            let mut done = 0;
            while done + ROWS <= n_rows {
                // The rows' features in registers; lanes past n_features are 0 (never picked).
                let mut x = [[_mm512_setzero_ps(); K]; ROWS];
                for (j, regs) in x.iter_mut().enumerate() {
                    let row = rows.as_ptr().wrapping_add((done + j) * nf);
                    for (k, (reg, &m)) in regs.iter_mut().zip(&row_masks).enumerate() {
                        if m != 0 {
                            // SAFETY: row done + j < n_rows, so its n_features values are in
                            // `rows`; `m` selects values 16k.. of the row that are < n_features,
                            // and masked lanes are not read.
                            *reg = unsafe { _mm512_maskz_loadu_ps(m, row.add(16 * k)) };
                        }
                    }
                }
                let mut acc = [0f32; ROWS];
                if base != 0.0 {
                    for a in &mut acc {
                        *a += base;
                    }
                }
                // With `stop`, the rows leave once each one's side of the threshold is certain.
                let mut trees_done = 0;
                let mut decided = false;
                for g in &forest.groups {
                    let mut head = [(_mm512_setzero_ps(), _mm512_setzero_si512()); HEAD];
                    for (h, src) in head.iter_mut().zip(&g.head) {
                        // SAFETY: both arrays are 16 lanes of 4 bytes.
                        *h = unsafe {
                            (
                                _mm512_loadu_ps(src.thresholds.as_ptr()),
                                _mm512_loadu_si512(src.links.as_ptr().cast()),
                            )
                        };
                    }
                    let mut idx = [_mm512_setzero_si512(); ROWS];
                    for (i, regs) in idx.iter_mut().zip(&x) {
                        *i = head_steps(&head, fb, regs);
                    }
                    for _ in HEAD_LEVELS..g.depth {
                        for (i, regs) in idx.iter_mut().zip(&x) {
                            // SAFETY: every lane of `i` is a node index: head links and links
                            // are < nodes.len() (checked at load), lanes past the group are 0.
                            *i = unsafe { step(*i, nodes, fb, regs) };
                        }
                    }
                    // Leaf weights, added per row in tree order.
                    for (a, &i) in acc.iter_mut().zip(&idx) {
                        // SAFETY: as above, and weights.len() == nodes.len().
                        let w = unsafe { _mm512_i32gather_ps::<4>(i, weights.as_ptr()) };
                        // SAFETY: vbuf is 16 f32.
                        unsafe { _mm512_storeu_ps(vbuf.as_mut_ptr(), w) };
                        for &w in vbuf.iter().take(g.len) {
                            *a += w;
                        }
                    }
                    trees_done += g.len;
                    if stop.is_some_and(|s| s.all_decided(&acc, trees_done)) {
                        decided = true;
                        break;
                    }
                }
                for (j, &a) in acc.iter().enumerate() {
                    let v = match stop.filter(|_| decided) {
                        Some(s) => s.stopped_value(a, trees_done),
                        None => a,
                    };
                    if let Some(o) = out.get_mut((done + j) * stride + offset) {
                        *o = v;
                    }
                }
                done += ROWS;
            }
            done
        }
    }

    pub(super) mod avx2 {
        use std::arch::x86_64::*;

        use super::super::{Forest, Stop};
        use super::{HEAD, HEAD_LEVELS};

        /// Rows that go down a group together.
        const ROWS: usize = 8;

        /// Each lane's feature: `x` holds the row in `K` registers of 8; the link's low 6 bits are
        /// the feature, bits 0..3 pick within a register and bits 3..6 the register.
        #[target_feature(enable = "avx2")]
        fn pick<const K: usize>(x: &[__m256; K], link: __m256i) -> __m256 {
            let mut v = [_mm256_setzero_ps(); 8];
            for (d, &r) in v.iter_mut().zip(x) {
                *d = _mm256_permutevar8x32_ps(r, link);
            }
            // Halve the candidates with bit 3, then 4, then 5 (moved to the sign bit).
            let bits = [
                _mm256_castsi256_ps(_mm256_slli_epi32::<28>(link)),
                _mm256_castsi256_ps(_mm256_slli_epi32::<27>(link)),
                _mm256_castsi256_ps(_mm256_slli_epi32::<26>(link)),
            ];
            let mut n = K;
            for bit in bits {
                if n <= 1 {
                    break;
                }
                let mut next = [_mm256_setzero_ps(); 8];
                for (j, (d, pair)) in next.iter_mut().zip(v.chunks(2)).enumerate() {
                    if let [a, b] = *pair {
                        *d = if 2 * j + 1 < n {
                            _mm256_blendv_ps(a, b, bit)
                        } else {
                            a
                        };
                    }
                }
                v = next;
                n = n.div_ceil(2);
            }
            let [r, ..] = v;
            r
        }

        #[target_feature(enable = "avx2")]
        fn blend_links(a: __m256i, b: __m256i, m: __m256) -> __m256i {
            _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps(a),
                _mm256_castsi256_ps(b),
                m,
            ))
        }

        /// The first `HEAD_LEVELS` steps from a group's head vectors.
        #[target_feature(enable = "avx2")]
        fn head_steps<const K: usize>(
            head: &[(__m256, __m256i); HEAD],
            fb: __m128i,
            x: &[__m256; K],
        ) -> __m256i {
            let [e0, e1, e2, e3, e4, e5, e6] = *head;
            let g0 = _mm256_cmp_ps::<_CMP_LE_OQ>(pick(x, e0.1), e0.0);
            let t1 = _mm256_blendv_ps(e1.0, e2.0, g0);
            let l1 = blend_links(e1.1, e2.1, g0);
            let g1 = _mm256_cmp_ps::<_CMP_LE_OQ>(pick(x, l1), t1);
            let t2 = _mm256_blendv_ps(
                _mm256_blendv_ps(e3.0, e4.0, g1),
                _mm256_blendv_ps(e5.0, e6.0, g1),
                g0,
            );
            let l2 = blend_links(blend_links(e3.1, e4.1, g1), blend_links(e5.1, e6.1, g1), g0);
            let g2 = _mm256_cmp_ps::<_CMP_LE_OQ>(pick(x, l2), t2);
            // A true compare is all ones (-1): subtracting it adds 1.
            _mm256_sub_epi32(_mm256_srl_epi32(l2, fb), _mm256_castps_si256(g2))
        }

        /// One step of every lane from nodes `i`.
        ///
        /// # Safety
        /// Every lane of `i` is an index of the node array at `nodes`.
        #[target_feature(enable = "avx2")]
        unsafe fn step<const K: usize>(
            i: __m256i,
            nodes: *const i64,
            fb: __m128i,
            x: &[__m256; K],
        ) -> __m256i {
            // SAFETY: the caller's.
            let (a, b) = unsafe {
                (
                    _mm256_i32gather_epi64::<8>(nodes, _mm256_castsi256_si128(i)),
                    _mm256_i32gather_epi64::<8>(nodes, _mm256_extracti128_si256::<1>(i)),
                )
            };
            let (a, b) = (_mm256_castsi256_ps(a), _mm256_castsi256_ps(b));
            // Even 32-bit halves are thresholds, odd ones links; the shuffle interleaves the
            // 64-bit blocks of a and b, the permute puts them back in lane order.
            let t = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(
                _mm256_shuffle_ps::<0x88>(a, b),
            )));
            let link = _mm256_castpd_si256(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(
                _mm256_shuffle_ps::<0xDD>(a, b),
            )));
            let go = _mm256_cmp_ps::<_CMP_LE_OQ>(pick(x, link), t);
            _mm256_sub_epi32(_mm256_srl_epi32(link, fb), _mm256_castps_si256(go))
        }

        /// Scores rows `0..k` (the largest multiple of `ROWS` up to `n_rows`) like
        /// `score_portable`, and returns k.
        ///
        /// # Safety
        /// The CPU has AVX2, `forest.n_features <= 64`, `forest.groups` were built 8 wide from
        /// `forest.trees` and `forest.nodes` (not empty), `weights.len() == forest.nodes.len()`,
        /// and `n_rows * n_features <= rows.len()`.
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        pub(in super::super) unsafe fn score(
            forest: &Forest,
            rows: &[f32],
            n_rows: usize,
            weights: &[f32],
            base: f32,
            out: &mut [f32],
            stride: usize,
            offset: usize,
            stop: Option<&Stop<'_>>,
        ) -> usize {
            // SAFETY: the caller's, for every K (registers per row).
            unsafe {
                match forest.n_features.div_ceil(8) {
                    0 | 1 => score_k::<1>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    2 => score_k::<2>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    3 => score_k::<3>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    4 => score_k::<4>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    5 => score_k::<5>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    6 => score_k::<6>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    7 => score_k::<7>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    8 => score_k::<8>(
                        forest, rows, n_rows, weights, base, out, stride, offset, stop,
                    ),
                    _ => 0,
                }
            }
        }

        /// `score` with each row in K registers (n_features <= 8K).
        ///
        /// # Safety
        /// As `score`'s, and `forest.n_features <= 8 * K`.
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn score_k<const K: usize>(
            forest: &Forest,
            rows: &[f32],
            n_rows: usize,
            weights: &[f32],
            base: f32,
            out: &mut [f32],
            stride: usize,
            offset: usize,
            stop: Option<&Stop<'_>>,
        ) -> usize {
            let nf = forest.n_features;
            let nodes = forest.nodes.as_ptr().cast::<i64>();
            let fb = _mm_cvtsi32_si128(forest.feature_bits as i32);
            // Per register, which of its 8 values belong to the row (all ones) or not (zero).
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mut row_masks = [_mm256_setzero_si256(); K];
            for (k, m) in row_masks.iter_mut().enumerate() {
                let have = nf.saturating_sub(8 * k).min(8) as i32;
                *m = _mm256_cmpgt_epi32(_mm256_set1_epi32(have), lane);
            }
            let mut vbuf = [0f32; 8];
            let mut done = 0;
            while done + ROWS <= n_rows {
                // The rows' features in registers; lanes past n_features are 0 (never picked).
                let mut x = [[_mm256_setzero_ps(); K]; ROWS];
                for (j, regs) in x.iter_mut().enumerate() {
                    let row = rows.as_ptr().wrapping_add((done + j) * nf);
                    for (k, (reg, &m)) in regs.iter_mut().zip(&row_masks).enumerate() {
                        if 8 * k < nf {
                            // SAFETY: row done + j < n_rows, so its n_features values are in
                            // `rows`; `m` selects values 8k.. of the row that are < n_features,
                            // and masked lanes are not read.
                            *reg = unsafe { _mm256_maskload_ps(row.add(8 * k), m) };
                        }
                    }
                }
                let mut acc = [0f32; ROWS];
                if base != 0.0 {
                    for a in &mut acc {
                        *a += base;
                    }
                }
                // With `stop`, the rows leave once each one's side of the threshold is certain.
                let mut trees_done = 0;
                let mut decided = false;
                for g in &forest.groups {
                    let mut head = [(_mm256_setzero_ps(), _mm256_setzero_si256()); HEAD];
                    for (h, src) in head.iter_mut().zip(&g.head) {
                        // SAFETY: both arrays are 16 lanes of 4 bytes; the first 8 are read.
                        *h = unsafe {
                            (
                                _mm256_loadu_ps(src.thresholds.as_ptr()),
                                _mm256_loadu_si256(src.links.as_ptr().cast()),
                            )
                        };
                    }
                    let mut idx = [_mm256_setzero_si256(); ROWS];
                    for (i, regs) in idx.iter_mut().zip(&x) {
                        *i = head_steps(&head, fb, regs);
                    }
                    for _ in HEAD_LEVELS..g.depth {
                        for (i, regs) in idx.iter_mut().zip(&x) {
                            // SAFETY: every lane of `i` is a node index: head links and links
                            // are < nodes.len() (checked at load), lanes past the group are 0.
                            *i = unsafe { step(*i, nodes, fb, regs) };
                        }
                    }
                    // Leaf weights, added per row in tree order.
                    for (a, &i) in acc.iter_mut().zip(&idx) {
                        // SAFETY: as above, and weights.len() == nodes.len().
                        let w = unsafe { _mm256_i32gather_ps::<4>(weights.as_ptr(), i) };
                        // SAFETY: vbuf is 8 f32.
                        unsafe { _mm256_storeu_ps(vbuf.as_mut_ptr(), w) };
                        for &w in vbuf.iter().take(g.len) {
                            *a += w;
                        }
                    }
                    trees_done += g.len;
                    if stop.is_some_and(|s| s.all_decided(&acc, trees_done)) {
                        decided = true;
                        break;
                    }
                }
                for (j, &a) in acc.iter().enumerate() {
                    let v = match stop.filter(|_| decided) {
                        Some(s) => s.stopped_value(a, trees_done),
                        None => a,
                    };
                    if let Some(o) = out.get_mut((done + j) * stride + offset) {
                        *o = v;
                    }
                }
                done += ROWS;
            }
            done
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use tract_onnx::prelude::Framework;

    use super::*;

    /// xorshift64
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    /// A random forest as ONNX attributes: `trees` trees of depth up to `max_depth` over
    /// `n_features` features, thresholds on a small grid (so rows hit them exactly) plus NaN,
    /// infinities and signed zeros, both branch modes, `n_classes` classes (binary forests
    /// either with both columns or the positive one only), base values, and
    /// `nodes_missing_value_tracks_true` as `tracks` says.
    struct Spec {
        trees: usize,
        max_depth: u32,
        n_features: usize,
        n_classes: usize,
        positive_only: bool,
        base: bool,
        tracks: Tracks,
    }

    /// How a random forest sets `nodes_missing_value_tracks_true`.
    #[derive(Clone, Copy, PartialEq)]
    enum Tracks {
        /// No such attribute (0 everywhere).
        Absent,
        /// 0 at every node, or 1 at random leaves (leaves ignore it).
        Zero,
        /// 1 at random nodes where botd accepts it (branches that never or always take the true
        /// side for numbers: NaN thresholds, BRANCH_LEQ +inf, BRANCH_LT -inf), else 0.
        Accepted,
        /// 1 at random nodes, anywhere.
        Any,
    }

    fn threshold(rng: &mut Rng) -> f32 {
        match rng.below(20) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -0.0,
            4 => 0.0,
            _ => (rng.below(41) as f32 - 20.0) / 4.0,
        }
    }

    fn forest_node(spec: &Spec, rng: &mut Rng) -> NodeProto {
        let mut a: [Vec<i64>; 5] = Default::default(); // tree, node, feature, true, false
        let (mut values, mut modes, mut tracks) = (vec![], vec![], vec![]);
        let (mut ct, mut cn, mut ci, mut cw) = (vec![], vec![], vec![], vec![]);
        for t in 0..spec.trees {
            // Node ids handed out depth first; a node is a leaf at max depth or by chance.
            let mut next = 1i64;
            let mut stack = vec![(0i64, 0u32)];
            while let Some((id, d)) = stack.pop() {
                a[0].push(t as i64);
                a[1].push(id);
                let leaf = d >= spec.max_depth || (d > 0 && rng.below(4) == 0);
                if leaf {
                    a[2].push(0);
                    a[3].push(0);
                    a[4].push(0);
                    values.push(0.0);
                    modes.push(b"LEAF".to_vec());
                    tracks.push(i64::from(
                        spec.tracks != Tracks::Absent && rng.below(2) == 0,
                    ));
                    if spec.positive_only {
                        ct.push(t as i64);
                        cn.push(id);
                        ci.push(0);
                        cw.push(rng.unit() / spec.trees as f32);
                    } else {
                        for c in 0..spec.n_classes {
                            if rng.below(5) != 0 {
                                ct.push(t as i64);
                                cn.push(id);
                                ci.push(c as i64);
                                cw.push(rng.unit() - 0.25);
                            }
                        }
                    }
                } else {
                    let (tr, fa) = (next, next + 1);
                    next += 2;
                    a[2].push(rng.below(spec.n_features as u64) as i64);
                    a[3].push(tr);
                    a[4].push(fa);
                    let t = threshold(rng);
                    let strict = rng.below(3) == 0;
                    values.push(t);
                    modes.push(if strict {
                        b"BRANCH_LT".to_vec()
                    } else {
                        b"BRANCH_LEQ".to_vec()
                    });
                    let degenerate = t.is_nan()
                        || (!strict && t == f32::INFINITY)
                        || (strict && t == f32::NEG_INFINITY);
                    let one = match spec.tracks {
                        Tracks::Absent | Tracks::Zero => false,
                        Tracks::Accepted => degenerate && rng.below(2) == 0,
                        Tracks::Any => rng.below(2) == 0,
                    };
                    tracks.push(i64::from(one));
                    stack.push((fa, d + 1));
                    stack.push((tr, d + 1));
                }
            }
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
        let [tid, nid, feat, tru, fal] = a;
        let mut attribute = vec![
            ints("classlabels_int64s", (0..spec.n_classes as i64).collect()),
            ints("nodes_treeids", tid),
            ints("nodes_nodeids", nid),
            ints("nodes_featureids", feat),
            floats("nodes_values", values),
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
        ];
        if spec.tracks != Tracks::Absent {
            attribute.push(ints("nodes_missing_value_tracks_true", tracks));
        }
        if spec.base {
            let n = if spec.positive_only {
                1
            } else {
                spec.n_classes
            };
            attribute.push(floats(
                "base_values",
                (0..n).map(|_| rng.unit() - 0.5).collect(),
            ));
        }
        NodeProto {
            op_type: "TreeEnsembleClassifier".into(),
            attribute,
            ..NodeProto::default()
        }
    }

    /// The ONNX semantics, straight from the attributes: from node 0 of each tree, for a NaN
    /// feature the true child when the node's `nodes_missing_value_tracks_true` is set (absent:
    /// 0), else the false one; for a number the true child when `x <= t` (BRANCH_LEQ) or `x < t`
    /// (BRANCH_LT), else the false one; per class, 0, plus the base value when not 0, plus each
    /// tree's leaf weight in tree order; a positive-only binary forest's first class is 1 - the
    /// second.
    fn reference(node: &NodeProto, n_features: usize, rows: &[f32]) -> Vec<f32> {
        let get = |name: &str| attr(node, name).unwrap();
        let nc = get("classlabels_int64s").ints.len();
        let tid = &get("nodes_treeids").ints;
        let nid = &get("nodes_nodeids").ints;
        let feat = &get("nodes_featureids").ints;
        let val = &get("nodes_values").floats;
        let tru = &get("nodes_truenodeids").ints;
        let fal = &get("nodes_falsenodeids").ints;
        let modes = &get("nodes_modes").strings;
        let tracks = attr(node, "nodes_missing_value_tracks_true").map(|a| &a.ints);
        let mut order = vec![];
        let mut at = HashMap::new();
        for i in 0..tid.len() {
            if !order.contains(&tid[i]) {
                order.push(tid[i]);
            }
            at.insert((tid[i], nid[i]), i);
        }
        let ci = &get("class_ids").ints;
        let positive_only = nc == 2 && ci.iter().all(|&c| c == 0);
        let mut w: HashMap<(i64, i64, usize), f32> = HashMap::new();
        for (k, &c) in ci.iter().enumerate() {
            let class = if positive_only { 1 } else { c as usize };
            let key = (
                get("class_treeids").ints[k],
                get("class_nodeids").ints[k],
                class,
            );
            *w.entry(key).or_insert(0.0) += get("class_weights").floats[k];
        }
        let mut base = attr(node, "base_values")
            .map(|a| a.floats.clone())
            .unwrap_or_default();
        if positive_only && base.len() == 1 {
            base.insert(0, 0.0);
        }
        base.resize(nc, 0.0);
        let mut out = vec![];
        for row in rows.chunks_exact(n_features) {
            let leaves: Vec<(i64, i64)> = order
                .iter()
                .map(|&t| {
                    let mut i = at[&(t, 0)];
                    while modes[i] != b"LEAF" {
                        let x = row[feat[i] as usize];
                        let go_true = if x.is_nan() {
                            tracks.is_some_and(|t| t[i] != 0)
                        } else if modes[i] == b"BRANCH_LT" {
                            x < val[i]
                        } else {
                            assert_eq!(modes[i], b"BRANCH_LEQ");
                            x <= val[i]
                        };
                        let next = if go_true { tru[i] } else { fal[i] };
                        i = at[&(t, next)];
                    }
                    (t, nid[i])
                })
                .collect();
            let mut p = vec![0f32; nc];
            for (c, pc) in p.iter_mut().enumerate() {
                if positive_only && c == 0 {
                    continue;
                }
                if base[c] != 0.0 {
                    *pc += base[c];
                }
                for &(t, id) in &leaves {
                    *pc += w.get(&(t, id, c)).copied().unwrap_or(0.0);
                }
            }
            if positive_only {
                p[0] = 1.0 - p[1];
            }
            out.extend(p);
        }
        out
    }

    /// Rows over the thresholds' grid, between its points, and NaN (one value in 12, or in
    /// about 3 with `many_nan`), infinities, signed zeros.
    fn rows(rng: &mut Rng, n: usize, n_features: usize) -> Vec<f32> {
        rows_nan(rng, n, n_features, false)
    }

    fn rows_nan(rng: &mut Rng, n: usize, n_features: usize, many_nan: bool) -> Vec<f32> {
        (0..n * n_features)
            .map(|_| match rng.below(12) {
                _ if many_nan && rng.below(10) < 3 => f32::NAN,
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => -0.0,
                4 => 0.0,
                5 => (rng.below(41) as f32 - 20.0) / 4.0 + 0.125,
                _ => (rng.below(41) as f32 - 20.0) / 4.0,
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every available kernel on every batch size scores exactly (bit for bit) what the reference
    /// does, with predict_proba and with predict_class.
    fn check(spec: &Spec, seed: u64) {
        let mut rng = Rng(seed);
        let node = forest_node(spec, &mut rng);
        let nf = spec.n_features;
        let mut forest = Forest::from_node(&node, nf).unwrap();
        assert_eq!(forest.n_trees, spec.trees);
        let nc = spec.n_classes;
        let n = 203;
        let few = rows(&mut rng, n, nf);
        let many = rows_nan(&mut rng, n, nf, true);
        for (rows, kernel) in [&few, &many]
            .into_iter()
            .flat_map(|r| [Kernel::Portable, Kernel::Avx2, Kernel::Avx512].map(|k| (r, k)))
        {
            let want = reference(&node, nf, rows);
            if !forest.set_kernel(kernel) {
                continue;
            }
            for batch in [1, 3, 4, 15, 16, 17, 64, n] {
                let mut got = vec![f32::NAN; n * nc];
                for (r, o) in rows.chunks(batch * nf).zip(got.chunks_mut(batch * nc)) {
                    forest.predict_proba(r, o);
                }
                assert_eq!(bits(&got), bits(&want), "{kernel:?} batch {batch}");
                for class in 0..nc {
                    let mut one = vec![f32::NAN; n];
                    for (r, o) in rows.chunks(batch * nf).zip(one.chunks_mut(batch)) {
                        forest.predict_class(r, class, o);
                    }
                    let col: Vec<f32> = want.chunks(nc).map(|p| p[class]).collect();
                    assert_eq!(bits(&one), bits(&col), "{kernel:?} class {class}");
                    check_decide(&forest, rows, class, &col, batch);
                }
            }
        }
    }

    /// `decide_class` gives each row the side of `t` its probability `exact` is on, for fixed
    /// thresholds and for thresholds at, just above and just below rows' own probabilities.
    /// Returns how many rows stopped early (their value is not their probability).
    fn check_decide(
        forest: &Forest,
        rows: &[f32],
        class: usize,
        exact: &[f32],
        batch: usize,
    ) -> usize {
        let nf = forest.n_features;
        let mut thresholds = vec![0.0, 0.25, 0.5, 0.5629, 1.0, -0.3, 2.0];
        for p in exact.iter().step_by(17).filter(|p| p.is_finite()) {
            thresholds.extend([*p, p.next_up(), p.next_down()]);
        }
        let mut stopped = 0;
        for t in thresholds {
            let mut got = vec![f32::NAN; exact.len()];
            for (r, o) in rows.chunks(batch * nf).zip(got.chunks_mut(batch)) {
                forest.decide_class(r, class, t, o);
            }
            for (row, (g, e)) in got.iter().zip(exact).enumerate() {
                assert_eq!(
                    *g >= t,
                    *e >= t,
                    "{:?} class {class} t {t} row {row}: decided {g}, probability {e}",
                    forest.kernel()
                );
                stopped += usize::from(g.to_bits() != e.to_bits());
            }
        }
        stopped
    }

    #[test]
    fn kernels_equal_the_reference_on_random_forests() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for tracks in [Tracks::Absent, Tracks::Zero, Tracks::Accepted] {
            for &(trees, max_depth, n_features, n_classes, positive_only, base) in &[
                (1, 0, 3, 2, true, false),
                (1, 1, 1, 2, true, true),
                (5, 3, 3, 2, false, false),
                (16, 6, 36, 2, true, false),
                (17, 8, 36, 2, true, true),
                (40, 10, 64, 3, false, true),
                (33, 7, 20, 2, false, false),
                (20, 5, 70, 2, true, false),
                (3, 12, 40, 5, false, true),
            ] {
                seed += 1;
                let spec = Spec {
                    trees,
                    max_depth,
                    n_features,
                    n_classes,
                    positive_only,
                    base,
                    tracks,
                };
                check(&spec, seed);
            }
        }
    }

    /// One tree: node 0 tests feature 0, its true side is leaf 1 (class 1 weight 1) and its false
    /// side leaf 2 (weight 0).
    fn stump(mode: &[u8], t: f32, tracks_true: Option<i64>) -> NodeProto {
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
        let mut attribute = vec![
            ints("classlabels_int64s", vec![0, 1]),
            ints("nodes_treeids", vec![0, 0, 0]),
            ints("nodes_nodeids", vec![0, 1, 2]),
            ints("nodes_featureids", vec![0, 0, 0]),
            floats("nodes_values", vec![t, 0.0, 0.0]),
            ints("nodes_truenodeids", vec![1, 0, 0]),
            ints("nodes_falsenodeids", vec![2, 0, 0]),
            AttributeProto {
                name: "nodes_modes".into(),
                strings: vec![mode.to_vec(), b"LEAF".to_vec(), b"LEAF".to_vec()],
                ..AttributeProto::default()
            },
            ints("class_treeids", vec![0, 0]),
            ints("class_nodeids", vec![1, 2]),
            ints("class_ids", vec![0, 0]),
            floats("class_weights", vec![1.0, 0.0]),
        ];
        if let Some(tt) = tracks_true {
            attribute.push(ints("nodes_missing_value_tracks_true", vec![tt, 0, 0]));
        }
        NodeProto {
            op_type: "TreeEnsembleClassifier".into(),
            attribute,
            ..NodeProto::default()
        }
    }

    #[test]
    fn branch_steps_count_the_branches_rows_pass() {
        let forest = Forest::from_node(&stump(b"BRANCH_LEQ", 0.5, None), 1).unwrap();
        assert_eq!(forest.branch_steps(&[0.0, 1.0, f32::NAN], 0), 3);
        assert_eq!(forest.branch_steps(&[0.0, 1.0, f32::NAN], 1), 0);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/argus-rf.onnx");
        let model = crate::model::Model::load(&path).unwrap();
        let crate::model::Scorer::Forest(forest) = &model.scorer else {
            panic!("argus-rf is a forest");
        };
        let mut rng = Rng(5);
        let n = 100;
        let rows: Vec<f32> = (0..n * forest.n_features)
            .map(|_| rng.unit() * 1000.0)
            .collect();
        let steps = forest.branch_steps(&rows, 0);
        let below = forest.branch_steps(&rows, 3);
        // Every path through a root branch of depth d passes min(d, 3) nodes above level 3.
        assert!(
            below < steps && below + (n * forest.n_trees) as u64 <= steps,
            "{below}"
        );
        let most: u64 = forest.trees.iter().map(|t| u64::from(t.depth)).sum();
        // Every tree of argus-rf has a root branch; no row goes deeper than its tree.
        assert!(steps >= (n * forest.n_trees) as u64, "{steps}");
        assert!(steps <= n as u64 * most, "{steps}");
    }

    /// NaN takes the side `nodes_missing_value_tracks_true` names (absent: false), numbers the
    /// side their comparison says, for every threshold kind, in every kernel and at every row
    /// position (SIMD blocks and the portable tail).
    #[test]
    fn nan_takes_the_side_tracks_true_names() {
        let xs = [
            f32::NAN,
            -f32::NAN,
            f32::NEG_INFINITY,
            -1.0,
            -0.0,
            0.0,
            0.5,
            1.0,
            f32::INFINITY,
        ];
        for mode in [&b"BRANCH_LEQ"[..], b"BRANCH_LT"] {
            for t in [f32::NAN, f32::NEG_INFINITY, -0.0, 0.0, 0.5, f32::INFINITY] {
                for tt in [None, Some(0), Some(1)] {
                    let node = stump(mode, t, tt);
                    let want_true = |x: f32| {
                        if x.is_nan() {
                            tt == Some(1)
                        } else if mode == b"BRANCH_LT" {
                            x < t
                        } else {
                            x <= t
                        }
                    };
                    // Accepted exactly when NaN goes false or numbers all take one side.
                    let numbers: Vec<bool> = xs[2..].iter().map(|&x| want_true(x)).collect();
                    let one_sided = numbers.iter().all(|&b| b) || numbers.iter().all(|&b| !b);
                    let mut forest = match Forest::from_node(&node, 1) {
                        Ok(f) => f,
                        Err(e) => {
                            assert!(tt == Some(1) && !one_sided, "{e}");
                            assert!(e.contains("nodes_missing_value_tracks_true"), "{e}");
                            continue;
                        }
                    };
                    assert!(tt != Some(1) || one_sided);
                    let rows: Vec<f32> = xs.iter().cycle().take(xs.len() * 7).copied().collect();
                    let want: Vec<f32> = rows
                        .iter()
                        .map(|&x| if want_true(x) { 1.0 } else { 0.0 })
                        .collect();
                    for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
                        if !forest.set_kernel(kernel) {
                            continue;
                        }
                        let mut got = vec![f32::NAN; rows.len()];
                        forest.predict_class(&rows, 1, &mut got);
                        let ctx = (String::from_utf8_lossy(mode), t, tt, kernel);
                        assert_eq!(bits(&got), bits(&want), "{ctx:?}");
                        let mut proba = vec![f32::NAN; 2 * rows.len()];
                        forest.predict_proba(&rows, &mut proba);
                        assert_eq!(bits(&proba), bits(&reference(&node, 1, &rows)), "{ctx:?}");
                    }
                }
            }
        }
    }

    /// Nodes that send NaN to their true side while numbers take both sides are refused at load,
    /// naming the attribute; a tracks_true array of the wrong length too.
    #[test]
    fn unsupported_tracks_true_is_refused() {
        let spec = Spec {
            trees: 10,
            max_depth: 5,
            n_features: 8,
            n_classes: 2,
            positive_only: true,
            base: false,
            tracks: Tracks::Any,
        };
        let node = forest_node(&spec, &mut Rng(3));
        let e = Forest::from_node(&node, 8).unwrap_err();
        assert!(
            e.contains("nodes_missing_value_tracks_true 1 on a BRANCH_"),
            "{e}"
        );
        let mut node = stump(b"BRANCH_LEQ", 0.5, Some(0));
        for a in &mut node.attribute {
            if a.name == "nodes_missing_value_tracks_true" {
                a.ints.pop();
            }
        }
        let e = Forest::from_node(&node, 1).unwrap_err();
        assert!(e.contains("differ in length"), "{e}");
    }

    #[test]
    fn short_buffers_and_unknown_classes_do_not_panic() {
        let spec = Spec {
            trees: 20,
            max_depth: 6,
            n_features: 5,
            n_classes: 2,
            positive_only: true,
            base: false,
            tracks: Tracks::Zero,
        };
        let mut rng = Rng(7);
        let node = forest_node(&spec, &mut rng);
        let mut forest = Forest::from_node(&node, 5).unwrap();
        let rows = rows(&mut rng, 37, 5);
        for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
            if !forest.set_kernel(kernel) {
                continue;
            }
            let mut out = vec![1f32; 74];
            forest.predict_proba(&rows[..rows.len() - 1], &mut out[..31]);
            forest.predict_class(&rows, 1, &mut out[..9]);
            // No class 2: zeros.
            forest.predict_class(&rows, 2, &mut out);
            assert!(out[..37].iter().all(|&p| p == 0.0));
            forest.predict_class(&[], 1, &mut out);
            forest.predict_proba(&rows, &mut []);
        }
    }

    /// The shipped model, on rows made of its own thresholds (exactly, and one float either side)
    /// and random values: every kernel scores the same bits.
    #[test]
    fn kernels_agree_on_the_shipped_model() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/argus-rf.onnx");
        let model = crate::model::Model::load(&path).unwrap();
        let crate::model::Scorer::Forest(forest) = &model.scorer else {
            panic!("argus-rf is a forest");
        };
        let nf = forest.n_features;
        let mut per_feature: Vec<Vec<f32>> = vec![vec![]; nf];
        for n in &forest.nodes {
            let f = (n.link & ((1 << forest.feature_bits) - 1)) as usize;
            if !n.threshold.is_nan() {
                per_feature[f].push(n.threshold);
            }
        }
        let mut rng = Rng(11);
        let n = 4099;
        let rows: Vec<f32> = (0..n * nf)
            .map(|i| {
                let t = &per_feature[i % nf];
                if t.is_empty() || rng.below(8) == 0 {
                    return rng.unit() * 1000.0;
                }
                let t = t[rng.below(t.len() as u64) as usize];
                match rng.below(3) {
                    0 => next_down(t),
                    1 => t,
                    _ => -next_down(-t),
                }
            })
            .collect();
        let node = {
            let bytes = std::fs::read(&path).unwrap();
            let proto = tract_onnx::onnx()
                .proto_model_for_read(&mut bytes.as_slice())
                .unwrap();
            proto
                .graph
                .unwrap()
                .node
                .into_iter()
                .find(|n| n.op_type == "TreeEnsembleClassifier")
                .unwrap()
        };
        let want = reference(&node, nf, &rows);
        let mut forest = Forest::from_node(&node, nf).unwrap();
        for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
            if !forest.set_kernel(kernel) {
                continue;
            }
            let mut got = vec![0f32; n * 2];
            for (r, o) in rows.chunks(1024 * nf).zip(got.chunks_mut(1024 * 2)) {
                forest.predict_proba(r, o);
            }
            assert_eq!(bits(&got), bits(&want), "{kernel:?}");
            // Decisions: the same verdicts; every kernel stops early on most rows.
            let col: Vec<f32> = want.chunks(2).map(|p| p[1]).collect();
            let stopped = check_decide(&forest, &rows, 1, &col, 1024);
            assert!(stopped > n, "{kernel:?}: {stopped} rows stopped early");
        }
    }
}
