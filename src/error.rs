//! The library's error type: every variant names what was being read and what was expected.

use std::path::PathBuf;

/// Errors of the eigenssl library. The binary maps them to exit code 2 (bad input) or 1 (anything else).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec file could not be parsed or validated; `msg` carries the line and field where known.
    #[error("{path}: {msg}")]
    Spec { path: PathBuf, msg: String },

    /// The user asked for something that does not exist (experiment, profile, cell, seed list).
    #[error("{0}")]
    Usage(String),

    /// A stored run record or summary could not be read.
    #[error("{path}: {msg}")]
    Record { path: PathBuf, msg: String },

    /// An I/O failure, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A figure could not be drawn.
    #[error("plotting {path}: {msg}")]
    Plot { path: PathBuf, msg: String },

    /// Failure of an external command (git) used for provenance or diffs.
    #[error("{0}")]
    Git(String),
}

impl Error {
    /// True for errors caused by the user's input (specs, arguments, records), which exit with code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Spec { .. } | Error::Usage(_) | Error::Record { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
