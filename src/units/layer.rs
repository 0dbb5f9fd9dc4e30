//! A hidden layer's activations phi(x): the model with one of its inner
//! tensors (reduced over space for a convolutional layer, `phi`) added as
//! a graph output, run by ONNX Runtime in batches.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayView4, Axis, s};

use super::phi::{Phi, Spec};
use crate::grad::{TensorInfo, data_inputs};
use crate::lang::error::suggestion;
use crate::onnx::builder::{Elem, value_info};
use crate::onnx::proto::type_proto;
use crate::onnx::{self, ModelProto};
use crate::runtime::{Device, Feed, Model, Runtime, check_finite};

/// Ops whose outputs are integers or shapes, never a layer to analyse.
const NOT_LAYERS: &[&str] = &["Constant", "Shape", "Size", "ArgMax", "ArgMin", "NonZero", "ConstantOfShape"];

/// Up to this many layers, an unknown name's message lists them all;
/// beyond, the closest few and `advx info`.
const LISTED: usize = 20;
/// The closest names an unknown one's message suggests from a long list.
const CLOSEST: usize = 5;

/// The tensors a unit analysis can look at, in graph order, with the op
/// that makes each: every float-valued node output (integer ones, the
/// shape computations, left out where shape inference tells them).
pub fn candidates(model: &ModelProto) -> Vec<(String, String)> {
    candidates_among(model, &crate::grad::infer_tensors(model).0)
}

/// [`candidates`], given the tensors shape inference reached.
fn candidates_among(model: &ModelProto, inferred: &[TensorInfo]) -> Vec<(String, String)> {
    let integer: HashSet<&str> = inferred.iter().filter(|t| !t.is_float()).map(|t| t.name.as_str()).collect();
    onnx::graph(model)
        .node
        .iter()
        .filter(|n| !NOT_LAYERS.contains(&n.op_type()))
        .flat_map(|n| n.output.iter().filter(|o| !o.is_empty()).map(|o| (o.clone(), n.op_type().to_string())))
        .filter(|(o, _)| !integer.contains(o.as_str()))
        .collect()
}

/// Fails unless the layer `spec` names is a candidate, suggesting the
/// nearest names and pointing to `advx info`, which lists every tensor
/// with its shape. `inferred` is what shape inference says of the model.
pub fn check(model: &ModelProto, inferred: &[TensorInfo], spec: &Spec) -> Result<()> {
    let known = candidates_among(model, inferred);
    let layer = spec.layer;
    if known.iter().any(|(name, _)| name == layer) {
        return Ok(());
    }
    let names: Vec<String> = known.iter().map(|(n, _)| n.clone()).collect();
    let hint = suggestion(layer, &names).map(|s| format!(" ({s})")).unwrap_or_default();
    let shown = |pairs: &[&(String, String)]| pairs.iter().map(|(n, op)| format!("{n} ({op})")).collect::<Vec<_>>();
    let listed = if known.len() <= LISTED {
        format!("its layers are: {}", shown(&known.iter().collect::<Vec<_>>()).join(", "))
    } else {
        format!("the closest of its {} layers are: {}", known.len(), shown(&closest(layer, &known)).join(", "))
    };
    bail!(
        "{} has no layer `{layer}`{hint}; {listed}; `advx info {}` lists every tensor with its shape",
        spec.model,
        spec.given.display()
    )
}

/// The [`CLOSEST`] candidates nearest to `name` in edit distance, nearest
/// first (graph order among equals).
fn closest<'a>(name: &str, known: &'a [(String, String)]) -> Vec<&'a (String, String)> {
    let mut by_distance: Vec<(usize, &(String, String))> =
        known.iter().map(|k| (strsim::damerau_levenshtein(name, &k.0), k)).collect();
    by_distance.sort_by_key(|(d, _)| *d);
    by_distance.into_iter().take(CLOSEST).map(|(_, k)| k).collect()
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
    /// The graph output that holds phi.
    output: String,
    phi: Phi,
}

impl Layer {
    /// Opens `path` with `layer` exposed, a convolutional layer reduced
    /// over space by its default; `model_name` names it in errors.
    pub fn open(path: &Path, layer: &str, model_name: &str, device: Device) -> Result<Layer> {
        Self::open_spec(path, &Spec::plain(layer, model_name, path), device)
    }

    /// Opens `path` with phi of the layer `spec` asks for as an output.
    pub fn open_spec(path: &Path, spec: &Spec, device: Device) -> Result<Layer> {
        let proto = onnx::load(path)?;
        let phi = Phi::find(&proto, spec)?;
        let (graph, output) = phi.append(&proto);
        let input = data_inputs(&proto).into_iter().next().context("the model has no input")?;
        let name = format!("{} with output {}", path.display(), spec.layer);
        let model = Runtime::get()?.load_proto(&with_output(&graph, &output), &name, device)?;
        Ok(Layer { model, input, output, phi })
    }

    /// The layer and how it is read.
    pub fn phi(&self) -> &Phi {
        &self.phi
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
            bail!("no images to compute layer {} on", self.phi.layer);
        }
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        ndarray::concatenate(Axis(0), &views).context("batches gave layers of different widths")
    }

    fn batch(&mut self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let images = images.as_standard_layout();
        let mut outputs = self.model.run(&[(self.input.as_str(), Feed::F32(images.view().into_dyn()))])?;
        let phi = outputs.take(&self.output)?;
        check_finite(self.model.name(), &self.phi.layer, &phi.view())?;
        let rows = images.len_of(Axis(0));
        if phi.ndim() == 0 || phi.shape()[0] != rows {
            bail!("layer {} has shape {:?}, which is not one row per image", self.phi.layer, phi.shape());
        }
        let width = phi.len() / rows.max(1);
        Ok(phi.as_standard_layout().into_owned().into_shape_with_order((rows, width))?)
    }
}
