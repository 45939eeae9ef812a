//! Benchmarks: measurement of engine hot paths, with reference implementations (NumPy, PyTorch) run in
//! the same invocation so that every figure is a ratio measured side by side.

pub mod machine;
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

/// One part of a bench file with the build that measured it: parts are measured by different commands
/// (`bench`, `bench --theory-only`) and kept side by side, each with its own commit and date.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Section<T> {
    /// The build's commit (and whether its sources differed from it).
    pub commit: String,
    pub dirty: bool,
    pub started: String,
    pub measured: T,
}

impl<T> Section<T> {
    /// `measured` by this build, started at `started`.
    pub fn now(started: String, measured: T) -> Self {
        use crate::harness::provenance;
        Section { commit: provenance::BUILD_COMMIT.to_string(), dirty: provenance::source_diff().is_some(), started, measured }
    }
}

/// Everything measured on one CPU model: plain data, written as `bench.json` beside `bench.md` in the
/// model's own folder ([`machine::Machine::slug`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    pub machine: machine::Machine,
    /// The training measurements, `None` until a `bench` without `--theory-only` ran on this model.
    pub training: Option<Section<training::TrainingBench>>,
    pub theory: Option<Section<TheoryBench>>,
}

impl BenchReport {
    /// `stored` (this model's earlier file, if any) with the parts measured now put in place of its own:
    /// a partial bench never erases the part it did not measure.
    pub fn merge(stored: Option<BenchReport>, machine: machine::Machine, training: Option<Section<training::TrainingBench>>, theory: Option<Section<TheoryBench>>) -> Self {
        let (old_training, old_theory) = stored.map_or((None, None), |s| (s.training, s.theory));
        BenchReport { machine, training: training.or(old_training), theory: theory.or(old_theory) }
    }
}
