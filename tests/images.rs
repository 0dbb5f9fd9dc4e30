//! Image data from files: NumPy arrays (`numpy "x.npz"`), written by NumPy
//! itself and by advx's `save`, read back identically; every malformed
//! file an error that names it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use advx::session::{ImageSet, Session, Value};
use ndarray::Array4;
use ndarray_npy::WriteNpyExt;

fn session(dir: &Path) -> Session {
    Session::new().unwrap().with_base_dir(dir).with_device(advx::runtime::Device::Cpu)
}

fn set(s: &Session, name: &str) -> Arc<ImageSet> {
    s.get(name).and_then(Value::as_images).unwrap_or_else(|| panic!("{name} is not an image set"))
}

/// The cell's error message, its wrapped lines joined.
fn error(s: &mut Session, code: &str) -> String {
    let rendered = s.execute(code).error.expect("the cell should fail").render(false);
    rendered.lines().map(|l| l.trim_start_matches([' ', '│', '×'])).collect::<Vec<_>>().join(" ")
}

fn python(script: &str, dir: &Path) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = Command::new(python).arg("-c").arg(script).current_dir(dir).output().expect("running python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn write_npy(path: &Path, array: &impl WriteNpyExt) {
    array.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

/// A small RGB set with labels past 255 and a name for each class.
fn rgb_set() -> ImageSet {
    let images = Array4::from_shape_fn((4, 3, 5, 6), |(n, c, h, w)| ((n * 7 + c * 3 + h * 11 + w) % 97) as f32 / 96.0);
    let classes: Arc<[String]> = (0..1001).map(|i| format!("class {i} é")).collect();
    ImageSet { classes: Some(classes), ..ImageSet::new("rgb", images, Some(vec![0, 1000, 256, 7])) }
}

#[test]
fn an_npz_written_by_numpy_loads_channels_last_with_labels_and_class_names() {
    let dir = tempfile::tempdir().unwrap();
    python(
        "import numpy as np\n\
         x = (np.arange(5*8*6*3) % 256).astype(np.uint8).reshape(5, 8, 6, 3)\n\
         np.savez_compressed('d.npz', x=x, y=np.array([3, 1500, 0, 2, 1]), classes=np.array(['cat'] * 1501))\n",
        dir.path(),
    );
    let mut s = session(dir.path());
    s.run("let d = numpy \"d.npz\"").unwrap();
    let d = set(&s, "d");
    assert_eq!(d.images.shape(), &[5, 3, 8, 6], "NHWC detected from the last axis");
    let flat = |n: usize, h: usize, w: usize, c: usize| (((n * 8 + h) * 6 + w) * 3 + c) % 256;
    assert_eq!(d.images[[4, 2, 7, 5]], flat(4, 7, 5, 2) as f32 / 255.0);
    assert_eq!(d.images[[1, 0, 3, 1]], flat(1, 3, 1, 0) as f32 / 255.0);
    assert_eq!(d.labels.as_deref(), Some(&[3, 1500, 0, 2, 1][..]));
    assert_eq!(d.classes.as_ref().map(|c| c.len()), Some(1501));
    // The same file read as channels first is another shape.
    s.run("let first = numpy \"d.npz\" { layout: \"nchw\" }").unwrap();
    assert_eq!(set(&s, "first").images.shape(), &[5, 8, 6, 3]);
    // And NumPy reads what advx saves.
    s.run("save d[1..3] to \"back.npz\"").unwrap();
    python(
        "import numpy as np\n\
         b = np.load('back.npz'); x = np.load('d.npz')['x']\n\
         assert b['images'].dtype == np.float32 and b['images'].shape == (2, 3, 8, 6), b['images'].shape\n\
         assert np.array_equal(b['images'], (x[1:3].transpose(0, 3, 1, 2) / np.float32(255)).astype(np.float32))\n\
         assert list(b['labels']) == [1500, 0] and b['classes'][1500] == 'cat'\n",
        dir.path(),
    );
}

#[test]
fn a_saved_set_loads_back_identically_from_npz_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let original = rgb_set();
    for file in ["adv.npz", "adv.npy"] {
        let path = dir.path().join(file);
        advx::data::numpy::save(&path, original.images.view(), original.labels.as_deref(), original.classes.as_deref())
            .unwrap();
        let mut s = session(dir.path());
        s.run(&format!("let back = numpy \"{file}\"")).unwrap();
        let back = set(&s, "back");
        assert_eq!(back.images, original.images, "{file}: the same pixels, bit for bit");
        assert_eq!(back.labels, original.labels, "{file}");
        let expected_classes = if file.ends_with("npz") { original.classes.clone() } else { None };
        assert_eq!(back.classes, expected_classes, "{file}: an .npy holds no class names");
    }
    assert!(dir.path().join("adv_labels.npy").is_file(), "an .npy's labels beside it");
}

#[test]
fn save_writes_an_attack_or_a_slice_through_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let images = Array4::from_shape_fn((6, 1, 4, 4), |(n, _, h, w)| (n + h + w) as f32 / 12.0);
    write_npy(&dir.path().join("x.npy"), &images);
    write_npy(&dir.path().join("x_labels.npy"), &ndarray::arr1(&[5u8, 4, 3, 2, 1, 0]));
    let mut s = session(dir.path());
    s.run("let x = numpy \"x.npy\"\nsave (x where label < 3) to \"small.npz\"\nlet y = numpy \"small.npz\"").unwrap();
    let y = set(&s, "y");
    assert_eq!(y.labels.as_deref(), Some(&[2, 1, 0][..]));
    assert_eq!(y.images, images.slice(ndarray::s![3.., .., .., ..]).to_owned());
    let e = error(&mut s, "save [1, 2] to \"list.npz\"");
    assert!(e.contains("a list is not an image set"), "{e}");
}

#[test]
fn float_pixels_outside_the_box_are_counted_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = Array4::<f64>::from_elem((2, 1, 3, 3), 0.5);
    images[[0, 0, 0, 0]] = -0.5;
    images[[1, 0, 2, 2]] = 255.0;
    write_npy(&dir.path().join("wide.npy"), &images);
    let e = error(&mut session(dir.path()), "let w = numpy \"wide.npy\"");
    assert!(e.contains("wide.npy") && e.contains("2 of 18 float pixel values are outside [0, 1]"), "{e}");
    assert!(e.contains("from -0.5 to 255"), "{e}");
}

#[test]
fn truncated_lying_and_mismatched_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let images = Array4::<u8>::from_elem((4, 1, 8, 8), 9);
    let good = dir.path().join("good.npy");
    write_npy(&good, &images);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.path().join("short.npy"), &bytes[..bytes.len() - 10]).unwrap();
    // The same data under a header that claims 10^12 images: never allocated.
    python(
        "import numpy.lib.format as f\n\
         o = open('lying.npy', 'wb')\n\
         f.write_array_header_1_0(o, {'descr': '|u1', 'fortran_order': False, 'shape': (10**12, 1, 8, 8)})\n\
         o.write(bytes(256))\n",
        dir.path(),
    );
    std::fs::write(dir.path().join("junk.npz"), b"PK not a zip").unwrap();
    write_npy(&dir.path().join("good_labels.npy"), &ndarray::arr1(&[1i64, 2, 3]));
    write_npy(&dir.path().join("negative.npy"), &ndarray::arr1(&[1i64, -2, 3, 0]));
    let mut s = session(dir.path());
    for (code, wanted) in [
        ("numpy \"short.npy\"", "short.npy"),
        ("numpy \"lying.npy\"", "shape [1000000000000, 1, 8, 8] of |u1 (64000000000000 bytes), but 256 bytes"),
        ("numpy \"junk.npz\"", "junk.npz"),
        ("numpy \"good.npy\"", "3 labels for 4 images"),
        ("numpy \"good.npy\" labels: \"negative.npy\"", "label -2 at index 1 is not a class index"),
        ("numpy \"good.npy\" { layout: \"nwhc\" }", "unknown layout"),
        ("numpy \"missing.npy\"", "missing.npy"),
    ] {
        let e = error(&mut s, &format!("let d = {code}"));
        assert!(e.contains(wanted), "{code}: {e}");
    }
    let e = error(&mut s, "let d = numpy \"short.npy\"");
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn an_npz_without_a_known_images_name_lists_its_arrays() {
    let dir = tempfile::tempdir().unwrap();
    python(
        "import numpy as np\nnp.savez('odd.npz', pixels=np.zeros((2, 1, 4, 4), np.float32), t=np.arange(2))\n",
        dir.path(),
    );
    let mut s = session(dir.path());
    let e = error(&mut s, "let d = numpy \"odd.npz\"");
    assert!(e.contains("pixels, t") && e.contains("`images:`"), "{e}");
    s.run("let d = numpy \"odd.npz\" { images: \"pixels\", labels: \"t\" }").unwrap();
    assert_eq!(set(&s, "d").labels.as_deref(), Some(&[0, 1][..]));
    let e = error(&mut s, "let d = numpy \"odd.npz\" { images: \"pixel\" }");
    assert!(e.contains("no array \"pixel\""), "{e}");
}
