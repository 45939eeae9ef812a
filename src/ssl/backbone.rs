//! VGG11 with batch norm (configuration A of Simonyan & Zisserman), CIFAR variant: 3×3 convolutions with
//! padding 1, batch norm, ReLU, five 2×2 max pools, then global average pooling to 512·width features.
//! `width` scales every layer's channels for small (CPU) profiles.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use candle_cpu_kernels::BatchNorm;
use candle_cpu_kernels::Conv2d;
use candle_cpu_kernels::Kernels;
use candle_cpu_kernels::VggLayer;

use super::config::Backbone;
use super::resnet::ResNet18;

/// A backbone chosen by config: VGG11 or ResNet-18.
#[derive(Debug, Clone)]
pub enum Features {
    Vgg11(Vgg11),
    Resnet18(ResNet18),
}

impl Features {
    /// `side` is the input image size (ResNet-18 takes the CIFAR stem at 32 px).
    pub fn new(kind: Backbone, width: f64, side: usize, kernels: Kernels, vb: VarBuilder) -> Result<Self> {
        Ok(match kind {
            Backbone::Vgg11 => Features::Vgg11(Vgg11::new(width, kernels, vb)?),
            Backbone::Resnet18 => Features::Resnet18(ResNet18::new(width, side <= 32, kernels, vb)?),
        })
    }

    pub fn out_dim(&self) -> usize {
        match self {
            Features::Vgg11(n) => n.out_dim(),
            Features::Resnet18(n) => n.out_dim(),
        }
    }
}

impl ModuleT for Features {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Features::Vgg11(n) => n.forward_t(x, train),
            Features::Resnet18(n) => n.forward_t(x, train),
        }
    }
}

/// Channels of VGG11 (config A); 0 marks a 2×2 max pool.
const VGG11: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

/// The VGG11-BN feature extractor.
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use eigenssl::ssl::{backbone::Vgg11, init::SeededVarMap, Kernels};
/// let vm = SeededVarMap::new(0);
/// let net = Vgg11::new(0.125, Kernels::Native, vm.var_builder(DType::F32, &Device::Cpu)).unwrap();
/// let x = Tensor::zeros((2, 3, 32, 32), DType::F32, &Device::Cpu).unwrap();
/// assert_eq!(net.forward_t(&x, true).unwrap().dims(), &[2, net.out_dim()]);
/// ```
#[derive(Debug, Clone)]
pub struct Vgg11 {
    layers: Vec<VggLayer>,
    out_dim: usize,
}

impl Vgg11 {
    pub fn new(width: f64, kernels: Kernels, vb: VarBuilder) -> Result<Self> {
        if !(width > 0.0) {
            candle_core::bail!("VGG11 width must be > 0, got {width}");
        }
        let mut layers = Vec::new();
        let mut in_ch = 3;
        let conv_cfg = Conv2dConfig { padding: 1, ..Default::default() };
        for (i, &c) in VGG11.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let out = ((c as f64 * width).round() as usize).max(1);
            // The image needs no gradient: the first layer skips its input gradient.
            let conv = Conv2d::new(in_ch, out, 3, conv_cfg, i > 0, vb.pp(format!("features.{i}.conv")))?.with_kernels(kernels);
            let bn = BatchNorm::new(out, true, vb.pp(format!("features.{i}.bn")))?.with_kernels(kernels);
            let pool = VGG11.get(i + 1) == Some(&0);
            layers.push(VggLayer::new(conv, bn, pool));
            in_ch = out;
        }
        Ok(Vgg11 { layers, out_dim: in_ch })
    }

    /// Feature dimension (512 · width).
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

impl ModuleT for Vgg11 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            x = layer.forward_t(&x, train)?;
        }
        // Global average pooling: 1×1 at 32 px, 3×3 at 96 px.
        x.mean(3)?.mean(2)
    }
}
