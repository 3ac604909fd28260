//! The sans-IO engine: the caller hands in `(timestamp, frame)` pairs and owns the clock; the
//! engine parses, keeps flows, closes windows and hands finished flow records to a [`FlowSink`].
//! Live capture and file replay drive the same engine, so the same packets give the same records.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use crate::capture::LinkType;
use crate::flow::table::Lookup;
use crate::flow::{
    CloseReason, Flow, FlowKey, FlowTable, IndexKind, Nanos, TIMEOUT_CLASSES, TableStats,
};
use crate::proto::{PAYLOAD_CAP, worth_inspecting};
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
    /// The flow table's key index (`hashbrown` by default).
    pub flow_index: IndexKind,
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
            flow_index: IndexKind::default(),
        }
    }
}

/// A window's place in time and in storage. The engine is the one owner of windows: it hands
/// this with every record and every close, and the detector, the score cache and the live
/// loop's reload generations follow it instead of working windows out from timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowInfo {
    pub index: u64,
    pub start_ns: Nanos,
    pub end_ns: Nanos,
    /// The engine's table holding the window, `< WindowConfig::concurrent()`: what the
    /// detector and the score cache index their per-window storage by. Slots take windows in
    /// turn (slot `i` holds windows `i`, `i + k`, `i + 2k`, ...), so the window that closes
    /// after this one is in slot `(slot + 1) % k`.
    pub slot: usize,
    /// The end of the window before this one when it overlaps this one (`None` for the first
    /// window, or when windows do not overlap): a record that ended before it can be the same
    /// record as one of the previous window.
    pub prev_end_ns: Option<Nanos>,
    /// The start of the window after this one when it overlaps this one (`None` when windows do
    /// not overlap): a record that started from it can come again in the next window.
    pub next_start_ns: Option<Nanos>,
}

/// Receives what the engine produces.
pub trait FlowSink {
    /// A finished flow record; `window` is set when the engine is windowed.
    fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>);
    /// A window ended; all its flows were handed to [`FlowSink::flow`] just before.
    fn window_closed(&mut self, _window: &WindowInfo, _flows: u64) {}
    /// The engine's driver asks for a checkpoint between two records, with the engine's
    /// totals then (the live sensor builds its state document there, on the detector's thread).
    fn checkpoint(&mut self, _totals: &Totals) {}
}

/// The engine's running totals at one moment: small and `Copy`, so they travel with the
/// records to another thread ([`FlowSink::checkpoint`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub frames: u64,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub windows_closed: u64,
    /// Flows evicted from full tables ([`TableStats::evicted`]).
    pub flows_evicted: u64,
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
    /// This table's place among the engine's tables ([`WindowInfo::slot`]); fixed (`finish`
    /// reorders the tables).
    slot: usize,
    table: FlowTable,
    /// Window index held by this table (table `i` holds windows `i`, `i + k`, `i + 2k`, ...).
    window: u64,
    flows_in_window: u64,
    /// No expiry in this table can be due before this time (a lower bound: see `Engine::advance`).
    due: Nanos,
}

/// A parsed packet waiting its turn in [`Engine::on_frame_deferred`], with its key and hash.
#[derive(Clone, Copy)]
struct Deferred {
    ts: Nanos,
    pkt: Packet,
    key: FlowKey,
    forward: bool,
    hash: u64,
    /// Bytes of the packet's payload kept in the ring's payload slot (0: none worth reading).
    payload_len: u16,
}

/// How many packets [`Engine::on_frame_deferred`] holds back. A packet's index entries are
/// prefetched when it comes in; `PROBE` frames later (by when they should have arrived) its
/// flow is looked up and prefetched; `DEFER` frames after it came in, it is processed. Far
/// enough ahead for memory that is slow at times: on the benchmark machine (a shared VM), 16/8
/// kept `botd flows` on the 64-copy capture at 0.46-0.48 s in six runs where 4/2 took 0.46-0.79 s.
const DEFER: usize = 16;
const PROBE: usize = 8;

/// The packets `on_frame_deferred` holds back, oldest at `head`. Boxed so that the engine can
/// lend one out to its own processing by moving a pointer.
struct Ring {
    entries: [Deferred; DEFER],
    /// The payloads [`crate::proto::worth_inspecting`] keeps, one slot per entry.
    payloads: [[u8; PAYLOAD_CAP]; DEFER],
    head: usize,
    len: usize,
}

/// The flow engine. All memory is allocated in [`Engine::new`].
pub struct Engine {
    cfg: EngineConfig,
    slots: Vec<WindowSlot>,
    /// Shared by every table, so a key is hashed once for all.
    hasher: DefaultHashBuilder,
    /// Packets of `on_frame_deferred` not processed yet (`None` only while one is processed).
    ring: Option<Box<Ring>>,
    /// Time of the first packet: windows are anchored there.
    anchor: Option<Nanos>,
    clock: Nanos,
    /// No window can end before this time.
    window_due: Nanos,
    /// Nothing can be due before this time: the earliest of `window_due` (when windowed) and
    /// every table's `due`. `advance` does nothing else before it.
    due: Nanos,
    /// The shortest time after its last packet that a flow's record can be due: the status
    /// interval or an idle timeout.
    min_timeout: Nanos,
    fragments: crate::flow::fragments::FragmentMap,
    pub counters: Counters,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let k = cfg.window.map_or(1, |w| w.concurrent());
        let hasher = DefaultHashBuilder::default();
        let slots = (0..k)
            .map(|i| WindowSlot {
                slot: i,
                table: FlowTable::with_hasher(cfg.flow_capacity, hasher.clone(), cfg.flow_index),
                window: i as u64,
                flows_in_window: 0,
                due: 0,
            })
            .collect();
        let min_timeout = cfg
            .idle_ns
            .iter()
            .flatten()
            .fold(cfg.status_interval_ns, |a, &b| a.min(b));
        Engine {
            slots,
            hasher,
            ring: Some(Box::new(Ring {
                entries: [Deferred {
                    ts: 0,
                    pkt: Packet::default(),
                    key: FlowKey::default(),
                    forward: false,
                    hash: 0,
                    payload_len: 0,
                }; DEFER],
                payloads: [[0; PAYLOAD_CAP]; DEFER],
                head: 0,
                len: 0,
            })),
            anchor: None,
            clock: 0,
            window_due: 0,
            due: 0,
            min_timeout,
            fragments: crate::flow::fragments::FragmentMap::new(cfg.fragment_capacity),
            counters: Counters::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The engine's time: the latest timestamp handed in (frames, `advance`), never backwards;
    /// 0 before the first. Frames `on_frame_deferred` still holds have not moved it yet.
    pub fn clock(&self) -> Nanos {
        self.clock
    }

    /// The first timestamp handed in, where windows are anchored (`None` before it).
    pub fn anchor(&self) -> Option<Nanos> {
        self.anchor
    }

    /// The newest window open at the clock (`None` before the first timestamp). Windows up to
    /// it stay with the running detector on a reload. Without windows, every record is in
    /// window 0.
    pub fn last_open_window(&self) -> Option<u64> {
        let anchor = self.anchor?;
        let cfg = self.cfg.window;
        self.slots
            .iter()
            .map(|s| window_info(cfg, anchor, s.window, s.slot))
            .filter(|w| w.start_ns <= self.clock)
            .map(|w| w.index)
            .max()
    }

    /// The running totals, for [`FlowSink::checkpoint`].
    pub fn totals(&self) -> Totals {
        let c = &self.counters;
        Totals {
            frames: c.frames,
            packets: c.packets,
            bytes: c.bytes,
            flows: c.flows,
            windows_closed: c.windows_closed,
            flows_evicted: self.slots.iter().map(|s| s.table.stats.evicted).sum(),
        }
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
    #[inline]
    pub fn on_frame(
        &mut self,
        ts: Nanos,
        link: LinkType,
        frame: &[u8],
        wire_len: u32,
        sink: &mut impl FlowSink,
    ) {
        self.run_deferred(sink);
        self.counters.frames += 1;
        self.counters.bytes += u64::from(wire_len);
        match wire::parse(link, frame, wire_len) {
            Ok(pkt) => self.on_packet_payload(ts, &pkt, kept_payload(&pkt, frame), sink),
            Err(e) => self.parse_error(ts, e, sink),
        }
    }

    /// [`Engine::on_frame`] for replaying a capture: the frame is parsed now, but its packet is
    /// processed during a later call ([`DEFER`] frames on), while the memory its flow lives in is
    /// loaded in the background; with many concurrent flows, waiting for that memory is most of
    /// a packet's cost. Any other call (`on_frame`, `on_packet`, `advance`, `finish`) first
    /// processes what is held back, so the records, their order and the counters after
    /// [`Engine::finish`] are exactly those of `on_frame`. Between calls, the last frames'
    /// effects (records, `counters.packets`, table contents) are still to come.
    #[inline]
    pub fn on_frame_deferred(
        &mut self,
        ts: Nanos,
        link: LinkType,
        frame: &[u8],
        wire_len: u32,
        sink: &mut impl FlowSink,
    ) {
        self.counters.frames += 1;
        self.counters.bytes += u64::from(wire_len);
        let Some(mut ring) = self.ring.take() else {
            // Only while a held packet is processed, which does not call back here.
            return;
        };
        // The oldest packet's turn, once DEFER are held: its index entries were prefetched DEFER
        // calls ago, its flow DEFER - PROBE calls ago.
        if ring.len == DEFER {
            if let (Some(d), Some(p)) = (ring.entries.get(ring.head), ring.payloads.get(ring.head))
            {
                self.process(d, p.get(..usize::from(d.payload_len)).unwrap_or(&[]), sink);
            }
            ring.head = (ring.head + 1) % DEFER;
            ring.len -= 1;
        }
        let tail = (ring.head + ring.len) % DEFER;
        let probed = (tail + DEFER - PROBE) % DEFER;
        let (Some(e), Some(slot)) = (ring.entries.get_mut(tail), ring.payloads.get_mut(tail))
        else {
            self.ring = Some(ring);
            return;
        };
        if let Err(err) = wire::parse_into(link, frame, wire_len, &mut e.pkt) {
            self.ring = Some(ring);
            self.run_deferred(sink);
            self.parse_error(ts, err, sink);
            return;
        }
        // The frame is gone by the time the packet is processed: the few payloads a flow
        // summary may read are copied (bulk data fails `worth_inspecting` at its first byte).
        let payload = kept_payload(&e.pkt, frame);
        e.payload_len = payload.len() as u16;
        if let Some(dst) = slot.get_mut(..payload.len()) {
            dst.copy_from_slice(payload);
        }
        // Hashed before it is stored: reading it back from the entry at once would wait for
        // the stores to land.
        let (key, forward) = self.key_of(&e.pkt);
        let hash = self.hasher.hash_one(key);
        // Prefetches are hints: a table whose window a packet misses loads lines for nothing.
        // Overlapping windows make a few tables at most.
        for slot in self.slots.iter().take(4) {
            slot.table.prefetch_index(hash);
        }
        e.ts = ts;
        e.key = key;
        e.forward = forward;
        e.hash = hash;
        if ring.len >= PROBE
            && let Some(d) = ring.entries.get(probed)
        {
            for slot in self.slots.iter().take(4) {
                slot.table.prefetch_flow(d.hash);
            }
        }
        ring.len += 1;
        self.ring = Some(ring);
    }

    /// Processes the packets `on_frame_deferred` held back, oldest first.
    #[inline]
    fn run_deferred(&mut self, sink: &mut impl FlowSink) {
        let Some(mut ring) = self.ring.take() else {
            return;
        };
        while ring.len > 0 {
            if let (Some(d), Some(p)) = (ring.entries.get(ring.head), ring.payloads.get(ring.head))
            {
                self.process(d, p.get(..usize::from(d.payload_len)).unwrap_or(&[]), sink);
            }
            ring.head = (ring.head + 1) % DEFER;
            ring.len -= 1;
        }
        self.ring = Some(ring);
    }

    fn parse_error(&mut self, ts: Nanos, e: ParseError, sink: &mut impl FlowSink) {
        // `index()` is the discriminant, below `ALL.len()`: the check compiles away.
        if let Some(n) = self.counters.parse_errors.get_mut(e.index()) {
            *n += 1;
        }
        // Time still passes for windows and timeouts.
        self.advance(ts, sink);
    }

    /// A packet's flow key and direction (a later IPv4 fragment takes its first fragment's).
    #[inline]
    fn key_of(&mut self, pkt: &Packet) -> (FlowKey, bool) {
        let fragment = match pkt.fragment {
            Some(_) => self.fragments.flow_of(pkt),
            None => None,
        };
        match fragment {
            Some(found) => found,
            None => FlowKey::of(pkt),
        }
    }

    /// One parsed packet, without its payload.
    #[inline]
    pub fn on_packet(&mut self, ts: Nanos, pkt: &Packet, sink: &mut impl FlowSink) {
        self.on_packet_payload(ts, pkt, &[], sink);
    }

    /// One parsed packet and the payload its flow's application summary may read (see
    /// [`kept_payload`]).
    #[inline]
    pub fn on_packet_payload(
        &mut self,
        ts: Nanos,
        pkt: &Packet,
        payload: &[u8],
        sink: &mut impl FlowSink,
    ) {
        self.run_deferred(sink);
        let (key, forward) = self.key_of(pkt);
        let hash = self.hasher.hash_one(key);
        let d = Deferred {
            ts,
            pkt: *pkt,
            key,
            forward,
            hash,
            payload_len: 0,
        };
        self.process(&d, payload, sink);
    }

    #[inline]
    fn process(&mut self, d: &Deferred, payload: &[u8], sink: &mut impl FlowSink) {
        let Deferred {
            ts,
            ref pkt,
            ref key,
            forward,
            hash,
            ..
        } = *d;
        self.counters.packets += 1;
        if ts < self.clock {
            self.counters.out_of_order += 1;
        }
        self.advance_clock(ts, sink);
        let ts = ts.max(self.clock);
        let Some(anchor) = self.anchor else {
            return;
        };
        let window_cfg = self.cfg.window;
        for slot in &mut self.slots {
            let info = window_info(window_cfg, anchor, slot.window, slot.slot);
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
            // Touching or inserting a flow makes it due `min_timeout` from now at the earliest.
            let due = ts.saturating_add(self.min_timeout);
            slot.due = slot.due.min(due);
            self.due = self.due.min(due);
            let reopened = match table.lookup(key, hash) {
                Lookup::Open(idx, flow) if !flow.state.reset_then_syn(pkt) => {
                    flow.update(pkt, forward, ts);
                    if !payload.is_empty() {
                        flow.inspect(pkt, forward, payload);
                    }
                    table.touch(idx);
                    continue;
                }
                Lookup::Lingering(idx, flow) => {
                    flow.continue_at(ts);
                    flow.update(pkt, forward, ts);
                    if !payload.is_empty() {
                        flow.inspect(pkt, forward, payload);
                    }
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
            let mut flow = Flow::new(*key, forward, pkt, ts, info.index);
            flow.update(pkt, forward, ts);
            if !payload.is_empty() {
                flow.inspect(pkt, forward, payload);
            }
            table.insert(flow, hash, &mut emit);
            slot.flows_in_window += 1;
        }
    }

    /// Moves the clock to `now` (never backwards): expires idle flows and closes ended windows.
    /// A live sensor calls this when no packet arrived for a while.
    #[inline]
    pub fn advance(&mut self, now: Nanos, sink: &mut impl FlowSink) {
        self.run_deferred(sink);
        self.advance_clock(now, sink);
    }

    #[inline]
    fn advance_clock(&mut self, now: Nanos, sink: &mut impl FlowSink) {
        let anchor = *self.anchor.get_or_insert(now);
        self.clock = self.clock.max(now);
        if self.clock >= self.due {
            self.advance_due(anchor, sink);
        }
    }

    /// The part of `advance` for when a window may have ended or a flow may be due.
    #[inline(never)]
    fn advance_due(&mut self, anchor: Nanos, sink: &mut impl FlowSink) {
        let clock = self.clock;
        if let Some(wcfg) = self.cfg.window
            && clock >= self.window_due
        {
            // Close ended windows in index order (k is small: 2 for 300 s / 150 s).
            loop {
                let ended = self
                    .slots
                    .iter_mut()
                    .filter(|s| window_info(Some(wcfg), anchor, s.window, s.slot).end_ns <= clock)
                    .min_by_key(|s| s.window);
                let Some(slot) = ended else {
                    break;
                };
                let info = window_info(Some(wcfg), anchor, slot.window, slot.slot);
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
            self.window_due = self
                .slots
                .iter()
                .map(|s| window_info(Some(wcfg), anchor, s.window, s.slot).end_ns)
                .min()
                .unwrap_or(Nanos::MAX);
        }
        let (interval, linger, idle) = (
            self.cfg.status_interval_ns,
            self.cfg.linger_ns,
            self.cfg.idle_ns,
        );
        let window_cfg = self.cfg.window;
        for slot in &mut self.slots {
            // `due` is at most the earliest deadline at the heads of the table's queues (each
            // queue is in deadline order): `expire` would do nothing before it. It is computed
            // after each `expire` and lowered by every insert and touch (`process`: their
            // deadlines are at least `min_timeout` away); removals only make the heads'
            // deadlines later.
            if clock < slot.due {
                continue;
            }
            let info = window_info(window_cfg, anchor, slot.window, slot.slot);
            let win = window_cfg.map(|_| info);
            let counters = &mut self.counters;
            slot.table
                .expire(clock, interval, &linger, &idle, &mut |f: &Flow, r| {
                    counters.flows += 1;
                    sink.flow(f, r, win.as_ref());
                });
            slot.due = slot.table.next_due(interval, &idle);
        }
        let tables_due = self.slots.iter().map(|s| s.due).min().unwrap_or(Nanos::MAX);
        self.due = match window_cfg {
            Some(_) => tables_due.min(self.window_due),
            None => tables_due,
        };
    }

    /// The input ended: emits every open flow and closes every open window.
    pub fn finish(&mut self, sink: &mut impl FlowSink) {
        self.run_deferred(sink);
        let Some(anchor) = self.anchor else {
            return;
        };
        let window_cfg = self.cfg.window;
        self.slots.sort_by_key(|s| s.window);
        for slot in &mut self.slots {
            let info = window_info(window_cfg, anchor, slot.window, slot.slot);
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

/// The part of a packet's payload that a flow's application summary may read: at most
/// [`PAYLOAD_CAP`] bytes, and nothing when its first bytes say it is not worth reading. Both
/// ways of driving the engine offer flows exactly this.
#[inline]
pub fn kept_payload<'a>(pkt: &Packet, frame: &'a [u8]) -> &'a [u8] {
    let payload = pkt.payload(frame);
    if !worth_inspecting(pkt, payload) {
        return &[];
    }
    payload.get(..PAYLOAD_CAP).unwrap_or(payload)
}

fn window_info(cfg: Option<WindowConfig>, anchor: Nanos, index: u64, slot: usize) -> WindowInfo {
    match cfg {
        Some(w) => {
            let start_ns = anchor.saturating_add(index.saturating_mul(w.step_ns));
            let overlaps = w.step_ns < w.length_ns;
            WindowInfo {
                index,
                start_ns,
                end_ns: start_ns.saturating_add(w.length_ns),
                slot,
                prev_end_ns: (overlaps && index >= 1)
                    .then(|| start_ns.saturating_add(w.length_ns - w.step_ns)),
                next_start_ns: overlaps.then(|| start_ns.saturating_add(w.step_ns)),
            }
        }
        None => WindowInfo {
            index: 0,
            start_ns: anchor,
            end_ns: Nanos::MAX,
            slot: 0,
            prev_end_ns: None,
            next_start_ns: None,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::capture::FileReader;

    /// Everything a sink sees, in order.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl FlowSink for Log {
        fn flow(&mut self, flow: &Flow, reason: CloseReason, window: Option<&WindowInfo>) {
            self.0.push(format!("{flow:?} {reason:?} {window:?}"));
        }
        fn window_closed(&mut self, window: &WindowInfo, flows: u64) {
            self.0.push(format!("closed {window:?} {flows}"));
        }
    }

    /// `on_frame_deferred` gives the records, order and counters of `on_frame`, also with
    /// unparsable frames and out-of-order timestamps among the packets, evictions and windows.
    #[test]
    #[ignore = "data: ../shared/data"]
    fn deferred_frames_give_what_immediate_frames_give() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/debian-registry/pathspider/real.pcap");
        let mut r = FileReader::open(&path).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            frames.push((f.ts_ns, f.link, f.data.to_vec(), f.orig_len));
            if frames.len() % 97 == 0 {
                // Garbage, and a timestamp from the past.
                frames.push((f.ts_ns, f.link, vec![0; 9], 9));
                frames.push((f.ts_ns - 5_000_000_000, f.link, f.data.to_vec(), f.orig_len));
            }
        }
        let configs = [
            EngineConfig::default(),
            EngineConfig {
                flow_capacity: 32,
                ..EngineConfig::default()
            },
            EngineConfig {
                flow_capacity: 32,
                window: WindowConfig::from_secs(300.0, 150.0),
                ..EngineConfig::default()
            },
        ];
        for cfg in configs {
            let run = |deferred: bool| {
                let mut engine = Engine::new(cfg.clone());
                let mut log = Log::default();
                for (i, (ts, link, data, len)) in frames.iter().enumerate() {
                    if deferred {
                        engine.on_frame_deferred(*ts, *link, data, *len, &mut log);
                    } else {
                        engine.on_frame(*ts, *link, data, *len, &mut log);
                    }
                    // Another call in between processes what is held back first.
                    if i % 1000 == 999 {
                        engine.advance(*ts, &mut log);
                    }
                }
                engine.finish(&mut log);
                (log.0, engine.counters.clone(), engine.table_stats())
            };
            let (a, b) = (run(false), run(true));
            assert!(a.0.len() > 1000, "{cfg:?}");
            assert!(a == b, "{cfg:?}: deferred frames made other records");
        }
    }
}
