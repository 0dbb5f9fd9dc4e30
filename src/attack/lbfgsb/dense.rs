//! The small dense systems (k × k, k <= m): Cholesky factors and the block
//! elimination of a saddle-point matrix. Matrices are row-major slices;
//! the factors keep their buffers, so re-factoring every iteration
//! allocates nothing once the memory is full.

/// The lower-triangular factor L of a symmetric positive definite A = LLᵀ.
#[derive(Clone, Debug, Default)]
pub(super) struct Cholesky {
    k: usize,
    l: Vec<f64>,
    /// 1 / L_jj: the solves multiply, dividing is a long dependency chain.
    inverse_diagonal: Vec<f64>,
}

impl Cholesky {
    /// Factors the k × k matrix `a`; false unless it is numerically
    /// positive definite.
    pub(super) fn factor(&mut self, a: &[f64], k: usize) -> bool {
        self.k = k;
        self.l.clear();
        self.l.resize(k * k, 0.0);
        self.inverse_diagonal.resize(k, 0.0);
        let l = &mut self.l;
        for j in 0..k {
            let pivot = a[j * k + j] - (0..j).map(|p| l[j * k + p] * l[j * k + p]).sum::<f64>();
            if !(pivot > 0.0 && pivot.is_finite()) {
                return false;
            }
            let diagonal = pivot.sqrt();
            l[j * k + j] = diagonal;
            self.inverse_diagonal[j] = 1.0 / diagonal;
            for i in j + 1..k {
                let below = a[i * k + j] - (0..j).map(|p| l[i * k + p] * l[j * k + p]).sum::<f64>();
                l[i * k + j] = below * self.inverse_diagonal[j];
            }
        }
        true
    }

    /// B ← A⁻¹ B for the k × c row-major `b`: all c right-hand sides at
    /// once, each substitution step a row operation along contiguous
    /// columns instead of a chain of dependent sums.
    pub(super) fn solve_many(&self, b: &mut [f64], c: usize) {
        let (k, l, inverse) = (self.k, &self.l[..self.k * self.k], &self.inverse_diagonal[..self.k]);
        for i in 0..k {
            let (done, rest) = b.split_at_mut(i * c);
            let row = &mut rest[..c];
            for p in 0..i {
                let factor = l[i * k + p];
                row.iter_mut().zip(&done[p * c..(p + 1) * c]).for_each(|(r, &z)| *r -= factor * z);
            }
            row.iter_mut().for_each(|r| *r *= inverse[i]);
        }
        for i in (0..k).rev() {
            let (head, tail) = b.split_at_mut((i + 1) * c);
            let row = &mut head[i * c..];
            for p in i + 1..k {
                let factor = l[p * k + i];
                row.iter_mut().zip(&tail[(p - i - 1) * c..(p - i) * c]).for_each(|(r, &z)| *r -= factor * z);
            }
            row.iter_mut().for_each(|r| *r *= inverse[i]);
        }
    }

    /// z ← A⁻¹ z by forward then backward substitution.
    pub(super) fn solve(&self, z: &mut [f64]) {
        let (k, l, inverse) = (self.k, &self.l[..self.k * self.k], &self.inverse_diagonal[..self.k]);
        let z = &mut z[..k];
        for i in 0..k {
            let row = &l[i * k..i * k + i];
            let known: f64 = row.iter().zip(&z[..i]).map(|(a, b)| a * b).sum();
            z[i] = (z[i] - known) * inverse[i];
        }
        for i in (0..k).rev() {
            let known: f64 = (i + 1..k).map(|p| l[p * k + i] * z[p]).sum();
            z[i] = (z[i] - known) * inverse[i];
        }
    }
}

/// Solves [[−P, Qᵀ], [Q, R]] (a, b) = (u, v) for SPD P and SPD
/// R + Q P⁻¹ Qᵀ by block elimination: b = (R + QP⁻¹Qᵀ)⁻¹ (v + QP⁻¹u), a =
/// P⁻¹(Qᵀb − u): the subspace system has this shape (M⁻¹ too, but its P is
/// diagonal and `compact.rs` inverts it in closed form).
#[derive(Clone, Debug, Default)]
pub(super) struct Saddle {
    k: usize,
    p: Cholesky,
    q: Vec<f64>,
    schur: Cholesky,
    /// Scratch: P⁻¹Qᵀ and R + QP⁻¹Qᵀ (k × k), P⁻¹u (k).
    p_inv_qt: Vec<f64>,
    complement: Vec<f64>,
    column: Vec<f64>,
}

impl Saddle {
    /// Factors the system of the k × k blocks `p`, `q`, `r`; false when P
    /// or the Schur complement is not positive definite.
    pub(super) fn factor(&mut self, k: usize, p: &[f64], q: &[f64], r: &[f64]) -> bool {
        self.k = k;
        if !self.p.factor(p, k) {
            return false;
        }
        self.q.clear();
        self.q.extend_from_slice(&q[..k * k]);
        self.column.resize(k, 0.0);
        self.p_inv_qt.clear();
        for i in 0..k {
            self.p_inv_qt.extend((0..k).map(|j| self.q[j * k + i]));
        }
        self.p.solve_many(&mut self.p_inv_qt, k);
        self.complement.resize(k * k, 0.0);
        for i in 0..k {
            for j in 0..k {
                let product: f64 = (0..k).map(|t| self.q[i * k + t] * self.p_inv_qt[t * k + j]).sum();
                self.complement[i * k + j] = r[i * k + j] + product;
            }
        }
        self.schur.factor(&self.complement, k)
    }

    /// (a, b) into `out` for the right-hand side (u, v), both of length 2k.
    pub(super) fn solve(&mut self, rhs: &[f64], out: &mut [f64]) {
        let k = self.k;
        let (u, v) = rhs[..2 * k].split_at(k);
        let p_inv_u = &mut self.column[..k];
        p_inv_u.copy_from_slice(u);
        self.p.solve(p_inv_u);
        let q = &self.q;
        let (a, b) = out[..2 * k].split_at_mut(k);
        for i in 0..k {
            b[i] = v[i] + (0..k).map(|j| q[i * k + j] * p_inv_u[j]).sum::<f64>();
        }
        self.schur.solve(b);
        for j in 0..k {
            a[j] = (0..k).map(|i| q[i * k + j] * b[i]).sum::<f64>() - u[j];
        }
        self.p.solve(a);
    }
}
