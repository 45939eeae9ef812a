//! The eigenssl command line: parses the arguments and hands them to their subcommand (`cli/`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "eigenssl", version, about = "Reproduce 'An eigenspace view reveals how predictor networks and stop-grads provide implicit variance regularization'")]
struct Cli {
    /// Folder with the experiment specs (`NAME.yaml`); specs compiled into the binary fill in missing ones.
    #[arg(long, global = true, default_value = "experiments")]
    specs: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every pending run of the experiments (`all` = every spec), then regenerate tables and figures.
    Reproduce(cli::reproduce::Args),
    /// Execute exactly one planned run and store its record (what each Slurm task runs).
    Run(cli::run::Args),
    /// Re-evaluate a run's kept weights (`--keep-weights`) with k-NN or the linear probe, exactly as the
    /// run evaluated them, beside the value its record holds.
    Eval(cli::eval::Args),
    /// Which runs of an experiment are done, running (locked), failed or pending in a results folder.
    Status(cli::Stored),
    /// List experiments, their cells and profiles.
    List,
    /// Benchmarks, each beside a reference implementation measured in the same run.
    Bench(cli::bench::Args),
    /// One training-step measurement in this process (used by `bench`; prints JSON).
    #[command(hide = true)]
    BenchStep(cli::bench::StepArgs),
    /// Regression gate: compare stored runs with a baseline; exit 1 on a regression (report in markdown).
    Compare(cli::compare::Args),
    /// Stored results of two commits side by side (read from git objects; rev-b defaults to the working tree).
    Diff(cli::diff::Args),
    /// Recompute stored runs (all, or a deterministic sample) and report each as identical, equal within
    /// tolerance, or changed with the first differing field; exit 1 when one changed.
    Verify(cli::verify::Args),
    /// What data is here: per dataset, the layout found, where, its image counts and content fingerprint,
    /// or what is missing and how to get it.
    Data(cli::data::Args),
    /// A static HTML site of every stored result (tables, figures, per-commit history, provenance and
    /// configs of every run); open <out>/index.html in a browser, no server needed.
    Report(cli::report::Args),
    /// Re-aggregate stored runs and print/write the table (and figures).
    Table(cli::Stored),
}

fn main() -> ExitCode {
    keep_freed_memory();
    park_idle_candle_workers();
    die_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    let specs = cli.specs.as_path();
    let outcome = match cli.command {
        Command::Reproduce(args) => args.run(specs),
        Command::Run(args) => args.run(specs),
        Command::Eval(args) => args.run(specs),
        Command::Status(stored) => cli::status::run(specs, &stored),
        Command::List => cli::list::run(specs),
        Command::Bench(args) => args.run(specs),
        Command::BenchStep(args) => args.run(specs),
        Command::Compare(args) => args.run(specs),
        Command::Diff(args) => args.run(specs),
        Command::Verify(args) => args.run(specs),
        Command::Data(args) => args.run(),
        Command::Report(args) => args.run(specs),
        Command::Table(stored) => cli::table::run(specs, &stored),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(e.downcast_ref::<eigenssl::Error>().map_or(1, eigenssl::Error::exit_code))
        }
    }
}

/// The error and its causes on one line, each said once: our I/O errors name their cause in their own
/// message already (`path: os error`), which `{:#}` would print a second time.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

// glibc's allocator returns the large tensors of every step to the OS and faults them back in on the
// next (a quarter of a CPU training step went to page faults and zeroing fresh pages); mimalloc, told
// never to purge freed memory, reuses them: width/4 step 803 → 577 ms, full width 4.8 → 3.7 s here, for
// a higher peak memory (see docs/src/performance-log.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc.h (between `eager_commit_delay` = 14 and `use_numa_nodes` = 16),
/// which libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `eigenssl diff | head`: Rust ignores SIGPIPE, so a write to the closed pipe panicked with a backtrace;
/// with the default action the process ends quietly, as command-line tools do.
fn die_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread starts; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// candle 0.11's element-wise ops run on its own worker threads besides rayon's, and those spin for
/// 25 000 rounds after every op before they sleep: on a 2-core machine the spinning took a core from the
/// convolution kernels that run next (width/4 step ~195 → ~183 ms here). Told not to spin, they sleep at
/// once; a value the user sets is kept. Must run before candle starts its pool (the first op).
fn park_idle_candle_workers() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "0");
    }
}

fn keep_freed_memory() {
    // SAFETY: sets a global allocator option; any value is valid, -1 means never purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
