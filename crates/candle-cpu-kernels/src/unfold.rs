//! The convolution of the generic path (candle's ops: CUDA, Metal, and the CPU with `kernels: candle`)
//! as an unfolding of the input and one batched matrix product, so that autograd forms both gradients as
//! matrix products.
//!
//! Why: candle 0.11.1 differentiates its `conv2d` with respect to the input by `conv_transpose2d`, which
//! its CUDA and Metal backends compute as a direct loop, one output element per thread with no tiling —
//! the construction that made candle's CPU backward 5–9× slower than PyTorch's before our kernels. Here
//! the input's gradient is the transposed product (a GEMM) followed by the unfolding's adjoint (copies and
//! additions), and the weight's gradient a GEMM, on every device and for every stride.

use candle_core::{Result, Tensor};

/// y = conv2d(x, w) with `padding` zeros on each side and `stride`, no bias, for x (N, C, H, W) and
/// w (K, C, kh, kw): the kh·kw shifted (and strided) views of the padded input stacked into
/// (N, C·kh·kw, Ho·Wo) columns, multiplied by w as a (K, C·kh·kw) matrix.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::randn(0f64, 1.0, (2, 3, 9, 9), &Device::Cpu).unwrap();
/// let w = Tensor::randn(0f64, 1.0, (4, 3, 3, 3), &Device::Cpu).unwrap();
/// let ours = candle_cpu_kernels::unfold::conv2d(&x, &w, 1, 2).unwrap();
/// let candle = x.conv2d(&w, 1, 2, 1, 1).unwrap();
/// let diff = (ours - candle).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
/// assert!(diff < 1e-12);
/// ```
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (k, wc, kh, kw) = w.dims4()?;
    if wc != c || stride == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
        candle_core::bail!("conv2d: input {:?} and weight {:?} with padding {padding}, stride {stride} do not fit", x.dims(), w.dims());
    }
    let (ho, wo) = ((h + 2 * padding - kh) / stride + 1, (wd + 2 * padding - kw) / stride + 1);
    let padded = if padding > 0 { x.pad_with_zeros(2, padding, padding)?.pad_with_zeros(3, padding, padding)? } else { x.clone() };
    let mut views = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        for j in 0..kw {
            views.push(shifted(&padded, (i, j), (ho, wo), stride)?);
        }
    }
    // (N, C, kh·kw, Ho, Wo): the column index c·kh·kw + i·kw + j matches w's (K, C, kh, kw) layout.
    let columns = Tensor::stack(&views, 2)?.reshape((n, c * kh * kw, ho * wo))?;
    w.reshape((k, c * kh * kw))?.broadcast_matmul(&columns)?.reshape((n, k, ho, wo))
}

/// The (N, C, Ho, Wo) view of `padded` whose element (y, x) is `padded[.., i + y·stride, j + x·stride]`.
fn shifted(padded: &Tensor, (i, j): (usize, usize), (ho, wo): (usize, usize), stride: usize) -> Result<Tensor> {
    if stride == 1 {
        return padded.narrow(2, i, ho)?.narrow(3, j, wo);
    }
    // stride·Ho rows from row i (zeros past the end: those rows are never selected), then every
    // stride-th of them by a reshape that puts the step in its own dimension.
    let (n, c, hp, wp) = padded.dims4()?;
    let grown = padded.pad_with_zeros(2, 0, (i + stride * ho).saturating_sub(hp))?.pad_with_zeros(3, 0, (j + stride * wo).saturating_sub(wp))?;
    grown
        .narrow(2, i, stride * ho)?
        .narrow(3, j, stride * wo)?
        .reshape((n, c, ho, stride, wo, stride))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((n, c, ho, wo))
}
