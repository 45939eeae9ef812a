//! The regression gate (`compare`) and `diff`: they fail on real changes and pass on reruns.

use std::path::{Path, PathBuf};
use std::process::Command;

use eigenssl::present::compare::{compare, GateConfig, Verdict};
use eigenssl::present::diff::{diff, DiffOptions, Side};
use eigenssl::harness::{self, ExecOptions};
use eigenssl::spec::Experiment;

fn gate() -> GateConfig {
    GateConfig::load(Path::new("ci/gate.yaml")).unwrap()
}

fn exp(name: &str) -> Experiment {
    Experiment::find(name, Path::new("experiments")).unwrap()
}

/// A copy of the committed `ci` runs of `name` under a fresh results root.
fn copy_baseline(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = PathBuf::from("results").join(name).join("ci/runs");
    let to = dir.path().join(name).join("ci/runs");
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit(root: &Path, name: &str, file: &str, f: impl Fn(&mut serde_json::Value)) {
    let path = root.join(name).join("ci/runs").join(file);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn the_gate_fails_on_an_injected_regression_and_passes_on_the_true_baseline() {
    let e = exp("fig1");
    let copy = copy_baseline("fig1");
    let clean = compare(&e, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
    assert!(!clean.failed(), "{}", clean.markdown());

    // SimSiam's outcome flipped to collapsed in one seed.
    edit(copy.path(), "fig1", "eigen__simsiam__seed0.json", |v| {
        v["status"] = "collapsed".into();
        v["outcome"] = "collapsed".into();
    });
    let bad = compare(&e, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
    assert!(bad.failed());
    let failing: Vec<_> = bad.rows.iter().filter(|r| r.verdict.fails()).collect();
    assert!(failing.iter().all(|r| r.cell == "eigen/simsiam"), "{}", bad.markdown());
    assert!(failing.iter().any(|r| r.what == "outcome"));
    assert!(bad.markdown().contains("REGRESSED"));
}

#[test]
fn a_metric_moved_beyond_noise_in_its_worse_direction_regresses() {
    let e = exp("fig1");
    let copy = copy_baseline("fig1");
    // The theory agreement of 2-D IsoLoss gets 5 points worse in every seed.
    for seed in 0..4 {
        edit(copy.path(), "fig1", &format!("2d__isoloss__seed{seed}.json"), |v| {
            let m = v["metrics"]["theory_max_rel_err"].as_f64().unwrap();
            v["metrics"]["theory_max_rel_err"] = (m + 0.05).into();
        });
    }
    let c = compare(&e, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
    let row = c.rows.iter().find(|r| r.cell == "2d/isoloss" && r.what == "theory_max_rel_err").unwrap();
    assert_eq!(row.verdict, Verdict::Regressed, "{}", c.markdown());
    // A move in the better direction: in the same environment the records must still be identical (the
    // run changed); from another machine it is an improvement, which passes.
    for other_machine in [false, true] {
        let copy = copy_baseline("fig1");
        for seed in 0..4 {
            edit(copy.path(), "fig1", &format!("2d__isoloss__seed{seed}.json"), |v| {
                let m = v["metrics"]["modes_converged"].as_f64().unwrap();
                v["metrics"]["modes_converged"] = (m + 1.0).into();
                if other_machine {
                    v["provenance"]["simd"] = "another-isa".into();
                }
            });
        }
        let c = compare(&e, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
        let row = c.rows.iter().find(|r| r.cell == "2d/isoloss" && r.what == "modes_converged").unwrap();
        assert_eq!(row.verdict, Verdict::Improved);
        assert_eq!(c.failed(), !other_machine, "{}", c.markdown());
    }
}

#[test]
fn a_fresh_ci_run_with_another_job_count_passes_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fig1", "fig2", "table1"] {
        let e = exp(name);
        let opts = ExecOptions { jobs: 1, ..Default::default() };
        harness::reproduce(&e, "ci", None, dir.path(), false, &opts, &|_| {}).unwrap();
        let c = compare(&e, "ci", dir.path(), Path::new("results"), &gate()).unwrap();
        assert!(!c.failed(), "{}", c.markdown());
    }
}

#[test]
fn a_changed_spec_needs_a_rebaseline() {
    let text = std::fs::read_to_string("experiments/fig1.yaml").unwrap().replace("  sigma: 0.1\n", "  sigma: 0.2\n");
    let changed = Experiment::parse(&text, Path::new("experiments/fig1.yaml")).unwrap();
    let copy = copy_baseline("fig1");
    let c = compare(&changed, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
    assert!(c.failed());
    assert!(c.rows.iter().all(|r| r.verdict == Verdict::RebaselineNeeded), "{}", c.markdown());
    assert!(c.markdown().contains("re-baseline needed"));
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(ok.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn diff_reads_two_commits_from_git_objects() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q"]);
    let summary = std::fs::read_to_string("results/fig1/ci/summary.json").unwrap();
    let dest = r.join("results/fig1/ci");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("summary.json"), &summary).unwrap();
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "a"]);
    // Commit b: IsoLoss's 2-D convergence spread 1000 steps larger in every seed; fig2 appears.
    let mut v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    for c in v["cells"].as_array_mut().unwrap() {
        if c["cell"] == "2d/isoloss" {
            let s = &mut c["metrics"]["mode_step_spread"];
            let vals: Vec<f64> = s["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() + 1000.0).collect();
            s["mean"] = (s["mean"].as_f64().unwrap() + 1000.0).into();
            s["values"] = vals.into();
        }
    }
    std::fs::write(dest.join("summary.json"), serde_json::to_string(&v).unwrap()).unwrap();
    let fig2 = r.join("results/fig2/ci");
    std::fs::create_dir_all(&fig2).unwrap();
    std::fs::copy("results/fig2/ci/summary.json", fig2.join("summary.json")).unwrap();
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "b"]);
    // Working tree changes after b are not in b.
    std::fs::remove_file(fig2.join("summary.json")).unwrap();

    let opts = |experiments: &[&str], all| DiffOptions {
        experiments: experiments.iter().map(|e| e.to_string()).collect(),
        all,
        specs: PathBuf::from("experiments"),
    };
    let out = diff(r, "results", &Side::Rev("HEAD~1".into()), &Side::Rev("HEAD".into()), &opts(&[], false)).unwrap();
    // Labelled as the spec labels the metric, and only what moved.
    let line = out.lines().find(|l| l.contains("`2d/isoloss` |") && l.contains("(`mode_step_spread`)")).unwrap();
    assert!(line.contains("+1000.0000") && line.contains("| 0.000 |"), "{line}");
    assert!(out.contains("only in `HEAD`"), "{out}");
    assert!(!out.contains("`2d/simsiam` |"), "unchanged cells are not listed by default: {out}");
    assert!(out.contains("without any change are not listed"), "{out}");
    let all = diff(r, "results", &Side::Rev("HEAD~1".into()), &Side::Rev("HEAD".into()), &opts(&[], true)).unwrap();
    let same = all.lines().find(|l| l.contains("`2d/simsiam` |") && l.contains("(`mode_step_spread`)")).unwrap();
    assert!(same.contains("+0.0000") && same.contains("| 1.000 |"), "{same}");

    let wt = diff(r, "results", &Side::Rev("HEAD".into()), &Side::WorkTree, &opts(&["fig2"], false)).unwrap();
    assert!(wt.contains("working tree has no results for experiment `fig2`"), "{wt}");
    let err = diff(r, "results", &Side::Rev("nope".into()), &Side::WorkTree, &opts(&[], false)).unwrap_err().to_string();
    assert!(err.contains("`nope` is not a commit"), "{err}");
}

/// The committed table1 `ci` baseline with one cell's readout top-1 lowered by 5 points in every seed;
/// `other_machine` also marks the copy as computed with another SIMD level (no exact comparison then).
fn table1_with_drop(other_machine: bool) -> tempfile::TempDir {
    let copy = copy_baseline("table1");
    for seed in 0..4 {
        edit(copy.path(), "table1", &format!("cifar10__simsiam__ema__seed{seed}.json"), |v| {
            let m = v["metrics"]["readout_top1"].as_f64().unwrap();
            v["metrics"]["readout_top1"] = (m - 5.0).into();
            if other_machine {
                v["provenance"]["simd"] = "another-isa".into();
            }
        });
    }
    copy
}

#[test]
fn a_five_point_drop_of_one_table1_cell_fails_the_gate_seed_by_seed_and_across_machines() {
    let e = exp("table1");
    let clean = compare(&e, "ci", copy_baseline("table1").path(), Path::new("results"), &gate()).unwrap();
    assert!(!clean.failed(), "{}", clean.markdown());
    assert!(clean.rows.iter().filter(|r| r.what == "readout_top1").all(|r| r.detectable == Some(0.0)), "same environment: exact");

    // Same environment: the seeds' records must be identical, and the field is named.
    let copy = table1_with_drop(false);
    let same = compare(&e, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
    let changed: Vec<_> = same.rows.iter().filter(|r| r.verdict == Verdict::Changed).collect();
    assert_eq!(changed.len(), 4, "{}", same.markdown());
    assert!(changed.iter().all(|r| r.cell == "cifar10/simsiam/ema" && r.what.ends_with("metrics.readout_top1")));

    // Another machine: the paired test over seeds sees the uniform drop, and it exceeds the minimum effect.
    let copy = table1_with_drop(true);
    let across = compare(&e, "ci", copy.path(), Path::new("results"), &gate()).unwrap();
    let row = across.rows.iter().find(|r| r.cell == "cifar10/simsiam/ema" && r.what == "readout_top1").unwrap();
    assert_eq!(row.verdict, Verdict::Regressed, "{}", across.markdown());
    assert_eq!(row.p, Some(0.0));
    assert!(across.rows.iter().all(|r| r.verdict != Verdict::Changed), "no exact comparison across machines");
}

#[test]
fn verify_recomputes_stored_runs_and_names_the_field_that_changed() {
    use eigenssl::harness::verify::{verify, Match, Verdict as V};
    let e = exp("fig1");
    let copy = copy_baseline("fig1");
    edit(copy.path(), "fig1", "eigen__simsiam__seed1.json", |v| {
        let m = v["metrics"]["final_eig_max"].as_f64().unwrap();
        v["metrics"]["final_eig_max"] = (m * 1.01).into();
    });
    let ctx = eigenssl::engine::EngineContext::default();
    let results = verify(&e, "ci", copy.path(), None, 1e-4, &ctx).unwrap();
    assert_eq!(results.len(), 32);
    for (run, verdict) in &results {
        if run.file_name() == "eigen__simsiam__seed1.json" {
            assert!(matches!(verdict, V::Compared(Match::Changed { field, .. }) if field == "metrics.final_eig_max"), "{verdict:?}");
        } else {
            assert_eq!(verdict, &V::Compared(Match::Identical), "{}", run.id());
        }
    }
    // A sample is deterministic and a subset.
    let a = verify(&e, "ci", copy.path(), Some(5), 1e-4, &ctx).unwrap();
    let b = verify(&e, "ci", copy.path(), Some(5), 1e-4, &ctx).unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a.iter().map(|(r, _)| r.id()).collect::<Vec<_>>(), b.iter().map(|(r, _)| r.id()).collect::<Vec<_>>());
}

#[test]
fn no_committed_record_is_dirty() {
    let mut checked = 0;
    for exp_dir in std::fs::read_dir("results").unwrap() {
        for profile in std::fs::read_dir(exp_dir.unwrap().path()).unwrap() {
            let runs = profile.unwrap().path().join("runs");
            let Ok(files) = std::fs::read_dir(&runs) else { continue };
            for f in files {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "json") {
                    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                    assert_eq!(v["provenance"]["git_dirty"], false, "{} was computed by a binary built from uncommitted sources", p.display());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "found only {checked} records");
}

/// Issue 36, item 9: `diff` compares every run record, not only the summaries — a metric edited in a
/// record (its summary untouched) and a truncated record are both named, and a rerun that changes only
/// provenance is counted, not listed.
#[test]
fn diff_names_records_changed_without_their_summary() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q"]);
    let src = std::path::Path::new("results/table1/ci");
    let dest = r.join("results/table1/ci");
    std::fs::create_dir_all(dest.join("runs")).unwrap();
    std::fs::copy(src.join("summary.json"), dest.join("summary.json")).unwrap();
    let names = ["cifar10__simsiam__ema__seed0.json", "cifar10__simsiam__ema__seed1.json", "cifar10__isoloss__ema__seed0.json"];
    for n in names {
        std::fs::copy(src.join("runs").join(n), dest.join("runs").join(n)).unwrap();
    }
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "a"]);
    let runs = dest.join("runs");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs.join(names[0])).unwrap()).unwrap();
    v["metrics"]["readout_top1"] = 99999.0.into();
    std::fs::write(runs.join(names[0]), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let text = std::fs::read_to_string(runs.join(names[1])).unwrap();
    std::fs::write(runs.join(names[1]), &text[..text.len() / 2]).unwrap();
    let mut w: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs.join(names[2])).unwrap()).unwrap();
    w["provenance"]["wall_seconds"] = 1.0.into();
    std::fs::write(runs.join(names[2]), serde_json::to_string_pretty(&w).unwrap()).unwrap();

    let opts = DiffOptions { experiments: Vec::new(), all: false, specs: PathBuf::from("experiments") };
    let out = diff(r, "results", &Side::Rev("HEAD".into()), &Side::WorkTree, &opts).unwrap();
    assert!(!out.contains("No changes in: table1 / ci"), "{out}");
    let edited = out.lines().find(|l| l.contains("`cifar10__simsiam__ema__seed0`") && l.contains("readout_top1")).unwrap_or_else(|| panic!("{out}"));
    assert!(edited.contains("99999"), "{edited}");
    let truncated = out.lines().find(|l| l.contains("`cifar10__simsiam__ema__seed1`")).unwrap_or_else(|| panic!("{out}"));
    assert!(truncated.contains("unreadable"), "{truncated}");
    assert!(!out.contains("`cifar10__isoloss__ema__seed0`"), "{out}");
    assert!(out.contains("1 run record(s) differ in provenance only"), "{out}");
    // Between two commits as well.
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "b"]);
    let revs = diff(r, "results", &Side::Rev("HEAD~1".into()), &Side::Rev("HEAD".into()), &opts).unwrap();
    assert!(revs.contains("99999") && revs.contains("unreadable"), "{revs}");
}
