//! Bytes as a capture file (pcap or pcapng, plain or gzip): the reader must never panic, never
//! hand out a frame longer than its caplen bound, and must end (no endless loop on damage).
//! `FileReader` opens paths only, so each input is written to one tmpfs file per process.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use botd::capture::{FileReader, MAX_CAPLEN, MergedCapture};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("botd-fuzz-pcap-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    // Gzip input may decompress to more than its own size.
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    if let Ok(mut r) = FileReader::open(path) {
        let mut n = 0u64;
        loop {
            match r.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.data.len() <= MAX_CAPLEN as usize);
                    n += 1;
                    if !gzip {
                        // Every frame needs at least a 12-byte record header: none is invented.
                        assert!(f.data.len() <= data.len());
                        assert!(n as usize <= data.len() / 12 + 1);
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        assert_eq!(r.stats().frames, n);
        assert!(r.stats().warnings.len() <= botd::capture::MAX_WARNINGS);
        // A finished reader stays finished.
        assert!(matches!(r.next_frame(), Ok(None) | Err(_)));
    }
    // The same file twice through the merge: same frames, in timestamp order.
    if let Ok(mut m) = MergedCapture::open(&[path.clone(), path.clone()]) {
        let mut last = 0u64;
        let mut guard = 0usize;
        while let Ok(Some(f)) = m.next_frame() {
            // Each reader is in file order, which need not be time order; the merge only
            // orders heads, so just check it terminates and stays bounded.
            last = last.max(f.ts_ns);
            guard += 1;
            assert!(gzip || guard <= 2 * (data.len() / 12 + 1));
        }
        let _ = m.stats();
    }
});
