//! The session as a notebook kernel drives it: bindings across cells,
//! outputs in order, errors that keep what was made.

use advx::classifier::Classifier;
use advx::runtime::Device;
use advx::session::{CellError, Session, Value};

const FC100: &str = "models/mnist/fc100-100-10.onnx";

fn session() -> Session {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    let setup = format!("model fc100 = onnx \"{FC100}\"\nlet test = mnist.test[0..300]");
    s.run(&setup).unwrap();
    s
}

fn error_text(s: &mut Session, code: &str) -> (String, CellError) {
    let result = s.execute(code);
    let error = result.error.expect("the cell should fail");
    (error.render(false), error)
}

fn number(s: &Session, name: &str) -> f64 {
    match s.get(name) {
        Some(Value::Number(n)) => *n,
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn bindings_carry_across_cells_and_outputs_keep_their_order() {
    let mut s = session();
    let outputs = s.run("let e = evaluate fc100 on test\nshow e.error\nshow test[0..4]").unwrap();
    assert_eq!(outputs.len(), 3, "a number, then the set's text and its grid");
    assert!(outputs[1].bundle.text.contains("4 images"), "{}", outputs[1].bundle.text);
    assert!(outputs[2].bundle.png.is_some() && outputs[2].bundle.svg.is_some());
    assert!(outputs[2].figure.is_some());
}

#[test]
fn evaluate_agrees_with_the_classifier() {
    let mut s = session();
    s.run("let rate = (evaluate fc100 on test).error").unwrap();
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..300).unwrap();
    let mut classifier = Classifier::load(std::path::Path::new(FC100), Device::Cpu).unwrap();
    let direct = classifier.evaluate(set.images.view(), &set.labels).unwrap().error_rate();
    assert_eq!(number(&s, "rate"), direct);
    let shown = s.run("show evaluate fc100 on test").unwrap();
    let bundle = &shown[0].bundle;
    assert!(bundle.html.as_deref().unwrap().contains("<table"), "an HTML table");
    assert!(bundle.text.contains(&format!("{:.2}%", 100.0 * direct)), "{}", bundle.text);
    let json = bundle.json.as_ref().unwrap();
    assert_eq!(json["evaluate"]["models"][0]["error_rate"].as_f64(), Some(direct));
}

#[test]
fn where_filters_by_label_and_index() {
    let mut s = session();
    s.run("let threes = (test where label == 3).count\nlet early = (test where index < 10 and label != 3).count")
        .unwrap();
    let set = advx::data::load("mnist", advx::data::Split::Test).unwrap();
    let labels = &set.labels[..300];
    assert_eq!(number(&s, "threes"), labels.iter().filter(|&&l| l == 3).count() as f64);
    assert_eq!(number(&s, "early"), labels[..10].iter().filter(|&&l| l != 3).count() as f64);
}

#[test]
fn arithmetic_on_image_sets() {
    let mut s = session();
    s.run("let d = 10 * (test[0..2] + 0.5 - test[0..2])\nlet n = d.count").unwrap();
    let Some(Value::Images(d)) = s.get("d") else { panic!("d is not a set") };
    assert!(d.images.iter().all(|&v| (v - 5.0).abs() < 1e-5));
    assert_eq!(d.name, "10 * (test[0..2] + 0.5 - test[0..2])");
    let (text, _) = error_text(&mut s, "show test[0..2] - test[0..3]");
    assert!(text.contains("differ in"), "{text}");
}

#[test]
fn sets_are_named_by_the_examples_they_hold() {
    let mut s = session();
    s.run("let a = test[10..20][0..5]\nlet b = test where label == 3").unwrap();
    let name = |v: Option<&Value>| match v {
        Some(Value::Images(set)) => set.name.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(name(s.get("a")), "mnist.test[10..15]");
    assert_eq!(name(s.get("b")), "mnist.test[0..300] where label == 3");
}

#[test]
fn a_runtime_error_names_the_cell_and_keeps_earlier_outputs() {
    let mut s = session();
    let result = s.execute("show 1 + 1\nshow test[0..5000]\nshow 3");
    assert_eq!(result.outputs.len(), 1, "the output before the failure is kept");
    let error = result.error.unwrap();
    assert_eq!(error.exit_code(), 1);
    let text = error.render(false);
    assert!(text.contains("line 2"), "{text}");
    assert!(text.contains("0..5000 is outside"), "{text}");
    assert!(text.contains("test[0..5000]"), "the source line with a caret: {text}");
}

#[test]
fn unknown_names_suggest_the_nearest() {
    let mut s = session();
    let (text, error) = error_text(&mut s, "show evaluate fc10 on test");
    assert_eq!(error.exit_code(), 2);
    assert!(text.contains("unknown name `fc10`") && text.contains("did you mean `fc100`?"), "{text}");
    let (text, _) = error_text(&mut s, "show evaluat fc100 on test");
    assert!(text.contains("did you mean `evaluate`?"), "{text}");
    let (text, _) = error_text(&mut s, "show evaluate fc100 onn test");
    assert!(text.contains("unknown argument `onn`") && text.contains("did you mean `on`?"), "{text}");
    let (text, _) = error_text(&mut s, "show (evaluate fc100 on test).eror");
    assert!(text.contains("did you mean `error`?"), "{text}");
}

#[test]
fn wrong_types_name_the_operation_and_argument() {
    let mut s = session();
    let (text, _) = error_text(&mut s, "show evaluate 3 on test");
    assert!(text.contains("evaluate: `models` must be a model or a list of models, not a number"), "{text}");
    let (text, _) = error_text(&mut s, "show grid(test[0..4], cols: 0)");
    assert!(text.contains("`cols` must be a whole number of at least 1"), "{text}");
}

#[test]
fn syntax_errors_in_a_cell() {
    let mut s = session();
    let (text, error) = error_text(&mut s, "let x = [1, 2");
    assert_eq!(error.exit_code(), 2);
    assert!(text.contains("cell") && text.contains("expected"), "{text}");
}

#[test]
fn params_take_overrides_of_the_same_type() {
    let mut s = Session::new().unwrap();
    s.set_param("n", "25").unwrap();
    s.set_param("name", "fc100").unwrap();
    s.run("param n = 10\nparam name = \"x\"").unwrap();
    assert_eq!(number(&s, "n"), 25.0);
    assert!(matches!(s.get("name"), Some(Value::Str(v)) if v == "fc100"));
    let mut s = Session::new().unwrap();
    s.set_param("n", "\"many\"").unwrap();
    let (text, _) = error_text(&mut s, "param n = 10");
    assert!(text.contains("parameter `n` is a number by default"), "{text}");
}

#[test]
fn a_parameter_value_is_one_literal_never_code() {
    let mut s = Session::new().unwrap();
    for written in ["1+1", "mnist.test", "evaluate(fc100, on: mnist.test)", "", "1e999", "[1, 2 * 3]"] {
        let error = s.set_param("n", written).expect_err(written);
        assert!(error.to_string().contains("parameter `n`"), "{written}: {error}");
    }
    s.set_param("n", "-2.5").unwrap();
    s.set_param("r", "0..10").unwrap();
    s.set_param("w", "nan").unwrap();
    s.run("param n = 1\nparam r = 0..5\nparam w = \"x\"").unwrap();
    assert_eq!(number(&s, "n"), -2.5);
    assert!(matches!(s.get("r"), Some(Value::Range(a, b)) if *a == 0.0 && *b == 10.0));
    assert!(matches!(s.get("w"), Some(Value::Str(w)) if w == "nan"), "a bare word is a string");
}

#[test]
fn non_finite_results_are_recorded_as_tagged_floats_and_shown_as_text() {
    let mut s = Session::new().unwrap();
    let shown = s.run("show 0 / 0\nshow 1 / 0\nshow -1 / 0\nshow \"NaN\"\nshow [1.5, 0 / 0]").unwrap();
    let json: Vec<_> = shown.iter().map(|o| o.bundle.json.clone().unwrap()).collect();
    assert_eq!(json[0], serde_json::json!({ "$float": "nan" }));
    assert_eq!(json[1], serde_json::json!({ "$float": "inf" }));
    assert_eq!(json[2], serde_json::json!({ "$float": "-inf" }));
    assert_eq!(json[3], serde_json::json!("NaN"), "a string stays a string");
    assert_eq!(json[4], serde_json::json!([1.5, { "$float": "nan" }]));
    let texts: Vec<&str> = shown.iter().map(|o| o.bundle.text.as_str()).collect();
    assert_eq!(texts[..3], ["NaN", "inf", "-inf"]);
}

#[test]
fn an_explicit_device_and_a_models_device_option_must_agree() {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    let (text, _) = error_text(&mut s, &format!("model m = onnx \"{FC100}\" {{ device: \"cuda\" }}"));
    assert!(text.contains("cuda:0") && text.contains("--device cpu") && text.contains("must agree"), "{text}");
    assert!(s.get("m").is_none());
    s.run(&format!("model m = onnx \"{FC100}\" {{ device: \"cpu\" }}")).expect("agreeing devices");
    let mut auto = Session::new().unwrap();
    auto.run(&format!("model m = onnx \"{FC100}\" {{ device: \"cpu\" }}")).expect("the script's choice wins over auto");
    let Some(Value::Model(m)) = auto.get("m") else { panic!("a model") };
    assert_eq!(m.device, Device::Cpu);
}

#[test]
fn save_refuses_what_a_batch_run_writes_in_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::new().unwrap().with_out_dir(dir.path());
    for name in ["results.yaml", "report.html", "./x/../Results.yaml", "cell3-grid.png", "run.ipynb"] {
        let (text, _) = error_text(&mut s, &format!("save [1] to \"{name}\""));
        assert!(text.contains("advx run writes"), "{name}: {text}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    s.run("save [1] to \"sub/results.yaml\"").expect("another folder's results.yaml is the user's");
}

#[test]
fn save_writes_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = session().with_out_dir(dir.path());
    s.run("let e = evaluate fc100 on test\nsave e to \"e.yaml\"; save e to \"e.json\"; save e to \"e.csv\"").unwrap();
    s.run("save grid(test[0..4]) to \"g.png\"; save histogram(e.per_class) to \"h.svg\"; save test[0..3] to \"t.png\"")
        .unwrap();
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join("e.yaml")).unwrap()).unwrap();
    assert!(yaml["evaluate"]["models"][0]["error_rate"].as_f64().is_some());
    let csv = std::fs::read_to_string(dir.path().join("e.csv")).unwrap();
    assert!(csv.starts_with("model,images,errors,error"), "{csv}");
    assert!(std::fs::read(dir.path().join("g.png")).unwrap().starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(dir.path().join("h.svg")).unwrap().contains("<svg"));
    let (text, _) = error_text(&mut s, "save e to \"e.docx\"");
    assert!(text.contains("cannot save to `.docx` files"), "{text}");
    let (text, _) = error_text(&mut s, "save 3 to \"three.png\"");
    assert!(text.contains("not a figure"), "{text}");
}

#[test]
fn a_missing_model_file_is_named() {
    let mut s = Session::new().unwrap();
    let (text, _) = error_text(&mut s, "model m = onnx \"no/such.onnx\"");
    assert!(text.contains("no/such.onnx") && text.contains("not found"), "{text}");
}

#[test]
fn gaussian_noise_is_clipped_reproducible_and_measured() {
    let mut s = session();
    s.run("let a = gaussian test[0..50] stddev: 0.2 seed: 3\nlet b = gaussian test[0..50] stddev: 0.2 seed: 3")
        .unwrap();
    s.run("let d = a.mean_distortion").unwrap();
    let (Some(Value::Object(a)), Some(Value::Object(b))) = (s.get("a"), s.get("b")) else { panic!("objects") };
    let (a, b) = (a.images().unwrap(), b.images().unwrap());
    assert_eq!(a.images, b.images, "the same seed gives the same noise");
    assert!(a.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let original = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..50).unwrap();
    let direct: f64 = a
        .images
        .outer_iter()
        .zip(original.images.outer_iter())
        .map(|(x, y)| (x.iter().zip(y.iter()).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>() / 784.0).sqrt())
        .sum::<f64>()
        / 50.0;
    assert!((number(&s, "d") - direct).abs() < 1e-9);
    assert!(direct > 0.1 && direct < 0.2, "clipping shrinks the noise below its stddev: {direct}");
}

#[test]
fn transfer_rows_are_error_rates_of_each_model() {
    let mut s = session();
    s.run("model fc10 = onnx \"models/mnist/fc10-1e-4.onnx\"\nlet noisy = gaussian test stddev: 0.3 seed: 1").unwrap();
    s.run("let t = transfer [noisy, test] to [fc10, fc100]\nlet e = (evaluate [fc10, fc100] on noisy).error").unwrap();
    let Some(Value::Object(t)) = s.get("t") else { panic!() };
    let Some(Value::List(rows)) = t.field("errors") else { panic!() };
    let Value::List(first) = &rows[0] else { panic!() };
    let Some(Value::List(direct)) = s.get("e") else { panic!() };
    assert_eq!(
        first.iter().map(|v| v.as_number()).collect::<Vec<_>>(),
        direct.iter().map(|v| v.as_number()).collect::<Vec<_>>()
    );
    let shown = s.run("show t").unwrap();
    assert!(shown[0].bundle.text.contains("av. distortion"));
    assert!(shown[1].bundle.png.is_some(), "a heatmap");
}

/// The Jupyter kernel's prelude: paths against its own folder, nothing
/// shown and no cell counted; a failing one says where.
#[test]
fn a_prelude_binds_names_before_the_first_cell() {
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    s.run_prelude(std::path::Path::new("models/mnist/models.advx")).unwrap();
    assert!(
        ["fc10_1e4", "fc100", "fc200", "ae400", "cnn"].iter().all(|name| matches!(s.get(name), Some(Value::Model(_))))
    );
    let (text, _) = error_text(&mut s, "show evaluate fc100 on nothing");
    assert!(text.contains("[cell 1:1:"), "the user's first cell is cell 1: {text}");
    s.run("show evaluate fc100 on mnist.test[0..20]").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let prelude = dir.path().join("broken.advx");
    std::fs::write(&prelude, "let a = 1\nmodel m = onnx \"missing.onnx\"\n").unwrap();
    let mut s = Session::new().unwrap();
    let e = s.run_prelude(&prelude).unwrap_err().to_string();
    assert!(e.contains("missing.onnx") && e.contains("broken.advx"), "{e}");
    assert!(s.get("a").is_some(), "what ran before the failure stays bound");
}
