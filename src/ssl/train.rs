//! The deep-SSL training loop of Table 1: epochs of [`Learner::step`] over augmented view pairs, the
//! online readout's test top-1 after each epoch (the reported metric: its value after the last epoch),
//! the predictor's spectrum and the collapse check, checkpoints, and stopping on request.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use candle_core::{Device, Tensor, D};
use rand::seq::SliceRandom;

use super::checkpoint::{self, TrainState, CHECKPOINT_SCHEMA};
use super::collapse::collapsed_since;
use super::config::SslConfig;
use super::eval::{self, Protocol};
use super::step::{Learner, Step};
use crate::data::augment::{plain_batch, views_batch};
use crate::data::Dataset;
use crate::rng::stream;
use crate::stats::round_sig5;


pub use super::history::SslHistory;

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SslOutcome {
    Finished,
    /// Non-finite loss at (epoch, step).
    Diverged { epoch: usize, step: usize },
    /// Trained to the end, but the representation had collapsed ([`super::collapse`]) from the end of
    /// `epoch` (0-based) on.
    Collapsed { epoch: usize },
    /// Stopped on request after `batch` batches of `epoch`, with a checkpoint to resume from.
    Interrupted { epoch: usize, batch: usize },
}

/// How the caller steers a run: checkpoints, stopping, progress.
pub struct TrainControl<'a> {
    /// Resume from this file if it holds a checkpoint of this run, and write one to it after every
    /// epoch and on a stop. `None`: no checkpoints.
    pub checkpoint: Option<&'a Path>,
    /// Identifies the run (spec hash and seed) in its checkpoints.
    pub tag: &'a str,
    /// Polled after every step: `true` stops the run there (with a checkpoint).
    pub stop: &'a dyn Fn() -> bool,
    /// Receives warnings (a checkpoint that could not be resumed).
    pub notice: &'a dyn Fn(&str),
    /// Receives where the run stands after every step and every epoch (cheap calls: keep it so).
    pub progress: &'a dyn Fn(&Progress),
    /// Keep the final backbone and projector in this file ([`super::weights`]). `None`: not kept.
    pub weights: Option<&'a Path>,
}

impl TrainControl<'_> {
    /// No checkpoints, never stops, silent.
    pub fn none() -> TrainControl<'static> {
        TrainControl { checkpoint: None, tag: "", stop: &|| false, notice: &|_| {}, progress: &|_| {}, weights: None }
    }
}

pub struct SslResult {
    pub outcome: SslOutcome,
    pub history: SslHistory,
    pub metrics: BTreeMap<String, f64>,
    /// sha256 of the kept weights file, when [`TrainControl::weights`] asked for one.
    pub weights_sha256: Option<String>,
    /// Where the run was resumed from checkpoints: (epoch in progress, 0-based; batches done).
    pub resumed_at: Vec<(usize, usize)>,
}

/// (max, min, participation ratio) of a spectrum; all `None` for an empty one.
fn spectrum_stats(eigs: &[f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    if eigs.is_empty() {
        return (None, None, None);
    }
    let max = eigs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = eigs.iter().cloned().fold(f64::INFINITY, f64::min);
    let s: f64 = eigs.iter().map(|v| v.max(0.0)).sum();
    let s2: f64 = eigs.iter().map(|v| v.max(0.0).powi(2)).sum();
    (Some(max), Some(min), Some(if s2 > 0.0 { s * s / s2 } else { 0.0 }))
}

/// `n` indices of `0..len` drawn by a fixed permutation (all of them, in order, for n = 0 or n ≥ len).
pub fn subset(len: usize, n: usize, name: &str) -> Vec<usize> {
    if n == 0 || n >= len {
        return (0..len).collect();
    }
    let mut idx: Vec<usize> = (0..len).collect();
    idx.shuffle(&mut stream(0, name));
    idx.truncate(n);
    idx.sort_unstable();
    idx
}

/// Top-1 (%) of the readout on the test split, backbone in eval mode.
fn evaluate(learner: &mut Learner, data: &Dataset, idx: &[usize], batch: usize, device: &Device) -> candle_core::Result<f64> {
    let (h, w) = (data.test.h, data.test.w);
    let mut correct = 0usize;
    for chunk in idx.chunks(batch) {
        let x = Tensor::from_vec(plain_batch(&data.test, chunk, data.mean, data.std), (chunk.len(), 3, h, w), device)?;
        let pred = learner.evaluate(&x)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        correct += pred.iter().zip(chunk).filter(|(&p, &i)| p as i64 == data.test.labels[i]).count();
    }
    Ok(100.0 * correct as f64 / idx.len().max(1) as f64)
}


/// Trains one run, resuming from and writing checkpoints as `ctl` says.
pub fn train(cfg: &SslConfig, seed: u64, data: &Dataset, device: &Device, ctl: &TrainControl) -> candle_core::Result<SslResult> {
    // Subsets are a fixed random sample (the same for every seed and cell), never the first files of a
    // class-sorted folder.
    let train_idx = subset(data.train.len(), cfg.train_subset, "subset/train");
    let test_idx = subset(data.test.len(), cfg.test_subset, "subset/test");
    if cfg.batch > train_idx.len() {
        candle_core::bail!("batch {} is larger than the {} training images", cfg.batch, train_idx.len());
    }
    let steps_per_epoch = train_idx.len() / cfg.batch; // drop_last, as the authors
    let mut learner = Learner::new(cfg, seed, data.train.h, data.classes, steps_per_epoch, device)?;
    let run = Run { cfg, seed, data, device, ctl, train_idx, test_idx, steps_per_epoch };
    let mut state = run.start(&mut learner, device);
    let mut last_epoch_wall = None;
    while state.epoch < cfg.epochs {
        let wall = Instant::now();
        let t0 = Instant::now();
        let stopped = run.train_batches(&mut learner, &mut state, last_epoch_wall)?;
        state.epoch_seconds += t0.elapsed().as_secs_f64();
        match stopped {
            Some(SslOutcome::Diverged { epoch, step }) => {
                let mut metrics = BTreeMap::new();
                metrics.insert("diverged_epoch".to_string(), epoch as f64);
                metrics.insert("diverged_step".to_string(), step as f64);
                if let Some(&acc) = state.history.readout_top1.last() {
                    metrics.insert("readout_top1".to_string(), acc);
                }
                return Ok(SslResult { outcome: SslOutcome::Diverged { epoch, step }, history: state.history, metrics, weights_sha256: None, resumed_at: state.resumed_at });
            }
            Some(interrupted) => {
                run.write_checkpoint(&state, &learner)?;
                let metrics = final_metrics(&state.history, None);
                return Ok(SslResult { outcome: interrupted, history: state.history, metrics, weights_sha256: None, resumed_at: state.resumed_at });
            }
            None => {}
        }
        run.close_epoch(&mut learner, &mut state)?;
        last_epoch_wall = Some(wall.elapsed().as_secs_f64());
        (ctl.progress)(&run.progress(&state, 0.0, last_epoch_wall));
        if state.epoch < cfg.epochs {
            run.write_checkpoint(&state, &learner)?;
        }
        if (ctl.stop)() && state.epoch < cfg.epochs {
            let metrics = final_metrics(&state.history, None);
            return Ok(SslResult { outcome: SslOutcome::Interrupted { epoch: state.epoch, batch: 0 }, history: state.history, metrics, weights_sha256: None, resumed_at: state.resumed_at });
        }
    }
    let mut metrics = final_metrics(&state.history, state.collapsed_since);
    metrics.extend(offline_metrics(cfg, seed, &learner, data, device, &[Protocol::Knn, Protocol::Linear])?);
    let weights_sha256 = match ctl.weights {
        Some(path) => Some(super::weights::save(path, &learner).map_err(|e| candle_core::Error::Msg(e.to_string()))?),
        None => None,
    };
    let outcome = match state.collapsed_since {
        Some(epoch) => SslOutcome::Collapsed { epoch },
        None => SslOutcome::Finished,
    };
    Ok(SslResult { outcome, history: state.history, metrics, weights_sha256, resumed_at: state.resumed_at })
}

/// The offline evaluations of `learner`'s backbone that `protocols` name and the config enables, by
/// metric name (`knn_top1`, `linear_top1`): on frozen features of the labelled training images and the
/// test images of the run's subsets. Training and `eigenssl eval` (on kept weights) both call this.
pub fn offline_metrics(cfg: &SslConfig, seed: u64, learner: &Learner, data: &Dataset, device: &Device, protocols: &[Protocol]) -> candle_core::Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let knn = cfg.knn_k > 0 && protocols.contains(&Protocol::Knn);
    let linear = cfg.linear_epochs > 0 && protocols.contains(&Protocol::Linear);
    if !knn && !linear {
        return Ok(out);
    }
    let train_idx = subset(data.train.len(), cfg.train_subset, "subset/train");
    let test_idx = subset(data.test.len(), cfg.test_subset, "subset/test");
    let labelled: Vec<usize> = train_idx.into_iter().filter(|&i| data.train.labels[i] >= 0).collect();
    let features = |split: &crate::data::Split, idx: &[usize]| -> candle_core::Result<Tensor> {
        let mut parts = Vec::new();
        for chunk in idx.chunks(cfg.batch) {
            let x = Tensor::from_vec(plain_batch(split, chunk, data.mean, data.std), (chunk.len(), 3, split.h, split.w), device)?;
            parts.push(learner.features(&x)?);
        }
        Tensor::cat(&parts, 0)
    };
    let (train_f, test_f) = (features(&data.train, &labelled)?, features(&data.test, &test_idx)?);
    let train_y: Vec<i64> = labelled.iter().map(|&i| data.train.labels[i]).collect();
    let test_y: Vec<i64> = test_idx.iter().map(|&i| data.test.labels[i]).collect();
    if knn {
        out.insert(Protocol::Knn.metric().into(), eval::knn_top1(&train_f, &train_y, &test_f, &test_y, cfg.knn_k, cfg.knn_temperature, data.classes)?);
    }
    if linear {
        let probe = eval::ProbeConfig { epochs: cfg.linear_epochs, lr: cfg.linear_lr, batch: cfg.linear_batch, seed };
        out.insert(Protocol::Linear.metric().into(), eval::linear_probe_top1(&train_f, &train_y, &test_f, &test_y, data.classes, &probe)?);
    }
    Ok(out)
}

/// Where a run stands, for a live display: sent after every step and after every epoch's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The epoch being trained (0-based; equal to `epochs` once the last one is done).
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in this epoch, of `batches`.
    pub batch: usize,
    pub batches: usize,
    /// Mean SSL loss of this epoch's steps so far, or of the finished epoch at its end (`None` with a
    /// frozen backbone).
    pub loss: Option<f64>,
    /// The readout's test top-1 (%) after the last finished epoch.
    pub readout_top1: Option<f64>,
    /// Seconds an epoch takes (training and evaluation): the last one's, or extrapolated from this one.
    pub seconds_per_epoch: Option<f64>,
}

impl Progress {
    /// Seconds until the run ends, at [`Progress::seconds_per_epoch`].
    pub fn seconds_left(&self) -> Option<f64> {
        let left = (self.epochs - self.epoch.min(self.epochs)) as f64 - self.batch as f64 / self.batches.max(1) as f64;
        self.seconds_per_epoch.map(|s| s * left.max(0.0))
    }
}

/// One run's fixed inputs, shared by the phases of an epoch.
struct Run<'a> {
    cfg: &'a SslConfig,
    seed: u64,
    data: &'a Dataset,
    device: &'a Device,
    ctl: &'a TrainControl<'a>,
    train_idx: Vec<usize>,
    test_idx: Vec<usize>,
    steps_per_epoch: usize,
}

impl Run<'_> {
    /// The state to start from: the checkpoint's, when `ctl` names one of this run that reads back.
    fn start(&self, learner: &mut Learner, device: &Device) -> TrainState {
        let ctl = self.ctl;
        let fresh = TrainState {
            schema: CHECKPOINT_SCHEMA,
            tag: ctl.tag.to_string(),
            epoch: 0,
            batch: 0,
            loss_sum: 0.0,
            ce_sum: 0.0,
            z_std_sum: 0.0,
            epoch_seconds: 0.0,
            collapsed_since: None,
            history: SslHistory::default(),
            resumed_at: Vec::new(),
        };
        let Some(path) = ctl.checkpoint.filter(|p| p.exists()) else { return fresh };
        match checkpoint::resume(path, ctl.tag, learner, device) {
            Ok(mut s) => {
                (ctl.notice)(&format!("resuming from {} at epoch {}, batch {}", path.display(), s.epoch + 1, s.batch));
                s.resumed_at.push((s.epoch, s.batch));
                s
            }
            Err(e) => {
                let what = match crate::fsutil::set_aside(path) {
                    Ok(aside) => format!("set aside as {}", aside.display()),
                    Err(e2) => format!("could not be set aside: {e2}"),
                };
                (ctl.notice)(&format!("warning: {e}\n  not resumed ({what}); the run starts from the beginning"));
                fresh
            }
        }
    }

    fn write_checkpoint(&self, state: &TrainState, learner: &Learner) -> candle_core::Result<()> {
        let Some(path) = self.ctl.checkpoint else { return Ok(()) };
        checkpoint::save(path, state, &learner.checkpoint_tensors()?).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }

    /// Where `state` stands, `epoch_seconds` into its epoch.
    fn progress(&self, state: &TrainState, epoch_seconds: f64, last_epoch_wall: Option<f64>) -> Progress {
        // Within an epoch, the mean of its steps so far; at its end, the finished epoch's mean.
        let loss = if state.batch > 0 {
            (!self.cfg.freeze_backbone).then(|| state.loss_sum / state.batch as f64)
        } else {
            state.history.loss.last().copied().flatten()
        };
        let extrapolated = (state.batch > 0).then(|| epoch_seconds / state.batch as f64 * self.steps_per_epoch as f64);
        Progress {
            epoch: state.epoch,
            epochs: self.cfg.epochs,
            batch: state.batch,
            batches: self.steps_per_epoch,
            loss,
            readout_top1: state.history.readout_top1.last().copied(),
            seconds_per_epoch: last_epoch_wall.or(extrapolated),
        }
    }

    /// The rest of this epoch's steps, the next batches augmented on another thread while one trains.
    /// `Some` when the run diverged or was stopped on request.
    fn train_batches(&self, learner: &mut Learner, state: &mut TrainState, last_epoch_wall: Option<f64>) -> candle_core::Result<Option<SslOutcome>> {
        let (cfg, seed, data, device) = (self.cfg, self.seed, self.data, self.device);
        let epoch = state.epoch;
        let (h, w) = (data.train.h, data.train.w);
        let views = cfg.augment.views(h);
        let mut order = self.train_idx.clone();
        order.shuffle(&mut stream(seed, &format!("shuffle/{epoch}")));
        let batches: Vec<Vec<usize>> = order.chunks_exact(cfg.batch).skip(state.batch).map(|c| c.to_vec()).collect();
        let (tx, rx) = mpsc::sync_channel(2);
        let t0 = Instant::now();
        let seconds_before = state.epoch_seconds;
        std::thread::scope(|s| -> candle_core::Result<Option<SslOutcome>> {
            // Owned here, so an early return drops the receiver and the producer's `send` fails instead
            // of blocking the scope forever.
            let rx = rx;
            let train_split = &data.train;
            s.spawn(move || {
                for b in &batches {
                    let out = views_batch(train_split, b, &views, seed, epoch, data.mean, data.std);
                    if tx.send(out).is_err() {
                        break;
                    }
                }
            });
            while state.batch < self.steps_per_epoch {
                let Ok(([v1, v2], labels)) = rx.recv() else { break };
                let k = state.batch;
                let b = labels.len();
                let x1 = Tensor::from_vec(v1, (b, 3, h, w), device)?;
                let x2 = Tensor::from_vec(v2, (b, 3, h, w), device)?;
                let labels = Tensor::from_vec(labels, b, device)?;
                let stats = match learner.step(&x1, &x2, &labels, epoch * self.steps_per_epoch + k)? {
                    Step::Trained(stats) => stats,
                    Step::Diverged => return Ok(Some(SslOutcome::Diverged { epoch, step: k })),
                };
                state.loss_sum += stats.ssl_loss.unwrap_or(0.0);
                state.ce_sum += stats.readout_ce;
                state.z_std_sum += stats.z_std.unwrap_or(0.0);
                state.batch += 1;
                // The state's own seconds are added once, by the caller, when the epoch's steps end.
                let seconds = seconds_before + t0.elapsed().as_secs_f64();
                (self.ctl.progress)(&self.progress(state, seconds, last_epoch_wall));
                if (self.ctl.stop)() && state.batch < self.steps_per_epoch {
                    return Ok(Some(SslOutcome::Interrupted { epoch, batch: state.batch }));
                }
            }
            Ok(None)
        })
    }

    /// The epoch's end: the readout's test top-1, the predictor's spectrum, the collapse check, one
    /// history row; the counters start over for the next epoch.
    fn close_epoch(&self, learner: &mut Learner, state: &mut TrainState) -> candle_core::Result<()> {
        let cfg = self.cfg;
        let epoch = state.epoch;
        let steps = self.steps_per_epoch;
        let acc = evaluate(learner, self.data, &self.test_idx, cfg.batch, self.device)?;
        let eigs = learner.spectrum();
        let (emax, emin, pr) = spectrum_stats(&eigs);
        let per_step = |sum: f64| sum / steps.max(1) as f64;
        let spread = (!cfg.freeze_backbone).then(|| per_step(state.z_std_sum) * (cfg.proj_out as f64).sqrt());
        state.collapsed_since = collapsed_since(state.collapsed_since, spread, epoch);
        let hist = &mut state.history;
        hist.epoch.push(epoch + 1);
        hist.loss.push((!cfg.freeze_backbone).then(|| per_step(state.loss_sum)));
        hist.readout_ce.push(per_step(state.ce_sum));
        hist.readout_top1.push(acc);
        hist.eig_max.push(emax);
        hist.eig_min.push(emin);
        hist.participation_ratio.push(pr);
        hist.z_spread.push(spread);
        hist.eigenvalues.push(eigs.iter().map(|&v| round_sig5(v)).collect());
        hist.images_per_s.push((2 * steps * cfg.batch) as f64 / state.epoch_seconds);
        state.epoch += 1;
        state.batch = 0;
        state.loss_sum = 0.0;
        state.ce_sum = 0.0;
        state.z_std_sum = 0.0;
        state.epoch_seconds = 0.0;
        Ok(())
    }
}

/// The record's metrics: last-epoch values, the best readout, and (for a collapsed run) the 1-based epoch
/// from whose end on it was collapsed.
fn final_metrics(h: &SslHistory, collapsed_since: Option<usize>) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    if let Some(epoch) = collapsed_since {
        m.insert("collapse_epoch".to_string(), (epoch + 1) as f64);
    }
    let last = |v: &Vec<f64>| v.last().copied().filter(|x| x.is_finite());
    let last_some = |v: &Vec<Option<f64>>| v.last().copied().flatten().filter(|x| x.is_finite());
    for (k, v) in [
        ("readout_top1", last(&h.readout_top1)),
        ("readout_top1_best", h.readout_top1.iter().cloned().reduce(f64::max)),
        ("final_loss", last_some(&h.loss)),
        ("eig_max", last_some(&h.eig_max)),
        ("eig_min", last_some(&h.eig_min)),
        ("participation_ratio", last_some(&h.participation_ratio)),
        ("z_spread", last_some(&h.z_spread)),
        ("images_per_s", last(&h.images_per_s)),
    ] {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    m
}


/// Seconds one training step of `cfg` takes on `device`, extrapolated from timed [`Learner::step`]s on
/// random images at batches of 16 and 64 (after a warm-up; the median of three at each): the step's cost
/// is a part that grows with the batch plus a fixed part (the DirectPred eigendecompositions), so a line
/// through the two is scaled to the config's batch. Single steps at 16 and 32 were too noisy for that: a
/// 10 % error in their difference became 60 % at batch 128, and two dry runs of the same profile minutes
/// apart said 48 min and 1 h 57 min. Probing a full-size network on a CPU takes seconds, not minutes. Used
/// to say how long a sweep will take before it starts.
pub fn time_step(cfg: &SslConfig, device: &Device) -> candle_core::Result<f64> {
    const SMALL: usize = 16;
    const LARGE: usize = 64;
    let side = cfg.image_side();
    let mut learner = Learner::new(cfg, 0, side, 10, 1, device)?;
    let (x1, x2, labels) = random_batch(LARGE, side, 10, device)?;
    learner.step(&x1, &x2, &labels, 0)?;
    let mut timed = |batch: usize| -> candle_core::Result<f64> {
        let (x1, x2, labels) = random_batch(batch, side, 10, device)?;
        let mut times = Vec::with_capacity(3);
        for _ in 0..3 {
            let t0 = Instant::now();
            learner.step(&x1, &x2, &labels, 0)?;
            device.synchronize()?;
            times.push(t0.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        Ok(times[1])
    };
    let (small, large) = (timed(SMALL)?, timed(LARGE)?);
    let per_image = ((large - small) / (LARGE - SMALL) as f64).max(0.0);
    Ok((large + per_image * (cfg.batch as f64 - LARGE as f64)).max(small))
}

/// A batch of random view pairs and labels, for timing the step.
pub fn random_batch(batch: usize, side: usize, classes: usize, device: &Device) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let shape = (batch, 3, side, side);
    let labels: Vec<i64> = (0..batch).map(|i| (i % classes) as i64).collect();
    Ok((Tensor::randn(0f32, 1.0, shape, device)?, Tensor::randn(0f32, 1.0, shape, device)?, Tensor::from_vec(labels, batch, device)?))
}
