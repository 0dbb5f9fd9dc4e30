//! Times the Fourier bound of the convolutions of real architectures
//! (random weights, uniform ±1/√fan_in) at 224×224 input:
//! `cargo run --release --example conv_bound_timing`. Each layer is a
//! one-node model, bounded by `spectral::analyse` as `lipschitz` bounds it.

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

fn model(c: &Conv, seed: u64) -> ModelProto {
    let &Conv(_, cin, cout, k, s, p, group, size) = c;
    let fan_in = (cin / group * k * k) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let limit = 1.0 / fan_in.sqrt();
    let w = ArrayD::from_shape_fn(IxDyn(&[cout, cin / group, k, k]), |_| rng.random_range(-limit..limit));
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(cin), Dim::Fixed(size), Dim::Fixed(size)]);
    let w = b.const_f32("w", &w);
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

fn main() -> anyhow::Result<()> {
    let mut total = 0.0;
    for (seed, conv) in LAYERS.iter().enumerate() {
        let model = model(conv, seed as u64);
        let start = Instant::now();
        let layer = advx::spectral::analyse(&model)?.layers.remove(0);
        let seconds = start.elapsed().as_secs_f64();
        if conv.0.starts_with("alexnet") {
            total += seconds;
        }
        println!("{:<26} {:>8.3} s  bound {:.6}  {}", conv.0, seconds, layer.bound, layer.method);
    }
    println!("AlexNet's convolutions: {total:.3} s");
    Ok(())
}
