//! Opens a file as a byte stream, peeling off gzip layers (detected by magic bytes, not by name).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use flate2::read::MultiGzDecoder;

use super::CaptureError;

/// Bytes read ahead to recognise the format; pcap-parser's readers parse the file header from
/// their first `read`, which this prefix then satisfies in one call.
pub(crate) const PREFIX_LEN: usize = 64 * 1024;
/// Gzip inside gzip occurs in real data sets; more than this is treated as a hostile file.
const MAX_GZIP_LAYERS: u32 = 4;

/// A read failure seen below pcap-parser, which reduces every error to `PcapError::ReadError`.
#[derive(Clone, Debug)]
pub(crate) struct ReadFailure {
    /// True when the operating system reported it (as opposed to corrupt compressed data).
    pub os: bool,
    pub msg: String,
}

/// Shared slot where the taps record the first read failure.
#[derive(Clone, Default)]
pub(crate) struct ErrorSlot(Arc<Mutex<Option<ReadFailure>>>);

impl ErrorSlot {
    fn record(&self, os: bool, e: &io::Error) {
        if let Ok(mut g) = self.0.lock()
            && g.is_none()
        {
            *g = Some(ReadFailure {
                os,
                msg: e.to_string(),
            });
        }
    }

    pub(crate) fn take(&self) -> Option<ReadFailure> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }
}

/// Records read errors into the slot and retries interrupted reads.
struct Tap<R> {
    inner: R,
    slot: ErrorSlot,
    os: bool,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.slot.record(self.os, &e);
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }
}

/// A decompressed byte stream plus its first bytes, for format detection.
pub(crate) struct Source {
    pub reader: Box<dyn Read + Send>,
    pub head: [u8; 16],
    pub head_len: usize,
    pub gzip_layers: u32,
    /// Size on disk, for sizing buffers; the stream may be longer when compressed.
    pub file_len: u64,
    pub slot: ErrorSlot,
}

/// Replays a read error that happened while reading the prefix, after the prefix's bytes.
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Err(io::Error::other("read after a failed read")),
        }
    }
}

/// Reads up to `PREFIX_LEN` bytes; an error after some bytes is returned beside them, so that a
/// truncated or corrupt compressed file still yields the frames before the damage.
fn read_prefix(r: &mut dyn Read, buf: &mut Vec<u8>) -> Option<io::Error> {
    buf.resize(PREFIX_LEN, 0);
    let mut filled = 0;
    let mut failure = None;
    while filled < buf.len() {
        let Some(space) = buf.get_mut(filled..) else {
            break;
        };
        match r.read(space) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    buf.truncate(filled);
    failure
}

pub(crate) fn open(path: &Path) -> Result<Source, CaptureError> {
    let file =
        File::open(path).map_err(|e| CaptureError::new(path, 0, format!("cannot open: {e}")))?;
    let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
    let slot = ErrorSlot::default();
    let mut reader: Box<dyn Read + Send> = Box::new(Tap {
        inner: file,
        slot: slot.clone(),
        os: true,
    });
    let mut layers = 0;
    loop {
        let mut prefix = Vec::new();
        let failure = read_prefix(&mut reader, &mut prefix);
        if let Some(e) = &failure
            && prefix.is_empty()
        {
            let what = if layers > 0 {
                format!("corrupt gzip data: {e}")
            } else {
                format!("read error: {e}")
            };
            return Err(CaptureError::new(path, 0, what));
        }
        let mut head = [0u8; 16];
        let head_len = prefix.len().min(head.len());
        if let (Some(dst), Some(src)) = (head.get_mut(..head_len), prefix.get(..head_len)) {
            dst.copy_from_slice(src);
        }
        let rest: Box<dyn Read + Send> = match failure {
            Some(e) => Box::new(Failed(Some(e))),
            None => reader,
        };
        let chained = Cursor::new(prefix).chain(rest);
        if head_len >= 2 && head[0] == 0x1f && head[1] == 0x8b && layers < MAX_GZIP_LAYERS {
            layers += 1;
            reader = Box::new(MultiGzDecoder::new(chained));
            continue;
        }
        // The outer tap tags decompression failures, which are damage rather than I/O errors.
        let reader: Box<dyn Read + Send> = Box::new(Tap {
            inner: chained,
            slot: slot.clone(),
            os: false,
        });
        return Ok(Source {
            reader,
            head,
            head_len,
            gzip_layers: layers,
            file_len,
            slot,
        });
    }
}
