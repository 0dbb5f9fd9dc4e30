//! What `advx info` shows of a model: producer, opset, inputs, outputs, ops
//! and parameter count, read without trusting any size in the file, and
//! every node output with its inferred shape.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use anyhow::{Result, bail};

use super::proto::type_proto;
use super::shape::Shape;
use super::{ModelProto, ValueInfoProto, graph, opset, shape, tensor};

/// A model's outline.
pub struct Summary {
    pub producer: String,
    pub opset: Option<i64>,
    /// Graph inputs that are not initializers, and graph outputs: `name type shape`.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// How many nodes of each op, by op name.
    pub ops: BTreeMap<String, usize>,
    /// The number of values in the initializers, or why it is unknown.
    pub parameters: Result<usize, String>,
}

impl Summary {
    pub fn of(model: &ModelProto) -> Summary {
        let graph = graph(model);
        let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        let mut ops = BTreeMap::new();
        for node in &graph.node {
            *ops.entry(node.op_type().to_string()).or_default() += 1;
        }
        Summary {
            producer: format!("{} {}", model.producer_name(), model.producer_version()).trim().to_string(),
            opset: opset(model),
            inputs: graph.input.iter().filter(|i| !initializers.contains(i.name())).map(describe).collect(),
            outputs: graph.output.iter().map(describe).collect(),
            ops,
            parameters: parameter_count(model).map_err(|e| format!("{e:#}")),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  producer:   {}", self.producer)?;
        writeln!(f, "  opset:      {}", self.opset.map_or("unknown".into(), |v| v.to_string()))?;
        for input in &self.inputs {
            writeln!(f, "  input:      {input}")?;
        }
        for output in &self.outputs {
            writeln!(f, "  output:     {output}")?;
        }
        let ops: Vec<String> =
            self.ops.iter().map(|(op, n)| if *n == 1 { op.clone() } else { format!("{op} x{n}") }).collect();
        writeln!(f, "  ops:        {}", ops.join(", "))?;
        match &self.parameters {
            Ok(n) => write!(f, "  parameters: {n}"),
            Err(why) => write!(f, "  parameters: unknown ({why})"),
        }
    }
}

/// A node output as `advx info` lists it: the names `units` and
/// `visualize` take as a layer.
pub struct Produced {
    pub name: String,
    /// The op of the node that makes it.
    pub op: String,
    /// The element type and shape inferred, `None` past where inference stopped.
    pub inferred: Option<(i32, Shape)>,
}

/// Every node output of a model in graph order (Constant nodes' values
/// left out), with what shape inference says of each, and why it stopped
/// when it did not reach the end.
pub struct Tensors {
    pub tensors: Vec<Produced>,
    pub stopped: Option<String>,
}

impl Tensors {
    /// The outputs of `model`'s nodes, each with its entry of `inferred`.
    pub fn of(model: &ModelProto, inferred: &HashMap<String, (i32, Shape)>, stopped: Option<String>) -> Tensors {
        let tensors = graph(model)
            .node
            .iter()
            .filter(|n| n.op_type() != "Constant")
            .flat_map(|n| n.output.iter().filter(|o| !o.is_empty()).map(move |o| (n, o)))
            .map(|(n, o)| Produced { name: o.clone(), op: n.op_type().to_string(), inferred: inferred.get(o).cloned() })
            .collect();
        Tensors { tensors, stopped }
    }
}

/// Names longer than this push their line's columns along rather than
/// widening every line.
const NAME_COLUMN: usize = 40;

impl fmt::Display for Tensors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  tensors:    {} node outputs in graph order, by name, op, type and shape", self.tensors.len())?;
        let width = self.tensors.iter().map(|t| t.name.chars().count()).filter(|&n| n <= NAME_COLUMN).max();
        let op_width = self.tensors.iter().map(|t| t.op.len()).max().unwrap_or(0);
        for t in &self.tensors {
            let inferred = t.inferred.as_ref().map_or_else(
                || "? (not inferred)".to_string(),
                |(elem, dims)| format!("{} {}", tensor::elem_name(*elem), shape::show(dims)),
            );
            let name = format!("{:<width$}", t.name, width = width.unwrap_or(0));
            write!(f, "\n    {name}  {:<op_width$}  {inferred}", t.op)?;
        }
        if let Some(why) = &self.stopped {
            write!(f, "\n  shapes:     inferred up to where advx stopped: {why}")?;
        }
        Ok(())
    }
}

/// The number of values in a model's initializers, every size checked:
/// a negative or oversized dimension is an error naming the tensor.
pub fn parameter_count(model: &ModelProto) -> Result<usize> {
    let mut total = 0usize;
    for t in &graph(model).initializer {
        let count: usize = tensor::dims(t)?.iter().product();
        let Some(sum) = total.checked_add(count) else { bail!("the parameter count overflows") };
        total = sum;
    }
    Ok(total)
}

/// `name type shape`, or what is wrong with the declaration.
fn describe(v: &ValueInfoProto) -> String {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return format!("{} (not a tensor)", v.name());
    };
    let dims = match shape::of_value_info(v) {
        Ok((_, dims)) => shape::show(&dims),
        Err(_) if t.shape.is_none() => "(no shape)".into(),
        Err(_) => "(a negative dimension)".into(),
    };
    format!("{} {} {dims}", v.name(), tensor::elem_name(t.elem_type()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx;
    use crate::onnx::builder::{Elem, GraphBuilder};
    use crate::onnx::shape::Dim;

    fn model() -> ModelProto {
        let mut b = GraphBuilder::new();
        b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        let w = b.const_f32("w", &ndarray::ArrayD::zeros(ndarray::IxDyn(&[3, 2])));
        let y = b.op("MatMul", &["x", &w], vec![]);
        let y = b.op("Relu", &[&y], vec![]);
        b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(2)]);
        b.into_model("m", 17, "")
    }

    #[test]
    fn outlines_a_model() {
        let text = Summary::of(&model()).to_string();
        assert!(text.contains("input:      x float32 [N, 3]"), "{text}");
        assert!(text.contains("ops:        MatMul, Relu"), "{text}");
        assert!(text.contains("parameters: 6"), "{text}");
    }

    #[test]
    fn lists_node_outputs_in_graph_order_unknown_shapes_marked() {
        let m = model();
        let relu = onnx::graph(&m).node[1].output[0].clone();
        let inferred = HashMap::from([(relu.clone(), (1, vec![Dim::Batch, Dim::Fixed(2)]))]);
        let text = Tensors::of(&m, &inferred, Some("it stopped".into())).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("2 node outputs"), "{text}");
        assert!(lines[1].contains("MatMul") && lines[1].ends_with("? (not inferred)"), "{text}");
        assert!(
            lines[2].starts_with(&format!("    {relu} ")) && lines[2].ends_with("Relu    float32 [N, 2]"),
            "{text}"
        );
        assert!(lines[3].ends_with("inferred up to where advx stopped: it stopped"), "{text}");
    }

    /// `advx info` summed the dims' product in i64: 2^32 * 2^32 wrapped (a
    /// panic in debug builds) and the count printed was wrong.
    #[test]
    fn a_parameter_count_that_cannot_be_known_says_why() {
        let mut m = model();
        m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 32, 1 << 32];
        let text = Summary::of(&m).to_string();
        assert!(text.contains("parameters: unknown (tensor 'w'") && text.contains("more elements than"), "{text}");
        m.graph.as_mut().unwrap().initializer[0].dims = vec![-3, 2];
        let text = Summary::of(&m).to_string();
        assert!(text.contains("parameters: unknown") && text.contains("negative dimension -3"), "{text}");
    }
}
