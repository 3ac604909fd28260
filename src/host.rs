//! Per-host scoring: for every home host, every window and every model, the number of its flows
//! predicted botnet (the original detector's plot); a smoothed score; and the red / yellow / clear
//! level with the evidence behind each change.
//!
//! The rule (docs/detection.md has the tuning behind the defaults):
//! * window value `v` = max over models of `botnet flows / max(flows, min_flows)` — a host with
//!   fewer than `min_flows` flows in a window cannot reach a high value from one or two flows;
//! * score = `alpha * v + (1 - alpha) * score` (the first window a host is seen starts it at `v`);
//!   a window in which a known host has no flows counts `v = 0`, so quiet hosts decay;
//! * the host is **red** (highly suspicious now) in a window when its score is >= `red`, or when it
//!   has been >= `red_rising` and rising for `red_windows` consecutive windows;
//! * a red host that is no longer hot turns **yellow** (suspicious before, not cleared) and stays
//!   yellow while its score is >= `yellow_clear`; below that it is **clear** again.

use std::collections::VecDeque;
use std::net::IpAddr;

use hashbrown::HashMap;

use crate::alert::{Alert, Level, Peer};
use crate::config::ScoringConfig;
use crate::engine::WindowInfo;

/// Most models scored at once.
pub const MAX_MODELS: usize = 8;
/// Candidate peers tracked per host and window (space-saving heavy hitters).
const PEER_SLOTS: usize = 8;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCount {
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub flows: u64,
    pub bytes: u64,
}

/// One host's counts in one window.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostWindow {
    pub flows: u64,
    pub botnet: [u64; MAX_MODELS],
    /// Remote peers of the host's botnet-predicted flows.
    pub peers: [PeerCount; PEER_SLOTS],
}

impl HostWindow {
    fn add_peer(&mut self, addr: IpAddr, port: u16, bytes: u64) {
        if let Some(p) = self
            .peers
            .iter_mut()
            .find(|p| p.addr == Some(addr) && p.port == port)
        {
            p.flows += 1;
            p.bytes += bytes;
            return;
        }
        // Replace the smallest (space-saving: the newcomer inherits its count as an upper bound).
        if let Some(p) = self.peers.iter_mut().min_by_key(|p| (p.flows, p.bytes)) {
            *p = PeerCount {
                addr: Some(addr),
                port,
                flows: p.flows + 1,
                bytes: p.bytes + bytes,
            };
        }
    }
}

/// A window of a host's history.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    pub window: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub flows: u64,
    /// Predicted botnet flows per model, in model order.
    pub botnet: Vec<u64>,
    pub value: f64,
    pub score: f64,
    pub level: Level,
    /// Top remote peers of the host's botnet-predicted flows in this window (empty when none).
    pub peers: Vec<Peer>,
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
    /// Every level change, with its evidence.
    pub changes: Vec<Alert>,
    /// Whether the host was ever red.
    pub was_red: bool,
}

pub struct HostScorer {
    cfg: ScoringConfig,
    models: Vec<String>,
    hosts: HashMap<IpAddr, HostState>,
    /// Hosts not tracked because `max_hosts` was reached.
    pub hosts_dropped: u64,
}

impl HostScorer {
    pub fn new(cfg: ScoringConfig, models: Vec<String>) -> HostScorer {
        let cap = cfg.max_hosts;
        HostScorer {
            cfg,
            models,
            hosts: HashMap::with_capacity(cap),
            hosts_dropped: 0,
        }
    }

    pub fn models(&self) -> &[String] {
        &self.models
    }

    /// Folds one closed window's counts into the hosts' scores; returns the level changes.
    pub fn close_window(
        &mut self,
        window: &WindowInfo,
        counts: &HashMap<IpAddr, HostWindow>,
    ) -> Vec<Alert> {
        let n_models = self.models.len().min(MAX_MODELS);
        // New hosts first (deterministic order), bounded by max_hosts.
        let mut new_hosts: Vec<IpAddr> = counts
            .keys()
            .filter(|a| !self.hosts.contains_key(*a))
            .copied()
            .collect();
        new_hosts.sort();
        for addr in new_hosts {
            if self.hosts.len() >= self.cfg.max_hosts {
                self.hosts_dropped += 1;
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
                    history: VecDeque::with_capacity(self.cfg.history_windows.min(1024)),
                    changes: Vec::new(),
                    was_red: false,
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
            let denom = c.flows.max(u64::from(self.cfg.min_flows)).max(1) as f64;
            let best_botnet = (0..n_models)
                .map(|m| c.botnet.get(m).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            let value = best_botnet as f64 / denom;
            let previous_score = host.score;
            host.score = if previous_score.is_nan() {
                value
            } else {
                self.cfg.alpha * value + (1.0 - self.cfg.alpha) * previous_score
            };
            let rising = previous_score.is_nan() || host.score > previous_score;
            let rising_hot = host.score >= self.cfg.red_rising && rising;
            host.hot_streak = if rising_hot { host.hot_streak + 1 } else { 0 };
            let red_now =
                host.score >= self.cfg.red || host.hot_streak >= self.cfg.red_windows.max(1);
            if c.flows > 0 && best_botnet > 0 && red_now {
                host.flagged_windows += 1;
            }
            let new_level = if red_now {
                Level::Red
            } else if host.was_red && host.score >= self.cfg.yellow_clear {
                Level::Yellow
            } else {
                Level::Clear
            };
            if c.flows > 0 || host.score > 0.0 {
                if host.history.len() >= self.cfg.history_windows.max(1) {
                    host.history.pop_front();
                }
                host.history.push_back(HistoryEntry {
                    window: window.index,
                    start_ns: window.start_ns,
                    end_ns: window.end_ns,
                    flows: c.flows,
                    botnet: c.botnet.iter().take(n_models).copied().collect(),
                    value,
                    score: host.score,
                    level: new_level,
                    peers: if best_botnet > 0 {
                        top_peers(c, self.cfg.top_peers)
                    } else {
                        Vec::new()
                    },
                });
            }
            if new_level != host.level {
                let flagging: Vec<String> = (0..n_models)
                    .filter(|&m| c.botnet.get(m).copied().unwrap_or(0) > 0)
                    .filter_map(|m| self.models.get(m).cloned())
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
                    peers: top_peers(c, self.cfg.top_peers),
                };
                host.was_red |= new_level == Level::Red;
                host.level = new_level;
                host.changes.push(alert.clone());
                alerts.push(alert);
            }
        }
        alerts
    }

    /// Every tracked host, sorted by address.
    pub fn hosts(&self) -> Vec<&HostState> {
        let mut v: Vec<&HostState> = self.hosts.values().collect();
        v.sort_by_key(|h| h.addr);
        v
    }
}

/// The `n` remote peers with most botnet-predicted flows (then bytes) of a host's window.
fn top_peers(c: &HostWindow, n: usize) -> Vec<Peer> {
    let mut peers: Vec<PeerCount> = c
        .peers
        .iter()
        .filter(|p| p.addr.is_some())
        .copied()
        .collect();
    peers.sort_by_key(|p| std::cmp::Reverse((p.flows, p.bytes)));
    peers
        .iter()
        .take(n)
        .filter_map(|p| {
            p.addr.map(|addr| Peer {
                addr,
                port: p.port,
                flows: p.flows,
                bytes: p.bytes,
            })
        })
        .collect()
}

/// Accumulates one window's per-host counts from scored flows.
pub fn add_flow(
    counts: &mut HashMap<IpAddr, HostWindow>,
    max_hosts: usize,
    host: IpAddr,
    peer: IpAddr,
    peer_port: u16,
    bytes: u64,
    botnet: &[bool],
) -> bool {
    if !counts.contains_key(&host) && counts.len() >= max_hosts {
        return false;
    }
    let w = counts.entry(host).or_default();
    w.flows += 1;
    let mut any = false;
    for (slot, &b) in w.botnet.iter_mut().zip(botnet) {
        if b {
            *slot += 1;
            any = true;
        }
    }
    if any {
        w.add_peer(peer, peer_port, bytes);
    }
    true
}
