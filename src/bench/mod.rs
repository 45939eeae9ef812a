//! Benchmarks: measurement of engine hot paths, with reference implementations (NumPy, PyTorch) run in
//! the same invocation so that every figure is a ratio measured side by side.

pub mod report;
pub mod theory;
pub mod training;

use std::time::Instant;

/// Median and minimum seconds of `reps` calls of `f`, after one warm-up call.
pub fn time_it(reps: usize, mut f: impl FnMut()) -> Timing {
    f();
    let mut t: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    Timing { median_s: t[t.len() / 2], min_s: t[0], reps: t.len() }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    pub median_s: f64,
    pub min_s: f64,
    #[serde(default)]
    pub reps: usize,
}

/// The theory engine's measurements.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TheoryBench {
    pub normal_samples_per_s: f64,
    pub steps: Vec<theory::StepResult>,
}

/// Everything one `bench` run measured: plain data, written as `bench.json` beside `bench.md`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    /// The build's commit (and whether its sources differed from it).
    pub commit: String,
    pub dirty: bool,
    pub started: String,
    /// `None` with `--theory-only`.
    pub training: Option<training::TrainingBench>,
    pub theory: TheoryBench,
}
