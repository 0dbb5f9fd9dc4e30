//! The `advx` command line end to end: exit codes and what the messages name.

use std::process::{Command, Output};

fn advx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advx")).args(args).output().expect("advx runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn help_lists_every_subcommand() {
    let out = advx(&["--help"]);
    assert!(out.status.success());
    for cmd in ["eval", "grad", "train", "data", "info"] {
        assert!(text(&out).contains(cmd), "--help lacks {cmd}");
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let out = advx(&["eval", "models/mnist/fc10-1e-4.onnx", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("'tpu'"), "{}", text(&out));
    assert_eq!(advx(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_missing_model_is_named_and_exits_with_1() {
    let out = advx(&["info", "no/such/model.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no/such/model.onnx"), "{}", text(&out));
}

#[test]
fn a_corrupt_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    std::fs::write(&path, b"\x08\x07\x12\xff\xff garbage").unwrap();
    let out = advx(&["grad", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("broken.onnx") && text(&out).contains("not a valid ONNX model"), "{}", text(&out));
}

#[test]
fn info_reports_inputs_ops_and_parameters() {
    let out = advx(&["info", "models/mnist/fc100-100-10.onnx"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("input:      input float32 [N, 1, 28, 28]"), "{t}");
    assert!(t.contains("parameters: 89610"), "{t}");
    assert!(t.contains("Gemm x3") && t.contains("Sigmoid x2"), "{t}");
}

#[test]
fn grad_ops_prints_the_derivatives_table() {
    let out = advx(&["grad", "--ops"]);
    let t = text(&out);
    assert!(out.status.success());
    for op in ["Conv", "MaxPool", "Gemm", "Softmax", "BatchNormalization", "LRN"] {
        assert!(t.lines().any(|l| l.starts_with(op)), "no rule line for {op}:\n{t}");
    }
}

#[test]
fn grad_writes_a_backward_graph_that_info_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("fc10.direction.onnx");
    let out = advx(&[
        "grad",
        "models/mnist/fc10-1e-4.onnx",
        "--objective",
        "direction:scores",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let info = text(&advx(&["info", out_path.to_str().unwrap()]));
    assert!(info.contains("input:      direction float32 [N, 10]"), "{info}");
    assert!(info.contains("output:     grad.input float32 [N, 1, 28, 28]"), "{info}");
}

#[test]
fn eval_prints_the_error_rate() {
    let out = advx(&["eval", "models/mnist/fc10-1e-4.onnx", "--limit", "500", "--device", "cpu"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = t.lines().find(|l| l.starts_with("models/mnist/fc10-1e-4.onnx")).expect("a row for the model");
    let rate: f64 = line.split_whitespace().nth(1).unwrap().trim_end_matches('%').parse().unwrap();
    assert!(rate > 1.0 && rate < 15.0, "implausible error rate {rate}% for softmax regression");
}

#[test]
fn cuda_without_support_is_an_error_not_a_fallback() {
    if cfg!(feature = "cuda") {
        return;
    }
    let out = advx(&["eval", "models/mnist/fc10-1e-4.onnx", "--limit", "10", "--device", "cuda"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("without CUDA support"), "{}", text(&out));
}

#[test]
fn auto_says_which_device_it_chose_and_the_rows_agree() {
    let out = advx(&["eval", "models/mnist/fc10-1e-4.onnx", "--limit", "10", "--device", "auto"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let chosen = stderr.lines().find_map(|l| l.strip_prefix("device: ")).expect("the choice on stderr");
    let device = chosen.split_whitespace().next().unwrap();
    if !cfg!(feature = "cuda") {
        assert!(chosen.starts_with("cpu (CUDA not available:"), "{chosen}");
    }
    let row = String::from_utf8_lossy(&out.stdout).lines().find(|l| l.starts_with("models/")).unwrap().to_string();
    assert_eq!(row.split_whitespace().last(), Some(device), "the row's device is the one announced: {row}");
}
