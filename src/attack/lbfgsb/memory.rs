//! The last m correction pairs s = x_{k+1} − x_k, y = g_{k+1} − g_k and
//! every inner product of them the iteration needs, kept up to date.
//!
//! The pairs sit in a ring of m *slots*, stored row-major by variable: row
//! i holds (y_j[i], s_j[i]) of slot j at columns 2j and 2j + 1. So row i
//! of W' = [Y S] (W of the compact form without its θ) is one contiguous
//! slice, which is what the Cauchy point's walk and the sums over the free
//! variables read, and a new pair overwrites the oldest slot in place.
//! Slots in use are always 0..len: clearing restarts at slot 0.
//!
//! Besides sᵀs and sᵀy over all variables, the memory keeps the products
//! the subspace system wants split by a partition of the variables (the
//! free set of the last Cauchy point, BLNZ §5.1): Y_FᵀY_F and S_FᵀY_F over
//! the free variables F, S_AᵀS_A over the others. A new pair gets its row
//! and column of every product in one fused pass; a variable that changes
//! side moves its O(m²) contribution across (the reference's `formk`).

use super::EPS;
use super::bounds::Bounds;
use super::kernels::fast;

#[derive(Clone, Debug)]
pub(super) struct Memory {
    capacity: usize,
    n: usize,
    /// n rows of 2·capacity numbers.
    rows: Vec<f64>,
    len: usize,
    /// The slot the next pair goes to (the oldest when full).
    next: usize,
    /// By slot, capacity × capacity row-major: ss[a][b] = s_a·s_b,
    /// sy[a][b] = s_a·y_b.
    ss: Vec<f64>,
    sy: Vec<f64>,
    /// θ = yᵀy / sᵀy of the newest pair; 1 when empty.
    theta: f64,
    /// The partition: free[i] says whether variable i is in F.
    free: Vec<bool>,
    /// By slot: Σ_F y_a y_b, Σ_F s_a y_b and Σ_A s_a s_b.
    free_yy: Vec<f64>,
    free_sy: Vec<f64>,
    held_ss: Vec<f64>,
    /// The fused pass's sums: s and y times a row, over F and over A.
    sums: Vec<f64>,
}

impl Memory {
    pub(super) fn new(capacity: usize, n: usize) -> Memory {
        let square = vec![0.0; capacity * capacity];
        Memory {
            capacity,
            n,
            rows: vec![0.0; n * 2 * capacity],
            len: 0,
            next: 0,
            ss: square.clone(),
            sy: square.clone(),
            theta: 1.0,
            free: vec![true; n],
            free_yy: square.clone(),
            free_sy: square.clone(),
            held_ss: square,
            sums: vec![0.0; 8 * capacity],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn theta(&self) -> f64 {
        self.theta
    }

    /// Forgets every pair (the partition stays: it holds for no pairs).
    pub(super) fn clear(&mut self) {
        (self.len, self.next, self.theta) = (0, 0, 1.0);
    }

    /// The slot of the j-th pair, oldest first.
    pub(super) fn slot(&self, j: usize) -> usize {
        let oldest = if self.len < self.capacity { 0 } else { self.next };
        (oldest + j) % self.capacity
    }

    /// Row i of W' in slot order: 2·len numbers.
    #[inline(always)]
    pub(super) fn row(&self, i: usize) -> &[f64] {
        let start = i * 2 * self.capacity;
        &self.rows[start..start + 2 * self.len]
    }

    /// s_a·s_b and s_a·y_b of slots a, b.
    pub(super) fn ss(&self, a: usize, b: usize) -> f64 {
        self.ss[a * self.capacity + b]
    }

    pub(super) fn sy(&self, a: usize, b: usize) -> f64 {
        self.sy[a * self.capacity + b]
    }

    /// Σ_F y_a y_b, Σ_F s_a y_b and Σ_A s_a s_b of slots a, b.
    pub(super) fn free_yy(&self, a: usize, b: usize) -> f64 {
        self.free_yy[a * self.capacity + b]
    }

    pub(super) fn free_sy(&self, a: usize, b: usize) -> f64 {
        self.free_sy[a * self.capacity + b]
    }

    pub(super) fn held_ss(&self, a: usize, b: usize) -> f64 {
        self.held_ss[a * self.capacity + b]
    }

    /// Adds the pair of the step from (x, g) to (x_new, g_new) unless its
    /// curvature sᵀy is too small to keep B positive definite (BLNZ §6:
    /// sᵀy > ε yᵀy); true when added.
    pub(super) fn push(&mut self, x: &[f64], x_new: &[f64], g: &[f64], g_new: &[f64]) -> bool {
        fast(
            #[inline(always)]
            || self.push_pass(x, x_new, g, g_new),
        )
    }

    #[inline(always)]
    fn push_pass(&mut self, x: &[f64], x_new: &[f64], g: &[f64], g_new: &[f64]) -> bool {
        let (mut sy, mut yy) = (0.0, 0.0);
        for i in 0..self.n {
            let (s, y) = (x_new[i] - x[i], g_new[i] - g[i]);
            sy += s * y;
            yy += y * y;
        }
        if sy.partial_cmp(&(EPS * yy)) != Some(std::cmp::Ordering::Greater) {
            return false;
        }
        let slot = self.next;
        self.next = (slot + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        self.write_and_sum(slot, x, x_new, g, g_new);
        self.store_products(slot);
        self.theta = yy / sy;
        true
    }

    /// Writes the new pair into `slot` and sums s and y times every row,
    /// split by the partition, in one pass. The new slot's own terms (s·s,
    /// s·y, y·y) are summed apart and patched in after: reading a row as a
    /// vector right after writing two numbers into it would stall on every
    /// row (a failed store-to-load forward).
    #[inline(always)]
    fn write_and_sum(&mut self, slot: usize, x: &[f64], x_new: &[f64], g: &[f64], g_new: &[f64]) {
        let (stride, width) = (2 * self.capacity, 2 * self.len);
        self.sums.fill(0.0);
        let (free_s, rest) = self.sums.split_at_mut(stride);
        let (free_y, rest) = rest.split_at_mut(stride);
        let (held_s, held_y) = rest.split_at_mut(stride);
        // [ss, sy, yy] over F and over A.
        let (mut own_free, mut own_held) = ([0.0; 3], [0.0; 3]);
        for i in 0..self.n {
            let (s, y) = (x_new[i] - x[i], g_new[i] - g[i]);
            let row = &mut self.rows[i * stride..i * stride + width];
            let free = self.free[i];
            let (to_s, to_y, own) = if free {
                (&mut *free_s, &mut *free_y, &mut own_free)
            } else {
                (&mut *held_s, &mut *held_y, &mut own_held)
            };
            for ((ts, ty), &w) in to_s.iter_mut().zip(to_y.iter_mut()).zip(row.iter()) {
                *ts += s * w;
                *ty += y * w;
            }
            own[0] += s * s;
            own[1] += s * y;
            own[2] += y * y;
            (row[2 * slot], row[2 * slot + 1]) = (y, s);
        }
        for (own, to_s, to_y) in [(own_free, free_s, free_y), (own_held, held_s, held_y)] {
            (to_s[2 * slot], to_s[2 * slot + 1]) = (own[1], own[0]);
            (to_y[2 * slot], to_y[2 * slot + 1]) = (own[2], own[1]);
        }
    }

    /// Row and column `slot` of every product, from the fused pass's sums.
    #[inline(always)]
    fn store_products(&mut self, slot: usize) {
        let stride = 2 * self.capacity;
        let (free_s, rest) = self.sums.split_at(stride);
        let (free_y, rest) = rest.split_at(stride);
        let (held_s, held_y) = rest.split_at(stride);
        let m = self.capacity;
        for a in 0..self.len {
            let (y_a, s_a) = (2 * a, 2 * a + 1);
            let (at, ta) = (a * m + slot, slot * m + a);
            self.sy[ta] = free_s[y_a] + held_s[y_a];
            self.sy[at] = free_y[s_a] + held_y[s_a];
            (self.ss[at], self.ss[ta]) = (free_s[s_a] + held_s[s_a], free_s[s_a] + held_s[s_a]);
            (self.free_yy[at], self.free_yy[ta]) = (free_y[y_a], free_y[y_a]);
            self.free_sy[at] = free_y[s_a];
            self.free_sy[ta] = free_s[y_a];
            (self.held_ss[at], self.held_ss[ta]) = (held_s[s_a], held_s[s_a]);
        }
    }

    /// Makes the partition the free set of `xc` (the variables strictly
    /// inside the box), listing them in `free`; the split products follow
    /// each variable that changes side.
    pub(super) fn repartition(&mut self, xc: &[f64], bounds: &Bounds, free: &mut Vec<usize>) {
        fast(
            #[inline(always)]
            || self.repartition_pass(xc, bounds, free),
        )
    }

    #[inline(always)]
    fn repartition_pass(&mut self, xc: &[f64], bounds: &Bounds, free: &mut Vec<usize>) {
        free.clear();
        for (i, &v) in xc.iter().enumerate().take(self.n) {
            let now = bounds.is_free(i, v);
            if now {
                free.push(i);
            }
            if now != self.free[i] {
                self.free[i] = now;
                self.move_across(i, if now { 1.0 } else { -1.0 });
            }
        }
    }

    /// Adds (sign 1: variable i joined F) or removes (−1: it left F) its
    /// terms of the split products.
    #[inline(always)]
    fn move_across(&mut self, i: usize, sign: f64) {
        let (m, start) = (self.capacity, i * 2 * self.capacity);
        let row = &self.rows[start..start + 2 * self.len];
        for a in 0..self.len {
            let (y_a, s_a) = (sign * row[2 * a], sign * row[2 * a + 1]);
            for b in 0..self.len {
                let (y_b, s_b) = (row[2 * b], row[2 * b + 1]);
                self.free_yy[a * m + b] += y_a * y_b;
                self.free_sy[a * m + b] += s_a * y_b;
                self.held_ss[a * m + b] -= s_a * s_b;
            }
        }
    }
}
