//! Hashes per share, from what a pool sends to set the difficulty.
//!
//! - Monero (`result.job.target` of a login reply, `params.target` of a `job` push): hex, little
//!   endian, 8 or 16 digits. As XMRig computes it, a 64-bit target T is taken as it is, a 32-bit
//!   target t becomes T = (2^64-1) / ((2^32-1) / t), both divisions on integers, and the
//!   difficulty, the expected hashes per share, is (2^64-1) / T.
//! - Stratum V1 (`mining.set_difficulty [D]`) on sha256d: D x 2^32 hashes; on scrypt (a login
//!   with a Litecoin or Dogecoin address) D x 2^16 (`SCRYPT_PER_SHA256D`, applied per flow).
//! - A 256-bit target (`mining.set_target`, Zcash-style pools) or boundary (the third item of an
//!   `eth_getWork` answer): 2^256 / B hashes, exact in integers, rounded only when turned into an
//!   `f64` for a counter.
//!
//! Every function refuses what no pool sends (a zero target, a wrong length, a digit that is not
//! hex, a difficulty that is not a positive finite number) with `None`: a share at an unknown
//! difficulty counts no hashes.

/// Hashes per share of a Monero `target`: 8 or 16 hex digits, little endian.
pub fn monero_target(hex: &str) -> Option<u64> {
    let t = match hex.len() {
        8 => {
            let t = u32::from_le_bytes(bytes(hex)?.try_into().ok()?);
            if t == 0 {
                return None;
            }
            u64::MAX / (u64::from(u32::MAX) / u64::from(t))
        }
        16 => u64::from_le_bytes(bytes(hex)?.try_into().ok()?),
        _ => return None,
    };
    (t != 0).then(|| u64::MAX / t)
}

/// Hashes per share of a Stratum V1 difficulty `d` on sha256d: d x 2^32.
pub fn sha256d_difficulty(d: f64) -> Option<f64> {
    (d.is_finite() && d > 0.0).then_some(d * 4_294_967_296.0)
}

/// What a share of a scrypt coin (Litecoin, Dogecoin) is worth against `sha256d_difficulty`'s
/// figure for the same difficulty: scrypt pools' difficulty 1 is 2^16 hashes, not 2^32 (cpuminer
/// divides a scrypt job's difficulty by 65,536 before it makes the target), so d x 2^16.
pub const SCRYPT_PER_SHA256D: f64 = 1.0 / 65_536.0;

/// Hashes per share of a 256-bit target or boundary: 1 to 64 hex digits, big endian, with or
/// without `0x`: 2^256 / B.
pub fn target_256(hex: &str) -> Option<f64> {
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    let mut b = U256::ZERO;
    for c in digits.chars() {
        b = b.shl4() | U256::from(c.to_digit(16)?);
    }
    if b == U256::ZERO {
        return None;
    }
    // 2^256 does not fit in 256 bits. A power of two B = 2^k divides it: 2^(256-k). Any other B
    // does not, so floor(2^256 / B) is floor((2^256 - 1) / B).
    if b.count_ones() == 1 {
        return Some(2f64.powi(256 - b.trailing_zeros() as i32));
    }
    Some(U256::MAX.div(b).to_f64())
}

/// Hex digits, two a byte, as the bytes in the order written; `None` for an odd count or a
/// non-digit (`from_str_radix` alone takes a `+`). What pools send of targets, extranonces and
/// jobs' fields is read with it.
pub fn bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An unsigned 256-bit number as two halves, with only what `target_256` needs. Ordered by the
/// high half first, as numbers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct U256 {
    hi: u128,
    lo: u128,
}

impl U256 {
    const ZERO: Self = Self { hi: 0, lo: 0 };
    const MAX: Self = Self {
        hi: u128::MAX,
        lo: u128::MAX,
    };

    fn from(v: u32) -> Self {
        Self {
            hi: 0,
            lo: u128::from(v),
        }
    }

    fn shl4(self) -> Self {
        Self {
            hi: (self.hi << 4) | (self.lo >> 124),
            lo: self.lo << 4,
        }
    }

    fn shl1(self) -> Self {
        Self {
            hi: (self.hi << 1) | (self.lo >> 127),
            lo: self.lo << 1,
        }
    }

    fn wrapping_sub(self, o: Self) -> Self {
        let (lo, borrow) = self.lo.overflowing_sub(o.lo);
        Self {
            hi: self.hi.wrapping_sub(o.hi).wrapping_sub(u128::from(borrow)),
            lo,
        }
    }

    fn bit(self, i: u32) -> bool {
        if i >= 128 {
            self.hi >> (i - 128) & 1 == 1
        } else {
            self.lo >> i & 1 == 1
        }
    }

    fn set_bit(&mut self, i: u32) {
        if i >= 128 {
            self.hi |= 1 << (i - 128);
        } else {
            self.lo |= 1 << i;
        }
    }

    fn count_ones(self) -> u32 {
        self.hi.count_ones() + self.lo.count_ones()
    }

    fn trailing_zeros(self) -> u32 {
        if self.lo == 0 {
            128 + self.hi.trailing_zeros()
        } else {
            self.lo.trailing_zeros()
        }
    }

    /// Restoring long division, a bit at a time (pools send a target every job, not every
    /// packet). The remainder stays below `d`; doubling it may pass 2^256, which the carry notes,
    /// and the subtraction then wraps back to the true value.
    fn div(self, d: Self) -> Self {
        let (mut q, mut r) = (Self::ZERO, Self::ZERO);
        for i in (0..256).rev() {
            let carry = r.hi >> 127 == 1;
            r = r.shl1();
            if self.bit(i) {
                r.lo |= 1;
            }
            if carry || r >= d {
                r = r.wrapping_sub(d);
                q.set_bit(i);
            }
        }
        q
    }

    fn to_f64(self) -> f64 {
        self.hi as f64 * 2f64.powi(128) + self.lo as f64
    }
}

impl std::ops::BitOr for U256 {
    type Output = Self;
    fn bitor(self, o: Self) -> Self {
        Self {
            hi: self.hi | o.hi,
            lo: self.lo | o.lo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand from the contract's formula (each checked with Python's integers).
    #[test]
    fn monero_32_bit_targets() {
        // b88d0600 is 0x00068db8 = 429,496: (2^32-1) / 429,496 = 10,000 (rest 2,961),
        // T = (2^64-1) / 10,000 = 1,844,674,407,370,955, and (2^64-1) / T = 10,000.
        assert_eq!(monero_target("b88d0600"), Some(10_000));
        // f3220000 is 0x000022f3 = 8,947: (2^32-1) / 8,947 = 480,045, T = 38,427,114,278,264,
        // (2^64-1) / T = 480,045.
        assert_eq!(monero_target("f3220000"), Some(480_045));
        // The easiest target: t = 2^32-1, T = 2^64-1, one hash a share.
        assert_eq!(monero_target("ffffffff"), Some(1));
        // 00000001 is 0x01000000 = 2^24: (2^32-1) / 2^24 = 255, so 255, not 256.
        assert_eq!(monero_target("00000001"), Some(255));
        assert_eq!(monero_target("B88D0600"), Some(10_000), "upper-case hex");
    }

    #[test]
    fn monero_64_bit_targets() {
        // e4a6030000000000 is T = 0x3a6e4 = 239,332; (2^64-1) / 239,332 = 77,075,961,733,949.
        assert_eq!(monero_target("e4a6030000000000"), Some(77_075_961_733_949));
        // T = 2^63: (2^64-1) / 2^63 = 1.
        assert_eq!(monero_target("0000000000000080"), Some(1));
    }

    #[test]
    fn monero_targets_no_pool_sends() {
        for bad in [
            "",
            "00000000",
            "0000000000000000",
            "b88d06",
            "b88d06000",
            "zz8d0600",
            "+88d0600",
        ] {
            assert_eq!(monero_target(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stratum_v1_difficulty_is_d_times_2_to_the_32() {
        assert_eq!(sha256d_difficulty(1.0), Some(4_294_967_296.0));
        assert_eq!(sha256d_difficulty(65_536.0), Some(281_474_976_710_656.0));
        assert_eq!(sha256d_difficulty(0.5), Some(2_147_483_648.0));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(sha256d_difficulty(bad), None, "{bad}");
        }
    }

    #[test]
    fn targets_of_256_bits() {
        // An ethproxy boundary of a pool at 4 GH a share: 2^256 / B = 4,000,000,000 exactly.
        assert_eq!(
            target_256("0x0000000112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba"),
            Some(4_000_000_000.0)
        );
        // Bitcoin's difficulty-1 target 0x00000000ffff0000...: 2^256 / B = 4,295,032,833
        // (2^32 x 65,536 / 65,535, rounded down).
        assert_eq!(
            target_256("00000000ffff0000000000000000000000000000000000000000000000000000"),
            Some(4_295_032_833.0)
        );
        // Powers of two divide 2^256 exactly: B = 2^224 gives 2^32, B = 1 gives 2^256.
        assert_eq!(
            target_256("0000000100000000000000000000000000000000000000000000000000000000"),
            Some(4_294_967_296.0)
        );
        assert_eq!(target_256("1"), Some(2f64.powi(256)));
        // B = 3: 2^256 / 3, as an f64.
        assert_eq!(target_256("3"), Some(2f64.powi(256) / 3.0));
        // The largest B, 2^256 - 1: one hash a share.
        assert_eq!(target_256(&"f".repeat(64)), Some(1.0));
    }

    #[test]
    fn targets_of_256_bits_no_pool_sends() {
        for bad in [
            "",
            "0x",
            "0",
            &"0".repeat(64),
            &"1".repeat(65),
            "0xg1",
            "-1",
        ] {
            assert_eq!(target_256(bad), None, "{bad:?}");
        }
    }
}
