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
    /// The slot of each pair, oldest first, and its sᵀy (D's diagonal).
    pub(super) slots: Vec<usize>,
    d: Vec<f64>,
    /// M' (2k × 2k, row-major, in row-column order).
    m: Vec<f64>,
    /// Scratch (k × k, logical order): L D⁻¹, then E = S⁻¹ L D⁻¹; the Schur
    /// complement S and S⁻¹.
    l_d: Vec<f64>,
    e: Vec<f64>,
    schur: Vec<f64>,
    schur_inverse: Vec<f64>,
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
        let slots = &self.slots;
        self.d.clear();
        self.d.extend(slots.iter().map(|&a| memory.sy(a, a)));
        if !self.d.iter().all(|&d| d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = &self.d;
        fill(&mut self.l_d, k, |i, j| if i > j { memory.sy(slots[i], slots[j]) / d[j] } else { 0.0 });
        fill(&mut self.schur, k, |i, j| theta * memory.ss(slots[i], slots[j]));
        for i in 0..k {
            for j in 0..k {
                // (L D⁻¹ Lᵀ)_ij = Σ_t (L D⁻¹)_it L_jt with L_jt = (L D⁻¹)_jt d_t.
                let product: f64 = (0..k).map(|t| self.l_d[i * k + t] * self.l_d[j * k + t] * d[t]).sum();
                self.schur[i * k + j] += product;
            }
        }
        if !self.factor.factor(&self.schur, k) {
            return false;
        }
        self.invert_schur(k);
        self.e.clone_from(&self.l_d);
        self.factor.solve_many(&mut self.e, k);
        self.place(k);
        true
    }

    /// S⁻¹ from its factor.
    fn invert_schur(&mut self, k: usize) {
        fill(&mut self.schur_inverse, k, |i, j| if i == j { 1.0 } else { 0.0 });
        self.factor.solve_many(&mut self.schur_inverse, k);
    }

    /// Writes M's blocks, scaled by D_θ, into M' in the rows' column order.
    fn place(&mut self, k: usize) {
        let size = 2 * k;
        self.m.resize(size * size, 0.0);
        for a in 0..size {
            for b in 0..size {
                let value = match (a < k, b < k) {
                    (true, true) => {
                        let (i, j) = (a, b);
                        // (D⁻¹LᵀE)_ij = Σ_t L_ti E_tj / d_i, L_ti = (L D⁻¹)_ti d_i.
                        let product: f64 = (0..k).map(|t| self.l_d[t * k + i] * self.e[t * k + j]).sum();
                        product - if i == j { 1.0 / self.d[i] } else { 0.0 }
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
        self.slots.clear();
        self.slots.extend((0..k).map(|j| memory.slot(j)));
        self.column.clear();
        self.column.extend(self.slots.iter().map(|&a| 2 * a));
        self.column.extend(self.slots.iter().map(|&a| 2 * a + 1));
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
    for i in 0..k {
        matrix.extend((0..k).map(|j| entry(i, j)));
    }
}
