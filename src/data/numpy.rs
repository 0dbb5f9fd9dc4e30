//! NumPy files as image sets: an `.npy` array of images (with its labels in
//! another `.npy`), or an `.npz` archive of named arrays. Arrays are read
//! and written with ndarray-npy; the archive is a zip.
//!
//! Images are uint8 (0 to 255) or float (0 to 1), `[N, C, H, W]`,
//! `[N, H, W, C]` or `[N, H, W]`. Every array's size is checked against
//! the bytes that hold it before anything is allocated, so a truncated or
//! lying file is an error naming it.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};
use ndarray::{Array1, Array4, ArrayD, ArrayView4, Axis, Ix1};
use ndarray_npy::npy::header::{Header, Layout as Order};
use ndarray_npy::{ReadNpyExt, ReadableElement, WriteNpyExt};
use py_literal::Value as PyValue;
use zip::write::SimpleFileOptions;

use super::{Label, Loaded};

/// The order of an image array's axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[N, C, H, W]`, channels first (PyTorch).
    Nchw,
    /// `[N, H, W, C]`, channels last (TensorFlow, PIL, most image tools).
    Nhwc,
}

impl FromStr for Layout {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Layout> {
        match s.to_ascii_lowercase().as_str() {
            "nchw" => Ok(Layout::Nchw),
            "nhwc" => Ok(Layout::Nhwc),
            _ => bail!("unknown layout {s:?}; expected \"nchw\" or \"nhwc\""),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        })
    }
}

/// What to read from a NumPy file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The images' axis order; detected from the shape when not given.
    pub layout: Option<Layout>,
    /// In an `.npz`, the images' array; else the first of [`IMAGE_NAMES`].
    pub images: Option<String>,
    /// In an `.npz`, the labels' array (else the first of [`LABEL_NAMES`]);
    /// beside an `.npy`, the labels' file (else one named after the images').
    pub labels: Option<String>,
}

/// Names an `.npz` commonly gives its images, tried in order.
pub const IMAGE_NAMES: &[&str] = &["images", "x", "x_test", "X", "data"];
/// Names an `.npz` commonly gives its labels, tried in order.
pub const LABEL_NAMES: &[&str] = &["labels", "y", "y_test", "Y", "targets"];
/// The name of the class names' array (strings) that `save` writes.
pub const CLASSES: &str = "classes";

/// Deflate expands at most about 1032 to 1: an archive entry declaring
/// more than this many bytes per compressed byte is lying.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Reads an `.npy` or `.npz` file (by its extension) as images, with
/// their labels and class names when the file has them.
pub fn load(path: &Path, options: &Options) -> Result<Loaded> {
    let loaded = match extension(path).as_str() {
        "npz" => load_npz(path, options),
        "npy" => load_npy(path, options),
        other => bail!("{}: not a NumPy file (.npy or .npz), but .{other}", path.display()),
    };
    loaded.with_context(|| format!("reading {}", path.display()))
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

fn load_npy(path: &Path, options: &Options) -> Result<Loaded> {
    let images = images(read_file(path)?, options.layout, "", path)?;
    let labels_path = match &options.labels {
        Some(given) => Some(PathBuf::from(given)),
        None => labels_beside(path),
    };
    let labels = match labels_path {
        Some(file) => {
            let array = read_file(&file).with_context(|| format!("reading labels {}", file.display()))?;
            Some(labels(array, images.len_of(Axis(0)), &file.display().to_string())?)
        }
        None => None,
    };
    Ok(Loaded { images, labels, classes: None })
}

/// The labels file beside `images.npy`: `images_labels.npy`,
/// `images-labels.npy`, and for images named `images`, `x` or `X`,
/// `labels.npy` or `y.npy`.
fn labels_beside(path: &Path) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_str()?;
    let mut names = vec![format!("{stem}_labels.npy"), format!("{stem}-labels.npy")];
    if ["images", "x", "X"].contains(&stem) {
        names.extend(["labels.npy".to_string(), "y.npy".to_string()]);
    }
    names.into_iter().map(|n| path.with_file_name(n)).find(|p| p.is_file())
}

fn load_npz(path: &Path, options: &Options) -> Result<Loaded> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file).context("not a valid .npz (zip) archive")?;
    let names: Vec<String> = archive.file_names().map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string()).collect();
    let pick = |given: &Option<String>, usual: &[&str], what: &str| -> Result<Option<String>> {
        match given {
            Some(name) if names.contains(name) => Ok(Some(name.clone())),
            Some(name) => bail!("no array {name:?} for the {what}; the archive holds {}", names.join(", ")),
            None => Ok(usual.iter().find(|n| names.iter().any(|m| m == *n)).map(|n| n.to_string())),
        }
    };
    let Some(images_name) = pick(&options.images, IMAGE_NAMES, "images")? else {
        bail!(
            "no images array: the archive holds {}; name one with `images:` (usual names: {})",
            names.join(", "),
            IMAGE_NAMES.join(", ")
        );
    };
    let array = read_entry(&mut archive, &images_name)?;
    let images = images(array, options.layout, &format!(" {images_name:?}"), path)?;
    let labels = match pick(&options.labels, LABEL_NAMES, "labels")? {
        Some(name) => Some(labels(read_entry(&mut archive, &name)?, images.len_of(Axis(0)), &name)?),
        None => None,
    };
    let classes = match names.iter().any(|n| n == CLASSES) {
        true => Some(class_names(read_entry(&mut archive, CLASSES)?, labels.as_deref())?),
        false => None,
    };
    Ok(Loaded { images, labels, classes })
}

/// An array of one of the element types images, labels and names come in.
enum Array {
    Bytes(ArrayD<u8>),
    Floats(ArrayD<f64>),
    Integers(ArrayD<i64>),
    Text(Vec<String>, Vec<usize>),
}

impl Array {
    fn shape(&self) -> Vec<usize> {
        match self {
            Array::Bytes(a) => a.shape().to_vec(),
            Array::Floats(a) => a.shape().to_vec(),
            Array::Integers(a) => a.shape().to_vec(),
            Array::Text(_, shape) => shape.clone(),
        }
    }
}

fn read_file(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("opening {}", path.display()))?;
    decode(&bytes).with_context(|| format!("{}: not a valid .npy array", path.display()))
}

/// One array of an archive, read only once its declared size is possible.
/// The most bytes reserved for an archive entry before reading it.
const PREALLOCATED: u64 = 1 << 26;

fn read_entry<R: Read + Seek>(archive: &mut zip::ZipArchive<R>, name: &str) -> Result<Array> {
    let stored = format!("{name}.npy");
    let stored = if archive.index_for_name(&stored).is_some() { stored } else { name.to_string() };
    let mut entry = archive.by_name(&stored).with_context(|| format!("array {name:?}"))?;
    let (size, packed) = (entry.size(), entry.compressed_size());
    ensure!(
        size <= packed.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024),
        "array {name:?} declares {size} bytes from {packed} compressed ones, more than compression can give: \
         the archive is corrupt"
    );
    // The declared size only guides the first allocation: what is held
    // grows with the bytes that really decompress.
    let mut bytes = Vec::with_capacity(size.min(PREALLOCATED) as usize);
    (&mut entry).take(size.saturating_add(1)).read_to_end(&mut bytes).with_context(|| format!("array {name:?}"))?;
    ensure!(bytes.len() as u64 == size, "array {name:?} holds {} bytes, not the {size} it declares", bytes.len());
    decode(&bytes).with_context(|| format!("array {name:?} is not a valid .npy array"))
}

/// Decodes `.npy` bytes, checking that the header's shape and type need
/// exactly the bytes that follow it before ndarray-npy allocates them.
fn decode(bytes: &[u8]) -> Result<Array> {
    let header_len = header_len(bytes)?;
    let header = Header::from_reader(&mut &bytes[..]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let PyValue::String(descriptor) = &header.type_descriptor else {
        bail!("structured arrays are not images or labels (dtype {})", header.type_descriptor);
    };
    let (kind, width) = element(descriptor)?;
    let count = header.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let needed = count.and_then(|n| n.checked_mul(width));
    let held = bytes.len() - header_len;
    ensure!(
        needed == Some(held),
        "the header declares shape {:?} of {descriptor} ({} bytes), but {held} bytes follow it: the file is \
         truncated or corrupt",
        header.shape,
        needed.map_or("too many".to_string(), |n| n.to_string())
    );
    let shape = header.shape.clone();
    Ok(match kind {
        'u' if width == 1 => Array::Bytes(read::<u8>(bytes)?),
        'f' if width == 4 => Array::Floats(read::<f32>(bytes)?.mapv(f64::from)),
        'f' if width == 8 => Array::Floats(read::<f64>(bytes)?),
        'i' | 'u' => Array::Integers(integers(bytes, kind, width)?),
        'U' => Array::Text(text(&bytes[header_len..], width / 4, descriptor.starts_with('>'))?, shape),
        _ => bail!("unsupported element type {descriptor}: images are uint8 or float, labels integers"),
    })
}

/// The length of the header (magic, version, its length, the dictionary),
/// checked to lie within `bytes`.
fn header_len(bytes: &[u8]) -> Result<usize> {
    ensure!(bytes.len() >= 10 && bytes.starts_with(b"\x93NUMPY"), "no .npy header ({} bytes)", bytes.len());
    let (len, prefix) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "header truncated");
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => bail!("unknown .npy format version {v}"),
    };
    ensure!(len <= bytes.len() - prefix, "the header declares {len} bytes, more than the file holds");
    Ok(prefix + len)
}

/// The kind letter and byte width of a dtype such as `<f4`, `|u1`, `<U12`.
fn element(descriptor: &str) -> Result<(char, usize)> {
    let plain = descriptor.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = plain.chars();
    let kind = chars.next().unwrap_or('?');
    let size: usize = chars.as_str().parse().map_err(|_| anyhow::anyhow!("unsupported element type {descriptor}"))?;
    let width = if kind == 'U' { size.checked_mul(4) } else { Some(size) };
    match width {
        Some(w) if w > 0 => Ok((kind, w)),
        _ => bail!("unsupported element type {descriptor}"),
    }
}

fn read<T: ReadableElement>(bytes: &[u8]) -> Result<ArrayD<T>> {
    ArrayD::<T>::read_npy(bytes).map_err(|e| anyhow::anyhow!("{e}"))
}

fn integers(bytes: &[u8], kind: char, width: usize) -> Result<ArrayD<i64>> {
    let wide = |a: ArrayD<u64>| a.mapv(|v| i64::try_from(v).unwrap_or(i64::MAX));
    Ok(match (kind, width) {
        ('i', 1) => read::<i8>(bytes)?.mapv(i64::from),
        ('i', 2) => read::<i16>(bytes)?.mapv(i64::from),
        ('i', 4) => read::<i32>(bytes)?.mapv(i64::from),
        ('i', 8) => read::<i64>(bytes)?,
        ('u', 2) => read::<u16>(bytes)?.mapv(i64::from),
        ('u', 4) => read::<u32>(bytes)?.mapv(i64::from),
        ('u', 8) => wide(read::<u64>(bytes)?),
        _ => bail!("unsupported integer type {kind}{width}"),
    })
}

/// NumPy's fixed-width unicode strings: `chars` UTF-32 code units each,
/// padded with zeros.
fn text(data: &[u8], chars: usize, big_endian: bool) -> Result<Vec<String>> {
    data.chunks_exact(chars * 4)
        .map(|item| {
            item.chunks_exact(4)
                .map(|c| {
                    let unit = [c[0], c[1], c[2], c[3]];
                    if big_endian { u32::from_be_bytes(unit) } else { u32::from_le_bytes(unit) }
                })
                .take_while(|&u| u != 0)
                .map(|u| char::from_u32(u).with_context(|| format!("invalid character U+{u:X} in a string")))
                .collect()
        })
        .collect()
}

/// Pixels in [0, 1] shaped `[N, C, H, W]`, from uint8 or float images in
/// the given or detected layout.
fn images(array: Array, layout: Option<Layout>, what: &str, file: &Path) -> Result<Array4<f32>> {
    let shape = array.shape();
    let pixels: ArrayD<f32> = match array {
        Array::Bytes(a) => a.mapv(|v| f32::from(v) / 255.0),
        Array::Floats(a) => {
            let pixels = a.mapv(|v| v as f32);
            let outside = pixels.iter().filter(|v| !(0.0..=1.0).contains(*v)).count();
            if outside > 0 {
                let (lo, hi) = a.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
                bail!(
                    "images{what}: {outside} of {} float pixel values are outside [0, 1] (found values from {lo} \
                     to {hi}); give pixels in [0, 1], or uint8 in 0 to 255",
                    pixels.len()
                );
            }
            pixels
        }
        Array::Integers(_) | Array::Text(..) => {
            bail!("images{what} must be uint8 (0 to 255) or float (0 to 1), shaped {shape:?}")
        }
    };
    let four = match shape.len() {
        3 => pixels.insert_axis(Axis(1)),
        4 => pixels,
        _ => bail!("images{what} are shaped {shape:?}; expected [N, C, H, W], [N, H, W, C] or [N, H, W]"),
    };
    let four = four.into_dimensionality::<ndarray::Ix4>()?;
    let layout = match (layout, shape.len()) {
        (_, 3) | (Some(Layout::Nchw), _) => Layout::Nchw,
        (Some(Layout::Nhwc), _) => Layout::Nhwc,
        (None, _) => detect(&shape, &format!("{}: images{what}", file.display())),
    };
    Ok(match layout {
        Layout::Nchw => four.as_standard_layout().into_owned(),
        Layout::Nhwc => four.permuted_axes([0, 3, 1, 2]).as_standard_layout().into_owned(),
    })
}

/// Channels last when the last axis has 1 or 3 of them and the second
/// does not; says so, since a guess about axes deserves a word.
fn detect(shape: &[usize], what: &str) -> Layout {
    let channels = |d: usize| d == 1 || d == 3;
    if channels(shape[3]) && !channels(shape[1]) {
        tracing::warn!("{what} shaped {shape:?}: read as NHWC (channels last); give layout: \"nchw\" if not");
        return Layout::Nhwc;
    }
    if !channels(shape[1]) {
        tracing::warn!("{what} shaped {shape:?}: read as NCHW ({} channels); give layout: \"nhwc\" if not", shape[1]);
    }
    Layout::Nchw
}

/// Class indices, one per image.
fn labels(array: Array, count: usize, what: &str) -> Result<Vec<Label>> {
    let shape = array.shape();
    let Array::Integers(values) = (match array {
        Array::Bytes(a) => Array::Integers(a.mapv(i64::from)),
        other => other,
    }) else {
        bail!("labels {what} must be integers (class indices), shaped [N]");
    };
    let values = values
        .into_dimensionality::<Ix1>()
        .map_err(|_| anyhow::anyhow!("labels {what} are shaped {shape:?}; expected one class index per image, [N]"))?;
    ensure!(values.len() == count, "labels {what}: {} labels for {count} images", values.len());
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            Label::try_from(v)
                .map_err(|_| anyhow::anyhow!("labels {what}: label {v} at index {i} is not a class index"))
        })
        .collect()
}

/// The names of the classes, at least one per label used.
fn class_names(array: Array, labels: Option<&[Label]>) -> Result<Vec<String>> {
    let Array::Text(names, shape) = array else { bail!("array {CLASSES:?} must hold strings, the class names") };
    ensure!(shape.len() == 1, "array {CLASSES:?} is shaped {shape:?}; expected a list of names");
    if let Some(&top) = labels.and_then(|l| l.iter().max()) {
        ensure!((top as usize) < names.len(), "array {CLASSES:?} names {} classes, but a label is {top}", names.len());
    }
    Ok(names)
}

/// Writes images (`[N, C, H, W]` f32), labels and class names as NumPy
/// files, atomically: an `.npz` holds `images`, `labels` and `classes`;
/// an `.npy` holds the images, with the labels beside it in
/// `<stem>_labels.npy` (where [`load`] finds them).
pub fn save(path: &Path, images: ArrayView4<f32>, labels: Option<&[Label]>, classes: Option<&[String]>) -> Result<()> {
    match extension(path).as_str() {
        "npz" => crate::artefact::write_atomic_with(path, |file| write_npz(file, images, labels, classes)),
        "npy" => {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("images");
            crate::artefact::write_atomic_with(path, |file| Ok(images.write_npy(file)?))?;
            match labels {
                Some(labels) => {
                    let labels_path = path.with_file_name(format!("{stem}_labels.npy"));
                    let array = Array1::from_iter(labels.iter().map(|&l| i64::from(l)));
                    crate::artefact::write_atomic_with(&labels_path, |file| Ok(array.write_npy(file)?))
                }
                None => Ok(()),
            }
        }
        other => bail!("{}: NumPy files end in .npy or .npz, not .{other}", path.display()),
    }
}

fn write_npz(
    file: &mut File,
    images: ArrayView4<f32>,
    labels: Option<&[Label]>,
    classes: Option<&[String]>,
) -> Result<()> {
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("images.npy", options)?;
    images.as_standard_layout().write_npy(&mut zip)?;
    if let Some(labels) = labels {
        zip.start_file("labels.npy", options)?;
        Array1::from_iter(labels.iter().map(|&l| i64::from(l))).write_npy(&mut zip)?;
    }
    if let Some(names) = classes {
        zip.start_file(format!("{CLASSES}.npy"), options)?;
        write_text(&mut zip, names)?;
    }
    zip.finish()?;
    Ok(())
}

/// Strings as NumPy writes them: `<U{longest}`, UTF-32, zero-padded.
fn write_text(out: &mut impl Write, names: &[String]) -> Result<()> {
    let chars = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max(1);
    let header = Header {
        type_descriptor: PyValue::String(format!("<U{chars}")),
        layout: Order::Standard,
        shape: vec![names.len()],
    };
    out.write_all(&header.to_bytes().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    for name in names {
        let mut units: Vec<u32> = name.chars().map(u32::from).collect();
        units.resize(chars, 0);
        out.write_all(&units.iter().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    Ok(())
}
