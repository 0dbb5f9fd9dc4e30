//! Downloading datasets from public mirrors, verified by checksum.
//!
//! Each file is checked against the SHA-256 of its *decompressed* payload,
//! not of the `.gz` bytes: mirrors have recompressed the same data, and
//! HTTP servers may decompress on the way, so only the payload is stable.
//! A download goes to a hidden temporary file in the target folder
//! ([`crate::artefact::Staged`]) and is synced and renamed into place only
//! once verified, so an interrupted or corrupt download never looks like a
//! dataset.
//!
//! CIFAR comes as one `.tar.gz` archive, checked against the MD5 its
//! authors publish, then unpacked (regular files under the archive's one
//! folder only) into a temporary folder renamed into place whole.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{Format, check_known, idx, known_dataset, path};
use crate::artefact::Staged;

/// A file of a dataset and the SHA-256 (hex) of its decompressed payload.
pub type Checksum<'a> = (&'a str, &'a str);

/// MNIST (LeCun, Cortes, Burges).
const MNIST_FILES: &[Checksum<'static>] = &[
    ("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
];

/// Fashion-MNIST (Xiao, Rasul, Vollgraf), checksums taken from Debian's
/// `dataset-fashion-mnist` package (0.0~git20200523.55506a9-1).
const FASHION_MNIST_FILES: &[Checksum<'static>] = &[
    ("train-images-idx3-ubyte.gz", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    ("train-labels-idx1-ubyte.gz", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    ("t10k-images-idx3-ubyte.gz", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    ("t10k-labels-idx1-ubyte.gz", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
];

const MNIST_MIRRORS: &[&str] =
    &["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"];

const FASHION_MNIST_MIRRORS: &[&str] = &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// A dataset distributed as one `.tar.gz` archive, with the MD5 its
/// authors publish (<https://www.cs.toronto.edu/~kriz/cifar.html>; the
/// same as torchvision's).
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    pub file: &'a str,
    pub md5: &'a str,
}

const CIFAR10_ARCHIVE: Archive<'static> =
    Archive { file: "cifar-10-binary.tar.gz", md5: "c32a1d4ab5d03f1284b67883e8d87530" };
const CIFAR100_ARCHIVE: Archive<'static> =
    Archive { file: "cifar-100-binary.tar.gz", md5: "03b5dce01913d631647c71ecec9e9cb8" };
const CIFAR_MIRRORS: &[&str] = &["https://www.cs.toronto.edu/~kriz/"];

/// The archive dataset `name` comes in, when it comes in one.
pub fn archive(name: &str) -> Result<Option<Archive<'static>>> {
    Ok(match known_dataset(name)?.format {
        Format::Idx => None,
        Format::Cifar10 => Some(CIFAR10_ARCHIVE),
        Format::Cifar100 => Some(CIFAR100_ARCHIVE),
    })
}

/// How long to wait for a connection, and for each read, before giving up
/// on a mirror and trying the next.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A verified copy was already there; nothing was downloaded.
    AlreadyPresent,
    /// Downloaded from this URL and verified.
    Downloaded { url: String },
}

/// One file of a fetch: its name in the checksum table, where it now lies,
/// and whether it was downloaded.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    pub file: String,
    pub path: PathBuf,
    pub outcome: Outcome,
}

/// The result of a fetch: the folder holding the dataset, and each file.
#[derive(Debug, Clone)]
pub struct FetchReport {
    pub dir: PathBuf,
    pub files: Vec<FetchedFile>,
}

/// The files of dataset `name` and their payload checksums.
pub fn checksums(name: &str) -> Result<&'static [Checksum<'static>]> {
    ensure!(archive(name)?.is_none(), "{name} comes as one archive, not files with payload checksums");
    Ok(match name {
        "fashion-mnist" => FASHION_MNIST_FILES,
        _ => MNIST_FILES,
    })
}

/// The public mirrors of dataset `name`, in the order they are tried.
pub fn default_mirrors(name: &str) -> Result<&'static [&'static str]> {
    check_known(name)?;
    Ok(match name {
        "fashion-mnist" => FASHION_MNIST_MIRRORS,
        "cifar10" | "cifar100" => CIFAR_MIRRORS,
        _ => MNIST_MIRRORS,
    })
}

/// Where `advx data fetch` puts dataset `name` by default: the user cache,
/// which is on the data path.
pub fn default_dir(name: &str) -> Result<PathBuf> {
    let root = path::cache_root().context("this platform has no user cache directory; use --dir")?;
    Ok(root.join(name))
}

/// Downloads dataset `name` into `dir` (default: the user cache) from
/// `mirrors` (default: the known public mirrors), verified against the
/// built-in checksum table.
pub fn fetch(name: &str, mirrors: &[String], dir: Option<&Path>) -> Result<FetchReport> {
    let mirrors: Vec<String> = if mirrors.is_empty() {
        default_mirrors(name)?.iter().map(|m| m.to_string()).collect()
    } else {
        mirrors.to_vec()
    };
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => default_dir(name)?,
    };
    match archive(name)? {
        Some(archive) => fetch_archive_from(name, archive, &mirrors, &dir),
        None => fetch_from(name, checksums(name)?, &mirrors, &dir),
    }
}

/// Downloads dataset `name`'s `archive` into `dir` from the first mirror
/// that has it with the right MD5, and unpacks its folder there (e.g.
/// `dir/cifar-10-batches-bin/`). A folder already holding every file is
/// kept. Takes the archive and mirrors as parameters so that tests can
/// serve their own.
pub fn fetch_archive_from(name: &str, archive: Archive<'_>, mirrors: &[String], dir: &Path) -> Result<FetchReport> {
    ensure!(!mirrors.is_empty(), "no mirrors to fetch {name} from");
    let known = known_dataset(name)?;
    let folder = known.folder.with_context(|| format!("{name} has no archive folder"))?;
    let target = dir.join(folder);
    if path::is_complete(known.format, &target) {
        let file = FetchedFile { file: archive.file.into(), path: target.clone(), outcome: Outcome::AlreadyPresent };
        return Ok(FetchReport { dir: target, files: vec![file] });
    }
    let agent = agent();
    let mut failures = Vec::new();
    for mirror in mirrors {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), archive.file);
        match download_archive(&agent, &url, archive, folder, &target) {
            Ok(()) => {
                ensure!(path::is_complete(known.format, &target), "{} from {url} lacks files of {name}", archive.file);
                let file = FetchedFile {
                    file: archive.file.into(),
                    path: target.clone(),
                    outcome: Outcome::Downloaded { url },
                };
                return Ok(FetchReport { dir: target, files: vec![file] });
            }
            Err(e) => failures.push(format!("  {e:#}")),
        }
    }
    bail!("could not fetch {} from any mirror:\n{}", archive.file, failures.join("\n"))
}

/// Downloads `url` to a temporary file, checks its MD5, and unpacks the
/// archive's `folder` to `target` atomically; the archive is then removed.
fn download_archive(agent: &ureq::Agent, url: &str, archive: Archive<'_>, folder: &str, target: &Path) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut part = Staged::new(&dir.join(archive.file))?;
    download(agent, url, archive.file, part.file())?;
    let mut hasher = md5::Md5::new();
    io::copy(&mut File::open(part.path())?, &mut hasher)?;
    let actual = hex::encode(hasher.finalize());
    ensure!(
        actual.eq_ignore_ascii_case(archive.md5),
        "MD5 mismatch for {} from {url}: {actual}, expected {}",
        archive.file,
        archive.md5
    );
    crate::artefact::write_folder_atomic(target, |staged| unpack(part.path(), folder, staged))
        .with_context(|| format!("unpacking {} from {url}", archive.file))
}

/// The regular files under `folder/` in a `.tar.gz`, written into `into`;
/// any other path (absolute, `..`, outside the folder) is skipped.
fn unpack(archive: &Path, folder: &str, into: &Path) -> Result<()> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(archive)?));
    for entry in tar.entries()? {
        crate::interrupt::check()?;
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Ok(inner) = path.strip_prefix(folder) else { continue };
        let plain = inner.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !entry.header().entry_type().is_file() || !plain || inner.as_os_str().is_empty() {
            continue;
        }
        let dest = into.join(inner);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&dest).with_context(|| format!("{}", path.display()))?;
        File::open(&dest)?.sync_all()?;
    }
    Ok(())
}

/// Downloads each of `files` into `dir`, trying `mirrors` in order, and
/// verifies each payload against its checksum. Files already in `dir` with
/// the right checksum are kept as they are. Takes the table and mirrors as
/// parameters so that tests can serve their own files.
pub fn fetch_from(name: &str, files: &[Checksum<'_>], mirrors: &[String], dir: &Path) -> Result<FetchReport> {
    ensure!(!mirrors.is_empty(), "no mirrors to fetch {name} from");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let agent = agent();
    let mut fetched = Vec::with_capacity(files.len());
    for &(file, sha256) in files {
        let result = match present(dir, file, sha256) {
            Some(path) => FetchedFile { file: file.into(), path, outcome: Outcome::AlreadyPresent },
            None => download_from_mirrors(&agent, file, sha256, mirrors, dir)?,
        };
        fetched.push(result);
    }
    Ok(FetchReport { dir: dir.to_path_buf(), files: fetched })
}

/// An HTTP agent that fails slow mirrors rather than hanging on them, and
/// asks for the bytes as stored (no transfer compression).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .build()
        .into()
}

/// `file` without its `.gz` suffix: the name of an uncompressed copy.
fn stem(file: &str) -> &str {
    file.strip_suffix(".gz").unwrap_or(file)
}

/// A copy of `file` (compressed or not) in `dir` whose payload matches
/// `sha256`, if there is one. A copy that does not match is reported and
/// will be replaced.
fn present(dir: &Path, file: &str, sha256: &str) -> Option<PathBuf> {
    for path in variants(dir, file) {
        if !path.is_file() {
            continue;
        }
        match payload_sha256(&path) {
            Ok(actual) if actual.eq_ignore_ascii_case(sha256) => return Some(path),
            Ok(actual) => {
                tracing::warn!("{}: SHA-256 {actual} is not the expected {sha256}; downloading again", path.display())
            }
            Err(e) => tracing::warn!("{e:#}; downloading again"),
        }
    }
    None
}

/// The two names a copy of `file` may have in `dir`: compressed, then not.
fn variants(dir: &Path, file: &str) -> [PathBuf; 2] {
    let stem = stem(file);
    [dir.join(format!("{stem}.gz")), dir.join(stem)]
}

/// Hex SHA-256 of the decompressed payload of `path`.
pub fn payload_sha256(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut idx::payload_reader(path)?, &mut hasher)
        .with_context(|| format!("{}: corrupt or truncated file", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Tries each mirror in turn; the error lists every mirror's failure.
fn download_from_mirrors(
    agent: &ureq::Agent,
    file: &str,
    sha256: &str,
    mirrors: &[String],
    dir: &Path,
) -> Result<FetchedFile> {
    let mut failures = Vec::new();
    for (i, mirror) in mirrors.iter().enumerate() {
        let url = format!("{}/{file}", mirror.trim_end_matches('/'));
        tracing::info!("downloading {url}");
        match download_verified(agent, &url, file, sha256, dir) {
            Ok(path) => {
                let outcome = Outcome::Downloaded { url };
                return Ok(FetchedFile { file: file.into(), path, outcome });
            }
            Err(e) => {
                // The error lists every failure; the log says why a fallback happened.
                if i + 1 < mirrors.len() {
                    tracing::warn!("{e:#}; trying the next mirror");
                }
                failures.push(format!("  {e:#}"));
            }
        }
    }
    bail!("could not fetch {file} from any mirror:\n{}", failures.join("\n"))
}

/// Downloads `url` to a temporary file in `dir` ([`Staged`]), checks its
/// payload against `sha256`, and only then renames it into place. The name
/// it gets follows its content: `.gz` if it is gzip, without otherwise.
fn download_verified(agent: &ureq::Agent, url: &str, file: &str, sha256: &str, dir: &Path) -> Result<PathBuf> {
    let mut part = Staged::new(&dir.join(file))?;
    download(agent, url, file, part.file())?;
    let actual = payload_sha256(part.path()).with_context(|| format!("{file} from {url}"))?;
    ensure!(
        actual.eq_ignore_ascii_case(sha256),
        "SHA-256 mismatch for {file} from {url}: payload has {actual}, expected {sha256}"
    );
    let [gz, raw] = variants(dir, file);
    let (dest, other) = if idx::is_gzip(part.path())? { (gz, raw) } else { (raw, gz) };
    part.commit_as(&dest)?;
    remove_stale(&other);
    Ok(dest)
}

/// Removes an unverified copy under the other name, which would otherwise
/// shadow or confuse the verified one.
fn remove_stale(path: &Path) {
    if path.is_file() {
        tracing::warn!("removing {}, which failed verification", path.display());
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("could not remove {}: {e}", path.display());
        }
    }
}

/// Streams the body of `url` into `out`, with a progress bar on a terminal.
fn download(agent: &ureq::Agent, url: &str, file: &str, out: &mut File) -> Result<()> {
    let response = agent.get(url).call().with_context(|| format!("GET {url}"))?;
    let body = response.into_body();
    let bar = progress_bar(body.content_length(), file);
    let mut out = bar.wrap_write(BufWriter::new(out));
    io::copy(&mut body.into_reader(), &mut out).with_context(|| format!("downloading {url}"))?;
    out.flush().with_context(|| format!("writing the download of {file}"))?;
    bar.finish_and_clear();
    Ok(())
}

/// A byte-count bar labelled with the file name, drawn only when stderr is
/// a terminal so logs and pipes stay clean.
fn progress_bar(len: Option<u64>, file: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = match len {
        Some(_) => "{msg:28} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        None => "{msg:28} {spinner} {bytes} ({bytes_per_sec})",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(file.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_cover_every_known_dataset_and_both_splits() {
        for name in crate::data::known().into_iter().filter(|n| archive(n).unwrap().is_none()) {
            let files = checksums(name).unwrap();
            let names: Vec<&str> = files.iter().map(|f| f.0).collect();
            for split in crate::data::Split::ALL {
                for stem in path::file_stems(split) {
                    assert!(names.contains(&format!("{stem}.gz").as_str()), "{name}: {stem}");
                }
            }
            assert!(files.iter().all(|f| f.1.len() == 64 && hex::decode(f.1).is_ok()));
            assert!(!default_mirrors(name).unwrap().is_empty());
        }
        assert!(checksums("cifar10").is_err() && checksums("cifar1000").is_err());
        assert_eq!(archive("cifar100").unwrap().unwrap().md5.len(), 32);
    }

    #[test]
    fn names_follow_content() {
        assert_eq!(stem("a.gz"), "a");
        assert_eq!(stem("a"), "a");
        let dir = Path::new("/d");
        assert_eq!(variants(dir, "a"), [dir.join("a.gz"), dir.join("a")]);
    }

    #[test]
    fn payload_checksum_ignores_compression() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let gz = dir.path().join("gz");
        std::fs::write(&raw, b"payload").unwrap();
        std::fs::write(&gz, crate::data::idx::tests::gzip(b"payload")).unwrap();
        assert_eq!(payload_sha256(&raw).unwrap(), payload_sha256(&gz).unwrap());
    }
}
