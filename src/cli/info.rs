//! `advx info`: what is inside an ONNX model.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::onnx::{self, shape};

/// Inputs, outputs, ops and parameter count of an ONNX model.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model.
    model: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let model = onnx::load(&args.model)?;
    let graph = onnx::graph(&model);
    println!("{}", args.model.display());
    println!("  producer:   {} {}", model.producer_name(), model.producer_version());
    println!("  opset:      {}", onnx::opset(&model).map_or("unknown".into(), |v| v.to_string()));
    let initializers: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    for input in graph.input.iter().filter(|i| !initializers.contains(i.name())) {
        println!("  input:      {} {}", input.name(), describe(input));
    }
    for output in &graph.output {
        println!("  output:     {} {}", output.name(), describe(output));
    }
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &graph.node {
        *ops.entry(node.op_type()).or_default() += 1;
    }
    let ops: Vec<String> =
        ops.iter().map(|(op, n)| if *n == 1 { op.to_string() } else { format!("{op} x{n}") }).collect();
    println!("  ops:        {}", ops.join(", "));
    println!("  parameters: {}", crate::train::parameter_count(&model));
    let manifest = crate::train::manifest::path_for(&args.model);
    if let Some(m) = crate::train::Manifest::for_model(&args.model) {
        println!(
            "  manifest:   {} (train error {:.2}%, test error {:.2}%)",
            manifest.display(),
            100.0 * m.train_error,
            100.0 * m.test_error
        );
    }
    Ok(())
}

fn describe(v: &onnx::ValueInfoProto) -> String {
    match shape::of_value_info(v) {
        Ok((elem, dims)) => format!("{} {}", elem_name(elem), shape::show(&dims)),
        Err(_) => "(not a tensor)".into(),
    }
}

fn elem_name(code: i32) -> &'static str {
    use onnx::proto::tensor_proto::DataType;
    match DataType::try_from(code) {
        Ok(DataType::Float) => "float32",
        Ok(DataType::Int64) => "int64",
        Ok(DataType::Double) => "float64",
        Ok(DataType::Int32) => "int32",
        Ok(DataType::Uint8) => "uint8",
        Ok(DataType::Bool) => "bool",
        _ => "other",
    }
}
