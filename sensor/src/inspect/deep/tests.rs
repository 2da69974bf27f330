//! Deep inspection's tests: whole payloads in, messages out, against hand-written expectations.

use super::{
    agent::{MAX_VERSION_LEN, parse_agent},
    coin::{address_core, is_ethereum_address, is_monero_address, pool_host_coin},
    *,
};
use proptest::prelude::*;
use sensor_common::stratum::scan_slice;

const XMR: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";
const XMRIG_AGENT: &str = "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0";
const XMRIG_ALGOS: &str = r#"["cn/1","cn/2","cn/r","cn/fast","cn/half","cn/xao","cn/rto","cn/rwz","cn/zls","cn/double","cn-lite/1","cn-heavy/0","cn-heavy/tube","cn-heavy/xhv","cn-pico","cn-pico/tlo","rx/0","rx/wow","rx/arq","rx/sfx","argon2/chukwa","argon2/chukwav2","astrobwt","ghostrider"]"#;
const BTC: &str = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
const ETH: &str = "0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5";

fn xmrig_login() -> String {
    format!(
        r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{XMR}","pass":"x","agent":"{XMRIG_AGENT}","algo":{XMRIG_ALGOS}}}}}"#
    )
}

fn one(payload: &str) -> Message {
    let msgs = inspect(payload.as_bytes());
    assert_eq!(msgs.len(), 1, "{payload}: {msgs:?}");
    msgs.into_iter().next().unwrap()
}

fn agent(family: &'static str, version: &str) -> Option<Agent> {
    Some(Agent {
        family,
        version: Some(version.to_owned()),
    })
}

#[test]
fn labels() {
    assert_eq!(XMR.len(), 95);
    let d = [Dialect::Monero, Dialect::Bitcoin, Dialect::Ethereum].map(|d| d.name());
    assert_eq!(d, ["monero", "bitcoin", "ethereum"]);
    let c = [
        Coin::Monero,
        Coin::Bitcoin,
        Coin::Ethereum,
        Coin::Zcash,
        Coin::Other,
        Coin::Unknown,
    ]
    .map(|c| c.label());
    // contract.md, `coin`.
    assert_eq!(
        c,
        ["monero", "bitcoin", "ethereum", "zcash", "other", "unknown"]
    );
}

#[test]
fn xmrig_login_compact() {
    let m = one(&(xmrig_login() + "\n"));
    assert_eq!(
        m,
        Message {
            dialect: Dialect::Monero,
            method: Some("login".into()),
            agent: agent("xmrig", "6.16.0"),
            coin: Coin::Monero,
            login: Some(XMR.into()),
            is_login: true,
        }
    );
}

#[test]
fn rx0_in_algo_list_decides_monero_without_address() {
    let p = format!(
        r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"someuser","pass":"x","agent":"{XMRIG_AGENT}","algo":{XMRIG_ALGOS}}}}}"#
    );
    assert_eq!(one(&p).coin, Coin::Monero);
    let other = p.replace("\"rx/0\",", "");
    assert_eq!(one(&other).coin, Coin::Other);
}

#[test]
fn monero_address_wins_over_list_without_rx0() {
    let p = format!(
        r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{XMR}","pass":"x","agent":"XMRig/2.14.1","algo":["cn/r","cn/2"]}}}}"#
    );
    let m = one(&p);
    assert_eq!((m.coin, m.agent), (Coin::Monero, agent("xmrig", "2.14.1")));
}

#[test]
fn moneroocean_fork_with_algo_perf() {
    let p = r#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"someuser","pass":"x","agent":"XMRig/6.16.0-mo1 (Windows NT 10.0; Win64; x64) libuv/1.42.0 msvc/2019","algo":["cn/r"],"algo-perf":{"cn/r":100.0,"rx/0":2500.5},"extensions":["algo","keepalive"]}}"#;
    let m = one(p);
    assert_eq!(
        (m.coin, m.agent),
        (Coin::Monero, agent("xmrig", "6.16.0-mo1"))
    );
}

#[test]
fn xmr_stak_method_first_id_last() {
    for (a, v) in [
        ("xmr-stak-cpu/1.0.0", "1.0.0"),
        ("xmr-stak/2.10.8/3ed2f1a/master/lin/cpu/monero/20", "2.10.8"),
    ] {
        let p = format!(
            r#"{{"method":"login","params":{{"login":"{XMR}","pass":"x","agent":"{a}"}},"id":1}}"#
        );
        let m = one(&p);
        assert_eq!(m.dialect, Dialect::Monero);
        assert_eq!(m.coin, Coin::Monero);
        assert_eq!(m.agent, agent("xmr-stak", v));
        assert!(m.is_login);
    }
}

#[test]
fn cpuminer_multi_spaced() {
    let p = format!(
        "{{\"method\": \"login\", \"params\": {{\"login\": \"{XMR}.rig1\", \"pass\": \"x\", \"agent\": \"cpuminer-multi/1.3.1\"}}, \"id\": 2}}\r\n"
    );
    let m = one(&p);
    assert_eq!(m.agent, agent("cpuminer", "1.3.1"));
    assert_eq!(m.coin, Coin::Monero);
    assert_eq!(m.login.as_deref(), Some(format!("{XMR}.rig1").as_str()));
}

#[test]
fn cgminer_subscribe_then_authorize() {
    let p = format!(
        "{{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cgminer/4.10.0\"]}}\n{{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"{BTC}.worker1\", \"x\"]}}\n"
    );
    let msgs = inspect(p.as_bytes());
    assert_eq!(
        msgs,
        vec![
            Message {
                dialect: Dialect::Bitcoin,
                method: Some("mining.subscribe".into()),
                agent: agent("cgminer", "4.10.0"),
                coin: Coin::Unknown,
                login: None,
                is_login: false,
            },
            Message {
                dialect: Dialect::Bitcoin,
                method: Some("mining.authorize".into()),
                agent: None,
                coin: Coin::Bitcoin,
                login: Some(format!("{BTC}.worker1")),
                is_login: true,
            },
        ]
    );
}

#[test]
fn bitcoin_logins() {
    let auth = |login: &str| {
        one(&format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{login}","x"]}}"#
        ))
    };
    for login in [
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq.rig",
        "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ",
    ] {
        let m = auth(login);
        assert_eq!(
            (m.dialect, m.coin),
            (Dialect::Bitcoin, Coin::Bitcoin),
            "{login}"
        );
    }
    for login in [
        "someuser.worker",
        "bc1QAR0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    ] {
        assert_eq!(auth(login).coin, Coin::Unknown, "{login}");
    }
    assert_eq!(auth(XMR).coin, Coin::Monero);
    // The scrypt coins: Litecoin (L, M, ltc1) and Dogecoin (D) addresses are `other`, and mark
    // the flow scrypt; a 33-character or `0`-holding one, or another first letter, says nothing.
    for login in [
        "LdP8Qox1VAhCzLJNqrr74YovaWYyNBUWvL.rig",
        "MGxNPPB7eBoWPUaprtX9v9CXJZoD2465zN",
        "ltc1qg82hgz8qkq8g8ajtlp8a4mz9c9y0lq2t0cy3hx",
        "DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L",
    ] {
        let m = auth(login);
        assert_eq!(m.coin, Coin::Other, "{login}");
        assert!(
            crate::inspect::deep::is_scrypt(m.dialect, m.coin),
            "{login}"
        );
    }
    for login in [
        "LdP8Qox1VAhCzLJNqrr74YovaWYyNBUWv",
        "LdP8Qox1VAhCzLJNqrr74YovaWYyNBUW0L",
        "KdP8Qox1VAhCzLJNqrr74YovaWYyNBUWvL",
    ] {
        assert_eq!(auth(login).coin, Coin::Unknown, "{login}");
    }
    // `other` in the monero dialect (a CryptoNote algorithm) is no scrypt.
    assert!(!crate::inspect::deep::is_scrypt(
        Dialect::Monero,
        Coin::Other
    ));
    let m = auth(&format!("{ETH}.rig"));
    assert_eq!((m.dialect, m.coin), (Dialect::Ethereum, Coin::Ethereum));
    assert!(m.is_login);
}

#[test]
fn nicehash_compact_and_pool_side() {
    let m = one(r#"{"id":1,"method":"mining.subscribe","params":["NiceHash/1.0.0",null]}"#);
    assert_eq!(
        (m.dialect, m.agent),
        (Dialect::Bitcoin, agent("nicehash", "1.0.0"))
    );
    let pool = concat!(
        r#"{"id":null,"method":"mining.set_difficulty","params":[1024]}"#,
        "\n",
        r#"{"id":1,"result":[[["mining.set_difficulty","1"],["mining.notify","ae68"]],"08000002",4],"error":null}"#,
        "\n"
    );
    let msgs = inspect(pool.as_bytes());
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|m| m.dialect == Dialect::Bitcoin));
    assert_eq!(msgs[1].method, None);
}

#[test]
fn ethproxy_submit_login() {
    let m = one(&format!(
        r#"{{"worker": "eth1.0", "jsonrpc": "2.0", "params": ["{ETH}", "x"], "id": 2, "method": "eth_submitLogin"}}"#
    ));
    assert_eq!(
        m,
        Message {
            dialect: Dialect::Ethereum,
            method: Some("eth_submitLogin".into()),
            agent: None,
            coin: Coin::Ethereum,
            login: Some(ETH.into()),
            is_login: true,
        }
    );
    let work = one(r#"{"id":5,"jsonrpc":"2.0","method":"eth_getWork","params":[]}"#);
    assert_eq!((work.dialect, work.is_login), (Dialect::Ethereum, false));
    let h = "0x".to_owned() + &"ab".repeat(32);
    let push = one(&format!(
        r#"{{"id":0,"jsonrpc":"2.0","result":["{h}","{h}","0x00000000ffff"]}}"#
    ));
    assert_eq!((push.dialect, push.method), (Dialect::Ethereum, None));
}

/// Ethereum getwork over HTTP (ethminer's `http://` pools, Go clients, a node's RPC port): each
/// POST body is a request, each response body an answer, read as the same JSON would be alone.
/// An XMRig login posted in a body is read too.
#[test]
fn mining_json_rpc_in_http_bodies() {
    let head = "POST /0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1 HTTP/1.1\r\nHost: 198.51.100.70\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 59\r\nContent-Type: application/json\r\n\r\n";
    let get = one(&format!(
        r#"{head}{{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}}"#
    ));
    assert_eq!(
        (get.dialect, get.method.as_deref(), get.is_login),
        (Dialect::Ethereum, Some("eth_getWork"), false)
    );
    let h = "0x".to_owned() + &"ab".repeat(32);
    let work = one(&format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":[\"{h}\",\"{h}\",\"0x00000000ffff\"]}}"
    ));
    assert_eq!((work.dialect, work.method), (Dialect::Ethereum, None));
    // Bare line ends, as some servers write them.
    let bare = one(&format!(
        "HTTP/1.0 200 OK\n\n{{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":[\"{h}\",\"{h}\",\"0x00000000ffff\"]}}"
    ));
    assert_eq!(bare.dialect, Dialect::Ethereum);
    let login = one(&format!(
        "POST / HTTP/1.1\r\nHost: x\r\n\r\n{}",
        xmrig_login()
    ));
    assert_eq!(
        (login.is_login, login.agent.map(|a| a.family), login.coin),
        (true, Some("xmrig"), Coin::Monero)
    );
    // The kernel's scan of the body agrees: ethereum for the request, no rule for the answer.
    let body = |p: &str| sensor_common::http::body(p.as_bytes()).map(scan_slice);
    assert_eq!(
        body(&format!(
            r#"{head}{{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}}"#
        )),
        Some(Some(Dialect::Ethereum))
    );
}

#[test]
fn ethereum_stratum_subscribe() {
    for (p, fam, v) in [
        (
            r#"{"id": 1, "method": "mining.subscribe", "params": ["ethminer/0.19.0", "EthereumStratum/1.0.0"]}"#,
            "ethminer",
            "0.19.0",
        ),
        (
            r#"{"id":1,"method":"mining.subscribe","params":["EthereumStratum/1.0.0","PhoenixMiner 5.5c"]}"#,
            "phoenixminer",
            "5.5c",
        ),
    ] {
        let m = one(p);
        assert_eq!((m.dialect, m.coin), (Dialect::Ethereum, Coin::Ethereum));
        assert_eq!(m.agent, agent(fam, v));
    }
    let reply = one(
        r#"{"id":1,"result":[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f","EthereumStratum/1.0.0"],"080c"],"error":null}"#,
    );
    assert_eq!(reply.dialect, Dialect::Ethereum);
    let h = "cd".repeat(32);
    let notify = one(&format!(
        r#"{{"id":null,"method":"mining.notify","params":["bf0488aa","{h}","{h}",true]}}"#
    ));
    assert_eq!(notify.dialect, Dialect::Ethereum);
}

#[test]
fn pool_job_reply_and_push() {
    let seed = "ab".repeat(32);
    let reply = |algo: &str| {
        format!(
            r#"{{"id":1,"jsonrpc":"2.0","error":null,"result":{{"id":"a1b2c3","job":{{"blob":"0e0ea0d1","job_id":"j1","target":"b88d0600","algo":"{algo}","height":2500000,"seed_hash":"{seed}"}},"extensions":["algo","keepalive"],"status":"OK"}}}}"#
        )
    };
    let m = one(&reply("rx/0"));
    assert_eq!(
        m,
        Message {
            dialect: Dialect::Monero,
            method: None,
            agent: None,
            coin: Coin::Monero,
            login: None,
            is_login: false,
        }
    );
    assert_eq!(one(&reply("cn/r")).coin, Coin::Other);
    let push = one(&format!(
        r#"{{"jsonrpc":"2.0","method":"job","params":{{"blob":"0e0e","job_id":"j2","target":"b88d0600","algo":"rx/wow","seed_hash":"{seed}"}}}}"#
    ));
    assert_eq!(
        (push.method.as_deref(), push.coin),
        (Some("job"), Coin::Other)
    );
    let alive = one(r#"{"id":3,"jsonrpc":"2.0","error":null,"result":{"status":"KEEPALIVED"}}"#);
    assert_eq!(alive.dialect, Dialect::Monero);
}

#[test]
fn two_messages_in_one_payload() {
    let p = concat!(
        r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"s1","job_id":"j1","nonce":"deadbeef","result":"00ff","algo":"rx/0"}}"#,
        "\n",
        r#"{"id":3,"jsonrpc":"2.0","method":"keepalived","params":{"id":"s1"}}"#,
        "\n"
    );
    let msgs = inspect(p.as_bytes());
    let got: Vec<_> = msgs
        .iter()
        .map(|m| (m.method.as_deref(), m.coin, m.is_login))
        .collect();
    assert_eq!(
        got,
        [
            (Some("submit"), Coin::Monero, false),
            (Some("keepalived"), Coin::Unknown, false)
        ]
    );
    // Two objects on one line, and a non-JSON line between messages.
    let p = format!(
        "{}{}\nnoise\n{}",
        xmrig_login(),
        xmrig_login(),
        xmrig_login()
    );
    assert_eq!(inspect(p.as_bytes()).len(), 3);
}

#[test]
fn truncated_login() {
    let full = xmrig_login();
    let at = |needle: &str| full.find(needle).unwrap();
    // Cut after the agent string: agent, login and coin (from the address) are all there.
    let m = one(&full[..at(",\"algo\"")]);
    assert_eq!(m.agent, agent("xmrig", "6.16.0"));
    assert_eq!((m.coin, m.is_login), (Coin::Monero, true));
    assert_eq!(m.login.as_deref(), Some(XMR));
    // Cut inside the agent string after the version's delimiter.
    let m = one(&full[..at("x86_64")]);
    assert_eq!(m.agent, agent("xmrig", "6.16.0"));
    // Cut inside the version: the family only.
    let m = one(&full[..at("6.16.0") + 3]);
    assert_eq!(
        m.agent,
        Some(Agent {
            family: "xmrig",
            version: None
        })
    );
    // Cut inside the product token: nothing known about the agent.
    assert_eq!(one(&full[..at("XMRig") + 3]).agent, None);
    // Cut inside the algorithm list, before rx/0: still monero (address), never "other".
    let cut = one(&full[..at("cn-pico")]);
    assert_eq!(cut.coin, Coin::Monero);
    let anon = full.replace(XMR, "someuser");
    let cut = one(&anon[..anon.find("cn-pico").unwrap()]);
    assert_eq!(cut.coin, Coin::Unknown);
    // Cut inside the wallet: no message.
    assert!(inspect(&full.as_bytes()[..at(XMR) + 40]).is_empty());
    // The same cut followed by a newline is a broken line, not a cut-off one.
    assert!(inspect(format!("{}\n", &full[..at(",\"algo\"")]).as_bytes()).is_empty());
    // A truncated subscribe.
    let m = one(r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0 (x"#);
    assert_eq!(m.agent, agent("cgminer", "4.10.0"));
}

#[test]
fn agent_families() {
    for (s, fam, ver) in [
        (
            "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0",
            "xmrig",
            Some("6.16.0"),
        ),
        (
            "xmrig-proxy/6.15.0 (Linux x86_64) libuv/1.41.0",
            "xmrig-proxy",
            Some("6.15.0"),
        ),
        (
            "xmrig-proxy/6.24.1-dev (Linux x86_64) libuv/1.48.0 gcc/13.2.0",
            "xmrig-proxy",
            Some("6.24.1-dev"),
        ),
        ("xmr-node-proxy/0.0.3", "xmr-node-proxy", Some("0.0.3")),
        ("aiostratum-proxy/1.1", "aiostratum-proxy", Some("1.1")),
        ("xmr-stak-cpu/1.0.0", "xmr-stak", Some("1.0.0")),
        ("cpuminer-multi/1.3.1", "cpuminer", Some("1.3.1")),
        ("cpuminer-opt/3.8.8.1", "cpuminer", Some("3.8.8.1")),
        ("cpuminer/2.5.1", "cpuminer", Some("2.5.1")),
        ("cgminer/4.10.0", "cgminer", Some("4.10.0")),
        ("bfgminer/5.5.0", "bfgminer", Some("5.5.0")),
        ("NiceHash/1.0.0", "nicehash", Some("1.0.0")),
        ("NHMiner/1.2", "nicehash", Some("1.2")),
        (
            "excavator/1.5.14a_nvidia",
            "nicehash",
            Some("1.5.14a_nvidia"),
        ),
        ("SRBMiner-MULTI/0.9.0", "srbminer", Some("0.9.0")),
        ("SRBMiner-MULTI v0.9.0", "srbminer", Some("0.9.0")),
        ("TeamRedMiner/0.8.4", "teamredminer", Some("0.8.4")),
        ("lolMiner 1.42", "lolminer", Some("1.42")),
        ("NBMiner/39.5", "nbminer", Some("39.5")),
        ("GMiner/2.75", "gminer", Some("2.75")),
        ("ethminer-0.19.0", "ethminer", Some("0.19.0")),
        ("Claymore", "claymore", None),
        ("XMRig", "xmrig", None),
        ("Mozilla/5.0 (X11; Linux x86_64)", "unknown", None),
        ("", "unknown", None),
        ("mystery/9.9 (4AFFq5kSiGBoZ4NMDwYtN18obc8)", "unknown", None),
    ] {
        let a = parse_agent(s, true).unwrap();
        assert_eq!((a.family, a.version.as_deref()), (fam, ver), "{s}");
    }
    let long = format!("XMRig/1.{}", "9".repeat(100));
    let v = parse_agent(&long, true).unwrap().version.unwrap();
    assert_eq!(v.len(), MAX_VERSION_LEN);
}

#[test]
fn login_shapes() {
    let integrated = format!("4{}", "A".repeat(105));
    let sub = format!("8{}", &XMR[1..]);
    for l in [
        XMR.to_owned(),
        format!("{XMR}.worker"),
        format!("{XMR}+50000"),
        format!("{XMR}:rig"),
        integrated,
        sub,
    ] {
        assert!(is_monero_address(address_core(&l)), "{l}");
    }
    for l in [&XMR[1..], &format!("{XMR}9"), &XMR.replace('A', "0")] {
        assert!(!is_monero_address(address_core(l)), "{l}");
    }
    assert!(is_ethereum_address(ETH));
    assert!(!is_ethereum_address(&ETH[..41]));
}

/// An agent string holding HTML-looking text is still the miner's agent: the markup trap is for
/// pages that quote JSON, not for JSON that quotes markup.
#[test]
fn an_agent_with_markup_is_still_attributed() {
    let login = xmrig_login().replace(
        "XMRig/6.16.0",
        "XMRig/6.16.0 <script>alert(1)</script><html><title>x</title>",
    );
    let m = inspect(login.as_bytes());
    assert_eq!(m.len(), 1, "{login}");
    assert!(m[0].is_login);
    assert_eq!(m[0].agent.as_ref().map(|a| a.family), Some("xmrig"));
    assert_eq!(m[0].coin, Coin::Monero);
    // Blanks and CRLFs before the message change nothing.
    let m = inspect(format!("\r\n  {login}").as_bytes());
    assert_eq!(m[0].agent.as_ref().map(|a| a.family), Some("xmrig"));
}

#[test]
fn not_stratum() {
    for p in [
        "HTTP/1.1 200 OK\r\n\r\n<html><script>var l = {\"method\":\"login\"};</script>",
        &format!("<!DOCTYPE html>\n{}\n", xmrig_login()),
        // A request that is no POST, and a POST whose head ends past the kernel's window.
        &format!("GET / HTTP/1.1\r\nHost: x\r\n\r\n{}", xmrig_login()),
        &format!(
            "POST / HTTP/1.1\r\nCookie: {}\r\n\r\n{}",
            "a".repeat(600),
            xmrig_login()
        ),
        // Ordinary JSON-RPC to a node, and a form, in POST bodies; a node's answer.
        "POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"eth_getBalance\",\"params\":[\"0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5\",\"latest\"],\"id\":1}",
        "POST /login HTTP/1.1\r\n\r\nlogin=bob&pass=hunter2&agent=XMRig%2F6.16.0",
        "HTTP/1.1 200 OK\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x10d4f\"}",
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><script>var w = {\"method\":\"eth_getWork\"};</script></html>",
        r#"{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":"0x10d4f"}"#,
        "Content-Length: 52\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}",
        r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///a"}}}"#,
        r#"{"id":1,"note":"a \"method\": \"keepalived\""}"#,
        r#"{"jsonrpc":"2.0","method":"login","params":{"login":"bob","password":"x"}}"#,
        r#"{"id":1,"result":true,"error":null}"#,
        r#"{"id":1,"jsonrpc":"2.0","error":{"code":-1,"message":"Invalid address"}}"#,
        r#"{"id":1,"method":"mining.x y","params":[]}"#,
        r#"{"id":1,"method":"submit","params":{"text":"hello"}}"#,
        r#"[{"id":1,"method":"login"}]"#,
        // Reshaped the way a miner hides, still no miner's message.
        r#"{"jsonrpc":"2.0","method":"LOGIN","params":{"login":"bob","password":"x"}}"#,
        "{\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"eth_blockNumber\",\n  \"params\": [],\n  \"id\": 1\n}\n",
        r#"{"jsonrpc":"2.0","method":"\u0065th_blockNumber","params":[],"id":1}"#,
        "<html><body><pre>{\n  \"method\": \"login\",\n  \"params\": {\"login\": \"x\", \"pass\": \"y\", \"agent\": \"XMRig/6\"}\n}\n</pre></body></html>",
        "",
        "\n\n",
    ] {
        assert_eq!(inspect(p.as_bytes()), vec![], "{p}");
    }
}

#[test]
fn login_only_in_login_field() {
    let payloads = [
        xmrig_login(),
        format!(r#"{{"id":2,"method":"mining.authorize","params":["{BTC}.w","x"]}}"#),
        format!(
            r#"{{"worker":"eth1.0","params":["{ETH}","x"],"id":2,"method":"eth_submitLogin"}}"#
        ),
    ];
    for p in payloads {
        for m in inspect(p.as_bytes()) {
            let login = m.login.clone().unwrap();
            let shown = format!(
                "{:?} {:?} {:?} {:?} {:?} {}",
                m, m.dialect, m.method, m.agent, m.coin, m.is_login
            );
            assert!(!shown.contains(&login), "{shown}");
            assert!(!shown.contains(address_core(&login)), "{shown}");
        }
    }
}

#[test]
fn login_hash_known_shape() {
    let h = login_hash(&[7; 32], XMR);
    assert_eq!(h.len(), 16);
    assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(h, login_hash(&[7; 32], XMR));
    assert_ne!(h, login_hash(&[8; 32], XMR));
    assert_ne!(h, login_hash(&[7; 32], BTC));
}

/// The exact hashes, computed apart from this code (HMAC-SHA256 of the login with a key of 32
/// equal bytes, e.g. Python's `hmac.new(bytes([7]) * 32, login, sha256)`, first 16 hex digits):
/// another key or another login gives another hash.
#[test]
fn login_hash_is_truncated_hmac_sha256() {
    assert_eq!(login_hash(&[7; 32], XMR), "576d2e52936b2974");
    assert_eq!(login_hash(&[8; 32], XMR), "59c53fb512ec493d");
    assert_eq!(login_hash(&[7; 32], BTC), "d0be08fe8c84fe9b");
    assert_eq!(login_hash(&[7; 32], ""), "9dac6a74401b46ed");
}

/// Every prefix of real logins: never a wrong coin or agent, only less information.
#[test]
fn cuts_never_misclassify() {
    let seeds = [
        (xmrig_login(), Coin::Monero),
        (
            format!(
                r#"{{"method":"login","params":{{"login":"{XMR}","pass":"x","agent":"xmr-stak-cpu/1.0.0"}},"id":1}}"#
            ),
            Coin::Monero,
        ),
        (
            format!(r#"{{"id": 2, "method": "mining.authorize", "params": ["{BTC}", "x"]}}"#),
            Coin::Bitcoin,
        ),
        (
            format!(
                r#"{{"worker": "eth1.0", "jsonrpc": "2.0", "params": ["{ETH}", "x"], "id": 2, "method": "eth_submitLogin"}}"#
            ),
            Coin::Ethereum,
        ),
    ];
    for (p, coin) in &seeds {
        let mut seen = 0;
        for cut in 0..=p.len() {
            let prefix = &p.as_bytes()[..cut];
            for m in inspect(prefix) {
                seen += 1;
                assert!(m.coin == *coin || m.coin == Coin::Unknown, "{cut}: {m:?}");
                if let Some(l) = &m.login {
                    assert!(p.contains(&format!("\"{l}\"")), "{cut}: login cut");
                }
                if let Some(a) = &m.agent {
                    assert!(["xmrig", "xmr-stak"].contains(&a.family), "{cut}: {a:?}");
                    let v = a.version.as_deref();
                    assert!(matches!(v, None | Some("6.16.0" | "1.0.0")), "{cut}: {a:?}");
                }
            }
        }
        assert!(seen > 0, "{p}");
    }
}

const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    " ",
    "\n",
    "\"method\"",
    "\"login\"",
    "\"params\"",
    "\"agent\"",
    "\"algo\"",
    "\"result\"",
    "\"job\"",
    "\"blob\"",
    "\"rx/0\"",
    "\"XMRig/6.1",
    "\"mining.subscribe\"",
    "\"EthereumStratum/1.0.0\"",
    "\"eth_submitLogin\"",
    "\"submit\"",
    "\"job_id\"",
    "\"nonce\"",
    "null",
    "true",
    "12",
    "-1.5e3",
    "\"\\u00e9\"",
    "\"é",
    "<html",
    "\"pass\"",
    "\"0x",
];

proptest! {
    #[test]
    fn never_panics_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for m in inspect(&data) {
            if let Some(l) = &m.login {
                let _ = login_hash(&[0; 32], l);
            }
        }
    }

    #[test]
    fn never_panics_on_json_ish(parts in proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
            "[a-z0-9/._ ]{0,8}",
        ],
        0..80,
    )) {
        let _ = inspect(parts.concat().as_bytes());
    }

    #[test]
    fn xmrig_logins_classify(
        addr in "4[1-9A-HJ-NP-Za-km-z]{94}",
        (x, y, z) in (0u32..100, 0u32..100, 0u32..100),
        suffix in prop_oneof![Just(""), Just(".rig1"), Just("+100000")],
        algos in prop_oneof![Just(""), Just(r#","algo":["cn/r","rx/0","rx/wow"]"#)],
        spaced in any::<bool>(),
    ) {
        let version = format!("{x}.{y}.{z}");
        let mut p = format!(
            r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{addr}{suffix}","pass":"x","agent":"XMRig/{version} (Linux x86_64) libuv/1.42.0 gcc/5.4.0"{algos}}}}}"#
        );
        if spaced {
            p = p.replace("\":", "\": ").replace(",\"", ", \"");
        }
        p.push('\n');
        let msgs = inspect(p.as_bytes());
        prop_assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        prop_assert_eq!(m.coin, Coin::Monero);
        prop_assert_eq!(m.dialect, Dialect::Monero);
        prop_assert_eq!(m.agent.clone(), agent("xmrig", &version));
        prop_assert!(m.is_login);
        let login = format!("{addr}{suffix}");
        prop_assert_eq!(m.login.as_deref(), Some(login.as_str()));
        let shown = format!("{m:?}");
        prop_assert!(!shown.contains(&addr));
    }

    #[test]
    fn login_hash_properties(
        k1 in any::<[u8; 32]>(),
        k2 in any::<[u8; 32]>(),
        login in "[1-9A-HJ-NP-Za-km-z]{17,120}",
    ) {
        let h = login_hash(&k1, &login);
        prop_assert_eq!(&h, &login_hash(&k1, &login));
        prop_assert_eq!(h.len(), 16);
        prop_assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if k1 != k2 {
            prop_assert_ne!(h, login_hash(&k2, &login));
        }
    }
}

/// One message's dialect by the kernel's rule table (`sensor_common::stratum::RULES`, run by its
/// scanner on the message's bytes) and by this parser.
fn opinions(msg: &str) -> (Option<Dialect>, Option<Dialect>) {
    let msgs = inspect(msg.as_bytes());
    assert!(msgs.len() <= 1, "{msg}: {msgs:?}");
    (scan_slice(msg.as_bytes()), msgs.first().map(|m| m.dialect))
}

/// On what miners and pools send, and on the known traps, the kernel's table and this parser say
/// the same.
#[test]
fn the_kernel_table_and_the_parser_agree_on_real_messages() {
    use Dialect::{Bitcoin, Ethereum, Monero};
    let h = "0x".to_owned() + &"ab".repeat(32);
    for (msg, dialect) in [
        (xmrig_login(), Some(Monero)),
        (
            format!(r#"{{"method":"login","params":{{"login":"{XMR}","pass":"x","agent":"xmr-stak-cpu/1.0.0"}},"id":1}}"#),
            Some(Monero),
        ),
        (
            r#"{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"s1","job_id":"j1","nonce":"deadbeef","result":"00ff","algo":"rx/0"}}"#.to_owned(),
            Some(Monero),
        ),
        (
            r#"{"id":3,"jsonrpc":"2.0","method":"keepalived","params":{"id":"s1"}}"#.to_owned(),
            Some(Monero),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0e0e","job_id":"j2","target":"b88d0600"}}"#.to_owned(),
            Some(Monero),
        ),
        (
            r#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"a1","job":{"blob":"0e0ea0d1","job_id":"j1","target":"b88d0600"},"status":"OK"}}"#.to_owned(),
            Some(Monero),
        ),
        (
            r#"{"id":3,"jsonrpc":"2.0","error":null,"result":{"status":"KEEPALIVED"}}"#.to_owned(),
            Some(Monero),
        ),
        (
            r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0"]}"#.to_owned(),
            Some(Bitcoin),
        ),
        (
            format!(r#"{{"id":2,"method":"mining.authorize","params":["{BTC}.w","x"]}}"#),
            Some(Bitcoin),
        ),
        (
            r#"{"id":null,"method":"mining.set_difficulty","params":[1024]}"#.to_owned(),
            Some(Bitcoin),
        ),
        (
            r#"{"id":1,"result":[[["mining.set_difficulty","1"],["mining.notify","ae68"]],"08000002",4],"error":null}"#.to_owned(),
            Some(Bitcoin),
        ),
        (
            r#"{"id": 1, "method": "mining.subscribe", "params": ["ethminer/0.19.0", "EthereumStratum/1.0.0"]}"#.to_owned(),
            Some(Ethereum),
        ),
        (
            r#"{"id":1,"result":[["mining.notify","ae6812eb","EthereumStratum/1.0.0"],"080c"],"error":null}"#.to_owned(),
            Some(Ethereum),
        ),
        (
            r#"{"id":1,"method":"mining.hello","params":{"agent":"ethminer-0.19.0","host":"eth.pool","port":"d05","proto":"EthereumStratum/2.0.0"}}"#.to_owned(),
            Some(Ethereum),
        ),
        (
            format!(r#"{{"worker":"eth1.0","jsonrpc":"2.0","params":["{ETH}","x"],"id":2,"method":"eth_submitLogin"}}"#),
            Some(Ethereum),
        ),
        (
            format!(r#"{{"id":6,"jsonrpc":"2.0","method":"eth_submitWork","params":["0x1","{h}","{h}"]}}"#),
            Some(Ethereum),
        ),
        // coin-hive-stratum's login (no agent; its src/Miner.ts and src/Connection.ts).
        (
            format!(r#"{{"id":1,"method":"login","params":{{"login":"{XMR}.site1+50000","pass":"x"}}}}"#),
            Some(Monero),
        ),
        (
            r#"{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}"#.to_owned(),
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":1}}"#.to_owned(),
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","method":"login","params":{"login":"bob","password":"x"}}"#.to_owned(),
            None,
        ),
        (r#"{"id":1,"result":true,"error":null}"#.to_owned(), None),
        (r#"{"id":1,"note":"a \"method\": \"keepalived\""}"#.to_owned(), None),
    ] {
        let msg = msg + "\n";
        assert_eq!(opinions(&msg), (dialect, dialect), "{msg}");
    }
}

/// Every message on which the two differ today, found by running both on this file's payloads
/// and on the shapes their rules name: the kernel's table reads a window of string tokens, this
/// parser the JSON's structure. This parser decides what counts as a login and its labels (see
/// `classify`); a change to either side that moves one of these fails here.
#[test]
fn where_the_kernel_table_and_the_parser_differ() {
    use Dialect::{Bitcoin, Ethereum, Monero};
    let hash = "cd".repeat(32);
    for (msg, kernel, deep) in [
        // The parser knows Ethereum by a login's address, by EthereumStratum's notify, by any
        // EthereumStratum version and only among a subscribe's parameters.
        (
            format!(r#"{{"id":2,"method":"mining.authorize","params":["{ETH}.rig","x"]}}"#),
            Some(Bitcoin),
            Some(Ethereum),
        ),
        (
            format!(
                r#"{{"id":null,"method":"mining.notify","params":["bf0488aa","{hash}","{hash}",true]}}"#
            ),
            Some(Bitcoin),
            Some(Ethereum),
        ),
        (
            r#"{"id":1,"method":"mining.subscribe","params":["x","EthereumStratum/2.0.0"]}"#
                .to_owned(),
            Some(Bitcoin),
            Some(Ethereum),
        ),
        (
            r#"{"id":null,"method":"mining.notify","params":["EthereumStratum/1.0.0"]}"#.to_owned(),
            Some(Ethereum),
            Some(Bitcoin),
        ),
        (
            r#"{"id":1,"method":"mining.subscribe","params":["a"],"x":"EthereumStratum/1.0.0"}"#
                .to_owned(),
            Some(Ethereum),
            Some(Bitcoin),
        ),
        // Shapes only the parser knows: getWork's answer, any `mining.*` method, a subscribe
        // result that names no `mining.notify`.
        (
            format!(
                r#"{{"id":0,"jsonrpc":"2.0","result":["0x{hash}","0x{hash}","0x00000000ffff"]}}"#
            ),
            None,
            Some(Ethereum),
        ),
        (
            r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{}]}"#.to_owned(),
            None,
            Some(Bitcoin),
        ),
        (
            r#"{"id":1,"method":"mining.suggest_difficulty","params":[1024]}"#.to_owned(),
            None,
            Some(Bitcoin),
        ),
        (
            r#"{"id":1,"result":[["mining.set_difficulty","1"]],"error":null}"#.to_owned(),
            None,
            Some(Bitcoin),
        ),
        // A login needs `pass` or `agent` here; in the kernel `pass` and either `agent` or a
        // wallet-long string before a later marker. (JSON escapes are decoded on both sides: see
        // `escapes_in_keys_and_method_names`.)
        (
            r#"{"id":1,"method":"login","params":{"login":"x","pass":"y"}}"#.to_owned(),
            None,
            Some(Monero),
        ),
        (
            format!(r#"{{"id":1,"method":"login","params":{{"pass":"x","login":"{XMR}"}}}}"#),
            None,
            Some(Monero),
        ),
        (
            r#"{"id":1,"method":"login","params":{"login":"x","agent":"XMRig/6"}}"#.to_owned(),
            None,
            Some(Monero),
        ),
        // The kernel's markers may sit anywhere, as keys or values; the parser wants them where
        // the protocol puts them, with the types it extracts.
        (
            r#"{"id":1,"method":"job","params":{"blob":"00"}}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"id":1,"method":"keepalived","params":[]}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"id":1,"method":"submit","params":[{"job_id":"1","nonce":"2"}]}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"result":{"job":{"blob":"00"}}}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"id":1,"result":{"job":{"blob":5}}}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"id":1,"method":"foo","result":{"status":"KEEPALIVED"}}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"id":1,"result":["mining.notify"]}"#.to_owned(),
            Some(Bitcoin),
            None,
        ),
        (
            r#"{"id":1,"method":"login","params":{"login":123,"pass":"x","agent":"y"}}"#.to_owned(),
            Some(Monero),
            None,
        ),
        (
            r#"{"id":1,"params":{"method":"keepalived"}}"#.to_owned(),
            Some(Monero),
            None,
        ),
    ] {
        let msg = msg + "\n";
        assert_eq!(opinions(&msg), (kernel, deep), "{msg}");
    }
    // A login cut off before its `pass` and `agent` counts here (the segment may end anywhere),
    // not in the kernel.
    let full = xmrig_login();
    let cut = &full[..full.find(",\"pass\"").unwrap()];
    assert_eq!(opinions(cut), (None, Some(Monero)));
}

/// Zcash transparent addresses (`t1`, `t3`, 35 base58 characters) and Equihash jobs name zcash;
/// Equihash miners name themselves in `mining.subscribe`.
#[test]
fn zcash_sessions() {
    const T1: &str = "t1KstPVzcNEK4ZeauQ6cogoqxQBMDSiRnGr";
    const T3: &str = "t3Vz22vK5z2LcKEdg16Yv4FFneEL1zg9ojd";
    for login in [T1, T3, &format!("{T1}.rig1")] {
        let m = one(&format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{login}","x"]}}"#
        ));
        assert_eq!(
            (m.dialect, m.coin, m.is_login),
            (Dialect::Bitcoin, Coin::Zcash, true),
            "{login}"
        );
    }
    // One character short, or another prefix: not an address.
    for login in [
        &T1[..34],
        &T1.replacen("t1", "t2", 1),
        &T1.replacen('K', "0", 1),
    ] {
        let m = one(&format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{login}","x"]}}"#
        ));
        assert_eq!(m.coin, Coin::Unknown, "{login}");
    }
    // flypool's Zcash job (ZIP 301): 8 params, version 04000000.
    let h = "a".repeat(64);
    let zcash_notify = format!(
        r#"{{"id":null,"method":"mining.notify","params":["6f4a","04000000","{h}","{h}","{h}","5b0c2a6e","1d0f2c4b",true]}}"#
    );
    assert_eq!(one(&zcash_notify).coin, Coin::Zcash);
    // Bitcoin's notify has 9 params: no coin in it.
    let bitcoin_notify = r#"{"params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000","0000","00000000",[],"00000002","1c2ac4af","504e86b9",false],"id":null,"method":"mining.notify"}"#;
    assert_eq!(one(bitcoin_notify).coin, Coin::Unknown);
    let ewbf = one(
        r#"{"id":1,"method":"mining.subscribe","params":["EWBF 0.3.4b",null,"eu1-zcash.flypool.org","3333"]}"#,
    );
    assert_eq!(ewbf.agent, agent("ewbf", "0.3.4b"));
    let eqm = one(r#"{"id":1,"method":"mining.subscribe","params":["equihashminer"]}"#);
    assert_eq!(eqm.agent.map(|a| a.family), Some("equihashminer"));
    // nheqminer's subscribe as its StratumClient::connect writes it (before: `unknown`).
    let nheq = one(
        r#"{"id":1,"method":"mining.subscribe","params":["nheqminer/0.5c", null,"eu1-zcash.flypool.org","3333"]}"#,
    );
    assert_eq!(nheq.agent, agent("nheqminer", "0.5c"));
    assert_eq!(nheq.coin, Coin::Zcash);
    // ethminer's forks, their subscribes as jsoncpp writes them (keys in order).
    let kawpow = one(
        r#"{"id":1,"jsonrpc":"2.0","method":"mining.subscribe","params":["kawpowminer/1.2.4"]}"#,
    );
    assert_eq!(kawpow.agent, agent("kawpowminer", "1.2.4"));
    let nsf = one(
        r#"{"id":1,"method":"mining.subscribe","params":["nsfminer-1.3.8","EthereumStratum/1.0.0"]}"#,
    );
    assert_eq!(nsf.agent, agent("nsfminer", "1.3.8"));
    // EthereumStratum/2.0.0: ethminer names itself in `mining.hello`'s object of parameters
    // (`EthStratumClient::connect_handler`; before: no agent). Not a login.
    let hello = one(
        r#"{"id":1,"method":"mining.hello","params":{"agent":"ethminer-0.19.0","host":"eth.pool","port":"d05","proto":"EthereumStratum/2.0.0"}}"#,
    );
    assert_eq!(hello.agent, agent("ethminer", "0.19.0"));
    assert_eq!(
        (hello.dialect, hello.coin),
        (Dialect::Ethereum, Coin::Ethereum)
    );
    assert!(!hello.is_login);
}

/// The coin a pool host names: one ticker or name among its labels, or a pool of one coin.
#[test]
fn pool_hosts_name_a_coin_only_when_they_name_one() {
    for (host, coin) in [
        ("eu1-zcash.flypool.org", Coin::Zcash),
        ("zec.2miners.com", Coin::Zcash),
        ("xmr-eu1.nanopool.org", Coin::Monero),
        ("eth-eu1.nanopool.org", Coin::Ethereum),
        ("btc.viabtc.com", Coin::Bitcoin),
        ("pool.supportxmr.com", Coin::Monero),
        ("SUPPORTXMR.COM.", Coin::Monero),
        ("gulf.moneroocean.stream", Coin::Monero),
        ("xmr.moneroocean.stream", Coin::Monero),
        // Another coin's ticker (Litecoin, Ethereum Classic), a multi-coin pool, two coins, a
        // domain that only ends like a pool's, no host.
        ("ltc.viabtc.com", Coin::Unknown),
        ("etc-eu1.nanopool.org", Coin::Unknown),
        ("rx.unmineable.com", Coin::Unknown),
        ("xmr-zec.example.org", Coin::Unknown),
        ("btc.supportxmr.com", Coin::Unknown),
        ("notsupportxmr.com", Coin::Unknown),
        ("", Coin::Unknown),
    ] {
        assert_eq!(pool_host_coin(host), coin, "{host}");
    }
    // In a subscribe: `params[2]` (ZIP 301's CONNECT_HOST), a string.
    let sub = |params: &str| {
        one(&format!(
            r#"{{"id":1,"method":"mining.subscribe","params":{params}}}"#
        ))
    };
    assert_eq!(
        sub(r#"["EWBF 0.3.4b",null,"eu1-zcash.flypool.org","3333"]"#).coin,
        Coin::Zcash
    );
    assert_eq!(
        sub(r#"["aiostratum-proxy/1.1",null,"xmr-eu1.nanopool.org",14433]"#).coin,
        Coin::Monero
    );
    assert_eq!(
        sub(r#"["cgminer/4.10.0","eu1-zcash.flypool.org"]"#).coin,
        Coin::Unknown
    );
    assert_eq!(sub(r#"["x",null,7]"#).coin, Coin::Unknown);
}

/// A CryptoNote job names monero unless its algorithm says otherwise, and only when whole.
#[test]
fn a_cryptonote_job_without_algorithm_is_monero() {
    let push = r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0e0e","job_id":"j2","target":"b88d0600"}}"#;
    assert_eq!(one(push).coin, Coin::Monero);
    let reply = r#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"s","job":{"blob":"0707","job_id":"1","target":"b88d0600"},"status":"OK"}}"#;
    assert_eq!(one(reply).coin, Coin::Monero);
    let wow = r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0e0e","job_id":"j2","target":"b88d0600","algo":"rx/wow"}}"#;
    assert_eq!(one(wow).coin, Coin::Other);
    // Cut before its end (no newline, no closing braces): its algorithm may be lost.
    let cut = r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0e0e","job_id":"j2","tar"#;
    assert_eq!(one(cut).coin, Coin::Unknown);
}

/// Method names in other letter cases (ckpool matches `mining.*` names ignoring case) are read
/// as the protocol spells them: the same login, agent and coin, and the kernel's table agrees.
#[test]
fn method_names_in_other_letter_cases() {
    let login = xmrig_login().replace("\"method\":\"login\"", "\"method\":\"LOGIN\"");
    let m = one(&login);
    assert_eq!(m.method.as_deref(), Some("login"));
    assert!(m.is_login);
    assert_eq!(m.agent, agent("xmrig", "6.16.0"));
    assert_eq!(m.coin, Coin::Monero);
    assert_eq!(scan_slice(login.as_bytes()), Some(Dialect::Monero));
    let p = format!(
        "{{\"id\": 1, \"method\": \"Mining.Subscribe\", \"params\": [\"cpuminer/2.5.1\"]}}\n{{\"id\": 2, \"method\": \"MINING.AUTHORIZE\", \"params\": [\"{BTC}.w1\", \"x\"]}}\n"
    );
    let msgs = inspect(p.as_bytes());
    assert_eq!(
        msgs.iter().map(|m| m.method.as_deref()).collect::<Vec<_>>(),
        [Some("mining.subscribe"), Some("mining.authorize")]
    );
    assert_eq!(msgs[0].agent.as_ref().map(|a| a.family), Some("cpuminer"));
    assert!(msgs[1].is_login);
    assert_eq!(msgs[1].coin, Coin::Bitcoin);
    let eth =
        format!(r#"{{"id":2,"method":"ETH_SUBMITLOGIN","params":["{ETH}","x"],"worker":"rig1"}}"#);
    let m = one(&eth);
    assert_eq!(
        (m.method.as_deref(), m.dialect, m.is_login),
        (Some("eth_submitLogin"), Dialect::Ethereum, true)
    );
    // Names that are none of the known ones stay as sent, and stay unknown.
    assert_eq!(canonical_method("Eth_BlockNumber"), "Eth_BlockNumber");
    assert_eq!(
        inspect(br#"{"jsonrpc":"2.0","method":"ETH_BLOCKNUMBER","params":[],"id":1}"#),
        vec![]
    );
    // A web API's LOGIN with a user name and `password` is no login in capitals either.
    assert_eq!(
        inspect(br#"{"jsonrpc":"2.0","method":"LOGIN","params":{"login":"bob","password":"x"}}"#),
        vec![]
    );
}

/// XMRig's login pretty-printed (`JSON.stringify(msg, null, 2)`, with LFs or CRLFs) and cpuminer's
/// subscribe and authorize as Python's `json.dumps(msg, indent=4)` write them: the same login,
/// agent and coin as compact, and the kernel's table agrees.
#[test]
fn pretty_printed_messages() {
    let login = format!(
        "{{\n  \"id\": 1,\n  \"jsonrpc\": \"2.0\",\n  \"method\": \"login\",\n  \"params\": {{\n    \"login\": \"{XMR}\",\n    \"pass\": \"x\",\n    \"agent\": \"{XMRIG_AGENT}\",\n    \"algo\": [\n      \"rx/0\"\n    ]\n  }}\n}}\n"
    );
    for p in [login.clone(), login.replace('\n', "\r\n")] {
        let m = one(&p);
        assert!(m.is_login);
        assert_eq!(m.login.as_deref(), Some(XMR));
        assert_eq!(m.agent, agent("xmrig", "6.16.0"));
        assert_eq!(m.coin, Coin::Monero);
        assert_eq!(scan_slice(p.as_bytes()), Some(Dialect::Monero));
    }
    let v1 = format!(
        "{{\n    \"id\": 1,\n    \"method\": \"mining.subscribe\",\n    \"params\": [\n        \"cpuminer/2.5.1\"\n    ]\n}}\n{{\n    \"id\": 2,\n    \"method\": \"mining.authorize\",\n    \"params\": [\n        \"{BTC}.w1\",\n        \"x\"\n    ]\n}}\n"
    );
    let msgs = inspect(v1.as_bytes());
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0].agent.as_ref().map(|a| a.family), Some("cpuminer"));
    assert!(msgs[1].is_login);
    assert_eq!(msgs[1].coin, Coin::Bitcoin);
    // A pretty-printed login cut after a line end is repaired like a cut compact one: login and
    // agent are read, the rest is missing.
    let cut_at = login.find("    \"algo\"").unwrap();
    let m = one(&login[..cut_at]);
    assert!(m.is_login);
    assert_eq!(m.agent, agent("xmrig", "6.16.0"));
    // Invalid JSON in a pretty-printed message skips to the next line, as for a compact one: the
    // next message still counts.
    let broken = format!("{{\n  \"id\": 1,\n  oops\n}}\n{}\n", xmrig_login());
    assert_eq!(one(&broken).agent, agent("xmrig", "6.16.0"));
}

/// Where the message still open at a payload's end begins, for joining segments.
#[test]
fn the_open_message_at_the_end() {
    // Counted by hand: the second message starts at byte 15 (after 14 bytes and a line end),
    // 14 (after three lines of 2, 10 and 2 bytes, line ends included) and 9.
    assert_eq!(
        open_message(b"{\"id\":1,\"a\":2}\n{\"id\":2,\"meth"),
        Some(15)
    );
    assert_eq!(
        open_message(b"{\n  \"id\": 1\n}\n{\n  \"id\": 2,\n"),
        Some(14)
    );
    assert_eq!(open_message(b"{\"id\":1} {\"id\":2"), Some(9));
    // Braces and quotes inside strings do not count; closed messages leave nothing open.
    assert_eq!(open_message(b"{\"a\":\"}{\\\"\"}\n"), None);
    assert_eq!(open_message(b"{\"a\":\"}\"\n"), Some(0));
    assert_eq!(open_message(b"{\n  \"id\": 1\n}\n"), None);
    // Not a message start: text before the brace on its line; a line end in a string ends it.
    assert_eq!(open_message(b"var x = {\"a\":"), None);
    assert_eq!(open_message(b"{\"a\":\"x\ny\":1"), None);
    assert_eq!(open_message(b"HTTP/1.1 200 OK\r\nX: y"), None);
    assert_eq!(open_message(b"{"), Some(0));
}

/// `\u` escapes in keys and method names (serde_json decodes them): XMRig's login with its
/// method and keys escaped, and cpuminer's authorize with an escaped method in capitals, read as
/// the plain ones, and the kernel's table agrees.
#[test]
fn escapes_in_keys_and_method_names() {
    let login = xmrig_login()
        .replace("\"method\":\"login\"", "\"method\":\"\\u006cogin\"")
        .replace("\"login\":\"", "\"\\u006Cogin\":\"")
        .replace("\"agent\"", "\"\\u0061gent\"");
    assert_ne!(login, xmrig_login());
    let m = one(&login);
    assert!(m.is_login);
    assert_eq!(m.login.as_deref(), Some(XMR));
    assert_eq!(m.agent, agent("xmrig", "6.16.0"));
    assert_eq!(m.coin, Coin::Monero);
    assert_eq!(scan_slice(login.as_bytes()), Some(Dialect::Monero));
    let auth = format!(r#"{{"id":2,"method":"\u004dINING.AUTHORIZE","params":["{BTC}.w1","x"]}}"#);
    let m = one(&auth);
    assert_eq!(m.method.as_deref(), Some("mining.authorize"));
    assert!(m.is_login);
    assert_eq!(scan_slice(auth.as_bytes()), Some(Dialect::Bitcoin));
}
