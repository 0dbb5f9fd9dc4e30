//! `advx data`: list and fetch datasets.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::data::{self, Split, fetch, idx, path};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the known datasets, the folder each was found in, and its split sizes.
    ///
    /// Datasets are looked for on the data path: each folder of ADVX_DATA
    /// (colon-separated), then ./data, then the user cache (where `fetch`
    /// downloads to). In each, a dataset NAME is the folder NAME/ holding
    /// its files: MNIST's four IDX files (gzip-compressed or not), or
    /// CIFAR's binary distribution (cifar-10-batches-bin/ or
    /// cifar-100-binary/, directly or inside NAME/).
    List,
    /// Download a dataset (mnist, fashion-mnist, cifar10 or cifar100) from public mirrors.
    ///
    /// MNIST's files are each verified against the SHA-256 of its
    /// decompressed payload built into advx, and moved into place only
    /// once verified; files already present with the right checksum are
    /// not downloaded again. CIFAR's archive is verified against the MD5
    /// its authors publish, and its folder unpacked into place whole; a
    /// complete folder is not downloaded again.
    Fetch {
        /// The dataset: mnist, fashion-mnist, cifar10 or cifar100.
        name: String,
        /// A base URL to download from instead of the built-in mirrors;
        /// repeat to give several, tried in order.
        #[arg(long, value_name = "URL")]
        mirror: Vec<String>,
        /// The folder to put the files in [default: the user cache,
        /// e.g. ~/.cache/advx/NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::List => list(),
        Command::Fetch { name, mirror, dir } => fetch_cmd(&name, &mirror, dir.as_deref()),
    }
}

/// Prints each known dataset with its folder (or "not found") and the
/// sizes of its splits, read from the IDX headers only.
fn list() -> Result<()> {
    let roots = data::data_path();
    let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    println!("data path: {}", shown.join(", "));
    for name in data::known() {
        let format = data::known_dataset(name)?.format;
        match data::locate_in(name, &roots) {
            Ok(dir) => println!("{name:<14} {}  {}", dir.display(), split_sizes(&dir, format)),
            Err(_) => println!("{name:<14} not found (run `advx data fetch {name}`)"),
        }
    }
    Ok(())
}

/// "train 60000, test 10000", or what is wrong with a split's headers.
fn split_sizes(dir: &Path, format: data::Format) -> String {
    let sizes: Vec<String> = Split::ALL
        .iter()
        .map(|&split| match split_size(dir, split, format) {
            Ok(n) => format!("{split} {n}"),
            Err(e) => format!("{split}: {e:#}"),
        })
        .collect();
    sizes.join(", ")
}

/// The number of examples of a split, checking that the images and labels
/// headers agree.
fn split_size(dir: &Path, split: Split, format: data::Format) -> Result<usize> {
    if format != data::Format::Idx {
        return data::cifar::count(dir, format, split);
    }
    let (images, labels) = path::split_files(dir, split).ok_or_else(|| anyhow::anyhow!("files missing"))?;
    let (n_images, n_labels) = (idx::read_count(&images)?, idx::read_count(&labels)?);
    anyhow::ensure!(n_images == n_labels, "{n_images} images but {n_labels} labels");
    Ok(n_images)
}

/// Fetches a dataset, reports each file, and says whether the data path
/// will find the result.
fn fetch_cmd(name: &str, mirrors: &[String], dir: Option<&Path>) -> Result<()> {
    let report = fetch::fetch(name, mirrors, dir)?;
    for file in &report.files {
        match &file.outcome {
            fetch::Outcome::AlreadyPresent => {
                println!("{}: already present, checksum ok", file.path.display())
            }
            fetch::Outcome::Downloaded { url } => {
                println!("{}: downloaded from {url}, checksum ok", file.path.display())
            }
        }
    }
    println!("{name} is in {}", report.dir.display());
    hint_if_not_found(name, &report.dir);
    Ok(())
}

/// Warns when `load` would not find the fetched folder, or would find
/// another copy of the dataset first.
fn hint_if_not_found(name: &str, dir: &Path) {
    let same = |found: &Path| match (found.canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    match data::locate(name) {
        Ok(found) if same(&found) => {}
        Ok(found) => {
            eprintln!("note: the data path finds {name} in {} first, not in {}", found.display(), dir.display())
        }
        Err(_) => {
            let how = match dir.parent() {
                Some(parent) if dir.file_name() == Some(std::ffi::OsStr::new(name)) => {
                    format!("add {} to {}", parent.display(), path::ENV_VAR)
                }
                _ => format!("put the files in a folder named {name} under a folder of {}", path::ENV_VAR),
            };
            eprintln!("note: {} is not on the data path; {how}", dir.display());
        }
    }
}
