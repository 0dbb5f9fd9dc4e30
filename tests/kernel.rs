//! advx's own Jupyter kernel end to end: `advx kernel install` into a
//! temporary prefix, then `tests/kernel/protocol.py` talks to the kernel
//! through jupyter_client as a front end does (kernel_info, execute with
//! each kind of output, errors, completion, inspection, is_complete,
//! interrupt, restart, shutdown).

use std::path::Path;
use std::process::Command;

fn python_with_jupyter_client() -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ready = Command::new(&python).args(["-c", "import jupyter_client"]).output().is_ok_and(|o| o.status.success());
    assert!(ready, "{} has no jupyter_client: run `bash scripts/setup.sh`", python.display());
    python
}

/// A temporary prefix with the kernelspec of the binary under test in
/// its share/jupyter; `extra`: more options of `advx kernel install`, run
/// in the repository.
fn installed_kernel(extra: &[&str]) -> tempfile::TempDir {
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_advx"))
        .args(["kernel", "install", "--prefix"])
        .arg(prefix.path())
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    prefix
}

#[test]
fn install_writes_a_kernelspec_that_starts_this_binary() {
    let prefix = installed_kernel(&[]);
    let spec = prefix.path().join("share/jupyter/kernels/advx/kernel.json");
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    let argv: Vec<&str> = spec["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_advx")).unwrap();
    assert_eq!(std::fs::canonicalize(argv[0]).unwrap(), exe);
    assert_eq!(argv[1..], ["kernel", "--connection-file", "{connection_file}"]);
    assert_eq!((spec["language"].as_str(), spec["interrupt_mode"].as_str()), (Some("advx"), Some("message")));
}

#[test]
fn a_front_end_runs_cells_completes_inspects_and_interrupts() {
    let python = python_with_jupyter_client();
    let prefix = installed_kernel(&[]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(root.join("tests/kernel/protocol.py"))
        .arg(prefix.path().join("share/jupyter"))
        .arg(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The Pygments lexer (grammar/python) knows advx's keywords and
/// operations and lexes every example script and notebook script.
#[test]
fn the_pygments_lexer_knows_the_language() {
    let python = python_with_jupyter_client();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let words = serde_json::json!({
        "keywords": advx::lang::ast::KEYWORDS,
        "operations": advx::session::ops::names(),
    });
    let mut scripts: Vec<_> = ["grammar/examples", "notebooks"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "advx"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 5, "{scripts:?}");
    let out = Command::new(python)
        .arg(root.join("tests/kernel/lexer.py"))
        .arg(words.to_string())
        .args(&scripts)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// JupyterLab from .venv, opened by headless Chromium: a notebook on the
/// advx kernel (with the paper's models from its prelude) runs every cell,
/// shows a table and an image, its code is highlighted, and Tab and
/// Shift-Tab work in a cell being typed; the screenshot goes to
/// target/browser/advx-lab.png.
#[test]
fn jupyterlab_in_a_browser_runs_an_advx_notebook() {
    let python = python_with_jupyter_client();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ready =
        Command::new(&python).args(["-c", "import jupyterlab, selenium"]).output().is_ok_and(|o| o.status.success());
    assert!(ready, "JupyterLab and Selenium are missing from .venv: run `bash scripts/test.sh`, which installs them");
    for program in ["chromium", "chromedriver"] {
        let found = Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(found, "{program} is missing: `apt-get install chromium chromium-driver` (scripts/test.sh does)");
    }
    let prefix = installed_kernel(&["--prelude", "models/mnist/models.advx"]);
    let screenshot = root.join("target/browser/advx-lab.png");
    let out = Command::new(python)
        .arg(root.join("tests/kernel/browser.py"))
        .arg(prefix.path().join("share/jupyter"))
        .arg(root)
        .arg(&screenshot)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// papermill runs a notebook on advx's kernel with parameters: it writes
/// them after the cell tagged `parameters` as `param` lines (through
/// advx-language's translator), and the cells after it see them.
#[test]
fn papermill_runs_an_advx_notebook_with_parameters() {
    let python = python_with_jupyter_client();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let papermill = python.with_file_name("papermill");
    assert!(papermill.is_file(), "papermill is missing from .venv: run `bash scripts/test.sh`, which installs it");
    let dir = installed_kernel(&[]);
    let model = root.join("models/mnist/fc100-100-10.onnx");
    let cells = [
        ("param n = 1000\nparam name = \"full\"", vec!["parameters"]),
        (
            &*format!("model fc100 = onnx \"{}\"\nshow evaluate fc100 on mnist.test[0..n]\nshow name", model.display()),
            vec![],
        ),
    ];
    let cells: Vec<_> = cells
        .iter()
        .enumerate()
        .map(|(i, (source, tags))| {
            serde_json::json!({"cell_type": "code", "id": format!("c{i}"), "metadata": {"tags": tags},
                               "source": source, "outputs": [], "execution_count": null})
        })
        .collect();
    let notebook = serde_json::json!({"nbformat": 4, "nbformat_minor": 5, "cells": cells, "metadata": {
        "kernelspec": {"name": "advx", "display_name": "advx", "language": "advx"}}});
    let (input, output) = (dir.path().join("in.ipynb"), dir.path().join("out.ipynb"));
    std::fs::write(&input, notebook.to_string()).unwrap();
    let out = Command::new(&papermill)
        .arg(&input)
        .arg(&output)
        .args(["-p", "n", "20", "-p", "name", "small \"run\"", "--cwd"])
        .arg(dir.path())
        .env("JUPYTER_PATH", dir.path().join("share/jupyter"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let executed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let injected = &executed["cells"][1];
    assert_eq!(injected["metadata"]["tags"], serde_json::json!(["injected-parameters"]), "{injected}");
    let source: String = injected["source"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(source.contains("param n = 20") && source.contains(r#"param name = "small \"run\"""#), "{source}");
    let outputs = executed["cells"][2]["outputs"].as_array().unwrap();
    let shown: Vec<String> = outputs.iter().map(|o| o["data"]["text/plain"].to_string()).collect();
    let table = shown.iter().find(|t| t.contains("fc100")).expect("the table");
    assert!(table.contains(" 20 "), "the cells see n = 20: {table}");
    assert!(shown.iter().any(|t| t.contains(r#"small \"run\""#) || t.contains("small \\\"run\\\"")), "{shown:?}");
}
