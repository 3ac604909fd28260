//! The fixed-capacity flow table.
//!
//! Storage is sized once: a slab of at most `capacity` flows and an index of at least twice that
//! many entries, so no insert ever grows it (no allocation per packet, and a load factor that keeps
//! probes short when the table is full). The index ([`Index`]) is open addressing with linear
//! probing over 8-byte entries (32 bits of the key's hash and a slot number), so a lookup reads
//! one cache line of the index and then the slot; on a table far larger than the caches, as with
//! many concurrent flows, those two misses are most of a packet's cost. Keys are hashed with
//! hashbrown's default hasher (foldhash), seeded randomly per process: nobody can precompute
//! colliding flow keys. The lists' links live beside the slab (`places`), not in it, so moving a
//! flow in its lists does not touch its neighbours' large slots.
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
//! When a flow is evicted, the next victim's slot and index entry are prefetched: evictions come
//! every few packets when the table is full, and the victim is by definition the coldest flow.
//!
//! No index here can panic: slots are reached with `get`/`get_mut` (a stale or `NIL` link finds
//! nothing), and the per-class lists through [`TimeoutClass::pick`] (in range by construction).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::{CloseReason, Flow, FlowKey, Nanos, TIMEOUT_CLASSES, TimeoutClass, prefetch};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Default)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

/// A flow, on cache-line boundaries: a packet touches as few lines as its fields span.
#[derive(Clone)]
#[repr(align(64))]
struct Slot {
    flow: Flow,
}

/// A slot's places in the lists, kept apart from the slots: moving a flow in its lists then
/// touches this small array (40 bytes a slot) rather than the large slots of its neighbours.
#[derive(Clone, Copy)]
struct Place {
    lru: Links,
    queue_links: Links,
    /// The flow's last packet (`flow.last_ns`), for choosing an eviction victim among the LRU
    /// heads without reading their slots.
    last_ns: Nanos,
    /// For a lingering flow, when it is forgotten.
    linger_until: Nanos,
    /// The index tag of the flow's key (the low 32 bits of its hash).
    tag: u32,
    /// The slot holds a flow (free slots wait in `free`).
    live: bool,
    /// The flow's timeout class (its LRU list).
    class: TimeoutClass,
    /// The deadline queue the slot is in: `None` for open records, the class for lingering flows.
    queue: Option<TimeoutClass>,
}

impl Place {
    fn lingering(&self) -> bool {
        self.queue.is_some()
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

/// Asks the kernel to back a table's arrays with huge pages where it can (Linux transparent
/// huge pages in `madvise` mode): lookups land all over them, and with 4 KiB pages most would
/// also miss the TLB. Only advice; nothing is allocated or touched here.
fn advise_huge<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = v.as_ptr() as usize;
        let end = start.saturating_add(v.capacity().saturating_mul(std::mem::size_of::<T>()));
        let (from, to) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
        // Below two huge pages' worth there is no whole aligned huge page to gain.
        if to > from && to - from >= 4 << 20 {
            // SAFETY: the range lies within the vector's own allocation (page-aligned inward);
            // MADV_HUGEPAGE changes neither contents nor validity of any byte, only how the
            // kernel may back the range. An error (no THP support) leaves the memory as it was.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Starts loading every cache line of a slot.
#[inline(always)]
fn prefetch_slot(slot: &Slot) {
    let start: *const Slot = slot;
    for line in 0..std::mem::size_of::<Slot>().div_ceil(64) {
        prefetch(start.cast::<u8>().wrapping_add(line * 64));
    }
}

/// The key index: open addressing with linear probing over `u64` entries, each the low 32 bits
/// of a key's hash (its tag: the home bucket, and a filter before the key itself is compared)
/// above the slot number plus one (0 is an empty entry). At most half full, so probe runs are
/// short; a removal shifts the entries behind it back (no tombstones), so they stay short.
struct LinearIndex {
    entries: Vec<u64>,
    mask: usize,
}

impl LinearIndex {
    fn new(capacity: usize) -> LinearIndex {
        let n = capacity.saturating_mul(2).next_power_of_two().max(8);
        LinearIndex {
            entries: vec![0; n],
            mask: n - 1,
        }
    }

    #[inline(always)]
    fn home(&self, tag: u32) -> usize {
        tag as usize & self.mask
    }

    #[inline(always)]
    fn entry(tag: u32, idx: u32) -> u64 {
        u64::from(tag) << 32 | u64::from(idx.wrapping_add(1))
    }

    /// The slot whose key `eq` accepts among those with this tag.
    #[inline(always)]
    fn find(&self, tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut pos = self.home(tag);
        // Bounded: the index is never more than half full, so an empty entry ends every run.
        loop {
            let e = *self.entries.get(pos)?;
            if e == 0 {
                return None;
            }
            if (e >> 32) as u32 == tag {
                let idx = (e as u32).wrapping_sub(1);
                if eq(idx) {
                    return Some(idx);
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    fn insert(&mut self, tag: u32, idx: u32) {
        let mut pos = self.home(tag);
        while let Some(e) = self.entries.get_mut(pos) {
            if *e == 0 {
                *e = LinearIndex::entry(tag, idx);
                return;
            }
            pos = (pos + 1) & self.mask;
        }
    }

    fn remove(&mut self, tag: u32, idx: u32) {
        let target = LinearIndex::entry(tag, idx);
        let mut hole = self.home(tag);
        loop {
            match self.entries.get(hole) {
                Some(&e) if e == target => break,
                Some(&0) | None => return,
                Some(_) => hole = (hole + 1) & self.mask,
            }
        }
        // Backward shift: each later entry of the run that may sit at the hole (its home is not
        // between the hole and itself) moves there, and its place becomes the hole.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let e = match self.entries.get(j) {
                Some(&0) | None => break,
                Some(&e) => e,
            };
            let home = self.home((e >> 32) as u32);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                if let Some(h) = self.entries.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.entries.get_mut(hole) {
            *h = 0;
        }
    }

    fn clear(&mut self) {
        self.entries.fill(0);
    }

    #[inline(always)]
    fn prefetch(&self, tag: u32) {
        if let Some(e) = self.entries.get(self.home(tag)) {
            prefetch(e);
        }
    }
}

/// The key index on `hashbrown`'s `HashTable` (SwissTable groups), reserved for twice the
/// capacity so it never grows. Entries are [`LinearIndex::entry`] values, so a rehash in place
/// (after many removals left tombstones) recomputes each hash from the entry alone.
///
/// hashbrown has no prefetch, and with many concurrent flows its control bytes and buckets are
/// a cache miss per lookup (a second one for an evicted flow's removal). Its layout is the
/// SwissTable one (hashbrown's `raw.rs`): bucket `i` lies `(i + 1) * 8` bytes below the control
/// bytes, and a lookup starts at bucket `hash & (buckets - 1)`. So the address of the control
/// bytes is learnt once from a real bucket (`find_bucket_index` and `get_bucket`), and
/// [`HashbrownIndex::prefetch`] names a lookup's first group from it. A prefetch is only a hint:
/// were the layout to change, lookups would stay right and only lose the prefetch (a test checks
/// the layout, so that would not go unseen).
struct HashbrownIndex {
    table: HashTable<u64>,
    /// Address of hashbrown's control bytes (0 until the first insert); the allocation never
    /// moves, as the table never grows.
    ctrl: usize,
}

impl HashbrownIndex {
    fn new(capacity: usize) -> HashbrownIndex {
        HashbrownIndex {
            table: HashTable::with_capacity(capacity.saturating_mul(2).max(8)),
            ctrl: 0,
        }
    }

    /// The control bytes' address, from the bucket holding `entry`.
    fn learn_ctrl(&mut self, hash: u64, entry: u64) {
        let Some(i) = self.table.find_bucket_index(hash, |&e| e == entry) else {
            return;
        };
        if let Some(r) = self.table.get_bucket(i) {
            let bucket = std::ptr::from_ref(r) as usize;
            self.ctrl = bucket.wrapping_add((i + 1) * std::mem::size_of::<u64>());
        }
    }

    /// Starts loading the control group and the buckets a lookup of `tag` reads first.
    #[inline(always)]
    fn prefetch(&self, tag: u32) {
        if self.ctrl == 0 {
            return;
        }
        let mask = self.table.num_buckets().wrapping_sub(1);
        let pos = HashbrownIndex::spread(tag) as usize & mask;
        let bucket = self
            .ctrl
            .wrapping_sub((pos + 1) * std::mem::size_of::<u64>());
        prefetch(std::ptr::without_provenance::<u8>(
            self.ctrl.wrapping_add(pos),
        ));
        prefetch(std::ptr::without_provenance::<u8>(bucket));
    }

    /// The 64-bit hash hashbrown wants from a 32-bit tag: its bucket from the low bits, its
    /// 7-bit control byte from the top bits.
    #[inline(always)]
    fn spread(tag: u32) -> u64 {
        u64::from(tag) << 32 | u64::from(tag)
    }

    #[inline(always)]
    fn rehash(e: &u64) -> u64 {
        HashbrownIndex::spread((e >> 32) as u32)
    }

    #[inline(always)]
    fn find(&self, tag: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.table
            .find(HashbrownIndex::spread(tag), |&e| {
                (e >> 32) as u32 == tag && eq((e as u32).wrapping_sub(1))
            })
            .map(|&e| (e as u32).wrapping_sub(1))
    }

    fn insert(&mut self, tag: u32, idx: u32) {
        let (hash, entry) = (HashbrownIndex::spread(tag), LinearIndex::entry(tag, idx));
        self.table
            .insert_unique(hash, entry, HashbrownIndex::rehash);
        if self.ctrl == 0 {
            self.learn_ctrl(hash, entry);
        }
    }

    fn remove(&mut self, tag: u32, idx: u32) {
        let target = LinearIndex::entry(tag, idx);
        if let Ok(entry) = self
            .table
            .find_entry(HashbrownIndex::spread(tag), |&e| e == target)
        {
            entry.remove();
        }
    }

    fn clear(&mut self) {
        self.table.clear();
    }
}

/// Which index finds a key's slot: `hashbrown` (the default) or botd's own linear-probing
/// index, which a lookup can prefetch (README, Performance: how much that buys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    #[default]
    Hashbrown,
    Linear,
}

enum Index {
    Hashbrown(HashbrownIndex),
    Linear(LinearIndex),
}

impl Index {
    fn new(kind: IndexKind, capacity: usize) -> Index {
        match kind {
            IndexKind::Hashbrown => Index::Hashbrown(HashbrownIndex::new(capacity)),
            IndexKind::Linear => Index::Linear(LinearIndex::new(capacity)),
        }
    }

    #[inline(always)]
    fn find(&self, tag: u32, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        match self {
            Index::Hashbrown(i) => i.find(tag, eq),
            Index::Linear(i) => i.find(tag, eq),
        }
    }

    #[inline(always)]
    fn insert(&mut self, tag: u32, idx: u32) {
        match self {
            Index::Hashbrown(i) => i.insert(tag, idx),
            Index::Linear(i) => i.insert(tag, idx),
        }
    }

    #[inline(always)]
    fn remove(&mut self, tag: u32, idx: u32) {
        match self {
            Index::Hashbrown(i) => i.remove(tag, idx),
            Index::Linear(i) => i.remove(tag, idx),
        }
    }

    fn clear(&mut self) {
        match self {
            Index::Hashbrown(i) => i.clear(),
            Index::Linear(i) => i.clear(),
        }
    }

    #[inline(always)]
    fn prefetch(&self, tag: u32) {
        match self {
            Index::Hashbrown(i) => i.prefetch(tag),
            Index::Linear(i) => i.prefetch(tag),
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
    index: Index,
    hasher: DefaultHashBuilder,
    slots: Vec<Slot>,
    /// Each slot's list links, same indices as `slots`.
    places: Vec<Place>,
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
        FlowTable::with_hasher(
            capacity,
            DefaultHashBuilder::default(),
            IndexKind::default(),
        )
    }

    /// A table hashing keys with `hasher` (tables sharing one hash a key once for all).
    pub fn with_hasher(capacity: usize, hasher: DefaultHashBuilder, index: IndexKind) -> FlowTable {
        let capacity = capacity.clamp(1, NIL as usize - 1);
        // The slab reserves its memory but only touches pages as flows arrive, so RSS follows
        // the flows really held (in steps of a huge page, where the kernel gives those).
        let slots = Vec::with_capacity(capacity);
        advise_huge(&slots);
        FlowTable {
            index: Index::new(index, capacity),
            hasher,
            slots,
            places: Vec::with_capacity(capacity),
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
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64) -> Lookup<'_> {
        let slots = &self.slots;
        let found = self.index.find(hash as u32, |i| {
            slots.get(i as usize).is_some_and(|s| s.flow.key == *key)
        });
        let Some(idx) = found else {
            return Lookup::Absent;
        };
        let lingering = self.place(idx).is_some_and(Place::lingering);
        match self.slots.get_mut(idx as usize) {
            Some(slot) if lingering => Lookup::Lingering(idx, &mut slot.flow),
            Some(slot) => Lookup::Open(idx, &mut slot.flow),
            None => Lookup::Absent,
        }
    }

    /// Starts loading the index entry a lookup of this hash will read first.
    #[inline]
    pub fn prefetch_index(&self, hash: u64) {
        self.index.prefetch(hash as u32);
    }

    /// Starts loading the flow a lookup of this hash will most likely find, if the table holds
    /// one now (its index entry should be in cache already: see [`FlowTable::prefetch_index`]).
    /// The first flow with the hash's tag: comparing keys would wait for the very slot this is
    /// meant to fetch ahead.
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) {
        let Some(idx) = self.index.find(hash as u32, |_| true) else {
            return;
        };
        if let Some(slot) = self.slots.get(idx as usize) {
            prefetch_slot(slot);
        }
        if let Some(place) = self.place(idx) {
            prefetch(place);
        }
    }

    #[inline]
    fn place(&self, idx: u32) -> Option<&Place> {
        self.places.get(idx as usize)
    }

    #[inline]
    fn place_mut(&mut self, idx: u32) -> Option<&mut Place> {
        self.places.get_mut(idx as usize)
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
        let place = Place {
            lru: UNLINKED,
            queue_links: UNLINKED,
            last_ns: flow.last_ns,
            linger_until: 0,
            tag: hash as u32,
            live: true,
            class: TimeoutClass::of(flow.proto),
            queue: None,
        };
        let slot = Slot { flow };
        let idx = match self.free.pop() {
            Some(idx) => {
                if let Some(s) = self.slots.get_mut(idx as usize) {
                    *s = slot;
                }
                if let Some(p) = self.places.get_mut(idx as usize) {
                    *p = place;
                }
                idx
            }
            None => {
                self.slots.push(slot);
                self.places.push(place);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash as u32, idx);
        self.link_lru(idx);
        self.link_queue(idx, None);
        self.len += 1;
        self.stats.created += 1;
        self.stats.high_water = self.stats.high_water.max(self.len as u64);
        idx
    }

    /// Marks a flow as just used (moves it to the LRU tail); a lingering flow whose record the
    /// caller has just restarted with [`Flow::continue_at`] goes back to the open queue.
    #[inline]
    pub fn touch(&mut self, idx: u32) {
        let last_ns = self.slots.get(idx as usize).map_or(0, |s| s.flow.last_ns);
        let Some(place) = self.place_mut(idx) else {
            return;
        };
        place.last_ns = last_ns;
        let place = *place;
        // Already the most recent: nothing moves (common in bursts of one flow).
        if place.lru.next != NIL {
            self.unlink_lru(idx);
            self.link_lru(idx);
        }
        if place.lingering() {
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
                if self.place(head).is_some_and(Place::lingering) {
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
            let Some(class) = self.place(head).map(|p| p.class) else {
                break;
            };
            self.unlink_queue(head);
            self.link_queue(head, Some(class));
            if let Some(p) = self.place_mut(head) {
                p.linger_until = now.saturating_add(*class.pick(linger));
            }
        }
        for class in TimeoutClass::ALL {
            loop {
                let head = class.pick(&self.queues.lingering).head;
                let Some(place) = self.place(head) else {
                    break;
                };
                if place.linger_until > now {
                    break;
                }
                self.stats.expired += 1;
                self.remove(head);
            }
        }
    }

    /// The earliest time at which [`FlowTable::expire`] with these timeouts would do anything
    /// (`Nanos::MAX` for an empty table): the earliest deadline at the head of a queue.
    pub fn next_due(
        &self,
        status_interval: Nanos,
        idle: &[Option<Nanos>; TIMEOUT_CLASSES],
    ) -> Nanos {
        let mut due = Nanos::MAX;
        for class in TimeoutClass::ALL {
            if let Some(timeout) = *class.pick(idle)
                && let Some(slot) = self.slots.get(class.pick(&self.lru).head as usize)
            {
                due = due.min(slot.flow.last_ns.saturating_add(timeout));
            }
            if let Some(place) = self.place(class.pick(&self.queues.lingering).head) {
                due = due.min(place.linger_until);
            }
        }
        if let Some(slot) = self.slots.get(self.queues.open.head as usize) {
            due = due.min(slot.flow.start_ns.saturating_add(status_interval));
        }
        due
    }

    /// Emits an open record and removes its flow (TCP: a SYN after a reset starts a new record).
    pub fn close(
        &mut self,
        idx: u32,
        reason: CloseReason,
        emit: &mut impl FnMut(&Flow, CloseReason),
    ) {
        let Some(&Place { live, .. }) = self.place(idx) else {
            return;
        };
        let lingering = self.place(idx).is_some_and(Place::lingering);
        if let Some(slot) = self.slots.get(idx as usize)
            && live
        {
            if !lingering {
                emit(&slot.flow, reason);
            }
            self.remove(idx);
        }
    }

    /// Emits every open record, in start-time order, and empties the table.
    pub fn flush(&mut self, reason: CloseReason, emit: &mut impl FnMut(&Flow, CloseReason)) {
        self.order.clear();
        let mut idx = self.queues.open.head;
        while let Some(place) = self.places.get(idx as usize) {
            self.order.push(idx);
            idx = place.queue_links.next;
        }
        // Open records are queued by start time already; a stable sort keeps ties in arrival
        // order without allocating (sort_by_key on a sorted slice is linear).
        let slots = &self.slots;
        self.order
            .sort_unstable_by_key(|&i| (slots.get(i as usize).map_or(0, |s| s.flow.start_ns), i));
        for (i, &idx) in self.order.iter().enumerate() {
            // The records go out in start order, scattered over the slab: load a few ahead.
            if let Some(ahead) = self
                .order
                .get(i + 4)
                .and_then(|&j| self.slots.get(j as usize))
            {
                prefetch_slot(ahead);
            }
            if let Some(slot) = self.slots.get(idx as usize) {
                emit(&slot.flow, reason);
            }
        }
        self.stats.flushed += self.order.len() as u64;
        self.index.clear();
        self.slots.clear();
        self.places.clear();
        self.free.clear();
        self.lru = [EMPTY; TIMEOUT_CLASSES];
        self.queues = Queues::EMPTY;
        self.len = 0;
    }

    /// The least recently used flow: the oldest of the class heads (ties to the lowest slot).
    fn lru_victim(&self) -> Option<u32> {
        self.lru
            .iter()
            .filter_map(|l| self.place(l.head).map(|p| (p.last_ns, l.head)))
            .min()
            .map(|(_, idx)| idx)
    }

    fn evict_lru(&mut self, emit: &mut impl FnMut(&Flow, CloseReason)) {
        let Some(idx) = self.lru_victim() else {
            return;
        };
        if !self.place(idx).is_some_and(Place::lingering) {
            self.stats.evicted += 1;
        }
        self.close(idx, CloseReason::Evicted, emit);
        // The next victim, unless a packet touches it first: its record will be read to be
        // emitted and its index entry removed, both long out of cache by then.
        if let Some(next) = self.lru_victim()
            && let (Some(slot), Some(place)) = (self.slots.get(next as usize), self.place(next))
        {
            prefetch_slot(slot);
            self.index.prefetch(place.tag);
        }
    }

    fn remove(&mut self, idx: u32) {
        self.unlink_lru(idx);
        self.unlink_queue(idx);
        let Some(place) = self.place_mut(idx) else {
            return;
        };
        place.live = false;
        let tag = place.tag;
        self.index.remove(tag, idx);
        self.free.push(idx);
        self.len -= 1;
    }

    fn link_lru(&mut self, idx: u32) {
        let Some(class) = self.place(idx).map(|p| p.class) else {
            return;
        };
        let list = class.pick_mut(&mut self.lru);
        let tail = list.tail;
        if tail == NIL {
            list.head = idx;
        }
        list.tail = idx;
        if let Some(t) = self.place_mut(tail) {
            t.lru.next = idx;
        }
        if let Some(p) = self.place_mut(idx) {
            p.lru = Links {
                prev: tail,
                next: NIL,
            };
        }
    }

    fn unlink_lru(&mut self, idx: u32) {
        let Some(&Place {
            lru: Links { prev, next },
            class,
            ..
        }) = self.place(idx)
        else {
            return;
        };
        match self.place_mut(prev) {
            Some(p) => p.lru.next = next,
            None => class.pick_mut(&mut self.lru).head = next,
        }
        match self.place_mut(next) {
            Some(n) => n.lru.prev = prev,
            None => class.pick_mut(&mut self.lru).tail = prev,
        }
    }

    fn link_queue(&mut self, idx: u32, queue: Option<TimeoutClass>) {
        let tail = self.queues.get_mut(queue).tail;
        if let Some(p) = self.place_mut(idx) {
            p.queue = queue;
            p.queue_links = Links {
                prev: tail,
                next: NIL,
            };
        }
        match self.place_mut(tail) {
            Some(t) => t.queue_links.next = idx,
            None => self.queues.get_mut(queue).head = idx,
        }
        self.queues.get_mut(queue).tail = idx;
    }

    fn unlink_queue(&mut self, idx: u32) {
        let Some(&Place {
            queue_links: Links { prev, next },
            queue,
            ..
        }) = self.place(idx)
        else {
            return;
        };
        match self.place_mut(prev) {
            Some(p) => p.queue_links.next = next,
            None => self.queues.get_mut(queue).head = next,
        }
        match self.place_mut(next) {
            Some(n) => n.queue_links.prev = prev,
            None => self.queues.get_mut(queue).tail = prev,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The prefetch of the hashbrown index names the memory a lookup reads: every bucket lies
    /// where the learnt control-byte address says, and entries sit at (or just after) the
    /// bucket a lookup starts from. Fails if hashbrown's layout changes under us.
    #[test]
    fn hashbrown_prefetch_names_the_buckets_lookups_read() {
        let mut index = HashbrownIndex::new(4096);
        assert_eq!(index.ctrl, 0);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut entries = Vec::new();
        for idx in 0..4096u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let tag = seed as u32;
            index.insert(tag, idx);
            entries.push((tag, idx));
        }
        assert_ne!(index.ctrl, 0);
        let mask = index.table.num_buckets() - 1;
        let mut near = 0;
        for &(tag, idx) in &entries {
            let entry = LinearIndex::entry(tag, idx);
            let hash = HashbrownIndex::spread(tag);
            let i = index
                .table
                .find_bucket_index(hash, |&e| e == entry)
                .unwrap();
            let at = std::ptr::from_ref(index.table.get_bucket(i).unwrap()) as usize;
            assert_eq!(at, index.ctrl - (i + 1) * 8, "bucket {i}");
            let start = hash as usize & mask;
            if i.wrapping_sub(start) & mask < 16 {
                near += 1;
            }
        }
        // Half full: nearly every entry is in the first group probed.
        assert!(
            near * 10 > entries.len() * 9,
            "{near} of {} near",
            entries.len()
        );
    }

    /// The index against a map, with tags crowded into a few home buckets (long runs that wrap
    /// around the end, so that backward shifting is exercised), across inserts and removals.
    #[test]
    fn index_matches_a_map() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for capacity in [1usize, 3, 8, 50] {
            let mut index = LinearIndex::new(capacity);
            let n = index.entries.len() as u32;
            let mut model: HashMap<u32, u32> = HashMap::new();
            for _ in 0..20_000 {
                let idx = (rnd() % capacity as u64) as u32;
                // Homes near the end of the array wrap runs around to the start.
                let tag = (((rnd() % 4) as u32 + n - 2) % n) | (((rnd() % 3) as u32) << 16);
                match model.get(&idx).copied() {
                    Some(t) => {
                        index.remove(t, idx);
                        model.remove(&idx);
                    }
                    None if model.len() < capacity => {
                        index.insert(tag, idx);
                        model.insert(idx, tag);
                    }
                    None => {}
                }
                for (&i, &t) in &model {
                    assert_eq!(index.find(t, |j| j == i), Some(i), "slot {i} tag {t:#x}");
                }
                let live = index.entries.iter().filter(|&&e| e != 0).count();
                assert_eq!(live, model.len());
            }
        }
    }
}
