//! Protocol evidence per home host and window, and the detectors that read it: what the host
//! looked up and whether the names existed, what it said in TLS, HTTP, SMTP, IRC and mining
//! dialogue, which outside addresses it reached without any DNS answer naming them, and whether
//! a loaded threat-intelligence feed lists what it touched.
//!
//! Each detector follows how a behaviour works, not a capture: a DGA tries many random names that
//! do not exist; a DNS tunnel packs data into long subdomains (or TXT/NULL records) of one parent
//! domain; a spam bot hands mail to many outside servers; an IRC bot speaks IRC to an outside
//! server; a miner speaks stratum; hard-coded C2 is reached by address (TLS without a server name,
//! HTTP with an address as its Host); a P2P bot talks to many outside peers that no name led to.
//!
//! A detector is **strong** (its finding alone makes the host red: it names something a benign
//! home host does not do) or **weak** (generic: it needs another weak detector or a model's word
//! in the same window). The weighing and the data behind every threshold are in
//! docs/detection.md; the thresholds are `[rules]` keys (`config/botd.toml`).
//!
//! Everything per host and window has a fixed size: distinct counts are estimated from 256-bit
//! sketches (linear counting), lists are `heapless`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use crate::config::RulesConfig;
use crate::dnsview::DnsView;

/// Short text kept as evidence (a name, a nick, a method).
pub type Note = heapless::String<64>;

/// Copies `s` into a note, cut at a character boundary.
pub fn note(s: &str) -> Note {
    note_of(&[s])
}

/// The parts one after the other in a note, cut at a character boundary where it fills.
pub fn note_of(parts: &[&str]) -> Note {
    let mut n = Note::new();
    for c in parts.iter().flat_map(|p| p.chars()) {
        if n.push(c).is_err() {
            break;
        }
    }
    n
}

/// A fixed hash for sketches: the same input counts the same in every run (no per-process seed:
/// the sketches' estimates are part of the evidence, which must be reproducible).
fn hash64(v: impl Hash) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    v.hash(&mut h);
    // FNV-1a spreads its low bits poorly: mix before a sketch takes 8 of them.
    let mut x = h.0;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// FNV-1a, a fixed 64-bit hash.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Enum discriminants (IpAddr's) and lengths are hashed as usize: 8 bytes on every target, so
    // 32-bit ARM counts the same as x86_64 (cross/compare.sh).
    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_ne_bytes());
    }
}

/// Distinct values, estimated by linear counting over 256 bits: exact enough below ~100,
/// within a few percent to ~600, saturating near 1,400.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Distinct {
    bits: [u64; 4],
}

impl Distinct {
    pub fn add(&mut self, v: impl Hash) {
        let h = hash64(v);
        let bit = (h & 255) as usize;
        if let Some(w) = self.bits.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
    }

    /// The estimated number of distinct values added.
    pub fn estimate(&self) -> u32 {
        let set: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        if set == 0 {
            return 0;
        }
        let zeros = 256 - set;
        if zeros == 0 {
            return 1_420;
        }
        let m = 256f64;
        (-m * (f64::from(zeros) / m).ln()).round() as u32
    }
}

/// One parent domain a host queried, with what a tunnel would show.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParentDomain {
    pub name: Note,
    pub queries: u32,
    /// Queries of type TXT.
    pub txt: u32,
    /// Queries of type NULL (10) or the private types a tunnel uses.
    pub null: u32,
    /// Distinct names asked under it.
    pub names: Distinct,
    /// Distinct names whose part below the parent is long (see `[rules] tunnel_label_chars`).
    pub long_names: Distinct,
    /// Distinct names asked with TXT.
    pub txt_names: Distinct,
}

/// An outside address a host connected to in the window, as far as the connection showed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutsidePeer {
    pub addr: IpAddr,
    pub port: u16,
    pub proto: u8,
    /// The host's own port of the first connection.
    pub host_port: u16,
    pub connections: u32,
    pub first_ns: u64,
    pub bytes: u64,
    /// A TLS ClientHello without a server name.
    pub tls_no_sni: bool,
    /// An HTTP request whose Host header is an address (the client itself addressed it by
    /// address).
    pub http_addr_host: bool,
    /// That request was a POST or carried no User-Agent.
    pub http_post_or_no_agent: bool,
    /// An HTTP request named a host (Host header a name, not an address).
    pub http_name_host: bool,
    /// The peer is a home address (a listener inside the LAN).
    pub home: bool,
    /// A DNS answer named the address before the first connection (set when the window closes).
    pub resolved: bool,
}

/// Most outside peers remembered per host and window (the first ones; more are counted).
pub const OUTSIDE_PEERS: usize = 32;
/// Most parent domains tracked per host and window (the busiest stay: space-saving).
pub const PARENT_SLOTS: usize = 4;
/// Most intel hits kept per host and window.
pub const INTEL_HITS: usize = 4;

/// A finding of one protocol, with the peer and a short text.
#[derive(Clone, Debug, PartialEq)]
pub struct Sighting {
    pub peer: IpAddr,
    pub port: u16,
    /// The flow's protocol and the host's own port (the finding's Community ID).
    pub proto: u8,
    pub host_port: u16,
    pub text: Note,
}

/// A threat-intelligence hit: which feed, which entry, on what.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelNote {
    pub feed: Note,
    pub entry: Note,
    /// What matched: "address", "name", "sni", "http-host", "ja3", "ja4".
    pub on: &'static str,
    pub peer: IpAddr,
}

/// What the protocols said of one home host in one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProtoWindow {
    /// DNS queries the host sent to port 53 (not mDNS/LLMNR).
    pub dns_queries: u32,
    /// Answers NXDOMAIN to the host's queries.
    pub dns_failed: u32,
    pub failed_names: Distinct,
    /// Distinct failed names that look machine-made (see [`looks_random`]).
    pub random_failed: Distinct,
    /// Distinct parent domains of those.
    pub random_failed_parents: Distinct,
    pub random_failed_example: Note,
    /// Name statistics of the queries: sum of name lengths and the longest name.
    pub name_len_sum: u64,
    pub name_len_max: u32,
    /// Sums of the digits and of the character entropy (bits a character) of the names asked.
    pub name_digits_sum: u64,
    pub name_entropy_sum: f64,
    pub parents: heapless::Vec<ParentDomain, PARENT_SLOTS>,
    /// Outside mail servers the host spoke SMTP to as a client (EHLO/HELO, MAIL FROM, RCPT TO
    /// or DATA).
    pub smtp_servers: Distinct,
    /// Outside addresses the host opened TCP port 25 to, answered or not (a spam bot on a
    /// network that blocks port 25 shows only these).
    pub port25_peers: Distinct,
    pub smtp_sessions: u32,
    pub smtp_example: Option<Sighting>,
    pub irc: Option<Sighting>,
    /// The IRC dialogue looked like a bot's: a machine-made nick, an unnamed server or a port
    /// no IRC network uses.
    pub irc_botlike: bool,
    pub mining: Option<Sighting>,
    /// A name under a dynamic-DNS provider's zone the host resolved (the first).
    pub ddns_name: Note,
    /// A public-address lookup service the host resolved (the first).
    pub ip_lookup_name: Note,
    /// A TCP session to a tunnel service's TCP endpoint (the first), its name as the text.
    pub tcp_tunnel: Option<Sighting>,
    /// An executable (by its first bytes or its media type) the host fetched over plain HTTP
    /// (the first; one fetched by address from outside is kept over one by name).
    pub exe_download: Option<Sighting>,
    /// That fetch named its server by address, and the server is outside.
    pub exe_by_address: bool,
    /// An HTTP request to an outside server whose User-Agent claims a browser, in a flow with
    /// no Accept-Language (the first; [`claims_browser`]). The text is the User-Agent.
    pub fake_browser: Option<Sighting>,
    /// A name the host resolved or named its outside server by (HTTP Host, TLS SNI) whose
    /// registered label is a hex digest ([`is_hash_name`]; the first).
    pub hash_name: Note,
    /// Flash, a Java applet or Silverlight served to the host over HTTP (the first).
    pub plugin_content: Option<Sighting>,
    /// An outside TLS server's certificate that a browser would refuse: self-issued (its issuer
    /// named as its subject), or a C2 kit's default (the first; a kit's is kept over another).
    /// The text is its name.
    pub tls_cert: Option<Sighting>,
    /// The kit whose default certificate that is (src/infra.rs, `C2_KIT_CERTS`).
    pub tls_cert_kit: Option<&'static str>,
    /// A machine profile the host sent in clear over a protocol botd does not know (the first; a
    /// RAT's check-in, `crate::proto::profile`). The text is the message's start.
    pub host_profile: Option<Sighting>,
    /// That profile's operating-system name and field count.
    pub host_profile_os: Note,
    pub host_profile_fields: u8,
    /// Sent to a listener inside the LAN.
    pub host_profile_home: bool,
    pub intel: heapless::Vec<IntelNote, INTEL_HITS>,
    pub intel_more: u32,
    pub outside: heapless::Vec<OutsidePeer, OUTSIDE_PEERS>,
    pub outside_dropped: u32,
    /// HTTP requests without a User-Agent to outside servers.
    pub http_no_agent: u32,
    pub http_no_agent_example: Option<Sighting>,
    /// BitTorrent (or another P2P protocol botd recognises) was spoken by the host.
    pub p2p_protocol: bool,
    /// Distinct outside peers on high ports, small exchanges, no name (set at window close).
    pub p2p_peers: u32,
    /// Of the stored P2P-like peers, how many share the most common remote port (a fixed-port
    /// P2P protocol, as ZeroAccess's), and that port.
    pub p2p_same_port: u32,
    pub p2p_port: u16,
    /// Stored P2P-like peers (at most [`OUTSIDE_PEERS`]).
    pub p2p_stored: u32,
    /// The host answered SMTP from outside or other hosts: a mail server, whose relaying is
    /// not spam (set by the detector).
    pub mail_server: bool,
    /// The host's DNS is visible to the sensor (it sent queries botd saw, in this window or
    /// before): only then can "no DNS answer named it" mean anything.
    pub dns_visible: bool,
}

/// Whether a domain label looks machine-made (a DGA's): at least 8 characters and letters mixed
/// with digits, or too few vowels for a word (under 22% of the letters: random letters give about
/// 19%, English and brand names 35-45%), or a run of 6 consonants. Dictionary-word DGAs pass for
/// words here; what catches them is the count of distinct names that do not exist.
pub fn looks_random(label: &str) -> bool {
    let b = label.as_bytes();
    if b.len() < 8 {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    let vowels = b
        .iter()
        .filter(|c| matches!(c.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u'))
        .count();
    let mut run = 0;
    let mut longest_run = 0;
    for c in b {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphabetic() && !matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y') {
            run += 1;
            longest_run = longest_run.max(run);
        } else {
            run = 0;
        }
    }
    (digits >= 2 && letters >= 2)
        || (letters >= 8 && vowels * 100 < letters * 22)
        || longest_run >= 6
}

/// Whether a User-Agent claims to be a browser: `Mozilla/` with a browser engine's token
/// (Gecko, AppleWebKit, Trident, MSIE) in its first 62 bytes, as kept. Every browser sends
/// Accept-Language with every request, navigation or not; a program that copies a browser's
/// User-Agent to pass for one rarely copies its other headers (PowerShell's and other tools'
/// own `Mozilla/5.0 (...) Tool/1.0` name no engine and do not count).
pub fn claims_browser(user_agent: &str) -> bool {
    user_agent.starts_with("Mozilla/")
        && ["Gecko/", "AppleWebKit/", "Trident/", "MSIE "]
            .iter()
            .any(|t| user_agent.contains(t))
}

/// Whether a name's registered label is a hex digest: at least 8 hex digits, at least 2 of
/// them digits and 2 letters, under a top-level domain of letters (`db54a845.top`). Hash-based
/// DGAs (Foudre/Tonnerre, Bamital, ...) register the digest of a date or seed; people and
/// companies name their domains with words. Names without a letters-only top-level domain
/// (a tunnel's `dnscat.<hex>`) are left to the tunnel detector.
pub fn is_hash_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let tld = name.rsplit('.').next().unwrap_or_default();
    if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.len() == name.len() {
        return false;
    }
    let parent = crate::proto::dns::parent_domain(name);
    let label = parent.split('.').next().unwrap_or_default().as_bytes();
    let digits = label.iter().filter(|b| b.is_ascii_digit()).count();
    label.len() >= 8
        && label.iter().all(u8::is_ascii_hexdigit)
        && digits >= 2
        && label.len() - digits >= 2
}

impl ProtoWindow {
    /// A name the host named an outside server by (HTTP Host without its port, TLS SNI), or
    /// resolved: kept when it is a hex digest.
    pub fn named(&mut self, name: &str) {
        if self.hash_name.is_empty() && is_hash_name(name) {
            self.hash_name = note(name);
        }
    }

    /// A DNS query of the host (to port 53) and its answer code.
    pub fn dns_query(&mut self, name: &str, qtype: u16, rcode: Option<u8>, rules: &RulesConfig) {
        self.dns_queries = self.dns_queries.saturating_add(1);
        self.dns_visible = true;
        let len = name.len() as u32;
        self.name_len_sum += u64::from(len);
        self.name_len_max = self.name_len_max.max(len);
        if name.is_empty() {
            return;
        }
        let stats = crate::proto::dns::name_stats(name);
        self.name_digits_sum += u64::from(stats.digits);
        self.name_entropy_sum += f64::from(stats.entropy);
        let parent = crate::proto::dns::parent_domain(name);
        let sub = crate::proto::dns::subdomain_part(name);
        if rcode != Some(3) {
            use crate::infra;
            if self.ddns_name.is_empty() && infra::zone_of(name, infra::DYNAMIC_DNS).is_some() {
                self.ddns_name = note(name);
            }
            if self.ip_lookup_name.is_empty() && infra::zone_of(name, infra::IP_LOOKUP).is_some() {
                self.ip_lookup_name = note(name);
            }
            self.named(name);
        }
        if rcode == Some(3) {
            self.dns_failed = self.dns_failed.saturating_add(1);
            self.failed_names.add(name);
            // The label a DGA makes is the leftmost one of the registrable domain.
            let label = parent.split('.').next().unwrap_or(parent);
            if looks_random(label) {
                self.random_failed.add(name);
                self.random_failed_parents.add(parent);
                if self.random_failed_example.is_empty() {
                    self.random_failed_example = note(name);
                }
            }
        }
        if parent == name && qtype != 10 {
            // Nothing below the parent carries data.
            return;
        }
        let slot = match self.parents.iter().position(|p| p.name == parent) {
            Some(i) => i,
            None => {
                let fresh = ParentDomain {
                    name: note(parent),
                    ..ParentDomain::default()
                };
                if self.parents.push(fresh.clone()).is_ok() {
                    self.parents.len() - 1
                } else {
                    // Space-saving: the least queried parent gives its slot to the newcomer,
                    // which inherits its query count as an upper bound.
                    let Some((i, least)) = self
                        .parents
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, p)| p.queries)
                        .map(|(i, p)| (i, p.queries))
                    else {
                        return;
                    };
                    if let Some(p) = self.parents.get_mut(i) {
                        *p = ParentDomain {
                            queries: least,
                            ..fresh
                        };
                    }
                    i
                }
            }
        };
        let Some(p) = self.parents.get_mut(slot) else {
            return;
        };
        p.queries = p.queries.saturating_add(1);
        p.names.add(name);
        let data_chars = sub.bytes().filter(|&b| b != b'.').count();
        if data_chars >= rules.tunnel_label_chars as usize {
            p.long_names.add(name);
        }
        match qtype {
            16 => {
                p.txt = p.txt.saturating_add(1);
                p.txt_names.add(name);
            }
            // NULL, and the private-use types some tunnels ask for.
            10 | 65_399..=65_534 => p.null = p.null.saturating_add(1),
            _ => {}
        }
    }

    /// A connection of the host to an outside address.
    pub fn outside_connection(&mut self, peer: OutsidePeer) {
        if let Some(p) = self
            .outside
            .iter_mut()
            .find(|p| p.addr == peer.addr && p.port == peer.port && p.proto == peer.proto)
        {
            p.connections = p.connections.saturating_add(1);
            p.first_ns = p.first_ns.min(peer.first_ns);
            p.bytes = p.bytes.saturating_add(peer.bytes);
            p.tls_no_sni |= peer.tls_no_sni;
            p.http_addr_host |= peer.http_addr_host;
            p.http_post_or_no_agent |= peer.http_post_or_no_agent;
            p.http_name_host |= peer.http_name_host;
            return;
        }
        if self.outside.push(peer).is_err() {
            self.outside_dropped = self.outside_dropped.saturating_add(1);
        }
    }

    pub fn intel_hit(&mut self, hit: IntelNote) {
        if self
            .intel
            .iter()
            .any(|h| h.entry == hit.entry && h.on == hit.on)
        {
            return;
        }
        if self.intel.push(hit).is_err() {
            self.intel_more = self.intel_more.saturating_add(1);
        }
    }

    /// At the window's close: which outside peers a DNS answer named before the host reached
    /// them, and how many look like peers of a P2P network.
    pub fn finish(&mut self, view: &DnsView, dns_visible: bool, rules: &RulesConfig) {
        self.dns_visible |= dns_visible;
        let mut p2p = Distinct::default();
        let mut ports: heapless::Vec<(u16, u32), OUTSIDE_PEERS> = heapless::Vec::new();
        self.p2p_stored = 0;
        for p in self.outside.iter_mut() {
            p.resolved = view.resolved_before(p.addr, p.first_ns);
            let small = p.bytes <= u64::from(rules.p2p_max_bytes) * u64::from(p.connections.max(1));
            if !p.resolved && !p.home && p.port >= 1024 && small {
                p2p.add(p.addr);
                self.p2p_stored += 1;
                match ports.iter_mut().find(|(port, _)| *port == p.port) {
                    Some((_, n)) => *n += 1,
                    None => {
                        let _ = ports.push((p.port, 1));
                    }
                }
            }
        }
        if let Some(&(port, n)) = ports.iter().max_by_key(|(port, n)| (*n, *port)) {
            self.p2p_port = port;
            self.p2p_same_port = n;
        }
        self.p2p_peers = p2p.estimate() + self.outside_dropped.min(1_000);
    }
}

/// What a host's window shows of DNS and the feeds, as `botd analyze --json` windows carry it
/// (`protocols`): stable names, documented in the README. Fixed-size: a window's close makes one
/// per host without allocating.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProtoFigures {
    /// DNS queries to port 53.
    pub dns_queries: u32,
    /// Answers NXDOMAIN.
    pub dns_failed: u32,
    /// Distinct names that failed (estimated past ~100).
    pub dns_failed_names: u32,
    /// Distinct failed names that look machine-made.
    pub dns_random_failed_names: u32,
    /// Mean and longest length of the names asked.
    pub dns_name_len_mean: f64,
    pub dns_name_len_max: u32,
    /// Mean digits and mean character entropy (bits a character, of the part below the parent
    /// domain, else its first label) of the names asked.
    pub dns_name_digits_mean: f64,
    pub dns_name_entropy_mean: f64,
    /// The parent domain with most distinct names below it, and that count.
    #[serde(default, skip_serializing_if = "note_is_empty")]
    pub dns_top_parent: Note,
    pub dns_top_parent_names: u32,
    /// Distinct outside mail servers handed mail.
    pub smtp_servers: u32,
    /// Outside peers reached (first 32) and how many no DNS answer named.
    pub outside_peers: u32,
    pub outside_unnamed: u32,
    /// Threat-intelligence hits: `on entry (feed)`.
    #[serde(default, skip_serializing_if = "heapless::Vec::is_empty")]
    pub intel: heapless::Vec<heapless::String<160>, INTEL_HITS>,
    /// The host spoke a P2P protocol botd recognises (BitTorrent, Gnutella).
    #[serde(default)]
    pub p2p_protocol: bool,
}

/// A mean to two decimals: the entropy goes through the platform's `log2`, whose last bit may
/// differ between libcs, and the JSON must be the same on every build (cross/compare.sh).
fn mean(sum: f64, n: u32) -> f64 {
    if n == 0 {
        0.0
    } else {
        (sum / f64::from(n) * 100.0).round() / 100.0
    }
}

fn note_is_empty(n: &Note) -> bool {
    n.is_empty()
}

impl ProtoWindow {
    /// The window's figures (after [`ProtoWindow::finish`]).
    pub fn figures(&self) -> ProtoFigures {
        let top = self.parents.iter().max_by_key(|p| p.names.estimate());
        ProtoFigures {
            dns_queries: self.dns_queries,
            dns_failed: self.dns_failed,
            dns_failed_names: self.failed_names.estimate(),
            dns_random_failed_names: self.random_failed.estimate(),
            dns_name_len_mean: mean(self.name_len_sum as f64, self.dns_queries),
            dns_name_len_max: self.name_len_max,
            dns_name_digits_mean: mean(self.name_digits_sum as f64, self.dns_queries),
            dns_name_entropy_mean: mean(self.name_entropy_sum, self.dns_queries),
            dns_top_parent: top.map(|p| p.name.clone()).unwrap_or_default(),
            dns_top_parent_names: top.map_or(0, |p| p.names.estimate()),
            smtp_servers: self.smtp_servers.estimate(),
            outside_peers: self.outside.len() as u32 + self.outside_dropped,
            outside_unnamed: self
                .outside
                .iter()
                .filter(|p| !p.resolved && !p.home)
                .count() as u32,
            intel: self
                .intel
                .iter()
                .map(|h| {
                    let mut s = heapless::String::new();
                    let _ = core::fmt::Write::write_fmt(
                        &mut s,
                        format_args!("{} {} ({})", h.on, h.entry, h.feed),
                    );
                    s
                })
                .collect(),
            p2p_protocol: self.p2p_protocol,
        }
    }
}

/// How much a detector's finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weight {
    /// Needs corroboration: another weak finding or a model's word in the same window.
    Weak,
    /// Enough alone.
    Strong,
}

/// A detector that fired, with its figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub weight: Weight,
    pub text: String,
    /// The peer it names, if one.
    pub peer: Option<(IpAddr, u16)>,
    /// The protocol and the host's own port of a flow with that peer; (0, 0) when unknown.
    pub peer_flow: (u8, u16),
    /// Connections and bytes the finding counted with that peer (0 when it counts none).
    pub peer_flows: u64,
    pub peer_bytes: u64,
}

impl Finding {
    /// A finding that names no peer (a host-wide count: DGA, a tunnel's domain, P2P fan-out).
    fn host_wide(rule: &'static str, weight: Weight, text: String) -> Finding {
        Finding {
            rule,
            weight,
            text,
            peer: None,
            peer_flow: (0, 0),
            peer_flows: 0,
            peer_bytes: 0,
        }
    }

    /// A finding about one sighting: its peer and the flow it was seen on.
    fn sighted(rule: &'static str, weight: Weight, text: String, s: &Sighting) -> Finding {
        Finding {
            peer: Some((s.peer, s.port)),
            peer_flow: (s.proto, s.host_port),
            ..Finding::host_wide(rule, weight, text)
        }
    }
}

fn label(view: &DnsView, a: IpAddr) -> String {
    match view.name(a) {
        Some(n) => format!("{a} ({n})"),
        None => a.to_string(),
    }
}

/// Every protocol detector that fires on a host's window.
pub fn findings(w: &ProtoWindow, rules: &RulesConfig, view: &DnsView) -> Vec<Finding> {
    let mut out = Vec::new();
    // Intel: a feed lists what the host touched.
    if let Some(h) = w.intel.first() {
        let more = w.intel.len() as u32 - 1 + w.intel_more;
        out.push(Finding {
            rule: "intel",
            weight: Weight::Strong,
            text: format!(
                "intel: {} {} listed by {} (peer {}){}",
                h.on,
                h.entry,
                h.feed,
                label(view, h.peer),
                if more > 0 {
                    format!(", {more} more hits")
                } else {
                    String::new()
                }
            ),
            peer: Some((h.peer, 0)),
            peer_flow: (0, 0),
            peer_flows: 0,
            peer_bytes: 0,
        });
    }
    // DGA: many distinct machine-made names that do not exist, under distinct domains.
    let random = w.random_failed.estimate();
    let parents = w.random_failed_parents.estimate();
    if random >= rules.dga_failed_names && parents >= rules.dga_failed_names / 2 {
        out.push(Finding::host_wide(
            "dga",
            Weight::Strong,
            format!(
                "dga: {random} distinct random-looking names failed (NXDOMAIN) under {parents} domains, e.g. {}; {} of {} queries failed",
                w.random_failed_example, w.dns_failed, w.dns_queries
            ),
        ));
    }
    // DNS tunnel: data in the names (or TXT/NULL records) of one parent domain.
    for p in &w.parents {
        let long = p.long_names.estimate();
        let txt_names = p.txt_names.estimate();
        let why = if p.null >= rules.tunnel_null_queries {
            Some(format!("{} NULL/private-type queries", p.null))
        } else if long >= rules.tunnel_long_names {
            Some(format!(
                "{long} distinct names with >= {} characters below it",
                rules.tunnel_label_chars
            ))
        } else if p.txt >= rules.tunnel_txt_queries && txt_names >= rules.tunnel_txt_queries / 2 {
            Some(format!(
                "{} TXT queries of {txt_names} distinct names",
                p.txt
            ))
        } else {
            None
        };
        if let Some(why) = why {
            out.push(Finding::host_wide(
                "dns-tunnel",
                Weight::Strong,
                format!(
                    "dns-tunnel: {why} under {} ({} queries, {} distinct names)",
                    p.name,
                    p.queries,
                    p.names.estimate()
                ),
            ));
            break;
        }
    }
    // Spam: mail handed to many outside servers, or port 25 opened to many outside addresses.
    let servers = w.smtp_servers.estimate();
    let port25 = w.port25_peers.estimate();
    if !w.mail_server && (servers >= rules.spam_servers || port25 >= rules.spam_port25_peers) {
        out.push(Finding {
            rule: "spam",
            weight: Weight::Strong,
            text: if servers >= rules.spam_servers {
                format!(
                    "spam: mail handed to {servers} outside mail servers in {} SMTP sessions",
                    w.smtp_sessions
                )
            } else {
                format!(
                    "spam: TCP port 25 opened to {port25} outside addresses ({servers} spoke SMTP)"
                )
            },
            peer: w.smtp_example.as_ref().map(|s| (s.peer, s.port)),
            peer_flow: w
                .smtp_example
                .as_ref()
                .map_or((0, 0), |s| (s.proto, s.host_port)),
            peer_flows: 0,
            peer_bytes: 0,
        });
    } else if let Some(s) = &w.smtp_example {
        out.push(Finding::sighted(
            "smtp-client",
            Weight::Weak,
            format!(
                "smtp-client: mail handed to {} port {} ({})",
                label(view, s.peer),
                s.port,
                s.text
            ),
            s,
        ));
    }
    if let Some(s) = &w.irc {
        out.push(Finding::sighted(
            "irc",
            // People chat on IRC too: alone, only a bot-like dialogue acts.
            if w.irc_botlike {
                Weight::Strong
            } else {
                Weight::Weak
            },
            format!(
                "irc: IRC client dialogue with {} port {} ({})",
                label(view, s.peer),
                s.port,
                s.text
            ),
            s,
        ));
    }
    if let Some(s) = &w.mining {
        out.push(Finding::sighted(
            "miner",
            Weight::Strong,
            format!(
                "miner: mining-pool dialogue with {} port {} ({})",
                label(view, s.peer),
                s.port,
                s.text
            ),
            s,
        ));
    }
    // Infrastructure (src/infra.rs): a raw TCP session through a tunnel service is strong; a
    // dynamic-DNS name or a public-address lookup is weak (home servers and VPN clients use
    // them too).
    if let Some(s) = &w.tcp_tunnel {
        out.push(Finding::sighted(
            "tcp-tunnel",
            Weight::Strong,
            format!(
                "tcp-tunnel: TCP session to {} ({}) port {}, a tunnel service's TCP endpoint",
                s.text, s.peer, s.port
            ),
            s,
        ));
    }
    if let Some(s) = &w.exe_download {
        out.push(Finding::sighted(
            "exe-download",
            // By address from outside: a dropper's fetch (IoT loaders' `wget http://ADDR/bin`);
            // by name, updaters still do it over plain HTTP.
            if w.exe_by_address {
                Weight::Strong
            } else {
                Weight::Weak
            },
            format!(
                "exe-download: an executable fetched over plain HTTP{} from {} port {} ({})",
                if w.exe_by_address { " by address" } else { "" },
                s.peer,
                s.port,
                s.text
            ),
            s,
        ));
    }
    if let Some(s) = &w.plugin_content {
        out.push(Finding::sighted(
            "plugin-content",
            Weight::Weak,
            format!(
                "plugin-content: Flash, a Java applet or Silverlight served from {} port {} ({}): exploit kits' vehicle, which browsers no longer run",
                s.peer, s.port, s.text
            ),
            s,
        ));
    }
    if let Some(s) = &w.tls_cert {
        out.push(match w.tls_cert_kit {
            // A kit's own name in the certificate: its operator's server.
            Some(kit) => Finding::sighted(
                "tls-cert",
                Weight::Strong,
                format!(
                    "tls-cert: {} port {} presented the certificate \"{}\", the default of {kit}'s server builder",
                    label(view, s.peer),
                    s.port,
                    s.text
                ),
                s,
            ),
            // Browsers refuse a self-signed certificate: the client is a program that takes
            // any (a kit's implant, also a self-hosted service's own client): weak alone.
            None => Finding::sighted(
                "tls-cert",
                Weight::Weak,
                format!(
                    "tls-cert: {} port {} presented a self-signed certificate (\"{}\"), which a browser refuses",
                    label(view, s.peer),
                    s.port,
                    s.text
                ),
                s,
            ),
        });
    }
    if let Some(s) = &w.host_profile {
        out.push(Finding::sighted(
            "host-profile",
            Weight::Strong,
            format!(
                "host-profile: the machine's profile ({}, {} fields) sent in clear to {}{} port {} over a protocol not otherwise known: \"{}\"",
                w.host_profile_os,
                w.host_profile_fields,
                if w.host_profile_home { "home host " } else { "" },
                label(view, s.peer),
                s.port,
                s.text
            ),
            s,
        ));
    }
    if let Some(s) = &w.fake_browser {
        out.push(Finding::sighted(
            "fake-browser",
            // Scrapers and some embedded apps dress as browsers too: weak alone.
            Weight::Weak,
            format!(
                "fake-browser: HTTP to {} port {} with a browser's User-Agent (\"{}\") but without the Accept-Language every browser sends",
                label(view, s.peer),
                s.port,
                s.text
            ),
            s,
        ));
    }
    if !w.hash_name.is_empty() {
        out.push(Finding::host_wide(
            "hash-name",
            Weight::Weak,
            format!(
                "hash-name: {}, a domain named by a hex digest, as hash-based DGAs make",
                w.hash_name
            ),
        ));
    }
    if !w.ddns_name.is_empty() {
        out.push(Finding::host_wide(
            "ddns",
            Weight::Weak,
            format!("ddns: resolved {}, a dynamic-DNS name", w.ddns_name),
        ));
    }
    if !w.ip_lookup_name.is_empty() {
        out.push(Finding::host_wide(
            "ip-lookup",
            Weight::Weak,
            format!(
                "ip-lookup: resolved {}, a service that tells a program its public address",
                w.ip_lookup_name
            ),
        ));
    }
    // Raw-address C2: reached by address, and the connection itself says so.
    let mut raw_strong: Option<&OutsidePeer> = None;
    let mut raw_weak: Option<&OutsidePeer> = None;
    for p in &w.outside {
        let unnamed = !p.resolved && w.dns_visible;
        let strong = !p.home
            && ((p.http_addr_host && p.http_post_or_no_agent)
                // A TLS client that names its server sends the name (SNI). One that looked a
                // name up and still sends none, or keeps connecting without one to a port other
                // than HTTPS's (or DNS over TLS's), runs its own TLS to its own server; on HTTPS's
                // port, repeated connections to an address no DNS answer named.
                || (p.tls_no_sni
                    && if matches!(p.port, 443 | 853) {
                        unnamed && p.connections >= 2
                    } else {
                        p.resolved || p.connections >= 2
                    }));
        // Without the host's DNS in view, one TLS connection without a name on HTTPS's port
        // says nothing (a test client, a capture begun after the lookup).
        let weak = p.http_addr_host
            || (p.tls_no_sni && (unnamed || p.resolved || !matches!(p.port, 443 | 853)));
        if strong && raw_strong.is_none() {
            raw_strong = Some(p);
        } else if weak && raw_weak.is_none() {
            raw_weak = Some(p);
        }
    }
    for (p, weight) in [(raw_strong, Weight::Strong), (raw_weak, Weight::Weak)] {
        let Some(p) = p else {
            continue;
        };
        let how = if p.http_addr_host {
            if p.http_post_or_no_agent {
                "HTTP POST or no User-Agent, Host an address"
            } else {
                "HTTP with an address as Host"
            }
        } else if p.resolved {
            "TLS without a server name, though a DNS answer named it"
        } else {
            "TLS without a server name, no DNS answer named it"
        };
        out.push(Finding {
            rule: "raw-address",
            weight,
            text: format!(
                "raw-address: {} connections to {}{} port {} ({how})",
                p.connections,
                if p.home { "home host " } else { "" },
                p.addr,
                p.port
            ),
            peer: Some((p.addr, p.port)),
            peer_flow: (p.proto, p.host_port),
            peer_flows: u64::from(p.connections),
            peer_bytes: p.bytes,
        });
        // One finding of the two weights is enough evidence.
        break;
    }
    // P2P bot: many outside peers, small exchanges, no names, no P2P protocol botd knows.
    // Strong when most of them share one remote port (a fixed-port protocol, as ZeroAccess's;
    // BitTorrent, Skype and games pick a port per peer); otherwise weak.
    if w.dns_visible && !w.p2p_protocol && w.p2p_peers >= rules.p2p_peers {
        let fixed_port = w.p2p_stored >= 8 && w.p2p_same_port * 2 >= w.p2p_stored;
        out.push(Finding::host_wide(
            "p2p",
            if fixed_port {
                Weight::Strong
            } else {
                Weight::Weak
            },
            format!(
                "p2p: {} outside peers on high ports, small exchanges, none named by DNS, no known P2P protocol{}",
                w.p2p_peers,
                if fixed_port {
                    format!("; {} of {} on port {}", w.p2p_same_port, w.p2p_stored, w.p2p_port)
                } else {
                    String::new()
                }
            ),
        ));
    }
    if w.http_no_agent > 0
        && let Some(s) = &w.http_no_agent_example
    {
        out.push(Finding::sighted(
            "http-no-agent",
            Weight::Weak,
            format!(
                "http-no-agent: {} HTTP requests without a User-Agent, e.g. {} ({})",
                w.http_no_agent,
                label(view, s.peer),
                s.text
            ),
            s,
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn distinct_counts_are_close() {
        for n in [0u32, 1, 5, 20, 60, 200] {
            let mut d = Distinct::default();
            for i in 0..n {
                d.add(i);
                d.add(i); // repeats do not count
            }
            let e = d.estimate();
            let tol = (n / 5).max(2);
            assert!(e.abs_diff(n) <= tol, "{n} estimated {e}");
        }
    }

    fn fired(w: &ProtoWindow) -> Vec<(&'static str, Weight)> {
        findings(w, &RulesConfig::default(), &DnsView::new(1))
            .into_iter()
            .map(|f| (f.rule, f.weight))
            .collect()
    }

    #[test]
    fn port_25_to_many_outside_addresses_is_spam_and_to_few_is_nothing() {
        let mut w = ProtoWindow::default();
        for i in 0..4u8 {
            w.port25_peers.add(IpAddr::from([198, 51, 100, i]));
        }
        assert!(fired(&w).is_empty());
        w.port25_peers.add(IpAddr::from([198, 51, 100, 9]));
        assert_eq!(fired(&w), [("spam", Weight::Strong)]);
    }

    fn peer(i: u32, port: u16) -> OutsidePeer {
        OutsidePeer {
            addr: IpAddr::from((0xc633_6400u32 + i).to_be_bytes()),
            port,
            proto: 17,
            host_port: 50_000,
            connections: 1,
            first_ns: 0,
            bytes: 200,
            tls_no_sni: false,
            http_addr_host: false,
            http_post_or_no_agent: false,
            http_name_host: false,
            home: false,
            resolved: false,
        }
    }

    #[test]
    fn many_unnamed_peers_are_p2p_strong_only_on_one_port() {
        let rules = RulesConfig::default();
        let view = DnsView::new(1);
        // Peers on a port each (as BitTorrent, Skype and games): weak.
        let mut w = ProtoWindow {
            dns_visible: true,
            ..ProtoWindow::default()
        };
        for i in 0..40 {
            w.outside_connection(peer(i, 20_000 + i as u16));
        }
        w.finish(&view, true, &rules);
        assert_eq!(fired(&w), [("p2p", Weight::Weak)]);
        // Most on one port (ZeroAccess's 16464): strong.
        let mut w = ProtoWindow::default();
        for i in 0..40 {
            w.outside_connection(peer(i, if i % 4 == 0 { 30_000 } else { 16_464 }));
        }
        w.finish(&view, true, &rules);
        assert_eq!(fired(&w), [("p2p", Weight::Strong)]);
        // A host speaking BitTorrent: nothing.
        w.p2p_protocol = true;
        assert!(fired(&w).is_empty());
    }

    #[test]
    fn a_mail_server_relaying_is_not_spam() {
        let mut w = ProtoWindow::default();
        for i in 0..6u8 {
            w.port25_peers.add(IpAddr::from([198, 51, 100, i]));
        }
        assert_eq!(fired(&w), [("spam", Weight::Strong)]);
        w.mail_server = true;
        assert!(fired(&w).is_empty());
    }

    #[test]
    fn tunnel_shapes_under_one_parent() {
        let rules = RulesConfig::default();
        let mut w = ProtoWindow::default();
        // Ordinary lookups of one domain: nothing.
        for n in ["www.example.com", "mail.example.com", "cdn.example.com"] {
            w.dns_query(n, 1, Some(0), &rules);
        }
        assert!(fired(&w).is_empty());
        // Data in long labels under one parent.
        for i in 0..6 {
            let name = format!("{i}a8f3k2m9q1x7c4v6b5n0z2lkjhgf.t.example.net");
            w.dns_query(&name, 1, Some(0), &rules);
        }
        assert_eq!(fired(&w), [("dns-tunnel", Weight::Strong)]);
    }

    #[test]
    fn browsers_claimed_and_hash_names() {
        for ua in [
            "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:40.0) Gecko/20100101 F",
            "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (",
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like",
        ] {
            assert!(claims_browser(ua), "{ua}");
        }
        for ua in [
            "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1",
            "curl/7.68.0",
            "python-requests/2.32.3",
            "Microsoft-CryptoAPI/10.0",
            "",
        ] {
            assert!(!claims_browser(ua), "{ua}");
        }
        for name in [
            "db54a845.top",
            "www.9f86d081884c7d65.com.",
            "a1b2c3d4e5.co.uk",
        ] {
            assert!(is_hash_name(name), "{name}");
        }
        for name in [
            // Words, short labels, hex without digits or letters, and hex only below the
            // registered domain (CDN shards).
            "dns.msftncsi.com",
            "1e100.net",
            "deadbeefcafe.com",
            "12345678.com",
            "0a1b2c3d.cloudfront.net",
            // No letters-only top-level domain: a tunnel's data, not a registered name.
            "dnscat.00e301f500bd.96de9dfc66ee",
            "db54a845",
            "",
        ] {
            assert!(!is_hash_name(name), "{name}");
        }
    }

    #[test]
    fn random_labels_and_words() {
        for l in ["xkqzjvbwtr", "a8f3k2m9q1", "db54a845"] {
            assert!(looks_random(l), "{l}");
        }
        for l in ["google", "facebook", "wikipedia", "mail", "windowsupdate"] {
            assert!(!looks_random(l), "{l}");
        }
    }
}
