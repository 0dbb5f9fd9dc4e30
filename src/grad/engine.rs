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
use crate::onnx::proto::type_proto;
use crate::onnx::shape::{self, Dim, Shape};
use crate::onnx::{self, ModelProto, NodeProto, ValueInfoProto};

/// Why advx cannot differentiate a model that may well be valid ONNX: an op
/// it has no rule for, or an op from another domain than ONNX's own.
/// `advx info` tells this apart from an invalid model.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// Checks a model before anything is differentiated: its opsets and names
/// (`onnx::validate`), every node against its op's signature, and every
/// tensor's element type and shape, inferred rule by rule with the checks
/// ONNX makes (dims agree, axes and pads in range), against the outputs the
/// model declares. [`export`] runs the same checks first.
pub fn validate(model: &ModelProto) -> Result<()> {
    let opset = onnx::validate::structure(model)?;
    analyse(onnx::graph(model), opset).map(|_| ())
}

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
    backward(model, objective, wrt, weights_as_inputs, Returns::ModelAndLoss)
}

/// Exports a backward graph whose only outputs are the gradients of the
/// named tensors, with only the nodes, inputs and initializers they need:
/// ONNX Runtime computes every output of a graph it runs, and a caller that
/// wants `Jᵀ y` alone (the spectral norms) would pay for the forward pass
/// and the loss too.
pub fn export_gradients(model: &ModelProto, objective: &Objective, wrt: &[String]) -> Result<ModelProto> {
    backward(model, objective, wrt, false, Returns::GradientsOnly)
}

/// What a backward graph returns besides the gradients.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Returns {
    /// The model's own outputs, then the loss (what attacks and training read).
    ModelAndLoss,
    GradientsOnly,
}

fn backward(
    model: &ModelProto,
    objective: &Objective,
    wrt: &[String],
    weights_as_inputs: bool,
    returns: Returns,
) -> Result<ModelProto> {
    let graph = onnx::graph(model);
    let opset = onnx::validate::structure(model)?;
    let (tensors, nodes) = analyse(graph, opset)?;
    let producers: HashMap<&str, &NodeProto> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();

    let mut b = GraphBuilder::new();
    copy_forward(&mut b, graph, wrt, weights_as_inputs);
    let producer = |name: &str| producers.get(name).copied();
    let fwd = Forward { graph, tensors: &tensors, producer: &producer };
    let attached = objective.attach(&mut b, &fwd)?;
    let mut seen = HashSet::new();
    for name in wrt {
        if tensors.get(name).is_none_or(|t| !t.is_float()) {
            bail!("'{name}' is not a float tensor of the graph");
        }
        if !seen.insert(name) {
            bail!("a gradient for '{name}' is asked for twice");
        }
    }
    check_public_names(&tensors, objective, wrt)?;

    let needs = needs_grad(&nodes, wrt);
    let mut grads: HashMap<String, Vec<String>> = HashMap::new();
    grads.entry(attached.seed.0.clone()).or_default().push(attached.seed.1.clone());
    sweep(&mut b, &nodes, &needs, &mut grads)?;

    if returns == Returns::ModelAndLoss {
        b.output(names::LOSS, Elem::F32, &attached.loss_shape);
        rename(&mut b, &attached.loss, names::LOSS);
    }
    for name in wrt {
        let total = total_grad(&mut b, grads.remove(name).unwrap_or_default(), name);
        rename(&mut b, &total, &names::grad(name));
        let shape = tensors.get(name).map(|t| t.shape.clone()).unwrap_or_default();
        b.output(&names::grad(name), Elem::F32, &shape);
    }
    let model_outputs = graph.output.iter().filter(|_| returns == Returns::ModelAndLoss);
    prune(&mut b, model_outputs.clone().map(|o| o.name()), returns == Returns::GradientsOnly);
    // onnx.checker wants a graph name, which ONNX Runtime does not.
    let name = Some(graph.name()).filter(|n| !n.is_empty()).unwrap_or("advx_backward");
    let mut out = b.into_model(name, opset.max(onnx::OPSET), &format!("advx backward graph, objective {objective}"));
    let outputs = model_outputs.map(|o| with_shape(o, &tensors));
    out.graph.as_mut().expect("just built").output.splice(0..0, outputs);
    Ok(out)
}

/// The names a backward graph adds (its objective's input, `loss`, the
/// gradients) must not be names of the model's own tensors.
fn check_public_names(tensors: &Tensors, objective: &Objective, wrt: &[String]) -> Result<()> {
    let input = match objective {
        Objective::Xent | Objective::Train => Some(names::TARGET),
        Objective::Direction(_) => Some(names::DIRECTION),
        Objective::Reconstruction(_) => None,
    };
    let grads = wrt.iter().map(|w| names::grad(w));
    for name in input.into_iter().map(str::to_string).chain([names::LOSS.to_string()]).chain(grads) {
        if tensors.get(&name).is_some() {
            bail!("the model has a tensor named '{name}', a name the backward graph needs for its own input or output");
        }
    }
    Ok(())
}

/// A model output as the backward graph declares it: as the model does,
/// with the inferred shape when the model gives none.
fn with_shape(output: &ValueInfoProto, tensors: &Tensors) -> ValueInfoProto {
    let Some(t) = tensors.get(output.name()).filter(|_| shape::of_value_info(output).is_err()) else {
        return output.clone();
    };
    let mut v = value_info(output.name(), Elem::F32, &t.shape);
    if let Some(type_proto::Value::TensorType(declared)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        declared.elem_type = Some(t.elem);
    }
    v
}

/// A forward node with its derivative rule (`None` for Constants).
type RuledNode<'g> = (Node<'g>, Option<&'static ops::Rule>);

/// Every node of a model with what it reads and makes: shapes inferred and
/// shape computations folded (the batch kept symbolic), float constants with
/// their values, after the checks [`validate`] makes. The spectral analysis
/// walks the graph on these.
pub fn infer_nodes(model: &ModelProto) -> Result<(i64, Vec<Node<'_>>)> {
    let opset = onnx::validate::structure(model)?;
    let (_, nodes) = analyse(onnx::graph(model), opset)?;
    Ok((opset, nodes.into_iter().map(|(node, _)| node).collect()))
}

/// Infers every tensor's shape and pairs each node with its rule, checking
/// each node against its op's signature, the types of what it reads, and
/// the size of what it makes; then the model's declared outputs.
fn analyse(graph: &onnx::GraphProto, opset: i64) -> Result<(Tensors, Vec<RuledNode<'_>>)> {
    let mut tensors = Tensors::of_graph(graph)?;
    let mut nodes = Vec::with_capacity(graph.node.len());
    analyse_nodes(graph, opset, &mut tensors, &mut nodes)?;
    check_declared(graph, &tensors)?;
    Ok((tensors, nodes))
}

/// The node outputs of a model, in graph order, with the element types and
/// shapes [`validate`] infers, for `advx info` to list and the unit analysis
/// to read a layer's shape; Constant nodes' values are left out. Inference
/// stops at the first node it cannot follow (an op advx has no rule for,
/// an invalid node), whose error comes back beside the tensors before it.
pub fn infer_tensors(model: &ModelProto) -> (Vec<TensorInfo>, Option<anyhow::Error>) {
    let graph = onnx::graph(model);
    let mut nodes = Vec::new();
    let stopped = onnx::validate::structure(model)
        .and_then(|opset| analyse_nodes(graph, opset, &mut Tensors::of_graph(graph)?, &mut nodes))
        .err();
    let computed = nodes.into_iter().filter(|(_, rule)| rule.is_some()).flat_map(|(node, _)| node.outputs);
    (computed.collect(), stopped)
}

/// [`analyse`]'s walk over the nodes, each inferred node pushed as it goes.
fn analyse_nodes<'g>(
    graph: &'g onnx::GraphProto,
    opset: i64,
    tensors: &mut Tensors,
    nodes: &mut Vec<RuledNode<'g>>,
) -> Result<()> {
    for proto in &graph.node {
        if proto.op_type() == "Constant" && matches!(proto.domain(), "" | "ai.onnx") {
            let info = constant(proto, opset)?;
            tensors.0.insert(info.name.clone(), info.clone());
            nodes.push((Node { proto, inputs: vec![], outputs: vec![info] }, None));
            continue;
        }
        let rule = rule_of(proto)?;
        rule.signature.check(proto, opset)?;
        let inputs = inputs_of(proto, tensors)?;
        let elems: Vec<Option<i32>> = inputs.iter().map(|t| t.as_ref().map(|t| t.elem)).collect();
        let t = rule.signature.check_elems(proto, &elems)?;
        let mut node = Node { proto, inputs, outputs: vec![] };
        let shapes: Vec<Shape> =
            (rule.infer)(&node).with_context(|| format!("shape inference for {}", node.describe()))?;
        for (i, name) in proto.output.iter().enumerate().filter(|(_, name)| !name.is_empty()) {
            let shape =
                shapes.get(i).with_context(|| format!("shape inference for {} gave no output {i}", node.describe()))?;
            shape::per_example(shape)
                .with_context(|| format!("{} would make '{name}' of shape {}", node.describe(), shape::show(shape)))?;
            let info = TensorInfo::new(name, rule.signature.output_elem(proto, i, t)?, shape.clone());
            node.outputs.push(info);
        }
        if let Some(fold) = rule.fold.filter(|_| !node.outputs[0].is_float()) {
            node.outputs[0].ints = fold(&node).with_context(|| format!("folding {}", node.describe()))?;
        }
        for info in &node.outputs {
            tensors.0.insert(info.name.clone(), info.clone());
        }
        nodes.push((node, Some(rule)));
    }
    Ok(())
}

/// The rule for a node's op, or why advx cannot differentiate it.
fn rule_of(proto: &NodeProto) -> Result<&'static ops::Rule> {
    if !matches!(proto.domain(), "" | "ai.onnx") {
        return Err(Unsupported(format!(
            "{} is in domain '{}'; advx differentiates standard ONNX ops only",
            onnx::describe(proto),
            proto.domain()
        ))
        .into());
    }
    ops::lookup(proto.op_type()).ok_or_else(|| {
        Unsupported(format!(
            "{} uses op {}, which advx cannot differentiate (supported: {})",
            onnx::describe(proto),
            proto.op_type(),
            ops::supported().join(", ")
        ))
        .into()
    })
}

/// What a node reads, slot by slot (`None` for an omitted optional input),
/// each defined earlier.
fn inputs_of(proto: &NodeProto, tensors: &Tensors) -> Result<Vec<Option<TensorInfo>>> {
    let mut inputs = Vec::with_capacity(proto.input.len());
    for name in &proto.input {
        if name.is_empty() {
            inputs.push(None);
            continue;
        }
        let info = tensors.get(name).with_context(|| {
            format!("{} reads '{name}', which no earlier node, input or initializer defines", onnx::describe(proto))
        })?;
        inputs.push(Some(info.clone()));
    }
    Ok(inputs)
}

/// A Constant node's tensor, the node checked as any other.
fn constant(proto: &NodeProto, opset: i64) -> Result<TensorInfo> {
    ops::signature::CONSTANT.check(proto, opset)?;
    if proto.attribute.len() != 1 {
        bail!("{} has {} attributes; a Constant holds exactly one value", onnx::describe(proto), proto.attribute.len());
    }
    let value = constant_value(proto)?;
    constant_info(&proto.output[0], &value).with_context(|| onnx::describe(proto))
}

/// The model's declared outputs (and intermediate `value_info`) must agree
/// with what was inferred: the same element type, and the same rank and
/// fixed dimensions where the declaration gives them.
fn check_declared(graph: &onnx::GraphProto, tensors: &Tensors) -> Result<()> {
    for declared in graph.output.iter().chain(&graph.value_info) {
        let name = declared.name();
        let Some(inferred) = tensors.get(name) else {
            continue;
        };
        let Some(type_proto::Value::TensorType(t)) = declared.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            bail!("the model declares '{name}' as something other than a tensor");
        };
        if t.elem_type() != inferred.elem {
            bail!(
                "the model declares '{name}' of element type {}, but it holds {}",
                onnx::tensor::elem_name(t.elem_type()),
                onnx::tensor::elem_name(inferred.elem)
            );
        }
        let Ok((_, dims)) = shape::of_value_info(declared) else {
            continue;
        };
        let clash = |(d, i): (&Dim, &Dim)| matches!((d, i), (Dim::Fixed(a), Dim::Fixed(b)) if a != b);
        let agree = dims.len() == inferred.shape.len() && !dims.iter().zip(&inferred.shape).any(clash);
        if !agree {
            bail!(
                "the model declares '{name}' of shape {}, but it is {}",
                shape::show(&dims),
                shape::show(&inferred.shape)
            );
        }
    }
    Ok(())
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
        // The backward graph imports the default domain as "", which
        // onnx.checker does not take to cover nodes in "ai.onnx".
        let domain = node.domain.clone().filter(|d| d != "ai.onnx");
        b.push(NodeProto { domain, ..node.clone() });
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

/// Drops the nodes and initializers no output depends on, and the unread
/// inputs too when `inputs` says so. Rules emit the gradients of every input
/// (a MatMul's weight gradient, say) and ORT does not remove unused nodes,
/// so without this an attack graph would pay for weight gradients it never
/// reads.
fn prune<'a>(b: &mut GraphBuilder, model_outputs: impl Iterator<Item = &'a str>, inputs: bool) {
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
    if inputs {
        b.inputs.retain(|i| needed.contains(i.name()));
    }
    let inputs: HashSet<String> = b.inputs.iter().map(|i| i.name().to_string()).collect();
    b.initializers.retain(|t| needed.contains(t.name()) || inputs.contains(t.name()));
}

/// An Identity node giving a tensor its public name.
fn rename(b: &mut GraphBuilder, from: &str, to: &str) {
    let name = b.fresh(&format!("advx_output_{to}"));
    b.push(NodeProto {
        name: Some(name),
        op_type: Some("Identity".into()),
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        ..Default::default()
    });
}
