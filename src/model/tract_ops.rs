//! The ONNX reader botd gives tract: `tract_onnx::Onnx` with an operator register holding only
//! what tree-ensemble classifiers (skl2onnx, onnxmltools) are made of, instead of
//! `tract_onnx::onnx()`'s full register.
//!
//! Why: the full register keeps every ONNX and NNEF operator reachable (convolutions, FFTs,
//! recurrent layers, ...), so the linker keeps them all: two thirds of the binary was tract
//! (cross/README.md, Size). botd scores forests with its own code (`forest`), so tract only reads
//! and checks the graph, and runs a graph that is not a plain forest; with this register the
//! linker drops the operators no forest uses. A graph needing any other operator is refused at
//! load, naming the operator ([`unsupported_op`]).
//!
//! tract-onnx keeps its operator builders private, so the ones botd needs are rebuilt here from
//! tract's public ops. `TreeEnsembleClassifier` is adapted from tract-onnx 0.23.9
//! (`src/ops/ml/tree_ensemble_classifier.rs`, MIT or Apache-2.0, © Sonos), without indexing that
//! could panic; `Cast` is tract-core's cast (tract-onnx's adds string parsing and a TDim
//! special case, which no forest needs).

use std::iter;

use tract_onnx::Onnx;
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::pb_helpers::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops;
use tract_onnx_opl::ml::tree::{Cmp, TreeEnsemble, TreeEnsembleData};

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;
type Builder = fn(&ParsingContext, &NodeProto) -> Built;

/// The operators botd's reader knows and how each is built: the register and the names an error
/// lists come from this one table (ONNX's domain is ignored here, as tract does).
const REGISTER: &[(&str, Builder)] = &[
    ("TreeEnsembleClassifier", tree_classifier),
    ("Cast", |_, node| {
        let to = node.get_attr::<DatumType>("to")?;
        Ok((Box::new(ops::cast::cast(to)), vec![]))
    }),
    ("Identity", |_, _| {
        Ok((Box::<ops::identity::Identity>::default(), vec![]))
    }),
    ("Constant", constant),
    ("ArgMax", |_, node| {
        let axis = node.get_attr_opt("axis")?.unwrap_or(0);
        let keepdims = node.get_attr_opt("keepdims")?.unwrap_or(true);
        let last = node.get_attr_opt("select_last_index")?.unwrap_or(false);
        let reducer = ops::nn::Reducer::ArgMax(last);
        Ok((
            expand(ops::nn::Reduce::new(Some(vec![axis]), keepdims, reducer)),
            vec![],
        ))
    }),
    ("Reshape", |_, node| {
        let allowzero = node.get_attr_opt::<i64>("allowzero")?.unwrap_or(0) != 0;
        Ok((expand(ops::array::Reshape::new(allowzero)), vec![]))
    }),
    ("Flatten", |_, node| {
        let axis = node.get_attr_opt("axis")?.unwrap_or(1);
        Ok((expand(ops::array::Flatten::new(axis)), vec![]))
    }),
    ("Concat", |_, node| {
        let axis = node.get_attr("axis")?;
        Ok((expand(ops::array::Concat::new(axis)), vec![]))
    }),
    ("Add", |_, _| {
        Ok((tract_core::ops::math::Add.into_hir(), vec![]))
    }),
    ("Sub", |_, _| {
        Ok((tract_core::ops::math::Sub.into_hir(), vec![]))
    }),
    ("Mul", |_, _| {
        Ok((tract_core::ops::math::Mul.into_hir(), vec![]))
    }),
    ("Div", |_, _| {
        Ok((tract_core::ops::math::Div.into_hir(), vec![]))
    }),
    ("Sigmoid", |_, _| {
        Ok((tract_core::ops::nn::sigmoid().into_hir(), vec![]))
    }),
];

/// The operators botd's reader knows, in [`REGISTER`]'s order.
pub fn operators() -> impl Iterator<Item = &'static str> {
    REGISTER.iter().map(|&(name, _)| name)
}

/// tract-onnx's framework with botd's register ([`operators`]).
pub fn onnx() -> Onnx {
    let mut reg = OnnxOpRegister::default();
    for &(name, build) in REGISTER {
        reg.insert(name, build);
    }
    Onnx {
        op_register: reg,
        ..Onnx::default()
    }
}

/// The first node whose operator botd's reader does not know, as (operator, node name).
pub fn unsupported_op(graph: &tract_onnx::pb::GraphProto) -> Option<(&str, &str)> {
    graph
        .node
        .iter()
        .find(|n| !operators().any(|op| op == n.op_type))
        .map(|n| (n.op_type.as_str(), n.name.as_str()))
}

fn constant(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let value = if let Some(v) = node.get_attr_opt("value")? {
        ctx.load_tensor(v)?
    } else if let Some(i) = node.get_attr_opt::<i64>("value_int")? {
        tensor0(i)
    } else if let Some(v) = node.get_attr_opt::<f32>("value_float")? {
        tensor0(v)
    } else if let Some(ints) = node.get_attr_opt_slice::<i64>("value_ints")? {
        tensor1(ints)
    } else if let Some(floats) = node.get_attr_opt_slice::<f32>("value_floats")? {
        tensor1(floats)
    } else {
        bail!("Could not extract value out of Constant node")
    };
    Ok((
        Box::new(ops::konst::Const::new(value.into_arc_tensor())?),
        vec![],
    ))
}

fn tree_classifier(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    let ensemble = parse_nodes_data(node)?;
    let class_labels = parse_class_data(node)?;
    let base_class_score =
        get_vec_attr_opt::<f32>(node, "base_values", ensemble.n_classes())?.map(|t| rctensor1(&t));
    let post_transform = node
        .get_attr_opt("post_transform")?
        .map(parse_post_transform)
        .transpose()?
        .unwrap_or(None);
    // Even positions of the leaves are class ids: all 0 in a binary forest that scores class 1
    // only (tract-onnx's "binary result layout").
    let binary_result_layout = class_labels.len() < 3
        && ensemble
            .data
            .leaves
            .try_as_plain_ram()?
            .as_slice::<u32>()?
            .iter()
            .step_by(2)
            .all(|v| *v == 0);
    Ok((
        expand(TreeEnsembleClassifier {
            ensemble,
            class_labels,
            base_class_score,
            post_transform,
            binary_result_layout,
        }),
        vec![],
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PostTransform {
    Softmax,
    Logistic,
}

fn parse_post_transform(s: &str) -> TractResult<Option<PostTransform>> {
    match s {
        "NONE" => Ok(None),
        "SOFTMAX" => Ok(Some(PostTransform::Softmax)),
        "LOGISTIC" => Ok(Some(PostTransform::Logistic)),
        "PROBIT" | "SOFTMAX_ZERO" => bail!("PROBIT and SOFTMAX_ZERO unsupported"),
        _ => bail!("Invalid post transform: {}", s),
    }
}

fn parse_node_mode(s: &str) -> TractResult<Option<Cmp>> {
    match s {
        "BRANCH_LEQ" => Ok(Some(Cmp::LessEqual)),
        "BRANCH_LT" => Ok(Some(Cmp::Less)),
        "BRANCH_GTE" => Ok(Some(Cmp::GreaterEqual)),
        "BRANCH_GT" => Ok(Some(Cmp::Greater)),
        "BRANCH_EQ" => Ok(Some(Cmp::Equal)),
        "BRANCH_NEQ" => Ok(Some(Cmp::NotEqual)),
        "LEAF" => Ok(None),
        _ => bail!("Unsupported mode node: {}", s),
    }
}

fn get_vec_attr<'a, T>(node: &'a NodeProto, attr: &str, n: usize) -> TractResult<Vec<T>>
where
    T: AttrTVecType<'a>,
{
    let vec = node.get_attr_vec(attr)?;
    node.expect_attr(attr, vec.len() == n, || {
        format!("length {}, got {}", vec.len(), n)
    })?;
    Ok(vec)
}

fn get_vec_attr_opt<'a, T>(node: &'a NodeProto, attr: &str, n: usize) -> TractResult<Option<Vec<T>>>
where
    T: AttrTVecType<'a>,
{
    match node.get_attr_opt_vec(attr)? {
        Some(vec) => {
            node.expect_attr(attr, vec.len() == n, || {
                format!("length {} (or undefined), got {}", vec.len(), n)
            })?;
            Ok(Some(vec))
        }
        None => Ok(None),
    }
}

fn parse_class_data(node: &NodeProto) -> TractResult<Arc<Tensor>> {
    let ints = node.get_attr_opt_slice::<i64>("classlabels_int64s")?;
    let strs = node.get_attr_opt_tvec::<&str>("classlabels_strings")?;
    match (ints, strs) {
        (Some(n), None) => Ok(rctensor1(n)),
        (None, Some(n)) => Ok(rctensor1(
            &n.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        )),
        (None, None) => bail!("cannot find neither 'classlabels_int64s' not 'classlabels_strings'"),
        (Some(_), Some(_)) => {
            bail!("only one of 'classlabels_int64s' and 'classlabels_strings' can be set")
        }
    }
}

/// One tree node as the attributes give it: (tree, node, feature, true, false, value, NaN goes
/// true, mode; `None` for a leaf).
type Node = (usize, usize, usize, usize, usize, f32, bool, Option<Cmp>);

fn parse_nodes_data(node: &NodeProto) -> TractResult<TreeEnsemble> {
    let n_classes = parse_class_data(node)?.len();
    let n_nodes = node.get_attr_slice::<i64>("nodes_featureids")?.len();
    node.expect_attr("nodes_featureids", n_nodes != 0, "at least one node")?;
    let node_ids = get_vec_attr::<usize>(node, "nodes_nodeids", n_nodes)?;
    let tree_ids = get_vec_attr::<usize>(node, "nodes_treeids", n_nodes)?;
    let feature_ids = get_vec_attr::<usize>(node, "nodes_featureids", n_nodes)?;
    let true_ids = get_vec_attr::<usize>(node, "nodes_truenodeids", n_nodes)?;
    let false_ids = get_vec_attr::<usize>(node, "nodes_falsenodeids", n_nodes)?;
    let node_values = get_vec_attr::<f32>(node, "nodes_values", n_nodes)?;
    let nan_is_true = get_vec_attr_opt::<bool>(node, "nodes_missing_value_tracks_true", n_nodes)?
        .unwrap_or_else(|| iter::repeat_n(false, n_nodes).collect());
    let node_modes: Vec<Option<Cmp>> = get_vec_attr::<&str>(node, "nodes_modes", n_nodes)?
        .iter()
        .map(|s| parse_node_mode(s))
        .collect::<TractResult<_>>()?;
    let max_used_features = feature_ids.iter().max().copied().unwrap_or(0);
    let aggregate_fn = tract_onnx_opl::ml::tree_ensemble_classifier::parse_aggregate("SUM")?;

    let n_leaves = node.get_attr_slice::<i64>("class_ids")?.len();
    node.expect_attr("class_ids", n_leaves != 0, "at least one leaf")?;
    let leaf_node_ids = get_vec_attr::<usize>(node, "class_nodeids", n_leaves)?;
    let leaf_tree_ids = get_vec_attr::<usize>(node, "class_treeids", n_leaves)?;
    let leaf_class_ids = get_vec_attr::<usize>(node, "class_ids", n_leaves)?;
    let leaf_weights = get_vec_attr::<f32>(node, "class_weights", n_leaves)?;

    let inc_by_1 = |x: &[usize]| {
        x.windows(2)
            .all(|w| matches!(w, [a, b] if b == a || *b == a + 1))
    };
    node.expect_attr(
        "nodes_treeids",
        inc_by_1(&tree_ids),
        "tree ids to increase by 1",
    )?;
    node.expect_attr(
        "class_treeids",
        inc_by_1(&leaf_tree_ids),
        "leaf tree ids to increase by 1",
    )?;
    node.expect_attr(
        "nodes_treeids",
        tree_ids.first() == Some(&0),
        "tree ids to start from 0",
    )?;
    node.expect_attr(
        "class_treeids",
        leaf_tree_ids.first() == Some(&0),
        "leaf tree ids to start from 0",
    )?;
    node.expect(
        leaf_tree_ids.last() == tree_ids.last(),
        "mismatching # of trees (nodes/leaves)",
    )?;

    let mut tree_nodes: Vec<Node> = (0..n_nodes)
        .zip(tree_ids)
        .zip(node_ids)
        .zip(feature_ids)
        .zip(true_ids)
        .zip(false_ids)
        .zip(node_values)
        .zip(nan_is_true)
        .zip(node_modes)
        .map(|((((((((_, t), n), f), tr), fa), v), nan), m)| (t, n, f, tr, fa, v, nan, m))
        .collect();
    tree_nodes.sort_by_key(|n| (n.0, n.1));
    // (tree, node, class, weight)
    let mut leaf_rows: Vec<(usize, usize, usize, f32)> = leaf_tree_ids
        .into_iter()
        .zip(leaf_node_ids)
        .zip(leaf_class_ids)
        .zip(leaf_weights)
        .map(|(((t, n), c), w)| (t, n, c, w))
        .collect();
    leaf_rows.sort_by_key(|l| (l.0, l.1));
    let mut leaf_rows = leaf_rows.into_iter().peekable();

    let mut trees: Vec<u32> = vec![];
    let mut nodes: Vec<u32> = vec![];
    let mut leaves: Vec<u32> = vec![];
    let mut current_tree = None;
    let mut tree_base = 0u32;
    for (tree_id, node_id, feature, true_id, false_id, value, nan_true, mode) in tree_nodes {
        if Some(tree_id) != current_tree {
            current_tree = Some(tree_id);
            tree_base = nodes.len() as u32 / 5;
            trees.push(tree_base);
        }
        if let Some(mode) = mode {
            nodes.extend([
                feature as u32,
                true_id as u32 + tree_base,
                false_id as u32 + tree_base,
                value.to_bits(),
                (0x0100u32 * nan_true as u32) | mode as u32,
            ]);
        } else {
            let first = leaves.len() as u32 / 2;
            while let Some((_, _, class, weight)) =
                leaf_rows.next_if(|l| l.0 == tree_id && l.1 == node_id)
            {
                leaves.push(class as u32);
                leaves.push(weight.to_bits());
            }
            nodes.extend([first, leaves.len() as u32 / 2, 0, 0, 0]);
        }
    }
    let trees = rctensor1(&trees);
    let nodes = tensor1(&nodes)
        .into_shape(&[nodes.len() / 5, 5])?
        .into_arc_tensor();
    let leaves = tensor1(&leaves)
        .into_shape(&[leaves.len() / 2, 2])?
        .into_arc_tensor();
    let data = TreeEnsembleData {
        trees,
        nodes,
        leaves,
    };
    TreeEnsemble::build(data, max_used_features, n_classes, aggregate_fn)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct TreeEnsembleClassifier {
    ensemble: TreeEnsemble,
    class_labels: Arc<Tensor>,
    base_class_score: Option<Arc<Tensor>>,
    post_transform: Option<PostTransform>,
    binary_result_layout: bool,
}

fn one(outlets: &[OutletId]) -> TractResult<OutletId> {
    match outlets {
        [o] => Ok(*o),
        _ => bail!("expected one outlet, got {}", outlets.len()),
    }
}

impl Expansion for TreeEnsembleClassifier {
    fn name(&self) -> StaticName {
        "TreeEnsembleClassifier".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "binary result layout kludge: {:?}",
            self.binary_result_layout
        )])
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let ([input], [labels, scores]) = (inputs, outputs) else {
            bail!(
                "TreeEnsembleClassifier takes one input and gives two outputs, not {} and {}",
                inputs.len(),
                outputs.len()
            );
        };
        s.equals(&labels.datum_type, self.class_labels.datum_type())?;
        s.equals(&scores.datum_type, DatumType::F32)?;
        s.equals(&labels.rank, 1)?;
        s.equals(&scores.rank, 2)?;
        s.equals(&labels.shape[0], &input.shape[0])?;
        s.equals(&scores.shape[0], &input.shape[0])?;
        if self.binary_result_layout {
            s.equals(&scores.shape[1], 2.to_dim())?;
        } else {
            s.equals(&scores.shape[1], self.class_labels.len().to_dim())?;
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_core::ops::nn::{Reduce, Reducer};
        let mut scores = one(&model.wire_node(
            format!("{prefix}.classifier"),
            tract_onnx_opl::ml::tree_ensemble_classifier::TreeEnsembleClassifier {
                ensemble: self.ensemble.clone(),
            },
            inputs,
        )?)?;
        if let Some(base_class_score) = self.base_class_score.as_deref() {
            let base = base_class_score
                .clone()
                .broadcast_into_rank(2)?
                .into_arc_tensor();
            let base = model.add_const(prefix.to_string() + ".base", base)?;
            scores = one(&model.wire_node(
                format!("{prefix}.base_class_score"),
                tract_core::ops::math::add(),
                &[scores, base],
            )?)?;
        }
        match self.post_transform {
            None => (),
            Some(PostTransform::Softmax) => {
                scores = one(&ops::nn::LayerSoftmax::new(1, false).wire(
                    &format!("{prefix}.softmax"),
                    model,
                    &[scores],
                )?)?;
            }
            Some(PostTransform::Logistic) => {
                scores = one(&model.wire_node(
                    format!("{prefix}.logistic"),
                    tract_core::ops::nn::sigmoid(),
                    &[scores],
                )?)?;
            }
        }
        let processed_scores = scores;
        if self.binary_result_layout {
            scores = one(&model.wire_node(
                format!("{prefix}.binary_result_slice"),
                ops::array::Slice::new(1, 0, 1),
                &[scores],
            )?)?;
            let one_ = model.add_const(prefix.to_string() + ".one", rctensor2(&[[1f32]]))?;
            let complement = one(&model.wire_node(
                format!("{prefix}.binary_result_complement"),
                tract_core::ops::math::sub(),
                &[one_, scores],
            )?)?;
            scores = one(&model.wire_node(
                format!("{prefix}.binary_result"),
                ops::array::TypedConcat::new(1),
                &[complement, scores],
            )?)?;
        }
        let winners = model.wire_node(
            format!("{prefix}.argmax"),
            Reduce::new(tvec!(1), Reducer::ArgMax(false)),
            &[processed_scores],
        )?;
        let reduced = model.wire_node(
            format!("{prefix}.rm_axis"),
            tract_core::ops::change_axes::AxisOp::Rm(1),
            &winners,
        )?;
        let casted = model.wire_node(
            format!("{prefix}.casted"),
            tract_core::ops::cast::cast(i32::datum_type()),
            &reduced,
        )?;
        let labels = one(&model.wire_node(
            format!("{prefix}.labels"),
            tract_onnx_opl::ml::DirectLookup::new(
                self.class_labels.clone(),
                Tensor::zero_dt(self.class_labels.datum_type(), &[])?.into_arc_tensor(),
            )?,
            &casted,
        )?)?;
        Ok(tvec!(labels, scores))
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(2)
    }
}
