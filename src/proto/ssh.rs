//! SSH recogniser and summary, whatever the port.
//!
//! Everything after the version exchange is encrypted, so the two identification strings
//! (RFC 4253 section 4.2, `SSH-protoversion-softwareversion [comments]`) are all there is to
//! read: brute-forcers and bots give themselves away by their library (`libssh2_1.11.0`,
//! `Go`, `paramiko`) and by scanning with it on odd ports.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use heapless::String;
use serde::Serialize;

/// Lines a server may send before its identification string that are looked through
/// (RFC 4253 allows such lines from the server only).
const MAX_LINES: usize = 16;

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
