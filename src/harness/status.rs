//! Where each run of a profile stands, read off the results folder: its record, its lock (a process is
//! running it now) and its checkpoint (how far an unfinished run got).

use std::path::Path;

use super::plan::is_done;
use super::store::{RunStatus, Store};
use crate::error::Result;
use crate::spec::{Experiment, Run};

/// One run's state.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Finished, with this status (ok, diverged, collapsed).
    Done(RunStatus),
    /// A process holds its lock right now.
    Running,
    /// Stored as failed or not run (data missing); the next `reproduce` tries again.
    Retry(RunStatus),
    /// No record yet.
    Pending,
}

impl RunState {
    pub fn label(&self) -> &'static str {
        match self {
            RunState::Done(_) => "done",
            RunState::Running => "running",
            RunState::Retry(RunStatus::NotRun) => "not run",
            RunState::Retry(_) => "failed",
            RunState::Pending => "pending",
        }
    }
}

/// A run, its state and a detail (the outcome, the checkpoint's position or the error).
#[derive(Debug, Clone)]
pub struct RunStatusLine {
    pub run: Run,
    pub state: RunState,
    pub detail: String,
}

pub fn status(exp: &Experiment, profile: &str, seeds: Option<&[u64]>, out: &Path) -> Result<Vec<RunStatusLine>> {
    let store = Store::new(out, &exp.name, profile);
    let mut lines = Vec::new();
    for run in exp.runs(profile, seeds)? {
        let record = store.load(&run);
        let ck = store.checkpoint_path(&run);
        let progress = || match crate::engine::checkpoint_position(&ck) {
            Ok(Some((epoch, batch))) => format!("checkpoint at epoch {}, batch {batch}", epoch + 1),
            Ok(None) => String::new(),
            Err(e) => format!("unreadable checkpoint: {e}"),
        };
        let (state, detail) = match record {
            Ok(Some(rec)) if is_done(&rec, &run, None) => (RunState::Done(rec.status), rec.status.as_str().to_string()),
            _ if store.is_locked(&run) => (RunState::Running, progress()),
            Ok(Some(rec)) if rec.spec_hash == run.hash => {
                (RunState::Retry(rec.status), rec.message.unwrap_or_default().chars().take(120).collect())
            }
            Ok(Some(_)) => (RunState::Pending, "stored record is of another spec version".into()),
            Ok(None) => (RunState::Pending, progress()),
            Err(e) => (RunState::Pending, format!("unreadable record: {e}")),
        };
        lines.push(RunStatusLine { run, state, detail });
    }
    Ok(lines)
}
