//! Krylov methods for spectral norms against dense linear algebra:
//! Golub–Kahan–Lanczos against nalgebra's SVD on matrices with separated,
//! clustered, repeated and decaying top singular values; the Lanczos bound
//! of a large fully connected layer against its exact σ_max.

use advx::spectral::lanczos::{self, Operator, Transposed};
use advx::spectral::{dense, svd};
use nalgebra::{DMatrix, DVector};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

fn sigma_max(m: &DMatrix<f64>) -> f64 {
    m.singular_values().max()
}

/// A dense matrix as a Lanczos operator.
struct Dense(DMatrix<f64>);

impl Operator for Dense {
    fn shape(&self) -> (usize, usize) {
        self.0.shape()
    }
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> anyhow::Result<()> {
        out.copy_from_slice((&self.0 * DVector::from_column_slice(x)).as_slice());
        Ok(())
    }
    fn apply_transpose(&mut self, y: &[f64], out: &mut [f64]) -> anyhow::Result<()> {
        out.copy_from_slice((self.0.transpose() * DVector::from_column_slice(y)).as_slice());
        Ok(())
    }
}

fn gaussian(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DMatrix::from_fn(rows, cols, |_, _| rng.sample(StandardNormal))
}

/// `U diag(s) Vᵀ` with random orthonormal `U` and `V`.
fn with_spectrum(rows: usize, cols: usize, s: &[f64], seed: u64) -> DMatrix<f64> {
    let u = gaussian(rows, s.len(), seed).qr().q();
    let v = gaussian(cols, s.len(), seed + 1).qr().q();
    u * DMatrix::from_diagonal(&DVector::from_column_slice(s)) * v.transpose()
}

#[test]
fn lanczos_matches_a_dense_svd_and_never_exceeds_it() {
    let n = 60;
    let separated = gaussian(80, n, 1);
    let wide = gaussian(40, 90, 2);
    let clustered: Vec<f64> = (0..n).map(|i| if i < 5 { 1.0 - 1e-7 * i as f64 } else { 0.9 / (i as f64) }).collect();
    let repeated: Vec<f64> = (0..n).map(|i| if i < 4 { 2.0 } else { 1.99 - 0.01 * i as f64 }).collect();
    let decaying: Vec<f64> = (0..n).map(|i| 10f64.powf(-12.0 * i as f64 / (n - 1) as f64)).collect();
    let cases = [
        ("separated", separated),
        ("wide", wide),
        ("clustered", with_spectrum(70, n, &clustered, 3)),
        ("repeated", with_spectrum(n, 75, &repeated, 5)),
        ("ill-conditioned", with_spectrum(n, n, &decaying, 7)),
    ];
    for (name, matrix) in cases {
        let exact = sigma_max(&matrix);
        let options = lanczos::Options { tolerance: 1e-10, max_steps: 200, seed: 11 };
        let limit = matrix.nrows().min(matrix.ncols());
        let mut op = Dense(matrix);
        let e = lanczos::sigma_max(&mut op, &options).unwrap();
        assert!(e.relative_residual() <= 1e-10 || e.steps == limit, "{name}: {e:?}");
        assert!(relative(e.sigma, exact) < 1e-6, "{name}: {} vs {exact}", e.sigma);
        assert!(e.sigma <= exact * (1.0 + 1e-12), "{name}: {} exceeds {exact}", e.sigma);
        let t = lanczos::sigma_max(&mut Transposed(&mut op), &options).unwrap();
        assert!(relative(t.sigma, exact) < 1e-6, "{name}, transposed: {} vs {exact}", t.sigma);
    }
}

#[test]
fn lanczos_stops_at_the_tolerance_or_the_step_limit_from_below() {
    let mut op = Dense(gaussian(300, 200, 4));
    let exact = sigma_max(&op.0);
    let loose = lanczos::sigma_max(&mut op, &lanczos::Options { tolerance: 1e-2, max_steps: 200, seed: 1 }).unwrap();
    assert!(loose.relative_residual() <= 1e-2 && loose.steps < 200, "{loose:?}");
    let tight = lanczos::sigma_max(&mut op, &lanczos::Options { tolerance: 1e-9, max_steps: 200, seed: 1 }).unwrap();
    assert!(tight.steps > loose.steps && tight.relative_residual() <= 1e-9, "{tight:?}");
    assert!(loose.sigma <= tight.sigma && tight.sigma <= exact * (1.0 + 1e-12));
    assert!(relative(tight.sigma, exact) < 1e-9);
    let capped = lanczos::sigma_max(&mut op, &lanczos::Options { tolerance: 1e-9, max_steps: 3, seed: 1 }).unwrap();
    assert_eq!(capped.steps, 3);
    assert!(capped.sigma < tight.sigma);
}

/// `AᵀA` of a dense matrix as a symmetric Lanczos operator.
struct Gram(DMatrix<f64>);

impl lanczos::Symmetric for Gram {
    fn dim(&self) -> usize {
        self.0.ncols()
    }
    fn apply(&mut self, x: &[f64], out: &mut [f64]) -> anyhow::Result<()> {
        out.copy_from_slice((self.0.transpose() * (&self.0 * DVector::from_column_slice(x))).as_slice());
        Ok(())
    }
}

#[test]
fn symmetric_lanczos_reaches_the_largest_eigenvalue_from_below() {
    let repeated: Vec<f64> = (0..50).map(|i| if i < 3 { 1.0 } else { 0.99 - 0.01 * i as f64 }).collect();
    for (name, a) in [("gaussian", gaussian(70, 50, 1)), ("repeated", with_spectrum(50, 50, &repeated, 2))] {
        let exact = sigma_max(&a).powi(2);
        let mut op = Gram(a);
        // A seed of its own: `with_spectrum`'s seeds would start on a singular vector.
        let (all, steps) = lanczos::lambda_max(&mut op, 500, 99).unwrap();
        assert!(steps <= 50 && relative(all, exact) < 1e-10, "{name}: {all} vs {exact} after {steps} steps");
        let (few, steps) = lanczos::lambda_max(&mut op, 5, 99).unwrap();
        assert_eq!(steps, 5, "{name}");
        assert!(few <= exact * (1.0 + 1e-12) && few < all, "{name}: {few} vs {exact}");
    }
}

fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0f32..1.0))
}

#[test]
fn the_lanczos_bound_of_a_large_weight_is_above_its_exact_norm_within_the_inflation() {
    // 700×400 and 400×700: more dimensions than steps (about 250), so the
    // Krylov space is not the whole space; 300×120: it is.
    for (rows, cols, seed) in [(700, 400, 1), (400, 700, 2), (300, 120, 3)] {
        let w = uniform(rows, cols, seed);
        let exact = svd::sigma_max_f32(w.view()).unwrap();
        let (bound, method) = dense::sigma_bound(w.view(), 0).unwrap();
        assert!(bound >= exact, "{rows}×{cols}: {bound} < {exact}");
        assert!(bound <= exact * dense::INFLATION, "{rows}×{cols}: {bound} vs {exact}");
        assert!(method.contains("Kuczyński–Woźniakowski") && method.contains("1e-12"), "{method}");
        let (steps, _) = dense::plan(cols);
        assert!(method.contains(&format!("{steps} steps")), "{method}");
    }
}

#[test]
fn a_weight_under_the_threshold_keeps_its_exact_svd() {
    for (rows, cols) in [(784, 100), (100, 100), (100, 10)] {
        let w = uniform(rows, cols, 9);
        let (bound, method) = dense::sigma_bound(w.view(), dense::EXACT_WORK).unwrap();
        assert_eq!(bound, svd::sigma_max_f32(w.view()).unwrap());
        assert_eq!(method, format!("σ_max of {rows}×{cols}"));
    }
    let mut nan = uniform(300, 200, 1);
    nan[[7, 3]] = f32::NAN;
    assert!(dense::sigma_bound(nan.view(), 0).unwrap_err().to_string().contains("NaN"));
}
