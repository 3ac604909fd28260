//! One pcap or pcapng file as a lending iterator of frames.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap, UncheckedAdvice};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    LegacyPcapReader, OptionCode, PcapError, PcapNGReader, parse_interfacedescriptionblock_be,
    parse_interfacedescriptionblock_le, parse_pcap_header, parse_sectionheaderblock,
};

use super::source::{self, ErrorSlot};
use super::{CaptureError, Frame, LinkType, MAX_CAPLEN, MAX_INTERFACES, ReadStats};

/// Buffer for a single file: large enough that refills are rare and no record forces growth.
pub(crate) const DEFAULT_BUFFER: usize = 2 << 20;
/// Smallest buffer used when many files are merged; still above the largest valid pcap record.
pub(crate) const MIN_BUFFER: usize = 512 << 10;
/// pcapng blocks longer than this are taken as damaged framing (the buffer grows up to it).
const MAX_BLOCK_LEN: usize = 16 << 20;

const SHB_TYPE: u32 = 0x0A0D_0D0A;
const IDB_TYPE: u32 = 1;
const PB_TYPE: u32 = 2;
const SPB_TYPE: u32 = 3;
const EPB_TYPE: u32 = 6;
/// The section byte-order magic as read by a little-endian load.
const BOM_LE: u32 = 0x1A2B_3C4D;
const BOM_BE: u32 = 0x4D3C_2B1A;
const NS_PER_S: u64 = 1_000_000_000;

#[inline]
fn u32_at(d: &[u8], off: usize, be: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// The four u32 fields of a pcap record header: seconds, fraction, caplen, orig_len.
#[inline]
fn record_header(h: &[u8; 16], be: bool) -> [u32; 4] {
    let rd = |b| {
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut fields = [0; 4];
    for (f, &b) in fields.iter_mut().zip(h.as_chunks::<4>().0) {
        *f = rd(b);
    }
    fields
}

#[inline]
fn u16_at(d: &[u8], off: usize, be: bool) -> Option<u16> {
    let b: [u8; 2] = d.get(off..off.checked_add(2)?)?.try_into().ok()?;
    Some(if be {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

/// How an interface's timestamp units turn into nanoseconds; precomputed so the per-packet
/// conversion is one multiply, divide or shift.
#[derive(Clone, Copy, Debug)]
enum TsScale {
    Mul(u64),
    Div(u64),
    Pow2(u32),
}

impl TsScale {
    /// From the pcapng `if_tsresol` byte; `None` if the resolution does not fit in 64 bits.
    fn from_tsresol(v: u8) -> Option<TsScale> {
        if v & 0x80 == 0 {
            let k = u32::from(v);
            match k {
                0..=9 => Some(TsScale::Mul(10u64.pow(9 - k))),
                10..=19 => Some(TsScale::Div(10u64.pow(k - 9))),
                _ => None,
            }
        } else {
            let s = u32::from(v & 0x7f);
            (s <= 63).then_some(TsScale::Pow2(s))
        }
    }

    #[inline]
    fn to_ns(self, ts: u64) -> u64 {
        match self {
            TsScale::Mul(m) => ts.saturating_mul(m),
            TsScale::Div(d) => ts / d,
            TsScale::Pow2(s) => {
                let secs = ts >> s;
                let frac = ts & ((1u64 << s) - 1);
                let frac_ns = (u128::from(frac) * u128::from(NS_PER_S)) >> s;
                secs.saturating_mul(NS_PER_S)
                    .saturating_add(u64::try_from(frac_ns).unwrap_or(u64::MAX))
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Iface {
    link: LinkType,
    scale: TsScale,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_s: i64,
    snaplen: u32,
}

impl Iface {
    #[inline]
    fn ts_ns(&self, ts: u64) -> u64 {
        let ns = self.scale.to_ns(ts);
        if self.offset_s == 0 {
            return ns;
        }
        let v = i128::from(ns) + i128::from(self.offset_s) * i128::from(NS_PER_S);
        u64::try_from(v.max(0)).unwrap_or(u64::MAX)
    }
}

#[derive(Clone, Copy, Debug)]
struct PcapFmt {
    be: bool,
    nanos: bool,
    /// 16, or 24 for the "modified" (Kuznetsov) pcap format.
    hdr_len: usize,
    link: LinkType,
}

impl PcapFmt {
    fn of(hdr: &pcap_parser::PcapHeader) -> PcapFmt {
        PcapFmt {
            be: hdr.is_bigendian(),
            nanos: hdr.is_nanosecond_precision(),
            hdr_len: if hdr.is_modified_format() { 24 } else { 16 },
            // The upper bits of the field carry FCS information, not the link type.
            link: LinkType::from_linktype(hdr.network.0 as u32 & 0x03FF_FFFF),
        }
    }
}

/// Per-section pcapng state.
struct NgState {
    be: bool,
    ifaces: Vec<Iface>,
    /// Timestamp of the previous packet in this section, for SPBs (which carry none).
    last_ts: u64,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Pcap(PcapFmt),
    PcapNg,
}

/// Where the current frame sits in the buffer, and what it is.
#[derive(Clone, Copy, Debug)]
struct Meta {
    start: usize,
    len: usize,
    ts_ns: u64,
    link: LinkType,
    orig_len: u32,
    interface: u32,
}

/// What one complete pcapng block means for the reader.
enum Outcome {
    Frame(Meta),
    Skip,
    /// Skip, with a warning that is not a lost packet (e.g. unreadable interface options).
    Note(String),
    /// The block is bad but its framing is intact: count it, warn, skip it alone.
    Damaged(String),
    /// Nothing after this can be trusted: warn and end the file.
    Stop(String),
}

/// Pages of a mapped file are handed back in multiples of this (a multiple of every page size).
const RELEASE_ALIGN: usize = 64 << 10;

/// A plain capture file mapped into memory: frames are slices of the mapping, never copied.
/// Pages already read are handed back to the kernel as reading goes on, so the resident size
/// stays about one buffer's worth whatever the file's size.
struct Mapped {
    map: Mmap,
    /// Offset of the first byte not consumed.
    pos: usize,
    /// Pages before this offset were handed back.
    released: usize,
    /// Pages before this offset were mapped in ahead of reading (up to about one `step` ahead).
    populated: usize,
    /// Consumed bytes kept mapped in before they are handed back (the stream path's buffer size).
    step: usize,
}

impl Mapped {
    /// Maps `path` when it is a regular, uncompressed pcap or pcapng file whose start reads as
    /// the stream path would read it; `None` sends the file down the stream path (pipes, gzip,
    /// damaged starts, whose errors that path words).
    fn open(path: &Path, step: usize) -> Option<(Mapped, Kind)> {
        let file = File::open(path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        // SAFETY: the mapping is private and read-only, and botd never writes the file. Another
        // process truncating the file while it is read would make later reads fault (SIGBUS); a
        // capture being appended to is fine (only the length at open is mapped). Reading
        // rotated or finished capture files, as botd does, truncates nothing.
        let map = unsafe { Mmap::map(&file) }.ok()?;
        // Only advice; reading works without it.
        let _ = map.advise(Advice::Sequential);
        // The stream path recognises the format from its first read of at most PREFIX_LEN bytes.
        let head = map.get(..map.len().min(source::PREFIX_LEN))?;
        let (kind, pos) = match u32_at(head, 0, false)? {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0xa1b2_cd34 => {
                let (_, hdr) = parse_pcap_header(head).ok()?;
                (Kind::Pcap(PcapFmt::of(&hdr)), hdr.size())
            }
            SHB_TYPE => match parse_sectionheaderblock(head) {
                Ok((_, shb)) if shb.major_version == 1 => (Kind::PcapNg, 0),
                _ => return None,
            },
            _ => return None,
        };
        let step = step.max(RELEASE_ALIGN);
        let mut mapped = Mapped {
            map,
            pos,
            released: 0,
            populated: 0,
            step,
        };
        mapped.populate();
        Some((mapped, kind))
    }

    #[inline]
    fn data(&self) -> &[u8] {
        self.map.get(self.pos..).unwrap_or_default()
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.map.len());
        if self.pos - self.released >= self.step {
            self.release();
        }
    }

    /// Maps the next `step` bytes in with one call, rather than a page fault every few pages as
    /// reading reaches them. Only advice: without it (kernels before 5.14), reading faults the
    /// pages in as it goes.
    fn populate(&mut self) {
        let end = self.pos.saturating_add(2 * self.step).min(self.map.len());
        if end > self.populated {
            let from = self.populated.max(self.pos);
            let _ = self
                .map
                .advise_range(Advice::PopulateRead, from, end - from);
            self.populated = end;
        }
    }

    /// Hands the pages before the current record back to the kernel.
    #[cold]
    fn release(&mut self) {
        let upto = self.pos & !(RELEASE_ALIGN - 1);
        if upto > self.released {
            // SAFETY: MADV_DONTNEED on a private read-only file mapping only drops page-table
            // entries: a later read would fault the same file bytes back in. No borrow of these
            // bytes is alive: frames are borrowed from the reader until the next `advance`,
            // which takes `&mut self` and calls this before decoding the next record, and every
            // byte below `upto` lies before that record. Failure is harmless (RSS stays higher).
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    UncheckedAdvice::DontNeed,
                    self.released,
                    upto - self.released,
                )
            };
            self.released = upto;
        }
        self.populate();
    }
}

/// Where a reader's bytes come from.
enum Input {
    /// pcap-parser's buffered reader over the (decompressed) stream.
    Stream(Box<dyn PcapReaderIterator + Send>),
    Mapped(Mapped),
}

impl Input {
    #[inline]
    fn data(&self) -> &[u8] {
        match self {
            Input::Stream(s) => s.data(),
            Input::Mapped(m) => m.data(),
        }
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        match self {
            Input::Stream(s) => s.consume_noshift(n),
            Input::Mapped(m) => m.consume(n),
        }
    }

    fn consumed(&self) -> usize {
        match self {
            Input::Stream(s) => s.consumed(),
            Input::Mapped(m) => m.pos,
        }
    }

    fn reader_exhausted(&self) -> bool {
        match self {
            Input::Stream(s) => s.reader_exhausted(),
            Input::Mapped(_) => true,
        }
    }

    fn grow(&mut self, new: usize) {
        if let Input::Stream(s) = self {
            s.grow(new);
        }
    }

    /// `Err` when the stream could not be read (the slot says why).
    fn refill(&mut self) -> Result<(), ()> {
        match self {
            Input::Stream(s) => s.refill().map(|_| ()).map_err(|_| ()),
            Input::Mapped(_) => Ok(()),
        }
    }
}

/// Reads one file: pcap (µs and ns magic, both byte orders) or pcapng, plain or gzip-compressed.
pub struct FileReader {
    path: PathBuf,
    src: Input,
    capacity: usize,
    kind: Kind,
    ng: NgState,
    /// Bytes of the current record, consumed at the start of the next call.
    pending: usize,
    current: Option<Meta>,
    done: bool,
    slot: ErrorSlot,
    stats: ReadStats,
}

fn describe_open_error(e: &PcapError<&[u8]>, slot: &ErrorSlot) -> String {
    match e {
        PcapError::ReadError => match slot.take() {
            Some(f) => format!("read error: {}", f.msg),
            None => "read error".to_string(),
        },
        PcapError::Eof | PcapError::UnexpectedEof | PcapError::Incomplete(_) => {
            "file header is truncated".to_string()
        }
        PcapError::BufferTooSmall => "file header is too large".to_string(),
        _ => "invalid file header".to_string(),
    }
}

impl FileReader {
    /// Opens and recognises `path`; garbage or an unknown format is an error at offset 0.
    pub fn open(path: &Path) -> Result<FileReader, CaptureError> {
        Self::open_with_buffer(path, DEFAULT_BUFFER)
    }

    pub(crate) fn open_with_buffer(
        path: &Path,
        capacity: usize,
    ) -> Result<FileReader, CaptureError> {
        Self::open_inner(path, capacity, true)
    }

    /// `map`: read a plain file through a memory mapping when it can be (tests compare both).
    fn open_inner(path: &Path, capacity: usize, map: bool) -> Result<FileReader, CaptureError> {
        if map && let Some((mapped, kind)) = Mapped::open(path, capacity) {
            return Ok(FileReader::with_input(
                path,
                Input::Mapped(mapped),
                capacity,
                kind,
                ErrorSlot::default(),
            ));
        }
        let s = source::open(path)?;
        // A plain file smaller than the buffer fits whole, so its records cannot outgrow it.
        let capacity = if s.gzip_layers == 0 && s.file_len < MIN_BUFFER as u64 {
            (s.file_len as usize).max(source::PREFIX_LEN)
        } else {
            capacity.max(MIN_BUFFER)
        };
        let gz = if s.gzip_layers > 0 {
            " (after gzip decompression)"
        } else {
            ""
        };
        if s.head_len == 0 {
            return Err(CaptureError::new(path, 0, format!("empty file{gz}")));
        }
        let magic = u32_at(&s.head, 0, false).filter(|_| s.head_len >= 4);
        let slot = s.slot.clone();
        let err = |what: String| CaptureError::new(path, 0, what);
        let (src, kind): (Box<dyn PcapReaderIterator + Send>, Kind) = match magic {
            Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0xa1b2_cd34) => {
                let mut r = LegacyPcapReader::new(capacity, s.reader)
                    .map_err(|e| err(format!("pcap: {}{gz}", describe_open_error(&e, &slot))))?;
                let hdr = match parse_pcap_header(r.data()) {
                    Ok((_, h)) => h,
                    Err(_) => return Err(err(format!("pcap: invalid file header{gz}"))),
                };
                let fmt = PcapFmt::of(&hdr);
                r.consume_noshift(hdr.size());
                (Box::new(r), Kind::Pcap(fmt))
            }
            Some(SHB_TYPE) => {
                let r = PcapNGReader::new(capacity, s.reader)
                    .map_err(|e| err(format!("pcapng: {}{gz}", describe_open_error(&e, &slot))))?;
                if let Ok((_, shb)) = parse_sectionheaderblock(r.data())
                    && shb.major_version != 1
                {
                    return Err(err(format!(
                        "pcapng: unsupported version {}.{}",
                        shb.major_version, shb.minor_version
                    )));
                }
                (Box::new(r), Kind::PcapNg)
            }
            _ => {
                let shown = s.head.get(..s.head_len.min(4)).unwrap_or_default();
                let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
                return Err(err(format!(
                    "not a pcap or pcapng file{gz} (starts with {hex})"
                )));
            }
        };
        Ok(FileReader::with_input(
            path,
            Input::Stream(src),
            capacity,
            kind,
            s.slot,
        ))
    }

    fn with_input(
        path: &Path,
        src: Input,
        capacity: usize,
        kind: Kind,
        slot: ErrorSlot,
    ) -> FileReader {
        FileReader {
            path: path.to_path_buf(),
            src,
            capacity,
            kind,
            ng: NgState {
                be: false,
                ifaces: Vec::with_capacity(MAX_INTERFACES),
                last_ts: 0,
            },
            pending: 0,
            current: None,
            done: false,
            slot,
            stats: ReadStats::default(),
        }
    }

    /// The next frame, borrowed until the next call; `Ok(None)` at the end of the file (or after
    /// damage, which is then described in [`FileReader::stats`]).
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        if let Some(meta) = self.decode_mapped_pcap() {
            return Ok(self.frame(meta));
        }
        if !self.advance_general()? {
            return Ok(None);
        }
        Ok(self.current())
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The frame decoded by the last successful `advance`.
    #[inline]
    pub(crate) fn current(&self) -> Option<Frame<'_>> {
        self.frame(self.current?)
    }

    #[inline]
    pub(crate) fn current_ts(&self) -> Option<u64> {
        self.current.map(|m| m.ts_ns)
    }

    /// Decodes the next frame into `current`, leaving its bytes in the buffer.
    #[inline]
    pub(crate) fn advance(&mut self) -> Result<bool, CaptureError> {
        if self.advance_mapped_pcap() {
            return Ok(true);
        }
        self.advance_general()
    }

    /// The common case of [`FileReader::advance`]: a whole, sound record of a mapped pcap file.
    /// `false` when it is not that (end of file, damage, pcapng, a stream), with nothing done
    /// that the general path would not do first itself.
    #[inline(always)]
    fn advance_mapped_pcap(&mut self) -> bool {
        self.decode_mapped_pcap().is_some()
    }

    /// [`FileReader::advance_mapped_pcap`], handing back what it decoded (also left in
    /// `current`), so that the frame can be made without reading it back.
    #[inline(always)]
    fn decode_mapped_pcap(&mut self) -> Option<Meta> {
        let (Input::Mapped(m), Kind::Pcap(fmt), false) = (&mut self.src, self.kind, self.done)
        else {
            return None;
        };
        m.consume(self.pending);
        self.pending = 0;
        let data = m.data();
        let h = data.first_chunk::<16>()?;
        let [sec, frac, caplen, orig_len] = record_header(h, fmt.be);
        let total = fmt.hdr_len + caplen as usize;
        if caplen > MAX_CAPLEN || data.len() < total {
            return None;
        }
        let meta = pcap_meta(fmt, sec, frac, caplen, orig_len);
        self.current = Some(meta);
        self.pending = total;
        self.stats.frames += 1;
        Some(meta)
    }

    /// The frame `meta` describes, at the current record.
    #[inline(always)]
    fn frame(&self, m: Meta) -> Option<Frame<'_>> {
        let data = self.src.data().get(m.start..m.start.checked_add(m.len)?)?;
        Some(Frame {
            ts_ns: m.ts_ns,
            link: m.link,
            data,
            orig_len: m.orig_len,
            interface: m.interface,
        })
    }

    #[inline(never)]
    fn advance_general(&mut self) -> Result<bool, CaptureError> {
        if self.pending != 0 {
            self.src.consume(self.pending);
            self.pending = 0;
        }
        self.current = None;
        if self.done {
            return Ok(false);
        }
        match self.kind {
            Kind::Pcap(fmt) => self.next_pcap(fmt),
            Kind::PcapNg => self.next_ng(),
        }
    }

    fn offset(&self) -> u64 {
        self.src.consumed() as u64
    }

    /// Records damage at the current offset and ends the file.
    fn stop(&mut self, what: &str) -> bool {
        let off = self.offset();
        self.stats.warn(&self.path, off, what);
        self.stats.damaged_records_skipped += 1;
        self.done = true;
        false
    }

    /// Makes at least `need` bytes available; `Ok(false)` at end of input (or after a
    /// decompression failure, which ends the file with a warning).
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        loop {
            if self.src.data().len() >= need {
                return Ok(true);
            }
            if self.src.reader_exhausted() {
                return Ok(false);
            }
            if need > self.capacity {
                // Only a record larger than the buffer gets here; callers bound `need`.
                let new = need.next_power_of_two();
                self.src.grow(new);
                self.capacity = new;
            }
            if self.src.refill().is_err() {
                return match self.slot.take() {
                    Some(f) if f.os => Err(CaptureError::new(
                        &self.path,
                        self.offset(),
                        format!("read error: {}", f.msg),
                    )),
                    f => {
                        let msg = f.map_or_else(|| "read error".to_string(), |f| f.msg);
                        Ok(self.stop(&format!(
                            "corrupt or truncated compressed data ({msg}); rest of file skipped"
                        )))
                    }
                };
            }
        }
    }

    /// After `fill` came up short: clean end if nothing is left, else a truncated record.
    fn end_of_input(&mut self, need: usize) -> bool {
        if self.done {
            return false;
        }
        let avail = self.src.data().len();
        if avail == 0 {
            self.done = true;
            return false;
        }
        self.stop(&format!(
            "truncated record at end of file ({avail} of {need} bytes present), skipped"
        ))
    }

    #[inline]
    fn next_pcap(&mut self, fmt: PcapFmt) -> Result<bool, CaptureError> {
        loop {
            let data = self.src.data();
            let need = match data.first_chunk::<16>() {
                None => fmt.hdr_len,
                Some(h) => {
                    let [sec, frac, caplen, orig_len] = record_header(h, fmt.be);
                    if caplen > MAX_CAPLEN {
                        let msg = format!(
                            "damaged record: caplen {caplen} exceeds {MAX_CAPLEN}; rest of file skipped"
                        );
                        return Ok(self.stop(&msg));
                    }
                    let total = fmt.hdr_len + caplen as usize;
                    if data.len() >= total {
                        self.current = Some(pcap_meta(fmt, sec, frac, caplen, orig_len));
                        self.pending = total;
                        self.stats.frames += 1;
                        return Ok(true);
                    }
                    total
                }
            };
            if !self.fill(need)? {
                return Ok(self.end_of_input(need));
            }
        }
    }

    fn next_ng(&mut self) -> Result<bool, CaptureError> {
        loop {
            let data = self.src.data();
            let need = match data.first_chunk::<12>() {
                None => 12,
                Some(h) => {
                    let raw_type = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                    let be = if raw_type == SHB_TYPE {
                        match u32::from_le_bytes([h[8], h[9], h[10], h[11]]) {
                            BOM_LE => false,
                            BOM_BE => true,
                            _ => {
                                return Ok(self.stop(
                                    "section header with a bad byte-order magic; rest of file skipped",
                                ));
                            }
                        }
                    } else {
                        self.ng.be
                    };
                    let btype = if be { raw_type.swap_bytes() } else { raw_type };
                    let blen = u32_at(h, 4, be).unwrap_or(0) as usize;
                    if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_BLOCK_LEN {
                        let msg = format!(
                            "block type {btype:#x} has invalid length {blen}; rest of file skipped"
                        );
                        return Ok(self.stop(&msg));
                    }
                    if let Some(block) = data.get(..blen) {
                        let outcome = if u32_at(block, blen - 4, be) != Some(blen as u32) {
                            Outcome::Stop(format!(
                                "block type {btype:#x}: trailing length differs from {blen}; rest of file skipped"
                            ))
                        } else {
                            decode_block(block, btype, be, &mut self.ng)
                        };
                        match outcome {
                            Outcome::Frame(m) => {
                                self.current = Some(m);
                                self.pending = blen;
                                self.stats.frames += 1;
                                return Ok(true);
                            }
                            Outcome::Skip => {}
                            Outcome::Note(msg) => {
                                let off = self.offset();
                                self.stats.warn(&self.path, off, &msg);
                            }
                            Outcome::Damaged(msg) => {
                                let off = self.offset();
                                self.stats.warn(&self.path, off, &msg);
                                self.stats.damaged_records_skipped += 1;
                            }
                            Outcome::Stop(msg) => return Ok(self.stop(&msg)),
                        }
                        self.src.consume(blen);
                        continue;
                    }
                    blen
                }
            };
            if !self.fill(need)? {
                return Ok(self.end_of_input(need));
            }
        }
    }
}

/// Where a pcap record's frame is and what it is, from the four fields of its header.
#[inline]
fn pcap_meta(fmt: PcapFmt, sec: u32, frac: u32, caplen: u32, orig_len: u32) -> Meta {
    let frac_ns = if fmt.nanos {
        u64::from(frac)
    } else {
        u64::from(frac) * 1000
    };
    Meta {
        start: fmt.hdr_len,
        len: caplen as usize,
        ts_ns: u64::from(sec) * NS_PER_S + frac_ns,
        link: fmt.link,
        orig_len,
        interface: 0,
    }
}

/// Interprets one complete pcapng block whose two length fields agree.
fn decode_block(block: &[u8], btype: u32, be: bool, ng: &mut NgState) -> Outcome {
    let blen = block.len();
    match btype {
        EPB_TYPE | PB_TYPE => {
            // EPB: if_id u32; PB (obsolete): if_id u16 + drops u16. Then ts_hi, ts_lo, caplen, len.
            let fields = (
                if btype == EPB_TYPE {
                    u32_at(block, 8, be)
                } else {
                    u16_at(block, 8, be).map(u32::from)
                },
                u32_at(block, 12, be),
                u32_at(block, 16, be),
                u32_at(block, 20, be),
                u32_at(block, 24, be),
            );
            let (Some(if_id), Some(hi), Some(lo), Some(caplen), Some(orig_len)) = fields else {
                return Outcome::Damaged(format!("packet block too short ({blen} bytes), skipped"));
            };
            if caplen > MAX_CAPLEN || 28 + caplen as usize > blen - 4 {
                return Outcome::Damaged(format!(
                    "packet block caplen {caplen} does not fit its {blen}-byte block, skipped"
                ));
            }
            let Some(iface) = ng.ifaces.get(if_id as usize) else {
                return Outcome::Damaged(format!(
                    "packet on undeclared interface {if_id}, skipped"
                ));
            };
            let ts_ns = iface.ts_ns((u64::from(hi) << 32) | u64::from(lo));
            ng.last_ts = ts_ns;
            Outcome::Frame(Meta {
                start: 28,
                len: caplen as usize,
                ts_ns,
                link: iface.link,
                orig_len,
                interface: if_id,
            })
        }
        SPB_TYPE => {
            let (Some(orig_len), Some(iface)) = (u32_at(block, 8, be), ng.ifaces.first()) else {
                return Outcome::Damaged("simple packet block without interface 0, skipped".into());
            };
            // Captured length is implied: the original length cut by snaplen and the block size.
            let mut caplen = (orig_len as usize).min(blen.saturating_sub(16));
            if iface.snaplen != 0 {
                caplen = caplen.min(iface.snaplen as usize);
            }
            Outcome::Frame(Meta {
                start: 12,
                len: caplen,
                ts_ns: ng.last_ts,
                link: iface.link,
                orig_len,
                interface: 0,
            })
        }
        IDB_TYPE => decode_idb(block, be, ng),
        SHB_TYPE => match parse_sectionheaderblock(block) {
            Ok((_, shb)) if shb.major_version == 1 => {
                ng.be = be;
                ng.ifaces.clear();
                ng.last_ts = 0;
                Outcome::Skip
            }
            Ok((_, shb)) => Outcome::Stop(format!(
                "unsupported pcapng section version {}.{}; rest of file skipped",
                shb.major_version, shb.minor_version
            )),
            Err(_) => Outcome::Stop("damaged section header; rest of file skipped".into()),
        },
        // NRB, ISB, DSB, custom and unknown blocks carry no packets.
        _ => Outcome::Skip,
    }
}

fn decode_idb(block: &[u8], be: bool, ng: &mut NgState) -> Outcome {
    if ng.ifaces.len() >= MAX_INTERFACES {
        return Outcome::Damaged(format!(
            "more than {MAX_INTERFACES} interfaces in a section; interface block skipped"
        ));
    }
    let parsed = if be {
        parse_interfacedescriptionblock_be(block)
    } else {
        parse_interfacedescriptionblock_le(block)
    };
    match parsed {
        Ok((_, idb)) => {
            let offset_s = idb
                .options
                .iter()
                .find(|o| o.code == OptionCode::IfTsoffset)
                .and_then(|o| o.value().get(..8))
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                // pcap-parser reads this option little-endian whatever the section's order.
                .map_or(0, |b| {
                    if be {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    }
                });
            let link = LinkType::from_linktype(u32::from(idb.linktype.0 as u16));
            let (scale, note) = match TsScale::from_tsresol(idb.if_tsresol) {
                Some(s) => (s, None),
                None => (
                    TsScale::Mul(1000),
                    Some(format!(
                        "interface if_tsresol {:#x} unusable; microseconds assumed",
                        idb.if_tsresol
                    )),
                ),
            };
            ng.ifaces.push(Iface {
                link,
                scale,
                offset_s,
                snaplen: idb.snaplen,
            });
            note.map_or(Outcome::Skip, Outcome::Note)
        }
        Err(_) => {
            // Keep the interface numbering: later packets refer to interfaces by position.
            let link = u16_at(block, 8, be).map_or(LinkType::Other(u32::MAX), |v| {
                LinkType::from_linktype(u32::from(v))
            });
            ng.ifaces.push(Iface {
                link,
                scale: TsScale::Mul(1000),
                offset_s: 0,
                snaplen: u32_at(block, 12, be).unwrap_or(0),
            });
            Outcome::Note("interface block options unreadable; microseconds assumed".into())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_scales() {
        let us = TsScale::from_tsresol(6).unwrap();
        assert_eq!(us.to_ns(1_500_000), 1_500_000_000);
        let ns = TsScale::from_tsresol(9).unwrap();
        assert_eq!(ns.to_ns(7), 7);
        let ps = TsScale::from_tsresol(12).unwrap();
        assert_eq!(ps.to_ns(5_000), 5);
        // 2^-7 s units: 128 units = 1 s, 25 units = 0.1953125 s.
        let p2 = TsScale::from_tsresol(0x87).unwrap();
        assert_eq!(p2.to_ns(128 * 3 + 25), 3_195_312_500);
        assert!(TsScale::from_tsresol(20).is_none());
        assert!(TsScale::from_tsresol(0xc0).is_none());
        let max = TsScale::from_tsresol(0xbf).unwrap();
        let _ = max.to_ns(u64::MAX);
        let _ = TsScale::from_tsresol(0).unwrap().to_ns(u64::MAX);
    }

    /// Every frame, then the error or end, and the statistics, of one way of reading a file.
    fn read(path: &Path, map: bool, capacity: usize) -> String {
        let mut out = String::new();
        let mut r = match FileReader::open_inner(path, capacity, map) {
            Ok(r) => r,
            Err(e) => return format!("open: {e}"),
        };
        loop {
            match r.next_frame() {
                Ok(Some(f)) => out.push_str(&format!(
                    "{} {:?} {} {} {:02x?}\n",
                    f.ts_ns, f.link, f.orig_len, f.interface, f.data
                )),
                Ok(None) => break,
                Err(e) => {
                    out.push_str(&format!("error: {e}\n"));
                    break;
                }
            }
        }
        out.push_str(&format!("{:?}", r.stats()));
        out
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
            panic!("{}: {e} (the shared captures; tests/run.sh)", dir.display())
        });
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("_tools") {
                    files(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }

    /// The mapped path reads exactly what the stream path reads: every shared capture (pcap,
    /// pcapng, damaged, gzip, not captures at all), and a pcap and a pcapng cut short at many
    /// lengths, with a small release step so that pages are handed back along the way.
    #[test]
    #[ignore = "data: ../shared/data"]
    fn mapped_and_streamed_reads_agree() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        let mut all = Vec::new();
        files(&data, &mut all);
        assert!(
            all.len() > 100,
            "shared captures missing under {}",
            data.display()
        );
        for p in &all {
            assert_eq!(
                read(p, true, 64 << 10),
                read(p, false, 64 << 10),
                "{}",
                p.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("botd-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for src in [
            "debian-registry/pathspider/tcp_http.pcap",
            "debian-registry/golang-github-google-gopacket-dev/pcapng-le/test010.pcapng",
        ] {
            let bytes = std::fs::read(data.join(src)).unwrap();
            let cut = dir.join("cut");
            for len in (0..bytes.len())
                .step_by(37)
                .chain([bytes.len() - 1, bytes.len()])
            {
                std::fs::write(&cut, &bytes[..len]).unwrap();
                assert_eq!(
                    read(&cut, true, 0),
                    read(&cut, false, 0),
                    "{src} cut at {len}"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tsoffset_applies() {
        let i = Iface {
            link: LinkType::Ethernet,
            scale: TsScale::Mul(1000),
            offset_s: -10,
            snaplen: 0,
        };
        assert_eq!(i.ts_ns(11_000_000), 1_000_000_000);
        assert_eq!(i.ts_ns(0), 0);
    }
}
