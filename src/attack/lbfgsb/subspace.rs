//! Step 2: subspace minimisation (BLNZ §5.1, the direct primal method),
//! brought back into the box as Morales and Nocedal do.

use super::bounds::Bounds;
use super::cauchy::CauchyPoint;
use super::compact::Compact;
use super::dense::Saddle;
use super::dot;
use super::kernels::{RowSums, fast, with_row_sums};
use super::memory::Memory;

/// The step's buffers: vectors over the free variables (the memory's
/// partition), the vectors of length 2k and the subspace system.
#[derive(Clone, Debug, Default)]
pub(super) struct Subspace {
    /// The reduced gradient, then the step du, over the free variables.
    r: Vec<f64>,
    du: Vec<f64>,
    /// Length 2m: M'c, W'_Fᵀr, the system's right-hand side and solution, W v.
    m_c: Vec<f64>,
    wt_r: Vec<f64>,
    rhs: Vec<f64>,
    v: Vec<f64>,
    w_v: Vec<f64>,
    /// The blocks P, Q, R of the system (k × k).
    p: Vec<f64>,
    q: Vec<f64>,
    r_block: Vec<f64>,
    saddle: Saddle,
}

impl Subspace {
    pub(super) fn new(memory: usize) -> Subspace {
        let width = vec![0.0; 2 * memory];
        Subspace {
            m_c: width.clone(),
            wt_r: width.clone(),
            rhs: width.clone(),
            v: width.clone(),
            w_v: width,
            ..Subspace::default()
        }
    }

    /// x̄ into `xbar`: the model's minimiser over the variables free at the
    /// Cauchy point, the others held there, brought back into the box.
    /// False when the subspace system is singular.
    pub(super) fn minimize(
        &mut self,
        (x, g): (&[f64], &[f64]),
        bounds: &Bounds,
        memory: &mut Memory,
        model: &Compact,
        cauchy: &CauchyPoint,
        xbar: &mut [f64],
    ) -> bool {
        fast(
            #[inline(always)]
            || self.step((x, g), bounds, memory, model, cauchy, xbar),
        )
    }

    #[inline(always)]
    fn step(
        &mut self,
        (x, g): (&[f64], &[f64]),
        bounds: &Bounds,
        memory: &mut Memory,
        model: &Compact,
        cauchy: &CauchyPoint,
        xbar: &mut [f64],
    ) -> bool {
        let xc = &cauchy.x;
        memory.repartition(xc, bounds);
        if memory.free_variables().is_empty() || model.k == 0 {
            // With B = θI the Cauchy point already minimises over its free variables.
            xbar.copy_from_slice(xc);
            return true;
        }
        self.reduced_gradient(x, g, memory, model, cauchy);
        if !self.factor_system(memory, model) {
            return false;
        }
        self.newton_step(memory, model);
        project_or_truncate(x, g, bounds, xc, memory.free_variables(), &self.du, xbar);
        true
    }

    /// r = Zᵀ(g + θ(x^c − x) − W M c) (eq. 5.4) and W_Fᵀr.
    #[inline(always)]
    fn reduced_gradient(&mut self, x: &[f64], g: &[f64], memory: &Memory, model: &Compact, cauchy: &CauchyPoint) {
        let (width, theta) = (model.width(), model.theta);
        model.m_times(&cauchy.c, &mut self.m_c);
        self.r.clear();
        let (m_c, r) = (&self.m_c[..width], &mut self.r);
        with_row_sums!(width, S => {
            let wt_r = reduce::<S>(memory, S::copied(m_c), theta, (x, g, &cauchy.x), r);
            self.wt_r[..width].copy_from_slice(wt_r.values());
        });
    }

    /// K = M⁻¹ − WᵀZZᵀW/θ with Z the free variables, the matrix of the
    /// subspace step (BLNZ eq. 5.10–5.11 after Sherman–Morrison–Woodbury):
    /// [[−D − Y_FᵀY_F/θ, Lᵀ − Y_FᵀS_F], [L − S_FᵀY_F, θ S_AᵀS_A]] with A
    /// the variables held at a bound, from the memory's split products.
    /// False when it cannot be factored.
    fn factor_system(&mut self, memory: &Memory, model: &Compact) -> bool {
        let (k, theta) = (model.k, model.theta);
        let slot = |j: usize| model.slots[j];
        let (p, q, r) = (&mut self.p, &mut self.q, &mut self.r_block);
        for matrix in [&mut *p, &mut *q, &mut *r] {
            matrix.clear();
            matrix.resize(k * k, 0.0);
        }
        for i in 0..k {
            for j in 0..k {
                let (a, b) = (slot(i), slot(j));
                let diagonal = if i == j { memory.sy(a, a) } else { 0.0 };
                p[i * k + j] = memory.free_yy(a, b) / theta + diagonal;
                let lower = if i > j { memory.sy(a, b) } else { 0.0 };
                q[i * k + j] = lower - memory.free_sy(a, b);
                r[i * k + j] = theta * memory.held_ss(a, b);
            }
        }
        self.saddle.factor(k, p, q, r)
    }

    /// du = −B̂⁻¹r with B̂⁻¹ = I/θ + ZᵀW (M⁻¹ − WᵀZZᵀW/θ)⁻¹ WᵀZ / θ²
    /// (eq. 5.10–5.11), into `du`.
    #[inline(always)]
    fn newton_step(&mut self, memory: &Memory, model: &Compact) {
        let (width, theta) = (model.width(), model.theta);
        for l in 0..width {
            self.rhs[l] = model.scale[l] * self.wt_r[model.column[l]];
        }
        self.saddle.solve(&self.rhs, &mut self.v);
        for l in 0..width {
            self.w_v[model.column[l]] = model.scale[l] * self.v[l];
        }
        self.du.clear();
        let (w_v, r, du) = (&self.w_v[..width], &self.r, &mut self.du);
        with_row_sums!(width, S => step::<S>(memory, S::copied(w_v), theta, r, du));
    }
}

/// r_i = g_i + θ(x^c_i − x_i) − row_i·M'c over the free variables into
/// `r`, and W'_Fᵀr.
#[inline(always)]
fn reduce<S: RowSums>(
    memory: &Memory,
    m_c: S,
    theta: f64,
    (x, g, xc): (&[f64], &[f64], &[f64]),
    r: &mut Vec<f64>,
) -> S {
    let (rows, stride) = (memory.rows(), memory.stride());
    let mut wt_r = m_c;
    let (m_c, acc) = (m_c.values(), wt_r.values_mut());
    acc.fill(0.0);
    let free = memory.free_variables();
    r.resize(free.len(), 0.0);
    for (&i, r_i) in free.iter().zip(r.iter_mut()) {
        let row = &rows[i * stride..][..acc.len()];
        *r_i = g[i] + theta * (xc[i] - x[i]) - dot(row, m_c);
        let r_i = *r_i;
        for (a, &w) in acc.iter_mut().zip(row) {
            *a += r_i * w;
        }
    }
    wt_r
}

/// du_i = −r_i/θ − row_i·(W v)/θ² over the free variables into `du`.
#[inline(always)]
fn step<S: RowSums>(memory: &Memory, w_v: S, theta: f64, r: &[f64], du: &mut Vec<f64>) {
    let (rows, stride, w_v) = (memory.rows(), memory.stride(), w_v.values());
    let (by_r, by_w) = (1.0 / theta, 1.0 / (theta * theta));
    let free = memory.free_variables();
    du.resize(free.len(), 0.0);
    for ((&i, &r_i), du_i) in free.iter().zip(r).zip(du.iter_mut()) {
        *du_i = -r_i * by_r - dot(&rows[i * stride..][..w_v.len()], w_v) * by_w;
    }
}

/// x^c + du brought into the box, into `out`: projected when that still
/// descends from x (Morales–Nocedal 2011), otherwise truncated at the
/// first bound the segment from x^c meets (the original BLNZ eq. 5.8).
#[inline(always)]
fn project_or_truncate(x: &[f64], g: &[f64], bounds: &Bounds, xc: &[f64], free: &[usize], du: &[f64], out: &mut [f64]) {
    out.copy_from_slice(xc);
    for (&i, &step) in free.iter().zip(du) {
        out[i] = bounds.project(i, xc[i] + step);
    }
    let slope: f64 = (0..x.len()).map(|i| (out[i] - x[i]) * g[i]).sum();
    if slope <= 0.0 {
        return;
    }
    let mut alpha = 1.0;
    let mut limiting = None;
    for (j, (&i, &step)) in free.iter().zip(du).enumerate() {
        let room = if step < 0.0 { bounds.lower[i] - xc[i] } else { bounds.upper[i] - xc[i] };
        let fits = room / step;
        if step != 0.0 && fits < alpha {
            alpha = fits.max(0.0);
            limiting = Some(j);
        }
    }
    for (j, (&i, &step)) in free.iter().zip(du).enumerate() {
        out[i] = match limiting {
            Some(l) if l == j && step > 0.0 => bounds.upper[i],
            Some(l) if l == j => bounds.lower[i],
            _ => bounds.project(i, xc[i] + alpha * step),
        };
    }
}
