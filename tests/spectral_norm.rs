//! Krylov methods for spectral norms against dense linear algebra:
//! Lanczos against nalgebra's SVD on matrices with separated,
//! clustered, repeated and decaying top singular values; the Lanczos bound
//! of a large fully connected layer against its exact σ_max; and the norm
//! measured through ONNX Runtime against the SVD of the layer's operator
//! written out in Rust, entry by entry.

use advx::onnx::builder::{Elem, attr, value_info};
use advx::onnx::proto::type_proto;
use advx::onnx::shape::Dim;
use advx::onnx::{AttributeProto, GraphBuilder, ModelProto};
use advx::runtime::Device;
use advx::spectral::lanczos::{self, Operator, Transposed};
use advx::spectral::{dense, graph, norm, svd};
use nalgebra::{DMatrix, DVector};
use ndarray::{Array2, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

fn sigma_max(m: &DMatrix<f64>) -> f64 {
    m.singular_values().max()
}

/// A dense matrix as a Lanczos operator.
struct Dense(DMatrix<f64>);

impl Operator for Dense {
    fn shape(&self) -> (usize, usize) {
        self.0.shape()
    }
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> anyhow::Result<()> {
        out.copy_from_slice((&self.0 * DVector::from_column_slice(x)).as_slice());
        Ok(())
    }
    fn apply_transpose(&mut self, y: &[f64], out: &mut [f64]) -> anyhow::Result<()> {
        out.copy_from_slice((self.0.transpose() * DVector::from_column_slice(y)).as_slice());
        Ok(())
    }
}

fn gaussian(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DMatrix::from_fn(rows, cols, |_, _| rng.sample(StandardNormal))
}

/// `U diag(s) Vᵀ` with random orthonormal `U` and `V`.
fn with_spectrum(rows: usize, cols: usize, s: &[f64], seed: u64) -> DMatrix<f64> {
    let u = gaussian(rows, s.len(), seed).qr().q();
    let v = gaussian(cols, s.len(), seed + 1).qr().q();
    u * DMatrix::from_diagonal(&DVector::from_column_slice(s)) * v.transpose()
}

#[test]
fn lanczos_matches_a_dense_svd_and_never_exceeds_it() {
    let n = 60;
    let separated = gaussian(80, n, 1);
    let wide = gaussian(40, 90, 2);
    let clustered: Vec<f64> = (0..n).map(|i| if i < 5 { 1.0 - 1e-7 * i as f64 } else { 0.9 / (i as f64) }).collect();
    let repeated: Vec<f64> = (0..n).map(|i| if i < 4 { 2.0 } else { 1.99 - 0.01 * i as f64 }).collect();
    let decaying: Vec<f64> = (0..n).map(|i| 10f64.powf(-12.0 * i as f64 / (n - 1) as f64)).collect();
    let cases = [
        ("separated", separated),
        ("wide", wide),
        ("clustered", with_spectrum(70, n, &clustered, 3)),
        ("repeated", with_spectrum(n, 75, &repeated, 5)),
        ("ill-conditioned", with_spectrum(n, n, &decaying, 7)),
    ];
    for (name, matrix) in cases {
        let exact = sigma_max(&matrix);
        let options = lanczos::Options { tolerance: 1e-10, max_steps: 200, seed: 11 };
        let limit = matrix.nrows().min(matrix.ncols());
        let mut op = Dense(matrix);
        let e = lanczos::sigma_max(&mut op, &options).unwrap();
        assert!(e.relative_residual() <= 1e-10 || e.steps == limit, "{name}: {e:?}");
        assert!(relative(e.value, exact) < 1e-6, "{name}: {} vs {exact}", e.value);
        assert!(e.value <= exact * (1.0 + 1e-12), "{name}: {} exceeds {exact}", e.value);
        let t = lanczos::sigma_max(&mut Transposed(&mut op), &options).unwrap();
        assert!(relative(t.value, exact) < 1e-6, "{name}, transposed: {} vs {exact}", t.value);
    }
}

#[test]
fn lanczos_stops_at_the_tolerance_or_the_step_limit_from_below() {
    let mut op = Dense(gaussian(300, 200, 4));
    let exact = sigma_max(&op.0);
    let loose = lanczos::sigma_max(&mut op, &lanczos::Options { tolerance: 1e-2, max_steps: 200, seed: 1 }).unwrap();
    assert!(loose.relative_residual() <= 1e-2 && loose.steps < 200, "{loose:?}");
    let tight = lanczos::sigma_max(&mut op, &lanczos::Options { tolerance: 1e-9, max_steps: 200, seed: 1 }).unwrap();
    assert!(tight.steps > loose.steps && tight.relative_residual() <= 1e-9, "{tight:?}");
    assert!(loose.value <= tight.value && tight.value <= exact * (1.0 + 1e-12));
    assert!(relative(tight.value, exact) < 1e-9);
    let capped = lanczos::sigma_max(&mut op, &lanczos::Options { tolerance: 1e-9, max_steps: 3, seed: 1 }).unwrap();
    assert_eq!(capped.steps, 3);
    assert!(capped.value < tight.value);
}

/// `AᵀA` of a dense matrix as a symmetric Lanczos operator.
struct Gram(DMatrix<f64>);

impl lanczos::Symmetric for Gram {
    fn dim(&self) -> usize {
        self.0.ncols()
    }
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> anyhow::Result<()> {
        out.copy_from_slice((self.0.transpose() * (&self.0 * DVector::from_column_slice(x))).as_slice());
        Ok(())
    }
}

#[test]
fn symmetric_lanczos_reaches_the_largest_eigenvalue_from_below() {
    let repeated: Vec<f64> = (0..50).map(|i| if i < 3 { 1.0 } else { 0.99 - 0.01 * i as f64 }).collect();
    for (name, a) in [("gaussian", gaussian(70, 50, 1)), ("repeated", with_spectrum(50, 50, &repeated, 2))] {
        let exact = sigma_max(&a).powi(2);
        let mut op = Gram(a);
        // A seed of its own: `with_spectrum`'s seeds would start on a singular vector.
        let options = |max_steps| lanczos::Options { tolerance: 0.0, max_steps, seed: 99 };
        let lanczos::Estimate { value: all, steps, .. } = lanczos::lambda_max(&mut op, &options(500)).unwrap();
        assert!(steps <= 50 && relative(all, exact) < 1e-10, "{name}: {all} vs {exact} after {steps} steps");
        let lanczos::Estimate { value: few, steps, .. } = lanczos::lambda_max(&mut op, &options(5)).unwrap();
        assert_eq!(steps, 5, "{name}");
        assert!(few <= exact * (1.0 + 1e-12) && few < all, "{name}: {few} vs {exact}");
    }
}

fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

#[test]
fn the_lanczos_bound_of_a_large_weight_is_above_its_exact_norm_within_the_inflation() {
    // 700×400 and 400×700: more dimensions than steps (about 250), so the
    // Krylov space is not the whole space; 300×120: it is.
    for (rows, cols, seed) in [(700, 400, 1), (400, 700, 2), (300, 120, 3)] {
        let w = uniform(rows, cols, seed);
        let exact = svd::sigma_max_f32(w.view()).unwrap();
        let (bound, method) = dense::sigma_bound(w.view(), 0).unwrap();
        assert!(bound >= exact, "{rows}×{cols}: {bound} < {exact}");
        assert!(bound <= exact * dense::INFLATION, "{rows}×{cols}: {bound} vs {exact}");
        assert!(method.contains("Kuczyński–Woźniakowski") && method.contains("1e-12"), "{method}");
        let (steps, _) = dense::plan(cols);
        assert!(method.contains(&format!("{steps} steps")), "{method}");
    }
}

#[test]
fn a_weight_under_the_threshold_keeps_its_exact_svd() {
    for (rows, cols) in [(784, 100), (100, 100), (100, 10)] {
        let w = uniform(rows, cols, 9);
        let (bound, method) = dense::sigma_bound(w.view(), dense::EXACT_WORK).unwrap();
        assert_eq!(bound, svd::sigma_max_f32(w.view()).unwrap());
        assert_eq!(method, format!("σ_max of {rows}×{cols}"));
    }
    let mut nan = uniform(300, 200, 1);
    nan[[7, 3]] = f32::NAN;
    assert!(dense::sigma_bound(nan.view(), 0).unwrap_err().to_string().contains("NaN"));
}

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0f32..1.0))
}

/// A model of one node named `name` reading `x` shaped `input` (batch
/// first) and constants; its output is declared without a shape.
fn one_node(op: &str, input: &[usize], constants: &[&ArrayD<f32>], attrs: Vec<AttributeProto>) -> ModelProto {
    let mut b = GraphBuilder::new();
    let dims: Vec<Dim> = std::iter::once(Dim::Batch).chain(input.iter().map(|&d| Dim::Fixed(d))).collect();
    b.input("x", Elem::F32, &dims);
    let mut inputs = vec!["x".to_string()];
    inputs.extend(constants.iter().map(|c| b.const_f32("c", c)));
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let y = b.op(op, &refs, attrs);
    b.nodes.last_mut().unwrap().name = Some(format!("layer_{}", op.to_lowercase()));
    let mut output = value_info(&y, Elem::F32, &[]);
    if let Some(type_proto::Value::TensorType(t)) = output.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    b.outputs.push(output);
    b.into_model("t", advx::onnx::OPSET, "spectral norm test")
}

const TOLERANCE: f64 = 1e-4;

/// The measured norm of the model's one layer, checked against `exact`.
fn check_measured(model: &ModelProto, exact: &DMatrix<f64>, what: &str) {
    let walk = graph::walk(model).unwrap();
    let measured = norm::measure(&walk.vertices[0].step, Device::Cpu, TOLERANCE).unwrap().expect("a linear layer");
    let sigma = sigma_max(exact);
    assert!(measured.converged && measured.residual <= TOLERANCE, "{what}: {measured:?}");
    assert!(relative(measured.value, sigma) < 1e-4, "{what}: measured {} vs exact {sigma}", measured.value);
    // From below, up to the f32 rounding of the runs.
    assert!(measured.value <= sigma * (1.0 + 1e-6), "{what}: measured {} above {sigma}", measured.value);
}

/// ONNX's Conv (cross-correlation) as a matrix, written out: `[C, H, W]`
/// input, weight `[Cout, C / group, kh, kw]`, pads top, left, bottom, right.
fn conv_matrix(
    w: &ArrayD<f32>,
    input: [usize; 3],
    strides: [usize; 2],
    pads: [usize; 4],
    group: usize,
) -> DMatrix<f64> {
    let (cout, cin_g, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
    let [c, h, wd] = input;
    let oh = (h + pads[0] + pads[2] - kh) / strides[0] + 1;
    let ow = (wd + pads[1] + pads[3] - kw) / strides[1] + 1;
    let mut m = DMatrix::zeros(cout * oh * ow, c * h * wd);
    for o in 0..cout {
        let g = o / (cout / group);
        for (y, x) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
            for (i, ky, kx) in (0..cin_g).flat_map(|i| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (i, ky, kx)))) {
                let (iy, ix) = (
                    (y * strides[0] + ky) as isize - pads[0] as isize,
                    (x * strides[1] + kx) as isize - pads[1] as isize,
                );
                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                    continue;
                }
                let ch = g * cin_g + i;
                m[((o * oh + y) * ow + x, (ch * h + iy as usize) * wd + ix as usize)] += w[[o, i, ky, kx]] as f64;
            }
        }
    }
    m
}

#[test]
fn measured_conv_norms_match_the_svd_of_the_written_out_operator() {
    // (input [C, H, W], weight, strides, pads, group)
    let cases = [
        ([3, 11, 11], [4, 3, 3, 3], [2, 2], [1, 1, 1, 1], 1),
        ([4, 9, 10], [6, 2, 3, 2], [1, 2], [1, 0, 2, 1], 2),
        ([4, 8, 8], [4, 1, 3, 3], [3, 3], [0, 0, 0, 0], 4),
    ];
    for (k, (input, weight, strides, pads, group)) in cases.into_iter().enumerate() {
        let w = random(&weight, 10 + k as u64);
        let bias = random(&[weight[0]], 20 + k as u64);
        let attrs = vec![
            attr::ints("strides", &strides.map(|s| s as i64)),
            attr::ints("pads", &pads.map(|p| p as i64)),
            attr::int("group", group as i64),
        ];
        let model = one_node("Conv", &input, &[&w, &bias], attrs);
        check_measured(&model, &conv_matrix(&w, input, strides, pads, group), &format!("conv {k}"));
    }
}

#[test]
fn measured_gemm_batch_norm_and_average_pool_norms_match_the_svd_of_the_written_out_operator() {
    let w = random(&[7, 12], 1);
    let c = random(&[7], 2);
    let gemm = one_node("Gemm", &[12], &[&w, &c], vec![attr::int("transB", 1), attr::float("alpha", 0.7)]);
    let exact = DMatrix::from_fn(7, 12, |i, j| 0.7 * w[[i, j]] as f64);
    check_measured(&gemm, &exact, "Gemm");

    let [gamma, beta, mean] = [1, 2, 3].map(|s| random(&[3], s));
    let var = random(&[3], 4).mapv(|v| v.abs() + 0.1);
    let bn = one_node("BatchNormalization", &[3, 4, 5], &[&gamma, &beta, &mean, &var], vec![]);
    let scale = |c: usize| gamma[[c]] as f64 / (var[[c]] as f64 + 1e-5).sqrt();
    check_measured(&bn, &DMatrix::from_fn(60, 60, |i, j| if i == j { scale(i / 20) } else { 0.0 }), "BatchNorm");

    // 3×3 windows, stride 2, one pad all round, padding not counted.
    let pool = one_node(
        "AveragePool",
        &[2, 7, 6],
        &[],
        vec![attr::ints("kernel_shape", &[3, 3]), attr::ints("strides", &[2, 2]), attr::ints("pads", &[1, 1, 1, 1])],
    );
    let (oh, ow) = (4, 3);
    let mut exact = DMatrix::zeros(2 * oh * ow, 2 * 7 * 6);
    for (c, y, x) in (0..2).flat_map(|c| (0..oh).flat_map(move |y| (0..ow).map(move |x| (c, y, x)))) {
        let cells: Vec<(usize, usize)> = (0..3)
            .flat_map(|ky| (0..3).map(move |kx| ((2 * y + ky) as isize - 1, (2 * x + kx) as isize - 1)))
            .filter(|&(iy, ix)| iy >= 0 && ix >= 0 && iy < 7 && ix < 6)
            .map(|(iy, ix)| (iy as usize, ix as usize))
            .collect();
        for &(iy, ix) in &cells {
            exact[((c * oh + y) * ow + x, (c * 7 + iy) * 6 + ix)] = 1.0 / cells.len() as f64;
        }
    }
    check_measured(&pool, &exact, "AveragePool");
}

#[test]
fn nonlinear_layers_are_not_measured_and_a_nan_weight_names_its_node() {
    for (op, attrs) in [("Relu", vec![]), ("MaxPool", vec![attr::ints("kernel_shape", &[2, 2])]), ("Sigmoid", vec![])] {
        let model = one_node(op, &[2, 4, 4], &[], attrs);
        let walk = graph::walk(&model).unwrap();
        assert_eq!(norm::measure(&walk.vertices[0].step, Device::Cpu, TOLERANCE).unwrap(), None, "{op}");
    }
    let mut w = random(&[2, 2, 3, 3], 1);
    w[[1, 0, 2, 2]] = f32::NAN;
    let model = one_node("Conv", &[2, 5, 5], &[&w], vec![]);
    let walk = graph::walk(&model).unwrap();
    let err = format!("{:#}", norm::measure(&walk.vertices[0].step, Device::Cpu, TOLERANCE).unwrap_err());
    assert!(err.contains("layer_conv") && err.contains("NaN"), "{err}");
}

#[test]
fn measured_sums_and_scalings_match_their_closed_forms() {
    // ReduceSum over groups of 4 (axes as an int64 input): σ = √4.
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(3), Dim::Fixed(4)]);
    let axes = b.const_i64("axes", &[2]);
    let y = b.op("ReduceSum", &["x", &axes], vec![attr::int("keepdims", 0)]);
    b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(3)]);
    let sum = b.into_model("t", advx::onnx::OPSET, "spectral norm test");
    let walk = graph::walk(&sum).unwrap();
    let measured = norm::measure(&walk.vertices[0].step, Device::Cpu, TOLERANCE).unwrap().unwrap();
    assert!(relative(measured.value, 2.0) < 1e-6, "{measured:?}");

    // Mul by a broadcast constant: a diagonal map, σ = max |c|.
    let c = random(&[4], 5);
    let mul = one_node("Mul", &[3, 4], &[&c], vec![]);
    let largest = c.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    let walk = graph::walk(&mul).unwrap();
    let measured = norm::measure(&walk.vertices[0].step, Device::Cpu, TOLERANCE).unwrap().unwrap();
    assert!(relative(measured.value, largest) < 1e-4, "{measured:?} vs {largest}");
    // The data divided by a constant is linear too.
    let div = one_node("Div", &[3, 4], &[&c], vec![]);
    assert!(norm::measure(&graph::walk(&div).unwrap().vertices[0].step, Device::Cpu, TOLERANCE).unwrap().is_some());
}
