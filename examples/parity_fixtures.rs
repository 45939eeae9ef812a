//! Writes the inputs of the PyTorch parity test: a few batches of augmented view pairs (generated images
//! through eigenssl's own augmentation) and a test batch, shared by every cell, as
//! `<out>/batches.safetensors`; and for every Table 1 cell of the `parity` profile its resolved config and
//! eigenssl's initial weights, as `<out>/<cell>/inputs.safetensors`.
//! `bench/torch_twin.py` then trains the authors' step on them and writes `expected.safetensors`;
//! `tests/parity.rs` checks eigenssl against those. Run both with `bench/make_parity_fixtures.sh`.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use eigenssl::data::augment::{plain_batch, views_batch};
use eigenssl::spec::{Experiment, RunConfig};
use eigenssl::ssl::step::Learner;

/// Optimiser steps each cell is checked over; the schedules see `STEPS_PER_EPOCH` steps per epoch, so
/// that the steps cover the warm-up's start, its peak and the cosine decay.
const STEPS: usize = 4;
const STEPS_PER_EPOCH: usize = 2;

fn main() -> Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).context("usage: parity_fixtures <out dir>")?);
    let exp = Experiment::find("table1", "experiments".as_ref())?;
    let data = eigenssl::data::synthetic();
    let device = Device::Cpu;
    let runs = exp.runs("parity", None)?;
    let Some(RunConfig::Ssl(first)) = runs.first().map(|r| &r.config) else { bail!("the parity profile plans no SSL run") };
    let (batch, augment, seed) = (first.batch, first.augment, runs[0].seed);
    let views = augment.views(32);
    let mut batches: Vec<(String, Tensor)> = Vec::new();
    for k in 0..STEPS {
        let idx: Vec<usize> = (k * batch..(k + 1) * batch).collect();
        let ([a, b], labels) = views_batch(&data.train, &idx, &views, seed, k, data.mean, data.std);
        let n = labels.len();
        batches.push((format!("x1/{k}"), Tensor::from_vec(a, (n, 3, 32, 32), &device)?));
        batches.push((format!("x2/{k}"), Tensor::from_vec(b, (n, 3, 32, 32), &device)?));
        batches.push((format!("labels/{k}"), Tensor::from_vec(labels, n, &device)?));
    }
    let test: Vec<usize> = (0..batch).collect();
    batches.push(("eval_x".into(), Tensor::from_vec(plain_batch(&data.test, &test, data.mean, data.std), (batch, 3, 32, 32), &device)?));
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let meta = HashMap::from([("steps".to_string(), STEPS.to_string())]);
    std::fs::write(out.join("batches.safetensors"), safetensors::serialize(batches.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))?)?;

    for run in &runs {
        let RunConfig::Ssl(cfg) = &run.config else { bail!("table1 has a non-SSL run") };
        if cfg.epochs * STEPS_PER_EPOCH < STEPS || (cfg.batch, cfg.augment, run.seed) != (batch, augment, seed) {
            bail!("the parity cells must share batch, augmentation and seed, and plan at least {STEPS} steps ({STEPS_PER_EPOCH} per epoch)");
        }
        let learner = Learner::new(cfg, run.seed, 32, data.classes, STEPS_PER_EPOCH, &device)?;
        let tensors: Vec<(String, Tensor)> = learner.online_vars().into_iter().map(|(n, v)| (format!("init/{n}"), v.as_tensor().clone())).collect();
        let meta = HashMap::from([
            ("config".to_string(), serde_json::to_string(cfg)?),
            ("cell".to_string(), run.cell.clone()),
            ("seed".to_string(), run.seed.to_string()),
            ("steps".to_string(), STEPS.to_string()),
            ("steps_per_epoch".to_string(), STEPS_PER_EPOCH.to_string()),
            ("classes".to_string(), data.classes.to_string()),
        ]);
        let dir = out.join(run.cell.replace('/', "_"));
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))?;
        std::fs::write(dir.join("inputs.safetensors"), bytes)?;
        println!("{}: {} tensors", dir.display(), tensors.len());
    }
    Ok(())
}
