//! Dispatch from a run's config to the engine that computes it, and what an engine hands back (a typed
//! status, metrics, history). The deep-SSL engine reads its dataset and, under a [`TrainControl`], writes
//! checkpoints; the store and the harness above decide everything else about files.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::data::{self, Dataset};
use crate::ssl::config::SslConfig;
use crate::theory::TheoryConfig;
use crate::ssl::train::{train, SslOutcome, TrainControl};
use crate::theory::{self, Outcome};

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

/// The resolved config of one cell under one profile, tagged by engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "engine", content = "params", rename_all = "snake_case")]
pub enum RunConfig {
    Theory(TheoryConfig),
    Ssl(SslConfig),
}

/// What an engine hands back for one run.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    pub status: RunStatus,
    pub outcome: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub history: serde_json::Value,
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
    /// `cpu`, `cuda` or `metal`.
    pub device: String,
}

impl Default for EngineContext {
    fn default() -> Self {
        EngineContext { data_dir: PathBuf::from("data"), device: "cpu".into() }
    }
}

/// Datasets are loaded once per process and shared by its runs. "Not found" is remembered too, so that
/// the runs of a missing dataset do not each search (and ask the hub) again.
fn dataset(name: &str, dir: &std::path::Path) -> crate::Result<Arc<Dataset>> {
    type Found = Result<Arc<Dataset>, String>;
    static CACHE: OnceLock<Mutex<HashMap<(String, PathBuf), Found>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (name.to_string(), dir.to_path_buf());
    let mut guard = cache.lock().map_err(|_| crate::Error::Usage("dataset cache poisoned".into()))?;
    if let Some(found) = guard.get(&key) {
        return found.clone().map_err(crate::Error::Usage);
    }
    let found = match data::find(name, dir) {
        Ok(d) => Ok(Arc::new(d)),
        Err(crate::Error::Usage(missing)) => Err(missing),
        // Malformed data is not remembered: the error is reported, and a fixed file is read next time.
        Err(other) => return Err(other),
    };
    guard.insert(key, found.clone());
    found.map_err(crate::Error::Usage)
}

/// Loads the datasets `runs` need, so that a malformed dataset file stops the sweep before any run
/// starts (with the file and the record or byte that is wrong). Missing data is no error here: those
/// runs are recorded as not run.
pub fn check_data(runs: &[&RunConfig], ctx: &EngineContext) -> crate::Result<()> {
    for cfg in runs {
        if let RunConfig::Ssl(c) = cfg {
            match dataset(&c.dataset, &ctx.data_dir) {
                Ok(_) | Err(crate::Error::Usage(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Computes one run from scratch, without checkpoints. Diverging or collapsing runs are outcomes, not errors.
pub fn execute(config: &RunConfig, seed: u64, ctx: &EngineContext) -> Result<EngineOutput, EngineError> {
    execute_with(config, seed, ctx, &TrainControl::none())
}

/// Computes one run under `ctl`: deep-SSL runs resume from and write its checkpoint and stop when it
/// says (the theory engine takes seconds and ignores both).
pub fn execute_with(config: &RunConfig, seed: u64, ctx: &EngineContext, ctl: &TrainControl) -> Result<EngineOutput, EngineError> {
    let json = |v: &dyn erased::Ser| v.to_json().map_err(EngineError::Failed);
    match config {
        RunConfig::Theory(cfg) => {
            let sim = theory::simulate(cfg, seed);
            let status = match sim.outcome {
                Outcome::Diverged => RunStatus::Diverged,
                Outcome::Collapsed => RunStatus::Collapsed,
                Outcome::Converged | Outcome::Converging | Outcome::Collapsing | Outcome::Unconverged => RunStatus::Ok,
            };
            Ok(EngineOutput {
                status,
                outcome: Some(sim.outcome.as_str().to_string()),
                metrics: sim.metrics,
                history: json(&sim.history)?,
            })
        }
        RunConfig::Ssl(cfg) => {
            let data = dataset(&cfg.dataset, &ctx.data_dir).map_err(|e| match e {
                crate::Error::Usage(msg) => EngineError::NotRun(msg),
                other => EngineError::Failed(other.to_string()),
            })?;
            let device = crate::device::resolve(&ctx.device).map_err(|e| EngineError::Failed(e.to_string()))?;
            let res = train(cfg, seed, &data, &device, ctl).map_err(|e| EngineError::Failed(e.to_string()))?;
            let status = match res.outcome {
                SslOutcome::Finished => RunStatus::Ok,
                SslOutcome::Diverged { .. } => RunStatus::Diverged,
                SslOutcome::Collapsed { .. } => RunStatus::Collapsed,
                SslOutcome::Interrupted { epoch, batch } => {
                    return Err(EngineError::Interrupted(format!("stopped at epoch {} after {batch} batch(es)", epoch + 1)))
                }
            };
            Ok(EngineOutput { status, outcome: None, metrics: res.metrics, history: json(&res.history)? })
        }
    }
}

/// Expected seconds for `runs` (deep-SSL runs whose data is here; the theory engine takes seconds), from
/// timed steps on the context's device, one timing per distinct network and batch. `None` when nothing
/// needs it.
pub fn estimate_seconds(runs: &[&RunConfig], ctx: &EngineContext) -> Result<Option<f64>, String> {
    let device = crate::device::resolve(&ctx.device).map_err(|e| e.to_string())?;
    let mut cache: Vec<(String, f64)> = Vec::new();
    let mut total = None;
    for cfg in runs {
        let RunConfig::Ssl(c) = cfg else { continue };
        // Runs whose data is missing will be recorded as not run in no time.
        if dataset(&c.dataset, &ctx.data_dir).is_err() {
            continue;
        }
        let key = format!("{}/{}/{}/{}/{}/{}", c.dataset, c.width, c.batch, c.proj_hidden, c.proj_out, c.ema);
        let step = match cache.iter().find(|(k, _)| *k == key) {
            Some((_, s)) => *s,
            None => {
                let s = crate::ssl::train::time_step(c, &device).map_err(|e| e.to_string())?;
                cache.push((key, s));
                s
            }
        };
        let steps = (c.train_images() / c.batch) * c.epochs;
        *total.get_or_insert(0.0) += step * steps as f64;
    }
    Ok(total)
}

/// The device a run uses: the theory engine is always on the CPU.
pub fn device_label(config: &RunConfig, ctx: &EngineContext) -> String {
    match config {
        RunConfig::Theory(_) => "cpu".into(),
        RunConfig::Ssl(_) => ctx.device.clone(),
    }
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
