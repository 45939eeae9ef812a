//! `eigenssl compare`: the regression gate.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{experiments, EXIT_GATE_FAILED};

#[derive(clap::Args)]
pub(crate) struct Args {
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
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        compare(specs, self.experiments, self.profile, &self.out, &self.baseline, &self.gate, self.report)
    }
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
