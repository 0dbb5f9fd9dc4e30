//! The compact form B = θI − W M Wᵀ with W = [Y θS] (n × 2k) and
//! M⁻¹ = [[−D, Lᵀ], [L, θSᵀS]] (BLNZ eq. 3.2–3.4), D = diag(s_i·y_i),
//! L_ij = s_i·y_j for i > j (pairs oldest first).
//!
//! The memory's rows are W' = [Y S] in slot order, not W, so the θ goes
//! into the small matrix instead: with D_θ = diag(1 for a y column, θ for
//! an s column), W = W' D_θ and W M Wᵀ = W' M' W'ᵀ for M' = D_θ M D_θ,
//! stored in the rows' column order. Everything of length 2k in the
//! Cauchy point and the subspace step (p = Wᵀd, c = Wᵀz, …) is then in
//! that primed form; only the subspace system is solved in the logical
//! order, through `column` and `scale`.
//!
//! M is formed in closed form from M⁻¹'s blocks (see [`Compact::form`]).

use super::dense::Cholesky;
use super::dot;
use super::memory::Memory;

#[derive(Clone, Debug, Default)]
pub(super) struct Compact {
    pub(super) theta: f64,
    /// Pairs in use.
    pub(super) k: usize,
    /// Logical column l of W (y of pairs 0..k, then s of pairs 0..k, oldest
    /// first) is column `column[l]` of a memory row times `scale[l]`.
    pub(super) column: Vec<usize>,
    pub(super) scale: Vec<f64>,
    /// M' (2k × 2k, row-major, in row-column order).
    m: Vec<f64>,
    /// Scratch (k × k, logical order): L D⁻¹, then E = S⁻¹ L D⁻¹; the Schur
    /// complement S and S⁻¹; a column.
    l_d: Vec<f64>,
    e: Vec<f64>,
    schur: Vec<f64>,
    schur_inverse: Vec<f64>,
    column_buffer: Vec<f64>,
    factor: Cholesky,
}

impl Compact {
    /// The width of the vectors in primed form: 2k.
    pub(super) fn width(&self) -> usize {
        2 * self.k
    }

    /// Forms M' for the memory's pairs; false when M⁻¹ cannot be factored
    /// (nearly dependent pairs).
    ///
    /// M⁻¹'s top-left block −D is diagonal, so block elimination gives M
    /// in closed form: with S = θSᵀS + L D⁻¹ Lᵀ (SPD when M⁻¹ is
    /// nonsingular) and E = S⁻¹ L D⁻¹,
    /// M = [[−D⁻¹ + D⁻¹LᵀE, Eᵀ], [E, S⁻¹]]: one k × k Cholesky factor and
    /// O(k³) products.
    pub(super) fn form(&mut self, memory: &Memory) -> bool {
        let (k, theta) = (memory.len(), memory.theta());
        (self.k, self.theta) = (k, theta);
        self.order(memory);
        let slot = |j: usize| memory.slot(j);
        let d = |i: usize| memory.sy(slot(i), slot(i));
        if !(0..k).all(|i| d(i) > 0.0 && d(i).is_finite()) {
            return false;
        }
        fill(&mut self.l_d, k, |i, j| if i > j { memory.sy(slot(i), slot(j)) / d(j) } else { 0.0 });
        fill(&mut self.schur, k, |i, j| theta * memory.ss(slot(i), slot(j)));
        for i in 0..k {
            for j in 0..k {
                // (L D⁻¹ Lᵀ)_ij = Σ_t (L D⁻¹)_it L_jt with L_jt = (L D⁻¹)_jt d_t.
                let product: f64 = (0..k).map(|t| self.l_d[i * k + t] * self.l_d[j * k + t] * d(t)).sum();
                self.schur[i * k + j] += product;
            }
        }
        if !self.factor.factor(&self.schur, k) {
            return false;
        }
        self.invert_schur(k);
        fill(&mut self.e, k, |_, _| 0.0);
        for i in 0..k {
            for j in 0..k {
                self.e[i * k + j] = (0..k).map(|t| self.schur_inverse[i * k + t] * self.l_d[t * k + j]).sum();
            }
        }
        self.place(k, d);
        true
    }

    /// S⁻¹, column by column, from its factor.
    fn invert_schur(&mut self, k: usize) {
        fill(&mut self.schur_inverse, k, |_, _| 0.0);
        self.column_buffer.resize(k, 0.0);
        for j in 0..k {
            self.column_buffer.fill(0.0);
            self.column_buffer[j] = 1.0;
            self.factor.solve(&mut self.column_buffer);
            (0..k).for_each(|i| self.schur_inverse[i * k + j] = self.column_buffer[i]);
        }
    }

    /// Writes M's blocks, scaled by D_θ, into M' in the rows' column order.
    fn place(&mut self, k: usize, d: impl Fn(usize) -> f64) {
        let size = 2 * k;
        self.m.resize(size * size, 0.0);
        for a in 0..size {
            for b in 0..size {
                let value = match (a < k, b < k) {
                    (true, true) => {
                        let (i, j) = (a, b);
                        // (D⁻¹LᵀE)_ij = Σ_t L_ti E_tj / d_i, L_ti = (L D⁻¹)_ti d_i.
                        let product: f64 = (0..k).map(|t| self.l_d[t * k + i] * self.e[t * k + j]).sum();
                        product - if i == j { 1.0 / d(i) } else { 0.0 }
                    }
                    (true, false) => self.e[(b - k) * k + a],
                    (false, true) => self.e[(a - k) * k + b],
                    (false, false) => self.schur_inverse[(a - k) * k + (b - k)],
                };
                self.m[self.column[a] * size + self.column[b]] = self.scale[a] * value * self.scale[b];
            }
        }
    }

    /// Where each logical column of W lives in a memory row, and its scale.
    fn order(&mut self, memory: &Memory) {
        let k = self.k;
        self.column.clear();
        self.column.extend((0..k).map(|j| 2 * memory.slot(j)));
        self.column.extend((0..k).map(|j| 2 * memory.slot(j) + 1));
        self.scale.clear();
        self.scale.extend((0..2 * k).map(|l| if l < k { 1.0 } else { self.theta }));
    }

    /// out = M' v (vectors of length 2k).
    #[inline(always)]
    pub(super) fn m_times(&self, v: &[f64], out: &mut [f64]) {
        let size = self.width();
        for (row, o) in self.m.chunks_exact(size.max(1)).zip(&mut out[..size]) {
            *o = dot(row, v);
        }
    }
}

/// Sets `matrix` to the k × k matrix with entries `entry(i, j)`.
fn fill(matrix: &mut Vec<f64>, k: usize, entry: impl Fn(usize, usize) -> f64) {
    matrix.clear();
    matrix.extend((0..k * k).map(|ij| entry(ij / k, ij % k)));
}
