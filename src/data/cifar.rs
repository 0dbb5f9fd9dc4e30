//! CIFAR-10 and CIFAR-100 in their binary distributions (Krizhevsky,
//! "Learning Multiple Layers of Features from Tiny Images", 2009): records
//! of label bytes then 3072 pixel bytes, the 32x32 red, green and blue
//! planes in turn, which is `[3, 32, 32]` as it lies. CIFAR-100's records
//! have a coarse and a fine label; the fine one (100 classes) is used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use ndarray::Array4;

use super::{Dataset, Format, Known, Label, Split};

/// Bytes of one image's pixels.
const PIXELS: usize = 3 * 32 * 32;

/// The layout of one distribution: its files and records.
struct Layout {
    train: &'static [&'static str],
    test: &'static str,
    /// Label bytes before each image; the last is the label used.
    label_bytes: usize,
    classes: usize,
    names: &'static str,
}

fn layout(format: Format) -> &'static Layout {
    const TEN: Layout = Layout {
        train: &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
        test: "test_batch.bin",
        label_bytes: 1,
        classes: 10,
        names: "batches.meta.txt",
    };
    const HUNDRED: Layout =
        Layout { train: &["train.bin"], test: "test.bin", label_bytes: 2, classes: 100, names: "fine_label_names.txt" };
    match format {
        Format::Cifar100 => &HUNDRED,
        _ => &TEN,
    }
}

/// The files of a split, in order.
pub fn split_files(dir: &Path, format: Format, split: Split) -> Vec<PathBuf> {
    let layout = layout(format);
    match split {
        Split::Train => layout.train.iter().map(|f| dir.join(f)).collect(),
        Split::Test => vec![dir.join(layout.test)],
    }
}

/// The examples a split's files hold, from their sizes.
pub fn count(dir: &Path, format: Format, split: Split) -> Result<usize> {
    let record = layout(format).label_bytes + PIXELS;
    split_files(dir, format, split).iter().try_fold(0, |total, file| Ok(total + records(file, record)?))
}

/// The records of `file`, whose size must be a whole number of them.
fn records(file: &Path, record: usize) -> Result<usize> {
    let len = std::fs::metadata(file).with_context(|| format!("opening {}", file.display()))?.len() as usize;
    ensure!(
        len.is_multiple_of(record),
        "{}: {len} bytes is not a whole number of {record}-byte records: the file is truncated or not CIFAR",
        file.display()
    );
    Ok(len / record)
}

/// Reads a split: `[N, 3, 32, 32]` pixels, labels checked against the
/// classes, class names from the names file when it is there.
pub fn load(dir: &Path, known: &Known, split: Split) -> Result<Dataset> {
    let layout = layout(known.format);
    let record = layout.label_bytes + PIXELS;
    let total = count(dir, known.format, split)?;
    let mut pixels = Vec::with_capacity(total * PIXELS);
    let mut labels = Vec::with_capacity(total);
    for file in split_files(dir, known.format, split) {
        crate::interrupt::check()?;
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        ensure!(bytes.len().is_multiple_of(record), "{}: changed while read", file.display());
        for (i, chunk) in bytes.chunks_exact(record).enumerate() {
            let label = chunk[layout.label_bytes - 1];
            ensure!(
                usize::from(label) < layout.classes,
                "{}: record {i} has label {label}, but {} has {} classes",
                file.display(),
                known.name,
                layout.classes
            );
            labels.push(Label::from(label));
            pixels.extend(chunk[layout.label_bytes..].iter().map(|&b| f32::from(b) / 255.0));
        }
    }
    let images = Array4::from_shape_vec((labels.len(), 3, 32, 32), pixels)?;
    let classes = class_names(&dir.join(layout.names), layout.classes)?;
    Ok(Dataset { name: known.name.to_string(), split, images, labels, classes })
}

/// One name per line, blank lines skipped; a file with another number of
/// names than classes is an error, a missing one no names.
fn class_names(path: &Path, classes: usize) -> Result<Option<Vec<String>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    ensure!(names.len() == classes, "{}: {} class names for {classes} classes", path.display(), names.len());
    Ok(Some(names))
}
