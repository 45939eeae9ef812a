//! `eigenssl eval`: a kept backbone evaluated again, beside the value its record holds.

use std::path::PathBuf;
use std::process::ExitCode;

use eigenssl::harness;
use eigenssl::spec::Experiment;

use super::EngineArgs;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// `<experiment>/<profile>/<cell>/seed<k>`.
    run_id: String,
    /// knn or linear.
    #[arg(long)]
    protocol: eigenssl::engine::Protocol,
    #[arg(long, default_value = "results")]
    out: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        eval(specs, &self.run_id, self.protocol, &self.out, self.engine)
    }
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
