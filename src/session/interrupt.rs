//! Ctrl-C during a run: the running operation stops at its next check,
//! its statement fails with "interrupted", and everything shown before is
//! kept and written.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

/// Catches Ctrl-C for the rest of the process (batch runs only; Jupyter
/// interrupts its kernel itself).
pub fn catch_ctrl_c() {
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}

pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error once Ctrl-C was pressed; long operations call it between steps.
pub fn check() -> Result<()> {
    if requested() {
        bail!("interrupted (Ctrl-C)");
    }
    Ok(())
}

/// Forgets an earlier Ctrl-C.
pub fn reset() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Pretends Ctrl-C was pressed (tests).
pub fn request() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}
