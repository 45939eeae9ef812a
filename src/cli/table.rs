//! `eigenssl table`: stored runs re-aggregated into the table, summary and figures.

use std::process::ExitCode;

use eigenssl::spec::Experiment;

use super::Stored;

/// `table`: re-aggregate stored runs into the table, summary and figures.
pub(crate) fn run(specs: &std::path::Path, stored: &Stored) -> anyhow::Result<ExitCode> {
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
