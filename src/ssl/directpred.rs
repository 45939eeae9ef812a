//! The DirectPred predictor of the deep networks (authors' `solo/methods/directpred.py`): an EMA of the
//! uncentred correlation of the detached online embeddings, C ← τC + (1 − τ) ZᵀZ/B (C starts at zero), and
//! W_P = U diag(s′) Uᵀ with s′ = (max(s, 0)/max(s) + ε)^α from C = U diag(s) Uᵀ. The symmetric
//! eigendecomposition runs on the CPU in f64; W_P enters the graph as a constant.
//! DirectCopy is α = 1, ε = 0.25.

use candle_core::{DType, Device, Result, Tensor};
use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::linalg::spectrum_fast;

/// Predictor state: the correlation estimate and its settings.
#[derive(Debug, Clone)]
pub struct DirectPred {
    /// EMA factor of the correlation (0.998 with an EMA target, 0.5 without, in the authors' configs).
    pub tau: f64,
    pub alpha: f64,
    pub eps: f64,
    corr: DMatrix<f64>,
}

/// What one update returns: the predictor and the raw spectrum of C (descending), for logging.
pub struct PredictorUpdate {
    pub wp: Tensor,
    pub eigenvalues: Vec<f64>,
}

impl DirectPred {
    pub fn new(dim: usize, tau: f64, alpha: f64, eps: f64) -> Self {
        DirectPred { tau, alpha, eps, corr: DMatrix::zeros(dim, dim) }
    }

    /// The correlation estimate C.
    pub fn correlation(&self) -> &DMatrix<f64> {
        &self.corr
    }

    /// Restores C (from a checkpoint).
    pub fn set_correlation(&mut self, c: DMatrix<f64>) {
        self.corr = c;
    }

    /// Folds the batch `z` (B × D, any device; read detached) into C and returns W_P on `device`.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use eigenssl::ssl::directpred::DirectPred;
    /// let mut dp = DirectPred::new(2, 0.0, 1.0, 0.0);
    /// let z = Tensor::new(&[[2f32, 0.], [0., 1.]], &Device::Cpu).unwrap();
    /// let up = dp.update(&z, &Device::Cpu).unwrap();
    /// // C = diag(2, 0.5); normalised by its largest eigenvalue: W_P = diag(1, 0.25).
    /// let wp = up.wp.to_vec2::<f32>().unwrap();
    /// assert!((wp[0][0] - 1.0).abs() < 1e-6 && (wp[1][1] - 0.25).abs() < 1e-6);
    /// ```
    pub fn update(&mut self, z: &Tensor, device: &Device) -> Result<PredictorUpdate> {
        self.accumulate(z)?;
        self.predictor(device)
    }

    /// Folds the batch `z` (B × D) into C without forming W_P: for all but the last view of a step, whose
    /// predictor nobody uses (it saves one eigendecomposition per step).
    pub fn accumulate(&mut self, z: &Tensor) -> Result<()> {
        let (b, d) = z.dims2()?;
        if d != self.corr.nrows() {
            candle_core::bail!("DirectPred: embedding dim {d}, predictor dim {}", self.corr.nrows());
        }
        let z = z.detach().to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
        let batch_corr = z.t()?.matmul(&z)?.affine(1.0 / b as f64, 0.0)?;
        let flat = batch_corr.flatten_all()?.to_vec1::<f64>()?;
        let batch_corr = DMatrix::from_row_slice(d, d, &flat);
        self.corr = &self.corr * self.tau + batch_corr * (1.0 - self.tau);
        Ok(())
    }

    /// Folds each view's batch into C in turn and returns, per view, W_P of C as it stood after that view
    /// (what [`DirectPred::update`] view after view gives): the eigendecompositions, independent once the
    /// C's are formed, run in parallel.
    pub fn update_views(&mut self, zs: &[Tensor], device: &Device) -> Result<Vec<PredictorUpdate>> {
        let mut snapshots = Vec::with_capacity(zs.len());
        for z in zs {
            self.accumulate(z)?;
            snapshots.push(self.corr.clone());
        }
        let mapped: Vec<(Vec<f32>, Vec<f64>)> = snapshots.par_iter().map(|c| self.mapped(c)).collect();
        mapped.into_iter().map(|(wp, eigenvalues)| Ok(PredictorUpdate { wp: Tensor::from_vec(wp, (self.dim(), self.dim()), device)?, eigenvalues })).collect()
    }

    fn dim(&self) -> usize {
        self.corr.nrows()
    }

    /// W_P from the current C, and C's spectrum.
    fn predictor(&self, device: &Device) -> Result<PredictorUpdate> {
        let (wp, eigenvalues) = self.mapped(&self.corr);
        Ok(PredictorUpdate { wp: Tensor::from_vec(wp, (self.dim(), self.dim()), device)?, eigenvalues })
    }

    /// W_P of the correlation `c` (row-major f32) and c's spectrum (descending).
    fn mapped(&self, c: &DMatrix<f64>) -> (Vec<f32>, Vec<f64>) {
        let d = c.nrows();
        let s = spectrum_fast(c);
        let max = s.values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let scale = if max > 0.0 && max.is_finite() { 1.0 / max } else { 0.0 };
        let mapped: Vec<f64> = s.values.iter().map(|&v| (v.max(0.0) * scale + self.eps).powf(self.alpha)).collect();
        let u = &s.vectors;
        let scaled = DMatrix::from_fn(d, d, |r, c| u[(r, c)] * mapped[c]);
        let wp = &scaled * u.transpose();
        let wp_rows: Vec<f32> = (0..d * d).map(|i| wp[(i / d, i % d)] as f32).collect();
        let mut eigenvalues = s.values;
        eigenvalues.reverse();
        (wp_rows, eigenvalues)
    }
}
