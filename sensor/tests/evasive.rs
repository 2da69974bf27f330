//! Reshaped plaintext and encrypted shares through `mining-sensor replay` (kernel and agent, as
//! the issue's held-out captures are checked): getwork over HTTP POST, a login split before any
//! marker on a new flow and one whose segments come in reverse order, a login padded past the
//! window in one segment and over three, an ethproxy session padded in every client message and
//! one with its login alone padded, Stratum
//! V2 shares by size, and a session in fragmented WebSocket messages, each with exact counts in
//! the JSON
//! report. Needs root (BPF_PROG_TEST_RUN); no namespace.
//!
//! Real-world ranges appear here only inside capture files: the miner is in range `kp` of the
//! default configuration.

mod common;

use std::{net::Ipv4Addr, time::Duration};

use common::{Wire, replay, sample_sum, tmp, write_pcap};
use pcap_file::DataLink;
use serde_json::Value;
use test_support::Packet;

/// 2019-06-01T00:00:00Z.
const T0: u64 = 1_559_347_200;
const MINER: &str = "175.45.178.10";
const POOL: &str = "198.51.100.5";
const WALLET: &str = "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge";

/// XMRig's login, with an unknown key `pad` of that many bytes before the rest when `pad` is not
/// empty (pools' JSON parsers ignore unknown keys).
fn xmrig_login(pad: &str) -> String {
    let pad = if pad.is_empty() {
        String::new()
    } else {
        format!("\"pad\":\"{pad}\",")
    };
    format!(
        "{{{pad}\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\"]}}}}\n"
    )
}

/// A submit of XMRig's for job `j1` (id and nonce from `id`), padded after its result with an
/// unknown key holding `pad` when it is not empty.
fn xmrig_submit(id: u32, pad: &str) -> String {
    let pad = if pad.is_empty() {
        String::new()
    } else {
        format!(",\"pad\":\"{pad}\"")
    };
    format!(
        "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"s1\",\"job_id\":\"j1\",\"nonce\":\"0000000{id}\",\"result\":\"{}\"{pad}}}}}\n",
        "ab".repeat(32)
    )
}

/// The pool's OK to share `id`.
fn ok(id: u32) -> String {
    format!("{{\"id\":{id},\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{{\"status\":\"OK\"}}}}\n")
}

/// The pool's answer to it: session `s1`, job `j1` at target `b88d0600` (t = 0x068db8 = 429,496;
/// (2^32 - 1) / 429,496 = 10,000 hashes a share, rest 7,295).
const LOGIN_REPLY: &str = "{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"s1\",\"job\":{\"blob\":\"0707\",\"job_id\":\"j1\",\"target\":\"b88d0600\",\"algo\":\"rx/0\"},\"status\":\"OK\"}}\n";

/// One Stratum flow in all, and two shares, both accepted, from `kp` (monero), of `hashes`
/// hashes together.
fn assert_one_flow_with_two_shares(r: &Value, hashes: u64) {
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &[]), 1);
    let accepted = [("range", "kp"), ("coin", "monero"), ("result", "accepted")];
    assert_eq!(total(r, "mining_sensor_shares_total", &accepted), 2);
    assert_eq!(total(r, "mining_sensor_shares_total", &[]), 2);
    let kp = [("range", "kp"), ("coin", "monero")];
    assert_eq!(total(r, "mining_sensor_share_hashes_total", &kp), hashes);
}

/// One Stratum flow in all, a monero one to `kp` (the miner's range), and XMRig's login counted
/// once, with its coin and agent.
fn assert_one_flow_to_kp_and_its_login(r: &Value) {
    let to_kp = [("range", "kp"), ("direction", "to"), ("dialect", "monero")];
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &to_kp), 1);
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &login), 1);
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &[]), 1);
}

/// One Stratum flow in all, a monero one from `kp` (the miner's login opened it), and XMRig's
/// login counted once, with its coin and agent.
fn assert_one_flow_from_kp_and_its_login(r: &Value) {
    let from_kp = [
        ("range", "kp"),
        ("direction", "from"),
        ("dialect", "monero"),
    ];
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &from_kp), 1);
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &login), 1);
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &[]), 1);
}

/// The mask key of the miner's login frame in `Wire::login`.
const LOGIN_KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// The sessions of these tests: the miner in `kp`, the pool on 443, from the miner's `port`.
fn wire_at(port: u16) -> Wire {
    Wire::new(ip(MINER), ip(POOL), port, 443)
}

/// What these tests send besides a segment at a time.
trait Sends {
    fn login(&mut self);
    fn send_reversed(&mut self, msg: &[u8], cut: usize);
    fn resend(&mut self, seg: &[u8]);
}

impl Sends for Wire {
    /// A known flow in WebSocket frames: XMRig's login (masked with `LOGIN_KEY`) and the pool's
    /// reply at 10,000 hashes a share, each a frame in a segment.
    fn login(&mut self) {
        let login = test_support::websocket_frame(xmrig_login("").as_bytes(), Some(LOGIN_KEY));
        self.send(true, &login);
        self.send(
            false,
            &test_support::websocket_frame(LOGIN_REPLY.as_bytes(), None),
        );
    }

    /// The miner's `msg` in two segments cut at byte `cut`, the later one first (the first lost
    /// before the vantage point and sent again after the second, or so sent on purpose: TCP
    /// delivers them in order), each at its own sequence number.
    fn send_reversed(&mut self, msg: &[u8], cut: usize) {
        let (first, later) = msg.split_at(cut);
        let at = self.seq[0];
        for (seq, seg) in [(at + cut as u32, later), (at, first)] {
            let pkt =
                Packet::tcp4(self.miner, self.pool, self.port, self.pool_port, seg).tcp_seq(seq);
            self.packets.push(pkt);
        }
        self.seq[0] += msg.len() as u32;
    }

    /// The miner's last segment, `seg`, sent again at its own sequence number.
    fn resend(&mut self, seg: &[u8]) {
        let at = self.seq[0] - seg.len() as u32;
        let pkt = Packet::tcp4(self.miner, self.pool, self.port, self.pool_port, seg).tcp_seq(at);
        self.packets.push(pkt);
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn at(millis: u64) -> Duration {
    Duration::from_secs(T0) + Duration::from_millis(millis)
}

/// Replays `packets` (one every 10 ms) and returns the report.
fn run(name: &str, packets: Vec<Packet>) -> Value {
    let dir = tmp(name);
    let file = dir.join("session.pcap");
    let frames: Vec<(Duration, Vec<u8>)> = packets
        .iter()
        .enumerate()
        .map(|(i, p)| (at(10 * i as u64), p.build()))
        .collect();
    write_pcap(&file, DataLink::ETHERNET, &frames);
    replay(&[], &[&file]).1
}

fn total(report: &Value, metric: &str, labels: &[(&str, &str)]) -> u64 {
    sample_sum(&report["totals"], metric, labels)
}

/// Ethereum getwork over HTTP POST on port 80, as a Go client posts it: three requests (getWork,
/// submitHashrate, submitWork) and the pool's three answers. One ethereum flow, three Stratum
/// packets from `kp`, one share accepted at the work's boundary 2^224: 2^256 / 2^224 = 2^32 =
/// 4,294,967,296 hashes.
#[test]
fn evasive_getwork_over_http_replays_with_its_share() {
    let (m, p) = (ip(MINER), ip(POOL));
    let post = |body: String| {
        format!(
            "POST /0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1 HTTP/1.1\r\nHost: {POOL}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = |body: String| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
            body.len()
        )
    };
    let h = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
    let b = "0x0000000100000000000000000000000000000000000000000000000000000000";
    let messages = [
        post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#.into()),
        reply(format!(
            r#"{{"id":1,"jsonrpc":"2.0","result":["{h}","{h}","{b}"]}}"#
        )),
        post(format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"eth_submitHashrate","params":["0x1e8480","{h}"]}}"#
        )),
        reply(r#"{"id":2,"jsonrpc":"2.0","result":true}"#.into()),
        post(format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"eth_submitWork","params":["0x63d8903c474b670f","{h}","{h}"]}}"#
        )),
        reply(r#"{"id":3,"jsonrpc":"2.0","result":true}"#.into()),
    ];
    let packets = messages
        .iter()
        .enumerate()
        .map(|(i, msg)| {
            if i % 2 == 0 {
                Packet::tcp4(m, p, 51000, 80, msg.as_bytes())
            } else {
                Packet::tcp4(p, m, 80, 51000, msg.as_bytes())
            }
        })
        .collect();
    let r = run("getwork", packets);
    let kp = [
        ("range", "kp"),
        ("direction", "from"),
        ("dialect", "ethereum"),
    ];
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &kp), 1);
    assert_eq!(total(&r, "mining_sensor_stratum_packets_total", &kp), 3);
    let share = [
        ("range", "kp"),
        ("coin", "ethereum"),
        ("result", "accepted"),
    ];
    assert_eq!(total(&r, "mining_sensor_shares_total", &share), 1);
    assert_eq!(
        total(
            &r,
            "mining_sensor_share_hashes_total",
            &[("range", "kp"), ("coin", "ethereum")]
        ),
        4_294_967_296
    );
}

/// XMRig's login split at byte 1 on a new flow (the first segment `{` alone), then the pool's
/// reply: one monero flow opened by the login's second segment, and the login counted once with
/// its coin and agent.
#[test]
fn evasive_a_login_split_at_its_first_byte_replays_with_coin_and_agent() {
    let (m, p) = (ip(MINER), ip(POOL));
    let login = xmrig_login("");
    let reply = LOGIN_REPLY.as_bytes();
    let packets = vec![
        Packet::tcp4(m, p, 51001, 3333, &login.as_bytes()[..1]).tcp_seq(100),
        Packet::tcp4(m, p, 51001, 3333, &login.as_bytes()[1..]).tcp_seq(101),
        Packet::tcp4(p, m, 3333, 51001, reply),
    ];
    let r = run("split", packets);
    let kp = [
        ("range", "kp"),
        ("direction", "from"),
        ("dialect", "monero"),
    ];
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &kp), 1);
    assert_eq!(total(&r, "mining_sensor_stratum_packets_total", &kp), 1);
    let login = [("range", "kp"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &login), 1);
}

/// XMRig's login with an unknown key of 600 bytes before `method` (pools' JSON parsers ignore
/// unknown keys): the segment is 1 + 600 + 12 + ... bytes, so no marker lies in the kernel's
/// 512-byte window. The pool's login reply opens the monero flow (one Stratum packet, to `kp`);
/// the login, handed whole to deep inspection as a JSON opening longer than the window, is
/// counted once with its coin and agent.
#[test]
fn evasive_a_login_padded_past_the_window_replays_with_coin_and_agent() {
    let (m, p) = (ip(MINER), ip(POOL));
    let pad = "x".repeat(600);
    let login = xmrig_login(&pad);
    // `{"pad":"` is 8 bytes, then the 600 x's: `method` starts past byte 608.
    assert!(login.find("method").unwrap() > 512);
    let reply = LOGIN_REPLY.as_bytes();
    // Beside it, a trap: a JSON-RPC call to a node padded the same way, on the same pool port
    // (also handed to deep inspection, and nothing there).
    let call = format!(
        "{{\"pad\":\"{pad}\",\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"params\":[\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\",\"latest\"]}}\n"
    );
    let packets = vec![
        Packet::tcp4(m, p, 51002, 3333, login.as_bytes()).tcp_seq(100),
        Packet::tcp4(m, p, 51003, 3333, call.as_bytes()).tcp_seq(100),
        Packet::tcp4(p, m, 3333, 51002, reply),
    ];
    let r = run("padded", packets);
    // The reply's flow only: the padded call opened none.
    assert_one_flow_to_kp_and_its_login(&r);
}

/// XMRig's login padded with an unknown key of 3,500 bytes before `method`, sent over 3 segments
/// of a new flow (an MSS of 1,448: 8 + 3,500 + 2 + 246 = 3,756 bytes, segments of 1,448, 1,448
/// and 860), interleaved with a JSON-RPC call to a node padded the same way on the same pool port
/// (8 + 3,500 + 2 + 115 = 3,625 bytes: 1,448, 1,448 and 729), then the pool's login reply. The
/// kernel hands each first segment and the next ones of its flow over; deep inspection joins
/// them: one login with its coin and agent, and the call nothing. The reply opens the monero flow
/// (to `kp`); the call's flow is none.
#[test]
fn evasive_a_login_padded_over_three_segments_replays_with_coin_and_agent() {
    let (m, p) = (ip(MINER), ip(POOL));
    let pad = "x".repeat(3500);
    let login = xmrig_login(&pad);
    let call = format!(
        "{{\"pad\":\"{pad}\",\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"params\":[\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\",\"latest\"]}}\n"
    );
    assert_eq!((login.len(), call.len()), (3756, 3625));
    let segments = |sport: u16, msg: &str| -> Vec<Packet> {
        msg.as_bytes()
            .chunks(1448)
            .enumerate()
            .map(|(i, c)| Packet::tcp4(m, p, sport, 3333, c).tcp_seq(100 + 1448 * i as u32))
            .collect()
    };
    let (a, b) = (segments(51004, &login), segments(51005, &call));
    assert_eq!((a.len(), b.len()), (3, 3));
    let reply = LOGIN_REPLY.as_bytes();
    let mut packets: Vec<Packet> = a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect();
    packets.push(Packet::tcp4(p, m, 3333, 51004, reply));
    let r = run("padded3", packets);
    // The reply only: no segment of either padded message is a Stratum packet.
    assert_eq!(total(&r, "mining_sensor_stratum_packets_total", &[]), 1);
    assert_one_flow_to_kp_and_its_login(&r);
}

/// Stratum V2 on a pool port: the 64-byte hello, the 234-byte answer, then four 62-byte client
/// frames (one a retransmission): three shares, coin and result unknown, in range `kp`.
#[test]
fn evasive_stratum_v2_shares_replay_by_size() {
    let (m, p) = (ip(MINER), ip(POOL));
    let noise = |n: usize| (0..n).map(|i| (i * 37 + 167) as u8).collect::<Vec<u8>>();
    let mut packets = vec![
        Packet::tcp4(m, p, 51002, 34254, &noise(64)).tcp_seq(1),
        Packet::tcp4(p, m, 34254, 51002, &noise(234)),
    ];
    for seq in [65, 127, 127, 189] {
        packets.push(Packet::tcp4(m, p, 51002, 34254, &noise(62)).tcp_seq(seq));
    }
    let r = run("sv2", packets);
    let unknown = [("range", "kp"), ("coin", "unknown"), ("result", "unknown")];
    assert_eq!(total(&r, "mining_sensor_shares_total", &unknown), 3);
    assert_eq!(
        total(
            &r,
            "mining_sensor_suspect_flows_total",
            &[("range", "kp"), ("reason", "stratum_v2")]
        ),
        1
    );
}

/// XMRig's session inside WebSocket frames on 443, every message cut into frames of 8 bytes (a
/// text frame without FIN, continuations, an empty last one with FIN; RFC 6455, 5.4), each frame
/// a segment of its own, the client's masked with a fresh key each, and a pong of its own segment
/// between two of the login's fragments (which the program does not hand over: a gap of 6 bytes in
/// the sequence). No frame holds a whole marker; deep inspection joins the fragments: one monero
/// flow, opened by the agent (no Stratum packet: the kernel read none), the login with its coin and
/// agent, and both shares accepted at the login reply's target `b88d0600` (t = 0x068db8 =
/// 429,496; (2^32 - 1) / 429,496 = 10,000, rest 7,295): 20,000 hashes.
#[test]
fn evasive_stratum_in_fragmented_websocket_messages_replays_with_its_shares() {
    let login = xmrig_login("");
    let reply = LOGIN_REPLY;
    let submit = |id: u32| xmrig_submit(id, "");
    // The frames of `msg` in 8-byte fragments, the client's masked (a key a frame).
    let frames = |msg: &str, masked: bool| -> Vec<Vec<u8>> {
        let parts: Vec<&[u8]> = msg.as_bytes().chunks(8).collect();
        let mut out: Vec<Vec<u8>> = parts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let key = masked.then_some([i as u8, 0x5a, 0xc3, 0x17]);
                let mut f = test_support::websocket_frame(c, key);
                f[0] = if i == 0 { 0x01 } else { 0x00 };
                f
            })
            .collect();
        let mut last = test_support::websocket_frame(b"", masked.then_some([9, 9, 9, 9]));
        last[0] = 0x80;
        out.push(last);
        out
    };
    let mut wire = wire_at(51006);
    for (i, f) in frames(&login, true).into_iter().enumerate() {
        if i == 5 {
            // A masked empty pong: 8a 80 and the key.
            wire.send(true, &[0x8a, 0x80, 1, 2, 3, 4]);
        }
        wire.send(true, &f);
    }
    for f in frames(reply, false) {
        wire.send(false, &f);
    }
    for id in [2, 3] {
        for f in frames(&submit(id), true) {
            wire.send(true, &f);
        }
        for f in frames(&ok(id), false) {
            wire.send(false, &f);
        }
    }
    let r = run("fragments", wire.packets);
    assert_session_opened_by_the_agent(&r);
}

/// A session the kernel read nothing of, whose flow the agent opened: one monero flow from `kp`,
/// no Stratum packet, XMRig's login with its coin and agent, and both shares accepted at the login
/// reply's target `b88d0600`: 2 x 10,000 = 20,000 hashes.
fn assert_session_opened_by_the_agent(r: &Value) {
    assert_one_flow_from_kp_and_its_login(r);
    assert_eq!(total(r, "mining_sensor_stratum_packets_total", &[]), 0);
    let accepted = [("range", "kp"), ("coin", "monero"), ("result", "accepted")];
    assert_eq!(total(r, "mining_sensor_shares_total", &accepted), 2);
    assert_eq!(total(r, "mining_sensor_shares_total", &[]), 2);
    assert_eq!(
        total(
            r,
            "mining_sensor_share_hashes_total",
            &[("range", "kp"), ("coin", "monero")]
        ),
        20_000
    );
}

/// XMRig's session in WebSocket frames to 443 compressed with permessage-deflate (each direction
/// one DEFLATE stream, context takeover), its messages sent in several frames as the `websockets`
/// library sends an iterable (`test_support::deflated_frames`: a first frame `41`, RSV1 without
/// FIN, then continuations): the login in three, each submit in two, the pool's answers in one
/// frame each (`c1`); each frame a segment. The kernel hands the frames over unread; deep
/// inspection joins each message and inflates it in its place in the stream: the same counts as
/// the uncompressed fragments above.
#[test]
fn evasive_compressed_websocket_messages_in_several_frames_replay_with_their_shares() {
    use flate2::{Compress, Compression};
    let mut z = [
        Compress::new(Compression::default(), false),
        Compress::new(Compression::default(), false),
    ];
    let messages = [
        (xmrig_login(""), 3),
        (LOGIN_REPLY.to_string(), 1),
        (xmrig_submit(2, ""), 2),
        (ok(2), 1),
        (xmrig_submit(3, ""), 2),
        (ok(3), 1),
    ];
    let mut wire = wire_at(51014);
    for (k, (msg, parts)) in messages.iter().enumerate() {
        let d = k % 2;
        let key = (d == 0).then_some([0x37, 0xfa, 0x21, 0x3d]);
        let frames = test_support::deflated_frames(&mut z[d], msg.as_bytes(), *parts, key);
        assert_eq!(frames.len(), *parts);
        for f in frames {
            wire.send(d == 0, &f);
        }
    }
    let r = run("deflated", wire.packets);
    assert_session_opened_by_the_agent(&r);
}

/// XMRig's session compressed as above, each message in one frame (`c1`), the login, both
/// submits and the pool's login reply padded with 3,000 characters that hardly compress (a
/// pseudo-random run over 64 letters: about 6 bits a character, so each of those frames holds
/// over 2,200 bytes), each frame cut into segments of at most 1,000 bytes. The kernel hands each
/// compressed frame's first segment over and follows its rest to the frame's end, in both
/// directions (`opening_follow_start`); deep inspection joins each frame and inflates it in its
/// place in the stream: the same counts as unpadded. Before, each cut message lost its
/// direction's stream: no flow at all.
#[test]
fn evasive_compressed_websocket_messages_padded_past_a_segment_replay_with_their_shares() {
    use flate2::{Compress, Compression};
    let mut x = 0x2545_f491u32;
    let mut noise = || -> String {
        let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        (0..3000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                letters[(x >> 26) as usize] as char
            })
            .collect()
    };
    let reply = LOGIN_REPLY.replacen(
        "\"error\"",
        &format!("\"pad\":\"{}\",\"error\"", noise()),
        1,
    );
    let messages = [
        xmrig_login(&noise()),
        reply,
        xmrig_submit(2, &noise()),
        ok(2),
        xmrig_submit(3, &noise()),
        ok(3),
    ];
    let mut z = [
        Compress::new(Compression::default(), false),
        Compress::new(Compression::default(), false),
    ];
    let (mut wire, mut cut) = (wire_at(51015), 0);
    for (k, msg) in messages.iter().enumerate() {
        let d = k % 2;
        let key = (d == 0).then_some([0x37, 0xfa, 0x21, 0x3d]);
        let [frame] = <[Vec<u8>; 1]>::try_from(test_support::deflated_frames(
            &mut z[d],
            msg.as_bytes(),
            1,
            key,
        ))
        .unwrap();
        if msg.contains("pad") {
            assert!(frame.len() > 2200, "{} bytes", frame.len());
        }
        for seg in frame.chunks(1000) {
            wire.send(d == 0, seg);
        }
        cut += frame.len().div_ceil(1000) - 1;
    }
    // Four frames cut, each over three segments.
    assert_eq!(cut, 8);
    let r = run("deflatedpad", wire.packets);
    assert_session_opened_by_the_agent(&r);
}

/// The same padded login in one masked WebSocket frame over four segments, its key chosen so that
/// each rest opens with a byte another branch of the program takes as its own: the second segment
/// with a TLS handshake record's type (payload byte 992, an `x` masked with the key's first byte:
/// 0x78 ^ 0x6e = 0x16), the third with a text frame's first byte (byte 1,993, the second key byte:
/// 0x78 ^ 0xf9 = 0x81) and the fourth with a TLS application-data record's type (byte 2,994, the
/// third: 0x78 ^ 0x6f = 0x17). The flow waits for each in sequence, so each is handed over as the
/// frame's rest: the login with its coin and agent; the reply, the one Stratum packet, opens the
/// flow.
#[test]
fn evasive_a_padded_websocket_login_whose_rests_look_like_tls_or_frames_replays_with_coin_and_agent()
 {
    let (m, p) = (ip(MINER), ip(POOL));
    let login = xmrig_login(&"x".repeat(3000));
    let frame = test_support::websocket_frame(login.as_bytes(), Some([0x6e, 0xf9, 0x6f, 0x3d]));
    let cuts = [0, 1000, 2001, 3002, frame.len()];
    assert_eq!((frame[1000], frame[2001], frame[3002]), (0x16, 0x81, 0x17));
    let mut packets: Vec<Packet> = cuts
        .windows(2)
        .map(|w| Packet::tcp4(m, p, 51012, 443, &frame[w[0]..w[1]]).tcp_seq(100 + w[0] as u32))
        .collect();
    packets.push(Packet::tcp4(
        p,
        m,
        443,
        51012,
        &test_support::websocket_frame(LOGIN_REPLY.as_bytes(), None),
    ));
    let r = run("wsframe4", packets);
    assert_eq!(total(&r, "mining_sensor_stratum_packets_total", &[]), 1);
    assert_one_flow_to_kp_and_its_login(&r);
}

/// A known flow in WebSocket frames to 443 (XMRig's login, the pool's reply at 10,000 hashes a
/// share), then a submit padded after its result with 3,000 bytes, in one masked frame over three
/// segments whose rests open with a TLS handshake record's type (payload byte 992, an `x` masked
/// with the key's first byte: 0x78 ^ 0x6e = 0x16) and a pong's first byte (byte 1,993: 0x78 ^
/// 0xf2 = 0x8a), then a submit in one whole frame; each answered OK. The first segment of the
/// padded submit is a Stratum packet (its method is in the window); the program follows its
/// frame's rest to the frame's end, so deep inspection joins the submit, and the whole submit
/// after it is scanned as any: 4 Stratum packets (login, reply, both submits), 2 shares
/// accepted, 20,000 hashes.
#[test]
fn evasive_a_padded_submit_in_one_websocket_frame_on_a_known_flow_counts_its_share() {
    let padded = xmrig_submit(2, &"x".repeat(3000));
    let pad_at = padded.find("xxx").unwrap();
    assert!(pad_at < 992 && 1993 < pad_at + 3000);
    let big = test_support::websocket_frame(padded.as_bytes(), Some([0x6e, 0xf2, 0x21, 0x3d]));
    assert_eq!((big[1000], big[2001]), (0x16, 0x8a));
    let mut wire = wire_at(51013);
    wire.login();
    for w in [0, 1000, 2001, big.len()].windows(2) {
        wire.send(true, &big[w[0]..w[1]]);
    }
    wire.send(
        false,
        &test_support::websocket_frame(ok(2).as_bytes(), None),
    );
    wire.send(
        true,
        &test_support::websocket_frame(xmrig_submit(3, "").as_bytes(), Some(LOGIN_KEY)),
    );
    wire.send(
        false,
        &test_support::websocket_frame(ok(3).as_bytes(), None),
    );
    let r = run("wsknown", wire.packets);
    assert_eq!(total(&r, "mining_sensor_stratum_packets_total", &[]), 4);
    let login = [("range", "kp"), ("coin", "monero"), ("agent", "xmrig")];
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &login), 1);
    assert_one_flow_with_two_shares(&r, 20_000);
}

/// A known flow in WebSocket frames to 443 (XMRig's login, the pool's reply at 10,000 hashes a
/// share, a share on job `j1`), then the pool's job push `j2` at target `dc460300` (t = 0x0346dc =
/// 214,748; (2^32 - 1) / 214,748 = 20,000, rest 7,295) padded after its blob with 1,500 `é`, one
/// frame over three segments whose rests open with UTF-8 beyond ASCII (`a9`, `c3`), then a share
/// on `j2`; each answered OK. The job's method is in its first segment's window; the program
/// follows the frame's rest, so deep inspection reads the job and its target: 2 shares, 10,000 +
/// 20,000 = 30,000 hashes. Before, the rests were not handed over: the job was lost and its share
/// counted at the difficulty in force (20,000 hashes in all).
#[test]
fn evasive_a_pools_job_padded_with_text_beyond_ascii_counts_its_shares_difficulty() {
    let mut wire = wire_at(51016);
    wire.login();
    let client = |m: &str| test_support::websocket_frame(m.as_bytes(), Some(LOGIN_KEY));
    let pool = |m: &str| test_support::websocket_frame(m.as_bytes(), None);
    wire.send(true, &client(&xmrig_submit(2, "")));
    wire.send(false, &pool(&ok(2)));
    let job = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{{\"blob\":\"0707\",\"pad\":\"{}\",\"job_id\":\"j2\",\"target\":\"dc460300\",\"algo\":\"rx/0\",\"id\":\"s1\"}}}}\n",
        "é".repeat(1500)
    );
    let frame = pool(&job);
    assert_eq!((frame[1000], frame[2001]), (0xa9, 0xc3));
    for w in [0, 1000, 2001, frame.len()].windows(2) {
        wire.send(false, &frame[w[0]..w[1]]);
    }
    wire.send(
        true,
        &client(&xmrig_submit(3, "").replace("\"j1\"", "\"j2\"")),
    );
    wire.send(false, &pool(&ok(3)));
    let r = run("wsjobutf8", wire.packets);
    assert_one_flow_with_two_shares(&r, 30_000);
}

/// The padded submit of the test above resent (its frame's last segment sent again, as TCP does
/// when an acknowledgement is late), then a second padded submit over three segments; each
/// answered OK. The key (`be f2 21 39`) makes the resent rest open with `41 c6`, the bytes of a
/// compressed frame's header with a masked length of 70 (`x` masked: 0x78 ^ 0x39 = 0x41, 0x78 ^
/// 0xbe = 0xc6), repeating every 76 bytes to the rest's end, whose last such frame runs past it:
/// read as frames, the resent segment left a frame open whose rest swallowed the next submit's
/// first segment (the live test lost a share so once in about 20 runs). A segment wholly before
/// where its direction's last joined message ended is read as what it is, bytes already read:
/// 2 shares accepted, 20,000 hashes.
#[test]
fn evasive_a_resent_rest_of_a_padded_websocket_frame_is_not_read_again() {
    let key = [0xbe, 0xf2, 0x21, 0x39];
    let frames: Vec<Vec<u8>> = [2, 3]
        .map(|id| {
            test_support::websocket_frame(xmrig_submit(id, &"x".repeat(3000)).as_bytes(), Some(key))
        })
        .into();
    // 8 bytes of header: frame byte 2,003 is payload byte 1,995, an `x` under the key's fourth.
    assert_eq!((frames[0][2003], frames[0][2004]), (0x41, 0xc6));
    let mut wire = wire_at(51014);
    wire.login();
    for (n, frame) in frames.iter().enumerate() {
        let cuts = [0, 1000, 2003, frame.len()];
        for w in cuts.windows(2) {
            wire.send(true, &frame[w[0]..w[1]]);
        }
        if n == 0 {
            wire.resend(&frame[2003..]);
        }
        wire.send(
            false,
            &test_support::websocket_frame(ok(2 + n as u32).as_bytes(), None),
        );
    }
    let r = run("wsresent", wire.packets);
    assert_one_flow_with_two_shares(&r, 20_000);
}

/// XMRig's login padded to 3,000 bytes with an unknown key, in one masked WebSocket frame to 443
/// over three segments (cut at 1,001 and 2,002 bytes of the frame: the second opens with a masked
/// byte that is not printable, the third with one that is), then the pool's reply. The kernel
/// reads no marker in the first segment's window and hands it and the next two over (the rest of
/// the frame, no header); deep inspection joins the frame: the login with its coin and agent. The
/// reply opens the monero flow (to `kp`).
#[test]
fn evasive_a_padded_login_in_one_websocket_frame_over_three_segments_replays_with_coin_and_agent() {
    let (m, p) = (ip(MINER), ip(POOL));
    let pad = "x".repeat(3000);
    let login = xmrig_login(&pad);
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let frame = test_support::websocket_frame(login.as_bytes(), Some(key));
    // 8 bytes of header (a 16-bit length and the key): the cuts fall at payload bytes 993 and
    // 1,994, an `x` masked with the key's second byte (0x78 ^ 0xfa = 0x82) and third (0x59, `Y`).
    assert_eq!((frame[1001], frame[2002]), (0x82, b'Y'));
    let cuts = [0, 1001, 2002, frame.len()];
    let mut packets: Vec<Packet> = cuts
        .windows(2)
        .map(|w| Packet::tcp4(m, p, 51011, 443, &frame[w[0]..w[1]]).tcp_seq(100 + w[0] as u32))
        .collect();
    let reply = LOGIN_REPLY.as_bytes();
    packets.push(Packet::tcp4(
        p,
        m,
        443,
        51011,
        &test_support::websocket_frame(reply, None),
    ));
    let r = run("wsframe3", packets);
    assert_one_flow_to_kp_and_its_login(&r);
}

/// A submit's two segments in reverse order on a known flow (the first lost before the vantage
/// point and sent again after the second, or so sent on purpose: TCP delivers them in order):
/// its share counts, once, with the other submit's.
#[test]
fn evasive_a_submit_whose_segments_come_in_reverse_order_counts_its_share() {
    let mut w = wire_at(40123);
    w.send(true, xmrig_login("").as_bytes());
    w.send(false, LOGIN_REPLY.as_bytes());
    let submit = xmrig_submit(2, "");
    // Cut after `"method":"sub` (37 bytes).
    assert!(submit[..37].ends_with("\"sub"));
    w.send_reversed(submit.as_bytes(), 37);
    w.send(false, ok(2).as_bytes());
    w.send(true, xmrig_submit(3, "").as_bytes());
    w.send(false, ok(3).as_bytes());
    let r = run("reverse-order", w.packets);
    // The login opened the flow, from the miner in `kp`.
    assert_one_flow_from_kp_and_its_login(&r);
    // Two shares at the login job's 10,000 hashes.
    assert_one_flow_with_two_shares(&r, 20_000);
}

/// XMRig's login on a new flow in two segments in reverse order (its first lost before the vantage
/// point and sent again after the second): the kernel hands over a new flow's segments from the
/// login's opening on, so its later part never reaches deep inspection; the first part, cut after
/// the agent, still names coin and agent, and counts once when the miner's next segment shows the
/// rest will not come.
#[test]
fn evasive_a_new_flows_login_whose_segments_come_in_reverse_order_counts_with_coin_and_agent() {
    let mut w = wire_at(40124);
    let login = xmrig_login("");
    let cut = login.find("\"algo\"").unwrap();
    assert!(login[..cut].ends_with("gcc/5.4.0\","));
    w.send_reversed(login.as_bytes(), cut);
    w.send(false, LOGIN_REPLY.as_bytes());
    for id in 2..=3 {
        w.send(true, xmrig_submit(id, "").as_bytes());
        w.send(false, ok(id).as_bytes());
    }
    let r = run("reverse-login", w.packets);
    // The login's first part (its method and the wallet in the window) opened the flow, from
    // the miner in `kp`; the login counts once, with its coin and agent.
    assert_one_flow_from_kp_and_its_login(&r);
    assert_one_flow_with_two_shares(&r, 20_000);
}

/// XMRig's login and two submits, each padded with `pad` bytes in a WebSocket frame masked with
/// its key (`keys`: the login's, then the submits'), from a miner to a pool on port 8080, both
/// in no watched range, pool address or pool port, in segments of at most `mss` bytes; the pool
/// answers each in an unpadded frame (the login at 10,000 hashes a share, both shares OK).
fn unwatched_websocket_session(keys: [[u8; 4]; 3], mss: usize, pad: usize) -> Vec<Packet> {
    let (m, p) = (ip("203.0.113.7"), ip("198.51.100.77"));
    let mut seq = [100u32, 9000u32];
    let mut packets = Vec::new();
    let mut send = |from_miner: bool, bytes: &[u8]| {
        for seg in bytes.chunks(mss) {
            let (src, dst, sport, dport, side) = if from_miner {
                (m, p, 51111, 8080, 0)
            } else {
                (p, m, 8080, 51111, 1)
            };
            packets.push(Packet::tcp4(src, dst, sport, dport, seg).tcp_seq(seq[side]));
            seq[side] += seg.len() as u32;
        }
    };
    let pad = "x".repeat(pad);
    let server = |msg: &str| test_support::websocket_frame(msg.as_bytes(), None);
    send(
        true,
        &test_support::websocket_frame(xmrig_login(&pad).as_bytes(), Some(keys[0])),
    );
    send(false, &server(LOGIN_REPLY));
    for id in 2..=3 {
        let submit = xmrig_submit(id, &pad);
        send(
            true,
            &test_support::websocket_frame(submit.as_bytes(), Some(keys[id as usize - 1])),
        );
        send(false, &server(&ok(id)));
    }
    packets
}

/// One flow between the unwatched endpoints, XMRig's login with its coin and agent, and its 2
/// shares accepted at the login job's 10,000 hashes.
fn assert_unwatched_session_exact(r: &Value) {
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [
        ("range", "unwatched"),
        ("coin", "monero"),
        ("agent", "xmrig"),
    ];
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &login), 1);
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &[]), 1);
    let accepted = [
        ("range", "unwatched"),
        ("coin", "monero"),
        ("result", "accepted"),
    ];
    assert_eq!(total(r, "mining_sensor_shares_total", &accepted), 2);
    assert_eq!(total(r, "mining_sensor_shares_total", &[]), 2);
    assert_eq!(total(r, "mining_sensor_share_hashes_total", &[]), 20_000);
}

/// Stratum in masked WebSocket frames padded to 3,000 bytes on port 8080 between two endpoints in
/// no watched range, pool address or pool port (as in a capture from the wild replayed with the
/// default ranges): XMRig's login and two submits, each frame over three segments of 1,448
/// bytes (8 bytes of header: the rests open at payload bytes 1,440 and 2,888, an `x` masked
/// with the key's first byte), each rest opening with a byte the program reads no JSON in: the
/// login's with 0xb5 (0x78 ^ 0xcd), the first submit's with a TLS application-data record's
/// type (0x17 = 0x78 ^ 0x6f, then 0x69, no version), the second's with a text frame's first byte
/// (0x81 = 0x78 ^ 0xf9). Every frame's rest is followed: the login with its coin and agent, both
/// shares (before, the rests were not read there: no login and no share).
#[test]
fn evasive_stratum_in_padded_websocket_frames_between_unwatched_endpoints_counts_exactly() {
    let keys = [
        [0xcd, 0x5a, 0x21, 0x3d],
        [0x6f, 0x11, 0x21, 0x3d],
        [0xf9, 0x5a, 0x21, 0x3d],
    ];
    let pad = "x".repeat(3000);
    let messages = [
        xmrig_login(&pad),
        xmrig_submit(2, &pad),
        xmrig_submit(3, &pad),
    ];
    for ((msg, key), rest) in messages.iter().zip(keys).zip([0xb5, 0x17, 0x81]) {
        let f = test_support::websocket_frame(msg.as_bytes(), Some(key));
        assert!(2896 < f.len() && f.len() <= 3 * 1448, "three segments");
        assert_eq!((f[1448], f[2896]), (rest, rest));
    }
    assert_eq!(0x78 ^ keys[1][1], 0x69);
    let r = run("wsunwatched", unwatched_websocket_session(keys, 1448, 3000));
    assert_unwatched_session_exact(&r);
}

/// The same session with 16 mask keys of every frame, a 1,448- or 997-byte MSS and 1,500 to
/// 2,055 bytes of padding: every rest's first byte is a masked `x`, any of 256 values (printable,
/// a TLS record's type, a frame's first byte, beyond ASCII): always exact.
#[test]
fn evasive_padded_websocket_sessions_between_unwatched_endpoints_count_exactly_whatever_the_keys() {
    for seed in 0..16u8 {
        let key = |i: u8| {
            [
                seed.wrapping_mul(37).wrapping_add(i * 85),
                seed ^ 0x5a,
                0x21 ^ i,
                seed.wrapping_add(0x3d),
            ]
        };
        let mss = if seed % 2 == 0 { 1448 } else { 997 };
        let pad = 1500 + 37 * seed as usize;
        let r = run(
            &format!("wsunwatched{seed}"),
            unwatched_websocket_session([key(0), key(1), key(2)], mss, pad),
        );
        assert_unwatched_session_exact(&r);
    }
}

/// The replay workers' CPUs (replay's own count: its affinity set).
fn replay_cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, with the set's real size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity");
    // SAFETY: a filled set.
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}

/// An ethproxy work package's header hash (its seed hash too), and the boundary 2^224 it
/// carries: 2^256 / 2^224 = 2^32 hashes a share.
const ETH_HASH: &str = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
const ETH_BOUNDARY: &str = "0x0000000100000000000000000000000000000000000000000000000000000000";
/// ethminer's login, with an address.
const ETH_LOGIN: &str = r#"["0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5","x"]"#;

/// An ethproxy client's request, padded with an unknown key holding `pad` before its method when
/// `pad` is not empty.
fn eth_request(id: u64, method: &str, params: &str, pad: &str) -> String {
    let pad = if pad.is_empty() {
        String::new()
    } else {
        format!("\"pad\":\"{pad}\",")
    };
    format!(
        "{{{pad}\"id\":{id},\"jsonrpc\":\"2.0\",\"method\":\"{method}\",\"params\":{params}}}\n"
    )
}

/// The pool's work package answering request `id` (0: pushed), at `ETH_BOUNDARY`.
fn eth_work(id: u64) -> String {
    format!(
        "{{\"id\":{id},\"jsonrpc\":\"2.0\",\"result\":[\"{ETH_HASH}\",\"{ETH_HASH}\",\"{ETH_BOUNDARY}\"]}}\n"
    )
}

/// The pool's `true` to request `id`.
fn eth_true(id: u64) -> String {
    format!("{{\"id\":{id},\"jsonrpc\":\"2.0\",\"result\":true}}\n")
}

/// An `eth_submitWork`'s params.
fn eth_share() -> String {
    format!("[\"0x63d8903c474b670f\",\"{ETH_HASH}\",\"{ETH_HASH}\"]")
}

/// One Stratum flow in all, an ethereum one from `kp`, its login counted once; `shares` shares,
/// all accepted at 2^32 hashes, none without difficulty.
fn assert_one_ethproxy_flow_from_kp_with_accepted_shares(r: &Value, shares: u64) {
    let from_kp = [
        ("range", "kp"),
        ("direction", "from"),
        ("dialect", "ethereum"),
    ];
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &from_kp), 1);
    assert_eq!(total(r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "ethereum"), ("agent", "unknown")];
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &login), 1);
    assert_eq!(total(r, "mining_sensor_miner_logins_total", &[]), 1);
    let accepted = [
        ("range", "kp"),
        ("coin", "ethereum"),
        ("result", "accepted"),
    ];
    assert_eq!(total(r, "mining_sensor_shares_total", &accepted), shares);
    assert_eq!(total(r, "mining_sensor_shares_total", &[]), shares);
    assert_eq!(
        total(r, "mining_sensor_shares_unknown_difficulty_total", &[]),
        0
    );
    let eth = [("range", "kp"), ("coin", "ethereum")];
    assert_eq!(
        total(r, "mining_sensor_share_hashes_total", &eth),
        shares << 32
    );
}

/// An ethproxy session (Ethereum) whose every client message is padded with an unknown key of
/// 600 bytes before its method, on port 443: its login (`eth_submitLogin` with an address), then
/// `rounds` rounds of the pool's work pushed (id 0, boundary 2^224: 2^256 / 2^224 = 2^32 hashes a
/// share), a padded `eth_submitWork` and the pool's `true`. The pool's messages carry no marker,
/// the client's none in the window: the program opens no flow. Each padded client message runs
/// past the window, so the program follows the client's next segments, and hands the pool's
/// segments over while it does (`opening_answers`); the agent reads the padded login whole and
/// opens the flow in the program's table (and `RECENT`), after which the pool's messages are
/// handed over as on any Stratum flow's. Every share is accepted at 2^32 hashes. (Before the
/// pool's answers were handed over during the follow, the rounds whose packets ran before the
/// agent had read the login, 86 to 258 of them in sixteen runs on 2 CPUs, counted without
/// difficulty and `unknown`; before the agent opened flows, there was no flow and every share
/// was `unknown` without hashes.)
#[test]
fn evasive_an_ethproxy_session_padded_in_every_client_message_is_opened_at_its_login() {
    let pad = "x".repeat(600);
    let rounds = 600 * replay_cpus() as u64;
    let mut w = wire_at(40200);
    w.send(
        true,
        eth_request(1, "eth_submitLogin", ETH_LOGIN, &pad).as_bytes(),
    );
    w.send(false, eth_true(1).as_bytes());
    for id in 2..rounds + 2 {
        w.send(false, eth_work(0).as_bytes());
        let submit = eth_request(id, "eth_submitWork", &eth_share(), &pad);
        w.send(true, submit.as_bytes());
        w.send(false, eth_true(id).as_bytes());
    }
    let r = run("ethproxy-padded", w.packets);
    assert_one_ethproxy_flow_from_kp_with_accepted_shares(&r, rounds);
}

/// ethminer's ethproxy session with its login alone padded with an unknown key of 600 bytes
/// before its method, on port 443: the login (an address), the pool's `true`, `eth_getWork`
/// answered by a work package at a boundary of 2^224 (2^32 hashes a share), then 5 rounds of an
/// `eth_submitWork`, the pool's `true` and a new work package at the same boundary. The program
/// follows the next 3 client segments unscanned (the login may run on in them) and opens the
/// flow at the fourth, an `eth_submitWork`; the pool's messages before that carry no marker. They
/// are handed over while the client is followed and until its next segment (`opening_answers`):
/// 1 flow, the login, 5 shares accepted, 5 x 2^32 hashes. Before, the first 3 shares (their
/// work read by nobody) counted without hashes and the first 2 as `unknown`.
#[test]
fn evasive_an_ethproxy_session_with_its_login_alone_padded_counts_every_share_with_its_hashes() {
    let pad = "x".repeat(600);
    let mut w = wire_at(40201);
    w.send(
        true,
        eth_request(1, "eth_submitLogin", ETH_LOGIN, &pad).as_bytes(),
    );
    w.send(false, eth_true(1).as_bytes());
    w.send(true, eth_request(2, "eth_getWork", "[]", "").as_bytes());
    w.send(false, eth_work(2).as_bytes());
    for id in 3..8 {
        let submit = eth_request(id, "eth_submitWork", &eth_share(), "");
        w.send(true, submit.as_bytes());
        w.send(false, eth_true(id).as_bytes());
        w.send(false, eth_work(0).as_bytes());
    }
    let r = run("ethproxy-login-padded", w.packets);
    assert_one_ethproxy_flow_from_kp_with_accepted_shares(&r, 5);
}

/// A Stratum V1 session (cpuminer's subscribe, an authorize with a Bitcoin address, two submits)
/// to pool port 3333 with every client message split after its `{` (pools join the segments):
/// the rest of the 65-byte subscribe is 64 bytes, a Noise hello's size, and the submits' rests
/// 86 bytes each, an encrypted extended share's size twice in a row. The rests are text, so no
/// Stratum V2: exactly 1 flow, the login (`bitcoin`, `cpuminer`), 2 accepted shares at the
/// difficulty 8 set (8 x 2^32 hashes each: 68,719,476,736), nothing `stratum_v2`. Before the
/// text test, the flow was flagged `stratum_v2` and the two rests counted 2 more shares.
#[test]
fn evasive_a_stratum_v1_session_split_after_every_brace_on_a_pool_port_counts_exactly() {
    let notify = r#"{"params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000","0000","00000000",[],"00000002","1c2ac4af","504e86b9",false],"id":null,"method":"mining.notify"}"#;
    let session: [(bool, &str); 10] = [
        (
            true,
            r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}"#,
        ),
        (
            false,
            r#"{"id":1,"result":[[["mining.notify","ae68"]],"08000002",4],"error":null}"#,
        ),
        (
            true,
            r#"{"id":2,"method":"mining.authorize","params":["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2","x"]}"#,
        ),
        (false, r#"{"id":2,"result":true,"error":null}"#),
        (
            false,
            r#"{"id":null,"method":"mining.set_difficulty","params":[8]}"#,
        ),
        (false, notify),
        (
            true,
            r#"{"id":3,"method":"mining.submit","params":["w","bf","00000000","504e86b9","00000001"]}"#,
        ),
        (false, r#"{"id":3,"result":true,"error":null}"#),
        (
            true,
            r#"{"id":4,"method":"mining.submit","params":["w","bf","00000000","504e86b9","00000002"]}"#,
        ),
        (false, r#"{"id":4,"result":true,"error":null}"#),
    ];
    let (m, p) = (ip(MINER), ip(POOL));
    let mut seq = [1000u32, 5000u32];
    let mut packets = Vec::new();
    for (up, msg) in session {
        let text = format!("{msg}\n");
        let parts: Vec<&[u8]> = if up {
            vec![&text.as_bytes()[..1], &text.as_bytes()[1..]]
        } else {
            vec![text.as_bytes()]
        };
        for part in parts {
            let (pkt, side) = if up {
                (Packet::tcp4(m, p, 40555, 3333, part), 0)
            } else {
                (Packet::tcp4(p, m, 3333, 40555, part), 1)
            };
            packets.push(pkt.tcp_seq(seq[side]));
            seq[side] += part.len() as u32;
        }
    }
    // With their newlines: the subscribe 65 bytes, each submit 87 (rests of 64 and 86).
    assert_eq!((session[0].1.len() + 1, session[6].1.len() + 1), (65, 87));
    let r = run("v1-split-braces", packets);
    assert_eq!(total(&r, "mining_sensor_stratum_flows_total", &[]), 1);
    let login = [("range", "kp"), ("coin", "bitcoin"), ("agent", "cpuminer")];
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &login), 1);
    assert_eq!(total(&r, "mining_sensor_miner_logins_total", &[]), 1);
    let accepted = [("range", "kp"), ("coin", "bitcoin"), ("result", "accepted")];
    assert_eq!(total(&r, "mining_sensor_shares_total", &accepted), 2);
    assert_eq!(total(&r, "mining_sensor_shares_total", &[]), 2);
    assert_eq!(
        total(&r, "mining_sensor_share_hashes_total", &[]),
        (2 * 8) << 32
    );
    let v2 = [("reason", "stratum_v2")];
    assert_eq!(total(&r, "mining_sensor_suspect_flows_total", &v2), 0);
}

/// XMRig's login padded with an unknown key of 600 bytes before its method, sent in two segments
/// cut at byte 256, 300 or 511: the first opens the message with no marker, fits the window and
/// is too long to be held whole (`OPENING_BYTES`), so the program hands it over and follows the
/// next segment (`opening::UNHELD`); deep inspection joins the two. The pool's reply opens the
/// flow; the login counts with its coin and agent (before, it was lost at these cuts; at byte 1,
/// 100 or 700 it counted: held, or its markers in the second segment's window).
#[test]
fn evasive_a_padded_login_split_within_the_window_replays_with_coin_and_agent() {
    let pad = "x".repeat(600);
    let login = xmrig_login(&pad);
    for cut in [256, 300, 511] {
        let mut w = wire_at(40777);
        let (a, b) = login.as_bytes().split_at(cut);
        w.send(true, a);
        w.send(true, b);
        w.send(false, LOGIN_REPLY.as_bytes());
        let r = run("padded-split", w.packets);
        assert_one_flow_to_kp_and_its_login(&r);
    }
}
