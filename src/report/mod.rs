//! What a batch run (`advx run SCRIPT.advx --out DIR`) leaves behind: the
//! figures, `results.yaml` (the numbers, for a paper's reader to check),
//! `report.html` (one page to read offline) and, on request, a Jupyter
//! notebook.
//!
//! `advx run` calls [`write`] after every cell, so a run that fails or is
//! interrupted still leaves a consistent report of what it did. Every file
//! is replaced atomically (written beside, then renamed), so neither a
//! reader nor a Ctrl-C ever sees half a file, and a file whose content did
//! not change is not rewritten.
//!
//! - `figures.rs`: which file each figure is saved under, and saving them.
//! - `results.rs`: `results.yaml`.
//! - `html.rs`: `report.html`.
//! - `ipynb.rs`: the notebook.

mod figures;
mod html;
mod ipynb;
mod results;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::session::output::Output;
use figures::Figures;

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
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
}

/// A model the run loaded, with the hash that pins down which one it was.
#[derive(Debug, Clone)]
pub struct ModelRecord {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
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

/// The files one [`write`] left in the output directory.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
}

/// Writes into `dir` (created if missing): every figure output as
/// `<figure>.png` and `<figure>.svg`, `results.yaml`, `report.html`, and
/// with `ipynb` also `<script stem>.ipynb`. Called after every cell, so it
/// overwrites cleanly and leaves unchanged files alone; it never deletes
/// anything, so a run that fails or is interrupted keeps what it made.
pub fn write(run: &Run, dir: &Path, ipynb: bool) -> anyhow::Result<Written> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let figures = Figures::plan(run);
    let mut files = figures.write(run, dir)?;
    files.push(write_file(dir, "results.yaml", results::render(run, &figures)?.as_bytes())?);
    files.push(write_file(dir, "report.html", html::render(run, &figures).as_bytes())?);
    if ipynb {
        let name = format!("{}.ipynb", script_stem(&run.script));
        files.push(write_file(dir, &name, ipynb::render(run)?.as_bytes())?);
    }
    Ok(Written { files })
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
