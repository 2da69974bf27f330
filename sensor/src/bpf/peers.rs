//! The neighbours from userspace: their keys in `PEERS` (Ethernet addresses and VLAN IDs, each
//! mapped to its neighbour's peer index), the kinds of key present in `PEER_KINDS`, peer indexes
//! that stay with their names across reloads, and the per-neighbour counters read back.

use std::collections::{HashMap, HashSet};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap as BpfHashMap, MapData};

use sensor_common::{
    Counter, MAX_PEERS, PEER_KIND_MAC, PEER_KIND_VLAN, peer_index, peer_key_mac, peer_key_vlan,
};

use super::Kernel;
use crate::config::Peer;

/// Peer indexes stay with their names for the life of the process (like range ids), so that a
/// reload does not move a neighbour's counts to another name. Index 0 is `other`.
/// (peer index, neighbour) for each configured neighbour.
pub type Assigned<'a> = Vec<(usize, &'a Peer)>;

#[derive(Default)]
pub struct PeerIds {
    by_name: HashMap<String, usize>,
}

impl PeerIds {
    /// Indexes for `peers`: (index, neighbour) for each, and the indexes new to the process (to
    /// be re-based before use: a freed index keeps its old name's counts in the kernel).
    pub fn assign<'a>(&mut self, peers: &'a [Peer]) -> Result<(Assigned<'a>, Vec<usize>)> {
        self.by_name
            .retain(|n, _| peers.iter().any(|p| &p.name == n));
        let mut fresh = Vec::new();
        let mut out = Vec::new();
        for p in peers {
            let id = match self.by_name.get(&p.name) {
                Some(&id) => id,
                None => {
                    let used: HashSet<usize> = self.by_name.values().copied().collect();
                    let Some(id) = (1..=MAX_PEERS).find(|i| !used.contains(i)) else {
                        bail!(
                            "no free peer index for {}: at most {MAX_PEERS} neighbours",
                            p.name
                        );
                    };
                    self.by_name.insert(p.name.clone(), id);
                    fresh.push(id);
                    id
                }
            };
            out.push((id, p));
        }
        Ok((out, fresh))
    }
}

impl Kernel {
    /// Makes `PEERS` hold exactly the keys of `peers` (peer index, neighbour). Kinds that go away
    /// are cleared from `PEER_KINDS` before their keys are removed and kinds that come are set
    /// after their keys are in, so the program never looks up a kind half written; a key that
    /// moves to another neighbour is overwritten in place.
    pub fn set_peers(&mut self, peers: &[(usize, &Peer)]) -> Result<()> {
        let mut wanted: HashMap<u64, u32> = HashMap::new();
        let mut kinds = 0u32;
        for (id, p) in peers {
            for m in &p.macs {
                wanted.insert(peer_key_mac(*m), *id as u32);
                kinds |= PEER_KIND_MAC;
            }
            for v in &p.vlans {
                wanted.insert(peer_key_vlan(*v), *id as u32);
                kinds |= PEER_KIND_VLAN;
            }
        }
        let held = self.peer_kinds;
        self.write_peer_kinds(held & kinds)?;
        let mut map: BpfHashMap<&mut MapData, u64, u32> =
            BpfHashMap::try_from(self.ebpf.map_mut("PEERS").context("map PEERS")?)?;
        for (k, v) in &wanted {
            map.insert(k, v, 0)
                .with_context(|| format!("adding neighbour key {k:#x}"))?;
        }
        let stale: Vec<u64> = map
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !wanted.contains_key(k))
            .collect();
        for k in stale {
            map.remove(&k)?;
        }
        self.write_peer_kinds(kinds)
    }

    fn write_peer_kinds(&mut self, kinds: u32) -> Result<()> {
        let mut a: Array<&mut MapData, u32> =
            Array::try_from(self.ebpf.map_mut("PEER_KINDS").context("map PEER_KINDS")?)?;
        a.set(0, kinds, 0)?;
        self.peer_kinds = kinds;
        Ok(())
    }

    /// Sums the per-CPU cells at `indexes` of `PEER_TRAFFIC`.
    pub fn peer_traffic(
        &self,
        indexes: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<(u32, Counter)>> {
        self.counters("PEER_TRAFFIC", indexes)
    }

    /// One per-neighbour cell (range, direction, peer index), summed across CPUs.
    pub fn peer_cell(&self, range: usize, dir: usize, peer: usize) -> Result<Counter> {
        Ok(self.peer_traffic([peer_index(range, dir, peer)])?[0].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> Peer {
        Peer {
            name: name.to_string(),
            macs: Vec::new(),
            vlans: vec![1],
        }
    }

    fn ids(assigned: &[(usize, &Peer)]) -> Vec<(usize, String)> {
        assigned.iter().map(|(i, p)| (*i, p.name.clone())).collect()
    }

    #[test]
    fn peer_indexes_stay_with_their_names() {
        let mut ids_ = PeerIds::default();
        let first = [peer("tt"), peer("cu")];
        let (a, fresh) = ids_.assign(&first).unwrap();
        // Index 0 is `other`: the first neighbours get 1 and 2, both new.
        assert_eq!(ids(&a), [(1, "tt".into()), (2, "cu".into())]);
        assert_eq!(fresh, [1, 2]);
        // Reordered, with a third: the two keep theirs, the new one gets 3.
        let second = [peer("rt"), peer("cu"), peer("tt")];
        let (a, fresh) = ids_.assign(&second).unwrap();
        assert_eq!(
            ids(&a),
            [(3, "rt".into()), (2, "cu".into()), (1, "tt".into())]
        );
        assert_eq!(fresh, [3]);
        // tt leaves; a newcomer takes its freed index 1, to be re-based.
        let third = [peer("cu"), peer("gl")];
        let (a, fresh) = ids_.assign(&third).unwrap();
        assert_eq!(ids(&a), [(2, "cu".into()), (1, "gl".into())]);
        assert_eq!(fresh, [1]);
    }
}
