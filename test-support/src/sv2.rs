//! A Stratum V2 mining device and pool over TCP, built on the reference implementation's protocol
//! crates (SRI: `noise_sv2`, `codec_sv2`, `framing_sv2`, `binary_sv2`, `common_messages_sv2`,
//! `mining_sv2`, versions pinned in this crate's manifest). The Noise NX handshake, every
//! message's encoding and the encryption of every frame are the library's: this module only
//! decides what to send when and writes the library's bytes to the socket, one write per message,
//! so each frame on the wire is as SRI's own roles would send it.
//!
//! SRI's roles themselves (`pool_sv2`, `translator_sv2`) cannot run here: the pool needs a template
//! source (Bitcoin Core 30.2 or later over IPC, or SRI's Template Provider, a Bitcoin Core fork),
//! and neither is a package of a registry the tests may use; the integration-test crate's template
//! provider downloads Bitcoin Core's release binaries at run time. So the pool here makes its own
//! job, as a pool does from a template.
//!
//! The session (sv2-spec, "Mining Protocol"): `SetupConnection` and its success, a channel opened
//! (`OpenStandardMiningChannel` or `OpenExtendedMiningChannel`, see [`Channel`]) and its success,
//! a future job (`NewMiningJob` or `NewExtendedMiningJob`) activated by `SetNewPrevHash`, then
//! shares (`SubmitSharesStandard` or `SubmitSharesExtended`) each answered by
//! `SubmitShares.Success` or `SubmitShares.Error`. The device really mines: it searches nonces until the block header's
//! double SHA-256 is within the channel's target, and the pool checks the hash again before it
//! accepts.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    time::Duration,
};

use binary_sv2::{GetSize, Seq0255, Serialize, Str0255, Sv2Option, U256};
use codec_sv2::{
    Decoded, Decrypted, Handshake, InitiatorSent, NoiseDecoder, NoiseEncoder,
    TransportDecryptState, TransportEncryptState,
};
use common_messages_sv2::{
    CHANNEL_BIT_SETUP_CONNECTION, CHANNEL_BIT_SETUP_CONNECTION_SUCCESS,
    MESSAGE_TYPE_SETUP_CONNECTION, MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS, Protocol,
    SetupConnection, SetupConnectionSuccess,
};
use framing_sv2::framing::MessageFrame;
use mining_sv2::{
    CHANNEL_BIT_MINING_SET_NEW_PREV_HASH, CHANNEL_BIT_NEW_EXTENDED_MINING_JOB,
    CHANNEL_BIT_NEW_MINING_JOB, CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL,
    CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS, CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL,
    CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL_SUCCESS, CHANNEL_BIT_SUBMIT_SHARES_ERROR,
    CHANNEL_BIT_SUBMIT_SHARES_EXTENDED, CHANNEL_BIT_SUBMIT_SHARES_STANDARD,
    CHANNEL_BIT_SUBMIT_SHARES_SUCCESS, MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH,
    MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB, MESSAGE_TYPE_NEW_MINING_JOB,
    MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL, MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
    MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL, MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
    MESSAGE_TYPE_SUBMIT_SHARES_ERROR, MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
    MESSAGE_TYPE_SUBMIT_SHARES_STANDARD, MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS, NewExtendedMiningJob,
    NewMiningJob, OpenExtendedMiningChannel, OpenExtendedMiningChannelSuccess,
    OpenStandardMiningChannel, OpenStandardMiningChannelSuccess, SetNewPrevHash, SubmitSharesError,
    SubmitSharesExtended, SubmitSharesStandard, SubmitSharesSuccess,
};
use noise_sv2::{ELLSWIFT_ENCODING_SIZE, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE};
use secp256k1::hashes::{Hash, sha256d};

/// The pool's authority secret key (any scalar below the curve order will do; fixed so that the
/// device can pin the public key, as a configured device does).
const AUTHORITY_SECRET: [u8; 32] = [0x5a; 32];
/// How long the pool's certificate is valid.
const CERT_VALIDITY: Duration = Duration::from_secs(3600);
/// Longest wait for the other side's next bytes: a silent peer fails the session, not hangs it.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The channel the pool opens and the job it sends on it.
const CHANNEL_ID: u32 = 1;
const JOB_ID: u32 = 1;
/// The job's block version and `nBits` (regtest's easiest, 0x207fffff).
const VERSION: u32 = 0x2000_0000;
const NBITS: u32 = 0x207f_ffff;
/// The extranonce prefix the pool gives the channel.
const EXTRANONCE_PREFIX: [u8; 4] = [0, 0, 0, 1];
/// Why the pool refuses a share on a job it never sent (an error code of sv2-spec's list).
const INVALID_JOB: &str = "invalid-job-id";

/// The channel's target: 2^248 - 1 (little-endian, as SV2's `U256`), so one hash in 256 is a
/// share and the device finds one in about 256 tries.
pub const TARGET: [u8; 32] = {
    let mut t = [0xff; 32];
    t[31] = 0;
    t
};

/// One write to the socket: what it held, how many bytes and the first of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub what: &'static str,
    pub bytes: usize,
    pub first: u8,
}

/// What one side of a session wrote, in order, and the shares' outcome as it saw them.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub writes: Vec<Sent>,
    pub accepted: u32,
    pub rejected: u32,
}

impl Report {
    /// The sizes of the writes that held `what`.
    pub fn sizes(&self, what: &str) -> Vec<usize> {
        self.writes
            .iter()
            .filter(|w| w.what == what)
            .map(|w| w.bytes)
            .collect()
    }

    /// The first byte of the handshake message this side sent.
    pub fn handshake_first_byte(&self) -> Option<u8> {
        self.writes
            .iter()
            .find(|w| w.what == "handshake")
            .map(|w| w.first)
    }
}

/// The pool's authority public key (x-only, 32 bytes), which the device pins.
pub fn authority_public_key() -> [u8; 32] {
    let secp = secp256k1::Secp256k1::signing_only();
    let kp = secp256k1::Keypair::from_seckey_slice(&secp, &AUTHORITY_SECRET)
        .expect("the authority secret is a valid scalar");
    kp.x_only_public_key().0.serialize()
}

/// The kind of channel the device opens (sv2-spec, "Mining Protocol"): a standard channel, whose
/// jobs carry the merkle root and whose shares are `SubmitSharesStandard`; or an extended one,
/// whose jobs carry the coinbase around an extranonce of `extranonce` bytes the device rolls, and
/// whose shares are `SubmitSharesExtended` (what SRI's translator opens towards its pool).
#[derive(Clone, Copy, Debug)]
pub enum Channel {
    Standard,
    Extended { extranonce: u16 },
}

/// A device's session: `shares` shares mined on the pool's job, then `stale` on a job the pool
/// never sent; the device's ephemeral key from a generator seeded with `seed`. The last `joined`
/// of the `shares` (at least 2 to mean anything) go in one write, their answers read after it, as
/// a device without TCP_NODELAY sends shares it finds faster than its pool answers (Nagle's
/// algorithm joins the writes); every other share is written alone and answered before the next.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub channel: Channel,
    pub shares: u32,
    pub stale: u32,
    pub joined: u32,
    pub seed: u64,
}

/// Plays a device on `stream` towards the pool at `host`:`port` (named in `SetupConnection`):
/// the handshake, a channel, the pool's job, then the shares of `plan`, each waited for before
/// the next but for the joined ones; closes the connection at the end.
pub fn device(stream: TcpStream, host: &str, port: u16, plan: Plan) -> io::Result<Report> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut c = Conn::initiate(stream, plan.seed)?;
    let setup = SetupConnection {
        protocol: Protocol::MiningProtocol,
        min_version: 2,
        max_version: 2,
        // REQUIRES_STANDARD_JOBS for a standard channel's device, none for an extended one.
        flags: matches!(plan.channel, Channel::Standard) as u32,
        endpoint_host: Str0255::try_from(host).map_err(lib)?,
        endpoint_port: port,
        vendor: Str0255::try_from("mining-sensor-test").map_err(lib)?,
        hardware_version: Str0255::try_from("cpu").map_err(lib)?,
        firmware: Str0255::try_from("0.1.0").map_err(lib)?,
        device_id: Str0255::try_from("s2-device").map_err(lib)?,
    };
    c.send(
        "SetupConnection",
        setup,
        MESSAGE_TYPE_SETUP_CONNECTION,
        CHANNEL_BIT_SETUP_CONNECTION,
    )?;
    c.expect(MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS)?;
    let user_identity = Str0255::try_from("s2-worker").map_err(lib)?;
    let max_target = U256::from(&[0xff; 32]);
    // What the job leaves to the device: the merkle root (standard), or the coinbase around
    // the extranonce prefix and the device's part (extended).
    let (channel_id, target, job) = match plan.channel {
        Channel::Standard => {
            let open = OpenStandardMiningChannel {
                request_id: 1,
                user_identity,
                nominal_hash_rate: 1e6,
                max_target,
            };
            c.send(
                "OpenStandardMiningChannel",
                open,
                MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL,
                CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL,
            )?;
            let mut m = c.expect(MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL_SUCCESS)?;
            let opened: OpenStandardMiningChannelSuccess =
                binary_sv2::from_bytes(&mut m).map_err(lib)?;
            let (channel_id, target) = (opened.channel_id, to_array(opened.target.as_bytes())?);
            let mut m = c.expect(MESSAGE_TYPE_NEW_MINING_JOB)?;
            let job: NewMiningJob = binary_sv2::from_bytes(&mut m).map_err(lib)?;
            let root = to_array(job.merkle_root.as_bytes())?;
            (
                channel_id,
                target,
                Job::standard(job.job_id, job.version, root),
            )
        }
        Channel::Extended { extranonce } => {
            let open = OpenExtendedMiningChannel {
                request_id: 1,
                user_identity,
                nominal_hash_rate: 1e6,
                max_target,
                min_extranonce_size: extranonce,
            };
            c.send(
                "OpenExtendedMiningChannel",
                open,
                MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
                CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL,
            )?;
            let mut m = c.expect(MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS)?;
            let opened: OpenExtendedMiningChannelSuccess =
                binary_sv2::from_bytes(&mut m).map_err(lib)?;
            let (channel_id, target) = (opened.channel_id, to_array(opened.target.as_bytes())?);
            let prefix = opened.extranonce_prefix.as_bytes().to_vec();
            let size = usize::from(opened.extranonce_size);
            let mut m = c.expect(MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB)?;
            let job: NewExtendedMiningJob = binary_sv2::from_bytes(&mut m).map_err(lib)?;
            let job = Job {
                job_id: job.job_id,
                version: job.version,
                merkle_root: [0; 32],
                coinbase: Some(Coinbase {
                    head: job.coinbase_tx_prefix.as_bytes().to_vec(),
                    prefix,
                    size,
                    tail: job.coinbase_tx_suffix.as_bytes().to_vec(),
                }),
            };
            (channel_id, target, job)
        }
    };
    let mut prev = c.expect(MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH)?;
    let prev: SetNewPrevHash = binary_sv2::from_bytes(&mut prev).map_err(lib)?;
    let prev_hash = to_array(prev.prev_hash.as_bytes())?;
    let mut report = Report::default();
    let mut nonce = 0u32;
    // The joined shares' frames, written together after the last of them.
    let joined = plan.shares.saturating_sub(plan.joined)..plan.shares;
    let mut pending = Vec::new();
    for sequence_number in 0..plan.shares + plan.stale {
        // Past `shares`, the job id is one the pool never sent: a stale share.
        let job_id = if sequence_number < plan.shares {
            job.job_id
        } else {
            job.job_id + 1
        };
        // The device's part of the extranonce: the sequence number, so each share rolls it.
        let mut extranonce = Vec::new();
        if let Some(c) = &job.coinbase {
            extranonce = sequence_number.to_le_bytes().to_vec();
            extranonce.resize(c.size, 0);
        }
        let header = Header {
            version: job.version,
            prev_hash,
            merkle_root: job.root(&extranonce),
            ntime: prev.min_ntime,
            nbits: prev.nbits,
        };
        nonce = header.mine(nonce, &target)?;
        let (what, frame) = match plan.channel {
            Channel::Standard => (
                "SubmitSharesStandard",
                c.encode(
                    SubmitSharesStandard {
                        channel_id,
                        sequence_number,
                        job_id,
                        nonce,
                        ntime: header.ntime,
                        version: header.version,
                    },
                    MESSAGE_TYPE_SUBMIT_SHARES_STANDARD,
                    CHANNEL_BIT_SUBMIT_SHARES_STANDARD,
                )?,
            ),
            Channel::Extended { .. } => (
                "SubmitSharesExtended",
                c.encode(
                    SubmitSharesExtended {
                        channel_id,
                        sequence_number,
                        job_id,
                        nonce,
                        ntime: header.ntime,
                        version: header.version,
                        extranonce: (&extranonce[..]).try_into().map_err(lib)?,
                    },
                    MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
                    CHANNEL_BIT_SUBMIT_SHARES_EXTENDED,
                )?,
            ),
        };
        nonce = nonce.wrapping_add(1);
        pending.extend_from_slice(&frame);
        let answers = if !joined.contains(&sequence_number) {
            1
        } else if sequence_number + 1 == joined.end {
            joined.len()
        } else {
            continue;
        };
        c.write(what, std::mem::take(&mut pending))?;
        for _ in 0..answers {
            match c.recv()? {
                (MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS, _) => report.accepted += 1,
                (MESSAGE_TYPE_SUBMIT_SHARES_ERROR, _) => report.rejected += 1,
                (other, _) => {
                    return Err(io::Error::other(format!(
                        "message type {other:#x} after a share"
                    )));
                }
            }
        }
    }
    report.writes = c.writes;
    Ok(report)
}

/// Plays a pool on `stream`: the handshake (as responder, with the authority key), the
/// connection and channel set-up (standard or extended, as the device asks), one job, then an
/// answer to each share until the device closes the connection: success when the job is the one
/// sent and the header's hash is within the channel's target, an error otherwise. Its ephemeral
/// and static keys come from a generator seeded with `seed`.
pub fn pool(stream: TcpStream, seed: u64) -> io::Result<Report> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut c = Conn::respond(stream, seed)?;
    c.expect(MESSAGE_TYPE_SETUP_CONNECTION)?;
    c.send(
        "SetupConnection.Success",
        SetupConnectionSuccess {
            used_version: 2,
            flags: 0,
        },
        MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
        CHANNEL_BIT_SETUP_CONNECTION_SUCCESS,
    )?;
    let mut target = TARGET;
    let prefix = EXTRANONCE_PREFIX;
    // The job, of the pool's making (no template source here): a coinbase around the extranonce,
    // whose hash is the merkle root (a block of the coinbase alone), and a previous block hash.
    let (coinbase_prefix, coinbase_suffix) = (b"s2 coinbase prefix", b"s2 coinbase suffix");
    let (version, ntime) = (VERSION, 1_700_000_000);
    let (kind, mut open) = c.recv()?;
    let job = match kind {
        MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL => {
            let open: OpenStandardMiningChannel = binary_sv2::from_bytes(&mut open).map_err(lib)?;
            c.send(
                "OpenStandardMiningChannel.Success",
                OpenStandardMiningChannelSuccess {
                    request_id: open.request_id,
                    channel_id: CHANNEL_ID,
                    target: U256::from(&mut target),
                    extranonce_prefix: (&prefix[..]).try_into().map_err(lib)?,
                    group_channel_id: 0,
                },
                MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
                CHANNEL_BIT_OPEN_STANDARD_MINING_CHANNEL_SUCCESS,
            )?;
            // The standard job's root: the coinbase with the channel's whole extranonce.
            let mut coinbase = coinbase_prefix.to_vec();
            coinbase.extend(prefix);
            coinbase.extend(coinbase_suffix);
            let job = Job::standard(
                JOB_ID,
                version,
                sha256d::Hash::hash(&coinbase).to_byte_array(),
            );
            let mut root = job.merkle_root;
            c.send(
                "NewMiningJob",
                NewMiningJob {
                    channel_id: CHANNEL_ID,
                    job_id: job.job_id,
                    // A future job, activated by the SetNewPrevHash that follows.
                    min_ntime: Sv2Option::new(None),
                    version,
                    merkle_root: U256::from(&mut root),
                },
                MESSAGE_TYPE_NEW_MINING_JOB,
                CHANNEL_BIT_NEW_MINING_JOB,
            )?;
            job
        }
        MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL => {
            let open: OpenExtendedMiningChannel = binary_sv2::from_bytes(&mut open).map_err(lib)?;
            let size = open.min_extranonce_size;
            c.send(
                "OpenExtendedMiningChannel.Success",
                OpenExtendedMiningChannelSuccess {
                    request_id: open.request_id,
                    channel_id: CHANNEL_ID,
                    target: U256::from(&mut target),
                    extranonce_size: size,
                    extranonce_prefix: (&prefix[..]).try_into().map_err(lib)?,
                    group_channel_id: 0,
                },
                MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
                CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
            )?;
            let (mut head, mut tail) = (coinbase_prefix.to_vec(), coinbase_suffix.to_vec());
            c.send(
                "NewExtendedMiningJob",
                NewExtendedMiningJob {
                    channel_id: CHANNEL_ID,
                    job_id: JOB_ID,
                    min_ntime: Sv2Option::new(None),
                    version,
                    version_rolling_allowed: false,
                    merkle_path: Seq0255::new(Vec::new()).map_err(lib)?,
                    coinbase_tx_prefix: (&mut head[..]).try_into().map_err(lib)?,
                    coinbase_tx_suffix: (&mut tail[..]).try_into().map_err(lib)?,
                },
                MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB,
                CHANNEL_BIT_NEW_EXTENDED_MINING_JOB,
            )?;
            Job {
                job_id: JOB_ID,
                version,
                merkle_root: [0; 32],
                coinbase: Some(Coinbase {
                    head: coinbase_prefix.to_vec(),
                    prefix: prefix.to_vec(),
                    size: usize::from(size),
                    tail: coinbase_suffix.to_vec(),
                }),
            }
        }
        other => {
            return Err(io::Error::other(format!(
                "message type {other:#x} where a channel's opening was due"
            )));
        }
    };
    let prev_hash = sha256d::Hash::hash(b"previous block").to_byte_array();
    let mut prev = prev_hash;
    c.send(
        "SetNewPrevHash",
        SetNewPrevHash {
            channel_id: CHANNEL_ID,
            job_id: JOB_ID,
            prev_hash: U256::from(&mut prev),
            min_ntime: ntime,
            nbits: NBITS,
        },
        MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH,
        CHANNEL_BIT_MINING_SET_NEW_PREV_HASH,
    )?;
    let mut report = Report::default();
    loop {
        let (kind, mut payload) = match c.recv() {
            Ok(frame) => frame,
            // The device closed the connection: the session is over.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        // (channel, sequence number, job, nonce, ntime, version, the device's extranonce)
        let share = match kind {
            MESSAGE_TYPE_SUBMIT_SHARES_STANDARD => {
                let s: SubmitSharesStandard = binary_sv2::from_bytes(&mut payload).map_err(lib)?;
                let n = s.sequence_number;
                (
                    s.channel_id,
                    n,
                    s.job_id,
                    s.nonce,
                    s.ntime,
                    s.version,
                    Vec::new(),
                )
            }
            MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED => {
                let s: SubmitSharesExtended = binary_sv2::from_bytes(&mut payload).map_err(lib)?;
                let e = s.extranonce.as_bytes().to_vec();
                let n = s.sequence_number;
                (s.channel_id, n, s.job_id, s.nonce, s.ntime, s.version, e)
            }
            _ => {
                return Err(io::Error::other(format!(
                    "unexpected message type {kind:#x}"
                )));
            }
        };
        let (channel_id, sequence_number, job_id, nonce, ntime, version, extranonce) = share;
        let header = Header {
            version,
            prev_hash,
            merkle_root: job.root(&extranonce),
            ntime,
            nbits: NBITS,
        };
        if job_id == job.job_id && within(&header.hash(nonce), &TARGET) {
            report.accepted += 1;
            c.send(
                "SubmitShares.Success",
                SubmitSharesSuccess {
                    channel_id,
                    last_sequence_number: sequence_number,
                    new_submits_accepted_count: 1,
                    new_shares_sum: 1,
                },
                MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS,
                CHANNEL_BIT_SUBMIT_SHARES_SUCCESS,
            )?;
        } else {
            report.rejected += 1;
            c.send(
                "SubmitShares.Error",
                SubmitSharesError {
                    channel_id,
                    sequence_number,
                    error_code: Str0255::try_from(INVALID_JOB).map_err(lib)?,
                },
                MESSAGE_TYPE_SUBMIT_SHARES_ERROR,
                CHANNEL_BIT_SUBMIT_SHARES_ERROR,
            )?;
        }
    }
    report.writes = c.writes;
    Ok(report)
}

/// A job as the device mines it: its id and version, and its merkle root (standard) or the
/// coinbase around the extranonce (extended).
struct Job {
    job_id: u32,
    version: u32,
    merkle_root: [u8; 32],
    coinbase: Option<Coinbase>,
}

/// An extended job's coinbase: its prefix, the channel's extranonce prefix, the size of the
/// device's part of the extranonce and the suffix; its hash with the device's part is the root.
struct Coinbase {
    head: Vec<u8>,
    prefix: Vec<u8>,
    size: usize,
    tail: Vec<u8>,
}

impl Job {
    fn standard(job_id: u32, version: u32, merkle_root: [u8; 32]) -> Self {
        Self {
            job_id,
            version,
            merkle_root,
            coinbase: None,
        }
    }

    /// The merkle root with the device's `extranonce` (a block of the coinbase alone: its hash).
    fn root(&self, extranonce: &[u8]) -> [u8; 32] {
        let Some(c) = &self.coinbase else {
            return self.merkle_root;
        };
        let coinbase = [&c.head[..], &c.prefix, extranonce, &c.tail].concat();
        sha256d::Hash::hash(&coinbase).to_byte_array()
    }
}

/// A block header's fields but the nonce.
#[derive(Clone, Copy)]
struct Header {
    version: u32,
    prev_hash: [u8; 32],
    merkle_root: [u8; 32],
    ntime: u32,
    nbits: u32,
}

impl Header {
    /// The header's double SHA-256 with `nonce` (80 bytes, integers little-endian).
    fn hash(&self, nonce: u32) -> [u8; 32] {
        let mut h = [0u8; 80];
        h[..4].copy_from_slice(&self.version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prev_hash);
        h[36..68].copy_from_slice(&self.merkle_root);
        h[68..72].copy_from_slice(&self.ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        sha256d::Hash::hash(&h).to_byte_array()
    }

    /// The first nonce from `from` whose hash is within `target`, trying at most 2^20 (the
    /// target's odds are 1 in 256: not finding one means a broken target).
    fn mine(&self, from: u32, target: &[u8; 32]) -> io::Result<u32> {
        (0..1u32 << 20)
            .map(|i| from.wrapping_add(i))
            .find(|&n| within(&self.hash(n), target))
            .ok_or_else(|| io::Error::other("no share in 2^20 nonces: is the target zero?"))
    }
}

/// Whether `hash` is at most `target`, both 256-bit little-endian integers.
fn within(hash: &[u8; 32], target: &[u8; 32]) -> bool {
    hash.iter().rev().cmp(target.iter().rev()).is_le()
}

fn to_array(b: &[u8]) -> io::Result<[u8; 32]> {
    b.try_into()
        .map_err(|_| io::Error::other(format!("a U256 of {} bytes", b.len())))
}

/// The generator a side's keys come from.
fn rng(seed: u64) -> rand::rngs::StdRng {
    <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed)
}

/// A library error as an I/O error, for one error type through the session.
fn lib(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("{e:?}"))
}

/// One side of an established session: the socket, the library's codec and the two halves of
/// the Noise transport, and what this side wrote.
struct Conn {
    stream: TcpStream,
    encoder: NoiseEncoder,
    decoder: NoiseDecoder,
    encrypt: TransportEncryptState,
    decrypt: Option<TransportDecryptState>,
    writes: Vec<Sent>,
}

impl Conn {
    /// The initiator's handshake: its ephemeral key (64 bytes), then the responder's answer.
    fn initiate(mut stream: TcpStream, seed: u64) -> io::Result<Self> {
        let mut encoder = NoiseEncoder::new();
        let mut decoder = NoiseDecoder::new();
        let initiator =
            noise_sv2::Initiator::from_raw_k_with_rng(authority_public_key(), &mut rng(seed))
                .map_err(lib)?;
        let (hello, sent) = Handshake::initiator(initiator).step_0().map_err(lib)?;
        let hello = encoder.encode_handshake(hello);
        stream.write_all(&hello)?;
        let writes = vec![Sent {
            what: "handshake",
            bytes: hello.len(),
            first: hello[0],
        }];
        let answer = loop {
            match decoder
                .next_handshake_frame::<InitiatorSent>()
                .map_err(lib)?
            {
                Decoded::Frame(m) => break m,
                Decoded::Incomplete(0) => {}
                Decoded::Incomplete(_) => stream.read_exact(decoder.writable())?,
            }
        };
        let answer: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] =
            answer.payload().try_into().map_err(lib)?;
        let (encrypt, decrypt) = sent.step_2(answer).map_err(lib)?.split();
        Ok(Self {
            stream,
            encoder,
            decoder,
            encrypt,
            decrypt: Some(decrypt),
            writes,
        })
    }

    /// The responder's handshake: the initiator's key, then the answer (ephemeral key, sealed
    /// static key and sealed certificate).
    fn respond(mut stream: TcpStream, seed: u64) -> io::Result<Self> {
        let mut encoder = NoiseEncoder::new();
        let mut decoder = NoiseDecoder::new();
        let responder = noise_sv2::Responder::from_authority_kp_with_rng(
            &authority_public_key(),
            &AUTHORITY_SECRET,
            CERT_VALIDITY,
            &mut rng(seed),
        )
        .map_err(lib)?;
        let hello = loop {
            match decoder
                .next_handshake_frame::<noise_sv2::Responder>()
                .map_err(lib)?
            {
                Decoded::Frame(m) => break m,
                Decoded::Incomplete(0) => {}
                Decoded::Incomplete(_) => stream.read_exact(decoder.writable())?,
            }
        };
        let hello: [u8; ELLSWIFT_ENCODING_SIZE] = hello.payload().try_into().map_err(lib)?;
        let (answer, transport) = Handshake::responder(responder).step_1(hello).map_err(lib)?;
        let answer = encoder.encode_handshake(answer);
        stream.write_all(&answer)?;
        let writes = vec![Sent {
            what: "handshake",
            bytes: answer.len(),
            first: answer[0],
        }];
        let (encrypt, decrypt) = transport.split();
        Ok(Self {
            stream,
            encoder,
            decoder,
            encrypt,
            decrypt: Some(decrypt),
            writes,
        })
    }

    /// Encodes and encrypts `message` as one frame and writes it in one write.
    fn send<T: Serialize + GetSize>(
        &mut self,
        what: &'static str,
        message: T,
        message_type: u8,
        channel_msg: bool,
    ) -> io::Result<()> {
        let bytes = self.encode(message, message_type, channel_msg)?;
        self.write(what, bytes)
    }

    /// `message` encoded and encrypted as one frame, not written yet.
    fn encode<T: Serialize + GetSize>(
        &mut self,
        message: T,
        message_type: u8,
        channel_msg: bool,
    ) -> io::Result<Vec<u8>> {
        let frame =
            MessageFrame::from_message(message, message_type, 0, channel_msg).map_err(lib)?;
        Ok(self
            .encoder
            .encode_transport(frame, &mut self.encrypt)
            .map_err(lib)?
            .to_vec())
    }

    /// One write of `bytes` (one or more frames of `what`), recorded.
    fn write(&mut self, what: &'static str, bytes: Vec<u8>) -> io::Result<()> {
        self.stream.write_all(&bytes)?;
        self.writes.push(Sent {
            what,
            bytes: bytes.len(),
            first: bytes[0],
        });
        Ok(())
    }

    /// The next frame: its message type and payload. End of stream before a frame begins is
    /// `UnexpectedEof`.
    fn recv(&mut self) -> io::Result<(u8, Vec<u8>)> {
        loop {
            let state = self
                .decrypt
                .take()
                .ok_or_else(|| io::Error::other("the session failed to decrypt earlier"))?;
            match self.decoder.next_transport_frame(state).map_err(lib)? {
                Decrypted::Frame(mut frame, state) => {
                    self.decrypt = Some(state);
                    return Ok((frame.header().msg_type(), frame.payload().to_vec()));
                }
                Decrypted::Incomplete(n, state) => {
                    self.decrypt = Some(state);
                    if n > 0 {
                        self.stream.read_exact(self.decoder.writable())?;
                    }
                }
            }
        }
    }

    /// The next frame's payload, which must be of `message_type`.
    fn expect(&mut self, message_type: u8) -> io::Result<Vec<u8>> {
        let (kind, payload) = self.recv()?;
        if kind != message_type {
            return Err(io::Error::other(format!(
                "message type {kind:#x} where {message_type:#x} was due"
            )));
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{net::TcpListener, thread};

    /// A whole session over loopback: (the device's report, the pool's).
    fn session(channel: Channel) -> (Report, Report) {
        session_joined(channel, 0)
    }

    /// The same with the last `joined` accepted shares in one write.
    fn session_joined(channel: Channel, joined: u32) -> (Report, Report) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let pool = thread::spawn(move || pool(l.accept().unwrap().0, 2));
        let stream = TcpStream::connect(addr).unwrap();
        let plan = Plan {
            channel,
            shares: 3,
            stale: 1,
            joined,
            seed: 1,
        };
        let dev = device(stream, "127.0.0.1", addr.port(), plan).unwrap();
        (dev, pool.join().unwrap().unwrap())
    }

    /// What each side wrote, in bytes, as the library made it.
    #[test]
    fn a_standard_channel_session_has_the_sizes_derived_from_the_spec() {
        let (dev, pool) = session(Channel::Standard);
        // 3 shares on the pool's job accepted, 1 on a job it never sent refused, on both sides.
        assert_eq!((dev.accepted, dev.rejected), (3, 1));
        assert_eq!((pool.accepted, pool.rejected), (3, 1));
        // The handshake (sv2-spec, "Noise protocol"): the initiator's ElligatorSwift key, 64
        // bytes; the answer: the responder's key (64), its static key sealed (64 + 16) and the
        // signature message sealed (2 + 4 + 4 + 64 = 74, + 16): 64 + 80 + 90 = 234.
        assert_eq!(dev.sizes("handshake"), [64]);
        assert_eq!(pool.sizes("handshake"), [234]);
        // A share: the header sealed (6 + 16) and six u32 sealed (24 + 16): 62, each of 4.
        assert_eq!(dev.sizes("SubmitSharesStandard"), [62; 4]);
        // The answers: Success is u32, u32, u32, u64 (20 bytes): 22 + 36 = 58; Error is u32,
        // u32 and "invalid-job-id" (1 + 14 bytes): 23, so 22 + 39 = 61. Neither is 62.
        assert_eq!(pool.sizes("SubmitShares.Success"), [58; 3]);
        assert_eq!(pool.sizes("SubmitShares.Error"), [61]);
        // SetupConnection: protocol 1, versions 2 + 2, flags 4, port 2 (11 bytes) and five
        // strings each with its length byte: "127.0.0.1" 10, "mining-sensor-test" 19, "cpu" 4,
        // "0.1.0" 6, "s2-device" 10 = 49; 60 bytes, 22 + 76 = 98 on the wire.
        assert_eq!(dev.sizes("SetupConnection"), [98]);
    }

    /// Shares joined in one write: the pool reads each frame of it and answers each.
    #[test]
    fn joined_shares_are_one_write_of_their_frames() {
        let (dev, pool) = session_joined(Channel::Standard, 2);
        assert_eq!((dev.accepted, dev.rejected), (3, 1));
        assert_eq!((pool.accepted, pool.rejected), (3, 1));
        // The first share alone (62), the last two accepted ones together (124), the stale one.
        assert_eq!(dev.sizes("SubmitSharesStandard"), [62, 124, 62]);
        let (dev, _) = session_joined(Channel::Extended { extranonce: 8 }, 3);
        assert_eq!(dev.sizes("SubmitSharesExtended"), [213, 71]);
    }

    #[test]
    fn an_extended_channel_session_has_the_sizes_derived_from_the_spec() {
        let (dev, pool) = session(Channel::Extended { extranonce: 8 });
        assert_eq!((dev.accepted, dev.rejected), (3, 1));
        assert_eq!((pool.accepted, pool.rejected), (3, 1));
        // OpenExtendedMiningChannel: request id 4, "s2-worker" 10, hash rate 4, max target 32,
        // extranonce size 2 = 52 bytes, 22 + 68 = 90.
        assert_eq!(dev.sizes("OpenExtendedMiningChannel"), [90]);
        // A share: six u32 (24) and the 8-byte extranonce with its length byte (9) = 33 bytes,
        // 22 + 49 = 71: 63 + the extranonce's length, never 62.
        assert_eq!(dev.sizes("SubmitSharesExtended"), [71; 4]);
        // The job: channel 4, job 4, an empty min_ntime (1), version 4, version rolling 1, an
        // empty merkle path (1), the coinbase's prefix and suffix of 18 bytes each with a
        // 2-byte length (20 + 20) = 55 bytes, 22 + 71 = 93.
        assert_eq!(pool.sizes("NewExtendedMiningJob"), [93]);
    }

    #[test]
    fn the_pool_checks_the_hash_against_the_target() {
        let h = Header {
            version: VERSION,
            prev_hash: [1; 32],
            merkle_root: [2; 32],
            ntime: 1,
            nbits: NBITS,
        };
        let n = h.mine(0, &TARGET).unwrap();
        // The share's hash has its most significant byte (the last, little-endian) zero.
        assert_eq!(h.hash(n)[31], 0);
        // Every nonce before it failed the target: its top byte was not zero.
        assert!((0..n).all(|m| h.hash(m)[31] != 0));
        assert!(within(&[0; 32], &TARGET) && !within(&[0xff; 32], &TARGET));
    }
}
