//! The configuration of one deep-SSL run (Table 1): every hyper-parameter of the authors' code that the
//! paper leaves out is a field, and so is every way in which we may train differently from that code
//! (`docs/src/table1-protocol.md` says where each default comes from).

use serde::{Deserialize, Serialize};

use super::loss::{LossForm, LossKind};
use super::init::InitLaw;
use candle_cpu_kernels::Kernels;

use crate::precision::Precision;
use crate::data::augment::Pipeline;
use crate::data::DatasetKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backbone {
    /// The paper's backbone.
    Vgg11,
    /// The authors' code's backbone (CIFAR stem at 32 px, ImageNet stem otherwise).
    Resnet18,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// LARS (η = `lars_eta`, clipped), the authors' optimiser with an EMA target.
    Lars,
    /// SGD with momentum, the authors' optimiser without an EMA target.
    Sgd,
}

crate::overlay_config! {
    /// One deep-SSL run.
    pub struct SslConfig / SslOverlay {
        /// `cifar10`, `stl10`, or `synthetic` (generated; for tests).
        pub dataset: DatasetKind,
        /// Use the first this many training images (0 = all).
        pub train_subset: usize,
        /// Evaluate the readout on the first this many test images (0 = all).
        pub test_subset: usize,
        pub augment: Pipeline,
        pub backbone: Backbone,
        /// Channel multiplier of the backbone (1 = VGG11's 64…512 channels).
        pub width: f64,
        /// Weight init: `torchvision` (the authors' framework) or `candle` (candle-nn's laws).
        pub init: InitLaw,
        pub proj_hidden: usize,
        pub proj_out: usize,
        pub loss: LossKind,
        pub loss_form: LossForm,
        /// EMA target network (τ from `tau_base` to `tau_final`, cosine) or none (τ = 0: the target is the
        /// online network under a stop-gradient).
        pub ema: bool,
        pub tau_base: f64,
        pub tau_final: f64,
        /// DirectPred: correlation EMA, power and ε.
        pub dp_tau: f64,
        pub dp_alpha: f64,
        pub dp_eps: f64,
        /// Fold each view's batch into C and recompute W_P before predicting that view, as the authors'
        /// `forward` does (two eigendecompositions per step). `false`: both views fold in, then one W_P
        /// for both (one eigendecomposition; faster, not the authors' computation).
        pub dp_per_view: bool,
        /// Evaluation forwards (test split, eval mode) also fold their embeddings into C, as the authors'
        /// shared `forward` does.
        pub dp_eval_updates: bool,
        pub optimizer: OptimizerKind,
        /// Base learning rate at batch 256 (scaled linearly with `batch`); the readout's likewise.
        pub lr: f64,
        pub momentum: f64,
        pub weight_decay: f64,
        pub lars_eta: f64,
        pub classifier_lr: f64,
        pub batch: usize,
        pub epochs: usize,
        pub warmup_epochs: usize,
        pub warmup_start_lr: f64,
        /// Train only the linear readout on a frozen, untrained backbone (the baseline the table shows).
        pub freeze_backbone: bool,
        /// Weighted k-NN on the final backbone's features (`ssl::eval`): neighbours (0 = no k-NN) and
        /// temperature. Records made before these fields existed read as no k-NN and no probe.
        #[serde(default)]
        pub knn_k: usize,
        #[serde(default = "defaults::knn_temperature")]
        pub knn_temperature: f64,
        /// Offline linear probe on the final backbone's frozen features (`ssl::eval`): epochs (0 = none),
        /// learning rate at batch 256, batch.
        #[serde(default)]
        pub linear_epochs: usize,
        #[serde(default = "defaults::linear_lr")]
        pub linear_lr: f64,
        #[serde(default = "defaults::linear_batch")]
        pub linear_batch: usize,
        /// `native`: our CPU kernels where they apply (CPU, f32); `candle`: candle's ops everywhere, so that
        /// the CPU runs what CUDA and Metal run. Left out of the serialised config when `native`, so that
        /// the spec hashes of the runs our kernels trained did not move when the field came.
        #[serde(default, skip_serializing_if = "Kernels::is_native")]
        pub kernels: Kernels,
        /// f32 matrix products on CUDA: `f32`, or `tf32` on tensor cores ([`crate::precision`]); the CPU and
        /// Metal compute in f32 either way. Left out of the serialised config when `f32`, so that earlier
        /// spec hashes did not move.
        #[serde(default, skip_serializing_if = "Precision::is_f32")]
        pub precision: Precision,
    }
}

/// What older records, which lack a field, read as (specs always give every field).
mod defaults {
    pub(super) fn knn_temperature() -> f64 {
        0.07
    }
    pub(super) fn linear_lr() -> f64 {
        0.1
    }
    pub(super) fn linear_batch() -> usize {
        256
    }
}

impl SslConfig {
    /// Number of training images this config uses (the full size of its dataset, or its subset).
    pub fn train_images(&self) -> usize {
        let full = self.dataset.train_images();
        if self.train_subset == 0 { full } else { self.train_subset.min(full) }
    }

    /// Expected peak bytes of a run on the CPU: the activations a step keeps for its backward pass
    /// (5.2 MiB per image pair at width 1 and 32 px, from the bench's peak memory at widths 1/4 and 1 and
    /// at 96 px; taken as 6 to stay on the safe side, linear in width and in pixels), the parameters with
    /// their gradients, momenta and EMA copies, the whole dataset in memory, and the features the closing
    /// k-NN and linear probe hold. On candle's ops (`kernels: candle`) the activations take 10 times as
    /// much: the unfolded convolutions keep their columns, and every op its own output (bench-step's peak
    /// at width/4, batch 2×128: 3185 MiB against 336).
    pub fn memory_bytes(&self) -> u64 {
        const MIB: f64 = 1024.0 * 1024.0;
        let side = self.image_side() as f64;
        let pixels = (side / 32.0).powi(2);
        let per_pair = match self.kernels {
            Kernels::Native => 6.0,
            Kernels::Candle => 60.0,
        };
        let activations = self.batch as f64 * per_pair * MIB * self.width * pixels;
        let (h, o) = (self.proj_hidden as f64, self.proj_out as f64);
        let features = 512.0 * self.width;
        let parameters = 9.23e6 * self.width * self.width + features * h + h * o + o * o;
        let images = self.dataset.train_images() as f64 * 1.2;
        let data = images * side * side * 3.0;
        let eval = images * features * 4.0 * 2.0;
        (activations + parameters * 4.0 * 6.0 + data + eval).min(u64::MAX as f64) as u64
    }

    /// Side of the dataset's square images.
    pub fn image_side(&self) -> usize {
        self.dataset.image_side()
    }

    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut checks = crate::overlay::Checks::default();
        let mut need = |ok: bool, what: &str| checks.need(ok, what);
        need(self.width > 0.0 && self.width.is_finite(), "width: expected a number > 0");
        need(self.proj_hidden >= 1 && self.proj_out >= 1, "proj_hidden, proj_out: expected integers >= 1");
        need(self.batch >= 2, "batch: expected an integer >= 2");
        need(self.lr > 0.0 && self.classifier_lr > 0.0, "lr, classifier_lr: expected numbers > 0");
        need((0.0..=1.0).contains(&self.tau_base) && (0.0..=1.0).contains(&self.tau_final), "tau_base, tau_final: expected numbers in [0, 1]");
        need((0.0..1.0).contains(&self.dp_tau), "dp_tau: expected a number in [0, 1)");
        need(self.dp_alpha > 0.0, "dp_alpha: expected a number > 0");
        need(self.dp_eps >= 0.0, "dp_eps: expected a number >= 0");
        need((0.0..1.0).contains(&self.momentum), "momentum: expected a number in [0, 1)");
        need(self.weight_decay >= 0.0, "weight_decay: expected a number >= 0");
        need(self.warmup_epochs <= self.epochs, "warmup_epochs: expected at most epochs");
        need(self.epochs >= 1, "epochs: expected an integer >= 1");
        need(self.knn_temperature > 0.0, "knn_temperature: expected a number > 0");
        need(self.linear_lr > 0.0, "linear_lr: expected a number > 0");
        need(self.linear_batch >= 1, "linear_batch: expected an integer >= 1");
        let images = self.train_images();
        let batch_fits = format!("batch: expected at most the {images} training images of {} (train_subset {})", self.dataset, self.train_subset);
        need(self.batch <= images, &batch_fits);
        checks.finish()
    }
}
