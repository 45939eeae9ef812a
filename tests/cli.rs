//! The binary: exit codes and messages a user sees.

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
    assert!(stdout.contains("| `2d/simsiam`"), "{stdout}");
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
fn a_gpu_device_in_a_cpu_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = eigenssl().args(["reproduce", "table1", "--profile", "smoke", "--device", "cuda", "--out"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--device cuda: this build has no cuda support; build with `--features cuda`"), "{err}");
}
