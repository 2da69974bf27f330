//! `inline` capture: the kernel copies candidates into its sample ring; this reads the ring.

use anyhow::Result;
use tracing::error;

use super::Candidate;
use crate::{
    bpf::{self, spawn_ring_reader},
    config::CaptureMode,
    metrics::Metrics,
};

/// `inline`: reads the kernel's sample ring and queues each sample's bytes for the inspector;
/// the event of a flow the sample's packet opened, carried in its record, goes to `event` first.
pub(crate) fn spawn_samples(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    candidates: tokio::sync::mpsc::Sender<Candidate>,
    metrics: Metrics,
    mut event: impl FnMut(&sensor_common::Event) + Send + 'static,
) -> Result<()> {
    let full = metrics
        .capture_drops
        .with_label_values(&[CaptureMode::Inline.path_label(), "agent_queue"]);
    spawn_ring_reader(ring, "sample", move |item| match bpf::sample_from(item) {
        Ok((s, opened)) => {
            if let Some(e) = opened {
                event(&e);
            }
            let n = (s.cap_len as usize).min(s.data.len());
            let c = Candidate {
                path: CaptureMode::Inline.path_label(),
                ifindex: s.ifindex,
                frame: s.data[..n].to_vec(),
            };
            if candidates.try_send(c).is_err() {
                full.inc();
            }
        }
        Err(e) => error!(error = %format!("{e:#}"), "a sample could not be read"),
    })
}
