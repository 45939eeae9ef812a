//! The DirectPred predictor of the toy networks: W_P = U |D|^α Uᵀ from a symmetric matrix U D Uᵀ.

use nalgebra::DMatrix;

pub use crate::linalg::{spectrum, Spectrum};

/// W_P = U |D|^α Uᵀ.
///
/// ```
/// use nalgebra::DMatrix;
/// use eigenssl::theory::predictor::{predictor, spectrum};
/// let c = DMatrix::from_row_slice(2, 2, &[2.0, 0.0, 0.0, 0.5]);
/// let wp = predictor(&spectrum(&c), 1.0);
/// assert!((wp - c).norm() < 1e-12);
/// ```
pub fn predictor(s: &Spectrum, alpha: f64) -> DMatrix<f64> {
    let d: Vec<f64> = s.values.iter().map(|v| v.abs().powf(alpha)).collect();
    let scaled = DMatrix::from_fn(s.vectors.nrows(), s.vectors.ncols(), |r, c| s.vectors[(r, c)] * d[c]);
    &scaled * s.vectors.transpose()
}
