//! `eigenssl diff`: the stored results of two commits side by side.

use std::process::ExitCode;

use anyhow::Context;
use eigenssl::spec::Experiment;

#[derive(clap::Args)]
pub(crate) struct Args {
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
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        diff(specs, self.rev_a, self.rev_b, self.experiments, &self.results, self.all)
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
