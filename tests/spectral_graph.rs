//! Bounds of graphs that are not chains: residual sums, concatenations,
//! broadcasts and Swish, each against the exact norm of the whole linear
//! map where there is one, and the residual fixtures (ResNet-18,
//! MobileNetV2) bounded above a ratio measured on images.

use advx::classifier::Classifier;
use advx::onnx::builder::{Elem, attr};
use advx::onnx::shape::Dim;
use advx::onnx::{GraphBuilder, ModelProto};
use advx::runtime::Device;
use advx::spectral::{self, Join, measure};
use nalgebra::DMatrix;
use ndarray::{Array4, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0f32..1.0))
}

fn matrix(w: &ArrayD<f32>) -> DMatrix<f64> {
    DMatrix::from_fn(w.shape()[0], w.shape()[1], |r, c| w[[r, c]] as f64)
}

fn sigma_max(m: &DMatrix<f64>) -> f64 {
    m.singular_values().max()
}

/// A graph on `x` `[N, 6]`; `build` adds the nodes and returns the output.
fn model(build: impl FnOnce(&mut GraphBuilder) -> String) -> ModelProto {
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(6)]);
    let y = build(&mut b);
    b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(6)]);
    b.into_model("t", advx::onnx::OPSET, "spectral graph test")
}

/// `W x` as a Gemm with `W` `[out, in]`.
fn linear(b: &mut GraphBuilder, x: &str, name: &str, w: &ArrayD<f32>) -> String {
    let w = b.const_f32(name, w);
    b.op("Gemm", &[x, &w], vec![attr::int("transB", 1)])
}

#[test]
fn a_residual_block_is_bounded_by_one_plus_its_branch() {
    let (a, c) = (random(&[6, 6], 1), random(&[6, 6], 2));
    let bounds = spectral::analyse(&model(|b| {
        let h = linear(b, "x", "a", &a);
        let h = linear(b, &h, "c", &c);
        b.op("Add", &["x", &h], vec![])
    }))
    .unwrap();
    let (sa, sc) = (sigma_max(&matrix(&a)), sigma_max(&matrix(&c)));
    let exact = sigma_max(&(DMatrix::identity(6, 6) + matrix(&c) * matrix(&a)));
    let network = bounds.network();
    assert!((network - (1.0 + sa * sc)).abs() < 1e-5 * network, "{network} vs 1 + {sa}·{sc}");
    assert!(network >= exact, "{network} < the residual map's norm {exact}");
    assert_eq!(bounds.layers.last().unwrap().join, Join::Sum);
    assert!(!bounds.is_chain());
}

#[test]
fn a_concatenation_is_bounded_by_the_root_of_its_squares() {
    let (a, c) = (random(&[3, 6], 3), random(&[3, 6], 4));
    let bounds = spectral::analyse(&model(|b| {
        let p = linear(b, "x", "a", &a);
        let q = linear(b, "x", "c", &c);
        b.op("Concat", &[&p, &q], vec![attr::int("axis", 1)])
    }))
    .unwrap();
    let (sa, sc) = (sigma_max(&matrix(&a)), sigma_max(&matrix(&c)));
    let stacked = sigma_max(&DMatrix::from_fn(6, 6, |r, k| if r < 3 { a[[r, k]] } else { c[[r - 3, k]] } as f64));
    let network = bounds.network();
    assert!((network - (sa * sa + sc * sc).sqrt()).abs() < 1e-5 * network, "{network}");
    assert!(network >= stacked, "{network} < {stacked}");
}

#[test]
fn a_broadcast_branch_counts_once_per_copy() {
    // x + mean(x): the map I + 11ᵀ/6 has norm exactly 2 (along 1), and so has the bound:
    // 1 + √6 · (1/√6), the mean's bound times the root of its six copies.
    let bounds = spectral::analyse(&model(|b| {
        let m = b.op("ReduceMean", &["x"], vec![attr::ints("axes", &[1]), attr::int("keepdims", 1)]);
        b.op("Add", &["x", &m], vec![])
    }))
    .unwrap();
    assert!((bounds.network() - 2.0).abs() < 1e-12, "{}", bounds.network());
}

#[test]
fn swish_is_one_elementwise_function_and_other_products_are_refused() {
    let bounds = spectral::analyse(&model(|b| {
        let s = b.op("Sigmoid", &["x"], vec![]);
        b.op("Mul", &[&s, "x"], vec![])
    }))
    .unwrap();
    let swish = bounds.layers.last().unwrap();
    assert_eq!((swish.op.as_str(), swish.bound, swish.join), ("Mul", 1.0999, Join::Through));
    assert_eq!(bounds.network(), 1.0999, "the Sigmoid's 1/4 is not in the Mul's path");
    let err = spectral::analyse(&model(|b| {
        let s = b.op("Tanh", &["x"], vec![]);
        b.op("Mul", &[&s, "x"], vec![])
    }))
    .unwrap_err();
    assert!(format!("{err:#}").contains("product of signals"), "{err:#}");
}

/// The largest slope of `f` on [-20, 20], by central differences on a grid
/// of 4 million points.
fn max_slope(f: impl Fn(f64) -> f64) -> f64 {
    let h = 1e-5;
    (0..4_000_000)
        .map(|i| -20.0 + i as f64 * 1e-5)
        .map(|x| ((f(x + h) - f(x - h)) / (2.0 * h)).abs())
        .fold(0.0, f64::max)
}

#[test]
fn activation_constants_bound_the_slopes_tightly() {
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let swish = max_slope(|x| x * sigmoid(x));
    assert!(swish <= 1.0999 && swish > 1.0998, "{swish}");
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let gelu_tanh = max_slope(|x| 0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh()));
    assert!(gelu_tanh <= 1.129 && gelu_tanh > 1.1289, "{gelu_tanh}");
    let phi = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    // GELU's slope Φ(x) + xφ(x) peaks at √2, where Φ(√2) = 0.9213503964748575 (erf(1) = 0.8427007929497149).
    let at_peak = 0.5 * (1.0 + 0.8427007929497149) + std::f64::consts::SQRT_2 * phi(std::f64::consts::SQRT_2);
    assert!(at_peak <= 1.128905 && at_peak > 1.128904, "{at_peak}");
    let hard_swish = max_slope(|x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0);
    assert!((hard_swish - 1.5).abs() < 1e-4, "{hard_swish}");
}

/// The bounds of a fixture with residual sums, and a ratio measured on
/// random images below them.
fn residual_fixture(path: &str) -> spectral::Bounds {
    let bounds = spectral::analyse(&advx::onnx::load(path).unwrap()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let images = Array4::from_shape_fn((24, 3, 32, 32), |_| rng.random_range(0.0f32..1.0));
    let mut classifier = Classifier::load(std::path::Path::new(path), Device::Cpu).unwrap();
    let lower = measure::lower_bound(&mut classifier, images.view(), 276, 0).unwrap();
    let network = bounds.network();
    eprintln!("{path}: bound {network:.4e}, measured {:.4}", lower.ratio);
    assert!(network.is_finite() && network >= lower.ratio && lower.ratio > 0.0, "{path}: {network} < {}", lower.ratio);
    assert!(bounds.layers.iter().any(|l| l.join == Join::Sum), "{path} has residual sums");
    bounds
}

#[test]
fn residual_networks_are_bounded_above_their_measured_ratio() {
    let resnet = residual_fixture("models/fixtures/resnet18.onnx");
    assert_eq!(resnet.layers.iter().filter(|l| l.op == "Add").count(), 8, "two blocks in each of four stages");
    let mobilenet = residual_fixture("models/fixtures/mobilenet_v2.onnx");
    let depthwise = mobilenet.layers.iter().filter(|l| l.weight.as_ref().is_some_and(|(_, s)| s[1] == 1)).count();
    assert!(depthwise >= 3, "MobileNetV2's depthwise convolutions are bounded: {depthwise}");
}

#[test]
fn the_architectures_get_bounds_above_their_measured_norms() {
    let options = spectral::Options { norms: Some(Device::Cpu), tolerance: 1e-4 };
    for name in ["alexnet", "vgg", "resnet18", "mobilenet_v2"] {
        let model = advx::onnx::load(format!("models/fixtures/{name}.onnx")).unwrap();
        let bounds = spectral::analyse_with(&model, &options).unwrap();
        let weighted: Vec<_> = bounds.layers.iter().filter(|l| ["Conv", "Gemm"].contains(&l.op.as_str())).collect();
        assert!(weighted.len() >= 5, "{name}: {} weighted layers", weighted.len());
        for l in weighted {
            let spectral::Measurement::Norm(norm) = &l.norm else { panic!("{name} {}: {:?}", l.name, l.norm) };
            assert!(norm.converged, "{name} {}: {norm:?}", l.name);
            // The measured norm is from below and the bound from above; f32 runs add 1e-6.
            assert!(
                norm.value <= l.bound * (1.0 + 1e-5),
                "{name} {}: norm {} above bound {}",
                l.name,
                norm.value,
                l.bound
            );
            if l.op == "Gemm" {
                assert!(l.bound / norm.value < 1.0 + 1e-3, "{name} {}: a dense bound is exact", l.name);
            }
        }
        let (bound, with_norms) = (bounds.network(), bounds.reach_measured()[bounds.output]);
        assert!(with_norms <= bound * (1.0 + 1e-5) && with_norms > 0.0, "{name}: {with_norms} vs {bound}");
    }
}
