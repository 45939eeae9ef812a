//! The DirectPred predictor of the toy networks: W_P = U |D|^α Uᵀ from a symmetric matrix U D Uᵀ.

use nalgebra::{DMatrix, SymmetricEigen};

/// Eigenvalues (ascending) and eigenvectors (columns, same order) of a symmetric matrix.
pub struct Spectrum {
    pub values: Vec<f64>,
    pub vectors: DMatrix<f64>,
}

/// Symmetric eigendecomposition with eigenvalues sorted ascending. A matrix with a non-finite entry gets
/// NaN eigenvalues (nalgebra's solver would never converge on it), so a diverged run is detected, not hung.
pub fn spectrum(sym: &DMatrix<f64>) -> Spectrum {
    if !sym.iter().all(|v| v.is_finite()) {
        let n = sym.nrows();
        return Spectrum { values: vec![f64::NAN; n], vectors: DMatrix::identity(n, n) };
    }
    let eig = SymmetricEigen::new(sym.clone());
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let vectors = DMatrix::from_fn(sym.nrows(), order.len(), |r, c| eig.eigenvectors[(r, order[c])]);
    Spectrum { values, vectors }
}

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
