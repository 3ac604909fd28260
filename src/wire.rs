//! Frame parsing: link layer, VLAN tags, IPv4/IPv6, TCP/UDP/ICMP/ICMPv6/ARP into a small `Copy`
//! summary. Each fixed header is taken as one array (`first_chunk`) when the frame holds it and
//! its fields destructured from there, with the minimum lengths and field layouts of the
//! `pnet_packet` views this used to go through; every length and offset that comes from the
//! packet itself is checked here first, so a hostile frame yields a [`ParseError`] value and
//! never a panic or an allocation.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::capture::LinkType;

/// IP protocol numbers botd treats specially.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const IGMP: u8 = 2;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    /// Not an IP protocol: botd's marker for ARP/RARP flows (255 is reserved by IANA).
    pub const ARP: u8 = 255;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_RARP: u16 = 0x8035;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// How many tunnel layers (GRE) are opened before the inner packet is taken as it is.
const MAX_TUNNEL_DEPTH: u8 = 4;

/// An address of either family, stored as 16 bytes (IPv4 in the first four) so keys stay `Copy`
/// and hash as plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr {
    pub bytes: [u8; 16],
    pub v6: bool,
}

impl Addr {
    #[inline]
    pub fn v4(o: [u8; 4]) -> Addr {
        // The four octets then zeros, made as one 16-byte value: it is stored whole, so reading
        // it back whole (hashing, comparing keys) does not stall on a partly forwarded store.
        Addr {
            bytes: u128::from(u32::from_le_bytes(o)).to_le_bytes(),
            v6: false,
        }
    }
    pub fn v6(bytes: [u8; 16]) -> Addr {
        Addr { bytes, v6: true }
    }
    pub fn to_ip(self) -> std::net::IpAddr {
        if self.v6 {
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(self.bytes))
        } else {
            let [a, b, c, d, ..] = self.bytes;
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
        }
    }
}

impl From<std::net::IpAddr> for Addr {
    fn from(ip: std::net::IpAddr) -> Addr {
        match ip {
            std::net::IpAddr::V4(a) => Addr::v4(a.octets()),
            std::net::IpAddr::V6(a) => Addr::v6(a.octets()),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_ip().fmt(f)
    }
}

/// IPv4/IPv6 fragment facts; only the first fragment carries ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fragment {
    pub id: u32,
    /// Offset in 8-byte units.
    pub offset: u16,
    pub more: bool,
}

/// What one frame says about the flow it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Packet {
    /// Length on the wire (pcap orig_len), what Argus counts as bytes.
    pub wire_len: u32,
    /// IP protocol number, or [`proto::ARP`].
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    /// TCP/UDP ports; for ICMP the type and code (as Argus prints them).
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_window: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// ICMP echo identifier and sequence (0 for other ICMP messages).
    pub icmp_id: u16,
    pub icmp_seq: u16,
    /// The part of an ICMP message Argus adds to the flow key: id and sequence of echo-like
    /// messages, the quoted destination of unreachables and redirects, and so on.
    pub icmp_aux: u32,
    /// What Argus prints as Dport for ICMP (the 16-bit key field, byte-swapped as it prints it).
    pub icmp_dport: u16,
    /// ARP opcode (1 request, 2 reply, ...).
    pub arp_op: u16,
    pub ttl: u8,
    pub tos: u8,
    /// Transport payload bytes (Argus "application bytes"), as far as the headers say.
    pub app_len: u32,
    /// DNS transaction id for UDP port 53 traffic, used to split transactions as Argus does.
    pub dns_id: Option<u16>,
    pub fragment: Option<Fragment>,
    /// Where the application payload starts in the frame and how many of its bytes were
    /// captured: for TCP and UDP the data behind the header, for ICMPv6 the message from its
    /// header (neighbour discovery), for ARP the ARP body; 0 and 0 otherwise. Read it with
    /// [`Packet::payload`].
    pub payload_off: usize,
    pub payload_cap: u32,
    /// The sender's hardware address: the Ethernet source (ARP: the sender hardware address);
    /// zeros on other link types.
    pub src_mac: [u8; 6],
}

impl Packet {
    /// The captured application payload of this packet in `frame` (the frame it was parsed from).
    #[inline]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let end = self.payload_off.saturating_add(self.payload_cap as usize);
        frame.get(self.payload_off..end).unwrap_or(&[])
    }
}

/// Records where `payload` sits, as an address: [`parse_into`] turns it into an offset in the
/// frame once the layers are read (the layers see only their own slices).
#[inline]
fn mark_payload(pkt: &mut Packet, payload: &[u8]) {
    pkt.payload_off = payload.as_ptr() as usize;
    pkt.payload_cap = u32::try_from(payload.len()).unwrap_or(u32::MAX);
}

/// Why a frame was not turned into a [`Packet`]. Counted per kind by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The link type is not one botd decodes.
    UnsupportedLink,
    /// Shorter than the link-layer header.
    TruncatedLink,
    /// Not IP or ARP (e.g. LLDP, STP, IPX): ignored, as Argus does for CTU-style output.
    NotIp,
    TruncatedIp,
    /// Version, header length or total length that cannot be right.
    BadIpHeader,
    TruncatedTransport,
    BadTransportHeader,
    TruncatedArp,
}

impl ParseError {
    pub const ALL: [ParseError; 8] = [
        ParseError::UnsupportedLink,
        ParseError::TruncatedLink,
        ParseError::NotIp,
        ParseError::TruncatedIp,
        ParseError::BadIpHeader,
        ParseError::TruncatedTransport,
        ParseError::BadTransportHeader,
        ParseError::TruncatedArp,
    ];
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn name(self) -> &'static str {
        match self {
            ParseError::UnsupportedLink => "unsupported_link",
            ParseError::TruncatedLink => "truncated_link",
            ParseError::NotIp => "not_ip",
            ParseError::TruncatedIp => "truncated_ip",
            ParseError::BadIpHeader => "bad_ip_header",
            ParseError::TruncatedTransport => "truncated_transport",
            ParseError::BadTransportHeader => "bad_transport_header",
            ParseError::TruncatedArp => "truncated_arp",
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses one frame of the given link type.
#[inline]
pub fn parse(link: LinkType, frame: &[u8], wire_len: u32) -> Result<Packet, ParseError> {
    let mut pkt = Packet::default();
    parse_into(link, frame, wire_len, &mut pkt)?;
    Ok(pkt)
}

/// [`parse`] into a packet the caller holds (overwritten whole; unspecified after an error).
#[inline]
pub fn parse_into(
    link: LinkType,
    frame: &[u8],
    wire_len: u32,
    pkt: &mut Packet,
) -> Result<(), ParseError> {
    let mut src_mac = [0u8; 6];
    let (ethertype, l3, link_header) = match link {
        LinkType::Ethernet => {
            let (ethertype, l3) = ethernet(frame)?;
            if let Some(mac) = bytes_at::<6>(frame, 6) {
                src_mac = mac;
            }
            (ethertype, l3, 0)
        }
        LinkType::RawIp => match frame.first().map(|b| b >> 4) {
            Some(4) => (ETHERTYPE_IPV4, frame, 0),
            Some(6) => (ETHERTYPE_IPV6, frame, 0),
            Some(_) => return Err(ParseError::BadIpHeader),
            None => return Err(ParseError::TruncatedLink),
        },
        LinkType::Ipv4 => (ETHERTYPE_IPV4, frame, 0),
        LinkType::Ipv6 => (ETHERTYPE_IPV6, frame, 0),
        LinkType::LinuxSll => {
            let proto = be16(frame, 14).ok_or(ParseError::TruncatedLink)?;
            (proto, frame.get(16..).ok_or(ParseError::TruncatedLink)?, 16)
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(ParseError::TruncatedLink)?;
            (proto, frame.get(20..).ok_or(ParseError::TruncatedLink)?, 20)
        }
        LinkType::Null | LinkType::Loop => {
            let (&[f0, _, _, f3], rest) = frame
                .split_first_chunk::<4>()
                .ok_or(ParseError::TruncatedLink)?;
            // The family is in the writer's byte order (Null) or network order (Loop); 2 is
            // AF_INET everywhere, the AF_INET6 values differ by OS (24, 28, 30, 10).
            let af = if f0 != 0 { f0 } else { f3 };
            match af {
                2 => (ETHERTYPE_IPV4, rest, 4),
                10 | 24 | 28 | 30 => (ETHERTYPE_IPV6, rest, 4),
                _ => return Err(ParseError::NotIp),
            }
        }
        LinkType::Other(_) => return Err(ParseError::UnsupportedLink),
    };
    // Argus counts the whole Ethernet frame but only the IP packet behind other link headers.
    *pkt = Packet {
        wire_len: wire_len.saturating_sub(link_header),
        src_mac,
        ..Packet::default()
    };
    let parsed = match ethertype {
        ETHERTYPE_IPV4 => ipv4(l3, pkt, 0),
        ETHERTYPE_IPV6 => ipv6(l3, pkt, 0),
        ETHERTYPE_ARP | ETHERTYPE_RARP => arp(l3, pkt),
        _ => Err(ParseError::NotIp),
    };
    // The payload's address becomes its offset in the frame (it always lies inside the frame;
    // anything else is dropped rather than trusted).
    let off = pkt.payload_off.wrapping_sub(frame.as_ptr() as usize);
    if pkt.payload_cap == 0 || off.saturating_add(pkt.payload_cap as usize) > frame.len() {
        pkt.payload_off = 0;
        pkt.payload_cap = 0;
    } else {
        pkt.payload_off = off;
    }
    parsed
}

/// The `N` bytes at `at`, if the slice holds them.
#[inline]
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.first_chunk::<N>().copied()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    bytes_at(b, at).map(u16::from_be_bytes)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    bytes_at(b, at).map(u32::from_be_bytes)
}

/// Ethernet II with any number of 802.1Q / 802.1ad tags; returns the inner ethertype and payload.
fn ethernet(frame: &[u8]) -> Result<(u16, &[u8]), ParseError> {
    let [.., t0, t1] = *frame.first_chunk::<14>().ok_or(ParseError::TruncatedLink)?;
    let mut ethertype = u16::from_be_bytes([t0, t1]);
    let mut offset = 14;
    while matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        ethertype = be16(frame, offset + 2).ok_or(ParseError::TruncatedLink)?;
        offset += 4;
    }
    if matches!(ethertype, ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST) {
        // Argus skips the label stack and reads the IP packet behind it (version from its first
        // nibble). Bounded: each label is 4 bytes of a frame of finite length.
        loop {
            let [_, _, bottom, _] =
                bytes_at::<4>(frame, offset).ok_or(ParseError::TruncatedLink)?;
            offset += 4;
            if bottom & 0x01 != 0 {
                break;
            }
        }
        ethertype = match frame.get(offset).map(|b| b >> 4) {
            Some(4) => ETHERTYPE_IPV4,
            Some(6) => ETHERTYPE_IPV6,
            _ => return Err(ParseError::NotIp),
        };
    }
    Ok((
        ethertype,
        frame.get(offset..).ok_or(ParseError::TruncatedLink)?,
    ))
}

fn ipv4(l3: &[u8], pkt: &mut Packet, depth: u8) -> Result<(), ParseError> {
    let [
        ver_ihl,
        tos,
        len0,
        len1,
        id0,
        id1,
        frag0,
        frag1,
        ttl,
        proto,
        _,
        _,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ] = *l3.first_chunk::<20>().ok_or(ParseError::TruncatedIp)?;
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || header_len < 20 {
        return Err(ParseError::BadIpHeader);
    }
    let total_len = usize::from(u16::from_be_bytes([len0, len1]));
    // A total length below the header length is broken; a capture shorter than the total length is
    // only truncated (snaplen), so the transport header is still read from what is there.
    if total_len < header_len {
        return Err(ParseError::BadIpHeader);
    }
    pkt.src = Addr::v4([s0, s1, s2, s3]);
    pkt.dst = Addr::v4([d0, d1, d2, d3]);
    pkt.proto = proto;
    pkt.ttl = ttl;
    // DSCP and ECN together.
    pkt.tos = tos;
    // Flags in the top 3 bits (MF the lowest of them), then 13 bits of offset.
    let frag_offset = u16::from_be_bytes([frag0 & 0x1f, frag1]);
    let more = frag0 & 0x20 != 0;
    if frag_offset != 0 || more {
        pkt.fragment = Some(Fragment {
            id: u32::from(u16::from_be_bytes([id0, id1])),
            offset: frag_offset,
            more,
        });
    }
    let end = total_len.min(l3.len());
    let payload = l3.get(header_len..end).unwrap_or(&[]);
    let payload_len = total_len - header_len;
    if frag_offset != 0 {
        // Later fragments carry no transport header.
        pkt.app_len = payload_len as u32;
        return Ok(());
    }
    transport(payload, payload_len, pkt, depth)
}

/// IPv6 with hop-by-hop, routing, destination options, fragment and AH extension headers.
fn ipv6(l3: &[u8], pkt: &mut Packet, depth: u8) -> Result<(), ParseError> {
    let h = l3.first_chunk::<40>().ok_or(ParseError::TruncatedIp)?;
    let (&[b0, b1, _, _, len0, len1, next_header, hop_limit], addrs) =
        h.split_first_chunk::<8>().ok_or(ParseError::TruncatedIp)?;
    let (src, dst) = addrs
        .split_first_chunk::<16>()
        .ok_or(ParseError::TruncatedIp)?;
    let dst = dst.first_chunk::<16>().ok_or(ParseError::TruncatedIp)?;
    if b0 >> 4 != 6 {
        return Err(ParseError::BadIpHeader);
    }
    pkt.src = Addr::v6(*src);
    pkt.dst = Addr::v6(*dst);
    pkt.ttl = hop_limit;
    // Version (4 bits), traffic class (8), flow label (20).
    pkt.tos = (b0 & 0x0f) << 4 | b1 >> 4;
    let mut next = next_header;
    let mut payload_len = usize::from(u16::from_be_bytes([len0, len1]));
    let mut offset = 40;
    // Bounded: each extension header advances by at least 8 bytes, and at most 8 are followed.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let nh = *l3.get(offset).ok_or(ParseError::TruncatedIp)?;
                let len =
                    (usize::from(*l3.get(offset + 1).ok_or(ParseError::TruncatedIp)?) + 1) * 8;
                next = nh;
                offset += len;
                payload_len = payload_len.saturating_sub(len);
            }
            51 => {
                // AH: length in 4-byte units minus 2.
                let nh = *l3.get(offset).ok_or(ParseError::TruncatedIp)?;
                let len =
                    (usize::from(*l3.get(offset + 1).ok_or(ParseError::TruncatedIp)?) + 2) * 4;
                next = nh;
                offset += len;
                payload_len = payload_len.saturating_sub(len);
            }
            44 => {
                let nh = *l3.get(offset).ok_or(ParseError::TruncatedIp)?;
                let off_flags = be16(l3, offset + 2).ok_or(ParseError::TruncatedIp)?;
                let id = be32(l3, offset + 4).ok_or(ParseError::TruncatedIp)?;
                let frag = Fragment {
                    id,
                    offset: off_flags >> 3,
                    more: off_flags & 1 != 0,
                };
                pkt.fragment = Some(frag);
                next = nh;
                offset += 8;
                payload_len = payload_len.saturating_sub(8);
                // Argus 3.0.8 parses a later fragment's payload as if it were the upper-layer
                // header (so such fragments become flows of their own); botd does the same to
                // report the same flows.
                if frag.offset != 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    pkt.proto = next;
    let payload = l3.get(offset..).unwrap_or(&[]);
    let payload = payload
        .get(..payload_len.min(payload.len()))
        .unwrap_or(payload);
    transport(payload, payload_len, pkt, depth)
}

/// Reads the transport header of the first (or only) fragment. `payload_len` is the length the IP
/// header claims; `payload` is what was captured of it.
fn transport(
    payload: &[u8],
    payload_len: usize,
    pkt: &mut Packet,
    depth: u8,
) -> Result<(), ParseError> {
    match pkt.proto {
        proto::TCP => {
            let [
                sp0,
                sp1,
                dp0,
                dp1,
                q0,
                q1,
                q2,
                q3,
                a0,
                a1,
                a2,
                a3,
                off,
                flags,
                w0,
                w1,
                ..,
            ] = *payload
                .first_chunk::<20>()
                .ok_or(ParseError::TruncatedTransport)?;
            let data_offset = usize::from(off >> 4) * 4;
            if data_offset < 20 {
                return Err(ParseError::BadTransportHeader);
            }
            pkt.sport = u16::from_be_bytes([sp0, sp1]);
            pkt.dport = u16::from_be_bytes([dp0, dp1]);
            pkt.tcp_flags = flags;
            pkt.tcp_seq = u32::from_be_bytes([q0, q1, q2, q3]);
            pkt.tcp_ack = u32::from_be_bytes([a0, a1, a2, a3]);
            pkt.tcp_window = u16::from_be_bytes([w0, w1]);
            pkt.app_len = payload_len.saturating_sub(data_offset) as u32;
            if let Some(data) = payload.get(data_offset..) {
                mark_payload(pkt, data);
            }
        }
        proto::UDP => {
            let [sp0, sp1, dp0, dp1, ..] = *payload
                .first_chunk::<8>()
                .ok_or(ParseError::TruncatedTransport)?;
            pkt.sport = u16::from_be_bytes([sp0, sp1]);
            pkt.dport = u16::from_be_bytes([dp0, dp1]);
            pkt.app_len = payload_len.saturating_sub(8) as u32;
            if let Some(data) = payload.get(8..) {
                mark_payload(pkt, data);
            }
            if pkt.sport == 53 || pkt.dport == 53 {
                // The first two bytes after the 8-byte UDP header.
                pkt.dns_id = be16(payload, 8);
            }
        }
        proto::ICMP => {
            let [icmp_type, icmp_code, _, _] = *payload
                .first_chunk::<4>()
                .ok_or(ParseError::TruncatedTransport)?;
            pkt.icmp_type = icmp_type;
            pkt.icmp_code = icmp_code;
            icmp_echo_fields(payload, pkt);
            icmp_key_fields(payload, pkt);
            pkt.app_len = payload_len.saturating_sub(8) as u32;
        }
        proto::ICMPV6 => {
            let [icmp_type, icmp_code, _, _] = *payload
                .first_chunk::<4>()
                .ok_or(ParseError::TruncatedTransport)?;
            pkt.icmp_type = icmp_type;
            pkt.icmp_code = icmp_code;
            icmp_echo_fields(payload, pkt);
            pkt.app_len = payload_len.saturating_sub(8) as u32;
            // Neighbour discovery (133-137) is read from the ICMPv6 header on.
            if (133..=137).contains(&icmp_type) {
                mark_payload(pkt, payload);
            }
        }
        proto::IGMP => {
            // Argus shows the group of reports (the IGMP group field) as the destination; only
            // membership queries keep the IP destination.
            if payload.first() != Some(&0x11)
                && let Some(g) = bytes_at(payload, 4)
            {
                pkt.dst = Addr::v4(g);
            }
            pkt.app_len = payload_len as u32;
        }
        proto::GRE if depth < MAX_TUNNEL_DEPTH => {
            // Argus 3.0.8 follows GRE (version 0) carrying IP and keys the inner packet; other
            // GRE payloads (PPTP's PPP, ERSPAN, ...) stay `gre` flows between the outer addresses.
            if let Some((ethertype, inner)) = gre_payload(payload) {
                let outer = *pkt;
                pkt.fragment = None;
                let inner_result = match ethertype {
                    ETHERTYPE_IPV4 => ipv4(inner, pkt, depth + 1),
                    _ => ipv6(inner, pkt, depth + 1),
                };
                if inner_result.is_ok() {
                    return Ok(());
                }
                *pkt = outer;
            }
            pkt.app_len = payload_len as u32;
        }
        _ => {
            pkt.app_len = payload_len as u32;
        }
    }
    Ok(())
}

/// The inner ethertype and packet of a version-0 GRE header carrying IPv4 or IPv6.
fn gre_payload(payload: &[u8]) -> Option<(u16, &[u8])> {
    let flags = *payload.first()?;
    let version = payload.get(1)? & 0x07;
    let ethertype = be16(payload, 2)?;
    // Checksum/routing present (C or R), key (K), sequence number (S); source routes are not
    // followed.
    if version != 0 || flags & 0x40 != 0 {
        return None;
    }
    if !matches!(ethertype, ETHERTYPE_IPV4 | ETHERTYPE_IPV6) {
        return None;
    }
    let mut len = 4;
    if flags & 0x80 != 0 {
        len += 4;
    }
    if flags & 0x20 != 0 {
        len += 4;
    }
    if flags & 0x10 != 0 {
        len += 4;
    }
    Some((ethertype, payload.get(len..)?))
}

/// The ICMP (v4) key field Argus uses per message type, and the Dport it prints for it.
fn icmp_key_fields(payload: &[u8], pkt: &mut Packet) {
    // The quoted IP header of an error message starts after the 8-byte ICMP header.
    let inner = payload.get(8..).unwrap_or(&[]);
    match (pkt.icmp_type, pkt.icmp_code) {
        (0 | 8 | 13 | 14 | 15 | 16 | 17 | 18, _) => {
            pkt.icmp_aux = u32::from(pkt.icmp_id) << 16 | u32::from(pkt.icmp_seq);
            pkt.icmp_dport = pkt.icmp_id.swap_bytes();
        }
        (3, 0 | 1) | (5, _) => {
            if let Some(d @ [d0, d1, _, _]) = bytes_at(inner, 16) {
                pkt.icmp_aux = u32::from_be_bytes(d);
                pkt.icmp_dport = u16::from_be_bytes([d0, d1]);
            }
        }
        (3, 2) => {
            if let Some(&p) = inner.get(9) {
                pkt.icmp_aux = u32::from(p);
                pkt.icmp_dport = u16::from(p).swap_bytes();
            }
        }
        (3, 3) => {
            let ihl = usize::from(inner.first().map_or(0, |b| b & 0x0f)) * 4;
            if let (Some(&p), Some(port)) = (inner.get(9), be16(inner, ihl + 2)) {
                pkt.icmp_aux = u32::from(p) << 16 | u32::from(port);
                pkt.icmp_dport = port.swap_bytes();
            }
        }
        _ => {}
    }
}

/// Identifier and sequence sit at the same offsets in every ICMP/ICMPv6 echo-like message.
fn icmp_echo_fields(payload: &[u8], pkt: &mut Packet) {
    pkt.icmp_id = be16(payload, 4).unwrap_or(0);
    pkt.icmp_seq = be16(payload, 6).unwrap_or(0);
}

fn arp(l3: &[u8], pkt: &mut Packet) -> Result<(), ParseError> {
    // Hardware type, protocol type, their address lengths, operation, then sender hardware and
    // protocol addresses and target hardware and protocol addresses (28 bytes for Ethernet/IPv4).
    let a = l3.first_chunk::<28>().ok_or(ParseError::TruncatedArp)?;
    let (&[_, _, _, _, hw_len, proto_len, op0, op1], rest) =
        a.split_first_chunk::<8>().ok_or(ParseError::TruncatedArp)?;
    // Only Ethernet/IPv4 ARP carries addresses botd can key on.
    if hw_len != 6 || proto_len != 4 {
        return Err(ParseError::TruncatedArp);
    }
    let (Some(spa), Some(tpa)) = (bytes_at::<4>(rest, 6), bytes_at::<4>(rest, 16)) else {
        return Err(ParseError::TruncatedArp);
    };
    pkt.proto = proto::ARP;
    pkt.arp_op = u16::from_be_bytes([op0, op1]);
    if let Some(sha) = bytes_at::<6>(rest, 0) {
        pkt.src_mac = sha;
    }
    mark_payload(pkt, a.as_slice());
    pkt.src = Addr::v4(spa);
    pkt.dst = Addr::v4(tpa);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn eth_ipv4_tcp() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + 5];
        f[12] = 0x08;
        f[13] = 0x00;
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&45u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f
    }

    #[test]
    fn parses_tcp_over_ethernet() {
        let f = eth_ipv4_tcp();
        let p = parse(LinkType::Ethernet, &f, f.len() as u32).unwrap();
        assert_eq!(p.proto, proto::TCP);
        assert_eq!((p.sport, p.dport), (1234, 80));
        assert_eq!(p.src.to_string(), "10.0.0.1");
        assert_eq!(p.app_len, 5);
        assert_eq!(p.tcp_flags, 0x18);
        assert_eq!(p.ttl, 64);
    }

    #[test]
    fn vlan_tags_are_skipped() {
        let plain = eth_ipv4_tcp();
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
        f.extend_from_slice(&plain[12..]);
        let p = parse(LinkType::Ethernet, &f, f.len() as u32).unwrap();
        assert_eq!((p.sport, p.dport), (1234, 80));
    }

    #[test]
    fn broken_headers_are_errors_not_panics() {
        let mut f = eth_ipv4_tcp();
        f[14] = 0x43; // header length 12 bytes
        assert_eq!(
            parse(LinkType::Ethernet, &f, 59),
            Err(ParseError::BadIpHeader)
        );
        let f = eth_ipv4_tcp();
        for cut in 0..f.len() {
            let _ = parse(LinkType::Ethernet, &f[..cut], f.len() as u32);
        }
    }
}
