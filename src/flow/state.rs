//! Argus flow states (the `State` column), flow direction and the ICMP/ARP keys, as Argus 3.0.8
//! makes them. `docs/argus-semantics.md` gives the rules and the evidence behind each.

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

    pub fn update(&mut self, pkt: &Packet) {
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
            }
            proto::ARP => self.arp_request |= pkt.arp_op == 1,
            _ => {}
        }
    }

    /// Argus's reset-then-SYN rule: a SYN on a reset connection starts a new record. (After a
    /// normal FIN close, 3.0.8 keeps counting into the same record.)
    pub fn reset_then_syn(&self, pkt: &Packet) -> bool {
        self.rst && pkt.proto == proto::TCP && pkt.tcp_flags & (SYN | ACK) == SYN
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
        proto::ICMP => matches!(pkt.icmp_type, 0 | 14 | 16 | 18),
        proto::ICMPV6 => pkt.icmp_type == 129,
        proto::ARP => pkt.arp_op == 2,
        proto::TCP => !pkt.src.v6 && pkt.tcp_flags & SYN == 0 && pkt.sport < pkt.dport,
        _ => false,
    }
}
