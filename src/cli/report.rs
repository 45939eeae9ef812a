//! `eigenssl report`: the static HTML site of every stored result.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where the site goes.
    #[arg(long, default_value = "site")]
    out: PathBuf,
    /// Results folder, relative to the repository root.
    #[arg(long, default_value = "results")]
    results: String,
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        report(specs, &self.out, self.results)
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
