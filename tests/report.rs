//! The batch report: the files `advx run --out DIR` writes, checked from a
//! run built by hand (no model or ORT needed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use advx::report::{CellRecord, ModelRecord, Run, Status, write};
use advx::session::output::{MimeBundle, Output};
use serde_json::json;

/// A 4×4 grayscale gradient, encoded as a real PNG.
fn tiny_png() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, 4, 4);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let pixels: Vec<u8> = (0..16).map(|i| i * 16).collect();
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    bytes
}

const SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"40\" viewBox=\"0 0 40 40\">\
<rect x=\"0\" y=\"0\" width=\"20\" height=\"20\" fill=\"#333\"/><rect x=\"20\" y=\"20\" width=\"20\" height=\"20\" fill=\"#999\"/>\
<text x=\"2\" y=\"38\" font-size=\"6\">a grid of two squares, described at length</text></svg>";

fn output(title: &str, bundle: MimeBundle) -> Output {
    Output { title: title.to_string(), figure: None, bundle }
}

fn run() -> Run {
    let table = output(
        "evaluate fc100 on test",
        MimeBundle {
            html: Some(
                "<table><tr><th>model</th><th>error</th></tr><tr><td>fc100</td><td>1.73%</td></tr></table>".into(),
            ),
            json: Some(json!({"model": "fc100", "error": 0.0173, "n": 10000})),
            ..MimeBundle::text("model  error\nfc100  1.73%")
        },
    );
    let figure = Output {
        title: "show grid".into(),
        figure: Some("cell2-grid".into()),
        bundle: MimeBundle { png: Some(tiny_png()), svg: Some(SVG.into()), ..MimeBundle::text("<figure cell2-grid>") },
    };
    Run {
        script: PathBuf::from("experiments/szegedy.advx"),
        started: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        advx_version: "0.1.0".into(),
        ort_version: "1.32.0".into(),
        device: "cpu".into(),
        notebook: None,
        sharding: None,
        params: vec![("eps".into(), json!(0.1)), ("split".into(), json!("test")), ("steps".into(), json!(20))],
        models: vec![ModelRecord {
            name: "fc100".into(),
            path: PathBuf::from("models/mnist/fc100.onnx"),
            sha256: "ab".repeat(32),
            preprocess: advx::runtime::Preprocess::default(),
            adaptation: None,
        }],
        cells: vec![
            CellRecord {
                index: 1,
                title: Some("Setup <b>& friends</b>".into()),
                source: "let x = 1\nprint x < 2\n".into(),
                outputs: vec![output("print x < 2", MimeBundle::text("true & \"quoted\""))],
                error: None,
                seconds: 0.0123,
            },
            CellRecord {
                index: 2,
                title: Some("Accuracy".into()),
                source: "evaluate fc100 on test\nshow grid".into(),
                outputs: vec![table, figure],
                error: None,
                seconds: 2.5,
            },
            CellRecord {
                index: 3,
                title: None,
                source: "attack fc100 with nowhere".into(),
                outputs: vec![],
                error: Some("unknown attack `nowhere`\n  hint: try `lbfgs`".into()),
                seconds: 0.001,
            },
        ],
        status: Status::Complete,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let written = write(&run(), &out, true).unwrap();
    for name in ["cell2-grid.png", "cell2-grid.svg", "results.yaml", "report.html", "szegedy.ipynb"] {
        let path = out.join(name);
        assert!(path.is_file(), "{name} missing");
        assert!(written.files.contains(&path), "{name} not reported");
    }
    assert_eq!(std::fs::read(out.join("cell2-grid.png")).unwrap(), tiny_png());
    assert_eq!(read(&out.join("cell2-grid.svg")), SVG);
    let without = write(&run(), &dir.path().join("plain"), false).unwrap();
    assert!(!without.files.iter().any(|f| f.extension().is_some_and(|e| e == "ipynb")));
}

#[test]
fn results_yaml_holds_what_reproduces_the_run() {
    let dir = tempfile::tempdir().unwrap();
    write(&run(), dir.path(), false).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&read(&dir.path().join("results.yaml"))).unwrap();
    assert_eq!(yaml["advx_version"], "0.1.0");
    assert_eq!(yaml["onnxruntime_version"], "1.32.0");
    assert_eq!(yaml["device"], "cpu");
    assert_eq!(yaml["started"], "2023-11-14T22:13:20Z");
    assert_eq!(yaml["script"], "experiments/szegedy.advx");
    assert_eq!(yaml["status"], "complete");
    assert!(yaml.get("interrupted").is_none(), "status replaces the old flag");
    let params: Vec<&str> = yaml["params"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(params, ["eps", "split", "steps"], "script order");
    assert_eq!(yaml["params"]["eps"].as_f64(), Some(0.1));
    assert_eq!(yaml["params"]["split"], "test");
    assert_eq!(yaml["models"][0]["name"], "fc100");
    assert_eq!(yaml["models"][0]["sha256"], "ab".repeat(32).as_str());

    let cells = yaml["cells"].as_sequence().unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(cells[0]["title"], "Setup <b>& friends</b>");
    assert_eq!(cells[0]["outputs"][0]["text"], "true & \"quoted\"");
    let table = &cells[1]["outputs"][0];
    assert_eq!(table["data"]["error"].as_f64(), Some(0.0173));
    assert_eq!(table["data"]["n"].as_u64(), Some(10000));
    assert!(table.get("text").is_none(), "data replaces text");
    let figure = &cells[1]["outputs"][1];
    assert_eq!(figure["png"], "cell2-grid.png");
    assert_eq!(figure["svg"], "cell2-grid.svg");
    assert_eq!(cells[1]["seconds"].as_f64(), Some(2.5));
    assert_eq!(cells[2]["index"].as_u64(), Some(3));
    assert!(cells[2].get("title").is_none());
    assert_eq!(cells[2]["error"], "unknown attack `nowhere`\n  hint: try `lbfgs`");
}

#[test]
fn every_status_is_in_all_three_reports() {
    let cases = [
        (Status::Running, "running", Some("incomplete")),
        (Status::Complete, "complete", None),
        (Status::Failed, "failed", None),
        (Status::Interrupted, "interrupted", Some("interrupted (Ctrl-C)")),
        (Status::Terminated, "terminated", Some("terminated (SIGTERM)")),
    ];
    for (status, name, banner) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut run = run();
        run.status = status;
        run.cells.truncate(1);
        write(&run, dir.path(), true).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&read(&dir.path().join("results.yaml"))).unwrap();
        assert_eq!(yaml["status"], name);
        let html = read(&dir.path().join("report.html"));
        assert!(html.contains(&format!("<dt>Status</dt><dd>{name}")), "{name}: the header says so");
        let notebook = dir.path().join("szegedy.ipynb");
        let nb: serde_json::Value = serde_json::from_str(&read(&notebook)).unwrap();
        assert_eq!(nb["metadata"]["advx"]["status"], name);
        let last = nb["cells"].as_array().unwrap().last().unwrap().clone();
        match banner {
            Some(words) => {
                assert!(html.contains(&format!("class=\"banner {name}\"")) && html.contains(words), "{name}");
                assert_eq!(last["cell_type"], "markdown", "{name}: a closing note");
                assert!(last["source"][0].as_str().unwrap().contains(words), "{name}: {last}");
            }
            None => {
                assert!(!html.contains("class=\"banner"), "{name}: no banner");
                assert_eq!(last["cell_type"], "code", "{name}: no closing note");
            }
        }
        validate_notebook(&notebook);
    }
}

#[test]
fn non_finite_numbers_are_yaml_floats_and_tagged_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = run();
    let data = json!({ "nan": { "$float": "nan" }, "inf": { "$float": "inf" }, "ninf": { "$float": "-inf" },
                       "text": "NaN", "list": [1.5, { "$float": "nan" }], "none": null,
                       "not_a_float": { "$float": "nan", "other": 1 } });
    run.cells[0].outputs[0].bundle.json = Some(data.clone());
    run.params.push(("z".into(), json!({ "$float": "inf" })));
    write(&run, dir.path(), true).unwrap();
    let text = read(&dir.path().join("results.yaml"));
    assert_eq!(text.matches("$float").count(), 1, "only in the object that is no float: {text}");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let recorded = &yaml["cells"][0]["outputs"][0]["data"];
    assert!(recorded["nan"].as_f64().unwrap().is_nan(), "{text}");
    assert_eq!(recorded["inf"].as_f64(), Some(f64::INFINITY));
    assert_eq!(recorded["ninf"].as_f64(), Some(f64::NEG_INFINITY));
    assert_eq!(recorded["text"], "NaN", "a string stays a string");
    assert!(recorded["list"][1].as_f64().unwrap().is_nan());
    assert!(recorded["none"].is_null(), "null stays null");
    assert_eq!(recorded["not_a_float"]["other"].as_u64(), Some(1), "only the one-key object is a float");
    assert_eq!(yaml["params"]["z"].as_f64(), Some(f64::INFINITY));
    for line in [".nan", ".inf", "-.inf"] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let nb: serde_json::Value = serde_json::from_str(&read(&dir.path().join("szegedy.ipynb"))).unwrap();
    let code = nb["cells"].as_array().unwrap().iter().find(|c| c["cell_type"] == "code").unwrap();
    assert_eq!(code["outputs"][0]["data"]["application/json"], data, "the notebook keeps valid JSON");
    assert!(read(&dir.path().join("report.html")).contains("<code>inf</code>"), "the parameter reads as a number");
}

#[test]
fn a_figure_that_cannot_be_written_is_recorded_and_the_rest_still_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = run();
    let mut later = run.cells[1].outputs[1].clone();
    later.figure = Some("cell3-grid".into());
    run.cells[2].outputs.push(later);
    // A folder where the figure's PNG should go: no file can replace it.
    std::fs::create_dir_all(dir.path().join("cell2-grid.png/blocked")).unwrap();
    let written = write(&run, dir.path(), true).unwrap();
    assert_eq!(written.failed.len(), 1, "{:?}", written.failed);
    assert!(
        written.failed[0].contains("cell2-grid.png") && written.failed[0].contains("cell 2"),
        "{:?}",
        written.failed
    );
    assert!(dir.path().join("cell2-grid.svg").is_file(), "the same figure's SVG");
    assert!(dir.path().join("cell3-grid.png").is_file(), "a later figure");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&read(&dir.path().join("results.yaml"))).unwrap();
    let figure = &yaml["cells"][1]["outputs"][1];
    assert!(figure.get("png").is_none(), "no link to a file that is not there: {figure:?}");
    assert_eq!(figure["svg"], "cell2-grid.svg");
    assert!(figure["error"].as_str().unwrap().contains("cell2-grid.png"), "{figure:?}");
    assert_eq!(yaml["cells"][2]["outputs"][0]["png"], "cell3-grid.png", "the rest of the run is recorded");
    assert!(read(&dir.path().join("report.html")).contains("not saved: "));
}

#[test]
fn report_html_is_escaped_and_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    write(&run(), dir.path(), false).unwrap();
    let html = read(&dir.path().join("report.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Setup &lt;b&gt;&amp; friends&lt;/b&gt;"), "title escaped");
    assert!(!html.contains("<b>& friends"));
    assert!(html.contains("true &amp; &quot;quoted&quot;"), "text escaped");
    assert!(html.contains("print x &lt; 2"), "source escaped");
    assert!(html.contains("unknown attack `nowhere`"), "error shown");
    assert!(html.contains("class=\"error\""));
    assert!(html.contains("<td>1.73%</td>"), "html fragments inline");
    assert!(html.contains("data:image/png;base64,") || html.contains("data:image/svg+xml;base64,"), "figure inline");
    for needle in ["szegedy.advx", "0.1.0", "1.32.0", "cpu", "eps", "fc100", &"ab".repeat(32)] {
        assert!(html.contains(needle), "header lacks {needle}");
    }
    assert!(!html.contains("http://") && !html.contains("https://"), "external reference");
    assert!(!html.contains("<link"), "external stylesheet");
}

#[test]
fn report_html_inlines_an_svg_only_figure() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = run();
    run.cells[1].outputs[1].bundle.png = None;
    write(&run, dir.path(), false).unwrap();
    let html = read(&dir.path().join("report.html"));
    assert!(html.contains("data:image/svg+xml;base64,"));
    assert!(!html.contains("http://"), "the SVG's namespace stays inside the data: URI");
    assert!(!dir.path().join("cell2-grid.png").exists());
}

#[test]
fn notebook_is_nbformat_4_5() {
    let dir = tempfile::tempdir().unwrap();
    write(&run(), dir.path(), true).unwrap();
    let path = dir.path().join("szegedy.ipynb");
    let nb: serde_json::Value = serde_json::from_str(&read(&path)).unwrap();
    assert_eq!(nb["nbformat"], 4);
    assert_eq!(nb["nbformat_minor"], 5);
    assert_eq!(nb["metadata"]["language_info"]["name"], "advx");
    assert_eq!(nb["metadata"]["advx"]["script"], "experiments/szegedy.advx");
    assert_eq!(nb["metadata"]["advx"]["advx_version"], "0.1.0");

    let cells = nb["cells"].as_array().unwrap();
    let ids: std::collections::HashSet<&str> = cells.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), cells.len(), "ids unique");
    assert!(ids.iter().all(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')));
    let code: Vec<&serde_json::Value> = cells.iter().filter(|c| c["cell_type"] == "code").collect();
    assert_eq!(code.len(), 3, "one code cell per script cell");
    assert_eq!(code[0]["source"], json!(["let x = 1\n", "print x < 2"]));
    assert_eq!(code[1]["execution_count"], 2);

    let figure = &code[1]["outputs"][1];
    assert_eq!(figure["output_type"], "display_data");
    assert_eq!(figure["metadata"], json!({}));
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.decode(figure["data"]["image/png"].as_str().unwrap()).unwrap();
    assert_eq!(png, tiny_png());
    assert!(figure["data"]["image/svg+xml"].is_array());
    assert_eq!(code[1]["outputs"][0]["data"]["application/json"]["n"], 10000);
    assert!(code[1]["outputs"][0]["data"]["text/html"].is_array());

    let error = &code[2]["outputs"][0];
    assert_eq!(error["output_type"], "error");
    assert_eq!(error["evalue"], "unknown attack `nowhere`");
    assert_eq!(error["traceback"], json!(["unknown attack `nowhere`", "  hint: try `lbfgs`"]));
    let markdown: Vec<&serde_json::Value> = cells.iter().filter(|c| c["cell_type"] == "markdown").collect();
    assert!(markdown.iter().any(|c| c["source"][0] == "## Accuracy"), "titles become markdown cells");
    assert!(markdown.iter().any(|c| c["source"][0] == r"## Setup \<b\>\& friends\</b\>"), "titles stay plain text");

    validate_notebook(&path);
}

/// Runs nbformat's own validator when the project's venv has it.
fn validate_notebook(path: &Path) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if !python.is_file() {
        eprintln!("note: {} missing, nbformat validation skipped", python.display());
        return;
    }
    let has_nbformat = Command::new(&python).args(["-c", "import nbformat"]).output().is_ok_and(|o| o.status.success());
    if !has_nbformat {
        eprintln!("note: nbformat not installed in .venv, validation skipped (scripts/setup.sh installs it)");
        return;
    }
    // nbformat only warns about (and silently repairs) some defects, such as a
    // missing cell id, so warnings count as failures here.
    let check = "import sys, warnings, nbformat; warnings.simplefilter('error'); \
                 nbformat.validate(nbformat.read(sys.argv[1], as_version=4))";
    let out = Command::new(&python).args(["-c", check]).arg(path).output().unwrap();
    assert!(out.status.success(), "nbformat.validate failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn writing_twice_overwrites_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = run();
    let first = write(&run, dir.path(), true).unwrap();
    run.cells[0].outputs[0].bundle.text = "short".into();
    run.cells.truncate(2);
    let second = write(&run, dir.path(), true).unwrap();
    assert_eq!(first.files.len(), second.files.len());
    let yaml: serde_yaml::Value = serde_yaml::from_str(&read(&dir.path().join("results.yaml"))).unwrap();
    assert_eq!(yaml["cells"].as_sequence().unwrap().len(), 2);
    assert_eq!(yaml["cells"][0]["outputs"][0]["text"], "short");
    let nb: serde_json::Value = serde_json::from_str(&read(&dir.path().join("szegedy.ipynb"))).unwrap();
    assert_eq!(nb["cells"].as_array().unwrap().iter().filter(|c| c["cell_type"] == "code").count(), 2);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    validate_notebook(&dir.path().join("szegedy.ipynb"));
}

#[test]
fn figure_stems_cannot_escape_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("out");
    let mut run = run();
    run.cells[1].outputs[1].figure = Some("../evil".into());
    let mut second = run.cells[1].outputs[1].clone();
    second.figure = Some("/tmp/../.._evil".into());
    run.cells[1].outputs.push(second);
    let written = write(&run, &dir, false).unwrap();
    assert!(!root.path().join("evil.png").exists());
    assert!(!root.path().join("evil.svg").exists());
    for file in &written.files {
        assert_eq!(file.parent(), Some(dir.as_path()), "{} outside the directory", file.display());
    }
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let pngs = names.iter().filter(|n| n.ends_with(".png")).count();
    assert_eq!(pngs, 2, "two figures, two files: {names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}
