//! Capture readers against real files under ../shared/data. Expected values were taken from
//! `_tools/pcapinfo.py` and `tshark -r FILE -T fields -e frame.number -e frame.time_epoch`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use botd::capture::{CaptureError, FileReader, LinkType, MergedCapture, ReadStats};

/// The shared data set; a missing directory fails the test rather than skipping it.
fn data() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(d.is_dir(), "test data directory {} is missing", d.display());
    d
}

fn reg(rel: &str) -> PathBuf {
    data().join("debian-registry").join(rel)
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    ts_ns: u64,
    data: Vec<u8>,
    orig_len: u32,
    link: String,
    interface: u32,
}

fn read_all(path: &Path) -> Result<(Vec<Rec>, ReadStats), CaptureError> {
    let mut r = FileReader::open(path)?;
    let mut out = Vec::new();
    while let Some(f) = r.next_frame()? {
        out.push(Rec {
            ts_ns: f.ts_ns,
            data: f.data.to_vec(),
            orig_len: f.orig_len,
            link: format!("{:?}", f.link),
            interface: f.interface,
        });
    }
    Ok((out, r.stats().clone()))
}

/// Reads everything, ignoring the frames; an error counts as the end. Used to prove no panic.
fn drain(path: &Path) -> u64 {
    let Ok(mut r) = FileReader::open(path) else {
        return 0;
    };
    let mut n = 0;
    // An error ends the read like the end of file does.
    while let Ok(Some(f)) = r.next_frame() {
        assert!(f.data.len() <= 262_144);
        n += 1;
    }
    assert_eq!(r.stats().frames, n);
    n
}

/// A directory removed on drop; no extra dev-dependency needed.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("botd-capture-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Splits a little-endian µs pcap into (file header, records with their 16-byte headers).
fn pcap_records(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut recs = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        recs.push(bytes[off..off + 16 + caplen].to_vec());
        off += 16 + caplen;
    }
    (bytes[..24].to_vec(), recs)
}

const S: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// pcapfix: deliberately broken files

#[test]
#[ignore = "data: ../shared/data"]
fn pcapfix_files() {
    // test.pcap: intact, 28 frames (pcapinfo, tshark).
    let (recs, st) = read_all(&reg("pcapfix/test.pcap")).unwrap();
    assert_eq!(recs.len(), 28);
    assert_eq!(recs[0].ts_ns, 1_369_248_420 * S + 80_467_000);
    assert_eq!(recs[27].ts_ns, 1_369_248_424 * S + 452_930_000);
    assert_eq!(recs[27].data.len(), 60);
    assert_eq!(st.damaged_records_skipped, 0);
    assert!(st.warnings.is_empty());

    // test_2018.pcap: 1 frame, snaplen 262144.
    let (recs, st) = read_all(&reg("pcapfix/test_2018.pcap")).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].ts_ns, 1_534_895_741 * S + 133_548_000);
    assert_eq!(recs[0].data.len(), 54);
    assert!(st.warnings.is_empty());

    // test_damaged.pcap: one good frame, then a byte is missing and the second record header
    // (at byte 114) claims 16896 bytes the file does not have (tshark: "cut short").
    let p = reg("pcapfix/test_damaged.pcap");
    let (recs, st) = read_all(&p).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].ts_ns, 1_369_248_420 * S + 80_467_000);
    assert_eq!(st.damaged_records_skipped, 1);
    assert_eq!(st.warnings.len(), 1, "{:?}", st.warnings);
    assert!(
        st.warnings[0].contains("test_damaged.pcap"),
        "{}",
        st.warnings[0]
    );
    assert!(st.warnings[0].contains("byte 114"), "{}", st.warnings[0]);

    // test_without_pcap_header.pcap: starts with zeros; a clear error at byte 0.
    let p = reg("pcapfix/test_without_pcap_header.pcap");
    let e = FileReader::open(&p).err().expect("must not open");
    assert_eq!(e.offset, 0);
    let msg = e.to_string();
    assert!(
        msg.contains("test_without_pcap_header.pcap: byte 0: not a pcap or pcapng"),
        "{msg}"
    );
    assert!(MergedCapture::open(std::slice::from_ref(&p)).is_err());

    // The copyright file is not a capture either.
    assert!(FileReader::open(&reg("pcapfix/copyright")).is_err());
}

#[test]
#[ignore = "data: ../shared/data"]
fn every_pcapfix_file_without_panic() {
    for e in fs::read_dir(reg("pcapfix")).unwrap() {
        drain(&e.unwrap().path());
    }
}

// ---------------------------------------------------------------------------------------------
// gopacket pcapng conformance set

/// Frames per file: tshark's count minus the custom blocks it lists as frames (test017, 018,
/// 102, 202). test901's second section is version 2.0: tshark stops there after 1 frame, and so
/// do we (pcapinfo.py, which ignores versions, counts 3).
const PCAPNG_COUNTS: &[(&str, usize)] = &[
    ("test001", 4),
    ("test002", 0),
    ("test003", 0),
    ("test004", 4),
    ("test005", 4),
    ("test006", 5),
    ("test007", 1),
    ("test008", 4),
    ("test009", 2),
    ("test010", 4),
    ("test011", 4),
    ("test012", 4),
    ("test013", 0),
    ("test014", 0),
    ("test015", 0),
    ("test016", 4),
    ("test017", 0),
    ("test018", 4),
    ("test100", 5),
    ("test101", 4),
    ("test102", 5),
    ("test200", 0),
    ("test201", 4),
    ("test202", 8),
    ("test901", 1),
    ("test902", 1),
];

#[test]
#[ignore = "data: ../shared/data"]
fn pcapng_conformance_le_and_be() {
    let dir = reg("golang-github-google-gopacket-dev");
    let mut names: Vec<String> = fs::read_dir(dir.join("pcapng-le"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), PCAPNG_COUNTS.len());
    for (name, &(stem, count)) in names.iter().zip(PCAPNG_COUNTS) {
        assert_eq!(name, &format!("{stem}.pcapng"));
        let (le, le_st) = read_all(&dir.join("pcapng-le").join(name)).unwrap();
        let (be, be_st) = read_all(&dir.join("pcapng-be").join(name)).unwrap();
        assert_eq!(le.len(), count, "{name} (le)");
        assert_eq!(le, be, "{name}: le and be differ");
        assert_eq!(le_st.damaged_records_skipped, be_st.damaged_records_skipped);
        if stem == "test901" {
            assert_eq!(le_st.warnings.len(), 1);
            assert!(
                le_st.warnings[0].contains("version 2.0"),
                "{:?}",
                le_st.warnings
            );
        } else {
            assert!(le_st.warnings.is_empty(), "{name}: {:?}", le_st.warnings);
        }
    }
}

/// (ts_ns or 0 for an SPB before any timestamp, caplen, orig_len, interface), from tshark.
fn pcapng_frames(stem: &str) -> Vec<(u64, usize, u32, u32, String)> {
    let dir = reg("golang-github-google-gopacket-dev/pcapng-le");
    read_all(&dir.join(format!("{stem}.pcapng")))
        .unwrap()
        .0
        .into_iter()
        .map(|r| (r.ts_ns, r.data.len(), r.orig_len, r.interface, r.link))
        .collect()
}

#[test]
#[ignore = "data: ../shared/data"]
fn pcapng_timestamps_and_lengths() {
    let t0 = 1_340_954_905 * S;
    let e = || "Ethernet".to_string();
    // Two interfaces with different resolution/offset; tshark: 1340954.905298858 etc.
    assert_eq!(
        pcapng_frames("test008"),
        vec![
            (1_340_954_905_298_858, 96, 314, 0, e()),
            (1_340_954_905_299_858, 128, 342, 1, e()),
            (1_340_954_905_300_858, 96, 314, 0, e()),
            (1_340_954_905_301_858, 128, 342, 1, e()),
        ]
    );
    // SPBs take the previous packet's timestamp (0 before any).
    assert_eq!(
        pcapng_frames("test011"),
        vec![
            (0, 314, 314, 0, e()),
            (t0 + 298_858_000, 342, 342, 0, e()),
            (t0 + 298_858_000, 314, 314, 0, e()),
            (t0 + 300_858_000, 342, 342, 0, e()),
        ]
    );
    // SPB captured length cut by the interface snaplen (tshark: 315 of 342).
    let f = pcapng_frames("test012");
    let lens: Vec<(usize, u32)> = f.iter().map(|x| (x.1, x.2)).collect();
    assert_eq!(lens, vec![(314, 314), (315, 342), (314, 314), (315, 342)]);
    // Second interface is BSD loopback (link type 0).
    let f = pcapng_frames("test100");
    assert_eq!(f[4], (t0 + 301_858_000, 168, 168, 1, "Null".to_string()));
    // Obsolete Packet Blocks are read (test016 mixes PB, SPB and EPB).
    assert_eq!(pcapng_frames("test016").len(), 4);
    // Power-of-two resolution: tshark 1519128000.195312500.
    assert_eq!(
        pcapng_frames("test902"),
        vec![(1_519_128_000 * S + 195_312_500, 314, 314, 0, e())]
    );
}

// ---------------------------------------------------------------------------------------------
// gzip, link types, pcapinfo cross-checks

#[test]
#[ignore = "data: ../shared/data"]
fn gzip_plain_and_nested() {
    // (file, frames, first ts, last ts): pcapinfo.py on the fully decompressed file and tshark.
    let cases: &[(&str, usize, u64, u64)] = &[
        // gzip inside gzip
        (
            "anon-v4.pcap.gz",
            252,
            1_206_742_937_364_953_000,
            1_206_742_963_369_050_000,
        ),
        (
            "anon-v6.pcap.gz",
            141,
            1_205_887_542_812_186_000,
            1_205_887_554_101_191_000,
        ),
        (
            "icmp-sample.pcap.gz",
            21,
            1_385_331_568_270_645_000,
            1_385_331_583_031_923_000,
        ),
        (
            "icmp6-sample.pcap.gz",
            36,
            1_389_313_103_839_870_000,
            1_389_324_279_738_295_000,
        ),
    ];
    for &(name, n, first, last) in cases {
        let (recs, st) = read_all(&reg("python3-libtrace").join(name)).unwrap();
        assert_eq!(recs.len(), n, "{name}");
        assert_eq!(recs.first().unwrap().ts_ns, first, "{name}");
        assert_eq!(recs.last().unwrap().ts_ns, last, "{name}");
        assert!(st.warnings.is_empty(), "{name}: {:?}", st.warnings);
        assert!(recs.iter().all(|r| r.link == "Ethernet"));
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn link_types_and_pcapinfo_summaries() {
    // (file, link type, frames, first ts, last ts); frames from pcapinfo.py, times from tshark.
    let cases: &[(PathBuf, LinkType, usize, u64, u64)] = &[
        (
            reg("golang-github-google-gopacket-dev/test_loopback.pcap"),
            LinkType::Null,
            24,
            1_357_492_952_275_121_000,
            1_357_492_952_508_959_000,
        ),
        (
            reg("pathspider/icmp_ttl.pcap"), // pcapng with raw IP (101)
            LinkType::RawIp,
            9009,
            1_476_824_617_995_002_000,
            1_476_829_677_672_875_000,
        ),
        (
            data().join("malcolm-pcap/plugins/cve-2021-44228/log4j-dns_exfil.pcap"),
            LinkType::LinuxSll,
            14,
            1_614_581_999_524_650_000,
            1_614_581_999_555_498_000,
        ),
        (
            reg("pathspider/real.pcap"),
            LinkType::Ethernet,
            62_781,
            1_353_690_039_425_111_000,
            1_353_693_638_421_204_000,
        ),
        (
            data().join("chrissanders-packets/http_espn.pcapng"),
            LinkType::Ethernet,
            956,
            1_270_661_369_782_934_000,
            1_270_661_371_830_416_000,
        ),
    ];
    for (path, link, n, first, last) in cases {
        let mut r = FileReader::open(path).unwrap();
        let (mut count, mut f0, mut fl, mut bytes) = (0usize, 0u64, 0u64, 0usize);
        while let Some(f) = r.next_frame().unwrap() {
            assert_eq!(f.link, *link, "{}", path.display());
            assert!(f.data.len() as u64 <= u64::from(f.orig_len).max(f.data.len() as u64));
            if count == 0 {
                f0 = f.ts_ns;
            }
            fl = f.ts_ns;
            bytes += f.data.len();
            count += 1;
        }
        assert_eq!(count, *n, "{}", path.display());
        assert_eq!((f0, fl), (*first, *last), "{}", path.display());
        assert!(bytes > 0);
        assert!(r.stats().warnings.is_empty(), "{:?}", r.stats().warnings);
        assert_eq!(r.stats().frames, *n as u64);
    }
    assert_eq!(LinkType::from_linktype(0), LinkType::Null);
    assert_eq!(LinkType::from_linktype(1), LinkType::Ethernet);
    assert_eq!(LinkType::from_linktype(12), LinkType::RawIp);
    assert_eq!(LinkType::from_linktype(14), LinkType::RawIp);
    assert_eq!(LinkType::from_linktype(101), LinkType::RawIp);
    assert_eq!(LinkType::from_linktype(108), LinkType::Loop);
    assert_eq!(LinkType::from_linktype(113), LinkType::LinuxSll);
    assert_eq!(LinkType::from_linktype(228), LinkType::Ipv4);
    assert_eq!(LinkType::from_linktype(229), LinkType::Ipv6);
    assert_eq!(LinkType::from_linktype(276), LinkType::LinuxSll2);
    assert_eq!(LinkType::from_linktype(147), LinkType::Other(147));
}

// ---------------------------------------------------------------------------------------------
// Variants made from real files: nanosecond magic, big-endian

#[test]
#[ignore = "data: ../shared/data"]
fn nanosecond_pcap() {
    let orig = fs::read(reg("pcapfix/test.pcap")).unwrap();
    let (hdr, recs) = pcap_records(&orig);
    let mut out = hdr.clone();
    out[..4].copy_from_slice(&[0x4d, 0x3c, 0xb2, 0xa1]); // 0xa1b23c4d little-endian
    for r in &recs {
        let mut r = r.clone();
        let us = u32::from_le_bytes(r[4..8].try_into().unwrap());
        r[4..8].copy_from_slice(&(us * 1000 + 123).to_le_bytes());
        out.extend_from_slice(&r);
    }
    let t = TempDir::new("nanos");
    let p = t.path("nanos.pcap");
    fs::write(&p, &out).unwrap();
    let (a, _) = read_all(&reg("pcapfix/test.pcap")).unwrap();
    let (b, st) = read_all(&p).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.ts_ns + 123, y.ts_ns);
        assert_eq!(x.data, y.data);
    }
    assert!(st.warnings.is_empty());
}

#[test]
#[ignore = "data: ../shared/data"]
fn big_endian_pcap() {
    let orig = fs::read(reg("pathspider/tcp_http.pcap")).unwrap();
    let (hdr, recs) = pcap_records(&orig);
    let swap32 = |b: &mut [u8], at: usize| b[at..at + 4].reverse();
    let mut out = hdr.clone();
    for at in [0, 8, 12, 16, 20] {
        swap32(&mut out, at);
    }
    out[4..6].reverse();
    out[6..8].reverse();
    for r in &recs {
        let mut r = r.clone();
        for at in [0, 4, 8, 12] {
            swap32(&mut r, at);
        }
        out.extend_from_slice(&r);
    }
    assert_eq!(&out[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
    let t = TempDir::new("bigendian");
    let p = t.path("be.pcap");
    fs::write(&p, &out).unwrap();
    let (a, _) = read_all(&reg("pathspider/tcp_http.pcap")).unwrap();
    let (b, st) = read_all(&p).unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert!(st.warnings.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Hostile input: random bytes, truncations, mutations

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn random_bytes_never_panic() {
    let t = TempDir::new("random");
    let p = t.path("r.bin");
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let pcap_hdr = &fs::read(reg("pcapfix/test.pcap")).unwrap()[..24];
    let ng_le = fs::read(reg(
        "golang-github-google-gopacket-dev/pcapng-le/test016.pcapng",
    ))
    .unwrap();
    let ng_be = fs::read(reg(
        "golang-github-google-gopacket-dev/pcapng-be/test016.pcapng",
    ))
    .unwrap();
    for i in 0..3000 {
        let n = (rng.next() % 2048) as usize;
        let mut buf = match i % 5 {
            0 => Vec::new(),
            1 => pcap_hdr.to_vec(),
            2 => ng_le[..28].to_vec(), // bare section header
            3 => ng_le[..48].to_vec(), // section header + start of an IDB
            _ => ng_be[..28].to_vec(),
        };
        buf.extend(rng.bytes(n));
        if i % 7 == 0 {
            // Small caplens / block lengths so that parsing goes deeper than the first record.
            for b in buf.iter_mut().skip(28).step_by(3) {
                *b &= 0x1f;
            }
        }
        fs::write(&p, &buf).unwrap();
        drain(&p);
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn mutations_of_real_files_never_panic() {
    let t = TempDir::new("mutate");
    let p = t.path("m.bin");
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let sources = [
        reg("pcapfix/test.pcap"),
        reg("golang-github-google-gopacket-dev/pcapng-le/test202.pcapng"),
        reg("golang-github-google-gopacket-dev/pcapng-be/test202.pcapng"),
        reg("golang-github-google-gopacket-dev/pcapng-le/test100.pcapng"),
    ];
    for src in &sources {
        let orig = fs::read(src).unwrap();
        for _ in 0..500 {
            let mut buf = orig.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = 8 + (rng.next() as usize) % (buf.len() - 8);
                buf[at] = rng.next() as u8;
            }
            fs::write(&p, &buf).unwrap();
            drain(&p);
        }
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn truncations_every_97th_byte() {
    let t = TempDir::new("trunc");
    let p = t.path("t.bin");
    let sources = [
        reg("pcapfix/test.pcap"),
        reg("golang-github-google-gopacket-dev/pcapng-le/test202.pcapng"),
        reg("golang-github-google-gopacket-dev/pcapng-be/test202.pcapng"),
        reg("golang-github-google-gopacket-dev/pcapng-le/test102.pcapng"),
        reg("python3-libtrace/icmp-sample.pcap.gz"),
        reg("python3-libtrace/anon-v4.pcap.gz"),
        data().join("chrissanders-packets/aurora.pcapng"),
    ];
    for src in &sources {
        let orig = fs::read(src).unwrap();
        let full = read_all(src).unwrap().0;
        let mut prev = 0;
        for cut in (0..orig.len()).step_by(97) {
            fs::write(&p, &orig[..cut]).unwrap();
            match read_all(&p) {
                Ok((recs, st)) => {
                    // Whatever is returned is a prefix of the real file, and never shrinks.
                    assert!(recs.len() <= full.len());
                    assert_eq!(
                        &recs[..],
                        &full[..recs.len()],
                        "{} cut {cut}",
                        src.display()
                    );
                    assert!(recs.len() >= prev, "{} cut {cut}", src.display());
                    prev = recs.len();
                    for w in &st.warnings {
                        assert!(w.starts_with(&p.display().to_string()), "{w}");
                        assert!(w.contains(": byte "), "{w}");
                    }
                }
                Err(e) => {
                    assert_eq!(e.path, p);
                    // Only a cut inside the file header (or gzip header) may fail to open.
                    assert!(cut < 64 || prev == 0, "{} cut {cut}: {e}", src.display());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Several files as one stream

#[test]
#[ignore = "data: ../shared/data"]
fn merge_split_capture() {
    let src = reg("pathspider/tcp_ecn.pcap");
    let orig = fs::read(&src).unwrap();
    let (hdr, recs) = pcap_records(&orig);
    let t = TempDir::new("merge");
    let dir = t.path("rot");
    fs::create_dir(&dir).unwrap();
    // Three files with alternating packets; the third gzip-compressed.
    let mut parts = [hdr.clone(), hdr.clone(), hdr.clone()];
    for (i, r) in recs.iter().enumerate() {
        parts[i % 3].extend_from_slice(r);
    }
    fs::write(dir.join("part.pcap0"), &parts[0]).unwrap();
    fs::write(dir.join("part.pcap1"), &parts[1]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&parts[2]).unwrap();
    fs::write(dir.join("part.pcap2"), gz.finish().unwrap()).unwrap();

    let (mut expected, _) = read_all(&src).unwrap();
    assert!(expected.len() > 100);
    for inputs in [
        vec![dir.clone()],
        vec![
            dir.join("part.pcap2"),
            dir.join("part.pcap0"),
            dir.join("part.pcap1"),
        ],
    ] {
        let mut m = MergedCapture::open(&inputs).unwrap();
        let mut got = Vec::new();
        while let Some(f) = m.next_frame().unwrap() {
            got.push(Rec {
                ts_ns: f.ts_ns,
                data: f.data.to_vec(),
                orig_len: f.orig_len,
                link: format!("{:?}", f.link),
                interface: f.interface,
            });
        }
        assert_eq!(got.len(), expected.len());
        assert!(
            got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
            "out of order"
        );
        let st = m.stats();
        assert_eq!(st.frames, expected.len() as u64);
        assert!(st.warnings.is_empty());
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }
}

#[test]
#[ignore = "data: ../shared/data"]
fn merge_ties_are_stable_and_errors_name_the_file() {
    // The same file twice: equal timestamps alternate, earlier argument first.
    let p = reg("golang-github-google-gopacket-dev/test_dns.pcap");
    let mut m = MergedCapture::open(&[p.clone(), p.clone()]).unwrap();
    let mut n = 0;
    let mut last = 0;
    while let Some(f) = m.next_frame().unwrap() {
        assert!(f.ts_ns >= last);
        last = f.ts_ns;
        n += 1;
    }
    assert_eq!(n, 20);
    let files: Vec<&Path> = m.files().collect();
    assert_eq!(files, vec![p.as_path(), p.as_path()]);

    // A directory holding a non-capture file fails, naming that file.
    let e = MergedCapture::open(&[reg("pcapfix")]).err().unwrap();
    assert!(e.to_string().contains("copyright"), "{e}");
    assert!(MergedCapture::open(&[]).is_err());
    assert!(MergedCapture::open(&[data().join("no-such-file.pcap")]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Hand-built pcapng: tsoffset, tsresol, the interface bound

fn ng_block(btype: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    let mut b = btype.to_le_bytes().to_vec();
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

fn ng_shb() -> Vec<u8> {
    let mut body = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    body.extend(1u16.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend((-1i64).to_le_bytes());
    ng_block(0x0A0D_0D0A, &body)
}

fn ng_idb(link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
    let mut body = link.to_le_bytes().to_vec();
    body.extend([0, 0]);
    body.extend(0u32.to_le_bytes());
    if let Some(r) = tsresol {
        body.extend(9u16.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend([r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        body.extend(14u16.to_le_bytes());
        body.extend(8u16.to_le_bytes());
        body.extend(o.to_le_bytes());
    }
    if tsresol.is_some() || tsoffset.is_some() {
        body.extend([0, 0, 0, 0]);
    }
    ng_block(1, &body)
}

fn ng_epb(if_id: u32, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = if_id.to_le_bytes().to_vec();
    body.extend(((ts >> 32) as u32).to_le_bytes());
    body.extend((ts as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend((data.len() as u32 + 10).to_le_bytes());
    body.extend(data);
    ng_block(6, &body)
}

#[test]
fn pcapng_tsoffset_tsresol_and_interface_bound() {
    let mut f = ng_shb();
    f.extend(ng_idb(1, Some(9), Some(1_000_000_000))); // ns units, +1e9 s
    f.extend(ng_idb(101, Some(0x80 | 10), None)); // 2^-10 s units
    for _ in 2..257 {
        f.extend(ng_idb(1, None, None)); // default µs
    }
    f.extend(ng_epb(0, 5, b"abc"));
    f.extend(ng_epb(1, 1024 * 7 + 512, b"defgh"));
    f.extend(ng_epb(255, 3_000_001, b"x"));
    f.extend(ng_epb(256, 1, b"y")); // its IDB (the 257th) was refused
    f.extend(ng_epb(9999, 1, b"z"));
    let t = TempDir::new("handmade");
    let p = t.path("h.pcapng");
    fs::write(&p, &f).unwrap();
    let (recs, st) = read_all(&p).unwrap();
    let got: Vec<(u64, &[u8], u32, &str, u32)> = recs
        .iter()
        .map(|r| {
            (
                r.ts_ns,
                &r.data[..],
                r.orig_len,
                r.link.as_str(),
                r.interface,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1_000_000_000 * S + 5, &b"abc"[..], 13, "Ethernet", 0),
            (7 * S + 500_000_000, &b"defgh"[..], 15, "RawIp", 1),
            (3 * S + 1_000, &b"x"[..], 11, "Ethernet", 255),
        ]
    );
    assert_eq!(st.damaged_records_skipped, 3, "{:?}", st.warnings);
    assert_eq!(st.warnings.len(), 3);
    assert!(
        st.warnings[0].contains("more than 256 interfaces"),
        "{:?}",
        st.warnings
    );
    assert!(
        st.warnings[1].contains("undeclared interface 256"),
        "{:?}",
        st.warnings
    );

    // A block whose trailing length disagrees ends the file after what was read.
    let mut g = ng_shb();
    g.extend(ng_idb(1, None, None));
    g.extend(ng_epb(0, 1, b"ok"));
    let mut bad = ng_epb(0, 2, b"bad");
    let n = bad.len();
    bad[n - 4] ^= 0x40;
    g.extend(bad);
    g.extend(ng_epb(0, 3, b"never"));
    fs::write(&p, &g).unwrap();
    let (recs, st) = read_all(&p).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(st.damaged_records_skipped, 1);
    assert!(
        st.warnings[0].contains("trailing length"),
        "{:?}",
        st.warnings
    );
}

#[test]
#[ignore = "data: ../shared/data"]
fn truncated_gzip_returns_frames_before_the_cut() {
    let src = reg("python3-libtrace/anon-v4.pcap.gz");
    let orig = fs::read(&src).unwrap();
    let (full, _) = read_all(&src).unwrap();
    let t = TempDir::new("gzcut");
    let p = t.path("cut.pcap.gz");
    fs::write(&p, &orig[..5000]).unwrap();
    let (recs, st) = read_all(&p).unwrap();
    assert!(
        !recs.is_empty() && recs.len() < full.len(),
        "{}",
        recs.len()
    );
    assert_eq!(&recs[..], &full[..recs.len()]);
    assert_eq!(st.damaged_records_skipped, 1);
    assert!(
        st.warnings[0].contains("compressed data"),
        "{:?}",
        st.warnings
    );
    // Cut inside the gzip header: nothing readable, an error at byte 0.
    fs::write(&p, &orig[..10]).unwrap();
    let e = FileReader::open(&p).err().unwrap();
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("gzip"), "{e}");
}
