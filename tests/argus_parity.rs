//! `botd flows` against Argus itself: every capture under ../shared/data is run through
//! `argus -F argus-ctu.conf` + `ra -F ra-ctu.rc` (Debian argus-server / argus-client 3.0.8, installed
//! by .ci/run) and through botd; Argus's records are matched to botd's on protocol, addresses,
//! ports and start time (within 1 ms). At least 98% must match with equal TotPkts, TotBytes and
//! SrcBytes, and at least 95% with equal State. The per-capture table is written to
//! target/argus-parity.txt; docs/argus-parity.md explains the remaining differences.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

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
                if name.ends_with(".pcap") || name.ends_with(".pcapng") || name.ends_with(".trace")
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

#[derive(Debug, Clone)]
struct Row {
    key: String,
    start_us: i64,
    pkts: u64,
    bytes: u64,
    sbytes: u64,
    state: String,
}

fn parse_time_us(s: &str) -> Option<i64> {
    // "YYYY/MM/DD HH:MM:SS.ffffff", UTC
    let (date, time) = s.split_once(' ')?;
    let mut d = date.split('/').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.')?;
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let us: i64 = frac.parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + us)
}

fn parse_rows(csv: &str) -> Vec<Row> {
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 14 || f[2] == "man" {
                return None;
            }
            Some(Row {
                key: format!("{}|{}|{}|{}|{}", f[2], f[3], f[4], f[6], f[7]),
                start_us: parse_time_us(f[0])?,
                pkts: f[11].parse().ok()?,
                bytes: f[12].parse().ok()?,
                sbytes: f[13].parse().ok()?,
                state: f[8].to_string(),
            })
        })
        .collect()
}

fn argus_rows(pcap: &Path, tmp: &Path) -> Vec<Row> {
    let tools = data_dir().join("_tools");
    let out = tmp.join("parity.argus");
    let _ = std::fs::remove_file(&out);
    // argus exits non-zero on some damaged files but still writes what it read.
    let _ = Command::new("argus")
        .arg("-F")
        .arg(tools.join("argus-ctu.conf"))
        .arg("-r")
        .arg(pcap)
        .arg("-w")
        .arg(&out)
        .output()
        .expect("argus not installed (apt-get install argus-server)");
    if !out.exists() {
        return Vec::new();
    }
    let ra = Command::new("ra")
        .arg("-F")
        .arg(tools.join("ra-ctu.rc"))
        .arg("-n")
        .arg("-r")
        .arg(&out)
        .env("TZ", "UTC")
        .output()
        .expect("ra not installed (apt-get install argus-client)");
    parse_rows(&String::from_utf8_lossy(&ra.stdout))
}

fn botd_rows(pcap: &Path) -> Vec<Row> {
    let out = Command::new(env!("CARGO_BIN_EXE_botd"))
        .arg("flows")
        .arg(pcap)
        .output()
        .expect("run botd");
    parse_rows(&String::from_utf8_lossy(&out.stdout))
}

/// botd's windowed records, grouped by window index, with each window's start as printed.
fn botd_window_rows(pcap: &Path) -> Vec<(String, Vec<Row>)> {
    let out = Command::new(env!("CARGO_BIN_EXE_botd"))
        .args(["flows", "--window", "300", "--overlap", "150"])
        .arg(pcap)
        .output()
        .expect("run botd");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut windows: Vec<(String, Vec<Row>)> = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let index: usize = f[14].parse().unwrap();
        while windows.len() <= index {
            windows.push((String::new(), Vec::new()));
        }
        windows[index].0 = f[15].to_string();
        windows[index]
            .1
            .extend(parse_rows(&format!("header\n{line}")));
    }
    windows
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    argus: usize,
    botd: usize,
    matched: usize,
    counts_equal: usize,
    state_equal: usize,
}

fn compare(argus: &[Row], botd: &[Row], diffs: &mut Vec<String>) -> Tally {
    let mut by_key: HashMap<&str, Vec<(usize, &Row)>> = HashMap::new();
    for (i, r) in botd.iter().enumerate() {
        by_key.entry(&r.key).or_default().push((i, r));
    }
    let mut used = vec![false; botd.len()];
    let mut t = Tally {
        argus: argus.len(),
        botd: botd.len(),
        ..Tally::default()
    };
    for a in argus {
        let candidate = by_key.get(a.key.as_str()).and_then(|rows| {
            rows.iter()
                .filter(|(i, b)| !used[*i] && (b.start_us - a.start_us).abs() <= 1000)
                .min_by_key(|(_, b)| (b.start_us - a.start_us).abs())
        });
        match candidate {
            Some(&(i, b)) => {
                used[i] = true;
                t.matched += 1;
                let counts = a.pkts == b.pkts && a.bytes == b.bytes && a.sbytes == b.sbytes;
                if counts {
                    t.counts_equal += 1;
                } else if diffs.len() < 400 {
                    diffs.push(format!(
                        "counts {} start={} argus={}/{}/{} botd={}/{}/{}",
                        a.key, a.start_us, a.pkts, a.bytes, a.sbytes, b.pkts, b.bytes, b.sbytes
                    ));
                }
                if a.state == b.state {
                    t.state_equal += 1;
                } else if diffs.len() < 400 {
                    diffs.push(format!(
                        "state {} start={} argus={} botd={}",
                        a.key, a.start_us, a.state, b.state
                    ));
                }
            }
            None => {
                if diffs.len() < 400 {
                    diffs.push(format!(
                        "missing {} start={} pkts={}",
                        a.key, a.start_us, a.pkts
                    ));
                }
            }
        }
    }
    t
}

#[test]
#[ignore = "system: argus, ra, editcap (tests/run.sh); data: ../shared/data"]
fn flows_match_argus() {
    let tmp = std::env::temp_dir().join(format!("botd-parity-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let files = captures();
    assert!(
        files.len() > 50,
        "expected the shared captures, found {}",
        files.len()
    );
    let mut total = Tally::default();
    let mut report = String::new();
    let mut diffs = Vec::new();
    writeln!(
        report,
        "capture,argus_flows,botd_flows,matched,counts_equal,state_equal"
    )
    .unwrap();
    for pcap in &files {
        let a = argus_rows(pcap, &tmp);
        let b = botd_rows(pcap);
        let mut file_diffs = Vec::new();
        let t = compare(&a, &b, &mut file_diffs);
        let rel = pcap
            .strip_prefix(data_dir())
            .unwrap_or(pcap)
            .display()
            .to_string();
        for d in file_diffs {
            diffs.push(format!("{rel}: {d}"));
        }
        writeln!(
            report,
            "{rel},{},{},{},{},{}",
            t.argus, t.botd, t.matched, t.counts_equal, t.state_equal
        )
        .unwrap();
        total.argus += t.argus;
        total.botd += t.botd;
        total.matched += t.matched;
        total.counts_equal += t.counts_equal;
        total.state_equal += t.state_equal;
    }
    let pct = |n: usize| 100.0 * n as f64 / total.argus.max(1) as f64;
    writeln!(
        report,
        "TOTAL,{},{},{},{},{}\nmatched {:.2}%  counts equal {:.2}%  state equal {:.2}%",
        total.argus,
        total.botd,
        total.matched,
        total.counts_equal,
        total.state_equal,
        pct(total.matched),
        pct(total.counts_equal),
        pct(total.state_equal)
    )
    .unwrap();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("argus-parity.txt"), &report).unwrap();
    std::fs::write(target.join("argus-parity-diffs.txt"), diffs.join("\n")).unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{report}");
    assert!(total.argus > 10_000, "too few Argus flows: {}", total.argus);
    assert!(
        pct(total.counts_equal) >= 98.0,
        "only {:.2}% of Argus flows matched with equal counts (see target/argus-parity*.txt)",
        pct(total.counts_equal)
    );
    assert!(
        pct(total.state_equal) >= 95.0,
        "only {:.2}% of Argus flows matched with equal State",
        pct(total.state_equal)
    );
}

/// The original detector cut each 300 s window (a new one every 150 s) out of the capture with
/// `editcap -A START -B END`, then ran argus and ra on it. botd's windowed records must be what
/// that pipeline gives, window by window.
#[test]
#[ignore = "system: argus, ra, editcap (tests/run.sh); data: ../shared/data"]
fn windows_match_the_original_pipeline() {
    let tmp = std::env::temp_dir().join(format!("botd-windows-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let files = [
        "debian-registry/pathspider/real.pcap",
        "stratosphere-slips/pcap/test7-malicious.pcap",
        "stratosphere-slips/pcap/test-cc_test-cc-capture-1.pcap",
    ];
    let mut total = Tally::default();
    let mut windows_checked = 0;
    for name in files {
        let pcap = data_dir().join(name);
        for (index, (start, rows)) in botd_window_rows(&pcap).iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let start_us = parse_time_us(start).unwrap();
            let end_us = start_us + 300_000_000;
            let fmt = |us: i64| {
                let t = botd::time::ArgusTime(us as u64 * 1000).to_string();
                t.replace('/', "-")
            };
            let cut = tmp.join(format!("w{index}.pcap"));
            let status = Command::new("editcap")
                .env("TZ", "UTC")
                .arg("-A")
                .arg(fmt(start_us))
                .arg("-B")
                .arg(fmt(end_us))
                .arg(&pcap)
                .arg(&cut)
                .status()
                .expect("editcap not installed (apt-get install tshark)");
            assert!(status.success(), "editcap failed on {name} window {index}");
            let a = argus_rows(&cut, &tmp);
            let mut diffs = Vec::new();
            let t = compare(&a, rows, &mut diffs);
            assert!(
                t.counts_equal * 100 >= t.argus * 97,
                "{name} window {index}: {} of {} Argus flows equal; first differences: {:?}",
                t.counts_equal,
                t.argus,
                &diffs[..diffs.len().min(5)]
            );
            total.argus += t.argus;
            total.botd += t.botd;
            total.counts_equal += t.counts_equal;
            total.state_equal += t.state_equal;
            windows_checked += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "{windows_checked} windows: {} Argus flows, {} botd flows, {} equal counts, {} equal state",
        total.argus, total.botd, total.counts_equal, total.state_equal
    );
    assert!(
        windows_checked >= 25,
        "only {windows_checked} windows checked"
    );
    assert!(total.counts_equal * 100 >= total.argus * 98);
    assert!(total.state_equal * 100 >= total.argus * 95);
}
