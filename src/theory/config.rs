//! The configuration of one linear/ReLU toy-network simulation (paper Sec. 2, authors' notebook).

use serde::{Deserialize, Serialize};

/// The four loss configurations of the paper's Fig. 1 and Fig. 2, with `e = W_P z₁ − z₂`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Eq. 6: ½‖W_P z₁ − z₂‖², gradients through both branches.
    NoStopGrad,
    /// Eq. 7: ½‖SG(W_P z₁) − z₂‖², the stop-grad on the online (predictor) side.
    WrongSideStopGrad,
    /// Eq. 2: ½‖W_P z₁ − SG(z₂)‖², the SimSiam loss with a DirectPred predictor.
    Simsiam,
    /// Eq. 8: ½‖z₁ − SG(z₂ + z₁ − W_P z₁)‖², the isotropic loss.
    Isoloss,
}

impl Loss {
    pub fn label(self) -> &'static str {
        match self {
            Loss::NoStopGrad => "no stop-grad",
            Loss::WrongSideStopGrad => "wrong-side stop-grad",
            Loss::Simsiam => "SimSiam loss",
            Loss::Isoloss => "IsoLoss",
        }
    }
}

/// The encoder's output nonlinearity: z = f(W x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nonlinearity {
    Linear,
    Relu,
}

/// Where the predictor's eigendecomposition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Predictor {
    /// `W_P = f_α(W Wᵀ)`: E[zzᵀ] of a linear net on unit Gaussian input (the authors' notebook; used for
    /// the ReLU net too, where it ignores the nonlinearity).
    ClosedForm,
    /// `W_P = f_α(C)`, C an EMA of the batch correlation `Z₁Z₁ᵀ/B` (DirectPred): `C ← τC + (1−τ)Z₁Z₁ᵀ/B`,
    /// started at the first batch's estimate.
    Empirical { tau: f64 },
}

/// How a step's batch of inputs is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// B explicit input pairs (any nonlinearity; the authors' notebook).
    Samples,
    /// The batch's second moments drawn exactly from their Wishart law (linear network only): the same
    /// distribution of steps at O(N³) cost instead of O(B·N·M). See [`super::moments`].
    Moments,
}

crate::overlay_config! {
    /// One simulation: every number the paper's Sec. 2 and the authors' notebook use.
    pub struct TheoryConfig / TheoryOverlay {
        pub loss: Loss,
        pub nonlinearity: Nonlinearity,
        /// Input dimension N.
        pub n_in: usize,
        /// Representation dimension M.
        pub n_out: usize,
        /// B: fresh Gaussian inputs per step; the gradient is their average.
        pub batch: usize,
        /// Augmentation noise: x₂ = x₁ + σ ε.
        pub sigma: f64,
        /// Learning rate η.
        pub lr: f64,
        /// Predictor power: W_P = U |D|^α Uᵀ.
        pub alpha: f64,
        pub predictor: Predictor,
        pub sampler: Sampler,
        pub steps: usize,
        /// W₀ = randn(M, N) · init_scale.
        pub init_scale: f64,
        /// Record the spectrum (and 2-D trajectories) every this many steps.
        pub log_every: usize,
        /// Fixed evaluation inputs whose trajectories W_t x are recorded: the `eval_points` of largest norm
        /// among `eval_pool` Gaussian draws (authors: 20 of 5000). 0 disables.
        pub eval_points: usize,
        pub eval_pool: usize,
        /// A run diverges when an eigenvalue of W Wᵀ exceeds this (or turns non-finite).
        pub diverge_above: f64,
        /// A run has collapsed when every eigenvalue of W Wᵀ is below this.
        pub collapse_below: f64,
        /// A mode has converged when it stays within this relative distance of 1 (0.05 = 5 %).
        pub converge_tol: f64,
    }
}

/// Largest batch × n_in × n_out of one step: about a second of one core, so that a stop request (checked
/// between steps) is honoured within seconds. The paper's setting is 7.5 × 10⁶.
pub const MAX_STEP_WORK: f64 = 1e9;

impl TheoryConfig {
    /// Range checks; each problem names its field and what was expected.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut checks = crate::overlay::Checks::default();
        let mut need = |ok: bool, what: &str| checks.need(ok, what);
        need(self.n_in >= 1, "n_in: expected an integer >= 1");
        need(self.n_out >= 1, "n_out: expected an integer >= 1");
        need(self.batch >= 1, "batch: expected an integer >= 1");
        need(self.sigma.is_finite() && self.sigma >= 0.0, "sigma: expected a finite number >= 0");
        need(self.lr.is_finite() && self.lr > 0.0, "lr: expected a finite number > 0");
        need(self.alpha.is_finite() && self.alpha > 0.0, "alpha: expected a finite number > 0");
        need(self.steps >= 1, "steps: expected an integer >= 1");
        let work = self.batch as f64 * self.n_in as f64 * self.n_out as f64;
        need(
            work <= MAX_STEP_WORK,
            &format!("batch, n_in, n_out: expected batch × n_in × n_out <= {MAX_STEP_WORK:e} (one step within about a second), got {work:e}"),
        );
        need(self.init_scale.is_finite() && self.init_scale > 0.0, "init_scale: expected a finite number > 0");
        need(self.log_every >= 1, "log_every: expected an integer >= 1");
        need(self.eval_points <= self.eval_pool, "eval_points: expected at most eval_pool");
        need(self.diverge_above > 1.0, "diverge_above: expected a number > 1");
        need(
            self.collapse_below > 0.0 && self.collapse_below < 1.0,
            "collapse_below: expected a number in (0, 1)",
        );
        need(
            self.converge_tol > 0.0 && self.converge_tol < 1.0,
            "converge_tol: expected a number in (0, 1)",
        );
        if self.sampler == Sampler::Moments {
            need(self.nonlinearity == Nonlinearity::Linear, "sampler: `moments` needs nonlinearity `linear`");
            need(self.batch >= 2 * self.n_in, "batch: `moments` needs batch >= 2 n_in");
        }
        if let Predictor::Empirical { tau } = self.predictor {
            need((0.0..1.0).contains(&tau), "predictor.empirical.tau: expected a number in [0, 1)");
        }
        checks.finish()
    }
}
