//! The collapse criterion of the deep runs, fixed before any Table 1 number of the current protocol was
//! looked at: the std over the batch of the ℓ2-normalised embeddings (what solo-learn logs as
//! `train_z_std` and lightly monitors), averaged over dimensions, times √D — the *spread*: 1 for
//! embeddings spread evenly over the sphere, 0 when every embedding points the same way. A run is
//! `collapsed` when the spread, averaged over an epoch's steps, ends its last epoch below
//! [`COLLAPSE_SPREAD`]. It counts complete collapse; a collapse onto a few directions keeps a spread well
//! above it and shows in the participation ratio of C instead.

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
