//! Strided convolutions by the polyphase method (`spectral::conv`), against
//! the explicit operators: each convolution is applied in plain Rust to
//! every basis vector of its input, and the matrix so built is handed to
//! nalgebra's SVD. Exact on a torus; on zero-padded layers an upper bound,
//! measured against the layer's own matrix, and small layers' bounds are
//! that matrix's norm.

use advx::onnx::builder::{Elem, attr, value_info};
use advx::onnx::proto::type_proto;
use advx::onnx::shape::Dim;
use advx::onnx::{AttributeProto, GraphBuilder, ModelProto};
use advx::spectral::{self, conv, svd};
use nalgebra::{Complex, DMatrix};
use ndarray::{Array4, ArrayView4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: [usize; 4], seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_fn(shape, |_| rng.random_range(-1.0f32..1.0))
}

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// A convolution as ONNX defines it (cross-correlation), on a plain grid.
struct Conv<'w> {
    weights: ArrayView4<'w, f32>,
    group: usize,
    strides: [usize; 2],
    dilations: [usize; 2],
}

impl Conv<'_> {
    fn channels(&self) -> (usize, usize) {
        (self.weights.dim().0, self.weights.dim().1 * self.group)
    }

    /// Output `(o, r, c)` of the input `x` (`[Cin][H][W]`, flattened) where
    /// `read(row, col)` maps a tap's position (`r s + y d`, likewise
    /// columns) to the input's cell, or to `None` (a zero pad).
    fn output(
        &self,
        x: &[f64],
        shape: [usize; 2],
        at: (usize, usize, usize),
        read: impl Fn(usize, usize) -> Option<(usize, usize)>,
    ) -> f64 {
        let (cout, cin_g, kh, kw) = self.weights.dim();
        let (o, r, c) = at;
        let g = o / (cout / self.group);
        let mut sum = 0.0;
        for (i, y, xx) in (0..cin_g).flat_map(|i| (0..kh).flat_map(move |y| (0..kw).map(move |xx| (i, y, xx)))) {
            let tap = (r * self.strides[0] + y * self.dilations[0], c * self.strides[1] + xx * self.dilations[1]);
            if let Some((row, col)) = read(tap.0, tap.1) {
                let channel = g * cin_g + i;
                sum += self.weights[[o, i, y, xx]] as f64 * x[(channel * shape[0] + row) * shape[1] + col];
            }
        }
        sum
    }

    /// The circular strided convolution on `torus` as a dense matrix: column
    /// `k` is the convolution of the `k`-th basis vector.
    fn circular_matrix(&self, torus: [usize; 2]) -> DMatrix<f64> {
        let out = [torus[0] / self.strides[0], torus[1] / self.strides[1]];
        self.matrix(torus, out, |r, c| Some((r % torus[0], c % torus[1])))
    }

    /// The zero-padded strided convolution of an `input`-sized image with
    /// `pads` (top, left, bottom, right) as a dense matrix.
    fn padded_matrix(&self, input: [usize; 2], pads: [usize; 4]) -> DMatrix<f64> {
        let (kh, kw) = (self.weights.dim().2, self.weights.dim().3);
        let span = [(kh - 1) * self.dilations[0] + 1, (kw - 1) * self.dilations[1] + 1];
        let padded = [input[0] + pads[0] + pads[2], input[1] + pads[1] + pads[3]];
        let out = [0, 1].map(|a| (padded[a] - span[a]) / self.strides[a] + 1);
        self.matrix(input, out, |r, c| {
            let (r, c) = (r.checked_sub(pads[0])?, c.checked_sub(pads[1])?);
            (r < input[0] && c < input[1]).then_some((r, c))
        })
    }

    fn matrix(
        &self,
        shape: [usize; 2],
        out: [usize; 2],
        read: impl Fn(usize, usize) -> Option<(usize, usize)> + Copy,
    ) -> DMatrix<f64> {
        let (cout, cin) = self.channels();
        let size = cin * shape[0] * shape[1];
        let mut m = DMatrix::zeros(cout * out[0] * out[1], size);
        let mut x = vec![0.0; size];
        for k in 0..size {
            x[k] = 1.0;
            for (o, r, c) in (0..cout).flat_map(|o| (0..out[0]).flat_map(move |r| (0..out[1]).map(move |c| (o, r, c))))
            {
                m[((o * out[0] + r) * out[1] + c, k)] = self.output(&x, shape, (o, r, c), read);
            }
            x[k] = 0.0;
        }
        m
    }
}

fn sigma_max(m: &DMatrix<f64>) -> f64 {
    m.singular_values().max()
}

#[test]
fn the_polyphase_norm_equals_the_dense_norm_of_circular_strided_convolutions() {
    // (weights, group, dilations, strides, torus)
    let cases = [
        ([4, 3, 3, 3], 1, [1, 1], [2, 2], [8, 8]),
        ([3, 2, 3, 3], 1, [1, 1], [3, 3], [9, 9]),
        ([5, 3, 2, 3], 1, [1, 1], [2, 1], [6, 5]),
        ([2, 5, 3, 3], 1, [1, 1], [1, 2], [5, 6]),
        ([12, 1, 3, 3], 1, [1, 1], [2, 2], [6, 8]),
        ([4, 2, 3, 3], 2, [1, 1], [2, 2], [6, 6]),
        ([3, 1, 3, 3], 3, [1, 1], [2, 2], [8, 8]),
        ([6, 1, 3, 3], 3, [2, 1], [2, 3], [8, 9]),
        ([3, 2, 3, 2], 1, [2, 2], [2, 2], [10, 8]),
    ];
    for (seed, (shape, group, dilations, strides, torus)) in cases.into_iter().enumerate() {
        let w = random(shape, seed as u64);
        let conv = Conv { weights: w.view(), group, strides, dilations };
        let polyphase = conv::strided_norm(w.view(), group, dilations, strides, torus).unwrap();
        let dense = sigma_max(&conv.circular_matrix(torus));
        assert!(
            relative(polyphase, dense) < 1e-9,
            "{shape:?} group {group} dilations {dilations:?} strides {strides:?} on {torus:?}: polyphase {polyphase} vs dense {dense}"
        );
    }
}

#[test]
fn a_torus_that_the_stride_does_not_divide_is_refused() {
    let w = random([2, 2, 3, 3], 40);
    let err = conv::strided_norm(w.view(), 1, [1, 1], [2, 2], [7, 8]).unwrap_err().to_string();
    assert!(err.contains("7×8 torus") && err.contains("[2, 2]"), "{err}");
    let err = conv::strided_norm(w.view(), 3, [1, 1], [2, 2], [8, 8]).unwrap_err().to_string();
    assert!(err.contains("3 groups"), "{err}");
}

/// A one-node model: a Conv reading `x` shaped `[N, Cin, H, W]`.
fn conv_model(w: &Array4<f32>, input: [usize; 3], attrs: Vec<AttributeProto>) -> ModelProto {
    let mut b = GraphBuilder::new();
    let dims: Vec<Dim> = std::iter::once(Dim::Batch).chain(input.iter().map(|&d| Dim::Fixed(d))).collect();
    b.input("x", Elem::F32, &dims);
    let w = b.const_f32("w", &w.clone().into_dyn());
    let y = b.op("Conv", &["x", &w], attrs);
    let mut output = value_info(&y, Elem::F32, &[]);
    if let Some(type_proto::Value::TensorType(t)) = output.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    b.outputs.push(output);
    b.into_model("t", advx::onnx::OPSET, "spectral conv test")
}

/// How a layer pads: explicit (top, left, bottom, right) or `auto_pad`.
#[derive(Clone, Copy, Debug)]
enum Padding {
    Explicit([usize; 4]),
    Same(&'static str),
}

/// A zero-padded strided layer typical of real networks, and how far above
/// its norm the Fourier bound on its torus may be.
struct Layer {
    weights: [usize; 4],
    group: usize,
    input: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
    dilations: [usize; 2],
    slack: f64,
}

impl Layer {
    /// The pads (top, left, bottom, right), `auto_pad` resolved as the ONNX
    /// spec says: the total that gives `⌈input / stride⌉` outputs, an odd
    /// one's extra at the end (`SAME_UPPER`) or the beginning (`SAME_LOWER`).
    fn pads(&self) -> [usize; 4] {
        match self.padding {
            Padding::Explicit(pads) => pads,
            Padding::Same(mode) => {
                let total = [0, 1].map(|a| {
                    let span = (self.weights[2 + a] - 1) * self.dilations[a] + 1;
                    ((self.input[a].div_ceil(self.strides[a]) - 1) * self.strides[a] + span)
                        .saturating_sub(self.input[a])
                });
                let begin = total.map(|t| if mode == "SAME_UPPER" { t / 2 } else { t - t / 2 });
                [begin[0], begin[1], total[0] - begin[0], total[1] - begin[1]]
            }
        }
    }

    fn model(&self, w: &Array4<f32>) -> ModelProto {
        let mut attrs = vec![
            attr::ints("kernel_shape", &[self.weights[2] as i64, self.weights[3] as i64]),
            attr::ints("strides", &self.strides.map(|s| s as i64)),
            attr::ints("dilations", &self.dilations.map(|d| d as i64)),
            attr::int("group", self.group as i64),
        ];
        attrs.push(match self.padding {
            Padding::Explicit(pads) => attr::ints("pads", &pads.map(|p| p as i64)),
            Padding::Same(mode) => attr::string("auto_pad", mode),
        });
        conv_model(w, [self.weights[1] * self.group, self.input[0], self.input[1]], attrs)
    }

    /// σ_max of the explicitly built zero-padded strided operator.
    fn dense_norm(&self, w: &Array4<f32>) -> f64 {
        let conv = Conv { weights: w.view(), group: self.group, strides: self.strides, dilations: self.dilations };
        sigma_max(&conv.padded_matrix(self.input, self.pads()))
    }

    fn describe(&self) -> String {
        format!(
            "{:?} group {} on {:?} strides {:?} {:?} dilations {:?}",
            self.weights, self.group, self.input, self.strides, self.padding, self.dilations
        )
    }
}

/// Small layers of every kind: strides (2, 3), asymmetric pads, large
/// kernels, a 1×1 kernel, depthwise and grouped, dilated, `auto_pad`; the
/// operator read by rows (inputs fewer) and by columns (outputs fewer).
fn small_layers() -> Vec<Layer> {
    let layer = |weights, input, strides, pads, slack| Layer {
        weights,
        group: 1,
        input,
        strides,
        padding: Padding::Explicit(pads),
        dilations: [1, 1],
        slack,
    };
    vec![
        layer([8, 4, 3, 3], [16, 16], [2, 2], [1, 1, 1, 1], 0.01),
        layer([4, 3, 3, 3], [15, 14], [2, 3], [1, 0, 2, 1], 0.01),
        layer([8, 4, 5, 5], [16, 16], [2, 2], [2, 2, 2, 2], 0.05),
        layer([8, 3, 11, 11], [32, 32], [4, 4], [2, 2, 2, 2], 0.05),
        layer([6, 3, 7, 7], [24, 24], [2, 2], [3, 3, 3, 3], 0.05),
        layer([6, 4, 1, 1], [12, 12], [2, 2], [0, 0, 0, 0], 1e-9),
        Layer { group: 8, ..layer([8, 1, 3, 3], [16, 16], [2, 2], [1, 1, 1, 1], 0.05) },
        Layer { group: 2, dilations: [2, 2], ..layer([6, 2, 3, 3], [14, 14], [2, 2], [2, 2, 2, 2], 0.05) },
        layer([6, 2, 3, 3], [12, 11], [1, 1], [0, 1, 1, 0], 0.05),
        Layer { padding: Padding::Same("SAME_UPPER"), ..layer([4, 3, 4, 4], [9, 10], [1, 1], [0; 4], 0.05) },
        Layer { padding: Padding::Same("SAME_LOWER"), ..layer([4, 3, 4, 2], [11, 10], [2, 1], [0; 4], 0.05) },
        Layer { padding: Padding::Same("SAME_UPPER"), ..layer([4, 3, 4, 2], [11, 10], [2, 1], [0; 4], 0.05) },
    ]
}

/// A small layer's bound is its exact norm: the largest eigenvalue of the
/// Gram matrix of its zero-padded operator, against the test's own SVD of
/// that operator built by convolving every basis vector.
#[test]
fn small_zero_padded_layers_get_their_exact_norm() {
    for (seed, l) in small_layers().iter().enumerate() {
        let w = random(l.weights, 100 + seed as u64);
        let bound = spectral::analyse(&l.model(&w)).unwrap().layers.remove(0);
        let dense = l.dense_norm(&w);
        let what = l.describe();
        eprintln!("{what}: bound {:.9}, norm {dense:.9} ({})", bound.bound, bound.method);
        assert!(bound.bound >= dense * (1.0 - 1e-9), "{what}: bound {} below the layer's norm {dense}", bound.bound);
        assert!(relative(bound.bound, dense) < 1e-3, "{what}: bound {} is not the norm {dense}", bound.bound);
        assert!(bound.method.starts_with("exact: σ_max of the operator"), "{what}: {}", bound.method);
        assert_eq!(bound.method.contains("zero pads"), l.pads() != [0; 4], "{what}: {}", bound.method);
    }
}

/// The Fourier bound on the torus `layer` uses stays an upper bound of the
/// zero-padded layer, loose by the energy its borders lose, a gap that
/// shrinks as the input grows against the kernel (measured: 0.6% for 3×3
/// on 16×16, 4.5% for 5×5 on 16×16, 3.8% for 11×11 stride 4 on 32×32; the
/// stride-1 bound has the same gaps at these sizes). A 1×1 kernel without
/// pads on an input the stride divides is circular, hence exact. The exact
/// layer's method states that ratio.
#[test]
fn the_torus_bound_stays_above_the_norm_of_small_layers() {
    for (seed, l) in small_layers().iter().enumerate() {
        let w = random(l.weights, 100 + seed as u64);
        let pads = l.pads();
        let geometry = conv::Geometry {
            strides: l.strides,
            dilations: l.dilations,
            pads: [pads[0] + pads[2], pads[1] + pads[3]],
            begin: [pads[0], pads[1]],
            group: l.group,
            input: l.input,
        };
        let torus = geometry.torus([l.weights[2], l.weights[3]]);
        let fourier = conv::strided_norm(w.view(), l.group, l.dilations, l.strides, torus).unwrap();
        let dense = l.dense_norm(&w);
        let what = l.describe();
        assert!(fourier >= dense * (1.0 - 1e-9), "{what}: torus bound {fourier} below the layer's norm {dense}");
        assert!(
            fourier <= dense * (1.0 + l.slack),
            "{what}: torus bound {fourier} above {dense} by more than {}",
            l.slack
        );
        let method = spectral::analyse(&l.model(&w)).unwrap().layers.remove(0).method;
        let stated = format!("Fourier bound on the {}×{} torus {:.4}× higher", torus[0], torus[1], fourier / dense);
        assert!(method.ends_with(&stated), "{what}: {method} does not end with {stated}");
    }
}

/// Layers whose Gram matrix would be too large (a side above
/// `EXACT_SIDE`), or too many of them (groups past `EXACT_WORK`), keep the
/// Fourier bound on their torus, and say so.
#[test]
fn layers_above_the_threshold_keep_the_torus_bound() {
    let side = (conv::EXACT_SIDE as f64).sqrt() as usize + 1;
    let cube = |n: usize| n * n * n;
    let groups = conv::EXACT_WORK / cube(16 * 16) + 1;
    // (weights, group, input, expected method)
    let cases = [
        ([2, 1, 3, 3], 1, side, format!("Fourier, {0}×{0} torus (zero pads: bound)", side + 2)),
        ([groups, 1, 3, 3], groups, 16, "Fourier, 18×18 torus (zero pads: bound)".to_string()),
    ];
    for (seed, (shape, group, input, expected)) in cases.into_iter().enumerate() {
        let w = random(shape, 80 + seed as u64);
        let attrs = vec![
            attr::ints("kernel_shape", &[3, 3]),
            attr::ints("pads", &[1, 1, 1, 1]),
            attr::int("group", group as i64),
        ];
        let layer = spectral::analyse(&conv_model(&w, [group, input, input], attrs)).unwrap().layers.remove(0);
        assert_eq!(layer.method, expected, "{shape:?} group {group} on {input}×{input}");
        let torus = [input + 2; 2];
        let fourier = conv::strided_norm(w.view(), group, [1, 1], [1, 1], torus).unwrap();
        assert_eq!(layer.bound, fourier, "{shape:?} group {group} on {input}×{input}");
    }
}

#[test]
fn the_method_names_the_stride_and_the_torus() {
    let w = random([8, 3, 11, 11], 50);
    let attrs =
        vec![attr::ints("kernel_shape", &[11, 11]), attr::ints("strides", &[4, 4]), attr::ints("pads", &[2, 2, 2, 2])];
    let layer = spectral::analyse(&conv_model(&w, [3, 224, 224], attrs)).unwrap().layers.remove(0);
    assert_eq!(layer.method, "Fourier, polyphase stride 4, 228×228 torus (zero pads: bound)");
    assert_eq!(layer.stride, Some([4, 4]));
    let w = random([4, 3, 3, 3], 51);
    let attrs = || vec![attr::ints("kernel_shape", &[3, 3]), attr::ints("strides", &[2, 1])];
    let layer = spectral::analyse(&conv_model(&w, [3, 41, 40], attrs())).unwrap().layers.remove(0);
    assert_eq!(layer.method, "Fourier, polyphase stride 2×1, 42×40 torus (torus past the input: bound)");
    let layer = spectral::analyse(&conv_model(&w, [3, 40, 40], vec![])).unwrap().layers.remove(0);
    assert_eq!(layer.method, "Fourier, 40×40 torus (part of its outputs: bound)");
    let layer = spectral::analyse(&conv_model(&w, [3, 9, 8], attrs())).unwrap().layers.remove(0);
    assert!(
        layer.method.starts_with("exact: σ_max of the operator (Gram 96×96); Fourier bound on the 10×8 torus "),
        "{}",
        layer.method
    );
}

/// A random complex matrix in [`svd::Gram`]'s layout, and as nalgebra's.
fn complex(r: usize, l: usize, seed: u64) -> (DMatrix<f64>, DMatrix<Complex<f64>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = DMatrix::from_fn(r, l, |_, _| Complex::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)));
    let rows = DMatrix::from_fn(2 * l, r, |k, i| if k < l { a[(i, k)].re } else { a[(i, k - l)].im });
    (rows, a)
}

#[test]
fn the_gram_gives_sigma_max_squared_or_shows_it_is_below_the_floor() {
    let mut gram = svd::Gram::default();
    for (r, l, seed) in [(1, 5, 60), (3, 3, 61), (7, 20, 62), (40, 64, 63)] {
        let (rows, a) = complex(r, l, seed);
        let exact = a.singular_values().max().powi(2);
        let found = gram.sigma_max_sq_above(&rows, 0.0).unwrap();
        assert!(relative(found, exact) < 1e-12, "{r}×{l}: {found} vs {exact}");
        let above = gram.sigma_max_sq_above(&rows, exact * (1.0 - 1e-6)).expect("above a floor just below it");
        assert!(relative(above, exact) < 1e-12, "{r}×{l}: {above} vs {exact}");
        assert_eq!(
            gram.sigma_max_sq_above(&rows, exact * (1.0 + 1e-6)),
            None,
            "{r}×{l}: not below a floor just above it"
        );
    }
}

#[test]
fn layers_too_large_to_bound_are_refused_not_attempted() {
    let w = random([2, 2, 3, 3], 70);
    let huge = 1usize << 40;
    let err = conv::strided_norm(w.view(), 1, [1, 1], [1, 1], [huge, huge]).unwrap_err().to_string();
    assert!(err.contains("too large to bound"), "{err}");
    let err = conv::strided_norm(w.view(), 1, [usize::MAX, 3], [1 << 12, 1 << 12], [1 << 12, 1 << 12])
        .unwrap_err()
        .to_string();
    assert!(err.contains("too large to bound"), "{err}");
    let attrs = vec![attr::ints("kernel_shape", &[3, 3]), attr::ints("dilations", &[i64::MAX, 1])];
    let err = format!("{:#}", spectral::analyse(&conv_model(&w, [2, 8, 8], attrs)).unwrap_err());
    assert!(err.contains("Conv") && err.contains("dilations"), "{err}");
}
