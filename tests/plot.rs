//! Figures: every plot kind renders to a PNG of the figure's size with real
//! content and to an SVG carrying its title, and bad input gives an error or
//! a valid figure, never a panic. `demo` (ignored) writes sample figures to
//! /tmp/plot-*.png and .svg for people to look at.

use std::collections::HashSet;
use std::path::Path;

use advx::plot::{Bars, Figure, Grid, Heatmap, Histogram, Lines, Plot, Series};
use ndarray::Array3;

/// A small deterministic generator, so that the figures are reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, from the sum of uniforms.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

/// A 28x28 image: a ring, so that it has structure.
fn ring(seed: u64) -> Array3<f32> {
    let mut rng = Lcg(seed);
    Array3::from_shape_fn((1, 28, 28), |(_, r, c)| {
        let d = ((r as f32 - 14.0).powi(2) + (c as f32 - 14.0).powi(2)).sqrt();
        let v = if (d - 8.0).abs() < 2.5 { 1.0 } else { 0.0 };
        (v + 0.1 * rng.next() as f32).min(1.0)
    })
}

fn grid() -> Grid {
    Grid {
        images: (0..6).map(ring).collect(),
        cols: 3,
        range: (0.0, 1.0),
        captions: (0..6).map(|i| format!("pred {i}")).collect(),
        alerts: vec![false, true, false, false, false, true],
        row_labels: vec!["original".into(), "adversarial".into()],
        col_labels: vec!["a".into(), "b".into(), "c".into()],
    }
}

fn histogram() -> Histogram {
    let mut rng = Lcg(7);
    Histogram {
        values: (0..1000).map(|_| 0.08 + 0.02 * rng.normal()).collect(),
        bins: 30,
        x_label: "distortion (RMS)".into(),
        y_label: "examples".into(),
    }
}

fn lines() -> Lines {
    let curve = |k: f64| (1..=20).map(|i| (f64::from(i) * 0.05, (1.0 - (-k * f64::from(i)).exp()) * 100.0)).collect();
    Lines {
        series: vec![
            Series { name: "FC10(1e-4)".into(), points: curve(0.1) },
            Series { name: "FC100-100-10".into(), points: curve(0.2) },
            Series { name: "AE400-10".into(), points: curve(0.05) },
        ],
        x_label: "distortion".into(),
        y_label: "error (%)".into(),
        log_x: false,
        log_y: false,
    }
}

fn bars() -> Bars {
    Bars {
        categories: vec!["FC10(1e-4)".into(), "FC10(1e-2)".into(), "FC100-100-10".into(), "AE400-10".into()],
        series: vec![
            ("clean".into(), vec![0.061, 0.083, 0.016, 0.013]),
            ("adversarial".into(), vec![1.0, 0.99, 1.0, 1.0]),
        ],
        x_label: "model".into(),
        y_label: "error".into(),
    }
}

fn heatmap() -> Heatmap {
    let names: Vec<String> = ["FC10(1e-4)", "FC10(1e-2)", "FC100-100-10", "AE400-10"].map(String::from).to_vec();
    Heatmap {
        rows: names.clone(),
        cols: names,
        values: (0..4).map(|r| (0..4).map(|c| if r == c { 1.0 } else { 0.1 * (r + c) as f64 }).collect()).collect(),
        x_label: "evaluated on".into(),
        y_label: "adversarial examples of".into(),
        percent: true,
    }
}

fn all() -> Vec<Figure> {
    vec![
        Figure::new("Grid of images", Plot::Grid(grid())),
        Figure::new("Histogram of distortions", Plot::Histogram(histogram())),
        Figure::new("Lines of error", Plot::Lines(lines())),
        Figure::new("Bars of error", Plot::Bars(bars())),
        Figure::new("Heatmap of transfer", Plot::Heatmap(heatmap())),
    ]
}

/// Decodes a PNG: its width, height and RGB(A) bytes.
fn decode(png: &[u8]) -> (u32, u32, Vec<u8>, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, info.color_type.samples())
}

fn distinct_colors(rgb: &[u8], samples: usize) -> usize {
    rgb.chunks(samples).map(|p| (p[0], p[1], p[2])).collect::<HashSet<_>>().len()
}

#[test]
fn every_kind_renders_to_png_of_its_size() {
    for figure in all() {
        let png = figure.png().unwrap_or_else(|e| panic!("{}: {e:#}", figure.title));
        let (w, h, rgb, samples) = decode(&png);
        assert_eq!((w, h), (figure.width, figure.height), "{}", figure.title);
        let colors = distinct_colors(&rgb, samples);
        assert!(colors >= 8, "{}: only {colors} colours", figure.title);
    }
}

#[test]
fn every_kind_renders_to_svg_with_its_title() {
    for figure in all() {
        let svg = figure.svg().unwrap_or_else(|e| panic!("{}: {e:#}", figure.title));
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains(&figure.title), "{}: title missing", figure.title);
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}

#[test]
fn figure_sizes_suit_the_plot() {
    let chart = Figure::new("t", Plot::Lines(lines()));
    assert!(chart.width >= 600 && chart.height >= 400);
    let mut big = grid();
    big.images = (0..30).map(ring).collect();
    big.captions.clear();
    big.alerts.clear();
    big.row_labels.clear();
    big.cols = 10;
    big.col_labels.clear();
    let small = Figure::new("", Plot::Grid(grid()));
    let large = Figure::new("", Plot::Grid(big));
    assert!(large.width > small.width && large.height > small.height);
}

#[test]
fn grid_pixels_are_whole_blocks() {
    // One mid-grey pixel in a black image: at magnification s it must be
    // exactly s*s pixels of that grey, with s an integer.
    let mut image = Array3::<f32>::zeros((1, 28, 28));
    image[[0, 10, 10]] = 0.5;
    let plot = Plot::Grid(Grid { images: vec![image], cols: 1, ..Grid::default() });
    let figure = Figure::new("", plot);
    let (_, _, rgb, samples) = decode(&figure.png().unwrap());
    let grey = rgb.chunks(samples).filter(|p| p[0] == 128 && p[1] == 128 && p[2] == 128).count();
    assert_eq!(grey, 9, "a 28x28 image should be magnified 3x by default");
}

#[test]
fn grid_input_errors_are_named() {
    let err = |g: Grid| Figure::new("", Plot::Grid(g)).png().expect_err("should fail").to_string();
    assert!(err(Grid { cols: 0, ..grid() }).contains("cols"));
    assert!(
        err(Grid { images: vec![], captions: vec![], alerts: vec![], row_labels: vec![], ..grid() })
            .contains("no images")
    );
    assert!(err(Grid { captions: vec!["x".into()], ..grid() }).contains("captions"));
    assert!(err(Grid { alerts: vec![true; 2], ..grid() }).contains("alerts"));
    assert!(err(Grid { row_labels: vec!["x".into()], ..grid() }).contains("row labels"));
    assert!(err(Grid { range: (1.0, 1.0), ..grid() }).contains("range"));
    assert!(err(Grid { images: vec![Array3::zeros((1, 0, 0))], cols: 1, ..Grid::default() }).contains("empty"));
}

/// Renders both ways; either both fail with a message or both succeed.
fn renders_or_errs(figure: &Figure) -> Result<(), String> {
    match (figure.png(), figure.svg()) {
        (Ok(png), Ok(_)) => {
            let (w, h, _, _) = decode(&png);
            assert_eq!((w, h), (figure.width, figure.height));
            Ok(())
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert!(!a.to_string().is_empty());
            Err(format!("{a:#}"))
        }
        (a, b) => panic!("{}: png {:?} but svg {:?}", figure.title, a.err(), b.err()),
    }
}

#[test]
fn degenerate_input_does_not_panic() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let hist = |values: Vec<f64>, bins| Plot::Histogram(Histogram { values, bins, ..Histogram::default() });
    let series = |points: Vec<(f64, f64)>| Series { name: "s".into(), points };
    let line = |s: Vec<Series>, log_x, log_y| Plot::Lines(Lines { series: s, log_x, log_y, ..Lines::default() });
    let cases: Vec<(&str, Plot, bool)> = vec![
        ("empty histogram", hist(vec![], 10), false),
        ("all-NaN histogram", hist(vec![nan, inf], 10), false),
        ("one-value histogram", hist(vec![3.0], 10), true),
        ("constant histogram", hist(vec![0.0; 50], 0), true),
        ("histogram with NaN", hist(vec![1.0, nan, 2.0, -inf], 4), true),
        ("histogram of huge values", hist(vec![-f64::MAX, f64::MAX], 4), false),
        ("too many bins", hist(vec![1.0, 2.0], usize::MAX), false),
        ("no series", line(vec![], false, false), false),
        ("empty series", line(vec![series(vec![])], false, false), false),
        (
            "one empty series of two",
            line(vec![series(vec![]), series(vec![(1.0, 2.0), (2.0, 3.0)])], false, false),
            true,
        ),
        ("single point", line(vec![series(vec![(1.0, 1.0)])], false, false), true),
        ("NaN points", line(vec![series(vec![(1.0, nan), (2.0, 1.0), (nan, 2.0), (3.0, 2.0)])], false, false), true),
        ("log of non-positive", line(vec![series(vec![(0.0, 1.0), (-1.0, 2.0)])], true, false), false),
        ("log with some zero", line(vec![series(vec![(0.0, 1.0), (1.0, 2.0), (10.0, 3.0)])], true, true), true),
        ("constant log", line(vec![series(vec![(1.0, 5.0), (2.0, 5.0)])], false, true), true),
        ("wide log", line(vec![series(vec![(1e-30, 1e-30), (1e30, 1e30)])], true, true), true),
        ("tiny values", line(vec![series(vec![(0.0, 1e-7), (1.0, 3e-7)])], false, false), true),
        ("bars without categories", Plot::Bars(Bars::default()), false),
        (
            "bars of wrong length",
            Plot::Bars(Bars { categories: vec!["a".into()], series: vec![("s".into(), vec![])], ..Bars::default() }),
            false,
        ),
        (
            "negative and NaN bars",
            Plot::Bars(Bars {
                categories: vec!["a".into(), "b".into(), "c".into()],
                series: vec![("s".into(), vec![-1.0, nan, 2.0])],
                ..Bars::default()
            }),
            true,
        ),
        (
            "all-zero bars",
            Plot::Bars(Bars { categories: vec!["a".into()], series: vec![("s".into(), vec![0.0])], ..Bars::default() }),
            true,
        ),
        ("empty heatmap", Plot::Heatmap(Heatmap::default()), false),
        (
            "ragged heatmap",
            Plot::Heatmap(Heatmap { values: vec![vec![1.0], vec![1.0, 2.0]], ..Heatmap::default() }),
            false,
        ),
        (
            "unnamed heatmap",
            Plot::Heatmap(Heatmap { values: vec![vec![nan, 1.0], vec![2.0, 3.0]], ..Heatmap::default() }),
            true,
        ),
        ("all-NaN heatmap", Plot::Heatmap(Heatmap { values: vec![vec![nan; 3]; 2], ..Heatmap::default() }), true),
        (
            "heatmap with wrong names",
            Plot::Heatmap(Heatmap { rows: vec!["a".into()], values: vec![vec![1.0]; 2], ..Heatmap::default() }),
            false,
        ),
        ("zero cols", Plot::Grid(Grid { cols: 0, ..grid() }), false),
        (
            "NaN pixels",
            Plot::Grid(Grid { images: vec![Array3::from_elem((1, 5, 3), f32::NAN)], cols: 1, ..Grid::default() }),
            true,
        ),
        ("more cols than images", Plot::Grid(Grid { images: vec![ring(1)], cols: 5, ..Grid::default() }), true),
    ];
    for (what, plot, ok) in cases {
        let figure = Figure::new(what, plot);
        let result = renders_or_errs(&figure);
        println!("{what}: {result:?}");
        assert_eq!(result.is_ok(), ok, "{what}: {result:?}");
    }
}

#[test]
fn long_labels_and_odd_sizes_do_not_panic() {
    let long = "a very long label that goes on and on and would never fit anywhere on this figure at all".to_string();
    let mut b = bars();
    b.categories = vec![long.clone(); 12];
    b.series = vec![("s".into(), vec![1.0; 12]), (long.clone(), vec![2.0; 12])];
    b.x_label = long.clone();
    b.y_label = long.clone();
    let mut h = heatmap();
    h.rows = vec![long.clone(); 4];
    h.cols = vec![long.clone(); 4];
    for plot in [Plot::Bars(b), Plot::Heatmap(h), Plot::Lines(lines()), Plot::Grid(grid())] {
        let figure = Figure::new(long.clone(), plot);
        renders_or_errs(&figure).unwrap_or_else(|e| panic!("{e}"));
        for (w, h) in [(32, 32), (100, 80), (300, 200), (2000, 300), (300, 2000)] {
            let _ = renders_or_errs(&figure.clone().with_size(w, h));
        }
    }
    for (w, h) in [(0, 100), (100, 0), (1 << 20, 100), (16_384, 16_384)] {
        let figure = Figure::new("x", Plot::Lines(lines())).with_size(w, h);
        assert!(figure.png().is_err() && figure.svg().is_err(), "{w}x{h} should be refused");
    }
}

/// Real MNIST test digits when the data is there, else rings.
fn digits(n: usize) -> (Vec<Array3<f32>>, Vec<advx::data::Label>) {
    let dir = Path::new("/work/shared/data/mnist");
    match advx::data::load_dir(dir, "mnist", advx::data::Split::Test) {
        Ok(data) => {
            let images = (0..n).map(|i| data.images.slice(ndarray::s![i, .., .., ..]).to_owned()).collect();
            (images, data.labels[..n].to_vec())
        }
        Err(_) => ((0..n as u64).map(ring).collect(), vec![0; n]),
    }
}

/// Writes every kind to /tmp/plot-*.png and .svg, for looking at.
#[test]
#[ignore]
fn demo() {
    let (images, labels) = digits(8);
    let mut rng = Lcg(3);
    let noise: Vec<Array3<f32>> =
        images.iter().map(|_| Array3::from_shape_fn((1, 28, 28), |_| 0.1 * rng.normal() as f32)).collect();
    let adversarial: Vec<Array3<f32>> =
        images.iter().zip(&noise).map(|(x, n)| (x + n).mapv(|v| v.clamp(0.0, 1.0))).collect();
    let diffs: Vec<Array3<f32>> = adversarial.iter().zip(&images).map(|(a, x)| a - x).collect();
    // Differences magnified 5x around mid-grey, to share the grid's [0, 1] range.
    let shown: Vec<Array3<f32>> = diffs.iter().map(|d| d.mapv(|v| 0.5 + 5.0 * v)).collect();
    let m = diffs.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    let diff_grid = Grid { images: diffs.clone(), cols: 4, range: (-m, m), ..Grid::default() };
    let grid = Grid {
        images: images.iter().chain(&adversarial).chain(&shown).cloned().collect(),
        cols: 8,
        range: (0.0, 1.0),
        captions: labels
            .iter()
            .map(|l| l.to_string())
            .chain((0..8).map(|i| format!("{}", (i * 3) % 10)))
            .chain((0..8).map(|_| String::new()))
            .collect(),
        alerts: (0..24).map(|i| (8..16).contains(&i) && i % 3 != 0).collect(),
        row_labels: vec!["original".into(), "adversarial".into(), "difference ×5".into()],
        col_labels: vec![],
    };
    let mut log = lines();
    log.log_y = true;
    log.log_x = true;
    log.series.push(Series {
        name: "with a zero".into(),
        points: vec![(0.0, 1.0), (0.1, 2.0), (0.5, 40.0), (1.0, f64::NAN)],
    });
    let confusion = Heatmap {
        rows: (0..10).map(|i| i.to_string()).collect(),
        cols: (0..10).map(|i| i.to_string()).collect(),
        values: (0..10)
            .map(|r| {
                (0..10).map(|c| if r == c { 980.0 - 7.0 * r as f64 } else { ((r * 7 + c * 3) % 9) as f64 }).collect()
            })
            .collect(),
        x_label: "predicted".into(),
        y_label: "true".into(),
        percent: false,
    };
    let figures = [
        ("grid", Figure::new("Originals, adversarial examples and differences", Plot::Grid(grid))),
        ("grid-diff", Figure::new("Differences, range (−m, m)", Plot::Grid(diff_grid))),
        ("histogram", Figure::new("Minimum distortion, FC100-100-10", Plot::Histogram(histogram()))),
        ("lines", Figure::new("Error against distortion", Plot::Lines(lines()))),
        ("lines-log", Figure::new("Error against distortion (log-log)", Plot::Lines(log))),
        ("bars", Figure::new("Test error, clean and adversarial", Plot::Bars(bars()))),
        ("heatmap", Figure::new("Cross-model generalization of adversarial examples", Plot::Heatmap(heatmap()))),
        ("confusion", Figure::new("Confusion table, FC10(1e-4)", Plot::Heatmap(confusion))),
    ];
    for (name, figure) in figures {
        std::fs::write(format!("/tmp/plot-{name}.png"), figure.png().unwrap()).unwrap();
        std::fs::write(format!("/tmp/plot-{name}.svg"), figure.svg().unwrap()).unwrap();
    }
}

/// Writes edge cases to /tmp/plot-edge-*.png, for looking at.
#[test]
#[ignore]
fn demo_edge_cases() {
    let nan = f64::NAN;
    let long = "a rather long category name that will not fit".to_string();
    let cases = [
        ("one-value", Plot::Histogram(Histogram { values: vec![3.0], bins: 10, ..Histogram::default() })),
        (
            "bars-negative",
            Plot::Bars(Bars {
                categories: vec!["a".into(), "b".into(), long.clone(), "d".into(), long.clone(), "f".into()],
                series: vec![("s".into(), vec![-1.0, nan, 2.0, 0.5, 1.5, -0.2]), ("t".into(), vec![1.0; 6])],
                x_label: "category".into(),
                y_label: "value".into(),
            }),
        ),
        (
            "heatmap-nan",
            Plot::Heatmap(Heatmap { values: vec![vec![nan, 0.12, -3.5], vec![2.25, 3.0, 1e-4]], ..Heatmap::default() }),
        ),
        (
            "grid-nan",
            Plot::Grid(Grid {
                images: vec![Array3::from_elem((1, 5, 3), f32::NAN), ring(2)],
                cols: 2,
                ..Grid::default()
            }),
        ),
        (
            "lines-tiny",
            Plot::Lines(Lines {
                series: vec![Series { name: "s".into(), points: vec![(0.0, 1e-7), (1e6, 3e-7), (2e6, 2e-7)] }],
                x_label: "x".into(),
                y_label: "y".into(),
                ..Lines::default()
            }),
        ),
        (
            "lines-widelog",
            Plot::Lines(Lines {
                series: vec![Series { name: "s".into(), points: vec![(1e-30, 1e-30), (1.0, 1.0), (1e30, 1e30)] }],
                log_x: true,
                log_y: true,
                ..Lines::default()
            }),
        ),
    ];
    for (name, plot) in cases {
        let figure = Figure::new(format!("Edge case: {name}"), plot);
        std::fs::write(format!("/tmp/plot-edge-{name}.png"), figure.png().unwrap()).unwrap();
    }
    let very_long = "a very long label that goes on and on and would never fit anywhere on this figure at all";
    let mut b = bars();
    b.categories = (0..12).map(|i| format!("{i}: {very_long}")).collect();
    b.series = vec![("short".into(), vec![1.0; 12]), (very_long.into(), vec![2.0; 12])];
    b.x_label = very_long.into();
    b.y_label = very_long.into();
    let mut h = heatmap();
    h.rows = h.rows.iter().map(|r| format!("{r} {very_long}")).collect();
    h.cols = h.cols.iter().map(|c| format!("{c} {very_long}")).collect();
    let sized = [
        ("long-bars", Figure::new(very_long, Plot::Bars(b))),
        ("long-heatmap", Figure::new(very_long, Plot::Heatmap(h))),
        ("small-lines", Figure::new("Small", Plot::Lines(lines())).with_size(320, 220)),
        ("wide-grid", Figure::new("Resized grid", Plot::Grid(grid())).with_size(900, 300)),
    ];
    for (name, figure) in sized {
        std::fs::write(format!("/tmp/plot-edge-{name}.png"), figure.png().unwrap()).unwrap();
    }
}
