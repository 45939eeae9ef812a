//! Training checkpoints: one safetensors file per run holding every tensor the next step depends on
//! (online and target weights with their batch-norm statistics, momentum buffers, the predictor's
//! correlation in f64) and, in its metadata, the loop position and the history so far as JSON.
//!
//! No RNG state needs saving: every random draw of a run comes from a stream named by (seed, epoch,
//! sample) or (seed, variable), so the position (epoch, batch) fixes all of them. Files are written
//! atomically (temp file, fsync, rename): a reader sees the previous checkpoint or the new one, never a part.
//! The metadata holds the sha256 of the tensor data: a file whose bytes changed after it was written
//! (a bad disk, a bad copy) is refused, not resumed.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::step::Learner;
use super::history::SslHistory;
use crate::error::{Error, Result};

/// Version of the checkpoint layout; a file of another version is not resumed.
pub const CHECKPOINT_SCHEMA: u32 = 3;
const STATE_KEY: &str = "eigenssl.state";
const PAYLOAD_KEY: &str = "eigenssl.payload_sha256";

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
    pub z_std_sum: f64,
    /// Wall seconds already spent on the epoch in progress (for images/s).
    pub epoch_seconds: f64,
    /// The first epoch of the current run of collapsed epochs, if the last finished epoch was one.
    pub collapsed_since: Option<usize>,
    pub history: SslHistory,
    /// Where the run was resumed from checkpoints so far: (epoch in progress, 0-based; batches done).
    #[serde(default)]
    pub resumed_at: Vec<(usize, usize)>,
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
    let serialise = |meta: HashMap<String, String>| {
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta)).map_err(|e| bad(format!("cannot serialise checkpoint tensors: {e}")))
    };
    // The tensor data does not depend on the metadata: hash it once, then write it with its hash.
    let unsigned = serialise(HashMap::from([(STATE_KEY.to_string(), json.clone())]))?;
    let sha = payload_sha256(path, &unsigned)?;
    let bytes = serialise(HashMap::from([(STATE_KEY.to_string(), json), (PAYLOAD_KEY.to_string(), sha)]))?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// sha256 of a safetensors file's tensor data (all that follows its header).
fn payload_sha256(path: &Path, bytes: &[u8]) -> Result<String> {
    use sha2::Digest;
    let bad = || Error::Record { path: path.to_path_buf(), msg: "not a readable checkpoint (truncated?)".into() };
    let header: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let start = usize::try_from(u64::from_le_bytes(header)).ok().and_then(|n| n.checked_add(8)).ok_or_else(bad)?;
    Ok(hex::encode(sha2::Sha256::digest(bytes.get(start..).ok_or_else(bad)?)))
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
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(format!("not a readable checkpoint: {e:?}")))?;
    let stored = meta.metadata().as_ref().and_then(|m| m.get(PAYLOAD_KEY)).ok_or_else(|| bad(format!("checkpoint metadata has no `{PAYLOAD_KEY}`")))?;
    let actual = payload_sha256(path, &bytes)?;
    if *stored != actual {
        return Err(bad(format!("the tensor data does not match its checksum (sha256 {actual}, written as {stored}): the file changed after it was written")));
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| bad(format!("checkpoint tensors: {e}")))?;
    Ok(Checkpoint { state, tensors })
}

/// Loads the checkpoint at `path` into `learner` and returns where its run stands. A checkpoint of another
/// run (`tag`), or one with a missing or mis-shaped tensor, is an error and leaves the run to start afresh.
pub fn resume(path: &Path, tag: &str, learner: &mut Learner, device: &Device) -> Result<TrainState> {
    let mut ck = load(path, device)?;
    if ck.state.tag != tag {
        return Err(Error::Record { path: path.to_path_buf(), msg: format!("checkpoint of another run ({})", ck.state.tag) });
    }
    learner.restore(&mut ck, path)?;
    Ok(ck.state)
}

impl Learner {
    /// Every tensor a checkpoint holds: online and target variables, momentum buffers, C.
    pub(crate) fn checkpoint_tensors(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (n, v) in self.online_vars.named_vars() {
            out.push((format!("online/{n}"), v.as_tensor().clone()));
        }
        for (n, v) in self.target_vars.as_ref().map(|t| t.named_vars()).unwrap_or_default() {
            out.push((format!("target/{n}"), v.as_tensor().clone()));
        }
        for (g, bufs) in self.opt.buffers().iter().enumerate() {
            for (i, b) in bufs.iter().enumerate() {
                if let Some(b) = b {
                    out.push((format!("momentum/{g}/{i}"), b.clone()));
                }
            }
        }
        let c = self.dp.correlation();
        let d = c.nrows();
        let rows: Vec<f64> = (0..d * d).map(|i| c[(i / d, i % d)]).collect();
        out.push(("predictor/correlation".into(), Tensor::from_vec(rows, (d, d), &Device::Cpu)?));
        Ok(out)
    }

    /// Sets every variable, buffer and the correlation from `ck`; any missing or mis-shaped entry is an
    /// error.
    fn restore(&mut self, ck: &mut Checkpoint, path: &Path) -> Result<()> {
        let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
        let set = |var: &Var, t: Tensor, name: &str| {
            if t.shape() != var.shape() || t.dtype() != var.dtype() {
                return Err(bad(format!("`{name}`: shape {:?} {:?}, expected {:?} {:?}", t.shape(), t.dtype(), var.shape(), var.dtype())));
            }
            var.set(&t).map_err(|e| bad(format!("`{name}`: {e}")))
        };
        for (prefix, vm) in [("online", Some(&self.online_vars)), ("target", self.target_vars.as_ref())] {
            for (n, v) in vm.map(|m| m.named_vars()).unwrap_or_default() {
                let name = format!("{prefix}/{n}");
                set(&v, ck.take(&name, path)?, &name)?;
            }
        }
        let mut buffers = Vec::new();
        for (g, bufs) in self.opt.buffers().iter().enumerate() {
            let mut group = Vec::new();
            for i in 0..bufs.len() {
                group.push(ck.tensors.remove(&format!("momentum/{g}/{i}")));
            }
            buffers.push(group);
        }
        self.opt.set_buffers(buffers);
        let c = ck.take("predictor/correlation", path)?;
        let d = self.dp.correlation().nrows();
        let flat = c.flatten_all().and_then(|t| t.to_vec1::<f64>()).map_err(|e| bad(format!("predictor/correlation: {e}")))?;
        if flat.len() != d * d {
            return Err(bad(format!("predictor/correlation has {} entries, expected {}", flat.len(), d * d)));
        }
        self.dp.set_correlation(nalgebra::DMatrix::from_row_slice(d, d, &flat));
        Ok(())
    }
}
