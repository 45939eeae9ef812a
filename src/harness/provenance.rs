//! Where results come from: the git commit of the working tree and the versions of the code.

use std::path::Path;

use crate::git::git;

/// Version of candle-core this binary was built with (read from Cargo.lock by build.rs).
pub const CANDLE_VERSION: &str = env!("EIGENSSL_CANDLE_VERSION");

/// (commit, dirty) of the git repository containing `dir`, or ("unknown", false) outside git.
pub fn git_state(dir: &Path) -> (String, bool) {
    let run = |args: &[&str]| git(dir, args).ok().map(|s| s.trim().to_string());
    match run(&["rev-parse", "HEAD"]) {
        Some(commit) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            (commit, dirty)
        }
        None => ("unknown".to_string(), false),
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
