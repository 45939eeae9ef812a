//! Linear algebra shared by both engines: the symmetric eigendecompositions behind every predictor (one
//! solver per engine, see [`spectrum`] and [`spectrum_fast`]).

use faer::{Mat, Side};
use nalgebra::{DMatrix, SymmetricEigen};

/// Eigenvalues (ascending) and eigenvectors (columns, same order) of a symmetric matrix.
pub struct Spectrum {
    pub values: Vec<f64>,
    pub vectors: DMatrix<f64>,
}

impl Spectrum {
    /// What a matrix with a non-finite entry, or one the solver does not converge on, gets: NaN
    /// eigenvalues, so that a diverged run is detected, not hung.
    fn failed(n: usize) -> Self {
        Spectrum { values: vec![f64::NAN; n], vectors: DMatrix::identity(n, n) }
    }
}

/// Symmetric eigendecomposition with eigenvalues sorted ascending, by nalgebra: the theory engine's. Its
/// figures and its within-2 % test are made with this solver's rounding, which matters there: the
/// wrong-side stop-grad runs diverge and amplify the last bits (with [`spectrum_fast`] one run's largest
/// deviation from the theory went from under 2 % to 3 %).
pub fn spectrum(sym: &DMatrix<f64>) -> Spectrum {
    if !sym.iter().all(|v| v.is_finite()) {
        return Spectrum::failed(sym.nrows());
    }
    let eig = SymmetricEigen::new(sym.clone());
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]));
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let vectors = DMatrix::from_fn(sym.nrows(), order.len(), |r, c| eig.eigenvectors[(r, order[c])]);
    Spectrum { values, vectors }
}

/// The same decomposition by faer, about 3× faster at 256 × 256 (4.5 against 12.4 ms here): the deep
/// engine's (its DirectPred predictor decomposes a projector-sized matrix in every training step). faer
/// is built without its rayon feature, so it runs on one thread and its bits do not depend on the thread
/// count.
pub fn spectrum_fast(sym: &DMatrix<f64>) -> Spectrum {
    let n = sym.nrows();
    if !sym.iter().all(|v| v.is_finite()) {
        return Spectrum::failed(n);
    }
    let Ok(eig) = Mat::from_fn(n, n, |r, c| sym[(r, c)]).self_adjoint_eigen(Side::Lower) else {
        return Spectrum::failed(n);
    };
    // faer returns them in nondecreasing order already.
    let values = eig.S().column_vector().iter().copied().collect();
    let u = eig.U();
    Spectrum { values, vectors: DMatrix::from_fn(n, n, |r, c| u[(r, c)]) }
}
