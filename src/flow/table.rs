//! The fixed-capacity flow table.
//!
//! Storage is sized once: a slab of at most `capacity` flows and a `hashbrown` index reserved for
//! twice that, so no insert ever grows it (no allocation per packet, and a load factor that keeps
//! probes short when the table is full). The index holds only 4-byte slot numbers (a `HashTable`),
//! which keeps it small in cache; each slot remembers its hash, so removal does not rehash. Keys are
//! hashed with hashbrown's default hasher, seeded randomly per process: nobody can precompute
//! colliding flow keys.
//!
//! Records end as Argus 3.0.8 ends them (docs/argus-semantics.md): not on idle time, but when the
//! status interval has passed since the record's first packet. The record is then reported and the
//! flow lingers for a protocol-specific time; a packet in that time starts a continuation record.
//! Each slot sits in two intrusive lists: the LRU list (by last packet, for eviction) and one
//! deadline queue (open records by start time, or lingering flows of one timeout class by report
//! time), so every expiry check looks only at list heads.
//!
//! When the table is full, the least recently used flow is evicted: an open record is emitted with
//! [`CloseReason::Evicted`] and counted, never dropped; a lingering flow holds no data and goes.
//!
//! No index here can panic: slots are reached with `get`/`get_mut` (a stale or `NIL` link finds
//! nothing), and the per-class lists through [`TimeoutClass::pick`] (in range by construction).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{CloseReason, Flow, FlowKey, Nanos, TIMEOUT_CLASSES, TimeoutClass};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Default)]
struct Links {
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy)]
struct Slot {
    flow: Flow,
    hash: u64,
    lru: Links,
    queue_links: Links,
    /// The deadline queue the slot is in: `None` for open records, the class for lingering flows.
    queue: Option<TimeoutClass>,
    /// For a lingering flow, when it is forgotten.
    linger_until: Nanos,
    live: bool,
}

impl Slot {
    fn lingering(&self) -> bool {
        self.queue.is_some()
    }
    fn class(&self) -> TimeoutClass {
        TimeoutClass::of(self.flow.proto)
    }
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// The deadline queues: open records in start order, and per class the lingering flows in report
/// order.
#[derive(Clone, Copy)]
struct Queues {
    open: List,
    lingering: [List; TIMEOUT_CLASSES],
}

impl Queues {
    const EMPTY: Queues = Queues {
        open: EMPTY,
        lingering: [EMPTY; TIMEOUT_CLASSES],
    };

    #[inline]
    fn get_mut(&mut self, queue: Option<TimeoutClass>) -> &mut List {
        match queue {
            None => &mut self.open,
            Some(class) => class.pick_mut(&mut self.lingering),
        }
    }
}

/// Counters of one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub created: u64,
    /// Records reported at the status interval.
    pub status_reports: u64,
    /// Flows forgotten after lingering.
    pub expired: u64,
    /// Records closed by a per-protocol idle timeout (off by default, as in Argus).
    pub idle_closed: u64,
    /// Open records pushed out of a full table (emitted early, not lost).
    pub evicted: u64,
    pub flushed: u64,
    /// Most flows held at once.
    pub high_water: u64,
}

/// How a packet's flow was found.
pub enum Lookup<'a> {
    Open(u32, &'a mut Flow),
    /// A flow reported at the status interval and lingering: the packet starts a continuation.
    Lingering(u32, &'a mut Flow),
    Absent,
}

pub struct FlowTable {
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// One LRU list per timeout class, so idle expiry with per-protocol timeouts reads list heads.
    lru: [List; TIMEOUT_CLASSES],
    queues: Queues,
    /// Scratch for emitting flows in start-time order on flush; sized at start-up.
    order: Vec<u32>,
    capacity: usize,
    len: usize,
    pub stats: TableStats,
}

impl FlowTable {
    /// A table that never holds more than `capacity` flows (at least 1).
    pub fn new(capacity: usize) -> FlowTable {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        FlowTable {
            index: HashTable::with_capacity(capacity * 2),
            hasher: DefaultHashBuilder::default(),
            // The slab reserves its memory but only touches pages as flows arrive, so RSS follows
            // the flows really held.
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            lru: [EMPTY; TIMEOUT_CLASSES],
            queues: Queues::EMPTY,
            order: Vec::with_capacity(capacity),
            capacity,
            len: 0,
            stats: TableStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The table's hash of a key, to pass to [`FlowTable::lookup`] and [`FlowTable::insert`].
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn lookup(&mut self, key: &FlowKey, hash: u64) -> Lookup<'_> {
        let slots = &self.slots;
        let found = self.index.find(hash, |&i| {
            slots.get(i as usize).is_some_and(|s| s.flow.key == *key)
        });
        let Some(&idx) = found else {
            return Lookup::Absent;
        };
        match self.slots.get_mut(idx as usize) {
            Some(slot) if slot.lingering() => Lookup::Lingering(idx, &mut slot.flow),
            Some(slot) => Lookup::Open(idx, &mut slot.flow),
            None => Lookup::Absent,
        }
    }

    /// Inserts a new flow (its key must not be present), evicting the least recently used flow
    /// when full.
    pub fn insert(
        &mut self,
        flow: Flow,
        hash: u64,
        emit: &mut impl FnMut(&Flow, CloseReason),
    ) -> u32 {
        if self.len >= self.capacity {
            self.evict_lru(emit);
        }
        let slot = Slot {
            flow,
            hash,
            lru: Links {
                prev: NIL,
                next: NIL,
            },
            queue_links: Links {
                prev: NIL,
                next: NIL,
            },
            queue: None,
            linger_until: 0,
            live: true,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(s) = self.slots.get_mut(idx as usize) {
                    *s = slot;
                }
                idx
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(hash, idx, |&i| slots.get(i as usize).map_or(0, |s| s.hash));
        self.link_lru(idx);
        self.link_queue(idx, None);
        self.len += 1;
        self.stats.created += 1;
        self.stats.high_water = self.stats.high_water.max(self.len as u64);
        idx
    }

    /// Marks a flow as just used (moves it to the LRU tail); a lingering flow whose record the
    /// caller has just restarted with [`Flow::continue_at`] goes back to the open queue.
    pub fn touch(&mut self, idx: u32) {
        self.unlink_lru(idx);
        self.link_lru(idx);
        let lingering = self.slots.get(idx as usize).is_some_and(|s| s.lingering());
        if lingering {
            self.unlink_queue(idx);
            self.link_queue(idx, None);
        }
    }

    /// Reports open records whose status interval has passed (they then linger for their class's
    /// time), forgets lingering flows whose time is up, and, where a class has an idle timeout,
    /// closes flows idle that long.
    pub fn expire(
        &mut self,
        now: Nanos,
        status_interval: Nanos,
        linger: &[Nanos; TIMEOUT_CLASSES],
        idle: &[Option<Nanos>; TIMEOUT_CLASSES],
        emit: &mut impl FnMut(&Flow, CloseReason),
    ) {
        for class in TimeoutClass::ALL {
            let Some(timeout) = *class.pick(idle) else {
                continue;
            };
            loop {
                let head = class.pick(&self.lru).head;
                let Some(slot) = self.slots.get(head as usize) else {
                    break;
                };
                if slot.flow.last_ns.saturating_add(timeout) > now {
                    break;
                }
                if slot.lingering() {
                    self.remove(head);
                } else {
                    self.stats.idle_closed += 1;
                    self.close(head, CloseReason::Idle, emit);
                }
            }
        }
        loop {
            let head = self.queues.open.head;
            let Some(slot) = self.slots.get(head as usize) else {
                break;
            };
            if slot.flow.start_ns.saturating_add(status_interval) > now {
                break;
            }
            emit(&slot.flow, CloseReason::Status);
            self.stats.status_reports += 1;
            let class = slot.class();
            self.unlink_queue(head);
            self.link_queue(head, Some(class));
            if let Some(s) = self.slots.get_mut(head as usize) {
                s.linger_until = now.saturating_add(*class.pick(linger));
            }
        }
        for class in TimeoutClass::ALL {
            loop {
                let head = class.pick(&self.queues.lingering).head;
                let Some(slot) = self.slots.get(head as usize) else {
                    break;
                };
                if slot.linger_until > now {
                    break;
                }
                self.stats.expired += 1;
                self.remove(head);
            }
        }
    }

    /// Emits an open record and removes its flow (TCP: a SYN after a reset starts a new record).
    pub fn close(
        &mut self,
        idx: u32,
        reason: CloseReason,
        emit: &mut impl FnMut(&Flow, CloseReason),
    ) {
        if let Some(slot) = self.slots.get(idx as usize)
            && slot.live
        {
            if !slot.lingering() {
                emit(&slot.flow, reason);
            }
            self.remove(idx);
        }
    }

    /// Emits every open record, in start-time order, and empties the table.
    pub fn flush(&mut self, reason: CloseReason, emit: &mut impl FnMut(&Flow, CloseReason)) {
        self.order.clear();
        let mut idx = self.queues.open.head;
        while let Some(slot) = self.slots.get(idx as usize) {
            self.order.push(idx);
            idx = slot.queue_links.next;
        }
        // Open records are queued by start time already; a stable sort keeps ties in arrival
        // order without allocating (sort_by_key on a sorted slice is linear).
        let slots = &self.slots;
        self.order
            .sort_unstable_by_key(|&i| (slots.get(i as usize).map_or(0, |s| s.flow.start_ns), i));
        for &idx in &self.order {
            if let Some(slot) = self.slots.get(idx as usize) {
                emit(&slot.flow, reason);
            }
        }
        self.stats.flushed += self.order.len() as u64;
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.lru = [EMPTY; TIMEOUT_CLASSES];
        self.queues = Queues::EMPTY;
        self.len = 0;
    }

    fn evict_lru(&mut self, emit: &mut impl FnMut(&Flow, CloseReason)) {
        // The least recently used flow is the oldest of the class heads.
        let oldest = self
            .lru
            .iter()
            .filter_map(|l| {
                self.slots
                    .get(l.head as usize)
                    .map(|s| (s.flow.last_ns, l.head))
            })
            .min();
        let Some((_, idx)) = oldest else {
            return;
        };
        if let Some(slot) = self.slots.get(idx as usize) {
            if !slot.lingering() {
                self.stats.evicted += 1;
            }
            self.close(idx, CloseReason::Evicted, emit);
        }
    }

    fn remove(&mut self, idx: u32) {
        self.unlink_lru(idx);
        self.unlink_queue(idx);
        if let Some(slot) = self.slots.get_mut(idx as usize) {
            slot.live = false;
            if let Ok(entry) = self.index.find_entry(slot.hash, |&i| i == idx) {
                entry.remove();
            }
            self.free.push(idx);
            self.len -= 1;
        }
    }

    fn link_lru(&mut self, idx: u32) {
        let Some(class) = self.slots.get(idx as usize).map(|s| s.class()) else {
            return;
        };
        let list = class.pick_mut(&mut self.lru);
        let tail = list.tail;
        if tail == NIL {
            list.head = idx;
        }
        list.tail = idx;
        if let Some(t) = self.slots.get_mut(tail as usize) {
            t.lru.next = idx;
        }
        if let Some(s) = self.slots.get_mut(idx as usize) {
            s.lru = Links {
                prev: tail,
                next: NIL,
            };
        }
    }

    fn unlink_lru(&mut self, idx: u32) {
        let Some((Links { prev, next }, class)) =
            self.slots.get(idx as usize).map(|s| (s.lru, s.class()))
        else {
            return;
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.lru.next = next,
            None => class.pick_mut(&mut self.lru).head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.lru.prev = prev,
            None => class.pick_mut(&mut self.lru).tail = prev,
        }
    }

    fn link_queue(&mut self, idx: u32, queue: Option<TimeoutClass>) {
        let tail = self.queues.get_mut(queue).tail;
        if let Some(s) = self.slots.get_mut(idx as usize) {
            s.queue = queue;
            s.queue_links = Links {
                prev: tail,
                next: NIL,
            };
        }
        match self.slots.get_mut(tail as usize) {
            Some(t) => t.queue_links.next = idx,
            None => self.queues.get_mut(queue).head = idx,
        }
        self.queues.get_mut(queue).tail = idx;
    }

    fn unlink_queue(&mut self, idx: u32) {
        let Some((Links { prev, next }, queue)) = self
            .slots
            .get(idx as usize)
            .map(|s| (s.queue_links, s.queue))
        else {
            return;
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.queue_links.next = next,
            None => self.queues.get_mut(queue).head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.queue_links.prev = prev,
            None => self.queues.get_mut(queue).tail = prev,
        }
    }
}
