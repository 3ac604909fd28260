//! The sans-IO engine: the caller hands in `(timestamp, frame)` pairs and owns the clock; the
//! engine parses, keeps flows, closes windows and hands finished flow records to a [`FlowSink`].
//! Live capture and file replay drive the same engine, so the same packets give the same records.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::capture::LinkType;
use crate::flow::table::Lookup;
use crate::flow::{CloseReason, Flow, FlowKey, FlowTable, Nanos, TIMEOUT_CLASSES, TableStats};
use crate::wire::{self, Packet, ParseError};

const SEC: Nanos = 1_000_000_000;

/// Windows of `length` starting every `step` (the original detector: 300 s every 150 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    pub length_ns: Nanos,
    pub step_ns: Nanos,
}

impl WindowConfig {
    /// A window config from a length and an overlap in seconds; `None` when they make no windows
    /// (length 0, or an overlap not shorter than the length).
    pub fn from_secs(length: f64, overlap: f64) -> Option<WindowConfig> {
        if !(length > 0.0 && overlap >= 0.0 && overlap < length) {
            return None;
        }
        Some(WindowConfig {
            length_ns: (length * 1e9) as Nanos,
            step_ns: ((length - overlap) * 1e9) as Nanos,
        })
    }
    /// How many windows can be open at one instant.
    pub fn concurrent(&self) -> usize {
        self.length_ns.div_ceil(self.step_ns.max(1)) as usize
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Most flows held at once, per open window.
    pub flow_capacity: usize,
    pub window: Option<WindowConfig>,
    /// A record is reported when this much time has passed since its first packet (Argus's
    /// ARGUS_FLOW_STATUS_INTERVAL; there is no idle timeout inside a record).
    pub status_interval_ns: Nanos,
    /// How long a reported flow is remembered per [`crate::flow::TimeoutClass`] (TCP, UDP, ICMP,
    /// other): a packet in that time starts a continuation record, a later one a new flow.
    pub linger_ns: [Nanos; TIMEOUT_CLASSES],
    /// Optional idle timeouts per class: a record idle this long is closed. `None` (the default)
    /// keeps Argus 3.0.8's behaviour, which has no idle timeout inside a record.
    pub idle_ns: [Option<Nanos>; TIMEOUT_CLASSES],
    /// Most IPv4 fragment trains followed at once (later fragments join their first one's flow).
    pub fragment_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            flow_capacity: 65_536,
            window: None,
            // As measured on Argus 3.0.8 with argus-ctu.conf (docs/argus-semantics.md).
            status_interval_ns: 3600 * SEC,
            linger_ns: [60 * SEC, 30 * SEC, 5 * SEC, 30 * SEC],
            idle_ns: [None; TIMEOUT_CLASSES],
            fragment_capacity: 4096,
        }
    }
}

/// A window's place in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowInfo {
    pub index: u64,
    pub start_ns: Nanos,
    pub end_ns: Nanos,
}

/// Receives what the engine produces.
pub trait FlowSink {
    /// A finished flow record; `window` is set when the engine is windowed.
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>);
    /// A window ended; all its flows were handed to [`FlowSink::flow`] just before.
    fn window_closed(&mut self, _window: &WindowInfo, _flows: u64) {}
}

/// What the engine has seen and done; every dropped or unparsed frame is counted here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames: u64,
    pub bytes: u64,
    pub packets: u64,
    pub parse_errors: [u64; ParseError::ALL.len()],
    /// Frames whose timestamp went backwards; they are processed at the current clock.
    pub out_of_order: u64,
    pub flows: u64,
    pub windows_closed: u64,
}

impl Counters {
    pub fn unparsed(&self) -> u64 {
        self.parse_errors.iter().sum()
    }

    /// Frames not parsed, per reason, in [`ParseError::ALL`] order (zeros included).
    pub fn unparsed_by_reason(&self) -> impl Iterator<Item = (ParseError, u64)> + '_ {
        ParseError::ALL
            .into_iter()
            .map(|e| (e, self.parse_errors.get(e.index()).copied().unwrap_or(0)))
    }
}

struct WindowSlot {
    table: FlowTable,
    /// Window index held by this table (table `i` holds windows `i`, `i + k`, `i + 2k`, ...).
    window: u64,
    flows_in_window: u64,
}

/// The flow engine. All memory is allocated in [`Engine::new`].
pub struct Engine {
    cfg: EngineConfig,
    slots: Vec<WindowSlot>,
    /// Time of the first packet: windows are anchored there.
    anchor: Option<Nanos>,
    clock: Nanos,
    fragments: crate::flow::fragments::FragmentMap,
    pub counters: Counters,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let k = cfg.window.map_or(1, |w| w.concurrent());
        let slots = (0..k)
            .map(|i| WindowSlot {
                table: FlowTable::new(cfg.flow_capacity),
                window: i as u64,
                flows_in_window: 0,
            })
            .collect();
        Engine {
            slots,
            anchor: None,
            clock: 0,
            fragments: crate::flow::fragments::FragmentMap::new(cfg.fragment_capacity),
            counters: Counters::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Flows currently held, over all open windows.
    pub fn active_flows(&self) -> usize {
        self.slots.iter().map(|s| s.table.len()).sum()
    }

    /// Table counters summed over the open windows.
    pub fn table_stats(&self) -> TableStats {
        let mut sum = TableStats::default();
        for s in &self.slots {
            sum.created += s.table.stats.created;
            sum.expired += s.table.stats.expired;
            sum.idle_closed += s.table.stats.idle_closed;
            sum.status_reports += s.table.stats.status_reports;
            sum.evicted += s.table.stats.evicted;
            sum.flushed += s.table.stats.flushed;
            sum.high_water = sum.high_water.max(s.table.stats.high_water);
        }
        sum
    }

    /// One captured frame.
    pub fn on_frame(
        &mut self,
        ts: Nanos,
        link: LinkType,
        frame: &[u8],
        wire_len: u32,
        sink: &mut impl FlowSink,
    ) {
        self.counters.frames += 1;
        self.counters.bytes += u64::from(wire_len);
        match wire::parse(link, frame, wire_len) {
            Ok(pkt) => self.on_packet(ts, &pkt, sink),
            Err(e) => {
                // `index()` is the discriminant, below `ALL.len()`: the check compiles away.
                if let Some(n) = self.counters.parse_errors.get_mut(e.index()) {
                    *n += 1;
                }
                // Time still passes for windows and timeouts.
                self.advance(ts, sink);
            }
        }
    }

    /// One parsed packet.
    pub fn on_packet(&mut self, ts: Nanos, pkt: &Packet, sink: &mut impl FlowSink) {
        self.counters.packets += 1;
        if ts < self.clock {
            self.counters.out_of_order += 1;
        }
        self.advance(ts, sink);
        let ts = ts.max(self.clock);
        let Some(anchor) = self.anchor else {
            return;
        };
        let (key, forward) = match self.fragments.flow_of(pkt) {
            Some(found) => found,
            None => FlowKey::of(pkt),
        };
        let window_cfg = self.cfg.window;
        for slot in &mut self.slots {
            let info = window_info(window_cfg, anchor, slot.window);
            if ts < info.start_ns || ts >= info.end_ns {
                continue;
            }
            let win = window_cfg.map(|_| info);
            let counters = &mut self.counters;
            let mut emit = |f: &Flow, r: CloseReason| {
                counters.flows += 1;
                sink.flow(f, r, win.as_ref());
            };
            let table = &mut slot.table;
            let hash = table.hash(&key);
            let reopened = match table.lookup(&key, hash) {
                Lookup::Open(idx, flow) if !flow.state.reset_then_syn(pkt) => {
                    flow.update(pkt, forward, ts);
                    table.touch(idx);
                    continue;
                }
                Lookup::Lingering(idx, flow) => {
                    flow.continue_at(ts);
                    flow.update(pkt, forward, ts);
                    table.touch(idx);
                    continue;
                }
                Lookup::Open(idx, flow) => {
                    // Argus stretches the reset record to the new SYN without counting it (and,
                    // for a record an RST opened, restamps its start too).
                    if flow.state.split_restamps_start() {
                        flow.start_ns = ts;
                    }
                    flow.last_ns = ts;
                    Some(idx)
                }
                Lookup::Absent => None,
            };
            if let Some(idx) = reopened {
                table.close(idx, CloseReason::Idle, &mut emit);
            }
            let mut flow = Flow::new(key, forward, pkt, ts, info.index);
            flow.update(pkt, forward, ts);
            table.insert(flow, hash, &mut emit);
            slot.flows_in_window += 1;
        }
    }

    /// Moves the clock to `now` (never backwards): expires idle flows and closes ended windows.
    /// A live sensor calls this when no packet arrived for a while.
    pub fn advance(&mut self, now: Nanos, sink: &mut impl FlowSink) {
        let anchor = *self.anchor.get_or_insert(now);
        self.clock = self.clock.max(now);
        let clock = self.clock;
        if let Some(wcfg) = self.cfg.window {
            // Close ended windows in index order (k is small: 2 for 300 s / 150 s).
            loop {
                let ended = self
                    .slots
                    .iter_mut()
                    .filter(|s| window_info(Some(wcfg), anchor, s.window).end_ns <= clock)
                    .min_by_key(|s| s.window);
                let Some(slot) = ended else {
                    break;
                };
                let info = window_info(Some(wcfg), anchor, slot.window);
                Self::close_window(&mut self.counters, slot, &info, sink);
                // The next window this table holds is k windows on, skipping any that ended in a
                // gap without packets.
                let k = wcfg.concurrent() as u64;
                let elapsed = clock.saturating_sub(anchor);
                let first_open = (elapsed.saturating_sub(wcfg.length_ns) / wcfg.step_ns) + 1;
                let mut next = slot.window + k;
                if next < first_open {
                    next += (first_open - next).div_ceil(k) * k;
                }
                slot.window = next;
            }
        }
        let (interval, linger, idle) = (
            self.cfg.status_interval_ns,
            self.cfg.linger_ns,
            self.cfg.idle_ns,
        );
        let window_cfg = self.cfg.window;
        for slot in &mut self.slots {
            let info = window_info(window_cfg, anchor, slot.window);
            let win = window_cfg.map(|_| info);
            let counters = &mut self.counters;
            slot.table
                .expire(clock, interval, &linger, &idle, &mut |f: &Flow, r| {
                    counters.flows += 1;
                    sink.flow(f, r, win.as_ref());
                });
        }
    }

    /// The input ended: emits every open flow and closes every open window.
    pub fn finish(&mut self, sink: &mut impl FlowSink) {
        let Some(anchor) = self.anchor else {
            return;
        };
        let window_cfg = self.cfg.window;
        self.slots.sort_by_key(|s| s.window);
        for slot in &mut self.slots {
            let info = window_info(window_cfg, anchor, slot.window);
            if window_cfg.is_some() {
                if slot.flows_in_window > 0 || !slot.table.is_empty() {
                    Self::close_window(&mut self.counters, slot, &info, sink);
                }
            } else {
                let counters = &mut self.counters;
                slot.table.flush(CloseReason::Flush, &mut |f: &Flow, r| {
                    counters.flows += 1;
                    sink.flow(f, r, None);
                });
            }
        }
    }

    fn close_window(
        counters: &mut Counters,
        slot: &mut WindowSlot,
        info: &WindowInfo,
        sink: &mut impl FlowSink,
    ) {
        let flows = slot.flows_in_window;
        slot.table
            .flush(CloseReason::WindowEnd, &mut |f: &Flow, r| {
                counters.flows += 1;
                sink.flow(f, r, Some(info));
            });
        if flows > 0 {
            counters.windows_closed += 1;
            sink.window_closed(info, flows);
        }
        slot.flows_in_window = 0;
    }
}

fn window_info(cfg: Option<WindowConfig>, anchor: Nanos, index: u64) -> WindowInfo {
    match cfg {
        Some(w) => {
            let start_ns = anchor.saturating_add(index.saturating_mul(w.step_ns));
            WindowInfo {
                index,
                start_ns,
                end_ns: start_ns.saturating_add(w.length_ns),
            }
        }
        None => WindowInfo {
            index: 0,
            start_ns: anchor,
            end_ns: Nanos::MAX,
        },
    }
}
