//! The subcommands: one file each, with its arguments (`Args`) and its body (`Args::run`); what several
//! share is here. Each decides its own exit code; `main` reports errors.

use std::path::PathBuf;

use eigenssl::device::DeviceKind;
use eigenssl::spec::Experiment;
use eigenssl::ssl::Kernels;

pub(crate) mod bench;
pub(crate) mod compare;
pub(crate) mod data;
pub(crate) mod diff;
pub(crate) mod eval;
pub(crate) mod list;
pub(crate) mod report;
pub(crate) mod reproduce;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod table;
pub(crate) mod verify;

/// The stored runs of one experiment and profile (for `table` and `status`).
#[derive(clap::Args)]
pub(crate) struct Stored {
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
pub(crate) struct EngineArgs {
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
    pub(crate) fn context(self) -> eigenssl::engine::EngineContext {
        eigenssl::engine::EngineContext { data_dir: self.data_dir, device: self.device }
    }
}

/// A count of at least 1 (`--jobs`).
pub(crate) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("expected at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a whole number: {e}")),
    }
}

/// Exit code of a sweep with failed runs (as of a failed regression gate: something needs looking at).
pub(crate) const EXIT_RUNS_FAILED: u8 = 1;
/// Exit code of a run stopped on request (SIGINT/SIGTERM), as shells report Ctrl-C.
pub(crate) const EXIT_STOPPED: u8 = 130;
/// Exit code of a failed regression gate.
pub(crate) const EXIT_GATE_FAILED: u8 = 1;
/// Exit code of a sweep none of whose runs could run because their data is missing (as for
/// [`eigenssl::Error::DataMissing`]).
pub(crate) const EXIT_NO_DATA: u8 = 3;

/// The named experiments (`all`: every spec), with `--kernels` applied where given.
pub(crate) fn experiments(names: &[String], dir: &std::path::Path, kernels: Option<Kernels>) -> eigenssl::Result<Vec<Experiment>> {
    let names: Vec<String> =
        if names.iter().any(|n| n == "all") { Experiment::names(dir) } else { names.to_vec() };
    names.iter().map(|n| Experiment::find(n, dir).map(|e| match kernels {
        Some(k) => e.with_kernels(k),
        None => e,
    })).collect()
}
