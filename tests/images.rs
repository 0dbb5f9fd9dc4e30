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

/// Whether `message` says `wanted`, however its lines were wrapped.
fn has(message: &str, wanted: &str) -> bool {
    let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    bare(message).contains(&bare(wanted))
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
    assert!(has(&e, "a list is not an image set"), "{e}");
}

#[test]
fn float_pixels_outside_the_box_are_counted_with_their_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = Array4::<f64>::from_elem((2, 1, 3, 3), 0.5);
    images[[0, 0, 0, 0]] = -0.5;
    images[[1, 0, 2, 2]] = 255.0;
    write_npy(&dir.path().join("wide.npy"), &images);
    let e = error(&mut session(dir.path()), "let w = numpy \"wide.npy\"");
    assert!(has(&e, "wide.npy") && has(&e, "2 of 18 float pixel values are outside [0, 1]"), "{e}");
    assert!(has(&e, "from -0.5 to 255"), "{e}");
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
        assert!(has(&e, wanted), "{code}: {e}");
    }
    let e = error(&mut s, "let d = numpy \"short.npy\"");
    assert!(has(&e, "truncated"), "{e}");
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
    assert!(has(&e, "pixels, t") && has(&e, "`images:`"), "{e}");
    s.run("let d = numpy \"odd.npz\" { images: \"pixels\", labels: \"t\" }").unwrap();
    assert_eq!(set(&s, "d").labels.as_deref(), Some(&[0, 1][..]));
    let e = error(&mut s, "let d = numpy \"odd.npz\" { images: \"pixel\" }");
    assert!(has(&e, "no array \"pixel\""), "{e}");
}

/// Writes an RGB image whose pixel (x, y) is `(x * 40 + seed, y * 50, 200 - seed)`.
fn rgb_file(path: &Path, (w, h): (u32, u32), seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let image = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 40 + seed, y as u8 * 50, 200 - seed]));
    image.save(path).unwrap();
}

#[test]
fn a_folder_per_class_loads_with_sorted_names_as_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pets");
    rgb_file(&root.join("dog/b.png"), (6, 4), 3);
    rgb_file(&root.join("dog/a.bmp"), (6, 4), 2);
    rgb_file(&root.join("cat/z.png"), (6, 4), 1);
    std::fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
    let mut s = session(dir.path());
    s.run("let pets = images \"pets\"").unwrap();
    let pets = set(&s, "pets");
    assert_eq!(pets.images.shape(), &[3, 3, 4, 6]);
    assert_eq!(pets.labels.as_deref(), Some(&[0, 1, 1][..]), "cat, then dog's a.bmp and b.png");
    assert_eq!(pets.classes.as_deref(), Some(&["cat".to_string(), "dog".to_string()][..]));
    // Pixel (x 5, y 3) of dog/b.png, channel by channel, exactly as stored.
    let expected = [5.0 * 40.0 + 3.0, 3.0 * 50.0, 197.0].map(|v: f32| v / 255.0);
    assert_eq!([0, 1, 2].map(|c| pets.images[[2, c, 3, 5]]), expected);
    s.run("let gray = images \"pets\" { channels: \"gray\", size: 2 }").unwrap();
    assert_eq!(set(&s, "gray").images.shape(), &[3, 1, 2, 2], "the shorter side to 2, the centre 2x2");
}

#[test]
fn a_flat_folder_takes_its_labels_from_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("flat");
    for (i, name) in ["b.png", "a.png", "c.jpg"].into_iter().enumerate() {
        let image = image::GrayImage::from_fn(5, 5, |x, y| image::Luma([(x * 10 + y + i as u32 * 60) as u8]));
        std::fs::create_dir_all(&root).unwrap();
        image.save(root.join(name)).unwrap();
    }
    std::fs::write(root.join("labels.csv"), "file,label\na.png,7\nb.png,1200\nc.jpg,7\n").unwrap();
    let mut s = session(dir.path());
    s.run("let flat = images \"flat\"").unwrap();
    let flat = set(&s, "flat");
    assert_eq!(flat.images.shape(), &[3, 1, 5, 5], "gray images read as one channel");
    assert_eq!(flat.labels.as_deref(), Some(&[7, 1200, 7][..]), "in the CSV's order");
    assert_eq!(flat.images[[1, 0, 2, 4]], (4 * 10 + 2) as f32 / 255.0, "b.png's pixel (x 4, y 2)");
    std::fs::write(root.join("names.csv"), "a.png,zebra\nb.png,ant\nc.jpg,zebra\n").unwrap();
    s.run("let named = images \"flat\" labels: \"flat/names.csv\"").unwrap();
    let named = set(&s, "named");
    assert_eq!(named.labels.as_deref(), Some(&[1, 0, 1][..]));
    assert_eq!(named.classes.as_deref(), Some(&["ant".to_string(), "zebra".to_string()][..]));
    std::fs::write(root.join("short.csv"), "a.png,1\n").unwrap();
    let e = error(&mut s, "let x = images \"flat\" labels: \"flat/short.csv\"");
    assert!(has(&e, "short.csv has no label for") && has(&e, "b.png"), "{e}");
}

#[test]
fn sizes_that_differ_and_corrupt_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mixed");
    rgb_file(&root.join("one/a.png"), (6, 4), 0);
    rgb_file(&root.join("two/b.png"), (5, 5), 0);
    let mut s = session(dir.path());
    let e = error(&mut s, "let m = images \"mixed\"");
    assert!(has(&e, "two/b.png is 5x5 but") && has(&e, "one/a.png is 6x4") && has(&e, "size: N"), "{e}");
    s.run("let m = images \"mixed\" size: 3").unwrap();
    assert_eq!(set(&s, "m").images.shape(), &[2, 3, 3, 3]);
    std::fs::write(root.join("two/c.png"), b"\x89PNG\r\n\x1a\n but not really").unwrap();
    let e = error(&mut s, "let m = images \"mixed\" size: 3");
    assert!(has(&e, "two/c.png") && has(&e, "not a readable"), "{e}");
    let e = error(&mut s, "let m = images \"nowhere\"");
    assert!(has(&e, "nowhere: no such folder"), "{e}");
    let e = error(&mut s, "let m = images \"mixed\" { channels: \"cmyk\" }");
    assert!(has(&e, "unknown channels"), "{e}");
}

#[test]
fn a_set_saved_as_a_png_folder_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let original = rgb_set();
    let labels = [0, 1000, 256, 7];
    // Names that do not sort in label order, or none: folders named by number.
    for classes in [original.classes.clone(), None] {
        let saved = ImageSet { classes, ..rgb_set() };
        let out = dir.path().join("out");
        advx::data::folder::save(&out, saved.images.view(), saved.labels.as_deref(), saved.classes.as_deref()).unwrap();
        let mut s = session(dir.path());
        s.run("let back = images \"out\"").unwrap();
        let back = set(&s, "back");
        let rounded = saved.images.mapv(|v| (v * 255.0).round() / 255.0);
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|&i| labels[i]);
        assert_eq!(back.images, rounded.select(ndarray::Axis(0), &order), "pixels rounded to 1/255");
        let sorted: Vec<u32> = order.iter().map(|&i| labels[i]).collect();
        assert_eq!(back.labels.as_deref(), Some(&sorted[..]), "the labels, in class order");
        assert_eq!(back.classes.as_ref().map(|c| c.len()), Some(1001), "a folder for every class");
    }
    // Names that sort in label order are the folders' names.
    let mut s = session(dir.path());
    s.run("let pets = numpy \"pets.npz\"").unwrap_err();
    let names: Arc<[String]> = ["ant", "bee"].map(String::from).into();
    let pets =
        ImageSet { classes: Some(names.clone()), ..ImageSet::new("p", Array4::zeros((2, 1, 3, 3)), Some(vec![1, 0])) };
    advx::data::numpy::save(&dir.path().join("pets.npz"), pets.images.view(), pets.labels.as_deref(), Some(&names))
        .unwrap();
    s.run("let pets = numpy \"pets.npz\"\nsave pets to \"pets/\"\nlet back = images \"pets\"").unwrap();
    assert!(dir.path().join("pets/bee/0.png").is_file() && dir.path().join("pets/ant/1.png").is_file());
    assert_eq!(set(&s, "back").classes.as_deref(), Some(&names[..]));
    assert_eq!(set(&s, "back").labels.as_deref(), Some(&[0, 1][..]));
    let e = error(&mut s, "save pets - 0.5 to \"diff/\"");
    assert!(has(&e, "save a difference"), "{e}");
}

/// The error column of `advx eval`'s row for the model.
fn eval_error(data: &str, extra: &[&str]) -> String {
    let model = "models/mnist/fc100-100-10.onnx";
    let out = Command::new(env!("CARGO_BIN_EXE_advx"))
        .args(["eval", model, "--device", "cpu", "--data", data])
        .args(extra)
        .output()
        .expect("advx runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let row = stdout.lines().find(|l| l.starts_with(model)).unwrap_or_else(|| panic!("no row: {stdout}"));
    row.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn advx_eval_takes_a_png_folder_or_a_numpy_file_as_data() {
    let test = advx::data::load("mnist", advx::data::Split::Test).unwrap().slice(0..300).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pngs = dir.path().join("pngs");
    advx::data::folder::save(&pngs, test.images.view(), Some(&test.labels), None).unwrap();
    let npz = dir.path().join("test.npz");
    advx::data::numpy::save(&npz, test.images.view(), Some(&test.labels), None).unwrap();
    let direct = eval_error("mnist:test", &["--limit", "300"]);
    assert_eq!(eval_error(&format!("images:{}", pngs.display()), &[]), direct, "PNG keeps MNIST's bytes exactly");
    assert_eq!(eval_error(&format!("numpy:{}", npz.display()), &[]), direct);
}

/// input [N, 3, 4, 4] -> Flatten (the layer `flat`) -> Gemm -> scores [N, 5].
fn rgb_model(path: &Path) {
    use advx::onnx::builder::{Elem, GraphBuilder, attr};
    use advx::onnx::shape::Dim::{Batch, Fixed};
    let mut b = GraphBuilder::new();
    b.input("input", Elem::F32, &[Batch, Fixed(3), Fixed(4), Fixed(4)]);
    let w =
        b.const_f32("w", &ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[5, 48]), |i| (i[0] + i[1]) as f32 * 0.01));
    let flat = b.op("Flatten", &["input"], vec![]);
    let scores = b.op("Gemm", &[&flat, &w], vec![attr::int("transB", 1)]);
    b.output(&scores, Elem::F32, &[Batch, Fixed(5)]);
    advx::onnx::save(&b.into_model("rgb", 17, "an RGB linear classifier"), path).unwrap();
}

#[test]
fn visualize_draws_noise_of_the_models_shape_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    rgb_model(&dir.path().join("rgb.onnx"));
    let mut s = session(dir.path());
    s.run("model m = onnx \"rgb.onnx\"").unwrap();
    let flat = advx::onnx::load(dir.path().join("rgb.onnx")).unwrap().graph.unwrap().node[0].output[0].clone();
    let cell = s.execute(&format!("show visualize m layer: \"{flat}\" {{ natural: 2, steps: 2 }}"));
    assert!(cell.error.is_none(), "visualize on a [1, 3, 4, 4] noise start should draw");
    assert!(cell.outputs.iter().any(|o| o.bundle.png.is_some()), "a figure of the ascended colour images");
}
