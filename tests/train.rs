//! Training from recipes: dropout layers train through masks the training
//! graph takes as inputs, reproducibly, and leave no trace in the model
//! written; an adversarial pool holds examples that fool the weights of
//! their refresh, and is recorded in the manifest.

use std::path::Path;

use advx::onnx;
use advx::runtime::{Device, Feed};
use advx::train::manifest::sha256_file;
use advx::train::{Recipe, arch};
use ndarray::Axis;

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

/// A recipe whose second epoch attacks 30 training images every 10 steps
/// into a pool of at most 50, a quarter of each minibatch.
const POOLED: &str = "adversarial: {pool: 50, refresh_every: 10, replace: 30, share: 0.25, from_epoch: 2, \
                      attack: {steps: 3, iterations: 10, refine: false, batch: 10}}\n";

#[test]
fn an_adversarial_pool_is_refreshed_against_the_current_weights_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path(), "a", "  - dense: {units: 20, activation: relu}\n  - dense: {units: 10}");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text + POOLED).unwrap();
    let manifest = advx::train::run(&path, dir.path(), Device::Cpu).unwrap();
    let pool = manifest.adversarial.as_ref().expect("the pool's record");
    // 2000 images in batches of 50: steps 0, 10, 20 and 30 of epoch 2.
    assert_eq!((pool.refreshes, pool.attacked), (4, 120), "{pool:?}");
    assert!(pool.made >= 60 && pool.made <= 120, "most attacks on a small model succeed: {pool:?}");
    assert_eq!(pool.pool, pool.made.min(50), "filled, then replaced in place");
    assert!(pool.mean_distortion > 0.0 && pool.mean_distortion < 0.2, "{pool:?}");
    assert!(pool.attack_seconds > 0.0 && pool.attack_seconds <= manifest.training_seconds);
    assert_eq!(pool.epochs.len(), 1);
    assert_eq!((pool.epochs[0].epoch, pool.epochs[0].attacked, pool.epochs[0].made), (2, 120, pool.made));
    assert_eq!(pool.settings.share, 0.25);
    let saved = advx::train::Manifest::load(&dir.path().join("a.yaml")).unwrap();
    assert_eq!(saved.adversarial, manifest.adversarial);
    assert!(!dir.path().join("a.checkpoint.onnx").exists(), "a finished run leaves no checkpoint");

    // The same recipe without the pool learns another model.
    let plain =
        recipe(&dir.path().join("plain"), "a", "  - dense: {units: 20, activation: relu}\n  - dense: {units: 10}");
    advx::train::run(&plain, &dir.path().join("plain"), Device::Cpu).unwrap();
    assert_ne!(
        sha256_file(&dir.path().join("a.onnx")).unwrap(),
        sha256_file(&dir.path().join("plain/a.onnx")).unwrap()
    );
}

#[test]
fn adversarial_settings_are_checked_when_the_recipe_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path(), "a", "  - dense: {units: 10}");
    let text = std::fs::read_to_string(&path).unwrap();
    let cases = [
        (POOLED.replace("share: 0.25", "share: 1.0"), "`share` must be a number in (0, 1), not 1"),
        (
            POOLED.replace("from_epoch: 2", "from_epoch: 3"),
            "`from_epoch` must be an epoch of the training, 1 to 2, not 3",
        ),
        (POOLED.replace("replace: 30", "replace: 0"), "`replace` must be at least 1"),
        (POOLED.replace("steps: 3", "steps: 3, c: [1.0, 0.1]"), "attack `c` must be two positive numbers, increasing"),
        (POOLED.replace("refine: false", "refine: false, target: sideways"), "`target` sideways"),
        (POOLED.replace("pool: 50", "pool: 50, size: 3"), "unknown field `size`"),
    ];
    for (adversarial, wanted) in cases {
        std::fs::write(&path, format!("{text}{adversarial}")).unwrap();
        let error = format!("{:#}", Recipe::load(&path).expect_err(wanted));
        assert!(error.contains(wanted), "{wanted}: {error}");
    }
}

/// Every example a refresh puts in the pool is classified otherwise by the
/// weights it was made against, carries the true label of the training
/// image it came from, and lies near that image.
#[test]
fn the_pools_examples_fool_the_weights_they_were_made_against_and_keep_their_labels() {
    let data = advx::data::load("mnist", advx::data::Split::Train).unwrap().slice(0..200).unwrap();
    let path = Path::new("models/mnist/fc100-100-10.onnx");
    let settings = advx::train::recipe::Adversarial {
        pool: 1000,
        refresh_every: 1,
        replace: 40,
        share: 0.5,
        from_epoch: 1,
        attack: advx::train::recipe::Attack { steps: 3, iterations: 15, refine: false, ..Default::default() },
    };
    let mut pool = advx::train::pool::Pool::new(&settings, [1, 28, 28], 5);
    pool.refresh(&onnx::load(path).unwrap(), &data, Device::Cpu, (1, 0)).unwrap();
    assert!(pool.len() >= 35, "most attacks succeed on FC100: {}", pool.len());

    let (images, labels) = pool.draw(60);
    let mut model = advx::runtime::Runtime::get().unwrap().load(path, Device::Cpu).unwrap();
    let scores = model.run(&[("input", Feed::F32(images.view()))]).unwrap().take("scores").unwrap();
    for (k, (image, &label)) in images.outer_iter().zip(&labels).enumerate() {
        let predicted = advx::classifier::argmax(scores.index_axis(Axis(0), k).iter().copied());
        assert_ne!(predicted, label, "pool example {k} is still classified as its label {label}");
        let rms = |i: usize| {
            let d = data.images.index_axis(Axis(0), i);
            (image.iter().zip(d.iter()).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / 784.0).sqrt()
        };
        let nearest = (0..data.len()).min_by(|&a, &b| rms(a).total_cmp(&rms(b))).unwrap();
        assert_eq!(data.labels[nearest] as usize, label, "pool example {k} is labelled as its original");
        assert!(rms(nearest) < 0.2, "pool example {k} lies {} from its original", rms(nearest));
    }
}
