//! 2×2 max pooling, stride 2, with PyTorch's gradient: the whole gradient of a window goes to its
//! maximum (the first one, in row-major order, where several are equal).
//!
//! candle 0.11.1's `max_pool2d` backward is wrong: a window's unique maximum receives 1/4 of its
//! gradient, and every element of a tied window receives all of it. On CPU f32 this is one pass forward
//! and one backward; elsewhere ([`Kernels::Candle`], and every GPU) it is written with candle's element-wise
//! ops: each window's first maximum selected by masks, so that the gradient reaches it alone. candle's
//! `max` would not do: its gradient goes whole to every tied element, and ties are common in real images
//! (flat regions, crops upsampled from few pixels) — with it the gradients of the first layers were
//! several times PyTorch's on the parity test's CIFAR-10 batches.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

use super::storage::contiguous_f32;
use super::kernels::Kernels;

/// Max over non-overlapping 2×2 windows of an (N, C, H, W) tensor; H and W must be even.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use candle_cpu_kernels::MaxPool2x2;
/// let x = Tensor::new(&[[[[1f32, 2., 5., 0.], [3., 4., 1., 1.]]]], &Device::Cpu).unwrap();
/// let y = MaxPool2x2::default().forward(&x).unwrap();
/// assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![4., 5.]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxPool2x2 {
    kernels: Kernels,
}

impl MaxPool2x2 {
    pub fn new(kernels: Kernels) -> Self {
        MaxPool2x2 { kernels }
    }
}

impl Module for MaxPool2x2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if h % 2 != 0 || w % 2 != 0 || h == 0 || w == 0 {
            candle_core::bail!("MaxPool2x2 needs an even, non-zero height and width, got {h}×{w}");
        }
        if self.kernels.native_on(&[x]) {
            return x.contiguous()?.apply_op1(Pool);
        }
        first_max_by_masks(&x.reshape((n, c, h / 2, 2, w / 2, 2))?)
    }
}

/// The max over dims 3 and 5 of an (N, C, H/2, 2, W/2, 2) tensor, its gradient to the first maximum of
/// each window in row-major order: the four elements, each times a detached 0/1 mask that is 1 at the
/// first one equal to the window's maximum. Exactly the maximum's value, on any device.
fn first_max_by_masks(windows: &Tensor) -> Result<Tensor> {
    let at = |i: usize, j: usize| windows.narrow(3, i, 1)?.narrow(5, j, 1)?.squeeze(5)?.squeeze(3);
    let corners = [at(0, 0)?, at(0, 1)?, at(1, 0)?, at(1, 1)?];
    let max = corners[0].maximum(&corners[1])?.maximum(&corners[2].maximum(&corners[3])?)?.detach();
    let mut taken = max.zeros_like()?;
    let mut out: Option<Tensor> = None;
    for x in &corners {
        // 1 where this element is the maximum and no earlier one was.
        let first = (x.detach().eq(&max)?.to_dtype(x.dtype())? * (1.0 - &taken)?)?;
        taken = (&taken + &first)?;
        let term = (x * &first)?;
        out = Some(match out {
            Some(o) => (o + term)?,
            None => term,
        });
    }
    out.ok_or_else(|| candle_core::Error::Msg("2×2 max pool: no window element".into()))
}

#[cfg(test)]
mod generic_tests {
    use candle_core::{Device, Module, Tensor, Var};

    use super::MaxPool2x2;
    use crate::kernels::Kernels;

    /// Both paths on windows with ties (equal maxima, equal zeros after ReLU, a negative maximum): the same
    /// values, and the whole gradient at each window's first maximum, as PyTorch routes it.
    #[test]
    fn candle_ops_route_the_gradient_to_the_first_maximum_as_our_kernel_does() {
        let x = Var::new(&[[[[3f32, 3., 0., 0.], [1., 3., 0., 0.], [-2., -1., 5., 7.], [-1., -3., 7., 6.]]]], &Device::Cpu).unwrap();
        let g = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu).unwrap();
        let mut grads = Vec::new();
        for kernels in [Kernels::Native, Kernels::Candle] {
            let y = MaxPool2x2::new(kernels).forward(x.as_tensor()).unwrap();
            assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![3., 0., -1., 7.], "{kernels}");
            let grad = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            grads.push(grad.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        let expected = vec![1f32, 0., 2., 0., 0., 0., 0., 0., 0., 3., 0., 4., 0., 0., 0., 0.];
        assert_eq!(grads[0], expected, "native");
        assert_eq!(grads[1], expected, "candle's ops");
    }
}

/// Index (0..4, row-major) of the first maximum of a window's four values.
#[inline(always)]
pub(super) fn first_max(v: [f32; 4]) -> usize {
    // Selects rather than branches: which element wins is data, and mispredicted branches cost more
    // than the comparisons.
    let (mut best, mut max) = (0, v[0]);
    for (k, &x) in v.iter().enumerate().skip(1) {
        let wins = x > max;
        best = if wins { k } else { best };
        max = if wins { x } else { max };
    }
    best
}

/// Calls `f(window values, output index)` for every 2×2 window of one (H × W) plane, row pair by row pair.
#[inline(always)]
pub(super) fn windows(plane: &[f32], w: usize, mut f: impl FnMut([f32; 4], usize)) {
    for (i, rows) in plane.chunks_exact(2 * w).enumerate() {
        let (top, bottom) = rows.split_at(w);
        for (j, (t, b)) in top.chunks_exact(2).zip(bottom.chunks_exact(2)).enumerate() {
            f([t[0], t[1], b[0], b[1]], i * (w / 2) + j);
        }
    }
}

/// Offset, within an (H × W) plane of width `w`, of element `k` (0..4, row-major) of the window at output
/// index `o`.
#[inline(always)]
pub(super) fn window_offset(o: usize, k: usize, w: usize) -> usize {
    let (i, j) = (o / (w / 2), o % (w / 2));
    (2 * i + k / 2) * w + 2 * j + k % 2
}

pub(super) fn plane_dims(d: &[usize]) -> Result<(usize, usize)> {
    match d {
        // Zero sides too: the kernels cut the batch into planes of H·W values.
        [_, _, h, w] if h % 2 == 0 && w % 2 == 0 && *h > 0 && *w > 0 => Ok((*h, *w)),
        _ => candle_core::bail!("MaxPool2x2: expected (N, C, H, W) with even, non-zero H and W, got {d:?}"),
    }
}

struct Pool;

impl CustomOp1 for Pool {
    fn name(&self) -> &'static str {
        "cpu-kernels-max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (h, w) = plane_dims(l.dims())?;
        let x = contiguous_f32(s, l)?;
        let (oh, ow) = (h / 2, w / 2);
        let mut y = vec![0f32; x.len() / 4];
        y.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each(|(yp, xp)| windows(xp, w, |v, o| yp[o] = v[first_max(v)]));
        let d = l.dims();
        Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &PoolGrad)?))
    }
}

/// dx from (x, dy): each window's gradient to its first maximum.
struct PoolGrad;

impl CustomOp2 for PoolGrad {
    fn name(&self) -> &'static str {
        "cpu-kernels-max-pool-2x2-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (h, w) = plane_dims(l1.dims())?;
        let (x, gy) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        let (oh, ow) = (h / 2, w / 2);
        if gy.len() * 4 != x.len() {
            candle_core::bail!("MaxPool2x2 grad: gradient {:?} does not fit input {:?}", l2.dims(), l1.dims());
        }
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(h * w).zip(x.par_chunks(h * w)).zip(gy.par_chunks(oh * ow)).for_each(|((dp, xp), gp)| {
            windows(xp, w, |v, o| dp[window_offset(o, first_max(v), w)] = gp[o])
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
