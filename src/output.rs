//! Flow record writers: CSV whose first 14 columns are the CTU-13 binetflow columns (so existing
//! CTU-13 tooling reads it), and JSON lines with the same fields.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;
use std::io::{self, Write};

use crate::engine::{FlowSink, WindowInfo};
use crate::flow::metrics::{ArgusMetrics, METRIC_NAMES};
use crate::flow::{CloseReason, Flow};
use crate::time::{ArgusTime, Secs};
use crate::wire::proto;

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

impl fmt::Display for ProtoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
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
            n => return write!(f, "{n}"),
        };
        f.write_str(name)
    }
}

/// A port column: decimal for TCP/UDP, hex for ICMP (as `ra` prints them), empty where Argus has none.
struct Port<'a>(&'a Flow, bool);

impl fmt::Display for Port<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (flow, src) = (self.0, self.1);
        let v = if src { flow.sport } else { flow.dport };
        match flow.proto {
            proto::TCP | proto::UDP => write!(f, "{v}"),
            proto::ICMP => write!(f, "0x{v:04x}"),
            proto::ICMPV6 => write!(f, "{v}"),
            _ => Ok(()),
        }
    }
}

/// ToS column: empty when no packet went that way.
struct Tos(u8, u64, bool);

impl fmt::Display for Tos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 == 0 || self.2 {
            Ok(())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

/// Writes flow records as they come out of the engine.
pub struct FlowWriter<W: Write> {
    out: W,
    /// One record is formatted here, then written at once; reused, so no allocation per record.
    line: Vec<u8>,
    format: Format,
    windowed: bool,
    header_done: bool,
    pub error: Option<io::Error>,
    pub records: u64,
}

impl<W: Write> FlowWriter<W> {
    pub fn new(out: W, format: Format, windowed: bool) -> FlowWriter<W> {
        FlowWriter {
            out,
            line: Vec::with_capacity(1024),
            format,
            windowed,
            header_done: false,
            error: None,
            records: 0,
        }
    }

    /// Writes the CSV header (also for an empty capture) and flushes.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.header()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self) -> io::Result<()> {
        if self.header_done || self.format != Format::Csv {
            return Ok(());
        }
        self.header_done = true;
        self.out.write_all(CTU_COLUMNS.join(",").as_bytes())?;
        if self.windowed {
            self.out.write_all(b",Window,WindowStart")?;
        }
        for name in METRIC_NAMES.iter().filter(|n| !IN_CTU.contains(n)) {
            write!(self.out, ",{name}")?;
        }
        self.out.write_all(b"\n")
    }

    fn write_flow(&mut self, flow: &Flow, window: Option<&WindowInfo>) -> io::Result<()> {
        self.header()?;
        let m = ArgusMetrics::of(flow);
        let arp = flow.proto == proto::ARP;
        let state = flow.state();
        let line = &mut self.line;
        line.clear();
        match self.format {
            Format::Csv => {
                // The hot columns are formatted by hand: `write!` machinery was a third of the
                // time of `botd flows` on large captures.
                push_time(line, flow.start_ns);
                line.push(b',');
                push_secs(line, flow.duration_ns());
                write!(line, ",{},", proto_name(flow.proto))?;
                push_addr(line, flow.src);
                line.push(b',');
                write!(line, "{}", Port(flow, true))?;
                line.push(b',');
                line.extend_from_slice(flow.dir().as_bytes());
                line.push(b',');
                push_addr(line, flow.dst);
                line.push(b',');
                write!(
                    line,
                    "{},{},{},{},",
                    Port(flow, false),
                    state,
                    Tos(flow.fwd.tos, flow.fwd.pkts, arp),
                    Tos(flow.rev.tos, flow.rev.pkts, arp),
                )?;
                push_uint(line, flow.total_pkts());
                line.push(b',');
                push_uint(line, flow.total_bytes());
                line.push(b',');
                push_uint(line, flow.fwd.bytes);
                if let Some(w) = window {
                    write!(line, ",{},{}", w.index, ArgusTime(w.start_ns))?;
                }
                for (name, v) in METRIC_NAMES.iter().zip(m.values()) {
                    if !IN_CTU.contains(name) {
                        line.push(b',');
                        push_num(line, v);
                    }
                }
                line.push(b'\n');
            }
            Format::Json => {
                write!(
                    line,
                    "{{\"StartTime\":\"{}\",\"Dur\":{},\"Proto\":\"{}\",\"SrcAddr\":\"{}\",\"Sport\":\"{}\",\"Dir\":\"{}\",\"DstAddr\":\"{}\",\"Dport\":\"{}\",\"State\":\"{}\",\"sTos\":\"{}\",\"dTos\":\"{}\",\"TotPkts\":{},\"TotBytes\":{}",
                    ArgusTime(flow.start_ns),
                    Secs(flow.duration_ns()),
                    proto_name(flow.proto),
                    flow.src,
                    Port(flow, true),
                    flow.dir().trim(),
                    flow.dst,
                    Port(flow, false),
                    state,
                    Tos(flow.fwd.tos, flow.fwd.pkts, arp),
                    Tos(flow.rev.tos, flow.rev.pkts, arp),
                    flow.total_pkts(),
                    flow.total_bytes(),
                )?;
                if let Some(w) = window {
                    write!(
                        line,
                        ",\"Window\":{},\"WindowStart\":\"{}\"",
                        w.index,
                        ArgusTime(w.start_ns)
                    )?;
                }
                for (name, v) in METRIC_NAMES.iter().zip(m.values()) {
                    if *name != "Dur" {
                        write!(line, ",\"{name}\":")?;
                        push_num(line, v);
                    }
                }
                line.extend_from_slice(b"}\n");
            }
        }
        self.out.write_all(&self.line)
    }
}

fn push_uint(line: &mut Vec<u8>, v: u64) {
    line.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Zero-padded decimal of `width` digits.
fn push_padded(line: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let width = width.min(digits.len());
    for d in digits.iter_mut().take(width).rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    line.extend_from_slice(digits.get(..width).unwrap_or(&[]));
}

/// [`ArgusTime`] without the formatting machinery.
fn push_time(line: &mut Vec<u8>, ns: u64) {
    let secs = ns / 1_000_000_000;
    let (y, mo, d) = crate::time::civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    push_padded(line, y.max(0) as u64, 4);
    line.push(b'/');
    push_padded(line, u64::from(mo), 2);
    line.push(b'/');
    push_padded(line, u64::from(d), 2);
    line.push(b' ');
    push_padded(line, sod / 3600, 2);
    line.push(b':');
    push_padded(line, sod / 60 % 60, 2);
    line.push(b':');
    push_padded(line, sod % 60, 2);
    line.push(b'.');
    push_padded(line, ns % 1_000_000_000 / 1000, 6);
}

/// [`Secs`] without the formatting machinery.
fn push_secs(line: &mut Vec<u8>, ns: u64) {
    let micros = ns / 1000;
    push_uint(line, micros / 1_000_000);
    line.push(b'.');
    push_padded(line, micros % 1_000_000, 6);
}

/// IPv4 by hand (the common case); IPv6 through the standard formatter.
fn push_addr(line: &mut Vec<u8>, a: crate::wire::Addr) {
    if a.v6 {
        let _ = write!(line, "{a}");
        return;
    }
    for (i, o) in a.bytes.iter().take(4).enumerate() {
        if i > 0 {
            line.push(b'.');
        }
        push_uint(line, u64::from(*o));
    }
}

/// Appends a metric value: integers without a fraction, others with six decimals (as `ra` does);
/// non-finite values print as 0. Hand-rolled because `{:.6}` dominated the profile of `botd flows`.
fn push_num(line: &mut Vec<u8>, v: f64) {
    // Most metrics of most flows are zero (one-way flows, single packets): the cheapest path.
    if v == 0.0 || !v.is_finite() {
        line.push(b'0');
        return;
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        line.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        return;
    }
    if v.abs() >= 9e12 {
        // Beyond what fits as micro-units in an i64: fall back to the standard formatter.
        let _ = write!(line, "{v:.6}");
        return;
    }
    // Round half away from zero without calling libm's round().
    let micros = (v.abs() * 1e6 + 0.5) as u64;
    if v < 0.0 {
        line.push(b'-');
    }
    push_uint(line, micros / 1_000_000);
    line.push(b'.');
    push_padded(line, micros % 1_000_000, 6);
}

impl<W: Write> FlowSink for FlowWriter<W> {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, window: Option<&WindowInfo>) {
        if self.error.is_some() {
            return;
        }
        match self.write_flow(flow, window) {
            Ok(()) => self.records += 1,
            Err(e) => self.error = Some(e),
        }
    }
}
