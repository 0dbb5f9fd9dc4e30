//! What `advx run` shows of images of any shape and of models of many
//! classes: colour grids, large images downsampled for display, class names
//! in captions, and tables that stay readable for 1000 classes.

use std::path::Path;
use std::process::Command;

use image::{Rgb, RgbImage};

/// Runs `script` (written to DIR/s.advx) with `advx run --out DIR/out`;
/// gives the output folder and what the run printed.
fn run(dir: &Path, script: &str) -> (std::path::PathBuf, String, bool) {
    std::fs::write(dir.join("s.advx"), script).unwrap();
    let out = dir.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_advx"))
        .args(["run", "s.advx", "--out", "out", "--device", "cpu"])
        .current_dir(dir)
        .output()
        .expect("advx runs");
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    (out, text, run.status.success())
}

fn ok_run(dir: &Path, script: &str) -> (std::path::PathBuf, String) {
    let (out, text, ok) = run(dir, script);
    assert!(ok, "advx run failed:\n{text}");
    (out, text)
}

fn save(path: &Path, image: &RgbImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image.save(path).unwrap();
}

fn solid(color: [u8; 3], side: u32) -> RgbImage {
    RgbImage::from_pixel(side, side, Rgb(color))
}

/// How many pixels of the PNG file are exactly `color`.
fn count(png: &Path, color: [u8; 3]) -> usize {
    let image = image::open(png).unwrap().to_rgb8();
    image.pixels().filter(|p| p.0 == color).count()
}

/// Whether some pixel of the PNG file is coloured (its channels differ by
/// more than rounding).
fn coloured(png: &Path) -> bool {
    let image = image::open(png).unwrap().to_rgb8();
    image.pixels().any(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 40)
}

#[test]
fn a_colour_set_is_drawn_in_colour_with_its_class_names_as_captions() {
    let dir = tempfile::tempdir().unwrap();
    save(&dir.path().join("colours/red/a.png"), &solid([255, 0, 0], 8));
    save(&dir.path().join("colours/tench, Tinca tinca/b.png"), &solid([0, 0, 255], 8));
    let script = "# %%\nlet c = images \"colours\"\nshow c\nshow grid(c, labels: [1, 0])\n";
    let (out, _) = ok_run(dir.path(), script);
    for figure in ["cell1-images", "cell1-grid"] {
        let png = out.join(format!("{figure}.png"));
        // An 8x8 image is magnified 11x (to about 84 pixels a side).
        assert_eq!(count(&png, [255, 0, 0]), 88 * 88, "{figure}: the red image stays pure red");
        assert_eq!(count(&png, [0, 0, 255]), 88 * 88, "{figure}: the blue one pure blue");
        let svg = std::fs::read_to_string(out.join(format!("{figure}.svg"))).unwrap();
        assert!(svg.contains("\nred\n") && svg.contains("\ntench\n"), "{figure}: class names as captions");
        assert!(!svg.contains("Tinca"), "{figure}: a class name is shortened to its first synonym");
    }
}

#[test]
fn large_images_are_area_averaged_to_a_figure_of_bounded_size() {
    let dir = tempfile::tempdir().unwrap();
    // One-pixel black and white stripes: averaged over 2x2 blocks they are
    // mid-grey, where picking pixels would give black or white.
    let stripes = RgbImage::from_fn(224, 224, |x, _| if x % 2 == 0 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) });
    for i in 0..16 {
        save(&dir.path().join(format!("big/c{i:02}/x.png")), &stripes);
    }
    let (out, _) = ok_run(dir.path(), "# %%\nlet big = images \"big\"\nshow grid(big, cols: 8)\n");
    let png = out.join("cell1-grid.png");
    let (w, h) = image::image_dimensions(&png).unwrap();
    assert!(w <= 8 * 140 && h <= 2 * 170, "16 images of 224x224 in a {w}x{h} figure");
    assert!(count(&png, [128, 128, 128]) >= 16 * 112 * 112, "each image halved to 112x112 by averaging");
    let svg = std::fs::read_to_string(out.join("cell1-grid.svg")).unwrap();
    assert_eq!(svg.matches("<image ").count(), 16, "large images are embedded in the SVG as PNGs");
    assert!(svg.len() < 1 << 20, "the SVG is {} bytes", svg.len());
}

#[test]
fn a_set_of_four_channels_is_an_error_naming_it_and_its_shape() {
    use ndarray_npy::NpzWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut npz = NpzWriter::new(std::fs::File::create(dir.path().join("rgba.npz")).unwrap());
    npz.add_array("images", &ndarray::Array4::<f32>::zeros((2, 4, 5, 5))).unwrap();
    npz.finish().unwrap();
    let script = "# %%\nlet rgba = numpy \"rgba.npz\" { layout: \"nchw\" }\nshow grid(rgba)\n";
    let (_, text, ok) = run(dir.path(), script);
    assert!(!ok, "a 4-channel grid should fail");
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("is [2, 4, 5, 5] (4 channels)"), "{text}");
    assert!(text.contains("numpy \"rgba.npz\""), "the set is named: {text}");
}

/// input [N, 3, S, S] -> Flatten -> Gemm -> scores [N, classes]: class k
/// scores w[k] . x.
fn linear_model(path: &Path, side: usize, classes: usize, w: impl Fn(usize, usize) -> f32) {
    use advx::onnx::builder::{Elem, GraphBuilder, attr};
    use advx::onnx::shape::Dim::{Batch, Fixed};
    let d = 3 * side * side;
    let mut b = GraphBuilder::new();
    b.input("input", Elem::F32, &[Batch, Fixed(3), Fixed(side), Fixed(side)]);
    let w = b.const_f32("w", &ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[classes, d]), |i| w(i[0], i[1])));
    let flat = b.op("Flatten", &["input"], vec![]);
    let scores = b.op("Gemm", &[&flat, &w], vec![attr::int("transB", 1)]);
    b.output(&scores, Elem::F32, &[Batch, Fixed(classes)]);
    advx::onnx::save(&b.into_model("linear", 17, "a linear classifier of RGB images"), path).unwrap();
}

#[test]
fn attacks_on_colour_images_and_their_magnified_differences_are_drawn_in_colour() {
    let dir = tempfile::tempdir().unwrap();
    // Class 0 is "more red than blue", class 1 the opposite.
    linear_model(&dir.path().join("rb.onnx"), 6, 2, |k, j| {
        let channel = j / 36;
        match (k, channel) {
            (0, 0) | (1, 2) => 1.0,
            (0, 2) | (1, 0) => -1.0,
            _ => 0.0,
        }
    });
    for (i, color) in [[230, 40, 60], [200, 90, 30], [50, 60, 220], [20, 120, 240]].into_iter().enumerate() {
        let class = if color[0] > color[2] { "0-reddish" } else { "1-bluish" };
        save(&dir.path().join(format!("rb/{class}/{i}.png")), &solid(color, 6));
    }
    let script = "# %%\nmodel m = onnx \"rb.onnx\"\nlet x = images \"rb\"\nlet adv = lbfgs m on x { seed: 1 }\n\
                  show grid([x, adv, 10 * (adv - x)])\nshow magnify adv to: 0.2\n";
    let (out, text) = ok_run(dir.path(), script);
    let grid = out.join("cell1-grid.png");
    assert!(grid.exists(), "{text}");
    assert!(coloured(&grid), "originals, adversarial images and differences in colour");
    let magnified = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png") && p.to_string_lossy().contains("images"))
        .expect("the magnified set's figure");
    assert!(coloured(&magnified), "{}", magnified.display());
}

fn python(script: &str, dir: &Path) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let out = Command::new(python).arg("-c").arg(script).current_dir(dir).output().expect("running python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_thousand_class_evaluation_gives_its_top_confusions_not_a_thousand_columns() {
    let dir = tempfile::tempdir().unwrap();
    // Class k scores pixel k % 192 of the flattened image, so an image lit
    // at pixel f alone is predicted f.
    linear_model(&dir.path().join("wide.onnx"), 8, 1000, |k, j| if j == k % 192 { 1.0 } else { 0.0 });
    // 20 images lit at 5 labelled 700, 7 at 9 labelled 9, 3 at 11 labelled 12.
    python(
        "import numpy as np\n\
         lit = [5] * 20 + [9] * 7 + [11] * 3\n\
         x = np.zeros((30, 192), np.float32)\n\
         x[np.arange(30), lit] = 1.0\n\
         names = [f'thing{k}' for k in range(1000)]\n\
         names[700] = 'goldfish, Carassius auratus'\n\
         np.savez('d.npz', images=x.reshape(30, 3, 8, 8), labels=np.array([700] * 20 + [9] * 7 + [12] * 3),\n\
                  classes=np.array(names))\n",
        dir.path(),
    );
    let script = "# %%\nmodel m = onnx \"wide.onnx\"\nlet d = numpy \"d.npz\" { layout: \"nchw\" }\n\
                  show evaluate m on d\nshow grid(d[0..2], labels: m.predict(d[0..2]))\n";
    let (out, text) = ok_run(dir.path(), script);
    // The words printed, without the tables' rules.
    let words = |s: &str| s.split_whitespace().filter(|w| !w.starts_with('─')).collect::<Vec<_>>().join(" ");
    let text = words(&text);
    assert!(text.contains("m 30 23 76.67% 1000"), "the overall error: {text}");
    assert!(!text.contains("err 999"), "no column per class: {text}");
    assert!(
        text.contains(
            "most frequent confusions of m true class predicted images 700 goldfish 5 thing5 20 12 thing12 11 thing11 3"
        ),
        "{text}"
    );
    assert!(
        text.contains("700 goldfish 20 20 100.00% 12 thing12 3 3 100.00% 9 thing9 7 0 0.00%"),
        "worst classes: {text}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<td>700 goldfish</td><td>5 thing5</td><td style=\"text-align:right\">20</td>"), "{html}");
    let results: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("results.yaml")).unwrap()).unwrap();
    let recorded = serde_json::to_string(&results).unwrap();
    assert!(
        recorded.contains(r#""confusion":{"cells":[[9,9,7],[12,11,3],[700,5,20]],"classes":1000}"#)
            || recorded.contains(r#""confusion":{"classes":1000,"cells":[[9,9,7],[12,11,3],[700,5,20]]}"#),
        "{recorded}"
    );
    assert!(recorded.len() < 20_000, "results.yaml stays small: {} bytes as JSON", recorded.len());
    let svg = std::fs::read_to_string(out.join("cell1-grid.svg")).unwrap();
    assert!(svg.contains("\nthing5\n"), "predictions captioned by class name");
}
