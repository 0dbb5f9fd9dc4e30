//! The inner loops, and running a pass with AVX where the CPU has it.
//!
//! The release build targets baseline x86-64 (SSE2: two doubles per
//! instruction). The passes over the variables and the memory's rows are
//! most of the solver's time, so each runs inside [`fast`], which compiles
//! it a second time for AVX2 (four doubles per instruction) and takes that
//! copy when the CPU has it. Both copies do the same operations in the same
//! order (no fused multiply-add; reductions keep four partial sums in
//! either), so the results do not depend on the CPU.

/// Runs `pass`, in its AVX2 copy where the CPU supports AVX2. Whatever
/// `pass` calls must be inlined into it to get the wider code: the
/// helpers here are `inline(always)`.
#[inline(always)]
pub(super) fn fast<R>(pass: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { with_avx2(pass) };
    }
    pass()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(pass: impl FnOnce() -> R) -> R {
    pass()
}

/// a·b with four partial sums (so that it vectorises), over the shorter length.
#[inline(always)]
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (blocks_a, blocks_b) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = blocks_a.remainder().iter().zip(blocks_b.remainder()).map(|(x, y)| x * y).sum();
    let mut lanes = [0.0; 4];
    for (x, y) in blocks_a.zip(blocks_b) {
        for j in 0..4 {
            lanes[j] += x[j] * y[j];
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// y += alpha x.
#[inline(always)]
pub(super) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}

/// out = a − b, returning g·out (four partial sums, as [`dot`]).
#[inline(always)]
pub(super) fn difference_dot(out: &mut [f64], a: &[f64], b: &[f64], g: &[f64]) -> f64 {
    let n = out.len();
    let (a, b, g) = (&a[..n], &b[..n], &g[..n]);
    let mut lanes = [0.0; 4];
    let blocks = n / 4 * 4;
    let (out_blocks, out_tail) = out.split_at_mut(blocks);
    let inputs = a.chunks_exact(4).zip(b.chunks_exact(4)).zip(g.chunks_exact(4));
    for (o, ((a, b), g)) in out_blocks.chunks_exact_mut(4).zip(inputs) {
        for (j, lane) in lanes.iter_mut().enumerate() {
            o[j] = a[j] - b[j];
            *lane += g[j] * o[j];
        }
    }
    let mut tail = 0.0;
    for (j, o) in out_tail.iter_mut().enumerate() {
        let i = blocks + j;
        *o = a[i] - b[i];
        tail += g[i] * *o;
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Whether every number of `g` is finite, and g·d (as [`dot`]), in one pass.
#[inline(always)]
pub(super) fn finite_and_dot(g: &[f64], d: &[f64]) -> (bool, f64) {
    let finite = g.iter().fold(true, |finite, v| finite & v.is_finite());
    (finite, dot(g, d))
}
