//! When a ring buffer record wakes its reader. A wake-up is an interrupt the submitting CPU sends
//! itself (irq work); the kernel program sends one only for the record that takes a ring past a
//! quarter or past half of its size, once per fill (the second mark is a second chance should
//! CPUs racing on the ring step over the first). The agent also reads every ring on a timer.

/// Whether a record that takes a ring's used bytes from `before` to `after` (its own bytes and
/// header included) wakes the reader: it crosses a quarter or half of the ring's `size`.
#[inline(always)]
pub fn wakes_reader(before: u64, after: u64, size: u64) -> bool {
    let crosses = |mark: u64| before < mark && after >= mark;
    crosses(size / 4) || crosses(size / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1 MiB sample ring: a quarter is 262,144 bytes, half 524,288. A share's record is 288
    /// bytes with the ring's header.
    const SIZE: u64 = 1 << 20;

    #[test]
    fn only_the_record_crossing_a_quarter_or_half_wakes_the_reader() {
        // Below the quarter: none.
        assert!(!wakes_reader(0, 288, SIZE));
        assert!(!wakes_reader(261_856, 262_143, SIZE));
        // 261,900 + 288 = 262,188 crosses 262,144; a record ending exactly on it too.
        assert!(wakes_reader(261_900, 262_188, SIZE));
        assert!(wakes_reader(261_856, 262_144, SIZE));
        // Past the quarter, the next records do not (every one did before).
        assert!(!wakes_reader(262_144, 262_432, SIZE));
        assert!(!wakes_reader(262_188, 262_476, SIZE));
        // Half: 524,100 + 288 = 524,388 crosses 524,288.
        assert!(wakes_reader(524_100, 524_388, SIZE));
        assert!(!wakes_reader(524_388, 524_676, SIZE));
        // Near full: none.
        assert!(!wakes_reader(1_048_000, 1_048_288, SIZE));
    }
}
