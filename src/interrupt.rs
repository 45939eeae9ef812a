//! Stopping on SIGINT/SIGTERM at a safe point. The first signal sets a flag that running deep-SSL runs
//! poll after every step (they write a checkpoint and return) and that keeps new runs from starting. A
//! second Ctrl-C (SIGINT) ends the process at once (exit code 1), which atomic writes make safe too; a
//! repeated SIGTERM does not, because schedulers send it to every process of a job (Slurm signals the
//! job script and eigenssl, and the script passes its own on).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Installs the handlers and returns the flag they set.
pub fn on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    // Registered first, so it sees the flag as it was before this signal: set means a second signal.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 1, stop.clone())?;
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}
