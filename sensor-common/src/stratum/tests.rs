//! The scanner on what miners and pools send and on the known traps, and its fast scan held to
//! the byte-wise one.

use super::{window::eq_bytes, *};

fn d(s: &str) -> Option<Dialect> {
    scan_slice(s.as_bytes())
}

const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

#[test]
fn the_slot_table_separates_every_marker_and_method() {
    let mut seen = std::collections::HashSet::new();
    for h in MARKER_HASHES.iter().chain([&METHOD_HASH]) {
        assert!(seen.insert(slot(*h)), "slot collision");
    }
    for (i, m) in MARKERS.iter().enumerate() {
        assert_eq!(marker_bit(fnv1a(m), m.len() as u32), bit(i));
    }
    assert_eq!(marker_bit(fnv1a(b"params"), 6), 0);
}

#[test]
fn markers_are_unique_and_hashes_do_not_collide() {
    for i in 0..MARKERS.len() {
        for j in 0..i {
            assert_ne!(MARKERS[i], MARKERS[j]);
            assert_ne!(MARKER_HASHES[i], MARKER_HASHES[j], "{i} {j}");
        }
        assert_ne!(MARKER_HASHES[i], METHOD_HASH);
    }
}

/// Blank lines, CRLFs and spaces before a message's `{` (pools' parsers skip them): still a
/// message start. Text before the `{`, or a `{` after another byte on its line, is not.
#[test]
fn blanks_before_the_first_brace() {
    let login = format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0\"}}}}\n"
    );
    for lead in ["\r\n", "  ", "\n\n  \t", "\r\n\r\n "] {
        assert_eq!(
            d(&format!("{lead}{login}")),
            Some(Dialect::Monero),
            "{lead:?}"
        );
    }
    assert_eq!(d(&format!("x\n{login}")), None);
    assert_eq!(d(&format!(" x {login}")), None);
}

#[test]
fn xmrig_login_compact() {
    let login = format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\"]}}}}\n"
    );
    assert_eq!(d(&login), Some(Dialect::Monero));
}

#[test]
fn xmr_stak_and_cpuminer_order_with_spaces() {
    let a = format!(
        "{{\"method\": \"login\", \"params\": {{\"login\": \"{WALLET}\", \"pass\": \"x\", \"agent\": \"xmr-stak-cpu/1.0.0\"}}, \"id\": 1}}\n"
    );
    assert_eq!(d(&a), Some(Dialect::Monero));
    let b = format!(
        "{{\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"w1\",\"agent\":\"cpuminer-multi/1.3\"}},\"id\":2}}\n"
    );
    assert_eq!(d(&b), Some(Dialect::Monero));
}

#[test]
fn a_login_without_agent_needs_a_wallet_long_string() {
    // coin-hive-stratum (src/Miner.ts, `sendToPool("login", {login, pass})`, framed by
    // `JSON.stringify` in src/Connection.ts): the wallet, optionally `.user` and `+diff`, no agent.
    for login in [WALLET.to_owned(), format!("{WALLET}.site1+50000")] {
        let m = format!(
            "{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{login}\",\"pass\":\"x\"}}}}\n"
        );
        assert_eq!(d(&m), Some(Dialect::Monero), "{m}");
    }
    // 95 characters is the bound: 94 (a wallet one short) is a user name like any other.
    assert_eq!(WALLET.len(), ADDRESS_MIN_LEN as usize);
    let short = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{}\",\"pass\":\"x\"}}}}\n",
        &WALLET[..94]
    );
    assert_eq!(d(&short), None);
    // The wallet without `pass`, or under another method: no login.
    let no_pass =
        format!("{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\"}}}}\n");
    assert_eq!(d(&no_pass), None);
    let other = format!(
        "{{\"id\":1,\"method\":\"signin\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\"}}}}\n"
    );
    assert_eq!(d(&other), None);
    // The rules run when a marker closes: a wallet after the last marker (`pass` first, no
    // agent) is not seen by the kernel; deep inspection still counts the login on a flow whose
    // packets it reads (see the parser's `where_the_kernel_table_and_the_parser_differ`).
    let late = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"pass\":\"x\",\"login\":\"{WALLET}\"}}}}\n"
    );
    assert_eq!(d(&late), None);
    // A wallet-long string in one message does not carry over to the next line.
    let two = format!(
        "{{\"id\":1,\"note\":\"{WALLET}\"}}\n{{\"id\":2,\"method\":\"login\",\"params\":{{\"login\":\"bob\",\"pass\":\"pw\"}}}}\n"
    );
    assert_eq!(d(&two), None);
}

#[test]
fn monero_other_messages() {
    assert_eq!(
        d(
            "{\"id\":7,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"s1\",\"job_id\":\"j\",\"nonce\":\"0a0b0c0d\",\"result\":\"ff\",\"algo\":\"rx/0\"}}\n"
        ),
        Some(Dialect::Monero)
    );
    assert_eq!(
        d("{\"id\":9,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"s1\"}}\n"),
        Some(Dialect::Monero)
    );
    assert_eq!(
        d(
            "{\"jsonrpc\":\"2.0\",\"method\":\"job\",\"params\":{\"blob\":\"0101\",\"job_id\":\"j2\",\"target\":\"ffff\"}}\n"
        ),
        Some(Dialect::Monero)
    );
    assert_eq!(
        d(
            "{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"s\",\"job\":{\"blob\":\"0707\",\"job_id\":\"1\"},\"status\":\"OK\"}}\n"
        ),
        Some(Dialect::Monero)
    );
    assert_eq!(
        d("{\"id\":3,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"KEEPALIVED\"}}\n"),
        Some(Dialect::Monero)
    );
}

#[test]
fn bitcoin_and_ethereum() {
    assert_eq!(
        d("{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer-opt/3.x\"]}\n"),
        Some(Dialect::Bitcoin)
    );
    assert_eq!(
        d("{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"a\"]}\n"),
        Some(Dialect::Bitcoin)
    );
    assert_eq!(
        d("{\"id\":1,\"result\":[[[\"mining.notify\",\"ae68\"]],\"08000002\",4],\"error\":null}\n"),
        Some(Dialect::Bitcoin)
    );
    assert_eq!(
        d(
            "{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"ethminer/0.19\", \"EthereumStratum/1.0.0\"]}\n"
        ),
        Some(Dialect::Ethereum)
    );
    assert_eq!(
        d(
            "{\"worker\": \"eth1.0\", \"jsonrpc\": \"2.0\", \"params\": [\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\", \"x\"], \"id\": 2, \"method\": \"eth_submitLogin\"}\n"
        ),
        Some(Dialect::Ethereum)
    );
}

/// EthereumStratum/2.0.0's first message, as ethminer writes it (`EthStratumClient::
/// connect_handler`, `stratum3+tcp`, and the first try of its protocol detection): its agent in
/// `params.agent`. Ethereum at `agent`; `mining.hello` with no agent, or `"agent"` with another
/// method, says nothing.
#[test]
fn ethereumstratum_2_hello() {
    let hello = r#"{"id":1,"method":"mining.hello","params":{"agent":"ethminer-0.19.0","host":"eth.pool","port":"d05","proto":"EthereumStratum/2.0.0"}}"#;
    assert_eq!(d(&format!("{hello}\n")), Some(Dialect::Ethereum));
    assert_eq!(
        d("{\"id\":1,\"method\":\"MINING.HELLO\",\"params\":{\"agent\":\"x\"}}\n"),
        Some(Dialect::Ethereum)
    );
    assert_eq!(
        d(
            "{\"id\":1,\"method\":\"mining.hello\",\"params\":{\"proto\":\"EthereumStratum/2.0.0\"}}\n"
        ),
        None
    );
    assert_eq!(
        d("{\"id\":1,\"method\":\"hello\",\"params\":{\"agent\":\"ethminer-0.19.0\"}}\n"),
        None
    );
}

#[test]
fn second_message_after_newline_and_split_start() {
    // Tail of a previous message (split across segments, starting inside a string), then a new one.
    let s = "b2c3\",\"algo\":\"rx/0\"}}\n{\"id\":4,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"x\"}}\n";
    assert_eq!(d(s), Some(Dialect::Monero));
    let two = "{\"id\":1,\"result\":true,\"error\":null}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"u\",\"p\"]}\n";
    assert_eq!(d(two), Some(Dialect::Bitcoin));
}

#[test]
fn false_positive_traps_stay_silent() {
    let html = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><script>var x = {{\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6\"}}}};</script>"
    );
    assert_eq!(d(&html), None);
    // A JavaScript line that is itself a login object, but follows `;`, not a JSON message.
    let js = "var a = 1;\n{\"method\":\"login\",\"params\":{\"login\":\"a\",\"pass\":\"b\",\"agent\":\"c\"}}\n";
    assert_eq!(d(js), None);
    assert_eq!(
        d("{\"jsonrpc\":\"2.0\",\"method\":\"eth_blockNumber\",\"params\":[],\"id\":1}\n"),
        None
    );
    assert_eq!(
        d(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"processId\":1,\"rootUri\":\"file:///x\"}}\n"
        ),
        None
    );
    // A web API's login without a miner's agent.
    assert_eq!(
        d(
            "{\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"bob\",\"pass\":\"pw\"},\"id\":1}\n"
        ),
        None
    );
    // "submit" as a key or plain value, not a method.
    assert_eq!(
        d("{\"action\":\"submit\",\"job_id\":\"1\",\"nonce\":\"2\"}\n"),
        None
    );
    // Binary on a pool port.
    let bin: [u8; 16] = [
        0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3, b'{', b'"', 0, 0, 0,
    ];
    assert_eq!(scan_slice(&bin), None);
}

#[test]
fn long_strings_end_at_every_alignment() {
    // The 8-byte skip must stop at a closing quote, backslash or newline wherever it falls.
    for pad in 0..20 {
        let wallet: String = "4".repeat(95 + pad);
        let login = format!(
            "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{wallet}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0\"}}}}\n"
        );
        assert_eq!(d(&login), Some(Dialect::Monero), "pad {pad}");
        let escaped = format!(
            "{{\"id\":1,\"note\":\"{}\\\"method\\\":\\\"keepalived\\\"\"}}\n",
            "n".repeat(30 + pad)
        );
        assert_eq!(d(&escaped), None, "pad {pad}: {escaped}");
        let two = format!(
            "{{\"id\":1,\"result\":\"{}\"}}\n{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[]}}\n",
            "r".repeat(30 + pad)
        );
        assert_eq!(d(&two), Some(Dialect::Bitcoin), "pad {pad}");
    }
    assert_eq!(MAX_MARKER_LEN, 27);
    assert_eq!(eq_bytes(u64::from_le_bytes(*b"abcdefg\""), b'"'), 1 << 63);
    assert_eq!(eq_bytes(u64::from_le_bytes(*b"a!!!!!!!"), b' '), 0);
    assert_eq!(eq_bytes(u64::from_le_bytes(*b" !!!!!!!"), b' '), 0x80);
}

#[test]
fn fast_and_byte_wise_scans_agree() {
    // Messages assembled from the pieces that steer the scanner (markers, "method", blanks,
    // escapes, line ends, long strings), cut at random lengths, with other bytes after the
    // cut as in the kernel's reused window.
    let mut pieces: Vec<Vec<u8>> = MARKERS
        .iter()
        .map(|m| format!("\"{}\"", std::str::from_utf8(m).unwrap()).into_bytes())
        .collect();
    for p in [
        "\"method\"",
        ":",
        ": ",
        ",",
        ", ",
        "{",
        "}",
        "[",
        "]",
        " ",
        "\t",
        "\r",
        "\n",
        "}\n",
        "}\r\n",
        "}\r\r\r\n",
        "\r\r\r\r\r\r\r\r\r\n",
        "\\",
        "\\\"",
        "\"",
        "1",
        "null",
        "\"x\"",
        "\"params\"",
        "\"id\"",
        "\"jsonrpc\"",
        "\"2.0\"",
        "\"rx/0\"",
        "\"abcdefgh\"",
        "\"abcdefghijklmnopqrstuvwxyz01\"",
        "{\"id\":1,",
        "\"method\":\"login\"",
        "\"method\" : \"mining.submit\"",
        "\"method\":\"LOGIN\"",
        "\"method\": \"Mining.Submit\"",
        "\"method\":\"KeepAlived\"",
        "\"LOGIN\"",
        "\"AZ@[`{az\"",
        "{\n  ",
        ",\n    ",
        "\r\n  }",
        "\n}\n",
        "{{",
        "}}}",
        "\"\\u006cogin\"",
        "\"method\":\"\\u004bEEPALIVED\"",
        "\\u00",
        "\\u0",
        "\\u016c",
        "\\/",
        "u0070",
        "\"é\"",
        "\u{1}",
        "ÿ",
    ] {
        pieces.push(p.as_bytes().to_vec());
    }
    pieces.push(format!("\"{WALLET}\"").into_bytes());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut found = [0usize; 4];
    for _ in 0..20_000 {
        let mut msg = Vec::new();
        if next(2) == 0 {
            msg.push(b'{');
        }
        while msg.len() < WINDOW + 40 {
            msg.extend_from_slice(&pieces[next(pieces.len())]);
        }
        for _ in 0..4 {
            let len = next(WINDOW + 1);
            let mut buf = Window::new();
            let n = msg.len().min(WINDOW);
            buf.bytes_mut()[..n].copy_from_slice(&msg[..n]);
            let fast = scan(&mut buf, len);
            let slow = scan_byte_wise(&msg, len);
            assert_eq!(
                fast,
                slow,
                "len {len}: {}",
                String::from_utf8_lossy(&msg[..len])
            );
            found[fast as usize] += 1;
            // The same on a known flow's payload.
            let fast = scan_flow(&mut buf, len, true);
            let slow = scan_byte_wise_flow(&msg, len, true);
            assert_eq!(
                fast,
                slow,
                "known flow, len {len}: {}",
                String::from_utf8_lossy(&msg[..len])
            );
            // And on a new flow to a pool endpoint.
            let fast = scan_flow(&mut buf, len, Prior::PoolLogin);
            let slow = scan_byte_wise_flow(&msg, len, Prior::PoolLogin);
            assert_eq!(
                fast,
                slow,
                "known pool, len {len}: {}",
                String::from_utf8_lossy(&msg[..len])
            );
        }
    }
    // The generator reaches every outcome, so the comparison covers them all.
    assert!(found.iter().all(|&n| n > 100), "{found:?}");
}

#[test]
fn escaped_quotes_do_not_break_tokens() {
    let s = "{\"id\":1,\"note\":\"a \\\"method\\\": \\\"keepalived\\\"\",\"x\":1}\n";
    assert_eq!(d(s), None);
}

/// Method names in other letter cases (ckpool matches `mining.*` names ignoring case): a
/// method's value is hashed folded to lower case, every other string as sent.
#[test]
fn method_names_in_other_letter_cases() {
    let login = format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"LOGIN\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0\"}}}}\n"
    );
    assert_eq!(d(&login), Some(Dialect::Monero));
    assert_eq!(
        d("{\"id\":1,\"method\":\"Mining.Subscribe\",\"params\":[\"cpuminer/2.5.1\"]}\n"),
        Some(Dialect::Bitcoin)
    );
    assert_eq!(
        d("{\"id\":2,\"method\":\"MINING.AUTHORIZE\",\"params\":[\"w\",\"x\"]}\n"),
        Some(Dialect::Bitcoin)
    );
    assert_eq!(
        d("{\"id\":3,\"method\":\"KeepAlived\",\"params\":{\"id\":\"s\"}}\n"),
        Some(Dialect::Monero)
    );
    assert_eq!(
        d(
            "{\"id\":1,\"method\":\"ETH_SUBMITLOGIN\",\"params\":[\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\"]}\n"
        ),
        Some(Dialect::Ethereum)
    );
    // The table's usual spelling still matches (its method names are stored lower-case).
    assert_eq!(
        d(
            "{\"id\":1,\"method\":\"eth_submitLogin\",\"params\":[\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\"]}\n"
        ),
        Some(Dialect::Ethereum)
    );
    // Keys and other values are not folded: `"LOGIN"`/`"PASS"` as keys are no markers, and a
    // subscribe result naming `MINING.NOTIFY` (no method) is not the result rule's word.
    let keys = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"LOGIN\":\"{WALLET}\",\"PASS\":\"x\",\"AGENT\":\"XMRig/6\"}}}}\n"
    );
    assert_eq!(d(&keys), None);
    assert_eq!(
        d("{\"id\":1,\"result\":[[[\"MINING.NOTIFY\",\"ae68\"]],\"08000002\",4],\"error\":null}\n"),
        None
    );
    // A keepalive status is a value, not a method: only `KEEPALIVED` as sent is the marker.
    assert_eq!(
        d("{\"id\":3,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"status\":\"keepalived\"}}\n"),
        None
    );
    // The trap stays silent in capitals: a web API's LOGIN with a user name and a password.
    assert_eq!(
        d(
            "{\"jsonrpc\":\"2.0\",\"method\":\"LOGIN\",\"params\":{\"login\":\"bob\",\"pass\":\"pw\"},\"id\":1}\n"
        ),
        None
    );
}

#[test]
fn case_folding_touches_capitals_only() {
    // Worked out by hand: 'A' (0x41) and 'Z' (0x5a) gain 0x20; '@' (0x40), '[' (0x5b), '`'
    // (0x60) and 'a' stay; 0xc1 (0x41 with the high bit) is no ASCII capital and stays.
    let w = u64::from_le_bytes([b'A', b'Z', b'@', b'[', b'`', b'a', 0xc1, b'M']);
    let want = u64::from_le_bytes([b'a', b'z', b'@', b'[', b'`', b'a', 0xc1, b'm']);
    assert_eq!(super::window::fold_case(w), want);
    for b in 0..=255u8 {
        assert_eq!(
            super::window::fold_byte(b),
            b.to_ascii_lowercase(),
            "{b:#x}"
        );
        let w = u64::from_le_bytes([b; 8]);
        assert_eq!(
            super::window::fold_case(w),
            u64::from_le_bytes([b.to_ascii_lowercase(); 8])
        );
    }
}

/// XMRig's login pretty-printed as `JSON.stringify(msg, null, 2)` writes it (with CRLFs too), and
/// cpuminer's subscribe as Python's `json.dumps(msg, indent=4)`: a line end inside an open
/// message (braces open, outside a string) is a blank, so the rules see the whole message.
#[test]
fn pretty_printed_messages_over_several_lines() {
    let login = format!(
        "{{\n  \"id\": 1,\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"login\",\n  \"params\": {{\n    \"login\": \"{WALLET}\",\n    \"pass\": \"x\",\n    \"agent\": \"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\n    \"algo\": [\n      \"rx/0\"\n    ]\n  }}\n}}\n"
    );
    assert_eq!(d(&login), Some(Dialect::Monero));
    assert_eq!(d(&login.replace('\n', "\r\n")), Some(Dialect::Monero));
    let subscribe = "{\n    \"id\": 1,\n    \"method\": \"mining.subscribe\",\n    \"params\": [\n        \"cpuminer/2.5.1\"\n    ]\n}\n";
    assert_eq!(d(subscribe), Some(Dialect::Bitcoin));
    // EthereumStratum's subscribe names itself on a later line: the provisional Bitcoin match
    // waits for the message's end, not for the first line end.
    assert_eq!(
        d(
            "{\n  \"id\": 1,\n  \"method\": \"mining.subscribe\",\n  \"params\": [\n    \"ethminer/0.19\",\n    \"EthereumStratum/1.0.0\"\n  ]\n}\n"
        ),
        Some(Dialect::Ethereum)
    );
    // The method's value on the line after its key.
    assert_eq!(
        d("{\n\"id\": 2,\n\"method\":\n    \"mining.authorize\",\n\"params\": [\"w\", \"x\"]\n}\n"),
        Some(Dialect::Bitcoin)
    );
    // A pretty-printed message, then a compact one after its closing brace's line.
    let two = "{\n  \"id\": 1,\n  \"result\": true\n}\n{\"id\":2,\"method\":\"keepalived\",\"params\":{}}\n";
    assert_eq!(d(two), Some(Dialect::Monero));
    // Markers split by a closed message stay apart: `login` and `pass` in one pretty-printed
    // message, `agent` in the next, is no login.
    let apart = "{\n \"method\": \"login\",\n \"params\": {\"login\": \"bob\", \"pass\": \"x\"}\n}\n{\n \"agent\": \"XMRig/6\"\n}\n";
    assert_eq!(d(apart), None);
    // A line end inside a string is no JSON: it ends the message.
    assert_eq!(
        d("{\n \"note\": \"a\nb\",\n \"method\": \"mining.subscribe\"\n}\n"),
        None
    );
    // Text first on its line, then a pretty-printed object: no message start.
    assert_eq!(
        d("var l = {\n \"method\": \"mining.subscribe\",\n \"params\": []\n};\n"),
        None
    );
    // Generic JSON-RPC pretty-printed has no markers.
    assert_eq!(
        d(
            "{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"eth_blockNumber\",\n  \"params\": [],\n  \"id\": 1\n}\n"
        ),
        None
    );
    // More closing braces than opening ones: the message is over, a line end ends it.
    assert_eq!(d("{}}\n\"method\":\"mining.subscribe\"\n"), None);
}

#[test]
fn braces_counted_a_word_at_a_time() {
    // Hand-counted: "{{ }}:{ " has three `{` and two `}`.
    let w = u64::from_le_bytes(*b"{{ }}:{ ");
    assert_eq!(super::window::count_flags(eq_bytes(w, b'{')), 3);
    assert_eq!(super::window::count_flags(eq_bytes(w, b'}')), 2);
    assert_eq!(
        super::window::count_flags(eq_bytes(w, b'{') & low_bytes(2)),
        2
    );
    assert_eq!(
        super::window::count_flags(eq_bytes(u64::from_le_bytes([b'{'; 8]), b'{')),
        8
    );
}

/// `\u` escapes in keys and method names (`"\u006cogin"` is `login`) and the one-character
/// escapes (`\/` is `/`) are hashed as the bytes they stand for.
#[test]
fn escapes_in_keys_and_method_names() {
    // Every marker of XMRig's login escaped somewhere: the method's `l`, the keys' `l`, `p`
    // and `a` (upper- and lower-case hex digits both).
    let login = format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"\\u006cogin\",\"params\":{{\"\\u006Cogin\":\"{WALLET}\",\"\\u0070ass\":\"x\",\"\\u0061\\u0067ent\":\"XMRig/6.16.0\"}}}}\n"
    );
    assert_eq!(d(&login), Some(Dialect::Monero));
    // A method escaped and in capitals: `\u004d` is `M`, folded to `m`.
    assert_eq!(
        d("{\"id\":1,\"method\":\"\\u004dINING.SUBSCRIBE\",\"params\":[\"cpuminer/2.5.1\"]}\n"),
        Some(Dialect::Bitcoin)
    );
    // `\/` (PHP's json_encode writes every slash so) in EthereumStratum's protocol name.
    assert_eq!(
        d(
            "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"ethminer/0.19\",\"EthereumStratum\\/1.0.0\"]}\n"
        ),
        Some(Dialect::Ethereum)
    );
    // A 95-character wallet with one character escaped is still 95 characters long.
    let escaped_wallet = format!("\\u0034{}", &WALLET[1..]);
    let no_agent = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{escaped_wallet}\",\"pass\":\"x\"}}}}\n"
    );
    assert_eq!(d(&no_agent), Some(Dialect::Monero));
    // Escapes that stand for other bytes make other tokens: `\n` is a line feed, not `n`
    // (`logi\n` is no `login`), a code point past ASCII is none of a marker's bytes.
    assert_eq!(
        d(&login.replace("\\u006cogin\",\"params", "logi\\n\",\"params")),
        None
    );
    assert_eq!(
        d(&login.replace("\\u006cogin\",\"params", "\\u016cogin\",\"params")),
        None
    );
    // An escaped quote does not end the string, escaped or not.
    assert_eq!(
        d("{\"id\":1,\"note\":\"\\u0022,\\\"method\\\":\\\"keepalived\\\"\"}\n"),
        None
    );
    // A `\u` cut short by a non-hex byte is no escape; the quote after it ends the string.
    assert_eq!(
        d("{\"id\":3,\"method\":\"keepalived\",\"x\":\"\\u00\",\"params\":{}}\n"),
        Some(Dialect::Monero)
    );
}

#[test]
fn a_repeated_marker_after_a_wallet_long_string_still_runs_the_rules() {
    // The decision function is skipped for a word already among the words, except when a
    // wallet-long string was noted since the rules last ran: here the second "pass" is the first
    // marker after the wallet, and only then do login (the method), login and pass (words) and
    // the wallet-long string (95 characters, ADDRESS) hold the login rule.
    let msg = format!(
        "{{\"method\":\"login\",\"params\":{{\"login\":\"x\",\"pass\":\"y\",\"login\":\"{WALLET}\",\"pass\":\"z\"}}}}\n"
    );
    assert_eq!(scan_slice(msg.as_bytes()), Some(Dialect::Monero));
    assert_eq!(
        scan_byte_wise(msg.as_bytes(), msg.len()),
        Dialect::Monero as u8 + 1
    );
    // Without the last marker the rules never see the wallet: no match.
    let cut = msg.find(",\"pass\":\"z\"").unwrap();
    assert_eq!(scan_slice(&msg.as_bytes()[..cut]), None);
    // One marker over and over completes no rule.
    let mut markers = b"{".to_vec();
    while markers.len() + 7 <= WINDOW {
        markers.extend_from_slice(b"\"pass\",");
    }
    assert_eq!(scan_slice(&markers), None);
}

#[test]
fn unicode_escapes_hash_as_their_bytes_in_one_step_each() {
    // `\u006c\u006f\u0067\u0069\u006e` is "login" (0x6c 0x6f 0x67 0x69 0x6e), as method and key;
    // with "pass" and "agent" the login rule holds.
    let msg = b"{\"method\":\"\\u006c\\u006f\\u0067\\u0069\\u006e\",\"params\":{\"\\u006cogin\":\"w\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n";
    assert_eq!(scan_slice(msg), Some(Dialect::Monero));
    assert_eq!(scan_byte_wise(msg, msg.len()), Dialect::Monero as u8 + 1);
}

/// The dialect the scan of `s` finds with `prior` (`true`: a known flow), checked to be what the
/// byte-wise scan finds.
fn decided<P: Into<Prior> + Copy>(s: &str, prior: P) -> Option<Dialect> {
    let mut buf = Window::new();
    buf.bytes_mut()[..s.len()].copy_from_slice(s.as_bytes());
    let fast = scan_flow(&mut buf, s.len(), prior);
    assert_eq!(
        fast,
        scan_byte_wise_flow(s.as_bytes(), s.len(), prior),
        "{s}"
    );
    Dialect::from_index(fast.wrapping_sub(1))
}

#[test]
fn on_a_known_flow_the_method_decides() {
    let on = decided::<bool>;
    // XMRig's share, cut after its method (`{"id":2,` 8 bytes, `"jsonrpc":"2.0",` 16,
    // `"method":` 9, `"submit"` 8: 41 bytes) and before its "job_id" and "nonce": a Stratum
    // message only on a known flow; whole, on any flow.
    let share = r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"7d","job_id":"1","nonce":"b8000000","result":"abcdef0123456789"}}"#;
    assert_eq!(on(&share[..41], false), None);
    assert_eq!(on(&share[..41], true), Some(Dialect::Monero));
    assert_eq!(on(share, false), Some(Dialect::Monero));
    assert_eq!(on(share, true), Some(Dialect::Monero));
    // A job push before its blob, a login before its pass, alike.
    assert_eq!(on(r#"{"jsonrpc":"2.0","method":"job","#, false), None);
    assert_eq!(
        on(r#"{"jsonrpc":"2.0","method":"job","#, true),
        Some(Dialect::Monero)
    );
    assert_eq!(on(r#"{"id":1,"method":"login","#, false), None);
    assert_eq!(
        on(r#"{"id":1,"method":"login","#, true),
        Some(Dialect::Monero)
    );
    // The pool's plain reply has no method: nothing, known flow or not. A method that is some
    // other marker decides nothing either, nor a method name as a key's value.
    for s in [
        r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        r#"{"id":2,"method":"pass","params":{}}"#,
        r#"{"id":2,"action":"submit","params":{}}"#,
    ] {
        assert_eq!(on(s, true), None, "{s}");
        assert_eq!(on(s, false), None, "{s}");
    }
    // A message must still begin well: a method after text that is no JSON message decides
    // nothing (the scanner's own guard, known flow or not).
    assert_eq!(on(r#"x{"method":"submit"}"#, true), None);
}

#[test]
fn to_a_pool_endpoint_a_login_decides_at_its_method() {
    let on = decided::<Prior>;
    // A web API's login: a user name and a password, no agent, no wallet. Silent on a new flow;
    // a miner's login to a pool endpoint (`crate::pools`), as on a known flow.
    let web = r#"{"id":1,"method":"login","params":{"login":"bob","pass":"hunter2"}}"#;
    assert_eq!(on(web, Prior::None), None);
    assert_eq!(on(web, Prior::PoolLogin), Some(Dialect::Monero));
    assert_eq!(on(web, Prior::KnownFlow), Some(Dialect::Monero));
    // Decided at the method: cut after `"login"` (`{"id":1,` 8 bytes, `"method":` 9, `"login"`
    // 7: 24), before any evidence.
    assert_eq!(on(&web[..24], Prior::PoolLogin), Some(Dialect::Monero));
    assert_eq!(on(&web[..23], Prior::PoolLogin), None);
    // Only a login: a share before its job_id and nonce, a job push before its blob, need their
    // rules on a new flow to a pool as on any new flow (they are not what a new flow opens with,
    // and each rule is short anyway).
    let share = r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"7d","job_id":"1","nonce":"b8000000"}}"#;
    assert_eq!(on(&share[..41], Prior::PoolLogin), None);
    assert_eq!(on(share, Prior::PoolLogin), Some(Dialect::Monero));
    assert_eq!(
        on(r#"{"jsonrpc":"2.0","method":"job","#, Prior::PoolLogin),
        None
    );
    // A `mining.subscribe` still waits for its message's end: the first message names the
    // flow's dialect, and EthereumStratum/1.0.0 says so in a later parameter.
    let esv1 = "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"ethminer/0.19.0\",\"EthereumStratum/1.0.0\"]}\n";
    assert_eq!(on(esv1, Prior::PoolLogin), Some(Dialect::Ethereum));
    assert_eq!(on(esv1, Prior::None), Some(Dialect::Ethereum));
    assert_eq!(on(esv1, Prior::KnownFlow), Some(Dialect::Bitcoin));
    // As the XDP program runs it: stopped at the method, then, to no pool endpoint, on from
    // there without the prior. The web API's login then ends with no match; XMRig's meets its
    // rule at `"pass"` (its wallet-long login before it) and, unlike a login taken at its
    // method, teaches its endpoint.
    let stop_then_on = |s: &str| {
        let mut buf = Window::new();
        buf.bytes_mut()[..s.len()].copy_from_slice(s.as_bytes());
        buf.seal(s.len());
        let mut sc = Scanner::for_prior(Prior::PoolLogin);
        let mut pos = 0;
        let run = |sc: &mut Scanner, pos: &mut usize| {
            while *pos < s.len() {
                let (advance, d) =
                    sc.feed_with(&buf, *pos, s.len(), token_end, |p, l| long_run(&buf, p, l));
                *pos += advance;
                if d != 0 {
                    return d;
                }
            }
            sc.finish()
        };
        let first = run(&mut sc, &mut pos);
        let stopped = (first, sc.at_login_method(), sc.login_met_rule(), pos);
        sc.without_prior();
        let on = run(&mut sc, &mut pos);
        // Read after a match only, as the XDP program does.
        (stopped, on, on != 0 && sc.login_met_rule())
    };
    assert_eq!(
        stop_then_on(web),
        ((Dialect::Monero as u8 + 1, true, false, 24), 0, false)
    );
    let xmrig = format!(
        "{{\"id\":1,\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\"}}}}\n"
    );
    assert_eq!(
        stop_then_on(&xmrig),
        (
            (Dialect::Monero as u8 + 1, true, false, 24),
            Dialect::Monero as u8 + 1,
            true
        )
    );
    // A login whose rule holds at its method already (its params first) is no stop: it met
    // its rule.
    let params_first = format!(
        "{{\"id\":1,\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\"}},\"method\":\"login\"}}\n"
    );
    let (stopped, _, _) = stop_then_on(&params_first);
    assert_eq!(
        (stopped.0, stopped.1, stopped.2),
        (Dialect::Monero as u8 + 1, false, true)
    );
    // The scanner's own guards hold: a login after text that is no JSON message, or a login
    // key's value that is no method, decides nothing.
    assert_eq!(on(r#"x{"method":"login"}"#, Prior::PoolLogin), None);
    assert_eq!(
        on(r#"{"id":1,"action":"login","params":{}}"#, Prior::PoolLogin),
        None
    );
}
