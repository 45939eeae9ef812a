//! Our own element-wise kernels (batch norm, pool routing, Winograd transforms) are written lane-wise so
//! that they vectorise, but a portable build targets baseline x86-64 (SSE2): 4 lanes per instruction.
//! [`wide`] runs a kernel compiled with AVX-512 (16 lanes) where the CPU has it, else with AVX2 (8
//! lanes), chosen at run time as the `gemm` crate chooses its kernels, so that one binary serves every
//! x86-64 machine. A build without the `avx512` feature stops at AVX2 ([`SimdLevel::in_use`]).
//!
//! The values do not depend on the choice: the kernels' operations and their order are fixed by the code
//! (Rust never contracts a multiply and an add into an FMA, and these kernels reassociate nothing; a
//! fused multiply-add written as `mul_add` is exactly rounded on every path), so the wider instructions
//! compute the same IEEE results.
//!
//! Where the compiler's code for a portable kernel was poor (spilled registers, gathers), the AVX-512
//! version is written with intrinsics instead, behind [`has_avx512`]: [`deinterleave`] here and
//! `matmul::gemm_nt`'s block kernel, which also has an AVX2 version behind [`has_avx2_fma`]. They move
//! and combine the same values in the same order, so they too give the bits of the portable code.
//! `matmul::gemm_rows`'s kernels, AVX-512 and AVX2, have no portable version: they give the `gemm`
//! crate's bits, and where neither runs, the `gemm` crate computes the product.

/// `f()`, with AVX-512 or else AVX2 (with FMA) enabled for the code inlined into it where the CPU supports it.
/// Only inlined code gains the features: a call that is not inlined — a rayon task, a thread-local's
/// `with` — runs at the baseline target unless it calls `wide` again inside.
#[inline(always)]
pub(super) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        #[target_feature(enable = "avx512f")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { avx512(f) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2(f) };
    }
    f()
}

/// The first and the second values of 16 pairs, each as one 16-lane array. Written out with AVX-512's
/// two-source permutation, or AVX2's shuffles, where the CPU has them: from portable code the compiler
/// emitted gathers, which are slow on AMD's cores.
#[inline(always)]
pub(super) fn deinterleave(pairs: &[[f32; 2]; 16]) -> [[f32; 16]; 2] {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { deinterleave_avx512(pairs) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { deinterleave_avx2(pairs) };
    }
    [std::array::from_fn(|j| pairs[j][0]), std::array::from_fn(|j| pairs[j][1])]
}

/// [`deinterleave`] with AVX-512. SAFETY: the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn deinterleave_avx512(pairs: &[[f32; 2]; 16]) -> [[f32; 16]; 2] {
    use std::arch::x86_64::*;
    let flat = pairs.as_flattened();
    // SAFETY: `flat` holds 32 values.
    let (lo, hi) = unsafe { (_mm512_loadu_ps(flat.as_ptr()), _mm512_loadu_ps(flat.as_ptr().add(16))) };
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut out = [[0f32; 16]; 2];
    // SAFETY: each row of `out` holds 16 values.
    unsafe {
        _mm512_storeu_ps(out[0].as_mut_ptr(), _mm512_permutex2var_ps(lo, even, hi));
        _mm512_storeu_ps(out[1].as_mut_ptr(), _mm512_permutex2var_ps(lo, odd, hi));
    }
    out
}

/// [`deinterleave`] with AVX2: in each 8-value quarter, the even (odd) values of two registers picked
/// within 128-bit lanes, then the 64-bit pieces put in order. SAFETY: the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn deinterleave_avx2(pairs: &[[f32; 2]; 16]) -> [[f32; 16]; 2] {
    use std::arch::x86_64::*;
    let flat = pairs.as_flattened();
    let mut out = [[0f32; 16]; 2];
    for half in 0..2 {
        // SAFETY: `flat` holds 32 values, 16 from half · 16 on.
        let (lo, hi) = unsafe { (_mm256_loadu_ps(flat.as_ptr().add(16 * half)), _mm256_loadu_ps(flat.as_ptr().add(16 * half + 8))) };
        // [x0 x2 y0 y2 | x4 x6 y4 y6] → [x0 x2 x4 x6 y0 y2 y4 y6]
        let ordered = |v: __m256| _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)));
        let even = ordered(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi));
        let odd = ordered(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi));
        // SAFETY: each row of `out` holds 16 values, 8 from half · 8 on.
        unsafe {
            _mm256_storeu_ps(out[0].as_mut_ptr().add(8 * half), even);
            _mm256_storeu_ps(out[1].as_mut_ptr().add(8 * half), odd);
        }
    }
    out
}

/// 8 max-pool windows' gradients `v` spread back over the windows' two rows (16 columns): window j's to
/// the element `at[j]` (0..4, row-major in the window) chose, +0 at the other three. Lane-wise with
/// AVX-512 or AVX2 where the CPU has them: from portable code the compiler kept it scalar, four stores a
/// window.
#[inline(always)]
pub(super) fn spread_windows(at: &[u8; 8], v: &[f32; 8]) -> [[f32; 16]; 2] {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { spread_windows_avx512(at, v) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { spread_windows_avx2(at, v) };
    }
    let mut rows = [[0f32; 16]; 2];
    for (j, (&a, &g)) in at.iter().zip(v).enumerate() {
        rows[usize::from(a >> 1)][2 * j + usize::from(a & 1)] = g;
    }
    rows
}

/// [`spread_windows`] with AVX-512: each window's value and argmax repeated into its two columns, each
/// row the values whose argmax is that row's element in that column. SAFETY: the CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn spread_windows_avx512(at: &[u8; 8], v: &[f32; 8]) -> [[f32; 16]; 2] {
    use std::arch::x86_64::*;
    // SAFETY: `at` holds 8 bytes, `v` 8 values.
    let (at, v) = unsafe { (_mm512_cvtepu8_epi32(_mm_loadl_epi64(at.as_ptr().cast())), _mm512_castps256_ps512(_mm256_loadu_ps(v.as_ptr()))) };
    let twice = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    let (at, v) = (_mm512_permutexvar_epi32(twice, at), _mm512_permutexvar_ps(twice, v));
    let column = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    let mut rows = [[0f32; 16]; 2];
    for (r, row) in rows.iter_mut().enumerate() {
        let chosen = _mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(column, _mm512_set1_epi32(2 * r as i32)));
        // SAFETY: each row holds 16 values.
        unsafe { _mm512_storeu_ps(row.as_mut_ptr(), _mm512_maskz_mov_ps(chosen, v)) };
    }
    rows
}

/// [`spread_windows`] with AVX2, in halves of 4 windows. SAFETY: the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn spread_windows_avx2(at: &[u8; 8], v: &[f32; 8]) -> [[f32; 16]; 2] {
    use std::arch::x86_64::*;
    // SAFETY: `at` holds 8 bytes, `v` 8 values.
    let (at, v) = unsafe { (_mm256_cvtepu8_epi32(_mm_loadl_epi64(at.as_ptr().cast())), _mm256_loadu_ps(v.as_ptr())) };
    let column = _mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1);
    let mut rows = [[0f32; 16]; 2];
    for half in 0..2 {
        let twice = _mm256_add_epi32(_mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), _mm256_set1_epi32(4 * half as i32));
        let (at, v) = (_mm256_permutevar8x32_epi32(at, twice), _mm256_permutevar8x32_ps(v, twice));
        for (r, row) in rows.iter_mut().enumerate() {
            let chosen = _mm256_cmpeq_epi32(at, _mm256_add_epi32(column, _mm256_set1_epi32(2 * r as i32)));
            // SAFETY: each row holds 16 values, 8 from half · 8 on.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * half), _mm256_and_ps(v, _mm256_castsi256_ps(chosen))) };
        }
    }
    rows
}

/// Whether kernels written with AVX-512 intrinsics may run: this build runs at AVX-512 on this CPU
/// ([`SimdLevel::in_use`]) and no test asked for the baseline path.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512() -> bool {
    !tests::baseline() && SimdLevel::in_use() == SimdLevel::Avx512f
}

/// Whether kernels written with AVX2 intrinsics may run: this build runs at AVX2 or wider on this CPU
/// and no test asked for the baseline path.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2_fma() -> bool {
    !tests::baseline() && matches!(SimdLevel::in_use(), SimdLevel::Avx512f | SimdLevel::Avx2Fma)
}

/// A vector instruction set the kernels, ours and the `gemm` crate's, are chosen for. The GEMMs' choice
/// decides their summation order, so results agree to the bit only between runs at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    Avx512f,
    Avx2Fma,
    Sse2,
    Neon,
    Scalar,
}

impl SimdLevel {
    /// The widest level this CPU offers.
    pub fn of_cpu() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return SimdLevel::Avx512f;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return SimdLevel::Avx2Fma;
            }
            SimdLevel::Sse2
        }
        #[cfg(target_arch = "aarch64")]
        {
            SimdLevel::Neon
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            SimdLevel::Scalar
        }
    }

    /// The level this build runs at on this CPU: [`Self::of_cpu`], but AVX2 where the CPU has AVX-512
    /// and the build lacks the `avx512` feature.
    ///
    /// ```
    /// use candle_cpu_kernels::SimdLevel;
    /// let (used, offered) = (SimdLevel::in_use(), SimdLevel::of_cpu());
    /// assert!(used == offered || (used, offered) == (SimdLevel::Avx2Fma, SimdLevel::Avx512f));
    /// ```
    pub fn in_use() -> Self {
        match Self::of_cpu() {
            SimdLevel::Avx512f if !cfg!(feature = "avx512") => SimdLevel::Avx2Fma,
            level => level,
        }
    }

    /// Its name in results files: `avx512f`, `avx2+fma`, `sse2`, `neon`, `scalar`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Avx512f => "avx512f",
            SimdLevel::Avx2Fma => "avx2+fma",
            SimdLevel::Sse2 => "sse2",
            SimdLevel::Neon => "neon",
            SimdLevel::Scalar => "scalar",
        }
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set by tests that compare the kernels on both paths. Tests run concurrently, so other tests may
    /// take the baseline path meanwhile: harmless, as the values do not depend on it.
    static BASELINE: AtomicBool = AtomicBool::new(false);

    pub(crate) fn baseline() -> bool {
        BASELINE.load(Ordering::Relaxed)
    }

    /// `f()` with [`super::wide`] on the baseline path.
    pub(crate) fn on_baseline<R>(f: impl FnOnce() -> R) -> R {
        BASELINE.store(true, Ordering::Relaxed);
        let r = f();
        BASELINE.store(false, Ordering::Relaxed);
        r
    }

    #[test]
    fn deinterleave_splits_pairs_on_every_path() {
        let pairs: [[f32; 2]; 16] = std::array::from_fn(|j| [j as f32, -(j as f32) - 0.5]);
        let expected = [std::array::from_fn(|j| j as f32), std::array::from_fn(|j| -(j as f32) - 0.5)];
        assert_eq!(super::deinterleave(&pairs), expected);
        assert_eq!(on_baseline(|| super::deinterleave(&pairs)), expected);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked above).
            assert_eq!(unsafe { super::deinterleave_avx2(&pairs) }, expected);
        }
    }

    /// Every value at its window's chosen element and +0 elsewhere, for every argmax of the 8 windows, on
    /// each path; a -0 gradient stays -0 where it goes.
    #[test]
    fn spread_windows_routes_each_value_on_every_path() {
        let v: [f32; 8] = [1.5, -2.0, -0.0, 3.25, -7.5, 0.125, 9.0, -1.0];
        let bits = |rows: [[f32; 16]; 2]| rows.map(|row| row.map(f32::to_bits));
        for code in 0..4u32.pow(8) {
            let at: [u8; 8] = std::array::from_fn(|j| (code >> (2 * j) & 3) as u8);
            let mut expected = [[0f32; 16]; 2];
            for j in 0..8 {
                let (row, col) = (at[j] / 2, at[j] % 2);
                expected[row as usize][2 * j + col as usize] = v[j];
            }
            assert_eq!(bits(super::spread_windows(&at, &v)), bits(expected), "argmax {at:?}");
            assert_eq!(bits(on_baseline(|| super::spread_windows(&at, &v))), bits(expected), "baseline, argmax {at:?}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked above).
                assert_eq!(bits(unsafe { super::spread_windows_avx2(&at, &v) }), bits(expected), "AVX2, argmax {at:?}");
            }
        }
    }
}

#[cfg(not(test))]
mod tests {
    pub(super) fn baseline() -> bool {
        false
    }
}
