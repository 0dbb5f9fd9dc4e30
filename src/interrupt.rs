//! Stopping a run. Ctrl-C (SIGINT) and SIGTERM set a process-wide flag;
//! long operations poll it between steps ([`check`]) and every ONNX
//! Runtime call in flight is told to stop ([`run_options`]), so any
//! operation stops within about a second. What an operation finished is
//! kept where it can be (an attack keeps the examples already done); the
//! session runs no later statement or cell, and `advx run` exits with
//! 128 + the signal's number, as a shell does.
//!
//! A second signal while the first is being handled ends the process at
//! once: the report then still says "running", which marks it incomplete.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, OnceLock};

use anyhow::Result;

/// Which signal asked the run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C in a terminal, or Jupyter's interrupt.
    Interrupt,
    /// SIGTERM: a scheduler or `kill` ending the job.
    Terminate,
}

impl Signal {
    /// The exit status a shell gives a process ended by this signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    /// How reports and messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Signal::Interrupt => "interrupted (Ctrl-C)",
            Signal::Terminate => "terminated (SIGTERM)",
        }
    }

    fn code(self) -> u8 {
        match self {
            Signal::Interrupt => 1,
            Signal::Terminate => 2,
        }
    }

    fn from_code(code: u8) -> Option<Signal> {
        match code {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            _ => None,
        }
    }
}

/// The error an operation stops with when a signal asked it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.describe())]
pub struct Interrupted(pub Signal);

/// Whether `error` (or anything in its chain) is an [`Interrupted`].
pub fn is_interrupted(error: &anyhow::Error) -> bool {
    signal_of(error).is_some()
}

/// The signal behind `error`, when an [`Interrupted`] is in its chain.
pub fn signal_of(error: &anyhow::Error) -> Option<Signal> {
    error.chain().find_map(|cause| cause.downcast_ref::<Interrupted>()).map(|interrupted| interrupted.0)
}

static REQUESTED: AtomicU8 = AtomicU8::new(0);
static HANDLER: Once = Once::new();
static RUN_OPTIONS: OnceLock<Option<ort::session::RunOptions>> = OnceLock::new();

/// Catches SIGINT and SIGTERM for the rest of the process (batch runs,
/// training, benchmarks). A thread waits for them, so nothing runs inside
/// a signal handler but the wake-up.
pub fn catch_signals() {
    HANDLER.call_once(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(signals) => signals,
            Err(e) => {
                tracing::warn!("cannot catch Ctrl-C and SIGTERM: {e}");
                return;
            }
        };
        let spawned = std::thread::Builder::new().name("advx-signals".into()).spawn(move || {
            for signal in signals.forever() {
                let signal = if signal == SIGTERM { Signal::Terminate } else { Signal::Interrupt };
                if let Some(first) = requested() {
                    eprintln!("\n{}; a second signal: stopping now", first.describe());
                    std::process::exit(signal.exit_code());
                }
                request(signal);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot catch Ctrl-C and SIGTERM: {e}");
        }
    });
}

/// The signal that asked the run to stop, if any.
pub fn requested() -> Option<Signal> {
    Signal::from_code(REQUESTED.load(Ordering::SeqCst))
}

/// Fails with [`Interrupted`] once a signal arrived; long operations call
/// it between steps.
pub fn check() -> Result<()> {
    match requested() {
        Some(signal) => Err(Interrupted(signal).into()),
        None => Ok(()),
    }
}

/// Asks the running operation to stop, as the signal would (the signal
/// thread, Jupyter's interrupt, tests). The first request wins.
pub fn request(signal: Signal) {
    let _ = REQUESTED.compare_exchange(0, signal.code(), Ordering::SeqCst, Ordering::SeqCst);
    if let Some(Some(options)) = RUN_OPTIONS.get()
        && let Err(e) = options.terminate()
    {
        tracing::warn!("cannot stop ONNX Runtime's running calls: {e}");
    }
}

/// Forgets an earlier request, so a session can run again (Jupyter keeps
/// its kernel after an interrupt).
pub fn reset() {
    REQUESTED.store(0, Ordering::SeqCst);
    if let Some(Some(options)) = RUN_OPTIONS.get() {
        let _ = options.unterminate();
    }
}

/// The run options every ONNX Runtime call goes through: a request
/// terminates them, which stops calls in flight between two nodes. `None`
/// when ONNX Runtime cannot make them (the calls then run to their end).
/// Only call this once ONNX Runtime is loaded (`Runtime::get`).
pub fn run_options() -> Option<&'static ort::session::RunOptions> {
    let options = RUN_OPTIONS.get_or_init(|| match ort::session::RunOptions::new() {
        Ok(options) => Some(options),
        Err(e) => {
            tracing::warn!("ONNX Runtime calls cannot be stopped midway: {e}");
            None
        }
    });
    // A request that came before the options existed terminated nothing.
    if let (Some(options), Some(_)) = (options, requested()) {
        let _ = options.terminate();
    }
    options.as_ref()
}
