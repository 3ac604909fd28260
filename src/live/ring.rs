//! The fast Linux capture path: an AF_PACKET socket with an mmap'd TPACKET_V3 receive ring.
//!
//! The kernel fills fixed-size blocks with variable-length frames (each with its own kernel
//! timestamp) and hands a whole block to user space at once: when it is full, or when its retire
//! timeout passes. Reading a block costs no system call; one `poll` covers a block of frames.
//! Frames are read in place from the shared mapping and the block is given back to the kernel
//! afterwards, so nothing is copied or allocated per frame (except a copy into a fixed scratch
//! buffer when a VLAN tag the kernel took off has to be put back).
//!
//! Setup follows packet(7) and the kernel's Documentation/networking/packet_mmap.rst:
//! `socket(AF_PACKET, SOCK_RAW, 0)`, `PACKET_VERSION = TPACKET_V3`, `PACKET_RX_RING` with a
//! `tpacket_req3`, `mmap`, `bind` to the interface with `ETH_P_ALL`, then
//! `PACKET_ADD_MEMBERSHIP`/`PACKET_MR_PROMISC` when promiscuous. Kernel drop counters come from
//! `PACKET_STATISTICS` (`tpacket_stats_v3`).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::capture::{
    CaptureStats, LiveCapture, add_kernel_stats, interface_index, open_error, packet_socket,
    set_opt,
};
use crate::config::CaptureConfig;

/// Ring geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingOptions {
    /// Bytes per block: a multiple of the page size and a power of two (1 MiB by default).
    pub block_size: usize,
    /// Blocks in the ring (the ring takes `block_size * blocks` bytes of locked kernel memory).
    pub blocks: usize,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions {
            block_size: 1 << 20,
            blocks: 32,
        }
    }
}

/// Nominal frame size given to the kernel (TPACKET_V3 packs frames of any length into a block;
/// this only has to divide the block size).
const FRAME_SIZE: usize = 2048;

pub struct RingCapture {
    fd: OwnedFd,
    map: *mut u8,
    map_len: usize,
    block_size: usize,
    blocks: usize,
    /// The next block to read.
    current: usize,
    snaplen: usize,
    timeout_ms: i32,
    retire_ns: u64,
    /// Room for one frame with a VLAN tag put back.
    scratch: Vec<u8>,
    stats: CaptureStats,
}

impl RingCapture {
    pub fn open(cfg: &CaptureConfig, opts: RingOptions) -> Result<RingCapture, String> {
        let iface = cfg.interface.as_str();
        let index = interface_index(iface)?;
        let page = 4096;
        if opts.block_size < 64 * 1024
            || !opts.block_size.is_power_of_two()
            || !opts.block_size.is_multiple_of(page)
            || !(2..=4096).contains(&opts.blocks)
        {
            return Err(format!(
                "ring: block size {} (a power of two, at least 64 KiB) and blocks {} (2..=4096) \
                 are not usable",
                opts.block_size, opts.blocks
            ));
        }
        let raw = packet_socket().map_err(|e| open_error(iface, &e))?;
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let version: libc::c_int = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_opt(raw, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| format!("ring on {iface}: PACKET_VERSION TPACKET_V3: {e}"))?;
        let tov_ms = u32::try_from(cfg.read_timeout_ms.clamp(1, 10_000)).unwrap_or(100);
        let req = libc::tpacket_req3 {
            tp_block_size: opts.block_size as u32,
            tp_block_nr: opts.blocks as u32,
            tp_frame_size: FRAME_SIZE as u32,
            tp_frame_nr: (opts.block_size / FRAME_SIZE * opts.blocks) as u32,
            tp_retire_blk_tov: tov_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_opt(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| format!("ring on {iface}: PACKET_RX_RING ({opts:?}): {e}"))?;
        let map_len = opts.block_size * opts.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket, shared and
        // read-write as packet_mmap.rst prescribes; the result is checked against MAP_FAILED and
        // unmapped in Drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!(
                "ring on {iface}: mmap of {map_len} bytes: {}",
                io::Error::last_os_error()
            ));
        }
        let ring = RingCapture {
            fd,
            map: map.cast(),
            map_len,
            block_size: opts.block_size,
            blocks: opts.blocks,
            current: 0,
            snaplen: cfg.snaplen as usize,
            timeout_ms: i32::try_from(tov_ms).unwrap_or(100),
            retire_ns: u64::from(tov_ms) * 1_000_000,
            scratch: vec![0; super::capture::MAX_FRAME + 4],
            stats: CaptureStats::default(),
        };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = index as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let r = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(open_error(iface, &io::Error::last_os_error()));
        }
        if cfg.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: index as i32,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            set_opt(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
                .map_err(|e| format!("ring on {iface}: promiscuous mode: {e}"))?;
        }
        Ok(ring)
    }

    /// The block's `block_status`, shared with the kernel.
    fn status(&self, block: usize) -> &AtomicU32 {
        let offset = block * self.block_size
            + std::mem::offset_of!(libc::tpacket_block_desc, hdr)
            + std::mem::offset_of!(libc::tpacket_hdr_v1, block_status);
        // SAFETY: `block < self.blocks`, so the offset is inside the mapping, 4-byte aligned
        // (blocks are page-aligned; the field is at offset 8); the kernel and this process
        // access the word concurrently, hence the atomic view (acquire on read, release on
        // handing back), as packet_mmap.rst's memory barriers prescribe.
        unsafe { &*(self.map.add(offset) as *const AtomicU32) }
    }

    fn ready(&self, block: usize) -> bool {
        self.status(block).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }
}

impl LiveCapture for RingCapture {
    fn next(&mut self, f: &mut dyn FnMut(u64, &[u8], u32)) -> io::Result<usize> {
        let block = self.current;
        if !self.ready(block) {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, self.timeout_ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(0);
                }
                self.stats.errors += 1;
                return Err(e);
            }
            if !self.ready(block) {
                return Ok(0);
            }
        }
        // SAFETY: the block is ours until its status is set back to TP_STATUS_KERNEL below
        // (the acquire load in `ready` orders these reads after the kernel's writes); it lies
        // inside the mapping, which outlives this borrow.
        let base = unsafe { self.map.add(block * self.block_size) };
        let bs = self.block_size;
        // SAFETY: a block starts with its tpacket_block_desc (page-aligned, so aligned).
        let desc = unsafe { std::ptr::read(base as *const libc::tpacket_block_desc) };
        // SAFETY: TPACKET_V3 blocks use the `bh1` member of the header union.
        let h1 = unsafe { desc.hdr.bh1 };
        let mut off = h1.offset_to_first_pkt as usize;
        let mut n = 0;
        let hdr_len = std::mem::size_of::<libc::tpacket3_hdr>();
        for _ in 0..h1.num_pkts {
            if off + hdr_len > bs {
                break;
            }
            // SAFETY: `off + hdr_len <= block_size` was checked; frames are 16-byte aligned
            // (TPACKET_ALIGNMENT), `read_unaligned` does not even need that.
            let hdr =
                unsafe { std::ptr::read_unaligned(base.add(off) as *const libc::tpacket3_hdr) };
            let mac = off + usize::from(hdr.tp_mac);
            let caplen = hdr.tp_snaplen as usize;
            if mac + caplen > bs {
                break;
            }
            // SAFETY: `mac + caplen <= block_size`: the frame's bytes lie inside this block.
            let data = unsafe { std::slice::from_raw_parts(base.add(mac), caplen) };
            let ts = u64::from(hdr.tp_sec) * 1_000_000_000 + u64::from(hdr.tp_nsec);
            let mut wire = hdr.tp_len;
            let frame: &[u8] = if hdr.tp_status & libc::TP_STATUS_VLAN_VALID != 0
                && let Some((macs, rest)) = data.split_first_chunk::<12>()
                && let Some(out) = self.scratch.get_mut(..data.len() + 4)
                && let Some((head, tail)) = out.split_first_chunk_mut::<16>()
            {
                // The kernel (or the NIC) took the 802.1Q tag off; put it back so the frame is
                // what was on the wire, as an offline capture shows it.
                let tpid = if hdr.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    hdr.hv1.tp_vlan_tpid
                } else {
                    0x8100
                };
                let tci = hdr.hv1.tp_vlan_tci as u16;
                // `out` is 4 bytes longer than `data`: MACs, the tag, then the rest (`tail` and
                // `rest` have the same length).
                head[..12].copy_from_slice(macs);
                head[12..14].copy_from_slice(&tpid.to_be_bytes());
                head[14..].copy_from_slice(&tci.to_be_bytes());
                tail.copy_from_slice(rest);
                wire = wire.saturating_add(4);
                out
            } else {
                data
            };
            let kept = frame.get(..self.snaplen).unwrap_or(frame);
            f(ts, kept, wire);
            n += 1;
            if hdr.tp_next_offset == 0 {
                break;
            }
            off += hdr.tp_next_offset as usize;
        }
        self.stats.frames += n as u64;
        self.status(block)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.current = (block + 1) % self.blocks;
        Ok(n)
    }

    fn stats(&mut self) -> CaptureStats {
        add_kernel_stats(&mut self.stats, self.fd.as_raw_fd(), true);
        self.stats
    }

    fn latency_ns(&self) -> u64 {
        self.retire_ns
    }

    fn name(&self) -> &'static str {
        "ring"
    }
}

impl Drop for RingCapture {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are the mapping made in `open`, unmapped once; no borrow of
        // it outlives `next`. The socket is closed afterwards by OwnedFd.
        unsafe {
            libc::munmap(self.map.cast(), self.map_len);
        }
    }
}
