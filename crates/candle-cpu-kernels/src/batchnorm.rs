//! Batch normalisation over dim 1 (BatchNorm1d on (N, C), BatchNorm2d on (N, C, H, W)), optionally
//! followed by ReLU and by a 2×2 max pool, with the parameters, variable names and semantics of candle-nn's `BatchNorm`:
//! the batch's biased variance normalises, the unbiased one enters the running estimate (momentum 0.1,
//! eps 1e-5, as PyTorch). In training on CPU f32 the forward is one fused pass after the statistics, and
//! the backward one reduction plus one pass; with the pool, each plane's gradient is routed back to the
//! activations in a plane-sized buffer in both, never stored for the whole batch. BatchNorm1d's rows (one
//! value per channel and sample) run as passes along the channels, so that they vectorise.
//!
//! Why: candle assembles batch norm from about ten generic broadcast ops, each a pass over the
//! activations into a fresh allocation, and ReLU adds another; at width/4 they cost more of a training
//! step than the convolutions. In eval mode, on other devices and for other dtypes, candle-nn's own layer
//! runs (it is also the reference the tests compare with). A form of it from candle's ops with fewer
//! passes — no channel-major copy of the activations, the statistics reduced where they lie, one
//! per-channel factor for the scale and the normalisation — was tried for the GPUs' path and left out: on
//! the CPU it made the generic step slower (width 1/8, batch 2×128: 613–649 against 491–609 ms), because
//! candle takes the gradient of a per-channel broadcast over (N, C, H, W) by a strided reduction over
//! dims 0, 2 and 3, where candle-nn's channel-major layout reduces along contiguous rows; on a GPU it was
//! not measured.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, ModuleT, Result, Shape, Tensor, Var};
use candle_nn::{BatchNormConfig, VarBuilder};
use rayon::prelude::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};

use super::geom::{copy_row, copy_row_to};
use super::storage::{contiguous_f32, cpu_slice, written, KeptBuffer};
use super::simd;
use super::kernels::Kernels;
use super::pool::{plane_dims, MaxPool2x2};

const CONFIG: BatchNormConfig = BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };

/// Batch norm with a learnt scale and shift, and ReLU after it when `relu`.
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use candle_cpu_kernels::BatchNorm;
/// let vm = candle_nn::VarMap::new();
/// let bn = BatchNorm::new(3, true, candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
/// let x = Tensor::randn(0f32, 1.0, (4, 3, 5, 5), &Device::Cpu).unwrap();
/// let y = bn.forward_t(&x, true).unwrap();
/// // Normalised per channel, then ReLU: about half of the outputs are zero, none negative.
/// assert!(y.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
/// ```
#[derive(Debug, Clone)]
pub struct BatchNorm {
    reference: candle_nn::BatchNorm,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    relu: bool,
    kernels: Kernels,
}

impl BatchNorm {
    pub fn new(features: usize, relu: bool, vb: VarBuilder) -> Result<Self> {
        let reference = candle_nn::batch_norm(features, CONFIG, vb)?;
        let (weight, bias) = reference
            .weight_and_bias()
            .map(|(w, b)| (w.clone(), b.clone()))
            .ok_or_else(|| candle_core::Error::Msg("batch norm: candle-nn built it without scale and shift".into()))?;
        // The running statistics are variables of the var map: these handles share their storage.
        let running_mean = Var::from_tensor(reference.running_mean())?;
        let running_var = Var::from_tensor(reference.running_var())?;
        Ok(BatchNorm { reference, weight, bias, running_mean, running_var, relu, kernels: Kernels::Native })
    }

    /// Computed by `kernels` (our kernels by default).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        BatchNorm { kernels, ..self }
    }

    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// Batch norm, ReLU where set, then a 2×2 max pool ([`MaxPool2x2`]) — in training on CPU f32 one op, so
    /// that the unpooled activations are never stored and their gradient never goes through candle's
    /// bookkeeping (a zeroed tensor plus an addition per gradient). Same values as the three steps apart.
    pub fn forward_pooled_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.fused(x, train) && x.rank() == 4 {
            return self.forward_fused(x, true);
        }
        MaxPool2x2::new(self.kernels).forward(&self.forward_t(x, train)?)
    }

    fn fused(&self, x: &Tensor, train: bool) -> bool {
        train && self.kernels.native_on(&[x, &self.weight]) && x.rank() >= 2
    }

    fn forward_fused(&self, x: &Tensor, pool: bool) -> Result<Tensor> {
        let x = x.contiguous()?;
        let (n, c, s) = dims(x.dims())?;
        let (mean, var) = {
            let (storage, layout) = x.storage_and_layout();
            channel_stats(cpu_slice(&storage, layout)?, n, c, s)
        };
        self.update_running(&mean, &var, n * s)?;
        x.apply_op3(&self.weight, &self.bias, FusedBatchNorm::from_stats(&mean, &var, self.relu, pool))
    }

    /// Folds a training batch's statistics (per channel mean and biased variance over `m` values) into the
    /// running estimates.
    pub(super) fn update_running(&self, mean: &[f64], var: &[f64], m: usize) -> Result<()> {
        let (m, mom, dev) = (m as f64, CONFIG.momentum, self.weight.device());
        let batch_mean = Tensor::from_vec(mean.iter().map(|&v| v as f32).collect::<Vec<_>>(), mean.len(), dev)?;
        let unbiased = Tensor::from_vec(var.iter().map(|&v| (v * m / (m - 1.0)) as f32).collect::<Vec<_>>(), var.len(), dev)?;
        self.running_mean.set(&((self.running_mean.as_tensor() * (1.0 - mom))? + (batch_mean * mom)?)?)?;
        self.running_var.set(&((self.running_var.as_tensor() * (1.0 - mom))? + (unbiased * mom)?)?)
    }

    /// Whether ReLU follows.
    pub(super) fn relu(&self) -> bool {
        self.relu
    }

    /// The learnt scale γ and shift β.
    pub(super) fn scale_and_shift(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if self.fused(x, train) {
            return self.forward_fused(x, false);
        }
        let y = self.reference.forward_t(x, train)?;
        if self.relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// (N, C, positions per channel and image) of a shape with channels on dim 1.
fn dims(d: &[usize]) -> Result<(usize, usize, usize)> {
    if d.len() < 2 || d[0] * d[1] == 0 {
        candle_core::bail!("batch norm: expected a non-empty (N, C, ...) input, got {d:?}");
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// Chunks of the batch whose per-channel sums are formed separately (then added in order): fixed, so that
/// the result does not depend on the number of threads.
const BATCH_CHUNKS: usize = 8;

/// Per channel, sums over the batch: `image(i, acc)` adds image i's terms into its chunk's per-channel
/// accumulators, in f64; the chunks' sums are then added in order.
fn batch_sums<const K: usize>(n: usize, c: usize, image: impl Fn(usize, &mut [[f64; K]]) + Sync) -> Vec<[f64; K]> {
    let per = n.div_ceil(BATCH_CHUNKS);
    let partial: Vec<Vec<[f64; K]>> = (0..n.div_ceil(per))
        .into_par_iter()
        .map(|chunk| simd::wide(#[inline(always)] || {
            let mut acc = vec![[0f64; K]; c];
            for img in chunk * per..((chunk + 1) * per).min(n) {
                image(img, &mut acc);
            }
            acc
        }))
        .collect();
    let mut out = vec![[0f64; K]; c];
    for part in &partial {
        for (o, p) in out.iter_mut().zip(part) {
            for k in 0..K {
                o[k] += p[k];
            }
        }
    }
    out
}

/// Adds one row's f32 sums to its channel's f64 accumulator.
#[inline(always)]
fn accumulate<const K: usize>(acc: &mut [f64; K], sums: [f32; K]) {
    for k in 0..K {
        acc[k] += sums[k] as f64;
    }
}

/// Per channel, the sums over the batch of K terms f(channel, x, y, g) of three equally shaped (N, C, s)
/// arrays: per (image, channel) row in f32 ([`row_sums`]), across rows in f64.
fn channel_sums<const K: usize>(
    (xs, ys, gs): (&[f32], &[f32], &[f32]),
    (n, c, s): (usize, usize, usize),
    f: impl Fn(usize, f32, f32, f32) -> [f32; K] + Sync,
) -> Vec<[f64; K]> {
    batch_sums(n, c, #[inline(always)] |img, acc| {
        let image = img * c * s..(img + 1) * c * s;
        let (xi, yi, gi) = (&xs[image.clone()], &ys[image.clone()], &gs[image]);
        if s == 1 {
            // One value per row (BatchNorm1d): the same sums, as one pass along the channels.
            for (ch, (a, ((&x, &y), &g))) in acc.iter_mut().zip(xi.iter().zip(yi).zip(gi)).enumerate() {
                accumulate(a, f(ch, x, y, g));
            }
            return;
        }
        for (ch, a) in acc.iter_mut().enumerate() {
            let r = ch * s..(ch + 1) * s;
            accumulate(a, row_sums(&xi[r.clone()], &yi[r.clone()], &gi[r], |x, y, g| f(ch, x, y, g)));
        }
    })
}

/// Σ f(x, y, g) over three equally long rows, in 16 f32 lanes (so that it vectorises, in a fixed order).
#[inline(always)]
fn row_sums<const K: usize>(x: &[f32], y: &[f32], g: &[f32], f: impl Fn(f32, f32, f32) -> [f32; K]) -> [f32; K] {
    let full = x.len() / 16 * 16;
    if full == 0 {
        // Rows shorter than the lanes (BatchNorm1d's are one value): the lanes would only add zeros.
        return tail_sums(x, y, g, [0.0; K], f);
    }
    let mut lanes = [[0f32; 16]; K];
    for ((xc, yc), gc) in x[..full].chunks_exact(16).zip(y[..full].chunks_exact(16)).zip(g[..full].chunks_exact(16)) {
        for l in 0..16 {
            let v = f(xc[l], yc[l], gc[l]);
            for k in 0..K {
                lanes[k][l] += v[k];
            }
        }
    }
    let mut out = [0f32; K];
    for k in 0..K {
        out[k] = lanes[k].iter().sum();
    }
    tail_sums(&x[full..], &y[full..], &g[full..], out, f)
}

/// `out` plus Σ f(x, y, g) over three equally long rows, one term at a time.
#[inline(always)]
fn tail_sums<const K: usize>(x: &[f32], y: &[f32], g: &[f32], mut out: [f32; K], f: impl Fn(f32, f32, f32) -> [f32; K]) -> [f32; K] {
    for ((&xv, &yv), &gv) in x.iter().zip(y).zip(g) {
        let v = f(xv, yv, gv);
        for k in 0..K {
            out[k] += v[k];
        }
    }
    out
}

/// Per-channel mean and biased variance (two passes, for accuracy) of x (N, C, s positions).
pub(super) fn channel_stats(x: &[f32], n: usize, c: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let m = (n * s) as f64;
    let mean: Vec<f64> = channel_sums((x, x, x), (n, c, s), |_, v, _, _| [v]).iter().map(|[v]| v / m).collect();
    let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
    let var = channel_sums((x, x, x), (n, c, s), |ch, v, _, _| {
        let mu = mean32[ch];
        [(v - mu) * (v - mu)]
    });
    (mean, var.iter().map(|[v]| v / m).collect())
}

thread_local! {
    /// One worker thread's plane-sized buffer for the pooled backward's routed gradient, kept between
    /// images and calls (a fresh zeroed one per image and layer was a measurable memset in a width-1/8 step).
    static PLANE: RefCell<KeptBuffer> = const { RefCell::new(KeptBuffer::new()) };
}

/// Runs `f` on this thread's plane buffer cut to `len` values, contents undefined: `f` overwrites what it
/// reads (`route` writes every element of a plane). `f` must not call into rayon, so that no task of the same
/// worker re-enters it. `f` runs inside [`simd::wide`] here: the thread-local access is a call of its own,
/// which does not inherit the target features of the caller's `wide`, and without this the routing and the
/// sums in it were compiled for baseline x86-64 (SSE2).
fn with_plane<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PLANE.with_borrow_mut(|plane| simd::wide(#[inline(always)] || f(plane.resized(len))))
}

/// Windows per task of the pooled forward: enough that a task's work outweighs handing it to a thread.
const POOL_TASK: usize = 2048;

/// The next 2×2 window of a run of whole planes, in the pooled output's order: `window` of the `half`
/// windows of row pair `pair` (of `pairs`) of plane `plane`.
struct WindowCursor {
    half: usize,
    pairs: usize,
    plane: usize,
    pair: usize,
    window: usize,
}

impl WindowCursor {
    /// Moves on by `run` windows, which stay within the current row pair.
    #[inline(always)]
    fn advance(&mut self, run: usize) {
        self.window += run;
        if self.window == self.half {
            self.window = 0;
            self.pair += 1;
            if self.pair == self.pairs {
                self.pair = 0;
                self.plane += 1;
            }
        }
    }
}

/// y = [pool]([ReLU](γ·(x − mean)·invstd + β)) for the batch statistics given. Inputs: x, γ, β.
pub(super) struct FusedBatchNorm {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    relu: bool,
    /// 2×2 max pool after it.
    pool: bool,
    /// With the pool: which element (0..4, row-major) of each window the forward passed on, for the
    /// backward to route the gradient to without recomputing the activations.
    argmax: Mutex<Vec<u8>>,
}

impl FusedBatchNorm {
    /// The op for a batch with these statistics (per channel mean and biased variance).
    pub(super) fn from_stats(mean: &[f64], var: &[f64], relu: bool, pool: bool) -> Self {
        FusedBatchNorm {
            mean: mean.iter().map(|&v| v as f32).collect(),
            invstd: var.iter().map(|&v| (1.0 / (v + CONFIG.eps).sqrt()) as f32).collect(),
            relu,
            pool,
            argmax: Mutex::new(Vec::new()),
        }
    }

    /// Per-channel (scale, shift) of the affine map x ↦ scale·x + shift that batch norm is, given γ and β.
    fn affine(&self, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = gamma.iter().zip(&self.invstd).map(|(g, is)| g * is).collect();
        let shift = (0..scale.len()).map(|ch| beta[ch] - self.mean[ch] * scale[ch]).collect();
        (scale, shift)
    }

    #[inline(always)]
    fn activation(&self, t: f32) -> f32 {
        if self.relu {
            t.max(0.0)
        } else {
            t
        }
    }

    /// One plane's gradient at the unpooled activations, from the pooled one `gy`, into `g`: each window's
    /// to the maximum the forward chose (`argmax`) where ReLU let it through (`y`, the pooled output, is
    /// positive) — what the pool's and ReLU's backward give one after the other. Whole groups of 8 windows
    /// of a row pair through [`simd::spread_windows`] (one at a time, this was ~4 % of a width-1/8 step).
    #[inline(always)]
    fn route(&self, argmax: &[u8], y: &[f32], gy: &[f32], w: usize, g: &mut [f32]) {
        const GROUP: usize = 8;
        let passed = |y: f32, gy: f32| if self.relu && y <= 0.0 { 0.0 } else { gy };
        for (((rows, k), y), gy) in g.chunks_exact_mut(2 * w).zip(argmax.chunks_exact(w / 2)).zip(y.chunks_exact(w / 2)).zip(gy.chunks_exact(w / 2)) {
            let (top, bottom) = rows.split_at_mut(w);
            let grouped = w / 2 / GROUP * GROUP;
            for j0 in (0..grouped).step_by(GROUP) {
                let at = k[j0..j0 + GROUP].try_into().expect("a whole group");
                let v = std::array::from_fn(|j| passed(y[j0 + j], gy[j0 + j]));
                let [t, b] = simd::spread_windows(at, &v);
                top[2 * j0..][..2 * GROUP].copy_from_slice(&t);
                bottom[2 * j0..][..2 * GROUP].copy_from_slice(&b);
            }
            for j in grouped..w / 2 {
                let v = passed(y[j], gy[j]);
                top[2 * j] = if k[j] == 0 { v } else { 0.0 };
                top[2 * j + 1] = if k[j] == 1 { v } else { 0.0 };
                bottom[2 * j] = if k[j] == 2 { v } else { 0.0 };
                bottom[2 * j + 1] = if k[j] == 3 { v } else { 0.0 };
            }
        }
    }

    /// The pooled activations `y` and the argmaxes `k` (which element of the window, 0..4 row-major, its
    /// first maximum) of the next `y.len()` ≤ 16 windows of `x`, whole planes whose first is plane `first`
    /// of the batch, from `at` on. The comparisons of `pool::first_max` are made for the 16 windows at once
    /// (de-interleaved into one array per window position), so that the activations, comparisons and
    /// selections vectorise; window by window it was about 5 % of a width/4 step. The 16 windows may span
    /// row pairs and planes: a call per row pair cost more than its work at the narrow planes of the last
    /// layers (a 4×4 plane has two windows per row pair).
    #[inline(always)]
    fn pool_windows(&self, x: &[f32], first: usize, at: &mut WindowCursor, (scale, shift): (&[f32], &[f32]), y: &mut [MaybeUninit<f32>], k: &mut [MaybeUninit<u8>]) {
        const B: usize = 16;
        let n = y.len();
        // The windows' halves copied whole, a row pair's windows at a time, then de-interleaved by
        // permutations (the compiler made gathers of the element-by-element version, which on AMD's
        // cores were most of this function).
        let (mut top_pairs, mut bottom_pairs) = ([[0f32; 2]; B], [[0f32; 2]; B]);
        let (mut a, mut b) = ([0f32; B], [0f32; B]);
        let mut l = 0;
        while l < n {
            let run = (n - l).min(at.half - at.window);
            let top = (at.plane * at.pairs + at.pair) * 4 * at.half + 2 * at.window;
            copy_row(&mut top_pairs[l..l + run].as_flattened_mut(), &x[top..][..2 * run]);
            copy_row(&mut bottom_pairs[l..l + run].as_flattened_mut(), &x[top + 2 * at.half..][..2 * run]);
            let ch = (first + at.plane) % scale.len();
            a[l..l + run].fill(scale[ch]);
            b[l..l + run].fill(shift[ch]);
            at.advance(run);
            l += run;
        }
        let ([t0, t1], [b0, b1]) = (simd::deinterleave(&top_pairs), simd::deinterleave(&bottom_pairs));
        let v = [t0, t1, b0, b1];
        let mut act = [[0f32; B]; 4];
        for (act_row, row) in act.iter_mut().zip(&v) {
            for ((o, &t), (&a, &b)) in act_row.iter_mut().zip(row).zip(a.iter().zip(&b)) {
                *o = self.activation(a * t + b);
            }
        }
        // The argmaxes in 32-bit lanes, as wide as the values compared (as bytes, the selections were
        // made one by one).
        let (mut best, mut max) = ([0u32; B], act[0]);
        for (e, row) in act.iter().enumerate().skip(1) {
            for j in 0..B {
                let wins = row[j] > max[j];
                best[j] = if wins { e as u32 } else { best[j] };
                max[j] = if wins { row[j] } else { max[j] };
            }
        }
        let best = best.map(|e| e as u8);
        // SAFETY: y and k hold n ≤ B values each, and the arrays do not overlap them.
        unsafe {
            copy_row_to(y.as_mut_ptr().cast(), &max[..n]);
            std::ptr::copy_nonoverlapping(best.as_ptr(), k.as_mut_ptr().cast(), n);
        }
    }

    /// y of x (dims `d`), γ and β.
    pub(super) fn forward(&self, x: &[f32], gamma: &[f32], beta: &[f32], d: &[usize]) -> Result<(Vec<f32>, Shape)> {
        let (_, c, s) = dims(d)?;
        if gamma.len() != c || beta.len() != c {
            candle_core::bail!("batch norm: {c} channels but {} scales and {} shifts", gamma.len(), beta.len());
        }
        let (scale, shift) = self.affine(gamma, beta);
        if self.pool {
            let (h, w) = plane_dims(d)?;
            let mut argmax = Vec::new();
            // SAFETY (both): each plane's h/2 row pairs fill its s/4 pooled values and argmaxes, every one.
            // Tasks of whole planes, at least POOL_TASK windows each.
            let planes = POOL_TASK.div_ceil(s / 4);
            let y = unsafe {
                written(x.len() / 4, |y| {
                    argmax = written(x.len() / 4, |argmax| {
                        y.par_chunks_mut(planes * s / 4).zip(argmax.par_chunks_mut(planes * s / 4)).zip(x.par_chunks(planes * s)).enumerate().for_each(|(task, ((yt, kt), xt))| {
                            simd::wide(#[inline(always)] || {
                                let mut at = WindowCursor { half: w / 2, pairs: h / 2, plane: 0, pair: 0, window: 0 };
                                for (yg, kg) in yt.chunks_mut(16).zip(kt.chunks_mut(16)) {
                                    self.pool_windows(xt, task * planes, &mut at, (&scale, &shift), yg, kg);
                                }
                            })
                        })
                    })
                })
            };
            *self.argmax.lock().unwrap_or_else(PoisonError::into_inner) = argmax;
            return Ok((y, Shape::from((d[0], c, h / 2, w / 2))));
        }
        // SAFETY: each image's chunk is written whole: its c channels' s values each.
        let y = unsafe {
            written(x.len(), |y| {
                y.par_chunks_mut(c * s).zip(x.par_chunks(c * s)).for_each(|(yi, xi)| simd::wide(#[inline(always)] || {
                    if s == 1 {
                        // One value per channel (BatchNorm1d): one pass along the channels, which vectorises.
                        for ((o, &v), (&a, &b)) in yi.iter_mut().zip(xi).zip(scale.iter().zip(&shift)) {
                            o.write(self.activation(a * v + b));
                        }
                        return;
                    }
                    for ch in 0..c {
                        let (a, b) = (scale[ch], shift[ch]);
                        for (o, &v) in yi[ch * s..][..s].iter_mut().zip(&xi[ch * s..][..s]) {
                            o.write(self.activation(a * v + b));
                        }
                    }
                }))
            })
        };
        Ok((y, Shape::from(d)))
    }


    /// (dx, dγ, dβ) from x (dims `d`), the op's output y, its gradient and γ.
    #[allow(clippy::type_complexity)]
    pub(super) fn backward(&self, xs: &[f32], ys: &[f32], gs: &[f32], gamma: &[f32], d: &[usize]) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let (n, c, s) = dims(d)?;
        // With the pool, each plane's gradient is first routed back to the activations (ReLU's mask applied
        // there), into a plane-sized buffer, once for the sums and again for dx: never stored for the batch.
        let argmax = self.argmax.lock().unwrap_or_else(PoisonError::into_inner);
        let routing = if self.pool {
            if argmax.len() * 4 != xs.len() {
                candle_core::bail!("batch norm: the pooled backward ran without its forward");
            }
            Some(plane_dims(d)?.1)
        } else {
            None
        };
        let relu = self.relu && routing.is_none();
        // ReLU passes the gradient where its output is positive.
        let pass = move |y: f32, g: f32| if relu && y <= 0.0 { 0.0 } else { g };
        // Σ g and Σ g·(x − mean) per channel: dβ, and dγ once scaled by invstd.
        let terms = |ch: usize, x: f32, y: f32, g: f32| {
            let g = pass(y, g);
            [g, g * (x - self.mean[ch])]
        };
        let sums = match &routing {
            None => channel_sums((xs, ys, gs), (n, c, s), terms),
            Some(w) => batch_sums(n, c, #[inline(always)] |img, acc| {
                with_plane(s, #[inline(always)] |routed| {
                    for (ch, a) in acc.iter_mut().enumerate() {
                        let (plane, xp) = (img * c + ch, &xs[(img * c + ch) * s..][..s]);
                        let pooled = plane * s / 4..(plane + 1) * s / 4;
                        self.route(&argmax[pooled.clone()], &ys[pooled.clone()], &gs[pooled], *w, routed);
                        accumulate(a, row_sums(xp, routed, routed, |x, y, g| terms(ch, x, y, g)));
                    }
                })
            }),
        };
        let m = (n * s) as f32;
        let dbeta: Vec<f32> = sums.iter().map(|[sg, _]| *sg as f32).collect();
        let dgamma: Vec<f32> = sums.iter().zip(&self.invstd).map(|([_, sgx], &is)| *sgx as f32 * is).collect();
        // dx = γ·invstd·(g − mean(g) − x̂·mean(g·x̂)), the batch statistics' own gradients included, as
        // dx = a·g + b·x + d per channel.
        let coef: Vec<[f32; 3]> = (0..c)
            .map(|ch| {
                let (k, is) = (gamma[ch] * self.invstd[ch], self.invstd[ch]);
                let b = -k * is * dgamma[ch] / m;
                [k, b, -k * dbeta[ch] / m - b * self.mean[ch]]
            })
            .collect();
        // SAFETY: each image's chunk is written whole: its c channels' s values each.
        let dx = unsafe {
            written(xs.len(), |dx| {
                dx.par_chunks_mut(c * s).enumerate().for_each(|(img, dxi)| simd::wide(#[inline(always)] || {
                    if s == 1 {
                        let r = img * c..(img + 1) * c;
                        for ((o, &[a, b, d]), (&x, (&y, &g))) in dxi.iter_mut().zip(&coef).zip(xs[r.clone()].iter().zip(ys[r.clone()].iter().zip(&gs[r]))) {
                            o.write(a * pass(y, g) + b * x + d);
                        }
                        return;
                    }
                    with_plane(if routing.is_some() { s } else { 0 }, #[inline(always)] |routed| {
                        for (ch, &[a, b, d]) in coef.iter().enumerate() {
                            let (plane, r) = (img * c + ch, (img * c + ch) * s..(img * c + ch + 1) * s);
                            let (ys, gs) = match &routing {
                                None => (&ys[r.clone()], &gs[r.clone()]),
                                Some(w) => {
                                    let pooled = plane * s / 4..(plane + 1) * s / 4;
                                    self.route(&argmax[pooled.clone()], &ys[pooled.clone()], &gs[pooled], *w, routed);
                                    (&routed[..], &routed[..])
                                }
                            };
                            for ((o, &x), (&y, &g)) in dxi[ch * s..][..s].iter_mut().zip(&xs[r]).zip(ys.iter().zip(gs)) {
                                o.write(a * pass(y, g) + b * x + d);
                            }
                        }
                    })
                }));
            })
        };
        Ok((dx, dgamma, dbeta))
    }
}

impl CustomOp3 for FusedBatchNorm {
    fn name(&self) -> &'static str {
        "cpu-kernels-batch-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, shape) = self.forward(contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?, l1.dims())?;
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(&self, x: &Tensor, gamma: &Tensor, _beta: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gamma = gamma.to_vec1::<f32>()?;
        let (xg, xl) = x.storage_and_layout();
        let (yg, yl) = res.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let (dx, dgamma, dbeta) = self.backward(cpu_slice(&xg, xl)?, cpu_slice(&yg, yl)?, cpu_slice(&gg, gl)?, &gamma, x.dims())?;
        let (dev, c) = (x.device(), gamma.len());
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(Tensor::from_vec(dgamma, c, dev)?), Some(Tensor::from_vec(dbeta, c, dev)?)))
    }
}
