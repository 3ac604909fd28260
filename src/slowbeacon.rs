//! Beacons slower than a window. A C2 client that calls home every 10 minutes opens at most one
//! connection per 300 s window, so the per-window beacon rule never sees a series. This keeps the
//! last [`STARTS`] connection starts of each (home host, peer, port, protocol) across windows and
//! says, at a window close, which hosts hold a long regular series that is still going.
//!
//! Regular long-period series are common enough on a benign LAN (an IoT device reporting every
//! five minutes, a mail client polling), so a slow beacon is weak evidence: it needs a second
//! signal (a dynamic-DNS name, a model's word on the same peer, ...).
//!
//! Storage is fixed at start-up: at most `capacity` series; series silent for [`FORGET_NS`] are
//! forgotten at each window close, and a new series that finds the table full is not tracked
//! (counted).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;

use hashbrown::HashMap;

/// Connection starts kept per series (the latest).
pub const STARTS: usize = 12;
/// Connections a series needs before it can be called regular.
pub const MIN_CONNECTIONS: usize = 6;
/// The shortest median gap this rule judges (shorter beacons are the per-window rule's).
pub const MIN_GAP_NS: u64 = 60 * SEC;
/// The longest: beyond two hours a "series" is more likely coincidence than a timer.
pub const MAX_GAP_NS: u64 = 2 * 3600 * SEC;
/// Median absolute deviation of the gaps over the median gap, at most: a timer's jitter.
pub const MAX_SPREAD: f64 = 0.1;
/// Series silent this long are forgotten.
pub const FORGET_NS: u64 = 2 * MAX_GAP_NS;

const SEC: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub host: IpAddr,
    pub peer: IpAddr,
    pub port: u16,
    pub proto: u8,
}

#[derive(Clone, Copy, Debug)]
struct Series {
    /// Ring of the latest starts (`len` of them valid, `next` the slot to write).
    starts: [u64; STARTS],
    len: usize,
    next: usize,
    last_ns: u64,
    host_port: u16,
    /// Connections seen in all (the ring keeps the latest).
    seen: u64,
}

/// A slow series that fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowBeacon {
    pub key: Key,
    pub host_port: u16,
    pub connections: u64,
    pub gap_ns: u64,
    pub spread: f64,
}

pub struct SlowSeries {
    series: HashMap<Key, Series>,
    capacity: usize,
    /// Connections of new series not tracked because the table was full.
    pub dropped: u64,
}

impl SlowSeries {
    pub fn new(capacity: usize) -> SlowSeries {
        SlowSeries {
            series: HashMap::with_capacity(capacity),
            capacity,
            dropped: 0,
        }
    }

    /// A connection of `key` that started at `start_ns`. With overlapping windows a record comes
    /// once per window it falls in: a start already kept is not counted again.
    pub fn add(&mut self, key: Key, host_port: u16, start_ns: u64) {
        if !self.series.contains_key(&key) && self.series.len() >= self.capacity {
            self.dropped += 1;
            return;
        }
        let s = self.series.entry(key).or_insert(Series {
            starts: [0; STARTS],
            len: 0,
            next: 0,
            last_ns: start_ns,
            host_port,
            seen: 0,
        });
        let kept = s.starts.get(..s.len).unwrap_or(&[]);
        if kept.contains(&start_ns) {
            return;
        }
        if let Some(slot) = s.starts.get_mut(s.next) {
            *slot = start_ns;
        }
        s.next = (s.next + 1) % STARTS;
        s.len = (s.len + 1).min(STARTS);
        s.last_ns = s.last_ns.max(start_ns);
        s.host_port = host_port;
        s.seen += 1;
    }

    /// At the close of the window `start_ns..end_ns`: forgets the series silent for
    /// [`FORGET_NS`], and calls `fire` for every regular series with a connection in the window
    /// whose connections span more than the window (one inside it is the per-window rule's).
    pub fn close_window(&mut self, start_ns: u64, end_ns: u64, mut fire: impl FnMut(SlowBeacon)) {
        self.series
            .retain(|_, s| end_ns.saturating_sub(s.last_ns) < FORGET_NS);
        for (key, s) in &self.series {
            if s.len < MIN_CONNECTIONS || s.last_ns < start_ns || s.last_ns >= end_ns {
                continue;
            }
            let mut starts = s.starts;
            let Some(starts) = starts.get_mut(..s.len) else {
                continue;
            };
            starts.sort_unstable();
            let (Some(&first), Some(&last)) = (starts.first(), starts.last()) else {
                continue;
            };
            if last - first <= end_ns - start_ns {
                continue;
            }
            let mut gaps = [0u64; STARTS];
            for (g, w) in gaps.iter_mut().zip(starts.windows(2)) {
                if let [a, b] = w {
                    *g = b - a;
                }
            }
            let Some(gaps) = gaps.get_mut(..s.len - 1) else {
                continue;
            };
            gaps.sort_unstable();
            let gap = median(gaps);
            if !(MIN_GAP_NS as f64..=MAX_GAP_NS as f64).contains(&gap) {
                continue;
            }
            let mut devs = [0f64; STARTS];
            for (d, &g) in devs.iter_mut().zip(gaps.iter()) {
                *d = (g as f64 - gap).abs();
            }
            let Some(devs) = devs.get_mut(..s.len - 1) else {
                continue;
            };
            devs.sort_unstable_by(f64::total_cmp);
            let spread = median_f64(devs) / gap;
            if spread <= MAX_SPREAD {
                fire(SlowBeacon {
                    key: *key,
                    host_port: s.host_port,
                    connections: s.seen,
                    gap_ns: gap as u64,
                    spread,
                });
            }
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Median of sorted values.
fn median(v: &[u64]) -> f64 {
    let n = v.len();
    match (v.get(n.saturating_sub(1) / 2), v.get(n / 2)) {
        (Some(&a), Some(&b)) => (a as f64 + b as f64) / 2.0,
        _ => 0.0,
    }
}

fn median_f64(v: &[f64]) -> f64 {
    let n = v.len();
    match (v.get(n.saturating_sub(1) / 2), v.get(n / 2)) {
        (Some(&a), Some(&b)) => (a + b) / 2.0,
        _ => 0.0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(port: u16) -> Key {
        Key {
            host: "172.16.253.132".parse().unwrap(),
            peer: "216.176.190.44".parse().unwrap(),
            port,
            proto: 6,
        }
    }

    fn fired(s: &mut SlowSeries, start: u64, end: u64) -> Vec<SlowBeacon> {
        let mut out = Vec::new();
        s.close_window(start * SEC, end * SEC, |b| out.push(b));
        out
    }

    #[test]
    fn a_ten_minute_timer_fires_once_it_has_six_connections_and_stops_when_it_stops() {
        let mut s = SlowSeries::new(16);
        // Every 600 s with a second of jitter; each record comes twice (overlapping windows).
        for i in 0..5u64 {
            let t = (1000 + i * 600 + i % 2) * SEC;
            s.add(key(1076), 50_000, t);
            s.add(key(1076), 50_000, t);
        }
        assert!(fired(&mut s, 3400, 3700).is_empty(), "five connections");
        s.add(key(1076), 50_001, (1000 + 5 * 600) * SEC);
        let b = fired(&mut s, 3850, 4150);
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].connections, b[0].host_port), (6, 50_001));
        assert!((599..=601).contains(&(b[0].gap_ns / SEC)), "{b:?}");
        // No connection in a later window: nothing fires, and after FORGET_NS it is forgotten.
        assert!(fired(&mut s, 4300, 4600).is_empty());
        assert!(fired(&mut s, 4000 + FORGET_NS / SEC, 4300 + FORGET_NS / SEC).is_empty());
        assert!(s.is_empty());
    }

    #[test]
    fn irregular_fast_or_short_series_do_not_fire() {
        let mut s = SlowSeries::new(16);
        // Irregular: gaps 100..1600 s.
        let mut t = 0;
        for i in 0..8u64 {
            t += (100 + i * i * 30) * SEC;
            s.add(key(1), 1, t);
        }
        // Fast: every 20 s (the per-window rule's), all within one window.
        for i in 0..10u64 {
            s.add(key(2), 1, t - 250 * SEC + i * 20 * SEC);
        }
        assert!(fired(&mut s, t / SEC - 290, t / SEC + 10).is_empty());
    }

    #[test]
    fn a_full_table_counts_what_it_does_not_track() {
        let mut s = SlowSeries::new(2);
        s.add(key(1), 1, 1);
        s.add(key(2), 1, 1);
        s.add(key(3), 1, 1);
        s.add(key(1), 1, 2);
        assert_eq!((s.len(), s.dropped), (2, 1));
    }
}
