//! Application-protocol parsers: functions from a payload's bytes to borrowed views, copied into
//! fixed-size summaries (`heapless` strings and lists) that a flow keeps. None allocates, none
//! panics on any input; what cannot be read is an error value, counted by the caller.
//!
//! Which payloads are worth reading at all is decided here too ([`worth_inspecting`]), from the
//! first bytes alone, so that the engine copies only those while it defers packets and the same
//! payloads reach a flow whichever way the engine is driven.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod bittorrent;
pub mod dhcp;
pub mod dns;
pub mod http;
pub mod irc;
pub mod mining;
pub mod ndp;
pub mod profile;
pub mod smtp;
pub mod ssh;
#[cfg(test)]
mod test_support;
pub mod tls;

use crate::wire::{Packet, proto};

/// Most payload bytes of one packet a flow reads (a ClientHello fits; later bytes are not read).
pub const PAYLOAD_CAP: usize = 2048;

/// UDP ports whose payload is DNS (DNS, mDNS, LLMNR).
pub fn dns_port(port: u16) -> bool {
    matches!(port, 53 | 5353 | 5355)
}

/// UDP ports of DHCP (server 67, client 68).
pub fn dhcp_port(port: u16) -> bool {
    matches!(port, 67 | 68)
}

/// Whether a packet's payload may say something a flow summary keeps: a cheap look at its first
/// bytes. TCP: a TLS handshake record, or text (the line protocols, HTTP, stratum's JSON, the
/// BitTorrent handshake), or DNS on port 53; UDP: DNS, DHCP or BitTorrent; ICMPv6 neighbour
/// discovery and ARP. Bulk encrypted data (TLS application records, SSH after its banners) and
/// binary streams fail at the first byte.
#[inline]
pub fn worth_inspecting(pkt: &Packet, payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match pkt.proto {
        proto::TCP => {
            first == 0x16
                || first == 0x13
                || first == b'{'
                || (first.is_ascii_graphic() && payload.get(1).is_none_or(|b| is_text(*b)))
                // An HTTP body's first segment may be an executable (ELF, Mach-O; `MZ` is text).
                || http::Executable::of(payload).is_some()
                || pkt.sport == 53
                || pkt.dport == 53
        }
        proto::UDP => {
            dns_port(pkt.sport)
                || dns_port(pkt.dport)
                || dhcp_port(pkt.sport)
                || dhcp_port(pkt.dport)
                || dns::looks_like_dns(payload)
                || bittorrent::looks_like_bittorrent_udp(payload)
        }
        proto::ICMPV6 | proto::ARP => true,
        _ => false,
    }
}

/// Most lines a text protocol's summary reads of one segment.
pub const MAX_LINES: usize = 16;

/// Up to [`MAX_LINES`] lines, split on `\n` with a trailing `\r` dropped; a last line without
/// `\n` (cut by the segment) is still returned.
pub fn lines(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    p.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take(MAX_LINES)
}

/// Appends `src` to `dst`, printable ASCII as it is and every other byte as `.`; true when `dst`
/// ran out of room (what fitted is kept).
pub fn push_printable<const N: usize>(dst: &mut heapless::String<N, u8>, src: &[u8]) -> bool {
    for &b in src {
        let c = if (0x20..0x7f).contains(&b) {
            char::from(b)
        } else {
            '.'
        };
        if dst.push(c).is_err() {
            return true;
        }
    }
    false
}

/// [`push_printable`] into an emptied `dst`.
pub fn copy_printable<const N: usize>(dst: &mut heapless::String<N, u8>, src: &[u8]) -> bool {
    dst.clear();
    push_printable(dst, src)
}

fn is_text(b: u8) -> bool {
    b.is_ascii_graphic() || b == b' ' || b == b'\r' || b == b'\n' || b == b'\t'
}

/// Serialises a hardware address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> heapless::String<17> {
    let mut s = heapless::String::new();
    for (i, b) in m.iter().enumerate() {
        let _ = core::fmt::Write::write_fmt(
            &mut s,
            format_args!("{}{b:02x}", if i == 0 { "" } else { ":" }),
        );
    }
    s
}

pub fn ser_mac_opt<S: serde::Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&fmt_mac(m)),
        None => s.serialize_none(),
    }
}

pub fn ser_ipv4_opt<S: serde::Serializer>(a: &Option<[u8; 4]>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Some(a) => s.collect_str(&std::net::Ipv4Addr::from(*a)),
        None => s.serialize_none(),
    }
}
