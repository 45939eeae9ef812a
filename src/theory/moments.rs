//! The exact-in-distribution shortcut for the linear network: its batch gradient depends on the B input
//! pairs only through their second moments, so one step draws those moments directly.
//!
//! With a_b = [x₁_b; ε_b] ~ N(0, I_2N), the matrix S = Σ_b a_b a_bᵀ is Wishart(B, I_2N). Bartlett's
//! decomposition draws it exactly from (2N)²/2 normals and 2N chi-squares: S = L Lᵀ with L lower
//! triangular, L_ii = √χ²(B − i) (i = 0‥2N−1), L_ij ~ N(0, 1) below the diagonal. For the linear net
//! e = A x₁ + Bε with A = (W_P − I) W and B = −σW, and every loss's batch gradient is
//! G = (P₁ + P₂)(A Sₓₓ + B Sₑₓ) + σ P₂ (A Sₓₑ + B Sₑₑ) (divided by the batch), with
//! (P₁, P₂) = (W_P, 0) SimSiam, (I, 0) IsoLoss, (W_P, −I) no stop-grad, (0, −I) wrong-side stop-grad.
//! A step costs O(N³) instead of O(B·N·M), and its distribution is that of the sampled step.

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{ChiSquared, Distribution, StandardNormal};

use super::config::Loss;

/// Second moments of one batch, each divided by the batch size.
pub struct Moments {
    pub xx: DMatrix<f64>,
    pub xe: DMatrix<f64>,
    pub ee: DMatrix<f64>,
}

/// Draws the moments of `batch` i.i.d. pairs (x₁, ε) of N-dimensional standard normals.
pub fn draw<G: Rng>(rng: &mut G, n: usize, batch: usize) -> Moments {
    let d = 2 * n;
    let mut l = DMatrix::<f64>::zeros(d, d);
    for i in 0..d {
        // χ² with B − i degrees of freedom; B ≥ 2N keeps it positive (checked in validation).
        let dof = (batch - i) as f64;
        l[(i, i)] = ChiSquared::new(dof).map(|c| c.sample(rng)).unwrap_or(dof).sqrt();
        for j in 0..i {
            l[(i, j)] = rng.sample(StandardNormal);
        }
    }
    let s = (&l * l.transpose()) / batch as f64;
    Moments {
        xx: s.view((0, 0), (n, n)).into_owned(),
        xe: s.view((0, n), (n, n)).into_owned(),
        ee: s.view((n, n), (n, n)).into_owned(),
    }
}

/// The batch-mean gradient of `loss` for the linear net W (M × N) with predictor `wp`.
pub fn gradient(loss: Loss, w: &DMatrix<f64>, wp: &DMatrix<f64>, sigma: f64, s: &Moments) -> DMatrix<f64> {
    let m = w.nrows();
    let eye = DMatrix::<f64>::identity(m, m);
    let zero = DMatrix::<f64>::zeros(m, m);
    let a = (wp - &eye) * w;
    let b = w * (-sigma);
    let e_x = &a * &s.xx + &b * s.xe.transpose();
    let e_e = &a * &s.xe + &b * &s.ee;
    let (p1, p2) = match loss {
        Loss::Simsiam => (wp.clone(), zero),
        Loss::Isoloss => (eye, zero),
        Loss::NoStopGrad => (wp.clone(), -eye),
        Loss::WrongSideStopGrad => (zero, -eye),
    };
    (&p1 + &p2) * e_x + (p2 * e_e) * sigma
}
