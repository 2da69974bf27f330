//! The capabilities the agent keeps once it has loaded and attached.

use anyhow::Result;

/// After loading and attaching, the agent needs only CAP_BPF (map reads and updates, links) and
/// CAP_NET_ADMIN (attaching again to re-created interfaces), plus in `tap` mode CAP_NET_RAW
/// (AF_XDP sockets for a re-created interface) and CAP_IPC_LOCK (their UMEM, which the kernel
/// otherwise charges to RLIMIT_MEMLOCK, per user: where the agent may not raise that limit, as in
/// a container without CAP_SYS_RESOURCE, a UMEM over it, 8 MiB by default, failed every
/// re-attach); every other capability goes, from the bounding set too where we may change it.
pub(super) fn drop_capabilities(tap: bool) -> Result<()> {
    use caps::{CapSet, Capability};
    let mut keep: caps::CapsHashSet = [Capability::CAP_BPF, Capability::CAP_NET_ADMIN]
        .into_iter()
        .collect();
    if tap {
        keep.insert(Capability::CAP_NET_RAW);
        keep.insert(Capability::CAP_IPC_LOCK);
    }
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::read(None, CapSet::Bounding)? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    let effective: caps::CapsHashSet = caps::read(None, CapSet::Permitted)?
        .intersection(&keep)
        .copied()
        .collect();
    caps::set(None, CapSet::Effective, &effective)?;
    caps::set(None, CapSet::Permitted, &effective)?;
    Ok(())
}
