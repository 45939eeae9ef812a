//! The deep-SSL training loop of Table 1: a VGG11 Siamese network with the DirectPred predictor, trained
//! with the SimSiam loss or IsoLoss, with or without an EMA target, and an online linear readout on the
//! detached backbone features (the reported metric: its top-1 on the test split after the last epoch).
//!
//! Deviation from the authors' code, for speed: their predictor folds each view's batch into C and
//! re-decomposes it once per view (two eigendecompositions per step); here C takes both views' batches
//! (two EMA updates, in the same order) and is decomposed once, so both views use the same W_P.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor, Var, D};
use candle_nn::{linear, Linear, Module};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::backbone::Features;
use super::checkpoint::{self, TrainState, CHECKPOINT_SCHEMA};
use super::config::{OptimizerKind, SslConfig};
use super::directpred::DirectPred;
use super::ema::{ema_update, tau_schedule, warmup_cosine};
use super::init::SeededVarMap;
use super::loss::symmetric;
use super::optim::{Optimizer, ParamGroup, Rule};
use super::projector::Projector;
use crate::data::augment::{plain_batch, views_batch};
use crate::data::Dataset;
use crate::rng::stream;

/// Per-epoch log. Entries are `None` (null in JSON) where undefined: the SSL loss and the spectrum of a
/// run that trains only the readout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SslHistory {
    pub epoch: Vec<usize>,
    pub loss: Vec<Option<f64>>,
    pub readout_ce: Vec<f64>,
    /// Test top-1 of the online readout (%).
    pub readout_top1: Vec<f64>,
    pub eig_max: Vec<Option<f64>>,
    pub eig_min: Vec<Option<f64>>,
    pub participation_ratio: Vec<Option<f64>>,
    /// Eigenvalues of the predictor's correlation C, descending (rounded), per epoch.
    pub eigenvalues: Vec<Vec<f64>>,
    pub images_per_s: Vec<f64>,
}

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SslOutcome {
    Finished,
    /// Non-finite loss at (epoch, step).
    Diverged { epoch: usize, step: usize },
    /// The correlation's spectrum vanished (all eigenvalues below 1e-8) at the end of `epoch`.
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
    /// Receives (epoch, test top-1) after each epoch.
    pub progress: &'a dyn Fn(usize, f64),
}

impl TrainControl<'_> {
    /// No checkpoints, never stops, silent.
    pub fn none() -> TrainControl<'static> {
        TrainControl { checkpoint: None, tag: "", stop: &|| false, notice: &|_| {}, progress: &|_, _| {} }
    }
}

pub struct SslResult {
    pub outcome: SslOutcome,
    pub history: SslHistory,
    pub metrics: BTreeMap<String, f64>,
}

struct Network {
    backbone: Features,
    projector: Projector,
}

impl Network {
    fn new(cfg: &SslConfig, vm: &SeededVarMap, device: &Device) -> candle_core::Result<Self> {
        let vb = vm.var_builder(DType::F32, device);
        let side = if cfg.dataset == "stl10" { 96 } else { 32 };
        let backbone = Features::new(cfg.backbone, cfg.width, side, vb.pp("backbone"))?;
        let projector = Projector::new(backbone.out_dim(), cfg.proj_hidden, cfg.proj_out, vb.pp("projector"))?;
        Ok(Network { backbone, projector })
    }

    /// (features, embedding) of a batch.
    fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<(Tensor, Tensor)> {
        let f = self.backbone.forward_t(x, train)?;
        let z = self.projector.forward_t(&f, train)?;
        Ok((f, z))
    }
}

/// Trainable parameters (not batch-norm running statistics), sorted by name.
fn params(vm: &SeededVarMap) -> Vec<(String, Var)> {
    vm.named_vars().into_iter().filter(|(n, _)| !n.contains("running_")).collect()
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

fn round5(v: f64) -> f64 {
    format!("{v:.4e}").parse().unwrap_or(v)
}

/// Top-1 (%) of the readout on the test split, backbone in eval mode.
fn evaluate(net: &Network, head: &Linear, data: &Dataset, idx: &[usize], batch: usize, device: &Device) -> candle_core::Result<f64> {
    let (h, w) = (data.test.h, data.test.w);
    let mut correct = 0usize;
    let n = idx.len();
    for chunk in idx.chunks(batch) {
        let x = Tensor::from_vec(plain_batch(&data.test, chunk, data.mean, data.std), (chunk.len(), 3, h, w), device)?;
        let f = net.backbone.forward_t(&x, false)?;
        let pred = head.forward(&f)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
        correct += pred.iter().zip(chunk).filter(|(&p, &i)| p as i64 == data.test.labels[i]).count();
    }
    Ok(100.0 * correct as f64 / n.max(1) as f64)
}

/// The variables a checkpoint holds besides the optimiser's and the predictor's state.
struct Saved<'a> {
    online: &'a SeededVarMap,
    target: Option<&'a SeededVarMap>,
}

impl Saved<'_> {
    /// Every tensor of a checkpoint, by name.
    fn tensors(&self, opt: &Optimizer, dp: &DirectPred) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (n, v) in self.online.named_vars() {
            out.push((format!("online/{n}"), v.as_tensor().clone()));
        }
        for (n, v) in self.target.map(|t| t.named_vars()).unwrap_or_default() {
            out.push((format!("target/{n}"), v.as_tensor().clone()));
        }
        for (g, bufs) in opt.buffers().iter().enumerate() {
            for (i, b) in bufs.iter().enumerate() {
                if let Some(b) = b {
                    out.push((format!("momentum/{g}/{i}"), b.clone()));
                }
            }
        }
        let c = dp.correlation();
        let d = c.nrows();
        let rows: Vec<f64> = (0..d * d).map(|i| c[(i / d, i % d)]).collect();
        out.push(("predictor/correlation".into(), Tensor::from_vec(rows, (d, d), &Device::Cpu)?));
        Ok(out)
    }

    /// Sets every variable, buffer and the correlation from `ck`; any missing or mis-shaped entry is an
    /// error (the checkpoint is then not used).
    fn restore(&self, ck: &mut checkpoint::Checkpoint, path: &Path, opt: &mut Optimizer, dp: &mut DirectPred) -> crate::Result<()> {
        let bad = |msg: String| crate::Error::Record { path: path.to_path_buf(), msg };
        let set = |var: &Var, t: Tensor, name: &str| {
            if t.shape() != var.shape() || t.dtype() != var.dtype() {
                return Err(bad(format!("`{name}`: shape {:?} {:?}, expected {:?} {:?}", t.shape(), t.dtype(), var.shape(), var.dtype())));
            }
            var.set(&t).map_err(|e| bad(format!("`{name}`: {e}")))
        };
        for (prefix, vm) in [("online", Some(self.online)), ("target", self.target)] {
            for (n, v) in vm.map(|m| m.named_vars()).unwrap_or_default() {
                let name = format!("{prefix}/{n}");
                set(&v, ck.take(&name, path)?, &name)?;
            }
        }
        let mut buffers = Vec::new();
        for (g, bufs) in opt.buffers().iter().enumerate() {
            let mut group = Vec::new();
            for i in 0..bufs.len() {
                group.push(ck.tensors.remove(&format!("momentum/{g}/{i}")));
            }
            buffers.push(group);
        }
        opt.set_buffers(buffers);
        let c = ck.take("predictor/correlation", path)?;
        let d = dp.correlation().nrows();
        let flat = c.flatten_all().and_then(|t| t.to_vec1::<f64>()).map_err(|e| bad(format!("predictor/correlation: {e}")))?;
        if flat.len() != d * d {
            return Err(bad(format!("predictor/correlation has {} entries, expected {}", flat.len(), d * d)));
        }
        dp.set_correlation(nalgebra::DMatrix::from_row_slice(d, d, &flat));
        Ok(())
    }
}

/// Trains one run, resuming from and writing checkpoints as `ctl` says.
pub fn train(cfg: &SslConfig, seed: u64, data: &Dataset, device: &Device, ctl: &TrainControl) -> candle_core::Result<SslResult> {
    let vm = SeededVarMap::new(seed);
    let online = Network::new(cfg, &vm, device)?;
    let head = linear(online.backbone.out_dim(), data.classes, vm.var_builder(DType::F32, device).pp("classifier"))?;
    // The target starts equal to the online network: same seed, same names, same init.
    let target_vm = SeededVarMap::new(seed);
    let target = if cfg.ema && !cfg.freeze_backbone { Some(Network::new(cfg, &target_vm, device)?) } else { None };
    let online_params = params(&vm);
    let (head_vars, body_vars): (Vec<_>, Vec<_>) = online_params.iter().cloned().partition(|(n, _)| n.starts_with("classifier"));
    let target_params: Vec<Var> = params(&target_vm).into_iter().map(|(_, v)| v).collect();
    let online_body: Vec<Var> = body_vars.iter().map(|(_, v)| v.clone()).collect();

    let rule = match cfg.optimizer {
        OptimizerKind::Lars => Rule::Lars { eta: cfg.lars_eta, clip: true },
        OptimizerKind::Sgd => Rule::Sgd,
    };
    let mut groups = vec![ParamGroup {
        vars: head_vars.iter().map(|(_, v)| v.clone()).collect(),
        lr_scale: cfg.classifier_lr / cfg.lr,
        weight_decay: 0.0,
    }];
    if !cfg.freeze_backbone {
        groups.push(ParamGroup { vars: online_body.clone(), lr_scale: 1.0, weight_decay: cfg.weight_decay });
    }
    let mut opt = Optimizer::new(rule, cfg.momentum, groups);
    let mut dp = DirectPred::new(cfg.proj_out, cfg.dp_tau, cfg.dp_alpha, cfg.dp_eps);

    // Subsets are a fixed random sample (the same for every seed and cell), never the first files of a
    // class-sorted folder.
    let train_idx = subset(data.train.len(), cfg.train_subset, "subset/train");
    let test_idx = subset(data.test.len(), cfg.test_subset, "subset/test");
    let train_n = train_idx.len();
    if cfg.batch > train_n {
        candle_core::bail!("batch {} is larger than the {} training images", cfg.batch, train_n);
    }
    let steps_per_epoch = train_n / cfg.batch; // drop_last, as the authors
    let total = steps_per_epoch * cfg.epochs;
    let warmup = steps_per_epoch * cfg.warmup_epochs;
    let views = cfg.augment.views(data.train.h);
    // Learning rates are given for batch 256 and scaled linearly with the batch, as the authors' code does
    // (the classifier's rate is a fixed multiple of the base rate, so it scales too).
    let base_lr = cfg.lr * cfg.batch as f64 / 256.0;
    let (h, w) = (data.train.h, data.train.w);

    let saved = Saved { online: &vm, target: target.as_ref().map(|_| &target_vm) };
    let mut state = TrainState {
        schema: CHECKPOINT_SCHEMA,
        tag: ctl.tag.to_string(),
        epoch: 0,
        batch: 0,
        loss_sum: 0.0,
        ce_sum: 0.0,
        epoch_seconds: 0.0,
        history: SslHistory::default(),
    };
    if let Some(path) = ctl.checkpoint.filter(|p| p.exists()) {
        let resumed = checkpoint::load(path, device).and_then(|mut ck| {
            if ck.state.tag != ctl.tag {
                return Err(crate::Error::Record { path: path.to_path_buf(), msg: format!("checkpoint of another run ({})", ck.state.tag) });
            }
            saved.restore(&mut ck, path, &mut opt, &mut dp)?;
            Ok(ck.state)
        });
        match resumed {
            Ok(s) => {
                (ctl.notice)(&format!("resuming from {} at epoch {}, batch {}", path.display(), s.epoch + 1, s.batch));
                state = s;
            }
            Err(e) => {
                let what = match crate::harness::store::set_aside(path) {
                    Ok(aside) => format!("set aside as {}", aside.display()),
                    Err(e2) => format!("could not be set aside: {e2}"),
                };
                (ctl.notice)(&format!("warning: {e}\n  not resumed ({what}); the run starts from the beginning"));
            }
        }
    }
    let write_checkpoint = |state: &TrainState, opt: &Optimizer, dp: &DirectPred| -> candle_core::Result<()> {
        let Some(path) = ctl.checkpoint else { return Ok(()) };
        let tensors = saved.tensors(opt, dp)?;
        checkpoint::save(path, state, &tensors).map_err(|e| candle_core::Error::Msg(e.to_string()))
    };

    let mut last_eigs: Vec<f64> = Vec::new();
    while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        let t0 = Instant::now();
        let mut order = train_idx.clone();
        order.shuffle(&mut stream(seed, &format!("shuffle/{epoch}")));
        let batches: Vec<Vec<usize>> = order.chunks_exact(cfg.batch).skip(state.batch).map(|c| c.to_vec()).collect();
        // Augment the next batches on another thread while this one trains.
        let (tx, rx) = mpsc::sync_channel(2);
        let stopped = std::thread::scope(|s| -> candle_core::Result<Option<SslOutcome>> {
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
            while state.batch < steps_per_epoch {
                let Ok(([v1, v2], labels)) = rx.recv() else { break };
                let k = state.batch;
                let step = epoch * steps_per_epoch + k;
                let b = labels.len();
                let x1 = Tensor::from_vec(v1, (b, 3, h, w), device)?;
                let x2 = Tensor::from_vec(v2, (b, 3, h, w), device)?;
                let lr = warmup_cosine(step, warmup, total, cfg.warmup_start_lr, base_lr);
                let labels = Tensor::from_vec(labels, b, device)?;
                let (f1, z1) = online.forward(&x1, true)?;
                let (f2, z2) = online.forward(&x2, true)?;
                // Readout on detached features of both views, CE averaged over the views.
                let ce = ((candle_nn::loss::cross_entropy(&head.forward(&f1.detach())?, &labels)?
                    + candle_nn::loss::cross_entropy(&head.forward(&f2.detach())?, &labels)?)?
                    * 0.5)?;
                let total_loss = if cfg.freeze_backbone {
                    ce.clone()
                } else {
                    dp.accumulate(&z1)?;
                    let up = dp.update(&z2, device)?;
                    last_eigs = up.eigenvalues;
                    let (t1, t2) = match &target {
                        Some(t) => (t.forward(&x1, true)?.1.detach(), t.forward(&x2, true)?.1.detach()),
                        None => (z1.detach(), z2.detach()),
                    };
                    let ssl = symmetric(cfg.loss, cfg.loss_form, [&z1, &z2], &up.wp, [&t1, &t2])?;
                    state.loss_sum += ssl.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                    (ssl + &ce)?
                };
                let value = total_loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !value.is_finite() {
                    return Ok(Some(SslOutcome::Diverged { epoch, step: k }));
                }
                state.ce_sum += ce.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                let grads = total_loss.backward()?;
                opt.step(&grads, lr)?;
                if target.is_some() {
                    ema_update(&target_params, &online_body, tau_schedule(cfg.tau_base, cfg.tau_final, step, total))?;
                }
                state.batch += 1;
                if (ctl.stop)() && state.batch < steps_per_epoch {
                    return Ok(Some(SslOutcome::Interrupted { epoch, batch: state.batch }));
                }
            }
            Ok(None)
        })?;
        state.epoch_seconds += t0.elapsed().as_secs_f64();
        match stopped {
            Some(SslOutcome::Diverged { epoch, step }) => {
                let mut metrics = BTreeMap::new();
                metrics.insert("diverged_epoch".to_string(), epoch as f64);
                metrics.insert("diverged_step".to_string(), step as f64);
                if let Some(&acc) = state.history.readout_top1.last() {
                    metrics.insert("readout_top1".to_string(), acc);
                }
                return Ok(SslResult { outcome: SslOutcome::Diverged { epoch, step }, history: state.history, metrics });
            }
            Some(interrupted) => {
                write_checkpoint(&state, &opt, &dp)?;
                let metrics = final_metrics(&state.history);
                return Ok(SslResult { outcome: interrupted, history: state.history, metrics });
            }
            None => {}
        }
        let acc = evaluate(&online, &head, data, &test_idx, cfg.batch, device)?;
        (ctl.progress)(epoch, acc);
        let (emax, emin, pr) = spectrum_stats(&last_eigs);
        let per_step = |sum: f64| sum / steps_per_epoch.max(1) as f64;
        let hist = &mut state.history;
        hist.epoch.push(epoch + 1);
        hist.loss.push((!cfg.freeze_backbone).then(|| per_step(state.loss_sum)));
        hist.readout_ce.push(per_step(state.ce_sum));
        hist.readout_top1.push(acc);
        hist.eig_max.push(emax);
        hist.eig_min.push(emin);
        hist.participation_ratio.push(pr);
        hist.eigenvalues.push(last_eigs.iter().map(|&v| round5(v)).collect());
        hist.images_per_s.push((2 * steps_per_epoch * cfg.batch) as f64 / state.epoch_seconds);
        if !cfg.freeze_backbone && emax.is_some_and(|m| m.is_finite() && m < 1e-8) {
            let metrics = final_metrics(&state.history);
            return Ok(SslResult { outcome: SslOutcome::Collapsed { epoch }, history: state.history, metrics });
        }
        state.epoch += 1;
        state.batch = 0;
        state.loss_sum = 0.0;
        state.ce_sum = 0.0;
        state.epoch_seconds = 0.0;
        if state.epoch < cfg.epochs {
            write_checkpoint(&state, &opt, &dp)?;
        }
        if (ctl.stop)() && state.epoch < cfg.epochs {
            let metrics = final_metrics(&state.history);
            return Ok(SslResult { outcome: SslOutcome::Interrupted { epoch: state.epoch, batch: 0 }, history: state.history, metrics });
        }
    }
    let metrics = final_metrics(&state.history);
    Ok(SslResult { outcome: SslOutcome::Finished, history: state.history, metrics })
}

fn final_metrics(h: &SslHistory) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let last = |v: &Vec<f64>| v.last().copied().filter(|x| x.is_finite());
    let last_some = |v: &Vec<Option<f64>>| v.last().copied().flatten().filter(|x| x.is_finite());
    for (k, v) in [
        ("readout_top1", last(&h.readout_top1)),
        ("readout_top1_best", h.readout_top1.iter().cloned().reduce(f64::max)),
        ("final_loss", last_some(&h.loss)),
        ("eig_max", last_some(&h.eig_max)),
        ("eig_min", last_some(&h.eig_min)),
        ("participation_ratio", last_some(&h.participation_ratio)),
        ("images_per_s", last(&h.images_per_s)),
    ] {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    m
}

/// Number of training images a config uses (the full sizes of the known datasets, or its subset).
pub fn train_images(cfg: &SslConfig) -> usize {
    let full = match cfg.dataset.as_str() {
        "cifar10" => 50_000,
        "stl10" => 105_000,
        _ => crate::data::SYNTHETIC_TRAIN,
    };
    if cfg.train_subset == 0 { full } else { cfg.train_subset.min(full) }
}

/// One full training step of a config on random images, for timing (`bench`, and the estimate
/// `reproduce` prints): both views through the online network (and the target's with an EMA), the
/// DirectPred update with its eigendecomposition, the loss, backward and the optimiser step.
pub struct StepProbe {
    cfg: SslConfig,
    side: usize,
    device: Device,
    vm: SeededVarMap,
    net: Network,
    target: Option<Network>,
    opt: Optimizer,
    dp: DirectPred,
}

impl StepProbe {
    pub fn new(cfg: &SslConfig, device: &Device) -> candle_core::Result<Self> {
        let side = if cfg.dataset == "stl10" { 96 } else { 32 };
        let vm = SeededVarMap::new(0);
        let net = Network::new(cfg, &vm, device)?;
        let target = if cfg.ema { Some(Network::new(cfg, &SeededVarMap::new(0), device)?) } else { None };
        let vars = params(&vm).into_iter().map(|(_, v)| v).collect();
        let rule = match cfg.optimizer {
            OptimizerKind::Lars => Rule::Lars { eta: cfg.lars_eta, clip: true },
            OptimizerKind::Sgd => Rule::Sgd,
        };
        let opt = Optimizer::new(rule, cfg.momentum, vec![ParamGroup { vars, lr_scale: 1.0, weight_decay: cfg.weight_decay }]);
        let dp = DirectPred::new(cfg.proj_out, cfg.dp_tau, cfg.dp_alpha, cfg.dp_eps);
        Ok(StepProbe { cfg: cfg.clone(), side, device: device.clone(), vm, net, target, opt, dp })
    }

    /// Number of trainable parameters of the online network.
    pub fn parameters(&self) -> usize {
        params(&self.vm).iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// One step on `batch` random image pairs.
    pub fn step(&mut self, batch: usize) -> candle_core::Result<()> {
        let shape = (batch, 3, self.side, self.side);
        let x1 = Tensor::randn(0f32, 1.0, shape, &self.device)?;
        let x2 = Tensor::randn(0f32, 1.0, shape, &self.device)?;
        let (_, z1) = self.net.forward(&x1, true)?;
        let (_, z2) = self.net.forward(&x2, true)?;
        self.dp.accumulate(&z1)?;
        let up = self.dp.update(&z2, &self.device)?;
        let (t1, t2) = match &self.target {
            Some(t) => (t.forward(&x1, true)?.1.detach(), t.forward(&x2, true)?.1.detach()),
            None => (z1.detach(), z2.detach()),
        };
        let loss = symmetric(self.cfg.loss, self.cfg.loss_form, [&z1, &z2], &up.wp, [&t1, &t2])?;
        let grads = loss.backward()?;
        self.opt.step(&grads, 1e-3)?;
        // Wait for the device, so that a timing covers the whole step.
        self.device.synchronize()
    }
}

/// Seconds one training step of `cfg` takes on `device`, from one warm-up and one timed [`StepProbe`]
/// step at a batch of at most 32, scaled linearly to the config's batch (so that probing a full-size
/// network on a CPU takes seconds, not minutes). Used to say how long a sweep will take before it starts.
pub fn time_step(cfg: &SslConfig, device: &Device) -> candle_core::Result<f64> {
    let probe = cfg.batch.min(32);
    let mut p = StepProbe::new(cfg, device)?;
    p.step(probe)?;
    let t0 = Instant::now();
    p.step(probe)?;
    Ok(t0.elapsed().as_secs_f64() * cfg.batch as f64 / probe as f64)
}
