//! Training checkpoints: one safetensors file per run holding every tensor the next step depends on
//! (online and target weights with their batch-norm statistics, momentum buffers, the predictor's
//! correlation in f64) and, in its metadata, the loop position and the history so far as JSON.
//!
//! No RNG state needs saving: every random draw of a run comes from a stream named by (seed, epoch,
//! sample) or (seed, variable), so the position (epoch, batch) fixes all of them. Files are written
//! atomically (temp file, fsync, rename): a reader sees the previous checkpoint or the new one, never a part.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::train::SslHistory;
use crate::error::{Error, Result};

/// Version of the checkpoint layout; a file of another version is not resumed.
pub const CHECKPOINT_SCHEMA: u32 = 1;
const STATE_KEY: &str = "eigenssl.state";

/// Where a run stands: the next batch to train and what has been accumulated so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub schema: u32,
    /// Identifies the run (spec hash and seed): a checkpoint carrying another tag is not resumed.
    pub tag: String,
    /// The epoch in progress (0-based) ...
    pub epoch: usize,
    /// ... and how many of its batches are already trained.
    pub batch: usize,
    /// Running sums of the epoch in progress.
    pub loss_sum: f64,
    pub ce_sum: f64,
    /// Wall seconds already spent on the epoch in progress (for images/s).
    pub epoch_seconds: f64,
    pub history: SslHistory,
}

/// A loaded checkpoint: its state and its tensors by name.
pub struct Checkpoint {
    pub state: TrainState,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// The tensor `name`, or an error naming the file and the missing entry.
    pub fn take(&mut self, name: &str, path: &Path) -> Result<Tensor> {
        self.tensors.remove(name).ok_or_else(|| Error::Record {
            path: path.to_path_buf(),
            msg: format!("checkpoint has no tensor `{name}`"),
        })
    }
}

/// Writes `state` and `tensors` to `path` atomically.
pub fn save(path: &Path, state: &TrainState, tensors: &[(String, Tensor)]) -> Result<()> {
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    let json = serde_json::to_string(state).map_err(|e| bad(format!("cannot serialise checkpoint state: {e}")))?;
    let meta = HashMap::from([(STATE_KEY.to_string(), json)]);
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta))
        .map_err(|e| bad(format!("cannot serialise checkpoint tensors: {e}")))?;
    crate::harness::store::write_atomic(path, &bytes)
}

/// Only the state of a checkpoint (where its run stands), without loading tensors.
pub fn read_state(path: &Path) -> Result<TrainState> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    state_of(path, &bytes)
}

fn state_of(path: &Path, bytes: &[u8]) -> Result<TrainState> {
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a readable checkpoint (truncated?): {e:?}")))?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| bad(format!("checkpoint metadata has no `{STATE_KEY}`")))?;
    let state: TrainState = serde_json::from_str(json).map_err(|e| bad(format!("checkpoint state: {e}")))?;
    if state.schema != CHECKPOINT_SCHEMA {
        return Err(bad(format!("checkpoint schema {} (this build reads {CHECKPOINT_SCHEMA})", state.schema)));
    }
    Ok(state)
}

/// Reads a checkpoint; a truncated, malformed or foreign-schema file is an error naming the file.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let state = state_of(path, &bytes)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| bad(format!("checkpoint tensors: {e}")))?;
    Ok(Checkpoint { state, tensors })
}
