//! A hidden layer's activations phi(x): the model with one of its inner
//! tensors added as a graph output, run by ONNX Runtime in batches.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayView4, Axis, s};

use crate::grad::data_inputs;
use crate::lang::error::suggestion;
use crate::onnx::builder::{Elem, value_info};
use crate::onnx::proto::type_proto;
use crate::onnx::{self, ModelProto};
use crate::runtime::{Device, Feed, Model, Runtime, check_finite};

/// Ops whose outputs are integers or shapes, never a layer to analyse.
const NOT_LAYERS: &[&str] = &["Constant", "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "ConstantOfShape"];

/// The tensors a unit analysis can look at, in graph order, with the op
/// that makes each: every float-valued node output.
pub fn candidates(model: &ModelProto) -> Vec<(String, String)> {
    onnx::graph(model)
        .node
        .iter()
        .filter(|n| !NOT_LAYERS.contains(&n.op_type()))
        .flat_map(|n| n.output.iter().filter(|o| !o.is_empty()).map(|o| (o.clone(), n.op_type().to_string())))
        .collect()
}

/// Fails unless `layer` is a candidate, listing the candidates (and the
/// nearest one) so that the user can pick a real tensor name.
pub fn check(model: &ModelProto, layer: &str, model_name: &str) -> Result<()> {
    let known = candidates(model);
    if known.iter().any(|(name, _)| name == layer) {
        return Ok(());
    }
    let names: Vec<String> = known.iter().map(|(n, _)| n.clone()).collect();
    let hint = suggestion(layer, &names).map(|s| format!(" ({s})")).unwrap_or_default();
    let listed: Vec<String> = known.iter().map(|(n, op)| format!("{n} ({op})")).collect();
    bail!("{model_name} has no layer `{layer}`{hint}; its layers are: {}", listed.join(", "))
}

/// The model with `layer` as an extra graph output. The output's shape is
/// left unknown, which ONNX Runtime accepts and infers; an output the
/// model already has is not added twice.
pub fn with_output(model: &ModelProto, layer: &str) -> ModelProto {
    let mut model = model.clone();
    let graph = model.graph.as_mut().expect("decoded models have a graph");
    if graph.output.iter().all(|o| o.name() != layer) {
        let mut info = value_info(layer, Elem::F32, &[]);
        if let Some(type_proto::Value::TensorType(t)) = info.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape = None;
        }
        graph.output.push(info);
    }
    model
}

/// A session that computes phi for batches of images.
pub struct Layer {
    model: Model,
    input: String,
    name: String,
}

impl Layer {
    /// Opens `path` with `layer` exposed; `model_name` names it in errors.
    pub fn open(path: &Path, layer: &str, model_name: &str, device: Device) -> Result<Layer> {
        let proto = onnx::load(path)?;
        check(&proto, layer, model_name)?;
        let input = data_inputs(&proto).into_iter().next().context("the model has no input")?;
        let name = format!("{} with output {layer}", path.display());
        let model = Runtime::get()?.load_proto(&with_output(&proto, layer), &name, device)?;
        Ok(Layer { model, input, name: layer.to_string() })
    }

    /// phi of every image, flattened to `[N, units]`, `batch` images per
    /// ONNX Runtime call; `done` hears the count so far (and can stop the
    /// work by failing, e.g. on Ctrl-C).
    pub fn activations(
        &mut self,
        images: ArrayView4<f32>,
        batch: usize,
        mut done: impl FnMut(usize) -> Result<()>,
    ) -> Result<Array2<f32>> {
        let n = images.len_of(Axis(0));
        let mut parts = Vec::new();
        for start in (0..n).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(n);
            parts.push(self.batch(images.slice(s![start..end, .., .., ..]))?);
            done(end)?;
        }
        if parts.is_empty() {
            bail!("no images to compute layer {} on", self.name);
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(0), &views).context("batches gave layers of different widths")
    }

    fn batch(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let images = images.as_standard_layout();
        let mut outputs = self.model.run(&[(self.input.as_str(), Feed::F32(images.view().into_dyn()))])?;
        let phi = outputs.take(&self.name)?;
        check_finite(self.model.name(), &self.name, &phi.view())?;
        let rows = images.len_of(Axis(0));
        if phi.ndim() == 0 || phi.shape()[0] != rows {
            bail!("layer {} has shape {:?}, which is not one row per image", self.name, phi.shape());
        }
        let width = phi.len() / rows.max(1);
        Ok(phi.as_standard_layout().into_owned().into_shape_with_order((rows, width))?)
    }
}
