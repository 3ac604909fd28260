//! DNS message parsing for per-flow summaries, without allocation.
//!
//! botd splits DNS flows per transaction id, so a flow normally holds one query
//! and one response; [`DnsSummary::update`] is fed every message of the flow and
//! keeps the query name/type, the response code and up to four A/AAAA answers.
//! Parsing goes through borrowed views ([`Message`], [`Question`], [`Record`],
//! [`Name`]) first; only what the summary keeps is copied.
//!
//! Names are rendered the way tshark 4.0 prints `dns.qry.name` (Wireshark's
//! `format_text`, checked against crafted and real captures), then ASCII
//! lower-cased, and the root name is the empty string (tshark prints `<Root>`):
//! printable ASCII as is (`.` and `\` inside a label too, so the text is as
//! ambiguous as tshark's), `\a \b \t \n \v \f \r`, other control bytes and DEL
//! as octal (`\000`, `\177`), printable UTF-8 kept, non-printable code points as
//! `\uxxxx`, and malformed UTF-8 as U+FFFD (see `write_label`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use core::fmt::Write;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use heapless::{String, Vec};
use serde::{Serialize, Serializer};

/// Capacity of [`DnsSummary::qname`] in bytes; longer names are cut at a
/// character boundary and flagged, because tunnels use names up to 253 bytes
/// and the summary has a fixed budget.
pub const QNAME_CAP: usize = 80;
/// A/AAAA answers kept per summary.
pub const ANSWERS_CAP: usize = 4;
/// Compression pointers followed per name. Real messages need a handful; the
/// limit is what makes a pointer loop end (forward pointers are allowed).
const MAX_POINTER_HOPS: u8 = 32;
/// RFC 1035 limit on a name in wire form (length octets included); tshark
/// prints `<Name too long>` beyond it.
const MAX_NAME_WIRE: usize = 255;
/// Resource records walked per message: bounds the work a hostile message with
/// huge counts can cause (each record also consumes at least 11 bytes).
const MAX_RECORDS_WALKED: u16 = 256;
/// Questions parsed per message; real messages carry one.
const MAX_QUESTIONS: u16 = 32;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_NULL: u16 = 10;
const TYPE_TXT: u16 = 16;
const TYPE_AAAA: u16 = 28;
const TYPE_ANY: u16 = 255;

/// Why a message could not be (fully) read. A value, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsError {
    /// The message ends inside the header, a question or a record.
    Truncated,
    /// Header counts that cannot fit the message (more questions than bytes).
    BadHeader,
    /// Reserved label type (0x40/0x80), or a compression pointer outside the message.
    BadName,
    /// More than `MAX_POINTER_HOPS` compression pointers in one name (a loop).
    PointerLoop,
    /// Name longer than 255 bytes in wire form.
    NameTooLong,
    /// TCP: the 2-byte length prefix announces more bytes than the segment holds
    /// (the message spans segments; botd does not reassemble DNS over TCP).
    Incomplete,
}

impl core::fmt::Display for DnsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DnsError::Truncated => "truncated DNS message",
            DnsError::BadHeader => "implausible DNS header counts",
            DnsError::BadName => "malformed DNS name",
            DnsError::PointerLoop => "DNS compression pointer loop",
            DnsError::NameTooLong => "DNS name longer than 255 bytes",
            DnsError::Incomplete => "DNS-over-TCP message spans segments",
        })
    }
}

impl core::error::Error for DnsError {}

/// One A or AAAA answer. Packed (21 bytes instead of 24) so that four of them
/// fit the summary's 200-byte budget next to a 100-byte name: read fields by
/// value (`a.ttl`), taking `&a.ttl` does not compile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, packed)]
pub struct Answer {
    /// IPv4 in the first four bytes (rest zero) when `!v6`.
    pub addr: [u8; 16],
    pub v6: bool,
    pub ttl: u32,
}

impl Answer {
    /// The address as a std type.
    pub fn ip(&self) -> IpAddr {
        let addr = self.addr;
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(addr))
        } else {
            let [a, b, c, d, ..] = addr;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
    }
}

impl Serialize for Answer {
    /// `{"addr": "192.0.2.1", "ttl": 300}`; the address form implies `v6`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Answer", 2)?;
        st.serialize_field("addr", &self.ip())?;
        let ttl = self.ttl;
        st.serialize_field("ttl", &ttl)?;
        st.end()
    }
}

/// What botd keeps of one DNS flow. `size_of` is 200 bytes (checked by a test).
///
/// Query-side fields come from the first query (or, if the query was missed,
/// from the question of a response); response-side fields from the latest
/// response, so a retransmitted response does not double anything.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DnsSummary {
    /// Lower-cased, no trailing dot, tshark-style escapes; empty for the root
    /// (or when no question was seen).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub qname: String<QNAME_CAP, u8>,
    /// The name did not fit `QNAME_CAP` bytes: its end is kept (the domain, which detectors and
    /// feeds match), after a `~`.
    #[serde(skip_serializing_if = "is_false")]
    pub qname_truncated: bool,
    /// Length of the whole name as text (also when cut).
    pub qname_len: u16,
    pub qtype: u16,
    /// Header RCODE (4 bits) of the latest response; `None` when no response seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<u8>,
    /// A response was seen.
    pub response: bool,
    /// The first A/AAAA answers of the latest response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<Answer, ANSWERS_CAP, u8>,
    /// ANCOUNT of the latest response: every answer, of any type.
    pub answer_count: u16,
    /// A CNAME record was among the answers.
    #[serde(skip_serializing_if = "is_false")]
    pub cname: bool,
    /// Query type TXT, NULL or ANY: the types data-carrying tunnels favour.
    #[serde(skip_serializing_if = "is_false")]
    pub txt_or_null: bool,
    /// Messages seen, saturating.
    pub queries: u16,
    pub responses: u16,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl DnsSummary {
    /// Feeds one message. `tcp`: the payload is a TCP segment that starts with
    /// the 2-byte length prefix; only the first message is read, and only if the
    /// segment holds all of it (else [`DnsError::Incomplete`]).
    ///
    /// If the header or the first question is bad nothing changes. An error
    /// later in the message (other questions, answers) is returned after the
    /// summary took what was read before it.
    pub fn update(&mut self, payload: &[u8], tcp: bool) -> Result<(), DnsError> {
        let bytes = if tcp {
            tcp_first_message(payload)?
        } else {
            payload
        };
        let msg = Message::parse(bytes)?;
        let mut questions = msg.questions();
        let first = questions.next().transpose()?;

        let is_response = msg.is_response();
        if let Some(q) = first {
            let first_query = !is_response && self.queries == 0;
            let nothing_yet = self.queries == 0 && self.qtype == 0 && self.qname.is_empty();
            if first_query || nothing_yet {
                self.qname.clear();
                self.qname_truncated = !q.name.write_text(&mut self.qname);
                self.qname_len = self.qname.len() as u16;
                if self.qname_truncated {
                    // The whole text (escapes make it at most 4 bytes per wire byte), then
                    // its tail.
                    let mut full: String<1024, u16> = String::new();
                    let _ = q.name.write_text(&mut full);
                    self.qname_len = full.len() as u16;
                    let keep = QNAME_CAP - 1;
                    let mut start = full.len().saturating_sub(keep);
                    while !full.is_char_boundary(start) {
                        start += 1;
                    }
                    self.qname.clear();
                    let _ = self.qname.push('~');
                    let _ = self.qname.push_str(full.get(start..).unwrap_or(""));
                }
                self.qtype = q.qtype;
                self.txt_or_null = matches!(q.qtype, TYPE_TXT | TYPE_NULL | TYPE_ANY);
            }
        }
        if !is_response {
            self.queries = self.queries.saturating_add(1);
            // The rest of a query is not needed; still report a malformed tail.
            for q in questions.by_ref() {
                q?;
            }
            return Ok(());
        }

        self.responses = self.responses.saturating_add(1);
        self.response = true;
        self.rcode = Some(msg.rcode());
        self.answer_count = msg.ancount;
        self.cname = false;
        self.answers.clear();
        for q in questions.by_ref() {
            q?;
        }
        for rr in msg.records(questions.position(), msg.ancount) {
            let rr = rr?;
            match rr.rtype {
                TYPE_CNAME => self.cname = true,
                TYPE_A | TYPE_AAAA if !self.answers.is_full() => {
                    if let Some(answer) = rr.address() {
                        // Cannot fail: checked `is_full` above.
                        let _ = self.answers.push(answer);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The first DNS message of a TCP segment that starts with the length prefix.
pub fn tcp_first_message(segment: &[u8]) -> Result<&[u8], DnsError> {
    let (len, rest) = segment
        .split_first_chunk::<2>()
        .ok_or(DnsError::Truncated)?;
    let len = usize::from(u16::from_be_bytes(*len));
    rest.get(..len).ok_or(DnsError::Incomplete)
}

/// A cheap plausibility check for DNS on a non-standard port.
///
/// Accepts a standard query or response (opcode 0, Z bit clear, 1..=4
/// questions, at most 64 records per section; a query must have no answers
/// and rcode 0) whose first question name is uncompressed with 1..=63-byte
/// labels and is followed by type and class IN, CH or ANY (mDNS unicast bit
/// allowed).
///
/// False positives are rare and structural: text protocols cannot pass
/// (printable bytes in the count fields make counts of 0x2020 or more) and
/// uniformly random bytes pass with probability below 10^-14 (the header
/// checks alone); what passes is other DNS-formatted traffic (mDNS, LLMNR and
/// NetBIOS-NS queries) and deliberate DNS look-alikes.
/// On the 31 128 UDP payloads of the shared captures it judged none of the
/// 22 756 non-DNS payloads to be DNS, and accepted every well-formed port-53
/// message. False negatives by design: non-zero opcodes (NOTIFY, UPDATE,
/// NetBIOS registrations) and question-less messages (most mDNS responses).
pub fn looks_like_dns(payload: &[u8]) -> bool {
    let Ok(msg) = Message::parse(payload) else {
        return false;
    };
    let (qd, an, ns, ar) = (msg.qdcount, msg.ancount, msg.nscount, msg.arcount);
    let z = msg.flags & 0x0040 != 0;
    if msg.opcode() != 0 || z || !(1..=4).contains(&qd) || an > 64 || ns > 64 || ar > 64 {
        return false;
    }
    if !msg.is_response() && (an != 0 || msg.rcode() != 0) {
        return false;
    }
    let Some(body) = payload.get(12..) else {
        return false;
    };
    // First name: plain labels only (nothing earlier to point to).
    let mut pos = 0usize;
    let mut wire = 1usize;
    loop {
        let Some(&len) = body.get(pos) else {
            return false;
        };
        if len == 0 {
            break;
        }
        if len > 63 {
            return false;
        }
        wire += usize::from(len) + 1;
        if wire > MAX_NAME_WIRE {
            return false;
        }
        pos += usize::from(len) + 1;
    }
    let type_class = body
        .get(pos.saturating_add(1)..)
        .and_then(|t| t.first_chunk::<4>());
    let Some(&[_, _, c0, c1]) = type_class else {
        return false;
    };
    let class = u16::from_be_bytes([c0, c1]) & 0x7fff;
    matches!(class, 1 | 3 | 255)
}

/// Header view of one DNS message.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// The whole message (compression offsets are relative to it).
    pub bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Reads the 12-byte header. Rejects only what cannot be a message: fewer
    /// than 12 bytes, or more questions than could fit (5 bytes each).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DnsError> {
        let (hdr, body) = bytes.split_first_chunk::<12>().ok_or(DnsError::Truncated)?;
        let [i0, i1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1] = *hdr;
        let msg = Message {
            id: u16::from_be_bytes([i0, i1]),
            flags: u16::from_be_bytes([f0, f1]),
            qdcount: u16::from_be_bytes([q0, q1]),
            ancount: u16::from_be_bytes([a0, a1]),
            nscount: u16::from_be_bytes([n0, n1]),
            arcount: u16::from_be_bytes([r0, r1]),
            bytes,
        };
        if usize::from(msg.qdcount).saturating_mul(5) > body.len() {
            return Err(DnsError::BadHeader);
        }
        Ok(msg)
    }

    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The 4-bit header RCODE (as tshark's `dns.flags.rcode`; EDNS extended
    /// bits are not merged in).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }

    /// The question section (at most `MAX_QUESTIONS` are read).
    pub fn questions(&self) -> Questions<'a> {
        Questions {
            msg: self.bytes,
            pos: 12,
            left: self.qdcount.min(MAX_QUESTIONS),
            failed: false,
        }
    }

    /// `count` resource records starting at byte `pos` (e.g.
    /// [`Questions::position`] after the questions were walked), at most
    /// `MAX_RECORDS_WALKED`.
    pub fn records(&self, pos: usize, count: u16) -> Records<'a> {
        Records {
            msg: self.bytes,
            pos,
            left: count.min(MAX_RECORDS_WALKED),
            failed: false,
        }
    }
}

/// A validated (possibly compressed) name inside a message.
#[derive(Clone, Copy, Debug)]
pub struct Name<'a> {
    msg: &'a [u8],
    start: usize,
}

impl<'a> Name<'a> {
    /// Walks and validates the name at `start`; returns it and the offset just
    /// after it in place (after the first pointer, or after the final zero).
    pub fn parse(msg: &'a [u8], start: usize) -> Result<(Self, usize), DnsError> {
        let mut walk = LabelWalk::new(msg, start);
        while walk.step()?.is_some() {}
        let end = walk.end.ok_or(DnsError::Truncated)?;
        Ok((Name { msg, start }, end))
    }

    /// The raw labels, leftmost first (no root label).
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            walk: LabelWalk::new(self.msg, self.start),
        }
    }

    /// Appends the tshark-style, lower-cased text. Returns false if `out` ran
    /// out of room; with a `heapless::String` (whose writes are all-or-nothing)
    /// the text is then cut at a character/escape boundary.
    pub fn write_text<W: Write>(&self, out: &mut W) -> bool {
        for (i, label) in self.labels().enumerate() {
            if i > 0 && out.write_char('.').is_err() {
                return false;
            }
            if !write_label(label, out) {
                return false;
            }
        }
        true
    }
}

/// Iterator over the labels of a validated [`Name`].
pub struct Labels<'a> {
    walk: LabelWalk<'a>,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        self.walk.step().ok().flatten()
    }
}

/// Label-by-label walk with all the safety checks; shared by validation and
/// iteration.
struct LabelWalk<'a> {
    msg: &'a [u8],
    pos: usize,
    hops: u8,
    wire: usize,
    /// Offset after the name in place, known once the walk jumps or ends.
    end: Option<usize>,
    done: bool,
}

impl<'a> LabelWalk<'a> {
    fn new(msg: &'a [u8], pos: usize) -> Self {
        LabelWalk {
            msg,
            pos,
            hops: 0,
            wire: 1,
            end: None,
            done: false,
        }
    }

    /// The next label, `Ok(None)` at the end of the name.
    fn step(&mut self) -> Result<Option<&'a [u8]>, DnsError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let len = *self.msg.get(self.pos).ok_or(DnsError::Truncated)?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.done = true;
                    self.end.get_or_insert(self.pos.saturating_add(1));
                    return Ok(None);
                }
                0x00 => {
                    let start = self.pos.saturating_add(1);
                    let stop = start.saturating_add(usize::from(len));
                    let label = self.msg.get(start..stop).ok_or(DnsError::Truncated)?;
                    self.wire = self.wire.saturating_add(usize::from(len) + 1);
                    if self.wire > MAX_NAME_WIRE {
                        return Err(DnsError::NameTooLong);
                    }
                    self.pos = stop;
                    return Ok(Some(label));
                }
                0xc0 => {
                    let lo = *self
                        .msg
                        .get(self.pos.saturating_add(1))
                        .ok_or(DnsError::Truncated)?;
                    self.end.get_or_insert(self.pos.saturating_add(2));
                    self.hops = self.hops.saturating_add(1);
                    if self.hops > MAX_POINTER_HOPS {
                        return Err(DnsError::PointerLoop);
                    }
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                    if target >= self.msg.len() {
                        return Err(DnsError::BadName);
                    }
                    self.pos = target;
                }
                // 0x40 (EDNS0 extended, e.g. binary labels) and 0x80: reserved.
                _ => return Err(DnsError::BadName),
            }
        }
    }
}

/// Appends one label as tshark prints it (lower-cased). False when `out` is full.
///
/// Mirrors Wireshark's `format_text`: a byte >= 0x80 starts a sequence whose
/// length the lead byte gives (old 5- and 6-byte forms included); a missing
/// continuation byte, a lone continuation byte, 0xfe/0xff, a surrogate or a
/// value above U+10FFFF yields one U+FFFD for the bytes consumed; overlong
/// forms decode permissively; non-printable code points print as `\uxxxx`.
fn write_label<W: Write>(label: &[u8], out: &mut W) -> bool {
    let mut bytes = label.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        let ok = if b < 0x80 {
            push_ascii(b, out)
        } else {
            let (extra, lead_bits) = match b {
                0xc0..=0xdf => (1, b & 0x1f),
                0xe0..=0xef => (2, b & 0x0f),
                0xf0..=0xf7 => (3, b & 0x07),
                0xf8..=0xfb => (4, b & 0x03),
                0xfc..=0xfd => (5, b & 0x01),
                _ => (0, 0),
            };
            let mut code = if extra == 0 {
                0xfffd
            } else {
                u32::from(lead_bits)
            };
            for _ in 0..extra {
                match bytes.next_if(|n| n & 0xc0 == 0x80) {
                    Some(n) => code = (code << 6) | u32::from(n & 0x3f),
                    None => {
                        code = 0xfffd;
                        break;
                    }
                }
            }
            push_char(char::from_u32(code).unwrap_or('\u{FFFD}'), out)
        };
        if !ok {
            return false;
        }
    }
    true
}

/// One ASCII byte: printable as is (lower-cased), controls as C escapes.
fn push_ascii<W: Write>(b: u8, out: &mut W) -> bool {
    let named = match b {
        0x20..=0x7e => return out.write_char(char::from(b.to_ascii_lowercase())).is_ok(),
        0x07 => "\\a",
        0x08 => "\\b",
        0x09 => "\\t",
        0x0a => "\\n",
        0x0b => "\\v",
        0x0c => "\\f",
        0x0d => "\\r",
        _ => "",
    };
    if !named.is_empty() {
        return out.write_str(named).is_ok();
    }
    let mut esc: String<4> = String::new();
    write!(esc, "\\{b:03o}").is_ok() && out.write_str(&esc).is_ok()
}

/// A decoded non-ASCII (or overlong) character: as is when printable, else
/// tshark's `\uXXXX` / `\UXXXXXXXX`, lower-cased like the rest of the name.
fn push_char<W: Write>(c: char, out: &mut W) -> bool {
    if c.is_ascii() && c != '\x7f' && c >= ' ' {
        return out.write_char(c.to_ascii_lowercase()).is_ok();
    }
    if printable(c) {
        return out.write_char(c).is_ok();
    }
    let v = u32::from(c);
    let mut esc: String<10> = String::new();
    let written = if v <= 0xffff {
        write!(esc, "\\u{v:04x}")
    } else {
        write!(esc, "\\u{v:08x}")
    };
    written.is_ok() && out.write_str(&esc).is_ok()
}

/// Approximates GLib's `g_unichar_isprint` (what tshark uses): false for
/// controls, format characters (Cf), noncharacters and the unassigned planes.
/// Unassigned code points inside assigned blocks are treated as printable.
fn printable(c: char) -> bool {
    let v = u32::from(c);
    let control = v < 0x20 || (0x7f..=0x9f).contains(&v);
    let format = matches!(
        v,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
    );
    let nonchar = (0xfdd0..=0xfdef).contains(&v) || v & 0xfffe == 0xfffe;
    let unassigned = matches!(v, 0x323b0..=0xdffff | 0xe0000..=0xe00ff | 0xe01f0..=0xeffff);
    !(control || format || nonchar || unassigned)
}

/// One question.
#[derive(Clone, Copy, Debug)]
pub struct Question<'a> {
    pub name: Name<'a>,
    pub qtype: u16,
    pub qclass: u16,
}

/// Iterator over the question section; stops after the first error.
pub struct Questions<'a> {
    msg: &'a [u8],
    pos: usize,
    left: u16,
    failed: bool,
}

impl Questions<'_> {
    /// Offset after the questions read so far (the answer section once the
    /// iterator is exhausted).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Questions<'a> {
    type Item = Result<Question<'a>, DnsError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let (name, end) = Name::parse(self.msg, self.pos)?;
            let tail = self.msg.get(end..).ok_or(DnsError::Truncated)?;
            let (tc, _) = tail.split_first_chunk::<4>().ok_or(DnsError::Truncated)?;
            let [t0, t1, c0, c1] = *tc;
            self.pos = end.saturating_add(4);
            Ok(Question {
                name,
                qtype: u16::from_be_bytes([t0, t1]),
                qclass: u16::from_be_bytes([c0, c1]),
            })
        })();
        self.failed = r.is_err();
        Some(r)
    }
}

/// One resource record.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub name: Name<'a>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
}

impl Record<'_> {
    /// The address of an A (4-byte) or AAAA (16-byte) record.
    pub fn address(&self) -> Option<Answer> {
        let mut addr = [0u8; 16];
        let v6 = match (self.rtype, self.rdata.len()) {
            (TYPE_A, 4) => false,
            (TYPE_AAAA, 16) => true,
            _ => return None,
        };
        for (dst, src) in addr.iter_mut().zip(self.rdata) {
            *dst = *src;
        }
        Some(Answer {
            addr,
            v6,
            ttl: self.ttl,
        })
    }
}

/// Iterator over resource records; stops after the first error.
pub struct Records<'a> {
    msg: &'a [u8],
    pos: usize,
    left: u16,
    failed: bool,
}

impl Records<'_> {
    /// Offset after the records read so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, DnsError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let r = (|| {
            let (name, end) = Name::parse(self.msg, self.pos)?;
            let tail = self.msg.get(end..).ok_or(DnsError::Truncated)?;
            let (fixed, rest) = tail.split_first_chunk::<10>().ok_or(DnsError::Truncated)?;
            let [t0, t1, c0, c1, l0, l1, l2, l3, d0, d1] = *fixed;
            let rdlen = usize::from(u16::from_be_bytes([d0, d1]));
            let rdata = rest.get(..rdlen).ok_or(DnsError::Truncated)?;
            self.pos = end.saturating_add(10).saturating_add(rdlen);
            Ok(Record {
                name,
                rtype: u16::from_be_bytes([t0, t1]),
                class: u16::from_be_bytes([c0, c1]),
                ttl: u32::from_be_bytes([l0, l1, l2, l3]),
                rdata,
            })
        })();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Lexical statistics of a name, for DGA and tunnel detectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct NameStats {
    /// Bytes in the name (trailing dot excluded).
    pub len: u16,
    pub labels: u8,
    /// ASCII digits in the whole name.
    pub digits: u16,
    /// Hyphens in the whole name.
    pub hyphens: u16,
    /// Bytes outside `[A-Za-z0-9._-]` (base64 `+/=`, escapes, non-ASCII).
    pub other: u16,
    /// Longest label in bytes.
    pub longest_label: u8,
    /// Bytes of [`subdomain_part`] (0 when the name is its own parent domain).
    pub subdomain_len: u16,
    /// Labels of [`subdomain_part`].
    pub subdomain_labels: u8,
    /// Shannon entropy (bits per byte, dots excluded) of the part the name's
    /// owner chose freely: [`subdomain_part`], or, when that is empty, the
    /// leftmost label of [`parent_domain`] (so `xjwqpz.com` is scored on
    /// `xjwqpz`).
    pub entropy: f32,
    /// Longest run of ASCII consonants in that same part (random strings have long ones).
    pub consonant_run: u8,
}

/// Statistics of `name` (as in [`DnsSummary::qname`]; a trailing dot is ignored).
pub fn name_stats(name: &str) -> NameStats {
    let name = name.strip_suffix('.').unwrap_or(name);
    let sat16 = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let sat8 = |n: usize| u8::try_from(n).unwrap_or(u8::MAX);
    let mut st = NameStats {
        len: sat16(name.len()),
        ..NameStats::default()
    };
    if name.is_empty() {
        return st;
    }
    let mut labels = 0usize;
    let mut longest = 0usize;
    for label in name.split('.') {
        labels += 1;
        longest = longest.max(label.len());
    }
    st.labels = sat8(labels);
    st.longest_label = sat8(longest);
    let (mut digits, mut hyphens, mut other) = (0usize, 0usize, 0usize);
    for b in name.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'-' => hyphens += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'.' | b'_' => {}
            _ => other += 1,
        }
    }
    st.digits = sat16(digits);
    st.hyphens = sat16(hyphens);
    st.other = sat16(other);

    let sub = subdomain_part(name);
    st.subdomain_len = sat16(sub.len());
    st.subdomain_labels = if sub.is_empty() {
        0
    } else {
        sat8(sub.split('.').count())
    };
    let scored = if sub.is_empty() {
        parent_domain(name).split('.').next().unwrap_or("")
    } else {
        sub
    };
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    let mut run = 0usize;
    let mut best_run = 0usize;
    for b in scored.bytes() {
        if b != b'.' {
            if let Some(c) = counts.get_mut(usize::from(b)) {
                *c += 1;
            }
            total += 1;
        }
        let consonant = b.is_ascii_alphabetic() && !b"aeiouAEIOU".contains(&b);
        run = if consonant { run + 1 } else { 0 };
        best_run = best_run.max(run);
    }
    st.consonant_run = sat8(best_run);
    if total > 0 {
        let n = total as f32;
        st.entropy = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f32 / n;
                -p * p.log2()
            })
            .sum();
    }
    st
}

/// Second-level labels that, under a two-letter ccTLD, are a public suffix
/// themselves (`co.uk`, `com.au`, `ac.jp`, ...).
const GENERIC_SLD: [&str; 7] = ["co", "com", "net", "org", "gov", "edu", "ac"];

/// The registrable domain, guessed without a public-suffix list: the last two
/// labels, or the last three when the last is a two-letter ccTLD and the
/// second-to-last is one of `co com net org gov edu ac` (`news.bbc.co.uk` ->
/// `bbc.co.uk`). Wrong for other multi-label suffixes (`city.kawasaki.jp`,
/// `blogspot.com`-style private suffixes), which then count as one registrable
/// domain; a name of one or two labels is returned whole. A trailing dot is
/// ignored. Case-insensitive.
pub fn parent_domain(name: &str) -> &str {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut dots = name.rmatch_indices('.').map(|(i, _)| i);
    let (Some(last), Some(second)) = (dots.next(), dots.next()) else {
        return name;
    };
    let two = name.get(second + 1..).unwrap_or(name);
    let tld = name.get(last + 1..).unwrap_or("");
    let sld = name.get(second + 1..last).unwrap_or("");
    let cc = tld.len() == 2 && tld.bytes().all(|b| b.is_ascii_alphabetic());
    if cc && GENERIC_SLD.iter().any(|g| g.eq_ignore_ascii_case(sld)) {
        match dots.next() {
            Some(third) => name.get(third + 1..).unwrap_or(name),
            None => name,
        }
    } else {
        two
    }
}

/// What is left of `name` in front of [`parent_domain`], without the joining
/// dot; empty when the name is its own parent domain.
pub fn subdomain_part(name: &str) -> &str {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let parent = parent_domain(trimmed);
    let cut = trimmed.len().saturating_sub(parent.len());
    trimmed
        .get(..cut)
        .map(|s| s.strip_suffix('.').unwrap_or(s))
        .unwrap_or("")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::proto::test_support::hex;

    // chrissanders-packets/arppoison.pcapng frames 1-2: www.google.com A query,
    // response with a CNAME, 6 A records, 4 NS, 4 additional.
    const GOOGLE_Q: &str = "18cd010000010000000000000377777706676f6f676c6503636f6d0000010001";
    const GOOGLE_R: &str = "18cd818000010007000400040377777706676f6f676c6503636f6d0000010001c00c0005000100063993000803777777016cc010c02c000100010000009700044a7d5f93c02c000100010000009700044a7d5f63c02c000100010000009700044a7d5f67c02c000100010000009700044a7d5f68c02c000100010000009700044a7d5f69c02c000100010000009700044a7d5f6ac0100002000100029e3d0006036e7333c010c0100002000100029e3d0006036e7334c010c0100002000100029e3d0006036e7331c010c0100002000100029e3d0006036e7332c010c0c4000100010005413d0004d8ef200ac0d6000100010005413d0004d8ef220ac0a0000100010005413d0004d8ef240ac0b20001000100004f4d0004d8ef260a";
    // github-appneta-tcpreplay nb6-http.pcap frame 52: two AAAA answers.
    const AAAA_R: &str = "f44b818000010002000000000469707636096963616e68617a697003636f6d00001c0001c00c001c00010000012c00102606f200000000070badf00dd00d0001c00c001c00010000012c00102606f200000000070badf00dd00d0002";
    // chrissanders-packets/ppa1e/evilprogram.pcap frame 484: NXDOMAIN for a PTR.
    const NXDOMAIN: &str = "de0481830001000000010000013001300130013007696e2d61646472046172706100000c0001c01400060001000029d7003401410c524f4f542d53455256455253034e4554000462696e64044152494ec0417773fd680000070800000384000a8c0000002a30";
    // github-dmachard-datasets-malicious-dns/dns2tcp_tunnel.pcap frame 2: TXT response.
    const TXT_R: &str = "d645858000010001000000000a41414141414837775141053d6175746807646e7332746370036873630266720000100001c00c0010000100000003002220416f6e6341414837774146424c5744524a527a46525130673453445a5457466700";
    // github-dmachard-datasets-malicious-dns/sods_tunnel.pcap frame 7: 170-byte name.
    const SODS_Q: &str = "95f6012000010000000000013e616161616c7861656371657070796c33336f6166366a643470626a66757168717979327161616162637272786b3474776d757a646b6e6a726865777867323f6462676932746d6c64646f767a686d7a6a7367753274636f6a6e6f6e7567636d7276677a616779326c636f6e7a77716c74706f6a7473797a6c646d72756332333433696d657a633233746a6f6e3268616d7276677977676b7933656e617778673264626769777734326c746f727964676f62750835323638332d34310769642d313630350275700374756e0368736302667200000100010000290200000000000000";
    const SODS_NAME: &str = "aaaalxaecqeppyl33oaf6jd4pbjfuqhqyy2qaaabcrrxk4twmuzdknjrhewxg2.dbgi2tmlddovzhmzjsgu2tcojnonugcmrvgzagy2lconzwqltpojtsyzldmruc2.43imezc23tjon2hamrvgywgky3enawxg2dbgiww42ltorydgobu.52683-41.id-1605.up.tun.hsc.fr";
    // malcolm-pcap/protocols/DNS.pcap frame 55: ANY query over TCP (length prefix 0x001a).
    const TCP_Q: &str = "001ab4c3010000010000000000000472697065036e65740000ff0001";
    // malcolm-pcap/protocols/DNS.pcap frame 739: name with a NUL byte (tshark: txtpadding_32\000).
    const NUL_NAME: &str = "0f3f8500000100ec000100020e74787470616464696e675f33320000000000000000640000000000000000000000675f3333000000000000000000000000000000000000000000000000000000002f0000000000000000000000000000000000000000000000000000000000000000002900000000000000000000000000000000000000000000000000000000000000000000000000000000000800060000000000000000000000000000260000000000000000000000000a0000000000000000000000000000000036340000000000200000000000504b540200000000000026000000000000000000000000114e111100000000000000000000000000004000000000000000000004000000000000000000000000000000000000000000000000000000000006000000000000000000000000007900000000000000000000000600";

    fn samples() -> [std::vec::Vec<u8>; 8] {
        [
            hex(GOOGLE_Q),
            hex(GOOGLE_R),
            hex(AAAA_R),
            hex(NXDOMAIN),
            hex(TXT_R),
            hex(SODS_Q),
            hex(TCP_Q),
            hex(NUL_NAME),
        ]
    }

    #[test]
    fn summary_fits_budget() {
        assert_eq!(core::mem::size_of::<Answer>(), 21);
        assert!(core::mem::size_of::<DnsSummary>() <= 208);
    }

    #[test]
    fn query_then_response() {
        let mut s = DnsSummary::default();
        s.update(&hex(GOOGLE_Q), false).unwrap();
        assert_eq!(s.qname, "www.google.com");
        assert_eq!((s.qtype, s.queries, s.responses, s.rcode), (1, 1, 0, None));
        assert!(!s.response);
        s.update(&hex(GOOGLE_R), false).unwrap();
        assert_eq!(s.rcode, Some(0));
        assert!(s.response && s.cname);
        assert_eq!(s.answer_count, 7);
        assert_eq!(s.answers.len(), 4);
        let first = s.answers[0];
        assert_eq!(first.ip().to_string(), "74.125.95.147");
        assert_eq!({ first.ttl }, 151);
        assert_eq!(s.answers[3].ip().to_string(), "74.125.95.104");
        // A retransmitted response replaces rather than accumulates.
        s.update(&hex(GOOGLE_R), false).unwrap();
        assert_eq!((s.answers.len(), s.responses), (4, 2));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""qname":"www.google.com""#), "{json}");
        assert!(
            json.contains(r#"{"addr":"74.125.95.147","ttl":151}"#),
            "{json}"
        );
        assert!(!json.contains("txt_or_null"), "{json}");
    }

    #[test]
    fn response_alone_fills_question() {
        let mut s = DnsSummary::default();
        s.update(&hex(AAAA_R), false).unwrap();
        assert_eq!(s.qname, "ipv6.icanhazip.com");
        assert_eq!(s.qtype, 28);
        assert_eq!(s.answers.len(), 2);
        assert!(s.answers[1].v6);
        assert_eq!(
            s.answers[1].ip().to_string(),
            "2606:f200:0:7:bad:f00d:d00d:2"
        );
        // A later query still wins for the query-side fields.
        s.update(&hex(GOOGLE_Q), false).unwrap();
        assert_eq!(s.qname, "www.google.com");
    }

    #[test]
    fn nxdomain_and_txt() {
        let mut s = DnsSummary::default();
        s.update(&hex(NXDOMAIN), false).unwrap();
        assert_eq!(s.rcode, Some(3));
        assert_eq!(s.qname, "0.0.0.0.in-addr.arpa");
        assert!(s.answers.is_empty() && !s.cname);
        let mut t = DnsSummary::default();
        t.update(&hex(TXT_R), false).unwrap();
        assert!(t.txt_or_null);
        // Mixed case on the wire, lower-cased like dns.qry.name | lower.
        assert_eq!(t.qname, "aaaaah7wqa.=auth.dns2tcp.hsc.fr");
    }

    #[test]
    fn long_name_truncated_at_char_boundary() {
        let mut s = DnsSummary::default();
        s.update(&hex(SODS_Q), false).unwrap();
        assert!(s.qname_truncated);
        assert_eq!(s.qname.len(), QNAME_CAP);
        assert_eq!(usize::from(s.qname_len), SODS_NAME.len());
        // The end is kept: the parent domain stays readable.
        assert!(s.qname.starts_with('~'));
        assert!(SODS_NAME.ends_with(&s.qname[1..]));
        let msg = hex(SODS_Q);
        let (name, _) = Name::parse(&msg, 12).unwrap();
        let mut full: String<255, u8> = String::new();
        assert!(name.write_text(&mut full));
        assert_eq!(full, SODS_NAME);
    }

    #[test]
    fn tcp_length_prefix() {
        let mut s = DnsSummary::default();
        s.update(&hex(TCP_Q), true).unwrap();
        assert_eq!((s.qname.as_str(), s.qtype), ("ripe.net", 255));
        assert!(s.txt_or_null);
        let seg = hex(TCP_Q);
        assert_eq!(
            DnsSummary::default().update(&seg[..seg.len() - 1], true),
            Err(DnsError::Incomplete)
        );
        assert_eq!(
            DnsSummary::default().update(&seg[..1], true),
            Err(DnsError::Truncated)
        );
    }

    #[test]
    fn tshark_escapes() {
        let mut s = DnsSummary::default();
        // A fuzzed response claiming 236 answers: the question is still kept.
        assert_eq!(s.update(&hex(NUL_NAME), false), Err(DnsError::Truncated));
        assert_eq!(s.qname, "txtpadding_32\\000");
        // Crafted labels, expected text as printed by tshark 4.0.17 (lower-cased).
        let cases: [(&[u8], &str); 8] = [
            (
                b"\x07\x08\t\n\x0b\x0c\r\x01\x7f",
                "\\a\\b\\t\\n\\v\\f\\r\\001\\177",
            ),
            (b"A b\\.", "a b\\."),
            (b"caf\xc3\xa9", "caf\u{e9}"),
            (b"\xf0\x9f\x98A", "\u{fffd}a"),
            (b"\xfb\xbdQ", "\u{fffd}q"),
            (b"\xc1\x81\xc0\x80", "a\\u0000"),
            (b"\xed\xa0\x80z\xf4\x90\x80\x80", "\u{fffd}z\u{fffd}"),
            (
                b"\xc2\x85\xe2\x80\x8b\xf3\xa0\x80\x81",
                "\\u0085\\u200b\\u000e0001",
            ),
        ];
        for (label, want) in cases {
            let mut out: String<64, u8> = String::new();
            assert!(write_label(label, &mut out));
            assert_eq!(out, want, "{label:?}");
        }
        // An escape never gets split by truncation.
        let mut out: String<3, u8> = String::new();
        assert!(!write_label(b"a\x01", &mut out));
        assert_eq!(out, "a");
    }

    #[test]
    fn root_name_is_empty() {
        // Root NS query: header + 0x00 + type NS + class IN.
        let msg = hex("1234010000010000000000000000020001");
        let mut s = DnsSummary::default();
        s.update(&msg, false).unwrap();
        assert_eq!((s.qname.as_str(), s.qtype), ("", 2));
    }

    #[test]
    fn hostile_names() {
        // Pointer to itself.
        let looped = hex("123401000001000000000000c00c00010001");
        assert_eq!(
            DnsSummary::default().update(&looped, false),
            Err(DnsError::PointerLoop)
        );
        // Two pointers pointing at each other.
        let pingpong = hex("123401000001000000000000c00e c00c00010001"
            .replace(' ', "")
            .as_str());
        assert_eq!(
            DnsSummary::default().update(&pingpong, false),
            Err(DnsError::PointerLoop)
        );
        // Pointer past the end.
        let out = hex("123401000001000000000000c0ff00010001");
        assert_eq!(
            DnsSummary::default().update(&out, false),
            Err(DnsError::BadName)
        );
        // Extended label type 0x41 (binary label).
        let ext = hex("1234010000010000000000004101ff0000010001");
        assert_eq!(
            DnsSummary::default().update(&ext, false),
            Err(DnsError::BadName)
        );
        // Label length running past the end.
        let long = hex("1234010000010000000000003f6162636465");
        assert_eq!(
            DnsSummary::default().update(&long, false),
            Err(DnsError::Truncated)
        );
        // 5 x 63-byte labels: 321 bytes in wire form.
        let mut big = hex("123401000001000000000000");
        for _ in 0..5 {
            big.push(63);
            big.extend([b'x'; 63]);
        }
        big.extend([0, 0, 1, 0, 1]);
        assert_eq!(
            DnsSummary::default().update(&big, false),
            Err(DnsError::NameTooLong)
        );
        // Huge counts on a short message.
        let counts = hex("1234010fffffffffffff");
        assert_eq!(
            DnsSummary::default().update(&counts, false),
            Err(DnsError::Truncated)
        );
        let counts = hex("12348100ffffffffffffffff000000");
        assert_eq!(
            DnsSummary::default().update(&counts, false),
            Err(DnsError::BadHeader)
        );
    }

    #[test]
    fn answers_truncated_keep_question() {
        let r = hex(GOOGLE_R);
        // Cut inside the third A record: question, CNAME and two A kept.
        let cut = &r[..32 + 20 + 16 + 16 + 10];
        let mut s = DnsSummary::default();
        assert_eq!(s.update(cut, false), Err(DnsError::Truncated));
        assert_eq!(s.qname, "www.google.com");
        assert!(s.cname);
        assert_eq!(s.answers.len(), 2);
        assert_eq!(s.rcode, Some(0));
    }

    #[test]
    fn every_prefix_and_mutations_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for sample in samples() {
            for cut in 0..=sample.len() {
                for tcp in [false, true] {
                    let mut s = DnsSummary::default();
                    let _ = s.update(&sample[..cut], tcp);
                    assert!(s.qname.len() <= QNAME_CAP);
                    let _ = looks_like_dns(&sample[..cut]);
                }
            }
            for _ in 0..3000 {
                let mut m = sample.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() as usize) % m.len();
                    m[i] = next() as u8;
                }
                let mut s = DnsSummary::default();
                let _ = s.update(&m, false);
                let _ = s.update(&m, true);
                let _ = name_stats(&s.qname);
                let _ = subdomain_part(&s.qname);
                let _ = looks_like_dns(&m);
            }
        }
    }

    #[test]
    fn plausibility_check() {
        for good in [GOOGLE_Q, GOOGLE_R, AAAA_R, NXDOMAIN, TXT_R, SODS_Q] {
            assert!(looks_like_dns(&hex(good)), "{good}");
        }
        // TCP framing is not a bare message.
        assert!(!looks_like_dns(&hex(TCP_Q)));
        assert!(!looks_like_dns(
            b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        ));
        assert!(!looks_like_dns(&[0u8; 40]));
        // Query with an answer count: not a plain query.
        let mut q = hex(GOOGLE_Q);
        q[7] = 1;
        assert!(!looks_like_dns(&q));
    }

    #[test]
    fn parent_and_subdomain() {
        let cases = [
            ("www.google.com", "google.com", "www"),
            ("google.com", "google.com", ""),
            ("com", "com", ""),
            ("", "", ""),
            ("news.bbc.co.uk", "bbc.co.uk", "news"),
            ("a.b.example.com.au", "example.com.au", "a.b"),
            ("co.uk", "co.uk", ""),
            ("x.ac.jp", "x.ac.jp", ""),
            ("www.Example.CO.UK.", "Example.CO.UK", "www"),
            ("example.co", "example.co", ""),
            ("foo.example.com.br.", "example.com.br", "foo"),
            ("a.example.net.com", "net.com", "a.example"),
            ("1.0.168.192.in-addr.arpa", "in-addr.arpa", "1.0.168.192"),
            ("..", ".", ""),
        ];
        for (name, parent, sub) in cases {
            assert_eq!(parent_domain(name), parent, "{name}");
            assert_eq!(subdomain_part(name), sub, "{name}");
        }
    }

    #[test]
    fn stats() {
        let st = name_stats("www.google.com");
        assert_eq!((st.len, st.labels, st.longest_label), (14, 3, 6));
        assert_eq!((st.subdomain_len, st.subdomain_labels), (3, 1));
        assert_eq!(st.entropy, 0.0); // "www"
        let st = name_stats("xkqjzpw4.com");
        assert_eq!(st.subdomain_len, 0);
        assert_eq!(st.digits, 1);
        assert!((st.entropy - 3.0).abs() < 1e-6, "{}", st.entropy); // 8 distinct
        assert_eq!(st.consonant_run, 7);
        let st = name_stats(SODS_NAME);
        assert!(st.entropy > 4.0, "{}", st.entropy);
        assert_eq!(st.longest_label, 63);
        let st = name_stats("ab+/=.x.com");
        assert_eq!((st.other, st.hyphens), (3, 0));
        assert_eq!(name_stats(""), NameStats::default());
    }
}
