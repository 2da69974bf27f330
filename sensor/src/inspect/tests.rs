//! The Inspector on frames built by hand: logins, distinct miners, shares and hashes.

use super::*;
use std::time::SystemTime;
use test_support::Packet;

const WALLET: &str = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A";

fn login_frame(src: [u8; 4], sport: u16) -> Vec<u8> {
    let json = format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\",\"cn/2\"]}}}}\n"
    );
    Packet::tcp4(
        src.into(),
        [203, 0, 113, 9].into(),
        sport,
        3333,
        json.as_bytes(),
    )
    .build()
}

#[test]
fn a_login_counts_once_per_flow_by_coin_and_agent_without_the_wallet() {
    let metrics = Metrics::new();
    let mut i = Inspector::new([7; 32], metrics.clone(), Duration::from_secs(3600));
    let now = Instant::now();
    let ranges = |a: IpAddr| u64::from(a == IpAddr::from([198, 18, 0, 1]));
    let name = |id: usize| (id == 0).then(|| "kp".to_string());
    let f = login_frame([198, 18, 0, 1], 40000);
    let lines = i.frame(&f, "afxdp", "eth0", now, SystemTime::now(), ranges, name);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (
            lines[0].coin,
            lines[0].agent,
            lines[0].agent_version.as_deref()
        ),
        ("monero", "xmrig", Some("6.16.0"))
    );
    // The same login again (a retransmission) counts nothing more; a second miner does.
    assert!(
        i.frame(&f, "afxdp", "eth0", now, SystemTime::now(), ranges, name)
            .is_empty()
    );
    let other = login_frame([198, 18, 0, 1], 40001);
    assert_eq!(
        i.frame(
            &other,
            "afxdp",
            "eth0",
            now,
            SystemTime::now(),
            ranges,
            name
        )
        .len(),
        1
    );
    let text = metrics.render();
    assert!(text.contains(
        "mining_sensor_miner_logins_total{agent=\"xmrig\",coin=\"monero\",range=\"kp\"} 2"
    ));
    assert!(text.contains("mining_sensor_inspected_packets_total{path=\"afxdp\"} 3"));
    // One wallet behind both logins: one distinct miner.
    assert!(text.contains("mining_sensor_distinct_miners{range=\"kp\"} 1"));
    assert!(!text.contains(WALLET));
    assert!(!serde_json::to_string(&lines).unwrap().contains(WALLET));

    // Outside every range: unwatched. After the window, nobody is left.
    let f = login_frame([198, 18, 0, 7], 40002);
    let lines = i.frame(&f, "copy", "eth0", now, SystemTime::now(), ranges, name);
    assert_eq!(lines[0].range, "unwatched");
    i.expire(now + Duration::from_secs(3601));
    assert!(
        metrics
            .render()
            .contains("mining_sensor_distinct_miners{range=\"kp\"} 0")
    );
}

/// A miner (198.18.0.1:40000, in range `kp`) and its pool (203.0.113.9:3333): `up` is what
/// the miner sends, `down` what the pool answers, at `at` seconds after `t0`.
struct Session {
    i: Inspector,
    metrics: Metrics,
    t0: Instant,
}

impl Session {
    fn new(window: Duration) -> Self {
        let metrics = Metrics::new();
        Self {
            i: Inspector::new([5; 32], metrics.clone(), window),
            metrics,
            t0: Instant::now(),
        }
    }

    /// Sends one message (miner to pool when `up`) at `at` seconds; the login lines it gave.
    fn send(&mut self, up: bool, json: &str, at: u64) -> Vec<LoginLine> {
        let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
        let payload = format!("{json}\n");
        let f = if up {
            Packet::tcp4(miner, pool, 40000, 3333, payload.as_bytes()).build()
        } else {
            Packet::tcp4(pool, miner, 3333, 40000, payload.as_bytes()).build()
        };
        self.feed(&f, at)
    }

    /// Sends `bytes` from the miner to the pool as one segment at sequence number `seq`, at `at`
    /// seconds.
    fn segment(&mut self, seq: u32, bytes: &[u8], at: u64) {
        let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
        let f = Packet::tcp4(miner, pool, 40000, 3333, bytes)
            .tcp_seq(seq)
            .build();
        self.feed(&f, at);
    }

    /// Inspects one frame at `at` seconds, range `kp` being 198.18.0.1 alone (id 0); the login
    /// lines it gave.
    fn feed(&mut self, f: &[u8], at: u64) -> Vec<LoginLine> {
        let ranges = |a: IpAddr| u64::from(a == IpAddr::from([198, 18, 0, 1]));
        let name = |id: usize| (id == 0).then(|| "kp".to_string());
        let now = self.t0 + Duration::from_secs(at);
        self.i
            .frame(f, "copy", "eth0", now, SystemTime::now(), ranges, name)
    }

    fn expire(&mut self, at: u64) {
        self.i.expire(self.t0 + Duration::from_secs(at));
    }

    fn has(&self, line: &str) -> bool {
        self.metrics.render().lines().any(|l| l == line)
    }

    /// Whether any sample of `metric` was rendered.
    fn render_has(&self, metric: &str) -> bool {
        self.metrics
            .render()
            .lines()
            .any(|l| l.starts_with(&format!("{metric}{{")))
    }
}

/// XMRig's login with a Monero wallet.
fn monero_login_json() -> String {
    format!(
        r#"{{"id":1,"jsonrpc":"2.0","method":"login","params":{{"login":"{WALLET}","pass":"x","agent":"XMRig/6.16.0"}}}}"#
    )
}

/// The pool's reply to it: job `j1` at target b88d0600, 10,000 hashes a share (difficulty.rs
/// works it out).
const MONERO_LOGIN_REPLY: &str = r#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"s1","job":{"blob":"0707","job_id":"j1","target":"b88d0600"},"status":"OK"}}"#;

fn monero_login(s: &mut Session) {
    s.send(true, &monero_login_json(), 0);
    s.send(false, MONERO_LOGIN_REPLY, 0);
}

fn monero_submit(id: u32) -> String {
    format!(
        r#"{{"id":{id},"jsonrpc":"2.0","method":"submit","params":{{"id":"s1","job_id":"j1","nonce":"0000000{id}","result":"ab"}}}}"#
    )
}

#[test]
fn a_monero_session_counts_its_shares_results_and_hashes() {
    let mut s = Session::new(Duration::from_secs(3600));
    monero_login(&mut s);
    // The login reply's job set the difficulty: the hash counter exists at 0 before any share, so
    // a scrape between here and the first share gives rate() its starting point.
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 0"#));
    for id in 2..=6 {
        s.send(true, &monero_submit(id), 1);
    }
    // Nothing has a result yet: no shares_total series exists before one does.
    assert!(!s.metrics.render().contains("mining_sensor_shares_total"));
    for id in 2..=5 {
        s.send(
            false,
            &format!(r#"{{"id":{id},"jsonrpc":"2.0","error":null,"result":{{"status":"OK"}}}}"#),
            2,
        );
    }
    s.send(
        false,
        r#"{"id":6,"jsonrpc":"2.0","error":{"code":-1,"message":"Low difficulty share"}}"#,
        2,
    );
    // 4 OK replies, 1 error; 5 shares x 10,000 hashes = 50,000.
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 4"#));
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="rejected"} 1"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 50000"#));
    assert!(!s.metrics.render().contains("result=\"unknown\""));
    assert!(
        !s.metrics
            .render()
            .contains("mining_sensor_shares_unknown_difficulty_total{")
    );
    // Every share had its reply: nothing is left to expire.
    s.expire(100);
    assert!(!s.metrics.render().contains("result=\"unknown\""));
    // The login is still counted as before.
    assert!(s.has(r#"mining_sensor_miner_logins_total{agent="xmrig",coin="monero",range="kp"} 1"#));
}

#[test]
fn a_retransmitted_submit_segment_counts_once() {
    let mut s = Session::new(Duration::from_secs(3600));
    monero_login(&mut s);
    s.send(true, &monero_submit(2), 1);
    s.send(true, &monero_submit(2), 2);
    s.send(
        false,
        r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        2,
    );
    // One share: 1 accepted, 10,000 hashes (not 20,000).
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 1"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 10000"#));
}

#[test]
fn a_submit_before_any_job_counts_without_hashes_and_unanswered_is_unknown() {
    let mut s = Session::new(Duration::from_secs(3600));
    // A sensor started mid-session: no login, no job seen; the submit names the coin nowhere.
    s.send(true, &monero_submit(2), 0);
    assert!(s.has(r#"mining_sensor_shares_unknown_difficulty_total{coin="unknown",range="kp"} 1"#));
    assert!(
        !s.metrics
            .render()
            .contains("mining_sensor_share_hashes_total{")
    );
    // No reply: at 30 s it has waited exactly the timeout, not more; at 31 s it is unknown.
    s.expire(30);
    assert!(!s.metrics.render().contains("mining_sensor_shares_total{"));
    s.expire(31);
    assert!(s.has(r#"mining_sensor_shares_total{coin="unknown",range="kp",result="unknown"} 1"#));
    // Counted once: a later expiry adds nothing.
    s.expire(62);
    assert!(s.has(r#"mining_sensor_shares_total{coin="unknown",range="kp",result="unknown"} 1"#));
}

#[test]
fn a_forgotten_flow_and_replays_end_leave_its_shares_unknown() {
    // The flow is forgotten after 10 s without a packet, before the 30 s reply timeout.
    let mut s = Session::new(Duration::from_secs(10));
    monero_login(&mut s);
    s.send(true, &monero_submit(2), 0);
    s.send(true, &monero_submit(3), 0);
    s.expire(11);
    // 2 shares, no reply: 2 unknown, 2 x 10,000 = 20,000 hashes counted at submission.
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="unknown"} 2"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 20000"#));
    // Replay's end: a share still waiting counts as unknown, once.
    s.send(true, &monero_submit(4), 12);
    s.i.end_shares();
    s.i.end_shares();
    // The forgotten flow's login is gone with it, so this share's coin is unknown.
    assert!(s.has(r#"mining_sensor_shares_total{coin="unknown",range="kp",result="unknown"} 1"#));
}

/// A Stratum V1 job (`mining.notify`) at second 0, then 3 submits for it (ids 3 to 5), each
/// accepted, at second 1.
fn job_and_three_accepted_v1_shares(s: &mut Session) {
    s.send(
        false,
        r#"{"id":null,"method":"mining.notify","params":["a","00","01","02",[],"20000000","1d00ffff","5f5e1000",true]}"#,
        0,
    );
    for id in 3..=5 {
        s.send(
            true,
            &format!(
                r#"{{"id":{id},"method":"mining.submit","params":["w1","a","0000000{id}","5f5e1000","0000000{id}"]}}"#
            ),
            1,
        );
        s.send(
            false,
            &format!(r#"{{"id":{id},"result":true,"error":null}}"#),
            1,
        );
    }
}

#[test]
fn a_stratum_v1_session_counts_shares_at_the_difficulty_set() {
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}"#,
        0,
    );
    s.send(
        true,
        r#"{"id":2,"method":"mining.authorize","params":["w1","x"]}"#,
        0,
    );
    s.send(
        false,
        r#"{"id":null,"method":"mining.set_difficulty","params":[2]}"#,
        0,
    );
    job_and_three_accepted_v1_shares(&mut s);
    // 3 accepted; difficulty 2 is 2 x 2^32 = 8,589,934,592 hashes a share, x 3 = 25,769,803,776.
    // The login "w1" names no coin, nor does any other message: coin "unknown".
    assert!(s.has(r#"mining_sensor_shares_total{coin="unknown",range="kp",result="accepted"} 3"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="unknown",range="kp"} 25769803776"#));
}

/// cpuminer's default algorithm is scrypt: a Litecoin login (coin `other`) whose pool sets
/// difficulty 8 before the authorize is answered, then 3 accepted shares. A scrypt pool's
/// difficulty 1 is 2^16 hashes: 8 x 65,536 = 524,288 a share, 1,572,864 for the 3 (at sha256d's
/// 2^32, 103,079,215,104: 65,536 times too many, as before).
#[test]
fn a_scrypt_session_counts_its_shares_at_scrypts_difficulty_one() {
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}"#,
        0,
    );
    s.send(
        false,
        r#"{"id":null,"method":"mining.set_difficulty","params":[8]}"#,
        0,
    );
    s.send(
        true,
        r#"{"id":2,"method":"mining.authorize","params":["LdP8Qox1VAhCzLJNqrr74YovaWYyNBUWvL","x"]}"#,
        0,
    );
    job_and_three_accepted_v1_shares(&mut s);
    assert!(s.has(r#"mining_sensor_shares_total{coin="other",range="kp",result="accepted"} 3"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="other",range="kp"} 1572864"#));
    assert!(
        s.has(r#"mining_sensor_miner_logins_total{agent="cpuminer",coin="other",range="kp"} 1"#)
    );
}

/// A Stratum V1 session up to its login, at 0 s: `agent`'s `mining.subscribe`, the pool's reply
/// with extranonce1 `en1`, the `mining.authorize` of `login`.
fn subscribed_and_authorized(agent: &str, en1: &str, login: &str) -> Session {
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        &format!(r#"{{"id":1,"method":"mining.subscribe","params":["{agent}"]}}"#),
        0,
    );
    s.send(
        false,
        &format!(r#"{{"id":1,"result":[[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"{en1}",4],"error":null}}"#),
        0,
    );
    s.send(
        true,
        &format!(r#"{{"id":2,"method":"mining.authorize","params":["{login}","x"]}}"#),
        0,
    );
    s
}

/// A Stratum V1 session of miner `agent` logging in as `login`: the subscribe reply's
/// extranonce1, difficulty `d`, the job `notify`, then 3 accepted shares of it, the first
/// `share` (extranonce2, ntime, nonce), the others with nonces of their own.
fn session_with_a_real_share(
    agent: &str,
    login: &str,
    d: &str,
    (notify, en1, share): (&str, &str, [&str; 3]),
) -> Session {
    let mut s = subscribed_and_authorized(agent, en1, login);
    s.send(false, r#"{"id":2,"result":true,"error":null}"#, 0);
    s.send(
        false,
        &format!(r#"{{"id":null,"method":"mining.set_difficulty","params":[{d}]}}"#),
        0,
    );
    s.send(false, notify, 0);
    let job: serde_json::Value = serde_json::from_str(notify).unwrap();
    let job = job["params"][0].as_str().unwrap();
    let [en2, ntime, nonce] = share;
    for id in 3..=5 {
        let nonce = if id == 3 {
            nonce.to_owned()
        } else {
            format!("0000000{id}")
        };
        s.send(
            true,
            &format!(
                r#"{{"id":{id},"method":"mining.submit","params":["{login}","{job}","{en2}","{ntime}","{nonce}"]}}"#
            ),
            1,
        );
        s.send(
            false,
            &format!(r#"{{"id":{id},"result":true,"error":null}}"#),
            1,
        );
    }
    s
}

const CPUMINER: &str = "cpuminer/2.5.1";
/// The real shares of `test_support::shares`, each with its job and extranonce1.
const SCRYPT: (&str, &str, [&str; 3]) = (
    test_support::shares::SCRYPT_NOTIFY,
    test_support::shares::SCRYPT_EN1,
    test_support::shares::SCRYPT_SHARE,
);
const GENESIS: (&str, &str, [&str; 3]) = (
    test_support::shares::GENESIS_NOTIFY,
    test_support::shares::GENESIS_EN1,
    test_support::shares::GENESIS_SHARE,
);

/// An account's session (`worker.1`: no address names its coin or algorithm) twice: the worked
/// scrypt share (its scrypt hash is difficulty 695.8) makes
/// it a scrypt session, whose 3 shares at difficulty 16 are 3 x 16 x 2^16 = 3,145,728 hashes
/// (before: 3 x 16 x 2^32 = 206,158,430,208, as for sha256d); the genesis block's share
/// (sha256d difficulty 2,536.4) leaves it at sha256d's 3 x 1 x 2^32 = 12,884,901,888. The
/// account names no coin: `unknown` both times.
#[test]
fn an_account_sessions_first_share_tells_scrypt_from_sha256d() {
    // Scrypt names a coin of its own (`other`, as a Litecoin or Dogecoin address does): the
    // login waits past the job for the share, and counts with it (before, `unknown`).
    let s = session_with_a_real_share(CPUMINER, "worker.1", "16", SCRYPT);
    assert!(
        s.has(r#"mining_sensor_miner_logins_total{agent="cpuminer",coin="other",range="kp"} 1"#)
    );
    assert!(s.has(r#"mining_sensor_shares_total{coin="other",range="kp",result="accepted"} 3"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="other",range="kp"} 3145728"#));
    // Sha256d's coins are several (Bitcoin and its forks): still `unknown`.
    let s = session_with_a_real_share(CPUMINER, "worker.1", "1", GENESIS);
    assert!(
        s.has(r#"mining_sensor_miner_logins_total{agent="cpuminer",coin="unknown",range="kp"} 1"#)
    );
    assert!(s.has(r#"mining_sensor_shares_total{coin="unknown",range="kp",result="accepted"} 3"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="unknown",range="kp"} 12884901888"#));
}

/// A scrypt-capable flow whose first share never comes (or proves nothing) is not held for
/// ever: its login counts `unknown` when the wait's time is up, at the flow's next message or
/// at an expiry, as any login waiting for its coin does.
#[test]
fn a_login_waiting_for_its_first_share_counts_unknown_when_the_wait_runs_out() {
    let (notify, en1, _) = SCRYPT;
    let mut s = subscribed_and_authorized(CPUMINER, en1, "worker.1");
    s.send(false, r#"{"id":2,"result":true,"error":null}"#, 0);
    s.send(
        false,
        r#"{"id":null,"method":"mining.set_difficulty","params":[16]}"#,
        0,
    );
    // Five jobs and no share: the messages' bound does not end this wait.
    for _ in 0..5 {
        assert!(s.send(false, notify, 1).is_empty());
    }
    assert!(!s.render_has("mining_sensor_miner_logins_total"));
    let lines = s.send(false, notify, LOGIN_COIN_WAIT.as_secs());
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].coin, lines[0].agent), ("unknown", "cpuminer"));
    // A job that is no Bitcoin-shaped template (its previous block hash 2 bytes, not 32) gives no
    // header to prove: the login counts at that job, as before.
    let mut s = subscribed_and_authorized(CPUMINER, en1, "worker.1");
    let short = r#"{"id":null,"method":"mining.notify","params":["bf","4d16","0100","0000",[],"20000000","1d00ffff","5f5e1000",true]}"#;
    let lines = s.send(false, short, 0);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].coin, lines[0].agent), ("unknown", "cpuminer"));
}

/// A login whose address looks like Dogecoin's (`D`, 34 characters: scrypt, coin `other`) but
/// whose share proves sha256d (DigiByte's addresses look so too, and DigiByte is mined on
/// sha256d as well): the share decides, 3 x 2^32 = 12,884,901,888 hashes (by the address alone,
/// 3 x 2^16 = 196,608).
#[test]
fn a_share_that_proves_sha256d_overrules_a_scrypt_looking_address() {
    let login = "DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L";
    let s = session_with_a_real_share(CPUMINER, login, "1", GENESIS);
    assert!(s.has(r#"mining_sensor_shares_total{coin="other",range="kp",result="accepted"} 3"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="other",range="kp"} 12884901888"#));
    // Its scrypt share keeps it at scrypt's scale: 3 x 16 x 2^16.
    let s = session_with_a_real_share(CPUMINER, login, "16", SCRYPT);
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="other",range="kp"} 3145728"#));
}

/// XMRig 6.16.0 mining GhostRider (`-a gr`): its subscribe, and shares as it writes them
/// (`EthStratumClient`: extranonce2 all zeros, the job's ntime, an 8-digit nonce), a
/// Bitcoin-shaped job, difficulty 0.5. XMRig takes D as D x 65,536 hashes a share (its log:
/// `new job ... diff 66 algo ghostrider` for D 0.001, run here), so 3 accepted shares are
/// 3 x 32,768 = 98,304 hashes (at sha256d's D x 2^32, 6,442,450,944).
#[test]
fn xmrigs_ghostrider_session_counts_at_its_own_difficulty_scale() {
    let notify = r#"{"id":null,"method":"mining.notify","params":["1","0000000000000000000000000000000000000000000000000000000000000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2503a08601062f503253482f04","0d2f7374726174756d506f6f6c2f00000000",[],"20000000","1d00ffff","6a5b0000",true]}"#;
    let s = session_with_a_real_share(
        "XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0",
        "RKbTRq8NwXz7EH5iGCLYmWfmuDzZ2E5a8Y",
        "0.5",
        (notify, "01020304", ["00000000", "6a5b0000", "0000a003"]),
    );
    assert!(s.has(r#"mining_sensor_shares_total{coin="unknown",range="kp",result="accepted"} 3"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="unknown",range="kp"} 98304"#));
}

#[test]
fn the_hash_counter_starts_at_zero_once_a_difficulty_is_known() {
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}"#,
        0,
    );
    // A job before any difficulty: none is known yet, so no hash counter.
    s.send(
        false,
        r#"{"id":null,"method":"mining.notify","params":["a","00","01","02",[],"20000000","1d00ffff","5f5e1000",true]}"#,
        0,
    );
    assert!(
        !s.metrics
            .render()
            .contains("mining_sensor_share_hashes_total{")
    );
    // The difficulty: the counter exists at 0, before the first share.
    s.send(
        false,
        r#"{"id":null,"method":"mining.set_difficulty","params":[2]}"#,
        0,
    );
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="unknown",range="kp"} 0"#));
}

#[test]
fn a_reported_rate_counts_for_five_minutes() {
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"jsonrpc":"2.0","method":"eth_submitLogin","params":["0x5b0a7a7ab3c1e2b0f6b1c4e0ac1a6f0d3b4e8a11"]}"#,
        0,
    );
    s.send(
        true,
        r#"{"id":9,"jsonrpc":"2.0","method":"eth_submitHashrate","params":["0x500000","0x59daa26581d0acd1fce254fb7e85952f4c09d0915afd33d3886cd914bc7d283c"]}"#,
        0,
    );
    // No series before the first publication.
    assert!(
        !s.metrics
            .render()
            .contains("mining_sensor_reported_hashrate{")
    );
    // 0x500000 = 5 x 16^5 = 5,242,880 hashes per second.
    s.expire(10);
    // The login's 0x address names the coin: ethereum.
    let line = r#"mining_sensor_reported_hashrate{coin="ethereum",range="kp"} 5242880"#;
    assert!(s.has(line));
    // Still within 5 minutes at 300 s; gone at 301 s (the flow itself is still remembered).
    s.expire(300);
    assert!(s.has(line));
    s.expire(301);
    assert!(
        !s.metrics
            .render()
            .contains("mining_sensor_reported_hashrate{")
    );
    // A new report counts its latest rate only: 0x100000 = 16^5 = 1,048,576, not added to the old.
    for (id, at) in [(10, 302), (11, 303)] {
        s.send(
            true,
            &format!(r#"{{"id":{id},"jsonrpc":"2.0","method":"eth_submitHashrate","params":["0x100000","0x59daa26581d0acd1fce254fb7e85952f4c09d0915afd33d3886cd914bc7d283c"]}}"#),
            at,
        );
    }
    s.expire(310);
    assert!(s.has(r#"mining_sensor_reported_hashrate{coin="ethereum",range="kp"} 1048576"#));
}

/// ethminer 0.19 in EthereumStratum/2.0.0 (`test_support::shares::ETHMINER_ESV2_SESSION`: its
/// agent in `mining.hello`, the pool's `mining.set` at 4,000,000,000 hashes a share, two
/// accepted shares), then its rate
/// report (0x500000 = 5,242,880 hashes a second). 2 x 4,000,000,000 = 8,000,000,000 hashes;
/// before, `mining.set` and `mining.hashrate` were not read: the shares counted without hashes.
#[test]
fn an_ethereumstratum_2_session_counts_its_shares_hashes_and_rate() {
    let mut s = Session::new(Duration::from_secs(3600));
    for (i, (up, msg)) in test_support::shares::ETHMINER_ESV2_SESSION
        .iter()
        .enumerate()
    {
        s.send(*up, msg, u64::from(i >= 8));
    }
    s.send(
        true,
        r#"{"id":9,"method":"mining.hashrate","params":["500000","w-123"]}"#,
        1,
    );
    s.expire(10);
    // The authorize's 0x address names the coin, `mining.hello` the agent (before it was read,
    // `unknown`).
    let login =
        r#"mining_sensor_miner_logins_total{agent="ethminer",coin="ethereum",range="kp"} 1"#;
    assert!(s.has(login));
    let shares = r#"mining_sensor_shares_total{coin="ethereum",range="kp",result="accepted"} 2"#;
    assert!(s.has(shares));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="ethereum",range="kp"} 8000000000"#));
    assert!(s.has(r#"mining_sensor_reported_hashrate{coin="ethereum",range="kp"} 5242880"#));
}

/// The same when the subscribe comes after the authorize (its segment lost before the vantage
/// point and sent again after the authorize's; pools answer neither before both are in): the
/// login, waiting for its flow's first job, takes the agent the subscribe names.
#[test]
fn a_stratum_v1_login_takes_the_agent_a_later_subscribe_named() {
    let mut s = Session::new(Duration::from_secs(3600));
    let auth = r#"{"id": 2, "method": "mining.authorize", "params": ["w1", "x"]}"#;
    assert!(s.send(true, auth, 0).is_empty());
    let sub = r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0"]}"#;
    assert!(s.send(true, sub, 0).is_empty());
    let notify = r#"{"params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000","0000","00000000",[],"00000002","1c2ac4af","504e86b9",false],"id":null,"method":"mining.notify"}"#;
    let lines = s.send(false, notify, 1);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].coin, lines[0].agent), ("unknown", "cgminer"));
    assert!(
        s.has(r#"mining_sensor_miner_logins_total{agent="cgminer",coin="unknown",range="kp"} 1"#)
    );
}

#[test]
fn a_stratum_v1_login_takes_the_agent_its_subscribe_named() {
    let metrics = Metrics::new();
    let mut i = Inspector::new([3; 32], metrics.clone(), Duration::from_secs(60));
    let seg = |payload: &[u8]| {
        Packet::tcp4(
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into(),
            40000,
            4444,
            payload,
        )
        .build()
    };
    let now = Instant::now();
    let sub =
        seg(b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cgminer/4.10.0\"]}\n");
    assert!(
        i.frame(&sub, "copy", "e", now, SystemTime::now(), |_| 0, |_| None)
            .is_empty()
    );
    // The account `w1` names no coin: the login waits for the session's first job, whose
    // Bitcoin shape names none either, and counts with it as `unknown` (it counted at once
    // before logins waited for their flow's coin).
    let auth = seg(b"{\"id\": 2, \"method\": \"mining.authorize\", \"params\": [\"w1\", \"x\"]}\n");
    assert!(
        i.frame(&auth, "copy", "e", now, SystemTime::now(), |_| 0, |_| None)
            .is_empty()
    );
    let notify = r#"{"params":["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000","0000","00000000",[],"00000002","1c2ac4af","504e86b9",false],"id":null,"method":"mining.notify"}"#;
    let mut lines = Vec::new();
    for (k, msg) in [
        r#"{"id":null,"method":"mining.set_difficulty","params":[1024]}"#,
        notify,
    ]
    .iter()
    .enumerate()
    {
        lines = i.frame(
            &seg(format!("{msg}\n").as_bytes()),
            "copy",
            "e",
            now,
            SystemTime::now(),
            |_| 0,
            |_| None,
        );
        assert_eq!(lines.is_empty(), k < 1, "message {k}");
    }
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].coin, "unknown");
    assert_eq!(lines[0].agent, "cgminer");
    assert_eq!(lines[0].agent_version.as_deref(), Some("4.10.0"));
    assert_eq!(lines[0].dialect, "bitcoin");
}

#[test]
fn garbage_and_non_stratum_frames_are_inspected_but_count_no_login() {
    let metrics = Metrics::new();
    let mut i = Inspector::new([1; 32], metrics.clone(), Duration::from_secs(60));
    let html = Packet::tcp4(
        [198, 18, 0, 1].into(),
        [198, 18, 0, 2].into(),
        80,
        40000,
        b"<p>{\"method\":\"login\",\"params\":{\"login\":\"x\"}}</p>",
    )
    .build();
    for f in [&html[..], &[0u8; 10][..], &html[..30]] {
        assert!(
            i.frame(
                f,
                "copy",
                "eth0",
                Instant::now(),
                SystemTime::now(),
                |_| 0,
                |_| None
            )
            .is_empty()
        );
    }
    assert!(
        metrics
            .render()
            .contains("mining_sensor_inspected_packets_total{path=\"copy\"} 3")
    );
}

#[test]
fn a_key_file_must_hold_32_bytes() {
    let dir = std::env::temp_dir().join(format!("ms-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let short = dir.join("short");
    std::fs::write(&short, [1u8; 16]).unwrap();
    let e = login_key(Some(&short)).unwrap_err().to_string();
    assert!(e.contains("at least 32"), "{e}");
    let good = dir.join("good");
    std::fs::write(&good, [9u8; 40]).unwrap();
    assert_eq!(login_key(Some(&good)).unwrap(), [9u8; 32]);
    assert_ne!(login_key(None).unwrap(), login_key(None).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Account-style logins (a worker name, no address) take the coin their session shows.
#[test]
fn an_account_login_takes_the_coin_its_session_shows() {
    // Monero: xmr-stak's login (no algorithm list) waits; the pool's reply carries a CryptoNote
    // job that names no algorithm: monero, and the login counts with the reply.
    let mut s = Session::new(Duration::from_secs(3600));
    let lines = s.send(
        true,
        r#"{"method":"login","params":{"login":"myaccount.worker1","pass":"x","agent":"xmr-stak-cpu/1.0.0"},"id":1}"#,
        0,
    );
    assert!(lines.is_empty());
    let lines = s.send(false, MONERO_LOGIN_REPLY, 1);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0].coin, lines[0].agent, lines[0].dialect),
        ("monero", "xmr-stak", "monero")
    );
    assert!(
        s.has(r#"mining_sensor_miner_logins_total{agent="xmr-stak",coin="monero",range="kp"} 1"#)
    );
    // Its shares count under the coin learnt: one share at 10,000 hashes (target b88d0600).
    s.send(true, &monero_submit(2), 2);
    s.send(
        false,
        r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        2,
    );
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 10000"#));
    // A job that names another algorithm says `other`.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"method":"login","params":{"login":"myaccount.worker1","pass":"x","agent":"xmr-stak-cpu/1.0.0"},"id":1}"#,
        0,
    );
    let lines = s.send(
        false,
        r#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"s1","job":{"blob":"0707","job_id":"j1","target":"b88d0600","algo":"cn/r"},"status":"OK"}}"#,
        1,
    );
    assert_eq!(lines[0].coin, "other");

    // Zcash: an account logs in, the pool's set_target is no job, its Equihash notify is (8
    // params, version 04000000): the login counts at the notify, the second message after it.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["nheqminer/0.5c",null]}"#,
        0,
    );
    assert!(
        s.send(
            true,
            r#"{"id":2,"method":"mining.authorize","params":["kvetak.worker1","x"]}"#,
            0
        )
        .is_empty()
    );
    let t = "0".repeat(8) + &"f".repeat(56);
    assert!(
        s.send(
            false,
            &format!(r#"{{"id":null,"method":"mining.set_target","params":["{t}"]}}"#),
            1
        )
        .is_empty()
    );
    let h = "a".repeat(64);
    let lines = s.send(
        false,
        &format!(r#"{{"id":null,"method":"mining.notify","params":["6f4a","04000000","{h}","{h}","{h}","5b0c2a6e","1d0f2c4b",true]}}"#),
        1,
    );
    assert_eq!((lines.len(), lines[0].coin), (1, "zcash"));

    // The pool host EWBF puts in `mining.subscribe` names the coin before the login: it counts
    // at once.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["EWBF 0.3.4b",null,"eu1-zcash.flypool.org","3333"]}"#,
        0,
    );
    let lines = s.send(
        true,
        r#"{"id":2,"method":"mining.authorize","params":["kvetak.worker1","x"]}"#,
        0,
    );
    assert_eq!((lines[0].coin, lines[0].agent), ("zcash", "ewbf"));

    // aiostratum-proxy 1.1 towards an Equihash pool: its own family, the host's coin.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(
        true,
        r#"{"id":1,"method":"mining.subscribe","params":["aiostratum-proxy/1.1",null,"zec.2miners.com",3030]}"#,
        0,
    );
    let lines = s.send(
        true,
        r#"{"id":2,"method":"mining.authorize","params":["farm.proxy1","x"]}"#,
        0,
    );
    assert_eq!(
        (
            lines[0].coin,
            lines[0].agent,
            lines[0].agent_version.as_deref()
        ),
        ("zcash", "aiostratum-proxy", Some("1.1"))
    );
}

/// A login with a wallet and no agent (coin-hive-stratum's) counts at once: agent `unknown`, the
/// coin from the address.
#[test]
fn a_login_without_agent_counts_by_its_address() {
    let mut s = Session::new(Duration::from_secs(3600));
    let lines = s.send(
        true,
        &format!(
            r#"{{"id":1,"method":"login","params":{{"login":"{WALLET}.site1+50000","pass":"x"}}}}"#
        ),
        0,
    );
    assert_eq!(
        (lines.len(), lines[0].coin, lines[0].agent),
        (1, "monero", "unknown")
    );
    assert!(
        s.has(r#"mining_sensor_miner_logins_total{agent="unknown",coin="monero",range="kp"} 1"#)
    );
}

/// A login whose flow shows no coin counts as `unknown` once the wait is over: by time at an
/// expiry, or at the flow's end (forgotten, or replay's end), never twice.
#[test]
fn a_waiting_login_counts_unknown_when_the_wait_runs_out() {
    let login = r#"{"method":"login","params":{"login":"myaccount.worker1","pass":"x","agent":"xmr-stak-cpu/1.0.0"},"id":1}"#;
    let unknown =
        r#"mining_sensor_miner_logins_total{agent="xmr-stak",coin="unknown",range="kp"} 1"#;
    // By time: 59 s after the login it still waits, at 60 s (LOGIN_COIN_WAIT) it counts.
    let mut s = Session::new(Duration::from_secs(3600));
    assert!(s.send(true, login, 0).is_empty());
    s.expire(59);
    assert!(s.i.late_logins().is_empty());
    s.expire(60);
    let late = s.i.late_logins();
    assert_eq!((late.len(), late[0].coin), (1, "unknown"));
    assert!(s.has(unknown));
    // A job later does not count it again.
    s.send(
        false,
        r#"{"jsonrpc":"2.0","method":"job","params":{"blob":"0707","job_id":"j2","target":"b88d0600"}}"#,
        61,
    );
    s.expire(120);
    assert!(s.i.late_logins().is_empty());
    assert!(s.has(unknown));
    // By messages: a one-direction tap that sees only the miner's submits counts it with the
    // fourth (LOGIN_COIN_WAIT_MESSAGES) after the login.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(true, login, 0);
    for id in 2..=4 {
        assert!(
            s.send(true, &monero_submit(id), id.into()).is_empty(),
            "{id}"
        );
    }
    let lines = s.send(true, &monero_submit(5), 5);
    assert_eq!((lines.len(), lines[0].coin), (1, "unknown"));
    // Lines counted outside `frame` come out with the next frame's.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(true, login, 0);
    s.expire(60);
    let lines = s.send(true, &monero_submit(2), 61);
    assert_eq!(lines.len(), 1);
    // Replay's end: counted with the coin the flow showed, here none.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(true, login, 0);
    s.i.end_shares();
    assert_eq!(s.i.late_logins().len(), 1);
    assert!(s.has(unknown));
    // A flow forgotten (the distinct window of 10 s passed) counts its waiting login.
    let mut s = Session::new(Duration::from_secs(10));
    s.send(true, login, 0);
    s.expire(11);
    assert_eq!(s.i.late_logins().len(), 1);
    assert!(s.has(unknown));
}

/// A share longer than a segment (an Equihash 200,9 solution is 1,344 bytes of hex, 2.7 KB): its
/// two segments, in sequence, make one share; the second segment again, then the first (each a
/// retransmission) add nothing; the reassembly's bytes are back to 0 once the message is whole.
#[test]
fn a_share_split_over_two_segments_counts_once() {
    let mut s = Session::new(Duration::from_secs(3600));
    monero_login(&mut s);
    let solution = "ab".repeat(1400);
    let submit = format!(
        "{{\"id\":2,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{{\"id\":\"s1\",\"job_id\":\"j1\",\"nonce\":\"00000002\",\"result\":\"{solution}\"}}}}\n"
    );
    let (a, b) = submit.as_bytes().split_at(1400);
    s.segment(5000, a, 1);
    assert_eq!(s.i.streams.bytes(), 1400);
    s.segment(6400, b, 1);
    s.segment(6400, b, 1);
    assert_eq!(s.i.streams.bytes(), 0);
    s.segment(5000, a, 1);
    assert_eq!(s.i.streams.bytes(), 0);
    s.send(
        false,
        r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        2,
    );
    // One share at the login job's 10,000 hashes, and no other.
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 1"#));
    assert!(!s.metrics.render().contains(r#"result="unknown""#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 10000"#));
    assert!(s.has("mining_sensor_reassembly_bytes 0"));
}

/// A submit's first segment, cut before its nonce, whose second segment was missed: when the
/// next submit shows the gap, the cut message is dropped and read for a login alone (a cut
/// message says nothing of work), and the submit sent again whole (TCP resends what was not
/// acknowledged) counts once: 2 shares accepted, none `unknown`.
#[test]
fn a_submit_cut_by_a_missed_segment_and_sent_again_whole_counts_once() {
    let mut s = Session::new(Duration::from_secs(3600));
    monero_login(&mut s);
    let (two, three) = (monero_submit(2) + "\n", monero_submit(3) + "\n");
    let cut = two.find("\"nonce\"").unwrap();
    s.segment(5000, &two.as_bytes()[..cut], 1);
    assert_eq!(s.i.streams.bytes(), cut);
    // The next submit, after the missed segment: the cut one is dropped.
    s.segment(5000 + two.len() as u32, three.as_bytes(), 1);
    assert_eq!(s.i.streams.bytes(), 0);
    // The first submit again, whole.
    s.segment(5000, two.as_bytes(), 1);
    for id in 2..=3 {
        s.send(
            false,
            &format!(r#"{{"id":{id},"jsonrpc":"2.0","error":null,"result":{{"status":"OK"}}}}"#),
            2,
        );
    }
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 2"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 20000"#));
    s.expire(100);
    assert!(!s.metrics.render().contains(r#"result="unknown""#));
}

/// A Monero session inside WebSocket frames (a browser-miner bridge): the client's frames masked,
/// the pool's not. The login is attributed and the share counted as in plain Stratum.
#[test]
fn a_session_inside_websocket_frames_counts_as_plain_stratum() {
    let mut s = Session::new(Duration::from_secs(3600));
    let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
    let frame = |m: &str, key| test_support::websocket_frame(m.as_bytes(), key);
    let key = Some(MINER_KEY);
    let ok = r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#;
    let mut lines = Vec::new();
    for (up, bytes) in [
        (true, frame(&monero_login_json(), key)),
        (false, frame(MONERO_LOGIN_REPLY, None)),
        (true, frame(&monero_submit(2), key)),
        (false, frame(ok, None)),
    ] {
        let f = if up {
            Packet::tcp4(miner, pool, 40000, 443, &bytes).build()
        } else {
            Packet::tcp4(pool, miner, 443, 40000, &bytes).build()
        };
        lines.extend(s.feed(&f, 1));
    }
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].coin, lines[0].agent), ("monero", "xmrig"));
    // One share at the login job's target b88d0600: 10,000 hashes.
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 1"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 10000"#));
}

/// A masked frame whose bytes happen to hold a line that opens with `{` (here a key chosen to make
/// payload bytes 40 and 41 read `\n{`) is read as frames, not kept as plain text: kept, the
/// frame was cut there and its end put before the next submit's frame, and neither share counted
/// (XMRig's 6th share in a replayed WebSocket session was lost so, with key `c4 b7 3f 4c`).
#[test]
fn a_masked_frame_whose_bytes_hold_a_json_line_counts_its_share() {
    let mut s = Session::new(Duration::from_secs(3600));
    let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
    let frame = |m: &str, key| test_support::websocket_frame(m.as_bytes(), key);
    let ok = |id: u32| {
        format!(r#"{{"id":{id},"jsonrpc":"2.0","error":null,"result":{{"status":"OK"}}}}"#)
    };
    let first = monero_submit(2);
    let p = first.as_bytes();
    let unlucky = [p[40] ^ b'\n', p[41] ^ b'{', 0x5a, 0xa5];
    let masked = frame(&first, Some(unlucky));
    // A 2-byte header and the key: payload byte 40 is the frame's byte 46.
    assert_eq!(&masked[46..48], b"\n{");
    for (up, bytes) in [
        (true, frame(&monero_login_json(), Some(MINER_KEY))),
        (false, frame(MONERO_LOGIN_REPLY, None)),
        (true, masked),
        (false, frame(&ok(2), None)),
        (true, frame(&monero_submit(3), Some(MINER_KEY))),
        (false, frame(&ok(3), None)),
    ] {
        let f = if up {
            Packet::tcp4(miner, pool, 40000, 8080, &bytes).build()
        } else {
            Packet::tcp4(pool, miner, 8080, 40000, &bytes).build()
        };
        s.feed(&f, 1);
    }
    // Two shares at the login job's target b88d0600: 2 x 10,000 hashes.
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 2"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 20000"#));
}

/// A flow table that holds the keys opened in it (the kernel's `FLOWS` in the agent), and
/// counts the touches.
#[derive(Clone, Default)]
struct Table(
    std::sync::Arc<std::sync::Mutex<Vec<(sensor_common::FlowKey, u64, u8)>>>,
    std::sync::Arc<std::sync::atomic::AtomicU32>,
);

impl OpenFlows for Table {
    fn touch(&mut self, _: &sensor_common::FlowKey, _: SystemTime) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn open(
        &mut self,
        key: &sensor_common::FlowKey,
        ranges: u64,
        dialect: u8,
        _: SystemTime,
    ) -> bool {
        let mut t = self.0.lock().unwrap();
        if t.iter().any(|(k, ..)| k == key) {
            return false;
        }
        t.push((*key, ranges, dialect));
        true
    }
}

/// A compressed WebSocket session between a miner in range `kp` (198.18.0.1:40000) and a pool
/// (203.0.113.9:443), each direction one DEFLATE stream: XMRig's login, the pool's reply at target
/// b88d0600 (10,000 hashes a share), two submits and their OKs, each message in the number of
/// frames `parts` gives it, each frame a segment. Returns the session, its flow table and the login
/// lines.
fn compressed_session(parts: [usize; 6]) -> (Session, Table, Vec<LoginLine>) {
    use flate2::{Compress, Compression};
    let mut s = Session::new(Duration::from_secs(3600));
    let table = Table::default();
    s.i.open_flows_in(table.clone());
    let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
    let mut z = [
        Compress::new(Compression::default(), false),
        Compress::new(Compression::default(), false),
    ];
    let ok2 = r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#;
    let ok3 = r#"{"id":3,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#;
    let mut lines = Vec::new();
    let mut seq = [1000u32, 5000u32];
    let messages = [
        monero_login_json(),
        MONERO_LOGIN_REPLY.to_string(),
        monero_submit(2),
        ok2.to_string(),
        monero_submit(3),
        ok3.to_string(),
    ];
    for (k, (m, parts)) in messages.iter().zip(parts).enumerate() {
        let up = k % 2 == 0;
        let d = usize::from(!up);
        let fs =
            test_support::deflated_frames(&mut z[d], m.as_bytes(), parts, up.then_some(MINER_KEY));
        assert_eq!(fs.len(), parts);
        for bytes in fs {
            let f = if up {
                Packet::tcp4(miner, pool, 40000, 443, &bytes)
            } else {
                Packet::tcp4(pool, miner, 443, 40000, &bytes)
            };
            let f = f.tcp_seq(seq[d]).build();
            seq[d] += bytes.len() as u32;
            lines.extend(s.feed(&f, 1));
        }
    }
    (s, table, lines)
}

const MINER_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// What a compressed session's login, shares and flow count: the login once with coin and agent,
/// two shares at the login job's target b88d0600 (2 x 10,000 hashes), the flow once (the miner,
/// range kp, id 0, its source: `from`; in the table with range bit 0 and dialect monero, 0), and
/// both directions' inflaters held (2 x 44,032 bytes).
fn assert_compressed_session_counted(s: &Session, table: &Table, lines: &[LoginLine]) {
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].coin, lines[0].agent), ("monero", "xmrig"));
    assert!(s.has(r#"mining_sensor_shares_total{coin="monero",range="kp",result="accepted"} 2"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="monero",range="kp"} 20000"#));
    assert!(s.has(
        r#"mining_sensor_stratum_flows_total{dialect="monero",direction="from",range="kp"} 1"#
    ));
    let opened = table.0.lock().unwrap().clone();
    assert_eq!(opened.len(), 1);
    assert_eq!((opened[0].1, opened[0].2), (1, 0));
    assert!(s.has("mining_sensor_inflate_bytes 88064"));
}

/// The session compressed with permessage-deflate, each message one frame: inflated per
/// direction and read as plain Stratum; the kernel could not see it, so the flow is opened here,
/// once, in the flow table and in `stratum_flows_total`. A flow the table already holds (the
/// kernel counted it) is not counted again.
#[test]
fn a_compressed_websocket_session_opens_its_flow_once() {
    use flate2::{Compress, Compression};
    let (mut s, table, lines) = compressed_session([1; 6]);
    assert_compressed_session_counted(&s, &table, &lines);
    let opened = table.0.lock().unwrap().clone();
    // 198.18.0.1 before 203.0.113.9: the miner is the key's lower endpoint.
    assert_eq!((opened[0].0.port_lo, opened[0].0.port_hi), (40000, 443));
    // Touched at each later Stratum message: the login reply (its `result.job.blob`) and the
    // two submits, 3; the two `OK` replies are no Stratum message.
    assert_eq!(table.1.load(std::sync::atomic::Ordering::Relaxed), 3);

    // Another flow the table already holds (the kernel found it first): its login counts, the
    // flow is not counted again.
    let (miner, pool) = (
        std::net::Ipv4Addr::new(198, 18, 0, 1),
        std::net::Ipv4Addr::new(203, 0, 113, 9),
    );
    table.0.lock().unwrap().push((
        crate::bpf::opened::tcp_flow_key((miner.into(), 40001), (pool.into(), 443)),
        1,
        0,
    ));
    let mut c = Compress::new(Compression::default(), false);
    let login =
        test_support::deflated_frames(&mut c, monero_login_json().as_bytes(), 1, Some(MINER_KEY));
    let f = Packet::tcp4(miner, pool, 40001, 443, &login[0]).build();
    let lines = s.feed(&f, 1);
    assert_eq!(table.0.lock().unwrap().len(), 2);
    assert!(s.has(
        r#"mining_sensor_stratum_flows_total{dialect="monero",direction="from",range="kp"} 1"#
    ));
    // Its login names its coin by the wallet (a Monero address): counted at once.
    assert_eq!(lines.len(), 1);
    assert!(s.has(r#"mining_sensor_miner_logins_total{agent="xmrig",coin="monero",range="kp"} 2"#));
}

/// A plain login the program did not read (padded with an unknown key of 600 bytes before its
/// method: the program's scan of the segment's window finds nothing) opens its flow here: once
/// in the table, with its ranges and dialect, and once in `stratum_flows_total`; the flow's later
/// Stratum messages touch its entry (the job and the submit; the pool's `OK` is none). A login
/// the program's scan finds was counted there: its flow is not opened here, even when the table
/// no longer holds it (evicted from a full table: opening it would count it twice), and nothing
/// is touched later; without a table nothing is opened or counted either.
#[test]
fn a_plain_login_the_program_missed_opens_its_flow_once() {
    let flows =
        r#"mining_sensor_stratum_flows_total{dialect="monero",direction="from",range="kp"} 1"#;
    let padded =
        monero_login_json().replacen('{', &format!(r#"{{"pad":"{}","#, "x".repeat(600)), 1);
    assert_eq!(sensor_common::stratum::scan_slice(padded.as_bytes()), None);
    let mut s = Session::new(Duration::from_secs(3600));
    let table = Table::default();
    s.i.open_flows_in(table.clone());
    s.send(true, &padded, 0);
    let opened = table.0.lock().unwrap().clone();
    assert_eq!(opened.len(), 1);
    // 198.18.0.1:40000 before 203.0.113.9:3333; range bit 0 (kp), dialect monero (0).
    assert_eq!(
        (
            opened[0].0.port_lo,
            opened[0].0.port_hi,
            opened[0].1,
            opened[0].2
        ),
        (40000, 3333, 1, 0)
    );
    assert!(s.has(flows));
    assert!(s.has(r#"mining_sensor_miner_logins_total{agent="xmrig",coin="monero",range="kp"} 1"#));
    s.send(false, MONERO_LOGIN_REPLY, 0);
    s.send(true, &monero_submit(2), 1);
    s.send(
        false,
        r#"{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}"#,
        1,
    );
    // The login reply (a job) and the submit.
    assert_eq!(table.1.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(table.0.lock().unwrap().len(), 1);
    assert!(s.has(flows));

    // The program read this one (its scan finds the login), and the table lacks its flow.
    let plain = monero_login_json();
    assert_eq!(
        sensor_common::stratum::scan_slice(plain.as_bytes()),
        Some(sensor_common::stratum::Dialect::Monero)
    );
    let mut s = Session::new(Duration::from_secs(3600));
    let table = Table::default();
    s.i.open_flows_in(table.clone());
    monero_login(&mut s);
    s.send(true, &monero_submit(2), 1);
    assert!(table.0.lock().unwrap().is_empty());
    assert_eq!(table.1.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(!s.render_has("mining_sensor_stratum_flows_total"));
    assert!(s.has(r#"mining_sensor_miner_logins_total{agent="xmrig",coin="monero",range="kp"} 1"#));

    // No table.
    let mut s = Session::new(Duration::from_secs(3600));
    s.send(true, &padded, 0);
    assert!(!s.render_has("mining_sensor_stratum_flows_total"));
}

/// Compressed messages sent in several frames, as the `websockets` library sends a message
/// given as an iterable: the login in three fragments, a submit in two, the other in one frame
/// (`c1`), the pool's answers in one each. The fragments are joined and inflated in their place
/// in the stream: the same counts as the session in single frames, and no message left open.
#[test]
fn compressed_messages_in_several_frames_are_joined_and_inflated_in_order() {
    let (s, table, lines) = compressed_session([3, 1, 2, 1, 1, 1]);
    assert_compressed_session_counted(&s, &table, &lines);
    assert!(s.has("mining_sensor_reassembly_bytes 0"));
}

/// Ethereum getwork over HTTP POST (ethminer's `http://` scheme, Go clients): the requests' and
/// answers' bodies are read as plain ethproxy messages, so the share submitted for the work
/// getWork handed out counts at that work's boundary, with the pool's verdict, and the reported
/// rate too. No login travels (the account is in the URL's path): none counts.
#[test]
fn a_getwork_session_over_http_counts_its_shares() {
    let mut s = Session::new(Duration::from_secs(3600));
    let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
    let ranges = |a: IpAddr| u64::from(a == IpAddr::from([198, 18, 0, 1]));
    let name = |id: usize| (id == 0).then(|| "kp".to_string());
    let post = |body: &str| {
        format!(
            "POST /0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1 HTTP/1.1\r\nHost: 203.0.113.9\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
            body.len()
        )
    };
    let reply = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
            body.len()
        )
    };
    let h = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
    // Boundary 2^224 (a 1 in the 8th hex digit of 64): 2^256 / 2^224 = 2^32 = 4,294,967,296
    // hashes a share.
    let boundary = "0x0000000100000000000000000000000000000000000000000000000000000000";
    let now = s.t0 + Duration::from_secs(1);
    let mut lines = Vec::new();
    for (up, bytes) in [
        (
            true,
            post(r#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#),
        ),
        (
            false,
            reply(&format!(
                r#"{{"id":1,"jsonrpc":"2.0","result":["{h}","{h}","{boundary}"]}}"#
            )),
        ),
        (
            true,
            post(&format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"eth_submitHashrate","params":["0x1e8480","{h}"]}}"#
            )),
        ),
        (false, reply(r#"{"id":2,"jsonrpc":"2.0","result":true}"#)),
        (
            true,
            post(&format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"eth_submitWork","params":["0x63d8903c474b670f","{h}","{h}"]}}"#
            )),
        ),
        (false, reply(r#"{"id":3,"jsonrpc":"2.0","result":true}"#)),
    ] {
        let f = if up {
            Packet::tcp4(miner, pool, 40000, 80, bytes.as_bytes()).build()
        } else {
            Packet::tcp4(pool, miner, 80, 40000, bytes.as_bytes()).build()
        };
        lines.extend(s.i.frame(&f, "copy", "eth0", now, SystemTime::now(), ranges, name));
    }
    assert!(lines.is_empty());
    assert!(s.has(r#"mining_sensor_shares_total{coin="ethereum",range="kp",result="accepted"} 1"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="ethereum",range="kp"} 4294967296"#));
    // 0x1e8480 = 1x16^5 + 14x16^4 + 8x16^3 + 4x16^2 + 8x16 = 2,000,000 hashes per second, set
    // at the next expiry tick.
    s.expire(10);
    assert!(s.has(r#"mining_sensor_reported_hashrate{coin="ethereum",range="kp"} 2000000"#));
}

/// The getwork session with chunked bodies (`Transfer-Encoding: chunked`, as Node's HTTP client
/// posts and Go's, Node's and aiohttp's servers answer without `Content-Length`), in each shape:
/// getWork's JSON over three chunks in its head's segment (16 + 27 + 16 = 59 bytes, a boundary
/// inside `eth_getWork`: the kernel scans none of it, so the flow is opened here), the answer in
/// one chunk with an extension, a verdict whose body opens a segment after its head's, a submit
/// likewise. Two shares at the boundary 2^224: one accepted, one rejected, 2 x 2^32 =
/// 8,589,934,592 hashes; the flow once. A chunked REST exchange beside it counts nothing.
#[test]
fn a_getwork_session_with_chunked_bodies_counts_its_shares() {
    let mut s = Session::new(Duration::from_secs(3600));
    let table = Table::default();
    s.i.open_flows_in(table.clone());
    let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
    let ranges = |a: IpAddr| u64::from(a == IpAddr::from([198, 18, 0, 1]));
    let name = |id: usize| (id == 0).then(|| "kp".to_string());
    let post_head = "POST /0x52bc44d5378309ee2abf1539bf71de1b7d7be3b5/rig1 HTTP/1.1\r\nHost: 203.0.113.9\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n";
    let reply_head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    // One chunk: its size in hex, its data, CRLF, the last chunk.
    let chunk = |ext: &str, body: &str| format!("{:x}{ext}\r\n{body}\r\n0\r\n\r\n", body.len());
    let get_work = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getWork","params":[]}"#;
    assert_eq!(&get_work[38..43], "getWo");
    let three = format!(
        "10\r\n{}\r\n1b\r\n{}\r\n10\r\n{}\r\n0\r\n\r\n",
        &get_work[..16],
        &get_work[16..43],
        &get_work[43..]
    );
    let h = "0x416e293fb0bd38d28e5ff6bd43bc13a0252333f9985485cbd5ed49f3c79d2960";
    let boundary = "0x0000000100000000000000000000000000000000000000000000000000000000";
    let work = format!(r#"{{"id":1,"jsonrpc":"2.0","result":["{h}","{h}","{boundary}"]}}"#);
    let submit = |id: u32, nonce: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_submitWork","params":["{nonce}","{h}","{h}"]}}"#
        )
    };
    let now = s.t0 + Duration::from_secs(1);
    let mut lines = Vec::new();
    let (mut up_seq, mut down_seq) = (1000u32, 9000u32);
    let mut segments = vec![
        (true, format!("{post_head}{three}")),
        (false, format!("{reply_head}{}", chunk(";x=y", &work))),
        (
            true,
            format!("{post_head}{}", chunk("", &submit(2, "0x63d8903c474b670f"))),
        ),
        (false, reply_head.to_string()),
        (
            false,
            chunk("", r#"{"id":2,"jsonrpc":"2.0","result":true}"#),
        ),
        (true, post_head.to_string()),
        (true, chunk("", &submit(3, "0x63d8903c474b6710"))),
        (
            false,
            format!(
                "{reply_head}{}",
                chunk("", r#"{"id":3,"jsonrpc":"2.0","result":false}"#)
            ),
        ),
    ];
    // A REST client's chunked JSON on another flow: a body over two chunks and its answer.
    let rest = r#"{"user":"ana","items":[1,2,3],"method":"update"}"#;
    let rest_two = format!(
        "8\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        &rest[..8],
        rest.len() - 8,
        &rest[8..]
    );
    segments.push((true, format!("POST /api/cart HTTP/1.1\r\nHost: 203.0.113.9\r\nTransfer-Encoding: chunked\r\n\r\n{rest_two}")));
    segments.push((
        false,
        format!("{reply_head}{}", chunk("", r#"{"ok":true,"id":7}"#)),
    ));
    for (i, (up, bytes)) in segments.iter().enumerate() {
        let sport = if i < 8 { 40010 } else { 40011 };
        let f = if *up {
            let f = Packet::tcp4(miner, pool, sport, 80, bytes.as_bytes()).tcp_seq(up_seq);
            up_seq += bytes.len() as u32;
            f.build()
        } else {
            let f = Packet::tcp4(pool, miner, 80, sport, bytes.as_bytes()).tcp_seq(down_seq);
            down_seq += bytes.len() as u32;
            f.build()
        };
        lines.extend(s.i.frame(&f, "copy", "eth0", now, SystemTime::now(), ranges, name));
    }
    assert!(lines.is_empty());
    assert!(s.has(r#"mining_sensor_shares_total{coin="ethereum",range="kp",result="accepted"} 1"#));
    assert!(s.has(r#"mining_sensor_shares_total{coin="ethereum",range="kp",result="rejected"} 1"#));
    assert!(s.has(r#"mining_sensor_share_hashes_total{coin="ethereum",range="kp"} 8589934592"#));
    // The flow opened here once (the first request over three chunks), range bit 0, dialect
    // ethereum; the REST flow not at all.
    assert!(s.has(
        r#"mining_sensor_stratum_flows_total{dialect="ethereum",direction="from",range="kp"} 1"#
    ));
    let opened = table.0.lock().unwrap().clone();
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (opened[0].0.port_lo, opened[0].1, opened[0].2),
        (40010, 1, sensor_common::stratum::Dialect::Ethereum as u8)
    );
}

/// A login split before any marker on a new flow (a first segment of one byte, `{`; one cut
/// before `"method"`; one before `"agent"`), as the kernel hands both segments over (the first
/// held as the flow's opening): joined, the login counts once, with its coin and agent.
#[test]
fn a_login_split_before_any_marker_counts_once_with_coin_and_agent() {
    let mut s = Session::new(Duration::from_secs(3600));
    let (miner, pool) = ([198, 18, 0, 1].into(), [203, 0, 113, 9].into());
    let ranges = |a: IpAddr| u64::from(a == IpAddr::from([198, 18, 0, 1]));
    let name = |id: usize| (id == 0).then(|| "kp".to_string());
    let login = format!(
        "{{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{{\"login\":\"{WALLET}\",\"pass\":\"x\",\"agent\":\"XMRig/6.16.0 (Linux x86_64) libuv/1.42.0 gcc/5.4.0\",\"algo\":[\"rx/0\"]}}}}\n"
    );
    // `{"id":1,"jsonrpc":"2.0",` is 24 bytes; `"agent"` follows the 95-character wallet:
    // 24 + `"method":"login",` 17 + `"params":{` 10 + `"login":"` 9 + 95 + `","pass":"x",` 13.
    let (method, agent) = (24, 24 + 17 + 10 + 9 + 95 + 13);
    assert_eq!(login.find("\"agent\""), Some(agent));
    let now = s.t0 + Duration::from_secs(1);
    let mut lines = Vec::new();
    for (sport, cut) in [(40100, 1), (40101, method), (40102, agent)] {
        for (seq, part) in [(1000, &login[..cut]), (1000 + cut as u32, &login[cut..])] {
            let f = Packet::tcp4(miner, pool, sport, 3333, part.as_bytes())
                .tcp_seq(seq)
                .build();
            lines.extend(s.i.frame(&f, "copy", "eth0", now, SystemTime::now(), ranges, name));
        }
    }
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!((l.coin, l.agent), ("monero", "xmrig"));
    }
    assert!(s.has(r#"mining_sensor_miner_logins_total{agent="xmrig",coin="monero",range="kp"} 3"#));
}
