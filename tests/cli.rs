//! The binary: exit codes and messages a user sees.

mod common;

use std::process::Command;

fn eigenssl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eigenssl"))
}

#[test]
fn reproduce_smoke_then_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = eigenssl()
        .args(["reproduce", "fig2", "--profile", "smoke", "--jobs", "2", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2d/simsiam"), "{stdout}");
    let t = eigenssl().args(["table", "fig2", "--profile", "smoke", "--out"]).arg(dir.path()).output().unwrap();
    assert!(t.status.success());
    assert_eq!(String::from_utf8_lossy(&t.stdout), stdout);
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let spec = std::fs::read_to_string("experiments/fig1.yaml").unwrap().replace("  sigma: 0.1\n", "  sigma: [0.1]\n");
    std::fs::write(specs.join("fig1.yaml"), spec).unwrap();
    let out = eigenssl().arg("--specs").arg(&specs).args(["reproduce", "fig1", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fig1.yaml") && err.contains("base.sigma") && err.contains("line"), "{err}");

    let out = eigenssl().args(["reproduce", "fig1", "--profile", "nope", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile `nope`"));

    let out = eigenssl().args(["reproduce", "fig9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown experiment `fig9`"));
}

#[test]
fn a_gpu_device_without_a_usable_gpu_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = eigenssl().args(["reproduce", "table1", "--profile", "smoke", "--device", "cuda", "--out"]).arg(dir.path()).output().unwrap();
    let (code, message) = common::cuda_refusal();
    assert_eq!(out.status.code(), Some(code));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(message), "{err}");
}

/// A copy of the specs with a `mixed` table1 profile: one CIFAR-10 cell and one STL-10 cell, tiny.
fn mixed_specs(dir: &std::path::Path) -> std::path::PathBuf {
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let mixed = "profiles:\n  kept:\n    description: \"test\"\n    seeds: [0]\n    cells: [cifar10/simsiam/no_ema]\n    set: { width: 0.0625, proj_hidden: 64, proj_out: 16, batch: 8, epochs: 2, warmup_epochs: 0, linear_epochs: 3, knn_k: 3 }\n  mixed:\n    description: \"test\"\n    seeds: [0]\n    cells: [cifar10/untrained, stl10/untrained]\n    set: { width: 0.0625, proj_hidden: 64, proj_out: 16, batch: 8, epochs: 1, warmup_epochs: 0, linear_epochs: 2 }\n";
    let spec = std::fs::read_to_string("experiments/table1.yaml").unwrap().replacen("profiles:\n", mixed, 1);
    std::fs::write(specs.join("table1.yaml"), spec).unwrap();
    specs
}

/// CIFAR-10's binary layout with 20 training and 4 test images.
fn tiny_cifar(dir: &std::path::Path) {
    let bin = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = |class: u8| [vec![class], (0..3072).map(|i| (i as u8).wrapping_mul(class + 1)).collect()].concat();
    for i in 1..=5u8 {
        std::fs::write(bin.join(format!("data_batch_{i}.bin")), (0..4).flat_map(|k| record((i + k) % 10)).collect::<Vec<u8>>()).unwrap();
    }
    std::fs::write(bin.join("test_batch.bin"), (0..4).flat_map(record).collect::<Vec<u8>>()).unwrap();
}

#[test]
fn a_sweep_with_no_data_says_so_once_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let specs = mixed_specs(dir.path());
    let out = eigenssl()
        .env("HF_HUB_OFFLINE", "1")
        .arg("--specs")
        .arg(&specs)
        .args(["reproduce", "table1", "--profile", "mixed", "--data-dir"])
        .arg(dir.path().join("empty"))
        .arg("--out")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.matches("no cifar10 data found").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("no stl10 data found").count(), 1, "{stderr}");
    assert!(stderr.contains("0 run(s) computed, 0 failed, 2 not run (no data)") && stderr.contains("none of the requested runs could run"), "{stderr}");
    // Issue 36, item 6: a command that computes nothing writes nothing (it used to leave not-run
    // records, a table and figures, which the report site then showed as results).
    assert!(!dir.path().join("results").exists(), "{stdout}");
    assert!(stderr.contains("tables and figures were left as they are"), "{stderr}");
}

#[test]
fn a_mixed_sweep_runs_what_has_data_exits_0_and_counts_not_run_apart() {
    let dir = tempfile::tempdir().unwrap();
    let specs = mixed_specs(dir.path());
    let data = dir.path().join("data");
    tiny_cifar(&data);
    let out = eigenssl()
        .env("HF_HUB_OFFLINE", "1")
        .arg("--specs")
        .arg(&specs)
        .args(["reproduce", "table1", "--profile", "mixed", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 run(s) computed, 0 failed, 1 not run (no data)"), "{stderr}");
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("results/table1/mixed/runs/cifar10__untrained__seed0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["status"], "ok");
    assert_eq!(rec["provenance"]["data"]["format"], "binary");
    assert!(rec["metrics"]["knn_top1"].is_number() && rec["metrics"]["linear_top1"].is_number(), "{rec}");
}

/// Issue 36, item 10: at 80 columns the terminal table becomes a list (no header broken every few
/// characters, no number split); in a pipe it is the wide table, each row on one line, nothing wrapped.
/// On a copy of the committed `ci` records (`table` rewrites the folder's table.md).
#[test]
fn the_terminal_table_reads_well_at_80_columns_and_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("table1/ci/runs");
    std::fs::create_dir_all(&runs).unwrap();
    for f in std::fs::read_dir("results/table1/ci/runs").unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, runs.join(f.file_name().unwrap())).unwrap();
    }
    let table = |columns: Option<&str>| {
        let mut cmd = eigenssl();
        cmd.args(["table", "table1", "--profile", "ci", "--out"]).arg(dir.path()).env_remove("COLUMNS");
        if let Some(c) = columns {
            cmd.env("COLUMNS", c);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let piped = table(None);
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("table1/ci/summary.json")).unwrap()).unwrap();
    // Each cell's readout top-1 as the table prints it (mean ± std, rounded by its spread).
    let means: Vec<String> = summary["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| serde_json::from_value::<eigenssl::harness::aggregate::Stat>(c["metrics"]["readout_top1"].clone()).ok())
        .map(|s| eigenssl::present::format::stat_by_spread(&s, 1, false))
        .collect();
    assert!(!means.is_empty());
    let narrow = table(Some("80"));
    let widest = narrow.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 80, "{widest} columns:\n{narrow}");
    for m in &means {
        assert!(narrow.contains(m.as_str()), "{m} whole in:\n{narrow}");
    }
    assert!(narrow.contains("cifar10/simsiam/ema · ") && narrow.contains("k-NN"), "{narrow}");
    let row = piped.lines().find(|l| l.contains("cifar10/simsiam/ema")).unwrap();
    assert!(means.iter().any(|m| row.contains(m.as_str())), "one line per row in a pipe: {row}\n{piped}");
    assert!(piped.contains("outcome") && piped.contains("k-NN"), "{piped}");
}

#[test]
fn kept_weights_reproduce_the_runs_knn_and_linear_metrics_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let specs = mixed_specs(dir.path());
    let data = dir.path().join("data");
    tiny_cifar(&data);
    let results = dir.path().join("results");
    let run = |args: &[&str]| {
        eigenssl().env("HF_HUB_OFFLINE", "1").arg("--specs").arg(&specs).args(args).arg("--data-dir").arg(&data).arg("--out").arg(&results).output().unwrap()
    };
    let out = run(&["reproduce", "table1", "--profile", "kept", "--keep-weights"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("table1/kept/runs/cifar10__simsiam__no_ema__seed0.json")).unwrap()).unwrap();
    let weights = results.join("table1/kept/weights/cifar10__simsiam__no_ema__seed0.safetensors");
    assert_eq!(rec["weights"]["file"], "cifar10__simsiam__no_ema__seed0.safetensors");
    assert!(weights.exists() && !results.join("table1/kept/checkpoints/cifar10__simsiam__no_ema__seed0.safetensors").exists());
    for protocol in ["knn", "linear"] {
        let e = run(&["eval", "table1/kept/cifar10/simsiam/no_ema/seed0", "--protocol", protocol]);
        let stdout = String::from_utf8_lossy(&e.stdout);
        assert!(e.status.success() && stdout.contains("reproduced exactly"), "{stdout}{}", String::from_utf8_lossy(&e.stderr));
    }
    // Weights that are not the record's are refused.
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let e = run(&["eval", "table1/kept/cifar10/simsiam/no_ema/seed0", "--protocol", "knn"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("differs from the record's"), "{}", String::from_utf8_lossy(&e.stderr));
}

#[test]
fn a_sweep_whose_runs_fail_exits_1_with_the_count() {
    // Every run asks for a batch larger than the 20 training images of the data here: each fails at its start.
    let dir = tempfile::tempdir().unwrap();
    tiny_cifar(&dir.path().join("data"));
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    let failing = "profiles:\n  failing:\n    description: \"every run fails\"\n    seeds: [0]\n    cells: [cifar10/simsiam/no_ema, cifar10/untrained]\n    set: { width: 0.0625, proj_hidden: 64, proj_out: 16, batch: 64, epochs: 1, warmup_epochs: 0, knn_k: 0, linear_epochs: 0 }\n";
    let spec = std::fs::read_to_string("experiments/table1.yaml").unwrap().replacen("profiles:\n", failing, 1);
    std::fs::write(specs.join("table1.yaml"), spec).unwrap();
    let out = eigenssl()
        .env("RUST_BACKTRACE", "1")
        .arg("--specs")
        .arg(&specs)
        .args(["reproduce", "table1", "--profile", "failing", "--jobs", "1", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("0 run(s) computed, 2 failed") && stderr.contains("2 run(s) failed"), "{stderr}");
    // The record keeps the error, not candle's backtrace.
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("results/table1/failing/runs/cifar10__untrained__seed0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["message"], "batch 64 is larger than the 20 training images", "{rec}");
}

#[test]
fn a_seed_named_twice_is_one_run_and_zero_jobs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = eigenssl()
        .args(["reproduce", "fig2", "--profile", "smoke", "--seeds", "0,0", "--jobs", "2", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let cells = std::fs::read_dir(dir.path().join("fig2/smoke/runs")).unwrap().count();
    assert!(stderr.contains(&format!("{cells} run(s) to compute")), "{stderr}");
    let zero = eigenssl().args(["reproduce", "fig2", "--profile", "smoke", "--jobs", "0", "--out"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&zero.stderr);
    assert_eq!(zero.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--jobs") && stderr.contains("at least 1"), "{stderr}");
}

#[test]
fn diff_of_an_unknown_experiment_and_compare_with_a_missing_baseline_are_errors() {
    let out = eigenssl().args(["diff", "HEAD", "-e", "no-such-experiment"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-experiment"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-baseline");
    let out = eigenssl().args(["compare", "--out", "results", "--baseline"]).arg(&missing).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-baseline: no such folder"), "{stderr}");
}

/// Issue 36, item 11: `table` shows a results folder it may read but not write, and writes nothing there.
/// As root, permissions do not stop writes: the folder is then bind-mounted read-only in a mount
/// namespace of the command's own (`unshare -m`).
#[test]
fn table_shows_a_read_only_results_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let ci = out.join("fig2/ci");
    std::fs::create_dir_all(ci.join("runs")).unwrap();
    for f in std::fs::read_dir("results/fig2/ci/runs").unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, ci.join("runs").join(f.file_name().unwrap())).unwrap();
    }
    let table = format!(
        "{} table fig2 --profile ci --out {}",
        env!("CARGO_BIN_EXE_eigenssl"),
        out.display()
    );
    let root = unsafe { libc::geteuid() } == 0;
    let script = if root {
        format!("mount --bind {d} {d} && mount -o remount,bind,ro {d} && exec {table}", d = out.display())
    } else {
        std::process::Command::new("chmod").args(["-R", "a-w"]).arg(&out).status().unwrap();
        format!("exec {table}")
    };
    let mut cmd = if root { std::process::Command::new("unshare") } else { std::process::Command::new("sh") };
    if root {
        cmd.args(["-m", "sh", "-c", &script]);
    } else {
        cmd.args(["-c", &script]);
    }
    let res = cmd.output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&res.stdout), String::from_utf8_lossy(&res.stderr));
    if !root {
        std::process::Command::new("chmod").args(["-R", "u+w"]).arg(&out).status().unwrap();
    }
    assert_eq!(res.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("is not writable") && stderr.contains("left as they are"), "{stderr}");
    assert!(stdout.contains("2d/isoloss"), "{stdout}");
    assert!(!ci.join("table.md").exists() && !ci.join("summary.json").exists(), "nothing written");
}

/// Issue 36, item 6 (and issue 34): `bench --theory-only` merges into this CPU model's file instead of
/// erasing the training measurements there; each CPU model has a folder of its own; an unreadable file
/// is set aside, not overwritten.
#[test]
fn a_partial_bench_keeps_what_it_did_not_measure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let bench = || {
        let res = eigenssl().args(["bench", "--theory-only", "--reps", "1", "--python", "/nonexistent", "--out"]).arg(&out).output().unwrap();
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    };
    bench();
    let model = eigenssl::bench::machine::Machine::this();
    let json = out.join(model.slug()).join("bench.json");
    let mut stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(stored["machine"]["model"], model.model.as_str());
    assert!(stored["training"].is_null());
    // A training section as a full `bench` stores it (the measurements of a committed bench).
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("results/bench/amd-epyc-avx2-fma/bench.json").unwrap()).unwrap();
    let committed = &committed["training"]["measured"];
    stored["training"] = serde_json::json!({ "commit": "earlier", "dirty": false, "started": "then", "measured": committed });
    let theory_started = stored["theory"]["started"].clone();
    std::fs::write(&json, serde_json::to_string(&stored).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    bench();
    let merged: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(merged["training"]["commit"], "earlier", "the training part is kept");
    assert_eq!(merged["training"]["measured"]["epoch"], committed["epoch"]);
    assert_ne!(merged["theory"]["started"], theory_started, "the theory part is measured anew");
    let md = std::fs::read_to_string(out.join(model.slug()).join("bench.md")).unwrap();
    assert!(md.contains("VGG11-BN + projector, width 1 ") && md.contains("Measured by the build of `earlier`"), "{md}");

    std::fs::write(&json, "{ not json").unwrap();
    bench();
    let aside: Vec<_> = std::fs::read_dir(out.join(model.slug())).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains("bench.json.")).collect();
    assert_eq!(aside.len(), 1, "the unreadable file is set aside");
}

/// Issue 36, item 10: a passing gate prints one line per experiment; the full report is in its file.
#[test]
fn a_passing_gate_prints_a_few_lines() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.md");
    let out = eigenssl().args(["compare", "fig2", "table1", "--profile", "ci", "--out", "results", "--baseline", "results", "--report"]).arg(&report).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.trim().lines().count() <= 2, "{stdout}");
    assert!(stdout.contains("table1 / ci: 0 changed, 0 regressed"), "{stdout}");
    let full = std::fs::read_to_string(&report).unwrap();
    assert!(full.lines().count() > 20 && full.contains("| cell | what | baseline |"), "{full}");
}

/// Issue 36, items 10 and 11: an OS error is printed once; `eval` on a theory run says it has no network;
/// `status` and `table` explain their arguments; the dry run says runs without data would be left out.
#[test]
fn small_messages_say_what_is_meant_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-gate.yaml");
    let out = eigenssl().args(["compare", "--gate"]).arg(&missing).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    let out = eigenssl().args(["eval", "fig2/ci/2d/isoloss/seed0", "--protocol", "knn"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("a theory run has no network to evaluate") && !err.contains("--keep-weights"), "{err}");

    for command in ["status", "table"] {
        let out = eigenssl().args([command, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Experiment name") && help.contains("Profile whose stored runs to read") && help.contains("Results folder"), "{help}");
    }

    let specs = mixed_specs(dir.path());
    let out = eigenssl().env("HF_HUB_OFFLINE", "1").arg("--specs").arg(&specs).args(["reproduce", "table1", "--profile", "mixed", "--dry-run", "--data-dir"]).arg(dir.path().join("empty")).arg("--out").arg(dir.path().join("results")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Its runs would be left out") && !err.contains("will be recorded"), "{err}");
    assert!(!dir.path().join("results").exists());
}

/// Issue 36, item 11: a figure's temp file left by a killed process is removed by the next regeneration.
#[test]
fn a_killed_process_leaves_no_temp_figure_behind() {
    let dir = tempfile::tempdir().unwrap();
    let ci = dir.path().join("fig2/ci");
    std::fs::create_dir_all(ci.join("runs")).unwrap();
    for f in std::fs::read_dir("results/fig2/ci/runs").unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, ci.join("runs").join(f.file_name().unwrap())).unwrap();
    }
    // A pid no process has (above the kernel's pid_max).
    let stale = ci.join(".tmp-figure-99999999.svg");
    std::fs::write(&stale, "<svg/>").unwrap();
    let out = eigenssl().args(["table", "fig2", "--profile", "ci", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stale.exists(), "the dead process's temp figure is gone");
    assert!(ci.join("fig2.svg").exists());
}
