//! 2×2 max pooling with a correct gradient.
//!
//! candle 0.11.1's `max_pool2d` backward on CPU is wrong: a window's unique maximum receives 1/4 of its
//! gradient, and every element of a tied window receives all of it. This pool reshapes the input into
//! 2×2 blocks and takes the max over them, so the gradient goes through `max`'s backward: the whole
//! gradient to the maximum (to each tied maximum, for exact ties — which random float inputs never have).

use candle_core::{Module, Result, Tensor};

/// Max over non-overlapping 2×2 windows of an (N, C, H, W) tensor; H and W must be even.
///
/// ```
/// use candle_core::{Device, Module, Tensor};
/// use eigenssl::ssl::pool::MaxPool2x2;
/// let x = Tensor::new(&[[[[1f32, 2., 5., 0.], [3., 4., 1., 1.]]]], &Device::Cpu).unwrap();
/// let y = MaxPool2x2.forward(&x).unwrap();
/// assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![4., 5.]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxPool2x2;

impl Module for MaxPool2x2 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if h % 2 != 0 || w % 2 != 0 {
            candle_core::bail!("MaxPool2x2 needs even height and width, got {h}×{w}");
        }
        x.reshape((n, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)
    }
}
