//! Where datasets are looked for: the data path.
//!
//! The path is `ADVX_DATA` (a list of folders, colon-separated on Unix),
//! then `./data`, then the user cache (`~/.cache/advx` on Linux, where
//! `advx data fetch` puts downloads). Each root is searched for
//! `<root>/<name>/`; a root whose own name is the dataset's name also
//! counts, so `ADVX_DATA=/somewhere/mnist` works. Datasets packaged by a
//! distribution are looked for last, at their packaged location.
//!
//! The functions here take the list of roots as a parameter so that tests
//! can use their own without changing the process environment.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{Format, Split, known_dataset};

/// The environment variable holding extra data roots, searched first.
pub const ENV_VAR: &str = "ADVX_DATA";

/// Folders where a distribution package installs a dataset (Debian's
/// `dataset-fashion-mnist`), searched after the data path.
fn packaged_dirs(name: &str) -> &'static [&'static str] {
    match name {
        "fashion-mnist" => &["/usr/share/datasets/fashion-mnist"],
        _ => &[],
    }
}

/// The roots of the data path, in search order: `ADVX_DATA`, `./data`, the
/// user cache. Empty entries of `ADVX_DATA` are skipped.
pub fn data_path() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os(ENV_VAR)
        .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    roots.push(PathBuf::from("data"));
    roots.extend(cache_root());
    roots
}

/// `<user cache>/advx`, the root `advx data fetch` downloads into, when the
/// platform has a cache directory.
pub fn cache_root() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("advx"))
}

/// Every folder that may hold dataset `name` given these roots, in search
/// order, without duplicates.
/// A distribution that unpacks to a folder of its own (CIFAR's
/// `cifar-10-batches-bin`) is also looked for as that folder, in the
/// root and in `<root>/<name>/` (where `advx data fetch` unpacks it).
pub fn candidates(name: &str, roots: &[PathBuf]) -> Vec<PathBuf> {
    let folder = known_dataset(name).ok().and_then(|k| k.folder);
    let mut dirs = Vec::new();
    for root in roots {
        if let Some(folder) = folder {
            dirs.extend([root.join(name).join(folder), root.join(folder)]);
        }
        dirs.push(root.join(name));
        if root.file_name() == Some(OsStr::new(name)) {
            dirs.push(root.clone());
        }
    }
    dirs.extend(packaged_dirs(name).iter().map(PathBuf::from));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// The standard IDX file base names (without `.gz`) of a split: images, labels.
pub fn file_stems(split: Split) -> [String; 2] {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    [format!("{prefix}-images-idx3-ubyte"), format!("{prefix}-labels-idx1-ubyte")]
}

/// The file in `dir` holding `stem`: `stem.gz` if present, else `stem`.
pub fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// The files of `dir` holding the split's images and labels, if both are there.
pub fn split_files(dir: &Path, split: Split) -> Option<(PathBuf, PathBuf)> {
    let [images, labels] = file_stems(split);
    Some((find_file(dir, &images)?, find_file(dir, &labels)?))
}

/// Whether `dir` holds all four files of a dataset.
/// Whether `dir` holds every file of a dataset of this format.
pub fn is_complete(format: Format, dir: &Path) -> bool {
    match format {
        Format::Idx => Split::ALL.iter().all(|&s| split_files(dir, s).is_some()),
        cifar => Split::ALL.iter().flat_map(|&s| super::cifar::split_files(dir, cifar, s)).all(|f| f.is_file()),
    }
}

/// Whether `dir` holds some but not all of the files, worth a mention when
/// the dataset is not found.
fn is_partial(format: Format, dir: &Path) -> bool {
    let some = match format {
        Format::Idx => Split::ALL.iter().flat_map(|&s| file_stems(s)).any(|s| find_file(dir, &s).is_some()),
        cifar => Split::ALL.iter().flat_map(|&s| super::cifar::split_files(dir, cifar, s)).any(|f| f.is_file()),
    };
    some && !is_complete(format, dir)
}

/// The first folder among the candidates for `name` under `roots` that holds
/// all its files. The error lists every folder looked in.
pub fn locate_in(name: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let format = known_dataset(name)?.format;
    let dirs = candidates(name, roots);
    if let Some(dir) = dirs.iter().find(|d| is_complete(format, d)) {
        return Ok(dir.clone());
    }
    let looked: Vec<String> = dirs
        .iter()
        .map(|d| {
            let note = if is_partial(format, d) { " (some files missing)" } else { "" };
            format!("  {}{note}", d.display())
        })
        .collect();
    bail!(
        "dataset {name} not found; looked in:\n{}\nrun `advx data fetch {name}` to download it, \
         or point {ENV_VAR} at a folder holding {name}/",
        looked.join("\n")
    )
}
