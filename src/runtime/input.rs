//! What a classifier's image input takes, read from its ONNX declaration,
//! and the check that a set of `[N, C, H, W]` images fits it before any
//! work: advx's own message naming both shapes, never ONNX Runtime's.

use std::fmt;

use anyhow::{Result, bail};
use ort::value::{TensorElementType, ValueType};

use crate::onnx::GraphProto;

/// One declared dimension: fixed, or free (symbolic or unknown).
pub type Dim = Option<usize>;

/// How the model lays out the pixels of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[N, C, H, W]`, advx's own layout.
    Nchw { c: Dim, h: Dim, w: Dim },
    /// `[N, H, W, C]`, as TensorFlow and Keras export.
    Nhwc { c: Dim, h: Dim, w: Dim },
    /// `[N, D]`: each image flattened to `D = C·H·W` values.
    Flat { d: Dim },
}

/// A classifier's first input as images go into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInput {
    pub name: String,
    pub layout: Layout,
    /// The batch size a fixed-batch export takes; `None` when free.
    pub batch: Dim,
}

impl ImageInput {
    /// Reads the input from its declaration, or says why it takes no
    /// images: not a float32 tensor, or of a rank no image layout has.
    pub fn read(name: &str, declared: &ValueType) -> Result<ImageInput> {
        let ValueType::Tensor { ty, shape, .. } = declared else {
            bail!("its input '{name}' is not a tensor but {declared}")
        };
        if *ty != TensorElementType::Float32 {
            bail!("its input '{name}' holds {ty} values, and advx feeds f32 pixels")
        }
        let dims: Vec<Dim> = shape.iter().map(|&d| usize::try_from(d).ok().filter(|&d| d > 0)).collect();
        let layout = match dims[..] {
            [_, d] => Layout::Flat { d },
            [_, a, b, c] if is_channels_last(a, c) => Layout::Nhwc { c, h: a, w: b },
            [_, c, h, w] => Layout::Nchw { c, h, w },
            _ => bail!(
                "its input '{name}' is declared {shape:?}; advx feeds images as [N, C, H, W], [N, H, W, C] or [N, D]"
            ),
        };
        Ok(ImageInput { name: name.to_string(), layout, batch: dims[0] })
    }

    /// The input as the graph reads it: declared `[N, H, W, C]` with
    /// channels of any count when a Transpose to NCHW (perm 0, 3, 1, 2)
    /// consumes it, as tf2onnx writes Keras models.
    pub fn seen_in(self, graph: &GraphProto) -> ImageInput {
        let to_nchw = graph.node.iter().any(|node| {
            node.op_type.as_deref() == Some("Transpose")
                && node.input.first() == Some(&self.name)
                && crate::onnx::attr_ints(node, "perm").as_deref() == Some(&[0, 3, 1, 2])
        });
        match self.layout {
            Layout::Nchw { c: a, h: b, w: c } if to_nchw => {
                ImageInput { layout: Layout::Nhwc { c, h: a, w: b }, ..self }
            }
            _ => self,
        }
    }

    /// Fails unless images shaped `shape` (`[N, C, H, W]`) fit this
    /// input once adapted to it (transposed, flattened; any batch size, as
    /// [`Model`](super::Model) pads a fixed batch), naming the model's
    /// shape and the set's.
    pub fn check(&self, model: &str, set: &str, shape: &[usize]) -> Result<()> {
        let &[_, c, h, w] = shape else { bail!("{set} is shaped {shape:?}, not [N, C, H, W] images") };
        let fits = |dim: Dim, got: usize| dim.is_none_or(|d| d == got);
        let image_fits = match self.layout {
            Layout::Nchw { c: dc, h: dh, w: dw } | Layout::Nhwc { c: dc, h: dh, w: dw } => {
                fits(dc, c) && fits(dh, h) && fits(dw, w)
            }
            Layout::Flat { d } => fits(d, c * h * w),
        };
        match image_fits {
            true => Ok(()),
            false => bail!("{model} takes {self} images; {set} is {}", Shape(shape)),
        }
    }

    /// The `[C, H, W]` of the images this input takes, when its
    /// declaration fixes them (a flat input fixes only their product).
    pub fn image(&self) -> Option<[usize; 3]> {
        match self.layout {
            Layout::Nchw { c, h, w } | Layout::Nhwc { c, h, w } => Some([c?, h?, w?]),
            Layout::Flat { .. } => None,
        }
    }
}

/// `[N, H, W, C]` when the last dimension is a channel count (1 or 3)
/// and the second could not be one.
fn is_channels_last(second: Dim, last: Dim) -> bool {
    let channels = |d: Dim| matches!(d, Some(1 | 3));
    channels(last) && !channels(second) && second.is_none_or(|d| d > 4)
}

impl fmt::Display for ImageInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let batch = self.batch.map_or("N".to_string(), |b| b.to_string());
        let dim = |d: Dim, symbol: &str| d.map_or(symbol.to_string(), |d| d.to_string());
        match self.layout {
            Layout::Nchw { c, h, w } => write!(f, "[{batch}, {}, {}, {}]", dim(c, "C"), dim(h, "H"), dim(w, "W")),
            Layout::Nhwc { c, h, w } => write!(f, "[{batch}, {}, {}, {}]", dim(h, "H"), dim(w, "W"), dim(c, "C")),
            Layout::Flat { d } => write!(f, "[{batch}, {}]", dim(d, "D")),
        }
    }
}

/// A concrete shape as messages write it.
struct Shape<'a>(&'a [usize]);

impl fmt::Display for Shape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.0.iter().map(usize::to_string).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ort::value::{Shape as OrtShape, SymbolicDimensions};

    fn declared(dims: &[i64]) -> ValueType {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape: OrtShape::new(dims.iter().copied()),
            dimension_symbols: SymbolicDimensions::empty(dims.len()),
        }
    }

    fn input(dims: &[i64]) -> ImageInput {
        ImageInput::read("x", &declared(dims)).unwrap()
    }

    #[test]
    fn layouts_are_read_from_the_declared_dims() {
        assert_eq!(input(&[-1, 1, 28, 28]).layout, Layout::Nchw { c: Some(1), h: Some(28), w: Some(28) });
        assert_eq!(input(&[-1, 32, 32, 3]).layout, Layout::Nhwc { c: Some(3), h: Some(32), w: Some(32) });
        assert_eq!(input(&[-1, 3, 3, 3]).layout, Layout::Nchw { c: Some(3), h: Some(3), w: Some(3) });
        assert_eq!(input(&[-1, -1, -1, 3]).layout, Layout::Nhwc { c: Some(3), h: None, w: None });
        assert_eq!(input(&[-1, 784]).layout, Layout::Flat { d: Some(784) });
        assert_eq!(input(&[2, 3, 32, 32]).batch, Some(2));
        assert_eq!(input(&[-1, 3, 32, 32]).batch, None);
    }

    #[test]
    fn a_transpose_at_the_input_makes_it_channels_last() {
        let transpose = |perm: Vec<i64>| crate::onnx::NodeProto {
            op_type: Some("Transpose".into()),
            input: vec!["x".into()],
            output: vec!["t".into()],
            attribute: vec![crate::onnx::AttributeProto {
                name: Some("perm".into()),
                r#type: Some(crate::onnx::proto::attribute_proto::AttributeType::Ints as i32),
                ints: perm,
                ..Default::default()
            }],
            ..Default::default()
        };
        let graph = |perm| GraphProto { node: vec![transpose(perm)], ..Default::default() };
        let four = input(&[-1, 8, 8, 4]);
        assert_eq!(four.layout, Layout::Nchw { c: Some(8), h: Some(8), w: Some(4) });
        let seen = four.clone().seen_in(&graph(vec![0, 3, 1, 2]));
        assert_eq!(seen.layout, Layout::Nhwc { c: Some(4), h: Some(8), w: Some(8) });
        assert_eq!(seen.to_string(), "[N, 8, 8, 4]");
        assert_eq!(four.clone().seen_in(&graph(vec![0, 2, 3, 1])), four);
    }

    #[test]
    fn a_mismatch_names_both_shapes() {
        let e = input(&[-1, 1, 28, 28]).check("fc100", "cifar10.test[0..10]", &[10, 3, 32, 32]).unwrap_err();
        assert_eq!(e.to_string(), "fc100 takes [N, 1, 28, 28] images; cifar10.test[0..10] is [10, 3, 32, 32]");
        assert!(input(&[-1, 1, 28, 28]).check("fc100", "mnist", &[10, 1, 28, 28]).is_ok());
        assert!(input(&[-1, 3, -1, -1]).check("m", "s", &[4, 3, 224, 224]).is_ok());
        let e = input(&[-1, 784]).check("mlp", "s", &[1, 3, 32, 32]).unwrap_err().to_string();
        assert!(e.starts_with("mlp takes [N, 784] images; s is [1, 3, 32, 32]"), "{e}");
    }

    #[test]
    fn inputs_that_take_no_images_say_why() {
        let int = ValueType::Tensor {
            ty: TensorElementType::Int64,
            shape: OrtShape::new([-1, 4]),
            dimension_symbols: SymbolicDimensions::empty(2),
        };
        assert!(ImageInput::read("ids", &int).unwrap_err().to_string().contains("holds i64 values"));
        assert!(ImageInput::read("x", &declared(&[-1, 28, 28])).unwrap_err().to_string().contains("[-1, 28, 28]"));
    }
}
