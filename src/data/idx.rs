//! The IDX file format of MNIST and Fashion-MNIST: a big-endian header
//! (magic number, then one u32 per dimension) followed by the raw u8 values.
//!
//! Files may be gzip-compressed or not. Compression is detected from the
//! gzip magic bytes rather than from the file name, because mirrors and
//! HTTP servers sometimes decompress `.gz` files on the way, and users
//! rename files. Every error names the file, so a corrupt download can be
//! found and deleted.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use flate2::read::MultiGzDecoder;
use ndarray::Array4;

/// Magic number of an IDX file of u8 values with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 values with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Labels of MNIST and Fashion-MNIST are classes 0 to 9.
const MAX_LABEL: u8 = 9;

/// Images decoded from an IDX3 file: `pixels` has shape `[count, 1, rows, cols]`
/// with values in [0, 1].
#[derive(Debug, Clone)]
pub struct Images {
    pub rows: usize,
    pub cols: usize,
    pub pixels: Array4<f32>,
}

/// Whether `path` starts with the gzip magic bytes.
pub fn is_gzip(path: &Path) -> Result<bool> {
    let mut reader = open(path)?;
    let head = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?;
    Ok(head.starts_with(&GZIP_MAGIC))
}

/// A reader of the file's payload: decompressed when the file is gzip, as
/// is otherwise. Used both for decoding and for checksums, so that both see
/// the same bytes whatever the compression.
pub fn payload_reader(path: &Path) -> Result<Box<dyn Read>> {
    let mut reader = open(path)?;
    let head = reader.fill_buf().with_context(|| format!("reading {}", path.display()))?;
    if head.starts_with(&GZIP_MAGIC) { Ok(Box::new(MultiGzDecoder::new(reader))) } else { Ok(Box::new(reader)) }
}

/// The payload of `path`, decompressed when it is gzip: the header, then
/// at most one byte more than the header declares (enough to tell that the
/// file is too long). So a corrupt header or a gzip bomb never makes advx
/// read, or allocate, more than the declared size, and a header that
/// declares more than the file holds costs no more than the file.
pub fn read_payload(path: &Path) -> Result<Vec<u8>> {
    let corrupt = || format!("{}: corrupt or truncated file", path.display());
    let mut reader = payload_reader(path)?;
    let mut bytes = Vec::new();
    (&mut reader).take(HEADER_PREFIX as u64).read_to_end(&mut bytes).with_context(corrupt)?;
    let Some(header_len) = header_len(&bytes) else { return Ok(bytes) };
    (&mut reader).take((header_len - bytes.len()) as u64).read_to_end(&mut bytes).with_context(corrupt)?;
    let Some(declared) = declared_len(&bytes).filter(|_| bytes.len() == header_len) else { return Ok(bytes) };
    let rest = declared.saturating_add(1) - bytes.len();
    bytes.reserve_exact(rest.min(size_hint(path)));
    reader.take(rest as u64).read_to_end(&mut bytes).with_context(corrupt)?;
    Ok(bytes)
}

/// The magic number and the first dimension: enough to know the header's length.
const HEADER_PREFIX: usize = 8;

/// The header's length for a known magic number (one u32 per dimension).
fn header_len(prefix: &[u8]) -> Option<usize> {
    match be_u32(prefix.get(..4)?, 0) {
        IMAGES_MAGIC => Some(16),
        LABELS_MAGIC => Some(8),
        _ => None,
    }
}

/// The length of the whole file as its complete header declares it, if
/// that fits in memory.
fn declared_len(header: &[u8]) -> Option<usize> {
    let count = header.get(4..)?.chunks_exact(4).try_fold(1usize, |acc, d| acc.checked_mul(be_u32(d, 0) as usize))?;
    count.checked_add(header.len())
}

/// Reads an IDX3 file of u8 images into f32 pixels in [0, 1].
pub fn read_images(path: &Path) -> Result<Images> {
    let payload = read_payload(path)?;
    decode_images(&payload).with_context(|| format!("{}: not a valid IDX image file", path.display()))
}

/// Reads an IDX1 file of u8 labels, each of which must be a class 0 to 9.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let payload = read_payload(path)?;
    decode_labels(&payload).with_context(|| format!("{}: not a valid IDX label file", path.display()))
}

/// The number of items (images or labels) an IDX file's header declares,
/// reading only the header: cheap enough for `advx data list`.
pub fn read_count(path: &Path) -> Result<usize> {
    let mut header = [0u8; 8];
    payload_reader(path)?
        .read_exact(&mut header)
        .with_context(|| format!("{}: file too short for an IDX header", path.display()))?;
    let magic = be_u32(&header, 0);
    ensure!(
        magic == IMAGES_MAGIC || magic == LABELS_MAGIC,
        "{}: not an IDX file of u8 images or labels (magic 0x{magic:08x})",
        path.display()
    );
    Ok(be_u32(&header, 4) as usize)
}

/// Decodes an IDX3 payload. Checks the magic number and that the length is
/// exactly what the header declares, so truncated or padded files are caught.
pub fn decode_images(payload: &[u8]) -> Result<Images> {
    check_magic(payload, IMAGES_MAGIC, "images")?;
    ensure!(payload.len() >= 16, "header truncated: {} bytes, expected 16", payload.len());
    let [count, rows, cols] = [4, 8, 12].map(|at| be_u32(payload, at) as usize);
    let body = body_of(payload, 16, &[count, rows, cols])?;
    // One pass over the bytes into one allocation: no per-pixel work beyond the divide.
    let pixels: Vec<f32> = body.iter().map(|&b| f32::from(b) / 255.0).collect();
    let pixels = Array4::from_shape_vec((count, 1, rows, cols), pixels)?;
    Ok(Images { rows, cols, pixels })
}

/// Decodes an IDX1 payload of labels, rejecting any label above 9.
pub fn decode_labels(payload: &[u8]) -> Result<Vec<u8>> {
    check_magic(payload, LABELS_MAGIC, "labels")?;
    ensure!(payload.len() >= 8, "header truncated: {} bytes, expected 8", payload.len());
    let count = be_u32(payload, 4) as usize;
    let body = body_of(payload, 8, &[count])?;
    if let Some(i) = body.iter().position(|&l| l > MAX_LABEL) {
        bail!("label {} at index {i} is not a class 0 to {MAX_LABEL}", body[i]);
    }
    Ok(body.to_vec())
}

/// Opens `path` for buffered reading, naming it on failure.
fn open(path: &Path) -> Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 16, file))
}

/// A capacity guess for the payload: the file size, times four when it is
/// probably compressed (MNIST compresses about 6:1, so this saves most of
/// the regrowth without over-allocating much).
fn size_hint(path: &Path) -> usize {
    let len = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
    let gz = is_gzip(path).unwrap_or(false);
    if gz { len.saturating_mul(4) } else { len }
}

/// Fails unless the payload starts with `expected`, saying what it looks
/// like instead (a label file given as images is a common mix-up).
fn check_magic(payload: &[u8], expected: u32, what: &str) -> Result<()> {
    ensure!(payload.len() >= 4, "file too short for an IDX header ({} bytes)", payload.len());
    let magic = be_u32(payload, 0);
    if magic == expected {
        return Ok(());
    }
    let looks_like = match magic {
        IMAGES_MAGIC => " (an IDX image file)",
        LABELS_MAGIC => " (an IDX label file)",
        _ if payload.starts_with(&GZIP_MAGIC) => " (still gzip-compressed)",
        _ => "",
    };
    bail!("wrong magic number 0x{magic:08x}{looks_like}; IDX {what} have 0x{expected:08x}")
}

/// The data after a header of `header_len` bytes, checked to hold exactly
/// the product of `dims` bytes.
fn body_of<'a>(payload: &'a [u8], header_len: usize, dims: &[usize]) -> Result<&'a [u8]> {
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("header dimensions {dims:?} overflow"))?;
    let actual = payload.len() - header_len;
    ensure!(actual >= expected, "truncated: header declares {dims:?} = {expected} bytes of data, file has {actual}");
    ensure!(actual == expected, "unexpected trailing bytes after the {expected} declared by the header {dims:?}");
    Ok(&payload[header_len..])
}

/// The big-endian u32 at byte `at`; callers check the length first.
fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// An IDX3 payload of `count` images of `rows` x `cols`, pixel values
    /// cycling through 0..=255 so decoding can be checked exactly.
    pub(crate) fn images_payload(count: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        for v in [IMAGES_MAGIC, count, rows, cols] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let n = (count * rows * cols) as usize;
        bytes.extend((0..n).map(|i| (i % 256) as u8));
        bytes
    }

    /// An IDX1 payload holding `labels`.
    pub(crate) fn labels_payload(labels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for v in [LABELS_MAGIC, labels.len() as u32] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend_from_slice(labels);
        bytes
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The full error chain, as the CLI prints it.
    fn message(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn reads_raw_and_gzip_images_alike() {
        let dir = tempfile::tempdir().unwrap();
        let payload = images_payload(3, 4, 5);
        let raw = write(dir.path(), "raw-idx3-ubyte", &payload);
        let gz = write(dir.path(), "raw-idx3-ubyte.gz", &gzip(&payload));
        for path in [raw, gz] {
            let images = read_images(&path).unwrap();
            assert_eq!(images.pixels.shape(), &[3, 1, 4, 5]);
            assert_eq!((images.rows, images.cols), (4, 5));
            assert_eq!(images.pixels[[0, 0, 0, 1]], 1.0 / 255.0);
            assert_eq!(images.pixels[[2, 0, 3, 4]], 59.0 / 255.0);
        }
    }

    #[test]
    fn compression_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let labels = [1, 2, 3];
        let raw_named_gz = write(dir.path(), "labels.gz", &labels_payload(&labels));
        let gz_named_raw = write(dir.path(), "labels", &gzip(&labels_payload(&labels)));
        assert!(!is_gzip(&raw_named_gz).unwrap());
        assert!(is_gzip(&gz_named_raw).unwrap());
        assert_eq!(read_labels(&raw_named_gz).unwrap(), labels);
        assert_eq!(read_labels(&gz_named_raw).unwrap(), labels);
    }

    #[test]
    fn pixels_span_zero_to_one() {
        let images = decode_images(&images_payload(1, 16, 16)).unwrap();
        let max = images.pixels.iter().copied().fold(f32::MIN, f32::max);
        let min = images.pixels.iter().copied().fold(f32::MAX, f32::min);
        assert_eq!((min, max), (0.0, 1.0));
    }

    #[test]
    fn truncated_raw_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let payload = images_payload(2, 3, 3);
        let path = write(dir.path(), "short-images", &payload[..payload.len() - 1]);
        let e = message(read_images(&path).unwrap_err());
        assert!(e.contains("short-images") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn truncated_gzip_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gz = gzip(&images_payload(20, 28, 28));
        let path = write(dir.path(), "cut.gz", &gz[..gz.len() / 2]);
        let e = message(read_images(&path).unwrap_err());
        assert!(e.contains("cut.gz"), "{e}");
    }

    #[test]
    fn bad_gzip_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = GZIP_MAGIC.to_vec();
        bytes.extend_from_slice(b"this is not deflate data at all");
        let path = write(dir.path(), "garbage.gz", &bytes);
        let e = message(read_labels(&path).unwrap_err());
        assert!(e.contains("garbage.gz"), "{e}");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut payload = labels_payload(&[1, 2]);
        payload.push(3);
        let e = message(decode_labels(&payload).unwrap_err());
        assert!(e.contains("trailing"), "{e}");
    }

    #[test]
    fn flipped_magic_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut payload = images_payload(1, 2, 2);
        payload[2] ^= 0xff;
        let path = write(dir.path(), "flipped", &payload);
        let e = message(read_images(&path).unwrap_err());
        assert!(e.contains("flipped") && e.contains("magic"), "{e}");
    }

    #[test]
    fn labels_given_as_images_are_named_as_such() {
        let e = message(decode_images(&labels_payload(&[0, 1])).unwrap_err());
        assert!(e.contains("IDX label file"), "{e}");
        let e = message(decode_labels(&images_payload(1, 1, 1)).unwrap_err());
        assert!(e.contains("IDX image file"), "{e}");
    }

    #[test]
    fn label_above_nine_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "labels-bad", &labels_payload(&[0, 9, 10, 1]));
        let e = message(read_labels(&path).unwrap_err());
        assert!(e.contains("labels-bad") && e.contains("label 10 at index 2"), "{e}");
    }

    #[test]
    fn empty_and_tiny_files_are_errors_not_panics() {
        for bytes in [&[][..], &[0, 0, 8], &[0, 0, 8, 3, 0, 0], &[0, 0, 8, 1, 0]] {
            assert!(decode_images(bytes).is_err());
            assert!(decode_labels(bytes).is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "empty", &[]);
        let e = message(read_count(&path).unwrap_err());
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn huge_declared_dimensions_are_an_error_not_an_allocation() {
        let mut payload = Vec::new();
        for v in [IMAGES_MAGIC, u32::MAX, u32::MAX, u32::MAX] {
            payload.extend_from_slice(&v.to_be_bytes());
        }
        assert!(decode_images(&payload).is_err());
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let e = message(read_images(Path::new("/nonexistent/advx-images")).unwrap_err());
        assert!(e.contains("/nonexistent/advx-images"), "{e}");
    }

    #[test]
    fn count_reads_only_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "l.gz", &gzip(&labels_payload(&[4; 7])));
        assert_eq!(read_count(&path).unwrap(), 7);
        let path = write(dir.path(), "i", &images_payload(5, 2, 2));
        assert_eq!(read_count(&path).unwrap(), 5);
    }
}
