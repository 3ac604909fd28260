//! IPv6 neighbour discovery (RFC 4861) and ARP (RFC 826) parsing, without
//! allocation: who claims which address at which MAC, and who claims to be a
//! router. Feeds host inventory and spoofing/poisoning detectors.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use core::net::{Ipv4Addr, Ipv6Addr};
use serde::Serializer;

/// ND option: source link-layer address.
const OPT_SOURCE_LL: u8 = 1;
/// ND option: target link-layer address.
const OPT_TARGET_LL: u8 = 2;

/// The four neighbour-discovery messages botd reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NdpKind {
    /// ICMPv6 type 133.
    RouterSolicit,
    /// 134.
    RouterAdvert,
    /// 135.
    #[default]
    NeighbourSolicit,
    /// 136.
    NeighbourAdvert,
}

/// One neighbour-discovery message. 26 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Neighbour {
    pub kind: NdpKind,
    /// Target address of a solicitation/advertisement (None for RS/RA).
    #[serde(serialize_with = "ser_ip6", skip_serializing_if = "Option::is_none")]
    pub target: Option<[u8; 16]>,
    /// The first Ethernet-sized (option length 1) source or target link-layer
    /// address option.
    #[serde(
        serialize_with = "ser_mac_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub link_addr: Option<[u8; 6]>,
    /// A router advertisement, or an advertisement with the R flag.
    pub router: bool,
}

/// Parses an ICMPv6 message (starting at its type byte) of type 133-136 with
/// code 0 (RFC 4861 says to drop other codes). The checksum is not verified
/// (botd has no pseudo-header here). Option parsing stops at a zero-length or
/// overrunning option, keeping what was found before it.
pub fn parse_ndp(icmpv6_message: &[u8]) -> Option<Neighbour> {
    let (&[typ, code, _, _], body) = icmpv6_message.split_first_chunk::<4>()?;
    if code != 0 {
        return None;
    }
    let (kind, fixed_len) = match typ {
        133 => (NdpKind::RouterSolicit, 4),
        134 => (NdpKind::RouterAdvert, 12),
        135 => (NdpKind::NeighbourSolicit, 20),
        136 => (NdpKind::NeighbourAdvert, 20),
        _ => return None,
    };
    let (fixed, options) = body.split_at_checked(fixed_len)?;
    let (target, router) = match kind {
        NdpKind::RouterSolicit => (None, false),
        NdpKind::RouterAdvert => (None, true),
        NdpKind::NeighbourSolicit | NdpKind::NeighbourAdvert => {
            let (&[flags, ..], rest) = fixed.split_first_chunk::<4>()?;
            let target = rest.first_chunk::<16>()?;
            let router = kind == NdpKind::NeighbourAdvert && flags & 0x80 != 0;
            (Some(*target), router)
        }
    };
    Some(Neighbour {
        kind,
        target,
        link_addr: link_layer_option(options),
        router,
    })
}

/// The first source/target link-layer address option that holds a MAC.
fn link_layer_option(mut options: &[u8]) -> Option<[u8; 6]> {
    loop {
        let &[typ, len] = options.first_chunk::<2>()?;
        // Length in units of 8 bytes; zero is invalid and would never advance.
        if len == 0 {
            return None;
        }
        let (opt, rest) = options.split_at_checked(usize::from(len) * 8)?;
        if (typ == OPT_SOURCE_LL || typ == OPT_TARGET_LL) && len == 1 {
            return opt.get(2..).and_then(|m| m.first_chunk::<6>()).copied();
        }
        options = rest;
    }
}

/// One Ethernet/IPv4 ARP message. 22 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Arp {
    /// 1 request, 2 reply (others are kept as read).
    pub op: u16,
    #[serde(serialize_with = "ser_mac")]
    pub sender_mac: [u8; 6],
    #[serde(serialize_with = "ser_ip4")]
    pub sender_ip: [u8; 4],
    #[serde(serialize_with = "ser_mac")]
    pub target_mac: [u8; 6],
    #[serde(serialize_with = "ser_ip4")]
    pub target_ip: [u8; 4],
}

impl Arp {
    /// Gratuitous ARP (sender IP == target IP): an announcement of the
    /// sender's own binding, legitimate after address changes and a common
    /// carrier of ARP-cache poisoning.
    pub fn gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Parses an ARP body (starting at the hardware-type field) for Ethernet
/// (htype 1, hlen 6) and IPv4 (ptype 0x0800, plen 4); anything else is None.
pub fn parse_arp(arp: &[u8]) -> Option<Arp> {
    let (head, rest) = arp.split_first_chunk::<8>()?;
    let &[0, 1, 0x08, 0x00, 6, 4, o0, o1] = head else {
        return None;
    };
    let body = rest.first_chunk::<20>()?;
    let (sha, b) = body.split_first_chunk::<6>()?;
    let (spa, b) = b.split_first_chunk::<4>()?;
    let (tha, b) = b.split_first_chunk::<6>()?;
    let tpa = b.first_chunk::<4>()?;
    Some(Arp {
        op: u16::from_be_bytes([o0, o1]),
        sender_mac: *sha,
        sender_ip: *spa,
        target_mac: *tha,
        target_ip: *tpa,
    })
}

/// `aa:bb:cc:dd:ee:ff` without allocating.
struct MacText([u8; 6]);

impl core::fmt::Display for MacText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

fn ser_mac<S: Serializer>(m: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&MacText(*m))
}

fn ser_mac_opt<S: Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.collect_str(&MacText(*m)),
        None => s.serialize_none(),
    }
}

fn ser_ip4<S: Serializer>(a: &[u8; 4], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Ipv4Addr::from(*a))
}

fn ser_ip6<S: Serializer>(a: &Option<[u8; 16]>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Some(a) => s.collect_str(&Ipv6Addr::from(*a)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::hex;

    // chrissanders-packets/icmpv6_neighbor_solicitation.pcapng frames 1 (NS) and 2 (NA).
    const NS: &str = "870044b70000000020010db80001000200000000000010000101000c292f8031";
    const NA: &str = "88008beb6000000020010db80001000200000000000010000201000c291fa755";
    // debian-registry/python3-libtrace/icmp6-sample.pcap frame 11: NA from a router (R|S), no options.
    const NA_ROUTER: &str = "88004c5ac0000000fe80000000000000ce3e5ffffe2e6744";
    // github-appneta-tcpreplay sample.pcap frame 9: RA with SLLA, MTU and prefix options.
    const RA: &str = "86004d624048012c002932e0000000000101405539c03a8005010000000005dc030440c000278d0000093a80000000002a0013980009fb000000000000000000";
    // stratosphere 09ffabf7-....pcap frame 1082: RS without options.
    const RS: &str = "850033a900000000";
    // chrissanders-packets/arppoison.pcapng frames 54 (request) and 55 (reply).
    const ARP_REQ: &str = "00010800060400010025b3bf91eeac100001000000000000ac10006b";
    const ARP_REP: &str = "0001080006040002002170c056f0ac10006b0025b3bf91eeac100001";

    #[test]
    fn sizes() {
        assert_eq!(core::mem::size_of::<Neighbour>(), 26);
        assert_eq!(core::mem::size_of::<Arp>(), 22);
    }

    #[test]
    fn solicitation_and_advert() {
        let ns = parse_ndp(&hex(NS)).unwrap();
        assert_eq!(ns.kind, NdpKind::NeighbourSolicit);
        let target: Ipv6Addr = "2001:db8:1:2::1000".parse().unwrap();
        assert_eq!(ns.target, Some(target.octets()));
        assert_eq!(ns.link_addr, Some([0x00, 0x0c, 0x29, 0x2f, 0x80, 0x31]));
        assert!(!ns.router);
        let na = parse_ndp(&hex(NA)).unwrap();
        assert_eq!(na.kind, NdpKind::NeighbourAdvert);
        assert_eq!(na.link_addr, Some([0x00, 0x0c, 0x29, 0x1f, 0xa7, 0x55]));
        assert!(!na.router);
        let json = serde_json::to_string(&na).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"neighbour_advert","target":"2001:db8:1:2::1000","link_addr":"00:0c:29:1f:a7:55","router":false}"#
        );
        let nr = parse_ndp(&hex(NA_ROUTER)).unwrap();
        assert!(nr.router);
        assert_eq!(nr.link_addr, None);
    }

    #[test]
    fn router_messages() {
        let ra = parse_ndp(&hex(RA)).unwrap();
        assert_eq!(ra.kind, NdpKind::RouterAdvert);
        assert!(ra.router);
        assert_eq!(ra.target, None);
        assert_eq!(ra.link_addr, Some([0x40, 0x55, 0x39, 0xc0, 0x3a, 0x80]));
        let rs = parse_ndp(&hex(RS)).unwrap();
        assert_eq!(rs.kind, NdpKind::RouterSolicit);
        assert_eq!((rs.target, rs.link_addr, rs.router), (None, None, false));
    }

    #[test]
    fn rejects() {
        // Echo request, redirect, non-zero code, truncated target.
        assert_eq!(parse_ndp(&hex("80000000000100010203")), None);
        assert_eq!(parse_ndp(&hex("89000000000000000000")), None);
        let mut ns = hex(NS);
        ns[1] = 1;
        assert_eq!(parse_ndp(&ns), None);
        assert_eq!(parse_ndp(&hex(NS)[..23]), None);
        // Zero-length option: stop, keep the message.
        let mut ns = hex(NS);
        ns[25] = 0;
        let n = parse_ndp(&ns).unwrap();
        assert_eq!(n.link_addr, None);
        assert!(n.target.is_some());
        // Option claiming more than is there.
        let mut ns = hex(NS);
        ns[25] = 9;
        assert_eq!(parse_ndp(&ns).unwrap().link_addr, None);
        // A 16-byte link-layer option is not an Ethernet MAC.
        let mut ns = hex(NS);
        ns[25] = 2;
        ns.extend([0u8; 8]);
        assert_eq!(parse_ndp(&ns).unwrap().link_addr, None);
    }

    #[test]
    fn arp() {
        let req = parse_arp(&hex(ARP_REQ)).unwrap();
        assert_eq!(req.op, 1);
        assert_eq!(req.sender_mac, [0x00, 0x25, 0xb3, 0xbf, 0x91, 0xee]);
        assert_eq!(req.sender_ip, [172, 16, 0, 1]);
        assert_eq!(req.target_mac, [0; 6]);
        assert_eq!(req.target_ip, [172, 16, 0, 107]);
        assert!(!req.gratuitous());
        let rep = parse_arp(&hex(ARP_REP)).unwrap();
        assert_eq!(rep.op, 2);
        assert_eq!(
            serde_json::to_string(&rep).unwrap(),
            r#"{"op":2,"sender_mac":"00:21:70:c0:56:f0","sender_ip":"172.16.0.107","target_mac":"00:25:b3:bf:91:ee","target_ip":"172.16.0.1"}"#
        );
        // Not Ethernet/IPv4, or short.
        let mut other = hex(ARP_REQ);
        other[1] = 6;
        assert_eq!(parse_arp(&other), None);
        assert_eq!(parse_arp(&hex(ARP_REQ)[..27]), None);
    }

    #[test]
    fn every_prefix_and_mutations_never_panic() {
        let mut seed = 0xdead_beef_cafe_f00du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for sample in [NS, NA, NA_ROUTER, RA, RS, ARP_REQ, ARP_REP].map(hex) {
            for cut in 0..=sample.len() {
                let _ = parse_ndp(&sample[..cut]);
                let _ = parse_arp(&sample[..cut]);
            }
            for _ in 0..3000 {
                let mut m = sample.clone();
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % m.len();
                    m[i] = next() as u8;
                }
                let _ = parse_ndp(&m);
                let _ = parse_arp(&m);
            }
        }
    }
}
