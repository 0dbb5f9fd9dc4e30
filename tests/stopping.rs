//! Ctrl-C and SIGTERM stop every long operation within about a second and
//! keep what it finished. In their own test binary, one test at a time:
//! the interrupt request is process-wide, and the timings want the cores.
//!
//! Each workload below would run for many seconds (the slowest, the attack
//! on 1000 images, for tens); a request stops it well under 2 s later.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use advx::attack::search::{self, Options};
use advx::attack::workers::Worker;
use advx::interrupt::{self, Signal};
use advx::runtime::Device;
use advx::session::{Session, Value};
use ndarray::s;

/// How long after the request an operation may still run: "about a
/// second", with room for a loaded machine.
const PROMPT: Duration = Duration::from_secs(2);
const FC100: &str = "models/mnist/fc100-100-10.onnx";
const FC100_XENT: &str = "models/mnist/backward/fc100-100-10.xent.onnx";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` while another thread requests `signal` once `ready` says
/// so; returns its result and how long it ran after the request.
fn interrupted<T>(
    signal: Signal,
    ready: impl Fn() -> bool + Send + 'static,
    work: impl FnOnce() -> T,
) -> (T, Duration) {
    interrupt::reset();
    let requester = thread::spawn(move || {
        while !ready() {
            thread::sleep(Duration::from_millis(5));
        }
        let at = Instant::now();
        interrupt::request(signal);
        at
    });
    let result = work();
    let ended = Instant::now();
    let requested = requester.join().expect("the requesting thread ends");
    interrupt::reset();
    (result, ended.saturating_duration_since(requested))
}

/// `ready` for a request `delay` from now.
fn after(delay: Duration) -> impl Fn() -> bool + Send + 'static {
    let start = Instant::now();
    move || start.elapsed() >= delay
}

fn workers(count: usize) -> Vec<Worker> {
    (0..count).map(|_| Worker::load(FC100.as_ref(), FC100_XENT.as_ref(), Device::Cpu, 1).unwrap()).collect()
}

#[test]
fn an_interrupted_attack_keeps_exactly_the_batches_that_finished() {
    let _serial = serial();
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..1000).unwrap();
    let options = Options { batch: 5, ..Options::default() };
    for count in [1, 2] {
        let mut workers = workers(count);
        let progress = Arc::new(AtomicUsize::new(0));
        let seen = progress.clone();
        let (attacked, late) = interrupted(
            Signal::Interrupt,
            move || seen.load(Ordering::SeqCst) >= 15,
            || {
                search::attack(&mut workers, test.images.view(), &test.labels, &options, |done| {
                    progress.store(done, Ordering::SeqCst);
                    interrupt::check()
                })
            },
        );
        let attacked = attacked.expect("an interrupted attack returns what it finished");
        println!("{count} worker(s): {} examples kept, stopped {late:?} after the request", attacked.found.len());
        assert!(late < PROMPT, "{count} worker(s): the attack ran {late:?} after the request");
        assert_eq!(attacked.interrupted, Some(Signal::Interrupt));
        assert_eq!(attacked.requested, 1000);
        let found = &attacked.found;
        assert!(found.len() >= 15 && found.len() < 500, "{count} worker(s): {} examples kept", found.len());
        assert!(found.windows(2).all(|w| w[0].index < w[1].index), "by increasing index");
        let batches: std::collections::BTreeSet<usize> = found.iter().map(|f| f.index / 5).collect();
        assert_eq!(found.len(), 5 * batches.len(), "whole batches only: {batches:?}");

        // The same examples, uninterrupted: the batches up to the last kept.
        let end = 5 * (batches.last().unwrap() + 1);
        let images = test.images.slice(s![..end, .., .., ..]);
        let whole = search::attack(&mut workers, images, &test.labels[..end], &options, |_| Ok(()));
        let whole = whole.unwrap().complete().unwrap();
        for f in found {
            let w = &whole[f.index];
            assert_eq!(w.index, f.index);
            let key = |f: &search::Found| (f.label, f.target, f.success, f.iterations, f.evaluations, f.c);
            assert_eq!(key(f), key(w), "example {}", f.index);
            assert_eq!((f.image.as_slice(), f.distortion), (w.image.as_slice(), w.distortion), "example {}", f.index);
        }
    }
}

#[test]
fn an_interrupted_lbfgs_is_marked_partial_everywhere_it_shows() {
    let _serial = serial();
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    s.run(&format!("model fc100 = onnx \"{FC100}\"\nlet test = mnist.test[0..1000]")).unwrap();
    let (result, late) = interrupted(Signal::Terminate, after(Duration::from_secs(3)), || {
        s.execute("let adv = lbfgs fc100 on test { batch: 1 }")
    });
    assert!(late < PROMPT, "lbfgs ran {late:?} after the request");
    let signal = result.error.as_ref().and_then(|e| e.signal());
    assert_eq!(signal, Some(Signal::Terminate), "the cell ends with the signal after the statement");
    let Some(Value::Object(adv)) = s.get("adv") else { panic!("adv is bound") };
    let Some(Value::List(attacked)) = adv.field("attacked") else { panic!("attacked is a list") };
    let n = attacked.len();
    assert!(n < 1000, "stopped long before the end: {n} examples");
    assert!(matches!(adv.field("partial"), Some(Value::Bool(true))));

    let bundle = &adv.show().unwrap()[0].bundle;
    let line = format!("partial: {n} of 1000 examples, terminated (SIGTERM)");
    assert!(bundle.text.contains(&line), "{}", bundle.text);
    assert!(bundle.html.as_deref().unwrap().contains(&line));
    if let Some(figure) = adv.figure() {
        assert!(figure.title.contains(&line), "{}", figure.title);
    }
    let json = &adv.to_json()["lbfgs"];
    assert_eq!((json["partial"].as_bool(), json["requested"].as_u64()), (Some(true), Some(1000)));
    let indices: Vec<u64> =
        json["per_example"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    let listed: Vec<u64> = attacked.iter().map(|v| v.as_number().unwrap() as u64).collect();
    assert_eq!(indices, listed, "the JSON names the examples attacked");
    let csv = adv.csv().unwrap();
    assert_eq!(csv[0].last().map(String::as_str), Some("partial"));
    assert_eq!(csv.len(), n + 1);
    assert!(csv[1..].iter().all(|row| row.last().map(String::as_str) == Some("true")));

    // A complete attack says so too.
    s.run("let whole = lbfgs fc100 on test[0..3] { lagrangian: 20 }").unwrap();
    let Some(Value::Object(whole)) = s.get("whole") else { panic!("whole is bound") };
    assert!(matches!(whole.field("partial"), Some(Value::Bool(false))));
    assert!(!whole.show().unwrap()[0].bundle.text.contains("partial"));
    assert_eq!(whole.to_json()["lbfgs"]["partial"].as_bool(), Some(false));
    assert!(whole.csv().unwrap()[1..].iter().all(|row| row.last().map(String::as_str) == Some("false")));
}

/// Every operation that runs long, each on a workload of many seconds.
#[test]
fn every_long_operation_stops_within_a_second() {
    let _serial = serial();
    let mut s = Session::new().unwrap().with_device(Device::Cpu);
    let setup = format!(
        "model fc100 = onnx \"{FC100}\"\nmodel fc200 = onnx \"models/mnist/fc200-200-10.onnx\"\n\
         model cnn = onnx \"models/mnist/cnn.onnx\"\nlet train = mnist.train\nlet test = mnist.test"
    );
    s.run(&setup).unwrap();
    let statements = [
        // ONNX Runtime calls on 60000 images.
        "evaluate cnn on train",
        "predict cnn on train",
        "transfer [train] to [cnn, cnn]",
        // Ranking 10000 images along 10000 random directions of 200 units.
        "units fc200 layer: \"advx_sigmoid\" on test { random: 10000 }",
        // Streaming the 12.5 million pairs of 5000 images.
        "lipschitz fc100 on test[0..5000] { pairs: 1e9 }",
        // 100000 steps of gradient ascent.
        "visualize fc100 layer: \"advx_sigmoid\" { steps: 100000 }",
    ];
    for statement in statements {
        let (result, late) =
            interrupted(Signal::Interrupt, after(Duration::from_millis(1500)), || s.execute(statement));
        let error = result.error.map(|e| e.render(false)).unwrap_or_default();
        let error = error.split_whitespace().filter(|word| *word != "│").collect::<Vec<_>>().join(" ");
        assert!(error.contains("interrupted (Ctrl-C)"), "{statement}: {error}");
        println!("{statement}: stopped {late:?} after the request");
        assert!(late < PROMPT, "{statement} ran {late:?} after the request");
    }
}

/// The recipe's model is not written, but the model after the last epoch
/// that finished is, as a checkpoint the error names. The stop is asked for
/// once the first epoch's checkpoint exists, however busy the machine.
#[test]
fn training_stops_within_a_step_and_keeps_the_last_epochs_checkpoint() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("long.recipe.yaml");
    std::fs::write(&recipe, recipe_text("long", 1000)).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let checkpoint = out.join("long.checkpoint.onnx");
    let first_epoch_done = {
        let checkpoint = checkpoint.clone();
        move || checkpoint.is_file()
    };
    let (result, late) =
        interrupted(Signal::Terminate, first_epoch_done, || advx::train::run(&recipe, &out, Device::Cpu));
    let error = result.expect_err("1000 epochs do not end after the first");
    assert!(interrupt::is_interrupted(&error), "{error:#}");
    assert!(late < PROMPT, "training ran {late:?} after the request");
    let written: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(
        written,
        ["long.checkpoint.onnx"],
        "only the checkpoint; half-trained weights are not the recipe's model"
    );
    assert!(format!("{error:#}").contains(&checkpoint.display().to_string()), "{error:#}");
    let mut classifier = advx::classifier::Classifier::load(&checkpoint, Device::Cpu).unwrap();
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..1000).unwrap();
    let error = classifier.evaluate(test.images.view(), &test.labels).unwrap().error_rate();
    // Chance is 0.9; the first epoch on 2000 images brings it to about 0.57.
    assert!(error < 0.75, "the checkpoint's test error is {error}: not trained weights");
}

/// A sigmoid 100-100-10 recipe on 2000 training images.
fn recipe_text(name: &str, epochs: usize) -> String {
    format!(
        "name: {name}\ndataset: mnist\nsubset: [0, 2000]\nlayers:\n  - dense: {{units: 100, activation: sigmoid}}\n  \
         - dense: {{units: 100, activation: sigmoid}}\n  - dense: {{units: 10}}\n\
         optimizer: {{kind: adam, learning_rate: 0.001, batch_size: 100, epochs: {epochs}}}\nseed: 1\n"
    )
}

/// `advx ARGS` with its output piped, lines sent down a channel.
fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_advx"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("advx starts");
    let (sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
        let sender = sender.clone();
        thread::spawn(move || BufReader::new(stream).lines().map_while(Result::ok).for_each(|l| drop(sender.send(l))));
    }
    (child, lines)
}

/// Waits for a line containing `wanted`; every line read, in order.
fn wait_for(lines: &mpsc::Receiver<String>, wanted: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !seen.iter().any(|l| l.contains(wanted)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line with {wanted:?} came; output so far:\n{}", seen.join("\n")),
        }
    }
}

/// Sends `signal` and waits for the exit; the exit code and how long it took.
fn stop(child: &mut Child, signal: &str) -> (Option<i32>, Duration) {
    let at = Instant::now();
    let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    (status.code(), at.elapsed())
}

fn rest(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>) -> String {
    seen.extend(lines.iter());
    seen.join("\n")
}

#[test]
fn advx_eval_stops_on_ctrl_c_with_130_and_keeps_the_rows_printed() {
    let _serial = serial();
    let args = [
        "eval",
        "models/mnist/fc10-1e-4.onnx",
        "models/mnist/cnn.onnx",
        "models/mnist/cnn.onnx",
        "--data",
        "mnist:train",
        "--device",
        "cpu",
    ];
    let (mut child, lines) = spawn(&args);
    let mut seen = Vec::new();
    wait_for(&lines, "fc10-1e-4.onnx", &mut seen);
    let (code, took) = stop(&mut child, "-INT");
    let output = rest(&lines, &mut seen);
    assert_eq!(code, Some(130), "{output}");
    assert!(took < PROMPT, "advx eval ran {took:?} after Ctrl-C");
    assert!(!output.lines().any(|l| l.starts_with("models/mnist/cnn.onnx")), "no row for the stopped model: {output}");
    assert!(output.contains("interrupted (Ctrl-C)"), "{output}");
}

#[test]
fn advx_train_stops_on_sigterm_with_143_and_keeps_the_models_trained() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (short, long) = (dir.path().join("short.recipe.yaml"), dir.path().join("long.recipe.yaml"));
    std::fs::write(&short, recipe_text("short", 1)).unwrap();
    std::fs::write(&long, recipe_text("long", 1000)).unwrap();
    let out = dir.path().join("out");
    let args = ["train", short.to_str().unwrap(), long.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let (mut child, lines) = spawn(&args);
    let mut seen = Vec::new();
    wait_for(&lines, "train error", &mut seen);
    // Into the long recipe's epochs.
    thread::sleep(Duration::from_millis(1500));
    let (code, took) = stop(&mut child, "-TERM");
    let output = rest(&lines, &mut seen);
    assert_eq!(code, Some(143), "{output}");
    assert!(took < PROMPT, "advx train ran {took:?} after SIGTERM");
    assert!(output.contains("terminated (SIGTERM)") && output.contains("the 1 model(s) trained before it"), "{output}");
    assert!(out.join("short.onnx").is_file() && out.join("short.yaml").is_file(), "the finished model stays");
    assert!(!out.join("long.onnx").exists() && !out.join("long.yaml").exists(), "the stopped one is not written");
    assert!(out.join("long.checkpoint.onnx").is_file() && output.contains("long.checkpoint.onnx"), "{output}");
}

#[test]
fn advx_bench_stops_on_sigterm_with_143_and_its_results_say_so() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.yaml");
    let args = [
        "bench",
        "--only",
        "lbfgs,backward",
        "--models",
        "fc100-100-10",
        "--images",
        "10",
        "--reference",
        "none",
        "--batches",
        "1",
        "--seconds",
        "1000",
        "--device",
        "cpu",
        "--out",
        results.to_str().unwrap(),
    ];
    let (mut child, lines) = spawn(&args);
    let mut seen = Vec::new();
    // The lbfgs part is written; the backward part would time for 2000 s.
    wait_for(&lines, "refine off", &mut seen);
    wait_until(|| std::fs::read_to_string(&results).is_ok_and(|y| y.contains("model: fc100-100-10")));
    let (code, took) = stop(&mut child, "-TERM");
    let output = rest(&lines, &mut seen);
    assert_eq!(code, Some(143), "{output}");
    assert!(took < PROMPT, "advx bench ran {took:?} after SIGTERM");
    let yaml = std::fs::read_to_string(&results).unwrap();
    assert!(yaml.contains("status: terminated (SIGTERM)"), "{yaml}");
    assert!(yaml.contains("model: fc100-100-10") && yaml.contains("backward: []"), "{yaml}");
}

fn wait_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        thread::sleep(Duration::from_millis(20));
    }
}
