//! ResNet-18 (torchvision's, BasicBlock × [2, 2, 2, 2]) as the authors' code uses it: for CIFAR the stem
//! is one 3×3 convolution, stride 1, **padding 2**, and no max pool (solo-learn's CIFAR variant); for
//! STL-10 (96 px) the ImageNet stem, a 7×7/2 convolution and a 3×3/2 max pool. Global average pooling to
//! 512·width features. `width` scales every layer's channels, as for [`super::backbone::Vgg11`].

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use candle_cpu_kernels::BatchNorm;
use candle_cpu_kernels::Conv2d;
use candle_cpu_kernels::Kernels;

/// Convolution then batch norm, with ReLU after it when `relu`.
#[allow(clippy::too_many_arguments)]
fn conv_bn(cin: usize, cout: usize, k: usize, stride: usize, padding: usize, relu: bool, kernels: Kernels, vb: &VarBuilder, name: &str) -> Result<(Conv2d, BatchNorm)> {
    let cfg = Conv2dConfig { padding, stride, ..Default::default() };
    // Only the stem sees the image, which needs no gradient.
    let conv = Conv2d::new(cin, cout, k, cfg, name != "stem", vb.pp(format!("{name}.conv")))?.with_kernels(kernels);
    Ok((conv, BatchNorm::new(cout, relu, vb.pp(format!("{name}.bn")))?.with_kernels(kernels)))
}

fn apply(cb: &(Conv2d, BatchNorm), x: &Tensor, train: bool) -> Result<Tensor> {
    cb.1.forward_t(&cb.0.forward(x)?, train)
}

/// conv3×3 → BN → ReLU → conv3×3 → BN, plus the input (through a 1×1 conv + BN where the shape changes).
#[derive(Debug, Clone)]
struct BasicBlock {
    a: (Conv2d, BatchNorm),
    b: (Conv2d, BatchNorm),
    shortcut: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, kernels: Kernels, vb: &VarBuilder) -> Result<Self> {
        let shortcut = if stride != 1 || cin != cout { Some(conv_bn(cin, cout, 1, stride, 0, false, kernels, vb, "downsample")?) } else { None };
        Ok(BasicBlock { a: conv_bn(cin, cout, 3, stride, 1, true, kernels, vb, "a")?, b: conv_bn(cout, cout, 3, 1, 1, false, kernels, vb, "b")?, shortcut })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = apply(&self.b, &apply(&self.a, x, train)?, train)?;
        let skip = match &self.shortcut {
            Some(s) => apply(s, x, train)?,
            None => x.clone(),
        };
        (y + skip)?.relu()
    }
}

/// 3×3 max pool, stride 2, padding 1, on even sizes, written with reshapes and `maximum` so that its
/// gradient is exact (candle 0.11.1's `max_pool2d` backward is not; see [`super::pool`]).
fn max_pool_3x3_s2(x: &Tensor) -> Result<Tensor> {
    let along = |x: &Tensor, dim: usize| -> Result<Tensor> {
        let len = x.dim(dim)?;
        if len % 2 != 0 {
            candle_core::bail!("3×3/2 max pool needs even sizes, got {len} on dim {dim}");
        }
        // Pad with the lowest float, never with copies of the edge: a copy would tie with the edge value
        // and `max`'s backward gives every tied element the whole gradient.
        let mut pad_shape = x.dims().to_vec();
        pad_shape[dim] = 1;
        let pad = Tensor::full(f32::MIN, pad_shape, x.device())?.to_dtype(x.dtype())?;
        let xp = Tensor::cat(&[&pad, x, &pad], dim)?;
        let pairs = |t: Tensor| {
            let mut shape = t.dims().to_vec();
            shape[dim] = len / 2;
            shape.insert(dim + 1, 2);
            t.reshape(shape)
        };
        // Window i covers padded positions 2i, 2i+1, 2i+2.
        let left = pairs(xp.narrow(dim, 0, len)?)?.max(dim + 1)?;
        let right = pairs(xp.narrow(dim, 2, len)?)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)?;
        left.maximum(&right)
    };
    along(&along(x, 2)?, 3)
}

/// The ResNet-18 feature extractor.
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use eigenssl::ssl::{init::SeededVarMap, Kernels, resnet::ResNet18};
/// let vm = SeededVarMap::new(0);
/// let net = ResNet18::new(0.125, true, Kernels::Native, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
/// let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
/// assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, net.out_dim()]);
/// ```
#[derive(Debug, Clone)]
pub struct ResNet18 {
    stem: (Conv2d, BatchNorm),
    /// ImageNet stem (7×7/2 conv + 3×3/2 max pool) rather than the CIFAR one.
    imagenet_stem: bool,
    blocks: Vec<BasicBlock>,
    out_dim: usize,
}

impl ResNet18 {
    /// `cifar_stem`: the 3×3/1 stem without max pool (32 px images); otherwise the ImageNet stem.
    pub fn new(width: f64, cifar_stem: bool, kernels: Kernels, vb: VarBuilder) -> Result<Self> {
        if !(width > 0.0) {
            candle_core::bail!("ResNet-18 width must be > 0, got {width}");
        }
        let ch = |c: usize| ((c as f64 * width).round() as usize).max(1);
        let stem = if cifar_stem { conv_bn(3, ch(64), 3, 1, 2, true, kernels, &vb, "stem")? } else { conv_bn(3, ch(64), 7, 2, 3, true, kernels, &vb, "stem")? };
        let mut blocks = Vec::new();
        let mut cin = ch(64);
        for (stage, &c) in [64, 128, 256, 512].iter().enumerate() {
            for b in 0..2 {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(cin, ch(c), stride, kernels, &vb.pp(format!("layer{}.{b}", stage + 1)))?);
                cin = ch(c);
            }
        }
        Ok(ResNet18 { stem, imagenet_stem: !cifar_stem, blocks, out_dim: cin })
    }

    /// Feature dimension (512 · width).
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

impl ModuleT for ResNet18 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = apply(&self.stem, x, train)?;
        if self.imagenet_stem {
            x = max_pool_3x3_s2(&x)?;
        }
        for b in &self.blocks {
            x = b.forward_t(&x, train)?;
        }
        x.mean(3)?.mean(2)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    #[test]
    fn pool_3x3_stride_2_matches_hand_values_and_routes_the_gradient_to_the_maximum() {
        // Windows cover rows/columns (pad, 0, 1) and (1, 2, 3).
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let x = Var::from_tensor(&Tensor::from_vec(v, (1, 1, 4, 4), &Device::Cpu).unwrap()).unwrap();
        let y = super::max_pool_3x3_s2(x.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![5., 7., 13., 15.]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let mut want = vec![0f32; 16];
        for i in [5, 7, 13, 15] {
            want[i] = 1.0;
        }
        assert_eq!(g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
    }
}
