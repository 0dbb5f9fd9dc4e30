//! Attack targets against the classes a model really has, end to end: a
//! script's `lbfgs` on a model with one output class, or with a fixed
//! target the model does not have, fails with a clear error (random
//! targets on a one-class model panicked in `attack/target.rs`).

use advx::onnx::builder::{Elem, GraphBuilder, attr};
use advx::onnx::shape::Dim::{Batch, Fixed};
use advx::runtime::Device;
use advx::session::Session;
use ndarray::{ArrayD, IxDyn};

/// input [N, 1, 28, 28] -> Flatten -> Gemm -> scores [N, classes].
fn classifier(classes: usize) -> advx::onnx::ModelProto {
    let mut b = GraphBuilder::new();
    b.input("input", Elem::F32, &[Batch, Fixed(1), Fixed(28), Fixed(28)]);
    let w = b.const_f32("w", &ArrayD::from_shape_fn(IxDyn(&[classes, 784]), |i| ((i[0] + i[1]) % 7) as f32 * 0.01));
    let flat = b.op("Flatten", &["input"], vec![]);
    let scores = b.op("Gemm", &[&flat, &w], vec![attr::int("transB", 1)]);
    b.output(&scores, Elem::F32, &[Batch, Fixed(classes)]);
    b.into_model("classes", 17, "a linear classifier")
}

/// The error of a cell that attacks a model with `classes` classes, if any.
fn attack_error(classes: usize, options: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("classes{classes}.onnx"));
    advx::onnx::save(&classifier(classes), &path).unwrap();
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    let cell = format!("model m = onnx \"{}\"\nlet a = lbfgs m on mnist.test[0..3] {options}", path.display());
    s.execute(&cell).error.map(|e| e.render(false))
}

#[test]
fn lbfgs_on_a_model_with_one_class_is_an_error() {
    for target in ["random", "next", "untargeted", "0"] {
        let e = attack_error(1, &format!("{{ target: \"{target}\" }}")).expect("an error");
        assert!(e.contains("another class than the true one, but the model has 1"), "{target}: {e}");
    }
}

#[test]
fn lbfgs_with_a_fixed_target_the_model_lacks_is_an_error() {
    assert_eq!(attack_error(10, "{ target: \"9\", lagrangian: 2 }"), None, "a ten-class model has label 9");
    let e = attack_error(5, "{ target: \"7\" }").expect("an error");
    assert!(e.contains("target label 7 is not one of the model's 5"), "{e}");
}

#[test]
fn a_fixed_target_may_be_a_number_and_any_class_of_the_model() {
    assert_eq!(attack_error(10, "{ target: 9, lagrangian: 2 }"), None, "target: 9 as a number");
    assert_eq!(attack_error(300, "{ target: 299, lagrangian: 2 }"), None, "class 299 of a 300-class model");
    let e = attack_error(5, "{ target: 7 }").expect("an error");
    assert!(e.contains("target label 7 is not one of the model's 5"), "{e}");
    let e = attack_error(5, "{ target: 2.5 }").expect("an error");
    assert!(e.contains("`target` must be a whole number"), "{e}");
}
