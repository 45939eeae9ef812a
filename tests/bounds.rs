//! Issue 36, items 7 and 10: spec values are bounded before any run starts (memory, the work of one
//! theory step), a long theory run stops within seconds of SIGTERM, and a sweep expected to take more
//! than a day waits for `--yes`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn eigenssl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eigenssl"))
}

/// A copy of the specs with `fig2`'s and `table1`'s first profile line preceded by `profiles` (YAML).
fn specs_with(dir: &std::path::Path, experiment: &str, profiles: &str) -> std::path::PathBuf {
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let text = std::fs::read_to_string(format!("experiments/{experiment}.yaml")).unwrap().replacen("profiles:\n", &format!("profiles:\n{profiles}"), 1);
    std::fs::write(specs.join(format!("{experiment}.yaml")), text).unwrap();
    specs
}

#[test]
fn a_run_that_cannot_fit_in_memory_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    // 4 × 10⁹ evaluation points of 6 numbers: about 200 GiB (the process used to abort on the allocation).
    let specs = specs_with(dir.path(), "fig2", "  huge:\n    description: \"test\"\n    seeds: [0]\n    set: { batch: 500, steps: 10, eval_pool: 4000000000 }\n");
    let t0 = Instant::now();
    let out = eigenssl().arg("--specs").arg(&specs).args(["reproduce", "fig2", "--profile", "huge", "--out"]).arg(dir.path().join("results")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("fig2.yaml") && stderr.contains("profile huge, cell") && stderr.contains("of memory") && stderr.contains("eval_pool"), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(30), "refused at once");
    assert!(!dir.path().join("results").exists(), "nothing written");
}

#[test]
fn a_theory_step_too_large_to_stop_is_a_spec_error() {
    let dir = tempfile::tempdir().unwrap();
    let specs = specs_with(dir.path(), "fig2", "  huge:\n    description: \"test\"\n    seeds: [0]\n    set: { batch: 100000000000, steps: 10 }\n");
    let out = eigenssl().arg("--specs").arg(&specs).args(["reproduce", "fig2", "--profile", "huge", "--out"]).arg(dir.path().join("results")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("batch × n_in × n_out <= 1e9"), "{stderr}");
}

#[test]
fn a_long_theory_run_stops_within_seconds_of_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // 10⁸ steps of B = 5000: hours; it used to ignore the stop request until the run ended.
    let specs = specs_with(dir.path(), "fig2", "  long:\n    description: \"test\"\n    seeds: [0]\n    cells: [eigen/isoloss]\n    set: { batch: 5000, steps: 100000000, log_every: 100000000 }\n");
    let mut child = eigenssl()
        .arg("--specs")
        .arg(&specs)
        .args(["reproduce", "fig2", "--profile", "long", "--out"])
        .arg(dir.path().join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert!(!dir.path().join("results/fig2/long/runs/eigen__isoloss__seed0.json").exists(), "no record of a stopped run");
}

#[test]
fn a_sweep_of_more_than_a_day_waits_for_yes() {
    let dir = tempfile::tempdir().unwrap();
    // Generated images (no data needed), a tiny network, 10⁶ epochs: years on any machine.
    let specs = specs_with(
        dir.path(),
        "table1",
        "  forever:\n    description: \"test\"\n    seeds: [0]\n    cells: [cifar10/simsiam/ema]\n    set: { dataset: synthetic, width: 0.03125, proj_hidden: 32, proj_out: 8, batch: 16, epochs: 1000000, warmup_epochs: 0 }\n",
    );
    let out = eigenssl().arg("--specs").arg(&specs).args(["reproduce", "table1", "--profile", "forever", "--out"]).arg(dir.path().join("results")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("more than a day") && stderr.contains("--yes") && stderr.contains("--profile cpu") && stderr.contains("--device cuda") && stderr.contains("--executor slurm"), "{stderr}");
    assert!(stderr.contains("timing a training step"), "the timing is announced: {stderr}");
    assert!(!dir.path().join("results").exists(), "nothing written");
    let dry = eigenssl().arg("--specs").arg(&specs).args(["reproduce", "table1", "--profile", "forever", "--dry-run", "--out"]).arg(dir.path().join("results")).output().unwrap();
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("it would start only with --yes"), "{stderr}");
}
