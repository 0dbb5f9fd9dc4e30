//! One run owns its output folder. `advx run` claims `--out` before the
//! first cell: it creates the folder, checks that files can be written
//! there (an unusable folder fails at once, not after an hour of work) and
//! takes an OS advisory lock on [`LOCK_FILE`] for the whole run, so a
//! second run on the same folder is refused instead of interleaving its
//! reports with the first one's. The lock dies with the process: the file
//! a killed run leaves behind blocks nothing. It stays in the folder,
//! since removing it would let a third run lock a file no longer there.
//!
//! The names the run writes there are its own ([`written_by_run`]): `save`
//! refuses them, since the run's report would overwrite them (or they it).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The lock file, in the output folder; it names the run holding it.
pub const LOCK_FILE: &str = ".advx-run.lock";

/// A claimed output folder; dropping it releases the lock.
#[derive(Debug)]
pub struct OutputFolder {
    path: PathBuf,
    _lock: File,
}

/// Why a folder cannot be a run's output folder.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("cannot write to the output folder {}: {reason}", .dir.display())]
    Unwritable { dir: PathBuf, reason: String },
    #[error(
        "the output folder {} is in use by another advx run{}; wait for it to end or choose another --out",
        .dir.display(), .holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Busy { dir: PathBuf, holder: Option<String> },
}

impl ClaimError {
    /// 2 for a folder that cannot be used (a wrong `--out`), 1 for one
    /// that is busy (the same command works once the other run ends).
    pub fn exit_code(&self) -> i32 {
        match self {
            ClaimError::Unwritable { .. } => 2,
            ClaimError::Busy { .. } => 1,
        }
    }
}

impl OutputFolder {
    /// Creates `dir` if needed, checks that files can be created in it and
    /// takes its lock, recording this process and `script` in the lock file.
    pub fn claim(dir: &Path, script: &Path) -> Result<OutputFolder, ClaimError> {
        let unwritable = |reason: String| ClaimError::Unwritable { dir: dir.to_path_buf(), reason };
        std::fs::create_dir_all(dir).map_err(|e| unwritable(e.to_string()))?;
        if !dir.is_dir() {
            return Err(unwritable("it is not a folder".into()));
        }
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| unwritable(format!("cannot create {LOCK_FILE}: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ClaimError::Busy { dir: dir.to_path_buf(), holder: holder(&mut lock) });
            }
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                tracing::warn!("{} cannot be locked ({e}): nothing stops a second run from using it", dir.display());
            }
            Err(TryLockError::Error(e)) => return Err(unwritable(format!("cannot lock {LOCK_FILE}: {e}"))),
        }
        // The reports are written through temporary files beside them: check
        // that new files can be made (the lock file may be an old one).
        tempfile::Builder::new()
            .prefix(".advx-probe.")
            .tempfile_in(dir)
            .map_err(|e| unwritable(format!("cannot create a file there: {e}")))?;
        record_holder(&mut lock, script).map_err(|e| unwritable(format!("cannot write {LOCK_FILE}: {e}")))?;
        Ok(OutputFolder { path: dir.to_path_buf(), _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `pid 1234, s.advx, started 2026-05-01T10:00:00Z`, for the message a
/// refused run prints.
fn record_holder(lock: &mut File, script: &Path) -> std::io::Result<()> {
    let text =
        format!("pid {}, {}, started {}\n", std::process::id(), script.display(), super::timestamp(SystemTime::now()));
    lock.set_len(0)?;
    lock.rewind()?;
    lock.write_all(text.as_bytes())?;
    lock.sync_data()
}

/// What the lock file says of the run holding it, if it says anything yet.
fn holder(lock: &mut File) -> Option<String> {
    let mut text = String::new();
    lock.read_to_string(&mut text).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// What `name` is when `advx run` writes a file of that name into its
/// output folder (compared ignoring case, for case-insensitive file
/// systems): `results.yaml`, `report.html`, the notebook (`*.ipynb`), the
/// lock file and the figure files (`cellN-*.png`, `cellN-*.svg`).
pub fn written_by_run(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "results.yaml" => return Some("the run's results"),
        "report.html" => return Some("the run's report"),
        _ if lower == LOCK_FILE => return Some("the run's lock file"),
        _ => {}
    }
    if lower.ends_with(".ipynb") {
        return Some("the run's notebook");
    }
    let figure = lower.strip_suffix(".png").or_else(|| lower.strip_suffix(".svg"))?;
    let (cell, _) = figure.strip_prefix("cell")?.split_once('-')?;
    (!cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit())).then_some("a figure file of the run")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_own_names_are_recognised() {
        for name in ["results.yaml", "Report.HTML", "s.ipynb", LOCK_FILE, "cell2-grid.png", "cell12-lines-2.svg"] {
            assert!(written_by_run(name).is_some(), "{name}");
        }
        for name in ["results.json", "e.yaml", "cell-grid.png", "cellx-grid.png", "grid.png", "cell2.png"] {
            assert!(written_by_run(name).is_none(), "{name}");
        }
    }

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutputFolder::claim(dir.path(), Path::new("a.advx")).unwrap();
        let refused = OutputFolder::claim(dir.path(), Path::new("b.advx")).unwrap_err();
        let message = refused.to_string();
        assert!(matches!(refused, ClaimError::Busy { .. }), "{message}");
        assert!(message.contains(&format!("pid {}", std::process::id())) && message.contains("a.advx"), "{message}");
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
        drop(first);
        OutputFolder::claim(dir.path(), Path::new("b.advx")).expect("free once the first run ends");
    }

    #[test]
    fn a_folder_under_a_file_is_unwritable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let error = OutputFolder::claim(&dir.path().join("file/out"), Path::new("a.advx")).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("file/out"), "{error}");
    }
}
