//! Deep self-supervised learning on candle (paper Sec. 3, Table 1): the VGG11 Siamese network with a
//! DirectPred predictor, its losses, optimiser, EMA, training loop and evaluation. Each concept is one
//! file; each is tested against hand calculation or candle's autograd in `tests/ssl.rs`. The layers'
//! CPU kernels are the `candle-cpu-kernels` crate (`crates/candle-cpu-kernels`).

pub mod backbone;
pub mod checkpoint;
pub mod collapse;
pub mod config;
pub mod directpred;
pub mod ema;
pub mod eval;
pub mod history;
pub mod init;
pub mod loss;
pub mod optim;
pub mod projector;
pub mod resnet;
pub mod schedule;
pub mod step;
pub mod train;
pub mod weights;

/// Which code computes the layers: our CPU kernels or candle's ops (spec field `kernels`).
pub use candle_cpu_kernels::Kernels;

/// Bumped whenever this engine's results change for the same config, so that its stored runs are not
/// reused (part of each run's spec hash; the theory engine has its own).
pub const ENGINE_VERSION: u32 = 3;

