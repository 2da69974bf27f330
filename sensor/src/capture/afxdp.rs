//! The receive side of `tap` capture: AF_XDP sockets that the XDP program's `XSKS` map redirects
//! candidate packets into, one per (interface, receive queue), built on `xdpilone`.
//!
//! Each [`XskSocket`] owns everything its queue needs: an anonymous memory area (the UMEM) cut into
//! `frame_count` frames, one AF_XDP socket that holds the UMEM registration, its fill and
//! completion rings and its receive ring. There is no transmit ring: the sensor never sends.
//!
//! Frame ownership is the invariant that matters: every frame is at any time in exactly one of
//! three places — the fill ring, the kernel (driver or receive ring), or the socket's free list.
//! [`XskSocket::recv`] moves the frames it takes from the receive ring to the free list, hands
//! them to its closure, and only then moves the free list into the fill ring (what does not fit
//! stays for the next `recv`). A frame is never dropped on the floor, not even when the closure
//! panics, so the kernel never starves.
//!
//! Everything that names an interface (opening, binding) happens in the network namespace of the
//! calling thread; the agent runs in one namespace, tests enter theirs with `setns` first.
//!
//! Use: for each receive queue `q` of an interface ([`rx_queues`]), `XskSocket::open(ifindex, q,
//! &cfg)`, put its fd into the program's `XSKS` map, then loop on [`XskSocket::readable`] and
//! [`XskSocket::recv`]. Dropping the socket closes it, which also takes it out of `XSKS`; the
//! kernel lets go of the queue a few tens of milliseconds later, which `open` waits out.

use std::{
    ffi::c_void,
    fmt, io,
    num::NonZeroU32,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::debug;
use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig, User};

use crate::mapping::Area;

/// Whether to ask the driver for zero-copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Zero-copy where the driver supports it, copy mode elsewhere (veth, most virtual NICs).
    #[default]
    Auto,
    /// Always copy mode (`XDP_COPY`): the driver's XDP path stays untouched, at the price of one
    /// copy per candidate packet, which at candidate rates is nothing.
    Never,
}

/// Sizes of one socket's memory and rings.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// Frames in the UMEM. More frames than ring slots let the kernel keep filling the receive ring
    /// while frames are out with `recv`'s closure.
    pub frame_count: u32,
    /// Bytes per frame: 2048 or 4096 (the kernel needs a power of two between 2048 and the page
    /// size). A frame holds 256 bytes of XDP headroom plus the packet, so 2048 fits any
    /// 1500-byte-MTU frame; larger packets are dropped by the kernel and counted in `rx_dropped`.
    pub frame_size: u32,
    /// Slots of the receive, fill and completion rings (a power of two).
    pub ring_size: u32,
    pub zero_copy: ZeroCopy,
}

impl Default for XskConfig {
    /// 4096 frames of 2048 bytes: 8 MiB per queue.
    fn default() -> Self {
        Self {
            frame_count: 4096,
            frame_size: 2048,
            ring_size: 2048,
            zero_copy: ZeroCopy::Auto,
        }
    }
}

impl XskConfig {
    fn check(&self) -> Result<()> {
        if self.frame_size != 2048 && self.frame_size != 4096 {
            bail!(
                "AF_XDP frame_size must be 2048 or 4096 bytes, not {}",
                self.frame_size
            );
        }
        if !self.ring_size.is_power_of_two() {
            bail!(
                "AF_XDP ring_size must be a power of two, not {}",
                self.ring_size
            );
        }
        if self.frame_count == 0 {
            bail!("AF_XDP frame_count must be at least 1");
        }
        Ok(())
    }
}

/// What the socket actually got from the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    ZeroCopy,
    Copy,
}

impl BindMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::ZeroCopy => "zero-copy",
            Self::Copy => "copy",
        }
    }
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The receive counters of `struct xdp_statistics` (`getsockopt(SOL_XDP, XDP_STATISTICS)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Packets dropped for reasons other than an invalid descriptor (e.g. larger than a frame).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    /// Packets dropped because the receive ring was full (userspace too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (frames not returned fast enough).
    pub rx_fill_ring_empty_descs: u64,
}

/// The socket's fd as the `AsyncFd` sees it; the `XskSocket` keeps the fd open for longer than
/// the `AsyncFd` lives.
struct WaitFd(RawFd);

impl AsRawFd for WaitFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// One AF_XDP socket bound to (ifindex, queue), with its own UMEM and rings.
///
/// Field order is drop order and matters: the epoll registration goes before the socket is
/// closed, the rings are unmapped before the socket closes, and the UMEM area is unmapped last.
/// Closing the socket also removes it from every XSKMAP it was in.
pub struct XskSocket {
    waiter: OnceLock<AsyncFd<WaitFd>>,
    waiter_init: Mutex<()>,
    rx: RingRx,
    device: DeviceQueue,
    _user: User,
    _umem: Umem,
    area: Area,
    /// Base addresses (UMEM offsets) of frames owned by userspace and not yet in the fill ring.
    free: Vec<u64>,
    /// (offset, length) of the frames of the current `recv`, kept for its allocation.
    batch: Vec<(usize, usize)>,
    frame_mask: u64,
    fd: RawFd,
    ifindex: u32,
    queue: u32,
    mode: BindMode,
}

// SAFETY: the raw pointers inside (the UMEM area, the ring mmaps) point at memory this value owns
// and that no other value aliases; moving it to another thread moves that ownership with it.
unsafe impl Send for XskSocket {}
// SAFETY: every `&self` method only reads: syscalls on the fd (getsockopt, recvfrom with no
// buffer, epoll), relaxed loads of the kernel's ring heads and the ring's flags word, and the
// `OnceLock`. Everything that writes rings, frames or the free list takes `&mut self`.
unsafe impl Sync for XskSocket {}

fn os(e: xdpilone::Errno) -> io::Error {
    // xdpilone reports some errors negated (e.g. `-EINVAL` from `map_rx`).
    io::Error::from_raw_os_error(e.get_raw().abs())
}

impl XskSocket {
    /// Opens an AF_XDP socket bound to receive queue `queue` of interface `ifindex` (in the
    /// calling thread's network namespace), its fill ring full of frames. Register it in the
    /// program's `XSKS` map at index `queue` to receive anything.
    pub fn open(ifindex: u32, queue: u32, cfg: &XskConfig) -> Result<Self> {
        cfg.check()?;
        let at = format!("interface index {ifindex} queue {queue}");

        let mut info = IfInfo::invalid();
        info.from_ifindex(ifindex).map_err(os).with_context(|| {
            format!(
                "AF_XDP socket for {at}: no such interface in this network namespace (is the \
                 interface still there, and is the agent in the interface's namespace?)"
            )
        })?;
        info.set_queue(queue);

        let bytes = u64::from(cfg.frame_count) * u64::from(cfg.frame_size);
        let len = usize::try_from(bytes).context("UMEM size overflows the address space")?;
        let area = Area::anonymous(len)
            .with_context(|| format!("allocating the {bytes}-byte UMEM for {at}"))?;

        let umem_cfg = UmemConfig {
            fill_size: cfg.ring_size,
            complete_size: cfg.ring_size,
            frame_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: the area is page-aligned (fresh mmap), `frame_count * frame_size` bytes long,
        // and outlives the Umem: both live in the returned XskSocket, the area dropped last.
        let umem = unsafe { Umem::new(umem_cfg, area.as_slice_ptr()) }
            .map_err(os)
            .map_err(|e| {
                let hint = match e.raw_os_error() {
                    Some(libc::EAFNOSUPPORT) => {
                        "AF_XDP needs a kernel built with CONFIG_XDP_SOCKETS"
                    }
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        "AF_XDP needs root or CAP_NET_RAW (and CAP_IPC_LOCK or a large enough \
                         RLIMIT_MEMLOCK for the UMEM)"
                    }
                    Some(libc::ENOMEM) | Some(libc::ENOBUFS) => {
                        "the UMEM is charged to RLIMIT_MEMLOCK without CAP_IPC_LOCK: raise the \
                         limit or lower frame_count"
                    }
                    _ => "AF_XDP socket creation or UMEM registration failed",
                };
                anyhow!(e).context(format!("{hint} ({at})"))
            })?;

        // One fd carries UMEM, fill/completion and receive rings: the one that goes into XSKS.
        let sock = Socket::with_shared(&info, &umem)
            .map_err(os)
            .with_context(|| format!("preparing the AF_XDP socket for {at}"))?;
        // xdpilone creates the socket without SOCK_CLOEXEC. A child process (an `ip`, a hook)
        // that inherited it would keep the socket alive after we close it: still bound (the
        // queue stays busy), still in XSKS, swallowing candidates nobody reads.
        set_cloexec(sock.as_raw_fd())
            .with_context(|| format!("setting FD_CLOEXEC on the AF_XDP socket for {at}"))?;
        let mut device = umem
            .fq_cq(&sock)
            .map_err(os)
            .with_context(|| format!("mapping the fill and completion rings for {at}"))?;

        // NEED_WAKEUP lets a zero-copy driver stop polling an empty fill ring until told; copy
        // mode never sets the flag, so it costs nothing there. Without XDP_COPY or XDP_ZEROCOPY
        // the kernel itself tries zero-copy and falls back to copy mode when the driver lacks or
        // refuses it: `Auto` in a single bind, without a failed zero-copy bind to undo; what the
        // socket got is read back from XDP_OPTIONS.
        let mut bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP;
        if cfg.zero_copy == ZeroCopy::Never {
            bind_flags |= SocketConfig::XDP_BIND_COPY;
        }
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(cfg.ring_size),
                    tx_size: None,
                    bind_flags,
                },
            )
            .map_err(os)
            .with_context(|| format!("creating the receive ring for {at}"))?;
        let rx = user
            .map_rx()
            .map_err(os)
            .with_context(|| format!("mapping the receive ring for {at}"))?;

        let fd = user.as_raw_fd();
        let frame_size = u64::from(cfg.frame_size);
        let mut free: Vec<u64> = (0..u64::from(cfg.frame_count))
            .rev()
            .map(|i| i * frame_size)
            .collect();
        // Filled before binding, so that a zero-copy driver finds frames as soon as it sets up the
        // queue.
        refill(&mut device, &mut free);

        bind(&umem, &user).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) => {
                    "another AF_XDP socket (another sensor?) is already bound to this queue"
                }
                Some(libc::EINVAL) => {
                    "the interface has no such receive queue (see /sys/class/net/IF/queues)"
                }
                Some(libc::ENODEV) => "the interface is gone",
                Some(libc::ENETDOWN) => "the interface is down",
                _ => "binding the AF_XDP socket failed",
            };
            anyhow!(e).context(format!("{hint} ({at}, {:?} mode)", cfg.zero_copy))
        })?;

        let mode =
            bind_mode(fd).with_context(|| format!("reading the AF_XDP bind mode of {at}"))?;

        let mut s = Self {
            waiter: OnceLock::new(),
            waiter_init: Mutex::new(()),
            rx,
            device,
            _user: user,
            _umem: umem,
            area,
            free,
            batch: Vec::with_capacity(cfg.ring_size as usize),
            frame_mask: !(frame_size - 1),
            fd,
            ifindex,
            queue,
            mode,
        };
        s.wake_if_needed();
        Ok(s)
    }

    pub fn mode(&self) -> BindMode {
        self.mode
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Frames held by userspace and not yet given back to the fill ring (only more frames than
    /// fill-ring slots, or a full fill ring, leave any here).
    pub fn frames_waiting(&self) -> usize {
        self.free.len()
    }

    /// Without blocking, hands each received frame (the whole Ethernet frame) to `f`, at most
    /// `max` of them, and returns how many it handed. Every frame goes back to the fill ring.
    pub fn recv(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let frame = self.frame_mask.wrapping_neg();
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        if max > 0 {
            // The whole batch is read, then released once: xdpilone's `ReadRx::release` advances
            // its read position a second time, so reading on after a release skips descriptors
            // (and reads slots the kernel has not written yet).
            let mut reader = self.rx.receive(max);
            for desc in reader.by_ref() {
                let base = desc.addr & self.frame_mask;
                // The kernel only hands out frames it got from the fill ring; the check keeps a
                // bad descriptor from becoming an out-of-bounds slice or a bogus fill entry.
                let ours = base
                    .checked_add(frame)
                    .is_some_and(|end| end <= self.area.len() as u64)
                    && desc.addr + u64::from(desc.len) <= base + frame;
                if ours {
                    batch.push((desc.addr as usize, desc.len as usize));
                    // On the free list before `f` runs: should `f` panic, the frames are still
                    // ours and go back to the fill ring on the next `recv`.
                    self.free.push(base);
                }
            }
            reader.release();
        }
        for &(start, len) in &batch {
            // SAFETY: the descriptor came from the receive ring after the ring's acquire load, so
            // the kernel is done writing this frame and leaves it to us until it is back in the
            // fill ring, which happens only after this loop; [start, start+len) lies inside one
            // frame of the area (checked above), and nothing else aliases that frame.
            let bytes =
                unsafe { std::slice::from_raw_parts(self.area.ptr().as_ptr().add(start), len) };
            f(bytes);
        }
        let n = batch.len();
        self.batch = batch;
        refill(&mut self.device, &mut self.free);
        self.wake_if_needed();
        n
    }

    /// Frames waiting in the receive ring (advisory: the kernel may be adding more).
    pub fn pending(&self) -> u32 {
        self.rx.available()
    }

    /// Waits until the receive ring holds at least one frame; then `recv` has work. Cancel-safe
    /// (fine in `select!`). Needs a tokio runtime with I/O enabled; the first call registers the
    /// socket with that runtime's reactor, so keep using one runtime per socket.
    pub async fn readable(&self) -> io::Result<()> {
        let fd = self.waiter()?;
        loop {
            if self.rx.available() > 0 {
                return Ok(());
            }
            // A zero-copy driver that ran dry waits for a kick before it looks at the fill ring.
            if self.device.needs_wakeup() {
                self.kick();
            }
            let mut guard = fd.readable().await?;
            if self.rx.available() > 0 {
                guard.retain_ready();
                return Ok(());
            }
            // Edge-triggered: readiness that a previous `recv` already consumed. Clearing is
            // race-free: tokio only clears if no newer event arrived since the guard was made.
            guard.clear_ready();
        }
    }

    fn waiter(&self) -> io::Result<&AsyncFd<WaitFd>> {
        if let Some(w) = self.waiter.get() {
            return Ok(w);
        }
        // epoll refuses a second registration of the fd, so two first callers must not race.
        let _once = self.waiter_init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = self.waiter.get() {
            return Ok(w);
        }
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        // SAFETY: `self.fd` stays open and the same socket for as long as the AsyncFd lives: the
        // AsyncFd is the first field of `self`, dropped before the socket is closed.
        let w = unsafe { AsyncFd::register_with_interest(WaitFd(self.fd), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(self.waiter.get_or_init(|| w))
    }

    fn wake_if_needed(&mut self) {
        if self.device.needs_wakeup() {
            self.kick();
        }
    }

    /// What libxdp does for a receive-side wakeup: an empty non-blocking recvfrom, which makes a
    /// zero-copy driver look at the fill ring again.
    fn kick(&self) {
        // SAFETY: a zero-length recvfrom with null buffer and address on our own open fd.
        unsafe {
            libc::recvfrom(
                self.fd,
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    pub fn stats(&self) -> Result<XskStats> {
        // SAFETY: xdp_statistics is plain integers; all-zero is a valid value.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `s` is writable for `len` bytes; the kernel writes at most `len` and tells how
        // many (older kernels fill only the first three fields, which leaves the rest zero).
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&raw mut s).cast::<c_void>(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).with_context(|| {
                format!(
                    "reading XDP_STATISTICS of interface index {} queue {}",
                    self.ifindex, self.queue
                )
            });
        }
        Ok(XskStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
        })
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` lives (it is closed only when the socket
        // inside is dropped).
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

impl fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd)
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("frames_waiting", &self.free.len())
            .finish_non_exhaustive()
    }
}

/// How long `open` keeps retrying a bind that finds the queue taken.
const BUSY_GRACE: Duration = Duration::from_millis(500);

/// Binds, waiting out a queue that is still held by a socket closed just before: the kernel frees
/// a socket's hold on its queue in a work item after `close`, so an immediate re-open (reload,
/// restart, an interface that came back) would otherwise fail with EBUSY. A failed bind leaves
/// the socket unbound and its rings in place, so the same socket can try again.
fn bind(umem: &Umem, user: &User) -> io::Result<()> {
    let deadline = Instant::now() + BUSY_GRACE;
    let mut pause = Duration::from_millis(1);
    let mut tries = 1u32;
    loop {
        match umem.bind(user).map_err(os) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
                tries += 1;
            }
            r => {
                if tries > 1 {
                    debug!(tries, ok = r.is_ok(), "AF_XDP bind retried on a busy queue");
                }
                return r;
            }
        }
    }
}

/// Moves as many frames from `free` to the fill ring as it has room for.
fn refill(device: &mut DeviceQueue, free: &mut Vec<u64>) {
    // xdpilone re-reads the kernel's consumer head only when its cached view shows no free slot
    // at all, so one reservation can come back smaller than the room there is; the next one
    // refreshes the view.
    while !free.is_empty() {
        let want = u32::try_from(free.len()).unwrap_or(u32::MAX);
        let mut w = device.fill(want);
        // Taken from the end, so the free list only ever shrinks from where it grows.
        let put = w.insert(free.iter().rev().copied()) as usize;
        w.commit();
        if put == 0 {
            return;
        }
        free.truncate(free.len() - put);
    }
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own; F_GETFD/F_SETFD touch only its descriptor flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind_mode(fd: RawFd) -> io::Result<BindMode> {
    let mut o = libc::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
    // SAFETY: `o` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            (&raw mut o).cast::<c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0 {
        BindMode::ZeroCopy
    } else {
        BindMode::Copy
    })
}

/// Receive queues of `iface`: the `rx-*` entries of `/sys/class/net/IFACE/queues`, at least 1.
/// Sysfs shows the network namespace it was mounted in, which is the agent's own unless a thread
/// has entered another one with `setns` (`ip netns exec` remounts it; a bare `setns` does not).
pub fn rx_queues(iface: &str) -> Result<u32> {
    if iface.is_empty() || iface.contains('/') || iface == "." || iface == ".." {
        bail!("{iface:?} is not an interface name");
    }
    let dir = format!("/sys/class/net/{iface}/queues");
    let entries = std::fs::read_dir(&dir).with_context(|| {
        format!(
            "counting the receive queues of {iface}: cannot read {dir} (no such interface in \
             the network namespace sysfs was mounted in?)"
        )
    })?;
    let mut n = 0u32;
    for e in entries {
        let e = e.with_context(|| format!("reading {dir}"))?;
        if e.file_name().to_string_lossy().starts_with("rx-") {
            n += 1;
        }
    }
    Ok(n.max(1))
}
