//! A researcher's own model: its input read from the ONNX declaration and
//! every operation that feeds it images checking the set against it before
//! any work, with advx's message naming both shapes.

use std::path::{Path, PathBuf};

use advx::runtime::{Device, Feed, Preprocess, Runtime};
use advx::session::{LoadedModel, Session, Value};

mod cell_errors;
use cell_errors::{error, has};
use ndarray::{Array2, Array4};

fn model(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A session in `dir` holding `rgb`, four labelled 3x32x32 images, and
/// `digits`, four MNIST test images.
fn session(dir: &Path) -> Session {
    let images =
        Array4::from_shape_fn((4, 3, 32, 32), |(n, c, h, w)| ((n * 7 + c * 3 + h * 11 + w) % 97) as f32 / 96.0);
    advx::data::numpy::save(&dir.join("rgb.npz"), images.view(), Some(&[0, 1, 2, 3]), None).unwrap();
    let mut s = Session::new().unwrap().with_base_dir(dir).with_device(advx::runtime::Device::Cpu);
    s.run("let rgb = numpy \"rgb.npz\"\nlet digits = mnist.test[0..4]").unwrap();
    s
}

fn load(s: &mut Session, name: &str, path: &Path) {
    s.run(&format!("model {name} = onnx \"{}\"", path.display())).unwrap();
}

#[test]
fn every_operation_refuses_images_of_another_shape_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    load(&mut s, "fc100", &model("models/mnist/fc100-100-10.onnx"));
    load(&mut s, "cnn", &model("models/fixtures/residual_cnn.onnx"));
    let wanted = "fc100 takes [N, 1, 28, 28] images; numpy \"rgb.npz\" is [4, 3, 32, 32]";
    for (op, code) in [
        ("evaluate", "evaluate fc100 on rgb"),
        ("evaluate", "evaluate [cnn, fc100] on rgb"),
        ("predict", "predict fc100 on rgb"),
        ("lbfgs", "lbfgs fc100 on rgb"),
        ("transfer", "transfer rgb to [cnn, fc100]"),
        ("units", "units fc100 layer: \"advx_sigmoid\" on rgb"),
        ("visualize", "visualize fc100 layer: \"advx_sigmoid\" { from: rgb }"),
        ("lipschitz", "lipschitz fc100 { on: rgb }"),
    ] {
        let e = error(&mut s, code);
        assert!(has(&e, &format!("{op}: {wanted}")), "{code}: {e}");
    }
    let e = error(&mut s, "evaluate cnn on digits");
    assert!(has(&e, "cnn takes [N, 3, 32, 32] images; mnist.test[0..4] is [4, 1, 28, 28]"), "{e}");
    s.run("let fine = evaluate [cnn] on rgb\nlet digits_fine = evaluate fc100 on digits").unwrap();
}

#[test]
fn the_check_comes_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("cnn.onnx");
    std::fs::copy(model("models/fixtures/residual_cnn.onnx"), &copy).unwrap();
    let mut s = session(dir.path());
    load(&mut s, "cnn", &copy);
    let e = error(&mut s, "lbfgs cnn on digits");
    assert!(has(&e, "lbfgs: cnn takes [N, 3, 32, 32] images; mnist.test[0..4] is [4, 1, 28, 28]"), "{e}");
    assert!(!dir.path().join("backward").exists(), "no backward graph was exported for an attack refused");
}

#[test]
fn flat_channels_last_and_fixed_batch_inputs_are_read_from_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    load(&mut s, "mlp", &model("models/fixtures/mlp_flat.onnx"));
    load(&mut s, "keras", &model("models/fixtures/keras_nhwc.onnx"));
    load(&mut s, "fixed", &model("models/fixtures/fixed_batch.onnx"));
    let e = error(&mut s, "evaluate mlp on rgb");
    assert!(has(&e, "mlp takes [N, 784] images; numpy \"rgb.npz\" is [4, 3, 32, 32]"), "{e}");
    let e = error(&mut s, "predict keras on digits");
    assert!(has(&e, "keras takes [N, 32, 32, 3] images; mnist.test[0..4] is [4, 1, 28, 28]"), "{e}");
    let e = error(&mut s, "lbfgs fixed on digits");
    assert!(has(&e, "fixed takes [2, 3, 32, 32] images; mnist.test[0..4] is [4, 1, 28, 28]"), "{e}");
}

#[test]
fn the_classifier_checks_every_batch_it_runs() {
    let mut classifier =
        advx::classifier::Classifier::load(&model("models/fixtures/residual_cnn.onnx"), advx::runtime::Device::Cpu)
            .unwrap();
    let e = classifier.predict(Array4::zeros((2, 1, 28, 28)).view()).unwrap_err().to_string();
    assert!(e.ends_with("residual_cnn.onnx takes [N, 3, 32, 32] images; the batch is [2, 1, 28, 28]"), "{e}");
    assert_eq!(classifier.predict(Array4::zeros((2, 3, 32, 32)).view()).unwrap().len(), 2);
}

#[test]
fn a_transpose_at_the_input_makes_it_channels_last_whatever_its_channels() {
    let dir = tempfile::tempdir().unwrap();
    let script = "import numpy as np, onnx\n\
        from onnx import helper as h, TensorProto as T, numpy_helper as nh\n\
        w = nh.from_array(np.arange(512, dtype=np.float32).reshape(256, 2) / 512, 'w')\n\
        g = h.make_graph([h.make_node('Transpose', ['x'], ['t'], perm=[0, 3, 1, 2]),\n\
                          h.make_node('Flatten', ['t'], ['f']), h.make_node('MatMul', ['f', 'w'], ['y'])],\n\
            'g', [h.make_tensor_value_info('x', T.FLOAT, ['n', 8, 8, 4])],\n\
            [h.make_tensor_value_info('y', T.FLOAT, ['n', 2])], [w])\n\
        onnx.save(h.make_model(g, opset_imports=[h.make_opsetid('', 13)], ir_version=8), 'four.onnx')\n";
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = std::process::Command::new(python).arg("-c").arg(script).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let images = Array4::from_shape_fn((2, 4, 8, 8), |(n, c, h, w)| ((n + 2 * c + 3 * h + 5 * w) % 7) as f32 / 6.0);
    let model = LoadedModel::load("four", &dir.path().join("four.onnx"), Device::Cpu, Preprocess::default()).unwrap();
    model.check_shape("predict", "planar", images.shape()).unwrap();
    let channels_last = images.view().permuted_axes([0, 2, 3, 1]);
    let want = raw_scores(&dir.path().join("four.onnx"), channels_last.as_standard_layout().into_dyn().view());
    assert_close(&model.classifier().unwrap().scores(images.view()).unwrap(), &want);
}

/// The scores of the model at `path` on `input` as it takes it, run by ONNX Runtime without advx's adaptation.
fn raw_scores(path: &Path, input: ndarray::ArrayViewD<f32>) -> Array2<f32> {
    let mut raw = Runtime::get().unwrap().load(path, Device::Cpu).unwrap();
    let name = raw.input_names()[0].clone();
    let outputs = raw.run(&[(name.as_str(), Feed::F32(input))]).unwrap();
    outputs.first().clone().into_dimensionality().unwrap()
}

fn assert_close(got: &Array2<f32>, want: &Array2<f32>) {
    assert_eq!(got.shape(), want.shape());
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "scores differ by {worst}: {got:?} vs {want:?}");
}

fn images(n: usize, c: usize, h: usize, w: usize) -> Array4<f32> {
    Array4::from_shape_fn((n, c, h, w), |(n, c, h, w)| ((n * 7 + c * 3 + h * 11 + w * 5) % 97) as f32 / 96.0)
}

fn loaded(name: &str, path: &str, preprocess: Preprocess) -> LoadedModel {
    LoadedModel::load(name, &model(path), Device::Cpu, preprocess).unwrap()
}

#[test]
fn a_channels_last_model_runs_on_advx_pixels_transposed_in_its_graph() {
    let keras = loaded("keras", "models/fixtures/keras_nhwc.onnx", Preprocess::default());
    let x = images(3, 3, 32, 32);
    keras.check_shape("predict", "x", x.shape()).unwrap();
    let adaptation = keras.adaptation().expect("adapted").to_string();
    assert!(adaptation.contains("NHWC [N, 32, 32, 3]"), "{adaptation}");
    let want = raw_scores(
        &model("models/fixtures/keras_nhwc.onnx"),
        x.view().permuted_axes([0, 2, 3, 1]).as_standard_layout().into_dyn().view(),
    );
    assert_close(&keras.classifier().unwrap().scores(x.view()).unwrap(), &want);
    assert!(!keras.file().unwrap().starts_with(env!("CARGO_MANIFEST_DIR")), "the adapted graph is in the cache");
}

#[test]
fn a_flat_model_takes_the_shape_of_the_first_images_it_is_given() {
    let mlp = loaded("mlp", "models/fixtures/mlp_flat.onnx", Preprocess::default());
    assert!(mlp.classifier().is_err(), "no image shape yet");
    let x = images(3, 1, 28, 28);
    mlp.check_shape("evaluate", "digits", x.shape()).unwrap();
    assert_eq!(mlp.image_shape(), Some([1, 28, 28]));
    let want = raw_scores(
        &model("models/fixtures/mlp_flat.onnx"),
        x.view().into_shape_with_order((3, 784)).unwrap().into_dyn(),
    );
    assert_close(&mlp.classifier().unwrap().scores(x.view()).unwrap(), &want);
    let e = mlp.check_shape("evaluate", "other", &[2, 4, 14, 14]).unwrap_err().to_string();
    assert!(e.contains("mlp takes [N, 1, 28, 28] images; other is [2, 4, 14, 14]"), "{e}");
}

#[test]
fn a_fixed_batch_model_runs_any_number_of_images_in_padded_batches() {
    // Exported from the same network as residual_cnn (make_fixtures.py), with a batch of 2.
    let fixed = loaded("fixed", "models/fixtures/fixed_batch.onnx", Preprocess::default());
    let free = loaded("cnn", "models/fixtures/residual_cnn.onnx", Preprocess::default());
    let x = images(5, 3, 32, 32);
    fixed.check_shape("predict", "x", x.shape()).unwrap();
    assert!(fixed.adaptation().is_none(), "padding is done at run time, not in the graph");
    let want = free.classifier().unwrap().scores(x.view()).unwrap();
    assert_close(&fixed.classifier().unwrap().scores(x.view()).unwrap(), &want);
}

#[test]
fn declared_preprocessing_is_compiled_into_the_graph_advx_runs() {
    let (mean, std) =
        (vec![0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0], vec![0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0]);
    let preprocess = Preprocess { scale: Some(255.0), mean: mean.clone(), std: std.clone() };
    let cnn = loaded("cnn", "models/fixtures/residual_cnn.onnx", preprocess);
    let x = images(2, 3, 32, 32);
    cnn.check_shape("predict", "x", x.shape()).unwrap();
    let normalised = Array4::from_shape_fn(x.dim(), |(n, c, h, w)| (255.0 * x[[n, c, h, w]] - mean[c]) / std[c]);
    let want = raw_scores(&model("models/fixtures/residual_cnn.onnx"), normalised.view().into_dyn());
    assert_close(&cnn.classifier().unwrap().scores(x.view()).unwrap(), &want);
    assert!(cnn.adaptation().unwrap().to_string().contains("scale 255"));
}

#[test]
fn preprocessing_that_cannot_be_applied_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let cnn = model("models/fixtures/residual_cnn.onnx").display().to_string();
    let e = error(&mut s, &format!("model m = onnx \"{cnn}\" {{ std: [0.5, 0, 0.5] }}"));
    assert!(has(&e, "`std` holds 0; a standard deviation must be positive"), "{e}");
    let e = error(&mut s, &format!("model m = onnx \"{cnn}\" {{ mean: [0.5, 0.5] }}"));
    assert!(has(&e, "`mean` has 2 values; images of 3 channels need 1 or 3"), "{e}");
    let e = error(&mut s, &format!("model m = onnx \"{cnn}\" {{ mean: \"imagenet\" }}"));
    assert!(has(&e, "`mean` must be a number or a list of numbers, one per channel, not a string"), "{e}");
}

#[test]
fn adapted_models_attack_in_pixel_space_and_the_run_records_how() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["keras_nhwc", "mlp_flat", "fixed_batch", "residual_cnn"] {
        std::fs::copy(model(&format!("models/fixtures/{name}.onnx")), dir.path().join(format!("{name}.onnx"))).unwrap();
    }
    let script = "let rgb = numpy \"rgb.npz\"\nlet gray = numpy \"gray.npz\"\n\
        model keras = onnx \"keras_nhwc.onnx\"\nmodel mlp = onnx \"mlp_flat.onnx\"\n\
        model fixed = onnx \"fixed_batch.onnx\"\n\
        model norm = onnx \"residual_cnn.onnx\" { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }\n\
        # %%\nlet a = lbfgs keras on rgb { lagrangian: 50 }\nlet b = lbfgs mlp on gray { lagrangian: 50 }\n\
        let c = lbfgs fixed on rgb { lagrangian: 50 }\nlet d = lbfgs norm on rgb { lagrangian: 50 }\n";
    std::fs::write(dir.path().join("own.advx"), script).unwrap();
    advx::data::numpy::save(&dir.path().join("rgb.npz"), images(3, 3, 32, 32).view(), Some(&[0, 1, 2]), None).unwrap();
    advx::data::numpy::save(&dir.path().join("gray.npz"), images(3, 1, 28, 28).view(), Some(&[0, 1, 2]), None).unwrap();
    let mut s = Session::new().unwrap().with_base_dir(dir.path()).with_device(Device::Cpu);
    s.run(script).unwrap();
    for attack in ["a", "b", "c", "d"] {
        let Some(Value::Object(found)) = s.get(attack) else { panic!("{attack} is an attack") };
        let Some(Value::Images(adversarial)) = found.field("images") else { panic!("{attack} has images") };
        let Some(Value::Number(rate)) = found.field("success_rate") else { panic!("{attack} has a success rate") };
        assert!(rate > 0.0, "{attack}: no adversarial example on a random network");
        assert!(adversarial.images.iter().all(|v| (0.0..=1.0).contains(v)), "{attack}: pixels stay in [0, 1]");
        assert_eq!(
            adversarial.images.shape()[1..],
            [if attack == "b" { 1 } else { 3 }, 32 - 4 * (attack == "b") as usize, 32 - 4 * (attack == "b") as usize]
        );
    }
    assert!(
        !dir.path().join("backward").join("keras_nhwc.xent.onnx").exists(),
        "an adapted graph's gradient is not put beside the user's model"
    );
    let norm = s.models().iter().find(|m| m.name == "norm").unwrap();
    assert_eq!(norm.preprocess.mean, vec![0.5; 3]);
}

#[test]
fn results_yaml_and_advx_eval_say_how_a_model_was_fed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(model("models/fixtures/keras_nhwc.onnx"), dir.path().join("keras.onnx")).unwrap();
    advx::data::numpy::save(&dir.path().join("rgb.npz"), images(3, 3, 32, 32).view(), Some(&[0, 1, 2]), None).unwrap();
    let script = "model keras = onnx \"keras.onnx\" { scale: 255, mean: 127.5, std: 127.5 }\n\
        let rgb = numpy \"rgb.npz\"\nevaluate keras on rgb\n";
    std::fs::write(dir.path().join("own.advx"), script).unwrap();
    let advx = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_advx")).args(args).current_dir(dir.path()).output();
        let out = out.unwrap();
        assert!(out.status.success(), "advx {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    advx(&["run", "own.advx", "--out", "out", "--device", "cpu"]);
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("out/results.yaml")).unwrap()).unwrap();
    let keras = &yaml["models"][0];
    assert_eq!(keras["preprocess"]["scale"].as_f64(), Some(255.0));
    assert_eq!(keras["preprocess"]["mean"][0].as_f64(), Some(127.5));
    let adaptation = keras["adaptation"].as_str().unwrap();
    assert!(adaptation.contains("NHWC [N, 32, 32, 3]") && adaptation.contains("std [127.5]"), "{adaptation}");
    let printed = advx(&["eval", "keras.onnx", "--data", "numpy:rgb.npz", "--device", "cpu", "--scale", "255"]);
    assert!(printed.contains("keras.onnx"), "{printed}");
}

#[test]
fn lipschitz_bounds_the_adapted_graph_from_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let keras = model("models/fixtures/keras_nhwc.onnx").display().to_string();
    s.run(&format!("model k = onnx \"{keras}\" {{ std: 0.25 }}\nlet l = lipschitz k {{ on: rgb[0..2], pairs: 1 }}"))
        .unwrap();
    let Some(Value::Object(l)) = s.get("l") else { panic!("a Lipschitz table") };
    let (Some(Value::List(ops)), Some(Value::List(bounds))) = (l.field("ops"), l.field("layers")) else {
        panic!("ops and bounds")
    };
    let ops: Vec<&str> = ops.iter().map(|o| if let Value::Str(o) = o { o.as_str() } else { "?" }).collect();
    assert_eq!(ops[..2], ["Div", "Transpose"], "the prefix comes first");
    assert!(matches!(bounds[0], Value::Number(b) if b == 4.0), "dividing by 0.25 multiplies distances by 4");
}
