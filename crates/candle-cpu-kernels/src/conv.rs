//! A 2-D convolution (no bias, square kernel) whose CPU forward and backward are im2col / col2im plus
//! single-threaded f32 GEMMs (the `gemm` crate candle uses, with its AVX-512 kernels; for the weight gradient
//! our [`matmul::gemm_nt`]), parallel over groups of images.
//!
//! Why: in candle 0.11.1 on CPU the input gradient of `conv2d` goes through `conv_transpose2d`, a direct
//! loop several times slower than the forward, and the gradient of the network's input image is computed
//! though nothing needs it. Here the input gradient is one GEMM + col2im per group of images, the weight
//! gradient one GEMM per group accumulated in a fixed number of chunks (so the sum order, and the result,
//! do not depend on the thread count), and the first layer skips its input gradient. Other devices and dtypes
//! use candle's own `conv2d`.

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};
use rayon::prelude::*;
use std::cell::RefCell;

use crate::geom::{copy_row, shape_err, Geom};
use crate::kernels::Kernels;
use crate::storage::contiguous_f32;
use crate::winograd::{self, TransformedInput};
use crate::matmul;

/// Columns per GEMM that small feature maps are grouped up to: with few output positions per image, a
/// GEMM per image would spend as long packing the weights as multiplying them.
const GEMM_COLS: usize = 256;

impl Geom {
    /// Images per GEMM. A function of the shapes only, so that results do not depend on the thread count.
    fn group(&self) -> usize {
        (GEMM_COLS / self.p()).clamp(1, self.n.max(1))
    }
}

/// Adds a row of a feature map into another, with [`copy_row`]'s fixed sizes.
#[inline(always)]
fn add_row(dst: &mut [f32], src: &[f32]) {
    #[inline(always)]
    fn add<const N: usize>(dst: &mut [f32], src: &[f32]) {
        dst[..N].iter_mut().zip(&src[..N]).for_each(|(d, v)| *d += v);
    }
    match dst.len() {
        1 => add::<1>(dst, src),
        2 => add::<2>(dst, src),
        4 => add::<4>(dst, src),
        8 => add::<8>(dst, src),
        16 => add::<16>(dst, src),
        32 => add::<32>(dst, src),
        n => dst.iter_mut().zip(&src[..n]).for_each(|(d, v)| *d += v),
    }
}

impl Geom {
    /// Side lengths of a padded plane.
    fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.pad, self.w + 2 * self.pad)
    }
}

/// Writes one image x (C × H × W) into its columns of a column matrix (C·kh·kw rows, `ld` apart): `cols`
/// starts at the image's first column. At stride 1 each channel is first copied into the zero-bordered
/// `plane` ((H + 2·pad) × (W + 2·pad), border zero on entry and left so), so that every row of the
/// column matrix is a run of plain row copies.
fn im2col(x: &[f32], g: &Geom, cols: &mut [f32], ld: usize, plane: &mut [f32]) {
    let p = g.p();
    let wp = g.padded().1;
    for c in 0..g.c {
        if g.stride == 1 {
            for y in 0..g.h {
                copy_row(&mut plane[(y + g.pad) * wp + g.pad..][..g.w], &x[(c * g.h + y) * g.w..][..g.w]);
            }
        }
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[((c * g.kh + i) * g.kw + j) * ld..][..p];
                if g.stride == 1 {
                    for oy in 0..g.oh {
                        copy_row(&mut row[oy * g.ow..][..g.ow], &plane[(oy + i) * wp + j..][..g.ow]);
                    }
                    continue;
                }
                for oy in 0..g.oh {
                    let y = (oy * g.stride + i) as isize - g.pad as isize;
                    let out = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    if y < 0 || y >= g.h as isize {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &x[(c * g.h + y as usize) * g.w..][..g.w];
                    for (ox, o) in out.iter_mut().enumerate() {
                        let xx = (ox * g.stride + j) as isize - g.pad as isize;
                        *o = if xx < 0 || xx >= g.w as isize { 0.0 } else { src[xx as usize] };
                    }
                }
            }
        }
    }
}

/// A zeroed padded plane for [`im2col`] / [`col2im`] (empty where the stride is not 1).
fn plane_buffer(g: &Geom) -> Vec<f32> {
    let (hp, wp) = g.padded();
    vec![0f32; if g.stride == 1 { hp * wp } else { 0 }]
}

/// The column matrix (C·kh·kw × imgs·OH·OW) of images first..first + imgs of the batch x.
fn group_im2col(x: &[f32], g: &Geom, first: usize, imgs: usize, cols: &mut [f32]) {
    let (img, p) = (g.c * g.h * g.w, g.p());
    let mut plane = plane_buffer(g);
    for i in 0..imgs {
        im2col(&x[(first + i) * img..][..img], g, &mut cols[i * p..], imgs * p, &mut plane);
    }
}

/// Writes one image's gradient dx (C × H × W) from its columns (rows `ld` apart, `cols` starting at its
/// first column), summing each element's terms in (i, j, oy) order. At stride 1 the sums are formed in
/// `plane` (as for [`im2col`]) and its interior copied out.
fn col2im(cols: &[f32], g: &Geom, dx: &mut [f32], ld: usize, plane: &mut [f32]) {
    let p = g.p();
    let wp = g.padded().1;
    for c in 0..g.c {
        let dxc = &mut dx[c * g.h * g.w..][..g.h * g.w];
        if g.stride == 1 {
            plane.fill(0.0);
        } else {
            dxc.fill(0.0);
        }
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * ld..][..p];
                if g.stride == 1 {
                    for oy in 0..g.oh {
                        add_row(&mut plane[(oy + i) * wp + j..][..g.ow], &row[oy * g.ow..][..g.ow]);
                    }
                    continue;
                }
                for oy in 0..g.oh {
                    let y = (oy * g.stride + i) as isize - g.pad as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    let dst = &mut dxc[y as usize * g.w..][..g.w];
                    for ox in 0..g.ow {
                        let xx = (ox * g.stride + j) as isize - g.pad as isize;
                        if xx >= 0 && xx < g.w as isize {
                            dst[xx as usize] += row[oy * g.ow + ox];
                        }
                    }
                }
            }
        }
        if g.stride == 1 {
            for y in 0..g.h {
                copy_row(&mut dxc[y * g.w..][..g.w], &plane[(y + g.pad) * wp + g.pad..][..g.w]);
            }
        }
    }
}

thread_local! {
    /// Per-thread scratch (column matrix, regrouped output or gradient), kept between calls: zeroing fresh
    /// buffers for every group of images cost as much as im2col itself.
    static SCRATCH: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f` on this thread's two scratch buffers, of at least `a` and `b` elements (contents undefined:
/// every caller overwrites what it reads). `f` must not call it again.
fn with_scratch<R>(a: usize, b: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let [x, y] = &mut *s.borrow_mut();
        for (v, n) in [(&mut *x, a), (&mut *y, b)] {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        }
        f(&mut x[..a], &mut y[..b])
    })
}

/// Image-major (imgs × rows × p) to row-major over the group (rows × imgs·p), or back with `back`.
fn regroup(src: &[f32], dst: &mut [f32], rows: usize, imgs: usize, p: usize, back: bool) {
    for r in 0..rows {
        for i in 0..imgs {
            let (image_major, grouped) = ((i * rows + r) * p, (r * imgs + i) * p);
            let (from, to) = if back { (grouped, image_major) } else { (image_major, grouped) };
            dst[to..to + p].copy_from_slice(&src[from..from + p]);
        }
    }
}

/// C (m × n) = op(A)·B, row-major, single-threaded; `ta` reads A (stored k × m) transposed.
fn gemm(m: usize, k: usize, n: usize, a: &[f32], ta: bool, b: &[f32], c: &mut [f32]) {
    let a_strides = if ta { (1, m) } else { (k, 1) };
    matmul::gemm_rows((m, n, k), a, a_strides, b, n, c, n);
}

/// y = conv(x, w) of a batch x (N, C, H, W) and weights w (K, C, kh, kw), both contiguous; with `keep`,
/// also what the forward computed that [`backward`] can reuse (Winograd's transformed input tiles).
pub(super) fn forward(x: &[f32], wt: &[f32], g: &Geom, keep: bool) -> (Vec<f32>, Option<TransformedInput>) {
    if winograd::applies(g) {
        return winograd::forward(x, wt, g, keep);
    }
    let (ckk, p, group) = (g.ckk(), g.p(), g.group());
    let mut y = vec![0f32; g.n * g.k * p];
    y.par_chunks_mut(group * g.k * p).enumerate().for_each(|(gi, yg)| {
        with_scratch(ckk * group * p, g.k * group * p, |cols, out| {
            let imgs = yg.len() / (g.k * p);
            group_im2col(x, g, gi * group, imgs, cols);
            if imgs == 1 {
                gemm(g.k, ckk, p, wt, false, cols, yg);
            } else {
                gemm(g.k, ckk, imgs * p, wt, false, cols, out);
                regroup(out, yg, g.k, imgs, p, true);
            }
        })
    });
    (y, None)
}

/// dx of a batch from its output gradient gy (N, K, OH, OW) and w: per group of images, cols = wᵀ·gy,
/// then col2im.
pub(super) fn grad_input(gy: &[f32], wt: &[f32], g: &Geom) -> Vec<f32> {
    if winograd::applies(g) {
        return winograd::backward(&[], gy, wt, g, (true, false), None).0.unwrap_or_default();
    }
    let (ckk, p, img, group) = (g.ckk(), g.p(), g.c * g.h * g.w, g.group());
    let mut dx = vec![0f32; g.n * img];
    dx.par_chunks_mut(group * img).enumerate().for_each(|(gi, dxg)| {
        with_scratch(ckk * group * p, g.k * group * p, |cols, buf| {
            let imgs = dxg.len() / img;
            let gyg = grouped(&gy[gi * group * g.k * p..][..imgs * g.k * p], g, imgs, buf);
            gemm(ckk, g.k, imgs * p, wt, true, gyg, cols);
            let mut plane = plane_buffer(g);
            for i in 0..imgs {
                col2im(&cols[i * p..], g, &mut dxg[i * img..][..img], imgs * p, &mut plane);
            }
        })
    });
    dx
}

/// dw from x and gy: Σ over groups of images of gy·colsᵀ, in a fixed number of chunks summed in order.
pub(super) fn grad_weight(x: &[f32], gy: &[f32], g: &Geom) -> Vec<f32> {
    if winograd::applies(g) {
        return winograd::backward(x, gy, &[], g, (false, true), None).1.unwrap_or_default();
    }
    let (ckk, p, group) = (g.ckk(), g.p(), g.group());
    let groups = g.n.div_ceil(group);
    let per = groups.div_ceil(WEIGHT_GRAD_CHUNKS).max(1);
    let partial: Vec<Vec<f32>> = (0..groups.div_ceil(per))
        .into_par_iter()
        .map(|chunk| {
            let mut acc = vec![0f32; g.k * ckk];
            with_scratch(ckk * group * p, g.k * group * p, |cols, buf| {
                for gi in chunk * per..((chunk + 1) * per).min(groups) {
                    let first = gi * group;
                    let imgs = group.min(g.n - first);
                    group_im2col(x, g, first, imgs, cols);
                    let gyg = grouped(&gy[first * g.k * p..][..imgs * g.k * p], g, imgs, buf);
                    matmul::gemm_nt((g.k, ckk, imgs * p), gyg, imgs * p, cols, imgs * p, &mut acc, ckk, gi > chunk * per);
                }
            });
            acc
        })
        .collect();
    let mut dw = vec![0f32; g.k * ckk];
    for part in &partial {
        dw.iter_mut().zip(part).for_each(|(d, v)| *d += v);
    }
    dw
}

/// The input gradient (with `input_grad`) and the weight gradient of a batch, from x, w, gy and what the
/// forward kept.
pub(super) fn backward(x: &[f32], gy: &[f32], wt: &[f32], g: &Geom, input_grad: bool, kept: Option<&TransformedInput>) -> (Option<Vec<f32>>, Vec<f32>) {
    if winograd::applies(g) {
        let (dx, dw) = winograd::backward(x, gy, wt, g, (input_grad, true), kept);
        return (dx, dw.unwrap_or_default());
    }
    (input_grad.then(|| grad_input(gy, wt, g)), grad_weight(x, gy, g))
}

/// Forward: y = conv(x, w). Inputs: x (N, C, H, W), w (K, C, kh, kw).
struct ConvForward {
    stride: usize,
    pad: usize,
    /// Whether x needs a gradient (false for the network's input image).
    input_grad: bool,
}

impl CustomOp2 for ConvForward {
    fn name(&self) -> &'static str {
        "cpu-kernels-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.stride, self.pad)?;
        let (y, _) = forward(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, &g, false);
        Ok((CpuStorage::F32(y), g.output_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (_, _, h, wd) = x.dims4()?;
        let dx = if self.input_grad {
            Some(grad.apply_op2_no_bwd(w, &ConvGradInput { stride: self.stride, pad: self.pad, h, w: wd })?)
        } else {
            None
        };
        let (_, _, kh, kw) = w.dims4()?;
        let dw = x.apply_op2_no_bwd(&grad, &ConvGradWeight { stride: self.stride, pad: self.pad, kh, kw })?;
        Ok((dx, Some(dw)))
    }
}

/// The output gradient of one group of images as a K × imgs·p matrix (borrowed when the group is one image).
fn grouped<'a>(gy: &'a [f32], g: &Geom, imgs: usize, buf: &'a mut [f32]) -> &'a [f32] {
    if imgs == 1 {
        return gy;
    }
    regroup(gy, buf, g.k, imgs, g.p(), false);
    &buf[..g.k * imgs * g.p()]
}

/// dx from (grad (N, K, OH, OW), w): per group of images, cols = wᵀ·grad, then col2im.
struct ConvGradInput {
    stride: usize,
    pad: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "cpu-kernels-conv2d-grad-input"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let [n, _, _, _] = <[usize; 4]>::try_from(l1.dims()).map_err(|_| shape_err(l1.dims()))?;
        let wd = l2.dims();
        let g = Geom::new(&[n, wd[1], self.h, self.w], wd, self.stride, self.pad)?;
        let dx = grad_input(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, &g);
        Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c, g.h, g.w))))
    }
}

/// dw from (x, grad): Σ over groups of images of grad·colsᵀ, in a fixed number of chunks summed in order.
struct ConvGradWeight {
    stride: usize,
    pad: usize,
    kh: usize,
    kw: usize,
}

/// Chunks of the batch whose weight gradients are summed separately (then in order): fixed, so that the
/// result does not depend on the number of threads.
const WEIGHT_GRAD_CHUNKS: usize = 8;

impl CustomOp2 for ConvGradWeight {
    fn name(&self) -> &'static str {
        "cpu-kernels-conv2d-grad-weight"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xd, gd) = (l1.dims(), l2.dims());
        if xd.len() != 4 || gd.len() != 4 {
            candle_core::bail!("conv2d grad: expected 4-d inputs, got {xd:?} and {gd:?}");
        }
        let g = Geom::new(xd, &[gd[1], xd[1], self.kh, self.kw], self.stride, self.pad)?;
        if (g.oh, g.ow) != (gd[2], gd[3]) {
            candle_core::bail!("conv2d grad: output {gd:?} does not match input {xd:?}");
        }
        let dw = grad_weight(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, &g);
        Ok((CpuStorage::F32(dw), Shape::from((g.k, g.c, g.kh, g.kw))))
    }
}

/// A bias-free convolution layer with the same parameters and initialisation as candle-nn's
/// `conv2d_no_bias` (so checkpoints and seeds are interchangeable), computed by the ops above on CPU f32.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_cpu_kernels::Conv2d;
/// let vm = candle_nn::VarMap::new();
/// let cfg = candle_nn::Conv2dConfig { padding: 1, ..Default::default() };
/// let conv = Conv2d::new(3, 8, 3, cfg, true, candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
/// let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
/// let reference = x.conv2d(conv.weight(), 1, 1, 1, 1).unwrap();
/// let diff = (conv.forward(&x).unwrap() - reference).unwrap().abs().unwrap().max_all().unwrap();
/// assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    cfg: Conv2dConfig,
    input_grad: bool,
    kernels: Kernels,
}

impl Conv2d {
    /// `input_grad`: false for a layer whose input needs no gradient (the first, on images).
    pub fn new(cin: usize, cout: usize, kernel: usize, cfg: Conv2dConfig, input_grad: bool, vb: VarBuilder) -> Result<Self> {
        if cfg.groups != 1 || cfg.dilation != 1 {
            candle_core::bail!("conv2d: groups and dilation other than 1 are not supported");
        }
        let weight = candle_nn::conv2d_no_bias(cin, cout, kernel, cfg, vb)?.weight().clone();
        Ok(Conv2d { weight, cfg, input_grad, kernels: Kernels::Native })
    }

    /// Computed by `kernels` (our kernels by default).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Conv2d { kernels, ..self }
    }

    pub(super) fn kernels(&self) -> Kernels {
        self.kernels
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub(super) fn stride(&self) -> usize {
        self.cfg.stride
    }

    pub(super) fn padding(&self) -> usize {
        self.cfg.padding
    }

    /// Whether the input gets a gradient.
    pub(super) fn input_grad(&self) -> bool {
        self.input_grad
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.kernels.native_on(&[x, &self.weight]) {
            let op = ConvForward { stride: self.cfg.stride, pad: self.cfg.padding, input_grad: self.input_grad };
            x.contiguous()?.apply_op2(&self.weight.contiguous()?, op)
        } else {
            super::unfold::conv2d(x, &self.weight, self.cfg.padding, self.cfg.stride)
        }
    }
}
