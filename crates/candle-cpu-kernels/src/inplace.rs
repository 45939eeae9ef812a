//! The element-wise updates of an SGD/LARS optimiser and of an EMA target network, in place, on CPU f32:
//! one pass per buffer instead of candle's expression, which allocates and fills a fresh tensor for every
//! `*`, `+` and `-` (about a dozen passes over a network's parameters per step, most on one thread).
//!
//! Each kernel repeats the f32 operations of the candle expression it replaces in the same order —
//! including candle's affine `x · a + 0` for a tensor times a scalar — so results are bit-identical to
//! the expression (the `tests` below compare them). Where [`applies`] is false, keep the expression.
//!
//! ```
//! use candle_core::{Device, Var};
//! use candle_cpu_kernels::{inplace::{self, Average}, Kernels};
//! let target = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
//! let online = Var::new(&[3f32, 4.0], &Device::Cpu).unwrap();
//! assert!(inplace::applies(Kernels::Native, &[target.as_tensor(), online.as_tensor()]));
//! target.inplace_op2(online.as_tensor(), &Average::new(0.5)).unwrap(); // t ← t·τ + o·(1 − τ)
//! assert_eq!(target.to_vec1::<f32>().unwrap(), vec![2.0, 3.0]);
//! ```

use candle_core::{CpuStorage, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::kernels::Kernels;
use crate::simd;

/// Elements per parallel task: large enough that thread hand-offs stay negligible.
pub const CHUNK: usize = 1 << 15;

/// Whether the in-place kernels run on these tensors: asked for, CPU, f32, contiguous, same length.
pub fn applies(kernels: Kernels, tensors: &[&Tensor]) -> bool {
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
/// operations of an SGD/LARS step's expression `buf * μ + ((g + w * λ) * r)`.
#[derive(Debug, Clone, Copy)]
pub struct MomentumBuffer {
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
pub struct Descend {
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
pub struct Average {
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
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
    }

    /// Deterministic values of both signs and many magnitudes, over more than one parallel chunk.
    fn values(len: usize, phase: f32) -> Var {
        Var::from_vec((0..len).map(|j| ((j as f32 + phase) * 0.37).sin() * 1.7).collect(), len, &Device::Cpu).unwrap()
    }

    #[test]
    fn each_update_gives_the_bits_of_candles_expression() {
        let len = 3 * CHUNK + 7;
        let (g, w) = (values(len, 1.0), values(len, 2.0));
        for decay in [None, Some(1e-4f64)] {
            for ratio in [None, Some(0.3f64)] {
                for momentum in [None, Some(0.9f64)] {
                    let buf = values(len, 3.0);
                    let mut d = g.as_tensor().clone();
                    if let Some(l) = decay {
                        d = (d + (w.as_tensor() * l).unwrap()).unwrap();
                    }
                    if let Some(r) = ratio {
                        d = (d * r).unwrap();
                    }
                    let expected = match momentum {
                        Some(m) => ((buf.as_tensor() * m).unwrap() + d).unwrap(),
                        None => d,
                    };
                    let op = MomentumBuffer { decay: decay.map(|v| v as f32), ratio: ratio.map(|v| v as f32), momentum: momentum.map(|v| v as f32) };
                    assert!(applies(Kernels::Native, &[&buf, &g, &w]));
                    buf.inplace_op3(&g, &w, &op).unwrap();
                    assert!(bits(&buf) == bits(&expected), "momentum buffer: decay {decay:?} ratio {ratio:?} momentum {momentum:?}");
                }
            }
        }
        let param = values(len, 4.0);
        let expected = (param.as_tensor() - (g.as_tensor() * 0.3).unwrap()).unwrap();
        param.inplace_op2(&g, &Descend { lr: 0.3 }).unwrap();
        assert!(bits(&param) == bits(&expected), "descend");
        let (target, tau) = (values(len, 5.0), 0.996);
        let expected = ((target.as_tensor() * tau).unwrap() + (w.as_tensor() * (1.0 - tau)).unwrap()).unwrap();
        target.inplace_op2(&w, &Average::new(tau)).unwrap();
        assert!(bits(&target) == bits(&expected), "average");
    }

    #[test]
    fn the_expression_stays_where_the_kernels_do_not_apply() {
        let (a, b) = (values(8, 0.0), values(8, 1.0));
        assert!(!applies(Kernels::Candle, &[&a, &b]), "asked for candle's ops");
        assert!(!applies(Kernels::Native, &[&a, &values(9, 1.0)]), "lengths differ");
        assert!(!applies(Kernels::Native, &[&a.to_dtype(candle_core::DType::F64).unwrap()]), "f64");
        assert!(!applies(Kernels::Native, &[&a.as_tensor().reshape((2, 4)).unwrap().t().unwrap()]), "not contiguous");
    }
}
