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
        && dict_value(p, b"t").is_some()
        && dict_value(p, b"y").is_some_and(|y| matches!(y, b"1:q" | b"1:r" | b"1:e"))
}

/// A uTP packet: version 1, type ST_DATA..ST_SYN, a well-formed extension chain, payload only
/// on ST_DATA.
pub fn looks_like_utp(p: &[u8]) -> bool {
    let Some((header, mut rest)) = p.split_first_chunk::<UTP_HEADER>() else {
        return false;
    };
    let [type_version, mut ext, ..] = *header;
    let kind = type_version >> 4;
    if type_version & 0x0f != 1 || kind > 4 || ext > 3 {
        return false;
    }
    for _ in 0..MAX_UTP_EXTENSIONS {
        if ext == 0 {
            break;
        }
        let Some((&[next, len], after)) = rest.split_first_chunk::<2>() else {
            return false;
        };
        // Selective acks are a bitmask of whole 32-bit words.
        if next > 3 || len == 0 || (ext == 1 && len % 4 != 0) {
            return false;
        }
        let Some((_, after)) = after.split_at_checked(usize::from(len)) else {
            return false;
        };
        ext = next;
        rest = after;
    }
    if ext != 0 {
        return false;
    }
    // ST_DATA carries payload; ST_FIN, ST_STATE, ST_RESET and ST_SYN carry none.
    if kind == 0 {
        !rest.is_empty()
    } else {
        rest.is_empty()
    }
}

impl BittorrentSummary {
    /// Takes one payload (TCP segment or UDP datagram); `from_client` is not needed.
    pub fn update(&mut self, payload: &[u8], _from_client: bool) {
        if looks_like_bittorrent(payload) {
            if !self.handshake {
                // 1 + 19 protocol + 8 reserved + 20 info hash, then the 20-byte peer id.
                if let Some(peer_id) = payload.get(48..56) {
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
        } else if looks_like_utp(payload) {
            self.utp = self.utp.saturating_add(1);
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

/// Replaces `dst` with `src`, bytes outside printable ASCII as `.`; true if `src` was cut.
fn copy_printable<const N: usize>(dst: &mut String<N, u8>, src: &[u8]) -> bool {
    dst.clear();
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
