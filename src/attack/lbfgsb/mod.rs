//! L-BFGS-B: limited-memory quasi-Newton minimisation of a smooth function
//! over a box `lower <= x <= upper`, after Byrd, Lu, Nocedal and Zhu, "A
//! limited memory algorithm for bound constrained optimization" (SIAM J.
//! Sci. Comput. 16(5), 1995; "BLNZ" below) with the subspace step of
//! Morales and Nocedal, "Remark on Algorithm 778" (ACM TOMS 38(1), 2011).
//!
//! Each problem is a *reverse-communication* state machine ([`Solver`]): it
//! never calls the objective, it says where it wants the next value and
//! gradient ([`Solver::ask`]) and is told them ([`Solver::tell`]). The attack
//! solves one problem per image and its objective is one ONNX Runtime call
//! for a whole batch, so [`minimize_batch`] gathers the points of every
//! unfinished problem, evaluates them together and hands each problem its
//! own answer; problems finish independently and stop asking.
//!
//! One iteration from the iterate x with gradient g:
//!
//! 1. the generalized Cauchy point: the first local minimiser of the
//!    quadratic model along the projected steepest-descent path
//!    x(t) = P(x − t g), found by walking its breakpoints (BLNZ §4;
//!    `cauchy.rs`);
//! 2. subspace minimisation: the model's minimiser over the variables not
//!    at a bound there, by the direct primal method (BLNZ §5.1), projected
//!    back onto the box (Morales–Nocedal), or truncated where that
//!    projection is not a descent direction (`subspace.rs`);
//! 3. a Moré–Thuente line search (strong Wolfe conditions, ftol 1e-3, gtol
//!    0.9, xtol 0.1, as the reference code) along the segment from x to
//!    that point, never past the box (`line_search.rs`);
//! 4. the update of the compact limited-memory BFGS matrix
//!    B = θI − W M Wᵀ (BLNZ eq. 3.2), skipped when sᵀy <= ε yᵀy
//!    (`memory.rs`, `compact.rs`).
//!
//! The defaults are scipy's `fmin_l_bfgs_b`: m = 10, pgtol 1e-5, factr 1e7.
//! Departures from the reference code, all deliberate:
//!
//! - [`Solver::x`] is the best point evaluated, not the last iterate (the
//!   line search may accept a worse point on its rounding-error exits).
//! - A non-finite value or gradient stops that problem with
//!   [`Status::NonFinite`]; the other problems of a batch go on.
//! - The curvature test for the update is the paper's sᵀy > ε yᵀy (the
//!   code compares with −gᵀs instead).
//! - With [`Options::noise`] set, a problem stops ([`Reason::Noise`]) when
//!   the line search's next step could lower f by no more than f's own
//!   rounding error; the reference code shrinks the step until its
//!   evaluation limit instead, then again from steepest descent. For an
//!   f32 objective (the attack's network) that was three quarters of all
//!   evaluations. The default, 0, keeps the reference's behaviour.
//! - The small indefinite systems are solved by block elimination with
//!   Cholesky factorisations, as the reference does, but re-formed every
//!   iteration from inner products kept up to date (as its `formk`); M
//!   itself is formed explicitly (closed form, `compact.rs`), since the
//!   Cauchy point multiplies by it once per breakpoint.
//!
//! Speed: the attack asks for hundreds of evaluations per image of a small
//! network, so the solver's own O(n·m) work per iteration is as long as
//! the network's. Everything per problem lives in buffers allocated once
//! (`Solver::new`), the pairs sit in one row-major ring so a row of W is a
//! contiguous slice that is never rebuilt, and every product the
//! iteration needs is kept up to date (one fused O(n·m) pass when a pair
//! enters, O(m²) per variable that joins or leaves the free set) instead
//! of O(n·m²) products every iteration. The passes run in an AVX2 copy
//! where the CPU has one, those over the rows with their sums in registers
//! (`kernels.rs`), and the passes over the variables without branches on
//! the data (which variables move, which bound they meet), whose
//! mispredictions once cost more than the arithmetic. A problem whose
//! objective changes by a multiple of |x|² keeps its memory
//! ([`Solver::restart`]).

mod batch;
mod bounds;
mod cauchy;
mod compact;
mod dense;
mod kernels;
mod line_search;
mod memory;
mod solver;
mod subspace;

pub use batch::{minimize_batch, minimize_batch_into, minimize_batch_until};
pub use solver::Solver;

use kernels::{axpy, dot};

use std::fmt;

/// Sufficient-decrease (Armijo) constant of the line search.
const FTOL: f64 = 1e-3;
/// Curvature constant of the line search (strong Wolfe).
const GTOL: f64 = 0.9;
/// Relative width below which the line search's bracket is too small.
const XTOL: f64 = 0.1;
/// Evaluations one line search may take before it counts as failed.
const LINE_SEARCH_EVALUATIONS: usize = 20;
/// The longest step allowed along a direction no bound limits.
const UNBOUNDED_STEP: f64 = 1e10;
const EPS: f64 = f64::EPSILON;
/// The most pairs a memory may keep (the usual choices are 3 to 20).
pub const MAX_MEMORY: usize = 50;

/// Settings of one problem; the defaults are scipy's `fmin_l_bfgs_b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Correction pairs (s, y) kept: the paper's m.
    pub memory: usize,
    /// Iterations (accepted line-search steps) before giving up.
    pub max_iterations: usize,
    /// Evaluations of f and g before giving up; the solver never asks for more.
    pub max_evaluations: usize,
    /// Stop when the projected gradient's largest component is at most this.
    pub pgtol: f64,
    /// Stop when (f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= factr · ε.
    pub factr: f64,
    /// The relative error of f's evaluations (0: exact to f64 rounding).
    /// A line search whose next step could lower f by no more than
    /// `noise · |f|` compares rounding errors, not values: the problem
    /// stops there ([`Reason::Noise`]) instead of shrinking the step until
    /// the evaluation limit, as the reference code does.
    pub noise: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options { memory: 10, max_iterations: 15_000, max_evaluations: 15_000, pgtol: 1e-5, factr: 1e7, noise: 0.0 }
    }
}

/// Why a problem converged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The projected gradient is within `pgtol` of zero.
    ProjectedGradient,
    /// The last step reduced f by less than `factr · ε` relatively.
    RelativeReduction,
    /// No step the line search could take would lower f by more than its
    /// evaluation noise ([`Options::noise`]).
    Noise,
}

/// How a problem finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Converged(Reason),
    IterationLimit,
    EvaluationLimit,
    /// No acceptable step along the search direction, even from steepest
    /// descent with the memory cleared (often: the tolerances are below
    /// what f's rounding allows).
    LineSearchFailed,
    /// f or g was NaN or infinite at the last point asked for.
    NonFinite,
    /// The caller stopped it ([`Solver::stop`], [`minimize_batch_until`]).
    Stopped,
}

impl Status {
    pub fn converged(&self) -> bool {
        matches!(self, Status::Converged(_))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Converged(Reason::ProjectedGradient) => "converged: projected gradient <= pgtol",
            Status::Converged(Reason::RelativeReduction) => "converged: relative reduction of f <= factr·ε",
            Status::Converged(Reason::Noise) => "converged: further steps would change f by less than its noise",
            Status::IterationLimit => "iteration limit reached",
            Status::EvaluationLimit => "evaluation limit reached",
            Status::LineSearchFailed => "the line search found no acceptable step",
            Status::NonFinite => "f or its gradient is not finite",
            Status::Stopped => "stopped by the caller",
        })
    }
}
