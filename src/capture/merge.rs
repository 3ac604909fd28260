//! Several capture files read as one stream in timestamp order.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs;
use std::path::{Path, PathBuf};

use super::file::{DEFAULT_BUFFER, MIN_BUFFER};
use super::{CaptureError, FileReader, Frame, ReadStats};

/// Total buffer memory aimed at when many files are open at once.
const MERGE_BUDGET: usize = 64 << 20;

/// k-way merge over [`FileReader`]s. Each reader keeps its head frame in its own buffer, so a
/// frame is never copied: the merge only orders `(timestamp, reader index)` pairs.
pub struct MergedCapture {
    readers: Vec<FileReader>,
    /// Readers holding a decoded head frame; ties go to the lower index (argument order).
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    /// The reader whose frame was handed out last; it advances on the next call.
    last: Option<usize>,
}

/// Expands directories into their regular files, sorted by file name.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CaptureError> {
    let mut files = Vec::new();
    for p in paths {
        let md =
            fs::metadata(p).map_err(|e| CaptureError::new(p, 0, format!("cannot open: {e}")))?;
        if !md.is_dir() {
            files.push(p.clone());
            continue;
        }
        let rd = fs::read_dir(p)
            .map_err(|e| CaptureError::new(p, 0, format!("cannot list directory: {e}")))?;
        let mut in_dir = Vec::new();
        for entry in rd {
            let entry = entry
                .map_err(|e| CaptureError::new(p, 0, format!("cannot list directory: {e}")))?;
            let path = entry.path();
            // fs::metadata follows symlinks, so a link to a capture file counts as a file.
            if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                in_dir.push(path);
            }
        }
        in_dir.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        files.extend(in_dir);
    }
    Ok(files)
}

impl MergedCapture {
    pub fn open(paths: &[PathBuf]) -> Result<MergedCapture, CaptureError> {
        let files = expand(paths)?;
        if files.is_empty() {
            let p = paths.first().map_or(Path::new(""), PathBuf::as_path);
            return Err(CaptureError::new(p, 0, "no capture files to read"));
        }
        let buffer = (MERGE_BUDGET / files.len()).clamp(MIN_BUFFER, DEFAULT_BUFFER);
        let mut readers = Vec::with_capacity(files.len());
        for f in &files {
            readers.push(FileReader::open_with_buffer(f, buffer)?);
        }
        // Capacity for every reader, so pushes never reallocate while reading.
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if r.advance()?
                && let Some(ts) = r.current_ts()
            {
                heap.push(Reverse((ts, i)));
            }
        }
        Ok(MergedCapture {
            readers,
            heap,
            last: None,
        })
    }

    /// The next frame in timestamp order, borrowed until the next call.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        // One file (the common case): no ordering to do. The heap still hands out the first
        // frame (decoded at open); after that the reader's frames go out as they come, and once
        // it ends or fails the heap is empty, so later calls return `Ok(None)` as in a merge.
        if self.readers.len() == 1 && self.last.is_some() {
            let (readers, last) = (&mut self.readers, &mut self.last);
            let Some(only) = readers.first_mut() else {
                return Ok(None);
            };
            return match only.next_frame() {
                Ok(Some(frame)) => Ok(Some(frame)),
                Ok(None) => {
                    *last = None;
                    Ok(None)
                }
                Err(e) => {
                    *last = None;
                    Err(e)
                }
            };
        }
        if let Some(i) = self.last.take()
            && let Some(r) = self.readers.get_mut(i)
            && r.advance()?
            && let Some(ts) = r.current_ts()
        {
            self.heap.push(Reverse((ts, i)));
        }
        let Some(Reverse((_, i))) = self.heap.pop() else {
            return Ok(None);
        };
        self.last = Some(i);
        Ok(self.readers.get(i).and_then(FileReader::current))
    }

    /// Statistics summed over all files.
    pub fn stats(&self) -> ReadStats {
        let mut total = ReadStats::default();
        for r in &self.readers {
            total.add(r.stats());
        }
        total
    }

    /// The files being read, in merge-priority order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.readers.iter().map(FileReader::path)
    }
}
