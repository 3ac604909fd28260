//! The detector: a [`FlowSink`] that turns the engine's windowed flow records into per-host
//! verdicts. Flows are batched (features extracted once per schema), scored by every model in
//! batches, counted per home host and window, and at each window's end folded into the host
//! scores; level changes come out as [`Alert`]s. Buffers are sized once at start-up.
//!
//! Besides the model verdicts, every flow record adds to its home host's behaviour in the window
//! (probes and whether they were answered, TCP connections to other home hosts, connection series
//! to one remote address and port); `host` turns these into the sweep, lateral and beacon rules.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::alert::Alert;
use crate::config::{NetworkConfig, RulesConfig, ScoringConfig};
use crate::devices::DeviceTable;
use crate::dnsview::DnsView;
use crate::engine::{FlowSink, WindowInfo};
use crate::evidence::{IntelNote, Note, OutsidePeer, ProtoWindow, Sighting, note, note_of};
use crate::features::{Schema, is_service_flow, target_hash};
use crate::flow::app::App;
use crate::flow::{CloseReason, Flow};
use crate::host::{self, Beacon, FlowFacts, HostScorer, HostWindow, MAX_MODELS};
use crate::intel::IntelSet;
use crate::model::Model;
use crate::scoring::{Batch, Reuse, Scoring};
use crate::slowbeacon::SlowSeries;
use crate::wire::proto;

pub use crate::scoring::BATCH;
/// Connection series (home host, remote address, port, protocol) tracked per window for the
/// beacon rule; more are dropped and counted.
pub const BEACON_SERIES: usize = 4096;
/// Connections remembered per series (the first ones to close); more are counted only.
pub const BEACON_STARTS: usize = 16;

#[derive(Clone, Copy, Debug)]
struct FlowSummary {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    bytes: u64,
    start_ns: u64,
    /// Packets came back from the destination.
    answered: bool,
    /// The direction is known (not a TCP record picked up mid-connection, Dir `<?>`).
    directed: bool,
    /// State FIN or CON: answered and not refused.
    established: bool,
    pkts: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    host: IpAddr,
    peer: IpAddr,
    port: u16,
    proto: u8,
}

#[derive(Clone, Copy, Debug)]
struct Series {
    key: SeriesKey,
    /// Connections seen, stored or not.
    seen: u64,
    len: usize,
    starts: [u64; BEACON_STARTS],
    bytes: [u64; BEACON_STARTS],
    /// Stored connections a model predicted botnet.
    flagged: u64,
    /// The host's own port of the latest connection.
    host_port: u16,
}

impl Series {
    /// The series' regularity figures, when it has enough connections.
    fn beacon(&self) -> Option<Beacon> {
        let n = self.len;
        if n < host::rules::BEACON_CONNECTIONS {
            return None;
        }
        let mut starts = self.starts;
        let starts = starts.get_mut(..n)?;
        starts.sort_unstable();
        let mut gaps = [0u64; BEACON_STARTS];
        for (g, w) in gaps.iter_mut().zip(starts.windows(2)) {
            if let [a, b] = w {
                *g = b.saturating_sub(*a);
            }
        }
        let gaps = gaps.get_mut(..n - 1)?;
        let gap = median(gaps)?;
        let mut devs = [0f64; BEACON_STARTS];
        for (d, g) in devs.iter_mut().zip(gaps.iter()) {
            *d = (*g as f64 - gap).abs();
        }
        let spread = if gap > 0.0 {
            median_f64(devs.get_mut(..n - 1)?)? / gap
        } else {
            f64::INFINITY
        };
        let mut sizes = self.bytes;
        let sizes = sizes.get_mut(..n)?;
        sizes.sort_unstable();
        let same_size = sizes
            .chunk_by(|a, b| a == b)
            .map(<[u64]>::len)
            .max()
            .unwrap_or(0);
        Some(Beacon {
            peer: self.key.peer,
            port: self.key.port,
            proto: self.key.proto,
            host_port: self.host_port,
            connections: n as u64,
            gap_ns: gap as u64,
            spread,
            same_size: same_size as u64,
            flagged: self.flagged,
            bytes: sizes.iter().sum(),
            unnamed: false,
        })
    }
}

/// Median of integer values (sorts them), as f64: the mean of the middle two for an even count.
fn median(v: &mut [u64]) -> Option<f64> {
    v.sort_unstable();
    let n = v.len();
    let hi = *v.get(n / 2)? as f64;
    if n % 2 == 1 {
        Some(hi)
    } else {
        Some((*v.get(n / 2 - 1)? as f64 + hi) / 2.0)
    }
}

fn median_f64(v: &mut [f64]) -> Option<f64> {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    let hi = *v.get(n / 2)?;
    if n % 2 == 1 {
        Some(hi)
    } else {
        Some((*v.get(n / 2 - 1)? + hi) / 2.0)
    }
}

/// What the detector keeps of one open window: per-host counts and the connection series.
/// One per engine slot ([`WindowInfo::slot`]): the engine says which window a record is in.
struct OpenWindow {
    /// Window index; `u64::MAX` when no window holds it (between a close and the next record).
    index: u64,
    hosts: HashMap<IpAddr, HostWindow>,
    /// What the protocols said of each host.
    proto: HashMap<IpAddr, ProtoWindow>,
    series_index: HashMap<SeriesKey, usize>,
    series: Vec<Series>,
}

impl OpenWindow {
    fn new(max_hosts: usize) -> OpenWindow {
        OpenWindow {
            index: u64::MAX,
            hosts: HashMap::with_capacity(max_hosts.min(65_536)),
            proto: HashMap::with_capacity(max_hosts.min(65_536)),
            series_index: HashMap::with_capacity(BEACON_SERIES),
            series: Vec::with_capacity(BEACON_SERIES),
        }
    }

    fn reset(&mut self, index: u64) {
        self.index = index;
        self.hosts.clear();
        self.proto.clear();
        self.series_index.clear();
        self.series.clear();
    }

    /// Adds a connection to its series; false when the series table is full.
    fn add_connection(
        &mut self,
        key: SeriesKey,
        host_port: u16,
        start_ns: u64,
        bytes: u64,
        flagged: bool,
    ) -> bool {
        let i = match self.series_index.get(&key) {
            Some(&i) => i,
            None => {
                if self.series.len() >= BEACON_SERIES {
                    return false;
                }
                self.series.push(Series {
                    key,
                    seen: 0,
                    len: 0,
                    starts: [0; BEACON_STARTS],
                    bytes: [0; BEACON_STARTS],
                    flagged: 0,
                    host_port,
                });
                let i = self.series.len() - 1;
                self.series_index.insert(key, i);
                i
            }
        };
        if let Some(s) = self.series.get_mut(i) {
            s.seen += 1;
            s.host_port = host_port;
            if let (Some(t), Some(b)) = (s.starts.get_mut(s.len), s.bytes.get_mut(s.len)) {
                *t = start_ns;
                *b = bytes;
                s.len += 1;
                s.flagged += u64::from(flagged);
            }
        }
        true
    }

    /// Gives every host its most connected regular series (the beacon rule's candidate);
    /// `unnamed(host, peer, first start)` says whether no DNS answer named the peer in time.
    fn attach_beacons(&mut self, unnamed: impl Fn(IpAddr, IpAddr, u64) -> bool) {
        for s in &self.series {
            let Some(mut b) = s.beacon() else {
                continue;
            };
            let first = s.starts.get(..s.len).and_then(|v| v.iter().min().copied());
            b.unnamed = first.is_some_and(|t| unnamed(s.key.host, s.key.peer, t));
            let Some(w) = self.hosts.get_mut(&s.key.host) else {
                continue;
            };
            // A firing series beats one that does not; then more connections, then fewer bytes.
            let rank = |b: &Beacon| (b.fires(), b.connections, std::cmp::Reverse(b.bytes));
            if w.beacon.as_ref().is_none_or(|old| rank(&b) > rank(old)) {
                w.beacon = Some(b);
            }
        }
    }
}

/// Counters of the detector.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DetectorCounters {
    pub flows_scored: u64,
    /// Per model (in model order), flows predicted botnet.
    pub flows_botnet: Vec<u64>,
    pub windows_scored: u64,
    /// Home hosts seen in a window but not counted (per-window host table full).
    pub hosts_dropped: u64,
    /// Connections not added to a beacon series (per-window series table full).
    pub beacon_series_dropped: u64,
    pub score_errors: u64,
    /// Flows whose scores came from the same record in the previous window (overlap).
    pub flows_score_reused: u64,
    /// Flows whose scores could not be kept for the next window (the cache was full).
    pub score_cache_full: u64,
    /// Payloads of a recognised protocol that could not be read (in the flows' summaries).
    pub app_malformed: u64,
    /// Hosts whose protocol evidence was not kept (per-window host table full).
    pub evidence_hosts_dropped: u64,
    /// Threat-intelligence hits.
    pub intel_hits: u64,
    /// Connections of new slow series not tracked (the cross-window series table was full).
    pub slow_series_dropped: u64,
    /// The host table's lifecycle (src/host.rs [`HostScorer`]), as of the latest window close.
    pub hosts_expired: u64,
    pub hosts_evicted: u64,
    pub hosts_refused: u64,
    pub level_changes_dropped: u64,
    pub histories_merged: u64,
}

pub struct Detector {
    /// Shared, so several detectors (one per capture under evaluation, or a reload) can use the
    /// same loaded models.
    models: Arc<Vec<Model>>,
    /// The distinct schemas the models use (the feature rows of each flow).
    schemas: Vec<&'static Schema>,
    home: NetworkConfig,
    max_hosts: usize,
    /// The flows waiting to be scored, with their feature rows.
    batch: Batch<FlowSummary>,
    scoring: Scoring,
    /// Per-host counts and connection series of the windows still open, by engine slot.
    open: Vec<OpenWindow>,
    pub scorer: HostScorer,
    pending: Vec<Alert>,
    pub counters: DetectorCounters,
    rules: RulesConfig,
    /// Answer address -> name, for every DNS answer seen.
    pub dns: DnsView,
    /// MAC -> addresses, DHCP name, roles.
    pub devices: DeviceTable,
    /// Home hosts whose DNS queries the sensor has seen.
    dns_hosts: hashbrown::HashSet<IpAddr>,
    /// Home hosts seen answering SMTP (mail servers).
    mail_servers: hashbrown::HashSet<IpAddr>,
    intel: Option<Arc<IntelSet>>,
    /// The protocol findings and figures of the window being closed (kept for their capacity).
    findings_buf: HashMap<IpAddr, Vec<crate::evidence::Finding>>,
    figures_buf: HashMap<IpAddr, crate::evidence::ProtoFigures>,
    /// Connection series kept across windows (beacons slower than a window).
    slow: SlowSeries,
    /// The slow series that fire at a window close (kept for its capacity).
    slow_buf: Vec<crate::slowbeacon::SlowBeacon>,
}

impl Detector {
    /// `concurrent_windows`: how many windows the engine keeps open at once (its slots).
    pub fn new(
        models: Arc<Vec<Model>>,
        home: NetworkConfig,
        scoring: ScoringConfig,
        concurrent_windows: usize,
    ) -> Detector {
        let mut schemas: Vec<&'static Schema> = Vec::new();
        let mut model_schema = Vec::new();
        for m in models.iter().take(MAX_MODELS) {
            let i = match schemas.iter().position(|s| s.name == m.schema.name) {
                Some(i) => i,
                None => {
                    schemas.push(m.schema);
                    schemas.len() - 1
                }
            };
            model_schema.push(i);
        }
        let batch = Batch::new(&schemas);
        let flow_scoring = Scoring::new(Arc::clone(&models), &schemas, model_schema);
        let max_hosts = scoring.max_hosts;
        let names = models
            .iter()
            .take(MAX_MODELS)
            .map(|m| m.name.clone())
            .collect();
        let n_models = models.len().min(MAX_MODELS);
        Detector {
            models,
            schemas,
            home,
            max_hosts,
            batch,
            scoring: flow_scoring,
            open: (0..concurrent_windows.max(1))
                .map(|_| OpenWindow::new(max_hosts))
                .collect(),
            scorer: HostScorer::new(scoring, names),
            pending: Vec::new(),
            counters: DetectorCounters {
                flows_botnet: vec![0; n_models],
                ..DetectorCounters::default()
            },
            dns: DnsView::new(RulesConfig::default().dns_view_capacity),
            devices: DeviceTable::new(RulesConfig::default().device_capacity),
            rules: RulesConfig::default(),
            dns_hosts: hashbrown::HashSet::with_capacity(max_hosts.min(65_536)),
            mail_servers: hashbrown::HashSet::with_capacity(max_hosts.min(65_536)),
            intel: None,
            findings_buf: HashMap::new(),
            figures_buf: HashMap::with_capacity(max_hosts.min(65_536)),
            slow: SlowSeries::new(BEACON_SERIES),
            slow_buf: Vec::with_capacity(64),
        }
    }

    /// The protocol detectors' settings and the threat-intelligence feeds (none by default).
    pub fn with_rules(mut self, rules: RulesConfig, intel: Option<Arc<IntelSet>>) -> Detector {
        self.dns = DnsView::new(rules.dns_view_capacity);
        self.devices = DeviceTable::new(rules.device_capacity);
        self.scorer.set_rules(rules.clone());
        self.rules = rules;
        self.intel = intel;
        self
    }

    /// Takes over what another detector learnt of DNS names, devices and which hosts' DNS is
    /// visible (a reload), when the capacities allow it.
    pub fn inherit_knowledge(&mut self, from: &Detector) {
        if self.dns.capacity() == from.dns.capacity() {
            self.dns = from.dns.clone();
        }
        if self.rules.device_capacity == from.rules.device_capacity {
            self.devices = from.devices.clone();
        }
        self.dns_hosts = from.dns_hosts.clone();
        self.mail_servers = from.mail_servers.clone();
    }

    /// The feeds in use.
    pub fn intel(&self) -> Option<&Arc<IntelSet>> {
        self.intel.as_ref()
    }

    /// Replaces the feeds (SIGHUP), keeping everything the detector has learnt.
    pub fn set_intel(&mut self, intel: Option<Arc<IntelSet>>) {
        self.intel = intel;
    }

    /// Reuses the scores of records repeated by overlapping windows, keeping at most
    /// `capacity` records' scores per window (see [`crate::scoring`]). Results are unchanged.
    pub fn with_score_cache(mut self, capacity: usize) -> Detector {
        self.scoring = self.scoring.with_cache(self.open.len(), capacity);
        self
    }

    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// Level changes produced since the last call.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.pending)
    }

    /// A home host that can be scored: inside a home prefix, and not a prefix's network or
    /// broadcast address, multicast or unspecified.
    fn is_scored_host(&self, ip: IpAddr) -> bool {
        if ip.is_multicast() || ip.is_unspecified() {
            return false;
        }
        self.home.home.iter().any(|c| {
            if !c.contains(ip) {
                return false;
            }
            !Self::is_prefix_edge(c, ip)
        })
    }

    /// The network or broadcast address of an IPv4 home prefix of /30 or wider.
    fn is_prefix_edge(c: &crate::config::Cidr, ip: IpAddr) -> bool {
        match (c.addr(), ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) if c.prefix_len() <= 30 => {
                let host_bits = u32::MAX >> c.prefix_len();
                let a = u32::from(a);
                a == u32::from(net) || a & host_bits == host_bits
            }
            _ => false,
        }
    }

    /// A unicast address: not multicast, unspecified, the limited broadcast or a home prefix's
    /// network or broadcast address.
    fn is_unicast(&self, ip: IpAddr) -> bool {
        if ip.is_multicast() || ip.is_unspecified() {
            return false;
        }
        if let IpAddr::V4(a) = ip
            && a.is_broadcast()
        {
            return false;
        }
        !self
            .home
            .home
            .iter()
            .any(|c| c.contains(ip) && Self::is_prefix_edge(c, ip))
    }

    /// The slot of the open window of a record in `window` (the engine's slot; slot 0
    /// without windows), taken over for it when it held an earlier window.
    fn open_for(&mut self, window: Option<&WindowInfo>) -> usize {
        let (slot, index) = window.map_or((0, 0), |w| (w.slot, w.index));
        if let Some(open) = self.open.get_mut(slot)
            && open.index != index
        {
            open.reset(index);
        }
        slot
    }

    /// What a flow tells about its home hosts: the facts for its source (when the source is a
    /// home host) and for its destination (when the flow came from outside).
    fn facts(&self, f: &FlowSummary) -> (Option<FlowFacts>, Option<FlowFacts>) {
        let src_home = self.is_scored_host(f.src);
        let dst_home = self.is_scored_host(f.dst);
        let ip_proto = matches!(f.proto, proto::TCP | proto::UDP | proto::ICMP);
        let dst_unicast = self.is_unicast(f.dst);
        let scored = ip_proto && dst_unicast && !is_service_flow(f.proto, f.sport, f.dport);
        let out = src_home.then(|| {
            let probe = match f.proto {
                proto::TCP | proto::UDP if scored && f.directed => {
                    Some((target_hash(f.dst, f.dport, f.proto), f.answered))
                }
                // Echo request: type 8, code 0.
                proto::ICMP if f.sport == 8 && dst_unicast => {
                    Some((target_hash(f.dst, 0, f.proto), f.answered))
                }
                // A gateway, DHCP or DNS server ARPs for departed hosts as part of its duties.
                proto::ARP if !self.devices.roles(f.src).any() => {
                    Some((target_hash(f.dst, 0, f.proto), f.answered))
                }
                _ => None,
            };
            FlowFacts {
                host: f.src,
                peer: f.dst,
                peer_port: f.dport,
                proto: f.proto,
                host_port: f.sport,
                bytes: f.bytes,
                scored,
                probe,
                lateral_port: (f.proto == proto::TCP && scored && dst_home).then_some(f.dport),
            }
        });
        // A flow counts for the host that started it; for its destination only when it came
        // from outside (an internal server answering an infected neighbour is not blamed).
        let inbound = (!src_home && dst_home).then_some(FlowFacts {
            host: f.dst,
            peer: f.src,
            peer_port: f.sport,
            proto: f.proto,
            host_port: f.dport,
            bytes: f.bytes,
            scored,
            probe: None,
            lateral_port: None,
        });
        (out, inbound)
    }

    /// Scores the buffered flows with every model and counts them per host and window.
    fn score_batch(&mut self) {
        let n = self.batch.len();
        if n == 0 {
            return;
        }
        self.scoring.score(&mut self.batch);
        self.counters.flows_scored += n as u64;
        self.counters.score_errors += self.batch.score_errors;
        self.counters.flows_score_reused += self.batch.cache_hits;
        self.counters.score_cache_full += self.batch.cache_full;
        for (c, b) in self
            .counters
            .flows_botnet
            .iter_mut()
            .zip(self.batch.flows_botnet)
        {
            *c += b;
        }
        let n_models = self.models.len().min(MAX_MODELS);
        // Taken out for the loop, which needs `self` too; its buffers go back after.
        let mut batch = std::mem::replace(&mut self.batch, Batch::empty());
        for (i, f) in batch.flows.iter().enumerate() {
            let start = i * MAX_MODELS;
            let verdicts: [bool; MAX_MODELS] = std::array::from_fn(|m| {
                m < n_models && batch.botnet.get(start + m).copied().unwrap_or(false)
            });
            let (out, inbound) = self.facts(f);
            // A connection of a beacon series: the host started it, it was answered and not
            // refused, and it is scored traffic of known direction.
            let series = out.filter(|o| {
                o.scored
                    && f.directed
                    && f.answered
                    && f.established
                    && matches!(f.proto, proto::TCP | proto::UDP)
            });
            let max_hosts = self.max_hosts;
            let mut dropped = 0;
            let mut series_dropped = 0;
            // The flow's window slot is kept beside it in the batch (the score cache reads it
            // too).
            let slot = batch.reuse.get(i).map_or(0, |&(s, _)| s);
            // A session that carried data counts for the slow series even when it ended
            // in a reset (a RAT's session dropped by its server every few minutes).
            if let Some(o) = out.filter(|o| {
                o.scored
                    && f.directed
                    && f.answered
                    && (f.established || f.pkts >= 6)
                    && matches!(f.proto, proto::TCP | proto::UDP)
                    && !self.home.is_home(f.dst)
            }) {
                let key = crate::slowbeacon::Key {
                    host: o.host,
                    peer: f.dst,
                    port: f.dport,
                    proto: f.proto,
                };
                self.slow.add(key, f.sport, f.start_ns);
            }
            if let Some(open) = self.open.get_mut(slot) {
                for facts in out.iter().chain(inbound.iter()) {
                    let verdicts = verdicts.get(..n_models).unwrap_or(&[]);
                    if !host::add_flow(&mut open.hosts, max_hosts, facts, verdicts) {
                        dropped += 1;
                    }
                }
                if let Some(o) = series {
                    let key = SeriesKey {
                        host: o.host,
                        peer: f.dst,
                        port: f.dport,
                        proto: f.proto,
                    };
                    let flagged = verdicts.iter().any(|&b| b);
                    if !open.add_connection(key, f.sport, f.start_ns, f.bytes, flagged) {
                        series_dropped += 1;
                    }
                }
            }
            self.counters.hosts_dropped += dropped;
            self.counters.beacon_series_dropped += series_dropped;
        }
        batch.clear();
        self.batch = batch;
    }
}

/// An HTTP Host header without its `:port`.
fn host_without_port(host: &str) -> &str {
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Whether an address is a literal IP (an HTTP Host header of `1.2.3.4`, `1.2.3.4:8080` or
/// `[2001:db8::1]:80`).
fn host_is_address(host: &str) -> bool {
    let h = host.trim();
    if let Some(rest) = h.strip_prefix('[') {
        return rest
            .split(']')
            .next()
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    }
    if h.parse::<IpAddr>().is_ok() {
        return true;
    }
    h.rsplit_once(':').is_some_and(|(a, port)| {
        port.bytes().all(|b| b.is_ascii_digit()) && a.parse::<std::net::Ipv4Addr>().is_ok()
    })
}

/// A Gnutella download request (`GET /get/<index>/<file>` or `/uri-res/N2R?urn:sha1:...`, the
/// forms of the Gnutella 0.6 protocol).
fn is_gnutella_download(uri: &str) -> bool {
    uri.strip_prefix("/get/").is_some_and(|rest| {
        rest.split('/')
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }) || uri.starts_with("/uri-res/")
}

/// An IRC dialogue that looks like a bot's rather than a person's: a nick with machine-made
/// parts (three or more digits, brackets or pipes as bots tag country and OS, or a random-looking
/// nick), or a server port outside the ones IRC networks publish (6660-6669, 6697, 7000, 194,
/// 994, 8000, 8001).
fn irc_botlike(nick: &str, port: u16) -> bool {
    let digits = nick.bytes().filter(u8::is_ascii_digit).count();
    let tagged = nick
        .bytes()
        .any(|b| matches!(b, b'[' | b']' | b'|' | b'{' | b'}'));
    let irc_port = matches!(port, 194 | 994 | 6660..=6669 | 6697 | 7000 | 8000 | 8001);
    digits >= 3 || tagged || crate::evidence::looks_random(nick) || !irc_port
}

/// A finding's sighting on `flow`: its destination and the flow's Community ID ports.
fn sighting(flow: &Flow, text: Note) -> Sighting {
    Sighting {
        peer: flow.dst.to_ip(),
        port: flow.dport,
        proto: flow.proto,
        host_port: flow.sport,
        text,
    }
}

/// A server certificate a browser would refuse, with the C2 kit it is the default of, if one: a
/// kit's name as subject or issuer, or a self-issued certificate (issuer named as subject). Only
/// the names are compared: botd keeps no keys or signatures (TLS 1.3 hides the certificate).
fn suspect_certificate(t: &crate::proto::tls::TlsSummary) -> Option<(&str, Option<&'static str>)> {
    let (subject, issuer) = (t.cert_subject_cn.as_str(), t.cert_issuer_cn.as_str());
    if let Some(kit) = crate::infra::c2_kit_of_cert(subject) {
        return Some((subject, Some(kit)));
    }
    if let Some(kit) = crate::infra::c2_kit_of_cert(issuer) {
        return Some((issuer, Some(kit)));
    }
    (!subject.is_empty() && subject == issuer).then_some((subject, None))
}

impl Detector {
    /// What a flow's application summary tells: DNS answers for the view, device identity,
    /// and the home host's protocol evidence in the flow's window (in `slot` of `open`).
    /// `directed` and `established` are the record's, as [`FlowSummary`] has them (computed
    /// once by the caller).
    fn observe_protocols(&mut self, flow: &Flow, slot: usize, directed: bool, established: bool) {
        self.counters.app_malformed += u64::from(flow.app.malformed);
        let src = flow.src.to_ip();
        let dst = flow.dst.to_ip();
        let now = flow.start_ns;
        let mut intel_hits: heapless::Vec<IntelNote, 4> = heapless::Vec::new();
        match &flow.app.app {
            App::Dhcp(d) => {
                let mac = d.client_mac;
                for ip in [d.your_ip, d.requested_ip, d.client_ip]
                    .into_iter()
                    .flatten()
                {
                    self.devices.observe(mac, IpAddr::V4(ip.into()), now);
                }
                self.devices.name(mac, &d.hostname, &d.vendor_class, now);
                // The server that answered (its own MAC is the reply's source).
                let server_mac = (flow.rev.pkts > 0).then_some(flow.rev.mac);
                if let Some(sid) = d.server_id {
                    let sid = IpAddr::V4(sid.into());
                    if let Some(m) = server_mac {
                        self.devices.observe(m, sid, now);
                    }
                    self.devices
                        .set_role(sid, server_mac, |r| r.dhcp_server = true);
                }
                if let Some(r) = d.router {
                    self.devices
                        .set_role(IpAddr::V4(r.into()), None, |r| r.gateway = true);
                }
                if let Some(ds) = d.dns_server {
                    self.devices
                        .set_role(IpAddr::V4(ds.into()), None, |r| r.dns_server = true);
                }
            }
            App::Arp(a) => {
                for (mac, ip) in [(a.request_mac, a.request_ip), (a.reply_mac, a.reply_ip)] {
                    if let (Some(m), Some(i)) = (mac, ip) {
                        self.devices.observe(m, IpAddr::V4(i.into()), now);
                    }
                }
            }
            App::Ndp(n) => {
                for (nd, from) in [(n.first, src), (n.second, dst)] {
                    let Some(nd) = nd else {
                        continue;
                    };
                    use crate::proto::ndp::NdpKind;
                    let (Some(ll), addr) = (nd.link_addr, nd.target) else {
                        continue;
                    };
                    match nd.kind {
                        // An advertisement's link-layer option is the target's.
                        NdpKind::NeighbourAdvert => {
                            if let Some(t) = addr {
                                self.devices.observe(ll, IpAddr::V6(t.into()), now);
                            }
                        }
                        NdpKind::RouterAdvert => {
                            self.devices.observe(ll, from, now);
                            self.devices.set_role(from, Some(ll), |r| r.gateway = true);
                        }
                        // A solicitation's option is its sender's.
                        _ => self.devices.observe(ll, from, now),
                    }
                }
            }
            App::Dns(d) if d.response => {
                self.dns.observe(flow);
                if flow.dport == 53 && self.is_scored_host(dst) && self.is_scored_host(src) {
                    self.devices.set_role(dst, None, |r| r.dns_server = true);
                }
            }
            _ => {}
        }
        // A home host that answers SMTP (greets a client) is a mail server: its relaying is not
        // spam. Remembered like the hosts whose DNS is visible.
        if let App::Smtp(m) = &flow.app.app
            && m.greeting
            && flow.rev.pkts > 0
            && self.is_scored_host(dst)
            && !self.mail_servers.contains(&dst)
            && self.mail_servers.len() < self.max_hosts
        {
            self.mail_servers.insert(dst);
        }
        if !self.is_scored_host(src) {
            return;
        }
        let dst_home = self.is_scored_host(dst);
        let outside =
            !dst_home && self.is_unicast(dst) && !self.home.home.iter().any(|c| c.contains(dst));
        let max_hosts = self.max_hosts;
        let rules = &self.rules;
        let intel = self.intel.as_deref();
        // Intel: the remote address, and the names the flow carries.
        if let Some(set) = intel {
            let mut hit = |on: &'static str, h: Option<crate::intel::Hit<'_>>| {
                if let Some(h) = h {
                    let r = h.record();
                    let _ = intel_hits.push(IntelNote {
                        feed: note(&r.feed),
                        entry: note(&r.entry),
                        on,
                        peer: dst,
                    });
                }
            };
            if outside {
                hit("address", set.match_addr(dst));
            }
            match &flow.app.app {
                App::Dns(d) if !d.qname.is_empty() => hit("name", set.match_name(&d.qname)),
                App::Tls(t) => {
                    if !t.sni.is_empty() {
                        hit("sni", set.match_name(&t.sni));
                    }
                    if let Some(ja3) = t.ja3 {
                        let mut hex = heapless::String::<32>::new();
                        for b in ja3 {
                            let _ = core::fmt::Write::write_fmt(&mut hex, format_args!("{b:02x}"));
                        }
                        hit("ja3", set.match_ja3(&hex));
                    }
                    if !t.ja4.is_empty() {
                        hit("ja4", set.match_ja4(&t.ja4));
                    }
                }
                App::Http(h) if !h.host.is_empty() => {
                    hit("http-host", set.match_name(host_without_port(&h.host)));
                }
                _ => {}
            }
        }
        self.counters.intel_hits += intel_hits.len() as u64;
        let answered = flow.rev.pkts > 0;
        let Some(open) = self.open.get_mut(slot) else {
            return;
        };
        if !open.proto.contains_key(&src) && open.proto.len() >= max_hosts {
            self.counters.evidence_hosts_dropped += 1;
            return;
        }
        let w = open.proto.entry(src).or_default();
        let mut dns_query = false;
        for h in intel_hits {
            w.intel_hit(h);
        }
        let mut peer = OutsidePeer {
            addr: dst,
            port: flow.dport,
            proto: flow.proto,
            host_port: flow.sport,
            connections: 1,
            first_ns: flow.start_ns,
            bytes: flow.total_bytes(),
            tls_no_sni: false,
            http_addr_host: false,
            http_post_or_no_agent: false,
            http_name_host: false,
            home: dst_home,
            resolved: false,
        };
        match &flow.app.app {
            App::Dns(d) if flow.dport == 53 && d.queries > 0 => {
                w.dns_query(&d.qname, d.qtype, d.rcode, rules);
                dns_query = true;
            }
            App::Tls(t) if t.client_hello => {
                // Mail, directory and push services over TLS: old clients of these often send
                // no server name, and they are named services, not C2.
                let tls_service = matches!(
                    flow.dport,
                    465 | 563
                        | 636
                        | 853
                        | 989
                        | 990
                        | 992
                        | 993
                        | 994
                        | 995
                        | 3269
                        | 5061
                        | 5223
                        | 8883
                );
                peer.tls_no_sni = t.sni.is_empty() && !tls_service;
                if outside {
                    w.named(&t.sni);
                }
            }
            App::Http(h) if h.requests > 0 && is_gnutella_download(&h.uri) => {
                // Gnutella's file transfers are HTTP from the client's own stack.
                w.p2p_protocol = true;
            }
            App::Http(h) if h.requests > 0 => {
                if let Some(exe) = h.executable {
                    let by_address = outside && host_is_address(&h.host);
                    if w.exe_download.is_none() || (by_address && !w.exe_by_address) {
                        w.exe_download = Some(sighting(
                            flow,
                            note_of(&[exe.as_str(), ": ", &h.method, " ", &h.host, &h.uri]),
                        ));
                        w.exe_by_address = by_address;
                    }
                }
                if outside {
                    w.named(host_without_port(&h.host));
                    if w.fake_browser.is_none()
                        && !h.accept_language
                        && crate::evidence::claims_browser(&h.user_agent)
                    {
                        w.fake_browser = Some(sighting(flow, note_of(&[&h.user_agent])));
                    }
                }
                if w.plugin_content.is_none() && h.plugin {
                    w.plugin_content = Some(sighting(flow, note_of(&[&h.host, &h.uri])));
                }
                let no_agent = h.user_agent.is_empty();
                peer.http_addr_host = host_is_address(&h.host);
                peer.http_name_host = !h.host.is_empty() && !peer.http_addr_host;
                peer.http_post_or_no_agent = h.method.as_str() == "POST" || no_agent;
                if no_agent && outside {
                    w.http_no_agent = w.http_no_agent.saturating_add(1);
                    if w.http_no_agent_example.is_none() {
                        let text = note_of(&[&h.method, " ", &h.host, &h.uri]);
                        w.http_no_agent_example = Some(sighting(flow, text));
                    }
                }
                if dst_home && peer.http_addr_host && h.method.as_str() == "POST" {
                    // A listener inside the LAN posted to by address: a C2 server there looks
                    // so, and so do printers and home automation: weak evidence only.
                    w.outside_connection(peer);
                }
            }
            App::Smtp(m)
                if outside && (!m.ehlo.is_empty() || m.mail_from || m.rcpt_to > 0 || m.data) =>
            {
                w.smtp_servers.add(dst);
                w.smtp_sessions = w.smtp_sessions.saturating_add(1);
                // The weak smtp-client finding wants mail handed over, not a greeting alone
                // (STARTTLS tests, address checks).
                if w.smtp_example.is_none() && (m.mail_from || m.rcpt_to > 0 || m.data) {
                    let text = note_of(&["EHLO ", &m.ehlo]);
                    w.smtp_example = Some(sighting(flow, text));
                }
            }
            App::Irc(i)
                if outside
                    && (!i.nick.is_empty() || !i.user.is_empty() || i.joins > 0)
                    && w.irc.is_none() =>
            {
                w.irc_botlike = irc_botlike(&i.nick, flow.dport)
                    || (self.dns_hosts.contains(&src) && !self.dns.resolved_before(dst, now));
                let join = if i.channel.is_empty() { "" } else { " JOIN " };
                let text = note_of(&["NICK ", &i.nick, join, &i.channel]);
                w.irc = Some(sighting(flow, text));
            }
            App::Mining(m) if !m.method.is_empty() && w.mining.is_none() => {
                let space = if m.user.is_empty() { "" } else { " " };
                let text = note_of(&[&m.method, space, &m.user]);
                w.mining = Some(sighting(flow, text));
            }
            // A RAT's check-in: to its controller outside, or to a listener inside the LAN.
            App::Profile(p) if (outside || dst_home) && w.host_profile.is_none() => {
                w.host_profile_os = crate::evidence::note(&p.os);
                w.host_profile_fields = p.fields;
                w.host_profile_home = dst_home;
                w.host_profile = Some(sighting(flow, crate::evidence::note(&p.head)));
            }
            App::Bittorrent(_) => w.p2p_protocol = true,
            _ => {}
        }
        if flow.proto == proto::TCP && flow.dport == 25 && outside && directed {
            w.port25_peers.add(dst);
        }
        // A connection the host made to an outside address (its start seen, answered).
        let connection = match flow.proto {
            proto::TCP => directed && established,
            proto::UDP => answered,
            _ => false,
        };
        if outside && connection && !is_service_flow(flow.proto, flow.sport, flow.dport) {
            w.outside_connection(peer);
        }
        if outside
            && flow.proto == proto::TCP
            && directed
            && established
            && w.tcp_tunnel.is_none()
            && let Some(name) = self
                .dns
                .name(dst)
                .filter(|n| crate::infra::zone_of(n, crate::infra::TCP_TUNNEL).is_some())
        {
            w.tcp_tunnel = Some(sighting(flow, crate::evidence::note(name)));
        }
        if outside
            && let App::Tls(t) = &flow.app.app
            && let Some((name, kit)) = suspect_certificate(t)
            && (w.tls_cert.is_none() || (kit.is_some() && w.tls_cert_kit.is_none()))
        {
            w.tls_cert_kit = kit;
            w.tls_cert = Some(sighting(flow, crate::evidence::note(name)));
        }
        if dns_query {
            // Bounded like the host tables; a host not remembered only loses this nuance.
            if self.dns_hosts.len() < max_hosts {
                self.dns_hosts.insert(src);
            }
        }
    }
}

impl FlowSink for Detector {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, window: Option<&WindowInfo>) {
        // Computed once for the protocol evidence and the batch.
        let directed = !flow.dir().contains('?');
        let established = matches!(flow.state().as_str(), "FIN" | "CON");
        let slot = self.open_for(window);
        self.observe_protocols(flow, slot, directed, established);
        if self.batch.is_full() {
            self.score_batch();
        }
        let batch = &mut self.batch;
        batch.reuse.push(window.map_or((0, Reuse::default()), |w| {
            (w.slot, Reuse::of(w, flow.start_ns, flow.last_ns))
        }));
        batch.flows.push(FlowSummary {
            src: flow.src.to_ip(),
            dst: flow.dst.to_ip(),
            sport: flow.sport,
            dport: flow.dport,
            proto: flow.proto,
            bytes: flow.total_bytes(),
            start_ns: flow.start_ns,
            answered: flow.rev.pkts > 0,
            directed,
            established,
            pkts: flow.fwd.pkts + flow.rev.pkts,
        });
        for (schema, rows) in self.schemas.iter().zip(batch.rows.iter_mut()) {
            let start = rows.len();
            rows.resize(start + schema.len(), 0.0);
            if let Some(row) = rows.get_mut(start..) {
                // After observe_protocols: the view holds this record's own answers too, as
                // `botd flows --app` has when it prints PeerNamed.
                schema.extract(flow, &self.dns, row);
            }
        }
    }

    fn window_closed(&mut self, window: &WindowInfo, _flows: u64) {
        self.score_batch();
        self.scoring.window_done(window);
        let empty = HashMap::new();
        // The engine's slot holds the window's counts (none when no record reached it).
        let idx = Some(window.slot)
            .filter(|&s| self.open.get(s).is_some_and(|o| o.index == window.index));
        if let Some(open) = idx.and_then(|i| self.open.get_mut(i)) {
            let (dns, dns_hosts) = (&self.dns, &self.dns_hosts);
            open.attach_beacons(|host, peer, first| {
                dns_hosts.contains(&host) && !dns.resolved_before(peer, first)
            });
        }
        // Reused from window to window: a close allocates only for what fires.
        let mut findings = std::mem::take(&mut self.findings_buf);
        let mut figures = std::mem::take(&mut self.figures_buf);
        findings.clear();
        figures.clear();
        if let Some(open) = idx.and_then(|i| self.open.get_mut(i)) {
            for (host, p) in open.proto.iter_mut() {
                p.mail_server = self.mail_servers.contains(host);
                p.finish(&self.dns, self.dns_hosts.contains(host), &self.rules);
                let f = crate::evidence::findings(p, &self.rules, &self.dns);
                if !f.is_empty() {
                    findings.insert(*host, f);
                }
                figures.insert(*host, p.figures());
            }
        }
        // One slow-beacon finding per host (the series with most connections): more would
        // say nothing the first does not, and each costs a string.
        let home = &self.home;
        let mut slow = std::mem::take(&mut self.slow_buf);
        slow.clear();
        self.slow.close_window(window.start_ns, window.end_ns, |b| {
            // Inside a LAN, timers are the norm (monitoring agents, file shares, backups):
            // only series to outside peers count.
            if !home.is_home(b.key.peer) {
                slow.push(b);
            }
        });
        // A total order (the table's iteration order is a random hasher's): the same choice on
        // every run and every target.
        slow.sort_unstable_by_key(|b| {
            (
                b.key.host,
                std::cmp::Reverse(b.connections),
                b.key.peer,
                b.key.port,
                b.key.proto,
            )
        });
        slow.dedup_by_key(|b| b.key.host);
        for b in &slow {
            // One string: the text with the peer's name when the DNS view has it.
            let (peer, name, sep, close) = match self.dns.name(b.key.peer) {
                Some(n) => (b.key.peer, n, " (", ")"),
                None => (b.key.peer, "", "", ""),
            };
            findings
                .entry(b.key.host)
                .or_default()
                .push(crate::evidence::Finding {
                    rule: "slow-beacon",
                    weight: crate::evidence::Weight::Weak,
                    text: format!(
                        "slow-beacon: {} connections to {peer}{sep}{name}{close} port {}, one every {:.0} s (spread {:.2}), over windows",
                        b.connections,
                        b.key.port,
                        b.gap_ns as f64 / 1e9,
                        b.spread
                    ),
                    peer: Some((b.key.peer, b.key.port)),
                    peer_flow: (b.key.proto, b.host_port),
                    peer_flows: b.connections,
                    peer_bytes: 0,
                });
        }
        self.slow_buf = slow;
        self.counters.slow_series_dropped = self.slow.dropped;
        let counts = idx
            .and_then(|i| self.open.get(i))
            .map_or(&empty, |o| &o.hosts);
        let ctx = host::WindowContext {
            findings: &findings,
            figures: &figures,
            dns: &self.dns,
            devices: &self.devices,
        };
        let alerts = self.scorer.close_window(window, counts, &ctx);
        // What the detector knew of forgotten hosts goes with them (their slots are reused).
        for a in &self.scorer.departed {
            self.dns_hosts.remove(a);
            self.mail_servers.remove(a);
        }
        // The scorer's counters: it moves to the next detector on a reload, they go with it.
        let h = self.scorer.counters;
        self.counters.hosts_expired = h.hosts_expired;
        self.counters.hosts_evicted = h.hosts_evicted;
        self.counters.hosts_refused = h.hosts_refused;
        self.counters.level_changes_dropped = h.level_changes_dropped;
        self.counters.histories_merged = h.histories_merged;
        self.findings_buf = findings;
        self.figures_buf = figures;
        if let Some(open) = idx.and_then(|i| self.open.get_mut(i)) {
            open.reset(u64::MAX);
        }
        self.counters.windows_scored += 1;
        self.pending.extend(alerts);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key() -> SeriesKey {
        SeriesKey {
            host: "10.0.0.5".parse().unwrap(),
            peer: "198.51.100.7".parse().unwrap(),
            port: 4433,
            proto: proto::TCP,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [5, 1, 3]), Some(3.0));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2.5));
        assert_eq!(median(&mut []), None);
        assert_eq!(median_f64(&mut [0.5, 0.1]), Some(0.3));
    }

    #[test]
    fn a_series_of_connections_closing_out_of_order_is_measured_in_start_order() {
        let mut w = OpenWindow::new(16);
        w.reset(0);
        // Eight connections every 10 s, the first two at once; they close out of order.
        let s = 1_000_000_000u64;
        for (t, bytes) in [
            (40, 900),
            (0, 300),
            (0, 200),
            (30, 900),
            (10, 900),
            (20, 900),
            (50, 900),
            (60, 900),
        ] {
            assert!(w.add_connection(key(), 50_000, 1000 * s + t * s, bytes, t == 30));
        }
        let b = w.series[0].beacon().unwrap();
        assert_eq!(b.connections, 8);
        assert_eq!(b.gap_ns, 10 * s);
        assert_eq!(b.spread, 0.0);
        assert_eq!(b.same_size, 6);
        assert_eq!(b.flagged, 1);
        assert!(
            !b.fires(),
            "1 of 8 predicted botnet is below the rule's share"
        );
    }

    #[test]
    fn the_series_table_is_bounded_and_counts_what_it_drops() {
        let mut w = OpenWindow::new(16);
        w.reset(0);
        // A series stores its first BEACON_STARTS connections and counts the rest.
        for i in 0..BEACON_STARTS as u64 + 5 {
            assert!(w.add_connection(key(), 50_000, i, 1, false));
        }
        let s = &w.series[w.series_index[&key()]];
        assert_eq!((s.len, s.seen), (BEACON_STARTS, BEACON_STARTS as u64 + 5));
        for i in 1..BEACON_SERIES + 10 {
            let k = SeriesKey {
                port: 10_000 + i as u16,
                ..key()
            };
            assert_eq!(w.add_connection(k, 50_000, 0, 1, false), i < BEACON_SERIES);
        }
        // A known series still takes connections when the table is full.
        assert!(w.add_connection(key(), 50_000, 99, 1, false));
        assert_eq!(w.series.len(), BEACON_SERIES);
        w.reset(1);
        assert!(w.series.is_empty() && w.series_index.is_empty());
    }
}
