//! Kept weights: the final online backbone and projector (batch-norm statistics included) as a
//! safetensors file, so that a finished run can be evaluated again (`eigenssl eval`) or used elsewhere.

use std::path::Path;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use super::step::Learner;
use crate::error::{Error, Result};

/// Whether a variable of the online network is kept: the backbone and the projector, not the readout.
fn kept(name: &str) -> bool {
    name.starts_with("backbone.") || name.starts_with("projector.")
}

/// Writes the learner's backbone and projector to `path` (atomically); returns the file's sha256.
pub fn save(path: &Path, learner: &Learner) -> Result<String> {
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    let vars = learner.online_vars();
    let tensors: Vec<(&str, Tensor)> = vars.iter().filter(|(n, _)| kept(n)).map(|(n, v)| (n.as_str(), v.as_tensor().clone())).collect();
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (*n, t)), None).map_err(|e| bad(format!("cannot serialise weights: {e}")))?;
    crate::fsutil::write_atomic(path, &bytes)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Sets the learner's backbone and projector from `path`; a missing or mis-shaped tensor is an error
/// naming it. `expected_sha256` (from the run's record) is checked first.
pub fn load_into(path: &Path, learner: &Learner, expected_sha256: &str, device: &Device) -> Result<()> {
    let bad = |msg: String| Error::Record { path: path.to_path_buf(), msg };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    if sha != expected_sha256 {
        return Err(bad(format!("sha256 {sha} differs from the record's {expected_sha256}")));
    }
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
    for (name, var) in learner.online_vars().into_iter().filter(|(n, _)| kept(n)) {
        let t = tensors.remove(&name).ok_or_else(|| bad(format!("no tensor `{name}`")))?;
        if t.shape() != var.shape() || t.dtype() != var.dtype() {
            return Err(bad(format!("`{name}`: shape {:?} {:?}, expected {:?} {:?}", t.shape(), t.dtype(), var.shape(), var.dtype())));
        }
        var.set(&t).map_err(|e| bad(format!("`{name}`: {e}")))?;
    }
    Ok(())
}
