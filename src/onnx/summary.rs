//! What `advx info` shows of a model: producer, opset, inputs, outputs, ops
//! and parameter count, read without trusting any size in the file.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use anyhow::{Result, bail};

use super::proto::type_proto;
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
