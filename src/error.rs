//! The library's error type: every variant names what was being read and what was expected.

use std::path::PathBuf;

/// Errors of the eigenssl library, split by meaning so that callers match variants, never messages. The
/// binary maps them to exit codes through [`Error::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec file could not be parsed or validated; `msg` carries the line and field where known.
    #[error("{path}: {msg}")]
    Spec { path: PathBuf, msg: String },

    /// The user asked for something that does not exist (experiment, profile, cell, seed list, device).
    #[error("{0}")]
    Usage(String),

    /// A dataset is not on this machine; the message says what was looked for, where, and how to get it.
    #[error("{0}")]
    DataMissing(String),

    /// This machine cannot do what was asked (no GPU or driver, no Slurm, an unwritable results folder).
    #[error("{0}")]
    Environment(String),

    /// A stored run record or summary could not be read.
    #[error("{path}: {msg}")]
    Record { path: PathBuf, msg: String },

    /// A stored record was written by a newer eigenssl than this one: refused, never set aside.
    #[error("{path}: made by a newer eigenssl (record schema {schema}; this build reads up to {supported}); use that version, or another --out")]
    NewerRecord { path: PathBuf, schema: u32, supported: u32 },

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
    /// True for errors caused by the user's input (specs, arguments, records).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Spec { .. } | Error::Usage(_) | Error::Record { .. } | Error::NewerRecord { .. })
    }

    /// The process exit code for this error: 2 for bad input, 3 for missing data, 1 for anything else
    /// (the environment, I/O, git, plotting).
    pub fn exit_code(&self) -> u8 {
        match self {
            e if e.is_bad_input() => 2,
            Error::DataMissing(_) => 3,
            _ => 1,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
