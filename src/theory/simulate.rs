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
//! stored feature-major so the inner loops run over samples and vectorise.

use std::collections::BTreeMap;

use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::config::{Loss, Nonlinearity, Predictor, Sampler, TheoryConfig};
use super::moments;
use super::maps;
use super::predictor::{predictor, spectrum, Spectrum};
use crate::rng::{stream, StreamRng};

/// Samples per block: small enough that a block's buffers stay in L1/L2.
const BLOCK: usize = 256;
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

/// What a simulation logs every `log_every` steps (stored as f32: plenty for plots, half the bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TheoryHistory {
    pub steps: Vec<usize>,
    /// Eigenvalues of W Wᵀ, ascending, one row per logged step.
    pub eigenvalues: Vec<Vec<f32>>,
    /// W_t x_j of the fixed evaluation points: [logged step][point][coordinate].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trajectories: Vec<Vec<Vec<f32>>>,
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
    /// W, M × N row-major.
    w: Vec<f64>,
    data: StreamRng,
    /// Empirical correlation estimate (only for `Predictor::Empirical`).
    corr: Option<DMatrix<f64>>,
    eval: Vec<Vec<f64>>,
    buf: Buffers,
}

struct Buffers {
    x1: Vec<f64>,
    eps: Vec<f64>,
    h1: Vec<f64>,
    h2: Vec<f64>,
    z1: Vec<f64>,
    z2: Vec<f64>,
    e: Vec<f64>,
    c1: Vec<f64>,
    c2: Vec<f64>,
}

impl Buffers {
    fn new(n: usize, m: usize) -> Self {
        let v = |k: usize| vec![0.0; k * BLOCK];
        Buffers { x1: v(n), eps: v(n), h1: v(m), h2: v(m), z1: v(m), z2: v(m), e: v(m), c1: v(m), c2: v(m) }
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
        let w = (0..m * n).map(|_| init.sample::<f64, _>(StandardNormal) * cfg.init_scale).collect();
        let mut pool: Vec<Vec<f64>> =
            (0..cfg.eval_pool).map(|_| (0..n).map(|_| init.sample(StandardNormal)).collect()).collect();
        let norm2 = |x: &Vec<f64>| x.iter().map(|v| v * v).sum::<f64>();
        pool.sort_by(|a, b| norm2(b).total_cmp(&norm2(a)));
        pool.truncate(cfg.eval_points);
        Simulator {
            cfg: cfg.clone(),
            w,
            data: stream(data_seed, "theory/data"),
            corr: None,
            eval: pool,
            buf: Buffers::new(n, m),
        }
    }

    /// W as an M × N matrix.
    pub fn weights(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.cfg.n_out, self.cfg.n_in, &self.w)
    }

    /// Spectrum of W Wᵀ.
    pub fn gram_spectrum(&self) -> Spectrum {
        let w = self.weights();
        spectrum(&(&w * w.transpose()))
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
        let (m, n) = (self.cfg.n_out, self.cfg.n_in);
        // Row-major copy of W_P for the inner loops.
        let wp: Vec<f64> = (0..m * m).map(|i| wp[(i / m, i % m)]).collect();
        let mut grad = vec![0.0; m * n];
        let mut rng = self.data.clone();
        let mut left = self.cfg.batch;
        while left > 0 {
            let len = left.min(BLOCK);
            self.block_gradient(&mut rng, &wp, len, &mut grad);
            left -= len;
        }
        self.data = rng;
        let scale = self.cfg.lr / self.cfg.batch as f64;
        for (w, g) in self.w.iter_mut().zip(&grad) {
            *w -= scale * g;
        }
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
        let (n, batch) = (self.cfg.n_in, self.cfg.batch);
        let s = moments::draw(&mut self.data, n, batch);
        let w = self.weights();
        let wp = match self.cfg.predictor {
            Predictor::ClosedForm => predictor(gram, self.cfg.alpha),
            Predictor::Empirical { tau } => self.predictor_from_correlation(&w * &s.xx * w.transpose(), tau),
        };
        let g = moments::gradient(self.cfg.loss, &w, &wp, self.cfg.sigma, &s);
        let w = w - g * self.cfg.lr;
        for r in 0..self.cfg.n_out {
            for c in 0..n {
                self.w[r * n + c] = w[(r, c)];
            }
        }
    }

    /// Draws `len` input pairs into the block buffers and computes h₁ = W x₁, h₂ = W x₂ and z = f(h).
    fn forward_block(&mut self, rng: &mut StreamRng, len: usize) {
        let (m, n, sigma) = (self.cfg.n_out, self.cfg.n_in, self.cfg.sigma);
        let b = &mut self.buf;
        for f in 0..n {
            fill_normal(rng, &mut b.x1[f * BLOCK..f * BLOCK + len]);
            fill_normal(rng, &mut b.eps[f * BLOCK..f * BLOCK + len]);
        }
        matmul(&self.w, m, n, &b.x1, &mut b.h1, len);
        // h₂ = W (x₁ + σ ε) = h₁ + σ W ε.
        matmul(&self.w, m, n, &b.eps, &mut b.h2, len);
        for r in 0..m {
            let (h1, h2) = (&b.h1[r * BLOCK..r * BLOCK + len], &mut b.h2[r * BLOCK..r * BLOCK + len]);
            for (y, x) in h2.iter_mut().zip(h1) {
                *y = x + sigma * *y;
            }
        }
        let act = |h: &[f64], z: &mut [f64]| match self.cfg.nonlinearity {
            Nonlinearity::Linear => z.copy_from_slice(h),
            Nonlinearity::Relu => z.iter_mut().zip(h).for_each(|(z, h)| *z = h.max(0.0)),
        };
        for r in 0..m {
            let s = r * BLOCK..r * BLOCK + len;
            act(&b.h1[s.clone()], &mut b.z1[s.clone()]);
            act(&b.h2[s.clone()], &mut b.z2[s]);
        }
    }

    fn batch_correlation(&mut self, rng: &mut StreamRng) -> DMatrix<f64> {
        let m = self.cfg.n_out;
        let mut c = DMatrix::zeros(m, m);
        let mut left = self.cfg.batch;
        while left > 0 {
            let len = left.min(BLOCK);
            self.forward_block(rng, len);
            let z = &self.buf.z1;
            for i in 0..m {
                for j in 0..=i {
                    let v = dot(&z[i * BLOCK..i * BLOCK + len], &z[j * BLOCK..j * BLOCK + len]);
                    c[(i, j)] += v;
                    if i != j {
                        c[(j, i)] += v;
                    }
                }
            }
            left -= len;
        }
        c / self.cfg.batch as f64
    }

    /// Adds the summed gradient of one block of `len` samples to `grad` (M × N row-major).
    fn block_gradient(&mut self, rng: &mut StreamRng, wp: &[f64], len: usize, grad: &mut [f64]) {
        self.forward_block(rng, len);
        let (m, n, sigma) = (self.cfg.n_out, self.cfg.n_in, self.cfg.sigma);
        let relu = self.cfg.nonlinearity == Nonlinearity::Relu;
        let loss = self.cfg.loss;
        let b = &mut self.buf;
        // e = W_P z₁ − z₂
        matmul(wp, m, m, &b.z1, &mut b.e, len);
        for (e, z2) in b.e.iter_mut().zip(&b.z2) {
            *e -= z2;
        }
        // Coefficients a₁ (of x₁ᵀ) and a₂ (of x₂ᵀ); G = (a₁ + a₂) x₁ᵀ + σ a₂ εᵀ since x₂ = x₁ + σε.
        let needs_wpe = matches!(loss, Loss::Simsiam | Loss::NoStopGrad);
        if needs_wpe {
            matmul(wp, m, m, &b.e, &mut b.c1, len); // W_P symmetric: W_Pᵀe = W_P e
        }
        let uses_x2 = matches!(loss, Loss::NoStopGrad | Loss::WrongSideStopGrad);
        for i in (0..m).flat_map(|r| r * BLOCK..r * BLOCK + len) {
            let d1 = if relu && b.h1[i] <= 0.0 { 0.0 } else { 1.0 };
            let d2 = if relu && b.h2[i] <= 0.0 { 0.0 } else { 1.0 };
            let a1 = match loss {
                Loss::Simsiam | Loss::NoStopGrad => d1 * b.c1[i],
                Loss::Isoloss => d1 * b.e[i],
                Loss::WrongSideStopGrad => 0.0,
            };
            let a2 = if uses_x2 { -d2 * b.e[i] } else { 0.0 };
            b.c1[i] = a1 + a2;
            b.c2[i] = sigma * a2;
        }
        for r in 0..m {
            let c1 = &b.c1[r * BLOCK..r * BLOCK + len];
            let c2 = &b.c2[r * BLOCK..r * BLOCK + len];
            for f in 0..n {
                let x1 = &b.x1[f * BLOCK..f * BLOCK + len];
                let mut g = dot(c1, x1);
                if uses_x2 {
                    g += dot(c2, &b.eps[f * BLOCK..f * BLOCK + len]);
                }
                grad[r * n + f] += g;
            }
        }
    }

    /// W x_j of every evaluation point.
    pub fn eval_positions(&self) -> Vec<Vec<f32>> {
        let (m, n) = (self.cfg.n_out, self.cfg.n_in);
        self.eval
            .iter()
            .map(|x| (0..m).map(|r| (0..n).map(|c| self.w[r * n + c] * x[c]).sum::<f64>() as f32).collect())
            .collect()
    }
}

fn fill_normal(rng: &mut StreamRng, out: &mut [f64]) {
    for v in out {
        *v = rng.sample(StandardNormal);
    }
}

/// out[r][b] = Σ_c a[r][c] x[c][b] for b < len; a is rows × cols row-major, x and out feature-major.
fn matmul(a: &[f64], rows: usize, cols: usize, x: &[f64], out: &mut [f64], len: usize) {
    for r in 0..rows {
        let o = &mut out[r * BLOCK..r * BLOCK + len];
        o.fill(0.0);
        for c in 0..cols {
            let k = a[r * cols + c];
            for (o, x) in o.iter_mut().zip(&x[c * BLOCK..c * BLOCK + len]) {
                *o += k * x;
            }
        }
    }
}

/// Dot product with eight partial sums, so the compiler can vectorise it.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Runs a whole simulation and derives its metrics.
pub fn simulate(cfg: &TheoryConfig, seed: u64) -> Simulation {
    let mut sim = Simulator::new(cfg, seed);
    let m = cfg.n_out;
    let mut gram = sim.gram_spectrum();
    let initial = gram.values.clone();
    let mut predicted = initial.clone();
    let mut history = TheoryHistory::default();
    let log = |step: usize, values: &[f64], sim: &Simulator, h: &mut TheoryHistory| {
        h.steps.push(step);
        h.eigenvalues.push(values.iter().map(|&v| v as f32).collect());
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
        step += 1;
        sim.step(&gram);
        let next = sim.gram_spectrum();
        let finite = sim.w.iter().all(|v| v.is_finite()) && next.values.iter().all(|v| v.is_finite());
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

    let mut metrics = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        metrics.insert(k.to_string(), v);
    };
    put("outcome_step", step as f64);
    put("final_eig_min", last_finite[0]);
    put("final_eig_max", last_finite[m - 1]);
    put("theory_max_rel_err", max_rel_err);
    put("modes_grew", last_finite.iter().zip(&initial).filter(|(e, s)| e > s).count() as f64);
    put("modes_shrank", last_finite.iter().zip(&initial).filter(|(e, s)| e < s).count() as f64);
    let converged: Vec<bool> = last_finite.iter().map(|&v| near_one(v)).collect();
    put("modes_converged", converged.iter().filter(|&&c| c).count() as f64);
    if !matches!(outcome, Outcome::Collapsed | Outcome::Diverged) {
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
    Simulation { outcome, outcome_step: step, history, metrics }
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
