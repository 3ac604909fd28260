//! TLS handshake summary (SNI, ALPN, JA3, JA4, versions, cipher, certificate CNs) from the
//! first payload segments of a TCP flow, without allocation.
//!
//! botd parses the ClientHello itself instead of using the `tls-parser` crate (rusticata):
//! that crate allocates per message (a `Vec` of cipher suites and a `Vec` of extensions),
//! which breaks botd's no-allocation rule for per-packet parsing. Here every list is walked
//! in place over the borrowed segment bytes and JA3/JA4 are hashed as a stream.
//!
//! Limits (botd does not reassemble TCP): each call sees one segment. A record or handshake
//! message that continues into the next segment is parsed as far as the bytes go; for a
//! ClientHello that sets [`TlsSummary::hello_truncated`] and JA3/JA4 stay empty. The
//! continuation bytes of a split record at the start of the next segment are not
//! recognised (they carry no record header) and are ignored. A handshake message
//! fragmented over two records counts as truncated. SSLv2-format hellos, DTLS and QUIC are
//! ignored. TLS 1.3 certificates are encrypted, so the CN fields stay empty there.
//!
//! JA4 follows the `ja4plus` (PyPI) reference: its ALPN ends keep printable ASCII, write
//! `9` for a byte >= 0x80 and `99` for a control byte (FoxIO's spec hex-encodes a
//! non-alphanumeric end instead; no capture here has such an ALPN).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use core::fmt::Write as _;

use heapless::String;
use md5::{Digest, Md5};
use serde::Serialize;
use sha2::Sha256;

/// Longest SNI kept; DNS names are at most 253 bytes but real SNIs rarely exceed ~90.
pub const SNI_MAX: usize = 64;
/// Longest first-ALPN protocol kept (`h2`, `http/1.1`, `acme-tls/1` all fit).
pub const ALPN_MAX: usize = 8;
/// A JA4 client fingerprint is always 36 characters.
pub const JA4_LEN: usize = 36;
/// Longest certificate commonName kept (CA/B forum caps CN at 64 characters).
pub const CN_MAX: usize = 40;

/// Most non-GREASE cipher suites / extensions sorted on the stack for JA4. Real hellos carry
/// under ~150 ciphers; a hello with more gets no JA4 rather than an unbounded sort buffer.
const JA4_SORT_MAX: usize = 512;

/// Handshake facts of one TCP flow. `size_of::<TlsSummary>()` is at most 224 bytes:
/// strings use a `u8` length (`String<N, u8>`) so the 64-byte CNs fit the budget.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TlsSummary {
    /// A ClientHello (handshake type 1) was seen from the client.
    #[serde(skip_serializing_if = "is_false")]
    pub client_hello: bool,
    /// A ServerHello (handshake type 2) was seen from the server.
    #[serde(skip_serializing_if = "is_false")]
    pub server_hello: bool,
    /// First `host_name` of the server_name extension (non-UTF-8 bytes become `?`).
    #[serde(skip_serializing_if = "str_empty")]
    pub sni: String<SNI_MAX, u8>,
    /// The SNI was longer than [`SNI_MAX`] and was cut.
    #[serde(skip_serializing_if = "is_false")]
    pub sni_truncated: bool,
    /// First ALPN protocol offered by the client (cut to [`ALPN_MAX`]).
    #[serde(skip_serializing_if = "str_empty")]
    pub alpn: String<ALPN_MAX, u8>,
    /// MD5 of the JA3 string (GREASE removed, as tshark's `tls.handshake.ja3`); only for a
    /// whole ClientHello. Serialized as 32 lowercase hex characters.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_ja3")]
    pub ja3: Option<[u8; 16]>,
    /// JA4 client fingerprint (`t13d1516h2_8daaf6152771_b186095e22b6`); only for a whole hello.
    #[serde(skip_serializing_if = "str_empty")]
    pub ja4: String<JA4_LEN, u8>,
    /// Highest version offered: supported_versions without GREASE, else legacy_version
    /// (numeric maximum, as JA4 takes it: a TLS 1.3 draft code 0x7fxx exceeds 0x0304).
    #[serde(skip_serializing_if = "is_zero")]
    pub client_version: u16,
    /// The ClientHello continues beyond the bytes seen (split over segments or records).
    #[serde(skip_serializing_if = "is_false")]
    pub hello_truncated: bool,
    /// Version the server selected (supported_versions extension when present).
    #[serde(skip_serializing_if = "is_zero")]
    pub server_version: u16,
    /// Cipher suite the server selected.
    #[serde(skip_serializing_if = "is_zero")]
    pub cipher: u16,
    /// commonName of the first certificate's subject (clear-text Certificate, TLS <= 1.2).
    #[serde(skip_serializing_if = "str_empty")]
    pub cert_subject_cn: String<CN_MAX, u8>,
    /// commonName of the first certificate's issuer.
    #[serde(skip_serializing_if = "str_empty")]
    pub cert_issuer_cn: String<CN_MAX, u8>,
    /// Per-direction parse state (ChangeCipherSpec seen, certificate done); not output.
    #[serde(skip)]
    state: u8,
}

/// After ChangeCipherSpec a direction's handshake records are encrypted: stop parsing them.
const ST_CCS_CLIENT: u8 = 1;
const ST_CCS_SERVER: u8 = 2;
/// The first Certificate message was handled (successfully or not): ignore later ones.
const ST_CERT_DONE: u8 = 4;

fn is_false(b: &bool) -> bool {
    !*b
}

fn str_empty<const N: usize>(s: &String<N, u8>) -> bool {
    s.is_empty()
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

fn ser_ja3<S: serde::Serializer>(v: &Option<[u8; 16]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(d) => s.serialize_str(hex16(d).as_str()),
        None => s.serialize_none(),
    }
}

/// Lowercase hex of a 16-byte digest (JA3 form).
pub fn hex16(d: &[u8; 16]) -> String<32> {
    let mut out = String::new();
    for b in d {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// GREASE values (RFC 8701): 0x?A?A with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Cheap "is this a TLS handshake start" check for recognising TLS on any port: handshake
/// record, version 3.0..=3.4, plausible record length, ClientHello or ServerHello type, and
/// (when present) a hello shorter than 64 KiB with a 3.x legacy version.
pub fn looks_like_tls(payload: &[u8]) -> bool {
    let Some(&[ct, major, minor, l0, l1, ht]) = payload.first_chunk::<6>() else {
        return false;
    };
    let len = u16::from_be_bytes([l0, l1]);
    ct == 0x16
        && major == 3
        && minor <= 4
        && (4..=16384 + 2048).contains(&len)
        && (ht == 1 || ht == 2)
        && payload.get(6).is_none_or(|&b| b == 0)
        && payload.get(9).is_none_or(|&b| b == 3)
}

// ---------------------------------------------------------------------------------------
// Byte cursor

/// Big-endian reader over a borrowed slice; every read is checked.
#[derive(Clone, Copy, Debug)]
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&v, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let (v, rest) = self.0.split_first_chunk::<2>()?;
        self.0 = rest;
        Some(u16::from_be_bytes(*v))
    }
    fn u24(&mut self) -> Option<usize> {
        let (&[a, b, c], rest) = self.0.split_first_chunk::<3>()?;
        self.0 = rest;
        Some(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c))
    }
    /// Exactly `n` bytes, or `None` (cursor unchanged) when fewer remain.
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (v, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(v)
    }
    /// Up to `n` bytes; the flag is true when all `n` were there.
    fn take_upto(&mut self, n: usize) -> (&'a [u8], bool) {
        match self.0.split_at_checked(n) {
            Some((v, rest)) => {
                self.0 = rest;
                (v, true)
            }
            None => {
                let v = self.0;
                self.0 = &[];
                (v, false)
            }
        }
    }
}

/// Big-endian u16 values of a byte slice (a trailing odd byte is ignored).
fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2)
        .filter_map(|c| c.first_chunk::<2>().map(|a| u16::from_be_bytes(*a)))
}

/// Body of a `u8`/`u16` length-prefixed vector, cut to the bytes available.
fn vec8(b: &[u8]) -> &[u8] {
    let mut c = Cur(b);
    c.u8().map_or(&[], |n| c.take_upto(usize::from(n)).0)
}
fn vec16(b: &[u8]) -> &[u8] {
    let mut c = Cur(b);
    c.u16().map_or(&[], |n| c.take_upto(usize::from(n)).0)
}

// ---------------------------------------------------------------------------------------
// Borrowed views

/// Borrowed view of a ClientHello body (after the 4-byte handshake header). Built from as
/// many bytes as are present; `complete` says every declared length was satisfied.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientHello<'a> {
    /// legacy_version (0x0303 for TLS 1.2 and 1.3 clients).
    pub version: u16,
    /// Cipher suites, 2 bytes each (cut when truncated).
    pub cipher_suites: &'a [u8],
    /// The extensions block (without its length; cut when truncated).
    pub extensions: &'a [u8],
    /// All of the hello was present.
    pub complete: bool,
}

impl<'a> ClientHello<'a> {
    /// Parses a ClientHello body; `whole` says the handshake message length was satisfied.
    /// `None` only when not even the version is there.
    pub fn parse(body: &'a [u8], whole: bool) -> Option<Self> {
        let mut c = Cur(body);
        let mut ch = ClientHello {
            version: c.u16()?,
            ..Self::default()
        };
        let rest = (|| {
            c.take(32)?;
            let sid = usize::from(c.u8()?);
            c.take(sid)?;
            let n = usize::from(c.u16()?);
            let (cs, ok) = c.take_upto(n);
            ch.cipher_suites = cs;
            if !ok {
                return None;
            }
            let comp = usize::from(c.u8()?);
            c.take(comp)?;
            if c.0.is_empty() {
                return Some(()); // a hello without extensions
            }
            let n = usize::from(c.u16()?);
            let (ext, ok) = c.take_upto(n);
            ch.extensions = ext;
            ok.then_some(())
        })();
        ch.complete = whole && rest.is_some();
        Some(ch)
    }

    /// Cipher suites as u16 (GREASE included).
    pub fn ciphers(&self) -> impl Iterator<Item = u16> + 'a {
        u16s(self.cipher_suites)
    }

    /// Extensions as `(type, data)`; stops at the first one cut short.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions(Cur(self.extensions))
    }

    /// Data of the first extension of type `t`.
    pub fn extension(&self, t: u16) -> Option<&'a [u8]> {
        self.extensions().find(|&(ty, _)| ty == t).map(|(_, d)| d)
    }

    /// First `host_name` of the server_name extension (raw bytes).
    pub fn sni(&self) -> Option<&'a [u8]> {
        let mut c = Cur(vec16(self.extension(0x0000)?));
        while let Some(kind) = c.u8() {
            let n = usize::from(c.u16()?);
            let name = c.take(n)?;
            if kind == 0 {
                return Some(name);
            }
        }
        None
    }

    /// First protocol of the ALPN extension (raw bytes, possibly empty).
    pub fn alpn(&self) -> Option<&'a [u8]> {
        let list = vec16(self.extension(0x0010)?);
        let mut c = Cur(list);
        let n = usize::from(c.u8()?);
        c.take(n)
    }

    /// Highest non-GREASE supported_versions entry, else legacy_version.
    pub fn max_version(&self) -> u16 {
        self.extension(0x002b)
            .and_then(|d| u16s(vec8(d)).filter(|&v| !is_grease(v)).max())
            .unwrap_or(self.version)
    }
}

/// Iterator over `(type, data)` of an extensions block.
#[derive(Clone, Debug)]
pub struct Extensions<'a>(Cur<'a>);

impl<'a> Iterator for Extensions<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let mut c = self.0;
        let t = c.u16()?;
        let n = usize::from(c.u16()?);
        let d = c.take(n)?;
        self.0 = c;
        Some((t, d))
    }
}

/// Borrowed view of a ServerHello body; fields past the end of the bytes stay `None`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerHello<'a> {
    /// legacy_version.
    pub version: u16,
    /// Selected cipher suite.
    pub cipher: Option<u16>,
    /// Extensions block (cut when truncated).
    pub extensions: &'a [u8],
}

impl<'a> ServerHello<'a> {
    /// Parses a ServerHello body (after the handshake header), as far as the bytes go.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        let mut c = Cur(body);
        let mut sh = ServerHello {
            version: c.u16()?,
            ..Self::default()
        };
        // TLS 1.3 drafts before -22 (0x7f00 | n) had no session id and no compression.
        let draft = sh.version >> 8 == 0x7f && sh.version & 0xff < 22;
        let _ = (|| {
            c.take(32)?;
            if !draft {
                let sid = usize::from(c.u8()?);
                c.take(sid)?;
            }
            sh.cipher = Some(c.u16()?);
            if !draft {
                c.u8()?;
            }
            let n = usize::from(c.u16()?);
            sh.extensions = c.take_upto(n).0;
            Some(())
        })();
        Some(sh)
    }

    /// Selected version: the supported_versions extension when present, else legacy.
    pub fn selected_version(&self) -> u16 {
        Extensions(Cur(self.extensions))
            .find(|&(t, _)| t == 0x002b)
            .and_then(|(_, d)| u16s(d).next())
            .unwrap_or(self.version)
    }
}

// ---------------------------------------------------------------------------------------
// Summary

impl TlsSummary {
    /// Feeds one TCP segment's payload of this flow. Walks every TLS record in it (several
    /// records per segment and several handshake messages per record); non-handshake
    /// records are skipped; parsing of the segment stops at bytes that are not a record
    /// header or at a record that continues into the next segment.
    pub fn update(&mut self, payload: &[u8], from_client: bool) {
        let ccs_bit = if from_client {
            ST_CCS_CLIENT
        } else {
            ST_CCS_SERVER
        };
        let mut c = Cur(payload);
        while let Some(&[ct, major, _minor, l0, l1]) = c.0.first_chunk::<5>() {
            if major != 3 || !(20..=24).contains(&ct) {
                break;
            }
            // After the server's ChangeCipherSpec its handshake records are encrypted
            // (TLS <= 1.2 Finished). The client's are too, except the second ClientHello
            // that a TLS 1.3 client sends after its compatibility CCS (HelloRetryRequest).
            let after_ccs = self.state & ccs_bit != 0;
            if after_ccs && !from_client {
                break;
            }
            let _ = c.take(5);
            let (body, whole) = c.take_upto(usize::from(u16::from_be_bytes([l0, l1])));
            match ct {
                20 => self.state |= ccs_bit,
                22 => self.handshake_record(body, from_client, after_ccs),
                _ => {}
            }
            if !whole {
                break;
            }
        }
    }

    fn handshake_record(&mut self, body: &[u8], from_client: bool, after_ccs: bool) {
        let mut c = Cur(body);
        while let Some(ht) = c.u8() {
            let Some(len) = c.u24() else { break };
            let (msg, whole) = c.take_upto(len);
            match (ht, from_client) {
                // An encrypted Finished after CCS may start with byte 1: a real post-CCS
                // hello is TLS 1.3's, whose legacy_version is always 0x0303.
                (1, true) if after_ccs && msg.first_chunk::<2>() != Some(&[3, 3]) => {}
                (1, true) => self.client_hello(msg, whole),
                (2, false) => self.server_hello(msg),
                (11, false) => self.certificate(msg),
                _ => {}
            }
            if !whole {
                break;
            }
        }
    }

    fn client_hello(&mut self, msg: &[u8], whole: bool) {
        // Keep the first whole hello (a second one follows a HelloRetryRequest); a truncated
        // one may be replaced by a later whole copy (retransmission).
        if self.client_hello && !self.hello_truncated {
            return;
        }
        let Some(ch) = ClientHello::parse(msg, whole) else {
            return;
        };
        self.client_hello = true;
        self.hello_truncated = !ch.complete;
        self.client_version = ch.max_version();
        self.sni.clear();
        self.sni_truncated = false;
        if let Some(name) = ch.sni() {
            self.sni_truncated = copy_bytes(&mut self.sni, name);
        }
        self.alpn.clear();
        if let Some(p) = ch.alpn() {
            copy_bytes(&mut self.alpn, p);
        }
        self.ja3 = None;
        self.ja4.clear();
        if ch.complete {
            self.ja3 = Some(ja3(&ch));
            if let Some(j) = ja4(&ch) {
                self.ja4 = j;
            }
        }
    }

    fn server_hello(&mut self, msg: &[u8]) {
        if self.server_hello {
            return;
        }
        let Some(sh) = ServerHello::parse(msg) else {
            return;
        };
        self.server_hello = true;
        self.server_version = sh.selected_version();
        self.cipher = sh.cipher.unwrap_or(0);
    }

    fn certificate(&mut self, msg: &[u8]) {
        // TLS 1.3 certificates are encrypted; a clear type-11 message there is noise.
        if self.state & ST_CERT_DONE != 0 || self.server_version == 0x0304 {
            return;
        }
        let mut c = Cur(msg);
        let first = (|| {
            c.u24()?; // certificate_list length
            let n = c.u24()?;
            Some(c.take_upto(n).0)
        })();
        if let Some((issuer, subject)) = first.and_then(cert_names) {
            // Done once the certificate's start was read; a message cut before that may
            // still come whole in a retransmitted segment.
            self.state |= ST_CERT_DONE;
            if let Some((tag, v)) = issuer {
                copy_der_string(&mut self.cert_issuer_cn, tag, v);
            }
            if let Some((tag, v)) = subject {
                copy_der_string(&mut self.cert_subject_cn, tag, v);
            }
        }
    }

    /// JA3 as 32 lowercase hex characters.
    pub fn ja3_hex(&self) -> Option<String<32>> {
        self.ja3.as_ref().map(hex16)
    }
}

/// Copies bytes into a bounded string: valid UTF-8 is kept, other bytes become `?`.
/// Returns true when the value was cut to the capacity.
fn copy_bytes<const N: usize>(dst: &mut String<N, u8>, src: &[u8]) -> bool {
    match core::str::from_utf8(src) {
        Ok(s) => push_chars(dst, s.chars()),
        Err(_) => push_chars(
            dst,
            src.iter()
                .map(|&b| if b.is_ascii() { char::from(b) } else { '?' }),
        ),
    }
}

fn push_chars<const N: usize>(dst: &mut String<N, u8>, chars: impl Iterator<Item = char>) -> bool {
    for ch in chars {
        if dst.push(ch).is_err() {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// JA3 / JA4

/// Batches the many 1-5 byte writes of a fingerprint string into 64-byte digest updates
/// (cheaper than one digest call per value).
struct Feed<D> {
    d: D,
    buf: [u8; 64],
    n: usize,
}

impl<D: Digest> Feed<D> {
    fn new() -> Self {
        Self {
            d: D::new(),
            buf: [0; 64],
            n: 0,
        }
    }
    fn update(&mut self, b: impl AsRef<[u8]>) {
        for &x in b.as_ref() {
            if self.n >= self.buf.len() {
                self.d.update(self.buf);
                self.n = 0;
            }
            if let Some(s) = self.buf.get_mut(self.n) {
                *s = x;
            }
            self.n += 1;
        }
    }
    fn finalize(mut self) -> md5::digest::Output<D> {
        self.d.update(self.buf.get(..self.n).unwrap_or_default());
        self.d.finalize()
    }
}

/// Writes `v` in decimal into the hasher (JA3 uses decimal values).
fn md5_dec(h: &mut Feed<Md5>, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i = i.saturating_sub(1);
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    h.update(buf.get(i..).unwrap_or_default());
}

/// Feeds a dash-joined decimal list into the hasher.
fn md5_list(h: &mut Feed<Md5>, vals: impl Iterator<Item = u16>) {
    for (i, v) in vals.enumerate() {
        if i > 0 {
            h.update(b"-");
        }
        md5_dec(h, v);
    }
}

/// MD5 of `version,ciphers,extensions,groups,point_formats` (decimal, `-` joined, GREASE
/// removed from ciphers, extensions and groups), as Wireshark's `tls.handshake.ja3`.
fn ja3(ch: &ClientHello<'_>) -> [u8; 16] {
    let mut h = Feed::<Md5>::new();
    md5_dec(&mut h, ch.version);
    h.update(b",");
    md5_list(&mut h, ch.ciphers().filter(|&v| !is_grease(v)));
    h.update(b",");
    md5_list(
        &mut h,
        ch.extensions().map(|(t, _)| t).filter(|&v| !is_grease(v)),
    );
    h.update(b",");
    if let Some(d) = ch.extension(0x000a) {
        md5_list(&mut h, u16s(vec16(d)).filter(|&v| !is_grease(v)));
    }
    h.update(b",");
    if let Some(d) = ch.extension(0x000b) {
        md5_list(&mut h, vec8(d).iter().map(|&b| u16::from(b)));
    }
    h.finalize().into()
}

/// Feeds `v` as 4 lowercase hex digits (JA4 uses `%04x`).
fn sha_hex4(h: &mut Feed<Sha256>, v: u16) {
    let mut b = [0u8; 4];
    for (i, d) in b.iter_mut().enumerate() {
        let nib = (v >> (12 - 4 * i)) & 0xf;
        *d = HEX.get(usize::from(nib)).copied().unwrap_or(b'0');
    }
    h.update(b);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Comma-joined `%04x` list into the hasher.
fn sha_list(h: &mut Feed<Sha256>, vals: &[u16]) {
    for (i, &v) in vals.iter().enumerate() {
        if i > 0 {
            h.update(b",");
        }
        sha_hex4(h, v);
    }
}

/// First 12 hex characters of the SHA-256 (the JA4 b/c parts), or `000000000000` when
/// there was nothing to hash.
fn trunc_hash(out: &mut String<JA4_LEN, u8>, h: Option<Feed<Sha256>>) {
    match h {
        Some(h) => {
            let d = h.finalize();
            for b in d.iter().take(6) {
                let _ = write!(out, "{b:02x}");
            }
        }
        None => {
            let _ = out.push_str("000000000000");
        }
    }
}

/// JA4 version code (`13`, `12`, ..., `00` for unknown).
fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// One end character of the JA4 ALPN field, as the `ja4plus` reference: printable ASCII
/// itself, a byte >= 0x80 `9`, a control byte `None` (the field becomes `99`).
fn alpn_char(b: u8) -> Option<char> {
    match b {
        0x20..=0x7e => Some(char::from(b)),
        0x80..=0xff => Some('9'),
        _ => None,
    }
}

/// The JA4 client fingerprint (TCP: prefix `t`). `None` when the hello has more than
/// [`JA4_SORT_MAX`] ciphers or extensions (no unbounded sort buffer).
fn ja4(ch: &ClientHello<'_>) -> Option<String<JA4_LEN, u8>> {
    let mut ciphers: heapless::Vec<u16, JA4_SORT_MAX> = heapless::Vec::new();
    for c in ch.ciphers().filter(|&v| !is_grease(v)) {
        ciphers.push(c).ok()?;
    }
    let mut exts: heapless::Vec<u16, JA4_SORT_MAX> = heapless::Vec::new();
    let mut n_ext = 0usize;
    let mut sni = false;
    for t in ch.extensions().map(|(t, _)| t).filter(|&v| !is_grease(v)) {
        n_ext = n_ext.saturating_add(1);
        sni |= t == 0x0000;
        if t != 0x0000 && t != 0x0010 {
            exts.push(t).ok()?;
        }
    }
    let alpn = match ch.alpn() {
        Some(p) => match (p.first(), p.last()) {
            (Some(&a), Some(&b)) => match (alpn_char(a), alpn_char(b)) {
                (Some(x), Some(y)) => [x, y],
                _ => ['9', '9'],
            },
            _ => ['0', '0'],
        },
        None => ['0', '0'],
    };
    let [a0, a1] = alpn;
    let mut out: String<JA4_LEN, u8> = String::new();
    let _ = write!(
        out,
        "t{}{}{:02}{:02}{}{}_",
        ja4_version(ch.max_version()),
        if sni { 'd' } else { 'i' },
        ciphers.len().min(99),
        n_ext.min(99),
        a0,
        a1,
    );
    ciphers.sort_unstable();
    trunc_hash(
        &mut out,
        (!ciphers.is_empty()).then(|| {
            let mut h = Feed::<Sha256>::new();
            sha_list(&mut h, &ciphers);
            h
        }),
    );
    let _ = out.push('_');
    exts.sort_unstable();
    let sigalgs = ch.extension(0x000d).map(vec16).unwrap_or_default();
    let mut sig = u16s(sigalgs).filter(|&v| !is_grease(v)).peekable();
    let h = if exts.is_empty() && sig.peek().is_none() {
        None
    } else {
        let mut h = Feed::<Sha256>::new();
        sha_list(&mut h, &exts);
        for (i, s) in sig.enumerate() {
            h.update(if i == 0 { b"_" } else { b"," });
            sha_hex4(&mut h, s);
        }
        Some(h)
    };
    trunc_hash(&mut out, h);
    Some(out)
}

// ---------------------------------------------------------------------------------------
// Minimal DER walk for the first certificate's issuer and subject commonName

/// One DER TLV: `(tag, content cut to the bytes present, complete)`; advances `c`.
/// Definite lengths up to 4 length bytes only.
fn der_tlv<'a>(c: &mut Cur<'a>) -> Option<(u8, &'a [u8], bool)> {
    let tag = c.u8()?;
    let first = c.u8()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        c.take(n)?.iter().fold(0usize, |acc, &b| {
            acc.saturating_mul(256).saturating_add(usize::from(b))
        })
    };
    let (v, ok) = c.take_upto(len);
    Some((tag, v, ok))
}

/// A commonName value: `(string tag, bytes)`.
type CnValue<'a> = (u8, &'a [u8]);

/// Issuer and subject commonName of a (possibly cut) DER certificate. The walk is bounded
/// by the bytes present; fields beyond a cut element are `None`.
fn cert_names(der: &[u8]) -> Option<(Option<CnValue<'_>>, Option<CnValue<'_>>)> {
    let (t, cert, _) = der_tlv(&mut Cur(der))?;
    if t != 0x30 {
        return None;
    }
    let (t, tbs, _) = der_tlv(&mut Cur(cert))?;
    if t != 0x30 {
        return None;
    }
    let mut c = Cur(tbs);
    let mut el = der_tlv(&mut c)?;
    if el.0 == 0xa0 {
        el = der_tlv(&mut c)?; // explicit version present: next is the serial
    }
    if el.0 != 0x02 || !el.2 {
        return None; // serialNumber
    }
    let (t, _, ok) = der_tlv(&mut c)?; // signature AlgorithmIdentifier
    if t != 0x30 || !ok {
        return None;
    }
    let (t, issuer, ok) = der_tlv(&mut c)?;
    if t != 0x30 {
        return None;
    }
    let issuer_cn = name_cn(issuer);
    if !ok {
        return Some((issuer_cn, None));
    }
    let subject_cn = (|| {
        let (t, _, ok) = der_tlv(&mut c)?; // validity
        if t != 0x30 || !ok {
            return None;
        }
        let (t, subject, _) = der_tlv(&mut c)?;
        (t == 0x30).then(|| name_cn(subject)).flatten()
    })();
    Some((issuer_cn, subject_cn))
}

/// First commonName (OID 2.5.4.3) in a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn name_cn(name: &[u8]) -> Option<CnValue<'_>> {
    let mut rdns = Cur(name);
    for _ in 0..64 {
        let (t, set, _) = der_tlv(&mut rdns)?;
        if t != 0x31 {
            return None;
        }
        let mut atvs = Cur(set);
        for _ in 0..16 {
            let Some((t, atv, _)) = der_tlv(&mut atvs) else {
                break;
            };
            if t != 0x30 {
                break;
            }
            let mut a = Cur(atv);
            let Some((0x06, oid, true)) = der_tlv(&mut a) else {
                continue;
            };
            if oid == [0x55, 0x04, 0x03] {
                let (tag, v, ok) = der_tlv(&mut a)?;
                return ok.then_some((tag, v));
            }
        }
    }
    None
}

/// Decodes a DER string by tag into a bounded string (cut at the capacity).
fn copy_der_string<const N: usize>(dst: &mut String<N, u8>, tag: u8, v: &[u8]) {
    dst.clear();
    match tag {
        // BMPString: UTF-16BE.
        0x1e => {
            push_chars(
                dst,
                char::decode_utf16(u16s(v)).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)),
            );
        }
        // UniversalString: UTF-32BE.
        0x1c => {
            push_chars(
                dst,
                v.chunks_exact(4).map(|c| {
                    c.first_chunk::<4>()
                        .and_then(|a| char::from_u32(u32::from_be_bytes(*a)))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                }),
            );
        }
        // TeletexString: treat as Latin-1, as most decoders do.
        0x14 => {
            push_chars(dst, v.iter().map(|&b| char::from(b)));
        }
        // UTF8String, PrintableString, IA5String, VisibleString and anything else.
        _ => {
            copy_bytes(dst, v);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::XorShift;

    // Real payloads from the shared captures (`tshark -r FILE -o tls.desegment_ssl_records:FALSE
    // -o tcp.desegment_tcp_streams:FALSE -Y frame.number==N -T fields -e tcp.payload`).
    // Expected SNI/JA3 come from tshark 4.0.17 (`tls.handshake.extensions_server_name`,
    // `tls.handshake.ja3`), JA4 from the ja4plus 1.4.0 PyPI package (`parse_tls_handshake` +
    // `generate_ja4` on the same bytes), ServerHello fields from tshark
    // (`tls.handshake.ciphersuite`, `tls.handshake.extensions.supported_version`), CNs from
    // tshark `x509sat.*` and Python `cryptography` on `tls.handshake.certificate`.

    /// Chrome ClientHello with GREASE, ALPN h2, TLS 1.3: zeek-asyncrat-detector/30a385ed-...pcap frame 36.
    const CH_CHROME_GREASE: &str = concat!(
        "1603010200010001fc0303370d26ea6038b9f6e82b14e37abc15061bbdef37f798f4f01f2ea2fb799c730e20",
        "7ed73cdafc5397f44ed1de21d7a95eebc4e9c14ef75d16e1f392cb98e14994c400203a3a130113021303c02b",
        "c02fc02cc030cca9cca8c013c014009c009d002f003501000193eaea0000001b000302000200170000000d00",
        "12001004030804040105030805050108060601000a000a00086a6a001d001700180000001800160000136163",
        "636f756e74732e676f6f676c652e636f6d00120000ff01000100002b0007064a4a03040303000b0002010000",
        "230000446900050003026832002d000201010033002b00296a6a000100001d0020cf4f6ca6c01a9537ac8811",
        "7281dc9b956c769a3c35e34eb57dd9947b2964a8650010000e000c02683208687474702f312e310005000501",
        "00000000aaaa000100001500c400000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000",
    );

    /// Windows (SChannel) TLS 1.2 ClientHello, ALPN h2: zeek-agenttesla-detector/0e328ab7-...pcap frame 6.
    const CH_BING_H2: &str = concat!(
        "16030300c0010000bc030365e5005b441639e48524c4639b8da173233f61b6d2ed4d194cddc9be5e0edbb700",
        "0026c02cc02bc030c02fc024c023c028c027c00ac009c014c013009d009c003d003c0035002f000a0100006d",
        "00000011000f00000c7777772e62696e672e636f6d000500050100000000000a00080006001d00170018000b",
        "00020100000d001a0018080408050806040105010201040305030203020206010603002300000010000e000c",
        "02683208687474702f312e3100170000ff01000100",
    );

    /// TLS 1.0 ClientHello without extensions: BroMalware-Exercise/zeroaccess_p2p_2012-10-04.pcap frame 1053.
    const CH_NOEXT: &str = concat!(
        "16030100410100003d0301506d74587945e6e069c454555120b39348cbc2d14bf3185f38ccb156f8ff75c300",
        "001600040005000a000900640062000300060013001200630100",
    );

    /// ChangeCipherSpec + second ClientHello after HelloRetryRequest: malcolm-pcap/protocols/SSL.pcap frame 1552.
    const CCS_CH_HRR: &str = concat!(
        "14030300010116030300ef010000eb030330f1903e37d4f598a70d696a9172b296c96852c9dae4a3c9ca6b49",
        "d2021668a1201a6bb8368add0e28015bd6cced648236f49e2407f19653ac1fdd1ffa48bfaecd000813021303",
        "130100ff0100009a000b000403000102000a00080006001500170018002300000016000000170000000d001e",
        "001c040305030603080708080809080a080b080408050806040105010601002b0003020304002d0002010100",
        "33004700450017004104770706eba5d90622e4115a2843afeba4b1f4ed9b39eb099398580d4ee221f81d794d",
        "c569ecc7d73a27bebd24490423234aa153cb870dbd2ce5a7583e6cbc3d01",
    );

    /// TLS 1.2 ServerHello + Certificate + ServerKeyExchange + ServerHelloDone in one record:
    /// unit42 Emotet tutorial emotet_infection_2021-01-06.pcap frame 223 (server segment, 1326 bytes).
    const SH_CERT_TLS12: &str = concat!(
        "16030305290200005e03035ff5e84b797bdaab861d07fb797779a8ad1c4ae4858aa770f53babf651d5ed7820",
        "2f270000e45519f3c1c58838d5dc17cf0f4650e9052b66c3b4ae1e68ce06f69fc02c00001600100005000302",
        "683200170000ff01000100000000000b00040b0004080004053082040130820388a003020102021333000000",
        "2cd5718b1adbf0ee7c00000000002c300a06082a8648ce3d040303308188310b300906035504061302555331",
        "1330110603550408130a57617368696e67746f6e3110300e060355040713075265646d6f6e64311e301c0603",
        "55040a13154d6963726f736f667420436f72706f726174696f6e31323030060355040313294d6963726f736f",
        "66742045434320557064617465205365637572652053657276657220434120322e31301e170d323031323033",
        "3139343230325a170d3231313230333139343230325a3078310b3009060355040613025553310b3009060355",
        "0408130257413110300e060355040713075265646d6f6e6431123010060355040a13094d6963726f736f6674",
        "310c300a060355040b1303445350312830260603550403131f66653363722e64656c69766572792e6d702e6d",
        "6963726f736f66742e636f6d3059301306072a8648ce3d020106082a8648ce3d0301070342000471d739596e",
        "fd843bcdded37e395fce27f68f5a9722887e511247c7a8e6c65ddb0a2e29e56ba30d473d4c937a5eb5b351c1",
        "315e1a225f4101058594877c99ab08a38201de308201da300e0603551d0f0101ff0404030207803013060355",
        "1d25040c300a06082b06010505070301301d0603551d0e04160414861ba53eef068b0a4646c019b5d7217f32",
        "31af1930780603551d110471306f821f66653363722e64656c69766572792e6d702e6d6963726f736f66742e",
        "636f6d82212a2e66653363722e64656c69766572792e6d702e6d6963726f736f66742e636f6d82292a2e6261",
        "636b656e642e66653363722e64656c69766572792e6d702e6d6963726f736f66742e636f6d301f0603551d23",
        "0418301680141641b107c78bf3d2061490260adbb12bc04462c3306e0603551d1f046730653063a061a05f86",
        "5d687474703a2f2f7777772e6d6963726f736f66742e636f6d2f706b696f70732f63726c2f4d6963726f736f",
        "6674253230454343253230557064617465253230536563757265253230536572766572253230434125323032",
        "2e312e63726c307b06082b06010505070101046f306d306b06082b06010505073002865f687474703a2f2f77",
        "77772e6d6963726f736f66742e636f6d2f706b696f70732f63657274732f4d6963726f736f66742532304543",
        "432532305570646174652532305365637572652532305365727665722532304341253230322e312e63727430",
        "0c0603551d130101ff04023000300a06082a8648ce3d040303036700306402303f1d5fade4372ffd1198208e",
        "c5865638865583f526a0b48d8c729f1d8f61c48a4c2a8b51f88471cf619d4424761e15e502302dc08dfa5640",
        "442392228c581ba67a723368f67d17bbab2498b3891e857e0af945a090d2b9bfd14095b68d2a4760ceec0c00",
        "00b00300186104c49208ca87d5d9c1da2d6647a065a7d0d82230f8fbfeeb26b4ab68178b9370b6da42fd3e6a",
        "8ad2666b0ab9f502118f75eaf6fbfe9dd3508e9cd07cc6f96850215d7ab49d2f390e6d43b7f14d7e3b5b98ee",
        "9754cdcc51f7a7dcbe10096ccaf39e04030047304502203d8b182fb5c1cf1f1380f3f7c705b260761416a4c7",
        "c88b0bc68287034f6482c8022100f0c51d52717629efe0b51bfdddbed537f9a6edfa79d934eb1d4a161af069",
        "585f0e000000",
    );

    /// TLS 1.3 ServerHello + CCS + start of an application-data record (first 150 bytes of the
    /// segment): malcolm-pcap/protocols/SSL.pcap frame 1082.
    const SH_TLS13_PREFIX: &str = concat!(
        "160303006a02000066030370fa573aaf4b5fdd87587db5afb23aba9546265f69479f45b2c010d403c98ef810",
        "b70b63dd114e5411e6452f0a0f975600130300002e00330024001d0020405b6b8d067ebca0332780b5aa1a02",
        "958bbc3fe962933168f9419129f747e57a002b000203041403030001011703030ed7960fb97307e460ba218f",
        "24ae28f14ff77927218f38c43b5072bc8826",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn client(p: &[u8]) -> TlsSummary {
        let mut s = TlsSummary::default();
        s.update(p, true);
        s
    }

    fn server(p: &[u8]) -> TlsSummary {
        let mut s = TlsSummary::default();
        s.update(p, false);
        s
    }

    fn samples() -> Vec<Vec<u8>> {
        [
            CH_CHROME_GREASE,
            CH_BING_H2,
            CH_NOEXT,
            CCS_CH_HRR,
            SH_CERT_TLS12,
            SH_TLS13_PREFIX,
        ]
        .iter()
        .map(|h| unhex(h))
        .collect()
    }

    #[test]
    fn size_budget() {
        assert!(core::mem::size_of::<TlsSummary>() <= 224);
    }

    #[test]
    fn chrome_grease_h2() {
        let p = unhex(CH_CHROME_GREASE);
        assert!(looks_like_tls(&p));
        let s = client(&p);
        assert!(s.client_hello && !s.hello_truncated && !s.server_hello);
        assert_eq!(s.sni.as_str(), "accounts.google.com"); // tshark
        assert!(!s.sni_truncated);
        assert_eq!(s.alpn.as_str(), "h2");
        assert_eq!(s.client_version, 0x0304); // supported_versions minus GREASE
        // tshark tls.handshake.ja3 (frame 36)
        assert_eq!(
            s.ja3_hex().unwrap().as_str(),
            "04307588e98e5900d4e7e3830eb705a9"
        );
        // ja4plus generate_ja4 on the same payload
        assert_eq!(s.ja4.as_str(), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn bing_tls12_h2() {
        let s = client(&unhex(CH_BING_H2));
        assert_eq!(s.sni.as_str(), "www.bing.com"); // tshark
        assert_eq!(s.alpn.as_str(), "h2");
        assert_eq!(s.client_version, 0x0303);
        assert_eq!(
            s.ja3_hex().unwrap().as_str(),
            "28a2c9bd18a11de089ef85a160da29e4"
        ); // tshark
        assert_eq!(s.ja4.as_str(), "t12d1909h2_d83cc789557e_7af1ed941c26"); // ja4plus
    }

    #[test]
    fn hello_without_extensions() {
        let s = client(&unhex(CH_NOEXT));
        assert!(s.sni.is_empty() && s.alpn.is_empty());
        assert_eq!(s.client_version, 0x0301);
        assert_eq!(
            s.ja3_hex().unwrap().as_str(),
            "de350869b8c85de67a350c8d186f11e6"
        ); // tshark
        assert_eq!(s.ja4.as_str(), "t10i110000_3609b414f052_000000000000"); // ja4plus
    }

    #[test]
    fn hello_after_compat_ccs() {
        let p = unhex(CCS_CH_HRR);
        assert!(!looks_like_tls(&p)); // starts with a CCS record
        let s = client(&p);
        assert!(s.client_hello);
        assert_eq!(
            s.ja3_hex().unwrap().as_str(),
            "0f14b679807628ec7f9c02cada3ee941"
        ); // tshark
        assert_eq!(s.ja4.as_str(), "t13i040900_16476d049b0b_78f1d400d464"); // ja4plus
    }

    #[test]
    fn tls12_server_hello_and_certificate() {
        let p = unhex(SH_CERT_TLS12);
        assert!(looks_like_tls(&p));
        let s = server(&p);
        assert!(s.server_hello && !s.client_hello);
        assert_eq!(s.server_version, 0x0303);
        assert_eq!(s.cipher, 0xc02c);
        assert_eq!(
            s.cert_subject_cn.as_str(),
            "fe3cr.delivery.mp.microsoft.com"
        );
        assert_eq!(
            s.cert_issuer_cn.as_str(),
            &"Microsoft ECC Update Secure Server CA 2.1"[..CN_MAX]
        );
        assert!(s.ja3.is_none() && s.ja4.is_empty());
    }

    #[test]
    fn tls13_server_hello_then_encrypted() {
        let s = server(&unhex(SH_TLS13_PREFIX));
        assert!(s.server_hello);
        assert_eq!(s.server_version, 0x0304); // supported_versions, legacy says 0x0303
        assert_eq!(s.cipher, 0x1303);
        assert!(s.cert_subject_cn.is_empty());
    }

    #[test]
    fn certificate_cut_after_issuer() {
        // The issuer CN value ends before byte 300, the subject CN starts at byte 414.
        let p = unhex(SH_CERT_TLS12);
        let s = server(&p[..350]);
        assert_eq!(
            s.cert_issuer_cn.as_str(),
            &"Microsoft ECC Update Secure Server CA 2.1"[..CN_MAX]
        );
        assert!(s.cert_subject_cn.is_empty());
        // A certificate is only taken once per flow.
        let mut s2 = s.clone();
        s2.update(&p, false);
        assert!(s2.cert_subject_cn.is_empty());
    }

    #[test]
    fn direction_is_respected() {
        assert_eq!(server(&unhex(CH_CHROME_GREASE)), TlsSummary::default());
        let s = client(&unhex(SH_CERT_TLS12));
        assert!(!s.server_hello && s.cert_issuer_cn.is_empty());
    }

    #[test]
    fn hello_split_over_segments() {
        let p = unhex(CH_CHROME_GREASE);
        let (a, b) = p.split_at(300);
        let mut s = TlsSummary::default();
        s.update(a, true);
        assert!(s.client_hello && s.hello_truncated);
        assert_eq!(s.sni.as_str(), "accounts.google.com"); // SNI sits early in this hello
        assert_eq!(s.ja3, None);
        assert!(s.ja4.is_empty());
        // The continuation has no record header: ignored, nothing changes.
        let before = s.clone();
        s.update(b, true);
        assert_eq!(s, before);
        // A later whole copy (retransmission) replaces the truncated view.
        s.update(&p, true);
        assert!(!s.hello_truncated);
        assert_eq!(s, client(&p));
    }

    #[test]
    fn first_whole_hello_is_kept() {
        let mut s = client(&unhex(CH_BING_H2));
        s.update(&unhex(CH_CHROME_GREASE), true);
        assert_eq!(s.sni.as_str(), "www.bing.com");
    }

    #[test]
    fn several_records_in_one_segment() {
        // ServerHello record of the TLS 1.3 sample followed by the TLS 1.2 flight.
        let mut p = unhex(SH_TLS13_PREFIX)[..111].to_vec();
        p.extend(unhex(SH_CERT_TLS12));
        let s = server(&p);
        assert_eq!(s.cipher, 0x1303); // first ServerHello wins
        assert!(s.cert_subject_cn.is_empty()); // TLS 1.3: no clear-text certificate
        // Alert record then the TLS 1.2 flight: the alert is skipped.
        let mut p = vec![0x15, 3, 3, 0, 2, 1, 0];
        p.extend(unhex(SH_CERT_TLS12));
        assert_eq!(
            server(&p).cert_subject_cn.as_str(),
            "fe3cr.delivery.mp.microsoft.com"
        );
    }

    #[test]
    fn serialize_json() {
        let s = client(&unhex(CH_CHROME_GREASE));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ja3"], "04307588e98e5900d4e7e3830eb705a9");
        assert_eq!(v["sni"], "accounts.google.com");
        assert_eq!(v["client_version"], 0x0304);
        assert!(v.get("cert_subject_cn").is_none() && v.get("hello_truncated").is_none());
        assert!(v.get("state").is_none());
        assert_eq!(serde_json::to_string(&TlsSummary::default()).unwrap(), "{}");
    }

    /// Builds a minimal ClientHello record with one SNI and given ciphers.
    fn build_hello(sni: &[u8], ciphers: &[u16]) -> Vec<u8> {
        let mut ext = vec![0, 0];
        let n = sni.len() as u16;
        ext.extend((n + 5).to_be_bytes());
        ext.extend((n + 3).to_be_bytes());
        ext.push(0);
        ext.extend(n.to_be_bytes());
        ext.extend(sni);
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend(((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            body.extend(c.to_be_bytes());
        }
        body.extend([1, 0]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1, 0];
        hs.extend((body.len() as u16).to_be_bytes());
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn long_sni_is_truncated() {
        let name = [b'a'; 120];
        let s = client(&build_hello(&name, &[0x1301]));
        assert!(s.sni_truncated);
        assert_eq!(s.sni.len(), SNI_MAX);
        assert!(s.ja3.is_some());
        let s = client(&build_hello(b"ex\xffample.com", &[0x1301]));
        assert_eq!(s.sni.as_str(), "ex?ample.com");
    }

    #[test]
    fn too_many_ciphers_gives_no_ja4_but_ja3() {
        let many: Vec<u16> = (1..=600).collect();
        let s = client(&build_hello(b"x.org", &many));
        assert!(s.ja3.is_some() && s.ja4.is_empty());
        let s = client(&build_hello(b"x.org", &many[..500]));
        assert!(s.ja4.starts_with("t12d9901"));
    }

    #[test]
    fn der_string_kinds() {
        let mut s: String<CN_MAX, u8> = String::new();
        copy_der_string(&mut s, 0x1e, &[0, b'h', 0, b'i', 0x00, 0xe9]);
        assert_eq!(s.as_str(), "hi\u{e9}");
        copy_der_string(&mut s, 0x14, &[b'a', 0xe9]);
        assert_eq!(s.as_str(), "a\u{e9}");
        copy_der_string(&mut s, 0x0c, "d\u{e9}j\u{e0}".as_bytes());
        assert_eq!(s.as_str(), "d\u{e9}j\u{e0}");
        copy_der_string(&mut s, 0x13, &[b'x'; 80]);
        assert_eq!(s.len(), CN_MAX);
    }

    #[test]
    fn looks_like_tls_negatives() {
        assert!(!looks_like_tls(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_tls(&[0x80, 0x2e, 0x01, 0x00, 0x02, 0x00])); // SSLv2 hello
        assert!(!looks_like_tls(&[0x17, 3, 3, 0, 20, 1]));
        assert!(!looks_like_tls(&[0x16, 3, 1, 0, 0, 1]));
        assert!(!looks_like_tls(&[0x16, 3, 1, 0xff, 0xff, 1]));
        assert!(!looks_like_tls(&[0x16, 3, 1]));
        assert!(!looks_like_tls(&[0x16, 3, 1, 1, 0, 11, 0, 0, 0]));
        assert!(looks_like_tls(&[0x16, 3, 1, 1, 0, 1]));
        assert!(looks_like_tls(&unhex(SH_TLS13_PREFIX)));
    }

    #[test]
    fn hostile_lengths() {
        let cases: &[&[u8]] = &[
            &[0x16, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xff],
            &[0x16, 3, 1, 0, 4, 1, 0, 0, 0],
            &[0x16, 3, 1, 0, 0],
            &[0x16, 3, 3, 0, 6, 1, 0, 0, 2, 3, 3],
            &[0x16, 3, 3, 0, 4, 11, 0xff, 0xff, 0xff],
            &[0x16, 3, 3, 0, 10, 11, 0, 0, 6, 0, 0, 3, 0x30, 0x84, 0xff],
            &[0x16, 3, 3, 0, 12, 11, 0, 0, 8, 0, 0, 5, 0, 0, 2, 0x30, 0x80],
            &[0x14, 3, 3, 0, 0, 0x16, 3, 3, 0, 0],
        ];
        for c in cases {
            for dir in [true, false] {
                let mut s = TlsSummary::default();
                s.update(c, dir);
                assert!(s.ja3.is_none());
            }
        }
        // Zero-length handshake body, and cipher / extension lengths far beyond the data.
        let mut p = build_hello(b"a.b", &[0x002f]);
        let s = client(&p);
        assert!(!s.hello_truncated);
        p[5 + 4 + 2 + 32 + 1] = 0xff; // cipher_suites length high byte
        let s = client(&p);
        assert!(s.client_hello && s.hello_truncated && s.ja3.is_none() && s.sni.is_empty());
    }

    #[test]
    fn every_prefix_never_panics_and_never_lies() {
        for p in samples() {
            let full_c = client(&p);
            let full_s = server(&p);
            for n in 0..=p.len() {
                let c = client(&p[..n]);
                let s = server(&p[..n]);
                // A fingerprint from a prefix is only given when the hello was whole in it.
                if c.ja3.is_some() {
                    assert_eq!(c.ja3, full_c.ja3);
                    assert_eq!(c.ja4, full_c.ja4);
                }
                if !s.cert_subject_cn.is_empty() {
                    assert_eq!(s.cert_subject_cn, full_s.cert_subject_cn);
                }
            }
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let samples = samples();
        let mut seen_ja3 = 0;
        for i in 0..6000 {
            let mut p = samples[i % samples.len()].clone();
            for _ in 0..(1 + rng.next() % 8) {
                let at = (rng.next() as usize) % p.len();
                p[at] = rng.next() as u8;
            }
            if rng.next().is_multiple_of(4) {
                p.truncate((rng.next() as usize) % (p.len() + 1));
            }
            let mut s = TlsSummary::default();
            s.update(&p, i % 2 == 0);
            s.update(&p, i % 2 == 1);
            seen_ja3 += usize::from(s.ja3.is_some());
            let _ = looks_like_tls(&p);
            let _ = serde_json::to_string(&s).unwrap();
        }
        assert!(seen_ja3 > 0);
    }
}
