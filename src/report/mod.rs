//! What a batch run (`advx run SCRIPT.advx --out DIR`) leaves behind: the
//! figures, `results.yaml` (the numbers, for a paper's reader to check),
//! `report.html` (one page to read offline) and, on request, a Jupyter
//! notebook.
//!
//! `advx run` calls [`write`] before the first cell (status `running`),
//! after every cell, and once more at the end with how the run ended, so a
//! run that fails, is interrupted or is killed still leaves a consistent
//! report of what it did, and one that never says `complete` unless it
//! was. Every file is replaced atomically (written beside, then renamed),
//! so neither a reader nor a Ctrl-C ever sees half a file, and a file whose
//! content did not change is not rewritten.
//!
//! - `folder.rs`: the output folder a run owns (its lock, the names it writes).
//! - `figures.rs`: which file each figure is saved under, and saving them.
//! - `results.rs`: `results.yaml`.
//! - `html.rs`: `report.html`.
//! - `ipynb.rs`: the notebook.

mod figures;
mod folder;
mod html;
mod ipynb;
mod results;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::interrupt::Signal;
use crate::session::output::Output;
use figures::Figures;
pub use folder::{ClaimError, LOCK_FILE, OutputFolder, written_by_run};

/// Everything a batch run did, as far as its report needs to know.
#[derive(Debug, Clone)]
pub struct Run {
    /// The `.advx` file.
    pub script: PathBuf,
    pub started: SystemTime,
    pub advx_version: String,
    pub ort_version: String,
    /// The execution provider, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// Effective parameter values, in script order.
    pub params: Vec<(String, serde_json::Value)>,
    pub models: Vec<ModelRecord>,
    /// The cells that ran (or failed), in order.
    pub cells: Vec<CellRecord>,
    pub status: Status,
    /// The notebook the script came from (`advx run X.ipynb`): the
    /// notebook written is this one with its outputs filled in.
    pub notebook: Option<serde_json::Value>,
    /// What part of a sharded run this is (`shard 1/4: ...`) or that it
    /// merges one; none for a whole run.
    pub sharding: Option<String>,
}

/// How far a run got. A report is written `running` before the first cell
/// and after each, and only the end of the run replaces that, so a run
/// killed outright (SIGKILL, a power cut) leaves a report that says it is
/// incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Started and not (yet) finished: incomplete.
    Running,
    /// Every cell ran.
    Complete,
    /// A cell failed; no later cell ran.
    Failed,
    /// Ctrl-C (SIGINT) stopped it; no later cell ran.
    Interrupted,
    /// SIGTERM stopped it; no later cell ran.
    Terminated,
}

impl Status {
    /// The status a signal leaves the run in.
    pub fn stopped_by(signal: Signal) -> Status {
        match signal {
            Signal::Interrupt => Status::Interrupted,
            Signal::Terminate => Status::Terminated,
        }
    }

    /// How `results.yaml` and the notebook's metadata write it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Terminated => "terminated",
        }
    }

    /// A sentence for the end of a report that did not run to its end
    /// (none for complete and failed runs: a failed cell shows its error).
    pub(crate) fn banner(self) -> Option<&'static str> {
        match self {
            Status::Running => Some(
                "The run had not finished when this report was written: it is still running, or it was killed, \
                 and the report is incomplete.",
            ),
            Status::Interrupted => Some("The run was interrupted (Ctrl-C) here; no later cell ran."),
            Status::Terminated => Some("The run was terminated (SIGTERM) here; no later cell ran."),
            Status::Complete | Status::Failed => None,
        }
    }
}

/// A model the run loaded, with the hash that pins down which one it was.
#[derive(Debug, Clone)]
pub struct ModelRecord {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    /// What the model does to pixels first, as declared.
    pub preprocess: crate::runtime::Preprocess,
    /// How advx fed the model its pixels, when not as they are.
    pub adaptation: Option<String>,
}

/// One cell of the script and what running it produced.
#[derive(Debug, Clone)]
pub struct CellRecord {
    /// 1-based.
    pub index: usize,
    /// From the `# %% title` line.
    pub title: Option<String>,
    /// The cell's code.
    pub source: String,
    pub outputs: Vec<Output>,
    /// The rendered error (plain text, maybe several lines) when the cell failed.
    pub error: Option<String>,
    pub seconds: f64,
}

/// The files one [`write`] left in the output directory, and the figure
/// files it could not write.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// One message per figure file that failed (which file, and why).
    /// The reports record them on their outputs, and everything else.
    pub failed: Vec<String>,
}

/// Writes into `dir` (created if missing): every figure output as
/// `<figure>.png` and `<figure>.svg`, `results.yaml`, `report.html`, and
/// with `ipynb` also `<script stem>.ipynb`. Called after every cell, so it
/// overwrites cleanly and leaves unchanged files alone; it never deletes
/// anything, so a run that fails or is interrupted keeps what it made. A
/// figure that cannot be written is recorded as such on its output (and in
/// [`Written::failed`]); the rest is still written. Failing to write the
/// reports themselves is an error.
pub fn write(run: &Run, dir: &Path, ipynb: bool) -> anyhow::Result<Written> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let mut figures = Figures::plan(run);
    let (mut files, failed) = figures.write(run, dir);
    files.push(write_file(dir, "results.yaml", results::render(run, &figures)?.as_bytes())?);
    files.push(write_file(dir, "report.html", html::render(run, &figures).as_bytes())?);
    if ipynb {
        let name = format!("{}.ipynb", script_stem(&run.script));
        files.push(write_file(dir, &name, ipynb::render(run)?.as_bytes())?);
    }
    Ok(Written { files, failed })
}

/// Replaces `dir/name` with `bytes` atomically (see [`crate::artefact`]),
/// so an interrupted run never leaves a truncated report. Identical content
/// is left untouched, which keeps re-writing after every cell cheap for
/// figures made long ago.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !unchanged(&path, bytes) {
        crate::artefact::write_atomic(&path, bytes)?;
    }
    Ok(path)
}

/// Whether `path` already holds exactly `bytes` (the size is checked first,
/// so a changed file is usually told apart without reading it).
fn unchanged(path: &Path, bytes: &[u8]) -> bool {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => fs::read(path).is_ok_and(|old| old == bytes),
        _ => false,
    }
}

/// A file stem that stays inside the output directory whatever it was
/// given: ASCII letters, digits, `-`, `_` and inner dots only (no path
/// separators, no `..`, no hidden files), at most 100 characters, and
/// `fallback` when nothing is left.
pub(crate) fn safe_stem(raw: &str, fallback: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(100)
        .collect();
    let trimmed = mapped.trim_matches('.');
    if trimmed.is_empty() { fallback.to_string() } else { trimmed.to_string() }
}

/// The notebook's file stem: the script's, made safe.
fn script_stem(script: &Path) -> String {
    let stem = script.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
    safe_stem(&stem, "notebook")
}

/// The script's file name, for titles.
pub(crate) fn script_name(script: &Path) -> String {
    match script.file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None => script.display().to_string(),
    }
}

/// RFC 3339 in UTC to the second. humantime panics on times before 1970 or
/// after 9999, which a report must not do over a strange clock, so those
/// fall back to the debug form.
pub(crate) fn timestamp(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() < 253_402_300_800 => humantime::format_rfc3339_seconds(time).to_string(),
        _ => format!("{time:?}"),
    }
}

/// A recorded value as a person reads it: JSON, but a non-finite number
/// (recorded as `{"$float": ...}`) as `NaN`, `inf` or `-inf`, as the
/// text tables show it.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    if let Some(x) = crate::session::value::recorded_float(value) {
        return crate::session::value::format_number(x);
    }
    match value {
        serde_json::Value::Array(items) => format!("[{}]", items.iter().map(json_text).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// Seconds rounded to milliseconds: finer digits are noise in a report.
pub(crate) fn round_seconds(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_stay_in_the_directory() {
        assert_eq!(safe_stem("../evil", "f"), "_evil");
        assert_eq!(safe_stem("..", "f"), "f");
        assert_eq!(safe_stem("a/b\\c", "f"), "a_b_c");
        assert_eq!(safe_stem(".hidden", "f"), "hidden");
        assert_eq!(safe_stem("cell2-grid", "f"), "cell2-grid");
        assert_eq!(safe_stem("", "f"), "f");
        assert_eq!(safe_stem(&"x".repeat(300), "f").len(), 100);
    }

    #[test]
    fn timestamps_never_panic() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let before = UNIX_EPOCH - std::time::Duration::from_secs(10);
        assert!(!timestamp(before).is_empty());
    }
}
