//! `eigenssl list`: experiments, their profiles and cells.

use std::process::ExitCode;

use eigenssl::spec::Experiment;

/// `list`: experiments, their profiles and cells.
pub(crate) fn run(specs: &std::path::Path) -> anyhow::Result<ExitCode> {
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
