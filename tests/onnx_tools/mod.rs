//! ONNX's own tools as a second opinion on the graphs advx writes and the
//! models it accepts: onnx.checker with its full check (strict shape and
//! type inference) and ONNX Runtime sessions, run by the project's Python.

// Each test crate that includes this module uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a file is checked with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// onnx.checker (full check), then an ONNX Runtime session.
    Strict,
    /// An ONNX Runtime session only: for models, which onnx.checker also
    /// faults for what ONNX Runtime lets pass (an output without a shape).
    Runtime,
}

/// The project's Python when it can import onnx and onnxruntime.
pub fn python() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let imports = Command::new(&python).args(["-c", "import onnx, onnxruntime"]).output();
    if imports.is_ok_and(|o| o.status.success()) {
        return Some(python);
    }
    println!("skipped: {} cannot import onnx and onnxruntime", python.display());
    None
}

/// For each file, "ok" or the first line of its rejection. One Python
/// process for all of them.
pub fn verdicts(python: &Path, files: &[(PathBuf, Check)]) -> Vec<String> {
    const SCRIPT: &str = r#"
import sys, onnx, onnxruntime as ort
ort.set_default_logger_severity(4)
for arg in sys.argv[1:]:
    strict, path = arg[0] == "s", arg[2:]
    try:
        if strict:
            onnx.checker.check_model(path, full_check=True)
        ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        print("ok")
    except Exception as e:
        print(type(e).__name__ + ": " + (str(e).strip().splitlines() or [""])[0])
"#;
    let args = files.iter().map(|(p, c)| format!("{}:{}", if *c == Check::Strict { "s" } else { "r" }, p.display()));
    let out = Command::new(python).args(["-c", SCRIPT]).args(args).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(verdicts.len(), files.len(), "one verdict per file");
    verdicts
}
