//! eigenssl: a reproducibility suite for "An eigenspace view reveals how predictor networks and
//! stop-grads provide implicit variance regularization" (Halvagal, Laborieux, Zenke).
//!
//! Layers, each using only those below it (checked by `ci/layers.py`; the guide's docs/src/architecture.md draws
//! them): foundations ([`error`], [`rng`], [`normal`], [`stats`], [`fsutil`], [`git`], [`linalg`],
//! [`overlay`], [`device`], [`precision`], [`interrupt`]) → [`data`] → the engines [`theory`] (toy networks, Figs. 1–2)
//! and [`ssl`] (deep SSL, Table 1) → [`engine`] (dispatch, run configs, typed statuses) → [`spec`]
//! (experiment YAML → runs) → [`harness`] (plan, execute, store, aggregate) → presentation
//! ([`present`], [`plot`], [`bench`]) → the `eigenssl` binary.

pub mod bench;
pub mod data;
pub mod device;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod git;
pub mod harness;
pub mod interrupt;
pub mod linalg;
pub mod normal;
pub mod overlay;
pub mod plot;
pub mod precision;
pub mod present;
pub mod rng;
pub mod spec;
pub mod ssl;
pub mod stats;
pub mod theory;

pub use error::{Error, Result};
