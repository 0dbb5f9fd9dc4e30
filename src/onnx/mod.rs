//! The ONNX model format: protobuf types, loading and saving, tensors, and a
//! builder for the graphs advx writes (backward graphs, training graphs, the
//! paper's architectures).

pub mod builder;
pub mod shape;
pub mod summary;
pub mod tensor;
pub mod validate;

pub use builder::GraphBuilder;

use std::path::Path;

use anyhow::{Context, Result, bail};
use prost::Message;

/// Types generated from `proto/onnx.proto` by build.rs.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};

/// The opset advx writes its own graphs in, and the least a differentiated model
/// is lifted to; 17 is the last with ReduceMean's `axes` as an attribute and
/// the first with ScatterElements' `reduction`, both of which the rules use.
pub const OPSET: i64 = 17;

/// The IR version that goes with [`OPSET`].
pub const IR_VERSION: i64 = 8;

/// Reads and decodes an ONNX model, naming the file in every error.
pub fn load(path: impl AsRef<Path>) -> Result<ModelProto> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read ONNX model {}", path.display()))?;
    decode(&bytes).with_context(|| format!("{} is not a valid ONNX model", path.display()))
}

/// Decodes an ONNX model from bytes and checks that it has a graph.
pub fn decode(bytes: &[u8]) -> Result<ModelProto> {
    let model = ModelProto::decode(bytes).context("protobuf decoding failed")?;
    if model.graph.is_none() {
        bail!("the model has no graph");
    }
    Ok(model)
}

/// Encodes and writes a model atomically (see [`crate::artefact`]),
/// creating the parent directory if needed.
pub fn save(model: &ModelProto, path: impl AsRef<Path>) -> Result<()> {
    crate::artefact::write_atomic(path.as_ref(), &model.encode_to_vec())
}

/// The model's graph (checked to exist by [`decode`]).
pub fn graph(model: &ModelProto) -> &GraphProto {
    model.graph.as_ref().expect("decoded models have a graph")
}

/// The default-domain opset a model was written for.
pub fn opset(model: &ModelProto) -> Option<i64> {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty() || o.domain.as_deref() == Some("ai.onnx"))
        .and_then(|o| o.version)
}

/// Looks up an attribute of a node by name.
pub fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// An integer attribute, or `default` when absent.
pub fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).and_then(|a| a.i).unwrap_or(default)
}

/// A float attribute, or `default` when absent.
pub fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).and_then(|a| a.f).unwrap_or(default)
}

/// An integer-list attribute, or `None` when absent.
pub fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A string attribute, or `None` when absent.
pub fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
}

/// How a node is named in messages: its name if it has one, else its op and first output.
pub fn describe(node: &NodeProto) -> String {
    let op = node.op_type();
    match node.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{op} node '{name}'"),
        None => format!("{op} node producing '{}'", node.output.first().map_or("?", |s| s)),
    }
}
