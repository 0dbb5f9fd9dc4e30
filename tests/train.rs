//! Training from recipes: dropout layers train through masks the training
//! graph takes as inputs, reproducibly, and leave no trace in the model
//! written.

use std::path::Path;

use advx::onnx;
use advx::runtime::Device;
use advx::train::manifest::sha256_file;
use advx::train::{Recipe, arch};

/// A recipe on the first 2000 training images, two epochs.
fn recipe(dir: &Path, name: &str, layers: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}.recipe.yaml"));
    let text = format!(
        "name: {name}\nsubset: [0, 2000]\nlayers:\n{layers}\n\
         optimizer: {{kind: adam, learning_rate: 0.01, batch_size: 50, epochs: 2}}\nseed: 3\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

const DROPOUT: &str = "  - dropout: {rate: 0.2}\n  - dense: {units: 20, activation: relu}\n  - dropout: {rate: 0.5}\n  - dense: {units: 10}";

#[test]
fn dropout_layers_are_masks_in_the_training_graph_and_absent_from_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let layers = Recipe::load(&recipe(dir.path(), "d", DROPOUT)).unwrap().layers;
    let net = arch::build("d", &layers, 10, 1).unwrap();
    let masks: Vec<(&str, &[usize], f32)> =
        net.masks.iter().map(|m| (m.input.as_str(), &m.shape[..], m.rate)).collect();
    assert_eq!(masks, [("layer1.mask", &[1, 28, 28][..], 0.2), ("layer3.mask", &[20][..], 0.5)]);
    let ops =
        |m: &advx::onnx::ModelProto| onnx::graph(m).node.iter().map(|n| n.op_type().to_string()).collect::<Vec<_>>();
    let inputs =
        |m: &advx::onnx::ModelProto| onnx::graph(m).input.iter().map(|i| i.name().to_string()).collect::<Vec<_>>();
    assert_eq!(ops(&net.training).iter().filter(|o| *o == "Mul").count(), 2);
    assert!(inputs(&net.training).contains(&"layer3.mask".to_string()));
    assert!(!ops(&net.model).contains(&"Mul".to_string()));
    assert_eq!(inputs(&net.model), ["input"]);
    let weights = |m: &advx::onnx::ModelProto| onnx::graph(m).initializer.clone();
    assert_eq!(weights(&net.model), weights(&net.training), "the same weights in both graphs");
}

#[test]
fn dropout_training_is_reproducible_and_changes_what_is_learnt() {
    let dir = tempfile::tempdir().unwrap();
    let without = DROPOUT.replace("rate: 0.2", "rate: 0.0").replace("rate: 0.5", "rate: 0.0");
    let mut hashes = Vec::new();
    for (name, layers, out) in [("d", DROPOUT, "a"), ("d", DROPOUT, "b"), ("d", without.as_str(), "c")] {
        let path = recipe(&dir.path().join(out), name, layers);
        let manifest = advx::train::run(&path, &dir.path().join(out), Device::Cpu).unwrap();
        let model = onnx::load(dir.path().join(out).join("d.onnx")).unwrap();
        assert_eq!(onnx::graph(&model).input.len(), 1, "the written model takes the images only");
        assert!(manifest.test_error < 0.5, "{out}: test error {}", manifest.test_error);
        hashes.push(sha256_file(&dir.path().join(out).join("d.onnx")).unwrap());
    }
    assert_eq!(hashes[0], hashes[1], "the same recipe trains the same model");
    assert_ne!(hashes[0], hashes[2], "dropout changes the training");
}
