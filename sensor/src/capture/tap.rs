//! `tap` capture: the program redirects candidates to AF_XDP sockets; a task per socket reads it
//! and reports the socket's drops.

use tracing::error;

use super::Candidate;
use crate::{config::CaptureMode, metrics::Metrics};

/// How often a socket reader reads its socket's drop counters.
const SOCKET_STATS: std::time::Duration = std::time::Duration::from_secs(1);

/// `tap`: reads one AF_XDP socket, queues each frame for the inspector, and turns the socket's
/// drop counters into `capture_drops_total`.
pub(crate) fn spawn_socket_reader(
    mut socket: crate::capture::afxdp::XskSocket,
    candidates: tokio::sync::mpsc::Sender<Candidate>,
    metrics: Metrics,
    iface: String,
) -> tokio::task::JoinHandle<()> {
    let drops = |ring: &str| {
        metrics
            .capture_drops
            .with_label_values(&[CaptureMode::Tap.path_label(), ring])
    };
    let (full, rx_ring, fill_ring, dropped) = (
        drops("agent_queue"),
        drops("rx_ring"),
        drops("fill_ring"),
        drops("dropped"),
    );
    tokio::spawn(async move {
        let ifindex = socket.ifindex();
        let mut last = crate::capture::afxdp::XskStats::default();
        let mut stats = tokio::time::interval(SOCKET_STATS);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ready = socket.readable() => {
                    if let Err(e) = ready {
                        error!(%iface, queue = socket.queue(), error = %e, "AF_XDP socket failed; its queue is no longer inspected");
                        return;
                    }
                    socket.recv(256, |frame| {
                        let c = Candidate { path: CaptureMode::Tap.path_label(), ifindex, frame: frame.to_vec() };
                        if candidates.try_send(c).is_err() {
                            full.inc();
                        }
                    });
                }
                _ = stats.tick() => {
                    if let Ok(now) = socket.stats() {
                        rx_ring.inc_by(now.rx_ring_full.saturating_sub(last.rx_ring_full));
                        fill_ring.inc_by(
                            now.rx_fill_ring_empty_descs
                                .saturating_sub(last.rx_fill_ring_empty_descs),
                        );
                        dropped.inc_by(now.rx_dropped.saturating_sub(last.rx_dropped));
                        last = now;
                    }
                }
            }
        }
    })
}
