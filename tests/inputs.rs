//! Every option and input of the operations is checked before any work:
//! numbers finite and in range, counts bounded, images present and in the
//! pixel box, labels that are classes of the model, a model's output shaped
//! as scores. Each error names the operation and the option or the culprit.

use std::path::{Path, PathBuf};
use std::process::Command;

use advx::classifier::Classifier;
use advx::onnx::builder::{Elem, GraphBuilder, attr};
use advx::onnx::shape::Dim::{Batch, Fixed};
use advx::runtime::{Device, Runtime};
use advx::session::{Session, Value};
use ndarray::{ArrayD, IxDyn};

const FC100: &str = "models/mnist/fc100-100-10.onnx";
const H1: &str = "advx_sigmoid";

fn session() -> Session {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    s.run(&format!("model fc100 = onnx \"{FC100}\"\nlet test = mnist.test[0..300]")).unwrap();
    s
}

/// The error of a cell that must fail, its lines joined as one.
fn error(s: &mut Session, code: &str) -> String {
    match s.execute(code).error {
        Some(e) => one_line(&e.render(false)),
        None => panic!("`{code}` should fail"),
    }
}

/// The words of a rendered error without the frame miette wraps them in.
fn one_line(text: &str) -> String {
    text.split_whitespace().filter(|word| *word != "│").collect::<Vec<_>>().join(" ")
}

fn expect_errors(s: &mut Session, cases: &[(&str, &str)]) {
    for (code, wanted) in cases {
        let text = error(s, code);
        assert!(text.contains(wanted), "`{code}`: wanted {wanted:?} in\n{text}");
    }
}

#[test]
fn numbers_must_be_finite_and_counts_bounded() {
    let mut s = session();
    let nan = "(1e400 - 1e400)";
    expect_errors(
        &mut s,
        &[
            (
                &format!("lbfgs fc100 on test[0..5] {{ tolerance: {nan} }}"),
                "lbfgs: `tolerance` must be a finite number, not NaN",
            ),
            ("lbfgs fc100 on test[0..5] { noise: 1e400 }", "lbfgs: `noise` must be a finite number, not inf"),
            (
                "lbfgs fc100 on test[0..5] { tolerance: 0 - 1 }",
                "lbfgs: `tolerance` must be a number of at least 0, not -1",
            ),
            (
                "lbfgs fc100 on test[0..5] { batch: 1e9 }",
                "lbfgs: `batch` must be a whole number of at least 1 and at most 10000, not 1000000000",
            ),
            (
                "lbfgs fc100 on test[0..5] { memory: 1e6 }",
                "lbfgs: `memory` must be a whole number of at least 1 and at most 100",
            ),
            ("lbfgs fc100 on test[0..5] { steps: 1e400 }", "lbfgs: `steps` must be a whole number"),
            ("lbfgs fc100 on test[0..5] { seed: 0.5 }", "lbfgs: `seed` must be a whole number"),
            (
                "lbfgs fc100 on test[0..5] { c: 10..1 }",
                "lbfgs: `c` must be a range lo..hi of finite numbers with lo < hi, not 10..1",
            ),
            ("lbfgs fc100 on test[0..5] { c: 1..1 }", "with lo < hi, not 1..1"),
            ("lbfgs fc100 on test[0..5] { c: 1..1e400 }", "of finite numbers with lo < hi, not 1..inf"),
            ("lbfgs fc100 on test[0..5] { c: 0..1 }", "lbfgs: `c` must be a range of positive numbers, not 0..1"),
            (
                "lbfgs fc100 on test[0..5] { steps: 3 }",
                "lbfgs: `steps` tunes the search over c, which the Lagrangian method replaces by default: add \
                 `lagrangian: 0`",
            ),
            ("lbfgs fc100 on test[0..5] { lagrangian: 0.5 }", "lbfgs: `lagrangian` must be a whole number"),
            (
                "lbfgs fc100 on test[0..5] { refine: false, lagrangian: 100 }",
                "`refine: false` is the paper's method alone, the search over c, which `lagrangian` replaces",
            ),
            ("gaussian test stddev: 1e400", "gaussian: `stddev` must be a finite number, not inf"),
            (&format!("magnify test to: {nan}"), "magnify: `to` must be a finite number, not NaN"),
            (&format!("gaussian test stddev: 0.1 seed: {nan}"), "gaussian: `seed` must be a whole number"),
            (
                &format!("visualize fc100 layer: \"{H1}\" {{ step: 0 - 1 }}"),
                "visualize: `step` must be a number greater than 0, not -1",
            ),
            (
                &format!("visualize fc100 layer: \"{H1}\" {{ steps: 1e9 }}"),
                "visualize: `steps` must be a whole number of at least 1 and at most 100000",
            ),
            (
                &format!("visualize fc100 layer: \"{H1}\" {{ starts: 1e9 }}"),
                "visualize: `starts` must be a whole number of at least 1 and at most 400",
            ),
            (
                &format!("units fc100 layer: \"{H1}\" on test {{ random: 1e9 }}"),
                "units: `random` must be a whole number of at least 0 and at most 10000",
            ),
            (
                &format!("units fc100 layer: \"{H1}\" on test {{ top: 1e9 }}"),
                "units: `top` must be a whole number of at least 2 and at most 100",
            ),
            (
                &format!("units fc100 layer: \"{H1}\" on test {{ natural: 0..1e8 }}"),
                "unit 99999999 does not exist: the layer has 100 units",
            ),
            (
                "lipschitz fc100 on test { pairs: 1e10 }",
                "lipschitz: `pairs` must be a whole number of at least 0 and at most 1000000000",
            ),
            (
                "histogram([1, 2, 3], bins: 1e9)",
                "histogram: `bins` must be a whole number of at least 1 and at most 1000",
            ),
            ("grid(test[0..4], cols: 1e9)", "grid: `cols` must be a whole number of at least 1 and at most 400"),
        ],
    );
    // Within range, the same options run.
    s.run("show histogram([1, 2, 3], bins: 1000)\nshow gaussian test[0..2] stddev: 0.1 seed: 9007199254740992")
        .unwrap();
}

#[test]
fn images_fed_to_a_model_must_be_pixels_in_the_box() {
    let mut s = session();
    let outside = "pixel values outside [0, 1] (found values from 0 to 2); models take pixels in [0, 1]";
    expect_errors(
        &mut s,
        &[
            ("evaluate fc100 on test * 2", "evaluate: `on` (test * 2) has "),
            ("evaluate fc100 on test * 2", outside),
            ("predict fc100 on test - 1", "(found values from -1 to 0)"),
            ("lbfgs fc100 on test[0..5] * 2", "lbfgs: `on` (test[0..5] * 2) has "),
            ("transfer [test * 2] to fc100", "transfer: set test * 2 has "),
            ("gaussian (test + 0.5) stddev: 0.1", "gaussian: `data` ("),
            ("gaussian (test + 0.5) stddev: 0.1", "(found values from 0.5 to 1.5)"),
            (&format!("units fc100 layer: \"{H1}\" on test * 2"), "units: `on` (test * 2) has "),
            (
                &format!("visualize fc100 layer: \"{H1}\" {{ from: test[0..2] * 2 }}"),
                "visualize: `from` (test[0..2] * 2) has ",
            ),
            ("lipschitz fc100 on test * 2", "lipschitz: `on` (test * 2) has "),
            (
                "evaluate fc100 on test * (1e400 - 1e400)",
                "has 235200 of 235200 pixel values outside [0, 1] (found only NaN)",
            ),
        ],
    );
    let (count, total) = {
        let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..300).unwrap();
        (set.images.iter().filter(|&&v| v > 0.5).count(), set.images.len())
    };
    let text = error(&mut s, "evaluate fc100 on test * 2");
    assert!(text.contains(&format!("has {count} of {total} pixel values outside")), "{text}");
    // A difference is for display.
    s.run("show grid(test[0..4] - test[4..8])").unwrap();
}

#[test]
fn an_empty_set_is_an_error_where_data_is_needed() {
    let mut s = session();
    expect_errors(
        &mut s,
        &[
            ("evaluate fc100 on test[0..0]", "evaluate: `on` (mnist.test[0..0]) has no images"),
            ("predict fc100 on test[0..0]", "predict: `on` (mnist.test[0..0]) has no images"),
            ("lbfgs fc100 on test[0..0]", "lbfgs: `on` (mnist.test[0..0]) has no images"),
            ("gaussian test[0..0] stddev: 0.1", "gaussian: `data` (mnist.test[0..0]) has no images"),
            (&format!("units fc100 layer: \"{H1}\" on test[0..0]"), "units: `on` (mnist.test[0..0]) has no images"),
        ],
    );
    // An attack that found nothing has nothing to magnify (its distortion would read 0).
    s.run("let none = lbfgs fc100 on test[0..2] { c: 1e-9..1e-8, steps: 1, refine: false }").unwrap();
    s.run("let rate = none.success_rate").unwrap();
    assert!(matches!(s.get("rate"), Some(Value::Number(r)) if *r == 0.0), "the fixture finds no example");
    expect_errors(&mut s, &[("magnify none to: 0.1", "holds no adversarial examples (the attack found none)")]);
    let out = advx(&["eval", FC100, "--limit", "0", "--device", "cpu"]);
    assert_eq!(out.0, Some(1), "{}", out.1);
    assert!(out.1.contains("no images to evaluate on: mnist:test limited to 0 images"), "{}", out.1);
}

#[test]
fn a_class_with_no_images_has_no_error_rate() {
    let mut s = session();
    let shown = s.run("show evaluate fc100 on test where label == 3").unwrap();
    let text = &shown[0].bundle.text;
    let row = text.lines().find(|l| l.starts_with("fc100")).unwrap();
    assert_eq!(row.split_whitespace().filter(|cell| *cell == "-").count(), 9, "nine classes have no image: {text}");
    s.run("let per_class = (evaluate fc100 on test where label == 3).per_class").unwrap();
    let Some(Value::List(rates)) = s.get("per_class") else { panic!("a list") };
    assert_eq!(rates.len(), 10);
    assert!(rates.iter().enumerate().all(|(c, r)| (c == 3) != r.as_number().unwrap().is_nan()), "{rates:?}");
}

/// A Flatten and a Gemm from 784 pixels to `classes` scores, with the
/// scores reshaped to `shape` (batch first) when given.
fn linear_model(dir: &Path, name: &str, classes: usize, shape: Option<&[i64]>) -> PathBuf {
    let mut b = GraphBuilder::new();
    b.input("input", Elem::F32, &[Batch, Fixed(1), Fixed(28), Fixed(28)]);
    let flat = b.op("Flatten", &["input"], vec![attr::int("axis", 1)]);
    let weights = ArrayD::from_shape_fn(IxDyn(&[784, classes]), |ix| ((ix[0] * 7 + ix[1] * 13) % 11) as f32 / 100.0);
    let w = b.const_f32("w", &weights);
    let mut scores = b.op("Gemm", &[&flat, &w], vec![]);
    let dims: Vec<advx::onnx::shape::Dim> = match shape {
        Some(shape) => {
            let target = b.const_i64("shape", shape);
            scores = b.op("Reshape", &[&scores, &target], vec![]);
            std::iter::once(Batch).chain(shape[1..].iter().map(|&d| Fixed(d as usize))).collect()
        }
        None => vec![Batch, Fixed(classes)],
    };
    b.push(advx::onnx::NodeProto {
        op_type: Some("Identity".into()),
        input: vec![scores],
        output: vec!["scores".into()],
        ..Default::default()
    });
    b.output("scores", Elem::F32, &dims);
    let path = dir.join(format!("{name}.onnx"));
    advx::onnx::save(&b.into_model(name, 17, "a test fixture"), &path).unwrap();
    path
}

fn classifier(path: &Path) -> Classifier {
    Classifier::new(Runtime::get().unwrap().load(path, Device::Cpu).unwrap()).unwrap()
}

#[test]
fn labels_must_be_classes_of_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let five = linear_model(dir.path(), "five", 5, None);
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..100).unwrap();
    let mut model = classifier(&five);
    let e = model.evaluate(test.images.view(), &test.labels).unwrap_err().to_string();
    let first = test.labels.iter().position(|&l| l >= 5).unwrap();
    let wanted =
        format!("image {first} is labelled {}, but {} has 5 classes (0 to 4)", test.labels[first], five.display());
    assert!(e.contains(&wanted), "{e}");
    let low: Vec<usize> = (0..100).filter(|&i| test.labels[i] < 5).collect();
    let images = test.images.select(ndarray::Axis(0), &low);
    let labels: Vec<advx::data::Label> = low.iter().map(|&i| test.labels[i]).collect();
    let evaluation = model.evaluate(images.view(), &labels).unwrap();
    assert_eq!(evaluation.confusion.len(), 5, "one row per class of the model, not 10");
    assert_eq!(evaluation.total(), low.len());

    // Through the language: evaluate and transfer name the model.
    let mut s = session();
    s.run(&format!("model five = onnx \"{}\"", five.display())).unwrap();
    expect_errors(
        &mut s,
        &[
            ("evaluate five on test", "evaluate: model five on mnist.test[0..300]: image 0 is labelled 7"),
            ("transfer [test] to [five]", "transfer: model five on mnist.test[0..300]: image 0 is labelled 7"),
        ],
    );
}

#[test]
fn a_model_with_one_output_predicts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let one = linear_model(dir.path(), "one", 1, None);
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..10).unwrap();
    let e = classifier(&one).predict(test.images.view()).unwrap_err().to_string();
    assert!(e.contains("output 'scores' gives 1 score per image, and a prediction needs at least 2 classes"), "{e}");
}

#[test]
fn scores_not_shaped_n_by_classes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let boxed = linear_model(dir.path(), "boxed", 10, Some(&[-1, 2, 5]));
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..3).unwrap();
    let e = classifier(&boxed).evaluate(test.images.view(), &test.labels).unwrap_err().to_string();
    let wanted = "output 'scores' is shaped [3, 2, 5] for 3 images; a classifier's first output must be [N, classes]";
    assert!(e.contains(wanted), "{e}");
}

/// `advx ARGS`: the exit code and all output.
fn advx(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_advx")).args(args).output().expect("advx runs");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_benchmark_refuses_options_out_of_range_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.yaml");
    // Options that would otherwise run: the checks alone refuse them.
    let base =
        ["bench", "--only", "backward", "--models", "fc10-1e-4", "--reference", "none", "--out", out.to_str().unwrap()];
    for (extra, wanted) in [
        (&["--seconds", "nan"][..], "--seconds must be a positive number, not NaN"),
        (&["--seconds=0"], "--seconds must be a positive number, not 0"),
        (&["--batches", "1,100000000"], "--batches must each be from 1 to 65536, not 100000000"),
        (&["--batches", "0"], "--batches must each be from 1 to 65536, not 0"),
        (&["--attack-batch", "1000000"], "--attack-batch must be at most 10000, not 1000000"),
        (&["--peak-gflops=-1"], "--peak-gflops must be a positive number, not -1"),
    ] {
        let (code, text) = advx(&[&base[..], extra].concat());
        assert_eq!(code, Some(1), "{extra:?}: {text}");
        assert!(text.contains(wanted), "{extra:?}: {text}");
        assert!(!out.exists(), "{extra:?}: nothing measured, nothing written");
    }
}
