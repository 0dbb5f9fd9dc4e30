//! The floating-point work of one example through a graph: the
//! multiply-adds of its Gemm, MatMul, Conv and ConvTranspose nodes, which
//! are nearly all of it for these networks (elementwise ops, pools and
//! softmax add well under 1%, and are not counted). One FLOP per add and
//! per multiply: FLOPs = 2 × MACs.
//!
//! The shapes come from ONNX Runtime itself: the graph is run once at a
//! small batch with the inputs and outputs of those nodes exposed as graph
//! outputs, so the count holds for any graph ORT runs, backward graphs
//! with their transposed convolutions included.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, IxDyn};

use crate::onnx::proto::TensorProto;
use crate::onnx::{self, ModelProto, shape};
use crate::runtime::{Device, Feed, Runtime};
use crate::units::layer::with_output;

/// The ops counted.
const COUNTED: &[&str] = &["Gemm", "MatMul", "Conv", "ConvTranspose"];
/// The batch the shapes are measured at.
const BATCH: usize = 2;

/// Multiply-adds per example of one run of `model`.
pub fn macs_per_example(model: &ModelProto) -> Result<f64> {
    let graph = onnx::graph(model);
    let initializers: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name(), t)).collect();
    let inputs: Vec<_> = graph.input.iter().filter(|i| !initializers.contains_key(i.name())).collect();
    let counted: Vec<_> = graph.node.iter().filter(|n| COUNTED.contains(&n.op_type())).collect();
    if counted.is_empty() {
        return Ok(0.0);
    }
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    for (name, t) in &initializers {
        shapes.insert(name.to_string(), t.dims.iter().map(|&d| d.max(0) as usize).collect());
    }
    // Feeds: zeros of each input's shape, the batch dimension set to BATCH.
    let mut feeds_f32 = Vec::new();
    let mut feeds_i64 = Vec::new();
    for input in &inputs {
        let (elem, dims) = shape::of_value_info(input)?;
        let dims: Vec<usize> = dims.iter().map(|d| d.fixed().unwrap_or(BATCH)).collect();
        shapes.insert(input.name().to_string(), dims.clone());
        match elem {
            1 => feeds_f32.push((input.name().to_string(), ArrayD::<f32>::zeros(IxDyn(&dims)))),
            7 => feeds_i64.push((input.name().to_string(), ArrayD::<i64>::zeros(IxDyn(&dims)))),
            other => bail!("cannot count FLOPs: input {} has element type {other}", input.name()),
        }
    }
    let mut exposed = model.clone();
    for node in &counted {
        for tensor in node.input.iter().chain(&node.output) {
            if !tensor.is_empty() && !shapes.contains_key(tensor.as_str()) {
                exposed = with_output(&exposed, tensor);
            }
        }
    }
    let mut session = Runtime::get()?.load_proto(&exposed, "the graph whose FLOPs are counted", Device::Cpu)?;
    let feeds: Vec<(&str, Feed)> = feeds_f32
        .iter()
        .map(|(n, a)| (n.as_str(), Feed::F32(a.view())))
        .chain(feeds_i64.iter().map(|(n, a)| (n.as_str(), Feed::I64(a.view()))))
        .collect();
    let outputs = session.run(&feeds)?;
    for (name, array) in outputs.iter() {
        shapes.entry(name.to_string()).or_insert_with(|| array.shape().to_vec());
    }
    let mut total = 0.0;
    for node in counted {
        let dims = |i: usize| -> Result<&Vec<usize>> {
            let name = node.input.get(i).filter(|n| !n.is_empty()).context("a missing input")?;
            shapes.get(name.as_str()).with_context(|| format!("no shape for {name}"))
        };
        let out = shapes.get(node.output[0].as_str()).with_context(|| format!("no shape for {}", node.output[0]))?;
        let numel = |s: &[usize]| s.iter().product::<usize>() as f64;
        total += match node.op_type() {
            "Gemm" => {
                let a = dims(0)?;
                let k = if onnx::attr_int(node, "transA", 0) == 1 { a[0] } else { a[1] };
                numel(out) * k as f64
            }
            "MatMul" => numel(out) * *dims(0)?.last().context("a scalar MatMul input")? as f64,
            // Each output element: (input channels / group) × kernel MACs; W is [out, in/g, k...].
            "Conv" => numel(out) * numel(&dims(1)?[1..]),
            // Each input element scatters into (output channels / group) × kernel; W is [in, out/g, k...].
            "ConvTranspose" => numel(dims(0)?) * numel(&dims(1)?[1..]),
            _ => 0.0,
        };
    }
    Ok(total / BATCH as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_paper_network_by_hand() {
        // FC100-100-10: 784·100 + 100·100 + 100·10 multiply-adds forward.
        let path = crate::bench::locate(std::path::Path::new("models/mnist/fc100-100-10.onnx"));
        let model = onnx::load(&path).unwrap();
        assert_eq!(macs_per_example(&model).unwrap(), (784 * 100 + 100 * 100 + 100 * 10) as f64);
    }
}
