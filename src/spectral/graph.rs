//! The layers of a model as a graph: every node on a path from the model's
//! input to its first output (the class scores), in the graph's
//! (topological) order, each with the static shapes of what it reads and
//! where its data comes from.
//!
//! A node's *data* are the tensors it reads that depend on the input;
//! everything else it reads must be a constant (weights, shapes, axes), or
//! a shape computation folded to one. Most nodes have one data input and a
//! Lipschitz constant of their own. A node with several (a residual `Add`,
//! a `Concat` of branches) is a *join*, bounded by combining the bounds of
//! its inputs ([`super::Bounds::compose`]). Nodes off every path to the
//! first output (a second output, say probabilities beside logits) cannot
//! change it and are left out.
//!
//! Shapes come from the derivative rules' shape inference over the whole
//! graph ([`crate::grad::infer_nodes`]); the batch stays symbolic, so
//! reshapes that name it resolve as in a backward graph.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};

use super::layers;
use crate::grad::Node;
use crate::onnx::shape::Shape;
use crate::onnx::{self, GraphProto, ModelProto, NodeProto};

/// One node of the graph, with what is known of its inputs.
pub struct Step<'g> {
    /// The node; its data inputs carry their shapes, its constant inputs
    /// their values.
    pub node: Node<'g>,
    /// The input slot of the (first) data input.
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

/// Where a data input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The model's input.
    Input,
    /// The output of the vertex with this index.
    Vertex(usize),
}

/// A node of the graph with the sources of its data inputs.
pub struct Vertex<'g> {
    pub step: Step<'g>,
    /// Each data input: its slot and where it comes from.
    pub data: Vec<(usize, Source)>,
}

/// The graph from the model's data input to its first output, and the
/// index of the vertex that makes that output.
pub struct Walk<'g> {
    pub vertices: Vec<Vertex<'g>>,
    pub output: usize,
}

/// Ops whose outputs are facts about shapes, not functions of values.
const SHAPE_OPS: &[&str] = &["Shape", "Size"];

/// The vertices on the paths from the model's data input to its first
/// output.
pub fn walk(model: &ModelProto) -> Result<Walk<'_>> {
    let graph = onnx::graph(model);
    let (opset, nodes) = crate::grad::infer_nodes(model)?;
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let input = graph
        .input
        .iter()
        .find(|i| !initializers.contains(i.name()))
        .context("the model has no data input (every input is an initializer)")?
        .name();
    let output = graph.output.first().context("the model has no outputs")?.name();
    let signal = depends_on_input(graph, input);
    if !signal.contains(output) {
        bail!("the model's output '{output}' does not depend on its input '{input}'");
    }
    let needed = needed_for(graph, output);
    let mut made_by: HashMap<&str, usize> = HashMap::new();
    let mut vertices = Vec::new();
    for node in nodes {
        let proto = node.proto;
        if !needed.contains(&(proto as *const NodeProto)) || !proto.input.iter().any(|i| signal.contains(i.as_str())) {
            continue;
        }
        layers::check_supported(proto)?;
        let data = data_inputs(proto, input, &signal, &made_by)?;
        let leaves = proto.output.iter().position(|o| signal.contains(o.as_str()) && !o.is_empty()).unwrap_or(0);
        let shape = node.outputs.get(leaves).map(|o| o.shape.clone());
        let shape = shape.with_context(|| format!("{} has no inferred output", onnx::describe(proto)))?;
        for out in &proto.output {
            made_by.insert(out, vertices.len());
        }
        let step = Step { node, data: data[0].0, output: shape, opset };
        vertices.push(Vertex { step, data });
    }
    let output = *made_by.get(output).with_context(|| format!("no node on a path from the input makes '{output}'"))?;
    Ok(Walk { vertices, output })
}

/// The data inputs of a node on a path: slot and source, in slot order.
fn data_inputs(
    proto: &NodeProto,
    input: &str,
    signal: &HashSet<&str>,
    made_by: &HashMap<&str, usize>,
) -> Result<Vec<(usize, Source)>> {
    let mut data = Vec::new();
    for (slot, name) in proto.input.iter().enumerate().filter(|(_, n)| signal.contains(n.as_str())) {
        let source = match made_by.get(name.as_str()) {
            _ if name == input => Source::Input,
            Some(&v) => Source::Vertex(v),
            None => bail!("{} reads '{name}' before any node makes it", onnx::describe(proto)),
        };
        data.push((slot, source));
    }
    Ok(data)
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

/// The nodes the value of `output` is computed from, by address.
fn needed_for(graph: &GraphProto, output: &str) -> HashSet<*const NodeProto> {
    let producers: HashMap<&str, &NodeProto> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let mut needed = HashSet::new();
    let mut pending = vec![output];
    while let Some(tensor) = pending.pop() {
        if let Some(&node) = producers.get(tensor)
            && needed.insert(node as *const NodeProto)
        {
            pending.extend(node.input.iter().map(String::as_str).filter(|i| !i.is_empty()));
        }
    }
    needed
}
