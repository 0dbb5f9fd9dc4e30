//! Exported backward graphs: reverse-mode differentiation of an ONNX graph,
//! written out as another ONNX model that ONNX Runtime runs.
//!
//! ONNX Runtime only runs inference, so advx differentiates graphs itself.
//! [`export`] copies the forward graph, adds an [`Objective`] (the loss and
//! its seed gradient), and walks the nodes backwards, asking each op's rule
//! in [`ops`] for the gradients of its inputs. Rules emit ordinary ONNX
//! nodes, so the result opens in Netron and passes `onnx.checker`.

pub mod check;
pub mod direction;
mod emit;
mod engine;
pub mod fold;
mod graph;
mod objective;
pub mod ops;

pub use emit::Emit;
pub use engine::{
    Unsupported, data_inputs, export, export_gradients, export_wrt, float_initializers, infer_nodes, infer_tensors,
    validate,
};
pub use graph::{Int, Node, TensorInfo, constant_info, constant_value};
pub use objective::{Objective, Reconstruction, class_scores};

use std::path::Path;

use anyhow::{Context, Result};

use crate::artefact::provenance::{self, Provenance};
use crate::onnx::ModelProto;

/// [`export`], with the [`Provenance`](crate::artefact::provenance) that
/// ties the graph to its source: the model file whose bytes hash to
/// `source_sha256`. Every backward graph advx writes to a file is made so.
pub fn export_stamped(model: &ModelProto, source_sha256: &str, objective: &Objective) -> Result<ModelProto> {
    let mut backward = export(model, objective)?;
    Provenance::current(source_sha256, objective).stamp(&mut backward);
    Ok(backward)
}

/// The stamped backward graph of the model file at `path`.
pub fn export_file(path: &Path, objective: &Objective) -> Result<ModelProto> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read ONNX model {}", path.display()))?;
    export_bytes(&bytes, path, objective)
}

/// The stamped backward graph of the model file `bytes`, read from `path`.
pub fn export_bytes(bytes: &[u8], path: &Path, objective: &Objective) -> Result<ModelProto> {
    let model = crate::onnx::decode(bytes).with_context(|| format!("{} is not a valid ONNX model", path.display()))?;
    export_stamped(&model, &provenance::sha256(bytes), objective)
        .with_context(|| format!("cannot export the backward graph of {}", path.display()))
}

/// Names of the inputs and outputs of exported backward graphs.
pub mod names {
    /// Int64 class labels `[N]` for the cross-entropy objectives.
    pub const TARGET: &str = "target";
    /// The direction `v` of the `direction:` objective, shaped like the tensor.
    pub const DIRECTION: &str = "direction";
    /// The per-sample loss `[N]`, or the batch mean for training objectives.
    pub const LOSS: &str = "loss";

    /// The name of the gradient output for a tensor.
    pub fn grad(tensor: &str) -> String {
        format!("grad.{tensor}")
    }
}

/// Where advx keeps a model's backward graph: `dir/x.onnx` ->
/// `dir/backward/x.<objective>.onnx`, out of the way of `dir/*.onnx` globs.
pub fn backward_path(model: &Path, objective: &Objective) -> std::path::PathBuf {
    let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let tag = objective.to_string().replace(':', "-");
    model.parent().unwrap_or(Path::new("")).join("backward").join(format!("{stem}.{tag}.onnx"))
}
