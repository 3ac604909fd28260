//! Alerts as Suricata-style EVE JSON records, for the pipelines operators already run (Filebeat's
//! and Vector's Suricata inputs, Security Onion, Malcolm, Wazuh, Elastic). One record per alert:
//! the EVE fields a Suricata alert has (`timestamp`, `event_type`, `src_ip`, `src_port`,
//! `dest_ip`, `dest_port`, `proto`, `community_id`, `host`, `alert`), and a `botd` object with the
//! whole verdict. docs/alerts.md maps every field to the Elastic Common Schema.
//!
//! The source is always the suspect home host, the destination its top peer (the first of the
//! alert's peers: the one a detector named, else the one most flows were flagged with), and the
//! Community ID that of the host's latest flow with that peer, so a record joins Zeek's and
//! Suricata's records of the same connection.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;

use serde::Serialize;

use crate::alert::{Alert, Level};
use crate::community_id;

/// A botd signature: what a rule is called in the `alert` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The detector's name (`[rules] disable` names it so).
    pub rule: &'static str,
    /// Suricata's local-use range (1000000-1999999) holds botd's: 1990000 + a fixed offset, so
    /// operators can write suppressions and dashboards against stable numbers.
    pub id: u32,
    pub name: &'static str,
    /// One of Suricata's classification.config categories.
    pub category: &'static str,
}

const TROJAN: &str = "A Network Trojan was detected";
const SCAN: &str = "Detection of a Network Scan";
const BAD_TRAFFIC: &str = "Potentially Bad Traffic";
const POLICY: &str = "Potential Corporate Privacy Violation";

/// Every detector's signature; new detectors take the next number (never reuse one).
pub const SIGNATURES: &[Signature] = &[
    sig(
        "models",
        0,
        "botd models: flows classified as botnet",
        TROJAN,
    ),
    sig("sweep", 1, "botd sweep: host probes many targets", SCAN),
    sig(
        "lateral",
        2,
        "botd lateral: connections to many home hosts on one port",
        TROJAN,
    ),
    sig(
        "beacon",
        3,
        "botd beacon: regular connection series to one peer",
        TROJAN,
    ),
    sig(
        "intel",
        4,
        "botd intel: peer listed in a threat-intelligence feed",
        TROJAN,
    ),
    sig(
        "dga",
        5,
        "botd dga: failed lookups of machine-made names",
        TROJAN,
    ),
    sig(
        "dns-tunnel",
        6,
        "botd dns-tunnel: data carried in DNS queries",
        POLICY,
    ),
    sig(
        "spam",
        7,
        "botd spam: mail sent to many outside mail servers",
        TROJAN,
    ),
    sig(
        "smtp-client",
        8,
        "botd smtp-client: a home host hands mail to outside servers",
        BAD_TRAFFIC,
    ),
    sig(
        "irc",
        9,
        "botd irc: IRC client dialogue with an outside server",
        TROJAN,
    ),
    sig(
        "miner",
        10,
        "botd miner: cryptocurrency mining-pool dialogue",
        POLICY,
    ),
    sig(
        "raw-address",
        11,
        "botd raw-address: connections to addresses no DNS answer named",
        TROJAN,
    ),
    sig(
        "p2p",
        12,
        "botd p2p: fan-out to many unnamed outside peers",
        TROJAN,
    ),
    sig(
        "http-no-agent",
        13,
        "botd http-no-agent: HTTP requests without a User-Agent",
        BAD_TRAFFIC,
    ),
    sig(
        "tcp-tunnel",
        14,
        "botd tcp-tunnel: TCP session through a tunnel service",
        TROJAN,
    ),
    sig(
        "ddns",
        15,
        "botd ddns: a dynamic-DNS name resolved",
        BAD_TRAFFIC,
    ),
    sig(
        "ip-lookup",
        16,
        "botd ip-lookup: public-address lookup service queried",
        BAD_TRAFFIC,
    ),
    sig(
        "slow-beacon",
        17,
        "botd slow-beacon: regular connections to one peer across windows",
        TROJAN,
    ),
    sig(
        "exe-download",
        18,
        "botd exe-download: an executable fetched over plain HTTP",
        BAD_TRAFFIC,
    ),
    sig(
        "plugin-content",
        19,
        "botd plugin-content: Flash, Java applet or Silverlight served",
        BAD_TRAFFIC,
    ),
    sig(
        "tls-cert",
        20,
        "botd tls-cert: a self-signed or C2-kit default TLS certificate",
        TROJAN,
    ),
    sig(
        "host-profile",
        21,
        "botd host-profile: a machine profile sent in clear (a RAT check-in)",
        TROJAN,
    ),
    sig(
        "fake-browser",
        22,
        "botd fake-browser: a program dressed as a browser over HTTP",
        BAD_TRAFFIC,
    ),
    sig(
        "hash-name",
        23,
        "botd hash-name: a domain named by a hex digest (hash-based DGA)",
        TROJAN,
    ),
];

const fn sig(
    rule: &'static str,
    offset: u32,
    name: &'static str,
    category: &'static str,
) -> Signature {
    Signature {
        rule,
        id: 1_990_000 + offset,
        name,
        category,
    }
}

/// The signature of a detector by name (`None` for a name botd does not know).
pub fn signature(rule: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.rule == rule)
}

/// The signature an alert is filed under: its first rule's (the detectors' texts start with
/// their name), else the models'.
pub fn signature_of(alert: &Alert) -> &'static Signature {
    alert
        .rules
        .iter()
        .filter_map(|r| r.split_once(':').map(|(name, _)| name.trim()))
        .find_map(signature)
        .unwrap_or(&MODELS)
}

const MODELS: Signature = sig(
    "models",
    0,
    "botd models: flows classified as botnet",
    TROJAN,
);

/// Suricata's severity: 1 the highest.
fn severity(level: Level) -> u8 {
    match level {
        Level::Red => 1,
        Level::Yellow => 2,
        Level::Clear => 3,
    }
}

/// The protocol as Suricata names it in `proto`.
pub fn proto_name(proto: u8) -> std::borrow::Cow<'static, str> {
    match proto {
        6 => "TCP".into(),
        17 => "UDP".into(),
        1 => "ICMP".into(),
        58 => "IPv6-ICMP".into(),
        132 => "SCTP".into(),
        47 => "GRE".into(),
        n => n.to_string().into(),
    }
}

/// Suricata's timestamp: microseconds and a numeric offset, `2026-12-05T03:10:00.123456+0000`.
pub fn timestamp(ns: u64) -> String {
    let Ok(t) = ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)) else {
        return ns.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[derive(Serialize)]
struct Record<'a> {
    timestamp: String,
    event_type: &'static str,
    src_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<std::borrow::Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_id: Option<String>,
    /// The sensor's name (Suricata puts its `sensor-name` here).
    #[serde(skip_serializing_if = "str::is_empty")]
    host: &'a str,
    alert: AlertPart,
    botd: BotdPart<'a>,
}

#[derive(Serialize)]
struct AlertPart {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: &'static str,
    category: &'static str,
    severity: u8,
}

#[derive(Serialize)]
struct BotdPart<'a> {
    sensor: &'a str,
    host: IpAddr,
    level: Level,
    previous: Level,
    score: f64,
    window: u64,
    window_start: String,
    window_end: String,
    models: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    rules: &'a [String],
    botnet_flows: u64,
    flows: u64,
    flagged_windows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a crate::devices::DeviceInfo>,
    peers: Vec<PeerPart<'a>>,
}

#[derive(Serialize)]
struct PeerPart<'a> {
    ip: IpAddr,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    proto: Option<std::borrow::Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_port: Option<u16>,
    flows: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    community_id: Option<String>,
}

/// The Community ID of the host's flow with a peer, when the flow is known: TCP, UDP or SCTP
/// with the host's own port (an ICMP record's type and code are packed Argus-style in the
/// counts, not kept per peer).
fn peer_community_id(seed: u16, host: IpAddr, p: &crate::alert::Peer) -> Option<String> {
    if !matches!(p.proto, 6 | 17 | 132) || p.host_port == 0 {
        return None;
    }
    Some(community_id::v1(seed, host, p.addr, p.proto, p.host_port, p.port).to_string())
}

/// The alert as one EVE JSON object (no trailing newline). `sensor` fills `host` when the alert
/// carries no sensor name; `seed` is the Community ID seed (0 unless the other sensors of the
/// site use another).
pub fn to_json(alert: &Alert, seed: u16) -> Vec<u8> {
    let sig = signature_of(alert);
    let top = alert.peers.first();
    let peers: Vec<PeerPart<'_>> = alert
        .peers
        .iter()
        .map(|p| PeerPart {
            ip: p.addr,
            port: p.port,
            proto: (p.proto != 0).then(|| proto_name(p.proto)),
            host_port: (p.host_port != 0).then_some(p.host_port),
            flows: p.flows,
            bytes: p.bytes,
            name: p.name.as_deref(),
            community_id: peer_community_id(seed, alert.host, p),
        })
        .collect();
    let record = Record {
        timestamp: timestamp(alert.window_end_ns),
        event_type: "alert",
        src_ip: alert.host,
        src_port: top.filter(|p| p.host_port != 0).map(|p| p.host_port),
        dest_ip: top.map(|p| p.addr),
        dest_port: top.map(|p| p.port),
        proto: top.filter(|p| p.proto != 0).map(|p| proto_name(p.proto)),
        community_id: peers.first().and_then(|p| p.community_id.clone()),
        host: &alert.sensor,
        alert: AlertPart {
            action: alert.action.as_str(),
            gid: 1,
            signature_id: sig.id,
            rev: 1,
            signature: sig.name,
            category: sig.category,
            severity: severity(alert.level),
        },
        botd: BotdPart {
            sensor: &alert.sensor,
            host: alert.host,
            level: alert.level,
            previous: alert.previous,
            score: alert.score,
            window: alert.window,
            window_start: timestamp(alert.window_start_ns),
            window_end: timestamp(alert.window_end_ns),
            models: &alert.models,
            rules: &alert.rules,
            botnet_flows: alert.botnet_flows,
            flows: alert.flows,
            flagged_windows: alert.flagged_windows,
            device: alert.device.as_ref(),
            peers,
        },
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_detector_has_one_signature_and_ids_are_unique() {
        for d in crate::config::DETECTORS {
            assert!(signature(d).is_some(), "{d} has no signature");
        }
        let mut ids: Vec<u32> = SIGNATURES.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), SIGNATURES.len());
        assert!(ids.iter().all(|&i| (1_000_000..2_000_000).contains(&i)));
    }

    #[test]
    fn docs_list_every_signature() {
        // Operators write suppressions from docs/alerts.md's table: it must match the code.
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.md"),
        )
        .unwrap();
        for s in SIGNATURES {
            let row = format!("| {} | {} | {} |", s.id, s.rule, s.category);
            assert!(doc.contains(&row), "docs/alerts.md lacks {row}");
        }
    }

    #[test]
    fn timestamps_are_suricata_s() {
        assert_eq!(
            timestamp(1_764_904_200_123_456_789),
            "2025-12-05T03:10:00.123456+0000"
        );
    }
}
