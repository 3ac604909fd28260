//! The Argus per-flow metrics the original detector used as features, computed from a [`Flow`].
//! Units follow `ra`: times in seconds, inter-packet times and jitter in milliseconds, loads and
//! rates in bits/s and packets/s, loss in percent.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{DirStats, Flow};
use crate::wire::proto;

/// The 36 Argus features (Dir and State as text here; the feature schemas encode them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ArgusMetrics {
    pub s_ttl: f64,
    pub d_ttl: f64,
    pub src_pkts: f64,
    pub dst_pkts: f64,
    pub src_bytes: f64,
    pub dst_bytes: f64,
    pub src_load: f64,
    pub dst_load: f64,
    pub s_int_pkt: f64,
    pub d_int_pkt: f64,
    pub s_int_pkt_act: f64,
    pub d_int_pkt_act: f64,
    pub s_int_pkt_idl: f64,
    pub d_int_pkt_idl: f64,
    pub src_jitter: f64,
    pub dst_jitter: f64,
    pub src_jit_act: f64,
    pub dst_jit_act: f64,
    pub s_max_pkt_sz: f64,
    pub d_max_pkt_sz: f64,
    pub s_min_pkt_sz: f64,
    pub d_min_pkt_sz: f64,
    pub dur: f64,
    pub rate: f64,
    pub src_rate: f64,
    pub dst_rate: f64,
    pub run_time: f64,
    pub mean: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub load: f64,
    pub p_src_loss: f64,
    pub p_dst_loss: f64,
    pub src_app_bytes: f64,
    pub dst_app_bytes: f64,
}

/// Column names of the numeric metrics, in the order of [`ArgusMetrics::values`].
pub const METRIC_NAMES: [&str; 36] = [
    "sTtl",
    "dTtl",
    "SrcPkts",
    "DstPkts",
    "SrcBytes",
    "DstBytes",
    "SrcLoad",
    "DstLoad",
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
    "SAppBytes",
    "DAppBytes",
];

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

fn per_sec(x: f64, dur: f64) -> f64 {
    if dur > 0.0 { x / dur } else { 0.0 }
}

fn loss_pct(d: &DirStats) -> f64 {
    if d.pkts == 0 {
        0.0
    } else {
        d.tcp_retrans as f64 * 100.0 / d.pkts as f64
    }
}

/// Seconds between a direction's first and last packet.
fn dir_dur(d: &DirStats) -> f64 {
    d.last_ns.saturating_sub(d.first_ns) as f64 / 1e9
}

/// Argus's per-direction load: bits over the (packets - 1) intervals of that direction's own
/// duration, i.e. 8 * bytes * (pkts - 1) / pkts / dur.
fn dir_load(d: &DirStats) -> f64 {
    if d.pkts < 2 {
        return 0.0;
    }
    per_sec(
        8.0 * d.bytes as f64 * (d.pkts - 1) as f64 / d.pkts as f64,
        dir_dur(d),
    )
}

impl ArgusMetrics {
    pub fn of(flow: &Flow) -> ArgusMetrics {
        let (s, d) = (&flow.fwd, &flow.rev);
        let dur = flow.duration_ns() as f64 / 1e9;
        let tcp = flow.proto == proto::TCP;
        // Argus computes rates over (packets - 1) intervals: of the flow for Rate, of each
        // direction's own duration for SrcRate / DstRate (docs/argus-semantics.md, section 9).
        let (s_dur, d_dur) = (dir_dur(s), dir_dur(d));
        let (s_load, d_load) = (dir_load(s), dir_load(d));
        ArgusMetrics {
            s_ttl: f64::from(s.ttl),
            d_ttl: f64::from(d.ttl),
            src_pkts: s.pkts as f64,
            dst_pkts: d.pkts as f64,
            src_bytes: s.bytes as f64,
            dst_bytes: d.bytes as f64,
            src_load: s_load,
            dst_load: d_load,
            s_int_pkt: ms(s.ipt_mean()),
            d_int_pkt: ms(d.ipt_mean()),
            s_int_pkt_act: ms(s.active_mean()),
            d_int_pkt_act: ms(d.active_mean()),
            s_int_pkt_idl: ms(s.idle_mean()),
            d_int_pkt_idl: ms(d.idle_mean()),
            src_jitter: ms(s.ipt_std_dev()),
            dst_jitter: ms(d.ipt_std_dev()),
            src_jit_act: ms(s.active_std_dev()),
            dst_jit_act: ms(d.active_std_dev()),
            s_max_pkt_sz: f64::from(s.max_size),
            d_max_pkt_sz: f64::from(d.max_size),
            s_min_pkt_sz: f64::from(s.min_size),
            d_min_pkt_sz: f64::from(d.min_size),
            dur,
            rate: per_sec((s.pkts + d.pkts).saturating_sub(1) as f64, dur),
            src_rate: per_sec(s.pkts.saturating_sub(1) as f64, s_dur),
            dst_rate: per_sec(d.pkts.saturating_sub(1) as f64, d_dur),
            run_time: dur,
            mean: dur,
            sum: dur,
            min: dur,
            max: dur,
            load: per_sec(s_load * s_dur + d_load * d_dur, dur),
            p_src_loss: if tcp { loss_pct(s) } else { 0.0 },
            p_dst_loss: if tcp { loss_pct(d) } else { 0.0 },
            src_app_bytes: s.app_bytes as f64,
            dst_app_bytes: d.app_bytes as f64,
        }
    }

    pub fn values(&self) -> [f64; 36] {
        [
            self.s_ttl,
            self.d_ttl,
            self.src_pkts,
            self.dst_pkts,
            self.src_bytes,
            self.dst_bytes,
            self.src_load,
            self.dst_load,
            self.s_int_pkt,
            self.d_int_pkt,
            self.s_int_pkt_act,
            self.d_int_pkt_act,
            self.s_int_pkt_idl,
            self.d_int_pkt_idl,
            self.src_jitter,
            self.dst_jitter,
            self.src_jit_act,
            self.dst_jit_act,
            self.s_max_pkt_sz,
            self.d_max_pkt_sz,
            self.s_min_pkt_sz,
            self.d_min_pkt_sz,
            self.dur,
            self.rate,
            self.src_rate,
            self.dst_rate,
            self.run_time,
            self.mean,
            self.sum,
            self.min,
            self.max,
            self.load,
            self.p_src_loss,
            self.p_dst_loss,
            self.src_app_bytes,
            self.dst_app_bytes,
        ]
    }
}
