//! `eigenssl run`: exactly one planned run (what each Slurm task runs).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use eigenssl::engine::RunStatus;
use eigenssl::harness::{self, ExecOptions};
use eigenssl::spec::Experiment;
use eigenssl::ssl::Kernels;

use super::{EngineArgs, EXIT_NO_DATA, EXIT_STOPPED};

#[derive(clap::Args)]
pub(crate) struct Args {
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
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        run_one(specs, &self.run_id, &self.out, self.engine, self.keep_weights, self.kernels)
    }
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
