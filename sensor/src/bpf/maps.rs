//! Filling the maps from configuration: the range tries and the quick-rejection filter in front of
//! them (what the filter holds: `filter`), the pool-port bitmap, the pool-domain table and its
//! filter, and the interface slots; and reading the tries back (`RangeLookup`). Every change is
//! ordered so that nothing wanted before and after it stops matching while it is written.

use std::{collections::HashSet, os::fd::AsFd as _};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, lpm_trie::Key},
};

use sensor_common::{IFINDEX_DIRECT, POOL_PORT_WORDS};

use super::{
    Kernel,
    filter::{Filter, set_bit},
    ranges::TrieEntries,
};
use crate::config::Config;

impl Kernel {
    /// Makes the tries hold exactly `entries`. New and changed prefixes go in before stale ones
    /// are removed, so an address covered before and after the change is never unmatched; the
    /// filter admits the union of old and new prefixes while the tries change, and only then
    /// narrows to the new ones.
    pub fn set_ranges(&mut self, entries: TrieEntries) -> Result<()> {
        let target = Filter::of(&entries);
        let widened = self.filter.union(&target);
        self.write_filter(widened)?;
        sync_trie(&mut self.ebpf, "RANGES_V4", &self.installed.v4, &entries.v4)?;
        sync_trie(&mut self.ebpf, "RANGES_V6", &self.installed.v6, &entries.v6)?;
        self.installed = entries;
        self.write_filter(target)
    }

    /// Writes the words that differ from what the kernel holds, then the flags.
    fn write_filter(&mut self, f: Filter) -> Result<()> {
        if f == self.filter {
            return Ok(());
        }
        write_changed(&mut self.ebpf, "FILTER", &mut self.filter.words, &f.words)?;
        let mut flags: Array<&mut MapData, u32> = Array::try_from(
            self.ebpf
                .map_mut("FILTER_FLAGS")
                .context("map FILTER_FLAGS")?,
        )?;
        flags.set(0, f.flags, 0)?;
        self.filter = f;
        Ok(())
    }

    /// Makes the pool-port bitmap hold exactly `ports`.
    pub fn set_pool_ports(&mut self, ports: &[u16]) -> Result<()> {
        let mut words = vec![0u64; POOL_PORT_WORDS];
        for &p in ports {
            set_bit(&mut words, p as usize);
        }
        write_changed(&mut self.ebpf, "POOL_PORTS", &mut self.pool_ports, &words)
    }

    /// Makes the pool-domain table hold exactly `domains` (new keys first, then stale ones out, so
    /// a domain in both the old and new lists never stops matching), then its filter: each word
    /// that changes written once with its final bits, so a wanted bit is never cleared, even for a
    /// moment.
    pub fn set_pool_domains(&mut self, domains: &[String]) -> Result<()> {
        let mut filter = vec![0u64; sensor_common::dns::FILTER_WORDS];
        let mut map: BpfHashMap<&mut MapData, u64, u8> = BpfHashMap::try_from(
            self.ebpf
                .map_mut("POOL_DOMAINS")
                .context("map POOL_DOMAINS")?,
        )?;
        let mut wanted = HashSet::new();
        for d in domains {
            let key = sensor_common::dns::name_key(d.as_bytes())
                .ok_or_else(|| anyhow!("pool domain {d:?} cannot be matched"))?;
            wanted.insert(key);
            set_bit(&mut filter, sensor_common::dns::filter_bit(key));
            map.insert(key, 1, 0)
                .with_context(|| format!("adding pool domain {d}"))?;
        }
        let stale: Vec<u64> = map
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !wanted.contains(k))
            .collect();
        for k in stale {
            map.remove(&k)?;
        }
        write_changed(
            &mut self.ebpf,
            "POOL_DOMAIN_FILTER",
            &mut self.domain_filter,
            &filter,
        )
    }

    /// Routes `ifindex` to counter slot `slot` (1-based; 0 clears it).
    pub fn set_iface_slot(&mut self, ifindex: u32, slot: u32) -> Result<()> {
        if ifindex < IFINDEX_DIRECT {
            let mut a: Array<&mut MapData, u32> = Array::try_from(
                self.ebpf
                    .map_mut("IFINDEX_SLOTS")
                    .context("IFINDEX_SLOTS")?,
            )?;
            a.set(ifindex, slot, 0)?;
        } else {
            let mut h: BpfHashMap<&mut MapData, u32, u32> = BpfHashMap::try_from(
                self.ebpf
                    .map_mut("IFINDEX_SLOTS_HIGH")
                    .context("IFINDEX_SLOTS_HIGH")?,
            )?;
            if slot == 0 {
                let _ = h.remove(&ifindex);
            } else {
                h.insert(ifindex, slot, 0)?;
            }
        }
        Ok(())
    }

    /// Loads the program and installs `cfg`'s ranges with range id = position in `cfg.ranges`
    /// (what a fresh agent does), for tests, benchmarks and replay.
    pub fn load_with_ranges(cfg: &Config) -> Result<Self> {
        let mut k = Self::load(cfg)?;
        k.configure(cfg)?;
        Ok(k)
    }

    /// Installs `cfg`'s ranges, pools, pool ports, pool domains and neighbours (peer index =
    /// position in `cfg.peers` + 1).
    pub fn configure(&mut self, cfg: &Config) -> Result<()> {
        let k = self;
        k.set_ranges(crate::bpf::ranges::for_config(
            cfg.ranges
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.cidrs.as_slice())),
            &cfg.pools.endpoints,
        ))?;
        k.set_pool_ports(&cfg.pools.ports)?;
        k.set_pool_domains(&cfg.pools.domains)?;
        let peers: Vec<(usize, &crate::config::Peer)> = cfg
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p))
            .collect();
        k.set_peers(&peers)?;
        Ok(())
    }

    /// A handle on the range tries of its own (duplicated map fds), for a task that attributes
    /// inspected packets while the agent keeps the program.
    pub fn range_lookup(&self) -> Result<RangeLookup> {
        let dup = |name: &str| -> Result<aya::maps::Map> {
            let Some(aya::maps::Map::LpmTrie(data)) = self.ebpf.map(name) else {
                bail!("map {name} is missing or not an LPM trie");
            };
            let fd = data
                .fd()
                .as_fd()
                .try_clone_to_owned()
                .with_context(|| format!("duplicating the fd of map {name}"))?;
            Ok(aya::maps::Map::LpmTrie(MapData::from_fd(fd)?))
        };
        Ok(RangeLookup {
            v4: LpmTrie::try_from(dup("RANGES_V4")?)?,
            v6: LpmTrie::try_from(dup("RANGES_V6")?)?,
        })
    }
}

/// The watched-range tries, read from userspace.
pub struct RangeLookup {
    v4: LpmTrie<MapData, [u8; 4], u64>,
    v6: LpmTrie<MapData, [u8; 16], u64>,
}

impl RangeLookup {
    /// The trie value for `addr` (0 outside every prefix).
    pub fn ranges_of(&self, addr: std::net::IpAddr) -> Result<u64> {
        let found = match addr {
            std::net::IpAddr::V4(a) => self.v4.get(&Key::new(32, a.octets()), 0),
            std::net::IpAddr::V6(a) => self.v6.get(&Key::new(128, a.octets()), 0),
        };
        match found {
            Ok(v) => Ok(v),
            Err(aya::maps::MapError::KeyNotFound) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

/// Writes the words of the array map `name` that differ between `held` (what the kernel holds)
/// and `new`, keeping `held` in step word by word: after an error it still says what the kernel
/// holds.
fn write_changed(ebpf: &mut Ebpf, name: &str, held: &mut [u64], new: &[u64]) -> Result<()> {
    let mut map: Array<&mut MapData, u64> =
        Array::try_from(ebpf.map_mut(name).with_context(|| format!("map {name}"))?)?;
    for (i, (new, old)) in new.iter().zip(held).enumerate() {
        if new != old {
            map.set(i as u32, *new, 0)
                .with_context(|| format!("writing word {i} of map {name}"))?;
            *old = *new;
        }
    }
    Ok(())
}

fn sync_trie<const N: usize>(
    ebpf: &mut Ebpf,
    name: &str,
    old: &[(u32, [u8; N], u64)],
    new: &[(u32, [u8; N], u64)],
) -> Result<()>
where
    [u8; N]: aya::Pod,
{
    let mut trie: LpmTrie<&mut MapData, [u8; N], u64> =
        LpmTrie::try_from(ebpf.map_mut(name).with_context(|| format!("map {name}"))?)?;
    let old_set: HashSet<(u32, [u8; N], u64)> = old.iter().copied().collect();
    for (i, &(len, addr, bits)) in new.iter().enumerate() {
        if old_set.contains(&(len, addr, bits)) {
            continue;
        }
        trie.insert(&Key::new(len, addr), bits, 0).map_err(|e| {
            anyhow!(
                "inserting prefix {} of {} into {name}: {e}",
                i + 1,
                new.len()
            )
        })?;
    }
    let new_keys: HashSet<(u32, [u8; N])> = new.iter().map(|&(l, a, _)| (l, a)).collect();
    for &(len, addr, _) in old {
        if !new_keys.contains(&(len, addr)) {
            trie.remove(&Key::new(len, addr))
                .with_context(|| format!("removing a stale prefix from {name}"))?;
        }
    }
    Ok(())
}
