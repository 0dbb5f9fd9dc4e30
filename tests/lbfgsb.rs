//! The batched L-BFGS-B solver (`advx::attack::lbfgsb`) against answers
//! known independently: closed forms, an interior-point QP solver
//! (Clarabel), the KKT conditions, and scipy's `fmin_l_bfgs_b` (the
//! reference Fortran code) when the project's `.venv` has scipy.

use std::cell::RefCell;
use std::path::Path;
use std::process::Command;

use advx::attack::lbfgsb::{self, Options, Reason, Solver, Status};
use anyhow::{Result, bail};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const INF: f64 = f64::INFINITY;

/// Options asking for more accuracy than the defaults, yet within what
/// f's rounding allows on these problems (f ≈ 10 has ulp ≈ 2e-15, so its
/// values stop telling points apart within ~1e-8 of a minimiser).
fn tight() -> Options {
    Options { pgtol: 1e-7, factr: 10.0, ..Options::default() }
}

/// Runs one solver to the end on `objective` (f returned, g written).
fn solve(solver: &mut Solver, objective: &dyn Fn(&[f64], &mut [f64]) -> f64) {
    while let Some(x) = solver.ask() {
        let x = x.to_vec();
        let mut g = vec![0.0; x.len()];
        let f = objective(&x, &mut g);
        solver.tell(f, &g).unwrap();
    }
}

fn new_solver(x0: &[f64], lower: &[f64], upper: &[f64], options: Options) -> Solver {
    Solver::new(x0.to_vec(), lower.to_vec(), upper.to_vec(), options).unwrap()
}

fn max_abs_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------
// Test problems

/// f = ½xᵀAx − bᵀx.
#[derive(Clone, Debug)]
struct Quadratic {
    a: Array2<f64>,
    b: Vec<f64>,
}

impl Quadratic {
    /// A = QQᵀ/n + I/2 for a random Q: well conditioned, dense.
    fn random(n: usize, b_scale: f64, rng: &mut ChaCha8Rng) -> Quadratic {
        let q = Array2::from_shape_fn((n, n), |_| rng.random_range(-1.0..1.0));
        let a = q.dot(&q.t()) / n as f64 + Array2::<f64>::eye(n) * 0.5;
        let b = (0..n).map(|_| rng.random_range(-b_scale..b_scale)).collect();
        Quadratic { a, b }
    }

    fn value(&self, x: &[f64], g: &mut [f64]) -> f64 {
        let mut f = 0.0;
        for i in 0..x.len() {
            g[i] = self.a.row(i).iter().zip(x).map(|(a, x)| a * x).sum::<f64>() - self.b[i];
            f += 0.5 * x[i] * (g[i] - self.b[i]);
        }
        f
    }
}

/// The chained Rosenbrock function Σ 100(x_{i+1} − x_i²)² + (1 − x_i)².
fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
    g.iter_mut().for_each(|v| *v = 0.0);
    let mut f = 0.0;
    for i in 0..x.len() - 1 {
        let (a, b) = (x[i + 1] - x[i] * x[i], 1.0 - x[i]);
        f += 100.0 * a * a + b * b;
        g[i] += -400.0 * a * x[i] - 2.0 * b;
        g[i + 1] += 200.0 * a;
    }
    f
}

/// The classic start (−1.2, 1, −1.2, 1, …).
fn rosenbrock_start(n: usize) -> Vec<f64> {
    (0..n).map(|i| if i % 2 == 0 { -1.2 } else { 1.0 }).collect()
}

/// A x = b by Gaussian elimination with partial pivoting.
fn solve_linear(a: &Array2<f64>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut m = a.clone();
    let mut x = b.to_vec();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| m[[i, col]].abs().total_cmp(&m[[j, col]].abs())).unwrap();
        for j in 0..n {
            m.swap([col, j], [pivot, j]);
        }
        x.swap(col, pivot);
        for row in col + 1..n {
            let factor = m[[row, col]] / m[[col, col]];
            for j in col..n {
                m[[row, j]] -= factor * m[[col, j]];
            }
            x[row] -= factor * x[col];
        }
    }
    for row in (0..n).rev() {
        let tail: f64 = (row + 1..n).map(|j| m[[row, j]] * x[j]).sum();
        x[row] = (x[row] - tail) / m[[row, row]];
    }
    x
}

/// min ½xᵀAx − bᵀx over lower <= x <= upper (finite bounds) by Clarabel.
fn clarabel_box_qp(problem: &Quadratic, lower: &[f64], upper: &[f64]) -> Vec<f64> {
    let n = problem.b.len();
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..n {
        for i in 0..=j {
            rowval.push(i);
            nzval.push(problem.a[[i, j]]);
        }
        colptr.push(rowval.len());
    }
    let p = CscMatrix::new(n, n, colptr, rowval, nzval);
    let q: Vec<f64> = problem.b.iter().map(|v| -v).collect();
    // x <= upper and −x <= −lower.
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for k in 0..n {
        rowval.extend([k, n + k]);
        nzval.extend([1.0, -1.0]);
        colptr.push(rowval.len());
    }
    let a = CscMatrix::new(2 * n, n, colptr, rowval, nzval);
    let rhs: Vec<f64> = upper.iter().copied().chain(lower.iter().map(|v| -v)).collect();
    let settings = DefaultSettingsBuilder::default().verbose(false).build().unwrap();
    let mut solver = DefaultSolver::new(&p, &q, &a, &rhs, &[NonnegativeConeT(2 * n)], settings).unwrap();
    solver.solve();
    assert_eq!(solver.solution.status, SolverStatus::Solved);
    solver.solution.x.clone()
}

/// The KKT conditions of min f over the box at x with gradient g: zero
/// gradient on free variables, multipliers of the right sign on active
/// ones. Returns how many variables sit at their lower and upper bounds.
fn assert_kkt(x: &[f64], g: &[f64], lower: &[f64], upper: &[f64], tolerance: f64) -> (usize, usize) {
    let (mut at_lower, mut at_upper) = (0, 0);
    for i in 0..x.len() {
        assert!(lower[i] <= x[i] && x[i] <= upper[i], "x[{i}] = {} outside [{}, {}]", x[i], lower[i], upper[i]);
        if x[i] == lower[i] && x[i] < upper[i] {
            assert!(g[i] >= -tolerance, "x[{i}] at its lower bound but g = {} pulls it up", g[i]);
            at_lower += 1;
        } else if x[i] == upper[i] && x[i] > lower[i] {
            assert!(g[i] <= tolerance, "x[{i}] at its upper bound but g = {} pushes it down", g[i]);
            at_upper += 1;
        } else if lower[i] < upper[i] {
            assert!(g[i].abs() <= tolerance, "x[{i}] = {} is free but g = {}", x[i], g[i]);
        }
    }
    (at_lower, at_upper)
}

// ---------------------------------------------------------------------------
// Exact answers

#[test]
fn unconstrained_quadratic_reaches_the_exact_minimiser() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = 50;
    let problem = Quadratic::random(n, 1.0, &mut rng);
    let exact = solve_linear(&problem.a, &problem.b);
    let mut solver = new_solver(&vec![0.0; n], &vec![-INF; n], &vec![INF; n], tight());
    solve(&mut solver, &|x, g| problem.value(x, g));
    assert!(solver.status().unwrap().converged(), "{:?}", solver.status());
    let error = max_abs_difference(solver.x(), &exact);
    assert!(error < 1e-6, "off the exact minimiser by {error}");
    println!("quadratic n=50: {} iterations, {} evaluations", solver.iterations(), solver.evaluations());
    // L-BFGS on a well-conditioned quadratic: far fewer steps than conjugate directions would need.
    assert!(solver.iterations() < 50, "{} iterations", solver.iterations());
}

#[test]
fn diagonal_quadratic_in_a_box_is_the_clipped_minimiser() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 40;
    let d: Vec<f64> = (0..n).map(|_| rng.random_range(0.5..5.0)).collect();
    let b: Vec<f64> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
    let lower: Vec<f64> = (0..n).map(|i| if i % 7 == 0 { -INF } else { rng.random_range(-1.0..0.0) }).collect();
    let upper: Vec<f64> = (0..n).map(|i| if i % 5 == 0 { INF } else { rng.random_range(0.0..1.0) }).collect();
    let exact: Vec<f64> = (0..n).map(|i| (b[i] / d[i]).max(lower[i]).min(upper[i])).collect();
    let active = (0..n).filter(|&i| exact[i] == lower[i] || exact[i] == upper[i]).count();
    assert!(active > n / 3, "the test wants many active bounds, has {active}");
    let objective = |x: &[f64], g: &mut [f64]| -> f64 {
        (0..n)
            .map(|i| {
                g[i] = d[i] * x[i] - b[i];
                0.5 * d[i] * x[i] * x[i] - b[i] * x[i]
            })
            .sum()
    };
    let x0: Vec<f64> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    let mut solver = new_solver(&x0, &lower, &upper, tight());
    solve(&mut solver, &objective);
    assert!(solver.status().unwrap().converged(), "{:?}", solver.status());
    let error = max_abs_difference(solver.x(), &exact);
    assert!(error < 1e-6, "off clip(b/d) by {error}");
    // Active bounds are hit exactly, not approached.
    for i in (0..n).filter(|&i| exact[i] == lower[i] || exact[i] == upper[i]) {
        assert_eq!(solver.x()[i], exact[i], "variable {i}");
    }
}

#[test]
fn dense_quadratic_in_a_box_meets_kkt_and_clarabel() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 30;
    // b large enough that the unconstrained optimum leaves [0, 1] on many coordinates.
    let problem = Quadratic::random(n, 3.0, &mut rng);
    let (lower, upper) = (vec![0.0; n], vec![1.0; n]);
    let mut solver = new_solver(&vec![0.5; n], &lower, &upper, tight());
    solve(&mut solver, &|x, g| problem.value(x, g));
    assert!(solver.status().unwrap().converged(), "{:?}", solver.status());
    let mut g = vec![0.0; n];
    problem.value(solver.x(), &mut g);
    let (at_lower, at_upper) = assert_kkt(solver.x(), &g, &lower, &upper, 1e-8);
    assert!(at_lower > 0 && at_upper > 0, "{at_lower} at lower, {at_upper} at upper: the test wants both");
    let reference = clarabel_box_qp(&problem, &lower, &upper);
    let error = max_abs_difference(solver.x(), &reference);
    assert!(error < 1e-6, "{error} from Clarabel's solution");
}

#[test]
fn rosenbrock_unconstrained_reaches_all_ones() {
    for n in [2, 20] {
        let mut solver = new_solver(&rosenbrock_start(n), &vec![-INF; n], &vec![INF; n], tight());
        solve(&mut solver, &rosenbrock);
        assert!(solver.status().unwrap().converged(), "n={n}: {:?}", solver.status());
        let error = max_abs_difference(solver.x(), &vec![1.0; n]);
        assert!(error < 1e-6, "n={n}: {error} from (1, …, 1)");
        println!("rosenbrock n={n}: {} iterations, {} evaluations", solver.iterations(), solver.evaluations());
    }
}

#[test]
fn rosenbrock_in_a_box_without_its_minimum_stops_at_a_kkt_point() {
    for n in [2, 20] {
        let lower: Vec<f64> = (0..n).map(|i| if i % 3 == 0 { -1.5 } else { -INF }).collect();
        let upper = vec![0.7; n];
        let mut solver = new_solver(&rosenbrock_start(n), &lower, &upper, tight());
        solve(&mut solver, &rosenbrock);
        assert!(solver.status().unwrap().converged(), "n={n}: {:?}", solver.status());
        let mut g = vec![0.0; n];
        rosenbrock(solver.x(), &mut g);
        let (_, at_upper) = assert_kkt(solver.x(), &g, &lower, &upper, 1e-6);
        assert!(at_upper > 0, "n={n}: no bound active, yet (1, …, 1) is outside the box");
    }
}

#[test]
fn fixed_variables_and_a_start_outside_the_box() {
    let n = 6;
    let lower = vec![0.0, 0.3, -INF, 0.0, 0.0, 2.0];
    let upper = vec![1.0, 0.3, INF, 1.0, 1.0, 2.0];
    let x0 = vec![5.0, 9.0, 0.0, -3.0, 0.5, 0.0];
    let solver = new_solver(&x0, &lower, &upper, tight());
    assert_eq!(solver.x(), &[1.0, 0.3, 0.0, 0.0, 0.5, 2.0]);
    let mut solver = solver;
    // f = Σ (x_i − 0.4 i)².
    solve(&mut solver, &|x, g| {
        (0..n)
            .map(|i| {
                let r = x[i] - 0.4 * i as f64;
                g[i] = 2.0 * r;
                r * r
            })
            .sum()
    });
    assert!(solver.status().unwrap().converged(), "{:?}", solver.status());
    let expected = [0.0, 0.3, 0.8, 1.0, 1.0, 2.0];
    assert!(max_abs_difference(solver.x(), &expected) < 1e-8, "{:?}", solver.x());
}

// ---------------------------------------------------------------------------
// Batches

/// Problem p of the batch test, n = 20: even p a dense quadratic in a box,
/// odd p a Rosenbrock valley shifted and scaled, in a box for some p.
struct BatchProblem {
    quadratic: Option<Quadratic>,
    shift: f64,
    lower: Vec<f64>,
    upper: Vec<f64>,
    x0: Vec<f64>,
}

impl BatchProblem {
    fn new(p: usize, n: usize) -> BatchProblem {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + p as u64);
        let x0: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        if p.is_multiple_of(2) {
            let quadratic = Quadratic::random(n, 1.0 + p as f64 / 10.0, &mut rng);
            BatchProblem { quadratic: Some(quadratic), shift: 0.0, lower: vec![-1.0; n], upper: vec![1.0; n], x0 }
        } else {
            let upper = if p.is_multiple_of(3) { vec![0.8; n] } else { vec![INF; n] };
            BatchProblem { quadratic: None, shift: p as f64 / 30.0, lower: vec![-2.0; n], upper, x0 }
        }
    }

    fn value(&self, x: &[f64], g: &mut [f64]) -> f64 {
        match &self.quadratic {
            Some(q) => q.value(x, g),
            None => {
                let shifted: Vec<f64> = x.iter().map(|v| v + self.shift).collect();
                let f = rosenbrock(&shifted, g);
                g.iter_mut().for_each(|v| *v *= 1.0 + self.shift);
                f * (1.0 + self.shift)
            }
        }
    }

    fn solver(&self) -> Solver {
        new_solver(&self.x0, &self.lower, &self.upper, Options::default())
    }
}

/// An `evaluate` for minimize_batch over `problems`.
fn batch_evaluate(problems: &[BatchProblem], which: &[usize], points: ArrayView2<f64>) -> (Vec<f64>, Array2<f64>) {
    let mut gradients = Array2::zeros(points.raw_dim());
    let mut values = Vec::new();
    for (row, &p) in which.iter().enumerate() {
        let x = points.row(row).to_vec();
        let mut g = vec![0.0; x.len()];
        values.push(problems[p].value(&x, &mut g));
        gradients.row_mut(row).iter_mut().zip(g).for_each(|(to, v)| *to = v);
    }
    (values, gradients)
}

#[test]
fn a_batch_solves_each_problem_as_if_alone_with_shrinking_calls() {
    let (count, n) = (30, 20);
    let problems: Vec<BatchProblem> = (0..count).map(|p| BatchProblem::new(p, n)).collect();
    let mut batch: Vec<Solver> = problems.iter().map(BatchProblem::solver).collect();
    let calls = RefCell::new(Vec::<Vec<usize>>::new());
    lbfgsb::minimize_batch(&mut batch, |which, points| {
        assert_eq!(points.dim(), (which.len(), n));
        calls.borrow_mut().push(which.to_vec());
        Ok(batch_evaluate(&problems, which, points))
    })
    .unwrap();
    for (p, (problem, batched)) in problems.iter().zip(&batch).enumerate() {
        let mut alone = problem.solver();
        solve(&mut alone, &|x, g| problem.value(x, g));
        assert!(batched.status().unwrap().converged(), "problem {p}: {:?}", batched.status());
        assert_eq!(batched.status(), alone.status(), "problem {p}");
        assert_eq!(batched.x(), alone.x(), "problem {p}");
        assert_eq!(batched.f(), alone.f(), "problem {p}");
        assert_eq!(batched.iterations(), alone.iterations(), "problem {p}");
        assert_eq!(batched.evaluations(), alone.evaluations(), "problem {p}");
    }
    let calls = calls.into_inner();
    assert_eq!(calls[0], (0..count).collect::<Vec<_>>(), "the first call evaluates every problem");
    for pair in calls.windows(2) {
        assert!(pair[1].iter().all(|p| pair[0].contains(p)), "{:?} is not within {:?}", pair[1], pair[0]);
    }
    let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
    assert!(sizes.last() < Some(&(count / 2)), "the active set never shrank: {sizes:?}");
    // Each problem is evaluated once per call it is in.
    let most = batch.iter().map(Solver::evaluations).max().unwrap();
    assert_eq!(calls.len(), most);
}

/// Problem p of the large batch test: a chained Rosenbrock valley of
/// n = 784, shifted and scaled by p, in a box that cuts off its minimum.
fn large_problem(p: usize, x: &[f64], g: &mut [f64]) -> f64 {
    let (shift, scale) = (p as f64 / 50.0, 1.0 + p as f64 / 10.0);
    let shifted: Vec<f64> = x.iter().map(|v| v + shift).collect();
    let f = rosenbrock(&shifted, g);
    g.iter_mut().for_each(|v| *v *= scale);
    f * scale
}

#[test]
fn a_large_batch_into_buffers_solves_each_problem_as_if_alone() {
    // 24 × 784 variables: enough work that `tell` is shared between threads.
    let (count, n) = (24, 784);
    let (lower, upper) = (vec![-2.0; n], vec![0.9; n]);
    let options = Options { max_iterations: 60, ..Options::default() };
    let solver = |p: usize| {
        let x0: Vec<f64> = rosenbrock_start(n).iter().map(|v| v * (1.0 - p as f64 / 100.0)).collect();
        new_solver(&x0, &lower, &upper, options.clone())
    };
    let mut batch: Vec<Solver> = (0..count).map(solver).collect();
    lbfgsb::minimize_batch_into(&mut batch, 2, |which, points, values, mut gradients| {
        assert_eq!((points.dim(), gradients.dim(), values.len()), ((which.len(), n), (which.len(), n), which.len()));
        for (row, &p) in which.iter().enumerate() {
            let g = gradients.row_mut(row).into_slice().unwrap();
            values[row] = large_problem(p, points.row(row).as_slice().unwrap(), g);
        }
        Ok(())
    })
    .unwrap();
    for (p, batched) in batch.iter().enumerate() {
        let mut alone = solver(p);
        solve(&mut alone, &|x, g| large_problem(p, x, g));
        assert!(batched.status().is_some(), "problem {p} did not finish");
        assert_eq!(batched.status(), alone.status(), "problem {p}");
        assert_eq!(batched.x(), alone.x(), "problem {p}");
        assert_eq!(batched.f(), alone.f(), "problem {p}");
        assert_eq!(batched.evaluations(), alone.evaluations(), "problem {p}");
    }
}

#[test]
fn a_batch_can_be_stopped_or_fail() {
    let (count, n) = (8, 20);
    let problems: Vec<BatchProblem> = (0..count).map(|p| BatchProblem::new(p, n)).collect();
    let mut solvers: Vec<Solver> = problems.iter().map(BatchProblem::solver).collect();
    let mut rounds = 0;
    lbfgsb::minimize_batch_until(
        &mut solvers,
        || {
            rounds += 1;
            rounds > 3
        },
        |which, points| Ok(batch_evaluate(&problems, which, points)),
    )
    .unwrap();
    for (solver, problem) in solvers.iter().zip(&problems) {
        assert_eq!(solver.status(), Some(&Status::Stopped));
        assert_eq!(solver.evaluations(), 3);
        assert!(solver.x().iter().zip(&problem.lower).all(|(x, l)| x >= l));
    }

    let mut solvers: Vec<Solver> = problems.iter().map(BatchProblem::solver).collect();
    let mut calls = 0;
    let error = lbfgsb::minimize_batch(&mut solvers, |which, points| {
        calls += 1;
        if calls == 3 {
            bail!("the runtime failed");
        }
        Ok(batch_evaluate(&problems, which, points))
    })
    .unwrap_err();
    assert_eq!(error.to_string(), "the runtime failed");
    assert!(solvers.iter().all(|s| s.status().is_none() && s.evaluations() == 2));
}

#[test]
fn a_malformed_answer_from_evaluate_is_an_error() {
    let mut solvers = vec![new_solver(&[0.0; 3], &[0.0; 3], &[1.0; 3], Options::default())];
    let short = lbfgsb::minimize_batch(&mut solvers, |_, _| Ok((vec![1.0], Array2::zeros((1, 2)))));
    assert!(short.unwrap_err().to_string().contains("shape"));
    let no_values = lbfgsb::minimize_batch(&mut solvers, |_, _| Ok((vec![], Array2::zeros((1, 3)))));
    assert!(no_values.unwrap_err().to_string().contains("0 values for 1 points"));
    let mut mixed = vec![
        new_solver(&[0.0; 3], &[0.0; 3], &[1.0; 3], Options::default()),
        new_solver(&[0.0; 2], &[0.0; 2], &[1.0; 2], Options::default()),
    ];
    let sizes = lbfgsb::minimize_batch(&mut mixed, |_, _| unreachable!());
    assert!(sizes.unwrap_err().to_string().contains("one batch needs one size"));
}

// ---------------------------------------------------------------------------
// Limits and bad input

#[test]
fn limits_stop_the_solver_where_asked() {
    let n = 20;
    let start = rosenbrock_start(n);
    let (lower, upper) = (vec![-INF; n], vec![INF; n]);
    let mut solver = new_solver(&start, &lower, &upper, Options { max_iterations: 3, ..Options::default() });
    solve(&mut solver, &rosenbrock);
    assert_eq!((solver.status(), solver.iterations()), (Some(&Status::IterationLimit), 3));
    let mut solver = new_solver(&start, &lower, &upper, Options { max_evaluations: 5, ..Options::default() });
    solve(&mut solver, &rosenbrock);
    assert_eq!((solver.status(), solver.evaluations()), (Some(&Status::EvaluationLimit), 5));
    let mut g = vec![0.0; n];
    assert_eq!(rosenbrock(solver.x(), &mut g), solver.f(), "x() and f() describe the same point");
    assert!(solver.f() < rosenbrock(&start, &mut g), "the best point improves on the start");
    let mut solver = new_solver(&start, &lower, &upper, Options { max_iterations: 0, ..Options::default() });
    solve(&mut solver, &rosenbrock);
    assert_eq!((solver.status(), solver.evaluations()), (Some(&Status::IterationLimit), 1));
}

#[test]
fn non_finite_values_stop_the_problem_with_its_best_point() {
    // f = Σ (x_i − 1)², NaN past x_0 = 0.5: the first step (to x = 1) lands there.
    let nan_beyond = |x: &[f64], g: &mut [f64], nan_in_gradient: bool| -> f64 {
        let f = x.iter().map(|v| (v - 1.0) * (v - 1.0)).sum();
        g.iter_mut().zip(x).for_each(|(g, v)| *g = 2.0 * (v - 1.0));
        match (x[0] > 0.5, nan_in_gradient) {
            (true, true) => {
                g[1] = f64::NAN;
                f
            }
            (true, false) => f64::NAN,
            _ => f,
        }
    };
    for nan_in_gradient in [false, true] {
        let mut solver = new_solver(&[0.0, 0.0], &[-INF; 2], &[INF; 2], Options::default());
        solve(&mut solver, &|x, g| nan_beyond(x, g, nan_in_gradient));
        assert_eq!(solver.status(), Some(&Status::NonFinite));
        assert!(solver.f().is_finite() && solver.x()[0] <= 0.5, "{:?} {}", solver.x(), solver.f());
        assert!(solver.ask().is_none());
        assert!(solver.tell(1.0, &[0.0, 0.0]).is_err(), "a finished solver refuses more");
    }
    // NaN at the start: nothing better than x0, whose f is unknown.
    let mut solver = new_solver(&[0.0], &[-1.0], &[1.0], Options::default());
    solver.tell(f64::INFINITY, &[0.0]).unwrap();
    assert_eq!((solver.status(), solver.x()), (Some(&Status::NonFinite), &[0.0][..]));
    assert!(solver.f().is_nan());
    // In a batch, the others go on.
    let mut solvers = vec![
        new_solver(&[0.0, 0.0], &[-INF; 2], &[INF; 2], Options::default()),
        new_solver(&[-3.0, 0.0], &[-INF; 2], &[0.25; 2], Options::default()),
    ];
    lbfgsb::minimize_batch(&mut solvers, |which, points| {
        let mut g = Array2::zeros(points.raw_dim());
        let mut values = Vec::new();
        for (row, _) in which.iter().enumerate() {
            let x = points.row(row).to_vec();
            let mut gr = vec![0.0; 2];
            values.push(nan_beyond(&x, &mut gr, false));
            g.row_mut(row).assign(&ndarray::Array1::from(gr));
        }
        Ok((values, g))
    })
    .unwrap();
    assert_eq!(solvers[0].status(), Some(&Status::NonFinite));
    assert_eq!(solvers[1].status(), Some(&Status::Converged(Reason::ProjectedGradient)));
    assert_eq!(solvers[1].x(), &[0.25, 0.25]);
}

/// An ill-conditioned quadratic in [0, 1]ⁿ evaluated in f32, as a
/// network's loss is: f stops telling points apart long before pgtol (0
/// here) is met. Without a noise level the solver goes on with steps that
/// round away; with f32's, it stops once a step could change f by less than
/// its rounding, at a point as good within that rounding.
#[test]
fn a_noise_level_stops_where_f32_rounding_hides_progress() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 60;
    let mut problem = Quadratic::random(n, 3.0, &mut rng);
    // Curvatures from 1 to 1000: many small steps near the end.
    let scale: Vec<f64> = (0..n).map(|i| 10f64.powf(1.5 * i as f64 / n as f64)).collect();
    problem.a = Array2::from_shape_fn((n, n), |(i, j)| problem.a[[i, j]] * scale[i] * scale[j]);
    let (a32, b32) = (problem.a.mapv(|v| v as f32), problem.b.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let in_f32 = |x: &[f64], g: &mut [f64]| -> f64 {
        let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut f = 0.0f32;
        for i in 0..n {
            let ax: f32 = a32.row(i).iter().zip(&x).map(|(a, x)| a * x).sum();
            g[i] = (ax - b32[i]) as f64;
            f += 0.5 * x[i] * (ax - 2.0 * b32[i]);
        }
        f as f64
    };
    let (lower, upper) = (vec![0.0; n], vec![1.0; n]);
    let exact = clarabel_box_qp(&problem, &lower, &upper);
    let f_exact = problem.value(&exact, &mut vec![0.0; n]);
    let run = |noise: f64| {
        let options = Options { pgtol: 0.0, noise, ..Options::default() };
        let mut solver = new_solver(&vec![0.5; n], &lower, &upper, options);
        solve(&mut solver, &in_f32);
        let f = problem.value(solver.x(), &mut vec![0.0; n]);
        (solver.status().copied().unwrap(), solver.evaluations(), (f - f_exact) / f_exact.abs())
    };
    let (plain_status, plain_evaluations, plain_gap) = run(0.0);
    let (status, evaluations, gap) = run(f32::EPSILON as f64);
    println!("noise 0: {plain_status}, {plain_evaluations} evaluations, gap {plain_gap:e}");
    println!("noise f32: {status}, {evaluations} evaluations, gap {gap:e}");
    assert_eq!(status, Status::Converged(Reason::Noise));
    assert_ne!(plain_status, Status::Converged(Reason::Noise));
    assert!(
        evaluations < plain_evaluations,
        "{evaluations} evaluations with the noise level, {plain_evaluations} without: it should save some"
    );
    assert!(
        gap.abs() < 1e-5 && plain_gap.abs() < 1e-5,
        "f off the optimum by {gap:e} (relatively), {plain_gap:e} without"
    );
}

/// The attack's search over c: a restart on `a·f + (1 − a)|x − x0|²` keeps
/// the memory, exactly reweighted, and starts without an evaluation; it
/// reaches the new optimum (a box QP, checked against Clarabel) in fewer
/// evaluations than a new solver from the same point.
#[test]
fn a_restart_on_a_reweighted_objective_reaches_its_optimum_sooner() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let n = 40;
    let problem = Quadratic::random(n, 2.0, &mut rng);
    let (lower, upper) = (vec![0.0; n], vec![1.0; n]);
    let x0 = vec![0.5; n];
    let mut first = new_solver(&x0, &lower, &upper, tight());
    solve(&mut first, &|x, g| problem.value(x, g));
    // a > 1 keeps the problem convex while a·0.5 + 2(1 − a) > 0 (A >= I/2): a < 4/3.
    for a in [0.2, 1.25] {
        // a·½xᵀAx − a·bᵀx + (1 − a)|x − x0|²: A' = aA + 2(1 − a)I, b' = ab + 2(1 − a)x0.
        let mut next = problem.clone();
        next.a = &problem.a * a + Array2::<f64>::eye(n) * (2.0 * (1.0 - a));
        next.b = problem.b.iter().zip(&x0).map(|(b, x)| a * b + 2.0 * (1.0 - a) * x).collect();
        let objective = |x: &[f64], g: &mut [f64]| next.value(x, g);
        let start = first.x().to_vec();
        let mut g = vec![0.0; n];
        let f = objective(&start, &mut g);
        let mut restarted = first.clone();
        restarted.restart(a, 2.0 * (1.0 - a), f, &g).unwrap();
        assert_eq!(restarted.evaluations(), 0, "the restart's start costs no evaluation");
        solve(&mut restarted, &objective);
        let mut fresh = new_solver(&start, &lower, &upper, tight());
        solve(&mut fresh, &objective);
        let exact = clarabel_box_qp(&next, &lower, &upper);
        for solver in [&restarted, &fresh] {
            assert!(solver.status().unwrap().converged(), "a = {a}: {}", solver.status().unwrap());
            assert!(max_abs_difference(solver.x(), &exact) < 1e-5, "a = {a}: off Clarabel's optimum");
        }
        println!("a = {a}: {} evaluations restarted, {} fresh", restarted.evaluations(), fresh.evaluations());
        assert!(restarted.evaluations() < fresh.evaluations(), "a = {a}: the memory should save evaluations");
    }
    let mut unevaluated = new_solver(&x0, &lower, &upper, tight());
    let error = unevaluated.restart(0.5, 1.0, 1.0, &vec![0.0; n]).unwrap_err().to_string();
    assert!(error.contains("evaluated best point"), "{error}");
    let error = first.restart(-1.0, 0.0, 1.0, &vec![0.0; n]).unwrap_err().to_string();
    assert!(error.contains("scale must be positive"), "{error}");
}

#[test]
fn bad_input_is_an_error() {
    let options = Options::default;
    let error = |r: Result<Solver>| match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let inverted = error(Solver::new(vec![0.0; 2], vec![0.0, 1.0], vec![1.0, 0.5], options()));
    assert!(inverted.contains("variable 1") && inverted.contains("not <="), "{inverted}");
    assert!(error(Solver::new(vec![0.0; 2], vec![0.0; 2], vec![1.0; 3], options())).contains("3 upper bounds"));
    assert!(error(Solver::new(vec![0.0; 3], vec![0.0; 2], vec![1.0; 2], options())).contains("x0 has 3"));
    assert!(error(Solver::new(vec![f64::NAN], vec![0.0], vec![1.0], options())).contains("x0[0]"));
    assert!(error(Solver::new(vec![0.0], vec![f64::NAN], vec![1.0], options())).contains("variable 0"));
    assert!(error(Solver::new(vec![0.0], vec![INF], vec![INF], options())).contains("hold no number"));
    let no_memory = Options { memory: 0, ..options() };
    assert!(error(Solver::new(vec![0.0], vec![0.0], vec![1.0], no_memory)).contains("memory"));
    for noise in [-1e-7, 1.0, f64::NAN] {
        let noisy = Options { noise, ..options() };
        assert!(error(Solver::new(vec![0.0], vec![0.0], vec![1.0], noisy)).contains("noise"), "noise {noise}");
    }
    let mut solver = Solver::new(vec![0.0; 2], vec![0.0; 2], vec![1.0; 2], options()).unwrap();
    assert!(solver.tell(0.0, &[1.0]).unwrap_err().to_string().contains("length 1"));
}

#[test]
fn zero_variables_converge_after_one_evaluation() {
    let mut solver = Solver::new(vec![], vec![], vec![], Options::default()).unwrap();
    assert_eq!(solver.ask(), Some(&[][..]));
    solver.tell(3.0, &[]).unwrap();
    assert_eq!(solver.status(), Some(&Status::Converged(Reason::ProjectedGradient)));
    assert_eq!((solver.f(), solver.evaluations(), solver.iterations()), (3.0, 1, 0));
    let mut solvers = vec![Solver::new(vec![], vec![], vec![], Options::default()).unwrap(); 3];
    lbfgsb::minimize_batch(&mut solvers, |which, points| {
        assert_eq!(points.dim(), (3, 0));
        Ok((vec![1.0; which.len()], Array2::zeros((which.len(), 0))))
    })
    .unwrap();
    assert!(solvers.iter().all(|s| s.status().is_some_and(Status::converged)));
    lbfgsb::minimize_batch(&mut [], |_, _| unreachable!()).unwrap();
}

// ---------------------------------------------------------------------------
// Against scipy

/// One comparison problem, written out for the Python side as well.
struct ScipyCase {
    name: &'static str,
    x0: Vec<f64>,
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// Some: a quadratic; None: chained Rosenbrock.
    quadratic: Option<Quadratic>,
}

impl ScipyCase {
    fn value(&self, x: &[f64], g: &mut [f64]) -> f64 {
        match &self.quadratic {
            Some(q) => q.value(x, g),
            None => rosenbrock(x, g),
        }
    }

    fn json(&self) -> serde_json::Value {
        let bound = |v: &f64| if v.is_finite() { serde_json::json!(v) } else { serde_json::Value::Null };
        let quadratic = self.quadratic.as_ref().map(|q| {
            let rows: Vec<Vec<f64>> = q.a.rows().into_iter().map(|r| r.to_vec()).collect();
            serde_json::json!({ "a": rows, "b": q.b })
        });
        serde_json::json!({
            "x0": self.x0,
            "lower": self.lower.iter().map(bound).collect::<Vec<_>>(),
            "upper": self.upper.iter().map(bound).collect::<Vec<_>>(),
            "quadratic": quadratic,
        })
    }
}

fn scipy_cases() -> Vec<ScipyCase> {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let rosenbrock_case = |name, n: usize, lower: f64, upper: f64| ScipyCase {
        name,
        x0: rosenbrock_start(n),
        lower: vec![lower; n],
        upper: vec![upper; n],
        quadratic: None,
    };
    let mut cases = vec![
        rosenbrock_case("rosenbrock n=2", 2, -INF, INF),
        rosenbrock_case("rosenbrock n=20", 20, -INF, INF),
        rosenbrock_case("rosenbrock n=10 in [-1.5, 0.7]", 10, -1.5, 0.7),
        rosenbrock_case("rosenbrock n=25 in [-2, 0.9]", 25, -2.0, 0.9),
    ];
    for (name, n, b_scale) in [("quadratic n=50 in [0, 1]", 50, 3.0), ("quadratic n=784 in [0, 1]", 784, 2.0)] {
        let quadratic = Quadratic::random(n, b_scale, &mut rng);
        let x0 = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
        cases.push(ScipyCase { name, x0, lower: vec![0.0; n], upper: vec![1.0; n], quadratic: Some(quadratic) });
    }
    cases
}

const SCIPY_SCRIPT: &str = r#"
import json, sys
import numpy as np
from scipy.optimize import fmin_l_bfgs_b

def rosenbrock(x):
    a, b = x[1:] - x[:-1] ** 2, 1 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] += -400 * a * x[:-1] - 2 * b
    g[1:] += 200 * a
    return float(np.sum(100 * a * a + b * b)), g

def quadratic(a, b):
    def f(x):
        g = a @ x - b
        return float(0.5 * x @ (g - b)), g
    return f

out = []
for case in json.load(sys.stdin):
    q = case["quadratic"]
    func = rosenbrock if q is None else quadratic(np.array(q["a"]), np.array(q["b"]))
    bounds = list(zip(case["lower"], case["upper"]))
    x, f, info = fmin_l_bfgs_b(func, np.array(case["x0"], dtype=float), bounds=bounds, m=10, factr=1e7, pgtol=1e-5)
    out.append({"x": x.tolist(), "f": float(f), "nit": info["nit"], "nfev": info["funcalls"], "warnflag": info["warnflag"]})
json.dump(out, sys.stdout)
"#;

/// scipy's answers for `cases`, or None (with a note) when the project's
/// Python or its scipy is missing.
fn run_scipy(cases: &[ScipyCase]) -> Option<Vec<serde_json::Value>> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let has_scipy = Command::new(&python).args(["-c", "import scipy"]).output().is_ok_and(|o| o.status.success());
    if !has_scipy {
        println!("note: {} has no scipy; skipping the comparison (scripts/setup.sh installs it)", python.display());
        return None;
    }
    let input = serde_json::Value::Array(cases.iter().map(ScipyCase::json).collect()).to_string();
    let mut child = Command::new(&python)
        .args(["-c", SCIPY_SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the scipy script failed");
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn agrees_with_scipy_fmin_l_bfgs_b() {
    let cases = scipy_cases();
    let Some(reference) = run_scipy(&cases) else { return };
    println!("{:<32} {:>14} {:>14} {:>9} {:>9}", "problem", "iterations", "evaluations", "f rel.", "max |Δx|");
    println!("{:<32} {:>14} {:>14}", "", "advx / scipy", "advx / scipy");
    for (case, scipy) in cases.iter().zip(&reference) {
        let mut solver = new_solver(&case.x0, &case.lower, &case.upper, Options::default());
        solve(&mut solver, &|x, g| case.value(x, g));
        let f_scipy = scipy["f"].as_f64().unwrap();
        let x_scipy: Vec<f64> = serde_json::from_value(scipy["x"].clone()).unwrap();
        let (nit, nfev) = (scipy["nit"].as_u64().unwrap() as usize, scipy["nfev"].as_u64().unwrap() as usize);
        let relative = (solver.f() - f_scipy).abs() / f_scipy.abs().max(1.0);
        println!(
            "{:<32} {:>6} / {:<6} {:>6} / {:<6} {relative:>9.1e} {:>9.1e}",
            case.name,
            solver.iterations(),
            nit,
            solver.evaluations(),
            nfev,
            max_abs_difference(solver.x(), &x_scipy)
        );
        assert_eq!(scipy["warnflag"].as_u64(), Some(0), "{}: scipy did not converge", case.name);
        assert!(solver.status().unwrap().converged(), "{}: {:?}", case.name, solver.status());
        assert!(relative <= 1e-6, "{}: f = {} but scipy's {f_scipy}", case.name, solver.f());
        let ballpark = |ours: usize, theirs: usize| ours <= 2 * theirs + 5 && theirs <= 2 * ours + 5;
        assert!(ballpark(solver.iterations(), nit), "{}: {} iterations, scipy {nit}", case.name, solver.iterations());
        assert!(
            ballpark(solver.evaluations(), nfev),
            "{}: {} evaluations, scipy {nfev}",
            case.name,
            solver.evaluations()
        );
    }
}
