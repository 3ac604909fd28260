//! DHCPv4 (BOOTP + options) parsing into a fixed-size summary, without allocation.
//!
//! The `dhcproto` crate named in the issue allocates a `Vec`/`String` per
//! message and option; botd parses DHCP itself so the packet path stays free of
//! allocation. Only what a host inventory needs is kept: message type, client
//! MAC, hostname, vendor class and the addresses handed out.
//!
//! Not handled: option overload (option 52, options continued in `sname`/`file`),
//! RFC 3396 long options split over several instances (the first instance is
//! used), and BOOTP without the DHCP magic cookie.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use core::net::Ipv4Addr;
use heapless::String;
use serde::Serializer;

/// Fixed BOOTP header (RFC 2131 section 2) up to the magic cookie.
const BOOTP_FIXED: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

const OPT_PAD: u8 = 0;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_MSG_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_VENDOR_CLASS: u8 = 60;
const OPT_END: u8 = 255;

/// Why a payload is not a DHCP message. A value, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DhcpError {
    /// Shorter than the 236-byte BOOTP header plus the 4-byte magic cookie.
    Truncated,
    /// `op` is neither 1 (request) nor 2 (reply).
    BadOp,
    /// No DHCP magic cookie (plain BOOTP or not BOOTP at all).
    BadCookie,
}

impl core::fmt::Display for DhcpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DhcpError::Truncated => "truncated BOOTP/DHCP message",
            DhcpError::BadOp => "BOOTP op is neither request nor reply",
            DhcpError::BadCookie => "no DHCP magic cookie",
        })
    }
}

impl core::error::Error for DhcpError {}

/// What botd keeps of one DHCP message. `size_of` is 154 bytes (checked by a test).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DhcpSummary {
    /// Option 53 (1 DISCOVER, 2 OFFER, 3 REQUEST, 4 DECLINE, 5 ACK, 6 NAK,
    /// 7 RELEASE, 8 INFORM, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_type: Option<u8>,
    /// `chaddr` when `htype` 1 and `hlen` 6 (Ethernet), else zero.
    #[serde(serialize_with = "ser_mac", skip_serializing_if = "is_zero_mac")]
    pub client_mac: [u8; 6],
    /// Option 12; bytes outside printable ASCII become `?`, cut at a NUL.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub hostname: String<64, u8>,
    /// Option 60 (e.g. `MSFT 5.0`, `android-dhcp-13`), same treatment.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub vendor_class: String<48, u8>,
    /// Hostname or vendor class was longer than its capacity and was cut.
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// An option ran past the end of the message; options before it were kept.
    #[serde(skip_serializing_if = "is_false")]
    pub options_malformed: bool,
    /// Option 50.
    #[serde(serialize_with = "ser_ip", skip_serializing_if = "Option::is_none")]
    pub requested_ip: Option<[u8; 4]>,
    /// `yiaddr` when nonzero.
    #[serde(serialize_with = "ser_ip", skip_serializing_if = "Option::is_none")]
    pub your_ip: Option<[u8; 4]>,
    /// `ciaddr` when nonzero.
    #[serde(serialize_with = "ser_ip", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<[u8; 4]>,
    /// Option 54.
    #[serde(serialize_with = "ser_ip", skip_serializing_if = "Option::is_none")]
    pub server_id: Option<[u8; 4]>,
    /// First address of option 3.
    #[serde(serialize_with = "ser_ip", skip_serializing_if = "Option::is_none")]
    pub router: Option<[u8; 4]>,
    /// First address of option 6.
    #[serde(serialize_with = "ser_ip", skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<[u8; 4]>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_mac(m: &[u8; 6]) -> bool {
    *m == [0; 6]
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

fn ser_ip<S: Serializer>(ip: &Option<[u8; 4]>, s: S) -> Result<S::Ok, S::Error> {
    match ip {
        Some(a) => s.collect_str(&Ipv4Addr::from(*a)),
        None => s.serialize_none(),
    }
}

/// Borrowed view of the BOOTP fixed header and the option area.
#[derive(Clone, Copy, Debug)]
pub struct Bootp<'a> {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub xid: u32,
    pub ciaddr: [u8; 4],
    pub yiaddr: [u8; 4],
    pub siaddr: [u8; 4],
    pub giaddr: [u8; 4],
    pub chaddr: &'a [u8; 16],
    /// Everything after the magic cookie.
    pub options: &'a [u8],
}

impl<'a> Bootp<'a> {
    /// Checks length, `op` and the magic cookie.
    pub fn parse(payload: &'a [u8]) -> Result<Self, DhcpError> {
        let (fixed, rest) = payload
            .split_first_chunk::<BOOTP_FIXED>()
            .ok_or(DhcpError::Truncated)?;
        let (cookie, options) = rest.split_first_chunk::<4>().ok_or(DhcpError::Truncated)?;
        let (head, tail) = fixed
            .split_first_chunk::<28>()
            .ok_or(DhcpError::Truncated)?;
        let [
            op,
            htype,
            hlen,
            _hops,
            x0,
            x1,
            x2,
            x3,
            _s0,
            _s1,
            _f0,
            _f1,
            rest_addrs @ ..,
        ] = *head;
        if op != 1 && op != 2 {
            return Err(DhcpError::BadOp);
        }
        if *cookie != MAGIC_COOKIE {
            return Err(DhcpError::BadCookie);
        }
        let [
            c0,
            c1,
            c2,
            c3,
            y0,
            y1,
            y2,
            y3,
            s0,
            s1,
            s2,
            s3,
            g0,
            g1,
            g2,
            g3,
        ] = rest_addrs;
        let chaddr = tail.first_chunk::<16>().ok_or(DhcpError::Truncated)?;
        Ok(Bootp {
            op,
            htype,
            hlen,
            xid: u32::from_be_bytes([x0, x1, x2, x3]),
            ciaddr: [c0, c1, c2, c3],
            yiaddr: [y0, y1, y2, y3],
            siaddr: [s0, s1, s2, s3],
            giaddr: [g0, g1, g2, g3],
            chaddr,
            options,
        })
    }

    /// The options, in order, up to END. Pad is skipped.
    pub fn options(&self) -> Options<'a> {
        Options {
            rest: self.options,
            malformed: false,
        }
    }
}

/// Iterator over `(code, value)` options; ends at END, at the end of the data,
/// or at an option whose length runs past the end (then `malformed()` is true).
pub struct Options<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl Options<'_> {
    /// An option's length ran past the end of the message.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, rest) = self.rest.split_first()?;
            match code {
                OPT_PAD => self.rest = rest,
                OPT_END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.malformed = true;
                        self.rest = &[];
                        return None;
                    };
                    let Some((value, rest)) = rest.split_at_checked(usize::from(len)) else {
                        self.malformed = true;
                        self.rest = &[];
                        return None;
                    };
                    self.rest = rest;
                    return Some((code, value));
                }
            }
        }
    }
}

/// Parses a UDP payload (port 67/68) as DHCP and keeps the summary fields.
/// The first instance of each option wins.
pub fn parse_dhcp(payload: &[u8]) -> Result<DhcpSummary, DhcpError> {
    let bootp = Bootp::parse(payload)?;
    let mut s = DhcpSummary::default();
    if bootp.htype == 1
        && bootp.hlen == 6
        && let Some(mac) = bootp.chaddr.first_chunk::<6>()
    {
        s.client_mac = *mac;
    }
    s.your_ip = nonzero(bootp.yiaddr);
    s.client_ip = nonzero(bootp.ciaddr);
    let (mut seen_host, mut seen_vendor) = (false, false);
    let mut options = bootp.options();
    for (code, value) in options.by_ref() {
        match code {
            OPT_MSG_TYPE if s.msg_type.is_none() => s.msg_type = value.first().copied(),
            OPT_HOSTNAME if !seen_host => {
                seen_host = true;
                s.truncated |= !copy_printable(value, &mut s.hostname);
            }
            OPT_VENDOR_CLASS if !seen_vendor => {
                seen_vendor = true;
                s.truncated |= !copy_printable(value, &mut s.vendor_class);
            }
            OPT_REQUESTED_IP if s.requested_ip.is_none() => s.requested_ip = ipv4(value),
            OPT_SERVER_ID if s.server_id.is_none() => s.server_id = ipv4(value),
            OPT_ROUTER if s.router.is_none() => s.router = ipv4(value),
            OPT_DNS if s.dns_server.is_none() => s.dns_server = ipv4(value),
            _ => {}
        }
    }
    s.options_malformed = options.malformed();
    Ok(s)
}

fn nonzero(a: [u8; 4]) -> Option<[u8; 4]> {
    (a != [0; 4]).then_some(a)
}

/// The first four bytes of an address option (option 3/6 lists take the first).
fn ipv4(value: &[u8]) -> Option<[u8; 4]> {
    value.first_chunk::<4>().copied()
}

/// Copies up to the first NUL, printable ASCII kept and other bytes as `?`.
/// False when `out` filled up first.
fn copy_printable<const N: usize>(value: &[u8], out: &mut String<N, u8>) -> bool {
    for &b in value.iter().take_while(|&&b| b != 0) {
        let c = if (0x20..0x7f).contains(&b) {
            char::from(b)
        } else {
            '?'
        };
        if out.push(c).is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::hex;

    /// 236 zero-ish header bytes are written as a run to keep the literals short.
    fn bootp(head: &str, options: &str) -> std::vec::Vec<u8> {
        let mut v = hex(head);
        v.resize(BOOTP_FIXED, 0);
        v.extend(hex(options));
        v
    }

    // chrissanders-packets/ppa1e/evilprogram.pcap frame 1: REQUEST, hostname GHIA.
    fn evil_request() -> std::vec::Vec<u8> {
        bootp(
            "010106009a71fd190000000000000000000000000000000000000000000347b7f2f5",
            "638253633501033d0701000347b7f2f5320418067d130c04474849415108000000474849412e3c084d53465420352e30370a010f03062c2e2f1f212bff000000",
        )
    }

    // debian-registry/pathspider/real.pcap frame 1735: ACK with router and DNS.
    fn real_ack() -> std::vec::Vec<u8> {
        bootp(
            "02010600cc169012000000000a405ec70a405ec70a405e0100000000080027d7f92b",
            "6382536335010536040a405e01330400000e103a04000006923b0400000bd80104ffffff001c040a405eff03040a405e010f0a6267736b726f742e6578511403ffff6a6f6e7465732e6267736b726f742e657806040aaec80aff",
        )
    }

    #[test]
    fn summary_fits_budget() {
        assert_eq!(core::mem::size_of::<DhcpSummary>(), 154);
    }

    #[test]
    fn request_from_real_capture() {
        let s = parse_dhcp(&evil_request()).unwrap();
        assert_eq!(s.msg_type, Some(3));
        assert_eq!(s.client_mac, [0x00, 0x03, 0x47, 0xb7, 0xf2, 0xf5]);
        assert_eq!(s.hostname, "GHIA");
        assert_eq!(s.vendor_class, "MSFT 5.0");
        assert_eq!(s.requested_ip, Some([24, 6, 125, 19]));
        assert_eq!((s.your_ip, s.client_ip, s.server_id), (None, None, None));
        assert!(!s.truncated && !s.options_malformed);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"msg_type":3,"client_mac":"00:03:47:b7:f2:f5","hostname":"GHIA","vendor_class":"MSFT 5.0","requested_ip":"24.6.125.19"}"#
        );
    }

    #[test]
    fn ack_from_real_capture() {
        let s = parse_dhcp(&real_ack()).unwrap();
        assert_eq!(s.msg_type, Some(5));
        assert_eq!(s.client_mac, [0x08, 0x00, 0x27, 0xd7, 0xf9, 0x2b]);
        assert_eq!(s.client_ip, Some([10, 64, 94, 199]));
        assert_eq!(s.your_ip, Some([10, 64, 94, 199]));
        assert_eq!(s.server_id, Some([10, 64, 94, 1]));
        assert_eq!(s.router, Some([10, 64, 94, 1]));
        assert_eq!(s.dns_server, Some([10, 174, 200, 10]));
        assert!(s.hostname.is_empty());
    }

    #[test]
    fn errors() {
        let good = evil_request();
        assert_eq!(parse_dhcp(&good[..239]), Err(DhcpError::Truncated));
        let mut bad = good.clone();
        bad[0] = 3;
        assert_eq!(parse_dhcp(&bad), Err(DhcpError::BadOp));
        let mut bad = good.clone();
        bad[237] = 0;
        assert_eq!(parse_dhcp(&bad), Err(DhcpError::BadCookie));
        // Cut inside the options: what came before is kept and flagged.
        let s = parse_dhcp(&good[..good.len() - 30]).unwrap();
        assert_eq!(s.msg_type, Some(3));
        assert_eq!(s.hostname, "GHIA");
        assert!(s.options_malformed);
        assert!(s.vendor_class.is_empty());
    }

    #[test]
    fn hostile_strings() {
        // Hostname: 200 bytes with control and high bytes; option lengths 0.
        let mut opts = hex("638253633501010c00");
        opts.extend([12, 200]);
        opts.extend((0..200u8).map(|i| if i % 50 == 7 { 0x01 } else { b'a' + i % 26 }));
        opts.extend(hex("3c03e9ff01ff"));
        let mut v = bootp("0101060000000000", "");
        v.extend(opts);
        let s = parse_dhcp(&v).unwrap();
        // The empty first option 12 wins; the second is ignored.
        assert!(s.hostname.is_empty());
        assert_eq!(s.vendor_class, "???");
        // Without the empty one, the long name is cut at 64 and flagged.
        let mut opts = hex("63825363");
        opts.extend([12, 200]);
        opts.extend((0..200u8).map(|i| if i == 7 { 0x01 } else { b'a' + i % 26 }));
        let mut v = bootp("0101060000000000", "");
        v.extend(opts);
        let s = parse_dhcp(&v).unwrap();
        assert_eq!(s.hostname.len(), 64);
        assert_eq!(&s.hostname[..9], "abcdefg?i");
        assert!(s.truncated);
        // NUL ends a string (Windows pads hostnames).
        let v = bootp("0101060000000000", "638253630c0568616c0061ff");
        assert_eq!(parse_dhcp(&v).unwrap().hostname, "hal");
        // Short address options are ignored, not misread.
        let v = bootp("0101060000000000", "638253633202c0a8ff");
        assert_eq!(parse_dhcp(&v).unwrap().requested_ip, None);
    }

    #[test]
    fn every_prefix_and_mutations_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for sample in [evil_request(), real_ack()] {
            for cut in 0..=sample.len() {
                let _ = parse_dhcp(&sample[..cut]);
            }
            for _ in 0..3000 {
                let mut m = sample.clone();
                for _ in 0..1 + next() % 4 {
                    // Mostly hit the option area, where the lengths are.
                    let i = BOOTP_FIXED + (next() as usize) % (m.len() - BOOTP_FIXED);
                    m[i] = next() as u8;
                }
                if let Ok(s) = parse_dhcp(&m) {
                    assert!(s.hostname.bytes().all(|b| (0x20..0x7f).contains(&b)));
                }
            }
        }
    }
}
