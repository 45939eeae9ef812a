//! Dispatch from a run's config to the engine that computes it, and what an engine hands back (a typed
//! status, metrics, history). The deep-SSL engine reads its dataset and, under a [`RunControl`], writes
//! checkpoints; the store and the harness above decide everything else about files. The layers above
//! reach the engines only through this module.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::data::{self, DataFingerprint, Dataset, DatasetKind};
use crate::device::DeviceKind;
use crate::error::Error;
use crate::precision::Precision;
use crate::ssl::config::SslConfig;
use crate::ssl::train::{train, SslOutcome};
use crate::theory::{self, Outcome, TheoryConfig};

/// How a run checkpoints, stops and reports progress (the theory engine only stops).
pub use crate::ssl::train::TrainControl as RunControl;
/// Where a running deep-SSL run stands (what [`RunControl::progress`] receives).
pub use crate::ssl::train::Progress;
/// An offline evaluation of a kept backbone ([`evaluate_kept`]).
pub use crate::ssl::eval::Protocol;

/// How a run ended, as the engines report it and the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Finished; its metrics are results.
    Ok,
    /// Numbers blew up (non-finite or above the spec's bound): a scientific outcome, recorded.
    Diverged,
    /// The representation collapsed: a scientific outcome, recorded.
    Collapsed,
    /// The run could not be carried out (an error); re-run by the next `reproduce`.
    Failed,
    /// Its data is not on this machine; re-attempted by the next `reproduce`.
    NotRun,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Diverged => "diverged",
            RunStatus::Collapsed => "collapsed",
            RunStatus::Failed => "failed",
            RunStatus::NotRun => "not_run",
        }
    }
}

/// A deep run's outcome as tables, the report and the gate count it ([`crate::ssl::collapse`]). It is
/// derived from the stored record and the untrained floor of the run's profile, never stored, so that
/// every record, old or new, is judged by the current criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeepOutcome {
    /// Ended at or above the untrained floor.
    Learned,
    /// Not completely collapsed, but ended below the untrained floor.
    DimCollapsed,
    /// The embeddings collapsed to a point (status `collapsed`).
    Collapsed,
    /// Numbers blew up (status `diverged`).
    Diverged,
}

impl DeepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeepOutcome::Learned => "learned",
            DeepOutcome::DimCollapsed => "dim_collapsed",
            DeepOutcome::Collapsed => "collapsed",
            DeepOutcome::Diverged => "diverged",
        }
    }
}

/// What a run contributes to its profile's untrained floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorRole {
    /// Trains only the readout on a frozen, untrained backbone of this dataset: it is (part of) the floor.
    Floor(DatasetKind),
    /// Trains its backbone on this dataset: judged against that dataset's floor.
    Judged(DatasetKind),
}

/// The outcome of a deep run that ended with `status`, `metrics` and `history` (its record's), judged
/// against `floor`, the untrained floor (readout top-1, %) of its dataset in its profile; with the 1-based
/// epoch it dates from (none for `learned`). `None` where there is nothing to judge: failed or not-run
/// runs, and finished runs with no floor in their profile.
pub fn deep_outcome(status: RunStatus, metrics: &BTreeMap<String, f64>, history: &serde_json::Value, floor: Option<f64>) -> Option<(DeepOutcome, Option<usize>)> {
    let epoch = |name: &str, offset: f64| metrics.get(name).map(|e| (e + offset) as usize);
    match status {
        RunStatus::Collapsed => Some((DeepOutcome::Collapsed, epoch("collapse_epoch", 0.0))),
        RunStatus::Diverged => Some((DeepOutcome::Diverged, epoch("diverged_epoch", 1.0))),
        RunStatus::Ok => {
            let floor = floor?;
            let top1: Vec<f64> = history.get("readout_top1")?.as_array()?.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect();
            Some(match crate::ssl::collapse::below_floor_since(&top1, floor) {
                Some(e) => (DeepOutcome::DimCollapsed, Some(e + 1)),
                None => (DeepOutcome::Learned, None),
            })
        }
        RunStatus::Failed | RunStatus::NotRun => None,
    }
}

/// The resolved config of one cell under one profile, tagged by engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "engine", content = "params", rename_all = "snake_case")]
pub enum RunConfig {
    Theory(TheoryConfig),
    Ssl(SslConfig),
}

impl RunConfig {
    /// The version of the engine that computes this config: part of every run's spec hash, so that a
    /// change to one engine's numbers invalidates that engine's records only.
    pub fn engine_version(&self) -> u32 {
        match self {
            RunConfig::Theory(_) => theory::ENGINE_VERSION,
            RunConfig::Ssl(_) => crate::ssl::ENGINE_VERSION,
        }
    }

    /// Its part in the untrained floor of its profile ([`DeepOutcome`]); `None` for theory runs.
    pub fn floor_role(&self) -> Option<FloorRole> {
        match self {
            RunConfig::Theory(_) => None,
            RunConfig::Ssl(c) if c.freeze_backbone => Some(FloorRole::Floor(c.dataset)),
            RunConfig::Ssl(c) => Some(FloorRole::Judged(c.dataset)),
        }
    }

    /// Bytes of host memory one run of this config is expected to hold at its peak, besides the process
    /// itself (on the CPU; on a GPU the tensors live on the device): what planning checks against the
    /// memory this machine has before any run starts.
    pub fn memory_bytes(&self) -> u64 {
        match self {
            RunConfig::Theory(c) => theory::simulate::memory_bytes(c),
            RunConfig::Ssl(c) => c.memory_bytes(),
        }
    }

    /// The device a run of this config uses: the theory engine is always on the CPU.
    pub fn device(&self, ctx: &EngineContext) -> DeviceKind {
        match self {
            RunConfig::Theory(_) => DeviceKind::Cpu,
            RunConfig::Ssl(_) => ctx.device,
        }
    }

    /// The kernels that compute this run in `ctx`: what the config asks for on the CPU, candle's ops on
    /// a GPU (ours run on the CPU only); `None` for the theory engine, which has none.
    pub fn kernels(&self, ctx: &EngineContext) -> Option<crate::ssl::Kernels> {
        match self {
            RunConfig::Theory(_) => None,
            RunConfig::Ssl(cfg) if ctx.device == DeviceKind::Cpu => Some(cfg.kernels),
            RunConfig::Ssl(_) => Some(crate::ssl::Kernels::Candle),
        }
    }

    /// The precision of this run's f32 matrix products in `ctx` ([`Precision::effective`]); `None` for the
    /// theory engine, which runs on the CPU in f64.
    pub fn precision(&self, ctx: &EngineContext) -> Option<Precision> {
        match self {
            RunConfig::Theory(_) => None,
            RunConfig::Ssl(cfg) => Some(cfg.precision.effective(ctx.device)),
        }
    }
}

/// What an engine hands back for one run.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    pub status: RunStatus,
    /// The theory engine's categorical outcome (the deep engine's status says all).
    pub outcome: Option<Outcome>,
    pub metrics: BTreeMap<String, f64>,
    pub history: serde_json::Value,
    /// The dataset the run read (deep-SSL runs).
    pub data: Option<DataFingerprint>,
    /// sha256 of the weights kept as [`RunControl::weights`] asked.
    pub weights_sha256: Option<String>,
    /// Where a deep run was resumed from checkpoints: (epoch in progress, 0-based; batches done).
    pub resumed_at: Vec<(usize, usize)>,
}

/// Why a run produced no result.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// Its data is not on this machine (the message says where it was looked for).
    NotRun(String),
    Failed(String),
    /// Stopped on request; its checkpoint (if any) resumes it.
    Interrupted(String),
}

/// Where engines find data and which device they use.
#[derive(Debug, Clone)]
pub struct EngineContext {
    pub data_dir: PathBuf,
    pub device: DeviceKind,
}

impl Default for EngineContext {
    fn default() -> Self {
        EngineContext { data_dir: PathBuf::from("data"), device: DeviceKind::Cpu }
    }
}

/// A loaded dataset and its fingerprint (hashed once, when loaded).
type Loaded = (Arc<Dataset>, DataFingerprint);

/// Datasets are loaded once per process and shared by its runs. "Not found" is remembered too, so that
/// the runs of a missing dataset do not each search (and ask the hub) again.
fn dataset(kind: DatasetKind, dir: &std::path::Path) -> crate::Result<Loaded> {
    type Found = Result<Loaded, String>;
    static CACHE: OnceLock<Mutex<HashMap<(DatasetKind, PathBuf), Found>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (kind, dir.to_path_buf());
    // A poisoned lock only means another run panicked while loading; the map itself is still valid.
    let mut guard = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = guard.get(&key) {
        return found.clone().map_err(Error::DataMissing);
    }
    let found = match data::find(kind, dir) {
        Ok(d) => {
            let fingerprint = d.fingerprint();
            Ok((Arc::new(d), fingerprint))
        }
        Err(Error::DataMissing(missing)) => Err(missing),
        // Malformed data is not remembered: the error is reported, and a fixed file is read next time.
        Err(other) => return Err(other),
    };
    guard.insert(key, found.clone());
    found.map_err(Error::DataMissing)
}

/// Why each dataset that `runs` need is missing here, once per dataset (empty when all are present).
/// Malformed data is an error: the sweep stops before any run starts, naming the file.
pub fn missing_data(runs: &[&RunConfig], ctx: &EngineContext) -> crate::Result<Vec<(DatasetKind, String)>> {
    let mut missing: Vec<(DatasetKind, String)> = Vec::new();
    for cfg in runs {
        let RunConfig::Ssl(c) = cfg else { continue };
        if missing.iter().any(|(k, _)| *k == c.dataset) {
            continue;
        }
        match dataset(c.dataset, &ctx.data_dir) {
            Ok(_) => {}
            Err(Error::DataMissing(why)) => missing.push((c.dataset, why)),
            Err(e) => return Err(e),
        }
    }
    Ok(missing)
}

/// The sha256 of the data a run of `config` would read here: `None` for the theory engine and for data
/// that is missing (or unreadable: planning leaves the error to the run).
pub fn data_sha256(config: &RunConfig, ctx: &EngineContext) -> Option<String> {
    let RunConfig::Ssl(c) = config else { return None };
    dataset(c.dataset, &ctx.data_dir).ok().map(|(_, f)| f.sha256)
}

/// The position (epoch, batch) of the checkpoint at `path`: `None` when there is none.
pub fn checkpoint_position(path: &std::path::Path) -> crate::Result<Option<(usize, usize)>> {
    if !path.exists() {
        return Ok(None);
    }
    let state = crate::ssl::checkpoint::read_state(path)?;
    Ok(Some((state.epoch, state.batch)))
}

/// Computes one run from scratch, without checkpoints. Diverging or collapsing runs are outcomes, not errors.
pub fn execute(config: &RunConfig, seed: u64, ctx: &EngineContext) -> Result<EngineOutput, EngineError> {
    execute_with(config, seed, ctx, &RunControl::none())
}

/// Computes one run under `ctl`: deep-SSL runs resume from and write its checkpoint; both engines stop
/// when it says (a theory run, which takes seconds, without a checkpoint).
pub fn execute_with(config: &RunConfig, seed: u64, ctx: &EngineContext, ctl: &RunControl) -> Result<EngineOutput, EngineError> {
    let json = |v: &dyn erased::Ser| v.to_json().map_err(EngineError::Failed);
    match config {
        RunConfig::Theory(cfg) => {
            // No checkpoint: a stopped theory run starts over next time (it takes seconds).
            let sim = theory::simulate_until(cfg, seed, ctl.stop).ok_or_else(|| EngineError::Interrupted("stopped".into()))?;
            let status = match sim.outcome {
                Outcome::Diverged => RunStatus::Diverged,
                Outcome::Collapsed => RunStatus::Collapsed,
                Outcome::Converged | Outcome::Converging | Outcome::Collapsing | Outcome::Unconverged => RunStatus::Ok,
            };
            Ok(EngineOutput {
                status,
                outcome: Some(sim.outcome),
                metrics: sim.metrics,
                history: json(&sim.history)?,
                data: None,
                weights_sha256: None,
                resumed_at: Vec::new(),
            })
        }
        RunConfig::Ssl(cfg) => {
            let (data, fingerprint) = dataset(cfg.dataset, &ctx.data_dir).map_err(|e| match e {
                Error::DataMissing(msg) => EngineError::NotRun(msg),
                other => EngineError::Failed(other.to_string()),
            })?;
            let device = ctx.device.open().map_err(|e| EngineError::Failed(e.to_string()))?;
            cfg.precision.apply(ctx.device);
            let res = train(cfg, seed, &data, &device, ctl).map_err(|e| EngineError::Failed(error_chain(&e)))?;
            let status = match res.outcome {
                SslOutcome::Finished => RunStatus::Ok,
                SslOutcome::Diverged { .. } => RunStatus::Diverged,
                SslOutcome::Collapsed { .. } => RunStatus::Collapsed,
                SslOutcome::Interrupted { epoch, batch } => {
                    return Err(EngineError::Interrupted(format!("stopped at epoch {} after {batch} batch(es)", epoch + 1)))
                }
            };
            Ok(EngineOutput {
                status,
                outcome: None,
                metrics: res.metrics,
                history: json(&res.history)?,
                data: Some(fingerprint),
                weights_sha256: res.weights_sha256,
                resumed_at: res.resumed_at,
            })
        }
    }
}

/// A candle error as what a record stores: its causes, outermost first, one line each, without the
/// backtrace candle attaches when `RUST_BACKTRACE` is set.
///
/// ```
/// let e = candle_core::Error::Msg("batch 64 is larger than the 20 training images".into()).bt();
/// let e = e.context("loading the batch");
/// assert_eq!(eigenssl::engine::error_chain(&e), "loading the batch\ncaused by: batch 64 is larger than the 20 training images");
/// ```
pub fn error_chain(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => error_chain(inner),
        E::Context { inner, context } => format!("{context}\ncaused by: {}", error_chain(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), error_chain(inner)),
        E::WrappedContext { wrapped, context } => format!("{context}\ncaused by: {wrapped}"),
        other => other.to_string(),
    }
}

/// Re-evaluates kept weights (`weights`, whose sha256 must be `sha256`) of a deep run of `config` and
/// `seed` with `protocol`, exactly as training evaluated them: the metric's value.
pub fn evaluate_kept(config: &RunConfig, seed: u64, weights: &std::path::Path, sha256: &str, protocol: Protocol, ctx: &EngineContext) -> crate::Result<f64> {
    let RunConfig::Ssl(cfg) = config else {
        return Err(Error::Usage("only deep-SSL runs have weights to evaluate".into()));
    };
    let (data, _) = dataset(cfg.dataset, &ctx.data_dir)?;
    let device = ctx.device.open()?;
    let failed = |e: candle_core::Error| Error::Environment(format!("evaluating {}: {e}", weights.display()));
    let learner = crate::ssl::step::Learner::new(cfg, seed, data.train.h, data.classes, 1, &device).map_err(failed)?;
    crate::ssl::weights::load_into(weights, &learner, sha256, &device)?;
    let metrics = crate::ssl::train::offline_metrics(cfg, seed, &learner, &data, &device, &[protocol]).map_err(failed)?;
    metrics.get(protocol.metric()).copied().ok_or_else(|| Error::Usage(format!("the run's config disables {} (knn_k or linear_epochs is 0)", protocol.metric())))
}

/// Expected seconds of training steps of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeEstimate {
    /// All runs' steps, one after another.
    pub total_s: f64,
    /// The longest run's.
    pub longest_s: f64,
}

impl TimeEstimate {
    /// Wall-clock seconds with `at_once` runs at a time: the total shared out, but never less than the
    /// longest run.
    ///
    /// ```
    /// use eigenssl::engine::TimeEstimate;
    /// let e = TimeEstimate { total_s: 100.0, longest_s: 40.0 };
    /// assert_eq!(e.wall_s(1), 100.0);
    /// assert_eq!(e.wall_s(2), 50.0);
    /// assert_eq!(e.wall_s(4), 40.0); // the longest run still takes its time
    /// ```
    pub fn wall_s(&self, at_once: usize) -> f64 {
        (self.total_s / at_once.max(1) as f64).max(self.longest_s)
    }
}

/// Expected seconds of training steps for `runs` (deep-SSL runs whose data is here, or all of them with
/// `with_missing_data`; the theory engine takes seconds), from timed steps on the context's device (on
/// the calling thread's rayon pool: call it on a run's pool to time what a run gets), one timing per
/// distinct network and batch. `None` when nothing needs it.
pub fn estimate_seconds(runs: &[&RunConfig], ctx: &EngineContext, with_missing_data: bool) -> crate::Result<Option<TimeEstimate>> {
    let device = ctx.device.open()?;
    let mut cache: Vec<(String, f64)> = Vec::new();
    let mut total: Option<TimeEstimate> = None;
    for cfg in runs {
        let RunConfig::Ssl(c) = cfg else { continue };
        // Runs whose data is missing will be recorded as not run in no time.
        if !with_missing_data && dataset(c.dataset, &ctx.data_dir).is_err() {
            continue;
        }
        // What a step's cost depends on (a frozen backbone trains only the readout).
        let key = format!(
            "{}/{}/{}/{}/{}/{}/{}/{}/{}/{}",
            c.dataset, c.width, c.batch, c.proj_hidden, c.proj_out, c.ema, c.freeze_backbone, c.dp_per_view, c.kernels, c.precision
        );
        let step = match cache.iter().find(|(k, _)| *k == key) {
            Some((_, s)) => *s,
            None => {
                c.precision.apply(ctx.device);
                let s = crate::ssl::train::time_step(c, &device).map_err(|e| Error::Environment(format!("timing a training step: {e}")))?;
                cache.push((key, s));
                s
            }
        };
        let run_s = step * ((c.train_images() / c.batch) * c.epochs) as f64;
        let t = total.get_or_insert(TimeEstimate { total_s: 0.0, longest_s: 0.0 });
        t.total_s += run_s;
        t.longest_s = t.longest_s.max(run_s);
    }
    Ok(total)
}

mod erased {
    /// Serialisation to a JSON value behind a trait object (histories of different engines).
    pub trait Ser {
        fn to_json(&self) -> Result<serde_json::Value, String>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> Result<serde_json::Value, String> {
            serde_json::to_value(self).map_err(|e| e.to_string())
        }
    }
}
