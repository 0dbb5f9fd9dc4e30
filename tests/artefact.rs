//! Derived files tied to what made them, and every file written whole.
//!
//! A backward graph beside a model is used only when its provenance
//! (`metadata_props`: the model's SHA-256, the objective, the exporter)
//! matches; otherwise advx exports afresh, beside the model or into the
//! user cache, and says so. A manifest of another model lends no numbers.
//! Files written under a file-size limit (a full disk without root) leave
//! the old file intact and no temporary behind. A model advx cannot
//! differentiate still loads and evaluates; `lbfgs` on it names the op and
//! node. Every run here gets its own cache folder (`XDG_CACHE_HOME`), so
//! no test touches the user's cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use advx::artefact::provenance::{self, Provenance};
use advx::grad::Objective;
use advx::onnx::builder::{Elem, GraphBuilder, attr};
use advx::onnx::shape::Dim::{Batch, Fixed};
use advx::session::Session;
use advx::train::manifest::sha256_file;
use serde_yaml::Value;

/// An attack small enough to run in a fraction of a second, but whose
/// numbers depend on every gradient.
const ATTACK: &str =
    "model m = onnx \"m.onnx\"\nlet adv = lbfgs m on mnist.test[0..10] { lagrangian: 0, steps: 3 }\nshow adv\n";

fn committed_model(name: &str) -> PathBuf {
    PathBuf::from(format!("models/mnist/{name}.onnx"))
}

fn committed_backward(name: &str) -> PathBuf {
    PathBuf::from(format!("models/mnist/backward/{name}.xent.onnx"))
}

/// A folder holding a copy of a committed model as `m.onnx`.
fn model_folder(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(committed_model(name), dir.path().join("m.onnx")).unwrap();
    dir
}

fn beside(dir: &Path) -> PathBuf {
    dir.join("backward/m.xent.onnx")
}

fn advx(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_advx"));
    command.env("XDG_CACHE_HOME", cache).env("NO_COLOR", "1");
    command
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What `lbfgs` found, as results.yaml records it.
struct Attack {
    output: Output,
    success_rate: f64,
    /// (c, distortion) per example.
    examples: Vec<(f64, f64)>,
}

/// Runs [`ATTACK`] on `dir/m.onnx` with `cache` as the user cache.
fn attack(dir: &Path, cache: &Path) -> Attack {
    let script = dir.join("attack.advx");
    std::fs::write(&script, ATTACK).unwrap();
    let out = dir.join("out");
    let output = advx(cache).arg("run").arg(&script).arg("--out").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let results: Value = serde_yaml::from_str(&std::fs::read_to_string(out.join("results.yaml")).unwrap()).unwrap();
    let lbfgs = &results["cells"][0]["outputs"][0]["data"]["lbfgs"];
    let examples = lbfgs["per_example"]
        .as_sequence()
        .expect("per-example results")
        .iter()
        .map(|e| (e["c"].as_f64().unwrap(), e["distortion"].as_f64().unwrap()))
        .collect();
    Attack { success_rate: lbfgs["success_rate"].as_f64().unwrap(), examples, output }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Whether `graph` records that it was exported from the model file `model`
/// for `xent` by this advx.
fn verified(graph: &Path, model: &Path) -> bool {
    let expected = Provenance::current(&sha256_file(model).unwrap(), &Objective::Xent);
    provenance::verify(graph, &expected).is_ok()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn a_model_replaced_under_its_backward_graph_is_differentiated_afresh() {
    let fresh_dir = model_folder("fc10-1");
    let cache = tempfile::tempdir().unwrap();
    let fresh = attack(fresh_dir.path(), cache.path());
    assert!(!stderr(&fresh.output).contains("WARN"), "a missing graph is no news: {}", stderr(&fresh.output));

    // FC100's graph left beside FC10, and one FC10's beside another.
    for stale_source in ["fc100-100-10", "fc10-1e-2"] {
        let dir = model_folder("fc10-1");
        std::fs::create_dir(dir.path().join("backward")).unwrap();
        std::fs::copy(committed_backward(stale_source), beside(dir.path())).unwrap();
        let replaced = attack(dir.path(), cache.path());
        assert_eq!(replaced.success_rate, fresh.success_rate, "with {stale_source}'s graph");
        assert_eq!(replaced.examples, fresh.examples, "with {stale_source}'s graph: c and distortion per example");
        let said = stderr(&replaced.output);
        assert_eq!(said.matches("WARN").count(), 1, "said once: {said}");
        assert!(
            said.contains(&format!("{} was exported from another model", beside(dir.path()).display()))
                && said.contains("exported afresh"),
            "{said}"
        );
        assert!(verified(&beside(dir.path()), &dir.path().join("m.onnx")), "the stale graph is replaced");
        assert!(names_in(&cache.path().join("advx/backward")).is_empty(), "the model's folder took the graph");

        let again = attack(dir.path(), cache.path());
        assert!(!stderr(&again.output).contains("WARN"), "{}", stderr(&again.output));
    }
    assert!(verified(&beside(fresh_dir.path()), &fresh_dir.path().join("m.onnx")), "a new graph records its source");
}

/// A copy of fc10-1's own committed graph, changed by `spoil`.
fn spoiled(spoil: impl Fn(&mut advx::onnx::ModelProto)) -> Vec<u8> {
    let mut graph = advx::onnx::load(committed_backward("fc10-1")).unwrap();
    spoil(&mut graph);
    prost::Message::encode_to_vec(&graph)
}

#[test]
fn a_truncated_foreign_or_unrecorded_graph_beside_the_model_is_exported_afresh() {
    let whole = std::fs::read(committed_backward("fc10-1")).unwrap();
    let with = |objective: &str, exporter: &str| {
        spoiled(|g| {
            let sha = sha256_file(&committed_model("fc10-1")).unwrap();
            let mut p = Provenance::current(&sha, &Objective::Xent);
            (p.objective, p.exporter) = (objective.into(), exporter.into());
            p.stamp(g);
        })
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("truncated", whole[..whole.len() / 2].to_vec(), "is not a readable ONNX model"),
        ("not ONNX", b"<html>404</html>".to_vec(), "is not a readable ONNX model"),
        ("unrecorded", spoiled(|g| g.metadata_props.clear()), "records no provenance"),
        ("other objective", with("direction:scores", provenance::EXPORTER), "for objective direction:scores"),
        ("other exporter", with("xent", "advx 0.0.1"), "was exported by advx 0.0.1"),
    ];
    let reference = attack(model_folder("fc10-1").path(), tempfile::tempdir().unwrap().path());
    for (case, bytes, why) in cases {
        let dir = model_folder("fc10-1");
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("backward")).unwrap();
        std::fs::write(beside(dir.path()), bytes).unwrap();
        let run = attack(dir.path(), cache.path());
        let said = stderr(&run.output);
        assert!(said.contains(why) && said.contains(&beside(dir.path()).display().to_string()), "{case}: {said}");
        assert!(verified(&beside(dir.path()), &dir.path().join("m.onnx")), "{case}: replaced");
        assert_eq!(run.examples, reference.examples, "{case}");
    }
}

#[test]
fn a_folder_that_cannot_take_the_graph_sends_it_to_the_cache_which_is_verified_too() {
    let dir = model_folder("fc10-1");
    // Nothing can be created under `backward`, whoever runs the test.
    std::fs::write(dir.path().join("backward"), "a file where the folder would be").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    let cached = cache.path().join("advx/backward").join(format!("{}.xent.onnx", sha256_file(&model).unwrap()));
    let first = attack(dir.path(), cache.path());
    assert!(verified(&cached, &model), "{}", text(&first.output));
    assert_eq!(names_in(dir.path()), ["attack.advx", "backward", "m.onnx", "out"]);

    let whole = std::fs::read(&cached).unwrap();
    std::fs::write(&cached, &whole[..whole.len() / 3]).unwrap();
    let second = attack(dir.path(), cache.path());
    let said = stderr(&second.output);
    assert!(said.contains(&cached.display().to_string()) && said.contains("exported afresh"), "{said}");
    assert!(verified(&cached, &model), "the corrupt cache entry is replaced");
    assert_eq!(second.examples, first.examples);
    assert_eq!(names_in(cached.parent().unwrap()), [cached.file_name().unwrap().to_string_lossy()]);
}

#[cfg(unix)]
#[test]
fn a_stale_graph_in_a_read_only_folder_is_passed_over_for_the_cache() {
    use std::os::unix::fs::PermissionsExt;
    let dir = model_folder("fc10-1");
    let backward = dir.path().join("backward");
    std::fs::create_dir(&backward).unwrap();
    std::fs::copy(committed_backward("fc100-100-10"), beside(dir.path())).unwrap();
    std::fs::set_permissions(&backward, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(backward.join("probe"), "").is_ok() {
        println!("skipped: permission bits do not stop this user's writes (root?)");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let run = attack(dir.path(), cache.path());
    std::fs::set_permissions(&backward, std::fs::Permissions::from_mode(0o755)).unwrap();
    let said = stderr(&run.output);
    assert!(said.contains("was exported from another model") && said.contains("cannot be written"), "{said}");
    let model = dir.path().join("m.onnx");
    assert!(!verified(&beside(dir.path()), &model), "the read-only folder is left as it was");
    let cached = cache.path().join("advx/backward").join(format!("{}.xent.onnx", sha256_file(&model).unwrap()));
    assert!(verified(&cached, &model));
}

#[test]
fn a_manifest_of_another_model_lends_it_no_test_error() {
    let dir = model_folder("fc10-1");
    std::fs::copy("models/mnist/fc100-100-10.yaml", dir.path().join("m.yaml")).unwrap();
    let script = dir.path().join("show.advx");
    std::fs::write(&script, "model m = onnx \"m.onnx\"\nshow m\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = advx(cache.path()).arg("run").arg(&script).arg("--out").arg(dir.path().join("out")).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    let (said, shown) = (stderr(&run), String::from_utf8_lossy(&run.stdout).into_owned());
    assert!(!shown.contains("test error"), "FC100's test error shown for FC10: {shown}");
    assert!(said.contains(&format!("{} is ignored", dir.path().join("m.yaml").display())), "{said}");

    let foreign =
        format!("{:.2}%", 100.0 * advx::train::Manifest::load(&dir.path().join("m.yaml")).unwrap().test_error);
    let model = dir.path().join("m.onnx");
    let info = advx(cache.path()).arg("info").arg(&model).output().unwrap();
    let eval = advx(cache.path()).args(["eval", "--device", "cpu"]).arg(&model).output().unwrap();
    for (command, run) in [("info", &info), ("eval", &eval)] {
        assert_eq!(run.status.code(), Some(0), "{command}: {}", text(run));
        assert!(!String::from_utf8_lossy(&run.stdout).contains(&foreign), "{command} shows {foreign}: {}", text(run));
        assert!(stderr(run).contains("is ignored"), "{command}: {}", text(run));
    }

    let mut s = Session::new().unwrap().with_device(advx::runtime::Device::Cpu);
    s.run(&format!("model m = onnx \"{}\"", dir.path().join("m.onnx").display())).unwrap();
    let error = s.execute("show m.test_error").error.expect("no test error to show");
    assert!(error.render(false).contains("no field `test_error`"), "{}", error.render(false));

    std::fs::copy("models/mnist/fc10-1.yaml", dir.path().join("m.yaml")).unwrap();
    s.run(&format!("model m = onnx \"{}\"", dir.path().join("m.onnx").display())).unwrap();
    let own = advx::train::Manifest::load(Path::new("models/mnist/fc10-1.yaml")).unwrap();
    s.run("let e = m.test_error").unwrap();
    assert!(matches!(s.get("e"), Some(advx::session::Value::Number(e)) if *e == own.test_error));
}

/// Runs advx with files limited to one block: writes past it fail with
/// EFBIG, as on a full disk.
/// advx with files limited to `blocks` KiB: a write past it fails as on a full disk.
fn limited_to(blocks: u32, cache: &Path, args: &[&std::ffi::OsStr]) -> Output {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_advx"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env("NO_COLOR", "1");
    command.output().unwrap()
}

fn limited(cache: &Path, args: &[&std::ffi::OsStr]) -> Output {
    limited_to(1, cache, args)
}

const OLD: &[u8] = b"a good old output";

#[test]
fn grad_under_a_file_size_limit_keeps_the_old_output_and_leaves_no_temporary() {
    let dir = model_folder("fc10-1");
    let cache = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    let out = dir.path().join("graphs/m.onnx");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::create_dir_all(beside(dir.path()).parent().unwrap()).unwrap();
    for target in [&out, &beside(dir.path())] {
        std::fs::write(target, OLD).unwrap();
    }
    let with_o = limited(cache.path(), &["grad".as_ref(), model.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    let beside_it = limited(cache.path(), &["grad".as_ref(), model.as_os_str()]);
    for (run, target) in [(&with_o, &out), (&beside_it, &beside(dir.path()))] {
        assert_eq!(run.status.code(), Some(1), "{}", text(run));
        assert!(stderr(run).contains(&target.display().to_string()), "the error names the file: {}", text(run));
        assert!(std::fs::read(target).unwrap() == OLD, "{} is not intact", target.display());
        assert_eq!(names_in(target.parent().unwrap()), [target.file_name().unwrap().to_string_lossy()]);
    }

    let unlimited = advx(cache.path()).arg("grad").arg(&model).arg("-o").arg(&out).output().unwrap();
    assert_eq!(unlimited.status.code(), Some(0), "{}", text(&unlimited));
    assert!(verified(&out, &model), "advx grad records the provenance");
}

#[test]
fn an_export_beside_the_model_that_fails_leaves_nothing_to_trip_on() {
    let dir = model_folder("fc10-1");
    let cache = tempfile::tempdir().unwrap();
    let script = dir.path().join("attack.advx");
    std::fs::write(&script, ATTACK).unwrap();
    let out = dir.path().join("out");
    // Room for the run's first report (about 4 KiB), not for the graph (33 KiB).
    let run = limited_to(16, cache.path(), &["run".as_ref(), script.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    assert!(stderr(&run).contains("backward"), "the export failed: {}", text(&run));
    // Both folders are made before the graph is written into them: both were tried.
    for folder in [dir.path().join("backward"), cache.path().join("advx/backward")] {
        assert!(folder.is_dir(), "{} was not tried: {}", folder.display(), text(&run));
        assert!(names_in(&folder).is_empty(), "a truncated graph or a temporary in {}", folder.display());
    }

    let again = attack(dir.path(), cache.path());
    assert!(verified(&beside(dir.path()), &dir.path().join("m.onnx")), "{}", text(&again.output));
}

#[test]
fn save_under_a_file_size_limit_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let figure = out.join("grid.png");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(&figure, OLD).unwrap();
    let script = dir.path().join("save.advx");
    std::fs::write(&script, "save mnist.test[0..100] to \"grid.png\"\n").unwrap();
    // Room for the run's first report (about 4 KiB), not for the figure.
    let run = limited_to(16, cache.path(), &["run".as_ref(), script.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert_ne!(run.status.code(), Some(0), "{}", text(&run));
    assert!(stderr(&run).contains("cannot write") && stderr(&run).contains("grid.png"), "{}", text(&run));
    assert!(std::fs::read(&figure).unwrap() == OLD, "{} is not intact: {}", figure.display(), text(&run));
    assert!(!names_in(&out).iter().any(|n| n.contains("grid.png.")), "{:?}", names_in(&out));
}

#[test]
fn bench_results_under_a_file_size_limit_keep_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let results = dir.path().join("bench.yaml");
    std::fs::write(&results, OLD).unwrap();
    let bench = ["bench", "--only", "backward", "--models", "fc10-1", "--reference", "none"];
    let args: Vec<&std::ffi::OsStr> = bench
        .iter()
        .map(|a| a.as_ref())
        .chain(["--batches", "1", "--seconds", "0.01", "--out"].iter().map(|a| a.as_ref()))
        .chain([results.as_os_str()])
        .collect();
    let run = limited(cache.path(), &args);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(std::fs::read(&results).unwrap() == OLD, "{} is not intact: {}", results.display(), text(&run));
    assert!(!names_in(dir.path()).iter().any(|n| n.starts_with(".bench.")), "{:?}", names_in(dir.path()));
}

/// input [N, 1, 28, 28] -> Flatten -> Gemm(10) -> LeakyRelu `act` -> scores:
/// a classifier ONNX Runtime runs but advx has no derivative rule for.
fn undifferentiable_model(path: &Path) {
    let mut b = GraphBuilder::new();
    b.input("input", Elem::F32, &[Batch, Fixed(1), Fixed(28), Fixed(28)]);
    let flat = b.op("Flatten", &["input"], vec![attr::int("axis", 1)]);
    let weight = b.const_f32("fc.weight", &advx::grad::ops::samples::uniform(&[10, 784], 7));
    let logits = b.op("Gemm", &[&flat, &weight], vec![attr::int("transB", 1)]);
    b.push(advx::onnx::NodeProto {
        name: Some("act".into()),
        op_type: Some("LeakyRelu".into()),
        input: vec![logits],
        output: vec!["scores".into()],
        ..Default::default()
    });
    b.output("scores", Elem::F32, &[Batch, Fixed(10)]);
    advx::onnx::save(&b.into_model("leaky", advx::onnx::OPSET, "a model advx cannot differentiate"), path).unwrap();
}

#[test]
fn a_model_advx_cannot_differentiate_loads_and_evaluates_and_lbfgs_names_the_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leaky.onnx");
    undifferentiable_model(&path);
    let ops = advx(dir.path()).args(["grad", "--ops"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ops.stdout).contains("LeakyRelu"), "the fixture needs an op without a rule");

    let mut s = Session::new().unwrap().with_device(advx::runtime::Device::Cpu);
    s.run(&format!("model leaky = onnx \"{}\"", path.display())).expect("loads");
    let shown = s.run("show evaluate leaky on mnist.test[0..20]").expect("evaluates");
    assert!(shown[0].bundle.text.contains("leaky"), "{}", shown[0].bundle.text);
    let error = s.execute("lbfgs leaky on mnist.test[0..2]").error.expect("no gradient");
    // The rendering wraps long lines in a frame: read it as one line of words.
    let rendered = error.render(false);
    let words: Vec<&str> = rendered.split(|c: char| c.is_whitespace() || c == '│').filter(|w| !w.is_empty()).collect();
    let message = words.join(" ");
    assert!(message.contains("LeakyRelu node 'act' uses op LeakyRelu, which advx cannot differentiate"), "{message}");
    assert!(!dir.path().join("backward").exists(), "nothing is written for a failed export");
}

#[test]
fn a_trained_model_is_recorded_with_its_hash_and_its_graph_with_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("tiny.recipe.yaml");
    std::fs::write(
        &recipe,
        "name: tiny\nsubset: [0, 300]\nlayers:\n  - dense: {units: 10}\n\
         optimizer: {kind: adam, learning_rate: 0.01, batch_size: 100, epochs: 1}\nseed: 3\n",
    )
    .unwrap();
    let out = dir.path().join("models");
    let manifest = advx::train::run(&recipe, &out, advx::runtime::Device::Cpu).unwrap();
    let model = out.join("tiny.onnx");
    assert_eq!(manifest.model_sha256, sha256_file(&model).unwrap());
    assert_eq!(manifest.recipe_sha256, sha256_file(&recipe).unwrap());
    assert_eq!(advx::train::Manifest::load(&out.join("tiny.yaml")).unwrap(), manifest);
    assert!(verified(&out.join(&manifest.backward), &model), "the trained model's graph records its provenance");
    assert_eq!(names_in(&out), ["backward", "tiny.onnx", "tiny.yaml"], "no temporaries");
    assert_eq!(names_in(&out.join("backward")), ["tiny.xent.onnx"]);
}

#[test]
fn a_model_file_replaced_after_it_loaded_is_not_attacked_under_the_old_records() {
    let dir = model_folder("fc10-1");
    let mut s = Session::new().unwrap().with_base_dir(dir.path()).with_device(advx::runtime::Device::Cpu);
    s.run("model m = onnx \"m.onnx\"").unwrap();
    std::fs::copy(committed_model("fc10-1e-4"), dir.path().join("m.onnx")).unwrap();

    s.run("show evaluate m on mnist.test[0..20]").expect("the loaded session is the recorded model");
    for statement in ["lbfgs m on mnist.test[0..2]", "lipschitz m on mnist.test[0..10]"] {
        let error = s.execute(statement).error.expect("refused").render(false);
        assert!(error.contains("changed since `model m` loaded it"), "{statement}: {error}");
    }
    s.run("model m = onnx \"m.onnx\"\nlet adv = lbfgs m on mnist.test[0..2] { lagrangian: 20 }").expect("loaded again");
}
