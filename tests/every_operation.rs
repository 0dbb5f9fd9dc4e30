//! Every operation of the language on a researcher's own data and models:
//! a PNG folder, a `.npz` file and CIFAR-10's binary batches, each run
//! through evaluate, predict, grid, histogram, lbfgs, transfer, gaussian,
//! magnify, units, visualize and lipschitz on the RGB fixture models, in
//! one `advx run` per format.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fixtures").join(format!("{name}.onnx"))
}

/// Eight 3×32×32 images in [0, 1] and their labels.
fn images() -> (Array4<f32>, Vec<u32>) {
    let x =
        Array4::from_shape_fn((8, 3, 32, 32), |(n, c, h, w)| ((n * 29 + c * 50 + h * 3 + w * 7) % 256) as f32 / 255.0);
    (x, (0..8).map(|i| i % 4).collect())
}

/// CIFAR-10's binary distribution: one record of label then planes per image.
fn write_cifar10(dir: &Path) {
    let (x, labels) = images();
    let mut records = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        records.push(label as u8);
        records.extend(x.slice(ndarray::s![i, .., .., ..]).iter().map(|&v| (v * 255.0).round() as u8));
    }
    let dir = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        std::fs::write(dir.join(format!("{file}.bin")), &records).unwrap();
    }
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join("batches.meta.txt"), names).unwrap();
}

/// The same images as PNGs, one subfolder per class.
fn write_png_folder(dir: &Path) {
    let (x, labels) = images();
    advx::data::folder::save(dir, x.view(), Some(&labels), None).unwrap();
}

fn script(data: &str) -> String {
    format!(
        r#"model cnn = onnx "{cnn}"
model vgg = onnx "{vgg}"
let x = {data}
show evaluate [cnn, vgg] on x
show predict cnn on x
show grid(x, cols: 4, labels: cnn.predict(x))
let adv = lbfgs cnn on x[0..3] {{ lagrangian: 30 }}
show adv
show histogram(adv.distortion)
let noisy = gaussian x stddev: 0.05 seed: 1
show transfer [adv, noisy] to [cnn, vgg]
show magnify adv to: 0.1
show units cnn layer: "/Relu_2_output_0" on x {{ natural: 2, random: 2, top: 2 }}
show visualize cnn layer: "/Relu_2_output_0" {{ natural: 1, random: 1, steps: 3 }}
show lipschitz vgg on x
"#,
        cnn = fixture("residual_cnn").display(),
        vgg = fixture("vgg").display()
    )
}

fn run(dir: &Path, data: &str) {
    std::fs::write(dir.join("all.advx"), script(data)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_advx"))
        .args(["run", "all.advx", "--out", "out", "--device", "cpu"])
        .current_dir(dir)
        .env("ADVX_DATA", dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{data}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results = std::fs::read_to_string(dir.join("out/results.yaml")).unwrap();
    assert!(results.contains("status: complete"), "{results}");
    for shown in ["error rates", "lbfgs on", "unit analysis", "Lipschitz bounds"] {
        assert!(stdout.contains(shown), "{data}: no {shown} in\n{stdout}");
    }
    let figures = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"));
    assert!(figures.count() >= 8, "{data}: every figure written");
}

#[test]
fn a_png_folder_runs_through_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    write_png_folder(&dir.path().join("pngs"));
    run(dir.path(), "images \"pngs\"");
}

#[test]
fn an_npz_file_runs_through_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (x, labels) = images();
    advx::data::numpy::save(&dir.path().join("x.npz"), x.view(), Some(&labels), None).unwrap();
    run(dir.path(), "numpy \"x.npz\"");
}

#[test]
fn cifar_format_files_run_through_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path());
    run(dir.path(), "cifar10.test");
}
