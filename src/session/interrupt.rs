//! A cell stopped by Ctrl-C or SIGTERM ([`crate::interrupt`]). The session
//! looks for a request before and after every statement: the statement
//! that was running keeps its value (bound, shown, saved: an attack
//! returns the examples it finished), and no later statement or cell
//! runs. An operation that stops with [`Interrupted`](crate::interrupt::Interrupted) ends the cell the
//! same way. The error names the statement and the signal, so `advx run`
//! can mark its report and exit as the signal asks.

use miette::{Diagnostic, NamedSource, SourceSpan};
use thiserror::Error;

use crate::interrupt::Signal;

/// Where the signal found the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the statement started: it did not run.
    Before,
    /// While the statement ran; it finished, and its value is kept.
    After,
    /// The statement stopped midway.
    During,
}

/// The diagnostic of a cell a signal stopped.
#[derive(Debug, Error, Diagnostic)]
#[error("{place}: {}", .signal.describe())]
#[diagnostic(code(advx::interrupted))]
pub struct Stopped {
    #[source_code]
    pub src: NamedSource<String>,
    #[label("{label}")]
    pub at: SourceSpan,
    pub place: String,
    pub signal: Signal,
    label: &'static str,
    #[help]
    help: Option<String>,
}

impl Stopped {
    /// `failure` is what the statement ended with, when it stopped with
    /// an error other than [`Interrupted`](crate::interrupt::Interrupted) while the request was pending.
    pub fn new(
        src: NamedSource<String>,
        at: SourceSpan,
        place: String,
        signal: Signal,
        when: When,
        failure: Option<String>,
    ) -> Stopped {
        let label = match when {
            When::Before => "not run",
            When::After => "finished; its result is kept",
            When::During => "stopped here",
        };
        let mut help = "no later statement or cell runs; the outputs made before are kept".to_string();
        if let Some(failure) = failure {
            help = format!("the statement ended with: {failure}\n{help}");
        }
        Stopped { src, at, place, signal, label, help: Some(help) }
    }
}
