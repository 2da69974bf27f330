//! The `[[peers]]` tables: the neighbours a watched range's traffic is told apart by on one port,
//! each named, with the Ethernet addresses of its routers and the VLAN IDs of its links.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use sensor_common::{MAX_PEER_KEYS, MAX_PEERS};

use crate::config::{
    error::{ConfigError, Source},
    types::{OTHER_PEER, Peer},
    values::label_name,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    name: Spanned<String>,
    #[serde(default)]
    macs: Vec<Spanned<String>>,
    #[serde(default)]
    vlans: Vec<Spanned<i64>>,
}

/// The neighbours in file order. An address or a VLAN ID belongs to one neighbour only.
pub(super) fn peers(src: &Source, raw: &[RawPeer]) -> Result<Vec<Peer>, ConfigError> {
    if raw.len() > MAX_PEERS {
        return Err(src.at(
            raw[MAX_PEERS].name.span(),
            format!(
                "peers: {} neighbours configured; the sensor tells at most {MAX_PEERS} apart (the rest count as {OTHER_PEER:?}): merge neighbours under one name or leave the smaller ones out",
                raw.len()
            ),
        ));
    }
    let mut peers = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    // Address or VLAN ID -> (neighbour, line) of its first mention.
    let mut macs: HashMap<[u8; 6], (String, usize)> = HashMap::new();
    let mut vlans: HashMap<u16, (String, usize)> = HashMap::new();
    for p in raw {
        let name = p.name.get_ref();
        let line = src.line(p.name.span().start);
        label_name(
            name,
            names.get(name.as_str()).copied(),
            ("peers", "neighbour"),
            (OTHER_PEER, "traffic of no configured neighbour"),
        )
        .map_err(|why| src.at(p.name.span(), why))?;
        names.insert(name, line);
        if p.macs.is_empty() && p.vlans.is_empty() {
            return Err(src.at(
                p.name.span(),
                format!(
                    "peers.{name}: neither macs nor vlans given; list the Ethernet addresses of its routers (macs = [\"aa:bb:cc:dd:ee:ff\"]) or the VLAN IDs of its links (vlans = [100])"
                ),
            ));
        }
        let mut peer = Peer {
            name: name.clone(),
            macs: Vec::new(),
            vlans: Vec::new(),
        };
        for m in &p.macs {
            let mac = parse_mac(m.get_ref()).map_err(|why| {
                src.at(
                    m.span(),
                    format!("peers.{name}.macs: {:?} {why}", m.get_ref()),
                )
            })?;
            let here = src.line(m.span().start);
            if let Some((owner, first)) = macs.insert(mac, (name.clone(), here)) {
                return Err(src.at(
                    m.span(),
                    format!(
                        "peers.{name}.macs: {:?} is already listed on line {first} (neighbour {owner:?}); an address belongs to one neighbour",
                        m.get_ref()
                    ),
                ));
            }
            peer.macs.push(mac);
        }
        for v in &p.vlans {
            let id = *v.get_ref();
            if !(1..=4094).contains(&id) {
                return Err(src.at(
                    v.span(),
                    format!("peers.{name}.vlans: {id} is not a VLAN ID; use 1 to 4094"),
                ));
            }
            let here = src.line(v.span().start);
            if let Some((owner, first)) = vlans.insert(id as u16, (name.clone(), here)) {
                return Err(src.at(
                    v.span(),
                    format!(
                        "peers.{name}.vlans: {id} is already listed on line {first} (neighbour {owner:?}); a VLAN belongs to one neighbour"
                    ),
                ));
            }
            peer.vlans.push(id as u16);
        }
        peers.push(peer);
    }
    let keys = macs.len() + vlans.len();
    if keys > MAX_PEER_KEYS {
        return Err(ConfigError {
            file: src.file.to_string(),
            line: None,
            message: format!(
                "peers: {keys} addresses and VLAN IDs configured; the sensor holds at most {MAX_PEER_KEYS}: list the routers that carry the watched ranges only"
            ),
        });
    }
    Ok(peers)
}

/// An Ethernet address written as six two-digit hexadecimal bytes separated by `:` or `-`; a
/// neighbour's router has a unicast address, so a group (multicast or broadcast) address is refused.
fn parse_mac(s: &str) -> Result<[u8; 6], &'static str> {
    const SHAPE: &str =
        "is not an Ethernet address; write six hexadecimal bytes, e.g. \"02:00:5e:10:00:01\"";
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(SHAPE);
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(SHAPE);
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| SHAPE)?;
    }
    if mac[0] & 1 != 0 {
        return Err(
            "is a group (multicast or broadcast) address; a router hands over frames from its own unicast address",
        );
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use sensor_common::MAX_PEERS;

    use crate::config::{Config, tests::err};

    #[test]
    fn peers_parse_with_addresses_and_vlans() {
        let c = Config::parse(
            "[[peers]]\nname = \"transtelecom\"\nmacs = [\"02:00:5E:10:00:01\", \"02-00-5e-10-00-02\"]\nvlans = [100]\n[[peers]]\nname = \"chinaunicom\"\nvlans = [200, 4094]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[0].name, "transtelecom");
        assert_eq!(
            c.peers[0].macs,
            [
                [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01],
                [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]
            ]
        );
        assert_eq!(c.peers[0].vlans, [100]);
        assert_eq!(c.peers[1].macs.len(), 0);
        assert_eq!(c.peers[1].vlans, [200, 4094]);
        // No [[peers]]: none, and nothing to warn about.
        let c = Config::parse("", "t.toml").unwrap();
        assert!(c.peers.is_empty());
    }

    #[test]
    fn bad_peers_name_file_line_field_and_value() {
        let e = err(
            "[[peers]]\nname = \"a\"\nmacs = [\n  \"02:00:5e:10:00:01\",\n  \"02:00:5e:10:00\",\n]\n",
        );
        assert_eq!(e.line, Some(5));
        assert!(e.to_string().starts_with("t.toml:5: "), "{e}");
        assert!(e.message.contains("peers.a.macs"), "{e}");
        assert!(e.message.contains("02:00:5e:10:00"), "{e}");
        assert!(e.message.contains("six hexadecimal bytes"), "{e}");

        let e = err("[[peers]]\nname = \"a\"\nmacs = [\"02:00:5e:zz:00:01\"]\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("not an Ethernet address"), "{e}");

        let e = err("[[peers]]\nname = \"a\"\nmacs = [\"ff:ff:ff:ff:ff:ff\"]\n");
        assert!(e.message.contains("group"), "{e}");

        let e = err("[[peers]]\nname = \"a\"\nvlans = [4095]\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("peers.a.vlans: 4095"), "{e}");
        assert!(e.message.contains("1 to 4094"), "{e}");

        // The same address under two neighbours: refused at the second, naming the first.
        let e = err(
            "[[peers]]\nname = \"a\"\nmacs = [\"02:00:5e:10:00:01\"]\n[[peers]]\nname = \"b\"\nmacs = [\"02:00:5E:10:00:01\"]\n",
        );
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("already listed on line 3"), "{e}");
        assert!(e.message.contains("\"a\""), "{e}");

        let e = err("[[peers]]\nname = \"a\"\nvlans = [7, 7]\n");
        assert!(
            e.message.contains("peers.a.vlans: 7 is already listed"),
            "{e}"
        );

        let e = err("[[peers]]\nname = \"a\"\nvlans = [1]\n[[peers]]\nname = \"a\"\nvlans = [2]\n");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("already used on line 2"), "{e}");

        let e = err("[[peers]]\nname = \"other\"\nvlans = [1]\n");
        assert!(e.message.contains("reserved"), "{e}");

        let e = err("[[peers]]\nname = \"a\"\n");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("neither macs nor vlans"), "{e}");

        let e = err("[[peers]]\nname = \"a\"\nmac = [\"02:00:5e:10:00:01\"]\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `mac`"), "{e}");
    }

    #[test]
    fn at_most_max_peers() {
        let mut t = String::new();
        for i in 0..=MAX_PEERS {
            t += &format!("[[peers]]\nname = \"p{i}\"\nvlans = [{}]\n", i + 1);
        }
        let e = err(&t);
        // The 17th table's name is on line 3 x 16 + 2 = 50.
        assert_eq!(e.line, Some(50));
        assert!(e.message.contains("at most 16"), "{e}");
        // Sixteen are fine.
        let sixteen: String = t.lines().take(3 * MAX_PEERS).collect::<Vec<_>>().join("\n");
        assert_eq!(Config::parse(&sixteen, "t.toml").unwrap().peers.len(), 16);
    }
}
