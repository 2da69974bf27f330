//! Draining: the kernel's per-CPU counters into [`Metrics`].
//!
//! Kernel counters only grow (the maps live as long as the program), so each drain adds the
//! difference since the previous drain: Prometheus counters never go backwards, across
//! configuration reloads included. A range id handed to a new range name is first re-based, so the
//! new name does not inherit counts of the name that had the id before.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use anyhow::Result;

use sensor_common::{
    Counter, DIR_FROM, DIR_TO, MAX_IFACE_SLOTS, MAX_RANGES, PEER_OTHER, PEER_SLOTS, ParseEvent,
    Reason, Stat, UNWATCHED_SLOT, peer_index,
    stratum::{DIALECTS, Dialect},
    stratum_index, suspect_index, traffic_index,
};

use super::{Metrics, names};
use crate::{
    bpf::{Kernel, monotonic_ns},
    config::{CaptureMode, OTHER_PEER, UNWATCHED},
};

/// What the kernel's slots and range ids stand for.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// Range name by range id.
    pub ranges: Vec<Option<String>>,
    /// Interface name by interface slot.
    pub ifaces: Vec<Option<String>>,
    /// Neighbour name by peer index (index 0 is always `other`).
    pub peers: Vec<Option<String>>,
}

impl Labels {
    pub fn new() -> Self {
        let mut peers = vec![None; PEER_SLOTS];
        peers[PEER_OTHER] = Some(OTHER_PEER.to_string());
        Self {
            ranges: vec![None; MAX_RANGES],
            ifaces: vec![None; MAX_IFACE_SLOTS],
            peers,
        }
    }

    /// Sets the neighbours' names by peer index; `other` stays at index 0.
    pub fn set_peers<'a>(&mut self, peers: impl IntoIterator<Item = (usize, &'a str)>) {
        self.peers = Self::new().peers;
        for (id, name) in peers {
            if id != PEER_OTHER && id < PEER_SLOTS {
                self.peers[id] = Some(name.to_string());
            }
        }
    }

    fn range_slots(&self) -> impl Iterator<Item = (usize, &str)> {
        self.ranges
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().map(|n| (i, n)))
    }
}

const DIRECTIONS: [(usize, &str); 2] = [(DIR_FROM, names::FROM), (DIR_TO, names::TO)];

/// Drains kernel counters into [`Metrics`], remembering what it has already added.
#[derive(Default)]
pub struct Drainer {
    traffic: HashMap<u32, Counter>,
    peer_traffic: HashMap<u32, Counter>,
    stratum_packets: HashMap<u32, u64>,
    stratum_flows: HashMap<u32, u64>,
    /// Stratum V2 shares per range id, as last drained.
    sv2_shares: HashMap<u32, u64>,
    parse: HashMap<u32, u64>,
    mining_series: HashSet<(String, &'static str)>,
    /// Stratum and suspect series already exported, by (map, cell, range name).
    stratum_series: HashSet<(&'static str, u32, String)>,
    /// `STATS` cells already added.
    stats: HashMap<u32, u64>,
    suspect: HashMap<u32, u64>,
    /// Evictions already exported.
    evictions: u64,
    /// `OPENINGS` entries evicted so far (see `openings`).
    opening_evictions: u64,
}

impl Drainer {
    /// Marks the current kernel values of range `id` as already exported (for a range id that is
    /// handed to a new range name).
    pub fn rebase_range(&mut self, kernel: &Kernel, id: usize) -> Result<()> {
        let traffic: Vec<u32> = (0..MAX_IFACE_SLOTS)
            .flat_map(|s| DIRECTIONS.map(|(d, _)| traffic_index(s, id, d)))
            .collect();
        for (i, c) in kernel.traffic(traffic)? {
            self.traffic.insert(i, c);
        }
        let peers: Vec<u32> = (0..PEER_SLOTS)
            .flat_map(|p| DIRECTIONS.map(|(d, _)| peer_index(id, d, p)))
            .collect();
        for (i, c) in kernel.peer_traffic(peers)? {
            self.peer_traffic.insert(i, c);
        }
        let stratum: Vec<u32> = (0..DIALECTS)
            .flat_map(|dl| DIRECTIONS.map(|(d, _)| stratum_index(id, d, dl)))
            .collect();
        for (i, v) in kernel.sums("STRATUM_PACKETS", stratum.clone())? {
            self.stratum_packets.insert(i, v);
        }
        for (i, v) in kernel.sums("STRATUM_FLOWS", stratum)? {
            self.stratum_flows.insert(i, v);
        }
        let suspect: Vec<u32> = (0..Reason::COUNT)
            .flat_map(|r| DIRECTIONS.map(|(d, _)| suspect_index(id, d, r)))
            .collect();
        for (i, v) in kernel.sums("SUSPECT_FLOWS", suspect)? {
            self.suspect.insert(i, v);
        }
        Ok(())
    }

    /// Marks the current kernel values of peer index `id` as already exported (for an index that
    /// is handed to a new neighbour name).
    pub fn rebase_peer(&mut self, kernel: &Kernel, id: usize) -> Result<()> {
        let cells: Vec<u32> = (0..MAX_RANGES)
            .flat_map(|r| DIRECTIONS.map(|(d, _)| peer_index(r, d, id)))
            .collect();
        for (i, c) in kernel.peer_traffic(cells)? {
            self.peer_traffic.insert(i, c);
        }
        Ok(())
    }

    /// One drain cycle of the live agent: counters, the mining-flows gauge, and its own timing.
    pub fn drain(
        &mut self,
        kernel: &Kernel,
        labels: &Labels,
        metrics: &Metrics,
        flow_idle_timeout: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        self.drain_counters(kernel, labels, metrics)?;
        self.mining_flows(kernel, labels, metrics, flow_idle_timeout)?;
        self.openings(kernel, metrics)?;
        metrics
            .drain_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.last_drain.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        Ok(())
    }

    /// The counters: traffic, Stratum packets and flows, parse events. Shared by the live agent
    /// and by replay, so that both count alike.
    pub fn drain_counters(
        &mut self,
        kernel: &Kernel,
        labels: &Labels,
        metrics: &Metrics,
    ) -> Result<()> {
        self.sv2_shares(kernel, labels, metrics)?;
        // Traffic: every labelled interface slot (and slot 0, traffic of interfaces the agent did
        // not register, should there be any) x every configured range x direction.
        let mut cells = Vec::new();
        for (slot, iface) in labels.ifaces.iter().enumerate() {
            let iface = match (slot, iface) {
                (_, Some(name)) => name.as_str(),
                (0, None) => "unregistered",
                _ => continue,
            };
            for (id, range) in labels.range_slots() {
                for (dir, dir_name) in DIRECTIONS {
                    cells.push((traffic_index(slot, id, dir), range, dir_name, iface));
                }
            }
        }
        let values = kernel.traffic(cells.iter().map(|c| c.0))?;
        for ((idx, now), (_, range, dir, iface)) in values.into_iter().zip(&cells) {
            let before = self.traffic.insert(idx, now).unwrap_or_default();
            let (dp, db) = (now.packets - before.packets, now.bytes - before.bytes);
            if dp > 0 || (before == Counter::default() && *iface != "unregistered") {
                metrics
                    .packets
                    .with_label_values(&[range, dir, iface])
                    .inc_by(dp);
                metrics
                    .bytes
                    .with_label_values(&[range, dir, iface])
                    .inc_by(db);
            }
        }

        // Per neighbour: every configured range x direction x named peer index (`other`
        // included). A series appears with the first packet it counts, so that a sensor without
        // traffic from a neighbour exports nothing for it.
        let mut cells = Vec::new();
        for (id, range) in labels.range_slots() {
            for (dir, dir_name) in DIRECTIONS {
                for (p, peer) in labels.peers.iter().enumerate() {
                    if let Some(peer) = peer {
                        cells.push((peer_index(id, dir, p), range, dir_name, peer.as_str()));
                    }
                }
            }
        }
        let values = kernel.peer_traffic(cells.iter().map(|c| c.0))?;
        for ((idx, now), (_, range, dir, peer)) in values.into_iter().zip(&cells) {
            let before = self.peer_traffic.insert(idx, now).unwrap_or_default();
            let (dp, db) = (now.packets - before.packets, now.bytes - before.bytes);
            if dp > 0 {
                metrics
                    .peer_packets
                    .with_label_values(&[range, dir, peer])
                    .inc_by(dp);
                metrics
                    .peer_bytes
                    .with_label_values(&[range, dir, peer])
                    .inc_by(db);
            }
        }

        // Stratum packets and flows: configured ranges x direction x dialect, plus unwatched.
        let mut cells = Vec::new();
        for (id, range) in labels.range_slots() {
            for (dir, dir_name) in DIRECTIONS {
                for (dl, dialect) in Dialect::NAMES.iter().enumerate() {
                    cells.push((stratum_index(id, dir, dl), range, dir_name, *dialect));
                }
            }
        }
        for (dl, dialect) in Dialect::NAMES.iter().enumerate() {
            cells.push((
                stratum_index(UNWATCHED_SLOT, DIR_FROM, dl),
                UNWATCHED,
                names::NONE,
                *dialect,
            ));
        }
        for (map, last, metric) in [
            (
                "STRATUM_PACKETS",
                &mut self.stratum_packets,
                &metrics.stratum_packets,
            ),
            (
                "STRATUM_FLOWS",
                &mut self.stratum_flows,
                &metrics.stratum_flows,
            ),
        ] {
            let values = kernel.sums(map, cells.iter().map(|c| c.0))?;
            for ((idx, now), (_, range, dir, dialect)) in values.into_iter().zip(&cells) {
                let before = last.insert(idx, now).unwrap_or(0);
                // Configured ranges get their series at 0 from the first drain on (a dashboard
                // then shows "none" rather than "no data"); unwatched series appear when used.
                let create = *range != UNWATCHED
                    && self.stratum_series.insert((map, idx, range.to_string()));
                if now > before || create {
                    metric
                        .with_label_values(&[range, dir, dialect])
                        .inc_by(now - before);
                }
            }
        }

        let sample_ring = metrics
            .capture_drops
            .with_label_values(&[CaptureMode::Inline.path_label(), "sample_ring"]);
        let no_socket = metrics
            .capture_drops
            .with_label_values(&[CaptureMode::Tap.path_label(), "no_socket"]);
        for (stat, metric) in [
            (Stat::EventsSent, &metrics.events),
            (Stat::EventsLost, &metrics.events_lost),
            (Stat::Candidates, &metrics.inspect_candidates),
            (Stat::SamplesLost, &sample_ring),
            (Stat::NoSocket, &no_socket),
        ] {
            let now = kernel.stat(stat)?;
            let before = self.stats.insert(stat as u32, now).unwrap_or(0);
            metric.inc_by(now.saturating_sub(before));
        }

        // Suspect flows: configured ranges x direction x reason, plus unwatched.
        let mut cells = Vec::new();
        for (id, range) in labels.range_slots() {
            for (dir, dir_name) in DIRECTIONS {
                for (r, reason) in Reason::NAMES.iter().enumerate() {
                    cells.push((suspect_index(id, dir, r), range, dir_name, *reason));
                }
            }
        }
        for (r, reason) in Reason::NAMES.iter().enumerate() {
            cells.push((
                suspect_index(UNWATCHED_SLOT, DIR_FROM, r),
                UNWATCHED,
                names::NONE,
                *reason,
            ));
        }
        let values = kernel.sums("SUSPECT_FLOWS", cells.iter().map(|c| c.0))?;
        for ((idx, now), (_, range, dir, reason)) in values.into_iter().zip(&cells) {
            let before = self.suspect.insert(idx, now).unwrap_or(0);
            // Like the Stratum series: configured ranges show 0 from the first drain on.
            let create = *range != UNWATCHED
                && self
                    .stratum_series
                    .insert(("SUSPECT_FLOWS", idx, range.to_string()));
            if now > before || create {
                metrics
                    .suspect_flows
                    .with_label_values(&[range, dir, reason])
                    .inc_by(now - before);
            }
        }

        for (idx, now) in kernel.parse_events()? {
            let before = self.parse.insert(idx, now).unwrap_or(0);
            if let Some(reason) = ParseEvent::NAMES.get(idx as usize) {
                metrics
                    .parse_events
                    .with_label_values(&[reason])
                    .inc_by(now - before);
            }
        }

        Ok(())
    }

    /// Stratum V2 shares the kernel counted by their encrypted size, into `shares_total` with
    /// coin and result `unknown` (nothing of a share is readable; the pool's verdict is sealed
    /// too).
    fn sv2_shares(&mut self, kernel: &Kernel, labels: &Labels, metrics: &Metrics) -> Result<()> {
        for (idx, now) in kernel.sv2_shares()? {
            let before = self.sv2_shares.insert(idx, now).unwrap_or(0);
            if now <= before {
                continue;
            }
            let range = if idx as usize == UNWATCHED_SLOT {
                Some(UNWATCHED)
            } else {
                labels
                    .range_slots()
                    .find(|&(id, _)| id == idx as usize)
                    .map(|(_, name)| name)
            };
            if let Some(range) = range {
                metrics
                    .shares
                    .with_label_values(&[range, "unknown", "unknown"])
                    .inc_by(now - before);
            }
        }
        Ok(())
    }

    /// The kernel's held openings: their memory, and how many the LRU evicted (held, minus what
    /// the program removed, minus what is there).
    fn openings(&mut self, kernel: &Kernel, metrics: &Metrics) -> Result<()> {
        let entries = kernel.openings()?;
        metrics
            .opening_bytes
            .set((entries * sensor_common::OPENING_ENTRY_BYTES) as i64);
        let evicted = kernel
            .stat(Stat::OpeningsHeld)?
            .saturating_sub(kernel.stat(Stat::OpeningsRemoved)?)
            .saturating_sub(entries as u64);
        if evicted > self.opening_evictions {
            metrics
                .opening_evictions
                .inc_by(evicted - self.opening_evictions);
            self.opening_evictions = evicted;
        }
        Ok(())
    }

    fn mining_flows(
        &mut self,
        kernel: &Kernel,
        labels: &Labels,
        metrics: &Metrics,
        idle: Duration,
    ) -> Result<()> {
        let flows = kernel.flows()?;
        metrics.flow_entries.set(flows.len() as i64);
        // Nothing but the LRU removes flows, so what was created and is not there was evicted.
        let evicted = kernel
            .stat(Stat::FlowsCreated)?
            .saturating_sub(flows.len() as u64);
        if evicted > self.evictions {
            metrics.flow_evictions.inc_by(evicted - self.evictions);
            self.evictions = evicted;
        }
        let now = monotonic_ns();
        let idle = idle.as_nanos() as u64;
        let mut active: HashMap<(String, &'static str), i64> = HashMap::new();
        for (_, state) in &flows {
            if now.saturating_sub(state.last_seen_ns) > idle {
                continue;
            }
            let Some(dialect) = Dialect::from_index(state.dialect) else {
                continue;
            };
            let mut any = false;
            for (id, range) in labels.range_slots() {
                if state.ranges & (1 << id) != 0 {
                    *active
                        .entry((range.to_string(), dialect.name()))
                        .or_default() += 1;
                    any = true;
                }
            }
            if !any {
                *active
                    .entry((UNWATCHED.to_string(), dialect.name()))
                    .or_default() += 1;
            }
        }
        for key in self.mining_series.iter() {
            if !active.contains_key(key) {
                metrics
                    .mining_flows
                    .with_label_values(&[&key.0, key.1])
                    .set(0);
            }
        }
        for (key, n) in &active {
            metrics
                .mining_flows
                .with_label_values(&[&key.0, key.1])
                .set(*n);
            self.mining_series.insert(key.clone());
        }
        Ok(())
    }
}
