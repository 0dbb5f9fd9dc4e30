//! Every file advx writes. A file is written to a temporary file in its
//! own folder and renamed over the target, so a kill, a full disk or a
//! second process never leaves a truncated file where a good one is
//! expected: readers see the old file or the new one, never half of one.

pub mod backward;
pub mod provenance;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically, creating its folder if needed. The
/// temporary file has a name no other writer uses (two processes writing
/// the same target never share one), is flushed to disk before the rename,
/// and is removed when anything fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes).map_err(Into::into))
}

/// [`write_atomic`] for content streamed by `fill` into the temporary file.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let mut staged = Staged::new(path)?;
    fill(staged.file()).with_context(|| format!("cannot write {}", path.display()))?;
    staged.commit()
}

/// Writes a whole folder atomically: `fill` writes its files into a
/// uniquely named temporary folder beside `target`, which then takes the
/// place of any folder already there. A failure leaves the old folder; a
/// reader never sees half of the new one. `fill` syncs what it writes
/// ([`write_synced`]).
pub fn write_folder_atomic(target: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = folder(target);
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create the folder {}", parent.display()))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staged =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempdir_in(parent).with_context(|| {
            format!("cannot write {}: no temporary folder in {}", target.display(), parent.display())
        })?;
    fill(staged.path()).with_context(|| format!("cannot write {}", target.display()))?;
    let old = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".old").tempdir_in(parent)?;
    let replaced = target.exists();
    if replaced {
        std::fs::rename(target, old.path().join("folder"))
            .with_context(|| format!("cannot replace {}", target.display()))?;
    }
    let kept = staged.keep();
    if let Err(e) = std::fs::rename(&kept, target) {
        if replaced {
            let _ = std::fs::rename(old.path().join("folder"), target);
        }
        let _ = std::fs::remove_dir_all(&kept);
        return Err(e).with_context(|| format!("cannot write {}", target.display()));
    }
    Ok(())
}

/// Writes a file inside a folder being staged by [`write_folder_atomic`],
/// flushed to disk before the folder is renamed into place.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// A file being written: a uniquely named temporary file in its target's
/// folder that only [`commit`](Staged::commit) puts in place. Dropped
/// uncommitted, it is removed. For content that must be checked before it
/// may stand under its name (a download verified against its checksum).
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl Staged {
    /// A temporary file beside `target`, whose folder is created if needed.
    pub fn new(target: &Path) -> Result<Staged> {
        let dir = folder(target);
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // rw for everyone the umask allows, as `std::fs::write` creates files
        // (tempfile's default, 0600, would hide reports from collaborators).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder
            .tempfile_in(dir)
            .with_context(|| format!("cannot write {}: no temporary file in {}", target.display(), dir.display()))?;
        Ok(Staged { tmp, target: target.to_path_buf() })
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Where the content is while it is staged, to read it back.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Flushes the content to disk and renames it over the target.
    pub fn commit(self) -> Result<()> {
        let target = self.target.clone();
        self.commit_as(&target)
    }

    /// [`commit`](Staged::commit) under another name in the same folder
    /// (a download named after what it turned out to be).
    pub fn commit_as(self, dest: &Path) -> Result<()> {
        let fail = || format!("cannot write {}", dest.display());
        self.tmp.as_file().sync_all().with_context(fail)?;
        self.tmp.persist(dest).map_err(|e| e.error).with_context(fail)?;
        Ok(())
    }
}

/// The folder a file is in, `.` for a bare name.
fn folder(path: &Path) -> &Path {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_whole_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.txt");
        write_atomic(&path, b"first, longer content").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"good").unwrap();
        let failed = write_atomic_with(&path, |f| {
            f.write_all(b"half")?;
            anyhow::bail!("disk full")
        });
        assert!(failed.unwrap_err().to_string().contains("a.txt"));
        assert_eq!(std::fs::read(&path).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file is removed");
    }

    #[test]
    fn a_staged_file_is_only_in_place_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut dropped = Staged::new(&dir.path().join("x.gz")).unwrap();
        dropped.file().write_all(b"partial").unwrap();
        let temporary = dropped.path().to_path_buf();
        assert!(temporary.is_file());
        drop(dropped);
        assert!(!temporary.exists(), "an uncommitted file is removed");
        let mut staged = Staged::new(&dir.path().join("y.gz")).unwrap();
        staged.file().write_all(b"whole").unwrap();
        assert_eq!(std::fs::read(staged.path()).unwrap(), b"whole", "readable before it is committed");
        staged.commit_as(&dir.path().join("y")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("y")]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_readable_by_others_as_the_umask_allows() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_ne!(mode & 0o044, 0, "mode {mode:o}");
    }
}
