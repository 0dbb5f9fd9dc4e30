//! phi(x), the activations whose directions the unit analysis follows.
//!
//! A flat layer `[N, D]` is read as it is: its D units are the natural
//! basis and a random direction is a unit vector of R^D. A convolutional
//! layer `[N, C, H, W]` (channels first, as every graph advx runs is) has
//! a unit per channel *and* position, so a direction is taken in channel
//! space: phi is reduced over the positions to `[N, C]` by a stated
//! [`Reduction`] (the spatial mean unless asked otherwise), the C channels
//! are the natural basis, and a random direction is a unit vector of R^C.
//!
//! The reduction is appended to the model as ONNX nodes, so the activations
//! `units` ranks and the objective `visualize` climbs are one function.

use std::fmt;
use std::path::Path;

use anyhow::{Result, bail};

use super::layer;
use crate::grad::infer_tensors;
use crate::onnx::ModelProto;
use crate::onnx::builder::{GraphBuilder, attr};
use crate::onnx::shape::{self, Shape};

/// How a convolutional layer's positions become one number per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The channel's mean over every position: what it says of the whole image.
    Mean,
    /// Its largest value: whether it fires anywhere.
    Max,
    /// Its value at the centre position `(H / 2, W / 2)`: one unit of the
    /// channel, whose receptive field lies at the image's centre.
    Centre,
    /// No reduction: every channel at every position is a unit of its own,
    /// `C·H·W` of them, as a flat layer's (any rank).
    None,
}

impl Reduction {
    /// Every reduction, as `reduce:` spells it.
    pub const ALL: [Reduction; 4] = [Reduction::Mean, Reduction::Max, Reduction::Centre, Reduction::None];

    pub fn name(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Max => "max",
            Reduction::Centre => "centre",
            Reduction::None => "none",
        }
    }

    /// The reduction `reduce:` names (`center` as well as `centre`).
    pub fn parse(word: &str) -> Result<Reduction> {
        let known = Reduction::ALL.iter().find(|r| r.name() == word || (word == "center" && **r == Reduction::Centre));
        match known {
            Some(r) => Ok(*r),
            None => bail!(
                "`reduce` must be one of {}, not \"{word}\"",
                Reduction::ALL.map(|r| format!("\"{}\"", r.name())).join(", ")
            ),
        }
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A layer as a statement asks for it, and how messages name its model.
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    /// The tensor's name in the graph.
    pub layer: &'a str,
    /// `reduce:`, when given; a convolutional layer's default is the mean.
    pub reduce: Option<Reduction>,
    /// The model's name in messages.
    pub model: &'a str,
    /// The file the user gave, whose tensors `advx info` lists (the file
    /// run may be a copy adapted to advx's pixels).
    pub given: &'a Path,
}

impl<'a> Spec<'a> {
    /// A layer read the default way, in the model file `given`.
    pub fn plain(layer: &'a str, model: &'a str, given: &'a Path) -> Spec<'a> {
        Spec { layer, reduce: None, model, given }
    }
}

/// phi of one layer: the tensor, its inferred shape and its reduction.
#[derive(Clone, Debug, PartialEq)]
pub struct Phi {
    pub layer: String,
    /// The layer's shape as advx infers it, the batch as N; `None` where
    /// inference stops before it (a model with an op advx has no rule
    /// for), which only `reduce: "none"` reads.
    pub shape: Option<Shape>,
    /// How its positions are reduced; `None` for a flat layer.
    pub reduction: Option<Reduction>,
}

impl Phi {
    /// The layer `spec` names in `model`, checked to exist and to have a
    /// shape phi can be read from.
    pub fn find(model: &ModelProto, spec: &Spec) -> Result<Phi> {
        let (tensors, stopped) = infer_tensors(model);
        layer::check(model, &tensors, spec)?;
        let layer = spec.layer.to_string();
        let Some(info) = tensors.into_iter().find(|t| t.name == spec.layer) else {
            if spec.reduce == Some(Reduction::None) {
                return Ok(Phi { layer, shape: None, reduction: Some(Reduction::None) });
            }
            let why = stopped.map_or_else(|| "no shape was inferred".to_string(), |e| format!("{e:#}"));
            bail!(
                "cannot tell the shape of layer `{layer}` of {}, so not whether it is flat or convolutional: {why}; \
                 `reduce: \"none\"` reads it without, every value a unit",
                spec.model
            );
        };
        let shape = info.shape;
        let reduction = match (shape.len(), spec.reduce) {
            (_, Some(Reduction::None)) => Some(Reduction::None),
            (2, None) => None,
            (2, Some(r)) => bail!(
                "layer `{layer}` of {} is {}, a flat layer whose units are directions already; `reduce: \"{r}\"` \
                 reads a convolutional layer [N, C, H, W]",
                spec.model,
                shape::show(&shape)
            ),
            (4, r) => Some(r.unwrap_or(Reduction::Mean)),
            _ => bail!(
                "layer `{layer}` of {} is {}: units and visualize read a flat layer [N, D] or a convolutional one \
                 [N, C, H, W] (reduced over space to its C channels); `reduce: \"none\"` takes each of its values \
                 as a unit",
                spec.model,
                shape::show(&shape)
            ),
        };
        Ok(Phi { layer, shape: Some(shape), reduction })
    }

    /// The number of units a direction has: D, C, or every value of one
    /// image's layer without a reduction; `None` when the shape is unknown.
    pub fn width(&self) -> Option<usize> {
        let shape = self.shape.as_ref()?;
        match self.spatial() {
            Some(_) => Some(self.dim(1)),
            None => Some(shape.iter().skip(1).filter_map(|d| d.fixed()).product()),
        }
    }

    /// The reduction over positions, if phi has one (`none` has not).
    pub fn spatial(&self) -> Option<Reduction> {
        self.reduction.filter(|r| *r != Reduction::None)
    }

    /// What a unit is, for headlines: `100 units`, `16 channels, spatial
    /// mean of [N, 16, 8, 8]`.
    pub fn describe(&self) -> String {
        let (Some(width), Some(shape)) = (self.width(), &self.shape) else {
            return "every value a unit; its shape not inferred".to_string();
        };
        let shape = shape::show(shape);
        match self.reduction {
            None => format!("{width} units"),
            Some(Reduction::None) => format!("{width} units, every value of {shape}"),
            Some(Reduction::Centre) => {
                format!(
                    "{} channels at the centre position ({}, {}) of {shape}",
                    width,
                    self.dim(2) / 2,
                    self.dim(3) / 2
                )
            }
            Some(r) => format!("{width} channels, spatial {r} of {shape}"),
        }
    }

    /// `model` computing phi as a tensor `[N, width]` or, without a
    /// spatial reduction, as the layer itself; and that tensor's name.
    pub fn append(&self, model: &ModelProto) -> (ModelProto, String) {
        let mut model = model.clone();
        let Some(reduction) = self.spatial() else { return (model, self.layer.clone()) };
        let graph = model.graph.as_mut().expect("decoded models have a graph");
        let mut b = GraphBuilder::new();
        let nodes = graph.node.iter().flat_map(|n| n.output.iter().chain(&n.name).map(String::as_str));
        let values = graph.input.iter().map(|i| i.name()).chain(graph.initializer.iter().map(|t| t.name()));
        for name in nodes.chain(values) {
            b.reserve(name);
        }
        let (h, w) = (self.dim(2), self.dim(3));
        let pooled = match reduction {
            Reduction::Mean => b.op("GlobalAveragePool", &[&self.layer], vec![]),
            Reduction::Max => b.op("MaxPool", &[&self.layer], vec![attr::ints("kernel_shape", &[h as i64, w as i64])]),
            // Centre: `spatial` is never `none`.
            _ => {
                let (y, x) = ((h / 2) as i64, (w / 2) as i64);
                let starts = b.const_i64("advx_phi_starts", &[y, x]);
                let ends = b.const_i64("advx_phi_ends", &[y + 1, x + 1]);
                let axes = b.const_i64("advx_phi_axes", &[2, 3]);
                b.op("Slice", &[&self.layer, &starts, &ends, &axes], vec![])
            }
        };
        let phi = b.op("Flatten", &[&pooled], vec![attr::int("axis", 1)]);
        graph.node.extend(b.nodes);
        graph.initializer.extend(b.initializers);
        (model, phi)
    }

    /// Dimension `i` of the layer, static for every axis but the batch.
    fn dim(&self, i: usize) -> usize {
        self.shape.as_ref().and_then(|s| s.get(i)).and_then(|d| d.fixed()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::builder::Elem;
    use crate::onnx::shape::Dim;

    /// input [N, 2, 5, 4] -> Conv 3x3 (3 channels, same padding) -> Relu,
    /// named as advx names its own nodes, so appended names must dodge them.
    fn conv_model() -> (ModelProto, String) {
        let mut b = GraphBuilder::new();
        b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(2), Dim::Fixed(5), Dim::Fixed(4)]);
        let w = b.const_f32("w", &ndarray::ArrayD::from_elem(ndarray::IxDyn(&[3, 2, 3, 3]), 0.1));
        let conv = b.op("Conv", &["x", &w], vec![attr::ints("pads", &[1, 1, 1, 1])]);
        let relu = b.op("Relu", &[&conv], vec![]);
        let pool = b.op("GlobalAveragePool", &[&relu], vec![]);
        let flat = b.op("Flatten", &[&pool], vec![]);
        b.output(&flat, Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
        (b.into_model("conv", 17, ""), relu)
    }

    #[test]
    fn a_reduction_appends_fresh_nodes_that_give_one_number_per_channel() {
        let (model, relu) = conv_model();
        for reduction in [Reduction::Mean, Reduction::Max, Reduction::Centre] {
            let spec = Spec { layer: &relu, reduce: Some(reduction), model: "m", given: Path::new("m.onnx") };
            let phi = Phi::find(&model, &spec).unwrap();
            assert_eq!((phi.width(), phi.spatial()), (Some(3), Some(reduction)));
            let (appended, output) = phi.append(&model);
            let names: Vec<&String> = appended.graph.as_ref().unwrap().node.iter().flat_map(|n| &n.output).collect();
            let unique: std::collections::HashSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{reduction}: {names:?}");
            let (tensors, stopped) = infer_tensors(&appended);
            assert!(stopped.is_none(), "{stopped:?}");
            let inferred = tensors.iter().find(|t| t.name == output).unwrap();
            assert_eq!(inferred.shape, vec![Dim::Batch, Dim::Fixed(3)], "{reduction}");
        }
        let spec = Spec { layer: &relu, reduce: Some(Reduction::None), model: "m", given: Path::new("m.onnx") };
        let phi = Phi::find(&model, &spec).unwrap();
        assert_eq!((phi.width(), phi.append(&model).1), (Some(3 * 5 * 4), relu.clone()), "none: every value, no nodes");
        let default = Phi::find(&model, &Spec::plain(&relu, "m", Path::new("m.onnx"))).unwrap();
        assert_eq!(default.reduction, Some(Reduction::Mean));
        assert_eq!(default.describe(), "3 channels, spatial mean of [N, 3, 5, 4]");
    }

    #[test]
    fn reductions_parse_by_name_and_refuse_others_listing_them() {
        for r in Reduction::ALL {
            assert_eq!(Reduction::parse(r.name()).unwrap(), r);
        }
        assert_eq!(Reduction::parse("center").unwrap(), Reduction::Centre);
        let e = Reduction::parse("sum").unwrap_err().to_string();
        assert!(e.contains("\"mean\", \"max\", \"centre\", \"none\"") && e.contains("not \"sum\""), "{e}");
    }
}
