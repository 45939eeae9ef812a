//! eigenssl: a reproducibility suite for "An eigenspace view reveals how predictor networks and
//! stop-grads provide implicit variance regularization" (Halvagal, Laborieux, Zenke).
//!
//! Layers, top to bottom: [`spec`] (experiment YAML → runs), [`harness`] (plan, execute, store,
//! aggregate, report), [`engine`] (dispatch) and the engines: [`theory`] (toy networks, Figs. 1–2).
//! [`plot`] draws figures from stored runs.

pub mod bench;
pub mod data;
pub mod device;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod harness;
pub mod interrupt;
pub mod linalg;
pub mod normal;
pub mod overlay;
pub mod plot;
pub mod present;
pub mod rng;
pub mod spec;
pub mod ssl;
pub mod stats;
pub mod theory;

pub use error::{Error, Result};
