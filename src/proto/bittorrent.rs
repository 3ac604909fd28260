//! BitTorrent recogniser: the TCP peer-wire handshake (BEP 3) and, over UDP, DHT KRPC
//! messages (BEP 5), uTP packets (BEP 29), the UDP tracker connect request (BEP 15) and Local
//! Service Discovery (BEP 14), whatever the port.
//!
//! BitTorrent matters to botd twice: it is heavy benign peer-to-peer traffic that looks like a
//! bot's fan-out, and botnets (Mozi, and others) ride its DHT for their own peer discovery.
//!
//! How much a match says (false-positive character):
//! - handshake, tracker connect, LSD: fixed magic of 8 to 20 bytes at the start; essentially
//!   never matched by anything else.
//! - KRPC: the whole datagram must be one well-formed bencoded dictionary with a `y` key of
//!   `q`, `r` or `e` and a `t` key; only another bencode-speaking protocol could match.
//! - uTP: only a 20-byte header of version 1 and type 0..4 and a well-formed extension chain
//!   are checked (the rest is sequence numbers and timestamps). About 1 in 65,000 uniformly
//!   random datagrams pass, but binary protocols that open with `01 00` are not random: treat a
//!   uTP match as weak, and trust it when several datagrams of a flow match.
//!
//! Encrypted peer-wire (MSE/PE) handshakes are random bytes and are not recognised.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;

use super::copy_printable;
use serde::Serialize;

/// `\x13BitTorrent protocol`: the peer-wire handshake's length byte and protocol string.
const HANDSHAKE: &[u8; 20] = b"\x13BitTorrent protocol";

/// The UDP tracker protocol's connect request magic (`0x41727101980`) and action 0.
const TRACKER_CONNECT: &[u8; 12] = b"\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00";

/// uTP header length.
const UTP_HEADER: usize = 20;

/// Extensions followed in a uTP header before giving up.
const MAX_UTP_EXTENSIONS: usize = 8;

/// Bencode nesting accepted in a KRPC message (real ones nest two or three deep).
const MAX_BENCODE_DEPTH: usize = 8;

/// Bencode items walked in a KRPC message before giving up.
const MAX_BENCODE_ITEMS: usize = 512;

/// What botd keeps of BitTorrent traffic. `size_of` is 29 bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BittorrentSummary {
    /// A peer-wire handshake was seen.
    pub handshake: bool,
    /// The first 8 bytes of the first handshake's peer id: Azureus-style ids name the client
    /// and version (`-qB4250-`, `-lt20A0-`, `-TR3000-`). Non-printable bytes stored as `.`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub peer_id_prefix: String<8, u8>,
    /// The first KRPC query's method (`ping`, `find_node`, `get_peers`, `announce_peer`).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub dht_query: String<16, u8>,
    /// KRPC messages seen (saturating).
    pub dht: u8,
    /// uTP packets seen (saturating).
    pub utp: u8,
}

/// A TCP flow's first bytes in either direction: the peer-wire handshake.
pub fn looks_like_bittorrent(p: &[u8]) -> bool {
    p.starts_with(HANDSHAKE)
}

/// A UDP datagram that is BitTorrent: KRPC, uTP, a tracker connect request or an LSD
/// announce (see the module documentation for how much each says).
pub fn looks_like_bittorrent_udp(p: &[u8]) -> bool {
    looks_like_krpc(p)
        || looks_like_utp(p)
        || p.starts_with(TRACKER_CONNECT) && p.len() == 16
        || p.starts_with(b"BT-SEARCH * HTTP/1.1\r\n")
}

/// A DHT KRPC message: one well-formed bencoded dictionary filling the datagram, with a
/// transaction id `t` and a type `y` of `q` (query), `r` (response) or `e` (error).
pub fn looks_like_krpc(p: &[u8]) -> bool {
    p.starts_with(b"d")
        && bencode_len(p) == Some(p.len())
        && keys_are_strings(p)
        && dict_value(p, b"t").is_some()
        && dict_value(p, b"y").is_some_and(|y| matches!(y, b"1:q" | b"1:r" | b"1:e"))
}

/// A uTP packet: version 1, type ST_DATA..ST_SYN, a well-formed extension chain, payload only
/// on ST_DATA; and not a STUN message or a DNS query or response, whose first bytes can read
/// as a uTP header (both were seen doing so in the shared captures).
pub fn looks_like_utp(p: &[u8]) -> bool {
    utp_payload(p).is_some() && !is_stun(p) && !is_dns(p)
}

/// The data after a uTP header and its extensions (empty for all but ST_DATA), if `p` is a
/// well-formed uTP packet.
fn utp_payload(p: &[u8]) -> Option<&[u8]> {
    let (header, mut rest) = p.split_first_chunk::<UTP_HEADER>()?;
    let [type_version, mut ext, ..] = *header;
    let kind = type_version >> 4;
    if type_version & 0x0f != 1 || kind > 4 || ext > 3 {
        return None;
    }
    for _ in 0..MAX_UTP_EXTENSIONS {
        if ext == 0 {
            break;
        }
        let (&[next, len], after) = rest.split_first_chunk::<2>()?;
        // Selective acks are a bitmask of whole 32-bit words.
        if next > 3 || len == 0 || (ext == 1 && len % 4 != 0) {
            return None;
        }
        let (_, after) = after.split_at_checked(usize::from(len))?;
        ext = next;
        rest = after;
    }
    // ST_DATA carries payload; ST_FIN, ST_STATE, ST_RESET and ST_SYN carry none.
    (ext == 0 && (kind == 0) != rest.is_empty()).then_some(rest)
}

/// STUN (RFC 5389): the magic cookie at bytes 4..8.
fn is_stun(p: &[u8]) -> bool {
    p.get(4..8) == Some(&[0x21, 0x12, 0xa4, 0x42][..])
}

/// DNS: one question whose name (at byte 12) is well-formed labels ending in a zero byte,
/// followed by its type and class.
fn is_dns(p: &[u8]) -> bool {
    if p.get(4..6) != Some(&[0, 1][..]) {
        return false;
    }
    let mut pos = 12usize;
    for _ in 0..128 {
        match p.get(pos) {
            Some(0) => return pos.checked_add(5).is_some_and(|end| end <= p.len()),
            Some(&n) if n <= 63 => {
                pos = match pos
                    .checked_add(usize::from(n))
                    .and_then(|x| x.checked_add(1))
                {
                    Some(x) => x,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

impl BittorrentSummary {
    /// Takes one payload (TCP segment or UDP datagram); `from_client` is not needed.
    pub fn update(&mut self, payload: &[u8], _from_client: bool) {
        let mut handshake = payload;
        if looks_like_utp(payload) {
            self.utp = self.utp.saturating_add(1);
            // The peer-wire protocol runs inside uTP's ST_DATA packets as it does over TCP.
            handshake = utp_payload(payload).unwrap_or_default();
        }
        if looks_like_bittorrent(handshake) {
            if !self.handshake {
                // 1 + 19 protocol + 8 reserved + 20 info hash, then the 20-byte peer id.
                if let Some(peer_id) = handshake.get(48..56) {
                    copy_printable(&mut self.peer_id_prefix, peer_id);
                }
            }
            self.handshake = true;
        } else if looks_like_krpc(payload) {
            self.dht = self.dht.saturating_add(1);
            if self.dht_query.is_empty()
                && dict_value(payload, b"y") == Some(b"1:q")
                && let Some(q) = dict_value(payload, b"q").and_then(bstring)
            {
                copy_printable(&mut self.dht_query, q);
            }
        }
    }
}

/// Length of the bencoded item at the start of `p`, walked without recursion and bounded in
/// depth and item count; `None` if malformed or cut.
fn bencode_len(p: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    let mut depth = 0usize;
    for _ in 0..MAX_BENCODE_ITEMS {
        match *p.get(pos)? {
            b'd' | b'l' => {
                depth = depth.checked_add(1).filter(|d| *d <= MAX_BENCODE_DEPTH)?;
                pos = pos.checked_add(1)?;
                continue;
            }
            b'e' => {
                depth = depth.checked_sub(1)?;
                pos = pos.checked_add(1)?;
            }
            b'i' => {
                let rest = p.get(pos.checked_add(1)?..)?;
                let end = rest.iter().position(|&b| b == b'e')?;
                let digits = rest.get(..end)?;
                let digits = digits.strip_prefix(b"-").unwrap_or(digits);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                pos = pos.checked_add(end)?.checked_add(2)?;
            }
            b'0'..=b'9' => pos = pos.checked_add(string_item_len(p.get(pos..)?)?)?,
            _ => return None,
        }
        if depth == 0 {
            return Some(pos);
        }
    }
    None
}

/// Length of a bencoded string item (`4:spam` is 6) at the start of `p`.
fn string_item_len(p: &[u8]) -> Option<usize> {
    let colon = p.iter().take(8).position(|&b| b == b':')?;
    let digits = p.get(..colon)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().try_fold(0usize, |acc, &b| {
        acc.checked_mul(10)?
            .checked_add(usize::from(b.checked_sub(b'0')?))
    })?;
    let total = colon.checked_add(1)?.checked_add(n)?;
    (total <= p.len()).then_some(total)
}

/// The contents of a bencoded string item.
fn bstring(item: &[u8]) -> Option<&[u8]> {
    let colon = item.iter().position(|&b| b == b':')?;
    item.get(colon.checked_add(1)?..)
}

/// Every key of the top-level bencoded dictionary `d` is a string, up to its end.
fn keys_are_strings(d: &[u8]) -> bool {
    let Some(mut rest) = d.strip_prefix(b"d") else {
        return false;
    };
    for _ in 0..MAX_BENCODE_ITEMS {
        if rest == b"e" {
            return true;
        }
        let Some(after) = string_item_len(rest).and_then(|n| rest.get(n..)) else {
            return false;
        };
        let Some(next) = bencode_len(after).and_then(|n| after.get(n..)) else {
            return false;
        };
        rest = next;
    }
    false
}

/// The raw value item of `key` in the top-level bencoded dictionary `d`.
fn dict_value<'a>(d: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut rest = d.strip_prefix(b"d")?;
    for _ in 0..MAX_BENCODE_ITEMS {
        if rest.starts_with(b"e") {
            return None;
        }
        let klen = string_item_len(rest)?;
        let (k, after) = rest.split_at_checked(klen)?;
        let vlen = bencode_len(after)?;
        let (v, after) = after.split_at_checked(vlen)?;
        if bstring(k) == Some(key) {
            return Some(v);
        }
        rest = after;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::{XorShift, hex};

    // No BitTorrent handshake, DHT or uTP is in the shared captures (one capture holds
    // mid-stream piece data only). These are real packets from libtorrent 2.0.8 (Debian's
    // python3-libtorrent): a seeder and two leechers on loopback, captured with tcpdump.
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 50
    const HANDSHAKE_OUT: &str = "13426974546f7272656e742070726f746f636f6c0000000000100015ecbcf67e13250758767ca5151994f931510beca12d4c54323038302d30676e342d2a322a215f3030";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 56
    const HANDSHAKE_IN: &str = "13426974546f7272656e742070726f746f636f6c00000000001000050a59c4dddbca80ecf3288786101592f4180e4cab2d4c54323038302d534e6238374d58554f517028000000ca14006431323a636f6d706c6574655f61676f692d3165313a6d6431313a6c745f646f6e746861766569376531303a73686172655f6d6f646569386531313a75706c6f61645f6f6e6c7969336531323a75745f686f6c6570756e636869346531313a75745f6d65746164617461693265363a75745f7065786931656531333a6d657461646174615f73697a656938323865343a7265717169323030306531313a75706c6f61645f6f6e6c79693165313a76393a627467656e2f312e30363a796f75726970343a7f00000165000000010e00000003091ae10000000101";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 1
    const DHT_GET_PEERS: &str = "64313a6164323a6273693165323a696432303a0b122640ac7c1f51894b3ec9afce4a62a7b21603393a696e666f5f6861736832303a0b122640ac7c1f51894b3ec97cef22fe0c51419065313a71393a6765745f7065657273313a74323a0eaf313a76343a4c540208313a79313a7165";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 3
    const DHT_RESPONSE: &str = "64323a6970363a7f0000011ae1313a7264323a696432303a0b122640ac7c1f51894b3ec9afce4a62a7b21603353a6e6f646573303a313a70693638383165353a746f6b656e343ab7502b5565313a74323a0eaf313a76343a4c540208313a79313a7265";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 33
    const DHT_ANNOUNCE: &str = "64313a6164323a696432303a0b122640ac7c1f51894b3ec9afce4a62a7b2160331323a696d706c6965645f706f7274693165393a696e666f5f6861736832303aecbcf67e13250758767ca5151994f931510beca1343a706f7274693638383165343a73656564693165353a746f6b656e343ae501840165313a7131333a616e6e6f756e63655f70656572313a74323a2202313a76343a4c540208313a79313a7165";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 138
    const UTP_SYN: &str = "41002fa68f45a0f80000000000000000142a0000";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 142
    const UTP_STATE: &str = "21002fa68f45a1990000008d001000004a3d142a";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 192
    const UTP_DATA_HANDSHAKE: &str = "01002fa78f45a4390000008000100000142b4a3c13426974546f7272656e742070726f746f636f6c00000000001000050a59c4dddbca80ecf3288786101592f4180e4cab2d4c54323038302d487059614e534b5330743161";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 725
    const UTP_FIN_CLOSE_REASON: &str = "11032fa78f45bea30000005500100000143f4b38000400000006";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 729
    const UTP_STATE_CLOSE_REASON: &str = "21032fa78f45bf750000002800100000143f4b39000400000006";
    /// libtorrent 2.0.8 on loopback (survey/bt_gen.py), frame 19
    const TRACKER_CONNECT: &str = "000004172710198000000000d65124f4";
    /// chrissanders-packets/ppa1e/evilprogram.pcap, udp.stream==1, payload 0
    const DNS_0100_0: &str =
        "0100010000010000000000000f7570646174656b656570616c697665066d636166656503636f6d0000010001";
    /// chrissanders-packets/ppa1e/evilprogram.pcap, udp.stream==1, payload 1
    const DNS_0100_1: &str = "0100818000010001000200020f7570646174656b656570616c697665066d636166656503636f6d0000010001c00c0001000100001b880004d8315876c01c000200010001f326000a07617574686e7362c01cc01c000200010001f32600080573636e7331c01cc04800010001000210580004d8315181c05e00010001000210580004d8315c34";
    /// malcolm-pcap/protocols/STUN.pcap, udp.stream==0, payload 1
    const STUN_0101: &str = "0101002c2112a4422598a65b9710b89865bc34400020000800015b2ae1841fac00080014f493acdab4af84cc57677e1584af9e25cf59526d802800046eef2e05";

    #[test]
    fn size() {
        assert_eq!(core::mem::size_of::<BittorrentSummary>(), 29);
    }

    #[test]
    fn tcp_handshakes() {
        for h in [HANDSHAKE_OUT, HANDSHAKE_IN] {
            assert!(looks_like_bittorrent(&hex(h)));
            assert!(!looks_like_bittorrent_udp(&hex(h)));
        }
        let mut s = BittorrentSummary::default();
        s.update(&hex(HANDSHAKE_OUT), true);
        s.update(&hex(HANDSHAKE_IN), false);
        assert!(s.handshake);
        assert_eq!(s.peer_id_prefix, "-LT2080-");
        assert!(!looks_like_bittorrent(&hex(HANDSHAKE_OUT)[..19]));
    }

    #[test]
    fn serializes() {
        let mut s = BittorrentSummary::default();
        s.update(&hex(DHT_GET_PEERS), true);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"handshake":false,"dht_query":"get_peers","dht":1,"utp":0}"#
        );
    }

    #[test]
    fn udp_kinds() {
        for (p, krpc, utp) in [
            (DHT_GET_PEERS, true, false),
            (DHT_RESPONSE, true, false),
            (DHT_ANNOUNCE, true, false),
            (UTP_SYN, false, true),
            (UTP_STATE, false, true),
            (UTP_DATA_HANDSHAKE, false, true),
            (UTP_FIN_CLOSE_REASON, false, true),
            (UTP_STATE_CLOSE_REASON, false, true),
            (TRACKER_CONNECT, false, false),
        ] {
            let p = hex(p);
            assert!(looks_like_bittorrent_udp(&p));
            assert_eq!(looks_like_krpc(&p), krpc);
            assert_eq!(looks_like_utp(&p), utp);
            assert!(!looks_like_bittorrent(&p));
        }
        assert!(looks_like_bittorrent_udp(
            b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n\r\n"
        ));
    }

    #[test]
    fn summary_over_udp() {
        let mut s = BittorrentSummary::default();
        for p in [
            DHT_RESPONSE,
            DHT_GET_PEERS,
            DHT_ANNOUNCE,
            UTP_SYN,
            UTP_STATE,
            UTP_DATA_HANDSHAKE,
            TRACKER_CONNECT,
        ] {
            s.update(&hex(p), true);
        }
        assert_eq!(s.dht, 3);
        assert_eq!(s.dht_query, "get_peers");
        assert_eq!(s.utp, 3);
        // The handshake inside uTP's first ST_DATA.
        assert!(s.handshake);
        assert_eq!(s.peer_id_prefix, "-LT2080-");
    }

    /// Packets from the shared captures whose first bytes read as a uTP header.
    #[test]
    fn dns_and_stun_are_not_utp() {
        for p in [DNS_0100_0, DNS_0100_1, STUN_0101] {
            let p = hex(p);
            assert!(
                utp_payload(&p).is_some(),
                "the header check alone would take it"
            );
            assert!(!looks_like_bittorrent_udp(&p));
        }
    }

    #[test]
    fn krpc_must_be_whole_and_well_formed() {
        let good = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert!(looks_like_krpc(good));
        for n in 0..good.len() {
            assert!(!looks_like_krpc(&good[..n]), "{n}");
        }
        let mut extra = good.to_vec();
        extra.push(b'x');
        assert!(!looks_like_krpc(&extra));
        for no in [
            &b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:y1:qe"[..], // no t
            b"d1:t2:aa1:y1:xe",                                        // y not q/r/e
            b"d1:t2:aa1:yi1ee",
            b"d1:t99999999999999999999999:aa1:y1:qe",
            b"d1:ti-e1:y1:qe",
            b"d1:tie1:y1:qe",
            b"l1:t2:aa1:y1:qe",
            b"de",
            b"d",
            b"",
        ] {
            assert!(!looks_like_krpc(no), "{no:?}");
        }
        assert!(!looks_like_krpc(b"d1:t2:aa1:y1:ri-5ee"), "an integer key");
        assert!(looks_like_krpc(b"d1:ti-5e1:y1:re"));
        // Nesting deeper than MAX_BENCODE_DEPTH is refused, however long.
        let mut deep = b"d1:t2:aa1:y1:q1:x".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 10_000));
        deep.extend(std::iter::repeat_n(b'e', 10_001));
        assert!(!looks_like_krpc(&deep));
    }

    #[test]
    fn utp_header_rules() {
        let syn = hex(UTP_SYN);
        let mut bad_version = syn.clone();
        bad_version[0] = 0x42;
        assert!(!looks_like_utp(&bad_version));
        let mut bad_type = syn.clone();
        bad_type[0] = 0x51;
        assert!(!looks_like_utp(&bad_type));
        let mut with_payload = syn.clone();
        with_payload.push(0);
        assert!(!looks_like_utp(&with_payload), "ST_SYN carries no payload");
        let mut data_no_payload = syn.clone();
        data_no_payload[0] = 0x01;
        assert!(!looks_like_utp(&data_no_payload), "ST_DATA carries payload");
        // A selective ack must be whole 32-bit words; the chain must fit.
        let mut sack = syn.clone();
        sack[0] = 0x21;
        sack[1] = 1;
        sack.extend_from_slice(&[0, 4, 1, 2, 3, 4]);
        assert!(looks_like_utp(&sack));
        let mut odd = sack.clone();
        odd[21] = 3;
        assert!(!looks_like_utp(&odd));
        assert!(!looks_like_utp(&sack[..sack.len() - 1]));
        let mut looping = syn.clone();
        looping[1] = 2;
        for _ in 0..20 {
            looping.extend_from_slice(&[2, 1, 0]);
        }
        assert!(
            !looks_like_utp(&looping),
            "chains longer than MAX_UTP_EXTENSIONS stop"
        );
        assert!(!looks_like_utp(&syn[..19]));
    }

    #[test]
    fn fuzz_never_panics() {
        let samples: std::vec::Vec<std::vec::Vec<u8>> = [
            HANDSHAKE_OUT,
            HANDSHAKE_IN,
            DHT_GET_PEERS,
            DHT_RESPONSE,
            DHT_ANNOUNCE,
            UTP_SYN,
            UTP_DATA_HANDSHAKE,
            UTP_FIN_CLOSE_REASON,
            TRACKER_CONNECT,
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        for p in &samples {
            for n in 0..=p.len() {
                let mut s = BittorrentSummary::default();
                s.update(&p[..n], true);
                let _ = (
                    looks_like_bittorrent(&p[..n]),
                    looks_like_bittorrent_udp(&p[..n]),
                );
            }
        }
        let mut rng = XorShift::new(0x1357_9bdf_2468_ace0);
        let mut random_utp = 0u32;
        for round in 0..6000 {
            let mut p = samples[rng.below(samples.len())].clone();
            rng.mutate(&mut p, 6, b"e:9", 6);
            let mut s = BittorrentSummary::default();
            s.update(&p, true);
            let _ = (looks_like_bittorrent(&p), looks_like_bittorrent_udp(&p));
            // Uniformly random datagrams: uTP's weak check should almost never pass.
            let len = 20 + (rng.next() % 200) as usize;
            let r: std::vec::Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if looks_like_bittorrent_udp(&r) {
                random_utp += 1;
            }
            let _ = round;
        }
        assert!(random_utp <= 2, "{random_utp} random datagrams matched");
    }
}
