//! The `pool_dns` signal: a DNS query whose name ends in a configured pool domain
//! (`supportxmr.com` matches `pool.supportxmr.com` and `supportxmr.com`, not `notsupportxmr.com`).
//!
//! Names are compared as 64-bit keys, so the kernel needs one hash lookup per label, not string
//! compares: each label is hashed on its own (case-folded, length first, 8 bytes at a time), and
//! the key of a suffix folds its labels' hashes in from the right. The kernel walks the query name
//! a label (up to 8 of its bytes) per step with [`QueryName`] (a `bpf_loop` callback, like the
//! Stratum scanner) and then looks up the key of every suffix; the agent computes the keys of the
//! configured domains with [`name_key`]. One definition on both sides, so they cannot disagree.

use crate::stratum::{HIGHS, ONES, WINDOW, Window, low_bytes};

/// Labels of a query name the kernel follows; longer names never match (pool names have 2 to 4).
pub const MAX_LABELS: usize = 16;
/// Entries of the kernel's pool-domain table.
pub const MAX_POOL_DOMAINS: u32 = 4096;
/// Words of the kernel's pool-domain filter: one bit per [`filter_bit`] of a configured domain's
/// key, so that a suffix no domain can have costs an array read, not a hash-table lookup.
pub const FILTER_WORDS: usize = 1024;

/// The filter bit of a suffix key (low bits of a hash: spread evenly).
#[inline(always)]
pub const fn filter_bit(key: u64) -> usize {
    key as usize & (FILTER_WORDS * 64 - 1)
}

/// UDP port of DNS queries.
pub const DNS_PORT: u16 = 53;
/// The DNS header before the question.
pub const HEADER: usize = 12;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// Key of the empty suffix (the root), from which every name's key is folded.
pub const ROOT: u64 = 0x6d69_6e69_6e67_2e2e;

/// Hash of a label of `len` bytes before any of its bytes.
#[inline(always)]
pub const fn label_start(len: u8) -> u64 {
    (FNV_OFFSET ^ len as u64).wrapping_mul(FNV_PRIME)
}

/// The 8 bytes of `w` with ASCII capitals made small (DNS names are case-insensitive, and
/// resolvers randomise case: "0x20 encoding"); other bytes unchanged. Each byte is tested on its
/// own: its low 7 bits plus a constant set the byte's high bit without a carry into the next.
#[inline(always)]
pub const fn fold_case(w: u64) -> u64 {
    let low = w & !HIGHS;
    let from_a = low.wrapping_add(ONES * (0x80 - b'A' as u64));
    let past_z = low.wrapping_add(ONES * (0x80 - b'Z' as u64 - 1));
    let capital = from_a & !past_z & !w & HIGHS;
    w | (capital >> 2)
}

/// Folds the next up to 8 bytes of a label into its hash: `chunk` holds them little-endian, zero
/// past the label's end (the hash began with the length, so the zeros are unambiguous).
#[inline(always)]
pub const fn label_chunk(h: u64, chunk: u64) -> u64 {
    (h ^ fold_case(chunk)).wrapping_mul(FNV_PRIME)
}

/// A label's hash ([`label_start`], then [`label_chunk`] over each 8 bytes).
pub fn label_hash(label: &[u8]) -> u64 {
    label
        .chunks(8)
        .fold(label_start(label.len() as u8), |h, c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            label_chunk(h, u64::from_le_bytes(b))
        })
}

/// Key of the suffix made of a label (its hash) followed by the suffix keyed `rest`.
#[inline(always)]
pub const fn combine(label: u64, rest: u64) -> u64 {
    (rest.rotate_left(29) ^ label).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (label >> 31)
}

/// Key of a dotted domain name (`pool.supportxmr.com`, a trailing dot allowed), or `None` if it is
/// not a name the kernel could match: empty labels, a label over 63 bytes, more than
/// `MAX_LABELS` labels, or over 253 bytes.
pub fn name_key(name: &[u8]) -> Option<u64> {
    let name = match name.split_last() {
        Some((b'.', rest)) => rest,
        _ => name,
    };
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let mut key = ROOT;
    let mut labels = 0;
    for label in name.rsplit(|&b| b == b'.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        labels += 1;
        if labels > MAX_LABELS {
            return None;
        }
        key = combine(label_hash(label), key);
    }
    Some(key)
}

/// `QueryName::state`.
pub const RUNNING: u32 = 0;
pub const COMPLETE: u32 = 1;
pub const INVALID: u32 = 2;

/// The walk over the question name of a DNS query held in a window, a label (or 8 bytes of a
/// longer one) per [`step`](QueryName::step). Plain data, so the kernel keeps it in map memory
/// between `bpf_loop` calls.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryName {
    /// Next byte to read.
    pub pos: u32,
    /// Position of the next length byte.
    pub next: u32,
    /// One past the last byte of the window that belongs to the packet.
    pub end: u32,
    pub labels: u32,
    pub state: u32,
    pub _pad: u32,
    /// Hash of each label, in order.
    pub hashes: [u64; MAX_LABELS],
}

impl QueryName {
    /// A walk of the name that starts at `start` (after the DNS header) in a window of `end` bytes.
    pub const fn new(start: u32, end: u32) -> Self {
        Self {
            pos: start,
            next: start,
            end,
            labels: 0,
            state: RUNNING,
            _pad: 0,
            hashes: [0; MAX_LABELS],
        }
    }

    /// Takes a label's length byte and its first 8 bytes, or the next 8 bytes of a longer label;
    /// true once the walk is over (`state` says how). A label that runs past `end` ends the walk
    /// as invalid: the packet holds a cut name.
    #[inline(always)]
    pub fn step(&mut self, buf: &Window) -> bool {
        if self.state != RUNNING {
            return true;
        }
        if self.pos >= self.end || self.pos as usize >= WINDOW {
            self.state = INVALID;
            return true;
        }
        let at = self.labels as usize;
        if self.pos == self.next {
            let b = buf.byte(self.pos as usize);
            if b == 0 {
                self.state = if at > 0 { COMPLETE } else { INVALID };
                return true;
            }
            // Over 63: a compression pointer or garbage; neither starts a query's name.
            if b > 63 || at >= MAX_LABELS || self.pos + 1 + b as u32 > self.end {
                self.state = INVALID;
                return true;
            }
            self.hashes[at & (MAX_LABELS - 1)] = label_start(b);
            self.labels += 1;
            self.pos += 1;
            self.next = self.pos + b as u32;
        } else if at == 0 {
            self.state = INVALID;
            return true;
        }
        let i = (self.labels as usize - 1) & (MAX_LABELS - 1);
        let left = self.next - self.pos;
        let k = if left < 8 { left } else { 8 };
        let chunk = buf.load8(self.pos as usize) & low_bytes(k as usize);
        self.hashes[i] = label_chunk(self.hashes[i], chunk);
        self.pos += k;
        false
    }

    /// After a complete walk: the keys of the name's suffixes, shortest first, each handed to
    /// `matches` until it says yes. True when one matched.
    #[inline(always)]
    pub fn any_suffix(&self, mut matches: impl FnMut(u64) -> bool) -> bool {
        if self.state != COMPLETE {
            return false;
        }
        let mut key = ROOT;
        let mut i = MAX_LABELS;
        for _ in 0..MAX_LABELS {
            i -= 1;
            if i < self.labels as usize {
                key = combine(self.hashes[i], key);
                if matches(key) {
                    return true;
                }
            }
        }
        false
    }
}

/// Whether a UDP payload is a standard DNS query with at least one question (QR = 0, opcode 0).
#[inline(always)]
pub fn is_query(header: &[u8; HEADER]) -> bool {
    header[2] & 0xf8 == 0 && (header[4] != 0 || header[5] != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` in a window (header, question), as a resolver would send it.
    fn query(name: &str) -> ([u8; WINDOW], u32) {
        let mut buf = [0u8; WINDOW];
        buf[..HEADER].copy_from_slice(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        let mut at = HEADER;
        for label in name.split('.').filter(|l| !l.is_empty()) {
            buf[at] = label.len() as u8;
            buf[at + 1..at + 1 + label.len()].copy_from_slice(label.as_bytes());
            at += 1 + label.len();
        }
        buf[at] = 0;
        (buf, at as u32 + 5)
    }

    fn walk(bytes: &[u8; WINDOW], end: u32) -> QueryName {
        let mut buf = Window::new();
        buf.bytes_mut()[..WINDOW].copy_from_slice(bytes);
        let buf = &buf;
        let mut q = QueryName::new(HEADER as u32, end);
        for _ in 0..WINDOW {
            if q.step(buf) {
                break;
            }
        }
        q
    }

    fn matches(name: &str, domains: &[&str]) -> bool {
        let keys: Vec<u64> = domains
            .iter()
            .map(|d| name_key(d.as_bytes()).unwrap())
            .collect();
        let (buf, end) = query(name);
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&buf[..HEADER]);
        assert!(is_query(&header));
        walk(&buf, end).any_suffix(|k| keys.contains(&k))
    }

    #[test]
    fn suffixes_match_on_label_boundaries_only() {
        let pools = ["supportxmr.com", "nanopool.org"];
        assert!(matches("pool.supportxmr.com", &pools));
        assert!(matches("supportxmr.com", &pools));
        assert!(matches("XMR-EU1.NanoPool.ORG", &pools));
        assert!(matches("a.b.c.d.nanopool.org", &pools));
        assert!(!matches("notsupportxmr.com", &pools));
        assert!(!matches("supportxmr.com.evil.net", &pools));
        assert!(!matches("com", &pools));
        assert!(!matches("example.org", &pools));
    }

    #[test]
    fn case_folds_byte_by_byte() {
        // Every byte value in every position, next to bytes that could carry into it.
        for b in 0..=255u8 {
            for at in 0..8 {
                for other in [0x00u8, 0x40, 0x5a, 0x7f, 0x80, 0xc1, 0xff] {
                    let mut bytes = [other; 8];
                    bytes[at] = b;
                    let folded = fold_case(u64::from_le_bytes(bytes)).to_le_bytes();
                    assert_eq!(folded, bytes.map(|x| x.to_ascii_lowercase()), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn long_labels_hash_in_chunks_as_the_walk_does() {
        let label = "a-label-of-twenty-five-ch";
        assert_eq!(label.len(), 25);
        let pools = [format!("{label}.example")];
        let pools: Vec<&str> = pools.iter().map(String::as_str).collect();
        assert!(matches(
            &format!("x.{}.EXAMPLE", label.to_uppercase()),
            &pools
        ));
        assert!(!matches(&format!("x.{}.example", &label[..24]), &pools));
    }

    #[test]
    fn names_the_kernel_cannot_match_are_refused() {
        assert_eq!(name_key(b"supportxmr.com."), name_key(b"supportxmr.com"));
        assert_eq!(name_key(b"SupportXMR.com"), name_key(b"supportxmr.com"));
        for bad in [
            &b""[..],
            b".",
            b"a..b",
            &[b'a'; 64],
            b"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
        ] {
            assert_eq!(name_key(bad), None, "{bad:?}");
        }
        assert_ne!(name_key(b"a.bc"), name_key(b"ab.c"));
    }

    #[test]
    fn cut_or_compressed_names_never_match() {
        let keys = [name_key(b"supportxmr.com").unwrap()];
        let (buf, end) = query("pool.supportxmr.com");
        for cut in HEADER as u32..end - 5 {
            assert!(
                !walk(&buf, cut).any_suffix(|k| keys.contains(&k)),
                "cut at {cut}"
            );
        }
        let mut ptr = buf;
        ptr[HEADER] = 0xc0;
        assert!(!walk(&ptr, end).any_suffix(|k| keys.contains(&k)));
        // A response (QR set) or a query without questions is not a query.
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&buf[..HEADER]);
        h[2] |= 0x80;
        assert!(!is_query(&h));
        h[2] = 1;
        h[5] = 0;
        assert!(!is_query(&h));
    }
}
