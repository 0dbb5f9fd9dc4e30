//! A researcher's own model: its input read from the ONNX declaration and
//! every operation that feeds it images checking the set against it before
//! any work, with advx's message naming both shapes.

use std::path::{Path, PathBuf};

use advx::session::Session;
use ndarray::Array4;

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

/// The cell's error message, its wrapped lines joined.
fn error(s: &mut Session, code: &str) -> String {
    let rendered = s.execute(code).error.unwrap_or_else(|| panic!("`{code}` should fail")).render(false);
    rendered.lines().map(|l| l.trim_start_matches([' ', '│', '×'])).collect::<Vec<_>>().join(" ")
}

/// Whether `message` says `wanted`, however its lines were wrapped.
fn has(message: &str, wanted: &str) -> bool {
    let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    bare(message).contains(&bare(wanted))
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
fn a_transpose_at_the_input_marks_it_channels_last_whatever_its_channels() {
    let dir = tempfile::tempdir().unwrap();
    let script = "import numpy as np, onnx\n\
        from onnx import helper as h, TensorProto as T, numpy_helper as nh\n\
        w = nh.from_array(np.ones((256, 2), np.float32), 'w')\n\
        g = h.make_graph([h.make_node('Transpose', ['x'], ['t'], perm=[0, 3, 1, 2]),\n\
                          h.make_node('Flatten', ['t'], ['f']), h.make_node('MatMul', ['f', 'w'], ['y'])],\n\
            'g', [h.make_tensor_value_info('x', T.FLOAT, ['n', 8, 8, 4])],\n\
            [h.make_tensor_value_info('y', T.FLOAT, ['n', 2])], [w])\n\
        onnx.save(h.make_model(g, opset_imports=[h.make_opsetid('', 13)], ir_version=8), 'four.onnx')\n";
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = std::process::Command::new(python).arg("-c").arg(script).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let images = Array4::<f32>::zeros((2, 4, 8, 8));
    advx::data::numpy::save(&dir.path().join("planar.npz"), images.view(), Some(&[0, 1]), None).unwrap();
    let mut s = session(dir.path());
    s.run("model four = onnx \"four.onnx\"\nlet planar = numpy \"planar.npz\" { layout: \"nchw\" }").unwrap();
    let e = error(&mut s, "predict four on planar");
    assert!(has(&e, "four takes [N, 8, 8, 4] images (channels last)"), "{e}");
}
