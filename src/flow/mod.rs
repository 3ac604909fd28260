//! Bidirectional flows with Argus-style per-direction counters and protocol state.
//!
//! A [`Flow`] is keyed on the 5-tuple (plus the DNS transaction id or the ICMP identity where Argus
//! splits on them, see [`FlowKey`]); the direction is taken from the first packet. The table that
//! holds flows is in [`table`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod fragments;
pub mod metrics;
pub mod state;
pub mod table;

use crate::wire::{Addr, Packet, proto};

pub use state::State;
pub use table::{FlowTable, TableStats};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub lo: Addr,
    pub hi: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
    /// Protocol-specific discriminator: DNS transaction id, ICMP echo id; 0 otherwise.
    pub aux: u32,
}

impl FlowKey {
    /// The key of a packet, and whether the packet travels lo -> hi.
    pub fn of(pkt: &Packet) -> (FlowKey, bool) {
        let (sport, dport, aux) = endpoints(pkt);
        let forward = if pkt.proto == proto::ARP {
            // Argus keys ARP on (requester, target) in that order: a reply joins its request, but
            // a request the other way round is another flow.
            pkt.arp_op != 2
        } else {
            (pkt.src, sport) <= (pkt.dst, dport)
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

/// Running mean/variance/min/max of a series, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Series {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
}

impl Series {
    pub fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
    /// Population standard deviation, as Argus reports jitter.
    pub fn std_dev(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let mean = self.mean();
        (self.sum_sq / self.n as f64 - mean * mean).max(0.0).sqrt()
    }
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
    /// Inter-packet times, all, and split into active (< idle threshold) and idle ones.
    pub ipt: Series,
    pub ipt_active: Series,
    pub ipt_idle: Series,
    /// TCP flags ever seen in this direction.
    pub tcp_flags: u8,
    /// TCP: highest sequence end seen, for retransmission (loss) counting.
    pub tcp_next_seq: u32,
    pub tcp_retrans: u64,
}

/// Inter-packet gaps at or above this count as idle time (Argus's active/idle split).
pub const IDLE_GAP_NS: f64 = 1e9;

impl DirStats {
    fn update(&mut self, ts: Nanos, pkt: &Packet) {
        if self.pkts == 0 {
            self.first_ns = ts;
            self.min_size = pkt.wire_len;
            self.max_size = pkt.wire_len;
        } else {
            let gap = ts.saturating_sub(self.last_ns) as f64;
            self.ipt.push(gap);
            if gap < IDLE_GAP_NS {
                self.ipt_active.push(gap);
            } else {
                self.ipt_idle.push(gap);
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
#[derive(Clone, Copy, Debug, PartialEq)]
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
