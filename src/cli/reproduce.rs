//! `eigenssl reproduce`: every pending run of the experiments, here or as Slurm job arrays, then their
//! tables and figures (or, with `--dry-run`, the plan and its expected time).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use eigenssl::engine::RunStatus;
use eigenssl::harness::{self, ExecOptions};
use eigenssl::spec::Experiment;
use eigenssl::ssl::Kernels;

use super::{at_least_one, experiments, EngineArgs, EXIT_NO_DATA, EXIT_RUNS_FAILED, EXIT_STOPPED};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Executor {
    Local,
    Slurm,
}

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Experiment names (e.g. fig1 fig2), or `all`.
    #[arg(required = true)]
    experiments: Vec<String>,
    /// Profile to run (`paper` = the paper's protocol).
    #[arg(long, default_value = "paper")]
    profile: String,
    /// Seeds to run instead of the profile's, e.g. 0,1,2,3.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Runs executed at once (default: the number of cores; with --device cuda, the number of GPUs).
    #[arg(long, value_parser = at_least_one)]
    jobs: Option<usize>,
    /// Results folder.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Recompute runs that are already stored.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    engine: EngineArgs,
    /// `local` (default) runs here; `slurm` submits one job array of the pending runs and returns.
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    executor: Executor,
    /// Extra sbatch arguments (with --executor slurm), e.g. "--partition=gpu --time=1-00:00:00".
    #[arg(long, allow_hyphen_values = true)]
    slurm_args: Option<String>,
    /// Keep each deep run's final backbone and projector (safetensors, its sha256 in the record) under
    /// <out>/<experiment>/<profile>/weights/, for `eigenssl eval`.
    #[arg(long)]
    keep_weights: bool,
    /// Only say what would run and how long its training steps would take on --device (timed here,
    /// runs whose data is missing included); compute and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Start even when the sweep is expected to take more than a day here.
    #[arg(long)]
    yes: bool,
    /// Which code computes the deep networks' layers, overriding the spec's `kernels`: native (our
    /// CPU kernels where they apply) or candle (candle's ops, what CUDA and Metal run). Runs it
    /// changes get their own spec hash.
    #[arg(long)]
    kernels: Option<Kernels>,
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        let Args { experiments: names, profile, seeds, jobs, out, force, engine, executor, slurm_args, keep_weights, dry_run, yes, kernels } = self;
        let exps = experiments(&names, specs, kernels)?;
        match (dry_run, executor) {
            (true, _) => plan_only(&exps, &profile, seeds.as_deref(), jobs, &out, force, engine),
            (false, Executor::Slurm) => submit_slurm(&exps, specs, &profile, seeds.as_deref(), &out, force, engine, kernels, slurm_args),
            (false, Executor::Local) => reproduce(&exps, &profile, seeds.as_deref(), jobs, &out, force, engine, keep_weights, yes),
        }
    }
}

/// `reproduce --executor slurm`: one job array of the pending runs per experiment.
#[allow(clippy::too_many_arguments)]
fn submit_slurm(
    exps: &[Experiment],
    specs: &std::path::Path,
    profile: &str,
    seeds: Option<&[u64]>,
    out: &std::path::Path,
    force: bool,
    engine: EngineArgs,
    kernels: Option<Kernels>,
    slurm_args: Option<String>,
) -> anyhow::Result<ExitCode> {
    if force {
        anyhow::bail!("--force is not supported with --executor slurm: remove the records to recompute instead");
    }
    let opts = eigenssl::harness::slurm::SlurmOptions {
        binary: std::env::current_exe().context("locating the eigenssl binary")?,
        specs: specs.to_path_buf(),
        out: out.to_path_buf(),
        data_dir: engine.data_dir,
        device: engine.device,
        kernels,
        extra_args: slurm_args.map(|a| a.split_whitespace().map(String::from).collect()).unwrap_or_default(),
    };
    for exp in exps {
        match eigenssl::harness::slurm::submit(exp, profile, seeds, &opts, &|m| eprintln!("{m}"))? {
            Some(sub) => {
                println!("{}", sub.job_id);
                eprintln!(
                    "submitted job array {} ({} task(s)), script {}
  watch: squeue -j {}   progress: eigenssl status {} --profile {profile} --out {}
  task logs: {}
  when it is done: eigenssl table {} --profile {profile} --out {}",
                    sub.job_id, sub.tasks, sub.script.display(), sub.job_id, exp.name, out.display(), sub.logs.display(), exp.name, out.display()
                );
            }
            None => eprintln!("{}: nothing to submit", exp.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `reproduce --dry-run`: the plan and the expected time of each experiment's pending runs.
fn plan_only(exps: &[Experiment], profile: &str, seeds: Option<&[u64]>, jobs: Option<usize>, out: &std::path::Path, force: bool, engine: EngineArgs) -> anyhow::Result<ExitCode> {
    engine.device.open()?;
    let opts = ExecOptions { jobs: jobs.unwrap_or_else(|| harness::default_jobs(engine.device)), engine: engine.context(), ..ExecOptions::default() };
    for exp in exps {
        harness::plan_only(exp, profile, seeds, out, force, &opts, &|m| eprintln!("{m}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `reproduce`: every pending run here, then the tables and figures; exit 130 when stopped on request.
#[allow(clippy::too_many_arguments)]
fn reproduce(
    exps: &[Experiment],
    profile: &str,
    seeds: Option<&[u64]>,
    jobs: Option<usize>,
    out: &std::path::Path,
    force: bool,
    engine: EngineArgs,
    keep_weights: bool,
    long_sweep_ok: bool,
) -> anyhow::Result<ExitCode> {
    engine.device.open()?;
    let opts = ExecOptions {
        jobs: jobs.unwrap_or_else(|| harness::default_jobs(engine.device)),
        progress: true,
        engine: engine.context(),
        keep_weights,
        stop: eigenssl::interrupt::on_signals().context("installing the SIGINT/SIGTERM handler")?,
        long_sweep_ok,
    };
    let stopped = || opts.stop.load(std::sync::atomic::Ordering::Relaxed);
    let mut interrupted = 0;
    // Runs that ran or were reused, and runs recorded as not run (their data is missing).
    let (mut usable, mut not_run, mut failed) = (0, 0, 0);
    for exp in exps {
        let done = harness::reproduce(exp, profile, seeds, out, force, &opts, &|m| eprintln!("{m}"))?;
        for (run, status) in &done.executed {
            if *status == RunStatus::Failed {
                eprintln!("  failed: {run} (see its record)");
                failed += 1;
            }
        }
        let missing = done.not_run.len() + done.executed.iter().filter(|(_, s)| *s == RunStatus::NotRun).count();
        let failed_here = done.executed.iter().filter(|(_, s)| *s == RunStatus::Failed).count();
        let computed = done.executed.len() + done.not_run.len() - missing - failed_here;
        usable += computed + done.skipped + done.done_elsewhere.len();
        not_run += missing;
        let counts = format!(
            "{}: {computed} run(s) computed, {failed_here} failed, {missing} not run (no data), {} reused, {} finished by another process, {} interrupted",
            exp.name,
            done.skipped,
            done.done_elsewhere.len(),
            done.interrupted.len(),
        );
        // Tables and figures change only when a run was stored here (or copied in): a command that
        // computes nothing writes nothing; `eigenssl table` regenerates them at will.
        let wrote_runs = computed + failed_here + done.done_elsewhere.len() + done.copied > 0;
        if wrote_runs {
            let outputs = eigenssl::present::regenerate(exp, profile, seeds, out)?;
            println!("{}", outputs.terminal);
            eprintln!(
                "{counts}; wrote {}, {}{}",
                outputs.table.display(),
                outputs.summary.display(),
                outputs.figures.iter().map(|f| format!(", {}", f.display())).collect::<String>()
            );
        } else {
            if let Some(terminal) = eigenssl::present::terminal_table(exp, profile, seeds, out)? {
                println!("{terminal}");
            }
            eprintln!("{counts}; nothing new, so tables and figures were left as they are");
        }
        interrupted += done.interrupted.len();
        if stopped() {
            break;
        }
    }
    if stopped() {
        // With --force the same command would compute the finished runs again; without it, they are kept.
        let again = if force { "Run the same command without --force" } else { "Run the same command again" };
        eprintln!(
            "stopped on request: {interrupted} run(s) left unfinished (deep-SSL runs with a checkpoint \
             of their last step). {again} to resume them; finished runs are kept."
        );
        return Ok(ExitCode::from(EXIT_STOPPED));
    }
    if not_run > 0 && usable == 0 {
        eprintln!("none of the requested runs could run: their data is missing (see above)");
        return Ok(ExitCode::from(EXIT_NO_DATA));
    }
    if failed > 0 {
        eprintln!("{failed} run(s) failed (each record's message says why); the next `reproduce` retries them");
        return Ok(ExitCode::from(EXIT_RUNS_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}
