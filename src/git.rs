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

/// Stdout of `git <args>` run in `repo` with `input` on its stdin (`cat-file --batch`, `hash-object
/// --stdin-paths`): one process for many objects.
pub fn git_with_input(repo: &Path, args: &[&str], input: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Git(format!("cannot run git in {}: {e}", repo.display())))?;
    // Written from a thread: git answers while it reads, and a full stdout pipe would block both.
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| Error::Git(format!("git {}: {e}", args.join(" "))))?;
    let written = writer.join().map_err(|_| Error::Git(format!("git {}: the writer thread panicked", args.join(" "))))?;
    if !out.status.success() {
        return Err(Error::Git(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    written.map_err(|e| Error::Git(format!("git {}: writing its input: {e}", args.join(" "))))?;
    Ok(out.stdout)
}
