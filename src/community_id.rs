//! Community ID v1 flow hashes (<https://github.com/corelight/community-id-spec>): the string
//! Zeek, Suricata and Elastic attach to a connection, so one flow can be looked up across tools.
//!
//! SHA-1 over seed, ordered addresses, protocol, a pad byte and ordered ports, rendered as
//! `1:` and the base64 of the digest. Nothing is allocated: [`CommunityId`] is 30 bytes on the
//! stack.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;
use std::net::IpAddr;

use sha1::{Digest, Sha1};

use crate::flow::Flow;
use crate::flow::state::first_packet_reversed_icmp;
use crate::wire::{Addr, proto};

/// SCTP's protocol number: one of the spec's port-carrying protocols.
const SCTP: u8 = 132;

/// `1:` and 28 base64 characters (20 digest bytes, one `=` of padding).
const LEN: usize = 30;

/// A Community ID string, e.g. `1:LQU9qZlK+B5F3KDmev6m5PMibrg=`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunityId([u8; LEN]);

impl CommunityId {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the array, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
    pub fn as_bytes(&self) -> &[u8; LEN] {
        &self.0
    }
}

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunityId({})", self.as_str())
    }
}

/// The Community ID v1 of a flow tuple, as the spec computes it for one packet: for TCP, UDP and
/// SCTP the ports; for ICMP and ICMPv6 the message type as `src_port` and the code as
/// `dst_port`; other protocols hash without ports (the ports given are ignored).
pub fn v1(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> CommunityId {
    hash(
        seed,
        Addr::from(src),
        Addr::from(dst),
        proto,
        src_port,
        dst_port,
    )
}

/// The Community ID of a flow record; `None` for ARP, which is not IP and has none.
///
/// ICMP records are hashed from their first message as it was sent: Argus-style records print
/// a flow opened by a reply from the requester's side (and an IPv4 one turned around by a later
/// request from the replier's), and keep the type and code in `Sport` packed (IPv4) or as the
/// request's class (IPv6), so the type, code and sender come from the flow's protocol state.
pub fn of_flow(flow: &Flow, seed: u16) -> Option<CommunityId> {
    let (src, dst, sport, dport) = match flow.proto {
        proto::ARP => return None,
        proto::ICMP | proto::ICMPV6 => {
            let (t, c) = (flow.state.icmp_type, flow.state.icmp_code);
            // Whether the record's Src is not the first message's sender.
            let flipped = if flow.proto == proto::ICMP {
                first_packet_reversed_icmp(t) != flow.state.icmp_turned
            } else {
                t == 129
            };
            let (s, d) = if flipped {
                (flow.dst, flow.src)
            } else {
                (flow.src, flow.dst)
            };
            (s, d, u16::from(t), u16::from(c))
        }
        _ => (flow.src, flow.dst, flow.sport, flow.dport),
    };
    Some(hash(seed, src, dst, flow.proto, sport, dport))
}

/// The counterpart of a two-way ICMP message type (request <-> reply), as Zeek and the spec
/// pair them; `None` for one-way messages.
fn icmp_counterpart(v6: bool, t: u8) -> Option<u8> {
    let pair = if v6 {
        match t {
            128 => 129,
            129 => 128,
            130 => 131,
            131 => 130,
            133 => 134,
            134 => 133,
            135 => 136,
            136 => 135,
            139 => 140,
            140 => 139,
            144 => 145,
            145 => 144,
            _ => return None,
        }
    } else {
        match t {
            8 => 0,
            0 => 8,
            13 => 14,
            14 => 13,
            15 => 16,
            16 => 15,
            10 => 9,
            9 => 10,
            17 => 18,
            18 => 17,
            _ => return None,
        }
    };
    Some(pair)
}

fn hash(seed: u16, src: Addr, dst: Addr, proto_nr: u8, sport: u16, dport: u16) -> CommunityId {
    let (ports, one_way) = match proto_nr {
        proto::TCP | proto::UDP | SCTP => (Some((sport, dport)), false),
        proto::ICMP | proto::ICMPV6 => {
            // Both types are 8-bit; anything above cannot be a type.
            let t = u8::try_from(sport).unwrap_or(u8::MAX);
            match icmp_counterpart(proto_nr == proto::ICMPV6, t) {
                Some(pair) => (Some((sport, u16::from(pair))), false),
                // One-way messages keep their direction: no reply will need pairing.
                None => (Some((sport, dport)), true),
            }
        }
        _ => (None, false),
    };
    let a = addr_bytes(&src);
    let b = addr_bytes(&dst);
    let (p, q) = ports.unwrap_or((0, 0));
    // The spec's order: the smaller address first, the smaller port on equal addresses
    // (compared as network-order bytes, which is numeric order).
    let keep = one_way || a < b || (a == b && ports.is_some() && p < q);
    let (a, b, p, q) = if keep { (a, b, p, q) } else { (b, a, q, p) };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(a);
    h.update(b);
    h.update([proto_nr, 0]);
    if ports.is_some() {
        h.update(p.to_be_bytes());
        h.update(q.to_be_bytes());
    }
    render(&h.finalize().into())
}

/// The address as hashed: 4 bytes for IPv4, 16 for IPv6.
fn addr_bytes(a: &Addr) -> &[u8] {
    if a.v6 {
        &a.bytes
    } else {
        a.bytes.first_chunk::<4>().map_or(&[][..], |b| &b[..])
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `1:` and the standard (padded) base64 of the digest.
fn render(digest: &[u8; 20]) -> CommunityId {
    let sym = |v: u32| B64.get((v & 63) as usize).copied().unwrap_or(b'=');
    let mut out = [b'='; LEN];
    out[0] = b'1';
    out[1] = b':';
    // 20 bytes: six whole 3-byte groups, then two bytes (three symbols and one `=`).
    let (groups, tail) = digest.as_chunks::<3>();
    let mut dst = out.iter_mut().skip(2);
    for &[x, y, z] in groups {
        let v = u32::from(x) << 16 | u32::from(y) << 8 | u32::from(z);
        for shift in [18, 12, 6, 0] {
            if let Some(o) = dst.next() {
                *o = sym(v >> shift);
            }
        }
    }
    if let [x, y] = *tail {
        let v = u32::from(x) << 16 | u32::from(y) << 8;
        for shift in [18, 12, 6] {
            if let Some(o) = dst.next() {
                *o = sym(v >> shift);
            }
        }
    }
    CommunityId(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::capture::LinkType;
    use crate::flow::FlowKey;

    /// The spec's baseline (baseline/baseline_deflt.json and baseline_seed1.json of
    /// community-id-spec): proto, source, destination, ports (ICMP: type and code), then the
    /// Community ID with seed 0 and with seed 1.
    const BASELINE: &[(u8, &str, &str, u16, u16, &str, &str)] = &[
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            135,
            136,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            136,
            135,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            135,
            136,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            136,
            135,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "3ffe:501:1800:2345::2",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            3,
            0,
            "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=",
            "1:lVEtCZpYu84Xqaa++3lXFyuu2n4=",
        ),
        (
            58,
            "3ffe:501:410:0:2c0:dfff:fe47:33e",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            1,
            4,
            "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
            "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8=",
        ),
        (
            58,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            "3ffe:501:0:1001::2",
            128,
            129,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "3ffe:501:0:1001::2",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            129,
            128,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "ff02::2",
            133,
            134,
            "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
            "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "ff02::1",
            134,
            133,
            "1:pkvHqCL88/tg1k4cPigmZXUtL00=",
            "1:K/ee5UCqAMAQXDorP5nSa2CGLjc=",
        ),
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            8,
            0,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "192.168.0.1",
            "192.168.0.89",
            0,
            8,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "10.0.0.1",
            "10.0.0.2",
            11,
            0,
            "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
            "1:XjUibYHaafLQ3pxQeiMI8g25q20=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            6,
            "2607:f8b0:400c:c03::1a",
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            25,
            63943,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            132,
            "192.168.170.8",
            "192.168.170.56",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            132,
            "192.168.170.56",
            "192.168.170.8",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            6,
            "66.35.250.204",
            "128.232.110.120",
            80,
            34855,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            17,
            "192.168.1.52",
            "8.8.8.8",
            54585,
            53,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            17,
            "8.8.8.8",
            "192.168.1.52",
            53,
            54585,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        // RSVP: no ports in the hash (the baseline gives none; any given are ignored).
        (
            46,
            "10.1.12.1",
            "10.1.12.2",
            0,
            0,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            "1:rYir8gphR31noO9iDRQmF/BteEI=",
        ),
        (
            46,
            "10.1.12.2",
            "10.1.12.1",
            7,
            9,
            "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=",
            "1:rYir8gphR31noO9iDRQmF/BteEI=",
        ),
    ];

    #[test]
    fn spec_baseline() {
        for &(p, s, d, sp, dp, seed0, seed1) in BASELINE {
            let (s, d) = (s.parse().unwrap(), d.parse().unwrap());
            assert_eq!(
                v1(0, s, d, p, sp, dp).as_str(),
                seed0,
                "{p} {s} {d} {sp} {dp}"
            );
            assert_eq!(
                v1(1, s, d, p, sp, dp).as_str(),
                seed1,
                "seed 1: {p} {s} {d}"
            );
        }
        // A seed changes every hash.
        let (s, d) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_ne!(v1(0, s, d, 6, 1, 2), v1(2, s, d, 6, 1, 2));
        assert_eq!(format!("{}", v1(0, s, d, 6, 1, 2)).len(), 30);
    }

    /// Raw-IP ICMP or ICMPv6 frame of the given type and code (echo id 7, sequence 1).
    fn icmp_frame(src: &str, dst: &str, t: u8, code: u8) -> Vec<u8> {
        let body = [t, code, 0, 0, 0, 7, 0, 1];
        match (src.parse().unwrap(), dst.parse().unwrap()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut f = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&body);
                f
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut f = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&body);
                f
            }
            _ => unreachable!(),
        }
    }

    /// The flow record of the given messages (source, destination, type, code), in order,
    /// through the real parser and flow code.
    fn flow_of(msgs: &[(&str, &str, u8, u8)]) -> Flow {
        let mut flow: Option<Flow> = None;
        for (i, &(s, d, t, c)) in msgs.iter().enumerate() {
            let frame = icmp_frame(s, d, t, c);
            let pkt = crate::wire::parse(LinkType::RawIp, &frame, frame.len() as u32).unwrap();
            let (key, fwd) = FlowKey::of(&pkt);
            let ts = i as u64 * 1000;
            match &mut flow {
                None => {
                    let mut f = Flow::new(key, fwd, &pkt, ts, 0);
                    f.update(&pkt, fwd, ts);
                    flow = Some(f);
                }
                Some(f) => {
                    assert_eq!(f.key, key, "one flow");
                    f.update(&pkt, fwd, ts);
                }
            }
        }
        flow.unwrap()
    }

    /// ICMP records opened by a request, by a reply, and turned around by a later request all
    /// carry the spec's hash of their messages, whatever side Argus prints as the source.
    #[test]
    fn icmp_records_hash_as_their_messages() {
        let (a, b) = ("192.168.0.89", "192.168.0.1");
        let want = "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=";
        for msgs in [
            &[(a, b, 8, 0)][..],
            &[(a, b, 8, 0), (b, a, 0, 0)],
            &[(b, a, 0, 0)],
            &[(b, a, 0, 0), (a, b, 8, 0)],
        ] {
            let f = flow_of(msgs);
            assert_eq!(of_flow(&f, 0).unwrap().as_str(), want, "{msgs:?}");
            assert_eq!(
                of_flow(&f, 1).unwrap().as_str(),
                "1:03g6IloqVBdcZlPyX8r0hgoE7kA="
            );
        }
        // The turned record prints the replier as the source: hashing the record's columns
        // as given would not have matched.
        let turned = flow_of(&[(b, a, 0, 0), (a, b, 8, 0)]);
        assert_eq!(turned.src.to_string(), b);
        // One-way: time exceeded, type 11.
        let f = flow_of(&[("10.0.0.1", "10.0.0.2", 11, 0)]);
        assert_eq!(
            of_flow(&f, 0).unwrap().as_str(),
            "1:YHxtAirCG//0OzkcVAukqKQN9xM="
        );
    }

    #[test]
    fn icmpv6_records_hash_as_their_messages() {
        let (x, y) = ("fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea");
        // Solicitation from x (advert from y): one hash; the reverse exchange: another.
        for (msgs, want) in [
            (&[(x, y, 135, 0)][..], "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
            (&[(y, x, 136, 0)], "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
            (&[(y, x, 135, 0)], "1:zavyT/cezQr1fmImYCwYnMXbgck="),
            (&[(x, y, 136, 0)], "1:zavyT/cezQr1fmImYCwYnMXbgck="),
        ] {
            assert_eq!(
                of_flow(&flow_of(msgs), 0).unwrap().as_str(),
                want,
                "{msgs:?}"
            );
        }
        let (a, b) = ("3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2");
        for msgs in [
            &[(a, b, 128, 0)][..],
            &[(b, a, 129, 0)],
            &[(b, a, 129, 0), (a, b, 128, 0)],
        ] {
            let f = flow_of(msgs);
            assert_eq!(
                of_flow(&f, 0).unwrap().as_str(),
                "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="
            );
        }
        // One-way: time exceeded, type 3; seed 1.
        let f = flow_of(&[("3ffe:501:1800:2345::2", a, 3, 0)]);
        assert_eq!(
            of_flow(&f, 1).unwrap().as_str(),
            "1:lVEtCZpYu84Xqaa++3lXFyuu2n4="
        );
    }
}
