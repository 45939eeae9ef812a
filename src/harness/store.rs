//! The run store: one JSON record per (cell, seed) under `<out>/<experiment>/<profile>/runs/`, written
//! atomically (temp file in the same folder, fsync, rename), so a reader never sees a partial record.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::engine::RunStatus;
use crate::error::{Error, Result};
pub use crate::fsutil::{set_aside, write_atomic};
use crate::spec::{Run, RunConfig};

/// Version of the record layout; readers accept this and older. 2: provenance names the build's commit
/// and source diff, the toolchain, the SIMD level, the engine version and the data read.
pub const RECORD_SCHEMA: u32 = 2;

/// Where and on what a run was computed: the code, the data and the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The commit the binary was built from (schema 1: the work tree's HEAD at run time).
    pub git_commit: String,
    /// The binary was built with uncommitted changes to its sources (`results/` and documents aside).
    pub git_dirty: bool,
    /// sha256 of those changes, so that two dirty builds can be told apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_diff_sha256: Option<String>,
    pub crate_version: String,
    pub candle_version: String,
    /// The version of the engine that computed the run (part of its spec hash).
    #[serde(default)]
    pub engine_version: u32,
    #[serde(default)]
    pub rustc: String,
    #[serde(default)]
    pub target: String,
    /// The vector instruction set the kernels used ([`super::provenance::simd_level`]).
    #[serde(default)]
    pub simd: String,
    pub device: crate::device::DeviceKind,
    /// The kernels that computed a deep-SSL run (`native`: ours; `candle`: candle's ops, as on GPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<crate::ssl::Kernels>,
    /// The precision of a deep-SSL run's f32 matrix products (`tf32` only on CUDA, when its spec asks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::precision::Precision>,
    pub threads: usize,
    /// The dataset read (deep-SSL runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<crate::data::DataFingerprint>,
    pub started: String,
    pub finished: String,
    pub wall_seconds: f64,
    /// The checkpoints this run was resumed from, in order; empty when it ran in one go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_from: Vec<ResumePoint>,
}

/// Where a run was resumed from a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The epoch in progress, 1-based ...
    pub epoch: usize,
    /// ... and how many of its batches were already trained.
    pub batch: usize,
}

/// One run's stored result: plain data that any later version can read and compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub spec_hash: String,
    pub experiment: String,
    pub cell: String,
    pub profile: String,
    pub seed: u64,
    pub config: RunConfig,
    pub status: RunStatus,
    /// Engine-specific categorical outcome (theory: converged / unconverged / collapsed / diverged).
    #[serde(default)]
    pub outcome: Option<crate::theory::Outcome>,
    /// The error, for `failed` runs.
    #[serde(default)]
    pub message: Option<String>,
    /// Final scalar metrics: what tables and the regression gate read. Undefined metrics are absent.
    pub metrics: BTreeMap<String, f64>,
    /// Engine-specific logged history (theory: eigenvalues and 2-D trajectories every `log_every` steps).
    pub history: serde_json::Value,
    pub provenance: Provenance,
    /// The final backbone and projector, when kept (`--keep-weights`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<KeptWeights>,
}

/// Where a run's kept weights are and what they hash to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptWeights {
    /// File name under the profile's `weights/` folder.
    pub file: String,
    pub sha256: String,
}

/// The results folder of one experiment and profile.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

impl Store {
    pub fn new(out: &Path, experiment: &str, profile: &str) -> Self {
        Store { dir: out.join(experiment).join(profile) }
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }

    pub fn run_path(&self, run: &Run) -> PathBuf {
        self.runs_dir().join(run.file_name())
    }

    /// The stored record of a run, if there is a readable one.
    pub fn load(&self, run: &Run) -> Result<Option<RunRecord>> {
        let path = self.run_path(run);
        if !path.exists() {
            return Ok(None);
        }
        read_record(&path).map(Some)
    }

    /// Every readable record in the runs folder, keyed by file name.
    pub fn load_all(&self) -> Result<BTreeMap<String, RunRecord>> {
        let dir = self.runs_dir();
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                out.insert(name, read_record(&path)?);
            }
        }
        Ok(out)
    }

    /// The run's training checkpoint (deep-SSL runs; removed once its record is stored).
    pub fn checkpoint_path(&self, run: &Run) -> PathBuf {
        self.dir.join("checkpoints").join(run.file_name().replace(".json", ".safetensors"))
    }

    /// Where the run's weights are kept (`--keep-weights`).
    pub fn weights_path(&self, run: &Run) -> PathBuf {
        self.dir.join("weights").join(run.file_name().replace(".json", ".safetensors"))
    }

    pub fn lock_path(&self, run: &Run) -> PathBuf {
        self.dir.join("locks").join(run.file_name().replace(".json", ".lock"))
    }

    /// Takes the run's advisory lock (an OS file lock, released when the guard drops or the process
    /// dies, however it dies). With `wait` false, `Ok(None)` says another process holds it.
    pub fn lock(&self, run: &Run, wait: bool) -> Result<Option<RunLock>> {
        let path = self.lock_path(run);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if wait {
            file.lock().map_err(|e| Error::io(&path, e))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        // Who holds it, for `status` and for people looking at the folder.
        let mut f = &file;
        let _ = f.set_len(0);
        let _ = writeln!(f, "pid {} on {}", std::process::id(), hostname());
        Ok(Some(RunLock { _file: file }))
    }

    /// True when another process holds the run's lock right now.
    pub fn is_locked(&self, run: &Run) -> bool {
        let Ok(file) = std::fs::File::open(self.lock_path(run)) else { return false };
        matches!(file.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Fails early, with the folder named, when results cannot be written here (read-only or full
    /// disk): writes, syncs and removes a 1 MiB probe file in the folder, or in the nearest folder above
    /// it that exists (nothing is created: a sweep refused later leaves no trace).
    pub fn check_writable(&self) -> Result<()> {
        let fail = |e: std::io::Error| Error::Environment(format!(
            "results folder {} is not writable ({e}); choose another with --out or free space there",
            self.dir.display()
        ));
        let existing = self.dir.ancestors().find(|d| d.is_dir()).unwrap_or(Path::new("."));
        let mut probe = tempfile::Builder::new().prefix(".probe-").tempfile_in(existing).map_err(fail)?;
        probe.write_all(&vec![0u8; 1 << 20]).map_err(fail)?;
        probe.as_file().sync_all().map_err(fail)?;
        Ok(())
    }

    pub fn save(&self, run: &Run, record: &RunRecord) -> Result<PathBuf> {
        let path = self.run_path(run);
        let text = serde_json::to_string(record).map_err(|e| Error::Record {
            path: path.clone(),
            msg: format!("cannot serialise record: {e}"),
        })?;
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// A held run lock.
pub struct RunLock {
    _file: std::fs::File,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

pub fn read_record(path: &Path) -> Result<RunRecord> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // The schema first: a newer record may not parse as this build's, and is not corrupt for that.
    #[derive(Deserialize)]
    struct Schema {
        schema: u32,
    }
    if let Ok(Schema { schema }) = serde_json::from_str(&text) {
        if schema > RECORD_SCHEMA {
            return Err(Error::NewerRecord { path: path.to_path_buf(), schema, supported: RECORD_SCHEMA });
        }
    }
    serde_json::from_str(&text).map_err(|e| Error::Record { path: path.to_path_buf(), msg: format!("not a valid run record: {e}") })
}

