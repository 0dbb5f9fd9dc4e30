//! `advx bench` end to end at a tiny size: every part runs, the YAML file
//! has every figure with sane values, the table names every block, and
//! the scipy reference attacks the very (image, target) pairs advx
//! attacked, with the same search, when the project's `.venv` has scipy.
//! No timing is asserted.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

const MODEL: &str = "fc100-100-10";
const IMAGES: usize = 8;

fn has_mnist() -> bool {
    advx::data::load("mnist", advx::data::Split::Test).is_ok()
}

fn has_reference_python() -> bool {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    Command::new(&python).args(["-c", "import scipy, onnxruntime, numpy"]).output().is_ok_and(|o| o.status.success())
}

fn number(v: &Value, path: &str) -> f64 {
    let mut at = v;
    for key in path.split('.') {
        at = match key.parse::<usize>() {
            Ok(i) => &at[i],
            Err(_) => &at[key],
        };
    }
    at.as_f64().unwrap_or_else(|| panic!("{path} is not a number: {at:?}"))
}

fn positive(v: &Value, path: &str) -> f64 {
    let x = number(v, path);
    assert!(x.is_finite() && x > 0.0, "{path} = {x}");
    x
}

fn check_run(v: &Value, at: &str) {
    let rate = number(v, &format!("{at}.success_rate"));
    assert!((0.0..=1.0).contains(&rate), "{at}.success_rate = {rate}");
    assert!(rate > 0.5, "{at}: the attack should succeed on FC100-100-10, rate {rate}");
    assert_eq!(number(v, &format!("{at}.examples")), IMAGES as f64, "{at}");
    let d = positive(v, &format!("{at}.mean_distortion"));
    assert!(d < 0.2, "{at}: mean distortion {d} is not a small perturbation");
    positive(v, &format!("{at}.examples_per_second"));
    let evals = positive(v, &format!("{at}.evaluations_per_example"));
    assert!((1.0..=10.0 * 15000.0).contains(&evals), "{at}: {evals} evaluations per example");
    positive(v, &format!("{at}.gflops"));
}

#[test]
fn the_suite_runs_at_a_tiny_size_and_records_every_figure() {
    if !has_mnist() {
        eprintln!("skipping: MNIST is not on the data path");
        return;
    }
    let reference = has_reference_python();
    if !reference {
        eprintln!("note: .venv lacks scipy or onnxruntime; the reference is left out (scripts/setup.sh installs them)");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_advx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("ADVX_THREADS", "1")
        .args(["bench", "--models", MODEL, "--images", &IMAGES.to_string(), "--attack-batch", "2"])
        .args(["--reference", if reference { MODEL } else { "none" }])
        .args(["--batches", "1,16", "--seconds", "0.05", "--train-images", "300", "--units-images", "500"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("advx runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    for block in ["lbfgs:", "backward:", "train:", "units:", "advx, refine off"] {
        assert!(text.contains(block), "the table lacks {block}:\n{text}");
    }
    let table = std::fs::read_to_string(out.with_extension("txt")).unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains(table.trim_end()), "the .txt is the printed table");

    let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["threads"].as_u64(), Some(1), "ADVX_THREADS reaches the runtime");
    assert!(positive(&v, "machine.peak_gflops") < 1e6);
    assert!(v["machine"]["peak_method"].as_str().unwrap().contains("GHz"));
    assert!(v["versions"]["onnxruntime"].as_str().is_some_and(|s| !s.is_empty()));

    // lbfgs: FC100's backward graph, counted by hand: (784·100 + 100·100 + 100·10) MACs each way.
    let row = &v["lbfgs"][0];
    assert_eq!(row["model"].as_str(), Some(MODEL));
    assert_eq!(row["batch"].as_u64(), Some(2));
    assert!(table.contains(&format!("{IMAGES} images of mnist:test in batches of 2")), "{table}");
    assert!(number(row, "advx.peak_fraction") > 0.0, "a CPU run is read against the CPU's peak");
    assert_eq!(number(row, "flops_per_evaluation"), 4.0 * (784.0 * 100.0 + 100.0 * 100.0 + 100.0 * 10.0));
    check_run(row, "advx");
    check_run(row, "advx_no_refine");
    // The refinement keeps a success's answer when it is not better, so it never loses.
    assert!(number(row, "advx.mean_distortion") <= number(row, "advx_no_refine.mean_distortion") + 1e-9);
    if reference {
        check_run(row, "reference");
        assert_eq!(row["reference"]["versions"]["scipy"].as_str(), Some("1.16.3"));
        let c = &row["comparison"];
        positive(c, "speed_ratio");
        positive(c, "speed_ratio_no_refine");
        assert_eq!(number(c, "examples"), IMAGES as f64);
        assert!(number(c, "common_successes") >= 1.0);
        // The same search on the same pairs: without the refinement advx finds
        // the reference's answers, up to f32 rounding and the solvers' last digits.
        let ratio = positive(c, "distortion_ratio_no_refine");
        assert!((0.9..1.1).contains(&ratio), "refine off against the reference: distortion ratio {ratio}");
        let pairs: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("results-reference").join(MODEL).join("pairs.json")).unwrap(),
        )
        .unwrap();
        let targets = pairs["targets"].as_array().unwrap();
        let labels = pairs["labels"].as_array().unwrap();
        assert_eq!(targets.len(), IMAGES);
        assert!(targets.iter().zip(labels).all(|(t, l)| t != l), "a target is never the true label");
    } else {
        assert!(row["reference"].is_null());
    }

    // backward: one row per batch, the backward graph twice the forward's work.
    let backward = v["backward"].as_sequence().unwrap();
    assert_eq!(backward.len(), 2);
    for b in backward {
        assert_eq!(number(b, "forward_backward_flops"), 2.0 * number(b, "forward_flops"));
        let ratio = positive(b, "ratio");
        assert!(ratio > 0.5, "forward+backward cannot be much cheaper than forward: {ratio}");
        positive(b, "forward_images_per_second");
        positive(b, "forward_backward_images_per_second");
    }
    assert_eq!(v["backward"][1]["batch"].as_u64(), Some(16));

    // train: FC100's recipe has one phase; at least one untimed step, then timed ones.
    let train = &v["train"][0];
    assert_eq!(train["phase"].as_str(), Some("training"));
    assert_eq!(number(train, "images"), 200.0, "300 images at batch 100: 3 steps, 1 warm-up");
    positive(train, "images_per_second");

    // units: the first sigmoid layer, every unit and 100 random directions.
    let units = &v["units"][0];
    assert_eq!(units["layer"].as_str(), Some("advx_sigmoid"));
    assert_eq!(number(units, "directions"), 200.0);
    assert_eq!(number(units, "images"), 500.0);
    let (natural, random) = (number(units, "purity_natural"), number(units, "purity_random"));
    assert!((0.0..=1.0).contains(&natural) && (0.0..=1.0).contains(&random));
    assert!(natural > 0.2, "the top images of a unit share a label more often than chance (0.1): {natural}");
}

#[test]
fn an_unavailable_device_is_a_clear_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_advx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", "--models", MODEL, "--device", "cuda:7", "--out"])
        .arg(dir.path().join("r.yaml"))
        .output()
        .expect("advx runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        // A CUDA build on a machine with eight GPUs: nothing to check here.
        return;
    }
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("device cuda:7") && text.contains("CUDA"), "{text}");
    assert!(!dir.path().join("r.yaml").exists(), "nothing measured, nothing written");
}

#[test]
fn unknown_models_and_parts_are_refused() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_advx"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("bench")
            .args(args)
            .output()
            .expect("advx runs")
    };
    let out = run(&["--models", "fc999", "--out", "/nonexistent/r.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model fc999"));
    let out = run(&["--only", "lbfgs,speed"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = run(&["--models", "fc100-100-10", "--reference", "cnn", "--out", "/nonexistent/r.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not among --models"));
    let out = run(&["--models", "fc100-100-10", "--attack-batch", "0", "--out", "/nonexistent/r.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--attack-batch must be at least 1"));
    let script = ["--reference-script", "bench/reference/lbfgs_jax.py", "--out", "/nonexistent/r.yaml"];
    let out = run(&[&["--models", "fc100-100-10"][..], &script].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no reference script bench/reference/lbfgs_jax.py"));
}

fn has_peers() -> bool {
    let python = advx::bench::default_peers_python();
    advx::bench::optimality::check_peers(&python).is_ok()
}

/// The optimality part end to end at a tiny size: advx and the four peers
/// on the same pairs, every example's best among them, and advertorch's
/// LBFGSAttack as the speed peer on the first two.
#[test]
fn the_optimality_part_measures_advx_against_the_per_example_best() {
    if !has_mnist() || !has_peers() {
        eprintln!("skipped: no MNIST, or no .venv-peers (bash scripts/peers.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_advx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", "--only", "optimality", "--models", MODEL, "--images", "4", "--peer-steps", "30"])
        .args(["--reference", MODEL, "--reference-images", "2", "--walk", "5", "--out"])
        .arg(&out)
        .output()
        .expect("advx runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let v: Value = serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let row = &v["optimality"][0];
    assert_eq!(row["walk"].as_u64(), Some(5));
    let methods = row["methods"].as_sequence().unwrap();
    let names: Vec<&str> = methods.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["advx", "ddn", "alma", "fmn", "cw", "lbfgs"]);
    assert_eq!(methods[0]["success_rate"].as_f64(), Some(1.0), "advx reaches every target");
    let mut near = 0.0;
    for m in &methods[..5] {
        let ratio = m["mean_ratio_to_best"].as_f64().unwrap_or(f64::NAN);
        assert!(ratio.is_nan() || ratio >= 1.0 - 1e-12, "{:?}: a ratio to the best below 1: {ratio}", m["name"]);
        near += m["within_1_percent"].as_f64().unwrap() * 4.0;
    }
    assert!(near >= 4.0, "each example's best is within 1% of itself: {near} of at least 4");
    assert!(positive(&methods[0], "evaluations_per_example") > 0.0);
    assert_eq!(methods[5]["examples"].as_u64(), Some(2), "the speed peer takes --reference-images");
    assert!(positive(&row["speed"], "speed_ratio") > 0.0);
    let table = std::fs::read_to_string(out.with_extension("txt")).unwrap();
    assert!(table.contains("optimality:") && table.contains("advx / lbfgs"), "{table}");
}

#[test]
fn the_optimality_part_without_its_peers_fails_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_advx"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", "--only", "optimality", "--models", MODEL, "--peers-python", "/nonexistent/python", "--out"])
        .arg(&out)
        .output()
        .expect("advx runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/python") && stderr.contains("scripts/peers.sh"), "{stderr}");
    assert!(!out.exists(), "nothing measured, nothing written");
}
