//! The graph advx runs for a model: the user's ONNX graph behind a prefix
//! that takes advx's own images, `[N, C, H, W]` pixels in [0, 1], and
//! turns them into what the graph was exported to take: scaled, normalised
//! per channel, then channels last or flattened. With the prefix in the
//! graph, every operation (evaluation, attacks, gradients, hidden layers)
//! works in pixel space: an adversarial image is a picture, and every
//! distortion is measured in pixels, whatever the model's input.

use std::fmt;

use anyhow::{Result, bail};
use ndarray::{ArrayD, IxDyn};

use super::{ImageInput, Layout};
use crate::onnx::builder::attr;
use crate::onnx::proto::StringStringEntryProto;
use crate::onnx::proto::tensor_shape_proto::{Dimension, dimension};
use crate::onnx::proto::type_proto::Value as TypeValue;
use crate::onnx::{ModelProto, NodeProto, tensor};

/// What a model does to pixels before its first layer, declared when it is
/// loaded (`model m = onnx "m.onnx" { scale: 255, mean: [...], std: [...] }`):
/// the graph takes `(scale · x − mean) / std`, per channel. Mean and std are
/// in the scaled units, as torchvision and Keras write them.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Preprocess {
    /// `None`: pixels in [0, 1] as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<f32>,
    /// One value, or one per channel; empty: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mean: Vec<f32>,
    /// One value, or one per channel; empty: none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub std: Vec<f32>,
}

/// How advx's `[N, C, H, W]` pixels reach a model's graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptation {
    /// `[C, H, W]` of one image.
    pub image: [usize; 3],
    /// The layout the user's graph takes.
    pub layout: Layout,
    pub preprocess: Preprocess,
}

/// `metadata_props` keys of an adapted graph.
pub mod keys {
    pub const ADAPTED_FROM: &str = "advx.adapted_from_sha256";
    pub const ADAPTATION: &str = "advx.adaptation";
}

impl Preprocess {
    /// True when pixels reach the graph as they are.
    pub fn is_identity(&self) -> bool {
        self.scale.is_none() && self.mean.is_empty() && self.std.is_empty()
    }

    /// Fails unless the values make sense for images of `channels`
    /// channels: finite, std and scale positive, one value or one per channel.
    pub fn check(&self, channels: usize) -> Result<()> {
        if let Some(scale) = self.scale
            && !(scale.is_finite() && scale > 0.0)
        {
            bail!("`scale` must be a positive number, not {scale}");
        }
        for (name, values) in [("mean", &self.mean), ("std", &self.std)] {
            if !values.is_empty() && values.len() != 1 && values.len() != channels {
                bail!("`{name}` has {} values; images of {channels} channels need 1 or {channels}", values.len());
            }
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                bail!("`{name}` holds {v}; every value must be finite");
            }
        }
        if let Some(v) = self.std.iter().find(|&&v| v <= 0.0) {
            bail!("`std` holds {v}; a standard deviation must be positive");
        }
        Ok(())
    }
}

impl Adaptation {
    /// True unless the graph takes advx's pixels as they are.
    pub fn needed(input: &ImageInput, preprocess: &Preprocess) -> bool {
        !(matches!(input.layout, Layout::Nchw { .. }) && preprocess.is_identity())
    }

    /// The adaptation that feeds `[C, H, W]` images to `input`.
    pub fn new(input: &ImageInput, image: [usize; 3], preprocess: &Preprocess) -> Result<Adaptation> {
        preprocess.check(image[0])?;
        Ok(Adaptation { image, layout: input.layout, preprocess: preprocess.clone() })
    }

    /// The user's model behind the prefix: its first input replaced by
    /// `[N, C, H, W]` pixels under a fresh name, the prefix computing the
    /// tensor the graph read, and the adaptation recorded in
    /// `metadata_props` with the SHA-256 of the source model.
    pub fn apply(&self, model: &ModelProto, source_sha256: &str) -> Result<ModelProto> {
        let mut model = model.clone();
        let graph = model.graph.get_or_insert_default();
        let Some(declared) = graph.input.first().cloned() else { bail!("the model has no inputs") };
        let original = declared.name().to_string();
        let mut names = Names::of(graph);
        let pixels = names.fresh("pixels");
        let mut prefix = Prefix { nodes: Vec::new(), constants: Vec::new(), names: &mut names, last: pixels.clone() };
        self.build(&mut prefix, &original);
        let (nodes, constants) = (prefix.nodes, prefix.constants);
        graph.node.splice(0..0, nodes);
        graph.initializer.extend(constants);
        graph.input[0] = self.pixels_input(declared, &pixels);
        model.metadata_props.retain(|p| ![keys::ADAPTED_FROM, keys::ADAPTATION].contains(&p.key()));
        for (key, value) in [(keys::ADAPTED_FROM, source_sha256.to_string()), (keys::ADAPTATION, self.to_string())] {
            model.metadata_props.push(StringStringEntryProto { key: Some(key.into()), value: Some(value) });
        }
        Ok(model)
    }

    /// Scale, normalise, then change the layout; the last node writes
    /// `original`, the tensor the user's graph reads.
    fn build(&self, prefix: &mut Prefix, original: &str) {
        let per_channel = |values: &[f32]| {
            let shape = [1, values.len(), 1, 1];
            ArrayD::from_shape_vec(IxDyn(&shape), values.to_vec()).expect("shape holds the values")
        };
        if let Some(scale) = self.preprocess.scale {
            prefix.binary("Mul", "scale", ArrayD::from_elem(IxDyn(&[]), scale));
        }
        if !self.preprocess.mean.is_empty() {
            prefix.binary("Sub", "mean", per_channel(&self.preprocess.mean));
        }
        if !self.preprocess.std.is_empty() {
            prefix.binary("Div", "std", per_channel(&self.preprocess.std));
        }
        match self.layout {
            // `needed` adapts an NCHW graph only to preprocess, so a node precedes.
            Layout::Nchw { .. } => {}
            Layout::Nhwc { .. } => prefix.node("Transpose", vec![attr::ints("perm", &[0, 2, 3, 1])]),
            Layout::Flat { .. } => prefix.node("Flatten", vec![attr::int("axis", 1)]),
        }
        prefix.rename_last(original);
    }

    /// The declared input, renamed and reshaped to `[N, C, H, W]`, keeping
    /// the batch dimension as the model declared it (fixed or symbolic).
    fn pixels_input(&self, mut declared: crate::onnx::ValueInfoProto, pixels: &str) -> crate::onnx::ValueInfoProto {
        declared.name = Some(pixels.to_string());
        if let Some(TypeValue::TensorType(tensor)) = declared.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            let shape = tensor.shape.get_or_insert_default();
            let batch = shape.dim.first().cloned().unwrap_or_default();
            let fixed =
                |d: usize| Dimension { value: Some(dimension::Value::DimValue(d as i64)), ..Default::default() };
            shape.dim = std::iter::once(batch).chain(self.image.iter().map(|&d| fixed(d))).collect();
        }
        declared
    }
}

/// Nodes in front of the user's graph, each reading the last one's output.
struct Prefix<'n> {
    nodes: Vec<NodeProto>,
    constants: Vec<crate::onnx::TensorProto>,
    names: &'n mut Names,
    last: String,
}

impl Prefix<'_> {
    fn binary(&mut self, op: &str, what: &str, value: ArrayD<f32>) {
        let constant = self.names.fresh(&format!("advx_{what}"));
        self.constants.push(tensor::from_f32(&constant, &value));
        self.push(op, vec![self.last.clone(), constant], vec![]);
    }

    fn node(&mut self, op: &str, attribute: Vec<crate::onnx::AttributeProto>) {
        self.push(op, vec![self.last.clone()], attribute);
    }

    fn push(&mut self, op: &str, input: Vec<String>, attribute: Vec<crate::onnx::AttributeProto>) {
        let output = self.names.fresh(&format!("advx_{}", op.to_lowercase()));
        self.nodes.push(NodeProto {
            name: Some(output.clone()),
            op_type: Some(op.to_string()),
            input,
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        self.last = output;
    }

    /// The last node writes `name` instead of its own output.
    fn rename_last(&mut self, name: &str) {
        if let Some(node) = self.nodes.last_mut() {
            node.output = vec![name.to_string()];
        }
    }
}

/// Every name the graph uses, so that the prefix's names are new.
struct Names(std::collections::HashSet<String>);

impl Names {
    fn of(graph: &crate::onnx::GraphProto) -> Names {
        let values = graph.input.iter().chain(&graph.output).chain(&graph.value_info).map(|v| v.name().to_string());
        let nodes = graph.node.iter().flat_map(|n| n.output.iter().cloned().chain(n.name.clone()));
        let constants = graph.initializer.iter().map(|t| t.name().to_string());
        Names(values.chain(nodes).chain(constants).collect())
    }

    fn fresh(&mut self, hint: &str) -> String {
        let mut candidates = (0..).map(|i| if i == 0 { hint.to_string() } else { format!("{hint}_{i}") });
        let name = candidates.find(|n| !self.0.contains(n)).expect("an unused name");
        self.0.insert(name.clone());
        name
    }
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps = Vec::new();
        if let Some(scale) = self.scale {
            steps.push(format!("scale {scale}"));
        }
        if !self.mean.is_empty() {
            steps.push(format!("mean {:?}", self.mean));
        }
        if !self.std.is_empty() {
            steps.push(format!("std {:?}", self.std));
        }
        match steps.is_empty() {
            true => write!(f, "none"),
            false => write!(f, "{}", steps.join(", ")),
        }
    }
}

impl fmt::Display for Adaptation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [c, h, w] = self.image;
        let layout = match self.layout {
            Layout::Nchw { .. } => "NCHW".to_string(),
            Layout::Nhwc { .. } => format!("NHWC [N, {h}, {w}, {c}]"),
            Layout::Flat { .. } => format!("flat [N, {}]", c * h * w),
        };
        write!(f, "[N, {c}, {h}, {w}] pixels in [0, 1]; preprocessing: {}; layout: {layout}", self.preprocess)
    }
}
