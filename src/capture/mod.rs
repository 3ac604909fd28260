//! Offline capture readers: pcap and pcapng files, plain or gzip-compressed, read without libpcap.
//!
//! * [`FileReader`] reads one file as a lending iterator of [`Frame`]s.
//! * [`MergedCapture`] reads several files and/or directories as one stream in timestamp order.
//!
//! Design notes (and where this differs from the first sketch of the API):
//! * A plain (uncompressed) pcap or pcapng file is memory-mapped and frames are slices of the
//!   mapping, never copied; pages already read are handed back to the kernel as reading goes on
//!   (`MADV_DONTNEED` every buffer's worth, with the next stretch mapped in ahead), so resident
//!   memory stays about two buffers whatever the file's size. Anything else (gzip, pipes, a start
//!   that does not parse) goes through a buffered stream. The two paths decode the same way and a
//!   test checks they agree on every shared capture.
//! * Buffers are allocated when a file is opened; reading a frame does not allocate. pcap-parser
//!   provides the buffered source (`PcapReaderIterator`: data/consume/refill/grow) and parses the
//!   file header, section headers and interface descriptions. Packet records (pcap records, EPB,
//!   SPB, obsolete PB) are decoded here, because pcap-parser collects EPB options into a `Vec`,
//!   which would allocate per packet.
//! * Byte offsets in errors and warnings are offsets in the decompressed stream for gzip input.
//! * Damage policy: garbage at the start of a file is an `Err` from `open` (offset 0). A damaged
//!   or truncated record after a readable start is a *warning + stop* for that file: everything
//!   before it is returned, then `next_frame` returns `Ok(None)` and [`ReadStats`] carries a
//!   warning naming the file and offset. pcap has no resynchronisation marker, so guessing past
//!   damage would invent packets; ending one file cleanly also lets a merge of many files go on.
//!   In pcapng, a block whose framing is intact but whose content is bad (unknown interface,
//!   caplen beyond the block, too many interfaces) is skipped alone and counted. `next_frame`
//!   returns `Err` only for operating-system read errors (not for damaged data).
//! * `MergedCapture::open` expands a directory into all its regular files, sorted by file name.
//!   Every file is opened at once (one buffer and descriptor each), since the merge needs the head
//!   of every file; buffers shrink (not below 512 KiB) when there are many files.
//! * Additions to the sketched API: `Frame::interface` (pcapng interface id; 0 for pcap),
//!   `FileReader::path`, `MergedCapture::files`, and public fields on `CaptureError`.
//! * Plain files smaller than the default buffer get a buffer of their own size (at least
//!   64 KiB): opening thousands of small rotation files stays cheap.
//! * In a merge, an `Err` from one file is returned once; that file then drops out and the
//!   other files go on. A merge of one file hands its frames straight through.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod file;
mod merge;
mod source;

pub use file::FileReader;
pub use merge::MergedCapture;

use std::fmt;
use std::path::{Path, PathBuf};

/// Largest caplen accepted (libpcap's MAXIMUM_SNAPLEN); anything bigger is a damaged record.
pub const MAX_CAPLEN: u32 = 262_144;
/// Most pcapng interfaces per section; more is an error for the extra IDB blocks.
pub const MAX_INTERFACES: usize = 256;
/// Most warnings kept per file; later ones are only counted in `damaged_records_skipped`.
pub const MAX_WARNINGS: usize = 100;

/// Link-layer type of a frame, from the pcap/pcapng LINKTYPE value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// 0: BSD loopback, 4-byte address family in the writer's host byte order.
    Null,
    /// 1: Ethernet II.
    Ethernet,
    /// 101 (and DLT values 12 / 14): raw IPv4 or IPv6, version in the first nibble.
    RawIp,
    /// 228: raw IPv4.
    Ipv4,
    /// 229: raw IPv6.
    Ipv6,
    /// 113: Linux cooked capture v1.
    LinuxSll,
    /// 276: Linux cooked capture v2.
    LinuxSll2,
    /// 108: OpenBSD loopback, address family in network byte order.
    Loop,
    /// Anything else, with its LINKTYPE value.
    Other(u32),
}

impl LinkType {
    pub fn from_linktype(v: u32) -> LinkType {
        match v {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            108 => LinkType::Loop,
            other => LinkType::Other(other),
        }
    }
}

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub link: LinkType,
    /// Exactly caplen bytes (pcapng padding removed).
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
    /// pcapng interface id within its section; 0 for pcap.
    pub interface: u32,
}

/// An error that stops reading: names the file, the byte offset and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    pub path: PathBuf,
    /// Byte offset in the (decompressed) stream.
    pub offset: u64,
    pub what: String,
}

impl CaptureError {
    pub(crate) fn new(path: &Path, offset: u64, what: impl Into<String>) -> CaptureError {
        CaptureError {
            path: path.to_path_buf(),
            offset,
            what: what.into(),
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: byte {}: {}",
            self.path.display(),
            self.offset,
            self.what
        )
    }
}

impl std::error::Error for CaptureError {}

/// Counters and warnings of a read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Frames handed out (or, in a merge, decoded and queued).
    pub frames: u64,
    /// Damaged or truncated records skipped (including the one that ended a file).
    pub damaged_records_skipped: u64,
    /// Human-readable, each naming file and byte offset; at most [`MAX_WARNINGS`] per file.
    pub warnings: Vec<String>,
}

impl ReadStats {
    pub(crate) fn warn(&mut self, path: &Path, offset: u64, what: &str) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings
                .push(format!("{}: byte {}: {}", path.display(), offset, what));
        }
    }

    pub(crate) fn add(&mut self, other: &ReadStats) {
        self.frames += other.frames;
        self.damaged_records_skipped += other.damaged_records_skipped;
        self.warnings.extend(other.warnings.iter().cloned());
    }
}
