//! Dispatch from a run's config to the engine that computes it. Engines are pure functions of
//! (config, seed, device) and know nothing about files.

use std::collections::BTreeMap;

use crate::harness::store::RunStatus;
use crate::spec::RunConfig;
use crate::theory::{self, Outcome};

/// What an engine hands back for one run.
#[derive(Debug, Clone)]
pub struct EngineOutput {
    pub status: RunStatus,
    pub outcome: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub history: serde_json::Value,
}

/// Computes one run. Diverging or collapsing runs are outcomes, not errors.
pub fn execute(config: &RunConfig, seed: u64) -> Result<EngineOutput, String> {
    match config {
        RunConfig::Theory(cfg) => {
            let sim = theory::simulate(cfg, seed);
            let status = match sim.outcome {
                Outcome::Diverged => RunStatus::Diverged,
                Outcome::Collapsed => RunStatus::Collapsed,
                Outcome::Converged | Outcome::Converging | Outcome::Collapsing | Outcome::Unconverged => RunStatus::Ok,
            };
            let history = serde_json::to_value(&sim.history).map_err(|e| e.to_string())?;
            Ok(EngineOutput { status, outcome: Some(sim.outcome.as_str().to_string()), metrics: sim.metrics, history })
        }
    }
}

/// The device an engine runs on (the theory engine is always on the CPU).
pub fn device_label(config: &RunConfig) -> &'static str {
    match config {
        RunConfig::Theory(_) => "cpu",
    }
}
