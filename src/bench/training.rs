//! Benchmarks of the deep-SSL hot paths: the training step of the table1 model (full width and width/4,
//! each in its own process so that its peak memory is its own), the augmentation pipeline, and the
//! DirectPred update; PyTorch's identical step (`bench/torch_reference.py`) in the same invocation when
//! a Python with torch is there.

use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{time_it, Timing};
use crate::data::augment::{views_batch, Pipeline};
use crate::data::Split;
use crate::spec::{Experiment, RunConfig};
use crate::ssl::config::SslConfig;
use crate::ssl::directpred::DirectPred;
use crate::ssl::step::Learner;
use crate::ssl::train::random_batch;

/// One measured training step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepBench {
    pub width: f64,
    pub batch: usize,
    pub parameters: usize,
    pub step: Timing,
    /// Images per second (two views per pair).
    pub images_per_s: f64,
    /// Peak resident memory of the measuring process (bytes).
    pub peak_rss: u64,
}

/// The benchmarked model: table1's `cifar10/simsiam/no_ema` cell of the `paper` profile (VGG11-BN,
/// projector 4096/256, DirectPred, momentum SGD) of `dataset` at `width` and `batch`.
pub fn table1_config(specs: &Path, dataset: crate::data::DatasetKind, width: f64, batch: usize) -> crate::Result<SslConfig> {
    let exp = Experiment::find("table1", specs)?;
    let cell = format!("{dataset}/simsiam/no_ema");
    let run = exp.runs("paper", Some(&[0]))?.into_iter().find(|r| r.cell == cell);
    match run.map(|r| r.config) {
        Some(RunConfig::Ssl(mut c)) => {
            c.width = width;
            c.batch = batch;
            Ok(c)
        }
        _ => Err(crate::Error::Usage(format!("table1 has no {cell} cell of profile paper"))),
    }
}

/// Times `reps` training steps of `cfg` in this process: [`Learner::step`], the step that trains, on
/// random images.
pub fn step(cfg: &SslConfig, reps: usize) -> candle_core::Result<StepBench> {
    let side = cfg.image_side();
    let mut learner = Learner::new(cfg, 0, side, 10, reps.max(1), &Device::Cpu)?;
    let (x1, x2, labels) = random_batch(cfg.batch, side, 10, &Device::Cpu)?;
    let mut err = None;
    let mut t_step = 0;
    let t = time_it(reps, || {
        if let Err(e) = learner.step(&x1, &x2, &labels, t_step) {
            err.get_or_insert(e);
        }
        t_step += 1;
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok(StepBench {
        width: cfg.width,
        batch: cfg.batch,
        parameters: learner.parameters(),
        images_per_s: (2 * cfg.batch) as f64 / t.median_s,
        step: t,
        peak_rss: peak_rss(),
    })
}

/// Peak resident set size of this process (VmHWM), 0 where /proc is missing.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Augmented pairs per second of the SimCLR pipeline on random images of side `side` (32: CIFAR-10,
/// 96: STL-10), batches of `batch`, all cores (as training prepares them).
pub fn augmentation(side: usize, batch: usize, reps: usize) -> f64 {
    let n = batch * 4;
    let mut rng = crate::rng::stream(0, "bench/augment");
    let pixels: Vec<u8> = (0..n * side * side * 3).map(|_| rand::Rng::random::<u8>(&mut rng)).collect();
    let split = Split { h: side, w: side, pixels, labels: vec![0; n] };
    let views = Pipeline::Simclr.views(side);
    let idx: Vec<usize> = (0..batch).collect();
    let mut epoch = 0;
    let t = time_it(reps, || {
        epoch += 1;
        std::hint::black_box(views_batch(&split, &idx, &views, 0, epoch, [0.5; 3], [0.25; 3]));
    });
    batch as f64 / t.median_s
}

/// Seconds of one step's DirectPred work as the training step does it with `dp_per_view` (the authors'
/// computation): for each of the two views, a correlation update of a `batch` × `dim` embedding and W_P
/// from an eigendecomposition.
pub fn predictor(batch: usize, dim: usize, reps: usize) -> candle_core::Result<Timing> {
    let z = Tensor::randn(0f32, 1.0, (batch, dim), &Device::Cpu)?;
    let mut dp = DirectPred::new(dim, 0.5, 0.5, 0.0);
    let mut err = None;
    let t = time_it(reps, || {
        if let Err(e) = dp.update(&z, &Device::Cpu).and_then(|_| dp.update(&z, &Device::Cpu)) {
            err.get_or_insert(e);
        }
    });
    err.map_or(Ok(t), Err)
}

/// PyTorch's identical step at `width`, from `bench/torch_reference.py`; `Err` says why there is none.
pub fn torch_step(repo: &Path, python: &str, width: f64, batch: usize, reps: usize) -> Result<StepBench, String> {
    let out = Command::new(python)
        .arg(repo.join("bench/torch_reference.py"))
        .args(["--width", &width.to_string(), "--batch", &batch.to_string(), "--reps", &reps.to_string()])
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    serde_json::from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes()).map_err(|e| e.to_string())
}
