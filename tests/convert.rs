//! Scripts and notebooks as two forms of one thing: `advx convert` both
//! ways, and `advx run X.ipynb` writing the executed notebook.

use std::path::Path;
use std::process::{Command, Output};

fn advx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advx")).args(args).output().expect("advx runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// nbformat's validator, from the project's venv (scripts/setup.sh installs it).
fn validate(notebook: &Path) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let check = "import sys, warnings, nbformat; warnings.simplefilter('error'); \
                 nbformat.validate(nbformat.read(sys.argv[1], as_version=4))";
    let out = Command::new(&python).args(["-c", check]).arg(notebook).output().expect("the venv's python runs");
    assert!(out.status.success(), "{}: {}", notebook.display(), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_notebook_script_comes_back_from_its_notebook_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let scripts: Vec<_> = std::fs::read_dir(root.join("notebooks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "advx"))
        .collect();
    assert!(scripts.len() >= 4, "{scripts:?}");
    for script in scripts {
        let notebook = dir.path().join(script.file_stem().unwrap()).with_extension("ipynb");
        let back = notebook.with_extension("advx");
        let out = advx(&["convert", path(&script), "--to", "ipynb", "-o", path(&notebook)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        validate(&notebook);
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&notebook).unwrap()).unwrap();
        assert_eq!(json["metadata"]["kernelspec"]["name"], "advx");
        let out = advx(&["convert", path(&notebook), "--to", "advx", "-o", path(&back)]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            std::fs::read_to_string(&back).unwrap(),
            std::fs::read_to_string(&script).unwrap(),
            "{}",
            script.display()
        );
    }
}

#[test]
fn convert_keeps_what_exists_and_refuses_other_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.advx");
    std::fs::write(&script, "# %%\nlet a = 1\n").unwrap();
    std::fs::write(dir.path().join("s.ipynb"), "keep me").unwrap();
    let out = advx(&["convert", path(&script), "--to", "ipynb"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(dir.path().join("s.ipynb")).unwrap(), "keep me");

    let python = dir.path().join("py.ipynb");
    std::fs::write(&python, r#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "language": "python"}}, "cells": []}"#).unwrap();
    let out = advx(&["convert", path(&python), "--to", "advx"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("python kernel"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = advx(&["run", path(&python), "--out", path(&dir.path().join("o"))]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn running_a_notebook_fills_in_its_outputs_as_papermill_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let model = root.join("models/mnist/fc100-100-10.onnx");
    let script = dir.path().join("study.advx");
    let text = format!(
        "# A study.\n\n# %% setup\nparam n = 1000\nmodel fc100 = onnx \"{}\"\n\n# %% [markdown]\n# The *error*.\n\n# %% errors\nshow evaluate fc100 on mnist.test[0..n]\n\n# %% digits\nshow grid(mnist.test[0..4], cols: 2)\n",
        model.display()
    );
    std::fs::write(&script, &text).unwrap();
    let notebook = dir.path().join("study.ipynb");
    assert!(advx(&["convert", path(&script), "--to", "ipynb"]).status.success());
    let out_dir = dir.path().join("run");
    let out = advx(&["run", path(&notebook), "-p", "n=50", "--out", path(&out_dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let executed = out_dir.join("study.ipynb");
    validate(&executed);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&executed).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    let kinds: Vec<&str> = cells.iter().map(|c| c["cell_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["markdown", "code", "markdown", "code", "code"]);
    let counts: Vec<_> =
        cells.iter().filter(|c| c["cell_type"] == "code").map(|c| c["execution_count"].clone()).collect();
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(cells[2]["source"], serde_json::json!(["The *error*."]));
    let table = &cells[3]["outputs"][0]["data"];
    assert!(
        table["text/html"].to_string().contains("<table") && table["text/plain"].to_string().contains("50"),
        "{table}"
    );
    assert!(cells[4]["outputs"][0]["data"]["image/png"].as_str().is_some_and(|p| p.starts_with("iVBORw0KGgo")));
    assert_eq!(json["metadata"]["advx"]["status"], "complete");
    let results = std::fs::read_to_string(out_dir.join("results.yaml")).unwrap();
    assert!(results.contains("n: 50"), "{results}");
}
