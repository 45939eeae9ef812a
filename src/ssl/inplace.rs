//! The optimiser's and the EMA's element-wise updates, in place, on CPU f32: one pass per buffer instead
//! of candle's expression, which allocates and fills a fresh tensor for every `*`, `+` and `-` (about a
//! dozen passes over the whole parameter set per step, most of them on one thread).
//!
//! Each kernel repeats the f32 operations of the candle expression it replaces in the same order —
//! including candle's affine `x · a + 0` for a tensor times a scalar — so results are bit-identical to
//! the expression (tested in [`super::optim`]'s tests). Other devices and dtypes keep the expression.

use candle_core::{CpuStorage, Layout, Result, Tensor};
use rayon::prelude::*;
use super::kernels::Kernels;
use super::simd;

/// Elements per parallel task: large enough that thread hand-offs stay negligible.
pub(super) const CHUNK: usize = 1 << 15;

/// Whether the in-place kernels run on these tensors: asked for, CPU, f32, contiguous, same length.
pub(crate) fn applies(kernels: Kernels, tensors: &[&Tensor]) -> bool {
    if tests::expressions_only() {
        return false;
    }
    let len = tensors.first().map(|t| t.elem_count());
    kernels.native_on(tensors) && tensors.iter().all(|t| t.is_contiguous() && Some(t.elem_count()) == len)
}

/// candle's `tensor * scalar` on f32: `x · a + 0` (the `+ 0` turns −0 into +0).
#[inline(always)]
fn affine(x: f32, a: f32) -> f32 {
    x * a + 0.0
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("in-place update: operand not contiguous".into()))?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("in-place update: operand not contiguous".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        _ => candle_core::bail!("in-place update: expected f32 storage"),
    }
}

/// The momentum buffer's update: `buf ← buf · μ + d` (or `buf ← d` without momentum), where the
/// direction is `d = ((g + w · λ) · r)` with the decay λ and the trust ratio r each optional — the
/// operations of [`super::optim::Optimizer::step`]'s expression.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MomentumBuffer {
    pub decay: Option<f32>,
    pub ratio: Option<f32>,
    pub momentum: Option<f32>,
}

impl candle_core::InplaceOp3 for MomentumBuffer {
    fn name(&self) -> &'static str {
        "momentum-buffer"
    }

    /// `s1` the buffer, `s2` the gradient, `s3` the parameter.
    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<()> {
        let (buf, g, w) = (slice_mut(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let Self { decay, ratio, momentum } = *self;
        buf.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(w.par_chunks(CHUNK)).for_each(|((buf, g), w)| simd::wide(#[inline(always)] || {
            for ((b, &g), &w) in buf.iter_mut().zip(g).zip(w) {
                let mut d = g;
                if let Some(decay) = decay {
                    d = d + affine(w, decay);
                }
                if let Some(ratio) = ratio {
                    d = affine(d, ratio);
                }
                *b = match momentum {
                    Some(m) => affine(*b, m) + d,
                    None => d,
                };
            }
        }));
        Ok(())
    }
}

/// The parameter's update from its momentum buffer: `w ← w − buf · lr`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Descend {
    pub lr: f32,
}

impl candle_core::InplaceOp2 for Descend {
    fn name(&self) -> &'static str {
        "descend"
    }

    /// `s1` the parameter, `s2` its momentum buffer.
    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (w, buf) = (slice_mut(s1, l1)?, slice(s2, l2)?);
        let lr = self.lr;
        w.par_chunks_mut(CHUNK).zip(buf.par_chunks(CHUNK)).for_each(|(w, buf)| simd::wide(#[inline(always)] || {
            for (w, &b) in w.iter_mut().zip(buf) {
                *w = *w - affine(b, lr);
            }
        }));
        Ok(())
    }
}

/// The EMA target's update: `t ← t · τ + o · (1 − τ)`, with `1 − τ` formed in f64 as the expression does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Average {
    pub keep: f32,
    pub take: f32,
}

impl Average {
    pub fn new(tau: f64) -> Self {
        Average { keep: tau as f32, take: (1.0 - tau) as f32 }
    }
}

impl candle_core::InplaceOp2 for Average {
    fn name(&self) -> &'static str {
        "ema-average"
    }

    /// `s1` the target parameter, `s2` the online one.
    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (t, o) = (slice_mut(s1, l1)?, slice(s2, l2)?);
        let Self { keep, take } = *self;
        t.par_chunks_mut(CHUNK).zip(o.par_chunks(CHUNK)).for_each(|(t, o)| simd::wide(#[inline(always)] || {
            for (t, &o) in t.iter_mut().zip(o) {
                *t = affine(*t, keep) + affine(o, take);
            }
        }));
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;

    thread_local! {
        static EXPRESSIONS_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    pub(crate) fn expressions_only() -> bool {
        EXPRESSIONS_ONLY.with(Cell::get)
    }

    /// `f()` with the in-place kernels switched off on this thread (the expressions run instead).
    pub(crate) fn on_expressions<R>(f: impl FnOnce() -> R) -> R {
        EXPRESSIONS_ONLY.with(|e| e.set(true));
        let r = f();
        EXPRESSIONS_ONLY.with(|e| e.set(false));
        r
    }
}

#[cfg(not(test))]
mod tests {
    pub(super) fn expressions_only() -> bool {
        false
    }
}
