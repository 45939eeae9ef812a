//! A fully connected layer y = x·wᵀ + b with candle-nn's `Linear` parameters and values, whose CPU f32
//! training step is one node of candle's graph.
//!
//! Why: through candle's ops, the weight's gradient is formed as xᵀ·g and then transposed into place by
//! candle's strided element-wise add, and the bias gradient by its generic strided reduction; for the
//! projector's 4096-wide layers those two cost more than the three matrix products. Here the weight
//! gradient is one GEMM written straight into the weight's layout and the bias gradient one pass over the
//! rows. The products are the `gemm` crate's, called as candle calls them, and the bias gradient sums the
//! rows in candle's order, so that values and gradients are candle's bit for bit (`tests` below). Other
//! devices, dtypes and ranks use candle-nn's layer.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;

use super::storage::{contiguous_f32, cpu_slice};
use super::kernels::Kernels;
use super::matmul::{product, transposed};
use super::simd::SimdLevel;

/// y = x·wᵀ + b for x of shape (batch, in).
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_cpu_kernels::Linear;
/// let vm = candle_nn::VarMap::new();
/// let fc = Linear::new(4, 3, candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu).pp("fc")).unwrap();
/// let y = fc.forward(&Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap()).unwrap();
/// assert_eq!(y.dims(), &[2, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    reference: candle_nn::Linear,
    kernels: Kernels,
}

impl Linear {
    /// The layer candle-nn's `linear` builds: variables `weight` (out, in) and `bias` (out), same init.
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Linear { reference: candle_nn::linear(in_dim, out_dim, vb)?, kernels: Kernels::Native })
    }

    /// Computed by `kernels` (our kernels by default).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Linear { kernels, ..self }
    }

    fn fused(&self, x: &Tensor) -> Option<&Tensor> {
        let (w, b) = (self.reference.weight(), self.reference.bias()?);
        (x.rank() == 2 && self.kernels.native_on(&[x, w, b])).then_some(b)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.fused(x) {
            Some(b) => x.contiguous()?.apply_op3(&self.reference.weight().contiguous()?, &b.contiguous()?, LinearOp),
            None => self.reference.forward(x),
        }
    }
}

/// x·wᵀ for x (batch, in) and w (out, in), reading wᵀ as a strided view of w or, with `transpose`, from a
/// transposed copy of it.
fn forward_product(x: &[f32], w: &[f32], (batch, inp, out): (usize, usize, usize), transpose: bool) -> Vec<f32> {
    if transpose {
        product((batch, out, inp), x, (inp, 1), &transposed(w, out, inp), (out, 1), (out, 1), true)
    } else {
        product((batch, out, inp), x, (inp, 1), w, (1, inp), (out, 1), true)
    }
}

/// Whether the forward product reads wᵀ from a transposed copy of w.
///
/// Why: the `gemm` crate's AVX-512 path copies its left operand — w, once the crate has swapped the
/// operands for the row-major output — into its packed layout slowly when w's rows are long. In a width-1/8
/// training step on the AMD EPYC, the projector's 4096 → 256 product (batch 128) took 5.0 ms from the view
/// and 2.4 ms from a copy, making the copy included (0.8 ms: w is cold by then). At full width's 512 → 4096
/// the copy (8 MB) ate the gain: 4.9–5.7 ms per call from the view, 5.0–6.4 ms with it; timed alone, the
/// copy also won at 1024 → 1024 (3.4 against 2.0 ms) and lost at 64 → 4096 (0.35 against 0.45 ms). The
/// AVX2 path packs w faster: there the copy gained less at 4096 → 256 (3.1 against 2.6 ms, timed alone)
/// and lost at 512 → 4096 and at batch 512, so that path keeps the view.
fn transpose_first(batch: usize, inp: usize, out: usize) -> bool {
    SimdLevel::in_use() == SimdLevel::Avx512f && inp >= 1024 && same_bits_either_way(batch, inp, out)
}

/// Whether both layouts take the `gemm` crate's general blocked path, whose blocking depends on m, n and k
/// alone and whose kernels sum over k in the same order whatever the operands' strides, so that the copy
/// gives candle's values bit for bit. The crate's other paths — for k ≤ 2, for one row or column of output,
/// for outputs of at most 16 × 16 elements — choose their order of summation by the strides.
fn same_bits_either_way(batch: usize, inp: usize, out: usize) -> bool {
    inp > 2 && batch >= 2 && out >= 2 && batch * out > 16 * 16
}

/// Inputs: x (batch, in), w (out, in), b (out).
struct LinearOp;

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "cpu-kernels-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        let (&[batch, inp], &[out, inp2], &[out2]) = (l1.dims(), l2.dims(), l3.dims()) else {
            candle_core::bail!("linear: expected x (batch, in), w (out, in), b (out), got {:?}, {:?}, {:?}", l1.dims(), l2.dims(), l3.dims());
        };
        if inp != inp2 || out != out2 {
            candle_core::bail!("linear: x {:?}, w {:?} and b {:?} do not fit", l1.dims(), l2.dims(), l3.dims());
        }
        // x·wᵀ, then the bias added, as candle's matmul and broadcast_add.
        let mut y = forward_product(x, w, (batch, inp, out), transpose_first(batch, inp, out));
        for row in y.chunks_exact_mut(out.max(1)) {
            row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
        Ok((CpuStorage::F32(y), Shape::from((batch, out))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let ((batch, inp), out) = (x.dims2()?, b.dims1()?);
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let (xv, wv, gv) = (cpu_slice(&xs, xl)?, cpu_slice(&ws, wl)?, cpu_slice(&gs, gl)?);
        // dx = g·w; dw = (xᵀ·g)ᵀ, the same product written in w's layout; db = Σ rows of g, in order.
        let dx = product((batch, inp, out), gv, (out, 1), wv, (inp, 1), (inp, 1), true);
        let dw = product((inp, out, batch), xv, (1, inp), gv, (out, 1), (1, inp), true);
        let mut db = vec![0f32; out];
        for row in gv.chunks_exact(out.max(1)) {
            db.iter_mut().zip(row).for_each(|(d, g)| *d += g);
        }
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dx, (batch, inp), dev)?), Some(Tensor::from_vec(dw, (out, inp), dev)?), Some(Tensor::from_vec(db, out, dev)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::var_builder;
    use candle_nn::VarMap;
    use candle_core::{DType, Device, Var};

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The one-node layer against candle-nn's `Linear` on the same variables: output and the gradients of
    /// x, w and b equal bit for bit, at the projector's and the readout's shapes and at odd ones: on either
    /// side of every bound of `transpose_first`.
    #[test]
    fn the_fused_layer_equals_candle_nn_bit_for_bit() {
        for (batch, inp, out) in [(128, 128, 4096), (128, 4096, 256), (128, 512, 4096), (64, 1024, 10), (16, 1024, 16), (16, 1024, 17), (2, 1100, 129), (1, 1200, 300), (300, 1200, 1), (3, 5, 7), (1, 2, 1)] {
            let vm = VarMap::new();
            let fc = Linear::new(inp, out, var_builder(&vm).pp("fc")).unwrap();
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, inp), &Device::Cpu).unwrap()).unwrap();
            let (y, reference) = (fc.forward(x.as_tensor()).unwrap(), fc.reference.forward(x.as_tensor()).unwrap());
            assert_eq!(bits(&y), bits(&reference), "output, {batch}×{inp}→{out}");
            // A weighted sum, so that each output's gradient differs.
            let r = Tensor::randn(0f32, 1.0, y.shape(), &Device::Cpu).unwrap();
            let ga = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (reference * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let w = fc.reference.weight();
            let b = fc.reference.bias().expect("bias");
            for (name, t) in [("x", x.as_tensor()), ("w", w), ("b", b)] {
                assert_eq!(ga.get(t).map(bits), gb.get(t).map(bits), "gradient of {name}, {batch}×{inp}→{out}");
                assert!(ga.get(t).is_some(), "gradient of {name}");
            }
        }
    }

    /// Both layouts of the forward product give the same bits wherever `same_bits_either_way` says so, on
    /// whichever SIMD tier runs the test (training takes the copy on the AVX-512 tier alone), at its bounds.
    #[test]
    fn both_layouts_of_the_forward_product_agree() {
        for (batch, inp, out) in [(128, 4096, 256), (128, 512, 4096), (17, 512, 16), (16, 3, 17), (2, 600, 129), (129, 33, 2), (64, 1000, 10)] {
            assert!(same_bits_either_way(batch, inp, out), "{batch}×{inp}→{out}");
            let x: Vec<f32> = (0..batch * inp).map(|i| (i as f32 * 0.37).sin()).collect();
            let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.61 + 1.0).cos()).collect();
            let view = forward_product(&x, &w, (batch, inp, out), false);
            let copy = forward_product(&x, &w, (batch, inp, out), true);
            assert!(view.iter().zip(&copy).all(|(v, c)| v.to_bits() == c.to_bits()), "{batch}×{inp}→{out}");
        }
    }

    /// Central differences of Σ r·(x·wᵀ + b), formed in f64 by hand, against the op's gradients.
    #[test]
    fn gradients_match_finite_differences() {
        let (batch, inp, out) = (4, 6, 5);
        let vm = VarMap::new();
        let fc = Linear::new(inp, out, var_builder(&vm)).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, inp), &Device::Cpu).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (batch, out), &Device::Cpu).unwrap();
        let grads = (fc.forward(x.as_tensor()).unwrap() * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        let (w, b) = (fc.reference.weight(), fc.reference.bias().expect("bias"));
        let (vals, rs) = ([flat(x.as_tensor()), flat(w), flat(b)], flat(&r));
        let f = |[x, w, b]: &[Vec<f64>; 3]| -> f64 {
            let mut total = 0.0;
            for i in 0..batch {
                for o in 0..out {
                    let y = b[o] + (0..inp).map(|k| x[i * inp + k] * w[o * inp + k]).sum::<f64>();
                    total += rs[i * out + o] * y;
                }
            }
            total
        };
        for (which, t) in [x.as_tensor(), w, b].into_iter().enumerate() {
            let got = flat(grads.get(t).expect("gradient"));
            for idx in 0..got.len() {
                let (mut up, mut down) = (vals.clone(), vals.clone());
                up[which][idx] += 1e-3;
                down[which][idx] -= 1e-3;
                let fd = (f(&up) - f(&down)) / 2e-3;
                assert!((fd - got[idx]).abs() < 1e-4 * (1.0 + fd.abs()), "argument {which}[{idx}]: finite difference {fd} vs {}", got[idx]);
            }
        }
    }

    #[test]
    fn other_ranks_use_candle_nn() {
        let vm = VarMap::new();
        let fc = Linear::new(4, 2, var_builder(&vm)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 4), &Device::Cpu).unwrap();
        assert_eq!(bits(&fc.forward(&x).unwrap()), bits(&fc.reference.forward(&x).unwrap()));
    }
}
