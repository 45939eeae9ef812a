//! The theory engine: linear and ReLU toy networks of the paper's Sec. 2 (Figs. 1 and 2), simulated with
//! exact gradients and compared with the eigenmode maps of Eqs. 5–8. Pure CPU, no autograd.

pub mod config;
pub mod maps;
pub mod moments;
pub mod predictor;
pub mod simulate;

pub use config::{Loss, Nonlinearity, Predictor, Sampler, TheoryConfig, TheoryOverlay};
pub use simulate::{simulate, simulate_until, Outcome, Simulation, Simulator, TheoryHistory};

/// Bumped whenever this engine's results change for the same config, so that its stored runs are not
/// reused (part of each run's spec hash; the deep-SSL engine has its own).
pub const ENGINE_VERSION: u32 = 1;
