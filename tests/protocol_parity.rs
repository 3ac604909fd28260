//! Protocol parity: botd's per-flow application summary against a reference dissector on every
//! capture under ../shared/data (pcap, pcapng, gzip, recursively).
//!
//! * tshark (Debian's 4.0, installed by tests/run.sh) runs once per capture with `-T fields`, TCP
//!   reassembly, IP defragmentation and every protocol's own desegmentation off, and with
//!   subdissectors called on retransmitted segments too: it then dissects each segment alone, as
//!   botd reads it. Its TLS SNI and JA3 (`tls.handshake.extensions_server_name`,
//!   `tls.handshake.ja3`), DNS query name and response code (`dns.qry.name`, `dns.flags.rcode`)
//!   and HTTP Host and User-Agent (`http.host`, `http.user_agent`) are compared with botd's.
//! * JA4 comes from the reference implementation, the `ja4plus` package (pinned in
//!   models/train/requirements.txt), through models/train/ja4_reference.py: every TCP segment in
//!   which tshark sees a ClientHello goes to it, and its JA4 is compared with botd's.
//!
//! botd runs as a library: `botd::capture::FileReader` frames into `botd::engine::Engine`, whose
//! flow records are collected. Each frame is joined to tshark's by its number (tshark's
//! timestamp must equal botd's; where tshark cannot read a file, or numbers it differently, it
//! is handed the frames botd read, as a pcapng on its standard input) and to its botd flow record
//! by flow key and time. What is comparable is what botd reads: per flow direction, the first
//! [`INSPECT_SEGMENTS`] payloads that `botd::proto::worth_inspecting` keeps (cut to
//! `PAYLOAD_CAP` bytes); the reference value of a flow is tshark's from those frames, chosen as
//! botd chooses (the first ClientHello and the first request from the flow's source, the first
//! DNS query, the last DNS response). Values tshark shows only in frames botd does not read are
//! counted by reason, outside the rates. The table goes to stdout and to
//! target/protocol-parity.txt; docs/protocols.md explains it.

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
                *n += 1;
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
    "tcp.payload",
];

/// Occurrences of a field are joined with this (a byte no value holds).
const AGGREGATOR: char = '\u{1f}';

/// One frame tshark printed (it prints only frames with a ClientHello, DNS or an HTTP request).
#[derive(Clone, Default)]
struct TFrame {
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
    /// The TCP payload, hex, of a ClientHello frame (for ja4plus).
    payload_hex: Option<String>,
}

fn tshark_args() -> Vec<String> {
    let mut a: Vec<String> = vec!["-n".into()];
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
    ] {
        a.push("-o".into());
        a.push(pref.into());
    }
    a.push("-Y".into());
    a.push("tls.handshake.type == 1 || dns || http.request".into());
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
    if frac.len() > 9 {
        frac.truncate(9);
    }
    while frac.len() < 9 {
        frac.push('0');
    }
    Some(sec * 1_000_000_000 + frac.parse::<u64>().ok()?)
}

fn parse_tshark(out: &str) -> Result<Vec<TFrame>, String> {
    let mut frames = Vec::new();
    for line in out.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() != TSHARK_FIELDS.len() {
            return Err(format!("tshark line with {} fields: {line:.200}", c.len()));
        }
        let types: Vec<&str> = c[3].split(AGGREGATOR).collect();
        let client_hello = types.contains(&"1");
        let tcp = !c[2].is_empty();
        frames.push(TFrame {
            number: c[0]
                .parse()
                .map_err(|_| format!("frame number {:?}", c[0]))?,
            ts: parse_epoch_ns(c[1]).ok_or_else(|| format!("time {:?}", c[1]))?,
            tcp,
            client_hello,
            sni: first(c[4]),
            ja3: first(c[5]),
            dns_response: first(c[6]).map(|v| v == "1" || v.eq_ignore_ascii_case("true")),
            qname: first(c[7]),
            rcode: first(c[8]).and_then(|v| v.parse().ok()),
            host: first(c[9]),
            user_agent: first(c[10]),
            payload_hex: (client_hello && tcp).then(|| first(c[11])).flatten(),
        });
    }
    Ok(frames)
}

/// Runs tshark on `path`, or on `stdin_capture` (a pcapng) when given.
fn run_tshark(path: &Path, stdin_capture: Option<Vec<u8>>) -> Result<Vec<TFrame>, String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r");
    if stdin_capture.is_some() {
        cmd.arg("-");
    } else {
        cmd.arg(path);
    }
    cmd.args(tshark_args())
        .stdin(if stdin_capture.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("tshark: {e} (tests/run.sh installs it)"))?;
    let writer = stdin_capture.map(|bytes| {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        })
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .map_err(|e| format!("tshark output: {e}"))?;
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let status = child.wait().map_err(|e| e.to_string())?;
    if let Some(w) = writer {
        let _ = w.join();
    }
    if !status.success() {
        let err: Vec<&str> = err
            .lines()
            .filter(|l| !l.contains("Running as user"))
            .collect();
        return Err(format!("tshark failed: {}", err.join(" ")));
    }
    parse_tshark(&out)
}

/// The pcapng link type number of a frame's link.
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

/// The frames botd reads from `path`, as a pcapng (one interface per link type, ns stamps).
fn frames_as_pcapng(path: &Path) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
        let len = (12 + body.len().div_ceil(4) * 4) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + (4 - body.len() % 4) % 4, 0);
        out.extend_from_slice(&len.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut interfaces: HashMap<u16, u32> = HashMap::new();
    let mut reader = FileReader::open(path).unwrap();
    while let Ok(Some(f)) = reader.next_frame() {
        let lt = linktype_number(f.link);
        let next = interfaces.len() as u32;
        let id = *interfaces.entry(lt).or_insert_with(|| {
            let mut idb = Vec::new();
            idb.extend_from_slice(&lt.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&0u32.to_le_bytes());
            // if_tsresol = 9 (nanoseconds), then opt_endofopt.
            idb.extend_from_slice(&9u16.to_le_bytes());
            idb.extend_from_slice(&1u16.to_le_bytes());
            idb.extend_from_slice(&[9, 0, 0, 0]);
            idb.extend_from_slice(&[0, 0, 0, 0]);
            block(&mut out, 1, &idb);
            next
        });
        let mut epb = Vec::new();
        epb.extend_from_slice(&id.to_le_bytes());
        epb.extend_from_slice(&((f.ts_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(f.ts_ns as u32).to_le_bytes());
        epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&f.orig_len.to_le_bytes());
        epb.extend_from_slice(f.data);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        block(&mut out, 6, &epb);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Both, per capture

/// How tshark read a capture.
#[derive(Clone, Debug, PartialEq)]
enum Via {
    /// The file itself, its frames numbered and stamped as botd's.
    File,
    /// The frames botd read, handed over as a pcapng (tshark cannot read the file, or reads
    /// other frames), with the reason.
    BotdFrames(String),
}

struct CaptureRun {
    name: String,
    botd: BotdRun,
    tshark: Vec<TFrame>,
    via: Via,
}

/// Whether tshark's frames are botd's: same number, same timestamp.
fn frames_agree(botd: &BotdRun, tshark: &[TFrame]) -> Result<(), String> {
    for t in tshark {
        let Some(b) = t.number.checked_sub(1).and_then(|i| botd.frames.get(i)) else {
            return Err(format!("tshark frame {} beyond botd's frames", t.number));
        };
        if b.ts != t.ts {
            return Err(format!(
                "frame {}: tshark time {} ns, botd {} ns",
                t.number, t.ts, b.ts
            ));
        }
    }
    Ok(())
}

fn run_capture(path: &Path) -> Result<CaptureRun, String> {
    let name = path
        .strip_prefix(data_dir())
        .unwrap_or(path)
        .display()
        .to_string();
    let botd = run_botd(path).map_err(|e| format!("{name}: botd: {e}"))?;
    let (tshark, via) =
        match run_tshark(path, None).and_then(|t| frames_agree(&botd, &t).map(|()| t)) {
            Ok(t) => (t, Via::File),
            Err(why) => {
                let t = run_tshark(path, Some(frames_as_pcapng(path)))
                    .map_err(|e| format!("{name}: {e}"))?;
                frames_agree(&botd, &t).map_err(|e| format!("{name}: {e}"))?;
                (t, Via::BotdFrames(why))
            }
        };
    Ok(CaptureRun {
        name,
        botd,
        tshark,
        via,
    })
}

struct Runs {
    runs: Vec<CaptureRun>,
    /// Captures botd could not open (not a capture, or an empty one), with the reason.
    skipped: Vec<String>,
    seconds: f64,
}

/// Every capture through botd and tshark, once for all tests of this file.
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
        let next = AtomicUsize::new(0);
        // tshark spends much of its start-up waiting, so a few more workers than cores.
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get() * 2)
            .min(6);
        let mut results: Vec<(usize, Result<CaptureRun, String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(p) = caps.get(i) else { break };
                            done.push((i, run_capture(p)));
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
        results.sort_by_key(|(i, _)| *i);
        let mut runs = Vec::new();
        let mut skipped = Vec::new();
        for (_, r) in results {
            match r {
                Ok(run) => runs.push(run),
                Err(e) if e.contains(": botd: ") => skipped.push(e),
                Err(e) => panic!("{e}"),
            }
        }
        Runs {
            runs,
            skipped,
            seconds: t0.elapsed().as_secs_f64(),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Comparison

#[derive(Default, Clone)]
struct Tally {
    compared: u64,
    equal: u64,
    /// botd has a value, tshark none in the frames botd read.
    botd_only: u64,
    /// Flows (or frames outside any TCP/UDP flow) whose value tshark shows only where botd
    /// does not read: [beyond the first segments, payload not kept, other direction, not
    /// TCP/UDP].
    unread: [u64; 4],
    examples: Vec<String>,
}

const EXAMPLES: usize = 100000;

impl Tally {
    fn compare(&mut self, equal: bool, what: impl FnOnce() -> String) {
        self.compared += 1;
        if equal {
            self.equal += 1;
        } else if self.examples.len() < EXAMPLES {
            self.examples.push(what());
        }
    }
    fn rate(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.equal as f64 / self.compared as f64
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
fn group<'a>(run: &'a CaptureRun) -> (Vec<FlowFrames<'a>>, Vec<&'a TFrame>) {
    let mut per: Vec<FlowFrames<'a>> = (0..run.botd.recs.len())
        .map(|_| FlowFrames { frames: Vec::new() })
        .collect();
    let mut outside = Vec::new();
    for t in &run.tshark {
        match run.botd.places.get(t.number - 1).copied().flatten() {
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

fn compare_tshark(runs: &Runs) -> Vec<Tally> {
    let mut t: Vec<Tally> = vec![Tally::default(); FIELDS.len()];
    for run in &runs.runs {
        let (per, outside) = group(run);
        for f in outside {
            let has = [
                f.client_hello && f.sni.is_some(),
                f.client_hello && f.ja3.is_some(),
                f.qname.is_some(),
                f.rcode.is_some(),
                f.host.is_some(),
                f.user_agent.is_some(),
            ];
            for (i, h) in has.into_iter().enumerate() {
                if h {
                    t[i].unread_reason(Reach::NotTcpUdp, false);
                }
            }
        }
        for (rec, ff) in run.botd.recs.iter().zip(&per) {
            let at = |f: &TFrame| format!("{} frame {} ({})", run.name, f.number, rec.label);
            let at_rec = || format!("{} ({})", run.name, rec.label);
            compare_tls(&mut t, rec, ff, &at, &at_rec);
            compare_dns(&mut t, rec, ff, &at, &at_rec);
            compare_http(&mut t, rec, ff, &at, &at_rec);
        }
    }
    t
}

/// One field of one flow: tshark's reference (with its frame) against botd's value.
#[allow(clippy::too_many_arguments)]
fn judge(
    tally: &mut Tally,
    reference: Option<(&TFrame, Option<String>)>,
    botd: Option<String>,
    unread: Option<(Reach, bool)>,
    eq: impl Fn(&str, &str) -> bool,
    at: &dyn Fn(&TFrame) -> String,
    at_rec: &dyn Fn() -> String,
) {
    match reference {
        Some((frame, r)) => {
            if r.is_none() && botd.is_none() {
                return;
            }
            let equal = match (&r, &botd) {
                (Some(r), Some(b)) => eq(r, b),
                _ => false,
            };
            tally.compare(equal, || {
                format!("{}: tshark {:?}, botd {:?}", at(frame), r, botd)
            });
        }
        None => {
            if botd.is_some() {
                tally.botd_only += 1;
                if tally.examples.len() < EXAMPLES && std::env::var_os("PARITY_VERBOSE").is_some() {
                    tally
                        .examples
                        .push(format!("{}: botd only {:?}", at_rec(), botd));
                }
            } else if let Some((reach, other)) = unread {
                tally.unread_reason(reach, other);
            }
        }
    }
}

fn compare_tls(
    t: &mut [Tally],
    rec: &Rec,
    ff: &FlowFrames<'_>,
    at: &dyn Fn(&TFrame) -> String,
    at_rec: &dyn Fn() -> String,
) {
    if rec.proto != proto::TCP {
        return;
    }
    let hello = |f: &TFrame| f.tcp && f.client_hello;
    let hellos = ff.read(true, hello);
    // botd keeps the first whole hello, else the hello it saw cut.
    let reference = hellos
        .iter()
        .find(|f| f.ja3.is_some())
        .or(hellos.first())
        .copied();
    let (sni, sni_cut, ja3) = match &rec.app {
        App::Tls(s) => (
            non_empty(&s.sni),
            s.sni_truncated,
            s.ja3_hex().map(|h| h.to_string()),
        ),
        _ => (None, false, None),
    };
    judge(
        &mut t[0],
        reference.map(|f| (f, f.sni.clone())),
        sni,
        ff.unread(true, |f| hello(f) && f.sni.is_some()),
        |r, b| r == b || (sni_cut && r.starts_with(b)),
        at,
        at_rec,
    );
    judge(
        &mut t[1],
        reference.map(|f| (f, f.ja3.clone())),
        ja3,
        ff.unread(true, |f| hello(f) && f.ja3.is_some()),
        |r, b| r == b,
        at,
        at_rec,
    );
}

fn compare_dns(
    t: &mut [Tally],
    rec: &Rec,
    ff: &FlowFrames<'_>,
    at: &dyn Fn(&TFrame) -> String,
    at_rec: &dyn Fn() -> String,
) {
    let (qname, qname_cut, rcode) = match &rec.app {
        App::Dns(d) => (non_empty(&d.qname), d.qname_truncated, d.rcode),
        _ => (None, false, None),
    };
    // tshark's name of the root is `<Root>`; botd's is empty.
    let tshark_name = |f: &TFrame| f.qname.clone().filter(|q| q != "<Root>");
    let named = ff.read(false, |f| tshark_name(f).is_some());
    let reference = named
        .iter()
        .find(|f| f.dns_response == Some(false))
        .or(named.first())
        .copied();
    judge(
        &mut t[2],
        reference.map(|f| (f, tshark_name(f))),
        qname,
        ff.unread(false, |f| tshark_name(f).is_some()),
        |r, b| {
            let r = r.to_ascii_lowercase();
            match b.strip_prefix('~').filter(|_| qname_cut) {
                // botd keeps the last 99 characters of a longer name after `~`.
                Some(tail) => r.len() > tail.len() && r.ends_with(tail),
                None => r == b,
            }
        },
        at,
        at_rec,
    );
    let responses = ff.read(false, |f| f.rcode.is_some() && f.dns_response == Some(true));
    judge(
        &mut t[3],
        responses
            .last()
            .map(|f| (*f, f.rcode.map(|r| r.to_string()))),
        rcode.map(|r| r.to_string()),
        ff.unread(false, |f| f.rcode.is_some()),
        |r, b| r == b,
        at,
        at_rec,
    );
}

fn compare_http(
    t: &mut [Tally],
    rec: &Rec,
    ff: &FlowFrames<'_>,
    at: &dyn Fn(&TFrame) -> String,
    at_rec: &dyn Fn() -> String,
) {
    if rec.proto != proto::TCP {
        return;
    }
    let (host, ua) = match &rec.app {
        App::Http(h) => (non_empty(&h.host), non_empty(&h.user_agent)),
        _ => (None, None),
    };
    let hosts = ff.read(true, |f| f.host.is_some());
    judge(
        &mut t[4],
        hosts
            .first()
            .map(|f| (*f, f.host.as_deref().map(printable))),
        host,
        ff.unread(true, |f| f.host.is_some()),
        |r, b| equal_or_cut(r, b, 64),
        at,
        at_rec,
    );
    let agents = ff.read(true, |f| f.user_agent.is_some());
    judge(
        &mut t[5],
        agents
            .first()
            .map(|f| (*f, f.user_agent.as_deref().map(printable))),
        ua,
        ff.unread(true, |f| f.user_agent.is_some()),
        |r, b| equal_or_cut(r, b, 96),
        at,
        at_rec,
    );
}

fn table(runs: &Runs, names: &[&str], tallies: &[Tally]) -> String {
    let mut s = String::new();
    let via_frames = runs
        .runs
        .iter()
        .filter(|r| r.via != Via::File)
        .map(|r| r.name.as_str())
        .collect::<Vec<_>>();
    let _ = writeln!(
        s,
        "{} captures compared ({} frames; tshark was handed botd's frames for {}: {}), {} not \
         captures botd opens; {:.1} s",
        runs.runs.len(),
        runs.runs.iter().map(|r| r.botd.frames.len()).sum::<usize>(),
        via_frames.len(),
        via_frames.join(", "),
        runs.skipped.len(),
        runs.seconds
    );
    let _ = writeln!(
        s,
        "\n| field | compared | equal | rate | botd only | unread: beyond {INSPECT_SEGMENTS} \
         segments | not kept | other direction | not TCP/UDP |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, t) in names.iter().zip(tallies) {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {:.2}% | {} | {} | {} | {} | {} |",
            t.compared,
            t.equal,
            100.0 * t.rate(),
            t.botd_only,
            t.unread[0],
            t.unread[1],
            t.unread[2],
            t.unread[3]
        );
    }
    for (name, t) in names.iter().zip(tallies) {
        if !t.examples.is_empty() {
            let _ = writeln!(s, "\n{name}, first differences:");
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

/// Lowest share of equal values per field, and fewest values compared (about 90% of what the
/// shared captures give), so that the test cannot pass on a handful.
const FLOORS: [(f64, u64); 6] = [
    (0.99, 500),
    (0.99, 400),
    (0.99, 5000),
    (0.99, 4000),
    (0.99, 1000),
    (0.99, 1000),
];

#[test]
fn tshark_parity() {
    let runs = runs();
    let t0 = Instant::now();
    let tallies = compare_tshark(runs);
    let mut text = table(runs, &FIELDS, &tallies);
    let _ = writeln!(text, "\ncomparison {:.2} s", t0.elapsed().as_secs_f64());
    publish("protocol-parity.txt", &text);
    for ((name, t), (floor, min)) in FIELDS.iter().zip(&tallies).zip(FLOORS) {
        assert!(
            t.compared >= min,
            "{name}: only {} values compared (at least {min} expected)\n{text}",
            t.compared
        );
        assert!(
            t.rate() >= floor,
            "{name}: {:.2}% equal, below {:.0}%\n{text}",
            100.0 * t.rate(),
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

/// ja4plus's JA4 of each segment, keyed `(capture index, frame number)`; `None` when the
/// segment holds no whole ClientHello.
fn ja4plus(segments: &[((usize, usize), &str)]) -> HashMap<(usize, usize), Option<String>> {
    let mut input = String::new();
    for ((c, n), hex) in segments {
        let _ = writeln!(input, "{c}:{n}\t{hex}");
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
fn ja4_parity() {
    let runs = runs();
    let t0 = Instant::now();
    // Every TCP segment in which tshark sees a ClientHello, of every capture.
    let segments: Vec<((usize, usize), &str)> = runs
        .runs
        .iter()
        .enumerate()
        .flat_map(|(c, run)| {
            run.tshark
                .iter()
                .filter_map(move |f| Some(((c, f.number), f.payload_hex.as_deref()?)))
        })
        .collect();
    let reference = ja4plus(&segments);
    let whole = reference.values().filter(|v| v.is_some()).count();
    let mut tally = Tally::default();
    // Flows whose hellos botd read were all cut by their segment: no JA4 on either side.
    let mut cut_both = 0u64;
    for (c, run) in runs.runs.iter().enumerate() {
        let (per, outside) = group(run);
        for f in outside {
            if f.payload_hex.is_some() && reference.get(&(c, f.number)).is_some_and(Option::is_some)
            {
                tally.unread_reason(Reach::NotTcpUdp, false);
            }
        }
        for (rec, ff) in run.botd.recs.iter().zip(&per) {
            if rec.proto != proto::TCP {
                continue;
            }
            let ja4_of = |f: &TFrame| reference.get(&(c, f.number)).cloned().flatten();
            let hello = |f: &TFrame| f.tcp && f.client_hello && f.payload_hex.is_some();
            let hellos = ff.read(true, hello);
            let reference_frame = hellos
                .iter()
                .find(|f| ja4_of(f).is_some())
                .or(hellos.first())
                .copied();
            let ja4 = match &rec.app {
                App::Tls(s) => non_empty(&s.ja4),
                _ => None,
            };
            if reference_frame.is_some_and(|f| ja4_of(f).is_none()) && ja4.is_none() {
                cut_both += 1;
            }
            let at = |f: &TFrame| format!("{} frame {} ({})", run.name, f.number, rec.label);
            let at_rec = || format!("{} ({})", run.name, rec.label);
            judge(
                &mut tally,
                reference_frame.map(|f| (f, ja4_of(f))),
                ja4,
                ff.unread(true, |f| hello(f) && ja4_of(f).is_some()),
                |r, b| r == b,
                &at,
                &at_rec,
            );
        }
    }
    let mut text = format!(
        "ja4plus 1.4.0 on {} TCP segments holding a ClientHello (per tshark): {} whole in their \
         segment, {} cut (botd does not reassemble TCP; flows where both sides have no JA4 for \
         that reason: {cut_both})\n",
        segments.len(),
        whole,
        segments.len() - whole
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
        tally.compared >= 400,
        "only {} JA4 compared\n{text}",
        tally.compared
    );
    assert!(
        tally.rate() >= 0.99,
        "JA4: {:.2}% equal to ja4plus\n{text}",
        100.0 * tally.rate()
    );
}

#[test]
fn summary_sizes() {
    let text = format!(
        "size_of::<AppState>() = {} bytes, size_of::<App>() = {} bytes, size_of::<Flow>() = {} \
         bytes",
        std::mem::size_of::<AppState>(),
        std::mem::size_of::<App>(),
        std::mem::size_of::<Flow>()
    );
    publish("protocol-sizes.txt", &text);
    // The summary is kept in every flow of the table: it must stay a small part of a flow.
    assert!(std::mem::size_of::<AppState>() < std::mem::size_of::<Flow>());
}
