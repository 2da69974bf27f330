//! `encrypted_stratum`: the agent's verdict on the TLS flows whose records the XDP program keeps
//! (`sensor_common::tls_shape`). The program records; this module reads the records at every
//! drain (live) or bucket end (replay), decides ([`decide`]), counts a Stratum-shaped flow once in
//! the program's own suspect cells, so that it is drained, exported and replayed as every other
//! suspect reason is, and forgets every judged flow.
//!
//! Why a periodic read of the map and not events on the ring: a verdict needs minutes of a flow's
//! records, which the map holds anyway; an event per record would put every tracked record through
//! the ring (a download's thousands) to be kept again in userspace. The read costs one map walk
//! per drain over at most `SHAPE_FLOWS` entries, most of them judged and gone within minutes.

pub mod decide;
#[cfg(test)]
mod tests;

use anyhow::Result;
use sensor_common::{EVENT_SUSPECT_FLOW, Event, FlowKey, Reason, tls_shape::TlsShape};

use crate::{bpf::shapes::ShapeMaps, metrics::Metrics};
use decide::Verdict;

/// A flow is judged at this age at the latest (or sooner, below): the evidence of a few submits
/// and a job, or without a job of a few submits at a share's random cadence ([`decide::jobless`],
/// judged at this age only, on all its records), within the 5 minutes the verdict is due by (plus
/// at most a drain interval).
pub const DECIDE_MS: u64 = 240_000;
/// A flow whose kept records filled early (a busy session: a share every second keeps 64 records
/// in half a minute) is judged at this age: by then its records, the latest one's time included,
/// have had the time to span the minute [`decide::MIN_SPAN_MS`] asks for after the opening.
pub const FULL_DECIDE_MS: u64 = 120_000;
/// Twice the evidence the verdict asks for ([`decide::MIN_SUBMITS`], [`decide::MIN_JOBS`]): a
/// flow that shows it, over the minute's span and with nothing against it, is flagged as soon as
/// it does (a session at a usual cadence within two or three minutes) rather than at
/// [`DECIDE_MS`], which exists for the slowest sessions (a share a minute, a job a block).
pub const EARLY_SUBMITS: u32 = 2 * decide::MIN_SUBMITS;
pub const EARLY_JOBS: u32 = 2 * decide::MIN_JOBS;
/// A flow with nothing against Stratum's shape but not yet the evidence (a slow pool's first job
/// after its login) is watched until this age, then forgotten: as long as the program records it.
pub const LATE_MS: u64 = sensor_common::tls_shape::RECORD_MS;

/// What the judge does with a flow now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Count it as `encrypted_stratum` and forget it.
    Flag,
    /// Forget it uncounted.
    Clear,
    /// Keep recording.
    Wait,
}

/// The judgement of one recorded flow at `now_ns` (the program's clock); `end` when no more of its
/// packets will come (the end of a replay).
pub fn judge(shape: &TlsShape, now_ns: u64, end: bool) -> Judgement {
    let age_ms = now_ns.saturating_sub(shape.first_ns) / 1_000_000;
    let mut features = decide::classify(shape.kept(), if end { u64::MAX } else { age_ms });
    // The flow lives on past its kept records: its span runs to its latest record.
    if let Some(first) = shape.kept().next() {
        let lived = shape.last_ms().saturating_sub(first.ms as u64);
        features.span_ms = features.span_ms.max(lived.min(u32::MAX as u64) as u32);
    }
    let bytes = shape.bytes[0] as u64 + shape.bytes[1] as u64;
    let full = shape.full();
    let verdict = decide::verdict(&features, bytes, age_ms);
    // Full: nothing more will be kept; a flow already against Stratum goes at once, the others
    // once old enough for their span. Twice the evidence asked for is decided at once; a job-less
    // flow never shows it, and is judged when due.
    let strong = features.submits >= EARLY_SUBMITS && features.jobs >= EARLY_JOBS;
    let due = end
        || age_ms >= DECIDE_MS
        || (full && (verdict == Verdict::NotStratum || age_ms >= FULL_DECIDE_MS))
        || (verdict == Verdict::Stratum && strong);
    match verdict {
        Verdict::Stratum if due => Judgement::Flag,
        Verdict::NotStratum if due => Judgement::Clear,
        Verdict::Unproven if due && (end || full || age_ms >= LATE_MS) => Judgement::Clear,
        _ => Judgement::Wait,
    }
}

/// The suspect event of a flagged flow, at its last kept record's time.
pub fn event(key: &FlowKey, shape: &TlsShape) -> Event {
    let last_ms = shape.kept().last().map_or(0, |r| r.ms) as u64;
    Event {
        ts_ns: shape.first_ns + last_ms * 1_000_000,
        key: *key,
        src_ranges: shape.src_ranges,
        dst_ranges: shape.dst_ranges,
        ifindex: shape.ifindex,
        kind: EVENT_SUSPECT_FLOW,
        dialect: Reason::EncryptedStratum as u8,
        src_is_lo: shape.client_is_lo,
        _pad: 0,
    }
}

/// Reads, judges and forgets the program's recorded TLS flows.
pub struct Judge {
    maps: ShapeMaps,
    /// Flows the judge forgot (flagged or cleared): the rest of those started and gone were
    /// evicted.
    forgotten: u64,
    evictions: u64,
}

impl Judge {
    pub fn new(maps: ShapeMaps) -> Self {
        Self {
            maps,
            forgotten: 0,
            evictions: 0,
        }
    }

    /// Judges every recorded flow at `now_ns`; returns the events of the flows flagged. `started`
    /// is the program's count of flows it began recording (`Stat::ShapesStarted`).
    pub fn run(
        &mut self,
        now_ns: u64,
        end: bool,
        started: u64,
        metrics: &Metrics,
    ) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let flows = self.maps.flows();
        let mut kept = flows.len() as u64;
        for (key, shape) in &flows {
            let j = judge(shape, now_ns, end);
            if j == Judgement::Wait {
                continue;
            }
            if j == Judgement::Flag {
                self.maps.count_suspect(
                    shape.src_ranges,
                    shape.dst_ranges,
                    Reason::EncryptedStratum,
                )?;
                events.push(event(key, shape));
            }
            self.maps.forget(key)?;
            self.forgotten += 1;
            kept -= 1;
        }
        metrics
            .tls_shape_bytes
            .set((kept * sensor_common::tls_shape::ENTRY_BYTES) as i64);
        let evicted = started.saturating_sub(self.forgotten + kept);
        if evicted > self.evictions {
            metrics.tls_shape_evictions.inc_by(evicted - self.evictions);
            self.evictions = evicted;
        }
        Ok(events)
    }
}
