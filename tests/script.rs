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

#[test]
fn a_parameter_value_that_is_not_one_literal_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran.yaml");
    let script = write_script(dir.path(), &format!("param n = 3\nsave n to \"{}\"\n", marker.display()));
    for value in ["1+1", "mnist.test", "evaluate(m, on: mnist.test)", "", "1e999"] {
        let run = advx(&["run", &script, "-p", &format!("n={value}")]);
        assert_eq!(run.status.code(), Some(2), "-p n={value}: {}", text(&run));
        assert!(text(&run).contains("parameter `n`"), "-p n={value}: {}", text(&run));
        let check = advx(&["check", &script, "-p", &format!("n={value}")]);
        assert_eq!(check.status.code(), Some(2), "advx check -p n={value}");
    }
    for value in ["nan", "inf", "\"3\"", "true"] {
        let run = advx(&["run", &script, "-p", &format!("n={value}")]);
        assert_eq!(run.status.code(), Some(2), "-p n={value}: {}", text(&run));
        assert!(text(&run).contains("`param n` is a number"), "-p n={value}: {}", text(&run));
    }
    assert!(!marker.exists(), "nothing ran");
    let out = dir.path().join("out");
    let run = advx(&["run", &script, "-p", "n=-2.5", "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "-2.5");
}

#[test]
fn non_finite_results_are_yaml_floats_in_results_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "show 0 / 0\nshow 1 / 0\nshow -1 / 0\nshow \"NaN\"\n");
    let out = dir.path().join("out");
    let run = advx(&["run", &script, "--out", out.to_str().unwrap(), "--to", "ipynb"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("NaN") && stdout.contains("-inf"), "the terminal shows the numbers: {stdout}");
    let raw = std::fs::read_to_string(out.join("results.yaml")).unwrap();
    assert!(!raw.contains("null"), "{raw}");
    let results: serde_yaml::Value = serde_yaml::from_str(&raw).unwrap();
    let data: Vec<&serde_yaml::Value> =
        results["cells"][0]["outputs"].as_sequence().unwrap().iter().map(|o| &o["data"]).collect();
    assert!(data[0].as_f64().unwrap().is_nan(), "{raw}");
    assert_eq!(data[1].as_f64(), Some(f64::INFINITY));
    assert_eq!(data[2].as_f64(), Some(f64::NEG_INFINITY));
    assert_eq!(data[3].as_str(), Some("NaN"));
    let notebook: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("s.ipynb")).unwrap()).expect("valid JSON");
    let code = notebook["cells"].as_array().unwrap().iter().find(|c| c["cell_type"] == "code").unwrap();
    assert_eq!(code["outputs"][0]["data"]["application/json"], serde_json::json!({ "$float": "nan" }));
}

#[test]
fn device_auto_says_what_it_chose_and_an_explicit_device_must_agree_with_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write_script(dir.path(), &format!("model m = onnx \"{}\"\nshow m\n", model("fc10-1e-4")));
    let out = dir.path().join("out");
    let run = advx(&["run", &plain, "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let line = stderr.lines().find(|l| l.starts_with("device: ")).unwrap_or_else(|| panic!("no device line: {stderr}"));
    assert!(line == "device: cuda:0" || line.starts_with("device: cpu (CUDA not available: "), "{line}");
    let chosen = line.trim_start_matches("device: ").split(' ').next().unwrap();
    let results: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("results.yaml")).unwrap()).unwrap();
    assert_eq!(results["device"], chosen, "the report names the device auto chose");
    let explicit = advx(&["run", &plain, "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert!(!String::from_utf8_lossy(&explicit.stderr).contains("device: "), "only auto prints its choice");

    let cuda = write_script(dir.path(), &format!("model m = onnx \"{}\" {{ device: \"cuda\" }}\n", model("fc10-1e-4")));
    let run = advx(&["run", &cuda, "--out", out.to_str().unwrap(), "--device", "cpu"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let t = text(&run).split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(t.contains("cuda:0") && t.contains("--device cpu") && t.contains("must agree"), "{t}");
    let run = advx(&["run", &cuda, "--out", out.to_str().unwrap(), "--device", "auto"]);
    assert!(!text(&run).contains("must agree"), "the script's choice wins over auto: {}", text(&run));
    if run.status.code() != Some(0) {
        assert!(text(&run).contains("CUDA"), "only CUDA failing to start can stop it: {}", text(&run));
    }
}
