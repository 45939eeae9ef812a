//! Row-major f32 matrix products on strided views, through the `gemm` crate (the one candle's CPU matmul
//! calls): the one place the convolution and the linear layer call it from.

use std::sync::OnceLock;

/// (row stride, column stride) of a matrix view, in elements.
pub(super) type Strides = (usize, usize);

/// C (m × n) = A (m × k) · B (k × n), plus C where `accumulate`; each operand a view with its strides.
/// `parallel` splits the product over rayon's threads as candle does; without it, it runs on this thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm((m, n, k): (usize, usize, usize), a: &[f32], (a_rs, a_cs): Strides, b: &[f32], (b_rs, b_cs): Strides, c: &mut [f32], (c_rs, c_cs): Strides, accumulate: bool, parallel: bool) {
    if m * n == 0 {
        return;
    }
    let span = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(k == 0 || (a.len() >= span(m, k, a_rs, a_cs) && b.len() >= span(k, n, b_rs, b_cs)), "gemm: operand too small");
    assert!(c.len() >= span(m, n, c_rs, c_cs), "gemm: destination too small");
    let threads = if parallel { gemm_threads() } else { 1 };
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above bound every index the strides reach.
    unsafe {
        gemm::gemm(
            m, n, k, c.as_mut_ptr(), c_cs as isize, c_rs as isize, accumulate, a.as_ptr(), a_cs as isize, a_rs as isize, b.as_ptr(), b_cs as isize,
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
