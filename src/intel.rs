//! Threat-intelligence feed sets: IP addresses and prefixes, domain names, JA3/JA4 TLS client
//! fingerprints and certificate SHA1 fingerprints loaded from a directory of public feed files
//! (Spamhaus DROP, abuse.ch Feodo Tracker, SSLBL, URLhaus, plain lists, hosts files), matched per
//! flow record and per DNS name without allocating.
//!
//! Loading allocates and is strict: a feed that cannot be read, or whose data lines are more than
//! half unreadable, fails the whole [`IntelSet::load_dir`] so that botd keeps its running set on
//! SIGHUP (it loads beside the running set and swaps only when the new one is whole). Readable
//! feeds with a few bad lines load; each bad line is counted and the first few are kept, with
//! line numbers, in the feed's [`FeedReport`].
//!
//! Format of a feed, per file (first match wins):
//! 1. by extension (case-insensitive): `.ip`/`.ips`/`.cidr` addresses, `.domains` domain list,
//!    `.hosts` hosts file, `.ja3`/`.ja4` TLS fingerprints, `.csv` CSV;
//! 2. by content, from the first 100 non-blank, non-comment lines: CSV when a `#` comment line
//!    before the data is a CSV header naming a known column, or when at least half of the lines
//!    hold a comma (outside a trailing comment); otherwise each line votes by its shape (`IP` or
//!    `IP/len` alone: addresses; `IP name…`: hosts; 32 hex digits: JA3; a JA4 fingerprint: JA4; a
//!    domain name: domains) and the most votes win (ties in that order). A feed without data lines
//!    is `empty` (valid, no entries); data that votes for nothing is a broken feed.
//!
//! Matching: exact addresses in hash maps first; prefixes per family flattened at load into
//! sorted disjoint segments, each owned by the longest prefix covering it, so one binary search
//! finds the longest (most specific) prefix; names by the name itself, then each parent domain
//! (`a.b.evil.example` hits `evil.example`), never a bare top-level label. An entry listed by
//! several feeds is kept once, for the first feed in file-name order. A [`Hit`] borrows the set;
//! [`Hit::record`] copies it into a fixed-size [`HitRecord`] for evidence.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use core::fmt::{self, Write as _};
use core::hash::BuildHasher;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable, hash_map::Entry};

/// Bytes of a label (malware name, listing reason) kept per entry; longer labels are cut at a
/// character boundary so that evidence stays fixed-size.
pub const LABEL_MAX: usize = 32;
/// Longest domain name kept or matched (RFC 1035 presentation form without the final dot).
const MAX_NAME: usize = 253;
/// Longest line read; longer lines are skipped as errors without being held in memory.
const MAX_LINE: usize = 64 * 1024;
/// Data lines looked at to recognise a feed's format.
const SNIFF_LINES: usize = 100;
/// Line errors kept per feed in [`FeedReport::first_errors`].
const MAX_FIRST_ERRORS: usize = 5;
/// Characters of an offending line quoted in an error message.
const SHOWN_CHARS: usize = 60;
const NO_LABEL: u32 = u32::MAX;
const NO_PREFIX: u32 = u32::MAX;

/// Names a hosts file maps to itself rather than lists as bad; they are neither entries nor errors.
const HOSTS_IGNORED: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// CSV header names (lower-case) of the value column, in no particular order; the first such
/// column of a header is used.
const VALUE_COLUMNS: &[(&str, ColKind)] = &[
    ("dst_ip", ColKind::Ip),
    ("dstip", ColKind::Ip),
    ("ip", ColKind::Ip),
    ("ip_address", ColKind::Ip),
    ("ipaddress", ColKind::Ip),
    ("ip_addr", ColKind::Ip),
    ("address", ColKind::Ip),
    ("cidr", ColKind::Ip),
    ("prefix", ColKind::Ip),
    ("network", ColKind::Ip),
    ("domain", ColKind::Domain),
    ("domain_name", ColKind::Domain),
    ("hostname", ColKind::Domain),
    ("host", ColKind::Domain),
    ("fqdn", ColKind::Domain),
    ("dns_name", ColKind::Domain),
    ("url", ColKind::Url),
    ("ja3_md5", ColKind::Ja3),
    ("ja3", ColKind::Ja3),
    ("ja3_hash", ColKind::Ja3),
    ("ja3_fingerprint", ColKind::Ja3),
    ("ja4", ColKind::Ja4),
    ("ja4_fingerprint", ColKind::Ja4),
    ("sha1", ColKind::Sha1),
    ("sha1_fingerprint", ColKind::Sha1),
    ("cert_sha1", ColKind::Sha1),
    ("ioc", ColKind::Any),
    ("ioc_value", ColKind::Any),
    ("indicator", ColKind::Any),
];

/// CSV header names (lower-case) of label columns, best first; per row the first non-empty one
/// is kept.
const LABEL_COLUMNS: &[&str] = &[
    "malware",
    "malware_printable",
    "malware_family",
    "family",
    "listingreason",
    "listing_reason",
    "reason",
    "signature",
    "tags",
    "threat",
    "threat_type",
    "description",
    "comment",
];

/// Bounds on what one load may hold, so that a runaway feed cannot exhaust a gateway's memory.
/// Exceeding either is an error naming the feed, never a silent truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntelLimits {
    /// Distinct entries (addresses, prefixes, names, fingerprints) over all feeds.
    pub max_entries: usize,
    /// Feed files in the directory (at most 65535 whatever is set).
    pub max_feeds: usize,
}

impl Default for IntelLimits {
    /// At most about 110 MiB of entries (see `intel.md`), 64 feeds; botd's config defaults.
    fn default() -> Self {
        Self {
            max_entries: 2_000_000,
            max_feeds: 64,
        }
    }
}

/// How a feed's lines were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedFormat {
    /// No data lines (comments only); valid and holds nothing.
    Empty,
    /// Addresses and CIDR prefixes, one a line, `#`/`;` comments (trailing comment = label).
    Addresses,
    /// Domain names, one a line (hosts-file lines accepted too).
    Domains,
    /// Hosts file: `IP name [name…]`; the names are the entries.
    Hosts,
    /// JA3 MD5 fingerprints one a line (JA4 accepted too).
    Ja3,
    /// JA4 fingerprints one a line (JA3 accepted too).
    Ja4,
    /// CSV with `#` comments, quoted fields and a header (commented or not) or value shapes.
    Csv,
}

impl FeedFormat {
    /// Stable lower-case name, as shown by `botd intel`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Addresses => "addresses",
            Self::Domains => "domains",
            Self::Hosts => "hosts",
            Self::Ja3 => "ja3",
            Self::Ja4 => "ja4",
            Self::Csv => "csv",
        }
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One skipped line of a feed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What was wrong, with the line's text (shortened, quoted).
    pub message: String,
}

/// What loading one feed found; kept in the set for `botd intel --dir`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FeedReport {
    /// File name; the feed's name in hits.
    pub name: String,
    pub path: PathBuf,
    pub format: FeedFormat,
    /// CSV: the column the entries come from (header name, or `column N` by value shape).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// CSV: the label columns (header names, best first, joined by `|`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Distinct entries this feed added to the set.
    pub entries: usize,
    /// Entries already in the set (listed twice, or by an earlier feed, which keeps them).
    pub duplicates: usize,
    /// Data lines that could not be read and were skipped.
    pub skipped_lines: usize,
    /// The first few skipped lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<LineError>,
}

impl FeedReport {
    fn new(name: &str, path: &Path, format: FeedFormat) -> Self {
        Self {
            name: name.to_owned(),
            path: path.to_owned(),
            format,
            column: None,
            label_column: None,
            entries: 0,
            duplicates: 0,
            skipped_lines: 0,
            first_errors: Vec::new(),
        }
    }

    fn skip(&mut self, line: usize, message: String) {
        self.skipped_lines = self.skipped_lines.saturating_add(1);
        if self.first_errors.len() < MAX_FIRST_ERRORS {
            self.first_errors.push(LineError { line, message });
        }
    }
}

impl fmt::Display for FeedReport {
    /// One line: `name: format (column c, label l), N entries, N duplicates, N lines skipped; line L: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.format)?;
        match (&self.column, &self.label_column) {
            (Some(c), Some(l)) => write!(f, " (column {c}, label {l})")?,
            (Some(c), None) => write!(f, " (column {c})")?,
            _ => {}
        }
        write!(f, ", {} entries", self.entries)?;
        if self.duplicates > 0 {
            write!(f, ", {} duplicates", self.duplicates)?;
        }
        write!(f, ", {} lines skipped", self.skipped_lines)?;
        if let Some(e) = self.first_errors.first() {
            write!(f, "; line {}: {}", e.line, e.message)?;
        }
        Ok(())
    }
}

/// Why a load failed: a missing or unreadable directory, an unreadable or broken feed, or a
/// limit exceeded. The running set is to be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntelError {
    /// The directory or feed file.
    pub path: PathBuf,
    /// 1-based line, where one line is to blame (first bad line of a broken feed).
    pub line: Option<usize>,
    pub message: String,
}

impl IntelError {
    fn new(path: &Path, line: Option<usize>, message: String) -> Self {
        Self {
            path: path.to_owned(),
            line,
            message,
        }
    }
}

impl fmt::Display for IntelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path.display(), l, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for IntelError {}

/// What a hit matched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// An address or a prefix holding it.
    #[default]
    Addr,
    /// A domain name or one of its parents.
    Name,
    Ja3,
    Ja4,
    /// An X.509 certificate's SHA1 fingerprint (SSLBL `sslblacklist.csv`).
    CertSha1,
}

/// The feed entry a hit matched, borrowed from the set or held by value (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitEntry<'a> {
    /// An exact address entry.
    Addr(IpAddr),
    /// A prefix entry (network address, length).
    Prefix(IpAddr, u8),
    /// The listed name (the queried name itself or the parent that is listed).
    Name(&'a str),
    Ja3([u8; 16]),
    Ja4(&'a str),
    CertSha1([u8; 20]),
}

impl fmt::Display for HitEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(ip) => write!(f, "{ip}"),
            Self::Prefix(ip, len) => write!(f, "{ip}/{len}"),
            Self::Name(s) | Self::Ja4(s) => f.write_str(s),
            Self::Ja3(b) => write_hex(f, b),
            Self::CertSha1(b) => write_hex(f, b),
        }
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// A match: which feed, which entry, its label. Borrows the set; copy it into evidence with
/// [`Hit::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit<'a> {
    pub kind: HitKind,
    /// Index of the feed in [`IntelSet::feeds`].
    pub feed: u16,
    pub entry: HitEntry<'a>,
    /// The entry's label (malware name, listing reason, trailing comment), at most 32 bytes.
    pub label: Option<&'a str>,
    feed_name: &'a str,
}

impl<'a> Hit<'a> {
    /// The feed's file name.
    pub fn feed_name(&self) -> &'a str {
        self.feed_name
    }

    /// An owned, fixed-size copy for evidence and JSON.
    pub fn record(&self) -> HitRecord {
        HitRecord::from_hit(self)
    }
}

/// Owned copy of a [`Hit`] for botd's fixed-size evidence. `size_of` is 160 bytes on 64-bit.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HitRecord {
    pub kind: HitKind,
    pub feed: heapless::String<32>,
    pub entry: heapless::String<64>,
    #[serde(skip_serializing_if = "str_empty")]
    pub label: heapless::String<32>,
    /// A feed name or entry (long domain name) was cut to fit.
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn str_empty<const N: usize>(s: &heapless::String<N>) -> bool {
    s.is_empty()
}

impl HitRecord {
    pub fn from_hit(hit: &Hit<'_>) -> Self {
        let mut rec = Self {
            kind: hit.kind,
            ..Self::default()
        };
        let mut cut = copy_cut(&mut rec.feed, format_args!("{}", hit.feed_name));
        cut |= copy_cut(&mut rec.entry, format_args!("{}", hit.entry));
        if let Some(l) = hit.label {
            cut |= copy_cut(&mut rec.label, format_args!("{l}"));
        }
        rec.truncated = cut;
        rec
    }
}

/// Writes into a fixed-size string, dropping what does not fit (at a character boundary).
struct CutWriter<'b, const N: usize> {
    out: &'b mut heapless::String<N>,
    cut: bool,
}

impl<const N: usize> fmt::Write for CutWriter<'_, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.out.push(c).is_err() {
                self.cut = true;
                break;
            }
        }
        Ok(())
    }
}

fn copy_cut<const N: usize>(out: &mut heapless::String<N>, args: fmt::Arguments<'_>) -> bool {
    let mut w = CutWriter { out, cut: false };
    // CutWriter never fails; a Display impl error would only leave the string shorter.
    let _ = w.write_fmt(args);
    w.cut
}

/// Per-kind entry counts of a set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IntelCounts {
    pub addresses: usize,
    pub prefixes: usize,
    pub names: usize,
    pub ja3: usize,
    pub ja4: usize,
    pub cert_sha1: usize,
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    label: u32,
    feed: u16,
}

/// A listed prefix. 12 bytes for IPv4 (`T = u32`), 32 for IPv6.
#[derive(Clone, Copy, Debug)]
struct Net<T> {
    start: T,
    label: u32,
    feed: u16,
    len: u8,
}

/// Prefixes of one family flattened into disjoint segments, each owned by the longest prefix
/// covering it (or by none, in a gap), so that a lookup is one binary search over a dense array
/// of segment starts (4 bytes a segment for IPv4) and one check. At most `2n + 1` segments.
#[derive(Clone, Debug, Default)]
struct Prefixes<T> {
    seg_starts: Vec<T>,
    /// Per segment, an index into `nets` or [`NO_PREFIX`].
    seg_owner: Vec<u32>,
    nets: Vec<Net<T>>,
}

impl<T: Copy + Ord> Prefixes<T> {
    fn len(&self) -> usize {
        self.nets.len()
    }

    fn heap_bytes(&self) -> usize {
        self.seg_starts.capacity() * size_of::<T>()
            + self.seg_owner.capacity() * size_of::<u32>()
            + self.nets.capacity() * size_of::<Net<T>>()
    }

    /// The longest listed prefix holding `x`.
    fn lookup(&self, x: T) -> Option<&Net<T>> {
        let i = self
            .seg_starts
            .partition_point(|&s| s <= x)
            .checked_sub(1)?;
        let owner = *self.seg_owner.get(i)?;
        if owner == NO_PREFIX {
            return None;
        }
        self.nets.get(owner as usize)
    }
}

/// A name in the arena, 12 bytes.
#[derive(Clone, Copy, Debug)]
struct NameRec {
    off: u32,
    label: u32,
    feed: u16,
    len: u16,
}

fn name_of<'s>(text: &'s str, r: &NameRec) -> &'s [u8] {
    let start = r.off as usize;
    text.as_bytes()
        .get(start..start.saturating_add(usize::from(r.len)))
        .unwrap_or_default()
}

/// The loaded feeds. Immutable once loaded; share it behind an `Arc` and swap it whole.
#[derive(Clone, Debug, Default)]
pub struct IntelSet {
    hasher: DefaultHashBuilder,
    v4: HashMap<u32, Meta>,
    v6: HashMap<u128, Meta>,
    v4_prefixes: Prefixes<u32>,
    v6_prefixes: Prefixes<u128>,
    name_text: String,
    names: HashTable<NameRec>,
    ja3: HashMap<[u8; 16], Meta>,
    ja4: HashMap<[u8; 36], Meta>,
    sha1: HashMap<[u8; 20], Meta>,
    label_text: String,
    labels: Vec<(u32, u8)>,
    feeds: Vec<FeedReport>,
    entries: usize,
}

impl IntelSet {
    /// Loads every feed file directly in `dir` (sorted by name; hidden files, `*.md`, `README*`,
    /// `*~`, `*.tmp` and `*.part` skipped; symlinks to files followed). Fails on a missing
    /// directory, an unreadable or broken feed, or a limit exceeded; a feed's bad lines alone
    /// do not fail it while they are at most half of its data lines.
    pub fn load_dir(
        dir: &Path,
        limits: &IntelLimits,
    ) -> Result<(IntelSet, Vec<FeedReport>), IntelError> {
        let files = feed_files(dir)?;
        let max_feeds = limits.max_feeds.min(usize::from(u16::MAX));
        if let Some((name, path)) = files.get(max_feeds) {
            return Err(IntelError::new(
                path,
                None,
                format!(
                    "feed {name}: more than {max_feeds} feeds in {} (max_feeds)",
                    dir.display()
                ),
            ));
        }
        let mut b = Builder::new(*limits);
        for (i, (name, path)) in files.iter().enumerate() {
            let feed = u16::try_from(i)
                .map_err(|_| IntelError::new(path, None, format!("feed {name}: too many feeds")))?;
            let report = b.load_feed(feed, name, path)?;
            b.set.feeds.push(report);
        }
        let set = b.finish();
        let reports = set.feeds.clone();
        Ok((set, reports))
    }

    /// Checks each feed of `dir` on its own (for `botd intel --dir`): one result per feed file,
    /// so a broken feed is listed beside the good ones. `max_entries` applies per feed here.
    pub fn inspect_dir(
        dir: &Path,
        limits: &IntelLimits,
    ) -> Result<Vec<Result<FeedReport, IntelError>>, IntelError> {
        let files = feed_files(dir)?;
        Ok(files
            .iter()
            .map(|(name, path)| Builder::new(*limits).load_feed(0, name, path))
            .collect())
    }

    /// Distinct entries held.
    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn counts(&self) -> IntelCounts {
        IntelCounts {
            addresses: self.v4.len().saturating_add(self.v6.len()),
            prefixes: self
                .v4_prefixes
                .len()
                .saturating_add(self.v6_prefixes.len()),
            names: self.names.len(),
            ja3: self.ja3.len(),
            ja4: self.ja4.len(),
            cert_sha1: self.sha1.len(),
        }
    }

    /// The feeds, in load (file-name) order; [`Hit::feed`] indexes this.
    pub fn feeds(&self) -> &[FeedReport] {
        &self.feeds
    }

    /// One line per feed (format, column, entries, duplicates, skipped lines, first error).
    pub fn summary_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.feeds.iter().map(|f| f.to_string())
    }

    /// Approximate heap bytes held, from capacities (hash tables with their control bytes).
    pub fn memory_bytes(&self) -> usize {
        let reports: usize = self
            .feeds
            .iter()
            .map(|f| {
                f.name.capacity()
                    + f.path.capacity()
                    + f.column.as_ref().map_or(0, String::capacity)
                    + f.label_column.as_ref().map_or(0, String::capacity)
                    + f.first_errors.capacity() * size_of::<LineError>()
                    + f.first_errors
                        .iter()
                        .map(|e| e.message.capacity())
                        .sum::<usize>()
            })
            .sum();
        self.v4.allocation_size()
            + self.v6.allocation_size()
            + self.names.allocation_size()
            + self.ja3.allocation_size()
            + self.ja4.allocation_size()
            + self.sha1.allocation_size()
            + self.v4_prefixes.heap_bytes()
            + self.v6_prefixes.heap_bytes()
            + self.name_text.capacity()
            + self.label_text.capacity()
            + self.labels.capacity() * size_of::<(u32, u8)>()
            + self.feeds.capacity() * size_of::<FeedReport>()
            + reports
    }

    /// Matches an address: an exact entry first, else the longest prefix holding it. IPv4-mapped
    /// IPv6 addresses are matched as IPv4.
    pub fn match_addr(&self, ip: IpAddr) -> Option<Hit<'_>> {
        match ip {
            IpAddr::V4(a) => self.match_v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.match_v4(v4),
                None => self.match_v6(a),
            },
        }
    }

    fn match_v4(&self, a: Ipv4Addr) -> Option<Hit<'_>> {
        let x = u32::from(a);
        if let Some(m) = self.v4.get(&x) {
            return Some(self.hit(
                HitKind::Addr,
                m.feed,
                m.label,
                HitEntry::Addr(IpAddr::V4(a)),
            ));
        }
        let r = self.v4_prefixes.lookup(x)?;
        Some(self.hit(
            HitKind::Addr,
            r.feed,
            r.label,
            HitEntry::Prefix(IpAddr::V4(Ipv4Addr::from(r.start)), r.len),
        ))
    }

    fn match_v6(&self, a: Ipv6Addr) -> Option<Hit<'_>> {
        let x = u128::from(a);
        if let Some(m) = self.v6.get(&x) {
            return Some(self.hit(
                HitKind::Addr,
                m.feed,
                m.label,
                HitEntry::Addr(IpAddr::V6(a)),
            ));
        }
        let r = self.v6_prefixes.lookup(x)?;
        Some(self.hit(
            HitKind::Addr,
            r.feed,
            r.label,
            HitEntry::Prefix(IpAddr::V6(Ipv6Addr::from(r.start)), r.len),
        ))
    }

    /// Matches a DNS name (any case, trailing dot or not) and then each parent domain, most
    /// specific first; a bare top-level label is never matched. Names over 253 bytes are matched
    /// by their parents that fit.
    pub fn match_name(&self, name: &str) -> Option<Hit<'_>> {
        if self.names.is_empty() {
            return None;
        }
        let mut buf = [0u8; MAX_NAME];
        let n = lower_name(name.as_bytes(), &mut buf)?;
        let mut cur = buf.get(..n)?;
        while cur.contains(&b'.') {
            let hash = self.hasher.hash_one(cur);
            if let Some(r) = self
                .names
                .find(hash, |r| name_of(&self.name_text, r) == cur)
            {
                let start = r.off as usize;
                let text = self
                    .name_text
                    .get(start..start.saturating_add(usize::from(r.len)))?;
                return Some(self.hit(HitKind::Name, r.feed, r.label, HitEntry::Name(text)));
            }
            let dot = cur.iter().position(|&b| b == b'.')?;
            cur = cur.get(dot.saturating_add(1)..)?;
        }
        None
    }

    /// Matches a JA3 fingerprint (32 hex digits, any case).
    pub fn match_ja3(&self, md5_hex: &str) -> Option<Hit<'_>> {
        if self.ja3.is_empty() {
            return None;
        }
        let key = parse_hex::<16>(md5_hex.trim().as_bytes())?;
        let (k, m) = self.ja3.get_key_value(&key)?;
        Some(self.hit(HitKind::Ja3, m.feed, m.label, HitEntry::Ja3(*k)))
    }

    /// Matches a JA4 fingerprint (`t13d1516h2_8daaf6152771_b186095e22b6`, any case).
    pub fn match_ja4(&self, ja4: &str) -> Option<Hit<'_>> {
        if self.ja4.is_empty() {
            return None;
        }
        let src: &[u8; 36] = ja4.trim().as_bytes().try_into().ok()?;
        let mut key = [0u8; 36];
        for (d, s) in key.iter_mut().zip(src) {
            *d = s.to_ascii_lowercase();
        }
        let (k, m) = self.ja4.get_key_value(&key)?;
        let text = core::str::from_utf8(k).ok()?;
        Some(self.hit(HitKind::Ja4, m.feed, m.label, HitEntry::Ja4(text)))
    }

    /// Matches a certificate SHA1 fingerprint (40 hex digits, any case, colons allowed).
    pub fn match_cert_sha1(&self, sha1_hex: &str) -> Option<Hit<'_>> {
        if self.sha1.is_empty() {
            return None;
        }
        let key = parse_sha1(sha1_hex.trim())?;
        let (k, m) = self.sha1.get_key_value(&key)?;
        Some(self.hit(HitKind::CertSha1, m.feed, m.label, HitEntry::CertSha1(*k)))
    }

    fn hit<'s>(&'s self, kind: HitKind, feed: u16, label: u32, entry: HitEntry<'s>) -> Hit<'s> {
        Hit {
            kind,
            feed,
            entry,
            label: self.label(label),
            feed_name: self
                .feeds
                .get(usize::from(feed))
                .map_or("", |f| f.name.as_str()),
        }
    }

    fn label(&self, idx: u32) -> Option<&str> {
        let &(off, len) = self.labels.get(usize::try_from(idx).ok()?)?;
        let start = off as usize;
        self.label_text
            .get(start..start.saturating_add(usize::from(len)))
    }
}

/// Lower-cases a query name into `buf` without its trailing dots; a name too long to be listed
/// is cut to its longest parent that fits.
fn lower_name(name: &[u8], buf: &mut [u8; MAX_NAME]) -> Option<usize> {
    let mut s = name;
    while let Some((b'.', rest)) = s.split_last() {
        s = rest;
    }
    while s.len() > MAX_NAME {
        let dot = s.iter().position(|&b| b == b'.')?;
        s = s.get(dot.saturating_add(1)..)?;
    }
    for (d, b) in buf.iter_mut().zip(s) {
        *d = b.to_ascii_lowercase();
    }
    Some(s.len())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N.checked_mul(2)? {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (hex_val(*pair.first()?)?, hex_val(*pair.get(1)?)?);
        *o = (hi << 4) | lo;
    }
    Some(out)
}

/// 40 hex digits, or 20 colon-separated pairs as `openssl x509 -fingerprint` prints them.
fn parse_sha1(s: &str) -> Option<[u8; 20]> {
    let b = s.as_bytes();
    if b.len() == 59 {
        let mut digits = [0u8; 40];
        let mut n = 0usize;
        for (i, &c) in b.iter().enumerate() {
            if i % 3 == 2 {
                if c != b':' {
                    return None;
                }
            } else {
                *digits.get_mut(n)? = c;
                n = n.saturating_add(1);
            }
        }
        return parse_hex::<20>(&digits);
    }
    parse_hex::<20>(b)
}

/// JA4 (TLS client): `[tqd]` + version(2) + `[di]` + ciphers(2 digits) + extensions(2 digits)
/// + ALPN(2), `_`, 12 hex, `_`, 12 hex. Returned lower-cased.
fn parse_ja4(s: &str) -> Option<[u8; 36]> {
    let src: &[u8; 36] = s.as_bytes().try_into().ok()?;
    let mut k = [0u8; 36];
    for (i, (d, &c)) in k.iter_mut().zip(src).enumerate() {
        let c = c.to_ascii_lowercase();
        let ok = match i {
            0 => matches!(c, b't' | b'q' | b'd'),
            3 => matches!(c, b'd' | b'i'),
            4..=7 => c.is_ascii_digit(),
            1 | 2 | 8 | 9 => c.is_ascii_alphanumeric(),
            10 | 23 => c == b'_',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return None;
        }
        *d = c;
    }
    Some(k)
}

/// An entry parsed from a line, before it is stored. Items live one line at a time in a reused
/// `Vec`, so the inline name buffer costs nothing worth a heap allocation per name.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    V4(u32),
    V6(u128),
    P4(u32, u8),
    P6(u128, u8),
    Name(heapless::String<MAX_NAME>),
    Ja3([u8; 16]),
    Ja4([u8; 36]),
    Sha1([u8; 20]),
}

fn ip_item(ip: IpAddr) -> Item {
    match ip {
        IpAddr::V4(a) => Item::V4(u32::from(a)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => Item::V4(u32::from(v4)),
            None => Item::V6(u128::from(a)),
        },
    }
}

/// An address or a CIDR prefix; host bits of a prefix are cleared, `/32` and `/128` are
/// addresses, `/0` is refused (it would match everything).
fn parse_ip(s: &str) -> Result<Item, &'static str> {
    let Some((addr, len)) = s.split_once('/') else {
        return s
            .parse::<IpAddr>()
            .map(ip_item)
            .map_err(|_| "not an address or prefix");
    };
    let ip: IpAddr = addr.parse().map_err(|_| "not an address or prefix")?;
    let len: u8 = len.parse().map_err(|_| "bad prefix length")?;
    if len == 0 {
        return Err("prefix /0 would match everything");
    }
    match ip {
        IpAddr::V4(a) => v4_prefix(u32::from(a), len),
        IpAddr::V6(a) => match (a.to_ipv4_mapped(), len.checked_sub(96)) {
            (Some(v4), Some(l4)) if l4 > 0 => v4_prefix(u32::from(v4), l4),
            _ => {
                if len > 128 {
                    return Err("prefix length over 128");
                }
                if len == 128 {
                    return Ok(Item::V6(u128::from(a)));
                }
                let mask = u128::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0);
                Ok(Item::P6(u128::from(a) & mask, len))
            }
        },
    }
}

fn v4_prefix(a: u32, len: u8) -> Result<Item, &'static str> {
    if len > 32 {
        return Err("prefix length over 32");
    }
    if len == 32 {
        return Ok(Item::V4(a));
    }
    let mask = u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
    Ok(Item::P4(a & mask, len))
}

/// `a.b.c.d:port` and `[v6]:port` as CSV feeds sometimes give them.
fn parse_ip_port(s: &str) -> Option<Item> {
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<Ipv6Addr>().ok().map(|a| ip_item(IpAddr::V6(a)));
    }
    let (ip, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<Ipv4Addr>().ok().map(|a| ip_item(IpAddr::V4(a)))
}

/// A listed domain: lower-cased, trailing dots and a leading `*.` removed, letters, digits, `-`
/// and `_` only, at least two labels, the last not numeric.
fn parse_domain(s: &str) -> Result<heapless::String<MAX_NAME>, &'static str> {
    let s = s.trim_end_matches('.');
    let s = s.strip_prefix("*.").unwrap_or(s);
    if s.is_empty() {
        return Err("empty name");
    }
    if !s.is_ascii() {
        return Err("non-ASCII name (list its punycode form)");
    }
    if s.len() > MAX_NAME {
        return Err("name longer than 253 bytes");
    }
    let mut out = heapless::String::new();
    let (mut labels, mut label_len, mut numeric) = (0usize, 0usize, true);
    for b in s.bytes() {
        if b == b'.' {
            if label_len == 0 {
                return Err("empty label in name");
            }
            labels = labels.saturating_add(1);
            label_len = 0;
            numeric = true;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label_len = label_len.saturating_add(1);
            if label_len > 63 {
                return Err("label longer than 63 bytes");
            }
            numeric &= b.is_ascii_digit();
        } else {
            return Err("character not allowed in a domain name");
        }
        out.push(char::from(b.to_ascii_lowercase()))
            .map_err(|_| "name longer than 253 bytes")?;
    }
    if label_len == 0 {
        return Err("empty label in name");
    }
    if labels == 0 {
        return Err("single-label name");
    }
    if numeric {
        return Err("numeric top-level label (not a valid address either)");
    }
    Ok(out)
}

/// A name or an address literal where a name is expected (hosts files, URL hosts).
fn parse_host(s: &str) -> Result<Item, &'static str> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip_item(ip));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|a| ip_item(IpAddr::V6(a)))
            .map_err(|_| "bad IPv6 literal");
    }
    parse_domain(s).map(Item::Name)
}

/// The host of a URL (`scheme://user@host:port/path`), or of a scheme-less `host/path`.
fn url_host(u: &str) -> Option<&str> {
    let rest = match u.find("://") {
        Some(i) => u.get(i.saturating_add(3)..)?,
        None => u,
    };
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let auth = rest.get(..end)?;
    let hostport = match auth.rfind('@') {
        Some(i) => auth.get(i.saturating_add(1)..)?,
        None => auth,
    };
    let host = if let Some(r) = hostport.strip_prefix('[') {
        r.get(..r.find(']')?)?
    } else {
        match hostport.rfind(':') {
            Some(i) => hostport.get(..i)?,
            None => hostport,
        }
    };
    (!host.is_empty()).then_some(host)
}

/// Value before a trailing `#` or `;` comment, and the comment (the label), both trimmed.
fn split_comment(s: &str) -> (&str, Option<&str>) {
    match s.find(['#', ';']) {
        Some(i) => {
            let value = s.get(..i).unwrap_or_default().trim();
            let comment = s
                .get(i..)
                .unwrap_or_default()
                .trim_start_matches(['#', ';'])
                .trim();
            (value, (!comment.is_empty()).then_some(comment))
        }
        None => (s.trim(), None),
    }
}

fn is_comment(line: &[u8]) -> bool {
    matches!(line.first(), Some(b'#' | b';'))
}

/// The line's text for an error message: shortened and quoted with escapes.
fn shown(text: &str) -> String {
    let mut short: String = text.chars().take(SHOWN_CHARS).collect();
    if text.chars().nth(SHOWN_CHARS).is_some() {
        short.push('…');
    }
    format!("{short:?}")
}

/// Splits a CSV line: `,` separated, fields optionally in `"…"` with `""` for a quote (left
/// doubled in the slice), spaces around fields trimmed.
fn split_csv<'t>(line: &'t str, out: &mut Vec<&'t str>) -> Result<(), &'static str> {
    let mut rest = line;
    loop {
        let t = rest.trim_start_matches([' ', '\t']);
        if let Some(q) = t.strip_prefix('"') {
            let mut from = 0usize;
            let close = loop {
                let p = q
                    .get(from..)
                    .and_then(|s| s.find('"'))
                    .ok_or("unterminated quoted field")?;
                let at = from.saturating_add(p);
                if q.as_bytes().get(at.saturating_add(1)) == Some(&b'"') {
                    from = at.saturating_add(2);
                } else {
                    break at;
                }
            };
            out.push(q.get(..close).unwrap_or_default());
            let after = q
                .get(close.saturating_add(1)..)
                .unwrap_or_default()
                .trim_start_matches([' ', '\t']);
            if after.is_empty() {
                return Ok(());
            }
            rest = after
                .strip_prefix(',')
                .ok_or("text after a closing quote")?;
        } else {
            match t.split_once(',') {
                Some((field, r)) => {
                    out.push(field.trim());
                    rest = r;
                }
                None => {
                    out.push(t.trim());
                    return Ok(());
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColKind {
    Ip,
    Domain,
    Url,
    Ja3,
    Ja4,
    Sha1,
    Any,
}

/// Which column of a CSV feed holds the entries and which hold labels.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CsvLayout {
    col: usize,
    kind: ColKind,
    col_name: String,
    labels: Vec<usize>,
    label_names: Vec<String>,
}

fn header_key(field: &str) -> String {
    field.trim().trim_matches('"').trim().to_ascii_lowercase()
}

/// The kind of a value by its shape, `Domain` only when `domains` is set (a header name is
/// never an address, URL or fingerprint, but may look like a name).
fn shape(v: &str, domains: bool) -> Option<ColKind> {
    let v = v.trim();
    if v.is_empty() {
        None
    } else if parse_ip(v).is_ok() || parse_ip_port(v).is_some() {
        Some(ColKind::Ip)
    } else if parse_hex::<16>(v.as_bytes()).is_some() {
        Some(ColKind::Ja3)
    } else if parse_sha1(v).is_some() {
        Some(ColKind::Sha1)
    } else if parse_ja4(v).is_some() {
        Some(ColKind::Ja4)
    } else if v.contains("://") && url_host(v).is_some() {
        Some(ColKind::Url)
    } else if domains && parse_domain(v).is_ok() {
        Some(ColKind::Domain)
    } else {
        None
    }
}

/// A header row: `min_fields` or more fields, none value-shaped, one naming a value column.
fn header_layout(fields: &[&str], min_fields: usize) -> Option<CsvLayout> {
    if fields.len() < min_fields || fields.iter().any(|f| shape(f, false).is_some()) {
        return None;
    }
    let keys: Vec<String> = fields.iter().map(|f| header_key(f)).collect();
    let (col, kind) = keys.iter().enumerate().find_map(|(i, k)| {
        VALUE_COLUMNS
            .iter()
            .find(|(name, _)| name == k)
            .map(|&(_, kind)| (i, kind))
    })?;
    let mut labels = Vec::new();
    let mut label_names = Vec::new();
    for name in LABEL_COLUMNS {
        if let Some(i) = keys.iter().position(|k| k == name) {
            labels.push(i);
            label_names.push((*name).to_owned());
        }
    }
    Some(CsvLayout {
        col,
        kind,
        col_name: keys.get(col).cloned().unwrap_or_default(),
        labels,
        label_names,
    })
}

/// A `#` comment line that is a CSV header (`# id,dateadded,url,…`, SSLBL's `# ja3_md5,…`).
fn comment_header(text: &str) -> Option<CsvLayout> {
    let t = text.trim_start_matches(['#', ';', ' ', '\t']);
    let mut fields = Vec::new();
    split_csv(t, &mut fields).ok()?;
    header_layout(&fields, 2)
}

/// Without a header: the first field whose shape is a value kind.
fn shape_layout(fields: &[&str]) -> Option<CsvLayout> {
    let (col, kind) = fields
        .iter()
        .enumerate()
        .find_map(|(i, f)| shape(f, true).map(|k| (i, k)))?;
    Some(CsvLayout {
        col,
        kind,
        col_name: format!("column {}", col.saturating_add(1)),
        labels: Vec::new(),
        label_names: Vec::new(),
    })
}

fn parse_value(kind: ColKind, v: &str) -> Result<Item, &'static str> {
    let v = v.trim();
    if v.is_empty() {
        return Err("empty value");
    }
    match kind {
        ColKind::Ip => parse_ip(v).or_else(|e| parse_ip_port(v).ok_or(e)),
        ColKind::Domain => parse_host(v),
        ColKind::Url => parse_host(url_host(v).ok_or("no host in URL")?),
        ColKind::Ja3 => parse_hex::<16>(v.as_bytes())
            .map(Item::Ja3)
            .ok_or("not a JA3 fingerprint (32 hex digits)"),
        ColKind::Ja4 => parse_ja4(v).map(Item::Ja4).ok_or("not a JA4 fingerprint"),
        ColKind::Sha1 => parse_sha1(v)
            .map(Item::Sha1)
            .ok_or("not a SHA1 fingerprint (40 hex digits)"),
        ColKind::Any => match shape(v, true) {
            Some(ColKind::Any) | None => Err("not an address, name, URL or fingerprint"),
            Some(k) => parse_value(k, v),
        },
    }
}

/// Label text worth keeping: not empty, not a placeholder.
fn useful_label(l: &str) -> Option<&str> {
    let l = l.trim();
    let placeholder = ["none", "null", "n/a", "-", "unknown"]
        .iter()
        .any(|p| l.eq_ignore_ascii_case(p));
    (!l.is_empty() && !placeholder).then_some(l)
}

#[derive(Default)]
struct CsvState {
    comment_header: Option<CsvLayout>,
    layout: Option<CsvLayout>,
}

enum CsvRow<'t> {
    Header,
    Row(Option<&'t str>),
}

fn parse_csv_line<'t>(
    state: &mut CsvState,
    text: &'t str,
    items: &mut Vec<Item>,
) -> Result<CsvRow<'t>, String> {
    let mut fields = Vec::new();
    split_csv(text, &mut fields).map_err(|m| format!("{m}: {}", shown(text)))?;
    let layout = match &state.layout {
        Some(l) => l,
        None => {
            if let Some(l) = header_layout(&fields, 1) {
                state.layout = Some(l);
                return Ok(CsvRow::Header);
            }
            let l = state
                .comment_header
                .take()
                .or_else(|| shape_layout(&fields))
                .ok_or_else(|| {
                    format!(
                        "no address, name, URL or fingerprint column: {}",
                        shown(text)
                    )
                })?;
            state.layout.insert(l)
        }
    };
    let Some(value) = fields.get(layout.col) else {
        return Err(format!(
            "{} fields, no column {}: {}",
            fields.len(),
            layout.col_name,
            shown(text)
        ));
    };
    match parse_value(layout.kind, value) {
        Ok(item) => items.push(item),
        // A repeated header (concatenated downloads) is skipped quietly.
        Err(_) if header_layout(&fields, 1).is_some() => return Ok(CsvRow::Header),
        Err(m) => return Err(format!("{} {m}: {}", layout.col_name, shown(text))),
    }
    let label = layout
        .labels
        .iter()
        .find_map(|&i| fields.get(i).and_then(|l| useful_label(l)));
    Ok(CsvRow::Row(label))
}

/// A line of a one-entry-a-line format; returns the trailing comment as the label.
fn parse_list_line<'t>(
    format: FeedFormat,
    text: &'t str,
    items: &mut Vec<Item>,
) -> Result<Option<&'t str>, String> {
    let (value, label) = split_comment(text);
    let mut toks = value.split_ascii_whitespace();
    let first = toks.next().unwrap_or_default();
    let second = toks.next();
    let bad = |m: &str| format!("{m}: {}", shown(text));
    match format {
        FeedFormat::Addresses => {
            if second.is_some() {
                return Err(bad("unexpected text after the address"));
            }
            items.push(parse_ip(first).map_err(bad)?);
        }
        FeedFormat::Domains | FeedFormat::Hosts => match second {
            None => {
                if HOSTS_IGNORED.contains(&first) {
                    return Ok(None);
                }
                let item = parse_ip(first).or_else(|_| parse_domain(first).map(Item::Name));
                items.push(item.map_err(bad)?);
            }
            Some(name) => {
                let names = || core::iter::once(name).chain(value.split_ascii_whitespace().skip(2));
                if names().all(|n| HOSTS_IGNORED.iter().any(|h| n.eq_ignore_ascii_case(h))) {
                    // `::1 localhost ip6-loopback`, `fe80::1%lo0 localhost`: the host's own names.
                    return Ok(None);
                }
                if first.parse::<IpAddr>().is_err() {
                    return Err(bad("expected `address name` (hosts file) or one name"));
                }
                for n in core::iter::once(name).chain(toks) {
                    if !HOSTS_IGNORED.iter().any(|h| n.eq_ignore_ascii_case(h)) {
                        items.push(parse_host(n).map_err(bad)?);
                    }
                }
            }
        },
        FeedFormat::Ja3 | FeedFormat::Ja4 => {
            if second.is_some() {
                return Err(bad("unexpected text after the fingerprint"));
            }
            let item = parse_hex::<16>(first.as_bytes())
                .map(Item::Ja3)
                .or_else(|| parse_ja4(first).map(Item::Ja4))
                .ok_or("not a JA3 (32 hex digits) or JA4 fingerprint")
                .map_err(bad)?;
            items.push(item);
        }
        FeedFormat::Empty | FeedFormat::Csv => return Err(bad("unexpected data")),
    }
    Ok(label)
}

/// The format a line's shape suggests (content sniffing).
fn vote(text: &str) -> Option<FeedFormat> {
    let (value, _) = split_comment(text);
    let mut toks = value.split_ascii_whitespace();
    let first = toks.next()?;
    match toks.next() {
        Some(second) => (first.parse::<IpAddr>().is_ok()
            && (HOSTS_IGNORED.contains(&second) || parse_host(second).is_ok()))
        .then_some(FeedFormat::Hosts),
        None => {
            if parse_ip(first).is_ok() {
                Some(FeedFormat::Addresses)
            } else if parse_hex::<16>(first.as_bytes()).is_some() {
                Some(FeedFormat::Ja3)
            } else if parse_ja4(first).is_some() {
                Some(FeedFormat::Ja4)
            } else if parse_domain(first).is_ok() {
                Some(FeedFormat::Domains)
            } else {
                None
            }
        }
    }
}

/// Format from the file-name extension, when it is one of the override extensions.
fn format_by_extension(name: &str) -> Option<FeedFormat> {
    let (_, ext) = name.rsplit_once('.')?;
    match ext.to_ascii_lowercase().as_str() {
        "ip" | "ips" | "cidr" => Some(FeedFormat::Addresses),
        "domains" => Some(FeedFormat::Domains),
        "hosts" => Some(FeedFormat::Hosts),
        "ja3" => Some(FeedFormat::Ja3),
        "ja4" => Some(FeedFormat::Ja4),
        "csv" => Some(FeedFormat::Csv),
        _ => None,
    }
}

/// A line's number and its trimmed bytes (`None`: longer than [`MAX_LINE`], skipped).
type NumberedLine<'a> = (usize, Option<&'a [u8]>);

/// Reads lines of at most [`MAX_LINE`] bytes, without their line ending (and BOM on line 1).
struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
    line_no: usize,
}

impl<R: Read + Seek> LineReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: BufReader::new(inner),
            buf: Vec::new(),
            line_no: 0,
        }
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.inner.rewind()?;
        self.line_no = 0;
        Ok(())
    }

    /// `Some((line number, Some(bytes)))`, `Some((n, None))` for an over-long line, `None` at
    /// the end.
    fn next_line(&mut self) -> io::Result<Option<NumberedLine<'_>>> {
        self.buf.clear();
        let limit = u64::try_from(MAX_LINE)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let n = (&mut self.inner)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no = self.line_no.saturating_add(1);
        if self.buf.last() != Some(&b'\n') && self.buf.len() > MAX_LINE {
            loop {
                self.buf.clear();
                let n = (&mut self.inner)
                    .take(limit)
                    .read_until(b'\n', &mut self.buf)?;
                if n == 0 || self.buf.last() == Some(&b'\n') {
                    break;
                }
            }
            return Ok(Some((self.line_no, None)));
        }
        let mut line = self.buf.as_slice();
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if self.line_no == 1
            && let Some(l) = line.strip_prefix(b"\xEF\xBB\xBF")
        {
            line = l;
        }
        Ok(Some((self.line_no, Some(line.trim_ascii()))))
    }
}

enum Sniffed {
    Format(FeedFormat),
    Unrecognised(usize),
}

/// Recognises a feed's format from its first data lines (see the module docs).
fn sniff<R: Read + Seek>(reader: &mut LineReader<R>) -> io::Result<Sniffed> {
    // Votes for Addresses, Hosts, Domains, Ja3, Ja4, in tie-break order.
    const ORDER: [FeedFormat; 5] = [
        FeedFormat::Addresses,
        FeedFormat::Hosts,
        FeedFormat::Domains,
        FeedFormat::Ja3,
        FeedFormat::Ja4,
    ];
    let mut votes = [0usize; 5];
    let (mut lines, mut commas, mut first_data) = (0usize, 0usize, None);
    while let Some((line_no, bytes)) = reader.next_line()? {
        let Some(bytes) = bytes else {
            lines = lines.saturating_add(1);
            first_data.get_or_insert(line_no);
            continue;
        };
        if bytes.is_empty() {
            continue;
        }
        let text = core::str::from_utf8(bytes).ok();
        if is_comment(bytes) {
            if lines == 0 && text.and_then(comment_header).is_some() {
                return Ok(Sniffed::Format(FeedFormat::Csv));
            }
            continue;
        }
        lines = lines.saturating_add(1);
        first_data.get_or_insert(line_no);
        if let Some(text) = text {
            if split_comment(text).0.contains(',') {
                commas = commas.saturating_add(1);
            } else if let Some(f) = vote(text)
                && let Some(i) = ORDER.iter().position(|&o| o == f)
                && let Some(v) = votes.get_mut(i)
            {
                *v = v.saturating_add(1);
            }
        }
        if lines >= SNIFF_LINES {
            break;
        }
    }
    let Some(first_data) = first_data else {
        return Ok(Sniffed::Format(FeedFormat::Empty));
    };
    if commas > 0 && commas.saturating_mul(2) >= lines {
        return Ok(Sniffed::Format(FeedFormat::Csv));
    }
    let mut best: Option<(usize, FeedFormat)> = None;
    for (&v, &f) in votes.iter().zip(ORDER.iter()) {
        if v > 0 && best.is_none_or(|(b, _)| v > b) {
            best = Some((v, f));
        }
    }
    Ok(match best {
        Some((_, f)) => Sniffed::Format(f),
        None => Sniffed::Unrecognised(first_data),
    })
}

/// Feed files of a directory, sorted by name.
fn feed_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, IntelError> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        let msg = if e.kind() == io::ErrorKind::NotFound {
            "intel directory does not exist".to_owned()
        } else {
            format!("cannot read intel directory: {e}")
        };
        IntelError::new(dir, None, msg)
    })?;
    let mut files = Vec::new();
    for ent in rd {
        let ent = ent
            .map_err(|e| IntelError::new(dir, None, format!("cannot read intel directory: {e}")))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let lower = name.to_ascii_lowercase();
        if name.starts_with('.')
            || lower.ends_with(".md")
            || lower.starts_with("readme")
            || name.ends_with('~')
            || lower.ends_with(".tmp")
            || lower.ends_with(".part")
        {
            continue;
        }
        let path = ent.path();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => files.push((name, path)),
            Ok(_) => {}
            Err(e) => {
                return Err(IntelError::new(
                    &path,
                    None,
                    format!("feed {name}: cannot read: {e}"),
                ));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Builds a set; holds what only loading needs (prefix staging, label interning).
struct Builder {
    set: IntelSet,
    limits: IntelLimits,
    v4_pending: Vec<(u128, u8, Meta)>,
    v6_pending: Vec<(u128, u8, Meta)>,
    prefix_seen: HashSet<(bool, u128, u8)>,
    label_ids: HashMap<String, u32>,
}

impl Builder {
    fn new(limits: IntelLimits) -> Self {
        Self {
            set: IntelSet::default(),
            limits,
            v4_pending: Vec::new(),
            v6_pending: Vec::new(),
            prefix_seen: HashSet::new(),
            label_ids: HashMap::new(),
        }
    }

    fn load_feed(&mut self, feed: u16, name: &str, path: &Path) -> Result<FeedReport, IntelError> {
        let io_err = |line: Option<usize>, e: io::Error| {
            IntelError::new(path, line, format!("feed {name}: cannot read: {e}"))
        };
        let file = File::open(path).map_err(|e| io_err(None, e))?;
        let mut reader = LineReader::new(file);
        let format = match format_by_extension(name) {
            Some(f) => f,
            None => {
                let sniffed = sniff(&mut reader).map_err(|e| io_err(None, e))?;
                reader.rewind().map_err(|e| io_err(None, e))?;
                match sniffed {
                    Sniffed::Format(f) => f,
                    Sniffed::Unrecognised(line) => {
                        return Err(IntelError::new(
                            path,
                            Some(line),
                            format!(
                                "feed {name}: format not recognised (not addresses, names, \
                                 hosts, JA3/JA4 or CSV)"
                            ),
                        ));
                    }
                }
            }
        };
        let mut report = FeedReport::new(name, path, format);
        let mut csv = CsvState::default();
        let mut data_lines = 0usize;
        let mut items = Vec::new();
        loop {
            let at = reader.line_no.saturating_add(1);
            let next = reader.next_line().map_err(|e| io_err(Some(at), e))?;
            let Some((line_no, bytes)) = next else { break };
            let Some(bytes) = bytes else {
                data_lines = data_lines.saturating_add(1);
                report.skip(line_no, format!("line longer than {MAX_LINE} bytes"));
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            if is_comment(bytes) {
                if format == FeedFormat::Csv
                    && csv.layout.is_none()
                    && data_lines == 0
                    && let Some(l) = core::str::from_utf8(bytes).ok().and_then(comment_header)
                {
                    csv.comment_header = Some(l);
                }
                continue;
            }
            data_lines = data_lines.saturating_add(1);
            let Ok(text) = core::str::from_utf8(bytes) else {
                report.skip(
                    line_no,
                    format!("not UTF-8: {}", shown(&String::from_utf8_lossy(bytes))),
                );
                continue;
            };
            items.clear();
            let parsed = if format == FeedFormat::Csv {
                match parse_csv_line(&mut csv, text, &mut items) {
                    Ok(CsvRow::Header) => {
                        data_lines = data_lines.saturating_sub(1);
                        continue;
                    }
                    Ok(CsvRow::Row(label)) => Ok(label),
                    Err(e) => Err(e),
                }
            } else {
                parse_list_line(format, text, &mut items)
            };
            let label = match parsed {
                Ok(label) => label,
                Err(message) => {
                    report.skip(line_no, message);
                    continue;
                }
            };
            if items.is_empty() {
                continue;
            }
            let meta = Meta {
                label: label.map_or(NO_LABEL, |l| self.intern(l)),
                feed,
            };
            for item in items.drain(..) {
                match self.insert(item, meta) {
                    Ok(true) => report.entries = report.entries.saturating_add(1),
                    Ok(false) => report.duplicates = report.duplicates.saturating_add(1),
                    Err(()) => {
                        return Err(IntelError::new(
                            path,
                            Some(line_no),
                            format!(
                                "feed {name}: more than {} entries in the intel set (max_entries)",
                                self.limits.max_entries
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(l) = csv.layout {
            report.column = Some(l.col_name);
            if !l.label_names.is_empty() {
                report.label_column = Some(l.label_names.join("|"));
            }
        }
        if report.skipped_lines > 0 && report.skipped_lines.saturating_mul(2) > data_lines {
            let first = report.first_errors.first();
            return Err(IntelError::new(
                path,
                first.map(|e| e.line),
                format!(
                    "feed {name}: broken, {} of {} data lines unreadable{}",
                    report.skipped_lines,
                    data_lines,
                    first.map_or(String::new(), |e| format!(" (first: {})", e.message))
                ),
            ));
        }
        Ok(report)
    }

    /// Keeps a label once (cut to [`LABEL_MAX`] bytes, control characters dropped).
    fn intern(&mut self, label: &str) -> u32 {
        let mut clean = String::new();
        for c in label
            .replace("\"\"", "\"")
            .chars()
            .filter(|c| !c.is_control())
        {
            if clean.len().saturating_add(c.len_utf8()) > LABEL_MAX {
                break;
            }
            clean.push(c);
        }
        let clean = clean.trim();
        if clean.is_empty() {
            return NO_LABEL;
        }
        if let Some(&id) = self.label_ids.get(clean) {
            return id;
        }
        let (Ok(off), Ok(len), Ok(id)) = (
            u32::try_from(self.set.label_text.len()),
            u8::try_from(clean.len()),
            u32::try_from(self.set.labels.len()),
        ) else {
            return NO_LABEL;
        };
        if id == NO_LABEL {
            return NO_LABEL;
        }
        self.set.label_text.push_str(clean);
        self.set.labels.push((off, len));
        self.label_ids.insert(clean.to_owned(), id);
        id
    }

    /// Stores an entry: `Ok(true)` new, `Ok(false)` already held, `Err` over `max_entries`.
    fn insert(&mut self, item: Item, meta: Meta) -> Result<bool, ()> {
        let full = self.set.entries >= self.limits.max_entries;
        let set = &mut self.set;
        let new = match item {
            Item::V4(a) => vacant(set.v4.entry(a), meta, full)?,
            Item::V6(a) => vacant(set.v6.entry(a), meta, full)?,
            Item::Ja3(k) => vacant(set.ja3.entry(k), meta, full)?,
            Item::Ja4(k) => vacant(set.ja4.entry(k), meta, full)?,
            Item::Sha1(k) => vacant(set.sha1.entry(k), meta, full)?,
            Item::P4(_, len) | Item::P6(_, len) => {
                let (v6, start) = match item {
                    Item::P4(a, _) => (false, u128::from(a)),
                    Item::P6(a, _) => (true, a),
                    _ => return Ok(false),
                };
                if self.prefix_seen.contains(&(v6, start, len)) {
                    false
                } else if full {
                    return Err(());
                } else {
                    self.prefix_seen.insert((v6, start, len));
                    let pending = if v6 {
                        &mut self.v6_pending
                    } else {
                        &mut self.v4_pending
                    };
                    pending.push((start, len, meta));
                    true
                }
            }
            Item::Name(name) => {
                let bytes = name.as_bytes();
                let hash = set.hasher.hash_one(bytes);
                let text = &set.name_text;
                if set
                    .names
                    .find(hash, |r| name_of(text, r) == bytes)
                    .is_some()
                {
                    false
                } else if full {
                    return Err(());
                } else {
                    let off = u32::try_from(set.name_text.len()).map_err(|_| ())?;
                    let len = u16::try_from(bytes.len()).map_err(|_| ())?;
                    set.name_text.push_str(&name);
                    let rec = NameRec {
                        off,
                        label: meta.label,
                        feed: meta.feed,
                        len,
                    };
                    let (hasher, text) = (&set.hasher, &set.name_text);
                    set.names
                        .insert_unique(hash, rec, |r| hasher.hash_one(name_of(text, r)));
                    true
                }
            }
        };
        if new {
            self.set.entries = self.set.entries.saturating_add(1);
        }
        Ok(new)
    }

    /// Sorts the prefixes into ranges with their parents and trims capacities.
    fn finish(mut self) -> IntelSet {
        let mut set = self.set;
        set.v4_prefixes = prefixes(&mut self.v4_pending);
        set.v6_prefixes = prefixes(&mut self.v6_pending);
        set.v4.shrink_to_fit();
        set.v6.shrink_to_fit();
        set.ja3.shrink_to_fit();
        set.ja4.shrink_to_fit();
        set.sha1.shrink_to_fit();
        set.name_text.shrink_to_fit();
        set.label_text.shrink_to_fit();
        set.labels.shrink_to_fit();
        set.feeds.shrink_to_fit();
        let (hasher, text) = (&set.hasher, &set.name_text);
        set.names
            .shrink_to_fit(|r| hasher.hash_one(name_of(text, r)));
        set
    }
}

fn vacant<K: core::hash::Hash + Eq>(
    entry: Entry<'_, K, Meta, DefaultHashBuilder>,
    meta: Meta,
    full: bool,
) -> Result<bool, ()> {
    match entry {
        Entry::Occupied(_) => Ok(false),
        Entry::Vacant(_) if full => Err(()),
        Entry::Vacant(v) => {
            v.insert(meta);
            Ok(true)
        }
    }
}

/// Flattens prefixes into segments: sorted by start, then by length (outer first), prefixes
/// nest or are disjoint, so a stack of open prefixes tells who owns the space after each one
/// ends. Pending starts are already masked and fit `T` (IPv4 prefixes are staged from `u32`).
fn prefixes<T>(pending: &mut [(u128, u8, Meta)]) -> Prefixes<T>
where
    T: Copy + Ord + TryFrom<u128>,
{
    /// Adds a segment; one starting where the last one starts replaces it (inner wins).
    fn segment(segs: &mut Vec<(u128, u32)>, start: u128, owner: u32) {
        match segs.last_mut() {
            Some(last) if last.0 == start => last.1 = owner,
            _ => segs.push((start, owner)),
        }
    }
    pending.sort_by_key(|&(start, len, _)| (start, len));
    let bits = u32::try_from(size_of::<T>() * 8).unwrap_or(128).min(128);
    let all = u128::MAX.checked_shr(128 - bits).unwrap_or(u128::MAX);
    let mut nets = Vec::with_capacity(pending.len());
    let mut segs: Vec<(u128, u32)> = Vec::with_capacity(pending.len().saturating_mul(2));
    // Open prefixes: (last address, index in `nets`).
    let mut open: Vec<(u128, u32)> = Vec::new();
    let close = |open: &mut Vec<(u128, u32)>, segs: &mut Vec<(u128, u32)>| {
        if let Some((end, _)) = open.pop()
            && let Some(next) = end.checked_add(1).filter(|&n| n <= all)
        {
            segment(segs, next, open.last().map_or(NO_PREFIX, |o| o.1));
        }
    };
    for &(start, len, meta) in pending.iter() {
        while open.last().is_some_and(|&(end, _)| end < start) {
            close(&mut open, &mut segs);
        }
        let (Ok(s), Ok(idx)) = (T::try_from(start), u32::try_from(nets.len())) else {
            continue;
        };
        if idx == NO_PREFIX {
            break;
        }
        nets.push(Net {
            start: s,
            label: meta.label,
            feed: meta.feed,
            len,
        });
        segment(&mut segs, start, idx);
        open.push((start | all.checked_shr(u32::from(len)).unwrap_or(0), idx));
    }
    while !open.is_empty() {
        close(&mut open, &mut segs);
    }
    let mut out = Prefixes {
        seg_starts: Vec::with_capacity(segs.len()),
        seg_owner: Vec::with_capacity(segs.len()),
        nets,
    };
    for (start, owner) in segs {
        if let Ok(s) = T::try_from(start) {
            out.seg_starts.push(s);
            out.seg_owner.push(owner);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static DIR_SEQ: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let n = DIR_SEQ.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("botd-intel-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, content).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const SPAMHAUS_DROP: &str = "\
; Spamhaus DROP List 2024/06/12 - (c) 2024 The Spamhaus Project SLU
; https://www.spamhaus.org/drop/drop.txt
; Last-Modified: Tue, 11 Jun 2024 15:42:06 GMT
; Expires: Wed, 12 Jun 2024 16:36:35 GMT
1.10.16.0/20 ; SBL256894
1.19.0.0/16 ; SBL434604
1.32.128.0/18 ; SBL286275
2.56.192.0/22 ; SBL459831
5.8.37.0/24 ; SBL284078
5.134.128.0/19 ; SBL270738
";

    const SPAMHAUS_DROP_V6: &str = "\
; Spamhaus IPv6 DROP List 2024/06/12 - (c) 2024 The Spamhaus Project SLU
; https://www.spamhaus.org/drop/drop_v6.txt
; Last-Modified: Tue, 11 Jun 2024 15:42:06 GMT
; Expires: Wed, 12 Jun 2024 16:36:35 GMT
2001:678:738::/48 ; SBL635837
2a06:e480::/29 ; SBL301771
";

    const FEODO_TXT: &str = "\
#################################################################
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist                 #
# Last updated: 2024-06-12 10:05:12 UTC                         #
#                                                               #
# Terms Of Use: https://feodotracker.abuse.ch/blocklist/        #
# For questions please contact feodotracker [at] abuse.ch       #
#################################################################
#
# DstIP
50.16.16.211
162.243.103.246
34.204.119.63
# END 3 entries
";

    const FEODO_CSV: &str = "\
################################################################
# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #
# Last updated: 2024-06-12 10:05:12 UTC                        #
#                                                              #
# Terms Of Use: https://feodotracker.abuse.ch/blocklist/       #
# For questions please contact feodotracker [at] abuse.ch      #
################################################################
#
\"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"
\"2022-06-04 21:24:53\",\"162.243.103.246\",\"8080\",\"offline\",\"2024-06-10\",\"Emotet\"
\"2023-12-30 13:56:31\",\"50.16.16.211\",\"443\",\"online\",\"2024-06-12\",\"QakBot\"
\"2024-01-13 21:41:15\",\"34.204.119.63\",\"443\",\"offline\",\"2024-06-01\",\"QakBot\"
\"2024-05-02 08:10:44\",\"45.61.139.13\",\"8443\",\"online\",\"2024-06-12\",\"Pikabot\"
# Number of entries: 4
";

    const SSLBL_JA3: &str = "\
################################################################
# abuse.ch SSLBL JA3 Fingerprint Blacklist (CSV)               #
# Last updated: 2024-06-12 10:00:05 UTC                        #
#                                                              #
# Terms Of Use: https://sslbl.abuse.ch/blacklist/              #
# For questions please contact sslbl [at] abuse.ch             #
################################################################
#
# ja3_md5,Firstseen,Lastseen,Listingreason
b386946a5a44d1ddcc843bc75336dfce,2017-07-14 18:08:15,2019-07-27 20:42:54,Dridex
8991a387e4cc841740f25d6f5139f92d,2017-07-14 18:08:15,2021-08-03 09:10:02,Adwind
1aa7bf8b97e540ca5edd75f7b8384bfa,2017-07-14 18:08:21,2020-01-26 16:22:57,TrickBot
e7d705a3286e19ea42f587b344ee6865,2017-07-14 18:08:27,2021-07-15 11:40:04,Tofsee
# END (4 entries)
";

    const SSLBL_SHA1: &str = "\
################################################################
# abuse.ch SSLBL SSL Certificate Blacklist (SHA1 Fingerprints) #
# Last updated: 2024-06-12 10:00:05 UTC                        #
#                                                              #
# Terms Of Use: https://sslbl.abuse.ch/blacklist/              #
# For questions please contact sslbl [at] abuse.ch             #
################################################################
#
# Listingdate,SHA1,Listingreason
2024-06-12 09:12:54,d2a0c4e5b7f1b4a5e3c2f0e1d9c8b7a6f5e4d3c2,AsyncRAT C&C
2024-06-11 17:03:21,0a1b2c3d4e5f60718293a4b5c6d7e8f901234567,Cobalt Strike C&C
";

    const URLHAUS_HOSTFILE: &str = "\
################################################################
# abuse.ch URLhaus Host file                                   #
# Last updated: 2024-06-12 10:07:04 (UTC)                      #
#                                                              #
# Terms Of Use: https://urlhaus.abuse.ch/api/                  #
# For questions please contact urlhaus [at] abuse.ch           #
################################################################
#
127.0.0.1\tevil-dropper.example
127.0.0.1\tpayload.bad-zone.example
127.0.0.1\tEvil-Cdn.Example.
";

    const URLHAUS_CSV: &str = "\
################################################################
# abuse.ch URLhaus Database Dump (CSV - recent URLs only)      #
# Last updated: 2024-06-12 10:07:04 (UTC)                      #
#                                                              #
# Terms Of Use: https://urlhaus.abuse.ch/api/                  #
# For questions please contact urlhaus [at] abuse.ch           #
################################################################
#
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
\"2871301\",\"2024-06-12 10:06:05\",\"http://117.206.180.73:55938/i\",\"online\",\"2024-06-12 10:06:05\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/2871301/\",\"geenensp\"
\"2871300\",\"2024-06-12 10:05:07\",\"https://dl.loader-cdn.example/files/inv_0612.exe\",\"online\",\"2024-06-12 10:05:07\",\"malware_download\",\"exe,RemcosRAT\",\"https://urlhaus.abuse.ch/url/2871300/\",\"abuse_ch\"
\"2871299\",\"2024-06-12 10:04:11\",\"http://[2001:db8:bad::7]:8080/x.sh\",\"offline\",\"\",\"malware_download\",\"None\",\"https://urlhaus.abuse.ch/url/2871299/\",\"anonymous\"
";

    const JA4_LIST: &str = "\
# JA4 client fingerprints seen from C2 implants
t13d1516h2_8daaf6152771_b186095e22b6 ; Sliver
T13D190900_9DC949149365_97F8AA674FD9 # Cobalt Strike
";

    fn public_feeds(d: &TempDir) {
        d.write("spamhaus_drop.txt", SPAMHAUS_DROP);
        d.write("spamhaus_drop_v6.txt", SPAMHAUS_DROP_V6);
        d.write("feodo_ipblocklist.txt", FEODO_TXT);
        d.write("feodo_ipblocklist.csv", FEODO_CSV);
        d.write("sslbl_ja3_fingerprints.csv", SSLBL_JA3);
        d.write("sslblacklist.csv", SSLBL_SHA1);
        d.write("urlhaus_hostfile.txt", URLHAUS_HOSTFILE);
        d.write("urlhaus_recent.csv", URLHAUS_CSV);
        d.write("c2.ja4", JA4_LIST);
        d.write("README.md", "# not a feed\n");
        d.write(".drop.txt.tmp", "garbage that is not a feed\n");
    }

    fn load(d: &TempDir) -> (IntelSet, Vec<FeedReport>) {
        IntelSet::load_dir(&d.0, &IntelLimits::default()).unwrap()
    }

    fn report<'r>(reports: &'r [FeedReport], name: &str) -> &'r FeedReport {
        reports.iter().find(|r| r.name == name).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_feeds_load_with_their_formats_and_counts() {
        let d = TempDir::new("public");
        public_feeds(&d);
        let (set, reports) = load(&d);
        let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "c2.ja4",
                "feodo_ipblocklist.csv",
                "feodo_ipblocklist.txt",
                "spamhaus_drop.txt",
                "spamhaus_drop_v6.txt",
                "sslbl_ja3_fingerprints.csv",
                "sslblacklist.csv",
                "urlhaus_hostfile.txt",
                "urlhaus_recent.csv"
            ]
        );
        let r = report(&reports, "spamhaus_drop.txt");
        assert_eq!(
            (r.format, r.entries, r.skipped_lines),
            (FeedFormat::Addresses, 6, 0)
        );
        assert_eq!(report(&reports, "spamhaus_drop_v6.txt").entries, 2);
        let r = report(&reports, "feodo_ipblocklist.csv");
        assert_eq!((r.format, r.entries), (FeedFormat::Csv, 4));
        assert_eq!(r.column.as_deref(), Some("dst_ip"));
        assert_eq!(r.label_column.as_deref(), Some("malware"));
        // The .txt repeats three of the CSV's addresses; the CSV (earlier by name) keeps them.
        let r = report(&reports, "feodo_ipblocklist.txt");
        assert_eq!(
            (r.format, r.entries, r.duplicates),
            (FeedFormat::Addresses, 0, 3)
        );
        let r = report(&reports, "sslbl_ja3_fingerprints.csv");
        assert_eq!((r.format, r.entries), (FeedFormat::Csv, 4));
        assert_eq!(r.column.as_deref(), Some("ja3_md5"));
        assert_eq!(r.label_column.as_deref(), Some("listingreason"));
        let r = report(&reports, "sslblacklist.csv");
        assert_eq!((r.entries, r.column.as_deref()), (2, Some("sha1")));
        let r = report(&reports, "urlhaus_hostfile.txt");
        assert_eq!((r.format, r.entries), (FeedFormat::Hosts, 3));
        let r = report(&reports, "urlhaus_recent.csv");
        assert_eq!(
            (r.format, r.entries, r.skipped_lines),
            (FeedFormat::Csv, 3, 0)
        );
        assert_eq!(r.column.as_deref(), Some("url"));
        let r = report(&reports, "c2.ja4");
        assert_eq!((r.format, r.entries), (FeedFormat::Ja4, 2));
        assert_eq!(set.entries(), 6 + 2 + 4 + 4 + 2 + 3 + 3 + 2);
        assert_eq!(
            set.counts(),
            IntelCounts {
                addresses: 6,
                prefixes: 8,
                names: 4,
                ja3: 4,
                ja4: 2,
                cert_sha1: 2
            }
        );
        assert_eq!(set.feeds().len(), 9);
        assert!(set.memory_bytes() > 1000, "{}", set.memory_bytes());
    }

    #[test]
    fn addresses_hit_exact_and_prefix_and_miss() {
        let d = TempDir::new("addr");
        public_feeds(&d);
        let (set, _) = load(&d);
        let h = set.match_addr(ip("1.10.20.5")).unwrap();
        assert_eq!(h.kind, HitKind::Addr);
        assert_eq!(h.feed_name(), "spamhaus_drop.txt");
        assert_eq!(h.entry, HitEntry::Prefix(ip("1.10.16.0"), 20));
        assert_eq!(h.entry.to_string(), "1.10.16.0/20");
        assert_eq!(h.label, Some("SBL256894"));
        assert!(set.match_addr(ip("1.10.32.0")).is_none());
        assert!(set.match_addr(ip("1.10.15.255")).is_none());
        assert!(set.match_addr(ip("1.10.31.255")).is_some());
        let h = set.match_addr(ip("50.16.16.211")).unwrap();
        assert_eq!(
            (h.feed_name(), h.label, h.entry),
            (
                "feodo_ipblocklist.csv",
                Some("QakBot"),
                HitEntry::Addr(ip("50.16.16.211"))
            )
        );
        assert_eq!(
            set.match_addr(ip("45.61.139.13")).unwrap().label,
            Some("Pikabot")
        );
        assert!(set.match_addr(ip("50.16.16.212")).is_none());
        // IPv4-mapped IPv6 matches as IPv4.
        assert!(set.match_addr(ip("::ffff:1.19.200.1")).is_some());
        let h = set.match_addr(ip("2a06:e487:1::5")).unwrap();
        assert_eq!(h.entry.to_string(), "2a06:e480::/29");
        assert!(set.match_addr(ip("2a06:e488::1")).is_none());
        // URLhaus URL hosts that are addresses are address entries.
        let h = set.match_addr(ip("117.206.180.73")).unwrap();
        assert_eq!(h.feed_name(), "urlhaus_recent.csv");
        assert_eq!(h.label, Some("32-bit,elf,mips,Mozi"));
        let h = set.match_addr(ip("2001:db8:bad::7")).unwrap();
        assert_eq!(
            h.label,
            Some("malware_download"),
            "\"None\" tags fall back to threat"
        );
    }

    #[test]
    fn names_hit_themselves_and_parents_case_insensitively() {
        let d = TempDir::new("names");
        public_feeds(&d);
        d.write(
            "domains.txt",
            "# local list\nbad.example\nC2.Other.Example. ; beacon\n*.wild.example\n",
        );
        let (set, reports) = load(&d);
        assert_eq!(report(&reports, "domains.txt").format, FeedFormat::Domains);
        let h = set.match_name("a.b.bad.example").unwrap();
        assert_eq!(
            (h.kind, h.entry),
            (HitKind::Name, HitEntry::Name("bad.example"))
        );
        assert_eq!(h.feed_name(), "domains.txt");
        assert!(set.match_name("BAD.EXAMPLE.").is_some());
        assert!(set.match_name("notbad.example").is_none());
        assert!(set.match_name("example").is_none());
        assert!(set.match_name("").is_none());
        assert!(set.match_name("...").is_none());
        assert_eq!(
            set.match_name("c2.other.example").unwrap().label,
            Some("beacon")
        );
        assert!(set.match_name("other.example").is_none());
        assert!(set.match_name("x.wild.example").is_some());
        let h = set.match_name("www.evil-cdn.example").unwrap();
        assert_eq!(h.entry, HitEntry::Name("evil-cdn.example"));
        assert_eq!(h.feed_name(), "urlhaus_hostfile.txt");
        let h = set.match_name("dl.loader-cdn.example").unwrap();
        assert_eq!(h.label, Some("exe,RemcosRAT"));
        // A name too long to be listed still matches by its listed parent.
        let long = format!("{}.bad.example", "a.".repeat(200));
        assert!(set.match_name(&long).is_some());
    }

    #[test]
    fn fingerprints_hit() {
        let d = TempDir::new("tls");
        public_feeds(&d);
        let (set, _) = load(&d);
        let h = set.match_ja3("B386946A5A44D1DDCC843BC75336DFCE").unwrap();
        assert_eq!((h.kind, h.label), (HitKind::Ja3, Some("Dridex")));
        assert_eq!(h.entry.to_string(), "b386946a5a44d1ddcc843bc75336dfce");
        assert!(set.match_ja3("b386946a5a44d1ddcc843bc75336dfcf").is_none());
        assert!(set.match_ja3("b386946a").is_none());
        assert!(set.match_ja3("zz86946a5a44d1ddcc843bc75336dfce").is_none());
        let h = set
            .match_ja4("t13d1516h2_8daaf6152771_b186095e22b6")
            .unwrap();
        assert_eq!((h.kind, h.label), (HitKind::Ja4, Some("Sliver")));
        assert_eq!(
            h.entry,
            HitEntry::Ja4("t13d1516h2_8daaf6152771_b186095e22b6")
        );
        let h = set
            .match_ja4("t13d190900_9dc949149365_97f8aa674fd9")
            .unwrap();
        assert_eq!(h.label, Some("Cobalt Strike"));
        assert!(
            set.match_ja4("t13d1516h2_8daaf6152771_b186095e22b7")
                .is_none()
        );
        let h = set
            .match_cert_sha1("D2:A0:C4:E5:B7:F1:B4:A5:E3:C2:F0:E1:D9:C8:B7:A6:F5:E4:D3:C2")
            .unwrap();
        assert_eq!((h.kind, h.label), (HitKind::CertSha1, Some("AsyncRAT C&C")));
        assert!(
            set.match_cert_sha1("d2a0c4e5b7f1b4a5e3c2f0e1d9c8b7a6f5e4d3c3")
                .is_none()
        );
    }

    #[test]
    fn hit_record_is_fixed_size_and_cut_when_long() {
        let d = TempDir::new("record");
        let long_feed = format!("{}.txt", "f".repeat(40));
        let long_name = format!("{}.example", "n".repeat(62));
        d.write(&long_feed, format!("{long_name} ; {}\n", "L".repeat(50)));
        let (set, _) = load(&d);
        let h = set.match_name(&long_name).unwrap();
        let rec = h.record();
        assert_eq!(rec.kind, HitKind::Name);
        assert_eq!(rec.feed.len(), 32);
        assert_eq!(rec.entry.as_str(), &long_name[..64]);
        assert_eq!(rec.label.len(), 32, "labels are cut to 32 bytes at load");
        assert!(rec.truncated);
        // Its strings are inline; the rest holds a pointer or two, smaller on 32-bit targets.
        assert_eq!(
            size_of::<HitRecord>(),
            if cfg!(target_pointer_width = "64") {
                160
            } else {
                144
            }
        );

        let d2 = TempDir::new("record2");
        public_feeds(&d2);
        let (set, _) = load(&d2);
        let rec = set.match_addr(ip("5.8.37.9")).unwrap().record();
        assert_eq!(rec.feed.as_str(), "spamhaus_drop.txt");
        assert_eq!(rec.entry.as_str(), "5.8.37.0/24");
        assert_eq!(rec.label.as_str(), "SBL284078");
        assert!(!rec.truncated);
    }

    #[test]
    fn nested_prefixes_longest_wins_and_agree_with_brute_force() {
        let d = TempDir::new("nested");
        let list = "10.0.0.0/8 ; eight\n10.1.0.0/16 ; sixteen\n10.1.2.0/24 ; twentyfour\n\
                    10.2.0.0/16 ; other\n10.1.2.128/25 ; deep\n192.0.2.0/24\n10.1.2.3/32\n\
                    10.1.2.4/24 ; host bits set\n";
        d.write("nested.cidr", list);
        let (set, reports) = load(&d);
        assert_eq!(reports[0].entries, 7);
        assert_eq!(reports[0].duplicates, 1, "10.1.2.4/24 is 10.1.2.0/24");
        let label = |a: &str| set.match_addr(ip(a)).map(|h| h.label);
        assert_eq!(label("10.1.2.3"), Some(None), "exact /32");
        assert_eq!(label("10.1.2.5"), Some(Some("twentyfour")));
        assert_eq!(label("10.1.2.200"), Some(Some("deep")));
        assert_eq!(label("10.1.3.1"), Some(Some("sixteen")));
        assert_eq!(label("10.2.255.255"), Some(Some("other")));
        assert_eq!(label("10.3.0.1"), Some(Some("eight")));
        assert_eq!(label("10.255.255.255"), Some(Some("eight")));
        assert_eq!(label("11.0.0.0"), None);
        assert_eq!(label("9.255.255.255"), None);

        // Edges of the address space.
        let d = TempDir::new("edges");
        d.write(
            "edges.cidr",
            "0.0.0.0/8 ; zero\n240.0.0.0/4 ; e\n255.255.255.0/24 ; top\n\
             ::/8 ; v6zero\nffff::/16 ; v6top\nffff:ffff::/32 ; v6toptop\n",
        );
        let (set, _) = load(&d);
        let label = |a: &str| set.match_addr(ip(a)).and_then(|h| h.label);
        assert_eq!(label("0.0.0.0"), Some("zero"));
        assert_eq!(label("0.255.255.255"), Some("zero"));
        assert_eq!(label("1.0.0.0"), None);
        assert_eq!(label("239.255.255.255"), None);
        assert_eq!(label("250.1.2.3"), Some("e"));
        assert_eq!(label("255.255.254.255"), Some("e"));
        assert_eq!(label("255.255.255.255"), Some("top"));
        assert_eq!(label("::1"), Some("v6zero"));
        assert_eq!(label("100::1"), None);
        assert_eq!(label("ffff:1::1"), Some("v6top"));
        assert_eq!(
            label("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Some("v6toptop")
        );
        assert_eq!(label("fffe:ffff::1"), None);

        // Random nested and disjoint prefixes: the range search equals a linear scan.
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut prefixes: Vec<(u32, u8)> = Vec::new();
        let mut text = String::new();
        for _ in 0..400 {
            let base = (xorshift(&mut rng) as u32) & 0x0FFF_FFFF | 0x2000_0000;
            let len = 8 + (xorshift(&mut rng) % 24) as u8;
            let net = base & u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0);
            prefixes.push((net, len));
            text.push_str(&format!(
                "{}/{len} ; {}/{len}\n",
                Ipv4Addr::from(net),
                Ipv4Addr::from(net)
            ));
        }
        let d = TempDir::new("random");
        d.write("random.cidr", &text);
        let (set, _) = load(&d);
        for i in 0..20_000 {
            let x = if i % 2 == 0 {
                let (net, len) = prefixes[i % prefixes.len()];
                net | ((xorshift(&mut rng) as u32) & (u32::MAX >> len))
            } else {
                (xorshift(&mut rng) as u32) & 0x3FFF_FFFF
            };
            let best = prefixes
                .iter()
                .filter(|&&(net, len)| {
                    x & u32::MAX.checked_shl(u32::from(32 - len)).unwrap_or(0) == net
                })
                .max_by_key(|&&(_, len)| len)
                .map(|&(net, len)| format!("{}/{len}", Ipv4Addr::from(net)));
            let got = set
                .match_addr(IpAddr::V4(Ipv4Addr::from(x)))
                .map(|h| h.entry.to_string());
            assert_eq!(got, best, "{}", Ipv4Addr::from(x));
        }
    }

    #[test]
    fn bad_lines_are_counted_with_line_numbers() {
        let d = TempDir::new("errors");
        let mut drop = SPAMHAUS_DROP.to_owned();
        drop.push_str("1.2.3.999/24 ; SBL1\n5.6.7.0/24 ; SBL2\nevil.example ; SBL3\n");
        d.write("drop.txt", &drop);
        let (_, reports) = load(&d);
        let r = &reports[0];
        assert_eq!((r.entries, r.skipped_lines), (7, 2));
        assert_eq!(r.first_errors[0].line, 11);
        assert!(
            r.first_errors[0]
                .message
                .contains("\"1.2.3.999/24 ; SBL1\""),
            "{}",
            r.first_errors[0].message
        );
        assert_eq!(r.first_errors[1].line, 13);
        let line = r.to_string();
        assert!(
            line.starts_with("drop.txt: addresses, 7 entries, 2 lines skipped; line 11:"),
            "{line}"
        );

        // Only the first five errors are kept, all are counted.
        let d = TempDir::new("errors5");
        let mut s = String::new();
        for i in 0..20 {
            s.push_str(&format!("10.0.{i}.0/24\n"));
        }
        for _ in 0..8 {
            s.push_str("not/an/address\n");
        }
        d.write("many.ip", &s);
        let (_, reports) = load(&d);
        assert_eq!(
            (reports[0].skipped_lines, reports[0].first_errors.len()),
            (8, 5)
        );
        assert_eq!(reports[0].first_errors[4].line, 25);
    }

    #[test]
    fn non_utf8_matters_only_in_data_lines() {
        let d = TempDir::new("utf8");
        let mut bytes = b"\xef\xbb\xbf# caf\xe9 list (latin-1 comment)\r\n".to_vec();
        bytes.extend_from_slice(b"good.example\r\nbad\xff.example\r\nfine.example\r\n");
        d.write("names.domains", &bytes);
        let (set, reports) = load(&d);
        assert_eq!((reports[0].entries, reports[0].skipped_lines), (2, 1));
        assert_eq!(reports[0].first_errors[0].line, 3);
        assert!(reports[0].first_errors[0].message.starts_with("not UTF-8"));
        assert!(set.match_name("fine.example").is_some());
    }

    #[test]
    fn broken_feed_fails_the_load() {
        let d = TempDir::new("broken");
        public_feeds(&d);
        d.write(
            "zz_broken.txt",
            "1.2.3.4\n<html>\n<body>\nNot Found\n</body>\n",
        );
        let e = IntelSet::load_dir(&d.0, &IntelLimits::default()).unwrap_err();
        assert!(e.path.ends_with("zz_broken.txt"), "{e}");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("broken, 4 of 5"), "{e}");
        assert!(e.to_string().contains("zz_broken.txt:2:"), "{e}");

        // inspect_dir lists the broken feed beside the good ones.
        let all = IntelSet::inspect_dir(&d.0, &IntelLimits::default()).unwrap();
        assert_eq!(all.len(), 10);
        assert_eq!(all.iter().filter(|r| r.is_err()).count(), 1);

        // An extension override that disagrees with the content breaks the feed.
        let d = TempDir::new("override");
        d.write("names.ip", "evil.example\nbad.example\n");
        assert!(IntelSet::load_dir(&d.0, &IntelLimits::default()).is_err());

        // Content that is no known format.
        let d = TempDir::new("unknown");
        d.write("page.txt", "<html>\n<title>oops</title>\n");
        let e = IntelSet::load_dir(&d.0, &IntelLimits::default()).unwrap_err();
        assert!(e.message.contains("format not recognised"), "{e}");
        assert_eq!(e.line, Some(1));

        // A CSV whose rows have no usable column.
        let d = TempDir::new("csvbad");
        d.write("x.csv", "a,b\nc,d\n1.2.3.4,x\n");
        assert!(IntelSet::load_dir(&d.0, &IntelLimits::default()).is_err());
    }

    #[test]
    fn missing_dir_and_dangling_feed_are_errors() {
        let missing = std::env::temp_dir().join("botd-intel-no-such-dir-4711");
        let e = IntelSet::load_dir(&missing, &IntelLimits::default()).unwrap_err();
        assert_eq!(e.path, missing);
        assert!(e.message.contains("does not exist"), "{e}");

        let d = TempDir::new("dangling");
        std::os::unix::fs::symlink(d.0.join("nowhere"), d.0.join("feed.txt")).unwrap();
        let e = IntelSet::load_dir(&d.0, &IntelLimits::default()).unwrap_err();
        assert!(e.path.ends_with("feed.txt"), "{e}");
    }

    #[test]
    fn limits_are_errors_naming_the_feed() {
        let d = TempDir::new("limits");
        public_feeds(&d);
        let total = load(&d).0.entries();
        let exact = IntelLimits {
            max_entries: total,
            max_feeds: 9,
        };
        assert!(IntelSet::load_dir(&d.0, &exact).is_ok());
        let e = IntelSet::load_dir(
            &d.0,
            &IntelLimits {
                max_entries: total - 1,
                max_feeds: 9,
            },
        )
        .unwrap_err();
        assert!(e.message.contains("urlhaus_recent.csv"), "{e}");
        assert!(e.message.contains("max_entries"), "{e}");
        assert!(e.line.is_some());
        let e = IntelSet::load_dir(
            &d.0,
            &IntelLimits {
                max_entries: total,
                max_feeds: 8,
            },
        )
        .unwrap_err();
        assert!(e.message.contains("feed urlhaus_recent.csv"), "{e}");
        assert!(e.message.contains("max_feeds"), "{e}");
    }

    #[test]
    fn empty_and_comment_only_feeds_are_valid() {
        let d = TempDir::new("empty");
        d.write("empty.txt", "");
        d.write(
            "feodo.txt",
            "#################\n# abuse.ch Feodo\n#\n# DstIP\n# END 0 entries\n",
        );
        d.write("ja3.csv", "# ja3_md5,Firstseen,Lastseen,Listingreason\n");
        let (set, reports) = load(&d);
        assert!(set.is_empty());
        assert_eq!(reports.len(), 3);
        assert_eq!(report(&reports, "empty.txt").format, FeedFormat::Empty);
        assert_eq!(report(&reports, "feodo.txt").format, FeedFormat::Empty);
        assert_eq!(report(&reports, "ja3.csv").format, FeedFormat::Csv);
        assert!(set.match_addr(ip("1.2.3.4")).is_none());
        assert!(set.match_name("a.example").is_none());
        let lines: Vec<String> = set.summary_lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "empty.txt: empty, 0 entries, 0 lines skipped");
    }

    #[test]
    fn sniffing_and_csv_shapes() {
        let d = TempDir::new("sniff");
        d.write("hashes.txt", "b386946a5a44d1ddcc843bc75336dfce ; Dridex\n");
        d.write("ja3_nohdr.txt", "e7d705a3286e19ea42f587b344ee6865,Tofsee\n");
        d.write(
            "plain_hosts",
            "127.0.0.1 localhost\n::1 localhost ip6-loopback\nfe80::1%lo0 localhost\n\
             0.0.0.0 0.0.0.0\n0.0.0.0 ads.tracker.example tr.example\n",
        );
        d.write(
            "urls.csv",
            "\"1\",\"http://user:pw@Mixed.Case.example:81/x?y#z\"\n",
        );
        d.write("single.csv", "ja3_md5\n1aa7bf8b97e540ca5edd75f7b8384bfa\n");
        let (set, reports) = load(&d);
        assert_eq!(report(&reports, "hashes.txt").format, FeedFormat::Ja3);
        let r = report(&reports, "ja3_nohdr.txt");
        assert_eq!(
            (r.format, r.column.as_deref()),
            (FeedFormat::Csv, Some("column 1"))
        );
        let r = report(&reports, "plain_hosts");
        assert_eq!(
            (r.format, r.entries, r.skipped_lines),
            (FeedFormat::Hosts, 2, 0)
        );
        assert_eq!(
            report(&reports, "urls.csv").column.as_deref(),
            Some("column 2")
        );
        assert_eq!(report(&reports, "single.csv").entries, 1);
        assert!(set.match_name("mixed.case.example").is_some());
        assert!(set.match_name("tr.example").is_some());
        assert!(set.match_ja3("e7d705a3286e19ea42f587b344ee6865").is_some());
    }

    #[test]
    fn csv_splitting() {
        let mut f = Vec::new();
        split_csv(r#""a","b ""q"" c", d ,"",e,"#, &mut f).unwrap();
        assert_eq!(f, ["a", r#"b ""q"" c"#, "d", "", "e", ""]);
        f.clear();
        assert!(split_csv(r#""a,b"#, &mut f).is_err());
        f.clear();
        assert!(split_csv(r#""a"x,b"#, &mut f).is_err());
        assert_eq!(url_host("http://[2001:db8::1]:80/a"), Some("2001:db8::1"));
        assert_eq!(url_host("https://u@h.example"), Some("h.example"));
        assert_eq!(url_host("http:///x"), None);
        assert_eq!(
            parse_ja4("t13d1516h2_8daaf6152771_b186095e22b6").map(|_| ()),
            Some(())
        );
        assert!(parse_ja4("x13d1516h2_8daaf6152771_b186095e22b6").is_none());
        assert!(parse_domain("a..b").is_err());
        assert!(parse_domain("1.2.3").is_err());
        assert!(parse_domain("bücher.example").is_err());
    }

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    #[test]
    fn random_and_mutated_feeds_never_panic() {
        let d = TempDir::new("fuzz");
        let samples = [
            SPAMHAUS_DROP,
            SPAMHAUS_DROP_V6,
            FEODO_TXT,
            FEODO_CSV,
            SSLBL_JA3,
            SSLBL_SHA1,
            URLHAUS_HOSTFILE,
            URLHAUS_CSV,
            JA4_LIST,
        ];
        let mut rng = 0x1234_5678_9ABC_DEF1u64;
        let names = ["f.txt", "f.csv", "f.ip", "f.hosts", "f.ja4", "f"];
        let probe = |set: &IntelSet, bytes: &[u8]| {
            let s = String::from_utf8_lossy(bytes);
            let _ = set.match_name(&s);
            let _ = set.match_ja3(&s);
            let _ = set.match_ja4(&s);
            let _ = set.match_cert_sha1(&s);
            let _ = set.match_addr(ip("1.10.16.1"));
            let _ = set.summary_lines().count();
        };
        // Every prefix of each sample.
        for s in samples {
            let b = s.as_bytes();
            for cut in (0..b.len()).step_by(7) {
                let p = d.write("f.txt", &b[..cut]);
                if let Ok((set, _)) = IntelSet::load_dir(&d.0, &IntelLimits::default()) {
                    probe(&set, &b[..cut.min(80)]);
                }
                std::fs::remove_file(p).unwrap();
            }
        }
        // Mutations and pure noise, under each format override.
        let (mut ok, mut err) = (0, 0);
        for i in 0..3000 {
            let mut b: Vec<u8> = if i % 10 == 0 {
                (0..(xorshift(&mut rng) % 400))
                    .map(|_| xorshift(&mut rng) as u8)
                    .collect()
            } else {
                samples[i % samples.len()].as_bytes().to_vec()
            };
            for _ in 0..(1 + xorshift(&mut rng) % 8) {
                if b.is_empty() {
                    break;
                }
                let at = (xorshift(&mut rng) as usize) % b.len();
                match xorshift(&mut rng) % 4 {
                    0 => b[at] = xorshift(&mut rng) as u8,
                    1 => b[at] = b",;#\"/:.\n \t"[(xorshift(&mut rng) % 10) as usize],
                    2 => {
                        b.remove(at);
                    }
                    _ => b.insert(at, xorshift(&mut rng) as u8),
                }
            }
            let name = names[i % names.len()];
            let p = d.write(name, &b);
            match IntelSet::load_dir(&d.0, &IntelLimits::default()) {
                Ok((set, reports)) => {
                    ok += 1;
                    assert!(reports[0].first_errors.len() <= MAX_FIRST_ERRORS);
                    probe(&set, &b[..b.len().min(300)]);
                }
                Err(e) => {
                    err += 1;
                    assert!(e.path.ends_with(name));
                }
            }
            std::fs::remove_file(p).unwrap();
        }
        assert!(ok > 1000 && err > 100, "ok {ok} err {err}");
        // Over-long lines are skipped without being held.
        let mut big = vec![b'a'; MAX_LINE * 3];
        big.extend_from_slice(b"\nevil.example\nbad.example\n");
        d.write("big.domains", &big);
        let (set, reports) = IntelSet::load_dir(&d.0, &IntelLimits::default()).unwrap();
        assert_eq!((reports[0].entries, reports[0].skipped_lines), (2, 1));
        assert!(set.match_name("evil.example").is_some());
    }
}
