//! Ctrl-C and SIGTERM in the session, in their own test binary: the flag
//! is process-wide, and other tests running beside these must not see it.
//! The tests here take turns (`TURN`) for the same reason.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use advx::interrupt::{self, Signal};
use advx::runtime::Device;
use advx::session::{CellError, Session};

static TURN: Mutex<()> = Mutex::new(());

fn session(out: &Path) -> Session {
    let mut s = Session::new().unwrap().with_device(Device::Cpu).with_out_dir(out);
    s.run("model fc100 = onnx \"models/mnist/fc100-100-10.onnx\"\nlet test = mnist.test[0..300]").unwrap();
    s
}

/// Requests `signal` as soon as `marker` exists: the moment the statement
/// that saves it has finished and the next one starts.
fn request_when(marker: &Path, signal: Signal) -> std::thread::JoinHandle<()> {
    let marker = marker.to_path_buf();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !marker.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        interrupt::request(signal);
    })
}

fn label(error: &CellError) -> String {
    error.render(false)
}

#[test]
fn a_request_pending_before_a_cell_runs_none_of_it_and_the_session_runs_again() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    interrupt::request(Signal::Interrupt);
    let result = s.execute("show 1\nshow evaluate fc100 on test");
    interrupt::reset();
    assert_eq!(result.outputs.len(), 0, "a request pending before the cell runs none of it");
    let error = result.error.unwrap();
    assert!(label(&error).contains("interrupted") && label(&error).contains("not run"), "{}", label(&error));
    s.run("show evaluate fc100 on test").expect("runs again after the interrupt");
}

#[test]
fn an_operation_stopped_midway_ends_the_cell_and_nothing_after_it_runs() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let models = vec!["fc100"; 200].join(", ");
    let waiter = request_when(&dir.path().join("started.yaml"), Signal::Interrupt);
    let started = Instant::now();
    let result = s.execute(&format!(
        "show 1\nsave 1 to \"started.yaml\"\nlet e = evaluate [{models}] on mnist.train\nshow 2\nsave 2 to \"after.yaml\""
    ));
    waiter.join().unwrap();
    let took = started.elapsed();
    let error = result.error.expect("the cell ends with the interrupt");
    assert_eq!(error.signal(), Some(Signal::Interrupt));
    assert_eq!(error.exit_code(), 130);
    let text = label(&error);
    assert!(text.contains("line 3") && text.contains("stopped here"), "{text}");
    let texts: Vec<&str> = result.outputs.iter().map(|o| o.bundle.text.as_str()).collect();
    assert_eq!(texts[0], "1");
    assert_eq!(texts.len(), 2, "show 1 and the save, not show 2: {texts:?}");
    assert!(s.get("e").is_none(), "the stopped evaluation is not bound");
    assert!(!dir.path().join("after.yaml").exists(), "a later statement ran");
    assert!(took < Duration::from_secs(60), "200 evaluations on the training set did not stop: {took:?}");
    assert!(interrupt::requested().is_none(), "execute consumed the request; the kernel goes on");
    s.run("show 3").expect("the next cell runs");
}

#[test]
fn a_statement_that_finishes_keeps_its_value_and_the_cell_ends_after_it() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    // Arithmetic on image sets runs to its end whatever arrives meanwhile.
    let sum = ["mnist.train"; 10].join(" + ");
    let waiter = request_when(&dir.path().join("started.yaml"), Signal::Terminate);
    let result = s.execute(&format!("save 1 to \"started.yaml\"\nlet big = {sum}\nshow 2\nsave 2 to \"after.yaml\""));
    waiter.join().unwrap();
    let error = result.error.expect("the cell ends with the interrupt");
    assert_eq!(error.signal(), Some(Signal::Terminate));
    assert_eq!(error.exit_code(), 143);
    let text = label(&error);
    assert!(text.contains("terminated (SIGTERM)") && text.contains("line 2"), "{text}");
    assert!(text.contains("its result is kept"), "{text}");
    assert!(s.get("big").is_some(), "the finished statement's value is bound");
    assert_eq!(result.outputs.len(), 1, "only the first save's output");
    assert!(!dir.path().join("after.yaml").exists(), "a later statement ran");
}

#[test]
fn a_batch_run_sees_the_request_between_cells() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut s = session(dir.path());
    let script = advx::lang::parse("s.advx", "# %% a\nshow 1\n# %% b\nsave 1 to \"b.yaml\"\n").unwrap();
    let src = advx::session::Source { name: "s.advx", text: "# %% a\nshow 1\n# %% b\nsave 1 to \"b.yaml\"\n" };
    assert!(s.run_cell(&script.cells[0], &src).error.is_none());
    interrupt::request(Signal::Terminate);
    let second = s.run_cell(&script.cells[1], &src);
    let pending = interrupt::requested();
    interrupt::reset();
    assert_eq!(second.error.and_then(|e| e.signal()), Some(Signal::Terminate));
    assert!(!dir.path().join("b.yaml").exists(), "no statement of a later cell runs");
    assert_eq!(pending, Some(Signal::Terminate), "run_cell leaves the request for advx run to see");
}
