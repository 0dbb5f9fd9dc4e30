//! The spectral bounds (the paper's §4.3) against dense linear algebra: on
//! small layers, each bound is compared with the largest singular value of
//! the layer's explicit matrix, computed by nalgebra's SVD of that matrix
//! (and for dense layers also by a long power iteration). Then the bounds
//! of the committed models are checked against a measured lower bound, and
//! `lipschitz` runs through the language.

use advx::classifier::Classifier;
use advx::onnx::builder::{Elem, attr, value_info};
use advx::onnx::proto::type_proto;
use advx::onnx::shape::Dim;
use advx::onnx::{AttributeProto, GraphBuilder, ModelProto};
use advx::runtime::{Device, Feed, Runtime};
use advx::session::Session;
use advx::spectral::{self, conv, measure};
use nalgebra::DMatrix;
use ndarray::{Array2, Array4, ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CNN: &str = "models/mnist/cnn.onnx";
const FC100: &str = "models/mnist/fc100-100-10.onnx";

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0f32..1.0))
}

fn sigma_max(m: &DMatrix<f64>) -> f64 {
    m.singular_values().max()
}

/// σ_max by power iteration on AᵀA, run until it stops moving.
fn power_norm(a: &DMatrix<f64>) -> f64 {
    let gram = a.transpose() * a;
    let mut v = nalgebra::DVector::from_fn(a.ncols(), |i, _| 1.0 + (i % 7) as f64 * 0.1);
    let mut lambda = 0.0;
    for _ in 0..100_000 {
        let w = &gram * &v;
        let next = w.norm();
        v = w / next;
        if (next - lambda).abs() <= 1e-14 * next {
            break;
        }
        lambda = next;
    }
    lambda.sqrt()
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// A model of one node reading `x` shaped `input` (batch first) and a
/// weight; its output is declared without a shape.
fn one_node(op: &str, input: &[usize], weight: Option<&ArrayD<f32>>, attrs: Vec<AttributeProto>) -> ModelProto {
    let mut b = GraphBuilder::new();
    let dims: Vec<Dim> = std::iter::once(Dim::Batch).chain(input.iter().map(|&d| Dim::Fixed(d))).collect();
    b.input("x", Elem::F32, &dims);
    let mut inputs = vec!["x".to_string()];
    if let Some(w) = weight {
        inputs.push(b.const_f32("w", w));
    }
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let y = b.op(op, &refs, attrs);
    let mut output = value_info(&y, Elem::F32, &[]);
    if let Some(type_proto::Value::TensorType(t)) = output.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    b.outputs.push(output);
    b.into_model("t", advx::onnx::OPSET, "spectral test")
}

/// The bound of the model's first layer.
fn first_bound(model: &ModelProto) -> f64 {
    spectral::analyse(model).unwrap().layers[0].bound
}

/// The matrix of a linear one-node model, column by column through ONNX
/// Runtime, so that it is what the layer computes (pads and strides as
/// ONNX Runtime has them).
fn dense_matrix(model: &ModelProto, input: &[usize]) -> DMatrix<f64> {
    let mut ort = Runtime::get().unwrap().load_proto(model, "t", Device::Cpu).unwrap();
    let size: usize = input.iter().product();
    let mut shape = vec![size];
    shape.extend_from_slice(input);
    let eye = Array2::<f32>::eye(size).into_shape_with_order(IxDyn(&shape)).unwrap();
    let mut out = ort.run(&[("x", Feed::F32(eye.view()))]).unwrap();
    let y = out.take(model.graph.as_ref().unwrap().output[0].name()).unwrap();
    let rows = y.len() / size;
    let y = y.into_shape_with_order((size, rows)).unwrap();
    DMatrix::from_fn(rows, size, |r, c| y[[c, r]] as f64)
}

#[test]
fn dense_bounds_match_a_dense_svd_and_a_power_iteration() {
    for (rows, cols, trans_b, seed) in [(5, 7, 1, 1), (7, 5, 0, 2), (30, 12, 1, 3)] {
        let w = random(&[rows, cols], seed);
        let model =
            one_node("Gemm", &[if trans_b == 1 { cols } else { rows }], Some(&w), vec![attr::int("transB", trans_b)]);
        let bound = first_bound(&model);
        let matrix = DMatrix::from_fn(rows, cols, |i, j| w[[i, j]] as f64);
        assert!(relative(bound, sigma_max(&matrix)) < 1e-3, "Gemm {rows}×{cols}: {bound} vs {}", sigma_max(&matrix));
        assert!(relative(bound, power_norm(&matrix)) < 1e-3, "Gemm {rows}×{cols}: {bound} vs {}", power_norm(&matrix));
    }
    let w = random(&[6, 4], 4);
    let matmul = first_bound(&one_node("MatMul", &[6], Some(&w), vec![]));
    let dense = dense_matrix(&one_node("MatMul", &[6], Some(&w), vec![]), &[6]);
    assert!(relative(matmul, sigma_max(&dense)) < 1e-3, "MatMul: {matmul} vs {}", sigma_max(&dense));
}

/// The circular convolution (ONNX's cross-correlation) as a dense matrix.
fn circular_matrix(w: &ArrayD<f32>, torus: [usize; 2], dilation: [usize; 2]) -> DMatrix<f64> {
    let s = w.shape();
    let (cout, cin, kh, kw) = (s[0], s[1], s[2], s[3]);
    let [h, wd] = torus;
    let mut m = DMatrix::zeros(cout * h * wd, cin * h * wd);
    for (o, r, c) in (0..cout).flat_map(|o| (0..h).flat_map(move |r| (0..wd).map(move |c| (o, r, c)))) {
        for (i, y, x) in (0..cin).flat_map(|i| (0..kh).flat_map(move |y| (0..kw).map(move |x| (i, y, x)))) {
            let (rr, cc) = ((r + y * dilation[0]) % h, (c + x * dilation[1]) % wd);
            m[((o * h + r) * wd + c, (i * h + rr) * wd + cc)] += w[[o, i, y, x]] as f64;
        }
    }
    m
}

#[test]
fn the_fourier_bound_equals_the_dense_norm_of_circular_convolutions() {
    for (shape, torus, dilation, seed) in
        [([4, 3, 3, 3], [6, 6], [1, 1], 10), ([2, 5, 3, 2], [5, 7], [1, 1], 11), ([3, 2, 2, 3], [6, 6], [2, 1], 12)]
    {
        let w = random(&shape, seed);
        let fourier = conv::circular_norm(w.view().into_dimensionality().unwrap(), 1, dilation, torus).unwrap();
        let dense = sigma_max(&circular_matrix(&w, torus, dilation));
        assert!(relative(fourier, dense) < 1e-3, "{shape:?} on {torus:?}: Fourier {fourier} vs dense {dense}");
    }
    // Two groups: block diagonal across channels.
    let w = random(&[4, 2, 3, 3], 13);
    let grouped = conv::circular_norm(w.view().into_dimensionality().unwrap(), 2, [1, 1], [6, 6]).unwrap();
    let mut full = ArrayD::zeros(IxDyn(&[4, 4, 3, 3]));
    for (o, i, y, x) in (0..4).flat_map(|o| (0..2).flat_map(move |i| (0..9).map(move |k| (o, i, k / 3, k % 3)))) {
        full[[o, (o / 2) * 2 + i, y, x]] = w[[o, i, y, x]];
    }
    let dense = sigma_max(&circular_matrix(&full, [6, 6], [1, 1]));
    assert!(relative(grouped, dense) < 1e-3, "groups: Fourier {grouped} vs dense {dense}");
}

#[test]
fn zero_padded_and_strided_convolutions_are_bounded_from_above() {
    let w = random(&[4, 3, 3, 3], 20);
    let cases: [(&[i64], &[i64]); 5] = [
        (&[1, 1, 1, 1], &[1, 1]),
        (&[1, 1, 1, 1], &[2, 2]),
        (&[0, 0, 0, 0], &[2, 2]),
        (&[0, 0, 0, 0], &[1, 1]),
        (&[2, 0, 1, 1], &[1, 2]),
    ];
    for (pads, strides) in cases {
        let attrs = vec![attr::ints("pads", pads), attr::ints("strides", strides), attr::ints("kernel_shape", &[3, 3])];
        let model = one_node("Conv", &[3, 6, 6], Some(&w), attrs);
        let bound = first_bound(&model);
        let dense = sigma_max(&dense_matrix(&model, &[3, 6, 6]));
        assert!(bound >= dense * (1.0 - 1e-9), "pads {pads:?} strides {strides:?}: bound {bound} < dense {dense}");
        assert!(bound <= 3.0 * dense, "pads {pads:?} strides {strides:?}: bound {bound} far above dense {dense}");
    }
    // The dense matrix reading really is the convolution: circular check of the helper on a 1×1 kernel.
    let one = random(&[2, 3, 1, 1], 21);
    let model = one_node("Conv", &[3, 4, 4], Some(&one), vec![]);
    let dense = dense_matrix(&model, &[3, 4, 4]);
    assert!(relative(sigma_max(&dense), sigma_max(&circular_matrix(&one, [4, 4], [1, 1]))) < 1e-6);
}

#[test]
fn pool_bounds_are_exact() {
    for (kernel, strides, pads, include) in
        [([2, 2], [2, 2], [0, 0, 0, 0], 0), ([3, 3], [2, 2], [1, 1, 1, 1], 0), ([3, 2], [1, 2], [1, 0, 1, 1], 1)]
    {
        let attrs = vec![
            attr::ints("kernel_shape", &kernel),
            attr::ints("strides", &strides),
            attr::ints("pads", &pads),
            attr::int("count_include_pad", include),
        ];
        let model = one_node("AveragePool", &[1, 7, 6], None, attrs);
        let (bound, dense) = (first_bound(&model), sigma_max(&dense_matrix(&model, &[1, 7, 6])));
        assert!(relative(bound, dense) < 1e-3, "AveragePool {kernel:?} {strides:?}: {bound} vs {dense}");
    }
    let pool = |k: i64, s: i64| {
        let attrs = vec![attr::ints("kernel_shape", &[k, k]), attr::ints("strides", &[s, s])];
        first_bound(&one_node("MaxPool", &[2, 8, 8], None, attrs))
    };
    assert_eq!(pool(2, 2), 1.0, "disjoint windows");
    assert_eq!(pool(3, 2), 2.0, "3-wide windows at stride 2 share a row and a column: √4");
    assert_eq!(pool(3, 1), 3.0, "stride 1: each value in 3×3 windows: √9");
}

#[test]
fn unknown_ops_and_products_of_signals_are_errors_that_name_the_node() {
    let model = one_node("Sin", &[4], None, vec![]);
    let err = spectral::analyse(&model).unwrap_err().to_string();
    assert!(err.contains("Sin") && err.contains("advx_sin"), "{err}");
    let model = one_node("Exp", &[4], None, vec![]);
    let err = spectral::analyse(&model).unwrap_err().to_string();
    assert!(err.contains("Exp") && err.contains("unbounded"), "{err}");
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(4)]);
    let r = b.op("Relu", &["x"], vec![]);
    let y = b.op("Mul", &["x", &r], vec![]);
    b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(4)]);
    let err = spectral::analyse(&b.into_model("t", advx::onnx::OPSET, "")).unwrap_err().to_string();
    assert!(err.contains("advx_mul") && err.contains("product of signals"), "{err}");
}

/// The bounds of a committed model, its measured lower bound, the table.
fn check_committed(path: &str) -> (spectral::Bounds, measure::Lower) {
    let bounds = spectral::analyse(&advx::onnx::load(path).unwrap()).unwrap();
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..300).unwrap();
    let mut classifier = Classifier::load(std::path::Path::new(path), Device::Cpu).unwrap();
    let lower = measure::lower_bound(&mut classifier, test.images.view(), 50_000, 0).unwrap();
    for l in &bounds.layers {
        eprintln!("{path}: {:<14} {:<8} {:>10.4} {}", l.name, l.op, l.bound, l.method);
    }
    eprintln!("{path}: product {:.4}, lower {:.4} (pairs {:.4})", bounds.network(), lower.ratio, lower.pairs_ratio);
    assert!(bounds.network() >= lower.ratio, "{path}: bound {} < measured {}", bounds.network(), lower.ratio);
    assert!(lower.ratio >= lower.pairs_ratio && lower.pairs_ratio > 0.0);
    (bounds, lower)
}

#[test]
fn committed_models_are_bounded_above_their_measured_ratio() {
    let (fc, _) = check_committed(FC100);
    let ops: Vec<&str> = fc.layers.iter().map(|l| l.op.as_str()).collect();
    assert_eq!(ops.iter().filter(|&&o| o == "Gemm").count(), 3, "{ops:?}");
    assert!(fc.layers.iter().filter(|l| l.op == "Sigmoid").all(|l| l.bound == 0.25));
    let (cnn, _) = check_committed(CNN);
    let convs: Vec<_> = cnn.layers.iter().filter(|l| l.op == "Conv").collect();
    assert_eq!(convs.len(), 2);
    assert!(convs.iter().all(|l| l.method.contains("zero pads")), "{convs:?}");
}

#[test]
fn lipschitz_runs_through_the_language() {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    let outputs =
        s.run("model cnn = onnx \"models/mnist/cnn.onnx\"\nshow lipschitz cnn on mnist.test[0..200]").unwrap();
    let bundle = &outputs.last().unwrap().bundle;
    let text = &bundle.text;
    eprintln!("{text}");
    let analysis = spectral::analyse(&advx::onnx::load(CNN).unwrap()).unwrap();
    for layer in &analysis.layers {
        assert!(text.contains(&layer.name), "{} missing from\n{text}", layer.name);
    }
    assert_eq!(analysis.layers.iter().filter(|l| l.op == "Conv").count(), 2);
    assert!(
        text.contains("Fourier") && text.contains("upper bound") && text.contains("measured lower bound"),
        "{text}"
    );
    assert!(bundle.html.as_deref().unwrap().contains("<table"));
    let json = &bundle.json.as_ref().unwrap()["lipschitz"];
    let (bound, lower) = (json["bound"].as_f64().unwrap(), json["lower"].as_f64().unwrap());
    assert!(relative(bound, analysis.network()) < 1e-12 && bound >= lower && lower > 0.0, "{json}");
    assert_eq!(json["images"].as_u64(), Some(200));
    s.run("let r = lipschitz cnn on mnist.test[0..50] pairs: 100").unwrap();
    let fields = s.run("show r.bound\nshow r.lower\nshow r.layers").unwrap();
    assert_eq!(fields.len(), 3);
    let default = s.run("show lipschitz cnn pairs: 1000").unwrap();
    assert!(
        default[0].bundle.text.contains("on mnist.test[0..1000] (best of 1000 image pairs"),
        "{}",
        default[0].bundle.text
    );
}

#[test]
fn the_bounds_are_kept_when_the_lower_bound_fails_or_is_skipped() {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    s.run("model cnn = onnx \"models/mnist/cnn.onnx\"").unwrap();
    let product = spectral::analyse(&advx::onnx::load(CNN).unwrap()).unwrap().network();
    let one = s.run("let one = lipschitz cnn on mnist.test[0..1]\nshow one").expect("the bounds are kept");
    let text = &one[0].bundle.text;
    assert!(text.contains("measured lower bound: failed on mnist.test[0..1]") && text.contains("at least 2 images"));
    let json = &one[0].bundle.json.as_ref().unwrap()["lipschitz"];
    assert!(relative(json["bound"].as_f64().unwrap(), product) < 1e-12, "{json}");
    assert!(json["lower_failed"].as_str().unwrap().contains("at least 2 images"), "{json}");
    let skipped = s.run("let none = lipschitz cnn pairs: 0\nshow none\nshow none.lower").unwrap();
    assert!(skipped[0].bundle.text.contains("not measured (pairs: 0)"), "{}", skipped[0].bundle.text);
    assert!(
        skipped[1].bundle.text.contains("NaN") || skipped[1].bundle.text.contains("nan"),
        "{}",
        skipped[1].bundle.text
    );
    let vgg = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fixtures/vgg.onnx");
    s.run(&format!("model vgg = onnx \"{vgg}\"")).unwrap();
    let err = s.execute("show lipschitz vgg").error.expect("MNIST does not fit an RGB model").render(false);
    assert!(err.contains("lipschitz: vgg takes [N, 3, 32, 32] images; mnist.test[0..1000] is"), "{err}");
    s.run("show lipschitz vgg pairs: 0").expect("no data is needed without a lower bound");
}

#[test]
fn the_measured_ratio_is_a_lower_bound_of_a_linear_model() {
    // For a linear map the sup ratio is σ_max; measured ratios stay below it.
    let w = random(&[10, 784], 30);
    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Batch, Dim::Fixed(1), Dim::Fixed(28), Dim::Fixed(28)]);
    let flat = b.op("Flatten", &["x"], vec![attr::int("axis", 1)]);
    let wname = b.const_f32("w", &w);
    let y = b.op("Gemm", &[&flat, &wname], vec![attr::int("transB", 1)]);
    b.output(&y, Elem::F32, &[Dim::Batch, Dim::Fixed(10)]);
    let model = b.into_model("t", advx::onnx::OPSET, "");
    let bound = spectral::analyse(&model).unwrap().network();
    let ort = Runtime::get().unwrap().load_proto(&model, "t", Device::Cpu).unwrap();
    let mut classifier = Classifier::new(ort).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let images = Array4::from_shape_fn((40, 1, 28, 28), |_| rng.random_range(0.0f32..1.0));
    let lower = measure::lower_bound(&mut classifier, images.view(), 1000, 0).unwrap();
    assert!(lower.ratio <= bound * (1.0 + 1e-4) && lower.ratio > 0.0, "{} vs {bound}", lower.ratio);
}

/// Models the exporter refuses are refused here too, naming the node, not
/// bounded from sizes that wrap or attributes of the wrong type.
#[test]
fn invalid_layers_are_errors_naming_the_node() {
    let huge = 1usize << 40;
    let cases = [
        ("a Gemm whose inner dims disagree", one_node("Gemm", &[4], Some(&random(&[3, 5], 1)), vec![]), "Gemm node"),
        (
            "an attribute of the wrong type",
            one_node("Gemm", &[5], Some(&random(&[3, 5], 1)), vec![attr::float("transB", 1.0)]),
            "attribute 'transB'",
        ),
        ("an input too large to bound", one_node("Relu", &[huge, huge], None, vec![]), "'x'"),
    ];
    for (what, model, says) in cases {
        let err = format!("{:#}", spectral::analyse(&model).expect_err(what));
        assert!(err.contains(says), "{what}: {err}");
    }
}
