//! The layers of a model: the path of nodes from its input to its first
//! output (the class scores), each with the static shape of what it reads.
//!
//! The product of per-layer bounds bounds a composition, so the path must be
//! a chain: every node on it reads exactly one tensor that depends on the
//! input (its *data*); everything else it reads is a constant (weights,
//! shapes, axes). A node that joins two paths from the input (a residual
//! `Add`, a `Concat` of branches) is refused: `x ↦ g(x) + h(x)` is bounded
//! by `L(g) + L(h)`, a sum over paths, not the product a table of layers
//! shows. Nodes off the path (a second output, say probabilities beside
//! logits) cannot change the first output and are left out.
//!
//! Shapes come from the derivative rules' shape inference
//! ([`crate::grad::ops`]), run along the path from the input's static shape
//! (`[N, 1, 28, 28]`); the batch stays symbolic, so reshapes that name it
//! resolve as in a backward graph.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};

use super::layers;
use crate::grad::{Node, TensorInfo, constant_info, constant_value};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::shape::{self, Shape};
use crate::onnx::{self, GraphProto, ModelProto, NodeProto};

/// One node on the path, with what is known of its inputs.
pub struct Step<'g> {
    /// The node; its data input carries its shape, its constant inputs
    /// their values.
    pub node: Node<'g>,
    /// The input slot of the data.
    pub data: usize,
    /// The shape of the output the path goes on with.
    pub output: Shape,
    /// The model's default-domain opset (Softmax's axis semantics change at 13).
    pub opset: i64,
}

impl Step<'_> {
    /// The shape of the data input.
    pub fn input(&self) -> &Shape {
        &self.node.inputs[self.data].as_ref().expect("the data input is present").shape
    }
}

/// Ops whose outputs are facts about shapes, not functions of values.
const SHAPE_OPS: &[&str] = &["Shape", "Size"];

/// The chain of nodes from the model's data input to its first output.
pub fn walk(model: &ModelProto) -> Result<Vec<Step<'_>>> {
    // The checks `grad::validate` makes, for the nodes on the path: a model
    // may hold ops off it that advx has no rule for.
    let opset = onnx::validate::structure(model)?;
    let graph = onnx::graph(model);
    let constants = constants(graph)?;
    let input = graph
        .input
        .iter()
        .find(|i| !constants.contains_key(i.name()))
        .context("the model has no data input (every input is an initializer)")?;
    let output = graph.output.first().context("the model has no outputs")?.name();
    let path = path(graph, input.name(), output)?;
    let (_, mut shape) = shape::of_value_info(input)?;
    shape::per_example(&shape).with_context(|| format!("the model's input '{}'", input.name()))?;
    let mut steps = Vec::with_capacity(path.len());
    for (proto, data, out) in path {
        let node = Node { proto, inputs: inputs(proto, data, &shape, &constants)?, outputs: vec![] };
        shape = infer(&node, out, opset)?;
        steps.push(Step { node, data, output: shape.clone(), opset });
    }
    Ok(steps)
}

/// Walks back from `output` to `input`: each node with the slot of its one
/// data input and the index of the output the path leaves it by, in
/// forward order.
fn path<'g>(graph: &'g GraphProto, input: &'g str, output: &'g str) -> Result<Vec<(&'g NodeProto, usize, usize)>> {
    let signal = depends_on_input(graph, input);
    if !signal.contains(output) {
        bail!("the model's output '{output}' does not depend on its input '{input}'");
    }
    let producers: HashMap<&str, &NodeProto> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let mut path = Vec::new();
    let mut tensor = output;
    while tensor != input {
        let node: &'g NodeProto =
            producers.get(tensor).copied().with_context(|| format!("no node produces '{tensor}'"))?;
        let data: Vec<usize> = (0..node.input.len()).filter(|&i| signal.contains(node.input[i].as_str())).collect();
        let &[slot] = data.as_slice() else {
            bail!(
                "{} reads the input along {} paths, so the model is not a chain; the product of layer \
                 bounds bounds only a chain of layers (joining paths needs the sum over them)",
                onnx::describe(node),
                data.len()
            );
        };
        layers::check_supported(node)?;
        let out = node.output.iter().position(|o| o == tensor).expect("the producer has the tensor as an output");
        path.push((node, slot, out));
        tensor = node.input[slot].as_str();
    }
    path.reverse();
    Ok(path)
}

/// Every tensor whose value depends on the input, nodes taken in the graph's
/// (topological) order.
fn depends_on_input<'g>(graph: &'g GraphProto, input: &'g str) -> HashSet<&'g str> {
    let mut signal = HashSet::from([input]);
    for node in &graph.node {
        if !SHAPE_OPS.contains(&node.op_type()) && node.input.iter().any(|i| signal.contains(i.as_str())) {
            signal.extend(node.output.iter().map(String::as_str));
        }
    }
    signal
}

/// A node's inputs: the data with its shape, the rest constants.
fn inputs(
    proto: &NodeProto,
    data: usize,
    shape: &Shape,
    constants: &HashMap<String, TensorInfo>,
) -> Result<Vec<Option<TensorInfo>>> {
    let float = DataType::Float as i32;
    let inputs = proto.input.iter().enumerate().map(|(i, name)| {
        if name.is_empty() {
            Ok(None)
        } else if i == data {
            Ok(Some(TensorInfo { name: name.clone(), elem: float, shape: shape.clone(), value: None, ints: None }))
        } else {
            constants.get(name).cloned().map(Some).with_context(|| {
                format!(
                    "{} reads '{name}', which is neither its data nor a constant (initializer or Constant node)",
                    onnx::describe(proto)
                )
            })
        }
    });
    inputs.collect()
}

/// The shape of output `out` of a node, by its derivative rule's
/// inference, after the node is checked against the rule's signature; a
/// shape too large to bound is refused as the engine refuses it.
fn infer(node: &Node, out: usize, opset: i64) -> Result<Shape> {
    let rule =
        crate::grad::ops::lookup(node.op()).with_context(|| format!("no shape inference for {}", node.describe()))?;
    rule.signature.check(node.proto, opset)?;
    let shapes = (rule.infer)(node).with_context(|| format!("shape inference for {}", node.describe()))?;
    let shape = shapes.get(out).cloned().with_context(|| format!("{} has no output {out}", node.describe()))?;
    shape::per_example(&shape).with_context(|| format!("{} would make {}", node.describe(), shape::show(&shape)))?;
    Ok(shape)
}

/// Initializers and the outputs of Constant nodes, with their values.
fn constants(graph: &GraphProto) -> Result<HashMap<String, TensorInfo>> {
    let mut map = HashMap::new();
    for init in &graph.initializer {
        map.insert(init.name().to_string(), constant_info(init.name(), init)?);
    }
    for node in graph.node.iter().filter(|n| n.op_type() == "Constant") {
        let name = node.output.first().with_context(|| format!("{} has no output", onnx::describe(node)))?;
        map.insert(name.clone(), constant_info(name, &constant_value(node)?)?);
    }
    Ok(map)
}
