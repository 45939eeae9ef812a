//! The per-epoch history of a deep-SSL run, as records and checkpoints store it.

use serde::{Deserialize, Serialize};

/// Per-epoch log. Entries are `None` (null in JSON) where undefined: the SSL loss and the spectrum of a
/// run that trains only the readout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SslHistory {
    pub epoch: Vec<usize>,
    pub loss: Vec<Option<f64>>,
    pub readout_ce: Vec<f64>,
    /// Test top-1 of the online readout (%).
    pub readout_top1: Vec<f64>,
    pub eig_max: Vec<Option<f64>>,
    pub eig_min: Vec<Option<f64>>,
    pub participation_ratio: Vec<Option<f64>>,
    /// Mean over the epoch's steps of the std of the ℓ2-normalised embeddings, times √D (1 for evenly
    /// spread embeddings, 0 for collapsed ones).
    #[serde(default)]
    pub z_spread: Vec<Option<f64>>,
    /// Eigenvalues of the predictor's correlation C, descending (rounded), per epoch.
    pub eigenvalues: Vec<Vec<f64>>,
    pub images_per_s: Vec<f64>,
}
