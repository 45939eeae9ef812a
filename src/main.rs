//! The eigenssl command line: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eigenssl::data::DatasetKind;
use eigenssl::device::DeviceKind;
use eigenssl::engine::RunStatus;
use eigenssl::harness::{self, ExecOptions};
use eigenssl::spec::Experiment;
use eigenssl::ssl::Kernels;

#[derive(Parser)]
#[command(name = "eigenssl", version, about = "Reproduce 'An eigenspace view reveals how predictor networks and stop-grads provide implicit variance regularization'")]
struct Cli {
    /// Folder with the experiment specs (`NAME.yaml`); specs compiled into the binary fill in missing ones.
    #[arg(long, global = true, default_value = "experiments")]
    specs: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    Local,
    Slurm,
}

/// The stored runs of one experiment and profile (for `table` and `status`).
#[derive(clap::Args)]
struct Stored {
    /// Experiment name (a spec in --specs: fig1, fig2, table1).
    experiment: String,
    /// Profile whose stored runs to read.
    #[arg(long, default_value = "paper")]
    profile: String,
    /// Seeds to include besides the profile's own, e.g. 4,5,6,7.
    #[arg(long, value_delimiter = ',')]
    seeds: Option<Vec<u64>>,
    /// Results folder.
    #[arg(long, default_value = "results")]
    out: PathBuf,
}

/// Where the deep-network engines run and find their data (for `reproduce` and `run`).
#[derive(clap::Args)]
struct EngineArgs {
    /// Device for deep-network engines: cpu, cuda (every GPU CUDA shows this process, honouring
    /// CUDA_VISIBLE_DEVICES: a sweep's runs are spread over them, --jobs of them at once), cuda:K (GPU K)
    /// or metal. The theory engine always uses the CPU.
    #[arg(long, default_value = "cpu")]
    device: DeviceKind,
    /// Where datasets are looked for (e.g. a folder holding cifar10-jpeg.tar.gz; see the guide, docs/src/data.md).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

impl EngineArgs {
    fn context(self) -> eigenssl::engine::EngineContext {
        eigenssl::engine::EngineContext { data_dir: self.data_dir, device: self.device }
    }
}

/// A count of at least 1 (`--jobs`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("expected at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a whole number: {e}")),
    }
}

/// Exit code of a sweep with failed runs (as of a failed regression gate: something needs looking at).
const EXIT_RUNS_FAILED: u8 = 1;
/// Exit code of a run stopped on request (SIGINT/SIGTERM), as shells report Ctrl-C.
const EXIT_STOPPED: u8 = 130;
/// Exit code of a failed regression gate.
const EXIT_GATE_FAILED: u8 = 1;
/// Exit code of a sweep none of whose runs could run because their data is missing (as for
/// [`eigenssl::Error::DataMissing`]).
const EXIT_NO_DATA: u8 = 3;

#[derive(Subcommand)]
enum Command {
    /// Run every pending run of the experiments (`all` = every spec), then regenerate tables and figures.
    Reproduce {
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
    },
    /// Execute exactly one planned run and store its record (what each Slurm task runs).
    Run {
        /// `<experiment>/<profile>/<cell>/seed<k>`, as `status` and the Slurm job's runs.txt list them.
        run_id: String,
        #[arg(long, default_value = "results")]
        out: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
        /// Keep the final backbone and projector (see `reproduce --keep-weights`).
        #[arg(long)]
        keep_weights: bool,
        /// Which code computes the deep networks' layers, overriding the spec's `kernels`: native (our
        /// CPU kernels where they apply) or candle (candle's ops, what CUDA and Metal run). Runs it
        /// changes get their own spec hash.
        #[arg(long)]
        kernels: Option<Kernels>,
    },
    /// Re-evaluate a run's kept weights (`--keep-weights`) with k-NN or the linear probe, exactly as the
    /// run evaluated them, beside the value its record holds.
    Eval {
        /// `<experiment>/<profile>/<cell>/seed<k>`.
        run_id: String,
        /// knn or linear.
        #[arg(long)]
        protocol: eigenssl::engine::Protocol,
        #[arg(long, default_value = "results")]
        out: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Which runs of an experiment are done, running (locked), failed or pending in a results folder.
    Status {
        #[command(flatten)]
        stored: Stored,
    },
    /// List experiments, their cells and profiles.
    List,
    /// Benchmarks, each beside a reference implementation measured in the same run.
    Bench {
        /// Python interpreter for the references (needs NumPy; PyTorch for the training step).
        #[arg(long, default_value = "python3")]
        python: String,
        /// Timed repetitions per theory-step measurement.
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// Timed steps per training-step measurement (its median is the measurement).
        #[arg(long, default_value_t = 10)]
        train_reps: usize,
        /// Rounds of our step and PyTorch's, alternating; the ratio reported is the median round's, with its 95 %
        /// confidence interval (on a shared 2-core machine one round's ratio swings by ±0.2: with 25 rounds that
        /// interval was ±0.04 at width/4, with 15 rounds ±0.04 to ±0.10).
        #[arg(long, default_value_t = 25)]
        rounds: usize,
        /// Folder of the per-CPU-model folders that hold `bench.json` and `bench.md`.
        #[arg(long, default_value = "results/bench")]
        out: PathBuf,
        /// Batch (image pairs) of the training-step measurement.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Only the theory step (the training step at full width takes minutes on 2 cores).
        #[arg(long)]
        theory_only: bool,
        /// What computes our step in the rounds against PyTorch: native (ours where they apply) or candle
        /// (candle's ops). With native, the step by candle's ops is measured besides, once per width.
        #[arg(long, default_value = "native")]
        kernels: Kernels,
    },
    /// One training-step measurement in this process (used by `bench`; prints JSON).
    #[command(hide = true)]
    BenchStep {
        /// Table 1 dataset whose image size and config to use: cifar10 or stl10.
        #[arg(long, default_value = "cifar10")]
        dataset: DatasetKind,
        #[arg(long)]
        width: f64,
        #[arg(long)]
        batch: usize,
        #[arg(long)]
        reps: usize,
        /// cpu, cuda or metal.
        #[arg(long, default_value = "cpu")]
        device: DeviceKind,
        #[arg(long, default_value = "native")]
        kernels: Kernels,
    },
    /// Regression gate: compare stored runs with a baseline; exit 1 on a regression (report in markdown).
    Compare {
        /// Experiments to compare (default: those listed in the gate file).
        experiments: Vec<String>,
        /// Profile (default: the gate file's).
        #[arg(long)]
        profile: Option<String>,
        /// Results root holding the runs to check.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Results root holding the baseline (the committed results by default).
        #[arg(long, default_value = "results")]
        baseline: PathBuf,
        /// Gate settings: thresholds, α, gated experiments.
        #[arg(long, default_value = "ci/gate.yaml")]
        gate: PathBuf,
        /// Where to write the markdown report (default: <out>/compare-<profile>.md).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Stored results of two commits side by side (read from git objects; rev-b defaults to the working tree).
    Diff {
        rev_a: String,
        /// A second revision; omit it to compare with the working tree.
        rev_b: Option<String>,
        /// Only these experiments.
        #[arg(long = "experiment", short = 'e')]
        experiments: Vec<String>,
        /// Results folder, relative to the repository root.
        #[arg(long, default_value = "results")]
        results: String,
        /// Every metric of every cell, changed or not.
        #[arg(long)]
        all: bool,
    },
    /// Recompute stored runs (all, or a deterministic sample) and report each as identical, equal within
    /// tolerance, or changed with the first differing field; exit 1 when one changed.
    Verify {
        /// Experiment names, or `all`.
        #[arg(required = true)]
        experiments: Vec<String>,
        #[arg(long, default_value = "paper")]
        profile: String,
        /// Recompute only this many runs per experiment, chosen deterministically.
        #[arg(long)]
        sample: Option<usize>,
        /// Results folder holding the stored runs.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Largest relative difference of a number that still counts as equal (last bits move with the
        /// SIMD level and thread count).
        #[arg(long, default_value_t = 1e-4)]
        rtol: f64,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// What data is here: per dataset, the layout found, where, its image counts and content fingerprint,
    /// or what is missing and how to get it.
    Data {
        /// Where datasets are looked for.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Fetch what is missing from the Hugging Face hub (hf-hub; needs the network).
        #[arg(long)]
        download: bool,
    },
    /// A static HTML site of every stored result (tables, figures, per-commit history, provenance and
    /// configs of every run); open <out>/index.html in a browser, no server needed.
    Report {
        /// Where the site goes.
        #[arg(long, default_value = "site")]
        out: PathBuf,
        /// Results folder, relative to the repository root.
        #[arg(long, default_value = "results")]
        results: String,
    },
    /// Re-aggregate stored runs and print/write the table (and figures).
    Table {
        #[command(flatten)]
        stored: Stored,
    },
}

fn main() -> ExitCode {
    keep_freed_memory();
    park_idle_candle_workers();
    die_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(e.downcast_ref::<eigenssl::Error>().map_or(1, eigenssl::Error::exit_code))
        }
    }
}

/// The error and its causes on one line, each said once: our I/O errors name their cause in their own
/// message already (`path: os error`), which `{:#}` would print a second time.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

/// The named experiments (`all`: every spec), with `--kernels` applied where given.
fn experiments(names: &[String], dir: &std::path::Path, kernels: Option<Kernels>) -> eigenssl::Result<Vec<Experiment>> {
    let names: Vec<String> =
        if names.iter().any(|n| n == "all") { Experiment::names(dir) } else { names.to_vec() };
    names.iter().map(|n| Experiment::find(n, dir).map(|e| match kernels {
        Some(k) => e.with_kernels(k),
        None => e,
    })).collect()
}

/// Dispatches to the subcommand's function; each decides its own exit code, `main` reports errors.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let specs = cli.specs;
    match cli.command {
        Command::Reproduce { experiments, profile, seeds, jobs, out, force, engine, dry_run: true, kernels, .. } => {
            let exps = self::experiments(&experiments, &specs, kernels)?;
            plan_only(&exps, &profile, seeds.as_deref(), jobs, &out, force, engine)
        }
        Command::Reproduce { experiments, profile, seeds, jobs, out, force, engine, executor, slurm_args, keep_weights, dry_run: false, yes, kernels } => {
            let exps = self::experiments(&experiments, &specs, kernels)?;
            match executor {
                Executor::Slurm => submit_slurm(&exps, &specs, &profile, seeds.as_deref(), &out, force, engine, kernels, slurm_args),
                Executor::Local => reproduce(&exps, &profile, seeds.as_deref(), jobs, &out, force, engine, keep_weights, yes),
            }
        }
        Command::Run { run_id, out, engine, keep_weights, kernels } => run_one(&specs, &run_id, &out, engine, keep_weights, kernels),
        Command::Eval { run_id, protocol, out, engine } => eval(&specs, &run_id, protocol, &out, engine),
        Command::Status { stored } => status(&specs, &stored),
        Command::List => list(&specs),
        Command::BenchStep { dataset, width, batch, reps, device, kernels } => bench_step(&specs, dataset, width, batch, reps, device, kernels),
        Command::Bench { python, reps, train_reps, rounds, out, batch, theory_only, kernels } => {
            bench(&specs, &python, BenchSizes { reps, train_reps, rounds, batch }, &out, theory_only, kernels)
        }
        Command::Compare { experiments, profile, out, baseline, gate, report } => {
            compare(&specs, experiments, profile, &out, &baseline, &gate, report)
        }
        Command::Diff { rev_a, rev_b, experiments, results, all } => diff(&specs, rev_a, rev_b, experiments, &results, all),
        Command::Table { stored } => table(&specs, &stored),
        Command::Data { data_dir, download } => data(&data_dir, download),
        Command::Report { out, results } => report(&specs, &out, results),
        Command::Verify { experiments, profile, sample, out, rtol, engine } => verify(&specs, &experiments, &profile, sample, &out, rtol, engine),
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

/// `run`: exactly one planned run (what each Slurm task runs).
fn run_one(specs: &std::path::Path, run_id: &str, out: &std::path::Path, engine: EngineArgs, keep_weights: bool, kernels: Option<Kernels>) -> anyhow::Result<ExitCode> {
    let run = Experiment::find_run(run_id, specs)?;
    let run = match kernels {
        Some(k) => run.with_kernels(k),
        None => run,
    };
    let opts = ExecOptions {
        jobs: 1,
        progress: false,
        engine: engine.context(),
        keep_weights,
        stop: eigenssl::interrupt::on_signals().context("installing the SIGINT/SIGTERM handler")?,
        // One run, as a Slurm task or by hand: the sweep's length was weighed when it was planned.
        long_sweep_ok: true,
    };
    let report = harness::run_single(&run, out, &opts)?;
    if let Some((_, status)) = report.finished.first() {
        eprintln!("{run_id}: {}", status.as_str());
        if *status == RunStatus::NotRun {
            return Ok(ExitCode::from(EXIT_NO_DATA));
        }
    } else if !report.interrupted.is_empty() {
        eprintln!("{run_id}: stopped on request; run the same command again to resume from its checkpoint");
        return Ok(ExitCode::from(EXIT_STOPPED));
    } else {
        eprintln!("{run_id}: already stored");
    }
    Ok(ExitCode::SUCCESS)
}

/// `eval`: a kept backbone evaluated again, beside the value its record holds; exit 1 when they differ.
fn eval(specs: &std::path::Path, run_id: &str, protocol: eigenssl::engine::Protocol, out: &std::path::Path, engine: EngineArgs) -> anyhow::Result<ExitCode> {
    let run = Experiment::find_run(run_id, specs)?;
    let (now, stored) = harness::eval_kept(&run, out, &engine.context(), protocol)?;
    let metric = protocol.metric();
    match stored {
        Some(s) if s == now => println!("{run_id}: {metric} {now} (the record's value, reproduced exactly)"),
        Some(s) => {
            println!("{run_id}: {metric} {now}; the record holds {s}");
            return Ok(ExitCode::FAILURE);
        }
        None => println!("{run_id}: {metric} {now} (the record has no {metric})"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `status`: which runs are done, running, failed or pending.
fn status(specs: &std::path::Path, stored: &Stored) -> anyhow::Result<ExitCode> {
    let exp = Experiment::find(&stored.experiment, specs)?;
    let lines = eigenssl::harness::status::status(&exp, &stored.profile, stored.seeds.as_deref(), &stored.out)?;
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::ASCII_MARKDOWN).set_header(["run", "state", "detail"]);
    let mut counts = std::collections::BTreeMap::new();
    for l in &lines {
        *counts.entry(l.state.label()).or_insert(0) += 1;
        table.add_row([l.run.id(), l.state.label().to_string(), l.detail.clone()]);
    }
    println!("{table}");
    println!("{}", counts.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "));
    Ok(ExitCode::SUCCESS)
}

/// `list`: experiments, their profiles and cells.
fn list(specs: &std::path::Path) -> anyhow::Result<ExitCode> {
    for name in Experiment::names(specs) {
        let exp = Experiment::find(&name, specs)?;
        println!("{}  ({}; {})", exp.name, exp.title, exp.source.display());
        for (pname, p) in &exp.profiles {
            println!("  profile {pname}: seeds {:?} — {}", p.seeds, p.description);
        }
        // Column labels say what a profile runs ({dataset}, {epochs}): shown as the default profile runs them.
        let shown = if exp.profiles.contains_key("paper") { Some("paper".to_string()) } else { exp.profiles.keys().next().cloned() };
        let runs = match &shown {
            Some(p) => exp.runs(p, None)?,
            None => Vec::new(),
        };
        if let Some(p) = &shown {
            println!("  cells (labelled as profile {p} runs them):");
        }
        for c in &exp.cells {
            let column = runs.iter().find(|r| r.cell == c.id).map_or_else(|| c.column.clone(), |r| c.column_for(&r.config));
            println!("  cell {}: {} / {column}", c.id, c.row);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench-step`: one training-step measurement in this process, as JSON (for `bench`).
fn bench_step(specs: &std::path::Path, dataset: DatasetKind, width: f64, batch: usize, reps: usize, device: DeviceKind, kernels: Kernels) -> anyhow::Result<ExitCode> {
    let cfg = eigenssl::bench::training::table1_config(specs, dataset, width, batch, kernels)?;
    let r = eigenssl::bench::training::step(&cfg, reps, &device.open()?)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}

/// How much `bench` measures.
struct BenchSizes {
    reps: usize,
    train_reps: usize,
    rounds: usize,
    batch: usize,
}

/// `bench`: the training step beside PyTorch's, one `cpu`-profile epoch, and the theory step beside
/// NumPy's; printed as markdown and merged into `out/<cpu model>/bench.{md,json}` (the parts not measured
/// now are kept as they were).
fn bench(specs: &std::path::Path, python: &str, sizes: BenchSizes, out: &std::path::Path, theory_only: bool, kernels: Kernels) -> anyhow::Result<ExitCode> {
    use eigenssl::bench::{self, machine::Machine, training, BenchReport, Section, TheoryBench};
    use eigenssl::harness::provenance;
    let repo = std::env::current_dir().context("reading the current folder")?;
    let exe = std::env::current_exe().context("locating the eigenssl binary")?;
    let machine = Machine::this();
    let dir = out.join(machine.slug());
    let json = dir.join("bench.json");
    // Read before measuring: an unreadable file is found now, not after half an hour of measurements.
    let stored: Option<BenchReport> = match std::fs::read(&json) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                let aside = eigenssl::fsutil::set_aside(&json)?;
                eprintln!("warning: {} is not a bench file of this version ({e}); set aside as {}", json.display(), aside.display());
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", json.display()))),
    };
    let training = if theory_only {
        None
    } else {
        let setup = training::TrainingBenchSetup {
            exe: &exe,
            specs,
            repo: &repo,
            python,
            batch: sizes.batch,
            reps: sizes.train_reps,
            rounds: sizes.rounds,
            kernels,
        };
        let started = provenance::now_rfc3339();
        Some(Section::now(started, training::measure(&setup, &|m| eprintln!("bench: {m}"))?))
    };
    eprintln!("bench: theory step");
    let started = provenance::now_rfc3339();
    let theory = TheoryBench { normal_samples_per_s: bench::theory::normal_rate(), steps: bench::theory::steps(&repo, python, sizes.reps) };
    let report = BenchReport::merge(stored, machine, training, Some(Section::now(started, theory)));
    let md = bench::report::markdown(&report);
    eigenssl::fsutil::write_atomic(&dir.join("bench.md"), md.as_bytes())?;
    eigenssl::fsutil::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("{md}");
    eprintln!("written to {}", dir.join("bench.{md,json}").display());
    Ok(ExitCode::SUCCESS)
}

/// `compare`: the regression gate; exit 1 when it fails.
fn compare(
    specs: &std::path::Path,
    names: Vec<String>,
    profile: Option<String>,
    out: &std::path::Path,
    baseline: &std::path::Path,
    gate: &std::path::Path,
    report: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let gate = eigenssl::present::compare::GateConfig::load(gate)?;
    if !baseline.is_dir() {
        return Err(eigenssl::Error::Usage(format!("--baseline {}: no such folder", baseline.display())).into());
    }
    let profile = profile.unwrap_or_else(|| gate.profile.clone());
    let names = if names.is_empty() { gate.experiments.clone() } else { names };
    let mut text = String::new();
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for exp in experiments(&names, specs, None)? {
        let cmp = eigenssl::present::compare::compare(&exp, &profile, out, baseline, &gate)?;
        if cmp.failed() {
            failed.push(exp.name.clone());
            // What failed is shown in full; a passing experiment is one line (its rows are in the report).
            lines.push(cmp.markdown());
        } else {
            lines.push(cmp.summary_line());
        }
        text.push_str(&cmp.markdown());
        text.push('\n');
    }
    let report = report.unwrap_or_else(|| out.join(format!("compare-{profile}.md")));
    eigenssl::fsutil::write_atomic(&report, text.as_bytes())?;
    println!("{}", lines.join("\n"));
    eprintln!("full report: {}", report.display());
    if failed.is_empty() {
        eprintln!("gate: pass");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("gate: FAILED for {}", failed.join(", "));
        Ok(ExitCode::from(EXIT_GATE_FAILED))
    }
}

/// `diff`: stored results of two commits (or a commit and the working tree) side by side.
fn diff(specs: &std::path::Path, rev_a: String, rev_b: Option<String>, experiments: Vec<String>, results: &str, all: bool) -> anyhow::Result<ExitCode> {
    use eigenssl::present::diff::{diff, DiffOptions, Side};
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let b = rev_b.map(Side::Rev).unwrap_or(Side::WorkTree);
    // An experiment named that does not exist is a typo, not "no changes".
    for name in &experiments {
        Experiment::find(name, specs)?;
    }
    let opts = DiffOptions { experiments, all, specs: specs.to_path_buf() };
    println!("{}", diff(&cwd, results, &Side::Rev(rev_a), &b, &opts)?);
    Ok(ExitCode::SUCCESS)
}

/// `verify`: recompute stored runs and compare them with their records; exit 1 when one changed, 3 when
/// none could be recomputed for lack of data.
fn verify(specs: &std::path::Path, names: &[String], profile: &str, sample: Option<usize>, out: &std::path::Path, rtol: f64, engine: EngineArgs) -> anyhow::Result<ExitCode> {
    use eigenssl::harness::verify::{verify, Match, Verdict};
    engine.device.open()?;
    let ctx = engine.context();
    let (mut changed, mut compared, mut not_run) = (0, 0, 0);
    for exp in experiments(names, specs, None)? {
        let results = verify(&exp, profile, out, sample, rtol, &ctx)?;
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED).set_header(["run", "result", "field", "stored", "now"]);
        for (run, verdict) in &results {
            let row: [String; 4] = match verdict {
                Verdict::Compared(Match::Identical) => ["identical".into(), String::new(), String::new(), String::new()],
                Verdict::Compared(Match::WithinTolerance { field, relative }) => {
                    ["within tolerance".into(), field.clone(), format!("largest relative difference {relative:.1e}"), String::new()]
                }
                Verdict::Compared(Match::Changed { field, stored, now }) => ["CHANGED".into(), field.clone(), stored.clone(), now.clone()],
                Verdict::NotStored => ["not stored".into(), String::new(), String::new(), String::new()],
                Verdict::NotRun(why) => ["not run".into(), String::new(), why.chars().take(60).collect(), String::new()],
            };
            match verdict {
                Verdict::Compared(m) => {
                    compared += 1;
                    changed += usize::from(matches!(m, Match::Changed { .. }));
                }
                Verdict::NotRun(_) => not_run += 1,
                Verdict::NotStored => {}
            }
            let [a, b, c, d] = row;
            table.add_row([run.id(), a, b, c, d]);
        }
        println!("{} / {profile}: {} run(s) recomputed\n{table}", exp.name, results.len());
    }
    eprintln!("verify: {compared} compared, {changed} changed, {not_run} not run (rtol {rtol:e})");
    Ok(if changed > 0 {
        ExitCode::FAILURE
    } else if compared == 0 && not_run > 0 {
        ExitCode::from(EXIT_NO_DATA)
    } else {
        ExitCode::SUCCESS
    })
}

/// `data`: what each dataset's loader finds under `data_dir` (and in the hub's cache); exit 3 when a
/// dataset is missing.
fn data(data_dir: &std::path::Path, download: bool) -> anyhow::Result<ExitCode> {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(["dataset", "found", "format", "train / test images", "content sha256", "source"]);
    let mut missing = Vec::new();
    for kind in [DatasetKind::Cifar10, DatasetKind::Stl10] {
        match eigenssl::data::find_with(kind, data_dir, download) {
            Ok(d) => {
                let f = d.fingerprint();
                table.add_row([kind.label().to_string(), "yes".into(), f.format, format!("{} / {}", f.train_images, f.test_images), f.sha256[..16].to_string(), f.source.display().to_string()]);
            }
            Err(eigenssl::Error::DataMissing(why)) => {
                table.add_row([kind.label().to_string(), "missing".into(), String::new(), String::new(), String::new(), String::new()]);
                missing.push(why);
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("{table}");
    for why in &missing {
        println!("{why}");
    }
    if missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Put a dataset in one of those layouts under --data-dir, or fetch it: eigenssl data --download (Hugging Face hub).");
        Ok(ExitCode::from(EXIT_NO_DATA))
    }
}

/// `report`: the static HTML site.
fn report(specs: &std::path::Path, out: &std::path::Path, results: String) -> anyhow::Result<ExitCode> {
    let opts = eigenssl::present::site::SiteOptions {
        repo: std::env::current_dir().context("reading the current folder")?,
        results,
        specs: specs.to_path_buf(),
        out: out.to_path_buf(),
    };
    let pages = eigenssl::present::site::write_site(&opts)?;
    eprintln!("wrote {} page(s); open {}", pages.len(), out.join("index.html").display());
    Ok(ExitCode::SUCCESS)
}

/// `table`: re-aggregate stored runs into the table, summary and figures.
fn table(specs: &std::path::Path, stored: &Stored) -> anyhow::Result<ExitCode> {
    let exp = Experiment::find(&stored.experiment, specs)?;
    match eigenssl::present::regenerate(&exp, &stored.profile, stored.seeds.as_deref(), &stored.out) {
        Ok(outputs) => {
            println!("{}", outputs.terminal);
            eprintln!("full table: {}", outputs.table.display());
        }
        // A results folder one may read but not write (a colleague's, a mounted archive): shown, not written.
        Err(eigenssl::Error::Io { path, source }) if matches!(source.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem) => {
            let terminal = eigenssl::present::terminal_table(&exp, &stored.profile, stored.seeds.as_deref(), &stored.out)?;
            println!("{}", terminal.unwrap_or_else(|| "no stored runs".into()));
            eprintln!("{} is not writable ({source}): the table is shown, table.md and the figures are left as they are", path.display());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

// glibc's allocator returns the large tensors of every step to the OS and faults them back in on the
// next (a quarter of a CPU training step went to page faults and zeroing fresh pages); mimalloc, told
// never to purge freed memory, reuses them: width/4 step 803 → 577 ms, full width 4.8 → 3.7 s here, for
// a higher peak memory (see docs/src/performance-log.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc.h (between `eager_commit_delay` = 14 and `use_numa_nodes` = 16),
/// which libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `eigenssl diff | head`: Rust ignores SIGPIPE, so a write to the closed pipe panicked with a backtrace;
/// with the default action the process ends quietly, as command-line tools do.
fn die_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread starts; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// candle 0.11's element-wise ops run on its own worker threads besides rayon's, and those spin for
/// 25 000 rounds after every op before they sleep: on a 2-core machine the spinning took a core from the
/// convolution kernels that run next (width/4 step ~195 → ~183 ms here). Told not to spin, they sleep at
/// once; a value the user sets is kept. Must run before candle starts its pool (the first op).
fn park_idle_candle_workers() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "0");
    }
}

fn keep_freed_memory() {
    // SAFETY: sets a global allocator option; any value is valid, -1 means never purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
