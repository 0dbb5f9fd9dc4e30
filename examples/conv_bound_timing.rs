//! Times the Fourier bound of the convolutions of real architectures
//! (random weights, uniform ±1/√fan_in) at 224×224 input:
//! `cargo run --release --example conv_bound_timing`. Each layer is a
//! one-node model, bounded by `spectral::analyse` as `lipschitz` bounds it.
//! With `--measure`, each ungrouped layer's true norm is also measured by
//! power iteration on the layer itself (zero pads, stride), in plain Rust,
//! to show how tight the bound is.

use std::time::Instant;

use advx::onnx::builder::{Elem, attr, value_info};
use advx::onnx::proto::type_proto;
use advx::onnx::shape::Dim;
use advx::onnx::{GraphBuilder, ModelProto};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A convolution: name, channels in and out, kernel, stride, pad, groups, input size.
struct Conv(&'static str, usize, usize, usize, usize, usize, usize, usize);

const LAYERS: &[Conv] = &[
    Conv("alexnet conv1", 3, 64, 11, 4, 2, 1, 224),
    Conv("alexnet conv2", 64, 192, 5, 1, 2, 1, 27),
    Conv("alexnet conv3", 192, 384, 3, 1, 1, 1, 13),
    Conv("alexnet conv4", 384, 256, 3, 1, 1, 1, 13),
    Conv("alexnet conv5", 256, 256, 3, 1, 1, 1, 13),
    Conv("resnet18 conv1", 3, 64, 7, 2, 3, 1, 224),
    Conv("mobilenetv2 dw s1", 32, 32, 3, 1, 1, 32, 112),
    Conv("mobilenetv2 dw s2", 96, 96, 3, 2, 1, 96, 112),
    Conv("mobilenetv2 dw s2 (late)", 576, 576, 3, 2, 1, 576, 14),
];

fn weights(c: &Conv, seed: u64) -> ArrayD<f32> {
    let &Conv(_, cin, cout, k, _, _, group, _) = c;
    let fan_in = (cin / group * k * k) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let limit = 1.0 / fan_in.sqrt();
    ArrayD::from_shape_fn(IxDyn(&[cout, cin / group, k, k]), |_| rng.random_range(-limit..limit))
}

fn model(c: &Conv, w: &ArrayD<f32>) -> ModelProto {
    let &Conv(_, cin, _, k, s, p, group, size) = c;
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(cin), Dim::Fixed(size), Dim::Fixed(size)]);
    let w = b.const_f32("w", w);
    let (s, p) = (s as i64, p as i64);
    let attrs = vec![
        attr::ints("kernel_shape", &[k as i64, k as i64]),
        attr::ints("strides", &[s, s]),
        attr::ints("pads", &[p, p, p, p]),
        attr::int("group", group as i64),
    ];
    let y = b.op("Conv", &["x", &w], attrs);
    let mut output = value_info(&y, Elem::F32, &[]);
    if let Some(type_proto::Value::TensorType(t)) = output.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    b.outputs.push(output);
    b.into_model("timing", advx::onnx::OPSET, "conv bound timing")
}

/// The outputs `o` (of `outputs`) whose tap `o s + t − p` falls inside an
/// input of `size`.
fn inside(outputs: usize, s: usize, t: usize, p: usize, size: usize) -> std::ops::Range<usize> {
    let first = p.saturating_sub(t).div_ceil(s);
    let end = if size + p > t { ((size + p - t - 1) / s + 1).min(outputs) } else { 0 };
    first..end.max(first)
}

/// The layer (no groups) applied to `x` (`[Cin][H][W]`), or its adjoint
/// applied to `y` (`[Cout][O][O]`), written into `out`.
fn apply(c: &Conv, w: &ArrayD<f32>, x: &[f64], out: &mut [f64], adjoint: bool) {
    let &Conv(_, cin, cout, k, s, p, _, size) = c;
    let o_size = (size + 2 * p - k) / s + 1;
    out.iter_mut().for_each(|v| *v = 0.0);
    for (o, i) in (0..cout).flat_map(|o| (0..cin).map(move |i| (o, i))) {
        for (y, xx) in (0..k).flat_map(|y| (0..k).map(move |xx| (y, xx))) {
            let tap = w[[o, i, y, xx]] as f64;
            let columns = inside(o_size, s, xx, p, size);
            for r in inside(o_size, s, y, p, size) {
                let input = (i * size + r * s + y - p) * size;
                let output = (o * o_size + r) * o_size;
                for col in columns.clone() {
                    let (a, b) = (input + col * s + xx - p, output + col);
                    if adjoint {
                        out[a] += tap * x[b];
                    } else {
                        out[b] += tap * x[a];
                    }
                }
            }
        }
    }
}

/// The layer's norm by power iteration on `AᵀA` (a lower bound of it,
/// converged to 1e-8 relative or 1000 steps).
fn power_norm(c: &Conv, w: &ArrayD<f32>) -> f64 {
    let &Conv(_, cin, cout, k, s, p, _, size) = c;
    let o_size = (size + 2 * p - k) / s + 1;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut x: Vec<f64> = (0..cin * size * size).map(|_| rng.random_range(-1.0..1.0)).collect();
    let (mut y, mut back) = (vec![0.0; cout * o_size * o_size], vec![0.0; x.len()]);
    let mut lambda = 0.0;
    for _ in 0..1000 {
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.iter_mut().for_each(|v| *v /= norm);
        apply(c, w, &x, &mut y, false);
        apply(c, w, &y, &mut back, true);
        let next: f64 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        std::mem::swap(&mut x, &mut back);
        if (next - lambda).abs() <= 1e-8 * next {
            return next.sqrt();
        }
        lambda = next;
    }
    lambda.sqrt()
}

fn main() -> anyhow::Result<()> {
    let measure = std::env::args().any(|a| a == "--measure");
    let mut total = 0.0;
    for (seed, conv) in LAYERS.iter().enumerate() {
        let w = weights(conv, seed as u64);
        let model = model(conv, &w);
        let start = Instant::now();
        let layer = advx::spectral::analyse(&model)?.layers.remove(0);
        let seconds = start.elapsed().as_secs_f64();
        if conv.0.starts_with("alexnet") {
            total += seconds;
        }
        println!("{:<26} {:>8.3} s  bound {:.6}  {}", conv.0, seconds, layer.bound, layer.method);
        if measure && conv.6 == 1 {
            let norm = power_norm(conv, &w);
            println!("{:<26} power iteration {norm:.6}, bound / norm {:.5}", "", layer.bound / norm);
        }
    }
    println!("AlexNet's convolutions: {total:.3} s");
    Ok(())
}
