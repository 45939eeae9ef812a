//! Row-major f32 matrix products on strided views: [`gemm`] through the `gemm` crate (the one candle's CPU
//! matmul calls), the one place the convolution and the linear layer call it from; [`gemm_nt`], our own
//! kernel for the products whose operands both run along the summed index (weight gradients), which the
//! `gemm` crate would first copy element by element into its packed layout; and [`gemm_rows`], our own
//! kernels for the convolutions' many small products, with the `gemm` crate's bits.

use std::sync::OnceLock;

use super::simd;
use super::storage::written;

/// (row stride, column stride) of a matrix view, in elements.
pub(super) type Strides = (usize, usize);

/// C (m × n) = A (m × k) · B (k × n), plus C where `accumulate`; each operand a view with its strides.
/// `parallel` splits the product over rayon's threads as candle does; without it, it runs on this thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm((m, n, k): (usize, usize, usize), a: &[f32], (a_rs, a_cs): Strides, b: &[f32], (b_rs, b_cs): Strides, c: &mut [f32], (c_rs, c_cs): Strides, accumulate: bool, parallel: bool) {
    if m * n == 0 {
        return;
    }
    assert!(c.len() >= span(m, n, (c_rs, c_cs)), "gemm: destination too small");
    // SAFETY: the destination holds every index its strides reach (asserted).
    unsafe { gemm_into((m, n, k), a, (a_rs, a_cs), b, (b_rs, b_cs), c.as_mut_ptr(), (c_rs, c_cs), accumulate, parallel) }
}

/// C = A (m × k) · B (k × n) as a new dense m × n matrix, laid out row-major (`c_strides` (n, 1)) or
/// column-major ((1, m)): what [`gemm`] without `accumulate` writes into a zeroed vector, without the
/// zeroing — the product overwrites every element (zeroing the linear layer's outputs and gradients first
/// was a measurable memset of a width-1/8 step).
pub(super) fn product((m, n, k): (usize, usize, usize), a: &[f32], a_strides: Strides, b: &[f32], b_strides: Strides, c_strides: Strides, parallel: bool) -> Vec<f32> {
    assert!(c_strides == (n, 1) || c_strides == (1, m), "product: a dense destination, got strides {c_strides:?} for {m} × {n}");
    // SAFETY (both): the buffer holds m·n values, every index the dense strides reach; without
    // `accumulate` the `gemm` crate never reads the destination and writes each of its elements once
    // (zeros when k = 0).
    unsafe {
        written(m * n, |c| {
            if !c.is_empty() {
                gemm_into((m, n, k), a, a_strides, b, b_strides, c.as_mut_ptr().cast(), c_strides, false, parallel)
            }
        })
    }
}

/// The rows × cols row-major matrix `a` transposed: cols × rows, row-major. In 16 × 16 tiles, each task
/// a block of 16 of the result's rows (16 of `a`'s columns), so that reads and writes both move whole
/// cache lines.
pub(super) fn transposed(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    const TILE: usize = 16;
    assert_eq!(a.len(), rows * cols, "transposed: {} values for {rows} × {cols}", a.len());
    // SAFETY: each block's tiles write every value of the block once: for each of its `tc` rows (a's
    // columns c0..c0 + tc), the `rows` values tile by tile.
    unsafe {
        written(rows * cols, |t| {
            if rows == 0 {
                return;
            }
            t.par_chunks_mut(TILE * rows).enumerate().for_each(|(block, out)| {
                let (c0, tc) = (block * TILE, out.len() / rows);
                for r0 in (0..rows).step_by(TILE) {
                    let tr = TILE.min(rows - r0);
                    let mut tile = [[0f32; TILE]; TILE];
                    for (i, row) in tile.iter_mut().enumerate().take(tr) {
                        row[..tc].copy_from_slice(&a[(r0 + i) * cols + c0..][..tc]);
                    }
                    for c in 0..tc {
                        for (i, v) in out[c * rows + r0..][..tr].iter_mut().enumerate() {
                            v.write(tile[i][c]);
                        }
                    }
                }
            })
        })
    }
}

/// How many elements a rows × cols view with these strides spans, from its first to its last.
fn span(rows: usize, cols: usize, (rs, cs): Strides) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// [`gemm`] into a destination given by its pointer. SAFETY: `c` is valid for writes (and, with
/// `accumulate`, reads) at every index (m, n ≥ 1) its strides reach, and overlaps neither operand.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_into((m, n, k): (usize, usize, usize), a: &[f32], (a_rs, a_cs): Strides, b: &[f32], (b_rs, b_cs): Strides, c: *mut f32, (c_rs, c_cs): Strides, accumulate: bool, parallel: bool) {
    assert!(k == 0 || (a.len() >= span(m, k, (a_rs, a_cs)) && b.len() >= span(k, n, (b_rs, b_cs))), "gemm: operand too small");
    let threads = if parallel { gemm_threads() } else { 1 };
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the assert bounds every index of the operands; the caller, those of the destination.
    unsafe {
        gemm::gemm(
            m, n, k, c, c_cs as isize, c_rs as isize, accumulate, a.as_ptr(), a_cs as isize, a_rs as isize, b.as_ptr(), b_cs as isize,
            b_rs as isize, 1.0f32, 1.0f32, false, false, false, parallelism,
        );
    }
}

/// The thread count candle gives its own GEMMs (`candle_core::utils::get_num_threads`), read once: without
/// RAYON_NUM_THREADS set, candle 0.11 counts physical cores by reading and parsing /proc/cpuinfo on every
/// call, which at one call per GEMM was ~1 800 reads (~26 µs each) per width/4 training step.
fn gemm_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// C (m × n) = A (m × k) · B (k × n), B and C with contiguous rows (`b_rs`, `c_rs` apart): each row of C
/// a sum of B's rows scaled by A's values. Runs on this thread.
///
/// The `gemm` crate's microkernel sums each C value as one chain of fused multiply-adds from +0 in the
/// order of k, and so do our kernels ([`rows_kernel`]) where the `gemm` crate takes that path; there they
/// give its bits, and elsewhere this calls it. Ours exist for the Winograd products (C of 16–512 rows,
/// depth 8–512, ~512 columns, many small calls), where they are faster than the `gemm` crate's packed,
/// blocked path: timed alone on the AVX-512 EPYC (one thread, warm caches), 94 against 76 GFLOP/s at
/// 16 × 512 × 8, 113 against 104 at 64 × 512 × 64, 115 against 96–110 at 256 × 512 × 256.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_rows((m, n, k): (usize, usize, usize), a: &[f32], (a_rs, a_cs): Strides, b: &[f32], b_rs: usize, c: &mut [f32], c_rs: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = rows_kernel((m, n, k)) {
        assert!(a.len() >= span(m, k, (a_rs, a_cs)) && b.len() >= (k - 1) * b_rs + n, "gemm_rows: operand too small");
        assert!(c.len() >= (m - 1) * c_rs + n, "gemm_rows: destination too small");
        // SAFETY: the asserts bound every index the kernel reads and writes; `rows_kernel` checked the
        // CPU's instructions and the shape.
        unsafe { kernel((m, n, k), a.as_ptr(), (a_rs, a_cs), b.as_ptr(), b_rs, c.as_mut_ptr(), c_rs) };
        return;
    }
    gemm((m, n, k), a, (a_rs, a_cs), b, (b_rs, 1), c, (c_rs, 1), false, false)
}

/// One of our [`gemm_rows`] kernels. SAFETY: the CPU has its instructions, the views hold every index
/// their strides reach, n is a multiple of 16.
#[cfg(target_arch = "x86_64")]
type RowsKernel = unsafe fn((usize, usize, usize), *const f32, Strides, *const f32, usize, *mut f32, usize);

/// Our kernel for this [`gemm_rows`] product, if one gives the `gemm` crate's bits and is the faster.
///
/// The bits: the `gemm` crate sums one chain per value for depths 3..=512 (deeper products in blocks;
/// k ≤ 2 goes to its `gevv`), except for outputs of at most 16 × 16 values or of one row or column (its
/// horizontal and `gemv` kernels); on CPUs without FMA its sums round twice per term. Our kernels also
/// need n a multiple of 16 (the Winograd products' column count always is).
///
/// The speed: the AVX2 kernel (6 × 16 blocks, a broadcast per row and step) beats the `gemm` crate only on
/// shallow products: timed on the AVX-512 EPYC at the AVX2 tier, 81 against 60 GFLOP/s at 16 × 512 × 8,
/// 100 against 91 at depth 32, but 94 against 100 at depth 64 and 89 against 102 at 256.
#[cfg(target_arch = "x86_64")]
fn rows_kernel((m, n, k): (usize, usize, usize)) -> Option<RowsKernel> {
    const AVX2_MAX_DEPTH: usize = 32;
    let chained = (3..=512).contains(&k) && m >= 2 && n >= 2 && m * n > 16 * 16;
    if !chained || n % 16 != 0 {
        None
    } else if simd::has_avx512() {
        Some(rows_avx512::gemm_rows)
    } else if simd::has_avx2_fma() && k <= AVX2_MAX_DEPTH {
        Some(rows_avx2::gemm_rows)
    } else {
        None
    }
}

/// [`gemm_rows`] in AVX-512 registers: blocks of up to 6 rows × 64 columns of C (24 accumulators), each
/// a chain over k of one broadcast A value times four 16-lane pieces of a B row.
#[cfg(target_arch = "x86_64")]
mod rows_avx512 {
    use std::arch::x86_64::*;

    use super::Strides;

    const ROWS: usize = 6;
    const VECS: usize = 4;
    const LANES: usize = 16;

    /// SAFETY: the CPU has AVX-512F; the views hold every index their strides reach; n is a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_rows((m, n, k): (usize, usize, usize), a: *const f32, (a_rs, a_cs): Strides, b: *const f32, b_rs: usize, c: *mut f32, c_rs: usize) {
        for j0 in (0..n).step_by(VECS * LANES) {
            let vecs = VECS.min((n - j0) / LANES);
            for i0 in (0..m).step_by(ROWS) {
                // SAFETY (all): the block's rows and columns lie inside the views (the caller's promise).
                unsafe {
                    let (a, b, c) = (a.add(i0 * a_rs), b.add(j0), c.add(i0 * c_rs + j0));
                    macro_rules! block {
                        ($($r:literal),*) => {
                            match (ROWS.min(m - i0), vecs) {
                                $(($r, 4) => block::<$r, 4>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                                  ($r, 3) => block::<$r, 3>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                                  ($r, 2) => block::<$r, 2>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                                  ($r, _) => block::<$r, 1>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),)*
                                _ => unreachable!("at most {ROWS} rows"),
                            }
                        };
                    }
                    block!(1, 2, 3, 4, 5, 6)
                }
            }
        }
    }

    /// One R × (V·16) block of C, from +0, one fused multiply-add per k in order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize, const V: usize>(k: usize, a: *const f32, (a_rs, a_cs): Strides, b: *const f32, b_rs: usize, c: *mut f32, c_rs: usize) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        // SAFETY (all): p < k, r < R and v < V stay inside the block (the caller's promise).
        unsafe {
            for p in 0..k {
                let bp = b.add(p * b_rs);
                let bv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(bp.add(v * LANES)));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let ar = _mm512_set1_ps(*a.add(r * a_rs + p * a_cs));
                    for (acc_rv, bvv) in acc_r.iter_mut().zip(&bv) {
                        *acc_rv = _mm512_fmadd_ps(ar, *bvv, *acc_rv);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                for (v, acc_rv) in acc_r.iter().enumerate() {
                    _mm512_storeu_ps(c.add(r * c_rs + v * LANES), *acc_rv);
                }
            }
        }
    }
}

/// [`gemm_rows`] in AVX2 registers: blocks of up to 6 rows × 16 columns of C (12 accumulators of 8
/// lanes), summed as the AVX-512 kernel sums them.
#[cfg(target_arch = "x86_64")]
mod rows_avx2 {
    use std::arch::x86_64::*;

    use super::Strides;

    const ROWS: usize = 6;
    const VECS: usize = 2;
    const LANES: usize = 8;

    /// SAFETY: the CPU has AVX2 and FMA; the views hold every index their strides reach; n is a multiple
    /// of 16.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_rows((m, n, k): (usize, usize, usize), a: *const f32, (a_rs, a_cs): Strides, b: *const f32, b_rs: usize, c: *mut f32, c_rs: usize) {
        for j0 in (0..n).step_by(VECS * LANES) {
            for i0 in (0..m).step_by(ROWS) {
                // SAFETY (all): the block's rows and columns lie inside the views (the caller's promise).
                unsafe {
                    let (a, b, c) = (a.add(i0 * a_rs), b.add(j0), c.add(i0 * c_rs + j0));
                    match ROWS.min(m - i0) {
                        6 => block::<6>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                        5 => block::<5>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                        4 => block::<4>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                        3 => block::<3>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                        2 => block::<2>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                        _ => block::<1>(k, a, (a_rs, a_cs), b, b_rs, c, c_rs),
                    }
                }
            }
        }
    }

    /// One R × 16 block of C, from +0, one fused multiply-add per k in order.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block<const R: usize>(k: usize, a: *const f32, (a_rs, a_cs): Strides, b: *const f32, b_rs: usize, c: *mut f32, c_rs: usize) {
        let mut acc = [[_mm256_setzero_ps(); VECS]; R];
        // SAFETY (all): p < k, r < R and v < VECS stay inside the block (the caller's promise).
        unsafe {
            for p in 0..k {
                let bp = b.add(p * b_rs);
                let bv: [__m256; VECS] = std::array::from_fn(|v| _mm256_loadu_ps(bp.add(v * LANES)));
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let ar = _mm256_set1_ps(*a.add(r * a_rs + p * a_cs));
                    for (acc_rv, bvv) in acc_r.iter_mut().zip(&bv) {
                        *acc_rv = _mm256_fmadd_ps(ar, *bvv, *acc_rv);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                for (v, acc_rv) in acc_r.iter().enumerate() {
                    _mm256_storeu_ps(c.add(r * c_rs + v * LANES), *acc_rv);
                }
            }
        }
    }
}

/// Rows and columns of C one [`gemm_nt`] block computes: 16 accumulators of 16 lanes, with the 8 rows'
/// loads, fit AVX-512's 32 registers.
const BLOCK: usize = 4;
/// Lanes of one accumulator.
const LANES: usize = 16;
/// Largest output [`gemm_nt`] computes itself. It has no cache blocking and one lane reduction per output,
/// so on large outputs the `gemm` crate's blocked kernel is faster despite packing an operand element by
/// element (full-width step: all Winograd weight gradients here 1.33 s; up to 128 × 128, 1.06 s; up to
/// 256 × 256, 1.17 s). Measured with the portable kernel, before [`avx512`]; not measured again, as moving
/// the threshold changes the last bits of full-width results.
const NT_MAX_OUTPUTS: usize = 128 * 128;

/// C (m × n) = A (m × k) · Bᵀ, B stored n × k, plus C where `accumulate`: row i of A and row j of B are
/// `k` contiguous values `a_rs` / `b_rs` apart, rows of C `c_rs` apart. Runs on this thread.
///
/// Each C value is the sum of 16 lane partial sums (fused multiply-adds along k, lane l taking every 16th
/// term), added in a fixed tree: the order depends on nothing but k, so every instruction set gives the
/// same bits. Outputs of more than NT_MAX_OUTPUTS values go to [`gemm`] instead.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_nt((m, n, k): (usize, usize, usize), a: &[f32], a_rs: usize, b: &[f32], b_rs: usize, c: &mut [f32], c_rs: usize, accumulate: bool) {
    if m * n == 0 {
        return;
    }
    if m * n > NT_MAX_OUTPUTS {
        return gemm((m, n, k), a, (a_rs, 1), b, (1, b_rs), c, (c_rs, 1), accumulate, false);
    }
    assert!(a.len() >= (m - 1) * a_rs + k && b.len() >= (n - 1) * b_rs + k, "gemm_nt: operand too small");
    assert!(c.len() >= (m - 1) * c_rs + n, "gemm_nt: destination too small");
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx512() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { avx512::gemm_nt((m, n, k), a, a_rs, b, b_rs, c, c_rs, accumulate) };
    }
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2::gemm_nt((m, n, k), a, a_rs, b, b_rs, c, c_rs, accumulate) };
    }
    // A closure, not the function item: the item's `Fn::call` shim was not inlined into the wide code, so
    // it ran at the baseline target, where `mul_add` is a call to libm's `fmaf` (on AVX2 machines 63 % of
    // a width/4 step went there, 15x slower than the step on AVX-512 machines).
    simd::wide(#[inline(always)] || {
        blocks((m, n, k), a, a_rs, b, b_rs, c, c_rs, accumulate, #[inline(always)] |a_rows, b_rows, k| block_sums(a_rows, b_rows, k))
    })
}

/// [`gemm_nt`]'s loop over BLOCK × BLOCK blocks of C, each block's dot products by `sums_of`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn blocks(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    sums_of: impl Fn(&[&[f32]; BLOCK], &[&[f32]; BLOCK], usize) -> [[f32; BLOCK]; BLOCK],
) {
    for i0 in (0..m).step_by(BLOCK) {
        // Rows past the edge repeat the last row; their sums are not stored.
        let a_rows: [&[f32]; BLOCK] = std::array::from_fn(|r| &a[(i0 + r).min(m - 1) * a_rs..][..k]);
        for j0 in (0..n).step_by(BLOCK) {
            let b_rows: [&[f32]; BLOCK] = std::array::from_fn(|s| &b[(j0 + s).min(n - 1) * b_rs..][..k]);
            let sums = sums_of(&a_rows, &b_rows, k);
            for (r, row) in sums.iter().enumerate().take(m - i0) {
                for (s, &v) in row.iter().enumerate().take(n - j0) {
                    let cij = &mut c[(i0 + r) * c_rs + j0 + s];
                    *cij = if accumulate { *cij + v } else { v };
                }
            }
        }
    }
}

/// The BLOCK × BLOCK dot products of `a_rows` with `b_rows`, each `k` long.
#[inline(always)]
fn block_sums(a_rows: &[&[f32]; BLOCK], b_rows: &[&[f32]; BLOCK], k: usize) -> [[f32; BLOCK]; BLOCK] {
    let mut acc = [[[0f32; LANES]; BLOCK]; BLOCK];
    let whole = k / LANES * LANES;
    for p in (0..whole).step_by(LANES) {
        let load = |rows: &[&[f32]; BLOCK]| rows.map(|row| -> [f32; LANES] { row[p..p + LANES].try_into().expect("a whole lane group") });
        fma_step(&mut acc, &load(a_rows), &load(b_rows));
    }
    if whole < k {
        // The last partial group, zero-padded: a zero term adds nothing to a lane's sum.
        let load = |rows: &[&[f32]; BLOCK]| {
            rows.map(|row| {
                let mut v = [0f32; LANES];
                v[..k - whole].copy_from_slice(&row[whole..k]);
                v
            })
        };
        fma_step(&mut acc, &load(a_rows), &load(b_rows));
    }
    // Loops, not `array::map`: a mapped function is not inlined here, so it would lose the wide instructions.
    let mut sums = [[0f32; BLOCK]; BLOCK];
    for (sum_r, acc_r) in sums.iter_mut().zip(acc) {
        for (sum, lanes) in sum_r.iter_mut().zip(acc_r) {
            *sum = lane_sum(lanes);
        }
    }
    sums
}

/// The 16 lanes summed in a fixed tree (halves, then quarters, ...), written out so that the compiler keeps
/// the accumulators in registers.
#[inline(always)]
fn lane_sum(v: [f32; LANES]) -> f32 {
    let h: [f32; 8] = std::array::from_fn(|l| v[l] + v[l + 8]);
    let q: [f32; 4] = std::array::from_fn(|l| h[l] + h[l + 4]);
    (q[0] + q[2]) + (q[1] + q[3])
}

/// acc[r][s] += av[r] · bv[s], lane by lane, fused.
#[inline(always)]
fn fma_step(acc: &mut [[[f32; LANES]; BLOCK]; BLOCK], av: &[[f32; LANES]; BLOCK], bv: &[[f32; LANES]; BLOCK]) {
    for (acc_r, ar) in acc.iter_mut().zip(av) {
        for (acc_rs, bs) in acc_r.iter_mut().zip(bv) {
            for l in 0..LANES {
                acc_rs[l] = ar[l].mul_add(bs[l], acc_rs[l]);
            }
        }
    }
}

/// [`gemm_nt`] in AVX-512 registers, written with intrinsics: the portable kernel compiled for AVX-512 kept
/// only half its accumulators in registers (the rest went through the stack every step) and summed each
/// output's lanes one scalar at a time. The same fused multiply-adds in the same lanes and the same
/// summation tree (whole registers halved four times, 16 outputs at once), so the same bits.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{blocks, BLOCK, LANES};

    /// SAFETY: the CPU has AVX-512F.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm_nt((m, n, k): (usize, usize, usize), a: &[f32], a_rs: usize, b: &[f32], b_rs: usize, c: &mut [f32], c_rs: usize, accumulate: bool) {
        // SAFETY: this function runs only where the CPU has AVX-512F (its caller's promise).
        blocks((m, n, k), a, a_rs, b, b_rs, c, c_rs, accumulate, |a_rows, b_rows, k| unsafe { block_sums(a_rows, b_rows, k) })
    }

    /// [`super::block_sums`]: every row holds at least `k` values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_sums(a_rows: &[&[f32]; BLOCK], b_rows: &[&[f32]; BLOCK], k: usize) -> [[f32; BLOCK]; BLOCK] {
        assert!(a_rows.iter().chain(b_rows).all(|row| row.len() >= k), "gemm_nt: row shorter than k");
        let mut acc = [[_mm512_setzero_ps(); BLOCK]; BLOCK];
        let mut av = [_mm512_setzero_ps(); BLOCK];
        let mut bv = [_mm512_setzero_ps(); BLOCK];
        let whole = k / LANES * LANES;
        let mut p = 0;
        while p < whole {
            for r in 0..BLOCK {
                // SAFETY: p + LANES <= k <= the row's length (asserted).
                av[r] = unsafe { _mm512_loadu_ps(a_rows[r].as_ptr().add(p)) };
                bv[r] = unsafe { _mm512_loadu_ps(b_rows[r].as_ptr().add(p)) };
            }
            for r in 0..BLOCK {
                for s in 0..BLOCK {
                    acc[r][s] = _mm512_fmadd_ps(av[r], bv[s], acc[r][s]);
                }
            }
            p += LANES;
        }
        if whole < k {
            // The last partial group, zero-padded, as in the portable kernel.
            let mask: __mmask16 = (1 << (k - whole)) - 1;
            for r in 0..BLOCK {
                // SAFETY: the mask reads only indices below k (masked-out lanes are not accessed).
                av[r] = unsafe { _mm512_maskz_loadu_ps(mask, a_rows[r].as_ptr().add(whole)) };
                bv[r] = unsafe { _mm512_maskz_loadu_ps(mask, b_rows[r].as_ptr().add(whole)) };
            }
            for r in 0..BLOCK {
                for s in 0..BLOCK {
                    acc[r][s] = _mm512_fmadd_ps(av[r], bv[s], acc[r][s]);
                }
            }
        }
        lane_sums(acc)
    }

    /// Each accumulator's 16 lanes summed as [`super::lane_sum`] does (distance 8, then 4, 2, 1), two or
    /// more accumulators per instruction.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lane_sums(acc: [[__m512; BLOCK]; BLOCK]) -> [[f32; BLOCK]; BLOCK] {
        let v: [__m512; 16] = std::array::from_fn(|o| acc[o / BLOCK][o % BLOCK]);
        // [x0..8 + x8..16, y0..8 + y8..16]
        let halves = |x: __m512, y: __m512| _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(x, y), _mm512_shuffle_f32x4::<0xEE>(x, y));
        // [x0..4 + x4..8, x8..12 + x12..16, y0..4 + y4..8, y8..12 + y12..16] of two halves' results
        let quarters = |x: __m512, y: __m512| _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(x, y), _mm512_shuffle_f32x4::<0xDD>(x, y));
        // in each 128-bit lane [x0 + x2, x1 + x3, y0 + y2, y1 + y3]
        let pairs = |x: __m512, y: __m512| _mm512_add_ps(_mm512_shuffle_ps::<0x44>(x, y), _mm512_shuffle_ps::<0xEE>(x, y));
        // in each 128-bit lane [x0 + x1, x2 + x3, y0 + y1, y2 + y3]
        let singles = |x: __m512, y: __m512| _mm512_add_ps(_mm512_shuffle_ps::<0x88>(x, y), _mm512_shuffle_ps::<0xDD>(x, y));
        let h: [__m512; 8] = std::array::from_fn(|i| halves(v[2 * i], v[2 * i + 1]));
        let q: [__m512; 4] = std::array::from_fn(|i| quarters(h[2 * i], h[2 * i + 1]));
        let sums = singles(pairs(q[0], q[1]), pairs(q[2], q[3]));
        // Element 4j + t of `sums` is output 4t + j (accumulator row t, column j).
        let mut flat = [0f32; 16];
        // SAFETY: `flat` holds 16 values.
        unsafe { _mm512_storeu_ps(flat.as_mut_ptr(), sums) };
        std::array::from_fn(|r| std::array::from_fn(|s| flat[4 * s + r]))
    }
}

/// [`gemm_nt`] in AVX2 registers, written with intrinsics: compiled for AVX2, the portable kernel's 16
/// accumulators of 16 lanes are 32 registers' worth where AVX2 has 16, so they cannot all stay in
/// registers. Here each 16-lane accumulator is two registers, the low and the high 8 lanes, and a block
/// is computed as two halves of 2 × 4 outputs, one register half at a time (8 accumulators, 2 + 4
/// registers of operands).
/// Every lane takes the same fused multiply-adds in the same order as in the portable kernel, and the
/// lanes are summed in its tree, so the bits are the same.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{blocks, BLOCK, LANES};

    /// Lanes of one AVX2 register: half an accumulator.
    const HALF: usize = 8;
    /// Rows of A in one pass over k.
    const ROWS: usize = 2;

    /// SAFETY: the CPU has AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm_nt((m, n, k): (usize, usize, usize), a: &[f32], a_rs: usize, b: &[f32], b_rs: usize, c: &mut [f32], c_rs: usize, accumulate: bool) {
        // SAFETY: this function runs only where the CPU has AVX2 and FMA (its caller's promise).
        blocks((m, n, k), a, a_rs, b, b_rs, c, c_rs, accumulate, |a_rows, b_rows, k| unsafe { block_sums(a_rows, b_rows, k) })
    }

    /// [`super::block_sums`]: every row holds at least `k` values.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_sums(a_rows: &[&[f32]; BLOCK], b_rows: &[&[f32]; BLOCK], k: usize) -> [[f32; BLOCK]; BLOCK] {
        assert!(a_rows.iter().chain(b_rows).all(|row| row.len() >= k), "gemm_nt: row shorter than k");
        let mut sums = [[0f32; BLOCK]; BLOCK];
        for r0 in (0..BLOCK).step_by(ROWS) {
            // [half][row][column]: lanes 0..8, then 8..16 of each accumulator.
            let mut acc = [[[_mm256_setzero_ps(); BLOCK]; ROWS]; 2];
            for (half, acc_h) in acc.iter_mut().enumerate() {
                // SAFETY: every row holds at least k values (asserted).
                unsafe { accumulate_half(acc_h, &a_rows[r0..r0 + ROWS], b_rows, k, half * HALF) };
            }
            for r in 0..ROWS {
                for s in 0..BLOCK {
                    sums[r0 + r][s] = lane_sum(acc[0][r][s], acc[1][r][s]);
                }
            }
        }
        sums
    }

    /// acc[r][s] += lanes `from..from + 8` of every 16-value group of a_rows[r] times those of b_rows[s],
    /// fused, over k (the last group zero-padded, as in the portable kernel).
    /// SAFETY: every row holds at least `k` values.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn accumulate_half(acc: &mut [[__m256; BLOCK]; ROWS], a_rows: &[&[f32]], b_rows: &[&[f32]; BLOCK], k: usize, from: usize) {
        let whole = k / LANES * LANES;
        let (mut av, mut bv) = ([_mm256_setzero_ps(); ROWS], [_mm256_setzero_ps(); BLOCK]);
        let mut p = from;
        while p < whole {
            // SAFETY: p + 8 <= whole <= k <= every row's length.
            unsafe {
                for r in 0..ROWS {
                    av[r] = _mm256_loadu_ps(a_rows[r].as_ptr().add(p));
                }
                for s in 0..BLOCK {
                    bv[s] = _mm256_loadu_ps(b_rows[s].as_ptr().add(p));
                }
            }
            fma_block(acc, &av, &bv);
            p += LANES;
        }
        if whole < k {
            // The lanes of the last group's half that hold values (none, maybe); the others zero terms,
            // added as the portable kernel adds them.
            let start = whole + from;
            let valid = k.saturating_sub(start).min(HALF) as i32;
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            // SAFETY: the mask reads only indices below k (masked-out lanes are not accessed).
            unsafe {
                for r in 0..ROWS {
                    av[r] = _mm256_maskload_ps(a_rows[r].as_ptr().wrapping_add(start), mask);
                }
                for s in 0..BLOCK {
                    bv[s] = _mm256_maskload_ps(b_rows[s].as_ptr().wrapping_add(start), mask);
                }
            }
            fma_block(acc, &av, &bv);
        }
    }

    /// acc[r][s] += av[r] · bv[s], fused.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma_block(acc: &mut [[__m256; BLOCK]; ROWS], av: &[__m256; ROWS], bv: &[__m256; BLOCK]) {
        for r in 0..ROWS {
            for s in 0..BLOCK {
                acc[r][s] = _mm256_fmadd_ps(av[r], bv[s], acc[r][s]);
            }
        }
    }

    /// The 16 lanes `lo` (0..8) and `hi` (8..16) summed in [`super::lane_sum`]'s tree.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn lane_sum(lo: __m256, hi: __m256) -> f32 {
        let h = _mm256_add_ps(lo, hi);
        let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        // [q0 + q2, q1 + q3, ..]
        let pairs = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * 0.731 + seed).sin()).collect()
    }

    /// Against the `gemm` crate's product of the same views, over shapes with partial blocks and lane
    /// groups, with and without accumulation; and the same bits on the baseline path and, where the CPU
    /// has it, from the AVX2 kernel.
    #[test]
    fn gemm_nt_matches_gemm() {
        for (m, n, k) in [(1, 1, 1), (4, 4, 16), (16, 27, 1000), (5, 7, 33), (32, 16, 15), (3, 9, 64), (6, 5, 24), (3, 3, 9)] {
            let (a_rs, b_rs, c_rs) = (k + 3, k + 5, n + 2);
            let a = values(m * a_rs, 0.1);
            let b = values(n * b_rs, 0.7);
            let start = values(m * c_rs, 1.3);
            for accumulate in [false, true] {
                let mut ours = start.clone();
                gemm_nt((m, n, k), &a, a_rs, &b, b_rs, &mut ours, c_rs, accumulate);
                let mut theirs = start.clone();
                gemm((m, n, k), &a, (a_rs, 1), &b, (1, b_rs), &mut theirs, (c_rs, 1), accumulate, false);
                for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
                    assert!((o - t).abs() <= 1e-5 * (k as f32).sqrt() * (1.0 + t.abs()), "{m}x{n}x{k} acc {accumulate}, element {i}: {o} vs {t}");
                }
                let mut baseline = start.clone();
                simd::tests::on_baseline(|| gemm_nt((m, n, k), &a, a_rs, &b, b_rs, &mut baseline, c_rs, accumulate));
                assert_eq!(ours, baseline, "{m}x{n}x{k}: the baseline path gave other bits");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    let mut tier = start.clone();
                    // SAFETY: the CPU has AVX2 and FMA (checked above).
                    unsafe { avx2::gemm_nt((m, n, k), &a, a_rs, &b, b_rs, &mut tier, c_rs, accumulate) };
                    assert_eq!(tier, baseline, "{m}x{n}x{k}: the AVX2 kernel gave other bits");
                }
            }
        }
    }

    /// The `gemm` crate's bits wherever [`rows_kernel`] picks ours, from both kernels, at shapes with
    /// partial row and column blocks and both A layouts the Winograd products use. Row 0 of A is -0 and
    /// column 0 of B positive, so that C's first value is a sum of -0 products: +0 from a chain started at
    /// +0, as the `gemm` crate starts it, and -0 from one started at -0 or at the first product.
    #[test]
    fn gemm_rows_gives_the_gemm_crates_bits() {
        for (m, n, k) in [(16, 512, 8), (7, 48, 3), (13, 80, 512), (2, 144, 5), (64, 128, 64), (6, 64, 17), (17, 16, 33), (64, 16, 32)] {
            for transposed_a in [false, true] {
                let (a_rs, a_cs) = if transposed_a { (1, m + 3) } else { (k + 2, 1) };
                let b_rs = n + 7;
                let mut a = values(m.max(k) * (m + k + 3), 0.3);
                let mut b = values(k * b_rs, 1.1);
                (0..k).for_each(|p| a[p * a_cs] = -0.0);
                (0..k).for_each(|p| b[p * b_rs] = 1.5 + b[p * b_rs]);
                let mut theirs = vec![f32::NAN; m * (n + 1)];
                gemm((m, n, k), &a, (a_rs, a_cs), &b, (b_rs, 1), &mut theirs, (n + 1, 1), false, false);
                assert_eq!(theirs[0].to_bits(), 0f32.to_bits(), "the gemm crate's sum of -0 products");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let mut ours = vec![f32::NAN; m * (n + 1)];
                gemm_rows((m, n, k), &a, (a_rs, a_cs), &b, b_rs, &mut ours, n + 1);
                assert_eq!(bits(&ours), bits(&theirs), "{m}x{n}x{k}, A transposed {transposed_a}");
                #[cfg(target_arch = "x86_64")]
                for (name, kernel, has) in [("AVX-512", rows_avx512::gemm_rows as RowsKernel, std::arch::is_x86_feature_detected!("avx512f")), ("AVX2", rows_avx2::gemm_rows, std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))] {
                    if has {
                        let mut direct = vec![f32::NAN; m * (n + 1)];
                        // SAFETY: the CPU has the kernel's instructions (checked); the views hold their shapes.
                        unsafe { kernel((m, n, k), a.as_ptr(), (a_rs, a_cs), b.as_ptr(), b_rs, direct.as_mut_ptr(), n + 1) };
                        for r in 0..m {
                            assert_eq!(bits(&direct[r * (n + 1)..][..n]), bits(&theirs[r * (n + 1)..][..n]), "{m}x{n}x{k} {name}, row {r}");
                        }
                    }
                }
            }
        }
    }

    /// Every element in its transposed place, at shapes with partial tiles on either side and at empty ones.
    #[test]
    fn transposed_moves_every_element() {
        for (rows, cols) in [(1, 1), (16, 16), (17, 33), (256, 4096), (4096, 64), (3, 40), (40, 3), (0, 5), (5, 0)] {
            let a = values(rows * cols, 0.4);
            let t = transposed(&a, rows, cols);
            assert_eq!(t.len(), rows * cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r].to_bits(), a[r * cols + c].to_bits(), "{rows}×{cols} at ({r}, {c})");
                }
            }
        }
    }
}
