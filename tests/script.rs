//! `advx run` and `advx check` end to end: the files a run writes, exit
//! codes, and the errors a user sees.

use std::path::Path;
use std::process::{Command, Output};

fn advx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advx")).args(args).output().expect("advx runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn write_script(dir: &Path, body: &str) -> String {
    let path = dir.join("s.advx");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn model(name: &str) -> String {
    std::fs::canonicalize(format!("models/mnist/{name}.onnx")).unwrap().display().to_string()
}

#[test]
fn quickstart_writes_figures_results_report_and_notebook() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_str().unwrap();
    let run =
        advx(&["run", "notebooks/quickstart.advx", "--out", out, "-p", "n=500", "--to", "ipynb", "--device", "cpu"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    for file in ["results.yaml", "report.html", "quickstart.ipynb", "errors.csv"] {
        assert!(out_dir.path().join(file).is_file(), "{file} missing: {}", text(&run));
    }
    let figures: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png") || n.ends_with(".svg"))
        .collect();
    assert!(figures.len() >= 4, "a grid and a bar chart as PNG and SVG: {figures:?}");

    let results: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out_dir.path().join("results.yaml")).unwrap()).unwrap();
    let yaml = serde_yaml::to_string(&results).unwrap();
    assert!(yaml.contains("n: 500"), "the effective parameter: {yaml}");
    assert!(yaml.contains("sha256"), "{yaml}");

    let eval = advx(&["eval", "models/mnist/fc100-100-10.onnx", "--limit", "500", "--device", "cpu"]);
    let line = String::from_utf8_lossy(&eval.stdout).lines().find(|l| l.contains("fc100-100-10")).unwrap().to_string();
    let rate = line.split_whitespace().nth(1).unwrap().to_string();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let row = stdout.lines().find(|l| l.starts_with("fc100 ")).expect("an fc100 row");
    assert!(row.contains(&rate), "advx run says `{row}`, advx eval says {rate}");

    let notebook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("quickstart.ipynb")).unwrap()).unwrap();
    assert_eq!(notebook["nbformat"], 4);
}

#[test]
fn a_failing_third_cell_keeps_the_first_two() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "# %% one\nmodel fc10 = onnx \"{}\"\nshow 40 + 2\n# %% two\nshow evaluate fc10 on mnist.test[0..100]\n# %% three\nmodel broken = onnx \"missing.onnx\"\nshow 7\n",
        model("fc10-1e-4")
    );
    let script = write_script(dir.path(), &body);
    let out = dir.path().join("out");
    let run = advx(&["run", &script, "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let t = text(&run);
    assert!(t.contains("cell 3 (\"three\"), line 7") && t.contains("missing.onnx"), "{t}");
    let results = std::fs::read_to_string(out.join("results.yaml")).unwrap();
    assert!(results.contains("42"), "cell one's output: {results}");
    assert!(results.contains("error_rate"), "cell two's output: {results}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("missing.onnx"), "the error is in the report");
}

#[test]
fn syntax_errors_exit_2_with_position_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "let a = 1\nshow grid(a, cols 8)\n");
    let run = advx(&["run", &script]);
    assert_eq!(run.status.code(), Some(2));
    let t = text(&run);
    assert!(t.contains("s.advx:2:19") && t.contains("expected `)` or `,`"), "{t}");
    assert!(t.contains("show grid(a, cols 8)"), "the source line: {t}");
    let check = advx(&["check", &script]);
    assert_eq!(check.status.code(), Some(2));
}

#[test]
fn name_errors_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "let test = mnist.test[0..10]\nshow tset.count\n");
    let run = advx(&["check", &script]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run).contains("did you mean `test`?"), "{}", text(&run));
}

#[test]
fn unknown_parameters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "param count = 3\nshow count\n");
    let run = advx(&["run", &script, "-p", "cuont=4"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run).contains("did you mean `count`?"), "{}", text(&run));
    let out = dir.path().join("out");
    let run = advx(&["run", &script, "-p", "count=4", "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains('4'));
}

#[test]
fn check_accepts_the_examples_and_lists_operations() {
    let run = advx(&["check", "notebooks/quickstart.advx"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let ops = advx(&["check", "--ops"]);
    for op in ["evaluate", "predict", "grid", "histogram", "line", "bar"] {
        assert!(text(&ops).contains(op), "{op}");
    }
}
