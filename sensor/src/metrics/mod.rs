//! Every metric the sensor exports, in one place, and the drain that moves the kernel's per-CPU
//! counters into them.
//!
//! - `names`: every exported metric name, once;
//! - `registry`: the metrics with their help texts and labels ([`Metrics`]), and their text
//!   exposition;
//! - `drain`: kernel counters into those metrics ([`Drainer`], [`Labels`]);
//! - `http`: the `/metrics` endpoint; `web`: its TLS and basic-authentication configuration.

mod drain;
pub mod http;
pub mod names;
mod registry;
pub mod web;

pub use drain::{Drainer, Labels};
pub use registry::Metrics;
