//! A run's lifecycle end to end, on the `advx` binary: signals (SIGINT,
//! SIGTERM, SIGKILL) arriving while a cell runs, the status the report
//! says, and the output folder one run owns (its lock, `save` to the
//! run's own names, an unusable `--out`, a figure that cannot be written).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn advx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_advx"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The text with miette's line wrapping undone: words joined by single spaces.
fn flat(text: &str) -> String {
    text.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ")
}

fn model(name: &str) -> String {
    std::fs::canonicalize(format!("models/mnist/{name}.onnx")).unwrap().display().to_string()
}

/// Cell one loads a model and shows 42; cell two evaluates the CNN on the
/// training set a hundred times (minutes of work), then shows 7; cell
/// three saves a file. A signal sent once cell one is recorded lands in
/// cell two.
fn long_script(dir: &Path) -> PathBuf {
    let models = vec!["cnn"; 100].join(", ");
    let body = format!(
        "# %% one\nmodel cnn = onnx \"{}\"\nshow 40 + 2\n\
         # %% two\nshow evaluate [{models}] on mnist.train\nshow 7\n\
         # %% three\nsave 1 to \"after.yaml\"\n",
        model("cnn")
    );
    let path = dir.join("long.advx");
    std::fs::write(&path, body).unwrap();
    path
}

fn spawn(script: &Path, out: &Path) -> Child {
    advx()
        .args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap(), "--device", "cpu"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("advx starts")
}

fn results(out: &Path) -> Option<serde_yaml::Value> {
    serde_yaml::from_str(&std::fs::read_to_string(out.join("results.yaml")).ok()?).ok()
}

/// Waits until results.yaml records cell one (the run is then in cell two).
fn wait_for_first_cell(child: &mut Child, out: &Path) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if results(out).is_some_and(|r| r["cells"].as_sequence().is_some_and(|c| !c.is_empty())) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("advx ended before cell one was recorded ({status})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("cell one was not recorded within 3 minutes");
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) only sends a signal to the child this test started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({}, {signal}): {}", child.id(), std::io::Error::last_os_error());
}

/// The child's output once it ends, and how long that took after the
/// signal; killed (and failed) past a minute.
fn wait_after_signal(mut child: Child) -> (Output, Duration) {
    let sent = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if sent.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("advx still ran a minute after the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = sent.elapsed();
    (child.wait_with_output().unwrap(), took)
}

/// A signal in cell two: the run stops long before cell two could have
/// ended, exits as the signal asks, keeps cell one, records cell two as
/// stopped, and runs neither cell two's second statement nor cell three.
fn stop_with(signal_number: libc::c_int, code: i32, status: &str, words: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = spawn(&long_script(dir.path()), &out);
    wait_for_first_cell(&mut child, &out);
    // Cell one's record is written before its report; a signal that came
    // while the report is written stops the run before cell two, rightly
    // recording no cell two. Cell two takes minutes: 2 s on, it is running.
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, signal_number);
    let (run, took) = wait_after_signal(child);
    assert_eq!(run.status.code(), Some(code), "{}", text(&run));
    assert!(took < Duration::from_secs(20), "stopped {took:?} after the signal");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("42") && !stdout.contains("\n7\n"), "cell two's `show 7` ran: {stdout}");
    assert!(!out.join("after.yaml").exists(), "cell three's save ran");
    let results = results(&out).unwrap();
    assert_eq!(results["status"], status);
    let cells = results["cells"].as_sequence().unwrap();
    assert_eq!(cells.len(), 2, "cells one and two, not three");
    assert_eq!(cells[0]["outputs"][0]["data"].as_u64(), Some(42), "cell one's output is kept");
    let error = cells[1]["error"].as_str().unwrap();
    assert!(error.contains(words) && error.contains("cell 2"), "{error}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains(&format!("class=\"banner {status}\"")), "report.html says {status}");
}

#[test]
fn ctrl_c_stops_the_run_exits_130_and_says_interrupted() {
    stop_with(libc::SIGINT, 130, "interrupted", "interrupted (Ctrl-C)");
}

#[test]
fn sigterm_stops_the_run_exits_143_and_says_terminated() {
    stop_with(libc::SIGTERM, 143, "terminated", "terminated (SIGTERM)");
}

#[test]
fn a_killed_run_leaves_a_report_that_says_running_and_does_not_lock_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = spawn(&long_script(dir.path()), &out);
    wait_for_first_cell(&mut child, &out);
    signal(&child, libc::SIGKILL);
    let (run, _) = wait_after_signal(child);
    assert_eq!(run.status.code(), None, "killed");
    let results = results(&out).unwrap();
    assert_eq!(results["status"], "running", "a killed run's report says it is incomplete");
    assert_eq!(results["cells"][0]["outputs"][0]["data"].as_u64(), Some(42));
    assert!(out.join(advx::report::LOCK_FILE).is_file(), "the killed run's lock file stays behind");

    let script = dir.path().join("short.advx");
    std::fs::write(&script, "show 1 + 2\n").unwrap();
    let again = advx().args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "the stale lock blocks nothing: {}", text(&again));
    assert_eq!(self::results(&out).unwrap()["status"], "complete");
}

#[test]
fn a_second_run_on_the_same_folder_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut first = spawn(&long_script(dir.path()), &out);
    wait_for_first_cell(&mut first, &out);
    let pid = first.id();

    let script = dir.path().join("second.advx");
    std::fs::write(&script, "save 1 to \"second.yaml\"\n").unwrap();
    let second = advx().args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    signal(&first, libc::SIGINT);
    let (first_run, _) = wait_after_signal(first);

    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    let message = text(&second);
    assert!(message.contains("in use by another advx run"), "{message}");
    assert!(message.contains(out.to_str().unwrap()), "names the folder: {message}");
    assert!(message.contains(&format!("pid {pid}")), "names the holder: {message}");
    assert!(!out.join("second.yaml").exists(), "the second run ran nothing");
    assert_eq!(first_run.status.code(), Some(130), "{}", text(&first_run));
    let results = results(&out).unwrap();
    assert_eq!(results["script"], dir.path().join("long.advx").to_str().unwrap(), "the first run's report");
    assert_eq!(results["cells"].as_sequence().unwrap().len(), 2);
}

#[test]
fn an_unwritable_output_folder_fails_before_the_first_cell() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran.yaml");
    let script = dir.path().join("s.advx");
    std::fs::write(&script, format!("save 1 to \"{}\"\n", marker.display())).unwrap();
    std::fs::write(dir.path().join("file"), "not a folder").unwrap();
    let out = dir.path().join("file/out");
    let run = advx().args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(
        text(&run).contains("cannot write to the output folder") && text(&run).contains("file/out"),
        "{}",
        text(&run)
    );
    assert!(!marker.exists(), "the first cell ran");
}

#[test]
fn save_refuses_the_names_the_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (value, name, what) in [
        ("[1, 2]", "results.yaml", "the run's results"),
        ("[1, 2]", "./sub/../REPORT.html", "the run's report"),
        ("mnist.test[0..2]", "cell1-images.png", "a figure file"),
        ("[1, 2]", ".advx-run.lock", "lock file"),
    ] {
        let script = dir.path().join("s.advx");
        std::fs::write(&script, format!("# %% one\nshow 42\n# %% two\nsave {value} to \"{name}\"\n")).unwrap();
        let run = advx().args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
        assert_eq!(run.status.code(), Some(1), "{name}: {}", text(&run));
        let message = flat(&text(&run));
        assert!(message.contains(what) && message.contains("choose another name"), "{name}: {message}");
        assert!(message.contains(&format!("cannot save to \"{name}\"")), "{name}: {message}");
        let results = results(&out).unwrap();
        assert_eq!(results["status"], "failed", "{name}");
        assert_eq!(results["cells"][0]["outputs"][0]["data"].as_u64(), Some(42), "{name}: the run's own file");
    }
    let script = dir.path().join("s.advx");
    std::fs::write(&script, "save [1, 2] to \"mine.yaml\"\n").unwrap();
    let run = advx().args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert!(out.join("mine.yaml").is_file());
}

#[test]
fn a_figure_that_cannot_be_written_is_reported_and_the_rest_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A folder where cell one's preview grid should be saved.
    std::fs::create_dir_all(out.join("cell1-images.png/blocked")).unwrap();
    let script = dir.path().join("s.advx");
    std::fs::write(&script, "# %% one\nshow mnist.test[0..4]\nshow 42\n# %% two\nshow 7\n").unwrap();
    let run = advx().args(["run", script.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "something failed: {}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.matches("cell1-images.png").count(), 1, "said once: {stderr}");
    let results = results(&out).unwrap();
    assert_eq!(results["status"], "complete", "every cell ran");
    let outputs = results["cells"][0]["outputs"].as_sequence().unwrap();
    assert_eq!(outputs.len(), 3, "the set's text, its figure, 42");
    assert!(outputs[1]["error"].as_str().unwrap().contains("cell1-images.png"), "{:?}", outputs[1]);
    assert_eq!(outputs[1]["svg"], "cell1-images.svg");
    assert!(out.join("cell1-images.svg").is_file());
    assert_eq!(outputs[2]["data"].as_u64(), Some(42));
    assert_eq!(results["cells"][1]["outputs"][0]["data"].as_u64(), Some(7), "later cells too");
}
