//! Per-host scoring: for every home host, every window and every model, the number of its flows
//! predicted botnet (the original detector's plot); what the host did in the window (its
//! unanswered probes, its connections to other home hosts, its most regular connection series); a
//! smoothed score; and the red / yellow / clear level with the evidence behind each change.
//!
//! The rule (docs/detection.md has the tuning behind the defaults and the per-capture results):
//! * model value = `flows every model predicted botnet / max(scored flows, min_flows)`: a flow
//!   counts only when all the loaded models agree (each model alone flags whole benign captures
//!   the other does not), and only *scored* flows count: background service traffic (DNS, DHCP,
//!   NetBIOS, mDNS, LLMNR, SSDP, NTP), broadcast, multicast and protocols other than TCP, UDP and
//!   ICMP are left out of both counts (every host has them, and the models, trained with
//!   host-level labels, flag them on infected and DNS-heavy clean hosts alike) — a host with fewer
//!   than `min_flows` scored flows cannot reach a high value from one or two flows;
//! * three behaviour rules, each of which makes the window's value 1 and the host red in it
//!   ([`rules`] has their parameters):
//!   - **sweep**: the host probed at least [`rules::SWEEP_TARGETS`] distinct targets that never
//!     answered (TCP/UDP connection attempts, ICMP echo requests, ARP requests), and at least
//!     [`rules::SWEEP_UNANSWERED`] of all its probes went unanswered (scanning, worm spreading);
//!   - **lateral**: TCP connections to at least [`rules::LATERAL_PEERS`] distinct home hosts on
//!     one port, at least [`rules::LATERAL_CONNECTIONS`] of them (SMB-style propagation);
//!   - **beacon**: at least [`rules::BEACON_CONNECTIONS`] answered connections (state FIN or CON,
//!     started by the host, of known direction) to one remote
//!     address and port, at regular intervals (median gap >= 1 s, median absolute deviation of
//!     the gaps <= [`rules::BEACON_SPREAD`] of the median) or of one size (at least
//!     [`rules::BEACON_SAME_SIZE`] of them), and at least [`rules::BEACON_FLAGGED`] of them
//!     predicted botnet by a model (a regular series alone is also what MQTT, NTP-like polling and
//!     monitoring agents do);
//! * score = `alpha * v + (1 - alpha) * score` (the first window a host is seen starts it at `v`);
//!   a window in which a known host has no flows counts `v = 0`, so quiet hosts decay;
//! * the host is **red** (highly suspicious now) in a window when a rule fired, when its score is
//!   >= `red`, or when it has been >= `red_rising` and rising for `red_windows` consecutive windows;
//! * a red host that is no longer hot turns **yellow** (suspicious before, not cleared) and stays
//!   yellow while its score is >= `yellow_clear`; below that it is **clear** again.
//!
//! Everything per host and window has a fixed size (no allocation per flow); the distinct counts
//! saturate at their capacity, which is above every threshold.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use crate::alert::{Alert, Level, Peer};
use crate::config::{RulesConfig, ScoringConfig};
use crate::devices::{DeviceInfo, DeviceTable};
use crate::dnsview::DnsView;
use crate::engine::WindowInfo;
use crate::evidence::{Finding, Weight};

/// What the detector knows beside the counts when a window closes: the protocol detectors'
/// findings per host, the DNS view (names of peers) and the device table.
pub struct WindowContext<'a> {
    pub findings: &'a HashMap<IpAddr, Vec<Finding>>,
    /// Each host's DNS and feed figures in the window.
    pub figures: &'a HashMap<IpAddr, crate::evidence::ProtoFigures>,
    pub dns: &'a DnsView,
    pub devices: &'a DeviceTable,
}

/// Most models scored at once.
pub const MAX_MODELS: usize = 8;
/// Candidate peers tracked per host and window (space-saving heavy hitters).
const PEER_SLOTS: usize = 8;
/// Distinct unanswered probe targets counted exactly per host and window; more saturate.
pub const TARGET_SLOTS: usize = 64;
/// Ports tracked per host and window for the lateral rule (space-saving).
const LATERAL_SLOTS: usize = 2;
/// Distinct home peers remembered per lateral port; more saturate.
const LATERAL_PEER_SLOTS: usize = 8;

/// The behaviour rules' parameters. They were chosen on the whole evaluation of
/// docs/detection.md (not out of fold); each is set with a margin from the benign hosts there.
pub mod rules {
    /// sweep: distinct probe targets that never answered.
    pub const SWEEP_TARGETS: usize = 32;
    /// sweep: share of the host's probes that went unanswered (a refusal, a TCP reset, is an
    /// answer: counting it as a failure makes a P2P client retrying busy peers a sweeper).
    pub const SWEEP_UNANSWERED: f64 = 0.75;
    /// lateral: distinct home peers on one TCP port.
    pub const LATERAL_PEERS: usize = 3;
    /// lateral: TCP connections to home peers on that port.
    pub const LATERAL_CONNECTIONS: u64 = 15;
    /// beacon: answered connections to one remote address and port.
    pub const BEACON_CONNECTIONS: usize = 6;
    /// beacon: the median gap between connection starts must be at least this.
    pub const BEACON_MIN_GAP_NS: u64 = 1_000_000_000;
    /// beacon: median absolute deviation of the gaps, as a share of the median gap.
    pub const BEACON_SPREAD: f64 = 0.2;
    /// beacon: share of the connections with the modal size (total bytes), the other way to be
    /// regular.
    pub const BEACON_SAME_SIZE: f64 = 2.0 / 3.0;
    /// beacon: share of the connections a model predicted botnet.
    pub const BEACON_FLAGGED: f64 = 0.25;
    /// beacon: connections of a regular series to a peer no DNS answer named that fire without
    /// a model's word (software that names its servers resolves them).
    pub const BEACON_UNNAMED_CONNECTIONS: usize = 10;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCount {
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// The protocol and the host's own port of the latest flow counted (its Community ID).
    pub proto: u8,
    pub host_port: u16,
    pub flows: u64,
    pub bytes: u64,
}

/// TCP connections of a host to other home hosts on one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LateralPort {
    pub port: u16,
    pub connections: u64,
    /// Distinct home peers (the first [`LATERAL_PEER_SLOTS`]) with their connections and bytes.
    peers: [Option<(IpAddr, u64, u64)>; LATERAL_PEER_SLOTS],
}

impl LateralPort {
    /// Distinct home peers seen (saturates at the slot count).
    pub fn peer_count(&self) -> usize {
        self.peers.iter().filter(|p| p.is_some()).count()
    }

    /// The home peers with their connections and bytes.
    pub fn peers(&self) -> impl Iterator<Item = (IpAddr, u64, u64)> + '_ {
        self.peers.iter().filter_map(|p| *p)
    }
}

/// A series of connections from a host to one remote address and port in a window.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Beacon {
    pub peer: IpAddr,
    pub port: u16,
    pub proto: u8,
    /// The host's own port of the series' latest connection.
    #[serde(default)]
    pub host_port: u16,
    /// Connections measured (answered, in the window; at most the detector's per-series store).
    pub connections: u64,
    /// Median gap between connection starts.
    pub gap_ns: u64,
    /// Median absolute deviation of the gaps / median gap.
    pub spread: f64,
    /// Connections with the modal size.
    pub same_size: u64,
    /// Connections a model predicted botnet.
    pub flagged: u64,
    /// Bytes of the measured connections.
    pub bytes: u64,
    /// No DNS answer named the peer before the series began, though the host's DNS is visible.
    #[serde(default)]
    pub unnamed: bool,
}

impl Beacon {
    /// Whether the series is regular: enough connections, spaced at least 1 s apart, at even
    /// intervals or of one size.
    pub fn regular(&self) -> bool {
        let n = self.connections as f64;
        self.connections >= rules::BEACON_CONNECTIONS as u64
            && self.gap_ns >= rules::BEACON_MIN_GAP_NS
            && (self.spread <= rules::BEACON_SPREAD
                || self.same_size as f64 >= rules::BEACON_SAME_SIZE * n)
    }

    /// Whether the series is regular and corroborated by a model, or long and to a peer no DNS
    /// answer named (the beacon rule).
    pub fn fires(&self) -> bool {
        self.regular()
            && (self.flagged as f64 >= rules::BEACON_FLAGGED * self.connections as f64
                || (self.unnamed && self.connections >= rules::BEACON_UNNAMED_CONNECTIONS as u64))
    }
}

/// One host's counts in one window.
#[derive(Clone, Copy, Debug)]
pub struct HostWindow {
    /// Every flow record counted for the host.
    pub flows: u64,
    /// The flows the model value counts: TCP, UDP and ICMP to a unicast address, not background
    /// service traffic.
    pub scored: u64,
    /// Per model, scored flows predicted botnet.
    pub botnet: [u64; MAX_MODELS],
    /// Scored flows every model predicted botnet (the model value's numerator).
    pub agreed: u64,
    /// Remote peers of the host's botnet-predicted flows.
    pub peers: [PeerCount; PEER_SLOTS],
    /// Probes the host sent: TCP/UDP connection attempts of known direction, ICMP echo requests,
    /// ARP requests.
    pub probes: u64,
    /// Probes that got no packet back.
    pub unanswered: u64,
    /// Distinct targets (address, port, protocol) of the unanswered probes, as 32-bit hashes.
    targets: [u32; TARGET_SLOTS],
    n_targets: usize,
    /// TCP connections to other home hosts, by port.
    pub lateral: [LateralPort; LATERAL_SLOTS],
    /// The host's most connected regular series, set by the detector when the window closes.
    pub beacon: Option<Beacon>,
}

impl Default for HostWindow {
    fn default() -> Self {
        HostWindow {
            flows: 0,
            scored: 0,
            botnet: [0; MAX_MODELS],
            agreed: 0,
            peers: [PeerCount::default(); PEER_SLOTS],
            probes: 0,
            unanswered: 0,
            targets: [0; TARGET_SLOTS],
            n_targets: 0,
            lateral: [LateralPort::default(); LATERAL_SLOTS],
            beacon: None,
        }
    }
}

impl HostWindow {
    fn add_peer(&mut self, f: &FlowFacts) {
        let (addr, port, bytes) = (f.peer, f.peer_port, f.bytes);
        if let Some(p) = self
            .peers
            .iter_mut()
            .find(|p| p.addr == Some(addr) && p.port == port)
        {
            p.flows += 1;
            p.bytes += bytes;
            p.proto = f.proto;
            p.host_port = f.host_port;
            return;
        }
        // Replace the smallest (space-saving: the newcomer inherits its count as an upper bound).
        if let Some(p) = self.peers.iter_mut().min_by_key(|p| (p.flows, p.bytes)) {
            *p = PeerCount {
                addr: Some(addr),
                port,
                proto: f.proto,
                host_port: f.host_port,
                flows: p.flows + 1,
                bytes: p.bytes + bytes,
            };
        }
    }

    fn add_target(&mut self, target: u32) {
        let seen = self.targets.get(..self.n_targets).unwrap_or(&[]);
        if seen.contains(&target) {
            return;
        }
        if let Some(slot) = self.targets.get_mut(self.n_targets) {
            *slot = target;
            self.n_targets += 1;
        }
    }

    fn add_lateral(&mut self, port: u16, peer: IpAddr, bytes: u64) {
        let idx = match self
            .lateral
            .iter()
            .position(|l| l.port == port && l.connections > 0)
        {
            Some(i) => i,
            None => {
                // A free slot, else the least used one starts over for this port.
                let Some(i) = self
                    .lateral
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, l)| l.connections)
                    .map(|(i, _)| i)
                else {
                    return;
                };
                if let Some(l) = self.lateral.get_mut(i) {
                    *l = LateralPort {
                        port,
                        ..LateralPort::default()
                    };
                }
                i
            }
        };
        if let Some(l) = self.lateral.get_mut(idx) {
            l.connections += 1;
            if let Some((_, n, b)) = l.peers.iter_mut().flatten().find(|(a, _, _)| *a == peer) {
                *n += 1;
                *b += bytes;
            } else if let Some(free) = l.peers.iter_mut().find(|p| p.is_none()) {
                *free = Some((peer, 1, bytes));
            }
        }
    }

    /// Distinct unanswered probe targets (saturates at [`TARGET_SLOTS`]).
    pub fn unanswered_targets(&self) -> usize {
        self.n_targets
    }

    /// The sweep rule.
    pub fn sweep_fires(&self) -> bool {
        self.n_targets >= rules::SWEEP_TARGETS
            && self.unanswered as f64 >= rules::SWEEP_UNANSWERED * self.probes as f64
    }

    /// The port on which the lateral rule fires, if any.
    pub fn lateral_fires(&self) -> Option<&LateralPort> {
        self.lateral.iter().find(|l| {
            l.peer_count() >= rules::LATERAL_PEERS && l.connections >= rules::LATERAL_CONNECTIONS
        })
    }

    /// The beacon rule's series, if it fires.
    pub fn beacon_fires(&self) -> Option<&Beacon> {
        self.beacon.as_ref().filter(|b| b.fires())
    }
}

/// What one flow record tells about the home host it is counted for.
#[derive(Clone, Copy, Debug)]
pub struct FlowFacts {
    pub host: IpAddr,
    /// The other end, and its port (the destination port when the host started the flow).
    pub peer: IpAddr,
    pub peer_port: u16,
    /// The flow's protocol and the host's own port (for the peer's Community ID).
    pub proto: u8,
    pub host_port: u16,
    pub bytes: u64,
    /// Counted in the model value (see [`HostWindow::scored`]).
    pub scored: bool,
    /// A probe of the host: its target's hash and whether anything came back.
    pub probe: Option<(u32, bool)>,
    /// A TCP connection of the host to another home host, on this port.
    pub lateral_port: Option<u16>,
}

/// A window of a host's history.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    pub window: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub flows: u64,
    /// Flows the model value counts (`flows` without background service and broadcast traffic).
    pub scored: u64,
    /// Predicted botnet flows per model, in model order.
    pub botnet: Vec<u64>,
    /// Scored flows every model predicted botnet.
    pub agreed: u64,
    pub value: f64,
    pub score: f64,
    pub level: Level,
    /// Top remote peers of the host's botnet-predicted flows in this window (empty when none).
    pub peers: Vec<Peer>,
    /// The behaviour rules that fired in this window, each with its figures (empty when none).
    pub rules: Vec<String>,
    /// The host's regular connection series in this window (the beacon rule's candidate), also
    /// when no model corroborated it: `flagged` says how many of its connections a model flagged.
    pub series: Option<Beacon>,
    /// Findings of the protocol detectors too weak to act alone (they need another weak one or
    /// a model's word in the same window), each with its figures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak: Vec<String>,
    /// What the host's DNS and the feeds showed in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocols: Option<crate::evidence::ProtoFigures>,
}

/// Everything botd knows about one home host.
#[derive(Clone, Debug)]
pub struct HostState {
    pub addr: IpAddr,
    pub score: f64,
    pub level: Level,
    hot_streak: u32,
    pub flagged_windows: u64,
    /// Most recent windows, oldest first, at most `history_windows`.
    pub history: VecDeque<HistoryEntry>,
    /// The latest level changes with their evidence, oldest first, at most
    /// `max_level_changes` (also those of the device's forgotten addresses, see [`HostScorer`]).
    pub changes: VecDeque<Alert>,
    /// Whether the host (or a forgotten address of its device) was ever red.
    pub was_red: bool,
    /// The device behind the address, when known.
    pub device: Option<DeviceInfo>,
    /// End of the latest window in which the host had a flow (engine time).
    pub last_seen_ns: u64,
}

/// What happened to hosts leaving or not entering the table, and to level changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostCounters {
    /// Clear hosts forgotten after `host_idle_secs` without a flow.
    pub hosts_expired: u64,
    /// Clear hosts forgotten early to make room for a new one (the table was full).
    pub hosts_evicted: u64,
    /// New hosts not tracked: every slot held a red, yellow or active host.
    pub hosts_refused: u64,
    /// Level changes dropped from a host's list (the oldest beyond `max_level_changes`).
    pub level_changes_dropped: u64,
    /// Forgotten addresses whose level changes went to another address of their device.
    pub histories_merged: u64,
}

/// The host table: at most `max_hosts` hosts, fixed at start-up.
///
/// Lifecycle, at each window close: a clear host without a flow for `host_idle_secs` that was
/// never red expires;
/// then each new host takes a free slot, else the slot of the clear host idle longest that had
/// no flow in the window (evicted; one that was once red only when no other is left), else it is
/// refused. Red and yellow hosts are never forgotten.
/// A forgotten address whose device (MAC) has another tracked address hands it its level
/// changes, flagged windows and "was red", so a device keeps its record across its rotating
/// IPv6 privacy addresses; an address of an unknown device takes its record with it.
pub struct HostScorer {
    cfg: ScoringConfig,
    rules: RulesConfig,
    models: Vec<String>,
    hosts: HashMap<IpAddr, HostState>,
    pub counters: HostCounters,
    /// Addresses forgotten by the latest window close (the detector forgets them too).
    pub departed: Vec<IpAddr>,
}

/// The rules that fired in a window: short names (for the alert's `models`) and descriptions.
fn fired_rules(c: &HostWindow) -> Vec<(&'static str, String)> {
    let mut fired = Vec::new();
    if c.sweep_fires() {
        let saturated = if c.n_targets >= TARGET_SLOTS { "+" } else { "" };
        fired.push((
            "sweep",
            format!(
                "sweep: {}{saturated} distinct targets never answered; {} of {} probes unanswered",
                c.n_targets, c.unanswered, c.probes
            ),
        ));
    }
    if let Some(l) = c.lateral_fires() {
        let peers: Vec<String> = l.peers().map(|(p, _, _)| p.to_string()).collect();
        fired.push((
            "lateral",
            format!(
                "lateral: {} TCP connections to {} home hosts on port {} ({})",
                l.connections,
                l.peer_count(),
                l.port,
                peers.join(" ")
            ),
        ));
    }
    if let Some(b) = c.beacon_fires() {
        fired.push((
            "beacon",
            format!(
                "beacon: {} connections to {} port {} every {:.1} s (spread {:.0}%), {} of one size, {} predicted botnet{}",
                b.connections,
                b.peer,
                b.port,
                b.gap_ns as f64 / 1e9,
                b.spread * 100.0,
                b.same_size,
                b.flagged,
                if b.unnamed {
                    "; no DNS answer named the peer"
                } else {
                    ""
                }
            ),
        ));
    }
    fired
}

impl HostScorer {
    pub fn new(cfg: ScoringConfig, models: Vec<String>) -> HostScorer {
        let cap = cfg.max_hosts;
        HostScorer {
            cfg,
            rules: RulesConfig::default(),
            models,
            hosts: HashMap::with_capacity(cap),
            counters: HostCounters::default(),
            departed: Vec::new(),
        }
    }

    pub fn models(&self) -> &[String] {
        &self.models
    }

    /// Which detectors are on.
    pub fn set_rules(&mut self, rules: RulesConfig) {
        self.rules = rules;
    }

    /// The settings it scores with.
    pub fn config(&self) -> &ScoringConfig {
        &self.cfg
    }

    /// Takes new lifecycle settings (a reload): hosts are forgotten after `host_idle_secs` from
    /// the next window close on, and each host keeps its last `max_level_changes` level changes
    /// (older ones go now, counted as dropped). Neither sizes anything allocated up front, unlike
    /// `max_hosts`, which only a restart changes.
    pub fn set_lifecycle(&mut self, host_idle_secs: u64, max_level_changes: usize) {
        self.cfg.host_idle_secs = host_idle_secs;
        self.cfg.max_level_changes = max_level_changes;
        let max = max_level_changes.max(1);
        for h in self.hosts.values_mut() {
            while h.changes.len() > max {
                h.changes.pop_front();
                self.counters.level_changes_dropped += 1;
            }
        }
    }

    /// Folds one closed window's counts into the hosts' scores; returns the level changes.
    pub fn close_window(
        &mut self,
        window: &WindowInfo,
        counts: &HashMap<IpAddr, HostWindow>,
        ctx: &WindowContext<'_>,
    ) -> Vec<Alert> {
        let n_models = self.models.len().min(MAX_MODELS);
        self.departed.clear();
        self.expire(window, counts, ctx.devices);
        // New hosts (deterministic order), bounded by max_hosts.
        let mut new_hosts: Vec<IpAddr> = counts
            .keys()
            .filter(|a| !self.hosts.contains_key(*a))
            .copied()
            .collect();
        new_hosts.sort();
        let free = self.cfg.max_hosts.saturating_sub(self.hosts.len());
        if new_hosts.len() > free {
            self.evict(new_hosts.len() - free, counts, ctx.devices);
        }
        for addr in new_hosts {
            if self.hosts.len() >= self.cfg.max_hosts {
                self.counters.hosts_refused += 1;
                continue;
            }
            self.hosts.insert(
                addr,
                HostState {
                    addr,
                    score: f64::NAN,
                    level: Level::Clear,
                    hot_streak: 0,
                    flagged_windows: 0,
                    // Grown as windows come (at most history_windows): a host seen once, as
                    // most guests and privacy addresses are, holds a few entries, not 96 KiB.
                    history: VecDeque::new(),
                    changes: VecDeque::new(),
                    was_red: false,
                    device: None,
                    last_seen_ns: window.end_ns,
                },
            );
        }
        let mut addrs: Vec<IpAddr> = self.hosts.keys().copied().collect();
        addrs.sort();
        let mut alerts = Vec::new();
        let empty = HostWindow::default();
        for addr in addrs {
            let Some(host) = self.hosts.get_mut(&addr) else {
                continue;
            };
            let c = counts.get(&addr).unwrap_or(&empty);
            if c.flows > 0 {
                host.last_seen_ns = host.last_seen_ns.max(window.end_ns);
            }
            let denom = c.scored.max(u64::from(self.cfg.min_flows)).max(1) as f64;
            let best_botnet = c.botnet.iter().take(n_models).copied().max().unwrap_or(0);
            let mut fired: Vec<(&'static str, String)> = fired_rules(c)
                .into_iter()
                .filter(|(name, _)| self.rules.enabled(name))
                .collect();
            // The protocol detectors: a strong finding acts alone; weak ones need another weak
            // one or a model's word in the same window.
            let found: Vec<&Finding> = ctx
                .findings
                .get(&addr)
                .map(|f| f.iter().filter(|f| self.rules.enabled(f.rule)).collect())
                .unwrap_or_default();
            let weak: Vec<&Finding> = found
                .iter()
                .filter(|f| f.weight == Weight::Weak)
                .copied()
                .collect();
            // Corroboration: a second weak detector, or the models' word on the same peer (two
            // or more flows to the address the finding names flagged), or on half the host's
            // scored flows in the window. One flagged flow somewhere else is not enough: the
            // models flag a few flows of most benign hosts.
            // `[rules] disable = ["models"]` leaves the models' votes out of the verdict (they
            // are still counted and shown): the ablation of docs/detection.md.
            // A host speaking a P2P protocol botd recognises (BitTorrent, Gnutella) makes many
            // short connections to unnamed peers, which is what the models learnt from P2P
            // botnets: the protocol tells them apart, so the models' votes wait that window out.
            let p2p_client = ctx.figures.get(&addr).is_some_and(|f| f.p2p_protocol);
            let models_on = self.rules.enabled("models") && !p2p_client;
            let agreed = if models_on { c.agreed } else { 0 };
            let model_value = agreed as f64 / denom;
            let models_on_peer = |f: &&Finding| {
                f.peer.is_some_and(|(a, _)| {
                    c.peers
                        .iter()
                        .any(|p| p.addr == Some(a) && p.flows >= 2 && agreed > 0)
                })
            };
            // Two findings of one detector (two slow series, say) are one signal, not two.
            let distinct_weak = weak
                .iter()
                .enumerate()
                .filter(|(i, f)| !weak.iter().take(*i).any(|g| g.rule == f.rule))
                .count();
            let corroborated = distinct_weak >= 2
                || (!weak.is_empty() && model_value >= 0.5)
                || weak.iter().any(models_on_peer);
            for f in &found {
                if f.weight == Weight::Strong || corroborated {
                    fired.push((f.rule, f.text.clone()));
                }
            }
            let weak_texts: Vec<String> = if corroborated {
                Vec::new()
            } else {
                weak.iter().map(|f| f.text.clone()).collect()
            };
            let finding_peers: Vec<Peer> = found
                .iter()
                .filter(|f| f.weight == Weight::Strong || corroborated)
                .filter_map(|f| {
                    f.peer.map(|(addr, port)| Peer {
                        addr,
                        port,
                        proto: f.peer_flow.0,
                        host_port: f.peer_flow.1,
                        flows: f.peer_flows,
                        bytes: f.peer_bytes,
                        name: None,
                    })
                })
                .collect();
            if host.device.is_none() || !fired.is_empty() {
                host.device = ctx.devices.info(addr);
            }
            let value = if fired.is_empty() { model_value } else { 1.0 };
            let previous_score = host.score;
            host.score = if previous_score.is_nan() {
                value
            } else {
                self.cfg.alpha * value + (1.0 - self.cfg.alpha) * previous_score
            };
            let rising = previous_score.is_nan() || host.score > previous_score;
            let rising_hot = host.score >= self.cfg.red_rising && rising;
            host.hot_streak = if rising_hot { host.hot_streak + 1 } else { 0 };
            let red_now = !fired.is_empty()
                || host.score >= self.cfg.red
                || host.hot_streak >= self.cfg.red_windows.max(1);
            if red_now && (!fired.is_empty() || c.agreed > 0) {
                host.flagged_windows += 1;
            }
            let new_level = if red_now {
                Level::Red
            } else if host.was_red && host.score >= self.cfg.yellow_clear {
                Level::Yellow
            } else {
                Level::Clear
            };
            let mut peers = evidence_peers(c, &finding_peers, self.cfg.top_peers);
            for p in &mut peers {
                p.name = ctx.dns.name(p.addr).map(String::from);
            }
            if c.flows > 0 || host.score > 0.0 {
                if host.history.len() >= self.cfg.history_windows.max(1) {
                    host.history.pop_front();
                }
                host.history.push_back(HistoryEntry {
                    window: window.index,
                    start_ns: window.start_ns,
                    end_ns: window.end_ns,
                    flows: c.flows,
                    scored: c.scored,
                    botnet: c.botnet.iter().take(n_models).copied().collect(),
                    agreed: c.agreed,
                    value,
                    score: host.score,
                    level: new_level,
                    peers: if best_botnet > 0 || !fired.is_empty() {
                        peers.clone()
                    } else {
                        Vec::new()
                    },
                    rules: fired.iter().map(|(_, d)| d.clone()).collect(),
                    series: c.beacon.filter(Beacon::regular),
                    weak: weak_texts,
                    protocols: ctx.figures.get(&addr).cloned(),
                });
            }
            if new_level != host.level {
                // The device's addresses as they are now (an alert names the other ones).
                if let Some(d) = ctx.devices.info(addr) {
                    host.device = Some(d);
                }
                // The evidence: the models that flagged scored flows, then the rules that fired.
                let flagging: Vec<String> = (0..n_models)
                    .filter(|&m| c.botnet.get(m).copied().unwrap_or(0) > 0)
                    .filter_map(|m| self.models.get(m).cloned())
                    .chain(fired.iter().map(|(name, _)| (*name).to_string()))
                    .collect();
                let alert = Alert {
                    host: addr,
                    level: new_level,
                    previous: host.level,
                    score: host.score,
                    window: window.index,
                    window_start_ns: window.start_ns,
                    window_end_ns: window.end_ns,
                    models: flagging,
                    botnet_flows: best_botnet,
                    flows: c.flows,
                    flagged_windows: host.flagged_windows,
                    peers,
                    rules: fired.iter().map(|(_, d)| d.clone()).collect(),
                    device: host.device.clone(),
                    action: crate::alert::Action::Allowed,
                    sensor: String::new(),
                };
                host.was_red |= new_level == Level::Red;
                host.level = new_level;
                push_change(
                    &mut host.changes,
                    alert.clone(),
                    self.cfg.max_level_changes,
                    &mut self.counters.level_changes_dropped,
                );
                alerts.push(alert);
            }
        }
        alerts
    }

    /// Forgets the clear hosts without a flow for `host_idle_secs` (none in this window).
    fn expire(
        &mut self,
        window: &WindowInfo,
        counts: &HashMap<IpAddr, HostWindow>,
        devices: &DeviceTable,
    ) {
        let idle_ns = self.cfg.host_idle_secs.saturating_mul(1_000_000_000);
        let mut idle: Vec<IpAddr> = self
            .hosts
            .values()
            .filter(|h| {
                // A host that was ever red keeps its record (what an operator or an analyst of a
                // long capture looks for) unless a tracked address of its device takes it over;
                // otherwise only the table's eviction, last, takes it.
                h.level == Level::Clear
                    && (!h.was_red || self.sibling(h.addr, devices).is_some())
                    && !counts.contains_key(&h.addr)
                    && window.end_ns.saturating_sub(h.last_seen_ns) >= idle_ns
            })
            .map(|h| h.addr)
            .collect();
        idle.sort();
        for addr in idle {
            self.forget(addr, devices);
            self.counters.hosts_expired += 1;
        }
    }

    /// Makes room for `n` new hosts: the clear hosts idle longest, not active in this window;
    /// those that were once red last (their record is what an operator would look for).
    fn evict(&mut self, n: usize, counts: &HashMap<IpAddr, HostWindow>, devices: &DeviceTable) {
        let mut candidates: Vec<(bool, u64, IpAddr)> = self
            .hosts
            .values()
            .filter(|h| h.level == Level::Clear && !counts.contains_key(&h.addr))
            .map(|h| (h.was_red, h.last_seen_ns, h.addr))
            .collect();
        candidates.sort_unstable();
        for (_, _, addr) in candidates.into_iter().take(n) {
            self.forget(addr, devices);
            self.counters.hosts_evicted += 1;
        }
    }

    /// Removes a host; its record goes to another tracked address of its device, if any.
    /// The tracked address of `addr`'s device seen last, other than `addr`.
    fn sibling(&self, addr: IpAddr, devices: &DeviceTable) -> Option<IpAddr> {
        devices.by_addr(addr).and_then(|d| {
            d.addrs
                .iter()
                .filter(|(a, _)| *a != addr && self.hosts.contains_key(a))
                .max_by_key(|(a, t)| (*t, *a))
                .map(|(a, _)| *a)
        })
    }

    fn forget(&mut self, addr: IpAddr, devices: &DeviceTable) {
        let Some(gone) = self.hosts.remove(&addr) else {
            return;
        };
        self.departed.push(addr);
        if gone.changes.is_empty() && !gone.was_red {
            return;
        }
        let sibling = self.sibling(addr, devices);
        let Some(to) = sibling.and_then(|a| self.hosts.get_mut(&a)) else {
            return;
        };
        to.was_red |= gone.was_red;
        to.flagged_windows += gone.flagged_windows;
        // The forgotten address's changes are older than most of the sibling's: one list in
        // time order, bounded as any other.
        let mut merged: Vec<Alert> = gone
            .changes
            .into_iter()
            .chain(to.changes.drain(..))
            .collect();
        merged.sort_by_key(|a| (a.window_end_ns, a.window));
        for a in merged {
            push_change(
                &mut to.changes,
                a,
                self.cfg.max_level_changes,
                &mut self.counters.level_changes_dropped,
            );
        }
        if let Some(d) = devices.info(to.addr) {
            to.device = Some(d);
        }
        self.counters.histories_merged += 1;
    }

    /// Hosts tracked now.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every tracked host, sorted by address.
    pub fn hosts(&self) -> Vec<&HostState> {
        let mut v: Vec<&HostState> = self.hosts.values().collect();
        v.sort_by_key(|h| h.addr);
        v
    }
}

/// Appends a level change, dropping the oldest beyond `max` (counted).
fn push_change(changes: &mut VecDeque<Alert>, alert: Alert, max: usize, dropped: &mut u64) {
    while changes.len() >= max.max(1) {
        changes.pop_front();
        *dropped += 1;
    }
    changes.push_back(alert);
}

/// The peers behind a window's verdict: the beacon's peer when that rule fired, the lateral
/// rule's home peers, then the `n` remote peers with most botnet-predicted flows (then bytes);
/// at most `n` in all.
fn evidence_peers(c: &HostWindow, found: &[Peer], n: usize) -> Vec<Peer> {
    let mut out: Vec<Peer> = Vec::new();
    // The peers the protocol detectors named come first.
    for f in found {
        if !out.iter().any(|o| o.addr == f.addr && o.port == f.port) {
            // The finding's own counts, else the models' peers' (the finding's text has its
            // figures either way); the same for the flow behind the Community ID.
            let known = c
                .peers
                .iter()
                .find(|p| p.addr == Some(f.addr) && p.port == f.port);
            let mut p = f.clone();
            if let Some(k) = known {
                if f.flows == 0 {
                    p.flows = k.flows;
                    p.bytes = k.bytes;
                }
                if f.proto == 0 {
                    p.proto = k.proto;
                    p.host_port = k.host_port;
                }
            }
            out.push(p);
        }
    }
    if let Some(b) = c.beacon_fires() {
        out.push(Peer {
            addr: b.peer,
            port: b.port,
            proto: b.proto,
            host_port: b.host_port,
            flows: b.connections,
            bytes: b.bytes,
            name: None,
        });
    }
    if let Some(l) = c.lateral_fires() {
        let mut lateral: Vec<Peer> = l
            .peers()
            .map(|(addr, flows, bytes)| Peer {
                addr,
                port: l.port,
                proto: crate::wire::proto::TCP,
                // Many connections, no one source port.
                host_port: 0,
                flows,
                bytes,
                name: None,
            })
            .collect();
        lateral.sort_by_key(|p| std::cmp::Reverse((p.flows, p.bytes)));
        out.extend(lateral);
    }
    let mut peers: Vec<PeerCount> = c
        .peers
        .iter()
        .filter(|p| p.addr.is_some())
        .copied()
        .collect();
    peers.sort_by_key(|p| std::cmp::Reverse((p.flows, p.bytes)));
    for p in &peers {
        // A peer the rules already named is not repeated.
        if let Some(addr) = p.addr
            && !out.iter().any(|o| o.addr == addr && o.port == p.port)
        {
            out.push(Peer {
                addr,
                port: p.port,
                proto: p.proto,
                host_port: p.host_port,
                flows: p.flows,
                bytes: p.bytes,
                name: None,
            });
        }
    }
    out.truncate(n);
    out
}

/// Accumulates one flow record into its host's counts for the window; `botnet` holds each
/// loaded model's verdict on the flow (one per model, in model order).
pub fn add_flow(
    counts: &mut HashMap<IpAddr, HostWindow>,
    max_hosts: usize,
    f: &FlowFacts,
    botnet: &[bool],
) -> bool {
    if !counts.contains_key(&f.host) && counts.len() >= max_hosts {
        return false;
    }
    let w = counts.entry(f.host).or_default();
    w.flows += 1;
    if f.scored {
        w.scored += 1;
        let mut any = false;
        for (slot, &b) in w.botnet.iter_mut().zip(botnet) {
            if b {
                *slot += 1;
                any = true;
            }
        }
        if any {
            w.add_peer(f);
        }
        if !botnet.is_empty() && botnet.iter().all(|&b| b) {
            w.agreed += 1;
        }
    }
    if let Some((target, answered)) = f.probe {
        w.probes += 1;
        if !answered {
            w.unanswered += 1;
            w.add_target(target);
        }
    }
    if let Some(port) = f.lateral_port {
        w.add_lateral(port, f.peer, f.bytes);
    }
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Closes a window with no protocol findings (the flow rules and models only).
    fn close(
        s: &mut HostScorer,
        w: &WindowInfo,
        counts: &HashMap<IpAddr, HostWindow>,
    ) -> Vec<Alert> {
        let (findings, figures) = (HashMap::new(), HashMap::new());
        let (dns, devices) = (DnsView::new(1), DeviceTable::new(1));
        let ctx = WindowContext {
            findings: &findings,
            figures: &figures,
            dns: &dns,
            devices: &devices,
        };
        s.close_window(w, counts, &ctx)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Closes a window with a device table.
    fn close_with(
        s: &mut HostScorer,
        w: &WindowInfo,
        counts: &HashMap<IpAddr, HostWindow>,
        devices: &DeviceTable,
    ) -> Vec<Alert> {
        let (findings, figures) = (HashMap::new(), HashMap::new());
        let dns = DnsView::new(1);
        let ctx = WindowContext {
            findings: &findings,
            figures: &figures,
            dns: &dns,
            devices,
        };
        s.close_window(w, counts, &ctx)
    }

    fn scorer_with(max_hosts: usize, host_idle_secs: u64, max_level_changes: usize) -> HostScorer {
        let cfg = ScoringConfig {
            max_hosts,
            host_idle_secs,
            max_level_changes,
            ..ScoringConfig::default()
        };
        HostScorer::new(cfg, vec!["m".into()])
    }

    /// One benign flow of each host.
    fn active(hosts: &[&str]) -> HashMap<IpAddr, HostWindow> {
        let mut counts = HashMap::new();
        for h in hosts {
            add_flow(&mut counts, 64, &facts(h, "198.51.100.7", 443), &[false]);
        }
        counts
    }

    /// A sweep of `host` (red in its window).
    fn sweeping(counts: &mut HashMap<IpAddr, HostWindow>, host: &str) {
        for i in 0..40u16 {
            let mut f = facts(host, "203.0.113.1", 23);
            f.probe = Some((u32::from(i), false));
            add_flow(counts, 64, &f, &[false]);
        }
    }

    fn tracked(s: &HostScorer) -> Vec<IpAddr> {
        s.hosts().iter().map(|h| h.addr).collect()
    }

    fn scorer() -> HostScorer {
        HostScorer::new(ScoringConfig::default(), vec!["m".into()])
    }

    fn window(index: u64) -> WindowInfo {
        WindowInfo {
            index,
            start_ns: index * 150_000_000_000,
            end_ns: index * 150_000_000_000 + 300_000_000_000,
            ..WindowInfo::default()
        }
    }

    fn facts(host: &str, peer: &str, port: u16) -> FlowFacts {
        FlowFacts {
            host: ip(host),
            peer: ip(peer),
            peer_port: port,
            proto: 6,
            host_port: 50_000,
            bytes: 100,
            scored: true,
            probe: None,
            lateral_port: None,
        }
    }

    #[test]
    fn sweep_needs_many_unanswered_targets_and_a_high_share() {
        let mut counts = HashMap::new();
        for i in 0..40u16 {
            let mut f = facts("10.0.0.5", "203.0.113.1", 23);
            f.probe = Some((u32::from(i), false));
            add_flow(&mut counts, 16, &f, &[false]);
        }
        let w = counts[&ip("10.0.0.5")];
        assert_eq!(w.unanswered_targets(), 40);
        assert!(w.sweep_fires());
        let alerts = close(&mut scorer(), &window(0), &counts);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, Level::Red);
        assert_eq!(alerts[0].models, ["sweep"]);

        // The same targets among as many answered probes: a busy host, not a sweep.
        for i in 0..40u16 {
            let mut f = facts("10.0.0.5", "203.0.113.2", 443);
            f.probe = Some((1000 + u32::from(i), true));
            add_flow(&mut counts, 16, &f, &[false]);
        }
        assert!(!counts[&ip("10.0.0.5")].sweep_fires());
    }

    #[test]
    fn distinct_targets_saturate_at_their_capacity() {
        let mut counts = HashMap::new();
        for i in 0..1000u32 {
            let mut f = facts("10.0.0.5", "203.0.113.1", 23);
            f.probe = Some((i % 500, false));
            add_flow(&mut counts, 16, &f, &[false]);
        }
        let w = counts[&ip("10.0.0.5")];
        assert_eq!(w.unanswered_targets(), TARGET_SLOTS);
        assert_eq!(w.unanswered, 1000);
    }

    #[test]
    fn lateral_needs_several_home_peers_and_many_connections() {
        let mut counts = HashMap::new();
        for i in 0..16 {
            let peer = format!("10.0.0.{}", 10 + i % 4);
            let mut f = facts("10.0.0.5", &peer, 445);
            f.lateral_port = Some(445);
            add_flow(&mut counts, 16, &f, &[false]);
        }
        let w = counts[&ip("10.0.0.5")];
        let l = w.lateral_fires().expect("lateral");
        assert_eq!((l.port, l.connections, l.peer_count()), (445, 16, 4));
        let alerts = close(&mut scorer(), &window(0), &counts);
        assert_eq!(alerts[0].models, ["lateral"]);
        assert_eq!(alerts[0].peers.len(), 4);
        assert_eq!(alerts[0].peers[0].flows, 4);

        // Two file servers, however many connections: not lateral spreading.
        let mut counts = HashMap::new();
        for i in 0..100 {
            let peer = format!("10.0.0.{}", 10 + i % 2);
            let mut f = facts("10.0.0.5", &peer, 445);
            f.lateral_port = Some(445);
            add_flow(&mut counts, 16, &f, &[false]);
        }
        assert!(counts[&ip("10.0.0.5")].lateral_fires().is_none());
    }

    #[test]
    fn a_beacon_needs_regularity_and_a_model_s_word() {
        let b = Beacon {
            peer: ip("198.51.100.7"),
            port: 8443,
            proto: 6,
            host_port: 50_000,
            connections: 8,
            gap_ns: 10_000_000_000,
            spread: 0.05,
            same_size: 2,
            unnamed: false,
            flagged: 2,
            bytes: 8000,
        };
        assert!(b.fires());
        // The same series with no flow predicted botnet (an MQTT client reconnecting).
        assert!(!Beacon { flagged: 0, ..b }.fires());
        // Irregular gaps and sizes.
        assert!(!Beacon { spread: 0.5, ..b }.fires());
        // Irregular gaps but one size: regular enough.
        assert!(
            Beacon {
                spread: 0.5,
                same_size: 6,
                ..b
            }
            .fires()
        );
        // A burst, not a beacon.
        assert!(
            !Beacon {
                gap_ns: 10_000_000,
                ..b
            }
            .fires()
        );
        let mut counts = HashMap::new();
        add_flow(
            &mut counts,
            16,
            &facts("10.0.0.5", "198.51.100.7", 8443),
            &[true],
        );
        counts.get_mut(&ip("10.0.0.5")).unwrap().beacon = Some(b);
        let alerts = close(&mut scorer(), &window(0), &counts);
        assert_eq!(alerts[0].models, ["m", "beacon"]);
        // The beacon's peer comes first, and is not repeated from the model's peers.
        assert_eq!(alerts[0].peers.len(), 1);
        assert_eq!(alerts[0].peers[0].flows, 8);
    }

    #[test]
    fn background_flows_do_not_count_in_the_model_value() {
        let mut counts = HashMap::new();
        for _ in 0..20 {
            let mut f = facts("10.0.0.5", "10.0.0.1", 53);
            f.scored = false;
            add_flow(&mut counts, 16, &f, &[true]);
        }
        let w = counts[&ip("10.0.0.5")];
        assert_eq!((w.flows, w.scored, w.botnet[0]), (20, 0, 0));
        let mut s = scorer();
        assert!(close(&mut s, &window(0), &counts).is_empty());
        let h = &s.hosts()[0];
        assert_eq!(h.level, Level::Clear);
        assert_eq!(h.history[0].scored, 0);
    }

    #[test]
    fn a_flow_counts_in_the_model_value_when_every_model_flags_it() {
        let mut counts = HashMap::new();
        for i in 0..10 {
            let f = facts("10.0.0.5", "198.51.100.7", 443);
            add_flow(&mut counts, 16, &f, &[true, i < 3]);
        }
        let w = counts[&ip("10.0.0.5")];
        assert_eq!((w.botnet[0], w.botnet[1], w.agreed), (10, 3, 3));
        let mut s = HostScorer::new(ScoringConfig::default(), vec!["a".into(), "b".into()]);
        assert!(close(&mut s, &window(0), &counts).is_empty());
        let h = &s.hosts()[0];
        assert_eq!(h.history[0].value, 0.3);
        assert_eq!(h.history[0].botnet, [10, 3]);
        assert_eq!(h.history[0].agreed, 3);
    }

    #[test]
    fn a_rule_window_is_red_then_the_score_decays_to_yellow_and_clear() {
        let mut counts = HashMap::new();
        for i in 0..40u16 {
            let mut f = facts("10.0.0.5", "203.0.113.1", 23);
            f.probe = Some((u32::from(i), false));
            add_flow(&mut counts, 16, &f, &[false]);
        }
        let mut s = scorer();
        close(&mut s, &window(0), &counts);
        let quiet = HashMap::new();
        let mut levels = Vec::new();
        for i in 1..12 {
            close(&mut s, &window(i), &quiet);
            levels.push(s.hosts()[0].level);
        }
        let h = &s.hosts()[0];
        assert!(h.was_red);
        assert_eq!(h.flagged_windows, 1);
        assert_eq!(h.history[0].rules.len(), 1);
        assert!(
            h.history[0].rules[0].starts_with("sweep: 40 distinct targets"),
            "{:?}",
            h.history[0].rules
        );
        assert_eq!(levels[0], Level::Yellow);
        assert_eq!(levels.last(), Some(&Level::Clear));
    }

    #[test]
    fn a_clear_idle_host_expires_and_a_yellow_one_stays() {
        // 600 s idle = 4 windows of 150 s.
        let mut s = scorer_with(16, 600, 64);
        let mut counts = active(&["10.0.0.1"]);
        sweeping(&mut counts, "10.0.0.2");
        close(&mut s, &window(0), &counts);
        assert_eq!(s.len(), 2);
        let quiet = HashMap::new();
        for i in 1..=3 {
            close(&mut s, &window(i), &quiet);
        }
        assert_eq!(s.len(), 2, "idle 450 s: kept");
        close(&mut s, &window(4), &quiet);
        assert_eq!(
            tracked(&s),
            [ip("10.0.0.2")],
            "idle 600 s: the clear host went"
        );
        assert_eq!(s.departed, [ip("10.0.0.1")]);
        assert_eq!(s.counters.hosts_expired, 1);
        // The former sweeper stays while yellow, and once clear too: a host that was red keeps
        // its record (only eviction, last, takes it).
        let mut i = 5;
        while s.hosts().first().is_some_and(|h| h.level != Level::Clear) {
            close(&mut s, &window(i), &quiet);
            assert_eq!(s.len(), 1, "window {i}: a yellow host is kept");
            i += 1;
        }
        assert!(i > 6, "the sweeper was yellow for a while");
        for j in i..i + 20 {
            close(&mut s, &window(j), &quiet);
        }
        assert_eq!(tracked(&s), [ip("10.0.0.2")], "a once-red host stays");
        assert_eq!(s.counters.hosts_expired, 1);
        assert_eq!((s.counters.hosts_evicted, s.counters.hosts_refused), (0, 0));
    }

    #[test]
    fn a_full_table_evicts_the_clear_host_idle_longest() {
        let mut s = scorer_with(3, 86_400, 64);
        close(&mut s, &window(0), &active(&["10.0.0.2"]));
        close(&mut s, &window(1), &active(&["10.0.0.1"]));
        close(&mut s, &window(2), &active(&["10.0.0.3"]));
        // 10.0.0.2 was seen longest ago (not the lowest address).
        close(&mut s, &window(3), &active(&["10.0.0.4"]));
        assert_eq!(
            tracked(&s),
            [ip("10.0.0.1"), ip("10.0.0.3"), ip("10.0.0.4")]
        );
        assert_eq!(s.departed, [ip("10.0.0.2")]);
        // 10.0.0.1 is active in this window: 10.0.0.3 goes instead.
        close(&mut s, &window(4), &active(&["10.0.0.1", "10.0.0.5"]));
        assert_eq!(
            tracked(&s),
            [ip("10.0.0.1"), ip("10.0.0.4"), ip("10.0.0.5")]
        );
        assert_eq!(s.counters.hosts_evicted, 2);
        assert_eq!((s.counters.hosts_expired, s.counters.hosts_refused), (0, 0));
    }

    #[test]
    fn red_and_yellow_hosts_are_never_evicted_and_a_refusal_is_counted() {
        let mut s = scorer_with(2, 86_400, 64);
        let mut counts = HashMap::new();
        sweeping(&mut counts, "10.0.0.1");
        sweeping(&mut counts, "10.0.0.2");
        close(&mut s, &window(0), &counts);
        // Yellow now, idle: still not evictable.
        close(&mut s, &window(1), &active(&["10.0.0.3", "10.0.0.4"]));
        let levels: Vec<Level> = s.hosts().iter().map(|h| h.level).collect();
        assert_eq!(levels, [Level::Yellow, Level::Yellow]);
        assert_eq!(tracked(&s), [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert_eq!(s.counters.hosts_refused, 2);
        assert_eq!(s.counters.hosts_evicted, 0);
        // Once clear, they make room.
        let quiet = HashMap::new();
        let mut i = 2;
        while s.hosts().iter().any(|h| h.level != Level::Clear) {
            close(&mut s, &window(i), &quiet);
            i += 1;
        }
        close(&mut s, &window(i), &active(&["10.0.0.3"]));
        assert_eq!(tracked(&s), [ip("10.0.0.2"), ip("10.0.0.3")]);
        assert_eq!(s.counters.hosts_evicted, 1);
        // A never-red host goes before a once-red one, however recently it was seen.
        close(&mut s, &window(i + 1), &active(&["10.0.0.4"]));
        assert_eq!(tracked(&s), [ip("10.0.0.2"), ip("10.0.0.4")]);
        assert!(s.hosts()[0].was_red);
        assert_eq!(s.counters.hosts_evicted, 2);
    }

    #[test]
    fn a_host_keeps_its_latest_level_changes() {
        let mut s = scorer_with(4, 86_400, 2);
        let mut counts = HashMap::new();
        sweeping(&mut counts, "10.0.0.1");
        close(&mut s, &window(0), &counts);
        let quiet = HashMap::new();
        for i in 1..20 {
            close(&mut s, &window(i), &quiet);
        }
        let h = &s.hosts()[0];
        // clear -> red, red -> yellow, yellow -> clear: the first went.
        let levels: Vec<Level> = h.changes.iter().map(|a| a.level).collect();
        assert_eq!(levels, [Level::Yellow, Level::Clear]);
        assert!(h.was_red);
        assert_eq!(s.counters.level_changes_dropped, 1);
    }

    /// A reload's lifecycle settings apply to the running table: fewer level changes kept drop
    /// the oldest at once (counted), a shorter idle time forgets at the next close.
    #[test]
    fn new_lifecycle_settings_apply_to_the_hosts_held() {
        let mut s = scorer_with(4, 86_400, 64);
        let mut counts = HashMap::new();
        sweeping(&mut counts, "10.0.0.1");
        close(&mut s, &window(0), &active(&["10.0.0.2"]));
        close(&mut s, &window(1), &counts);
        let quiet = HashMap::new();
        for i in 2..20 {
            close(&mut s, &window(i), &quiet);
        }
        assert_eq!(s.hosts().len(), 2);
        assert_eq!(s.counters.level_changes_dropped, 0);
        s.set_lifecycle(600, 1);
        assert_eq!(s.config().host_idle_secs, 600);
        let h = s
            .hosts()
            .into_iter()
            .find(|h| h.addr == ip("10.0.0.1"))
            .unwrap();
        let levels: Vec<Level> = h.changes.iter().map(|a| a.level).collect();
        assert_eq!(levels, [Level::Clear]);
        assert_eq!(s.counters.level_changes_dropped, 2);
        // 10.0.0.2 had no flow for 19 windows of 150 s: past 600 s, clear, never red.
        close(&mut s, &window(20), &quiet);
        assert_eq!(tracked(&s), [ip("10.0.0.1")]);
        assert_eq!(s.counters.hosts_expired, 1);
    }

    #[test]
    fn a_forgotten_address_hands_its_record_to_its_device_s_current_one() {
        let mac = [0x02, 0, 0, 0, 0, 7];
        let (old, new) = ("2001:db8::aaaa", "2001:db8::bbbb");
        let mut devices = DeviceTable::new(4);
        devices.observe(mac, ip(old), 1);
        devices.observe(mac, ip(new), 2);
        devices.observe([0x02, 0, 0, 0, 0, 8], ip("10.0.0.9"), 2);
        let mut s = scorer_with(8, 600, 64);
        let mut counts = active(&[new, "10.0.0.9"]);
        sweeping(&mut counts, old);
        let alerts = close_with(&mut s, &window(0), &counts, &devices);
        assert_eq!(alerts.len(), 1);
        // The alert names the device and its other address.
        let d = alerts[0].device.as_ref().unwrap();
        assert_eq!(d.mac, "02:00:00:00:00:07");
        assert_eq!(d.addresses, [old, new]);
        // The old address goes quiet; the new one stays active.
        let mut i = 1;
        while s.hosts().iter().any(|h| h.addr == ip(old)) {
            close_with(&mut s, &window(i), &active(&[new]), &devices);
            i += 1;
            assert!(i < 100);
        }
        assert_eq!(s.counters.hosts_expired, 2, "10.0.0.9 and the old address");
        assert_eq!(s.counters.histories_merged, 1);
        let h = s.hosts().into_iter().find(|h| h.addr == ip(new)).unwrap();
        assert!(h.was_red);
        assert_eq!(h.flagged_windows, 1);
        let from: Vec<(IpAddr, Level)> = h.changes.iter().map(|a| (a.host, a.level)).collect();
        assert_eq!(
            from,
            [
                (ip(old), Level::Red),
                (ip(old), Level::Yellow),
                (ip(old), Level::Clear)
            ]
        );
        assert_eq!(h.device.as_ref().unwrap().addresses[0], new);
    }
}
