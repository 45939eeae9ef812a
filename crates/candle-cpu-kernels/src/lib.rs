//! Fast CPU training kernels for candle's convolutional networks.
//!
//! candle 0.11's CPU backward of a convolution goes through `conv_transpose2d`, a direct loop several
//! times slower than its forward; its batch norm is a dozen element-wise passes; its `max_pool2d`
//! gradient is wrong where a window's maximum is tied. This crate's layers are candle [`Module`]s /
//! [`ModuleT`]s that compute forward and backward as custom ops on CPU f32 — im2col and Winograd
//! F(2×2, 3×3) convolutions on the `gemm` crate, batch norm with ReLU and a 2×2 max pool fused into one
//! pass, a whole VGG layer (convolution, batch norm, ReLU, pool) as one graph node, a linear layer, and
//! the in-place updates of an SGD/LARS optimiser and an EMA — with results that do not depend on the
//! number of threads. On every other device and dtype, or with [`Kernels::Candle`], the same layers are
//! candle's own ops (a convolution unfolded into one matrix product, a max pool whose gradient reaches
//! the first maximum alone), so one network definition serves CPU, CUDA and Metal.
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
//! use candle_cpu_kernels::{BatchNorm, Conv2d, Kernels, VggLayer};
//!
//! let vm = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
//! let cfg = Conv2dConfig { padding: 1, ..Default::default() };
//! let conv = Conv2d::new(3, 16, 3, cfg, false, vb.pp("conv")).unwrap().with_kernels(Kernels::Native);
//! let weight = conv.weight().clone();
//! let layer = VggLayer::new(conv, BatchNorm::new(16, true, vb.pp("bn")).unwrap(), true);
//! let x = Tensor::randn(0f32, 1.0, (8, 3, 32, 32), &Device::Cpu).unwrap();
//! let y = layer.forward_t(&x, true).unwrap();
//! assert_eq!(y.dims(), &[8, 16, 16, 16]);
//! let grads = y.sum_all().unwrap().backward().unwrap(); // our backward kernels
//! assert!(grads.get(&weight).is_some());
//! ```
//!
//! [`Module`]: candle_core::Module
//! [`ModuleT`]: candle_core::ModuleT

pub mod batchnorm;
pub mod conv;
pub mod inplace;
pub mod kernels;
pub mod layer;
pub mod linear;
pub mod pool;
pub mod unfold;

mod geom;
mod matmul;
mod simd;
mod storage;
#[cfg(test)]
mod testing;
mod winograd;

pub use batchnorm::BatchNorm;
pub use conv::Conv2d;
pub use kernels::Kernels;
pub use layer::VggLayer;
pub use linear::Linear;
pub use pool::MaxPool2x2;
pub use simd::SimdLevel;
