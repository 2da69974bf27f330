//! How candidate packets reach userspace for deep inspection: AF_XDP sockets in `tap` mode
//! (`afxdp`, read by `tap`'s task per socket), the kernel's sample ring in `inline` mode (`inline`).
//! Both hand each frame to the inspector as a [`Candidate`].

pub mod afxdp;
mod inline;
mod tap;

pub(crate) use inline::spawn_samples;
pub(crate) use tap::spawn_socket_reader;

/// A candidate packet on its way from a reader (AF_XDP socket or sample ring) to the inspector.
pub(crate) struct Candidate {
    pub(crate) path: &'static str,
    pub(crate) ifindex: u32,
    pub(crate) frame: Vec<u8>,
}

/// Candidates waiting for the inspector; beyond this a reader drops them (counted as
/// `capture_drops_total{ring="agent_queue"}`) rather than holding frames from the kernel.
pub(crate) const CANDIDATE_QUEUE: usize = 8192;
