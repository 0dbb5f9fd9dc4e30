//! Progress bars for long operations: shown on a terminal, silent elsewhere
//! (CI logs, notebooks, pipes).

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes the progress bar of an operation, given its steps and label:
/// [`bar`] in a batch run, the Jupyter kernel's in a notebook.
pub type Bars = Arc<dyn Fn(u64, &str) -> ProgressBar + Send + Sync>;

/// How a bar looks, on a terminal and in a notebook.
pub fn style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:30} [{bar:40}] {pos}/{len} ({eta})")
        .expect("valid template")
        .progress_chars("=> ")
}

/// A bar of `total` steps labelled `label`, hidden unless stderr is a terminal.
pub fn bar(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        bar.set_style(style());
        bar.set_message(label.to_string());
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// A line that stays: printed above the bar on a terminal, on stderr
/// elsewhere, so that a log (a cluster job's, a pipe's) has it too.
pub fn line(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
