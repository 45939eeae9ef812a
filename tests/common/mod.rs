//! Shared by the integration tests that drive the binary: a small deep-SSL spec and helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs at once in local sweeps.
pub const JOBS: &str = "2";

/// A specs folder holding table1 with a `kill` profile: three cells (EMA + LARS, no-EMA + SGD,
/// readout only), two seeds, three epochs of 10 steps. The images/s metric is left out of the table:
/// it is a timing, and every other number must come out identical.
pub fn specs() -> tempfile::TempDir {
    let text = std::fs::read_to_string("experiments/table1.yaml").unwrap();
    let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let metrics = v["metrics"].as_sequence_mut().unwrap();
    metrics.retain(|m| m["name"].as_str() != Some("images_per_s"));
    let profile: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        "kill:
           description: interruption tests
           seeds: [0, 1]
           cells: [cifar10/simsiam/ema, cifar10/isoloss/no_ema, cifar10/untrained]
           set: { dataset: synthetic, width: 0.0625, proj_hidden: 64, proj_out: 16, batch: 64, epochs: 3, warmup_epochs: 1 }",
    )
    .unwrap();
    v["profiles"] = profile;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("table1.yaml"), serde_yaml_ng::to_string(&v).unwrap()).unwrap();
    dir
}

/// `eigenssl --specs SPECS reproduce table1 --profile kill --out OUT` (add `--jobs`, `--executor`).
pub fn eigenssl_sweep(specs: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_eigenssl"));
    c.arg("--specs").arg(specs).args(["reproduce", "table1", "--profile", "kill", "--out"]).arg(out);
    c
}

pub fn table(out: &Path) -> String {
    std::fs::read_to_string(out.join("table1/kill/table.md")).unwrap()
}

/// Every file under `dir`, relative.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, base: &Path, acc: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, acc)
            } else {
                acc.push(p.strip_prefix(base).unwrap().to_path_buf())
            }
        }
    }
    let mut acc = Vec::new();
    walk(dir, dir, &mut acc);
    acc.sort();
    acc
}

/// The same with `--jobs 2`.
pub fn sweep(specs: &Path, out: &Path) -> Command {
    let mut c = eigenssl_sweep(specs, out);
    c.args(["--jobs", JOBS]);
    c
}

/// The records of a finished sweep: six, all readable and ok, nothing set aside, no checkpoint left.
pub fn assert_complete(out: &Path) {
    let all = files(out);
    let runs: Vec<_> = all.iter().filter(|p| p.starts_with("table1/kill/runs") && p.extension().is_some_and(|e| e == "json")).collect();
    assert_eq!(runs.len(), 6, "{all:?}");
    for r in &runs {
        let rec = eigenssl::harness::store::read_record(&out.join(r)).unwrap();
        assert_eq!(rec.status, eigenssl::harness::store::RunStatus::Ok, "{r:?}");
    }
    assert!(!all.iter().any(|p| p.to_string_lossy().contains("corrupt")), "nothing was unreadable: {all:?}");
    assert!(!all.iter().any(|p| p.starts_with("table1/kill/checkpoints") && p.extension().is_some_and(|e| e == "safetensors")), "{all:?}");
}


/// Missing-data tests must not find the data in the user's Hugging Face cache or download it.
pub fn offline_with_empty_hub_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let empty = std::env::temp_dir().join(format!("eigenssl-tests-empty-hf-home-{}", std::process::id()));
        std::env::set_var("HF_HOME", empty);
        std::env::set_var("HF_HUB_OFFLINE", "1");
    });
}

/// How this build refuses `--device cuda` on a machine without a usable GPU, as (exit code, words of the
/// message): the default CPU build says it has no CUDA support (bad usage, 2); a `--features cuda` build
/// (ci/build-cuda.sh) finds no GPU or driver (the environment, 1).
pub fn cuda_refusal() -> (i32, &'static str) {
    if cfg!(feature = "cuda") {
        (1, "--device cuda: no usable GPU or driver here")
    } else {
        (2, "--device cuda: this build has no cuda support; build with `--features cuda`")
    }
}
