//! One VGG layer: a bias-free convolution, batch norm, ReLU and, where the configuration has one, a 2×2
//! max pool. In training on CPU f32 the four are one node of candle's graph.
//!
//! Why: as separate ops, the gradient of every convolution's output went through candle's bookkeeping —
//! a zeroed tensor the size of the activations, then an addition into it — before the batch norm's
//! backward read it. As one node, the convolution's output and its gradient stay inside the op: one
//! memset and one pass over the largest activations fewer per layer and view. The op calls the same
//! kernels in the same order as [`Conv2d`] then [`BatchNorm`], so its values are theirs bit for bit
//! (`tests` below compare them); in eval mode and on other devices the layer is those ops one after another.

use candle_core::{CpuStorage, CustomOp3, Layout, Module, ModuleT, Result, Shape, Tensor};
use std::sync::{Arc, Mutex, PoisonError};

use super::batchnorm::{channel_stats, BatchNorm, FusedBatchNorm};
use super::conv::{self, Conv2d};
use super::geom::Geom;
use super::storage::{contiguous_f32, cpu_slice};
use super::winograd::TransformedInput;

/// Convolution, then batch norm with ReLU, then (with `pool`) a 2×2 max pool.
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use candle_cpu_kernels::{BatchNorm, Conv2d, VggLayer};
/// let vm = candle_nn::VarMap::new();
/// let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
/// let cfg = candle_nn::Conv2dConfig { padding: 1, ..Default::default() };
/// let conv = Conv2d::new(3, 8, 3, cfg, false, vb.pp("conv")).unwrap();
/// let layer = VggLayer::new(conv, BatchNorm::new(8, true, vb.pp("bn")).unwrap(), true);
/// let x = Tensor::randn(0f32, 1.0, (2, 3, 16, 16), &Device::Cpu).unwrap();
/// assert_eq!(layer.forward_t(&x, true).unwrap().dims(), &[2, 8, 8, 8]);
/// ```
#[derive(Debug, Clone)]
pub struct VggLayer {
    conv: Conv2d,
    bn: BatchNorm,
    pool: bool,
}

impl VggLayer {
    pub fn new(conv: Conv2d, bn: BatchNorm, pool: bool) -> Self {
        VggLayer { conv, bn, pool }
    }

    fn fused(&self, x: &Tensor, train: bool) -> bool {
        let (gamma, _) = self.bn.scale_and_shift();
        train && self.conv.kernels().native_on(&[x, self.conv.weight(), gamma])
    }
}

impl ModuleT for VggLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !self.fused(x, train) || x.rank() != 4 {
            let y = self.conv.forward(x)?;
            return if self.pool { self.bn.forward_pooled_t(&y, train) } else { self.bn.forward_t(&y, train) };
        }
        let (gamma, beta) = self.bn.scale_and_shift();
        let saved = Arc::new(Mutex::new(None));
        let op = LayerOp { stride: self.conv.stride(), pad: self.conv.padding(), input_grad: self.conv.input_grad(), relu: self.bn.relu(), pool: self.pool, saved: saved.clone() };
        // γ and β enter as one input (a custom op takes at most three); `cat`'s backward splits their gradient.
        let out = x.contiguous()?.apply_op3(&self.conv.weight().contiguous()?, &Tensor::cat(&[gamma, beta], 0)?, op)?;
        let saved = saved.lock().unwrap_or_else(PoisonError::into_inner);
        let saved = saved.as_ref().ok_or_else(|| candle_core::Error::Msg("VGG layer: the forward kept no statistics".into()))?;
        // The statistics are over N·H·W values per channel.
        self.bn.update_running(&saved.mean, &saved.var, saved.conv_out.len() / saved.mean.len())?;
        Ok(out)
    }
}

/// What the forward keeps for the backward: the convolution's output, what the convolution can reuse,
/// and the batch statistics.
struct Saved {
    conv_out: Vec<f32>,
    tiles: Option<TransformedInput>,
    mean: Vec<f64>,
    var: Vec<f64>,
    bn: FusedBatchNorm,
}

/// conv → batch norm (batch statistics) → ReLU → [pool]. Inputs: x (N, C, H, W), w (K, C, kh, kw), γ‖β (2K).
struct LayerOp {
    stride: usize,
    pad: usize,
    input_grad: bool,
    relu: bool,
    pool: bool,
    saved: Arc<Mutex<Option<Saved>>>,
}

impl CustomOp3 for LayerOp {
    fn name(&self) -> &'static str {
        "cpu-kernels-vgg-layer"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(l1.dims(), l2.dims(), self.stride, self.pad)?;
        let conv_shape = g.output_shape();
        let (n, k, oh, ow) = conv_shape.dims4()?;
        let (x, wt, gb) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?, contiguous_f32(s3, l3)?);
        if gb.len() != 2 * k {
            candle_core::bail!("VGG layer: {k} output channels but {} scales and shifts", gb.len());
        }
        let (conv_out, tiles) = conv::forward(x, wt, &g, true);
        let s = oh * ow;
        let (mean, var) = channel_stats(&conv_out, n, k, s);
        let bn = FusedBatchNorm::from_stats(&mean, &var, self.relu, self.pool);
        let (y, shape) = bn.forward(&conv_out, &gb[..k], &gb[k..], conv_shape.dims())?;
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(Saved { conv_out, tiles, mean, var, bn });
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, gb: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        let saved = saved.as_ref().ok_or_else(|| candle_core::Error::Msg("VGG layer: backward before forward".into()))?;
        let g = Geom::new(x.dims(), w.dims(), self.stride, self.pad)?;
        let gb = gb.to_vec1::<f32>()?;
        let gamma = &gb[..gb.len() / 2];
        let grad = grad.contiguous()?;
        let (yg, yl) = res.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let (dconv, dgamma, dbeta) = saved.bn.backward(&saved.conv_out, cpu_slice(&yg, yl)?, cpu_slice(&gg, gl)?, gamma, g.output_shape().dims())?;
        let (xg, xl) = x.storage_and_layout();
        let (wg, wl) = w.storage_and_layout();
        let dev = x.device();
        let (dx, dw) = conv::backward(cpu_slice(&xg, xl)?, &dconv, cpu_slice(&wg, wl)?, &g, self.input_grad, saved.tiles.as_ref());
        let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), dev)).transpose()?;
        let dw = Tensor::from_vec(dw, w.shape(), dev)?;
        let dgb = Tensor::from_vec([dgamma, dbeta].concat(), gb.len(), dev)?;
        Ok((dx, Some(dw), Some(dgb)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{copy_vars, named_vars, var_builder};
    use candle_core::{DType, Device, Var};
    use candle_nn::{Conv2dConfig, VarMap};

    fn layer(vm: &VarMap, cin: usize, cout: usize, input_grad: bool, pool: bool) -> VggLayer {
        let vb = var_builder(vm);
        let cfg = Conv2dConfig { padding: 1, ..Default::default() };
        let conv = Conv2d::new(cin, cout, 3, cfg, input_grad, vb.pp("conv")).unwrap();
        VggLayer::new(conv, BatchNorm::new(cout, true, vb.pp("bn")).unwrap(), pool)
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The one-node layer against conv then batch norm (then pool) as separate ops: outputs, running
    /// statistics and every gradient equal bit for bit, with and without the pool and the input gradient.
    #[test]
    fn the_fused_layer_equals_the_separate_ops_bit_for_bit() {
        // 5 input channels go through im2col, 9 through Winograd.
        for (pool, input_grad, side, cin) in [(true, true, 8, 5), (false, true, 6, 5), (true, false, 4, 5), (false, false, 2, 5), (true, true, 8, 9), (false, true, 4, 9), (true, false, 2, 9)] {
            let (fused_vars, separate_vars) = (VarMap::new(), VarMap::new());
            let (fused, separate) = (layer(&fused_vars, cin, 7, input_grad, pool), layer(&separate_vars, cin, 7, input_grad, pool));
            copy_vars(&fused_vars, &separate_vars);
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, cin, side, side), &Device::Cpu).unwrap()).unwrap();
            let out = fused.forward_t(x.as_tensor(), true).unwrap();
            let conv_out = separate.conv.forward(x.as_tensor()).unwrap();
            let reference = if pool { separate.bn.forward_pooled_t(&conv_out, true) } else { separate.bn.forward_t(&conv_out, true) }.unwrap();
            assert_eq!(bits(&out), bits(&reference), "forward, pool {pool}");
            // A weighted sum, so that each output's gradient differs.
            let r = Tensor::randn(0f32, 1.0, out.shape(), &Device::Cpu).unwrap();
            let (ga, gb) = ((out * &r).unwrap().sum_all().unwrap().backward().unwrap(), (reference * &r).unwrap().sum_all().unwrap().backward().unwrap());
            assert_eq!(ga.get(x.as_tensor()).map(bits), gb.get(x.as_tensor()).map(bits), "input gradient, pool {pool}");
            assert_eq!(ga.get(x.as_tensor()).is_some(), input_grad);
            let (vf, vs) = (named_vars(&fused_vars), named_vars(&separate_vars));
            assert_eq!(vf.len(), 5, "conv weight, scale, shift, running mean and variance");
            for ((name, a), (_, b)) in vf.iter().zip(&vs) {
                assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{name} after the step's statistics");
                if !name.contains("running") {
                    let (da, db) = (ga.get(a.as_tensor()).expect("gradient"), gb.get(b.as_tensor()).expect("gradient"));
                    assert_eq!(bits(da), bits(db), "gradient of {name}, pool {pool}");
                }
            }
        }
    }

    /// The layer's kernels give the same bits with the widest instructions the CPU has (AVX-512 or AVX2,
    /// `simd::wide`) and on baseline x86-64: the output and every gradient, through im2col and Winograd,
    /// with the pool's blocked routing.
    #[test]
    fn the_kernels_give_the_same_bits_with_and_without_wide_instructions() {
        let run = |l: &VggLayer, vm: &VarMap, cin: usize, side: usize| {
            let len = 4 * cin * side * side;
            let values: Vec<f32> = (0..len).map(|i| (i as f32 * 0.7).sin() + (i as f32 * 0.013).cos()).collect();
            let x = Var::from_tensor(&Tensor::from_vec(values, (4, cin, side, side), &Device::Cpu).unwrap()).unwrap();
            let out = l.forward_t(x.as_tensor(), true).unwrap();
            let r = Tensor::ones(out.shape(), DType::F32, &Device::Cpu).unwrap().cumsum(3).unwrap();
            let grads = (&out * &r).unwrap().sum_all().unwrap().backward().unwrap();
            let mut all = vec![bits(&out), bits(grads.get(x.as_tensor()).unwrap())];
            all.extend(named_vars(vm).iter().filter_map(|(_, v)| grads.get(v.as_tensor()).map(bits)));
            all
        };
        for (cin, side) in [(3, 32), (12, 16), (12, 4)] {
            // One layer for both runs: in training its output and gradients do not depend on the running statistics.
            let vm = VarMap::new();
            let l = layer(&vm, cin, 9, true, true);
            assert_eq!(run(&l, &vm, cin, side), crate::simd::tests::on_baseline(|| run(&l, &vm, cin, side)), "{cin} channels, {side}×{side}");
        }
    }

    #[test]
    fn eval_mode_is_the_separate_ops_with_running_statistics() {
        let l = layer(&VarMap::new(), 2, 3, true, true);
        let x = Tensor::randn(0f32, 1.0, (2, 2, 4, 4), &Device::Cpu).unwrap();
        let reference = l.bn.forward_pooled_t(&l.conv.forward(&x).unwrap(), false).unwrap();
        assert_eq!(bits(&l.forward_t(&x, false).unwrap()), bits(&reference));
    }
}
