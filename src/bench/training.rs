//! Benchmarks of the deep-SSL hot paths: the training step of the table1 model (widths 1/8, 1/4 and 1,
//! each in its own process so that its peak memory is its own), the augmentation pipeline, the
//! DirectPred update, and one whole epoch of the `cpu` profile; PyTorch's identical step
//! (`bench/torch_reference.py`) in the same invocation when a Python with torch is there, alternating
//! with ours round by round so that both see the same machine.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_cpu_kernels::SimdLevel;
use serde::{Deserialize, Serialize};

use super::{time_it, Timing};
use crate::data::augment::{views_batch, Pipeline};
use crate::data::{Dataset, DatasetKind, Split};
use crate::precision::Precision;
use crate::spec::{Experiment, RunConfig};
use crate::ssl::config::SslConfig;
use crate::ssl::directpred::DirectPred;
use crate::ssl::Kernels;
use crate::ssl::step::Learner;
use crate::ssl::train::{random_batch, train, Progress, TrainControl};

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
    /// Threads the step ran on.
    #[serde(default)]
    pub threads: usize,
    /// PyTorch's version, in PyTorch's measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<String>,
    /// The kernels that computed our step (PyTorch's measurements say `native`).
    #[serde(default)]
    pub kernels: Kernels,
    /// The precision of f32 matrix products (and PyTorch's convolutions) in the step.
    #[serde(default)]
    pub precision: Precision,
}

/// The config of table1's `cell` in `profile`, seed 0.
fn table1_cell(specs: &Path, cell: &str, profile: &str) -> crate::Result<SslConfig> {
    let exp = Experiment::find("table1", specs)?;
    let run = exp.runs(profile, Some(&[0]))?.into_iter().find(|r| r.cell == cell);
    match run.map(|r| r.config) {
        Some(RunConfig::Ssl(c)) => Ok(c),
        _ => Err(crate::Error::Usage(format!("table1 has no {cell} cell of profile {profile}"))),
    }
}

/// The benchmarked model: table1's `cifar10/simsiam/no_ema` cell of the `paper` profile (VGG11-BN,
/// projector 4096/256, DirectPred, momentum SGD) of `dataset` at `width` and `batch`, computed by `kernels`.
pub fn table1_config(specs: &Path, dataset: DatasetKind, width: f64, batch: usize, kernels: Kernels) -> crate::Result<SslConfig> {
    let mut c = table1_cell(specs, &format!("{dataset}/simsiam/no_ema"), "paper")?;
    c.width = width;
    c.batch = batch;
    c.kernels = kernels;
    Ok(c)
}

/// Times `reps` training steps of `cfg` in this process on `device`: [`Learner::step`], the step that
/// trains, on random images (each step waits for the device to finish).
pub fn step(cfg: &SslConfig, reps: usize, device: &Device) -> candle_core::Result<StepBench> {
    let side = cfg.image_side();
    let mut learner = Learner::new(cfg, 0, side, 10, reps.max(1), device)?;
    let (x1, x2, labels) = random_batch(cfg.batch, side, 10, device)?;
    let mut err = None;
    let mut t_step = 0;
    let t = time_it(reps, || {
        if let Err(e) = learner.step(&x1, &x2, &labels, t_step).and_then(|_| device.synchronize()) {
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
        threads: rayon::current_num_threads(),
        torch: None,
        kernels: cfg.kernels.effective(device),
        precision: cfg.precision.effective_on(device),
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
/// computation): each of the two views' `batch` × `dim` embeddings folded into C, and W_P of C after
/// each view from an eigendecomposition ([`DirectPred::update_views`]: the two in parallel).
pub fn predictor(batch: usize, dim: usize, reps: usize) -> candle_core::Result<Timing> {
    let z = Tensor::randn(0f32, 1.0, (batch, dim), &Device::Cpu)?;
    let views = [z.clone(), z];
    let mut dp = DirectPred::new(dim, 0.5, 0.5, 0.0);
    let mut err = None;
    let t = time_it(reps, || {
        if let Err(e) = dp.update_views(&views, &Device::Cpu) {
            err.get_or_insert(e);
        }
    });
    err.map_or(Ok(t), Err)
}

/// Our step of `dataset`'s model at `width` computed by `kernels`, timed by `exe bench-step` in a process
/// of its own (so that its peak memory is its own).
#[allow(clippy::too_many_arguments)]
pub fn step_in_process(exe: &Path, specs: &Path, dataset: DatasetKind, width: f64, batch: usize, reps: usize, kernels: Kernels) -> Result<StepBench, String> {
    let out = Command::new(exe)
        .arg("--specs")
        .arg(specs)
        .args(["bench-step", "--dataset", dataset.name(), "--width", &width.to_string(), "--batch", &batch.to_string()])
        .args(["--reps", &reps.to_string(), "--kernels", kernels.name()])
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("bench-step ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bench-step output: {e}"))
}

/// Our step and PyTorch's at one width, measured in alternating rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepComparison {
    pub width: f64,
    pub batch: usize,
    /// One measurement (a median over `reps` steps) per round, ours and PyTorch's.
    pub ours: Vec<StepBench>,
    pub torch: Vec<StepBench>,
    /// Why there is no PyTorch measurement, where there is none.
    pub torch_missing: Option<String>,
}

impl StepComparison {
    /// Our img/s over PyTorch's, round by round.
    pub fn ratios(&self) -> Vec<f64> {
        self.ours.iter().zip(&self.torch).map(|(o, t)| o.images_per_s / t.images_per_s).collect()
    }

    /// The median of the rounds' ratios.
    pub fn ratio(&self) -> Option<f64> {
        let mut r = self.ratios();
        r.sort_by(f64::total_cmp);
        r.get(r.len() / 2).copied()
    }

    /// The 95 % confidence interval of that median (distribution-free, from the rounds' order statistics);
    /// `None` below 6 rounds.
    pub fn ratio_interval(&self) -> Option<(f64, f64)> {
        crate::stats::median_interval(&self.ratios(), RATIO_CONFIDENCE)
    }
}

/// Confidence of [`StepComparison::ratio_interval`].
pub const RATIO_CONFIDENCE: f64 = 0.95;

/// The median round's measurement (by img/s).
pub fn median_round(rounds: &[StepBench]) -> Option<&StepBench> {
    let mut sorted: Vec<&StepBench> = rounds.iter().collect();
    sorted.sort_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s));
    sorted.get(sorted.len() / 2).copied()
}

/// Our step (computed by `s.kernels`) and PyTorch's at `width`: `s.rounds` rounds, each timing `s.reps`
/// steps of ours, then as many of PyTorch's, each in a fresh process.
pub fn compare_step(s: &TrainingBenchSetup, width: f64) -> Result<StepComparison, String> {
    let (exe, specs, repo, python, batch, reps) = (s.exe, s.specs, s.repo, s.python, s.batch, s.reps);
    let mut c = StepComparison { width, batch, ours: Vec::new(), torch: Vec::new(), torch_missing: None };
    for _ in 0..s.rounds.max(1) {
        c.ours.push(step_in_process(exe, specs, DatasetKind::Cifar10, width, batch, reps, s.kernels)?);
        if c.torch_missing.is_none() {
            match torch_step(repo, python, width, batch, reps) {
                Ok(t) => c.torch.push(t),
                Err(why) => c.torch_missing = Some(why),
            }
        }
    }
    Ok(c)
}

/// One whole epoch of a `cpu`-profile run, as training runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochBench {
    /// The table1 cell and profile whose config ran (one epoch, on random images of its data's size).
    pub cell: String,
    pub profile: String,
    pub width: f64,
    pub batch: usize,
    /// Training images (the profile's subset) and steps of the epoch.
    pub images: usize,
    pub steps: usize,
    /// Threads the epoch ran on.
    pub threads: usize,
    /// Seconds of the epoch: augmentation, steps (backbone, projector, predictor, loss, readout, EMA
    /// target) and the epoch's closing readout test.
    pub epoch_s: f64,
    /// Augmented images (two views per pair) trained on per second of the epoch.
    pub images_per_s: f64,
    /// Seconds of the offline evaluations that end a run (k-NN and linear probe), once per run.
    pub offline_eval_s: f64,
}

/// Random images shaped like `kind`'s, `train` and `test` of them, 10 classes: a run costs the same on
/// them as on the real data, which a benchmark cannot count on having.
fn random_dataset(kind: DatasetKind, train: usize, test: usize) -> Dataset {
    let side = kind.image_side();
    let mut rng = crate::rng::stream(0, "bench/epoch-data");
    let mut split = |n: usize| Split {
        h: side,
        w: side,
        pixels: (0..n * side * side * 3).map(|_| rand::Rng::random::<u8>(&mut rng)).collect(),
        labels: (0..n).map(|i| (i % 10) as i64).collect(),
    };
    Dataset { kind, train: split(train), test: split(test), classes: 10, mean: [0.5; 3], std: [0.25; 3], source: "<random>".into() }
}

/// Times one epoch of table1's `cell` in `profile` (seed 0) through [`train`], the function every run
/// trains with, on random images as many as the profile's subsets, on this thread's rayon pool.
pub fn epoch(specs: &Path, cell: &str, profile: &str) -> crate::Result<EpochBench> {
    let mut cfg = table1_cell(specs, cell, profile)?;
    cfg.epochs = 1;
    cfg.warmup_epochs = cfg.warmup_epochs.min(1);
    let test = if cfg.test_subset == 0 { cfg.train_images() / 5 } else { cfg.test_subset };
    let data = random_dataset(cfg.dataset, cfg.train_images(), test);
    let epoch_s = std::sync::Mutex::new(None);
    let progress = |p: &Progress| {
        if p.epoch == p.epochs {
            if let Ok(mut e) = epoch_s.lock() {
                *e = p.seconds_per_epoch;
            }
        }
    };
    let ctl = TrainControl { progress: &progress, ..TrainControl::none() };
    let t0 = Instant::now();
    train(&cfg, 0, &data, &Device::Cpu, &ctl).map_err(|e| crate::Error::Environment(format!("bench epoch: {e}")))?;
    let total = t0.elapsed().as_secs_f64();
    let epoch_s = epoch_s.into_inner().ok().flatten().unwrap_or(total);
    let steps = cfg.train_images() / cfg.batch;
    Ok(EpochBench {
        cell: cell.to_string(),
        profile: profile.to_string(),
        width: cfg.width,
        batch: cfg.batch,
        images: cfg.train_images(),
        steps,
        threads: rayon::current_num_threads(),
        epoch_s,
        images_per_s: (2 * steps * cfg.batch) as f64 / epoch_s,
        offline_eval_s: (total - epoch_s).max(0.0),
    })
}

/// Augmentation throughput at one image size, beside what the width/4 step at that size consumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AugmentBench {
    pub dataset: DatasetKind,
    pub side: usize,
    pub pairs_per_s: f64,
    /// Pairs per second the width/4 training step at this size consumes.
    pub step_pairs_per_s: f64,
}

/// Everything `bench` measures of training, as plain data (written as JSON beside its markdown).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingBench {
    /// Steps timed per measurement, and alternating rounds of ours and PyTorch's.
    pub reps: usize,
    pub rounds: usize,
    /// The kernels of our rounds.
    #[serde(default)]
    pub kernels: Kernels,
    /// Width 1/8 (the `cpu` profile's), width/4 and full width, ours beside PyTorch's.
    pub steps: Vec<StepComparison>,
    /// With native rounds: the step by candle's ops (the path CUDA and Metal take) at widths 1/8 and 1/4,
    /// one measurement each, after the rounds (full width needs more memory on that path than a CPU
    /// machine of this suite has: it is GPU work).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic: Vec<StepBench>,
    /// Why a generic measurement is missing, where one is (the others are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_missing: Option<String>,
    /// The width/4 step at STL-10's 96 px.
    pub stl10_step: StepBench,
    pub augmentation: Vec<AugmentBench>,
    /// One step's DirectPred work (two views), batch × 256 embeddings.
    pub directpred: Timing,
    pub epoch: EpochBench,
}

/// The width the STL-10 step, the augmentation and the DirectPred share are measured against.
pub const REFERENCE_WIDTH: f64 = 0.25;

impl TrainingBench {
    /// Our median round at [`REFERENCE_WIDTH`].
    pub fn quarter_width(&self) -> Option<&StepBench> {
        self.steps.iter().find(|c| c.width == REFERENCE_WIDTH).and_then(|c| median_round(&c.ours))
    }
}

/// What `bench` sets for the training measurements.
#[derive(Debug, Clone)]
pub struct TrainingBenchSetup<'a> {
    /// This binary (the step is timed by its `bench-step` in a fresh process).
    pub exe: &'a Path,
    pub specs: &'a Path,
    /// The repository, for `bench/torch_reference.py`.
    pub repo: &'a Path,
    pub python: &'a str,
    pub batch: usize,
    pub reps: usize,
    pub rounds: usize,
    /// What computes our step in the rounds against PyTorch (`bench --kernels`).
    pub kernels: Kernels,
}

/// Measures everything of [`TrainingBench`]; `say` hears of each part as it starts (a full-width round
/// takes a minute on 2 cores).
pub fn measure(s: &TrainingBenchSetup, say: &dyn Fn(&str)) -> crate::Result<TrainingBench> {
    let failed = |what: &str, why: String| crate::Error::Environment(format!("bench, {what}: {why}"));
    let mut steps = Vec::new();
    const WIDTHS: [f64; 3] = [0.125, REFERENCE_WIDTH, 1.0];
    for width in WIDTHS {
        say(&format!("training step at width {width} ({} kernels): {} round(s) of {} steps, ours then PyTorch's", s.kernels, s.rounds, s.reps));
        steps.push(compare_step(s, width).map_err(|e| failed("step", e))?);
    }
    let (mut generic, mut generic_missing) = (Vec::new(), None);
    if s.kernels == Kernels::Native {
        for width in [0.125, REFERENCE_WIDTH] {
            say(&format!("training step at width {width} by candle's ops (the GPUs' path): {} steps", s.reps));
            match step_in_process(s.exe, s.specs, DatasetKind::Cifar10, width, s.batch, s.reps, Kernels::Candle) {
                Ok(m) => generic.push(m),
                Err(why) => {
                    // A failure here (e.g. the memory it needs) costs this comparison, not the bench.
                    generic_missing = Some(format!("width {width}: {why}"));
                    break;
                }
            }
        }
    }
    say("training step at STL-10's 96 px");
    let stl10_step = step_in_process(s.exe, s.specs, DatasetKind::Stl10, REFERENCE_WIDTH, s.batch, s.reps, s.kernels).map_err(|e| failed("STL-10 step", e))?;
    let quarter = steps
        .iter()
        .find(|c| c.width == REFERENCE_WIDTH)
        .and_then(|c| median_round(&c.ours))
        .cloned()
        .ok_or_else(|| failed("step", "no measurement".into()))?;
    say("augmentation");
    let augmentation = [(DatasetKind::Cifar10, &quarter), (DatasetKind::Stl10, &stl10_step)]
        .into_iter()
        .map(|(dataset, step)| {
            let side = dataset.image_side();
            AugmentBench { dataset, side, pairs_per_s: augmentation(side, s.batch, 5), step_pairs_per_s: step.images_per_s / 2.0 }
        })
        .collect();
    let directpred = predictor(s.batch, 256, 20).map_err(|e| failed("DirectPred", e.to_string()))?;
    say("one epoch of the cpu profile (table1 cifar10/simsiam/ema)");
    let epoch = epoch(s.specs, "cifar10/simsiam/ema", "cpu")?;
    Ok(TrainingBench {
        reps: s.reps,
        rounds: s.rounds,
        kernels: s.kernels,
        steps,
        generic,
        generic_missing,
        stl10_step,
        augmentation,
        directpred,
        epoch,
    })
}

/// What stops PyTorch at AVX2 (oneDNN's convolutions, ATen's element-wise kernels, MKL's matrix
/// products), set for it where our build is capped at AVX2 on an AVX-512 CPU, so that both stand in for
/// a CPU without AVX-512.
pub const TORCH_AVX2_ENV: [(&str, &str); 3] =
    [("ONEDNN_MAX_CPU_ISA", "AVX2"), ("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_ENABLE_INSTRUCTIONS", "AVX2")];

/// PyTorch's identical step at `width`, from `bench/torch_reference.py`; `Err` says why there is none.
pub fn torch_step(repo: &Path, python: &str, width: f64, batch: usize, reps: usize) -> Result<StepBench, String> {
    let capped = SimdLevel::in_use() != SimdLevel::of_cpu();
    let out = Command::new(python)
        .envs(TORCH_AVX2_ENV.into_iter().filter(|_| capped))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(images_per_s: f64) -> StepBench {
        let step = Timing { median_s: 256.0 / images_per_s, min_s: 256.0 / images_per_s, reps: 10 };
        StepBench { width: 0.25, batch: 128, parameters: 1, step, images_per_s, peak_rss: 0, threads: 2, torch: None, kernels: Kernels::Native, precision: Precision::F32 }
    }

    /// Round-by-round ratios, their median and its interval: PyTorch at 1000 img/s in every round, ours
    /// at 500 + 50·i in round i.
    #[test]
    fn the_ratio_is_the_median_round_with_an_interval_from_six_rounds() {
        let rounds = |n: usize| StepComparison {
            width: 0.25,
            batch: 128,
            ours: (0..n).map(|i| measured(500.0 + 50.0 * i as f64)).collect(),
            torch: (0..n).map(|_| measured(1000.0)).collect(),
            torch_missing: None,
        };
        let five = rounds(5);
        assert_eq!(five.ratios(), vec![0.5, 0.55, 0.6, 0.65, 0.7]);
        assert_eq!(five.ratio(), Some(0.6));
        assert_eq!(five.ratio_interval(), None, "5 rounds cannot give 95 %");
        // n = 9: [x(2), x(8)].
        let nine = rounds(9);
        assert_eq!(nine.ratio(), Some(0.7));
        assert_eq!(nine.ratio_interval(), Some((0.55, 0.85)));
    }
}
