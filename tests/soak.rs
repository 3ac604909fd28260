//! Thirty days on one boot, in virtual time: the live loop (in process, the default
//! configuration) fed the real LAN hour (`pathspider/real.pcap`, a slice of it per hour) tiled
//! over 30 days with address churn, then an infection planted on day 29.
//!
//! Churn, by rewriting the home side of each frame as it is replayed (no checksum is fixed:
//! botd checks none):
//! * residents (every home host but the busiest) keep their IPv4 address and speak to the
//!   outside half over IPv6 (the frame translated), from a privacy address that changes every
//!   day; each day a neighbour advertisement from the device's MAC announces it (as the device
//!   would);
//! * the busiest home host, which makes nearly all of the hour's connections, is a stream of
//!   guests: each of its connections comes from its own IPv6 address of the hour (its other
//!   IPv4 frames from an address of the hour in 10.64/16). ~1,600 new addresses an hour, over a
//!   million in all (the figure).
//!
//! Asserted: the host table never holds more than `max_hosts`; every host seen was either tracked
//! or counted as refused (none is); the allocator's live bytes of the loop (a counting
//! allocator, counting only what the loop allocates and frees) do not grow after the first day;
//! the planted camera turns red. The figures are printed for the README.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use botd::alert::Level;
use botd::capture::FileReader;
use botd::config::Config;
use botd::live::LiveLoop;

// ------------------------------------------------------------------------------------------
// Live bytes allocated by the loop: only while `IN_LOOP` is set on this thread, so the test's
// own frames and sets do not count.

struct Counting;

thread_local! {
    static IN_LOOP: Cell<bool> = const { Cell::new(false) };
}

static LIVE: AtomicI64 = AtomicI64::new(0);

fn in_loop() -> bool {
    IN_LOOP.try_with(|c| c.get()).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_loop() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if in_loop() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if in_loop() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_loop() {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with the loop's allocations counted.
fn counted<T>(f: impl FnOnce() -> T) -> T {
    IN_LOOP.with(|c| c.set(true));
    let out = f();
    IN_LOOP.with(|c| c.set(false));
    out
}

fn live_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

// ------------------------------------------------------------------------------------------

const SEC: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SEC;
const DAY: u64 = 24 * HOUR;
const DAYS: u64 = 30;
/// Minutes of the real hour replayed per virtual hour (a sliding slice, so every part is used).
const SLICE_MIN: u64 = 21;
/// 2026-01-01T00:00:00Z, the first virtual day.
const EPOCH: u64 = 1_767_225_600 * SEC;
/// Days without guests (only the residents at home): the guests' addresses expire.
const HOLIDAY: std::ops::RangeInclusive<u64> = 21..=23;
const HOME6: [u16; 4] = [0x2001, 0x0db8, 0x0001, 0];
const CAMERA: [u8; 4] = [10, 64, 200, 66];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Frames of a capture with their offset from its first frame.
fn frames(path: &Path) -> Vec<(u64, Vec<u8>, u32)> {
    let mut r = FileReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut first = None;
    while let Some(f) = r.next_frame().unwrap_or_else(|e| panic!("{e}")) {
        let t0 = *first.get_or_insert(f.ts_ns);
        out.push((f.ts_ns.saturating_sub(t0), f.data.to_vec(), f.orig_len));
    }
    out
}

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn is_home4(a: &[u8]) -> bool {
    a.len() == 4 && a[0] == 10 && a[1] == 64
}

fn v4key(a: &[u8]) -> u64 {
    u64::from(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
}

/// A home IPv6 address with this interface identifier.
fn home6(iid: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    for (i, w) in HOME6.iter().enumerate() {
        a[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    // Never the all-zero (subnet-router anycast) identifier.
    a[8..].copy_from_slice(&(iid | 1 << 62).to_be_bytes());
    a
}

/// An outside IPv6 address standing for an outside IPv4 one.
fn remote6(v4: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff]);
    a[12..].copy_from_slice(v4);
    a
}

struct Churn {
    /// The residents' IPv4 addresses and MACs.
    residents: Vec<([u8; 4], [u8; 6])>,
    /// Every home address the loop was given (to count them).
    seen: HashSet<IpAddr>,
}

enum Side {
    Keep,
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Churn {
    fn resident(&self, a: &[u8]) -> Option<usize> {
        self.residents.iter().position(|(r, _)| r[..] == *a)
    }

    fn privacy(i: usize, day: u64) -> [u8; 16] {
        home6(mix(1 << 63 | (i as u64) << 32 | day))
    }

    /// The home end `a` (port `port`) of a frame of the hour: what it becomes.
    fn home_side(&self, a: &[u8], port: u16, hour: u64, v6: bool) -> Side {
        if let Some(i) = self.resident(a) {
            if v6 {
                return Side::V6(Self::privacy(i, hour / 24));
            }
            return Side::Keep;
        }
        if v6 {
            return Side::V6(home6(mix(v4key(a) | u64::from(port) << 32 | hour << 48)));
        }
        // An IPv4 guest keeps its lease for the hour.
        let h = mix(v4key(a) ^ hour << 32);
        Side::V4([10, 64, (h >> 8) as u8, (h as u8).max(2)])
    }

    /// Rewrites one frame of the real capture for `hour` into `out`; the new wire length.
    fn rewrite(&mut self, frame: &[u8], wire: u32, hour: u64, out: &mut Vec<u8>) -> u32 {
        out.clear();
        out.extend_from_slice(frame);
        if frame.len() < 14 {
            return wire;
        }
        match [frame[12], frame[13]] {
            [0x08, 0x06] if frame.len() >= 42 => {
                // ARP: sender and target protocol addresses.
                for off in [28, 38] {
                    if is_home4(&frame[off..off + 4])
                        && let Side::V4(n) = self.home_side(&frame[off..off + 4], 0, hour, false)
                    {
                        out[off..off + 4].copy_from_slice(&n);
                    }
                }
                self.note4(&out[28..32]);
                wire
            }
            [0x08, 0x00] if frame.len() >= 34 => self.rewrite_ip4(frame, wire, hour, out),
            _ => wire,
        }
    }

    /// Whether a frame of the real capture is the guests' (from or to the busiest host).
    fn guests(&self, f: &[u8]) -> bool {
        let guest = |a: &[u8]| is_home4(a) && self.resident(a).is_none();
        match f.get(12..14) {
            Some([8, 0]) if f.len() >= 34 => guest(&f[26..30]) || guest(&f[30..34]),
            Some([8, 6]) if f.len() >= 42 => guest(&f[28..32]),
            _ => false,
        }
    }

    fn note4(&mut self, a: &[u8]) {
        if is_home4(a) {
            self.seen
                .insert(IpAddr::V4([a[0], a[1], a[2], a[3]].into()));
        }
    }

    fn rewrite_ip4(&mut self, frame: &[u8], wire: u32, hour: u64, out: &mut Vec<u8>) -> u32 {
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let proto = frame[23];
        let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let fragment = u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0;
        let l4 = 14 + ihl;
        let ports = (proto == 6 || proto == 17) && frame.len() >= l4 + 4 && !fragment;
        let (sport, dport) = if ports {
            (
                u16::from_be_bytes([frame[l4], frame[l4 + 1]]),
                u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]),
            )
        } else {
            (0, 0)
        };
        let (src, dst) = (&frame[26..30], &frame[30..34]);
        // A guest's connections (whole TCP/UDP frames) are IPv6; half of a resident's to the
        // outside too (chosen by the ports, the same both ways).
        let guest = |a: &[u8]| is_home4(a) && self.resident(a).is_none();
        let outside = !is_home4(src) || !is_home4(dst);
        let v6 = ports
            && frame.len() >= 14 + total
            && (guest(src) || guest(dst) || (outside && mix(u64::from(sport ^ dport)) & 1 == 0));
        let s = if is_home4(src) {
            self.home_side(src, sport, hour, v6)
        } else {
            Side::Keep
        };
        let d = if is_home4(dst) {
            self.home_side(dst, dport, hour, v6)
        } else {
            Side::Keep
        };
        if matches!(s, Side::V6(_)) || matches!(d, Side::V6(_)) {
            let end = (14 + total).min(frame.len());
            let payload = &frame[l4..end];
            let a6 = |side: Side, v4: &[u8]| match side {
                Side::V6(a) => a,
                _ => remote6(v4),
            };
            let (s6, d6) = (a6(s, src), a6(d, dst));
            out.truncate(12);
            out.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            out.extend_from_slice(&[proto, frame[22]]);
            out.extend_from_slice(&s6);
            out.extend_from_slice(&d6);
            out.extend_from_slice(payload);
            for a in [s6, d6] {
                if a[..8] == home6(0)[..8] {
                    self.seen.insert(IpAddr::V6(Ipv6Addr::from(a)));
                }
            }
            // A frame captured whole is as long on the wire; a truncated one keeps its tail.
            return if wire as usize == frame.len() {
                out.len() as u32
            } else {
                (wire + 40).saturating_sub(ihl as u32)
            };
        }
        for (side, off) in [(s, 26), (d, 30)] {
            if let Side::V4(n) = side {
                out[off..off + 4].copy_from_slice(&n);
            }
        }
        self.note4(&out[26..30]);
        self.note4(&out[30..34]);
        wire
    }

    /// An unsolicited neighbour advertisement of resident `i`'s address of `day`.
    fn advert(&mut self, i: usize, day: u64) -> Vec<u8> {
        let mac = self.residents[i].1;
        let addr = Self::privacy(i, day);
        self.seen.insert(IpAddr::V6(addr.into()));
        let mut f = vec![0x33, 0x33, 0, 0, 0, 1];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&addr);
        f.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        // Type 136, override flag, the target, its link-layer address option.
        f.extend_from_slice(&[136, 0, 0, 0, 0x20, 0, 0, 0]);
        f.extend_from_slice(&addr);
        f.extend_from_slice(&[2, 1]);
        f.extend_from_slice(&mac);
        f
    }
}

/// The demo capture's home (192.168.1.0/24) moved to 10.64.200.0/24.
fn plant(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    let offs: &[usize] = match frame.get(12..14) {
        Some([0x08, 0x00]) => &[26, 30],
        Some([0x08, 0x06]) => &[28, 38],
        _ => &[],
    };
    for &o in offs {
        if out.get(o..o + 3) == Some(&[192, 168, 1]) {
            out[o..o + 3].copy_from_slice(&CAMERA[..3]);
        }
    }
    out
}

#[test]
#[ignore = "data: ../shared/data"]
fn thirty_days_of_churn_on_one_boot() {
    let started = Instant::now();
    let real = frames(&root().join("../shared/data/debian-registry/pathspider/real.pcap"));
    let demo = frames(&root().join("tests/data/demo.pcap"));
    let mut cfg = Config::default();
    cfg.network.home = vec![
        "10.64.0.0/16".parse().unwrap(),
        "2001:db8:1::/64".parse().unwrap(),
    ];
    cfg.models.dir = root().join("models");
    let max_hosts = cfg.scoring.max_hosts;
    let models = Arc::new(botd::pipeline::load_models(&cfg.models.dir).unwrap());

    // The residents: every home host sending from 10.64/16 but the busiest, with the MAC it
    // sends from; the busiest one's connections (nearly all of the hour's) are the guests'.
    let mut by_host: Vec<([u8; 4], [u8; 6], usize)> = Vec::new();
    for (_, f, _) in &real {
        if f.len() >= 34 && f[12..14] == [8, 0] && is_home4(&f[26..30]) {
            let a: [u8; 4] = f[26..30].try_into().unwrap();
            match by_host.iter_mut().find(|(h, _, _)| *h == a) {
                Some(e) => e.2 += 1,
                None => by_host.push((a, f[6..12].try_into().unwrap(), 1)),
            }
        }
    }
    by_host.sort_by_key(|e| std::cmp::Reverse(e.2));
    let mut churn = Churn {
        residents: by_host.iter().skip(1).map(|e| (e.0, e.1)).collect(),
        // Sized now: its pages are in the RSS from the first day on, not growing with it.
        seen: HashSet::with_capacity(2_000_000),
    };

    let mut lp = counted(|| {
        LiveLoop::new(
            &cfg,
            models.clone(),
            None,
            botd::capture::LinkType::Ethernet,
        )
    });
    let at_start = (live_bytes(), rss_kib());
    let mut buf = Vec::with_capacity(2048);
    let mut next_tick = EPOCH;
    let mut peak_table = 0usize;
    let mut day_peak = vec![0i64; DAYS as usize];
    let mut at_day_end: Vec<(u64, i64, u64)> = Vec::new();
    let mut camera_red = None;
    let mut fed = 0u64;
    let plant_hour = 28 * 24 + 10;
    for hour in 0..DAYS * 24 {
        let t0 = EPOCH + hour * HOUR;
        let from = (hour * 7 % 60) * 60 * SEC;
        let to = from + SLICE_MIN * 60 * SEC;
        let mut batch: Vec<(u64, Vec<u8>, u32)> = Vec::new();
        if hour % 24 == 0 {
            for i in 0..churn.residents.len() {
                let ad = churn.advert(i, hour / 24);
                let n = ad.len() as u32;
                batch.push((t0, ad, n));
            }
        }
        if hour == plant_hour {
            for (off, f, n) in &demo {
                batch.push((t0 + from + off, plant(f), *n));
            }
        }
        let mut day_max = day_peak[(hour / 24) as usize];
        let mut table_max = 0;
        let mut feed = |lp: &mut LiveLoop, ts: u64, data: &[u8], wire: u32| {
            counted(|| {
                while next_tick < ts {
                    lp.tick(next_tick);
                    next_tick += 60 * SEC;
                }
                lp.frame(ts, data, wire);
            });
            day_max = day_max.max(live_bytes());
            table_max = table_max.max(lp.detector().scorer.len());
        };
        let mut extra = batch.into_iter().peekable();
        let holiday = HOLIDAY.contains(&(hour / 24 + 1));
        for (off, f, n) in real.iter().filter(|(o, _, _)| (from..to).contains(o)) {
            if holiday && churn.guests(f) {
                continue;
            }
            let ts = t0 + off;
            while let Some((t, f, n)) = extra.next_if(|(t, _, _)| *t <= ts) {
                feed(&mut lp, t, &f, n);
                fed += 1;
            }
            let wire = churn.rewrite(f, *n, hour, &mut buf);
            feed(&mut lp, ts, &buf, wire);
            fed += 1;
        }
        for (t, f, n) in extra {
            feed(&mut lp, t, &f, n);
            fed += 1;
        }
        // The hour's end: windows close up to it.
        counted(|| {
            while next_tick < t0 + HOUR {
                lp.tick(next_tick);
                next_tick += 60 * SEC;
            }
        });
        // After every frame and the hour's last ticks (windows close inside both).
        let table_max = table_max.max(lp.detector().scorer.len());
        assert!(table_max <= max_hosts, "hour {hour}: {table_max} hosts");
        peak_table = peak_table.max(table_max);
        // The alerts kept without a sink: looked at, then dropped (inside the count).
        counted(|| {
            for a in std::mem::take(&mut lp.kept) {
                if a.host == IpAddr::V4(CAMERA.into()) && a.level == Level::Red {
                    camera_red.get_or_insert(a.window_end_ns);
                }
            }
        });
        day_peak[(hour / 24) as usize] = day_max;
        if hour % 24 == 23 {
            at_day_end.push((hour / 24 + 1, live_bytes(), rss_kib()));
        }
    }
    counted(|| lp.finish());
    let elapsed = started.elapsed();
    let d = lp.detector();
    let c = &d.counters;
    let hosts_seen = churn.seen.len();
    eprintln!(
        "soak: {DAYS} days, {fed} frames, {hosts_seen} distinct home addresses, {} flows, {} \
         windows, in {:.1} s",
        lp.engine().counters.flows,
        lp.engine().counters.windows_closed,
        elapsed.as_secs_f64()
    );
    eprintln!(
        "soak: host table peak {peak_table} of {max_hosts}; hosts_expired={} hosts_evicted={} \
         hosts_refused={} level_changes_dropped={} histories_merged={} alerts={}",
        c.hosts_expired,
        c.hosts_evicted,
        c.hosts_refused,
        c.level_changes_dropped,
        c.histories_merged,
        lp.counters.alerts_raised
    );
    let admitted = d.scorer.len() as u64 + c.hosts_expired + c.hosts_evicted;
    eprintln!(
        "soak: hosts admitted {admitted}; at start: live bytes {:.1} MiB, RSS {:.1} MiB; \
         HistoryEntry {} B, Alert {} B",
        at_start.0 as f64 / 1048576.0,
        at_start.1 as f64 / 1024.0,
        std::mem::size_of::<botd::host::HistoryEntry>(),
        std::mem::size_of::<botd::alert::Alert>(),
    );
    for (day, live, rss) in &at_day_end {
        if [1, 10, 20, 30].contains(day) {
            eprintln!(
                "soak: day {day:2}: live bytes {:.1} MiB (peak that day {:.1} MiB), RSS {:.1} MiB",
                *live as f64 / 1048576.0,
                day_peak[*day as usize - 1] as f64 / 1048576.0,
                *rss as f64 / 1024.0
            );
        }
    }

    // The counters as SIGUSR1 logs them and as the state file (and `botd analyze --json`) has them.
    let line = botd::live::counters_line(&lp, &botd::live::capture::CaptureStats::default(), None);
    for (k, v) in [
        ("hosts_expired", c.hosts_expired),
        ("hosts_evicted", c.hosts_evicted),
        ("hosts_refused", c.hosts_refused),
        ("level_changes_dropped", c.level_changes_dropped),
    ] {
        assert!(line.contains(&format!(" {k}={v}")), "{k}: {line}");
    }
    let state = botd::document::state_document(d, lp.engine(), &cfg.scoring);
    assert_eq!(state.hosts.len(), d.scorer.len());
    let state = serde_json::to_value(&state).unwrap();
    assert_eq!(
        state["counters"]["detector"]["hosts_evicted"],
        d.scorer.counters.hosts_evicted
    );
    assert_eq!(
        state["counters"]["detector"]["hosts_expired"],
        d.scorer.counters.hosts_expired
    );

    // The issue asks for a million distinct addresses in all.
    assert!(hosts_seen >= 1_000_000, "{hosts_seen} distinct addresses");
    // Nearly every address was tracked at some point (the rest only sent ARP, or came back after
    // being forgotten and count once here); measured 99.6%.
    assert!(
        admitted * 100 >= hosts_seen as u64 * 95,
        "{admitted} admitted of {hosts_seen}"
    );
    assert_eq!(peak_table, max_hosts, "the table filled");
    // Every address that had a flow was tracked or counted; with expiry and eviction none
    // was refused (no slot was held by red or yellow hosts only).
    assert_eq!(c.hosts_refused, 0);
    assert_eq!(c.hosts_dropped, 0, "no window's host table was full");
    assert!(c.hosts_expired + c.hosts_evicted > 100_000);
    // A resident's red record would survive its daily address change; the camera's is red.
    let red_at = camera_red.expect("the planted camera turned red");
    assert!(red_at >= EPOCH + 28 * DAY, "red on day 29");
    // Flat: no day after the first peaks more than 5% above the first day's peak (measured:
    // +0.9% on day 2, as the residents' histories fill, then the same every day).
    let first = day_peak[0];
    for (i, p) in day_peak.iter().enumerate().skip(1) {
        assert!(
            *p <= first + first / 20,
            "day {}: peak {p} B of live allocations, day 1 {first} B",
            i + 1
        );
    }
}
