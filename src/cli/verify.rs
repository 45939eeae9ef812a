//! `eigenssl verify`: stored runs recomputed and compared with their records.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{experiments, EngineArgs, EXIT_NO_DATA};

#[derive(clap::Args)]
pub(crate) struct Args {
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
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        verify(specs, &self.experiments, &self.profile, self.sample, &self.out, self.rtol, self.engine)
    }
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
