//! The sensor's view of DNS: which name each answer address was given for, to which client and
//! when, in a table sized at start-up. Every peer in evidence, alerts and the report is shown with
//! the name that resolved it, and each connection can ask whether its host was handed its
//! remote address by a DNS answer before it connected (malware often connects to raw addresses).
//!
//! Full table: the oldest entry makes room (first in, first out: a ring over the slots), counted.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;

use hashbrown::HashMap;

/// Characters of a name kept per address (longer names are cut, marked by `~` at the end).
pub const NAME_LEN: usize = 64;

pub type Name = heapless::String<NAME_LEN>;

/// Copies a name into a fixed-size one, cutting it (with a trailing `~`) when too long.
pub fn short_name(name: &str) -> Name {
    let mut out = Name::new();
    if out.push_str(name).is_err() {
        for c in name.chars() {
            if out.len() + c.len_utf8() > NAME_LEN - 1 {
                break;
            }
            let _ = out.push(c);
        }
        let _ = out.push('~');
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub addr: IpAddr,
    pub name: Name,
    /// The client the answer went to.
    pub client: IpAddr,
    /// When the answer was seen (ns since the epoch).
    pub seen_ns: u64,
    pub ttl: u32,
}

/// Counters of the DNS view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DnsViewCounters {
    pub answers: u64,
    /// Entries pushed out by newer ones when the table was full.
    pub evicted: u64,
}

#[derive(Clone)]
pub struct DnsView {
    index: HashMap<IpAddr, usize>,
    slots: Vec<Option<Answer>>,
    /// The slot the next new address takes (the oldest once the ring is full).
    next: usize,
    pub counters: DnsViewCounters,
}

impl DnsView {
    /// A view of at most `capacity` addresses (at least 1); all memory is taken here.
    pub fn new(capacity: usize) -> DnsView {
        let capacity = capacity.max(1);
        DnsView {
            index: HashMap::with_capacity(capacity),
            slots: vec![None; capacity],
            next: 0,
            counters: DnsViewCounters::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// An answer: `addr` is `name`, told to `client` at `seen_ns`. An address already known keeps
    /// its slot and first name.
    pub fn insert(&mut self, addr: IpAddr, name: &str, client: IpAddr, seen_ns: u64, ttl: u32) {
        self.counters.answers += 1;
        let entry = Answer {
            addr,
            name: short_name(name),
            client,
            seen_ns,
            ttl,
        };
        if let Some(&i) = self.index.get(&addr) {
            // "Resolved before it connected" needs the earliest answer: the entry keeps the
            // first name and client, and the earliest time.
            if let Some(Some(old)) = self.slots.get_mut(i) {
                old.seen_ns = old.seen_ns.min(seen_ns);
            }
            return;
        }
        let i = self.next;
        self.next = (self.next + 1) % self.slots.len();
        if let Some(slot) = self.slots.get_mut(i) {
            if let Some(old) = slot.take() {
                self.index.remove(&old.addr);
                self.counters.evicted += 1;
            }
            *slot = Some(entry);
            self.index.insert(addr, i);
        }
    }

    /// A flow record's DNS answers, if it is a DNS response: each answer address is named, told to
    /// the flow's source when the response was seen. The detector and `botd flows --app` /
    /// `botd features` feed their views this one way, so the `proto` schema's PeerNamed is the same
    /// in the engine and in the trainer's CSV.
    pub fn observe(&mut self, flow: &crate::flow::Flow) {
        if let crate::flow::app::App::Dns(d) = &flow.app.app
            && d.response
        {
            let seen = if flow.rev.pkts > 0 {
                flow.rev.first_ns
            } else {
                flow.last_ns
            };
            let client = flow.src.to_ip();
            for a in &d.answers {
                self.insert(a.ip(), &d.qname, client, seen, a.ttl);
            }
        }
    }

    /// What is known of an address.
    pub fn get(&self, addr: IpAddr) -> Option<&Answer> {
        let &i = self.index.get(&addr)?;
        self.slots.get(i)?.as_ref()
    }

    /// The name an address was given for, if any.
    pub fn name(&self, addr: IpAddr) -> Option<&str> {
        self.get(addr).map(|a| a.name.as_str())
    }

    /// Whether a DNS answer named `addr` at or before `at_ns` (plus a second of slack for the
    /// capture's timestamps): any client's answer counts, since a home resolver or proxy may ask
    /// on the host's behalf.
    pub fn resolved_before(&self, addr: IpAddr, at_ns: u64) -> bool {
        self.get(addr)
            .is_some_and(|a| a.seen_ns <= at_ns.saturating_add(1_000_000_000))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn answers_are_found_and_the_oldest_makes_room() {
        const S: u64 = 1_000_000_000;
        let mut v = DnsView::new(2);
        v.insert(ip("1.1.1.1"), "one.example", ip("10.0.0.2"), 10 * S, 60);
        v.insert(ip("2.2.2.2"), "two.example", ip("10.0.0.2"), 20 * S, 60);
        assert_eq!(v.name(ip("1.1.1.1")), Some("one.example"));
        assert!(v.resolved_before(ip("2.2.2.2"), 20 * S));
        // A second of slack for timestamps, no more.
        assert!(v.resolved_before(ip("2.2.2.2"), 19 * S));
        assert!(!v.resolved_before(ip("2.2.2.2"), 18 * S));
        v.insert(ip("3.3.3.3"), "three.example", ip("10.0.0.2"), 30 * S, 60);
        assert_eq!(v.name(ip("1.1.1.1")), None);
        assert_eq!(v.name(ip("3.3.3.3")), Some("three.example"));
        assert_eq!((v.len(), v.counters.evicted), (2, 1));
    }

    #[test]
    fn an_address_keeps_its_earliest_answer() {
        let mut v = DnsView::new(4);
        v.insert(ip("1.1.1.1"), "a.example", ip("10.0.0.2"), 50, 60);
        v.insert(ip("1.1.1.1"), "a.example", ip("10.0.0.3"), 90, 60);
        assert!(v.resolved_before(ip("1.1.1.1"), 60));
        v.insert(ip("1.1.1.1"), "b.example", ip("10.0.0.2"), 5, 60);
        assert!(v.resolved_before(ip("1.1.1.1"), 5));
        assert_eq!(v.name(ip("1.1.1.1")), Some("a.example"));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn long_names_are_cut_and_marked() {
        let long = "x".repeat(200);
        let n = short_name(&long);
        assert_eq!(n.len(), NAME_LEN);
        assert!(n.ends_with('~'));
    }
}
