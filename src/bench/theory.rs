//! Benchmark of one theory-engine step against the NumPy reference `bench/numpy_theory_step.py`.

use std::path::Path;
use std::process::Command;


use super::{time_it, Timing};
use crate::theory::{Loss, Nonlinearity, Predictor, Sampler, Simulator, TheoryConfig};

/// One benchmark case: a loss and nonlinearity at the paper's eigenvalue setting.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StepResult {
    pub case: String,
    pub eigenssl: Timing,
    /// The NumPy reference, when `python3` with NumPy is available.
    pub numpy: Option<Timing>,
    /// NumPy seconds / eigenssl seconds (medians).
    pub speedup: Option<f64>,
}

/// The paper's eigenvalue-panel configuration (N = 15, M = 10, B = 50 000).
pub fn paper_config(loss: Loss, nonlinearity: Nonlinearity, sampler: Sampler) -> TheoryConfig {
    TheoryConfig {
        loss,
        nonlinearity,
        n_in: 15,
        n_out: 10,
        batch: 50_000,
        sigma: 0.1,
        lr: 0.01,
        alpha: 1.0,
        predictor: Predictor::ClosedForm,
        sampler,
        steps: 1500,
        init_scale: 0.25,
        log_every: 15,
        eval_points: 0,
        eval_pool: 0,
        diverge_above: 1e6,
        collapse_below: 1e-8,
        converge_tol: 0.05,
    }
}

/// Seconds per step of eigenssl and of NumPy for each case; `python` is the interpreter to try.
pub fn steps(repo: &Path, python: &str, reps: usize) -> Vec<StepResult> {
    let cases = [
        (Loss::Simsiam, Nonlinearity::Linear, Sampler::Samples),
        (Loss::Simsiam, Nonlinearity::Linear, Sampler::Moments),
        (Loss::Simsiam, Nonlinearity::Relu, Sampler::Samples),
    ];
    cases
        .iter()
        .map(|&(loss, nl, sampler)| {
            let cfg = paper_config(loss, nl, sampler);
            let mut sim = Simulator::new(&cfg, 0);
            let ours = time_it(reps, || {
                let gram = sim.gram_spectrum();
                sim.step(&gram);
            });
            let numpy = numpy_step(repo, python, &cfg, reps);
            StepResult {
                case: format!("{loss:?}/{nl:?}/{sampler:?} N={} M={} B={}", cfg.n_in, cfg.n_out, cfg.batch)
                    .to_lowercase(),
                speedup: numpy.map(|n| n.median_s / ours.median_s),
                eigenssl: ours,
                numpy,
            }
        })
        .collect()
}

/// Standard normals per second of the sampler the engine uses (single thread).
pub fn normal_rate() -> f64 {
    let mut rng = crate::normal::FastRng::from_rng(&mut crate::rng::stream(0, "bench"));
    let mut buf = vec![0.0f64; 1 << 20];
    let t = time_it(5, || crate::normal::fill(&mut rng, &mut buf));
    buf.len() as f64 / t.median_s
}

fn numpy_step(repo: &Path, python: &str, cfg: &TheoryConfig, reps: usize) -> Option<Timing> {
    let script = repo.join("bench/numpy_theory_step.py");
    let out = Command::new(python)
        .arg(&script)
        .args(["--n-in", &cfg.n_in.to_string(), "--n-out", &cfg.n_out.to_string()])
        .args(["--batch", &cfg.batch.to_string(), "--loss", "simsiam"])
        .args(["--relu", if cfg.nonlinearity == Nonlinearity::Relu { "1" } else { "0" }])
        .args(["--steps", &reps.to_string()])
        // One core for both sides: the comparison is per core.
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).ok()
}
