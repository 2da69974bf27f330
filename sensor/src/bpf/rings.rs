//! The program's ring buffers: taken out of the object for a reader of their own, read in place
//! (tests), and their records decoded; and the task that reads a ring (`spawn_ring_reader`).

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{MapData, RingBuf, XskMap};
use tokio::io::unix::AsyncFd;

use sensor_common::Event;

use super::Kernel;

impl Kernel {
    /// Takes the event ring buffer out of the object, for a reader of its own (the agent's).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring("EVENTS", "event")
    }

    /// Takes the sample ring buffer (`inline` capture) out of the object, for the agent's reader.
    pub fn take_samples(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring("SAMPLES", "sample")
    }

    fn take_ring(&mut self, name: &str, what: &str) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| anyhow!("the {what} ring buffer was already taken"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Reads every pending sample (tests): the ring stays in the object.
    pub fn read_samples(&mut self) -> Result<Vec<sensor_common::Sample>> {
        self.drain_samples()?;
        Ok(std::mem::take(&mut self.read.samples))
    }

    /// Reads every pending event (tests): those of the `EVENTS` ring, then those sample records
    /// carried (`SAMPLE_OPENED`), each in its ring's order. The rings stay in the object; the
    /// samples read for their events come from the next `read_samples`.
    pub fn read_events(&mut self) -> Result<Vec<Event>> {
        self.drain_samples()?;
        let mut events = self.read_ring("EVENTS", event_from)?;
        events.append(&mut self.read.carried);
        Ok(events)
    }

    /// Moves every pending sample record into `read`, its event apart.
    fn drain_samples(&mut self) -> Result<()> {
        for (s, e) in self.read_ring("SAMPLES", sample_from)? {
            self.read.samples.push(s);
            self.read.carried.extend(e);
        }
        Ok(())
    }

    /// Every pending record of ring `name`, parsed by `parse`.
    fn read_ring<T>(&mut self, name: &str, parse: fn(&[u8]) -> Result<T>) -> Result<Vec<T>> {
        let mut ring: RingBuf<&mut MapData> = RingBuf::try_from(
            self.ebpf
                .map_mut(name)
                .with_context(|| format!("map {name}"))?,
        )?;
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(parse(&item)?);
        }
        Ok(out)
    }

    /// Takes the AF_XDP socket map (`tap` capture) out of the object, for the agent.
    pub fn take_xsks(&mut self) -> Result<XskMap<MapData>> {
        let map = self
            .ebpf
            .take_map("XSKS")
            .ok_or_else(|| anyhow!("the AF_XDP socket map was already taken"))?;
        Ok(XskMap::try_from(map)?)
    }
}

/// A sample record from the ring buffer: the header and `cap_len` bytes of the frame (the kernel
/// writes no more), the rest of `data` zero; and the event of the Stratum flow the packet opened,
/// when the record carries one (`SAMPLE_OPENED`: between the header and the frame).
pub fn sample_from(bytes: &[u8]) -> Result<(sensor_common::Sample, Option<Event>)> {
    use sensor_common::{SAMPLE_BYTES, SAMPLE_HEADER, SAMPLE_OPENED, SAMPLE_OPENED_HEADER, Sample};
    if bytes.len() < SAMPLE_HEADER {
        bail!("sample record of {} bytes is too short", bytes.len());
    }
    let mut s = Sample {
        ts_ns: 0,
        ifindex: 0,
        frame_len: 0,
        cap_len: 0,
        flags: 0,
        data: [0; SAMPLE_BYTES],
    };
    // SAFETY: `Sample` is plain `#[repr(C)]` data valid for any bytes; the header is
    // `SAMPLE_HEADER` bytes, checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut s).cast::<u8>(), SAMPLE_HEADER);
    }
    let (event, at) = if s.flags & SAMPLE_OPENED != 0 {
        if bytes.len() < SAMPLE_OPENED_HEADER {
            bail!(
                "sample record of {} bytes is too short for the event it announces",
                bytes.len()
            );
        }
        (
            Some(event_from(&bytes[SAMPLE_HEADER..])?),
            SAMPLE_OPENED_HEADER,
        )
    } else {
        (None, SAMPLE_HEADER)
    };
    let frame = &bytes[at..];
    if s.cap_len as usize > frame.len().min(SAMPLE_BYTES) {
        bail!(
            "sample record of {} bytes announces {} bytes of frame",
            bytes.len(),
            s.cap_len
        );
    }
    let n = frame.len().min(SAMPLE_BYTES);
    s.data[..n].copy_from_slice(&frame[..n]);
    Ok((s, event))
}

/// An event record from the ring buffer.
pub fn event_from(bytes: &[u8]) -> Result<Event> {
    if bytes.len() < std::mem::size_of::<Event>() {
        bail!("short event record: {} bytes", bytes.len());
    }
    // SAFETY: Event is plain #[repr(C)] data; the length was checked; read_unaligned copies.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// How often a ring buffer is read whether or not the kernel woke the reader: the program sends
/// a wake-up only for the record that takes a ring past a quarter or half full (each costs an
/// interrupt; see `sensor_common::ring`), so this bounds how late an event or a deep-inspection
/// copy is read.
pub const RING_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Hands every record of a kernel ring buffer to `record`, in a task of its own: when the kernel
/// wakes the reader, and every `RING_POLL`.
pub(crate) fn spawn_ring_reader(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    what: &str,
    mut record: impl FnMut(&[u8]) + Send + 'static,
) -> Result<()> {
    // SAFETY: the ring buffer owns its map fd for its whole life and always returns that fd; the
    // AsyncFd owns the ring buffer.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("watching the {what} ring buffer: {}", e.into_parts().1))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RING_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut drain = |ring: &mut aya::maps::RingBuf<aya::maps::MapData>| {
                while let Some(item) = ring.next() {
                    record(&item);
                }
            };
            tokio::select! {
                ready = fd.readable_mut() => {
                    let Ok(mut guard) = ready else {
                        return;
                    };
                    drain(guard.get_inner_mut());
                    guard.clear_ready();
                }
                _ = tick.tick() => drain(fd.get_mut()),
            }
        }
    });
    Ok(())
}
