//! Running a pass with AVX2 where the CPU has it.
//!
//! The release build targets baseline x86-64 (SSE2: two doubles per
//! instruction). The hot loops (the attack's solver, the Lanczos products
//! of the spectral bounds) run inside [`fast`], which compiles them a
//! second time for AVX2 (four doubles per instruction) and takes that copy
//! when the CPU has it. Both copies do the same operations in the same
//! order (no fused multiply-add; reductions keep four partial sums in
//! either), so the results do not depend on the CPU.

/// Runs `pass`, in its AVX2 copy where the CPU supports AVX2. Whatever
/// `pass` calls must be inlined into it to get the wider code.
#[inline(always)]
pub fn fast<R>(pass: impl FnOnce() -> R) -> R {
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
