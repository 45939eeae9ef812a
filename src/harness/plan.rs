//! Planning: which runs of a profile still need computing, given what the store already holds.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::store::{RunRecord, RunStatus, Store};
use crate::error::Result;
use crate::spec::Run;

/// The runs of one invocation, split by what needs doing.
#[derive(Debug, Default)]
pub struct Plan {
    /// Runs to compute now.
    pub pending: Vec<Run>,
    /// Runs already stored with the same spec hash (kept).
    pub done: Vec<Run>,
    /// Stored records whose file matches no planned run (another seed set, a removed cell).
    pub foreign: Vec<String>,
    /// Records that could not be read; they are set aside and their runs re-computed.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Runs whose stored record was computed on other data than is here now (recomputed).
    pub other_data: Vec<String>,
    /// Runs with no record here whose identical run (same spec hash, on the same data) another profile of
    /// the experiment has stored: that record, to copy instead of computing the run again.
    pub reusable: Vec<(Run, PathBuf)>,
}

/// The sha256 of the data each run would read here ([`crate::engine::data_sha256`]); `None` where it
/// cannot be known (theory runs, missing data).
pub type DataOf<'a> = &'a dyn Fn(&Run) -> Option<String>;

/// A stored record finishes its run when its spec hash matches, it did not fail or wait for data, and
/// (where the data here is known: `data`) it was computed on the same data.
pub fn is_done(rec: &RunRecord, run: &Run, data: Option<&str>) -> bool {
    rec.spec_hash == run.hash && !matches!(rec.status, RunStatus::Failed | RunStatus::NotRun) && same_data(rec, data)
}

/// A record made before data fingerprints existed counts as made on other data.
fn same_data(rec: &RunRecord, data: Option<&str>) -> bool {
    data.is_none_or(|sha| rec.provenance.data.as_ref().is_some_and(|d| d.sha256 == sha))
}

/// Splits `runs` into pending and done ([`is_done`]); `force` makes every run pending, and so does a
/// checkpoint of the run.
pub fn plan(runs: Vec<Run>, store: &Store, force: bool, data: DataOf) -> Result<Plan> {
    let mut p = Plan::default();
    let planned: BTreeSet<String> = runs.iter().map(|r| r.file_name()).collect();
    if let Ok(entries) = std::fs::read_dir(store.runs_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !planned.contains(&name) {
                p.foreign.push(name);
            }
        }
    }
    p.foreign.sort();
    for run in runs {
        // A checkpoint is an unfinished computation (removed once its record is stored): resumed, even
        // over an older record (a `--force` sweep stopped midway).
        if force || store.checkpoint_path(&run).exists() {
            p.pending.push(run);
            continue;
        }
        let sha = data(&run);
        match store.load(&run) {
            Ok(Some(rec)) if is_done(&rec, &run, sha.as_deref()) => p.done.push(run),
            Ok(Some(rec)) if is_done(&rec, &run, None) => {
                p.other_data.push(run.id());
                p.pending.push(run);
            }
            Ok(Some(_)) => p.pending.push(run),
            Ok(None) => match stored_elsewhere(store, &run, sha.as_deref()) {
                Some(path) => p.reusable.push((run, path)),
                None => p.pending.push(run),
            },
            Err(e @ crate::error::Error::NewerRecord { .. }) => return Err(e),
            Err(e) => {
                p.unreadable.push((store.run_path(&run), e.to_string()));
                p.pending.push(run);
            }
        }
    }
    Ok(p)
}

/// A finished record of `run` ([`is_done`]) in another profile's folder beside `store`'s, the first in
/// name order. A spec hash covers the resolved config, seed and engine version, not the profile: two
/// profiles that resolve a cell alike compute the same run.
fn stored_elsewhere(store: &Store, run: &Run, data: Option<&str>) -> Option<PathBuf> {
    let experiment_dir = store.dir.parent()?;
    let mut profiles: Vec<PathBuf> = std::fs::read_dir(experiment_dir).ok()?.flatten().map(|e| e.path()).filter(|p| p.is_dir() && *p != store.dir).collect();
    profiles.sort();
    profiles.into_iter().map(|p| p.join("runs").join(run.file_name())).find(|path| {
        path.is_file() && super::store::read_record(path).is_ok_and(|rec| is_done(&rec, run, data))
    })
}

/// Bytes of memory this process may still take: `MemAvailable` of /proc/meminfo, lowered to what the
/// cgroup's limit leaves (containers, Slurm jobs) where one is set; `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    });
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok()?.trim().parse::<u64>().ok();
    let cgroup = read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// "1.5 GiB", "320 MiB".
pub fn human_bytes(bytes: u64) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Refuses `runs` when `at_once` of the largest, side by side, would need more memory than `available`:
/// a clear error naming the spec, the cell and the fields that set the size, before anything starts
/// (an allocation that fails mid-run aborts the process; one that succeeds can push the machine into swap).
pub fn check_memory(source: &std::path::Path, runs: &[Run], at_once: usize, available: u64) -> Result<()> {
    let Some(largest) = runs.iter().max_by_key(|r| r.config.memory_bytes()) else { return Ok(()) };
    let need = largest.config.memory_bytes().saturating_mul(at_once.max(1) as u64);
    if need <= available {
        return Ok(());
    }
    let fields = match &largest.config {
        crate::spec::RunConfig::Theory(_) => "batch, eval_pool, steps / log_every",
        crate::spec::RunConfig::Ssl(_) => "batch, width, dataset",
    };
    Err(crate::Error::Spec {
        path: source.to_path_buf(),
        msg: format!(
            "profile {}, cell {}: {} run(s) at once need about {} of memory ({} each, set by {fields}), and this machine has {} available; \
             lower those values or --jobs, or run where there is more memory",
            largest.profile,
            largest.cell,
            at_once.max(1),
            human_bytes(need),
            human_bytes(largest.config.memory_bytes()),
            human_bytes(available)
        ),
    })
}
