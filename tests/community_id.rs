//! The Community ID column of `botd flows` against the reference implementation: every record of
//! every capture under ../shared/data (all of truth.toml's among them) is hashed again by the
//! `communityid` Python package (models/train/community_id_reference.py, in the trainer's venv)
//! from the record's own Proto, SrcAddr, Sport, DstAddr and Dport, and must agree.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> PathBuf {
    root().join("../shared/data")
}

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

/// Every capture file under `dir`, recursively.
fn captures_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared captures)", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            captures_under(&p, out);
        } else if [".pcap", ".pcapng", ".pcap.gz", ".trace"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(p);
        }
    }
}

/// All captures of the shared data; truth.toml's must all be among them.
fn captures() -> Vec<PathBuf> {
    let mut all = Vec::new();
    captures_under(&data(), &mut all);
    let truth: toml::Value = toml::from_str(
        &std::fs::read_to_string(data().join("truth.toml"))
            .unwrap_or_else(|e| panic!("{}/truth.toml: {e}", data().display())),
    )
    .unwrap();
    let listed = truth["capture"].as_array().unwrap();
    assert!(listed.len() > 50, "truth.toml lists {}", listed.len());
    for c in listed {
        let p = data().join(c["path"].as_str().unwrap());
        assert!(all.contains(&p), "{} not found", p.display());
    }
    all
}

/// One flow record: the columns the hash is made of, and botd's Community ID.
#[derive(Debug)]
struct Row {
    capture: String,
    proto: String,
    src: String,
    sport: String,
    /// Dir, trimmed.
    dir: String,
    dst: String,
    dport: String,
    cid: String,
}

/// `botd flows --format csv` of a capture, read by column name; the Community ID must be the
/// last column.
fn botd_rows(capture: &Path) -> Vec<Row> {
    let out = Command::new(env!("CARGO_BIN_EXE_botd"))
        .args(["flows", "--format", "csv"])
        .arg(capture)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        // Files botd cannot read at all (pcapfix's broken samples) print nothing.
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    assert_eq!(cols.last(), Some(&"CommunityId"), "{header}");
    assert_eq!(
        cols[..4],
        ["StartTime", "Dur", "Proto", "SrcAddr"],
        "{header}"
    );
    let at = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    let (p, s, sp, dir, d, dp) = (
        at("Proto"),
        at("SrcAddr"),
        at("Sport"),
        at("Dir"),
        at("DstAddr"),
        at("Dport"),
    );
    let name = capture.strip_prefix(data()).unwrap().display().to_string();
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), cols.len(), "{name}: {line}");
            Row {
                capture: name.clone(),
                proto: f[p].to_string(),
                src: f[s].to_string(),
                sport: f[sp].to_string(),
                dir: f[dir].trim().to_string(),
                dst: f[d].to_string(),
                dport: f[dp].to_string(),
                cid: f.last().unwrap().to_string(),
            }
        })
        .collect()
}

/// A tuple as the reference takes it: protocol, addresses, ports (ICMP: type and code).
type Tuple = (u8, String, String, Option<(u16, u16)>);

/// The tuples a record can stand for: one, or for the ICMP records whose printed columns leave
/// the first message open, the two it can have been. `None` for ARP (no Community ID).
fn readings(r: &Row, numbers: &HashMap<String, u8>) -> Option<Vec<Tuple>> {
    let proto = *numbers
        .get(&r.proto)
        .unwrap_or_else(|| panic!("protocol {r:?}"));
    let (s, d) = (r.src.clone(), r.dst.clone());
    let port = |p: &str| p.parse::<u16>().unwrap_or_else(|_| panic!("port {r:?}"));
    Some(match proto {
        255 => return None,
        6 | 17 => vec![(proto, s, d, Some((port(&r.sport), port(&r.dport))))],
        // botd keeps no SCTP ports (nor does Argus print them): the record hashes with zeros.
        132 => vec![(proto, s, d, Some((0, 0)))],
        1 => {
            // Sport is the type in the low byte and the code in the high one, in hex.
            let v = u16::from_str_radix(r.sport.trim_start_matches("0x"), 16).unwrap();
            let (t, c) = (v & 0xff, v >> 8);
            let ports = Some((t, c));
            match t {
                // A record opened by a reply is printed from the requester's side: the reply
                // went from Dst to Src.
                0 | 14 | 16 | 18 => vec![(proto, d, s, ports)],
                // A request printed from the replier's side: a record opened by a reply and
                // turned by the request that followed (the request went Dst -> Src then), so
                // only where both sides sent.
                8 | 13 | 15 | 17 if r.dir == "<->" => {
                    vec![(proto, s.clone(), d.clone(), ports), (proto, d, s, ports)]
                }
                _ => vec![(proto, s, d, ports)],
            }
        }
        58 => {
            // Sport is the request's type for a request/reply pair, Dport the code.
            let (t, c) = (port(&r.sport), port(&r.dport));
            let mut v = vec![(proto, s.clone(), d.clone(), Some((t, c)))];
            if t == 135 {
                // Neighbour solicitations and adverts share a record: it may have been opened by
                // an advert, from Src.
                v.push((proto, s, d, Some((136, c))));
            }
            v
        }
        _ => vec![(proto, s, d, None)],
    })
}

/// The reference's Community IDs (seed 0, seed 1) of each tuple, in one Python process.
fn reference(tuples: &[Tuple]) -> Vec<(String, String)> {
    let mut input = String::new();
    for (p, s, d, ports) in tuples {
        let (a, b) = ports.map_or(("-".into(), "-".into()), |(a, b)| {
            (a.to_string(), b.to_string())
        });
        input.push_str(&format!("{p}\t{s}\t{d}\t{a}\t{b}\n"));
    }
    let mut child = Command::new(venv_python())
        .arg(root().join("models/train/community_id_reference.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    // The reference's own error (a venv without `communityid`: run models/train/setup.sh) says
    // more than the broken pipe it leaves the writer with.
    let written = writer.join().unwrap();
    assert!(
        out.status.success() && written.is_ok(),
        "community_id_reference.py ({written:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    assert_eq!(ids.len(), tuples.len());
    ids
}

#[test]
#[ignore = "data: ../shared/data; venv: models/train/.venv (tests/run.sh)"]
fn every_record_matches_the_reference() {
    let numbers: HashMap<String, u8> = (0..=255u8)
        .map(|p| (botd::output::proto_name(p).to_string(), p))
        .collect();
    let rows: Vec<Row> = captures().iter().flat_map(|c| botd_rows(c)).collect();
    let mut tuples = Vec::new();
    // Per row: its first tuple's index and how many readings it has.
    let mut spans = Vec::with_capacity(rows.len());
    for r in &rows {
        let v = readings(r, &numbers).unwrap_or_default();
        spans.push((tuples.len(), v.len()));
        tuples.extend(v);
    }
    let refs = reference(&tuples);
    let (mut compared, mut second_reading, mut arp) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (r, &(at, n)) in rows.iter().zip(&spans) {
        if n == 0 {
            arp += 1;
            assert_eq!(r.cid, "", "ARP has no Community ID: {r:?}");
            continue;
        }
        compared += 1;
        let ids = &refs[at..at + n];
        // A hash with another seed never agrees: the comparison tells hashes apart.
        assert!(ids.iter().all(|(_, seed1)| *seed1 != r.cid), "{r:?}");
        match ids.iter().position(|(seed0, _)| *seed0 == r.cid) {
            Some(0) => {}
            Some(_) => second_reading += 1,
            None => wrong.push(format!("{}: {r:?}: reference {ids:?}", r.capture)),
        }
    }
    eprintln!(
        "community_id: {compared} records of {} captures equal to the reference ({second_reading} \
         ICMP records by their second reading), {arp} ARP records without one",
        captures().len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {compared} records differ from the reference:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
    assert!(compared > 50_000, "only {compared} records compared");
    assert!(
        second_reading * 100 < compared,
        "{second_reading} second readings"
    );
}

/// JSON records carry the same Community ID as the CSV ones (and none for ARP).
#[test]
#[ignore = "data: ../shared/data"]
fn json_carries_the_csv_value() {
    for rel in [
        "stratosphere-slips/pcap/test12-icmp-portscan.pcap",
        "chrissanders-packets/arppoison.pcapng",
        "debian-registry/pathspider/real.pcap",
    ] {
        let capture = data().join(rel);
        let csv = botd_rows(&capture);
        let out = Command::new(env!("CARGO_BIN_EXE_botd"))
            .args(["flows", "--format", "json"])
            .arg(&capture)
            .output()
            .unwrap();
        let json: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(json.len(), csv.len(), "{rel}");
        assert!(!csv.is_empty(), "{rel}");
        for (j, c) in json.iter().zip(&csv) {
            assert_eq!(j["SrcAddr"], c.src.as_str(), "{rel}");
            match j.get("CommunityId") {
                Some(v) => assert_eq!(v, c.cid.as_str(), "{rel}"),
                None => assert!(c.proto == "arp" && c.cid.is_empty(), "{rel}: {c:?}"),
            }
        }
    }
}
