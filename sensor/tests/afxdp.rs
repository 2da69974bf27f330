//! The AF_XDP receive side (`mining_sensor::capture::afxdp`) on a veth pair between two network namespaces
//! this test creates (names `msxa<pid><tag>` / `msxb<pid><tag>`, deleted on drop):
//!
//! ```text
//!  ns msxa…: veth msxa… 198.18.9.1/30  <--->  veth msxb… 198.18.9.2/30 :ns msxb…
//!                                             (2 receive queues; XDP native, AF_XDP per queue)
//! ```
//!
//! Needs root and iproute2. Addresses are from 198.18.0.0/15 only; every wait has a deadline.
//! Run with `cargo test -p mining-sensor --test afxdp -- --test-threads=1`.

mod common;

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::fd::AsRawFd,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use common::{Namespaces, sh};
use mining_sensor::{
    bpf::{self, AttachedMode, Kernel},
    capture::afxdp::{BindMode, XskConfig, XskSocket, XskStats, ZeroCopy, rx_queues},
    config::{CaptureMode, Config, XdpModeChoice},
};
use sensor_common::Stat;

const ADDR_A: &str = "198.18.9.1";
const ADDR_B: &str = "198.18.9.2";
const PORT: u16 = 3333;
/// Receive queues of the veth pair: more than one, so that flows land on several sockets.
const QUEUES: u32 = 2;
const LOGIN: &[u8] = b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"x\",\"pass\":\"x\",\"agent\":\"XMRig/6.20.0\"}}\n";

/// Two namespaces joined by a veth pair, both ends up and addressed; deleted on drop, which also
/// deletes the veth pair and detaches anything attached to it.
struct Pair {
    ns_a: String,
    ns_b: String,
    dev_a: String,
    dev_b: String,
    _namespaces: Namespaces,
}

impl Pair {
    /// `tag` keeps the names of the tests of one process apart.
    fn new(tag: char) -> Self {
        let id = std::process::id();
        let (ns_a, ns_b) = (format!("msxa{id}{tag}"), format!("msxb{id}{tag}"));
        let p = Self {
            _namespaces: Namespaces::new(&[&ns_a, &ns_b]),
            dev_a: ns_a.clone(),
            dev_b: ns_b.clone(),
            ns_a,
            ns_b,
        };
        let q = QUEUES.to_string();
        sh(&[
            "ip",
            "link",
            "add",
            &p.dev_a,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &p.ns_a,
            "type",
            "veth",
            "peer",
            "name",
            &p.dev_b,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "netns",
            &p.ns_b,
        ]);
        for (ns, dev, addr) in [(&p.ns_a, &p.dev_a, ADDR_A), (&p.ns_b, &p.dev_b, ADDR_B)] {
            let cidr = format!("{addr}/30");
            sh(&["ip", "-n", ns, "addr", "add", &cidr, "dev", dev]);
        }
        for (ns, dev) in [(&p.ns_a, &p.dev_a), (&p.ns_b, &p.dev_b)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        p
    }
}

/// Runs `f` on a thread inside network namespace `ns`, with a sysfs of that namespace (what
/// `ip netns exec` does: a private mount namespace, /sys remounted), so that
/// `/sys/class/net` shows `ns`'s interfaces. A panic in `f` is the caller's panic.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    let t = thread::spawn(move || {
        common::enter(&ns);
        own_sysfs();
        f()
    });
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn own_sysfs() {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (root, sys, sysfs, none) = (c("/"), c("/sys"), c("sysfs"), c("none"));
    // SAFETY: unshare affects only this thread (CLONE_NEWNS implies CLONE_FS, allowed in threads).
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNS): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: valid C strings; MS_SLAVE keeps this thread's mounts from propagating to the host.
    let rc = unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "making / a slave mount: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: valid C strings; the mount namespace is this thread's own.
    unsafe {
        libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
    }
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(
            sysfs.as_ptr(),
            sys.as_ptr(),
            sysfs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mounting sysfs: {}", std::io::Error::last_os_error());
}

fn small(frames: u32, ring: u32) -> XskConfig {
    XskConfig {
        frame_count: frames,
        ring_size: ring,
        ..XskConfig::default()
    }
}

fn err_text(r: anyhow::Result<XskSocket>) -> String {
    format!("{:#}", r.expect_err("open should have failed"))
}

/// Sockets open, bind in copy mode on veth, report zero statistics, refuse what the kernel
/// refuses with messages that say which interface and queue and why. No XDP program needed.
#[test]
fn sockets_open_bind_and_explain_failures() {
    assert!(rx_queues("lo").unwrap() >= 1);
    assert!(rx_queues("msx-no-such-if").is_err());
    assert!(rx_queues("../lo").is_err());

    for bad in [
        XskConfig {
            frame_size: 1000,
            ..XskConfig::default()
        },
        XskConfig {
            ring_size: 1000,
            ..XskConfig::default()
        },
        XskConfig {
            frame_count: 0,
            ..XskConfig::default()
        },
    ] {
        let e = err_text(XskSocket::open(1, 0, &bad));
        assert!(e.contains("AF_XDP"), "{e}");
    }

    let pair = Pair::new('o');
    let dev = pair.dev_b.clone();
    in_netns(&pair.ns_b, move || {
        assert_eq!(rx_queues(&dev).unwrap(), QUEUES, "sysfs of the namespace");
        let ifindex = bpf::ifindex(&dev).unwrap();

        let cfg = small(64, 32);
        let mut s = XskSocket::open(ifindex, 0, &cfg).unwrap();
        // veth has no zero-copy (no ndo_xsk_wakeup): Auto must fall back.
        assert_eq!(s.mode(), BindMode::Copy);
        assert_eq!(s.mode().label(), "copy");
        assert_eq!((s.ifindex(), s.queue()), (ifindex, 0));
        assert!(s.as_raw_fd() >= 0);
        assert_eq!(s.stats().unwrap(), XskStats::default());
        assert_eq!(s.pending(), 0);
        assert_eq!(s.recv(64, |_| panic!("nothing was sent")), 0);
        // 64 frames, 32 fill slots: half wait in userspace, none is lost.
        assert_eq!(s.frames_waiting(), 32);

        let busy = err_text(XskSocket::open(ifindex, 0, &cfg));
        assert!(
            busy.contains("already bound")
                && busy.contains(&format!("interface index {ifindex} queue 0")),
            "{busy}"
        );
        let q1 = XskSocket::open(
            ifindex,
            1,
            &XskConfig {
                zero_copy: ZeroCopy::Never,
                ..cfg.clone()
            },
        )
        .unwrap();
        assert_eq!(q1.mode(), BindMode::Copy);
        let missing = err_text(XskSocket::open(ifindex, QUEUES, &cfg));
        assert!(missing.contains("no such receive queue"), "{missing}");
        let gone = err_text(XskSocket::open(999_999, 0, &cfg));
        assert!(gone.contains("interface index 999999"), "{gone}");

        // Closing a socket frees its queue, though the kernel does so a moment later (in a work
        // item): `open` waits that out.
        drop(s);
        let t = Instant::now();
        let again = XskSocket::open(ifindex, 0, &cfg).unwrap();
        eprintln!("re-opened queue 0 {:?} after closing it", t.elapsed());
        assert_eq!(again.mode(), BindMode::Copy);
    });
}

/// Source port and TCP payload of an Ethernet/IPv4/TCP frame to ADDR_B:PORT.
fn login_flow(frame: &[u8]) -> Option<(u16, &[u8])> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?)
        != ADDR_B.parse::<Ipv4Addr>().ok()?
    {
        return None;
    }
    let tcp = ip.get(ihl..total)?;
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let doff = usize::from(tcp.get(12)? >> 4) * 4;
    (dport == PORT).then_some((sport, tcp.get(doff..)?))
}

/// A miner in namespace `ns`: bash that, for each line on its stdin, opens a TCP connection to
/// the pool through /dev/tcp, sends one XMRig-style login and closes. Bounded by `timeout`.
fn miner(ns: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "60", "bash", "-c"])
        .arg(format!(
            "while read -r _; do exec 3<>/dev/tcp/{ADDR_B}/{PORT} || exit 1; \
             printf '%s' \"$LOGIN\" >&3; exec 3>&-; done"
        ))
        .env("LOGIN", std::str::from_utf8(LOGIN).unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip netns exec bash")
}

/// Asks the miner for one more connection.
fn connect(miner: &mut Child) {
    writeln!(miner.stdin.as_mut().expect("miner stdin"), "go").expect("writing to the miner");
}

/// Ends the miner (closing its stdin) and waits for it, until `deadline`.
fn finish(mut c: Child, deadline: Instant) {
    drop(c.stdin.take());
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(st.success(), "miner: {st}: {err}");
            return;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("the miner did not finish in time");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A pool that accepts and reads until `stop` (or a minute, should the test fail before saying
/// so); returns the bytes it received per connection.
fn pool(listener: TcpListener, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Vec<u8>>> {
    listener.set_nonblocking(true).unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    thread::spawn(move || {
        let mut conns = Vec::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true).unwrap();
                    conns.push(s);
                    got.push(Vec::new());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept: {e}"),
            }
            for (s, buf) in conns.iter_mut().zip(got.iter_mut()) {
                let mut b = [0u8; 4096];
                if let Ok(n) = s.read(&mut b) {
                    buf.extend_from_slice(&b[..n]);
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        got
    })
}

type Frames = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

/// Source ports of the flows whose exact login arrived.
fn login_flows(frames: &Frames) -> HashSet<u16> {
    frames
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, f)| login_flow(f))
        .filter(|(_, p)| *p == LOGIN)
        .map(|(port, _)| port)
        .collect()
}

/// What one socket's receive task saw.
struct Received {
    queue: u32,
    frames: usize,
    wakeups: usize,
    stats: XskStats,
    waiting: usize,
}

/// Receives on `s` (woken by `readable`) into `frames` until `done`; the socket closes when the
/// task ends.
async fn receive(mut s: XskSocket, frames: Frames, done: Arc<AtomicBool>) -> Received {
    let (mut n, mut wakeups) = (0, 0);
    let q = s.queue();
    while !done.load(Ordering::Relaxed) {
        // Bounded, so that `done` is seen on a quiet socket.
        match tokio::time::timeout(Duration::from_millis(100), s.readable()).await {
            Ok(r) => r.expect("readable"),
            Err(_) => continue,
        }
        wakeups += 1;
        // Every other time one frame only: the rest must wait in the ring, and `readable` must
        // return at once for them.
        let max = if wakeups % 2 == 1 { 1 } else { 64 };
        let got = s.recv(max, |f| frames.lock().unwrap().push((q, f.to_vec())));
        assert!(got > 0, "queue {q}: readable, yet nothing to receive");
        n += got;
    }
    Received {
        queue: q,
        frames: n,
        wakeups,
        stats: s.stats().expect("XDP_STATISTICS"),
        waiting: s.frames_waiting(),
    }
}

/// The sensor in `tap` mode on the veth end in namespace B, an AF_XDP socket on each of its
/// receive queues: every login sent from namespace A arrives on a socket byte for byte, through
/// UMEMs of 8 frames (so frames are recycled: 20 logins over 2 queues put at least 10 frames
/// through one of them), while a candidate never finds a queue without its socket; closing the
/// sockets takes them out of `XSKS`, after which candidates pass to the stack.
#[test]
fn candidates_arrive_on_the_sockets() {
    const FLOWS: usize = 20;
    const FRAMES: u32 = 8;
    /// Per login: the budget of 2 gives the login and its first retransmission (~200 ms later).
    const PER_FLOW: Duration = Duration::from_secs(5);

    let pair = Pair::new('c');
    let mut cfg = Config::embedded_default();
    cfg.inspect.capture_mode = CaptureMode::Tap;
    cfg.inspect.budget = 2;
    let mut k = Kernel::load_with_ranges(&cfg).expect("loading the sensor in tap mode");
    let mut xsks = k.take_xsks().unwrap();

    let (dev, ns_a) = (pair.dev_b.clone(), pair.ns_a.clone());
    let (k, frames, (received, no_socket), pool_got) = in_netns(&pair.ns_b, move || {
        let mut k = k;
        let (_link, mode) = k.attach(&dev, XdpModeChoice::Native).unwrap();
        assert_eq!(mode, AttachedMode::Native);
        let ifindex = bpf::ifindex(&dev).unwrap();
        let queues = rx_queues(&dev).unwrap();
        assert_eq!(queues, QUEUES);
        let mut socks = Vec::new();
        for q in 0..queues {
            // Open, close and re-open at once, as a reload does: the second open must wait out
            // the kernel's deferred release of the queue, and then receive like the first.
            drop(XskSocket::open(ifindex, q, &small(FRAMES, FRAMES)).unwrap());
            let s = XskSocket::open(ifindex, q, &small(FRAMES, FRAMES)).unwrap();
            assert_eq!(s.mode(), BindMode::Copy, "veth has no zero-copy");
            // The interface has no counter slot registered (slot 0), so queue q's key is q.
            xsks.set(q, s.as_raw_fd(), 0).unwrap();
            socks.push(s);
        }

        let stop = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind(SocketAddr::from((
            ADDR_B.parse::<Ipv4Addr>().unwrap(),
            PORT,
        )))
        .unwrap();
        let server = pool(listener, stop.clone());
        let mut client = miner(&ns_a);

        let frames: Frames = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let received = rt.block_on(async {
            let tasks: Vec<_> = socks
                .into_iter()
                .map(|s| tokio::spawn(receive(s, frames.clone(), done.clone())))
                .collect();
            // One login at a time, each awaited: the test checks arrival and recycling, not how
            // many frames 8-frame UMEMs can buffer while this thread is not scheduled.
            for i in 0..FLOWS {
                connect(&mut client);
                let deadline = Instant::now() + PER_FLOW;
                while login_flows(&frames).len() <= i && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(
                    login_flows(&frames).len(),
                    i + 1,
                    "login {} of {FLOWS} did not arrive on a socket within {PER_FLOW:?}",
                    i + 1
                );
            }
            // Time for the retransmissions within the budget. Time passes on purpose: the check
            // below is that none of them found a queue without its socket, which has no event
            // to wait for.
            tokio::time::sleep(Duration::from_millis(500)).await;
            // Read while every queue still has its socket.
            let no_socket = k.stat(Stat::NoSocket).unwrap();
            done.store(true, Ordering::Relaxed);
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            (out, no_socket)
        });

        // The sockets closed with their tasks, which empties XSKS: a new flow's login finds no
        // socket and passes to the stack.
        let before = k.stat(Stat::NoSocket).unwrap();
        connect(&mut client);
        let deadline = Instant::now() + PER_FLOW;
        while k.stat(Stat::NoSocket).unwrap() == before && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            k.stat(Stat::NoSocket).unwrap() > before,
            "no candidate missed a socket after the sockets closed"
        );
        finish(client, Instant::now() + Duration::from_secs(10));

        // Past the budget, retransmissions pass to the stack: the pool gets the logins too. Time
        // passes on purpose (the retransmission timer's), and what the pool got is reported,
        // not asserted.
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        let pool_got = server.join().unwrap();
        let frames = std::mem::take(&mut *frames.lock().unwrap());
        (k, frames, received, pool_got)
    });

    let logins = frames
        .iter()
        .filter(|(_, f)| login_flow(f).is_some_and(|(_, p)| p == LOGIN))
        .count();
    let pool_logins = pool_got.iter().filter(|b| b.as_slice() == LOGIN).count();
    for r in &received {
        eprintln!(
            "queue {}: {} frames on {} wakeups, {} frames left in userspace; {:?}",
            r.queue, r.frames, r.wakeups, r.waiting, r.stats
        );
    }
    eprintln!(
        "{} frames, {logins} with the exact login; kernel: {} candidates, {no_socket} without a \
         socket while all were open, {} in the end; the pool got {pool_logins} logins on {} \
         connections",
        frames.len(),
        k.stat(Stat::Candidates).unwrap(),
        k.stat(Stat::NoSocket).unwrap(),
        pool_got.len(),
    );

    // Every candidate here is a login segment (or its retransmission): any other frame — empty,
    // cut, someone else's bytes — would be a descriptor read wrongly.
    assert_eq!(
        logins,
        frames.len(),
        "frames other than the exact login arrived"
    );
    assert!(logins >= FLOWS, "{logins} login frames for {FLOWS} logins");
    assert_eq!(
        received.iter().map(|r| r.frames).sum::<usize>(),
        frames.len()
    );
    for r in &received {
        // A few frames in flight at a time, 8 per queue: a drop means frames went missing.
        assert_eq!(
            (
                r.stats.rx_dropped,
                r.stats.rx_invalid_descs,
                r.stats.rx_ring_full
            ),
            (0, 0, 0),
            "queue {}: {:?}",
            r.queue,
            r.stats
        );
        assert_eq!(
            r.stats.rx_fill_ring_empty_descs, 0,
            "queue {}: fill ring ran dry",
            r.queue
        );
        // As many frames as fill-ring slots: every frame went back to the fill ring.
        assert_eq!(r.waiting, 0, "queue {} kept frames", r.queue);
    }
    let most = received.iter().map(|r| r.frames).max().unwrap();
    assert!(
        most > FRAMES as usize,
        "no queue received more frames ({most}) than its UMEM holds ({FRAMES})"
    );
    assert_eq!(
        no_socket, 0,
        "a candidate found no socket while every queue had one"
    );
}
