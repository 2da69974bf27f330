//! Reading the program's per-CPU counters (summed across CPUs) and its flow table.

use anyhow::{Context as _, Result};
use aya::maps::{MapData, PerCpuArray};

use sensor_common::{Counter, FlowKey, FlowState, ParseEvent, Stat};

use super::Kernel;

impl Kernel {
    fn per_cpu<T: aya::Pod>(&self, name: &str) -> Result<PerCpuArray<&MapData, T>> {
        Ok(PerCpuArray::try_from(
            self.ebpf.map(name).with_context(|| format!("map {name}"))?,
        )?)
    }

    /// Sums the per-CPU cells at `indexes` of a `Counter` array.
    pub fn traffic(&self, indexes: impl IntoIterator<Item = u32>) -> Result<Vec<(u32, Counter)>> {
        self.counters("TRAFFIC", indexes)
    }

    /// Sums the per-CPU cells at `indexes` of the `Counter` array `name`.
    pub(super) fn counters(
        &self,
        name: &str,
        indexes: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<(u32, Counter)>> {
        let map = self.per_cpu::<Counter>(name)?;
        indexes
            .into_iter()
            .map(|i| {
                let values = map.get(&i, 0)?;
                let sum = values.iter().fold(Counter::default(), |a, c| Counter {
                    packets: a.packets + c.packets,
                    bytes: a.bytes + c.bytes,
                });
                Ok((i, sum))
            })
            .collect()
    }

    /// Sums the per-CPU cells at `indexes` of a `u64` array (`STRATUM_PACKETS`, `STRATUM_FLOWS`,
    /// `PARSE`).
    pub fn sums(
        &self,
        map: &str,
        indexes: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<(u32, u64)>> {
        let map = self.per_cpu::<u64>(map)?;
        indexes
            .into_iter()
            .map(|i| Ok((i, map.get(&i, 0)?.iter().sum())))
            .collect()
    }

    /// One traffic cell, summed across CPUs.
    pub fn traffic_cell(&self, slot: usize, range: usize, dir: usize) -> Result<Counter> {
        Ok(self.traffic([sensor_common::traffic_index(slot, range, dir)])?[0].1)
    }

    /// One suspect-flow cell, summed across CPUs.
    pub fn suspect_cell(&self, range: usize, dir: usize, reason: usize) -> Result<u64> {
        Ok(self.sums(
            "SUSPECT_FLOWS",
            [sensor_common::suspect_index(range, dir, reason)],
        )?[0]
            .1)
    }

    /// One Stratum cell (`flows`: the flow counter, else the packet counter), summed across CPUs.
    pub fn stratum_cell(
        &self,
        flows: bool,
        range: usize,
        dir: usize,
        dialect: usize,
    ) -> Result<u64> {
        let map = if flows {
            "STRATUM_FLOWS"
        } else {
            "STRATUM_PACKETS"
        };
        Ok(self.sums(map, [sensor_common::stratum_index(range, dir, dialect)])?[0].1)
    }

    /// One `STATS` cell, summed across CPUs.
    pub fn stat(&self, s: Stat) -> Result<u64> {
        Ok(self.sums("STATS", [s as u32])?[0].1)
    }

    pub fn parse_event(&self, e: ParseEvent) -> Result<u64> {
        Ok(self.sums("PARSE", [e as u32])?[0].1)
    }

    pub fn parse_events(&self) -> Result<Vec<(u32, u64)>> {
        self.sums("PARSE", 0..ParseEvent::COUNT as u32)
    }

    /// Empties the flow table, and the `RECENT` slots of the flows it held, as if those flows had
    /// never been (benchmarks: a login measured as the first packet of its flow). A new flow's
    /// slot left marked by its previous run made each run take the path of a new flow whose slot
    /// another Stratum flow marked lately (its lookup before the scan), which live is rare: 65,536
    /// slots (`RECENT_SLOTS`) for the Stratum flows of a week.
    pub fn clear_flows(&mut self) -> Result<usize> {
        let keys: Vec<FlowKey> = {
            let mut map: aya::maps::HashMap<&mut MapData, FlowKey, FlowState> =
                aya::maps::HashMap::try_from(self.ebpf.map_mut("FLOWS").context("map FLOWS")?)?;
            let keys: Vec<FlowKey> = map.keys().filter_map(|k| k.ok()).collect();
            for k in &keys {
                map.remove(k)?;
            }
            keys
        };
        // Objects built before `RECENT` held marks (benchmarks `--against` an older revision):
        // a time a slot, or two side by side.
        let mut recent: aya::maps::Array<&mut MapData, u64> =
            aya::maps::Array::try_from(self.ebpf.map_mut("RECENT").context("map RECENT")?)?;
        match recent.len() as usize {
            n if n == sensor_common::recent::WORDS => {
                let marks = super::RecentSlots::of(self.ebpf.map("RECENT").context("map RECENT")?)?;
                for k in &keys {
                    marks.forget_stratum(sensor_common::recent_slot(k));
                }
            }
            n => {
                let per_slot = if n == sensor_common::RECENT_SLOTS {
                    1
                } else {
                    2
                };
                for k in &keys {
                    recent.set(per_slot * sensor_common::recent_slot(k), 0, 0)?;
                }
            }
        }
        Ok(keys.len())
    }

    /// Every entry of the flow table.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowState)>> {
        let map: aya::maps::HashMap<&MapData, FlowKey, FlowState> =
            aya::maps::HashMap::try_from(self.ebpf.map("FLOWS").context("map FLOWS")?)?;
        // Entries evicted or deleted while iterating end the walk early at worst; the next drain
        // sees them again.
        Ok(map.iter().filter_map(|r| r.ok()).collect())
    }

    /// Stratum V2 shares counted by size (`SV2_SHARES`), per range id (`UNWATCHED_SLOT` for
    /// flows outside every range), summed across CPUs.
    pub fn sv2_shares(&self) -> Result<Vec<(u32, u64)>> {
        self.sums("SV2_SHARES", 0..=sensor_common::UNWATCHED_SLOT as u32)
    }

    /// Entries of `OPENINGS`: new flows' unfinished first messages the program holds (a walk
    /// over at most `OPENING_ENTRIES` keys).
    pub fn openings(&self) -> Result<usize> {
        let map: aya::maps::HashMap<&MapData, FlowKey, sensor_common::Opening> =
            aya::maps::HashMap::try_from(self.ebpf.map("OPENINGS").context("map OPENINGS")?)?;
        Ok(map.keys().filter_map(|k| k.ok()).count())
    }
}
