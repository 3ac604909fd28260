//! Bytes as a threat-intel feed file: `IntelSet::load_dir` (format by extension or by content
//! sniffing, CSV and list parsing, prefix flattening, the limits) must return a value, never
//! panic, and a refusal must name the feed. On success the set is matched with addresses, names
//! and fingerprints taken from the input; every hit copies into a `HitRecord` and serialises.
//! Invariants: the set holds at most `max_entries`; the feeds' entry counts add up to the set's,
//! and so do the per-kind counts; a loaded `.ip` feed matches every address it lists, a `.ja3`
//! feed every 32-hex-digit line; `inspect_dir` agrees with `load_dir` on a single feed.
//!
//! Input layout: one byte (feed name, limits, second feed), then the feed's bytes. `load_dir`
//! reads paths only, so the feed is written into one tmpfs directory per process.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::OnceLock;

use botd::intel::{FeedFormat, Hit, IntelLimits, IntelSet};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = ["x.ip", "x.domains", "x.csv", "x.ja3", "feed"];
const MAX_ENTRIES: [usize; 4] = [1, 8, 64, 100_000];
/// Values matched per input, at most (a large feed need not be matched line by line).
const MAX_PROBES: usize = 256;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = dir.join(format!("botd-fuzz-intel-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

fn record(hit: &Hit<'_>, set: &IntelSet) {
    assert!(usize::from(hit.feed) < set.feeds().len(), "{hit:?}");
    assert_eq!(hit.feed_name(), set.feeds()[usize::from(hit.feed)].name);
    if let Some(l) = hit.label {
        assert!(l.len() <= botd::intel::LABEL_MAX, "label {l:?}");
    }
    let rec = hit.record();
    let _ = hit.entry.to_string();
    if let Err(e) = serde_json::to_string(&rec) {
        panic!("HitRecord serialisation: {e}");
    }
}

/// Tokens of the input worth matching: whole lines, comment-less values, fields and words.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches('\u{feff}');
        out.push(line.trim());
        let value = line.split(['#', ';']).next().unwrap_or("").trim();
        out.push(value);
        for t in value.split(|c: char| {
            c.is_ascii_whitespace() || matches!(c, ',' | '"' | '/' | '[' | ']' | '@' | '?' | '=')
        }) {
            if !t.is_empty() {
                out.push(t);
                // `host:port`
                if let Some((h, _)) = t.rsplit_once(':') {
                    out.push(h);
                }
            }
        }
        if out.len() >= MAX_PROBES {
            break;
        }
    }
    out.truncate(MAX_PROBES);
    out
}

fn probe(set: &IntelSet, data: &[u8], text: &str) {
    for t in tokens(text) {
        if let Ok(ip) = t.parse::<IpAddr>() {
            if let Some(h) = set.match_addr(ip) {
                record(&h, set);
            }
        }
        if let Some(h) = set.match_name(t) {
            record(&h, set);
        }
        // A subdomain of a listed name matches too.
        let sub = format!("a.b.{t}.");
        if let Some(h) = set.match_name(&sub) {
            record(&h, set);
        }
        if let Some(h) = set.match_ja3(t) {
            record(&h, set);
        }
        if let Some(h) = set.match_ja4(t) {
            record(&h, set);
        }
        if let Some(h) = set.match_cert_sha1(t) {
            record(&h, set);
        }
    }
    // Addresses from the raw bytes too: v4, v6, v4-mapped v6.
    for w in data.chunks(16).take(16) {
        let mut v6 = [0u8; 16];
        v6[..w.len()].copy_from_slice(w);
        let mut v4 = [0u8; 4];
        v4.copy_from_slice(&v6[..4]);
        for ip in [
            IpAddr::V4(Ipv4Addr::from(v4)),
            IpAddr::V6(Ipv6Addr::from(v6)),
            IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()),
        ] {
            if let Some(h) = set.match_addr(ip) {
                record(&h, set);
            }
        }
    }
    // Long and odd names: over 253 bytes, dots only, empty.
    let long = format!("{}.{}", "a".repeat(300), text.get(..text.len().min(40)).unwrap_or(""));
    for n in [long.as_str(), ".", "..", "", "com", text] {
        if let Some(h) = set.match_name(n) {
            record(&h, set);
        }
    }
}

/// A list feed's values as the loader reads them: lines split at `\n` (a `\r` before it and a
/// BOM on line 1 dropped), ASCII-trimmed, comment lines and non-UTF-8 lines skipped, the value
/// before a trailing `#`/`;` comment, trimmed.
fn list_values(feed: &[u8]) -> impl Iterator<Item = &str> {
    feed.split(|&b| b == b'\n').enumerate().filter_map(|(i, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = if i == 0 { line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line) } else { line };
        let line = line.trim_ascii();
        if matches!(line.first(), Some(b'#' | b';')) {
            return None;
        }
        let text = core::str::from_utf8(line).ok()?;
        let value = text.split(['#', ';']).next().unwrap_or("").trim();
        (!value.is_empty()).then_some(value)
    })
}

/// An address a listed `addr` or `addr/len` value must match: the address itself, or the
/// prefix's own address (inside it). Prefixes `/0`, over-long, and IPv6 prefixes of
/// IPv4-mapped space of length 96 or less (IPv4-mapped addresses are matched as IPv4) excluded.
fn listed_addr(value: &str) -> Option<IpAddr> {
    let Some((addr, len)) = value.split_once('/') else {
        return value.parse().ok();
    };
    let ip: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let ok = match ip {
        IpAddr::V4(_) => (1..=32).contains(&len),
        IpAddr::V6(a) => (1..=128).contains(&len) && (a.to_ipv4_mapped().is_none() || len > 96),
    };
    ok.then_some(ip)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, feed)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(sel & 7) % NAMES.len()];
    let limits = IntelLimits {
        max_entries: MAX_ENTRIES[usize::from((sel >> 3) & 3)],
        max_feeds: if sel & 0x40 != 0 { 1 } else { 2 },
    };
    // With 0x20: the same bytes again under the next name (duplicates across feeds, another
    // reading of the same text), which `max_feeds` 1 refuses.
    let second = (sel & 0x20 != 0).then(|| NAMES[(usize::from(sel & 7) + 1) % NAMES.len()]);

    let dir = scratch();
    for n in NAMES {
        let _ = std::fs::remove_file(dir.join(n));
    }
    if std::fs::write(dir.join(name), feed).is_err() {
        return;
    }
    if let Some(n) = second {
        if std::fs::write(dir.join(n), feed).is_err() {
            return;
        }
    }
    let n_files = 1 + usize::from(second.is_some());

    match IntelSet::load_dir(dir, &limits) {
        Ok((set, reports)) => {
            assert!(n_files <= limits.max_feeds);
            assert_eq!(reports.len(), n_files);
            assert_eq!(set.feeds(), &reports[..]);
            assert!(set.entries() <= limits.max_entries, "{} entries", set.entries());
            let from_feeds: usize = reports.iter().map(|r| r.entries).sum();
            assert_eq!(from_feeds, set.entries(), "{reports:?}");
            let c = set.counts();
            assert_eq!(
                c.addresses + c.prefixes + c.names + c.ja3 + c.ja4 + c.cert_sha1,
                set.entries(),
                "{c:?}"
            );
            assert_eq!(set.is_empty(), set.entries() == 0);
            for r in &reports {
                let _ = r.to_string();
                if let Err(e) = serde_json::to_string(r) {
                    panic!("FeedReport serialisation: {e}");
                }
                assert!(r.first_errors.len() <= r.skipped_lines);
            }
            let _ = set.summary_lines().count();
            let _ = set.memory_bytes();
            let _ = serde_json::to_string(&c);

            let text = String::from_utf8_lossy(feed);
            probe(&set, feed, &text);

            // What a loaded feed lists, it matches (addresses and prefixes, JA3 fingerprints).
            let first = &reports[0];
            if first.name == name {
                for value in list_values(feed).take(MAX_PROBES) {
                    match first.format {
                        FeedFormat::Addresses => {
                            if let Some(ip) = listed_addr(value) {
                                let hit = set.match_addr(ip);
                                assert!(hit.is_some(), "{value:?} listed in {name}, {ip} not matched");
                                record(&hit.unwrap(), &set);
                            }
                        }
                        FeedFormat::Ja3 | FeedFormat::Ja4 => {
                            if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                                assert!(
                                    set.match_ja3(value).is_some(),
                                    "{value} listed in {name} but not matched"
                                );
                            }
                        }
                        _ => {}
                    }
                }
            }

            // One feed checked on its own reads the same.
            if n_files == 1 {
                match IntelSet::inspect_dir(dir, &limits) {
                    Ok(per_feed) => {
                        assert_eq!(per_feed.len(), 1);
                        match &per_feed[0] {
                            Ok(r) => assert_eq!(r, &reports[0]),
                            Err(e) => panic!("load_dir ok, inspect_dir: {e}"),
                        }
                    }
                    Err(e) => panic!("load_dir ok, inspect_dir: {e}"),
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!e.message.is_empty());
            // The error names the feed file (or the directory for directory-level errors).
            assert!(
                e.path.starts_with(dir),
                "error path {} outside {}",
                e.path.display(),
                dir.display()
            );
            if e.path != *dir {
                let file = e.path.file_name().and_then(|f| f.to_str()).unwrap_or("");
                assert!(shown.contains(file), "{shown}");
            }
            if let Some(l) = e.line {
                assert!(l >= 1);
            }
        }
    }
});
