//! Flow record writers: CSV whose first 14 columns are the CTU-13 binetflow columns (so existing
//! CTU-13 tooling reads it), and JSON lines with the same fields. Both end with the flow's
//! Community ID (seed 0), so records can be joined with Zeek, Suricata or Elastic data.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;
use std::io::{self, Write};

use crate::community_id;
use crate::engine::{FlowSink, WindowInfo};
use crate::flow::app::App;
use crate::flow::metrics::{ArgusMetrics, METRIC_NAMES};
use crate::flow::{CloseReason, Flow};
use crate::wire::{Addr, proto};

/// The CTU-13 binetflow columns, in their order.
pub const CTU_COLUMNS: [&str; 14] = [
    "StartTime",
    "Dur",
    "Proto",
    "SrcAddr",
    "Sport",
    "Dir",
    "DstAddr",
    "Dport",
    "State",
    "sTos",
    "dTos",
    "TotPkts",
    "TotBytes",
    "SrcBytes",
];

/// Metric columns already among the CTU columns.
const IN_CTU: [&str; 2] = ["SrcBytes", "Dur"];

/// Protocol name as `ra` prints it.
pub fn proto_name(p: u8) -> ProtoName {
    ProtoName(p)
}

pub struct ProtoName(u8);

impl ProtoName {
    /// The name, or `None` for a protocol printed as its number.
    fn name(&self) -> Option<&'static str> {
        Some(match self.0 {
            proto::ICMP => "icmp",
            proto::IGMP => "igmp",
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::ICMPV6 => "ipv6-icmp",
            proto::ARP => "arp",
            4 => "ipnip",
            41 => "ipv6",
            47 => "gre",
            50 => "esp",
            51 => "ah",
            89 => "ospf",
            103 => "pim",
            112 => "vrrp",
            132 => "sctp",
            _ => return None,
        })
    }
}

impl fmt::Display for ProtoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Records are formatted into one buffer, which goes to the writer whenever it holds this much.
const BATCH: usize = 256 << 10;

/// Writes flow records as they come out of the engine.
pub struct FlowWriter<W: Write> {
    out: W,
    /// Formatted records not yet handed to `out`; reused, so no allocation per record (it only
    /// grows past its start-up capacity for a record of unusual length, and then stays grown).
    buf: Vec<u8>,
    format: Format,
    windowed: bool,
    /// CSV: the application columns after the Argus ones.
    app_columns: bool,
    /// With the application columns: the DNS view PeerNamed reads, fed like the detector's.
    dns: Option<crate::dnsview::DnsView>,
    community_id_seed: u16,
    header_done: bool,
    /// The day last printed and its `YYYY/MM/DD ` prefix: consecutive records mostly share a day.
    day: Option<(u64, [u8; 11])>,
    pub error: Option<io::Error>,
    pub records: u64,
}

impl<W: Write> FlowWriter<W> {
    pub fn new(out: W, format: Format, windowed: bool) -> FlowWriter<W> {
        FlowWriter {
            out,
            buf: Vec::with_capacity(BATCH + (16 << 10)),
            format,
            windowed,
            app_columns: false,
            dns: None,
            community_id_seed: 0,
            header_done: false,
            day: None,
            error: None,
            records: 0,
        }
    }

    pub fn with_community_id_seed(mut self, seed: u16) -> FlowWriter<W> {
        self.community_id_seed = seed;
        self
    }

    /// CSV: adds the application columns (App, AppName, DnsRcode, Ja3, Ja4, HttpUserAgent,
    /// PeerNamed) after every Argus column, so scripts reading the CTU-13 and Argus columns by
    /// position still work. PeerNamed needs a DNS view of the detector's default size (taken
    /// here, once).
    pub fn with_app_columns(mut self, on: bool) -> FlowWriter<W> {
        self.app_columns = on;
        self.dns = on.then(|| {
            crate::dnsview::DnsView::new(crate::config::RulesConfig::default().dns_view_capacity)
        });
        self
    }

    /// Writes what is buffered and the CSV header (also for an empty capture), and flushes.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.header();
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self) {
        if self.header_done || self.format != Format::Csv {
            return;
        }
        self.header_done = true;
        let b = &mut self.buf;
        b.extend_from_slice(CTU_COLUMNS.join(",").as_bytes());
        if self.windowed {
            b.extend_from_slice(b",Window,WindowStart");
        }
        for name in METRIC_NAMES.iter().filter(|n| !IN_CTU.contains(n)) {
            b.push(b',');
            b.extend_from_slice(name.as_bytes());
        }
        if self.app_columns {
            b.extend_from_slice(b",App,AppName,DnsRcode,Ja3,Ja4,HttpUserAgent,PeerNamed");
        }
        // Last, so every column before it keeps its position.
        b.extend_from_slice(b",CommunityId\n");
    }

    /// Formats one record onto the buffer. Every column is formatted by hand: `write!` machinery
    /// and `{:.6}` were most of the time of `botd flows` on large captures.
    fn write_flow(&mut self, flow: &Flow, window: Option<&WindowInfo>) {
        self.header();
        let m = ArgusMetrics::of(flow);
        let arp = flow.proto == proto::ARP;
        let state = flow.state();
        let json = self.format == Format::Json;
        let day = &mut self.day;
        let b = &mut self.buf;
        if json {
            b.extend_from_slice(b"{\"StartTime\":\"");
            push_time(b, day, flow.start_ns);
            b.extend_from_slice(b"\",\"Dur\":");
            push_secs(b, flow.duration_ns());
            b.extend_from_slice(b",\"Proto\":\"");
            push_proto(b, flow.proto);
            b.extend_from_slice(b"\",\"SrcAddr\":\"");
            push_addr(b, flow.src);
            b.extend_from_slice(b"\",\"Sport\":\"");
            push_port(b, flow, true);
            b.extend_from_slice(b"\",\"Dir\":\"");
            push_short(b, flow.dir().trim());
            b.extend_from_slice(b"\",\"DstAddr\":\"");
            push_addr(b, flow.dst);
            b.extend_from_slice(b"\",\"Dport\":\"");
            push_port(b, flow, false);
            b.extend_from_slice(b"\",\"State\":\"");
            push_short(b, state.as_str());
            b.extend_from_slice(b"\",\"sTos\":\"");
            push_tos(b, flow.fwd.tos, flow.fwd.pkts, arp);
            b.extend_from_slice(b"\",\"dTos\":\"");
            push_tos(b, flow.rev.tos, flow.rev.pkts, arp);
            b.extend_from_slice(b"\",\"TotPkts\":");
            push_u64(b, flow.total_pkts());
            b.extend_from_slice(b",\"TotBytes\":");
            push_u64(b, flow.total_bytes());
            if let Some(w) = window {
                b.extend_from_slice(b",\"Window\":");
                push_u64(b, w.index);
                b.extend_from_slice(b",\"WindowStart\":\"");
                push_time(b, day, w.start_ns);
                b.push(b'"');
            }
        } else {
            push_time(b, day, flow.start_ns);
            b.push(b',');
            push_secs(b, flow.duration_ns());
            b.push(b',');
            push_proto(b, flow.proto);
            b.push(b',');
            push_addr(b, flow.src);
            b.push(b',');
            push_port(b, flow, true);
            b.push(b',');
            push_short(b, flow.dir());
            b.push(b',');
            push_addr(b, flow.dst);
            b.push(b',');
            push_port(b, flow, false);
            b.push(b',');
            push_short(b, state.as_str());
            b.push(b',');
            push_tos(b, flow.fwd.tos, flow.fwd.pkts, arp);
            b.push(b',');
            push_tos(b, flow.rev.tos, flow.rev.pkts, arp);
            b.push(b',');
            push_u64(b, flow.total_pkts());
            b.push(b',');
            push_u64(b, flow.total_bytes());
            b.push(b',');
            push_u64(b, flow.fwd.bytes);
            if let Some(w) = window {
                b.push(b',');
                push_u64(b, w.index);
                b.push(b',');
                push_time(b, day, w.start_ns);
            }
        }
        push_metrics(b, flow, &m, json);
        // ARP is not IP and has no Community ID: JSON leaves the key out, CSV the field empty.
        let cid = community_id::of_flow(flow, self.community_id_seed);
        if json {
            if let Some(c) = cid {
                b.extend_from_slice(b",\"CommunityId\":\"");
                b.extend_from_slice(c.as_bytes());
                b.push(b'"');
            }
            if !matches!(flow.app.app, App::None) {
                b.extend_from_slice(b",\"App\":");
                // Serialising into the reused buffer cannot fail; an error would only cut
                // this record's summary short.
                let _ = serde_json::to_writer(&mut *b, &flow.app.app);
            }
            b.extend_from_slice(b"}\n");
        } else {
            if self.app_columns {
                push_app_columns(b, &flow.app.app);
                b.push(b',');
                if let Some(dns) = self.dns.as_mut() {
                    // This record's own answers first, as the detector observes before it
                    // extracts features.
                    dns.observe(flow);
                    b.push(if crate::features::peer_named(flow, dns) {
                        b'1'
                    } else {
                        b'0'
                    });
                }
            }
            b.push(b',');
            if let Some(c) = cid {
                b.extend_from_slice(c.as_bytes());
            }
            b.push(b'\n');
        }
    }

    /// Hands the buffered records to the writer once there are enough of them.
    fn spill(&mut self) {
        if self.buf.len() >= BATCH {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.error = Some(e);
            }
            self.buf.clear();
        }
    }
}

/// The CSV application columns: protocol, the name it carries (DNS query, TLS server name, HTTP
/// Host), the DNS response code, JA3, JA4 and the HTTP User-Agent; empty where not known.
fn push_app_columns(b: &mut Vec<u8>, app: &App) {
    // The `proto` schema reads name, code and agent through the same function.
    let (name, rcode, agent) = crate::features::app_fields(app);
    let (ja3, ja4): (Option<[u8; 16]>, &str) = match app {
        App::Tls(t) => (t.ja3, &t.ja4),
        _ => (None, ""),
    };
    b.push(b',');
    if !matches!(app, App::None) {
        b.extend_from_slice(app.name().as_bytes());
    }
    b.push(b',');
    push_csv_text(b, name);
    b.push(b',');
    if let Some(r) = rcode {
        push_u64(b, u64::from(r));
    }
    b.push(b',');
    if let Some(j) = ja3 {
        for x in j {
            let _ = write!(b, "{x:02x}");
        }
    }
    b.push(b',');
    push_csv_text(b, ja4);
    b.push(b',');
    push_csv_text(b, agent);
}

/// A CSV field: quoted (quotes doubled) when it holds a comma, quote or line break.
fn push_csv_text(b: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        b.push(b'"');
        for c in s.bytes() {
            if c == b'"' {
                b.push(b'"');
            }
            b.push(c);
        }
        b.push(b'"');
    } else {
        b.extend_from_slice(s.as_bytes());
    }
}

/// The metric columns, in [`METRIC_NAMES`] order: CSV leaves out the two already among the CTU
/// columns (SrcBytes, Dur), JSON only Dur.
fn push_metrics(b: &mut Vec<u8>, flow: &Flow, m: &ArgusMetrics, json: bool) {
    if json {
        for (name, v) in METRIC_NAMES.iter().zip(m.values()) {
            if *name != "Dur" {
                b.extend_from_slice(b",\"");
                b.extend_from_slice(name.as_bytes());
                b.extend_from_slice(b"\":");
                push_num(b, v);
            }
        }
        return;
    }
    // Counts straight from their integers (what `push_num` prints for them as floats), the
    // rest in loops, so that `push_num` is inlined twice and runs without calls.
    let (s, d) = (&flow.fwd, &flow.rev);
    for v in [u64::from(s.ttl), u64::from(d.ttl), s.pkts, d.pkts, d.bytes] {
        b.push(b',');
        push_count(b, v);
    }
    for v in [
        m.src_load,
        m.dst_load,
        m.s_int_pkt,
        m.d_int_pkt,
        m.s_int_pkt_act,
        m.d_int_pkt_act,
        m.s_int_pkt_idl,
        m.d_int_pkt_idl,
        m.src_jitter,
        m.dst_jitter,
        m.src_jit_act,
        m.dst_jit_act,
    ] {
        b.push(b',');
        push_num(b, v);
    }
    for v in [s.max_size, d.max_size, s.min_size, d.min_size] {
        b.push(b',');
        push_u64(b, u64::from(v));
    }
    for v in [m.rate, m.src_rate, m.dst_rate] {
        b.push(b',');
        push_num(b, v);
    }
    // RunTime, then Mean, Sum, Min and Max: all the duration (`ArgusMetrics::of`), printed once.
    b.push(b',');
    let start = b.len();
    push_num(b, m.run_time);
    let dur = start..b.len();
    for _ in 0..4 {
        b.push(b',');
        b.extend_from_within(dur.clone());
    }
    for v in [m.load, m.p_src_loss, m.p_dst_loss] {
        b.push(b',');
        push_num(b, v);
    }
    for v in [s.app_bytes, d.app_bytes] {
        b.push(b',');
        push_count(b, v);
    }
}

/// A count as [`push_num`] prints it as a float: the integer itself below 10^15 (exact as an
/// f64 there), the float's formatting beyond.
#[inline(always)]
fn push_count(b: &mut Vec<u8>, v: u64) {
    if v < 1_000_000_000_000_000 {
        push_u64(b, v);
    } else {
        push_num_large(b, v as f64);
    }
}

/// Appends a short string byte by byte: cheaper than a copy call for the few bytes of a
/// direction, state or protocol name.
#[inline(always)]
fn push_short(b: &mut Vec<u8>, s: &str) {
    for &c in s.as_bytes() {
        b.push(c);
    }
}

/// "00" to "99".
// why: `i` runs below 100, the table's length; and this is evaluated at compile time, where an
// out-of-range index would be a build error, not a panic.
#[allow(clippy::indexing_slicing)]
const PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Two ASCII digits of `v % 100`.
#[inline(always)]
fn two(v: u32) -> [u8; 2] {
    // `% 100` keeps the index in range, so `get` never misses (and its check compiles away).
    PAIRS.get((v % 100) as usize).copied().unwrap_or([b'0'; 2])
}

/// Decimal, no padding; short values (most ports, sizes, TTLs, counts) without a buffer.
#[inline(always)]
fn push_u64(b: &mut Vec<u8>, v: u64) {
    if v < 10 {
        b.push(b'0' + v as u8);
    } else if v < 100 {
        b.extend_from_slice(&two(v as u32));
    } else if v < 10_000 {
        let v = v as u32;
        let [h0, h1] = two(v / 100);
        let [l0, l1] = two(v);
        if v < 1000 {
            b.extend_from_slice(&[h1, l0, l1]);
        } else {
            b.extend_from_slice(&[h0, h1, l0, l1]);
        }
    } else {
        push_u64_long(b, v);
    }
}

#[inline(never)]
fn push_u64_long(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `.` and six zero-padded digits of `v` (below 1,000,000).
#[inline]
fn push_frac6(b: &mut Vec<u8>, v: u32) {
    // Fixed point: `t` is v / 10^4 with 32 fraction bits, from the reciprocal rounded up, so it
    // is at most v * 0.28 / 2^32 (under 7e-5 for v < 10^6) above the true value, too little to
    // reach the next digit anywhere below. Each further pair of digits is the integer part of
    // the fraction times 100 (exact integer arithmetic): one multiply each, not a division chain.
    let t = u64::from(v) * (u64::from(u32::MAX) / 10_000 + 1);
    let hi = (t >> 32) as u32;
    let t = (t & 0xffff_ffff) * 100;
    let mid = (t >> 32) as u32;
    let t = (t & 0xffff_ffff) * 100;
    let lo = (t >> 32) as u32;
    let [a0, a1] = two(hi);
    let [b0, b1] = two(mid);
    let [c0, c1] = two(lo);
    b.extend_from_slice(&[b'.', a0, a1, b0, b1, c0, c1]);
}

/// `YYYY/MM/DD HH:MM:SS.ffffff` in UTC, as [`crate::time::ArgusTime`] prints it.
fn push_time(b: &mut Vec<u8>, cache: &mut Option<(u64, [u8; 11])>, ns: u64) {
    let secs = ns / 1_000_000_000;
    let days = secs / 86_400;
    let prefix = match cache {
        Some((d, p)) if *d == days => *p,
        _ => {
            let (y, mo, d) = crate::time::civil_from_days(days as i64);
            // Years of u64 nanoseconds are 1970..=2554: always four digits.
            let y = y.max(0) as u32 % 10_000;
            let [y0, y1] = two(y / 100);
            let [y2, y3] = two(y % 100);
            let [m0, m1] = two(mo);
            let [d0, d1] = two(d);
            let p = [y0, y1, y2, y3, b'/', m0, m1, b'/', d0, d1, b' '];
            *cache = Some((days, p));
            p
        }
    };
    b.extend_from_slice(&prefix);
    let sod = (secs % 86_400) as u32;
    let [h0, h1] = two(sod / 3600);
    let [n0, n1] = two(sod / 60 % 60);
    let [s0, s1] = two(sod % 60);
    b.extend_from_slice(&[h0, h1, b':', n0, n1, b':', s0, s1]);
    push_frac6(b, (ns % 1_000_000_000 / 1000) as u32);
}

/// Seconds with six decimals, as [`crate::time::Secs`] prints durations.
#[inline]
fn push_secs(b: &mut Vec<u8>, ns: u64) {
    let micros = ns / 1000;
    push_u64(b, micros / 1_000_000);
    push_frac6(b, (micros % 1_000_000) as u32);
}

fn push_proto(b: &mut Vec<u8>, p: u8) {
    match proto_name(p).name() {
        Some(name) => push_short(b, name),
        None => push_u64(b, u64::from(p)),
    }
}

/// A port column: decimal for TCP/UDP, hex for ICMP (as `ra` prints them), empty where Argus
/// has none.
fn push_port(b: &mut Vec<u8>, flow: &Flow, src: bool) {
    let v = if src { flow.sport } else { flow.dport };
    match flow.proto {
        proto::TCP | proto::UDP | proto::ICMPV6 => push_u64(b, u64::from(v)),
        proto::ICMP => {
            let hex = |n: u16| {
                let n = (n & 0xf) as u8;
                if n < 10 { b'0' + n } else { b'a' + n - 10 }
            };
            b.extend_from_slice(&[b'0', b'x', hex(v >> 12), hex(v >> 8), hex(v >> 4), hex(v)]);
        }
        _ => {}
    }
}

/// ToS column: empty when no packet went that way (and for ARP).
#[inline]
fn push_tos(b: &mut Vec<u8>, tos: u8, pkts: u64, arp: bool) {
    if pkts != 0 && !arp {
        push_u64(b, u64::from(tos));
    }
}

/// IPv4 by hand (the common case); IPv6 through the standard formatter.
fn push_addr(b: &mut Vec<u8>, a: Addr) {
    if a.v6 {
        let _ = write!(b, "{a}");
        return;
    }
    let [o0, o1, o2, o3, ..] = a.bytes;
    push_u64(b, u64::from(o0));
    b.push(b'.');
    push_u64(b, u64::from(o1));
    b.push(b'.');
    push_u64(b, u64::from(o2));
    b.push(b'.');
    push_u64(b, u64::from(o3));
}

/// Appends a metric value: integers without a fraction, others with six decimals (as `ra` does);
/// non-finite values print as 0. Hand-rolled because `{:.6}` dominated the profile of `botd flows`.
#[inline(always)]
fn push_num(b: &mut Vec<u8>, v: f64) {
    // Most metrics of most flows are zero (one-way flows, single packets): the cheapest path.
    if v == 0.0 || !v.is_finite() {
        b.push(b'0');
        return;
    }
    let a = v.abs();
    if a < 9e12 {
        // Exact: `a` is below 2^53, so truncating and converting back only loses a fraction.
        // (Signed conversions: cheaper than unsigned ones on x86-64, and in range here.)
        let whole = a as i64;
        if v < 0.0 {
            b.push(b'-');
        }
        if whole as f64 == a {
            push_u64(b, whole as u64);
            return;
        }
        // Round half away from zero without calling libm's round().
        let micros = (a * 1e6 + 0.5) as i64 as u64;
        push_u64(b, micros / 1_000_000);
        push_frac6(b, (micros % 1_000_000) as u32);
        return;
    }
    push_num_large(b, v);
}

/// [`push_num`] from 9e12 on (beyond what fits as micro-units in an i64), where it prints what
/// the standard formatter prints.
#[inline(never)]
fn push_num_large(b: &mut Vec<u8>, v: f64) {
    if v.abs() < 1e15 && v.fract() == 0.0 {
        b.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        return;
    }
    let _ = write!(b, "{v:.6}");
}

impl<W: Write> FlowSink for FlowWriter<W> {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, window: Option<&WindowInfo>) {
        if self.error.is_some() {
            return;
        }
        self.write_flow(flow, window);
        self.records += 1;
        self.spill();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The formatting `push_num` replaced, kept as the reference.
    fn reference(v: f64) -> String {
        if v == 0.0 || !v.is_finite() {
            "0".to_string()
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{}", v as i64)
        } else {
            format!("{v:.6}")
        }
    }

    #[test]
    fn numbers_print_as_before() {
        let mut vals = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            0.0000005,
            0.0000004999,
            1.9999995,
            123.456789,
            -123.4567894,
            8.999_999_999_999e12,
            9e12,
            9.5e12,
            1e15,
            1.5e15,
            1e300,
            -1e300,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            999_999.999_999_5,
            12_345_678.0,
        ];
        let mut x = 0.000_123_f64;
        while x < 1e16 {
            vals.push(x);
            vals.push(-x * 1.37);
            vals.push(x.trunc());
            x *= 3.7;
        }
        for v in vals {
            let mut b = Vec::new();
            push_num(&mut b, v);
            let want = reference(v);
            // The rounding of the six-decimal path (half away from zero on micro-units) is the
            // old hand-rolled one, which `{:.6}` matches except on exact binary ties.
            if (1e-7..9e12).contains(&v.abs()) && v.fract() != 0.0 {
                let micros = (v.abs() * 1e6 + 0.5) as u64;
                let sign = if v < 0.0 { "-" } else { "" };
                let old = format!("{sign}{}.{:06}", micros / 1_000_000, micros % 1_000_000);
                assert_eq!(String::from_utf8(b).unwrap(), old, "{v}");
            } else {
                assert_eq!(String::from_utf8(b).unwrap(), want, "{v}");
            }
        }
    }

    #[test]
    fn six_digit_fractions() {
        let mut b = Vec::new();
        for v in 0..1_000_000u32 {
            b.clear();
            push_frac6(&mut b, v);
            let want = format!(".{v:06}");
            assert_eq!(b, want.as_bytes(), "{v}");
        }
    }

    #[test]
    fn integers_and_times() {
        for v in [
            0u64,
            9,
            10,
            99,
            100,
            999,
            1000,
            9999,
            10_000,
            65_535,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            push_u64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), v.to_string());
        }
        let mut cache = None;
        for ns in [
            0,
            1_520_628_556_520_001_000,
            951_782_400_000_000_000,
            u64::MAX,
        ] {
            for _ in 0..2 {
                let mut b = Vec::new();
                push_time(&mut b, &mut cache, ns);
                assert_eq!(
                    String::from_utf8(b).unwrap(),
                    crate::time::ArgusTime(ns).to_string()
                );
            }
            let mut b = Vec::new();
            push_secs(&mut b, ns);
            assert_eq!(
                String::from_utf8(b).unwrap(),
                crate::time::Secs(ns).to_string()
            );
        }
    }
}
