//! The training step of Table 1, as the authors' `DirectPred.training_step` computes it — one type used
//! by training, by `bench` and by the time estimate, so that what is timed is what trains.
//!
//! Per step, for view 0 then view 1: the online backbone and projector forward (batch norm in training
//! mode), the readout's logits on the detached features, and the DirectPred update of that view (C folds
//! in the view's embeddings and W_P is recomputed, so each view is predicted with the W_P of its own
//! forward). Then the target embeddings (the EMA network's, or the online ones under a stop-gradient
//! when τ = 0: the authors' τ = 0 target is a copy of the online network, so its outputs are the same),
//! the symmetrised loss L(z₁ → t₀) + L(z₀ → t₁), the readout's cross-entropy averaged over the views,
//! one backward pass through their sum, the optimiser step at the scheduled rate, and the EMA update.

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::Module;

use super::backbone::Features;
use super::collapse::normalised_std;
use super::config::{OptimizerKind, SslConfig};
use super::directpred::DirectPred;
use super::ema::ema_update;
use super::init::SeededVarMap;
use candle_cpu_kernels::Linear;
use super::loss::symmetric;
use super::optim::{Optimizer, ParamGroup, Rule};
use super::projector::Projector;
use super::schedule::{tau_schedule, WarmupCosine};

/// Backbone and projector.
pub(crate) struct Network {
    pub(crate) backbone: Features,
    pub(crate) projector: Projector,
}

impl Network {
    fn new(cfg: &SslConfig, side: usize, vm: &SeededVarMap, device: &Device) -> candle_core::Result<Self> {
        let vb = vm.var_builder(DType::F32, device);
        let backbone = Features::new(cfg.backbone, cfg.width, side, cfg.kernels, vb.pp("backbone"))?;
        let projector = Projector::new(backbone.out_dim(), cfg.proj_hidden, cfg.proj_out, cfg.kernels, vb.pp("projector"))?;
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

/// What one step computed.
pub struct StepStats {
    /// The symmetrised SSL loss; `None` when the backbone is frozen.
    pub ssl_loss: Option<f64>,
    /// The readout's cross-entropy, averaged over the views.
    pub readout_ce: f64,
    /// The std over the batch of the ℓ2-normalised embeddings, averaged over dimensions and views (what
    /// solo-learn logs as `train_z_std`; 1/√D for well-spread embeddings, 0 for collapsed ones).
    pub z_std: Option<f64>,
    /// The readout's logits of each view.
    pub logits: [Tensor; 2],
    /// The predictor each view was predicted with (the same tensor twice with `dp_per_view: false`).
    pub predictors: Vec<Tensor>,
}

/// The outcome of [`Learner::step`].
pub enum Step {
    Trained(StepStats),
    /// The loss was not finite; nothing was updated.
    Diverged,
}

/// The networks, optimiser and predictor of one run, and its training step.
pub struct Learner {
    cfg: SslConfig,
    pub(crate) online_vars: SeededVarMap,
    pub(crate) target_vars: Option<SeededVarMap>,
    online: Network,
    target: Option<Network>,
    head: Linear,
    pub(crate) opt: Optimizer,
    /// Parameter names of the optimiser's groups, in its order (for checkpoints and parity checks).
    group_names: Vec<Vec<String>>,
    pub(crate) dp: DirectPred,
    schedule: WarmupCosine,
    total_steps: usize,
    target_params: Vec<Var>,
    online_body: Vec<Var>,
    device: Device,
}

impl Learner {
    /// A fresh run of `cfg` with `seed` for images of side `side` and `classes` labels; `steps_per_epoch`
    /// fixes the schedules.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use eigenssl::spec::{Experiment, RunConfig};
    /// use eigenssl::ssl::step::{Learner, Step};
    /// let exp = Experiment::find("table1", std::path::Path::new("experiments")).unwrap();
    /// let run = exp.runs("smoke", Some(&[0])).unwrap().remove(0);
    /// let RunConfig::Ssl(cfg) = run.config else { unreachable!() };
    /// let mut learner = Learner::new(&cfg, 0, 32, 10, 4, &Device::Cpu).unwrap();
    /// let x = Tensor::randn(0f32, 1.0, (cfg.batch, 3, 32, 32), &Device::Cpu).unwrap();
    /// let labels = Tensor::zeros(cfg.batch, candle_core::DType::I64, &Device::Cpu).unwrap();
    /// let Step::Trained(stats) = learner.step(&x, &x, &labels, 0).unwrap() else { panic!("diverged") };
    /// assert!(stats.readout_ce > 0.0);
    /// ```
    pub fn new(cfg: &SslConfig, seed: u64, side: usize, classes: usize, steps_per_epoch: usize, device: &Device) -> candle_core::Result<Self> {
        let online_vars = SeededVarMap::with_law(seed, cfg.init);
        let online = Network::new(cfg, side, &online_vars, device)?;
        let head = Linear::new(online.backbone.out_dim(), classes, online_vars.var_builder(DType::F32, device).pp("classifier"))?.with_kernels(cfg.kernels);
        // The target starts equal to the online network: same seed, same names, same init.
        let (target_vars, target) = if cfg.ema && !cfg.freeze_backbone {
            let vm = SeededVarMap::with_law(seed, cfg.init);
            let net = Network::new(cfg, side, &vm, device)?;
            (Some(vm), Some(net))
        } else {
            (None, None)
        };
        let (head_vars, body_vars): (Vec<_>, Vec<_>) = params(&online_vars).into_iter().partition(|(n, _)| n.starts_with("classifier"));
        let target_params = target_vars.as_ref().map(|vm| params(vm).into_iter().map(|(_, v)| v).collect()).unwrap_or_default();
        let online_body: Vec<Var> = body_vars.iter().map(|(_, v)| v.clone()).collect();

        // Rates are given for batch 256 and scaled linearly with the batch, the readout's too (solo-learn's
        // `pretrain.py` scales both).
        let scale = cfg.batch as f64 / 256.0;
        let rule = match cfg.optimizer {
            OptimizerKind::Lars => Rule::Lars { eta: cfg.lars_eta, clip: true },
            OptimizerKind::Sgd => Rule::Sgd,
        };
        let mut groups = vec![ParamGroup { vars: head_vars.iter().map(|(_, v)| v.clone()).collect(), base_lr: cfg.classifier_lr * scale, weight_decay: 0.0 }];
        let mut group_names = vec![head_vars.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()];
        if !cfg.freeze_backbone {
            groups.push(ParamGroup { vars: online_body.clone(), base_lr: cfg.lr * scale, weight_decay: cfg.weight_decay });
            group_names.push(body_vars.iter().map(|(n, _)| n.clone()).collect());
        }
        let total_steps = steps_per_epoch * cfg.epochs;
        Ok(Learner {
            cfg: cfg.clone(),
            online_vars,
            target_vars,
            online,
            target,
            head,
            opt: Optimizer::new(rule, cfg.momentum, groups).with_kernels(cfg.kernels),
            group_names,
            dp: DirectPred::new(cfg.proj_out, cfg.dp_tau, cfg.dp_alpha, cfg.dp_eps),
            schedule: WarmupCosine { warmup: steps_per_epoch * cfg.warmup_epochs, total: total_steps, start: cfg.warmup_start_lr },
            total_steps,
            target_params,
            online_body,
            device: device.clone(),
        })
    }

    /// Trains on one batch of view pairs (`x1`, `x2`: N×3×H×W, `labels`: N) at global step `t`.
    pub fn step(&mut self, x1: &Tensor, x2: &Tensor, labels: &Tensor, t: usize) -> candle_core::Result<Step> {
        // On one of rayon's worker threads, so that the kernels' hundreds of parallel loops per step fork
        // and join within the pool, instead of handing each over from this thread and sleeping until it
        // is done (two wake-ups per loop).
        rayon::scope(|_| self.step_in_pool(x1, x2, labels, t))
    }

    fn step_in_pool(&mut self, x1: &Tensor, x2: &Tensor, labels: &Tensor, t: usize) -> candle_core::Result<Step> {
        let xs = [x1, x2];
        let mut feats = Vec::with_capacity(2);
        let mut zs = Vec::with_capacity(2);
        let train_ssl = !self.cfg.freeze_backbone;
        for (v, x) in xs.iter().enumerate() {
            let f = self.online.backbone.forward_t(x, true)?;
            feats.push(f);
            if !train_ssl {
                continue; // a frozen backbone: only the readout trains, the projector never runs
            }
            zs.push(self.online.projector.forward_t(&feats[v], true)?);
        }
        let predictors: Vec<Tensor> = if !train_ssl {
            Vec::new()
        } else if self.cfg.dp_per_view {
            // Each view's W_P from C after that view, as the authors' loop over views forms them.
            self.dp.update_views(&zs, &self.device)?.into_iter().map(|u| u.wp).collect()
        } else {
            self.dp.accumulate(&zs[0])?;
            let wp = self.dp.update(&zs[1], &self.device)?.wp;
            vec![wp.clone(), wp]
        };
        let logits = [self.head.forward(&feats[0].detach())?, self.head.forward(&feats[1].detach())?];
        let ce = ((candle_nn::loss::cross_entropy(&logits[0], labels)? + candle_nn::loss::cross_entropy(&logits[1], labels)?)? * 0.5)?;
        let (total, ssl_loss, z_std) = if train_ssl {
            let targets = match &self.target {
                Some(net) => [net.forward(x1, true)?.1.detach(), net.forward(x2, true)?.1.detach()],
                None => [zs[0].detach(), zs[1].detach()],
            };
            let ssl = symmetric(self.cfg.loss, self.cfg.loss_form, [&zs[0], &zs[1]], [&predictors[0], &predictors[1]], [&targets[0], &targets[1]])?;
            let value = ssl.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            let z_std = (normalised_std(&zs[0])? + normalised_std(&zs[1])?) / 2.0;
            ((ssl + &ce)?, Some(value), Some(z_std))
        } else {
            (ce.clone(), None, None)
        };
        let readout_ce = ce.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !(readout_ce.is_finite() && ssl_loss.is_none_or(f64::is_finite)) {
            return Ok(Step::Diverged);
        }
        let grads = total.backward()?;
        let schedule = self.schedule;
        self.opt.step(&grads, |base| schedule.lr(t, base))?;
        if self.target.is_some() {
            ema_update(&self.target_params, &self.online_body, tau_schedule(self.cfg.tau_base, self.cfg.tau_final, t, self.total_steps), self.cfg.kernels)?;
        }
        Ok(Step::Trained(StepStats { ssl_loss, readout_ce, z_std, logits, predictors }))
    }

    /// The readout's logits of a test batch, the network in evaluation mode. With `dp_eval_updates` the
    /// batch's embeddings are folded into C, as the authors' validation forwards do.
    pub fn evaluate(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
        let f = self.online.backbone.forward_t(x, false)?;
        if self.cfg.dp_eval_updates && !self.cfg.freeze_backbone {
            let z = self.online.projector.forward_t(&f, false)?;
            self.dp.accumulate(&z)?;
        }
        self.head.forward(&f)
    }

    /// The backbone's features of `x` in eval mode (no predictor update: for offline evaluation).
    pub fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // Detached: the output of weights that are variables holds the whole forward graph (every
        // intermediate activation), and the closing evaluation keeps one output per batch — 13 GB for a `cpu`
        // run's 22 000 images, which ran two jobs out of a 24 GiB machine's memory.
        Ok(self.online.backbone.forward_t(x, false)?.detach())
    }

    /// The raw spectrum of C, descending; empty when the backbone is frozen (no predictor runs).
    pub fn spectrum(&self) -> Vec<f64> {
        if self.cfg.freeze_backbone {
            return Vec::new();
        }
        let mut s = crate::linalg::spectrum_fast(self.dp.correlation()).values;
        s.reverse();
        s
    }

    /// Number of trainable parameters of the online network and readout.
    pub fn parameters(&self) -> usize {
        params(&self.online_vars).iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Every variable of the online network (and readout) by name, batch-norm statistics included.
    pub fn online_vars(&self) -> Vec<(String, Var)> {
        self.online_vars.named_vars()
    }

    /// Every variable of the EMA target, if there is one.
    pub fn target_vars(&self) -> Vec<(String, Var)> {
        self.target_vars.as_ref().map(|vm| vm.named_vars()).unwrap_or_default()
    }

    /// The optimiser's momentum buffers by parameter name (those created so far).
    pub fn momentum_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (names, bufs) in self.group_names.iter().zip(self.opt.buffers()) {
            for (name, buf) in names.iter().zip(bufs) {
                if let Some(b) = buf {
                    out.push((name.clone(), b.clone()));
                }
            }
        }
        out
    }

    /// The predictor's correlation estimate C.
    pub fn correlation(&self) -> &nalgebra::DMatrix<f64> {
        self.dp.correlation()
    }
}
