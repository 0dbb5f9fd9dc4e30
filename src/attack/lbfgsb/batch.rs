//! Many problems at once: one evaluation per round answers every
//! unfinished problem.

use anyhow::{Context, Result, bail, ensure};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::Solver;
use crate::parallel;

/// Runs every solver to the end, evaluating all unfinished ones together:
/// each round calls `evaluate(which, points)` once, with `which` the
/// indices (into `solvers`, increasing) of the solvers still asking and
/// `points` their points as rows of a [k, n] array; it returns the k values
/// and the [k, n] gradients. All solvers must have the same n.
///
/// An error from `evaluate` (or a malformed answer) stops everything and
/// is returned; each solver keeps its best point so far, and its `status`
/// stays None. To stop early without an error use [`minimize_batch_until`].
pub fn minimize_batch<E>(solvers: &mut [Solver], evaluate: E) -> Result<()>
where
    E: FnMut(&[usize], ArrayView2<f64>) -> Result<(Vec<f64>, Array2<f64>)>,
{
    minimize_batch_until(solvers, || false, evaluate)
}

/// [`minimize_batch`] that asks `should_stop` before each round (for
/// Ctrl-C or a deadline); when it says true, the unfinished solvers finish
/// with [`Status::Stopped`](super::Status::Stopped) and this returns Ok.
pub fn minimize_batch_until<S, E>(solvers: &mut [Solver], should_stop: S, mut evaluate: E) -> Result<()>
where
    S: FnMut() -> bool,
    E: FnMut(&[usize], ArrayView2<f64>) -> Result<(Vec<f64>, Array2<f64>)>,
{
    run(solvers, crate::parallel::threads(), should_stop, |which, points, values, mut gradients| {
        let (answer, answer_gradients) = evaluate(which, points)?;
        ensure!(answer.len() == which.len(), "evaluate returned {} values for {} points", answer.len(), which.len());
        ensure!(
            answer_gradients.dim() == gradients.dim(),
            "evaluate returned gradients of shape {:?} for {} points of {} variables",
            answer_gradients.shape(),
            which.len(),
            gradients.ncols()
        );
        values.copy_from_slice(&answer);
        gradients.assign(&answer_gradients);
        Ok(())
    })
}

/// [`minimize_batch`] whose `evaluate(which, points, values, gradients)`
/// writes its answer, f of point r into `values[r]` and its gradient into
/// row r of `gradients`, in buffers kept between rounds: no round
/// allocates. The solvers' own work of a round is shared by at most
/// `threads` threads (1 where the caller already runs a batch per core).
pub fn minimize_batch_into<E>(solvers: &mut [Solver], threads: usize, evaluate: E) -> Result<()>
where
    E: FnMut(&[usize], ArrayView2<f64>, &mut [f64], ArrayViewMut2<f64>) -> Result<()>,
{
    run(solvers, threads.max(1), || false, evaluate)
}

/// The rounds: gather the points, evaluate, tell.
fn run<S, E>(solvers: &mut [Solver], threads: usize, mut should_stop: S, mut evaluate: E) -> Result<()>
where
    S: FnMut() -> bool,
    E: FnMut(&[usize], ArrayView2<f64>, &mut [f64], ArrayViewMut2<f64>) -> Result<()>,
{
    let n = solvers.first().map_or(0, Solver::variables);
    if let Some(i) = solvers.iter().position(|s| s.variables() != n) {
        bail!("solver {i} has {} variables, solver 0 has {n}: one batch needs one size", solvers[i].variables());
    }
    let (mut which, mut points, mut values, mut gradients) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    loop {
        which.clear();
        which.extend((0..solvers.len()).filter(|&i| solvers[i].ask().is_some()));
        if which.is_empty() {
            return Ok(());
        }
        if should_stop() {
            which.iter().for_each(|&i| solvers[i].stop());
            return Ok(());
        }
        let k = which.len();
        gather(solvers, &which, &mut points, n, threads);
        values.resize(k, 0.0);
        gradients.resize(k * n, 0.0);
        let points_view = ArrayView2::from_shape((k, n), &points)?;
        let gradients_view = ArrayViewMut2::from_shape((k, n), &mut gradients)?;
        evaluate(&which, points_view, &mut values, gradients_view)?;
        tell_all(solvers, &which, &values, &gradients, n, threads)?;
    }
}

/// Hands each solver of `which` (increasing) its value and its row of the
/// gradients. The solvers' own work (the Cauchy point, the subspace step)
/// is as long as a small network's gradient for n = 784, so large batches
/// share it between threads; each solver computes alone, so the results do
/// not depend on how many.
fn tell_all(
    solvers: &mut [Solver],
    which: &[usize],
    values: &[f64],
    gradients: &[f64],
    n: usize,
    threads: usize,
) -> Result<()> {
    let mut answers: Vec<(&mut Solver, f64, &[f64])> = Vec::with_capacity(which.len());
    let mut solvers = solvers.iter_mut().enumerate();
    for (row, (&i, &f)) in which.iter().zip(values).enumerate() {
        let (_, solver) = solvers.find(|(j, _)| *j == i).context("solver indices must increase")?;
        answers.push((solver, f, &gradients[row * n..(row + 1) * n]));
    }
    let per_part = parallel::rows_per_part(answers.len(), n, threads);
    parallel::try_for_each_part(answers.chunks_mut(per_part), |part| {
        part.iter_mut().try_for_each(|(solver, f, g)| solver.tell(*f, g))
    })
}

/// The points of the solvers in `which`, as rows of `points`.
fn gather(solvers: &[Solver], which: &[usize], points: &mut Vec<f64>, n: usize, threads: usize) {
    points.resize(which.len() * n, 0.0);
    let per_part = parallel::rows_per_part(which.len(), n, threads);
    parallel::for_each_part(points.chunks_mut((per_part * n).max(1)).zip(which.chunks(per_part)), |(rows, which)| {
        for (row, &i) in rows.chunks_mut(n).zip(which) {
            row.copy_from_slice(solvers[i].ask().expect("asking"));
        }
    });
}
