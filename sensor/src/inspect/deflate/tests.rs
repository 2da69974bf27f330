use std::net::Ipv4Addr;

use flate2::{Compress, Compression, FlushCompress};

use super::*;

/// Three messages of an XMRig session as Python's `zlib` compresses them for `websockets`
/// (`compressobj(wbits=-15, memLevel=5)`, each message followed by `flush(Z_SYNC_FLUSH)` and its
/// last four bytes `00 00 ff ff` left off, RFC 7692): the login (247 bytes, 220 compressed), the
/// first submit (190 bytes, 108 compressed) and the second (190 bytes, 12 compressed: it differs
/// from the first only in its id and nonce, the rest are back references into the first).
const LOGIN: &str = "2c8f5d6b83301846eff72be4bddaa0442d31532f474b47ab370ead3ac6c8fc48e36cd2fad16529fdef0b657787f35c1c9e2bf01a427701dd28c570aa208425726001c7663a4833412f1917469ce8408f2384d77f1302f69bba7d9d9fb3a0f471a1754c499bce8d5c47655026f939c89a69af8b8dde4dde324f3d7539335d88d52e481391c86dfced76be887ed6d948dff65bdc1eeaf4b7e4ddcb26e5955cdd9ba329823248592326c3799c706613e412e4588f1117b3b2944f3e097eb27afe355f6c176173c16255657b08dfcfd09e4908df6150b6031fb7dbc31f00";
const SUBMIT_0: &str = "7c8f490a80300c45efe2099aa6adf634d2b429280ee0b0f2f2c601411766f7ff27f0de766aeb1fed79a5be595edec74b61330669db91ea332380c4611c224b52f74935f1bc76077106d609a3211b9c2fab4a2900ad118db1d6b9521aef43208a3125e69cbffbc37fe10bfd0e";
const SUBMIT_1: &str = "8238c59856ae37a4adeb0100";

const WALLET: &str = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD";

fn login_text() -> String {
    format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\"]}}}}\n"
    )
}

fn submit_text(n: u32) -> String {
    format!(
        "{{\"id\":{},\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"5f3a\",\"job_id\":\"311\",\"nonce\":\"{n:08x}\",\"result\":\"f1e2d3c4b5a6978800112233445566778899aabbccddeeff0011223344556677\",\"algo\":\"rx/0\"}}}}\n",
        n + 2
    )
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A compressed text frame (c1) of `payload`, masked with `key` when given.
fn frame(payload: &[u8], key: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = test_support::websocket_frame(payload, key);
    f[0] = DEFLATED_TEXT_FIN;
    f
}

fn dir(port: u16) -> Direction {
    let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    (a.into(), port, b.into(), 8181)
}

/// Feeds `frames` as consecutive segments of `dir` from sequence number 1000.
fn feed(i: &mut Inflaters, d: Direction, frames: &[Vec<u8>], t: Instant) -> Vec<Option<Vec<u8>>> {
    let mut seq = 1000u32;
    frames
        .iter()
        .map(|f| {
            let out = i.messages(d, seq, f, true, t);
            seq = seq.wrapping_add(f.len() as u32);
            out
        })
        .collect()
}

#[test]
fn three_messages_of_python_zlib_inflate_with_context_takeover() {
    let (login, s0, s1) = (hex(LOGIN), hex(SUBMIT_0), hex(SUBMIT_1));
    assert_eq!((login.len(), s0.len(), s1.len()), (220, 108, 12));
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let frames = [frame(&login, key), frame(&s0, key), frame(&s1, key)];
    let mut i = Inflaters::default();
    let t = Instant::now();
    let out = feed(&mut i, dir(1), &frames, t);
    // Each message, unmasked and inflated, as a line (the JSON's own line end, then the frame's).
    assert_eq!(
        out[0].as_deref(),
        Some(format!("{}\n", login_text()).as_bytes())
    );
    assert_eq!(
        out[1].as_deref(),
        Some(format!("{}\n", submit_text(0)).as_bytes())
    );
    assert_eq!(
        out[2].as_deref(),
        Some(format!("{}\n", submit_text(1)).as_bytes())
    );
    assert_eq!((i.held(), i.lost, i.evicted), (1, 0, 0));
    // The third refers to the second's bytes: a reader that missed the second cannot read it.
    // Frames of 2 + 2 (a 16-bit length: 220 > 125) + 4 + 220 and 2 + 4 + 108 bytes: the third
    // at 1000 + 228 + 114 = 1342, after a gap of the second's 114.
    assert_eq!((frames[0].len(), frames[1].len()), (228, 114));
    let mut j = Inflaters::default();
    assert!(j.messages(dir(1), 1000, &frames[0], true, t).is_some());
    let third = format!("{}\n", submit_text(1)).into_bytes();
    assert_ne!(
        j.messages(dir(1), 1342, &frames[2], true, t),
        Some(third.clone())
    );
    // Control frames in the gap instead (a ping of 2 + 4 + 4 bytes and a pong of 2 + 4 + 4, as
    // the library sends them, which the program does not hand over): the stream goes on.
    let mut c = Inflaters::default();
    let out = feed(&mut c, dir(1), &frames[..2], t);
    assert!(out.iter().all(Option::is_some));
    assert_eq!(
        c.messages(dir(1), 1342 + 20, &frames[2], true, t),
        Some(third)
    );
    assert_eq!((c.held(), c.lost), (1, 0));
    // The first message seen of a direction is taken for its stream's first: the second
    // submit, seen first, refers to bytes never seen.
    let mut k = Inflaters::default();
    assert_eq!(feed(&mut k, dir(1), &[frames[2].clone()], t), vec![None]);
    assert_eq!((k.held(), k.lost), (0, 0));
}

#[test]
fn several_frames_in_a_segment_and_retransmissions() {
    let frames = [frame(&hex(LOGIN), None), frame(&hex(SUBMIT_0), None)];
    let mut i = Inflaters::default();
    let t = Instant::now();
    let seg = frames.concat();
    let out = i.messages(dir(1), 1, &seg, true, t).unwrap();
    assert_eq!(
        out,
        format!("{}\n{}\n", login_text(), submit_text(0)).into_bytes()
    );
    // The login again at its sequence number: a retransmission, skipped; the stream goes on
    // with the third message at 1 + 224 + 110 = 335 (frames of 2 + 2 + 220 and 2 + 108 bytes).
    assert_eq!(i.messages(dir(1), 1, &frames[0], true, t), None);
    let third = frame(&hex(SUBMIT_1), None);
    assert_eq!(
        i.messages(dir(1), 335, &third, true, t).unwrap(),
        format!("{}\n", submit_text(1)).into_bytes()
    );
    assert_eq!(i.lost, 0);
}

/// Under `client_no_context_takeover` each message starts a new stream: a missed message costs
/// nothing, and a message after a loss starts the direction again.
#[test]
fn without_context_takeover_every_message_inflates_alone() {
    let msgs = [login_text(), submit_text(0), submit_text(1)];
    let frames: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            let mut c = Compress::new(Compression::default(), false);
            let mut out = Vec::with_capacity(m.len() + 64);
            c.compress_vec(m.as_bytes(), &mut out, FlushCompress::Sync)
                .unwrap();
            assert_eq!(out[out.len() - 4..], SYNC_TAIL);
            out.truncate(out.len() - 4);
            frame(&out, Some([1, 2, 3, 4]))
        })
        .collect();
    let mut i = Inflaters::default();
    let t = Instant::now();
    // The first and the third, the second missed (a gap in the sequence numbers): both read.
    let third = 1 + (frames[0].len() + frames[1].len()) as u32;
    assert_eq!(
        i.messages(dir(1), 1, &frames[0], true, t).as_deref(),
        Some(format!("{}\n", msgs[0]).as_bytes())
    );
    assert_eq!(
        i.messages(dir(1), third, &frames[2], true, t).as_deref(),
        Some(format!("{}\n", msgs[2]).as_bytes())
    );
    // Read on after the gap: the third refers to nothing before it.
    assert_eq!((i.held(), i.lost), (1, 0));
}

#[test]
fn cut_frames_bombs_and_non_mining_flows_are_bounded() {
    let t = Instant::now();
    let login = frame(&hex(LOGIN), None);
    // Cut by the segment's end (or not captured whole): the direction is lost.
    let mut i = Inflaters::default();
    assert!(i.messages(dir(1), 1, &login, true, t).is_some());
    assert_eq!(i.messages(dir(1), 225, &login[..100], true, t), None);
    assert_eq!((i.held(), i.lost), (0, 1));
    // 1 MiB of zeros compresses to about 1 KB and would inflate past MAX_MESSAGE_BYTES (64 KiB).
    let zeros = vec![0u8; 1 << 20];
    let mut c = Compress::new(Compression::default(), false);
    let mut bomb = Vec::with_capacity(8 * 1024);
    c.compress_vec(&zeros, &mut bomb, FlushCompress::Sync)
        .unwrap();
    bomb.truncate(bomb.len() - 4);
    assert!(bomb.len() < 8 * 1024);
    let bomb = test_support::websocket_frame(&bomb, None);
    let mut bomb = bomb;
    bomb[0] = DEFLATED_TEXT_FIN;
    assert_eq!(i.messages(dir(2), 1, &bomb, true, t), None);
    assert_eq!(i.held(), 0);
    // A chat: 8 messages inflate (MAX_UNCONFIRMED_MESSAGES), the 9th gives the direction up,
    // and its later frames are skipped.
    let mut c = Compress::new(Compression::default(), false);
    let chat: Vec<Vec<u8>> = (0..10)
        .map(|n| {
            let m = format!("{{\"type\":\"chat\",\"text\":\"hello {n}\"}}");
            let mut out = Vec::with_capacity(128);
            c.compress_vec(m.as_bytes(), &mut out, FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - 4);
            frame(&out, None)
        })
        .collect();
    let mut j = Inflaters::default();
    let out = feed(&mut j, dir(3), &chat, t);
    assert_eq!(out.iter().filter(|o| o.is_some()).count(), 8);
    assert_eq!((j.held(), j.given_up.len()), (0, 1));
    // The same chat on a flow that showed Stratum: all 10.
    let mut k = Inflaters::default();
    let out = feed(&mut k, dir(4), &chat[..1], t);
    assert!(out[0].is_some());
    k.confirm((dir(4).2, dir(4).3, dir(4).0, dir(4).1));
    let seq = 1000 + chat[0].len() as u32;
    let mut at = seq;
    let mut n = 1;
    for f in &chat[1..] {
        n += k.messages(dir(4), at, f, true, t).is_some() as u32;
        at += f.len() as u32;
    }
    assert_eq!(n, 10);
}

#[test]
fn inflaters_are_bounded_in_number_and_age() {
    let t = Instant::now();
    let login = frame(&hex(LOGIN), None);
    let mut i = Inflaters::default();
    // 257 directions, each a millisecond later: the 257th evicts the oldest.
    for p in 0..=MAX_DIRECTIONS as u16 {
        let at = t + Duration::from_millis(p as u64);
        assert!(i.messages(dir(p), 1, &login, true, at).is_some());
    }
    assert_eq!((i.held(), i.evicted), (MAX_DIRECTIONS, 1));
    assert_eq!(i.bytes(), 256 * 43 * 1024);
    // Unused for MAX_AGE after the last one: all dropped.
    i.expire(t + Duration::from_millis(MAX_DIRECTIONS as u64 + 1) + MAX_AGE);
    assert_eq!(i.held(), 0);
}

/// A pong (or ping) written just before a compressed message shares its segment, as does an
/// uncompressed message: the control frame is skipped, the uncompressed text read as it is, and
/// the DEFLATE stream goes on, so that the third message, whose bytes refer to the second's,
/// still inflates.
#[test]
fn a_control_frame_or_an_uncompressed_message_before_a_compressed_one_is_read_past() {
    let (login, s0, s1) = (hex(LOGIN), hex(SUBMIT_0), hex(SUBMIT_1));
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    // A masked pong answering a 4-byte ping: 8a 84, the key, 4 bytes (10 in all).
    let pong = [0x8a, 0x84, 1, 2, 3, 4, 0x70, 0x6f, 0x6e, 0x67];
    // An uncompressed masked text frame (81) of a keepalive the client sends.
    let keepalive = br#"{"id":9,"jsonrpc":"2.0","method":"keepalived","params":{"id":"5f3a"}}"#;
    let plain = test_support::websocket_frame(keepalive, key);
    let second = [pong.as_slice(), &frame(&s0, key)].concat();
    let third = [plain.as_slice(), &frame(&s1, key)].concat();
    assert!(compressed(&second) && compressed(&third) && !compressed(&pong) && !compressed(&plain));
    let mut i = Inflaters::default();
    let t = Instant::now();
    let out = feed(&mut i, dir(2), &[frame(&login, key), second, third], t);
    assert_eq!(
        out[1].as_deref(),
        Some(format!("{}\n", submit_text(0)).as_bytes())
    );
    let keepalive_line = [keepalive.as_slice(), b"\n"].concat();
    assert_eq!(
        out[2].as_deref(),
        Some(
            [keepalive_line.as_slice(), submit_text(1).as_bytes(), b"\n"]
                .concat()
                .as_slice()
        )
    );
    assert_eq!((i.lost, i.evicted), (0, 0));
    // A control frame cut by the segment's end, or one with a 126-byte payload (no control
    // frame): not read past, nothing compressed found.
    assert!(!compressed(&pong[..5]));
    assert!(!compressed(&[0x89, 0x7e, 0xc1, 0x00]));
}
