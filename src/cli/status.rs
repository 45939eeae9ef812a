//! `eigenssl status`: which runs of an experiment are done, running, failed or pending.

use std::process::ExitCode;

use eigenssl::spec::Experiment;

use super::Stored;

/// `status`: which runs are done, running, failed or pending.
pub(crate) fn run(specs: &std::path::Path, stored: &Stored) -> anyhow::Result<ExitCode> {
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
