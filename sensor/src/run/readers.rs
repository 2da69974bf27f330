//! The agent's reading tasks: flow events from the kernel's event ring, candidates through the
//! inspector, both written as event lines; and the kernel program's log records.

use anyhow::Result;
use tokio::io::unix::AsyncFd;
use tracing::{error, warn};

use super::{SharedNames, SharedWriter};
use crate::{
    bpf::{self, spawn_ring_reader},
    capture::Candidate,
};

/// Writes each flow event the kernel reports as a JSON line to the configured sink. A record that
/// cannot be written counts as lost (`mining_sensor_events_lost_total`), never silently dropped.
pub(super) fn spawn_events(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    names: SharedNames,
    writer: SharedWriter,
    lost: prometheus::IntCounter,
) -> Result<()> {
    let mut write = event_writer(names, writer, lost.clone());
    spawn_ring_reader(ring, "event", move |item| match bpf::event_from(item) {
        Ok(e) => write(&e),
        Err(e) => {
            lost.inc();
            error!(error = %format!("{e:#}"), "a flow event could not be read");
        }
    })
}

/// Writes each flow event it is handed (from the event ring, or carried by a sample record),
/// counting in `lost` those it could not write.
pub(super) fn event_writer(
    names: SharedNames,
    writer: SharedWriter,
    lost: prometheus::IntCounter,
) -> impl FnMut(&sensor_common::Event) + Send + 'static {
    move |e| {
        if let Err(e) = write_event(&names, &writer, e) {
            lost.inc();
            error!(error = %format!("{e:#}"), "a flow event could not be written");
        }
    }
}

/// Writes a flow event as its JSON line, with the range and interface names in force, to the
/// configured sink.
pub(super) fn write_event(
    names: &SharedNames,
    writer: &SharedWriter,
    e: &sensor_common::Event,
) -> Result<()> {
    let names = names
        .read()
        .map_err(|_| anyhow::anyhow!("names lock poisoned"))?;
    let line = crate::events::line(
        e,
        |id| names.ranges.get(id).cloned().flatten(),
        names
            .ifaces
            .get(&e.ifindex)
            .map_or("unknown", String::as_str),
    );
    writer
        .lock()
        .map_err(|_| anyhow::anyhow!("event writer lock poisoned"))?
        .write(&line)
}

/// Inspects candidates one by one: counts logins and writes their event lines.
pub(super) fn spawn_inspector(
    mut queue: tokio::sync::mpsc::Receiver<Candidate>,
    mut inspector: crate::inspect::Inspector,
    ranges: bpf::RangeLookup,
    names: SharedNames,
    writer: SharedWriter,
    lost: prometheus::IntCounter,
) {
    tokio::spawn(async move {
        let mut expire = tokio::time::interval(std::time::Duration::from_secs(10));
        expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                c = queue.recv() => {
                    let Some(c) = c else { return };
                    let lines = {
                        let Ok(names) = names.read() else { return };
                        let iface = names.ifaces.get(&c.ifindex).map_or("unknown", String::as_str);
                        inspector.frame(
                            &c.frame,
                            c.path,
                            iface,
                            std::time::Instant::now(),
                            std::time::SystemTime::now(),
                            |a| ranges.ranges_of(a).unwrap_or(0),
                            |id| names.ranges.get(id).cloned().flatten(),
                        )
                    };
                    for line in lines {
                        let written = writer
                            .lock()
                            .map_err(|_| anyhow::anyhow!("event writer lock poisoned"))
                            .and_then(|mut w| w.write(&line));
                        if let Err(e) = written {
                            lost.inc();
                            error!(error = %format!("{e:#}"), "a login event could not be written");
                        }
                    }
                }
                _ = expire.tick() => inspector.expire(std::time::Instant::now()),
            }
        }
    });
}

pub(super) fn spawn_kernel_log(logger: aya_log::EbpfLogger<&'static dyn log::Log>) {
    // SAFETY: the logger owns its ring buffer fd for its whole life and always returns that fd;
    // the AsyncFd owns the logger.
    let registered =
        unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            warn!(error = %e, "kernel log records will not be shown");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
