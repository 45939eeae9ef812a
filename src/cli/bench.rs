//! `eigenssl bench` (the training step beside PyTorch's, one `cpu`-profile epoch, the theory step beside
//! NumPy's) and `eigenssl bench-step` (one training-step measurement in this process, for `bench`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use eigenssl::data::DatasetKind;
use eigenssl::device::DeviceKind;
use eigenssl::precision::Precision;
use eigenssl::ssl::Kernels;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Python interpreter for the references (needs NumPy; PyTorch for the training step).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Timed repetitions per theory-step measurement.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Timed steps per training-step measurement (its median is the measurement).
    #[arg(long, default_value_t = 10)]
    train_reps: usize,
    /// Rounds of our step and PyTorch's, alternating; the ratio reported is the median round's, with its 95 %
    /// confidence interval (on a shared 2-core machine one round's ratio swings by ±0.2: with 25 rounds that
    /// interval was ±0.04 at width/4, with 15 rounds ±0.04 to ±0.10).
    #[arg(long, default_value_t = 25)]
    rounds: usize,
    /// Folder of the per-CPU-model folders that hold `bench.json` and `bench.md`.
    #[arg(long, default_value = "results/bench")]
    out: PathBuf,
    /// Batch (image pairs) of the training-step measurement.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Only the theory step (the training step at full width takes minutes on 2 cores).
    #[arg(long)]
    theory_only: bool,
    /// What computes our step in the rounds against PyTorch: native (ours where they apply) or candle
    /// (candle's ops). With native, the step by candle's ops is measured besides, once per width.
    #[arg(long, default_value = "native")]
    kernels: Kernels,
}

impl Args {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        let sizes = BenchSizes { reps: self.reps, train_reps: self.train_reps, rounds: self.rounds, batch: self.batch };
        bench(specs, &self.python, sizes, &self.out, self.theory_only, self.kernels)
    }
}

#[derive(clap::Args)]
pub(crate) struct StepArgs {
    /// Table 1 dataset whose image size and config to use: cifar10 or stl10.
    #[arg(long, default_value = "cifar10")]
    dataset: DatasetKind,
    #[arg(long)]
    width: f64,
    #[arg(long)]
    batch: usize,
    #[arg(long)]
    reps: usize,
    /// cpu, cuda or metal.
    #[arg(long, default_value = "cpu")]
    device: DeviceKind,
    #[arg(long, default_value = "native")]
    kernels: Kernels,
    /// f32 matrix products on CUDA: f32 or tf32 (tensor cores).
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

impl StepArgs {
    pub(crate) fn run(self, specs: &std::path::Path) -> anyhow::Result<ExitCode> {
        let mut cfg = eigenssl::bench::training::table1_config(specs, self.dataset, self.width, self.batch, self.kernels)?;
        cfg.precision = self.precision;
        bench_step(&cfg, self.reps, self.device)
    }
}

/// `bench-step`: one training-step measurement of `cfg` in this process, as JSON (for `bench`).
fn bench_step(cfg: &eigenssl::ssl::config::SslConfig, reps: usize, device: DeviceKind) -> anyhow::Result<ExitCode> {
    let open = device.open()?;
    cfg.precision.apply(device);
    let r = eigenssl::bench::training::step(cfg, reps, &open)?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}

/// How much `bench` measures.
struct BenchSizes {
    reps: usize,
    train_reps: usize,
    rounds: usize,
    batch: usize,
}

/// `bench`: the training step beside PyTorch's, one `cpu`-profile epoch, and the theory step beside
/// NumPy's; printed as markdown and merged into `out/<cpu model>/bench.{md,json}` (the parts not measured
/// now are kept as they were).
fn bench(specs: &std::path::Path, python: &str, sizes: BenchSizes, out: &std::path::Path, theory_only: bool, kernels: Kernels) -> anyhow::Result<ExitCode> {
    use eigenssl::bench::{self, machine::Machine, training, BenchReport, Section, TheoryBench};
    use eigenssl::harness::provenance;
    let repo = std::env::current_dir().context("reading the current folder")?;
    let exe = std::env::current_exe().context("locating the eigenssl binary")?;
    let machine = Machine::this();
    let dir = out.join(machine.slug());
    let json = dir.join("bench.json");
    // Read before measuring: an unreadable file is found now, not after half an hour of measurements.
    let stored: Option<BenchReport> = match std::fs::read(&json) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                let aside = eigenssl::fsutil::set_aside(&json)?;
                eprintln!("warning: {} is not a bench file of this version ({e}); set aside as {}", json.display(), aside.display());
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", json.display()))),
    };
    let training = if theory_only {
        None
    } else {
        let setup = training::TrainingBenchSetup {
            exe: &exe,
            specs,
            repo: &repo,
            python,
            batch: sizes.batch,
            reps: sizes.train_reps,
            rounds: sizes.rounds,
            kernels,
        };
        let started = provenance::now_rfc3339();
        Some(Section::now(started, training::measure(&setup, &|m| eprintln!("bench: {m}"))?))
    };
    eprintln!("bench: theory step");
    let started = provenance::now_rfc3339();
    let theory = TheoryBench { normal_samples_per_s: bench::theory::normal_rate(), steps: bench::theory::steps(&repo, python, sizes.reps) };
    let report = BenchReport::merge(stored, machine, training, Some(Section::now(started, theory)));
    let md = bench::report::markdown(&report);
    eigenssl::fsutil::write_atomic(&dir.join("bench.md"), md.as_bytes())?;
    eigenssl::fsutil::write_atomic(&json, serde_json::to_string_pretty(&report)?.as_bytes())?;
    println!("{md}");
    eprintln!("written to {}", dir.join("bench.{md,json}").display());
    Ok(ExitCode::SUCCESS)
}
