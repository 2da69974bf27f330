//! mining-sensor's agent: configuration, the kernel program from userspace, metrics, and the
//! commands built on them. One folder per concern:
//! - `activity`: how much work shares stand for (difficulty in hashes per share);
//! - `config`: the TOML configuration, its types and validation;
//! - `bpf`: the XDP object from userspace: loading, maps, counters, test runs, the range tries;
//! - `metrics`: metric names, the registry, draining the kernel's counters, the HTTP(S) endpoint;
//! - `shape`: the `encrypted_stratum` verdict on TLS flows from the records the kernel keeps;
//! - `inspect`: deep inspection of candidate packets (frames, Stratum JSON, agents, coins);
//! - `capture`: how candidates reach userspace (AF_XDP sockets);
//! - `mapping`: memory mappings the agent owns (the AF_XDP UMEM, a BPF map's values);
//! - `events`: flow and login events and their sinks;
//! - `run`: the live agent (interfaces, reload, rings, signals);
//! - `replay`: capture files through the same program, and the HTML report.

pub mod activity;
pub mod bpf;
pub mod capture;
pub mod config;
pub mod events;
pub mod inspect;
pub mod mapping;
pub mod metrics;
pub mod replay;
pub mod run;
pub mod shape;
