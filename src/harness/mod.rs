//! The harness: plan runs, execute them, store records, aggregate, and write tables and figures.

pub mod aggregate;
pub mod execute;
pub mod live;
pub mod outcomes;
pub mod plan;
pub mod provenance;
pub mod slurm;
pub mod status;
pub mod store;
pub mod verify;

use std::path::Path;

use crate::data::DatasetKind;
use crate::device::DeviceKind;
use crate::error::Result;
use crate::spec::Experiment;
pub use execute::ExecOptions;
use store::Store;

/// What `reproduce` did.
#[derive(Debug)]
pub struct Reproduced {
    pub executed: Vec<(String, store::RunStatus)>,
    pub skipped: usize,
    /// Of those, the records copied in from a sibling profile's folder (same spec hash).
    pub copied: usize,
    /// Runs stopped on request (resumable) or not started because of it.
    pub interrupted: Vec<String>,
    /// Runs another process on the same folder finished meanwhile.
    pub done_elsewhere: Vec<String>,
    /// Datasets the pending runs need that are not on this machine, with where they were looked for;
    /// their runs are not started and nothing is written for them.
    pub missing_data: Vec<(DatasetKind, String)>,
    /// The runs left out for lack of their data.
    pub not_run: Vec<String>,
}

/// Runs every pending run of `profile` (the caller regenerates tables and figures:
/// [`crate::present::regenerate`]).
/// `say` receives progress messages for the user.
pub fn reproduce(
    exp: &Experiment,
    profile: &str,
    seeds: Option<&[u64]>,
    out: &Path,
    force: bool,
    opts: &ExecOptions,
    say: &dyn Fn(&str),
) -> Result<Reproduced> {
    let store = Store::new(out, &exp.name, profile);
    let (plan, missing_data) = announce(exp, profile, seeds, &store, force, opts, say, false)?;
    // A run whose data is missing is left out: a command that computes nothing writes nothing.
    let (runnable, no_data): (Vec<_>, Vec<_>) = plan.pending.into_iter().partition(|r| !lacks_data(r, &missing_data));
    let report = if runnable.is_empty() { execute::ExecReport::default() } else { execute::execute(&runnable, &store, opts, force)? };
    Ok(Reproduced {
        executed: report.finished,
        skipped: plan.done.len(),
        interrupted: report.interrupted,
        done_elsewhere: report.done_elsewhere,
        copied: plan.reusable.len(),
        missing_data,
        not_run: no_data.iter().map(|r| format!("{} seed {}", r.cell, r.seed)).collect(),
    })
}

/// Whether `run` reads one of the `missing` datasets.
fn lacks_data(run: &crate::spec::Run, missing: &[(DatasetKind, String)]) -> bool {
    matches!(&run.config, crate::spec::RunConfig::Ssl(c) if missing.iter().any(|(k, _)| *k == c.dataset))
}

/// `reproduce --dry-run`: what `reproduce` would say before it starts (runs to compute, missing data, the
/// expected time, here counting the runs whose data is missing too), with nothing computed, moved or written.
pub fn plan_only(exp: &Experiment, profile: &str, seeds: Option<&[u64]>, out: &Path, force: bool, opts: &ExecOptions, say: &dyn Fn(&str)) -> Result<usize> {
    let store = Store::new(out, &exp.name, profile);
    let (plan, _) = announce(exp, profile, seeds, &store, force, opts, say, true)?;
    Ok(plan.pending.len())
}

/// Plans the runs and tells `say` what will happen: stored runs reused or recomputed, missing data, the
/// expected time. Unreadable records are set aside unless `dry_run` (which also counts runs whose data
/// is missing in the expected time).
#[allow(clippy::too_many_arguments)]
fn announce(
    exp: &Experiment,
    profile: &str,
    seeds: Option<&[u64]>,
    store: &Store,
    force: bool,
    opts: &ExecOptions,
    say: &dyn Fn(&str),
    dry_run: bool,
) -> Result<(plan::Plan, Vec<(DatasetKind, String)>)> {
    let runs = exp.runs(profile, seeds)?;
    // candle's TF32 switch is one per process: on CUDA a sweep's runs must share one precision.
    let asked = runs.iter().filter_map(|r| r.config.precision(&opts.engine));
    crate::precision::Precision::common(asked, opts.engine.device, &format!("cells of {} / profile {profile}", exp.name))?;
    let data = |r: &crate::spec::Run| crate::engine::data_sha256(&r.config, &opts.engine);
    let mut plan = plan::plan(runs, store, force, &data)?;
    if !plan.reusable.is_empty() {
        let from: std::collections::BTreeSet<String> =
            plan.reusable.iter().filter_map(|(_, p)| p.parent()?.parent().map(|d| d.display().to_string())).collect();
        let verb = if dry_run { "would be copied" } else { "copied" };
        say(&format!(
            "{} run(s) {verb} from {} (the same spec hash: the same config, seed and engine)",
            plan.reusable.len(),
            from.into_iter().collect::<Vec<_>>().join(", ")
        ));
        for (run, from) in &plan.reusable {
            if !dry_run {
                let bytes = std::fs::read(from).map_err(|e| crate::Error::io(from, e))?;
                store::write_atomic(&store.run_path(run), &bytes)?;
            }
            plan.done.push(run.clone());
        }
    }
    if !plan.other_data.is_empty() {
        say(&format!(
            "{} stored run(s) were computed on other data than is here now (see each record's provenance.data); they are recomputed",
            plan.other_data.len()
        ));
    }
    for (path, why) in &plan.unreadable {
        if dry_run {
            say(&format!("warning: {why}\n  it would be set aside and the run recomputed"));
        } else {
            let aside = store::set_aside(path)?;
            say(&format!("warning: {why}\n  set aside as {}; the run will be recomputed", aside.display()));
        }
    }
    if !plan.foreign.is_empty() {
        say(&format!(
            "note: {} stored record(s) in {} belong to no planned run (other seeds?) and are left alone",
            plan.foreign.len(),
            store.runs_dir().display()
        ));
    }
    say(&format!(
        "{} / profile {}: {} run(s) to compute, {} already stored (--force recomputes them), {} job(s)",
        exp.name,
        profile,
        plan.pending.len(),
        plan.done.len(),
        opts.jobs
    ));
    let pending: Vec<&crate::spec::RunConfig> = plan.pending.iter().map(|r| &r.config).collect();
    let missing_data = crate::engine::missing_data(&pending, &opts.engine)?;
    for (kind, why) in &missing_data {
        let verb = if dry_run { "would be left out" } else { "are left out; nothing is written for them" };
        say(&format!("{kind}: {why}\n  Its runs {verb}."));
    }
    let on_cpu = opts.engine.device.is_cpu();
    let devices = opts.engine.device.spread();
    let (at_once, parallel) = concurrency(devices.len(), on_cpu, opts.jobs, plan.pending.len());
    // Memory first: a run that cannot fit is refused before a minute of step timing (theory runs are
    // always on the CPU; a deep run on a GPU keeps its tensors there).
    let host: Vec<crate::spec::Run> =
        plan.pending.iter().filter(|r| !lacks_data(r, &missing_data) && (on_cpu || matches!(r.config, crate::spec::RunConfig::Theory(_)))).cloned().collect();
    if let Some(available) = plan::available_memory() {
        match plan::check_memory(&exp.source, &host, at_once, available) {
            Err(e) if dry_run => say(&format!("warning: {e}")),
            other => other?,
        }
    }
    // Checked before the step timing, which can take a minute: only when something will be written.
    if !dry_run && plan.pending.iter().any(|r| !lacks_data(r, &missing_data)) {
        store.check_writable()?;
    }
    let networks = pending.iter().filter(|c| matches!(c, crate::spec::RunConfig::Ssl(_))).count();
    if networks > 0 {
        say(&format!("timing a training step of each network on {} to estimate the time (up to a minute or two)…", opts.engine.device));
    }
    let timed = execute::in_run_pool(at_once, || crate::engine::estimate_seconds(&pending, &opts.engine, dry_run));
    let timed = timed.and_then(|r| r);
    if let Ok(Some(est)) = &timed {
        if est.wall_s(parallel) > LONG_SWEEP_S && !opts.long_sweep_ok {
            let what = format!(
                "{} / profile {profile} would take about {} on {}",
                exp.name,
                human_duration(est.wall_s(parallel)),
                opts.engine.device
            );
            let instead = "what fits instead: `--profile cpu` (the paper's cells at a scale for a CPU), `--device cuda` on a GPU machine, or `--executor slurm` on a cluster";
            if dry_run {
                say(&format!("note: {what}; it would start only with --yes ({instead})"));
            } else {
                return Err(crate::Error::Usage(format!("{what}: more than a day, so it starts only with --yes; {instead}")));
            }
        }
    }
    match timed {
        Ok(Some(est)) => say(&format!(
            "expected time on {}: about {} for the {} pending run(s){}, {} ({:.0} s of training steps); from \
             training steps timed here on {} thread(s) each, with data loading, augmentation and evaluation on top",
            opts.engine.device,
            human_duration(est.wall_s(parallel)),
            plan.pending.len(),
            if dry_run && !missing_data.is_empty() { ", those whose data is missing here included" } else { "" },
            placement(&devices, on_cpu, at_once),
            est.total_s,
            execute::threads_per_run(at_once),
        )),
        Ok(None) => {}
        Err(e) => say(&format!("could not estimate the run time: {e}")),
    }
    Ok((plan, missing_data))
}

/// Executes exactly one run (`eigenssl run <run-id>`, what each Slurm task does): under its lock,
/// resuming its checkpoint, skipped if already stored. Tables are not regenerated (many tasks end at
/// once); `table` does that.
pub fn run_single(run: &crate::spec::Run, out: &Path, opts: &ExecOptions) -> Result<execute::ExecReport> {
    let store = Store::new(out, &run.experiment, &run.profile);
    // A malformed dataset stops here, naming the file; a missing one leaves the run out, nothing written.
    if let Some((kind, why)) = crate::engine::missing_data(&[&run.config], &opts.engine)?.into_iter().next() {
        return Err(crate::Error::DataMissing(format!("{kind}: {why}")));
    }
    store.check_writable()?;
    execute::execute(std::slice::from_ref(run), &store, opts, false)
}

/// Re-evaluates a stored run's kept weights with `protocol`: (the value now, the value its record holds).
pub fn eval_kept(run: &crate::spec::Run, out: &Path, ctx: &crate::engine::EngineContext, protocol: crate::engine::Protocol) -> Result<(f64, Option<f64>)> {
    if let crate::spec::RunConfig::Theory(_) = run.config {
        return Err(crate::Error::Usage(format!(
            "{}: a theory run has no network to evaluate; `eval` re-evaluates the kept backbone of a deep-SSL run (table1)",
            run.id()
        )));
    }
    let store = Store::new(out, &run.experiment, &run.profile);
    let path = store.run_path(run);
    let rec = store.load(run)?.ok_or_else(|| crate::Error::Usage(format!("{}: no stored record of run {}", path.display(), run.id())))?;
    let kept = rec.weights.as_ref().ok_or_else(|| {
        crate::Error::Usage(format!("{}: the run kept no weights; run it with --keep-weights (reproduce or run)", path.display()))
    })?;
    let weights = store.weights_path(run);
    let now = crate::engine::evaluate_kept(&rec.config, rec.seed, &weights, &kept.sha256, protocol, ctx)?;
    Ok((now, rec.metrics.get(protocol.metric()).copied()))
}

/// Runs at once when `--jobs` is not given: one per core on the CPU, one per GPU (`--device cuda`: every
/// GPU this process sees; `cuda:K`: one).
pub fn default_jobs(device: DeviceKind) -> usize {
    if device.is_cpu() { num_cpus::get() } else { device.spread().len() }
}

/// (runs at once, runs whose time overlaps) of `pending` runs with `jobs` workers on `devices` devices: on
/// the CPU the runs share the cores out, each step timed on a run's share, so all of them overlap; runs
/// that share a GPU take turns on it, so at most one per GPU counts.
///
/// ```
/// use eigenssl::harness::concurrency;
/// assert_eq!(concurrency(1, true, 2, 10), (2, 2));
/// assert_eq!(concurrency(1, true, 8, 3), (3, 3));
/// assert_eq!(concurrency(4, false, 8, 32), (8, 4)); // two runs on each of 4 GPUs
/// assert_eq!(concurrency(8, false, 8, 3), (3, 3));
/// assert_eq!(concurrency(1, false, 2, 32), (2, 1));
/// ```
pub fn concurrency(devices: usize, on_cpu: bool, jobs: usize, pending: usize) -> (usize, usize) {
    let at_once = jobs.clamp(1, pending.max(1));
    (at_once, if on_cpu { at_once } else { at_once.min(devices.max(1)) })
}

/// Where the runs go, for the time estimate: "2 at once", "one after another", or on GPUs "8 at once on
/// cuda:0 … cuda:3 (2 per GPU)".
fn placement(devices: &[DeviceKind], on_cpu: bool, at_once: usize) -> String {
    if on_cpu || devices.len() <= 1 && at_once == 1 {
        return if at_once > 1 { format!("{at_once} at once") } else { "one after another".to_string() };
    }
    let used = devices.len().min(at_once);
    let gpus = match used {
        1 => devices[0].to_string(),
        _ => format!("{} … {}", devices[0], devices[used - 1]),
    };
    format!("{at_once} at once on {gpus} ({} per GPU)", at_once.div_ceil(used))
}

/// Expected wall time above which a sweep waits for `--yes`.
pub const LONG_SWEEP_S: f64 = 86_400.0;

/// "3 h 20 min", "12 min", "45 s", "2.1 days".
pub fn human_duration(secs: f64) -> String {
    if secs >= 2.0 * 86_400.0 {
        format!("{:.1} days", secs / 86_400.0)
    } else if secs >= 3_600.0 {
        format!("{} h {} min", (secs / 3_600.0) as u64, ((secs % 3_600.0) / 60.0) as u64)
    } else if secs >= 60.0 {
        format!("{} min", (secs / 60.0).round() as u64)
    } else {
        format!("{secs:.0} s")
    }
}
