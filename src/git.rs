//! The one way eigenssl calls git (provenance of runs, results read from commits).

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// Stdout of `git <args>` run in `repo`; an error with git's stderr when it fails or cannot start.
pub fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .map_err(|e| Error::Git(format!("cannot run git in {}: {e}", repo.display())))?;
    if !out.status.success() {
        return Err(Error::Git(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
