//! Local execution: pending runs on a pool of `jobs` threads, each run single-threaded and deterministic,
//! each record stored the moment its run ends.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::provenance::{git_state, now_rfc3339, CANDLE_VERSION};
use super::store::{Provenance, RunRecord, RunStatus, Store, RECORD_SCHEMA};
use crate::engine::{self, EngineContext, EngineError};
use crate::error::{Error, Result};
use crate::spec::Run;

/// How to execute.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub jobs: usize,
    pub progress: bool,
    /// Folder whose git state is recorded as provenance.
    pub repo_dir: PathBuf,
    /// Data folder and device for the engines.
    pub engine: EngineContext,
}

/// What happened to each executed run.
#[derive(Debug, Default)]
pub struct ExecReport {
    pub finished: Vec<(String, RunStatus)>,
}

/// Computes `runs` and stores each record in `store` as it finishes.
pub fn execute(runs: &[Run], store: &Store, opts: &ExecOptions) -> Result<ExecReport> {
    let (git_commit, git_dirty) = git_state(&opts.repo_dir);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
        .map_err(|e| Error::Usage(format!("--jobs {}: cannot start thread pool: {e}", opts.jobs)))?;
    let bar = if opts.progress { ProgressBar::new(runs.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {elapsed_precise} (eta {eta})  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results: Vec<Result<(String, RunStatus)>> = pool.install(|| {
        runs.par_iter()
            .map(|run| {
                let rec = run_one(run, &opts.engine, &git_commit, git_dirty);
                store.save(run, &rec)?;
                bar.inc(1);
                bar.set_message(format!("{} seed {}: {}", run.cell, run.seed, rec.status.as_str()));
                Ok((format!("{} seed {}", run.cell, run.seed), rec.status))
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut report = ExecReport::default();
    for r in results {
        report.finished.push(r?);
    }
    Ok(report)
}

/// Computes one run into a record; an engine error or panic becomes a `failed` record, never a crash.
pub fn run_one(run: &Run, ctx: &EngineContext, git_commit: &str, git_dirty: bool) -> RunRecord {
    let started = now_rfc3339();
    let t0 = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| engine::execute(&run.config, run.seed, ctx)))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(EngineError::Failed(format!("engine panicked: {msg}")))
        });
    let provenance = Provenance {
        git_commit: git_commit.to_string(),
        git_dirty,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        candle_version: CANDLE_VERSION.to_string(),
        device: engine::device_label(&run.config, ctx),
        threads: match run.config {
            crate::spec::RunConfig::Theory(_) => 1,
            crate::spec::RunConfig::Ssl(_) => rayon::current_num_threads(),
        },
        started,
        finished: now_rfc3339(),
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    let base = |status, outcome, message, metrics, history| RunRecord {
        schema: RECORD_SCHEMA,
        spec_hash: run.hash.clone(),
        experiment: run.experiment.clone(),
        cell: run.cell.clone(),
        profile: run.profile.clone(),
        seed: run.seed,
        config: run.config.clone(),
        status,
        outcome,
        message,
        metrics,
        history,
        provenance: provenance.clone(),
    };
    match result {
        Ok(out) => base(out.status, out.outcome, None, out.metrics, out.history),
        Err(EngineError::Failed(msg)) => base(RunStatus::Failed, None, Some(msg), Default::default(), serde_json::Value::Null),
        Err(EngineError::NotRun(msg)) => base(RunStatus::NotRun, None, Some(msg), Default::default(), serde_json::Value::Null),
    }
}

/// Sets an unreadable record aside (renamed, never deleted) so its run is recomputed.
pub fn set_aside(path: &Path) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = path.with_extension(format!("json.corrupt-{stamp}"));
    std::fs::rename(path, &aside).map_err(|e| Error::io(path, e))?;
    Ok(aside)
}
