//! Protocol parity: botd's per-flow application summary against reference dissectors on every
//! capture under ../shared/data (pcap, pcapng, gzip, recursively). docs/protocols.md explains the
//! method and the figures.
//!
//! * botd runs as a library: `botd::capture::FileReader` frames into `botd::engine::Engine`, whose
//!   flow records are collected. Beside it each frame is parsed (`botd::wire::parse`), keyed
//!   (`FlowKey::of`) and placed in its flow record by key and time; what botd reads is, per flow
//!   direction, the first [`INSPECT_SEGMENTS`] payloads that `engine::kept_payload` keeps.
//! * tshark (Debian's 4.0, installed by tests/run.sh) gets the frames botd read as a pcapng on its
//!   standard input (small captures with no endpoint pair in common share a run) and prints with
//!   `-T fields` the TLS SNI and JA3 (`tls.handshake.extensions_server_name`,
//!   `tls.handshake.ja3`), DNS query name and response code (`dns.qry.name`, `dns.flags.rcode`)
//!   and HTTP Host and User-Agent (`http.host`, `http.user_agent`), with TCP reassembly, IP
//!   defragmentation and every protocol's desegmentation off, subdissectors called on
//!   retransmissions and heuristics first: it dissects each segment alone, as botd reads it.
//! * JA4 comes from the reference implementation, the `ja4plus` package (pinned in
//!   models/train/requirements.txt), through models/train/ja4_reference.py: every TCP frame in
//!   which tshark sees a ClientHello goes to it.
//!
//! The reference value of a flow is the reference's from the frames botd read, chosen as botd
//! chooses (the first ClientHello and the first request from the flow's source, the first DNS
//! query, the last DNS response). Values the reference shows only in frames botd does not read,
//! and values only botd has, are counted by reason, outside the rates; so are comparisons on
//! frames tshark marks malformed. The tables go to stdout and to target/protocol-parity.txt,
//! target/protocol-parity-ja4.txt and target/protocol-sizes.txt; PARITY_VERBOSE=1 lists every
//! difference, botd-only and unread value.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use botd::capture::{FileReader, LinkType};
use botd::engine::{Engine, EngineConfig, FlowSink, WindowInfo, kept_payload};
use botd::flow::app::{App, AppState, INSPECT_SEGMENTS};
use botd::flow::{CloseReason, Flow, FlowKey};
use botd::wire::{self, proto};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data_dir() -> PathBuf {
    root().join("../shared/data")
}

/// Every capture under ../shared/data, sorted.
fn captures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if [".pcap", ".pcapng", ".cap", ".trace", ".gz"]
                    .iter()
                    .any(|s| name.ends_with(s))
                {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir(), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// botd's side

/// One frame as botd's engine sees it.
#[derive(Clone, Copy)]
struct BFrame {
    ts: u64,
    /// `None`: not parsed (counted by botd as such).
    pkt: Option<BPacket>,
}

#[derive(Clone, Copy)]
struct BPacket {
    key: FlowKey,
    forward: bool,
    proto: u8,
    /// The engine offers this payload to the flow's summary (`kept_payload` is not empty).
    kept: bool,
}

/// One flow record botd emitted.
struct Rec {
    key: FlowKey,
    src_is_lo: bool,
    start: u64,
    proto: u8,
    app: App,
    label: String,
}

#[derive(Default)]
struct Collector {
    recs: Vec<Rec>,
}

impl FlowSink for Collector {
    fn flow(&mut self, flow: &Flow, _reason: CloseReason, _window: Option<&WindowInfo>) {
        self.recs.push(Rec {
            key: flow.key,
            src_is_lo: flow.src_is_lo,
            start: flow.start_ns,
            proto: flow.proto,
            app: flow.app.app.clone(),
            label: format!(
                "{} {}:{} -> {}:{}",
                botd::output::proto_name(flow.proto),
                flow.src,
                flow.sport,
                flow.dst,
                flow.dport
            ),
        });
    }
}

/// Where a frame's payload stands for botd.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reach {
    /// Read: among the first `INSPECT_SEGMENTS` kept payloads of its flow direction.
    Read,
    /// Kept, but after the first `INSPECT_SEGMENTS` of its direction.
    Beyond,
    /// Its payload fails `worth_inspecting` (its first bytes).
    NotKept,
    /// Not a TCP or UDP packet for botd (an ICMP error quoting DNS, an unparsed frame, a
    /// non-first IP fragment).
    NotTcpUdp,
}

/// A frame's flow record, direction and reach.
#[derive(Clone, Copy)]
struct Place {
    rec: usize,
    from_src: bool,
    reach: Reach,
}

struct BotdRun {
    frames: Vec<BFrame>,
    recs: Vec<Rec>,
    places: Vec<Option<Place>>,
}

fn run_botd(path: &Path) -> Result<BotdRun, String> {
    let mut reader = FileReader::open(path).map_err(|e| e.to_string())?;
    let mut engine = Engine::new(EngineConfig::default());
    let mut sink = Collector::default();
    let mut frames = Vec::new();
    loop {
        let f = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        let pkt = wire::parse(f.link, f.data, f.orig_len).ok().map(|p| {
            let (key, forward) = FlowKey::of(&p);
            BPacket {
                key,
                forward,
                proto: p.proto,
                kept: !kept_payload(&p, f.data).is_empty(),
            }
        });
        frames.push(BFrame { ts: f.ts_ns, pkt });
        engine.on_frame(f.ts_ns, f.link, f.data, f.orig_len, &mut sink);
    }
    engine.finish(&mut sink);
    let recs = sink.recs;
    let places = place_frames(&frames, &recs);
    Ok(BotdRun {
        frames,
        recs,
        places,
    })
}

/// Each frame's flow record (the record of its key that had started by its time; the engine
/// processes a frame older than its clock at the clock) and whether botd read its payload.
fn place_frames(frames: &[BFrame], recs: &[Rec]) -> Vec<Option<Place>> {
    let mut by_key: HashMap<FlowKey, Vec<usize>> = HashMap::new();
    for (i, r) in recs.iter().enumerate() {
        by_key.entry(r.key).or_default().push(i);
    }
    for v in by_key.values_mut() {
        v.sort_by_key(|&i| (recs[i].start, i));
    }
    let mut clock = 0u64;
    let mut read: HashMap<(usize, bool), u8> = HashMap::new();
    frames
        .iter()
        .map(|f| {
            clock = clock.max(f.ts);
            let p = f.pkt?;
            let cands = by_key.get(&p.key)?;
            let at = cands.partition_point(|&i| recs[i].start <= clock);
            let rec = cands[at.checked_sub(1)?];
            let from_src = p.forward == recs[rec].src_is_lo;
            let reach = if p.proto != proto::TCP && p.proto != proto::UDP {
                Reach::NotTcpUdp
            } else if !p.kept {
                Reach::NotKept
            } else {
                let n = read.entry((rec, from_src)).or_default();
                *n = n.saturating_add(1);
                if *n <= INSPECT_SEGMENTS {
                    Reach::Read
                } else {
                    Reach::Beyond
                }
            };
            Some(Place {
                rec,
                from_src,
                reach,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// tshark's side

const TSHARK_FIELDS: [&str; 12] = [
    "frame.number",
    "frame.time_epoch",
    "tcp.srcport",
    "tls.handshake.type",
    "tls.handshake.extensions_server_name",
    "tls.handshake.ja3",
    "dns.flags.response",
    "dns.qry.name",
    "dns.flags.rcode",
    "http.host",
    "http.user_agent",
    "_ws.malformed",
];

/// Occurrences of a field are joined with this (a byte no value holds).
const AGGREGATOR: char = '\u{1f}';

/// One frame tshark printed (it prints only frames with a ClientHello, a DNS message (DNS,
/// mDNS, LLMNR) or an HTTP request).
#[derive(Clone, Default)]
struct TFrame {
    /// Frame number in the capture (1-based).
    number: usize,
    ts: u64,
    tcp: bool,
    client_hello: bool,
    sni: Option<String>,
    ja3: Option<String>,
    dns_response: Option<bool>,
    qname: Option<String>,
    rcode: Option<u8>,
    host: Option<String>,
    user_agent: Option<String>,
    /// tshark marks the frame malformed (a dissector hit the end of the data or a bad value).
    malformed: bool,
}

fn tshark_args() -> Vec<String> {
    let mut a: Vec<String> = vec!["-n".into(), "-r".into(), "-".into()];
    for pref in [
        // Each segment alone, as botd reads it.
        "tcp.desegment_tcp_streams:FALSE",
        "tls.desegment_ssl_records:FALSE",
        "tls.desegment_ssl_application_data:FALSE",
        "http.desegment_headers:FALSE",
        "http.desegment_body:FALSE",
        "dns.desegment_dns_messages:FALSE",
        // botd reads the first fragment's payload, never a reassembled datagram.
        "ip.defragment:FALSE",
        "ipv6.defragment:FALSE",
        // botd reads retransmitted segments too; tshark would skip them.
        "tcp.analyze_sequence_numbers:FALSE",
        "tcp.no_subdissector_on_error:FALSE",
        // botd recognises TLS and HTTP by their first bytes, whatever the port.
        "tcp.try_heuristic_first:TRUE",
    ] {
        a.push("-o".into());
        a.push(pref.into());
    }
    a.push("-Y".into());
    a.push("tls.handshake.type == 1 || dns.flags || http.request".into());
    for opt in [
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "separator=/t",
        "-E",
        "quote=n",
    ] {
        a.push(opt.into());
    }
    a.push("-E".into());
    a.push(format!("aggregator={AGGREGATOR}"));
    for f in TSHARK_FIELDS {
        a.push("-e".into());
        a.push(f.into());
    }
    a
}

fn first(s: &str) -> Option<String> {
    let v = s.split(AGGREGATOR).next().unwrap_or("");
    (!v.is_empty()).then(|| v.to_string())
}

fn parse_epoch_ns(s: &str) -> Option<u64> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: u64 = sec.parse().ok()?;
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    Some(sec * 1_000_000_000 + frac.parse::<u64>().ok()?)
}

fn parse_tshark(out: &str) -> Vec<TFrame> {
    out.lines()
        .map(|line| {
            let c: Vec<&str> = line.split('\t').collect();
            assert_eq!(c.len(), TSHARK_FIELDS.len(), "tshark line: {line:.300}");
            let tcp = !c[2].is_empty();
            TFrame {
                number: c[0].parse().unwrap(),
                ts: parse_epoch_ns(c[1]).unwrap_or_else(|| panic!("tshark time {:?}", c[1])),
                tcp,
                client_hello: c[3].split(AGGREGATOR).any(|t| t == "1"),
                sni: first(c[4]),
                ja3: first(c[5]),
                dns_response: first(c[6]).map(|v| v == "1" || v.eq_ignore_ascii_case("true")),
                qname: first(c[7]),
                rcode: first(c[8]).and_then(|v| v.parse().ok()),
                host: first(c[9]),
                user_agent: first(c[10]),
                malformed: !c[11].is_empty(),
            }
        })
        .collect()
}

/// Runs tshark on a pcapng handed over on its standard input.
fn run_tshark(capture: Vec<u8>) -> Vec<TFrame> {
    let mut child = Command::new("tshark")
        .args(tshark_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("tshark: {e} (tests/run.sh installs it)"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&capture));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let status = child.wait().unwrap();
    writer.join().unwrap().unwrap();
    assert!(status.success(), "tshark failed: {err}");
    parse_tshark(&out)
}

/// The pcap link type number of a frame's link.
fn linktype_number(l: LinkType) -> u16 {
    match l {
        LinkType::Null => 0,
        LinkType::Ethernet => 1,
        LinkType::RawIp => 101,
        LinkType::Ipv4 => 228,
        LinkType::Ipv6 => 229,
        LinkType::LinuxSll => 113,
        LinkType::LinuxSll2 => 276,
        LinkType::Loop => 108,
        LinkType::Other(v) => v as u16,
    }
}

/// A pcapng (one section, little-endian, nanosecond stamps) being written.
struct Pcapng {
    out: Vec<u8>,
    /// Interface of each (capture, link type) written so far.
    interfaces: HashMap<(usize, u16), u32>,
}

impl Pcapng {
    fn new() -> Pcapng {
        let mut p = Pcapng {
            out: Vec::new(),
            interfaces: HashMap::new(),
        };
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        p.block(0x0a0d_0d0a, &shb);
        p
    }

    fn block(&mut self, kind: u32, body: &[u8]) {
        let len = (12 + body.len().div_ceil(4) * 4) as u32;
        self.out.extend_from_slice(&kind.to_le_bytes());
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(body);
        self.out
            .resize(self.out.len() + (4 - body.len() % 4) % 4, 0);
        self.out.extend_from_slice(&len.to_le_bytes());
    }

    /// Appends every frame botd reads from capture `cap` at `path`; returns how many.
    fn add_capture(&mut self, cap: usize, path: &Path) -> usize {
        let mut reader = FileReader::open(path).unwrap();
        let mut n = 0;
        while let Ok(Some(f)) = reader.next_frame() {
            let lt = linktype_number(f.link);
            let id = match self.interfaces.get(&(cap, lt)) {
                Some(&id) => id,
                None => {
                    let id = self.interfaces.len() as u32;
                    let mut idb = Vec::new();
                    idb.extend_from_slice(&lt.to_le_bytes());
                    idb.extend_from_slice(&0u16.to_le_bytes());
                    idb.extend_from_slice(&0u32.to_le_bytes());
                    // if_tsresol = 9 (nanoseconds), then opt_endofopt.
                    idb.extend_from_slice(&9u16.to_le_bytes());
                    idb.extend_from_slice(&1u16.to_le_bytes());
                    idb.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
                    self.block(1, &idb);
                    self.interfaces.insert((cap, lt), id);
                    id
                }
            };
            let mut epb = Vec::with_capacity(20 + f.data.len());
            epb.extend_from_slice(&id.to_le_bytes());
            epb.extend_from_slice(&((f.ts_ns >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(f.ts_ns as u32).to_le_bytes());
            epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
            epb.extend_from_slice(&f.orig_len.to_le_bytes());
            epb.extend_from_slice(f.data);
            self.block(6, &epb);
            n += 1;
        }
        n
    }
}

// ---------------------------------------------------------------------------------------------
// Both, per capture

struct CaptureRun {
    name: String,
    path: PathBuf,
    botd: BotdRun,
    /// tshark's printed frames, numbered as botd's (1-based).
    tshark: Vec<TFrame>,
}

struct Runs {
    runs: Vec<CaptureRun>,
    /// Files botd does not open as a capture, with the reason.
    skipped: Vec<String>,
    /// tshark processes run.
    tshark_runs: usize,
    /// Time botd took over every capture (with the test's own per-frame bookkeeping), and the
    /// whole.
    botd_seconds: f64,
    seconds: f64,
}

/// Frames per tshark run at most (a larger capture gets a run of its own).
const BATCH_FRAMES: usize = 25_000;

/// TCP and UDP endpoint pairs of a capture: captures that share none can go through one tshark
/// run without one's conversation state (how tshark decoded a conversation) reaching the other.
fn endpoints(run: &BotdRun) -> std::collections::HashSet<FlowKey> {
    run.frames
        .iter()
        .filter_map(|f| f.pkt)
        .filter(|p| p.proto == proto::TCP || p.proto == proto::UDP)
        .map(|p| FlowKey { aux: 0, ..p.key })
        .collect()
}

/// Runs `f` over `items` on a few threads; results in item order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Every capture through botd and tshark, once for all tests of this file.
///
/// botd reads each capture; the frames it read go to tshark as pcapng on its standard input,
/// several small captures with disjoint endpoints per run (a tshark run costs ~0.2 s of start-up
/// alone; the reader itself is compared with tshark in tests/capture.rs).
fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let t0 = Instant::now();
        let caps = captures();
        assert!(
            caps.len() >= 100,
            "expected the shared captures under {}",
            data_dir().display()
        );
        let botd = parallel(&caps, |p| run_botd(p));
        let botd_seconds = t0.elapsed().as_secs_f64();
        let mut runs = Vec::new();
        let mut skipped = Vec::new();
        for (path, b) in caps.iter().zip(botd) {
            let name = path
                .strip_prefix(data_dir())
                .unwrap_or(path)
                .display()
                .to_string();
            match b {
                Ok(botd) => runs.push(CaptureRun {
                    name,
                    path: path.clone(),
                    botd,
                    tshark: Vec::new(),
                }),
                Err(e) => skipped.push(format!("{name}: {e}")),
            }
        }
        // Batches: first fit on frame count and disjoint endpoints, in capture order.
        let mut batches: Vec<(Vec<usize>, std::collections::HashSet<FlowKey>, usize)> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let keys = endpoints(&run.botd);
            let n = run.botd.frames.len();
            let fit = batches
                .iter()
                .position(|(_, k, f)| f + n <= BATCH_FRAMES && k.is_disjoint(&keys));
            match fit {
                Some(b) => {
                    let (members, k, f) = &mut batches[b];
                    members.push(i);
                    k.extend(keys);
                    *f += n;
                }
                None => batches.push((vec![i], keys, n)),
            }
        }
        let members: Vec<Vec<usize>> = batches.into_iter().map(|(m, _, _)| m).collect();
        let outputs = parallel(&members, |m| {
            let mut png = Pcapng::new();
            let mut offsets = Vec::new();
            let mut total = 0;
            for &i in m {
                offsets.push(total);
                let n = png.add_capture(i, &runs[i].path);
                assert_eq!(n, runs[i].botd.frames.len(), "{}", runs[i].name);
                total += n;
            }
            (offsets, run_tshark(png.out))
        });
        for (m, (offsets, frames)) in members.iter().zip(outputs) {
            for mut f in frames {
                let k = offsets.partition_point(|&o| o < f.number) - 1;
                let run = &mut runs[m[k]];
                f.number -= offsets[k];
                let b = &run.botd.frames[f.number - 1];
                assert_eq!(b.ts, f.ts, "{} frame {}: tshark's time", run.name, f.number);
                run.tshark.push(f);
            }
        }
        Runs {
            runs,
            skipped,
            tshark_runs: members.len(),
            botd_seconds,
            seconds: t0.elapsed().as_secs_f64(),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// Values compared and equal.
#[derive(Default, Clone, Copy)]
struct Count {
    compared: u64,
    equal: u64,
}

impl Count {
    fn rate(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.equal as f64 / self.compared as f64
        }
    }
}

#[derive(Default, Clone)]
struct Tally {
    /// Where tshark's reference frame is well formed.
    sound: Count,
    /// Where tshark marks it malformed, or shows a placeholder (`<Name too long>`) for the value.
    malformed: Count,
    /// Equal values (well formed) that botd keeps cut: a long DNS name's end, the start of a
    /// long SNI, Host or User-Agent.
    cut: u64,
    /// botd has a value, tshark none in the frames botd read.
    botd_only: u64,
    /// Flows (or frames outside any TCP/UDP flow) whose value tshark shows only where botd
    /// does not read: [beyond the first segments, payload not kept, other direction, not
    /// TCP/UDP].
    unread: [u64; 4],
    examples: Vec<String>,
}

/// Differences listed per field (all of them with PARITY_VERBOSE set, which also lists
/// botd-only values).
fn examples_max() -> usize {
    if std::env::var_os("PARITY_VERBOSE").is_some() {
        usize::MAX
    } else {
        12
    }
}

impl Tally {
    fn compare(&mut self, malformed: bool, equal: bool, what: impl FnOnce() -> String) {
        let c = if malformed {
            &mut self.malformed
        } else {
            &mut self.sound
        };
        c.compared += 1;
        if equal {
            c.equal += 1;
        } else if self.examples.len() < examples_max() {
            let tag = if malformed { " [malformed]" } else { "" };
            self.examples.push(format!("{}{tag}", what()));
        }
    }
    fn unread_reason(&mut self, reach: Reach, other_direction: bool) {
        let i = match (reach, other_direction) {
            (Reach::NotTcpUdp, _) => 3,
            (_, true) => 2,
            (Reach::NotKept, _) => 1,
            _ => 0,
        };
        self.unread[i] += 1;
    }
}

/// tshark's text as botd stores HTTP values: bytes outside printable ASCII as `.`.
fn printable(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

/// botd's value equals tshark's, or is its start when botd's is full (`cap` bytes).
fn equal_or_cut(tshark: &str, botd: &str, cap: usize) -> bool {
    tshark == botd || (botd.len() >= cap && tshark.starts_with(botd))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The frames of one flow record that tshark printed, with their place.
struct FlowFrames<'a> {
    frames: Vec<(&'a TFrame, Place)>,
}

impl<'a> FlowFrames<'a> {
    /// Frames botd read, from the flow's source when `src_only`, with the property.
    fn read(&self, src_only: bool, f: impl Fn(&TFrame) -> bool) -> Vec<&'a TFrame> {
        self.frames
            .iter()
            .filter(|(t, p)| p.reach == Reach::Read && (p.from_src || !src_only) && f(t))
            .map(|(t, _)| *t)
            .collect()
    }
    /// The first frame botd did not read that has the property, with its reason.
    fn unread(&self, src_only: bool, f: impl Fn(&TFrame) -> bool) -> Option<(Reach, bool)> {
        self.frames
            .iter()
            .find(|(t, p)| f(t) && (p.reach != Reach::Read || (src_only && !p.from_src)))
            .map(|(_, p)| (p.reach, src_only && !p.from_src))
    }
}

/// Per capture: tshark's printed frames grouped by botd flow record; frames in no TCP/UDP flow.
fn group(run: &CaptureRun) -> (Vec<FlowFrames<'_>>, Vec<&TFrame>) {
    let mut per: Vec<FlowFrames<'_>> = (0..run.botd.recs.len())
        .map(|_| FlowFrames { frames: Vec::new() })
        .collect();
    let mut outside = Vec::new();
    for t in &run.tshark {
        match run.botd.places[t.number - 1] {
            Some(p) if p.reach != Reach::NotTcpUdp => per[p.rec].frames.push((t, p)),
            _ => outside.push(t),
        }
    }
    (per, outside)
}

/// The fields tshark is compared on, in table order.
const FIELDS: [&str; 6] = [
    "TLS SNI",
    "TLS JA3",
    "DNS query name",
    "DNS rcode",
    "HTTP Host",
    "HTTP User-Agent",
];

/// Where a difference is reported: the capture, the frame and the botd flow.
struct Site<'a> {
    run: &'a CaptureRun,
    rec: &'a Rec,
    /// The reference's name.
    by: &'static str,
}

impl Site<'_> {
    fn at(&self, f: &TFrame) -> String {
        format!("{} frame {} ({})", self.run.name, f.number, self.rec.label)
    }
    fn flow(&self) -> String {
        format!("{} ({})", self.run.name, self.rec.label)
    }
}

/// One field of one flow: tshark's reference frame and value against botd's value.
struct Judged<'a> {
    reference: Option<(&'a TFrame, Option<String>)>,
    botd: Option<String>,
    /// Where tshark has the value only in frames botd does not read.
    unread: Option<(Reach, bool)>,
    /// tshark's value is a placeholder, not a value (`<Name too long>`).
    placeholder: bool,
    /// botd's value is cut to its capacity.
    cut: bool,
}

fn judge(tally: &mut Tally, j: Judged<'_>, eq: impl Fn(&str, &str) -> bool, site: &Site<'_>) {
    match j.reference {
        Some((frame, r)) => {
            if r.is_none() && j.botd.is_none() {
                return;
            }
            let equal = match (&r, &j.botd) {
                (Some(r), Some(b)) => eq(r, b),
                _ => false,
            };
            let malformed = frame.malformed || j.placeholder;
            if equal && j.cut && !malformed {
                tally.cut += 1;
            }
            let botd = j.botd;
            tally.compare(malformed, equal, || {
                format!("{}: {} {r:?}, botd {botd:?}", site.at(frame), site.by)
            });
        }
        None => {
            if j.botd.is_some() {
                tally.botd_only += 1;
                if std::env::var_os("PARITY_VERBOSE").is_some() {
                    tally
                        .examples
                        .push(format!("{}: botd only {:?}", site.flow(), j.botd));
                }
            } else if let Some((reach, other)) = j.unread {
                tally.unread_reason(reach, other);
                if std::env::var_os("PARITY_VERBOSE").is_some() {
                    tally.examples.push(format!(
                        "{}: unread ({reach:?}{})",
                        site.flow(),
                        if other { ", other direction" } else { "" }
                    ));
                }
            }
        }
    }
}

fn compare_tshark(runs: &Runs) -> Vec<Tally> {
    let mut t: Vec<Tally> = vec![Tally::default(); FIELDS.len()];
    for run in &runs.runs {
        let (per, outside) = group(run);
        for f in outside {
            let has = [
                f.tcp && f.client_hello && f.sni.is_some(),
                f.tcp && f.client_hello && f.ja3.is_some(),
                f.qname.is_some(),
                f.rcode.is_some(),
                f.host.is_some(),
                f.user_agent.is_some(),
            ];
            for (i, h) in has.into_iter().enumerate() {
                if h {
                    t[i].unread_reason(Reach::NotTcpUdp, false);
                    if std::env::var_os("PARITY_VERBOSE").is_some() {
                        let what = format!("{} frame {}: not TCP/UDP for botd", run.name, f.number);
                        t[i].examples.push(what);
                    }
                }
            }
        }
        for (rec, ff) in run.botd.recs.iter().zip(&per) {
            let site = Site {
                run,
                rec,
                by: "tshark",
            };
            compare_tls(&mut t, rec, ff, &site);
            compare_dns(&mut t, rec, ff, &site);
            compare_http(&mut t, rec, ff, &site);
        }
    }
    t
}

/// tshark's ClientHello frames of a flow that botd read (from the flow's source), and the one
/// botd's value should come from: the first whole hello (tshark computed its JA3), else the
/// first (cut by its segment).
fn hello_reference<'a>(ff: &FlowFrames<'a>, whole: impl Fn(&TFrame) -> bool) -> Option<&'a TFrame> {
    let hellos = ff.read(true, |f| f.tcp && f.client_hello);
    hellos.iter().find(|f| whole(f)).or(hellos.first()).copied()
}

fn compare_tls(t: &mut [Tally], rec: &Rec, ff: &FlowFrames<'_>, site: &Site<'_>) {
    if rec.proto != proto::TCP {
        return;
    }
    let reference = hello_reference(ff, |f| f.ja3.is_some());
    let (sni, sni_cut, ja3) = match &rec.app {
        App::Tls(s) => (
            non_empty(&s.sni),
            s.sni_truncated,
            s.ja3_hex().map(|h| h.to_string()),
        ),
        _ => (None, false, None),
    };
    let hello = |f: &TFrame| f.tcp && f.client_hello;
    judge(
        &mut t[0],
        Judged {
            reference: reference.map(|f| (f, f.sni.clone())),
            botd: sni,
            unread: ff.unread(true, |f| hello(f) && f.sni.is_some()),
            placeholder: false,
            cut: sni_cut,
        },
        |r, b| r == b || (sni_cut && r.starts_with(b)),
        site,
    );
    judge(
        &mut t[1],
        Judged {
            reference: reference.map(|f| (f, f.ja3.clone())),
            botd: ja3,
            unread: ff.unread(true, |f| hello(f) && f.ja3.is_some()),
            placeholder: false,
            cut: false,
        },
        |r, b| r == b,
        site,
    );
}

fn compare_dns(t: &mut [Tally], rec: &Rec, ff: &FlowFrames<'_>, site: &Site<'_>) {
    let (qname, qname_cut, rcode) = match &rec.app {
        App::Dns(d) => (non_empty(&d.qname), d.qname_truncated, d.rcode),
        _ => (None, false, None),
    };
    // tshark's name of the root is `<Root>`; botd's is empty.
    let tshark_name = |f: &TFrame| f.qname.clone().filter(|q| q != "<Root>");
    let named = ff.read(false, |f| tshark_name(f).is_some());
    // botd keeps the first query's name, or a response's when no query was seen.
    let reference = named
        .iter()
        .find(|f| f.dns_response == Some(false))
        .or(named.first())
        .copied();
    let placeholder = reference
        .and_then(tshark_name)
        .is_some_and(|q| q.starts_with('<') && q.ends_with('>'));
    judge(
        &mut t[2],
        Judged {
            reference: reference.map(|f| (f, tshark_name(f))),
            botd: qname,
            unread: ff.unread(false, |f| tshark_name(f).is_some()),
            placeholder,
            cut: qname_cut,
        },
        |r, b| {
            let r = r.to_ascii_lowercase();
            match b.strip_prefix('~').filter(|_| qname_cut) {
                // botd keeps the last 99 characters of a longer name after `~`.
                Some(tail) => r.len() > tail.len() && r.ends_with(tail),
                None => r == b,
            }
        },
        site,
    );
    // botd keeps the latest response's code.
    let responses = ff.read(false, |f| f.rcode.is_some() && f.dns_response == Some(true));
    judge(
        &mut t[3],
        Judged {
            reference: responses
                .last()
                .map(|f| (*f, f.rcode.map(|r| r.to_string()))),
            botd: rcode.map(|r| r.to_string()),
            unread: ff.unread(false, |f| f.rcode.is_some()),
            placeholder: false,
            cut: false,
        },
        |r, b| r == b,
        site,
    );
}

/// One header's value in a tshark frame.
type HeaderOf = fn(&TFrame) -> Option<&str>;

fn compare_http(t: &mut [Tally], rec: &Rec, ff: &FlowFrames<'_>, site: &Site<'_>) {
    if rec.proto != proto::TCP {
        return;
    }
    // botd's values and their capacities (a longer value is cut there).
    let (host, ua) = match &rec.app {
        App::Http(h) => (
            (non_empty(&h.host), h.host.capacity()),
            (non_empty(&h.user_agent), h.user_agent.capacity()),
        ),
        _ => ((None, usize::MAX), (None, usize::MAX)),
    };
    // botd keeps the first Host and User-Agent its client's requests carry.
    let fields: [(usize, (Option<String>, usize), HeaderOf); 2] = [
        (4, host, |f| f.host.as_deref()),
        (5, ua, |f| f.user_agent.as_deref()),
    ];
    for (i, (botd, cap), value) in fields {
        let reference = ff
            .read(true, |f| value(f).is_some())
            .first()
            .map(|f| (*f, value(f).map(printable)));
        let cut = botd.as_ref().is_some_and(|b| {
            b.len() >= cap
                && reference
                    .as_ref()
                    .is_some_and(|(_, r)| r.as_ref().is_some_and(|r| r.len() > b.len()))
        });
        judge(
            &mut t[i],
            Judged {
                reference,
                botd,
                unread: ff.unread(true, |f| value(f).is_some()),
                placeholder: false,
                cut,
            },
            |r, b| equal_or_cut(r, b, cap),
            site,
        );
    }
}

fn table(runs: &Runs, names: &[&str], tallies: &[Tally]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} captures ({} frames) through botd ({:.1} s) and {} tshark runs, {:.1} s in all; {} \
         files are not captures botd opens ({})",
        runs.runs.len(),
        runs.runs.iter().map(|r| r.botd.frames.len()).sum::<usize>(),
        runs.botd_seconds,
        runs.tshark_runs,
        runs.seconds,
        runs.skipped.len(),
        runs.skipped.join("; ")
    );
    let _ = writeln!(
        s,
        "\n| field | compared | equal | rate | of which cut by botd | tshark-malformed: compared | \
         equal | botd only | unread: beyond {INSPECT_SEGMENTS} segments | not kept | other \
         direction | not TCP/UDP |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, t) in names.iter().zip(tallies) {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {:.2}% | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.sound.compared,
            t.sound.equal,
            100.0 * t.sound.rate(),
            t.cut,
            t.malformed.compared,
            t.malformed.equal,
            t.botd_only,
            t.unread[0],
            t.unread[1],
            t.unread[2],
            t.unread[3]
        );
    }
    for (name, t) in names.iter().zip(tallies) {
        if !t.examples.is_empty() {
            let _ = writeln!(s, "\n{name}, differences:");
            for e in &t.examples {
                let _ = writeln!(s, "  {e}");
            }
        }
    }
    s
}

fn publish(file: &str, text: &str) {
    println!("{text}");
    let dir = root().join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(file), text);
}

/// Lowest share of equal values per field (where tshark's frame is well formed), and fewest
/// values compared (about 90% of what the shared captures give), so that the test cannot pass
/// on a handful.
const FLOORS: [(f64, u64); 6] = [
    (0.99, 650),
    (0.99, 790),
    (0.99, 2900),
    (0.99, 2450),
    (0.99, 225),
    (0.99, 215),
];

#[test]
#[ignore = "system: tshark (tests/run.sh); data: ../shared/data"]
fn tshark_parity() {
    let runs = runs();
    let tallies = compare_tshark(runs);
    let text = table(runs, &FIELDS, &tallies);
    publish("protocol-parity.txt", &text);
    for ((name, t), (floor, min)) in FIELDS.iter().zip(&tallies).zip(FLOORS) {
        assert!(
            t.sound.compared >= min,
            "{name}: only {} values compared (at least {min} expected)\n{text}",
            t.sound.compared
        );
        assert!(
            t.sound.rate() >= floor,
            "{name}: {:.2}% equal, below {:.0}%\n{text}",
            100.0 * t.sound.rate(),
            100.0 * floor
        );
    }
}

// ---------------------------------------------------------------------------------------------
// JA4 against ja4plus

/// The trainer's venv python (tests/run.sh creates it with models/train/setup.sh).
fn venv_python() -> PathBuf {
    let p = root().join("models/train/.venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `sh models/train/setup.sh` (tests/run.sh does)",
        p.display()
    );
    p
}

/// ja4plus's JA4 of the frames `wanted` (capture index, frame number) of `runs`; `None` when
/// the frame holds no whole ClientHello.
fn ja4plus(runs: &Runs, wanted: &[(usize, usize)]) -> HashMap<(usize, usize), Option<String>> {
    let mut per_capture: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(c, n) in wanted {
        per_capture.entry(c).or_default().push(n);
    }
    let mut input = String::new();
    let mut caps: Vec<_> = per_capture.into_iter().collect();
    caps.sort();
    for (c, mut numbers) in caps {
        numbers.sort_unstable();
        let mut reader = FileReader::open(&runs.runs[c].path).unwrap();
        let mut number = 0;
        let mut want = numbers.iter().peekable();
        while let (Some(&&n), Ok(Some(f))) = (want.peek(), reader.next_frame()) {
            number += 1;
            if number == n {
                let _ = write!(input, "{c}:{n}\t{}\t", linktype_number(f.link));
                for b in f.data {
                    let _ = write!(input, "{b:02x}");
                }
                input.push('\n');
                want.next();
            }
        }
    }
    let mut child = Command::new(venv_python())
        .arg(root().join("models/train/ja4_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "ja4_reference.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (id, ja4) = l.split_once('\t').unwrap();
            let (c, n) = id.split_once(':').unwrap();
            (
                (c.parse().unwrap(), n.parse().unwrap()),
                (ja4 != "-").then(|| ja4.to_string()),
            )
        })
        .collect()
}

#[test]
#[ignore = "system: tshark (tests/run.sh); data: ../shared/data; venv: models/train/.venv"]
fn ja4_parity() {
    let runs = runs();
    let t0 = Instant::now();
    // Every TCP frame in which tshark sees a ClientHello, of every capture.
    let hellos: Vec<(usize, usize)> = runs
        .runs
        .iter()
        .enumerate()
        .flat_map(|(c, run)| {
            run.tshark
                .iter()
                .filter(|f| f.tcp && f.client_hello)
                .map(move |f| (c, f.number))
        })
        .collect();
    // QUIC carries its ClientHello in UDP (tshark decrypts the Initial packet); botd does not
    // read QUIC.
    let quic = runs
        .runs
        .iter()
        .flat_map(|r| &r.tshark)
        .filter(|f| !f.tcp && f.client_hello)
        .count();
    let reference = ja4plus(runs, &hellos);
    assert_eq!(reference.len(), hellos.len(), "ja4_reference.py answers");
    let whole = reference.values().filter(|v| v.is_some()).count();
    // Hellos ja4plus read no JA4 from although tshark computed their JA3 (whole, for tshark).
    let refused: Vec<String> = hellos
        .iter()
        .filter(|&&(c, n)| {
            reference[&(c, n)].is_none()
                && runs.runs[c]
                    .tshark
                    .iter()
                    .any(|f| f.number == n && f.ja3.is_some())
        })
        .map(|&(c, n)| format!("{} frame {n}", runs.runs[c].name))
        .collect();
    let mut tally = Tally::default();
    // Flows whose hellos botd read were all cut by their segment: no JA4 on either side.
    let mut cut_both = 0u64;
    for (c, run) in runs.runs.iter().enumerate() {
        let ja4_of = |f: &TFrame| reference.get(&(c, f.number)).cloned().flatten();
        let (per, outside) = group(run);
        for f in outside {
            if f.tcp && f.client_hello && ja4_of(f).is_some() {
                tally.unread_reason(Reach::NotTcpUdp, false);
            }
        }
        for (rec, ff) in run.botd.recs.iter().zip(&per) {
            if rec.proto != proto::TCP {
                continue;
            }
            let reference_frame = hello_reference(ff, |f| ja4_of(f).is_some());
            let ja4 = match &rec.app {
                App::Tls(s) => non_empty(&s.ja4),
                _ => None,
            };
            if reference_frame.is_some_and(|f| ja4_of(f).is_none()) && ja4.is_none() {
                cut_both += 1;
            }
            judge(
                &mut tally,
                Judged {
                    reference: reference_frame.map(|f| (f, ja4_of(f))),
                    botd: ja4,
                    unread: ff.unread(true, |f| f.tcp && f.client_hello && ja4_of(f).is_some()),
                    placeholder: false,
                    cut: false,
                },
                |r, b| r == b,
                &Site {
                    run,
                    rec,
                    by: "ja4plus",
                },
            );
        }
    }
    let mut text = format!(
        "ja4plus 1.4.0 on the {} TCP frames in which tshark sees a ClientHello: {whole} give a \
         JA4, {} do not: {} are whole for tshark (it computed their JA3) but wrapped where \
         ja4plus does not look (OpenVPN, tunnels: {:?}), the others continue in the next segment \
         (ja4plus would wait for it; botd does not reassemble TCP). Flows whose hellos botd read \
         were all cut, no JA4 on either side: {cut_both}. {quic} ClientHellos in QUIC (UDP) are \
         left out: botd does not read QUIC.\n",
        hellos.len(),
        hellos.len() - whole,
        refused.len(),
        refused
    );
    text.push_str(&table(
        runs,
        &["TLS JA4 (ja4plus)"],
        std::slice::from_ref(&tally),
    ));
    let _ = writeln!(
        text,
        "\nja4plus and comparison {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    publish("protocol-parity-ja4.txt", &text);
    assert!(
        tally.sound.compared >= 790,
        "only {} JA4 compared\n{text}",
        tally.sound.compared
    );
    assert!(
        tally.sound.rate() >= 0.99,
        "JA4: {:.2}% equal to ja4plus\n{text}",
        100.0 * tally.sound.rate()
    );
}

#[test]
fn summary_sizes() {
    use botd::proto::{bittorrent, dhcp, dns, http, irc, mining, ndp, smtp, ssh, tls};
    use std::mem::size_of;
    let text = format!(
        "size_of::<AppState>() = {} bytes (App {}), size_of::<Flow>() = {} bytes; summaries: DNS \
         {}, TLS {}, HTTP {}, SMTP {}, IRC {}, SSH {}, mining {}, DHCP {}, BitTorrent {}, \
         neighbour {}, ARP {}",
        size_of::<AppState>(),
        size_of::<App>(),
        size_of::<Flow>(),
        size_of::<dns::DnsSummary>(),
        size_of::<tls::TlsSummary>(),
        size_of::<http::HttpSummary>(),
        size_of::<smtp::SmtpSummary>(),
        size_of::<irc::IrcSummary>(),
        size_of::<ssh::SshSummary>(),
        size_of::<mining::MiningSummary>(),
        size_of::<dhcp::DhcpSummary>(),
        size_of::<bittorrent::BittorrentSummary>(),
        size_of::<ndp::Neighbour>(),
        size_of::<ndp::Arp>(),
    );
    publish("protocol-sizes.txt", &text);
    // The summary lives in every flow of the table: it must stay a part of a flow.
    assert!(size_of::<AppState>() < size_of::<Flow>());
}
