//! IPv4 fragment trains: later fragments carry no ports, so Argus adds them to the flow of their
//! first fragment (same source, destination, protocol and IP id). A later fragment whose first one
//! was never seen forms a flow of its own with ports 0, one per IP id. Capacity is fixed; the oldest train is
//! forgotten first.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use hashbrown::{DefaultHashBuilder, HashMap};

use super::FlowKey;
use crate::wire::{Addr, Packet};

/// Marks the flow-key discriminator of an orphan fragment (the IPv4 id is in the low 16 bits);
/// DNS ids use bit 16, so the two never collide.
const ORPHAN_AUX: u32 = 0x4000_0000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct TrainKey {
    src: Addr,
    dst: Addr,
    proto: u8,
    id: u32,
}

pub struct FragmentMap {
    trains: HashMap<TrainKey, (FlowKey, bool), DefaultHashBuilder>,
    /// Insertion order, a ring of `capacity` keys, for forgetting the oldest train.
    ring: Vec<Option<TrainKey>>,
    next: usize,
}

impl FragmentMap {
    pub fn new(capacity: usize) -> FragmentMap {
        let capacity = capacity.max(1);
        FragmentMap {
            trains: HashMap::with_capacity_and_hasher(capacity * 2, DefaultHashBuilder::default()),
            ring: vec![None; capacity],
            next: 0,
        }
    }

    /// The flow key of a fragmented IPv4 packet, or `None` for anything else.
    pub fn flow_of(&mut self, pkt: &Packet) -> Option<(FlowKey, bool)> {
        let frag = pkt.fragment?;
        if pkt.src.v6 {
            return None;
        }
        let train = TrainKey {
            src: pkt.src,
            dst: pkt.dst,
            proto: pkt.proto,
            id: frag.id,
        };
        if frag.offset != 0 {
            if let Some(found) = self.trains.get(&train) {
                return Some(*found);
            }
            // Argus keys a fragment whose first fragment it never saw on the IP id too: each such
            // datagram is a flow of its own (ports 0), its other fragments join it.
            let (mut key, forward) = FlowKey::of(pkt);
            key.aux = ORPHAN_AUX | frag.id;
            return Some((key, forward));
        }
        let found = FlowKey::of(pkt);
        if self.trains.insert(train, found).is_none() {
            if let Some(Some(old)) = self.ring.get(self.next) {
                self.trains.remove(old);
            }
            if let Some(slot) = self.ring.get_mut(self.next) {
                *slot = Some(train);
            }
            self.next = (self.next + 1) % self.ring.len();
        }
        Some(found)
    }
}
