//! The collapse criterion of the deep runs, fixed before any Table 1 number of the current protocol was
//! looked at: the std over the batch of the ℓ2-normalised embeddings (what solo-learn logs as
//! `train_z_std` and lightly monitors), averaged over dimensions, times √D — the *spread*: 1 for
//! embeddings spread evenly over the sphere, 0 when every embedding points the same way. A run is
//! `collapsed` when the spread, averaged over an epoch's steps, ends its last epoch below
//! [`COLLAPSE_SPREAD`]. It counts complete collapse; a collapse onto a few directions keeps a spread well
//! above it and shows in the participation ratio of C instead.
//!
//! *Dimensional collapse* (a collapse onto a few directions) is judged against the *untrained floor*: the
//! mean final readout top-1 of the profile's cells that train only the readout on a frozen, untrained
//! backbone of the same dataset. A run that trained its backbone, did not collapse completely and ends
//! its last epoch with a readout top-1 below that floor is `dim_collapsed`: its training made the
//! features worse for a linear readout than no training at all. One that ends at or above it `learned`.
//! The epoch named is the first of the last stretch of epochs below the floor.
//!
//! Why the readout and not a spectral threshold: C is the *uncentred* correlation E[z zᵀ] (as DirectPred
//! and the authors' code use it), so its participation ratio counts the embeddings' mean direction as a
//! dimension; a short healthy run with a large mean has a ratio near 1 as much as a collapsed one. The
//! floor measures the one thing the question "did it learn?" asks, with no threshold of our choosing; the
//! ratio and the spread stay in the records and tables as the spectrum's description of the failure.
//! The readout is also what the paper's Table 1 and the PyTorch twin report, so both implementations are
//! judged alike. Where the online readout is far from trained (the `ci` profile: 4 epochs on generated
//! images that every feature set separates, k-NN at 100 %), it lags the features and a run can end
//! below the floor with good features: there the outcome is a regression signal, not a finding.

use candle_core::{DType, Result, Tensor, D};

/// A run is collapsed while its epoch's mean spread is below this.
pub const COLLAPSE_SPREAD: f64 = 0.1;

/// Mean over dimensions of the std over the batch (n − 1) of the ℓ2-normalised rows of `z` (B × D).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use eigenssl::ssl::collapse::normalised_std;
/// // Identical rows: nothing varies.
/// let same = Tensor::new(&[[1f32, 2.], [1., 2.], [1., 2.]], &Device::Cpu).unwrap();
/// assert!(normalised_std(&same).unwrap() < 1e-9);
/// // ±e₁, ±e₂: each coordinate is 0, ±1 over four rows, std √(2/3).
/// let spread = Tensor::new(&[[1f32, 0.], [-1., 0.], [0., 1.], [0., -1.]], &Device::Cpu).unwrap();
/// assert!((normalised_std(&spread).unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
/// ```
pub fn normalised_std(z: &Tensor) -> Result<f64> {
    let z = z.detach().to_dtype(DType::F64)?;
    let n = z.dim(0)?;
    let unit = z.broadcast_div(&z.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?)?;
    let centred = unit.broadcast_sub(&unit.mean_keepdim(0)?)?;
    let var = (centred.sqr()?.sum(0)? / (n.max(2) - 1) as f64)?;
    var.sqrt()?.mean_all()?.to_scalar::<f64>()
}

/// The first epoch of the current run of collapsed epochs, after `epoch` ended with mean spread `spread`
/// (`None`: no embeddings, a frozen backbone). A healthy epoch ends the run of collapsed ones.
///
/// ```
/// use eigenssl::ssl::collapse::collapsed_since;
/// assert_eq!(collapsed_since(None, Some(0.05), 3), Some(3));
/// assert_eq!(collapsed_since(Some(3), Some(0.02), 4), Some(3));
/// assert_eq!(collapsed_since(Some(3), Some(0.4), 5), None);
/// assert_eq!(collapsed_since(None, None, 0), None);
/// ```
pub fn collapsed_since(since: Option<usize>, spread: Option<f64>, epoch: usize) -> Option<usize> {
    match spread {
        Some(s) if s < COLLAPSE_SPREAD => since.or(Some(epoch)),
        _ => None,
    }
}

/// The first epoch (0-based) of the last stretch of epochs whose readout top-1 (one value per epoch) was
/// below `floor`, if the last epoch's was: the epoch a [dimensional collapse](self) dates from.
///
/// ```
/// use eigenssl::ssl::collapse::below_floor_since;
/// assert_eq!(below_floor_since(&[30.0, 20.0, 12.0, 11.0], 26.0), Some(1));
/// assert_eq!(below_floor_since(&[12.0, 30.0, 12.0], 26.0), Some(2));
/// assert_eq!(below_floor_since(&[12.0, 30.0], 26.0), None);
/// assert_eq!(below_floor_since(&[], 26.0), None);
/// ```
pub fn below_floor_since(readout_top1: &[f64], floor: f64) -> Option<usize> {
    let above = readout_top1.iter().rposition(|&v| v >= floor || v.is_nan());
    match above {
        Some(i) if i + 1 == readout_top1.len() => None,
        Some(i) => Some(i + 1),
        None => (!readout_top1.is_empty()).then_some(0),
    }
}
