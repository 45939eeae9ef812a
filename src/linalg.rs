//! Linear algebra shared by both engines: the symmetric eigendecomposition behind every predictor.

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
