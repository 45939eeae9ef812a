//! `ci/gpu-check.sh` on a machine without a GPU: it refuses cleanly (exit 3, nothing written) or names
//! what is missing (exit 2), and its summary, fed this build's real CPU outputs in place of the GPU's,
//! computes the ratios and the paper profile's expected time as documented.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_eigenssl");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A folder of stand-in tools put first on PATH: `nvidia-smi` prints `gpu` (or fails when `None`).
fn fake_tools(dir: &Path, gpu: Option<&str>) -> String {
    let bin = dir.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let smi = bin.join("nvidia-smi");
    let body = match gpu {
        Some(line) => format!("#!/bin/sh\necho '{line}'\n"),
        None => "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2\nexit 9\n".into(),
    };
    std::fs::write(&smi, body).unwrap();
    let no_torch = bin.join("python-without-torch");
    std::fs::write(&no_torch, "#!/bin/sh\nexit 1\n").unwrap();
    for f in [&smi, &no_torch] {
        Command::new("chmod").arg("+x").arg(f).status().unwrap();
    }
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

/// Stand-ins for a GPU machine: PATH with an `nvidia-smi` that lists an H100, and a Python whose torch
/// "sees the GPU", so that the check's own preconditions pass.
fn gpu_machine(dir: &Path) -> (String, PathBuf) {
    let path = fake_tools(dir, Some("NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15"));
    let py = dir.join("fake-bin/python-with-torch");
    std::fs::write(&py, "#!/bin/sh\nexit 0\n").unwrap();
    Command::new("chmod").arg("+x").arg(&py).status().unwrap();
    (path, py)
}

fn gpu_check(path: &str, args: &[&str]) -> Output {
    Command::new("bash").arg(repo().join("ci/gpu-check.sh")).args(args).env("PATH", path).current_dir(repo()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn refuses_cleanly_without_a_gpu_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = gpu_check(&fake_tools(dir.path(), None), &["--bin", BIN, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no NVIDIA GPU here"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing may be written without a GPU");
}

#[test]
fn names_a_missing_binary_torch_or_bad_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let with_gpu = fake_tools(dir.path(), Some("NVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15"));
    let o = gpu_check(&with_gpu, &["--bin", "/nonexistent/eigenssl", "--out", out]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no eigenssl binary at /nonexistent/eigenssl"), "{}", stderr(&o));
    let o = gpu_check(&with_gpu, &["--bin", BIN, "--out", out, "--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown argument '--frobnicate'"), "{}", stderr(&o));
    let o = gpu_check(&with_gpu, &["--bin", BIN, "--out", out, "--python", "python-without-torch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("has no torch that sees the GPU"), "{}", stderr(&o));
}

/// sections.jsonl as the check writes it when every section passed.
const SECTIONS_PASSED: &str = concat!(
    "{\"section\": \"1. training step, width/4\", \"exit\": 0, \"seconds\": 30}\n",
    "{\"section\": \"1. training step, full width\", \"exit\": 0, \"seconds\": 40}\n",
    "{\"section\": \"2. smoke profile\", \"exit\": 0, \"seconds\": 20}\n",
);

fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{:?}: {}", cmd, stderr(&o));
    o
}

/// The summary step on real outputs of this build, made on the CPU: bench-step JSON for ours, the same
/// JSON standing in for PyTorch's with a known speed, a smoke record as the full-width cell, and the
/// `reproduce --dry-run` lines whose expected seconds the summary reads (of small profiles).
#[test]
fn summary_computes_ratios_and_the_paper_estimate_from_the_checks_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let exe = || {
        let mut c = Command::new(BIN);
        c.current_dir(repo());
        c
    };
    for (w, p) in [("0.25", "f32"), ("1", "f32"), ("0.25", "tf32"), ("1", "tf32")] {
        let ours = run_ok(exe().args(["bench-step", "--width", "0.0625", "--batch", "8", "--reps", "1", "--precision", p]));
        std::fs::write(out.join(format!("step-ours-{w}-{p}.json")), &ours.stdout).unwrap();
        std::fs::write(out.join(format!("step-ours-{w}-{p}.mem.json")), format!("{{\"width\": {w}, \"gpu_peak_mib\": 1234}}")).unwrap();
        let mut theirs: serde_json::Value = serde_json::from_slice(&ours.stdout).unwrap();
        theirs["images_per_s"] = serde_json::json!(theirs["images_per_s"].as_f64().unwrap() / 2.0);
        theirs["gpu_peak_bytes"] = serde_json::json!(2048u64 << 20);
        std::fs::write(out.join(format!("step-torch-{w}-{p}.json")), theirs.to_string()).unwrap();
    }
    // The smoke profile's seed-0 record, filed where the check keeps its full-width cell.
    let smoke = out.join("smoke");
    run_ok(exe().args(["reproduce", "table1", "--profile", "smoke", "--seeds", "0", "--out"]).arg(&smoke));
    let cell_runs = out.join("cell/table1/gpucheck/runs");
    std::fs::create_dir_all(&cell_runs).unwrap();
    let rec = smoke.join("table1/smoke/runs/cifar10__simsiam__ema__seed0.json");
    std::fs::copy(&rec, cell_runs.join("cell.json")).unwrap();
    let plan = |profile: &str, file: &str| {
        let o = run_ok(exe().args(["reproduce", "table1", "--profile", profile, "--seeds", "0", "--dry-run", "--out"]).arg(out.join("plan")));
        std::fs::write(out.join(file), &o.stderr).unwrap();
        let text = String::from_utf8_lossy(&o.stderr).into_owned();
        let secs = text.split(" s of training steps)").next().and_then(|s| s.rsplit('(').next()).and_then(|s| s.parse::<f64>().ok());
        secs.unwrap_or_else(|| panic!("no expected time in the dry run's output: {text}"))
    };
    // The `ci` profile's plan stands in for the paper profile's (same form): planning the paper profile
    // times full-width 96 px steps on this CPU, minutes of the test suite for no more coverage.
    let (cell_steps, paper_steps) = (plan("smoke", "gpucheck-plan.txt"), plan("ci", "paper-plan.txt"));
    assert!(!out.join("plan").exists(), "a dry run writes nothing");
    std::fs::write(out.join("sections.jsonl"), SECTIONS_PASSED).unwrap();

    let o = run_ok(Command::new("python3").arg(repo().join("ci/gpu_check_summary.py")).arg(out).arg("TEST GPU"));
    let text = String::from_utf8_lossy(&o.stdout);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("gpu-check.json")).unwrap()).unwrap();
    let steps = summary["steps"].as_array().unwrap();
    let precisions: Vec<&str> = steps.iter().map(|r| r["precision"].as_str().unwrap()).collect();
    assert_eq!(precisions, ["f32", "f32", "tf32", "tf32"]);
    assert!(text.contains("| width 1.0 | tf32 | "), "{text}");
    for row in steps {
        assert!((row["ratio"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{row}");
        assert_eq!(row["torch_gpu_mib"].as_f64(), Some(2048.0));
        assert_eq!(row["ours_gpu_mib"].as_f64(), Some(1234.0));
    }
    assert_eq!(summary["smoke_cuda_vs_cpu"], "pass");
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
    let cfg = &record["config"]["params"];
    let (epochs, batch) = (cfg["epochs"].as_f64().unwrap(), cfg["batch"].as_u64().unwrap());
    let images = match cfg["train_subset"].as_u64().unwrap() {
        0 => eigenssl::data::DatasetKind::Synthetic.train_images() as u64,
        n => n,
    };
    assert_eq!(cfg["dataset"], "synthetic");
    let ips = record["history"]["images_per_s"].as_array().unwrap().last().unwrap().as_f64().unwrap();
    let per_epoch = (2 * (images / batch) * batch) as f64 / ips;
    let expected = paper_steps * per_epoch / (cell_steps / epochs);
    let got = summary["paper_profile"]["expected_s"].as_f64().unwrap();
    assert!((got - expected).abs() <= 1e-9 * expected, "expected time {got}, computed here {expected}");
    assert!(text.contains("expected time of the whole paper profile on this GPU"), "{text}");
}

/// A section that failed (here: PyTorch's full-width step, the smoke comparison and the cell) leaves its
/// part of the summary marked as failed, and the summary still reports what the other sections measured.
#[test]
fn summary_reports_failed_sections_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let ours = run_ok(Command::new(BIN).current_dir(repo()).args(["bench-step", "--width", "0.0625", "--batch", "8", "--reps", "1"]));
    for w in ["0.25", "1"] {
        std::fs::write(out.join(format!("step-ours-{w}-f32.json")), &ours.stdout).unwrap();
        std::fs::write(out.join(format!("step-ours-{w}-f32.mem.json")), format!("{{\"width\": {w}, \"gpu_peak_mib\": 99}}")).unwrap();
    }
    std::fs::write(out.join("step-torch-0.25-f32.json"), &ours.stdout).unwrap();
    std::fs::write(
        out.join("sections.jsonl"),
        "{\"section\": \"1. training step, width/4\", \"exit\": 0, \"seconds\": 30}\n\
         {\"section\": \"1. training step, full width\", \"exit\": 124, \"seconds\": 240}\n\
         {\"section\": \"2. smoke profile\", \"exit\": 1, \"seconds\": 20}\n",
    )
    .unwrap();
    let o = run_ok(Command::new("python3").arg(repo().join("ci/gpu_check_summary.py")).arg(out).arg("TEST GPU"));
    let text = String::from_utf8_lossy(&o.stdout);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("gpu-check.json")).unwrap()).unwrap();
    let steps = summary["steps"].as_array().unwrap();
    assert!((steps[0]["ratio"].as_f64().unwrap() - 1.0).abs() < 1e-12, "{}", steps[0]);
    assert!(steps[1].get("ratio").is_none() && steps[1]["ours_ms"].as_f64().is_some(), "{}", steps[1]);
    assert!(text.contains("| width 1.0 | f32 | ") && text.contains("| failed | failed | failed | failed |"), "{text}");
    assert!(steps[2].get("ours_ms").is_none(), "no tf32 rows were measured: {}", steps[2]);
    assert!(summary["smoke_cuda_vs_cpu"].as_str().unwrap().starts_with("CHANGED or failed (exit 1"), "{summary}");
    assert_eq!(summary["cell"]["status"], "missing");
    assert!(summary.get("paper_profile").is_none(), "{summary}");
    assert!(text.contains("| 1. training step, full width | 124 | 240 |"), "{text}");
}

/// With its budget spent before a section starts, the check runs nothing of it, records every section as
/// skipped and still writes the summary; `--budget` is how the 15 minutes of a lent GPU machine are kept.
#[test]
fn a_spent_budget_skips_the_remaining_sections_and_still_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let (path, py) = gpu_machine(dir.path());
    let out = dir.path().join("out");
    let o = gpu_check(&path, &["--bin", BIN, "--out", out.to_str().unwrap(), "--python", py.to_str().unwrap(), "--budget", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sections = std::fs::read_to_string(out.join("sections.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = sections.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 8, "{sections}");
    assert!(lines.iter().all(|s| s["skipped"] == true && s["seconds"] == 0), "{sections}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("gpu-check.json")).unwrap()).unwrap();
    assert_eq!(summary["smoke_cuda_vs_cpu"], "skipped (the budget was spent)");
}

/// A section that fails makes the whole check exit 1, after the summary is written and naming it: here the
/// CPU build's `bench-step --device cuda` fails the first section, and the 20 s budget skips the rest.
#[test]
fn a_failed_section_makes_the_check_exit_1_after_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (path, py) = gpu_machine(dir.path());
    let out = dir.path().join("out");
    let o = gpu_check(&path, &["--bin", BIN, "--out", out.to_str().unwrap(), "--python", py.to_str().unwrap(), "--budget", "20"]);
    let log = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{log}{}", stderr(&o));
    assert!(log.contains("gpu-check: failed: 1. training step, width/4"), "{log}");
    assert!(out.join("gpu-check.json").exists(), "the summary is written before the exit");
}

/// The binary may come compressed with xz (how a stripped CUDA build fits what a lent GPU machine is sent):
/// the check unpacks it into a temporary file, runs it, and removes it when done.
#[test]
fn an_xz_compressed_binary_is_unpacked_run_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, py) = gpu_machine(dir.path());
    let packed = dir.path().join("eigenssl.xz");
    run_ok(Command::new("python3").args(["-c", "import lzma, shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), lzma.open(sys.argv[2], 'wb', preset=0))", BIN]).arg(&packed));
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path().join("out");
    let o = Command::new("bash")
        .arg(repo().join("ci/gpu-check.sh"))
        .args(["--bin", packed.to_str().unwrap(), "--out", out.to_str().unwrap(), "--python", py.to_str().unwrap(), "--budget", "0"])
        .env("PATH", &path)
        .env("TMPDIR", &tmp)
        .current_dir(repo())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{log}{}", stderr(&o));
    assert!(log.contains(&format!("binary {}/eigenssl-gpu-check.", tmp.display())) && log.contains(concat!("eigenssl ", env!("CARGO_PKG_VERSION"))), "{log}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the unpacked binary is removed");
    let o = gpu_check(&path, &["--bin", dir.path().join("missing.xz").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
