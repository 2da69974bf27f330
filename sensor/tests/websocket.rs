//! Stratum inside WebSocket frames between two real WebSocket endpoints (issue "Encrypted and
//! evasive mining": browser-miner bridges carry a miner's Stratum in WebSocket text frames, the
//! client's masked): the Python `websockets` library (the version setup pins) on both ends, the
//! client sending an XMRig login and `SHARES` submits, each a text frame, the server answering as a
//! pool. The sensor must count the flow, the login with its coin and agent, and every share with
//! its hashes, exactly as for plaintext Stratum.
//!
//! ```text
//!  miner ns                     vantage ns (mining-sensor, XDP native on evv0, evv1)       pool ns
//!  evm0 198.18.22.2/24  <--->  evv0 198.18.22.1/24   [forwarding]   evv1 198.18.23.1/24  <--->  evp0 198.18.23.2/24
//! ```
//!
//! Seven times: with compression off on both ends (the framing and the masking), and with the
//! library's default permessage-deflate (RFC 7692, context takeover both ways: the kernel hands
//! the compressed frames over, deep inspection inflates each direction in order and opens the
//! flow, README "Reshaped messages"). And uncompressed with every message sent in frames of 8
//! characters (RFC 6455 fragmentation: deep inspection joins them, `inspect::fragments`). And
//! uncompressed with every message that has parameters padded past three segments (a frame's
//! rest in the next segments, masked, with no header). And compressed with every message sent
//! in frames of 8 characters (joined, then inflated). And compressed with every message that has
//! parameters, and the pool's login reply, padded with random letters past three segments
//! (compressed frames cut by their segments' ends). And uncompressed and padded between
//! addresses in no watched range. All but the first also hold a
//! false-positive trap: a WebSocket chat of JSON that
//! is not mining, sent the same way, from the miner's address to a chat server in the pool's
//! namespace, which must count nothing.
//!
//! Needs root, iproute2 and the virtual environment `cargo xtask setup` makes for the TLS test
//! (`websockets`). Addresses are from 198.18.0.0/15 only; every end runs under `timeout`, and the
//! sessions are `SHARES` request-reply exchanges and `CHAT` chat messages.

mod common;

use common::{Line, Proc, http_get, wait_for};

use std::{process::Command, time::Duration};

const SENSOR_PORT: u16 = 19832;
const RANGE: &str = "wsminer";
const POOL: &str = "198.18.23.2";
const POOL_PORT: u16 = 8181;
/// Shares the client submits, each answered before the next.
const SHARES: u64 = 12;
/// The login reply's target, `f3220000`: t = 0x22f3 = 8,947; (2^32-1) / 8,947 = 480,045 (rest
/// 1,680), so a share is 480,045 hashes (contract.md, Monero's 4-byte target).
const TARGET: &str = "f3220000";
const SHARE_HASHES: u64 = 480_045;

/// Chat messages the trap's client sends, each answered.
const CHAT: u64 = 12;
const CHAT_PORT: u16 = 8282;

/// Both ends; COMPRESSION is `deflate` (the library's default), `none`, `fragments` (none,
/// and every message sent in frames of 8 characters), `padded` (none, and every message with
/// parameters padded by 3,000 bytes after them), `deflate-fragments` (the default
/// compression, and every message sent in frames of 8 characters), or `deflate-padded` (the
/// default compression, every message with parameters and the login reply padded by 4,000
/// random letters). `server HOST PORT
/// TARGET COMPRESSION`: answers each text message as a pool (a login with a job at TARGET, a
/// submit with OK) until the client closes. `client URI SHARES COMPRESSION`: XMRig's login,
/// then SHARES submits, each waited for; prints `shares N` (the answers that said OK).
/// `chat-server HOST PORT COMPRESSION` and `chat URI N COMPRESSION`: a chat of JSON messages that
/// are not mining (a room join, N messages, each acknowledged and echoed); prints `chat N`.
const SCRIPT: &str = r#"
import asyncio, json, random, sys
import websockets

WALLET = "48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD"

# Pings both ways every 0.2 s (the library's default is 20 s): control frames between the
# messages, which the sensor does not see and must read past.
PING = 0.2

def compression(arg):
    return "deflate" if arg.startswith("deflate") else None

# `fragments`: every message in frames of 8 characters (a text frame without FIN, continuations,
# an empty last one with FIN: how the library sends an iterable), no frame a whole message.
# `padded`: every message with parameters (the client's, the chat's) padded at their end with an
# unknown key of PAD bytes, one frame over three segments of the link's MSS.
PAD = 3000
# `deflate-padded`: the same with NOISE random letters of 64 (6 bits each, which DEFLATE cannot
# squeeze: about 3,000 bytes compressed, a frame over three segments), and the pool's login reply
# padded so too.
NOISE = 4000
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

def noise():
    return "".join(random.choice(LETTERS) for _ in range(NOISE))

async def send(ws, comp, text):
    if comp in ("padded", "deflate-padded") and isinstance(json.loads(text).get("params"), dict):
        msg = json.loads(text)
        msg["params"]["pad"] = "x" * PAD if comp == "padded" else noise()
        text = json.dumps(msg, separators=(",", ":")) + "\n"
    if comp in ("fragments", "deflate-fragments"):
        await ws.send([text[i:i + 8] for i in range(0, len(text), 8)])
    else:
        await ws.send(text)

async def server(host, port, target, comp):
    async def handler(ws):
        async for text in ws:
            msg = json.loads(text)
            if msg["method"] == "login":
                reply = {"id": msg["id"], "jsonrpc": "2.0", "error": None, "result": {
                    "id": "5f3a", "job": {"blob": "0e0ea8c2a8f405", "job_id": "311", "target": target,
                    "algo": "rx/0", "height": 2540000, "seed_hash": "7b4d"}, "status": "OK"}}
                if comp == "deflate-padded":
                    reply["result"]["pad"] = noise()
            else:
                reply = {"id": msg["id"], "jsonrpc": "2.0", "error": None, "result": {"status": "OK"}}
            await send(ws, comp, json.dumps(reply, separators=(",", ":")) + "\n")
    async with websockets.serve(handler, host, port, compression=compression(comp), ping_interval=PING):
        print("ready", flush=True)
        await asyncio.sleep(60)

async def client(uri, shares, comp):
    async with websockets.connect(uri, compression=compression(comp), ping_interval=PING) as ws:
        login = {"id": 1, "jsonrpc": "2.0", "method": "login", "params": {"login": WALLET, "pass": "x",
                 "agent": "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0", "algo": ["rx/0"]}}
        await send(ws, comp, json.dumps(login, separators=(",", ":")) + "\n")
        assert "job" in await ws.recv()
        ok = 0
        for n in range(shares):
            submit = {"id": n + 2, "jsonrpc": "2.0", "method": "submit", "params": {"id": "5f3a",
                      "job_id": "311", "nonce": "%08x" % n,
                      "result": "f1e2d3c4b5a6978800112233445566778899aabbccddeeff0011223344556677",
                      "algo": "rx/0"}}
            await send(ws, comp, json.dumps(submit, separators=(",", ":")) + "\n")
            ok += '"OK"' in await ws.recv()
            await asyncio.sleep(0.1)
    print("shares", ok, flush=True)

async def chat_server(host, port, comp):
    async def handler(ws):
        async for text in ws:
            msg = json.loads(text)
            await send(ws, comp, json.dumps({"id": msg["id"], "result": {"status": "OK", "delivered": True}}))
            if msg["method"] == "message":
                await send(ws, comp, json.dumps({"method": "message", "params": {"room": "lobby",
                              "from": "ana", "text": msg["params"]["text"], "ts": 1700000000 + msg["id"]}}))
    async with websockets.serve(handler, host, port, compression=compression(comp), ping_interval=PING):
        print("ready", flush=True)
        await asyncio.sleep(60)

async def chat(uri, n, comp):
    got = 0
    async with websockets.connect(uri, compression=compression(comp), ping_interval=PING) as ws:
        await send(ws, comp, json.dumps({"id": 1, "method": "join", "params": {"room": "lobby", "user": "bo",
                                  "agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}}))
        assert '"OK"' in await ws.recv()
        for i in range(n):
            await send(ws, comp, json.dumps({"id": i + 2, "method": "message", "params": {"room": "lobby",
                                      "text": "hello number %d, see you at the submit of the report" % i}}))
            got += '"OK"' in await ws.recv()
            await ws.recv()
            await asyncio.sleep(0.02)
    print("chat", got, flush=True)

mode, args = sys.argv[1], sys.argv[2:]
if mode == "server":
    asyncio.run(server(args[0], int(args[1]), args[2], args[3]))
elif mode == "client":
    asyncio.run(client(args[0], int(args[1]), args[2]))
elif mode == "chat-server":
    asyncio.run(chat_server(args[0], int(args[1]), args[2]))
else:
    asyncio.run(chat(args[0], int(args[1]), args[2]))
"#;

/// `SCRIPT args` in `ns`, under `timeout`.
fn script(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "timeout", "90"])
        .arg(common::corpus_python())
        .args(["-c", SCRIPT])
        .args(args);
    c
}

/// A server of SCRIPT's (`server` or `chat-server`) in `ns`, once it said it is listening.
fn serve(ns: &str, args: &[&str], log: std::path::PathBuf) -> Proc {
    common::spawn_ready(script(ns, args), &log, "a WebSocket server")
}

/// A client of SCRIPT's in `ns`, run to its end; its one output line.
fn run_client(ns: &str, args: &[&str]) -> String {
    let client = script(ns, args).output().expect("a WebSocket client");
    assert!(
        client.status.success(),
        "client: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    String::from_utf8_lossy(&client.stdout).trim().to_string()
}

#[test]
fn stratum_in_websocket_frames_between_real_endpoints_counts_exactly() {
    session("evws", "none");
}

/// The same session with permessage-deflate, as browsers and the library offer it by default,
/// beside a compressed chat that must count nothing.
#[test]
fn stratum_in_compressed_websocket_frames_counts_exactly() {
    session("evwz", "deflate");
}

/// The same session uncompressed, every message of both ends sent in frames of 8 characters
/// (RFC 6455 fragmentation, which every endpoint must accept: no frame holds a whole marker),
/// beside a chat sent the same way that must count nothing. The program hands the fragments over
/// on the watched range's flows and deep inspection joins them (`inspect::fragments`).
#[test]
fn stratum_in_fragmented_websocket_messages_counts_exactly() {
    session("evwf", "fragments");
}

/// The same session uncompressed, the login, every submit and the chat's messages padded after
/// their parameters with 3,000 bytes: each a frame over three segments (the veth's MSS, 1,448
/// bytes), whose rests open with masked bytes of the library's random keys, any byte, a TLS
/// record's type or a frame's first byte among them. The program finds the login and each
/// submit in its first segment and follows the frame's rest to its end (`opening_follow`);
/// deep inspection joins each message.
#[test]
fn stratum_in_padded_websocket_frames_over_segments_counts_exactly() {
    session("evwp", "padded");
}

/// The padded session between two addresses in no watched range (the configuration watches
/// another /24), on a port that is no pool port: counted under `unwatched`, as exactly. The
/// program follows each frame's rest there too, and segments of such flows that open with a byte
/// it reads no JSON in are looked for while one is followed (`UNWATCHED_FOLLOW`).
#[test]
fn stratum_in_padded_websocket_frames_between_unwatched_addresses_counts_exactly() {
    session_in("evwu", "padded", false);
}

/// The same session with permessage-deflate and every message of both ends sent in frames of 8
/// characters: the library compresses each frame's text in the direction's one stream, RSV1 on a
/// message's first frame only (`41`), continuations plain (`00`, `80`). The program hands the
/// first frames over (`websocket::DEFLATED_TEXT`) and the continuations as fragments; deep
/// inspection joins each message and inflates it in its place in the stream.
#[test]
fn stratum_in_compressed_websocket_messages_in_several_frames_counts_exactly() {
    session("evwd", "deflate-fragments");
}

/// The same session with permessage-deflate, every message with parameters (the client's, the
/// chat's) and the pool's login reply padded with 4,000 random letters of 64, which DEFLATE cannot
/// squeeze below 6 bits each: each such frame, about 3,000 bytes compressed, over three
/// segments, its rest opening with compressed bytes. The program follows a compressed frame's
/// rest to its end, both ways (`opening_follow_start`); deep inspection joins it and inflates it
/// in its place in the stream (`inspect::fragments`).
#[test]
fn stratum_in_compressed_websocket_frames_padded_past_a_segment_counts_exactly() {
    session("evwq", "deflate-padded");
}

/// The session with COMPRESSION `none`, `deflate`, `fragments`, `padded`, `deflate-fragments` or
/// `deflate-padded`
/// (with the chat beside it but for `none`), in namespaces named from `prefix`, the miner in
/// range `RANGE`.
fn session(prefix: &str, compression: &str) {
    session_in(prefix, compression, true);
}

/// [`session`], the miner in range `RANGE` when `watched`, else in none (the range is
/// 198.18.99.0/24 then, and the counts are `unwatched`'s).
fn session_in(prefix: &str, compression: &str, watched: bool) {
    let t = Line::new(
        prefix,
        ["evm0", "198.18.22.2/24", "evv0", "198.18.22.1/24"],
        ["evp0", "198.18.23.2/24", "evv1", "198.18.23.1/24"],
    );
    let dir = std::env::temp_dir().join(format!("{prefix}-stratum-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sensor.toml");
    let (cidr, range, direction) = if watched {
        ("198.18.22.0/24", RANGE, "from")
    } else {
        ("198.18.99.0/24", "unwatched", "none")
    };
    std::fs::write(
        &config,
        format!(
            "drain_interval = \"200ms\"\n[[ranges]]\nname = \"{RANGE}\"\ncidrs = [\"{cidr}\"]\n"
        ),
    )
    .unwrap();
    let log = dir.join("sensor.log");
    let sensor = common::sensor_on_line(&t, ["evv0", "evv1"], SENSOR_PORT, &config, &log);

    let port = POOL_PORT.to_string();
    let server = serve(
        &t.pool,
        &["server", POOL, &port, TARGET, compression],
        dir.join("server.log"),
    );
    let chat = (compression != "none").then(|| {
        let port = CHAT_PORT.to_string();
        serve(
            &t.pool,
            &["chat-server", POOL, &port, compression],
            dir.join("chat.log"),
        )
    });

    let uri = format!("ws://{POOL}:{POOL_PORT}/");
    let shares = SHARES.to_string();
    // The pool said OK to every share.
    assert_eq!(
        run_client(&t.miner, &["client", &uri, &shares, compression]),
        format!("shares {SHARES}")
    );
    if chat.is_some() {
        let uri = format!("ws://{POOL}:{CHAT_PORT}/");
        let n = CHAT.to_string();
        assert_eq!(
            run_client(&t.miner, &["chat", &uri, &n, compression]),
            format!("chat {CHAT}")
        );
    }
    drop(server);
    drop(chat);

    let settle = Duration::from_secs(10);
    let monero = [("coin", "monero"), ("range", range)];
    let accepted = [&monero[..], &[("result", "accepted")]].concat();
    // 12 shares x 480,045 = 5,760,540 hashes.
    for (name, labels, want) in [
        (
            "mining_sensor_stratum_flows_total",
            &[
                ("range", range),
                ("direction", direction),
                ("dialect", "monero"),
            ][..],
            1.0,
        ),
        (
            "mining_sensor_miner_logins_total",
            &[("agent", "xmrig"), ("coin", "monero"), ("range", range)][..],
            1.0,
        ),
        // The flow in the kernel's table (opened there by the agent when compressed).
        (
            "mining_sensor_mining_flows",
            &[("dialect", "monero"), ("range", range)][..],
            1.0,
        ),
        ("mining_sensor_shares_total", &accepted[..], SHARES as f64),
        (
            "mining_sensor_share_hashes_total",
            &monero[..],
            (SHARES * SHARE_HASHES) as f64,
        ),
    ] {
        assert_eq!(
            wait_for(&t.vantage, SENSOR_PORT, name, labels, want, settle),
            want,
            "{name} {labels:?}: {}",
            http_get(&t.vantage, SENSOR_PORT, "/metrics")
        );
    }
    // Nothing else: one flow, one login, every share accepted (none rejected or unknown); the
    // chat (13 messages from the client, 25 from the server: 13 acknowledgements and 12 echoes)
    // none of these. The chat ended before the pool's counts were awaited; its last frames are
    // given the drain's and the inspector's time to pass.
    std::thread::sleep(Duration::from_secs(2));
    let m = common::samples(&http_get(&t.vantage, SENSOR_PORT, "/metrics"));
    let sum = |name: &str| common::range_sum(&m, name, range);
    assert_eq!(sum("mining_sensor_stratum_flows_total"), 1.0);
    assert_eq!(sum("mining_sensor_miner_logins_total"), 1.0);
    assert_eq!(sum("mining_sensor_shares_total"), SHARES as f64);
    // Compressed: the session's two directions hold an inflater each (43 KiB, 44,032 bytes, each:
    // 88,064), the chat's none (each direction gave up after 8 messages without Stratum); none
    // evicted. Uncompressed: none.
    let inflaters = if compression.starts_with("deflate") {
        2
    } else {
        0
    };
    let exported = |name: &str| -> f64 {
        m.iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(
        exported("mining_sensor_inflate_bytes"),
        (inflaters * 44_032) as f64
    );
    assert_eq!(exported("mining_sensor_inflate_evictions_total"), 0.0);
    // No message left open half-joined, none evicted (the fragments' memory counts with the other
    // joins').
    assert_eq!(exported("mining_sensor_reassembly_bytes"), 0.0);
    assert_eq!(exported("mining_sensor_reassembly_evictions_total"), 0.0);
    drop(sensor);
    let _ = std::fs::remove_dir_all(&dir);
}
