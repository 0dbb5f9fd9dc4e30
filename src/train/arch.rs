//! Builds a recipe's network as an ONNX graph: input `[N, 1, 28, 28]`
//! pixels in [0, 1], output `scores` `[N, classes]` (logits).
//!
//! Weights are laid out as torch does (`Gemm` with `transB = 1`, Conv
//! weights `[out, in, k, k]`) so that models read like exported ones.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

use super::recipe::{Activation, Layer};
use crate::onnx::builder::{Elem, GraphBuilder, attr};
use crate::onnx::shape::{self, Dim};
use crate::onnx::{ModelProto, OPSET, tensor};

/// The input tensor's name in every model advx trains.
pub const INPUT: &str = "input";
/// The output tensor's name: class scores (logits).
pub const SCORES: &str = "scores";
/// MNIST's image shape.
pub const IMAGE: [usize; 3] = [1, 28, 28];

/// A network's graphs and its per-weight decay coefficients.
pub struct Network {
    /// The model written and evaluated: no dropout.
    pub model: ModelProto,
    /// The graph training differentiates: `model` with each dropout layer
    /// as a product by a mask, an input of the graph that training draws
    /// (the same graph as `model` when there is no dropout). A mask fed
    /// from Rust rather than ONNX's Dropout in training mode: a seeded draw
    /// advx owns makes a run reproducible whatever ONNX Runtime's random
    /// stream does, and the backward graph stays deterministic, checkable
    /// by finite differences like every other.
    pub training: ModelProto,
    pub masks: Vec<Mask>,
    /// λ for each weight initializer (biases are absent: no decay).
    pub decay: HashMap<String, f32>,
}

/// A dropout layer's mask: an input of the training graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    pub input: String,
    /// Per example (the batch comes first).
    pub shape: Vec<usize>,
    pub rate: f32,
}

/// Freshly initialised weights for `layers` (Glorot for sigmoid and tanh,
/// He for relu), from `seed`, with the graph trained and the graph written.
pub fn build(name: &str, layers: &[Layer], classes: usize, seed: u64) -> Result<Network> {
    let mut masks = Vec::new();
    let (training, _) = graph(name, layers, classes, seed, Some(&mut masks))?;
    let (model, decay) = graph(name, layers, classes, seed, None)?;
    Ok(Network { model, training, masks, decay })
}

/// The shape after each layer, every size checked before anything is
/// allocated: positive sizes, windows that fit their input, and weights and
/// activations of at most [`MAX_ELEMENTS`](shape::MAX_ELEMENTS) values. An
/// error names the layer (counted from 1) and the option.
pub fn shapes(layers: &[Layer]) -> Result<Vec<Vec<usize>>> {
    let mut shape = IMAGE.to_vec();
    let mut all = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        shape = after(layer, &shape).with_context(|| format!("layer {} ({})", i + 1, layer.kind()))?;
        all.push(shape.clone());
    }
    Ok(all)
}

/// The shape a layer makes of its input's, and its weight's shape, checked.
fn after(layer: &Layer, input: &[usize]) -> Result<Vec<usize>> {
    let positive = |value: usize, option: &str| {
        if value == 0 {
            bail!("`{option}` must be at least 1");
        }
        Ok(value)
    };
    let (weight, output, options) = match *layer {
        Layer::Dense { units, .. } => {
            let inputs: usize = input.iter().product();
            (vec![positive(units, "units")?, inputs], vec![units], format!("`units` {units}"))
        }
        Layer::Conv { filters, kernel, pad, .. } => {
            let &[channels, h, w] = input else { bail!("needs an image input, got shape {input:?}") };
            positive(filters, "filters")?;
            positive(kernel, "kernel")?;
            let padded = |side: usize| pad.checked_mul(2).and_then(|p| p.checked_add(side));
            let (Some(ph), Some(pw)) = (padded(h), padded(w)) else { bail!("`pad` {pad} is too large") };
            if kernel > ph.min(pw) {
                bail!("`kernel` {kernel} is larger than its padded {ph}x{pw} input");
            }
            let output = vec![filters, ph + 1 - kernel, pw + 1 - kernel];
            (vec![filters, channels, kernel, kernel], output, format!("`filters` {filters}, `kernel` {kernel}"))
        }
        Layer::MaxPool { size } => {
            let &[c, h, w] = input else { bail!("needs an image input, got shape {input:?}") };
            if positive(size, "size")? > h.min(w) {
                bail!("`size` {size} is larger than its {h}x{w} input");
            }
            (vec![], vec![c, h / size, w / size], format!("`size` {size}"))
        }
        Layer::Dropout { rate } => {
            if !(rate.is_finite() && (0.0..1.0).contains(&rate)) {
                bail!("`rate` must be a finite number in [0, 1), not {rate}");
            }
            (vec![], input.to_vec(), format!("`rate` {rate}"))
        }
    };
    shape::volume(&weight).with_context(|| format!("{options}: its weight"))?;
    shape::volume(&output).with_context(|| format!("{options}: its output"))?;
    Ok(output)
}

/// The graph of `layers` with its weights drawn from `seed`, and its decay
/// coefficients; dropout layers become mask inputs when `masks` collects
/// them, else vanish.
fn graph(
    name: &str,
    layers: &[Layer],
    classes: usize,
    seed: u64,
    mut masks: Option<&mut Vec<Mask>>,
) -> Result<(ModelProto, HashMap<String, f32>)> {
    shapes(layers)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut b = GraphBuilder::new();
    let image: Vec<Dim> = std::iter::once(Dim::Batch).chain(IMAGE.iter().map(|&d| Dim::Fixed(d))).collect();
    b.input(INPUT, Elem::F32, &image);
    let mut x = INPUT.to_string();
    let mut shape = IMAGE.to_vec();
    let mut decay = HashMap::new();
    for (i, layer) in layers.iter().enumerate() {
        let prefix = format!("layer{}", i + 1);
        (x, shape) = match layer {
            Layer::Dense { units, activation, weight_decay } => {
                let inputs: usize = shape.iter().product();
                let flat = if shape.len() > 1 { b.op("Flatten", &[&x], vec![attr::int("axis", 1)]) } else { x.clone() };
                let w = init_weight(
                    &mut b,
                    &format!("{prefix}.weight"),
                    &[*units, inputs],
                    inputs,
                    *units,
                    *activation,
                    &mut rng,
                );
                let bias = b.const_f32(&format!("{prefix}.bias"), &ArrayD::zeros(IxDyn(&[*units])));
                decay.insert(w.clone(), *weight_decay);
                let y = b.op("Gemm", &[&flat, &w, &bias], vec![attr::int("transB", 1)]);
                (activate(&mut b, &y, *activation), vec![*units])
            }
            Layer::Conv { filters, kernel, pad, activation, weight_decay } => {
                let [channels, h, w_] = shape[..] else {
                    bail!("layer {} (conv) needs an image input, got {shape:?}", i + 1)
                };
                let fan_in = channels * kernel * kernel;
                let w = init_weight(
                    &mut b,
                    &format!("{prefix}.weight"),
                    &[*filters, channels, *kernel, *kernel],
                    fan_in,
                    filters * kernel * kernel,
                    *activation,
                    &mut rng,
                );
                let bias = b.const_f32(&format!("{prefix}.bias"), &ArrayD::zeros(IxDyn(&[*filters])));
                decay.insert(w.clone(), *weight_decay);
                let p = *pad as i64;
                let y = b.op(
                    "Conv",
                    &[&x, &w, &bias],
                    vec![attr::ints("kernel_shape", &[*kernel as i64; 2]), attr::ints("pads", &[p, p, p, p])],
                );
                let (oh, ow) = (h + 2 * pad + 1 - kernel, w_ + 2 * pad + 1 - kernel);
                (activate(&mut b, &y, *activation), vec![*filters, oh, ow])
            }
            Layer::MaxPool { size } => {
                let [c, h, w] = shape[..] else { bail!("layer {} (maxpool) needs an image input", i + 1) };
                let k = *size as i64;
                let y =
                    b.op("MaxPool", &[&x], vec![attr::ints("kernel_shape", &[k, k]), attr::ints("strides", &[k, k])]);
                (y, vec![c, h / size, w / size])
            }
            Layer::Dropout { rate } => match masks.as_deref_mut() {
                Some(masks) => {
                    let input = format!("{prefix}.mask");
                    let dims: Vec<Dim> =
                        std::iter::once(Dim::Batch).chain(shape.iter().map(|&d| Dim::Fixed(d))).collect();
                    b.input(&input, Elem::F32, &dims);
                    masks.push(Mask { input: input.clone(), shape: shape.clone(), rate: *rate });
                    (b.op("Mul", &[&x, &input], vec![]), shape)
                }
                None => (x, shape),
            },
        };
    }
    if shape != [classes] {
        bail!("the last layer must give {classes} class scores, not shape {shape:?}");
    }
    b.push(crate::onnx::NodeProto {
        name: Some("scores".into()),
        op_type: Some("Identity".into()),
        input: vec![x],
        output: vec![SCORES.into()],
        ..Default::default()
    });
    b.output(SCORES, Elem::F32, &[Dim::Batch, Dim::Fixed(classes)]);
    Ok((b.into_model(name, OPSET, &format!("advx model {name}")), decay))
}

fn activate(b: &mut GraphBuilder, x: &str, activation: Activation) -> String {
    match activation {
        Activation::None => x.to_string(),
        Activation::Sigmoid => b.op("Sigmoid", &[x], vec![]),
        Activation::Relu => b.op("Relu", &[x], vec![]),
        Activation::Tanh => b.op("Tanh", &[x], vec![]),
    }
}

fn init_weight(
    b: &mut GraphBuilder,
    name: &str,
    dims: &[usize],
    fan_in: usize,
    fan_out: usize,
    activation: Activation,
    rng: &mut ChaCha8Rng,
) -> String {
    let limit = match activation {
        Activation::Relu => (6.0 / fan_in as f32).sqrt(),
        Activation::Sigmoid => 4.0 * (6.0 / (fan_in + fan_out) as f32).sqrt(),
        _ => (6.0 / (fan_in + fan_out) as f32).sqrt(),
    };
    let dist = Uniform::new(-limit, limit).expect("positive limit");
    let values = ArrayD::from_shape_simple_fn(IxDyn(dims), || dist.sample(rng));
    b.initializers.push(tensor::from_f32(name, &values));
    b.reserve(name);
    name.to_string()
}
