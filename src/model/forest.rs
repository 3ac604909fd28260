//! botd's own random-forest evaluator, compiled from the attributes of an ONNX
//! `TreeEnsembleClassifier` node (read through tract's protobuf reader).
//!
//! Why: tract evaluates tree ensembles correctly but walks to each leaf linearly, which scores tens
//! of rows per second on a 100-tree forest; a gateway scores every flow of every window. Each tree
//! is laid out here as a complete binary tree of its own depth (internal nodes in breadth-first
//! order, leaves padded down to the last level), so a row descends with a fixed number of
//! branch-free steps `i = 2i + 1 + (x[f] > t)`, and several rows go down the same tree together
//! so their memory loads overlap. The result equals tract's and onnxruntime's (see tests).

use std::collections::HashMap;

use tract_onnx::pb::{AttributeProto, NodeProto};

/// Deepest tree accepted for the complete layout (2^16 leaves per tree).
pub const MAX_DEPTH: u32 = 16;

/// Rows that descend a tree together.
const LANES: usize = 16;

/// Most classes accepted (botd's models have two); bounds the per-leaf weight vectors.
pub const MAX_CLASSES: usize = 256;

/// Most cells (internal nodes plus leaf weights, over all trees) of the compiled layout: 2^26,
/// a few hundred MB at most. The complete layout pads each tree to 2^depth leaves, so a small
/// hostile file of deep, narrow trees would otherwise ask for gigabytes. The shipped 100-tree
/// forests use about 1.6 M cells.
pub const MAX_CELLS: usize = 1 << 26;

#[derive(Debug)]
pub struct Forest {
    pub n_features: usize,
    pub n_trees: usize,
    /// Class labels in output order (e.g. [0, 1]).
    pub class_labels: Vec<i64>,
    pub max_depth: u32,
    trees: Vec<Tree>,
    /// Added to the summed leaf weights, per class.
    base_values: Vec<f32>,
    /// Binary models may carry weights for the positive class only; the other is 1 - p.
    positive_only: bool,
}

#[derive(Debug)]
struct Tree {
    depth: u32,
    /// Complete layout: (feature index, threshold) of each internal node (2^depth - 1), packed so
    /// one load brings both.
    nodes: Vec<(u32, f32)>,
    /// Leaf weights per class: `leaves[class][leaf]`, 2^depth leaves.
    leaves: Vec<Vec<f32>>,
}

/// Padding below an early leaf: always the true (left) side.
const PAD: (u32, f32) = (0, f32::INFINITY);

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

/// One node as the ONNX attributes describe it.
#[derive(Clone, Copy, Debug)]
enum OnnxNode {
    Branch {
        feature: u32,
        threshold: f32,
        /// BRANCH_LT instead of BRANCH_LEQ.
        strict: bool,
        true_id: usize,
        false_id: usize,
    },
    Leaf,
}

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
        if [
            node_ids.len(),
            feature_ids.len(),
            values.len(),
            true_ids.len(),
            false_ids.len(),
            modes.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err("node attribute arrays differ in length".into());
        }
        // Trees in first-appearance order; nodes keyed by (tree, node id).
        let mut tree_order: Vec<i64> = Vec::new();
        let mut nodes: HashMap<(i64, i64), OnnxNode> = HashMap::with_capacity(n);
        for i in 0..n {
            if !tree_order.contains(&tree_ids[i]) {
                tree_order.push(tree_ids[i]);
            }
            let mode = modes[i].as_slice();
            let parsed = match mode {
                b"LEAF" => OnnxNode::Leaf,
                b"BRANCH_LEQ" | b"BRANCH_LT" => {
                    let feature = u32::try_from(feature_ids[i])
                        .ok()
                        .filter(|&f| (f as usize) < n_features)
                        .ok_or_else(|| {
                            format!("feature index {} outside 0..{n_features}", feature_ids[i])
                        })?;
                    OnnxNode::Branch {
                        feature,
                        threshold: values[i],
                        strict: mode == b"BRANCH_LT",
                        true_id: usize::try_from(true_ids[i]).map_err(|e| e.to_string())?,
                        false_id: usize::try_from(false_ids[i]).map_err(|e| e.to_string())?,
                    }
                }
                other => {
                    return Err(format!(
                        "node mode {} is not supported by the forest evaluator",
                        String::from_utf8_lossy(other)
                    ));
                }
            };
            nodes.insert((tree_ids[i], node_ids[i]), parsed);
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
        for i in 0..c_tree.len() {
            let class = usize::try_from(c_ids[i])
                .ok()
                .filter(|&c| c < n_classes)
                .ok_or_else(|| format!("class id {} outside 0..{n_classes}", c_ids[i]))?;
            let class = if positive_only { 1 } else { class };
            weights
                .entry((c_tree[i], c_node[i]))
                .or_insert_with(|| vec![0.0; n_classes])[class] += c_weights[i];
        }
        let mut base_values = attr(node, "base_values")
            .map(|a| a.floats.clone())
            .unwrap_or_default();
        if positive_only && base_values.len() == 1 {
            base_values.insert(0, 0.0);
        }
        base_values.resize(n_classes, 0.0);

        let mut trees = Vec::with_capacity(tree_order.len());
        let mut budget = MAX_CELLS;
        for &t in &tree_order {
            trees.push(compile_tree(t, &nodes, &weights, n_classes, &mut budget)?);
        }
        let max_depth = trees.iter().map(|t| t.depth).max().unwrap_or(0);
        Ok(Forest {
            n_features,
            n_trees: trees.len(),
            class_labels,
            max_depth,
            trees,
            base_values,
            positive_only,
        })
    }

    pub fn n_classes(&self) -> usize {
        self.class_labels.len()
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
            for row in 0..n_rows {
                // Strided writes into `out` would defeat the per-class loop; accumulate in place.
                if let Some(o) = out.get_mut(row * nc + class) {
                    *o = 0.0;
                }
            }
            self.accumulate(rows, n_rows, class, |row, v| {
                if let Some(o) = out.get_mut(row * nc + class) {
                    *o += v;
                }
            });
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
    pub fn predict_class(&self, rows: &[f32], class: usize, out: &mut [f32]) {
        let n_rows = self.rows_in(rows).min(out.len());
        if self.positive_only && class == 0 {
            self.predict_class(rows, 1, out);
            for o in out.iter_mut().take(n_rows) {
                *o = 1.0 - *o;
            }
            return;
        }
        for o in out.iter_mut().take(n_rows) {
            *o = 0.0;
        }
        self.accumulate(rows, n_rows, class, |row, v| {
            if let Some(o) = out.get_mut(row) {
                *o += v;
            }
        });
    }

    fn rows_in(&self, rows: &[f32]) -> usize {
        rows.len().checked_div(self.n_features).unwrap_or(0)
    }

    /// Tree by tree (so one tree's nodes stay in cache for the whole batch), `LANES` rows at a time
    /// (so their loads overlap), each row takes `depth` branch-free steps to its leaf.
    fn accumulate(
        &self,
        rows: &[f32],
        n_rows: usize,
        class: usize,
        mut add: impl FnMut(usize, f32),
    ) {
        let nf = self.n_features;
        let base = self.base_values.get(class).copied().unwrap_or(0.0);
        if base != 0.0 {
            for row in 0..n_rows {
                add(row, base);
            }
        }
        for tree in &self.trees {
            let Some(leaves) = tree.leaves.get(class) else {
                continue;
            };
            let first_leaf = (1usize << tree.depth) - 1;
            let nodes = tree.nodes.as_slice();
            let mut start = 0;
            while start < n_rows {
                let lanes = (n_rows - start).min(LANES);
                let mut idx = [0usize; LANES];
                let mut base_of = [0usize; LANES];
                for (lane, b) in base_of.iter_mut().enumerate().take(lanes) {
                    *b = (start + lane) * nf;
                }
                if lanes == LANES {
                    for _ in 0..tree.depth {
                        for lane in 0..LANES {
                            // SAFETY: after k < depth steps idx < 2^(k+1) - 1 <= nodes.len()
                            // (the complete layout has 2^depth - 1 internal nodes), feature
                            // indices were checked < n_features when the forest was compiled, and
                            // base_of[lane] + n_features <= n_rows * n_features <= rows.len().
                            unsafe {
                                let (f, t) = *nodes.get_unchecked(idx[lane]);
                                let x = *rows.get_unchecked(base_of[lane] + f as usize);
                                idx[lane] = 2 * idx[lane] + 1 + usize::from(x > t);
                            }
                        }
                    }
                } else {
                    for _ in 0..tree.depth {
                        for lane in 0..lanes {
                            let (f, t) = nodes.get(idx[lane]).copied().unwrap_or(PAD);
                            let x = rows.get(base_of[lane] + f as usize).copied().unwrap_or(0.0);
                            // The true branch (x <= t) is the left child.
                            idx[lane] = 2 * idx[lane] + 1 + usize::from(x > t);
                        }
                    }
                }
                for (lane, i) in idx.iter().enumerate().take(lanes) {
                    add(
                        start + lane,
                        leaves.get(i - first_leaf).copied().unwrap_or(0.0),
                    );
                }
                start += lanes;
            }
        }
    }
}

/// Lays one tree out as a complete binary tree of its depth. A leaf above the last level is
/// copied down: the nodes below it get threshold +inf (always the true, left, side) and every
/// leaf slot under it carries its weights.
fn compile_tree(
    tree: i64,
    nodes: &HashMap<(i64, i64), OnnxNode>,
    weights: &HashMap<(i64, i64), Vec<f32>>,
    n_classes: usize,
    budget: &mut usize,
) -> Result<Tree, String> {
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
                true_id, false_id, ..
            }) => {
                if d + 1 > MAX_DEPTH {
                    return Err(format!("tree {tree} is deeper than {MAX_DEPTH}"));
                }
                stack.push((*true_id as i64, d + 1));
                stack.push((*false_id as i64, d + 1));
            }
            None => return Err(format!("tree {tree} refers to missing node {id}")),
        }
    }
    // Internal nodes plus leaves of every class, checked before anything is allocated.
    let cells = (1usize << depth) * (n_classes + 1);
    *budget = budget.checked_sub(cells).ok_or_else(|| {
        format!("the forest is too large to compile (over {MAX_CELLS} cells at tree {tree})")
    })?;
    let n_internal = (1usize << depth) - 1;
    let mut nodes_out = vec![PAD; n_internal];
    let mut leaves = vec![vec![0f32; 1usize << depth]; n_classes];
    // (onnx node id, complete-layout index, level)
    let mut stack = vec![(0i64, 0usize, 0u32)];
    while let Some((id, pos, level)) = stack.pop() {
        match nodes.get(&(tree, id)) {
            Some(&OnnxNode::Branch {
                feature,
                threshold,
                strict,
                true_id,
                false_id,
            }) => {
                // x < t equals x <= the next float below t.
                let t = if strict {
                    next_down(threshold)
                } else {
                    threshold
                };
                nodes_out[pos] = (feature, t);
                stack.push((true_id as i64, 2 * pos + 1, level + 1));
                stack.push((false_id as i64, 2 * pos + 2, level + 1));
            }
            Some(OnnxNode::Leaf) => {
                let w = weights.get(&(tree, id));
                // Descend always-left to the last level; every leaf slot below gets the weights.
                let span = depth - level;
                let mut first = pos;
                for _ in 0..span {
                    first = 2 * first + 1;
                }
                let first_leaf = first - n_internal;
                for (c, class_leaves) in leaves.iter_mut().enumerate() {
                    let value = w.and_then(|w| w.get(c)).copied().unwrap_or(0.0);
                    if let Some(slots) =
                        class_leaves.get_mut(first_leaf..first_leaf + (1usize << span))
                    {
                        slots.fill(value);
                    }
                }
            }
            None => return Err(format!("tree {tree} refers to missing node {id}")),
        }
    }
    Ok(Tree {
        depth,
        nodes: nodes_out,
        leaves,
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
