//! Named, versioned feature schemas: how a flow record becomes the vector a model scores.
//!
//! * `argus` — the original detector's 36 Argus features, Dir and State as ordinal codes.
//! * `ctu` — what the 14 CTU-13 binetflow columns alone allow, so models can be trained on CTU-13.
//! * `proto` — `argus` plus what botd's protocol parsers and DNS view say of the flow (its
//!   application, whether a DNS answer named the peer before the flow, a TLS or HTTP flow
//!   without a name or with an address for a name, an HTTP request without a user agent, a
//!   failed DNS lookup). No CTU-13 or Argus file has these, so only botd's own flows train it.
//!
//! Each schema has a stable hash over its name, version, feature names and code tables; a model
//! carries the hash it was trained with, and botd refuses a model whose hash differs. The trainer
//! (`models/train/`) computes the same features from `botd flows` CSV and from binetflow files;
//! `docs/features.md` is the reference for both sides.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::dnsview::DnsView;
use crate::flow::Flow;
use crate::flow::app::App;
use crate::flow::metrics::ArgusMetrics;
use crate::wire::proto;

/// Dir column (trimmed) to ordinal code; anything else is -1.
pub const DIR_CODES: [&str; 7] = ["->", "<-", "<->", "?>", "<?", "<?>", "who"];

/// State column to ordinal code (the `argus` schema); anything else is -1.
pub const STATE_CODES: [&str; 36] = [
    "CON", "INT", "REQ", "ACC", "FIN", "RST", "CLO", "RSP", "ECO", "ECR", "URP", "URH", "URN",
    "URO", "URF", "URFIL", "URNPRO", "URHPRO", "TXD", "RED", "SRC", "PAR", "TST", "TSR", "IRQ",
    "IRR", "MAS", "MSR", "RTA", "RTS", "NRA", "NRS", "NNS", "MHR", "PTB", "UNK",
];

/// Coarse state classes of the `ctu` schema: botd's (Argus's) state names and CTU-13's TCP flag
/// strings (`S_RA`, `FSPA_FSPA`, ...) both map onto these.
pub const STATE_CLASSES: [&str; 10] = [
    "REQ", "ACC", "CON", "FIN", "RST", "INT", "ECO", "ECR", "ICMP", "OTHER",
];

/// Proto column to code (`ctu` schema); anything else is the last code.
pub const PROTO_CODES: [&str; 7] = ["tcp", "udp", "icmp", "ipv6-icmp", "arp", "igmp", "other"];

pub const ARGUS_FEATURES: [&str; 36] = [
    "sTtl",
    "dTtl",
    "SrcPkts",
    "DstPkts",
    "SrcBytes",
    "DstBytes",
    "SrcLoad",
    "DstLoad",
    "Dir",
    "SIntPkt",
    "DIntPkt",
    "SIntPktAct",
    "DIntPktAct",
    "SIntPktIdl",
    "DIntPktIdl",
    "SrcJitter",
    "DstJitter",
    "SrcJitAct",
    "DstJitAct",
    "State",
    "sMaxPktSz",
    "dMaxPktSz",
    "sMinPktSz",
    "dMinPktSz",
    "Dur",
    "Rate",
    "SrcRate",
    "DstRate",
    "RunTime",
    "Mean",
    "Sum",
    "Min",
    "Max",
    "Load",
    "pSrcLoss",
    "pDstLoss",
];

/// The App column (`botd flows --app`; empty for none, which is `-`) to code (`proto` schema):
/// [`App::name`] of each variant; anything else is -1.
pub const APP_CODES: [&str; 12] = [
    "-",
    "dns",
    "tls",
    "http",
    "smtp",
    "irc",
    "ssh",
    "mining",
    "dhcp",
    "bittorrent",
    "arp",
    "ndp",
];

/// What `proto` adds to the `argus` features, in this order (docs/features.md).
pub const PROTO_EXTRA: [&str; 6] = [
    "App",
    "PeerNamed",
    "NoName",
    "NameIsAddr",
    "NoAgent",
    "DnsFail",
];

/// `argus` then [`PROTO_EXTRA`].
// Evaluated at compile time: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
pub const PROTO_FEATURES: [&str; 42] = {
    let mut out = [""; 42];
    let mut i = 0;
    while i < ARGUS_FEATURES.len() {
        out[i] = ARGUS_FEATURES[i];
        i += 1;
    }
    while i < 42 {
        out[i] = PROTO_EXTRA[i - ARGUS_FEATURES.len()];
        i += 1;
    }
    out
};

pub const CTU_FEATURES: [&str; 14] = [
    "Dur",
    "Proto",
    "Dir",
    "StateClass",
    "sTos",
    "dTos",
    "TotPkts",
    "TotBytes",
    "SrcBytes",
    "DstBytes",
    "SrcBytesRatio",
    "BytesPerPkt",
    "PktRate",
    "BitRate",
];

/// A feature schema.
#[derive(Debug, PartialEq, Eq)]
pub struct Schema {
    pub name: &'static str,
    pub version: u32,
    pub features: &'static [&'static str],
}

pub const ARGUS: Schema = Schema {
    name: "argus",
    version: 1,
    features: &ARGUS_FEATURES,
};

pub const CTU: Schema = Schema {
    name: "ctu",
    version: 1,
    features: &CTU_FEATURES,
};

pub const PROTO: Schema = Schema {
    name: "proto",
    version: 1,
    features: &PROTO_FEATURES,
};

pub const SCHEMAS: [&Schema; 3] = [&ARGUS, &CTU, &PROTO];

pub fn schema_by_name(name: &str) -> Option<&'static Schema> {
    SCHEMAS.iter().copied().find(|s| s.name == name)
}

fn code_of(table: &[&str], value: &str) -> f32 {
    table
        .iter()
        .position(|c| *c == value)
        .map_or(-1.0, |i| i as f32)
}

pub fn dir_code(dir: &str) -> f32 {
    code_of(&DIR_CODES, dir.trim())
}

pub fn state_code(state: &str) -> f32 {
    code_of(&STATE_CODES, state)
}

pub fn app_code(app: &str) -> f32 {
    code_of(&APP_CODES, if app.is_empty() { "-" } else { app })
}

/// Whether a TLS server name or HTTP Host is an address (`1.2.3.4`, `1.2.3.4:8080`, `::1`,
/// `[::1]:8080`) rather than a name: software that never resolved its peer.
pub fn name_is_addr(name: &str) -> bool {
    use std::net::IpAddr;
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    match name.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()) => {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            host.parse::<IpAddr>().is_ok()
        }
        _ => false,
    }
}

/// The `proto` features after the `argus` ones, from what `botd flows --app` prints: the App,
/// AppName, DnsRcode, HttpUserAgent and PeerNamed columns.
pub fn proto_from_columns(c: &ProtoColumns<'_>, out: &mut [f32]) {
    let named = matches!(c.app, "tls" | "http");
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let values = [
        app_code(c.app),
        flag(c.peer_named),
        flag(named && c.name.is_empty()),
        flag(named && name_is_addr(c.name)),
        flag(c.app == "http" && c.user_agent.is_empty()),
        flag(c.app == "dns" && c.dns_rcode.is_some_and(|r| r != 0)),
    ];
    for (o, v) in out.iter_mut().zip(values) {
        *o = v;
    }
}

/// The `botd flows --app` columns the `proto` schema reads beyond the `argus` ones.
pub struct ProtoColumns<'a> {
    /// App (empty or `-` for none).
    pub app: &'a str,
    /// AppName: the DNS query, TLS server name, HTTP Host, ...
    pub name: &'a str,
    pub dns_rcode: Option<u8>,
    pub user_agent: &'a str,
    /// PeerNamed: [`peer_named`].
    pub peer_named: bool,
}

/// Whether a DNS answer botd saw (in a record it emitted before this one, or in this one) named
/// the flow's destination at or before the flow's start: the PeerNamed column and feature.
pub fn peer_named(flow: &Flow, dns: &DnsView) -> bool {
    dns.resolved_before(flow.dst.to_ip(), flow.start_ns)
}

/// The name, DNS response code and user agent the App columns print for a flow.
pub fn app_fields(app: &App) -> (&str, Option<u8>, &str) {
    match app {
        App::Dns(d) => (&d.qname, d.rcode, ""),
        App::Tls(t) => (&t.sni, None, ""),
        App::Http(h) => (&h.host, None, &h.user_agent),
        App::Dhcp(d) => (&d.hostname, None, ""),
        App::Irc(i) => (&i.nick, None, ""),
        App::Mining(m) => (&m.method, None, ""),
        App::Ssh(s) => (&s.client_banner, None, ""),
        App::Smtp(s) => (&s.ehlo, None, ""),
        App::Profile(p) => (&p.os, None, ""),
        _ => ("", None, ""),
    }
}

pub fn proto_code(proto_name: &str) -> f32 {
    PROTO_CODES
        .iter()
        .position(|c| *c == proto_name)
        .unwrap_or(PROTO_CODES.len() - 1) as f32
}

/// The `ctu` state class of a State column value: an Argus state name or a CTU-13 flag string.
pub fn state_class(state: &str) -> &'static str {
    if let Some((src, dst)) = state.split_once('_') {
        // TCP flag strings: letters seen from the source, then from the destination.
        let any = |c: char| src.contains(c) || dst.contains(c);
        return if any('R') {
            "RST"
        } else if any('F') {
            "FIN"
        } else if dst.contains('S') {
            if src.contains('A') { "CON" } else { "ACC" }
        } else if src.contains('S') {
            if src.contains('A') || src.contains('P') || !dst.is_empty() {
                "CON"
            } else {
                "REQ"
            }
        } else {
            "CON"
        };
    }
    match state {
        "REQ" | "ACC" | "CON" | "FIN" | "RST" | "INT" | "ECO" | "ECR" => STATE_CLASSES
            .iter()
            .find(|c| **c == state)
            .copied()
            .unwrap_or("OTHER"),
        "CLO" => "FIN",
        // Every ICMP / ICMPv6 state name (URP ... PTB); UNK stays OTHER.
        s if s != "UNK" && STATE_CODES[10..].contains(&s) => "ICMP",
        _ => "OTHER",
    }
}

pub fn state_class_code(state: &str) -> f32 {
    code_of(&STATE_CLASSES, state_class(state))
}

/// The Proto column value the `ctu` schema encodes (`PROTO_CODES`); every other protocol is
/// "other". (The CSV writer prints more names: `output::proto_name`.)
pub fn proto_str(p: u8) -> &'static str {
    match p {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::ICMP => "icmp",
        proto::ICMPV6 => "ipv6-icmp",
        proto::ARP => "arp",
        proto::IGMP => "igmp",
        _ => "other",
    }
}

impl Schema {
    /// The canonical text the hash is taken over (the trainer builds the same text).
    pub fn canonical(&self) -> String {
        let codes = match self.name {
            "argus" => format!(
                "Dir:{}\nState:{}",
                DIR_CODES.join(","),
                STATE_CODES.join(",")
            ),
            "proto" => format!(
                "Dir:{}\nState:{}\nApp:{}",
                DIR_CODES.join(","),
                STATE_CODES.join(","),
                APP_CODES.join(",")
            ),
            _ => format!(
                "Dir:{}\nStateClass:{}\nProto:{}",
                DIR_CODES.join(","),
                STATE_CLASSES.join(","),
                PROTO_CODES.join(",")
            ),
        };
        format!(
            "botd-schema\n{}\n{}\n{}\n{}\n",
            self.name,
            self.version,
            self.features.join(","),
            codes
        )
    }

    /// FNV-1a 64 of [`Schema::canonical`], as 16 hex digits.
    pub fn hash(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.canonical().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Writes the flow's features into `out` (at least [`Schema::len`] long). No allocation.
    /// `dns`: the DNS view as of this record (it has seen every answer of the records before it
    /// and of this one, [`DnsView::observe`]); only `proto` reads it.
    pub fn extract(&self, flow: &Flow, dns: &DnsView, out: &mut [f32]) {
        match self.name {
            "argus" => extract_argus(flow, out),
            "proto" => {
                extract_argus(flow, out);
                let (name, dns_rcode, user_agent) = app_fields(&flow.app.app);
                let cols = ProtoColumns {
                    app: flow.app.app.name(),
                    name,
                    dns_rcode,
                    user_agent,
                    peer_named: peer_named(flow, dns),
                };
                if let Some(rest) = out.get_mut(ARGUS_FEATURES.len()..) {
                    proto_from_columns(&cols, rest);
                }
            }
            _ => extract_ctu(flow, out),
        }
    }
}

fn extract_argus(flow: &Flow, out: &mut [f32]) {
    let m = ArgusMetrics::of(flow);
    let values = [
        m.s_ttl,
        m.d_ttl,
        m.src_pkts,
        m.dst_pkts,
        m.src_bytes,
        m.dst_bytes,
        m.src_load,
        m.dst_load,
        f64::from(dir_code(flow.dir())),
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
        f64::from(state_code(flow.state().as_str())),
        m.s_max_pkt_sz,
        m.d_max_pkt_sz,
        m.s_min_pkt_sz,
        m.d_min_pkt_sz,
        m.dur,
        m.rate,
        m.src_rate,
        m.dst_rate,
        m.run_time,
        m.mean,
        m.sum,
        m.min,
        m.max,
        m.load,
        m.p_src_loss,
        m.p_dst_loss,
    ];
    for (o, v) in out.iter_mut().zip(values) {
        *o = v as f32;
    }
}

/// The `ctu` features from what a binetflow row holds; a direction without packets has ToS -1
/// (the empty column).
pub fn ctu_from_columns(c: &CtuColumns<'_>, out: &mut [f32]) {
    let dst_bytes = c.tot_bytes - c.src_bytes;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let values = [
        c.dur,
        f64::from(proto_code(c.proto)),
        f64::from(dir_code(c.dir)),
        f64::from(state_class_code(c.state)),
        c.s_tos,
        c.d_tos,
        c.tot_pkts,
        c.tot_bytes,
        c.src_bytes,
        dst_bytes,
        ratio(c.src_bytes, c.tot_bytes),
        ratio(c.tot_bytes, c.tot_pkts),
        ratio(c.tot_pkts, c.dur),
        ratio(c.tot_bytes * 8.0, c.dur),
    ];
    for (o, v) in out.iter_mut().zip(values) {
        *o = v as f32;
    }
}

/// The binetflow columns the `ctu` schema reads.
pub struct CtuColumns<'a> {
    pub dur: f64,
    pub proto: &'a str,
    pub dir: &'a str,
    pub state: &'a str,
    pub s_tos: f64,
    pub d_tos: f64,
    pub tot_pkts: f64,
    pub tot_bytes: f64,
    pub src_bytes: f64,
}

fn extract_ctu(flow: &Flow, out: &mut [f32]) {
    let tos = |d: &crate::flow::DirStats| {
        if d.pkts == 0 || flow.proto == proto::ARP {
            -1.0
        } else {
            f64::from(d.tos)
        }
    };
    let state = flow.state();
    let cols = CtuColumns {
        dur: flow.duration_ns() as f64 / 1e9,
        proto: proto_str(flow.proto),
        dir: flow.dir(),
        state: state.as_str(),
        s_tos: tos(&flow.fwd),
        d_tos: tos(&flow.rev),
        tot_pkts: flow.total_pkts() as f64,
        tot_bytes: flow.total_bytes() as f64,
        src_bytes: flow.fwd.bytes as f64,
    };
    ctu_from_columns(&cols, out);
}

/// UDP ports of the background services every host uses: DNS, DHCP, NTP, NetBIOS name and
/// datagram, DHCPv6, SSDP, mDNS, LLMNR. The host scorer leaves flows from or to them (and TCP to
/// port 53) out of a host's model value and its probe counts (docs/features.md, "Per-host window
/// features").
pub const SERVICE_UDP_PORTS: [u16; 11] = [53, 67, 68, 123, 137, 138, 546, 547, 1900, 5353, 5355];

/// Whether a flow is background service traffic (see [`SERVICE_UDP_PORTS`]).
pub fn is_service_flow(proto_nr: u8, sport: u16, dport: u16) -> bool {
    match proto_nr {
        proto::UDP => SERVICE_UDP_PORTS.contains(&sport) || SERVICE_UDP_PORTS.contains(&dport),
        proto::TCP => dport == 53,
        _ => false,
    }
}

/// A 32-bit FNV-1a hash of a probe target (address, port, protocol): the per-host distinct
/// target count compares these.
pub fn target_hash(addr: std::net::IpAddr, port: u16, proto_nr: u8) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    };
    match addr {
        std::net::IpAddr::V4(a) => a.octets().into_iter().for_each(&mut eat),
        std::net::IpAddr::V6(a) => a.octets().into_iter().for_each(&mut eat),
    }
    port.to_be_bytes().into_iter().for_each(&mut eat);
    eat(proto_nr);
    h
}

/// Collects the feature rows of every flow record (offline tools, tests and benchmarks).
pub struct FeatureRows {
    pub schema: &'static Schema,
    /// Row-major, `schema.len()` values per row.
    pub rows: Vec<f32>,
    /// Fed like the detector's (default capacity), for `proto`'s PeerNamed.
    dns: DnsView,
}

impl FeatureRows {
    pub fn new(schema: &'static Schema) -> FeatureRows {
        let capacity = if schema.name == "proto" {
            crate::config::RulesConfig::default().dns_view_capacity
        } else {
            1
        };
        FeatureRows {
            schema,
            rows: Vec::new(),
            dns: DnsView::new(capacity),
        }
    }
    pub fn len(&self) -> usize {
        self.rows.len() / self.schema.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

impl crate::engine::FlowSink for FeatureRows {
    fn flow(
        &mut self,
        flow: &Flow,
        _reason: crate::flow::CloseReason,
        _window: Option<&crate::engine::WindowInfo>,
    ) {
        if self.schema.name == "proto" {
            self.dns.observe(flow);
        }
        let start = self.rows.len();
        self.rows.resize(start + self.schema.len(), 0.0);
        if let Some(row) = self.rows.get_mut(start..) {
            self.schema.extract(flow, &self.dns, row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable() {
        // Changing a schema must change its version; these pin the published hashes.
        assert_eq!(ARGUS.hash().len(), 16);
        assert_ne!(ARGUS.hash(), CTU.hash());
        assert_eq!(ARGUS.hash(), ARGUS.hash());
    }

    #[test]
    fn ctu_flag_strings_map_to_classes() {
        assert_eq!(state_class("S_RA"), "RST");
        assert_eq!(state_class("FSPA_FSPA"), "FIN");
        assert_eq!(state_class("S_"), "REQ");
        assert_eq!(state_class("S_SA"), "ACC");
        assert_eq!(state_class("SPA_SPA"), "CON");
        assert_eq!(state_class("URP"), "ICMP");
        assert_eq!(state_class("CON"), "CON");
        assert_eq!(state_class("???"), "OTHER");
        assert_eq!(dir_code("  <->"), 2.0);
        assert_eq!(proto_code("gre"), 6.0);
    }

    #[test]
    fn proto_extends_argus() {
        assert_eq!(PROTO.len(), ARGUS.len() + PROTO_EXTRA.len());
        assert_eq!(PROTO.features.get(..ARGUS.len()), Some(ARGUS.features));
        assert_ne!(PROTO.hash(), ARGUS.hash());
        assert_eq!(app_code(""), 0.0);
        assert_eq!(app_code("tls"), 2.0);
        assert_eq!(app_code("quic"), -1.0);
    }

    #[test]
    fn addresses_as_names() {
        for a in [
            "1.2.3.4",
            "1.2.3.4:8080",
            "::1",
            "[2001:db8::1]:443",
            "2001:db8::1",
        ] {
            assert!(name_is_addr(a), "{a}");
        }
        for n in [
            "",
            "example.com",
            "example.com:80",
            "1.2.3.4:",
            "1.2.3",
            "[::1]",
            "01.2.3.4",
        ] {
            assert!(!name_is_addr(n), "{n}");
        }
    }

    #[test]
    fn proto_columns() {
        let mut out = [9.0; 6];
        let cols = ProtoColumns {
            app: "http",
            name: "10.0.0.1:8080",
            dns_rcode: None,
            user_agent: "",
            peer_named: true,
        };
        proto_from_columns(&cols, &mut out);
        assert_eq!(out, [3.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
        let cols = ProtoColumns {
            app: "dns",
            name: "x.example",
            dns_rcode: Some(3),
            user_agent: "",
            peer_named: false,
        };
        proto_from_columns(&cols, &mut out);
        assert_eq!(out, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let cols = ProtoColumns {
            app: "tls",
            name: "",
            dns_rcode: None,
            user_agent: "",
            peer_named: false,
        };
        proto_from_columns(&cols, &mut out);
        assert_eq!(out, [2.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }
}
