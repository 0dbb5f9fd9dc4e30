//! The reverse sweep: from the objective's seed back to the requested
//! tensors, one derivative rule per node.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};

use super::emit::Emit;
use super::graph::{Node, TensorInfo, Tensors, constant_info, constant_value};
use super::names;
use super::objective::{Forward, Objective};
use super::ops;
use crate::onnx::builder::{Elem, GraphBuilder, value_info};
use crate::onnx::shape::Shape;
use crate::onnx::{self, ModelProto, NodeProto};

/// The least opset advx differentiates; earlier ones coerce Softmax inputs to 2-D.
const MIN_OPSET: i64 = 13;

/// Exports the backward graph of `model` for `objective`, with gradients for
/// the model's input (per-sample objectives) or every float initializer
/// (training objectives, whose weights also become overridable inputs).
pub fn export(model: &ModelProto, objective: &Objective) -> Result<ModelProto> {
    let graph = onnx::graph(model);
    let wrt: Vec<String> = if objective.trains_weights() {
        float_initializers(model)
    } else {
        let input = data_inputs(model).into_iter().next().context("the model has no input")?;
        vec![input]
    };
    let weights_as_inputs = objective.trains_weights();
    export_wrt(model, objective, &wrt, weights_as_inputs)
        .with_context(|| format!("cannot differentiate graph '{}' for objective {objective}", graph.name()))
}

/// The model's inputs that are not initializers.
pub fn data_inputs(model: &ModelProto) -> Vec<String> {
    let graph = onnx::graph(model);
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    graph.input.iter().map(|i| i.name().to_string()).filter(|n| !inits.contains(n.as_str())).collect()
}

/// Names of the float initializers that are weights: all but the running
/// statistics of BatchNormalization, which training does not descend on.
pub fn float_initializers(model: &ModelProto) -> Vec<String> {
    let graph = onnx::graph(model);
    let float = crate::onnx::proto::tensor_proto::DataType::Float as i32;
    let statistics: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "BatchNormalization")
        .flat_map(|n| n.input.iter().skip(3).take(2).map(String::as_str))
        .collect();
    graph
        .initializer
        .iter()
        .filter(|t| t.data_type() == float && !statistics.contains(t.name()))
        .map(|t| t.name().to_string())
        .collect()
}

/// Exports the backward graph with gradients for the named tensors.
/// `weights_as_inputs` lists the initializers among them as graph inputs
/// too, so that a trainer can feed new values on every step.
pub fn export_wrt(
    model: &ModelProto,
    objective: &Objective,
    wrt: &[String],
    weights_as_inputs: bool,
) -> Result<ModelProto> {
    let graph = onnx::graph(model);
    let opset = onnx::opset(model).unwrap_or(MIN_OPSET);
    if opset < MIN_OPSET {
        bail!("the model uses opset {opset}; advx differentiates opset {MIN_OPSET} and later");
    }
    let (mut tensors, nodes) = analyse(graph)?;
    let producers: HashMap<&str, &NodeProto> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();

    let mut b = GraphBuilder::new();
    copy_forward(&mut b, graph, wrt, weights_as_inputs);
    let producer = |name: &str| producers.get(name).copied();
    let fwd = Forward { graph, tensors: &tensors, producer: &producer };
    let attached = objective.attach(&mut b, &fwd)?;
    for name in wrt {
        if tensors.get(name).is_none_or(|t| !t.is_float()) {
            bail!("'{name}' is not a float tensor of the graph");
        }
    }

    let needs = needs_grad(&nodes, wrt);
    let mut grads: HashMap<String, Vec<String>> = HashMap::new();
    grads.entry(attached.seed.0.clone()).or_default().push(attached.seed.1.clone());
    sweep(&mut b, &nodes, &needs, &mut grads)?;

    b.output(names::LOSS, Elem::F32, &attached.loss_shape);
    let loss_node = rename(&attached.loss, names::LOSS);
    b.push(loss_node);
    for name in wrt {
        let info = tensors.0.remove(name).expect("checked above");
        let total = total_grad(&mut b, grads.remove(name).unwrap_or_default(), name);
        b.push(rename(&total, &names::grad(name)));
        b.output(&names::grad(name), Elem::F32, &info.shape);
    }
    prune(&mut b, graph.output.iter().map(|o| o.name()));
    let mut out =
        b.into_model(graph.name(), opset.max(onnx::OPSET), &format!("advx backward graph, objective {objective}"));
    out.graph.as_mut().expect("just built").output.splice(0..0, graph.output.iter().cloned());
    Ok(out)
}

/// A forward node with its derivative rule (`None` for Constants).
type RuledNode<'g> = (Node<'g>, Option<&'static ops::Rule>);

/// Infers every tensor's shape and pairs each node with its rule.
fn analyse(graph: &onnx::GraphProto) -> Result<(Tensors, Vec<RuledNode<'_>>)> {
    let mut tensors = Tensors::of_graph(graph)?;
    let mut nodes = Vec::with_capacity(graph.node.len());
    for proto in &graph.node {
        if proto.op_type() == "Constant" {
            let info = constant_info(&proto.output[0], &constant_value(proto)?)?;
            tensors.0.insert(info.name.clone(), info.clone());
            nodes.push((Node { proto, inputs: vec![], outputs: vec![info] }, None));
            continue;
        }
        let rule = ops::lookup(proto.op_type()).with_context(|| {
            format!(
                "{} uses op {}, which advx cannot differentiate (supported: {})",
                onnx::describe(proto),
                proto.op_type(),
                ops::supported().join(", ")
            )
        })?;
        if !proto.domain().is_empty() && proto.domain() != "ai.onnx" {
            bail!(
                "{} is in domain '{}'; advx differentiates standard ONNX ops only",
                onnx::describe(proto),
                proto.domain()
            );
        }
        let inputs = proto
            .input
            .iter()
            .map(|name| {
                if name.is_empty() {
                    return Ok(None);
                }
                tensors.get(name).cloned().map(Some).with_context(|| {
                    format!(
                        "{} reads '{name}', which no earlier node, input or initializer defines",
                        onnx::describe(proto)
                    )
                })
            })
            .collect::<Result<Vec<Option<TensorInfo>>>>()?;
        let mut node = Node { proto, inputs, outputs: vec![] };
        let shapes: Vec<Shape> =
            (rule.infer)(&node).with_context(|| format!("shape inference for {}", node.describe()))?;
        for (name, shape) in proto.output.iter().zip(shapes) {
            if !name.is_empty() {
                tensors.add_float(name, shape);
                node.outputs.push(tensors.get(name).cloned().expect("just added"));
            }
        }
        nodes.push((node, Some(rule)));
    }
    Ok((tensors, nodes))
}

/// Copies inputs, initializers and nodes of the forward graph.
fn copy_forward(b: &mut GraphBuilder, graph: &onnx::GraphProto, wrt: &[String], weights_as_inputs: bool) {
    let declared: HashSet<&str> = graph.input.iter().map(|i| i.name()).collect();
    for input in &graph.input {
        b.reserve(input.name());
        b.inputs.push(input.clone());
    }
    for init in &graph.initializer {
        b.reserve(init.name());
        if weights_as_inputs && wrt.iter().any(|w| w == init.name()) && !declared.contains(init.name()) {
            let dims = onnx::shape::fixed(&init.dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
            b.inputs.push(value_info(init.name(), Elem::F32, &dims));
        }
        b.initializers.push(init.clone());
    }
    for node in &graph.node {
        b.push(node.clone());
    }
}

/// Tensors that depend on the requested ones, and so carry gradients.
fn needs_grad(nodes: &[RuledNode], wrt: &[String]) -> HashSet<String> {
    let mut needs: HashSet<String> = wrt.iter().cloned().collect();
    for (node, rule) in nodes {
        if rule.is_some() && node.proto.input.iter().any(|i| needs.contains(i)) {
            needs.extend(node.outputs.iter().filter(|o| o.is_float()).map(|o| o.name.clone()));
        }
    }
    needs
}

/// Walks the nodes backwards, accumulating input gradients.
fn sweep(
    b: &mut GraphBuilder,
    nodes: &[RuledNode],
    needs: &HashSet<String>,
    grads: &mut HashMap<String, Vec<String>>,
) -> Result<()> {
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for (node, _) in nodes {
        for input in node.proto.input.iter().filter(|i| !i.is_empty()) {
            *readers.entry(input.as_str()).or_default() += 1;
        }
    }
    for (node, rule) in nodes.iter().rev() {
        let Some(rule) = rule else { continue };
        if !node.proto.input.iter().any(|i| needs.contains(i)) {
            continue;
        }
        let mut dy: Vec<Option<String>> =
            node.proto.output.iter().map(|o| grads.remove(o).map(|g| sum(b, g))).collect();
        if dy.iter().all(Option::is_none) {
            continue;
        }
        let mut emit = Emit { b };
        let relu = relu_under_max_pool(node, nodes, &readers, grads);
        if let (Some(_), Some(d)) = (relu, &dy[0]) {
            let zero = emit.scalar(0.0);
            let positive = emit.op("Greater", &[&node.outputs[0].name, &zero], vec![]);
            dy[0] = Some(emit.mask(d, &positive));
        }
        let dx =
            (rule.backward)(&mut emit, node, &dy).with_context(|| format!("differentiating {}", node.describe()))?;
        for (input, grad) in node.proto.input.iter().zip(dx) {
            // Fused: the pooled gradient lands on the Relu's input, and the
            // Relu, left without an output gradient, is skipped.
            let input = relu.map_or(input, |r| &r.proto.input[0]);
            if let Some(grad) = grad.filter(|_| needs.contains(input)) {
                grads.entry(input.clone()).or_default().push(grad);
            }
        }
    }
    Ok(())
}

/// The Relu feeding a MaxPool, when nothing else reads its output (no other
/// node, no objective seed). Max commutes with Relu, `max(relu(x)) =
/// relu(max(x))`, with the same first maximum wherever the max is positive,
/// so the pair's gradient is dY masked by `Y > 0` at the pooled size and
/// pooled straight back onto the Relu's input. That replaces the Relu's
/// full-size mask (three passes over 4x as many elements behind a 2x2 pool;
/// on the conv net, 57 -> 54 ms of CPU time at batch 256 on one thread).
fn relu_under_max_pool<'n, 'g>(
    node: &Node,
    nodes: &'n [RuledNode<'g>],
    readers: &HashMap<&str, usize>,
    grads: &HashMap<String, Vec<String>>,
) -> Option<&'n Node<'g>> {
    if node.op() != "MaxPool" {
        return None;
    }
    let x = node.proto.input.first()?;
    if readers.get(x.as_str()) != Some(&1) || grads.contains_key(x) {
        return None;
    }
    nodes.iter().map(|(n, _)| n).find(|n| n.op() == "Relu" && n.proto.output.first() == Some(x))
}

fn sum(b: &mut GraphBuilder, mut terms: Vec<String>) -> String {
    if terms.len() == 1 {
        return terms.pop().expect("one term");
    }
    let refs: Vec<&str> = terms.iter().map(String::as_str).collect();
    b.op("Sum", &refs, vec![])
}

/// The summed gradient of a requested tensor, or zeros when nothing reaches it.
fn total_grad(b: &mut GraphBuilder, terms: Vec<String>, name: &str) -> String {
    if terms.is_empty() {
        tracing::warn!("no gradient reaches '{name}'; its gradient is zero");
        return Emit { b }.zeros_like(name);
    }
    sum(b, terms)
}

/// Drops the nodes and initializers no output depends on. Rules emit the
/// gradients of every input (a MatMul's weight gradient, say) and ORT does
/// not remove unused nodes, so without this an attack graph would pay for
/// weight gradients it never reads.
fn prune<'a>(b: &mut GraphBuilder, model_outputs: impl Iterator<Item = &'a str>) {
    let mut needed: HashSet<String> = b.outputs.iter().map(|o| o.name().to_string()).collect();
    needed.extend(model_outputs.map(str::to_string));
    let mut kept = Vec::with_capacity(b.nodes.len());
    for node in b.nodes.drain(..).rev() {
        if node.output.iter().any(|o| needed.contains(o)) {
            needed.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
            kept.push(node);
        }
    }
    kept.reverse();
    b.nodes = kept;
    let inputs: HashSet<String> = b.inputs.iter().map(|i| i.name().to_string()).collect();
    b.initializers.retain(|t| needed.contains(t.name()) || inputs.contains(t.name()));
}

/// An Identity node giving a tensor its public name.
fn rename(from: &str, to: &str) -> NodeProto {
    NodeProto {
        name: Some(format!("advx_output_{to}")),
        op_type: Some("Identity".into()),
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        ..Default::default()
    }
}
