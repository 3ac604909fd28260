//! Bidirectional flows with Argus-style per-direction counters and protocol state.
//!
//! A [`Flow`] is keyed on the 5-tuple (plus the DNS transaction id or the ICMP identity where Argus
//! splits on them, see [`FlowKey`]); the direction is taken from the first packet. The table that
//! holds flows is in [`table`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod app;
pub mod fragments;
pub mod metrics;
pub mod state;
pub mod table;

use crate::wire::{Addr, Packet, proto};

pub use state::State;
pub use table::{FlowTable, IndexKind, TableStats};

/// Brings the cache line holding `p` closer, ahead of a read that would otherwise miss.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the address, and changes no
    // program state; SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Nanoseconds since the Unix epoch; the caller's clock.
pub type Nanos = u64;

/// Timeout classes, one LRU list each in the table, so every list is ordered by expiry time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutClass {
    Tcp = 0,
    Udp = 1,
    Icmp = 2,
    Other = 3,
}

pub const TIMEOUT_CLASSES: usize = 4;

impl TimeoutClass {
    /// Every class, in discriminant order (the order of per-class arrays).
    pub const ALL: [TimeoutClass; TIMEOUT_CLASSES] = [
        TimeoutClass::Tcp,
        TimeoutClass::Udp,
        TimeoutClass::Icmp,
        TimeoutClass::Other,
    ];

    /// This class's entry of a per-class array.
    // why: the discriminants are declared 0..=3 and `ALL` has `TIMEOUT_CLASSES` entries, so
    // every class indexes a `[T; TIMEOUT_CLASSES]`; the check compiles away. (A `match` over the
    // four entries instead cost the flow table ~20 instructions per packet in jump tables.)
    #[allow(clippy::indexing_slicing)]
    #[inline]
    pub fn pick<T>(self, a: &[T; TIMEOUT_CLASSES]) -> &T {
        &a[self as usize]
    }

    /// This class's entry of a per-class array, mutably.
    // why: as for `pick`.
    #[allow(clippy::indexing_slicing)]
    #[inline]
    pub fn pick_mut<T>(self, a: &mut [T; TIMEOUT_CLASSES]) -> &mut T {
        &mut a[self as usize]
    }

    pub fn of(proto: u8) -> TimeoutClass {
        match proto {
            proto::TCP => TimeoutClass::Tcp,
            proto::UDP => TimeoutClass::Udp,
            proto::ICMP | proto::ICMPV6 => TimeoutClass::Icmp,
            _ => TimeoutClass::Other,
        }
    }
}

/// The identity of a bidirectional flow: endpoints sorted so both directions give the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowKey {
    pub lo: Addr,
    pub hi: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
    /// Protocol-specific discriminator: DNS transaction id, ICMP echo id; 0 otherwise.
    pub aux: u32,
}

/// Hashes every field, as a few words rather than field by field (byte arrays hash as slices,
/// with a length prefix, otherwise): one flow-table lookup per packet hashes a key.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Protocol and families folded into the top of the first address's word (equal keys
        // still hash equal; it only saves a word).
        let tag =
            u128::from(self.proto) | u128::from(self.lo.v6) << 8 | u128::from(self.hi.v6) << 9;
        h.write_u128(u128::from_ne_bytes(self.lo.bytes) ^ tag << 112);
        h.write_u128(u128::from_ne_bytes(self.hi.bytes));
        h.write_u64(
            u64::from(self.aux) | u64::from(self.lo_port) << 32 | u64::from(self.hi_port) << 48,
        );
    }
}

/// `(a, pa) <= (b, pb)` in the derived order of `(Addr, u16)` (bytes, then family, then port),
/// without the byte-slice comparison call.
#[inline]
fn endpoint_le(a: &Addr, pa: u16, b: &Addr, pb: u16) -> bool {
    let (x, y) = (u128::from_be_bytes(a.bytes), u128::from_be_bytes(b.bytes));
    (x, a.v6, pa) <= (y, b.v6, pb)
}

impl FlowKey {
    /// The key of a packet, and whether the packet travels lo -> hi.
    #[inline]
    pub fn of(pkt: &Packet) -> (FlowKey, bool) {
        let (sport, dport, aux) = endpoints(pkt);
        let forward = if pkt.proto == proto::ARP {
            // Argus keys ARP on (requester, target) in that order: a reply joins its request, but
            // a request the other way round is another flow.
            pkt.arp_op != 2
        } else {
            endpoint_le(&pkt.src, sport, &pkt.dst, dport)
        };
        let (lo, lo_port, hi, hi_port) = if forward {
            (pkt.src, sport, pkt.dst, dport)
        } else {
            (pkt.dst, dport, pkt.src, sport)
        };
        (
            FlowKey {
                lo,
                hi,
                lo_port,
                hi_port,
                proto: pkt.proto,
                aux,
            },
            forward,
        )
    }
}

/// Ports and discriminator as Argus keys them.
fn endpoints(pkt: &Packet) -> (u16, u16, u32) {
    match pkt.proto {
        proto::TCP => (pkt.sport, pkt.dport, 0),
        proto::UDP => (
            pkt.sport,
            pkt.dport,
            pkt.dns_id.map_or(0, |id| 0x1_0000 | u32::from(id)),
        ),
        proto::ICMP | proto::ICMPV6 => state::icmp_key(pkt),
        _ => (0, 0, 0),
    }
}

/// Mean of `n` values summing to `sum` (0 for none).
#[inline]
fn mean(sum: f64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Population standard deviation, as Argus reports jitter (0 below two values).
#[inline]
fn std_dev(sum: f64, sum_sq: f64, n: u64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let mean = mean(sum, n);
    (sum_sq / n as f64 - mean * mean).max(0.0).sqrt()
}

/// Sums of a direction's inter-packet times (nanoseconds): all of them, and split into active
/// (gaps below [`IDLE_GAP_NS`]) and idle ones. There is one gap per packet after the first, so
/// only the active count is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gaps {
    pub sum: f64,
    pub sum_sq: f64,
    pub active_n: u64,
    pub active_sum: f64,
    pub active_sum_sq: f64,
    pub idle_sum: f64,
}

/// Counters of one direction of a flow.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirStats {
    pub pkts: u64,
    pub bytes: u64,
    pub app_bytes: u64,
    /// TTL and ToS of the last packet.
    pub ttl: u8,
    pub tos: u8,
    pub min_size: u32,
    pub max_size: u32,
    pub first_ns: Nanos,
    pub last_ns: Nanos,
    /// Inter-packet times.
    pub gaps: Gaps,
    /// TCP flags ever seen in this direction.
    pub tcp_flags: u8,
    /// TCP: highest sequence end seen, for retransmission (loss) counting.
    pub tcp_next_seq: u32,
    pub tcp_retrans: u64,
    /// Hardware source address of this direction's first packet (zeros when the link has none).
    pub mac: [u8; 6],
}

impl DirStats {
    /// Inter-packet times: how many, and how many of them idle.
    fn gap_counts(&self) -> (u64, u64) {
        let n = self.pkts.saturating_sub(1);
        (n, n.saturating_sub(self.gaps.active_n))
    }
    /// Mean inter-packet time (ns).
    pub fn ipt_mean(&self) -> f64 {
        mean(self.gaps.sum, self.gap_counts().0)
    }
    /// Standard deviation of the inter-packet times (ns): Argus's jitter.
    pub fn ipt_std_dev(&self) -> f64 {
        std_dev(self.gaps.sum, self.gaps.sum_sq, self.gap_counts().0)
    }
    /// Mean active inter-packet time (ns).
    pub fn active_mean(&self) -> f64 {
        mean(self.gaps.active_sum, self.gaps.active_n)
    }
    /// Standard deviation of the active inter-packet times (ns).
    pub fn active_std_dev(&self) -> f64 {
        std_dev(
            self.gaps.active_sum,
            self.gaps.active_sum_sq,
            self.gaps.active_n,
        )
    }
    /// Mean idle inter-packet time (ns).
    pub fn idle_mean(&self) -> f64 {
        mean(self.gaps.idle_sum, self.gap_counts().1)
    }
}

/// Inter-packet gaps at or above this count as idle time (Argus's active/idle split).
pub const IDLE_GAP_NS: f64 = 1e9;

impl DirStats {
    fn update(&mut self, ts: Nanos, pkt: &Packet) {
        if self.pkts == 0 {
            self.first_ns = ts;
            self.mac = pkt.src_mac;
            self.min_size = pkt.wire_len;
            self.max_size = pkt.wire_len;
        } else {
            let gap = ts.saturating_sub(self.last_ns) as f64;
            let g = &mut self.gaps;
            g.sum += gap;
            g.sum_sq += gap * gap;
            if gap < IDLE_GAP_NS {
                g.active_n += 1;
                g.active_sum += gap;
                g.active_sum_sq += gap * gap;
            } else {
                g.idle_sum += gap;
            }
            self.min_size = self.min_size.min(pkt.wire_len);
            self.max_size = self.max_size.max(pkt.wire_len);
        }
        self.pkts += 1;
        self.bytes += u64::from(pkt.wire_len);
        self.app_bytes += u64::from(pkt.app_len);
        self.ttl = pkt.ttl;
        self.tos = pkt.tos;
        self.last_ns = ts;
        if pkt.proto == proto::TCP {
            self.tcp_flags |= pkt.tcp_flags;
            let seq_end = pkt.tcp_seq.wrapping_add(pkt.app_len);
            if pkt.app_len > 0 {
                let is_retrans =
                    self.pkts > 1 && (seq_end.wrapping_sub(self.tcp_next_seq) as i32) <= 0;
                if is_retrans {
                    self.tcp_retrans += 1;
                } else {
                    self.tcp_next_seq = seq_end;
                }
            } else if self.pkts == 1 {
                self.tcp_next_seq = seq_end;
            }
        }
    }
}

/// Why a flow record was emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Idle longer than its protocol's timeout.
    Idle,
    /// Its window ended.
    WindowEnd,
    /// Pushed out of a full table to make room.
    Evicted,
    /// The input ended (or the sensor stopped).
    Flush,
    /// Reported because it ran longer than the status interval; the flow continues.
    Status,
}

/// One bidirectional flow.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub key: FlowKey,
    /// Whether the flow's source (first packet's sender) is `key.lo`.
    pub src_is_lo: bool,
    pub src: Addr,
    pub dst: Addr,
    /// Ports as printed (ICMP: type and code of the first packet).
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub start_ns: Nanos,
    pub last_ns: Nanos,
    pub fwd: DirStats,
    pub rev: DirStats,
    pub state: state::ProtoState,
    /// Index of the window the flow belongs to (0 when not windowed).
    pub window: u64,
    /// What the first payload bytes of each direction said.
    pub app: app::AppState,
}

impl Flow {
    /// A new flow from its first packet; `forward` is the packet's lo->hi direction from
    /// [`FlowKey::of`].
    pub fn new(key: FlowKey, forward: bool, pkt: &Packet, ts: Nanos, window: u64) -> Flow {
        let reversed = state::first_packet_reversed(pkt);
        let (src, dst) = if reversed {
            (pkt.dst, pkt.src)
        } else {
            (pkt.src, pkt.dst)
        };
        let (sport, dport) = match pkt.proto {
            proto::TCP | proto::UDP if reversed => (pkt.dport, pkt.sport),
            proto::TCP | proto::UDP => (pkt.sport, pkt.dport),
            proto::ICMP => (
                u16::from(pkt.icmp_type) | u16::from(pkt.icmp_code) << 8,
                pkt.icmp_dport,
            ),
            proto::ICMPV6 => (key.lo_port & 0xff, u16::from(pkt.icmp_code)),
            _ => (0, 0),
        };
        Flow {
            key,
            src_is_lo: forward != reversed,
            src,
            dst,
            sport,
            dport,
            proto: pkt.proto,
            start_ns: ts,
            last_ns: ts,
            fwd: DirStats::default(),
            rev: DirStats::default(),
            state: state::ProtoState::first(pkt),
            window,
            app: app::AppState::default(),
        }
    }

    /// Adds a packet; `forward` is the packet's lo->hi direction from [`FlowKey::of`].
    pub fn update(&mut self, pkt: &Packet, forward: bool, ts: Nanos) {
        let from_src = forward == self.src_is_lo;
        if from_src {
            self.fwd.update(ts, pkt);
        } else {
            self.rev.update(ts, pkt);
        }
        self.state.update(pkt, forward);
        self.last_ns = self.last_ns.max(ts);
        if self.proto == proto::TCP && self.state.tcp.client_is_src() {
            self.face_client();
        }
        if self.proto == proto::ICMP
            && from_src
            && !self.state.icmp_turned
            && state::first_packet_reversed_icmp(self.state.icmp_type)
        {
            // A request joining a flow that a reply opened: Argus then prints the reply's sender
            // as the source, with the request's type as Sport.
            self.state.icmp_turned = true;
            self.src_is_lo = !self.src_is_lo;
            std::mem::swap(&mut self.src, &mut self.dst);
            std::mem::swap(&mut self.fwd, &mut self.rev);
            self.sport = u16::from(pkt.icmp_type) | u16::from(pkt.icmp_code) << 8;
        }
    }

    /// Turns a record opened by a SYN-ACK around so the SYN-ACK's receiver is the source, as
    /// Argus prints such records once the connection is established.
    fn face_client(&mut self) {
        // The SYN-ACK's sender is the side that sent the record's first packet.
        let client_is_lo = !self.state.tcp.syn_ack_sent_by_lo;
        if self.src_is_lo == client_is_lo {
            return;
        }
        self.src_is_lo = client_is_lo;
        std::mem::swap(&mut self.src, &mut self.dst);
        std::mem::swap(&mut self.sport, &mut self.dport);
        std::mem::swap(&mut self.fwd, &mut self.rev);
    }

    /// A packet's payload (already counted by [`Flow::update`]), for the application summary.
    #[inline]
    pub fn inspect(&mut self, pkt: &Packet, forward: bool, payload: &[u8]) {
        let from_src = forward == self.src_is_lo;
        self.app
            .on_payload(self.proto, (pkt.sport, pkt.dport), from_src, payload);
    }

    /// Starts a continuation record of a flow reported at the status interval: same endpoints and
    /// direction, fresh counters; TCP keeps its connection state, as Argus does.
    pub fn continue_at(&mut self, ts: Nanos) {
        self.start_ns = ts;
        self.last_ns = ts;
        self.fwd = DirStats::default();
        self.rev = DirStats::default();
        self.state.continuation = true;
    }

    pub fn total_pkts(&self) -> u64 {
        self.fwd.pkts + self.rev.pkts
    }
    pub fn total_bytes(&self) -> u64 {
        self.fwd.bytes + self.rev.bytes
    }
    pub fn duration_ns(&self) -> u64 {
        self.last_ns.saturating_sub(self.start_ns)
    }
    pub fn state(&self) -> State {
        self.state.summary(self.proto, &self.fwd, &self.rev)
    }
    /// The Dir column, padded as `ra` prints it.
    pub fn dir(&self) -> &'static str {
        self.state.dir(self.proto, &self.fwd, &self.rev)
    }
}
