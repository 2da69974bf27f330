//! mining-sensor's XDP program. It never drops or alters a packet: every path returns XDP_PASS.
//!
//! Per packet: parse Ethernet, up to `MAX_VLAN_TAGS` 802.1Q/802.1ad tags, IPv4 (options) or IPv6
//! (extension headers), then TCP/UDP; look up source and destination in the watched-range LPM tries
//! (the value is the set of configured ranges containing the address), count packets and IP bytes
//! per interface slot, range and direction, and (watched packets only) per range, direction and
//! neighbour, the one named by the frame's outermost VLAN tag or Ethernet address; on TCP payloads
//! run the Stratum scanner from `sensor-common` and count Stratum packets and, once per flow,
//! Stratum flows.
//!
//! Candidates for deep inspection (every packet of a known Stratum flow that may carry JSON, for
//! the activity measure; the first data packets of a suspect flow, at most `INSPECT_BUDGET` per
//! flow and reason; none when `INSPECT_BUDGET` is 0) go to userspace: in `tap` capture mode they
//! are redirected to an AF_XDP socket (a mirror port's copy of traffic is not needed by the
//! stack); in `inline` mode they pass like every other packet and their first bytes are copied to
//! `SAMPLES`.
//! Nothing else is ever dropped or altered.
//!
//! Layout: this file holds the entry points (`sensor`, `sensor_compat`, the benchmarks'
//! `bench_*`) and the per-packet flow (`try_sensor`, `tcp`); `maps` every map and global shared
//! with the agent; `parse` the header walk; `count` the range lookup and the counters; `signals`
//! the suspect signals (DNS, TLS, Stratum V2, pool endpoints); `scan` the Stratum scan and the flow
//! table; `http` the body of an HTTP message, scanned as the segment; `hello` a ClientHello split
//! over segments; `opening` a new flow's
//! first message held over its segments; `flags` the segment's facts carried past the scan; `sv2` Stratum V2 shares by size; `events` the agent's
//! event ring; `capture` the hand-over to deep inspection; `replay` the batch entry of
//! `mining-sensor replay`; `words` copies and zeroing without `memmove` or `memset` calls;
//! `pools` the pool endpoints a new flow's login is decided at its method to; `recent` the marks of
//! recent flow slots.
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]
// `#[inline(always)]` on a closure (`tcp`'s `flag`).
#![feature(stmt_expr_attributes)]

mod capture;
mod count;
mod events;
mod flags;
mod hello;
mod http;
mod maps;
mod opening;
mod parse;
mod pools;
mod recent;
mod replay;
mod scan;
mod signals;
mod sv2;
mod tunnel;
mod words;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use aya_log_ebpf::debug;
use sensor_common::{
    DIR_FROM, DIR_TO, POOL_BIT, ParseEvent, RANGE_MASK, Reason, dns, websocket,
    websocket::DEFLATED_TEXT_FIN as DEFLATED,
};

use crate::{
    capture::capture,
    count::{count_traffic, frame_head, iface_slot, lookup_ranges, peers_of},
    maps::{SCRATCH, bump, decap, inspect_budget, replay_batch},
    parse::{IPPROTO_TCP, IPPROTO_UDP, Ip, byte, load_into, load_window, parse_ip, ptr_at},
    recent::recent_stratum,
    replay::{ingress, replay_enter, replay_next},
    scan::{CANDIDATE, NEW_FLOW, flow_unknown, inspect_window, inspect_window_compat, packet_flow},
    signals::{
        HELLO_NO_SNI, client_hello, dns_query, load_hello, may_be_noise, noise_handshake,
        pool_port, pool_sni, shape_record, shape_start, suspect,
    },
    words::zero,
};

/// The largest header offset the transport code is handed (see `try_sensor`).
const MAX_OFFSET: u64 = 0x3fff;

/// The program: its loops (the Stratum scan, the DNS name walk) are `may_goto` loops, which
/// kernels from 6.9 on verify and run.
#[xdp]
#[inline(always)]
pub fn sensor(ctx: XdpContext) -> u32 {
    run::<false>(ctx)
}

/// The same program for kernels before 6.9, which know no `may_goto`: its loops are `bpf_loop`
/// callbacks (Linux 5.18 on), each call a few steps. Up to about 10% slower on a Stratum packet; the
/// agent loads it only when the kernel refuses `sensor`.
#[xdp]
#[inline(always)]
pub fn sensor_compat(ctx: XdpContext) -> u32 {
    run::<true>(ctx)
}

/// The whole program, with `bpf_loop` loops when `COMPAT`.
#[inline(always)]
fn run<const COMPAT: bool>(ctx: XdpContext) -> u32 {
    let replay = replay_batch();
    if replay && let Err(code) = replay_enter(&ctx) {
        return code;
    }
    // A mirrored frame in a tunnel `decapsulate` names is read as the frame inside (`tunnel`).
    if decap() != 0 {
        let at = tunnel::tunnel_inner(ctx.ctx);
        if at != 0 {
            tunnel::enter(&ctx, at);
        }
    }
    // Whatever the parser concluded, the packet goes on untouched, unless it is a candidate for
    // deep inspection on a tap.
    let action = match try_sensor::<COMPAT>(&ctx) {
        Ok(true) => capture(&ctx),
        _ => xdp_action::XDP_PASS,
    };
    // Its tunnel's headers back in front of it, unless its inner frame goes to a tap's socket.
    if decap() != 0 {
        tunnel::leave(&ctx, action != xdp_action::XDP_REDIRECT);
    }
    // One call site of the per-packet code for both paths: called from two, LLVM made it a
    // subprogram, a call more for every live packet (see BENCHMARKS.md). Its size alone did the
    // same later, hence `#[inline(always)]` down from the entry points (a unit test of the agent
    // checks the built object).
    if replay {
        return replay_next(&ctx);
    }
    action
}

/// The benchmarks' baseline (`cargo xtask bench`): the cheapest possible XDP program, run over the
/// same packets through the same BPF_PROG_TEST_RUN path, so that the sensor's cost is reported as
/// time over this. Never attached.
#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmarks' traffic generator: run with BPF_F_TEST_XDP_LIVE_FRAMES on one end of a veth
/// pair, it transmits each frame to the other end as an XDP frame. Never attached.
#[xdp]
pub fn bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// Parses and counts the packet; `Ok(true)` when it is a candidate for deep inspection.
/// Inlined by force: once the per-packet code grew past LLVM's inlining threshold it became a
/// subprogram, a BPF-to-BPF call (its frame and saved registers) more for every packet, unwatched
/// ones included (about 10 ns on this machine; see README, "Benchmarks").
#[inline(always)]
fn try_sensor<const COMPAT: bool>(ctx: &XdpContext) -> Result<bool, ()> {
    bump(ParseEvent::Seen);
    let Some(mut ip) = parse_ip(ctx) else {
        return Ok(false);
    };
    // The offsets go through memory, so that the verifier sees them as bounded unknowns: each
    // path through the link and network headers (VLAN tags, IPv4 options, IPv6 extension
    // headers) otherwise reached the transport code with its own known offsets, and the
    // transport code was verified once per path.
    if ip.l4 as u64 > MAX_OFFSET {
        // Not in a frame's linear part: nothing past the network header can be read.
        ip.l4 = 0;
    } else if ip.end as u64 > MAX_OFFSET {
        // A packet longer than a frame's linear part can be (a jumbo frame's fragments, a
        // capture's segment merged by GRO, 65,535 bytes at most): its transport header and first
        // bytes are read as any packet's, up to here. Ending the transport code's view at once
        // lost a merged segment of more than 16 KB of shares.
        ip.end = MAX_OFFSET as usize;
    }
    if let Some(s) = SCRATCH.get_ptr_mut(0) {
        // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
        unsafe {
            let o = core::ptr::addr_of_mut!((*s).offsets);
            core::ptr::write_volatile(o, [ip.l4 as u64, ip.end as u64]);
            let [l4, end] = core::ptr::read_volatile(o);
            // The mask is what the verifier sees as the bound (the test above, on the values
            // written, is what makes it exact).
            ip.l4 = (l4 & MAX_OFFSET) as usize;
            ip.end = (end & MAX_OFFSET) as usize;
        }
    }

    let slot = iface_slot(ctx);
    let (src_found, dst_found) = lookup_ranges(&ip);
    // The pool bit rides in the same trie values; it is a signal, never a range.
    let pool = (src_found | dst_found) & POOL_BIT != 0;
    let (src_ranges, dst_ranges) = (src_found & RANGE_MASK, dst_found & RANGE_MASK);
    if src_ranges | dst_ranges != 0 {
        // Only watched packets pay for the neighbour lookup.
        let (w0, w1) = frame_head(ctx);
        let peers = peers_of(w0, w1);
        if src_ranges != 0 {
            count_traffic(
                slot as u64,
                src_ranges,
                DIR_FROM as u64,
                ip.bytes,
                peers & 0xff,
            );
        }
        if dst_ranges != 0 {
            count_traffic(slot as u64, dst_ranges, DIR_TO as u64, ip.bytes, peers >> 8);
        }
    }

    if ip.l4 == 0 {
        return Ok(false);
    }
    if ip.proto == IPPROTO_TCP {
        tcp::<COMPAT>(ctx, &ip, src_ranges, dst_ranges, pool)
    } else if ip.proto == IPPROTO_UDP {
        let Ok(h) = ptr_at::<[u8; 8]>(ctx, ip.l4) else {
            bump(ParseEvent::TruncatedUdp);
            return Ok(false);
        };
        if ip.l4 + 8 > ip.end {
            bump(ParseEvent::TruncatedUdp);
            return Ok(false);
        }
        // SAFETY: bounds checked by ptr_at.
        let h = unsafe { &*h };
        let (sport, dport) = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        );
        if dport == dns::DNS_PORT {
            dns_query::<COMPAT>(ctx, &ip, sport, dport, src_ranges, dst_ranges);
        }
        if pool {
            return Ok(suspect(
                ctx,
                &ip,
                sport,
                dport,
                IPPROTO_UDP,
                Reason::PoolEndpoint,
                src_ranges,
                dst_ranges,
                ip.l4 + 8 < ip.end,
            ));
        }
        Ok(false)
    } else {
        bump(ParseEvent::OtherTransport);
        Ok(false)
    }
}

#[inline(always)]
fn tcp<const COMPAT: bool>(
    ctx: &XdpContext,
    ip: &Ip,
    src_ranges: u64,
    dst_ranges: u64,
    pool: bool,
) -> Result<bool, ()> {
    let Ok(h) = ptr_at::<[u8; 20]>(ctx, ip.l4) else {
        bump(ParseEvent::BadTcpHeader);
        return Err(());
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    let doff = ((h[12] >> 4) as usize) * 4;
    let payload = ip.l4 + doff;
    if doff < 20 || payload > ip.end {
        bump(ParseEvent::BadTcpHeader);
        return Err(());
    }
    let plen = ip.end - payload;
    let sport = u16::from_be_bytes([h[0], h[1]]);
    let dport = u16::from_be_bytes([h[2], h[3]]);
    let seq = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    // The suspect signals of this segment's flow, each counted once per flow. Inlined at each
    // of its calls: left to LLVM, an unrelated change once made a subprogram of it, whose
    // captures by reference took the program's stack past the verifier's 512 bytes.
    let flag = #[inline(always)]
    |reason| {
        suspect(
            ctx,
            ip,
            sport,
            dport,
            IPPROTO_TCP,
            reason,
            src_ranges,
            dst_ranges,
            plen > 0,
        )
    };
    let mut candidate = false;
    if pool {
        candidate |= flag(Reason::PoolEndpoint);
    }
    if plen == 0 {
        return Ok(candidate);
    }
    // The first payload byte decides what else is looked at. Two bytes straight from the packet
    // when the frame has them (the common case), else the helper (see `byte`).
    let first = match ptr_at::<[u8; 2]>(ctx, payload) {
        // SAFETY: bounds checked by ptr_at.
        Ok(p) => unsafe { (*p)[0] },
        Err(()) => byte(ctx, payload)?,
    };
    // Stratum V2 has no readable content: its Noise handshake opens with exactly 64 bytes from the
    // client and 234 from the server, neither opening as TLS or JSON does (`may_be_noise`). On a
    // pool port either size is the signal; elsewhere (443 included) the pair, the answer on the
    // same flow (`noise_handshake`).
    // (Sizes compared through `sv2::is_size`, so that the verifier does not learn `plen` and walk
    // the rest of the path once more for each size.)
    let (hello, answer) = (sv2::is_size(plen, 64), sv2::is_size(plen, 234));
    let noise = (hello || answer) && may_be_noise(ctx, payload, first);
    let on_pool_port = noise && ((hello && pool_port(dport)) || (answer && pool_port(sport)));
    if on_pool_port || (noise && noise_handshake(ip, (sport, dport), plen)) {
        candidate |= flag(Reason::StratumV2);
        // The client sent the 64 bytes, the server the 234: its later frames of a share's size
        // are shares (`sv2`).
        sv2::remember(ip, sport, dport, hello);
    } else if sv2::is_size(plen, sensor_common::sv2::SHARE_FRAME) {
        sv2::share(ip, sport, dport, seq, src_ranges | dst_ranges);
    } else if sv2::may_be_sized(plen) && (src_ranges | dst_ranges != 0 || pool || pool_port(dport))
    {
        // Extended shares' sizes are common ones, and so are several shares': only flows that
        // involve a watched range or go to a pool address or port pay the lookup (the longer
        // segments once some flow's share size is known). A share goes to the pool: its source
        // port is not looked at, so that other traffic of those sizes pays only the destination
        // port's bit, which it reads below anyway.
        sv2::sized(ip, sport, dport, seq, plen, src_ranges | dst_ranges);
    }
    // A TLS handshake record: a ClientHello without server_name towards a pool, or one naming a
    // server in a pool domain on any port, is a signal. The record type first: most TCP payload is
    // TLS application data (23) and pays nothing more; then the handshake type, so that only
    // ClientHellos (one a connection) are copied and walked.
    // A segment may continue a ClientHello split over segments (`hello`): its flow's slot tells,
    // a key and one array read. Towards a pool (its port or address) any segment but a handshake
    // record's looks; elsewhere only one whose first byte is not a TLS record's type (20-23), so
    // that HTTPS application data pays nothing for it (a continuation opening with one of those
    // 4 bytes in 256 is not joined there).
    let to_pool = pool || pool_port(dport);
    if ((to_pool && first != 22) || !(20..=23).contains(&first))
        && let Some(hello) = hello::continued(ctx, ip, sport, dport, seq, payload, plen)
    {
        if hello == HELLO_NO_SNI {
            if to_pool {
                candidate |= flag(Reason::TlsNoSni);
            }
        } else if hello != 0 && pool_sni::<COMPAT>(hello) {
            candidate |= flag(Reason::TlsPoolSni);
        }
        return Ok(candidate);
    }
    // The shape of a TLS flow over time (`encrypted_stratum`, decided by the agent) is recorded
    // only for flows that involve a watched range, a pool address or a pool port: unwatched HTTPS
    // pays two bitmap reads per application-data segment (the destination port's, read once
    // above, and the source port's) and no lookup.
    let shaped = src_ranges | dst_ranges != 0 || to_pool;
    // The rest of a WebSocket frame that ran past its segment (masked bytes, no header: `cut`
    // and `frame_rest` below) may open with any byte, among them a TLS record's type or a
    // frame's first byte, which the branches below take as theirs: on the flows above, such a
    // segment pays the flow key and its slot's read, and goes to deep inspection when its flow
    // waits for it (`opening_follow`), as a rest opening with any other byte does further down.
    // A TLS record's header (its type, then version 3.0 to 3.4) pays a compare more instead: the
    // HTTPS of a watched range is its most common traffic, and a rest opens so 5 times in 2^24.
    // On other flows, only while a frame's rest is followed on one of them
    // (`opening::frames_followed`, one array read otherwise). The first byte is compared first:
    // a segment that opens with no such byte reads neither the pool-port bit nor that array
    // here, and those that are not printable read the array once, further down.
    if taken_before_follow(first)
        && (shaped || pool_port(sport) || opening::frames_followed())
        && !tls_header(ctx, payload)
    {
        let (flow, src_is_lo) = packet_flow(ip, sport, dport).ok_or(())?;
        if recent::opening_held(flow) && opening::waits_for(seq, src_is_lo, plen) {
            return Ok(candidate || inspect_budget() > 0);
        }
    }
    if first == 23 {
        if plen >= 5 && (shaped || pool_port(sport)) {
            shape_record(ctx, ip, sport, dport, payload);
        }
        return Ok(candidate);
    }
    if first == 22 {
        if plen < 6 || handshake_type(ctx, payload)? != 1 {
            return Ok(candidate);
        }
        if shaped {
            shape_start(ctx, ip, sport, dport, src_ranges, dst_ranges);
        }
        let n = load_hello(ctx, payload, plen)?;
        let mut hello = client_hello(n as u64);
        // Cut by the segment's end, on any port: decided from this segment if it can be, else
        // held for the next (`hello`): one map update per TLS connection whose ClientHello is
        // split before its server_name.
        if hello == 0 && n == plen {
            hello = hello::first(ip, sport, dport, n, seq.wrapping_add(plen as u32));
        }
        if hello == HELLO_NO_SNI {
            if to_pool {
                candidate |= flag(Reason::TlsNoSni);
            }
        } else if hello != 0 && pool_sni::<COMPAT>(hello) {
            candidate |= flag(Reason::TlsPoolSni);
        }
        return Ok(candidate);
    }
    // A WebSocket text frame compressed with permessage-deflate (RSV1): its DEFLATE stream runs
    // over every earlier message of its direction, which the program cannot inflate. On a flow
    // that involves a watched range, a pool address or a pool port it goes to deep inspection,
    // which inflates each direction's messages in order and opens the flow if they are Stratum
    // (`inspect::deflate`); no Stratum packet is counted here. Other traffic pays this compare.
    // A control frame (a pong, a ping) written just before a compressed message shares its
    // segment: on the same flows, such a segment goes too when the byte after the control frame
    // opens a compressed text frame (a lone ping or pong does not), so that no message of the
    // direction's DEFLATE stream is missed. A message sent in several frames (a text frame
    // without FIN, continuation frames: `websocket::is_fragment`) is joined by deep inspection
    // too (`inspect::fragments`): a segment that opens with such a frame, whole in it, or with a
    // control frame before one, goes on the same flows. A compressed frame longer than its
    // segment (a message padded with bytes that do not compress) goes on in the next segments
    // with no header, in either direction: its rest is followed to its end as a client's
    // matched frame's is (`opening_follow_start`), and deep inspection joins it.
    if websocket_branch(first) {
        let handed = (shaped || pool_port(sport))
            && websocket_handed(ctx.ctx, payload as u64, plen as u64, first as u64) != 0;
        if handed && first == DEFLATED && inspect_budget() > 0 {
            let rest = frame_rest(ctx.ctx, payload as u64, plen as u64);
            if rest > 0 {
                let (_, from_lo) = packet_flow(ip, sport, dport).ok_or(())?;
                let next_seq = seq.wrapping_add(plen as u32) as u64;
                opening::opening_follow_start(next_seq, from_lo as u64, rest, 0);
            }
        }
        return Ok(candidate || (inspect_budget() > 0 && handed));
    }
    // Stratum inside a WebSocket text frame (browser-miner bridges): the frame's payload, unmasked,
    // is what is scanned, and its first byte what decides.
    let (segment, segment_len) = (payload, plen);
    let (mut payload, mut plen, mut first, mut mask) = (payload, plen, first, 0u64);
    // Whether the segment is scanned from its first byte (no frame or HTTP head before): only
    // such a segment is held as, or joined to, a new flow's opening.
    let mut plain = true;
    if first == websocket::TEXT_FIN {
        plain = false;
        let Some((h, unmasked)) = websocket_frame(ctx, payload, plen) else {
            return Ok(candidate);
        };
        payload += h.len;
        plen -= h.len;
        first = unmasked;
        mask = h.key64();
    }
    // Mining JSON-RPC in an HTTP message's body (Ethereum getwork over HTTP POST, the pool's
    // answer in the response): the body, when it begins in the window, is read as the segment; a
    // chunked body from its first chunk's data, also when it opens a segment after its head's
    // (only on a flow that involves a watched range, a pool address or a pool port: other
    // traffic pays the first byte's compares, and one that opens with a hex digit the source
    // port's bit). A body whose JSON runs on in a next chunk goes to deep
    // inspection, which de-chunks it, when the scan finds nothing in its first chunk.
    let mut chunks = false;
    let body = if first == b'P' || first == b'H' {
        http::body(ctx, payload, plen)
    } else if first.is_ascii_hexdigit() && mask == 0 && (shaped || pool_port(sport)) {
        http::chunk_segment(ctx, payload, plen)
    } else {
        None
    };
    if let Some(b) = body {
        payload += b.at;
        plen -= b.at;
        first = b.first;
        chunks = b.more;
        plain = false;
    }
    // Which segments are scanned, so that non-mining traffic pays almost nothing:
    // - one whose first byte is `{` can start a JSON message: always;
    // - one that continues a message (printable first byte) only on a flow already known to be
    //   Stratum, where a later message may start after a newline: an array read (`RECENT`) and,
    //   when a Stratum packet passed on a flow of its slot lately, one flow-table lookup;
    // - anything else (TLS records, binary protocols): never. But the rest of a new flow's first
    //   WebSocket frame that ran past its segment with nothing recognised in it (`cut` below)
    //   opens the next segments with masked bytes and no header: on a flow that involves a
    //   watched range, a pool address or a pool port, a segment whose first byte is not
    //   printable pays the flow key and its slot's read to be handed over as one
    //   (`opening_follow`); on any other flow only while a frame's rest is followed on one
    //   (`opening::frames_followed`: one array read otherwise, at most 10 s after the last).
    let printable =
        (0x20..0x7f).contains(&first) || first == b'\t' || first == b'\r' || first == b'\n';
    if !printable && !(plain && (shaped || pool_port(sport) || opening::frames_followed())) {
        return Ok(candidate);
    }
    // Only segments that may carry JSON pay for the flow key.
    let (flow, src_is_lo) = packet_flow(ip, sport, dport).ok_or(())?;
    if !printable {
        return Ok(candidate
            || (inspect_budget() > 0
                && recent::opening_held(flow)
                && opening::waits_for(seq, src_is_lo, plen)));
    }
    // Blanks may come before a message's `{` (pools' JSON parsers skip them; a miner hiding from
    // signature matching sends them): such a segment can open a message too.
    let opens = first == b'{' || matches!(first, b' ' | b'\t' | b'\r' | b'\n');
    // A new flow's first message held from its earlier segment (split before any marker): the
    // segment that continues it is scanned after it (`opening`).
    let held_slot = plain && recent::opening_held(flow);
    let joined = if held_slot {
        opening::opening_join(seq as u64, src_is_lo as u64) as usize
    } else {
        0
    };
    // The next segments of a new flow whose first message ran past the window unrecognised
    // (`long` below) go to deep inspection as they are, which joins the message.
    if held_slot && joined == 0 && opening::waits_for(seq, src_is_lo, plen) {
        return Ok(candidate || inspect_budget() > 0);
    }
    if !opens && joined == 0 && (!recent_stratum(flow) || flow_unknown(&flow.key)) {
        // The first frame of a compressed message sent in several frames opens with `A`: on a
        // flow not known to be Stratum that involves a watched range, a pool address or a pool
        // port, it goes to deep inspection as a fragment does, whole in the segment (on a known
        // flow a segment opening with it is a candidate below, as any continuation).
        let handed = first == websocket::DEFLATED_TEXT
            && plain
            && (shaped || pool_port(sport))
            && websocket_handed(ctx.ctx, payload as u64, plen as u64, first as u64) != 0;
        return Ok(candidate || (inspect_budget() > 0 && handed));
    }

    let (n, whole) = if joined != 0 {
        opening::load_after(ctx, payload, plen, joined)?
    } else {
        let n = load_window(ctx, payload, plen)?;
        (n, n == plen)
    };
    let settle = plain && (opens || joined != 0);
    let flags = (whole as u64 * flags::WHOLE)
        | (src_is_lo as u64 * flags::FROM_LO)
        | (settle as u64 * flags::SETTLE)
        | (chunks as u64 * flags::CHUNKS)
        | (opens as u64 * flags::OPENS)
        | (candidate as u64 * flags::SIGNALLED)
        | (!plain as u64 * flags::NOT_PLAIN)
        | ((!plain && (shaped || pool_port(sport))) as u64 * flags::WATCHED)
        | (held_slot as u64 * flags::HELD_SLOT)
        | (segment as u64 & 0xffff) << flags::SEGMENT_AT
        | (segment_len as u64 & 0xffff) << flags::SEGMENT_LEN;
    // The segment's end, header or head included.
    let next_seq = seq.wrapping_add(segment_len as u32) as u64;
    let [n, joined, flags, next_seq] = opening::forget([n as u64, joined as u64, flags, next_seq]);
    if mask != 0
        && let Some(scratch) = SCRATCH.get_ptr_mut(0)
    {
        // SAFETY: map value pointer, valid for the program run; only this CPU uses it.
        unsafe { (*scratch).buf.xor(mask) };
    }
    let origin = ingress(ctx) as u64 | (src_is_lo as u64) << 32;
    let found = if COMPAT {
        inspect_window_compat(n, src_ranges, dst_ranges, origin)
    } else {
        inspect_window(n, src_ranges, dst_ranges, origin)
    };
    if found & NEW_FLOW != 0 {
        debug!(
            ctx,
            "new stratum flow: dialect {} ports {} -> {}",
            (found & 0xff) as u8,
            sport,
            dport
        );
    }
    // An undecided opening of a new flow is held (or extended, or dropped once decided).
    let settled = if flags & flags::SETTLE != 0 {
        opening::opening_settle(found, n, joined, next_seq, flags)
    } else {
        0
    };
    let held = settled == opening::HELD;
    // A segment the scan did not recognise (a plain reply such as `{"id":4,"result":true}`, a
    // message's continuation) is a candidate too when its flow is a known Stratum flow: a
    // continuation got here only on one; a segment that opens a message pays the `RECENT` read
    // and, only when its slot is recent, the flow-table lookup.
    // A segment that opens a JSON message running past the window with nothing recognised in
    // it (a login padded with an unknown key of hundreds of bytes before its method) goes to
    // deep inspection too, which reads the whole segment.
    // So does one that opens with a WebSocket frame running past its end (a longer message in
    // one frame), whose rest the next segments carry. The header is read again from the packet
    // here, and the segment's offset and length come through `forget` in the flags, so that the
    // paths that join before the scan carry no more state past it (585,725 verified instructions
    // with the segment in registers of its own, 625,203 with the header's answer kept from the
    // frame's first read; 521,935 so).
    let (opens, candidate) = (flags & flags::OPENS != 0, flags & flags::SIGNALLED != 0);
    let (segment, segment_len) = (
        (flags >> flags::SEGMENT_AT & 0xffff) as usize,
        (flags >> flags::SEGMENT_LEN & 0xffff) as usize,
    );
    // The bytes of the frame that opens the segment which run past its end (0 when none does),
    // read for a segment that opened a message and matched nothing, and for a frame that
    // matched (a Stratum message longer than its segment, such as a padded submit, or a pool's
    // job padded with text whose rest opens beyond ASCII): other segments pay nothing more.
    let framed = flags & flags::NOT_PLAIN != 0
        && found != 0
        && byte(ctx, segment) == Ok(websocket::TEXT_FIN);
    let frame_rest = if (opens && found == 0) || framed {
        frame_rest(ctx.ctx, segment as u64, segment_len as u64)
    } else {
        0
    };
    let cut = opens && found == 0 && frame_rest > 0;
    let long =
        opens && (flags & flags::WHOLE == 0 || cut || settled == opening::UNHELD) && found == 0;
    // ... and so do its next few segments, when it is a new flow's first (`opening`); so does
    // the rest of a frame that matched (the flow is known now), which opens the next segments
    // with no header (a client's masked bytes, a server's text): printable or not, the scan
    // reads nothing there.
    if joined == 0
        && ((long && (flags & flags::SETTLE != 0 || cut)) || (framed && frame_rest > 0))
        && inspect_budget() > 0
    {
        opening::opening_follow_start(
            next_seq,
            (flags & flags::FROM_LO != 0) as u64,
            frame_rest,
            (flags & flags::WATCHED == 0) as u64,
        );
    }
    Ok(candidate
        || found & CANDIDATE != 0
        || (inspect_budget() > 0
            && (held
                || long
                || (flags & flags::CHUNKS != 0 && found == 0)
                || !opens
                || (recent_stratum(flow) && !flow_unknown(&flow.key))
                || (found == 0
                    && flags & flags::HELD_SLOT != 0
                    && opening::opening_answers((flags & flags::FROM_LO != 0) as u64) != 0))))
}

/// The words of a WebSocket frame header's buffer (`websocket::header` reads 16 bytes).
const FRAME_HEAD_WORDS: usize = 2;
const _: () = assert!(websocket::MAX_HEADER + 2 == 8 * FRAME_HEAD_WORDS);

/// `f` of the first bytes of the segment at `payload` (as many as a WebSocket frame header's
/// buffer holds) and of how many there were; `None` when there were none.
#[inline(always)]
fn with_frame_head<R>(
    ctx: &XdpContext,
    payload: usize,
    plen: usize,
    f: impl FnOnce(&[u8; websocket::MAX_HEADER + 2], usize) -> Option<R>,
) -> Option<R> {
    let mut words = core::mem::MaybeUninit::<[u64; FRAME_HEAD_WORDS]>::uninit();
    // SAFETY: the words, zeroed with a store each (`[0u8; 16]` became a `memset` call: `words`),
    // are the buffer's bytes.
    let buf = unsafe {
        zero(words.as_mut_ptr().cast::<u64>(), FRAME_HEAD_WORDS);
        &mut *words.as_mut_ptr().cast::<[u8; websocket::MAX_HEADER + 2]>()
    };
    let n = load_into(ctx, payload, plen, buf as *mut _).ok()?;
    f(buf, n)
}

/// The header of the WebSocket text frame at `payload` and its payload's first byte, unmasked;
/// `None` when the segment holds no such frame with a byte of payload.
#[inline(always)]
fn websocket_frame(
    ctx: &XdpContext,
    payload: usize,
    plen: usize,
) -> Option<(websocket::Header, u8)> {
    with_frame_head(ctx, payload, plen, |buf, n| {
        let h = websocket::header(buf, n)?;
        if h.len >= n {
            return None;
        }
        Some((h, buf[h.len & 15] ^ h.key[0]))
    })
}

/// Whether a segment that opens with a compressed text frame, a control frame or a fragment
/// (`first`) goes to deep inspection on a flow of a watched range, a pool address or a pool port:
/// a compressed frame; a fragment whole in the segment (a compressed message's first,
/// `websocket::DEFLATED_TEXT`, too); a control frame before any of them. A global
/// function: verified once, not once for every path that reaches it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn websocket_handed(
    ctx: *mut aya_ebpf::bindings::xdp_md,
    payload: u64,
    plen: u64,
    first: u64,
) -> u64 {
    let ctx = XdpContext::new(ctx);
    let (payload, plen, first) = (
        payload as usize & 0xffff,
        plen as usize & 0xffff,
        first as u8,
    );
    let handed = if websocket::opens_fragment(first) {
        frame_end(&ctx, payload, plen).is_some_and(|e| e <= plen as u64)
    } else {
        first == DEFLATED
            || (plen > 2
                && websocket::control_len(first, byte(&ctx, payload + 1).unwrap_or(0)).is_some_and(
                    |c| {
                        c < plen
                            && byte(&ctx, payload + c)
                                .is_ok_and(|b| b == DEFLATED || websocket::opens_fragment(b))
                    },
                ))
    };
    handed as u64
}

/// The bytes of the WebSocket text frame (plain or compressed) that opens the segment at
/// `payload` which run past its `plen` bytes; 0 when the segment opens with no such frame or its
/// frame ends in it. A global function: verified once, not once for every path that reaches it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn frame_rest(ctx: *mut aya_ebpf::bindings::xdp_md, payload: u64, plen: u64) -> u64 {
    let ctx = XdpContext::new(ctx);
    let (payload, plen) = (payload as usize & 0xffff, plen as usize & 0xffff);
    if !matches!(byte(&ctx, payload), Ok(websocket::TEXT_FIN | DEFLATED)) {
        return 0;
    }
    frame_end(&ctx, payload, plen).map_or(0, |e| e.saturating_sub(plen as u64))
}

/// Whether a segment's first byte sends it down `tcp`'s WebSocket hand-over branch: a compressed
/// text frame, a control frame or a fragment (`websocket_handed` decides there).
#[inline(always)]
fn websocket_branch(first: u8) -> bool {
    first == DEFLATED || websocket::is_control(first) || websocket::is_fragment(first)
}

/// Whether a segment's first byte is one that a branch of `tcp` before the follow check takes as
/// its own: a TLS handshake or application-data record's type (22, 23), a text frame's, or one
/// of the WebSocket hand-over branch's.
#[inline(always)]
fn taken_before_follow(first: u8) -> bool {
    first == 22 || first == 23 || first == websocket::TEXT_FIN || websocket_branch(first)
}

/// Whether the segment at `payload` opens with a TLS record's header: a handshake or
/// application-data record's type (22, 23) and version 3.0 to 3.4 (`03 00` to `03 04`).
#[inline(always)]
fn tls_header(ctx: &XdpContext, payload: usize) -> bool {
    match ptr_at::<[u8; 3]>(ctx, payload) {
        // SAFETY: bounds checked by ptr_at.
        Ok(p) => unsafe { matches!(*p, [22 | 23, 3, 0..=4]) },
        Err(()) => false,
    }
}

/// Where the WebSocket frame that opens the segment at `payload` ends (its header and payload),
/// from the segment's start; `None` when the segment opens with no frame header.
#[inline(always)]
fn frame_end(ctx: &XdpContext, payload: usize, plen: usize) -> Option<u64> {
    with_frame_head(ctx, payload, plen, |buf, n| {
        websocket::header(buf, n).map(|h| (h.len as u64).saturating_add(h.payload))
    })
}

/// The handshake message type of a TLS handshake record at `payload` (its sixth byte).
#[inline(always)]
fn handshake_type(ctx: &XdpContext, payload: usize) -> Result<u8, ()> {
    match ptr_at::<[u8; 6]>(ctx, payload) {
        // SAFETY: bounds checked by ptr_at.
        Ok(p) => Ok(unsafe { (*p)[5] }),
        Err(()) => byte(ctx, payload + 5),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
