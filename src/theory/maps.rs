//! The eigenmode theory: how each eigenvalue λ of W Wᵀ moves per gradient step, in expectation.
//!
//! # Derivation
//! Linear net z = W x with x₁ ~ N(0, I_N), x₂ = x₁ + σ ε, ε ~ N(0, I_N), so
//! E[x₁x₁ᵀ] = E[x₂x₁ᵀ] = I and E[x₂x₂ᵀ] = (1 + σ²) I. The predictor W_P = U |D|^α Uᵀ shares its
//! eigenvectors with W Wᵀ = U D Uᵀ and is a constant of the step. With e = W_P z₁ − z₂ the expected
//! gradients are
//!
//! | loss | gradient g(W) | E[g] |
//! |---|---|---|
//! | SimSiam (Eq. 2) | W_Pᵀ e x₁ᵀ | W_P (W_P − I) W |
//! | IsoLoss (Eq. 8) | e x₁ᵀ | (W_P − I) W |
//! | no stop-grad (Eq. 6) | W_Pᵀ e x₁ᵀ − e x₂ᵀ | ((W_P − I)² + σ² I) W |
//! | wrong-side SG (Eq. 7) | −e x₂ᵀ | −(W_P − (1 + σ²) I) W |
//!
//! Each E[g] has the form G W with G = U diag(g(λ)) Uᵀ, so one step W ← (I − η G) W maps
//! W Wᵀ ← (I − ηG) W Wᵀ (I − ηG)ᵀ: the eigenvectors stay put and every eigenvalue follows its own map
//! λ ← λ (1 − η g(λ))², with
//!
//! * SimSiam: g = λ^α (λ^α − 1)
//! * IsoLoss: g = λ^α − 1
//! * no stop-grad: g = (λ^α − 1)² + σ²
//! * wrong-side SG: g = −(λ^α − 1 − σ²)
//!
//! The σ² terms are the augmentation noise that the paper's Eqs. 6–7 average away: without them no-SG
//! would stop at λ = 1 instead of collapsing, and wrong-side SG's fixed point is 1 + σ², not 1. With a
//! finite batch B the simulated step is this map plus O(η/√B) noise.
//!
//! For a ReLU net these maps are not exact (E[zzᵀ] ≠ W Wᵀ); they are drawn as a reference only.

use super::config::Loss;

/// The per-step gain g(λ) of the derivation: one step scales λ by (1 − η g(λ))².
pub fn gain(loss: Loss, lambda: f64, alpha: f64, sigma: f64) -> f64 {
    let p = lambda.abs().powf(alpha);
    match loss {
        Loss::Simsiam => p * (p - 1.0),
        Loss::Isoloss => p - 1.0,
        Loss::NoStopGrad => (p - 1.0).powi(2) + sigma * sigma,
        Loss::WrongSideStopGrad => -(p - 1.0 - sigma * sigma),
    }
}

/// One step of the eigenvalue map.
///
/// ```
/// use eigenssl::theory::{maps::step, Loss};
/// // λ = 1 is the SimSiam fixed point; no-SG shrinks it by (1 − η σ²)².
/// assert_eq!(step(Loss::Simsiam, 1.0, 1.0, 0.1, 0.01), 1.0);
/// assert!((step(Loss::NoStopGrad, 1.0, 1.0, 0.1, 0.01) - (1.0f64 - 0.01 * 0.01).powi(2)).abs() < 1e-15);
/// ```
pub fn step(loss: Loss, lambda: f64, alpha: f64, sigma: f64, lr: f64) -> f64 {
    let f = 1.0 - lr * gain(loss, lambda, alpha, sigma);
    lambda * f * f
}

/// Predicted trajectories of every mode: row t holds the eigenvalues after t steps, for t = 0..=steps.
pub fn trajectory(loss: Loss, initial: &[f64], alpha: f64, sigma: f64, lr: f64, steps: usize) -> Vec<Vec<f64>> {
    let mut out = Vec::with_capacity(steps + 1);
    let mut cur = initial.to_vec();
    out.push(cur.clone());
    for _ in 0..steps {
        for l in cur.iter_mut() {
            *l = step(loss, *l, alpha, sigma, lr);
        }
        out.push(cur.clone());
    }
    out
}
