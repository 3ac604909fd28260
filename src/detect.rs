//! The detector: a [`FlowSink`] that turns the engine's windowed flow records into per-host
//! verdicts. Flows are batched (features extracted once per schema), scored by every model in
//! batches, counted per home host and window, and at each window's end folded into the host
//! scores; level changes come out as [`Alert`]s. Buffers are sized once at start-up.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::alert::Alert;
use crate::config::{NetworkConfig, ScoringConfig};
use crate::engine::{FlowSink, WindowInfo};
use crate::features::Schema;
use crate::flow::{CloseReason, Flow};
use crate::host::{self, HostScorer, HostWindow, MAX_MODELS};
use crate::model::Model;

/// Flows scored together.
pub const BATCH: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct FlowSummary {
    window: u64,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    bytes: u64,
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
    pub score_errors: u64,
}

pub struct Detector {
    /// Shared, so several detectors (one per capture under evaluation, or a reload) can use the
    /// same loaded models.
    models: Arc<Vec<Model>>,
    /// The distinct schemas the models use, and each model's index into it.
    schemas: Vec<&'static Schema>,
    model_schema: Vec<usize>,
    home: NetworkConfig,
    max_hosts: usize,
    flows: Vec<FlowSummary>,
    /// Feature rows per schema, `BATCH` rows each.
    rows: Vec<Vec<f32>>,
    probs: Vec<f32>,
    /// `botnet[flow * MAX_MODELS + model]`.
    botnet: Vec<bool>,
    /// Per-host counts of the windows still open, keyed by window index.
    open: Vec<(u64, HashMap<IpAddr, HostWindow>)>,
    pub scorer: HostScorer,
    pending: Vec<Alert>,
    pub counters: DetectorCounters,
}

impl Detector {
    /// `concurrent_windows`: how many windows the engine keeps open at once.
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
        let rows = schemas
            .iter()
            .map(|s| Vec::with_capacity(BATCH * s.len()))
            .collect();
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
            model_schema,
            home,
            max_hosts,
            flows: Vec::with_capacity(BATCH),
            rows,
            probs: vec![0.0; BATCH],
            botnet: vec![false; BATCH * MAX_MODELS],
            open: (0..concurrent_windows.max(1) + 1)
                .map(|_| (u64::MAX, HashMap::with_capacity(max_hosts.min(65_536))))
                .collect(),
            scorer: HostScorer::new(scoring, names),
            pending: Vec::new(),
            counters: DetectorCounters {
                flows_botnet: vec![0; n_models],
                ..DetectorCounters::default()
            },
        }
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
            match (c.addr(), ip) {
                (IpAddr::V4(net), IpAddr::V4(a)) if c.prefix_len() <= 30 => {
                    let host_bits = u32::MAX >> c.prefix_len();
                    let a = u32::from(a);
                    a != u32::from(net) && a & host_bits != host_bits
                }
                _ => true,
            }
        })
    }

    fn counts_for(&mut self, window: u64) -> Option<&mut HashMap<IpAddr, HostWindow>> {
        if let Some(i) = self.open.iter().position(|(w, _)| *w == window) {
            return self.open.get_mut(i).map(|(_, c)| c);
        }
        // A free slot (closed windows are reset to u64::MAX), else the oldest window's.
        let i = self
            .open
            .iter()
            .enumerate()
            .min_by_key(|(_, (w, _))| {
                if *w == u64::MAX {
                    0
                } else {
                    w.saturating_add(1)
                }
            })
            .map(|(i, _)| i)?;
        let slot = self.open.get_mut(i)?;
        slot.0 = window;
        slot.1.clear();
        Some(&mut slot.1)
    }

    /// Scores the buffered flows with every model and counts them per host and window.
    fn score_batch(&mut self) {
        let n = self.flows.len();
        if n == 0 {
            return;
        }
        for (m, model) in self.models.iter().take(MAX_MODELS).enumerate() {
            let schema_idx = self.model_schema.get(m).copied().unwrap_or(0);
            let Some(rows) = self.rows.get(schema_idx) else {
                continue;
            };
            let probs = &mut self.probs[..n];
            if model.score(rows, probs).is_err() {
                self.counters.score_errors += 1;
                probs.fill(0.0);
            }
            for (i, p) in probs.iter().enumerate() {
                let hit = *p >= model.threshold;
                if let Some(b) = self.botnet.get_mut(i * MAX_MODELS + m) {
                    *b = hit;
                }
                if hit && let Some(c) = self.counters.flows_botnet.get_mut(m) {
                    *c += 1;
                }
            }
        }
        self.counters.flows_scored += n as u64;
        let n_models = self.models.len().min(MAX_MODELS);
        let flows = std::mem::take(&mut self.flows);
        for (i, f) in flows.iter().enumerate() {
            let start = i * MAX_MODELS;
            let verdicts: [bool; MAX_MODELS] = std::array::from_fn(|m| {
                m < n_models && self.botnet.get(start + m).copied().unwrap_or(false)
            });
            // A flow counts for the host that started it; for its destination only when it came
            // from outside (an internal server answering an infected neighbour is not blamed).
            let src_home = self.is_scored_host(f.src);
            let dst_home = !src_home && self.is_scored_host(f.dst);
            let max_hosts = self.max_hosts;
            let mut dropped = 0;
            if let Some(counts) = self.counts_for(f.window) {
                if src_home
                    && !host::add_flow(counts, max_hosts, f.src, f.dst, f.dport, f.bytes, &verdicts)
                {
                    dropped += 1;
                }
                if dst_home
                    && !host::add_flow(counts, max_hosts, f.dst, f.src, f.sport, f.bytes, &verdicts)
                {
                    dropped += 1;
                }
            }
            self.counters.hosts_dropped += dropped;
        }
        self.flows = flows;
        self.flows.clear();
        for r in &mut self.rows {
            r.clear();
        }
    }
}

impl FlowSink for Detector {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, window: Option<&WindowInfo>) {
        if self.flows.len() >= BATCH {
            self.score_batch();
        }
        self.flows.push(FlowSummary {
            window: window.map_or(0, |w| w.index),
            src: flow.src.to_ip(),
            dst: flow.dst.to_ip(),
            sport: flow.sport,
            dport: flow.dport,
            bytes: flow.total_bytes(),
        });
        for (schema, rows) in self.schemas.iter().zip(self.rows.iter_mut()) {
            let start = rows.len();
            rows.resize(start + schema.len(), 0.0);
            if let Some(row) = rows.get_mut(start..) {
                schema.extract(flow, row);
            }
        }
    }

    fn window_closed(&mut self, window: &WindowInfo, _flows: u64) {
        self.score_batch();
        let empty = HashMap::new();
        let idx = self.open.iter().position(|(w, _)| *w == window.index);
        let counts = idx
            .and_then(|i| self.open.get(i))
            .map_or(&empty, |(_, c)| c);
        let alerts = self.scorer.close_window(window, counts);
        if let Some(slot) = idx.and_then(|i| self.open.get_mut(i)) {
            slot.0 = u64::MAX;
            slot.1.clear();
        }
        self.counters.windows_scored += 1;
        self.pending.extend(alerts);
    }
}
