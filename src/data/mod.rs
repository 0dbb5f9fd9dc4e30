//! Datasets: the ones advx knows by name (MNIST and Fashion-MNIST from IDX
//! files, CIFAR-10 and CIFAR-100 from their binary distributions, found on
//! the data path, see [`path`], or downloaded by [`fetch`]), and image
//! sets from files ([`numpy`], [`folder`]).
//!
//! Images are `[N, C, H, W]` f32 pixels in [0, 1], whatever their source;
//! labels are class indices ([`Label`]), and a set may carry the names of
//! its classes.

pub mod cifar;
pub mod fetch;
pub mod folder;
pub mod idx;
pub mod numpy;
pub mod path;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use ndarray::{Array1, Array4, s};

pub use fetch::{FetchReport, fetch, fetch_from};
pub use path::{data_path, locate_in};

/// A class index. Wide enough for any classifier's classes (ImageNet's
/// 1000 and more): every label, attack target and table row is one.
pub type Label = u32;

/// A dataset advx knows by name: what its images are and how scripts
/// write its name.
#[derive(Debug)]
pub struct Known {
    /// The name on the command line and on the data path (`fashion-mnist`).
    pub name: &'static str,
    /// The name in scripts, an identifier (`fashion_mnist`).
    pub script_name: &'static str,
    /// `[C, H, W]` of every image.
    pub shape: [usize; 3],
    /// The examples of the standard train and test splits.
    pub standard: [usize; 2],
    /// How its files are laid out.
    pub format: Format,
    /// The folder its distribution unpacks to (`cifar-10-batches-bin`),
    /// also looked for on the data path; none for loose files.
    pub folder: Option<&'static str>,
}

/// The file formats of the known datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MNIST's IDX files, gzip-compressed or not.
    Idx,
    /// CIFAR-10's binary batches.
    Cifar10,
    /// CIFAR-100's binary train and test files.
    Cifar100,
}

/// The datasets advx knows by name.
const KNOWN: &[Known] = &[
    Known {
        name: "mnist",
        script_name: "mnist",
        shape: [1, 28, 28],
        standard: [60_000, 10_000],
        format: Format::Idx,
        folder: None,
    },
    Known {
        name: "fashion-mnist",
        script_name: "fashion_mnist",
        shape: [1, 28, 28],
        standard: [60_000, 10_000],
        format: Format::Idx,
        folder: None,
    },
    Known {
        name: "cifar10",
        script_name: "cifar10",
        shape: [3, 32, 32],
        standard: [50_000, 10_000],
        format: Format::Cifar10,
        folder: Some("cifar-10-batches-bin"),
    },
    Known {
        name: "cifar100",
        script_name: "cifar100",
        shape: [3, 32, 32],
        standard: [50_000, 10_000],
        format: Format::Cifar100,
        folder: Some("cifar-100-binary"),
    },
];

/// The names of the known datasets.
pub fn known() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.name).collect()
}

/// The known dataset `name`, or an error listing the known ones.
pub fn known_dataset(name: &str) -> Result<&'static Known> {
    match KNOWN.iter().find(|k| k.name == name) {
        Some(k) => Ok(k),
        None => bail!("unknown dataset {name:?}; known datasets: {}", known().join(", ")),
    }
}

/// The known dataset scripts call `script_name` (`fashion_mnist`).
pub fn by_script_name(script_name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.script_name == script_name)
}

/// The names scripts use for the known datasets.
pub fn script_names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.script_name).collect()
}

/// Fails unless `name` is a known dataset, listing the known ones.
pub fn check_known(name: &str) -> Result<()> {
    known_dataset(name).map(|_| ())
}

/// One of a dataset's two standard splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// Both splits, in the order they are listed.
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// The number of examples the split has in the known dataset.
    pub fn standard_len(self, known: &Known) -> usize {
        match self {
            Split::Train => known.standard[0],
            Split::Test => known.standard[1],
        }
    }
}

impl FromStr for Split {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => bail!("unknown split {s:?}; expected train or test"),
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Data named on the command line: a known dataset and split (`mnist`,
/// `mnist:test`, `cifar10:train`; the split defaults to test, the one
/// errors are reported on), or files: `images:DIR` (a folder of images,
/// see [`folder`]) or `numpy:FILE` (`.npy` or `.npz`, see [`numpy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSpec {
    Known { name: String, split: Split },
    Images(PathBuf),
    Numpy(PathBuf),
}

impl FromStr for DataSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (name, split) = match s.split_once(':') {
            Some(("images", dir)) => return Ok(DataSpec::Images(dir.into())),
            Some(("numpy", file)) => return Ok(DataSpec::Numpy(file.into())),
            Some((name, split)) => (name, split.parse()?),
            None => (s, Split::Test),
        };
        known_dataset(name).map_err(|e| anyhow::anyhow!("{e}, or images:DIR or numpy:FILE"))?;
        Ok(DataSpec::Known { name: name.to_string(), split })
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Known { name, split } => write!(f, "{name}:{split}"),
            DataSpec::Images(dir) => write!(f, "images:{}", dir.display()),
            DataSpec::Numpy(file) => write!(f, "numpy:{}", file.display()),
        }
    }
}

impl DataSpec {
    /// Loads the data with its labels, which files must have. A known
    /// dataset is found on the data path; a folder is decoded with a
    /// progress bar on a terminal.
    pub fn load(&self) -> Result<Dataset> {
        let loaded = match self {
            DataSpec::Known { name, split } => return load(name, *split),
            DataSpec::Images(dir) => {
                let bar = crate::progress::bar(0, &self.to_string());
                let loaded = folder::load(dir, &folder::Options::default(), &bar)?;
                bar.finish_and_clear();
                loaded
            }
            DataSpec::Numpy(file) => numpy::load(file, &numpy::Options::default())?,
        };
        let labels = loaded.labels.with_context(|| format!("{self} has no labels"))?;
        Ok(Dataset {
            name: self.to_string(),
            split: Split::Test,
            images: loaded.images,
            labels,
            classes: loaded.classes,
        })
    }
}

/// Images read from a file or folder: pixels `[N, C, H, W]` in [0, 1],
/// labels and class names when the source has them.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub images: Array4<f32>,
    pub labels: Option<Vec<Label>>,
    pub classes: Option<Vec<String>>,
}

/// The examples of one split of a dataset, in file order.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub split: Split,
    /// `[N, C, H, W]`, values in [0, 1].
    pub images: Array4<f32>,
    /// N class indices.
    pub labels: Vec<Label>,
    /// The name of each class, when the dataset has them.
    pub classes: Option<Vec<String>>,
}

impl Dataset {
    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples in `range`, copied, e.g. a training subset or the first
    /// N test images. An out-of-bounds range is an error, not a panic.
    pub fn slice(&self, range: Range<usize>) -> Result<Dataset> {
        ensure!(
            range.start <= range.end && range.end <= self.len(),
            "range {}..{} is outside {}:{} of {} examples",
            range.start,
            range.end,
            self.name,
            self.split,
            self.len()
        );
        Ok(Dataset {
            name: self.name.clone(),
            split: self.split,
            images: self.images.slice(s![range.clone(), .., .., ..]).to_owned(),
            labels: self.labels[range].to_vec(),
            classes: self.classes.clone(),
        })
    }

    /// The labels as i64, the type of ONNX class-index targets.
    pub fn labels_i64(&self) -> Array1<i64> {
        self.labels.iter().map(|&l| i64::from(l)).collect()
    }
}

/// The folder holding dataset `name`, searched for on the data path.
pub fn locate(name: &str) -> Result<PathBuf> {
    check_known(name)?;
    locate_in(name, &data_path())
}

/// Loads a split of dataset `name` from the data path.
pub fn load(name: &str, split: Split) -> Result<Dataset> {
    let dir = locate(name)?;
    load_dir(&dir, name, split)
}

/// Loads a split of dataset `name` from the first folder holding it under
/// `roots`, for callers (tests) that bring their own data path.
pub fn load_in(name: &str, split: Split, roots: &[PathBuf]) -> Result<Dataset> {
    check_known(name)?;
    let dir = locate_in(name, roots)?;
    load_dir(&dir, name, split)
}

/// Loads a split of known dataset `name` from the IDX files in `dir`,
/// checking that images and labels agree in number and that images have
/// the dataset's shape.
pub fn load_dir(dir: &Path, name: &str, split: Split) -> Result<Dataset> {
    let known = known_dataset(name)?;
    if known.format != Format::Idx {
        let data = cifar::load(dir, known, split)?;
        warn_unless_standard(known, split, data.len(), dir);
        return Ok(data);
    }
    let (images_path, labels_path) = path::split_files(dir, split)
        .with_context(|| format!("{}: no {split} images and labels files", dir.display()))?;
    let images = idx::read_images(&images_path)?;
    let labels: Vec<Label> = idx::read_labels(&labels_path)?.into_iter().map(Label::from).collect();
    let [_, height, width] = known.shape;
    ensure!(
        (images.rows, images.cols) == (height, width),
        "{}: images are {}x{}, but {name}'s are {height}x{width}",
        images_path.display(),
        images.rows,
        images.cols
    );
    let count = images.pixels.shape()[0];
    ensure!(
        count == labels.len(),
        "{} has {count} images but {} has {} labels",
        images_path.display(),
        labels_path.display(),
        labels.len()
    );
    warn_unless_standard(known, split, count, dir);
    tracing::debug!("loaded {count} examples of {name}:{split} from {}", dir.display());
    Ok(Dataset { name: name.to_string(), split, images: images.pixels, labels, classes: None })
}

fn warn_unless_standard(known: &Known, split: Split, count: usize, dir: &Path) {
    if count != split.standard_len(known) {
        tracing::warn!(
            "{}:{split} in {} has {count} examples, not the standard {}",
            known.name,
            dir.display(),
            split.standard_len(known)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::idx::tests::{gzip, images_payload, labels_payload};
    use super::*;

    /// Writes a small synthetic dataset (28x28 images) into `dir`.
    fn write_dataset(dir: &Path, train: u32, test: u32) {
        std::fs::create_dir_all(dir).unwrap();
        for (split, n) in [(Split::Train, train), (Split::Test, test)] {
            let [images, labels] = path::file_stems(split);
            let label_values: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            std::fs::write(dir.join(images + ".gz"), gzip(&images_payload(n, 28, 28))).unwrap();
            std::fs::write(dir.join(labels), labels_payload(&label_values)).unwrap();
        }
    }

    fn message(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn split_parses_and_prints() {
        for split in Split::ALL {
            assert_eq!(split.to_string().parse::<Split>().unwrap(), split);
        }
        assert!("validation".parse::<Split>().is_err());
    }

    #[test]
    fn data_spec_defaults_to_test() {
        let spec: DataSpec = "mnist".parse().unwrap();
        assert_eq!(spec, DataSpec::Known { name: "mnist".into(), split: Split::Test });
        let spec: DataSpec = "fashion-mnist:train".parse().unwrap();
        assert_eq!(spec, DataSpec::Known { name: "fashion-mnist".into(), split: Split::Train });
        assert_eq!(spec.to_string(), "fashion-mnist:train");
        let spec: DataSpec = "images:some/dir".parse().unwrap();
        assert_eq!((spec.to_string(), spec), ("images:some/dir".into(), DataSpec::Images("some/dir".into())));
        assert_eq!("numpy:x.npz".parse::<DataSpec>().unwrap(), DataSpec::Numpy("x.npz".into()));
    }

    #[test]
    fn data_spec_rejects_unknown_names_listing_known_ones() {
        let e = message("cifar1000:test".parse::<DataSpec>().unwrap_err());
        assert!(e.contains("cifar1000") && e.contains("mnist, fashion-mnist, cifar10, cifar100"), "{e}");
        assert!("mnist:dev".parse::<DataSpec>().is_err());
    }

    #[test]
    fn locates_name_folder_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        write_dataset(&root.path().join("mnist"), 2, 1);
        let roots = [root.path().join("empty"), root.path().to_path_buf()];
        assert_eq!(locate_in("mnist", &roots).unwrap(), root.path().join("mnist"));
    }

    #[test]
    fn a_root_named_after_the_dataset_is_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let own = root.path().join("fashion-mnist");
        write_dataset(&own, 2, 1);
        assert_eq!(locate_in("fashion-mnist", std::slice::from_ref(&own)).unwrap(), own);
        // The same files are not taken for another dataset.
        assert!(locate_in("mnist", &[own]).is_err());
    }

    #[test]
    fn missing_dataset_lists_places_and_the_fetch_command() {
        let root = tempfile::tempdir().unwrap();
        let partial = root.path().join("mnist");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("t10k-labels-idx1-ubyte"), labels_payload(&[1])).unwrap();
        let e = message(locate_in("mnist", &[root.path().to_path_buf()]).unwrap_err());
        assert!(e.contains(&partial.display().to_string()), "{e}");
        assert!(e.contains("some files missing"), "{e}");
        assert!(e.contains("advx data fetch mnist"), "{e}");
    }

    #[test]
    fn loads_both_splits_from_a_folder() {
        let root = tempfile::tempdir().unwrap();
        write_dataset(&root.path().join("mnist"), 5, 3);
        let train = load_in("mnist", Split::Train, &[root.path().to_path_buf()]).unwrap();
        let test = load_in("mnist", Split::Test, &[root.path().to_path_buf()]).unwrap();
        assert_eq!((train.len(), test.len()), (5, 3));
        assert_eq!(train.images.shape(), &[5, 1, 28, 28]);
        assert_eq!(test.labels, [0, 1, 2]);
        assert_eq!(test.labels_i64().to_vec(), [0i64, 1, 2]);
    }

    #[test]
    fn image_and_label_count_mismatch_is_an_error_naming_both_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mnist");
        write_dataset(&dir, 4, 2);
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels_payload(&[1, 2, 3])).unwrap();
        let e = message(load_dir(&dir, "mnist", Split::Test).unwrap_err());
        assert!(e.contains("t10k-images-idx3-ubyte.gz") && e.contains("t10k-labels"), "{e}");
    }

    #[test]
    fn images_of_the_wrong_size_are_an_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mnist");
        write_dataset(&dir, 4, 2);
        std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), images_payload(2, 7, 7)).unwrap();
        let e = message(load_dir(&dir, "mnist", Split::Test).unwrap_err());
        assert!(e.contains("7x7") && e.contains("mnist's are 28x28"), "{e}");
    }

    #[test]
    fn slice_copies_a_range_and_rejects_bad_ones() {
        let root = tempfile::tempdir().unwrap();
        write_dataset(&root.path().join("mnist"), 10, 1);
        let train = load_in("mnist", Split::Train, &[root.path().to_path_buf()]).unwrap();
        let part = train.slice(3..7).unwrap();
        assert_eq!(part.labels, [3, 4, 5, 6]);
        assert_eq!(part.images.shape(), &[4, 1, 28, 28]);
        assert_eq!(part.images[[0, 0, 0, 0]], train.images[[3, 0, 0, 0]]);
        assert!(train.slice(5..11).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 7..3;
        assert!(train.slice(reversed).is_err());
        assert!(train.slice(10..10).unwrap().is_empty());
    }
}
