//! Deep self-supervised learning on candle (paper Sec. 3, Table 1): the building blocks of the VGG11
//! Siamese network with a DirectPred predictor. Each concept is one file; each is tested against hand
//! calculation or candle's autograd in `tests/ssl.rs`.

pub mod backbone;
pub mod batchnorm;
pub mod checkpoint;
pub mod collapse;
pub mod config;
pub mod conv;
pub mod directpred;
pub mod ema;
pub mod eval;
pub mod history;
mod inplace;
pub mod init;
pub mod kernels;
pub mod layer;
pub mod linear;
mod matmul;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod projector;
pub mod resnet;
pub mod schedule;
mod simd;
pub mod step;
pub mod train;
pub mod unfold;
pub mod weights;
mod winograd;

/// Bumped whenever this engine's results change for the same config, so that its stored runs are not
/// reused (part of each run's spec hash; the theory engine has its own).
pub const ENGINE_VERSION: u32 = 3;

