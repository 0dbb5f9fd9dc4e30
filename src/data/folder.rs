//! Folders of image files (PNG, JPEG, BMP, decoded by the `image` crate)
//! as image sets. Two layouts: one subfolder per class, whose sorted
//! names are the labels 0, 1, ... and the class names (torchvision's
//! ImageFolder); or a flat folder, labelled by a CSV of `file,label` rows
//! when there is one (`labels.csv`, or named).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use image::{DynamicImage, imageops::FilterType};
use indicatif::ProgressBar;
use ndarray::{Array4, ArrayView3, ArrayView4, Axis};

use super::{Label, Loaded};

/// The extensions read, lower-case.
const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp"];
/// The labels file a flat folder is looked at for.
pub const LABELS_CSV: &str = "labels.csv";
/// The most images decoded at once.
const MAX_THREADS: usize = 16;

/// The channels images are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Gray,
    Rgb,
}

impl FromStr for Channels {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Channels> {
        match s {
            "gray" | "grey" => Ok(Channels::Gray),
            "rgb" => Ok(Channels::Rgb),
            _ => bail!("unknown channels {s:?}; expected \"gray\" or \"rgb\""),
        }
    }
}

/// How to read a folder.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Resize the shorter side to this many pixels, then crop the centre
    /// square; without it every image must have the same size.
    pub size: Option<u32>,
    /// Gray or RGB; by default RGB when any image has colour, else gray.
    pub channels: Option<Channels>,
    /// A CSV of `file,label` for a flat folder (default `labels.csv` in it).
    pub labels: Option<PathBuf>,
}

/// One image file and its label, when known.
struct Entry {
    path: PathBuf,
    label: Option<Label>,
}

/// Reads the images of `dir` with their labels; `progress` counts the
/// images decoded.
pub fn load(dir: &Path, options: &Options, progress: &ProgressBar) -> Result<Loaded> {
    ensure!(dir.is_dir(), "{}: no such folder", dir.display());
    let (entries, classes) = match class_folders(dir)? {
        Some(classes) => (class_entries(dir, &classes)?, Some(classes)),
        None => flat_entries(dir, options.labels.as_deref())?,
    };
    ensure!(!entries.is_empty(), "{}: no PNG, JPEG or BMP images", dir.display());
    progress.set_length(entries.len() as u64);
    let decoded = decode_all(&entries, options.size, progress)?;
    let channels = options.channels.unwrap_or(match decoded.iter().any(|d| d.color().has_color()) {
        true => Channels::Rgb,
        false => Channels::Gray,
    });
    let images = stack(&entries, &decoded, channels)?;
    let labels = entries.iter().map(|e| e.label).collect::<Option<Vec<_>>>();
    Ok(Loaded { images, labels, classes })
}

/// The sorted names of the subfolders, when `dir` is laid out by class.
fn class_folders(dir: &Path) -> Result<Option<Vec<String>>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
            names.push(entry.file_name().into_string().map_err(|n| anyhow::anyhow!("{n:?}: not UTF-8"))?);
        }
    }
    names.sort();
    Ok((!names.is_empty()).then_some(names))
}

/// The image files directly in `dir`, sorted by name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if path.is_file() && EXTENSIONS.contains(&ext.as_str()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn class_entries(dir: &Path, classes: &[String]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let label = Label::try_from(label)?;
        entries.extend(image_files(&dir.join(class))?.into_iter().map(|path| Entry { path, label: Some(label) }));
    }
    Ok(entries)
}

/// A flat folder's images, labelled by the CSV when there is one: labels
/// are class indices, or class names (sorted, they become the indices).
fn flat_entries(dir: &Path, csv: Option<&Path>) -> Result<(Vec<Entry>, Option<Vec<String>>)> {
    let files = image_files(dir)?;
    let csv = csv.map(Path::to_path_buf).or_else(|| Some(dir.join(LABELS_CSV)).filter(|p| p.is_file()));
    let Some(csv) = csv else {
        return Ok((files.into_iter().map(|path| Entry { path, label: None }).collect(), None));
    };
    let rows = read_csv(&csv)?;
    let classes = match rows.iter().all(|(_, l)| l.parse::<Label>().is_ok()) {
        true => None,
        false => {
            let mut names: Vec<String> = rows.iter().map(|(_, l)| l.clone()).collect();
            names.sort();
            names.dedup();
            Some(names)
        }
    };
    let label_of = |text: &str| -> Result<Label> {
        match &classes {
            None => Ok(text.parse()?),
            Some(names) => Ok(Label::try_from(names.binary_search_by(|n| n.as_str().cmp(text)).unwrap_or(0))?),
        }
    };
    let mut entries = Vec::new();
    for (file, label) in &rows {
        let path = dir.join(file);
        ensure!(path.is_file(), "{}: lists {file}, which is not in {}", csv.display(), dir.display());
        entries.push(Entry { path, label: Some(label_of(label)?) });
    }
    let listed: std::collections::HashSet<&PathBuf> = entries.iter().map(|e| &e.path).collect();
    if let Some(extra) = files.iter().find(|f| !listed.contains(f)) {
        bail!("{} has no label for {}", csv.display(), extra.display());
    }
    Ok((entries, classes))
}

/// `file,label` rows; a first row whose label is `label` is a header.
fn read_csv(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let Some((file, label)) = line.split_once(',') else {
            bail!("{}, line {}: expected file,label, got {line:?}", path.display(), n + 1);
        };
        let (file, label) = (file.trim().trim_matches('"'), label.trim().trim_matches('"'));
        if n == 0 && label.eq_ignore_ascii_case("label") {
            continue;
        }
        rows.push((file.to_string(), label.to_string()));
    }
    Ok(rows)
}

/// Decodes every file on scoped threads, in order; the first failure is
/// the error, naming its file.
fn decode_all(entries: &[Entry], size: Option<u32>, progress: &ProgressBar) -> Result<Vec<DynamicImage>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS);
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<DynamicImage>>> = (0..entries.len()).map(|_| None).collect();
    let done: Vec<Vec<(usize, Result<DynamicImage>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(entries.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= entries.len() {
                            break;
                        }
                        let result = crate::interrupt::check().and_then(|()| decode(&entries[i].path, size));
                        let failed = result.is_err();
                        mine.push((i, result));
                        progress.inc(1);
                        if failed {
                            next.store(entries.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_default()).collect()
    });
    for (i, result) in done.into_iter().flatten() {
        slots[i] = Some(result);
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, slot)| match slot {
            Some(result) => result,
            None => bail!("{}: not decoded (an earlier image failed)", entries[i].path.display()),
        })
        .collect()
}

fn decode(path: &Path, size: Option<u32>) -> Result<DynamicImage> {
    let image = image::ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?
        .decode()
        .with_context(|| format!("{}: not a readable PNG, JPEG or BMP image", path.display()))?;
    Ok(match size {
        Some(side) => square(image, side),
        None => image,
    })
}

/// The shorter side resized to `side`, then the centre `side` x `side`.
fn square(image: DynamicImage, side: u32) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let scale = side as f64 / w.min(h) as f64;
    let (rw, rh) = (((w as f64 * scale).round() as u32).max(side), ((h as f64 * scale).round() as u32).max(side));
    let resized = image.resize_exact(rw, rh, FilterType::CatmullRom);
    resized.crop_imm((rw - side) / 2, (rh - side) / 2, side, side)
}

/// The most pixel values one set holds (8 GiB of f32).
const MAX_VALUES: usize = 1 << 31;

/// The decoded images as one `[N, C, H, W]` array in [0, 1]; images of
/// different sizes are an error naming two of them.
fn stack(entries: &[Entry], decoded: &[DynamicImage], channels: Channels) -> Result<Array4<f32>> {
    let (w, h) = (decoded[0].width(), decoded[0].height());
    if let Some(i) = decoded.iter().position(|d| (d.width(), d.height()) != (w, h)) {
        bail!(
            "{} is {}x{} but {} is {w}x{h}: give size: N to resize every image to N x N",
            entries[i].path.display(),
            decoded[i].width(),
            decoded[i].height(),
            entries[0].path.display()
        );
    }
    let c = match channels {
        Channels::Gray => 1,
        Channels::Rgb => 3,
    };
    let (h, w) = (h as usize, w as usize);
    let values = [decoded.len(), c, h, w].iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    ensure!(
        values.is_some_and(|v| v <= MAX_VALUES),
        "{} images of {c}x{h}x{w} pixels are more than advx holds at once ({MAX_VALUES} values): give size: N \
         to make them smaller, or split the folder",
        decoded.len()
    );
    let mut images = Array4::<f32>::zeros((decoded.len(), c, h, w));
    for (mut out, image) in images.axis_iter_mut(Axis(0)).zip(decoded) {
        let bytes = match channels {
            Channels::Gray => image.to_luma8().into_raw(),
            Channels::Rgb => image.to_rgb8().into_raw(),
        };
        let hwc = ArrayView3::from_shape((h, w, c), &bytes)?;
        out.assign(&hwc.permuted_axes([2, 0, 1]).mapv(|v| f32::from(v) / 255.0));
    }
    Ok(images)
}

/// Writes images as 8-bit PNG files into the folder `dir`, atomically:
/// one subfolder per class when there are labels (class names when they
/// sort in label order, so the folder loads back with the same labels;
/// else zero-padded label numbers, every class's folder made), files
/// numbered in set order. Pixels are rounded to 1/255, as PNG stores them.
pub fn save(dir: &Path, images: ArrayView4<f32>, labels: Option<&[Label]>, classes: Option<&[String]>) -> Result<()> {
    let [_, c, h, w] = images.shape() else { unreachable!("a 4-D array") };
    let (c, h, w) = (*c, *h, *w);
    ensure!(c == 1 || c == 3, "PNG files hold 1 or 3 channels, and these images have {c}");
    ensure!(
        images.iter().all(|v| (0.0..=1.0).contains(v)),
        "PNG files hold pixels in [0, 1]; save a difference or a magnified set as .npz"
    );
    let folders = labels.map(|labels| class_folder_names(labels, classes));
    let width = images.len_of(Axis(0)).to_string().len();
    crate::artefact::write_folder_atomic(dir, |staged| {
        for name in folders.iter().flatten() {
            std::fs::create_dir_all(staged.join(name))?;
        }
        for (i, image) in images.axis_iter(Axis(0)).enumerate() {
            crate::interrupt::check()?;
            let folder = match (&folders, labels) {
                (Some(names), Some(labels)) => staged.join(&names[labels[i] as usize]),
                _ => staged.to_path_buf(),
            };
            let bytes: Vec<u8> = image.permuted_axes([1, 2, 0]).iter().map(|&v| (v * 255.0).round() as u8).collect();
            let color = if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
            let mut png = Vec::new();
            image::ImageEncoder::write_image(
                image::codecs::png::PngEncoder::new(&mut png),
                &bytes,
                w as u32,
                h as u32,
                color,
            )?;
            crate::artefact::write_synced(&folder.join(format!("{i:0width$}.png")), &png)?;
        }
        Ok(())
    })
}

/// A folder name per class up to the largest label, sorting in label order.
fn class_folder_names(labels: &[Label], classes: Option<&[String]>) -> Vec<String> {
    let top = labels.iter().max().map_or(0, |&l| l as usize + 1);
    if let Some(names) = classes
        && names.len() >= top
        && names.windows(2).all(|pair| pair[0] < pair[1])
        && names.iter().all(|n| !n.is_empty() && !n.starts_with('.') && !n.contains(['/', '\\']))
    {
        return names.to_vec();
    }
    let count = classes.map_or(top, |c| c.len().max(top));
    let width = count.saturating_sub(1).to_string().len();
    (0..count).map(|i| format!("{i:0width$}")).collect()
}
