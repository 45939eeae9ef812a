//! Runs never lose work: SIGKILL at random moments, SIGTERM with a checkpoint, and two sweeps at once on
//! one results folder. All through the binary, on a small deep-SSL profile (3 epochs on generated
//! images, so that runs have checkpoints to resume from), compared with an uninterrupted sweep.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

mod common;
use common::{assert_complete, files, specs, sweep, table};

fn uninterrupted(specs: &Path) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    let o = sweep(specs, out.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = table(out.path());
    (out, t)
}

#[test]
fn sigkill_at_20_random_moments_loses_nothing_and_changes_nothing() {
    let specs = specs();
    let (_reference, expected) = uninterrupted(specs.path());
    let out = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let mut resumed_from_checkpoint = false;
    for i in 0..20 {
        let mut child = sweep(specs.path(), out.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        // Every other kill comes shortly after a checkpoint is on disk (however slow the machine is, so
        // that resuming is tested); the others at a random moment of the first seconds.
        let t0 = Instant::now();
        if i % 2 == 1 {
            let ck = out.path().join("table1/kill/checkpoints");
            while t0.elapsed() < Duration::from_secs(120)
                && child.try_wait().unwrap().is_none()
                && !files(&ck).iter().any(|p| p.extension().is_some_and(|e| e == "safetensors"))
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let wait = Duration::from_millis(rng.random_range(if i % 2 == 1 { 0..1500 } else { 200..4000 }));
        std::thread::sleep(wait);
        let wait = t0.elapsed();
        let _ = child.kill(); // SIGKILL; the sweep may have ended already
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "kill {i} after {wait:?}: {err}");
        // Whatever is visible at any moment is whole: every record and checkpoint reads.
        for p in files(out.path()) {
            let full = out.path().join(&p);
            if p.extension().is_some_and(|e| e == "json") && p.starts_with("table1/kill/runs") {
                eigenssl::harness::store::read_record(&full).unwrap_or_else(|e| panic!("kill {i}: {e}"));
            }
            if p.extension().is_some_and(|e| e == "safetensors") {
                eigenssl::ssl::checkpoint::load(&full, &candle_core::Device::Cpu).unwrap_or_else(|e| panic!("kill {i}: {e}"));
                resumed_from_checkpoint = true;
            }
        }
    }
    let o = sweep(specs.path(), out.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_complete(out.path());
    assert!(resumed_from_checkpoint, "no kill happened after a checkpoint: the test did not test resuming");
    assert_eq!(table(out.path()), expected);
}

#[test]
fn sigterm_checkpoints_says_how_to_resume_and_the_rerun_matches() {
    let specs = specs();
    let (_reference, expected) = uninterrupted(specs.path());
    let out = tempfile::tempdir().unwrap();
    let child = sweep(specs.path(), out.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Wait for the first epoch's checkpoint, then ask the sweep to stop.
    let ck = out.path().join("table1/kill/checkpoints");
    let t0 = Instant::now();
    while !files(&ck).iter().any(|p| p.extension().is_some_and(|e| e == "safetensors")) {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("stopped on request") && err.contains("Run the same command again"), "{err}");
    assert!(files(&ck).iter().any(|p| p.extension().is_some_and(|e| e == "safetensors")), "a checkpoint is left to resume from");
    let o = sweep(specs.path(), out.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_complete(out.path());
    assert_eq!(table(out.path()), expected);
    // The records of the runs that were resumed say from where.
    let runs = out.path().join("table1/kill/runs");
    let resumed = files(&runs)
        .iter()
        .filter(|p| {
            let rec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs.join(p)).unwrap()).unwrap();
            rec["provenance"]["resumed_from"].as_array().is_some_and(|a| !a.is_empty() && a[0]["epoch"].as_u64().is_some_and(|e| e >= 1))
        })
        .count();
    assert!(resumed >= 1, "no record says it was resumed");
}

/// "table1: N run(s) computed, ..." → N.
fn computed(stderr: &str) -> usize {
    let line = stderr.lines().find(|l| l.starts_with("table1: ") && l.contains("run(s) computed")).unwrap_or_else(|| panic!("{stderr}"));
    line["table1: ".len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn two_sweeps_at_once_on_one_folder_run_each_run_once() {
    let specs = specs();
    let (_reference, expected) = uninterrupted(specs.path());
    let out = tempfile::tempdir().unwrap();
    let spawn = || sweep(specs.path(), out.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success() && b.status.success(), "{ea}\n{eb}");
    assert_eq!(computed(&ea) + computed(&eb), 6, "each of the 6 runs computed exactly once:\n{ea}\n{eb}");
    assert_complete(out.path());
    assert_eq!(table(out.path()), expected);
}

/// A tmpfs mounted at a fresh folder for the test's lifetime (these machines run tests as root).
struct Mount(tempfile::TempDir);

impl Mount {
    fn new(options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir.path()).status();
        assert!(ok.is_ok_and(|s| s.success()), "this test mounts a small tmpfs and needs root (mount -t tmpfs)");
        Mount(dir)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_or_read_only_results_disk_fails_before_any_run_starts() {
    let specs = specs();
    for (options, why) in [("size=256k", "No space left"), ("ro,size=1m", "Read-only")] {
        let m = Mount::new(options);
        let out = m.0.path().join("results");
        let t0 = Instant::now();
        let o = sweep(specs.path(), &out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("is not writable") && err.contains(why) && err.contains("results"), "{err}");
        assert!(!err.contains("expected time"), "fails before planning or timing anything: {err}");
        assert!(t0.elapsed() < Duration::from_secs(10));
    }
}

/// Issue 36, item 11: a `--force` sweep stopped midway says to rerun without `--force`, and that rerun
/// resumes the run with a checkpoint (over its older record) and keeps the runs the forced sweep finished.
#[test]
fn a_forced_sweep_stopped_midway_resumes_without_force() {
    let specs = specs();
    let out = tempfile::tempdir().unwrap();
    let o = sweep(specs.path(), out.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let child = sweep(specs.path(), out.path()).arg("--force").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let ck = out.path().join("table1/kill/checkpoints");
    let t0 = Instant::now();
    while !files(&ck).iter().any(|p| p.extension().is_some_and(|e| e == "safetensors")) {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("Run the same command without --force"), "{err}");
    let unfinished = files(&ck).iter().filter(|p| p.extension().is_some_and(|e| e == "safetensors")).count();
    assert!(unfinished >= 1);
    let o = sweep(specs.path(), out.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("{unfinished} run(s) to compute")), "the checkpointed runs are resumed, the rest kept: {err}");
    assert!(files(&ck).iter().all(|p| p.extension().is_none_or(|e| e != "safetensors")), "no checkpoint left");
}
