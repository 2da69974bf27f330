//! mining-sensor's agent: configuration, the kernel program from userspace, metrics, and the
//! commands built on them.

pub mod afxdp;
pub mod agent;
pub mod config;
pub mod deep;
pub mod events;
pub mod exporter;
pub mod frame;
pub mod inspect;
pub mod kernel;
pub mod metrics;
pub mod packet;
pub mod ranges;
pub mod replay;
pub mod report;
pub mod web;
