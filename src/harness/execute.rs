//! Local execution: up to `jobs` runs at once, each in its own pool of cores / `jobs` threads (candle's CPU
//! kernels run on the pool they are called from; a run is deterministic for its thread count), each record
//! stored the moment its run ends.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::live::Live;
use super::plan::is_done;
use super::provenance::{self, now_rfc3339, BUILD_COMMIT, CANDLE_VERSION};
use super::store::{KeptWeights, Provenance, ResumePoint, RunRecord, RunStatus, Store, RECORD_SCHEMA};
use crate::engine::{self, EngineContext, EngineError, RunControl};
use crate::error::{Error, Result};
use crate::spec::Run;

/// How to execute.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub jobs: usize,
    pub progress: bool,
    /// Data folder and device for the engines.
    pub engine: EngineContext,
    /// Keep each deep run's final backbone and projector next to its record.
    pub keep_weights: bool,
    /// Set (by a signal handler) to stop: running deep-SSL runs checkpoint at their next step and
    /// return, runs not yet started are left pending.
    pub stop: Arc<AtomicBool>,
    /// Start a sweep expected to take more than a day (`--yes`).
    pub long_sweep_ok: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            jobs: 1,
            progress: false,
            engine: EngineContext::default(),
            keep_weights: false,
            stop: Arc::new(AtomicBool::new(false)),
            long_sweep_ok: false,
        }
    }
}

/// What happened to each run handed to [`execute`].
#[derive(Debug, Default)]
pub struct ExecReport {
    /// Computed and stored here.
    pub finished: Vec<(String, RunStatus)>,
    /// Stopped on request (with a checkpoint where the engine writes one) or not started.
    pub interrupted: Vec<String>,
    /// Finished meanwhile by another process working on the same folder.
    pub done_elsewhere: Vec<String>,
}

enum Attempt {
    Finished(RunStatus),
    Interrupted,
    Busy,
    DoneElsewhere,
}

/// Computes `runs` and stores each record in `store` as it finishes. Each run is computed under its
/// advisory lock: a run another process holds is put off until every free one is done, then waited for
/// (and skipped if that process finished it). Unless `force`, a run found finished once its lock is
/// held is not computed again.
pub fn execute(runs: &[Run], store: &Store, opts: &ExecOptions, force: bool) -> Result<ExecReport> {
    let live = Live::new(runs.len(), opts.progress);
    let say = |msg: &str| live.say(msg);
    // `--device cuda`: each of the `jobs` workers keeps one GPU (worker w the (w mod GPUs)-th).
    let devices = opts.engine.device.spread();
    let attempt = |run: &Run, wait: bool, worker: usize| -> Result<Attempt> {
        let ctx = EngineContext { device: device_of_worker(&devices, worker), ..opts.engine.clone() };
        let Some(_lock) = store.lock(run, wait)? else { return Ok(Attempt::Busy) };
        // Another process may have finished it between planning and now.
        let data = engine::data_sha256(&run.config, &opts.engine);
        let unfinished = store.checkpoint_path(run).exists();
        if !force && !unfinished && store.load(run).ok().flatten().is_some_and(|rec| is_done(&rec, run, data.as_deref())) {
            live.finished(&format!("{} seed {}", run.cell, run.seed), "done elsewhere");
            return Ok(Attempt::DoneElsewhere);
        }
        if opts.stop.load(Ordering::Relaxed) {
            return Ok(Attempt::Interrupted);
        }
        let checkpoint = store.checkpoint_path(run);
        let tag = format!("{} seed {}", run.hash, run.seed);
        let stop = || opts.stop.load(Ordering::Relaxed);
        let notice = |m: &str| say(&format!("{} seed {}: {m}", run.cell, run.seed));
        // Theory runs take seconds and report no progress: the sweep's bar is enough for them.
        let line = matches!(run.config, crate::spec::RunConfig::Ssl(_)).then(|| live.run_line(&format!("{} seed {}", run.cell, run.seed)));
        let progress = |p: &engine::Progress| {
            if let Some(line) = &line {
                line.update(p)
            }
        };
        let weights = store.weights_path(run);
        let ctl = RunControl {
            checkpoint: Some(&checkpoint),
            tag: &tag,
            stop: &stop,
            notice: &notice,
            progress: &progress,
            weights: opts.keep_weights.then_some(weights.as_path()),
        };
        let Some(rec) = run_one(run, &ctx, &ctl) else {
            return Ok(Attempt::Interrupted);
        };
        drop(line);
        if rec.status == RunStatus::NotRun {
            // Its data went missing since planning: nothing computed, nothing written.
            live.finished(&format!("{} seed {}", run.cell, run.seed), rec.status.as_str());
            return Ok(Attempt::Finished(rec.status));
        }
        store.save(run, &rec)?;
        // The record is the result now; the checkpoint only ever served to reach it.
        if checkpoint.exists() {
            std::fs::remove_file(&checkpoint).map_err(|e| Error::io(&checkpoint, e))?;
        }
        live.finished(&format!("{} seed {}", run.cell, run.seed), rec.status.as_str());
        Ok(Attempt::Finished(rec.status))
    };
    let label = |run: &Run| format!("{} seed {}", run.cell, run.seed);
    let mut report = ExecReport::default();
    let mut busy = Vec::new();
    let first = for_each_run(runs, opts.jobs, |run, worker| attempt(run, false, worker))?;
    for (run, a) in runs.iter().zip(first) {
        match a? {
            Attempt::Busy => busy.push(run.clone()),
            other => record(&mut report, label(run), other),
        }
    }
    if !busy.is_empty() && !opts.stop.load(Ordering::Relaxed) {
        say(&format!(
            "{} run(s) are being computed by another process on {}; waiting for them (each is skipped if that \
             process finishes it, computed here if it stops)",
            busy.len(),
            store.dir.display()
        ));
        let second = for_each_run(&busy, opts.jobs, |run, worker| attempt(run, true, worker))?;
        for (run, a) in busy.iter().zip(second) {
            record(&mut report, label(run), a?);
        }
    } else {
        report.interrupted.extend(busy.iter().map(label));
    }
    live.clear();
    Ok(report)
}

/// The device worker `worker` of a sweep computes on: the GPUs taken in turn, so that `jobs` workers put
/// jobs / GPUs runs on each.
///
/// ```
/// use eigenssl::device::DeviceKind;
/// use eigenssl::harness::execute::device_of_worker;
/// let gpus = DeviceKind::Cuda(None).spread_over(2);
/// let of = |w| device_of_worker(&gpus, w).to_string();
/// assert_eq!([of(0), of(1), of(2), of(3)], ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]);
/// assert_eq!(device_of_worker(&[DeviceKind::Cpu], 5), DeviceKind::Cpu);
/// ```
pub fn device_of_worker(devices: &[crate::device::DeviceKind], worker: usize) -> crate::device::DeviceKind {
    devices.get(worker % devices.len().max(1)).copied().unwrap_or_default()
}

/// `f` of each run and the index of the worker that runs it (results in the order of `runs`), at most
/// `jobs` runs at a time, each in a rayon pool of its own with cores / `jobs` threads (all cores in use:
/// one run alone gets them all, two runs half each). Candle's CPU kernels run on the pool they are called
/// from; a deep run's augmentation thread uses the global pool, which no run occupies. The runs are handed
/// out by plain threads: a rayon worker waiting on another pool would take up further runs meanwhile.
pub(crate) fn for_each_run<T: Send>(runs: &[Run], jobs: usize, f: impl Fn(&Run, usize) -> T + Sync) -> Result<Vec<T>> {
    let jobs = jobs.max(1);
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<T>>>> = runs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for worker in 0..jobs.min(runs.len()) {
            let (next, slots, f) = (&next, &slots, &f);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (Some(run), Some(slot)) = (runs.get(i), slots.get(i)) else { break };
                    let result = in_run_pool(jobs, || f(run, worker));
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|p| p.into_inner()).unwrap_or_else(|| Err(Error::Environment("a run was never started".into()))))
        .collect()
}

/// Threads of each run's pool with `jobs` runs at once: the cores shared out, at least one.
pub(crate) fn threads_per_run(jobs: usize) -> usize {
    (num_cpus::get() / jobs.max(1)).max(1)
}

/// `f` on a rayon pool of [`threads_per_run`] threads, as one of `jobs` concurrent runs gets.
pub(crate) fn in_run_pool<T: Send>(jobs: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let threads = threads_per_run(jobs);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(|pool| pool.install(f))
        .map_err(|e| Error::Environment(format!("--jobs {jobs}: cannot start a pool of {threads} thread(s): {e}")))
}

fn record(report: &mut ExecReport, label: String, a: Attempt) {
    match a {
        Attempt::Finished(status) => report.finished.push((label, status)),
        Attempt::Interrupted | Attempt::Busy => report.interrupted.push(label),
        Attempt::DoneElsewhere => report.done_elsewhere.push(label),
    }
}

/// Computes one run into a record; an engine error or panic becomes a `failed` record, never a crash.
/// `None`: the run was stopped on request and has no record.
pub fn run_one(run: &Run, ctx: &EngineContext, ctl: &RunControl) -> Option<RunRecord> {
    let started = now_rfc3339();
    let t0 = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| engine::execute_with(&run.config, run.seed, ctx, ctl)))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(EngineError::Failed(format!("engine panicked: {msg}")))
        });
    let data = result.as_ref().ok().and_then(|out| out.data.clone());
    let weights = result.as_ref().ok().and_then(|out| out.weights_sha256.clone()).zip(ctl.weights).map(|(sha256, path)| KeptWeights {
        file: path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        sha256,
    });
    let provenance = Provenance {
        git_commit: BUILD_COMMIT.to_string(),
        git_dirty: provenance::source_diff().is_some(),
        source_diff_sha256: provenance::source_diff().map(String::from),
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        candle_version: CANDLE_VERSION.to_string(),
        engine_version: run.config.engine_version(),
        rustc: provenance::RUSTC_VERSION.to_string(),
        target: provenance::TARGET.to_string(),
        simd: provenance::simd_level().to_string(),
        data,
        device: run.config.device(ctx),
        kernels: run.config.kernels(ctx),
        precision: run.config.precision(ctx),
        threads: match run.config {
            crate::spec::RunConfig::Theory(_) => 1,
            crate::spec::RunConfig::Ssl(_) => rayon::current_num_threads(),
        },
        started,
        finished: now_rfc3339(),
        wall_seconds: t0.elapsed().as_secs_f64(),
        resumed_from: result
            .as_ref()
            .map(|out| out.resumed_at.iter().map(|&(epoch, batch)| ResumePoint { epoch: epoch + 1, batch }).collect())
            .unwrap_or_default(),
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
        weights: weights.clone(),
    };
    Some(match result {
        Ok(out) => base(out.status, out.outcome, None, out.metrics, out.history),
        Err(EngineError::Failed(msg)) => base(RunStatus::Failed, None, Some(msg), Default::default(), serde_json::Value::Null),
        Err(EngineError::NotRun(msg)) => base(RunStatus::NotRun, None, Some(msg), Default::default(), serde_json::Value::Null),
        Err(EngineError::Interrupted(_)) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::SeqCst;

    #[test]
    fn at_most_jobs_runs_at_once_each_on_its_share_of_the_cores() {
        let exp = crate::spec::Experiment::find("table1", std::path::Path::new("experiments")).unwrap();
        let runs = exp.runs("smoke", None).unwrap();
        assert!(runs.len() >= 6);
        let (active, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let done = for_each_run(&runs, 2, |run, _| {
            peak.fetch_max(active.fetch_add(1, SeqCst) + 1, SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            active.fetch_sub(1, SeqCst);
            (run.id(), rayon::current_num_threads())
        })
        .unwrap();
        // A rayon worker waiting on a run's pool used to start further runs meanwhile: all of them at once.
        assert_eq!(peak.load(SeqCst), 2, "runs in flight at once");
        let ids: Vec<String> = runs.iter().map(|r| r.id()).collect();
        assert_eq!(done.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), ids, "results in the order of the runs");
        assert!(done.iter().all(|&(_, threads)| threads == threads_per_run(2)));
    }
}
