//! Benchmarks: measurement of engine hot paths, with reference implementations (NumPy, PyTorch) run in
//! the same invocation so that every figure is a ratio measured side by side.

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
