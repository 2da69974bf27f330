//! Watched ranges as LPM-trie entries.
//!
//! The counting rule says a packet counts once for every range that contains an endpoint, and
//! that nested prefixes within a range do not count twice. An LPM lookup returns one entry, the
//! longest matching prefix, so each entry's value is the bit set of every range that has a prefix
//! enclosing (or equal to) it: the longest match then names all ranges containing the address,
//! each once.

use std::collections::BTreeMap;

use ipnet::IpNet;

/// Entries for one address family: (prefix length, network address bytes, range bit set).
pub type Entries<const N: usize> = Vec<(u32, [u8; N], u64)>;

/// Trie entries for `cfg`'s ranges under the given ids, and its pool endpoints under the pool bit.
pub fn for_config<'a>(
    ranges: impl IntoIterator<Item = (usize, &'a [IpNet])>,
    pools: &'a [IpNet],
) -> TrieEntries {
    let pool_id = sensor_common::POOL_BIT.trailing_zeros() as usize;
    build(ranges.into_iter().chain([(pool_id, pools)]))
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrieEntries {
    pub v4: Entries<4>,
    pub v6: Entries<16>,
}

/// Builds trie entries from `(range id, prefixes)`. Runs in O(n log n) for n prefixes: sorted by
/// address then length, every prefix's enclosing prefixes come before it and sit on a stack.
pub fn build<'a>(ranges: impl IntoIterator<Item = (usize, &'a [IpNet])>) -> TrieEntries {
    let mut v4: BTreeMap<(u128, u8), u64> = BTreeMap::new();
    let mut v6: BTreeMap<(u128, u8), u64> = BTreeMap::new();
    for (id, nets) in ranges {
        let bit = 1u64 << id;
        for net in nets {
            let net = net.trunc();
            match net {
                IpNet::V4(n) => {
                    *v4.entry((u32::from(n.network()) as u128, n.prefix_len()))
                        .or_default() |= bit
                }
                IpNet::V6(n) => {
                    *v6.entry((u128::from(n.network()), n.prefix_len()))
                        .or_default() |= bit
                }
            }
        }
    }
    TrieEntries {
        v4: fold(v4, 32)
            .into_iter()
            .map(|(len, a, bits)| (len, (a as u32).to_be_bytes(), bits))
            .collect(),
        v6: fold(v6, 128)
            .into_iter()
            .map(|(len, a, bits)| (len, a.to_be_bytes(), bits))
            .collect(),
    }
}

fn contains(outer: (u128, u8), inner: (u128, u8), width: u32) -> bool {
    if outer.1 > inner.1 {
        return false;
    }
    if outer.1 == 0 {
        return true;
    }
    let shift = width - outer.1 as u32;
    (outer.0 >> shift) == (inner.0 >> shift)
}

fn fold(sorted: BTreeMap<(u128, u8), u64>, width: u32) -> Vec<(u32, u128, u64)> {
    let mut out = Vec::with_capacity(sorted.len());
    let mut stack: Vec<((u128, u8), u64)> = Vec::new();
    for (prefix, bits) in sorted {
        while let Some(&(top, _)) = stack.last() {
            if contains(top, prefix, width) {
                break;
            }
            stack.pop();
        }
        let inherited = stack.last().map_or(0, |&(_, b)| b);
        let all = bits | inherited;
        stack.push((prefix, all));
        out.push((prefix.1 as u32, prefix.0, all));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn nested_prefixes_inherit_enclosing_ranges() {
        let a = nets(&["10.0.0.0/8", "10.1.0.0/16"]);
        let b = nets(&["10.1.2.0/24", "192.0.2.0/24"]);
        let e = build([(0, a.as_slice()), (3, b.as_slice())]);
        assert_eq!(
            e.v4,
            vec![
                (8, [10, 0, 0, 0], 0b0001),
                (16, [10, 1, 0, 0], 0b0001),
                (24, [10, 1, 2, 0], 0b1001),
                (24, [192, 0, 2, 0], 0b1000),
            ]
        );
    }

    #[test]
    fn same_prefix_in_two_ranges_is_one_entry_and_siblings_do_not_inherit() {
        let a = nets(&["2001:db8::/32", "2001:db8:1::/48"]);
        let b = nets(&["2001:db8::/32", "2001:db9::/32"]);
        let e = build([(1, a.as_slice()), (2, b.as_slice())]);
        assert_eq!(e.v6.len(), 3);
        assert_eq!(e.v6[0].0, 32);
        assert_eq!(e.v6[0].2, 0b110);
        assert_eq!(e.v6[1].0, 48);
        assert_eq!(e.v6[1].2, 0b110);
        assert_eq!(e.v6[2].2, 0b100);
        assert!(e.v4.is_empty());
    }

    #[test]
    fn default_route_encloses_everything() {
        let a = nets(&["0.0.0.0/0"]);
        let b = nets(&["203.0.113.0/24"]);
        let e = build([(0, a.as_slice()), (1, b.as_slice())]);
        assert_eq!(e.v4[1].2, 0b11);
    }
}
