//! Argus flow states (the `State` column), flow direction and the ICMP/ARP keys, as Argus 3.0.8
//! makes them. `docs/argus-semantics.md` gives the rules and the evidence behind each.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::DirStats;
use crate::wire::{Packet, proto};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// What is printed in the State column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State(pub &'static str);

impl State {
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Argus's TCP connection states (`tcpExt->state`, BSD `tcp_fsm.h` numbering).
pub mod tcps {
    pub const CLOSED: u8 = 0;
    pub const LISTEN: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECEIVED: u8 = 3;
    pub const ESTABLISHED: u8 = 4;
    pub const CLOSE_WAIT: u8 = 5;
    pub const FIN_WAIT_1: u8 = 6;
    pub const CLOSING: u8 = 7;
    pub const LAST_ACK: u8 = 8;
    pub const FIN_WAIT_2: u8 = 9;
    pub const TIME_WAIT: u8 = 10;
}

/// What Argus keeps per TCP direction for its state machine (`ArgusTCPObjectMetrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSide {
    pub seqbase: u32,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    /// This side's FIN was seen by the state machine (`ARGUS_FIN` in the side's status).
    pub fin: bool,
}

/// Argus 3.0.8's TCP state machine (ArgusTcp.c: `ArgusUpdateTCPState`, `ArgusUpdateTCPSequence`,
/// `ArgusUpdateTCPStateMachine`), reduced to what decides record splits, the direction of records
/// opened by a SYN-ACK and their state. Sides are indexed by the key direction (0 = sent by
/// `key.lo`), so they survive a change of the printed direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpMachine {
    pub started: bool,
    pub state: u8,
    pub sides: [TcpSide; 2],
    /// `ARGUS_CON_ESTABLISHED` / `ARGUS_FIN` set by the state machine after the first packet.
    pub established: bool,
    pub fin: bool,
    /// The record's first packet was a SYN-ACK, and whether `key.lo` sent it.
    pub syn_ack_first: bool,
    pub syn_ack_sent_by_lo: bool,
}

impl TcpMachine {
    /// Whether this packet makes Argus close the record and start a new one with it: a SYN on a
    /// connection that was reset or closed (a retransmitted SYN, or a new one after a normal FIN
    /// exchange, stays in the record).
    pub fn splits(&self, pkt: &Packet) -> bool {
        use tcps::*;
        let f = pkt.tcp_flags;
        if !self.started || pkt.proto != proto::TCP {
            return false;
        }
        if self.state == LISTEN {
            return f & SYN != 0;
        }
        f == SYN
            && matches!(
                self.state,
                CLOSE_WAIT | FIN_WAIT_1 | CLOSING | TIME_WAIT | CLOSED
            )
    }

    /// Feeds one packet; `lo_sent` is the packet's lo->hi direction from `FlowKey::of`.
    pub fn update(&mut self, pkt: &Packet, lo_sent: bool) {
        use tcps::*;
        let [a, b] = &mut self.sides;
        let (s, o) = if lo_sent { (a, b) } else { (b, a) };
        let f = pkt.tcp_flags;
        let (seq, ack, win, len) = (pkt.tcp_seq, pkt.tcp_ack, pkt.tcp_window, pkt.app_len);
        if !self.started {
            self.started = true;
            if f & RST != 0 {
                self.state = LISTEN;
                if seq != 0 {
                    s.seqbase = seq.wrapping_sub(1);
                    s.seq = seq.wrapping_add(len);
                } else {
                    s.seqbase = ack.wrapping_sub(1);
                    s.seq = ack.wrapping_sub(1);
                }
                o.ack = ack.wrapping_sub(1);
                return;
            }
            const PSH: u8 = 0x08;
            const URG: u8 = 0x20;
            let data_state = match f & (SYN | ACK | FIN | PSH | URG) {
                SYN => {
                    self.state = SYN_SENT;
                    s.seqbase = seq;
                    s.seq = seq;
                    s.win = win;
                    return;
                }
                x if x == SYN | ACK => {
                    self.state = SYN_RECEIVED;
                    s.seqbase = seq;
                    s.seq = seq;
                    s.win = win;
                    o.ack = ack.wrapping_sub(1);
                    self.syn_ack_first = true;
                    self.syn_ack_sent_by_lo = lo_sent;
                    return;
                }
                x if x & ACK != 0 && x & (SYN | FIN) == 0 => {
                    o.ack = ack.wrapping_sub(1);
                    ESTABLISHED
                }
                x if x != 0 && x & (SYN | ACK | FIN) == 0 => ESTABLISHED,
                x if x & !ACK == FIN => FIN_WAIT_1,
                _ => CLOSING,
            };
            self.state = data_state;
            s.seqbase = seq.wrapping_sub(1);
            s.seq = seq.wrapping_add(len);
            s.win = win;
            return;
        }
        if self.state == LISTEN {
            // Only a SYN (which splits, see `splits`) changes a record opened by a reset.
            return;
        }
        // ArgusUpdateTCPSequence (without duplicate tracking, which argus-ctu.conf leaves off).
        if f != SYN {
            if win != 0 && f & (FIN | RST) == 0 {
                s.win = win;
            }
            let newseq = seq.wrapping_add(len);
            if newseq < seq {
                s.seqbase = newseq;
                s.seq = newseq;
            } else if s.seqbase == 0 {
                s.seqbase = seq;
                s.seq = newseq;
            } else if len > 0 && o.win != 0 && seq >= o.ack {
                s.seq = s.seq.max(newseq);
            }
            if ack != 0 && f & ACK != 0 {
                s.ack = ack.wrapping_sub(1);
            }
        }
        // ArgusUpdateTCPStateMachine.
        let mut st = self.state;
        let syn_only = f & SYN != 0 && f & ACK == 0;
        if f & RST != 0 {
            st = if st == SYN_SENT {
                if o.seq == s.ack { LISTEN } else { CLOSING }
            } else if seq >= s.ack && seq < s.ack.wrapping_add(u32::from(s.win)) {
                CLOSED
            } else {
                CLOSING
            };
        } else {
            match st {
                SYN_SENT => {
                    if f == SYN {
                    } else if f == SYN | ACK {
                        st = SYN_RECEIVED;
                    } else if f & FIN != 0 {
                        st = FIN_WAIT_1;
                        self.fin = true;
                        s.fin = true;
                    } else if f & ACK != 0 {
                        st = ESTABLISHED;
                        self.established = true;
                    }
                }
                SYN_RECEIVED => {
                    if f & FIN != 0 {
                        st = FIN_WAIT_1;
                        self.fin = true;
                        s.fin = true;
                    } else if f & SYN == 0 && f & ACK != 0 {
                        st = ESTABLISHED;
                        self.established = true;
                    }
                }
                ESTABLISHED if f & FIN != 0 => {
                    st = FIN_WAIT_1;
                    self.fin = true;
                    s.fin = true;
                }
                CLOSE_WAIT | FIN_WAIT_1 if syn_only => st = LISTEN,
                CLOSE_WAIT | FIN_WAIT_1 | LAST_ACK | FIN_WAIT_2 => {
                    if f & FIN != 0 && f & ACK != 0 {
                        self.fin = true;
                        s.fin = true;
                    }
                    if f & ACK != 0 && len == 0 && o.fin && o.seq == s.ack {
                        st = FIN_WAIT_2;
                    }
                }
                CLOSING | TIME_WAIT => {
                    if syn_only {
                        st = LISTEN;
                    } else if f & ACK != 0 && s.seq == s.ack && o.seq == s.ack {
                        st = CLOSED;
                    }
                }
                CLOSED if syn_only => st = LISTEN,
                _ => {}
            }
        }
        if st != LISTEN {
            self.state = st;
        }
    }

    /// A record opened by a SYN-ACK is printed from the client's side (the SYN-ACK's receiver)
    /// once the connection got established or saw a FIN; otherwise from the SYN-ACK's sender.
    pub fn client_is_src(&self) -> bool {
        self.syn_ack_first && (self.established || self.fin)
    }
}

/// Protocol state kept per flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtoState {
    /// ICMP type/code of the flow's first packet.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// TCP: the record's first packet carried SYN (or SYN-ACK); otherwise it started mid-stream.
    pub tcp_opened: bool,
    pub syn: bool,
    pub syn_ack: bool,
    /// An ACK without SYN: the handshake completed or data flowed.
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    /// ARP: a request was seen (a reply alone is RSP).
    pub arp_request: bool,
    /// This record continues a flow already reported at the status interval.
    pub continuation: bool,
    /// Argus's TCP state machine.
    pub tcp: TcpMachine,
    /// ICMP: a request joined a flow opened by its reply, and the record was turned around.
    pub icmp_turned: bool,
}

impl ProtoState {
    /// State of a new flow from its first packet.
    pub fn first(pkt: &Packet) -> ProtoState {
        ProtoState {
            icmp_type: pkt.icmp_type,
            icmp_code: pkt.icmp_code,
            tcp_opened: pkt.proto == proto::TCP && pkt.tcp_flags & SYN != 0,
            ..ProtoState::default()
        }
    }

    /// Adds a packet; `lo_sent` is its lo->hi direction from `FlowKey::of`.
    pub fn update(&mut self, pkt: &Packet, lo_sent: bool) {
        match pkt.proto {
            proto::TCP => {
                let f = pkt.tcp_flags;
                self.rst |= f & RST != 0;
                self.fin |= f & FIN != 0;
                match (f & SYN != 0, f & ACK != 0) {
                    (true, false) => self.syn = true,
                    (true, true) => self.syn_ack = true,
                    (false, true) => self.ack = true,
                    (false, false) => {}
                }
                self.tcp.update(pkt, lo_sent);
            }
            proto::ARP => self.arp_request |= pkt.arp_op == 1,
            _ => {}
        }
    }

    /// Whether this packet closes the record and starts a new one (Argus's SYN after a reset or
    /// an unfinished close; see [`TcpMachine::splits`]).
    pub fn reset_then_syn(&self, pkt: &Packet) -> bool {
        self.tcp.splits(pkt)
    }

    /// When [`ProtoState::reset_then_syn`] splits a record that a reset opened (Argus state
    /// LISTEN), Argus prints the closed record with StartTime and LastTime both at the new SYN's
    /// time (backscatter.trace); after other splits only LastTime moves.
    pub fn split_restamps_start(&self) -> bool {
        self.tcp.started && self.tcp.state == tcps::LISTEN
    }

    pub fn summary(&self, proto_nr: u8, fwd: &DirStats, rev: &DirStats) -> State {
        let one_way = if rev.pkts == 0 || fwd.pkts == 0 {
            if self.continuation { "REQ" } else { "INT" }
        } else {
            "CON"
        };
        State(match proto_nr {
            proto::TCP => {
                if self.rst {
                    "RST"
                } else if self.fin {
                    "FIN"
                } else if self.tcp.syn_ack_first && self.tcp.established {
                    // Opened by a SYN-ACK, then established: Argus prints CLO.
                    "CLO"
                } else if self.ack || !self.tcp_opened {
                    "CON"
                } else if self.syn_ack {
                    "ACC"
                } else {
                    "REQ"
                }
            }
            proto::ICMP => icmp_state(self.icmp_type, self.icmp_code, fwd.pkts > 0),
            proto::ICMPV6 => icmpv6_state(self.icmp_type),
            proto::ARP => {
                if !self.arp_request {
                    "RSP"
                } else if rev.pkts > 0 {
                    "CON"
                } else {
                    "INT"
                }
            }
            _ => one_way,
        })
    }

    /// The Dir column, padded as `ra` prints it.
    pub fn dir(&self, proto_nr: u8, fwd: &DirStats, rev: &DirStats) -> &'static str {
        let (s, d) = (fwd.pkts > 0, rev.pkts > 0);
        match proto_nr {
            proto::ARP => "  who",
            proto::TCP if self.tcp_opened => "   ->",
            proto::TCP => match (s, d) {
                (true, true) => "  <?>",
                (false, true) => "  <?",
                _ => "   ?>",
            },
            _ => match (s, d) {
                (true, true) => "  <->",
                (false, true) => "  <-",
                _ => "   ->",
            },
        }
    }
}

fn icmp_state(icmp_type: u8, code: u8, request_seen: bool) -> &'static str {
    match icmp_type {
        0 | 8 => {
            if request_seen {
                "ECO"
            } else {
                "ECR"
            }
        }
        13 | 14 => {
            if request_seen {
                "TST"
            } else {
                "TSR"
            }
        }
        15 | 16 => {
            if request_seen {
                "IRQ"
            } else {
                "IRR"
            }
        }
        17 | 18 => {
            if request_seen {
                "MAS"
            } else {
                "MSR"
            }
        }
        3 => match code {
            0 => "URN",
            1 => "URH",
            2 => "URO",
            3 => "URP",
            4 => "URF",
            9 => "URNPRO",
            10 => "URHPRO",
            13 => "URFIL",
            _ => "URH",
        },
        4 => "SRC",
        5 => "RED",
        9 => "RTA",
        10 => "RTS",
        11 => "TXD",
        12 => "PAR",
        _ => "NRA",
    }
}

fn icmpv6_state(icmp_type: u8) -> &'static str {
    match icmp_type {
        1 => "URH",
        2 => "PTB",
        3 => "TXD",
        4 => "PAR",
        128 | 129 => "ECO",
        130..=132 | 143 => "MHR",
        133 => "NRS",
        134 => "NRA",
        135 | 136 => "NNS",
        137 => "RED",
        _ => "UNK",
    }
}

/// The request type a reply belongs to, so request and reply share one flow.
fn icmp_class(pkt: &Packet) -> u8 {
    match (pkt.proto, pkt.icmp_type) {
        (proto::ICMP, 0) => 8,
        (proto::ICMP, 14) => 13,
        (proto::ICMP, 16) => 15,
        (proto::ICMP, 18) => 17,
        (proto::ICMPV6, 129) => 128,
        (proto::ICMPV6, 136) => 135,
        (_, t) => t,
    }
}

/// Ports and discriminator of an ICMP flow key: type class and code in the port slots, and the
/// type-specific field Argus keys on (ICMPv6: none).
pub fn icmp_key(pkt: &Packet) -> (u16, u16, u32) {
    let class = u16::from(icmp_class(pkt)) | u16::from(pkt.icmp_code) << 8;
    let aux = if pkt.proto == proto::ICMP {
        pkt.icmp_aux
    } else {
        0
    };
    (class, class, aux)
}

/// Whether a flow's first packet was sent by the flow's destination: replies (ICMP, ARP) are keyed
/// as the request they answer, and an IPv4 TCP flow caught mid-stream has the higher port as source.
pub fn first_packet_reversed(pkt: &Packet) -> bool {
    match pkt.proto {
        proto::ICMP => first_packet_reversed_icmp(pkt.icmp_type),
        proto::ICMPV6 => pkt.icmp_type == 129,
        proto::ARP => pkt.arp_op == 2,
        proto::TCP => !pkt.src.v6 && pkt.tcp_flags & SYN == 0 && pkt.sport < pkt.dport,
        _ => false,
    }
}

/// ICMP replies (echo, timestamp, info, mask) are keyed as the request they answer.
pub fn first_packet_reversed_icmp(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 14 | 16 | 18)
}
