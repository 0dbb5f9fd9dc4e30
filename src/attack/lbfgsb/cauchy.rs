//! Step 1: the generalized Cauchy point.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::bounds::Bounds;
use super::compact::Compact;
use super::kernels::{RowSums, combine_rows, fast, with_row_sums};
use super::memory::Memory;
use super::{EPS, axpy, dot};

/// The Cauchy point x^c and c = W'ᵀ(x^c − x) (primed, see `compact.rs`),
/// which the subspace step reuses, with the walk's scratch.
#[derive(Clone, Debug)]
pub(super) struct CauchyPoint {
    pub(super) x: Vec<f64>,
    pub(super) c: Vec<f64>,
    /// The direction of the current segment (n), p = W'ᵀd and M' times a
    /// row of W' (2m each), the breakpoints.
    d: Vec<f64>,
    p: Vec<f64>,
    m_w: Vec<f64>,
    breakpoints: Vec<Breakpoint>,
}

impl CauchyPoint {
    pub(super) fn new(n: usize, memory: usize) -> CauchyPoint {
        let width = 2 * memory;
        CauchyPoint {
            x: vec![0.0; n],
            c: vec![0.0; width],
            d: vec![0.0; n],
            p: vec![0.0; width],
            m_w: vec![0.0; width],
            breakpoints: Vec::new(),
        }
    }

    /// x^c = x and c = 0: where there is no bound the Cauchy step only
    /// costs (as the reference skips it).
    pub(super) fn at(&mut self, x: &[f64]) {
        self.x.copy_from_slice(x);
        self.c.fill(0.0);
    }

    /// The first local minimiser of the model m(x + z) = gᵀz + ½zᵀBz along
    /// the piecewise-linear path P(x − tg), segment by segment between the
    /// breakpoints (BLNZ §4, Algorithm CP). On each segment m is a parabola
    /// in the step Δt with slope f′ and curvature f″; both are updated in
    /// O(k²) per breakpoint from p = Wᵀd and c = Wᵀz (eq. 4.9–4.11).
    pub(super) fn find(&mut self, x: &[f64], g: &[f64], bounds: &Bounds, memory: &Memory, model: &Compact) {
        fast(
            #[inline(always)]
            || self.walk(x, g, bounds, memory, model),
        );
    }

    #[inline(always)]
    fn walk(&mut self, x: &[f64], g: &[f64], bounds: &Bounds, memory: &Memory, model: &Compact) {
        let (width, theta) = (model.width(), model.theta);
        self.x.copy_from_slice(x);
        self.c.fill(0.0);
        let moving = self.directions(x, g, bounds);
        if moving == 0 {
            return;
        }
        // A heap, as the reference: the walk usually stops long before the last breakpoint.
        let mut breakpoints = BinaryHeap::from(std::mem::take(&mut self.breakpoints));
        let (c, p, m_w) = (&mut self.c[..width], &mut self.p[..width], &mut self.m_w[..width]);
        let (rows, stride, d) = (memory.rows(), memory.stride(), &self.d[..x.len()]);
        with_row_sums!(width, S => p.copy_from_slice(combine_rows::<S>(rows, stride, width, d).values()));
        let mut slope = -dot(&self.d, &self.d);
        model.m_times(p, m_w);
        let curvature_initial = -theta * slope - dot(p, m_w);
        let mut curvature = curvature_initial;
        let mut dt_min = -slope / curvature;
        let (mut t_old, mut moving) = (0.0, moving);
        while let Some(Breakpoint { t, index: b }) = breakpoints.pop() {
            let dt = t - t_old;
            if dt_min < dt {
                break;
            }
            // Variable b reaches its bound and stops there.
            self.x[b] = if self.d[b] > 0.0 { bounds.upper[b] } else { bounds.lower[b] };
            let z_b = self.x[b] - x[b];
            axpy(dt, p, c);
            let w_b = memory.row(b);
            model.m_times(w_b, m_w);
            let g_b = g[b];
            slope += dt * curvature + g_b * g_b + theta * g_b * z_b - g_b * dot(m_w, c);
            curvature -= theta * g_b * g_b + 2.0 * g_b * dot(m_w, p) + g_b * g_b * dot(m_w, w_b);
            // Rounding can make f″ vanish or turn negative (Morales–Nocedal's safeguard).
            curvature = curvature.max(EPS * curvature_initial);
            axpy(g_b, w_b, p);
            self.d[b] = 0.0;
            moving -= 1;
            dt_min = -slope / curvature;
            t_old = t;
        }
        let dt_min = if moving == 0 { 0.0 } else { dt_min.max(0.0) };
        let t = t_old + dt_min;
        let (lower, upper, d, xc) =
            (&bounds.lower[..x.len()], &bounds.upper[..x.len()], &self.d[..x.len()], &mut self.x[..x.len()]);
        for i in 0..xc.len() {
            let moved = (x[i] + t * d[i]).max(lower[i]).min(upper[i]);
            // The variables that reached their bound keep it.
            xc[i] = if d[i] != 0.0 { moved } else { xc[i] };
        }
        axpy(dt_min, p, c);
        // Kept as they are: `directions` overwrites them, and only resizes.
        self.breakpoints = breakpoints.into_vec();
    }

    /// d = −g on the variables that move along the path (the others are
    /// held at a bound), and their breakpoints; the number moving. Without
    /// branches: which variables move is data, and mispredicting it cost
    /// more than the pass.
    #[inline(always)]
    fn directions(&mut self, x: &[f64], g: &[f64], bounds: &Bounds) -> usize {
        let n = x.len();
        self.breakpoints.resize(n, Breakpoint { t: 0.0, index: 0 });
        let (lower, upper, g, d, out) =
            (&bounds.lower[..n], &bounds.upper[..n], &g[..n], &mut self.d[..n], &mut self.breakpoints[..n]);
        let (mut moving, mut found) = (0, 0);
        for i in 0..n {
            let t = breakpoint(x[i], g[i], lower[i], upper[i]);
            let moves = (t > 0.0) & (g[i] != 0.0);
            d[i] = -g[i] * f64::from(u8::from(moves));
            moving += moves as usize;
            out[found] = Breakpoint { t, index: i };
            found += (moves & (t < f64::INFINITY)) as usize;
        }
        self.breakpoints.truncate(found);
        moving
    }
}

/// The t at which x − t g reaches its bound (BLNZ eq. 4.1): 0 for a
/// variable held at its bound, +∞ toward an infinite bound, meaningless
/// for g = 0 (no breakpoint). The bound g points to gives t >= 0, the
/// other t <= 0: the larger of the two, without a branch on g's sign.
#[inline(always)]
fn breakpoint(x: f64, g: f64, lower: f64, upper: f64) -> f64 {
    ((x - upper) / g).max((x - lower) / g)
}

/// Where variable `index` meets its bound on the path; ordered so that a
/// (max-)heap yields the earliest first, ties by index.
#[derive(Clone, Debug, PartialEq)]
struct Breakpoint {
    t: f64,
    index: usize,
}

impl Eq for Breakpoint {}

impl Ord for Breakpoint {
    fn cmp(&self, other: &Self) -> Ordering {
        other.t.total_cmp(&self.t).then(other.index.cmp(&self.index))
    }
}

impl PartialOrd for Breakpoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
