//! SSH recogniser and summary, whatever the port.
//!
//! Everything after the version exchange is encrypted, so the two identification strings
//! (RFC 4253 section 4.2, `SSH-protoversion-softwareversion [comments]`) are all there is to
//! read: brute-forcers and bots give themselves away by their library (`libssh2_1.11.0`,
//! `Go`, `paramiko`) and by scanning with it on odd ports.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;

use super::{MAX_LINES, copy_printable};
use serde::Serialize;

/// The two identification strings. `size_of` is 98 bytes: strings carry a one-byte length.
///
/// Each is the whole line without its CR LF (`SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13`), cut at
/// 48 bytes; bytes outside printable ASCII are stored as `.`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SshSummary {
    /// The client's identification string.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub client_banner: String<48, u8>,
    /// The server's identification string.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub server_banner: String<48, u8>,
}

/// `SSH-` then a protocol version `digits.digits` and `-`: `SSH-2.0-`, `SSH-1.99-`, `SSH-1.5-`.
fn is_ident(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"SSH-") else {
        return false;
    };
    let major = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(rest) = rest.get(major..).filter(|_| major > 0) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(b".") else {
        return false;
    };
    let minor = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    minor > 0 && rest.get(minor..).is_some_and(|r| r.starts_with(b"-"))
}

/// A flow's first bytes in either direction: an identification string at the very start.
///
/// Only the start is checked, although a server may send other lines first: such servers are
/// rare, and a line anywhere would match too much (mail or web text that quotes a banner).
pub fn looks_like_ssh(p: &[u8]) -> bool {
    is_ident(p)
}

impl SshSummary {
    /// Takes one payload segment of the flow, in order per direction. The first
    /// identification string of each direction is kept; a server's may follow other lines.
    pub fn update(&mut self, payload: &[u8], from_client: bool) {
        let dst = if from_client {
            &mut self.client_banner
        } else {
            &mut self.server_banner
        };
        if !dst.is_empty() {
            return;
        }
        let max = if from_client { 1 } else { MAX_LINES };
        let ident = payload
            .split(|&b| b == b'\n')
            .take(max)
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .find(|l| is_ident(l));
        if let Some(line) = ident {
            copy_printable(dst, line);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::{XorShift, hex};

    /// stratosphere-slips/pcap/test19-malicious-ssh_malicious-ssh-bruteforce.pcap, tcp.stream==2 && tcp.len>0, payload 0
    const BRUTE902_0: &str = "5353482d322e302d6c6962737368325f312e31312e300d0a";
    /// stratosphere-slips/pcap/test19-malicious-ssh_malicious-ssh-bruteforce.pcap, tcp.stream==2 && tcp.len>0, payload 1
    const BRUTE902_1: &str =
        "5353482d322e302d4f70656e5353485f392e367031205562756e74752d337562756e747531332e31310d0a";
    /// stratosphere-slips/pcap/test19-malicious-ssh_malicious-ssh-bruteforce.pcap, tcp.stream==2 && tcp.len>0, payload 2
    const BRUTE902_2: &str = "000005ec0514d372217a3e50a8c21863365fa0ebdf5800000168637572766532353531392d7368613235362c637572766532353531392d736861323536406c69627373682e6f72672c656364682d736861322d6e697374703235362c656364682d736861322d6e697374703338342c656364682d736861322d6e697374703532312c6469666669652d68656c6c6d616e2d67726f75702d65786368616e67652d7368613235362c6469666669652d68656c6c6d616e2d67726f757031362d7368613531322c6469666669652d68656c6c6d616e2d67726f757031382d7368613531322c6469666669652d68656c6c6d616e2d67726f757031342d7368613235362c6469666669652d68656c6c6d616e2d67726f757031342d736861312c6469666669652d68656c6c6d616e2d67726f7570312d736861312c6469666669652d68656c6c6d616e2d67726f75702d65786368616e67652d736861312c6578742d696e666f2d632c6b65782d7374726963742d632d763030406f70656e7373682e636f6d0000012a65636473612d736861322d6e697374703235362c65636473612d736861322d6e697374703338342c65636473612d736861322d6e697374703532312c65636473612d736861322d6e697374703235362d636572742d763031406f70656e7373682e636f6d2c65636473612d736861322d6e697374703338342d636572742d763031406f70656e7373682e636f6d2c65636473612d736861322d6e697374703532312d636572742d763031406f70656e7373682e636f6d2c7373682d656432353531392c7373682d656432353531392d636572742d763031406f70656e7373682e636f6d2c7273612d736861322d3531322c7273612d736861322d3235362c7373682d7273612c7373682d7273612d636572742d763031406f70656e7373682e636f6d2c7373682d647373000000c06165733235362d67636d406f70656e7373682e636f6d2c6165733132382d67636d406f70656e7373682e636f6d2c6165733235362d6374722c6165733139322d6374722c6165733132382d6374722c6165733235362d6362632c72696a6e6461656c2d636263406c797361746f722e6c69752e73652c6165733139322d6362632c6165733132382d6362632c626c6f77666973682d6362632c617263666f75723132382c617263666f75722c636173743132382d6362632c336465732d636263000000c06165733235362d67636d406f70656e7373682e636f6d2c6165733132382d67636d406f70656e7373682e636f6d2c6165733235362d6374722c6165733139322d6374722c6165733132382d6374722c6165733235362d6362632c72696a6e6461656c2d636263406c797361746f722e6c69752e73652c6165733139322d6362632c6165733132382d6362632c626c6f77666973682d6362632c617263666f75723132382c617263666f75722c636173743132382d6362632c336465732d636263000000c7686d61632d736861322d3235362c686d61632d736861322d3235362d65746d406f70656e7373682e636f6d2c686d61632d736861322d3531322c686d61632d736861322d3531322d65746d406f70656e7373682e636f6d2c686d61632d736861312c686d61632d736861312d65746d406f70656e7373682e636f6d2c686d61632d736861312d39362c686d61632d6d64352c686d61632d6d64352d39362c686d61632d726970656d643136302c686d61632d726970656d64313630406f70656e7373682e636f6d000000c7686d61632d736861322d3235362c686d61632d736861322d3235362d65746d406f70656e7373682e636f6d2c686d61632d736861322d3531322c686d61632d736861322d3531322d65746d406f70656e7373682e636f6d2c686d61632d736861312c686d61632d736861312d65746d406f70656e7373682e636f6d2c686d61632d736861312d39362c686d61632d6d64352c686d61632d6d64352d39362c686d61632d726970656d643136302c686d61632d726970656d64313630406f70656e7373682e636f6d000000046e6f6e65000000046e6f6e6500000000000000000000000000f4db448023";
    /// malcolm-pcap/protocols/Tunnels.pcap, tcp.stream==9 && tcp.len>0, payload 0
    const TUNNELS_0: &str = "5353482d312e39392d4f70656e5353485f332e3170310a";
    /// malcolm-pcap/protocols/Tunnels.pcap, tcp.stream==9 && tcp.len>0, payload 1
    const TUNNELS_1: &str = "5353482d322e302d4f70656e5353485f332e362e3170310a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==178 && tcp.len>0, payload 0
    const OVER443_0: &str = "5353482d322e302d4f70656e5353485f362e390d0a";
    /// malcolm-pcap/protocols/SSL.pcap, tcp.stream==178 && tcp.len>0, payload 1
    const OVER443_1: &str =
        "5353482d322e302d4f70656e5353485f362e3770312044656269616e2d352b6465623875310d0a";
    /// stratosphere-slips/pcap/test7-malicious.pcap, tcp.stream==0 && tcp.len>0, payload 0
    const RASPBIAN_0: &str = "5353482d322e302d4f70656e5353485f372e340d0a";
    /// stratosphere-slips/pcap/test7-malicious.pcap, tcp.stream==0 && tcp.len>0, payload 1
    const RASPBIAN_1: &str = "5353482d322e302d4f70656e5353485f362e37703120526173706269616e2d350d0a";
    /// stratosphere-slips/pcap/test7-malicious.pcap, tcp.stream==0 && tcp.len>0, payload 2
    const RASPBIAN_2: &str = "000005940b14b239ef7913e6389b31fc8cc16b696b1800000130637572766532353531392d7368613235362c637572766532353531392d736861323536406c69627373682e6f72672c656364682d736861322d6e697374703235362c656364682d736861322d6e697374703338342c656364682d736861322d6e697374703532312c6469666669652d68656c6c6d616e2d67726f75702d65786368616e67652d7368613235362c6469666669652d68656c6c6d616e2d67726f757031362d7368613531322c6469666669652d68656c6c6d616e2d67726f757031382d7368613531322c6469666669652d68656c6c6d616e2d67726f75702d65786368616e67652d736861312c6469666669652d68656c6c6d616e2d67726f757031342d7368613235362c6469666669652d68656c6c6d616e2d67726f757031342d736861312c6578742d696e666f2d630000012265636473612d736861322d6e697374703235362d636572742d763031406f70656e7373682e636f6d2c65636473612d736861322d6e697374703338342d636572742d763031406f70656e7373682e636f6d2c65636473612d736861322d6e697374703532312d636572742d763031406f70656e7373682e636f6d2c65636473612d736861322d6e697374703235362c65636473612d736861322d6e697374703338342c65636473612d736861322d6e697374703532312c7373682d656432353531392d636572742d763031406f70656e7373682e636f6d2c7373682d7273612d636572742d763031406f70656e7373682e636f6d2c7373682d656432353531392c7273612d736861322d3531322c7273612d736861322d3235362c7373682d7273610000008d63686163686132302d706f6c7931333035406f70656e7373682e636f6d2c6165733132382d6374722c6165733139322d6374722c6165733235362d6374722c6165733132382d67636d406f70656e7373682e636f6d2c6165733235362d67636d406f70656e7373682e636f6d2c6165733132382d6362632c6165733139322d6362632c6165733235362d6362630000008d63686163686132302d706f6c7931333035406f70656e7373682e636f6d2c6165733132382d6374722c6165733139322d6374722c6165733235362d6374722c6165733132382d67636d406f70656e7373682e636f6d2c6165733235362d67636d406f70656e7373682e636f6d2c6165733132382d6362632c6165733139322d6362632c6165733235362d636263000000d5756d61632d36342d65746d406f70656e7373682e636f6d2c756d61632d3132382d65746d406f70656e7373682e636f6d2c686d61632d736861322d3235362d65746d406f70656e7373682e636f6d2c686d61632d736861322d3531322d65746d406f70656e7373682e636f6d2c686d61632d736861312d65746d406f70656e7373682e636f6d2c756d61632d3634406f70656e7373682e636f6d2c756d61632d313238406f70656e7373682e636f6d2c686d61632d736861322d3235362c686d61632d736861322d3531322c686d61632d73686131000000d5756d61632d36342d65746d406f70656e7373682e636f6d2c756d61632d3132382d65746d406f70656e7373682e636f6d2c686d61632d736861322d3235362d65746d406f70656e7373682e636f6d2c686d61632d736861322d3531322d65746d406f70656e7373682e636f6d2c686d61632d736861312d65746d406f70656e7373682e636f6d2c756d61632d3634406f70656e7373682e636f6d2c756d61632d313238406f70656e7373682e636f6d2c686d61632d736861322d3235362c686d61632d736861322d3531322c686d61632d736861310000001a6e6f6e652c7a6c6962406f70656e7373682e636f6d2c7a6c69620000001a6e6f6e652c7a6c6962406f70656e7373682e636f6d2c7a6c6962000000000000000000000000000000000000000000000000";

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<SshSummary>(), 98);
    }

    #[test]
    fn real_banners_on_odd_ports() {
        let cases = [
            (
                BRUTE902_0,
                BRUTE902_1,
                "SSH-2.0-libssh2_1.11.0",
                "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.11",
            ),
            (
                TUNNELS_1,
                TUNNELS_0,
                "SSH-2.0-OpenSSH_3.6.1p1",
                "SSH-1.99-OpenSSH_3.1p1",
            ),
            (
                OVER443_0,
                OVER443_1,
                "SSH-2.0-OpenSSH_6.9",
                "SSH-2.0-OpenSSH_6.7p1 Debian-5+deb8u1",
            ),
            (
                RASPBIAN_0,
                RASPBIAN_1,
                "SSH-2.0-OpenSSH_7.4",
                "SSH-2.0-OpenSSH_6.7p1 Raspbian-5",
            ),
        ];
        for (c, sv, cb, sb) in cases {
            assert!(looks_like_ssh(&hex(c)) && looks_like_ssh(&hex(sv)));
            let mut s = SshSummary::default();
            s.update(&hex(sv), false);
            s.update(&hex(c), true);
            assert_eq!(s.client_banner, cb);
            assert_eq!(s.server_banner, sb);
        }
        // The key exchange that follows is not a banner and changes nothing.
        let mut s = SshSummary::default();
        s.update(&hex(BRUTE902_0), true);
        s.update(&hex(BRUTE902_2), true);
        assert_eq!(s.client_banner, "SSH-2.0-libssh2_1.11.0");
        assert!(!looks_like_ssh(&hex(BRUTE902_2)));
        assert!(!looks_like_ssh(&hex(RASPBIAN_2)));
    }

    #[test]
    fn serializes() {
        let mut s = SshSummary::default();
        assert_eq!(serde_json::to_string(&s).unwrap(), "{}");
        s.update(&hex(BRUTE902_0), true);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"client_banner":"SSH-2.0-libssh2_1.11.0"}"#
        );
    }

    #[test]
    fn version_forms() {
        for yes in [
            &b"SSH-2.0-x"[..],
            b"SSH-1.5-x",
            b"SSH-1.99-",
            b"SSH-2.0-Go\r\n",
            b"SSH-12.345-z",
        ] {
            assert!(looks_like_ssh(yes), "{yes:?}");
        }
        for no in [
            &b"SSH-"[..],
            b"SSH-2",
            b"SSH-2.",
            b"SSH-2.0",
            b"SSH-.0-x",
            b"SSH-2.-x",
            b"SSH-a.0-x",
            b"ssh-2.0-x",
            b" SSH-2.0-x",
            b"",
        ] {
            assert!(!looks_like_ssh(no), "{no:?}");
        }
    }

    #[test]
    fn server_lines_before_the_banner_and_cut_banners() {
        let mut s = SshSummary::default();
        s.update(
            b"Welcome\r\nnot yet\r\nSSH-2.0-dropbear_2020.81\r\n\x00\x00",
            false,
        );
        assert_eq!(s.server_banner, "SSH-2.0-dropbear_2020.81");
        // A client may not send other lines first.
        s.update(b"hello\r\nSSH-2.0-x\r\n", true);
        assert!(s.client_banner.is_empty());
        let mut long = b"SSH-2.0-".to_vec();
        long.extend(std::iter::repeat_n(b'\xfe', 200));
        s.update(&long, true);
        assert_eq!(s.client_banner.len(), 48);
        assert!(s.client_banner.ends_with("...."));
        // The first banner of a direction stays.
        s.update(b"SSH-2.0-other\r\n", false);
        assert_eq!(s.server_banner, "SSH-2.0-dropbear_2020.81");
    }

    #[test]
    fn fuzz_never_panics() {
        let samples: std::vec::Vec<std::vec::Vec<u8>> =
            [BRUTE902_0, BRUTE902_1, BRUTE902_2, TUNNELS_0, RASPBIAN_2]
                .iter()
                .map(|h| hex(h))
                .collect();
        for p in &samples {
            for n in 0..=p.len() {
                let mut s = SshSummary::default();
                s.update(&p[..n], true);
                s.update(&p[..n], false);
                let _ = looks_like_ssh(&p[..n]);
            }
        }
        let mut rng = XorShift::new(0xdead_beef_cafe_f00d);
        for _ in 0..4000 {
            let mut p = samples[rng.below(samples.len())].clone();
            rng.mutate(&mut p, 6, b"\n", 2);
            let mut s = SshSummary::default();
            s.update(&p, rng.next().is_multiple_of(2));
            if looks_like_ssh(&p) {
                assert!(p.starts_with(b"SSH-"));
            }
        }
    }
}
