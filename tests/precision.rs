//! `precision: f32 | tf32`: only `tf32` moves a spec hash, records name the precision that computed them
//! (f32 on the CPU whatever the spec asks), and a CUDA sweep whose cells ask for both is refused before
//! anything runs (candle's TF32 switch is one per process).

use std::path::Path;
use std::process::Command;

use eigenssl::device::DeviceKind;
use eigenssl::harness::{self, ExecOptions};
use eigenssl::precision::Precision;
use eigenssl::spec::{Experiment, RunConfig};

const BIN: &str = env!("CARGO_BIN_EXE_eigenssl");

fn table1_text() -> String {
    std::fs::read_to_string("experiments/table1.yaml").unwrap()
}

/// table1 with the base's `precision: f32` replaced by `value`, written into `dir` (a specs folder).
fn table1_with(dir: &Path, base: &str, first_cell: &str) -> Experiment {
    let text = table1_text();
    assert!(text.contains("  precision: f32\n") && text.contains("set: { loss: simsiam }"));
    let text = text.replace("  precision: f32\n", &format!("  precision: {base}\n")).replacen("set: { loss: simsiam }", first_cell, 1);
    let path = dir.join("table1.yaml");
    std::fs::write(&path, &text).unwrap();
    Experiment::parse(&text, &path).unwrap()
}

fn precision_of(run: &eigenssl::spec::Run) -> Precision {
    match &run.config {
        RunConfig::Ssl(c) => c.precision,
        RunConfig::Theory(_) => panic!("a theory run in table1"),
    }
}

#[test]
fn only_tf32_moves_a_spec_hash() {
    let dir = tempfile::tempdir().unwrap();
    let committed = Experiment::find("table1", Path::new("experiments")).unwrap().runs("smoke", Some(&[0])).unwrap();
    let f32_runs = table1_with(dir.path(), "f32", "set: { loss: simsiam }").runs("smoke", Some(&[0])).unwrap();
    let tf32_runs = table1_with(dir.path(), "tf32", "set: { loss: simsiam }").runs("smoke", Some(&[0])).unwrap();
    for ((c, f), t) in committed.iter().zip(&f32_runs).zip(&tf32_runs) {
        assert_eq!(c.hash, f.hash, "{}: f32 is the default, the hash it had before the field", c.cell);
        assert_ne!(f.hash, t.hash, "{}: tf32 computes other numbers on CUDA, so another hash", c.cell);
        assert_eq!((precision_of(f), precision_of(t)), (Precision::F32, Precision::Tf32));
    }
}

#[test]
fn a_record_names_the_precision_that_computed_it() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).unwrap();
    table1_with(&specs, "tf32", "set: { loss: simsiam }");
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .arg("--specs")
        .arg(&specs)
        .args(["run", "table1/smoke/cifar10/simsiam/ema/seed0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("table1/smoke/runs/cifar10__simsiam__ema__seed0.json")).unwrap()).unwrap();
    assert_eq!(rec["config"]["params"]["precision"], "tf32", "the spec asked for tf32");
    assert_eq!(rec["provenance"]["precision"], "f32", "the CPU computes in f32 whatever the spec asks");
}

#[test]
fn a_cuda_sweep_whose_cells_mix_precisions_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mixed = table1_with(dir.path(), "f32", "set: { loss: simsiam, precision: tf32 }");
    let out = dir.path().join("out");
    let mut opts = ExecOptions::default();
    opts.engine.device = DeviceKind::Cuda(Some(0));
    let err = harness::reproduce(&mixed, "smoke", Some(&[0]), &out, false, &opts, &|_| {}).unwrap_err().to_string();
    assert!(err.contains("ask for f32 and tf32 on cuda:0") && err.contains("one per process"), "{err}");
    assert!(!out.exists(), "nothing is written");
    // On the CPU both compute in f32: the same sweep is planned (a dry run here, to stay quick).
    opts.engine.device = DeviceKind::Cpu;
    harness::plan_only(&mixed, "smoke", Some(&[0]), &out, false, &opts, &|_| {}).unwrap();
}
