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
use super::kernels::{RowSums, fast, with_row_sums};

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
    /// By slot: y·y (what θ and [`reweight`](Self::reweight) need).
    yy: Vec<f64>,
    /// The partition: free[i] says whether variable i is in F; F and A as
    /// lists of variables, increasing.
    free: Vec<bool>,
    free_list: Vec<usize>,
    held_list: Vec<usize>,
    /// How much of each list is in use (both are n long, to be written
    /// without a branch).
    free_count: usize,
    held_count: usize,
    /// The variables that change side in a repartition, with the sign of
    /// their terms, and the sum of those terms (2k × 2k).
    moved: Vec<(usize, f64)>,
    delta: Vec<f64>,
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
            yy: vec![0.0; capacity],
            free: vec![true; n],
            free_list: (0..n).collect(),
            held_list: vec![0; n],
            free_count: n,
            held_count: 0,
            moved: Vec::with_capacity(n),
            delta: vec![0.0; 4 * capacity * capacity],
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

    /// All rows: row i starts at `i · stride()`.
    pub(super) fn rows(&self) -> &[f64] {
        &self.rows
    }

    pub(super) fn stride(&self) -> usize {
        2 * self.capacity
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
        self.yy[slot] = yy;
        self.theta = yy / sy;
        true
    }

    /// Turns every pair into the pair of the objective
    /// `scale · f + (curvature / 2)·|x|²` (plus any affine term) at the same
    /// points: y ← scale · y + curvature · s, which is exact for such an
    /// objective, with every product following in O(m²). Pairs whose
    /// curvature no longer passes the update's test are forgotten.
    pub(super) fn reweight(&mut self, scale: f64, curvature: f64) {
        fast(
            #[inline(always)]
            || self.reweight_rows(scale, curvature),
        );
        let m = self.capacity;
        for a in 0..self.len {
            for b in 0..self.len {
                let (ab, ba) = (a * m + b, b * m + a);
                let free_ss = self.ss[ab] - self.held_ss[ab];
                self.free_yy[ab] = scale * scale * self.free_yy[ab]
                    + scale * curvature * (self.free_sy[ab] + self.free_sy[ba])
                    + curvature * curvature * free_ss;
            }
        }
        for a in 0..self.len {
            for b in 0..self.len {
                let ab = a * m + b;
                let free_ss = self.ss[ab] - self.held_ss[ab];
                self.free_sy[ab] = scale * self.free_sy[ab] + curvature * free_ss;
            }
        }
        for j in 0..self.len {
            let jj = j * m + j;
            self.yy[j] = scale * scale * self.yy[j]
                + 2.0 * scale * curvature * self.sy[jj]
                + curvature * curvature * self.ss[jj];
        }
        for (sy, ss) in self.sy.iter_mut().zip(&self.ss) {
            *sy = scale * *sy + curvature * ss;
        }
        let kept: Vec<usize> =
            (0..self.len).map(|j| self.slot(j)).filter(|&a| self.sy(a, a) > EPS * self.yy[a]).collect();
        if kept.len() < self.len {
            self.keep_only(&kept);
        }
        self.theta = match self.len {
            0 => 1.0,
            len => {
                let newest = self.slot(len - 1);
                self.yy[newest] / self.sy(newest, newest)
            }
        };
    }

    #[inline(always)]
    fn reweight_rows(&mut self, scale: f64, curvature: f64) {
        let (stride, width) = (2 * self.capacity, 2 * self.len);
        for row in self.rows.chunks_exact_mut(stride) {
            for pair in row[..width].chunks_exact_mut(2) {
                pair[0] = scale * pair[0] + curvature * pair[1];
            }
        }
    }

    /// Keeps the pairs of `slots` (oldest first), moved to slots 0..k.
    fn keep_only(&mut self, slots: &[usize]) {
        let (m, k, stride) = (self.capacity, slots.len(), 2 * self.capacity);
        let mut moved = vec![0.0; 2 * k];
        for row in self.rows.chunks_exact_mut(stride) {
            for (to, &from) in moved.chunks_exact_mut(2).zip(slots) {
                to.copy_from_slice(&row[2 * from..2 * from + 2]);
            }
            row[..2 * k].copy_from_slice(&moved);
        }
        for square in [&mut self.ss, &mut self.sy, &mut self.free_yy, &mut self.free_sy, &mut self.held_ss] {
            let old = square.clone();
            for (a, &from_a) in slots.iter().enumerate() {
                for (b, &from_b) in slots.iter().enumerate() {
                    square[a * m + b] = old[from_a * m + from_b];
                }
            }
        }
        let old_yy = self.yy.clone();
        for (j, &from) in slots.iter().enumerate() {
            self.yy[j] = old_yy[from];
        }
        (self.len, self.next) = (k, k % m);
    }

    /// Writes the new pair into `slot` and sums s and y times every row,
    /// over F and over A, one pass over each. The new slot's own terms
    /// (s·s, s·y, y·y) are summed apart and patched in after: reading a row
    /// as a vector right after writing two numbers into it would stall on
    /// every row (a failed store-to-load forward).
    #[inline(always)]
    fn write_and_sum(&mut self, slot: usize, x: &[f64], x_new: &[f64], g: &[f64], g_new: &[f64]) {
        let (stride, width) = (2 * self.capacity, 2 * self.len);
        let pair = Pair { x, x_new, g, g_new, slot };
        self.sums.fill(0.0);
        let (free_s, rest) = self.sums.split_at_mut(stride);
        let (free_y, rest) = rest.split_at_mut(stride);
        let (held_s, held_y) = rest.split_at_mut(stride);
        let parts = [
            (&self.free_list[..self.free_count], free_s, free_y),
            (&self.held_list[..self.held_count], held_s, held_y),
        ];
        for (variables, to_s, to_y) in parts {
            let own = with_row_sums!(width, S => {
                let (by_s, by_y, own) = pair.write_and_sum::<S>(&mut self.rows, stride, width, variables);
                to_s[..width].copy_from_slice(by_s.values());
                to_y[..width].copy_from_slice(by_y.values());
                own
            });
            // [ss, sy, yy]
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
    /// inside the box); the split products follow each variable that
    /// changes side.
    pub(super) fn repartition(&mut self, xc: &[f64], bounds: &Bounds) {
        fast(
            #[inline(always)]
            || self.repartition_pass(xc, bounds),
        )
    }

    /// The variables in F, increasing.
    pub(super) fn free_variables(&self) -> &[usize] {
        &self.free_list[..self.free_count]
    }

    #[inline(always)]
    fn repartition_pass(&mut self, xc: &[f64], bounds: &Bounds) {
        let n = self.n;
        let (lower, upper, xc) = (&bounds.lower[..n], &bounds.upper[..n], &xc[..n]);
        let (mut free, mut held) = (0, 0);
        for i in 0..n {
            let now = (lower[i] < xc[i]) & (xc[i] < upper[i]);
            // Both lists are written every time, so that which one grows is data, not a branch.
            (self.free_list[free], self.held_list[held]) = (i, i);
            free += usize::from(now);
            held += usize::from(!now);
            if now != self.free[i] {
                self.free[i] = now;
                self.moved.push((i, if now { 1.0 } else { -1.0 }));
            }
        }
        (self.free_count, self.held_count) = (free, held);
        if !self.moved.is_empty() && self.len > 0 {
            self.move_across();
        }
        self.moved.clear();
    }

    /// Moves the terms of the variables that changed side (sign 1: joined
    /// F, −1: left it) across the split products. Their rank-one terms
    /// are summed into one 2k × 2k matrix first, in contiguous rows that
    /// vectorise, then spread over the three products.
    fn move_across(&mut self) {
        let (m, width, stride) = (self.capacity, 2 * self.len, 2 * self.capacity);
        let delta = &mut self.delta[..width * width];
        delta.fill(0.0);
        for &(i, sign) in &self.moved {
            let row = &self.rows[i * stride..][..width];
            for (p, sums) in delta.chunks_exact_mut(width).enumerate() {
                let c = sign * row[p];
                for (sum, &w) in sums.iter_mut().zip(row) {
                    *sum += c * w;
                }
            }
        }
        // Row 2a of delta is y_a's, row 2a + 1 is s_a's.
        for a in 0..self.len {
            for b in 0..self.len {
                self.free_yy[a * m + b] += delta[2 * a * width + 2 * b];
                self.free_sy[a * m + b] += delta[(2 * a + 1) * width + 2 * b];
                self.held_ss[a * m + b] -= delta[(2 * a + 1) * width + 2 * b + 1];
            }
        }
    }
}

/// A new pair: the step from (x, g) to (x_new, g_new), going into `slot`.
struct Pair<'a> {
    x: &'a [f64],
    x_new: &'a [f64],
    g: &'a [f64],
    g_new: &'a [f64],
    slot: usize,
}

impl Pair<'_> {
    /// Over the rows of `variables`: Σ s_i·row_i, Σ y_i·row_i and the
    /// pair's own [s·s, s·y, y·y], writing (y_i, s_i) into the slot.
    #[inline(always)]
    fn write_and_sum<S: RowSums>(
        &self,
        rows: &mut [f64],
        stride: usize,
        width: usize,
        variables: &[usize],
    ) -> (S, S, [f64; 3]) {
        let (mut by_s, mut by_y) = (S::zeros(width), S::zeros(width));
        let mut own = [0.0; 3];
        let (to_s, to_y) = (by_s.values_mut(), by_y.values_mut());
        let width = to_s.len();
        for &i in variables {
            let (s, y) = (self.x_new[i] - self.x[i], self.g_new[i] - self.g[i]);
            let row = &mut rows[i * stride..(i + 1) * stride];
            for ((ts, ty), &w) in to_s.iter_mut().zip(to_y.iter_mut()).zip(&row[..width]) {
                *ts += s * w;
                *ty += y * w;
            }
            own[0] += s * s;
            own[1] += s * y;
            own[2] += y * y;
            (row[2 * self.slot], row[2 * self.slot + 1]) = (y, s);
        }
        (by_s, by_y, own)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::super::bounds::Bounds;
    use super::Memory;

    const N: usize = 12;

    /// Steps x_0 → x_1 → … in [0, 1]ⁿ and the gradients of the convex
    /// f = ½xᵀAx (so every pair has sᵀy > 0) at each.
    fn path(steps: usize, rng: &mut ChaCha8Rng) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let q: Vec<f64> = (0..N * N).map(|_| rng.random_range(-1.0..1.0)).collect();
        let a = |i: usize, j: usize| (0..N).map(|t| q[i * N + t] * q[j * N + t]).sum::<f64>() + 0.1 * f64::from(i == j);
        let xs: Vec<Vec<f64>> = (0..=steps).map(|_| (0..N).map(|_| rng.random_range(0.0..1.0)).collect()).collect();
        let gs = xs.iter().map(|x| (0..N).map(|i| (0..N).map(|j| a(i, j) * x[j]).sum()).collect()).collect();
        (xs, gs)
    }

    /// A memory split by a fixed partition (half the variables at a bound), holding `pairs` of the path.
    fn memory(xs: &[Vec<f64>], gs: &[Vec<f64>], pairs: std::ops::Range<usize>) -> Memory {
        let bounds = Bounds::new(Arc::from(vec![0.0; N]), Arc::from(vec![1.0; N])).unwrap();
        let xc: Vec<f64> = (0..N).map(|i| if i % 2 == 0 { 0.5 } else { 0.0 }).collect();
        let mut memory = Memory::new(4, N);
        memory.repartition(&xc, &bounds);
        for k in pairs {
            memory.push(&xs[k], &xs[k + 1], &gs[k], &gs[k + 1]);
        }
        memory
    }

    /// Every product, pair by pair oldest first, and θ.
    fn products(memory: &Memory) -> Vec<f64> {
        let slots: Vec<usize> = (0..memory.len()).map(|j| memory.slot(j)).collect();
        let mut all = vec![memory.theta()];
        for &a in &slots {
            for &b in &slots {
                all.extend([memory.ss(a, b), memory.sy(a, b)]);
                all.extend([memory.free_yy(a, b), memory.free_sy(a, b), memory.held_ss(a, b)]);
            }
        }
        all
    }

    /// Every row's (y, s) of each pair, oldest first.
    fn pairs_of(memory: &Memory) -> Vec<f64> {
        let slots: Vec<usize> = (0..memory.len()).map(|j| memory.slot(j)).collect();
        (0..N).flat_map(|i| slots.iter().flat_map(move |&a| [memory.row(i)[2 * a], memory.row(i)[2 * a + 1]])).collect()
    }

    fn assert_close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "number {i}: {x} against {y}");
        }
    }

    /// Reweighting gives exactly the memory the new objective's own
    /// gradients would have built, through a full ring and when the change
    /// turns some pairs' curvature negative.
    #[test]
    fn reweighting_equals_the_new_objectives_pairs() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (xs, gs) = path(6, &mut rng);
        // sᵀy / sᵀs of each pair: a curvature between the extremes drops some pairs, not all.
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
        let quotients: Vec<f64> = (0..4)
            .map(|k| {
                let s: Vec<f64> = xs[k + 1].iter().zip(&xs[k]).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = gs[k + 1].iter().zip(&gs[k]).map(|(a, b)| a - b).collect();
                dot(&s, &y) / dot(&s, &s)
            })
            .collect();
        let between = -quotients.iter().fold(0.0, |a: f64, &b| a.max(b)) / 2.0
            - quotients.iter().fold(f64::MAX, |a, &b| a.min(b)) / 2.0;
        for (scale, curvature, pairs) in [(0.3, 1.4, 0..6), (2.5, -0.7, 0..3), (1.0, between, 0..4)] {
            let mut reweighted = memory(&xs, &gs, pairs.clone());
            let kept = reweighted.len();
            reweighted.reweight(scale, curvature);
            if curvature == between {
                assert!((1..kept).contains(&reweighted.len()), "{} of {kept} pairs kept", reweighted.len());
            }
            // y' = scale·y + curvature·s is the gradient difference of scale·f + (curvature/2)|x|².
            let new_gs: Vec<Vec<f64>> = gs
                .iter()
                .zip(&xs)
                .map(|(g, x)| g.iter().zip(x).map(|(g, x)| scale * g + curvature * x).collect())
                .collect();
            let direct = memory(&xs, &new_gs, pairs.end - kept..pairs.end);
            assert_eq!(reweighted.len(), direct.len(), "pairs kept at scale {scale}, curvature {curvature}");
            assert_close(&products(&reweighted), &products(&direct));
            assert_close(&pairs_of(&reweighted), &pairs_of(&direct));
        }
        let mut emptied = memory(&xs, &gs, 0..4);
        emptied.reweight(1.0, -50.0);
        assert!(emptied.is_empty() && emptied.theta() == 1.0, "every pair's curvature turned negative");
    }
}
