// Build-time provenance for every run record: the candle-core version (from Cargo.lock), the commit the
// binary is built from, a hash of the uncommitted changes to what it is built from, rustc's version and
// the target triple. A hand-written script rather than vergen/built: the hash of the source diff (with
// `results/` left out) is ours to define, and it needs the same git calls that give the commit.

use std::process::Command;

/// What the binary is built from: a change anywhere else (README, results/) does not make it dirty.
/// `crates` holds the kernel crate the engine trains with.
const SOURCES: &[&str] = &["src", "crates", "Cargo.toml", "Cargo.lock", "build.rs", "experiments"];

fn main() {
    println!("cargo:rustc-env=EIGENSSL_CANDLE_VERSION={}", candle_version());
    for path in SOURCES {
        println!("cargo:rerun-if-changed={path}");
    }
    let (commit, diff) = match git(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            // Rebuild when HEAD moves (a commit, a checkout) or the index changes (staged edits).
            for name in ["HEAD", "index", "packed-refs", "refs/heads"] {
                if let Some(p) = git(&["rev-parse", "--git-path", name]) {
                    println!("cargo:rerun-if-changed={}", p.trim());
                }
            }
            (commit.trim().to_string(), source_diff_hash())
        }
        None => ("unknown".to_string(), String::new()),
    };
    println!("cargo:rustc-env=EIGENSSL_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=EIGENSSL_SOURCE_DIFF={diff}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc).arg("--version").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    println!("cargo:rustc-env=EIGENSSL_RUSTC={}", version.unwrap_or_else(|| "unknown".into()));
    println!("cargo:rustc-env=EIGENSSL_TARGET={}", std::env::var("TARGET").unwrap_or_default());
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// sha256 of the uncommitted changes to [`SOURCES`]: the diff against HEAD plus every untracked,
/// not-ignored file there. Empty when there are none.
fn source_diff_hash() -> String {
    use sha2::{Digest, Sha256};
    let mut diff_args = vec!["diff", "HEAD", "--binary", "--"];
    diff_args.extend(SOURCES);
    let diff = git(&diff_args).unwrap_or_default();
    let mut untracked_args = vec!["ls-files", "--others", "--exclude-standard", "--"];
    untracked_args.extend(SOURCES);
    let untracked = git(&untracked_args).unwrap_or_default();
    if diff.is_empty() && untracked.trim().is_empty() {
        return String::new();
    }
    let mut h = Sha256::new();
    h.update(diff.as_bytes());
    for file in untracked.lines() {
        h.update(file.as_bytes());
        h.update(std::fs::read(file).unwrap_or_default());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn candle_version() -> String {
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"candle-core\"" {
            if let Some(v) = lines.next().and_then(|l| l.trim().strip_prefix("version = ")) {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "unknown".to_string()
}
