//! The committed models: each loads, its manifest's test error is what advx
//! measures now, its files match the manifest's hashes, and its backward
//! graph is what `advx grad` exports today. And the sessions that run them
//! read the subnormal numbers their weights hold as zero.

use std::path::{Path, PathBuf};

use advx::classifier::Classifier;
use advx::data::{self, Split};
use advx::grad::{self, Objective};
use advx::runtime::Device;
use advx::train::{self, Manifest, manifest::sha256_file};
use prost::Message;

/// Images whose prediction may flip between ORT builds or thread counts
/// (summation order) without the model having changed.
const FLIP_ALLOWANCE: f64 = 3.0 / 10000.0;

fn manifests() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("models/mnist")
        .expect("models/mnist exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.to_string_lossy().ends_with(".recipe.yaml"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn every_recipe_has_a_trained_model() {
    for entry in std::fs::read_dir("models/mnist").unwrap().flatten() {
        let path = entry.path();
        if let Some(name) = path.file_name().unwrap().to_str().unwrap().strip_suffix(".recipe.yaml") {
            assert!(Path::new(&format!("models/mnist/{name}.yaml")).is_file(), "{name} has a recipe but no manifest");
        }
    }
    assert!(manifests().len() >= 10, "expected the paper's ten models, found {}", manifests().len());
}

#[test]
fn manifests_match_the_files_and_the_measured_test_error() {
    let test = data::load("mnist", Split::Test).expect("MNIST test set (set ADVX_DATA, see README)");
    for path in manifests() {
        let m = Manifest::load(&path).unwrap();
        let dir = path.parent().unwrap();
        let model_path = dir.join(&m.model);
        assert_eq!(
            sha256_file(&model_path).unwrap(),
            m.model_sha256,
            "{} changed since its manifest",
            model_path.display()
        );
        assert_eq!(
            sha256_file(&dir.join(&m.recipe)).unwrap(),
            m.recipe_sha256,
            "{}: recipe changed since training",
            m.name
        );
        let model = advx::onnx::load(&model_path).unwrap();
        assert_eq!(train::parameter_count(&model).unwrap(), m.parameters, "{}", m.name);
        let mut classifier = Classifier::load(&model_path, Device::Cpu).unwrap();
        let measured = classifier.evaluate(test.images.view(), &test.labels).unwrap().error_rate();
        assert!(
            (measured - m.test_error).abs() <= FLIP_ALLOWANCE,
            "{}: manifest says test error {:.4}, measured {measured:.4}",
            m.name,
            m.test_error
        );
        println!("{:<18} test error {:.2}% (manifest {:.2}%)", m.name, 100.0 * measured, 100.0 * m.test_error);
    }
}

#[test]
fn committed_backward_graphs_are_up_to_date() {
    for path in manifests() {
        let m = Manifest::load(&path).unwrap();
        let dir = path.parent().unwrap();
        let fresh = grad::export_file(&dir.join(&m.model), &Objective::Xent).unwrap().encode_to_vec();
        let committed = std::fs::read(dir.join(&m.backward)).unwrap();
        assert!(fresh == committed, "{}: {} is stale; regenerate with `advx grad {}`", m.name, m.backward, m.model);
    }
}

/// Trained weights hold subnormal numbers (MNIST's border pixels never
/// light, so weight decay shrinks theirs past f32's normal range), and
/// saturated activations can make more: on x86 every operation on one
/// takes a slow microcode path, which made the MNIST MLPs' attack five
/// times slower. Sessions read and write them as zero, on the thread
/// that made the session and on any other that runs it, and leave the
/// threads' own arithmetic as IEEE 754 has it (or advx's results would
/// depend on which thread computed what).
#[test]
fn sessions_treat_subnormal_numbers_as_zero() {
    use advx::onnx::builder::{Elem, GraphBuilder};
    use advx::onnx::shape::Dim;
    use advx::runtime::{Feed, Runtime};

    let mut b = GraphBuilder::new();
    b.input("x", Elem::F32, &[Dim::Fixed(3)]);
    let half = b.scalar(0.5);
    let y = b.op("Mul", &["x", &half], vec![]);
    b.output(&y, Elem::F32, &[Dim::Fixed(3)]);
    let model = b.into_model("halve", 17, "y = x / 2");
    let mut session = Runtime::get().unwrap().load_proto(&model, "halve", Device::Cpu).unwrap();
    let x = ndarray::arr1(&[1e-39_f32, 2e-38, 4.0]).into_dyn();
    let mut halve = move || {
        let outputs = session.run(&[("x", Feed::F32(x.view()))]).unwrap();
        let tiny = std::hint::black_box(1e-30_f32) * std::hint::black_box(1e-10_f32);
        assert!(tiny > 0.0, "this thread's own arithmetic flushes subnormal numbers");
        outputs.get(&y).unwrap().iter().copied().collect::<Vec<f32>>()
    };
    // A subnormal input reads as 0, a normal one whose half is subnormal
    // gives 0, and a normal half is exact.
    assert_eq!(halve(), vec![0.0, 0.0, 2.0]);
    assert_eq!(std::thread::spawn(halve).join().unwrap(), vec![0.0, 0.0, 2.0]);
}
