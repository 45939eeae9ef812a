//! The toy-network simulation: exact per-step gradients of each loss, averaged over B fresh samples.
//!
//! With h = W x, z = f(h), e = W_P z₁ − z₂ and W_P a constant of the step (DirectPred), the per-sample
//! gradients with respect to W are (⊙ the elementwise product, f' the nonlinearity's derivative):
//!
//! | loss | ∂L/∂W |
//! |---|---|
//! | SimSiam | (f'(h₁) ⊙ W_Pᵀe) x₁ᵀ |
//! | IsoLoss | (f'(h₁) ⊙ e) x₁ᵀ |
//! | no stop-grad | (f'(h₁) ⊙ W_Pᵀe) x₁ᵀ − (f'(h₂) ⊙ e) x₂ᵀ |
//! | wrong-side SG | −(f'(h₂) ⊙ e) x₂ᵀ |
//!
//! For the ReLU net this is the exact gradient; the authors' notebook masks e before multiplying by
//! W_Pᵀ, an approximation we do not copy. Samples are generated and consumed in cache-sized blocks,
//! one row per sample, so every product is a matrix multiplication (matrixmultiply, with runtime
//! AVX/FMA dispatch).

use std::collections::BTreeMap;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::config::{Loss, Nonlinearity, Predictor, Sampler, TheoryConfig};
use super::moments;
use super::maps;
use super::predictor::{predictor, spectrum, Spectrum};
use crate::normal::FastRng;
use crate::rng::stream;
use crate::stats::round_sig5;

/// Samples per block: large enough for efficient matrix products, small enough to stay in L2.
const BLOCK: usize = 512;
/// The theory comparison covers eigenvalues in [COMPARE_FLOOR, COMPARE_CEILING], the range of the
/// paper's eigenvalue panels. Below the floor a relative error is meaningless (a collapsed mode is all
/// noise). Above the ceiling the wrong-side map is in its finite-time blow-up: each step amplifies any
/// relative perturbation (of λ ≈ 50 by 1.7× per step at η = 0.01), so a comparison there would measure
/// the blow-up's timing, not the map.
pub const COMPARE_FLOOR: f64 = 1e-3;
pub const COMPARE_CEILING: f64 = 10.0;

/// How a simulation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every eigenvalue within `converge_tol` of 1 at the end.
    Converged,
    /// Not converged yet, but over the last quarter of the run every mode outside the tolerance moved
    /// toward 1.
    Converging,
    /// Not collapsed yet, but every mode is below 1 − `converge_tol` and shrank over the last quarter.
    Collapsing,
    /// Finite and none of the above (e.g. stalled modes).
    Unconverged,
    /// Every eigenvalue below `collapse_below`.
    Collapsed,
    /// An eigenvalue above `diverge_above` or non-finite.
    Diverged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Converged => "converged",
            Outcome::Converging => "converging",
            Outcome::Collapsing => "collapsing",
            Outcome::Unconverged => "unconverged",
            Outcome::Collapsed => "collapsed",
            Outcome::Diverged => "diverged",
        }
    }
}

/// What a simulation logs every `log_every` steps, rounded to 5 significant digits (compact JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TheoryHistory {
    pub steps: Vec<usize>,
    /// Eigenvalues of W Wᵀ, ascending, one row per logged step.
    pub eigenvalues: Vec<Vec<f64>>,
    /// W_t x_j of the fixed evaluation points: [logged step][point][coordinate].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trajectories: Vec<Vec<Vec<f64>>>,
}

/// The result of one simulation.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub outcome: Outcome,
    /// The step at which the run ended (steps, or the step of collapse or divergence).
    pub outcome_step: usize,
    pub history: TheoryHistory,
    pub metrics: BTreeMap<String, f64>,
}

/// A network in training: weights, its data stream and scratch buffers.
pub struct Simulator {
    cfg: TheoryConfig,
    /// W, M × N.
    w: DMatrix<f64>,
    data: FastRng,
    /// Empirical correlation estimate (only for `Predictor::Empirical`).
    corr: Option<DMatrix<f64>>,
    eval: Vec<DVector<f64>>,
    /// Scratch for full blocks, and for the shorter last block of a batch.
    full: Buffers,
    tail: Option<Buffers>,
}

/// Per-block matrices, one row per sample (column-major, so each feature is contiguous over samples).
struct Buffers {
    x1: DMatrix<f64>,
    eps: DMatrix<f64>,
    h1: DMatrix<f64>,
    h2: DMatrix<f64>,
    z1: DMatrix<f64>,
    z2: DMatrix<f64>,
    e: DMatrix<f64>,
    c1: DMatrix<f64>,
    c2: DMatrix<f64>,
}

impl Buffers {
    fn new(len: usize, n: usize, m: usize) -> Self {
        let z = |k: usize| DMatrix::zeros(len, k);
        Buffers { x1: z(n), eps: z(n), h1: z(m), h2: z(m), z1: z(m), z2: z(m), e: z(m), c1: z(m), c2: z(m) }
    }

    /// Draws the block's input pairs and computes h₁ = W x₁, h₂ = W (x₁ + σε) and z = f(h).
    fn forward(&mut self, rng: &mut FastRng, wt: &DMatrix<f64>, sigma: f64, nl: Nonlinearity) {
        crate::normal::fill(rng, self.x1.as_mut_slice());
        crate::normal::fill(rng, self.eps.as_mut_slice());
        self.h1.gemm(1.0, &self.x1, wt, 0.0);
        // h₂ = h₁ + σ W ε
        self.h2.gemm(1.0, &self.eps, wt, 0.0);
        self.h2.zip_apply(&self.h1, |h2, h1| *h2 = h1 + sigma * *h2);
        let act = |h: &DMatrix<f64>, z: &mut DMatrix<f64>| match nl {
            Nonlinearity::Linear => z.copy_from(h),
            Nonlinearity::Relu => z.zip_apply(h, |z, h| *z = h.max(0.0)),
        };
        act(&self.h1, &mut self.z1);
        act(&self.h2, &mut self.z2);
    }

    /// Adds the summed gradient of the block's samples to `grad` (M × N).
    fn gradient(&mut self, loss: Loss, wp: &DMatrix<f64>, sigma: f64, nl: Nonlinearity, grad: &mut DMatrix<f64>) {
        // e = W_P z₁ − z₂ (W_P symmetric, rows are samples: E = Z₁ W_P − Z₂).
        self.e.gemm(1.0, &self.z1, wp, 0.0);
        self.e -= &self.z2;
        let needs_wpe = matches!(loss, Loss::Simsiam | Loss::NoStopGrad);
        if needs_wpe {
            self.c1.gemm(1.0, &self.e, wp, 0.0); // W_Pᵀ e
        }
        // Coefficients a₁ (of x₁ᵀ) and a₂ (of x₂ᵀ); G = (a₁ + a₂) x₁ᵀ + σ a₂ εᵀ since x₂ = x₁ + σε.
        // The ReLU derivative is a 0/1 factor; each loss gets its own branch-free loop.
        let relu = nl == Nonlinearity::Relu;
        let d = |h: f64| if !relu || h > 0.0 { 1.0 } else { 0.0 };
        let (h1, h2, e) = (self.h1.as_slice(), self.h2.as_slice(), self.e.as_slice());
        let (c1, c2) = (self.c1.as_mut_slice(), self.c2.as_mut_slice());
        match loss {
            Loss::Simsiam => c1.iter_mut().zip(h1).for_each(|(c, &h)| *c *= d(h)),
            Loss::Isoloss => c1.iter_mut().zip(h1.iter().zip(e)).for_each(|(c, (&h, &e))| *c = d(h) * e),
            Loss::NoStopGrad => {
                for i in 0..e.len() {
                    let a2 = -d(h2[i]) * e[i];
                    c1[i] = d(h1[i]) * c1[i] + a2;
                    c2[i] = sigma * a2;
                }
            }
            Loss::WrongSideStopGrad => {
                for i in 0..e.len() {
                    let a2 = -d(h2[i]) * e[i];
                    c1[i] = a2;
                    c2[i] = sigma * a2;
                }
            }
        }
        gemm_tn(grad, &self.c1, &self.x1);
        if matches!(loss, Loss::NoStopGrad | Loss::WrongSideStopGrad) {
            gemm_tn(grad, &self.c2, &self.eps);
        }
    }
}

impl Simulator {
    /// A fresh network: W₀ and the evaluation points come from the seed's `init` stream (shared by every
    /// loss, as in the authors' notebook), the training samples from its `data` stream.
    pub fn new(cfg: &TheoryConfig, seed: u64) -> Self {
        Self::with_seeds(cfg, seed, seed)
    }

    /// W₀ and evaluation points from `init_seed`, training samples from `data_seed`.
    pub fn with_seeds(cfg: &TheoryConfig, init_seed: u64, data_seed: u64) -> Self {
        let (m, n) = (cfg.n_out, cfg.n_in);
        let mut init = stream(init_seed, "theory/init");
        let w = DMatrix::from_fn(m, n, |_, _| init.sample::<f64, _>(StandardNormal) * cfg.init_scale);
        let mut pool: Vec<DVector<f64>> =
            (0..cfg.eval_pool).map(|_| DVector::from_fn(n, |_, _| init.sample(StandardNormal))).collect();
        pool.sort_by(|a, b| b.norm_squared().total_cmp(&a.norm_squared()));
        pool.truncate(cfg.eval_points);
        Simulator {
            cfg: cfg.clone(),
            w,
            data: FastRng::from_rng(&mut stream(data_seed, "theory/data")),
            corr: None,
            eval: pool,
            full: Buffers::new(BLOCK.min(cfg.batch), n, m),
            tail: None,
        }
    }

    /// W, M × N.
    pub fn weights(&self) -> DMatrix<f64> {
        self.w.clone()
    }

    /// Spectrum of W Wᵀ.
    pub fn gram_spectrum(&self) -> Spectrum {
        spectrum(&(&self.w * self.w.transpose()))
    }

    /// True when every weight is finite.
    pub fn is_finite(&self) -> bool {
        self.w.iter().all(|v| v.is_finite())
    }

    /// One gradient step; `gram` is the current spectrum of W Wᵀ (used by the closed-form predictor).
    pub fn step(&mut self, gram: &Spectrum) {
        if self.cfg.sampler == Sampler::Moments {
            return self.moments_step(gram);
        }
        let wp = match self.cfg.predictor {
            Predictor::ClosedForm => predictor(gram, self.cfg.alpha),
            Predictor::Empirical { tau } => {
                // The correlation must include this step's batch before W_P is used on it (as DirectPred
                // does), so replay the same samples: clone the stream, read the batch once for Z₁Z₁ᵀ.
                let mut replay = self.data.clone();
                let batch_corr = self.batch_correlation(&mut replay);
                self.predictor_from_correlation(batch_corr, tau)
            }
        };
        let mut grad = DMatrix::zeros(self.cfg.n_out, self.cfg.n_in);
        let mut rng = self.data.clone();
        let (wt, cfg) = (self.w.transpose(), self.cfg.clone());
        self.for_each_block(&mut rng, &wt, |b| b.gradient(cfg.loss, &wp, cfg.sigma, cfg.nonlinearity, &mut grad));
        self.data = rng;
        self.w -= grad * (self.cfg.lr / self.cfg.batch as f64);
    }

    /// Runs `f` on every block of the batch after its forward pass.
    fn for_each_block(&mut self, rng: &mut FastRng, wt: &DMatrix<f64>, mut f: impl FnMut(&mut Buffers)) {
        let (n, m, sigma, nl) = (self.cfg.n_in, self.cfg.n_out, self.cfg.sigma, self.cfg.nonlinearity);
        let full = self.full.x1.nrows();
        let mut left = self.cfg.batch;
        while left > 0 {
            let len = left.min(full);
            let b = if len == full {
                &mut self.full
            } else {
                let tail = self.tail.get_or_insert_with(|| Buffers::new(len, n, m));
                if tail.x1.nrows() != len {
                    *tail = Buffers::new(len, n, m);
                }
                tail
            };
            b.forward(rng, wt, sigma, nl);
            f(b);
            left -= len;
        }
    }

    fn batch_correlation(&mut self, rng: &mut FastRng) -> DMatrix<f64> {
        let m = self.cfg.n_out;
        let mut c = DMatrix::zeros(m, m);
        let wt = self.w.transpose();
        self.for_each_block(rng, &wt, |b| gemm_tn(&mut c, &b.z1, &b.z1));
        c / self.cfg.batch as f64
    }

    /// Folds a batch correlation into the EMA estimate and returns the predictor it gives.
    fn predictor_from_correlation(&mut self, batch_corr: DMatrix<f64>, tau: f64) -> DMatrix<f64> {
        let c = match self.corr.take() {
            Some(c) => c * tau + batch_corr * (1.0 - tau),
            None => batch_corr,
        };
        let wp = predictor(&spectrum(&c), self.cfg.alpha);
        self.corr = Some(c);
        wp
    }

    /// A step of the linear net from the batch's exactly drawn second moments (see [`moments`]).
    fn moments_step(&mut self, gram: &Spectrum) {
        let s = moments::draw(&mut self.data, self.cfg.n_in, self.cfg.batch);
        let wp = match self.cfg.predictor {
            Predictor::ClosedForm => predictor(gram, self.cfg.alpha),
            Predictor::Empirical { tau } => {
                let c = &self.w * &s.xx * self.w.transpose();
                self.predictor_from_correlation(c, tau)
            }
        };
        let g = moments::gradient(self.cfg.loss, &self.w, &wp, self.cfg.sigma, &s);
        self.w -= g * self.cfg.lr;
    }

    /// W x_j of every evaluation point, rounded for storage.
    pub fn eval_positions(&self) -> Vec<Vec<f64>> {
        self.eval.iter().map(|x| (&self.w * x).iter().map(|&v| round_sig5(v)).collect()).collect()
    }
}

/// `g += aᵀ b` for column-major a (L × M), b (L × N), g (M × N), through matrixmultiply's kernels
/// (nalgebra's own `gemm_tr` is a loop of dot products).
fn gemm_tn(g: &mut DMatrix<f64>, a: &DMatrix<f64>, b: &DMatrix<f64>) {
    let (l, m, n) = (a.nrows(), a.ncols(), b.ncols());
    assert!(b.nrows() == l && g.nrows() == m && g.ncols() == n, "gemm_tn: shape mismatch");
    // SAFETY: the shapes are checked above; all three are dense column-major buffers of those shapes,
    // and g does not alias a or b (it is borrowed mutably).
    unsafe {
        matrixmultiply::dgemm(
            m,
            l,
            n,
            1.0,
            a.as_ptr(),
            l as isize,
            1,
            b.as_ptr(),
            1,
            l as isize,
            1.0,
            g.as_mut_ptr(),
            1,
            m as isize,
        );
    }
}

/// Expected peak bytes of a run of `cfg`: the sample blocks of a step, the evaluation pool, and the history
/// (each logged number costs about 64 bytes as the JSON value the record is built from).
pub fn memory_bytes(cfg: &TheoryConfig) -> u64 {
    let (n, m) = (cfg.n_in as f64, cfg.n_out as f64);
    let blocks = 9.0 * (BLOCK.min(cfg.batch) as f64) * n.max(m) * 8.0;
    let pool = cfg.eval_pool as f64 * (n * 8.0 + 48.0);
    let logs = (cfg.steps / cfg.log_every.max(1)) as f64 + 2.0;
    let history = logs * (m + cfg.eval_points as f64 * m) * 64.0;
    (blocks + pool + history).min(u64::MAX as f64) as u64
}

/// Runs a whole simulation and derives its metrics.
pub fn simulate(cfg: &TheoryConfig, seed: u64) -> Simulation {
    simulate_until(cfg, seed, &|| false).unwrap_or_else(|| unreachable!("a run that is never stopped ends"))
}

/// [`simulate`], asked before every step whether to stop (a step of a bounded spec takes well under a
/// second: [`TheoryConfig::validate`]); `None` when it stopped.
pub fn simulate_until(cfg: &TheoryConfig, seed: u64, stop: &dyn Fn() -> bool) -> Option<Simulation> {
    let mut sim = Simulator::new(cfg, seed);
    let mut gram = sim.gram_spectrum();
    let initial = gram.values.clone();
    let mut predicted = initial.clone();
    let mut history = TheoryHistory::default();
    let log = |step: usize, values: &[f64], sim: &Simulator, h: &mut TheoryHistory| {
        h.steps.push(step);
        h.eigenvalues.push(values.iter().map(|&v| round_sig5(v)).collect());
        if cfg.eval_points > 0 {
            h.trajectories.push(sim.eval_positions());
        }
    };
    log(0, &gram.values, &sim, &mut history);

    let near_one = |v: f64| (v - 1.0).abs() <= cfg.converge_tol;
    // The last step at which each mode was outside the tolerance band around 1.
    let mut last_outside: Vec<Option<usize>> = initial.iter().map(|&v| (!near_one(v)).then_some(0)).collect();
    let mut max_rel_err: f64 = 0.0;
    let mut last_finite = initial.clone();
    // The spectrum three quarters into the run, to tell a slow trend from a stall at the end.
    let trend_step = cfg.steps - cfg.steps / 4;
    let mut quarter_back = initial.clone();
    let mut outcome = None;
    let mut step = 0;
    while step < cfg.steps {
        if stop() {
            return None;
        }
        step += 1;
        sim.step(&gram);
        let next = sim.gram_spectrum();
        let finite = sim.is_finite() && next.values.iter().all(|v| v.is_finite());
        if !finite {
            outcome = Some(Outcome::Diverged);
            break;
        }
        gram = next;
        last_finite.clone_from(&gram.values);
        if step == trend_step {
            quarter_back.clone_from(&gram.values);
        }
        for p in predicted.iter_mut() {
            *p = maps::step(cfg.loss, *p, cfg.alpha, cfg.sigma, cfg.lr);
        }
        let mut sorted_pred = predicted.clone();
        sorted_pred.sort_by(f64::total_cmp);
        for (&s, &p) in gram.values.iter().zip(&sorted_pred) {
            let in_range = |v: f64| (COMPARE_FLOOR..=COMPARE_CEILING).contains(&v);
            if in_range(s) && in_range(p) {
                max_rel_err = max_rel_err.max((s - p).abs() / p);
            }
        }
        for (lo, &v) in last_outside.iter_mut().zip(&gram.values) {
            if !near_one(v) {
                *lo = Some(step);
            }
        }
        let top = gram.values.last().copied().unwrap_or(0.0);
        let ended = if top > cfg.diverge_above {
            Some(Outcome::Diverged)
        } else if top < cfg.collapse_below {
            Some(Outcome::Collapsed)
        } else {
            None
        };
        if step % cfg.log_every == 0 || step == cfg.steps || ended.is_some() {
            log(step, &gram.values, &sim, &mut history);
        }
        if ended.is_some() {
            outcome = ended;
            break;
        }
    }
    let outcome = outcome.unwrap_or_else(|| classify_trend(&quarter_back, &last_finite, cfg.converge_tol));

    let tracked = Tracked { initial, last_finite, last_outside, max_rel_err };
    let metrics = outcome_metrics(cfg, outcome, step, &tracked);
    Some(Simulation { outcome, outcome_step: step, history, metrics })
}

/// What a simulation tracked along the way, for its metrics.
struct Tracked {
    initial: Vec<f64>,
    last_finite: Vec<f64>,
    /// The last step at which each mode was outside the tolerance band around 1.
    last_outside: Vec<Option<usize>>,
    /// Largest relative gap between the simulated and the predicted (Eqs. 5–8) spectrum.
    max_rel_err: f64,
}

/// The run's metrics from how it ended (`outcome` at `step`) and what was tracked.
fn outcome_metrics(cfg: &TheoryConfig, outcome: Outcome, step: usize, t: &Tracked) -> BTreeMap<String, f64> {
    let Tracked { initial, last_finite, last_outside, max_rel_err } = t;
    let near_one = |v: f64| (v - 1.0).abs() <= cfg.converge_tol;
    let m = cfg.n_out;
    let mut metrics = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        metrics.insert(k.to_string(), v);
    };
    put("outcome_step", step as f64);
    put("final_eig_min", last_finite[0]);
    put("final_eig_max", last_finite[m - 1]);
    put("theory_max_rel_err", *max_rel_err);
    put("modes_grew", last_finite.iter().zip(initial).filter(|(e, s)| e > s).count() as f64);
    put("modes_shrank", last_finite.iter().zip(initial).filter(|(e, s)| e < s).count() as f64);
    let converged: Vec<bool> = last_finite.iter().map(|&v| near_one(v)).collect();
    put("modes_converged", converged.iter().filter(|&&c| c).count() as f64);
    // Convergence steps are meaningful only for runs heading to the isotropic point.
    if matches!(outcome, Outcome::Converged | Outcome::Converging) {
        // Per-mode convergence step: the first step after which the mode stays within tolerance; a
        // mode not yet converged is censored at the run's length, so the spread is then a lower bound.
        let mode_steps: Vec<f64> = last_outside
            .iter()
            .zip(&converged)
            .map(|(lo, &c)| match (c, lo) {
                (false, _) => step as f64,
                (true, None) => 0.0,
                (true, Some(lo)) => (lo + 1) as f64,
            })
            .collect();
        let max = mode_steps.iter().cloned().fold(f64::MIN, f64::max);
        let min = mode_steps.iter().cloned().fold(f64::MAX, f64::min);
        put("mode_step_spread", max - min);
        put("mode_step_spread_censored", converged.iter().filter(|&&c| !c).count() as f64);
        if outcome == Outcome::Converged {
            put("steps_to_isotropy", max);
        }
    }
    metrics
}


/// The outcome of a run that ended finite and not collapsed, from its spectrum a quarter of the run
/// before the end (`earlier`) and at the end (`end`), both ascending.
fn classify_trend(earlier: &[f64], end: &[f64], tol: f64) -> Outcome {
    let near_one = |v: f64| (v - 1.0).abs() <= tol;
    if end.iter().all(|&v| near_one(v)) {
        return Outcome::Converged;
    }
    let toward_one = end.iter().zip(earlier).all(|(&e, &b)| near_one(e) || e.ln().abs() < b.ln().abs());
    if toward_one {
        return Outcome::Converging;
    }
    let shrinking = end.iter().zip(earlier).all(|(&e, &b)| e < b && e < 1.0 - tol);
    if shrinking {
        Outcome::Collapsing
    } else {
        Outcome::Unconverged
    }
}
