//! The `encrypted_stratum` decision on hand-built record sequences: each mining and benign shape,
//! and both sides of every threshold.
//!
//! Sizes are TLS 1.3 record length fields: JSON plus 17 (the inner content type and a 16-byte
//! tag). XMRig's messages, counted by hand (README, "Suspect flows"):
//! - a submit `{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"<36-char session>",
//!   "job_id":"<28 chars>","nonce":"<8 hex>","result":"<64 hex>","algo":"rx/0"}}\n` is 247
//!   bytes: a 264-byte record;
//! - the reply `{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}\n` is 63: 80;
//! - a job push with a 152-hex blob, that job id, an 8-hex target, height 3012345 and a 64-hex
//!   seed hash is 376: 393;
//! - `keepalived` with the session id is 102: 119; its `KEEPALIVED` answer 71: 88.

use sensor_common::tls_shape::{OPENING_MS, SHAPE_RECORDS, TlsShape, pack};

use super::{
    Judgement,
    decide::{Cadence, Features, Verdict, classify, jobless, verdict},
    judge,
};

const SUBMIT: u32 = 264;
const REPLY: u32 = 80;
const JOB: u32 = 393;
const KEEPALIVE: u32 = 119;
const KEEPALIVE_ANSWER: u32 = 88;

/// (ms after the ClientHello, from the server, record length).
type Rec = (u32, bool, u32);

/// A recorded flow of these records, starting at 1,000 s on the program's clock, as the program
/// records it: the first 64 after the opening kept, all summed.
fn shape(records: &[Rec]) -> TlsShape {
    let mut s = TlsShape {
        first_ns: 1_000_000_000_000,
        src_ranges: 1,
        dst_ranges: 0,
        ifindex: 3,
        records: records.len() as u32,
        bytes: [0; 2],
        client_is_lo: 1,
        kept: 0,
        _pad: [0; 2],
        last_tick: 0,
        first: [0; SHAPE_RECORDS],
    };
    for &(ms, server, len) in records {
        if ms >= OPENING_MS && (s.kept as usize) < SHAPE_RECORDS {
            s.first[s.kept as usize] = pack(ms as u64 / 10, server, len);
            s.kept += 1;
        }
        s.bytes[server as usize] += len;
        s.last_tick = ms / 10;
    }
    s
}

/// The program's clock `ms` after the flow's ClientHello.
fn at(ms: u64) -> u64 {
    1_000_000_000_000 + ms * 1_000_000
}

fn features(records: &[Rec], age_ms: u64) -> Features {
    classify(shape(records).kept(), age_ms)
}

/// The opening of an XMRig session over TLS 1.3: the client's Finished (53: 32-byte verify data,
/// 4-byte header, 17), the login (a 450-byte line: 467), two session tickets (250 each) and the
/// login reply with its job (700: 717), all within half a second.
const OPENING: [Rec; 5] = [
    (50, false, 53),
    (60, false, 467),
    (300, true, 250),
    (310, true, 250),
    (420, true, 717),
];

/// XMRig: the opening, then a submit every 30 s from 20 s on, answered 150 ms later, and jobs at
/// 70 s and 190 s; `until` ms.
fn xmrig(until: u32) -> Vec<Rec> {
    let mut r = OPENING.to_vec();
    let mut t = 20_000;
    while t < until {
        r.push((t, false, SUBMIT));
        r.push((t + 150, true, REPLY));
        if t + 20_000 < until && (t + 20_000 == 70_000 || t + 20_000 == 190_000) {
            r.push((t + 20_000, true, JOB));
        }
        t += 30_000;
    }
    r
}

#[test]
fn xmrig_over_tls_is_stratum_by_its_shape() {
    let r = xmrig(240_000);
    // Submits at 20, 50, ..., 230 s: 8, each answered; jobs at 70 and 190 s (each 20 s after a
    // submit, none waiting); nothing else after the opening. Span: 20 s to 230.15 s.
    assert_eq!(
        features(&r, 240_000),
        Features {
            submits: 8,
            equihash: 0,
            keepalives: 0,
            jobs: 2,
            job_min: JOB,
            job_max: JOB,
            submit_min: SUBMIT,
            submit_max: SUBMIT,
            anomalies: 0,
            large: 0,
            span_ms: 210_150,
            // 7 gaps of 30 s: 210 s, and 7 x 900 s^2 (a cadence of no variation).
            cadence: Cadence {
                gaps: 7,
                sum_ms: 210_000,
                sq_ms2: 6_300_000_000,
            },
        }
    );
    // Bytes: the opening 53 + 467 + 250 + 250 + 717 = 1,737, 8 x (264 + 80) = 2,752, 2 x 393 =
    // 786: 5,275 in 240 s, 22 B/s.
    let s = shape(&r);
    assert_eq!(s.bytes[0] + s.bytes[1], 5_275);
    assert_eq!(judge(&s, at(240_000), false), Judgement::Flag);
    // Twice the evidence asked for (4 submits, 2 jobs) is decided at once: up to 190 s the flow
    // shows 6 submits but 1 job and waits; with the job of 190 s it is flagged.
    let before = shape(&xmrig(190_000));
    assert_eq!(features(&xmrig(190_000), 189_990).jobs, 1);
    assert_eq!(judge(&before, at(189_990), false), Judgement::Wait);
    let with = shape(&xmrig(190_010));
    assert_eq!(features(&xmrig(190_010), 190_010).jobs, 2);
    assert_eq!(judge(&with, at(190_010), false), Judgement::Flag);
}

#[test]
fn keepalives_count_as_evidence_neither_way() {
    // An idle minute: XMRig's keepalived at 60 s, answered; then the usual traffic.
    let mut r = OPENING.to_vec();
    r.push((60_000, false, KEEPALIVE));
    r.push((60_100, true, KEEPALIVE_ANSWER));
    r.extend([
        (90_000, false, SUBMIT),
        (90_150, true, REPLY),
        (100_000, true, JOB),
        (130_000, false, SUBMIT),
        (130_150, true, REPLY),
    ]);
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.keepalives, f.jobs, f.anomalies), (2, 1, 1, 0));
    // Span 60 s to 130.15 s: 70,150 ms.
    assert_eq!(f.span_ms, 70_150);
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Flag);
    // Keepalives alone (a miner without shares yet): nothing proven, watched until 10 minutes.
    let mut idle = OPENING.to_vec();
    for k in 1..5 {
        idle.push((k * 60_000, false, KEEPALIVE));
        idle.push((k * 60_000 + 100, true, KEEPALIVE_ANSWER));
    }
    assert_eq!(
        verdict(&features(&idle, 300_000), 0, 300_000),
        Verdict::Unproven
    );
    assert_eq!(judge(&shape(&idle), at(599_990), false), Judgement::Wait);
    assert_eq!(judge(&shape(&idle), at(600_000), false), Judgement::Clear);
}

/// The smallest Stratum-shaped flow: two answered submits and a job, over exactly a minute.
fn minimal(submit: u32, reply: u32, job: u32, reply_after: u32) -> Vec<Rec> {
    vec![
        (10_000, false, submit),
        (10_000 + reply_after, true, reply),
        (40_000, true, job),
        (70_000 - reply_after, false, submit),
        (70_000, true, reply),
    ]
}

fn verdict_of(records: &[Rec]) -> Verdict {
    let s = shape(records);
    verdict(
        &classify(s.kept(), 240_000),
        s.bytes[0] as u64 + s.bytes[1] as u64,
        240_000,
    )
}

#[test]
fn each_band_and_the_reply_time_at_their_edges() {
    assert_eq!(
        verdict_of(&minimal(SUBMIT, REPLY, JOB, 150)),
        Verdict::Stratum
    );
    // Submit band 160..=300: 159 is a keepalive (evidence of no submit), 301 answered by a reply
    // fits no exchange.
    assert_eq!(verdict_of(&minimal(160, REPLY, JOB, 150)), Verdict::Stratum);
    assert_eq!(verdict_of(&minimal(300, REPLY, JOB, 150)), Verdict::Stratum);
    assert_eq!(
        verdict_of(&minimal(159, REPLY, JOB, 150)),
        Verdict::Unproven
    );
    // 301, twice: two anomalies against the one allowed with 1 job of evidence.
    assert_eq!(
        verdict_of(&minimal(301, REPLY, JOB, 150)),
        Verdict::NotStratum
    );
    // Reply band 70..=140.
    assert_eq!(verdict_of(&minimal(SUBMIT, 70, JOB, 150)), Verdict::Stratum);
    assert_eq!(
        verdict_of(&minimal(SUBMIT, 140, JOB, 150)),
        Verdict::Stratum
    );
    assert_eq!(
        verdict_of(&minimal(SUBMIT, 69, JOB, 150)),
        Verdict::NotStratum
    );
    assert_eq!(
        verdict_of(&minimal(SUBMIT, 141, JOB, 150)),
        Verdict::NotStratum
    );
    // Job band 286..=590: 285 unasked is an anomaly, and without a job nothing is proven.
    assert_eq!(
        verdict_of(&minimal(SUBMIT, REPLY, 286, 150)),
        Verdict::Stratum
    );
    assert_eq!(
        verdict_of(&minimal(SUBMIT, REPLY, 590, 150)),
        Verdict::Stratum
    );
    assert_eq!(
        features(&minimal(SUBMIT, REPLY, 285, 150), 240_000).anomalies,
        1
    );
    assert_eq!(
        verdict_of(&minimal(SUBMIT, REPLY, 285, 150)),
        Verdict::Unproven
    );
    assert_eq!(
        verdict_of(&minimal(SUBMIT, REPLY, 591, 150)),
        Verdict::Unproven
    );
    // A reply 2 s after its submit answers it; 2.01 s is too late: the submit counts unanswered
    // and the reply unasked, twice.
    assert_eq!(
        verdict_of(&minimal(SUBMIT, REPLY, JOB, 2_000)),
        Verdict::Stratum
    );
    let late = features(&minimal(SUBMIT, REPLY, JOB, 2_010), 240_000);
    assert_eq!((late.submits, late.anomalies), (0, 4));
}

#[test]
fn time_thresholds_at_their_edges() {
    // Span: a minute from the first record after the opening to the last, not 10 ms less.
    let mut r = minimal(SUBMIT, REPLY, JOB, 150);
    assert_eq!(features(&r, 240_000).span_ms, 60_000);
    r[4].0 = 69_990;
    r[3].0 = 69_840;
    assert_eq!(features(&r, 240_000).span_ms, 59_990);
    assert_eq!(verdict_of(&r), Verdict::Unproven);
    // The opening ends at 5 s: a submit pair at 4.99 s is not counted, one at 5 s is.
    let pair = |t| vec![(t, false, SUBMIT), (t + 150, true, REPLY)];
    assert_eq!(features(&pair(4_990), 240_000).submits, 0);
    assert_eq!(features(&pair(5_000), 240_000).submits, 1);
    // A submit still unanswered counts against only once its 2 s are over.
    assert_eq!(features(&[(10_000, false, SUBMIT)], 12_000).anomalies, 0);
    assert_eq!(features(&[(10_000, false, SUBMIT)], 12_010).anomalies, 1);
}

#[test]
fn sizes_spreads_volume_and_anomalies_at_their_edges() {
    let with_jobs = |a: u32, b: u32| {
        let mut r = minimal(SUBMIT, REPLY, a, 150);
        r.push((100_000, true, b));
        r
    };
    // Jobs 16 bytes apart are one coin's; 17 are not.
    assert_eq!(verdict_of(&with_jobs(393, 409)), Verdict::Stratum);
    assert_eq!(verdict_of(&with_jobs(393, 410)), Verdict::NotStratum);
    // Submits 24 apart, 25.
    let mut r = minimal(SUBMIT, REPLY, JOB, 150);
    r[3].2 = SUBMIT + 24;
    assert_eq!(verdict_of(&r), Verdict::Stratum);
    r[3].2 = SUBMIT + 25;
    assert_eq!(verdict_of(&r), Verdict::NotStratum);
    // One record over 1,024 bytes after the opening, and none is Stratum; 1,024 itself is an
    // unasked record of no band, the one anomaly allowed.
    let mut r = minimal(SUBMIT, REPLY, JOB, 150);
    r.push((100_000, true, 1_024));
    assert_eq!(verdict_of(&r), Verdict::Stratum);
    r[5].2 = 1_025;
    assert_eq!(verdict_of(&r), Verdict::NotStratum);
    // 1,000 B/s: at 240 s, 240,000 bytes pass, 240,001 do not (the sums count every record,
    // kept or not).
    let f = features(&minimal(SUBMIT, REPLY, JOB, 150), 240_000);
    assert_eq!(verdict(&f, 240_000, 240_000), Verdict::Stratum);
    assert_eq!(verdict(&f, 240_001, 240_000), Verdict::NotStratum);
    // Anomalies: 1 + evidence / 4. 2 submits + 1 job allow 1; a second unasked record is one
    // too many. 4 submits + 4 jobs (8) allow 3.
    let mut r = minimal(SUBMIT, REPLY, JOB, 150);
    r.push((100_000, true, 50));
    assert_eq!(verdict_of(&r), Verdict::Stratum);
    r.push((110_000, true, 50));
    assert_eq!(verdict_of(&r), Verdict::NotStratum);
    let mut r = Vec::new();
    for k in 0..4 {
        let t = 10_000 + k * 20_000;
        r.extend([
            (t, false, SUBMIT),
            (t + 150, true, REPLY),
            (t + 10_000, true, JOB),
        ]);
    }
    for k in 0..3 {
        r.push((100_000 + k * 1_000, true, 50));
    }
    assert_eq!(features(&r, 240_000).anomalies, 3);
    assert_eq!(verdict_of(&r), Verdict::Stratum);
    r.push((104_000, true, 50));
    assert_eq!(verdict_of(&r), Verdict::NotStratum);
}

#[test]
fn a_job_crossing_a_submit_is_still_a_job_and_the_reply_still_answers() {
    // A job 100 ms after a submit, the reply 50 ms later: the job neither answers the submit nor
    // counts as unasked; the reply answers it.
    let r = vec![
        (10_000, false, SUBMIT),
        (10_100, true, JOB),
        (10_150, true, REPLY),
        (40_000, true, JOB),
        (70_000, false, SUBMIT),
        (70_150, true, REPLY),
    ];
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.jobs, f.anomalies), (2, 1, 0));
    // Two submits in a burst before the first reply: answered in order.
    let r = vec![
        (10_000, false, SUBMIT),
        (10_050, false, SUBMIT + 1),
        (10_150, true, REPLY),
        (10_200, true, REPLY),
    ];
    assert_eq!(features(&r, 240_000).submits, 2);
}

#[test]
fn benign_request_response_and_downloads_are_not_stratum() {
    // HTTPS: a 350-byte request answered by 16 KiB records (16,401: 2^14 + 17), then a small
    // request and a small response, over a minute of keep-alive.
    let mut r = vec![(6_000, false, 350)];
    for k in 0..5 {
        r.push((6_100 + k * 10, true, 16_401));
    }
    r.extend([(70_000, false, 200), (70_100, true, 90)]);
    assert_eq!(features(&r, 240_000).large, 5);
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Clear);
    // A download: 64 records of 16,401 fill the kept records within a second, judged then.
    let r: Vec<Rec> = (0..64).map(|k| (6_000 + k * 10, true, 16_401)).collect();
    assert_eq!(judge(&shape(&r), at(7_000), false), Judgement::Clear);
    // A short page load, over in 2 s: at the end of a replay, cleared.
    let r = vec![(100, false, 400), (300, true, 5_000)];
    assert_eq!(judge(&shape(&r), at(2_000), true), Judgement::Clear);
}

#[test]
fn benign_websocket_keepalives_are_not_stratum() {
    // WebSocket over TLS, the server pinging every 20 s (a 2-byte header and 4 bytes: 23) and the
    // client answering with a masked pong (2 + 4 + 4: 27), equal sizes each time, over 4 minutes.
    let mut r = Vec::new();
    let mut t = 20_000;
    while t < 240_000 {
        r.push((t, true, 23));
        r.push((t + 40, false, 27));
        t += 20_000;
    }
    let f = features(&r, 240_000);
    // Each ping unasked (11), each pong unanswered once the next ping is 20 s on (10), the last
    // one too at 240 s: 22 anomalies, no evidence.
    assert_eq!((f.anomalies, f.submits, f.jobs), (22, 0, 0));
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Clear);
    // The client pinging and the server answering, app-level JSON heartbeats of 60 and 50 bytes
    // (77 and 67): the answers are below the reply band, so each exchange fits nothing.
    let r: Vec<Rec> = (1..12)
        .flat_map(|k| [(k * 20_000, false, 77), (k * 20_000 + 80, true, 67)])
        .collect();
    assert_eq!(
        verdict_of(&r),
        Verdict::NotStratum,
        "{:?}",
        features(&r, 240_000)
    );
}

#[test]
fn benign_long_poll_is_not_stratum() {
    // A long-poll: a 250-byte request (in the submit band) answered 30 s later by a constant
    // 420-byte "nothing new" (in the job band), and again at once. Every request goes unanswered
    // past 2 s; every response is unasked and job-sized: 7 jobs, 8 anomalies (the last request
    // too), against 1 + 7 / 4 = 2 allowed.
    let mut r = Vec::new();
    for k in 0..8 {
        let t = 6_000 + k * 30_000;
        r.push((t, false, 250));
        if k < 7 {
            r.push((t + 29_990, true, 420));
        }
    }
    let f = features(&r, 240_000);
    assert_eq!((f.jobs, f.submits, f.anomalies), (7, 0, 8));
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Clear);
}

#[test]
fn benign_chat_is_not_stratum() {
    // A chat: the client's messages (sizes of a conversation) acknowledged in 80 bytes, and the
    // other side's messages pushed unasked, some in the job band.
    let client = [180, 240, 205, 290, 170, 260];
    let pushed = [120, 330, 95, 480, 210, 400];
    let mut r = Vec::new();
    for k in 0..6 {
        let t = 10_000 + k as u32 * 30_000;
        r.push((t, false, client[k]));
        r.push((t + 120, true, 80));
        r.push((t + 9_000, true, pushed[k]));
    }
    let f = features(&r, 240_000);
    // 6 answered in the bands, but 290 - 170 = 120 apart; 3 pushes in the job band, 330 to 480
    // (150 apart); 3 pushes outside every band.
    assert_eq!((f.submits, f.jobs, f.anomalies), (6, 3, 3));
    assert_eq!(
        (f.submit_max - f.submit_min, f.job_max - f.job_min),
        (120, 150)
    );
    assert_eq!(verdict(&f, 0, 240_000), Verdict::NotStratum);
}

#[test]
fn benign_periodic_requests_without_pushes_are_never_proven() {
    // An API polled every 30 s with a constant 264-byte request and an 80-byte answer: submits'
    // sizes exactly, but the server never speaks unasked: no job, watched until 10 minutes.
    let r: Vec<Rec> = (0..19)
        .flat_map(|k| {
            [
                (10_000 + k * 30_000, false, SUBMIT),
                (10_150 + k * 30_000, true, REPLY),
            ]
        })
        .collect();
    assert_eq!(verdict_of(&r), Verdict::Unproven);
    // Without a job, the submits alone would do, but their cadence does not vary: 18 gaps of
    // 30 s, a coefficient of variation of 0 (a share's is near 1). At the 4 minutes it waits.
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.anomalies, f.cadence.gaps), (19, 0, 18));
    assert_eq!(f.cadence.cv(), 0.0);
    assert!(!jobless(&f));
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Wait);
    assert_eq!(judge(&shape(&r), at(600_000), false), Judgement::Clear);
}

#[test]
fn evidence_counts_and_waiting_submits_at_their_edges() {
    // One answered submit and a job is not yet Stratum; two are (`minimal`, above).
    let one = vec![
        (10_000, false, SUBMIT),
        (10_150, true, REPLY),
        (40_000, true, JOB),
        (70_000, true, JOB),
    ];
    let f = features(&one, 240_000);
    assert_eq!((f.submits, f.jobs, f.span_ms), (1, 2, 60_000));
    assert_eq!(verdict_of(&one), Verdict::Unproven);
    // Four submits in a burst wait together and are answered in order; a fifth pushes the first
    // out unanswered (an anomaly), and the four replies then answer the other four.
    let burst = |n: u32| -> Vec<Rec> {
        let mut r: Vec<Rec> = (0..n).map(|k| (10_000 + k * 10, false, SUBMIT)).collect();
        r.extend((0..4).map(|k| (10_200 + k * 10, true, REPLY)));
        r
    };
    let f = features(&burst(4), 240_000);
    assert_eq!((f.submits, f.anomalies), (4, 0));
    let f = features(&burst(5), 240_000);
    assert_eq!((f.submits, f.anomalies), (4, 1));
    // The keepalive band starts at 70: a 69-byte client record answered in the reply band fits no
    // exchange.
    let ka = |len| vec![(10_000, false, len), (10_100, true, KEEPALIVE_ANSWER)];
    assert_eq!(features(&ka(70), 240_000).keepalives, 1);
    let f = features(&ka(69), 240_000);
    assert_eq!((f.keepalives, f.anomalies), (0, 1));
}

#[test]
fn a_busy_session_is_judged_at_two_minutes_on_its_kept_records() {
    // A test pool's low difficulty: XMRig submits every 0.5 s from 6 s on, each answered after
    // 20 ms, and a job every 15 s (from 15 s), for 2 minutes. The 64 kept records are those of
    // 6 s to 21.5 s: 31 submits (6 s to 21 s) and their 31 replies, the job of 15 s (63), and the
    // submit of 21.5 s. Its span runs on to the latest record, the reply at 119.52 s.
    let mut r = OPENING.to_vec();
    let mut t = 6_000;
    while t < 120_000 {
        r.push((t, false, SUBMIT));
        r.push((t + 20, true, REPLY));
        if t % 15_000 == 0 {
            r.push((t + 250, true, JOB));
        }
        t += 500;
    }
    let s = shape(&r);
    assert!(s.full());
    let kept: Vec<_> = s.kept().collect();
    assert_eq!(kept.iter().filter(|k| k.len == JOB).count(), 1);
    assert_eq!(kept[63].ms, 21_500);
    assert_eq!(s.last_ms(), 119_520);
    // Bytes: 1,737 of opening, 228 submits (6 s to 119.5 s) x (264 + 80) = 78,432, 7 jobs (15 s
    // to 105 s) x 393 = 2,751: 82,920 in 120 s, 691 B/s.
    assert_eq!(s.bytes[0] as u64 + s.bytes[1] as u64, 82_920);
    // Not before 2 minutes, then Stratum: its kept records span 15.5 s, its life 113.52 s.
    assert_eq!(judge(&s, at(119_990), false), Judgement::Wait);
    assert_eq!(judge(&s, at(120_000), false), Judgement::Flag);
    // A download that fills its records is judged at once, not at 2 minutes.
    let d: Vec<Rec> = (0..64).map(|k| (6_000 + k * 10, true, 16_401)).collect();
    assert_eq!(judge(&shape(&d), at(7_000), false), Judgement::Clear);
}

#[test]
fn a_job_and_a_reply_in_one_record_do_not_spread_the_job_size() {
    // XMRig through a TLS tunnel (stunnel) whose pool pushed a job just as it answered a submit:
    // the tunnel wrote both as one record, JOB + REPLY - 17 = 393 + 80 - 17 = 456 bytes, right
    // after the submit of 110 s (as the namespace harness saw it: 293 + 81 - 17 = 357).
    let mut r = xmrig(240_000);
    r.retain(|&(ms, _, _)| ms != 110_150);
    r.push((110_010, true, JOB + REPLY - 17));
    r.sort_by_key(|&(ms, _, _)| ms);
    // Submits at 20, 50, ..., 230 s: 8, of which 7 answered; the one at 110 s waits 2 s in vain
    // (the joined record is job-sized and does not answer it): one anomaly, within 1 + 9 / 4.
    // Jobs: the unasked ones at 70 and 190 s, 393 each; the joined record sets no job size.
    let f = features(&r, 240_000);
    assert_eq!(
        (f.submits, f.jobs, f.job_min, f.job_max, f.anomalies),
        (7, 2, JOB, JOB, 1)
    );
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Flag);
}

/// Submit-sized client records at `times` (ms), each answered 150 ms later in the reply band, and
/// nothing else after the opening.
fn submits_at(times: &[u32]) -> Vec<Rec> {
    let mut r = OPENING.to_vec();
    for &t in times {
        r.push((t, false, SUBMIT));
        r.push((t + 150, true, REPLY));
    }
    r
}

/// XMRig at a share every 30 s on average to a pool that pushed no job after the login within
/// the 4 minutes: the gaps between its submits, 21, 3, 46, 7, 89, 13 and 31 s, are the quantiles
/// of an exponential of mean 30 s at 1/14, 3/14, ..., 13/14 (2.2, 7.2, 13.2, 20.8, 30.9, 46.2,
/// 79.2 s) rounded, the largest up so that they sum to 210 s, in a shuffled order: submits at
/// 10, 31, 34, 80, 87, 176, 189 and 220 s.
const JOBLESS: [u32; 8] = [
    10_000, 31_000, 34_000, 80_000, 87_000, 176_000, 189_000, 220_000,
];

#[test]
fn a_jobless_xmrig_session_is_stratum_on_its_submits_at_the_deadline() {
    let r = submits_at(&JOBLESS);
    let f = features(&r, 240_000);
    // 8 submits, each answered; no job; nothing else. Span 10 s to 220.15 s.
    assert_eq!(
        (f.submits, f.jobs, f.anomalies, f.span_ms),
        (8, 0, 0, 210_150)
    );
    // The gaps: 7, summing to 210 s, their squares to 441 + 9 + 2,116 + 49 + 7,921 + 169 + 961 =
    // 11,666 s^2. CV^2 = 7 x 11,666 / 210^2 - 1 = 81,662 / 44,100 - 1 = 0.8518: CV 0.923.
    assert_eq!(
        f.cadence,
        Cadence {
            gaps: 7,
            sum_ms: 210_000,
            sq_ms2: 11_666_000_000,
        }
    );
    assert!((f.cadence.cv() - 0.923).abs() < 0.001);
    assert!(jobless(&f));
    assert_eq!(verdict_of(&r), Verdict::Stratum);
    // Without a job it never shows twice the evidence: flagged at the 4 minutes, not before
    // (the agent's next drain: within 245 s with the default 5 s).
    let s = shape(&r);
    assert_eq!(judge(&s, at(239_990), false), Judgement::Wait);
    assert_eq!(judge(&s, at(240_000), false), Judgement::Flag);
    // Bytes: the opening 1,737 and 8 x (264 + 80) = 2,752: 4,489.
    assert_eq!(s.bytes[0] + s.bytes[1], 4_489);
}

#[test]
fn a_jobless_flow_needs_five_submits_and_nothing_else() {
    // The first five of those submits (gaps 21, 3, 46, 7 s: mean 19.25, deviations 1.75,
    // -16.25, 26.75, -12.25, squares summing to 1,132.75, CV sqrt(283.19) / 19.25 = 0.874) over
    // 77.15 s: Stratum at the 4 minutes.
    let five = submits_at(&JOBLESS[..5]);
    assert_eq!(features(&five, 240_000).submits, 5);
    assert_eq!(judge(&shape(&five), at(240_000), false), Judgement::Flag);
    // Four (gaps 21, 3, 46 s, over 70.15 s) are not the evidence: watched until 10 minutes, then
    // forgotten.
    let four = submits_at(&JOBLESS[..4]);
    assert_eq!(verdict_of(&four), Verdict::Unproven);
    assert_eq!(judge(&shape(&four), at(240_000), false), Judgement::Wait);
    assert_eq!(judge(&shape(&four), at(600_000), false), Judgement::Clear);
    // One server record unasked (a 50-byte one at 100 s): a flow with a job may have one
    // anomaly, a job-less one none.
    let mut r = submits_at(&JOBLESS);
    r.push((100_000, true, 50));
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.anomalies), (8, 1));
    assert!(!jobless(&f));
    assert_eq!(verdict_of(&r), Verdict::Unproven);
    // So is a submit answered too late (2.01 s): unanswered, and its reply unasked.
    let mut r = submits_at(&JOBLESS);
    r.retain(|&(ms, _, _)| ms != 87_150);
    r.push((89_010, true, REPLY));
    r.sort_by_key(|&(ms, _, _)| ms);
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.anomalies), (7, 2));
    assert_eq!(verdict_of(&r), Verdict::Unproven);
}

#[test]
fn a_jobless_flow_needs_a_cadence_of_chance_neither_a_timer_nor_a_person() {
    // A timer with jitter: gaps of 21 and 39 s in turn (7 requests at 10, 31, 70, 91, 130, 151,
    // 190 s), mean 30, each 9 from it: CV 9 / 30 = 3/10 exactly, the least a share's cadence
    // may have (in integers: 100 x 6 x 3 x (21,000^2 + 39,000^2) = 109 x 180,000^2 =
    // 3,531,600,000,000).
    let timer = |a: u32| {
        submits_at(&[
            10_000,
            10_000 + a,
            70_000,
            70_000 + a,
            130_000,
            130_000 + a,
            190_000,
        ])
    };
    let f = features(&timer(21_000), 240_000);
    assert_eq!(
        f.cadence,
        Cadence {
            gaps: 6,
            sum_ms: 180_000,
            sq_ms2: 5_886_000_000,
        }
    );
    assert!(jobless(&f));
    assert_eq!(verdict_of(&timer(21_000)), Verdict::Stratum);
    // 10 ms less jitter (21.01 and 38.99 s): CV 8.99 / 30 = 0.2997, a timer's.
    let f = features(&timer(21_010), 240_000);
    assert!(!jobless(&f), "{}", f.cadence.cv());
    assert_eq!(verdict_of(&timer(21_010)), Verdict::Unproven);
    // A person: ten requests 3 s apart (10 to 37 s), then one more after a pause of 63 s (100
    // s). Gaps: nine of 3 s and one of 63, mean 9, deviations -6 (nine) and 54: variance (9 x
    // 36 + 2,916) / 10 = 324, standard deviation 18, CV 18 / 9 = 2 exactly, the most a share's
    // cadence may have (10 x 4,050,000,000 = 5 x 90,000^2 = 40,500,000,000).
    let person = |pause: u32| {
        let mut t: Vec<u32> = (0..10).map(|k| 10_000 + k * 3_000).collect();
        t.push(37_000 + pause);
        submits_at(&t)
    };
    let f = features(&person(63_000), 240_000);
    assert_eq!(
        f.cadence,
        Cadence {
            gaps: 10,
            sum_ms: 90_000,
            sq_ms2: 4_050_000_000,
        }
    );
    assert!(jobless(&f));
    assert_eq!(verdict_of(&person(63_000)), Verdict::Stratum);
    // A pause 10 ms longer: CV 3 x 60.01 / 90.01 = 2.0001, beyond.
    let f = features(&person(63_010), 240_000);
    assert!(!jobless(&f), "{}", f.cadence.cv());
    assert_eq!(verdict_of(&person(63_010)), Verdict::Unproven);
}

#[test]
fn jobless_benign_shapes_are_not_stratum() {
    // A periodic API poll at submits' and replies' sizes, every 30 s: CV 0 (above,
    // `benign_periodic_requests_without_pushes_are_never_proven`).
    // A long-poll at the job-less session's own cadence and sizes: each request held until an
    // event, the answer reply-sized, the next request at once. Every hold is over 2 s: each
    // request counts unanswered and each answer unasked, 2 anomalies a request; no submit.
    let mut r = Vec::new();
    for w in JOBLESS.windows(2) {
        r.push((w[0] + 200, false, SUBMIT));
        r.push((w[1], true, REPLY));
    }
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.jobs, f.anomalies), (0, 0, 14));
    assert_eq!(verdict_of(&r), Verdict::NotStratum);
    assert_eq!(judge(&shape(&r), at(240_000), false), Judgement::Clear);
    // A chat without a job-band message: the client's lines at the job-less session's times,
    // acknowledged in 80 bytes, sizes of a conversation; the other side's lines unasked.
    let client = [180, 240, 205, 290, 170, 260, 230, 199];
    let pushed = [120, 95, 88, 60];
    let mut r = Vec::new();
    for (k, &t) in JOBLESS.iter().enumerate() {
        r.push((t, false, client[k]));
        r.push((t + 120, true, 80));
        if k % 2 == 1 {
            r.push((t + 1_500, true, pushed[k / 2]));
        }
    }
    r.sort_by_key(|&(ms, _, _)| ms);
    let f = features(&r, 240_000);
    // 8 answered in the bands, 290 - 170 = 120 apart; 4 unasked.
    assert_eq!((f.submits, f.jobs, f.anomalies), (8, 0, 4));
    assert_eq!(f.submit_max - f.submit_min, 120);
    assert_eq!(verdict_of(&r), Verdict::NotStratum);
    // The same chat's lines of one size, no other side (a client alone, its lines answered):
    // only the unasked lines keep it from Stratum's shape. Without them, the README's limit.
    let mut r: Vec<Rec> = r
        .into_iter()
        .filter(|&(_, server, len)| !server || len == 80)
        .collect();
    for rec in r.iter_mut().filter(|rec| !rec.1) {
        rec.2 = 230;
    }
    let f = features(&r, 240_000);
    assert_eq!((f.submits, f.anomalies), (8, 0));
    assert_eq!(verdict_of(&r), Verdict::Stratum);
}

/// Equihash Stratum (aiostratum-proxy's dialect) over TLS 1.3: a `mining.submit` of 2,828 bytes
/// (account `kvetak.rig1`, a 1-digit job id, the time, a 54-hex nonce part and the 2,694-hex
/// solution: `sensor/tests/proxy.rs`'s and the namespace harness's) is a 2,845-byte record; the
/// pool's `{"id":3,"result":true,"error":null}` (36) a 53-byte one; a `mining.notify` with three
/// 64-hex hashes (291) a 308-byte one.
const EQ_SUBMIT: u32 = 2_845;
const EQ_REPLY: u32 = 53;
const EQ_JOB: u32 = 308;

#[test]
fn a_proxys_equihash_upstream_is_stratum_by_its_shape() {
    // The proxy's opening: its subscribe (120) and the answer (100), an authorize (90) answered
    // (53), the target (127) and the first job, within half a second. Then three workers' shares
    // through it: a submit every 2.5 s from 6 s (6, 8.5, ..., 68.5 s: 26), each answered 50 ms
    // later, and a job every 15 s from 16.5 s (16.5, 31.5, 46.5, 61.5 s: 4), none while a submit
    // waits.
    let mut r: Vec<Rec> = vec![
        (100, false, 120),
        (200, true, 100),
        (300, false, 90),
        (400, true, EQ_REPLY),
        (420, true, 127),
        (430, true, EQ_JOB),
    ];
    for k in 0..26 {
        let t = 6_000 + k * 2_500;
        r.push((t, false, EQ_SUBMIT));
        r.push((t + 50, true, EQ_REPLY));
    }
    for j in 0..4 {
        r.push((16_500 + j * 15_000, true, EQ_JOB));
    }
    r.sort_by_key(|&(ms, _, _)| ms);
    let f = features(&r, 70_000);
    // Every submit over 1,024 bytes, none large; span 6 s to 68.55 s.
    assert_eq!(
        (f.submits, f.equihash, f.jobs, f.anomalies, f.large),
        (26, 26, 4, 0, 0)
    );
    assert_eq!(f.span_ms, 62_550);
    // Bytes: the opening 120 + 100 + 90 + 53 + 127 + 308 = 798, 26 x (2,845 + 53) = 75,348, 4 x
    // 308 = 1,232: 77,378 in 70 s, 1,105 B/s: over XMRig's 1,000, within Equihash's 4,000.
    let s = shape(&r);
    assert_eq!(s.bytes[0] + s.bytes[1], 77_378);
    assert_eq!(verdict(&f, 77_378, 70_000), Verdict::Stratum);
    let xmrig_sized = Features { equihash: 0, ..f };
    assert_eq!(verdict(&xmrig_sized, 77_378, 70_000), Verdict::NotStratum);
    // Twice the evidence asked for, over a minute: flagged at once.
    assert_eq!(judge(&s, at(70_000), false), Judgement::Flag);
}

#[test]
fn equihash_bands_and_volume_at_their_edges() {
    // Submit band 2,816..=3,040 (answered in 51..=140); outside it a record over 1,024 is large.
    for (submit, reply, want) in [
        (2_816, EQ_REPLY, Verdict::Stratum),
        (3_040, EQ_REPLY, Verdict::Stratum),
        (2_815, EQ_REPLY, Verdict::NotStratum),
        (3_041, EQ_REPLY, Verdict::NotStratum),
        (EQ_SUBMIT, 51, Verdict::Stratum),
        (EQ_SUBMIT, 140, Verdict::Stratum),
        // 50 and 141 answer nothing: two anomalies against the one allowed.
        (EQ_SUBMIT, 50, Verdict::NotStratum),
        (EQ_SUBMIT, 141, Verdict::NotStratum),
    ] {
        let r = minimal(submit, reply, EQ_JOB, 150);
        assert_eq!(verdict_of(&r), want, "{submit} answered by {reply}");
    }
    assert_eq!(
        features(&minimal(2_815, EQ_REPLY, EQ_JOB, 150), 240_000).large,
        2
    );
    // An XMRig-sized submit answered in the Equihash answer's size below the reply band: no.
    assert_eq!(
        features(&minimal(SUBMIT, EQ_REPLY, JOB, 150), 240_000).submits,
        0
    );
    // An Equihash submit left unanswered is an anomaly, not a large record.
    let f = features(&[(10_000, false, EQ_SUBMIT)], 240_000);
    assert_eq!((f.large, f.anomalies), (0, 1));
    // 4,000 B/s with Equihash submits: at 240 s, 960,000 bytes pass, 960,001 do not.
    let f = features(&minimal(EQ_SUBMIT, EQ_REPLY, EQ_JOB, 150), 240_000);
    assert_eq!(f.equihash, 2);
    assert_eq!(verdict(&f, 960_000, 240_000), Verdict::Stratum);
    assert_eq!(verdict(&f, 960_001, 240_000), Verdict::NotStratum);
}

/// The job-less rule's reach (README, "Job-less"), by simulation: XMRig sessions whose pool
/// pushes no job, shares at exponential gaps (a Poisson process from the login) of a mean of 10 to
/// 60 s, each answered 150 ms later, judged at the 4 minutes. A seeded generator (xorshift64*),
/// 20,000 sessions a cadence: the share of sessions flagged, and why the others are not.
#[test]
fn jobless_sessions_flagged_by_cadence_in_simulation() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        // (0, 1]
        ((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) + 1) as f64 / (1u64 << 53) as f64
    };
    const SESSIONS: u32 = 20_000;
    let mut rates = Vec::new();
    for mean_s in [10.0, 20.0, 30.0, 45.0, 60.0] {
        let (mut flagged, mut few, mut low, mut high) = (0u32, 0u32, 0u32, 0u32);
        for _ in 0..SESSIONS {
            let mut times = Vec::new();
            let mut t = -uniform().ln() * mean_s * 1_000.0;
            while t < 239_840.0 {
                if t >= OPENING_MS as f64 {
                    // The program's 10 ms steps.
                    times.push(t as u32 / 10 * 10);
                }
                t += -uniform().ln() * mean_s * 1_000.0;
            }
            let r = submits_at(&times);
            let s = shape(&r);
            let f = classify(s.kept(), 240_000);
            if judge(&s, at(240_000), false) == Judgement::Flag {
                flagged += 1;
            } else if f.submits < super::decide::JOBLESS_SUBMITS {
                few += 1;
            } else if !f.cadence.cv_at_least(super::decide::CADENCE_CV_MIN) {
                low += 1;
            } else if !f.cadence.cv_at_most(super::decide::CADENCE_CV_MAX) {
                high += 1;
            }
        }
        let pct = |n: u32| f64::from(n) * 100.0 / f64::from(SESSIONS);
        eprintln!(
            "a share every {mean_s} s: {:.1}% flagged; {:.1}% under 5 submits, {:.2}% CV under 0.3, {:.3}% over 2",
            pct(flagged),
            pct(few),
            pct(low),
            pct(high)
        );
        rates.push((pct(flagged), pct(few), pct(low), pct(high)));
    }
    // What the README states: every 10 s all but a few in ten thousand; every 30 s about 88%
    // (under 5 submits in the 235 s for a Poisson count of mean 235 / 30 = 7.83: e^-7.83 (1 +
    // 7.83 + 7.83^2/2 + 7.83^3/6 + 7.83^4/24) = 11.0%; a CV under 0.3 about 1%); every 60 s about
    // a third; a CV over 2 hardly ever.
    assert!(rates[0].0 > 99.5, "{rates:?}");
    assert!((86.0..90.0).contains(&rates[2].0), "{rates:?}");
    assert!((9.5..12.5).contains(&rates[2].1), "{rates:?}");
    assert!(rates[2].2 < 1.5, "{rates:?}");
    assert!((30.0..40.0).contains(&rates[4].0), "{rates:?}");
    assert!(rates.iter().all(|r| r.3 < 0.1), "{rates:?}");
}
